//! Event ingestion: exposures, metrics, conversions, one at a time or in batches.
//!
//! Each event is validated on its own: in a batch the bad ones are reported by index and reason,
//! the good ones land. Idempotency: an `event_id` (client-given, else minted here) is stored once
//! per experiment, as a uuid key in `event_ids`; a re-sent event is counted as a duplicate and
//! changes nothing. One transaction writes the keys, the raw events and the per-unit first
//! exposures, so a batch lands whole or not at all: nothing answered 202 is lost.

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
use sqlx::PgPool;
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
    /// What `event_ids` stores for `event_id` (see [`event_key`]).
    key: Uuid,
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
                if seen.insert((e.experiment_id, e.key)) {
                    events.push(e);
                } else {
                    duplicates_in_batch += 1;
                }
            }
            Err(r) => rejected.push(r),
        }
    }
    let accepted = store(&state.db, &events).await?;
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
    let key = event_key(&event_id);
    Ok(Event { experiment_id: exp.id, kind, unit_id: e.unit_id, variant_key: e.variant_key, metric, value, ts, event_id, key, attributes })
}

/// The dedup key of an event id: the id itself when it is a canonical UUID (what the edge, the
/// SDKs and this module mint), else the MD5 of its bytes. Migration 0007 computes the same in SQL.
fn event_key(event_id: &str) -> Uuid {
    use md5::{Digest, Md5};
    match Uuid::try_parse(event_id) {
        // Only the canonical spelling: "ABC…" and "abc…" are different ids, so they must not
        // share a key.
        Ok(u) if u.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == event_id => u,
        _ => Uuid::from_bytes(Md5::digest(event_id.as_bytes()).into()),
    }
}

/// Writes a batch in one transaction and returns how many of its events were new: their keys
/// into `event_ids`, the events by `COPY` straight into `events`, and each unit's first exposure.
///
/// A batch is normally all new (a duplicate is a redelivery), so the keys first go in with a plain
/// `INSERT`: `ON CONFLICT` costs a speculative insertion per row, which measured more than storing
/// the event itself. Only when that meets a duplicate (unique violation, which also waits out a
/// concurrent batch holding the same key) is the batch redone, keeping just the new events.
async fn store(db: &PgPool, events: &[Event]) -> Result<u64, sqlx::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    // Sorted, so that two batches sharing keys lock them in the same order (no deadlock).
    let mut keys: Vec<(Uuid, Uuid)> = events.iter().map(|e| (e.experiment_id, e.key)).collect();
    keys.sort_unstable();
    let (experiments, keys): (Vec<Uuid>, Vec<Uuid>) = keys.into_iter().unzip();
    let mut tx = db.begin().await?;
    let first = sqlx::query("INSERT INTO event_ids (experiment_id, event_key) SELECT * FROM unnest($1::uuid[], $2::uuid[])")
        .bind(&experiments)
        .bind(&keys)
        .execute(&mut *tx)
        .await;
    let fresh: Vec<&Event> = match first {
        Ok(_) => events.iter().collect(),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            tx.rollback().await?;
            tx = db.begin().await?;
            let new: HashSet<(Uuid, Uuid)> = sqlx::query_as(
                "INSERT INTO event_ids (experiment_id, event_key) SELECT * FROM unnest($1::uuid[], $2::uuid[])
                 ON CONFLICT DO NOTHING RETURNING experiment_id, event_key",
            )
            .bind(&experiments)
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            events.iter().filter(|e| new.contains(&(e.experiment_id, e.key))).collect()
        }
        Err(e) => return Err(e),
    };
    if !fresh.is_empty() {
        let mut copy = tx
            .copy_in_raw("COPY events (experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id, attributes) FROM STDIN")
            .await?;
        copy.send(copy_text(&fresh)).await?;
        copy.finish().await?;
        let first_exposures = first_exposures(&fresh);
        if !first_exposures.is_empty() {
            let (mut ids, mut units, mut variants, mut ts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for e in first_exposures {
                ids.push(e.experiment_id);
                units.push(e.unit_id.as_str());
                variants.push(e.variant_key.as_str());
                ts.push(e.ts);
            }
            sqlx::query(
                // Earliest exposure wins, whatever order events arrive in.
                "INSERT INTO unit_exposures (experiment_id, unit_id, variant_key, first_ts)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
                 ON CONFLICT (experiment_id, unit_id) DO UPDATE
                     SET variant_key = excluded.variant_key, first_ts = excluded.first_ts
                     WHERE excluded.first_ts < unit_exposures.first_ts",
            )
            .bind(&ids)
            .bind(&units)
            .bind(&variants)
            .bind(&ts)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(fresh.len() as u64)
}

/// Each unit's earliest exposure in the batch, sorted by (experiment, unit): one row per unit for
/// the upsert (which may not touch a row twice), locked in the same order by every batch.
fn first_exposures<'a>(events: &[&'a Event]) -> Vec<&'a Event> {
    let mut earliest: HashMap<(Uuid, &str), &Event> = HashMap::new();
    for e in events.iter().copied().filter(|e| e.kind == Kind::Exposure) {
        earliest.entry((e.experiment_id, e.unit_id.as_str())).and_modify(|f| if e.ts < f.ts { *f = e }).or_insert(e);
    }
    let mut out: Vec<&Event> = earliest.into_values().collect();
    out.sort_unstable_by(|a, b| (a.experiment_id, &a.unit_id).cmp(&(b.experiment_id, &b.unit_id)));
    out
}

