// The console's shell: sign-in gate, top bar, router, and focus management between screens.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { getActor, getToken, onAuthChange, signOut } from './api';
import { Link, match, navigate, useLocation } from './router';
import { Alerts } from './screens/Alerts';
import { Detail } from './screens/Detail';
import { Keys } from './screens/Keys';
import { List } from './screens/List';
import { New } from './screens/New';
import { Results } from './screens/Results';
import { Settings } from './screens/Settings';
import { SignIn } from './screens/SignIn';
import './styles.css';

function App() {
  const [signedIn, setSignedIn] = useState(() => !!getToken());
  const [expired, setExpired] = useState(false);
  const loc = useLocation();
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);

  useEffect(
    () =>
      onAuthChange((ok, wasExpired) => {
        setSignedIn(ok);
        setExpired(wasExpired);
      }),
    [],
  );

  useEffect(() => {
    if (loc.path === '/') navigate('/experiments', { replace: true });
  }, [loc.path]);

  // After an in-app navigation, move focus to the new screen's heading (announced by screen readers).
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    window.scrollTo(0, 0);
    const t = window.setTimeout(() => {
      // Unless the user is already typing somewhere on the new screen.
      const active = document.activeElement;
      if (active && active !== document.body && active.matches('input, textarea, select') && active.isConnected) return;
      const h = main.current?.querySelector<HTMLElement>('h1');
      h?.focus({ preventScroll: true });
    }, 0);
    return () => window.clearTimeout(t);
  }, [loc.path]);

  if (!signedIn) return <SignIn expired={expired} />;

  const route = match(loc.path);
  let screen;
  switch (route.name) {
    case 'list':
      screen = <List />;
      break;
    case 'new':
      screen = <New />;
      break;
    case 'detail':
      screen = <Detail key={route.id} id={route.id} />;
      break;
    case 'results':
      screen = <Results key={route.id} id={route.id} />;
      break;
    case 'settings':
      screen = <Settings key={route.id} id={route.id} />;
      break;
    case 'alerts':
      screen = <Alerts />;
      break;
    case 'keys':
      screen = <Keys />;
      break;
    default:
      screen = (
        <>
          <h1 tabIndex={-1}>Page not found</h1>
          <p>
            <Link href="/experiments">Go to experiments</Link>
          </p>
        </>
      );
  }

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <div class="topbar-inner">
          <Link href="/experiments" class="brand" aria-label="Litmus Edge: experiments">
            <span class="logo" aria-hidden="true" /> <span class="brand-text">Litmus Edge</span>
          </Link>
          <nav aria-label="Main" class="mainnav">
            <Link href="/experiments" aria-current={route.name === 'list' ? 'page' : undefined}>
              Experiments
            </Link>
            <Link href="/alerts" aria-current={route.name === 'alerts' ? 'page' : undefined}>
              Alerts
            </Link>
            <Link href="/experiments/new" aria-current={route.name === 'new' ? 'page' : undefined}>
              New
            </Link>
            <Link href="/keys" aria-current={route.name === 'keys' ? 'page' : undefined}>
              Keys
            </Link>
          </nav>
          <div class="who">
            <span class="muted small hide-sm" title="Shown in the audit log">
              {getActor()}
            </span>
            <button type="button" class="btn btn-small btn-ghost-inverse" onClick={() => signOut()}>
              Sign out
            </button>
          </div>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {screen}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
