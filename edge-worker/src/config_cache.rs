//! The published `ConfigSet`, kept parsed in isolate memory.
//!
//! Reading and parsing KV on every request would cost more than the assignment itself, so the set
//! is re-read at most once per `CONFIG_TTL_SECONDS`, and parsed again only when the text changed.
//! On the fast route a set past its TTL is still answered from, for up to one more TTL, while one
//! request's background re-read runs ([`usable`], [`claim_refresh`], [`refresh`]): before, every
//! request arriving during the re-read made its own, and all of them waited on KV. A missing,
//! unreadable or unparseable KV value never takes the worker down: it keeps the last good set, or
//! serves the safe default (nobody in any experiment) when it never had one.

use std::cell::RefCell;
use std::rc::Rc;

use worker::js_sys::{Promise, Reflect};
use worker::wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

use litmus_shared::{ConfigSet, Experiment, SavedGroups, Targeting};
use serde::Deserialize;
use serde_json::Value;

use crate::events::now_ms;
use crate::state::{AppState, CONFIG_KEY};

#[derive(Default)]
struct Cache {
    set: Option<Rc<ConfigSet>>,
    checked_at_ms: Option<f64>,
    /// xxh64 and length of the KV text `set` was parsed from: a re-read finding the same text
    /// keeps the set, and the body fragments rendered for it, instead of parsing it again.
    text: Option<(u64, usize)>,
    /// When the fast route's background re-read started: one at a time.
    refreshing_since: Option<f64>,
    /// The KV read in flight, which every caller that needs one joins (a JavaScript promise can
    /// be awaited any number of times): a burst arriving as the TTL runs out, or behind a
    /// client's version, costs one read, not one per request.
    reading: Option<Promise>,
    /// When the last re-read asked by a client ahead of this isolate started ([`at_least`]).
    forced_at: Option<f64>,
}

/// Re-reads asked by clients ahead of this isolate start at most this often: a `min_version`
/// no publish ever reached (forged, or from another deployment) must not turn every request
/// into a KV read.
const FORCED_GAP_MS: f64 = 100.0;

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
    reload(state, now).await;
    CACHE.with_borrow(|c| c.set.clone())
}

/// The set to answer a client from that has already been answered from version `min` (it sends
/// `min_version`): when this isolate holds an older one, KV is read again at once (joining a read
/// in flight) instead of waiting for the TTL. The per-client half of monotonicity: a client that
/// was answered by an isolate holding a newer set (in production a location runs several, each
/// with its own cache) is not answered from an older one by the next. Still older afterwards
/// (KV at this location lags the write, up to ~60 s in production; or `min` was never published),
/// the newest set this isolate can read: the answer's `config_version` says so.
pub async fn at_least(state: &AppState, min: Option<i64>) -> Option<Rc<ConfigSet>> {
    let held = current(state).await;
    if min.is_none_or(|m| held.as_ref().is_some_and(|s| s.version >= m)) {
        return held;
    }
    let now = now_ms();
    let read = CACHE.with_borrow_mut(|c| {
        let go = c.reading.is_some() || c.forced_at.is_none_or(|t| !(0.0..FORCED_GAP_MS).contains(&(now - t)));
        if go && c.reading.is_none() {
            c.forced_at = Some(now);
        }
        go
    });
    if read {
        reload(state, now).await;
    }
    CACHE.with_borrow(|c| c.set.clone())
}

/// The cached set if it was checked against KV less than `ttl_ms` before `now_ms` (`Some(None)`:
/// checked, and there is no set); `None` when it is due for a re-read.
pub fn fresh(now_ms: f64, ttl_ms: f64) -> Option<Option<Rc<ConfigSet>>> {
    CACHE.with_borrow(|c| {
        let fresh = c.checked_at_ms.is_some_and(|t| now_ms - t < ttl_ms && now_ms >= t);
        fresh.then(|| c.set.clone())
    })
}

/// For the fast route: the cached set while it is less than two TTLs old, and whether it is past
/// the first (then a re-read is due: [`claim_refresh`]). `None` when it is older (an isolate idle
/// for a while must not answer from a set that old), was never read, or the clock went back:
/// the request then takes the road that reads KV before answering. A TTL of 0 never answers
/// from the cache.
pub fn usable(now_ms: f64, ttl_ms: f64) -> Option<(Option<Rc<ConfigSet>>, bool)> {
    CACHE.with_borrow(|c| {
        let age = now_ms - c.checked_at_ms?;
        (0.0..2.0 * ttl_ms).contains(&age).then(|| (c.set.clone(), age >= ttl_ms))
    })
}

