//! The rules an event must meet before anything stores or forwards it: one module, used by the
//! control plane's ingest and by the edge worker, so the two can never disagree on what is valid
//! (they did: the edge served `unit_id: ""` and queued exposures the control plane then refused,
//! and passed on text with NUL characters that Postgres cannot store).
//!
//! Everything here is pure: the caller passes the current time. Errors name the field relative
//! to the event (`value`, `attributes.country`); callers prefix it (`events[3].value`). Messages
//! speak JSON, never Rust (`must be a number`, not `expected f64`).
//!
//! The bounds and why:
//! - `value`: finite, |value| ≤ [`MAX_ABS_VALUE`] = 10¹⁵. The aggregates keep per-arm sums of
//!   squares in float8 (max ≈ 1.8·10³⁰⁸): with values bounded by 10¹⁵, a unit summing even 10¹²
//!   events stays below 10²⁷, its square below 10⁵⁴, and a sum of such squares over 10¹² units
//!   below 10⁶⁶: overflow is impossible at any volume. 10¹⁵ is below 2⁵³, so integer amounts (in
//!   cents, say) are exact, and it still leaves ten trillion dollars of headroom per event.
//! - text (`unit_id`, names, ids, attribute keys and strings): no NUL character (U+0000), which
//!   Postgres `text` and `jsonb` cannot hold (every other valid UTF-8 string can be stored).
//! - `ts`: RFC 3339, on or after [`MIN_TS`] (clients with an unset clock send 1970 or 0001) and at
//!   most [`CLOCK_SKEW_SECONDS`] in the future. No lower bound relative to the experiment: metric
//!   events before a unit's exposure are the CUPED covariate, so they may predate its start.

use serde_json::{Map, Value};

pub const MAX_UNIT_ID_BYTES: usize = 512;
/// Experiment references, variant keys, metric names, event ids.
pub const MAX_NAME_BYTES: usize = 128;
pub const MAX_ABS_VALUE: f64 = 1e15;
/// Attributes are for segmenting, not payloads.
pub const MAX_ATTRIBUTES_BYTES: usize = 4096;
/// How far an event's `ts` may run ahead of the receiver's clock, and how long after an
/// experiment's stop its events are still taken.
pub const CLOCK_SKEW_SECONDS: i64 = 300;
pub const MIN_TS: &str = "2000-01-01T00:00:00Z";
const MIN_TS_MICROS: i64 = 946_684_800 * 1_000_000;
const MAX_TS_BYTES: usize = 64;
/// The metric a conversion without `metric` counts under.
pub const DEFAULT_CONVERSION_METRIC: &str = "conversion";
pub const FIELDS: [&str; 12] = [
    "kind",
    "experiment",
    "unit_id",
    "variant_key",
    "metric",
    "value",
    "event_id",
    "ts",
    "attributes",
    "version",
    "assignment_id",
    "signature",
];

/// A non-negative integer written in ASCII digits only (no sign, no spaces), `None` when it is not
/// one or overflows. By hand: `str::parse` costs the edge's upload more than this whole check.
pub fn digits(value: &str) -> Option<i64> {
    if value.is_empty() {
        return None;
    }
    value.bytes().try_fold(0i64, |n, b| if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(i64::from(b - b'0')) } else { None })
}

/// The version a signed token names (`{version}.{bucket_version}.{tag}`, `crate::signing`).
pub fn signed_version(token: &str) -> Option<i64> {
    digits(token.split('.').next()?)
}

