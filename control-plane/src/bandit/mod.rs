//! Bandits that steer traffic. A `type: "bandit"` experiment carries a policy ([`Settings`]);
//! the reweighting job ([`scheduler`]) recomputes its weights on the policy's cadence from the
//! same per-unit aggregates the results read, stores each weight vector it serves as a version
//! (`bandit_weights`, [`history`]), writes the audit log, and publishes the experiment to the
//! edge like any change.
//!
//! The evidence is weighted across reweighting periods ([`periods`]): once weights move, pooled
//! per-arm means are biased. The reward is the experiment's declared primary metric (`metrics`,
//! with its direction), else its first conversion metric, else its first mean metric.
//!
//! - [`policy`]: Thompson sampling, UCB1, ε-greedy; floors, minimum units, exploration. Pure.
//! - [`periods`]: each arm's reward net of the period effects, its effective exposure.
//! - [`scheduler`]: the background job, one leader among control planes.
//! - `closed_loop` (tests): the bandit in a seeded closed loop, through the code above.

#[cfg(test)]
mod closed_loop;
pub mod periods;
pub mod policy;
pub mod scheduler;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use litmus_shared::Variant;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::types::Json as Db;
use uuid::Uuid;

pub use policy::{Policy, Settings, Stage};

use crate::error::{ApiError, ApiResult};
use crate::experiments::{COLUMNS, ExperimentRow, find_for_update, record};
use crate::results::{Direction, MetricKind, Role};
use crate::stats::bayes;
use periods::ArmReward;

/// P(best) at which the leading arm is called the winner.
pub const CONVERGED_AT: f64 = 0.95;
/// Weights closer than this (every arm) to the ones served are not republished: a new version
/// for a change of a tenth of a percent would only churn the edge.
pub const MIN_CHANGE: f64 = 0.001;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reward {
    pub name: String,
    pub kind: MetricKind,
    pub direction: Direction,
}

