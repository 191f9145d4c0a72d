//! Each arm's reward across reweighting periods.
//!
//! A bandit's weights change over time, and so may the reward itself (weekday against weekend,
//! a campaign): an arm served mostly in a good period looks better than it is when its units are
//! simply pooled (Simpson's paradox). Weighing each period's cell by the period's share of all
//! units (GrowthBook's way, and ours until issue 27) undoes that, but lets a cell of one or two
//! units in a heavy period decide: the losing arms get ~1 % of traffic once the weights move,
//! and one converting unit then lifts an arm above the winner.
//!
//! Instead the reward is modelled as an arm effect times a period effect shared by every arm,
//! `rate(arm, period) = θ_arm · τ_period` (for means, the mean), fitted by alternating updates
//! (the maximum-likelihood fit of that log-linear model): every unit of an arm counts, weighted
//! by its period's effect, as its **effective exposure** `e = Σₚ n(a, p) · τₚ`. A rate's posterior
//! is then `Beta(1 + x, 1 + e − x)` over any number of periods: with one period, or no drift,
//! exactly the pooled Beta, and still right under Simpson's paradox. The period effects are
//! scaled so that their unit-weighted average is 1: θ is the reward of an average period.
//! The inputs are per (period, arm) sufficient statistics aggregated in SQL ([`cells`]);
//! [`estimates`] is pure.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::policy::Estimate;
use crate::error::ApiResult;
use crate::results::MetricKind;

/// Sufficient statistics of one arm in one period.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cell {
    pub period: usize,
    pub arm: usize,
    /// Exposed units.
    pub units: f64,
    /// Units with the reward: converting units (rates) or units with the metric (means).
    pub n: f64,
    /// Σ and Σ² of the units' metric values (means only).
    pub sum: f64,
    pub sum_sq: f64,
}

/// One arm's reward, as the readout shows it (higher or lower may be better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmReward {
    pub units: f64,
    /// Pooled over all periods (what the results page shows; biased once weights moved).
    pub pooled_mean: Option<f64>,
    /// θ: the reward of an average period, net of the period effects.
    pub weighted_mean: Option<f64>,
    pub se: Option<f64>,
    /// Per-unit standard deviation (1 for rates: UCB1's scale).
    pub scale: f64,
    /// Σ of the reward over units: converting units (rates) or metric values (means).
    pub total: f64,
    /// Effective exposure `Σₚ n(a, p) · τₚ`: units (rates) or units with the metric (means).
    pub effective: f64,
}

impl ArmReward {
    /// The policies' view: higher is better.
    pub fn estimate(&self, lower_is_better: bool) -> Estimate {
        let sign = if lower_is_better { -1.0 } else { 1.0 };
        Estimate { units: self.units, mean: self.weighted_mean.map(|m| sign * m), se: self.se, scale: self.scale }
    }
}

