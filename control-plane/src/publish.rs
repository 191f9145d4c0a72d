//! Publishes the running experiments to the edge as one versioned [`ConfigSet`] whenever one
//! changes: through Cloudflare's KV REST API in production, and/or a `PUT` to the worker's
//! publish endpoint (how `make run` reaches `wrangler dev`'s local KV).
//!
//! Handlers call [`Publisher::notify`] after a change; one background task coalesces bursts,
//! publishes the latest state, and retries with backoff until the edge has it. Each distinct
//! content gets the next `config_version_seq` number, so the edge can ignore stale pushes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use litmus_shared::{ConfigSet, Experiment, SavedGroups};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Notify;

use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use crate::saved_groups;
use crate::experiments::{COLUMNS, ExperimentRow};

#[derive(Clone, Default)]
pub struct Publisher {
    wake: Arc<Notify>,
    status: Arc<Mutex<PublishStatus>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishStatus {
    pub targets: Vec<String>,
    pub version: Option<i64>,
    pub experiments: usize,
    pub published_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl Publisher {
    /// Something that may change the running set happened.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    pub fn status(&self) -> PublishStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set_status(&self, f: impl FnOnce(&mut PublishStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }
}

/// What the edge must know, as the engine sees it, ordered by key: running experiments, and
/// paused ones and those stopped less than `stopped_grace` ago, so that asking for them by key
/// still answers the control (`not_running`) while clients catch up. After the grace period a
/// stopped experiment is dropped, so the set (parsed by every edge isolate) stays the size of
/// what is live; the edge then answers `unknown_experiment` for it (`in_experiment: false`,
/// no variant), and `retire` wakes the publisher at that moment. Drafts never leave.
pub async fn edge_experiments(db: &PgPool, stopped_grace: Duration) -> anyhow::Result<Vec<Experiment>> {
    let rows: Vec<ExperimentRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM experiments
         WHERE status IN ('running', 'paused') OR (status = 'stopped' AND stopped_at > now() - make_interval(secs => $1))
         ORDER BY key"
    ))
    .bind(stopped_grace.as_secs_f64())
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| r.to_engine().map_err(|e| anyhow::anyhow!("{e}"))).collect()
}

enum Target {
    Worker { url: String, token: SecretString },
    CloudflareKv { url: String, token: SecretString },
}

impl Target {
    fn from_config(c: &Config) -> Vec<Target> {
        let mut targets = Vec::new();
        if let Some(url) = &c.edge_publish_url {
            targets.push(Target::Worker { url: url.clone(), token: c.edge_publish_token.clone() });
        }
        if let (Some(account), Some(ns), Some(token)) = (&c.cf_account_id, &c.cf_kv_namespace_id, &c.cf_api_token) {
            let url = format!("https://api.cloudflare.com/client/v4/accounts/{account}/storage/kv/namespaces/{ns}/values/configs");
            targets.push(Target::CloudflareKv { url, token: token.clone() });
        }
        targets
    }

    fn describe(&self) -> String {
        match self {
            Target::Worker { url, .. } => format!("worker {url}"),
            Target::CloudflareKv { url, .. } => format!("cloudflare kv {url}"),
        }
    }

    /// PUTs the set. `Ok(Some(v))` when the worker kept a newer version `v` and ignored this one.
    async fn put(&self, client: &reqwest::Client, body: &str) -> anyhow::Result<Option<i64>> {
        let (Target::Worker { url, token } | Target::CloudflareKv { url, token }) = self;
        let resp = client
            .put(url)
            .bearer_auth(token.expose_secret())
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            anyhow::bail!("{} answered {status}: {}", self.describe(), text.chars().take(300).collect::<String>());
        }
        let answer: serde_json::Value = resp.json().await.unwrap_or_default();
        Ok(if answer["stale"] == true { answer["stored_version"].as_i64() } else { None })
    }
}

/// How often to re-check the running set even without a notification (and re-push, so an edge
/// that restarted with empty local storage catches up).
const RECHECK: Duration = Duration::from_secs(30);

pub async fn run(db: PgPool, config: Arc<Config>, publisher: Publisher) {
    let targets = Target::from_config(&config);
    publisher.set_status(|s| s.targets = targets.iter().map(Target::describe).collect());
    if targets.is_empty() {
        tracing::info!("no edge publish target configured (EDGE_PUBLISH_URL or CF_*): configs are not pushed");
        return;
    }
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build HTTP client; edge publishing disabled");
            return;
        }
    };
    let mut last: Option<(Vec<Experiment>, SavedGroups, i64)> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        match publish_once(&db, config.stopped_grace, &client, &targets, &mut last).await {
            Ok(Some((version, n))) => {
                backoff = Duration::from_secs(1);
                publisher.set_status(|s| {
                    s.version = Some(version);
                    s.experiments = n;
                    s.published_at = Some(Utc::now());
                    s.last_error = None;
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "publishing configs to the edge failed");
                publisher.set_status(|s| s.last_error = Some(e.to_string()));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = publisher.wake.notified() => {}
                }
                backoff = (backoff * 2).min(RECHECK);
                continue;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RECHECK) => {}
            () = publisher.wake.notified() => {
                // Coalesce a burst of changes into one publish.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn publish_once(db: &PgPool, stopped_grace: Duration, client: &reqwest::Client, targets: &[Target], last: &mut Option<(Vec<Experiment>, SavedGroups, i64)>)
    -> anyhow::Result<Option<(i64, usize)>> {
    let experiments = edge_experiments(db, stopped_grace).await?;
    let groups = saved_groups::all(db).await?;
    let version = match last {
        Some((prev, prev_groups, v)) if *prev == experiments && *prev_groups == groups => *v,
        _ => sqlx::query_scalar::<_, i64>("SELECT nextval('config_version_seq')").fetch_one(db).await?,
    };
    let changed = last.as_ref().is_none_or(|(_, _, v)| *v != version);
    let set = ConfigSet { version, published_at: Some(Utc::now().to_rfc3339()), experiments: experiments.clone(), saved_groups: groups.clone() };
    let body = serde_json::to_string(&set)?;
    for t in targets {
        if let Some(stored) = t.put(client, &body).await? {
            // The edge holds a newer version than our counter (e.g. a fresh database against old
            // edge storage): move the counter past it and publish again as a new version.
            sqlx::query("SELECT setval('config_version_seq', GREATEST($1, (SELECT last_value FROM config_version_seq)))")
                .bind(stored)
                .execute(db)
                .await?;
            *last = None;
            anyhow::bail!("{} kept newer version {stored}; republishing above it", t.describe());
        }
    }
    if changed {
        tracing::info!(version, experiments = set.experiments.len(), "published configs to the edge");
    }
    *last = Some((experiments, groups, version));
    Ok(Some((version, set.experiments.len())))
}
