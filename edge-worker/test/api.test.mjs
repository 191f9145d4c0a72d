// The worker's HTTP surface in workerd: config cache and safe defaults, publishing, assignment
// input handling, the anonymous-unit cookie and CORS.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSink, experiment, PUBLISH_TOKEN, UUID } from "./helpers.mjs";

let sink;
before(async () => {
  sink = await startSink();
});
after(async () => {
  await sink?.close();
});

const assertErrorShape = (res, status, code) => {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(typeof res.body.error?.message, "string");
  if (code) assert.equal(res.body.error.code, code);
  assert.match(res.headers.get("content-type"), /application\/json/);
};

describe("config cache and safe defaults", () => {
  test("empty KV: health answers, every requested experiment is out, nothing is a 5xx", async () => {
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url } });
    try {
      const h = await w.json("/v1/health");
      assert.equal(h.status, 200);
      assert.deepEqual(h.body, { status: "ok", config_version: null, experiments: 0 });
      const res = await w.assign({ unit_id: "u1", experiments: ["checkout", "pricing"] });
      assert.equal(res.status, 200);
      assert.equal(res.body.config_version, null);
      assert.deepEqual(res.body.assignments.map((a) => [a.experiment, a.in_experiment, a.variant_key]), [
        ["checkout", false, null],
        ["pricing", false, null],
      ]);
      const all = await w.json("/v1/assign?unit_id=u1");
      assert.equal(all.status, 200);
      assert.deepEqual(all.body.assignments, []);
    } finally {
      await w.dispose();
    }
  });

  test("min_version: a client ahead of the isolate's cached set is answered from KV's newer one at once", async () => {
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, CONFIG_TTL_SECONDS: "60" } });
    try {
      assert.equal((await w.publish({ version: 4, experiments: [experiment("checkout")] })).status, 200);
      // A KV-only update (how production publishes): this isolate keeps its set for the TTL...
      await w.kv.put("configs", JSON.stringify({ version: 5, experiments: [experiment("checkout"), experiment("launched")] }));
      const q = "/v1/assign?unit_id=u1&experiment=launched&expose=false";
      const plain = await w.json(q);
      assert.equal(plain.body.config_version, 4);
      assert.equal(plain.body.assignments[0].reason, "unknown_experiment");
      // ...unless the client says it was answered from version 5 already, on either road.
      for (const res of [await w.json(`${q}&min_version=5`), await w.assign({ unit_id: "u1", experiments: ["launched"], expose: false, min_version: 5 })]) {
        assert.equal(res.status, 200);
        assert.equal(res.body.config_version, 5);
        assert.equal(res.body.assignments[0].in_experiment, true);
      }
      // From then on the isolate holds 5 for everyone.
      assert.equal((await w.json(q)).body.config_version, 5);
      // A version nothing published: the newest set there is, which says which it is.
      const ahead = await w.json(`${q}&min_version=99`);
      assert.equal(ahead.status, 200);
      assert.equal(ahead.body.config_version, 5);
      for (const bad of ["-1", "x", "1.5", ""]) {
        const res = await w.json(`${q}&min_version=${bad}`);
        assert.equal(res.status, 422, bad);
        assert.equal(res.body.error.field, "min_version");
      }
      assert.equal((await w.assign({ unit_id: "u1", min_version: "5" })).body.error.field, "min_version");
    } finally {
      await w.dispose();
    }
  });

  test("garbage in KV: safe default, no 5xx", async () => {
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, CONFIG_TTL_SECONDS: "0" } });
    try {
      for (const garbage of ["not json", '{"version":"x"}', "[]", '{"version":3,"experiments":{}}', "\u0000\u0001"]) {
        await w.kv.put("configs", garbage);
        const res = await w.json("/v1/assign?unit_id=u1&experiment=checkout");
        assert.equal(res.status, 200, garbage);
        assert.equal(res.body.assignments[0].in_experiment, false);
        assert.equal((await w.json("/v1/health")).status, 200);
      }
    } finally {
      await w.dispose();
    }
  });

  test("invalid experiments in KV are dropped, the valid ones still served", async () => {
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, CONFIG_TTL_SECONDS: "0" } });
    try {
      const bad = experiment("bad_weights", { variants: [{ key: "a", weight: 0.9 }, { key: "b", weight: 0.9 }] });
      const unknownHash = experiment("future", { hash_version: 99 });
      // A condition the worker cannot read (an operator a newer control plane knows): matches nobody.
      const unreadable = experiment("unreadable", { targeting: { country: { $inn: ["US"] } } });
      await w.kv.put("configs", JSON.stringify({ version: 4, experiments: [bad, experiment("good"), unknownHash, { nonsense: true }, unreadable] }));
      const res = await w.json("/v1/assign?unit_id=u1&country=US&experiment=good&experiment=bad_weights&experiment=future&experiment=unreadable");
      assert.equal(res.status, 200);
      assert.equal(res.body.config_version, 4);
      const [good, badA, fut, unr] = res.body.assignments;
      assert.equal(good.reason, "assigned");
      assert.equal(badA.reason, "unknown_experiment");
      assert.equal(fut.reason, "unknown_experiment");
      assert.deepEqual([unr.reason, unr.in_experiment, unr.variant_key], ["targeting", false, "control"]);
      assert.deepEqual((await w.json("/v1/health")).body, { status: "ok", config_version: 4, experiments: 2 });
    } finally {
      await w.dispose();
    }
  });

  test("KV turning to garbage keeps the last good set; a newer valid set replaces it", async () => {
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, CONFIG_TTL_SECONDS: "0" } });
    try {
      await w.kv.put("configs", JSON.stringify({ version: 7, experiments: [experiment("checkout")] }));
      assert.equal((await w.json("/v1/health")).body.config_version, 7);
      await w.kv.put("configs", "{{{ garbage");
      const res = await w.json("/v1/assign?unit_id=u1&experiment=checkout");
      assert.equal(res.body.config_version, 7);
      assert.equal(res.body.assignments[0].in_experiment, true);
      await w.kv.delete("configs");
      assert.equal((await w.json("/v1/health")).body.config_version, 7);
      await w.kv.put("configs", JSON.stringify({ version: 8, experiments: [] }));
      assert.deepEqual((await w.json("/v1/health")).body, { status: "ok", config_version: 8, experiments: 0 });
    } finally {
      await w.dispose();
    }
  });

  test("KV is re-read only after CONFIG_TTL_SECONDS", async () => {
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, CONFIG_TTL_SECONDS: "1" } });
    try {
      await w.kv.put("configs", JSON.stringify({ version: 1, experiments: [] }));
      assert.equal((await w.json("/v1/health")).body.config_version, 1);
      await w.kv.put("configs", JSON.stringify({ version: 2, experiments: [] }));
      assert.equal((await w.json("/v1/health")).body.config_version, 1, "served from the isolate cache");
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal((await w.json("/v1/health")).body.config_version, 2);
    } finally {
      await w.dispose();
    }
  });
});

