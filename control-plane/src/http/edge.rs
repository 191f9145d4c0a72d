//! `GET /api/v1/edge/config`: the config set as the edge receives it, and how publishing fares.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use litmus_shared::ConfigSet;
use serde_json::{Value, json};

use super::{ApiResult, AppState};
use crate::publish::edge_experiments;
use crate::saved_groups;

pub fn router() -> Router<AppState> {
    Router::new().route("/edge/config", get(config))
}

async fn config(State(state): State<AppState>) -> ApiResult<axum::Json<Value>> {
    let status = state.publisher.status();
    let set = ConfigSet {
        version: status.version.unwrap_or(0),
        published_at: None,
        experiments: edge_experiments(&state.db, state.config.stopped_grace).await?,
        saved_groups: saved_groups::all(&state.db).await?,
    };
    Ok(axum::Json(json!({"publish": status, "config": set})))
}
