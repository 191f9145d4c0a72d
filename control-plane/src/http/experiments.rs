//! Experiments: create, list, get, patch, and the lifecycle draft → running ⇄ paused → stopped,
//! every change recorded in the audit log and bumping `version`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use litmus_shared::{Experiment, ExperimentType, LayerSlot, Status, Targeting, Variant};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json as Db;
use sqlx::PgPool;
use uuid::Uuid;

use super::extract::{OptionalStrictJson, StrictJson};
use super::{ApiError, ApiResult, AppState};
use crate::experiments::{COLUMNS, Change, ExperimentRow, check_layer_free, check_text, find, find_for_update, record};
use crate::bandit;
use crate::results::{MetricDecl, Role, validate_metrics};
use crate::watch::{self, rollout::Rollout, rules::Rule};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/experiments", post(create).get(list))
        .route("/experiments/{id}", get(fetch).patch(update).delete(delete))
        .route("/experiments/{id}/launch", post(launch))
        .route("/experiments/{id}/pause", post(pause))
        .route("/experiments/{id}/stop", post(stop))
        .route("/experiments/{id}/audit", get(audit))
}

/// A variant as the API accepts it: `litmus_shared::Variant`, refusing unknown fields with the
/// list of known ones (`StrictJson` would refuse them anyway, without the list).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantIn {
    key: String,
    #[serde(default)]
    name: String,
    weight: f64,
    #[serde(default)]
    config_json: Value,
}

impl From<VariantIn> for Variant {
    fn from(v: VariantIn) -> Self {
        Variant { key: v.key, name: v.name, weight: v.weight, config_json: v.config_json }
    }
}

/// `litmus_shared::LayerSlot`, as [`VariantIn`] is a variant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerIn {
    key: String,
    start: u32,
    end: u32,
}

impl From<LayerIn> for LayerSlot {
    fn from(l: LayerIn) -> Self {
        LayerSlot { key: l.key, start: l.start, end: l.end }
    }
}

fn variants_from(v: Vec<VariantIn>) -> Vec<Variant> {
    v.into_iter().map(Variant::from).collect()
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
    variants: Vec<VariantIn>,
    salt: Option<String>,
    layer: Option<LayerIn>,
    #[serde(default)]
    metrics: Vec<MetricDecl>,
    /// Bandit policy (`type: "bandit"` only); absent: the defaults.
    bandit: Option<bandit::Settings>,
    #[serde(default)]
    rules: Vec<Rule>,
    rollout: Option<Rollout>,
}

/// Rules and a rollout against the metrics they refer to.
fn validate_watch(rules: &[Rule], rollout: Option<&Rollout>, metrics: &[MetricDecl], kind: &str) -> ApiResult<()> {
    let invalid = |(field, message): (String, String)| ApiError::validation(field, message);
    watch::rules::validate(rules, metrics).map_err(invalid)?;
    if let Some(r) = rollout {
        watch::rollout::validate(r).map_err(invalid)?;
        if kind == "bandit" {
            return Err(ApiError::validation("rollout", "a bandit moves its own traffic: safe rollouts are for A/B experiments"));
        }
        if !metrics.iter().any(|m| m.role == Role::Guardrail) {
            return Err(ApiError::validation(
                "rollout",
                "a safe rollout advances while its guardrails hold: declare at least one (`metrics: [{\"name\": …, \"role\": \"guardrail\"}]`)",
            ));
        }
    }
    Ok(())
}

/// The bandit settings an experiment of `kind` with `arms` variants stores.
fn bandit_settings(kind: &str, given: Option<bandit::Settings>, arms: usize) -> ApiResult<Option<bandit::Settings>> {
    match (kind, given) {
        ("bandit", given) => {
            let settings = given.unwrap_or_default();
            settings.validate(arms).map_err(|(field, message)| ApiError::validation(field, message))?;
            Ok(Some(settings))
        }
        (_, Some(_)) => Err(ApiError::validation("bandit", "bandit settings are for experiments of type `bandit`")),
        (_, None) => Ok(None),
    }
}

