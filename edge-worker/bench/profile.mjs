// CPU profile of one worker under the bench's load: where its time goes, by function.
//
//   INSPECTOR_PORT=9229 N=50 PEER_BUNDLE=... CEILING=... node edge-worker/bench/serve.mjs &
//   node edge-worker/bench/profile.mjs <worker> <url> [seconds] [wrk script args...]
//
// Connects to the worker's inspector (Miniflare proxies it as /core:user:<worker>), samples the
// CPU every 50 µs while wrk drives the same requests as the bench, and prints self time per
// function (JS, the wasm-bindgen glue, and wasm functions by name when the build kept names),
// then the share of samples outside any function (idle: the harness and the runtime).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import WebSocket from "ws";

const [worker, url, seconds = "10", ...wrkArgs] = process.argv.slice(2);
const port = process.env.INSPECTOR_PORT || "9229";
const ws = new WebSocket(`ws://127.0.0.1:${port}/core:user:${worker}`);
await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
let id = 0;
const pending = new Map();
ws.on("message", (data) => {
  const msg = JSON.parse(data);
  if (msg.id && pending.has(msg.id)) {
    pending.get(msg.id)(msg);
    pending.delete(msg.id);
  }
});
const call = (method, params = {}) =>
  new Promise((resolve) => {
    const n = ++id;
    pending.set(n, resolve);
    ws.send(JSON.stringify({ id: n, method, params }));
  });

await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 50 });
await call("Profiler.start");
const wrk = spawnSync("wrk", ["-t2", "-c8", `-d${seconds}s`, "-s", "edge-worker/bench/assign.lua", url, "--", ...wrkArgs], {
  encoding: "utf8",
});
const { result } = await call("Profiler.stop");
ws.close();
const rps = /Requests\/sec:\s+(\S+)/.exec(wrk.stdout)?.[1];
if (process.env.PROFILE_OUT) fs.writeFileSync(process.env.PROFILE_OUT, JSON.stringify(result.profile));

const { nodes, samples } = result.profile;
const byId = new Map(nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of nodes) for (const c of n.children || []) parent.set(c, n.id);
const label = (f) => `${f.functionName || "(anonymous)"}${f.url ? ` ${f.url.split("/").pop()}:${f.lineNumber}:${f.columnNumber}` : ""}`;
const self = new Map();
for (const s of samples) {
  const f = byId.get(s).callFrame;
  // An anonymous frame says little on its own: name it by its caller.
  const up = parent.has(s) ? byId.get(parent.get(s)).callFrame : null;
  const name = f.functionName || !up ? label(f) : `${label(f)} <- ${label(up)}`;
  self.set(name, (self.get(name) || 0) + 1);
}
const total = samples.length;
const idle = self.get("(idle)") || 0;
console.log(`${worker}: ${rps} req/s under wrk, ${total} samples, ${((100 * (total - idle)) / total).toFixed(1)} % busy in the isolate`);
console.log("self % of busy  function");
for (const [name, n] of [...self].filter(([k]) => k !== "(idle)").sort((a, b) => b[1] - a[1]).slice(0, 40)) {
  console.log(`${((100 * n) / (total - idle)).toFixed(1).padStart(6)}  ${name.slice(0, 150)}`);
}
