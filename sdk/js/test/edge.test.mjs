// The SDK against the real edge: the built worker (edge-worker/build, scripts/build-worker.sh)
// inside workerd through Miniflare, served on a loopback port, with a stand-in control plane that
// records what the worker's queue consumer forwards. Needs scripts/build-sdk-js.sh too.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startWorker, startSink, waitFor, experiment } from "../../../edge-worker/test/helpers.mjs";
import { createClient } from "../dist/index.js";
import { createLocalEvaluator } from "../dist/local.js";

let w, sink;
const CONFIG = {
  version: 7,
  experiments: [
    experiment("checkout", { version: 3 }),
    experiment("hero", {
      targeting: { country: { in: ["US", "FR"] } },
      ramp_pct: 60,
      variants: [
        { key: "plain", weight: 0.34, config_json: { title: "Hello" } },
        { key: "bold", weight: 0.33, config_json: { title: "HELLO" } },
        { key: "émoji", weight: 0.33, config_json: { title: "👋" } },
      ],
    }),
    experiment("layered_a", { layer: { key: "l1", start: 0, end: 5000 } }),
    experiment("layered_b", { layer: { key: "l1", start: 5000, end: 10000 }, salt: "other-salt" }),
    experiment("vip", { targeting: { $or: [{ id: { $inGroup: "vips" } }, { age: { $gte: 40 } }] } }),
    experiment("paused_one", { status: "paused" }),
  ],
  saved_groups: { vips: ["ü-7", "u-3", "用户-1"] },
};
const KEYS = CONFIG.experiments.map((e) => e.key);

/** A fetch that counts calls by path. */
/** An answer without its signatures: what a local evaluator (which holds no key) gives. */
function unsigned(body) {
  return { ...body, assignments: body.assignments.map(({ signature, ...a }) => a) };
}

function countingFetch() {
  const calls = [];
  const f = (url, init) => {
    calls.push({ path: new URL(url).pathname, body: init?.body });
    return fetch(url, init);
  };
  return { f, calls };
}

before(async () => {
  sink = await startSink();
  w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, UNSIGNED_EVENTS: undefined } });
  const pub = await w.publish(CONFIG);
  assert.equal(pub.status, 200, JSON.stringify(pub.body));
});
after(async () => {
  await w?.dispose();
  await sink?.close();
});

test("the client sends back the newest config version it was answered from (min_version), and an isolate behind it catches up", async () => {
  const { f, calls } = countingFetch();
  const client = createClient({ edgeUrl: w.url, unitId: "user-mv", fetch: f });
  assert.equal((await client.getVariant("checkout")).inExperiment, true);
  assert.equal(JSON.parse(calls[0].body).min_version, undefined, "nothing seen yet");
  await client.getVariant("hero");
  assert.equal(JSON.parse(calls[1].body).min_version, CONFIG.version);
  // Two isolates behind one address, as a location runs several: one was pushed the newer set,
  // the other holds the older one and finds the newer only in KV (a KV-only update).
  const newer = { ...CONFIG, version: CONFIG.version + 1, experiments: [...CONFIG.experiments, experiment("fresh_one")] };
  const [ahead, behind] = [await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url } }), await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, CONFIG_TTL_SECONDS: "60" } })];
  try {
    assert.equal((await ahead.publish(newer)).status, 200);
    assert.equal((await behind.publish(CONFIG)).status, 200);
    await behind.kv.put("configs", JSON.stringify(newer));
    // A load balancer: the client's n-th request goes to the n-th of `order`.
    const balanced = (order) => {
      let n = 0;
      return (url, init) => fetch(url.replace(w.url, order[n++ % order.length].url), init);
    };
    const fresh = createClient({ edgeUrl: w.url, unitId: "user-mv", fetch: balanced([behind]) });
    assert.equal((await fresh.getVariant("fresh_one")).reason, "unknown_experiment", "nothing to send back: the isolate's cached set");
    const roaming = createClient({ edgeUrl: w.url, unitId: "user-mv", fetch: balanced([ahead, behind]) });
    assert.equal((await roaming.getVariant("checkout")).inExperiment, true);
    const v = await roaming.getVariant("fresh_one");
    assert.equal(v.reason, "assigned", "answered from the version the client had seen, not the isolate's older one");
  } finally {
    await ahead.dispose();
    await behind.dispose();
  }
});

