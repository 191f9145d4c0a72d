// Safe rollouts end to end: the control plane's watch job ramps an experiment step by step while
// its guardrail holds, the edge follows each step within seconds, and a change that hurts the
// guardrail is rolled back to 0 % on its own: the edge then serves nobody the treatment. Every
// step and its reason are in the audit log, and a webhook receiver gets each rollout alert,
// signed, after a failed first attempt.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import crypto from "node:crypto";
import { startStack, waitFor, INGEST_TOKEN } from "./stack.mjs";
import { mulberry32 } from "../lib/random.mjs";

let cp, edge, dispose;

before(async () => {
  ({ cp, edge, dispose } = await startStack("e2e_rollout", {
    // The receiver is on this machine: private targets allowed, as an operator would for a test.
    cpEnv: { LITMUS_WATCH_EVERY: "1s", LITMUS_WEBHOOK_BACKOFF: "1s", WEBHOOK_ALLOW_PRIVATE: "true" },
  }));
});

after(async () => {
  await dispose?.();
});

const random = mulberry32(15);
let nextUnit = 0;

/** `n` new users through the edge: [{unit, in_experiment, variant}]. */
async function assign(key, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const unit = `${key}-user-${nextUnit++}`;
    const res = await fetch(`${edge.url}/v1/assign`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ unit_id: unit, experiments: [key] }),
    });
    assert.equal(res.status, 200);
    const a = (await res.json()).assignments[0];
    out.push({ unit, in_experiment: a.in_experiment, variant: a.variant_key, signature: a.signature });
  }
  return out;
}

/** Errors of the exposed units, at each variant's rate, through the edge's event endpoint. */
async function errors(key, assigned, rates) {
  const events = assigned
    .filter((a) => a.in_experiment && random() < rates[a.variant])
    .map(({ unit, variant, signature }) => ({ kind: "conversion", experiment: key, unit_id: unit, variant_key: variant, metric: "errors", signature }));
  if (!events.length) return;
  const res = await fetch(`${edge.url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${INGEST_TOKEN}` },
    body: JSON.stringify({ events }),
  });
  assert.equal(res.status, 202, await res.text());
}

const plan = {
  steps: [{ ramp_pct: 10, hold_seconds: 2 }, { ramp_pct: 50, hold_seconds: 2 }, { ramp_pct: 100, hold_seconds: 0 }],
  min_units_per_step: 60,
};

