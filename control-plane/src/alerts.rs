//! The alert feed: findings of the watch job (rule firings, rollout steps, insights), each raised
//! once per (experiment, key) however often and by however many control planes it is found,
//! listed with filters, acknowledged by people, and queued for every matching webhook in the
//! same transaction (`webhooks` delivers them).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json as Db;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::experiments::ExperimentRow;
use crate::watch::insights::Finding;

pub const KINDS: [&str; 7] = ["srm", "guardrail", "rule", "rollout", "anomaly", "ready_to_call", "underpowered"];

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Alert {
    pub id: i64,
    pub experiment_id: Option<Uuid>,
    pub experiment_key: String,
    pub kind: String,
    pub severity: String,
    pub title: String,
    pub details: Db<Value>,
    /// What the platform did: `notify`, or `pause`, `stop`, `rollback`, `advance`, `complete`.
    pub action: String,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

const COLUMNS: &str = "id, experiment_id, experiment_key, kind, severity, title, details, action, created_at, acknowledged_at, acknowledged_by";

/// Records `finding` unless this experiment already has an alert with its key; `None` then.
/// In the caller's transaction, so an action taken on it commits with it or not at all.
pub async fn raise(tx: &mut Transaction<'_, Postgres>, row: &ExperimentRow, f: &Finding, action: &str) -> ApiResult<Option<Alert>> {
    let alert: Option<Alert> = sqlx::query_as(&format!(
        "INSERT INTO alerts (experiment_id, experiment_key, kind, severity, dedupe_key, title, details, action)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT ON CONSTRAINT alerts_dedupe_key DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(row.id)
    .bind(&row.key)
    .bind(f.kind)
    .bind(f.severity)
    .bind(&f.key)
    .bind(&f.title)
    .bind(Db(&f.details))
    .bind(action)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(a) = &alert {
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, alert_id)
             SELECT id, $1 FROM webhooks WHERE cardinality(kinds) = 0 OR $2 = ANY (kinds)",
        )
        .bind(a.id)
        .bind(&a.kind)
        .execute(&mut **tx)
        .await?;
        tracing::info!(experiment = %row.key, kind = %a.kind, action = %a.action, title = %a.title, "alert raised");
    }
    Ok(alert)
}

#[derive(Debug, Default)]
pub struct Filter {
    pub experiment: Option<Uuid>,
    pub kind: Option<String>,
    pub acknowledged: Option<bool>,
    /// Alerts older than this id (the previous page's last).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Newest first.
pub async fn list(db: &PgPool, f: &Filter) -> ApiResult<Vec<Alert>> {
    if let Some(k) = &f.kind
        && !KINDS.contains(&k.as_str())
    {
        return Err(ApiError::validation("kind", format!("one of {}", KINDS.join(", "))));
    }
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alerts
         WHERE ($1::uuid IS NULL OR experiment_id = $1) AND ($2::text IS NULL OR kind = $2)
           AND ($3::bool IS NULL OR (acknowledged_at IS NOT NULL) = $3) AND ($4::int8 IS NULL OR id < $4)
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(f.experiment)
    .bind(&f.kind)
    .bind(f.acknowledged)
    .bind(f.before)
    .bind(f.limit)
    .fetch_all(db)
    .await?)
}

/// This experiment's alerts raised after `after` (the live socket's increments), oldest first.
pub async fn after(db: &PgPool, experiment: Uuid, after: i64) -> ApiResult<Vec<Alert>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM alerts WHERE experiment_id = $1 AND id > $2 ORDER BY id LIMIT 100"))
        .bind(experiment)
        .bind(after)
        .fetch_all(db)
        .await?)
}

/// The newest alert id of an experiment (0 without any).
pub async fn last_id(db: &PgPool, experiment: Uuid) -> ApiResult<i64> {
    Ok(sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM alerts WHERE experiment_id = $1").bind(experiment).fetch_one(db).await?)
}

/// Idempotent: acknowledging twice keeps the first acknowledgement.
pub async fn acknowledge(db: &PgPool, id: i64, actor: &str) -> ApiResult<Alert> {
    crate::experiments::check_text("actor", actor, 1, 400)?;
    sqlx::query_as(&format!(
        "UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, now()), acknowledged_by = coalesce(acknowledged_by, $2)
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(actor)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found("alert", &id.to_string()))
}
