// How the console shows an alert of the watch job, wherever it appears (the feed at /alerts, an
// experiment's Watch card, the results page's live banners): its severity, what the platform did,
// the numbers it rested on in words (never a JSON dump), and the Acknowledge button.
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, type AlertEntry, type StoppingRule, type WhoAmI } from './api';
import { dateTime, int, isNum, num, pValue, pct, relative, signed, signedPct } from './format';
import { Link, experimentPath } from './router';

export const ALERT_KINDS: [string, string][] = [
  ['rule', 'Stopping rule'],
  ['rollout', 'Safe rollout'],
  ['srm', 'Sample-ratio mismatch'],
  ['guardrail', 'Guardrail'],
  ['anomaly', 'Exposure anomaly'],
  ['ready_to_call', 'Ready to call'],
  ['underpowered', 'Underpowered'],
];
const KIND_LABEL: Record<string, string> = Object.fromEntries(ALERT_KINDS);

export const kindLabel = (kind: string) => KIND_LABEL[kind] ?? kind.replace(/_/g, ' ');

const ACTION_WORDS: Record<string, string> = {
  notify: 'Notified only: nothing changed',
  pause: 'Paused the experiment',
  stop: 'Stopped the experiment',
  rollback: 'Rolled the ramp back to 0%',
  advance: 'Advanced the ramp',
  complete: 'Completed the rollout',
};

/** What the platform did about an alert, as a sentence. */
export const actionWords = (action: string) => ACTION_WORDS[action] ?? action;

/** `critical` → the `alert-error` look the console uses for things that need a person now. */
export function severityTone(severity: string): 'error' | 'warning' | 'info' {
  return severity === 'critical' ? 'error' : severity === 'warning' ? 'warning' : 'info';
}

export function SeverityBadge({ severity }: { severity: string }) {
  return (
    <span class={`badge badge-sev-${severityTone(severity)}`} data-testid="severity">
      {severity.toUpperCase()}
    </span>
  );
}

/** Titles name metrics in `backticks`: shown as code. */
export function CodeText({ text }: { text: string }) {
  const parts = text.split('`');
  return <>{parts.map((p, i) => (i % 2 ? <code key={i}>{p}</code> : p))}</>;
}

export const RULE_KINDS: [StoppingRule['kind'], string][] = [
  ['max_sample', 'Maximum sample'],
  ['max_duration', 'Maximum duration'],
  ['significance', 'Significance reached'],
  ['guardrail', 'Guardrail breached'],
  ['srm', 'Sample-ratio mismatch'],
];

export const RULE_ACTIONS: [StoppingRule['action'], string][] = [
  ['notify', 'Notify only'],
  ['pause', 'Pause'],
  ['stop', 'Stop'],
  ['rollback', 'Roll back to 0%'],
];

/** A stopping rule in words: "Maximum sample: 20,000 units". */
export function ruleWords(r: StoppingRule): string {
  switch (r.kind) {
    case 'max_sample':
      return `Maximum sample: ${int(r.units)} units`;
    case 'max_duration':
      return `Maximum duration: ${num(r.days, 2)} day${r.days === 1 ? '' : 's'}`;
    case 'significance':
      return `Significance reached on ${r.metric ? `\`${r.metric}\`` : 'every primary metric'}`;
    case 'guardrail':
      return `Guardrail \`${r.metric ?? '?'}\` breached${isNum(r.margin) && r.margin > 0 ? ` beyond a ${pct(r.margin)} margin` : ''}`;
    case 'srm':
      return 'Sample-ratio mismatch (p below 0.001)';
    default:
      return String((r as { kind: string }).kind);
  }
}

export const ruleActionWords = (action: string) => RULE_ACTIONS.find(([a]) => a === action)?.[1] ?? action;

type Fact = [label: string, value: string];
type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj => (x && typeof x === 'object' && !Array.isArray(x) ? (x as Obj) : {});
const list = (x: unknown): Obj[] => (Array.isArray(x) ? x.map(obj) : []);
const pctPoints = (x: unknown) => (isNum(x) ? `${num(x, 2)}%` : '–');

