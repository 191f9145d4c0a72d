// Same answers everywhere (issue 16): the same 1000 (unit, attributes) pairs, unit ids in several
// scripts included, through the control plane's /api/v1/assign, the edge's /v1/assign, the Python
// SDK, the JS SDK against the edge, and the JS SDK's local (wasm) evaluator on the config set the
// edge was given. Three experiments: our targeting language with a ramp and uneven weights,
// GrowthBook's language with a saved group, and no targeting at all.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { ROOT } from "../../edge-worker/test/helpers.mjs";
import { startStack, waitFor, ADMIN } from "./stack.mjs";
import { mulberry32 } from "../lib/random.mjs";
import { createClient } from "../../sdk/js/dist/index.js";
import { createLocalEvaluator } from "../../sdk/js/dist/local.js";

let cp, edge, dispose;

before(async () => {
  ({ cp, edge, dispose } = await startStack("e2e_equality"));
});

after(async () => {
  await dispose?.();
});

const EXPERIMENTS = ["eq_ours", "eq_growthbook", "eq_plain"];
const random = mulberry32(16);
const pick = (xs) => xs[Math.floor(random() * xs.length)];

function pairs(n) {
  const scripts = ["user", "ünïcødé", "用户", "пользователь", "🦀", "مستخدم"];
  return Array.from({ length: n }, (_, i) => ({
    unit: `${scripts[i % scripts.length]}-${i}-${Math.floor(random() * 1e6)}`,
    attributes: { country: pick(["US", "DE", "FR", "日本"]), plan: pick(["free", "pro", "team"]), age: 10 + Math.floor(random() * 60) },
  }));
}

/** What must agree: the variant, whether the unit is in, why, and the assignment id. */
const answer = (a) => [a.variant_key, a.in_experiment, a.reason, a.assignment_id];

