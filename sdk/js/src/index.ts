// Litmus Edge JavaScript SDK: assignments from the edge, exposures and events back to it.
// Zero runtime dependencies; runs in browsers, Node >= 18, Deno and workers (anything with fetch).
// Local evaluation (no network) lives in "./local" (the shared engine compiled to wasm).

/** One assignment, exactly as the edge serializes `litmus_shared::Assignment` (see
 * edge-worker/README.md): `unknown_experiment`/`no_config` entries carry nulls and no id. */
export interface Assignment {
  experiment: string;
  variant_key: string | null;
  config_json: unknown;
  assignment_id?: string;
  /** The issuer's signature of this answer (edge and control plane): events about it echo it, and
   * the edge counts no event from a browser without one. Absent from local evaluation. */
  signature?: string;
  version?: number;
  in_experiment: boolean;
  reason: string;
}

/** The edge's answer to `/v1/assign`. */
export interface AssignResponse {
  unit_id: string | null;
  config_version: number | null;
  assignments: Assignment[];
  sticky?: unknown;
}

/** What `getVariant` gives: the variant to show, never an exception. */
export interface Variant {
  experiment: string;
  /** The variant key; the control ("control" when the edge could not be asked) when not in the experiment. */
  key: string;
  config: unknown;
  inExperiment: boolean;
  /** The edge's reason, or `fail_safe` when it could not be reached. */
  reason: string;
  assignmentId?: string;
  signature?: string;
  version?: number;
}

export type Attributes = Record<string, unknown>;

export interface ClientOptions {
  /** Base URL of the edge worker, e.g. https://edge.example.com (no trailing /v1). */
  edgeUrl: string;
  /** Targeting attributes sent with every assignment request. */
  attributes?: Attributes;
  /** The unit; without it the edge's `litmus_uid` cookie (or a unit it mints) is used and remembered. */
  unitId?: string;
  /** Per request, default 1500 ms. */
  timeoutMs?: number;
  /** Extra attempts on network errors and 5xx, with exponential backoff; default 2. */
  retries?: number;
  /** A fetch implementation; default globalThis.fetch. */
  fetch?: typeof fetch;
  /** How long events wait to be batched, default 1000 ms. */
  flushIntervalMs?: number;
  /** Events that trigger a send at once, default 20. */
  batchSize?: number;
  /** Fetch credentials for assignment requests: "include" carries the edge's cookie cross-site,
   * which the edge allows only when ALLOWED_ORIGINS lists the page's origin (not "*").
   * Default "same-origin". */
  credentials?: RequestCredentials;
  /** Browsers: remember the unit the edge gave in localStorage (key `litmus_uid`); default true. */
  persistUnit?: boolean;
  /** The `sticky` document of an earlier answer for this unit (bandits: a unit keeps its first
   * variant while weights move). The client keeps the latest one in `client.sticky`; a service
   * stores it with the unit and passes it here next time. Browsers have the edge's cookie instead. */
  sticky?: unknown;
  /** Called with every swallowed error (the SDK never throws into the host). */
  onError?: (error: unknown) => void;
}

/** An event as `POST /v1/events` takes it. */
export interface EdgeEvent {
  kind: "exposure" | "metric" | "conversion";
  experiment: string;
  unit_id: string;
  variant_key: string;
  metric?: string;
  value?: number;
  event_id: string;
  ts: string;
  attributes?: Attributes;
  /** Echoed from the assignment the event reports on: what makes the edge count it. */
  assignment_id?: string;
  signature?: string;
}

const MAX_EVENTS_PER_REQUEST = 1000;
// keepalive requests (and beacons) may carry at most 64 KiB in flight.
const MAX_KEEPALIVE_BYTES = 60_000;
const MAX_QUEUE = 10_000;
const STORAGE_KEY = "litmus_uid";

/** The answer given when the edge cannot be reached: the control, not in the experiment. */
export function failSafe(experiment: string, control = "control"): Assignment {
  return { experiment, variant_key: control, config_json: null, in_experiment: false, reason: "fail_safe" };
}

