//! `GET /api/v1/experiments/{id}/watch`: what the watch job sees in an experiment now: each
//! stopping rule's state, the safe rollout's step and next move, and the insights that hold.
//! Reading it acts on nothing (`crate::watch::assess`); the job acts.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiResult, AppState};
use crate::experiments::find;
use crate::watch::{self, Assessment};

pub fn router() -> Router<AppState> {
    Router::new().route("/experiments/{id}/watch", get(assess))
}

async fn assess(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Assessment>> {
    let row = find(&state.db, &id).await?;
    Ok(Json(watch::assess(&state.db, &row, state.config.anomaly_bucket).await?))
}
