// Exposures and client events reach the control plane's batch endpoint (a local stand-in here)
// through the EVENTS queue, with the ingest token, edge-minted event ids, and redelivery while the
// control plane fails.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSink, waitFor, sleep, experiment, INGEST_TOKEN, UUID7, uuid7Millis } from "./helpers.mjs";

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

const postEvents = (w, events, extra = {}) =>
  w.json("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ events }), ...extra });

describe("through the queue", () => {
  let w, sink;
  before(async () => {
    sink = await startSink();
    w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url } });
    await w.publish({
      version: 1,
      experiments: [experiment("checkout"), experiment("nobody", { ramp_pct: 0 }), experiment("paused_one", { status: "paused" })],
    });
  });
  after(async () => {
    await w?.dispose();
    await sink?.close();
  });

  test("every assignment served in the experiment becomes one exposure at the batch endpoint", async () => {
    const res = await w.assign({ unit_id: "exp-unit-1", experiments: ["checkout", "nobody", "paused_one", "unknown"] });
    assert.equal(res.status, 200);
    const served = res.body.assignments.find((a) => a.experiment === "checkout");
    assert.equal(served.in_experiment, true);
    const exposures = await waitFor(() => {
      const got = sink.delivered().filter((e) => e.unit_id === "exp-unit-1");
      return got.length ? got : null;
    }, { what: "the exposure" });
    await sleep(500); // anything else would have arrived by now
    const all = sink.delivered().filter((e) => e.unit_id === "exp-unit-1");
    assert.equal(all.length, 1, `only the in-experiment assignment is an exposure: ${JSON.stringify(all)}`);
    const [e] = exposures;
    assert.equal(e.kind, "exposure");
    assert.equal(e.experiment, "checkout");
    assert.equal(e.variant_key, served.variant_key);
    assert.match(e.event_id, UUID7);
    assert.ok(Math.abs(uuid7Millis(e.event_id) - Date.now()) < 60_000, `${e.event_id} carries the time it was minted`);
    assert.match(e.ts, RFC3339);
    const req = sink.received.find((r) => r.events.some((x) => x.unit_id === "exp-unit-1"));
    assert.equal(req.method, "POST");
    assert.equal(req.url, "/api/v1/events/batch");
    assert.equal(req.authorization, `Bearer ${INGEST_TOKEN}`);
  });

  test("GET /v1/assign exposes too; each exposure gets its own event id", async () => {
    await w.json("/v1/assign?unit_id=exp-unit-2&experiment=checkout");
    await w.json("/v1/assign?unit_id=exp-unit-2&experiment=checkout");
    const got = await waitFor(() => {
      const e = sink.delivered().filter((x) => x.unit_id === "exp-unit-2");
      return e.length >= 2 ? e : null;
    }, { what: "two exposures" });
    assert.notEqual(got[0].event_id, got[1].event_id);
  });

  test("exposures carry the request's attributes (segments); client events may only put them on exposures", async () => {
    await w.json("/v1/assign?unit_id=exp-unit-3&experiment=checkout&country=CA&plan=pro");
    const [e] = await waitFor(() => {
      const got = sink.delivered().filter((x) => x.unit_id === "exp-unit-3");
      return got.length ? got : null;
    }, { what: "the exposure" });
    assert.deepEqual(e.attributes, { country: "CA", plan: "pro" });
    const good = { kind: "exposure", experiment: "checkout", unit_id: "exp-unit-4", variant_key: "control", attributes: { tier: 2 } };
    assert.equal((await postEvents(w, [good])).status, 202);
    const [client] = await waitFor(() => {
      const got = sink.delivered().filter((x) => x.unit_id === "exp-unit-4");
      return got.length ? got : null;
    }, { what: "the client exposure" });
    assert.deepEqual(client.attributes, { tier: 2 });
    const bad = await postEvents(w, [{ ...good, kind: "metric", metric: "m", value: 1 }]);
    assert.equal(bad.status, 422);
    assert.equal(bad.body.error.field, "events[0].attributes");
  });

  test("POST /v1/events: 202, ids and timestamps minted where missing, client ones kept", async () => {
    const events = [
      { kind: "metric", experiment: "checkout", unit_id: "ev-1", variant_key: "control", metric: "order_value", value: 12.5 },
      { kind: "conversion", experiment: "checkout", unit_id: "ev-1", variant_key: "control", metric: "purchase", event_id: "client-id-1", ts: "2026-01-31T12:00:00Z" },
      { kind: "exposure", experiment: "checkout", unit_id: "ev-1", variant_key: "control" },
      { kind: "conversion", experiment: "checkout", unit_id: "ev-2", variant_key: "control" },
    ];
    const res = await postEvents(w, events);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.deepEqual(res.body, { accepted: 4 });
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    const got = await waitFor(() => {
      const e = sink.delivered().filter((x) => x.unit_id === "ev-1");
      return e.length >= 3 ? e : null;
    }, { what: "three client events" });
    const byKind = Object.fromEntries(got.map((e) => [e.kind, e]));
    assert.equal(byKind.metric.value, 12.5);
    assert.equal(byKind.metric.metric, "order_value");
    assert.match(byKind.metric.event_id, UUID7);
    assert.match(byKind.metric.ts, RFC3339);
    assert.equal(byKind.conversion.event_id, "client-id-1");
    assert.equal(byKind.conversion.ts, "2026-01-31T12:00:00Z");
    const [unnamed] = await waitFor(() => {
      const e = sink.delivered().filter((x) => x.unit_id === "ev-2");
      return e.length ? e : null;
    }, { what: "the conversion without a metric" });
    assert.equal(unnamed.metric, "conversion", "the default metric is spelled out, as the control plane would store it");
  });

  test("POST /v1/events: bad events are rejected with the control plane's code, field and message; the good go on", async () => {
    const good = { kind: "exposure", experiment: "checkout", unit_id: "bad-1", variant_key: "control" };
    const res = await postEvents(w, [
      good,
      { ...good, kind: "click" },
      { ...good, kind: "metric", metric: "m" },
      { ...good, ts: "yesterday" },
      "not an object",
      { ...good, unit_id: undefined },
      { ...good, value: "12" },
      { ...good, unit_id: "" },
      { ...good, unit_id: "q\u0000s" },
      { ...good, kind: "metric", metric: "m", value: 1e308 },
      { ...good, kind: "conversion", value: -5 },
      { ...good, ts: "1900-01-01T00:00:00Z" },
      { ...good, extra_field: "typo?" },
    ]);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.accepted, 1);
    assert.deepEqual(res.body.rejected.map((e) => [e.index, e.code, e.field]), [
      [1, "validation_failed", "events[1].kind"],
      [2, "validation_failed", "events[2].value"],
      [3, "validation_failed", "events[3].ts"],
      [4, "validation_failed", "events[4]"],
      [5, "validation_failed", "events[5].unit_id"],
      [6, "validation_failed", "events[6].value"],
      [7, "validation_failed", "events[7].unit_id"],
      [8, "validation_failed", "events[8].unit_id"],
      [9, "validation_failed", "events[9].value"],
      [10, "validation_failed", "events[10].value"],
      [11, "validation_failed", "events[11].ts"],
      [12, "validation_failed", "events[12].extra_field"],
    ]);
    // The very words of litmus_shared::validate, which the control plane answers too.
    const messages = Object.fromEntries(res.body.rejected.map((e) => [e.index, e.message]));
    assert.equal(messages[1], "must be one of exposure, metric, conversion");
    assert.equal(messages[8], "must not contain the NUL character (U+0000)");
    assert.equal(messages[9], "must be a number between -1e15 and 1e15");
    assert.equal(messages[11], "must be on or after 2000-01-01T00:00:00Z");
    const allBad = await postEvents(w, [{ ...good, kind: "click" }]);
    assert.equal(allBad.status, 422);
    assert.equal(allBad.body.error.field, "events[0].kind");
    assert.equal(allBad.body.rejected.length, 1);
    assert.equal((await postEvents(w, "nope")).status, 422);
    assert.equal((await w.json("/v1/events", { method: "POST", body: "{" })).status, 400);
    const delivered = await waitFor(() => {
      const got = sink.delivered().filter((e) => e.unit_id === "bad-1");
      return got.length ? got : null;
    }, { what: "the good event of the batch" });
    await sleep(500);
    assert.equal(sink.all().filter((e) => e.unit_id === "bad-1").length, 1, JSON.stringify(delivered));
  });

  test("POST /v1/events: over 1000 events or over 1 MB is a 413", async () => {
    const e = { kind: "exposure", experiment: "checkout", unit_id: "big", variant_key: "control" };
    const many = await postEvents(w, Array.from({ length: 1001 }, () => e));
    assert.equal(many.status, 413);
    assert.equal(many.body.error.code, "payload_too_large");
    const huge = await w.json("/v1/events", { method: "POST", body: JSON.stringify({ events: [e], pad: "x".repeat(1_100_000) }) });
    assert.equal(huge.status, 413);
    const thousand = await postEvents(w, Array.from({ length: 1000 }, (_, i) => ({ ...e, unit_id: `big-${i}` })));
    assert.equal(thousand.status, 202);
    await waitFor(() => sink.delivered().filter((x) => x.unit_id.startsWith("big-")).length === 1000, { what: "1000 events" });
  });
});

