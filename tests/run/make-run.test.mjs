// `make run` as a new user on this kind of machine runs it: from a copy of the repository in a
// directory only its owner can enter (a `mktemp -d`, like any clone under /root), as whoever runs
// the tests (root in CI). It must bring up the control plane, the console and the edge, keep its
// data across a restart, and refuse a taken port with one clear message.
//
// The copy reuses what `make test` already built (the wasm worker, the dashboard's node_modules,
// the cargo target dir): building them again would only test the compilers, not `make run`.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TOKEN = "make-run-test-admin";
const UP_TIMEOUT = 25 * 60_000; // a fresh CI machine builds the control plane's server profile once

const home = fs.mkdtempSync(path.join(os.tmpdir(), "litmus-private-"));
assert.equal(fs.statSync(home).mode & 0o777, 0o700, "the parent must be private, as /root is");
const clone = path.join(home, "litmus-edge");
let running = [];

function copyRepo() {
  const files = execFileSync("git", ["ls-files", "-z", "-co", "--exclude-standard"], { cwd: ROOT, encoding: "utf8" })
    .split("\0")
    .filter((f) => f && fs.existsSync(path.join(ROOT, f)));
  const list = path.join(home, "files");
  fs.writeFileSync(list, files.join("\0"));
  fs.mkdirSync(clone);
  execFileSync("bash", ["-c", `tar -C "$1" --null -T "$2" -cf - | tar -C "$3" -xpf -`, "_", ROOT, list, clone]);
  // Seeds, newer than the sources, so build-worker.sh and the dashboard install see them as current.
  execFileSync("cp", ["-a", path.join(ROOT, "edge-worker/build"), path.join(clone, "edge-worker/build")]);
  if (fs.existsSync(path.join(ROOT, "dashboard/node_modules"))) {
    execFileSync("cp", ["-al", path.join(ROOT, "dashboard/node_modules"), path.join(clone, "dashboard/node_modules")]);
  }
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const ports = { cp: await freePort(), edge: await freePort(), pg: await freePort() };

function env(extra = {}) {
  const e = { ...process.env, LITMUS_ADDR: `127.0.0.1:${ports.cp}`, LITMUS_EDGE_PORT: String(ports.edge),
    LITMUS_PG_PORT: String(ports.pg), ADMIN_API_TOKENS: TOKEN, CARGO_TARGET_DIR: path.join(ROOT, "target"), ...extra };
  // make test's throwaway cluster must not be what make run uses.
  delete e.DATABASE_URL;
  delete e.LITMUS_PGDATA;
  return e;
}

/** Starts `make run` in the clone, in its own process group; resolves once it says it is up. */
function makeRun(extraEnv) {
  const child = spawn("make", ["run"], { cwd: clone, env: env(extraEnv), detached: true, stdio: ["ignore", "pipe", "pipe"] });
  running.push(child);
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
  const up = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`make run not up after ${UP_TIMEOUT} ms:\n${out.slice(-4000)}`)), UP_TIMEOUT);
    const check = () => {
      if (out.includes("Litmus Edge is up.")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", check);
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`make run exited (${code}) before it was up:\n${out.slice(-4000)}`));
    });
  });
  // A run that is meant to fail (a taken port) never awaits `up`: its rejection is expected there,
  // not an unhandled error that fails the whole file.
  up.catch(() => {});
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, "SIGINT");
    await exited;
    running = running.filter((c) => c !== child);
  };
  return { up, exited, stop, output: () => out };
}

