//! CUPED (Deng et al. 2013): variance reduction with a pre-exposure covariate. Per unit, y is the
//! metric after first exposure and x the same metric before it (0 when the unit had none).
//! θ = pooled within-arm Cov(x, y) / Var(x) over all arms (the ANCOVA slope; pooling within
//! arms keeps the treatment effect out of it), and each arm's mean is compared on y − θ·x with
//! Welch's test. Since x is measured before exposure, E[x] is equal across arms and the adjusted
//! difference estimates the same lift with less variance.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{NotEnoughData, Outcome, interval, positive};

/// Per-arm sums over units with the metric: n, Σx, Σy, Σx², Σy², Σxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CovMoments {
    pub n: f64,
    pub sx: f64,
    pub sy: f64,
    pub sxx: f64,
    pub syy: f64,
    pub sxy: f64,
}

impl CovMoments {
    fn centred(&self) -> (f64, f64, f64) {
        let (mx, my) = (self.sx / self.n, self.sy / self.n);
        (self.sxx - self.n * mx * mx, self.syy - self.n * my * my, self.sxy - self.n * mx * my)
    }

    /// Sample variance of y − θx.
    fn adjusted_variance(&self, theta: f64) -> f64 {
        let (cxx, cyy, cxy) = self.centred();
        ((cyy - 2.0 * theta * cxy + theta * theta * cxx) / (self.n - 1.0)).max(0.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cuped {
    pub theta: f64,
    pub abs_lift: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
    /// 1 − Var(adjusted difference) / Var(unadjusted difference).
    pub variance_reduction: f64,
    pub covariate: &'static str,
}

/// θ from every arm with at least 2 units.
pub fn theta(arms: &[CovMoments]) -> Outcome<f64> {
    let (mut cxx, mut cxy) = (0.0, 0.0);
    for a in arms.iter().filter(|a| a.n >= 2.0) {
        let (xx, _, xy) = a.centred();
        cxx += xx;
        cxy += xy;
    }
    if !positive(cxx) {
        return Err(NotEnoughData::new("the pre-exposure covariate does not vary (no pre-exposure data?)"));
    }
    Ok(cxy / cxx)
}

pub fn compare(control: CovMoments, treatment: CovMoments, theta: f64, alpha: f64) -> Outcome<Cuped> {
    if control.n < 2.0 || treatment.n < 2.0 {
        return Err(NotEnoughData::new("each arm needs at least 2 units with the metric"));
    }
    let adj_mean = |m: &CovMoments| (m.sy - theta * m.sx) / m.n;
    let (sc, st) = (control.adjusted_variance(theta) / control.n, treatment.adjusted_variance(theta) / treatment.n);
    let (rc, rt) = (control.adjusted_variance(0.0) / control.n, treatment.adjusted_variance(0.0) / treatment.n);
    let se = (sc + st).sqrt();
    if !positive(se) || !positive(rc + rt) {
        return Err(NotEnoughData::new("zero variance after adjustment"));
    }
    let df = (sc + st).powi(2) / (sc * sc / (control.n - 1.0) + st * st / (treatment.n - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).map_err(|e| NotEnoughData::new(format!("t distribution: {e}")))?;
    let diff = adj_mean(&treatment) - adj_mean(&control);
    let p = (2.0 * dist.cdf(-(diff / se).abs())).clamp(0.0, 1.0);
    let q = dist.inverse_cdf(1.0 - alpha / 2.0);
    let (lo, hi) = interval(diff - q * se, diff + q * se, "cuped")?;
    Ok(Cuped { theta, abs_lift: diff, ci_low: lo, ci_high: hi, p_value: p, variance_reduction: 1.0 - (sc + st) / (rc + rt), covariate: "pre_exposure_sum" })
}