test("getAssignments is the edge's own answer, from one request, then from cache", async () => {
  const attributes = { country: "US", age: 41 };
  const { f, calls } = countingFetch();
  const client = createClient({ edgeUrl: w.url, unitId: "user-42", attributes, fetch: f });
  const mine = await client.getAssignments();
  const raw = await w.assign({ unit_id: "user-42", attributes, expose: false });
  assert.equal(raw.status, 200);
  assert.deepStrictEqual(mine, raw.body);
  assert.deepStrictEqual(await client.getAssignments(), raw.body, "cached");
  assert.equal(calls.length, 1);

  // Named experiments (a paused one and an unknown key included), in one request.
  const named = ["hero", "paused_one", "missing"];
  const client2 = createClient({ edgeUrl: w.url, unitId: "user-42", attributes, fetch: f });
  const got = await client2.getAssignments(named);
  const raw2 = await w.assign({ unit_id: "user-42", attributes, experiments: named, expose: false });
  assert.deepStrictEqual(got, raw2.body);
  assert.equal(calls.length, 2);

  // getVariant calls of one tick share one request.
  const client3 = createClient({ edgeUrl: w.url, unitId: "user-43", attributes, fetch: f });
  const variants = await Promise.all(KEYS.map((k) => client3.getVariant(k, { expose: false })));
  assert.equal(calls.length, 3, "one request for every experiment");
  assert.deepEqual(JSON.parse(calls[2].body).experiments.sort(), [...KEYS].sort());
  const raw3 = await w.assign({ unit_id: "user-43", attributes, experiments: KEYS, expose: false });
  assert.deepEqual(variants.map((v) => v.key), raw3.body.assignments.map((a) => a.variant_key));
  assert.deepEqual(variants.map((v) => v.inExperiment), raw3.body.assignments.map((a) => a.in_experiment));
  assert.equal(variants.find((v) => v.experiment === "paused_one").reason, "not_running");
});

test("without a unit id the edge mints one and the client keeps it", async () => {
  const client = createClient({ edgeUrl: w.url, persistUnit: false });
  const answer = await client.getAssignments(["checkout"]);
  assert.match(answer.unit_id, /^[0-9a-f-]{36}$/);
  assert.equal(client.unitId, answer.unit_id);
  const v = await client.getVariant("checkout", { expose: false });
  assert.equal(v.inExperiment, true);
});

test("exposures: deduplicated per unit, experiment and variant, batched, sent on flush, reaching the control plane", async () => {
  const { f, calls } = countingFetch();
  const client = createClient({ edgeUrl: w.url, unitId: "exp-unit-1", attributes: { country: "FR" }, fetch: f, batchSize: 50, flushIntervalMs: 60_000 });
  const a = await client.getVariant("checkout");
  for (let i = 0; i < 5; i++) await client.getVariant("checkout");
  for (let i = 0; i < 3; i++) client.logExposure("checkout");
  assert.equal(client.queued, 1, "one exposure however often it is shown");
  await client.getVariant("layered_a");
  await client.getVariant("layered_b");
  assert.equal(client.queued, 2, "the unit is in exactly one of two exclusive layered experiments");
  assert.ok(client.logMetric("checkout", "order_value", 12.5));
  assert.ok(client.logConversion("checkout", "purchase"));
  assert.equal(client.logMetric("paused_one", "order_value", 1), false, "not in the experiment: nothing logged");
  assert.equal(calls.filter((c) => c.path === "/v1/events").length, 0, "batched: nothing sent before flush");
  await client.flush();
  const sent = calls.filter((c) => c.path === "/v1/events");
  assert.equal(sent.length, 1, "one request for the batch");
  assert.equal(JSON.parse(sent[0].body).events.length, 4);
  assert.equal(client.queued, 0);

  const mine = (e) => e.unit_id === "exp-unit-1";
  const delivered = await waitFor(() => {
    const got = sink.delivered().filter(mine);
    return got.length >= 4 && got;
  }, { what: "the events at the control plane" });
  const exposures = delivered.filter((e) => e.kind === "exposure");
  assert.equal(exposures.length, 2);
  assert.deepEqual(exposures.find((e) => e.experiment === "checkout"), {
    ...exposures.find((e) => e.experiment === "checkout"),
    kind: "exposure", unit_id: "exp-unit-1", variant_key: a.key, attributes: { country: "FR" },
  });
  assert.ok(delivered.some((e) => e.kind === "metric" && e.metric === "order_value" && e.value === 12.5 && e.variant_key === a.key));
  assert.ok(delivered.some((e) => e.kind === "conversion" && e.metric === "purchase"));
  assert.equal(new Set(delivered.map((e) => e.event_id)).size, delivered.length);

  // Exposures of the edge itself are off (expose=false): nothing but ours for this unit.
  await client.getVariant("checkout");
  await client.flush();
  assert.equal(calls.filter((c) => c.path === "/v1/events").length, 1, "nothing new to send");
});

