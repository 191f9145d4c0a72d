// Every case of shared/testdata/vectors.v1.json, reproduced inside workerd through the real
// path: publish a config set holding the case's experiment, then POST /v1/assign. The worker must
// answer exactly what the native engine wrote into the file.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT, startWorker, startSink } from "./helpers.mjs";

const vectors = JSON.parse(readFileSync(path.join(ROOT, "shared/testdata/vectors.v1.json"), "utf8"));
const LONG = 512; // the default MAX_UNIT_ID_BYTES, the same limit as the control plane's

let w, sink;
before(async () => {
  sink = await startSink();
  // Unsigned: the vectors hold the deterministic fields; signatures are checked against the
  // control plane's in tests/e2e/equality.test.mjs and natively in render.rs.
  w = await startWorker({ bindings: { CONTROL_PLANE_URL: sink.url, SIGNING_KEYS: undefined } });
});
after(async () => {
  await w?.dispose();
  await sink?.close();
});

test("the vector file is the one this test understands", () => {
  assert.equal(vectors.format, "litmus-assignment-vectors");
  assert.equal(vectors.hash_version, 1);
  assert.ok(vectors.cases.length >= 200, `only ${vectors.cases.length} cases`);
});

test("every vector case: publish + POST /v1/assign gives the expected assignment", async () => {
  let version = 1000;
  const failures = [];
  for (const c of vectors.cases) {
    version += 1;
    const pub = await w.publish({ version, experiments: [c.experiment], ...(c.saved_groups ? { saved_groups: c.saved_groups } : {}) });
    assert.equal(pub.status, 200, `${c.name}: publish ${JSON.stringify(pub.body)}`);
    assert.equal(pub.body.stale, false, c.name);
    const res = await w.assign({ unit_id: c.unit_id, attributes: c.attributes, experiments: [c.experiment.key] });
    if (c.unit_id === "") {
      // The engine hashes "" like any id, but no evaluator takes it as input: the control plane
      // could never store its exposures (litmus_shared::validate::unit_id).
      assert.equal(res.status, 422, c.name);
      assert.equal(res.body.error.field, "unit_id", c.name);
      continue;
    }
    assert.equal(res.status, 200, `${c.name}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.config_version, version, c.name);
    assert.equal(res.body.unit_id, c.unit_id, c.name);
    assert.equal(res.body.assignments.length, 1, c.name);
    try {
      assert.deepStrictEqual(res.body.assignments[0], c.expected);
    } catch (e) {
      failures.push(`${c.name}: ${e.message}`);
    }
  }
  assert.deepEqual(failures, [], `${failures.length}/${vectors.cases.length} cases differ`);
});

test("unit ids over the limit are a 422 naming the field, not a 5xx", async () => {
  const c = vectors.cases[0];
  assert.equal((await w.publish({ version: 99999, experiments: [c.experiment] })).status, 200);
  const res = await w.assign({ unit_id: "x".repeat(LONG + 1), experiments: [c.experiment.key] });
  assert.equal(res.status, 422);
  assert.equal(res.body.error.field, "unit_id");
  const ok = await w.assign({ unit_id: "é".repeat(LONG / 2), experiments: [c.experiment.key] });
  assert.equal(ok.status, 200, "the limit is in bytes: 256 two-byte characters fit");
});