test("the fast route answers from a set past its TTL once while it re-reads KV behind the answer; after two TTLs it reads first", async () => {
  const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, CONFIG_TTL_SECONDS: "1" } });
  const version = async () => (await w.json("/v1/assign?unit_id=u1&expose=false")).body.config_version;
  try {
    await w.kv.put("configs", JSON.stringify({ version: 1, experiments: [] }));
    assert.equal(await version(), 1);
    await w.kv.put("configs", JSON.stringify({ version: 2, experiments: [] }));
    await new Promise((r) => setTimeout(r, 1200));
    // Between one and two TTLs: this answer comes from the cached set, and starts the re-read.
    assert.equal(await version(), 1, "answered at once from the set in hand");
    let seen = 1;
    for (let i = 0; i < 40 && seen !== 2; i++) {
      await new Promise((r) => setTimeout(r, 25));
      seen = await version();
    }
    assert.equal(seen, 2, "the re-read behind that answer installed the new set");
    // An isolate idle past two TTLs does not answer from a set that old.
    await w.kv.put("configs", JSON.stringify({ version: 3, experiments: [] }));
    await new Promise((r) => setTimeout(r, 2200));
    assert.equal(await version(), 3);
  } finally {
    await w.dispose();
  }
});

describe("publishing", () => {
  let w;
  before(async () => {
    w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url } });
  });
  after(async () => {
    await w?.dispose();
  });

  test("without or with a wrong bearer token: 401 and nothing written", async () => {
    for (const token of [null, "wrong-token", PUBLISH_TOKEN + "x"]) {
      const res = await w.publish({ version: 1, experiments: [experiment("checkout")] }, token);
      assertErrorShape(res, 401, "unauthorized");
    }
    const basic = await w.json("/v1/admin/config", { method: "PUT", headers: { authorization: `Basic ${PUBLISH_TOKEN}` }, body: "{}" });
    assertErrorShape(basic, 401, "unauthorized");
    assert.equal(await w.kv.get("configs"), null);
  });

  test("a valid set is stored in KV and served at once, before the TTL", async () => {
    const res = await w.publish({ version: 5, experiments: [experiment("checkout")] });
    assert.equal(res.status, 200);
    assert.equal(res.body.stale, false);
    assert.equal(res.body.version, 5);
    const stored = JSON.parse(await w.kv.get("configs"));
    assert.equal(stored.version, 5);
    assert.equal(stored.experiments[0].key, "checkout");
    assert.equal(typeof stored.published_at, "string");
    assert.equal((await w.json("/v1/health")).body.config_version, 5);
    const again = await w.publish({ version: 6, experiments: [experiment("checkout"), experiment("pricing")] });
    assert.equal(again.status, 200);
    const all = await w.json("/v1/assign?unit_id=u1");
    assert.equal(all.body.config_version, 6, "the publishing isolate does not wait for its TTL");
    assert.deepEqual(all.body.assignments.map((a) => a.experiment), ["checkout", "pricing"]);
  });

  test("a set older than the stored one is ignored with stale:true", async () => {
    assert.equal((await w.publish({ version: 10, experiments: [experiment("checkout")] })).status, 200);
    const res = await w.publish({ version: 9, experiments: [] });
    assert.equal(res.status, 200);
    assert.equal(res.body.stale, true);
    assert.equal(res.body.stored_version, 10);
    assert.equal(JSON.parse(await w.kv.get("configs")).version, 10);
    assert.equal((await w.json("/v1/health")).body.config_version, 10);
  });

  test("invalid sets are rejected with the offending field, nothing written", async () => {
    const before = await w.kv.get("configs");
    const cases = [
      [{ version: 11, experiments: [experiment("ok"), experiment("bad", { ramp_pct: 101 })] }, "experiments[1].ramp_pct"],
      [{ version: 11, experiments: [experiment("dup"), experiment("dup")] }, "experiments[1].key"],
      [{ version: 11, experiments: [experiment("Bad Key")] }, "experiments[0].key"],
      [{ version: 11, experiments: [experiment("t", { targeting: { country: { bogus: 1 } } })] }, "experiments[0]"],
      [{ experiments: [] }, "version"],
      [{ version: 11 }, "experiments"],
    ];
    for (const [set, field] of cases) {
      const res = await w.publish(set);
      assertErrorShape(res, 422, "validation_failed");
      assert.equal(res.body.error.field, field, JSON.stringify(res.body));
    }
    assertErrorShape(await w.publish("{not json"), 400, "invalid_json");
    assert.equal(await w.kv.get("configs"), before);
  });

  test("without PUBLISH_TOKEN configured, publishing is disabled (503)", async () => {
    const w2 = await startWorker({ bindings: { PUBLISH_TOKEN: undefined, CONTROL_PLANE_URL: sink.url } });
    try {
      assertErrorShape(await w2.publish({ version: 1, experiments: [] }, "anything"), 503, "publish_disabled");
    } finally {
      await w2.dispose();
    }
  });
});