test("a full batch goes out by itself; the timer sends the rest", async () => {
  const { f, calls } = countingFetch();
  const client = createClient({ edgeUrl: w.url, unitId: "batch-unit", fetch: f, batchSize: 3, flushIntervalMs: 100 });
  await client.getVariant("checkout", { expose: false });
  client.logMetric("checkout", "m", 1);
  client.logMetric("checkout", "m", 2);
  assert.equal(calls.filter((c) => c.path === "/v1/events").length, 0);
  client.logMetric("checkout", "m", 3);
  await waitFor(() => calls.filter((c) => c.path === "/v1/events").length === 1, { what: "the full batch" });
  client.logMetric("checkout", "m", 4);
  await waitFor(() => calls.filter((c) => c.path === "/v1/events").length === 2, { what: "the timer's flush" });
  await waitFor(() => sink.delivered().filter((e) => e.unit_id === "batch-unit").length === 4, { what: "4 metrics delivered" });
});

test("fail-safe: a dead edge gives the control, never an exception", async () => {
  const port = await new Promise((r) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => r(p));
    });
  });
  const errors = [];
  const client = createClient({ edgeUrl: `http://127.0.0.1:${port}`, unitId: "u1", timeoutMs: 300, retries: 1, onError: (e) => errors.push(e) });
  const v = await client.getVariant("checkout");
  assert.deepEqual(v, { experiment: "checkout", key: "control", config: null, inExperiment: false, reason: "fail_safe" });
  assert.equal((await client.getVariant("hero", { fallback: "plain" })).key, "plain");
  const all = await client.getAssignments(["checkout", "hero"]);
  assert.deepEqual(all.assignments.map((a) => [a.variant_key, a.in_experiment, a.reason]), [["control", false, "fail_safe"], ["control", false, "fail_safe"]]);
  assert.equal(client.logExposure("checkout"), false);
  assert.equal(client.logMetric("checkout", "m", 1), false);
  await client.flush();
  await client.close();
  assert.ok(errors.length > 0, "errors are reported to onError, not thrown");

  // An edge that does not answer in time counts as down too.
  const hang = net.createServer(() => {}).listen(0, "127.0.0.1");
  await new Promise((r) => hang.on("listening", r));
  const slow = createClient({ edgeUrl: `http://127.0.0.1:${hang.address().port}`, unitId: "u1", timeoutMs: 200, retries: 0 });
  const t0 = Date.now();
  assert.equal((await slow.getVariant("checkout")).reason, "fail_safe");
  assert.ok(Date.now() - t0 < 2000);
  hang.close();
});

test("5xx and network errors are retried with backoff", async () => {
  let n = 0;
  const flaky = (url, init) => (++n === 1 ? Promise.reject(new TypeError("fetch failed")) : n === 2 ? Promise.resolve(new Response("{}", { status: 503 })) : fetch(url, init));
  const client = createClient({ edgeUrl: w.url, unitId: "retry-unit", fetch: flaky, retries: 2 });
  const v = await client.getVariant("checkout", { expose: false });
  assert.equal(n, 3);
  assert.equal(v.inExperiment, true);
  assert.notEqual(v.reason, "fail_safe");
  // Events that could not be sent stay queued for the next flush.
  let down = true;
  const events = [];
  const client2 = createClient({
    edgeUrl: w.url, unitId: "retry-unit", retries: 0, flushIntervalMs: 60_000,
    fetch: (url, init) => {
      if (new URL(url).pathname === "/v1/events") {
        if (down) return Promise.reject(new TypeError("offline"));
        events.push(...JSON.parse(init.body).events);
      }
      return fetch(url, init);
    },
  });
  await client2.getVariant("checkout", { expose: false });
  client2.logConversion("checkout");
  await client2.flush();
  assert.equal(client2.queued, 1, "kept after a failed send");
  down = false;
  await client2.flush();
  assert.equal(client2.queued, 0);
  assert.equal(events.length, 1);
});