describe("when the control plane fails", () => {
  test("a 503 from the batch endpoint leads to redelivery of the same events", async () => {
    const sink = await startSink({ statuses: [503, 503] });
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url }, retryDelay: 0, maxRetries: 5 });
    try {
      const res = await postEvents(w, [
        { kind: "conversion", experiment: "checkout", unit_id: "retry-1", variant_key: "control" },
        { kind: "exposure", experiment: "checkout", unit_id: "retry-2", variant_key: "control" },
      ]);
      assert.equal(res.status, 202);
      const delivered = await waitFor(() => (sink.delivered().length >= 2 ? sink.delivered() : null), { what: "redelivery" });
      const failed = sink.received.filter((r) => r.status === 503);
      assert.equal(failed.length, 2, "two failed attempts before the success");
      const ids = (events) => events.map((e) => e.event_id).sort();
      assert.deepEqual(ids(failed[0].events), ids(delivered), "the redelivered events are the same events");
      assert.deepEqual(ids(failed[1].events), ids(delivered));
      assert.ok(ids(delivered).every((id) => UUID7.test(id)));
      await sleep(500);
      assert.equal(sink.delivered().length, 2, "acknowledged once delivered: no further posts");
    } finally {
      await w.dispose();
      await sink.close();
    }
  });

  test("events the control plane refuses are parked in the dead-letter queue with the reason, not redelivered", async () => {
    const sink = await startSink({ refuse: (e) => (e.experiment === "ghost" ? "experiment `ghost` not found" : null) });
    const parked = await startSink();
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url }, retryDelay: 0, maxRetries: 5, deadLetterSink: parked.url });
    try {
      const ghost = (unit) => ({ kind: "conversion", experiment: "ghost", unit_id: unit, variant_key: "control", event_id: `ghost-${unit}` });
      const mixed = await postEvents(w, [
        { kind: "exposure", experiment: "checkout", unit_id: "dlq-1", variant_key: "control" },
        ghost("dlq-2"),
      ]);
      assert.equal(mixed.status, 202);
      const got = await waitFor(() => (parked.all().length >= 1 ? parked.all() : null), { what: "the refused event in the dead-letter queue" });
      assert.equal(got.length, 1);
      assert.equal(got[0].event.event_id, "ghost-dlq-2");
      assert.equal(got[0].event.unit_id, "dlq-2");
      assert.deepEqual([got[0].rejected.code, got[0].rejected.field], ["not_found", "experiment"]);
      assert.match(got[0].rejected.message, /ghost/);
      assert.deepEqual(sink.delivered().map((e) => e.unit_id), ["dlq-1"], "the good event of the batch is stored");

      // A batch the control plane refuses whole (422) is parked too, and not retried.
      await postEvents(w, [ghost("dlq-3")]);
      await waitFor(() => parked.all().some((p) => p.event.unit_id === "dlq-3"), { what: "the wholly refused batch parked" });
      await sleep(1000);
      const posts = (unit) => sink.received.filter((r) => r.events.some((e) => e.unit_id === unit)).length;
      assert.deepEqual([posts("dlq-1"), posts("dlq-2"), posts("dlq-3")], [1, 1, 1], "each batch was posted once");
      assert.equal(sink.received.find((r) => r.events.some((e) => e.unit_id === "dlq-3")).status, 422);
    } finally {
      await w.dispose();
      await sink.close();
      await parked.close();
    }
  });

  test("redelivery backs off while the control plane stays down", { timeout: 30000 }, async () => {
    const sink = await startSink({ statuses: Array(50).fill(503) });
    // Waits of half the message's age, at least 1 s: about 1, 1, 1, 1, 2, 3 s between attempts.
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url }, retryDelay: 1, maxRetries: 50 });
    try {
      await postEvents(w, [{ kind: "exposure", experiment: "checkout", unit_id: "backoff-1", variant_key: "control" }]);
      await waitFor(() => sink.received.length >= 7, { timeout: 20000, what: "seven attempts" });
      const gaps = sink.received.slice(1, 7).map((r, i) => (r.at - sink.received[i].at) / 1000);
      console.log(`seconds between attempts: ${gaps.map((g) => g.toFixed(1)).join(", ")}`);
      assert.ok(gaps[0] >= 0.9 && gaps[0] < 1.8, `the first retry waits the minimum: ${gaps}`);
      assert.ok(gaps[5] >= 2.5, `later retries wait longer: ${gaps}`);
      assert.ok(gaps[5] > 2 * gaps[0], `the wait grows: ${gaps}`);
    } finally {
      await w.dispose();
      await sink.close();
    }
  });

  test("events queued while the control plane is down arrive once it is back", async () => {
    const probe = await startSink();
    const { port, url } = probe;
    await probe.close(); // nothing listens there now: connection refused
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: url }, retryDelay: 0, maxRetries: 100 });
    let sink;
    try {
      const res = await postEvents(w, [{ kind: "exposure", experiment: "checkout", unit_id: "later-1", variant_key: "control" }]);
      assert.equal(res.status, 202, "acknowledged although the control plane is down");
      await sleep(1000);
      sink = await startSink({ port });
      const got = await waitFor(() => sink.delivered().find((e) => e.unit_id === "later-1"), { what: "the late delivery" });
      assert.match(got.event_id, UUID7);
    } finally {
      await w.dispose();
      await sink?.close();
    }
  });
});

