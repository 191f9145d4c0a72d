//! `GET /api/v1/experiments/{id}/bandit`: the readout of a `type: "bandit"` experiment — per arm
//! its exposures, reward mean, probability of being the best arm, and the traffic share Thompson
//! sampling gives it — plus the leading arm and whether the race is decided.
//!
//! The reward is the experiment's declared primary metric (`metrics` on create/patch, with its
//! direction), else its first conversion metric, else its first mean metric. The numbers are
//! the results' (`results::compute`: same unit-level definitions, same aggregates, caught up to
//! every acknowledged event):
//! - conversions: Beta(1, 1) prior per arm, P(best) exact by quadrature (`stats::bayes`);
//! - means: each arm's mean ~ N(x̄, s²/n), P(best) likewise.
//!
//! `weight` is the Thompson-sampling allocation: an arm's probability of being best, floored at
//! [`MIN_WEIGHT`] so that no arm is starved before the evidence is in, renormalised to sum to 1.
//! The serving weights (`serving_weight`) change only when someone PATCHes or relaunches them.
//! `converged` is `top_variant`'s probability of being best reaching [`CONVERGED_AT`].

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::experiments::find;
use crate::results::{self, Direction, MetricKind, Results, Role};
use super::{ApiError, ApiResult, AppState};
use crate::stats::bayes::{self, BetaPrior};
use crate::stats::{self, NotEnoughData};

pub fn router() -> Router<AppState> {
    Router::new().route("/experiments/{id}/bandit", get(bandit))
}

/// Every arm keeps at least this share of traffic: enough to notice if early luck misled.
pub const MIN_WEIGHT: f64 = 0.01;
/// P(best) at which the leading arm is called the winner.
pub const CONVERGED_AT: f64 = 0.95;

#[derive(Debug, Serialize)]
pub struct Bandit {
    pub experiment: String,
    pub status: String,
    /// The reward: `{name, kind: "proportion" | "mean", direction}`; `null` before any metric or
    /// conversion event (then every arm is equally likely to be best).
    pub metric: Option<Reward>,
    pub variants: Vec<Arm>,
    pub top_variant: Option<String>,
    pub converged: bool,
    pub converged_at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reward {
    pub name: String,
    pub kind: MetricKind,
    pub direction: Direction,
}

#[derive(Debug, Serialize)]
pub struct Arm {
    pub key: String,
    /// Distinct exposed units.
    pub exposures: i64,
    /// Conversion rate, or mean per unit with the metric; `null` without data.
    pub mean: Option<f64>,
    pub win_probability: f64,
    /// Thompson-sampling share of traffic.
    pub weight: f64,
    /// The weight the experiment serves with now.
    pub serving_weight: f64,
}

async fn bandit(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Bandit>> {
    let row = find(&state.db, &id).await?;
    if row.kind != "bandit" {
        return Err(ApiError::Conflict(format!(
            "`{}` is an A/B experiment (type `{}`); the bandit readout is for type `bandit` (its results are at /results)",
            row.key, row.kind
        )));
    }
    let doc = results::compute(&state.db, &row).await?;
    Ok(Json(readout(&doc, reward(&doc, &row.metrics.0))))
}

/// The declared primary metric, else the first conversion metric, else the first mean metric.
fn reward(doc: &Results, decls: &[results::MetricDecl]) -> Option<Reward> {
    let has = |name: &str, kind: MetricKind| {
        doc.variants.iter().any(|v| match kind {
            MetricKind::Proportion => v.conversions.contains_key(name),
            MetricKind::Mean => v.metrics.contains_key(name),
        })
    };
    if let Some(d) = decls.iter().find(|d| d.role == Role::Primary) {
        // Undeclared kind: whichever kind of event the metric has (conversions first).
        let kind = d.kind.or_else(|| [MetricKind::Proportion, MetricKind::Mean].into_iter().find(|&k| has(&d.name, k)));
        return Some(Reward { name: d.name.clone(), kind: kind.unwrap_or(MetricKind::Proportion), direction: d.direction });
    }
    let first = |kind: MetricKind| {
        doc.variants.first().and_then(|v| match kind {
            MetricKind::Proportion => v.conversions.keys().next(),
            MetricKind::Mean => v.metrics.keys().next(),
        })
    };
    [MetricKind::Proportion, MetricKind::Mean]
        .into_iter()
        .find_map(|kind| first(kind).map(|name| Reward { name: name.clone(), kind, direction: Direction::Increase }))
}

pub fn readout(doc: &Results, reward: Option<Reward>) -> Bandit {
    let k = doc.variants.len();
    let (means, probs) = match &reward {
        Some(r) => arm_probabilities(doc, r),
        None => (vec![None; k], Err(NotEnoughData::new("no metric or conversion events yet"))),
    };
    let (probs, note) = match probs {
        Ok(p) => (p, None),
        // Without evidence every arm is equally likely to be best.
        Err(e) => (vec![1.0 / k as f64; k], Some(format!("not enough data: {}", e.reason))),
    };
    let weights = thompson_weights(&probs);
    let top = note.is_none().then(|| probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, p)| (i, *p))).flatten();
    Bandit {
        experiment: doc.experiment.clone(),
        status: doc.status.clone(),
        metric: reward,
        variants: doc
            .variants
            .iter()
            .zip(means)
            .zip(probs.iter().zip(&weights))
            .map(|((v, mean), (&p, &w))| Arm { key: v.key.clone(), exposures: v.exposures, mean, win_probability: p, weight: w, serving_weight: v.weight })
            .collect(),
        top_variant: top.map(|(i, _)| doc.variants[i].key.clone()),
        converged: top.is_some_and(|(_, p)| p >= CONVERGED_AT),
        converged_at: CONVERGED_AT,
        note,
    }
}

