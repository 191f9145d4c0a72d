"""What the client raises where it raises at all.

`get_variant` raises none of these while `fail_safe_enabled` is true (the default): it answers
the control instead. The admin helpers and `get_results` raise them, since they have no safe
default to fall back on.
"""

from __future__ import annotations

from typing import Any, Optional


class LitmusError(Exception):
    """Base class of everything this package raises."""


class LitmusTransportError(LitmusError):
    """The request never got an HTTP answer: connection refused or reset, DNS, timeout.

    Raised after the retries ran out.
    """


class LitmusProtocolError(LitmusError):
    """The server answered 2xx, but not with what the API promises (not JSON, wrong shape)."""


class LitmusApiError(LitmusError):
    """The server answered with an error status: the contract's
    `{"error": {"code", "message", "field"?}}` is unpacked when present."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: Optional[str] = None,
        body: Any = None,
        retry_after: Optional[float] = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.body = body
        #: seconds the server asked to wait (its `Retry-After`), when it said
        self.retry_after = retry_after
        where = f" (field {field})" if field else ""
        super().__init__(f"HTTP {status} {code}: {message}{where}")

    @property
    def transient(self) -> bool:
        """Whether waiting and sending the same request again may succeed."""
        return self.status in TRANSIENT_STATUSES


#: Statuses that mean "try again later": rate limited, or a proxy or server briefly unable.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
