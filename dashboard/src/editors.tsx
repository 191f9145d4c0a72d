// The experiment form shared by /experiments/new and /experiments/{id}/settings: metadata,
// variants (keys, weights that must sum to 1, config JSON), targeting, ramp, and the sample-size
// calculator. Client-side checks catch the obvious; the API's own errors land next to the field
// they name (`variants[1].weight`, `targeting.country.in`, ...).
import { useRef, useState } from 'preact/hooks';
import { ApiError, api, type Experiment, type ExperimentInput } from './api';
import { Alert, FieldError, fieldId, fieldProps, type FieldErrors } from './components';
import { int, isNum, num, pct } from './format';
import { perVariantProportions } from './samplesize';
import { DIALECT_LABEL, OPERATORS, dialectOf, jsonToRules, rulesToJson, type Rule } from './targeting';

export interface VariantRow {
  uid: number;
  key: string;
  name: string;
  weight: string;
  config: string;
}

export interface FormState {
  name: string;
  key: string;
  description: string;
  owner_team: string;
  unit_type: string;
  type: string;
  ramp_pct: string;
  variants: VariantRow[];
  tMode: 'rules' | 'json';
  rules: Rule[];
  tText: string;
}

let uidSeq = 0;
const uid = () => ++uidSeq;

const KEY_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const UNIT_TYPES = ['user_id', 'request_id', 'session_id', 'device_id', 'store_id', 'account_id'];

export function initialForm(exp?: Experiment): FormState {
  const targeting = exp?.targeting ?? {};
  const rules = jsonToRules(targeting);
  const variants: VariantRow[] = exp
    ? exp.variants.map((v) => ({ uid: uid(), key: v.key, name: v.name ?? '', weight: String(v.weight), config: JSON.stringify(v.config_json ?? {}, null, 2) }))
    : [
        { uid: uid(), key: 'control', name: 'Control', weight: '0.5', config: '{}' },
        { uid: uid(), key: 'treatment', name: 'Treatment', weight: '0.5', config: '{}' },
      ];
  return {
    name: exp?.name ?? '',
    key: exp?.key ?? '',
    description: exp?.description ?? '',
    owner_team: exp?.owner_team ?? '',
    unit_type: exp?.unit_type ?? 'user_id',
    type: exp?.type ?? 'ab',
    ramp_pct: String(exp?.ramp_pct ?? 10),
    variants,
    tMode: rules ? 'rules' : 'json',
    rules: rules ?? [],
    tText: JSON.stringify(targeting ?? {}, null, 2),
  };
}

export function weightSum(rows: VariantRow[]): number {
  return rows.reduce((s, r) => s + (Number(r.weight) || 0), 0);
}

/** Validates in the browser and builds the API body; errors are keyed by the API's field paths. */
export function formToInput(f: FormState, mode: 'create' | 'edit'): { input?: ExperimentInput; errors: FieldErrors } {
  const errors: FieldErrors = {};
  if (!f.name.trim()) errors.name = 'Give the experiment a name.';
  if (!f.description.trim()) errors.description = 'Describe the hypothesis you are testing.';
  if (!f.owner_team.trim()) errors.owner_team = 'Name the team that owns this experiment.';
  if (mode === 'create' && f.key.trim() && !KEY_RE.test(f.key.trim())) errors.key = 'Use lowercase letters, digits, _ and - (start with a letter or digit), up to 64.';
  if (!f.unit_type.trim()) errors.unit_type = 'Choose what a unit is (user_id, request_id, …).';
  const ramp = Number(f.ramp_pct);
  if (f.ramp_pct.trim() === '' || !(ramp >= 0 && ramp <= 100)) errors.ramp_pct = 'Ramp is a percentage from 0 to 100.';

  const variants = f.variants.map((r, i) => {
    const key = r.key.trim();
    if (!key) errors[`variants[${i}].key`] = 'Every variant needs a key.';
    else if (key.length > 64) errors[`variants[${i}].key`] = 'At most 64 characters.';
    else if (f.variants.slice(0, i).some((o) => o.key.trim() === key)) errors[`variants[${i}].key`] = `Duplicate key “${key}”.`;
    const w = Number(r.weight);
    if (r.weight.trim() === '' || !Number.isFinite(w) || w < 0) errors[`variants[${i}].weight`] = 'A number ≥ 0.';
    let config: unknown = {};
    if (r.config.trim()) {
      try {
        config = JSON.parse(r.config);
      } catch (e) {
        errors[`variants[${i}].config_json`] = `Not valid JSON: ${(e as Error).message}`;
      }
    }
    return { key, name: r.name.trim() || key, weight: w, config_json: config };
  });
  if (f.variants.length < 2) errors.variants = 'At least two variants: the first is the control.';
  else if (Math.abs(weightSum(f.variants) - 1) > 1e-6) errors.variants = `Weights must sum to 1 (they sum to ${round(weightSum(f.variants))}).`;

  let targeting: unknown = {};
  if (f.tMode === 'rules') targeting = rulesToJson(f.rules);
  else {
    try {
      targeting = f.tText.trim() ? JSON.parse(f.tText) : {};
    } catch (e) {
      errors.targeting = `Not valid JSON: ${(e as Error).message}`;
    }
  }
  if (Object.keys(errors).length) return { errors };
  const input: ExperimentInput = {
    name: f.name.trim(),
    description: f.description.trim(),
    owner_team: f.owner_team.trim(),
    unit_type: f.unit_type.trim(),
    type: f.type,
    targeting,
    ramp_pct: ramp,
    variants,
  };
  if (mode === 'create' && f.key.trim()) input.key = f.key.trim();
  return { input, errors };
}

