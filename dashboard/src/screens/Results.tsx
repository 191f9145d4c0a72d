// /experiments/{id}/results: live readout. Exposure bars that move as events arrive, metric
// summaries, the lift table with a forest plot per metric, the cumulative lift over time, SRM and
// guardrail warnings, P(best) per metric, bandit win probabilities when present, and CSV/Markdown
// export. Alerts the watch job raises while the page is open appear as banners above the readout.
// The fields documented in control-plane/src/results.rs are read as prose and labelled numbers;
// only fields this console does not know fall back to a generic view ("Other analyses").
import type { JSX } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, api, type AlertEntry, type BanditSnapshot, type Experiment, type Lift, type Results as ResultsDoc, type Timeseries } from '../api';
import { AlertFacts, CodeText, SeverityBadge, actionWords, kindLabel, severityTone } from '../alerts';
import { ExposureBars, ForestPlot, LiftSeries, WeightHistory, WinProbabilityBars, variantColor, type Series } from '../charts';
import { Alert, ExperimentHeader, LoadError, Spinner, download, useLoad } from '../components';
import { dateTime, int, isNum, num, pIs, pValue, pct, signed, signedPct, timeOnly } from '../format';
import { subscribeResults, type LiveMode } from '../live';
import { Link } from '../router';

const KNOWN_TOP = new Set([
  'experiment', 'id', 'status', 'version', 'control', 'alpha', 'generated_at', 'variants', 'lift', 'srm', 'guardrails', 'warnings', 'bandit', 'note',
  'bayesian', 'settings', 'filter', 'quarantined_events', 'segments',
]);
const KNOWN_LIFT = new Set([
  'metric', 'kind', 'control', 'variant', 'control_value', 'variant_value', 'abs_lift', 'rel_lift', 'ci_low', 'ci_high', 'p_value', 'test', 'note',
  'role', 'guardrail_violated', 'rel_ci_low', 'rel_ci_high', 'p_value_holm', 'p_value_bh',
  'sequential', 'bayesian', 'mann_whitney', 'effect_size', 'bootstrap', 'cuped', 'table_test',
]);

export function Results({ id }: { id: string }) {
  const exp = useLoad(() => api.getExperiment(id), [id]);
  const [doc, setDoc] = useState<ResultsDoc | null>(null);
  const [mode, setMode] = useState<LiveMode>('connecting');
  const [modeDetail, setModeDetail] = useState<string | undefined>();
  const [updated, setUpdated] = useState<Date | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [pushed, setPushed] = useState<AlertEntry[]>([]);

  useEffect(() => {
    setDoc(null);
    setPushed([]);
    return subscribeResults(id, {
      onAlert: (a) => {
        setPushed((list) => (list.some((x) => x.id === a.id) ? list : [a, ...list]));
        // The job paused, stopped or re-ramped it: the header follows at once, not at the next load.
        if (a.action !== 'notify') void exp.reload();
      },
      onResults: (r) => {
        setDoc(r);
        setUpdated(new Date());
        setLoadError(null);
      },
      onMode: (m, detail) => {
        setMode(m);
        setModeDetail(detail);
      },
      onError: (e) => {
        if (e.status === 404) setLoadError(e);
      },
    });
  }, [id]);

  useEffect(() => {
    if (exp.data) document.title = `Results · ${exp.data.name} · Litmus Edge`;
  }, [exp.data?.name]);

  // The status can change elsewhere (another tab, the API): follow the results document.
  const e: Experiment | undefined = exp.data && doc ? { ...exp.data, status: (doc.status as Experiment['status']) ?? exp.data.status } : exp.data;

  if (exp.error) return <LoadError error={exp.error} />;
  if (loadError) return <LoadError error={loadError} />;
  if (!e) return <Spinner />;
  return (
    <>
      <ExperimentHeader exp={e} tab="results" />
      <LiveBar mode={mode} detail={modeDetail} updated={updated} exp={e} />
      <PushedAlerts alerts={pushed} experimentKey={e.key} onDismiss={(id) => setPushed((list) => list.filter((a) => a.id !== id))} />
      {!doc ? <Spinner label="Loading results…" /> : <ResultsBody doc={doc} exp={e} />}
    </>
  );
}

function LiveBar({ mode, detail, updated, exp }: { mode: LiveMode; detail?: string; updated: Date | null; exp: Experiment }) {
  const [busy, setBusy] = useState<string | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const label =
    mode === 'socket' ? 'Live' : mode === 'polling' ? 'Refreshing every 2 s' : mode === 'connecting' ? 'Connecting…' : `Connection problem${detail ? ': ' + detail : ''}; retrying`;
  const exportAs = async (format: 'csv' | 'md') => {
    setBusy(format);
    setErr(null);
    try {
      const text = await api.resultsExport(exp.id, format);
      download(`${exp.key}-results.${format}`, text, format === 'csv' ? 'text/csv' : 'text/markdown');
    } catch (x) {
      setErr(x instanceof Error ? x.message : String(x));
    } finally {
      setBusy(null);
    }
  };
  return (
    <div class="livebar">
      <p class={`live live-${mode}`} data-testid="live-mode" data-mode={mode}>
        <span class="dot" aria-hidden="true" />
        {label}
        {mode === 'socket' && <span class="muted"> (WebSocket)</span>}
        {updated && <span class="muted"> · updated {timeOnly(updated)}</span>}
      </p>
      <div class="actions push-right">
        <button type="button" class="btn btn-small" onClick={() => exportAs('csv')} disabled={!!busy}>
          {busy === 'csv' ? 'Preparing…' : 'Download CSV'}
        </button>
        <button type="button" class="btn btn-small" onClick={() => exportAs('md')} disabled={!!busy}>
          {busy === 'md' ? 'Preparing…' : 'Download Markdown'}
        </button>
      </div>
      {err && <Alert>{err}</Alert>}
    </div>
  );
}

/** How many banners at most; the feed has the rest. */
const MAX_BANNERS = 4;

/**
 * Alerts raised while this page is open, critical first, newest first within a severity. The
 * live region is always in the page, so a banner appearing in it is announced; critical ones
 * also as `role="alert"`.
 */