describe("assignment requests", () => {
  let w;
  before(async () => {
    w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url } });
    const set = {
      version: 3,
      experiments: [
        experiment("checkout"),
        experiment("us_only", { targeting: { country: { in: ["US"] }, age: { gte: 18 } } }),
        experiment("paused_one", { status: "paused" }),
      ],
    };
    assert.equal((await w.publish(set)).status, 200);
  });
  after(async () => {
    await w?.dispose();
  });

  test("no experiment list: every running experiment, paused ones left out", async () => {
    const res = await w.assign({ unit_id: "u1", attributes: { country: "US", age: 30 } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.assignments.map((a) => a.experiment), ["checkout", "us_only"]);
    assert.equal(res.headers.get("cache-control"), "private, no-store");
  });

  test("explicit keys: known ones assigned (even paused), unknown ones a safe entry", async () => {
    const res = await w.assign({ unit_id: "u1", experiments: ["paused_one", "nope", "checkout", "nope"] });
    assert.equal(res.status, 200);
    const [paused, nope, checkout, ...rest] = res.body.assignments;
    assert.deepEqual(rest, [], "duplicates are answered once");
    assert.equal(paused.reason, "not_running");
    assert.equal(paused.variant_key, "control");
    assert.deepEqual(nope, { experiment: "nope", variant_key: null, config_json: null, in_experiment: false, reason: "unknown_experiment" });
    assert.equal(checkout.in_experiment, true);
  });

  test("GET takes attributes from the query string, like POST takes them from the body", async () => {
    const get = await w.json("/v1/assign?experiment=us_only&unit_id=u7&country=US&age=31");
    const post = await w.assign({ unit_id: "u7", attributes: { country: "US", age: 31 }, experiments: ["us_only"] });
    assert.equal(get.status, 200);
    assert.equal(get.body.assignments[0].reason, "assigned");
    assert.deepEqual(get.body, post.body);
    const out = await w.json("/v1/assign?experiment=us_only&unit_id=u7&country=FR&age=31");
    assert.equal(out.body.assignments[0].reason, "targeting");
    assert.equal(out.body.assignments[0].in_experiment, false);
    assert.equal(out.body.assignments[0].variant_key, "control");
    const multi = await w.json("/v1/assign?experiment=us_only&unit_id=u7&country=FR&country=US&age=31");
    assert.equal(multi.body.assignments[0].reason, "assigned", "a repeated attribute matches any of its values");
  });

  test("the same unit gets the same answer every time", async () => {
    const a = await w.assign({ unit_id: "stable-unit", experiments: ["checkout"] });
    for (let i = 0; i < 5; i++) {
      assert.deepEqual((await w.assign({ unit_id: "stable-unit", experiments: ["checkout"] })).body, a.body);
    }
  });

  test("bad input is a 4xx with the error shape", async () => {
    const raw = (body) => w.json("/v1/assign", { method: "POST", body });
    assertErrorShape(await raw("{oops"), 400, "invalid_json");
    assertErrorShape(await raw(""), 400, "invalid_json");
    assertErrorShape(await raw("[1,2]"), 422, "validation_failed");
    const cases = [
      [{ unit_id: 42 }, "unit_id"],
      [{ unit_id: "u", attributes: [1] }, "attributes"],
      [{ unit_id: "u", experiments: "checkout" }, "experiments"],
      [{ unit_id: "u", experiments: ["checkout", 7] }, "experiments[1]"],
      [{ unit_id: "x".repeat(513) }, "unit_id"],
      [{ unit_id: "" }, "unit_id"],
      [{ unit_id: "q\u0000s" }, "unit_id"],
    ];
    for (const [body, field] of cases) {
      const res = await w.assign(body);
      assertErrorShape(res, 422, "validation_failed");
      assert.equal(res.body.error.field, field);
    }
    const long = await w.json(`/v1/assign?unit_id=${"y".repeat(513)}`);
    assertErrorShape(long, 422, "validation_failed");
    // The same rule as the control plane's, so no exposure is served that it would refuse.
    for (const bad of ["q%00s", ""]) {
      const res = await w.json(`/v1/assign?experiment=checkout&unit_id=${bad}`);
      assertErrorShape(res, 422, "validation_failed");
      assert.equal(res.body.error.field, "unit_id");
    }
    assertErrorShape(await w.json("/v1/assign", { method: "POST", body: JSON.stringify({ pad: "z".repeat(70_000) }) }), 413, "payload_too_large");
    assertErrorShape(await w.json("/v1/nowhere"), 404, "not_found");
    assertErrorShape(await w.json("/v1/assign", { method: "DELETE" }), 405, "method_not_allowed");
  });

  test("text/plain bodies are accepted (browsers use them to skip the preflight)", async () => {
    const res = await w.json("/v1/assign", { method: "POST", headers: { "content-type": "text/plain" }, body: JSON.stringify({ unit_id: "u1" }) });
    assert.equal(res.status, 200);
  });
});

