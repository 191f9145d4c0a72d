// /experiments/{id}: status, the lifecycle controls (Launch / Update ramp, Pause, Stop with a
// confirmation, Delete for a draft), what the experiment is, the Watch card (stopping rules,
// safe rollout, recent alerts: watch.tsx), and its audit log.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api, type AuditEntry, type Experiment } from '../api';
import { CodeText, useWhoAmI } from '../alerts';
import { Alert, ConfirmDialog, ExperimentHeader, LoadError, Spinner, StatusBadge, useLoad, type FieldErrors } from '../components';
import { RampInput } from '../editors';
import { setFlash, takeFlash } from '../flash';
import { DIALECT_LABEL, dialectOf } from '../targeting';
import { dateTime, pct } from '../format';
import { Link, experimentPath, navigate } from '../router';
import { Watch } from '../watch';

export function Detail({ id }: { id: string }) {
  const exp = useLoad(() => api.getExperiment(id), [id]);
  const audit = useLoad(() => api.audit(id), [id]);
  const [flash] = useState(() => takeFlash());
  const who = useWhoAmI();

  useEffect(() => {
    if (exp.data) document.title = `${exp.data.name} · Litmus Edge`;
  }, [exp.data?.name]);

  if (exp.error) return <LoadError error={exp.error} />;
  if (!exp.data) return <Spinner />;
  const e = exp.data;
  return (
    <>
      <ExperimentHeader exp={e} tab="overview" />
      {flash && (
        <Alert kind="success" testId="flash">
          {flash}
        </Alert>
      )}
      <div class="layout-2">
        <Lifecycle
          exp={e}
          onChange={(updated) => {
            exp.setData(updated);
            void audit.reload();
          }}
        />
        <About exp={e} />
      </div>
      <Watch
        exp={e}
        canWrite={who ? who.can_write : undefined}
        onSaved={(updated) => {
          exp.setData(updated);
          void audit.reload();
        }}
        onRefresh={() => {
          void exp.reload();
          void audit.reload();
        }}
      />
      <Variants exp={e} />
      <section class="card" aria-labelledby="audit-title">
        <h2 id="audit-title">Audit log</h2>
        {audit.error && <LoadError error={audit.error} />}
        {audit.data && <AuditTable entries={audit.data} />}
      </section>
    </>
  );
}

const SENTENCE: Record<string, (e: Experiment) => string> = {
  draft: () => 'Not serving yet: every unit gets the control. Launch to start with the ramp below.',
  running: (e) => `Serving ${e.ramp_pct}% of eligible units. Changing the ramp only adds or removes units; nobody switches variant.`,
  paused: () => 'Paused: every unit gets the control until you launch again.',
  stopped: (e) => `Stopped${e.stopped_at ? ' ' + dateTime(e.stopped_at) : ''}. Stopped is final; results stay available.`,
};

