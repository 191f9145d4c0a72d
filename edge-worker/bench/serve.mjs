// Serves the built worker (edge-worker/build) with Miniflare on loopback for scripts/bench-edge.sh:
// KV seeded through the real publish route with 50 running experiments (mixed targeting and
// ramps), the EVENTS queue bound as in wrangler.toml, and an in-process stand-in for the control
// plane's batch endpoint so exposures flow all the way through.
//
//   PORT=8799 node edge-worker/bench/serve.mjs     # prints "ready <url> sink <url>" once serving
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";

const BUILD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../build");
const PORT = Number(process.env.PORT || 8799);
const TOKEN = "bench-publish-token";

let batches = 0;
let events = 0;
const sink = http.createServer((req, res) => {
  if (req.method === "GET") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ batches, events }));
    return;
  }
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    batches += 1;
    try {
      events += JSON.parse(body).events.length;
    } catch {}
    res.writeHead(202, { "content-type": "application/json" });
    res.end('{"accepted":0,"duplicates":0}');
  });
});
await new Promise((r) => sink.listen(0, "127.0.0.1", r));

const mf = new Miniflare(convertV4MiniflareOptions({
  host: "127.0.0.1",
  port: PORT,
  modulesRoot: BUILD,
  modules: [
    { type: "ESModule", path: path.join(BUILD, "index.js") },
    { type: "CompiledWasm", path: path.join(BUILD, "index_bg.wasm") },
  ],
  compatibilityDate: "2026-11-01",
  kvNamespaces: { CONFIG: "bench-config" },
  queueProducers: { EVENTS: "litmus-events" },
  queueConsumers: { "litmus-events": { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 3 } },
  bindings: {
    PUBLISH_TOKEN: TOKEN,
    INGEST_TOKEN: "bench-ingest-token",
    CONTROL_PLANE_URL: `http://127.0.0.1:${sink.address().port}`,
    CONFIG_TTL_SECONDS: "5",
    ALLOWED_ORIGINS: "*",
  },
  cf: false,
}));
const url = await mf.ready;

// 50 experiments; the bench's requests (country=US, platform=ios, age=30, app_version=2.3.1) match
// about half of the targeting rules, and ramps vary, so both in- and out-of-experiment paths run.
const targetings = [
  {},
  { country: { in: ["US", "CA"] } },
  { country: "FR" },
  { platform: { in: ["ios", "android"] }, age: { gte: 18 } },
  { app_version: { semver: ">=2.0.0, <3" } },
  { or: [{ country: "DE" }, { age: { lt: 21 } }] },
  { email: { regex: "@example\\.com$" } },
  { not: { platform: "web" } },
];
const experiments = Array.from({ length: 50 }, (_, i) => ({
  key: `bench_${String(i).padStart(2, "0")}`,
  status: "running",
  version: 1,
  unit_type: "user_id",
  ramp_pct: [100, 50, 10, 100, 75][i % 5],
  targeting: targetings[i % targetings.length],
  variants:
    i % 3 === 0
      ? [{ key: "control", weight: 0.34, config_json: { v: 0 } }, { key: "b", weight: 0.33, config_json: { v: 1 } }, { key: "c", weight: 0.33, config_json: { v: 2 } }]
      : [{ key: "control", weight: 0.5, config_json: { v: 0 } }, { key: "b", weight: 0.5, config_json: { v: 1, note: "treatment" } }],
}));
const pub = await mf.dispatchFetch(new URL("/v1/admin/config", url), {
  method: "PUT",
  headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
  body: JSON.stringify({ version: 1, experiments }),
});
if (pub.status !== 200) {
  console.error("publish failed", pub.status, await pub.text());
  process.exit(1);
}
await pub.arrayBuffer();
// `GET <sink>/` reports what reached the stand-in control plane.
console.log(`ready ${url} sink http://127.0.0.1:${sink.address().port}/`);

process.on("SIGTERM", async () => {
  await mf.dispose();
  process.exit(0);
});