describe("the fast route (GET /v1/assign in the JavaScript entry) answers exactly as workers-rs does", () => {
  let fast, slow;
  const set = {
    version: 9,
    experiments: [
      experiment("checkout"),
      experiment("us_only", { targeting: { country: { in: ["US", "CA"] }, age: { gte: 18 } }, ramp_pct: 80 }),
      experiment("tagged", { targeting: { tags: { in: ["beta"] } } }),
      experiment("paused_one", { status: "paused" }),
    ],
  };
  before(async () => {
    const bindings = { CONTROL_PLANE_URL: sink.url, ALLOWED_ORIGINS: "https://shop.example" };
    fast = await startWorker({ bindings });
    slow = await startWorker({ bindings: { ...bindings, ASSIGN_FAST_PATH: "off" } });
    for (const w of [fast, slow]) assert.equal((await w.publish(set)).status, 200);
  });
  after(async () => {
    await fast?.dispose();
    await slow?.dispose();
  });

  test("bodies, statuses and headers agree over 400 varied requests, errors included", async () => {
    const countries = ["US", "CA", "GB", "", "us", "Zürich", "日本"];
    const queries = [];
    for (let i = 0; i < 400; i++) {
      const q = new URLSearchParams({ unit_id: `u-${i}-ü`, country: countries[i % countries.length], age: String(10 + (i % 40)) });
      if (i % 3 === 0) q.append("tags", "beta");
      if (i % 5 === 0) q.append("tags", "alpha");
      if (i % 7 === 0) q.append("experiment", "paused_one"), q.append("experiment", "nope"), q.append("experiment", "checkout");
      if (i % 2 === 0) q.set("expose", "false");
      queries.push(q.toString());
    }
    queries.push("unit_id=&country=US", "unit_id=u&expose=maybe", `unit_id=${"x".repeat(600)}`, "unit_id=a%00b",
      `unit_id=u&${Array.from({ length: 101 }, (_, i) => `experiment=e${i}`).join("&")}`, "unit_id=u&%FF=%FE", "");
    const headersOf = (res) =>
      ["content-type", "cache-control", "access-control-allow-origin", "access-control-allow-credentials", "vary"]
        .map((h) => [h, res.headers.get(h)]);
    for (const q of queries) {
      const headers = { origin: "https://shop.example", cookie: "litmus_uid=cookie-unit-1" };
      const [a, b] = [await fast.json(`/v1/assign?${q}`, { headers }), await slow.json(`/v1/assign?${q}`, { headers })];
      assert.equal(a.status, b.status, q);
      assert.deepEqual(a.body, b.body, q);
      assert.deepEqual(headersOf(a), headersOf(b), q);
    }
  });

  test("POST /v1/assign: bodies, statuses and headers agree over 300 varied bodies, errors and refusals included", async () => {
    const countries = ["US", "CA", "GB", "", "Zürich", 7, null];
    const bodies = [];
    for (let i = 0; i < 300; i++) {
      const b = { unit_id: `p-${i}-ü`, attributes: { country: countries[i % countries.length], age: 10 + (i % 40) } };
      if (i % 3 === 0) b.attributes.tags = ["beta"];
      if (i % 7 === 0) b.experiments = ["paused_one", "nope", "checkout"];
      if (i % 2 === 0) b.expose = false;
      if (i % 11 === 0) b.min_version = 9;
      if (i % 13 === 0) delete b.unit_id; // the cookie's unit
      bodies.push(JSON.stringify(b));
    }
    bodies.push("", "not json", "[1,2]", '{"unit_id":""}', '{"unit_id":7}', '{"unit_id":"u","attributes":[]}', '{"unit_id":"u","experiments":"a"}',
      '{"unit_id":"u","expose":"no"}', '{"unit_id":"u","min_version":-1}', '{"unit_id":"u","min_version":"9"}', '{"unit_id":"u","min_version":1.5}',
      '{"unit_id":"u","sticky":{"assignments":[]}}', `{"unit_id":"${"x".repeat(600)}"}`, '{"unit_id":"a\\u0000b"}',
      JSON.stringify({ unit_id: "big", attributes: { pad: "x".repeat(70 * 1024) } }), '{"unit_id":"u"} trailing');
    const headersOf = (res) =>
      ["content-type", "cache-control", "access-control-allow-origin", "set-cookie", "vary"].map((h) => [h, res.headers.get(h)]);
    for (const body of bodies) {
      const init = () => ({ method: "POST", headers: { origin: "https://shop.example", cookie: "litmus_uid=cookie-unit-1", "content-type": "text/plain" }, body });
      const [a, b] = [await fast.json("/v1/assign", init()), await slow.json("/v1/assign", init())];
      const what = body.slice(0, 120);
      assert.equal(a.status, b.status, what);
      assert.deepEqual(a.body, b.body, what);
      assert.deepEqual(headersOf(a), headersOf(b), what);
    }
  });

  test("a body sent in chunks, without a declared length, is answered alike", async () => {
    const text = JSON.stringify({ unit_id: "chunked", experiments: ["checkout"], expose: false });
    const stream = () => new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(text.slice(0, 10))); c.enqueue(new TextEncoder().encode(text.slice(10))); c.close(); } });
    const [a, b] = [await fast.json("/v1/assign", { method: "POST", body: stream(), duplex: "half" }), await slow.json("/v1/assign", { method: "POST", body: stream(), duplex: "half" })];
    assert.equal(a.status, 200);
    assert.deepEqual(a.body, b.body);
  });

  test("with any origin allowed the fast route reads no headers it needs not, and still agrees", async () => {
    // ALLOWED_ORIGINS="*": a request that names its unit is answered without reading its headers
    // unless a sticky experiment makes its cookie matter. Both sets, with cookies and without.
    const bindings = { CONTROL_PLANE_URL: sink.url, ALLOWED_ORIGINS: "*" };
    const bandit = experiment("arms", { type: "bandit", unit_type: "user_id" });
    const sets = [set, { ...set, version: 10, experiments: [...set.experiments, bandit] }];
    for (const s of sets) {
      const [f, w] = [await startWorker({ bindings }), await startWorker({ bindings: { ...bindings, ASSIGN_FAST_PATH: "off" } })];
      try {
        for (const x of [f, w]) assert.equal((await x.publish(s)).status, 200);
        // A document the edge signed (both workers hold the same key); without a sticky
        // experiment, any document, since it is not read.
        const issued = s.version === 10 ? (await f.assign({ unit_id: "u-7", experiments: ["arms"], expose: false })).body.sticky : null;
        const remembered = issued ? issued.assignments.arms__0 : "treatment";
        const stickyDoc = encodeURIComponent(JSON.stringify(issued ?? { unit_id: "u-7", assignments: { arms__0: "treatment" } }));
        const cases = [
          ["unit_id=u-7&country=US&age=30", {}],
          ["unit_id=u-7&country=US&age=30", { cookie: `litmus_sticky=${stickyDoc}; litmus_uid=other` }],
          ["country=US&age=30", { cookie: "litmus_uid=cookie-unit-2" }],
          ["country=US&age=30", { cookie: `litmus_uid=u-7; litmus_sticky=${stickyDoc}` }],
          ["unit_id=u-8&expose=nope", { origin: "https://shop.example" }],
        ];
        for (const [q, headers] of cases) {
          const [a, b] = [await f.json(`/v1/assign?${q}`, { headers }), await w.json(`/v1/assign?${q}`, { headers })];
          const what = `${s.version} ${q} ${JSON.stringify(headers)}`;
          assert.equal(a.status, b.status, what);
          assert.deepEqual(a.body, b.body, what);
          for (const h of ["set-cookie", "access-control-allow-origin", "cache-control", "content-type"]) {
            assert.equal(a.headers.get(h), b.headers.get(h), `${what}: ${h}`);
          }
          if (q.startsWith("country")) assert.equal(a.body.unit_id, headers.cookie.match(/litmus_uid=([^;]+)/)[1], "the cookie's unit");
        }
        // The sticky cookie matters only while a sticky experiment is published: without one, an
        // A/B answer stays an A/B answer; with one, the remembered arm is kept.
        const [plainQ, plainH] = cases[1];
        const withDoc = await f.json(`/v1/assign?${plainQ}`, { headers: plainH });
        if (s.version === 9) assert.equal(withDoc.body.sticky, undefined, "no sticky experiment: the document is not read");
        else {
          assert.equal(withDoc.body.sticky.unit_id, "u-7");
          const arm = withDoc.body.assignments.find((x) => x.experiment === "arms");
          assert.equal(arm.variant_key, remembered, "the remembered arm");
          assert.equal(arm.reason, "sticky");
        }
      } finally {
        await f.dispose();
        await w.dispose();
      }
    }
  });

  test("a minted unit gets the same cookie treatment on both roads", async () => {
    for (const w of [fast, slow]) {
      const res = await w.json("/v1/assign?country=US", { headers: { origin: "https://evil.example" } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get("set-cookie"), new RegExp(`^litmus_uid=${res.body.unit_id}; Path=/; Max-Age=31536000; SameSite=Lax$`));
      assert.equal(res.headers.get("access-control-allow-origin"), null, "an unlisted origin gets no CORS grant");
      assert.equal(res.headers.get("vary"), "Origin");
    }
  });
});

