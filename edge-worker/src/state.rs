//! Per-request view of the worker's bindings. Built from `Env` on every request because bindings
//! are cheap handles and a secret rotated with `wrangler secret put` must take effect at once.

use worker::{Env, KvStore, Queue};

use crate::cors::AllowedOrigins;

pub const CONFIG_KEY: &str = "configs";
const DEFAULT_TTL_SECONDS: f64 = 5.0;
/// Unit ids beyond this are rejected: longer ones are abuse, not identifiers, and every event
/// carries the unit id to the control plane. `MAX_UNIT_ID_BYTES` may lower it, never raise it
/// past the control plane's limit (exposures it would refuse).
pub const DEFAULT_MAX_UNIT_ID_BYTES: usize = litmus_shared::validate::MAX_UNIT_ID_BYTES;
const DEFAULT_RETRY_MIN_SECONDS: u32 = 15;
const DEFAULT_RETRY_MAX_SECONDS: u32 = 900;

pub struct AppState {
    /// `None` when the binding is missing: the worker still answers, with the safe default.
    pub kv: Option<KvStore>,
    pub config_ttl_ms: f64,
    pub publish_token: Option<String>,
    pub ingest_token: Option<String>,
    pub control_plane_url: Option<String>,
    pub allowed_origins: AllowedOrigins,
    pub max_unit_id_bytes: usize,
    /// `None` when no queue is bound (e.g. a plain `wrangler dev` without queues): events are then
    /// forwarded straight from `wait_until`, best effort.
    pub events: Option<Queue>,
    /// The dead-letter queue, for events the control plane refused (`EVENTS_DLQ`).
    pub dead_letters: Option<Queue>,
    /// Redelivery backoff bounds (`RETRY_MIN_SECONDS`, `RETRY_MAX_SECONDS`; see
    /// `events::backoff_seconds`).
    pub retry_min_seconds: u32,
    pub retry_max_seconds: u32,
}

impl AppState {
    pub fn from_env(env: &Env) -> Self {
        Self {
            kv: env.kv("CONFIG").ok(),
            config_ttl_ms: text(env, "CONFIG_TTL_SECONDS")
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(DEFAULT_TTL_SECONDS)
                * 1000.0,
            publish_token: text(env, "PUBLISH_TOKEN"),
            ingest_token: text(env, "INGEST_TOKEN"),
            control_plane_url: text(env, "CONTROL_PLANE_URL").map(|u| u.trim_end_matches('/').to_owned()),
            allowed_origins: AllowedOrigins::parse(text(env, "ALLOWED_ORIGINS").as_deref().unwrap_or("*")),
            max_unit_id_bytes: text(env, "MAX_UNIT_ID_BYTES")
                .and_then(|s| s.trim().parse().ok())
                .map_or(DEFAULT_MAX_UNIT_ID_BYTES, |n: usize| n.min(DEFAULT_MAX_UNIT_ID_BYTES)),
            events: env.queue("EVENTS").ok(),
            dead_letters: env.queue("EVENTS_DLQ").ok(),
            retry_min_seconds: seconds(env, "RETRY_MIN_SECONDS").unwrap_or(DEFAULT_RETRY_MIN_SECONDS),
            retry_max_seconds: seconds(env, "RETRY_MAX_SECONDS").unwrap_or(DEFAULT_RETRY_MAX_SECONDS),
        }
    }
}

fn seconds(env: &Env, name: &str) -> Option<u32> {
    text(env, name).and_then(|s| s.trim().parse().ok())
}

/// A non-empty string var or secret (both are plain strings to the worker).
fn text(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|s| s.to_string()))
        .ok()
        .filter(|s| !s.trim().is_empty())
}
