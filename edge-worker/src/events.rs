//! Events: exposures the edge served and events clients send to `POST /v1/events`, forwarded to
//! the control plane's `POST /api/v1/events/batch`.
//!
//! The request path only enqueues (one Queue message per request, [`crate::envelope`]); the `queue`
//! handler expands messages back into events, posts them in batches
//! to the control plane and asks for redelivery when it does not answer 2xx, so nothing the edge
//! acknowledged is lost while the control plane is down. Redelivery backs off ([`backoff_seconds`]),
//! so `max_retries` spans a long outage; past it a batch lands in the dead-letter queue instead
//! of being dropped. Without an `EVENTS` queue binding the worker falls
//! back to posting from `wait_until`, which is best effort only.

use litmus_shared::validate;
use serde::Serialize;
use serde_json::{Map, Value, json};
use worker::{Context, Fetch, MessageBatch, MessageExt, QueueRetryOptionsBuilder, Request, Response};

use crate::body;
use crate::envelope;
use crate::error::{ApiError, ApiResult, json_response};
use crate::state::AppState;

pub const MAX_EVENTS: usize = 1000;
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Queues accept at most 100 messages per `sendBatch`.
const SEND_BATCH: usize = 100;
const FORWARD_TIMEOUT_MS: u32 = 10_000;
/// Events per POST to the control plane's batch endpoint (it takes up to 10 000 and 16 MiB).
const POST_EVENTS: usize = 2_000;

/// The batch endpoint's event shape; only these fields are forwarded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub kind: String,
    pub experiment: String,
    pub unit_id: String,
    pub variant_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub event_id: String,
    pub ts: String,
    /// On exposures only: the unit's attributes, for segment breakdowns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

/// Attributes worth forwarding with an exposure: none when empty, too large or not storable
/// (`validate::attributes`, the control plane's rule). The assignment is answered either way;
/// only the segment breakdown loses them, where refusing would lose the exposure itself.
pub fn storable_segment(attributes: &Map<String, Value>) -> bool {
    !attributes.is_empty() && validate::attributes(attributes).is_ok()
}


/// A v4 UUID from the runtime's CSPRNG (`crypto.randomUUID()`), called through `Reflect` because
/// the `web-sys` build that workers-rs uses does not include `Crypto`.
pub fn random_uuid() -> String {
    use worker::js_sys::{Function, Reflect, global};
    use worker::wasm_bindgen::JsCast;
    let crypto = Reflect::get(&global(), &"crypto".into()).ok();
    let uuid = crypto.and_then(|crypto| {
        let f = Reflect::get(&crypto, &"randomUUID".into()).ok()?.dyn_into::<Function>().ok()?;
        f.call0(&crypto).ok()?.as_string()
    });
    // `crypto.randomUUID` exists in every Workers runtime; the fallback only keeps this total.
    uuid.unwrap_or_else(|| {
        format!("{:016x}{:016x}", worker::Date::now().as_millis(), (worker::js_sys::Math::random() * 1e18) as u64)
    })
}

/// An event id for now ([`crate::ids::event_id`]).
pub fn event_uuid() -> String {
    crate::ids::event_id(now_ms())
}

pub fn now_rfc3339() -> String {
    crate::ids::timestamp(now_ms())
}

pub fn now_ms() -> f64 {
    worker::Date::now().as_millis() as f64
}

// --- POST /v1/events --------------------------------------------------------------------------

