//! Experiments as stored: the row, its lookups and the audit log. The HTTP routes
//! (`http::experiments`), the publisher and the background jobs share these.

use chrono::{DateTime, Utc};
use litmus_shared::{Experiment, ExperimentType, LayerSlot, Status, Targeting, Variant};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json as Db;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::results::MetricDecl;

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
                           targeting, variants, salt, hash_version, layer, metrics, bandit, bucket_version, created_at, updated_at, started_at, stopped_at";

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
    check_text("actor", actor, 1, 200)?;
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
