//! `/v1/assign` without workers-rs's per-request glue: the JavaScript entry
//! (`edge-worker/js/shim.js`) writes the request's query or body (and, only when the answer can
//! depend on them, its cookie and origin) into a buffer in wasm memory, calls [`fast_assign`], and builds
//! the response from the body left in wasm memory. Profiled under the bench's load, the glue
//! cost more than the assignment: a class instance and proxies per request, the URL copied into
//! wasm and parsed twice, a `Headers` and a `Response` built through a dozen crossings, promise
//! and microtask plumbing for a route that never waits on anything, and the garbage of all that.
//! What is left per request is one call and no allocation on the JavaScript side but the
//! `Response` (which copies the body out of wasm memory) and a view on it.
//!
//! The answer is the one the workers-rs route gives, by construction: both call
//! [`assign::prepare`]. Whatever needs I/O or is not warmed up yet (the first request of an
//! isolate, which reads the vars; a config due for its KV re-read, or older than the client's
//! `min_version`; exposures with no queue bound, which are posted to the control plane directly;
//! a POST body that is not JSON) answers 0, and the shim hands the
//! request to workers-rs.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use wasm_bindgen::prelude::wasm_bindgen;

use crate::assign;
use crate::config_cache;
use crate::error::ApiResult;
use crate::state;

thread_local! {
    // The request's strings, written by the shim: the query, the cookie, then the origin.
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    // The body and the exposures message of the last answer, read by the shim through `OUT`;
    // the body's buffer is reused by the next answer.
    static BODY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static EXPOSURES: RefCell<Option<String>> = const { RefCell::new(None) };
    // The head of the last answer, which the shim holds as headers already, and the next one's.
    static HEAD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static NEXT_HEAD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Where the last answer lies in wasm memory: body address and length, exposures message
/// address and length (0: none). The shim reads these words instead of calling for each.
static OUT: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];

/// Set in [`fast_assign`]'s result when the head differs from the last answer's (then
/// [`fast_take_head`] gives it). Most answers share one head: the shim builds it once.
pub const NEW_HEAD: u32 = 1 << 16;
/// [`fast_assign`]'s result when it was not given the cookie or the origin and the answer depends
/// on them: the shim reads them and calls again.
pub const NEED_HEADERS: u32 = 1;
/// [`fast_assign`]'s result when it was not given `request.cf` and targeting reads what the
/// platform knows (`assign::PLATFORM_ATTRIBUTES`): the shim passes it and calls again.
pub const NEED_CF: u32 = 2;
/// Set in [`fast_assign`]'s result when the shim should start the background re-read of the
/// config ([`fast_refresh`]) after answering from a set past its TTL.
pub const REFRESH: u32 = 1 << 17;
/// A string length argument of [`fast_assign`]: the request has no such header.
pub const ABSENT: i32 = -1;
/// A string length argument of [`fast_assign`]: the shim did not read that header.
pub const NOT_READ: i32 = -2;

/// A buffer of at least `len` bytes in wasm memory for the request's strings; its address.
/// The address stays valid until the next call (the shim calls again only to grow it).
#[wasm_bindgen]
pub fn fast_input(len: usize) -> usize {
    INPUT.with_borrow_mut(|input| {
        if input.len() < len {
            input.resize(len, 0);
        }
        input.as_mut_ptr() as usize
    })
}

/// This instance's memory. The shim asks again when wasm-bindgen's glue has replaced the instance
/// (it does after a trap, on its next call): answers are then in the new instance's memory.
#[wasm_bindgen]
pub fn fast_memory() -> wasm_bindgen::JsValue {
    wasm_bindgen::memory()
}

/// The address of the words saying where the last answer lies (see `OUT`).
#[wasm_bindgen]
pub fn fast_out() -> usize {
    OUT.as_ptr() as usize
}

/// Answers `GET /v1/assign?{query}`, the strings being in the [`fast_input`] buffer: the query's
/// `query_len` bytes, then the cookie's and the origin's (a length of [`ABSENT`] or [`NOT_READ`]
/// takes no bytes), and `cf` (`undefined`: not read, `null`: none). Returns `0` = take the
/// workers-rs road, [`NEED_HEADERS`], [`NEED_CF`], or the status plus
/// [`NEW_HEAD`] when the head changed; the body is then where `OUT` says.
#[wasm_bindgen]
// Scalars cross the wasm boundary for free; a struct would be a JS object built per request.
#[allow(clippy::too_many_arguments)]
pub fn fast_assign(query_len: usize, cookie_len: i32, origin_len: i32, https: bool, now_ms: f64, queue_bound: bool, cf: wasm_bindgen::JsValue, post: bool) -> u32 {
    INPUT.with_borrow(|input| {
        let mut at = 0;
        let mut take = |len: i32| -> Result<Option<Option<&str>>, ()> {
            match len {
                ABSENT => Ok(Some(None)),
                NOT_READ => Ok(None),
                n => {
                    let n = usize::try_from(n).map_err(|_| ())?;
                    let s = input.get(at..at + n).and_then(|b| std::str::from_utf8(b).ok()).ok_or(())?;
                    at += n;
                    Ok(Some(Some(s)))
                }
            }
        };
        let (Ok(Some(Some(query))), Ok(cookie), Ok(origin)) = (take(i32::try_from(query_len).unwrap_or(-3)), take(cookie_len), take(origin_len))
        else {
            return 0;
        };
        answer(query, cookie, origin, https, now_ms, queue_bound, &cf, post)
    })
}