async fn create(State(state): State<AppState>, axum::Extension(caller): axum::Extension<crate::keys::Caller>, StrictJson(req): StrictJson<CreateExperiment>) -> ApiResult<(StatusCode, axum::Json<ExperimentRow>)> {
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
        variants: variants_from(req.variants),
        salt: req.salt,
        hash_version: litmus_shared::hashing::HASH_VERSION,
        layer: req.layer.map(LayerSlot::from),
        bucket_version: 0,
    };
    validate(&engine)?;
    validate_metrics(&req.metrics)?;
    let bandit = bandit_settings(kind_str(engine.kind), req.bandit, engine.variants.len())?;
    validate_watch(&req.rules, req.rollout.as_ref(), &req.metrics, kind_str(engine.kind))?;

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
                                      ramp_pct, targeting, variants, salt, hash_version, layer, metrics, bandit, rules, rollout)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'draft', 1, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
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
        .bind(bandit.as_ref().map(Db))
        .bind(Db(&req.rules))
        .bind(req.rollout.as_ref().map(Db))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            if explicit_key {
                return Err(ApiError::Conflict(format!("an experiment with key `{}` already exists", engine.key)));
            }
            continue;
        };
        let actor = caller.actor(Some(&req.created_by));
        record(&mut tx, &row, "create", None, &actor, json!({})).await?;
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
    /// Page size; absent = every match (the list's behaviour before pages existed).
    limit: Option<String>,
    /// Where the previous page ended (its `X-Next-Cursor`).
    cursor: Option<String>,
}

/// The largest page `GET /experiments?limit=` serves.
pub const MAX_PAGE: i64 = 200;

/// Position after an experiment in the list's order (`created_at DESC, key`): both are
/// immutable, so a page boundary never moves while experiments are created or deleted.
#[derive(Debug, PartialEq)]
struct Cursor {
    created_at: DateTime<Utc>,
    key: String,
}

impl Cursor {
    /// Hex of `<microseconds>:<key>`: opaque to clients, safe in a URL without escaping.
    fn encode(&self) -> String {
        crate::hex::encode(format!("{}:{}", self.created_at.timestamp_micros(), self.key).as_bytes())
    }

    fn decode(s: &str) -> Option<Cursor> {
        if !s.len().is_multiple_of(2) || s.len() > 256 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
        let text = String::from_utf8(bytes?).ok()?;
        let (micros, key) = text.split_once(':')?;
        let created_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        litmus_shared::config::validate_key(key).ok()?;
        Some(Cursor { created_at, key: key.to_owned() })
    }
}

