//! What travels through the events queue: one message per request, whatever it produced.
//!
//! Cloudflare Queues bill about three operations per message (write, read, delete), so a page
//! view exposed to 20 experiments must not be 20 messages. An `/v1/assign` request becomes one
//! message carrying the unit, its attributes and time once, and `[experiment, variant]` pairs;
//! a `/v1/events` request becomes one message per ~100 KB of events. The consumer expands them
//! back into the batch endpoint's events ([`expand`]).
//!
//! Event ids stay unique and idempotent end to end: a request mints one UUIDv7 and each of its
//! exposures gets that id with its position folded into the last bits ([`nth_id`]), computed the
//! same way on every redelivery. Messages in the older one-event-per-message form (still in a
//! queue across a deploy) expand to themselves.
//!
//! Pure, so that it is tested natively.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Cloudflare Queues take messages up to 128 KB; events beyond this start a new message.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;

/// The message an `/v1/assign` request produces.
#[derive(Debug, Serialize)]
pub struct Exposures<'a> {
    /// The request's UUIDv7; exposure `i` has id [`nth_id`]`(id, i)`.
    pub id: &'a str,
    pub unit_id: &'a str,
    pub ts: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<&'a Map<String, Value>>,
    /// `[experiment, variant_key]`, in answer order.
    pub exposures: Vec<[&'a str; 2]>,
}

/// The id of the `i`-th exposure of a request whose id is `id` (a UUID in text form): the last
/// three hex digits XOR `i`, so ids within a request differ and each stays a valid UUIDv7.
/// A request answers at most 100 experiments, far below the 4096 this leaves room for.
pub fn nth_id(id: &str, i: usize) -> String {
    let (head, tail) = id.split_at(id.len().saturating_sub(3));
    match u16::from_str_radix(tail, 16) {
        Ok(last) if tail.len() == 3 => format!("{head}{:03x}", last ^ (i as u16 & 0xfff)),
        // Not a UUID (never minted here): an explicit suffix still keeps the ids apart.
        _ => format!("{id}.{i}"),
    }
}

/// The events of a text queue message, each as the JSON text the control plane's batch endpoint
/// takes: one envelope, or several, one per line (the JavaScript entry sends the exposures of
/// every request of a short window as one message). A message is read whole or not at all: a
/// line this worker never wrote makes the message unreadable (redelivering it cannot help).
///
/// Events are written as text straight from the envelope's text, never built as `Value` maps: the
/// consumer shares the isolate with `/v1/assign`, and maps, their clones of the attributes and
/// their serialization were a fifth of its time under load.
pub fn expand_text(text: &str) -> Result<Vec<String>, &'static str> {
    let mut events = Vec::new();
    let mut any = false;
    for envelope in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        expand_into(envelope.map_err(|_| "not JSON")?, &mut events)?;
        any = true;
    }
    if any { Ok(events) } else { Err("empty") }
}

/// The members an envelope may have; each kept as its JSON text.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    exposures: Option<Vec<(&'a RawValue, &'a RawValue)>>,
    #[serde(borrow, default)]
    events: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    unit_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    attributes: Option<&'a RawValue>,
    #[serde(borrow, default)]
    kind: Option<&'a RawValue>,
}

