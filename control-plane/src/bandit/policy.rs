//! Bandit policies: from each arm's evidence to the traffic weights the edge serves. Pure.
//!
//! Every policy reads the same evidence, [`Estimate`]: an arm's reward mean with its standard
//! error, already weighted across reweighting periods (`periods`) and oriented so that higher is
//! better. Weights are a share of traffic per arm; the edge hashes units into them.
//!
//! - **Thompson sampling**: each arm's share is its probability of being the best arm under
//!   Gaussian posteriors (randomised probability matching: serving by P(best) is what drawing a
//!   posterior sample per request gives on average, without a draw at the edge). GrowthBook's
//!   bandits do the same.
//! - **UCB1**: the arm with the highest upper confidence bound `mean + scale·√(2 ln N / nᵢ)` takes
//!   all traffic but the floors. `scale` is 1 for conversion rewards (UCB1's rewards in [0, 1])
//!   and the arm's standard deviation for continuous rewards.
//! - **ε-greedy**: the arm with the best mean takes 1 − ε, every arm shares ε equally.
//!
//! Every policy keeps each arm at `floor` or more (so early luck can still be corrected), and
//! none moves traffic before every arm has `min_units_per_arm` units and the exploration period
//! is over: until then the weights stay as launched.

use serde::{Deserialize, Serialize};

use crate::stats::bayes;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    #[default]
    Thompson,
    Ucb1,
    EpsilonGreedy,
}

/// An experiment's bandit settings (`bandit` on create/patch); absent fields take the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub policy: Policy,
    /// Least share of traffic any arm keeps (GrowthBook's default, 1 %).
    #[serde(default = "default_floor")]
    pub floor: f64,
    /// Units every arm needs before weights move (GrowthBook's default, 100).
    #[serde(default = "default_min_units")]
    pub min_units_per_arm: u64,
    /// Equal split for this long after launch, whatever the evidence.
    #[serde(default)]
    pub exploration_seconds: u64,
    /// How often the weights are recomputed and published.
    #[serde(default = "default_every")]
    pub reweight_every_seconds: u64,
    /// ε-greedy's exploration share.
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
}

fn default_floor() -> f64 {
    0.01
}
fn default_min_units() -> u64 {
    100
}
fn default_every() -> u64 {
    60
}
fn default_epsilon() -> f64 {
    0.1
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::default(),
            floor: default_floor(),
            min_units_per_arm: default_min_units(),
            exploration_seconds: 0,
            reweight_every_seconds: default_every(),
            epsilon: default_epsilon(),
        }
    }
}

/// The longest cadence and exploration period accepted (a week and 90 days).
pub const MAX_EVERY_SECONDS: u64 = 7 * 86_400;
pub const MAX_EXPLORATION_SECONDS: u64 = 90 * 86_400;

impl Settings {
    /// Checks the settings for an experiment with `arms` variants; the error is (field, message).
    pub fn validate(&self, arms: usize) -> Result<(), (&'static str, String)> {
        let max_floor = 1.0 / arms.max(1) as f64;
        if !(self.floor.is_finite() && (0.0..=max_floor).contains(&self.floor)) {
            return Err(("bandit.floor", format!("must be from 0 to 1/variants ({max_floor})")));
        }
        if !(self.epsilon.is_finite() && (0.0..=1.0).contains(&self.epsilon)) {
            return Err(("bandit.epsilon", "must be from 0 to 1".into()));
        }
        if !(1..=MAX_EVERY_SECONDS).contains(&self.reweight_every_seconds) {
            return Err(("bandit.reweight_every_seconds", format!("must be from 1 to {MAX_EVERY_SECONDS}")));
        }
        if self.exploration_seconds > MAX_EXPLORATION_SECONDS {
            return Err(("bandit.exploration_seconds", format!("must be at most {MAX_EXPLORATION_SECONDS}")));
        }
        if self.min_units_per_arm > 1_000_000_000 {
            return Err(("bandit.min_units_per_arm", "must be at most 1000000000".into()));
        }
        Ok(())
    }
}

