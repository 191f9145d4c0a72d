//! Daily partitions of `events`: created a week ahead (so inserts never fall into the default
//! partition), dropped whole once older than the retention period.

use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use sqlx::PgPool;

const DAYS_AHEAD: u64 = 7;

pub async fn maintain(db: &PgPool, retention_days: u32) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    // One maintainer at a time across control-plane instances.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('litmus:partitions'))").execute(&mut *tx).await?;
    let today = Utc::now().date_naive();
    for offset in 0..=DAYS_AHEAD + 1 {
        let day = today.checked_add_days(Days::new(offset)).unwrap_or(today);
        let start = day.checked_sub_days(Days::new(1)).unwrap_or(day);
        let Some(end) = start.checked_add_days(Days::new(1)) else { continue };
        let name = partition_name(start);
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(&name).fetch_one(&mut *tx).await?;
        if !exists {
            sqlx::query(&format!("CREATE TABLE {name} PARTITION OF events FOR VALUES FROM ('{start}') TO ('{end}')"))
                .execute(&mut *tx)
                .await?;
        }
    }
    if retention_days > 0 {
        let cutoff = today.checked_sub_days(Days::new(u64::from(retention_days))).unwrap_or(today);
        let children: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_p[0-9]{8}$'",
        )
        .fetch_all(&mut *tx)
        .await?;
        for name in children {
            if NaiveDate::parse_from_str(&name["events_p".len()..], "%Y%m%d").is_ok_and(|d| d < cutoff) {
                sqlx::query(&format!("DROP TABLE {name}")).execute(&mut *tx).await?;
                tracing::info!(partition = %name, "dropped expired events partition");
            }
        }
        sqlx::query("DELETE FROM event_ids WHERE received_at < $1::date").bind(cutoff).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn partition_name(day: NaiveDate) -> String {
    format!("events_p{}", day.format("%Y%m%d"))
}

pub async fn run(db: PgPool, retention_days: u32) {
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        if let Err(e) = maintain(&db, retention_days).await {
            tracing::warn!(error = %e, "events partition maintenance failed");
        }
    }
}
