#!/usr/bin/env python3
"""Smoke test of the self-serve flow against a running control plane (`make run`).

    python3 scripts/smoke_self_serve.py --base-url http://localhost:8000 [--token T]

Steps: health and readiness → create a draft (a key of its own) → launch → assignment (the same
answer twice; a unit outside targeting gets the control) → an exposure and a metric → results
that show them → pause → stop. One line per step with what it saw; on the first failure a FAIL
line says what went wrong, and the exit status is 1.

The token: --token, else the first of ADMIN_API_TOKENS, else LITMUS_TOKEN (`make run` prints
the admin token it generated). Built on the Python SDK in sdk/python, taken from this checkout,
so plain python3 runs it without installing anything.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

SDK = Path(__file__).resolve().parent.parent / "sdk" / "python" / "src"
if SDK.is_dir():
    # This checkout's SDK, matching this checkout's control plane, before any installed copy.
    sys.path.insert(0, str(SDK))

from litmus import ExperimentClient, LitmusApiError, LitmusError  # noqa: E402

VARIANTS = [
    {"key": "control", "name": "Control", "weight": 0.5, "config_json": {"layout": "classic"}},
    {"key": "treatment", "name": "Treatment", "weight": 0.5, "config_json": {"layout": "compact"}},
]
METRIC, AMOUNT = "order_value", 1250.30


class StepFailed(Exception):
    pass


def default_token() -> Optional[str]:
    admin = [t.strip() for t in os.environ.get("ADMIN_API_TOKENS", "").split(",") if t.strip()]
    return admin[0] if admin else (os.environ.get("LITMUS_TOKEN") or None)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://localhost:8000", help="the control plane (default %(default)s)")
    p.add_argument("--token", default=None, help="an admin API token (default: ADMIN_API_TOKENS's first, else LITMUS_TOKEN)")
    p.add_argument("--key", default=None, help="experiment key (default: smoke_<time>_<random>)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default %(default)s)")
    p.add_argument("--results-wait", type=float, default=20.0, help="seconds to wait for the events in the results (default %(default)s)")
    args = p.parse_args(argv)
    base = args.base_url.rstrip("/")
    token = args.token or default_token()
    key = args.key or f"smoke_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:6]}"
    started = time.monotonic()

    # fail_safe_enabled=False: a smoke test wants the error, not the fallback a service would.
    client = ExperimentClient(base, token, timeout=args.timeout, retries=1, cache_ttl_seconds=0, fail_safe_enabled=False)
    state: Dict[str, Any] = {"launched": False}
    print(f"smoke: {base}, experiment {key}, {'with' if token else 'without'} a token", flush=True)

    def step(name: str, run: Callable[[], str]) -> None:
        try:
            seen = run()
        except StepFailed as e:
            raise StepFailed(f"{name}: {e}") from None
        except LitmusApiError as e:
            hint = ""
            if e.status == 401:
                hint = " (pass --token <the admin token `make run` printed>, or set ADMIN_API_TOKENS or LITMUS_TOKEN)"
            raise StepFailed(f"{name}: {e}{hint}") from None
        except LitmusError as e:
            raise StepFailed(f"{name}: {e} (is the control plane up? `make run` starts it)") from None
        print(f"ok    {name:<8} {seen}", flush=True)

    def health() -> str:
        h = client.health()
        expect(h.get("status") == "ok", f"GET /health answered {h}")
        return f"GET /health: status {h['status']}"

    def ready() -> str:
        r = client.ready()
        expect(r.get("status") == "ready", f"GET /ready answered {r}")
        return f"GET /ready: status {r['status']}, database {r.get('database')}"

    def create() -> str:
        e = client.create_experiment({
            "key": key,
            "name": f"Smoke {key}",
            "description": "scripts/smoke_self_serve.py: the self-serve flow end to end",
            "owner_team": "smoke",
            "created_by": "smoke_self_serve",
            "unit_type": "user_id",
            "targeting": {"country": {"in": ["US", "CA"]}},
            "ramp_pct": 0,
            "variants": VARIANTS,
        })
        expect(e.get("status") == "draft", f"expected a draft, got status {e.get('status')!r}")
        expect([v.get("key") for v in e.get("variants", [])] == ["control", "treatment"], f"variants came back as {e.get('variants')}")
        state["id"] = e.get("id")
        return f"draft {e['key']} (id {e.get('id')}, version {e.get('version')}, variants control/treatment 50/50, targeting country in US, CA)"

    def launch() -> str:
        e = client.launch_experiment(key, ramp_pct=100, actor="smoke_self_serve")
        state["launched"] = True
        expect(e.get("status") == "running", f"expected running, got status {e.get('status')!r}")
        return f"status running, ramp {e.get('ramp_pct')} %, version {e.get('version')}"

    def assign() -> str:
        unit = "smoke-unit-1"
        a = client.get_variant(key, unit, {"country": "US"})
        expect(a.in_experiment and a.reason == "assigned", f"expected the unit in the experiment, got {a}")
        expect(a.variant_key in ("control", "treatment"), f"unknown variant {a.variant_key!r}")
        again = client.get_variant(key, unit, {"country": "US"})  # the cache is off: a second request
        expect(again == a, f"the same request answered differently: {a} then {again}")
        out = client.get_variant(key, "smoke-unit-2", {"country": "FR"})
        expect(not out.in_experiment and out.variant_key == "control", f"a unit outside targeting should get the control, got {out}")
        state["unit"], state["variant"] = unit, a.variant_key
        return (f"{unit} (US) -> {a.variant_key} {a.config_json}, assignment {a.assignment_id}, version {a.version}, "
                f"same answer twice; smoke-unit-2 (FR) -> control, reason {out.reason}")

    def events() -> str:
        unit, variant = state["unit"], state["variant"]
        client.log_exposure(key, unit, variant, {"country": "US"})
        client.log_metric(key, unit, variant, METRIC, AMOUNT)
        accepted = client.flush()
        s = client.stats()
        expect(accepted == 2, f"the control plane accepted {accepted} of 2 events (rejected {s.rejected}, dropped {s.dropped}, still queued {s.queued})")
        return f"exposure + {METRIC}={AMOUNT} for {unit} in {variant}: accepted {accepted}, duplicates {s.duplicates}"

    def results() -> str:
        variant = state["variant"]
        since = time.monotonic()
        deadline = since + args.results_wait
        while True:
            r = client.get_results(key)
            row = next((v for v in r.get("variants", []) if v.get("key") == variant), None)
            if row is None:
                raise StepFailed(f"no row for variant {variant!r} in {r.get('variants')}")
            m = (row.get("metrics") or {}).get(METRIC) or {}
            if row.get("exposures", 0) >= 1 and m.get("count", 0) >= 1:
                return (f"{variant}: {row['exposures']} exposure(s), {METRIC} count {m.get('count')} sum {m.get('sum')}; "
                        f"control {r.get('control')!r}, status {r.get('status')} (after {time.monotonic() - since:.1f} s)")
            if time.monotonic() > deadline:
                raise StepFailed(f"the results still show {row.get('exposures')} exposures and {METRIC} {m} after {args.results_wait:.0f} s")
            time.sleep(0.25)

    def pause() -> str:
        e = client.pause_experiment(key, actor="smoke_self_serve")
        expect(e.get("status") == "paused", f"expected paused, got status {e.get('status')!r}")
        return f"status paused, version {e.get('version')}"

    def stop() -> str:
        e = client.stop_experiment(key, actor="smoke_self_serve")
        expect(e.get("status") == "stopped", f"expected stopped, got status {e.get('status')!r}")
        state["launched"] = False
        return f"status stopped, version {e.get('version')}, stopped_at {e.get('stopped_at')}"

    steps = [("health", health), ("ready", ready), ("create", create), ("launch", launch), ("assign", assign),
             ("events", events), ("results", results), ("pause", pause), ("stop", stop)]
    try:
        for name, run in steps:
            step(name, run)
    except StepFailed as e:
        print(f"FAIL  {e}", file=sys.stderr, flush=True)
        if state["launched"]:
            # Not left running in someone's console.
            try:
                client.stop_experiment(key, actor="smoke_self_serve")
                print(f"      (stopped {key})", file=sys.stderr)
            except LitmusError as stop_error:
                print(f"      ({key} is still running; stopping it failed too: {stop_error})", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"smoke passed: {len(steps)} steps in {time.monotonic() - started:.1f} s (experiment {key}, id {state.get('id')})")
    return 0


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise StepFailed(message)


if __name__ == "__main__":
    sys.exit(main())
