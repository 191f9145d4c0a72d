// Serves the three workers `scripts/bench-edge.sh` compares, in one Miniflare (workerd), each on
// its own loopback socket (`unsafeDirectSockets`: through Miniflare's entry worker everything
// caps near 3.3k req/s here and the differences vanish):
//   litmus    our release build (edge-worker/build), KV seeded through the real publish route, the
//             EVENTS queue bound as in wrangler.toml, its consumer posting to an in-process
//             stand-in for the control plane's batch endpoint;
//   growthbook the peer: GrowthBook's JS SDK in a plain worker (bench/peer/worker.mjs, bundled);
//   ceiling   a worker that does nothing: the harness's own limit.
// Both evaluators get the same N experiments: 3 variants, 80 % coverage, a two-attribute
// condition (country in a list, age at least a bound), written in each one's language.
//
//   N=50 PEER_BUNDLE=/tmp/peer.js CEILING=edge-worker/bench/peer/ceiling.mjs node edge-worker/bench/serve.mjs
// prints "ready litmus=<url> growthbook=<url> ceiling=<url> sink=<url>" once serving.
import http from "node:http";
import path from "node:path";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { BUILD, workerModules } from "../test/helpers.mjs";

const N = Number(process.env.N || 50);
const TOKEN = "bench-publish-token";

// The stand-in control plane: counts what reaches it. The consumer names how many queue messages
// each post carries (x-litmus-queue-messages), so the bench can report messages per request.
const seen = { posts: 0, bytes: 0, messages: 0 };
const sink = http.createServer((req, res) => {
  if (req.method === "GET") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(seen));
    return;
  }
  // It only counts: parsing tens of MB/s of events here would bill the worker for the stand-in's
  // work on the same two cores (the real control plane runs elsewhere).
  let bytes = 0;
  req.on("data", (c) => (bytes += c.length));
  req.on("end", () => {
    seen.posts += 1;
    seen.bytes += bytes;
    seen.messages += Number(req.headers["x-litmus-queue-messages"] || 0);
    res.writeHead(202, { "content-type": "application/json" });
    res.end('{"accepted":0,"duplicates":0}');
  });
});
await new Promise((r) => sink.listen(0, "127.0.0.1", r));

const COUNTRIES = [["US", "CA"], ["US", "GB", "DE"], ["FR"], ["US", "CA", "GB", "DE", "FR", "JP"], ["BR", "MX"]];
const specs = Array.from({ length: N }, (_, i) => ({
  key: `bench_${String(i).padStart(2, "0")}`,
  countries: COUNTRIES[i % COUNTRIES.length],
  minAge: [18, 21, 30, 40][i % 4],
  weights: [0.34, 0.33, 0.33],
}));
const ours = specs.map((s) => ({
  key: s.key,
  status: "running",
  version: 1,
  unit_type: "user_id",
  ramp_pct: 80,
  targeting: { country: { in: s.countries }, age: { gte: s.minAge } },
  variants: ["control", "b", "c"].map((key, v) => ({ key, weight: s.weights[v], config_json: { v } })),
}));
const peer = specs.map((s) => ({
  key: s.key,
  variations: [{ v: 0 }, { v: 1 }, { v: 2 }],
  meta: [{ key: "control" }, { key: "b" }, { key: "c" }],
  weights: s.weights,
  coverage: 0.8,
  condition: { country: { $in: s.countries }, age: { $gte: s.minAge } },
  hashAttribute: "id",
  hashVersion: 2,
}));

const socket = { host: "127.0.0.1", port: 0 };
const mf = new Miniflare(convertV4MiniflareOptions({
  host: "127.0.0.1",
  port: 0,
  compatibilityDate: "2026-11-01",
  cf: false,
  // INSPECTOR_PORT: Chrome DevTools protocol on each worker (bench/profile.mjs takes CPU profiles).
  ...(process.env.INSPECTOR_PORT ? { inspectorPort: Number(process.env.INSPECTOR_PORT) } : {}),
  workers: [
    {
      name: "litmus",
      modulesRoot: BUILD,
      modules: workerModules(),
      kvNamespaces: { CONFIG: "bench-config" },
      queueProducers: { EVENTS: "litmus-events" },
      queueConsumers: { "litmus-events": { maxBatchSize: 20, maxBatchTimeout: 1, maxRetries: 3 } }, // as wrangler.toml
      bindings: {
        PUBLISH_TOKEN: TOKEN,
        INGEST_TOKEN: "bench-ingest-token",
        CONTROL_PLANE_URL: `http://127.0.0.1:${sink.address().port}`,
        CONFIG_TTL_SECONDS: "5",
        ALLOWED_ORIGINS: "*",
        // Signing on, as deployed: every answer carries its signature (50 per request at 50
        // experiments), and the bench measures what that costs.
        SIGNING_KEYS: "62656e63682d7369676e696e672d6b31",
        // The peer targets on the attributes each request sends (its countries vary); so does
        // ours here, rather than on Miniflare's one made-up request.cf location.
        CLIENT_ATTRIBUTES: "trust",
      },
      unsafeDirectSockets: [socket],
    },
    {
      name: "growthbook",
      modules: true,
      modulesRoot: path.dirname(path.resolve(process.env.PEER_BUNDLE)),
      scriptPath: path.resolve(process.env.PEER_BUNDLE),
      bindings: { GB_EXPERIMENTS: JSON.stringify(peer) },
      unsafeDirectSockets: [socket],
    },
    {
      name: "ceiling",
      modules: true,
      modulesRoot: path.dirname(path.resolve(process.env.CEILING)),
      scriptPath: path.resolve(process.env.CEILING),
      unsafeDirectSockets: [socket],
    },
  ],
}));
await mf.ready;
const urls = {};
for (const name of ["litmus", "growthbook", "ceiling"]) urls[name] = (await mf.unsafeGetDirectURL(name)).toString().replace(/\/$/, "");

const pub = await fetch(`${urls.litmus}/v1/admin/config`, {
  method: "PUT",
  headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
  body: JSON.stringify({ version: 1, experiments: ours }),
});
if (pub.status !== 200) {
  console.error("publish failed", pub.status, await pub.text());
  process.exit(1);
}
await pub.arrayBuffer();
console.log(
  `ready litmus=${urls.litmus} growthbook=${urls.growthbook} ceiling=${urls.ceiling} sink=http://127.0.0.1:${sink.address().port}/`,
);

process.on("SIGTERM", async () => {
  await mf.dispose();
  process.exit(0);
});
