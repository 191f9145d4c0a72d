//! Experiments that watch themselves. For each running experiment the watch job
//! ([`scheduler`]) takes the readout the results page shows (`results::compute`, SQL aggregates
//! only), reduces it to [`rules::Facts`], and:
//! - evaluates the stopping rules ([`rules`]) and carries out each firing's action (notify,
//!   pause, stop, roll back to 0 %);
//! - steps a safe rollout ([`rollout`]): advance while the guardrails hold, roll back on breach;
//! - raises insights ([`insights`]): SRM, guardrail, ready to call, underpowered, exposure-rate
//!   anomalies.
//!
//! Every finding becomes an alert once (`alerts::raise`, keyed), in the same transaction as the
//! action it caused and the audit entry that says why, so a second evaluator or a second look
//! never acts twice.

pub mod insights;
pub mod rollout;
pub mod rules;
pub mod scheduler;

use std::time::Duration;

use chrono::{DateTime, Utc};
use litmus_shared::Status;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use crate::alerts::{self, Alert};
use crate::error::ApiResult;
use crate::experiments::{self, Change, ExperimentRow};
use crate::results::{self, Results, Role};
use insights::{Baseline, Finding};
use rollout::{Decision, Outcome};
use rules::{Action, Facts, Firing, RuleState};

/// Underpowered is judged only once the traffic rate is known well enough.
const POWER_MIN_SECONDS: f64 = 3600.0;
const POWER_MIN_UNITS: i64 = 100;
/// Without a max_duration rule, more than this many days to go is underpowered.
const POWER_DEFAULT_DAYS: f64 = 30.0;
/// The anomaly baseline: up to this many buckets before the last complete one.
const ANOMALY_BASELINE: i64 = 12;

/// What the watch job sees in an experiment now (`GET /experiments/{id}/watch`).
#[derive(Debug, Serialize)]
pub struct Assessment {
    pub experiment: String,
    pub id: String,
    pub status: String,
    pub evaluated_at: DateTime<Utc>,
    pub rules: Vec<RuleState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutView>,
    /// Insights that hold now (each is raised as an alert once).
    pub findings: Vec<Finding>,
    #[serde(skip)]
    firings: Vec<Firing>,
}

#[derive(Debug, Serialize)]
pub struct RolloutView {
    pub plan: rollout::Rollout,
    pub state: Option<rollout::State>,
    pub ramp_pct: f64,
    /// What the schedule would do now.
    pub decision: Option<Decision>,
    pub units_in_step: i64,
}

/// Reads only: the readout, rule states, the rollout's next move and the insights.
pub async fn assess(db: &PgPool, row: &ExperimentRow, anomaly_bucket: Duration) -> ApiResult<Assessment> {
    let results = results::compute(db, row).await?;
    let now = Utc::now();
    let running_seconds = row.started_at.map_or(0.0, |s| (now - s).num_milliseconds() as f64 / 1000.0);
    let facts = Facts::new(&results, &row.metrics.0, running_seconds);
    let (states, firings) = rules::evaluate(&row.rules.0, &facts);
    let mut findings = insights::from_facts(&facts);
    findings.extend(underpowered(row, &results, &facts));
    if row.status() == Status::Running {
        findings.extend(anomaly(db, row, anomaly_bucket, now).await?);
    }
    let rollout = match &row.rollout {
        Some(plan) => {
            let state = row.rollout_state.as_ref().map(|s| s.0.clone());
            let units_in_step = match &state {
                Some(s) => units_since(db, row, s.step_started_at).await?,
                None => 0,
            };
            let decision = state.as_ref().filter(|_| row.status() == Status::Running).map(|s| rollout::decide(&plan.0, s, &facts, units_in_step, now));
            Some(RolloutView { plan: plan.0.clone(), state, ramp_pct: row.ramp_pct, decision, units_in_step })
        }
        None => None,
    };
    Ok(Assessment {
        experiment: row.key.clone(), id: row.id.to_string(), status: row.status.clone(), evaluated_at: now, rules: states, rollout, findings, firings,
    })
}

/// What acting on an assessment did.
#[derive(Debug, Default)]
pub struct Acted {
    pub alerts: Vec<Alert>,
    /// The experiment's config changed: the edge must hear of it.
    pub changed: bool,
}

