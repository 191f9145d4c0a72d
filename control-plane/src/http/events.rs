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
use serde_json::json;
use serde_json::value::RawValue;
use sqlx::types::Json as Db;
use uuid::Uuid;

use super::assign::check_unit_id;
use super::extract::{Json, strip_position};
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

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Exposure => "exposure",
            Kind::Metric => "metric",
            Kind::Conversion => "conversion",
        }
    }
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
    /// On exposures: the unit's attributes (country, plan, …) for segment breakdowns; the first
    /// exposure's are the unit's.
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
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
    /// JSON text of the exposure's attributes.
    attributes: Option<String>,
}

/// Attributes are for segmenting, not payloads.
const MAX_ATTRIBUTES_BYTES: usize = 4096;

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

async fn single(State(state): State<AppState>, Json(body): Json<Box<RawValue>>, kind: Kind) -> ApiResult<(StatusCode, axum::Json<IngestResult>)> {
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
    // Parsed one by one, so that one malformed event rejects only itself.
    events: Vec<Box<RawValue>>,
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
async fn ingest(state: &AppState, raw: Vec<Box<RawValue>>, kind: Option<Kind>) -> ApiResult<IngestResult> {
    let now = Utc::now();
    let parsed: Vec<Result<EventIn, Rejected>> = raw
        .iter()
        .enumerate()
        .map(|(index, v)| {
            // The fast path; the path-tracking parser only runs again to explain a failure.
            if let Ok(e) = serde_json::from_str::<EventIn>(v.get()) {
                return Ok(e);
            }
            let de = &mut serde_json::Deserializer::from_str(v.get());
            serde_path_to_error::deserialize::<_, EventIn>(de).map_err(|e| Rejected {
                index,
                code: "validation_failed",
                field: Some(e.path().to_string()).filter(|p| p != "."),
                message: strip_position(&e.into_inner().to_string()),
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
                if seen.insert((e.experiment_id, e.event_id.clone())) {
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
        state.rollup.notify_one();
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
    if let (Some(endpoint), Some(given)) = (forced, e.kind)
        && endpoint != given
    {
        return Err(reject("kind", format!("this endpoint takes {} events only", endpoint.as_str())));
    }
    let Some(exp) = experiments.get(e.experiment.as_str()) else {
        return Err(Rejected { index, code: "not_found", field: Some("experiment".into()), message: format!("experiment `{}` not found", e.experiment) });
    };
    check_unit_id("unit_id", &e.unit_id).map_err(|e| reject("unit_id", e.to_string()))?;
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
    let attributes = match (kind, e.attributes) {
        (_, None) => None,
        (Kind::Exposure, Some(map)) => {
            let text = serde_json::to_string(&map).map_err(|err| reject("attributes", err.to_string()))?;
            if text.len() > MAX_ATTRIBUTES_BYTES {
                return Err(reject("attributes", format!("must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON")));
            }
            Some(text)
        }
        (_, Some(_)) => return Err(reject("attributes", "are recorded on exposure events only".into())),
    };
    let event_id = match e.event_id {
        Some(id) if id.is_empty() || id.len() > 128 => return Err(reject("event_id", "must be 1 to 128 bytes".into())),
        Some(id) => id,
        None => Uuid::now_v7().to_string(),
    };
    Ok(Event { experiment_id: exp.id, kind, unit_id: e.unit_id, variant_key: e.variant_key, metric, value, ts, event_id, attributes })
}

/// Writes a batch in one transaction: `COPY` into a per-connection temp table (the fastest way
/// into Postgres), then one statement that records the new event ids, stores the new events and
/// keeps each unit's first exposure. Returns how many events were new.
async fn store(state: &AppState, events: &[Event]) -> ApiResult<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut tx = state.db.begin().await?;
    // Temp tables are per connection, unlogged, and emptied at commit.
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS ingest_stage (
             experiment_id uuid, kind int2, unit_id text, variant_key text, metric text,
             value float8, ts timestamptz, event_id text, attributes jsonb
         ) ON COMMIT DELETE ROWS",
    )
    .execute(&mut *tx)
    .await?;
    let mut copy = tx
        .copy_in_raw("COPY ingest_stage (experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id, attributes) FROM STDIN")
        .await?;
    copy.send(copy_text(events)).await?;
    copy.finish().await?;
    let (accepted,): (i64,) = sqlx::query_as(
        "WITH fresh AS (
             INSERT INTO event_ids (experiment_id, event_id) SELECT experiment_id, event_id FROM ingest_stage
             ON CONFLICT DO NOTHING RETURNING experiment_id, event_id
         ), stored AS (
             INSERT INTO events (experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id, attributes)
             SELECT s.experiment_id, s.kind, s.unit_id, s.variant_key, s.metric, s.value, s.ts, s.event_id, s.attributes
             FROM ingest_stage s JOIN fresh USING (experiment_id, event_id)
             RETURNING experiment_id, kind, unit_id, variant_key, ts
         ), exposed AS (
             -- Earliest exposure wins, whatever order events arrive in.
             INSERT INTO unit_exposures (experiment_id, unit_id, variant_key, first_ts)
             SELECT DISTINCT ON (experiment_id, unit_id) experiment_id, unit_id, variant_key, ts
             FROM stored WHERE kind = 1
             ORDER BY experiment_id, unit_id, ts
             ON CONFLICT (experiment_id, unit_id) DO UPDATE
                 SET variant_key = excluded.variant_key, first_ts = excluded.first_ts
                 WHERE excluded.first_ts < unit_exposures.first_ts
         )
         SELECT count(*) FROM stored",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(accepted as u64)
}

/// Rows in COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn copy_text(events: &[Event]) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(events.len() * 128);
    for e in events {
        let _ = write!(out, "{}\t{}\t", e.experiment_id, e.kind as i16);
        escape_copy(&mut out, &e.unit_id);
        out.push('\t');
        escape_copy(&mut out, &e.variant_key);
        out.push('\t');
        match &e.metric {
            Some(m) => escape_copy(&mut out, m),
            None => out.push_str("\\N"),
        }
        match e.value {
            // `{:?}` prints a float so that it parses back to the same value.
            Some(v) => { let _ = write!(out, "\t{v:?}\t"); }
            None => out.push_str("\t\\N\t"),
        }
        let _ = write!(out, "{}\t", e.ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        escape_copy(&mut out, &e.event_id);
        out.push('\t');
        match &e.attributes {
            Some(a) => escape_copy(&mut out, a),
            None => out.push_str("\\N"),
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn escape_copy(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_and_nulls() {
        let e = Event {
            experiment_id: Uuid::nil(), kind: Kind::Metric, unit_id: "a\tb\\c\nd".into(), variant_key: "v".into(),
            metric: None, value: Some(0.1), ts: DateTime::from_timestamp(0, 0).unwrap_or_default(), event_id: "e".into(),
            attributes: Some(r#"{"q":"a\"b\\c"}"#.into()),
        };
        let text = String::from_utf8(copy_text(&[e])).unwrap_or_default();
        assert_eq!(text, "00000000-0000-0000-0000-000000000000\t2\ta\\tb\\\\c\\nd\tv\t\\N\t0.1\t1970-01-01T00:00:00.000000Z\te\t{\"q\":\"a\\\\\"b\\\\\\\\c\"}\n");
    }
}