const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** Maps an API field path to the nearest one this form shows: `targeting.country.inn` → `targeting`. */
export function placeError(e: ApiError, known: Set<string>): { fields: FieldErrors; general?: string } {
  if (!e.field) return { fields: {}, general: e.message };
  let path = e.field.replace(/^\$?\.?/, '');
  while (path && !known.has(path)) {
    const shorter = path.replace(/(\.[^.[\]]+|\[\d+\])$/, '');
    if (shorter === path) break;
    path = shorter;
  }
  if (!known.has(path)) return { fields: {}, general: `${e.field}: ${e.message}` };
  return { fields: { [path]: path === e.field ? e.message : `${e.field}: ${e.message}` } };
}

function knownFields(f: FormState): Set<string> {
  const s = new Set(['name', 'key', 'description', 'owner_team', 'unit_type', 'type', 'ramp_pct', 'targeting', 'variants']);
  f.variants.forEach((_, i) => ['key', 'name', 'weight', 'config_json'].forEach((k) => s.add(`variants[${i}].${k}`)));
  return s;
}

const LABELS: Record<string, string> = {
  name: 'Name',
  key: 'Key',
  description: 'Description',
  owner_team: 'Owner team',
  unit_type: 'Unit type',
  type: 'Type',
  ramp_pct: 'Ramp',
  targeting: 'Targeting',
  variants: 'Variants',
};

function labelFor(path: string): string {
  const m = /^variants\[(\d+)\]\.(\w+)$/.exec(path);
  if (m) return `Variant ${Number(m[1]) + 1} ${m[2].replace('_json', '').replace('_', ' ')}`;
  return LABELS[path] ?? path;
}

