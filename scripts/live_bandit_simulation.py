#!/usr/bin/env python3
"""The five-model live bandit tutorial, against a running stack (`make run`).

    python3 scripts/live_bandit_simulation.py --base-url http://localhost:8000 [--token T]

Creates a five-arm Thompson-sampling bandit (one arm per model, request-level units), launches
it, and drives traffic through the edge (`--edge-url`, default http://localhost:8787): every
request is assigned by the edge, which logs the exposure; each model has a hidden true click
rate, and the clicks go back through the edge's `POST /v1/events`. The control plane reweights
every `--reweight-seconds` and publishes the new weights to the edge, which serves them.

Prints, as it goes:
  experiment {...}        the experiment's key and its console pages
  live_snapshot {...}     top variant, its win probability, exposures and current weights per arm
  converged {...}         once the top arm's P(best) passes 0.95 and the edge serves it to most
                          new requests, with the console URL; the experiment is left running
                          for you to stop (console: Stop; API: POST .../stop)
Bounded: at most --max-seconds and --max-requests. Exit status 0 on convergence, 1 otherwise.
Standard library only.
"""
import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

MODELS = ["model_a", "model_b", "model_c", "model_d", "model_e"]
# Hidden from the bandit: model_c is best.
DEFAULT_RATES = "0.04,0.06,0.14,0.05,0.08"


def call(method, url, token=None, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            text = res.read().decode()
            return res.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, {"error": {"message": text}}


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://localhost:8000", help="the control plane (default %(default)s)")
    p.add_argument("--edge-url", default="http://localhost:8787", help="the edge worker (default %(default)s)")
    p.add_argument("--token", default=None, help="an admin API token (make run prints it)")
    p.add_argument("--key", default=None, help="experiment key (default: five_models_<time>)")
    p.add_argument("--rates", default=DEFAULT_RATES, help="hidden click rate per model, comma-separated (default %(default)s)")
    p.add_argument("--reweight-seconds", type=int, default=2, help="the bandit's reweighting cadence (default %(default)s)")
    p.add_argument("--requests-per-round", type=int, default=300)
    p.add_argument("--max-seconds", type=float, default=300)
    p.add_argument("--max-requests", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    base, edge = args.base_url.rstrip("/"), args.edge_url.rstrip("/")
    rates = [float(x) for x in args.rates.split(",")]
    if len(rates) != len(MODELS) or not all(0 <= r <= 1 for r in rates):
        fail(f"--rates needs {len(MODELS)} numbers from 0 to 1")
    rng = random.Random(args.seed)

    for url in (f"{base}/ready", f"{edge}/v1/health"):
        try:
            status, _ = call("GET", url)
        except OSError as e:
            fail(f"{url} is not reachable ({e}); is `make run` up?")
        if status != 200:
            fail(f"{url} answered {status}")

    key = args.key or time.strftime("five_models_%Y%m%d_%H%M%S")
    body = {
        "key": key,
        "name": "Five models, live",
        "description": "live_bandit_simulation.py: five ranking models, Thompson sampling at the edge",
        "type": "bandit",
        "unit_type": "request_id",
        "targeting": {},
        "variants": [{"key": m, "weight": 0.2, "config_json": {"model": m}} for m in MODELS],
        "metrics": [{"name": "click", "kind": "proportion", "role": "primary"}],
        "bandit": {"policy": "thompson", "reweight_every_seconds": args.reweight_seconds, "min_units_per_arm": 100},
    }
    status, created = call("POST", f"{base}/api/v1/experiments", args.token, body)
    if status == 401:
        fail("the control plane wants a token: --token <the admin token make run printed>")
    if status != 201:
        fail(f"creating the experiment answered {status}: {created}")
    status, launched = call("POST", f"{base}/api/v1/experiments/{key}/launch", args.token, {"ramp_pct": 100, "actor": "live_bandit_simulation"})
    if status != 200:
        fail(f"launching answered {status}: {launched}")
    console = f"{base}/experiments/{created['id']}"
    print("experiment " + json.dumps({"key": key, "id": created["id"], "console": console, "results": f"{console}/results",
                                       "rates_hidden_from_the_bandit": dict(zip(MODELS, rates))}), flush=True)

    # The edge serves it once the publish reached it.
    deadline = time.time() + 30
    while True:
        _, probe = call("GET", f"{edge}/v1/assign?experiment={key}&unit_id=probe&expose=false")
        if probe and probe["assignments"][0]["reason"] not in ("unknown_experiment", "no_config", "not_running"):
            break
        if time.time() > deadline:
            fail("the edge did not serve the experiment within 30 s")
        time.sleep(0.3)

    def one_request(n):
        unit = f"{key}-req-{n}"
        status, answer = call("GET", f"{edge}/v1/assign?experiment={key}&unit_id={unit}")
        if status != 200:
            return None
        a = answer["assignments"][0]
        # The click echoes the answer's signature: the edge counts no event without one.
        return unit, a["variant_key"], a.get("signature")

    start, sent, last_snapshot, converged = time.time(), 0, 0.0, False
    with ThreadPoolExecutor(max_workers=8) as pool:
        while time.time() - start < args.max_seconds and sent < args.max_requests:
            served = [r for r in pool.map(one_request, range(sent, sent + args.requests_per_round)) if r]
            sent += args.requests_per_round
            clicks = [{"kind": "conversion", "experiment": key, "unit_id": u, "variant_key": v, "metric": "click", "signature": sig}
                      for u, v, sig in served if rng.random() < rates[MODELS.index(v)]]
            for i in range(0, len(clicks), 500):
                status, answer = call("POST", f"{edge}/v1/events", None, {"events": clicks[i:i + 500]})
                if status != 202:
                    fail(f"logging clicks answered {status}: {answer}")
            share = {m: sum(1 for _, v, _ in served if v == m) / max(len(served), 1) for m in MODELS}
            if time.time() - last_snapshot >= 2:
                last_snapshot = time.time()
                status, b = call("GET", f"{base}/api/v1/experiments/{key}/bandit", args.token)
                if status != 200:
                    fail(f"the bandit readout answered {status}: {b}")
                arms = {a["key"]: a for a in b["variants"]}
                top = b["top_variant"]
                print("live_snapshot " + json.dumps({
                    "t": round(time.time() - start, 1),
                    "requests": sent,
                    "top_variant": top,
                    "win_probability": round(arms[top]["win_probability"], 4) if top else None,
                    "exposures": {m: arms[m]["exposures"] for m in MODELS},
                    "weights": {m: round(arms[m]["weight"], 4) for m in MODELS},
                    "edge_share_last_round": {m: round(share[m], 3) for m in MODELS},
                    "stage": b["stage"],
                    "weights_version": b["weights_version"],
                }), flush=True)
                if b["converged"] and top and share[top] >= 0.8:
                    converged = True
                    print("converged " + json.dumps({
                        "top_variant": top,
                        "win_probability": round(arms[top]["win_probability"], 4),
                        "weight": round(arms[top]["weight"], 4),
                        "edge_share_last_round": round(share[top], 3),
                        "requests": sent,
                        "seconds": round(time.time() - start, 1),
                        "regret": b.get("regret"),
                        "console": console,
                    }), flush=True)
                    break
    print(f"left running. Stop it in the console ({console}: Stop) or with:\n"
          f"  curl -X POST -H 'Authorization: Bearer <token>' {base}/api/v1/experiments/{key}/stop", flush=True)
    if not converged:
        print(f"not converged after {sent} requests in {time.time() - start:.0f} s", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
