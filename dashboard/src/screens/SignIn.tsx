// Sign-in with an admin (or read-only) API token. The token lives in this tab's sessionStorage
// only: closing the tab signs out, and it never appears in a URL.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, signIn } from '../api';
import { Alert } from '../components';

export function SignIn({ expired }: { expired: boolean }) {
  const [token, setToken] = useState('');
  const [actor, setActor] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    document.title = 'Sign in · Litmus Edge';
    input.current?.focus();
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!token.trim()) {
      setError('Paste an API token.');
      input.current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await signIn(token.trim(), actor);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
      input.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="signin">
      <form class="card signin-card" onSubmit={submit} noValidate>
        <div class="brand brand-lg" aria-hidden="true">
          <span class="logo" /> Litmus Edge
        </div>
        <h1>Sign in to the console</h1>
        {expired && !error && <Alert kind="info">Your session ended or the token was refused. Sign in again.</Alert>}
        <div class="field">
          <label for="token">API token</label>
          <input
            ref={input}
            id="token"
            type="password"
            autocomplete="current-password"
            class="mono"
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
            aria-invalid={error ? 'true' : undefined}
            aria-describedby={`token-hint${error ? ' token-error' : ''}`}
          />
          <p class="hint" id="token-hint">
            One of the control plane’s <code>ADMIN_API_TOKENS</code> (<code>make run</code> prints it). Kept for this tab only.
          </p>
          {error && (
            <p class="field-error" id="token-error" role="alert">
              {error}
            </p>
          )}
        </div>
        <div class="field">
          <label for="actor">Your name (for the audit log)</label>
          <input id="actor" value={actor} onInput={(e) => setActor(e.currentTarget.value)} placeholder="e.g. ds.alice" autocomplete="username" />
        </div>
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
