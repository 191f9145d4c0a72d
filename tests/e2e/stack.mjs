// The real stack for end-to-end tests: a fresh database on the test Postgres (DATABASE_URL), the
// control plane binary (target/debug/litmus-control-plane), and the built worker in workerd.
import { spawn, execFileSync } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { ROOT, startWorker, waitFor, PUBLISH_TOKEN, INGEST_TOKEN, TEST_SIGNING_KEY } from "../../edge-worker/test/helpers.mjs";

export { waitFor, sleep } from "../../edge-worker/test/helpers.mjs";
export const ADMIN = "e2e-admin-token";

export async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A new, empty database on the test cluster; returns its URL. */
export function freshDatabase(name) {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error("DATABASE_URL must point at the test Postgres (scripts/test.sh sets it)");
  const db = `${name}_${process.pid}_${Date.now() % 100000}`;
  const admin = new URL(base);
  admin.pathname = "/postgres";
  execFileSync("psql", [admin.toString(), "-qc", `CREATE DATABASE ${db}`]);
  const url = new URL(base);
  url.pathname = `/${db}`;
  return url.toString();
}

export function psql(databaseUrl, sql) {
  return execFileSync("psql", [databaseUrl, "-qtAc", sql], { encoding: "utf8" }).trim();
}

/** Starts (and can kill/restart) the control plane binary on a fixed port. */
export async function startControlPlane({ databaseUrl, port, env = {} }) {
  const bin = path.join(ROOT, "target/debug/litmus-control-plane");
  const url = `http://127.0.0.1:${port}`;
  let child;
  const logs = [];
  const start = async () => {
    child = spawn(bin, [], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: databaseUrl,
        LITMUS_ADDR: `127.0.0.1:${port}`,
        ADMIN_API_TOKENS: ADMIN,
        INGEST_API_TOKENS: INGEST_TOKEN,
        SIGNING_KEYS: TEST_SIGNING_KEY,
        RUST_LOG: "warn",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.on("data", (d) => logs.push(d.toString()));
    child.stderr.on("data", (d) => logs.push(d.toString()));
    await waitFor(async () => (await fetch(`${url}/ready`).catch(() => null))?.ok, { timeout: 30000, what: "control plane ready" });
  };
  const stop = async (signal = "SIGTERM") => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
  };
  await start();
  const api = async (method, p, body) => {
    const res = await fetch(`${url}/api/v1${p}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  return { url, api, start, stop, logs };
}

/** The worker in workerd, serving on a port, publishing target and event sink wired to `controlPlaneUrl`,
 * signing with the control plane's key. Events without a signature are refused, as in a deployment,
 * unless `acceptUnsigned` (a transport test that sends made-up events). */
export async function startEdge({ controlPlaneUrl, port, acceptUnsigned = false }) {
  return startWorker({
    port,
    retryDelay: 1,
    maxRetries: 100,
    bindings: { CONTROL_PLANE_URL: controlPlaneUrl, CONFIG_TTL_SECONDS: "2", UNSIGNED_EVENTS: acceptUnsigned ? "accept" : undefined },
  });
}

/** A fresh database, the edge in workerd and the control plane publishing to it: what most
 * end-to-end tests start from. `dispose()` stops both. */
export async function startStack(name, { cpEnv = {} } = {}) {
  const databaseUrl = freshDatabase(name);
  const [cpPort, edgePort] = [await freePort(), await freePort()];
  const edge = await startEdge({ controlPlaneUrl: `http://127.0.0.1:${cpPort}`, port: edgePort });
  const cp = await startControlPlane({
    databaseUrl,
    port: cpPort,
    env: { EDGE_PUBLISH_URL: `${edge.url}/v1/admin/config`, EDGE_PUBLISH_TOKEN: PUBLISH_TOKEN, ...cpEnv },
  });
  const dispose = async () => {
    await cp.stop();
    await edge.dispose();
  };
  return { databaseUrl, cp, edge, dispose };
}

export { PUBLISH_TOKEN, INGEST_TOKEN };
