//! The aggregator: applies newly committed events to the per-unit and per-arm aggregates that
//! the results read (`unit_metrics`, `arm_stats`; the SQL is `unit_metrics_apply()` in the
//! migrations).
//!
//! Ingest only appends, so its speed does not depend on the statistics. This runs in the
//! background soon after each ingest (and every second), and every results request calls
//! [`catch_up`] first, so a readout includes every event acknowledged before it was asked for.
//! One aggregator at a time (an advisory lock), also across control-plane instances.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;

/// Applies every event committed since the last run; returns how many.
pub async fn catch_up(db: &PgPool) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('litmus:rollup'))").execute(&mut *tx).await?;
    sqlx::query("CREATE TEMP TABLE IF NOT EXISTS new_events (LIKE events) ON COMMIT DELETE ROWS")
        .execute(&mut *tx)
        .await?;
    let (done_below, pending): (i64, Vec<i64>) =
        sqlx::query_as("SELECT done_below, pending FROM rollup_state").fetch_one(&mut *tx).await?;
    // With the bounds as plan-time constants, "nothing new" is an empty index range; a generic
    // plan would guess a third of the table and scan it (10M-event bench: 2.6 s per readout).
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan").execute(&mut *tx).await?;
    // One statement, one snapshot: the events it copies are exactly those committed in the
    // snapshot whose bounds it records (see migrations/0006_async_rollup.sql).
    let (applied,): (i64,) = sqlx::query_as(
        "WITH snap AS (SELECT pg_current_snapshot() AS s),
              batch AS (
                  INSERT INTO new_events
                  SELECT * FROM events WHERE xid >= $1
                  UNION ALL
                  SELECT * FROM events WHERE xid = ANY ($2) AND xid < $1
                  RETURNING 1
              ),
              advanced AS (
                  UPDATE rollup_state
                  SET done_below = pg_snapshot_xmax(snap.s)::text::bigint,
                      pending = ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(snap.s) x),
                      updated_at = now()
                  FROM snap
                  RETURNING 1
              )
         SELECT (SELECT count(*) FROM batch) FROM advanced",
    )
    .bind(done_below)
    .bind(&pending)
    .fetch_one(&mut *tx)
    .await?;
    if applied > 0 {
        sqlx::query("SELECT unit_metrics_apply()").execute(&mut *tx).await?;
    }
    tx.commit().await?;
    if applied > 0 {
        metrics::counter!("rollup_events_applied_total").increment(applied as u64);
    }
    Ok(applied as u64)
}

/// Background loop: shortly after ingest signals new events (coalescing bursts), and every
/// second regardless.
pub async fn run(db: PgPool, wake: Arc<Notify>) {
    loop {
        tokio::select! {
            () = wake.notified() => tokio::time::sleep(Duration::from_millis(200)).await,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Err(e) = catch_up(&db).await {
            tracing::warn!(error = %e, "applying new events to the aggregates failed; retrying");
        }
    }
}
