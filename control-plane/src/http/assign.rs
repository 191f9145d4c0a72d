//! `POST /api/v1/assign`: the same engine the edge runs, evaluated against the stored config,
//! with the unit's sticky assignments (`sticky`, as the edge's `POST /v1/assign` takes them).

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use litmus_shared::{Attributes, StickyDoc};
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
    /// The unit's sticky document from an earlier answer (`litmus_shared::sticky`).
    #[serde(default)]
    sticky: Option<serde_json::Value>,
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
    let given = match &req.sticky {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(StickyDoc::from_json(v).ok_or_else(|| {
            ApiError::validation("sticky", "must be the `sticky` document of an earlier answer: {\"unit_id\": …, \"assignments\": {…}}")
        })?),
    };
    let wanted = given.is_some() || experiment.is_sticky();
    // Only a document this deployment signed counts; anything else is as if none was sent.
    let keys = &state.config.signing_keys;
    let mut doc = StickyDoc::for_unit(given.and_then(|d| d.verified(keys)), &req.unit_id);
    let (mut answer, _) = litmus_shared::assign_sticky(&experiment, &req.unit_id, &req.attributes, &groups, &mut doc);
    answer.signature = keys.sign(&experiment, &req.unit_id, &answer);
    metrics::counter!("assignments_total", "in_experiment" => answer.in_experiment.to_string()).increment(1);
    // Serialized here: the answer borrows from `experiment`.
    let mut body = serde_json::to_value(&answer).map_err(|e| ApiError::Internal(e.into()))?;
    if wanted {
        doc.sign(keys);
        body["sticky"] = serde_json::from_str(&doc.to_json()).map_err(|e| ApiError::Internal(e.into()))?;
    }
    Ok(axum::Json(body).into_response())
}
