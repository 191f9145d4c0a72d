//! The statistics engine against reference outputs from scipy/statsmodels
//! (`scripts/stats_reference.py` → `tests/fixtures/stats/reference.json`, committed).
//!
//! Tolerances: closed-form results 1e-6 relative (plus 1e-12 absolute, for values near zero);
//! quadrature-based Bayesian probabilities and losses 1e-6 absolute; bootstrap interval ends
//! within 10 % of the reference interval's width (both are Monte Carlo: 20 000 scipy resamples
//! against 4 000 Poisson replicates here), for arms of at least 20 units. A reference `null` means the method must refuse
//! with "not enough data".

use litmus_control_plane::stats::bootstrap::{self, Block};
use litmus_control_plane::stats::cuped::{self, CovMoments};
use litmus_control_plane::stats::{self, Moments, bayes, effect, means, multiple, power, proportions, rank, sequential, srm};
use serde_json::Value;

const REL: f64 = 1e-6;

fn fixture() -> Value {
    let text = include_str!("fixtures/stats/reference.json");
    serde_json::from_str(text).expect("fixture is JSON")
}

#[track_caller]
fn close(what: &str, got: f64, want: &Value) {
    let want = want.as_f64().unwrap_or_else(|| panic!("{what}: reference is not a number: {want}"));
    assert!((got - want).abs() <= REL * want.abs() + 1e-12, "{what}: got {got}, want {want}");
}

