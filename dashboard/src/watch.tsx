// The Detail page's Watch card: what the control plane's watch job sees in this experiment
// (`GET /experiments/{id}/watch`, which acts on nothing): each stopping rule and whether its
// condition holds, the safe rollout's steps and next move, the insights that hold now, and the
// experiment's latest alerts. Editors for the stopping rules (any time before it stops) and the
// rollout plan (drafts only), saved with PATCH; the API's field errors land on their inputs.
import { useState } from 'preact/hooks';
import {
  ApiError,
  api,
  getActor,
  type Experiment,
  type ExperimentInput,
  type RolloutDecision,
  type RolloutPlan,
  type RuleAction,
  type RuleKind,
  type StoppingRule,
  type WatchAssessment,
} from './api';
import { AlertItem, CodeText, RULE_ACTIONS, RULE_KINDS, SeverityBadge, ruleActionWords, ruleWords } from './alerts';
import { Alert, FieldError, fieldId, fieldProps, useLoad, type FieldErrors } from './components';
import { placeError } from './editors';
import { dateTime, duration, int, isNum, num, pct, timeOnly } from './format';
import { Link } from './router';

export function Watch({ exp, canWrite, onSaved, onRefresh }: { exp: Experiment; canWrite?: boolean; onSaved(e: Experiment, message: string): void; onRefresh(): void }) {
  // Every new version (a save, a launch, a pause by the job) is a new look.
  const watch = useLoad(() => api.watch(exp.id), [exp.id, exp.version]);
  const alerts = useLoad(() => api.alerts({ experiment: exp.id, limit: 10 }), [exp.id, exp.version]);
  const [message, setMessage] = useState<string | null>(null);
  const missing = watch.error?.status === 404;
  const w = watch.data;
  const saved = (e: Experiment, m: string) => {
    setMessage(m);
    onSaved(e, m);
  };
  return (
    <section class="card" aria-labelledby="watch-title" data-testid="watch">
      <div class="card-head">
        <h2 id="watch-title">Watch</h2>
        {w && (
          <span class="muted small" title={dateTime(w.evaluated_at)}>
            as of {timeOnly(new Date(w.evaluated_at))}
          </span>
        )}
        <button
          type="button"
          class="btn btn-small push-right"
          onClick={() => {
            setMessage(null);
            // The job may have acted meanwhile: the whole page looks again, not just this card.
            onRefresh();
            void watch.reload();
            void alerts.reload();
          }}
          disabled={watch.loading}
        >
          {watch.loading && w ? 'Refreshing…' : 'Refresh'}
        </button>
      </div>
      <p class="hint">
        While the experiment runs, the control plane checks it every few seconds to a minute: it carries out the stopping rules, steps the safe
        rollout, and raises an alert for what it finds (each once).
      </p>
      {watch.error && !missing && <Alert title="Could not load the watch">{watch.error.message}</Alert>}
      {missing && <p class="muted">This control plane does not watch experiments (no <code>/watch</code> endpoint).</p>}
      <div role="status" aria-live="polite">
        {message && (
          <p class="ok" data-testid="watch-message">
            {message}
          </p>
        )}
      </div>

      <h3 id="rules-title">Stopping rules</h3>
      <StoppingRules exp={exp} w={w} canWrite={canWrite} onSaved={saved} />

      <h3 id="rollout-title">Safe rollout</h3>
      <Rollout exp={exp} w={w} canWrite={canWrite} onSaved={saved} />

      {w && w.findings.length > 0 && (
        <>
          <h3>Insights now</h3>
          <ul class="findings" data-testid="findings">
            {w.findings.map((f) => (
              <li key={f.key}>
                <SeverityBadge severity={f.severity} /> <CodeText text={f.title} />
              </li>
            ))}
          </ul>
        </>
      )}

      <div class="card-head subhead">
        <h3 id="recent-alerts-title">Recent alerts</h3>
        <Link href={`/alerts?experiment=${encodeURIComponent(exp.key)}`} class="small push-right">
          All alerts for this experiment →
        </Link>
      </div>
      {alerts.error && alerts.error.status !== 404 && <Alert>{alerts.error.message}</Alert>}
      {alerts.data && alerts.data.items.length === 0 && <p class="muted">No alerts yet.</p>}
      {alerts.data && alerts.data.items.length > 0 && (
        <ul class="feed" aria-labelledby="recent-alerts-title" data-testid="recent-alerts">
          {alerts.data.items.map((a) => (
            <AlertItem
              key={a.id}
              alert={a}
              canWrite={canWrite}
              onChange={(u) => alerts.setData((d) => d && { ...d, items: d.items.map((x) => (x.id === u.id ? u : x)) })}
            />
          ))}
        </ul>
      )}
    </section>
  );
}