/// Each arm's reward mean and P(best), "best" following the reward's direction.
fn arm_probabilities(doc: &Results, r: &Reward) -> (Vec<Option<f64>>, stats::Outcome<Vec<f64>>) {
    let lower_is_better = r.direction == Direction::Decrease;
    match r.kind {
        MetricKind::Proportion => {
            let counts: Vec<(f64, f64)> = doc
                .variants
                .iter()
                .map(|v| (v.conversions.get(&r.name).map_or(0.0, |c| c.units as f64), v.exposures as f64))
                .collect();
            let means = counts.iter().map(|&(x, n)| (n > 0.0).then(|| x / n)).collect();
            let posteriors: stats::Outcome<Vec<bayes::BetaArm>> = counts
                .iter()
                .map(|&(x, n)| {
                    // P(lowest rate) is P(highest failure rate): the same posterior, mirrored.
                    let (x, n) = if lower_is_better { (n - x, n) } else { (x, n) };
                    bayes::beta_posterior(x, n, BetaPrior::default(), 0.05)
                })
                .collect();
            (means, posteriors.map(|p| bayes::beta_prob_best(&p)))
        }
        MetricKind::Mean => {
            let summaries: Vec<Option<&results::MetricSummary>> = doc.variants.iter().map(|v| v.metrics.get(&r.name)).collect();
            let means = summaries.iter().map(|s| s.and_then(|s| s.mean)).collect();
            let sign = if lower_is_better { -1.0 } else { 1.0 };
            let arms: Vec<(f64, f64)> = summaries
                .iter()
                .map(|s| match s.and_then(|s| Some((s.mean?, s.std?, s.units))) {
                    Some((mean, std, n)) if n > 0 => (sign * mean, std / (n as f64).sqrt()),
                    _ => (f64::NAN, f64::NAN),
                })
                .collect();
            (means, bayes::normal_prob_best(&arms))
        }
    }
}

/// Thompson sampling's allocation (a share equal to P(best)), with every arm kept at
/// [`MIN_WEIGHT`] or more, summing to 1.
pub fn thompson_weights(probs: &[f64]) -> Vec<f64> {
    let k = probs.len();
    if k == 0 {
        return Vec::new();
    }
    let floor = MIN_WEIGHT.min(1.0 / k as f64);
    // Arms below the floor are raised to it; the rest share what is left in proportion to P(best).
    let mut fixed = vec![false; k];
    loop {
        let free_mass: f64 = probs.iter().zip(&fixed).filter(|(_, f)| !**f).map(|(p, _)| p.max(0.0)).sum();
        let left = 1.0 - floor * fixed.iter().filter(|f| **f).count() as f64;
        let share = |p: f64| if free_mass > 0.0 { left * p.max(0.0) / free_mass } else { left / fixed.iter().filter(|f| !**f).count() as f64 };
        let newly: Vec<usize> = (0..k).filter(|&i| !fixed[i] && share(probs[i]) < floor).collect();
        if newly.is_empty() {
            return (0..k).map(|i| if fixed[i] { floor } else { share(probs[i]) }).collect();
        }
        for i in newly {
            fixed[i] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn weights_follow_win_probabilities_above_the_floor() {
        assert!(close(&thompson_weights(&[0.2, 0.3, 0.5]), &[0.2, 0.3, 0.5]));
        // A hopeless arm keeps 1%; the others share the remaining 99% in proportion.
        let w = thompson_weights(&[0.0, 0.25, 0.75]);
        assert!(close(&w, &[0.01, 0.99 * 0.25, 0.99 * 0.75]), "{w:?}");
        // Raising one arm to the floor can push another below it.
        let w = thompson_weights(&[0.0, 0.0101, 0.9899]);
        assert!(close(&w, &[0.01, 0.01, 0.98]), "{w:?}");
        assert!(close(&thompson_weights(&[0.0, 0.0]), &[0.5, 0.5]));
        assert!(thompson_weights(&[]).is_empty());
    }

    #[test]
    fn weights_always_sum_to_one_and_respect_the_floor() {
        for probs in [vec![1.0, 0.0, 0.0, 0.0, 0.0], vec![0.6, 0.4], vec![0.999, 0.0005, 0.0005], vec![0.0; 200]] {
            let w = thompson_weights(&probs);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{probs:?} → {w:?}");
            let floor = MIN_WEIGHT.min(1.0 / probs.len() as f64);
            assert!(w.iter().all(|&x| x >= floor - 1e-12), "{probs:?} → {w:?}");
        }
    }
}
