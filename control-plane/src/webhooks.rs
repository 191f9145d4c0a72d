//! Webhooks: every alert of the kinds a webhook lists is POSTed to it as JSON, signed, and
//! retried with exponential backoff until a 2xx or the last attempt; each (webhook, alert) has
//! one row in the delivery log (`webhook_deliveries`), queued in the transaction that raised the
//! alert (`alerts::raise`).
//!
//! Signature (as Stripe's): `X-Litmus-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` of
//! `"<t>.<body>"` under the webhook's secret; receivers recompute it and reject old `t` to stop
//! replays. `X-Litmus-Delivery` is stable across retries of one delivery (deduplicate on it).
//!
//! Every control plane delivers: a delivery is claimed with `FOR UPDATE SKIP LOCKED` and leased
//! (committed) before it is sent, so two never send the same attempt and no transaction or pool
//! connection is held across the HTTP call; up to eight are sent at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::types::Json as Db;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::alerts::KINDS;
use crate::error::{ApiError, ApiResult};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// Shown once, when the webhook is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub secret: Option<String>,
    pub kinds: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: Uuid,
    pub alert_id: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Creates a webhook; with `allow_private` false, a URL whose host is or resolves to a
/// non-public address is refused (`outbound`).
pub async fn create(db: &PgPool, url: &str, secret: Option<String>, kinds: Vec<String>, allow_private: bool) -> ApiResult<Webhook> {
    let parsed = reqwest::Url::parse(url).map_err(|e| ApiError::validation("url", format!("not a URL: {e}")))?;
    if !["http", "https"].contains(&parsed.scheme()) || parsed.host_str().is_none() || url.len() > 2000 {
        return Err(ApiError::validation("url", "an http(s) URL with a host, at most 2000 characters"));
    }
    if let Some(k) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
        return Err(ApiError::validation("kinds", format!("`{k}` is not an alert kind: one of {}", KINDS.join(", "))));
    }
    let secret = match secret {
        Some(s) if (16..=256).contains(&s.len()) => s,
        Some(_) => return Err(ApiError::validation("secret", "16 to 256 characters (leave it out to get a generated one)")),
        None => format!("whsec_{}", crate::hex::encode(&rand::random::<[u8; 24]>())),
    };
    if !allow_private && let Some(why) = crate::outbound::refusal(&parsed).await {
        return Err(ApiError::validation("url", why));
    }
    let mut hook: Webhook = sqlx::query_as("INSERT INTO webhooks (id, url, secret, kinds) VALUES ($1, $2, $3, $4) RETURNING id, url, kinds, created_at")
        .bind(Uuid::now_v7())
        .bind(url)
        .bind(&secret)
        .bind(&kinds)
        .fetch_one(db)
        .await?;
    hook.secret = Some(secret);
    Ok(hook)
}

pub async fn list(db: &PgPool) -> ApiResult<Vec<Webhook>> {
    Ok(sqlx::query_as("SELECT id, url, kinds, created_at FROM webhooks ORDER BY created_at").fetch_all(db).await?)
}

pub async fn delete(db: &PgPool, id: Uuid) -> ApiResult<()> {
    let gone = sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(db).await?.rows_affected();
    if gone == 0 {
        return Err(ApiError::not_found("webhook", &id.to_string()));
    }
    Ok(())
}

/// The delivery log of one webhook, newest first.
pub async fn deliveries(db: &PgPool, id: Uuid) -> ApiResult<Vec<Delivery>> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhooks WHERE id = $1)").bind(id).fetch_one(db).await?;
    if !exists {
        return Err(ApiError::not_found("webhook", &id.to_string()));
    }
    Ok(sqlx::query_as(
        "SELECT id, webhook_id, alert_id, status, attempts, next_attempt_at, last_status, last_error, delivered_at, created_at
         FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT 500",
    )
    .bind(id)
    .fetch_all(db)
    .await?)
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", crate::hex::encode(&mac.finalize().into_bytes()))
}


/// The wait after `attempts` failed attempts: `base`, doubling, at most an hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(20))).min(MAX_BACKOFF)
}

#[derive(Clone)]
pub struct Deliverer {
    pub db: PgPool,
    pub wake: Arc<Notify>,
    pub backoff: Duration,
    pub attempts: u32,
    /// `WEBHOOK_ALLOW_PRIVATE`: deliver to private addresses too.
    pub allow_private: bool,
}

/// Deliveries sent at once by one control plane: a dead endpoint holds one slot for its timeout,
/// not the whole queue.
const PARALLEL: usize = 8;
/// How long a claimed delivery is left to its sender before another may try it (longer than a
/// send can take).
const LEASE: Duration = Duration::from_secs(60);

