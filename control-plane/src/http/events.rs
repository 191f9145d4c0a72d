//! Event ingestion: exposures, metrics, conversions, one at a time or in batches.
//!
//! Each event is validated on its own, by `litmus_shared::validate` (the edge's rules too) and then
//! against its experiment ([`admit`]): in a batch the bad ones are reported by index, code, field
//! path and message, the good ones land. Idempotency: an `event_id` (client-given, else minted here) is stored once
//! per experiment, as a uuid key in `event_ids`; a re-sent event is counted as a duplicate and
//! changes nothing. One transaction writes the keys, the raw events and the per-unit first
//! exposures, so a batch lands whole or not at all: nothing answered 202 is lost.

use std::collections::{BTreeSet, HashMap, HashSet};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use litmus_shared::validate;
use litmus_shared::{Status, Variant};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use sqlx::PgPool;
use sqlx::types::Json as Db;
use uuid::Uuid;

use super::extract::{Json, strip_position};
use super::{ApiError, ApiResult, AppState};

pub fn router(batch_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/events/exposure", post(|s, b| single(s, b, validate::Kind::Exposure)))
        .route("/events/metric", post(|s, b| single(s, b, validate::Kind::Metric)))
        .route("/events/conversion", post(|s, b| single(s, b, validate::Kind::Conversion)))
        .route("/events/batch", post(batch).layer(DefaultBodyLimit::max(batch_limit)))
}

pub const MAX_BATCH_EVENTS: usize = 10_000;

/// The event kinds, as stored in `events.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exposure = 1,
    Metric = 2,
    Conversion = 3,
}

impl From<validate::Kind> for Kind {
    fn from(k: validate::Kind) -> Self {
        match k {
            validate::Kind::Exposure => Kind::Exposure,
            validate::Kind::Metric => Kind::Metric,
            validate::Kind::Conversion => Kind::Conversion,
        }
    }
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
    /// Exposures: the config version the assignment was served from.
    version: Option<i64>,
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
    /// Single conversions: the metric it counts under (said, since it may be the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<String>,
}

