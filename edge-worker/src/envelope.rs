//! What travels through the events queue: one message per request, whatever it produced.
//!
//! Cloudflare Queues bill about three operations per message (write, read, delete), so a page
//! view exposed to 20 experiments must not be 20 messages. An `/v1/assign` request becomes one
//! exposure group ([`litmus_shared::exposures`]: the unit, its attributes and time once, and
//! `[experiment, variant]` pairs); a `/v1/events` request becomes one message per ~100 KB of
//! events. The JavaScript entry sends the groups of a short window as one message, one per line.
//!
//! The consumer forwards groups as they are (`{"exposures":[...]}` on the batch endpoint, which
//! expands them) and events as events ([`read_text`], [`chunks`]). Messages in the older
//! one-event-per-message form (still in a queue across a deploy) forward as themselves.
//!
//! Pure, so that it is tested natively.

use litmus_shared::exposures;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Cloudflare Queues take messages up to 128 KB; events beyond this start a new message.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;

/// One thing to forward: an event, as the JSON text the batch endpoint takes in `events`, or an
/// exposure group, as its text, with the number of events it stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Event(String),
    Group(String, usize),
    /// Events an isolate refused for their signature (`{"refused":n}`), for the control plane's
    /// `/metrics`.
    Refused(u64),
}

impl Item {
    /// How many events the control plane counts for it.
    pub fn events(&self) -> usize {
        match self {
            Item::Event(_) => 1,
            Item::Group(_, n) => *n,
            Item::Refused(_) => 0,
        }
    }
}

/// What a text queue message holds: one envelope, or several, one per line (the JavaScript entry
/// sends the exposure groups of every request of a short window as one message). A message is
/// read whole or not at all: a line this worker never wrote makes the message unreadable
/// (redelivering it cannot help).
///
/// Nothing is rebuilt: groups and events keep their text. The consumer shares the isolate with
/// `/v1/assign`; expanding groups into events there (attributes copied into each) was the
/// largest cost of forwarding.
pub fn read_text(text: &str) -> Result<Vec<Item>, &'static str> {
    let mut items = Vec::new();
    let mut any = false;
    for envelope in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        read_into(envelope.map_err(|_| "not JSON")?, &mut items)?;
        any = true;
    }
    if any { Ok(items) } else { Err("empty") }
}

/// Which kind of envelope: only the members that tell them apart, each kept as its JSON text.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    exposures: Option<&'a RawValue>,
    #[serde(borrow, default)]
    events: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(default)]
    refused: Option<u64>,
}

