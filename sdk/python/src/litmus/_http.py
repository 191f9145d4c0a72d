"""JSON over HTTP with urllib, retrying transient failures with exponential backoff and jitter.

Transient: no HTTP answer at all (connection refused or reset, timeout) and the statuses in
`TRANSIENT_STATUSES` (429, 502, 503, 504). Everything else is answered at once: a 4xx will be
the same 4xx next time, and a 500 is a server fault that a retry storm only makes worse.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .errors import LitmusApiError, LitmusProtocolError, LitmusTransportError

USER_AGENT = "litmus-python"


class Transport:
    """One base URL, its headers, its timeout and retry policy. Holds no connection between
    calls (urllib opens one per request), so it is safe across threads and across `fork`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        retries: int,
        headers: Optional[Mapping[str, str]] = None,
        backoff_base: float = 0.1,
        backoff_max: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.headers = {"accept": "application/json", "user-agent": USER_AGENT, **(headers or {})}
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._jitter = jitter

    def request(self, method: str, path: str, body: Any = None, *, retry: bool = True) -> Tuple[int, Any]:
        """Sends the request; returns (status, parsed JSON or None) for a 2xx answer.

        Raises `LitmusApiError` for an error status, `LitmusTransportError` when no answer came,
        `LitmusProtocolError` for a 2xx that is not JSON. Transient failures are retried
        `retries` times when `retry` is true.
        """
        data = None
        headers = dict(self.headers)
        if body is not None:
            data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
            headers["content-type"] = "application/json"
        url = self.base_url + path
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                return self._once(method, url, data, headers)
            except LitmusApiError as e:
                if not e.transient or last:
                    raise
                self._sleep(self._delay(attempt, e.retry_after))
            except LitmusTransportError:
                if last:
                    raise
                self._sleep(self._delay(attempt, None))
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: Optional[float]) -> float:
        """Exponential backoff with "equal jitter": half the step fixed, half random, so that
        clients failing together do not come back together. A server's `Retry-After` is honoured
        up to `backoff_max` (an assignment waits on this, so it is never long)."""
        step = min(self.backoff_max, self.backoff_base * 2.0 ** attempt)
        delay = step / 2 + self._jitter() * step / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _once(self, method: str, url: str, data: Optional[bytes], headers: Dict[str, str]) -> Tuple[int, Any]:
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                status = res.status
                text = res.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as e:
            raise _api_error(e) from None
        except urllib.error.URLError as e:
            raise LitmusTransportError(f"{method} {url}: {e.reason}") from None
        except (socket.timeout, TimeoutError) as e:
            raise LitmusTransportError(f"{method} {url}: timed out after {self.timeout} s") from e
        except (http.client.HTTPException, OSError) as e:
            # A connection reset or closed mid-answer.
            raise LitmusTransportError(f"{method} {url}: {type(e).__name__}: {e}") from e
        if not text.strip():
            return status, None
        try:
            return status, json.loads(text)
        except ValueError:
            raise LitmusProtocolError(f"{method} {url} answered {status} with something that is not JSON: {text[:200]!r}") from None


def _api_error(e: urllib.error.HTTPError) -> LitmusApiError:
    try:
        text = e.read().decode("utf-8", errors="replace")
    except Exception:  # noqa: BLE001 - the status is what matters; the body is a courtesy
        text = ""
    body: Any = None
    code, message, field = "http_error", (text[:200] or str(e.reason)), None
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code", code))
        message = str(err.get("message", message))
        field = err.get("field") if isinstance(err.get("field"), str) else None
    return LitmusApiError(e.code, code, message, field, body, _seconds(e.headers.get("retry-after") if e.headers else None))


def _seconds(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        # An HTTP date: not worth parsing for a wait that is capped at seconds anyway.
        return None
