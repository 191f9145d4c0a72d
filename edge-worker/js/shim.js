// The worker's JavaScript entry (worker-build's CUSTOM_SHIM template: it fills in the
// $SNIPPET_* placeholders and bundles this with wasm-bindgen's glue into build/worker/shim.mjs).
//
// Two things happen here rather than in Rust, because they are cheaper on this side:
// - /v1/assign, the hot route (GET from browsers, POST from SDKs and services), calls the engine
//   directly (src/fast.rs) with the query or the body (and the cookie and the origin when they
//   matter) written into wasm memory, and builds the response from the body left there: no class
//   instance, proxy, Headers-by-crossing or string per request, and no promise but a POST's body
//   read. Anything else, and any request the fast path declines (cold isolate, config due for its
//   KV re-read or older than the client's min_version, no queue bound, a body that is not JSON),
//   goes to the workers-rs handler, which answers identically.
// - Exposures of several requests travel in one queue message: each answer's message is held for
//   at most FLUSH_MS in this isolate and sent with the others as one text message, one envelope
//   per line (the consumer, src/events.rs, reads every line). The request that starts a batch
//   keeps the isolate alive until it is sent (waitUntil); the others only append to it, so no
//   promise crosses requests.
import * as imports from "./index_bg.js";
import wasmModule from "./index.wasm";
$SNIPPET_JS_IMPORTS

const wasmImports = () => ({
  "./index_bg.js": imports,
  $SNIPPET_WASM_IMPORTS
});
const instance = new WebAssembly.Instance(wasmModule, wasmImports());
imports.__wbg_set_wasm(instance.exports);
// After a trap (a Rust panic) workers-rs has wasm-bindgen's glue make a new instance on its next
// call, through these three globals, which worker-build's own entry defines. Without them that
// call throws a ReferenceError, and so does every later one: the isolate would answer 500 to
// everything until replaced (test/reinit.test.mjs).
globalThis.wasmModule = wasmModule;
globalThis.wasmInstance = instance;
globalThis.__wbg_get_imports = wasmImports;
instance.exports.__wbindgen_start?.();

/** How long an exposure waits for others to share its queue message. */
const FLUSH_MS = 50;
/** Queue messages take 128 KB; a batch is sent once its UTF-8 size would pass this. */
const FLUSH_BYTES = 96 * 1024;

let pending = [];
let pendingBytes = 0;
let flushScheduled = false;

function expose(message, bytes, env, ctx) {
  if (pendingBytes > 0 && pendingBytes + bytes + 1 > FLUSH_BYTES) ctx.waitUntil(flush(env));
  pending.push(message);
  pendingBytes += bytes + 1;
  if (!flushScheduled) {
    flushScheduled = true;
    ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, FLUSH_MS)).then(() => flush(env)));
  }
}

async function flush(env) {
  const batch = pending;
  pending = [];
  pendingBytes = 0;
  flushScheduled = false;
  if (batch.length === 0) return;
  try {
    await env.EVENTS.send(batch.join("\n"), { contentType: "text" });
  } catch (e) {
    // As the workers-rs route does for assignment exposures: logged, the answers already went out.
    console.error(`enqueueing exposures failed: ${e}`);
  }
}

/** `/v1/assign` (trailing slashes ignored) of an absolute URL, without parsing the URL. */
function isAssign(url) {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  if (start < 0) return false;
  const queryAt = url.indexOf("?");
  let end = queryAt < 0 ? url.length : queryAt;
  while (end > start + 1 && url.charCodeAt(end - 1) === 47) end--;
  return end - start === 10 && url.startsWith("/v1/assign", start);
}

// Mirrors of src/fast.rs's constants.
const NEW_HEAD = 1 << 16;
const NEED_HEADERS = 1;
const NEED_CF = 2;
const REFRESH = 1 << 17;
const ABSENT = -1;
const NOT_READ = -2;

// Views on wasm memory, made again when it grows (growing detaches the old buffer).
let memory = instance.exports.memory;
let bytes = new Uint8Array(memory.buffer);
let words = new Uint32Array(memory.buffer);
function fresh() {
  if (bytes.byteLength === 0) {
    bytes = new Uint8Array(memory.buffer);
    words = new Uint32Array(memory.buffer);
  }
}
/** Word index of src/fast.rs's OUT: body address, body length, exposures address, length. */
let OUT = imports.fast_out() >>> 2;

// After a trap (a Rust panic) workers-rs has wasm-bindgen's glue replace the instance on its next
// call, and the new instance counts itself in __worker_init_state. Answers are then written into
// the new instance's memory: views on the old one would hand out the last answer of the old
// instance, another unit's, to every request. `replaced()` notices, takes the new memory, and
// sends the request at hand to workers-rs.
const initState = globalThis.__worker_init_state;
let instanceSeen = initState?.instanceId;
function replaced() {
  if (initState?.instanceId === instanceSeen) return false;
  instanceSeen = initState?.instanceId;
  memory = imports.fast_memory();
  bytes = new Uint8Array(memory.buffer);
  words = new Uint32Array(memory.buffer);
  OUT = imports.fast_out() >>> 2;
  inputCap = 0;
  return true;
}
let inputAt = 0;
let inputCap = 0;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Writes `s` as UTF-8 at `at`, where 3 bytes per UTF-16 unit fit; returns the bytes written. */
function put(s, at) {
  // A local: the loop must not reload a module binding on every character (profiled: 5 % of
  // the isolate at 1 experiment with it, under 1 % without).
  const b = bytes;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) return i + encoder.encodeInto(s.slice(i), b.subarray(at + i, at + 3 * n)).written;
    b[at + i] = c;
  }
  return n;
}

