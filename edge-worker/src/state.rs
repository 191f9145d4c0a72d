//! The worker's bindings and vars. Vars are read from `Env` once per isolate: every read is a
//! crossing into JavaScript and a string copy, and ten of them per request cost more than the
//! assignment. That is safe because changing a var or a secret (`wrangler secret put`, a deploy)
//! starts new isolates. Bindings (KV, queues) are taken from the request's `Env` when used.

use std::ops::Deref;
use std::rc::Rc;

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
    env: Env,
    vars: Rc<Vars>,
}

thread_local! {
    // Wasm has no threads: this is the isolate's copy.
    static VARS: std::cell::OnceCell<Rc<Vars>> = const { std::cell::OnceCell::new() };
}

/// This isolate's vars, once a request through workers-rs has read them (`None` before that).
pub fn vars() -> Option<Rc<Vars>> {
    VARS.with(|v| v.get().cloned())
}

impl AppState {
    pub fn from_env(env: &Env) -> Self {
        let vars = VARS.with(|v| v.get_or_init(|| Rc::new(Vars::from_env(env))).clone());
        Self { env: env.clone(), vars }
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    /// `None` when the binding is missing: the worker still answers, with the safe default.
    pub fn kv(&self) -> Option<KvStore> {
        self.env.kv("CONFIG").ok()
    }

    /// `None` when no queue is bound (e.g. a plain `wrangler dev` without queues): events are then
    /// forwarded straight from `wait_until`, best effort.
    pub fn events(&self) -> Option<Queue> {
        self.env.queue("EVENTS").ok()
    }

    /// The dead-letter queue, for events the control plane refused (`EVENTS_DLQ`).
    pub fn dead_letters(&self) -> Option<Queue> {
        self.env.queue("EVENTS_DLQ").ok()
    }
}

impl Deref for AppState {
    type Target = Vars;
    fn deref(&self) -> &Vars {
        &self.vars
    }
}

pub struct Vars {
    pub config_ttl_ms: f64,
    pub publish_token: Option<String>,
    pub ingest_token: Option<String>,
    pub control_plane_url: Option<String>,
    pub allowed_origins: AllowedOrigins,
    pub max_unit_id_bytes: usize,
    /// Redelivery backoff bounds (`RETRY_MIN_SECONDS`, `RETRY_MAX_SECONDS`; see
    /// `events::backoff_seconds`).
    pub retry_min_seconds: u32,
    pub retry_max_seconds: u32,
    /// `SIGNING_KEYS` (a secret; `litmus_shared::signing`): signs answers and sticky documents,
    /// and proves the events sent to `/v1/events`. Unset or unreadable: nothing is signed, every
    /// sticky document and every event sent without a key is refused.
    pub signing_keys: litmus_shared::signing::Keys,
    /// `UNSIGNED_EVENTS=accept`: events without a `signature` are forwarded as before (a bad one
    /// is still refused), for a deployment whose clients do not echo signatures yet. Anything
    /// else, the default included: refused.
    pub accept_unsigned: bool,
    /// Unless `CLIENT_ATTRIBUTES=trust`: behind Cloudflare, the attributes the request itself
    /// carries (`assign::PLATFORM_ATTRIBUTES`: country, city, asn…) replace the client's.
    pub platform_attributes: bool,
}

impl Vars {
    fn from_env(env: &Env) -> Self {
        Self {
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
            retry_min_seconds: seconds(env, "RETRY_MIN_SECONDS").unwrap_or(DEFAULT_RETRY_MIN_SECONDS),
            retry_max_seconds: seconds(env, "RETRY_MAX_SECONDS").unwrap_or(DEFAULT_RETRY_MAX_SECONDS),
            accept_unsigned: text(env, "UNSIGNED_EVENTS").is_some_and(|v| v.trim() == "accept"),
            platform_attributes: text(env, "CLIENT_ATTRIBUTES").is_none_or(|v| v.trim() != "trust"),
            signing_keys: text(env, "SIGNING_KEYS").map_or_else(Default::default, |k| {
                litmus_shared::signing::Keys::parse(&k).unwrap_or_else(|e| {
                    worker::console_error!("SIGNING_KEYS is not usable ({e}): answers go unsigned and /v1/events refuses every event");
                    Default::default()
                })
            }),
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