pub async fn post(req: &mut Request, state: &AppState, ctx: &Context) -> ApiResult<Response> {
    let parsed = body::json(req, MAX_BODY_BYTES).await?;
    let Some(Value::Array(items)) = parsed.get("events") else {
        return Err(ApiError::validation("events", "expected an object with an `events` array"));
    };
    if items.len() > MAX_EVENTS {
        return Err(ApiError::too_large(format!("at most {MAX_EVENTS} events per request")));
    }

    let now_micros = (worker::Date::now().as_millis() as i64).saturating_mul(1000);
    let mut events = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    let mut unproven = 0;
    for (i, item) in items.iter().enumerate() {
        match validate::event(item, None, now_micros).and_then(|e| proven(state, e).inspect_err(|_| unproven += 1)) {
            Ok(e) => events.push(Event::from_valid(e)),
            Err(e) => rejected.push(rejection(i, &e)),
        }
    }
    let refused = tally_refused(unproven, !events.is_empty());
    // As the control plane's batch endpoint: the good events go on, the bad are named; all bad
    // is a 422.
    if !items.is_empty() && events.is_empty() {
        if let Some(n) = refused {
            // Best effort: the answer is a refusal whatever happens to the tally.
            let _ = enqueue(state, ctx, vec![envelope::refused(n)], false).await;
        }
        let first = &rejected[0];
        let field = first["field"].as_str().unwrap_or_default().to_owned();
        let message = format!("all {} events were rejected; first: {}", rejected.len(), first["message"].as_str().unwrap_or_default());
        return Err(ApiError::validation(field, message).with_details("rejected", Value::Array(rejected)));
    }
    let accepted = events.len();
    let texts: Vec<String> = events.iter().filter_map(|e| serde_json::to_string(e).ok()).collect();
    let mut messages = envelope::pack_events(&texts);
    messages.extend(refused.map(envelope::refused));
    enqueue(state, ctx, messages, true).await?;
    let mut answer = json!({ "accepted": accepted });
    if !rejected.is_empty() {
        answer["rejected"] = Value::Array(rejected);
    }
    Ok(json_response(202, &answer))
}

/// An event from the public internet counts only when it echoes the `signature` of an answer
/// that put its unit in its experiment under its variant (`litmus_shared::signing`): anyone can
/// post here, and the platform acts on what it counts. Events sent with a key go to the control
/// plane directly.
fn proven(vars: &crate::state::Vars, e: validate::Event) -> Result<validate::Event, validate::Invalid> {
    let Some(token) = e.signature.as_deref() else {
        if vars.accept_unsigned {
            return Ok(e);
        }
        return Err(validate::Invalid {
            code: "signature_required",
            field: "signature".into(),
            message: "must be the `signature` of the assignment the event reports (from /v1/assign)".into(),
        });
    };
    if vars.signing_keys.verify(token, &e.experiment, &e.unit_id, &e.variant_key).is_none() {
        return Err(validate::Invalid {
            code: "signature_invalid",
            field: "signature".into(),
            message: "does not sign an assignment of this unit to this variant".into(),
        });
    }
    Ok(e)
}

