//! Experiments as stored: the row, its lookups and the audit log. The HTTP routes
//! (`http::experiments`), the publisher and the background jobs share these.

use chrono::{DateTime, Utc};
use litmus_shared::{Experiment, ExperimentType, LayerSlot, Status, Targeting, Variant};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::types::Json as Db;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::results::MetricDecl;
use crate::watch::rollout::{Outcome as RolloutOutcome, Rollout, State as RolloutState};
use crate::watch::rules::Rule;

/// An experiment as stored and as the API returns it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ExperimentRow {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub description: String,
    pub owner_team: String,
    pub created_by: String,
    pub unit_type: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status: String,
    pub version: i64,
    pub ramp_pct: f64,
    pub targeting: Db<Value>,
    pub variants: Db<Vec<Variant>>,
    pub salt: String,
    pub hash_version: i32,
    pub layer: Option<Db<LayerSlot>>,
    /// Metric roles for the readout (see `results::MetricDecl`); default: queries that do not
    /// select the column (the edge publisher) need not.
    #[sqlx(default)]
    pub metrics: Db<Vec<MetricDecl>>,
    /// Bandit policy settings (`type: "bandit"` only; `null` for A/B experiments).
    #[sqlx(default)]
    pub bandit: Option<Db<crate::bandit::Settings>>,
    /// Bumped to re-randomise units that keep their first variant (sticky assignments).
    #[sqlx(default)]
    pub bucket_version: i32,
    /// Stopping rules the watch job evaluates (`watch::rules`).
    #[sqlx(default)]
    pub rules: Db<Vec<Rule>>,
    /// A safe rollout's schedule (`watch::rollout`) and where it stands (written by the job).
    #[sqlx(default)]
    pub rollout: Option<Db<Rollout>>,
    #[sqlx(default)]
    pub rollout_state: Option<Db<RolloutState>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

impl ExperimentRow {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Draft)
    }

    /// The engine's view of this experiment (what `assign` and the edge evaluate).
    pub fn to_engine(&self) -> ApiResult<Experiment> {
        let targeting = Targeting::parse(&self.targeting.0)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored targeting of {} is invalid: {e}", self.key)))?;
        Ok(Experiment {
            id: Some(self.id.to_string()),
            key: self.key.clone(),
            kind: if self.kind == "bandit" { ExperimentType::Bandit } else { ExperimentType::Ab },
            unit_type: self.unit_type.clone(),
            status: self.status(),
            version: self.version,
            ramp_pct: self.ramp_pct,
            targeting,
            variants: self.variants.0.clone(),
            salt: Some(self.salt.clone()),
            hash_version: u32::try_from(self.hash_version).unwrap_or(0),
            layer: self.layer.as_ref().map(|l| l.0.clone()),
            bucket_version: i64::from(self.bucket_version),
        })
    }

    pub fn control(&self) -> &str {
        self.variants.0.first().map_or("", |v| v.key.as_str())
    }
}

/// Every column of `ExperimentRow`, for queries that load whole experiments.
pub const COLUMNS: &str = "id, key, name, description, owner_team, created_by, unit_type, type, status, version, ramp_pct, \
                           targeting, variants, salt, hash_version, layer, metrics, bandit, bucket_version, rules, rollout, rollout_state, created_at, updated_at, started_at, stopped_at";

/// Loads by uuid or by key; 404 when neither matches.
pub async fn find(db: &PgPool, id_or_key: &str) -> ApiResult<ExperimentRow> {
    select_one(db, id_or_key, "").await
}

/// [`find`], locking the row for the rest of the transaction.
pub async fn find_for_update(tx: &mut Transaction<'_, Postgres>, id_or_key: &str) -> ApiResult<ExperimentRow> {
    select_one(&mut **tx, id_or_key, " FOR UPDATE").await
}

