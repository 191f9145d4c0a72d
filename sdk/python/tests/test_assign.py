"""get_variant against the real control plane: answers, cache, fail-safe."""

from __future__ import annotations

import logging
import time

import pytest
from conftest import ASSIGNED, ControlPlane
from litmus import Assignment, LitmusApiError, LitmusTransportError

ASSIGN = "/api/v1/assign"


def test_answers_what_the_control_plane_answers(server: ControlPlane, make_client) -> None:
    key = server.new_experiment("same", targeting={"country": {"in": ["US"]}})
    client = make_client(server.url, server.token, cache_ttl_seconds=0)
    for i in range(20):
        unit = f"unit-{i}"
        a = client.get_variant(key, unit, {"country": "US"})
        status, direct = server.api("POST", "/assign", {"experiment": key, "unit_id": unit, "attributes": {"country": "US"}})
        assert status == 200
        assert a == Assignment(
            variant_key=direct["variant_key"],
            config_json=direct["config_json"],
            assignment_id=direct["assignment_id"],
            signature=direct["signature"],
            version=direct["version"],
            in_experiment=True,
            reason="assigned",
            experiment=key,
        )
    # Outside targeting: the control (the first variant) and its config, never an error.
    out = client.get_variant(key, "unit-1", {"country": "FR"})
    assert (out.variant_key, out.config_json, out.in_experiment, out.reason) == ("control", {"color": "blue"}, False, "targeting")
    # A draft serves no one: the control.
    draft = server.new_experiment("draft", launch=False)
    d = client.get_variant(draft, "unit-1")
    assert (d.variant_key, d.in_experiment, d.reason) == ("control", False, "not_running")


def test_cache_serves_repeats_within_the_ttl(server: ControlPlane, make_client) -> None:
    key = server.new_experiment("cache")
    client = make_client(server.url, server.token, cache_ttl_seconds=1.0)
    before = server.requests_to(ASSIGN)
    first = client.get_variant(key, "u1", {"plan": "pro", "country": "US"})
    # Same experiment, unit and attributes (in any order): from the cache, no request.
    for _ in range(5):
        assert client.get_variant(key, "u1", {"country": "US", "plan": "pro"}) == first
    assert server.requests_to(ASSIGN) == before + 1
    assert client.stats().cache_hits == 5
    # Other attributes, another unit: asked.
    client.get_variant(key, "u1", {"country": "CA", "plan": "pro"})
    client.get_variant(key, "u2", {"country": "US", "plan": "pro"})
    assert server.requests_to(ASSIGN) == before + 3
    # Once the TTL passed: asked again.
    time.sleep(1.1)
    assert client.get_variant(key, "u1", {"plan": "pro", "country": "US"}) == first
    assert server.requests_to(ASSIGN) == before + 4


def test_cache_answers_while_the_server_is_down(own_server: ControlPlane, make_client) -> None:
    key = own_server.new_experiment("cached_down")
    client = make_client(own_server.url, own_server.token, cache_ttl_seconds=60, timeout=0.5, retries=0)
    first = client.get_variant(key, "u1")
    own_server.stop()
    assert client.get_variant(key, "u1") == first
    assert client.get_variant(key, "u2").reason == "fail_safe"


def test_fail_safe_when_nothing_listens(dead_url: str, make_client, caplog) -> None:
    client = make_client(dead_url, "token", timeout=0.5, retries=1)
    with caplog.at_level(logging.WARNING, logger="litmus"):
        started = time.monotonic()
        a = client.get_variant("checkout", "u1", {"country": "US"})
    assert time.monotonic() - started < 3
    assert a == Assignment(variant_key="control", config_json=None, in_experiment=False, reason="fail_safe", experiment="checkout")
    assert a.fail_safe
    warnings = [r for r in caplog.records if r.name == "litmus" and r.levelno == logging.WARNING]
    assert warnings and "fail-safe" in warnings[0].getMessage() and "checkout" in warnings[0].getMessage()
    # Not cached: the next call asks again (and may find the server back).
    assert client.stats().fail_safe_answers == 1
    client.get_variant("checkout", "u1", {"country": "US"})
    assert client.stats().fail_safe_answers == 2


