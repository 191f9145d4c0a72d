#!/usr/bin/env python3
"""Events for the README's walk-through, as `POST /api/v1/events/batch` takes them.

    python3 scripts/walkthrough-events.py checkout_cta > events.json
    python3 scripts/walkthrough-events.py ranker > ranker-events.json
    python3 scripts/walkthrough-events.py signup_flow > signup-events.json
    python3 scripts/walkthrough-events.py new_checkout > checkout-events.json

Deterministic (a fixed seed), so the README's numbers come out the same on every run:
- checkout_cta (variants blue, green): 2000 units exposed, about 12 % of blue and 14 % of green
  buy; each purchase is a `purchase` conversion and an `order_value` metric (around 100).
- ranker (a bandit with arms m1, m2, m3): 1000 requests per arm, `click` conversions at about
  10 %, 14 % and 15 %.
- signup_flow (variants control, treatment at 50/50): 600 and 400 units exposed, a sample ratio
  mismatch (a redirect losing treatment users, say); `signup` conversions at about 20 %.
- new_checkout (control, treatment): 300 units each; `errors` conversions at about 4 % and 20 %.
Every event has an `event_id` derived from its content, so sending the file twice stores it once.
"""
import json
import random
import sys
import uuid

NAMESPACE = uuid.UUID("6f1d3c9e-1f4b-4c59-9a51-3f7e2b1c0d8a")


def event(kind, experiment, unit, variant, **extra):
    e = {"kind": kind, "experiment": experiment, "unit_id": unit, "variant_key": variant, **extra}
    e["event_id"] = str(uuid.uuid5(NAMESPACE, json.dumps(e, sort_keys=True)))
    return e


def checkout_cta(rng):
    events = []
    for i in range(2000):
        unit = f"shopper-{i:04d}"
        variant = rng.choice(["blue", "green"])
        events.append(event("exposure", "checkout_cta", unit, variant))
        if rng.random() < (0.12 if variant == "blue" else 0.14):
            events.append(event("conversion", "checkout_cta", unit, variant, metric="purchase"))
            value = round(max(5.0, rng.gauss(101.0 if variant == "blue" else 103.5, 26.0)), 2)
            events.append(event("metric", "checkout_cta", unit, variant, metric="order_value", value=value))
    return events


def exposed_and_converting(rng, experiment, prefix, metric, arms):
    """`arms`: (variant, units, conversion rate); unit ids `<prefix>-<variant>-<i>`."""
    events = []
    for variant, units, rate in arms:
        for i in range(units):
            unit = f"{prefix}-{variant}-{i:04d}"
            events.append(event("exposure", experiment, unit, variant))
            if rng.random() < rate:
                events.append(event("conversion", experiment, unit, variant, metric=metric))
    return events


def ranker(rng):
    return exposed_and_converting(rng, "ranker", "req", "click", (("m1", 1000, 0.10), ("m2", 1000, 0.14), ("m3", 1000, 0.15)))


def signup_flow(rng):
    return exposed_and_converting(rng, "signup_flow", "visitor", "signup", (("control", 600, 0.2), ("treatment", 400, 0.2)))


def new_checkout(rng):
    return exposed_and_converting(rng, "new_checkout", "buyer", "errors", (("control", 300, 0.04), ("treatment", 300, 0.20)))


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    makers = {"checkout_cta": checkout_cta, "ranker": ranker, "signup_flow": signup_flow, "new_checkout": new_checkout}
    if which not in makers:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(makers)} > events.json")
    json.dump({"events": makers[which](random.Random(7))}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