async fn single(State(state): State<AppState>, Json(body): Json<Box<RawValue>>, kind: validate::Kind) -> ApiResult<(StatusCode, axum::Json<IngestResult>)> {
    let mut result = ingest(&state, vec![body], Some(kind)).await?;
    if let Some(r) = result.rejected.pop() {
        return Err(match r.code {
            "not_found" => ApiError::NotFound(r.message),
            "experiment_not_running" | "experiment_stopped" => ApiError::Lifecycle { code: r.code, message: r.message },
            _ => ApiError::validation(r.field.unwrap_or_default(), r.message),
        });
    }
    Ok((StatusCode::ACCEPTED, axum::Json(result)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    // Parsed one by one, so that one malformed event rejects only itself.
    #[serde(default)]
    events: Vec<Box<RawValue>>,
    /// Exposure groups (`litmus_shared::exposures`), as the edge forwards them: each stands for
    /// one exposure event per pair, numbered after `events`, group by group.
    #[serde(default)]
    exposures: Vec<Box<RawValue>>,
    /// Events the edge refused for their signature since its last report (`/metrics`:
    /// `edge_events_refused_total`).
    #[serde(default)]
    refused: u64,
}

async fn batch(State(state): State<AppState>, Json(body): Json<BatchIn>) -> ApiResult<(StatusCode, axum::Json<IngestResult>)> {
    let BatchIn { mut events, exposures, refused } = body;
    if refused > 0 {
        metrics::counter!("edge_events_refused_total").increment(refused);
    }
    // Counted before anything is expanded: a group copies its unit and attributes into each of
    // its events, so the size of the body says nothing about the size of its expansion.
    let mut total = events.len();
    for (g, group) in exposures.iter().enumerate() {
        let n = litmus_shared::exposures::expand_count(group.get())
            .map_err(|e| e.under(&format!("exposures[{g}]")))
            .map_err(|e| ApiError::validation(e.path, e.message))?;
        total = total.saturating_add(n);
        if total > MAX_BATCH_EVENTS {
            return Err(ApiError::PayloadTooLarge);
        }
    }
    // Where each group's events start: rejections name `exposures[g].exposures[j]`.
    let mut starts = Vec::with_capacity(exposures.len());
    for (g, group) in exposures.iter().enumerate() {
        // A group's shape is the sender's contract, not an event's fault: the batch is refused
        // whole, as a malformed body is.
        let expanded = litmus_shared::exposures::expand(group.get())
            .map_err(|e| e.under(&format!("exposures[{g}]")))
            .map_err(|e| ApiError::validation(e.path, e.message))?;
        starts.push(events.len());
        for text in expanded {
            events.push(RawValue::from_string(text).map_err(|e| ApiError::Internal(e.into()))?);
        }
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::PayloadTooLarge);
    }
    let n = events.len();
    let mut result = ingest(&state, events, None).await?;
    for r in &mut result.rejected {
        let prefix = match starts.iter().rposition(|s| *s <= r.index) {
            Some(g) => format!("exposures[{g}].exposures[{}]", r.index - starts[g]),
            None => format!("events[{}]", r.index),
        };
        r.field = Some(match r.field.take() {
            Some(f) if !f.is_empty() => format!("{prefix}.{f}"),
            _ => prefix,
        });
    }
    if n > 0 && result.rejected.len() == n {
        let first = &result.rejected[0];
        return Err(ApiError::Validation {
            field: first.field.clone(),
            message: format!("all {n} events were rejected; first: {}", first.message),
            details: Some(json!({"rejected": result.rejected})),
        });
    }
    Ok((StatusCode::ACCEPTED, axum::Json(result)))
}

/// Validates every event, stores the good ones, reports the rest.
async fn ingest(state: &AppState, raw: Vec<Box<RawValue>>, kind: Option<validate::Kind>) -> ApiResult<IngestResult> {
    let now = Utc::now();
    let parsed: Vec<Result<validate::Event, Rejected>> = raw
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let invalid = |e: validate::Invalid| Rejected { index, code: e.code, field: Some(e.field), message: e.message };
            // Parsed one by one, so that text serde refuses (a lone surrogate) rejects only its event.
            let value: serde_json::Value = serde_json::from_str(v.get()).map_err(|e| Rejected {
                index,
                code: "validation_failed",
                field: None,
                message: format!("is not valid JSON: {}", strip_position(&e.to_string())),
            })?;
            validate::event(&value, kind, now.timestamp_micros()).map_err(invalid)
        })
        .collect();

    let refs: BTreeSet<String> = parsed.iter().filter_map(|p| p.as_ref().ok()).map(|e| e.experiment.clone()).collect();
    let experiments = lookup_experiments(state, &refs).await?;

    let mut rejected = Vec::new();
    let mut events = Vec::new();
    let mut seen = HashSet::new();
    let mut duplicates_in_batch = 0u64;
    let single_metric = match &parsed[..] {
        [Ok(e)] if kind == Some(validate::Kind::Conversion) => e.metric.clone(),
        _ => None,
    };
    for (index, p) in parsed.into_iter().enumerate() {
        match p.and_then(|e| admit(index, e, &experiments, now)) {
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
    let metric = single_metric.filter(|_| rejected.is_empty());
    Ok(IngestResult { accepted, duplicates: events.len() as u64 - accepted + duplicates_in_batch, rejected, metric })
}

struct ExperimentRef {
    id: Uuid,
    variants: Vec<Variant>,
    status: Status,
    stopped_at: Option<DateTime<Utc>>,
}

async fn lookup_experiments(state: &AppState, refs: &BTreeSet<String>) -> ApiResult<HashMap<String, ExperimentRef>> {
    if refs.is_empty() {
        return Ok(HashMap::new());
    }
    let list: Vec<&String> = refs.iter().collect();
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        key: String,
        variants: Db<Vec<Variant>>,
        status: String,
        stopped_at: Option<DateTime<Utc>>,
    }
    let rows: Vec<Row> =
        sqlx::query_as("SELECT id, key, variants, status, stopped_at FROM experiments WHERE key = ANY($1) OR id::text = ANY($1)")
            .bind(&list)
            .fetch_all(&state.db)
            .await?;
    let mut out = HashMap::new();
    for r in refs {
        if let Some(row) = rows.iter().find(|row| row.key == *r || row.id.to_string() == *r) {
            let status = Status::parse(&row.status).unwrap_or(Status::Draft);
            out.insert(r.clone(), ExperimentRef { id: row.id, variants: row.variants.0.clone(), status, stopped_at: row.stopped_at });
        }
    }
    Ok(out)
}

