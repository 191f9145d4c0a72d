// The worker's JavaScript entry (worker-build's CUSTOM_SHIM template: it fills in the
// $SNIPPET_* placeholders and bundles this with wasm-bindgen's glue into build/worker/shim.mjs).
//
// Two things happen here rather than in Rust, because they are cheaper on this side:
// - GET /v1/assign, the hot route, calls the engine directly (src/fast.rs) with the query, the
//   cookie and the origin as strings and builds the response from one string: no class instance,
//   proxy, Headers-by-crossing or promise per request. Anything else, and any request the fast
//   path declines (cold isolate, config due for its KV re-read, no queue bound), goes to the
//   workers-rs handler, which answers identically.
// - Exposures of several requests travel in one queue message: each answer's message is held for
//   at most FLUSH_MS in this isolate and sent with the others as one text message, one envelope
//   per line (the consumer, src/events.rs, reads every line). The request that starts a batch
//   keeps the isolate alive until it is sent (waitUntil); the others only append to it, so no
//   promise crosses requests.
import * as imports from "./index_bg.js";
import wasmModule from "./index.wasm";
$SNIPPET_JS_IMPORTS

const instance = new WebAssembly.Instance(wasmModule, {
  "./index_bg.js": imports,
  $SNIPPET_WASM_IMPORTS
});
imports.__wbg_set_wasm(instance.exports);
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
function isAssign(url, queryAt) {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  if (start < 0) return false;
  let end = queryAt < 0 ? url.length : queryAt;
  while (end > start + 1 && url.charCodeAt(end - 1) === 47) end--;
  return end - start === 10 && url.startsWith("/v1/assign", start);
}

/** Mirrors src/fast.rs NEW_HEAD. */
const NEW_HEAD = 1 << 16;
let lastInit = null;

function fastAssign(request, env, ctx) {
  const url = request.url;
  const queryAt = url.indexOf("?");
  if (!isAssign(url, queryAt)) return undefined;
  const query = queryAt < 0 ? "" : url.slice(queryAt + 1);
  const headers = request.headers;
  const answer = imports.fast_assign_get(
    query,
    // The unit id (without a unit_id) and the sticky assignments of bandits live in cookies.
    headers.get("cookie") ?? undefined,
    headers.get("origin") ?? undefined,
    url.startsWith("https:"),
    Date.now(),
    env.EVENTS !== undefined,
  );
  if (answer === 0) return undefined;
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
  const init = lastInit;
  const body = imports.fast_take_body();
  const bytes = imports.fast_exposures_bytes();
  if (bytes > 0) expose(imports.fast_take_exposures(), bytes, env, ctx);
  return new Response(body, init);
}

export default {
  fetch(request, env, ctx) {
    // ASSIGN_FAST_PATH=off sends everything through workers-rs (same answers, slower): an
    // operator's switch should the two roads ever be suspected of differing.
    if (request.method === "GET" && env.ASSIGN_FAST_PATH !== "off") {
      const response = fastAssign(request, env, ctx);
      if (response !== undefined) return response;
    }
    return imports.fetch(request, env, ctx);
  },
  queue(batch, env, ctx) {
    return imports.queue(batch, env, ctx);
  },
};
