// /alerts: the feed of what the watch job found and did (stopping rules, safe rollout steps,
// sample-ratio mismatches, guardrails, anomalies, ready to call, underpowered), newest first.
// Filters live in the URL query (?kind=rule&unacknowledged=1&experiment=checkout-v2) so a view
// can be shared; "Load more" follows the API's X-Next-Cursor.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, type AlertEntry } from '../api';
import { ALERT_KINDS, AlertItem, useWhoAmI } from '../alerts';
import { Alert, LoadError, Spinner, useLoad } from '../components';
import { navigate, useLocation } from '../router';

export function Alerts() {
  const loc = useLocation();
  const kind = loc.query.get('kind') ?? '';
  const unacked = loc.query.get('unacknowledged') === '1';
  const experiment = loc.query.get('experiment') ?? '';
  const [text, setText] = useState(experiment);
  const who = useWhoAmI();
  const canWrite = who ? who.can_write : undefined;

  // Each answer remembers the filters it answers (as the experiments list does).
  const filter = `${kind}|${unacked ? 1 : 0}|${experiment}`;
  const { data: loaded, error, loading } = useLoad(
    () => api.alerts({ kind: kind || undefined, acknowledged: unacked ? false : undefined, experiment: experiment || undefined }).then((p) => ({ ...p, filter })),
    [filter],
  );
  const [more, setMore] = useState<{ after: typeof loaded; items: AlertEntry[]; next: string | null } | null>(null);
  const [moreBusy, setMoreBusy] = useState(false);
  const [moreError, setMoreError] = useState<ApiError | null>(null);
  // Acknowledged here: kept in place (not dropped from an "unacknowledged" view under the cursor).
  const [changed, setChanged] = useState<Record<number, AlertEntry>>({});
  const extra = more && more.after === loaded ? more : null;
  const items = loaded && (extra ? [...loaded.items, ...extra.items] : loaded.items).map((a) => changed[a.id] ?? a);
  const next = extra ? extra.next : loaded?.next ?? null;

  useEffect(() => {
    document.title = 'Alerts · Litmus Edge';
  }, []);

  const go = (k: string, u: boolean, e: string) => {
    const p = new URLSearchParams();
    if (k) p.set('kind', k);
    if (u) p.set('unacknowledged', '1');
    if (e) p.set('experiment', e);
    const qs = p.toString();
    navigate(`/alerts${qs ? '?' + qs : ''}`, { replace: true });
  };

  useEffect(() => {
    if (experiment !== text.trim()) setText(experiment);
  }, [experiment]);

  // The experiment filter applies half a second after the last key (a key typed halfway is a 404).
  useEffect(() => {
    if (text.trim() === experiment) return;
    const t = window.setTimeout(() => go(kind, unacked, text.trim()), 500);
    return () => window.clearTimeout(t);
  }, [text]);

  const loadMore = async () => {
    if (!next || !loaded) return;
    setMoreBusy(true);
    setMoreError(null);
    try {
      const page = await api.alerts({ kind: kind || undefined, acknowledged: unacked ? false : undefined, experiment: experiment || undefined }, next);
      setMore({ after: loaded, items: [...(extra?.items ?? []), ...page.items], next: page.next });
    } catch (e) {
      setMoreError(e instanceof ApiError ? e : new ApiError(0, 'client', String(e)));
    } finally {
      setMoreBusy(false);
    }
  };

  const filtered = !!(kind || unacked || experiment);
  return (
    <>
      <header class="page-header">
        <div class="title-row">
          <h1 tabIndex={-1}>Alerts</h1>
        </div>
        <p class="muted">
          What the control plane’s watch job found in running experiments, and what it did: stopping rules, safe rollout steps, sample-ratio
          mismatches, guardrails, exposure anomalies, experiments ready to call and underpowered ones.
        </p>
      </header>
      <form
        class="toolbar filters"
        role="search"
        aria-label="Filter alerts"
        onSubmit={(e) => {
          e.preventDefault();
          go(kind, unacked, text.trim());
        }}
      >
        <div class="field">
          <label for="alert-kind">Kind</label>
          <select id="alert-kind" value={kind} onChange={(e) => go(e.currentTarget.value, unacked, text.trim())}>
            <option value="">All kinds</option>
            {ALERT_KINDS.map(([k, label]) => (
              <option key={k} value={k}>
                {label}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="alert-experiment">Experiment key or id</label>
          <input id="alert-experiment" type="search" class="mono" placeholder="e.g. checkout-v2" value={text} onInput={(e) => setText(e.currentTarget.value)} autocomplete="off" spellcheck={false} />
        </div>
        <div class="field check">
          <input id="alert-unacked" type="checkbox" checked={unacked} onChange={(e) => go(kind, e.currentTarget.checked, text.trim())} />
          <label for="alert-unacked">Unacknowledged only</label>
        </div>
        {filtered && (
          <button type="button" class="btn btn-small btn-ghost" onClick={() => go('', false, '')}>
            Clear filters
          </button>
        )}
      </form>
      {who && !who.can_write && (
        <Alert kind="info" testId="read-only">
          Signed in with a read-only token: you can read the feed, but not acknowledge alerts.
        </Alert>
      )}
      {error &&
        (error.status === 404 && experiment ? (
          <Alert title="No such experiment">
            No experiment has the key or id <code>{experiment}</code>.
          </Alert>
        ) : (
          <LoadError error={error} />
        ))}
      {loading && !items && <Spinner />}
      {items && items.length === 0 && !error && (
        <div class="empty card" data-testid="alerts-empty" data-filter={loaded?.filter}>
          <p>{filtered ? 'No alerts match these filters.' : 'No alerts yet. Running experiments are watched; what the watch job finds shows up here.'}</p>
        </div>
      )}
      {items && items.length > 0 && !error && (
        <ul class="feed" aria-busy={loading} aria-label={`${items.length} alert${items.length === 1 ? '' : 's'}, newest first`} data-testid="alerts-feed" data-filter={loaded?.filter}>
          {items.map((a) => (
            <AlertItem key={a.id} alert={a} canWrite={canWrite} showExperiment onChange={(u) => setChanged((c) => ({ ...c, [u.id]: u }))} />
          ))}
        </ul>
      )}
      {!loading && items && items.length > 0 && !error && (
        <div class="list-footer">
          <p class="muted small" data-testid="alerts-shown">
            {items.length} shown{next ? ', more to load' : ''}
          </p>
          {next && (
            <button type="button" class="btn" onClick={() => void loadMore()} disabled={moreBusy} data-testid="alerts-load-more">
              {moreBusy ? 'Loading…' : 'Load more'}
            </button>
          )}
        </div>
      )}
      {moreError && <LoadError error={moreError} />}
    </>
  );
}
