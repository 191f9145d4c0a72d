// Run by Deno (test/deno.test.mjs starts it): every vector case through the SDK's local evaluator
// as Deno loads it, plus one answer for a non-ASCII unit. Prints `{"passed","failed","sample"}`
// and exits 1 when any case differs.
import { createLocalEvaluator } from "../../dist/local.js";

const vectors = JSON.parse(await Deno.readTextFile(new URL("../../../../shared/testdata/vectors.v1.json", import.meta.url)));
const same = (a, b) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
const sorted = (v) => (v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v);
let passed = 0;
const failed = [];
for (const c of vectors.cases) {
  const set = { version: 1, experiments: [c.experiment], ...(c.saved_groups ? { saved_groups: c.saved_groups } : {}) };
  const local = await createLocalEvaluator(set);
  const got = local.assign(c.experiment.key, c.unit_id, c.attributes);
  if (same(got, c.expected)) passed++;
  else failed.push(c.name);
  local.dispose();
}
const first = vectors.cases[0];
const local = await createLocalEvaluator({ version: 1, experiments: [first.experiment] });
const sample = local.assign(first.experiment.key, "用户-ünïcødé-🦀", first.attributes);
console.log(JSON.stringify({ passed, failed, sample }));
Deno.exit(failed.length ? 1 : 0);
