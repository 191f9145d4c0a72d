#!/usr/bin/env python3
"""Independent re-implementation of the engine (shared/README.md), checked against the test
vectors: hash version 1, both targeting dialects (ours and GrowthBook's, with JavaScript's value
rules), saved groups. Written from the README, not from the Rust; standard library only (XXH64
below), so it runs anywhere `python3` does:

    python3 shared/testdata/check_vectors.py
"""
import json
import math
import pathlib
import re
import sys

BUCKETS = 10_000

# --- XXH64 -----------------------------------------------------------------------------------

P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                      0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)
M = (1 << 64) - 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def _round(acc, lane):
    return (_rotl((acc + lane * P2) & M, 31) * P1) & M


def _merge(acc, v):
    return ((acc ^ _round(0, v)) * P1 + P4) & M


def xxh64(seed: int, data: bytes) -> int:
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = _round(v[k], int.from_bytes(data[i + 8 * k:i + 8 * k + 8], "little"))
            i += 32
        acc = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M
        for k in range(4):
            acc = _merge(acc, v[k])
    else:
        acc = (seed + P5) & M
    acc = (acc + n) & M
    while i + 8 <= n:
        acc = (_rotl(acc ^ _round(0, int.from_bytes(data[i:i + 8], "little")), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        acc = (_rotl(acc ^ (int.from_bytes(data[i:i + 4], "little") * P1 & M), 23) * P2 + P3) & M
        i += 4
    while i < n:
        acc = (_rotl(acc ^ (data[i] * P5 & M), 11) * P1) & M
        i += 1
    acc ^= acc >> 33
    acc = acc * P2 & M
    acc ^= acc >> 29
    acc = acc * P3 & M
    return acc ^ (acc >> 32)


# --- JavaScript's value rules (GrowthBook's dialect) -------------------------------------------

def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def js_num_str(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_num_str(-x)
    mantissa, _, exp = repr(float(x)).partition("e")
    int_part, _, frac = mantissa.partition(".")
    digits_all = int_part + frac
    lead = len(digits_all) - len(digits_all.lstrip("0"))
    digits = digits_all.strip("0")
    k = len(digits)
    n = (int(exp) if exp else 0) + len(int_part) - lead
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    return digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def js_str(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if is_num(v):
        return js_num_str(float(v))
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return ",".join("" if x is None else js_str(x) for x in v)
    return "[object Object]"


JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def js_num(v) -> float:
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if is_num(v):
        return float(v)
    if isinstance(v, list):
        return js_num(js_str(v))
    if isinstance(v, dict):
        return math.nan
    s = v.strip(JS_SPACE)
    if s == "":
        return 0.0
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if s[:2].lower() == prefix:
            try:
                return float(int(s[2:], base)) if s[2:].isalnum() else math.nan
            except ValueError:
                return math.nan
    if s.lstrip("+-") == "Infinity" and len(s) - len(s.lstrip("+-")) <= 1:
        return -math.inf if s.startswith("-") else math.inf
    return float(s) if DECIMAL.match(s) else math.nan


def truthy(v) -> bool:
    if v is None or v is False:
        return False
    if is_num(v):
        return v != 0 and not math.isnan(v)
    if isinstance(v, str):
        return v != ""
    return True


def strict_eq(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_num(a) and is_num(b):
        return float(a) == float(b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def json_eq(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_eq(a[k], b[k]) for k in a)
    return strict_eq(a, b)


def utf16(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def js_cmp(a, b):
    """-1/0/1 as JavaScript's `<` would order them, or None (NaN)."""
    pa = js_str(a) if isinstance(a, (list, dict)) else a
    pb = js_str(b) if isinstance(b, (list, dict)) else b
    if isinstance(pa, str) and isinstance(pb, str):
        x, y = utf16(pa), utf16(pb)
    else:
        x, y = js_num(pa), js_num(pb)
        if math.isnan(x) or math.isnan(y):
            return None
    return (x > y) - (x < y)


def padded(v) -> str:
    if is_num(v):
        v = js_str(v)
    if not v or not isinstance(v, str):
        v = "0"
    v = re.sub(r"^v|\+.*$", "", v)
    parts = re.split(r"[-.]", v)
    if len(parts) == 3:
        parts.append("~")
    return "-".join(p.rjust(5) if re.fullmatch(r"[0-9]+", p) else p for p in parts)


def gb_path(obj, path):
    cur = obj
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part == "length":
            cur = len(cur)
        elif isinstance(cur, list) and part.isdigit() and str(int(part)) == part and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def gb_cond(obj, cond, groups) -> bool:
    for k, v in cond.items():
        if k == "$or":
            if v and not any(gb_cond(obj, c, groups) for c in v):
                return False
        elif k == "$nor":
            if v and any(gb_cond(obj, c, groups) for c in v):
                return False
        elif k == "$and":
            if not all(gb_cond(obj, c, groups) for c in v):
                return False
        elif k == "$not":
            if gb_cond(obj, v, groups):
                return False
        elif not gb_value(v, gb_path(obj, k), groups):
            return False
    return True


def is_ops(v) -> bool:
    return isinstance(v, dict) and len(v) > 0 and all(k.startswith("$") for k in v)


def gb_value(cond, value, groups, insensitive=False) -> bool:
    if isinstance(cond, str):
        return js_str(value).lower() == cond.lower() if insensitive else js_str(value) == cond
    if isinstance(cond, bool):
        return value is not None and truthy(value) == cond
    if is_num(cond):
        return js_num(value) == cond
    if cond is None:
        return value is None
    if not is_ops(cond):
        return json_eq(value, cond)
    return all(gb_op(op, value, arg, groups) for op, arg in cond.items())


def is_in(actual, expected, insensitive=False):
    fold = (lambda x: x.lower() if isinstance(x, str) else x) if insensitive else (lambda x: x)
    one = lambda a: any(strict_eq(fold(a), fold(e)) for e in expected)
    return any(one(a) for a in actual) if isinstance(actual, list) else one(actual)


def gb_op(op, actual, expected, groups) -> bool:
    if op.startswith("$v"):
        a, b = utf16(padded(actual)), utf16(padded(expected))
        return {"$veq": a == b, "$vne": a != b, "$vgt": a > b, "$vgte": a >= b, "$vlt": a < b, "$vlte": a <= b}[op]
    if op in ("$lt", "$lte", "$gt", "$gte"):
        c = js_cmp(actual, expected)
        return c is not None and {"$lt": c < 0, "$lte": c <= 0, "$gt": c > 0, "$gte": c >= 0}[op]
    if op == "$eq":
        return strict_eq(actual, expected)
    if op == "$ne":
        return not strict_eq(actual, expected)
    if op == "$exists":
        return (actual is not None) == truthy(expected)
    if op in ("$in", "$nin", "$ini", "$nini"):
        return is_in(actual, expected, op.endswith("i")) != op.startswith("$n")
    if op in ("$inGroup", "$notInGroup"):
        return is_in(actual, groups.get(expected, [])) != (op == "$notInGroup")
    if op == "$not":
        return not gb_value(expected, actual, groups)
    if op == "$size":
        return isinstance(actual, list) and gb_value(expected, len(actual), groups)
    if op == "$elemMatch":
        if not isinstance(actual, list):
            return False
        check = (lambda x: gb_value(expected, x, groups)) if is_ops(expected) else (lambda x: gb_cond(x, expected, groups))
        return any(x is not None and check(x) for x in actual)
    if op in ("$all", "$alli"):
        return isinstance(actual, list) and all(any(gb_value(e, a, groups, op == "$alli") for a in actual) for e in expected)
    if op in ("$regex", "$regexi"):
        return re.search(expected, js_str(actual), re.IGNORECASE if op == "$regexi" else 0) is not None
    if op == "$type":
        t = ("null" if actual is None else "array" if isinstance(actual, list) else "boolean" if isinstance(actual, bool)
             else "number" if is_num(actual) else "string" if isinstance(actual, str) else "object")
        return t == expected
    raise ValueError(f"unknown operator {op}")


# --- Our dialect -------------------------------------------------------------------------------

RUST_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def as_number(v):
    if is_num(v):
        return float(v)
    if isinstance(v, str) and RUST_FLOAT.match(v.strip()):
        f = float(v.strip())
        return f if math.isfinite(f) else None
    return None


def as_text(v):
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    return None


def same(a, b) -> bool:
    """JSON equality: bools are not numbers, numbers compare by value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_num(a) and is_num(b):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def loose_eq(attr, want) -> bool:
    if isinstance(attr, list) and isinstance(want, list):
        return len(attr) == len(want) and all(loose_eq(a, w) for a, w in zip(attr, want))
    if is_num(attr) or is_num(want):
        a, w = as_number(attr), as_number(want)
        return a is not None and w is not None and a == w
    if isinstance(attr, str) and isinstance(want, bool):
        return attr == ("true" if want else "false")
    if isinstance(attr, bool) and isinstance(want, str):
        return want == ("true" if attr else "false")
    return same(attr, want)


def any_element(value, f) -> bool:
    if isinstance(value, list) and value:
        return any(f(x) for x in value)
    return f(value)


def equals(value, want) -> bool:
    return loose_eq(value, want) if isinstance(want, list) else any_element(value, lambda x: loose_eq(x, want))


def version(s):
    m = re.fullmatch(r"[vV]?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+].*)?", s.strip())
    return None if not m else tuple(int(x or 0) for x in m.groups())


def semver_ok(req: str, v) -> bool:
    for part in req.split(","):
        m = re.fullmatch(r"\s*(>=|<=|>|<|=|\^|~)?\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*", part)
        op, nums = m.group(1) or "^", [m.group(i) for i in (2, 3, 4)]
        base = tuple(int(x or 0) for x in nums)
        if op == "^":
            top = (base[0] + 1, 0, 0) if base[0] > 0 or nums[1] is None else (0, base[1] + 1, 0)
            ok = base <= v < top
        elif op == "~":
            ok = base <= v < ((base[0], base[1] + 1, 0) if nums[1] is not None else (base[0] + 1, 0, 0))
        else:
            ok = {">=": v >= base, "<=": v <= base, ">": v > base, "<": v < base, "=": v == base}[op]
        if not ok:
            return False
    return True


def ours_lookup(attrs, name):
    if name in attrs:
        return attrs[name], True
    parts = name.split(".")
    if parts[0] not in attrs:
        return None, False
    cur = attrs[parts[0]]
    for p in parts[1:]:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and str(int(p)) == p and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            return None, False
    return cur, True


def ours_test(op, arg, value) -> bool:
    if value is None:
        if op in ("in", "nin"):
            return any(w is None for w in arg) == (op == "in")
        return {"eq": arg is None, "ne": arg is not None, "exists": arg is False}.get(op, False)
    if op == "eq":
        return equals(value, arg)
    if op == "ne":
        return not equals(value, arg)
    if op == "in":
        return any(equals(value, w) for w in arg)
    if op == "nin":
        return not any(equals(value, w) for w in arg)
    if op in ("gt", "gte", "lt", "lte"):
        if is_num(arg):
            a = as_number(value)
            if a is None:
                return False
            c = (a > arg) - (a < arg)
        else:
            t = as_text(value)
            if t is None:
                return False
            c = (t > arg) - (t < arg)
        return {"gt": c > 0, "gte": c >= 0, "lt": c < 0, "lte": c <= 0}[op]
    if op == "exists":
        return arg is True
    if op == "regex":
        return any_element(value, lambda x: as_text(x) is not None and re.search(arg, as_text(x)) is not None)
    if op == "semver":
        v = version(value) if isinstance(value, str) else None
        return v is not None and semver_ok(arg, v)
    raise ValueError(f"unknown operator {op}")


def ours_cond(attrs, cond) -> bool:
    for key, v in cond.items():
        if key == "and":
            ok = all(ours_cond(attrs, c) for c in v)
        elif key == "or":
            ok = any(ours_cond(attrs, c) for c in v)
        elif key == "not":
            ok = not ours_cond(attrs, v)
        else:
            value, _ = ours_lookup(attrs, key)
            tests = v.items() if isinstance(v, dict) else [("eq", v)]
            ok = all(ours_test(op, arg, value) for op, arg in tests)
        if not ok:
            return False
    return True


def has_dollar(v) -> bool:
    if isinstance(v, dict):
        return any(k.startswith("$") or has_dollar(x) for k, x in v.items())
    return isinstance(v, list) and any(has_dollar(x) for x in v)


def matches(cond, attrs, groups) -> bool:
    if not cond:
        return True
    return gb_cond(attrs, cond, groups) if has_dollar(cond) else ours_cond(attrs, cond)


# --- Assignment --------------------------------------------------------------------------------

def expected(e: dict, unit: str, attrs: dict, groups: dict) -> dict:
    seed = xxh64(0, (e.get("salt") or e["key"]).encode())
    u = unit.encode()

    def answer(i: int, reason: str) -> dict:
        v = e["variants"][i]
        aid = xxh64(seed, b"assignment:" + u + b"\0" + v["key"].encode())
        return {"experiment": e["key"], "variant_key": v["key"], "config_json": v.get("config_json"),
                "assignment_id": f"{aid:016x}", "version": e["version"],
                "in_experiment": reason == "assigned", "reason": reason}

    if e["status"] != "running":
        return answer(0, "not_running")
    layer = e.get("layer")
    if layer:
        b = xxh64(xxh64(0, b"layer:" + layer["key"].encode()), u) % BUCKETS
        if not layer["start"] <= b < layer["end"]:
            return answer(0, "layer")
    if not matches(e.get("targeting"), attrs, groups):
        return answer(0, "targeting")
    threshold = min(round(e["ramp_pct"] * 100), BUCKETS) if e["ramp_pct"] > 0 else 0
    if threshold < BUCKETS and xxh64(seed, b"ramp:" + u) % BUCKETS >= threshold:
        return answer(0, "ramp")
    b = xxh64(seed, b"variant:" + u) % BUCKETS
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
    failed = targeted = 0
    for case in doc["cases"]:
        targeted += bool(case["experiment"]["targeting"])
        got = expected(case["experiment"], case["unit_id"], case["attributes"], case.get("saved_groups") or {})
        if got != case["expected"]:
            failed += 1
            print(f"MISMATCH {case['name']}: python {got} file {case['expected']}")
    print(f"{len(doc['cases'])} cases checked ({targeted} with targeting), {failed} mismatches")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