test("local evaluation equals the edge for 200 random units, non-ASCII ids included", async () => {
  const local = await createLocalEvaluator(CONFIG);
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const alphabet = ["a", "Z", "7", "-", "é", "ü", "用", "户", "👋", "ß", "Ω", " ", "ä"];
  const countries = ["US", "FR", "DE", "JP", undefined];
  const diffs = [];
  for (let i = 0; i < 200; i++) {
    const unit = i < 3 ? ["ü-7", "用户-1", "u-3"][i] : Array.from({ length: 1 + Math.floor(rnd() * 20) }, () => pick(alphabet)).join("");
    const attributes = {};
    const c = pick(countries);
    if (c) attributes.country = c;
    if (rnd() < 0.5) attributes.age = Math.floor(rnd() * 80);
    attributes.id = unit;
    const raw = await w.assign({ unit_id: unit, attributes, experiments: KEYS, expose: false });
    assert.equal(raw.status, 200, JSON.stringify(raw.body));
    const mine = local.assignAll(unit, attributes, KEYS);
    try {
      assert.deepStrictEqual(mine, unsigned(raw.body));
    } catch (e) {
      diffs.push(`${JSON.stringify(unit)}: ${e.message}`);
    }
    // Every running experiment, as the edge lists them without `experiments`.
    if (i % 20 === 0) {
      const rawAll = await w.assign({ unit_id: unit, attributes, expose: false });
      assert.deepStrictEqual(local.assignAll(unit, attributes), unsigned(rawAll.body));
    }
  }
  assert.deepEqual(diffs, []);
  local.dispose();
});

test("bandits: the sticky document of an answer keeps the unit's variant when weights move", async () => {
  const bandit = (version, weights) => experiment("ranker", {
    type: "bandit", version,
    variants: [
      { key: "a", weight: weights[0], config_json: {} },
      { key: "b", weight: weights[1], config_json: {} },
    ],
  });
  assert.equal((await w.publish({ ...CONFIG, version: 8, experiments: [...CONFIG.experiments, bandit(1, [0.5, 0.5])] })).status, 200);
  const first = createClient({ edgeUrl: w.url, unitId: "sticky-unit" });
  const v1 = await first.getVariant("ranker", { expose: false });
  assert.equal(v1.inExperiment, true);
  assert.ok(first.sticky, "the edge answered with a sticky document");
  // Every new unit now gets the other arm; this one keeps its own through the document.
  // The remembered arm keeps a little weight: an arm at zero is served to no one, remembered or not.
  const other = v1.key === "a" ? [0.01, 0.99] : [0.99, 0.01];
  assert.equal((await w.publish({ ...CONFIG, version: 9, experiments: [...CONFIG.experiments, bandit(2, other)] })).status, 200);
  const later = createClient({ edgeUrl: w.url, unitId: "sticky-unit", sticky: first.sticky });
  const v2 = await later.getVariant("ranker", { expose: false });
  assert.equal(v2.key, v1.key);
  assert.equal(v2.reason, "sticky");
  const fresh = createClient({ edgeUrl: w.url, unitId: "sticky-unit" });
  assert.notEqual((await fresh.getVariant("ranker", { expose: false })).key, v1.key, "without it the weights decide");
});

test("attributes the control plane cannot store leave the exposure, not the exposure itself", async () => {
  const client = createClient({ edgeUrl: w.url, unitId: "nul-unit", attributes: { note: "a\u0000b" } });
  assert.equal((await client.getVariant("checkout")).inExperiment, true);
  await client.flush();
  const e = await waitFor(() => sink.delivered().find((x) => x.unit_id === "nul-unit"), { what: "the exposure" });
  assert.equal(e.kind, "exposure");
  assert.equal(e.attributes, undefined);
});

test("bandits: a remembered arm the weights no longer serve is given up", async () => {
  const bandit = (version, weights) => experiment("ranker0", {
    type: "bandit",
    version,
    variants: ["a", "b"].map((key, i) => ({ key, name: key, weight: weights[i], config_json: {} })),
  });
  assert.equal((await w.publish({ ...CONFIG, version: 10, experiments: [...CONFIG.experiments, bandit(1, [0.5, 0.5])] })).status, 200);
  const first = createClient({ edgeUrl: w.url, unitId: "sticky-unit-0" });
  const v1 = await first.getVariant("ranker0", { expose: false });
  assert.equal((await w.publish({ ...CONFIG, version: 11, experiments: [...CONFIG.experiments, bandit(2, v1.key === "a" ? [0, 1] : [1, 0])] })).status, 200);
  const later = createClient({ edgeUrl: w.url, unitId: "sticky-unit-0", sticky: first.sticky });
  const v2 = await later.getVariant("ranker0", { expose: false });
  assert.notEqual(v2.key, v1.key);
  assert.equal(v2.reason, "assigned");
});