export function ExperimentForm(props: {
  mode: 'create' | 'edit';
  exp?: Experiment;
  submitLabel: string;
  save(input: ExperimentInput): Promise<void>;
}) {
  const { mode, exp } = props;
  const [f, setF] = useState<FormState>(() => initialForm(exp));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [general, setGeneral] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const summary = useRef<HTMLDivElement>(null);
  const stopped = exp?.status === 'stopped';
  const lockDraftOnly = mode === 'edit' && exp?.status !== 'draft';

  // A new version from the server (after a save) resets the form, in the same render: no effect
  // that could land after the user has started typing.
  const [formFor, setFormFor] = useState(exp?.version);
  if (exp && exp.version !== formFor) {
    setFormFor(exp.version);
    setF(initialForm(exp));
  }

  // Editing a field clears its error (server-side or not); the rest stay until the next save.
  const clear = (match: (path: string) => boolean) =>
    setErrors((errs) => (Object.keys(errs).some(match) ? Object.fromEntries(Object.entries(errs).filter(([p]) => !match(p))) : errs));
  const set = <K extends keyof FormState>(k: K, v: FormState[K]) => {
    clear((p) => p === k);
    setF((s) => ({ ...s, [k]: v }));
  };
  const setVariant = (i: number, patch: Partial<VariantRow>) => {
    const fields = Object.keys(patch).map((k) => `variants[${i}].${k === 'config' ? 'config_json' : k}`);
    clear((p) => fields.includes(p) || (p === 'variants' && 'weight' in patch));
    setF((s) => ({ ...s, variants: s.variants.map((r, j) => (j === i ? { ...r, ...patch } : r)) }));
  };
  const setVariants = (fn: (s: FormState) => FormState) => {
    clear((p) => p.startsWith('variants'));
    setF(fn);
  };
  const setTargeting = (fn: (s: FormState) => FormState) => {
    clear((p) => p.startsWith('targeting'));
    setF(fn);
  };

  const showErrors = (fields: FieldErrors, gen?: string) => {
    setErrors(fields);
    setGeneral(gen);
    // Move focus to the summary so keyboard and screen-reader users land on what went wrong.
    requestAnimationFrame(() => summary.current?.focus());
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy || stopped) return;
    const { input, errors: errs } = formToInput(f, mode);
    if (!input) return showErrors(errs);
    setBusy(true);
    try {
      await props.save(input);
      setErrors({});
      setGeneral(undefined);
    } catch (err) {
      if (err instanceof ApiError) {
        const placed = placeError(err, knownFields(f));
        showErrors(placed.fields, placed.general);
      } else showErrors({}, String(err));
    } finally {
      setBusy(false);
    }
  };

  const errorList = Object.entries(errors);
  const sum = weightSum(f.variants);
  const sumOk = Math.abs(sum - 1) <= 1e-6;

  return (
    <form class="form" onSubmit={submit} noValidate aria-describedby={general || errorList.length ? 'form-errors' : undefined}>
      <div ref={summary} tabIndex={-1} id="form-errors" class="error-summary-anchor">
        {(general || errorList.length > 0) && (
          <Alert title="The experiment was not saved" testId="form-error">
            {general && <p>{general}</p>}
            {errorList.length > 0 && (
              <ul>
                {errorList.map(([path, msg]) => (
                  <li key={path}>
                    <a
                      href={`#${fieldId(path)}`}
                      onClick={(ev) => {
                        ev.preventDefault();
                        document.getElementById(fieldId(path))?.focus();
                      }}
                    >
                      {labelFor(path)}
                    </a>
                    : {msg}
                  </li>
                ))}
              </ul>
            )}
          </Alert>
        )}
      </div>
      {stopped && <Alert kind="info">This experiment is stopped: nothing about it can change.</Alert>}

      <fieldset class="card" disabled={stopped}>
        <legend>About</legend>
        <div class="grid-2">
          <div class="field">
            <label for={fieldId('name')}>
              Name <span class="req">required</span>
            </label>
            <input {...fieldProps('name', errors)} value={f.name} onInput={(e) => set('name', e.currentTarget.value)} autocomplete="off" required />
            <FieldError path="name" errors={errors} />
          </div>
          <div class="field">
            <label for={fieldId('key')}>Key</label>
            <input
              {...fieldProps('key', errors, 'key-hint')}
              class="mono"
              value={f.key}
              onInput={(e) => set('key', e.currentTarget.value)}
              disabled={mode === 'edit'}
              placeholder="derived from the name"
              autocomplete="off"
              spellcheck={false}
            />
            <p class="hint" id="key-hint">
              {mode === 'edit' ? 'Keys never change: SDKs and the edge use them.' : 'Optional. Lowercase, digits, _ and -. SDKs ask for variants by this key.'}
            </p>
            <FieldError path="key" errors={errors} />
          </div>
        </div>
        <div class="field">
          <label for={fieldId('description')}>
            Description / hypothesis <span class="req">required</span>
          </label>
          <textarea {...fieldProps('description', errors)} rows={3} value={f.description} onInput={(e) => set('description', e.currentTarget.value)} />
          <FieldError path="description" errors={errors} />
        </div>
        <div class="grid-3">
          <div class="field">
            <label for={fieldId('owner_team')}>
              Owner team <span class="req">required</span>
            </label>
            <input {...fieldProps('owner_team', errors)} value={f.owner_team} onInput={(e) => set('owner_team', e.currentTarget.value)} autocomplete="organization" />
            <FieldError path="owner_team" errors={errors} />
          </div>
          <div class="field">
            <label for={fieldId('unit_type')}>Unit type</label>
            <input
              {...fieldProps('unit_type', errors, 'unit-hint')}
              class="mono"
              list="unit-types"
              value={f.unit_type}
              onInput={(e) => set('unit_type', e.currentTarget.value)}
              disabled={lockDraftOnly}
              autocomplete="off"
            />
            <datalist id="unit-types">
              {UNIT_TYPES.map((u) => (
                <option key={u} value={u} />
              ))}
            </datalist>
            <p class="hint" id="unit-hint">
              What gets randomised: the same unit always sees the same variant.
            </p>
            <FieldError path="unit_type" errors={errors} />
          </div>
          <div class="field">
            <label for={fieldId('type')}>Type</label>
            <select {...fieldProps('type', errors)} value={f.type} onChange={(e) => set('type', e.currentTarget.value)} disabled={lockDraftOnly}>
              <option value="ab">A/B test (fixed weights)</option>
              <option value="bandit">Bandit (adaptive weights)</option>
            </select>
            <FieldError path="type" errors={errors} />
          </div>
        </div>
      </fieldset>

      <VariantsEditor f={f} setF={setVariants} setVariant={setVariant} errors={errors} locked={lockDraftOnly || stopped} sum={sum} sumOk={sumOk} />

      <TargetingEditor f={f} setF={setTargeting} errors={errors} disabled={stopped} />

      {mode === 'create' && (
        <fieldset class="card">
          <legend>Ramp</legend>
          <RampInput value={f.ramp_pct} onChange={(v) => set('ramp_pct', v)} errors={errors} hint="The share of eligible units that enter the experiment when you launch it. You can change it later." />
        </fieldset>
      )}

      {mode === 'create' && <SampleSizeCalculator variants={f.variants.length} />}

      <div class="actions form-actions">
        <button type="submit" class="btn btn-primary" disabled={busy || stopped}>
          {busy ? 'Saving…' : props.submitLabel}
        </button>
      </div>
    </form>
  );
}

