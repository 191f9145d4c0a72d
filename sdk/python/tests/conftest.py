"""The real stack for the SDK's tests: a fresh database on a real Postgres and the real control
plane binary, as tests/e2e/stack.mjs starts them; plus a tiny HTTP stub for fault injection.

Postgres: DATABASE_URL when set (scripts/test.sh points it at a throwaway cluster), else a cluster
of our own from the system's binaries (scripts/pg.sh), removed at the end. The binary:
LITMUS_CONTROL_PLANE_BIN, else target/debug/litmus-control-plane (`cargo build -p
litmus-control-plane`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import pytest

SDK = Path(__file__).resolve().parents[1]
ROOT = SDK.parents[1]
# This clone's SDK, whichever copy the virtualenv has installed.
sys.path.insert(0, str(SDK / "src"))

from litmus import ExperimentClient  # noqa: E402

ADMIN = "sdk-test-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition", every: float = 0.1) -> Any:
    """Polls `check` until it returns something truthy; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except Exception as e:  # noqa: BLE001 - keep polling; shown if it never passes
            last = e
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
        time.sleep(every)


def http_json(method: str, url: str, body: Any = None, token: Optional[str] = ADMIN) -> Tuple[int, Any]:
    """A plain request, outside the SDK (to compare with what the SDK says)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            text = res.read().decode()
            return res.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, json.loads(text) if text else None


class ControlPlane:
    """The control plane binary on a port of its own; `stop()` and `start()` again at will."""

    def __init__(self, database_url: str, log_dir: Path, name: str = "control-plane") -> None:
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ADMIN
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATABASE_URL": self.database_url,
            "LITMUS_ADDR": f"127.0.0.1:{self.port}",
            "ADMIN_API_TOKENS": ADMIN,
            # Answers and sticky documents signed, as `make run` and a deployment do.
            "SIGNING_KEYS": "6c69746d75732d746573742d6b657931",
            "RUST_LOG": "warn",
        }
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(control_plane_bin())], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the control plane exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as res:
                    if res.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the control plane was not ready within 60 s:\n{self.logs()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def api(self, method: str, path: str, body: Any = None) -> Tuple[int, Any]:
        return http_json(method, f"{self.url}/api/v1{path}", body)

    def requests_to(self, route: str) -> int:
        """How many requests the server answered on `route` (its Prometheus counter)."""
        req = urllib.request.Request(f"{self.url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(req, timeout=5) as res:
            text = res.read().decode()
        total = 0
        for line in text.splitlines():
            if line.startswith("http_requests_total{") and f'route="{route}"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def new_experiment(self, prefix: str = "exp", *, launch: bool = True, **fields: Any) -> str:
        """Creates (and launches, at 100 %) an experiment with a unique key; returns the key."""
        key = f"{prefix}_{uuid.uuid4().hex[:10]}"
        body = {
            "key": key,
            "name": key,
            "variants": [
                {"key": "control", "weight": 0.5, "config_json": {"color": "blue"}},
                {"key": "treatment", "weight": 0.5, "config_json": {"color": "green"}},
            ],
            **fields,
        }
        status, created = self.api("POST", "/experiments", body)
        assert status == 201, created
        if launch:
            status, launched = self.api("POST", f"/experiments/{key}/launch", {"ramp_pct": 100})
            assert status == 200, launched
        return key

    def results(self, key: str) -> Dict[str, Any]:
        status, body = self.api("GET", f"/experiments/{key}/results")
        assert status == 200, body
        return body

    def wait_results(self, key: str, check: Callable[[Dict[str, Any]], bool], timeout: float = 20.0) -> Dict[str, Any]:
        """The experiment's results once `check` accepts them (the aggregator runs apart)."""
        return wait_for(lambda: (lambda r: r if check(r) else None)(self.results(key)), timeout, f"results of {key}")


def control_plane_bin() -> Path:
    given = os.environ.get("LITMUS_CONTROL_PLANE_BIN")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = Path(given) if given else target / "debug" / "litmus-control-plane"
    if not path.exists():
        pytest.fail(f"{path} is missing: build it first (cargo build -p litmus-control-plane)")
    return path