/// A refused event: the field (relative to the event; empty = the event itself), a code, and a
/// message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl Invalid {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: "validation_failed",
            field: field.into(),
            message: message.into(),
        }
    }

    /// `events[3]` + `value` → `events[3].value`.
    pub fn path(&self, prefix: &str) -> String {
        match (prefix.is_empty(), self.field.is_empty()) {
            (true, _) => self.field.clone(),
            (_, true) => prefix.to_owned(),
            _ => format!("{prefix}.{}", self.field),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Exposure,
    Metric,
    Conversion,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Exposure, Kind::Metric, Kind::Conversion];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Exposure => "exposure",
            Kind::Metric => "metric",
            Kind::Conversion => "conversion",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An event that meets every rule here. What only the control plane can check (the experiment
/// exists, the variant is one of its variants, its lifecycle) comes after.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: Kind,
    pub experiment: String,
    pub unit_id: String,
    pub variant_key: String,
    /// Always set on metrics and conversions (a conversion without one gets
    /// [`DEFAULT_CONVERSION_METRIC`]); never on exposures.
    pub metric: Option<String>,
    /// Metric events only.
    pub value: Option<f64>,
    pub event_id: Option<String>,
    pub ts: Option<Timestamp>,
    /// Exposures only; `None` when absent or empty.
    pub attributes: Option<Map<String, Value>>,
    /// The `signature` of the answer the event reports on (`crate::signing`), as sent; checked
    /// where events arrive without a key (the public edge).
    pub signature: Option<String>,
    /// Exposures only: the version of the experiment's config the assignment was served from
    /// (the answer's `version`): which weights of a bandit the unit was served. A receiver may
    /// also take it from the `signature` ([`signed_version`]).
    pub version: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// Microseconds since the Unix epoch.
    pub micros: i64,
    /// As the client wrote it.
    pub text: String,
}

/// Checks one event (a parsed JSON value). `forced` is the kind the endpoint takes
/// (`/events/metric`), `None` for batches; `now_micros` is the receiver's clock.
pub fn event(v: &Value, forced: Option<Kind>, now_micros: i64) -> Result<Event, Invalid> {
    let Value::Object(obj) = v else {
        return Err(Invalid::new("", "an event must be a JSON object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Invalid::new(
            unknown.clone(),
            format!("unknown field; an event has {}", FIELDS[..10].join(", ")),
        ));
    }
    let kinds = || Kind::ALL.map(Kind::as_str).join(", ");
    let given = match string(obj, "kind", MAX_NAME_BYTES)? {
        None => None,
        Some(s) => Some(
            Kind::parse(s)
                .ok_or_else(|| Invalid::new("kind", format!("must be one of {}", kinds())))?,
        ),
    };
    let kind = match (forced, given) {
        (Some(f), Some(g)) if f != g => {
            return Err(Invalid::new(
                "kind",
                format!("this endpoint takes {} events only", f.as_str()),
            ));
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => {
            return Err(Invalid::new(
                "kind",
                format!("is required: one of {}", kinds()),
            ));
        }
    };
    let experiment = required(obj, "experiment", MAX_NAME_BYTES)?;
    let unit = required(obj, "unit_id", MAX_UNIT_ID_BYTES)?;
    let variant_key = required(obj, "variant_key", MAX_NAME_BYTES)?;
    let metric = match (kind, string(obj, "metric", MAX_NAME_BYTES)?) {
        (Kind::Exposure, Some(_)) => {
            return Err(Invalid::new(
                "metric",
                "only metric and conversion events name a metric",
            ));
        }
        (Kind::Exposure, None) => None,
        (_, Some("")) => return Err(Invalid::new("metric", "must not be empty")),
        (Kind::Metric, None) => {
            return Err(Invalid::new("metric", "is required for metric events"));
        }
        (Kind::Conversion, None) => Some(DEFAULT_CONVERSION_METRIC),
        (_, Some(m)) => Some(m),
    };
    let value = match (kind, obj.get("value")) {
        (Kind::Metric, None | Some(Value::Null)) => {
            return Err(Invalid::new("value", "is required for metric events"));
        }
        (Kind::Metric, Some(v)) => Some(value(v)?),
        (_, None | Some(Value::Null)) => None,
        (_, Some(_)) => {
            return Err(Invalid::new(
                "value",
                "only metric events carry a value (a conversion counts converting units); send an amount as a metric event",
            ));
        }
    };
    let event_id = match string(obj, "event_id", MAX_NAME_BYTES)? {
        Some("") => {
            return Err(Invalid::new(
                "event_id",
                "must not be empty (leave it out to have one minted)",
            ));
        }
        id => id,
    };
    let ts = match obj.get("ts") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Timestamp {
            micros: ts(s, now_micros)?,
            text: s.clone(),
        }),
        Some(_) => return Err(Invalid::new("ts", TS_FORMAT)),
    };
    let attributes = match obj.get("attributes") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(Value::Object(_)) if kind != Kind::Exposure => {
            return Err(Invalid::new(
                "attributes",
                "are recorded on exposure events only",
            ));
        }
        Some(Value::Object(m)) => {
            attributes(m)?;
            Some(m.clone())
        }
        Some(_) => return Err(Invalid::new("attributes", "must be an object")),
    };
    let signature = string(obj, "signature", crate::signing::MAX_TOKEN_BYTES)?.map(str::to_owned);
    let version = match obj.get("version") {
        None | Some(Value::Null) => None,
        Some(_) if kind != Kind::Exposure => return Err(Invalid::new("version", "is recorded on exposure events only")),
        Some(v) => Some(v.as_i64().filter(|v| *v >= 0).ok_or_else(|| Invalid::new("version", "must be a non-negative integer"))?),
    };
    Ok(Event {
        signature,
        version,
        kind,
        experiment: experiment.to_owned(),
        unit_id: unit.to_owned(),
        variant_key: variant_key.to_owned(),
        metric: metric.map(str::to_owned),
        value,
        event_id: event_id.map(str::to_owned),
        ts,
        attributes,
    })
}

