"""Events against the real control plane: batching, flushing, idempotency, threads, fork, exit."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from typing import Any, List

import pytest
from conftest import ADMIN, SDK, ControlPlane, exposures, metric, wait_for

BATCH = "/api/v1/events/batch"


def total_exposures(server: ControlPlane, key: str, expected: int) -> int:
    r = server.wait_results(key, lambda r: sum(exposures(r).values()) >= expected)
    return sum(exposures(r).values())


def test_events_land_with_their_fields(server: ControlPlane, make_client) -> None:
    key = server.new_experiment("fields")
    client = make_client(server.url, server.token, flush_interval_seconds=60)
    client.log_exposure(key, "u1", "treatment", {"country": "US", "plan": "pro"})
    client.log_metric(key, "u1", "treatment", "order_value", 99.5)
    client.log_metric(key, "u1", "treatment", "order_value", 3)  # integer amounts stay integers
    client.log_conversion(key, "u1", "treatment")
    client.log_conversion(key, "u1", "treatment", "purchase")
    assert client.flush() == 5
    r = server.wait_results(key, lambda r: metric(r, "treatment", "order_value").get("count") == 2
                            and "purchase" in next(v for v in r["variants"] if v["key"] == "treatment")["conversions"])
    assert exposures(r) == {"control": 0, "treatment": 1}
    assert metric(r, "treatment", "order_value")["sum"] == 102.5
    conversions = next(v for v in r["variants"] if v["key"] == "treatment")["conversions"]
    assert conversions["conversion"]["units"] == 1 and conversions["purchase"]["units"] == 1


def test_batches_leave_when_batch_size_is_reached(server: ControlPlane, make_client) -> None:
    key = server.new_experiment("bysize")
    client = make_client(server.url, server.token, batch_size=10, flush_interval_seconds=60)
    before = server.requests_to(BATCH)
    for i in range(25):
        client.log_exposure(key, f"u{i}", "control")
    # Two full batches go by themselves; the remaining 5 wait for the interval or a flush.
    wait_for(lambda: client.stats().accepted == 20, 10, "two full batches")
    time.sleep(0.3)
    st = client.stats()
    assert (st.accepted, st.queued, st.batches_sent) == (20, 5, 2)
    assert server.requests_to(BATCH) == before + 2
    assert client.flush() == 5
    assert server.requests_to(BATCH) == before + 3
    assert total_exposures(server, key, 25) == 25


def test_batches_leave_every_flush_interval(server: ControlPlane, make_client) -> None:
    key = server.new_experiment("byinterval")
    client = make_client(server.url, server.token, batch_size=1000, flush_interval_seconds=0.3)
    started = time.monotonic()
    for i in range(3):
        client.log_exposure(key, f"u{i}", "control")
    wait_for(lambda: client.stats().accepted == 3, 10, "the interval's flush")
    assert time.monotonic() - started < 3
    assert client.stats().batches_sent == 1


def test_close_and_the_context_manager_flush(server: ControlPlane) -> None:
    from litmus import ExperimentClient

    key = server.new_experiment("close")
    with ExperimentClient(server.url, server.token, flush_interval_seconds=60) as client:
        client.log_exposure(key, "u1", "control")
        client.log_exposure(key, "u2", "treatment")
    st = client.stats()
    assert (st.accepted, st.queued) == (2, 0)
    # Closed: further events are refused with a warning, nothing raised.
    assert client.log_exposure(key, "u3", "control") is None
    assert client.close() == 0
    assert total_exposures(server, key, 2) == 2


def test_events_are_flushed_at_interpreter_exit(server: ControlPlane) -> None:
    key = server.new_experiment("atexit")
    script = textwrap.dedent(f"""
        from litmus import ExperimentClient
        client = ExperimentClient({server.url!r}, {server.token!r}, flush_interval_seconds=60)
        for i in range(7):
            client.log_exposure({key!r}, f"u{{i}}", "control")
        # no flush, no close: the interpreter's exit sends them
    """)
    env = {**os.environ, "PYTHONPATH": str(SDK / "src")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert total_exposures(server, key, 7) == 7


class DroppingProxy:
    """Forwards to the control plane, but loses the answer to the first event batch: the
    server stored it, the client saw a 502 and sends the same batch again."""

    def __init__(self, stub_factory: Any, target: str) -> None:
        self.lost = 0
        self.answers: List[Any] = []

        def handler(method: str, path: str, body: Any):
            data = json.dumps(body).encode() if body is not None else None
            headers = {"content-type": "application/json", "authorization": f"Bearer {ADMIN}"}
            req = urllib.request.Request(target + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as res:
                    status, text = res.status, res.read().decode()
            except urllib.error.HTTPError as e:
                status, text = e.code, e.read().decode()
            self.answers.append((path, status, text))
            if path == BATCH and self.lost == 0:
                self.lost += 1
                return 502, {"error": {"code": "bad_gateway", "message": "the answer was lost"}}
            return status, text

        self.stub = stub_factory(handler=handler)


def test_a_batch_sent_twice_is_counted_once(server: ControlPlane, stub, make_client) -> None:
    key = server.new_experiment("dedup")
    proxy = DroppingProxy(stub, server.url)
    client = make_client(proxy.stub.url, server.token, retries=2, flush_interval_seconds=60)
    for i in range(10):
        client.log_exposure(key, f"u{i}", "treatment")
        client.log_metric(key, f"u{i}", "treatment", "order_value", 10)
    # The first send was stored but its answer lost; the retry is all duplicates.
    assert client.flush() == 0
    st = client.stats()
    assert (st.accepted, st.duplicates, st.queued) == (0, 20, 0)
    batches = [a for a in proxy.answers if a[0] == BATCH]
    assert [json.loads(b[2]) for b in batches] == [{"accepted": 20, "duplicates": 0}, {"accepted": 0, "duplicates": 20}]
    r = server.wait_results(key, lambda r: metric(r, "treatment", "order_value").get("count", 0) >= 10)
    assert metric(r, "treatment", "order_value")["count"] == 10  # not 20
    assert metric(r, "treatment", "order_value")["sum"] == 100


def test_rejected_events_are_reported_and_the_rest_land(server: ControlPlane, make_client, caplog) -> None:
    key = server.new_experiment("rejected")
    client = make_client(server.url, server.token, flush_interval_seconds=60)
    client.log_exposure(key, "u1", "control")
    client.log_exposure(key, "u2", "no_such_variant")
    with caplog.at_level(logging.WARNING, logger="litmus"):
        assert client.flush() == 1
    st = client.stats()
    assert (st.accepted, st.rejected, st.dropped) == (1, 1, 0)
    assert "rejected 1 of 2 events" in caplog.text and "no_such_variant" in caplog.text


def test_invalid_events_are_refused_at_log_time(server: ControlPlane, make_client, caplog) -> None:
    client = make_client(server.url, server.token, flush_interval_seconds=60)
    with caplog.at_level(logging.WARNING, logger="litmus"):
        assert client.log_metric("e", "u", "control", "order_value", float("nan")) is None
        assert client.log_metric("e", "u", "control", "order_value", "12") is None  # type: ignore[arg-type]
        assert client.log_metric("e", "u", "control", "order_value", True) is None
        assert client.log_exposure("e", "", "control") is None
        assert client.log_exposure("e", "u", "control", {"at": object()}) is None
    assert client.stats().queued == 0
    assert "finite number" in caplog.text
    from litmus import ExperimentClient

    strict = ExperimentClient(server.url, server.token, fail_safe_enabled=False)
    with pytest.raises(ValueError):
        strict.log_metric("e", "u", "control", "order_value", float("inf"))
    strict.close()


def test_many_threads_logging_lose_nothing(server: ControlPlane, make_client) -> None:
    key = server.new_experiment("threads")
    client = make_client(server.url, server.token, batch_size=50, flush_interval_seconds=0.05)
    threads, per_thread = 8, 250
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            unit = f"t{t}-u{i}"
            variant = client.get_variant(key, unit).variant_key if i % 50 == 0 else ("control", "treatment")[i % 2]
            client.log_exposure(key, unit, variant)
            if i % 100 == 0:
                client.flush()  # callers flushing while the thread sends

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    client.close()
    st = client.stats()
    n = threads * per_thread
    assert (st.accepted, st.duplicates, st.rejected, st.dropped, st.queued) == (n, 0, 0, 0, 0)
    assert total_exposures(server, key, n) == n


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_sends_only_its_own_events(server: ControlPlane, make_client) -> None:
    key = server.new_experiment("fork")
    client = make_client(server.url, server.token, batch_size=1000, flush_interval_seconds=60)
    for i in range(5):
        client.log_exposure(key, f"parent-{i}", "control")
    assert client.stats().queued == 5
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 1
        try:
            os.close(read)
            report: dict = {"queued_at_start": client.stats().queued}
            for i in range(3):
                client.log_exposure(key, f"child-{i}", "treatment")
            # The child's own thread sends on size too.
            report["accepted"] = client.flush()
            report["stats"] = client.stats().__dict__
            os.write(write, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        report = json.loads(f.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert report["queued_at_start"] == 0
    assert report["accepted"] == 3 and report["stats"]["duplicates"] == 0
    # The parent's events are still the parent's, sent once.
    assert client.stats().queued == 5
    assert client.flush() == 5
    assert client.stats().duplicates == 0
    r = server.wait_results(key, lambda r: sum(exposures(r).values()) >= 8)
    assert exposures(r) == {"control": 5, "treatment": 3}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_gets_a_working_background_thread(server: ControlPlane, make_client) -> None:
    key = server.new_experiment("forkthread")
    client = make_client(server.url, server.token, batch_size=1000, flush_interval_seconds=0.2)
    client.log_exposure(key, "parent-0", "control")  # the parent's thread is running
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            client.log_exposure(key, "child-0", "treatment")
            deadline = time.monotonic() + 10
            while client.stats().accepted < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            code = 0 if client.stats().accepted == 1 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    wait_for(lambda: client.stats().accepted == 1, 10, "the parent's own flush")
    r = server.wait_results(key, lambda r: sum(exposures(r).values()) >= 2)
    assert exposures(r) == {"control": 1, "treatment": 1}
