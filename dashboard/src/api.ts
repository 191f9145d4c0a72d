// The console's only door to the control plane: the public /api/v1, with the admin token from
// this tab's sessionStorage (never localStorage, never a URL). A 401 clears the token and sends
// the user back to the sign-in screen.

export type Status = 'draft' | 'running' | 'paused' | 'stopped';

export interface Variant {
  key: string;
  name?: string;
  weight: number;
  config_json?: unknown;
}

export interface Experiment {
  id: string;
  key: string;
  name: string;
  description: string;
  owner_team: string;
  created_by: string;
  unit_type: string;
  type: 'ab' | 'bandit' | string;
  status: Status;
  version: number;
  ramp_pct: number;
  targeting: unknown;
  variants: Variant[];
  created_at: string;
  updated_at: string;
  started_at?: string | null;
  stopped_at?: string | null;
  layer?: { key: string; start: number; end: number } | null;
  /** Declared metrics (role, direction, planned effect); older servers leave it out. */
  metrics?: MetricDecl[];
  /** Stopping rules the control plane's watch job evaluates (`[]` when none). */
  rules?: StoppingRule[];
  /** A safe rollout's schedule, and where it stands once launched (written by the watch job). */
  rollout?: RolloutPlan | null;
  rollout_state?: RolloutState | null;
}

export interface MetricDecl {
  name: string;
  kind?: 'mean' | 'proportion' | null;
  role?: 'primary' | 'secondary' | 'guardrail';
  direction?: 'increase' | 'decrease';
  /** Planned minimum detectable effect, relative (0.05 = 5%). */
  mde?: number;
}

export type RuleKind = 'max_duration' | 'max_sample' | 'significance' | 'guardrail' | 'srm';
export type RuleAction = 'notify' | 'pause' | 'stop' | 'rollback';

/** Only the fields its kind takes are present (the API refuses the others). */
export interface StoppingRule {
  kind: RuleKind;
  action: RuleAction;
  days?: number;
  units?: number;
  metric?: string;
  /** Relative (0.05 = 5% worse than control). */
  margin?: number;
}

export interface RolloutPlan {
  steps: { ramp_pct: number; hold_seconds: number }[];
  guardrail_margin: number;
  min_units_per_step: number;
}

export interface RolloutState {
  /** 0-based index into the plan's steps. */
  step: number;
  step_started_at: string;
  outcome: 'ramping' | 'complete' | 'rolled_back' | 'overridden';
  reason?: string;
}

export type RolloutDecision =
  | { decision: 'hold'; reason: string }
  | { decision: 'advance'; from_pct: number; to_pct: number; step: number }
  | { decision: 'complete'; ramp_pct: number }
  | { decision: 'rollback'; reason: string; breaches: unknown[]; srm_p: number | null };

/** `GET /experiments/{id}/watch`: what the watch job sees now (reading it acts on nothing). */
export interface WatchAssessment {
  experiment: string;
  id: string;
  status: string;
  evaluated_at: string;
  /** `holds`: the rule's condition is met (it fires, or has fired). */
  rules: { index: number; rule: StoppingRule; holds: boolean; progress: string }[];
  rollout?: {
    plan: RolloutPlan;
    state: RolloutState | null;
    ramp_pct: number;
    decision: RolloutDecision | null;
    units_in_step: number;
  };
  findings: { kind: string; severity: Severity; key: string; title: string; details: Record<string, unknown> }[];
}

export type Severity = 'info' | 'warning' | 'critical';
export type AlertKind = 'srm' | 'guardrail' | 'rule' | 'rollout' | 'anomaly' | 'ready_to_call' | 'underpowered';

/** One entry of the alert feed: something the watch job found, and what it did about it. */
export interface AlertEntry {
  id: number;
  experiment_id: string | null;
  experiment_key: string;
  kind: AlertKind | string;
  severity: Severity | string;
  title: string;
  details: Record<string, unknown>;
  /** What the platform did: notify, or pause / stop / rollback / advance / complete. */
  action: string;
  created_at: string;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
}

export interface AlertFilter {
  experiment?: string;
  kind?: string;
  acknowledged?: boolean;
  limit?: number;
}

/** `GET /whoami`: what this token may do (the console hides what it cannot). */
export interface WhoAmI {
  role: 'admin' | 'read' | 'ingest' | string;
  can_read: boolean;
  can_write: boolean;
}

