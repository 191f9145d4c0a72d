// Data that can be trusted: the edge signs what it hands out, and what the public internet sends
// back counts only when it carries such a signature. Run with the default (`UNSIGNED_EVENTS`
// unset: refuse) and a signing key, as a deployment runs.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSink, waitFor, sleep, experiment, TEST_SIGNING_KEY } from "./helpers.mjs";

const postEvents = (w, events) =>
  w.json("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ events }) });

// An A/B test whose second arm serves nobody, and a bandit over lasting units.
const AB = experiment("ab_zero", {
  variants: [
    { key: "control", weight: 1, config_json: {} },
    { key: "ghost", weight: 0, config_json: {} },
  ],
});
const BANDIT = experiment("bandit_five", {
  type: "bandit",
  variants: ["a", "b", "c"].map((key) => ({ key, weight: key === "c" ? 0 : 0.5, config_json: {} })),
});

describe("signed assignments, proven events", () => {
  let w, sink;
  before(async () => {
    sink = await startSink();
    w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, UNSIGNED_EVENTS: undefined } });
    await w.publish({ version: 1, experiments: [AB, BANDIT] });
  });
  after(async () => {
    await w?.dispose();
    await sink?.close();
  });

  test("every answer carries a signature, GET and POST alike; a key-less worker signs nothing", async () => {
    const post = await w.assign({ unit_id: "sig-1", experiments: ["ab_zero"], expose: false });
    const get = await w.json("/v1/assign?unit_id=sig-1&experiment=ab_zero&expose=false");
    const [a] = post.body.assignments;
    assert.match(a.signature, /^1\.0\.[0-9a-f]{16}$/);
    assert.deepEqual(get.body.assignments[0], a, "the fast route signs as the general one does");
    const other = await w.assign({ unit_id: "sig-2", experiments: ["ab_zero"], expose: false });
    assert.notEqual(other.body.assignments[0].signature, a.signature, "per unit");
    assert.deepEqual(Object.keys(a), ["experiment", "variant_key", "config_json", "assignment_id", "signature", "version", "in_experiment", "reason"]);
  });

  test("forged exposures and metrics for 500 fresh units reach nothing; each is refused by name", async () => {
    const forged = [];
    for (let i = 0; i < 500; i++) {
      const unit = `forged-${i}`;
      const base = { experiment: "ab_zero", unit_id: unit, variant_key: "ghost", assignment_id: (i * 7919).toString(16).padStart(16, "0") };
      forged.push({ ...base, kind: "exposure" }, { ...base, kind: "metric", metric: "revenue", value: 100, signature: `1.0.${"0".repeat(15)}${i % 10}` });
    }
    for (let i = 0; i < forged.length; i += 500) {
      const res = await postEvents(w, forged.slice(i, i + 500));
      assert.equal(res.status, 422, JSON.stringify(res.body).slice(0, 300));
      assert.equal(res.body.rejected.length, 500);
      assert.deepEqual(new Set(res.body.rejected.map((r) => r.code)), new Set(["signature_required", "signature_invalid"]));
      assert.ok(res.body.rejected.every((r) => r.field === `events[${r.index}].signature`));
    }
    // A real answer's signature does not carry over to another unit, variant or experiment.
    const real = (await w.assign({ unit_id: "owner", experiments: ["ab_zero"], expose: false })).body.assignments[0];
    const base = { kind: "exposure", experiment: "ab_zero", unit_id: "owner", variant_key: "control", signature: real.signature };
    const moved = await postEvents(w, [{ ...base, unit_id: "thief" }, { ...base, variant_key: "ghost" }, { ...base, experiment: "bandit_five" }]);
    assert.deepEqual(moved.body.rejected.map((r) => r.code), ["signature_invalid", "signature_invalid", "signature_invalid"]);
    // Refused events are counted, not forwarded: the tally (1003 refusals) reaches the batch
    // endpoint, no forged event does.
    await waitFor(() => sink.received.reduce((n, r) => n + (r.body?.refused ?? 0), 0) >= 1000, { what: "the refusal tally" });
    await sleep(300);
    assert.equal(sink.all().filter((e) => e.unit_id.startsWith("forged-") || e.unit_id === "thief").length, 0);
  });

  test("a browser's flow (assign with expose=false, then its exposure and a metric) counts exactly once", async () => {
    const answer = (await w.assign({ unit_id: "browser-1", experiments: ["ab_zero"], expose: false })).body.assignments[0];
    const echo = { experiment: "ab_zero", unit_id: "browser-1", variant_key: answer.variant_key, assignment_id: answer.assignment_id, signature: answer.signature };
    const res = await postEvents(w, [
      { ...echo, kind: "exposure", event_id: "0193a8f2-7c4e-7b21-9f3a-5d6e7f800001" },
      { ...echo, kind: "metric", metric: "revenue", value: 12.5, event_id: "0193a8f2-7c4e-7b21-9f3a-5d6e7f800002" },
    ]);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.deepEqual(res.body, { accepted: 2 });
    const got = await waitFor(() => {
      const e = sink.delivered().filter((x) => x.unit_id === "browser-1");
      return e.length >= 2 ? e : null;
    }, { what: "the browser's two events" });
    await sleep(300);
    assert.equal(sink.delivered().filter((x) => x.unit_id === "browser-1").length, 2);
    assert.deepEqual(got.map((e) => e.kind).sort(), ["exposure", "metric"]);
  });

  test("an out-of-experiment answer's signature proves no exposure", async () => {
    const w2 = await startWorker({ bindings: { UNSIGNED_EVENTS: undefined } });
    try {
      await w2.publish({ version: 1, experiments: [experiment("closed", { ramp_pct: 0 })] });
      const a = (await w2.assign({ unit_id: "outside", experiments: ["closed"], expose: false })).body.assignments[0];
      assert.equal(a.in_experiment, false);
      assert.match(a.signature, /^1\.0\./);
      const res = await postEvents(w2, [{ kind: "exposure", experiment: "closed", unit_id: "outside", variant_key: a.variant_key, signature: a.signature }]);
      assert.equal(res.body.rejected[0].code, "signature_invalid");
    } finally {
      await w2.dispose();
    }
  });

  test("sticky documents: forged, altered or another unit's change no answer; the edge's own are honoured", async () => {
    const ask = (unit, sticky, experiments = ["bandit_five", "ab_zero"]) => w.assign({ unit_id: unit, experiments, expose: false, ...(sticky ? { sticky } : {}) });
    for (let i = 0; i < 100; i++) {
      const unit = `sticky-${i}`;
      const plain = (await ask(unit)).body;
      const forged = [
        { unit_id: unit, assignments: { bandit_five__0: "c", ab_zero__0: "ghost" } },
        { ...plain.sticky, assignments: { ...plain.sticky.assignments, bandit_five__0: "c" } },
        { ...plain.sticky, assignments: { bandit_five__0: plain.sticky.assignments.bandit_five__0 === "a" ? "b" : "a" } },
        { ...plain.sticky, unit_id: "someone-else" },
      ];
      for (const doc of forged) {
        const got = (await ask(unit, doc)).body;
        assert.deepEqual(got.assignments, plain.assignments, `unit ${unit}, document ${JSON.stringify(doc)}`);
      }
      // Through the cookie as well.
      const cookie = `litmus_uid=${unit}; litmus_sticky=${encodeURIComponent(JSON.stringify(forged[0]))}`;
      const viaCookie = await w.json(`/v1/assign?experiment=bandit_five&experiment=ab_zero&expose=false`, { headers: { cookie } });
      assert.deepEqual(viaCookie.body.assignments, plain.assignments);
    }
    // The document the edge signed keeps a unit's variant when the weights move.
    const first = (await ask("keeper", null, ["bandit_five"])).body;
    const kept = first.assignments[0].variant_key;
    assert.match(first.sticky.sig, /^[0-9a-f]{16}$/);
    await w.publish({ version: 2, experiments: [AB, { ...BANDIT, version: 2, variants: BANDIT.variants.map((v) => ({ ...v, weight: v.key === kept ? 0.01 : v.key === "c" ? 0 : 0.99 })) }] });
    await waitFor(async () => (await w.json("/v1/health")).body.config_version === 2, { what: "version 2" });
    const again = (await ask("keeper", first.sticky, ["bandit_five"])).body.assignments[0];
    assert.deepEqual([again.variant_key, again.reason], [kept, "sticky"]);
  });
});

