"""The brief's Python quickstart, unchanged but for where the control plane is and its token."""

from __future__ import annotations

import logging
import textwrap

from conftest import ControlPlane, exposures, metric

QUICKSTART = textwrap.dedent(
    """
    from litmus import ExperimentClient

    client = ExperimentClient(
        base_url="http://localhost:8000",
        api_key="dev-token",
        timeout=5,
        retries=2,
        cache_ttl_seconds=30,
        fail_safe_enabled=True,
    )

    assignment = client.get_variant(
        experiment_id="suggested_order_v4",
        unit_id="store-123",
        attributes={"country": "CA"},
    )

    if assignment.variant_key == "treatment":
        pass  # run treatment path
    else:
        pass  # run control path

    client.log_exposure("suggested_order_v4", "store-123", assignment.variant_key)
    client.log_metric("suggested_order_v4", "store-123", assignment.variant_key, "order_value", 1250.30)
    client.flush()
    """
)


def run_quickstart(server: ControlPlane) -> dict:
    code = QUICKSTART.replace("http://localhost:8000", server.url).replace("dev-token", server.token)
    scope: dict = {}
    exec(compile(code, "quickstart", "exec"), scope)
    scope["client"].close()
    return scope


def test_quickstart_runs_before_the_experiment_exists_then_for_real(server: ControlPlane, caplog) -> None:
    # No such experiment yet: the quickstart still runs to the end, on the control.
    with caplog.at_level(logging.WARNING, logger="litmus"):
        scope = run_quickstart(server)
    a = scope["assignment"]
    assert (a.variant_key, a.in_experiment, a.reason) == ("control", False, "unknown_experiment")
    assert any("suggested_order_v4" in r.getMessage() for r in caplog.records)

    status, _ = server.api("POST", "/experiments", {
        "key": "suggested_order_v4",
        "name": "Suggested order v4",
        "targeting": {"country": {"in": ["CA", "US"]}},
        "variants": [
            {"key": "control", "weight": 0.5, "config_json": {"model": "v3"}},
            {"key": "treatment", "weight": 0.5, "config_json": {"model": "v4"}},
        ],
    })
    assert status == 201
    assert server.api("POST", "/experiments/suggested_order_v4/launch", {"ramp_pct": 100})[0] == 200

    scope = run_quickstart(server)
    a = scope["assignment"]
    assert a.in_experiment and a.reason == "assigned"
    assert a.variant_key in ("control", "treatment")
    assert a.config_json == {"model": "v3" if a.variant_key == "control" else "v4"}
    # The control plane's own answer, byte for byte the same choice.
    status, direct = server.api("POST", "/assign", {"experiment": "suggested_order_v4", "unit_id": "store-123", "attributes": {"country": "CA"}})
    assert status == 200 and direct["variant_key"] == a.variant_key and direct["assignment_id"] == a.assignment_id

    r = server.wait_results("suggested_order_v4", lambda r: metric(r, a.variant_key, "order_value").get("count") == 1)
    assert exposures(r)[a.variant_key] == 1
    assert metric(r, a.variant_key, "order_value")["sum"] == 1250.30