export function RampInput({ value, onChange, errors, hint, disabled }: { value: string; onChange(v: string): void; errors: FieldErrors; hint?: string; disabled?: boolean }) {
  return (
    <div class="field">
      <label for={fieldId('ramp_pct')}>Traffic ramp (% of eligible units)</label>
      <div class="ramp">
        <input
          type="range"
          min={0}
          max={100}
          step={1}
          value={Number(value) || 0}
          onInput={(e) => onChange(e.currentTarget.value)}
          aria-label="Ramp slider"
          aria-valuetext={`${value}%`}
          disabled={disabled}
          tabIndex={-1}
        />
        <input
          {...fieldProps('ramp_pct', errors, hint ? 'ramp-hint' : undefined)}
          type="number"
          inputMode="decimal"
          min={0}
          max={100}
          step="any"
          class="num-input"
          value={value}
          onInput={(e) => onChange(e.currentTarget.value)}
          disabled={disabled}
        />
        <span aria-hidden="true">%</span>
      </div>
      {hint && (
        <p class="hint" id="ramp-hint">
          {hint}
        </p>
      )}
      <FieldError path="ramp_pct" errors={errors} />
    </div>
  );
}

function VariantsEditor({
  f,
  setF,
  setVariant,
  errors,
  locked,
  sum,
  sumOk,
}: {
  f: FormState;
  setF: (fn: (s: FormState) => FormState) => void;
  setVariant(i: number, p: Partial<VariantRow>): void;
  errors: FieldErrors;
  locked: boolean;
  sum: number;
  sumOk: boolean;
}) {
  const add = () =>
    setF((s) => {
      const n = s.variants.length;
      const key = `variant_${String.fromCharCode(97 + (n % 26))}`;
      return { ...s, variants: [...s.variants, { uid: uid(), key, name: '', weight: '0', config: '{}' }] };
    });
  const remove = (i: number) => setF((s) => ({ ...s, variants: s.variants.filter((_, j) => j !== i) }));
  const split = () =>
    setF((s) => {
      const n = s.variants.length;
      const each = Math.floor(10000 / n) / 10000;
      const first = Math.round((1 - each * (n - 1)) * 10000) / 10000;
      return { ...s, variants: s.variants.map((r, i) => ({ ...r, weight: String(i === 0 ? first : each) })) };
    });
  return (
    <fieldset class="card" disabled={locked} aria-describedby="variants-help">
      <legend>Variants</legend>
      <p class="hint" id="variants-help">
        {locked
          ? 'Variants can change only while the experiment is a draft.'
          : 'The first variant is the control: units outside targeting or ramp get it too. Weights must sum to 1.'}
      </p>
      <FieldError path="variants" errors={errors} />
      <ol class="variants">
        {f.variants.map((r, i) => (
          <li key={r.uid} class="variant-row" data-testid={`variant-${i}`}>
            <div class="variant-head">
              <h3 class="variant-index" id={`variant-${r.uid}-title`}>
                {i === 0 ? 'Control' : `Variant ${i + 1}`}
                {r.key.trim() && <span class="sr-only"> ({r.key.trim()})</span>}
              </h3>
              {!locked && f.variants.length > 2 && (
                <button type="button" class="btn btn-small btn-ghost" onClick={() => remove(i)} aria-label={`Remove variant ${i + 1} (${r.key || 'no key'})`}>
                  Remove
                </button>
              )}
            </div>
            <div class="grid-3">
              <div class="field">
                <label for={fieldId(`variants[${i}].key`)}>Key</label>
                <input
                  {...fieldProps(`variants[${i}].key`, errors)}
                  class="mono"
                  value={r.key}
                  onInput={(e) => setVariant(i, { key: e.currentTarget.value })}
                  autocomplete="off"
                  spellcheck={false}
                />
                <FieldError path={`variants[${i}].key`} errors={errors} />
              </div>
              <div class="field">
                <label for={fieldId(`variants[${i}].name`)}>Display name</label>
                <input {...fieldProps(`variants[${i}].name`, errors)} value={r.name} onInput={(e) => setVariant(i, { name: e.currentTarget.value })} autocomplete="off" />
                <FieldError path={`variants[${i}].name`} errors={errors} />
              </div>
              <div class="field">
                <label for={fieldId(`variants[${i}].weight`)}>Weight</label>
                <input
                  {...fieldProps(`variants[${i}].weight`, errors)}
                  type="number"
                  inputMode="decimal"
                  min={0}
                  max={1}
                  step="any"
                  class="mono"
                  value={r.weight}
                  onInput={(e) => setVariant(i, { weight: e.currentTarget.value })}
                />
                <FieldError path={`variants[${i}].weight`} errors={errors} />
              </div>
            </div>
            <JsonField
              path={`variants[${i}].config_json`}
              label="Config JSON"
              hint="Handed to your service with the assignment."
              value={r.config}
              onChange={(v) => setVariant(i, { config: v })}
              errors={errors}
              rows={3}
            />
          </li>
        ))}
      </ol>
      <div class="variant-tools">
        <p class={`weight-sum ${sumOk ? 'ok' : 'bad'}`} aria-live="polite" data-testid="weight-sum">
          Weights sum to <strong>{round(sum).toFixed(4)}</strong> {sumOk ? '✓' : '— must be 1'}
        </p>
        {!locked && (
          <div class="actions">
            <button type="button" class="btn" onClick={split}>
              Split weights evenly
            </button>
            <button type="button" class="btn" onClick={add} disabled={f.variants.length >= 26}>
              Add variant
            </button>
          </div>
        )}
      </div>
    </fieldset>
  );
}