/// A unit id: 1 to [`MAX_UNIT_ID_BYTES`] bytes of storable text. The same rule for assignment
/// requests and events, at the edge and in the control plane.
pub fn unit_id(s: &str) -> Result<(), Invalid> {
    text("unit_id", s, MAX_UNIT_ID_BYTES)?;
    if s.is_empty() {
        return Err(Invalid::new(
            "unit_id",
            format!("must not be empty (1 to {MAX_UNIT_ID_BYTES} bytes)"),
        ));
    }
    Ok(())
}

/// Text Postgres can store, at most `max` bytes.
pub fn text(field: &str, s: &str, max: usize) -> Result<(), Invalid> {
    if s.contains('\0') {
        return Err(Invalid::new(
            field,
            "must not contain the NUL character (U+0000)",
        ));
    }
    if s.len() > max {
        return Err(Invalid::new(field, format!("must be at most {max} bytes")));
    }
    Ok(())
}

/// A metric value: a finite number within ±[`MAX_ABS_VALUE`].
pub fn value(v: &Value) -> Result<f64, Invalid> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        _ => return Err(Invalid::new("value", "must be a number")),
    };
    n.filter(|x| x.is_finite() && x.abs() <= MAX_ABS_VALUE)
        .ok_or_else(|| Invalid::new("value", "must be a number between -1e15 and 1e15"))
}

/// Segment attributes: storable keys and strings at any depth, at most
/// [`MAX_ATTRIBUTES_BYTES`] of JSON. The error names the offending path (`attributes.a[2].b`).
pub fn attributes(m: &Map<String, Value>) -> Result<(), Invalid> {
    let size = serde_json::to_string(m).map_or(usize::MAX, |s| s.len());
    if size > MAX_ATTRIBUTES_BYTES {
        return Err(Invalid::new(
            "attributes",
            format!("must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"),
        ));
    }
    // A key that cannot be stored is named by where it is (the key itself is not printable).
    m.iter().try_for_each(|(k, v)| {
        json_text("attributes", k).and_then(|()| storable_json(&format!("attributes.{k}"), v))
    })
}

/// Every key and string in `v` is text Postgres can store; the error names the path of the first
/// that is not (`field` is `v`'s own path, empty at the top: `variants[0].name`).
pub fn storable_json(field: &str, v: &Value) -> Result<(), Invalid> {
    let join = |k: &str| {
        if field.is_empty() {
            k.to_owned()
        } else {
            format!("{field}.{k}")
        }
    };
    match v {
        Value::String(s) => json_text(field, s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| storable_json(&format!("{field}[{i}]"), item)),
        // A key that cannot be stored is named by where it is: the key itself is not printable.
        Value::Object(m) => m
            .iter()
            .try_for_each(|(k, item)| json_text(field, k).and_then(|()| storable_json(&join(k), item))),
        _ => Ok(()),
    }
}

fn json_text(field: &str, s: &str) -> Result<(), Invalid> {
    text(field, s, usize::MAX)
}

const TS_FORMAT: &str = "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z";

/// An event time within the accepted window: on or after [`MIN_TS`], at most
/// [`CLOCK_SKEW_SECONDS`] after `now_micros`.
pub fn ts(s: &str, now_micros: i64) -> Result<i64, Invalid> {
    let micros = (s.len() <= MAX_TS_BYTES)
        .then(|| parse_rfc3339(s))
        .flatten()
        .ok_or_else(|| Invalid::new("ts", TS_FORMAT))?;
    if micros < MIN_TS_MICROS {
        return Err(Invalid::new("ts", format!("must be on or after {MIN_TS}")));
    }
    if micros > now_micros.saturating_add(CLOCK_SKEW_SECONDS * 1_000_000) {
        return Err(Invalid::new(
            "ts",
            format!(
                "is more than {} minutes in the future",
                CLOCK_SKEW_SECONDS / 60
            ),
        ));
    }
    Ok(micros)
}

