// Shared by the edge worker's tests: run the built worker (edge-worker/build, from
// scripts/build-worker.sh) inside workerd through Miniflare's Node API, and stand in for the
// control plane's batch endpoint with a local HTTP server.
import http from "node:http";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BUILD = path.join(ROOT, "edge-worker/build");
export const PUBLISH_TOKEN = "test-publish-token";
export const INGEST_TOKEN = "test-ingest-token";
/** The worker's SIGNING_KEYS in these tests (litmus_shared::signing: 32 hex digits). */
export const TEST_SIGNING_KEY = "6c69746d75732d746573742d6b657931";
export const QUEUE = "litmus-events";
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** Event ids are UUIDv7. */
export const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The Unix milliseconds a UUIDv7 carries. */
export function uuid7Millis(id) {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/** The built worker's modules, as Miniflare takes them (the layout scripts/build-worker.sh makes:
 * index.js re-exports worker/shim.mjs, our entry, which instantiates worker/index.wasm). */
export function workerModules(build = BUILD) {
  const modules = [
    { type: "ESModule", path: path.join(build, "index.js") },
    { type: "ESModule", path: path.join(build, "worker/shim.mjs") },
    { type: "CompiledWasm", path: path.join(build, "worker/index.wasm") },
  ];
  for (const m of modules) {
    if (!existsSync(m.path)) throw new Error(`${m.path} is missing: run scripts/build-worker.sh first`);
  }
  return modules;
}

/** Starts the worker. `queue: false` leaves EVENTS unbound (the wait_until fallback); `port`
 * also serves it on 127.0.0.1:port (for callers outside this process, e.g. the control plane).
 * `retryDelay` is the shortest redelivery delay in seconds (the worker backs off from there).
 * `deadLetterSink`: a URL to which a second (JS) worker POSTs what reaches the dead-letter queue,
 * as `{"events":[...]}`, so that tests can see it. `build`: another build's directory, laid out
 * as edge-worker/build. */
export async function startWorker({ bindings = {}, queue = true, retryDelay = 0, maxRetries = 5, port, deadLetterSink, cf = false, build = BUILD } = {}) {
  const options = {
    modulesRoot: build,
    modules: workerModules(build),
    compatibilityDate: "2026-11-01",
    kvNamespaces: { CONFIG: "config-" + Math.random().toString(16).slice(2) },
    bindings: {
      PUBLISH_TOKEN,
      INGEST_TOKEN,
      CONFIG_TTL_SECONDS: "5",
      ALLOWED_ORIGINS: "*",
      RETRY_MIN_SECONDS: String(retryDelay),
      SIGNING_KEYS: TEST_SIGNING_KEY,
      // These tests are about transport (queueing, redelivery, limits): events go without a
      // signature, as a deployment migrating its clients allows. trust.test.mjs runs the default.
      UNSIGNED_EVENTS: "accept",
      // Miniflare gives every request a made-up `request.cf` (Austin, US); tests that send their
      // own country mean it. trust.test.mjs runs the default, with a `cf` of its own.
      CLIENT_ATTRIBUTES: "trust",
      ...bindings,
    },
    // `false`: Miniflare's placeholder `request.cf`; an object: every request's.
    cf,
  };
  if (port !== undefined) {
    options.host = "127.0.0.1";
    options.port = port;
  }
  if (queue) {
    options.queueProducers = { EVENTS: QUEUE, EVENTS_DLQ: `${QUEUE}-dlq` };
    options.queueConsumers = {
      [QUEUE]: { maxBatchSize: 100, maxBatchTimeout: 0.2, maxRetries, retryDelay, deadLetterQueue: `${QUEUE}-dlq` },
    };
  }
  for (const [k, v] of Object.entries(options.bindings)) {
    if (v === undefined) delete options.bindings[k];
  }
  const all = deadLetterSink && queue ? { workers: [{ name: "edge", ...options }, deadLetterReader(deadLetterSink)] } : options;
  const mf = new Miniflare(convertV4MiniflareOptions(all));
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const kv = await mf.getKVNamespace("CONFIG");
  const call = (p, init) => mf.dispatchFetch(new URL(p, "http://edge.test").toString(), init);
  const json = async (p, init) => {
    const res = await call(p, init);
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: res.status, headers: res.headers, body };
  };
  const publish = (set, token = PUBLISH_TOKEN) =>
    json("/v1/admin/config", {
      method: "PUT",
      headers: token ? { authorization: `Bearer ${token}`, "content-type": "application/json" } : {},
      body: typeof set === "string" ? set : JSON.stringify(set),
    });
  const assign = (body, headers = {}) =>
    json("/v1/assign", { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { mf, url, kv, call, json, publish, assign, dispose: () => mf.dispose() };
}

/** `count` isolates of the worker, as a Cloudflare location runs several: one workerd, one script
 * under `count` names, each with its own memory (its own cached config set) and its own loopback
 * socket, all bound to the same CONFIG namespace. A set published through one reaches the others
 * only through KV, as a KV-only update reaches every isolate in production. The first consumes
 * the queue. Returns their URLs, the KV namespace and `dispose`. */
export async function startIsolates({ count = 2, bindings = {} } = {}) {
  const socket = { host: "127.0.0.1", port: 0 };
  const namespace = "config-" + Math.random().toString(16).slice(2);
  const workers = Array.from({ length: count }, (_, i) => ({
    name: `edge-${i}`,
    modulesRoot: BUILD,
    modules: workerModules(),
    compatibilityDate: "2026-11-01",
    kvNamespaces: { CONFIG: namespace },
    queueProducers: { EVENTS: QUEUE, EVENTS_DLQ: `${QUEUE}-dlq` },
    ...(i === 0 ? { queueConsumers: { [QUEUE]: { maxBatchSize: 100, maxBatchTimeout: 0.2, maxRetries: 100, retryDelay: 1 } } } : {}),
    bindings: Object.fromEntries(Object.entries({
      PUBLISH_TOKEN, INGEST_TOKEN, CONFIG_TTL_SECONDS: "5", ALLOWED_ORIGINS: "*", SIGNING_KEYS: TEST_SIGNING_KEY,
      CLIENT_ATTRIBUTES: "trust", ...bindings,
    }).filter(([, v]) => v !== undefined)),
    unsafeDirectSockets: [socket],
  }));
  const mf = new Miniflare(convertV4MiniflareOptions({ host: "127.0.0.1", port: 0, cf: false, workers }));
  await mf.ready;
  const urls = [];
  for (let i = 0; i < count; i++) urls.push((await mf.unsafeGetDirectURL(`edge-${i}`)).toString().replace(/\/$/, ""));
  const kv = await mf.getKVNamespace("CONFIG", "edge-0");
  return { mf, urls, kv, dispose: () => mf.dispose() };
}

/** A stand-in for the control plane: records POST /api/v1/events/batch; `statuses` are answered
 * in order (then 202). */
/** A worker that consumes the dead-letter queue and POSTs each batch to `sink`. */
function deadLetterReader(sink) {
  return {
    name: "dead-letter-reader",
    modules: true,
    script: `export default {
      async queue(batch, env) {
        await fetch(env.SINK + "/dead-letters", { method: "POST", body: JSON.stringify({ events: batch.messages.map((m) => m.body) }) });
        batch.ackAll();
      },
    };`,
    compatibilityDate: "2026-11-01",
    bindings: { SINK: sink },
    queueConsumers: { [`${QUEUE}-dlq`]: { maxBatchSize: 100, maxBatchTimeout: 0.2 } },
  };
}

/** What the control plane makes of an exposure group (`litmus_shared::exposures`, spec in the
 * edge README), written anew from the spec: one exposure per pair, numbered after `events`. */
export function expandGroup(g) {
  return g.exposures.map(([experiment, variant_key], i) => ({
    kind: "exposure", experiment, unit_id: g.unit_id, variant_key, event_id: nthId(g.id, i), ts: g.ts,
    ...(g.attributes ? { attributes: g.attributes } : {}),
  }));
}

function nthId(id, i) {
  const tail = id.slice(-3);
  if (!/^[0-9a-fA-F]{3}$/.test(tail)) return `${id}.${i}`;
  return id.slice(0, -3) + (parseInt(tail, 16) ^ (i & 0xfff)).toString(16).padStart(3, "0");
}

export async function startSink({ statuses = [], port = 0, refuse = () => null } = {}) {
  const received = [];
  const pending = [...statuses];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      let parsed = null;
      try {
        parsed = JSON.parse(body);
      } catch {}
      // Like the control plane: events `refuse` names a reason for are rejected by index, the
      // others accepted; 422 when every event is refused.
      const events = [...(parsed?.events ?? []), ...(parsed?.exposures ?? []).flatMap(expandGroup)];
      const rejected = events.flatMap((e, index) => {
        const message = refuse(e);
        return message ? [{ index, code: "not_found", field: "experiment", message }] : [];
      });
      const allRefused = events.length > 0 && rejected.length === events.length;
      // The control plane's MAX_BATCH_EVENTS: a bigger batch is a 413, stored nowhere.
      const tooMany = events.length > 10_000;
      const status = pending.length ? pending.shift() : tooMany ? 413 : allRefused ? 422 : 202;
      received.push({
        method: req.method, url: req.url, authorization: req.headers.authorization, body: parsed, events, status, at: Date.now(),
        messages: Number(req.headers["x-litmus-queue-messages"] ?? NaN),
      });
      res.writeHead(status, { "content-type": "application/json" });
      const answer =
        status === 422
          ? { error: { code: "validation_failed", message: "all events were rejected" }, rejected }
          : status < 300
            ? { accepted: events.length - rejected.length, duplicates: 0, ...(rejected.length ? { rejected } : {}) }
            : { error: { code: "unavailable", message: "down" } };
      res.end(JSON.stringify(answer));
    });
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    port: server.address().port,
    received,
    /** Every event body the sink answered 2xx for (refused ones excepted). */
    delivered: () => received.filter((r) => r.status < 300).flatMap((r) => r.events.filter((e) => !refuse(e))),
    all: () => received.flatMap((r) => r.events),
    setStatuses: (s) => pending.splice(0, pending.length, ...s),
    close: () => new Promise((r) => server.close(r)),
  };
}

export async function waitFor(predicate, { timeout = 15000, interval = 50, what = "condition" } = {}) {
  const start = Date.now();
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() - start > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A two-variant running experiment. */
export function experiment(key, extra = {}) {
  return {
    key,
    status: "running",
    ramp_pct: 100,
    version: 1,
    unit_type: "user_id",
    targeting: {},
    variants: [
      { key: "control", name: "Control", weight: 0.5, config_json: { arm: 0 } },
      { key: "treatment", name: "Treatment", weight: 0.5, config_json: { arm: 1 } },
    ],
    ...extra,
  };
}