describe("anonymous units: the litmus_uid cookie", () => {
  let w;
  before(async () => {
    w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url } });
    await w.publish({ version: 1, experiments: [experiment("checkout")] });
  });
  after(async () => {
    await w?.dispose();
  });

  const cookieOf = (res) => res.headers.get("set-cookie");

  test("minted when no unit id is given, then reused", async () => {
    const first = await w.json("/v1/assign?experiment=checkout");
    assert.equal(first.status, 200);
    const setCookie = cookieOf(first);
    assert.ok(setCookie, "a cookie is set");
    const [pair, ...attrs] = setCookie.split("; ");
    const [name, id] = pair.split("=");
    assert.equal(name, "litmus_uid");
    assert.match(id, UUID);
    assert.equal(first.body.unit_id, id);
    assert.deepEqual(attrs, ["Path=/", "Max-Age=31536000", "SameSite=Lax"]);

    const second = await w.json("/v1/assign?experiment=checkout", { headers: { cookie: `other=1; litmus_uid=${id}` } });
    assert.equal(second.body.unit_id, id);
    assert.equal(cookieOf(second), null, "no new cookie when the browser has one");
    assert.deepEqual(second.body.assignments, first.body.assignments);

    const viaPost = await w.assign({ experiments: ["checkout"] }, { cookie: `litmus_uid=${id}` });
    assert.equal(viaPost.body.unit_id, id);
  });

  test("two browsers without cookies get different ids", async () => {
    const a = await w.assign({ experiments: ["checkout"] });
    const b = await w.assign({ experiments: ["checkout"] });
    assert.notEqual(a.body.unit_id, b.body.unit_id);
    assert.match(a.body.unit_id, UUID);
  });

  test("an explicit unit_id wins over the cookie and sets none", async () => {
    const res = await w.assign({ unit_id: "store-123", experiments: ["checkout"] }, { cookie: "litmus_uid=abc" });
    assert.equal(res.body.unit_id, "store-123");
    assert.equal(cookieOf(res), null);
  });

  test("a tampered cookie is replaced; https requests get Secure", async () => {
    const res = await w.json("https://edge.test/v1/assign?experiment=checkout", { headers: { cookie: "litmus_uid=<script>" } });
    assert.equal(res.status, 200);
    assert.match(res.body.unit_id, UUID);
    assert.match(cookieOf(res), /; Secure$/);
  });
});