pub async fn run(d: Deliverer) {
    let client = match crate::outbound::client(TIMEOUT, d.allow_private) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: webhooks will not be delivered");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    loop {
        // Claim as many due deliveries as there are free slots; each is sent on its own task,
        // with no transaction and no pool connection held across the HTTP call.
        while let Ok(slot) = slots.clone().try_acquire_owned() {
            match deliver_one(&d, &client, slot).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a webhook delivery failed; retrying");
                    break;
                }
            }
        }
        let next: Option<DateTime<Utc>> = sqlx::query_scalar("SELECT min(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'")
            .fetch_one(&d.db)
            .await
            .unwrap_or(None);
        let wait = next.map_or(Duration::from_secs(5), |at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)).clamp(Duration::from_millis(20), Duration::from_secs(5));
        tokio::select! {
            () = d.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Claims one due delivery (committed: leased for [`LEASE`], so no other control plane sends it
/// meanwhile) and sends it on a task of its own holding `slot`; `false` when none is due.
async fn deliver_one(d: &Deliverer, client: &reqwest::Client, slot: tokio::sync::OwnedSemaphorePermit) -> anyhow::Result<bool> {
    let due: Option<(i64, i32, String, String, Db<Value>)> = sqlx::query_as(
        "WITH due AS (
             SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE webhook_deliveries dl SET next_attempt_at = now() + make_interval(secs => $1)
             FROM due WHERE dl.id = due.id RETURNING dl.id, dl.attempts, dl.webhook_id, dl.alert_id
         )
         SELECT c.id, c.attempts, w.url, w.secret, to_jsonb(a) FROM claimed c
         JOIN webhooks w ON w.id = c.webhook_id JOIN alerts a ON a.id = c.alert_id",
    )
    .bind(LEASE.as_secs_f64())
    .fetch_optional(&d.db)
    .await?;
    let Some((id, attempts, url, secret, alert)) = due else { return Ok(false) };
    let (d, client) = (d.clone(), client.clone());
    tokio::spawn(async move {
        if let Err(e) = attempt(&d, &client, id, attempts, &url, &secret, alert.0).await {
            tracing::warn!(delivery = id, error = %e, "recording a webhook attempt failed; it is tried again after its lease");
        }
        drop(slot);
        // A slot is free: due deliveries need not wait for the next tick.
        d.wake.notify_one();
    });
    Ok(true)
}

/// Sends delivery `id` once and records the outcome.
async fn attempt(d: &Deliverer, client: &reqwest::Client, id: i64, attempts: i32, url: &str, secret: &str, alert: Value) -> anyhow::Result<()> {
    let mut alert = alert;
    if let Some(o) = alert.as_object_mut() {
        o.remove("dedupe_key");
    }
    let kind = alert["kind"].as_str().unwrap_or("").to_owned();
    // IP literals skip the resolver: checked here, as names are by it.
    let literal = reqwest::Url::parse(url).ok().as_ref().and_then(crate::outbound::literal_ip);
    if !d.allow_private && literal.is_some_and(|ip| !crate::outbound::is_public(ip)) {
        sqlx::query("UPDATE webhook_deliveries SET attempts = attempts + 1, status = 'failed', last_error = $2 WHERE id = $1")
            .bind(id)
            .bind("refused: the target is not a public address")
            .execute(&d.db)
            .await?;
        tracing::warn!(delivery = id, "webhook target is not a public address; delivery refused");
        return Ok(());
    }
    let body = serde_json::to_vec(&json!({"type": "alert", "delivery_id": id, "alert": alert}))?;
    let t = Utc::now().timestamp();
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "litmus-edge-webhooks")
        .header("x-litmus-signature", signature(secret, t, &body))
        .header("x-litmus-delivery", id.to_string())
        .header("x-litmus-event", format!("alert.{kind}"))
        .body(body)
        .send()
        .await;
    let attempts = attempts + 1;
    let (ok, status, error) = match sent {
        Ok(r) if r.status().is_success() => (true, Some(i32::from(r.status().as_u16())), None),
        Ok(r) => (false, Some(i32::from(r.status().as_u16())), Some(format!("HTTP {}", r.status()))),
        Err(e) => (false, None, Some(e.to_string())),
    };
    let failed = !ok && attempts >= i32::try_from(d.attempts).unwrap_or(i32::MAX);
    let wait = backoff(d.backoff, u32::try_from(attempts).unwrap_or(1));
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = $2, last_status = $3, last_error = $4,
                status = CASE WHEN $5 THEN 'delivered' WHEN $6 THEN 'failed' ELSE 'pending' END,
                delivered_at = CASE WHEN $5 THEN now() END,
                next_attempt_at = now() + make_interval(secs => $7)
         WHERE id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(status)
    .bind(&error)
    .bind(ok)
    .bind(failed)
    .bind(wait.as_secs_f64())
    .execute(&d.db)
    .await?;
    // The host only: a URL's path or query may hold a receiver's token.
    let host = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    match (ok, failed) {
        (true, _) => tracing::info!(delivery = id, host, attempts, "webhook delivered"),
        (false, true) => tracing::warn!(delivery = id, host, attempts, error = ?error, "webhook delivery failed for good"),
        (false, false) => tracing::info!(delivery = id, host, attempts, error = ?error, retry_in = ?wait, "webhook delivery failed; will retry"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: python3 -c 'import hmac, hashlib;
        // print(hmac.new(b"whsec_test", b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest())'
        assert_eq!(
            signature("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn backoff_doubles_to_an_hour() {
        let s = Duration::from_secs(5);
        assert_eq!(backoff(s, 1), Duration::from_secs(5));
        assert_eq!(backoff(s, 2), Duration::from_secs(10));
        assert_eq!(backoff(s, 4), Duration::from_secs(40));
        assert_eq!(backoff(s, 30), MAX_BACKOFF);
    }
}
