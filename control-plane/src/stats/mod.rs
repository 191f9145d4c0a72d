//! Statistics over sufficient statistics (counts, sums, sums of squares) aggregated in SQL.
//! Pure functions, no I/O. Degenerate inputs give [`NotEnoughData`] with a reason, never NaN.

pub mod means;
pub mod proportions;
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

/// Finite or nothing: JSON has no NaN.
pub(crate) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
