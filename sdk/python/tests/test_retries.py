"""Retries on transient failures only, against a stub that injects them."""

from __future__ import annotations

import logging
import time
import urllib.request

import pytest
from conftest import ASSIGNED
from litmus import LitmusApiError, LitmusProtocolError
from litmus._http import Transport

ERROR = {"error": {"code": "x", "message": "m"}}


@pytest.mark.parametrize("transient", [503, 502, 504, 429])
def test_transient_statuses_are_retried(stub, make_client, transient: int) -> None:
    s = stub([(transient, ERROR), (transient, ERROR), (200, ASSIGNED)])
    a = make_client(s.url, "t", retries=2).get_variant("exp", "u1")
    assert (a.variant_key, a.reason) == ("treatment", "assigned")
    assert s.count("/api/v1/assign") == 3


def test_retries_run_out_into_the_fail_safe(stub, make_client, caplog) -> None:
    s = stub([(503, ERROR)])
    with caplog.at_level(logging.WARNING, logger="litmus"):
        a = make_client(s.url, "t", retries=2).get_variant("exp", "u1")
    assert a.reason == "fail_safe"
    assert s.count() == 3  # one try and two retries
    assert "503" in caplog.text


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 500])
def test_other_errors_are_not_retried(stub, make_client, status: int) -> None:
    s = stub([(status, {"error": {"code": "validation_failed", "message": "no", "field": "unit_id"}}), (200, ASSIGNED)])
    a = make_client(s.url, "t", retries=3).get_variant("exp", "u1")
    assert not a.in_experiment and a.variant_key == "control"
    assert a.reason == ("unknown_experiment" if status == 404 else "fail_safe")
    assert s.count() == 1


def test_a_timeout_is_retried(stub, make_client) -> None:
    s = stub([(200, ASSIGNED, {}, 1.0), (200, ASSIGNED)])
    started = time.monotonic()
    a = make_client(s.url, "t", timeout=0.3, retries=1).get_variant("exp", "u1")
    assert a.reason == "assigned"
    assert s.count() == 2
    assert time.monotonic() - started < 1.0