/// What only the control plane can check: the experiment exists, the variant is one of its
/// variants, and its lifecycle takes an event from that time (`validate::lifecycle`).
fn admit(index: usize, e: validate::Event, experiments: &HashMap<String, ExperimentRef>, now: DateTime<Utc>) -> Result<Event, Rejected> {
    let Some(exp) = experiments.get(e.experiment.as_str()) else {
        return Err(Rejected { index, code: "not_found", field: Some("experiment".into()), message: format!("experiment `{}` not found", e.experiment) });
    };
    if !exp.variants.iter().any(|v| v.key == e.variant_key) {
        let keys: Vec<&str> = exp.variants.iter().map(|v| v.key.as_str()).collect();
        let message = format!("`{}` is not a variant of `{}` ({})", e.variant_key, e.experiment, keys.join(", "));
        return Err(Rejected { index, code: "validation_failed", field: Some("variant_key".into()), message });
    }
    // Without `ts` the event happened when it arrived.
    let ts = e.ts.as_ref().and_then(|t| DateTime::from_timestamp_micros(t.micros)).unwrap_or(now);
    validate::lifecycle(exp.status, exp.stopped_at.map(|t| t.timestamp_micros()), ts.timestamp_micros())
        .map_err(|(code, message)| Rejected { index, code, field: Some("experiment".into()), message })?;
    let attributes = e.attributes.as_ref().map(serde_json::to_string).transpose().map_err(|err| Rejected {
        index,
        code: "validation_failed",
        field: Some("attributes".into()),
        message: err.to_string(),
    })?;
    let event_id = e.event_id.unwrap_or_else(|| Uuid::now_v7().to_string());
    let key = event_key(&e.unit_id, e.kind, &e.variant_key, e.metric.as_deref(), e.value, &event_id);
    Ok(Event {
        experiment_id: exp.id,
        kind: e.kind.into(),
        unit_id: e.unit_id,
        variant_key: e.variant_key,
        metric: e.metric,
        value: e.value,
        ts,
        event_id,
        key,
        attributes,
        // A signed answer names its version, and the edge checked the signature, not the
        // `version` field beside it: the signed one wins; clients echoing it need not repeat it.
        version: e.signature.as_deref().filter(|_| e.kind == validate::Kind::Exposure).and_then(validate::signed_version).or(e.version),
    })
}

