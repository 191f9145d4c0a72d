//! Sticky assignments: a unit keeps the variant it was first given while an experiment's
//! weights move under it (a bandit reweighting), as GrowthBook's sticky bucketing does.
//!
//! Nothing is stored by the engine: the caller carries a [`StickyDoc`] per unit — a browser's
//! cookie at the edge, a document a service or SDK sends with `POST /v1/assign` and keeps from
//! the answer. An entry is keyed by experiment and `bucket_version`, so bumping the bucket
//! version re-randomises every unit on purpose. Entries are written and honoured only for
//! experiments whose variant must not move ([`Experiment::is_sticky`]), and only while their
//! variant still has weight. Targeting, the layer and the ramp still apply: a remembered variant
//! never brings a unit back into an experiment it no longer qualifies for.
//!
//! A document travels through the client, so its issuer signs it ([`StickyDoc::sign`], the
//! `sig` member) and takes back only what it signed ([`StickyDoc::verified`]): an unsigned or
//! altered document is ignored, as if the unit had none. A local evaluator (the JavaScript SDK's
//! wasm) keeps its own documents and trusts them: there, the client only fools itself.

use serde_json::Value;

use crate::assign::{Assignment, assign_remembering};
use crate::config::{Experiment, ExperimentType};
use crate::signing::Keys;
use crate::targeting::{Attributes, SavedGroups};

/// Unit types whose units are single requests: nothing to keep, they follow the weights.
pub const REQUEST_LEVEL_UNIT_TYPES: [&str; 2] = ["request_id", "request"];

/// The most entries a document keeps (the oldest go first): it travels in a cookie, which
/// browsers keep only up to 4 KB (20 entries of typical keys take well under 2 KB encoded).
pub const MAX_ENTRIES: usize = 20;

/// One unit's remembered variants: `{"unit_id": …, "assignments": {"{experiment}__{bucket
/// version}": variant, …}}` in JSON. Read and written through [`Value`] rather than serde's
/// derives, and the entries kept in a list, not a `BTreeMap`: the worker already carries `Value`'s
/// code, and derives and a second map type cost it 9 KiB of its 250 KiB upload (measured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StickyDoc {
    /// The unit the entries belong to: a document of another unit is ignored.
    pub unit_id: String,
    /// `("{experiment key}__{bucket version}", variant key)`, oldest first, keys unique.
    pub assignments: Vec<(String, String)>,
    /// The issuer's signature over the unit and the entries (`sig`, 16 hex digits); `None` when
    /// unsigned or unreadable.
    pub sig: Option<u64>,
}

impl Experiment {
    /// Whether a unit must keep its variant: bandits (their weights move) over units that
    /// outlive a request.
    pub fn is_sticky(&self) -> bool {
        self.kind == ExperimentType::Bandit && !REQUEST_LEVEL_UNIT_TYPES.contains(&self.unit_type.as_str())
    }

    fn sticky_key(&self) -> String {
        format!("{}__{}", self.key, self.bucket_version)
    }
}

impl StickyDoc {
    /// From its JSON; `None` unless it has the document's shape.
    pub fn from_json(value: &Value) -> Option<StickyDoc> {
        let obj = value.as_object()?;
        if obj.keys().any(|k| k != "unit_id" && k != "assignments" && k != "sig") {
            return None;
        }
        let unit_id = obj.get("unit_id")?.as_str()?.to_owned();
        let assignments = match obj.get("assignments") {
            None => Vec::new(),
            Some(a) => a.as_object()?.iter().map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect::<Option<_>>()?,
        };
        // A signature that does not read is no signature: the document is then ignored by a
        // verifier, not refused (an old or mangled cookie must not break a page).
        let sig = obj.get("sig").and_then(Value::as_str).and_then(crate::signing::parse_tag);
        Some(StickyDoc { unit_id, assignments, sig })
    }

    /// Signs the document as it is now (after the last entry it remembered).
    pub fn sign(&mut self, keys: &Keys) {
        self.sig = keys.sign_document(&self.unit_id, &self.assignments);
    }

    /// The document if `keys` signed exactly this content; `None` for an unsigned or altered one.
    pub fn verified(self, keys: &Keys) -> Option<StickyDoc> {
        let sig = self.sig?;
        keys.verify_document(&self.unit_id, &self.assignments, sig).then_some(self)
    }

