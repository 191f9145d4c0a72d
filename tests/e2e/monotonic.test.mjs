// Once the edge has served config version N it never answers from an older one: a launch that
// reached the edge never disappears again, even while other changes keep publishing new versions
// and the edge's cache expires under a continuous stream of requests (the flicker `make run`
// showed: a launched experiment answered, then `unknown_experiment` for up to the cache TTL).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startStack, sleep } from "./stack.mjs";

let cp, edge, dispose;

before(async () => {
  ({ cp, edge, dispose } = await startStack("e2e_monotonic"));
});

after(async () => {
  await dispose?.();
});

const variants = [{ key: "control", weight: 0.5 }, { key: "treatment", weight: 0.5 }];

test("answers never go back to an older config version, across launches under a stream of publishes", { timeout: 120_000 }, async () => {
  const NOISE = 4, TARGETS = 3;
  for (let i = 0; i < NOISE; i++) {
    assert.equal((await cp.api("POST", "/experiments", { key: `noise_${i}`, name: `noise ${i}`, variants })).status, 201);
    assert.equal((await cp.api("POST", `/experiments/noise_${i}/launch`, { ramp_pct: 50 })).status, 200);
  }
  for (let i = 0; i < TARGETS; i++) {
    assert.equal((await cp.api("POST", "/experiments", { key: `target_${i}`, name: `target ${i}`, variants })).status, 201);
  }

  // Readers: ask continuously, in parallel, as browsers would.
  let reading = true;
  const answers = [];
  const reader = async (r) => {
    for (let n = 0; reading; n++) {
      const keys = Array.from({ length: TARGETS }, (_, i) => `experiment=target_${i}`).join("&");
      const start = Date.now();
      const res = await fetch(`${edge.url}/v1/assign?unit_id=r${r}-${n}&expose=false&${keys}`);
      const body = await res.json();
      answers.push({ start, end: Date.now(), reader: r, version: body.config_version, known: body.assignments.map((a) => a.reason !== "unknown_experiment") });
    }
  };
  // Writers: other experiments keep changing, so new versions keep being published.
  let writing = true;
  const writer = async () => {
    for (let n = 0; writing; n++) {
      await cp.api("PATCH", `/experiments/noise_${n % NOISE}`, { ramp_pct: 10 + (n % 80) });
      await sleep(50);
    }
  };
  const readers = [0, 1, 2, 3].map(reader);
  const writers = writer();

  for (let i = 0; i < TARGETS; i++) {
    await sleep(1500);
    assert.equal((await cp.api("POST", `/experiments/target_${i}/launch`, { ramp_pct: 100 })).status, 200);
  }
  // Past several cache lifetimes (the test edge caches for 2 s).
  await sleep(7000);
  writing = false;
  await writers;
  await sleep(3000);
  reading = false;
  await Promise.all(readers);

  // An answer goes back when it was asked for after another one had already come back newer
  // (requests in flight at the same time may be answered in either order).
  const byStart = [...answers].sort((a, b) => a.start - b.start);
  const byEnd = [...answers].sort((a, b) => a.end - b.end);
  let maxVersion = -1, j = 0;
  const known = new Array(TARGETS).fill(false);
  const regressions = [];
  for (const a of byStart) {
    for (; j < byEnd.length && byEnd[j].end < a.start; j++) {
      maxVersion = Math.max(maxVersion, byEnd[j].version ?? -1);
      byEnd[j].known.forEach((k, i) => (known[i] ||= k));
    }
    if ((a.version ?? -1) < maxVersion) regressions.push(`version ${a.version} after ${maxVersion}`);
    a.known.forEach((k, i) => {
      if (known[i] && !k) regressions.push(`target_${i} unknown again at version ${a.version}`);
    });
  }
  answers.forEach((a) => a.known.forEach((k, i) => (known[i] ||= k)));
  assert.ok(answers.length > 200, `enough answers to see a flicker (${answers.length})`);
  assert.deepEqual(known, new Array(TARGETS).fill(true), "every launch reached the edge");
  assert.deepEqual(regressions.slice(0, 10), [], `${regressions.length} of ${answers.length} answers went back`);
});