#[track_caller]
fn close_abs(what: &str, got: f64, want: &Value, tol: f64) {
    let want = want.as_f64().unwrap_or_else(|| panic!("{what}: reference is not a number: {want}"));
    assert!((got - want).abs() <= tol + REL * want.abs(), "{what}: got {got}, want {want}");
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn moments(xs: &[f64]) -> Moments {
    Moments { n: xs.len() as f64, sum: xs.iter().sum(), sum_sq: xs.iter().map(|x| x * x).sum() }
}

fn cov(y: &[f64], x: &[f64]) -> CovMoments {
    CovMoments {
        n: y.len() as f64,
        sx: x.iter().sum(),
        sy: y.iter().sum(),
        sxx: x.iter().map(|v| v * v).sum(),
        syy: y.iter().map(|v| v * v).sum(),
        sxy: x.iter().zip(y).map(|(a, b)| a * b).sum(),
    }
}

struct Counter(usize);

#[test]
fn every_method_matches_the_reference() {
    let doc = fixture();
    let datasets = doc["datasets"].as_array().expect("datasets");
    assert!(datasets.len() >= 30, "at least 30 datasets");
    let mut checked = Counter(0);
    for ds in datasets {
        match ds["kind"].as_str() {
            Some("mean") => check_means(ds, doc["tuning_n"].as_f64().expect("tuning_n"), &mut checked),
            Some("proportion") => check_proportions(ds, doc["tuning_n"].as_f64().expect("tuning_n"), &mut checked),
            other => panic!("unknown kind {other:?}"),
        }
    }
    assert!(checked.0 > 500, "only {} numbers compared", checked.0);
}

fn check_means(ds: &Value, tuning_n: f64, checked: &mut Counter) {
    let name = ds["name"].as_str().expect("name");
    let alpha = ds["alpha"].as_f64().expect("alpha");
    let arms: Vec<(Vec<f64>, Vec<f64>)> = ds["arms"].as_array().expect("arms").iter().map(|a| (floats(&a["values"]), floats(&a["pre"]))).collect();
    let theta = cuped::theta(&arms.iter().map(|(y, x)| cov(y, x)).collect::<Vec<_>>());
    let (cy, cx) = &arms[0];
    let c = moments(cy);
    for (i, comp) in ds["comparisons"].as_array().expect("comparisons").iter().enumerate() {
        let (ty, tx) = &arms[i + 1];
        let t = moments(ty);
        let at = |m: &str| format!("{name}/{}/{m}", comp["variant"].as_str().unwrap_or("?"));

        let welch = means::welch_t(c, t, alpha);
        if comp["welch"].is_null() {
            assert!(welch.is_err(), "{}", at("welch refuses"));
            assert!(cuped::compare(cov(cy, cx), cov(ty, tx), theta.clone().unwrap_or(0.0), alpha).is_err() || comp["cuped"].is_null());
        } else {
            let w = welch.unwrap_or_else(|e| panic!("{}: {}", at("welch"), e.reason));
            close(&at("abs_lift"), w.abs_lift, &comp["welch"]["abs_lift"]);
            close(&at("welch p"), w.p_value, &comp["welch"]["p_value"]);
            close(&at("welch ci_low"), w.ci_low, &comp["welch"]["ci_low"]);
            close(&at("welch ci_high"), w.ci_high, &comp["welch"]["ci_high"]);
            checked.0 += 4;

            let var = c.var_of_mean().expect("var") + t.var_of_mean().expect("var");
            match (&comp["rel_ci"], stats::relative_lift_ci(w.control_value, c.var_of_mean().expect("v"), w.variant_value, t.var_of_mean().expect("v"), alpha)) {
                (Value::Null, r) => assert!(r.is_err(), "{}", at("rel ci refuses")),
                (want, r) => {
                    let (lo, hi) = r.unwrap_or_else(|e| panic!("{}: {}", at("rel ci"), e.reason));
                    close(&at("rel ci low"), lo, &want[0]);
                    close(&at("rel ci high"), hi, &want[1]);
                    checked.0 += 2;
                }
            }

            let seq = sequential::msprt(w.abs_lift, var, c.n + t.n, alpha, tuning_n).expect("sequential");
            close(&at("msprt low"), seq.ci_low, &comp["sequential"]["ci_low"]);
            close(&at("msprt high"), seq.ci_high, &comp["sequential"]["ci_high"]);
            close(&at("msprt p"), seq.p_value, &comp["sequential"]["p_value"]);
            checked.0 += 3;

            let blocks = |ys: &[f64]| ys.iter().map(|&y| Block { n: 1.0, sum: y }).collect::<Vec<_>>();
            let b = bootstrap::mean_difference(&blocks(cy), &blocks(ty), alpha, 4000, 7).expect("bootstrap");
            // Poisson and multinomial resampling agree asymptotically; below 20 units per arm
            // the two bootstraps legitimately differ, so only larger samples are compared.
            if c.n >= 20.0 && t.n >= 20.0 {
                let want = floats(&comp["bootstrap"]);
                let width = want[1] - want[0];
                assert!((b.ci_low - want[0]).abs() <= 0.1 * width, "{}: {} vs {:?}", at("bootstrap low"), b.ci_low, want);
                assert!((b.ci_high - want[1]).abs() <= 0.1 * width, "{}: {} vs {:?}", at("bootstrap high"), b.ci_high, want);
                checked.0 += 2;
            }

            let prior_sd = ds["prior_sd"].as_f64();
            let bp = bayes::normal_pairwise(c, t, prior_sd).expect("bayes");
            close_abs(&at("P(beats)"), bp.prob_beats_control, &comp["bayes"]["prob_beats_control"], 1e-9);
            close_abs(&at("loss"), bp.expected_loss, &comp["bayes"]["expected_loss"], 1e-9);
            close_abs(&at("loss control"), bp.expected_loss_control, &comp["bayes"]["expected_loss_control"], 1e-9);
            checked.0 += 3;

            match (&comp["cuped"], &theta) {
                (Value::Null, _) => assert!(theta.is_err() || cuped::compare(cov(cy, cx), cov(ty, tx), 0.0, alpha).is_err(), "{}", at("cuped refuses")),
                (want, Ok(th)) => {
                    let r = cuped::compare(cov(cy, cx), cov(ty, tx), *th, alpha).unwrap_or_else(|e| panic!("{}: {}", at("cuped"), e.reason));
                    // θ from sums of squares vs least squares: agreement is limited by cancellation.
                    close_abs(&at("cuped theta"), r.theta, &want["theta"], 1e-9);
                    close_abs(&at("cuped lift"), r.abs_lift, &want["abs_lift"], 1e-9);
                    close(&at("cuped p"), r.p_value, &want["p_value"]);
                    close(&at("cuped low"), r.ci_low, &want["ci_low"]);
                    close(&at("cuped high"), r.ci_high, &want["ci_high"]);
                    close_abs(&at("cuped variance reduction"), r.variance_reduction, &want["variance_reduction"], 1e-9);
                    checked.0 += 6;
                }
                (_, Err(e)) => panic!("{}: {}", at("cuped theta"), e.reason),
            }
        }

        let e = effect::cohens_d(c, t);
        if comp["effect"].is_null() {
            assert!(e.is_err(), "{}", at("effect refuses"));
        } else {
            let e = e.unwrap_or_else(|err| panic!("{}: {}", at("effect"), err.reason));
            close(&at("cohen d"), e.cohens_d, &comp["effect"]["cohens_d"]);
            close(&at("hedges g"), e.hedges_g, &comp["effect"]["hedges_g"]);
            checked.0 += 2;
        }

        let mw = rank::mann_whitney(rank::rank_sums(cy, ty));
        if comp["mann_whitney"].is_null() {
            assert!(mw.is_err(), "{}", at("mann-whitney refuses"));
        } else {
            let mw = mw.unwrap_or_else(|e| panic!("{}: {}", at("mann-whitney"), e.reason));
            close(&at("U"), mw.u, &comp["mann_whitney"]["u"]);
            close(&at("MW p"), mw.p_value, &comp["mann_whitney"]["p_value"]);
            close(&at("cliff"), mw.cliffs_delta, &comp["mann_whitney"]["cliffs_delta"]);
            assert_eq!(Some(mw.method), comp["mann_whitney"]["method"].as_str(), "{}", at("MW method"));
            checked.0 += 4;
        }
    }
    let best: Result<Vec<f64>, _> = bayes::normal_prob_best(&arms.iter().map(|(y, _)| {
        let m = moments(y);
        (m.mean().unwrap_or(f64::NAN), m.var_of_mean().map_or(f64::NAN, f64::sqrt))
    }).collect::<Vec<_>>());
    match &ds["prob_best"] {
        Value::Null => assert!(best.is_err(), "{name}: P(best) refuses"),
        want => {
            let got = best.unwrap_or_else(|e| panic!("{name}: P(best): {}", e.reason));
            for (g, w) in got.iter().zip(want.as_array().expect("array")) {
                close_abs(&format!("{name}/P(best)"), *g, w, 1e-6);
                checked.0 += 1;
            }
        }
    }
}

fn check_proportions(ds: &Value, tuning_n: f64, checked: &mut Counter) {
    let name = ds["name"].as_str().expect("name");
    let alpha = ds["alpha"].as_f64().expect("alpha");
    let prior = floats(&ds["prior"]);
    let prior = bayes::BetaPrior { alpha: prior[0], beta: prior[1] };
    let arms: Vec<(f64, f64)> = ds["arms"].as_array().expect("arms").iter()
        .map(|a| (a["converted"].as_f64().expect("x"), a["units"].as_f64().expect("n"))).collect();
    let posts: Vec<bayes::BetaArm> = arms.iter().map(|&(x, n)| bayes::beta_posterior(x, n, prior, alpha).expect("posterior")).collect();
    for (p, want) in posts.iter().zip(ds["posterior_ci"].as_array().expect("ci")) {
        close(&format!("{name}/posterior ci low"), p.ci_low, &want[0]);
        close(&format!("{name}/posterior ci high"), p.ci_high, &want[1]);
        checked.0 += 2;
    }
    for (g, w) in bayes::beta_prob_best(&posts).iter().zip(ds["prob_best"].as_array().expect("best")) {
        close_abs(&format!("{name}/P(best)"), *g, w, 1e-6);
        checked.0 += 1;
    }
    let (cx, cn) = arms[0];
    for (i, comp) in ds["comparisons"].as_array().expect("comparisons").iter().enumerate() {
        let (tx, tn) = arms[i + 1];
        let at = |m: &str| format!("{name}/{}/{m}", comp["variant"].as_str().unwrap_or("?"));
        let z = proportions::z_test(cx, cn, tx, tn, alpha);
        if comp["z_test"].is_null() {
            assert!(z.is_err(), "{}", at("z refuses"));
            assert!(proportions::chi2(cx, cn, tx, tn, false).is_err(), "{}", at("chi2 refuses"));
        } else {
            let z = z.unwrap_or_else(|e| panic!("{}: {}", at("z"), e.reason));
            for (k, got) in [("abs_lift", z.abs_lift), ("p_value", z.p_value), ("ci_low", z.ci_low), ("ci_high", z.ci_high)] {
                close(&at(&format!("z {k}")), got, &comp["z_test"][k]);
            }
            for (key, yates) in [("chi2", false), ("chi2_yates", true)] {
                let r = proportions::chi2(cx, cn, tx, tn, yates).expect("chi2");
                assert_eq!(r.test, key);
                close(&at(&format!("{key} stat")), r.statistic.expect("finite"), &comp[key]["statistic"]);
                close(&at(&format!("{key} p")), r.p_value, &comp[key]["p_value"]);
            }
            let chosen = proportions::table_test(cx, cn, tx, tn).expect("table test");
            close(&at("min expected"), chosen.min_expected, &comp["min_expected"]);
            let small = comp["min_expected"].as_f64().expect("number") < proportions::MIN_EXPECTED;
            assert_eq!(chosen.test, if small { "fisher" } else { "chi2" }, "{}", at("test choice"));
            let var = z.ci_high - z.abs_lift;
            let var = (var / stats::z_quantile(1.0 - alpha / 2.0)).powi(2);
            if !comp["sequential"].is_null() {
                let s = sequential::msprt(z.abs_lift, var, cn + tn, alpha, tuning_n).expect("sequential");
                close(&at("msprt low"), s.ci_low, &comp["sequential"]["ci_low"]);
                close(&at("msprt high"), s.ci_high, &comp["sequential"]["ci_high"]);
                close(&at("msprt p"), s.p_value, &comp["sequential"]["p_value"]);
            }
            let (pc, pt) = (cx / cn, tx / tn);
            match (&comp["rel_ci"], stats::relative_lift_ci(pc, pc * (1.0 - pc) / cn, pt, pt * (1.0 - pt) / tn, alpha)) {
                (Value::Null, r) => assert!(r.is_err(), "{}", at("rel ci refuses")),
                (want, r) => {
                    let (lo, hi) = r.expect("rel ci");
                    close(&at("rel low"), lo, &want[0]);
                    close(&at("rel high"), hi, &want[1]);
                }
            }
            checked.0 += 14;
        }
        let f = proportions::fisher(cx, cn, tx, tn).expect("fisher");
        close(&at("fisher p"), f.p_value, &comp["fisher"]["p_value"]);
        let b = bayes::beta_pairwise(&posts[0], &posts[i + 1]);
        close_abs(&at("P(beats)"), b.prob_beats_control, &comp["bayes"]["prob_beats_control"], 1e-6);
        close_abs(&at("loss"), b.expected_loss, &comp["bayes"]["expected_loss"], 1e-6);
        close_abs(&at("loss control"), b.expected_loss_control, &comp["bayes"]["expected_loss_control"], 1e-6);
        checked.0 += 4;
    }
}

#[test]
fn srm_matches_scipy_chisquare() {
    for case in fixture()["srm"].as_array().expect("srm") {
        let w = floats(&case["weights"]);
        let o: Vec<u64> = case["observed"].as_array().expect("observed").iter().map(|x| x.as_u64().expect("count")).collect();
        let r = srm::srm(&w, &o).expect("srm");
        close_abs(&format!("srm {o:?}"), r.p_value, &case["p_value"], 1e-12);
        assert_eq!(r.flagged, case["p_value"].as_f64().expect("p") < srm::SRM_ALPHA);
    }
}

#[test]
fn holm_and_bh_match_statsmodels() {
    for case in fixture()["multiple"].as_array().expect("multiple") {
        let p = floats(&case["p"]);
        for (got, want) in multiple::holm(&p).iter().zip(case["holm"].as_array().expect("holm")) {
            close("holm", *got, want);
        }
        for (got, want) in multiple::benjamini_hochberg(&p).iter().zip(case["bh"].as_array().expect("bh")) {
            close("bh", *got, want);
        }
    }
}

#[test]
fn sample_sizes_match_the_reference() {
    for case in fixture()["power"].as_array().expect("power") {
        let (alpha, pw, mde) = (case["alpha"].as_f64().expect("a"), case["power"].as_f64().expect("p"), case["mde"].as_f64().expect("m"));
        let got = match case["kind"].as_str() {
            Some("proportion") => power::proportions(case["baseline_rate"].as_f64().expect("b"), mde, alpha, pw),
            _ => power::means(case["std"].as_f64().expect("sd"), mde, alpha, pw),
        }
        .expect("sample size");
        close(&format!("sample size {case}"), got.exact, &case["n"]);
        assert_eq!(got.per_variant, (case["n"].as_f64().expect("n") - 1e-9).ceil() as u64);
    }
}