/** One call of src/fast.rs's fast_assign. `query`: the query (a string), or the body of a POST
 * (its bytes); `cookie` and `origin`: a string, null (the request has none) or undefined (not
 * read); `cf`: the request's `cf`, null (none) or undefined (not read). */
function callFast(query, cookie, origin, https, bound, cf) {
  const post = typeof query !== "string";
  const room = (post ? query.length : 3 * query.length) + 3 * ((cookie?.length ?? 0) + (origin?.length ?? 0));
  if (room > inputCap) {
    inputCap = Math.max(room, 2 * inputCap, 4096);
    inputAt = imports.fast_input(inputCap);
  }
  if (replaced()) return 0;
  fresh();
  let q;
  if (post) {
    bytes.set(query, inputAt);
    q = query.length;
  } else q = put(query, inputAt);
  let at = inputAt + q;
  let c = NOT_READ;
  if (cookie === null) c = ABSENT;
  else if (cookie !== undefined) at += c = put(cookie, at);
  let o = NOT_READ;
  if (origin === null) o = ABSENT;
  else if (origin !== undefined) o = put(origin, at);
  const answer = imports.fast_assign(q, c, o, https, Date.now(), bound, cf, post);
  return replaced() ? 0 : answer;
}

let lastInit = null;
// Set once a request that named its unit still needed its headers (ALLOWED_ORIGINS is a list, or
// a sticky experiment reads its cookie): from then on they are read up front, not on a second call.
let headersWanted = false;
// Set once an answer needed `request.cf` (targeting on country, asn…): then it is passed up front.
let cfWanted = false;

/** The answer to /v1/assign from src/fast.rs, or undefined: the workers-rs road. `url`: the
 * request's (read once: each read of `request.url` makes a new string); `body`: a POST's bytes
 * (undefined for a GET, whose query is read from the URL). */
function fastAssign(request, url, env, ctx, body) {
  const post = body !== undefined;
  const query = post ? body : url.slice(url.indexOf("?") + 1 || url.length);
  const https = url.startsWith("https:");
  const bound = env.EVENTS !== undefined;
  // Most service calls name their unit: then the engine says whether the cookie (the browser's
  // unit id, sticky assignments), the origin (a CORS list) or `request.cf` (targeting on country
  // and the like) matter, and they are read only if they do. A browser's call without a unit id reads them at once.
  let answer = NEED_HEADERS;
  // (A body is not searched for its unit: it is tried as if it named one, and a body that did
  // not leaves `headersWanted` as it was.)
  if (!headersWanted && (post || query.includes("unit_id="))) {
    answer = callFast(query, undefined, undefined, https, bound, cfWanted ? (request.cf ?? null) : undefined);
    if (answer === NEED_CF) {
      cfWanted = true;
      answer = callFast(query, undefined, undefined, https, bound, request.cf ?? null);
    }
    if (answer === NEED_HEADERS && !post) headersWanted = true;
  }
  if (answer === NEED_HEADERS) {
    const headers = request.headers;
    answer = callFast(query, headers.get("cookie"), headers.get("origin"), https, bound, request.cf ?? null);
  }
  if (answer === 0 || answer === NEED_HEADERS || answer === NEED_CF) return undefined;
  // The set is past its TTL: this request re-reads it after answering, the others go on from it.
  if (answer & REFRESH) ctx.waitUntil(imports.fast_refresh(env));
  if (answer & NEW_HEAD) {
    // "{status}\n{name}: {value}\n...": most answers share one head, parsed once.
    const lines = imports.fast_take_head().split("\n");
    const headers = new Headers([["content-type", "application/json"]]);
    for (let i = 1; i < lines.length - 1; i++) {
      const colon = lines[i].indexOf(": ");
      headers.append(lines[i].slice(0, colon), lines[i].slice(colon + 2));
    }
    lastInit = { status: Number(lines[0]), headers };
  }
  fresh();
  const exposures = words[OUT + 3];
  if (exposures > 0) {
    const at = words[OUT + 2];
    expose(decoder.decode(bytes.subarray(at, at + exposures)), exposures, env, ctx);
  }
  // The body stays in wasm memory: the Response copies it from this view, with no string made
  // and encoded again on the way.
  const at = words[OUT];
  return new Response(bytes.subarray(at, at + words[OUT + 1]), lastInit);
}

/** src/assign.rs's MAX_BODY_BYTES: a longer POST takes the workers-rs road, which refuses it. */
const MAX_BODY_BYTES = 64 * 1024;

/** POST /v1/assign: the body is read here as bytes, which go into wasm memory as they are
 * (bounded by its declared length: one without, e.g. chunked, goes to workers-rs unread), and
 * answered like a GET. */
function assignPost(request, url, env, ctx) {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (!(declared <= MAX_BODY_BYTES)) return imports.fetch(request, env, ctx);
  return request.arrayBuffer().then((buffer) => {
    const body = new Uint8Array(buffer);
    // The body is spent: workers-rs gets a request carrying the bytes read.
    return fastAssign(request, url, env, ctx, body) ?? imports.fetch(new Request(request, { body }), env, ctx);
  });
}

export default {
  fetch(request, env, ctx) {
    // ASSIGN_FAST_PATH=off sends everything through workers-rs (same answers, slower): an
    // operator's switch should the two roads ever be suspected of differing.
    const method = request.method;
    if (method !== "GET" && method !== "POST") return imports.fetch(request, env, ctx);
    const url = request.url;
    if (env.ASSIGN_FAST_PATH !== "off" && isAssign(url)) {
      if (method === "POST") return assignPost(request, url, env, ctx);
      const response = fastAssign(request, url, env, ctx);
      if (response !== undefined) return response;
    }
    return imports.fetch(request, env, ctx);
  },
  queue(batch, env, ctx) {
    return imports.queue(batch, env, ctx);
  },
};
