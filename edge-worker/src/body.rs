//! Size-limited JSON request bodies, shared by every route that takes one.

use serde_json::Value;
use worker::Request;
use worker::js_sys::{Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::ReadableStreamDefaultReader;

use crate::error::{ApiError, ApiResult};

/// Reads and parses a JSON body of at most `max` bytes: 413 beyond it, 400 when it is not JSON.
/// The content type is not checked: browsers send `text/plain` to skip the CORS preflight.
///
/// An oversized body is still read to its end, chunk by chunk, without keeping it: answering
/// before the client has finished sending makes many HTTP clients report a reset connection
/// instead of the 413, and copying it into wasm memory would grow the isolate's heap for good.
pub async fn json(req: &mut Request, max: usize) -> ApiResult<Value> {
    let bytes = read_limited(req, max).await?.ok_or_else(|| ApiError::too_large(format!("body over {max} bytes")))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_json(format!("body is not JSON: {e}")))
}

/// The body, or `None` when it is longer than `max`.
async fn read_limited(req: &Request, max: usize) -> ApiResult<Option<Vec<u8>>> {
    let unreadable = |e: JsValue| ApiError::bad_json(format!("cannot read body: {e:?}"));
    let Some(stream) = req.inner().body() else {
        return Ok(Some(Vec::new()));
    };
    let reader = ReadableStreamDefaultReader::new(&stream).map_err(unreadable)?;
    let mut buf = Vec::new();
    let mut over = false;
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(unreadable)?;
        if Reflect::get(&chunk, &"done".into()).map_err(unreadable)?.as_bool().unwrap_or(true) {
            break;
        }
        let value = Reflect::get(&chunk, &"value".into()).map_err(unreadable)?;
        let Some(part) = value.dyn_ref::<Uint8Array>() else {
            return Err(ApiError::bad_json("body is not a byte stream"));
        };
        let len = part.length() as usize;
        if over || buf.len() + len > max {
            over = true;
            buf = Vec::new();
            continue;
        }
        let start = buf.len();
        buf.resize(start + len, 0);
        part.copy_to(&mut buf[start..]);
    }
    Ok((!over).then_some(buf))
}