    /// Its JSON text, written directly (building a `Value` map would sort and insert: code the
    /// worker does not otherwise carry).
    pub fn to_json(&self) -> String {
        let text = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let entries: Vec<String> = self.assignments.iter().map(|(k, v)| format!("{}:{}", text(k), text(v))).collect();
        let sig = self.sig.map(|t| format!(r#","sig":"{t:016x}""#)).unwrap_or_default();
        format!(r#"{{"unit_id":{},"assignments":{{{}}}{sig}}}"#, text(&self.unit_id), entries.join(","))
    }

    /// `doc` if it is `unit_id`'s, else an empty one for it.
    pub fn for_unit(doc: Option<StickyDoc>, unit_id: &str) -> StickyDoc {
        match doc {
            Some(d) if d.unit_id == unit_id => d,
            _ => StickyDoc { unit_id: unit_id.to_owned(), assignments: Vec::new(), sig: None },
        }
    }

    pub fn variant(&self, experiment: &Experiment) -> Option<&str> {
        self.get(&experiment.sticky_key())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.assignments.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Remembers `variant` under `key`, the oldest entries going past [`MAX_ENTRIES`].
    fn remember(&mut self, key: String, variant: &str) {
        self.assignments.retain(|(k, _)| *k != key);
        self.assignments.push((key, variant.to_owned()));
        if self.assignments.len() > MAX_ENTRIES {
            self.assignments.drain(..self.assignments.len() - MAX_ENTRIES);
        }
    }
}

/// [`crate::assign_with`], keeping the unit's remembered variant and remembering new ones in
/// `doc` (which must be the unit's: [`StickyDoc::for_unit`]). Returns whether `doc` changed.
pub fn assign_sticky<'a>(
    experiment: &'a Experiment,
    unit_id: &str,
    attributes: &Attributes,
    groups: &SavedGroups,
    doc: &mut StickyDoc,
) -> (Assignment<'a>, bool) {
    // The key once: looked up, then written when the unit is in a sticky experiment under a
    // variant the document does not hold yet.
    let key = experiment.sticky_key();
    let remembered = doc.get(&key);
    let a = assign_remembering(experiment, unit_id, attributes, groups, remembered);
    let changed = experiment.is_sticky() && a.in_experiment && remembered != Some(a.variant_key);
    if changed {
        doc.remember(key, a.variant_key);
    }
    (a, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Reason, assign};
    use serde_json::json;

    fn bandit(weights: [f64; 3], unit_type: &str) -> Experiment {
        serde_json::from_value(json!({
            "key": "five", "type": "bandit", "unit_type": unit_type, "status": "running", "ramp_pct": 100, "version": 1,
            "variants": [{"key": "a", "weight": weights[0]}, {"key": "b", "weight": weights[1]}, {"key": "c", "weight": weights[2]}]
        }))
        .expect("an experiment")
    }

    #[test]
    fn a_unit_keeps_its_variant_while_weights_move() {
        let before = bandit([0.34, 0.33, 0.33], "user_id");
        let after = bandit([0.01, 0.01, 0.98], "user_id");
        let none = Attributes::new();
        let mut moved = 0;
        for n in 0..500 {
            let unit = format!("u{n}");
            let mut doc = StickyDoc::for_unit(None, &unit);
            let (first, changed) = assign_sticky(&before, &unit, &none, &SavedGroups::new(), &mut doc);
            assert!(changed && first.reason == Reason::Assigned);
            let (again, changed) = assign_sticky(&after, &unit, &none, &SavedGroups::new(), &mut doc);
            assert_eq!((again.variant_key, again.reason, again.in_experiment, changed), (first.variant_key, Reason::Sticky, true, false));
            // The assignment id is the variant's, whichever way it was reached.
            assert_eq!(again.assignment_id, first.assignment_id);
            moved += usize::from(assign(&after, &unit, &none).variant_key != first.variant_key);
        }
        assert!(moved > 200, "without the document most units would have moved ({moved})");
    }

    #[test]
    fn what_is_not_kept() {
        let none = Attributes::new();
        let groups = SavedGroups::new();
        // Request-level units and A/B experiments write nothing.
        let mut doc = StickyDoc::for_unit(None, "u1");
        assign_sticky(&bandit([0.5, 0.25, 0.25], "request_id"), "u1", &none, &groups, &mut doc);
        let mut ab = bandit([0.5, 0.25, 0.25], "user_id");
        ab.kind = ExperimentType::Ab;
        assign_sticky(&ab, "u1", &none, &groups, &mut doc);
        assert!(doc.assignments.is_empty());
        // Another unit's document is not used.
        let mut other = StickyDoc { unit_id: "u2".into(), assignments: vec![("five__0".to_owned(), "c".to_owned())], sig: None };
        assert_eq!(StickyDoc::for_unit(Some(other.clone()), "u1").assignments.len(), 0);
        // A bucket version bump re-randomises; a variant that no longer exists is ignored.
        let mut e = bandit([0.98, 0.01, 0.01], "user_id");
        assert_eq!(assign_sticky(&e, "u2", &none, &groups, &mut other).0.variant_key, "c");
        e.bucket_version = 1;
        let (a, changed) = assign_sticky(&e, "u2", &none, &groups, &mut other);
        assert_eq!((a.variant_key, a.reason, changed), ("a", Reason::Assigned, true));
        assert_eq!(other.assignments, [("five__0".to_owned(), "c".to_owned()), ("five__1".to_owned(), "a".to_owned())]);
        let mut gone = StickyDoc { unit_id: "u3".into(), assignments: vec![("five__1".to_owned(), "zzz".to_owned())], sig: None };
        assert_eq!(assign_sticky(&e, "u3", &none, &groups, &mut gone).0.variant_key, "a");
        // The ramp still applies.
        e.ramp_pct = 0.0;
        let (a, _) = assign_sticky(&e, "u2", &none, &groups, &mut other);
        assert_eq!((a.reason, a.in_experiment, a.variant_key), (Reason::Ramp, false, "a"));
    }

    #[test]
    fn documents_read_back_what_they_write() {
        let doc = StickyDoc { unit_id: "u1".into(), assignments: vec![("five__0".to_owned(), "m3".to_owned())], sig: None };
        let text = doc.to_json();
        assert_eq!(serde_json::from_str::<Value>(&text).ok(), Some(json!({"unit_id": "u1", "assignments": {"five__0": "m3"}})));
        assert_eq!(serde_json::from_str::<Value>(&text).ok().as_ref().and_then(StickyDoc::from_json), Some(doc));
        // Entries keep their order (oldest first); keys and values are escaped.
        let odd = StickyDoc { unit_id: "\"q\"".into(), assignments: vec![("z__0".into(), "a\\b".into()), ("a__0".into(), "ü".into())], sig: None };
        assert_eq!(odd.to_json(), r#"{"unit_id":"\"q\"","assignments":{"z__0":"a\\b","a__0":"ü"}}"#);
        assert_eq!(StickyDoc::from_json(&json!({"unit_id": "u"})).map(|d| d.assignments.len()), Some(0));
        for bad in [json!([]), json!({"assignments": {}}), json!({"unit_id": 1}), json!({"unit_id": "u", "assignments": {"a": 1}}), json!({"unit_id": "u", "x": 1})] {
            assert_eq!(StickyDoc::from_json(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_document_can_pick_nothing_an_ab_test_or_an_unserved_arm_would_not_give() {
        let none = Attributes::new();
        let groups = SavedGroups::new();
        // A bandit arm at weight zero, an A/B test, and a request-level bandit: the document's
        // variant is ignored and the answer is the weights' own, byte for byte.
        let mut ab = bandit([0.5, 0.5, 0.0], "user_id");
        ab.kind = ExperimentType::Ab;
        let cases = [bandit([0.5, 0.5, 0.0], "user_id"), ab, bandit([0.5, 0.5, 0.0], "request_id")];
        for e in &cases {
            for n in 0..200 {
                let unit = format!("u{n}");
                let mut forged = StickyDoc { unit_id: unit.clone(), assignments: vec![("five__0".into(), "c".into())], sig: None };
                let (a, _) = assign_sticky(e, &unit, &none, &groups, &mut forged);
                assert_eq!(a, assign(e, &unit, &none), "{:?} {unit}", e.kind);
                assert_ne!(a.variant_key, "c");
            }
        }
        // A/B answers are what they were without any document, serialized too.
        let mut doc = StickyDoc { unit_id: "u7".into(), assignments: vec![("five__0".into(), "b".into())], sig: None };
        let with = serde_json::to_string(&assign_sticky(&cases[1], "u7", &none, &groups, &mut doc).0).expect("json");
        assert_eq!(with, serde_json::to_string(&assign(&cases[1], "u7", &none)).expect("json"));
    }

    #[test]
    fn only_the_issuers_signature_makes_a_document_count() {
        let keys = Keys::parse("000102030405060708090a0b0c0d0e0f").expect("keys");
        let mut doc = StickyDoc { unit_id: "u1".into(), assignments: vec![("five__0".into(), "b".into())], sig: None };
        assert_eq!(doc.clone().verified(&keys), None, "unsigned");
        doc.sign(&keys);
        let text = doc.to_json();
        let read = StickyDoc::from_json(&serde_json::from_str(&text).expect("json")).expect("a document");
        assert_eq!(read.clone().verified(&keys), Some(doc.clone()), "signed and read back: {text}");
        // Altered entry, unit or order, or another key: ignored.
        let other = Keys::parse("f0e0d0c0b0a090807060504030201000").expect("keys");
        assert_eq!(read.clone().verified(&other), None);
        for tampered in [text.replace(r#""b""#, r#""c""#), text.replace(r#""u1""#, r#""u2""#), text.replace("\"sig\":\"", "\"sig\":\"0")] {
            let d = StickyDoc::from_json(&serde_json::from_str(&tampered).expect("json")).expect("a document");
            assert_eq!(d.verified(&keys), None, "{tampered}");
        }
    }

    #[test]
    fn documents_stay_small() {
        let none = Attributes::new();
        let mut doc = StickyDoc::for_unit(None, "u");
        for i in 0..(MAX_ENTRIES + 10) {
            let mut e = bandit([0.5, 0.25, 0.25], "user_id");
            e.key = format!("e{i:03}");
            assign_sticky(&e, "u", &none, &SavedGroups::new(), &mut doc);
        }
        assert_eq!(doc.assignments.len(), MAX_ENTRIES);
        // The oldest went first.
        assert_eq!(doc.assignments[0].0, "e010__0");
    }
}
