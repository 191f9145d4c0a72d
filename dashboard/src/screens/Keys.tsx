// /keys: API keys. Create one (its secret is shown once, with a copy button), list them (never a
// secret: the prefix tells them apart), revoke one (refused everywhere within seconds). Admin
// keys only: anyone else sees why not.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, type ApiKey } from '../api';
import { Alert, LoadError, Spinner, useLoad } from '../components';
import { dateTime } from '../format';

const ROLES: { role: ApiKey['role']; what: string }[] = [
  { role: 'read', what: 'reads everything, changes nothing' },
  { role: 'assign', what: 'asks for assignments only (services)' },
  { role: 'ingest', what: 'sends events only (the edge worker)' },
  { role: 'admin', what: 'everything, keys included' },
];

function status(k: ApiKey): string {
  if (k.revoked_at) return 'revoked';
  if (k.expires_at && new Date(k.expires_at) <= new Date()) return 'expired';
  return 'active';
}

export function Keys() {
  const { data: keys, error, loading, reload } = useLoad(() => api.keys(), []);
  const [name, setName] = useState('');
  const [role, setRole] = useState<ApiKey['role']>('read');
  const [expires, setExpires] = useState('');
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<ApiError | null>(null);
  const [created, setCreated] = useState<(ApiKey & { key: string }) | null>(null);
  const [copied, setCopied] = useState(false);

  useEffect(() => {
    document.title = 'API keys · Litmus Edge';
  }, []);

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setFailure(null);
    setCopied(false);
    try {
      const body: { name: string; role: string; expires_at?: string } = { name: name.trim(), role };
      if (expires) body.expires_at = new Date(expires).toISOString();
      setCreated(await api.createKey(body));
      setName('');
      setExpires('');
      await reload();
    } catch (err) {
      setFailure(err instanceof ApiError ? err : new ApiError(0, 'client', String(err)));
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (k: ApiKey) => {
    if (!window.confirm(`Revoke “${k.name}” (${k.prefix})? Requests with it are refused within seconds.`)) return;
    setFailure(null);
    try {
      await api.revokeKey(k.id);
      await reload();
    } catch (err) {
      setFailure(err instanceof ApiError ? err : new ApiError(0, 'client', String(err)));
    }
  };

  const copy = async () => {
    if (!created) return;
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };

  if (error?.status === 403) {
    return (
      <>
        <h1 tabIndex={-1}>API keys</h1>
        <Alert kind="info" title="Admin keys only">Only an admin key can list, create or revoke keys.</Alert>
      </>
    );
  }

  return (
    <>
      <h1 tabIndex={-1}>API keys</h1>
      <form class="card" onSubmit={create} data-testid="key-form">
        <h2>New key</h2>
        <div class="field">
          <label for="key-name">Name (recorded in the audit log for what it changes)</label>
          <input id="key-name" value={name} maxLength={100} required onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field">
          <label for="key-role">Role</label>
          <select id="key-role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value as ApiKey['role'])}>
            {ROLES.map((r) => (
              <option key={r.role} value={r.role}>
                {r.role}: {r.what}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="key-expires">Expires (optional)</label>
          <input id="key-expires" type="datetime-local" value={expires} onInput={(e) => setExpires((e.target as HTMLInputElement).value)} />
        </div>
        <button type="submit" class="btn btn-primary" disabled={busy || !name.trim()}>
          Create key
        </button>
      </form>
      {failure && <Alert title="Not done">{failure.message}</Alert>}
      {created && (
        <Alert kind="success" title={`Key “${created.name}” created`} testId="key-secret">
          <p>Copy it now: it is shown this once and cannot be read again.</p>
          <p>
            <code data-testid="key-secret-value" class="secret">{created.key}</code>{' '}
            <button type="button" class="btn btn-small" onClick={copy}>
              {copied ? 'Copied' : 'Copy'}
            </button>{' '}
            <button type="button" class="btn btn-small" onClick={() => setCreated(null)}>
              Done
            </button>
          </p>
        </Alert>
      )}
      {error && <LoadError error={error} />}
      {loading && !keys && <Spinner />}
      {keys && (
        <div class="table-wrap card flush" aria-busy={loading}>
          <table class="table" data-testid="keys-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col" class="hide-sm">Prefix</th>
                <th scope="col">Status</th>
                <th scope="col" class="hide-sm">Created</th>
                <th scope="col" class="hide-sm">Expires</th>
                <th scope="col" class="hide-sm">Last used</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.length === 0 && (
                <tr>
                  <td colSpan={8} class="muted">
                    No managed keys yet (the env tokens still work).
                  </td>
                </tr>
              )}
              {keys.map((k) => (
                <tr key={k.id} data-key={k.name}>
                  <td>{k.name}</td>
                  <td>{k.role}</td>
                  <td class="hide-sm">
                    <code>{k.prefix}</code>
                  </td>
                  <td data-testid="key-status">{status(k)}</td>
                  <td class="hide-sm">
                    {dateTime(k.created_at)} <span class="muted small">by {k.created_by}</span>
                  </td>
                  <td class="hide-sm">{k.expires_at ? dateTime(k.expires_at) : '—'}</td>
                  <td class="hide-sm">{k.last_used_at ? dateTime(k.last_used_at) : 'never'}</td>
                  <td>
                    {status(k) === 'active' && (
                      <button type="button" class="btn btn-small btn-danger" onClick={() => revoke(k)} aria-label={`Revoke ${k.name}`}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
