//! Bearer-token auth for `/api/v1`: the token names a caller (`crate::keys`: a managed key or an
//! env token) and the matched route's entry in the access table (`access`) says whether its role
//! reaches it. Without a valid token: 401; with one whose role does not reach the route: 403.
//! Nothing changes either way.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use super::access;
use super::{ApiError, AppState};
use crate::keys::{self, Caller};

pub use crate::keys::Role;

pub async fn require_token(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?.ok_or(ApiError::Unauthorized)?;
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let allowed = access::of(req.method(), &route).is_some_and(|a| access::allows(caller.role, a));
    if !allowed {
        // The path as sent (the nested router's `uri()` has lost its `/api/v1`).
        let path = req.extensions().get::<axum::extract::OriginalUri>().map_or_else(|| req.uri().path().to_owned(), |u| u.path().to_owned());
        return Err(ApiError::Forbidden(format!("a key with role `{}` may not {} {path}", caller.role.as_str(), req.method())));
    }
    req.extensions_mut().insert(caller.role);
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// The caller the request's `Authorization: Bearer` header names, if it names one (the API, the
/// live socket's upgrade and `/metrics` all ask this).
pub async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let Some(token) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer) else {
        return Ok(None);
    };
    keys::authenticate(&state.db, &state.keys, &state.config, token).await
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim)
}

/// `GET /api/v1/whoami`: what the caller's key may do, so a console can hide what it cannot.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/whoami", axum::routing::get(whoami))
}

async fn whoami(axum::Extension(caller): axum::Extension<Caller>) -> axum::Json<serde_json::Value> {
    let role = caller.role;
    axum::Json(serde_json::json!({
        "role": role, "name": caller.name,
        "can_read": access::allows(role, access::Access::Read), "can_write": role == Role::Admin,
    }))
}