/** A JSON textarea that says at once whether its text parses. */
export function JsonField(props: { path: string; label: string; hint?: string; value: string; onChange(v: string): void; errors: FieldErrors; rows?: number }) {
  const { path, value } = props;
  let parseError = '';
  if (value.trim()) {
    try {
      JSON.parse(value);
    } catch (e) {
      parseError = (e as Error).message;
    }
  }
  const id = fieldId(path);
  const hintId = `${id}-hint`;
  const liveErrs = parseError && !props.errors[path] ? { ...props.errors, [path]: `Not valid JSON: ${parseError}` } : props.errors;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <textarea
        {...fieldProps(path, liveErrs, hintId)}
        class="mono code"
        rows={Math.min(14, Math.max(props.rows ?? 4, value.split('\n').length))}
        value={value}
        spellcheck={false}
        onInput={(e) => props.onChange(e.currentTarget.value)}
        onBlur={(e) => {
          // Pretty-print valid JSON when the user leaves the field; not when they leave it for a
          // button: the field would grow under the pointer between press and release, and the
          // click (Save, typically) would land beside the button and do nothing.
          if ((e.relatedTarget as HTMLElement | null)?.tagName === 'BUTTON') return;
          try {
            const t = e.currentTarget.value;
            if (t.trim()) props.onChange(JSON.stringify(JSON.parse(t), null, 2));
          } catch {
            /* keep the text as typed */
          }
        }}
      />
      <p class="hint" id={hintId}>
        {props.hint} {!parseError && value.trim() ? <span class="ok">Valid JSON.</span> : null}
      </p>
      <FieldError path={path} errors={liveErrs} />
    </div>
  );
}

