"""The event queue: events wait here and leave in batches, from a background thread every
`flush_interval` seconds or as soon as `batch_size` of them are waiting, or on `flush()`.

One batch is in flight at a time. A batch that failed transiently goes back to the head of the
queue with the same event ids, so sending it again later cannot count anything twice. The queue
is bounded: past `max_queue` the oldest events are dropped (counted and warned about), so a long
outage costs memory up to a limit, never without one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Optional

Event = Dict[str, Any]


class SendOutcome(NamedTuple):
    """What became of one batch."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped: int = 0
    #: the server answered 2xx
    sent: bool = False
    #: the send failed transiently: put the batch back and try again later
    keep: bool = False


class Batcher:
    def __init__(
        self,
        send: Callable[[List[Event]], SendOutcome],
        *,
        batch_size: int,
        flush_interval: float,
        max_queue: int,
        warn: Callable[[str, str], None],
        join_timeout: float,
    ) -> None:
        self._send = send
        self.batch_size = max(1, int(batch_size))
        self.flush_interval = max(0.001, float(flush_interval))
        self.max_queue = max(self.batch_size, int(max_queue))
        self._warn = warn
        self._join_timeout = join_timeout
        self._closed = False
        self._fresh_state()

    def _fresh_state(self) -> None:
        # Guards the queue, the counters and the thread handle; never held while sending.
        self._lock = threading.Lock()
        # One batch in flight at a time (the thread's drain and a caller's flush take turns).
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._queue: Deque[Event] = deque()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        # After a transient failure, a full batch waits for the next tick instead of being tried
        # again at once (an outage would otherwise cost one attempt per event logged).
        self._retry_at = 0.0
        self.counters: Dict[str, int] = dict.fromkeys(
            ("batches_sent", "accepted", "duplicates", "rejected", "dropped", "failed_sends"), 0
        )

    # -- producer side -------------------------------------------------------------------------

    def add(self, event: Event) -> bool:
        """Queues one event; false (and nothing queued) once closed."""
        overflow = False
        with self._lock:
            if self._closed:
                return False
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.counters["dropped"] += 1
                overflow = True
            self._queue.append(event)
            full = len(self._queue) >= self.batch_size
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="litmus-events", daemon=True)
                try:
                    thread.start()
                    self._thread = thread
                except RuntimeError:
                    # At interpreter shutdown no thread can start: the event waits for close().
                    pass
        if overflow:
            self._warn("queue-full", f"event queue full ({self.max_queue} events): dropped the oldest; is the control plane reachable?")
        if full:
            self._wake.set()
        return True

    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    # -- sending -------------------------------------------------------------------------------

    def flush(self) -> int:
        """Sends everything queued now; returns how many events the server accepted."""
        return self._drain(full_only=False)

    def close(self) -> int:
        """Stops the thread, sends what is left; returns how many events the server accepted."""
        with self._lock:
            if self._closed:
                return 0
            self._closed = True
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._join_timeout)
        return self._drain(full_only=False)

    def _run(self) -> None:
        interval = self.flush_interval
        next_tick = time.monotonic() + interval
        while True:
            woken = self._wake.wait(max(0.0, next_tick - time.monotonic()))
            # Cleared before draining: an event added from here on is seen by this drain or
            # wakes the next wait.
            self._wake.clear()
            if self._stopping:
                return
            try:
                if time.monotonic() >= next_tick:
                    self._drain(full_only=False)
                    next_tick = time.monotonic() + interval
                elif woken and time.monotonic() >= self._retry_at:
                    self._drain(full_only=True)
            except Exception as e:  # noqa: BLE001 - the thread must outlive any surprise
                self._warn("thread", f"event thread: unexpected {type(e).__name__}: {e}")

    def _drain(self, *, full_only: bool) -> int:
        accepted = 0
        with self._send_lock:
            while True:
                with self._lock:
                    n = len(self._queue)
                    if n == 0 or (full_only and n < self.batch_size):
                        break
                    batch = [self._queue.popleft() for _ in range(min(n, self.batch_size))]
                try:
                    outcome = self._send(batch)
                except Exception as e:  # noqa: BLE001 - a bug in sending must not lose the thread
                    self._warn("send", f"sending {len(batch)} events failed unexpectedly ({type(e).__name__}: {e}); dropped them")
                    outcome = SendOutcome(dropped=len(batch))
                with self._lock:
                    c = self.counters
                    if outcome.keep:
                        c["failed_sends"] += 1
                        self._queue.extendleft(reversed(batch))
                        while len(self._queue) > self.max_queue:
                            self._queue.popleft()
                            c["dropped"] += 1
                    else:
                        c["batches_sent"] += int(outcome.sent)
                        c["accepted"] += outcome.accepted
                        c["duplicates"] += outcome.duplicates
                        c["rejected"] += outcome.rejected
                        c["dropped"] += outcome.dropped
                if outcome.keep:
                    # The backend is struggling: leave the rest for the next tick.
                    self._retry_at = time.monotonic() + self.flush_interval
                    break
                accepted += outcome.accepted
        return accepted

    def snapshot(self) -> Dict[str, int]:
        with self._lock:
            return {**self.counters, "queued": len(self._queue)}

    def after_fork(self) -> None:
        """In a forked child: a new, empty queue and no thread (one starts on the next event).

        The parent's queued events are the parent's to send: dropping them here is what keeps
        them from being sent twice. The locks are new too: a parent's thread may have held one at
        the moment of the fork, and it does not exist here to release it."""
        self._fresh_state()