async fn select_one<'e>(db: impl sqlx::PgExecutor<'e>, id_or_key: &str, lock: &str) -> ApiResult<ExperimentRow> {
    if id_or_key.contains('\0') {
        // Postgres refuses to compare text holding a NUL; no key or id can have one anyway.
        return Err(ApiError::NotFound("no experiment has a NUL character in its id or key".into()));
    }
    let id = Uuid::parse_str(id_or_key).ok();
    let by = if id.is_some() { "id" } else { "key" };
    let sql = format!("SELECT {COLUMNS} FROM experiments WHERE {by} = $1{lock}");
    let query = sqlx::query_as::<_, ExperimentRow>(&sql);
    let query = match id {
        Some(id) => query.bind(id),
        None => query.bind(id_or_key),
    };
    query.fetch_optional(db).await?.ok_or_else(|| ApiError::not_found("experiment", id_or_key))
}

/// One audit-log entry, in the transaction that made the change.
pub async fn record(tx: &mut Transaction<'_, Postgres>, row: &ExperimentRow, action: &str, from: Option<Status>, actor: &str, details: Value) -> ApiResult<()> {
    check_text("actor", actor, 1, 400)?;
    sqlx::query(
        "INSERT INTO experiment_audit (experiment_id, experiment_key, action, from_status, to_status, actor, version, details)
         VALUES ($1, $8, $2, $3, $4, $5, $6, $7)",
    )
    .bind(row.id)
    .bind(action)
    .bind(from.map(Status::as_str))
    .bind(&row.status)
    .bind(actor)
    .bind(row.version)
    .bind(Db(details))
    .bind(&row.key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub fn check_text(field: &str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = value.chars().count();
    if n < min || n > max {
        let what = if min == 0 { format!("at most {max} characters") } else { format!("{min} to {max} characters") };
        return Err(ApiError::validation(field, format!("must be {what}")));
    }
    Ok(())
}

/// A lifecycle change: draft|paused → running (and running → running to change the ramp),
/// running → paused, anything but stopped → stopped. Stopped is terminal.
pub struct Change {
    pub to: Status,
    pub ramp_pct: Option<f64>,
    pub actor: String,
    /// Why, for the audit log (merged into the entry's details): a rule's numbers, a rollout step.
    pub why: Option<Value>,
    /// Where the safe rollout stands after this change, when the rollout itself makes it.
    pub rollout_state: Option<RolloutState>,
}

impl Change {
    pub fn new(to: Status, actor: &str) -> Change {
        Change { to, ramp_pct: None, actor: actor.to_owned(), why: None, rollout_state: None }
    }
}

fn allowed(from: Status, to: Status) -> bool {
    use Status::*;
    matches!((from, to), (Draft | Paused | Running, Running) | (Running, Paused) | (Draft | Running | Paused, Stopped))
}

/// Applies `change` in `tx` (the row locked, the audit entry written); the caller commits, then
/// wakes the publisher. Returns the status it came from and the row as it is now.
///
/// A safe rollout starts at its first step on launch, whatever the ramp; a ramp changed by hand
/// while it is ramping takes over from the schedule (outcome `overridden`); resuming from a
/// pause restarts the current step's hold.
pub async fn transition(tx: &mut Transaction<'_, Postgres>, id: &str, change: Change) -> ApiResult<(Status, ExperimentRow)> {
    let row = find_for_update(tx, id).await?;
    let from = row.status();
    let to = change.to;
    if !allowed(from, to) {
        let why = if from == Status::Stopped { "stopped is terminal".to_owned() } else { format!("cannot go from {} to {}", from.as_str(), to.as_str()) };
        return Err(ApiError::Conflict(format!("experiment `{}` is {}: {why}", row.key, from.as_str())));
    }
    let mut ramp_pct = change.ramp_pct;
    let mut rollout_state = row.rollout_state.as_ref().map(|s| s.0.clone());
    if let Some(state) = change.rollout_state {
        rollout_state = Some(state);
    } else if let (Some(plan), Status::Running) = (&row.rollout, to) {
        let now = Utc::now();
        match (&mut rollout_state, from) {
            (None, _) | (Some(_), Status::Draft) => {
                ramp_pct = plan.0.steps.first().map(|s| s.ramp_pct);
                rollout_state = Some(RolloutState::start(now));
            }
            (Some(s), Status::Running) if s.outcome == RolloutOutcome::Ramping && ramp_pct.is_some() => {
                s.outcome = RolloutOutcome::Overridden;
                s.reason = Some(format!("ramped to {} % by {}", ramp_pct.unwrap_or_default(), change.actor));
            }
            (Some(s), Status::Paused) => s.step_started_at = now,
            _ => {}
        }
    }
    if to == Status::Running && ramp_pct.is_none() && row.ramp_pct == 0.0 && rollout_state.is_none() {
        // Launching "as is" at 0 % would look like a launch and serve nobody.
        return Err(ApiError::validation(
            "ramp_pct",
            format!(
                "experiment `{}` has a ramp of 0 %: give `ramp_pct` (1 to 100) to launch it to that share of units, \
                 or `\"ramp_pct\": 0` to launch it to nobody on purpose",
                row.key
            ),
        ));
    }
    if to == Status::Running {
        let mut candidate = row.clone();
        candidate.ramp_pct = ramp_pct.unwrap_or(row.ramp_pct);
        check_layer_free(tx, &candidate).await?;
    }
    let updated = sqlx::query_as::<_, ExperimentRow>(&format!(
        "UPDATE experiments SET status = $2, ramp_pct = COALESCE($3, ramp_pct), version = version + 1, updated_at = now(),
                started_at = CASE WHEN $2 = 'running' THEN COALESCE(started_at, now()) ELSE started_at END,
                stopped_at = CASE WHEN $2 = 'stopped' THEN now() ELSE stopped_at END,
                rollout_state = $4
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(row.id)
    .bind(to.as_str())
    .bind(ramp_pct)
    .bind(rollout_state.map(Db))
    .fetch_one(&mut **tx)
    .await?;
    let action = match (from, to) {
        (Status::Running, Status::Running) => "ramp",
        (_, Status::Running) => "launch",
        (_, Status::Paused) => "pause",
        _ => "stop",
    };
    let mut details = json!({"ramp_pct": {"from": row.ramp_pct, "to": updated.ramp_pct}});
    if let Some(Value::Object(why)) = change.why {
        for (k, v) in why {
            details[k] = v;
        }
    }
    record(tx, &updated, action, Some(from), &change.actor, details).await?;
    Ok((from, updated))
}

/// Experiments sharing a layer must own disjoint slots while they run. The advisory lock
/// serialises concurrent launches into the same layer.
pub async fn check_layer_free(tx: &mut Transaction<'_, Postgres>, row: &ExperimentRow) -> ApiResult<()> {
    let Some(Db(slot)) = &row.layer else { return Ok(()) };
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('layer:' || $1))").bind(&slot.key).execute(&mut **tx).await?;
    let others: Vec<(String, Db<LayerSlot>)> = sqlx::query_as(
        "SELECT key, layer FROM experiments
         WHERE layer->>'key' = $1 AND id <> $2 AND status IN ('running', 'paused')",
    )
    .bind(&slot.key)
    .bind(row.id)
    .fetch_all(&mut **tx)
    .await?;
    match others.iter().find(|(_, other)| other.0.overlaps(slot)) {
        Some((key, other)) => Err(ApiError::Conflict(format!(
            "layer `{}` slot [{}, {}) overlaps experiment `{key}` [{}, {})",
            slot.key, slot.start, slot.end, other.0.start, other.0.end
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_table() {
        use Status::*;
        assert!(allowed(Draft, Running) && allowed(Paused, Running) && allowed(Running, Running));
        assert!(allowed(Running, Paused) && !allowed(Draft, Paused) && !allowed(Paused, Paused));
        assert!(allowed(Draft, Stopped) && allowed(Paused, Stopped));
        assert!(!allowed(Stopped, Running) && !allowed(Stopped, Paused) && !allowed(Stopped, Stopped));
    }
}