/** An API key as listed: never its secret. */
export interface ApiKey {
  id: string;
  name: string;
  role: 'admin' | 'read' | 'ingest' | 'assign';
  prefix: string;
  created_by: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

export interface AuditEntry {
  id?: number;
  action: string;
  from_status: string | null;
  to_status: string;
  actor: string;
  version: number;
  details: Record<string, unknown> | null;
  at: string;
}

export interface MetricSummary {
  units: number;
  count?: number;
  sum?: number;
  mean?: number | null;
  std?: number | null;
}

export interface ConversionSummary {
  units: number;
  rate?: number | null;
}

export interface VariantResult {
  key: string;
  weight: number;
  exposures: number;
  metrics?: Record<string, MetricSummary>;
  conversions?: Record<string, ConversionSummary>;
  [extra: string]: unknown;
}

export interface Lift {
  metric: string;
  kind: string;
  control: string;
  variant: string;
  control_value?: number | null;
  variant_value?: number | null;
  abs_lift?: number | null;
  rel_lift?: number | null;
  ci_low?: number | null;
  ci_high?: number | null;
  p_value?: number | null;
  test?: string | null;
  note?: string | null;
  [extra: string]: unknown;
}

export interface Srm {
  p_value: number;
  expected?: number[];
  observed?: number[];
  flagged?: boolean;
}

export interface Results {
  experiment: string;
  id?: string;
  status: string;
  version?: number;
  control: string;
  alpha?: number;
  generated_at?: string;
  variants: VariantResult[];
  lift: Lift[];
  srm?: Srm | null;
  [extra: string]: unknown;
}

export interface TimeseriesPoint {
  t: string;
  variants: Record<string, {
    exposures: number;
    metrics?: Record<string, { units: number; mean?: number | null }>;
    conversions?: Record<string, { units: number; rate?: number | null }>;
  }>;
}

export interface Timeseries {
  interval: string;
  points: TimeseriesPoint[];
}

export interface BanditSnapshot {
  /** `weight`: the weight the edge serves now (`serving_weight` too); `proposed_weight`: what the policy would serve next. */
  variants: {
    key: string;
    exposures?: number;
    mean?: number | null;
    weighted_mean?: number | null;
    win_probability?: number | null;
    weight?: number | null;
    serving_weight?: number | null;
    proposed_weight?: number | null;
  }[];
  top_variant?: string | null;
  converged?: boolean;
  converged_at?: number;
  metric?: { name: string; kind: string; direction: string } | null;
  policy?: { policy: string; floor: number; min_units_per_arm: number; exploration_seconds: number; reweight_every_seconds: number; epsilon: number };
  stage?: string;
  regret?: { best_variant: string; expected: number; per_unit: number } | null;
  periods?: number;
  weights_version?: number;
  /** Every weight version served, oldest first. */
  weight_history?: { seq: number; at: string; weights: Record<string, number>; previous: Record<string, number> }[];
  note?: string;
}

/** An error answered by the API (`{"error":{"code","message","field"?}}`) or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public field?: string,
    public body?: unknown,
  ) {
    super(message);
  }
}

const TOKEN_KEY = 'litmus.token';
const ACTOR_KEY = 'litmus.actor';
/** This token's role, asked once per sign-in. */
let whoamiCache: Promise<WhoAmI | null> | null = null;

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function getActor(): string {
  return sessionStorage.getItem(ACTOR_KEY) || 'console';
}

/** `expired`: the API refused the token (as opposed to the user signing out). */
type AuthListener = (signedIn: boolean, expired: boolean) => void;
const authListeners = new Set<AuthListener>();

export function onAuthChange(fn: AuthListener): () => void {
  authListeners.add(fn);
  return () => authListeners.delete(fn);
}

function setSignedIn(token: string | null, actor?: string, expired = false) {
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    if (actor !== undefined) sessionStorage.setItem(ACTOR_KEY, actor);
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
  }
  whoamiCache = null;
  authListeners.forEach((fn) => fn(!!token, expired));
}

export function signOut() {
  setSignedIn(null);
}

/** Checks the token against the API before keeping it. */
export async function signIn(token: string, actor: string): Promise<void> {
  const res = await send('GET', '/experiments?status=running&limit=1', undefined, token);
  if (res.status === 401) throw new ApiError(401, 'unauthorized', 'That token was not accepted by the control plane.');
  if (!res.ok) throw await toError(res);
  setSignedIn(token, actor.trim() || 'console');
}

async function send(method: string, path: string, body: unknown, token: string | null, accept = 'application/json'): Promise<Response> {
  const headers: Record<string, string> = { Accept: accept };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    return await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the control plane. Check that it is running.');
  }
}

