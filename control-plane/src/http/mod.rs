//! The HTTP API. Each resource is a module with its own `router()`; `router()` here merges them,
//! adds auth, limits, tracing and metrics, and attaches the state once.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{Html, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::publish::Publisher;

pub mod access;
pub mod alerts;
pub mod assign;
pub mod auth;
pub mod bandit;
pub mod edge;
pub mod events;
pub mod experiments;
pub mod extract;
pub mod health;
pub mod keys;
pub mod live;
pub mod results;
pub mod sample_size;
pub mod saved_groups;
pub mod storable;
pub mod timeseries;
pub mod watch;
pub mod webhooks;

pub use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub publisher: Publisher,
    pub metrics: Option<PrometheusHandle>,
    /// Ids of experiments that just received events or changed (for live results).
    pub live: tokio::sync::broadcast::Sender<uuid::Uuid>,
    /// Wakes the aggregator (`rollup::run`) after an ingest.
    pub rollup: Arc<tokio::sync::Notify>,
    /// Wakes the watch job (`watch::scheduler`) after the aggregator applied events.
    pub watch: Arc<tokio::sync::Notify>,
    /// Wakes the webhook deliverer (`webhooks::run`) after an alert was raised.
    pub deliver: Arc<tokio::sync::Notify>,
    /// Managed API keys verified lately (`crate::keys`).
    pub keys: Arc<crate::keys::Cache>,
    /// Live sockets open per key (`live`).
    pub sockets: Arc<live::Sockets>,
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(experiments::router())
        .merge(assign::router())
        .merge(events::router(state.config.batch_max_body_bytes))
        .merge(results::router())
        .merge(bandit::router())
        .merge(sample_size::router())
        .merge(saved_groups::router())
        .merge(edge::router())
        .merge(auth::router())
        .merge(timeseries::router())
        .merge(alerts::router())
        .merge(watch::router())
        .merge(webhooks::router())
        .merge(keys::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), storable::refuse_nul))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        // The socket authenticates itself (browsers cannot set headers on a WebSocket).
        .merge(live::router())
        .fallback(|| async { ApiError::NotFound("no such API route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });

    Router::new()
        .nest("/api/v1", api)
        .merge(health::router())
        .fallback_service(dashboard(&state.config))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// What the console may load and who may frame it: its own scripts and styles, its own API and
/// live socket, no other origin, no frame around it (clickjacking), no referrer to other sites.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'";

/// The built single-page app, with `index.html` for every client-side route, under the
/// console's security headers.
fn dashboard(config: &Config) -> axum::routing::MethodRouter {
    use axum::http::{HeaderName, HeaderValue, header};
    use tower_http::set_header::SetResponseHeaderLayer;
    let headers = [
        (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    let secured = |mut router: axum::routing::MethodRouter| {
        for (name, value) in headers.iter().cloned() {
            let name: HeaderName = name;
            router = router.layer(SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value)));
        }
        router
    };
    let index = config.dashboard_dir.join("index.html");
    if index.exists() {
        secured(axum::routing::get_service(ServeDir::new(&config.dashboard_dir).fallback(ServeFile::new(index))))
    } else {
        let dir = config.dashboard_dir.display().to_string();
        secured(axum::routing::get(move || async move {
            Html(format!(
                "<!doctype html><title>Litmus Edge</title><h1>Litmus Edge</h1>\
                 <p>The dashboard is not built ({dir}/index.html is missing): run <code>make run</code>.</p>\
                 <p>The API is at <code>/api/v1</code>; health at <a href=\"/health\">/health</a>.</p>"
            ))
        }))
    }
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let labels = [("method", method), ("route", route), ("status", response.status().as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    response
}