async function api(method, p, body) {
  const res = await fetch(`http://127.0.0.1:${ports.cp}/api/v1${p}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

function pgRunning(dir) {
  try {
    execFileSync(path.join(clone, "scripts/pg.sh"), ["running", dir]);
    return true;
  } catch {
    return false;
  }
}

after(async () => {
  for (const c of running) {
    try {
      process.kill(-c.pid, "SIGKILL");
    } catch {}
  }
  if (fs.existsSync(clone)) {
    try {
      execFileSync("make", ["wipe-data"], { cwd: clone, env: env(), stdio: "ignore" });
    } catch {}
  }
  fs.rmSync(home, { recursive: true, force: true });
});

copyRepo();

test("make run from a private clone brings up everything and keeps its data across restarts", { timeout: UP_TIMEOUT + 5 * 60_000 }, async () => {
  const first = makeRun();
  await first.up;
  const dataDir = first.output().match(/^\s+data\s+(\S+)/m)?.[1];
  assert.ok(dataDir, `make run names its data directory:\n${first.output()}`);
  if (process.getuid() === 0) {
    // postgres cannot enter the private parent, so the cluster must live somewhere it can.
    assert.ok(!dataDir.startsWith(home), `as root the cluster cannot live under ${home}: ${dataDir}`);
  } else {
    assert.equal(dataDir, path.join(clone, ".data/pg"));
  }

  assert.equal((await fetch(`http://127.0.0.1:${ports.cp}/health`)).status, 200);
  const console_ = await fetch(`http://127.0.0.1:${ports.cp}/`);
  assert.equal(console_.status, 200);
  assert.match(await console_.text(), /<div id="app">/, "the console's index.html");
  assert.equal((await fetch(`http://127.0.0.1:${ports.edge}/v1/health`)).status, 200);

  const created = await api("POST", "/experiments", {
    key: "kept_across_runs", name: "Kept across runs", unit_type: "user_id",
    variants: [{ key: "a", weight: 0.5 }, { key: "b", weight: 0.5 }],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const launched = await api("POST", "/experiments/kept_across_runs/launch", { ramp_pct: 100, actor: "test" });
  assert.equal(launched.status, 200, JSON.stringify(launched.body));
  // The edge is wired to this control plane: the launch reaches it.
  let answer;
  for (let i = 0; i < 100; i++) {
    answer = await (await fetch(`http://127.0.0.1:${ports.edge}/v1/assign?experiment=kept_across_runs&unit_id=u1`)).json();
    if (answer.assignments?.[0]?.in_experiment) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(answer.assignments[0].in_experiment, true, JSON.stringify(answer));

  await first.stop();
  assert.match(first.output(), /stopped\./);
  assert.equal(pgRunning(dataDir), false, "Ctrl-C stops the cluster too");

  const second = makeRun();
  await second.up;
  const again = await api("GET", "/experiments/kept_across_runs");
  assert.equal(again.status, 200, "the experiment survived the restart");
  assert.equal(again.body.id, created.body.id);
  assert.equal(again.body.status, "running");
  await second.stop();

  const wiped = execFileSync("make", ["-s", "wipe-data"], { cwd: clone, env: env(), encoding: "utf8" });
  assert.match(wiped, new RegExp(`wiped ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  assert.equal(fs.existsSync(dataDir), false);
});

/** Holds a port the way an unrelated program would, then expects `make run` to refuse it at once. */
async function refusesTaken(portEnv, what) {
  const holder = net.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => holder.once("listening", r));
  const port = holder.address().port;
  try {
    const run = makeRun(portEnv(port));
    let timer;
    const { code } = await Promise.race([
      run.exited,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`make run still going:\n${run.output()}`)), 120_000);
      }),
    ]).finally(() => clearTimeout(timer));
    const out = run.output();
    assert.notEqual(code, 0);
    assert.match(out, new RegExp(`port ${port} \\(${what}\\) is already in use by node \\(pid ${process.pid}\\)`), out);
    // One message, not the teardown of a half-started stack.
    assert.doesNotMatch(out, /stopping|panicked|EADDRINUSE|Address already in use/i, out);
  } finally {
    holder.close();
  }
}

test("a taken control-plane port is refused with one clear message", { timeout: 180_000 }, () =>
  refusesTaken((p) => ({ LITMUS_ADDR: `127.0.0.1:${p}` }), "control plane"));

test("a taken edge port is refused with one clear message", { timeout: 180_000 }, () =>
  refusesTaken((p) => ({ LITMUS_EDGE_PORT: String(p) }), "edge worker"));

test("a taken Postgres port is refused with one clear message", { timeout: 180_000 }, () =>
  refusesTaken((p) => ({ LITMUS_PG_PORT: String(p) }), "Postgres"));