/// Whether the caller should start the background re-read: `true` for one caller at a time (a
/// re-read still running after `ttl_ms` is presumed lost, and another may start).
pub fn claim_refresh(now_ms: f64, ttl_ms: f64) -> bool {
    CACHE.with_borrow_mut(|c| {
        let running = c.refreshing_since.is_some_and(|t| (0.0..ttl_ms).contains(&(now_ms - t)));
        if !running {
            c.refreshing_since = Some(now_ms);
        }
        !running
    })
}

/// The background re-read [`claim_refresh`] granted.
pub async fn refresh(state: &AppState) {
    reload(state, now_ms()).await;
}

/// Reads KV, checked at `now`; parses and installs the set when its text changed.
async fn reload(state: &AppState, now: f64) {
    let text = read(state).await;
    let key = text.as_deref().map(|t| (litmus_shared::hashing::seed(t), t.len()));
    let same = CACHE.with_borrow_mut(|c| {
        c.checked_at_ms = Some(now);
        c.refreshing_since = None;
        key.is_some() && c.text == key
    });
    if same {
        return;
    }
    let Some(set) = text.as_deref().and_then(parse_logged) else { return };
    CACHE.with_borrow_mut(|c| {
        if install(c, set) {
            c.text = key;
        }
    });
}

/// Makes `set` this isolate's answer immediately (after a publish through this isolate).
pub fn replace(set: ConfigSet) {
    CACHE.with_borrow_mut(|c| {
        c.checked_at_ms = Some(now_ms());
        if install(c, set) {
            // Not parsed from KV: the next read parses what KV holds.
            c.text = None;
        }
    });
}

/// Versions only move forward: a KV read that lags behind a publish this isolate already saw
/// (KV is eventually consistent across locations) must not roll the config back. Whether `set`
/// was installed.
fn install(c: &mut Cache, set: ConfigSet) -> bool {
    let newer = c.set.as_ref().is_none_or(|old| set.version >= old.version);
    if newer {
        c.set = Some(Rc::new(set));
    }
    newer
}

/// The KV text, through the read in flight if there is one.
async fn read(state: &AppState) -> Option<String> {
    let promise = match CACHE.with_borrow(|c| c.reading.clone()) {
        Some(p) => p,
        None => {
            let p = start_read(state)?;
            CACHE.with_borrow_mut(|c| c.reading = Some(p.clone()));
            p
        }
    };
    let result = JsFuture::from(promise.clone()).await;
    CACHE.with_borrow_mut(|c| {
        if c.reading.as_ref().is_some_and(|r| AsRef::<JsValue>::as_ref(r) == AsRef::<JsValue>::as_ref(&promise)) {
            c.reading = None;
        }
    });
    match result {
        Ok(text) => text.as_string(),
        Err(e) => {
            worker::console_error!("reading KV `{CONFIG_KEY}` failed: {e:?}");
            None
        }
    }
}

#[wasm_bindgen]
extern "C" {
    /// The `CONFIG` binding, as JavaScript sees it: `get` hands out the bare promise (text or
    /// null), which workers-rs's builder keeps to itself.
    type KvNamespace;
    #[wasm_bindgen(method)]
    fn get(this: &KvNamespace, key: &str) -> Promise;
}

/// Starts reading the stored set's text; `None` when the binding is missing.
fn start_read(state: &AppState) -> Option<Promise> {
    let kv = Reflect::get(state.env().as_ref(), &"CONFIG".into()).ok().filter(|v| v.is_object())?;
    Some(kv.unchecked_into::<KvNamespace>().get(CONFIG_KEY))
}

/// The stored set's text, read now (not through the cache's read in flight): what publishing
/// compares its version with.
pub async fn stored_text(state: &AppState) -> Option<String> {
    JsFuture::from(start_read(state)?).await.ok()?.as_string()
}

fn parse_logged(text: &str) -> Option<ConfigSet> {
    parse_lenient(text)
        .map_err(|e| worker::console_error!("KV `{CONFIG_KEY}` is not a config set, keeping the previous one: {e}"))
        .ok()
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
