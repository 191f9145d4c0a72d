//! `POST /api/v1/webhooks` `{"url", "kinds"?: [alert kinds], "secret"?}` (the secret is shown
//! once), `GET /api/v1/webhooks`, `DELETE /api/v1/webhooks/{id}`, and
//! `GET /api/v1/webhooks/{id}/deliveries`: the delivery log. Delivery is `crate::webhooks`'.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::extract::StrictJson;
use super::{ApiError, ApiResult, AppState};
use crate::webhooks::{self, Delivery, Webhook};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", delete(remove))
        .route("/webhooks/{id}/deliveries", get(deliveries))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    url: String,
    #[serde(default)]
    kinds: Vec<String>,
    secret: Option<String>,
}

async fn create(State(state): State<AppState>, StrictJson(req): StrictJson<CreateWebhook>) -> ApiResult<(StatusCode, Json<Webhook>)> {
    Ok((StatusCode::CREATED, Json(webhooks::create(&state.db, &req.url, req.secret, req.kinds, state.config.webhook_allow_private).await?)))
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Webhook>>> {
    Ok(Json(webhooks::list(&state.db).await?))
}

fn id(s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found("webhook", s))
}

async fn remove(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<StatusCode> {
    webhooks::delete(&state.db, id(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deliveries(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<Json<Vec<Delivery>>> {
    Ok(Json(webhooks::deliveries(&state.db, id(&raw)?).await?))
}
