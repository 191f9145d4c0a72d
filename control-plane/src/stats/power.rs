//! Power and sample size for two-arm tests at two-sided level α, equal allocation.
//!
//! Proportions: the classic normal-approximation formula (Fleiss, no continuity correction),
//! pooled variance under H0 and unpooled under H1:
//! n = (z₁₋α/₂·√(2p̄q̄) + z₁₋β·√(p₁q₁ + p₂q₂))² / δ².
//! Means: two-sample z-test power including both tails, Φ(δ/σ·√(n/2) − z) + Φ(−δ/σ·√(n/2) − z),
//! solved for n (as statsmodels' `NormalIndPower().solve_power`).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use super::{NotEnoughData, Outcome, between, positive, z_quantile};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SampleSize {
    /// Units per variant, rounded up.
    pub per_variant: u64,
    /// Before rounding.
    pub exact: f64,
}

fn check(alpha: f64, power: f64) -> Outcome<()> {
    if !between(alpha, 0.0, 1.0) || !between(power, 0.0, 1.0) {
        return Err(NotEnoughData::new("alpha and power must be strictly between 0 and 1"));
    }
    Ok(())
}

fn rounded(exact: f64) -> Outcome<SampleSize> {
    if !exact.is_finite() || exact <= 0.0 || exact > 1e15 {
        return Err(NotEnoughData::new("no finite sample size reaches that power"));
    }
    // 1e-9 guards against 3841.0000000001 becoming 3842 through rounding noise.
    Ok(SampleSize { per_variant: (exact - 1e-9).ceil().max(1.0) as u64, exact })
}

/// `mde` is the absolute difference in rates to detect (0.1 → 0.12 is 0.02).
pub fn proportions(baseline: f64, mde: f64, alpha: f64, power: f64) -> Outcome<SampleSize> {
    check(alpha, power)?;
    let p2 = baseline + mde;
    if !between(baseline, 0.0, 1.0) || !between(p2, 0.0, 1.0) || mde == 0.0 {
        return Err(NotEnoughData::new("baseline_rate and baseline_rate + mde must be strictly between 0 and 1, mde non-zero"));
    }
    let pbar = (baseline + p2) / 2.0;
    let (za, zb) = (z_quantile(1.0 - alpha / 2.0), z_quantile(power));
    let num = za * (2.0 * pbar * (1.0 - pbar)).sqrt() + zb * (baseline * (1.0 - baseline) + p2 * (1.0 - p2)).sqrt();
    rounded(num * num / (mde * mde))
}

/// Power of the proportions test with `n` units per variant (the formula above, inverted).
pub fn proportions_power(baseline: f64, mde: f64, alpha: f64, n: f64) -> Outcome<f64> {
    let p2 = baseline + mde;
    if !between(baseline, 0.0, 1.0) || !between(p2, 0.0, 1.0) || !positive(n) {
        return Err(NotEnoughData::new("rates must be strictly between 0 and 1 and n positive"));
    }
    let pbar = (baseline + p2) / 2.0;
    let za = z_quantile(1.0 - alpha / 2.0);
    let zb = (mde.abs() * n.sqrt() - za * (2.0 * pbar * (1.0 - pbar)).sqrt()) / (baseline * (1.0 - baseline) + p2 * (1.0 - p2)).sqrt();
    Ok(Normal::standard().cdf(zb))
}

/// Power of the two-sample test of means with `n` units per variant, effect `mde`, unit sd `sd`.
pub fn means_power(sd: f64, mde: f64, alpha: f64, n: f64) -> Outcome<f64> {
    if !positive(sd) || mde == 0.0 || !mde.is_finite() || !positive(n) {
        return Err(NotEnoughData::new("std must be positive, mde non-zero, n positive"));
    }
    let normal = Normal::standard();
    let za = z_quantile(1.0 - alpha / 2.0);
    let shift = mde.abs() / sd * (n / 2.0).sqrt();
    Ok(normal.cdf(shift - za) + normal.cdf(-shift - za))
}

pub fn means(sd: f64, mde: f64, alpha: f64, power: f64) -> Outcome<SampleSize> {
    check(alpha, power)?;
    means_power(sd, mde, alpha, 1.0)?;
    // Power is increasing in n: bisect on [lo, hi] after bracketing.
    let (mut lo, mut hi) = (1e-9, 1.0);
    while means_power(sd, mde, alpha, hi)? < power {
        lo = hi;
        hi *= 2.0;
        if hi > 1e15 {
            return Err(NotEnoughData::new("no finite sample size reaches that power"));
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if means_power(sd, mde, alpha, mid)? < power { lo = mid } else { hi = mid }
    }
    rounded(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_example() {
        // baseline 10 %, +2 points, α 0.05, power 0.8 → 3841 per variant (the textbook figure).
        assert_eq!(proportions(0.1, 0.02, 0.05, 0.8).expect("valid").per_variant, 3841);
        assert!(proportions(0.1, 0.0, 0.05, 0.8).is_err());
        assert!(proportions(0.99, 0.02, 0.05, 0.8).is_err());
        let m = means(10.0, 1.0, 0.05, 0.8).expect("valid");
        assert!((m.exact - 1569.7).abs() < 0.1, "{}", m.exact);
    }
}
