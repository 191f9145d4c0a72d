//! Experiments: create, list, get, patch, and the lifecycle draft → running ⇄ paused → stopped,
//! every change recorded in the audit log and bumping `version`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use litmus_shared::{Experiment, ExperimentType, LayerSlot, Status, Targeting, Variant};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json as Db;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::extract::{Json, OptionalJson};
use super::results::{MetricDecl, validate_metrics};
use super::{ApiError, ApiResult, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/experiments", post(create).get(list))
        .route("/experiments/{id}", get(fetch).patch(update))
        .route("/experiments/{id}/launch", post(launch))
        .route("/experiments/{id}/pause", post(pause))
        .route("/experiments/{id}/stop", post(stop))
        .route("/experiments/{id}/audit", get(audit))
}

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
        })
    }

    pub fn control(&self) -> &str {
        self.variants.0.first().map_or("", |v| v.key.as_str())
    }
}

/// Every column of `ExperimentRow`, for queries that load whole experiments.
pub const COLUMNS: &str = "id, key, name, description, owner_team, created_by, unit_type, type, status, version, ramp_pct, \
                           targeting, variants, salt, hash_version, layer, metrics, created_at, updated_at, started_at, stopped_at";

/// Loads by uuid or by key; 404 when neither matches.
pub async fn find(db: &PgPool, id_or_key: &str) -> ApiResult<ExperimentRow> {
    select_one(db, id_or_key, "").await
}

/// [`find`], locking the row for the rest of the transaction.
async fn find_for_update(tx: &mut Transaction<'_, Postgres>, id_or_key: &str) -> ApiResult<ExperimentRow> {
    select_one(&mut **tx, id_or_key, " FOR UPDATE").await
}

async fn select_one<'e>(db: impl sqlx::PgExecutor<'e>, id_or_key: &str, lock: &str) -> ApiResult<ExperimentRow> {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateExperiment {
    key: Option<String>,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner_team: String,
    #[serde(default)]
    created_by: String,
    unit_type: Option<String>,
    #[serde(rename = "type", default)]
    kind: ExperimentType,
    #[serde(default)]
    targeting: Value,
    #[serde(default)]
    ramp_pct: f64,
    variants: Vec<Variant>,
    salt: Option<String>,
    layer: Option<LayerSlot>,
    #[serde(default)]
    metrics: Vec<MetricDecl>,
}

async fn create(State(state): State<AppState>, Json(req): Json<CreateExperiment>) -> ApiResult<(StatusCode, axum::Json<ExperimentRow>)> {
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::validation("name", "must be 1 to 200 characters"));
    }
    let unit_type = req.unit_type.unwrap_or_else(|| "user_id".to_owned());
    check_text("unit_type", &unit_type, 1, 64)?;
    check_text("owner_team", &req.owner_team, 0, 200)?;
    check_text("created_by", &req.created_by, 0, 200)?;
    check_text("description", &req.description, 0, 10_000)?;
    let explicit_key = req.key.is_some();
    let base_key = req.key.unwrap_or_else(|| slug(&name));
    let mut engine = Experiment {
        id: None,
        key: base_key.clone(),
        kind: req.kind,
        unit_type: unit_type.clone(),
        status: Status::Draft,
        version: 1,
        ramp_pct: req.ramp_pct,
        targeting: parse_targeting(&req.targeting)?,
        variants: req.variants,
        salt: req.salt,
        hash_version: litmus_shared::hashing::HASH_VERSION,
        layer: req.layer,
    };
    validate(&engine)?;
    validate_metrics(&req.metrics)?;

    // A derived key that collides gets a numeric suffix; an explicit one is a conflict.
    for attempt in 1..=50 {
        if attempt > 1 {
            let suffix = format!("_{attempt}");
            engine.key = format!("{}{suffix}", &base_key[..base_key.len().min(64 - suffix.len())]);
        }
        let salt = engine.salt.clone().unwrap_or_else(|| engine.key.clone());
        let mut tx = state.db.begin().await?;
        let inserted = sqlx::query_as::<_, ExperimentRow>(&format!(
            "INSERT INTO experiments (id, key, name, description, owner_team, created_by, unit_type, type, status, version,
                                      ramp_pct, targeting, variants, salt, hash_version, layer, metrics)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'draft', 1, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (key) DO NOTHING
             RETURNING {COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(&engine.key)
        .bind(&name)
        .bind(&req.description)
        .bind(&req.owner_team)
        .bind(&req.created_by)
        .bind(&unit_type)
        .bind(kind_str(engine.kind))
        .bind(engine.ramp_pct)
        .bind(Db(engine.targeting.as_json()))
        .bind(Db(&engine.variants))
        .bind(&salt)
        .bind(engine.hash_version as i32)
        .bind(engine.layer.as_ref().map(Db))
        .bind(Db(&req.metrics))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            if explicit_key {
                return Err(ApiError::Conflict(format!("an experiment with key `{}` already exists", engine.key)));
            }
            continue;
        };
        let actor = if req.created_by.is_empty() { "api" } else { &req.created_by };
        record(&mut tx, &row, "create", None, actor, json!({})).await?;
        tx.commit().await?;
        return Ok((StatusCode::CREATED, axum::Json(row)));
    }
    Err(ApiError::Conflict(format!("could not derive a free key from `{base_key}`; give one explicitly")))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    /// Case-insensitive substring of key, name, description or owner team.
    q: Option<String>,
}

