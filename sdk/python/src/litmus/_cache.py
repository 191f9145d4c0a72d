"""A small thread-safe LRU map whose entries expire after a fixed time."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Generic, Hashable, Optional, Tuple, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """`get` answers a value set less than `ttl` seconds ago; at most `max_entries` are kept
    (the least recently used go first). `ttl <= 0` disables it."""

    def __init__(self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = float(ttl)
        self.max_entries = max(1, int(max_entries))
        self._clock = clock
        self._data: "OrderedDict[Hashable, Tuple[float, V]]" = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, key: Hashable) -> Optional[V]:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            expires, value = entry
            if self._clock() >= expires:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: Hashable, value: V) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._data[key] = (self._clock() + self.ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def after_fork(self) -> None:
        """In a forked child: the parent's lock may have been held by a thread that does not
        exist here. The entries stay (assignments are deterministic)."""
        self._lock = threading.Lock()
