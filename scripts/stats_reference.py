#!/usr/bin/env python3
"""Reference outputs for the statistics engine, from scipy and statsmodels.

Run on demand (not in the test path):
    pip install -r scripts/stats_requirements.txt
    python3 scripts/stats_reference.py > control-plane/tests/fixtures/stats/reference.json

Datasets are generated from fixed seeds. Each carries its per-unit data and, per comparison of a
variant against the first arm (the control), what the reference libraries compute. Where no
library implements a method (mSPRT, delta-method relative CI, Hedges' exact J, Beta expected
loss), the formula is implemented here independently with scipy's distributions and quadrature.
The Rust tests (control-plane/tests/stats_fixtures.rs) compare with these numbers.
"""
import json
import math
import sys

import numpy as np
from scipy import integrate, special, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportions_ztest

ALPHA = 0.05
TUNING_N = 5000.0


def none_if_bad(x):
    return None if x is None or not np.isfinite(x) else float(x)


def welch(c, t):
    if len(c) < 2 or len(t) < 2 or (np.var(c) == 0 and np.var(t) == 0):
        return None
    r = stats.ttest_ind(t, c, equal_var=False)
    ci = r.confidence_interval(1 - ALPHA)
    return {"abs_lift": float(np.mean(t) - np.mean(c)), "p_value": float(r.pvalue), "ci_low": float(ci.low), "ci_high": float(ci.high)}


def delta_rel_ci(mc, vc, mt, vt):
    if mc == 0:
        return None
    r = mt / mc - 1
    se = math.sqrt(vt / mc**2 + mt**2 * vc / mc**4)
    z = stats.norm.ppf(1 - ALPHA / 2)
    return [r - z * se, r + z * se]


def mann_whitney(c, t):
    if len(c) < 1 or len(t) < 1 or np.all(np.concatenate([c, t]) == c[0]):
        return None
    # scipy's default: exact when an arm has at most 8 units and nothing is tied.
    r = stats.mannwhitneyu(t, c, alternative="two-sided", method="auto", use_continuity=True)
    pooled = np.concatenate([c, t])
    exact = (len(c) <= 8 or len(t) <= 8) and len(np.unique(pooled)) == len(pooled)
    # Cliff's delta by brute force over pairs: independent of the U formula.
    diff = np.subtract.outer(np.asarray(t), np.asarray(c))
    delta = (np.sum(diff > 0) - np.sum(diff < 0)) / diff.size
    return {"u": float(r.statistic), "p_value": float(r.pvalue), "cliffs_delta": float(delta),
            "method": "exact" if exact else "asymptotic"}


def effect(c, t):
    n1, n2 = len(c), len(t)
    if n1 < 2 or n2 < 2:
        return None
    df = n1 + n2 - 2
    sp = math.sqrt(((n1 - 1) * np.var(c, ddof=1) + (n2 - 1) * np.var(t, ddof=1)) / df)
    if sp == 0:
        return None
    d = (np.mean(t) - np.mean(c)) / sp
    j = math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)
    return {"cohens_d": float(d), "hedges_g": float(d * j)}


def bootstrap(c, t, seed):
    if len(c) < 2 or len(t) < 2:
        return None
    res = stats.bootstrap((np.asarray(t), np.asarray(c)), lambda a, b, axis=-1: np.mean(a, axis=axis) - np.mean(b, axis=axis),
                          vectorized=True, n_resamples=20000, method="percentile", confidence_level=1 - ALPHA,
                          random_state=np.random.default_rng(seed))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def msprt(d, v, n):
    if not v > 0:
        return None
    l = -2 * math.log(ALPHA)
    rho2 = (l + math.log(l + 1)) / TUNING_N
    tau2 = rho2 * n * v
    half = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / ALPHA) + math.log((v + tau2) / v)))
    lam = math.sqrt(v / (v + tau2)) * math.exp(tau2 * d * d / (2 * v * (v + tau2)))
    return {"ci_low": d - half, "ci_high": d + half, "p_value": min(1.0, 1 / lam)}


def cuped_theta(arms):
    """Pooled within-arm slope: OLS of y on arm dummies + x (ANCOVA), via numpy lstsq."""
    ys = np.concatenate([a["values"] for a in arms])
    xs = np.concatenate([a["pre"] for a in arms])
    dummies = np.zeros((len(ys), len(arms)))
    start = 0
    for i, a in enumerate(arms):
        dummies[start:start + len(a["values"]), i] = 1
        start += len(a["values"])
    design = np.column_stack([dummies, xs])
    if np.allclose(xs - dummies @ np.linalg.lstsq(dummies, xs, rcond=None)[0], 0):
        return None
    coef = np.linalg.lstsq(design, ys, rcond=None)[0]
    return float(coef[-1])