def exposures(results: Dict[str, Any]) -> Dict[str, int]:
    return {v["key"]: v.get("exposures", 0) for v in results.get("variants", [])}


def metric(results: Dict[str, Any], variant: str, name: str) -> Dict[str, Any]:
    row = next(v for v in results["variants"] if v["key"] == variant)
    return (row.get("metrics") or {}).get(name) or {}


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="litmus-sdk-tests."))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given
        return
    # A directory of its own, directly under /tmp: as root the server runs as `postgres`, which
    # must be able to enter it (pg.sh hands it over).
    pgdir, port = tempfile.mkdtemp(prefix="litmus-sdk-pg."), free_port()
    pg = str(ROOT / "scripts" / "pg.sh")
    try:
        subprocess.run([pg, "start", pgdir, str(port)], check=True)
        yield subprocess.check_output([pg, "url", str(port)], text=True).strip()
    finally:
        subprocess.run([pg, "stop", pgdir], check=False)
        shutil.rmtree(pgdir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the test cluster, dropped at the end."""
    name = f"sdk_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = urllib.parse.urlsplit(postgres_url)._replace(path="/postgres").geturl()
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
    yield urllib.parse.urlsplit(postgres_url)._replace(path=f"/{name}").geturl()
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False, capture_output=True)


@pytest.fixture(scope="session")
def server(database_url: str, workdir: Path) -> Iterator[ControlPlane]:
    """The control plane most tests share (each test makes experiments of its own)."""
    cp = ControlPlane(database_url, workdir)
    cp.start()
    yield cp
    cp.stop()


@pytest.fixture
def own_server(database_url: str, workdir: Path) -> Iterator[ControlPlane]:
    """A second control plane on the same database, for a test to stop."""
    cp = ControlPlane(database_url, workdir, name="own")
    cp.start()
    yield cp
    cp.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., ExperimentClient]]:
    """ExperimentClient(...) that is closed at the end of the test."""
    made: List[ExperimentClient] = []

    def make(*args: Any, **kwargs: Any) -> ExperimentClient:
        c = ExperimentClient(*args, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def dead_url() -> str:
    """A port where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


# -- a stub server for faults ------------------------------------------------------------------

Reply = Union[Tuple[int, Any], Tuple[int, Any, Dict[str, str]], Tuple[int, Any, Dict[str, str], float]]


class Stub:
    """Answers each request with the next reply in `replies` (the last one repeats), or with
    `handler(method, path, body)`. A reply is (status, body[, headers[, delay seconds]]); a body
    that is not bytes or str is sent as JSON. Records every request."""

    def __init__(self, replies: Optional[List[Reply]] = None, handler: Optional[Callable[[str, str, Any], Reply]] = None) -> None:
        self.replies = list(replies or [])
        self.handler = handler
        self.requests: List[Tuple[str, str, Any]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                with stub._lock:
                    stub.requests.append((self.command, self.path, body))
                    if stub.handler is None:
                        reply = stub.replies.pop(0) if len(stub.replies) > 1 else stub.replies[0]
                if stub.handler is not None:
                    reply = stub.handler(self.command, self.path, body)
                status, payload = reply[0], reply[1]
                headers = reply[2] if len(reply) > 2 else {}
                delay = reply[3] if len(reply) > 3 else 0.0
                if delay:
                    time.sleep(delay)
                data = payload if isinstance(payload, bytes) else payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def count(self, path_prefix: str = "") -> int:
        with self._lock:
            return sum(1 for _, p, _ in self.requests if p.startswith(path_prefix))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Callable[..., Stub]]:
    made: List[Stub] = []

    def make(replies: Optional[List[Reply]] = None, handler: Optional[Callable[[str, str, Any], Reply]] = None) -> Stub:
        s = Stub(replies, handler)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


ASSIGNED = {
    "experiment": "exp",
    "variant_key": "treatment",
    "config_json": {"color": "green"},
    "assignment_id": "0123456789abcdef",
    "version": 2,
    "in_experiment": True,
    "reason": "assigned",
}
