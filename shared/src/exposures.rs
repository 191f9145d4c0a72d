//! Exposure groups: the exposures one assignment request produced, with the unit, its attributes
//! and time written once, and `[experiment, variant_key]` pairs.
//!
//! The edge writes one per `/v1/assign` request; it travels through the queue and on to the
//! control plane's batch endpoint (`{"exposures": [group, ...]}`) as it is. Expanded, a group is
//! one exposure event per pair. At 50 experiments a group is a twentieth of its events' size,
//! and the expansion happens once, centrally, instead of in the worker that also answers
//! `/v1/assign`: measured, expanding and posting every event took a third of the edge's
//! throughput with forwarding on.
//!
//! Event ids stay unique and idempotent end to end: a request mints one UUIDv7 and each of its
//! exposures gets that id with its position folded into the last bits ([`nth_id`]), computed the
//! same way on every redelivery and by every reader.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::ConfigError;

/// The exposures of one assignment request.
#[derive(Debug, Serialize)]
pub struct ExposureGroup<'a> {
    /// The request's UUIDv7; exposure `i` has id [`nth_id`]`(id, i)`.
    pub id: &'a str,
    pub unit_id: &'a str,
    pub ts: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<&'a Map<String, Value>>,
    /// `[experiment, variant_key]`, in answer order.
    pub exposures: Vec<[&'a str; 2]>,
    // Serialized groups may end with `"versions":[…]`: the version of each experiment's config
    // the answer was served from, in the order of `exposures` (a bandit's reweight is a new
    // version: it says which weights each unit was served, the edge switching some time after
    // the control plane commits them). The edge appends it by hand (`edge-worker/src/assign.rs`):
    // serde's integer formatting would cost its upload most of a KiB.
}

/// The id of the `i`-th exposure of a request whose id is `id` (a UUID in text form): the last
/// three hex digits XOR `i`, so ids within a request differ and each stays a valid UUIDv7.
/// A request answers at most 100 experiments, far below the 4096 this leaves room for.
pub fn nth_id(id: &str, i: usize) -> String {
    let cut = id.len().saturating_sub(3);
    match id.get(cut..).filter(|t| t.len() == 3 && t.bytes().all(|b| b.is_ascii_hexdigit())) {
        Some(tail) => format!("{}{:03x}", &id[..cut], u16::from_str_radix(tail, 16).unwrap_or(0) ^ (i as u16 & 0xfff)),
        // Not a UUID (never minted by the edge): an explicit suffix still keeps the ids apart.
        None => format!("{id}.{i}"),
    }
}

/// A group as read: every member kept as its JSON text, so that expanding it writes events
/// straight from the input (no maps, no clones of the attributes, no re-escaping).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    unit_id: &'a RawValue,
    #[serde(borrow)]
    ts: &'a RawValue,
    #[serde(borrow, default)]
    attributes: Option<&'a RawValue>,
    /// Read in the same pass as the rest: the edge's queue consumer reads every group it
    /// forwards, in the isolate that also answers `/v1/assign`.
    #[serde(borrow)]
    exposures: Vec<(&'a RawValue, &'a RawValue)>,
    /// Read only where the group is expanded, never by the edge's consumer.
    #[serde(borrow, default)]
    versions: Option<&'a RawValue>,
}

/// The most exposures one group may stand for: a request answers at most this many experiments
/// (the edge's own limit is far lower), and [`nth_id`] keeps ids apart up to 4096.
pub const MAX_GROUP_EXPOSURES: usize = 1000;

const SHAPE: &str = r#"an exposure group is {"id","unit_id","ts","attributes"?,"exposures":[[experiment, variant_key],...]}"#;

fn is_string(raw: &RawValue) -> bool {
    raw.get().starts_with('"')
}

/// A group whose shape was checked: its members and pairs as JSON texts.
struct Checked<'a> {
    id: String,
    unit_id: &'a str,
    ts: &'a str,
    attributes: Option<&'a str>,
    pairs: Vec<(&'a str, &'a str)>,
    versions: Option<&'a str>,
}

