use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};
use statrs::function::gamma::ln_gamma;

use super::{Comparison, NotEnoughData, Outcome, finite};

/// Below this expected count in any cell of the 2×2 table, the chi-square approximation is
/// unreliable (Cochran's rule) and Fisher's exact test runs instead.
pub const MIN_EXPECTED: f64 = 5.0;

/// A test of independence on the 2×2 table (arm × converted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableTest {
    /// `chi2`, `chi2_yates` or `fisher`.
    pub test: &'static str,
    /// The chi-square statistic, or the sample odds ratio for Fisher (None when infinite).
    pub statistic: Option<f64>,
    pub p_value: f64,
    /// Smallest expected cell count: why this test was chosen.
    pub min_expected: f64,
}

/// Chi-square when every expected cell count is at least [`MIN_EXPECTED`], else Fisher's exact.
pub fn table_test(control_x: f64, control_n: f64, treatment_x: f64, treatment_n: f64) -> Outcome<TableTest> {
    let min_expected = min_expected(control_x, control_n, treatment_x, treatment_n)?;
    if min_expected >= MIN_EXPECTED {
        chi2(control_x, control_n, treatment_x, treatment_n, false)
    } else {
        fisher(control_x, control_n, treatment_x, treatment_n)
    }
}

fn min_expected(cx: f64, cn: f64, tx: f64, tn: f64) -> Outcome<f64> {
    if cn <= 0.0 || tn <= 0.0 || cx < 0.0 || tx < 0.0 || cx > cn || tx > tn {
        return Err(NotEnoughData::new("each arm needs exposed units, and converters cannot exceed them"));
    }
    let total = cn + tn;
    let (conv, non) = (cx + tx, total - cx - tx);
    Ok([cn * conv, cn * non, tn * conv, tn * non].into_iter().fold(f64::INFINITY, f64::min) / total)
}

/// Pearson's chi-square on the 2×2 table (optionally with Yates' continuity correction, as
/// `scipy.stats.chi2_contingency(correction=True)` applies it: |O − E| reduced by up to 0.5).
pub fn chi2(cx: f64, cn: f64, tx: f64, tn: f64, yates: bool) -> Outcome<TableTest> {
    let min_expected = min_expected(cx, cn, tx, tn)?;
    if !super::positive(min_expected) {
        return Err(NotEnoughData::new("no variation: every unit converted or none did"));
    }
    let total = cn + tn;
    let (conv, non) = (cx + tx, total - cx - tx);
    let cells = [(cx, cn * conv), (cn - cx, cn * non), (tx, tn * conv), (tn - tx, tn * non)];
    let stat: f64 = cells
        .iter()
        .map(|&(o, e)| {
            let e = e / total;
            let d = (o - e).abs();
            let d = if yates { (d - 0.5).max(0.0) } else { d };
            d * d / e
        })
        .sum();
    let p = 1.0 - ChiSquared::new(1.0).map_err(|e| NotEnoughData::new(e.to_string()))?.cdf(stat);
    Ok(TableTest { test: if yates { "chi2_yates" } else { "chi2" }, statistic: finite(stat), p_value: p.clamp(0.0, 1.0), min_expected })
}

/// Fisher's exact test, two-sided as scipy defines it: the probability of every table with the
/// same margins that is no more likely than the observed one.
pub fn fisher(cx: f64, cn: f64, tx: f64, tn: f64) -> Outcome<TableTest> {
    let min_expected = min_expected(cx, cn, tx, tn)?;
    let (a, b, c, d) = (cx, cn - cx, tx, tn - tx);
    // Hypergeometric over the converters in the control arm: x ∈ [lo, hi].
    let (row, col, total) = (cn, cx + tx, cn + tn);
    let lo = (col - (total - row)).max(0.0);
    let hi = row.min(col);
    let ln_pmf = |x: f64| {
        ln_choose(row, x) + ln_choose(total - row, col - x) - ln_choose(total, col)
    };
    let observed = ln_pmf(a);
    // scipy's relative tolerance for "as likely as the observed table".
    let threshold = observed + (1.0 + 1e-7f64).ln();
    let mut p = 0.0;
    let mut x = lo;
    while x <= hi {
        let l = ln_pmf(x);
        if l <= threshold {
            p += l.exp();
        }
        x += 1.0;
    }
    let odds = (a * d) / (b * c);
    Ok(TableTest { test: "fisher", statistic: finite(odds), p_value: p.clamp(0.0, 1.0), min_expected })
}

fn ln_choose(n: f64, k: f64) -> f64 {
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
}

/// Two-proportion z-test: p-value from the pooled standard error (the test under H0: equal
/// rates), confidence interval for the difference from the unpooled (Wald) standard error.
pub fn z_test(control_x: f64, control_n: f64, treatment_x: f64, treatment_n: f64, alpha: f64) -> Result<Comparison, NotEnoughData> {
    if control_n <= 0.0 || treatment_n <= 0.0 {
        return Err(NotEnoughData::new("each arm needs exposed units"));
    }
    let (pc, pt) = (control_x / control_n, treatment_x / treatment_n);
    let pooled = (control_x + treatment_x) / (control_n + treatment_n);
    let se0 = (pooled * (1.0 - pooled) * (1.0 / control_n + 1.0 / treatment_n)).sqrt();
    if !super::positive(se0) {
        return Err(NotEnoughData::new("no variation: every unit converted or none did"));
    }
    let normal = Normal::standard();
    let diff = pt - pc;
    let p = 2.0 * normal.cdf(-(diff / se0).abs());
    let se = (pc * (1.0 - pc) / control_n + pt * (1.0 - pt) / treatment_n).sqrt();
    let q = normal.inverse_cdf(1.0 - alpha / 2.0);
    Ok(Comparison::new(pc, pt, q * se, p, "z_test"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_example() {
        // 120/1000 vs 150/1000: pooled p = 0.135, z = 0.03 / sqrt(0.135*0.865*0.002) = 1.9614...
        let r = z_test(120.0, 1000.0, 150.0, 1000.0, 0.05).expect("enough data");
        let z = 0.03 / (0.135f64 * 0.865 * 0.002).sqrt();
        let expected_p = 2.0 * Normal::standard().cdf(-z);
        assert!((r.p_value - expected_p).abs() < 1e-12);
        assert!((r.p_value - 0.0498).abs() < 1e-3);
        assert!((r.abs_lift - 0.03).abs() < 1e-12);
        assert!((r.rel_lift.expect("nonzero control") - 0.25).abs() < 1e-12);
    }

    #[test]
    fn degenerate() {
        assert!(z_test(0.0, 0.0, 1.0, 10.0, 0.05).is_err());
        assert!(z_test(0.0, 10.0, 0.0, 10.0, 0.05).is_err());
        assert!(z_test(10.0, 10.0, 10.0, 10.0, 0.05).is_err());
    }
}
