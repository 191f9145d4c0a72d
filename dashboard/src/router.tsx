// A small history-API router: real paths (/experiments/{id}/results), which the control plane
// answers with index.html, so every screen can be bookmarked and reloaded.
import type { AnchorHTMLAttributes, ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

type Listener = () => void;
const listeners = new Set<Listener>();
const notify = () => listeners.forEach((fn) => fn());
window.addEventListener('popstate', notify);

export function navigate(to: string, opts: { replace?: boolean } = {}) {
  const current = location.pathname + location.search;
  if (to === current) return;
  if (opts.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  notify();
}

export interface Loc {
  path: string;
  query: URLSearchParams;
}

export function useLocation(): Loc {
  const [, force] = useState(0);
  useEffect(() => {
    const fn = () => force((n) => n + 1);
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
    };
  }, []);
  return { path: location.pathname.replace(/\/+$/, '') || '/', query: new URLSearchParams(location.search) };
}

export type Route =
  | { name: 'list' }
  | { name: 'new' }
  | { name: 'detail'; id: string }
  | { name: 'results'; id: string }
  | { name: 'settings'; id: string }
  | { name: 'alerts' }
  | { name: 'keys' }
  | { name: 'notfound' };

export function match(path: string): Route {
  if (path === '/' || path === '/experiments') return { name: 'list' };
  if (path === '/experiments/new') return { name: 'new' };
  if (path === '/alerts') return { name: 'alerts' };
  if (path === '/keys') return { name: 'keys' };
  const m = /^\/experiments\/([^/]+)(?:\/(results|settings))?$/.exec(path);
  if (m) {
    const id = decodeURIComponent(m[1]);
    if (m[2] === 'results') return { name: 'results', id };
    if (m[2] === 'settings') return { name: 'settings', id };
    return { name: 'detail', id };
  }
  return { name: 'notfound' };
}

export function experimentPath(id: string, tab?: 'results' | 'settings') {
  return `/experiments/${encodeURIComponent(id)}${tab ? '/' + tab : ''}`;
}

type LinkProps = AnchorHTMLAttributes<HTMLAnchorElement> & { href: string; children?: ComponentChildren };

/** An ordinary link (middle-click and copy work) that navigates in-app on a plain click. */
export function Link({ href, children, onClick, ...rest }: LinkProps) {
  return (
    <a
      href={href}
      onClick={(e) => {
        if (onClick) (onClick as (e: MouseEvent) => void)(e);
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
      {...rest}
    >
      {children}
    </a>
  );
}
