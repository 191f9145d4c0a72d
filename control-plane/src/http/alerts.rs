//! `GET /api/v1/alerts?experiment=&kind=&acknowledged=&before=&limit=`: the alert feed, newest
//! first (`X-Next-Cursor` carries the `before` of the next page), and
//! `POST /api/v1/alerts/{id}/acknowledge` `{"actor"?}`. The feed is `crate::alerts`'.

use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::extract::OptionalStrictJson;
use super::{ApiError, ApiResult, AppState};
use crate::alerts::{self, Alert, Filter};
use crate::experiments::find;

pub fn router() -> Router<AppState> {
    Router::new().route("/alerts", get(list)).route("/alerts/{id}/acknowledge", post(acknowledge))
}

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 500;

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// Experiment id or key.
    experiment: Option<String>,
    kind: Option<String>,
    acknowledged: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let experiment = match q.experiment.as_deref().filter(|s| !s.is_empty()) {
        Some(e) => Some(find(&state.db, e).await?.id),
        None => None,
    };
    let acknowledged = match q.acknowledged.as_deref() {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::validation("acknowledged", "`true` or `false`")),
    };
    let int = |field: &str, v: Option<&str>, min: i64, max: i64| -> ApiResult<Option<i64>> {
        v.filter(|s| !s.is_empty())
            .map(|s| s.parse::<i64>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| ApiError::validation(field, format!("an integer from {min} to {max}"))))
            .transpose()
    };
    let limit = int("limit", q.limit.as_deref(), 1, MAX_PAGE)?.unwrap_or(DEFAULT_PAGE);
    let filter = Filter {
        experiment, kind: q.kind.filter(|k| !k.is_empty()), acknowledged, before: int("before", q.before.as_deref(), 1, i64::MAX)?, limit,
    };
    let page = alerts::list(&state.db, &filter).await?;
    let next = (page.len() as i64 == limit).then(|| page.last().map(|a| a.id)).flatten();
    let mut response = Json(page).into_response();
    if let Some(id) = next
        && let Ok(v) = HeaderValue::from_str(&id.to_string())
    {
        response.headers_mut().insert("x-next-cursor", v);
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    actor: Option<String>,
}

async fn acknowledge(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<crate::keys::Caller>,
    Path(id): Path<String>,
    OptionalStrictJson(body): OptionalStrictJson<AckBody>,
) -> ApiResult<Json<Alert>> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("alert", &id))?;
    Ok(Json(alerts::acknowledge(&state.db, id, &caller.actor(body.actor.as_deref())).await?))
}
