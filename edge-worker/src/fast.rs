//! `GET /v1/assign` without workers-rs's per-request glue: the JavaScript entry
//! (`edge-worker/js/shim.js`) calls [`fast_assign_get`] with the request's query, cookie and origin
//! as plain strings and builds the response itself. Profiled under the bench's load, the glue
//! cost more than the assignment: a class instance and proxies per request, the URL copied into
//! wasm and parsed twice, a `Headers` and a `Response` built through a dozen crossings, promise
//! and microtask plumbing for a route that never waits on anything, and the garbage of all that
//! (14 % of the isolate's time went to the collector).
//!
//! The answer is the one the workers-rs route gives, by construction: both call
//! [`assign::prepare`]. Whatever needs I/O or is not warmed up yet (the first request of an
//! isolate, which reads the vars; a config due for its KV re-read; exposures with no queue bound,
//! which are posted to the control plane directly) answers 0, and the shim hands the
//! request to workers-rs.

use std::cell::RefCell;

use wasm_bindgen::prelude::wasm_bindgen;

use crate::assign;
use crate::config_cache;
use crate::error::ApiResult;
use crate::state;

thread_local! {
    // The body and the exposures message of the last answer, until the shim takes them.
    static BODY: RefCell<String> = const { RefCell::new(String::new()) };
    static EXPOSURES: RefCell<Option<String>> = const { RefCell::new(None) };
    // The head of the last answer, which the shim holds as headers already.
    static HEAD: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Answers `GET /v1/assign?{query}`: `0` = take the workers-rs road; otherwise the status, plus
/// [`NEW_HEAD`] when the head differs from the last answer's (then [`fast_take_head`] gives it).
/// Most answers share one head, so the shim builds its headers once, not per request.
#[wasm_bindgen]
pub fn fast_assign_get(
    query: &str,
    cookie: Option<String>,
    origin: Option<String>,
    https: bool,
    now_ms: f64,
    queue_bound: bool,
) -> u32 {
    let Some(vars) = state::vars() else { return 0 };
    let Some(set) = config_cache::fresh(now_ms, vars.config_ttl_ms) else { return 0 };
    let prepared = assign::parse_query(query).and_then(|q| {
        if q.expose && !queue_bound {
            return Ok(None);
        }
        assign::prepare(&vars, set.as_ref(), q, cookie.as_deref(), https).map(Some)
    });
    let Some(prepared) = prepared.transpose() else { return 0 };
    render(prepared, &vars.allowed_origins.headers_for(origin.as_deref()))
}

/// Set in [`fast_assign_get`]'s result when the head changed.
pub const NEW_HEAD: u32 = 1 << 16;

/// The head of the answer [`fast_assign_get`] just gave: `"{status}\n"`, then header lines
/// `"{name}: {value}\n"` (besides `content-type`).
#[wasm_bindgen]
pub fn fast_take_head() -> String {
    HEAD.with_borrow(String::clone)
}

/// The body of the answer [`fast_assign_get`] just gave, once. A string, not bytes: measured,
/// a `Uint8Array` per answer cost more (the copy's backing store is work for the collector)
/// than decoding ASCII into a one-byte string and `Response` encoding it back.
#[wasm_bindgen]
pub fn fast_take_body() -> String {
    BODY.take()
}

/// The UTF-8 size of the exposures message of the answer [`fast_assign_get`] just gave (0: none).
#[wasm_bindgen]
pub fn fast_exposures_bytes() -> usize {
    EXPOSURES.with_borrow(|e| e.as_ref().map_or(0, String::len))
}

/// The exposures message of the answer [`fast_assign_get`] just gave, once.
#[wasm_bindgen]
pub fn fast_take_exposures() -> Option<String> {
    EXPOSURES.take()
}

fn render(prepared: ApiResult<assign::Prepared>, cors: &[(&'static str, String)]) -> u32 {
    let (status, body, headers) = match prepared {
        Ok(p) => {
            EXPOSURES.set(p.exposures);
            (p.status, p.body, p.headers)
        }
        // As the workers-rs route answers errors: the contract's error body, CORS, nothing else.
        Err(e) => {
            EXPOSURES.set(None);
            (e.status, e.body().to_string(), Vec::new())
        }
    };
    BODY.set(body);
    let mut head = String::with_capacity(128);
    crate::render::push_i64(&mut head, i64::from(status));
    head.push('\n');
    for (name, value) in headers.iter().chain(cors) {
        for part in [name, ": ", value, "\n"] {
            head.push_str(part);
        }
    }
    let changed = HEAD.with_borrow_mut(|last| {
        if *last == head {
            false
        } else {
            *last = head;
            true
        }
    });
    u32::from(status) | if changed { NEW_HEAD } else { 0 }
}