#[derive(Debug, Serialize)]
pub struct Readout {
    pub experiment: String,
    pub status: String,
    /// The reward; `null` before any metric or conversion event.
    pub metric: Option<Reward>,
    pub policy: Settings,
    /// Where the policy stands: `exploring`, `min_units`, `no_evidence` or `adapting`.
    pub stage: Stage,
    pub variants: Vec<Arm>,
    pub top_variant: Option<String>,
    pub converged: bool,
    pub converged_at: f64,
    /// Expected reward lost so far against having served the arm now estimated best to every
    /// unit (from the period-weighted means); `null` until every arm has an estimate.
    pub regret: Option<Regret>,
    /// Reweighting periods the estimates weigh (1 before the first reweight).
    pub periods: usize,
    /// The latest weight version (`GET .../bandit/history`), 0 before any.
    pub weights_version: i32,
    pub reweighted_at: Option<DateTime<Utc>>,
    /// Every weight version served: `{seq, at, weights, previous}` (with the evidence:
    /// `.../bandit/history`).
    pub weight_history: Vec<HistoryPoint>,
    /// The sample-ratio check against the weights each period served (the results' `srm`);
    /// `None` while the weights never moved.
    #[serde(skip)]
    pub srm: Option<crate::stats::srm::Srm>,
    /// How the estimates are made, for whoever reads the numbers.
    pub method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Arm {
    pub key: String,
    /// Distinct exposed units.
    pub exposures: i64,
    /// Pooled over every unit (the results page's number: biased once weights moved).
    pub mean: Option<f64>,
    /// Period-weighted: what the policy and `win_probability` use.
    pub weighted_mean: Option<f64>,
    pub win_probability: f64,
    /// The weight the edge serves now.
    pub weight: f64,
    /// Same as `weight` (kept for earlier clients).
    pub serving_weight: f64,
    /// What the policy would serve from this evidence (the next reweight publishes it).
    pub proposed_weight: f64,
}

#[derive(Debug, Serialize)]
pub struct Regret {
    pub best_variant: String,
    /// Σ over arms of units × (best mean − arm mean), in the reward's units (conversions for
    /// rates).
    pub expected: f64,
    pub per_unit: f64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct HistoryPoint {
    pub seq: i32,
    pub at: DateTime<Utc>,
    /// The experiment version that serves these weights: exposures served from it or later
    /// belong to this period.
    pub experiment_version: i64,
    pub weights: Db<BTreeMap<String, f64>>,
    /// The weights these replaced (the launch's, for the first).
    pub previous: Db<BTreeMap<String, f64>>,
}

/// One weight version, as stored.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Version {
    pub seq: i32,
    pub computed_at: DateTime<Utc>,
    pub experiment_version: i64,
    pub policy: String,
    pub stage: String,
    pub weights: Db<BTreeMap<String, f64>>,
    /// The weights served before these (the launch's, for the first version).
    pub previous: Db<BTreeMap<String, f64>>,
    pub arms: Db<Value>,
}

/// An experiment's settings: as stored, else the defaults.
pub fn settings_of(row: &ExperimentRow) -> Settings {
    row.bandit.as_ref().map(|b| b.0.clone()).unwrap_or_default()
}

/// The declared primary metric, else the first conversion metric, else the first mean metric
/// with data.
pub async fn reward(db: &PgPool, row: &ExperimentRow) -> ApiResult<Option<Reward>> {
    let seen: Vec<(i16, String)> = sqlx::query_as(
        "SELECT DISTINCT kind, metric FROM arm_stats WHERE experiment_id = $1 AND kind IN (2, 3) AND units <> 0 ORDER BY kind DESC, metric",
    )
    .bind(row.id)
    .fetch_all(db)
    .await?;
    let code = |k: MetricKind| if k == MetricKind::Mean { 2 } else { 3 };
    if let Some(d) = row.metrics.0.iter().find(|d| d.role == Role::Primary) {
        // Undeclared kind: whichever kind of event the metric has (conversions first).
        let kind = d.kind.or_else(|| [MetricKind::Proportion, MetricKind::Mean].into_iter().find(|&k| seen.iter().any(|(c, m)| *c == code(k) && *m == d.name)));
        return Ok(Some(Reward { name: d.name.clone(), kind: kind.unwrap_or(MetricKind::Proportion), direction: d.direction }));
    }
    Ok(seen.into_iter().next().map(|(c, name)| Reward {
        name,
        kind: if c == 3 { MetricKind::Proportion } else { MetricKind::Mean },
        direction: Direction::Increase,
    }))
}

/// Every weight version of an experiment, oldest first.
pub async fn history(db: &PgPool, experiment: Uuid) -> ApiResult<Vec<Version>> {
    Ok(sqlx::query_as(
        "SELECT seq, computed_at, experiment_version, policy, stage, weights, previous, arms FROM bandit_weights
         WHERE experiment_id = $1 ORDER BY seq",
    )
    .bind(experiment)
    .fetch_all(db)
    .await?)
}

/// The bandit readout of `row` (a bandit experiment), caught up to every acknowledged event.
pub async fn readout(db: &PgPool, row: &ExperimentRow) -> ApiResult<Readout> {
    if row.kind != "bandit" {
        return Err(ApiError::Conflict(format!(
            "`{}` is an A/B experiment (type `{}`); the bandit readout is for type `bandit` (its results are at /results)",
            row.key, row.kind
        )));
    }
    crate::rollup::catch_up(db).await?;
    let settings = settings_of(row);
    let keys: Vec<String> = row.variants.0.iter().map(|v| v.key.clone()).collect();
    let k = keys.len();
    // The history as of `row`: a reweight committed since it was read must not show beside the
    // weights it replaced (the readout is one moment, whatever commits in between).
    let versions: Vec<HistoryPoint> = sqlx::query_as(
        "SELECT seq, computed_at AS at, experiment_version, weights, previous FROM bandit_weights
         WHERE experiment_id = $1 AND experiment_version <= $2 ORDER BY seq",
    )
    .bind(row.id)
    .bind(row.version)
    .fetch_all(db)
    .await?;
    let boundaries: Vec<DateTime<Utc>> = versions.iter().map(|v| v.at).collect();
    let served: Vec<i64> = versions.iter().map(|v| v.experiment_version).collect();
    let reward = reward(db, row).await?;
    let (rewards, cells) = match &reward {
        Some(r) => {
            let cells = periods::cells(db, row.id, &keys, r.kind, &r.name, &served, &boundaries).await?;
            (periods::estimates(k, r.kind, &cells), cells)
        }
        None => {
            // Exposures still count without a reward.
            let cells = periods::cells(db, row.id, &keys, MetricKind::Proportion, "", &served, &boundaries).await?;
            (periods::estimates(k, MetricKind::Proportion, &cells).into_iter().map(|a| ArmReward { pooled_mean: None, weighted_mean: None, se: None, ..a }).collect(), cells)
        }
    };
    let lower_is_better = reward.as_ref().is_some_and(|r| r.direction == Direction::Decrease);
    let estimates: Vec<policy::Estimate> = rewards.iter().map(|a| a.estimate(lower_is_better)).collect();
    let used_periods = cells.iter().filter(|c| c.units > 0.0).map(|c| c.period).collect::<std::collections::BTreeSet<_>>().len().max(1);

    let probs = match &reward {
        None => Err("no metric or conversion events yet".to_owned()),
        Some(r) => win_probabilities(r, &rewards, &estimates),
    };
    let (probs, note) = match probs {
        Ok(p) => (p, None),
        Err(reason) => (vec![1.0 / k.max(1) as f64; k], Some(format!("not enough data: {reason}"))),
    };
    let elapsed = row.started_at.map_or(0.0, |t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0);
    let serving: Vec<f64> = row.variants.0.iter().map(|v| v.weight).collect();
    let proposal = policy::propose(&settings, &estimates, note.is_none().then_some(probs.as_slice()), &serving, elapsed);
    let top = note.is_none().then(|| probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, p)| (i, *p))).flatten();
    let regret = top.and_then(|(best, _)| regret(&keys, &rewards, &estimates, best));
    let srm = versions.first().and_then(|first| {
        let mut period_units = vec![0.0; versions.len() + 1];
        for c in &cells {
            if let Some(n) = period_units.get_mut(c.period) {
                *n += c.units;
            }
        }
        let as_vec = |w: &BTreeMap<String, f64>| keys.iter().map(|k| w.get(k).copied().unwrap_or(0.0)).collect::<Vec<f64>>();
        let period_weights: Vec<Vec<f64>> = std::iter::once(as_vec(&first.previous.0)).chain(versions.iter().map(|v| as_vec(&v.weights.0))).collect();
        let observed: Vec<u64> = rewards.iter().map(|r| r.units.max(0.0) as u64).collect();
        crate::stats::srm::srm_periods(&period_units, &period_weights, &observed)
    });
    Ok(Readout {
        experiment: row.key.clone(),
        status: row.status.clone(),
        metric: reward,
        policy: settings,
        stage: proposal.stage,
        variants: row
            .variants
            .0
            .iter()
            .enumerate()
            .map(|(i, v)| Arm {
                key: v.key.clone(),
                exposures: rewards[i].units as i64,
                mean: rewards[i].pooled_mean,
                weighted_mean: rewards[i].weighted_mean,
                win_probability: probs[i],
                weight: v.weight,
                serving_weight: v.weight,
                proposed_weight: proposal.weights[i],
            })
            .collect(),
        top_variant: top.map(|(i, _)| keys[i].clone()),
        converged: top.is_some_and(|(_, p)| p >= CONVERGED_AT),
        converged_at: CONVERGED_AT,
        regret,
        periods: used_periods,
        weights_version: versions.last().map_or(0, |v| v.seq),
        reweighted_at: versions.last().map(|v| v.at),
        weight_history: versions,
        srm,
        method: "reward = arm effect × period effect shared by all arms (fitted by alternating updates), each unit \
                 counting as its period's effect (effective exposure); P(best) exact under Beta(1 + x, 1 + e − x) \
                 posteriors for rates over any number of periods, Gaussian on the arm effects for means",
        note,
    })
}

