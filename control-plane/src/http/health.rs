use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(prometheus))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let ping = tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&state.db)).await;
    match ping {
        // Events the aggregator set aside are worth a look, but do not make the service unready.
        Ok(Ok(_)) => {
            let quarantined = crate::rollup::quarantined(&state.db, None).await.ok();
            (StatusCode::OK, Json(json!({"status": "ready", "database": "ok", "quarantined_events": quarantined})))
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "unreachable"}))),
    }
}

/// Prometheus text. The API contract serves it without a key; an operator whose control plane is
/// reachable by more than its scraper closes it (`METRICS_REQUIRE_KEY=true`: an `admin` or `read`
/// key), since route names, pool sizes and the edge's refusal counts tell outsiders too much.
async fn prometheus(State(state): State<AppState>, headers: axum::http::HeaderMap) -> axum::response::Response {
    if state.config.metrics_require_key {
        match super::auth::caller(&state, &headers).await {
            Ok(Some(c)) if super::access::allows(c.role, super::access::Access::Read) => {}
            Ok(Some(_)) => return super::ApiError::Forbidden("/metrics takes an admin or read key".into()).into_response(),
            Ok(None) => return super::ApiError::Unauthorized.into_response(),
            Err(e) => return e.into_response(),
        }
    }
    let pool = &state.db;
    metrics::gauge!("db_pool_connections").set(f64::from(pool.size()));
    metrics::gauge!("db_pool_idle_connections").set(pool.num_idle() as f64);
    let body = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
