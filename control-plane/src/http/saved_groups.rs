//! `/api/v1/saved-groups`: named value lists for `$inGroup`/`$notInGroup` (see
//! `crate::saved_groups`). A change republishes the config set, so the edge follows within
//! seconds.
//!
//! `PUT /saved-groups/{id}` `{"values":[...],"description"?}` creates or replaces one;
//! `GET /saved-groups`, `GET|DELETE /saved-groups/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json as Db;

use super::extract::StrictJson;
use super::{ApiError, ApiResult, AppState};
use crate::saved_groups::check_values;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/saved-groups", get(list))
        .route("/saved-groups/{id}", get(fetch).put(put).delete(delete))
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct GroupRow {
    id: String,
    description: String,
    values: Db<Vec<Value>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct PutGroup {
    values: Vec<Value>,
    #[serde(default)]
    description: String,
}

const COLUMNS: &str = r#"id, description, "values", created_at, updated_at"#;

fn check_id(id: &str) -> ApiResult<()> {
    let ok = (1..=100).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if ok { Ok(()) } else { Err(ApiError::validation("id", "1–100 characters of A–Z, a–z, 0–9, `_`, `.`, `:`, `-`")) }
}

async fn list(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<GroupRow>>> {
    let rows = sqlx::query_as(&format!("SELECT {COLUMNS} FROM saved_groups ORDER BY id")).fetch_all(&state.db).await?;
    Ok(axum::Json(rows))
}

async fn fetch(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<axum::Json<GroupRow>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM saved_groups WHERE id = $1"))
        .bind(&id)
        .fetch_optional(&state.db)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("saved group", &id))
}

async fn put(State(state): State<AppState>, Path(id): Path<String>, StrictJson(req): StrictJson<PutGroup>) -> ApiResult<(StatusCode, axum::Json<GroupRow>)> {
    check_id(&id)?;
    check_values(&req.values).map_err(|(field, message)| ApiError::validation(field, message))?;
    let row: GroupRow = sqlx::query_as(&format!(
        r#"INSERT INTO saved_groups (id, description, "values") VALUES ($1, $2, $3)
           ON CONFLICT (id) DO UPDATE SET description = EXCLUDED.description, "values" = EXCLUDED."values", updated_at = now()
           RETURNING {COLUMNS}"#
    ))
    .bind(&id)
    .bind(&req.description)
    .bind(Db(&req.values))
    .fetch_one(&state.db)
    .await?;
    // Both timestamps are the transaction's `now()` when the row is new.
    let created = row.created_at == row.updated_at;
    tracing::info!(group = %id, values = req.values.len(), "saved group stored");
    state.publisher.notify();
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(row)))
}

async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let gone = sqlx::query("DELETE FROM saved_groups WHERE id = $1").bind(&id).execute(&state.db).await?.rows_affected();
    if gone == 0 {
        return Err(ApiError::not_found("saved group", &id));
    }
    state.publisher.notify();
    Ok(StatusCode::NO_CONTENT)
}
