// Data that can be trusted, end to end: the control plane and the edge sign with one key; a
// browser's signed events count exactly once, and forged ones sent to the public edge for 500
// fresh units are refused there, never stored, so no result, sample ratio check, rule or bandit
// can see them. The control plane's /metrics counts the refusals.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ADMIN, startStack, waitFor, psql, sleep } from "./stack.mjs";

let cp, edge, dispose, databaseUrl;

before(async () => {
  ({ cp, edge, dispose, databaseUrl } = await startStack("e2e_trust"));
});

after(async () => {
  await dispose?.();
});

const post = (p, body) => edge.json(p, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

test("forged events move nothing; a browser's signed flow counts once", { timeout: 120_000 }, async () => {
  // An A/B test whose second arm serves nobody.
  const created = await cp.api("POST", "/experiments", {
    key: "trust_ab", name: "Trust", unit_type: "user_id", targeting: {},
    variants: [{ key: "control", weight: 1 }, { key: "ghost", weight: 0 }],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal((await cp.api("POST", "/experiments/trust_ab/launch", { ramp_pct: 100 })).status, 200);
  await waitFor(async () => (await post("/v1/assign", { unit_id: "probe", experiments: ["trust_ab"], expose: false })).body.assignments?.[0]?.reason === "assigned",
    { timeout: 20_000, what: "the edge serving trust_ab" });

  // 20 browsers: assign without exposing, then report the exposure and a metric themselves.
  for (let i = 0; i < 20; i++) {
    const a = (await post("/v1/assign", { unit_id: `real-${i}`, experiments: ["trust_ab"], expose: false })).body.assignments[0];
    const echo = { experiment: "trust_ab", unit_id: `real-${i}`, variant_key: a.variant_key, assignment_id: a.assignment_id, signature: a.signature };
    const res = await post("/v1/events", { events: [{ ...echo, kind: "exposure" }, { ...echo, kind: "metric", metric: "revenue", value: 10 }] });
    assert.deepEqual([res.status, res.body], [202, { accepted: 2 }]);
  }

  // 500 fresh units, forged: no signature, a made-up one, and a real one moved to the ghost arm.
  const real = (await post("/v1/assign", { unit_id: "real-0", experiments: ["trust_ab"], expose: false })).body.assignments[0];
  const forged = [];
  for (let i = 0; i < 500; i++) {
    const e = { experiment: "trust_ab", unit_id: `forged-${i}`, variant_key: "ghost", assignment_id: "0000000000000000" };
    forged.push(
      { ...e, kind: "exposure", ...(i % 2 ? { signature: `1.0.${i.toString(16).padStart(16, "0")}` } : {}) },
      { ...e, kind: "metric", metric: "revenue", value: 1000, signature: real.signature },
    );
  }
  for (let i = 0; i < forged.length; i += 500) {
    const res = await post("/v1/events", { events: forged.slice(i, i + 500) });
    assert.equal(res.status, 422);
    assert.equal(res.body.rejected.length, 500);
  }

  // The real events land, once; nothing forged is stored.
  const results = await waitFor(async () => {
    const r = await cp.api("GET", "/experiments/trust_ab/results");
    const control = r.body?.variants?.find((v) => v.key === "control");
    return control?.exposures === 20 && control?.metrics?.revenue?.count === 20 ? r.body : null;
  }, { timeout: 30_000, what: "the 20 real exposures and metrics" });
  await sleep(1500); // anything forged would have been forwarded by now
  assert.equal(psql(databaseUrl, "SELECT count(*) FROM events WHERE unit_id LIKE 'forged-%'"), "0");
  assert.equal(psql(databaseUrl, "SELECT count(*) FROM events"), "40");
  const again = (await cp.api("GET", "/experiments/trust_ab/results")).body;
  assert.deepEqual(again.variants, results.variants, "results unchanged");
  assert.equal(again.variants.find((v) => v.key === "ghost").exposures, 0);
  assert.deepEqual(again.srm?.observed ?? [20, 0], [20, 0]);

  // Refusals are counted where operators look (/metrics), reported with the next events.
  const last = (await post("/v1/assign", { unit_id: "real-99", experiments: ["trust_ab"], expose: false })).body.assignments[0];
  await post("/v1/events", { events: [{ kind: "exposure", experiment: "trust_ab", unit_id: "real-99", variant_key: last.variant_key, signature: last.signature }] });
  const refused = await waitFor(async () => {
    const text = await (await fetch(`${cp.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    const n = Number(text.match(/^edge_events_refused_total (\d+)/m)?.[1] ?? 0);
    return n >= 1000 ? n : null;
  }, { timeout: 20_000, what: "edge_events_refused_total at 1000" });
  assert.equal(refused, 1000);
});