def cuped(c, t, theta):
    if theta is None or len(c["values"]) < 2 or len(t["values"]) < 2:
        return None
    adj_c = np.asarray(c["values"]) - theta * np.asarray(c["pre"])
    adj_t = np.asarray(t["values"]) - theta * np.asarray(t["pre"])
    r = stats.ttest_ind(adj_t, adj_c, equal_var=False)
    ci = r.confidence_interval(1 - ALPHA)
    v_adj = np.var(adj_c, ddof=1) / len(adj_c) + np.var(adj_t, ddof=1) / len(adj_t)
    v_raw = np.var(c["values"], ddof=1) / len(adj_c) + np.var(t["values"], ddof=1) / len(adj_t)
    return {"theta": theta, "abs_lift": float(np.mean(adj_t) - np.mean(adj_c)), "p_value": float(r.pvalue),
            "ci_low": float(ci.low), "ci_high": float(ci.high), "variance_reduction": float(1 - v_adj / v_raw)}


def normal_bayes(c, t, prior_sd=None):
    vc, vt = np.var(c, ddof=1) / len(c), np.var(t, ddof=1) / len(t)
    v = vc + vt
    d = np.mean(t) - np.mean(c)
    if prior_sd:
        post = 1 / (1 / v + 1 / prior_sd**2)
        d, v = post * d / v, post
    s = math.sqrt(v)
    # Losses by quadrature over the posterior of the difference (independent of the closed form).
    loss = integrate.quad(lambda x: max(-x, 0) * stats.norm.pdf(x, d, s), d - 40 * s, d + 40 * s, points=[0.0], limit=200, epsabs=1e-13)[0]
    loss_c = integrate.quad(lambda x: max(x, 0) * stats.norm.pdf(x, d, s), d - 40 * s, d + 40 * s, points=[0.0], limit=200, epsabs=1e-13)[0]
    return {"prob_beats_control": float(stats.norm.cdf(d / s)), "expected_loss": loss, "expected_loss_control": loss_c}


def prob_best(dists):
    """P(arm i is max) = ∫ f_i(x) Π_j F_j(x) dx by quad, over each density's effective support."""
    out = []
    for i, di in enumerate(dists):
        lo, hi = di.ppf(1e-14), di.isf(1e-14)
        f = lambda x: di.pdf(x) * np.prod([dj.cdf(x) for j, dj in enumerate(dists) if j != i])
        out.append(integrate.quad(f, lo, hi, limit=500, epsabs=1e-12, epsrel=1e-10)[0])
    return out


def beta_pairwise(pc, pt):
    lo = min(pc.ppf(1e-14), pt.ppf(1e-14))
    hi = max(pc.isf(1e-14), pt.isf(1e-14))
    p = integrate.quad(lambda x: pt.pdf(x) * pc.cdf(x), lo, hi, limit=500, epsabs=1e-12)[0]
    # E[max(C − T, 0)] as a double integral of the joint density.
    loss = integrate.dblquad(lambda y, x: (x - y) * pc.pdf(x) * pt.pdf(y), lo, hi, lambda x: lo, lambda x: x, epsabs=1e-12)[0]
    loss_c = integrate.dblquad(lambda y, x: (x - y) * pt.pdf(x) * pc.pdf(y), lo, hi, lambda x: lo, lambda x: x, epsabs=1e-12)[0]
    return {"prob_beats_control": p, "expected_loss": loss, "expected_loss_control": loss_c}


def means_dataset(name, arms, seed, prior_sd=None):
    arms = [{"key": k, "values": [float(v) for v in vals], "pre": [float(v) for v in pre]} for k, vals, pre in arms]
    theta = cuped_theta(arms) if all(len(a["values"]) >= 2 for a in arms) else None
    c = arms[0]
    comparisons = []
    for t in arms[1:]:
        cv, tv = np.asarray(c["values"]), np.asarray(t["values"])
        w = welch(cv, tv)
        comp = {"variant": t["key"], "welch": w}
        ok = len(cv) >= 2 and len(tv) >= 2
        vc = np.var(cv, ddof=1) / len(cv) if ok else None
        vt = np.var(tv, ddof=1) / len(tv) if ok else None
        comp["rel_ci"] = delta_rel_ci(np.mean(cv), vc, np.mean(tv), vt) if ok and w else None
        comp["mann_whitney"] = mann_whitney(cv, tv)
        comp["effect"] = effect(cv, tv)
        comp["bootstrap"] = bootstrap(cv, tv, seed) if w else None
        comp["sequential"] = msprt(w["abs_lift"], vc + vt, len(cv) + len(tv)) if w else None
        comp["cuped"] = cuped(c, t, theta) if w else None
        comp["bayes"] = normal_bayes(cv, tv, prior_sd) if w else None
        comparisons.append(comp)
    best = None
    if all(len(a["values"]) >= 2 and np.var(a["values"], ddof=1) > 0 for a in arms):
        best = prob_best([stats.norm(np.mean(a["values"]), math.sqrt(np.var(a["values"], ddof=1) / len(a["values"]))) for a in arms])
    return {"name": name, "kind": "mean", "alpha": ALPHA, "prior_sd": prior_sd, "arms": arms, "comparisons": comparisons, "prob_best": best}


