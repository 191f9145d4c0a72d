//! The published `ConfigSet`, kept parsed in isolate memory.
//!
//! Reading and parsing KV on every request would cost more than the assignment itself, so the set
//! is re-read at most once per `CONFIG_TTL_SECONDS`. A missing, unreadable or unparseable KV value
//! never takes the worker down: it keeps the last good set, or serves the safe default (nobody in
//! any experiment) when it never had one.

use std::cell::RefCell;
use std::rc::Rc;

use litmus_shared::{ConfigSet, Experiment, SavedGroups, Targeting};
use serde::Deserialize;
use serde_json::Value;

use crate::events::now_ms;
use crate::state::{AppState, CONFIG_KEY};

#[derive(Default)]
struct Cache {
    set: Option<Rc<ConfigSet>>,
    checked_at_ms: Option<f64>,
}

// Workers run one request at a time per JS turn and wasm has no threads: a thread-local RefCell
// is the isolate-wide cache. Borrows never span an `.await`.
thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The config set to answer from: cached, or refreshed from KV when the TTL has passed.
pub async fn current(state: &AppState) -> Option<Rc<ConfigSet>> {
    let now = now_ms();
    if let Some(cached) = fresh(now, state.config_ttl_ms) {
        return cached;
    }
    let loaded = load(state).await;
    CACHE.with_borrow_mut(|c| {
        c.checked_at_ms = Some(now);
        if let Some(set) = loaded {
            install(c, set);
        }
        c.set.clone()
    })
}

/// The cached set if it was checked against KV less than `ttl_ms` before `now_ms` (`Some(None)`:
/// checked, and there is no set); `None` when it is due for a re-read.
pub fn fresh(now_ms: f64, ttl_ms: f64) -> Option<Option<Rc<ConfigSet>>> {
    CACHE.with_borrow(|c| {
        let fresh = c.checked_at_ms.is_some_and(|t| now_ms - t < ttl_ms && now_ms >= t);
        fresh.then(|| c.set.clone())
    })
}

/// Makes `set` this isolate's answer immediately (after a publish through this isolate).
pub fn replace(set: ConfigSet) {
    CACHE.with_borrow_mut(|c| {
        c.checked_at_ms = Some(now_ms());
        install(c, set);
    });
}

/// Versions only move forward: a KV read that lags behind a publish this isolate already saw
/// (KV is eventually consistent across locations) must not roll the config back.
fn install(c: &mut Cache, set: ConfigSet) {
    if c.set.as_ref().is_none_or(|old| set.version >= old.version) {
        c.set = Some(Rc::new(set));
    }
}

async fn load(state: &AppState) -> Option<ConfigSet> {
    let kv = state.kv()?;
    let text = match kv.get(CONFIG_KEY).text().await {
        Ok(Some(text)) => text,
        Ok(None) => return None,
        Err(e) => {
            worker::console_error!("reading KV `{CONFIG_KEY}` failed: {e}");
            return None;
        }
    };
    match parse_lenient(&text) {
        Ok(set) => Some(set),
        Err(e) => {
            worker::console_error!("KV `{CONFIG_KEY}` is not a config set, keeping the previous one: {e}");
            None
        }
    }
}

#[derive(Deserialize)]
struct RawSet {
    version: i64,
    #[serde(default)]
    published_at: Option<String>,
    experiments: Vec<Value>,
    #[serde(default)]
    saved_groups: Value,
}

/// Parses a stored set, dropping (and logging) experiments that do not parse or validate so that
/// one bad experiment — e.g. written by a newer control plane with a hash version this worker does
/// not know — cannot switch off all the others. Duplicate keys keep their first occurrence, which
/// is the one `ConfigSet::get` would find anyway.
pub fn parse_lenient(text: &str) -> Result<ConfigSet, String> {
    let raw: RawSet = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut experiments: Vec<Experiment> = Vec::with_capacity(raw.experiments.len());
    for (i, value) in raw.experiments.into_iter().enumerate() {
        let parsed = read_experiment(&value).or_else(|msg| {
            // A condition this worker cannot read matches nobody; the experiment stays (its units
            // get the control, reason `targeting`), rather than every request naming it failing.
            let mut rest = value;
            let condition = rest.get_mut("targeting").map(Value::take).ok_or(msg.clone())?;
            if Targeting::parse(&condition).is_ok() {
                return Err(msg);
            }
            let mut e = read_experiment(&rest).map_err(|_| msg.clone())?;
            worker::console_warn!("config: experiments[{i}] `{}`: targeting matches nobody: {msg}", e.key);
            e.targeting = Targeting::unmatchable(condition);
            Ok(e)
        });
        match parsed {
            Ok(e) if experiments.iter().any(|o| o.key == e.key) => {
                worker::console_warn!("config: experiments[{i}] `{}` is a duplicate key, dropped", e.key);
            }
            Ok(e) => experiments.push(e),
            Err(msg) => worker::console_warn!("config: experiments[{i}] dropped: {msg}"),
        }
    }
    // Groups of the wrong shape are dropped, as bad experiments are: an unknown group is empty.
    let saved_groups = match raw.saved_groups {
        Value::Null => SavedGroups::new(),
        groups => serde_json::from_value(groups).unwrap_or_else(|e| {
            worker::console_warn!("config: saved_groups dropped: {e}");
            SavedGroups::new()
        }),
    };
    Ok(ConfigSet { version: raw.version, published_at: raw.published_at, experiments, saved_groups })
}

/// Reads a copy: deserializing from `&Value` instead would monomorphize the whole experiment
/// reader a second time (6 KiB gzip of the worker, measured), to save one clone per experiment
/// per re-read (every `CONFIG_TTL_SECONDS`).
fn read_experiment(value: &Value) -> Result<Experiment, String> {
    serde_json::from_value::<Experiment>(value.clone())
        .map_err(|e| e.to_string())
        .and_then(|e| e.validate().map(|()| e).map_err(|err| err.to_string()))
}
