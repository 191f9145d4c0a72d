"""`ExperimentClient`: assignments with a cache and a fail-safe, events queued and sent in batches."""

from __future__ import annotations

import atexit
import json
import logging
import math
import numbers
import os
import threading
import time
import urllib.parse
import uuid
import weakref
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._cache import TTLCache
from ._events import Batcher, Event, SendOutcome
from ._http import Transport
from .errors import LitmusApiError, LitmusError, LitmusProtocolError, LitmusTransportError
from .models import FAIL_SAFE, UNKNOWN_EXPERIMENT, Assignment, ClientStats

log = logging.getLogger("litmus")

API = "/api/v1"
#: How long a unit's sticky document is remembered without being used.
STICKY_TTL_SECONDS = 30 * 24 * 3600.0


class ExperimentClient:
    """A client of the Litmus control plane (or, for assignments, of the edge).

    `get_variant` never raises while `fail_safe_enabled` is true: when the backend is down, slow
    beyond `timeout` after `retries`, or answers nonsense, it returns the control (reason
    `fail_safe`) and logs a warning on the `litmus` logger. The `log_*` methods only queue;
    a background thread sends the queue in batches. Call `close()` (or use the client as a
    context manager) when done; at interpreter exit open clients are closed, which flushes them.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: float = 2.0,
        retries: int = 2,
        cache_ttl_seconds: float = 60,
        fail_safe_enabled: bool = True,
        batch_size: int = 100,
        flush_interval_seconds: float = 5.0,
        edge_url: Optional[str] = None,
        *,
        fail_safe_variant: str = "control",
        fail_safe_variants: Optional[Mapping[str, str]] = None,
        max_queue_size: int = 10_000,
        max_cache_entries: int = 10_000,
        edge_log_exposures: bool = False,
        warning_interval_seconds: float = 10.0,
    ) -> None:
        for name, url in (("base_url", base_url), ("edge_url", edge_url)):
            if url is not None and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"{name} must be an http:// or https:// URL, not {url!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.base_url = base_url.rstrip("/")
        self.edge_url = edge_url.rstrip("/") if edge_url else None
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.fail_safe_enabled = bool(fail_safe_enabled)
        self.fail_safe_variant = fail_safe_variant
        self.fail_safe_variants: Dict[str, str] = dict(fail_safe_variants or {})
        self.edge_log_exposures = bool(edge_log_exposures)
        self.warning_interval_seconds = float(warning_interval_seconds)
        self._fresh_locks()

        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._api = Transport(self.base_url, timeout=self.timeout, retries=self.retries, headers=headers)
        # The edge's public routes take no token: the control plane's is not sent there.
        self._edge = Transport(self.edge_url, timeout=self.timeout, retries=self.retries) if self.edge_url else None
        self._cache: TTLCache[Assignment] = TTLCache(cache_ttl_seconds, max_cache_entries)
        self._sticky: TTLCache[Dict[str, Any]] = TTLCache(STICKY_TTL_SECONDS, max_cache_entries)
        # (experiment, unit, variant) -> (assignment_id, signature) of the last answer: events about
        # it echo them (the edge counts no event sent without a key unless it carries its signature).
        self._signed: TTLCache[Tuple[Optional[str], str]] = TTLCache(STICKY_TTL_SECONDS, max_cache_entries)
        # experiment (as the caller names it, and by key) -> (control variant key, its config)
        self._controls: Dict[str, Tuple[str, Any]] = {}
        # The newest config version the edge answered from, sent back as `min_version`: an edge
        # isolate still holding an older set re-reads it first, so answers never go back a version.
        self._config_version: Optional[int] = None
        # The longest a send can take: every attempt timing out, plus the backoffs between.
        worst_send = (self.retries + 1) * self.timeout + self.retries * self._api.backoff_max
        self._batcher = Batcher(
            self._send_batch,
            batch_size=batch_size,
            flush_interval=flush_interval_seconds,
            max_queue=max_queue_size,
            warn=self._warn,
            join_timeout=worst_send + 1.0,
        )
        _clients.add(self)

    def _fresh_locks(self) -> None:
        self._local_lock = threading.Lock()
        self._warned: Dict[Any, float] = {}
        self._suppressed: Dict[Any, int] = {}
        self._local_counters = {"cache_hits": 0, "fail_safe_answers": 0}

    def __repr__(self) -> str:
        edge = f", edge_url={self.edge_url!r}" if self.edge_url else ""
        return f"ExperimentClient(base_url={self.base_url!r}{edge})"

    # -- assignment ----------------------------------------------------------------------------

    def get_variant(self, experiment_id: str, unit_id: str, attributes: Optional[Mapping[str, Any]] = None) -> Assignment:
        """The unit's variant: from the cache when answered less than `cache_ttl_seconds` ago
        for the same experiment, unit and attributes; else from the control plane's
        `POST /api/v1/assign` (or the edge's `POST /v1/assign` when `edge_url` is set).

        Identical inputs give identical answers (assignment is a deterministic hash), so the
        cache only saves round trips. Never raises while `fail_safe_enabled`: see the class."""
        try:
            attrs = dict(attributes) if attributes else {}
            key = (experiment_id, unit_id, json.dumps(attrs, sort_keys=True, separators=(",", ":"), allow_nan=False))
        except (TypeError, ValueError) as e:
            return self._fallback(experiment_id, FAIL_SAFE, LitmusError(f"attributes cannot be sent as JSON: {e}"))
        cached = self._cache.get(key)
        if cached is not None:
            with self._local_lock:
                self._local_counters["cache_hits"] += 1
            return cached
        try:
            if self._edge is not None:
                answer = self._assign_at_edge(experiment_id, unit_id, attrs)
            else:
                answer = self._assign_at_control_plane(experiment_id, unit_id, attrs)
        except LitmusApiError as e:
            return self._fallback(experiment_id, UNKNOWN_EXPERIMENT if e.status == 404 else FAIL_SAFE, e)
        except LitmusError as e:
            return self._fallback(experiment_id, FAIL_SAFE, e)
        except Exception as e:  # noqa: BLE001 - a bug here must not take the caller's request down
            return self._fallback(experiment_id, FAIL_SAFE, LitmusError(f"unexpected {type(e).__name__}: {e}"))
        self._learn_control(experiment_id, answer)
        self._cache.set(key, answer)
        if answer.signature and answer.in_experiment:
            self._signed.set((answer.experiment, unit_id, answer.variant_key), (answer.assignment_id, answer.signature))
            if answer.experiment != experiment_id:
                self._signed.set((experiment_id, unit_id, answer.variant_key), (answer.assignment_id, answer.signature))
        return answer

    def _assign_at_control_plane(self, experiment_id: str, unit_id: str, attrs: Dict[str, Any]) -> Assignment:
        body: Dict[str, Any] = {"experiment": experiment_id, "unit_id": unit_id, "attributes": attrs}
        sticky = self._sticky.get(unit_id)
        if sticky is not None:
            body["sticky"] = sticky
        _, data = self._api.request("POST", f"{API}/assign", body)
        self._keep_sticky(unit_id, data)
        return _parse_assignment(experiment_id, data)

    def _assign_at_edge(self, experiment_id: str, unit_id: str, attrs: Dict[str, Any]) -> Assignment:
        assert self._edge is not None
        body: Dict[str, Any] = {
            "unit_id": unit_id,
            "attributes": attrs,
            "experiments": [experiment_id],
            # Exposures are logged with log_exposure, when the variant is actually shown, as with
            # the control plane (whose /assign logs none); edge_log_exposures=True lets the edge do it.
            "expose": self.edge_log_exposures,
        }
        sticky = self._sticky.get(unit_id)
        if sticky is not None:
            body["sticky"] = sticky
        seen = self._config_version
        if seen is not None:
            body["min_version"] = seen
        _, data = self._edge.request("POST", "/v1/assign", body)
        version = data.get("config_version") if isinstance(data, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and (seen is None or version > seen):
            self._config_version = version
        entries = data.get("assignments") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries:
            raise LitmusProtocolError(f"the edge's answer has no assignments: {str(data)[:200]}")
        entry = next((a for a in entries if isinstance(a, dict) and a.get("experiment") == experiment_id), entries[0])
        if isinstance(entry, dict) and entry.get("variant_key") is None:
            reason = entry.get("reason")
            if reason == UNKNOWN_EXPERIMENT:
                raise LitmusApiError(404, UNKNOWN_EXPERIMENT, f"the edge does not serve experiment `{experiment_id}`")
            raise LitmusProtocolError(f"the edge gave no variant for `{experiment_id}` (reason {reason!r})")
        self._keep_sticky(unit_id, data)
        return _parse_assignment(experiment_id, entry)

    def _keep_sticky(self, unit_id: str, data: Any) -> None:
        # Bandits over lasting units answer a sticky document: sent back next time, it keeps the
        # unit on its variant while the weights move.
        if isinstance(data, dict) and isinstance(data.get("sticky"), dict):
            self._sticky.set(unit_id, data["sticky"])

    def _learn_control(self, experiment_id: str, a: Assignment) -> None:
        # Outside the experiment, the engine answers the control variant (the first one): what
        # the fail-safe should answer for this experiment too.
        if not a.in_experiment and a.reason in ("targeting", "ramp", "layer", "not_running", "invalid_config"):
            for name in {experiment_id, a.experiment}:
                if name:
                    self._controls[name] = (a.variant_key, a.config_json)

    def _fallback(self, experiment_id: str, reason: str, error: LitmusError) -> Assignment:
        if not self.fail_safe_enabled:
            raise error
        with self._local_lock:
            self._local_counters["fail_safe_answers"] += 1
        configured = self.fail_safe_variants.get(experiment_id)
        learned = self._controls.get(experiment_id)
        if configured is not None:
            config = learned[1] if learned and learned[0] == configured else None
            variant = configured
        elif learned is not None:
            variant, config = learned
        else:
            variant, config = self.fail_safe_variant, None
        self._warn(
            ("assign", experiment_id, reason),
            f"get_variant({experiment_id!r}): {error}; answering the fail-safe control {variant!r} (reason {reason})",
        )
        return Assignment(variant_key=variant, config_json=config, in_experiment=False, reason=reason, experiment=experiment_id)

    # -- events --------------------------------------------------------------------------------

    def log_exposure(self, experiment_id: str, unit_id: str, variant_key: str, attributes: Optional[Mapping[str, Any]] = None) -> Optional[str]:
        """Queues an exposure (the unit was shown `variant_key`). `attributes` are kept with it for
        segment breakdowns. Returns the event id, or None when the event was refused (a warning
        says why)."""
        event: Event = {"kind": "exposure"}
        if attributes:
            try:
                # A snapshot: the caller may change the dict after this returns.
                event["attributes"] = json.loads(json.dumps(dict(attributes), allow_nan=False))
            except (TypeError, ValueError) as e:
                return self._refuse(f"log_exposure: attributes cannot be sent as JSON: {e}")
        return self._log(event, experiment_id, unit_id, variant_key)

    def log_metric(self, experiment_id: str, unit_id: str, variant_key: str, metric: str, value: float) -> Optional[str]:
        """Queues a metric value (an amount: order value, latency, ...) for the unit."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return self._refuse(f"log_metric: value must be a finite number, not {value!r}")
        number = value if isinstance(value, int) else float(value)
        return self._log({"kind": "metric", "metric": metric, "value": number}, experiment_id, unit_id, variant_key)

    def log_conversion(self, experiment_id: str, unit_id: str, variant_key: str, metric: str = "conversion") -> Optional[str]:
        """Queues a conversion (the unit did `metric`; counted once per unit in its rate)."""
        return self._log({"kind": "conversion", "metric": metric}, experiment_id, unit_id, variant_key)

    def _log(self, event: Event, experiment_id: str, unit_id: str, variant_key: str) -> Optional[str]:
        fields = [("experiment_id", experiment_id), ("unit_id", unit_id), ("variant_key", variant_key)]
        if "metric" in event:
            fields.append(("metric", event["metric"]))
        for name, v in fields:
            if not isinstance(v, str) or not v:
                return self._refuse(f"{event['kind']} event: {name} must be a non-empty string, not {v!r}")
        # Minted here, once: a batch sent again after a lost answer carries the same ids, and the
        # server counts each event once.
        event_id = str(uuid.uuid4())
        event.update(
            experiment=experiment_id,
            unit_id=unit_id,
            variant_key=variant_key,
            ts=_now_rfc3339(),
            event_id=event_id,
        )
        signed = self._signed.get((experiment_id, unit_id, variant_key))
        if signed is not None:
            assignment_id, signature = signed
            if assignment_id:
                event["assignment_id"] = assignment_id
            event["signature"] = signature
        if not self._batcher.add(event):
            return self._refuse(f"{event['kind']} event after close(): not sent")
        return event_id

    def _refuse(self, message: str) -> Optional[str]:
        """An event that cannot be sent: raised without the fail-safe, else warned about."""
        if not self.fail_safe_enabled:
            raise ValueError(message)
        self._warn(("refused", message.split(":")[0]), message)
        return None

    def flush(self) -> int:
        """Sends every queued event now; returns how many the server accepted (new events;
        re-sent ones count as duplicates, refused ones are logged). Events that could not be
        sent for a transient reason stay queued for the next attempt."""
        return self._batcher.flush()

    def close(self) -> int:
        """Stops the background thread and sends what is queued; returns how many events the
        server accepted. Later `log_*` calls are refused with a warning. Idempotent."""
        _clients.discard(self)
        return self._batcher.close()

    def __enter__(self) -> "ExperimentClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> ClientStats:
        counts = self._batcher.snapshot()
        with self._local_lock:
            counts.update(self._local_counters)
        return ClientStats(**counts)

    def _send_batch(self, batch: List[Event]) -> SendOutcome:
        n = len(batch)
        try:
            _, data = self._api.request("POST", f"{API}/events/batch", {"events": batch})
        except LitmusApiError as e:
            if e.transient:
                self._warn("events-retry", f"sending {n} events: {e}; kept them queued for the next attempt")
                return SendOutcome(keep=True)
            # Refused whole: sending it again would be refused again.
            listed = _rejected(e.body)
            self._warn("events-refused", f"the control plane refused a batch of {n} events ({e}); dropped it")
            return SendOutcome(rejected=len(listed), dropped=n - len(listed))
        except LitmusTransportError as e:
            self._warn("events-retry", f"sending {n} events: {e}; kept them queued for the next attempt")
            return SendOutcome(keep=True)
        except LitmusProtocolError as e:
            self._warn("events-garbage", f"sending {n} events: {e}; dropped them")
            return SendOutcome(dropped=n)
        if not isinstance(data, dict) or not isinstance(data.get("accepted"), int):
            self._warn("events-garbage", f"sending {n} events: unexpected answer {str(data)[:200]}; dropped them")
            return SendOutcome(dropped=n)
        rejected = _rejected(data)
        if rejected:
            first = rejected[0] if isinstance(rejected[0], dict) else {}
            self._warn(
                "events-rejected",
                f"the control plane rejected {len(rejected)} of {n} events; first: {first.get('field')}: {first.get('message')}",
            )
        duplicates = data.get("duplicates")
        return SendOutcome(
            accepted=data["accepted"],
            duplicates=duplicates if isinstance(duplicates, int) else 0,
            rejected=len(rejected),
            sent=True,
        )

    # -- reading and administering (these raise LitmusError: there is no safe default) ---------

    def get_results(self, experiment_id: str) -> Dict[str, Any]:
        """`GET /api/v1/experiments/{id}/results`: exposures, metrics, conversions, lifts, SRM."""
        data = self._get(f"{API}/experiments/{_quote(experiment_id)}/results")
        control = data.get("control")
        if isinstance(control, str) and experiment_id not in self._controls:
            self._controls[experiment_id] = (control, None)
        return data

    def health(self) -> Dict[str, Any]:
        """`GET /health`: the process answers."""
        return self._get("/health")

    def ready(self) -> Dict[str, Any]:
        """`GET /ready`: the process and its database answer (a 503 raises `LitmusApiError`)."""
        return self._get("/ready", retry=False)

    def list_experiments(self, status: Optional[str] = None) -> List[Dict[str, Any]]:
        query = f"?status={_quote(status)}" if status else ""
        _, data = self._api.request("GET", f"{API}/experiments{query}")
        if not isinstance(data, list):
            raise LitmusProtocolError(f"expected a list of experiments, got {str(data)[:200]}")
        return data

    def get_experiment(self, experiment_id: str) -> Dict[str, Any]:
        return self._get(f"{API}/experiments/{_quote(experiment_id)}")

    def create_experiment(self, spec: Mapping[str, Any]) -> Dict[str, Any]:
        """`POST /api/v1/experiments` with the contract's body; answers the draft."""
        # Not retried: a create whose answer was lost would meet its own key (409) next time.
        return self._call("POST", f"{API}/experiments", dict(spec))

    def launch_experiment(self, experiment_id: str, ramp_pct: Optional[float] = None, actor: Optional[str] = None) -> Dict[str, Any]:
        return self._call("POST", f"{API}/experiments/{_quote(experiment_id)}/launch", _lifecycle_body(actor, ramp_pct))

    def pause_experiment(self, experiment_id: str, actor: Optional[str] = None) -> Dict[str, Any]:
        return self._call("POST", f"{API}/experiments/{_quote(experiment_id)}/pause", _lifecycle_body(actor))

    def stop_experiment(self, experiment_id: str, actor: Optional[str] = None) -> Dict[str, Any]:
        return self._call("POST", f"{API}/experiments/{_quote(experiment_id)}/stop", _lifecycle_body(actor))

    def _get(self, path: str, retry: bool = True) -> Dict[str, Any]:
        _, data = self._api.request("GET", path, retry=retry)
        if not isinstance(data, dict):
            raise LitmusProtocolError(f"GET {path}: expected a JSON object, got {str(data)[:200]}")
        return data

    def _call(self, method: str, path: str, body: Any) -> Dict[str, Any]:
        _, data = self._api.request(method, path, body, retry=False)
        if not isinstance(data, dict):
            raise LitmusProtocolError(f"{method} {path}: expected a JSON object, got {str(data)[:200]}")
        return data

    # -- plumbing ------------------------------------------------------------------------------

    def _warn(self, key: Any, message: str) -> None:
        """Logs on the `litmus` logger, the same warning at most once per
        `warning_interval_seconds` (an outage must not write one line per request)."""
        now = time.monotonic()
        with self._local_lock:
            last = self._warned.get(key)
            if last is not None and now - last < self.warning_interval_seconds:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._warned[key] = now
            suppressed = self._suppressed.pop(key, 0)
        more = f" ({suppressed} more like it since the last)" if suppressed else ""
        log.warning("%s%s", message, more)

    def _after_fork_in_child(self) -> None:
        self._batcher.after_fork()
        self._cache.after_fork()
        self._sticky.after_fork()
        self._fresh_locks()


def _parse_assignment(experiment_id: str, data: Any) -> Assignment:
    if not isinstance(data, dict):
        raise LitmusProtocolError(f"expected an assignment object, got {str(data)[:200]}")
    variant = data.get("variant_key")
    in_experiment = data.get("in_experiment")
    if not isinstance(variant, str) or not variant or not isinstance(in_experiment, bool):
        raise LitmusProtocolError(f"not an assignment (variant_key, in_experiment): {str(data)[:200]}")
    version = data.get("version")
    assignment_id = data.get("assignment_id")
    signature = data.get("signature")
    reason = data.get("reason")
    experiment = data.get("experiment")
    return Assignment(
        variant_key=variant,
        config_json=data.get("config_json"),
        assignment_id=assignment_id if isinstance(assignment_id, str) else None,
        signature=signature if isinstance(signature, str) else None,
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        in_experiment=in_experiment,
        reason=reason if isinstance(reason, str) else ("assigned" if in_experiment else "not_in_experiment"),
        experiment=experiment if isinstance(experiment, str) else experiment_id,
    )


def _rejected(body: Any) -> List[Any]:
    rejected = body.get("rejected") if isinstance(body, dict) else None
    return rejected if isinstance(rejected, list) else []


def _lifecycle_body(actor: Optional[str], ramp_pct: Optional[float] = None) -> Dict[str, Any]:
    body: Dict[str, Any] = {}
    if ramp_pct is not None:
        body["ramp_pct"] = ramp_pct
    if actor:
        body["actor"] = actor
    return body


def _quote(s: str) -> str:
    return urllib.parse.quote(str(s), safe="")


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# Open clients, for the two process-wide hooks below. Weak: a client nobody holds may go.
_clients: "weakref.WeakSet[ExperimentClient]" = weakref.WeakSet()


def _close_all() -> None:
    """At interpreter exit: what is still queued is sent (each client's `close`)."""
    for client in list(_clients):
        try:
            client.close()
        except Exception:  # noqa: BLE001 - exiting anyway; one client must not stop the others
            log.exception("closing %r at exit", client)


def _after_fork_in_child() -> None:
    """In a forked child every client gets an empty queue, new locks and no thread: the child
    sends only what it logs itself, never the parent's events (the parent still sends those)."""
    for client in list(_clients):
        client._after_fork_in_child()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