def prop_dataset(name, arms, prior=(1.0, 1.0)):
    arms = [{"key": k, "converted": int(x), "units": int(n)} for k, x, n in arms]
    c = arms[0]
    comparisons = []
    posts = [stats.beta(prior[0] + a["converted"], prior[1] + a["units"] - a["converted"]) for a in arms]
    for i, t in enumerate(arms[1:], start=1):
        cx, cn, tx, tn = c["converted"], c["units"], t["converted"], t["units"]
        comp = {"variant": t["key"]}
        pooled = (cx + tx) / (cn + tn)
        if 0 < pooled < 1:
            _, p = proportions_ztest([tx, cx], [tn, cn])
            pc, pt = cx / cn, tx / tn
            se = math.sqrt(pc * (1 - pc) / cn + pt * (1 - pt) / tn)
            z = stats.norm.ppf(1 - ALPHA / 2)
            comp["z_test"] = {"abs_lift": pt - pc, "p_value": float(p), "ci_low": pt - pc - z * se, "ci_high": pt - pc + z * se}
            table = np.array([[cx, cn - cx], [tx, tn - tx]])
            for key, corr in (("chi2", False), ("chi2_yates", True)):
                r = stats.chi2_contingency(table, correction=corr)
                comp[key] = {"statistic": float(r.statistic), "p_value": float(r.pvalue)}
            comp["min_expected"] = float(r.expected_freq.min())
            comp["rel_ci"] = delta_rel_ci(pc, pc * (1 - pc) / cn, pt, pt * (1 - pt) / tn) if pc > 0 else None
            comp["sequential"] = msprt(pt - pc, se * se, cn + tn) if se > 0 else None
        else:
            comp["z_test"] = None
        comp["fisher"] = {"p_value": float(stats.fisher_exact([[cx, cn - cx], [tx, tn - tx]]).pvalue)}
        comp["bayes"] = beta_pairwise(posts[0], posts[i])
        comparisons.append(comp)
    return {"name": name, "kind": "proportion", "alpha": ALPHA, "prior": list(prior), "arms": arms, "comparisons": comparisons,
            "posterior_ci": [[float(p.ppf(ALPHA / 2)), float(p.ppf(1 - ALPHA / 2))] for p in posts],
            "prob_best": prob_best(posts)}