// --- stopping rules -------------------------------------------------------------------------

function StoppingRules({ exp, w, canWrite, onSaved }: { exp: Experiment; w?: WatchAssessment; canWrite?: boolean; onSaved(e: Experiment, m: string): void }) {
  const [editing, setEditing] = useState(false);
  const rules = exp.rules ?? [];
  // A look taken before the rules last changed says nothing about these: no states until the next.
  const states = w && JSON.stringify(w.rules.map((s) => s.rule)) === JSON.stringify(rules) ? w.rules : null;
  const stopped = exp.status === 'stopped';
  const canEdit = canWrite !== false && !stopped && exp.rules !== undefined;
  if (editing) {
    return (
      <RulesEditor
        exp={exp}
        onCancel={() => setEditing(false)}
        onSaved={(e) => {
          setEditing(false);
          onSaved(e, e.rules?.length ? `Stopping rules saved (${e.rules.length}).` : 'Stopping rules removed.');
        }}
      />
    );
  }
  return (
    <>
      {rules.length === 0 ? (
        <p class="muted" data-testid="no-rules">
          No stopping rules: the experiment runs until someone pauses or stops it.
        </p>
      ) : (
        <div class="table-wrap">
          <table class="table compact" data-testid="rules-table" aria-labelledby="rules-title">
            <thead>
              <tr>
                <th scope="col">Rule</th>
                <th scope="col">Then</th>
                <th scope="col">State</th>
                <th scope="col">Progress</th>
              </tr>
            </thead>
            <tbody>
              {rules.map((r, i) => {
                const s = states?.[i];
                return (
                  <tr key={i} data-testid={`rule-row-${i}`}>
                    <th scope="row">
                      <CodeText text={ruleWords(r)} />
                    </th>
                    <td>{ruleActionWords(r.action)}</td>
                    <td data-testid={`rule-state-${i}`}>
                      {s ? (
                        <span class={`badge ${s.holds ? 'badge-holds' : 'badge-notyet'}`}>{s.holds ? 'HOLDS' : 'NOT YET'}</span>
                      ) : (
                        <span class="muted">–</span>
                      )}
                    </td>
                    <td data-testid={`rule-progress-${i}`}>{s?.progress ?? ''}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {rules.length > 0 && exp.status !== 'running' && (
        <p class="hint">
          {stopped ? 'The experiment is stopped: its rules no longer act.' : 'Rules act only while the experiment runs; the states above are as of now.'}
        </p>
      )}
      {canEdit && (
        <div class="actions">
          <button type="button" class="btn btn-small" onClick={() => setEditing(true)}>
            {rules.length ? 'Edit stopping rules' : 'Add stopping rules'}
          </button>
        </div>
      )}
    </>
  );
}

interface RuleRow {
  uid: number;
  kind: RuleKind;
  action: RuleAction;
  days: string;
  units: string;
  metric: string;
  /** Percent, as typed (the API takes a fraction). */
  margin: string;
}

let uidSeq = 0;
const FIELDS: Record<RuleKind, ('days' | 'units' | 'metric' | 'margin')[]> = {
  max_duration: ['days'],
  max_sample: ['units'],
  significance: ['metric'],
  guardrail: ['metric', 'margin'],
  srm: [],
};

const toRow = (r: StoppingRule): RuleRow => ({
  uid: ++uidSeq,
  kind: r.kind,
  action: r.action ?? 'notify',
  days: isNum(r.days) ? String(r.days) : '',
  units: isNum(r.units) ? String(r.units) : '',
  metric: r.metric ?? '',
  margin: isNum(r.margin) ? String(Math.round(r.margin * 1e6) / 1e4) : '',
});

/**
 * Only the fields the kind takes are sent (the API refuses the others). An empty required field
 * is left out so the API's own message ("a max_sample rule needs `units`") names it.
 */
function toRules(rows: RuleRow[]): { rules?: StoppingRule[]; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const rules = rows.map((row, i) => {
    const r: StoppingRule = { kind: row.kind, action: row.action };
    const fields = FIELDS[row.kind];
    if (fields.includes('days') && row.days.trim()) {
      const d = Number(row.days);
      if (!Number.isFinite(d)) errors[`rules[${i}].days`] = 'A number of days (decimals allowed).';
      else r.days = d;
    }
    if (fields.includes('units') && row.units.trim()) {
      const u = Number(row.units);
      if (!Number.isInteger(u)) errors[`rules[${i}].units`] = 'A whole number of exposed units.';
      else r.units = u;
    }
    if (fields.includes('metric') && row.metric.trim()) r.metric = row.metric.trim();
    if (fields.includes('margin') && row.margin.trim()) {
      const m = Number(row.margin);
      if (!(m >= 0 && m < 100)) errors[`rules[${i}].margin`] = 'A percentage from 0 to below 100.';
      else r.margin = Math.round(m * 1e4) / 1e6;
    }
    return r;
  });
  return Object.keys(errors).length ? { errors } : { rules, errors };
}

function RulesEditor({ exp, onCancel, onSaved }: { exp: Experiment; onCancel(): void; onSaved(e: Experiment): void }) {
  const [rows, setRows] = useState<RuleRow[]>(() => (exp.rules ?? []).map(toRow));
  const { errors, setErrors, general, busy, submit } = usePatchForm(exp, onSaved);
  const metrics = exp.metrics ?? [];
  const listId = `rule-metrics-${exp.id}`;

  const setRow = (i: number, patch: Partial<RuleRow>) => {
    setErrors((errs) => Object.fromEntries(Object.entries(errs).filter(([p]) => !p.startsWith(`rules[${i}]`) && p !== 'rules')));
    setRows((rs) => rs.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  };

  const save = (e: Event) =>
    submit(
      e,
      () => {
        const { rules, errors } = toRules(rows);
        return { patch: rules && { rules }, errors };
      },
      () => {
        const known = new Set(['rules']);
        rows.forEach((_, i) => ['kind', 'action', 'days', 'units', 'metric', 'margin'].forEach((f) => known.add(`rules[${i}].${f}`)));
        return known;
      },
    );

  return (
    <form onSubmit={save} noValidate aria-labelledby="rules-title" data-testid="rules-editor">
      {general && <Alert title="The rules were not saved">{general}</Alert>}
      <p class="hint">
        Each rule is checked against the live readout; when its condition holds, the platform takes its action once and raises an alert.
        Significance and guardrails use the always-valid test, so frequent checking does not inflate errors.
      </p>
      <FieldError path="rules" errors={errors} />
      {rows.length === 0 && <p class="muted">No rules. Saving removes every rule.</p>}
      <ol class="stop-rules">
        {rows.map((r, i) => {
          const fields = FIELDS[r.kind];
          const p = (f: string) => `rules[${i}].${f}`;
          return (
            <li key={r.uid} class="stop-rule" data-testid={`rule-edit-${i}`}>
              <div class="variant-head">
                <h4 class="variant-index" id={`rule-${r.uid}-title`}>
                  Rule {i + 1}
                </h4>
                <button type="button" class="btn btn-small btn-ghost" onClick={() => setRows((rs) => rs.filter((_, j) => j !== i))} aria-label={`Remove rule ${i + 1}`}>
                  Remove
                </button>
              </div>
              {/* Every row has a "Kind" and a "Then": the group says which rule they belong to. */}
              <div class="grid-4" role="group" aria-labelledby={`rule-${r.uid}-title`}>
                <div class="field">
                  <label for={fieldId(p('kind'))}>Kind</label>
                  <select {...fieldProps(p('kind'), errors)} value={r.kind} onChange={(e) => setRow(i, { kind: e.currentTarget.value as RuleKind })}>
                    {RULE_KINDS.map(([k, label]) => (
                      <option key={k} value={k}>
                        {label}
                      </option>
                    ))}
                  </select>
                  <FieldError path={p('kind')} errors={errors} />
                </div>
                {fields.includes('days') && (
                  <div class="field">
                    <label for={fieldId(p('days'))}>Days</label>
                    <input {...fieldProps(p('days'), errors)} type="number" inputMode="decimal" min={0} step="any" class="mono" value={r.days} onInput={(e) => setRow(i, { days: e.currentTarget.value })} />
                    <FieldError path={p('days')} errors={errors} />
                  </div>
                )}
                {fields.includes('units') && (
                  <div class="field">
                    <label for={fieldId(p('units'))}>Units</label>
                    <input {...fieldProps(p('units'), errors, `${fieldId(p('units'))}-hint`)} type="number" inputMode="numeric" min={1} step={1} class="mono" value={r.units} onInput={(e) => setRow(i, { units: e.currentTarget.value })} />
                    <p class="hint" id={`${fieldId(p('units'))}-hint`}>
                      Exposed units over all variants.
                    </p>
                    <FieldError path={p('units')} errors={errors} />
                  </div>
                )}
                {fields.includes('metric') && (
                  <div class="field">
                    <label for={fieldId(p('metric'))}>
                      Metric{r.kind === 'significance' && <span class="req">optional</span>}
                    </label>
                    <input
                      {...fieldProps(p('metric'), errors)}
                      class="mono"
                      list={listId}
                      placeholder={r.kind === 'significance' ? 'every primary metric' : 'e.g. latency_ms'}
                      value={r.metric}
                      onInput={(e) => setRow(i, { metric: e.currentTarget.value })}
                      autocomplete="off"
                      spellcheck={false}
                    />
                    <FieldError path={p('metric')} errors={errors} />
                  </div>
                )}
                {fields.includes('margin') && (
                  <div class="field">
                    <label for={fieldId(p('margin'))}>
                      Margin (%)<span class="req">optional</span>
                    </label>
                    <input
                      {...fieldProps(p('margin'), errors, `${fieldId(p('margin'))}-hint`)}
                      type="number"
                      inputMode="decimal"
                      min={0}
                      max={99.99}
                      step="any"
                      class="mono"
                      value={r.margin}
                      onInput={(e) => setRow(i, { margin: e.currentTarget.value })}
                    />
                    <p class="hint" id={`${fieldId(p('margin'))}-hint`}>
                      How much worse than control, relative, before it counts.
                    </p>
                    <FieldError path={p('margin')} errors={errors} />
                  </div>
                )}
                {r.kind === 'srm' && <p class="hint rule-note">Holds when exposures stop matching the weights (sample-ratio p below 0.001).</p>}
                <div class="field">
                  <label for={fieldId(p('action'))}>Then</label>
                  <select {...fieldProps(p('action'), errors)} value={r.action} onChange={(e) => setRow(i, { action: e.currentTarget.value as RuleAction })}>
                    {RULE_ACTIONS.map(([a, label]) => (
                      <option key={a} value={a}>
                        {label}
                      </option>
                    ))}
                  </select>
                  <FieldError path={p('action')} errors={errors} />
                </div>
              </div>
            </li>
          );
        })}
      </ol>
      <datalist id={listId}>
        {metrics.map((m) => (
          <option key={m.name} value={m.name}>
            {m.role ?? ''}
          </option>
        ))}
      </datalist>
      <div class="actions">
        <button
          type="button"
          class="btn btn-small"
          onClick={() => setRows((rs) => [...rs, { uid: ++uidSeq, kind: 'max_sample', action: 'notify', days: '', units: '', metric: '', margin: '' }])}
          disabled={rows.length >= 20}
        >
          Add rule
        </button>
        <button type="submit" class="btn btn-primary btn-small" disabled={busy}>
          {busy ? 'Saving…' : 'Save rules'}
        </button>
        <button type="button" class="btn btn-small btn-ghost" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** Keyboard and screen-reader users land on the first field that needs them. */
/** The state and the save of an editor that PATCHes the experiment: its own check first, then the
 * API's, whose field errors land on the inputs named in `known` (the rest at the top). */
function usePatchForm(exp: Experiment, onSaved: (e: Experiment) => void) {
  const [errors, setErrors] = useState<FieldErrors>({});
  const [general, setGeneral] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (
    e: Event,
    check: () => { patch?: Partial<ExperimentInput>; errors: FieldErrors },
    known: () => Set<string>,
    top: (general?: string) => string | undefined = (g) => g,
  ) => {
    e.preventDefault();
    if (busy) return;
    setGeneral(undefined);
    const { patch, errors: errs } = check();
    if (!patch) {
      setErrors(errs);
      focusFirst(errs);
      return;
    }
    setBusy(true);
    try {
      const updated = await api.updateExperiment(exp.id, { ...patch, actor: getActor() });
      setErrors({});
      onSaved(updated);
    } catch (err) {
      if (err instanceof ApiError) {
        const placed = placeError(err, known());
        setErrors(placed.fields);
        setGeneral(top(placed.general));
        focusFirst(placed.fields);
      } else setGeneral(String(err));
    } finally {
      setBusy(false);
    }
  };
  return { errors, setErrors, general, busy, submit };
}

function focusFirst(errors: FieldErrors) {
  const first = Object.keys(errors)[0];
  if (first) requestAnimationFrame(() => document.getElementById(fieldId(first))?.focus());
}

// --- safe rollout ---------------------------------------------------------------------------

const OUTCOME: Record<string, string> = {
  ramping: 'RAMPING',
  complete: 'COMPLETE',
  rolled_back: 'ROLLED BACK',
  overridden: 'OVERRIDDEN',
};

function Rollout({ exp, w, canWrite, onSaved }: { exp: Experiment; w?: WatchAssessment; canWrite?: boolean; onSaved(e: Experiment, m: string): void }) {
  const [editing, setEditing] = useState(false);
  const plan = w?.rollout?.plan ?? exp.rollout ?? null;
  const state = w?.rollout ? w.rollout.state : exp.rollout_state ?? null;
  const draft = exp.status === 'draft';
  const bandit = exp.type === 'bandit';
  const canEdit = canWrite !== false && draft && !bandit && exp.rollout !== undefined;

  if (editing) {
    return (
      <RolloutEditor
        exp={exp}
        onCancel={() => setEditing(false)}
        onSaved={(e) => {
          setEditing(false);
          onSaved(e, 'Rollout plan saved.');
        }}
      />
    );
  }
  if (!plan) {
    return (
      <>
        <p class="muted" data-testid="no-rollout">
          {bandit
            ? 'A bandit moves its own traffic: safe rollouts are for A/B experiments.'
            : draft
              ? 'No safe rollout: the experiment launches at the ramp you choose.'
              : 'No safe rollout. A rollout plan can be set only while the experiment is a draft.'}
        </p>
        {canEdit && (
          <div class="actions">
            <button type="button" class="btn btn-small" onClick={() => setEditing(true)}>
              Plan a safe rollout
            </button>
          </div>
        )}
      </>
    );
  }
  const n = plan.steps.length;
  // Where the schedule stands: every step done once complete; none begun before launch.
  const current = !state ? -1 : state.outcome === 'complete' ? n : state.step;
  const decision = w?.rollout?.decision;
  return (
    <div data-testid="rollout">
      <ol class="steps" aria-label="Rollout steps">
        {plan.steps.map((s, i) => {
          const where = i < current ? 'done' : i === current ? (state?.outcome === 'rolled_back' ? 'failed' : 'current') : 'todo';
          return (
            <li key={i} class={`step step-${where}`} aria-current={where === 'current' || where === 'failed' ? 'step' : undefined} data-testid={`rollout-step-${i}`}>
              <span class="step-pct">{num(s.ramp_pct, 2)}%</span>
              <span class="step-hold">{i === n - 1 && !s.hold_seconds ? 'final' : `hold ${duration(s.hold_seconds)}`}</span>
              <span class="sr-only">{where === 'done' ? ' (done)' : where === 'current' ? ' (current step)' : where === 'failed' ? ' (rolled back here)' : ''}</span>
            </li>
          );
        })}
      </ol>
      <p class="status-line" data-testid="rollout-outcome">
        {state ? (
          <>
            <span class={`badge badge-outcome-${state.outcome}`}>{OUTCOME[state.outcome] ?? state.outcome.toUpperCase()}</span>
            <span>
              {state.outcome === 'ramping' && `Step ${state.step + 1} of ${n} at ${num(plan.steps[state.step]?.ramp_pct, 2)}%, since ${dateTime(state.step_started_at)}.`}
              {state.outcome === 'complete' && `Every step held; the ramp stays at ${num(plan.steps[n - 1]?.ramp_pct, 2)}%.`}
              {state.outcome === 'rolled_back' && 'Rolled back to 0%: every unit gets the control.'}
              {state.outcome === 'overridden' && 'The ramp was changed by hand: the schedule no longer steers it.'}
              {state.reason && (
                <>
                  {' '}
                  <span class="muted">
                    (<CodeText text={state.reason} />)
                  </span>
                </>
              )}
            </span>
          </>
        ) : (
          <span class="muted">{draft ? `Not started: launching starts step 1 at ${num(plan.steps[0]?.ramp_pct, 2)}%, whatever the ramp.` : 'Not started.'}</span>
        )}
      </p>
      {state?.outcome === 'ramping' && decision && <p data-testid="rollout-next">{decisionWords(decision)}</p>}
      {state?.outcome === 'ramping' && !decision && exp.status !== 'running' && <p class="muted">The schedule moves only while the experiment runs.</p>}
      <dl class="kv small">
        <div>
          <dt>Guardrail margin</dt>
          <dd>{plan.guardrail_margin ? pct(plan.guardrail_margin) : 'none: any significant harm rolls back'}</dd>
        </div>
        <div>
          <dt>New units per step</dt>
          <dd>
            {w?.rollout && state?.outcome === 'ramping'
              ? `${int(w.rollout.units_in_step)} in this step so far (${int(plan.min_units_per_step)} needed)`
              : `at least ${int(plan.min_units_per_step)}`}
          </dd>
        </div>
      </dl>
      {canEdit && (
        <div class="actions">
          <button type="button" class="btn btn-small" onClick={() => setEditing(true)}>
            Edit rollout plan
          </button>
        </div>
      )}
    </div>
  );
}

function decisionWords(d: RolloutDecision) {
  switch (d.decision) {
    case 'hold':
      return (
        <>
          Next: hold (<CodeText text={d.reason} />
          ).
        </>
      );
    case 'advance':
      return `Next: advance from ${num(d.from_pct, 2)}% to ${num(d.to_pct, 2)}% (step ${d.step + 1}) at the next look.`;
    case 'complete':
      return `Next: complete the rollout at ${num(d.ramp_pct, 2)}% at the next look.`;
    case 'rollback':
      return (
        <span class="warn-text">
          Next: roll back to 0% at the next look: <CodeText text={d.reason} />.
        </span>
      );
  }
}

interface PlanForm {
  steps: { uid: number; ramp: string; hold: string }[];
  margin: string;
  minUnits: string;
}

const DEFAULT_PLAN: RolloutPlan = {
  steps: [
    { ramp_pct: 5, hold_seconds: 3600 },
    { ramp_pct: 25, hold_seconds: 3600 },
    { ramp_pct: 50, hold_seconds: 3600 },
    { ramp_pct: 100, hold_seconds: 0 },
  ],
  guardrail_margin: 0,
  min_units_per_step: 200,
};

const toPlanForm = (p: RolloutPlan): PlanForm => ({
  steps: p.steps.map((s) => ({ uid: ++uidSeq, ramp: String(s.ramp_pct), hold: String(s.hold_seconds ?? 0) })),
  margin: String(Math.round((p.guardrail_margin ?? 0) * 1e6) / 1e4),
  minUnits: String(p.min_units_per_step ?? 0),
});

function toPlan(f: PlanForm): { plan?: RolloutPlan; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const number = (text: string, path: string, what: string) => {
    const x = Number(text);
    if (!text.trim() || !Number.isFinite(x)) errors[path] = what;
    return x;
  };
  const steps = f.steps.map((s, i) => ({
    ramp_pct: number(s.ramp, `rollout.steps[${i}].ramp_pct`, 'A percentage above 0 and at most 100.'),
    hold_seconds: number(s.hold || '0', `rollout.steps[${i}].hold_seconds`, 'Seconds to hold, 0 or more.'),
  }));
  const margin = number(f.margin || '0', 'rollout.guardrail_margin', 'A percentage from 0 to below 100.');
  if (!errors['rollout.guardrail_margin'] && !(margin >= 0 && margin < 100)) errors['rollout.guardrail_margin'] = 'A percentage from 0 to below 100.';
  const minUnits = number(f.minUnits || '0', 'rollout.min_units_per_step', 'A whole number of units, 0 or more.');
  if (!errors['rollout.min_units_per_step'] && !Number.isInteger(minUnits)) errors['rollout.min_units_per_step'] = 'A whole number of units, 0 or more.';
  if (Object.keys(errors).length) return { errors };
  return { plan: { steps, guardrail_margin: Math.round(margin * 1e4) / 1e6, min_units_per_step: minUnits }, errors };
}

function RolloutEditor({ exp, onCancel, onSaved }: { exp: Experiment; onCancel(): void; onSaved(e: Experiment): void }) {
  const [f, setF] = useState<PlanForm>(() => toPlanForm(exp.rollout ?? DEFAULT_PLAN));
  const { errors, setErrors, general, busy, submit } = usePatchForm(exp, onSaved);
  const guardrails = (exp.metrics ?? []).filter((m) => m.role === 'guardrail');

  const edit = (paths: (p: string) => boolean, fn: (f: PlanForm) => PlanForm) => {
    setErrors((errs) => Object.fromEntries(Object.entries(errs).filter(([p]) => !paths(p) && p !== 'rollout.steps')));
    setF(fn);
  };
  const setStep = (i: number, patch: Partial<PlanForm['steps'][number]>) =>
    edit((p) => p.startsWith(`rollout.steps[${i}]`), (s) => ({ ...s, steps: s.steps.map((x, j) => (j === i ? { ...x, ...patch } : x)) }));

  const save = (e: Event) =>
    submit(
      e,
      () => {
        const { plan, errors } = toPlan(f);
        return { patch: plan && { rollout: plan }, errors };
      },
      () => {
        const known = new Set(['rollout.steps', 'rollout.guardrail_margin', 'rollout.min_units_per_step']);
        f.steps.forEach((_, i) => ['ramp_pct', 'hold_seconds'].forEach((k) => known.add(`rollout.steps[${i}].${k}`)));
        return known;
      },
      // The plan as a whole ("declare a guardrail metric") is said at the top.
      (general) => general?.replace(/^rollout: /, ''),
    );

  return (
    <form onSubmit={save} noValidate aria-labelledby="rollout-title" data-testid="rollout-editor">
      {general && <Alert title="The rollout plan was not saved">{general}</Alert>}
      <p class="hint">
        On launch the ramp goes to the first step. Each step holds for its time and until enough new units arrive, then advances while every
        guardrail holds and the sample ratio matches; a breach rolls the ramp back to 0%.
      </p>
      {guardrails.length === 0 ? (
        <p class="warn-text small">
          This experiment declares no guardrail metric; a safe rollout needs at least one (declare metrics with the role <code>guardrail</code>{' '}
          through the API).
        </p>
      ) : (
        <p class="hint">
          Guardrails: {guardrails.map((m, i) => (
            <span key={m.name}>
              {i > 0 && ', '}
              <code>{m.name}</code>
            </span>
          ))}
        </p>
      )}
      <FieldError path="rollout.steps" errors={errors} />
      <ol class="stop-rules">
        {f.steps.map((s, i) => {
          const p = (k: string) => `rollout.steps[${i}].${k}`;
          return (
            <li key={s.uid} class="stop-rule plan-step" data-testid={`plan-step-${i}`}>
              <div class="variant-head">
                <h4 class="variant-index" id={`step-${s.uid}-title`}>
                  Step {i + 1}
                </h4>
                {f.steps.length > 1 && (
                  <button
                    type="button"
                    class="btn btn-small btn-ghost"
                    onClick={() => edit((x) => x.startsWith('rollout.steps'), (st) => ({ ...st, steps: st.steps.filter((_, j) => j !== i) }))}
                    aria-label={`Remove step ${i + 1}`}
                  >
                    Remove
                  </button>
                )}
              </div>
              <div class="grid-2" role="group" aria-labelledby={`step-${s.uid}-title`}>
                <div class="field">
                  <label for={fieldId(p('ramp_pct'))}>Ramp (%)</label>
                  <input {...fieldProps(p('ramp_pct'), errors)} type="number" inputMode="decimal" min={0} max={100} step="any" class="mono" value={s.ramp} onInput={(e) => setStep(i, { ramp: e.currentTarget.value })} />
                  <FieldError path={p('ramp_pct')} errors={errors} />
                </div>
                <div class="field">
                  <label for={fieldId(p('hold_seconds'))}>Hold (seconds)</label>
                  <input
                    {...fieldProps(p('hold_seconds'), errors, `${fieldId(p('hold_seconds'))}-hint`)}
                    type="number"
                    inputMode="numeric"
                    min={0}
                    step="any"
                    class="mono"
                    value={s.hold}
                    onInput={(e) => setStep(i, { hold: e.currentTarget.value })}
                  />
                  <p class="hint" id={`${fieldId(p('hold_seconds'))}-hint`}>
                    {Number(s.hold) > 0 ? `= ${duration(Number(s.hold))}` : 'No hold'}
                  </p>
                  <FieldError path={p('hold_seconds')} errors={errors} />
                </div>
              </div>
            </li>
          );
        })}
      </ol>
      <div class="actions">
        <button
          type="button"
          class="btn btn-small"
          onClick={() => edit((p) => p === 'rollout.steps', (st) => ({ ...st, steps: [...st.steps, { uid: ++uidSeq, ramp: '100', hold: '0' }] }))}
          disabled={f.steps.length >= 20}
        >
          Add step
        </button>
      </div>
      <div class="grid-2 plan-settings">
        <div class="field">
          <label for={fieldId('rollout.guardrail_margin')}>Guardrail margin (%)</label>
          <input
            {...fieldProps('rollout.guardrail_margin', errors, 'rollout-margin-hint')}
            type="number"
            inputMode="decimal"
            min={0}
            max={99.99}
            step="any"
            class="mono"
            value={f.margin}
            onInput={(e) => edit((p) => p === 'rollout.guardrail_margin', (st) => ({ ...st, margin: e.currentTarget.value }))}
          />
          <p class="hint" id="rollout-margin-hint">
            Relative harm tolerated on every guardrail; 0 rolls back on any significant harm.
          </p>
          <FieldError path="rollout.guardrail_margin" errors={errors} />
        </div>
        <div class="field">
          <label for={fieldId('rollout.min_units_per_step')}>New units per step</label>
          <input
            {...fieldProps('rollout.min_units_per_step', errors, 'rollout-units-hint')}
            type="number"
            inputMode="numeric"
            min={0}
            step={1}
            class="mono"
            value={f.minUnits}
            onInput={(e) => edit((p) => p === 'rollout.min_units_per_step', (st) => ({ ...st, minUnits: e.currentTarget.value }))}
          />
          <p class="hint" id="rollout-units-hint">
            A step advances only once this many new units have been exposed in it.
          </p>
          <FieldError path="rollout.min_units_per_step" errors={errors} />
        </div>
      </div>
      <div class="actions">
        <button type="submit" class="btn btn-primary btn-small" disabled={busy}>
          {busy ? 'Saving…' : 'Save rollout plan'}
        </button>
        <button type="button" class="btn btn-small btn-ghost" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
    </form>
  );
}
