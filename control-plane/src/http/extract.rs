//! Request input that speaks the contract's error shape: unparseable JSON is a 400 `bad_json`,
//! well-formed JSON of the wrong shape a 422 naming the field (in words, never Rust type names),
//! oversize a 413. The content type is not checked: `curl -d` without `-H` should still work.
//!
//! The experiments API reads its bodies with [`StrictJson`]: a field it does not know is refused
//! wherever it is (a misspelt `config` inside a variant would otherwise vanish), and so is a NUL
//! character anywhere, which Postgres can store neither in `text` nor in `jsonb`. [`super::storable::refuse_nul`]
//! does the same for paths and query strings of every route.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// A JSON body; fields the target type does not declare are ignored (events, assign).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse(&bytes).map(Json)
    }
}

/// A JSON object body in which every field, at every depth, must be one the target type
/// declares (free-form `Value`s such as `targeting` and `config_json` take any key), and no
/// string or key may contain a NUL character.
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_strict(&bytes).map(StrictJson)
    }
}

/// Like [`StrictJson`], but an empty body is `T::default()` (for `POST .../pause` with no body).
pub struct OptionalStrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalStrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalStrictJson(T::default()));
        }
        parse_strict(&bytes).map(OptionalStrictJson)
    }
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadJson { message: rejection.body_text() }
    }
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(from_serde)
}

pub fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => {
            // Still a 400 when it is not JSON at all.
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(bad_json)?;
            return Err(ApiError::validation("", "the body must be a JSON object"));
        }
        None => return Err(ApiError::BadJson { message: "the body is empty; send a JSON object".into() }),
    }
    // In JSON text a NUL can only be written as this escape; the cheap scan keeps the second
    // parse for the rare body that has one.
    if bytes.windows(6).any(|w| w == b"\\u0000") {
        let value: Value = serde_json::from_slice(bytes).map_err(bad_json)?;
        // The rule ingest and the NUL layer apply too: one wording, one path format.
        litmus_shared::validate::storable_json("", &value).map_err(|e| ApiError::validation(e.field, e.message))?;
    }
    let mut unknown: Option<String> = None;
    let mut on_ignored = |path: serde_ignored::Path| {
        unknown.get_or_insert_with(|| ignored_path(&path));
    };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&mut *de, &mut on_ignored));
    // Fields are read in document order: an unknown field seen before a later error came first.
    if let Some(field) = unknown {
        let name = field.rsplit(['.', ']']).next().unwrap_or(&field).to_owned();
        return Err(ApiError::validation(field, format!("unknown field `{name}`")));
    }
    let value = parsed.map_err(from_serde)?;
    de.end().map_err(bad_json)?;
    Ok(value)
}

fn bad_json(e: serde_json::Error) -> ApiError {
    ApiError::BadJson { message: format!("invalid JSON: {e}") }
}

fn from_serde(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let mut field = String::new();
    for segment in e.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => {
                let _ = write!(field, "[{index}]");
            }
            serde_path_to_error::Segment::Map { key } | serde_path_to_error::Segment::Enum { variant: key } => {
                field = join(&field, key);
            }
            serde_path_to_error::Segment::Unknown => field = join(&field, "?"),
        }
    }
    let inner = e.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            let (field, message) = humanize(field, &strip_position(&inner.to_string()));
            ApiError::validation(field, message)
        }
        _ => bad_json(inner),
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

fn ignored_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => join(&ignored_path(parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}


/// serde's "... at line 1 column 42" is noise once the field path is given.
pub fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// serde's data errors, reworded for people who write JSON rather than Rust: the field (made
/// precise where serde names it only in the message) and what it must be.
pub fn humanize(field: String, message: &str) -> (String, String) {
    let quoted = |s: &str| s.split('`').nth(1).map(str::to_owned);
    let under = |name: &str| if field.ends_with(name) { field.clone() } else { join(&field, name) };
    if let Some(name) = message.strip_prefix("missing field ").and_then(quoted) {
        return (under(&name), "is required".into());
    }
    if let Some(name) = message.strip_prefix("duplicate field ").and_then(quoted) {
        return (under(&name), "is given twice".into());
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let name = quoted(rest).unwrap_or_default();
        let known = rest.split_once(", expected ").map(|(_, list)| format!("; expected {}", one_of(list))).unwrap_or_default();
        return (under(&name), format!("unknown field `{name}`{known}"));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let got = quoted(rest).unwrap_or_default();
        let allowed = rest.split_once(", expected ").map_or_else(|| "a known value".to_owned(), |(_, list)| one_of(list));
        return (field, format!("must be {allowed} (got \"{got}\")"));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, expected)) = message.strip_prefix(prefix).and_then(|rest| rest.rsplit_once(", expected ")) {
            return (field, format!("must be {} (got {})", expected_in_words(expected), got_in_words(got)));
        }
    }
    if message.starts_with("invalid length ") {
        return (field, "has the wrong number of items".into());
    }
    (field, message.to_owned())
}

/// "one of `a`, `b`" / "`a` or `b`" / "`a`" → "one of a, b" / "a".
fn one_of(list: &str) -> String {
    let names: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
    match names.as_slice() {
        [] => "nothing (no value is allowed here)".into(),
        [one] => (*one).to_owned(),
        many => format!("one of {}", many.join(", ")),
    }
}

fn expected_in_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a string" | "a borrowed string" | "a character" | "char" | "variant identifier" | "field identifier" => "a string",
        "a boolean" | "bool" => "true or false",
        "unit" => "null",
        e if e.starts_with("a sequence") || e.starts_with("a tuple") || e.starts_with("tuple") => "an array",
        e if e.starts_with("struct ") || e.starts_with("a map") || e.starts_with("map") => "an object",
        e if e.starts_with("enum ") => "one of the allowed values",
        e if e.contains("string") => "a string",
        other => other,
    }
    .to_owned()
}

fn got_in_words(got: &str) -> String {
    match got {
        "map" => "an object".into(),
        "sequence" => "an array".into(),
        "null" | "unit value" | "unit" => "null".into(),
        g => match g.split_once(' ') {
            Some(("string", s)) => s.to_owned(),
            Some(("floating" | "integer" | "boolean", rest)) => rest.trim_start_matches("point ").trim_matches('`').to_owned(),
            _ => g.to_owned(),
        },
    }
}

#[cfg(test)]
fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s)).into_owned()
}

pub(super) fn percent_decode_bytes(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_in_words() {
        let h = |m: &str| humanize("f".into(), m);
        assert_eq!(h("invalid type: floating point `1.5`, expected u32").1, "must be a whole number, 0 or more (got 1.5)");
        assert_eq!(h("invalid type: string \"ten\", expected f64").1, "must be a number (got \"ten\")");
        assert_eq!(h("invalid type: map, expected a sequence").1, "must be an array (got an object)");
        assert_eq!(h("invalid type: null, expected a string").1, "must be a string (got null)");
        assert_eq!(h("unknown variant `x`, expected `ab` or `bandit`").1, "must be one of ab, bandit (got \"x\")");
        assert_eq!(h("unknown variant `x`, expected one of `a`, `b`, `c`").1, "must be one of a, b, c (got \"x\")");
        assert_eq!(h("missing field `key`"), ("f.key".into(), "is required".into()));
        assert_eq!(h("unknown field `ramp`, expected `ramp_pct` or `actor`"), ("f.ramp".into(), "unknown field `ramp`; expected one of ramp_pct, actor".into()));
        assert_eq!(humanize(String::new(), "missing field `name`").0, "name");
        assert_eq!(h("something custom").1, "something custom");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