function Lifecycle({ exp, onChange }: { exp: Experiment; onChange(e: Experiment): void }) {
  const [ramp, setRamp] = useState(String(exp.ramp_pct));
  const [busy, setBusy] = useState<string | null>(null);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [problem, setProblem] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [confirmStop, setConfirmStop] = useState(false);
  const stopButton = useRef<HTMLButtonElement>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const deleteButton = useRef<HTMLButtonElement>(null);

  // Follow the server's ramp when the experiment changes (same render, so no late overwrite).
  const [rampFor, setRampFor] = useState(exp.version);
  if (rampFor !== exp.version) {
    setRampFor(exp.version);
    setRamp(String(exp.ramp_pct));
  }

  const act = async (name: string, fn: () => Promise<Experiment>, done: (e: Experiment) => string) => {
    setBusy(name);
    setErrors({});
    setProblem(null);
    setMessage(null);
    try {
      const updated = await fn();
      onChange(updated);
      setMessage(done(updated));
    } catch (err) {
      if (err instanceof ApiError && err.field) setErrors({ [err.field]: err.message });
      else setProblem(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(null);
    }
  };

  const launch = () => {
    const r = Number(ramp);
    if (ramp.trim() === '' || !(r >= 0 && r <= 100)) {
      setErrors({ ramp_pct: 'Ramp is a percentage from 0 to 100.' });
      return;
    }
    const wasRunning = exp.status === 'running';
    void act('launch', () => api.launch(exp.id, r), (u) => (wasRunning ? `Ramp updated to ${u.ramp_pct}%.` : `Launched at ${u.ramp_pct}%.`));
  };

  const deleteDraft = async () => {
    setBusy('delete');
    setProblem(null);
    try {
      await api.deleteDraft(exp.id);
      setFlash(`Draft “${exp.name}” deleted.`);
      navigate('/experiments');
    } catch (err) {
      setConfirmDelete(false);
      setProblem(err instanceof Error ? err.message : String(err));
      setBusy(null);
    }
  };

  const stopped = exp.status === 'stopped';
  return (
    <section class="card" aria-labelledby="lifecycle-title" data-testid="lifecycle">
      <h2 id="lifecycle-title">Lifecycle</h2>
      <div class="status-line">
        <StatusBadge status={exp.status} large />
        <p>{SENTENCE[exp.status]?.(exp) ?? exp.status}</p>
      </div>
      <RampInput value={ramp} onChange={setRamp} errors={errors} disabled={stopped} hint={rampHint(exp, ramp)} />
      <div class="actions">
        <button type="button" class="btn btn-primary" onClick={launch} disabled={stopped || !!busy}>
          {busy === 'launch' ? 'Working…' : 'Launch / Update ramp'}
        </button>
        <button
          type="button"
          class="btn"
          onClick={() => act('pause', () => api.pause(exp.id), () => 'Paused: every unit gets the control.')}
          disabled={exp.status !== 'running' || !!busy}
        >
          {busy === 'pause' ? 'Pausing…' : 'Pause'}
        </button>
        <button ref={stopButton} type="button" class="btn btn-danger" onClick={() => setConfirmStop(true)} disabled={stopped || !!busy}>
          Stop
        </button>
        {exp.status === 'draft' && (
          <button ref={deleteButton} type="button" class="btn btn-danger" onClick={() => setConfirmDelete(true)} disabled={!!busy}>
            Delete draft
          </button>
        )}
      </div>
      <div role="status" aria-live="polite" class="action-result">
        {message && <p class="ok" data-testid="action-message">{message}</p>}
      </div>
      {problem && <Alert>{problem}</Alert>}
      <p class="small">
        <Link href={experimentPath(exp.id, 'results')}>See results →</Link>
      </p>
      <ConfirmDialog
        open={confirmStop}
        title={`Stop “${exp.name}”?`}
        confirmLabel="Stop experiment"
        danger
        busy={busy === 'stop'}
        onCancel={() => {
          setConfirmStop(false);
          stopButton.current?.focus();
        }}
        onConfirm={async () => {
          await act('stop', () => api.stop(exp.id), () => 'Stopped. Every unit now gets the control.');
          setConfirmStop(false);
        }}
      >
        <p>
          Stopping is final: it cannot be launched again, and every unit gets the control variant{' '}
          <code>{exp.variants[0]?.key}</code>. Results stay available.
        </p>
      </ConfirmDialog>
      <ConfirmDialog
        open={confirmDelete}
        title={`Delete draft “${exp.name}”?`}
        confirmLabel="Delete draft"
        danger
        busy={busy === 'delete'}
        onCancel={() => {
          setConfirmDelete(false);
          deleteButton.current?.focus();
        }}
        onConfirm={() => void deleteDraft()}
      >
        <p>
          The draft never served anyone; it is removed, and its key <code>{exp.key}</code> becomes free. The audit log keeps a record of
          the deletion.
        </p>
      </ConfirmDialog>
    </section>
  );
}

function rampHint(exp: Experiment, ramp: string): string | undefined {
  // A safe rollout sets the ramp itself on launch (its first step), so the box does not decide then.
  const first = exp.rollout?.steps[0];
  if (exp.status === 'draft' && first) return `The safe rollout launches at its first step, ${first.ramp_pct}%, whatever the ramp here.`;
  if (Number(ramp) === 0 && exp.status !== 'stopped') return 'At 0% nobody enters the experiment.';
  return undefined;
}

function About({ exp }: { exp: Experiment }) {
  const targeting = exp.targeting && typeof exp.targeting === 'object' && Object.keys(exp.targeting as object).length ? JSON.stringify(exp.targeting, null, 2) : null;
  return (
    <section class="card" aria-labelledby="about-title">
      <h2 id="about-title">About</h2>
      <p class="description">{exp.description || <span class="muted">No description.</span>}</p>
      <dl class="kv">
        <div>
          <dt>Owner team</dt>
          <dd>{exp.owner_team || '–'}</dd>
        </div>
        <div>
          <dt>Unit type</dt>
          <dd class="mono">{exp.unit_type}</dd>
        </div>
        <div>
          <dt>Type</dt>
          <dd>{exp.type === 'bandit' ? 'Bandit' : 'A/B test'}</dd>
        </div>
        <div>
          <dt>Created by</dt>
          <dd>{exp.created_by || '–'}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>{dateTime(exp.created_at)}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>{dateTime(exp.started_at)}</dd>
        </div>
        {exp.stopped_at && (
          <div>
            <dt>Stopped</dt>
            <dd>{dateTime(exp.stopped_at)}</dd>
          </div>
        )}
        {exp.layer && (
          <div>
            <dt>Layer</dt>
            <dd class="mono">
              {exp.layer.key} [{exp.layer.start}, {exp.layer.end})
            </dd>
          </div>
        )}
        <div class="wide">
          <dt>Targeting</dt>
          <dd>
            {targeting ? (
              <>
                <pre class="code-block">{targeting}</pre>
                <span class="muted" data-testid="targeting-dialect">
                  {DIALECT_LABEL[dialectOf(exp.targeting)]}
                </span>
              </>
            ) : (
              'Everyone'
            )}
          </dd>
        </div>
      </dl>
    </section>
  );
}

function Variants({ exp }: { exp: Experiment }) {
  return (
    <section class="card" aria-labelledby="variants-title">
      <h2 id="variants-title">Variants</h2>
      <div class="table-wrap">
        <table class="table" data-testid="variants-table">
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Name</th>
              <th scope="col" class="num">
                Weight
              </th>
              <th scope="col">Config</th>
            </tr>
          </thead>
          <tbody>
            {exp.variants.map((v, i) => (
              <tr key={v.key}>
                <td class="mono">
                  {v.key} {i === 0 && <span class="tag">control</span>}
                </td>
                <td>{v.name || '–'}</td>
                <td class="num">{pct(v.weight, 2)}</td>
                <td>
                  <code class="config">{JSON.stringify(v.config_json ?? {})}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/** Keys of a watch job's entry (actor `rule` / `rollout`) that its alert already shows. */
const WATCH_KEYS = new Set(['reason', 'rule', 'numbers', 'rollout', 'alert_id']);

function describe(a: AuditEntry): string {
  const d = (a.details ?? {}) as Record<string, unknown>;
  const parts: string[] = [];
  const ramp = d.ramp_pct as { from?: number; to?: number } | undefined;
  if (ramp && typeof ramp === 'object') {
    if (ramp.from !== ramp.to) parts.push(`ramp ${ramp.from}% → ${ramp.to}%`);
    else if (a.action === 'launch' || a.action === 'ramp') parts.push(`at ${ramp.to}%`);
  }
  if (Array.isArray(d.changed)) parts.push(`changed ${d.changed.join(', ')}`);
  const skip = (k: string) => k === 'ramp_pct' || k === 'changed' || (typeof d.reason === 'string' && WATCH_KEYS.has(k));
  const rest = Object.fromEntries(Object.entries(d).filter(([k]) => !skip(k)));
  if (Object.keys(rest).length) parts.push(JSON.stringify(rest));
  return parts.join('; ');
}

function AuditTable({ entries }: { entries: AuditEntry[] }) {
  if (!entries.length) return <p class="muted">No changes yet.</p>;
  const rows = [...entries].reverse();
  return (
    <div class="table-wrap">
      <table class="table" data-testid="audit-table">
        <caption class="sr-only">Audit log, newest first</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Action</th>
            <th scope="col">Status</th>
            <th scope="col">Who</th>
            <th scope="col" class="num">
              Version
            </th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((a, i) => (
            <tr key={a.id ?? i}>
              <td class="nowrap">{dateTime(a.at)}</td>
              <td>
                <strong>{a.action}</strong>
              </td>
              <td class="nowrap">
                {a.from_status && a.from_status !== a.to_status ? `${a.from_status} → ` : ''}
                {a.to_status}
              </td>
              <td>{a.actor}</td>
              <td class="num">{a.version}</td>
              <td class="small">
                {typeof a.details?.reason === 'string' && (
                  <span class="block" data-testid="audit-reason">
                    <CodeText text={a.details.reason} />
                  </span>
                )}
                {describe(a)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