/// The message reporting `n` refused events.
pub fn refused(n: u64) -> String {
    format!(r#"{{"refused":{n}}}"#)
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

fn read_into(raw: &RawValue, out: &mut Vec<Item>) -> Result<(), &'static str> {
    if !is_object(raw) {
        return Err("not a JSON object");
    }
    // Nearly every line is a group: read and counted in one pass, before anything else is tried.
    if let Ok(n) = exposures::count(raw.get()) {
        out.push(Item::Group(raw.get().to_owned(), n));
        return Ok(());
    }
    let e: Envelope = serde_json::from_str(raw.get()).map_err(|_| "an envelope member has the wrong type")?;
    if e.exposures.is_some() {
        return Err("an exposure group that is not id, unit_id, ts and [experiment, variant_key] pairs");
    }
    if let Some(events) = e.events {
        if !events.iter().all(|e| is_object(e)) {
            return Err("an event is not an object");
        }
        out.extend(events.into_iter().map(|e| Item::Event(e.get().to_owned())));
        return Ok(());
    }
    if let Some(n) = e.refused {
        out.push(Item::Refused(n));
        return Ok(());
    }
    // The one-event-per-message form of earlier versions.
    if e.kind.is_some() {
        out.push(Item::Event(raw.get().to_owned()));
        Ok(())
    } else {
        Err("neither exposures, events nor an event")
    }
}

/// One POST to the batch endpoint: `{"events":[...],"exposures":[...]}`.
#[derive(Debug, Default, PartialEq)]
pub struct Chunk {
    events: Vec<String>,
    groups: Vec<String>,
    /// Events the control plane will count: the events plus every group's exposures.
    pub count: usize,
    /// Events refused at the edge, reported with this POST.
    pub refused: u64,
}

impl Chunk {
    /// The request body. Without groups, `{"events":[...]}` alone, as earlier control planes take it.
    pub fn body(&self) -> String {
        let mut body = format!(r#"{{"events":[{}]"#, self.events.join(","));
        if !self.groups.is_empty() {
            body.push_str(r#","exposures":["#);
            body.push_str(&self.groups.join(","));
            body.push(']');
        }
        if self.refused > 0 {
            body.push_str(&format!(r#","refused":{}"#, self.refused));
        }
        body.push('}');
        body
    }

    /// Its events as the control plane numbers them (`rejected[].index`): the events first,
    /// then each group's exposures in order. Groups are expanded only here, once, when an event
    /// was refused.
    pub fn numbered(&self) -> Vec<String> {
        let groups = self.groups.iter().flat_map(|g| exposures::events(g).unwrap_or_default());
        self.events.iter().cloned().chain(groups).collect()
    }
}

/// Splits items into POSTs of at most `max` events each (a group is never split; one larger than
/// `max` travels alone).
pub fn chunks(items: Vec<Item>, max: usize) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut current = Chunk::default();
    for item in items {
        let n = item.events();
        if current.count > 0 && current.count + n > max {
            out.push(std::mem::take(&mut current));
        }
        current.count += n;
        match item {
            Item::Event(e) => current.events.push(e),
            Item::Group(g, _) => current.groups.push(g),
            Item::Refused(n) => current.refused = current.refused.saturating_add(n),
        }
    }
    if current.count > 0 || !current.groups.is_empty() || current.refused > 0 {
        out.push(current);
    }
    out
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
    use litmus_shared::exposures::{ExposureGroup, nth_id};
    use serde_json::{Value, json};

    const ID: &str = "0192f5c4-1b2a-7c3d-8e4f-5a6b7c8d9e0f";
    const OTHER: &str = "0192f5c4-1b2a-7c3d-8e4f-5a6b7c8d9e1f";

    fn group(unit: &str, id: &str, pairs: Vec<[&str; 2]>) -> String {
        serde_json::to_string(&ExposureGroup { id, unit_id: unit, ts: "2026-12-01T10:00:00.000Z", attributes: None, exposures: pairs })
            .expect("serializes")
    }

    fn events_of(chunk: &Chunk) -> Vec<Value> {
        let numbered = chunk.numbered();
        assert_eq!(numbered.len(), chunk.count, "every counted event numbered");
        numbered.iter().map(|e| serde_json::from_str(e).expect("JSON")).collect()
    }

    #[test]
    fn a_text_message_holds_one_envelope_per_line() {
        let text = format!("{}\n{}", group("u1", ID, vec![["a", "b"], ["c", "d"]]), group("u2", OTHER, vec![["a", "x"]]));
        let items = read_text(&text).expect("reads");
        assert_eq!(items.iter().map(Item::events).collect::<Vec<_>>(), [2, 1]);
        assert!(matches!(&items[0], Item::Group(g, 2) if g.contains("\"u1\"")));
        // One envelope alone, as the workers-rs route and earlier versions send it.
        assert_eq!(read_text(&group("u1", ID, vec![["a", "b"]])).expect("reads").len(), 1);
        // A message is read whole or not at all.
        let odd = |pairs: &str, extra: &str| format!(r#"{{"id":"x","unit_id":"u","ts":"t","exposures":{pairs}{extra}}}"#);
        for bad in [
            "{\"hello\":1}".to_owned(),
            "not json".to_owned(),
            odd(r#"[["a"]]"#, ""),
            odd(r#"[["a","b","c"]]"#, ""),
            odd(r#"[["a","b"],"ab"]"#, ""),
            odd(r#"[["a",1]]"#, ""),
            odd(r#"[["a","b"]]"#, r#","kind":"exposure""#),
        ] {
            assert!(read_text(&format!("{}\n{bad}", group("u1", ID, vec![["a", "b"]]))).is_err(), "{bad}");
        }
        assert!(read_text("").is_err());
        assert!(read_text("\n").is_err());
        assert!(read_text("\"text\"").is_err());
        assert!(read_text(r#"{"events": [1]}"#).is_err());
    }

    #[test]
    fn events_messages_and_the_old_form_read_as_events() {
        let e = json!({"kind":"metric","experiment":"a","unit_id":"u","variant_key":"v","metric":"m","value":1.0});
        let items = read_text(&json!({"events": [e.clone(), e.clone()]}).to_string()).expect("reads");
        assert_eq!(items, vec![Item::Event(e.to_string()), Item::Event(e.to_string())]);
        assert_eq!(read_text(&e.to_string()).expect("reads"), vec![Item::Event(e.to_string())]);
    }

    #[test]
    fn chunks_count_a_groups_exposures_and_number_events_as_the_control_plane_does() {
        let metric = json!({"kind":"metric","experiment":"a","unit_id":"u","variant_key":"v","metric":"m","value":1.0}).to_string();
        let items = vec![
            Item::Group(group("u1", ID, vec![["a", "b"], ["c", "d"]]), 2),
            Item::Event(metric.clone()),
            Item::Group(group("u2", OTHER, vec![["e", "f"]]), 1),
            Item::Group(group("u3", ID, vec![["g", "h"], ["i", "j"], ["k", "l"]]), 3),
        ];
        let chunks = chunks(items, 4);
        assert_eq!(chunks.iter().map(|c| c.count).collect::<Vec<_>>(), [4, 3], "the 3-exposure group does not fit the first");
        let body: Value = serde_json::from_str(&chunks[0].body()).expect("JSON body");
        assert_eq!(body["events"].as_array().map(Vec::len), Some(1));
        assert_eq!(body["exposures"].as_array().map(Vec::len), Some(2));
        // Events first, then each group's exposures in order.
        let numbered = events_of(&chunks[0]);
        assert_eq!(numbered[0]["kind"], "metric");
        assert_eq!((numbered[1]["unit_id"].as_str(), numbered[1]["event_id"].as_str()), (Some("u1"), Some(ID)));
        assert_eq!(numbered[2]["event_id"].as_str(), Some(nth_id(ID, 1).as_str()));
        assert_eq!(numbered[3]["unit_id"], "u2");
        assert_eq!(events_of(&chunks[1]).iter().map(|e| e["experiment"].clone()).collect::<Vec<_>>(), [json!("g"), json!("i"), json!("k")]);
        // Events alone keep the body earlier control planes take.
        assert_eq!(chunks_of_events(), r#"{"events":[{"a":1}]}"#);
        assert!(super::chunks(Vec::new(), 10).is_empty());
        // A group larger than a POST travels alone, whole.
        let big = Item::Group(group("u", ID, vec![["a", "b"]; 5]), 5);
        assert_eq!(super::chunks(vec![big.clone(), big], 4).iter().map(|c| c.count).collect::<Vec<_>>(), [5, 5]);
    }

    fn chunks_of_events() -> String {
        chunks(vec![Item::Event(r#"{"a":1}"#.to_owned())], 10)[0].body()
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