test("the control plane, the edge, the Python SDK and the JS SDK (remote and local) give the same 1000 answers", { timeout: 300_000 }, async () => {
  const mk = async ({ ramp = 100, ...body }) => {
    const r = await cp.api("POST", "/experiments", { unit_type: "user_id", ...body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const l = await cp.api("POST", `/experiments/${body.key}/launch`, { ramp_pct: ramp });
    assert.equal(l.status, 200, JSON.stringify(l.body));
  };
  assert.equal((await cp.api("PUT", "/saved-groups/eq_countries", { values: ["DE", "日本"] })).status, 201);
  await mk({
    key: "eq_ours", name: "ours", targeting: { country: { in: ["US", "DE", "日本"] }, age: { gte: 18 } }, ramp: 80,
    variants: [{ key: "a", weight: 0.2, config_json: { n: 1 } }, { key: "b", weight: 0.3 }, { key: "c", weight: 0.5 }],
  });
  await mk({
    key: "eq_growthbook", name: "growthbook",
    targeting: { $or: [{ country: { $inGroup: "eq_countries" } }, { plan: { $in: ["pro", "team"] }, age: { $lt: 40 } }] },
    variants: [{ key: "off", weight: 0.5 }, { key: "on", weight: 0.5 }],
  });
  await mk({ key: "eq_plain", name: "plain", variants: [{ key: "x", weight: 0.5 }, { key: "y", weight: 0.5 }] });
  // The edge holds the very config set the local evaluator is given before anyone is asked.
  let edgeConfig;
  await waitFor(async () => {
    edgeConfig = (await cp.api("GET", "/edge/config")).body;
    const r = await fetch(`${edge.url}/v1/assign`, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ unit_id: "probe", experiments: EXPERIMENTS, expose: false }) });
    const b = await r.json();
    return b.config_version === edgeConfig.publish.version && b.assignments.every((a) => a.reason !== "unknown_experiment");
  }, { timeout: 20_000, interval: 200, what: "the edge on the published config" });
  edgeConfig.config.version = edgeConfig.publish.version;

  const units = pairs(1000);
  const signed = { controlPlane: new Map(), edge: new Map(), "JS SDK remote": new Map(), "Python SDK": new Map() };
  const key = (u, e) => `${u.unit}\u0000${e}`;

  // The control plane, one experiment at a time.
  const controlPlane = new Map();
  for (const u of units) {
    for (const e of EXPERIMENTS) {
      const r = await cp.api("POST", "/assign", { experiment: e, unit_id: u.unit, attributes: u.attributes });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      controlPlane.set(key(u, e), answer(r.body));
      signed.controlPlane.set(key(u, e), r.body.signature);
    }
  }

  // The edge, every experiment in one request.
  const edgeAnswers = new Map();
  for (const u of units) {
    const r = await fetch(`${edge.url}/v1/assign`, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ unit_id: u.unit, attributes: u.attributes, experiments: EXPERIMENTS, expose: false }) });
    const b = await r.json();
    for (const a of b.assignments) {
      edgeAnswers.set(key(u, a.experiment), answer(a));
      signed.edge.set(key(u, a.experiment), a.signature);
    }
  }

  // The JS SDK against the edge.
  const remote = new Map();
  for (const u of units) {
    const client = createClient({ edgeUrl: edge.url, unitId: u.unit, attributes: u.attributes });
    const b = await client.getAssignments(EXPERIMENTS);
    for (const a of b.assignments) {
      remote.set(key(u, a.experiment), answer(a));
      signed["JS SDK remote"].set(key(u, a.experiment), a.signature);
    }
    await client.close();
  }

  // The JS SDK's wasm engine on the config set the edge holds: no network.
  const local = new Map();
  const evaluator = await createLocalEvaluator(edgeConfig.config);
  for (const u of units) {
    for (const e of EXPERIMENTS) local.set(key(u, e), answer(evaluator.assign(e, u.unit, u.attributes)));
  }

  // The Python SDK, in its own process, from the project's virtualenv.
  const venv = execFileSync(path.join(ROOT, "scripts/python-env.sh"), { encoding: "utf8" }).trim().split("\n").at(-1);
  const script = `
import json, sys
from litmus import ExperimentClient
pairs, experiments = json.load(sys.stdin)
out = []
with ExperimentClient(sys.argv[1], sys.argv[2], fail_safe_enabled=False) as client:
    for p in pairs:
        for e in experiments:
            a = client.get_variant(e, p["unit"], p["attributes"])
            out.append([p["unit"], e, [a.variant_key, a.in_experiment, a.reason, a.assignment_id], a.signature])
json.dump(out, sys.stdout)
`;
  const python = new Map();
  const printed = execFileSync(path.join(venv, "bin/python"), ["-c", script, cp.url, ADMIN], {
    input: JSON.stringify([units, EXPERIMENTS]), encoding: "utf8", maxBuffer: 64 << 20,
  });
  for (const [unit, e, a, signature] of JSON.parse(printed)) {
    python.set(`${unit}\u0000${e}`, a);
    signed["Python SDK"].set(`${unit}\u0000${e}`, signature);
  }

  const sources = { edge: edgeAnswers, "JS SDK remote": remote, "JS SDK local": local, "Python SDK": python };
  for (const [name, got] of Object.entries(sources)) {
    assert.equal(got.size, controlPlane.size, `${name}: ${got.size} answers`);
    const differ = [...controlPlane].filter(([k, v]) => JSON.stringify(got.get(k)) !== JSON.stringify(v));
    assert.deepEqual(differ.slice(0, 5).map(([k, v]) => [k, v, got.get(k)]), [], `${name} differs on ${differ.length} of ${controlPlane.size}`);
  }
  // Signatures too: the edge and the control plane sign with the same key, byte for byte, and the
  // SDKs hand them on (the local evaluator holds no key: it has none).
  assert.ok([...signed.controlPlane.values()].every((s) => /^\d+\.\d+\.[0-9a-f]{16}$/.test(s)), "every control plane answer is signed");
  for (const name of ["edge", "JS SDK remote", "Python SDK"]) {
    const differ = [...signed.controlPlane].filter(([k, v]) => signed[name].get(k) !== v);
    assert.deepEqual(differ.slice(0, 5).map(([k, v]) => [k, v, signed[name].get(k)]), [], `${name}: ${differ.length} signatures differ`);
  }
  assert.ok([...local.values()].length > 0 && evaluator.assign(EXPERIMENTS[0], "u", {}).signature === undefined);
  // Every kind of answer is there, so agreeing means something.
  const reasons = new Set([...controlPlane.values()].map((a) => a[2]));
  for (const r of ["assigned", "targeting", "ramp"]) assert.ok(reasons.has(r), `no ${r} answer among ${[...reasons]}`);
  assert.ok([...controlPlane.values()].filter((a) => a[1]).length > 1000, "most answers are in an experiment");
});