/// Whether an experiment in `status` takes an event that happened at `ts_micros` (both in
/// microseconds): `Err((code, message))` when not. Drafts never served anyone, so nothing can
/// have happened in one. A stopped experiment still takes what happened while it ran (queues
/// deliver late), with the clock-skew allowance after `stopped_at`, and nothing after.
pub fn lifecycle(
    status: crate::Status,
    stopped_at_micros: Option<i64>,
    ts_micros: i64,
) -> Result<(), (&'static str, String)> {
    use crate::Status;
    match (status, stopped_at_micros) {
        (Status::Draft, _) => Err((
            "experiment_not_running",
            "the experiment is a draft: it has served no one, so it takes no events".into(),
        )),
        (Status::Stopped, Some(stopped))
            if ts_micros > stopped.saturating_add(CLOCK_SKEW_SECONDS * 1_000_000) =>
        {
            Err((
                "experiment_stopped",
                format!(
                    "the experiment was stopped; it takes only events from before its stop (up to {} minutes after it, for clock skew)",
                    CLOCK_SKEW_SECONDS / 60
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → microseconds since the Unix epoch (fractions beyond
/// microseconds are truncated; a leap second `:60` reads as `:59`). `None` for anything else,
/// including days that do not exist (`02-30`).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let seps = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !seps
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        micros = frac[..n]
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(6)
            .fold(0, |m, d| m * 10 + i64::from(d - b'0'));
        rest = &frac[n..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [h1, h2, m1, m2];
            if !digits.iter().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let [h1, h2, m1, m2] = digits.map(|c| i64::from(c - b'0'));
            let (h, m) = (h1 * 10 + h2, m1 * 10 + m2);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'-' {
                -(h * 60 + m)
            } else {
                h * 60 + m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(seconds * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn string<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
    max: usize,
) -> Result<Option<&'a str>, Invalid> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => text(name, s, max).map(|()| Some(s.as_str())),
        Some(_) => Err(Invalid::new(name, "must be a string")),
    }
}

fn required<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
    max: usize,
) -> Result<&'a str, Invalid> {
    match string(obj, name, max)? {
        None => Err(Invalid::new(name, "is required")),
        Some("") if name == "unit_id" => unit_id("").map(|()| ""),
        Some("") => Err(Invalid::new(name, "must not be empty")),
        Some(s) => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_796_000_000 * 1_000_000; // 2026-11-29

    fn err(v: Value) -> (String, String) {
        let e = event(&v, None, NOW).expect_err("invalid");
        (e.field, e.message)
    }

    fn base() -> Value {
        json!({"kind": "metric", "experiment": "e", "unit_id": "u", "variant_key": "a", "metric": "m", "value": 1.5})
    }

    fn with(k: &str, v: Value) -> Value {
        let mut e = base();
        e[k] = v;
        e
    }

    #[test]
    fn a_good_event_passes_with_its_fields() {
        let e = event(
            &with("ts", json!("2026-01-31T12:00:00.25+01:00")),
            None,
            NOW,
        )
        .expect("valid");
        assert_eq!(
            (e.kind, e.metric.as_deref(), e.value),
            (Kind::Metric, Some("m"), Some(1.5))
        );
        assert_eq!(
            e.ts.map(|t| t.micros),
            parse_rfc3339("2026-01-31T11:00:00.25Z")
        );
    }

    #[test]
    fn an_exposure_carries_the_version_it_was_served_from() {
        let exposure = |extra: Value| {
            let mut e = json!({"kind": "exposure", "experiment": "e", "unit_id": "u", "variant_key": "a"});
            for (k, v) in extra.as_object().into_iter().flatten() {
                e[k] = v.clone();
            }
            event(&e, None, NOW)
        };
        assert_eq!(exposure(json!({"version": 12})).map(|e| e.version), Ok(Some(12)));
        assert_eq!(exposure(json!({})).map(|e| e.version), Ok(None));
        // The signed token names the version it was signed under.
        assert_eq!(signed_version("9.1.00000000000000ff"), Some(9));
        assert_eq!(signed_version("x.1.00"), None);
        assert_eq!(signed_version("-3.1.00"), None);
        for bad in [json!(-1), json!(1.5), json!("3")] {
            assert_eq!(exposure(json!({"version": bad})).map_err(|e| e.field), Err("version".into()));
        }
        assert_eq!(err(with("version", json!(3))).0, "version", "a metric has no served version");
    }

    #[test]
    fn values_are_finite_and_bounded() {
        for ok in [0.0, -1e15, 1e15, 123.456] {
            assert_eq!(value(&json!(ok)), Ok(ok));
        }
        for bad in [1e308, -1.7e308, 1.000_000_1e15, f64::MAX] {
            assert_eq!(err(with("value", json!(bad))).0, "value", "{bad}");
        }
        assert_eq!(
            err(with("value", json!("12"))),
            ("value".into(), "must be a number".into())
        );
        assert_eq!(
            err(with("value", Value::Null)).1,
            "is required for metric events"
        );
    }

    #[test]
    fn nul_is_refused_in_every_text_field() {
        for field in ["experiment", "unit_id", "variant_key", "metric", "event_id"] {
            let (f, m) = err(with(field, json!("a\u{0}b")));
            assert_eq!(f, field);
            assert!(m.contains("NUL"), "{m}");
        }
        let exposure = |attrs: Value| json!({"kind": "exposure", "experiment": "e", "unit_id": "u", "variant_key": "a", "attributes": attrs});
        assert_eq!(err(exposure(json!({"c": "U\u{0}S"}))).0, "attributes.c");
        assert_eq!(err(exposure(json!({"c\u{0}": 1}))).0, "attributes");
        assert_eq!(
            err(exposure(json!({"a": [1, {"b": "\u{0}"}]}))).0,
            "attributes.a[1].b"
        );
        assert!(
            event(
                &exposure(json!({"a": [1, {"b": "ok"}], "c": "tab\t"})),
                None,
                NOW
            )
            .is_ok()
        );
    }

    #[test]
    fn unit_ids_are_one_to_512_bytes() {
        assert!(unit_id("u").is_ok() && unit_id(&"x".repeat(512)).is_ok());
        assert!(
            unit_id("").is_err()
                && unit_id(&"x".repeat(513)).is_err()
                && unit_id("q\u{0}s").is_err()
        );
        assert_eq!(
            err(with("unit_id", json!(""))),
            ("unit_id".into(), unit_id("").expect_err("empty").message)
        );
    }

    #[test]
    fn kinds_and_their_fields() {
        assert_eq!(
            err(with("kind", json!("click"))),
            (
                "kind".into(),
                "must be one of exposure, metric, conversion".into()
            )
        );
        let conv =
            json!({"kind": "conversion", "experiment": "e", "unit_id": "u", "variant_key": "a"});
        assert_eq!(
            event(&conv, None, NOW).expect("valid").metric.as_deref(),
            Some(DEFAULT_CONVERSION_METRIC)
        );
        let mut with_value = conv.clone();
        with_value["value"] = json!(-5);
        assert_eq!(err(with_value).0, "value");
        assert_eq!(
            event(&base(), Some(Kind::Exposure), NOW)
                .expect_err("mismatch")
                .field,
            "kind"
        );
        assert_eq!(err(with("vlaue", json!(1))).0, "vlaue");
        assert_eq!(err(json!("x")).0, "");
        assert_eq!(err(with("event_id", json!(""))).0, "event_id");
    }

    #[test]
    fn timestamps_within_the_window() {
        for bad in [
            "1900-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "yesterday",
            "2026-01-31T12:00:00",
            "2026-01-31T12:00:00+0200",
        ] {
            assert_eq!(err(with("ts", json!(bad))).0, "ts", "{bad}");
        }
        let soon = |s: i64| NOW + s * 1_000_000;
        assert_eq!(
            ts("2026-11-29T00:00:00Z", soon(0)).ok(),
            parse_rfc3339("2026-11-29T00:00:00Z")
        );
        assert!(ts("2000-01-01T00:00:00Z", NOW).is_ok());
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00Z"), Some(MIN_TS_MICROS));
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59.9999999-00:30"),
            Some((1_709_251_199 + 1800) * 1_000_000 + 999_999)
        );
        assert_eq!(
            parse_rfc3339("2026-12-31T23:59:60Z"),
            parse_rfc3339("2026-12-31T23:59:59Z")
        );
    }

    #[test]
    fn lifecycle_rules() {
        use crate::Status;
        let stop = 1_000_000_000_000;
        assert_eq!(
            lifecycle(Status::Draft, None, stop).map_err(|e| e.0),
            Err("experiment_not_running")
        );
        assert!(
            lifecycle(
                Status::Stopped,
                Some(stop),
                stop + CLOCK_SKEW_SECONDS * 1_000_000
            )
            .is_ok()
        );
        assert_eq!(
            lifecycle(
                Status::Stopped,
                Some(stop),
                stop + CLOCK_SKEW_SECONDS * 1_000_000 + 1
            )
            .map_err(|e| e.0),
            Err("experiment_stopped")
        );
        assert!(
            lifecycle(Status::Running, None, stop).is_ok()
                && lifecycle(Status::Paused, None, stop).is_ok()
        );
    }
}
