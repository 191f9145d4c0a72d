"""Litmus Edge's Python SDK.

    from litmus import ExperimentClient

    client = ExperimentClient(base_url="http://localhost:8000", api_key="...")
    assignment = client.get_variant("checkout_cta", "store-123", {"country": "US"})
    client.log_exposure("checkout_cta", "store-123", assignment.variant_key)
    client.flush()

Standard library only. See sdk/python/README.md for every option and the fail-safe rules.
"""

from .client import ExperimentClient
from .errors import LitmusApiError, LitmusError, LitmusProtocolError, LitmusTransportError
from .models import FAIL_SAFE, UNKNOWN_EXPERIMENT, Assignment, ClientStats

__version__ = "0.1.0"

__all__ = [
    "ExperimentClient",
    "Assignment",
    "ClientStats",
    "LitmusError",
    "LitmusApiError",
    "LitmusProtocolError",
    "LitmusTransportError",
    "FAIL_SAFE",
    "UNKNOWN_EXPERIMENT",
    "__version__",
]