async fn list(State(state): State<AppState>, Query(query): Query<ListQuery>) -> ApiResult<Response> {
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
    let limit = match query.limit.as_deref() {
        None => None,
        Some(l) => Some(
            l.parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| ApiError::validation("limit", format!("must be a whole number from 1 to {MAX_PAGE}")))?,
        ),
    };
    let after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Cursor::decode(c).ok_or_else(|| ApiError::validation("cursor", "is not a cursor this list gave out (take it from X-Next-Cursor)"))?),
    };
    let mut rows = sqlx::query_as::<_, ExperimentRow>(&format!(
        "SELECT {COLUMNS} FROM experiments
         WHERE ($1::text[] IS NULL OR status = ANY($1))
           AND ($2::text IS NULL OR key ILIKE $2 OR name ILIKE $2 OR description ILIKE $2 OR owner_team ILIKE $2)
           AND ($3::timestamptz IS NULL OR created_at < $3 OR (created_at = $3 AND key > $4))
         ORDER BY created_at DESC, key
         LIMIT $5"
    ))
    .bind(statuses)
    .bind(query.q.as_deref().filter(|q| !q.is_empty()).map(|q| format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))))
    .bind(after.as_ref().map(|c| c.created_at))
    .bind(after.as_ref().map(|c| c.key.clone()))
    // One more than the page: whether it exists says whether there is a next page.
    .bind(limit.map(|n| n + 1))
    .fetch_all(&state.db)
    .await?;
    let next = match limit {
        Some(n) if rows.len() as i64 > n => {
            rows.truncate(n as usize);
            rows.last().map(|r| Cursor { created_at: r.created_at, key: r.key.clone() }.encode())
        }
        _ => None,
    };
    let mut response = axum::Json(rows).into_response();
    if let Some(cursor) = next {
        let mut link = String::from("/api/v1/experiments?");
        for (name, value) in [("status", &query.status), ("q", &query.q), ("limit", &query.limit)] {
            if let Some(v) = value {
                link.push_str(&format!("{name}={}&", url_encode(v)));
            }
        }
        link.push_str(&format!("cursor={cursor}"));
        let headers = response.headers_mut();
        for (name, value) in [("x-next-cursor", cursor), ("link", format!("<{link}>; rel=\"next\""))] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
    Ok(response)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

async fn fetch(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<axum::Json<ExperimentRow>> {
    Ok(axum::Json(find(&state.db, &id).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PatchExperiment {
    #[serde(default, deserialize_with = "non_null")]
    name: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    description: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    owner_team: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    unit_type: Option<String>,
    #[serde(rename = "type")]
    #[serde(default, deserialize_with = "non_null")]
    kind: Option<ExperimentType>,
    #[serde(default, deserialize_with = "non_null")]
    targeting: Option<Value>,
    #[serde(default, deserialize_with = "non_null")]
    ramp_pct: Option<f64>,
    #[serde(default, deserialize_with = "non_null")]
    variants: Option<Vec<VariantIn>>,
    #[serde(default, deserialize_with = "non_null")]
    salt: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    layer: Option<LayerIn>,
    #[serde(default, deserialize_with = "non_null")]
    metrics: Option<Vec<MetricDecl>>,
    #[serde(default, deserialize_with = "non_null")]
    bandit: Option<bandit::Settings>,
    /// Only upwards: units keeping their first variant (sticky assignments) are re-randomised.
    #[serde(default, deserialize_with = "non_null")]
    bucket_version: Option<i32>,
    /// Stopping rules (`[]` removes them); any time before the experiment stops.
    #[serde(default, deserialize_with = "non_null")]
    rules: Option<Vec<Rule>>,
    /// A safe rollout's schedule; while a draft.
    #[serde(default, deserialize_with = "non_null")]
    rollout: Option<Rollout>,
    #[serde(default, deserialize_with = "non_null")]
    actor: Option<String>,
}

/// A field given as `null` in a PATCH is refused rather than read as "leave it" (which would
/// drop it silently: `"targeting": null` does not clear the targeting, `{}` does).
fn non_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    match Option::<T>::deserialize(d)? {
        Some(v) => Ok(Some(v)),
        None => Err(serde::de::Error::custom("cannot be null: leave the field out to keep its value")),
    }
}

async fn update(State(state): State<AppState>, axum::Extension(caller): axum::Extension<crate::keys::Caller>, Path(id): Path<String>, StrictJson(req): StrictJson<PatchExperiment>) -> ApiResult<axum::Json<ExperimentRow>> {
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
        ("rollout", req.rollout.is_some()),
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
        row.variants = Db(variants_from(v));
        changed.push("variants");
    }
    if let Some(s) = req.salt {
        check_text("salt", &s, 1, 200)?;
        row.salt = s;
        changed.push("salt");
    }
    if let Some(l) = req.layer {
        row.layer = Some(Db(l.into()));
        changed.push("layer");
    }
    if let Some(m) = req.metrics {
        validate_metrics(&m)?;
        row.metrics = Db(m);
        changed.push("metrics");
    }
    if req.bandit.is_some() || changed.iter().any(|c| ["type", "variants"].contains(c)) {
        if req.bandit.is_some() {
            changed.push("bandit");
        }
        // Kept across a change of variants; dropped when the type leaves `bandit`.
        let kept = row.bandit.take().map(|b| b.0).filter(|_| row.kind == "bandit");
        let given = req.bandit.or(kept);
        row.bandit = bandit_settings(&row.kind, given, row.variants.0.len())?.map(Db);
    }
    if let Some(r) = req.rules {
        row.rules = Db(r);
        changed.push("rules");
    }
    if let Some(r) = req.rollout {
        row.rollout = Some(Db(r));
        changed.push("rollout");
    }
    if changed.iter().any(|c| ["rules", "rollout", "metrics", "type"].contains(c)) {
        validate_watch(&row.rules.0, row.rollout.as_ref().map(|r| &r.0), &row.metrics.0, &row.kind)?;
    }
    if let Some(b) = req.bucket_version {
        if b <= row.bucket_version {
            return Err(ApiError::validation("bucket_version", format!("can only go up (it is {})", row.bucket_version)));
        }
        row.bucket_version = b;
        changed.push("bucket_version");
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
                ramp_pct = $8, variants = $9, salt = $10, layer = $11, metrics = $12, bandit = $13, bucket_version = $14,
                rules = $15, rollout = $16, version = version + 1, updated_at = now()
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
    .bind(&row.bandit)
    .bind(row.bucket_version)
    .bind(&row.rules)
    .bind(&row.rollout)
    .fetch_one(&mut *tx)
    .await?;
    let actor = caller.actor(req.actor.as_deref());
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
    #[serde(default, deserialize_with = "non_null")]
    ramp_pct: Option<f64>,
    #[serde(default, deserialize_with = "non_null")]
    actor: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActorBody {
    #[serde(default, deserialize_with = "non_null")]
    actor: Option<String>,
}

async fn launch(State(state): State<AppState>, axum::Extension(caller): axum::Extension<crate::keys::Caller>, Path(id): Path<String>, OptionalStrictJson(body): OptionalStrictJson<LaunchBody>) -> ApiResult<axum::Json<ExperimentRow>> {
    if body.ramp_pct.is_some_and(|r| !(r.is_finite() && (0.0..=100.0).contains(&r))) {
        return Err(ApiError::validation("ramp_pct", "must be a number from 0 to 100"));
    }
    transition(&state, &id, Status::Running, body.ramp_pct, caller.actor(body.actor.as_deref())).await
}

async fn pause(State(state): State<AppState>, axum::Extension(caller): axum::Extension<crate::keys::Caller>, Path(id): Path<String>, OptionalStrictJson(body): OptionalStrictJson<ActorBody>) -> ApiResult<axum::Json<ExperimentRow>> {
    transition(&state, &id, Status::Paused, None, caller.actor(body.actor.as_deref())).await
}

async fn stop(State(state): State<AppState>, axum::Extension(caller): axum::Extension<crate::keys::Caller>, Path(id): Path<String>, OptionalStrictJson(body): OptionalStrictJson<ActorBody>) -> ApiResult<axum::Json<ExperimentRow>> {
    transition(&state, &id, Status::Stopped, None, caller.actor(body.actor.as_deref())).await
}

async fn transition(state: &AppState, id: &str, to: Status, ramp_pct: Option<f64>, actor: String) -> ApiResult<axum::Json<ExperimentRow>> {
    let mut tx = state.db.begin().await?;
    let change = Change { ramp_pct, ..Change::new(to, &actor) };
    let (_, updated) = crate::experiments::transition(&mut tx, id, change).await?;
    tx.commit().await?;
    state.publisher.notify();
    let _ = state.live.send(updated.id);
    Ok(axum::Json(updated))
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
    let experiment_id = match find(&state.db, &id).await {
        Ok(row) => row.id,
        // A deleted draft's trail is still there: by its id, or by the last draft deleted with this key.
        Err(ApiError::NotFound(message)) => deleted_draft(&state.db, &id).await?.ok_or(ApiError::NotFound(message))?,
        Err(e) => return Err(e),
    };
    let entries = sqlx::query_as::<_, AuditEntry>(
        "SELECT id, action, from_status, to_status, actor, version, details, at
         FROM experiment_audit WHERE experiment_id = $1 ORDER BY id",
    )
    .bind(experiment_id)
    .fetch_all(&state.db)
    .await?;
    Ok(axum::Json(entries))
}

async fn deleted_draft(db: &PgPool, id_or_key: &str) -> ApiResult<Option<Uuid>> {
    if id_or_key.contains('\0') {
        return Ok(None);
    }
    let id = Uuid::parse_str(id_or_key).ok();
    Ok(sqlx::query_scalar(
        "SELECT experiment_id FROM experiment_audit
         WHERE action = 'delete' AND (experiment_id = $1 OR ($1 IS NULL AND experiment_key = $2))
         ORDER BY id DESC LIMIT 1",
    )
    .bind(id)
    .bind(id_or_key)
    .fetch_optional(db)
    .await?)
}

/// `DELETE /experiments/{id}`: only a draft, which never served anyone, can go; anything that
/// ran is kept for its results (stop it instead). The audit trail stays.
async fn delete(State(state): State<AppState>, axum::Extension(caller): axum::Extension<crate::keys::Caller>, Path(id): Path<String>, OptionalStrictJson(body): OptionalStrictJson<ActorBody>) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let mut row = find_for_update(&mut tx, &id).await?;
    if row.status() != Status::Draft {
        return Err(ApiError::Conflict(format!(
            "experiment `{}` is {}: only drafts can be deleted (an experiment that ran keeps its results; stop it instead)",
            row.key, row.status
        )));
    }
    sqlx::query("DELETE FROM experiments WHERE id = $1").bind(row.id).execute(&mut *tx).await?;
    row.status = "deleted".into();
    row.version += 1;
    record(&mut tx, &row, "delete", Some(Status::Draft), &caller.actor(body.actor.as_deref()), json!({"name": row.name})).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
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
    fn cursors_round_trip_and_refuse_anything_else() {
        let c = Cursor { created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("time"), key: "model_ranking".into() };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "zz", "abc", "3a", "313a", "313a2d", &"00".repeat(200)] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
        assert_eq!(url_encode("a b&c=ü"), "a%20b%26c%3D%C3%BC");
    }

    #[test]
    fn nulls_in_a_patch_are_refused() {
        let r = crate::http::extract::parse_strict::<PatchExperiment>(br#"{"name": null, "owner_team": "x"}"#);
        match r {
            Err(ApiError::Validation { field, message, .. }) => {
                assert_eq!(field.as_deref(), Some("name"));
                assert!(message.starts_with("cannot be null"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