/// The dedup key of an event: its id scoped by what it says (unit, kind, variant, metric,
/// value). A re-sent event (same id, same content) is a duplicate; an id someone else sent first,
/// for another unit or with other content, claims nothing. Without the scope, anyone who learnt or
/// guessed a client's next `event_id` could send it first and have the real event dropped as a
/// duplicate. The time and attributes are left out: a client that re-sends without `ts` gets a new
/// receive time, and that is still the same event.
fn event_key(unit_id: &str, kind: validate::Kind, variant_key: &str, metric: Option<&str>, value: Option<f64>, event_id: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"litmus-edge event v1");
    field(unit_id.as_bytes());
    field(kind.as_str().as_bytes());
    field(variant_key.as_bytes());
    field(metric.unwrap_or("").as_bytes());
    field(&value.map_or([0xff; 8], |v| v.to_bits().to_le_bytes()));
    field(event_id.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
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
            .copy_in_raw("COPY events (experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id, attributes, version) FROM STDIN")
            .await?;
        copy.send(copy_text(&fresh)).await?;
        copy.finish().await?;
        let first_exposures = first_exposures(&fresh);
        if !first_exposures.is_empty() {
            let (mut ids, mut units, mut variants, mut ts, mut versions) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for e in first_exposures {
                ids.push(e.experiment_id);
                units.push(e.unit_id.as_str());
                variants.push(e.variant_key.as_str());
                ts.push(e.ts);
                versions.push(e.version);
            }
            sqlx::query(
                // Earliest exposure wins, whatever order events arrive in.
                "INSERT INTO unit_exposures (experiment_id, unit_id, variant_key, first_ts, version)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::int8[])
                 ON CONFLICT (experiment_id, unit_id) DO UPDATE
                     SET variant_key = excluded.variant_key, first_ts = excluded.first_ts, version = excluded.version
                     WHERE excluded.first_ts < unit_exposures.first_ts",
            )
            .bind(&ids)
            .bind(&units)
            .bind(&variants)
            .bind(&ts)
            .bind(&versions)
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
        match e.version {
            Some(v) => { let _ = write!(out, "\t{v}"); }
            None => out.push_str("\t\\N"),
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
            version: None,
        }
    }

    #[test]
    fn copy_text_escapes_and_nulls() {
        let e = Event {
            metric: None, value: Some(0.1), attributes: Some(r#"{"q":"a\"b\\c"}"#.into()),
            ..event(Kind::Metric, "a\tb\\c\nd", 0)
        };
        let text = String::from_utf8(copy_text(&[&e])).unwrap_or_default();
        assert_eq!(text, "00000000-0000-0000-0000-000000000000\t2\ta\\tb\\\\c\\nd\tv\t\\N\t0.1\t1970-01-01T00:00:00.000000Z\te\t{\"q\":\"a\\\\\"b\\\\\\\\c\"}\t\\N\n");
        let versioned = Event { version: Some(42), kind: Kind::Exposure, ..event(Kind::Exposure, "u", 0) };
        assert!(String::from_utf8(copy_text(&[&versioned])).unwrap_or_default().ends_with("\t\\N\t42\n"));
    }

    #[test]
    fn event_keys_are_scoped_by_unit_and_content() {
        use validate::Kind::{Conversion, Exposure, Metric};
        let id = "0193a8f2-7c4e-7b21-9f3a-5d6e7f809102";
        let key = |unit, kind, variant, metric, value, id| event_key(unit, kind, variant, metric, value, id);
        let base = key("u1", Metric, "b", Some("revenue"), Some(9.5), id);
        let upper = id.to_uppercase();
        // A re-sent event is the same key: counted once.
        assert_eq!(base, key("u1", Metric, "b", Some("revenue"), Some(9.5), id));
        // The same id from anyone saying anything else is another key: it claims nothing.
        for other in [
            key("u2", Metric, "b", Some("revenue"), Some(9.5), id),
            key("u1", Conversion, "b", Some("revenue"), None, id),
            key("u1", Metric, "a", Some("revenue"), Some(9.5), id),
            key("u1", Metric, "b", Some("orders"), Some(9.5), id),
            key("u1", Metric, "b", Some("revenue"), Some(0.0), id),
            key("u1", Metric, "b", Some("revenue"), Some(9.5), &upper),
            key("u1", Exposure, "b", None, None, id),
        ] {
            assert_ne!(other, base);
        }
        // Length prefixes: fields cannot run into each other.
        assert_ne!(key("ab", Exposure, "c", None, None, id), key("a", Exposure, "bc", None, None, id));
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
