//! Litmus Edge's Cloudflare Worker: experiment assignment at the edge from KV-cached configs,
//! computed by `litmus_shared::assign` so that it matches the control plane and every SDK.
//!
//! - [`state`]: bindings and vars from `Env`.
//! - [`config_cache`]: the published `ConfigSet`, cached in isolate memory.
//! - [`assign`]: `GET|POST /v1/assign`.
//! - [`events`]: `POST /v1/events`, exposures, and forwarding to the control plane (queue consumer).
//! - [`publish`]: `PUT /v1/admin/config`.
//! - [`fast`]: `GET /v1/assign` for the JavaScript entry (`js/shim.js`), past workers-rs.
//! - [`render`]: the `/v1/assign` body, from fragments rendered once per config set.
//! - [`ids`]: event ids and timestamps, without asking JavaScript per answer.
//! - [`body`], [`cors`], [`error`]: request and response shaping shared by the routes.

pub mod assign;
pub mod body;
pub mod config_cache;
pub mod cors;
pub mod envelope;
pub mod error;
pub mod events;
pub mod fast;
pub mod ids;
pub mod publish;
pub mod render;
pub mod state;

use serde_json::json;
use worker::{Context, Env, MessageBatch, Method, Request, Response, event};

use crate::error::{ApiError, ApiResult, json_response};
use crate::state::AppState;

#[event(start)]
fn start() {
    // Once per isolate: says which build and hash version answer, when reading `wrangler tail`.
    // (No panic hook here: workers-rs installs one that re-initialises the module after a panic.)
    worker::console_log!(
        "litmus-edge worker {} starting (assignment hash v{})",
        env!("CARGO_PKG_VERSION"),
        litmus_shared::hashing::HASH_VERSION
    );
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let state = AppState::from_env(&env);
    let url = req.inner().url();
    let path = path_of(&url);
    let public = matches!(path, "/v1/assign" | "/v1/events" | "/v1/health");
    let method = req.method();

    if public && method == Method::Options {
        return Ok(cors::preflight(&state.allowed_origins, &req));
    }
    let result: ApiResult<Response> = match (path, method) {
        ("/v1/assign", Method::Get) => assign::get(&req, &state, &ctx).await,
        ("/v1/assign", Method::Post) => assign::post(&mut req, &state, &ctx).await,
        ("/v1/assign", _) => Err(ApiError::method_not_allowed("GET, POST, OPTIONS")),
        ("/v1/events", Method::Post) => events::post(&mut req, &state, &ctx).await,
        ("/v1/events", _) => Err(ApiError::method_not_allowed("POST, OPTIONS")),
        ("/v1/health", Method::Get | Method::Head) => Ok(health(&state).await),
        ("/v1/health", _) => Err(ApiError::method_not_allowed("GET, HEAD, OPTIONS")),
        ("/v1/admin/config", Method::Put) => publish::put(&mut req, &state).await,
        ("/v1/admin/config", _) => Err(ApiError::method_not_allowed("PUT")),
        _ => Err(ApiError::not_found()),
    };
    let mut resp = result.unwrap_or_else(ApiError::into_response);
    if public {
        cors::apply(&state.allowed_origins, &req, &mut resp);
    }
    Ok(resp)
}

/// The path of an absolute request URL, without trailing slashes (`/v1/assign/` is `/v1/assign`).
/// Read by hand: a URL parser would bring its IDNA tables into the wasm for a string we only split.
fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

async fn health(state: &AppState) -> Response {
    let set = config_cache::current(state).await;
    json_response(
        200,
        &json!({
            "status": "ok",
            "config_version": set.as_ref().map(|s| s.version),
            "experiments": set.as_ref().map_or(0, |s| s.experiments.len()),
        }),
    )
}

#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> worker::Result<()> {
    // Never returns an error: the macro would turn it into a panic, and per-message ack/retry
    // already says what should happen to each event.
    events::consume(batch, &AppState::from_env(&env)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn paths_of_urls() {
        assert_eq!(path_of("https://edge.example/v1/assign?unit_id=a/b"), "/v1/assign");
        assert_eq!(path_of("http://127.0.0.1:8787/v1/assign//"), "/v1/assign");
        assert_eq!(path_of("http://127.0.0.1:8787"), "/");
        assert_eq!(path_of("http://127.0.0.1:8787/?x=1"), "/");
        assert_eq!(path_of("http://h/v1/health#top"), "/v1/health");
    }
}
