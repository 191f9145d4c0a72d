"""The values the client hands back."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

#: `Assignment.reason` when the backend could not be asked or answered nonsense.
FAIL_SAFE = "fail_safe"
#: `Assignment.reason` when the backend does not know the experiment.
UNKNOWN_EXPERIMENT = "unknown_experiment"


@dataclass(frozen=True)
class Assignment:
    """One unit's variant in one experiment, as `POST /api/v1/assign` (or the edge) answers it.

    `in_experiment` is false when the unit is outside targeting, layer or ramp, when the
    experiment is not running, and on fail-safe answers: `variant_key` is then the control.
    `reason` says which: `assigned`, `sticky`, `targeting`, `ramp`, `layer`, `not_running`,
    `invalid_config` (from the engine), `unknown_experiment`, `no_config` (the edge has no
    config yet) or `fail_safe` (this client could not get an answer).
    """

    variant_key: str
    config_json: Any = None
    assignment_id: Optional[str] = None
    #: The issuer's signature of this answer; events about it carry it (the SDK does that).
    signature: Optional[str] = None
    version: Optional[int] = None
    in_experiment: bool = False
    reason: str = FAIL_SAFE
    experiment: str = ""

    @property
    def fail_safe(self) -> bool:
        """True when this is the client's fallback, not the backend's answer."""
        return self.reason in (FAIL_SAFE, UNKNOWN_EXPERIMENT, "no_config")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClientStats:
    """Counters since the client was created (in a forked child: since the fork)."""

    #: events waiting to be sent
    queued: int = 0
    #: batches the server answered 2xx
    batches_sent: int = 0
    #: events the server stored
    accepted: int = 0
    #: events the server had already stored (a re-sent batch)
    duplicates: int = 0
    #: events the server refused one by one (named in its `rejected` list)
    rejected: int = 0
    #: events this client gave up on: a batch refused whole (4xx), or the queue overflowing
    dropped: int = 0
    #: sends that failed transiently after their retries; their events stayed queued
    failed_sends: int = 0
    #: answers `get_variant` served from its cache
    cache_hits: int = 0
    #: `get_variant` answers that were the fail-safe control
    fail_safe_answers: int = 0
