"""scripts/smoke_self_serve.py, run as the brief runs it: plain python3, nothing installed."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT, ControlPlane

SCRIPT = ROOT / "scripts" / "smoke_self_serve.py"
STEPS = ["health", "ready", "create", "launch", "assign", "events", "results", "pause", "stop"]


def smoke(*args: str, env: dict) -> subprocess.CompletedProcess:
    # -S: without site-packages, so the SDK can only come from the checkout, as for a bare python3.
    return subprocess.run([sys.executable, "-S", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def bare_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ADMIN_API_TOKENS", "LITMUS_TOKEN", "PYTHONPATH")}
    env.update(extra)
    return env


def test_smoke_passes_against_the_control_plane(server: ControlPlane) -> None:
    done = smoke("--base-url", server.url, "--token", server.token, env=bare_env())
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("ok ")] == STEPS
    results = next(line for line in lines if line.split()[1:2] == ["results"])
    assert "1 exposure(s)" in results and "order_value count 1 sum 1250.3" in results
    assert lines[-1].startswith("smoke passed: 9 steps")
    key = lines[0].split("experiment ")[1].split(",")[0]
    status, experiment = server.api("GET", f"/experiments/{key}")
    assert status == 200 and experiment["status"] == "stopped"


def test_smoke_takes_the_token_from_the_environment(server: ControlPlane) -> None:
    done = smoke("--base-url", server.url, env=bare_env(ADMIN_API_TOKENS=f"{server.token},another"))
    assert done.returncode == 0, done.stdout + done.stderr
    done = smoke("--base-url", server.url, env=bare_env(LITMUS_TOKEN=server.token))
    assert done.returncode == 0, done.stdout + done.stderr


def test_smoke_fails_clearly_without_a_token(server: ControlPlane) -> None:
    done = smoke("--base-url", server.url, env=bare_env())
    assert done.returncode == 1
    assert "FAIL  create: HTTP 401" in done.stderr and "--token" in done.stderr


def test_smoke_fails_against_a_dead_port(dead_url: str) -> None:
    done = smoke("--base-url", dead_url, "--token", "t", env=bare_env())
    assert done.returncode == 1
    assert "FAIL  health:" in done.stderr and "Connection refused" in done.stderr
    assert "ok " not in done.stdout
