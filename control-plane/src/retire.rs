//! Stopped experiments leave the config set published to the edge once `LITMUS_STOPPED_GRACE`
//! has passed since they stopped (the rule is `publish::edge_experiments`). Nothing is written
//! at that moment, so nothing would wake the publisher: this job does, when a grace period
//! ends. One control plane leads at a time: the one holding a session-level Postgres advisory
//! lock, on a connection of its own that closes (releasing the lock) if the job fails.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};

use crate::publish::Publisher;

/// How often a follower tries to take the lead, and the longest the leader sleeps between two
/// looks at the next expiry (an experiment stopped meanwhile expires no sooner than its grace).
const RECHECK: Duration = Duration::from_secs(60);

pub async fn run(db: PgPool, grace: Duration, publisher: Publisher) {
    loop {
        if let Err(e) = lead(&db, grace, &publisher).await {
            tracing::warn!(error = %e, "retiring stopped experiments from the edge config failed; retrying");
        }
        tokio::time::sleep(RECHECK).await;
    }
}

/// Returns at once when another control plane leads; otherwise runs until the connection fails.
async fn lead(db: &PgPool, grace: Duration, publisher: &Publisher) -> anyhow::Result<()> {
    // Detached: dropping it closes the session, so the lock can never stay behind in the pool.
    let mut conn: PgConnection = db.acquire().await?.detach();
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('litmus:retire-stopped'))").fetch_one(&mut conn).await?;
    if !leader {
        return Ok(());
    }
    tracing::info!(grace = ?grace, "this control plane retires stopped experiments from the edge config");
    let grace_secs = grace.as_secs_f64();
    // Times are the database's (stopped_at is its now()), so no clock skew between hosts matters.
    let mut since: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&mut conn).await?;
    loop {
        let (next, now): (Option<DateTime<Utc>>, DateTime<Utc>) = sqlx::query_as(
            "SELECT min(stopped_at) + make_interval(secs => $1), now() FROM experiments
             WHERE status = 'stopped' AND stopped_at + make_interval(secs => $1) > $2",
        )
        .bind(grace_secs)
        .bind(since)
        .fetch_one(&mut conn)
        .await?;
        let wait = next.map_or(RECHECK, |at| (at - now).to_std().unwrap_or(Duration::ZERO).min(RECHECK));
        tokio::time::sleep(wait).await;
        let (retired, now): (Vec<String>, DateTime<Utc>) = sqlx::query_as(
            "SELECT coalesce(array_agg(key ORDER BY key), '{}'), now() FROM experiments
             WHERE status = 'stopped' AND stopped_at + make_interval(secs => $1) > $2
               AND stopped_at + make_interval(secs => $1) <= now()",
        )
        .bind(grace_secs)
        .bind(since)
        .fetch_one(&mut conn)
        .await?;
        if !retired.is_empty() {
            tracing::info!(experiments = ?retired, "grace period over: stopped experiments leave the edge config");
            publisher.notify();
        }
        since = now;
        // Keeps the session (and so the lead) alive and notices a dead connection.
        conn.ping().await?;
    }
}
