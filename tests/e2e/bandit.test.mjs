// A five-arm bandit end to end: the edge serves it, exposures and rewards flow back through the
// queue, the control plane's reweighting job moves the weights and publishes them, and the edge
// follows. One arm is clearly best: after convergence the edge serves it to at least 80 % of new
// units, no unit that was already exposed changes variant (sticky documents for services,
// cookies for browsers), and the readout reports regret and the weight history.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { ROOT } from "../../edge-worker/test/helpers.mjs";
import { startStack, sleep, ADMIN, INGEST_TOKEN } from "./stack.mjs";
import { mulberry32 } from "../lib/random.mjs";

let cp, edge, dispose;

before(async () => {
  ({ cp, edge, dispose } = await startStack("e2e_bandit"));
});

after(async () => {
  await dispose?.();
});

const ARMS = ["m1", "m2", "m3", "m4", "m5"];
// Hidden true conversion rates: m3 is clearly best.
const RATES = { m1: 0.04, m2: 0.05, m3: 0.3, m4: 0.06, m5: 0.05 };
const random = mulberry32(14);

/** POST /v1/assign as a service does: the unit's sticky document goes in and comes back. */
async function assignService(unit, sticky) {
  const res = await fetch(`${edge.url}/v1/assign`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ unit_id: unit, experiments: ["five_models"], ...(sticky ? { sticky } : {}) }),
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  return { variant: body.assignments[0].variant_key, reason: body.assignments[0].reason, sticky: body.sticky, signature: body.assignments[0].signature };
}

/** GET /v1/assign as a browser does: no unit id, cookies kept between calls. */
async function assignBrowser(jar) {
  const res = await fetch(`${edge.url}/v1/assign?experiment=five_models`, { headers: jar.length ? { cookie: jar.join("; ") } : {} });
  assert.equal(res.status, 200);
  for (const c of res.headers.getSetCookie()) {
    const pair = c.split(";")[0];
    const name = pair.split("=")[0];
    const at = jar.findIndex((p) => p.startsWith(`${name}=`));
    if (at >= 0) jar[at] = pair;
    else jar.push(pair);
  }
  const body = await res.json();
  return { unit: body.unit_id, variant: body.assignments[0].variant_key, signature: body.assignments[0].signature };
}

/** Rewards: each unit converts with its arm's hidden rate, logged through the edge. */
async function reward(assigned) {
  const events = assigned
    .filter(({ variant }) => random() < RATES[variant])
    .map(({ unit, variant, signature }) => ({ kind: "conversion", experiment: "five_models", unit_id: unit, variant_key: variant, metric: "click", signature }));
  for (let i = 0; i < events.length; i += 500) {
    const res = await fetch(`${edge.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${INGEST_TOKEN}` },
      body: JSON.stringify({ events: events.slice(i, i + 500) }),
    });
    assert.equal(res.status, 202, await res.text());
  }
}

/** Once the winner's weight reached 0.8, no later version serves it one half or less. */
function assertKeepsItsWinner(weights) {
  const reached = weights.findIndex((w) => w >= 0.8);
  if (reached < 0) return;
  const later = weights.slice(reached + 1);
  assert.ok(later.every((w) => w > 0.5), `the winner's weight after reaching 0.8: ${JSON.stringify(weights)}`);
}