/// One arm's evidence, higher is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Exposed units.
    pub units: f64,
    /// Reward mean (period-weighted); `None` without any reward data.
    pub mean: Option<f64>,
    /// Standard error of `mean`.
    pub se: Option<f64>,
    /// UCB's reward scale: 1 for rates, the per-unit standard deviation for means.
    pub scale: f64,
}

/// Why the weights are what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Inside the exploration period: the weights stay.
    Exploring,
    /// Some arm has fewer than `min_units_per_arm` units: the weights stay.
    MinUnits,
    /// No reward data, or not enough to compare arms: the weights stay.
    NoEvidence,
    /// The policy's weights.
    Adapting,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    pub weights: Vec<f64>,
    /// What the policy ranked by: P(best) (Thompson), the upper bound (UCB1) or the mean
    /// (ε-greedy); `None` while not adapting.
    pub scores: Option<Vec<f64>>,
    pub stage: Stage,
}

/// The weights `settings` gives `arms`, `elapsed_seconds` after launch; `serving` (the weights
/// served now) stay while the policy may not move them yet. Thompson sampling takes `p_best`
/// when given (the readout's exact probabilities), else Gaussian ones from `arms`.
pub fn propose(settings: &Settings, arms: &[Estimate], p_best: Option<&[f64]>, serving: &[f64], elapsed_seconds: f64) -> Proposal {
    let k = arms.len();
    let keep = if serving.len() == k { serving.to_vec() } else { vec![1.0 / k.max(1) as f64; k] };
    let hold = |stage| Proposal { weights: keep.clone(), scores: None, stage };
    if k == 0 {
        return hold(Stage::NoEvidence);
    }
    if elapsed_seconds < settings.exploration_seconds as f64 {
        return hold(Stage::Exploring);
    }
    if arms.iter().any(|a| a.units < settings.min_units_per_arm as f64) {
        return hold(Stage::MinUnits);
    }
    let Some(means) = arms.iter().map(|a| a.mean.filter(|m| m.is_finite())).collect::<Option<Vec<f64>>>() else {
        return hold(Stage::NoEvidence);
    };
    let (shares, scores) = match settings.policy {
        Policy::Thompson if p_best.is_some_and(|p| p.len() == k) => {
            let p = p_best.map(<[f64]>::to_vec).unwrap_or_default();
            (p.clone(), p)
        }
        Policy::Thompson => {
            let Some(posteriors) = arms.iter().zip(&means).map(|(a, &m)| Some((m, a.se?))).collect::<Option<Vec<_>>>() else {
                return hold(Stage::NoEvidence);
            };
            let Ok(p) = bayes::normal_prob_best(&posteriors) else { return hold(Stage::NoEvidence) };
            (p.clone(), p)
        }
        Policy::Ucb1 => {
            let total: f64 = arms.iter().map(|a| a.units).sum();
            let bounds: Vec<f64> =
                arms.iter().zip(&means).map(|(a, &m)| m + a.scale * (2.0 * total.ln() / a.units.max(1.0)).sqrt()).collect();
            (all_to_best(&bounds), bounds)
        }
        Policy::EpsilonGreedy => {
            let greedy = all_to_best(&means);
            let e = settings.epsilon;
            (greedy.iter().map(|g| (1.0 - e) * g + e / k as f64).collect(), means)
        }
    };
    Proposal { weights: floored(&shares, settings.floor), scores: Some(scores), stage: Stage::Adapting }
}

/// All of the share to the highest score (split evenly between exact ties).
fn all_to_best(scores: &[f64]) -> Vec<f64> {
    let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ties = scores.iter().filter(|&&s| s == best).count().max(1) as f64;
    scores.iter().map(|&s| if s == best { 1.0 / ties } else { 0.0 }).collect()
}

