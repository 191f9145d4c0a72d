//! The `/v1/assign` body, written by hand from fragments rendered once per config set.
//!
//! Profiled under load, serde_json spent most of its time on the same bytes for every request:
//! escaping each experiment's key, its variants' keys and their `config_json`, identical for every
//! unit. Those parts are rendered once per published set, as the opening of each
//! (experiment, variant) answer up to its `assignment_id`, and only what depends on the unit is
//! written per request. The output is byte for byte what serializing [`Assignment`] gives (the
//! tests compare the two over many sets and units).

use std::cell::RefCell;
use std::rc::Rc;

use litmus_shared::signing::{Keys, Signature, Signer};
use litmus_shared::{Assignment, ConfigSet, Reason, StickyDoc};

/// One entry of an answer.
#[derive(Debug)]
pub enum Entry<'a> {
    /// An assignment by the experiment at this index of the set.
    Known(Assignment<'a>, usize),
    /// An experiment the set does not hold (or no set at all): never an error, so a page asking
    /// for a not-yet-published experiment simply gets the safe default.
    Missing { experiment: &'a str, reason: &'static str },
}

/// The per-set fragments: `prefixes[experiment][variant]` is
/// `{"experiment":…,"variant_key":…,"config_json":…,"assignment_id":"`,
/// `signature_heads[experiment]` is `","signature":"{version}.{bucket version}.`, and
/// `suffixes[experiment][reason]` is `","version":…,"in_experiment":…,"reason":…}`: all of an
/// assignment but its id and its signature's tag. `signers[experiment][variant]` (out of the
/// experiment, in it) have absorbed everything the tag covers but the unit.
pub struct Fragments {
    set: Rc<ConfigSet>,
    prefixes: Vec<Vec<String>>,
    signature_heads: Vec<String>,
    signers: Vec<Vec<[Option<Signer>; 2]>>,
    suffixes: Vec<[String; REASONS.len()]>,
    /// Whether some targeting of the set names an attribute the platform knows itself
    /// (`assign::PLATFORM_ATTRIBUTES`).
    pub reads_platform: bool,
}

/// Every reason, in the order of [`reason_index`].
const REASONS: [Reason; 7] =
    [Reason::Assigned, Reason::NotRunning, Reason::Layer, Reason::Targeting, Reason::Ramp, Reason::InvalidConfig, Reason::Sticky];

fn reason_index(r: Reason) -> usize {
    match r {
        Reason::Assigned => 0,
        Reason::NotRunning => 1,
        Reason::Layer => 2,
        Reason::Targeting => 3,
        Reason::Ramp => 4,
        Reason::InvalidConfig => 5,
        Reason::Sticky => 6,
    }
}

/// Whether an assignment with this reason is in the experiment (as `assign` sets it).
fn is_in(r: Reason) -> bool {
    matches!(r, Reason::Assigned | Reason::Sticky)
}

thread_local! {
    // The fragments of the set last answered from; it holds that set, so a pointer match is
    // always the same set.
    static FRAGMENTS: RefCell<Option<Rc<Fragments>>> = const { RefCell::new(None) };
}

impl Fragments {
    /// This isolate's fragments for `set`, rendered on first use (the keys are the isolate's:
    /// they change only with a new isolate).
    pub fn of(set: &Rc<ConfigSet>, keys: &Keys) -> Rc<Self> {
        FRAGMENTS.with_borrow_mut(|cached| match cached {
            Some(f) if Rc::ptr_eq(&f.set, set) => f.clone(),
            _ => {
                let f = Rc::new(Self::new(set.clone(), keys));
                *cached = Some(f.clone());
                f
            }
        })
    }

