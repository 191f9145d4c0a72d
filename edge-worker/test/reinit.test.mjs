// After a trap (a Rust panic), workers-rs has wasm-bindgen's glue replace the wasm instance on its
// next call. No input is known to reach a panic, so the test sets the glue's own flag, the one the
// panic hook's abort handler sets, through a copy of the build whose entry also exposes it
// (`/__test/reinit`). Every answer after the replacement must still be the one workers-rs gives,
// not the last answer the old instance left in its memory.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startWorker, startSink, experiment, BUILD } from "./helpers.mjs";

let fast, slow, sink, dir;
const set = { version: 3, experiments: [experiment("checkout"), experiment("hero", { ramp_pct: 60 })] };

/** A copy of the build whose entry answers `/__test/reinit` by setting the glue's re-instantiation flag. */
function patchedBuild() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "litmus-reinit-"));
  fs.mkdirSync(path.join(d, "worker"));
  fs.copyFileSync(path.join(BUILD, "worker/index.wasm"), path.join(d, "worker/index.wasm"));
  const shim = fs.readFileSync(path.join(BUILD, "worker/shim.mjs"), "utf8");
  const flag = shim.match(/__wbg___wbindgen_reinit_[0-9a-f]+:\(\)=>([A-Za-z_$][\w$]*)/);
  assert.ok(flag, "the glue's re-instantiation import is in the build");
  fs.writeFileSync(path.join(d, "worker/shim.mjs"), `${shim}\nexport { ${flag[1]} as __testReinit };\n`);
  fs.writeFileSync(
    path.join(d, "index.js"),
    `import worker, { __testReinit } from "./worker/shim.mjs";
export default {
  fetch(request, env, ctx) {
    const path = new URL(request.url).pathname;
    if (path === "/__test/reinit") {
      __testReinit();
      return new Response("scheduled");
    }
    if (path === "/__test/instance") return new Response(String(globalThis.__worker_init_state.instanceId));
    return worker.fetch(request, env, ctx);
  },
  queue: (batch, env, ctx) => worker.queue(batch, env, ctx),
};
`,
  );
  return d;
}

before(async () => {
  sink = await startSink();
  dir = patchedBuild();
  const bindings = { CONTROL_PLANE_URL: sink.url };
  fast = await startWorker({ bindings, build: dir });
  slow = await startWorker({ bindings: { ...bindings, ASSIGN_FAST_PATH: "off" } });
  for (const w of [fast, slow]) assert.equal((await w.publish(set)).status, 200);
});

after(async () => {
  await fast?.dispose();
  await slow?.dispose();
  await sink?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test("answers stay right after the glue replaces the wasm instance, GET and POST", async () => {
  // A long query now and then makes the shim ask the instance for a bigger input buffer: after
  // the replacement, that buffer is in the new instance's memory.
  const ask = async (w, i) => [
    await w.json(`/v1/assign?unit_id=before-${i}&expose=false${String(i).endsWith("-3") ? `&pad=${"x".repeat(3000 * (1 + Number(String(i)[0])))}` : ""}`),
    await w.json("/v1/assign", { method: "POST", body: JSON.stringify({ unit_id: `post-${i}`, expose: false }) }),
  ];
  for (let i = 0; i < 5; i++) assert.deepEqual((await ask(fast, i)).map((r) => r.body), (await ask(slow, i)).map((r) => r.body));
  const instance = async () => Number(await (await fast.call("/__test/instance")).text());
  for (let round = 0; round < 2; round++) {
    const before = await instance();
    assert.equal((await fast.call("/__test/reinit")).status, 200);
    for (let i = 0; i < 20; i++) {
      const [mine, theirs] = [await ask(fast, `${round}-${i}`), await ask(slow, `${round}-${i}`)];
      for (let k = 0; k < 2; k++) {
        assert.equal(mine[k].status, 200, JSON.stringify(mine[k].body).slice(0, 300));
        assert.deepEqual(mine[k].body, theirs[k].body, `round ${round}, request ${i}`);
      }
    }
    assert.equal(await instance(), before + 1, "the glue made a new instance");
  }
});