def test_a_server_that_stays_slow_gives_the_fail_safe_in_bounded_time(stub, make_client) -> None:
    s = stub([(200, ASSIGNED, {}, 2.0)])
    started = time.monotonic()
    a = make_client(s.url, "t", timeout=0.2, retries=2).get_variant("exp", "u1")
    assert a.reason == "fail_safe"
    assert s.count() == 3
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    "body",
    [
        "<html>502 Bad Gateway</html>",  # not JSON
        {"variant_key": None, "in_experiment": True},  # not an assignment
        {"variant_key": "treatment"},  # no in_experiment
        [1, 2, 3],
        "",
    ],
)
def test_garbage_answers_give_the_fail_safe_without_retrying(stub, make_client, body) -> None:
    s = stub([(200, body)])
    a = make_client(s.url, "t", retries=2).get_variant("exp", "u1")
    assert (a.variant_key, a.reason) == ("control", "fail_safe")
    assert s.count() == 1
    with pytest.raises(LitmusProtocolError):
        make_client(s.url, "t", fail_safe_enabled=False).get_variant("exp", "u1")


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    slept = []
    t = Transport("http://x", timeout=1, retries=3, backoff_base=0.1, backoff_max=2.0, sleep=slept.append, jitter=lambda: 1.0)
    # Exponential: 0.1, 0.2, 0.4, ... capped at 2.0; jitter 1.0 is the top of each step.
    assert [t._delay(n, None) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    t0 = Transport("http://x", timeout=1, retries=3, backoff_base=0.1, backoff_max=2.0, jitter=lambda: 0.0)
    assert [t0._delay(n, None) for n in range(3)] == [0.05, 0.1, 0.2]  # never below half a step
    assert t._delay(0, 1.5) == 1.5
    assert t._delay(0, 30.0) == 2.0


def test_backoff_sleeps_between_tries(stub) -> None:
    s = stub([(503, ERROR, {"retry-after": "0.3"}), (503, ERROR), (200, {"ok": True})])
    slept = []
    t = Transport(s.url, timeout=1, retries=2, sleep=slept.append, jitter=lambda: 0.5)
    assert t.request("GET", "/x") == (200, {"ok": True})
    assert slept == pytest.approx([0.3, 0.15])  # Retry-After, then the backoff
    # Not retried when the caller says so (a create is not idempotent).
    s2 = stub([(503, ERROR)])
    with pytest.raises(LitmusApiError) as e:
        Transport(s2.url, timeout=1, retries=5).request("POST", "/x", {}, retry=False)
    assert e.value.status == 503 and s2.count() == 1


def test_an_event_batch_is_retried_with_the_same_event_ids(stub, make_client) -> None:
    s = stub([(503, ERROR), (202, {"accepted": 2, "duplicates": 0})])
    client = make_client(s.url, "t", retries=1, flush_interval_seconds=60)
    ids = [client.log_exposure("exp", "u1", "control"), client.log_metric("exp", "u1", "control", "order_value", 12)]
    assert client.flush() == 2
    sent = [body for _, path, body in s.requests if path == "/api/v1/events/batch"]
    assert len(sent) == 2 and sent[0] == sent[1]
    assert [e["event_id"] for e in sent[0]["events"]] == ids


def test_a_batch_that_keeps_failing_stays_queued(stub, make_client) -> None:
    s = stub([(503, ERROR)])
    client = make_client(s.url, "t", retries=0, flush_interval_seconds=60)
    client.log_exposure("exp", "u1", "control")
    assert client.flush() == 0
    st = client.stats()
    assert (st.queued, st.failed_sends, st.dropped) == (1, 1, 0)
    s.replies = [(202, {"accepted": 1, "duplicates": 0})]
    assert client.flush() == 1
    assert client.stats().queued == 0


def test_a_batch_refused_with_4xx_is_dropped_not_retried(stub, make_client, caplog) -> None:
    refused = {"error": {"code": "validation_failed", "message": "all 1 events were rejected", "field": "events[0].experiment"},
               "rejected": [{"index": 0, "code": "not_found", "field": "events[0].experiment", "message": "experiment `exp` not found"}]}
    s = stub([(422, refused)])
    client = make_client(s.url, "t", retries=3, flush_interval_seconds=60)
    client.log_exposure("exp", "u1", "control")
    with caplog.at_level(logging.WARNING, logger="litmus"):
        assert client.flush() == 0
    assert s.count() == 1
    assert "refused a batch" in caplog.text
    st = client.stats()
    assert (st.queued, st.rejected, st.dropped) == (0, 1, 0)
    assert client.flush() == 0 and s.count() == 1  # not sent again
    s.replies = [(401, {"error": {"code": "unauthorized", "message": "missing or invalid bearer token"}})]
    client.log_exposure("exp", "u1", "control")
    client.flush()
    assert client.stats().dropped == 1 and client.stats().queued == 0


def test_the_edge_answer_is_read(stub, make_client) -> None:
    edge = stub([(200, {"unit_id": "u1", "config_version": 7, "assignments": [dict(ASSIGNED, experiment="exp")]})])
    client = make_client("http://127.0.0.1:9", "admin-token", edge_url=edge.url)
    a = client.get_variant("exp", "u1", {"country": "US"})
    assert (a.variant_key, a.config_json, a.assignment_id, a.version, a.reason) == ("treatment", {"color": "green"}, "0123456789abcdef", 2, "assigned")
    method, path, body = edge.requests[0]
    assert (method, path) == ("POST", "/v1/assign")
    assert body == {"unit_id": "u1", "attributes": {"country": "US"}, "experiments": ["exp"], "expose": False}
    # The version it was answered from goes back with the next request (min_version), so that an
    # edge isolate holding an older set re-reads it before answering.
    edge.replies = [(200, {"unit_id": "u2", "config_version": 7, "assignments": [dict(ASSIGNED, experiment="exp")]})]
    client.get_variant("exp", "u2")
    assert edge.requests[1][2]["min_version"] == 7
    # An experiment the edge does not serve, and an edge without config: the control.
    edge.replies = [(200, {"unit_id": "u1", "config_version": 7, "assignments": [
        {"experiment": "nope", "variant_key": None, "config_json": None, "in_experiment": False, "reason": "unknown_experiment"}]})]
    assert client.get_variant("nope", "u1").reason == "unknown_experiment"
    edge.replies = [(200, {"unit_id": "u1", "config_version": None, "assignments": [
        {"experiment": "x", "variant_key": None, "config_json": None, "in_experiment": False, "reason": "no_config"}]})]
    assert client.get_variant("x", "u1").reason == "fail_safe"


def test_the_admin_token_is_not_sent_to_the_edge(stub, make_client, monkeypatch) -> None:
    edge = stub([(200, {"assignments": [ASSIGNED]})])
    seen = []
    original = urllib.request.urlopen

    def spy(req, *args, **kwargs):
        seen.append({k.lower() for k, _ in req.header_items()})
        return original(req, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", spy)
    make_client("http://127.0.0.1:9", "admin-token", edge_url=edge.url).get_variant("exp", "u1")
    assert seen and "authorization" not in seen[0]


def test_an_outage_costs_one_attempt_per_interval_not_per_event(stub, make_client) -> None:
    s = stub([(503, ERROR)])
    client = make_client(s.url, "t", retries=0, batch_size=2, flush_interval_seconds=60)
    for i in range(20):
        client.log_exposure("exp", f"u{i}", "control")
        time.sleep(0.01)
    time.sleep(0.3)
    assert s.count() == 1
    assert client.stats().queued == 20