test("a bandit converges at the edge without moving exposed units", { timeout: 240_000 }, async () => {
  const created = await cp.api("POST", "/experiments", {
    key: "five_models", name: "Five models", type: "bandit", unit_type: "user_id", targeting: {},
    variants: ARMS.map((key) => ({ key, weight: 0.2, config_json: { model: key } })),
    metrics: [{ name: "click", kind: "proportion", role: "primary" }],
    bandit: { policy: "thompson", reweight_every_seconds: 1, min_units_per_arm: 50 },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal((await cp.api("POST", "/experiments/five_models/launch", { ramp_pct: 100 })).status, 200);

  // The first units, under equal weights: services with sticky documents, and browsers.
  let early = [];
  for (let waited = 0; early.length === 0; waited++) {
    assert.ok(waited < 100, "the launch reached the edge");
    const first = await assignService("early-0");
    if (first.variant && first.reason !== "not_running" && first.reason !== "unknown_experiment") early.push({ unit: "early-0", ...first });
    else await sleep(200);
  }
  for (let i = 1; i < 150; i++) early.push({ unit: `early-${i}`, ...(await assignService(`early-${i}`)) });
  assert.ok(early.every((e) => e.sticky?.unit_id === e.unit && e.sticky.assignments["five_models__0"] === e.variant), "every answer carries the unit's document");
  const browsers = [];
  for (let i = 0; i < 20; i++) {
    const jar = [];
    browsers.push({ jar, ...(await assignBrowser(jar)) });
  }
  assert.ok(browsers.every((b) => b.jar.some((c) => c.startsWith("litmus_sticky="))), "browsers keep their assignments in a cookie");
  await reward([...early, ...browsers]);
  const firstShares = Object.fromEntries(ARMS.map((a) => [a, early.filter((e) => e.variant === a).length / early.length]));

  // New units keep arriving; the bandit learns and the edge follows.
  const deadline = Date.now() + 150_000;
  let round = 0, share = 0, served = {};
  while (Date.now() < deadline) {
    const batch = [];
    for (let i = 0; i < 200; i++) {
      const unit = `r${round}-${i}`;
      const { variant, signature } = await assignService(unit);
      batch.push({ unit, variant, signature });
    }
    await reward(batch);
    served = Object.fromEntries(ARMS.map((a) => [a, batch.filter((b) => b.variant === a).length]));
    share = served.m3 / batch.length;
    round++;
    if (share >= 0.8) break;
    await sleep(1000);
  }
  console.log(`bandit e2e: ${round} rounds of 200 new units; last round ${JSON.stringify(served)}; first round ${JSON.stringify(firstShares)}`);
  assert.ok(share >= 0.8, `after ${round} rounds the edge serves m3 to ${(share * 100).toFixed(1)} % of new units (${JSON.stringify(served)}); first shares ${JSON.stringify(firstShares)}`);

  // Nobody exposed before moved: documents and cookies keep the first variant.
  for (const e of early) {
    const again = await assignService(e.unit, e.sticky);
    assert.equal(again.variant, e.variant, `${e.unit} kept its variant`);
    assert.equal(again.reason, "sticky");
  }
  for (const b of browsers) {
    const again = await assignBrowser(b.jar);
    assert.deepEqual([again.unit, again.variant], [b.unit, b.variant], "a browser kept its unit and its variant");
  }
  // Without its document an early unit may well be moved by the new weights: the document is
  // what keeps it (at least one of 150 would move at m3's share).
  const moved = (await Promise.all(early.map((e) => assignService(e.unit)))).filter((a, i) => a.variant !== early[i].variant).length;
  assert.ok(moved > 0, "the weights moved enough to move undocumented units");

  const readout = (await cp.api("GET", "/experiments/five_models/bandit")).body;
  assert.equal(readout.top_variant, "m3", JSON.stringify(readout));
  assert.ok(readout.weights_version >= 1 && readout.periods >= 2, JSON.stringify(readout));
  assert.equal(readout.regret.best_variant, "m3");
  assert.ok(readout.regret.expected > 0, "regret is reported");
  // Once the winner passed 0.8 it stays above one half: a few units of a losing arm in a heavy
  // period no longer decide (a run here once went from over 0.8 to 0.485 when they did).
  const m3 = readout.variants.find((v) => v.key === "m3");
  const others = readout.variants.filter((v) => v.key !== "m3");
  assert.ok(m3.weight > 0.5 && others.every((v) => 2 * v.weight < m3.weight) && Math.abs(m3.weight - m3.serving_weight) < 1e-12, JSON.stringify(readout.variants));
  const history = (await cp.api("GET", "/experiments/five_models/bandit/history")).body;
  assert.equal(history.length, readout.weights_version);
  assert.ok(history.every((h, i) => h.seq === i + 1 && h.policy === "thompson"), JSON.stringify(history));
  assert.ok(history.some((h) => h.weights.m3 >= 0.7), JSON.stringify(history.map((h) => h.weights)));
  assertKeepsItsWinner(history.map((h) => h.weights.m3));
  // Reweighted every second, the edge switching some time after each commit: the units are
  // placed in the period of the version that served them (the edge writes it into each
  // exposure), so the sample-ratio check sees no mismatch.
  const results = (await cp.api("GET", "/experiments/five_models/results")).body;
  assert.ok(results.srm && results.srm.flagged === false, JSON.stringify(results.srm));
  const audit = (await cp.api("GET", "/experiments/five_models/audit")).body;
  assert.equal(audit.filter((a) => a.action === "reweight").length, history.length, "every weight version is in the audit log");
});

test("the brief's live tutorial: scripts/live_bandit_simulation.py converges and leaves the bandit running", { timeout: 240_000 }, async () => {
  const child = spawn("python3", ["scripts/live_bandit_simulation.py", "--base-url", cp.url, "--edge-url", edge.url, "--token", ADMIN,
    "--key", "tutorial", "--reweight-seconds", "1", "--max-seconds", "150"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  const code = await new Promise((r) => child.once("exit", r));
  assert.equal(code, 0, `exit ${code}\n${out}\n${err}`);
  const lines = out.trim().split("\n");
  const parsed = (prefix) => lines.filter((l) => l.startsWith(`${prefix} `)).map((l) => JSON.parse(l.slice(prefix.length + 1)));
  const [experiment] = parsed("experiment");
  assert.equal(experiment.key, "tutorial");
  const snapshots = parsed("live_snapshot");
  assert.ok(snapshots.length >= 2, out);
  for (const s of snapshots) {
    assert.deepEqual(Object.keys(s.exposures).sort(), ["model_a", "model_b", "model_c", "model_d", "model_e"]);
    assert.ok(Math.abs(Object.values(s.weights).reduce((a, b) => a + b, 0) - 1) < 1e-3, JSON.stringify(s));
  }
  const [done] = parsed("converged");
  const history = (await cp.api("GET", "/experiments/tutorial/bandit/history")).body;
  assertKeepsItsWinner(history.map((h) => h.weights.model_c));
  assert.equal(done.top_variant, "model_c", out);
  assert.ok(done.win_probability >= 0.95 && done.edge_share_last_round >= 0.8, JSON.stringify(done));
  assert.ok(done.console.endsWith(`/experiments/${experiment.id}`));
  // Left running for a manual stop.
  assert.equal((await cp.api("GET", "/experiments/tutorial")).body.status, "running");
  console.log(`tutorial: converged on ${done.top_variant} after ${done.requests} requests in ${done.seconds} s`);
});
