// Every case of shared/testdata/vectors.v1.json through the SDK's local evaluator (the shared
// engine compiled to wasm, loaded in Node): each must give exactly the expected assignment.
// Needs scripts/build-sdk-js.sh (sdk/js/dist).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createLocalEvaluator } from "../dist/local.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const vectors = JSON.parse(readFileSync(`${ROOT}shared/testdata/vectors.v1.json`, "utf8"));

test("the vector file is the one this test understands", () => {
  assert.equal(vectors.format, "litmus-assignment-vectors");
  assert.equal(vectors.hash_version, 1);
  assert.ok(vectors.cases.length >= 200, `only ${vectors.cases.length} cases`);
});

test("every vector case: the local evaluator gives the expected assignment", async () => {
  const failures = [];
  for (const c of vectors.cases) {
    const set = { version: 1, experiments: [c.experiment], ...(c.saved_groups ? { saved_groups: c.saved_groups } : {}) };
    const local = await createLocalEvaluator(set);
    try {
      assert.deepStrictEqual(local.assign(c.experiment.key, c.unit_id, c.attributes), c.expected);
    } catch (e) {
      failures.push(`${c.name}: ${e.message}`);
    } finally {
      local.dispose();
    }
  }
  assert.deepEqual(failures, [], `${failures.length}/${vectors.cases.length} cases differ`);
});

test("a key the set does not hold gets the edge's unknown_experiment entry; a bad set throws", async () => {
  const local = await createLocalEvaluator(JSON.stringify({ version: 3, experiments: [] }));
  assert.deepEqual(local.assign("nope", "u1"), {
    experiment: "nope", variant_key: null, config_json: null, in_experiment: false, reason: "unknown_experiment",
  });
  assert.deepEqual(local.assignAll("u1"), { unit_id: "u1", config_version: 3, assignments: [] });
  await assert.rejects(createLocalEvaluator("{not json"));
  await assert.rejects(createLocalEvaluator({ experiments: "no" }));
});
