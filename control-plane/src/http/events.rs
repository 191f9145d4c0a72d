//! Event ingestion: exposures, metrics, conversions, one at a time or in batches.
//!
//! Each event is validated on its own: in a batch the bad ones are reported by index and reason,
//! the good ones land. Idempotency: an `event_id` (client-given, else minted here) is stored once
//! in `event_ids`; a re-sent event is counted as a duplicate and changes nothing. One statement
//! writes the ids, the raw events and the per-unit first exposures, so a batch lands whole or not
//! at all: nothing answered 202 is lost.

use std::collections::{BTreeSet, HashMap, HashSet};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use litmus_shared::Variant;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json as Db;
use uuid::Uuid;

use super::assign::check_unit_id;
use super::extract::Json;
use super::{ApiError, ApiResult, AppState};

pub fn router(batch_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/events/exposure", post(|s, b| single(s, b, Kind::Exposure)))
        .route("/events/metric", post(|s, b| single(s, b, Kind::Metric)))
        .route("/events/conversion", post(|s, b| single(s, b, Kind::Conversion)))
        .route("/events/batch", post(batch).layer(DefaultBodyLimit::max(batch_limit)))
}

pub const MAX_BATCH_EVENTS: usize = 10_000;
const DEFAULT_CONVERSION_METRIC: &str = "conversion";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Exposure = 1,
    Metric = 2,
    Conversion = 3,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn {
    kind: Option<Kind>,
    experiment: String,
    unit_id: String,
    variant_key: String,
    metric: Option<String>,
    value: Option<f64>,
    event_id: Option<String>,
    ts: Option<DateTime<Utc>>,
    /// Set by the edge on exposures it served; accepted and ignored here.
    #[allow(dead_code)]
    assignment_id: Option<String>,
}

/// A validated event, ready to store.
struct Event {
    experiment_id: Uuid,
    kind: Kind,
    unit_id: String,
    variant_key: String,
    metric: Option<String>,
    value: Option<f64>,
    ts: DateTime<Utc>,
    event_id: String,
}

#[derive(Debug, Serialize)]
pub struct Rejected {
    index: usize,
    code: &'static str,
    field: Option<String>,
    message: String,
}

#[derive(Debug, Serialize)]
pub struct IngestResult {
    accepted: u64,
    duplicates: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rejected: Vec<Rejected>,
}

async fn single(State(state): State<AppState>, Json(body): Json<Value>, kind: Kind) -> ApiResult<(StatusCode, axum::Json<IngestResult>)> {
    let mut result = ingest(&state, vec![body], Some(kind)).await?;
    if let Some(r) = result.rejected.pop() {
        return Err(match r.code {
            "not_found" => ApiError::NotFound(r.message),
            _ => ApiError::validation(r.field.unwrap_or_default(), r.message),
        });
    }
    Ok((StatusCode::ACCEPTED, axum::Json(result)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    events: Vec<Value>,
}

async fn batch(State(state): State<AppState>, Json(body): Json<BatchIn>) -> ApiResult<(StatusCode, axum::Json<IngestResult>)> {
    if body.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::PayloadTooLarge);
    }
    let n = body.events.len();
    let result = ingest(&state, body.events, None).await?;
    if n > 0 && result.rejected.len() == n {
        let first = &result.rejected[0];
        return Err(ApiError::Validation {
            field: Some(format!("events[{}]{}", first.index, first.field.as_deref().map(|f| format!(".{f}")).unwrap_or_default())),
            message: format!("all {n} events were rejected; first: {}", first.message),
            details: Some(json!({"rejected": result.rejected})),
        });
    }
    Ok((StatusCode::ACCEPTED, axum::Json(result)))
}

