// Small shared pieces: status badges, field errors, alerts, the confirmation dialog, the
// experiment header with its tabs, and a data-loading hook.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type Experiment } from './api';
import { Link, experimentPath } from './router';

export function StatusBadge({ status, large }: { status: string; large?: boolean }) {
  return (
    <span class={`badge badge-${status}${large ? ' badge-lg' : ''}`} data-testid="status">
      {status.toUpperCase()}
    </span>
  );
}

/** The id an input gets for an API field path: `variants[1].weight` → `f-variants-1-weight`. */
export function fieldId(path: string): string {
  return 'f-' + path.replace(/[^a-zA-Z0-9]+/g, '-').replace(/-+$/, '');
}

export type FieldErrors = Record<string, string>;

/** Props that wire an input to its error message (aria-invalid + aria-describedby). */
export function fieldProps(path: string, errors: FieldErrors, extraDescribedBy?: string) {
  const id = fieldId(path);
  const err = errors[path];
  const describedBy = [err ? `${id}-error` : '', extraDescribedBy ?? ''].filter(Boolean).join(' ');
  return { id, name: path, 'aria-invalid': err ? ('true' as const) : undefined, 'aria-describedby': describedBy || undefined };
}

export function FieldError({ path, errors }: { path: string; errors: FieldErrors }) {
  const msg = errors[path];
  if (!msg) return null;
  return (
    <p class="field-error" id={`${fieldId(path)}-error`} data-field={path}>
      {msg}
    </p>
  );
}

export function Alert({ kind = 'error', children, title, testId }: { kind?: 'error' | 'warning' | 'info' | 'success'; title?: string; children?: ComponentChildren; testId?: string }) {
  return (
    <div class={`alert alert-${kind}`} role={kind === 'error' || kind === 'warning' ? 'alert' : 'status'} data-testid={testId}>
      {title && <strong class="alert-title">{title}</strong>}
      <div>{children}</div>
    </div>
  );
}

export function Spinner({ label = 'Loading…' }: { label?: string }) {
  return (
    <p class="loading" role="status">
      <span class="spinner" aria-hidden="true" /> {label}
    </p>
  );
}

/** A modal confirmation on <dialog>: focus moves in, Escape cancels, focus returns on close. */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  busy?: boolean;
  onConfirm(): void;
  onCancel(): void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) d.showModal();
    if (!props.open && d.open) d.close();
  }, [props.open]);
  return (
    <dialog
      ref={ref}
      class="dialog"
      aria-labelledby="dialog-title"
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      <h2 id="dialog-title">{props.title}</h2>
      <div class="dialog-body">{props.children}</div>
      <div class="actions">
        <button type="button" class="btn" onClick={props.onCancel} autofocus>
          Cancel
        </button>
        <button type="button" class={`btn ${props.danger ? 'btn-danger' : 'btn-primary'}`} onClick={props.onConfirm} disabled={props.busy}>
          {props.busy ? 'Working…' : props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

/** Title, key, status and the Overview / Results / Settings tabs shared by an experiment's screens. */
export function ExperimentHeader({ exp, tab, extra }: { exp: Experiment; tab: 'overview' | 'results' | 'settings'; extra?: ComponentChildren }) {
  const tabs: [typeof tab, string, string][] = [
    ['overview', 'Overview', experimentPath(exp.id)],
    ['results', 'Results', experimentPath(exp.id, 'results')],
    ['settings', 'Settings', experimentPath(exp.id, 'settings')],
  ];
  return (
    <header class="page-header">
      <nav aria-label="Breadcrumb" class="breadcrumb">
        <Link href="/experiments">Experiments</Link> <span aria-hidden="true">/</span> <span>{exp.key}</span>
      </nav>
      <div class="title-row">
        <h1 tabIndex={-1}>{exp.name}</h1>
        <StatusBadge status={exp.status} large />
        {exp.type === 'bandit' && <span class="badge badge-type">BANDIT</span>}
        {extra}
      </div>
      <p class="muted mono">
        {exp.key} · v{exp.version}
      </p>
      <nav class="tabs" aria-label="Experiment sections">
        {tabs.map(([t, label, href]) => (
          <Link key={t} href={href} class={`tab${t === tab ? ' active' : ''}`} aria-current={t === tab ? 'page' : undefined}>
            {label}
          </Link>
        ))}
      </nav>
    </header>
  );
}

/** Loads with `fn` whenever `deps` change; `reload()` loads again without clearing the data. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const run = useCallback(async () => {
    const n = ++seq.current;
    setLoading(true);
    try {
      const d = await fn();
      if (n === seq.current) {
        setData(d);
        setError(null);
      }
    } catch (e) {
      if (n === seq.current) setError(e instanceof ApiError ? e : new ApiError(0, 'client', String(e)));
    } finally {
      if (n === seq.current) setLoading(false);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  // New deps keep the old data on screen until the new data arrives (no flash while filtering).
  useEffect(() => {
    void run();
  }, [run]);
  return { data, error, loading, reload: run, setData };
}

export function LoadError({ error }: { error: ApiError }) {
  if (error.status === 404) {
    return (
      <Alert title="Not found">
        {error.message}. <Link href="/experiments">Back to experiments</Link>
      </Alert>
    );
  }
  return <Alert title="Could not load">{error.message}</Alert>;
}

/** Copies API text to a file download (the token stays in the request header). */
export function download(filename: string, text: string, type: string) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Turns an ApiError into per-field messages; returns the message when no field is named. */
export function errorsFrom(e: unknown): { fields: FieldErrors; general?: string } {
  if (e instanceof ApiError) {
    if (e.field) return { fields: { [e.field]: e.message } };
    return { fields: {}, general: e.message };
  }
  return { fields: {}, general: String(e) };
}