async function toError(res: Response): Promise<ApiError> {
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    return new ApiError(res.status, 'http_' + res.status, `${res.status} ${res.statusText || 'error'}`);
  }
  const e = (body as { error?: { code?: string; message?: string; field?: string } })?.error;
  return new ApiError(res.status, e?.code || 'http_' + res.status, e?.message || `${res.status} ${res.statusText}`, e?.field || undefined, body);
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await send(method, path, body, getToken());
  if (res.status === 401) {
    setSignedIn(null, undefined, true);
    throw await toError(res);
  }
  if (!res.ok) throw await toError(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

async function requestText(path: string, accept: string): Promise<string> {
  const res = await send('GET', path, undefined, getToken(), accept);
  if (res.status === 401) setSignedIn(null, undefined, true);
  if (!res.ok) throw await toError(res);
  return res.text();
}

/** One page of a list and where the next one starts (`null`: this was the last). */
export interface Page<T> {
  items: T[];
  next: string | null;
}

async function requestPage<T>(path: string): Promise<Page<T>> {
  const res = await send('GET', path, undefined, getToken());
  if (res.status === 401) setSignedIn(null, undefined, true);
  if (!res.ok) throw await toError(res);
  return { items: (await res.json()) as T[], next: res.headers.get('X-Next-Cursor') };
}

/** Experiments per page of the list (the API serves at most 200). */
export const PAGE_SIZE = 50;

const enc = encodeURIComponent;

export interface ExperimentInput {
  key?: string;
  name: string;
  description: string;
  owner_team: string;
  created_by?: string;
  unit_type: string;
  type: string;
  targeting: unknown;
  ramp_pct?: number;
  variants: Variant[];
  rules?: StoppingRule[];
  rollout?: RolloutPlan;
}

/** Alerts per page of the feed (the API serves at most 500). */
export const ALERT_PAGE_SIZE = 50;

export const api = {
  /** A page of experiments, newest first; pass the previous page's `next` for the one after. */
  listExperiments(status?: string, q?: string, cursor?: string | null) {
    const params = new URLSearchParams();
    if (status) params.set('status', status);
    if (q) params.set('q', q);
    params.set('limit', String(PAGE_SIZE));
    if (cursor) params.set('cursor', cursor);
    return requestPage<Experiment>(`/experiments?${params}`);
  },
  getExperiment: (id: string) => request<Experiment>('GET', `/experiments/${enc(id)}`),
  createExperiment: (body: ExperimentInput) => request<Experiment>('POST', '/experiments', body),
  updateExperiment: (id: string, patch: Partial<ExperimentInput> & { actor?: string }) =>
    request<Experiment>('PATCH', `/experiments/${enc(id)}`, patch),
  launch: (id: string, ramp_pct: number) =>
    request<Experiment>('POST', `/experiments/${enc(id)}/launch`, { ramp_pct, actor: getActor() }),
  pause: (id: string) => request<Experiment>('POST', `/experiments/${enc(id)}/pause`, { actor: getActor() }),
  stop: (id: string) => request<Experiment>('POST', `/experiments/${enc(id)}/stop`, { actor: getActor() }),
  /** Drafts only (the API answers 409 for anything that ran). */
  deleteDraft: (id: string) => request<void>('DELETE', `/experiments/${enc(id)}`, { actor: getActor() }),
  audit: (id: string) => request<AuditEntry[]>('GET', `/experiments/${enc(id)}/audit`),
  results: (id: string) => request<Results>('GET', `/experiments/${enc(id)}/results`),
  resultsExport: (id: string, format: 'csv' | 'md') =>
    requestText(`/experiments/${enc(id)}/results?format=${format}`, format === 'csv' ? 'text/csv' : 'text/markdown'),
  timeseries: (id: string, interval: string) =>
    request<Timeseries>('GET', `/experiments/${enc(id)}/timeseries?interval=${enc(interval)}`),
  bandit: (id: string) => request<BanditSnapshot>('GET', `/experiments/${enc(id)}/bandit`),
  sampleSize: (body: Record<string, number>) => request<Record<string, unknown>>('POST', '/sample-size', body),
  watch: (id: string) => request<WatchAssessment>('GET', `/experiments/${enc(id)}/watch`),
  /** A page of the alert feed, newest first; `before` is the previous page's `next`. */
  alerts(f: AlertFilter, before?: string | null) {
    const params = new URLSearchParams();
    if (f.experiment) params.set('experiment', f.experiment);
    if (f.kind) params.set('kind', f.kind);
    if (f.acknowledged !== undefined) params.set('acknowledged', String(f.acknowledged));
    if (before) params.set('before', before);
    params.set('limit', String(f.limit ?? ALERT_PAGE_SIZE));
    return requestPage<AlertEntry>(`/alerts?${params}`);
  },
  /** Idempotent: a second acknowledgement keeps the first one's name and time. */
  acknowledge: (id: number) => request<AlertEntry>('POST', `/alerts/${id}/acknowledge`, { actor: getActor() }),
  keys: () => request<ApiKey[]>('GET', '/keys'),
  /** The answer holds the secret (`key`), once: it cannot be read again. */
  createKey: (body: { name: string; role: string; expires_at?: string }) => request<ApiKey & { key: string }>('POST', '/keys', body),
  revokeKey: (id: string) => request<ApiKey>('DELETE', `/keys/${enc(id)}`),
  /** Asked once per sign-in; `null` when the server cannot say (the console then finds out from a 403). */
  whoami(): Promise<WhoAmI | null> {
    whoamiCache ??= request<WhoAmI>('GET', '/whoami').catch(() => null);
    return whoamiCache;
  },
};