/// Validates every event, stores the good ones, reports the rest.
async fn ingest(state: &AppState, raw: Vec<Value>, kind: Option<Kind>) -> ApiResult<IngestResult> {
    let now = Utc::now();
    let parsed: Vec<Result<EventIn, Rejected>> = raw
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let mut v = v;
            if let (Some(k), Value::Object(map)) = (kind, &mut v) {
                map.entry("kind").or_insert_with(|| json!(k));
            }
            serde_path_to_error::deserialize::<_, EventIn>(v).map_err(|e| Rejected {
                index,
                code: "validation_failed",
                field: Some(e.path().to_string()).filter(|p| p != "."),
                message: e.into_inner().to_string(),
            })
        })
        .collect();

    let refs: BTreeSet<String> = parsed.iter().filter_map(|p| p.as_ref().ok()).map(|e| e.experiment.clone()).collect();
    let experiments = lookup_experiments(state, &refs).await?;

    let mut rejected = Vec::new();
    let mut events = Vec::new();
    let mut seen = HashSet::new();
    let mut duplicates_in_batch = 0u64;
    for (index, p) in parsed.into_iter().enumerate() {
        match p.and_then(|e| validate(index, e, kind, &experiments, now)) {
            Ok(e) => {
                if seen.insert(e.event_id.clone()) {
                    events.push(e);
                } else {
                    duplicates_in_batch += 1;
                }
            }
            Err(r) => rejected.push(r),
        }
    }
    let accepted = store(state, &events).await?;
    if accepted > 0 {
        let touched: BTreeSet<Uuid> = events.iter().map(|e| e.experiment_id).collect();
        for id in touched {
            // No subscribers is fine: nobody is watching.
            let _ = state.live.send(id);
        }
    }
    metrics::counter!("events_accepted_total").increment(accepted);
    metrics::counter!("events_duplicate_total").increment(events.len() as u64 - accepted + duplicates_in_batch);
    metrics::counter!("events_rejected_total").increment(rejected.len() as u64);
    Ok(IngestResult { accepted, duplicates: events.len() as u64 - accepted + duplicates_in_batch, rejected })
}

struct ExperimentRef {
    id: Uuid,
    variants: Vec<Variant>,
}

async fn lookup_experiments(state: &AppState, refs: &BTreeSet<String>) -> ApiResult<HashMap<String, ExperimentRef>> {
    if refs.is_empty() {
        return Ok(HashMap::new());
    }
    let list: Vec<&String> = refs.iter().collect();
    let rows: Vec<(Uuid, String, Db<Vec<Variant>>)> =
        sqlx::query_as("SELECT id, key, variants FROM experiments WHERE key = ANY($1) OR id::text = ANY($1)")
            .bind(&list)
            .fetch_all(&state.db)
            .await?;
    let mut out = HashMap::new();
    for r in refs {
        if let Some((id, _, variants)) = rows.iter().find(|(id, key, _)| key == r || id.to_string() == *r) {
            out.insert(r.clone(), ExperimentRef { id: *id, variants: variants.0.clone() });
        }
    }
    Ok(out)
}