thread_local! {
    // Events this isolate refused for their signature and has not reported yet.
    static REFUSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Refusals travel to the control plane's `/metrics` (`edge_events_refused_total`) with the
/// next events this isolate enqueues, or alone once a hundred have gathered: a flood of forgeries
/// is counted without costing a queue message each.
fn tally_refused(now: u64, sending: bool) -> Option<u64> {
    let total = REFUSED.get() + now;
    if total > 0 && (sending || total >= 100) {
        REFUSED.set(0);
        Some(total)
    } else {
        REFUSED.set(total);
        None
    }
}

/// One refused event, in the control plane's `rejected[]` shape: the same code, field path and
/// message for the same mistake.
fn rejection(index: usize, e: &validate::Invalid) -> Value {
    json!({"index": index, "code": e.code, "field": e.path(&format!("events[{index}]")), "message": e.message})
}

impl Event {
    /// The forwarded form of a valid event: ids and times minted where the client gave none, the
    /// conversion metric spelled out (the control plane would default it the same way).
    fn from_valid(e: validate::Event) -> Self {
        Self {
            kind: e.kind.as_str().to_owned(),
            experiment: e.experiment,
            unit_id: e.unit_id,
            variant_key: e.variant_key,
            metric: e.metric,
            value: e.value,
            event_id: e.event_id.unwrap_or_else(event_uuid),
            ts: e.ts.map_or_else(now_rfc3339, |t| t.text),
            attributes: e.attributes,
        }
    }
}

// --- Forwarding ------------------------------------------------------------------------------

/// Hands queue message bodies ([`crate::envelope`]) to the queue. `wait` = the caller
/// acknowledges them to a client, so the enqueue must have succeeded first; exposures from
/// `/v1/assign` enqueue after the response instead.
pub async fn enqueue(state: &AppState, ctx: &Context, messages: Vec<String>, wait: bool) -> ApiResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    match state.events() {
        Some(queue) if wait => send_to_queue(&queue, &messages).await.map_err(|e| {
            worker::console_error!("enqueueing {} messages failed: {e}", messages.len());
            ApiError::unavailable("queue_unavailable", "events could not be queued; retry")
        }),
        Some(queue) => {
            ctx.wait_until(async move {
                if let Err(e) = send_to_queue(&queue, &messages).await {
                    worker::console_error!("enqueueing exposures failed: {e}");
                }
            });
            Ok(())
        }
        None => {
            let (url, token) = (state.control_plane_url.clone(), state.ingest_token.clone());
            ctx.wait_until(async move {
                let items = messages.iter().filter_map(|m| envelope::read_text(m).ok()).flatten().collect();
                for chunk in envelope::chunks(items, POST_EVENTS) {
                    match post_batch(url.as_deref(), token.as_deref(), &chunk, 0).await {
                        Ok((status, _)) if (200..300).contains(&status) => {}
                        Ok((status, _)) => worker::console_error!(
                            "control plane answered {status}; {} events lost (no queue bound)",
                            chunk.count
                        ),
                        Err(e) => {
                            worker::console_error!("forwarding failed: {e}; {} events lost (no queue bound)", chunk.count)
                        }
                    }
                }
            });
            Ok(())
        }
    }
}

/// Sends message bodies as text: one crossing into JavaScript per message, no object to build.
async fn send_to_queue(queue: &worker::Queue, messages: &[String]) -> worker::Result<()> {
    if let [one] = messages {
        return queue.send_raw(worker::RawMessageBuilder::new(one.as_str().into()).build_with_content_type(worker::QueueContentType::Text)).await;
    }
    for chunk in messages.chunks(SEND_BATCH) {
        let batch = chunk
            .iter()
            .map(|m| worker::RawMessageBuilder::new(m.as_str().into()).build_with_content_type(worker::QueueContentType::Text))
            .collect::<Vec<_>>();
        queue.send_raw_batch(batch).await?;
    }
    Ok(())
}

/// POSTs a chunk to the control plane's batch endpoint; its status and body on an answer.
/// `messages`: how many queue messages the events came from (a header, for operators and the bench).
async fn post_batch(base: Option<&str>, token: Option<&str>, chunk: &envelope::Chunk, messages: usize) -> Result<(u16, String), String> {
    let base = base.ok_or("CONTROL_PLANE_URL is not set")?;
    let token = token.ok_or("INGEST_TOKEN is not set")?;
    // web-sys's request directly: workers-rs's `RequestInit` converts its `cf` options (image
    // resizing and all) through serde on every request, code the worker pays for in its upload
    // (about 4 KiB gzipped, measured) and this POST never uses.
    let headers = worker::web_sys::Headers::new().map_err(|_| "Headers")?;
    for (name, value) in [("content-type", "application/json"), ("authorization", &format!("Bearer {token}")), ("x-litmus-queue-messages", &messages.to_string())] {
        headers.set(name, value).map_err(|_| "Headers.set")?;
    }
    // As bytes: a string would be decoded from wasm memory only for fetch to encode it again.
    let body = worker::js_sys::Uint8Array::from(chunk.body().as_bytes());
    let init = worker::web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&body);
    let req = worker::web_sys::Request::new_with_str_and_init(&format!("{base}/api/v1/events/batch"), &init).map_err(|_| "Request")?;
    let req = Request::from(req);
    // A hung control plane must not pin the consumer: give up and let the queue redeliver.
    let signal = worker::AbortSignal::from(worker::web_sys::AbortSignal::timeout_with_u32(FORWARD_TIMEOUT_MS));
    let mut resp = Fetch::Request(req).send_with_signal(&signal).await.map_err(|e| e.to_string())?;
    let status = resp.status_code();
    let text = resp.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        worker::console_warn!(
            "control plane batch endpoint answered {status}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    Ok((status, text))
}