/// `shares` (≥ 0) normalised to sum to 1 with every arm at `floor` or more: arms below it are
/// raised to it, the rest share what is left in proportion to their shares.
pub fn floored(shares: &[f64], floor: f64) -> Vec<f64> {
    let k = shares.len();
    if k == 0 {
        return Vec::new();
    }
    let floor = floor.clamp(0.0, 1.0 / k as f64);
    let mut fixed = vec![false; k];
    loop {
        let free: Vec<usize> = (0..k).filter(|&i| !fixed[i]).collect();
        let free_mass: f64 = free.iter().map(|&i| shares[i].max(0.0)).sum();
        let left = 1.0 - floor * (k - free.len()) as f64;
        let share = |i: usize| if free_mass > 0.0 { left * shares[i].max(0.0) / free_mass } else { left / free.len() as f64 };
        let newly: Vec<usize> = free.iter().copied().filter(|&i| share(i) < floor).collect();
        if newly.is_empty() {
            return (0..k).map(|i| if fixed[i] { floor } else { share(i) }).collect();
        }
        for i in newly {
            fixed[i] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    fn arm(units: f64, mean: f64, se: f64) -> Estimate {
        Estimate { units, mean: Some(mean), se: Some(se), scale: 1.0 }
    }

    #[test]
    fn floors_raise_starved_arms_and_keep_proportions() {
        assert!(close(&floored(&[0.2, 0.3, 0.5], 0.01), &[0.2, 0.3, 0.5]));
        let w = floored(&[0.0, 0.25, 0.75], 0.01);
        assert!(close(&w, &[0.01, 0.99 * 0.25, 0.99 * 0.75]), "{w:?}");
        // Raising one arm to the floor can push another below it.
        let w = floored(&[0.0, 0.0101, 0.9899], 0.01);
        assert!(close(&w, &[0.01, 0.01, 0.98]), "{w:?}");
        assert!(close(&floored(&[0.0, 0.0], 0.01), &[0.5, 0.5]));
        assert!(floored(&[], 0.01).is_empty());
    }

    #[test]
    fn nothing_moves_before_the_evidence_is_in() {
        let s = Settings { exploration_seconds: 600, ..Settings::default() };
        let arms = [arm(1000.0, 0.1, 0.01), arm(1000.0, 0.3, 0.01)];
        assert_eq!(propose(&s, &arms, None, &[], 599.0).stage, Stage::Exploring);
        assert_eq!(propose(&s, &arms, None, &[], 600.0).stage, Stage::Adapting);
        let few = [arm(99.0, 0.1, 0.01), arm(1000.0, 0.3, 0.01)];
        let p = propose(&Settings::default(), &few, None, &[], 0.0);
        assert_eq!((p.stage, p.weights), (Stage::MinUnits, vec![0.5, 0.5]));
        // The launch weights stay until the policy may move them.
        let p = propose(&Settings::default(), &few, None, &[0.9, 0.1], 0.0);
        assert_eq!((p.stage, p.weights), (Stage::MinUnits, vec![0.9, 0.1]));
        let none = [Estimate { units: 500.0, mean: None, se: None, scale: 1.0 }, arm(500.0, 0.3, 0.01)];
        assert_eq!(propose(&Settings::default(), &none, None, &[], 0.0).stage, Stage::NoEvidence);
    }

    #[test]
    fn thompson_serves_the_probability_of_being_best() {
        // Two arms, means 1 apart, standard errors 1 each: P(b best) = Φ(1/√2).
        let p = propose(&Settings { floor: 0.0, min_units_per_arm: 0, ..Settings::default() }, &[arm(10.0, 0.0, 1.0), arm(10.0, 1.0, 1.0)], None, &[], 0.0);
        let expected = statrs_phi(1.0 / 2f64.sqrt());
        assert!((p.weights[1] - expected).abs() < 1e-6, "{p:?} vs {expected}");
        assert!((p.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // Given probabilities are served as they are (floored).
        let p = propose(&Settings::default(), &[arm(500.0, 0.0, 1.0), arm(500.0, 1.0, 1.0)], Some(&[0.3, 0.7]), &[], 0.0);
        assert!(close(&p.weights, &[0.3, 0.7]), "{p:?}");
        // A clearly worse arm keeps its floor.
        let p = propose(&Settings::default(), &[arm(5000.0, 0.05, 0.003), arm(5000.0, 0.20, 0.006), arm(5000.0, 0.10, 0.004)], None, &[], 0.0);
        assert!((p.weights[0] - 0.01).abs() < 1e-9 && (p.weights[2] - 0.01).abs() < 1e-9 && (p.weights[1] - 0.98).abs() < 1e-9, "{p:?}");
    }

    fn statrs_phi(z: f64) -> f64 {
        use statrs::distribution::{ContinuousCDF, Normal};
        Normal::standard().cdf(z)
    }

    #[test]
    fn ucb1_favours_the_less_explored_arm_when_means_tie() {
        let s = Settings { policy: Policy::Ucb1, min_units_per_arm: 0, floor: 0.0, ..Settings::default() };
        let p = propose(&s, &[arm(100.0, 0.5, 0.05), arm(10_000.0, 0.5, 0.005)], None, &[], 0.0);
        assert_eq!(p.weights, vec![1.0, 0.0]);
        // The bound is mean + √(2 ln N / n).
        let n: f64 = 10_100.0;
        let bounds = p.scores.expect("scores");
        assert!((bounds[0] - (0.5 + (2.0 * n.ln() / 100.0).sqrt())).abs() < 1e-12);
        // With plenty of data on both, the better mean wins.
        let p = propose(&s, &[arm(1e6, 0.5, 0.0005), arm(1e6, 0.6, 0.0005)], None, &[], 0.0);
        assert_eq!(p.weights, vec![0.0, 1.0]);
    }

    #[test]
    fn epsilon_greedy_splits_epsilon_evenly() {
        let s = Settings { policy: Policy::EpsilonGreedy, epsilon: 0.2, floor: 0.0, min_units_per_arm: 0, ..Settings::default() };
        let p = propose(&s, &[arm(10.0, 0.1, 0.1), arm(10.0, 0.4, 0.1), arm(10.0, 0.2, 0.1), arm(10.0, 0.3, 0.1)], None, &[], 0.0);
        assert!(close(&p.weights, &[0.05, 0.85, 0.05, 0.05]), "{p:?}");
        // ε/k under the floor is raised to it.
        let s = Settings { epsilon: 0.02, floor: 0.01, ..s };
        let p = propose(&s, &[arm(10.0, 0.1, 0.1), arm(10.0, 0.4, 0.1), arm(10.0, 0.2, 0.1), arm(10.0, 0.3, 0.1)], None, &[], 0.0);
        assert!(close(&p.weights, &[0.01, 0.97, 0.01, 0.01]), "{p:?}");
    }

    #[test]
    fn settings_are_checked() {
        assert!(Settings::default().validate(5).is_ok());
        assert_eq!(Settings { floor: 0.3, ..Settings::default() }.validate(5).map_err(|e| e.0), Err("bandit.floor"));
        assert_eq!(Settings { epsilon: 1.5, ..Settings::default() }.validate(2).map_err(|e| e.0), Err("bandit.epsilon"));
        assert_eq!(Settings { reweight_every_seconds: 0, ..Settings::default() }.validate(2).map_err(|e| e.0), Err("bandit.reweight_every_seconds"));
        let parsed: Settings = serde_json::from_str(r#"{"policy":"ucb1"}"#).expect("defaults fill in");
        assert_eq!(parsed, Settings { policy: Policy::Ucb1, ..Settings::default() });
        assert!(serde_json::from_str::<Settings>(r#"{"policy":"softmax"}"#).is_err());
        assert!(serde_json::from_str::<Settings>(r#"{"flor":0.1}"#).is_err());
    }

    proptest! {
        #[test]
        fn weights_are_a_distribution_above_the_floor(
            policy in prop_oneof![Just(Policy::Thompson), Just(Policy::Ucb1), Just(Policy::EpsilonGreedy)],
            arms in prop::collection::vec((0.0f64..1e6, -1e3f64..1e3, 1e-6f64..1e3), 2..8),
            floor in 0.0f64..0.1,
            epsilon in 0.0f64..1.0,
        ) {
            let k = arms.len();
            let s = Settings { policy, floor: floor.min(1.0 / k as f64), epsilon, min_units_per_arm: 0, ..Settings::default() };
            let est: Vec<Estimate> = arms.iter().map(|&(n, m, se)| Estimate { units: n, mean: Some(m), se: Some(se), scale: 1.0 }).collect();
            let p = propose(&s, &est, None, &[], 0.0);
            prop_assert_eq!(p.weights.len(), k);
            prop_assert!((p.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{:?}", p);
            prop_assert!(p.weights.iter().all(|&w| w.is_finite() && w >= s.floor - 1e-12), "{:?}", p);
        }
    }
}
