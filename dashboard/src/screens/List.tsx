// /experiments: every experiment, filtered by status and searched by text; both live in the URL
// query (?status=running&q=price) so a filtered view can be shared. Pages of PAGE_SIZE, newest
// first, and "Load more" for the next one.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, type Experiment } from '../api';
import { Alert, LoadError, Spinner, StatusBadge, useLoad } from '../components';
import { takeFlash } from '../flash';
import { relative } from '../format';
import { Link, experimentPath, navigate, useLocation } from '../router';

const FILTERS: [string, string][] = [
  ['', 'All'],
  ['draft', 'Draft'],
  ['running', 'Running'],
  ['paused', 'Paused'],
  ['stopped', 'Stopped'],
];

export function List() {
  const loc = useLocation();
  const status = loc.query.get('status') ?? '';
  const q = loc.query.get('q') ?? '';
  const [text, setText] = useState(q);
  // Each answer remembers the filter it answers, so a stale list is never described as the new one.
  const { data: loaded, error, loading } = useLoad(
    () => api.listExperiments(status || undefined, q || undefined).then((page) => ({ rows: page.items, next: page.next, status, q })),
    [status, q],
  );
  // Later pages belong to the first page they follow: a new filter starts over.
  const [more, setMore] = useState<{ after: typeof loaded; rows: Experiment[]; next: string | null } | null>(null);
  const [moreBusy, setMoreBusy] = useState(false);
  const [moreError, setMoreError] = useState<ApiError | null>(null);
  const [flash] = useState(() => takeFlash());
  const extra = more && more.after === loaded ? more : null;
  const data = loaded && (extra ? [...loaded.rows, ...extra.rows] : loaded.rows);
  const next = extra ? extra.next : loaded?.next ?? null;

  const loadMore = async () => {
    if (!next || !loaded) return;
    setMoreBusy(true);
    setMoreError(null);
    try {
      const page = await api.listExperiments(loaded.status || undefined, loaded.q || undefined, next);
      setMore({ after: loaded, rows: [...(extra?.rows ?? []), ...page.items], next: page.next });
    } catch (e) {
      setMoreError(e instanceof ApiError ? e : new ApiError(0, 'client', String(e)));
    } finally {
      setMoreBusy(false);
    }
  };

  useEffect(() => {
    document.title = 'Experiments · Litmus Edge';
  }, []);

  const go = (s: string, query: string) => {
    const p = new URLSearchParams();
    if (s) p.set('status', s);
    if (query) p.set('q', query);
    const qs = p.toString();
    navigate(`/experiments${qs ? '?' + qs : ''}`, { replace: true });
  };

  // Back/forward changes the query: show it in the box.
  useEffect(() => {
    if (q !== text.trim()) setText(q);
  }, [q]);

  // Search as you type, a quarter-second after the last key.
  useEffect(() => {
    if (text === q) return;
    const t = window.setTimeout(() => go(status, text.trim()), 250);
    return () => window.clearTimeout(t);
  }, [text]);

  return (
    <>
      <header class="page-header">
        <div class="title-row">
          <h1 tabIndex={-1}>Experiments</h1>
          <Link href="/experiments/new" class="btn btn-primary push-right">
            New experiment
          </Link>
        </div>
      </header>
      <div class="toolbar">
        <div class="segmented" role="group" aria-label="Filter by status">
          {FILTERS.map(([value, label]) => (
            <button key={value} type="button" class={status === value ? 'active' : ''} aria-pressed={status === value} onClick={() => go(value, text.trim())}>
              {label}
            </button>
          ))}
        </div>
        <form
          role="search"
          class="search"
          onSubmit={(e) => {
            e.preventDefault();
            go(status, text.trim());
          }}
        >
          <label for="search" class="sr-only">
            Search experiments
          </label>
          <input id="search" type="search" placeholder="Search name, key, team…" value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </form>
      </div>
      {flash && (
        <Alert kind="success" testId="flash">
          {flash}
        </Alert>
      )}
      {error && <LoadError error={error} />}
      {loading && !data && <Spinner />}
      {data && data.length === 0 && (
        <div class="empty card" data-testid="experiments-empty" data-filter={`${loaded?.status ?? ''}|${loaded?.q ?? ''}`}>
          {loaded?.status || loaded?.q ? (
            <p>No experiments match these filters.</p>
          ) : (
            <>
              <p>No experiments yet.</p>
              <p>
                <Link href="/experiments/new" class="btn btn-primary">
                  Create your first experiment
                </Link>
              </p>
            </>
          )}
        </div>
      )}
      {data && data.length > 0 && (
        <div class="table-wrap card flush" aria-busy={loading}>
          <table class="table" data-testid="experiments-table" data-filter={`${loaded?.status ?? ''}|${loaded?.q ?? ''}`}>
            <caption class="sr-only">
              {data.length} experiment{data.length === 1 ? '' : 's'}
              {loaded?.status ? `, ${loaded.status}` : ''}
              {loaded?.q ? `, matching “${loaded.q}”` : ''}
            </caption>
            <thead>
              <tr>
                <th scope="col">Experiment</th>
                <th scope="col">Status</th>
                <th scope="col" class="hide-sm">
                  Owner
                </th>
                <th scope="col" class="hide-sm">
                  Unit
                </th>
                <th scope="col" class="num">
                  Variants
                </th>
                <th scope="col" class="num">
                  Ramp
                </th>
                <th scope="col" class="hide-sm">
                  Updated
                </th>
              </tr>
            </thead>
            <tbody>
              {data.map((e) => (
                <tr key={e.id}>
                  <td>
                    <Link href={experimentPath(e.id)} class="row-link">
                      {e.name}
                    </Link>
                    <div class="muted mono small">{e.key}</div>
                  </td>
                  <td>
                    <StatusBadge status={e.status} />
                  </td>
                  <td class="hide-sm">{e.owner_team || '–'}</td>
                  <td class="hide-sm mono small">{e.unit_type}</td>
                  <td class="num">{e.variants.length}</td>
                  <td class="num">{e.ramp_pct}%</td>
                  <td class="hide-sm" title={e.updated_at}>
                    {relative(e.updated_at)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {!loading && data && data.length > 0 && (
        <div class="list-footer">
          <p class="muted small" data-testid="shown-count">
            {data.length} shown{next ? ', more to load' : ''}
          </p>
          {next && (
            <button type="button" class="btn" onClick={() => void loadMore()} disabled={moreBusy} data-testid="load-more">
              {moreBusy ? 'Loading…' : 'Load more'}
            </button>
          )}
        </div>
      )}
      {moreError && <LoadError error={moreError} />}
      {!data && !loading && !error && <Alert kind="info">Nothing to show.</Alert>}
    </>
  );
}
