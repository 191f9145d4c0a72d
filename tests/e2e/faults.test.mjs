// Durability under faults (bounded): nothing acknowledged is lost, nothing is stored twice.
//  1. the control plane is down for 30 s while events keep arriving at the edge;
//  2. the control plane is killed with SIGKILL during sustained ingest;
//  3. Postgres restarts during ingest and the control plane recovers without a restart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "../../edge-worker/test/helpers.mjs";
import { ADMIN, freshDatabase, freePort, psql, sleep, startControlPlane, startEdge, waitFor } from "./stack.mjs";

const experiment = { key: "faults", name: "faults", variants: [{ key: "a", weight: 0.5 }, { key: "b", weight: 0.5 }] };

async function launch(cp) {
  assert.equal((await cp.api("POST", "/experiments", experiment)).status, 201);
  assert.equal((await cp.api("POST", "/experiments/faults/launch", { ramp_pct: 100 })).status, 200);
}

/** Rows and distinct ids among the events whose id starts with `prefix` (each test has its own database);
 * duplicates show as rows > distinct. */
function stored(databaseUrl, prefix = "") {
  const [rows, distinct] = psql(databaseUrl, `SELECT count(*), count(DISTINCT event_id) FROM events WHERE event_id LIKE '${prefix}%'`).split("|").map(Number);
  return { rows, distinct };
}

/** Ids in `file` (one per line) that are not in `events`. */
function missing(databaseUrl, file) {
  const out = execFileSync("psql", [databaseUrl, "-qtA", "-v", "ON_ERROR_STOP=1",
    "-c", "CREATE TEMP TABLE acked (id text)",
    "-c", `\\copy acked FROM '${file}'`,
    "-c", "SELECT count(*), (SELECT count(*) FROM acked) FROM acked WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = acked.id)"],
  { encoding: "utf8" }).trim().split("\n").pop();
  const [lost, acked] = out.split("|").map(Number);
  return { lost, acked };
}

function loadgen(url, { seconds, file }) {
  const bin = path.join(ROOT, "target/debug/loadgen");
  const child = spawn(bin, ["--url", url, "--token", ADMIN, "--experiment", "faults", "--variants", "a,b", "--events", "2000000",
    "--batch", "500", "--concurrency", "4", "--max-seconds", String(seconds), "--acked-file", file, "--quiet"],
  { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, out })));
}

test("control plane down for 30 s behind the edge: every event lands exactly once", { timeout: 180000 }, async () => {
  const databaseUrl = freshDatabase("e2e_outage");
  const [cpPort, edgePort] = [await freePort(), await freePort()];
  const edge = await startEdge({ controlPlaneUrl: `http://127.0.0.1:${cpPort}`, port: edgePort, acceptUnsigned: true });
  const cp = await startControlPlane({ databaseUrl, port: cpPort });
  try {
    await launch(cp);
    const acked = [];
    let n = 0, sending = true;
    const sender = (async () => {
      while (sending) {
        const events = Array.from({ length: 20 }, () => {
          n += 1;
          const e = { kind: n % 3 ? "metric" : "exposure", experiment: "faults", unit_id: `u${n % 500}`, variant_key: "ab"[n % 2],
                      event_id: `outage-${n}` };
          // Exposures carry no metric or value (the edge refuses them there, as the control plane does).
          return e.kind === "metric" ? { ...e, metric: "m", value: n } : e;
        });
        const res = await edge.json("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ events }) });
        assert.equal(res.body.rejected, undefined, JSON.stringify(res.body));
        if (res.status === 202) acked.push(...events.map((e) => e.event_id));
        await sleep(200);
      }
    })();
    await sleep(2000);
    await cp.stop("SIGTERM");
    const downAt = Date.now();
    await sleep(30000);
    const ackedWhileDown = acked.length;
    await cp.start();
    console.log(`control plane was down ${((Date.now() - downAt) / 1000).toFixed(1)} s; ${acked.length} events acknowledged by the edge so far`);
    await sleep(2000);
    sending = false;
    await sender;
    assert.ok(ackedWhileDown > 1000, `the edge kept accepting while the control plane was down (${ackedWhileDown})`);
    const final = await waitFor(() => {
      const s = stored(databaseUrl, "outage-");
      return s.distinct === acked.length ? s : null;
    }, { timeout: 90000, interval: 500, what: `all ${acked.length} acknowledged events in Postgres` });
    assert.equal(final.rows, acked.length, "no event stored twice");
    console.log(`${acked.length} events acknowledged, ${final.distinct} stored, ${final.rows - final.distinct} duplicates`);
  } finally {
    await cp.stop();
    await edge.dispose();
  }
});

test("SIGKILL during sustained ingest: every event answered 202 is in Postgres", { timeout: 120000 }, async () => {
  const databaseUrl = freshDatabase("e2e_kill");
  const port = await freePort();
  const cp = await startControlPlane({ databaseUrl, port });
  await launch(cp);
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), "litmus-kill-")), "acked.txt");
  const run = loadgen(cp.url, { seconds: 8, file });
  await sleep(3000);
  await cp.stop("SIGKILL");
  const { out } = await run;
  await cp.start();
  const { lost, acked } = missing(databaseUrl, file);
  console.log(`killed mid-ingest: ${acked} events had been answered 202, ${lost} of them missing`);
  assert.ok(acked > 1000, `load was running when the process died: ${out}`);
  assert.equal(lost, 0);
  const s = stored(databaseUrl);
  assert.equal(s.rows, s.distinct, "no duplicates");
  await cp.stop();
});

test("Postgres restarts during ingest: the control plane recovers by itself, 503s not 500s", { timeout: 120000 }, async () => {
  const { LITMUS_TEST_PGDIR: dir, LITMUS_TEST_PGPORT: pgPort } = process.env;
  assert.ok(dir && pgPort, "scripts/test.sh exports LITMUS_TEST_PGDIR/LITMUS_TEST_PGPORT");
  const databaseUrl = freshDatabase("e2e_pgrestart");
  const port = await freePort();
  const cp = await startControlPlane({ databaseUrl, port });
  try {
    await launch(cp);
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), "litmus-pg-")), "acked.txt");
    const run = loadgen(cp.url, { seconds: 12, file });
    await sleep(3000);
    execFileSync(path.join(ROOT, "scripts/pg.sh"), ["stop", dir]);
    const notReady = await fetch(`${cp.url}/ready`);
    assert.equal(notReady.status, 503, "/ready reports the database gone");
    await sleep(2000);
    execFileSync(path.join(ROOT, "scripts/pg.sh"), ["start", dir, pgPort]);
    const { out } = await run;
    await waitFor(async () => (await fetch(`${cp.url}/ready`)).ok, { timeout: 15000, what: "ready again" });
    const after = await cp.api("POST", "/events/exposure", { experiment: "faults", unit_id: "after", variant_key: "a" });
    assert.equal(after.status, 202, "ingest works again without restarting the control plane");
    const errors = out.split("\n").find((l) => l.startsWith("errors")) ?? "";
    console.log(`loadgen during the restart: ${errors}`);
    assert.doesNotMatch(errors, /HTTP 500/, "database outages are 503 (retry), never 500");
    const { lost, acked } = missing(databaseUrl, file);
    assert.ok(acked > 1000);
    assert.equal(lost, 0, "nothing answered 202 was lost");
  } finally {
    await cp.stop();
  }
});
