// Our engine against GrowthBook's own SDK (@growthbook/growthbook, the version the bench pins),
// on conditions and attributes generated at random from GrowthBook's operators and JavaScript's
// awkward values (numbers as text, null, arrays, nested objects, versions, unicode): every
// condition we accept must answer as GrowthBook's `evalCondition` does. What we refuse when it is
// saved (shared/README.md: conditions that cannot mean anything) is counted, not compared.
// Regular expressions are drawn from patterns both engines read alike: JavaScript's run on
// UTF-16 units without the `u` flag (`.` is half an emoji there), regex-lite's on characters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { evalCondition } from "../../edge-worker/bench/peer/node_modules/@growthbook/growthbook/dist/esm/mongrule.mjs";
import { mulberry32 } from "../lib/random.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CASES = Number(process.env.CONFORMANCE_CASES ?? 20000);

const rand = mulberry32(20261202);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const SCALARS = ["US", "us", "8", " 8 ", "10", "9", "", "0", "0x1f", "1e3", "abc", "true", "false", "null",
  "1.2.3", "v1.2.3", "1.2.3-rc.1", "2.0.0", "1.10.0", "1.2.3+build", "Zürich", "zürich", "ÉCOLE", "école", "😀", "a,b",
  8, 10, 9, 0, -3.5, 1, 2, 1e21, 0.1, true, false, null];
const KEYS = ["a", "b", "c", "d"];
const PATHS = ["a", "b", "c", "d", "c.x", "d.0", "d.length", "missing", "c.x.y"];
const REGEXES = ["^a", "b$", "US", "[0-9]+", "^$", "ü", "(abc|US)", "\\d\\.\\d", "^[a-z]{2}$"];
const GROUPS = { g1: ["US", 8, "abc", true], g2: [] };

function scalar() {
  return pick(SCALARS);
}
function value(depth = 0) {
  const r = rand();
  if (depth < 2 && r < 0.15) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1));
  if (depth < 2 && r < 0.22) return { x: value(depth + 1) };
  return scalar();
}
function attributes() {
  const a = {};
  for (const k of KEYS) if (rand() < 0.8) a[k] = value();
  return a;
}
const OPS = ["$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$ini", "$nini", "$all", "$alli", "$elemMatch",
  "$size", "$exists", "$type", "$regex", "$regexi", "$not", "$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte",
  "$inGroup", "$notInGroup"];
function operand(op, depth) {
  switch (op) {
    case "$in": case "$nin": case "$ini": case "$nini": case "$all": case "$alli":
      return Array.from({ length: 1 + Math.floor(rand() * 3) }, () => (op.startsWith("$all") && rand() < 0.3 ? operators(depth + 1) : scalar()));
    case "$elemMatch": return rand() < 0.5 ? operators(depth + 1) : { x: scalar() };
    case "$size": return rand() < 0.5 ? Math.floor(rand() * 3) : operators(depth + 1);
    case "$exists": return rand() < 0.5;
    case "$type": return pick(["string", "number", "boolean", "null", "array", "object"]);
    case "$regex": case "$regexi": return pick(REGEXES);
    case "$not": return rand() < 0.5 ? operators(depth + 1) : scalar();
    case "$inGroup": case "$notInGroup": return pick(["g1", "g2", "unknown"]);
    case "$veq": case "$vne": case "$vgt": case "$vgte": case "$vlt": case "$vlte":
      return pick(["1.2.3", "v1.2.3", "1.10.0", "1.2.3-rc.1", "2.0.0", "1.2", 1.5, ""]);
    default: return value(depth + 1);
  }
}
function operators(depth) {
  const o = {};
  const n = 1 + Math.floor(rand() * 2);
  for (let i = 0; i < n; i++) {
    const op = depth > 2 ? pick(["$eq", "$in", "$gt", "$exists"]) : pick(OPS);
    o[op] = operand(op, depth);
  }
  return o;
}
function condition(depth = 0) {
  const c = {};
  const n = 1 + Math.floor(rand() * 2);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (depth < 2 && r < 0.1) c.$or = Array.from({ length: Math.floor(rand() * 3) }, () => condition(depth + 1));
    else if (depth < 2 && r < 0.15) c.$and = Array.from({ length: 1 + Math.floor(rand() * 2) }, () => condition(depth + 1));
    else if (depth < 2 && r < 0.18) c.$nor = [condition(depth + 1)];
    else if (depth < 2 && r < 0.21) c.$not = condition(depth + 1);
    // A bare value compares as GrowthBook does; the `$` elsewhere keeps the document GrowthBook's.
    else if (r < 0.35) c[pick(PATHS)] = scalar();
    else c[pick(PATHS)] = operators(depth);
  }
  // Make sure the document is GrowthBook's (a `$` somewhere), as a pasted one would be.
  return depth === 0 && !JSON.stringify(c).includes('"$') ? { $and: [c] } : c;
}

test("our engine answers as GrowthBook's SDK on generated conditions", () => {
  const cases = Array.from({ length: CASES }, () => [condition(), attributes(), GROUPS]);
  const run = spawnSync("cargo", ["run", "-q", "--locked", "-p", "litmus-shared", "--example", "eval_conditions"], {
    cwd: ROOT, input: cases.map((c) => JSON.stringify(c)).join("\n") + "\n", maxBuffer: 1 << 28, encoding: "utf8",
  });
  assert.equal(run.status, 0, run.stderr);
  const answers = run.stdout.trim().split("\n");
  assert.equal(answers.length, cases.length);
  let refused = 0, agreed = 0;
  const differ = [];
  const quiet = console.error;
  console.error = () => {}; // GrowthBook logs unknown operators; we refuse those instead.
  try {
    cases.forEach(([cond, attrs, groups], i) => {
      if (answers[i].startsWith("refused")) return refused++;
      const theirs = evalCondition(attrs, cond, groups);
      if (String(theirs) === answers[i]) agreed++;
      else differ.push(`${JSON.stringify(cond)} on ${JSON.stringify(attrs)}: GrowthBook ${theirs}, ours ${answers[i]}`);
    });
  } finally {
    console.error = quiet;
  }
  console.log(`${cases.length} generated conditions: ${agreed} answered as GrowthBook does, ${refused} refused, ${differ.length} differ`);
  assert.deepEqual(differ.slice(0, 20), [], `${differ.length} differ`);
  assert.ok(agreed > cases.length * 0.6, `only ${agreed} of ${cases.length} accepted`);
});