/// Sample variance from n, Σ, Σ² (n − 1 denominator); `None` below two values.
fn variance(n: f64, sum: f64, sum_sq: f64) -> Option<f64> {
    (n >= 2.0).then(|| ((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0))
}

/// The period effects τ of `grid[period][arm] = (exposure, reward total)`, scaled so that their
/// average over `weights` (each period's units) is 1. Alternating updates of the log-linear model
/// `total(a, p) ~ exposure(a, p) · θₐ · τₚ`, each τₚ shrunk toward 1 by one pseudo-observation at
/// the current fit (a period whose units have not converted yet does not zero their exposure).
/// A period without exposure keeps τ = 1. Rewards that are not all positive are not
/// multiplicative: every τ is then 1 (the pooled estimate).
pub fn period_effects(grid: &[Vec<(f64, f64)>], weights: &[f64]) -> Vec<f64> {
    let periods = grid.len();
    let arms = grid.first().map_or(0, Vec::len);
    let mut tau = vec![1.0; periods];
    if periods <= 1 || grid.iter().flatten().any(|&(_, t)| t < 0.0) {
        return tau;
    }
    let arm_totals: Vec<f64> = (0..arms).map(|a| grid.iter().map(|row| row[a].1).sum()).collect();
    // The average reward per unit of exposure: the scale of one pseudo-observation.
    let (all_exposure, all_total) = grid.iter().flatten().fold((0.0, 0.0), |s, &(e, t)| (s.0 + e, s.1 + t));
    if all_total <= 0.0 || all_exposure <= 0.0 {
        return tau;
    }
    let unit = all_total / all_exposure;
    let mut theta = vec![0.0; arms];
    for _ in 0..200 {
        for (a, th) in theta.iter_mut().enumerate() {
            let e: f64 = grid.iter().zip(&tau).map(|(row, t)| row[a].0 * t).sum();
            *th = if e > 0.0 { arm_totals[a] / e } else { 0.0 };
        }
        let mut change: f64 = 0.0;
        for (p, row) in grid.iter().enumerate() {
            let expected: f64 = row.iter().zip(&theta).map(|(&(e, _), th)| e * th).sum();
            let observed: f64 = row.iter().map(|&(_, t)| t).sum();
            let exposure: f64 = row.iter().map(|&(e, _)| e).sum();
            if exposure <= 0.0 {
                continue;
            }
            // One pseudo-observation (`unit` of reward at τ = 1) keeps τ finite and positive.
            let next = (observed + unit) / (expected + unit);
            change = change.max((next - tau[p]).abs());
            tau[p] = next;
        }
        let total_weight: f64 = weights.iter().sum();
        let scale = if total_weight > 0.0 { tau.iter().zip(weights).map(|(t, w)| t * w).sum::<f64>() / total_weight } else { 1.0 };
        if scale > 0.0 {
            tau.iter_mut().for_each(|t| *t /= scale);
        }
        if change < 1e-13 {
            break;
        }
    }
    tau
}

/// Each of `arms` arms' reward from its cells (any order; missing cells are empty).
pub fn estimates(arms: usize, kind: MetricKind, cells: &[Cell]) -> Vec<ArmReward> {
    let periods = cells.iter().map(|c| c.period + 1).max().unwrap_or(0);
    let mut grid = vec![vec![Cell::default(); arms]; periods];
    for c in cells.iter().filter(|c| c.arm < arms) {
        let g = &mut grid[c.period][c.arm];
        (g.units, g.n, g.sum, g.sum_sq) = (g.units + c.units, g.n + c.n, g.sum + c.sum, g.sum_sq + c.sum_sq);
    }
    // (exposure, total) per cell: units and converters for rates, units with the metric and Σ
    // of their values for means.
    let pair = |c: &Cell| match kind {
        MetricKind::Proportion => (c.units, c.n),
        MetricKind::Mean => (c.n, c.sum),
    };
    let pairs: Vec<Vec<(f64, f64)>> = grid.iter().map(|row| row.iter().map(pair).collect()).collect();
    let period_units: Vec<f64> = grid.iter().map(|row| row.iter().map(|c| c.units).sum()).collect();
    let tau = period_effects(&pairs, &period_units);
    (0..arms)
        .map(|a| {
            let col: Vec<(&Cell, f64)> = grid.iter().zip(&tau).map(|(row, &t)| (&row[a], t)).collect();
            let units: f64 = col.iter().map(|(c, _)| c.units).sum();
            let (n, sum, sum_sq) = col.iter().fold((0.0, 0.0, 0.0), |t, (c, _)| (t.0 + c.n, t.1 + c.sum, t.2 + c.sum_sq));
            let (exposure, total) = col.iter().fold((0.0, 0.0), |s, (c, _)| (s.0 + pair(c).0, s.1 + pair(c).1));
            let effective: f64 = col.iter().map(|(c, t)| pair(c).0 * t).sum();
            let pooled_mean = (exposure > 0.0).then(|| total / exposure);
            let (weighted_mean, se) = if effective <= 0.0 {
                (None, None)
            } else {
                match kind {
                    MetricKind::Proportion => {
                        // The spread of Beta(1 + x, 1 + e − x): never 0 at 0 or 100 %.
                        let x = total.min(effective);
                        let smoothed = (x + 1.0) / (effective + 2.0);
                        (Some(x / effective), Some((smoothed * (1.0 - smoothed) / (effective + 3.0)).sqrt()))
                    }
                    MetricKind::Mean => {
                        let theta = total / effective;
                        // The within-arm variance of values brought to an average period (y / τ),
                        // pooled over the arm's periods; var(θ) = σ² Σ n τ² / (Σ n τ)².
                        let (ss, df) = col.iter().filter(|(c, _)| c.n > 0.0).fold((0.0, 0.0), |s, (c, t)| {
                            (s.0 + (c.sum_sq - c.sum * c.sum / c.n).max(0.0) / (t * t), s.1 + c.n - 1.0)
                        });
                        let sigma2 = if df >= 1.0 { Some(ss / df) } else { variance(n, sum, sum_sq) };
                        let n_tau2: f64 = col.iter().map(|(c, t)| c.n * t * t).sum();
                        (Some(theta), sigma2.filter(|v| *v > 0.0).map(|v| (v * n_tau2).sqrt() / effective))
                    }
                }
            };
            let scale = match kind {
                MetricKind::Proportion => 1.0,
                MetricKind::Mean => variance(n, sum, sum_sq).map_or(0.0, f64::sqrt),
            };
            ArmReward { units, pooled_mean, weighted_mean, se, scale, total, effective }
        })
        .collect()
}

/// Beta(1 + x, 1 + e − x) for each arm of a rate (`x` converting units, `e` the effective
/// exposure), mirrored when a lower rate is better (the failures are then the successes):
/// what P(best) is computed from, exactly, for any number of periods.
pub fn rate_posteriors(rewards: &[ArmReward], lower_is_better: bool) -> Result<Vec<crate::stats::bayes::BetaArm>, String> {
    rewards
        .iter()
        .map(|a| {
            let x = a.total.min(a.effective);
            let x = if lower_is_better { a.effective - x } else { x };
            crate::stats::bayes::beta_posterior(x, a.effective, crate::stats::bayes::BetaPrior::default(), 0.05).map_err(|e| e.reason)
        })
        .collect()
}

/// The cells of an experiment's reward. A weight version `i` (0-based) starts period `i + 1`:
/// `versions` are the experiment versions that served each (ascending), `boundaries` the times
/// they were committed. A unit belongs to the period of the config version its first exposure
/// was served from (the edge switches some time after the commit); exposures sent without a
/// version fall back to the time. Reads the per-unit aggregates the results read
/// (`unit_metrics`), never events; `variants` gives the arms' order.
pub async fn cells(
    db: &PgPool,
    experiment: Uuid,
    variants: &[String],
    kind: MetricKind,
    metric: &str,
    versions: &[i64],
    boundaries: &[DateTime<Utc>],
) -> ApiResult<Vec<Cell>> {
    let kind_code: i16 = match kind {
        MetricKind::Mean => 2,
        MetricKind::Proportion => 3,
    };
    let rows: Vec<(i32, String, f64, f64, f64, f64)> = sqlx::query_as(
        "SELECT coalesce(width_bucket(x.version, $5::int8[]), width_bucket(um.split_ts, $2::timestamptz[])) AS period,
                um.variant_key,
                count(*) FILTER (WHERE um.kind = 1)::float8,
                count(*) FILTER (WHERE um.kind = $3 AND um.post_n > 0)::float8,
                coalesce(sum(um.post_sum) FILTER (WHERE um.kind = $3 AND um.post_n > 0), 0)::float8,
                coalesce(sum(um.post_sum * um.post_sum) FILTER (WHERE um.kind = $3 AND um.post_n > 0), 0)::float8
         FROM unit_metrics um
         LEFT JOIN unit_exposures x ON x.experiment_id = um.experiment_id AND x.unit_id = um.unit_id
         WHERE um.experiment_id = $1 AND um.variant_key IS NOT NULL AND um.split_ts IS NOT NULL
           AND (um.kind = 1 OR (um.kind = $3 AND um.metric = $4))
         GROUP BY 1, 2",
    )
    .bind(experiment)
    .bind(boundaries)
    .bind(kind_code)
    .bind(metric)
    .bind(versions)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(period, key, units, n, sum, sum_sq)| {
            let arm = variants.iter().position(|v| *v == key)?;
            Some(Cell { period: usize::try_from(period).unwrap_or(0), arm, units, n, sum, sum_sq })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate_cell(period: usize, arm: usize, units: f64, rate: f64) -> Cell {
        Cell { period, arm, units, n: (units * rate).round(), sum: 0.0, sum_sq: 0.0 }
    }

    fn counts(period: usize, arm: usize, units: f64, converted: f64) -> Cell {
        Cell { period, arm, units, n: converted, sum: 0.0, sum_sq: 0.0 }
    }

    fn p_best(cells: &[Cell], arms: usize) -> Vec<f64> {
        let r = estimates(arms, MetricKind::Proportion, cells);
        crate::stats::bayes::beta_prob_best(&rate_posteriors(&r, false).expect("posteriors"))
    }

    #[test]
    fn a_few_units_in_a_heavy_period_do_not_decide() {
        // The fixture: after the first reweight the losers get ~1 % of traffic; one unit
        // of arm 4 converted in the heavy second period. Weighing cells by their period's share
        // gave the true winner P(best) 0.282 here.
        let mut cells = Vec::new();
        for (arm, (units, converted)) in [(110.0, 25.0), (120.0, 4.0), (123.0, 3.0), (132.0, 6.0), (115.0, 9.0)].into_iter().enumerate() {
            cells.push(counts(0, arm, units, converted));
        }
        for (arm, (units, converted)) in [(193.0, 57.0), (4.0, 0.0), (1.0, 0.0), (1.0, 0.0), (1.0, 1.0)].into_iter().enumerate() {
            cells.push(counts(1, arm, units, converted));
        }
        let p = p_best(&cells, 5);
        assert!(p[0] >= 0.99, "{p:?}");
        let r = estimates(5, MetricKind::Proportion, &cells);
        assert!(r[0].weighted_mean > r[4].weighted_mean, "{r:?}");
    }

    #[test]
    fn one_period_is_exactly_the_pooled_beta() {
        let cells: Vec<Cell> = [(130.0, 17.0), (125.0, 24.0), (90.0, 9.0)].into_iter().enumerate().map(|(a, (n, x))| counts(0, a, n, x)).collect();
        let exact: Vec<_> = cells.iter().map(|c| crate::stats::bayes::beta_posterior(c.n, c.units, Default::default(), 0.05).expect("beta")).collect();
        let exact = crate::stats::bayes::beta_prob_best(&exact);
        let ours = p_best(&cells, 3);
        for (a, b) in ours.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-9, "{ours:?} vs {exact:?}");
        }
        // The period index does not matter, nor empty periods before it.
        let later: Vec<Cell> = cells.iter().map(|c| Cell { period: 3, ..*c }).collect();
        assert_eq!(p_best(&later, 3), ours);
        // Lower is better: the failures' posterior.
        let r = estimates(3, MetricKind::Proportion, &cells);
        let low = crate::stats::bayes::beta_prob_best(&rate_posteriors(&r, true).expect("posteriors"));
        assert!(low[2] > low[0] && low[0] > low[1], "{low:?}");
    }

    #[test]
    fn a_shared_period_effect_undoes_simpsons_paradox() {
        // Period 0: 120 units per arm at r; period 1: 2000 units at weights 96/1/1/1/1, every
        // rate doubled. Pooled, arm 0 (served mostly in the good period) looks best.
        let r = [0.10, 0.12, 0.08, 0.09, 0.11];
        let shares = [0.96, 0.01, 0.01, 0.01, 0.01];
        let mut cells = Vec::new();
        for a in 0..5 {
            cells.push(counts(0, a, 120.0, 120.0 * r[a]));
            cells.push(counts(1, a, 2000.0 * shares[a], 2000.0 * shares[a] * 2.0 * r[a]));
        }
        let est = estimates(5, MetricKind::Proportion, &cells);
        let pooled_best = (0..5).max_by(|&a, &b| est[a].pooled_mean.unwrap_or(0.0).total_cmp(&est[b].pooled_mean.unwrap_or(0.0)));
        assert_eq!(pooled_best, Some(0), "pooled, the paradox");
        let best = (0..5).max_by(|&a, &b| est[a].weighted_mean.unwrap_or(0.0).total_cmp(&est[b].weighted_mean.unwrap_or(0.0)));
        assert_eq!(best, Some(1), "{est:?}");
        for a in 0..5 {
            // τ averages 1 over the units: θ = r / (2600 / 4600).
            let want = r[a] * 4600.0 / 2600.0;
            let got = est[a].weighted_mean.unwrap_or(0.0);
            assert!((got / want - 1.0).abs() < 0.02, "arm {a}: {got} vs {want}");
        }
    }

    #[test]
    fn no_drift_is_the_pooled_estimate() {
        // The same rates in both periods: τ = 1 (up to the pseudo-observation), e ≈ units.
        let mut cells = Vec::new();
        for (a, rate) in [0.2, 0.3].into_iter().enumerate() {
            cells.push(counts(0, a, 1000.0, 1000.0 * rate));
            cells.push(counts(1, a, 3000.0, 3000.0 * rate));
        }
        let est = estimates(2, MetricKind::Proportion, &cells);
        for (a, rate) in [0.2, 0.3].into_iter().enumerate() {
            assert!((est[a].weighted_mean.unwrap_or(0.0) - rate).abs() < 1e-3, "{est:?}");
            assert!((est[a].effective / est[a].units - 1.0).abs() < 1e-3, "{est:?}");
        }
    }

    #[test]
    fn one_period_is_the_pooled_estimate() {
        let cells = [
            Cell { period: 0, arm: 0, units: 10.0, n: 4.0, sum: 10.0, sum_sq: 30.0 },
            Cell { period: 0, arm: 1, units: 10.0, n: 5.0, sum: 20.0, sum_sq: 90.0 },
        ];
        let r = estimates(2, MetricKind::Mean, &cells);
        assert_eq!(r[0].weighted_mean, r[0].pooled_mean);
        assert_eq!(r[1].weighted_mean, Some(4.0));
        // Sample variance (30 − 100/4)/3 = 5/3; se = √(5/3 / 4).
        assert!((r[0].se.unwrap_or(0.0) - (5.0f64 / 3.0 / 4.0).sqrt()).abs() < 1e-12);
        assert!((r[0].scale - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // Lower is better: the policies see the negated mean.
        assert_eq!(r[1].estimate(true).mean, Some(-4.0));
    }


    #[test]
    fn arms_without_data_have_no_estimate() {
        let r = estimates(3, MetricKind::Mean, &[Cell { period: 0, arm: 0, units: 5.0, n: 1.0, sum: 2.0, sum_sq: 4.0 }]);
        // One value: a mean, but no spread to take a standard error from.
        assert_eq!((r[0].weighted_mean, r[0].se), (Some(2.0), None));
        assert_eq!((r[1].units, r[1].weighted_mean, r[1].pooled_mean), (0.0, None, None));
        assert!(estimates(0, MetricKind::Proportion, &[]).is_empty());
        // A cell naming an arm that does not exist is ignored.
        assert_eq!(estimates(1, MetricKind::Proportion, &[rate_cell(0, 7, 10.0, 0.5)])[0].units, 0.0);
    }
}