function PushedAlerts({ alerts, experimentKey, onDismiss }: { alerts: AlertEntry[]; experimentKey: string; onDismiss(id: number): void }) {
  const rank = (a: AlertEntry) => (a.severity === 'critical' ? 0 : a.severity === 'warning' ? 1 : 2);
  const sorted = [...alerts].sort((a, b) => rank(a) - rank(b) || b.id - a.id);
  const shown = sorted.slice(0, MAX_BANNERS);
  const feed = `/alerts?experiment=${encodeURIComponent(experimentKey)}`;
  return (
    <div class="live-alerts" aria-live="polite" aria-relevant="additions" data-testid="live-alerts">
      {shown.map((a) => {
        const tone = severityTone(a.severity);
        return (
          <div
            key={a.id}
            class={`alert alert-${tone} live-alert${tone === 'error' ? ' live-alert-critical' : ''}`}
            role={tone === 'error' ? 'alert' : undefined}
            data-testid="live-alert"
            data-severity={a.severity}
            data-kind={a.kind}
          >
            <div class="live-alert-head">
              <SeverityBadge severity={a.severity} />
              <strong>{kindLabel(a.kind)}</strong>
              <span class="small">{timeOnly(new Date(a.created_at))}</span>
              <button type="button" class="btn btn-small btn-ghost push-right" onClick={() => onDismiss(a.id)} aria-label={`Dismiss alert: ${a.title.replace(/`/g, '')}`}>
                Dismiss
              </button>
            </div>
            <p class="live-alert-title">
              <CodeText text={a.title} />
            </p>
            <p class="live-alert-action" data-testid="live-alert-action">
              <strong>{actionWords(a.action)}.</strong> <Link href={feed}>Open the alert feed</Link>
            </p>
            <AlertFacts alert={a} />
          </div>
        );
      })}
      {sorted.length > shown.length && (
        <p class="small muted">
          {sorted.length - shown.length} more in <Link href={feed}>the alert feed</Link>.
        </p>
      )}
      {sorted.length > 1 && (
        <button type="button" class="btn btn-small btn-ghost" onClick={() => sorted.forEach((a) => onDismiss(a.id))}>
          Dismiss all
        </button>
      )}
    </div>
  );
}

function ResultsBody({ doc, exp }: { doc: ResultsDoc; exp: Experiment }) {
  const variants = Array.isArray(doc.variants) ? doc.variants : [];
  const lifts = Array.isArray(doc.lift) ? doc.lift : [];
  const total = variants.reduce((s, v) => s + (Number(v.exposures) || 0), 0);
  const alpha = isNum(doc.alpha) ? doc.alpha : 0.05;
  const metricNames = useMemo(() => unique(variants.flatMap((v) => Object.keys(v.metrics ?? {}))), [doc]);
  const conversionNames = useMemo(() => unique(variants.flatMap((v) => Object.keys(v.conversions ?? {}))), [doc]);

  return (
    <>
      <Warnings doc={doc} lifts={lifts} alpha={alpha} total={total} />

      <section class="card" aria-labelledby="exposures-title">
        <div class="card-head">
          <h2 id="exposures-title">Exposures</h2>
          <p class="kpi" aria-live="polite" aria-atomic="true">
            <span class="kpi-value" data-testid="total-exposures">
              {int(total)}
            </span>{' '}
            exposed units
          </p>
        </div>
        {total === 0 ? (
          <p class="muted" data-testid="no-exposures">
            No exposures yet. Units appear here as your service logs <code>exposure</code> events{exp.status !== 'running' ? ' (the experiment is not running)' : ''}.
          </p>
        ) : (
          <div class="split">
            <ExposureBars variants={variants} />
            <div class="table-wrap">
              <table class="table compact" data-testid="exposure-table">
                <thead>
                  <tr>
                    <th scope="col">Variant</th>
                    <th scope="col" class="num">
                      Exposed
                    </th>
                    <th scope="col" class="num">
                      Share
                    </th>
                    <th scope="col" class="num">
                      Weight
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {variants.map((v, i) => (
                    <tr key={v.key}>
                      <th scope="row" class="mono">
                        <span class="swatch" style={{ background: variantColor(i) }} aria-hidden="true" />
                        {v.key}
                        {v.key === doc.control && <span class="tag">control</span>}
                      </th>
                      <td class="num" data-testid={`exposures-${v.key}`}>
                        {int(v.exposures)}
                      </td>
                      <td class="num">{total ? pct(v.exposures / total) : '–'}</td>
                      <td class="num">{pct(v.weight)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        )}
      </section>

      {(metricNames.length > 0 || conversionNames.length > 0) && <Summaries doc={doc} metricNames={metricNames} conversionNames={conversionNames} />}

      <section class="card" aria-labelledby="lift-title">
        <h2 id="lift-title">Lift against control</h2>
        <p class="hint">
          Absolute lift with its 95% confidence interval; a bar that does not cross the dashed zero line is significant at α = {alpha}. Fixed-horizon tests: checking
          often inflates false positives.
        </p>
        {lifts.length === 0 ? (
          <p class="muted" data-testid="no-lift">
            No metrics or conversions logged yet.
          </p>
        ) : (
          <LiftSection lifts={lifts} alpha={alpha} />
        )}
      </section>

      <ProbBest doc={doc} />

      <Segments doc={doc} />

      <CumulativeLift exp={exp} doc={doc} metrics={[...metricNames.map((m) => ({ name: m, kind: 'mean' as const })), ...conversionNames.map((m) => ({ name: m, kind: 'rate' as const }))]} total={total} />

      <Bandit exp={exp} doc={doc} />

      <AboutReadout doc={doc} alpha={alpha} />
    </>
  );
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)].sort();
}

function Warnings({ doc, lifts, alpha, total }: { doc: ResultsDoc; lifts: Lift[]; alpha: number; total: number }) {
  const srm = doc.srm;
  const items: JSX.Element[] = [];
  if (srm && (srm.flagged || (isNum(srm.p_value) && srm.p_value < 0.001))) {
    items.push(
      <Alert kind="warning" title="Sample-ratio mismatch" testId="srm-warning" key="srm">
        Exposures do not match the configured weights (χ² {pIs(srm.p_value)}; observed {(srm.observed ?? []).map(int).join(' / ')}). Fix assignment or
        exposure logging before trusting any lift.
      </Alert>,
    );
  }
  const guardrails = Array.isArray(doc.guardrails) ? (doc.guardrails as Record<string, unknown>[]) : [];
  for (const [i, g] of guardrails.entries()) {
    const bad = g && (g.violated === true || g.breached === true || g.passed === false || ['violated', 'breached', 'fail', 'failed'].includes(String(g.status)));
    if (bad) {
      items.push(
        <Alert kind="warning" title={`Guardrail: ${String(g.metric ?? g.name ?? 'metric')}`} testId="guardrail-warning" key={`g${i}`}>
          {String(g.message ?? JSON.stringify(g))}
        </Alert>,
      );
    }
  }
  const warnings = Array.isArray(doc.warnings) ? (doc.warnings as unknown[]) : [];
  warnings.forEach((w, i) =>
    items.push(
      <Alert kind="warning" key={`w${i}`}>
        {typeof w === 'string' ? w : String((w as { message?: string })?.message ?? JSON.stringify(w))}
      </Alert>,
    ),
  );
  // Declared guardrails: the control plane decides (always-valid p while running, Holm once stopped).
  for (const l of lifts.filter((l) => l.guardrail_violated === true)) {
    items.push(
      <Alert kind="warning" title={`Guardrail: ${l.metric}`} testId="guardrail-warning" key={`gv\u0000${l.metric}\u0000${l.kind}\u0000${l.variant}`}>
        <code>{l.variant}</code> moves <strong>{l.metric}</strong> significantly the wrong way ({signedPct(l.rel_lift)} relative to control).
      </Alert>,
    );
  }
  // Without declared guardrails, any metric a variant significantly lowers deserves a look.
  const drops = lifts.filter(
    (l) => l.guardrail_violated !== true && isNum(l.ci_high) && (l.ci_high as number) < 0 && (!isNum(l.p_value) || (l.p_value as number) < alpha),
  );
  if (drops.length && guardrails.length === 0) {
    items.push(
      <Alert kind="warning" title="Significant drops" testId="guardrail-warning" key="drops">
        <ul>
          {drops.map((l) => (
            <li key={l.metric + l.variant}>
              <code>{l.variant}</code> lowers <strong>{l.metric}</strong> by {signedPct(l.rel_lift)} relative to control (95% CI of the difference{' '}
              {l.kind === 'proportion' ? `${signedPct(l.ci_low, 2).replace('%', ' pp')} to ${signedPct(l.ci_high, 2).replace('%', ' pp')}` : `${signed(l.ci_low)} to ${signed(l.ci_high)}`}). If lower is worse, this is a
              guardrail breach.
            </li>
          ))}
        </ul>
      </Alert>,
    );
  }
  return (
    <div class="warnings">
      {items}
      {srm && !items.some((x) => x.key === 'srm') && (
        <p class="check-ok small" data-testid="srm-ok">
          ✓ Sample ratio matches the weights (χ² {pIs(srm.p_value)}).
        </p>
      )}
      {!srm && total > 0 && <p class="muted small">Sample-ratio check needs exposures in at least two weighted arms.</p>}
    </div>
  );
}

function Summaries({ doc, metricNames, conversionNames }: { doc: ResultsDoc; metricNames: string[]; conversionNames: string[] }) {
  return (
    <section class="card" aria-labelledby="summaries-title">
      <h2 id="summaries-title">Metric summaries</h2>
      <p class="hint">Per exposed unit: a unit’s value is the sum of its events after its first exposure. Rates are converting units / exposed units.</p>
      <div class="table-wrap">
        <table class="table compact" data-testid="metrics-table">
          <thead>
            <tr>
              <th scope="col">Metric</th>
              <th scope="col">Variant</th>
              <th scope="col" class="num">
                Units
              </th>
              <th scope="col" class="num">
                Count
              </th>
              <th scope="col" class="num">
                Mean / rate
              </th>
              <th scope="col" class="num">
                Std
              </th>
            </tr>
          </thead>
          <tbody>
            {metricNames.flatMap((m) =>
              doc.variants.map((v, i) => {
                const s = v.metrics?.[m];
                return (
                  <tr key={m + v.key} class={i === 0 ? 'group-start' : ''}>
                    {i === 0 ? (
                      <th scope="rowgroup" rowSpan={doc.variants.length}>
                        {m}
                      </th>
                    ) : null}
                    <td class="mono">{v.key}</td>
                    <td class="num">{int(s?.units)}</td>
                    <td class="num">{int(s?.count)}</td>
                    <td class="num" data-testid={`mean-${m}-${v.key}`}>
                      {num(s?.mean)}
                    </td>
                    <td class="num">{num(s?.std)}</td>
                  </tr>
                );
              }),
            )}
            {conversionNames.flatMap((m) =>
              doc.variants.map((v, i) => {
                const s = v.conversions?.[m];
                return (
                  <tr key={'c' + m + v.key} class={i === 0 ? 'group-start' : ''}>
                    {i === 0 ? (
                      <th scope="rowgroup" rowSpan={doc.variants.length}>
                        {m} <span class="muted small">(conversion)</span>
                      </th>
                    ) : null}
                    <td class="mono">{v.key}</td>
                    <td class="num">{int(s?.units)}</td>
                    <td class="num">–</td>
                    <td class="num" data-testid={`rate-${m}-${v.key}`}>
                      {pct(s?.rate, 2)}
                    </td>
                    <td class="num">–</td>
                  </tr>
                );
              }),
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function humanize(k: string): string {
  return k.replace(/_/g, ' ').replace(/\./g, ' · ');
}

function LiftSection({ lifts, alpha }: { lifts: Lift[]; alpha: number }) {
  const groups = new Map<string, Lift[]>();
  for (const l of lifts) {
    const k = `${l.metric}\u0000${l.kind}`;
    groups.set(k, [...(groups.get(k) ?? []), l]);
  }
  // Fields a newer API adds that this console does not know yet: flattened one level, listed
  // under the analyses it does know.
  const flat = new Map(lifts.map((l) => [l, flatExtras(l)]));
  return (
    <div data-testid="lift-section">
      {[...groups.values()].map((rows) => {
        const { metric, kind } = rows[0];
        const isRate = kind === 'proportion' || kind === 'rate';
        const v = (x: unknown) => (isRate ? pct(x, 2) : num(x));
        // Differences of rates are in percentage points.
        const d = (x: unknown) => (isRate ? signedPct(x, 2).replace('%', ' pp') : signed(x));
        const units: Units = { d, size: (x) => (isRate ? (isNum(x) ? `${(x * 100).toFixed(2)} pp` : '–') : num(x)) };
        const stats = ROW_STATS.filter((s) => rows.some((l) => s.keys.some((k) => l[k] !== undefined && l[k] !== null)));
        const unknown = unique(rows.flatMap((l) => Object.keys(flat.get(l)!)));
        const role = typeof rows[0].role === 'string' ? rows[0].role : null;
        return (
          <div class="lift-group" key={metric + kind}>
            <h3>
              {metric} <span class="muted small">({isRate ? 'conversion rate' : 'mean per unit'} · control {rows[0].control})</span>
              {role && <span class="tag">{role === 'guardrail' ? 'guardrail' : `${role} metric`}</span>}
            </h3>
            <ForestPlot rows={rows} metric={metric} isRate={isRate} />
            <div class="table-wrap">
              <table class="table compact" data-testid={`lift-table-${metric}`}>
                <caption class="sr-only">Lift in {metric} against control</caption>
                <thead>
                  <tr>
                    <th scope="col">Variant</th>
                    <th scope="col" class="num">
                      Control
                    </th>
                    <th scope="col" class="num">
                      Variant
                    </th>
                    <th scope="col" class="num">
                      Abs. lift
                    </th>
                    <th scope="col" class="num">
                      Rel. lift
                    </th>
                    <th scope="col" class="num">
                      95% CI
                    </th>
                    <th scope="col" class="num">
                      p-value
                    </th>
                    <th scope="col">Test</th>
                    <th scope="col">Verdict</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((l) => {
                    const sig = isNum(l.p_value) && l.p_value < alpha;
                    const verdict = l.note ? l.note : sig ? ((l.abs_lift ?? 0) > 0 ? 'higher' : 'lower') : 'no significant difference';
                    return (
                      <tr key={l.variant} data-testid={`lift-row-${metric}-${l.variant}`}>
                        <th scope="row" class="mono">
                          {l.variant}
                        </th>
                        <td class="num">{v(l.control_value)}</td>
                        <td class="num">{v(l.variant_value)}</td>
                        <td class="num">{d(l.abs_lift)}</td>
                        <td class="num">{signedPct(l.rel_lift)}</td>
                        <td class="num nowrap">{isNum(l.ci_low) && isNum(l.ci_high) ? `[${d(l.ci_low)}, ${d(l.ci_high)}]` : '–'}</td>
                        <td class="num">{pValue(l.p_value)}</td>
                        <td class="small">{testName(l.test)}</td>
                        <td>
                          <span class={`verdict ${sig ? ((l.abs_lift ?? 0) > 0 ? 'up' : 'down') : 'flat'}`}>{verdict}</span>
                          {l.guardrail_violated === true && <span class="verdict down block">guardrail breached</span>}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
            {(stats.length > 0 || unknown.length > 0) && (
              <details class="small">
                <summary>More statistics for {metric}</summary>
                <div class="table-wrap">
                  <table class="table compact" data-testid={`lift-more-${metric}`}>
                    <caption class="sr-only">Further analyses of {metric}, each variant against control</caption>
                    <thead>
                      <tr>
                        <th scope="col">Analysis</th>
                        {rows.map((l) => (
                          <th scope="col" class="mono" key={l.variant}>
                            {l.variant}
                          </th>
                        ))}
                      </tr>
                    </thead>
                    <tbody>
                      {stats.map((s) => (
                        <tr key={s.label}>
                          <th scope="row">
                            {s.label}
                            <span class="stat-hint">{s.hint}</span>
                          </th>
                          {rows.map((l) => (
                            <StatCell key={l.variant} shown={s.cell(l, units)} />
                          ))}
                        </tr>
                      ))}
                      {unknown.map((k) => (
                        <tr key={k}>
                          <th scope="row">{humanize(k)}</th>
                          {rows.map((l) => (
                            <td key={l.variant}>{showExtra(k, flat.get(l)![k])}</td>
                          ))}
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </details>
            )}
          </div>
        );
      })}
    </div>
  );
}

/** How a lift group writes a difference (`d`, signed) and a size (`size`, unsigned): pp for rates. */
type Units = { d: (x: unknown) => string; size: (x: unknown) => string };
type Fields = Record<string, unknown>;
/** A readable cell, or the reason the analysis did not run. */
type Shown = string | { notRun: string } | null;

function StatCell({ shown }: { shown: Shown }) {
  if (shown === null) return <td class="muted">–</td>;
  if (typeof shown === 'object') return <td class="muted">not enough data: {shown.notRun}</td>;
  return <td>{shown}</td>;
}

/** One per-row analysis (`{...fields}` or `{"not_enough_data": reason}`), rendered by `show`; its `method`, if any, last. */
function analysis(l: Lift, key: string, show: (a: Fields) => (string | false | null | undefined)[]): Shown {
  const a = l[key];
  if (!a || typeof a !== 'object' || Array.isArray(a)) return null;
  const reason = (a as Fields).not_enough_data;
  if (reason !== undefined && reason !== null) return { notRun: String(reason) };
  const parts = show(a as Fields).filter((x): x is string => !!x);
  const method = methodName((a as Fields).method);
  return parts.length ? parts.join(' · ') + (method ? ` (${method})` : '') : null;
}

const interval = (lo: unknown, hi: unknown, f: (x: unknown) => string) => (isNum(lo) && isNum(hi) ? `95% CI [${f(lo)}, ${f(hi)}]` : null);
const pPart = (p: unknown) => (isNum(p) ? pIs(p) : null);

const METHOD_NAMES: Record<string, string> = {
  msprt_normal_mixture: 'mSPRT, normal mixture',
  poisson_bucket_percentile: 'Poisson bootstrap over hash buckets, percentile interval',
  exact: 'exact',
  asymptotic: 'normal approximation',
  pre_exposure_sum: 'the unit’s pre-exposure value of the metric',
};
const methodName = (m: unknown) => (typeof m === 'string' ? (METHOD_NAMES[m] ?? humanize(m)) : null);

const TEST_NAMES: Record<string, string> = {
  welch_t: 'Welch’s t-test',
  z_test: 'two-proportion z-test',
  chi2: 'chi-square',
  chi2_yates: 'chi-square, Yates-corrected',
  fisher: 'Fisher’s exact test',
};
function testName(t: unknown): string {
  return typeof t === 'string' && t ? (TEST_NAMES[t] ?? humanize(t)) : '–';
}

/** The documented per-row fields of `lift[]` (control-plane/src/results.rs), as labelled prose. */
const ROW_STATS: { label: string; hint: string; keys: string[]; cell: (l: Lift, u: Units) => Shown }[] = [
  {
    label: 'Relative lift',
    hint: '95% CI, delta method',
    keys: ['rel_ci_low', 'rel_ci_high'],
    cell: (l) => (isNum(l.rel_ci_low) && isNum(l.rel_ci_high) ? `${signedPct(l.rel_lift)}, 95% CI [${signedPct(l.rel_ci_low)}, ${signedPct(l.rel_ci_high)}]` : null),
  },
  {
    label: 'Adjusted p-value',
    hint: 'across every variant × metric',
    keys: ['p_value_holm', 'p_value_bh'],
    cell: (l) => {
      const parts = [isNum(l.p_value_holm) && `Holm ${pValue(l.p_value_holm)}`, isNum(l.p_value_bh) && `Benjamini–Hochberg ${pValue(l.p_value_bh)}`].filter(Boolean);
      return parts.length ? parts.join(' · ') : null;
    },
  },
  {
    label: 'Always-valid test',
    hint: 'safe to read at any time, however often you look',
    keys: ['sequential'],
    cell: (l, u) =>
      analysis(l, 'sequential', (a) => [
        interval(a.ci_low, a.ci_high, u.d),
        pPart(a.p_value),
        isNum(a.tuning_n) && `tightest at ${int(a.tuning_n)} units`,
      ]),
  },
  {
    label: 'Bayesian',
    hint: 'expected loss: what each choice risks if it is the wrong one',
    keys: ['bayesian'],
    cell: (l, u) =>
      analysis(l, 'bayesian', (a) => [
        isNum(a.prob_beats_control) && `P(beats control) ${pct(a.prob_beats_control, 1)}`,
        isNum(a.expected_loss) && `expected loss ${u.size(a.expected_loss)} if shipped`,
        isNum(a.expected_loss_control) && `${u.size(a.expected_loss_control)} if control is kept`,
      ]),
  },
  {
    label: 'Mann–Whitney U test',
    hint: 'ranks of per-unit values; robust to outliers',
    keys: ['mann_whitney'],
    cell: (l) =>
      analysis(l, 'mann_whitney', (a) => [
        pPart(a.p_value),
        isNum(a.cliffs_delta) && `Cliff’s δ ${signed(a.cliffs_delta, 3)}`,
        isNum(a.u) && `U = ${num(a.u)}`,
        isNum(a.z) && `z = ${num(a.z, 3)}`,
      ]),
  },
  {
    label: 'Effect size',
    hint: 'difference of means in pooled standard deviations',
    keys: ['effect_size'],
    cell: (l) => analysis(l, 'effect_size', (a) => [isNum(a.cohens_d) && `Cohen’s d ${signed(a.cohens_d, 3)}`, isNum(a.hedges_g) && `Hedges’ g ${signed(a.hedges_g, 3)}`]),
  },
  {
    label: 'Bootstrap',
    hint: 'interval of the difference without a normal approximation',
    keys: ['bootstrap'],
    cell: (l, u) =>
      analysis(l, 'bootstrap', (a) => [
        interval(a.ci_low, a.ci_high, u.d),
        isNum(a.replicates) && `${int(a.replicates)} replicates${isNum(a.blocks) ? ` over ${int(a.blocks)} buckets` : ''}`,
      ]),
  },
  {
    label: 'CUPED',
    hint: 'lift adjusted for each unit’s pre-exposure value',
    keys: ['cuped'],
    cell: (l, u) =>
      analysis(l, 'cuped', (a) => [
        isNum(a.abs_lift) && `lift ${u.d(a.abs_lift)}`,
        interval(a.ci_low, a.ci_high, u.d),
        pPart(a.p_value),
        isNum(a.variance_reduction) && `variance ${a.variance_reduction >= 0 ? 'reduced' : 'increased'} by ${pct(Math.abs(a.variance_reduction), 1)}`,
        isNum(a.theta) && `θ = ${num(a.theta, 3)}`,
        a.covariate !== undefined && `covariate: ${methodName(a.covariate)}`,
      ]),
  },
  {
    label: 'Contingency-table test',
    hint: 'Fisher’s exact test when an expected cell count is below 5',
    keys: ['table_test'],
    cell: (l) =>
      analysis(l, 'table_test', (a) => [
        // Fisher's statistic is the sample odds ratio; the chi-square tests' is χ².
        typeof a.test === 'string' && testName(a.test) + (isNum(a.statistic) ? (a.test === 'fisher' ? `, odds ratio ${num(a.statistic, 3)}` : `, χ² = ${num(a.statistic, 3)}`) : ''),
        pPart(a.p_value),
        isNum(a.min_expected) && `smallest expected cell ${num(a.min_expected, 2)}`,
      ]),
  },
];

/** Unknown fields of a lift row, nested objects flattened one level (`bayes.prob_better`). */
function flatExtras(l: Lift): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(l)) {
    if (KNOWN_LIFT.has(k) || v === null || v === undefined) continue;
    if (typeof v === 'object' && !Array.isArray(v)) {
      for (const [sub, x] of Object.entries(v as Record<string, unknown>)) {
        if (x !== null && typeof x !== 'object') out[`${k}.${sub}`] = x;
      }
    } else if (!Array.isArray(v)) out[k] = v;
  }
  return out;
}

function showExtra(key: string, x: unknown): string {
  if (typeof x === 'number') {
    if (/p_?value|p_adj|adjusted/i.test(key)) return pValue(x);
    if (/prob|probability|chance/i.test(key) && x >= 0 && x <= 1) return pct(x, 1);
    return num(x);
  }
  if (x === undefined || x === null) return '–';
  return String(x);
}

type MetricChoice = { name: string; kind: 'mean' | 'rate' };

function defaultInterval(exp: Experiment): string {
  const start = exp.started_at ? Date.parse(exp.started_at) : Date.now();
  const age = Date.now() - start;
  return age < 6 * 3600e3 ? 'minute' : age < 7 * 86400e3 ? 'hour' : 'day';
}

function CumulativeLift({ exp, doc, metrics, total }: { exp: Experiment; doc: ResultsDoc; metrics: MetricChoice[]; total: number }) {
  const [interval, setInterval] = useState(() => defaultInterval(exp));
  const [metric, setMetric] = useState<string>('');
  const [ts, setTs] = useState<Timeseries | null>(null);
  const [state, setState] = useState<'idle' | 'loading' | 'unavailable' | 'error'>('idle');
  const [err, setErr] = useState('');
  const [tick, setTick] = useState(0);
  const lastAt = useRef(0);
  const chosen = metrics.find((m) => `${m.kind}:${m.name}` === metric) ?? metrics[0];

  // As results move, refetch at most every 5 s, always ending with the latest state.
  const seenTotal = useRef(total);
  useEffect(() => {
    if (seenTotal.current === total) return;
    seenTotal.current = total;
    const wait = Math.max(0, lastAt.current + 5000 - Date.now());
    const t = window.setTimeout(() => setTick((n) => n + 1), wait);
    return () => window.clearTimeout(t);
  }, [total]);

  useEffect(() => {
    if (state === 'unavailable') return;
    lastAt.current = Date.now();
    let live = true;
    if (!ts) setState('loading');
    api
      .timeseries(exp.id, interval)
      .then((r) => {
        if (!live) return;
        setTs(r);
        setState('idle');
      })
      .catch((e: unknown) => {
        if (!live) return;
        if (e instanceof ApiError && (e.status === 404 || e.status === 405)) setState('unavailable');
        else {
          setState('error');
          setErr(e instanceof Error ? e.message : String(e));
        }
      });
    return () => {
      live = false;
    };
  }, [interval, tick]);

  const control = doc.control || doc.variants[0]?.key;
  const series: Series[] = useMemo(() => {
    if (!ts || !chosen || !Array.isArray(ts.points)) return [];
    const value = (p: Timeseries['points'][number], key: string): number | null => {
      const v = p.variants?.[key];
      if (!v) return null;
      const x = chosen.kind === 'mean' ? v.metrics?.[chosen.name]?.mean : v.conversions?.[chosen.name]?.rate;
      return isNum(x) ? x : null;
    };
    return doc.variants
      .map((v, i) => ({ v, i }))
      .filter(({ v }) => v.key !== control)
      .map(({ v, i }) => ({
        label: v.key,
        color: variantColor(i),
        points: ts.points.map((p) => {
          const c = value(p, control);
          const t = value(p, v.key);
          return { x: Date.parse(p.t), y: c !== null && t !== null && c !== 0 ? (t - c) / Math.abs(c) : null };
        }),
      }));
  }, [ts, chosen?.name, chosen?.kind, doc]);
  const hasPoints = series.some((s) => s.points.some((p) => p.y !== null));
  const xs = ts?.points?.map((p) => Date.parse(p.t)) ?? [];
  const span = xs.length ? Math.max(...xs) - Math.min(...xs) : 0;

  return (
    <section class="card" aria-labelledby="ts-title">
      <div class="card-head">
        <h2 id="ts-title">Cumulative lift over time</h2>
        <div class="inline-fields push-right">
          {metrics.length > 0 && (
            <label>
              Metric{' '}
              <select value={chosen ? `${chosen.kind}:${chosen.name}` : ''} onChange={(e) => setMetric(e.currentTarget.value)}>
                {metrics.map((m) => (
                  <option key={`${m.kind}:${m.name}`} value={`${m.kind}:${m.name}`}>
                    {m.name}
                    {m.kind === 'rate' ? ' (rate)' : ''}
                  </option>
                ))}
              </select>
            </label>
          )}
          <label>
            Interval{' '}
            <select value={interval} onChange={(e) => setInterval(e.currentTarget.value)} disabled={state === 'unavailable'}>
              <option value="minute">minute</option>
              <option value="hour">hour</option>
              <option value="day">day</option>
            </select>
          </label>
        </div>
      </div>
      {state === 'unavailable' ? (
        <p class="muted" data-testid="timeseries-unavailable">
          This control plane does not serve time series yet (<code>GET …/timeseries</code>).
        </p>
      ) : state === 'error' ? (
        <Alert kind="warning">Could not load the time series: {err}</Alert>
      ) : state === 'loading' && !ts ? (
        <Spinner label="Loading time series…" />
      ) : !metrics.length ? (
        <p class="muted">The chart appears once metrics or conversions arrive.</p>
      ) : !hasPoints ? (
        <p class="muted">Not enough data over time yet.</p>
      ) : (
        <>
          <LiftSeries series={series} metric={chosen?.name ?? ''} spanMs={span} />
          <details class="small">
            <summary>Show the numbers</summary>
            <div class="table-wrap">
              <table class="table compact">
                <thead>
                  <tr>
                    <th scope="col">Bucket</th>
                    {series.map((s) => (
                      <th scope="col" class="num" key={s.label}>
                        {s.label}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {(ts?.points ?? []).map((p, j) => (
                    <tr key={p.t}>
                      <td class="nowrap">{new Date(p.t).toLocaleString('en-GB')}</td>
                      {series.map((s) => (
                        <td class="num" key={s.label}>
                          {signedPct(s.points[j]?.y, 2)}
                        </td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </details>
        </>
      )}
    </section>
  );
}

/** Win probabilities from the results document (`bandit`) or `GET .../bandit` for bandit experiments. */
function Bandit({ exp, doc }: { exp: Experiment; doc: ResultsDoc }) {
  const embedded = doc.bandit && typeof doc.bandit === 'object' ? (doc.bandit as BanditSnapshot) : null;
  const [fetched, setFetched] = useState<BanditSnapshot | null>(null);
  const [unavailable, setUnavailable] = useState(false);
  const last = useRef(0);
  useEffect(() => {
    if (embedded || exp.type !== 'bandit' || unavailable) return;
    if (Date.now() - last.current < 3000) return;
    last.current = Date.now();
    api
      .bandit(exp.id)
      .then(setFetched)
      .catch((e) => {
        if (e instanceof ApiError && (e.status === 404 || e.status === 405 || e.status === 422 || e.status === 409)) setUnavailable(true);
      });
  }, [doc]);
  const b = embedded ?? fetched;
  // Older control planes send no history: the chart just stays away.
  const history = b?.weight_history ?? [];
  // Win probabilities may also sit on each variant of the results document.
  const perVariant = doc.variants.filter((v) => isNum(v.win_probability)).map((v) => ({ key: v.key, p: v.win_probability as number }));
  const arms = b?.variants?.filter((v) => isNum(v.win_probability)).map((v) => ({ key: v.key, p: v.win_probability as number })) ?? perVariant;
  // Only the columns the snapshot has.
  const columns = (
    [
      { field: 'exposures', label: 'Exposed' },
      { field: 'mean', label: b?.metric?.kind === 'proportion' ? 'Rate' : 'Mean' },
      { field: 'weight', label: 'Serving' },
      { field: 'proposed_weight', label: 'Proposed' },
    ] as const
  ).filter((c) => b?.variants?.some((v) => isNum(v[c.field])));
  if (!arms.length) {
    if (exp.type === 'bandit' && unavailable)
      return (
        <section class="card" aria-labelledby="bandit-title">
          <h2 id="bandit-title">Bandit</h2>
          <p class="muted">This control plane does not report win probabilities yet.</p>
        </section>
      );
    return null;
  }
  return (
    <section class="card" aria-labelledby="bandit-title" data-testid="bandit">
      <div class="card-head">
        <h2 id="bandit-title">Bandit: probability of being best</h2>
        {b?.converged !== undefined && <span class={`badge ${b.converged ? 'badge-running' : 'badge-draft'} push-right`}>{b.converged ? 'CONVERGED' : 'EXPLORING'}</span>}
      </div>
      {b?.metric && (
        <p class="muted" data-testid="bandit-reward">
          Reward: <code>{b.metric.name}</code> ({b.metric.kind === 'proportion' ? 'conversion rate' : 'mean'}, {b.metric.direction === 'decrease' ? 'lower' : 'higher'} is better)
          {isNum(b.converged_at) && <> · converged once an arm is best with probability ≥ {pct(b.converged_at, 0)}</>}
        </p>
      )}
      {b?.note && <p class="muted">{b.note}</p>}
      {doc.note && (
        <p class="muted" data-testid="results-note">
          {String(doc.note)}
        </p>
      )}
      {b?.policy && (
        <p class="muted" data-testid="bandit-policy">
          Policy: <code>{b.policy.policy}</code> · reweighted every {b.policy.reweight_every_seconds} s · floor {pct(b.policy.floor, 0)} · at least{' '}
          {b.policy.min_units_per_arm} units per arm first · now <strong>{(b.stage ?? '').replace('_', ' ')}</strong>
          {isNum(b.weights_version) && <> · weight version {b.weights_version}</>}
        </p>
      )}
      {b?.top_variant && (
        <p>
          Leading arm: <code data-testid="bandit-top">{b.top_variant}</code>
          {b.regret && (
            <span class="muted" data-testid="bandit-regret">
              {' '}
              · regret so far: {num(b.regret.expected)} {b.metric?.kind === 'proportion' ? 'conversions' : 'reward'} ({num(b.regret.per_unit)} per unit) against always serving{' '}
              {b.regret.best_variant}
            </span>
          )}
        </p>
      )}
      <div class="split split-even">
        <WinProbabilityBars arms={arms} />
        <div class="table-wrap">
          <table class="table compact">
            <thead>
              <tr>
                <th scope="col">Arm</th>
                <th scope="col" class="num" title="Probability of being the best arm">
                  P(best)
                </th>
                {columns.map((c) => (
                  <th scope="col" class="num" key={c.field}>
                    {c.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {arms.map((a) => {
                const bv = b?.variants?.find((v) => v.key === a.key);
                return (
                  <tr key={a.key} data-testid={`bandit-arm-${a.key}`}>
                    <th scope="row" class="mono">
                      {a.key}
                    </th>
                    <td class="num">{pct(a.p, 1)}</td>
                    {columns.map((c) => (
                      <td class="num" key={c.field}>
                        {c.field === 'mean' ? (b?.metric?.kind === 'proportion' ? pct(bv?.mean, 2) : num(bv?.mean)) : c.field === 'exposures' ? int(bv?.exposures) : pct(bv?.[c.field], 1)}
                      </td>
                    ))}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </div>
      {history.length > 0 && (
        <>
          <h3>Weights served, version by version</h3>
          <WeightHistory
            arms={(b?.variants ?? []).map((v) => v.key)}
            versions={[
              // From the launch's weights, step by step, up to now.
              ...(exp.started_at ? [{ at: Date.parse(exp.started_at), weights: history[0].previous }] : []),
              ...history.map((h) => ({ at: Date.parse(h.at), weights: h.weights })),
              { at: Math.max(Date.now(), Date.parse(history[history.length - 1].at)), weights: history[history.length - 1].weights },
            ]}
          />
        </>
      )}
    </section>
  );
}

/** `bayesian[]` of the results document: per metric, P(this arm is best of all arms). */
type ProbBestEntry = { metric: string; kind: string; prob_best?: Record<string, number> | null; note?: string | null };

function ProbBest({ doc }: { doc: ResultsDoc }) {
  const entries = Array.isArray(doc.bayesian) ? (doc.bayesian as ProbBestEntry[]).filter((b) => b && typeof b.metric === 'string') : [];
  if (!entries.length) return null;
  const order = doc.variants.map((v) => v.key);
  return (
    <section class="card" aria-labelledby="pbest-title" data-testid="prob-best">
      <h2 id="pbest-title">Probability of being best</h2>
      <p class="hint">
        Bayesian: the chance that each of the {order.length} variants has the highest true mean or rate, given the data and the priors below. It compares all arms at
        once, not each with control; where lower is better, the best arm is the one with the smallest probability.
        {doc.bandit ? ' These pool every unit; the bandit panel’s probabilities weigh each period of weights and are the ones its policy uses.' : ''}
      </p>
      <div class="pbest-grid">
        {entries.map((b) => {
          const isRate = b.kind === 'proportion';
          const p = b.prob_best && typeof b.prob_best === 'object' ? b.prob_best : null;
          const keys = p ? [...order.filter((k) => k in p), ...Object.keys(p).filter((k) => !order.includes(k))] : [];
          return (
            <div key={`${b.kind}\u0000${b.metric}`} data-testid={`prob-best-${b.metric}`}>
              <h3>
                {b.metric} <span class="muted small">({isRate ? 'conversion rate' : 'mean per unit'})</span>
              </h3>
              {!p ? (
                <p class="muted" data-testid={`prob-best-${b.metric}-note`}>
                  {b.note ? sentence(b.note) : 'Not computable yet.'}
                </p>
              ) : (
                <table class="table compact">
                  <caption class="sr-only">Probability that each variant is best for {b.metric}</caption>
                  <thead>
                    <tr>
                      <th scope="col">Variant</th>
                      <th scope="col" class="num">
                        P(best)
                      </th>
                      <th scope="col" class="pbar-cell">
                        <span class="sr-only">Bar</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {keys.map((k, j) => {
                      const color = variantColor(order.includes(k) ? order.indexOf(k) : j);
                      const x = p[k];
                      return (
                        <tr key={k} data-testid={`prob-best-${b.metric}-${k}`}>
                          <th scope="row" class="mono">
                            <span class="swatch" style={{ background: color }} aria-hidden="true" />
                            {k}
                            {k === doc.control && <span class="tag">control</span>}
                          </th>
                          <td class="num">{pct(x, 1)}</td>
                          <td class="pbar-cell">
                            <span class="pbar" aria-hidden="true">
                              <span style={{ width: `${isNum(x) ? Math.min(1, Math.max(0, x)) * 100 : 0}%`, background: color }} />
                            </span>
                          </td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              )}
            </div>
          );
        })}
      </div>
    </section>
  );
}

function sentence(s: string): string {
  const t = s.trim();
  return t ? t[0].toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.') : t;
}

/** `segments[]` (a readout requested with `?segment=<attribute>`): the lifts per attribute value. */
type SegmentEntry = { attribute: string; value: string; results: ResultsDoc };

function Segments({ doc }: { doc: ResultsDoc }) {
  const segs = Array.isArray(doc.segments) ? (doc.segments as SegmentEntry[]).filter((s) => s && s.results && typeof s.results === 'object') : [];
  if (!segs.length) return null;
  const id = (l: Lift) => `${l.metric}\u0000${l.kind}\u0000${l.variant}`;
  const cols = new Map<string, Lift>();
  for (const l of [...(doc.lift ?? []), ...segs.flatMap((s) => s.results.lift ?? [])]) if (!cols.has(id(l))) cols.set(id(l), l);
  return (
    <section class="card" aria-labelledby="segments-title" data-testid="segments">
      <h2 id="segments-title">By {segs[0].attribute}</h2>
      <p class="hint">The same readout for each value of the attribute (the most common values): relative lift against control and its fixed-horizon p-value.</p>
      <div class="table-wrap">
        <table class="table compact">
          <thead>
            <tr>
              <th scope="col">{segs[0].attribute}</th>
              <th scope="col" class="num">
                Exposed
              </th>
              {[...cols.values()].map((l) => (
                <th scope="col" class="num" key={id(l)}>
                  {l.metric} · {l.variant}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {segs.map((s) => (
              <tr key={`${s.attribute}\u0000${s.value}`}>
                <th scope="row">{s.value}</th>
                <td class="num">{int((s.results.variants ?? []).reduce((n, v) => n + (Number(v.exposures) || 0), 0))}</td>
                {[...cols.keys()].map((k) => {
                  const l = (s.results.lift ?? []).find((x) => id(x) === k);
                  return (
                    <td class="num nowrap" key={k}>
                      {!l ? '–' : l.note || !isNum(l.rel_lift) ? <span class="muted">not enough data</span> : `${signedPct(l.rel_lift)} (${pIs(l.p_value)})`}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

type Settings = { beta_prior?: { alpha?: number; beta?: number } | null; mean_prior_sd?: number | null; sequential_tuning_n?: number | null; bootstrap_replicates?: number | null };
type Filter = { from?: string | null; to?: string | null; segment?: [string, string] | null };

const isObject = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);

function settingsSentence(s: Settings): string {
  const parts: string[] = [];
  const bp = s.beta_prior;
  if (bp && isNum(bp.alpha) && isNum(bp.beta)) parts.push(`Beta(${num(bp.alpha)}, ${num(bp.beta)}) prior on conversion rates`);
  // No prior sd means a flat prior: the posterior of a difference of means is its likelihood.
  if ('mean_prior_sd' in s) parts.push(isNum(s.mean_prior_sd) ? `normal prior with standard deviation ${num(s.mean_prior_sd)} on differences of means` : 'flat prior on differences of means');
  if (isNum(s.sequential_tuning_n)) parts.push(`always-valid intervals tuned to ${int(s.sequential_tuning_n)} units`);
  if (isNum(s.bootstrap_replicates)) parts.push(`${int(s.bootstrap_replicates)} bootstrap replicates`);
  return parts.length ? sentence(parts.join('; ')) : '';
}

function filterSentence(f: Filter): string {
  const from = typeof f.from === 'string' && f.from ? f.from : null;
  const to = typeof f.to === 'string' && f.to ? f.to : null;
  const seg = Array.isArray(f.segment) && f.segment.length === 2 ? f.segment : null;
  if (!from && !to && !seg) return 'Covers every exposed unit: no date range or segment filter.';
  const when = from && to ? `first exposed from ${dateTime(from)} up to ${dateTime(to)}` : from ? `first exposed since ${dateTime(from)}` : to ? `first exposed before ${dateTime(to)}` : '';
  const who = seg ? `whose ${seg[0]} is “${seg[1]}”` : '';
  return `Covers only units ${[when, who].filter(Boolean).join(' and ')}.`;
}

/** How the numbers above were made (filter, priors, set-aside events), then anything unknown. */
function AboutReadout({ doc, alpha }: { doc: ResultsDoc; alpha: number }) {
  const unknown = Object.entries(doc).filter(([k, v]) => !KNOWN_TOP.has(k) && v !== null && v !== undefined);
  const settings = isObject(doc.settings) ? settingsSentence(doc.settings as Settings) : '';
  const filter = isObject(doc.filter) ? filterSentence(doc.filter as Filter) : '';
  const q = isNum(doc.quarantined_events) ? doc.quarantined_events : null;
  const computed = typeof doc.generated_at === 'string' ? doc.generated_at : null;
  if (!settings && !filter && q === null && !unknown.length) return null;
  return (
    <section class="card" aria-labelledby="extras-title" data-testid="extras">
      <h2 id="extras-title">About this readout</h2>
      <ul class="facts">
        {filter && <li data-testid="readout-filter">{filter}</li>}
        {settings && (
          <li data-testid="readout-settings">
            Intervals at {pct(1 - alpha, 0)}, tests at α = {alpha}. {settings}
          </li>
        )}
        {q !== null && (
          <li data-testid="readout-quarantined" class={q > 0 ? 'warn-text' : ''}>
            {q === 0
              ? 'No events were set aside: every event of this experiment the aggregator received is counted.'
              : `${int(q)} ${q === 1 ? 'event' : 'events'} of this experiment could not be applied and ${q === 1 ? 'was' : 'were'} set aside (quarantined); ${q === 1 ? 'it is' : 'they are'} not in these numbers.`}
          </li>
        )}
        {computed && (
          <li class="muted">
            Computed {dateTime(computed)}
            {isNum(doc.version) ? ` from version ${doc.version} of the experiment’s configuration` : ''}.
          </li>
        )}
      </ul>
      {unknown.length > 0 && (
        <>
          <h3>Other analyses</h3>
          {unknown.map(([k, v]) => (
            <details key={k} open={unknown.length <= 2}>
              <summary>{humanize(k)}</summary>
              <ValueView value={v} />
            </details>
          ))}
        </>
      )}
    </section>
  );
}

/** Fields this console does not know: a table for a list of records, a definition list otherwise. */
function ValueView({ value }: { value: unknown }) {
  if (Array.isArray(value) && value.length && value.every(isObject)) {
    const cols = unique(value.flatMap((r) => Object.keys(r)));
    return (
      <div class="table-wrap">
        <table class="table compact">
          <thead>
            <tr>
              {cols.map((c) => (
                <th scope="col" key={c}>
                  {humanize(c)}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {value.map((r, i) => (
              <tr key={i}>
                {cols.map((c) => (
                  <td key={c} class={typeof r[c] === 'number' ? 'num' : ''}>
                    {inline(r[c])}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    );
  }
  if (isObject(value)) {
    return (
      <dl class="kv">
        {Object.entries(value).map(([k, x]) => (
          <div key={k} class={isObject(x) || Array.isArray(x) ? 'wide' : ''}>
            <dt>{humanize(k)}</dt>
            <dd>{isObject(x) ? <ValueView value={x} /> : inline(x)}</dd>
          </div>
        ))}
      </dl>
    );
  }
  return <p>{inline(value)}</p>;
}

/** A value on one line: numbers formatted, lists comma-separated, records as `key value` pairs. */
function inline(x: unknown): string {
  if (x === null || x === undefined) return '–';
  if (typeof x === 'number') return num(x);
  if (typeof x === 'boolean') return x ? 'yes' : 'no';
  if (Array.isArray(x)) return x.length ? x.map(inline).join(', ') : 'none';
  if (isObject(x)) return Object.entries(x).map(([k, v]) => `${humanize(k)} ${inline(v)}`).join(' · ');
  return String(x);
}
