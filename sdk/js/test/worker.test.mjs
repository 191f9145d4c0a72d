// The local evaluator inside workerd (a worker of its own, Miniflare), the wasm imported as a
// module: the same answers as in Node, and as the test vectors say.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";

const SDK = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const vectors = JSON.parse(readFileSync(path.join(SDK, "../../shared/testdata/vectors.v1.json"), "utf8"));

let mf;
before(async () => {
  mf = new Miniflare(convertV4MiniflareOptions({
    modulesRoot: SDK,
    modules: [
      { type: "ESModule", path: path.join(SDK, "test/fixtures/worker.mjs") },
      { type: "ESModule", path: path.join(SDK, "dist/local.js") },
      { type: "ESModule", path: path.join(SDK, "dist/wasm/litmus_sdk_js_wasm.js") },
      { type: "CompiledWasm", path: path.join(SDK, "dist/wasm/litmus_sdk_js_wasm_bg.wasm") },
    ],
    compatibilityDate: "2026-11-01",
  }));
  await mf.ready;
});
after(() => mf?.dispose());

test("a worker assigns locally: the vectors' answers", async () => {
  const cases = vectors.cases.filter((c) => !c.saved_groups).slice(0, 40);
  for (const c of cases) {
    // The worker keeps the first set it is given: one set holds every case, each under its own
    // key (the salt stays the case's, so the hashing does too).
    const res = await mf.dispatchFetch("http://local.test/", {
      method: "POST",
      body: JSON.stringify({ config: { version: 1, experiments: cases.map((x, i) => ({ ...x.experiment, key: `k${i}`, salt: x.experiment.salt ?? x.experiment.key })) },
        unit_id: c.unit_id, attributes: c.attributes, experiments: [`k${cases.indexOf(c)}`] }),
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepStrictEqual(body.assignments[0], { ...c.expected, experiment: `k${cases.indexOf(c)}` }, c.name);
  }
});
