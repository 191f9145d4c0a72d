// The local evaluator in Deno (the `deno` dev dependency, from npm): every committed vector, as in
// Node (vectors.test.mjs) and workerd (worker.test.mjs); and Deno's answer for a non-ASCII unit is
// Node's. Needs scripts/build-sdk-js.sh (sdk/js/dist).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createLocalEvaluator } from "../dist/local.js";

const SDK = fileURLToPath(new URL("../", import.meta.url));
const vectors = JSON.parse(readFileSync(new URL("../../../shared/testdata/vectors.v1.json", import.meta.url), "utf8"));

test("Deno: every vector case through the local evaluator, and the same answer as Node", async () => {
  const out = execFileSync(`${SDK}node_modules/.bin/deno`, ["run", "--allow-read", "test/deno/vectors.mjs"], {
    cwd: SDK, encoding: "utf8", env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
  });
  const { passed, failed, sample } = JSON.parse(out.trim().split("\n").at(-1));
  assert.deepEqual(failed, []);
  assert.equal(passed, vectors.cases.length);
  const first = vectors.cases[0];
  const node = await createLocalEvaluator({ version: 1, experiments: [first.experiment] });
  assert.deepEqual(sample, node.assign(first.experiment.key, "用户-ünïcødé-🦀", first.attributes));
});
