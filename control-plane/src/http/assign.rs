//! `POST /api/v1/assign`: the same engine the edge runs, evaluated against the stored config.

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use litmus_shared::Attributes;
use serde::Deserialize;
use axum::response::{IntoResponse, Response};

use crate::experiments::find;
use super::extract::Json;
use super::{ApiError, ApiResult, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/assign", post(assign))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignRequest {
    experiment: String,
    unit_id: String,
    #[serde(default)]
    attributes: Attributes,
}

/// The shared rule (`litmus_shared::validate::unit_id`), as the edge applies it too.
pub fn check_unit_id(field: &str, unit_id: &str) -> ApiResult<()> {
    litmus_shared::validate::unit_id(unit_id).map_err(|e| ApiError::validation(field, e.message))
}

async fn assign(State(state): State<AppState>, Json(req): Json<AssignRequest>) -> ApiResult<Response> {
    check_unit_id("unit_id", &req.unit_id)?;
    let row = find(&state.db, &req.experiment).await?;
    let experiment = row.to_engine()?;
    let groups = crate::saved_groups::referenced_by(&state.db, experiment.targeting.as_json()).await?;
    let answer = litmus_shared::assign_with(&experiment, &req.unit_id, &req.attributes, &groups);
    metrics::counter!("assignments_total", "in_experiment" => answer.in_experiment.to_string()).increment(1);
    // Serialized here: the answer borrows from `experiment`.
    Ok(axum::Json(answer).into_response())
}
