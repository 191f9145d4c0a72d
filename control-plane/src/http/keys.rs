//! `POST /api/v1/keys` `{"name","role","expires_at"?}` → 201 with the key's secret (`key`, in
//! this answer only); `GET /api/v1/keys` (never a secret); `DELETE /api/v1/keys/{id}` (revoked
//! everywhere within `keys::CACHE_SECONDS`). Admin keys only (`access`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use uuid::Uuid;

use super::extract::StrictJson;
use super::{ApiError, ApiResult, AppState};
use crate::keys::{self, Caller, Created, Key, NewKey};

pub fn router() -> Router<AppState> {
    Router::new().route("/keys", get(list).post(create)).route("/keys/{id}", delete(revoke))
}

async fn create(State(state): State<AppState>, Extension(caller): Extension<Caller>, StrictJson(body): StrictJson<NewKey>) -> ApiResult<(StatusCode, Json<Created>)> {
    Ok((StatusCode::CREATED, Json(keys::create(&state.db, body, &caller.name).await?)))
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Key>>> {
    Ok(Json(keys::list(&state.db).await?))
}

async fn revoke(State(state): State<AppState>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> ApiResult<Json<Key>> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound(format!("no key {id}")))?;
    Ok(Json(keys::revoke(&state.db, id, &caller.name).await?))
}