/// P(each arm is best), higher being better: exact under Beta posteriors on the effective
/// exposure for rates (with one period, the results page's numbers), Gaussian on the arm effects
/// for means.
fn win_probabilities(reward: &Reward, rewards: &[ArmReward], estimates: &[policy::Estimate]) -> Result<Vec<f64>, String> {
    if reward.kind == MetricKind::Proportion {
        let posteriors = periods::rate_posteriors(rewards, reward.direction == Direction::Decrease)?;
        return Ok(bayes::beta_prob_best(&posteriors));
    }
    let arms: Option<Vec<(f64, f64)>> = estimates.iter().map(|e| Some((e.mean?, e.se?))).collect();
    let arms = arms.ok_or("every arm needs a reward mean with a spread")?;
    bayes::normal_prob_best(&arms).map_err(|e| e.reason)
}

/// What serving the others instead of `best` (the arm most probably best, `top_variant`) cost:
/// Σ over arms of their effective exposure × (θ_best − θ_arm), in the reward's units
/// (conversions for rates, the metric's total for means), never negative.
fn regret(keys: &[String], rewards: &[ArmReward], estimates: &[policy::Estimate], best: usize) -> Option<Regret> {
    let means: Vec<f64> = estimates.iter().map(|e| e.mean).collect::<Option<_>>()?;
    let top = *means.get(best)?;
    let units: f64 = rewards.iter().map(|r| r.units).sum();
    let expected: f64 = rewards.iter().zip(&means).map(|(r, m)| r.effective * (top - m).max(0.0)).sum();
    Some(Regret { best_variant: keys[best].clone(), expected, per_unit: if units > 0.0 { expected / units } else { 0.0 } })
}