describe("without a queue binding", () => {
  test("events are posted straight from wait_until", async () => {
    const sink = await startSink();
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url }, queue: false });
    try {
      await w.publish({ version: 1, experiments: [experiment("checkout")] });
      const a = await w.assign({ unit_id: "direct-1", experiments: ["checkout"] });
      assert.equal(a.body.assignments[0].in_experiment, true);
      const res = await postEvents(w, [{ kind: "exposure", experiment: "checkout", unit_id: "direct-2", variant_key: "control" }]);
      assert.equal(res.status, 202);
      await waitFor(() => ["direct-1", "direct-2"].every((u) => sink.delivered().some((e) => e.unit_id === u)), { what: "direct posts" });
      assert.ok(sink.received.every((r) => r.authorization === `Bearer ${INGEST_TOKEN}`));
    } finally {
      await w.dispose();
      await sink.close();
    }
  });
});

describe("one queue message per request", () => {
  let w, sink;
  before(async () => {
    sink = await startSink();
    w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url } });
    await w.publish({ version: 1, experiments: ["m1", "m2", "m3", "m4"].map((k) => experiment(k)) });
  });
  after(async () => {
    await w?.dispose();
    await sink?.close();
  });

  test("all the exposures of a request travel in one message, requests close in time share it; ids stay distinct", async () => {
    // A burst, as a busy isolate sees it: the answers' exposures are batched into one message.
    const REQUESTS = 20;
    const answers = await Promise.all(
      Array.from({ length: REQUESTS }, (_, i) => w.json(`/v1/assign?unit_id=one-msg-${i}&country=US`)),
    );
    for (const res of answers) assert.equal(res.body.assignments.filter((a) => a.in_experiment).length, 4);
    const got = await waitFor(() => {
      const e = sink.delivered().filter((x) => x.unit_id.startsWith("one-msg-"));
      return e.length >= 4 * REQUESTS ? e : null;
    }, { what: "every exposure" });
    await sleep(300);
    assert.equal(got.length, 4 * REQUESTS);
    assert.equal(new Set(got.map((e) => e.event_id)).size, got.length, "distinct event ids");
    assert.ok(got.every((e) => UUID7.test(e.event_id)));
    assert.ok(got.every((e) => e.attributes?.country === "US"), "the attributes, sent once, reach every exposure");
    const posts = sink.received.filter((r) => r.events.some((x) => x.unit_id.startsWith("one-msg-")));
    const messages = posts.reduce((n, r) => n + r.messages, 0);
    assert.ok(messages >= 1 && messages <= 3, `${REQUESTS} requests in a burst, ${messages} queue messages`);
    // Forwarded as the requests' groups, the unit and attributes once each: the control plane expands them.
    const groups = posts.flatMap((r) => r.body.exposures ?? []).filter((g) => g.unit_id.startsWith("one-msg-"));
    assert.equal(groups.length, REQUESTS);
    assert.ok(groups.every((g) => g.exposures.length === 4 && g.attributes.country === "US"));
  });

  test("a delivered batch holding more events than the control plane takes in one POST is posted in chunks", async () => {
    // 30 requests of 1000 events reach the consumer within its batching window: batches of well
    // over the 10 000 events one POST may carry (the sink answers 413 beyond, as the control plane
    // does, and the batch would be redelivered forever).
    const events = (r) => Array.from({ length: 1000 }, (_, i) => ({
      kind: "metric", experiment: "m1", unit_id: `chunk-${r}-${i}`, variant_key: "control", metric: "m", value: 1,
    }));
    const answers = await Promise.all(Array.from({ length: 30 }, (_, r) =>
      w.json("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ events: events(r) }) })));
    assert.deepEqual(answers.map((a) => a.status), Array(30).fill(202));
    const got = await waitFor(() => {
      const e = sink.delivered().filter((x) => x.unit_id.startsWith("chunk-"));
      return e.length >= 30_000 ? e : null;
    }, { what: "30 000 events", timeout: 60_000 });
    assert.equal(new Set(got.map((e) => e.unit_id)).size, 30_000);
    assert.ok(sink.received.every((r) => r.status !== 413), "no POST over the limit");
  });

  test("a burst bigger than one queue message is split, every exposure delivered", async () => {
    // 60 requests whose attributes are ~3.5 KB each: ~210 KB of exposures within one window,
    // more than a message takes (128 KB), so the batch is sent in more than one message.
    const big = "x".repeat(3500);
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) => w.json(`/v1/assign?unit_id=big-${i}&country=US&note=${big}`)),
    );
    assert.ok(answers.every((a) => a.status === 200));
    const got = await waitFor(() => {
      const e = sink.delivered().filter((x) => x.unit_id.startsWith("big-"));
      return e.length >= 4 * 60 ? e : null;
    }, { what: "every exposure of the burst" });
    assert.equal(new Set(got.map((e) => e.event_id)).size, 4 * 60);
    assert.ok(got.every((e) => e.attributes?.note === big));
    const posts = sink.received.filter((r) => r.events.some((x) => x.unit_id.startsWith("big-")));
    const messages = posts.reduce((n, r) => n + r.messages, 0);
    assert.ok(messages >= 3, `${messages} messages for ~210 KB of exposures`);
  });

  test("a lone request's exposures are sent within the batching window", async () => {
    const start = Date.now();
    await w.json("/v1/assign?unit_id=lone-1&country=US");
    await waitFor(() => sink.delivered().filter((e) => e.unit_id === "lone-1").length === 4, { what: "the lone request" });
    // 50 ms of batching, then the queue's own max_batch_timeout (0.2 s in these tests) and the post.
    assert.ok(Date.now() - start < 5000, `${Date.now() - start} ms`);
  });

  test("expose=false answers without logging exposures, on GET and POST; anything but true/false is a 422", async () => {
    const get = await w.json("/v1/assign?unit_id=quiet-1&expose=false");
    assert.equal(get.status, 200);
    assert.equal(get.body.assignments.filter((a) => a.in_experiment).length, 4);
    assert.ok(!("expose" in get.body), "not an attribute either");
    const post = await w.assign({ unit_id: "quiet-2", expose: false });
    assert.equal(post.status, 200);
    await w.json("/v1/assign?unit_id=loud-1&expose=true");
    await waitFor(() => sink.delivered().some((e) => e.unit_id === "loud-1"), { what: "the exposed request" });
    await sleep(500);
    assert.deepEqual(sink.delivered().filter((e) => e.unit_id.startsWith("quiet-")), []);
    const bad = await w.json("/v1/assign?unit_id=u&expose=maybe");
    assert.equal(bad.status, 422);
    assert.equal(bad.body.error.field, "expose");
    const badPost = await w.assign({ unit_id: "u", expose: "no" });
    assert.equal(badPost.status, 422);
    assert.equal(badPost.body.error.field, "expose");
  });
});