describe("CORS", () => {
  test("wildcard: preflight and responses allow any origin", async () => {
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url } });
    try {
      for (const p of ["/v1/assign", "/v1/events", "/v1/health"]) {
        const pre = await w.call(p, {
          method: "OPTIONS",
          headers: { origin: "https://shop.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
        });
        assert.equal(pre.status, 204, p);
        assert.equal(pre.headers.get("access-control-allow-origin"), "*");
        assert.match(pre.headers.get("access-control-allow-methods"), /POST/);
        assert.match(pre.headers.get("access-control-allow-headers"), /content-type/);
        await pre.arrayBuffer();
      }
      const res = await w.json("/v1/assign?unit_id=u1", { headers: { origin: "https://shop.example" } });
      assert.equal(res.headers.get("access-control-allow-origin"), "*");
      const err = await w.assign({ unit_id: 5 }, { origin: "https://shop.example" });
      assert.equal(err.status, 422);
      assert.equal(err.headers.get("access-control-allow-origin"), "*", "errors carry CORS headers too, so browsers can read them");
    } finally {
      await w.dispose();
    }
  });

  test("origin list: listed origins are echoed with credentials, others get nothing", async () => {
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, ALLOWED_ORIGINS: "https://shop.example, https://app.example" } });
    try {
      const pre = await w.call("/v1/assign", { method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "POST" } });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get("access-control-allow-origin"), "https://app.example");
      assert.equal(pre.headers.get("access-control-allow-credentials"), "true");
      assert.match(pre.headers.get("vary"), /Origin/);
      await pre.arrayBuffer();

      const ok = await w.json("/v1/assign?unit_id=u1", { headers: { origin: "https://shop.example" } });
      assert.equal(ok.headers.get("access-control-allow-origin"), "https://shop.example");
      assert.equal(ok.headers.get("access-control-allow-credentials"), "true");

      const evil = await w.json("/v1/assign?unit_id=u1", { headers: { origin: "https://evil.example" } });
      assert.equal(evil.status, 200);
      assert.equal(evil.headers.get("access-control-allow-origin"), null);
      assert.equal(evil.headers.get("access-control-allow-credentials"), null);
    } finally {
      await w.dispose();
    }
  });

  test("the admin route is not a CORS route", async () => {
    const w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url } });
    try {
      const res = await w.publish({ version: 1, experiments: [] });
      assert.equal(res.headers.get("access-control-allow-origin"), null);
    } finally {
      await w.dispose();
    }
  });
});