function TargetingEditor({ f, setF, errors, disabled }: { f: FormState; setF: (fn: (s: FormState) => FormState) => void; errors: FieldErrors; disabled?: boolean }) {
  const setRule = (i: number, p: Partial<Rule>) => setF((s) => ({ ...s, rules: s.rules.map((r, j) => (j === i ? { ...r, ...p } : r)) }));
  const toJson = () => setF((s) => ({ ...s, tMode: 'json', tText: JSON.stringify(rulesToJson(s.rules), null, 2) }));
  let canUseRules = true;
  let dialect: 'growthbook' | 'litmus' | null = null;
  if (f.tMode === 'json') {
    try {
      const parsed = f.tText.trim() ? JSON.parse(f.tText) : {};
      canUseRules = jsonToRules(parsed) !== null;
      dialect = dialectOf(parsed);
    } catch {
      canUseRules = false;
    }
  }
  const toRules = () =>
    setF((s) => {
      const rules = jsonToRules(s.tText.trim() ? JSON.parse(s.tText) : {});
      return rules ? { ...s, tMode: 'rules', rules } : s;
    });
  return (
    <fieldset class="card" disabled={disabled}>
      <legend>Targeting</legend>
      <p class="hint" id="targeting-help">
        Which units may enter. No rules: everyone. All rules must hold; use JSON for <code>or</code> / <code>not</code>, or to paste a
        GrowthBook condition (<code>$in</code>, <code>$vgte</code>, <code>$elemMatch</code>, …) as it is.
      </p>
      <div class="segmented" role="group" aria-label="Targeting editor mode">
        <button type="button" class={f.tMode === 'rules' ? 'active' : ''} aria-pressed={f.tMode === 'rules'} onClick={toRules} disabled={f.tMode !== 'rules' && !canUseRules} title={canUseRules ? undefined : 'This condition needs the JSON editor'}>
          Rules
        </button>
        <button type="button" class={f.tMode === 'json' ? 'active' : ''} aria-pressed={f.tMode === 'json'} onClick={toJson}>
          JSON
        </button>
      </div>
      {f.tMode === 'rules' ? (
        <div id={fieldId('targeting')} tabIndex={-1} aria-describedby={errors.targeting ? `${fieldId('targeting')}-error` : 'targeting-help'}>
          {f.rules.length === 0 && <p class="muted">Everyone is eligible.</p>}
          <ul class="rules">
            {f.rules.map((r, i) => {
              const op = OPERATORS.find((o) => o.op === r.op);
              return (
                <li key={i} class="rule">
                  <label class="sr-only" for={`rule-${i}-attr`}>
                    Rule {i + 1} attribute
                  </label>
                  <input id={`rule-${i}-attr`} class="mono" placeholder="attribute, e.g. country" value={r.attr} onInput={(e) => setRule(i, { attr: e.currentTarget.value })} autocomplete="off" />
                  <label class="sr-only" for={`rule-${i}-op`}>
                    Rule {i + 1} operator
                  </label>
                  <select id={`rule-${i}-op`} value={r.op} onChange={(e) => setRule(i, { op: e.currentTarget.value })}>
                    {OPERATORS.map((o) => (
                      <option key={o.op} value={o.op}>
                        {o.label}
                      </option>
                    ))}
                  </select>
                  <label class="sr-only" for={`rule-${i}-value`}>
                    Rule {i + 1} value
                  </label>
                  {r.op === 'exists' ? (
                    <select id={`rule-${i}-value`} value={r.value === 'false' ? 'false' : 'true'} onChange={(e) => setRule(i, { value: e.currentTarget.value })}>
                      <option value="true">yes</option>
                      <option value="false">no</option>
                    </select>
                  ) : (
                    <input id={`rule-${i}-value`} class="mono" placeholder={op?.hint} value={r.value} onInput={(e) => setRule(i, { value: e.currentTarget.value })} autocomplete="off" />
                  )}
                  <button type="button" class="btn btn-small btn-ghost" onClick={() => setF((s) => ({ ...s, rules: s.rules.filter((_, j) => j !== i) }))} aria-label={`Remove rule ${i + 1}`}>
                    Remove
                  </button>
                </li>
              );
            })}
          </ul>
          <button type="button" class="btn btn-small" onClick={() => setF((s) => ({ ...s, rules: [...s.rules, { attr: '', op: 'in', value: '' }] }))}>
            Add rule
          </button>
          <FieldError path="targeting" errors={errors} />
        </div>
      ) : (
        <JsonField
          path="targeting"
          label="Targeting condition (JSON)"
          hint='e.g. {"country": {"in": ["US", "CA"]}, "app_version": {"semver": ">=2.1.0"}}'
          value={f.tText}
          onChange={(v) => setF((s) => ({ ...s, tText: v }))}
          errors={errors}
          rows={5}
        />
      )}
      {dialect && (
        <p class="hint" data-testid="targeting-dialect">
          Read as {DIALECT_LABEL[dialect]}.
        </p>
      )}
    </fieldset>
  );
}