fn read(text: &str) -> Result<Checked<'_>, ConfigError> {
    let group: Group = serde_json::from_str(text).map_err(|_| ConfigError::new("", SHAPE))?;
    let id: String = serde_json::from_str(group.id.get()).map_err(|_| ConfigError::new("id", "must be a string"))?;
    for (name, raw) in [("unit_id", group.unit_id), ("ts", group.ts)] {
        if !is_string(raw) {
            return Err(ConfigError::new(name, "must be a string"));
        }
    }
    // Limits before anything is built: expanded, a group copies its unit and attributes into
    // every event, so an unchecked one could ask for far more memory than its own size.
    if group.exposures.len() > MAX_GROUP_EXPOSURES {
        // Literal texts (the constants' values, tested): the formatter costs the worker bytes.
        return Err(ConfigError::new("exposures", "at most 1000 exposures per group"));
    }
    // As JSON text: a byte takes at most 6 (`\u0001`), and the quotes 2 more.
    if group.unit_id.get().len() > 6 * crate::validate::MAX_UNIT_ID_BYTES + 2 {
        return Err(ConfigError::new("unit_id", "is too long"));
    }
    let attributes = match group.attributes.map(RawValue::get) {
        Some(a) if a.len() > crate::validate::MAX_ATTRIBUTES_BYTES => {
            return Err(ConfigError::new("attributes", "must be at most 4096 bytes of JSON"));
        }
        Some("null") | None => None,
        Some(a) if a.starts_with('{') => Some(a),
        Some(_) => return Err(ConfigError::new("attributes", "must be an object")),
    };
    let pairs = group
        .exposures
        .iter()
        .enumerate()
        .map(|(i, (e, v))| if is_string(e) && is_string(v) { Ok((e.get(), v.get())) } else { Err(not_a_pair(i)) })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Checked { id, unit_id: group.unit_id.get(), ts: group.ts.get(), attributes, pairs, versions: group.versions.map(RawValue::get) })
}

fn not_a_pair(i: usize) -> ConfigError {
    ConfigError::new(format!("exposures[{i}]"), "must be [experiment, variant_key]")
}

/// What is wrong with a group that did not read: the first pair that is not two values, or else
/// its shape. Only on this rare road is the text read again, member by member.
fn fault(text: &str) -> ConfigError {
    let members = serde_json::from_str::<std::collections::BTreeMap<&str, &RawValue>>(text).ok();
    let pairs = members.as_ref().and_then(|m| serde_json::from_str::<Vec<&RawValue>>(m.get("exposures")?.get()).ok());
    let bad = pairs.and_then(|pairs| pairs.iter().position(|p| serde_json::from_str::<(&RawValue, &RawValue)>(p.get()).is_err()));
    bad.map_or_else(|| ConfigError::new("", SHAPE), not_a_pair)
}

/// How many exposure events a group holds, once its shape is checked. A group whose pairs do not
/// read is refused as a whole; [`expand`] names the pair at fault.
pub fn count(text: &str) -> Result<usize, ConfigError> {
    read(text).map(|g| g.pairs.len())
}

/// [`count`], or [`expand`]'s refusal naming the member at fault: what a reader that expands
/// later checks first.
pub fn expand_count(text: &str) -> Result<usize, ConfigError> {
    count(text).map_err(|e| if e.path.is_empty() { fault(text) } else { e })
}

/// A group's exposure events, in order, each as the JSON text the batch endpoint takes in
/// `events`: `{"kind":"exposure","experiment","unit_id","variant_key","event_id","ts","version"?,"attributes"?}`.
/// A refusal names the member at fault.
pub fn expand(text: &str) -> Result<Vec<String>, ConfigError> {
    let g = read(text).map_err(|e| if e.path.is_empty() { fault(text) } else { e })?;
    // Digits between commas, read as text: the events carry them as they came.
    let versions: Vec<&str> = match g.versions {
        None | Some("null") => Vec::new(),
        Some(v) => Some(v)
            .and_then(|v| v.strip_prefix('[')?.strip_suffix(']'))
            .map(|inner| inner.split(',').map(str::trim).filter(|n| !n.is_empty()).collect::<Vec<_>>())
            .filter(|v| v.len() == g.pairs.len() && v.iter().all(|n| n.len() <= 18 && n.bytes().all(|b| b.is_ascii_digit())))
            .ok_or_else(|| ConfigError::new("versions", "must be one non-negative integer per exposure"))?,
    };
    render(&g, &versions)
}

