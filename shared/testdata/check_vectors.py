#!/usr/bin/env python3
"""Independent re-implementation of hash version 1 (shared/README.md), checked against the test
vectors: every case without targeting must come out exactly as the file says.

    pip install xxhash && python3 shared/testdata/check_vectors.py
"""
import json
import pathlib
import sys

import xxhash

BUCKETS = 10_000


def h(seed: int, data: bytes) -> int:
    return xxhash.xxh64_intdigest(data, seed=seed)


def expected(e: dict, unit: str) -> dict:
    seed = h(0, (e.get("salt") or e["key"]).encode())
    u = unit.encode()

    def answer(i: int, reason: str) -> dict:
        v = e["variants"][i]
        aid = h(seed, b"assignment:" + u + b"\0" + v["key"].encode())
        return {"experiment": e["key"], "variant_key": v["key"], "config_json": v.get("config_json"),
                "assignment_id": f"{aid:016x}", "version": e["version"],
                "in_experiment": reason == "assigned", "reason": reason}

    if e["status"] != "running":
        return answer(0, "not_running")
    layer = e.get("layer")
    if layer:
        b = h(h(0, b"layer:" + layer["key"].encode()), u) % BUCKETS
        if not layer["start"] <= b < layer["end"]:
            return answer(0, "layer")
    threshold = min(round(e["ramp_pct"] * 100), BUCKETS) if e["ramp_pct"] > 0 else 0
    if threshold < BUCKETS and h(seed, b"ramp:" + u) % BUCKETS >= threshold:
        return answer(0, "ramp")
    b = h(seed, b"variant:" + u) % BUCKETS
    cumulative, last = 0.0, None
    for i, v in enumerate(e["variants"]):
        if v["weight"] > 0:
            cumulative += v["weight"]
            last = i
            if b < round(cumulative * BUCKETS):
                return answer(i, "assigned")
    return answer(last, "assigned")


def main() -> int:
    doc = json.loads((pathlib.Path(__file__).parent / "vectors.v1.json").read_text())
    checked = failed = 0
    for case in doc["cases"]:
        if case["experiment"]["targeting"]:
            continue
        checked += 1
        got = expected(case["experiment"], case["unit_id"])
        if got != case["expected"]:
            failed += 1
            print(f"MISMATCH {case['name']}: python {got} file {case['expected']}")
    print(f"{checked} hashing cases checked, {failed} mismatches")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