/// Raises every finding and firing not raised before, and carries out the actions that come with
/// the new ones: each firing and rollout step in its own transaction with the experiment row
/// locked, so the action, its audit entry and its alert commit together.
pub async fn act(db: &PgPool, row: &ExperimentRow, a: &Assessment) -> ApiResult<Acted> {
    let mut acted = Acted::default();
    // Insights act on nothing: one transaction raises those not raised before.
    let mut tx = db.begin().await?;
    for f in &a.findings {
        if let Some(alert) = alerts::raise(&mut tx, row, f, "notify").await? {
            acted.alerts.push(alert);
        }
    }
    tx.commit().await?;
    for firing in &a.firings {
        let finding = Finding {
            kind: "rule",
            severity: if firing.rule.action == Action::Notify { "warning" } else { "critical" },
            key: firing.key.clone(),
            title: firing.title.clone(),
            details: json!({"rule": firing.rule, "index": firing.index, "numbers": firing.details}),
        };
        let mut tx = db.begin().await?;
        let current = experiments::find_for_update(&mut tx, &row.id.to_string()).await?;
        let action = firing.rule.action;
        // A rule acts on a running experiment; on a paused one only `stop` still means something.
        let applies = match (action, current.status()) {
            (Action::Notify, _) => false,
            (Action::Stop, Status::Running | Status::Paused) => true,
            (_, Status::Running) => !(action == Action::Rollback && current.ramp_pct == 0.0),
            _ => false,
        };
        let Some(alert) = alerts::raise(&mut tx, &current, &finding, if applies { action.as_str() } else { "notify" }).await? else {
            continue;
        };
        if applies {
            let why = json!({"reason": format!("stopping rule {}: {}", firing.index + 1, firing.title), "rule": firing.rule,
                             "numbers": firing.details, "alert_id": alert.id});
            let mut change = Change { why: Some(why), ..Change::new(Status::Running, "rule") };
            match action {
                Action::Pause => change.to = Status::Paused,
                Action::Stop => change.to = Status::Stopped,
                Action::Rollback => {
                    change.ramp_pct = Some(0.0);
                    change.rollout_state = current.rollout_state.as_ref().map(|s| rollout::State {
                        outcome: Outcome::RolledBack, reason: Some(firing.title.clone()), ..s.0.clone()
                    });
                }
                Action::Notify => {}
            }
            experiments::transition(&mut tx, &row.id.to_string(), change).await?;
            acted.changed = true;
        }
        tx.commit().await?;
        acted.alerts.push(alert);
    }
    if let Some(view) = &a.rollout
        && let (Some(decision), Some(state)) = (&view.decision, &view.state)
    {
        step_rollout(db, row, view, state, decision, &mut acted).await?;
    }
    Ok(acted)
}

async fn step_rollout(db: &PgPool, row: &ExperimentRow, view: &RolloutView, state: &rollout::State, decision: &Decision, acted: &mut Acted) -> ApiResult<()> {
    let now = Utc::now();
    let (finding, ramp, next) = match decision {
        Decision::Hold { .. } => return Ok(()),
        Decision::Advance { from_pct, to_pct, step } => (
            Finding {
                kind: "rollout", severity: "info", key: format!("rollout:step:{step}"),
                title: format!("safe rollout advanced from {from_pct} % to {to_pct} %: guardrails hold and the sample ratio matches"),
                details: json!({"step": step + 1, "from_pct": from_pct, "to_pct": to_pct, "units_in_step": view.units_in_step}),
            },
            Some(*to_pct),
            rollout::State { step: *step, step_started_at: now, outcome: Outcome::Ramping, reason: None },
        ),
        Decision::Complete { ramp_pct } => (
            Finding {
                kind: "rollout", severity: "info", key: "rollout:complete".into(),
                title: format!("safe rollout complete at {ramp_pct} %: every step held"),
                details: json!({"ramp_pct": ramp_pct, "steps": view.plan.steps.len()}),
            },
            None,
            rollout::State { outcome: Outcome::Complete, reason: Some("every step held".into()), ..state.clone() },
        ),
        Decision::Rollback { reason, breaches, srm_p } => (
            Finding {
                kind: "rollout", severity: "critical", key: "rollout:rollback".into(),
                title: format!("safe rollout rolled back to 0 %: {reason}"),
                details: json!({"reason": reason, "breaches": breaches, "srm_p": srm_p, "from_pct": view.ramp_pct, "step": state.step + 1}),
            },
            Some(0.0),
            rollout::State { outcome: Outcome::RolledBack, reason: Some(reason.clone()), ..state.clone() },
        ),
    };
    let mut tx = db.begin().await?;
    let current = experiments::find_for_update(&mut tx, &row.id.to_string()).await?;
    // Someone (or another evaluator) moved it meanwhile: this look is stale.
    if current.status() != Status::Running || current.rollout_state.as_ref().map(|s| &s.0) != Some(state) {
        return Ok(());
    }
    let action = match decision {
        Decision::Advance { .. } => "advance",
        Decision::Complete { .. } => "complete",
        _ => "rollback",
    };
    let Some(alert) = alerts::raise(&mut tx, &current, &finding, action).await? else {
        return Ok(());
    };
    let why = json!({"reason": finding.title, "rollout": finding.details, "alert_id": alert.id});
    let change = Change { ramp_pct: ramp, why: Some(why), rollout_state: Some(next), ..Change::new(Status::Running, "rollout") };
    experiments::transition(&mut tx, &row.id.to_string(), change).await?;
    tx.commit().await?;
    acted.changed = true;
    acted.alerts.push(alert);
    Ok(())
}