/** What one calculation asked and answered, so its sentence never mixes two counts of variants. */
type SampleSize = { per: number; total: number; arms: number; baseline: number; mde: number; alpha: number; power: number; source: 'api' | 'local'; reply?: Record<string, unknown> };

const SS_KNOWN = new Set(['per_variant', 'total', 'variants', 'kind', 'mde_absolute', 'alpha', 'power', 'duration_days', 'method']);
const SS_METHODS: Record<string, string> = { two_proportion_z: 'two-proportion z-test', two_sample_z: 'two-sample z-test' };

/** Sample size per variant from the API (`POST /api/v1/sample-size`), else a browser estimate. */
export function SampleSizeCalculator({ variants }: { variants: number }) {
  const [v, setV] = useState({ baseline_rate: '0.10', mde: '0.02', alpha: '0.05', power: '0.80' });
  const [out, setOut] = useState<SampleSize | null>(null);
  const [err, setErr] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);

  const calc = async () => {
    const n = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, Number(x)])) as Record<string, number>;
    const e: FieldErrors = {};
    if (!(n.baseline_rate > 0 && n.baseline_rate < 1)) e.baseline_rate = 'A rate between 0 and 1, e.g. 0.10.';
    if (!(n.mde > 0 && n.baseline_rate + n.mde < 1)) e.mde = 'An absolute change > 0 that keeps the rate below 1.';
    if (!(n.alpha > 0 && n.alpha < 0.5)) e.alpha = 'Between 0 and 0.5, usually 0.05.';
    if (!(n.power > 0.5 && n.power < 1)) e.power = 'Between 0.5 and 1, usually 0.8.';
    if (variants < 2) e._ = 'Add at least two variants (control and one to compare) first.';
    setErr(e);
    if (Object.keys(e).length) return setOut(null);
    const asked = { baseline: n.baseline_rate, mde: n.mde, alpha: n.alpha, power: n.power };
    setBusy(true);
    try {
      // Without `variants` the endpoint assumes two arms, and its total would be for two.
      const res = await api.sampleSize({ ...n, variants });
      const per = Number(res.per_variant);
      const arms = isNum(res.variants) ? res.variants : variants;
      setOut({ ...asked, per, arms, total: isNum(res.total) ? res.total : per * arms, source: 'api', reply: res });
    } catch (x) {
      if (x instanceof ApiError && x.field && x.field in v) setErr({ [x.field]: x.message });
      else if (x instanceof ApiError && (x.status === 404 || x.status === 405 || x.status === 0)) {
        const per = perVariantProportions(n.baseline_rate, n.mde, n.alpha, n.power);
        setOut({ ...asked, per, arms: variants, total: per * variants, source: 'local' });
      } else setErr({ _: x instanceof Error ? x.message : String(x) });
    } finally {
      setBusy(false);
    }
  };

  const input = (k: keyof typeof v, label: string, hint: string) => (
    <div class="field">
      <label for={`ss-${k}`}>{label}</label>
      <input
        id={`ss-${k}`}
        type="number"
        inputMode="decimal"
        step="any"
        class="mono"
        value={v[k]}
        aria-invalid={err[k] ? 'true' : undefined}
        aria-describedby={`ss-${k}-hint${err[k] ? ` ss-${k}-error` : ''}`}
        onInput={(e) => setV((s) => ({ ...s, [k]: e.currentTarget.value }))}
        onKeyDown={(e) => {
          if (e.key === 'Enter') {
            e.preventDefault();
            void calc();
          }
        }}
      />
      <p class="hint" id={`ss-${k}-hint`}>
        {hint}
      </p>
      {err[k] && (
        <p class="field-error" id={`ss-${k}-error`}>
          {err[k]}
        </p>
      )}
    </div>
  );

  const reply = out?.reply ?? {};
  const method = typeof reply.method === 'string' ? (SS_METHODS[reply.method] ?? reply.method.replace(/_/g, ' ')) : 'two-proportion z-test';
  const mde = out && isNum(reply.mde_absolute) ? reply.mde_absolute : out?.mde;
  const others = Object.entries(reply).filter(([k, x]) => !SS_KNOWN.has(k) && x !== null && typeof x !== 'object');
  return (
    <section class="card" aria-labelledby="ss-title">
      <h2 id="ss-title" class="legend-like">
        Sample-size calculator
      </h2>
      <p class="hint">
        How many exposed units each variant needs to detect a change in a conversion rate, and the total for this experiment’s {variants}{' '}
        {variants === 1 ? 'variant' : 'variants'}.
      </p>
      <div class="grid-4">
        {input('baseline_rate', 'Baseline rate', 'Control’s rate, e.g. 0.10')}
        {input('mde', 'Minimum detectable effect', 'Absolute, e.g. 0.02 (10% → 12%)')}
        {input('alpha', 'Significance (α)', 'Two-sided')}
        {input('power', 'Power (1 − β)', 'Chance to detect it')}
      </div>
      <div class="actions">
        <button type="button" class="btn" onClick={calc} disabled={busy}>
          {busy ? 'Calculating…' : 'Calculate sample size'}
        </button>
      </div>
      {err._ && <p class="field-error">{err._}</p>}
      <div role="status" aria-live="polite" data-testid="sample-size-result">
        {out && Number.isFinite(out.per) && (
          <>
            <p class="sample-size">
              <strong data-testid="sample-size-per">{int(out.per)}</strong> units per variant · <strong data-testid="sample-size-total">{int(out.total)}</strong> in total
              across <span data-testid="sample-size-arms">{out.arms}</span> variants
              <span class="hint"> {out.source === 'api' ? '(from the API)' : '(estimated in the browser: this server has no sample-size endpoint)'}</span>
            </p>
            <p class="hint">
              Two-sided {method} at α = {num(out.alpha)} with {pct(out.power, 0)} power, for an absolute change of {num(mde)} ({pct(out.baseline, 1)} →{' '}
              {pct(out.baseline + (mde ?? 0), 1)}).
              {out.arms > 2 && <> Each variant is compared with control on its own: no correction for making {out.arms - 1} comparisons.</>}
              {isNum(reply.duration_days) && <> About {num(reply.duration_days, 1)} days at the given daily traffic.</>}
              {others.length > 0 && <> Also: {others.map(([k, x]) => `${k.replace(/_/g, ' ')} ${String(x)}`).join(' · ')}.</>}
            </p>
            {out.arms !== variants && (
              <p class="hint" data-testid="sample-size-stale">
                Calculated for {out.arms} variants; the form now has {variants}. Calculate again for its total.
              </p>
            )}
          </>
        )}
      </div>
    </section>
  );
}
