// Local evaluation: the shared engine (litmus_shared, Rust) compiled to wasm, so a service can
// assign without a network call and get exactly the edge's answers. Works in Node, Deno, browsers
// and workers (pass the wasm module where files cannot be read: see `LocalOptions.wasm`).
import init, { Evaluator } from "./wasm/litmus_sdk_js_wasm.js";
import type { Assignment, AssignResponse, Attributes } from "./index.js";

export type { Assignment, AssignResponse, Attributes } from "./index.js";

export interface LocalOptions {
  /** The engine's wasm: a compiled `WebAssembly.Module` (workers: `import wasm from
   * "@litmus-edge/sdk/litmus_engine_bg.wasm"`), its bytes, or a URL/Response to fetch. Default:
   * the file next to this module (read from disk in Node and Deno, fetched elsewhere). */
  wasm?: WebAssembly.Module | BufferSource | URL | string | Response | Promise<Response>;
}

let ready: Promise<unknown> | null = null;

async function defaultWasm(): Promise<BufferSource | URL> {
  const url = new URL("./wasm/litmus_sdk_js_wasm_bg.wasm", import.meta.url);
  if (url.protocol !== "file:") return url;
  // Node and Deno: read the file (fetch of file: URLs is Deno-only). The specifier is a variable
  // so that bundlers for the browser leave it alone.
  const fsName = "node:fs/promises";
  const fs = (await import(fsName)) as { readFile(u: URL): Promise<Uint8Array<ArrayBuffer>> };
  return fs.readFile(url);
}

/** Loads the engine once (later calls share it). */
export function loadEngine(options: LocalOptions = {}): Promise<unknown> {
  if (!ready) {
    ready = (async () => init({ module_or_path: (options.wasm ?? (await defaultWasm())) as never }))();
    ready.catch(() => {
      ready = null; // a failed load may be retried
    });
  }
  return ready;
}

/** A config set held by the engine: `assign` answers as the edge does, from the same code. */
export class LocalEvaluator {
  private readonly engine: Evaluator;

  /** Use `createLocalEvaluator` (it loads the wasm first). */
  constructor(configSetJson: string) {
    this.engine = new Evaluator(configSetJson);
  }

  /** The config set's version. */
  get version(): number {
    return this.engine.version;
  }

  /** Keys of the experiments in the set. */
  get experiments(): string[] {
    return this.engine.keys();
  }

  /** The assignment of one experiment, the edge's object field for field; an experiment the set
   * does not hold gets the edge's `unknown_experiment` entry. */
  assign(experimentKey: string, unitId: string, attributes: Attributes = {}): Assignment {
    const json = this.engine.assign(experimentKey, unitId, JSON.stringify(attributes));
    if (json === undefined) {
      return { experiment: experimentKey, variant_key: null, config_json: null, in_experiment: false, reason: "unknown_experiment" };
    }
    return JSON.parse(json) as Assignment;
  }

  /** What the edge answers to `POST /v1/assign` for this unit: the named experiments, or every
   * running one. */
  assignAll(unitId: string, attributes: Attributes = {}, experiments?: string[]): AssignResponse {
    const keys = experiments ? [...new Set(experiments)] : this.engine.keys().filter((k) => this.engine.status(k) === "running");
    return { unit_id: unitId, config_version: this.version, assignments: keys.map((k) => this.assign(k, unitId, attributes)) };
  }

  /** Frees the engine's memory for this set. */
  dispose(): void {
    this.engine.free();
  }
}

/** Loads the engine (once) and parses `configSet` (the JSON the control plane publishes to the
 * edge, as text or as an object). Throws when it is not a config set. */
export async function createLocalEvaluator(configSet: string | object, options: LocalOptions = {}): Promise<LocalEvaluator> {
  await loadEngine(options);
  return new LocalEvaluator(typeof configSet === "string" ? configSet : JSON.stringify(configSet));
}