def test_fail_safe_answers_the_experiments_control_once_known(own_server: ControlPlane, make_client) -> None:
    key = own_server.new_experiment(
        "learned",
        targeting={"country": {"in": ["US"]}},
        variants=[
            {"key": "baseline", "weight": 0.5, "config_json": {"model": "a"}},
            {"key": "candidate", "weight": 0.5, "config_json": {"model": "b"}},
        ],
    )
    client = make_client(own_server.url, own_server.token, timeout=0.5, retries=0)
    # A unit outside targeting is answered the control: the client remembers it.
    assert client.get_variant(key, "u1", {"country": "FR"}).variant_key == "baseline"
    own_server.stop()
    a = client.get_variant(key, "u2", {"country": "US"})
    assert (a.variant_key, a.config_json, a.in_experiment, a.reason) == ("baseline", {"model": "a"}, False, "fail_safe")
    # An experiment it knows nothing of: the configured default.
    assert client.get_variant("other", "u2").variant_key == "control"


def test_configured_fail_safe_variants(dead_url: str, make_client) -> None:
    client = make_client(dead_url, "t", timeout=0.2, retries=0, fail_safe_variant="off", fail_safe_variants={"ranker": "model_a"})
    assert client.get_variant("ranker", "u").variant_key == "model_a"
    assert client.get_variant("other", "u").variant_key == "off"


def test_unknown_experiment_is_the_control_not_an_error(server: ControlPlane, make_client) -> None:
    client = make_client(server.url, server.token)
    a = client.get_variant("no_such_experiment", "u1")
    assert (a.variant_key, a.in_experiment, a.reason) == ("control", False, "unknown_experiment")


def test_without_fail_safe_errors_raise(server: ControlPlane, dead_url: str, make_client) -> None:
    with pytest.raises(LitmusTransportError):
        make_client(dead_url, "t", timeout=0.2, retries=0, fail_safe_enabled=False).get_variant("e", "u")
    strict = make_client(server.url, server.token, fail_safe_enabled=False)
    with pytest.raises(LitmusApiError) as e:
        strict.get_variant("no_such_experiment", "u1")
    assert (e.value.status, e.value.code) == (404, "not_found")
    with pytest.raises(LitmusApiError) as e:
        strict.get_variant(server.new_experiment("strict"), "")
    assert (e.value.status, e.value.field) == (422, "unit_id")
    with pytest.raises(LitmusApiError) as e:
        make_client(server.url, "wrong-token", fail_safe_enabled=False).get_variant("e", "u")
    assert e.value.status == 401


def test_bad_input_is_answered_not_raised(server: ControlPlane, make_client) -> None:
    client = make_client(server.url, server.token)
    key = server.new_experiment("badinput")
    assert client.get_variant(key, "", {}).reason == "fail_safe"  # the server's 422
    assert client.get_variant(key, "u", {"when": object()}).reason == "fail_safe"  # not JSON
    assert client.get_variant(key, "u", {"x": float("nan")}).reason == "fail_safe"


def test_sticky_documents_are_kept_and_sent_back(server: ControlPlane, make_client) -> None:
    # A bandit over lasting units: the answer carries a sticky document, which the client sends
    # back with the unit's next assignment (uncached here), as the README asks of SDKs.
    key = server.new_experiment("sticky", type="bandit", unit_type="user_id")
    client = make_client(server.url, server.token, cache_ttl_seconds=0)
    first = client.get_variant(key, "u1")
    assert first.in_experiment
    doc = client._sticky.get("u1")
    assert doc and doc["unit_id"] == "u1" and any(k.startswith(f"{key}__") for k in doc["assignments"])
    again = client.get_variant(key, "u1")
    assert (again.variant_key, again.reason) == (first.variant_key, "sticky")


def test_events_echo_the_signature_of_the_answer_they_report_on(stub, make_client) -> None:
    # The edge counts an event from a client without a key only when it carries the signature of
    # the assignment it reports on; the SDK keeps each answer's signature and sends it along.
    signed = {**ASSIGNED, "signature": "2.0.0123456789abcdef"}
    s = stub([(200, signed), (202, {"accepted": 3, "duplicates": 0})])
    client = make_client(s.url, "t", flush_interval_seconds=60)
    a = client.get_variant("exp", "u1")
    assert a.signature == "2.0.0123456789abcdef"
    client.log_exposure("exp", "u1", "treatment")
    client.log_metric("exp", "u1", "treatment", "order_value", 5)
    client.log_conversion("exp", "u2", "treatment")  # another unit: no answer, no signature
    client.flush()
    events = s.requests[-1][2]["events"]
    assert [(e["unit_id"], e.get("signature"), e.get("assignment_id")) for e in events] == [
        ("u1", "2.0.0123456789abcdef", "0123456789abcdef"),
        ("u1", "2.0.0123456789abcdef", "0123456789abcdef"),
        ("u2", None, None),
    ]
