use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::publish::Publisher;
use crate::{MIGRATOR, partitions, publish, retire, rollup, watch, webhooks};

pub fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if config.log_format == "json" { builder.json().init() } else { builder.init() }
}

/// Connects (waiting up to 30 s for the database to come up), migrates, starts the background
/// tasks and serves until Ctrl-C / SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let db = connect(&config).await?;
    MIGRATOR.run(&db).await.context("applying migrations")?;
    partitions::maintain(&db, config.event_retention_days).await.context("creating event partitions")?;
    if config.admin_api_tokens.iter().all(|t| t.expose_secret().is_empty()) {
        tracing::warn!("ADMIN_API_TOKENS is empty: every /api/v1 call will be refused");
    }
    let metrics = PrometheusBuilder::new().install_recorder().context("installing the metrics recorder")?;
    let listener = TcpListener::bind(config.addr).await.with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(addr = %config.addr, "control plane listening");
    let state = app_state(db, config, Some(metrics));
    tokio::spawn(publish::run(state.db.clone(), state.config.clone(), state.publisher.clone()));
    tokio::spawn(partitions::run(state.db.clone(), state.config.event_retention_days));
    tokio::spawn(rollup::run(state.db.clone(), state.rollup.clone(), state.watch.clone()));
    tokio::spawn(retire::run(state.db.clone(), state.config.stopped_grace, state.publisher.clone()));
    tokio::spawn(crate::bandit::scheduler::run(state.db.clone(), state.publisher.clone(), state.live.clone()));
    tokio::spawn(watch::scheduler::run(watcher(&state)));
    tokio::spawn(webhooks::run(deliverer(&state)));
    serve(listener, state, shutdown_signal()).await?;
    tracing::info!("control plane stopped");
    Ok(())
}

pub fn app_state(db: PgPool, config: Config, metrics: Option<PrometheusHandle>) -> AppState {
    let (live, _) = tokio::sync::broadcast::channel(1024);
    AppState {
        db, config: Arc::new(config), publisher: Publisher::default(), metrics, live, rollup: Arc::default(), watch: Arc::default(),
        deliver: Arc::default(), keys: Arc::default(), sockets: Arc::default(),
    }
}

/// The watch job over `state`'s database, publisher and notifiers.
pub fn watcher(state: &AppState) -> watch::scheduler::Watch {
    watch::scheduler::Watch {
        db: state.db.clone(), publisher: state.publisher.clone(), live: state.live.clone(), every: state.config.watch_every,
        anomaly_bucket: state.config.anomaly_bucket, wake: state.watch.clone(), deliver: state.deliver.clone(),
    }
}

pub fn deliverer(state: &AppState) -> webhooks::Deliverer {
    webhooks::Deliverer {
        db: state.db.clone(), wake: state.deliver.clone(), backoff: state.config.webhook_backoff, attempts: state.config.webhook_attempts,
        allow_private: state.config.webhook_allow_private,
    }
}

/// Serves on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, http::router(state)).with_graceful_shutdown(shutdown).await
}

async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let options = PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5));
    let mut last = None;
    for _ in 0..30 {
        match options.clone().connect(config.database_url.expose_secret()).await {
            Ok(pool) => return Ok(pool),
            Err(e) => {
                tracing::info!(error = %e, "waiting for the database");
                last = Some(e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no database"), anyhow::Error::from)).context("connecting to DATABASE_URL")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