def gen_means():
    out = []
    rng = lambda s: np.random.default_rng(s)

    def arm(r, n, mu, sd, pre_corr=0.6):
        pre = r.normal(mu, sd, n)
        vals = mu + pre_corr * (pre - mu) + math.sqrt(1 - pre_corr**2) * r.normal(0, sd, n)
        return np.round(vals, 6), np.round(pre, 6)

    r = rng(1)
    out.append(means_dataset("balanced_normal_no_effect", [("a", *arm(r, 50, 10, 2)), ("b", *arm(r, 50, 10, 2))], 1))
    r = rng(2)
    out.append(means_dataset("balanced_normal_effect", [("a", *arm(r, 200, 10, 2)), ("b", *arm(r, 200, 10.6, 2))], 2))
    r = rng(3)
    out.append(means_dataset("unbalanced_20_vs_300", [("a", *arm(r, 20, 5, 1)), ("b", *arm(r, 300, 5.3, 3))], 3))
    r = rng(4)
    out.append(means_dataset("tiny_3_vs_4", [("a", [1.0, 2.0, 4.0], [0.5, 2.0, 3.0]), ("b", [3.0, 5.0, 4.0, 7.0], [2.0, 4.0, 4.5, 6.0])], 4))
    out.append(means_dataset("two_units_each", [("a", [1.0, 3.0], [0.0, 1.0]), ("b", [2.0, 6.0], [1.0, 0.0])], 5))
    r = rng(6)
    v, p = arm(r, 5000, 100, 40)
    v2, p2 = arm(r, 5000, 101, 40)
    out.append(means_dataset("large_5000", [("a", v, p), ("b", v2, p2)], 6))
    r = rng(7)
    out.append(means_dataset("lognormal_skewed", [("a", np.round(r.lognormal(3, 1, 400), 2), np.round(r.lognormal(3, 1, 400), 2)),
                                                  ("b", np.round(r.lognormal(3.1, 1, 450), 2), np.round(r.lognormal(3, 1, 450), 2))], 7))
    r = rng(8)
    out.append(means_dataset("ties_small_integers", [("a", r.integers(0, 4, 120).astype(float), r.integers(0, 4, 120).astype(float)),
                                                     ("b", r.integers(0, 5, 130).astype(float), r.integers(0, 4, 130).astype(float))], 8))
    r = rng(9)
    out.append(means_dataset("ties_mostly_zero", [("a", (r.random(300) < 0.1) * r.integers(1, 50, 300).astype(float), r.integers(0, 3, 300).astype(float)),
                                                  ("b", (r.random(300) < 0.15) * r.integers(1, 50, 300).astype(float), r.integers(0, 3, 300).astype(float))], 9))
    out.append(means_dataset("zero_variance_control", [("a", [5.0] * 10, [1.0] * 5 + [2.0] * 5), ("b", [5.0, 6.0, 7.0, 5.5, 6.5, 5.0, 6.0, 7.0, 5.5, 6.5], [1.0, 2.0] * 5)], 10))
    out.append(means_dataset("zero_variance_both", [("a", [5.0] * 6, [1.0] * 6), ("b", [7.0] * 6, [1.0] * 6)], 11))
    out.append(means_dataset("one_unit_control", [("a", [5.0], [1.0]), ("b", [5.0, 6.0, 7.0], [1.0, 2.0, 3.0])], 12))
    out.append(means_dataset("empty_variant", [("a", [5.0, 6.0, 7.0], [1.0, 2.0, 3.0]), ("b", [], [])], 13))
    r = rng(14)
    # Sufficient statistics are raw power sums in f64: the variance keeps about
    # 16 − 2·log10(|mean| / sd) significant digits, so |mean| / sd = 1e4 still gives 1e-8.
    v, p = arm(r, 300, 1e6, 100)
    v2, p2 = arm(r, 300, 1e6 + 15, 100)
    out.append(means_dataset("huge_magnitudes", [("a", v, p), ("b", v2, p2)], 14))
    r = rng(15)
    out.append(means_dataset("negative_values", [("a", *arm(r, 80, -20, 5)), ("b", *arm(r, 90, -18, 5))], 15))
    r = rng(16)
    out.append(means_dataset("three_arms", [("a", *arm(r, 150, 10, 3)), ("b", *arm(r, 160, 10.5, 3)), ("c", *arm(r, 140, 9.5, 3))], 16))
    r = rng(17)
    out.append(means_dataset("four_arms_unbalanced", [("a", *arm(r, 100, 50, 10)), ("b", *arm(r, 60, 52, 10)), ("c", *arm(r, 200, 49, 12)), ("d", *arm(r, 30, 55, 8))], 17))
    r = rng(18)
    out.append(means_dataset("no_pre_period_data", [("a", np.round(r.normal(3, 1, 60), 4), [0.0] * 60), ("b", np.round(r.normal(3.5, 1, 60), 4), [0.0] * 60)], 18))
    r = rng(19)
    out.append(means_dataset("strong_covariate", [("a", *arm(r, 250, 20, 4, 0.95)), ("b", *arm(r, 250, 20.5, 4, 0.95))], 19))
    r = rng(20)
    out.append(means_dataset("with_prior_sd", [("a", *arm(r, 100, 10, 2)), ("b", *arm(r, 100, 10.8, 2))], 20, prior_sd=0.5))
    r = rng(21)
    out.append(means_dataset("identical_arms", [("a", [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 1.0, 2.0, 2.0, 3.0]), ("b", [1.0, 2.0, 3.0, 4.0, 5.0], [3.0, 2.0, 2.0, 1.0, 1.0])], 21))
    # Small arms without ties: scipy's Mann-Whitney is exact here.
    r = rng(22)
    out.append(means_dataset("exact_5_vs_7_shift", [("a", *arm(r, 5, 10, 2)), ("b", *arm(r, 7, 12, 2))], 22))
    r = rng(23)
    out.append(means_dataset("exact_8_vs_40", [("a", *arm(r, 8, 10, 2)), ("b", *arm(r, 40, 10.5, 2))], 23))
    out.append(means_dataset("exact_6_vs_6_separated", [("a", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 1.5, 2.5, 3.0, 3.5]),
                                                        ("b", [7.0, 8.0, 9.0, 10.0, 11.0, 12.0], [2.0, 1.0, 3.0, 2.5, 1.5, 3.5])], 24))
    return out