fn is_string(raw: &RawValue) -> bool {
    raw.get().starts_with('"')
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

fn expand_into(raw: &RawValue, out: &mut Vec<String>) -> Result<(), &'static str> {
    if !is_object(raw) {
        return Err("not a JSON object");
    }
    let e: Envelope = serde_json::from_str(raw.get()).map_err(|_| "an envelope member has the wrong type")?;
    if let Some(pairs) = e.exposures {
        let unreadable = "an exposures message needs id, unit_id and ts";
        let (Some(id), Some(unit_id), Some(ts)) = (e.id, e.unit_id.filter(|r| is_string(r)), e.ts.filter(|r| is_string(r)))
        else {
            return Err(unreadable);
        };
        let id: String = serde_json::from_str(id.get()).map_err(|_| unreadable)?;
        let attributes = e.attributes.filter(|a| is_object(a)).map(RawValue::get);
        out.reserve(pairs.len());
        for (i, (experiment, variant)) in pairs.into_iter().enumerate() {
            if !is_string(experiment) || !is_string(variant) {
                return Err("an exposure is not [experiment, variant_key]");
            }
            let event_id = serde_json::to_string(&nth_id(&id, i)).map_err(|_| unreadable)?;
            let mut event = format!(
                r#"{{"kind":"exposure","experiment":{},"unit_id":{},"variant_key":{},"event_id":{event_id},"ts":{}"#,
                experiment.get(),
                unit_id.get(),
                variant.get(),
                ts.get()
            );
            if let Some(a) = attributes {
                event.push_str(r#","attributes":"#);
                event.push_str(a);
            }
            event.push('}');
            out.push(event);
        }
        return Ok(());
    }
    if let Some(events) = e.events {
        if !events.iter().all(|e| is_object(e)) {
            return Err("an event is not an object");
        }
        out.extend(events.into_iter().map(|e| e.get().to_owned()));
        return Ok(());
    }
    // The one-event-per-message form of earlier versions.
    if e.kind.is_some() {
        out.push(raw.get().to_owned());
        Ok(())
    } else {
        Err("neither exposures, events nor an event")
    }
}

/// Splits already-serialized events into message bodies `{"events":[...]}` of at most
/// [`MAX_MESSAGE_BYTES`] each (a single larger event still travels, alone).
pub fn pack_events(events: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::from(r#"{"events":["#);
    let mut n = 0;
    for e in events {
        if n > 0 && current.len() + e.len() + 2 > MAX_MESSAGE_BYTES {
            current.push_str("]}");
            out.push(std::mem::replace(&mut current, String::from(r#"{"events":["#)));
            n = 0;
        }
        if n > 0 {
            current.push(',');
        }
        current.push_str(e);
        n += 1;
    }
    if n > 0 {
        current.push_str("]}");
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    const ID: &str = "0192f5c4-1b2a-7c3d-8e4f-5a6b7c8d9e0f";

    /// The events of a message (given as a value), as values.
    fn expand(message: Value) -> Result<Vec<Value>, &'static str> {
        let texts = expand_text(&message.to_string())?;
        Ok(texts.iter().map(|t| serde_json::from_str(t).expect("each event is JSON")).collect())
    }

    #[test]
    fn nth_ids_are_distinct_uuids_and_stable() {
        let ids: BTreeSet<String> = (0..100).map(|i| nth_id(ID, i)).collect();
        assert_eq!(ids.len(), 100);
        assert_eq!(nth_id(ID, 0), ID, "the first exposure keeps the request's id");
        for id in &ids {
            assert_eq!(id.len(), 36);
            assert_eq!(&id[..33], &ID[..33], "time and version bits untouched");
        }
        assert_eq!(nth_id(ID, 7), nth_id(ID, 7));
        assert_eq!(nth_id("short", 2), "short.2");
    }

    #[test]
    fn an_exposures_message_expands_to_one_event_per_experiment() {
        let attributes = json!({"country": "US"});
        let msg = Exposures {
            id: ID,
            unit_id: "u1",
            ts: "2026-12-01T10:00:00.000Z",
            attributes: attributes.as_object(),
            exposures: vec![["a", "control"], ["b", "green"]],
        };
        let events = expand(serde_json::to_value(&msg).expect("serializes")).expect("expands");
        assert!(expand_text(&serde_json::to_string(&msg).expect("serializes")).expect("expands")[0].starts_with(r#"{"kind":"exposure""#));
        assert_eq!(
            events,
            vec![
                json!({"kind":"exposure","experiment":"a","unit_id":"u1","variant_key":"control","event_id":ID,
                       "ts":"2026-12-01T10:00:00.000Z","attributes":{"country":"US"}}),
                json!({"kind":"exposure","experiment":"b","unit_id":"u1","variant_key":"green","event_id":nth_id(ID, 1),
                       "ts":"2026-12-01T10:00:00.000Z","attributes":{"country":"US"}}),
            ]
        );
        // Redelivered, the same ids: the control plane counts each exposure once.
        assert_eq!(expand(serde_json::to_value(&msg).expect("serializes")).expect("expands"), events);
    }

    #[test]
    fn events_messages_and_the_old_form_expand_to_their_events() {
        let e = json!({"kind":"metric","experiment":"a","unit_id":"u","variant_key":"v","metric":"m","value":1.0});
        assert_eq!(expand(json!({"events": [e.clone(), e.clone()]})).expect("expands").len(), 2);
        assert_eq!(expand(e.clone()).expect("expands"), vec![e]);
    }

    #[test]
    fn a_text_message_holds_one_envelope_per_line() {
        let one = |unit: &str, id: &str| {
            serde_json::to_string(&Exposures { id, unit_id: unit, ts: "2026-12-01T10:00:00.000Z", attributes: None, exposures: vec![["a", "b"], ["c", "d"]] })
                .expect("serializes")
        };
        let other = "0192f5c4-1b2a-7c3d-8e4f-5a6b7c8d9e1f";
        let events: Vec<Value> = expand_text(&format!("{}\n{}", one("u1", ID), one("u2", other)))
            .expect("expands")
            .iter()
            .map(|t| serde_json::from_str(t).expect("JSON"))
            .collect();
        let ids: Vec<&str> = events.iter().map(|e| e["event_id"].as_str().expect("id")).collect();
        assert_eq!(ids, [ID.to_owned(), nth_id(ID, 1), other.to_owned(), nth_id(other, 1)]);
        assert_eq!(events[2]["unit_id"], "u2");
        // One envelope alone, as the workers-rs route and earlier versions send it.
        assert_eq!(expand_text(&one("u1", ID)).expect("expands").len(), 2);
        // A message is read whole or not at all.
        assert!(expand_text(&format!("{}\n{{\"hello\":1}}", one("u1", ID))).is_err());
        assert!(expand_text(&format!("{}\nnot json", one("u1", ID))).is_err());
        assert!(expand_text("").is_err());
        assert!(expand_text("\n").is_err());
    }

    #[test]
    fn texts_that_need_escaping_come_out_as_they_went_in() {
        let attributes = json!({"q": "a\"b\\c", "nested": {"list": [1, "ü", null]}, "emoji": "🙂"});
        let msg = Exposures {
            id: ID,
            unit_id: "u\"1\\ü\u{1}",
            ts: "2026-12-01T10:00:00.000Z",
            attributes: attributes.as_object(),
            exposures: vec![["exp \"q\"", "v\\1"]],
        };
        let events = expand(serde_json::to_value(&msg).expect("serializes")).expect("expands");
        assert_eq!(events[0]["unit_id"], "u\"1\\ü\u{1}");
        assert_eq!(events[0]["experiment"], "exp \"q\"");
        assert_eq!(events[0]["variant_key"], "v\\1");
        assert_eq!(events[0]["attributes"], attributes);
        // Attributes that are not an object are left out, as before.
        let odd = json!({"id": ID, "unit_id": "u", "ts": "t", "attributes": [1], "exposures": [["a", "b"]]});
        assert!(expand(odd).expect("expands")[0].get("attributes").is_none());
    }

    #[test]
    fn unreadable_messages_say_so() {
        assert!(expand(json!("text")).is_err());
        assert!(expand(json!({"exposures": [["a"]], "id": ID, "unit_id": "u", "ts": "t"})).is_err());
        assert!(expand(json!({"exposures": [["a", "b"]]})).is_err());
        assert!(expand(json!({"events": [1]})).is_err());
        assert!(expand(json!({"hello": 1})).is_err());
    }

    #[test]
    fn packing_bounds_message_size_and_keeps_every_event() {
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(30 * 1024));
        let events = vec![big.clone(); 7];
        let packed = pack_events(&events);
        assert!(packed.len() >= 3, "{}", packed.len());
        let mut total = 0;
        for m in &packed {
            assert!(m.len() <= MAX_MESSAGE_BYTES);
            total += serde_json::from_str::<Value>(m).expect("expands")["events"].as_array().expect("expands").len();
        }
        assert_eq!(total, 7);
        assert_eq!(pack_events(&[r#"{"a":1}"#.to_owned()]), vec![r#"{"events":[{"a":1}]}"#.to_owned()]);
        assert!(pack_events(&[]).is_empty());
    }
}
