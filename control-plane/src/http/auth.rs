//! Bearer-token auth for `/api/v1`: admin tokens may do anything, read tokens only GET, ingest
//! tokens (the edge worker's) only POST events. Without a valid token: 401 and nothing changes.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{ApiError, AppState};
use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Read,
    Ingest,
}

pub async fn require_token(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .ok_or(ApiError::Unauthorized)?;
    let role = role_of(&state.config, token).ok_or(ApiError::Unauthorized)?;
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    let path = req.uri().path();
    let allowed = match role {
        Role::Admin => true,
        Role::Read => reading,
        Role::Ingest => *req.method() == Method::POST && path.contains("/events/"),
    };
    if !allowed {
        return Err(ApiError::Forbidden(format!("this token may not {} {path}", req.method())));
    }
    req.extensions_mut().insert(role);
    Ok(next.run(req).await)
}

/// The role a token grants, if any.
pub fn role_of(c: &Config, token: &str) -> Option<Role> {
    [(&c.admin_api_tokens, Role::Admin), (&c.read_api_tokens, Role::Read), (&c.ingest_api_tokens, Role::Ingest)]
        .into_iter()
        .find(|(tokens, _)| tokens.iter().any(|t| !t.is_empty() && constant_time_eq(t.as_bytes(), token.as_bytes())))
        .map(|(_, role)| role)
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim)
}

/// Compares without an early exit, so response timing does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /api/v1/whoami`: what the caller's token may do, so a console can hide what it cannot.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/whoami", axum::routing::get(whoami))
}

async fn whoami(axum::Extension(role): axum::Extension<Role>) -> axum::Json<serde_json::Value> {
    let can_write = role == Role::Admin;
    axum::Json(serde_json::json!({"role": role, "can_read": role != Role::Ingest, "can_write": can_write}))
}