function breachFacts(b: Obj): Fact {
  const interval = isNum(b.ci_low) && isNum(b.ci_high) ? `; always-valid interval ${signed(b.ci_low)} to ${signed(b.ci_high)}` : '';
  return [`${String(b.metric ?? 'metric')} in ${String(b.variant ?? 'variant')}`, `${signedPct(b.rel_lift)} against control${interval}; p = ${pValue(b.p_value)}`];
}

function decidedFacts(d: Obj, metric?: unknown): Fact {
  const where = metric ? `${String(d.variant ?? 'variant')} on ${String(metric)}` : `${String(d.variant ?? 'variant')} on ${String(d.metric ?? 'metric')}`;
  return [where, `${signedPct(d.rel_lift)} against control; always-valid p = ${pValue(d.p_value)}`];
}

/** The numbers behind an alert, labelled, per kind; unknown kinds show their plain numbers. */
export function alertFacts(a: AlertEntry): Fact[] {
  const d = obj(a.details);
  const out: Fact[] = [];
  switch (a.kind) {
    case 'rule': {
      const rule = obj(d.rule) as unknown as StoppingRule;
      const n = obj(d.numbers);
      if (rule.kind) out.push([`Rule ${isNum(d.index) ? d.index + 1 : ''}`.trim(), `${ruleWords(rule).replace(/`/g, '')} → ${ruleActionWords(rule.action ?? 'notify').toLowerCase()}`]);
      if (rule.kind === 'max_sample') out.push(['Exposed units', `${int(n.units)} (limit ${int(n.max_units)})`]);
      else if (rule.kind === 'max_duration') out.push(['Ran', `${num(n.running_days, 2)} days (limit ${num(n.max_days, 2)})`]);
      else if (rule.kind === 'srm') out.push(['Sample-ratio p', pValue(n.p_value)]);
      else if (rule.kind === 'significance') list(n.decided).forEach((x) => out.push(decidedFacts(x)));
      else if (rule.kind === 'guardrail') list(n.breaches).forEach((x) => out.push(breachFacts(x)));
      break;
    }
    case 'rollout':
      if (isNum(d.from_pct) && isNum(d.to_pct)) out.push(['Ramp', `${pctPoints(d.from_pct)} → ${pctPoints(d.to_pct)}`]);
      else if (typeof d.reason === 'string' || isNum(d.srm_p) || Array.isArray(d.breaches)) out.push(['Ramp', `${pctPoints(d.from_pct)} → 0%`]);
      else if (isNum(d.ramp_pct)) out.push(['Final ramp', pctPoints(d.ramp_pct)]);
      if (isNum(d.step)) out.push(['Step', `${int(d.step)}${isNum(d.steps) ? ` of ${int(d.steps)}` : ''}`]);
      else if (isNum(d.steps)) out.push(['Steps held', int(d.steps)]);
      if (isNum(d.units_in_step)) out.push(['New units in the step', int(d.units_in_step)]);
      if (isNum(d.srm_p)) out.push(['Sample-ratio p', pValue(d.srm_p)]);
      list(d.breaches).forEach((x) => out.push(breachFacts(x)));
      break;
    case 'anomaly': {
      const an = obj(d.anomaly);
      const window = isNum(d.bucket_seconds) ? `${int(d.bucket_seconds)} s` : 'the last bucket';
      out.push([`New units in ${window}`, `${int(an.observed)} observed, ${num(an.expected, 1)} expected`]);
      if (typeof an.direction === 'string') out.push(['Direction', an.direction === 'drop' ? 'drop' : 'spike']);
      if (isNum(an.z)) out.push(['Standard deviations off', num(an.z, 1)]);
      if (isNum(an.baseline_buckets)) out.push(['Baseline', `${int(an.baseline_buckets)} earlier buckets`]);
      break;
    }
    case 'srm':
      out.push(['Sample-ratio p', `${pValue(d.p_value)}${isNum(d.threshold) ? ` (alerts below ${d.threshold})` : ''}`]);
      break;
    case 'guardrail':
      out.push(breachFacts(d));
      if (isNum(d.margin) && d.margin > 0) out.push(['Margin', pct(d.margin)]);
      break;
    case 'ready_to_call':
      list(d.decided).forEach((x) => out.push(decidedFacts(x, d.metric)));
      break;
    case 'underpowered': {
      const e = obj(d.estimate);
      if (typeof d.metric === 'string') out.push(['Metric', d.metric]);
      if (isNum(d.mde)) out.push(['Planned effect', pct(d.mde)]);
      if (isNum(e.more_days)) out.push(['More days needed', num(e.more_days, 1)]);
      if (isNum(e.units_per_day)) out.push(['Units a day now', int(e.units_per_day)]);
      if (isNum(e.needed_per_variant)) out.push(['Needed per variant', `${int(e.needed_per_variant)} (has ${int(e.units_per_variant)})`]);
      break;
    }
    default:
      for (const [k, v] of Object.entries(d)) {
        if (isNum(v)) out.push([k.replace(/_/g, ' '), num(v)]);
        else if (typeof v === 'string' && v.length <= 200) out.push([k.replace(/_/g, ' '), v]);
      }
  }
  return out;
}

export function AlertFacts({ alert }: { alert: AlertEntry }) {
  const facts = alertFacts(alert);
  if (!facts.length) return null;
  return (
    <dl class="facts-inline" data-testid="alert-facts">
      {facts.map(([k, v], i) => (
        <div key={i}>
          <dt>{k}:</dt> <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

/** This token's role; `undefined` while asking, `null` when the server cannot say. */
export function useWhoAmI(): WhoAmI | null | undefined {
  const [who, setWho] = useState<WhoAmI | null | undefined>(undefined);
  useEffect(() => {
    let live = true;
    void api.whoami().then((w) => live && setWho(w));
    return () => {
      live = false;
    };
  }, []);
  return who;
}

export const READ_ONLY_ACK = 'This token is read-only: it cannot acknowledge alerts. Sign in with an admin token to acknowledge them.';

/**
 * One alert: severity, kind, when, the title, what the platform did, its numbers, the experiment
 * and its acknowledgement. `canWrite === false` (a read-only token) hides the button.
 */
export function AlertItem(props: { alert: AlertEntry; canWrite?: boolean; showExperiment?: boolean; onChange(a: AlertEntry): void; extra?: ComponentChildren }) {
  const a = props.alert;
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const titleId = `alert-${a.id}-title`;
  const ack = async () => {
    setBusy(true);
    setErr(null);
    try {
      props.onChange(await api.acknowledge(a.id));
    } catch (e) {
      setErr(e instanceof ApiError && e.status === 403 ? READ_ONLY_ACK : e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <li class={`feed-item sev-${severityTone(a.severity)}${a.acknowledged_at ? ' acked' : ''}`} data-testid={`alert-${a.id}`} data-kind={a.kind} data-experiment={a.experiment_key}>
      <div class="feed-head">
        <SeverityBadge severity={a.severity} />
        <span class="feed-kind">{kindLabel(a.kind)}</span>
        <time class="muted small" dateTime={a.created_at} title={dateTime(a.created_at)}>
          {relative(a.created_at)}
        </time>
        {props.showExperiment && (
          <span class="push-right small">
            {a.experiment_id ? (
              <Link href={experimentPath(a.experiment_id)} class="mono" data-testid="alert-experiment">
                {a.experiment_key}
              </Link>
            ) : (
              <span class="mono">{a.experiment_key}</span>
            )}
          </span>
        )}
      </div>
      <p class="feed-title" id={titleId}>
        <CodeText text={a.title} />
      </p>
      <p class={`feed-action${a.action === 'notify' ? '' : ' acted'}`} data-testid="alert-action" data-action={a.action}>
        {actionWords(a.action)}
      </p>
      <AlertFacts alert={a} />
      <div class="feed-foot">
        {a.acknowledged_at ? (
          <p class="ok small" data-testid="alert-acknowledged">
            ✓ Acknowledged by {a.acknowledged_by ?? 'someone'} · {dateTime(a.acknowledged_at)}
          </p>
        ) : props.canWrite === false ? (
          <p class="muted small">Not acknowledged</p>
        ) : (
          <button type="button" class="btn btn-small" onClick={() => void ack()} disabled={busy} aria-describedby={titleId}>
            {busy ? 'Acknowledging…' : 'Acknowledge'}
          </button>
        )}
        {props.extra}
      </div>
      {err && (
        <p class="field-error" role="alert" data-testid="ack-error">
          {err}
        </p>
      )}
    </li>
  );
}