/// Rows in COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn copy_text(events: &[&Event]) -> Vec<u8> {
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

    fn event(kind: Kind, unit: &str, ts: i64) -> Event {
        Event {
            experiment_id: Uuid::nil(), kind, unit_id: unit.into(), variant_key: "v".into(), metric: None, value: None,
            ts: DateTime::from_timestamp(ts, 0).unwrap_or_default(), event_id: "e".into(), key: Uuid::nil(), attributes: None,
        }
    }

    #[test]
    fn copy_text_escapes_and_nulls() {
        let e = Event {
            metric: None, value: Some(0.1), attributes: Some(r#"{"q":"a\"b\\c"}"#.into()),
            ..event(Kind::Metric, "a\tb\\c\nd", 0)
        };
        let text = String::from_utf8(copy_text(&[&e])).unwrap_or_default();
        assert_eq!(text, "00000000-0000-0000-0000-000000000000\t2\ta\\tb\\\\c\\nd\tv\t\\N\t0.1\t1970-01-01T00:00:00.000000Z\te\t{\"q\":\"a\\\\\"b\\\\\\\\c\"}\n");
    }

    #[test]
    fn event_key_is_the_canonical_uuid_itself_else_md5() {
        let id = "0193a8f2-7c4e-7b21-9f3a-5d6e7f809102";
        assert_eq!(event_key(id).to_string(), id);
        // MD5("abc") is RFC 1321's test vector.
        assert_eq!(event_key("abc").simple().to_string(), "900150983cd24fb0d6963f7d28e17f72");
        // Other spellings of the same UUID are other ids.
        let upper = id.to_uppercase();
        let simple = id.replace('-', "");
        assert_ne!(event_key(&upper), event_key(id));
        assert_ne!(event_key(&simple), event_key(id));
        assert_ne!(event_key(&upper), event_key(&simple));
    }

    #[test]
    fn first_exposures_keeps_each_units_earliest_sorted() {
        let events = [
            event(Kind::Exposure, "b", 5),
            event(Kind::Exposure, "a", 9),
            event(Kind::Metric, "c", 1),
            event(Kind::Exposure, "b", 3),
            event(Kind::Exposure, "a", 7),
            event(Kind::Exposure, "b", 4),
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let got: Vec<(&str, i64)> = first_exposures(&refs).iter().map(|e| (e.unit_id.as_str(), e.ts.timestamp())).collect();
        assert_eq!(got, [("a", 7), ("b", 3)]);
    }
}
