//! Always-valid inference for live dashboards: the mixture sequential probability ratio test
//! (mSPRT, Johari et al. 2017) with a normal mixing distribution, on the difference of two arms.
//!
//! With d̂ the estimated difference, V its variance and τ² the mixing variance,
//! Λ = √(V/(V+τ²)) · exp(τ²d̂² / (2V(V+τ²))); the always-valid p-value is min(1, 1/Λ) and the
//! confidence sequence is d̂ ± √(V(V+τ²)/τ² · (2 ln(1/α) + ln((V+τ²)/V))). Both hold at every
//! look simultaneously, so peeking at any time does not inflate the error rate. τ² = ρ²·N·V
//! (N units, so N·V is the per-unit variance) with ρ chosen to make the sequence tightest near
//! `tuning_n` units: ρ² = (−2 ln α + ln(−2 ln α + 1)) / tuning_n (the asymptotic confidence
//! sequence of Waudby-Smith et al., which this is algebraically equal to).
//! Reported at the current look: a running minimum over looks would only be smaller.

use serde::Serialize;

use super::{NotEnoughData, Outcome, between, interval, positive};

pub const DEFAULT_TUNING_N: f64 = 5000.0;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlwaysValid {
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
    pub method: &'static str,
    pub tuning_n: f64,
}

/// `diff` and its variance `var` (e.g. Welch's se²), over `n` units in the two arms.
pub fn msprt(diff: f64, var: f64, n: f64, alpha: f64, tuning_n: f64) -> Outcome<AlwaysValid> {
    if !positive(var) || n.is_nan() || n < 2.0 || !positive(tuning_n) || !between(alpha, 0.0, 1.0) {
        return Err(NotEnoughData::new("needs a positive variance and at least 2 units"));
    }
    let l = -2.0 * alpha.ln();
    let rho2 = (l + (l + 1.0).ln()) / tuning_n;
    let tau2 = rho2 * n * var;
    let ratio = (var + tau2) / var;
    let half = (var * ratio / (tau2 / var) * (2.0 * (1.0 / alpha).ln() + ratio.ln())).sqrt();
    let ln_lambda = -0.5 * ratio.ln() + tau2 * diff * diff / (2.0 * var * (var + tau2));
    let p_value = (-ln_lambda.max(0.0)).exp();
    let (lo, hi) = interval(diff - half, diff + half, "confidence sequence")?;
    Ok(AlwaysValid { ci_low: lo, ci_high: hi, p_value, method: "msprt_normal_mixture", tuning_n })
}
