// A user's script, as it would run against the stack: launch an experiment, poll the edge until it
// serves it, then ask for 400 units one after another and compare with the control plane. Once a
// client has been answered from a config version, no later answer to it may come from an older
// one: no `unknown_experiment` after the first serve, the same variant as the control plane for
// every unit.
//
// Two shapes, each run RUNS times (FIRST_SERVE_RUNS):
// - one isolate, as `wrangler dev` (make run) serves: the control plane's push reaches the isolate
//   that answers, and the client sends nothing back;
// - two isolates sharing the KV namespace, as a Cloudflare location runs several: the push reaches
//   one, the other learns of it only through KV (a KV-only update), and the client's requests land
//   on both in turn, GET and POST. The client echoes the highest `config_version` it was answered
//   from as `min_version`, as the SDKs do: the isolate still holding the older set must not answer
//   from it. Without the echo that isolate answers `unknown_experiment` until its TTL runs out.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { freePort, freshDatabase, startControlPlane, PUBLISH_TOKEN } from "./stack.mjs";
import { startIsolates } from "../../edge-worker/test/helpers.mjs";

const RUNS = Number(process.env.FIRST_SERVE_RUNS ?? 5);
const UNITS = 400;
const variants = [
  { key: "control", weight: 0.34 },
  { key: "a", weight: 0.33 },
  { key: "b", weight: 0.33 },
];

let cp, edges;

before(async () => {
  const cpPort = await freePort();
  // A TTL long enough that no re-read comes to the rescue within a burst.
  edges = await startIsolates({ count: 2, bindings: { CONTROL_PLANE_URL: `http://127.0.0.1:${cpPort}`, CONFIG_TTL_SECONDS: "30" } });
  cp = await startControlPlane({
    databaseUrl: freshDatabase("e2e_first_serve"),
    port: cpPort,
    env: { EDGE_PUBLISH_URL: `${edges.urls[0]}/v1/admin/config`, EDGE_PUBLISH_TOKEN: PUBLISH_TOKEN },
  });
});

after(async () => {
  await cp?.stop();
  await edges?.dispose();
});

/** A client of the edge: `echo` sends back the highest config version it was answered from. */
function client({ echo }) {
  let seen = null;
  return async (url, { key, unit, post }) => {
    const min = echo && seen !== null ? seen : undefined;
    const res = post
      ? await fetch(`${url}/v1/assign`, { method: "POST", body: JSON.stringify({ unit_id: unit, experiments: [key], expose: false, min_version: min }) })
      : await fetch(`${url}/v1/assign?experiment=${key}&unit_id=${unit}&expose=false${min === undefined ? "" : `&min_version=${min}`}`);
    assert.equal(res.status, 200);
    const body = await res.json();
    seen = Math.max(seen ?? -1, body.config_version);
    return { ...body.assignments[0], config_version: body.config_version };
  };
}

async function launchAndBurst(key, { ask, urlOf, post }) {
  assert.equal((await cp.api("POST", "/experiments", { key, name: key, variants })).status, 201);
  assert.equal((await cp.api("POST", `/experiments/${key}/launch`, { ramp_pct: 100 })).status, 200);
  const deadline = Date.now() + 20_000;
  let probe;
  for (;;) {
    probe = await ask(edges.urls[0], { key, unit: "probe" });
    if (probe.reason !== "unknown_experiment") break;
    assert.ok(Date.now() < deadline, "the launch reached the edge");
  }
  const answers = [];
  for (let i = 0; i < UNITS; i++) answers.push(await ask(urlOf(i), { key, unit: `u${i}`, post: post(i) }));

  const older = answers.flatMap((a, i) =>
    a.reason === "unknown_experiment" || a.config_version < probe.config_version ? [`#${i}: ${a.reason} at version ${a.config_version}`] : []);
  assert.deepEqual(older.slice(0, 10), [], `${older.length} of ${UNITS} answers came from a config older than the probe's (${probe.config_version})`);

  const disagree = [];
  for (let i = 0; i < UNITS; i++) {
    const { status, body } = await cp.api("POST", "/assign", { experiment: key, unit_id: `u${i}` });
    assert.equal(status, 200);
    if (body.variant_key !== answers[i].variant_key || body.in_experiment !== answers[i].in_experiment) {
      disagree.push(`u${i}: control plane ${body.variant_key}/${body.in_experiment}, edge ${answers[i].variant_key}/${answers[i].in_experiment}`);
    }
  }
  assert.deepEqual(disagree.slice(0, 10), [], `${disagree.length} of ${UNITS} units disagree`);
}

describe("one isolate (make run's wrangler dev), a client that sends nothing back", () => {
  for (let run = 0; run < RUNS; run++) {
    test(`run ${run}: after the first serve of a launch, ${UNITS} answers agree with the control plane`, { timeout: 60_000 }, () =>
      launchAndBurst(`one_${run}`, { ask: client({ echo: false }), urlOf: () => edges.urls[0], post: () => false }));
  }
});

describe("two isolates and a KV-only update, a client that echoes its version", () => {
  for (let run = 0; run < RUNS; run++) {
    test(`run ${run}: after the first serve of a launch, ${UNITS} answers from either isolate, GET and POST, agree with the control plane`, { timeout: 60_000 }, () =>
      launchAndBurst(`two_${run}`, { ask: client({ echo: true }), urlOf: (i) => edges.urls[(i + 1) % 2], post: (i) => i % 4 >= 2 }));
  }
});