fn validate(index: usize, e: EventIn, forced: Option<Kind>, experiments: &HashMap<String, ExperimentRef>, now: DateTime<Utc>) -> Result<Event, Rejected> {
    let reject = |field: &str, message: String| Rejected { index, code: "validation_failed", field: Some(field.to_owned()), message };
    let kind = forced.or(e.kind).ok_or_else(|| reject("kind", "missing: one of exposure, metric, conversion".into()))?;
    if forced.is_some_and(|f| Some(f) != e.kind) {
        return Err(reject("kind", format!("this endpoint takes {:?} events only", forced)));
    }
    let Some(exp) = experiments.get(e.experiment.as_str()) else {
        return Err(Rejected { index, code: "not_found", field: Some("experiment".into()), message: format!("experiment `{}` not found", e.experiment) });
    };
    check_unit_id("unit_id", &e.unit_id).map_err(|_| reject("unit_id", "must be 1 to 256 bytes".into()))?;
    if !exp.variants.iter().any(|v| v.key == e.variant_key) {
        let keys: Vec<&str> = exp.variants.iter().map(|v| v.key.as_str()).collect();
        return Err(reject("variant_key", format!("`{}` is not a variant of `{}` ({})", e.variant_key, e.experiment, keys.join(", "))));
    }
    let metric = match kind {
        Kind::Exposure => None,
        Kind::Metric => Some(e.metric.ok_or_else(|| reject("metric", "missing: the metric's name".into()))?),
        Kind::Conversion => Some(e.metric.unwrap_or_else(|| DEFAULT_CONVERSION_METRIC.into())),
    };
    if metric.as_ref().is_some_and(|m| m.is_empty() || m.len() > 128) {
        return Err(reject("metric", "must be 1 to 128 bytes".into()));
    }
    let value = match kind {
        Kind::Metric => Some(e.value.ok_or_else(|| reject("value", "missing: a number".into()))?),
        _ => e.value,
    };
    if value.is_some_and(|v| !v.is_finite()) {
        return Err(reject("value", "must be a finite number".into()));
    }
    let ts = e.ts.unwrap_or(now);
    if ts > now + Duration::hours(24) {
        return Err(reject("ts", "is more than 24 hours in the future".into()));
    }
    let event_id = match e.event_id {
        Some(id) if id.is_empty() || id.len() > 128 => return Err(reject("event_id", "must be 1 to 128 bytes".into())),
        Some(id) => id,
        None => Uuid::now_v7().to_string(),
    };
    Ok(Event { experiment_id: exp.id, kind, unit_id: e.unit_id, variant_key: e.variant_key, metric, value, ts, event_id })
}

/// Writes in one statement; returns how many events were new.
async fn store(state: &AppState, events: &[Event]) -> ApiResult<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let (mut exp, mut kind, mut unit, mut variant, mut metric, mut value, mut ts, mut id) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for e in events {
        exp.push(e.experiment_id);
        kind.push(e.kind as i16);
        unit.push(e.unit_id.as_str());
        variant.push(e.variant_key.as_str());
        metric.push(e.metric.as_deref());
        value.push(e.value);
        ts.push(e.ts);
        id.push(e.event_id.as_str());
    }
    let (accepted,): (i64,) = sqlx::query_as(
        "WITH input AS (
             SELECT * FROM unnest($1::uuid[], $2::int2[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::timestamptz[], $8::text[])
                 AS t(experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id)
         ), fresh AS (
             INSERT INTO event_ids (event_id) SELECT event_id FROM input ON CONFLICT DO NOTHING RETURNING event_id
         ), stored AS (
             INSERT INTO events (experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id)
             SELECT i.experiment_id, i.kind, i.unit_id, i.variant_key, i.metric, i.value, i.ts, i.event_id
             FROM input i JOIN fresh USING (event_id)
             RETURNING 1
         ), exposed AS (
             -- Earliest exposure wins, whatever order events arrive in.
             INSERT INTO unit_exposures (experiment_id, unit_id, variant_key, first_ts)
             SELECT DISTINCT ON (i.experiment_id, i.unit_id) i.experiment_id, i.unit_id, i.variant_key, i.ts
             FROM input i JOIN fresh USING (event_id)
             WHERE i.kind = 1
             ORDER BY i.experiment_id, i.unit_id, i.ts
             ON CONFLICT (experiment_id, unit_id) DO UPDATE
                 SET variant_key = excluded.variant_key, first_ts = excluded.first_ts
                 WHERE excluded.first_ts < unit_exposures.first_ts
         )
         SELECT count(*) FROM stored",
    )
    .bind(exp)
    .bind(kind)
    .bind(unit)
    .bind(variant)
    .bind(metric)
    .bind(value)
    .bind(ts)
    .bind(id)
    .fetch_one(&state.db)
    .await?;
    Ok(accepted as u64)
}
