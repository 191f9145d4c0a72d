//! `PUT /v1/admin/config`: how a control plane without Cloudflare API credentials (local dev,
//! tests) publishes a config set. Production writes the same KV key through Cloudflare's REST API.
//!
//! Unlike the lenient KV reader, publishing is strict: the publisher is told exactly which field
//! of which experiment is wrong, and nothing is written.

use litmus_shared::{ConfigSet, Experiment, SavedGroups};
use serde::Deserialize;
use serde_json::{Value, json};
use worker::Request;

use crate::body;
use crate::config_cache;
use crate::error::{ApiError, ApiResult, json_response};
use crate::events::now_rfc3339;
use crate::state::{AppState, CONFIG_KEY};

/// KV takes values up to 25 MiB; a config set anywhere near this is a mistake.
const MAX_BODY_BYTES: usize = 5 << 20;

pub async fn put(req: &mut Request, state: &AppState) -> ApiResult<worker::Response> {
    let Some(expected) = state.publish_token.as_deref() else {
        return Err(ApiError::unavailable("publish_disabled", "PUBLISH_TOKEN is not configured on this worker"));
    };
    let given = req.headers().get("authorization").ok().flatten();
    if !given.as_deref().and_then(bearer).is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes())) {
        let mut resp = ApiError::unauthorized().into_response();
        resp.headers_mut().set("www-authenticate", "Bearer")?;
        return Ok(resp);
    }
    let Some(kv) = state.kv() else {
        return Err(ApiError::unavailable("kv_unavailable", "the CONFIG KV namespace is not bound"));
    };

    let value = body::json(req, MAX_BODY_BYTES).await?;
    let mut set = parse_strict(value)?;

    let stored = stored_version(state).await;
    if let Some(stored) = stored.filter(|s| *s > set.version) {
        return Ok(json_response(200, &json!({"stale": true, "version": set.version, "stored_version": stored})));
    }
    set.published_at.get_or_insert_with(now_rfc3339);
    let text = serde_json::to_string(&set).map_err(|e| ApiError::internal("serializing config", e))?;
    // As bytes: `put` with a `String` goes through serde_wasm_bindgen and a float formatter,
    // 20 KB of wasm for a value that is text already (KV stores bytes either way).
    kv.put_bytes(CONFIG_KEY, text.as_bytes())?.execute().await?;

    let answer = json!({
        "stale": false,
        "version": set.version,
        "experiments": set.experiments.len(),
        "published_at": set.published_at,
    });
    config_cache::replace(set);
    Ok(json_response(200, &answer))
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Token comparison whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

fn parse_strict(value: Value) -> ApiResult<ConfigSet> {
    let Value::Object(mut obj) = value else {
        return Err(ApiError::validation("", "expected a config set object"));
    };
    let version = obj
        .get("version")
        .and_then(Value::as_i64)
        .filter(|v| *v >= 0)
        .ok_or_else(|| ApiError::validation("version", "must be a non-negative integer"))?;
    let published_at = match obj.remove("published_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::validation("published_at", "must be a string")),
    };
    let Some(Value::Array(items)) = obj.remove("experiments") else {
        return Err(ApiError::validation("experiments", "must be an array"));
    };
    let mut experiments: Vec<Experiment> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let e = Experiment::deserialize(item)
            .map_err(|err| ApiError::validation(format!("experiments[{i}]"), err.to_string()))?;
        e.validate().map_err(|err| {
            let field = if err.path.is_empty() {
                format!("experiments[{i}]")
            } else {
                format!("experiments[{i}].{}", err.path)
            };
            ApiError::validation(field, err.message)
        })?;
        if experiments.iter().any(|o| o.key == e.key) {
            return Err(ApiError::validation(
                format!("experiments[{i}].key"),
                format!("duplicate experiment key `{}`", e.key),
            ));
        }
        experiments.push(e);
    }
    let saved_groups = match obj.remove("saved_groups") {
        None | Some(Value::Null) => SavedGroups::new(),
        Some(groups) => serde_json::from_value(groups)
            .map_err(|_| ApiError::validation("saved_groups", "must be an object of arrays: {\"group_id\": [value, ...]}"))?,
    };
    Ok(ConfigSet { version, published_at, experiments, saved_groups })
}

/// The version currently in KV; `None` when there is nothing usable there (then any set wins).
async fn stored_version(state: &AppState) -> Option<i64> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: i64,
    }
    let text = config_cache::stored_text(state).await?;
    serde_json::from_str::<VersionOnly>(&text).ok().map(|v| v.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn strict_parse_names_the_field() {
        let err = parse_strict(serde_json::json!({"version": 1, "experiments": [
            {"key":"ok","status":"running","ramp_pct":100,"variants":[{"key":"a","weight":0.5},{"key":"b","weight":0.5}]},
            {"key":"bad","status":"running","ramp_pct":100,"variants":[{"key":"a","weight":0.5},{"key":"b","weight":0.4}]}
        ]}))
        .expect_err("weights do not sum to 1");
        assert_eq!(err.field.as_deref(), Some("experiments[1].variants"));
        assert_eq!(
            parse_strict(serde_json::json!({"experiments": []})).expect_err("no version").field.as_deref(),
            Some("version")
        );
    }
}