/// The queue consumer: one POST per delivered batch. The control plane stores the good events of
/// a batch and names the ones it refuses (`rejected: [{index, code, field, message}]`, in a 202,
/// or in a 422 when it refuses them all). Refused events are final, so they are parked in the
/// dead-letter queue with the reason ([`dead_letter`]) and the batch is acknowledged. Anything
/// else (no answer, 5xx, 401…) → redeliver the whole batch, backing off (the control plane
/// dedupes by `event_id`, so a partly applied batch is safe to resend).
pub async fn consume(batch: MessageBatch<Value>, state: &AppState) {
    let mut items = Vec::new();
    let mut messages = Vec::new();
    for message in batch.raw_iter() {
        let raw = message.body();
        // Text messages (this version) are parsed here; JSON ones (earlier versions) arrive as
        // objects and take the same road through their text.
        let text = raw.as_string().or_else(|| worker::js_sys::JSON::stringify(&raw).ok().and_then(|s| s.as_string()));
        match text.ok_or("not text or JSON").and_then(|t| envelope::read_text(&t)) {
            Ok(read) => {
                items.extend(read);
                messages.push(message);
            }
            Err(why) => {
                // Not a message this worker produced; redelivering it can never succeed.
                worker::console_error!("dropping unreadable queue message {} ({why})", message.id());
                message.ack();
            }
        }
    }
    let chunks = envelope::chunks(items, POST_EVENTS);
    let n: usize = chunks.iter().map(|c| c.count).sum();
    if n == 0 && chunks.iter().all(|c| c.refused == 0) {
        messages.iter().for_each(MessageExt::ack);
        return;
    }
    // A delivered batch can hold more events than one POST may carry (the control plane takes
    // 10 000, and a message holds the exposures of many requests): posted in chunks, one after
    // the other. Any chunk not settled redelivers every message; the control plane dedupes by
    // `event_id`, so the chunks already stored are not counted twice.
    let mut parked = Vec::new();
    for (c, chunk) in chunks.iter().enumerate() {
        let count = if c == 0 { messages.len() } else { 0 };
        let outcome = post_batch(state.control_plane_url.as_deref(), state.ingest_token.as_deref(), chunk, count).await;
        let settled = match &outcome {
            Ok((status, text)) if (200..300).contains(status) || *status == 422 => rejected(text, chunk.count),
            _ => None,
        };
        let Some(settled) = settled else {
            worker::console_warn!("forwarding {} of {n} events failed ({outcome:?}); queued for redelivery", chunk.count);
            retry_later(&messages, state);
            return;
        };
        if !settled.is_empty() {
            let numbered = chunk.numbered();
            parked.extend(settled.into_iter().filter_map(|(i, reason)| {
                Some(format!(r#"{{"event":{},"rejected":{}}}"#, numbered.get(i)?, serde_json::to_string(&reason).ok()?))
            }));
        }
    }
    if !parked.is_empty() {
        if let Err(e) = dead_letter(state, &parked).await {
            // Not lost: redelivered, refused and parked again later.
            worker::console_error!("parking {} refused events failed ({e}); queued for redelivery", parked.len());
            retry_later(&messages, state);
            return;
        }
        worker::console_warn!("the control plane refused {} of {n} events; parked in the dead-letter queue", parked.len());
    }
    messages.iter().for_each(MessageExt::ack);
}

/// The refused events of an answer (`rejected[].index` → the entry), or `None` when the answer is
/// not one that settles the batch.
fn rejected(body: &str, n: usize) -> Option<Vec<(usize, Value)>> {
    let doc: Value = serde_json::from_str(body).ok()?;
    let Some(list) = doc.get("rejected") else {
        // A 2xx without a `rejected` list stored everything; a 422 without one is not per-event.
        return doc.get("accepted").is_some().then(Vec::new);
    };
    list.as_array()?.iter().map(|r| Some((usize::try_from(r.get("index")?.as_u64()?).ok().filter(|i| *i < n)?, r.clone()))).collect()
}

/// Sends `{event, rejected}` entries to the dead-letter queue (`EVENTS_DLQ`, the consumer's
/// `dead_letter_queue`), next to the batches that ran out of retries.
/// They go in as JSON objects, readable in the dashboard and by whatever drains the queue.
async fn dead_letter(state: &AppState, parked: &[String]) -> Result<(), String> {
    let queue = state.dead_letters().ok_or("no EVENTS_DLQ binding")?;
    for chunk in parked.chunks(SEND_BATCH) {
        let batch = chunk
            .iter()
            .map(|text| {
                let object = worker::js_sys::JSON::parse(text).map_err(|_| "JSON.parse failed".to_owned())?;
                Ok(worker::RawMessageBuilder::new(object).build_with_content_type(worker::QueueContentType::Json))
            })
            .collect::<Result<Vec<_>, String>>()?;
        queue.send_raw_batch(batch).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn retry_later(messages: &[worker::RawMessage], state: &AppState) {
    let now = worker::Date::now().as_millis();
    for message in messages {
        let age = now.saturating_sub(message.timestamp().as_millis()) / 1000;
        let delay = backoff_seconds(age, state.retry_min_seconds, state.retry_max_seconds);
        message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay).build());
    }
}

/// Cloudflare Queues' longest redelivery delay.
const MAX_QUEUE_DELAY_SECONDS: u32 = 12 * 3600;

/// How long to wait before redelivering a message that is `age_seconds` old: half its age, within
/// `[min, max]`. While the control plane stays down each wait is 1.5× the last, so retries are
/// dense in a blip and sparse in an outage: with the defaults (15 s, 15 min) and `max_retries`
/// 100, a message waits about 22 hours before the dead-letter queue, against 25 minutes at a
/// fixed 15 s.
pub fn backoff_seconds(age_seconds: u64, min: u32, max: u32) -> u32 {
    let max = max.min(MAX_QUEUE_DELAY_SECONDS);
    u32::try_from(age_seconds / 2).unwrap_or(u32::MAX).clamp(min.min(max), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_reads_the_control_planes_verdict() {
        let settled = |body: &str| rejected(body, 3).map(|v| v.iter().map(|(i, _)| *i).collect::<Vec<_>>());
        assert_eq!(settled(r#"{"accepted":3,"duplicates":0}"#), Some(vec![]));
        assert_eq!(settled(r#"{"accepted":1,"duplicates":0,"rejected":[{"index":0,"code":"not_found"},{"index":2}]}"#), Some(vec![0, 2]));
        // 422 "all rejected" carries the list next to the error.
        assert_eq!(settled(r#"{"error":{"code":"validation_failed"},"rejected":[{"index":1}]}"#), Some(vec![1]));
        // Anything else does not settle the batch: it is redelivered.
        assert_eq!(settled(r#"{"error":{"code":"validation_failed","message":"bad"}}"#), None);
        assert_eq!(settled(r#"{"accepted":1,"rejected":[{"index":7}]}"#), None, "an index outside the batch");
        assert_eq!(settled("<html>"), None);
    }

    #[test]
    fn backoff_grows_with_the_outage_within_bounds() {
        assert_eq!(backoff_seconds(0, 15, 900), 15);
        assert_eq!(backoff_seconds(100, 15, 900), 50);
        assert_eq!(backoff_seconds(100_000, 15, 900), 900);
        assert_eq!(backoff_seconds(u64::MAX, 0, u32::MAX), MAX_QUEUE_DELAY_SECONDS);
        assert_eq!(backoff_seconds(10, 60, 30), 30, "max wins over a larger min");
        // The whole schedule with the defaults: 100 retries last about 22 hours.
        let mut age = 0u64;
        for _ in 0..100 {
            age += u64::from(backoff_seconds(age, 15, 900));
        }
        assert!((21 * 3600..23 * 3600).contains(&age), "{age}");
    }
}