async function create(key) {
  const res = await cp.api("POST", "/experiments", {
    key, name: key, unit_type: "user_id", targeting: {},
    variants: [{ key: "control", weight: 0.5 }, { key: "treatment", weight: 0.5 }],
    metrics: [{ name: "errors", kind: "proportion", role: "guardrail", direction: "decrease" }],
    rollout: plan,
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const launched = await cp.api("POST", `/experiments/${key}/launch`, {});
  assert.equal(launched.status, 200, JSON.stringify(launched.body));
  assert.equal(launched.body.ramp_pct, 10, "a safe rollout starts at its first step");
}

const share = (assigned) => assigned.filter((a) => a.in_experiment).length / assigned.length;

/** Until the experiment's rollout outcome is `outcome`, send traffic in rounds. */
async function driveUntil(key, outcome, rates, seen) {
  await waitFor(async () => {
    const assigned = await assign(key, 150);
    await errors(key, assigned, rates);
    const exp = (await cp.api("GET", `/experiments/${key}`)).body;
    seen.push([exp.ramp_pct, share(assigned)]);
    return exp.rollout_state?.outcome === outcome;
  }, { timeout: 150_000, interval: 300, what: `${key} rollout ${outcome}` });
}

function trail(entries) {
  return entries.map((e) => `${e.at} ${e.actor.padEnd(8)} ${e.action.padEnd(6)}` +
    (e.details.ramp_pct ? ` ${e.details.ramp_pct.from} → ${e.details.ramp_pct.to} %` : "") + (e.details.reason ? `  ${e.details.reason}` : ""));
}

test("a safe rollout advances while its guardrail holds and rolls back on a breach; the edge follows", { timeout: 300_000 }, async () => {
  // A receiver that refuses its first request: the retry must deliver it.
  const received = [];
  let calls = 0;
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      calls++;
      received.push({ headers: req.headers, body });
      res.writeHead(calls === 1 ? 503 : 200).end();
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const hook = await cp.api("POST", "/webhooks", { url: `http://127.0.0.1:${server.address().port}/litmus`, kinds: ["rollout"] });
  assert.equal(hook.status, 201, JSON.stringify(hook.body));

  try {
    // Healthy: both arms error at 5 %. 10 → 50 → 100 %, then complete.
    await create("checkout_safe");
    const safe = [];
    await driveUntil("checkout_safe", "complete", { control: 0.05, treatment: 0.05 }, safe);
    const ramps = [...new Set(safe.map(([r]) => r))];
    assert.deepEqual(ramps, [10, 50, 100], `ramps seen: ${ramps}`);
    // The edge serves the final ramp to new users.
    await waitFor(async () => share(await assign("checkout_safe", 200)) === 1, { timeout: 20_000, what: "the edge at 100 %" });
    const safeAudit = (await cp.api("GET", "/experiments/checkout_safe/audit")).body;
    const steps = safeAudit.filter((e) => e.actor === "rollout");
    assert.deepEqual(steps.map((e) => e.details.ramp_pct.to), [50, 100, 100]);
    assert.ok(steps.every((e) => /safe rollout (advanced|complete)/.test(e.details.reason)), JSON.stringify(steps));
    console.log(`audit trail of checkout_safe:\n  ${trail(safeAudit).join("\n  ")}`);

    // Harmful: treatment errors at 45 % against 5 %. Rolled back to 0 % on its own.
    await create("search_unsafe");
    const unsafe = [];
    await driveUntil("search_unsafe", "rolled_back", { control: 0.05, treatment: 0.45 }, unsafe);
    const exp = (await cp.api("GET", "/experiments/search_unsafe")).body;
    assert.equal(exp.ramp_pct, 0);
    assert.equal(exp.status, "running");
    assert.match(exp.rollout_state.reason, /guardrail `errors` breached by treatment/);
    // Within seconds, no new user is in the experiment any more.
    await waitFor(async () => share(await assign("search_unsafe", 100)) === 0, { timeout: 20_000, what: "the edge at 0 %" });
    const unsafeAudit = (await cp.api("GET", "/experiments/search_unsafe/audit")).body;
    const last = unsafeAudit.at(-1);
    assert.equal(last.actor, "rollout");
    assert.equal(last.details.ramp_pct.to, 0);
    assert.match(last.details.reason, /rolled back to 0 %: guardrail `errors` breached/);
    console.log(`audit trail of search_unsafe:\n  ${trail(unsafeAudit).join("\n  ")}`);

    const alerts = (await cp.api("GET", "/alerts?kind=rollout")).body;
    assert.ok(alerts.some((a) => a.experiment_key === "search_unsafe" && a.action === "rollback" && a.severity === "critical"));

    // Every rollout alert reached the receiver, signed with the webhook's secret.
    await waitFor(async () => new Set(received.filter((r) => r.headers["x-litmus-event"] === "alert.rollout").map((r) => JSON.parse(r.body).alert.id)).size === alerts.length,
      { timeout: 20_000, what: "every rollout alert delivered" });
    assert.ok(calls > alerts.length, "the first attempt failed and was retried");
    for (const r of received) {
      const [, t, v1] = r.headers["x-litmus-signature"].match(/^t=(\d+),v1=([0-9a-f]{64})$/);
      const expected = crypto.createHmac("sha256", hook.body.secret).update(`${t}.${r.body}`).digest("hex");
      assert.equal(v1, expected);
    }
    const log = (await cp.api("GET", `/webhooks/${hook.body.id}/deliveries`)).body;
    assert.ok(log.every((d) => d.status === "delivered"), JSON.stringify(log));
    assert.ok(log.some((d) => d.attempts === 2 && d.last_status === 200), JSON.stringify(log));
  } finally {
    server.close();
  }
});