/// [`expand`] with [`count`]'s refusals and without the versions: for a reader that has no use
/// for either (the edge numbering a chunk's events, which keeps that code out of its size budget).
pub fn events(text: &str) -> Result<Vec<String>, ConfigError> {
    render(&read(text)?, &[])
}

fn render(g: &Checked<'_>, versions: &[&str]) -> Result<Vec<String>, ConfigError> {
    g.pairs
        .iter()
        .enumerate()
        .map(|(i, (experiment, variant))| {
            let event_id = serde_json::to_string(&nth_id(&g.id, i)).map_err(|_| ConfigError::new("id", "must be a string"))?;
            let mut event = format!(
                r#"{{"kind":"exposure","experiment":{experiment},"unit_id":{},"variant_key":{variant},"event_id":{event_id},"ts":{}"#,
                g.unit_id, g.ts
            );
            if let Some(v) = versions.get(i) {
                event.push_str(r#","version":"#);
                event.push_str(v);
            }
            if let Some(a) = g.attributes {
                event.push_str(r#","attributes":"#);
                event.push_str(a);
            }
            event.push('}');
            Ok(event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    const ID: &str = "0192f5c4-1b2a-7c3d-8e4f-5a6b7c8d9e0f";

    fn values(text: &str) -> Vec<Value> {
        expand(text).expect("expands").iter().map(|t| serde_json::from_str(t).expect("each event is JSON")).collect()
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
        assert_eq!(nth_id(ID, 1), "0192f5c4-1b2a-7c3d-8e4f-5a6b7c8d9e0e");
        assert_eq!(nth_id("short", 2), "short.2");
        assert_eq!(nth_id("aé12", 1), "aé12.1", "never splits a character");
    }

    #[test]
    fn a_group_expands_to_one_event_per_experiment() {
        let attributes = json!({"country": "US"});
        let group = ExposureGroup {
            id: ID,
            unit_id: "u1",
            ts: "2026-12-01T10:00:00.000Z",
            attributes: attributes.as_object(),
            exposures: vec![["a", "control"], ["b", "green"]],
        };
        let mut text = serde_json::to_string(&group).expect("serializes");
        text.pop();
        text.push_str(r#","versions":[3, 41]}"#);
        assert_eq!(count(&text), Ok(2));
        assert!(expand(&text).expect("expands")[0].starts_with(r#"{"kind":"exposure""#));
        assert_eq!(
            values(&text),
            vec![
                json!({"kind":"exposure","experiment":"a","unit_id":"u1","variant_key":"control","event_id":ID,
                       "ts":"2026-12-01T10:00:00.000Z","version":3,"attributes":{"country":"US"}}),
                json!({"kind":"exposure","experiment":"b","unit_id":"u1","variant_key":"green","event_id":nth_id(ID, 1),
                       "ts":"2026-12-01T10:00:00.000Z","version":41,"attributes":{"country":"US"}}),
            ]
        );
        // Read again (a redelivery), the same ids: the control plane counts each exposure once.
        assert_eq!(expand(&text), expand(&text));
    }

    #[test]
    fn texts_that_need_escaping_come_out_as_they_went_in() {
        let attributes = json!({"q": "a\"b\\c", "nested": {"list": [1, "ü", null]}, "emoji": "🙂"});
        let group = ExposureGroup {
            id: ID,
            unit_id: "u\"1\\ü\u{1}",
            ts: "2026-12-01T10:00:00.000Z",
            attributes: attributes.as_object(),
            exposures: vec![["exp \"q\"", "v\\1"]],
        };
        let events = values(&serde_json::to_string(&group).expect("serializes"));
        assert_eq!(events[0]["unit_id"], "u\"1\\ü\u{1}");
        assert_eq!(events[0]["experiment"], "exp \"q\"");
        assert_eq!(events[0]["variant_key"], "v\\1");
        assert_eq!(events[0]["attributes"], attributes);
        let bare = json!({"id": ID, "unit_id": "u", "ts": "t", "attributes": null, "exposures": [["a", "b"]]});
        assert!(values(&bare.to_string())[0].get("attributes").is_none());
        // Groups written before versions travelled (still queued) expand without one.
        assert!(values(&bare.to_string())[0].get("version").is_none());
    }

    #[test]
    fn faults_name_the_member() {
        let fault = |v: Value| expand(&v.to_string()).expect_err("refused").path;
        let ok = json!({"id": ID, "unit_id": "u", "ts": "t", "exposures": [["a", "b"]]});
        assert_eq!(count(&ok.to_string()), Ok(1));
        let with = |k: &str, v: Value| {
            let mut g = ok.clone();
            g[k] = v;
            g
        };
        assert_eq!(fault(with("exposures", json!([["a", "b"], ["a"]]))), "exposures[1]");
        assert_eq!(fault(with("exposures", json!([["a", 1]]))), "exposures[0]");
        assert_eq!(fault(with("exposures", json!([["a", "b"], ["a", "b", "c"]]))), "exposures[1]");
        assert_eq!(fault(with("exposures", json!([["a", "b"], ["c", "d"], "ab"]))), "exposures[2]");
        assert_eq!(fault(with("exposures", json!([["a", "b"], {"0": "a"}]))), "exposures[1]");
        assert_eq!(fault(with("exposures", json!({"a": "b"}))), "");
        assert_eq!(fault(with("unit_id", json!(7))), "unit_id");
        assert_eq!(fault(with("ts", json!(null))), "ts");
        assert_eq!(fault(with("id", json!(1))), "id");
        assert_eq!(fault(with("attributes", json!([1]))), "attributes");
        assert_eq!(fault(with("extra", json!(1))), "");
        assert_eq!(fault(with("versions", json!([1, 2]))), "versions", "one per exposure");
        assert_eq!(fault(with("versions", json!([-1]))), "versions");
        assert_eq!(fault(with("versions", json!(["1"]))), "versions");
        assert_eq!(count(&with("versions", json!(["not read by the counter"])).to_string()), Ok(1));
        assert_eq!(values(&with("versions", json!([7])).to_string())[0]["version"], 7);
        assert_eq!(fault(json!({"exposures": [["a", "b"]]})), "");
        assert_eq!(fault(json!("text")), "");
        assert_eq!(count(&with("exposures", json!([])).to_string()), Ok(0));
        // Limits hold before expansion: too many pairs, attributes or a unit id too large.
        let many: Vec<Value> = (0..=MAX_GROUP_EXPOSURES).map(|i| json!([format!("e{i}"), "b"])).collect();
        assert_eq!(fault(with("exposures", Value::Array(many.clone()))), "exposures");
        let message = |v: Value| expand(&v.to_string()).expect_err("refused").message;
        assert_eq!(message(with("exposures", Value::Array(many.clone()))), format!("at most {MAX_GROUP_EXPOSURES} exposures per group"));
        let big = json!({"a": "x".repeat(5000)});
        assert_eq!(message(with("attributes", big)), format!("must be at most {} bytes of JSON", crate::validate::MAX_ATTRIBUTES_BYTES));
        assert_eq!(count(&with("exposures", Value::Array(many[1..].to_vec())).to_string()), Ok(MAX_GROUP_EXPOSURES));
        assert_eq!(fault(with("attributes", json!({"a": "x".repeat(5000)}))), "attributes");
        assert_eq!(fault(with("unit_id", json!("u".repeat(4000)))), "unit_id");
        assert_eq!(fault(with("unit_id", json!("\u{1}".repeat(1000)))), "unit_id");
        // The longest unit id an evaluator takes (512 bytes) in its longest JSON spelling (every
        // byte a control character, `\u0001`: 6 bytes) still reads.
        let longest = "\u{1}".repeat(crate::validate::MAX_UNIT_ID_BYTES);
        assert!(crate::validate::unit_id(&longest).is_ok());
        assert_eq!(count(&with("unit_id", json!(longest)).to_string()), Ok(1));
        // The quiet readers refuse the same groups, without naming the pair.
        for bad in [json!([["a", "b"], ["a"]]), json!([["a", "b", "c"]]), json!([["a", 1]]), json!(["ab"])] {
            let text = with("exposures", bad).to_string();
            assert!(count(&text).is_err() && events(&text).is_err(), "{text}");
        }
        assert_eq!(events(&ok.to_string()), expand(&ok.to_string()));
    }
}