/// Exposed units whose first exposure is at or after `since`.
async fn units_since(db: &PgPool, row: &ExperimentRow, since: DateTime<Utc>) -> ApiResult<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM unit_metrics WHERE experiment_id = $1 AND kind = 1 AND variant_key IS NOT NULL AND split_ts >= $2")
        .bind(row.id)
        .bind(since)
        .fetch_one(db)
        .await?)
}

/// Primary metrics with a planned `mde`: how many more days today's traffic needs.
fn underpowered(row: &ExperimentRow, results: &Results, f: &Facts) -> Vec<Finding> {
    if f.running_seconds < POWER_MIN_SECONDS || f.units < POWER_MIN_UNITS {
        return Vec::new();
    }
    let allowance = row.rules.0.iter().filter_map(|r| r.days).fold(f64::INFINITY, f64::min);
    let (limit, why) = if allowance.is_finite() {
        (allowance - f.running_seconds / 86_400.0, "the max_duration rule leaves")
    } else {
        (POWER_DEFAULT_DAYS, "more than")
    };
    let Some(control) = results.variants.first() else { return Vec::new() };
    row.metrics.0.iter().filter(|d| d.role == Role::Primary).filter_map(|d| {
        let mde = d.mde?;
        let baseline = match (control.metrics.get(&d.name), control.conversions.get(&d.name)) {
            (Some(m), _) if d.kind != Some(results::MetricKind::Proportion) => Baseline::Mean { mean: m.mean?, sd: m.std? },
            (_, Some(c)) => Baseline::Rate(c.rate?),
            _ => return None,
        };
        let p = insights::days_needed(baseline, mde, f.arms, f.units, f.running_seconds)?;
        (p.more_days > limit).then(|| Finding {
            kind: "underpowered", severity: "warning", key: format!("underpowered:{}", d.name),
            title: format!("`{}` needs {:.1} more days at today's {:.0} units a day to detect a {:.1} % effect ({why} {:.1})",
                           d.name, p.more_days, p.units_per_day, mde * 100.0, limit.max(0.0)),
            details: json!({"metric": d.name, "mde": mde, "power": 0.8, "alpha": rules::ALPHA, "limit_days": limit, "estimate": p}),
        })
    }).collect()
}

/// The exposure rate of the last complete bucket against up to [`ANOMALY_BASELINE`] before it,
/// all after the experiment's last config change (a ramp or a reweight moves the rate on purpose).
async fn anomaly(db: &PgPool, row: &ExperimentRow, bucket: Duration, now: DateTime<Utc>) -> ApiResult<Option<Finding>> {
    let w = bucket.as_secs().max(1) as i64;
    let since = row.started_at.map_or(row.updated_at, |s| s.max(row.updated_at)).timestamp();
    let end = now.timestamp().div_euclid(w) * w;
    let first = (end - (ANOMALY_BASELINE + 1) * w).max((since + w - 1).div_euclid(w) * w);
    let n = (end - first) / w;
    if n < insights::MIN_BASELINE_BUCKETS as i64 + 1 {
        return Ok(None);
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT (floor(extract(epoch FROM split_ts) / $4))::int8, count(*) FROM unit_metrics
         WHERE experiment_id = $1 AND kind = 1 AND variant_key IS NOT NULL AND split_ts >= to_timestamp($2) AND split_ts < to_timestamp($3)
         GROUP BY 1",
    )
    .bind(row.id)
    .bind(first as f64)
    .bind(end as f64)
    .bind(w as f64)
    .fetch_all(db)
    .await?;
    let mut counts = vec![0i64; n as usize];
    for (b, c) in rows {
        if let Some(slot) = usize::try_from(b - first / w).ok().and_then(|i| counts.get_mut(i)) {
            *slot = c;
        }
    }
    let Some(a) = insights::exposure_anomaly(&counts) else { return Ok(None) };
    let at = DateTime::from_timestamp(end - w, 0).unwrap_or(now);
    Ok(Some(Finding {
        kind: "anomaly", severity: "warning",
        // At most one alert per direction an hour while it lasts.
        key: format!("anomaly:{}:{}", a.direction, at.format("%Y-%m-%dT%H")),
        title: format!("exposure rate {}: {} new units in the last {w} s against {:.0} expected from the {} before",
                       if a.direction == "drop" { "dropped" } else { "spiked" }, a.observed, a.expected, a.baseline_buckets),
        details: json!({"bucket_start": at, "bucket_seconds": w, "anomaly": a, "counts": counts}),
    }))
}