describe("attributes the platform knows itself", () => {
  const CF = { country: "DE", continent: "EU", city: "Berlin", asn: 3320, colo: "FRA", timezone: "Europe/Berlin" };
  const set = {
    version: 1,
    experiments: [
      experiment("us_only", { targeting: { country: { in: ["US"] } } }),
      experiment("de_telekom", { targeting: { $and: [{ country: "DE" }, { asn: 3320 }] } }),
      experiment("by_region", { targeting: { region_code: "BE" } }),
    ],
  };
  const keys = ["us_only", "de_telekom", "by_region"];
  const reasons = (body) => body.assignments.map((a) => a.reason);

  test("behind Cloudflare the request's country, asn and region replace what the client claims, on both routes", async () => {
    const bindings = { UNSIGNED_EVENTS: undefined, CLIENT_ATTRIBUTES: undefined };
    const [fast, slow] = [await startWorker({ cf: CF, bindings }), await startWorker({ cf: CF, bindings: { ...bindings, ASSIGN_FAST_PATH: "off" } })];
    try {
      for (const w of [fast, slow]) assert.equal((await w.publish(set)).status, 200);
      const q = `/v1/assign?unit_id=u1&${keys.map((k) => `experiment=${k}`).join("&")}&expose=false&country=US&asn=1&region_code=BE`;
      for (const w of [fast, slow]) {
        // The client says US, asn 1, region BE; the request is from Telekom in Germany, no region.
        assert.deepEqual(reasons((await w.json(q)).body), ["targeting", "assigned", "targeting"]);
        const post = await w.assign({ unit_id: "u1", experiments: keys, expose: false, attributes: { country: "US", asn: 1, region_code: "BE" } });
        assert.deepEqual(reasons(post.body), ["targeting", "assigned", "targeting"]);
      }
      assert.deepEqual((await fast.json(q)).body, (await slow.json(q)).body);
    } finally {
      await fast.dispose();
      await slow.dispose();
    }
  });

  test("CLIENT_ATTRIBUTES=trust: the client's values", async () => {
    const trusting = await startWorker({ cf: CF, bindings: { CLIENT_ATTRIBUTES: "trust" } });
    try {
      assert.equal((await trusting.publish(set)).status, 200);
      const got = await trusting.json(`/v1/assign?unit_id=u1&${keys.map((k) => `experiment=${k}`).join("&")}&expose=false&country=US&asn=1&region_code=BE`);
      assert.deepEqual(reasons(got.body), ["assigned", "targeting", "assigned"]);
    } finally {
      await trusting.dispose();
    }
  });

  test("a set that targets on nothing the platform knows keeps the client's attributes (and reads no request.cf)", async () => {
    const w = await startWorker({ cf: CF, bindings: { CLIENT_ATTRIBUTES: undefined } });
    try {
      assert.equal((await w.publish({ version: 1, experiments: [experiment("plan_only", { targeting: { plan: "pro" } })] })).status, 200);
      const got = await w.json("/v1/assign?unit_id=u1&experiment=plan_only&plan=pro&country=US");
      assert.equal(got.body.assignments[0].reason, "assigned");
    } finally {
      await w.dispose();
    }
  });
});