function toVariant(a: Assignment, fallback: string): Variant {
  const v: Variant = {
    experiment: a.experiment,
    key: a.variant_key ?? fallback,
    config: a.config_json ?? null,
    inExperiment: a.in_experiment,
    reason: a.reason,
  };
  if (a.assignment_id !== undefined) v.assignmentId = a.assignment_id;
  if (a.signature !== undefined) v.signature = a.signature;
  if (a.version !== undefined) v.version = a.version;
  return v;
}

function uuid(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const b = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

class RetryableStatus extends Error {}

interface Batch {
  keys: Set<string>;
  all: boolean;
  promise: Promise<void>;
}

function storage(): Storage | undefined {
  try {
    return (globalThis as { localStorage?: Storage }).localStorage;
  } catch {
    return undefined; // sandboxed iframes throw on access
  }
}

export class LitmusClient {
  /** The unit the assignments are for: given, or the one the edge answered for. */
  unitId: string | undefined;
  attributes: Attributes;
  /** The latest `sticky` document the edge answered with (only when sticky experiments exist). */
  sticky: unknown;
  private readonly edgeUrl: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly fetchImpl: typeof fetch;
  private readonly flushIntervalMs: number;
  private readonly batchSize: number;
  private readonly credentials: RequestCredentials;
  private readonly persistUnit: boolean;
  private readonly onError: (e: unknown) => void;
  private readonly cache = new Map<string, Assignment>();
  private allFetched = false;
  private batch: Batch | null = null;
  private queue: EdgeEvent[] = [];
  private readonly exposed = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private sending: Promise<void> = Promise.resolve();
  private readonly onHide: () => void;
  private lastAnswer: AssignResponse | null = null;
  /** The newest config version the edge answered this client from, sent back as `min_version`:
   * an edge isolate holding an older set (a location runs several, and each learns of a publish
   * in its own time) re-reads it before answering, so answers never go back a version. */
  private configVersion: number | null = null;

  constructor(options: ClientOptions) {
    this.edgeUrl = String(options.edgeUrl ?? "").replace(/\/+$/, "");
    this.attributes = { ...(options.attributes ?? {}) };
    this.timeoutMs = options.timeoutMs ?? 1500;
    this.retries = Math.max(0, options.retries ?? 2);
    const f = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    this.fetchImpl = f ? f.bind(globalThis) : (() => Promise.reject(new Error("no fetch available"))) as typeof fetch;
    this.flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.batchSize = Math.max(1, options.batchSize ?? 20);
    this.credentials = options.credentials ?? "same-origin";
    this.persistUnit = options.persistUnit ?? true;
    this.onError = (e) => {
      try {
        options.onError?.(e);
      } catch {
        /* the host's callback must not break us either */
      }
    };
    this.unitId = options.unitId;
    this.sticky = options.sticky;
    if (this.unitId === undefined && this.persistUnit) {
      try {
        this.unitId = storage()?.getItem(STORAGE_KEY) ?? undefined;
      } catch {
        /* no storage */
      }
    }
    this.onHide = () => {
      const doc = (globalThis as { document?: Document }).document;
      if (doc && doc.visibilityState !== undefined && doc.visibilityState !== "hidden") return;
      this.beacon();
    };
    const g = globalThis as { addEventListener?: (t: string, f: () => void) => void; document?: Document };
    try {
      g.addEventListener?.("pagehide", this.onHide);
      g.document?.addEventListener?.("visibilitychange", this.onHide);
    } catch {
      /* not a browser */
    }
  }

  /** The last answer the edge gave (its raw JSON), or null before the first one. */
  get lastResponse(): AssignResponse | null {
    return this.lastAnswer;
  }

  /**
   * Assignments for `experiments` (default: every running experiment), from one edge request;
   * answers are cached, so asking again costs nothing. Never throws: when the edge cannot be
   * reached, each named experiment gets its control with reason `fail_safe`.
   */
  async getAssignments(experiments?: string[]): Promise<AssignResponse> {
    try {
      const keys = experiments ? [...new Set(experiments)] : null;
      const missing = keys ? keys.filter((k) => !this.cache.has(k)) : this.allFetched ? [] : null;
      if (missing === null || missing.length > 0) await this.request(missing);
      const list = keys
        ? keys.map((k) => this.cache.get(k) ?? failSafe(k))
        : [...this.cache.values()].filter((a) => a.reason !== "fail_safe");
      return { unit_id: this.unitId ?? null, config_version: this.lastAnswer?.config_version ?? null, assignments: list };
    } catch (e) {
      this.onError(e);
      return { unit_id: this.unitId ?? null, config_version: null, assignments: (experiments ?? []).map((k) => failSafe(k)) };
    }
  }

  /**
   * The variant of one experiment. Calls in the same tick share one edge request. Logs the
   * exposure when the unit is in the experiment (once per unit, experiment and variant) unless
   * `{expose: false}`. `fallback` is the control to show when the edge cannot be reached.
   */
  async getVariant(experiment: string, options: { expose?: boolean; fallback?: string } = {}): Promise<Variant> {
    const fallback = options.fallback ?? "control";
    try {
      if (!this.cache.has(experiment)) await this.request([experiment]);
      const a = this.cache.get(experiment);
      if (!a) return toVariant(failSafe(experiment, fallback), fallback);
      const v = toVariant(a.reason === "fail_safe" ? failSafe(experiment, fallback) : a, fallback);
      if (v.inExperiment && options.expose !== false) this.logExposure(experiment);
      return v;
    } catch (e) {
      this.onError(e);
      return toVariant(failSafe(experiment, fallback), fallback);
    }
  }

  /** Sets attributes for later requests and drops cached answers (targeting may differ). */
  setAttributes(attributes: Attributes): void {
    this.attributes = { ...attributes };
    this.cache.clear();
    this.allFetched = false;
  }

  /** Logs that the unit saw its variant of `experiment` (from the cached assignment). Sent once
   * per (unit, experiment, variant); only for units in the experiment. Returns whether queued. */
  logExposure(experiment: string): boolean {
    try {
      const a = this.cache.get(experiment);
      if (!a || !a.in_experiment || !a.variant_key || !this.unitId) return false;
      const key = `${this.unitId}\u0000${experiment}\u0000${a.variant_key}`;
      if (this.exposed.has(key)) return false;
      this.exposed.add(key);
      const e = this.event("exposure", a);
      // The attributes go along for segment breakdowns when the control plane can store them
      // (as the edge does with its own exposures: at most 4 KiB of JSON, no NUL); otherwise the
      // exposure goes without them rather than being refused.
      const attrs = Object.keys(this.attributes).length > 0 ? JSON.stringify(this.attributes) : "";
      if (attrs && attrs.length <= 4096 && !attrs.includes("\\u0000")) e.attributes = JSON.parse(attrs) as Attributes;
      this.enqueue(e);
      return true;
    } catch (e) {
      this.onError(e);
      return false;
    }
  }

  /** Logs a metric value (an order's amount…) for the unit's variant of `experiment`. */
  logMetric(experiment: string, metric: string, value: number): boolean {
    try {
      const a = this.cache.get(experiment);
      if (!a || !a.in_experiment || !a.variant_key || !this.unitId || !Number.isFinite(value)) return false;
      this.enqueue({ ...this.event("metric", a), metric, value });
      return true;
    } catch (e) {
      this.onError(e);
      return false;
    }
  }

  /** Logs a conversion (`metric` default "conversion" at the edge) for the unit's variant. */
  logConversion(experiment: string, metric?: string): boolean {
    try {
      const a = this.cache.get(experiment);
      if (!a || !a.in_experiment || !a.variant_key || !this.unitId) return false;
      const e = this.event("conversion", a);
      if (metric !== undefined) e.metric = metric;
      this.enqueue(e);
      return true;
    } catch (e) {
      this.onError(e);
      return false;
    }
  }

  /** Sends every queued event now; resolves when the edge took them (or gave up). Never throws. */
  flush(): Promise<void> {
    this.clearTimer();
    const run = this.sending.then(async () => {
      while (this.queue.length > 0) {
        const batch = this.take(MAX_EVENTS_PER_REQUEST);
        const ok = await this.send(batch);
        if (!ok) {
          // Kept for the next flush (bounded), in their order.
          this.queue = batch.concat(this.queue).slice(0, MAX_QUEUE);
          break;
        }
      }
    });
    this.sending = run.catch((e) => this.onError(e));
    return this.sending;
  }

  /** Flushes and stops listening for page hide. */
  async close(): Promise<void> {
    await this.flush();
    const g = globalThis as { removeEventListener?: (t: string, f: () => void) => void; document?: Document };
    try {
      g.removeEventListener?.("pagehide", this.onHide);
      g.document?.removeEventListener?.("visibilitychange", this.onHide);
    } catch {
      /* not a browser */
    }
  }

  /** Events queued and not yet sent. */
  get queued(): number {
    return this.queue.length;
  }

  // --- internals --------------------------------------------------------------------------------

  private event(kind: EdgeEvent["kind"], a: Assignment): EdgeEvent {
    const e: EdgeEvent = {
      kind,
      experiment: a.experiment,
      unit_id: this.unitId as string,
      variant_key: a.variant_key as string,
      event_id: uuid(),
      ts: new Date().toISOString(),
    };
    if (a.assignment_id !== undefined) e.assignment_id = a.assignment_id;
    if (a.signature !== undefined) e.signature = a.signature;
    return e;
  }

  private enqueue(e: EdgeEvent): void {
    if (this.queue.length >= MAX_QUEUE) this.queue.shift();
    this.queue.push(e);
    if (this.queue.length >= this.batchSize) void this.flush();
    else if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush();
      }, this.flushIntervalMs);
      (this.timer as { unref?: () => void }).unref?.();
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Up to `max` events whose JSON stays under the keepalive limit. */
  private take(max: number): EdgeEvent[] {
    let bytes = 20;
    let n = 0;
    while (n < this.queue.length && n < max) {
      bytes += JSON.stringify(this.queue[n]).length + 1;
      if (n > 0 && bytes > MAX_KEEPALIVE_BYTES) break;
      n++;
    }
    return this.queue.splice(0, n);
  }

  /** POSTs events; true when the edge took them (a 4xx is final: resending would not help). */
  private async send(events: EdgeEvent[]): Promise<boolean> {
    const body = JSON.stringify({ events });
    try {
      const res = await this.call("/v1/events", body, { keepalive: body.length < MAX_KEEPALIVE_BYTES });
      if (!res.ok) this.onError(new Error(`POST /v1/events: ${res.status} ${await res.text().catch(() => "")}`));
      return true;
    } catch (e) {
      this.onError(e);
      return false;
    }
  }

  /** On page hide: the queue goes out by sendBeacon (or a keepalive fetch), whatever happens next. */
  private beacon(): void {
    try {
      this.clearTimer();
      const nav = (globalThis as { navigator?: Navigator }).navigator;
      while (this.queue.length > 0) {
        const batch = this.take(MAX_EVENTS_PER_REQUEST);
        const body = JSON.stringify({ events: batch });
        let sent = false;
        if (nav && typeof nav.sendBeacon === "function") {
          // text/plain: a CORS-safelisted type, so no preflight (the edge reads any content type).
          sent = nav.sendBeacon(`${this.edgeUrl}/v1/events`, new Blob([body], { type: "text/plain" }));
        }
        if (!sent) {
          void this.fetchImpl(`${this.edgeUrl}/v1/events`, {
            method: "POST", body, keepalive: true, headers: { "content-type": "text/plain" },
          }).catch((e) => this.onError(e));
        }
      }
    } catch (e) {
      this.onError(e);
    }
  }

  /** One assignment request for `keys` (null: every running experiment), shared by every call
   * made in the same tick. */
  private request(keys: string[] | null): Promise<void> {
    let b = this.batch;
    if (!b) {
      const fresh: Batch = { keys: new Set<string>(), all: false, promise: Promise.resolve() };
      fresh.promise = (async () => {
        await Promise.resolve(); // the other calls of this tick join first
        this.batch = null;
        await this.fetchInto(fresh.all ? null : [...fresh.keys]);
        const left = [...fresh.keys].filter((k) => !this.cache.has(k));
        if (fresh.all && left.length > 0) await this.fetchInto(left); // named ones that are not running
      })();
      this.batch = b = fresh;
    }
    if (keys === null) b.all = true;
    else for (const k of keys) b.keys.add(k);
    return b.promise;
  }

  private async fetchInto(asked: string[] | null): Promise<void> {
    try {
      const answer = await this.assignRequest(asked);
      this.lastAnswer = answer;
      if (typeof answer.config_version === "number" && answer.config_version > (this.configVersion ?? -1)) this.configVersion = answer.config_version;
      if (answer.unit_id && !this.unitId) this.rememberUnit(answer.unit_id);
      if (answer.sticky !== undefined) this.sticky = answer.sticky;
      for (const a of answer.assignments) this.cache.set(a.experiment, a);
      if (asked === null) this.allFetched = true;
    } catch (e) {
      this.onError(e);
    }
  }

  private rememberUnit(unitId: string): void {
    this.unitId = unitId;
    if (!this.persistUnit) return;
    try {
      storage()?.setItem(STORAGE_KEY, unitId);
    } catch {
      /* no storage */
    }
  }

  private async assignRequest(experiments: string[] | null): Promise<AssignResponse> {
    const body: Record<string, unknown> = { attributes: this.attributes, expose: false };
    if (this.unitId !== undefined) body.unit_id = this.unitId;
    if (experiments !== null) body.experiments = experiments;
    if (this.sticky !== undefined && this.sticky !== null) body.sticky = this.sticky;
    if (this.configVersion !== null) body.min_version = this.configVersion;
    const res = await this.call("/v1/assign", JSON.stringify(body), { credentials: this.credentials });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST /v1/assign: ${res.status} ${text}`);
    const answer = JSON.parse(text) as AssignResponse;
    if (!answer || !Array.isArray(answer.assignments)) throw new Error("POST /v1/assign: not an assignment answer");
    return answer;
  }

  /** A POST with a timeout, retried with backoff on network errors and 5xx. Sent as text/plain so
   * that browsers skip the CORS preflight (the edge reads JSON whatever the content type). */
  private async call(path: string, body: string, init: RequestInit = {}): Promise<Response> {
    let last: unknown;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) await sleep(Math.min(100 * 2 ** attempt, 2000) * (0.5 + Math.random() / 2));
      const abort = typeof AbortController === "function" ? new AbortController() : undefined;
      const timer = setTimeout(() => abort?.abort(), this.timeoutMs);
      try {
        const res = await this.fetchImpl(`${this.edgeUrl}${path}`, {
          method: "POST",
          headers: { "content-type": "text/plain;charset=UTF-8" },
          body,
          signal: abort?.signal,
          ...init,
        });
        if (res.status >= 500) {
          last = new RetryableStatus(`POST ${path}: ${res.status}`);
          await res.text().catch(() => "");
          continue;
        }
        return res;
      } catch (e) {
        last = e;
      } finally {
        clearTimeout(timer);
      }
    }
    throw last;
  }
}

/** A client for the edge at `options.edgeUrl`. */
export function createClient(options: ClientOptions): LitmusClient {
  return new LitmusClient(options);
}
