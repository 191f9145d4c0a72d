// Issue acceptance, end to end with real processes: the control plane publishes to the worker
// (in workerd), the worker answers exactly what the control plane answers, exposures the edge
// served land in the control plane's results, and pausing/stopping reaches the edge in seconds.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startStack, waitFor, psql } from "./stack.mjs";

let cp, edge, databaseUrl, dispose;
const EXPERIMENTS = [
  { key: "e2e_checkout", targeting: { country: { in: ["US", "CA"] } }, ramp: 50,
    variants: [{ key: "control", weight: 0.5 }, { key: "green", weight: 0.5 }] },
  { key: "e2e_pricing", targeting: { or: [{ plan: "pro" }, { age: { gte: 30 } }] }, ramp: 80,
    variants: [{ key: "base", weight: 0.2 }, { key: "high", weight: 0.3 }, { key: "low", weight: 0.5 }] },
  { key: "e2e_search", targeting: { app: { semver: ">=2.0.0" } }, ramp: 100,
    variants: [{ key: "bm25", weight: 0.34 }, { key: "vector", weight: 0.33 }, { key: "hybrid", weight: 0.33 }] },
  { key: "e2e_left", targeting: {}, ramp: 100, layer: { key: "home", start: 0, end: 4000 },
    variants: [{ key: "a", weight: 0.5 }, { key: "b", weight: 0.5 }] },
  { key: "e2e_right", targeting: {}, ramp: 30, layer: { key: "home", start: 4000, end: 10000 },
    variants: [{ key: "a", weight: 0.9 }, { key: "b", weight: 0.1 }] },
];
const UNITS = 2000;
const attributes = (i) => ({
  country: ["US", "CA", "DE", "FR"][i % 4],
  plan: i % 3 === 0 ? "pro" : "free",
  age: String(18 + (i % 50)),
  app: `${1 + (i % 3)}.${i % 7}.0`,
});

before(async () => {
  ({ databaseUrl, cp, edge, dispose } = await startStack("e2e_edge"));
});

after(async () => {
  await dispose?.();
});

test("a launched experiment reaches the edge within 10 s and the answers are identical", async () => {
  for (const e of EXPERIMENTS) {
    const created = await cp.api("POST", "/experiments", { key: e.key, name: e.key, targeting: e.targeting, variants: e.variants, layer: e.layer });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
  const launchedAt = Date.now();
  for (const e of EXPERIMENTS) {
    assert.equal((await cp.api("POST", `/experiments/${e.key}/launch`, { ramp_pct: e.ramp })).status, 200);
  }
  const health = await waitFor(async () => {
    const h = await edge.json("/v1/health");
    return h.body.experiments === EXPERIMENTS.length ? h.body : null;
  }, { timeout: 10000, what: "all experiments at the edge" });
  const took = Date.now() - launchedAt;
  console.log(`configs reached the edge ${took} ms after launch (config_version ${health.config_version})`);

  const keys = EXPERIMENTS.map((e) => e.key);
  let compared = 0, inside = 0;
  for (let start = 0; start < UNITS; start += 50) {
    await Promise.all(Array.from({ length: 50 }, async (_, j) => {
      const i = start + j;
      const unit = `unit-${i}-ü`;
      const edgeAnswer = await edge.assign({ unit_id: unit, attributes: attributes(i), experiments: keys });
      assert.equal(edgeAnswer.status, 200);
      for (const [k, key] of keys.entries()) {
        const central = await cp.api("POST", "/assign", { experiment: key, unit_id: unit, attributes: attributes(i) });
        assert.equal(central.status, 200);
        assert.deepStrictEqual(edgeAnswer.body.assignments[k], central.body, `${key} / ${unit}`);
        compared += 1;
        inside += central.body.in_experiment ? 1 : 0;
      }
    }));
  }
  console.log(`${compared} assignments compared (${UNITS} units x ${keys.length} experiments), ${inside} in experiment`);
  assert.ok(inside > 1000 && inside < compared, "targeting and ramps leave some in, some out");
});

test("exposures the edge served appear in the control plane's results", async () => {
  // What the edge served above, per experiment and variant (distinct units in experiment).
  const expected = { e2e_checkout: {} };
  for (let start = 0; start < UNITS; start += 100) {
    const answers = await Promise.all(Array.from({ length: 100 }, (_, j) =>
      cp.api("POST", "/assign", { experiment: "e2e_checkout", unit_id: `unit-${start + j}-ü`, attributes: attributes(start + j) })));
    for (const a of answers) {
      if (a.body.in_experiment) expected.e2e_checkout[a.body.variant_key] = (expected.e2e_checkout[a.body.variant_key] ?? 0) + 1;
    }
  }
  const results = await waitFor(async () => {
    const r = await cp.api("GET", "/experiments/e2e_checkout/results");
    const got = Object.fromEntries(r.body.variants.map((v) => [v.key, v.exposures]));
    const want = { control: expected.e2e_checkout.control ?? 0, green: expected.e2e_checkout.green ?? 0 };
    return JSON.stringify(got) === JSON.stringify(want) ? r.body : null;
  }, { timeout: 20000, what: "edge exposures in results" });
  assert.ok(results.variants[0].exposures > 100);
  const dupes = psql(databaseUrl, "SELECT count(*) FROM (SELECT event_id FROM events GROUP BY event_id HAVING count(*) > 1) d");
  assert.equal(dupes, "0", "no event stored twice");
});

test("pausing and stopping take an experiment out of the edge within 10 s", async () => {
  const t0 = Date.now();
  assert.equal((await cp.api("POST", "/experiments/e2e_pricing/pause", { actor: "e2e" })).status, 200);
  assert.equal((await cp.api("POST", "/experiments/e2e_search/stop", { actor: "e2e" })).status, 200);
  await waitFor(async () => {
    const all = await edge.assign({ unit_id: "u1", attributes: { plan: "pro", app: "3.0.0" } });
    const served = all.body.assignments.map((a) => a.experiment);
    return !served.includes("e2e_pricing") && !served.includes("e2e_search");
  }, { timeout: 10000, what: "paused/stopped experiments gone from the default answer" });
  console.log(`pause/stop reached the edge in ${Date.now() - t0} ms`);
  const byKey = await edge.assign({ unit_id: "u1", attributes: { plan: "pro", app: "3.0.0" }, experiments: ["e2e_pricing", "e2e_search"] });
  for (const a of byKey.body.assignments) {
    assert.equal(a.in_experiment, false);
    assert.equal(a.reason, "not_running");
  }
  assert.deepEqual(byKey.body.assignments.map((a) => a.variant_key), ["base", "bm25"], "the control variant, as the contract's safe default");
});
