//! `GET /api/v1/experiments/{id}/bandit`: the readout of a `type: "bandit"` experiment (per arm
//! its exposures, pooled and period-weighted reward, probability of being best, the weight
//! served now and the one the policy proposes; the leader, convergence, regret), and
//! `GET .../bandit/history`: every weight version the reweighting job served. Both are
//! `crate::bandit`'s.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiResult, AppState};
use crate::bandit::{self, Readout, Version};
use crate::experiments::find;

pub fn router() -> Router<AppState> {
    Router::new().route("/experiments/{id}/bandit", get(readout)).route("/experiments/{id}/bandit/history", get(history))
}

async fn readout(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Readout>> {
    let row = find(&state.db, &id).await?;
    Ok(Json(bandit::readout(&state.db, &row).await?))
}

async fn history(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Vec<Version>>> {
    let row = find(&state.db, &id).await?;
    Ok(Json(bandit::history(&state.db, row.id).await?))
}
