//! Text Postgres cannot store never reaches it. `text` and `jsonb` refuse the NUL character
//! (U+0000), and a query carrying one fails with a database error: a 500 for what is a client's
//! mistake. This layer answers instead, for every route at once: a `%00` in a query parameter or
//! a `\u0000` anywhere in a JSON body is a 422 naming the field; in the path, a 404 (no id or key
//! has one), as is a path that is not UTF-8 once decoded (else a bare-text 400 from the extractor).
//!
//! Event ingest is left out: a batch refuses its bad events one by one
//! (`litmus_shared::validate`, shared with the edge), never whole.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

const NUL: &str = "must not contain the NUL character (U+0000)";

pub async fn refuse_nul(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if has_nul_escape(req.uri().path()) {
        return ApiError::NotFound("nothing here: no id or key contains a NUL character (%00)".into()).into_response();
    }
    if std::str::from_utf8(&super::extract::percent_decode_bytes(req.uri().path())).is_err() {
        return ApiError::NotFound("nothing here: the path is not UTF-8 once decoded".into()).into_response();
    }
    if let Some(param) = req.uri().query().and_then(nul_parameter) {
        return ApiError::validation(param, NUL).into_response();
    }
    // Bodies are checked on the routes that take JSON; ingest checks its own, event by event.
    let checks_body = !req.method().is_safe() && !req.uri().path().contains("/events/");
    if !checks_body {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, state.config.max_body_bytes).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    if has_json_nul(&bytes)
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && let Err(e) = litmus_shared::validate::storable_json("", &value)
    {
        return ApiError::validation(e.field, e.message).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn has_nul_escape(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"%00"))
}

/// The name of the first query parameter whose name or value decodes to text with a NUL.
fn nul_parameter(query: &str) -> Option<String> {
    query.split('&').find(|p| has_nul_escape(p)).map(|p| {
        let name = p.split('=').next().unwrap_or_default();
        if has_nul_escape(name) {
            "query".to_owned()
        } else {
            name.to_owned()
        }
    })
}

/// Whether JSON text holds a `\u0000` escape: a backslash that is not itself escaped, then
/// `u0000`. Raw NUL bytes are not JSON at all (the parser refuses them), so this is the only way
/// one gets in. Cheap enough to run on every body; the parse to find the field only follows a hit.
fn has_json_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes
                .get(i + 1..i + 6)
                .is_some_and(|e| e.eq_ignore_ascii_case(b"u0000"))
            {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_real_nul_escapes() {
        assert!(has_json_nul(br#"{"a":"x\u0000"}"#));
        assert!(has_json_nul(br#"{"a\u0000":1}"#));
        assert!(
            has_json_nul(br#"{"a":"\\\u0000"}"#),
            "an escaped backslash, then the escape"
        );
        assert!(
            !has_json_nul(br#"{"a":"\\u0000"}"#),
            "a backslash, then the text u0000"
        );
        assert!(!has_json_nul(br#"{"a":"\u0001 \n"}"#));
        assert!(!has_json_nul(b"\\"));
    }

    #[test]
    fn names_the_query_parameter() {
        assert_eq!(
            nul_parameter("status=running&q=a%00b").as_deref(),
            Some("q")
        );
        assert_eq!(nul_parameter("q%00=1").as_deref(), Some("query"));
        assert_eq!(
            nul_parameter("q=a%2500b"),
            None,
            "%25 is a percent sign: the text is `a%00b`"
        );
        assert!(has_nul_escape("/api/v1/experiments/a%00b"));
    }
}