def gen_props():
    return [
        prop_dataset("textbook_120_vs_150_of_1000", [("a", 120, 1000), ("b", 150, 1000)]),
        prop_dataset("balanced_no_effect", [("a", 500, 5000), ("b", 505, 5000)]),
        prop_dataset("unbalanced", [("a", 40, 400), ("b", 300, 2600)]),
        prop_dataset("small_counts_fisher", [("a", 2, 10), ("b", 7, 12)]),
        prop_dataset("tiny_3_units", [("a", 2, 3), ("b", 1, 3)]),
        prop_dataset("zero_conversions_control", [("a", 0, 50), ("b", 6, 50)]),
        prop_dataset("zero_conversions_both", [("a", 0, 40), ("b", 0, 45)]),
        prop_dataset("all_converted", [("a", 30, 30), ("b", 30, 30)]),
        prop_dataset("huge_counts", [("a", 1_000_000, 10_000_000), ("b", 1_003_000, 10_000_000)]),
        prop_dataset("rare_events", [("a", 3, 20000), ("b", 12, 20000)]),
        prop_dataset("three_arms", [("a", 100, 1000), ("b", 120, 1000), ("c", 90, 1000)]),
        prop_dataset("four_arms", [("a", 50, 800), ("b", 60, 800), ("c", 70, 800), ("d", 45, 800)]),
        prop_dataset("jeffreys_prior", [("a", 10, 200), ("b", 18, 210)], prior=(0.5, 0.5)),
        prop_dataset("informative_prior", [("a", 10, 100), ("b", 15, 100)], prior=(20.0, 180.0)),
    ]


def gen_srm():
    cases = [([0.5, 0.5], [1000, 1013]), ([0.5, 0.5], [1000, 1200]), ([0.2, 0.3, 0.5], [210, 290, 500]),
             ([0.1, 0.9], [90, 1010]), ([0.25, 0.25, 0.25, 0.25], [2500, 2400, 2600, 2550]), ([0.5, 0.5], [4_999_000, 5_001_000])]
    out = []
    for w, o in cases:
        e = np.array(w) * sum(o)
        out.append({"weights": w, "observed": o, "p_value": float(stats.chisquare(o, e).pvalue)})
    return out


def gen_multiple():
    sets = [[0.01, 0.04, 0.03, 0.2], [0.001, 0.5, 0.02, 0.02, 0.049, 0.9], [0.3], [0.04, 0.04, 0.04]]
    return [{"p": s, "holm": list(multipletests(s, method="holm")[1]), "bh": list(multipletests(s, method="fdr_bh")[1])} for s in sets]


def gen_power():
    out = []
    for base, mde, alpha, power in [(0.1, 0.02, 0.05, 0.8), (0.05, 0.005, 0.05, 0.9), (0.3, -0.03, 0.01, 0.8), (0.5, 0.1, 0.1, 0.95)]:
        p2, pbar = base + mde, base + mde / 2
        za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
        n = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(base * (1 - base) + p2 * (1 - p2))) ** 2 / mde**2
        out.append({"kind": "proportion", "baseline_rate": base, "mde": mde, "alpha": alpha, "power": power, "n": n})
    for sd, mde, alpha, power in [(10.0, 1.0, 0.05, 0.8), (40.0, 2.0, 0.05, 0.9), (1.0, 0.1, 0.01, 0.8), (3.0, 3.0, 0.05, 0.8)]:
        n = NormalIndPower().solve_power(effect_size=mde / sd, alpha=alpha, power=power, ratio=1.0, alternative="two-sided")
        out.append({"kind": "mean", "std": sd, "mde": mde, "alpha": alpha, "power": power, "n": float(n)})
    return out


def main():
    doc = {
        "generated_by": "scripts/stats_reference.py",
        "versions": {"numpy": np.__version__, "scipy": __import__("scipy").__version__, "statsmodels": __import__("statsmodels").__version__},
        "tuning_n": TUNING_N,
        "datasets": gen_means() + gen_props(),
        "srm": gen_srm(),
        "multiple": gen_multiple(),
        "power": gen_power(),
    }
    json.dump(doc, sys.stdout, allow_nan=False, default=none_if_bad)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