async fn list(State(state): State<AppState>, Query(query): Query<ListQuery>) -> ApiResult<axum::Json<Vec<ExperimentRow>>> {
    let statuses: Option<Vec<String>> = match &query.status {
        None => None,
        Some(s) => {
            let parsed: Vec<String> = s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
            if let Some(bad) = parsed.iter().find(|p| Status::parse(p).is_none()) {
                return Err(ApiError::validation("status", format!("unknown status `{bad}` (draft, running, paused, stopped)")));
            }
            Some(parsed)
        }
    };
    let rows = sqlx::query_as::<_, ExperimentRow>(&format!(
        "SELECT {COLUMNS} FROM experiments
         WHERE ($1::text[] IS NULL OR status = ANY($1))
           AND ($2::text IS NULL OR key ILIKE $2 OR name ILIKE $2 OR description ILIKE $2 OR owner_team ILIKE $2)
         ORDER BY created_at DESC, key"
    ))
    .bind(statuses)
    .bind(query.q.filter(|q| !q.is_empty()).map(|q| format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))))
    .fetch_all(&state.db)
    .await?;
    Ok(axum::Json(rows))
}

async fn fetch(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<axum::Json<ExperimentRow>> {
    Ok(axum::Json(find(&state.db, &id).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PatchExperiment {
    name: Option<String>,
    description: Option<String>,
    owner_team: Option<String>,
    unit_type: Option<String>,
    #[serde(rename = "type")]
    kind: Option<ExperimentType>,
    targeting: Option<Value>,
    ramp_pct: Option<f64>,
    variants: Option<Vec<Variant>>,
    salt: Option<String>,
    layer: Option<LayerSlot>,
    metrics: Option<Vec<MetricDecl>>,
    actor: Option<String>,
}

async fn update(State(state): State<AppState>, Path(id): Path<String>, Json(req): Json<PatchExperiment>) -> ApiResult<axum::Json<ExperimentRow>> {
    let mut tx = state.db.begin().await?;
    let mut row = find_for_update(&mut tx, &id).await?;
    let status = row.status();
    if status == Status::Stopped {
        return Err(ApiError::Conflict("a stopped experiment cannot change".into()));
    }
    let draft_only = [
        ("variants", req.variants.is_some()),
        ("unit_type", req.unit_type.is_some()),
        ("type", req.kind.is_some()),
        ("salt", req.salt.is_some()),
        ("layer", req.layer.is_some()),
    ];
    if let Some((field, _)) = draft_only.iter().find(|(_, set)| *set).filter(|_| status != Status::Draft) {
        return Err(ApiError::Conflict(format!("`{field}` can only change while the experiment is a draft (it is {})", row.status)));
    }

    let mut changed = Vec::new();
    if let Some(name) = req.name {
        let name = name.trim().to_owned();
        if name.is_empty() || name.len() > 200 {
            return Err(ApiError::validation("name", "must be 1 to 200 characters"));
        }
        row.name = name;
        changed.push("name");
    }
    if let Some(d) = req.description {
        check_text("description", &d, 0, 10_000)?;
        row.description = d;
        changed.push("description");
    }
    if let Some(o) = req.owner_team {
        check_text("owner_team", &o, 0, 200)?;
        row.owner_team = o;
        changed.push("owner_team");
    }
    if let Some(u) = req.unit_type {
        check_text("unit_type", &u, 1, 64)?;
        row.unit_type = u;
        changed.push("unit_type");
    }
    if let Some(k) = req.kind {
        row.kind = kind_str(k).to_owned();
        changed.push("type");
    }
    if let Some(t) = req.targeting {
        row.targeting = Db(parse_targeting(&t)?.as_json().clone());
        changed.push("targeting");
    }
    if let Some(r) = req.ramp_pct {
        row.ramp_pct = r;
        changed.push("ramp_pct");
    }
    if let Some(v) = req.variants {
        row.variants = Db(v);
        changed.push("variants");
    }
    if let Some(s) = req.salt {
        check_text("salt", &s, 1, 200)?;
        row.salt = s;
        changed.push("salt");
    }
    if let Some(l) = req.layer {
        row.layer = Some(Db(l));
        changed.push("layer");
    }
    if let Some(m) = req.metrics {
        validate_metrics(&m)?;
        row.metrics = Db(m);
        changed.push("metrics");
    }
    if changed.is_empty() {
        return Err(ApiError::validation("", "nothing to change: give at least one field"));
    }
    validate(&row.to_engine()?)?;
    if status != Status::Draft {
        check_layer_free(&mut tx, &row).await?;
    }

    let updated = sqlx::query_as::<_, ExperimentRow>(&format!(
        "UPDATE experiments SET name = $2, description = $3, owner_team = $4, unit_type = $5, type = $6, targeting = $7,
                ramp_pct = $8, variants = $9, salt = $10, layer = $11, metrics = $12, version = version + 1, updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.owner_team)
    .bind(&row.unit_type)
    .bind(&row.kind)
    .bind(&row.targeting)
    .bind(row.ramp_pct)
    .bind(&row.variants)
    .bind(&row.salt)
    .bind(&row.layer)
    .bind(&row.metrics)
    .fetch_one(&mut *tx)
    .await?;
    let actor = req.actor.unwrap_or_else(|| "api".into());
    record(&mut tx, &updated, "update", Some(status), &actor, json!({"changed": changed})).await?;
    tx.commit().await?;
    if status == Status::Running {
        state.publisher.notify();
    }
    Ok(axum::Json(updated))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LaunchBody {
    ramp_pct: Option<f64>,
    actor: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActorBody {
    actor: Option<String>,
}

async fn launch(State(state): State<AppState>, Path(id): Path<String>, OptionalJson(body): OptionalJson<LaunchBody>) -> ApiResult<axum::Json<ExperimentRow>> {
    if body.ramp_pct.is_some_and(|r| !(r.is_finite() && (0.0..=100.0).contains(&r))) {
        return Err(ApiError::validation("ramp_pct", "must be a number from 0 to 100"));
    }
    transition(&state, &id, Status::Running, body.ramp_pct, body.actor).await
}

async fn pause(State(state): State<AppState>, Path(id): Path<String>, OptionalJson(body): OptionalJson<ActorBody>) -> ApiResult<axum::Json<ExperimentRow>> {
    transition(&state, &id, Status::Paused, None, body.actor).await
}

async fn stop(State(state): State<AppState>, Path(id): Path<String>, OptionalJson(body): OptionalJson<ActorBody>) -> ApiResult<axum::Json<ExperimentRow>> {
    transition(&state, &id, Status::Stopped, None, body.actor).await
}

/// The lifecycle: draft|paused → running (and running → running to change the ramp),
/// running → paused, anything but stopped → stopped. Stopped is terminal.
fn allowed(from: Status, to: Status) -> bool {
    use Status::*;
    matches!((from, to), (Draft | Paused | Running, Running) | (Running, Paused) | (Draft | Running | Paused, Stopped))
}

async fn transition(state: &AppState, id: &str, to: Status, ramp_pct: Option<f64>, actor: Option<String>) -> ApiResult<axum::Json<ExperimentRow>> {
    let mut tx = state.db.begin().await?;
    let row = find_for_update(&mut tx, id).await?;
    let from = row.status();
    if !allowed(from, to) {
        let why = if from == Status::Stopped { "stopped is terminal".to_owned() } else { format!("cannot go from {} to {}", from.as_str(), to.as_str()) };
        return Err(ApiError::Conflict(format!("experiment `{}` is {}: {why}", row.key, from.as_str())));
    }
    if to == Status::Running {
        let mut candidate = row.clone();
        candidate.ramp_pct = ramp_pct.unwrap_or(row.ramp_pct);
        check_layer_free(&mut tx, &candidate).await?;
    }
    let updated = sqlx::query_as::<_, ExperimentRow>(&format!(
        "UPDATE experiments SET status = $2, ramp_pct = COALESCE($3, ramp_pct), version = version + 1, updated_at = now(),
                started_at = CASE WHEN $2 = 'running' THEN COALESCE(started_at, now()) ELSE started_at END,
                stopped_at = CASE WHEN $2 = 'stopped' THEN now() ELSE stopped_at END
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(row.id)
    .bind(to.as_str())
    .bind(ramp_pct)
    .fetch_one(&mut *tx)
    .await?;
    let action = match (from, to) {
        (Status::Running, Status::Running) => "ramp",
        (_, Status::Running) => "launch",
        (_, Status::Paused) => "pause",
        _ => "stop",
    };
    let details = json!({"ramp_pct": {"from": row.ramp_pct, "to": updated.ramp_pct}});
    record(&mut tx, &updated, action, Some(from), actor.as_deref().unwrap_or("api"), details).await?;
    tx.commit().await?;
    state.publisher.notify();
    let _ = state.live.send(updated.id);
    Ok(axum::Json(updated))
}

/// Experiments sharing a layer must own disjoint slots while they run. The advisory lock
/// serialises concurrent launches into the same layer.
async fn check_layer_free(tx: &mut Transaction<'_, Postgres>, row: &ExperimentRow) -> ApiResult<()> {
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

#[derive(Debug, Serialize, sqlx::FromRow)]
struct AuditEntry {
    id: i64,
    action: String,
    from_status: Option<String>,
    to_status: String,
    actor: String,
    version: i64,
    details: Db<Value>,
    at: DateTime<Utc>,
}

async fn audit(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<axum::Json<Vec<AuditEntry>>> {
    let row = find(&state.db, &id).await?;
    let entries = sqlx::query_as::<_, AuditEntry>(
        "SELECT id, action, from_status, to_status, actor, version, details, at
         FROM experiment_audit WHERE experiment_id = $1 ORDER BY id",
    )
    .bind(row.id)
    .fetch_all(&state.db)
    .await?;
    Ok(axum::Json(entries))
}

async fn record(tx: &mut Transaction<'_, Postgres>, row: &ExperimentRow, action: &str, from: Option<Status>, actor: &str, details: Value) -> ApiResult<()> {
    check_text("actor", actor, 1, 200)?;
    sqlx::query(
        "INSERT INTO experiment_audit (experiment_id, action, from_status, to_status, actor, version, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(row.id)
    .bind(action)
    .bind(from.map(Status::as_str))
    .bind(&row.status)
    .bind(actor)
    .bind(row.version)
    .bind(Db(details))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn validate(e: &Experiment) -> ApiResult<()> {
    e.validate().map_err(|err| ApiError::validation(err.path, err.message))
}

fn parse_targeting(v: &Value) -> ApiResult<Targeting> {
    Targeting::parse(v).map_err(|e| {
        let e = e.under("targeting");
        ApiError::validation(e.path, e.message)
    })
}

fn check_text(field: &str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = value.chars().count();
    if n < min || n > max {
        let what = if min == 0 { format!("at most {max} characters") } else { format!("{min} to {max} characters") };
        return Err(ApiError::validation(field, format!("must be {what}")));
    }
    Ok(())
}

fn kind_str(k: ExperimentType) -> &'static str {
    match k {
        ExperimentType::Ab => "ab",
        ExperimentType::Bandit => "bandit",
    }
}

/// `"Model Ranking Test!"` → `model_ranking_test`; always a valid key.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut key: String = out.trim_end_matches('_').chars().take(64).collect();
    key.truncate(key.trim_end_matches('_').len());
    if key.is_empty() { "experiment".into() } else { key }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_valid_keys() {
        assert_eq!(slug("Model Ranking Test"), "model_ranking_test");
        assert_eq!(slug("  Üniçode — test!! "), "ni_ode_test");
        assert_eq!(slug("!!!"), "experiment");
        assert_eq!(slug(&"a".repeat(100)).len(), 64);
        for name in ["Model Ranking Test", "  Üniçode — test!! ", "!!!", "x y"] {
            assert!(litmus_shared::config::validate_key(&slug(name)).is_ok(), "{name}");
        }
    }

    #[test]
    fn lifecycle_table() {
        use Status::*;
        assert!(allowed(Draft, Running) && allowed(Paused, Running) && allowed(Running, Running));
        assert!(allowed(Running, Paused) && !allowed(Draft, Paused) && !allowed(Paused, Paused));
        assert!(allowed(Draft, Stopped) && allowed(Paused, Stopped));
        assert!(!allowed(Stopped, Running) && !allowed(Stopped, Paused) && !allowed(Stopped, Stopped));
    }
}