/// Recomputes a running bandit's weights and, when they moved by [`MIN_CHANGE`] or more, serves
/// them: a new experiment version, a weight version, an audit entry, in one transaction. The
/// caller publishes. `None`: nothing changed (or the experiment is no longer a running bandit).
pub async fn reweight(db: &PgPool, experiment: Uuid) -> ApiResult<Option<Version>> {
    let id = experiment.to_string();
    let row = crate::experiments::find(db, &id).await?;
    if row.kind != "bandit" || row.status != "running" {
        return Ok(None);
    }
    let readout = readout(db, &row).await?;
    let proposed: Vec<f64> = readout.variants.iter().map(|a| a.proposed_weight).collect();
    let serving: Vec<f64> = row.variants.0.iter().map(|v| v.weight).collect();
    if proposed.len() != serving.len() || proposed.iter().zip(&serving).all(|(p, s)| (p - s).abs() < MIN_CHANGE) {
        return Ok(None);
    }

    let mut tx = db.begin().await?;
    let locked = find_for_update(&mut tx, &id).await?;
    // Changed meanwhile (a pause, a patch, another reweight): the next round sees it.
    if locked.version != row.version || locked.status != "running" {
        return Ok(None);
    }
    let variants: Vec<Variant> = row.variants.0.iter().zip(&proposed).map(|(v, &w)| Variant { weight: w, ..v.clone() }).collect();
    let updated = sqlx::query_as::<_, ExperimentRow>(&format!(
        "UPDATE experiments SET variants = $2, version = version + 1, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(row.id)
    .bind(Db(&variants))
    .fetch_one(&mut *tx)
    .await?;
    let weights: BTreeMap<String, f64> = variants.iter().map(|v| (v.key.clone(), v.weight)).collect();
    let arms: Vec<Value> = readout
        .variants
        .iter()
        .map(|a| json!({"key": a.key, "units": a.exposures, "mean": a.mean, "weighted_mean": a.weighted_mean, "win_probability": a.win_probability}))
        .collect();
    let policy = serde_json::to_value(readout.policy.policy).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let stage = serde_json::to_value(readout.stage).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let previous: BTreeMap<String, f64> = row.variants.0.iter().map(|v| (v.key.clone(), v.weight)).collect();
    let version: Version = sqlx::query_as(
        "INSERT INTO bandit_weights (experiment_id, seq, experiment_version, policy, stage, weights, previous, arms)
         SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5, $7, $6 FROM bandit_weights WHERE experiment_id = $1
         RETURNING seq, computed_at, experiment_version, policy, stage, weights, previous, arms",
    )
    .bind(row.id)
    .bind(updated.version)
    .bind(&policy)
    .bind(&stage)
    .bind(Db(&weights))
    .bind(Db(Value::Array(arms)))
    .bind(Db(&previous))
    .fetch_one(&mut *tx)
    .await?;
    record(
        &mut tx,
        &updated,
        "reweight",
        Some(litmus_shared::Status::Running),
        "bandit",
        json!({"policy": policy, "stage": stage, "weights_version": version.seq, "weights": weights, "previous": previous,
               "metric": readout.metric, "top_variant": readout.top_variant}),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(version))
}