    fn new(set: Rc<ConfigSet>, keys: &Keys) -> Self {
        let signature_heads = set
            .experiments
            .iter()
            .map(|e| {
                let mut head = br#"","signature":""#.to_vec();
                push_i64(&mut head, e.version);
                head.push(b'.');
                push_i64(&mut head, e.bucket_version);
                head.push(b'.');
                String::from_utf8(head).unwrap_or_default()
            })
            .collect();
        let signers = set
            .experiments
            .iter()
            .map(|e| e.variants.iter().map(|v| [false, true].map(|is_in| keys.signer(&e.key, &v.key, e.version, e.bucket_version, is_in))).collect())
            .collect();
        let prefixes = set
            .experiments
            .iter()
            .map(|e| {
                e.variants
                    .iter()
                    .map(|v| {
                        format!(
                            r#"{{"experiment":{},"variant_key":{},"config_json":{},"assignment_id":""#,
                            json(&e.key),
                            json(&v.key),
                            json(&v.config_json)
                        )
                    })
                    .collect()
            })
            .collect();
        let suffixes = set
            .experiments
            .iter()
            .map(|e| {
                REASONS.map(|r| {
                    let mut suffix = Vec::new();
                    suffix.extend_from_slice(br#"","version":"#);
                    push_i64(&mut suffix, e.version);
                    suffix.extend_from_slice(if is_in(r) { br#","in_experiment":true,"reason":"# } else { br#","in_experiment":false,"reason":"# });
                    suffix.extend_from_slice(reason(r).as_bytes());
                    suffix.push(b'}');
                    String::from_utf8(suffix).unwrap_or_default()
                })
            })
            .collect();
        let reads_platform = set.experiments.iter().any(|e| crate::assign::names_platform(e.targeting.as_json()));
        Self { set, prefixes, signature_heads, signers, suffixes, reads_platform }
    }

    fn write_assignment(&self, out: &mut Vec<u8>, index: usize, a: &Assignment, unit_id: &str, keys: &Keys) {
        // The variant is found by identity: `assign` lends its key from the experiment.
        let fragments = self.set.experiments.get(index).filter(|e| e.version == a.version && is_in(a.reason) == a.in_experiment).and_then(|e| {
            let v = e.variants.iter().position(|v| std::ptr::eq(v.key.as_str(), a.variant_key))?;
            let signer = self.signers.get(index)?.get(v)?[usize::from(a.in_experiment)].as_ref();
            Some((self.prefixes.get(index)?.get(v)?, signer, self.suffixes.get(index)?.get(reason_index(a.reason))?))
        });
        let Some((prefix, signer, suffix)) = fragments else {
            // No variant to lend (an experiment without usable variants): the general road.
            let signature = self.set.experiments.get(index).and_then(|e| keys.sign(e, unit_id, a));
            write_general(out, a, signature);
            return;
        };
        // By hand, not `write!`: the formatting machinery was a twentieth of the isolate's
        // time at 50 experiments per answer (profiled), for a hex id, an integer and a flag.
        out.extend_from_slice(prefix.as_bytes());
        push_hex16(out, a.assignment_id);
        if let Some(signer) = signer {
            out.extend_from_slice(self.signature_heads[index].as_bytes());
            push_hex16(out, signer.tag(unit_id));
        }
        out.extend_from_slice(suffix.as_bytes());
    }
}

/// `{"unit_id":…,"config_version":…,"assignments":[…]}`, and `"sticky":{…}` when given, into
/// `out` (cleared first: the fast path hands in the last answer's buffer, to reuse its capacity).
/// Bytes, not a `String`: the body leaves as bytes, and every piece is UTF-8 already.
pub fn answer(out: &mut Vec<u8>, unit_id: &str, set: Option<&Rc<ConfigSet>>, entries: &[Entry], sticky: Option<&StickyDoc>, keys: &Keys) {
    let fragments = set.filter(|_| entries.iter().any(|e| matches!(e, Entry::Known(..)))).map(|s| Fragments::of(s, keys));
    out.clear();
    out.reserve(64 + entries.len() * 160);
    out.extend_from_slice(br#"{"unit_id":"#);
    push_json_str(out, unit_id);
    match set {
        Some(s) => {
            out.extend_from_slice(br#","config_version":"#);
            push_i64(out, s.version);
        }
        None => out.extend_from_slice(br#","config_version":null"#),
    }
    out.extend_from_slice(br#","assignments":["#);
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match (entry, &fragments) {
            (Entry::Known(a, index), Some(f)) => f.write_assignment(out, *index, a, unit_id, keys),
            (Entry::Known(a, _), None) => write_general(out, a, None),
            (Entry::Missing { experiment, reason }, _) => {
                out.extend_from_slice(br#"{"experiment":"#);
                push_json_str(out, experiment);
                out.extend_from_slice(br#","variant_key":null,"config_json":null,"in_experiment":false,"reason":""#);
                out.extend_from_slice(reason.as_bytes());
                out.extend_from_slice(br#""}"#);
            }
        }
    }
    out.push(b']');
    if let Some(doc) = sticky {
        out.extend_from_slice(br#","sticky":"#);
        out.extend_from_slice(doc.to_json().as_bytes());
    }
    out.push(b'}');
}

/// An assignment piece by piece, as serializing [`Assignment`] writes it (by hand: serde's
/// derive and its `{:016x}` would be kept in the worker for this rare road alone).
fn write_general(out: &mut Vec<u8>, a: &Assignment, signature: Option<Signature>) {
    out.extend_from_slice(br#"{"experiment":"#);
    push_json_str(out, a.experiment);
    out.extend_from_slice(br#","variant_key":"#);
    push_json_str(out, a.variant_key);
    out.extend_from_slice(br#","config_json":"#);
    out.extend_from_slice(json(a.config_json).as_bytes());
    out.extend_from_slice(br#","assignment_id":""#);
    push_hex16(out, a.assignment_id);
    if let Some(s) = signature {
        out.extend_from_slice(br#"","signature":""#);
        push_i64(out, s.version);
        out.push(b'.');
        push_i64(out, s.bucket_version);
        out.push(b'.');
        push_hex16(out, s.tag);
    }
    out.extend_from_slice(br#"","version":"#);
    push_i64(out, a.version);
    out.extend_from_slice(if a.in_experiment { br#","in_experiment":true,"reason":"# } else { br#","in_experiment":false,"reason":"# });
    out.extend_from_slice(reason(a.reason).as_bytes());
    out.push(b'}');
}

/// A JSON string literal of `s`, written by serde_json straight into the body (no intermediate
/// `String`).
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a `&str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// `{:016x}`.
fn push_hex16(out: &mut Vec<u8>, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 16];
    for (i, d) in hex.iter_mut().enumerate() {
        *d = DIGITS[((v >> (4 * (15 - i))) & 0xf) as usize];
    }
    out.extend_from_slice(&hex);
}

/// `{}` of an `i64`.
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    let mut n = v.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Strings, JSON values and the shared types always serialize.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// As `Reason` serializes (`rename_all = "snake_case"`); a new reason fails to compile here.
fn reason(r: Reason) -> &'static str {
    match r {
        Reason::Assigned => r#""assigned""#,
        Reason::NotRunning => r#""not_running""#,
        Reason::Layer => r#""layer""#,
        Reason::Targeting => r#""targeting""#,
        Reason::Ramp => r#""ramp""#,
        Reason::InvalidConfig => r#""invalid_config""#,
        Reason::Sticky => r#""sticky""#,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use litmus_shared::{Attributes, Experiment, assign};
    use serde::Serialize;
    use serde_json::{Value, json};

    // What the body was before: serde over these types. The hand-written body must equal it.
    #[derive(Serialize)]
    struct Missing<'a> {
        experiment: &'a str,
        variant_key: Option<&'a str>,
        config_json: Option<&'a Value>,
        in_experiment: bool,
        reason: &'static str,
    }
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Reference<'a> {
        Known(Assignment<'a>),
        Missing(Missing<'a>),
    }
    #[derive(Serialize)]
    struct Answer<'a> {
        unit_id: &'a str,
        config_version: Option<i64>,
        assignments: Vec<Reference<'a>>,
    }

    const KEY: &str = "000102030405060708090a0b0c0d0e0f";

    fn keys() -> Keys {
        Keys::parse(KEY).expect("a key")
    }

    /// Signed as the control plane signs: `Keys::sign` over the experiment, not the fragments.
    fn reference(unit_id: &str, set: Option<&ConfigSet>, entries: &[Entry]) -> String {
        let assignments = entries
            .iter()
            .map(|e| match e {
                Entry::Known(a, i) => {
                    let mut a = a.clone();
                    a.signature = set.and_then(|s| keys().sign(&s.experiments[*i], unit_id, &a));
                    Reference::Known(a)
                }
                Entry::Missing { experiment, reason } => Reference::Missing(Missing {
                    experiment,
                    variant_key: None,
                    config_json: None,
                    in_experiment: false,
                    reason,
                }),
            })
            .collect();
        serde_json::to_string(&Answer { unit_id, config_version: set.map(|s| s.version), assignments }).expect("serializes")
    }

    /// An answer written into a buffer that held a longer one before: nothing of that may remain.
    fn body(unit_id: &str, set: Option<&Rc<ConfigSet>>, entries: &[Entry]) -> String {
        let mut out = vec![b'x'; 10_000];
        answer(&mut out, unit_id, set, entries, None, &keys());
        String::from_utf8(out).expect("UTF-8")
    }

    fn experiment(key: &str, extra: Value) -> Experiment {
        let mut e = json!({
            "key": key, "status": "running", "ramp_pct": 70, "version": 3,
            "variants": [
                {"key": "control", "weight": 0.34, "config_json": {"a": [1, 2.5, null], "s": "x\"y\\ü🙂"}},
                {"key": "b \"quoted\"", "weight": 0.33},
                {"key": "ünï", "weight": 0.33, "config_json": "plain"}
            ],
            "targeting": {"country": {"in": ["US", "CA"]}}
        });
        if let (Some(obj), Value::Object(extra)) = (e.as_object_mut(), extra) {
            obj.extend(extra);
        }
        serde_json::from_value(e).expect("an experiment")
    }

    #[test]
    fn numbers_are_written_as_format_writes_them() {
        for v in [0, 1, 9, 10, 0xabc, 0x0123_4567_89ab_cdef, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            push_hex16(&mut out, v);
            assert_eq!(out, format!("{v:016x}").into_bytes());
        }
        for v in [0, 1, -1, 9, 10, -10, 42, 1_000_000_007, i64::MIN, i64::MIN + 1, i64::MAX] {
            let mut out = b"x".to_vec();
            push_i64(&mut out, v);
            assert_eq!(out, format!("x{v}").into_bytes());
        }
    }

    #[test]
    fn the_hand_written_body_is_what_serde_writes() {
        let set = Rc::new(ConfigSet {
            version: 42,
            published_at: None,
            experiments: vec![
                experiment("plain", json!({})),
                experiment("k\"ey\\\u{1}", json!({"ramp_pct": 100, "targeting": {}})),
                experiment("paused", json!({"status": "paused"})),
                experiment("unicode ключ", json!({"targeting": {}})),
                // No variants: control with an empty key, written on the general road.
                experiment("bare", json!({"variants": []})),
            ],
            saved_groups: Default::default(),
        });
        let mut reasons = std::collections::BTreeSet::new();
        for n in 0..500 {
            let unit = if n % 7 == 0 { format!("ü\"nit\\{n}") } else { format!("u{n}") };
            let mut attributes = Attributes::new();
            attributes.insert("country".into(), Value::String(["US", "GB", "CA"][n % 3].into()));
            let mut entries: Vec<Entry> =
                set.experiments.iter().enumerate().map(|(i, e)| Entry::Known(assign(e, &unit, &attributes), i)).collect();
            // And the fragments are what wrote them, not the general road.
            let f = Fragments::of(&set, &keys());
            for entry in &entries {
                let Entry::Known(a, i) = entry else { continue };
                let Some(v) = set.experiments[*i].variants.iter().position(|v| v.key == a.variant_key) else {
                    assert_eq!(a.reason, Reason::InvalidConfig);
                    continue;
                };
                let mut out = Vec::new();
                f.write_assignment(&mut out, *i, a, &unit, &keys());
                assert!(out.starts_with(f.prefixes[*i][v].as_bytes()), "{out:?}");
                assert!(out.ends_with(f.suffixes[*i][reason_index(a.reason)].as_bytes()), "{out:?}");
                reasons.insert(reason(a.reason));
            }
            entries.push(Entry::Missing { experiment: "not \"there\"", reason: "unknown_experiment" });
            assert_eq!(body(&unit, Some(&set), &entries), reference(&unit, Some(&set), &entries), "unit {unit}");
        }
        assert_eq!(reasons.len(), 4, "assigned, ramp, targeting and not running all written: {reasons:?}");
        let general = [Entry::Known(assign(&set.experiments[4], "u", &Attributes::new()), 4)];
        assert!(body("u", Some(&set), &general).contains(r#""variant_key":"","config_json":null"#));
        let missing = [Entry::Missing { experiment: "x", reason: "no_config" }];
        assert_eq!(body("u", None, &missing), reference("u", None, &missing));
        assert_eq!(body("u", Some(&set), &[]), reference("u", Some(&set), &[]));
    }

    #[test]
    fn strings_are_escaped_as_serde_escapes_them() {
        let every_control: String = (0u8..0x20).map(char::from).collect();
        for s in ["", "plain", "q\"uote", "back\\slash", "ü🙂ключ", "\u{7f}\u{2028}", &every_control, "a\nb\u{1}c\"", "\\\""] {
            let mut out = b"x".to_vec();
            push_json_str(&mut out, s);
            assert_eq!(out, format!("x{}", serde_json::to_string(s).expect("serializes")).into_bytes(), "{s:?}");
        }
    }

    #[test]
    fn every_reason_is_written_as_serde_writes_it() {
        for r in [Reason::Assigned, Reason::NotRunning, Reason::Layer, Reason::Targeting, Reason::Ramp, Reason::InvalidConfig, Reason::Sticky] {
            assert_eq!(reason(r), serde_json::to_string(&r).expect("serializes"));
            assert_eq!(REASONS[reason_index(r)], r);
        }
    }

    #[test]
    fn fragments_follow_the_set() {
        let a = Rc::new(ConfigSet { version: 1, published_at: None, experiments: vec![experiment("a", json!({}))], saved_groups: Default::default() });
        let b = Rc::new(ConfigSet { version: 1, published_at: None, experiments: vec![experiment("b", json!({}))], saved_groups: Default::default() });
        let attrs = Attributes::new();
        let body = |set: &Rc<ConfigSet>| body("u", Some(set), &[Entry::Known(assign(&set.experiments[0], "u", &attrs), 0)]);
        assert!(body(&a).contains(r#""experiment":"a""#));
        assert!(body(&b).contains(r#""experiment":"b""#), "same version, another set: fragments rendered again");
        assert!(body(&a).contains(r#""experiment":"a""#));
    }
}