/// `cookie` and `origin`: `None` = not read; `Some(None)` = the request has none. `cf`: the
/// request's `cf`, `undefined` when not read, `null` when it has none.
/// `post`: `query` is the body of `POST /v1/assign` (text that is not JSON takes the workers-rs
/// road, which says why).
#[allow(clippy::too_many_arguments)]
fn answer(query: &str, cookie: Option<Option<&str>>, origin: Option<Option<&str>>, https: bool, now_ms: f64, queue_bound: bool, cf: &wasm_bindgen::JsValue, post: bool) -> u32 {
    let Some(vars) = state::vars() else { return 0 };
    let Some((set, stale)) = config_cache::usable(now_ms, vars.config_ttl_ms) else { return 0 };
    let parsed = if post {
        let Ok(body) = serde_json::from_slice(query.as_bytes()) else { return 0 };
        assign::parse_body(body)
    } else {
        assign::parse_query(query)
    };
    let mut q = match parsed {
        Ok(q) => q,
        Err(e) => return render(Err(e), &vars.allowed_origins.headers_for(origin.flatten())),
    };
    // A client ahead of this isolate: the road that reads KV first (`config_cache::at_least`).
    if q.min_version.is_some_and(|m| set.as_ref().is_none_or(|s| s.version < m)) {
        return 0;
    }
    if vars.platform_attributes && assign::reads_platform(set.as_ref(), &vars.signing_keys) {
        if cf.is_undefined() {
            return NEED_CF;
        }
        if cf.is_object() {
            q.use_platform_attributes(|name| assign::cf_member(cf, name));
        }
    }
    if q.expose && !queue_bound {
        return 0;
    }
    let (Some(cookie), Some(origin)) = (
        cookie.or_else(|| (!assign::needs_cookie(set.as_ref(), &q)).then_some(None)),
        origin.or_else(|| (!vars.allowed_origins.by_origin()).then_some(None)),
    ) else {
        return NEED_HEADERS;
    };
    let cors = vars.allowed_origins.headers_for(origin);
    let prepared = BODY.with_borrow_mut(|body| assign::prepare(&vars, set.as_ref(), q, cookie, https, now_ms, body));
    let refresh = stale && config_cache::claim_refresh(now_ms, vars.config_ttl_ms);
    render(prepared, &cors) | if refresh { REFRESH } else { 0 }
}

/// Re-reads the config from KV: what the shim hands to `waitUntil` when [`fast_assign`] says
/// [`REFRESH`]. Never rejects (a failed read keeps the set and is logged).
#[wasm_bindgen]
pub fn fast_refresh(env: worker::Env) -> worker::js_sys::Promise {
    worker::wasm_bindgen_futures::future_to_promise(async move {
        config_cache::refresh(&state::AppState::from_env(&env)).await;
        Ok(wasm_bindgen::JsValue::UNDEFINED)
    })
}

/// The head of the answer [`fast_assign`] just gave: `"{status}\n"`, then header lines
/// `"{name}: {value}\n"` (besides `content-type`).
#[wasm_bindgen]
pub fn fast_take_head() -> String {
    HEAD.with_borrow(|head| String::from_utf8_lossy(head).into_owned())
}

/// Records where the answer lies and its head; for an error, writes the contract's error body.
fn render(prepared: ApiResult<assign::Prepared>, cors: &[(&'static str, std::borrow::Cow<'static, str>)]) -> u32 {
    let (status, headers) = match prepared {
        Ok(p) => {
            EXPOSURES.set(p.exposures);
            (p.status, p.headers)
        }
        // As the workers-rs route answers errors: the contract's error body, CORS, nothing else.
        Err(e) => {
            EXPOSURES.set(None);
            BODY.with_borrow_mut(|body| {
                body.clear();
                body.extend_from_slice(e.body().to_string().as_bytes());
            });
            (e.status, Vec::new())
        }
    };
    BODY.with_borrow(|body| {
        OUT[0].store(body.as_ptr() as u32, Ordering::Relaxed);
        OUT[1].store(body.len() as u32, Ordering::Relaxed);
    });
    EXPOSURES.with_borrow(|e| {
        OUT[2].store(e.as_ref().map_or(0, |e| e.as_ptr() as u32), Ordering::Relaxed);
        OUT[3].store(e.as_ref().map_or(0, |e| e.len() as u32), Ordering::Relaxed);
    });
    // The head is written into a kept buffer and compared with the last one: no allocation for
    // the usual answer, whose head is the same every time.
    let changed = NEXT_HEAD.with_borrow_mut(|next| {
        next.clear();
        crate::render::push_i64(next, i64::from(status));
        next.push(b'\n');
        for (name, value) in headers.iter().chain(cors) {
            for part in [name, ": ", value.as_ref(), "\n"] {
                next.extend_from_slice(part.as_bytes());
            }
        }
        HEAD.with_borrow_mut(|last| {
            if last == next {
                false
            } else {
                std::mem::swap(last, next);
                true
            }
        })
    });
    u32::from(status) | if changed { NEW_HEAD } else { 0 }
}
