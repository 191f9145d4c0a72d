//! Statistics over sufficient statistics (counts, sums, sums of squares) aggregated in SQL.
//! Pure functions, no I/O. Degenerate inputs give [`NotEnoughData`] with a reason, never NaN.

pub mod bayes;
pub mod bootstrap;
pub mod cuped;
pub mod effect;
pub mod integrate;
pub mod means;
pub mod multiple;
pub mod power;
pub mod proportions;
pub mod rank;
pub mod sequential;
pub mod srm;

use serde::Serialize;

/// Per-unit sufficient statistics of one metric in one arm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Moments {
    /// Units with the metric.
    pub n: f64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Moments {
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0.0).then(|| self.sum / self.n)
    }

    /// Variance of the mean (sample variance / n).
    pub fn var_of_mean(&self) -> Option<f64> {
        self.variance().map(|v| v / self.n)
    }

    /// Sample variance (n − 1 denominator).
    pub fn variance(&self) -> Option<f64> {
        if self.n < 2.0 {
            return None;
        }
        let mean = self.sum / self.n;
        // Clamped: cancellation can make a true zero slightly negative.
        Some(((self.sum_sq - self.n * mean * mean) / (self.n - 1.0)).max(0.0))
    }
}

/// Why a test could not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotEnoughData {
    pub reason: String,
}

impl NotEnoughData {
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

/// A two-sided comparison of a treatment arm against control.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub control_value: f64,
    pub variant_value: f64,
    pub abs_lift: f64,
    /// `None` when the control value is zero.
    pub rel_lift: Option<f64>,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
    pub test: &'static str,
}

impl Comparison {
    /// Variant against control, with the interval `lift ± half_width` on the absolute lift.
    pub fn new(control_value: f64, variant_value: f64, half_width: f64, p_value: f64, test: &'static str) -> Self {
        let diff = variant_value - control_value;
        Comparison {
            control_value,
            variant_value,
            abs_lift: diff,
            rel_lift: (control_value != 0.0).then(|| diff / control_value).and_then(finite),
            ci_low: diff - half_width,
            ci_high: diff + half_width,
            p_value: p_value.clamp(0.0, 1.0),
            test,
        }
    }
}

pub type Outcome<T> = Result<T, NotEnoughData>;

/// How an analysis appears in JSON: its fields, or `{"not_enough_data": "<reason>"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Analysis<T> {
    Ran(T),
    NotRun { not_enough_data: String },
}

impl<T> From<Outcome<T>> for Analysis<T> {
    fn from(o: Outcome<T>) -> Self {
        match o {
            Ok(t) => Analysis::Ran(t),
            Err(e) => Analysis::NotRun { not_enough_data: e.reason },
        }
    }
}

/// Both ends finite, or a typed refusal: what every interval goes through before JSON.
pub(crate) fn interval(lo: f64, hi: f64, what: &str) -> Outcome<(f64, f64)> {
    if lo.is_finite() && hi.is_finite() { Ok((lo, hi)) } else { Err(NotEnoughData::new(format!("{what}: numerically degenerate input"))) }
}

/// Delta-method confidence interval for the relative lift `mt / mc − 1`, from the two means and
/// the variances of the means (independent arms): Var(r) ≈ Vt/mc² + mt²·Vc/mc⁴.
pub fn relative_lift_ci(mc: f64, var_mc: f64, mt: f64, var_mt: f64, alpha: f64) -> Outcome<(f64, f64)> {
    if mc == 0.0 {
        return Err(NotEnoughData::new("control mean is zero: relative lift undefined"));
    }
    let r = mt / mc - 1.0;
    let se = (var_mt / (mc * mc) + mt * mt * var_mc / mc.powi(4)).sqrt();
    let z = z_quantile(1.0 - alpha / 2.0);
    interval(r - z * se, r + z * se, "relative lift")
}

/// Standard normal quantile.
pub fn z_quantile(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(p)
}

/// `x > 0`, false for NaN: reads better than `!(x > 0.0)` where NaN must fail a check.
pub(crate) fn positive(x: f64) -> bool {
    x > 0.0
}

/// `lo < x < hi`, false for NaN.
pub(crate) fn between(x: f64, lo: f64, hi: f64) -> bool {
    x > lo && x < hi
}

/// Finite or nothing: JSON has no NaN.
pub(crate) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
