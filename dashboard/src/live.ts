// Live results: the WebSocket `GET /api/v1/ws/experiments/{id}/live` when the server offers it
// (the token goes in the first message, never in the URL), polling `GET .../results` every 2 s
// whenever the socket is not open. The socket is retried with back-off while polling.
// Alerts the watch job raises while the page is open come as `{"type":"alert"}` messages; while
// polling, the newest page of the experiment's feed is read alongside the results instead.
import { ApiError, api, getToken, type AlertEntry, type Results } from './api';

export type LiveMode = 'connecting' | 'socket' | 'polling' | 'error';

export interface LiveHandlers {
  onResults(r: Results): void;
  onMode(mode: LiveMode, detail?: string): void;
  onError(e: ApiError): void;
  /** An alert raised after the subscription started (each once, oldest first). */
  onAlert?(a: AlertEntry): void;
}

const POLL_MS = 2000;

export function subscribeResults(id: string, h: LiveHandlers): () => void {
  let closed = false;
  let ws: WebSocket | null = null;
  let socketOpen = false;
  let pollTimer: number | undefined;
  let retryTimer: number | undefined;
  let retryDelay = 5000;
  let inFlight = false;
  // The newest alert id already accounted for: `undefined` until the first look, which only
  // sets it (alerts from before the page opened are the feed's business, not news).
  let lastAlert: number | undefined;
  let alertsMissing = false;

  const alertSeen = (a: AlertEntry) => {
    if (lastAlert !== undefined && a.id <= lastAlert) return;
    lastAlert = a.id;
    h.onAlert?.(a);
  };

  const pollAlerts = async () => {
    if (!h.onAlert || alertsMissing) return;
    try {
      const page = await api.alerts({ experiment: id, limit: 20 });
      if (closed || socketOpen) return;
      const newest = page.items[0]?.id ?? 0;
      if (lastAlert === undefined) lastAlert = newest;
      else for (const a of [...page.items].reverse()) alertSeen(a);
    } catch (e) {
      // A server without the feed: results only.
      if (e instanceof ApiError && e.status === 404) alertsMissing = true;
    }
  };

  const tick = async () => {
    pollTimer = undefined;
    if (closed || socketOpen) return;
    if (document.visibilityState !== 'hidden') {
      inFlight = true;
      try {
        const r = await api.results(id);
        if (closed || socketOpen) return;
        h.onResults(r);
        // Before saying "polling": the first look sets the baseline that later alerts are news against.
        await pollAlerts();
        if (closed || socketOpen) return;
        h.onMode('polling');
      } catch (e) {
        if (closed) return;
        if (e instanceof ApiError) {
          h.onError(e);
          if (e.status === 401 || e.status === 404) return;
          h.onMode('error', e.message);
        }
      } finally {
        inFlight = false;
      }
    }
    if (!closed && !socketOpen) pollTimer = window.setTimeout(tick, POLL_MS);
  };

  const startPolling = () => {
    if (inFlight || pollTimer !== undefined || closed || socketOpen) return;
    void tick();
  };

  const connect = () => {
    retryTimer = undefined;
    if (closed || typeof WebSocket === 'undefined') return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    try {
      ws = new WebSocket(`${proto}//${location.host}/api/v1/ws/experiments/${encodeURIComponent(id)}/live`);
    } catch {
      scheduleRetry();
      return;
    }
    const sock = ws;
    sock.onopen = () => {
      sock.send(JSON.stringify({ type: 'auth', token: getToken() ?? '' }));
    };
    sock.onmessage = (ev) => {
      let msg: { type?: string; data?: unknown; error?: { code?: string; message?: string } };
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (msg.type === 'results' && msg.data) {
        if (!socketOpen) {
          socketOpen = true;
          retryDelay = 5000;
          if (pollTimer) window.clearTimeout(pollTimer);
          pollTimer = undefined;
        }
        h.onMode('socket');
        h.onResults(msg.data as Results);
      } else if (msg.type === 'alert' && msg.data) {
        // The server sends only alerts raised after the socket opened.
        alertSeen(msg.data as AlertEntry);
      } else if (msg.type === 'error') {
        // Bad auth or the like: the server closes; polling then tells the real story (a 401 signs out).
        h.onMode('error', msg.error?.message);
      }
    };
    sock.onclose = () => {
      const wasOpen = socketOpen;
      socketOpen = false;
      ws = null;
      if (closed) return;
      startPolling();
      if (wasOpen) retryDelay = 5000;
      scheduleRetry();
    };
    sock.onerror = () => {
      // onclose follows and handles the fallback.
    };
  };

  const scheduleRetry = () => {
    if (closed || retryTimer) return;
    retryTimer = window.setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 60000);
  };

  h.onMode('connecting');
  // Data at once over HTTP, then the socket takes over if the server has one.
  startPolling();
  connect();

  const onVisible = () => {
    if (document.visibilityState === 'visible' && !socketOpen) {
      if (pollTimer) window.clearTimeout(pollTimer);
      pollTimer = undefined;
      startPolling();
    }
  };
  document.addEventListener('visibilitychange', onVisible);

  return () => {
    closed = true;
    document.removeEventListener('visibilitychange', onVisible);
    if (pollTimer) window.clearTimeout(pollTimer);
    if (retryTimer) window.clearTimeout(retryTimer);
    if (ws) {
      ws.onclose = null;
      ws.close();
    }
  };
}
