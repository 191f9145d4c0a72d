//! The watch job: every running experiment is assessed and acted on every `LITMUS_WATCH_EVERY`,
//! and soon after a burst of ingest (the aggregator wakes it). One control plane leads at a time:
//! the one holding a session-level Postgres advisory lock on a connection of its own (as
//! `retire` and the bandit job do). Raising is keyed in the database as well, so even two
//! evaluators that both believed they led would raise and act once.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use uuid::Uuid;

use crate::experiments::{COLUMNS, ExperimentRow};
use crate::publish::Publisher;

const RECHECK: Duration = Duration::from_secs(10);
/// Ingest wakes the job at most this often, and never sooner than three times the last look
/// took after its start: under heavy ingest the job keeps to about a third of a core.
const MIN_GAP: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Watch {
    pub db: PgPool,
    pub publisher: Publisher,
    pub live: broadcast::Sender<Uuid>,
    pub every: Duration,
    pub anomaly_bucket: Duration,
    /// Wakes the job after ingest (`rollup::run` notifies it when it applied events).
    pub wake: Arc<Notify>,
    /// Wakes the webhook deliverer when an alert was raised.
    pub deliver: Arc<Notify>,
}

pub async fn run(w: Watch) {
    loop {
        if let Err(e) = lead(&w).await {
            tracing::warn!(error = %e, "the watch job failed; retrying");
        }
        tokio::time::sleep(RECHECK).await;
    }
}

async fn lead(w: &Watch) -> anyhow::Result<()> {
    // Detached: dropping it closes the session, so the lock can never stay behind in the pool.
    let mut conn: PgConnection = w.db.acquire().await?.detach();
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('litmus:watch'))").fetch_one(&mut conn).await?;
    if !leader {
        return Ok(());
    }
    tracing::info!(every = ?w.every, "this control plane watches running experiments (rules, rollouts, alerts)");
    loop {
        let started = Instant::now();
        once(w).await?;
        tokio::select! {
            () = tokio::time::sleep(w.every) => {}
            () = w.wake.notified() => {
                let gap = MIN_GAP.max(started.elapsed() * 3);
                tokio::time::sleep_until((started + gap).max(Instant::now())).await;
            }
        }
        // Keeps the session (and so the lead) alive and notices a dead connection.
        conn.ping().await?;
    }
}

/// One look at every running experiment. Public so tests can run a look without waiting.
pub async fn once(w: &Watch) -> anyhow::Result<usize> {
    let running: Vec<ExperimentRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM experiments WHERE status = 'running' ORDER BY started_at")).fetch_all(&w.db).await?;
    let mut raised = 0;
    for row in running {
        let outcome = async {
            let assessment = super::assess(&w.db, &row, w.anomaly_bucket).await?;
            super::act(&w.db, &row, &assessment).await
        }
        .await;
        match outcome {
            Ok(acted) => {
                if acted.changed {
                    w.publisher.notify();
                }
                if !acted.alerts.is_empty() {
                    raised += acted.alerts.len();
                    w.deliver.notify_one();
                    let _ = w.live.send(row.id);
                }
            }
            // One experiment's failure must not stop the others.
            Err(e) => tracing::warn!(experiment = %row.key, error = %e, "watching one experiment failed"),
        }
    }
    Ok(raised)
}
