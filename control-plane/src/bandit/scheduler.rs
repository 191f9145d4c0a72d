//! The reweighting job: every running bandit is reweighted on its own cadence
//! (`bandit.reweight_every_seconds`), and each weight change is published to the edge at once.
//! One control plane leads at a time: the one holding a session-level Postgres advisory lock on
//! a connection of its own (as `retire` does), so several control planes sharing a database
//! never reweight the same experiment twice.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::broadcast;
use tokio::time::Instant;
use uuid::Uuid;

use crate::publish::Publisher;

/// How often the leader looks for due experiments, and a follower for the lead.
const TICK: Duration = Duration::from_secs(1);
const RECHECK: Duration = Duration::from_secs(10);

pub async fn run(db: PgPool, publisher: Publisher, live: broadcast::Sender<Uuid>) {
    loop {
        if let Err(e) = lead(&db, &publisher, &live).await {
            tracing::warn!(error = %e, "bandit reweighting failed; retrying");
        }
        tokio::time::sleep(RECHECK).await;
    }
}

/// Returns at once when another control plane leads; otherwise runs until the connection fails.
async fn lead(db: &PgPool, publisher: &Publisher, live: &broadcast::Sender<Uuid>) -> anyhow::Result<()> {
    // Detached: dropping it closes the session, so the lock can never stay behind in the pool.
    let mut conn: PgConnection = db.acquire().await?.detach();
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('litmus:bandit-reweight'))").fetch_one(&mut conn).await?;
    if !leader {
        return Ok(());
    }
    tracing::info!("this control plane reweights running bandits");
    // When each experiment was last looked at: one whose weights did not move writes nothing,
    // and is not looked at again before its cadence.
    let mut looked: HashMap<Uuid, Instant> = HashMap::new();
    loop {
        let running: Vec<(Uuid, f64)> = sqlx::query_as(
            "SELECT id, coalesce((bandit ->> 'reweight_every_seconds')::float8, 60) FROM experiments
             WHERE type = 'bandit' AND status = 'running'",
        )
        .fetch_all(&mut conn)
        .await?;
        looked.retain(|id, _| running.iter().any(|(r, _)| r == id));
        for (id, every) in running {
            let every = Duration::from_secs_f64(every.max(1.0));
            if looked.get(&id).is_some_and(|at| at.elapsed() < every) {
                continue;
            }
            looked.insert(id, Instant::now());
            match super::reweight(db, id).await {
                Ok(Some(v)) => {
                    tracing::info!(experiment = %id, weights_version = v.seq, weights = ?v.weights.0, stage = %v.stage, "bandit reweighted");
                    publisher.notify();
                    let _ = live.send(id);
                }
                Ok(None) => {}
                // One experiment's failure must not stop the others.
                Err(e) => tracing::warn!(experiment = %id, error = %e, "reweighting one bandit failed"),
            }
        }
        tokio::time::sleep(TICK).await;
        // Keeps the session (and so the lead) alive and notices a dead connection.
        conn.ping().await?;
    }
}
