//! Bayesian readouts. Conversions: Beta-Binomial (prior Beta(α, β) per arm, configurable).
//! Means: normal approximation, each arm's mean ~ N(x̄, s²/n); the pairwise comparison takes an
//! optional N(0, τ²) prior on the difference (τ = `prior_sd`; none = flat).
//!
//! Every probability is a one-dimensional integral computed by adaptive quadrature:
//! P(arm i is best) = ∫ fᵢ(x) Πⱼ≠ᵢ Fⱼ(x) dx; P(T > C) is its two-arm case; the expected loss of
//! shipping T, E[max(C − T, 0)], integrates the closed-form E[max(C − y, 0)] over T's density.
//! Deterministic (no sampling), accurate to ~1e-9.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::beta::{inv_beta_reg, ln_beta};

use super::integrate::simpson;
use super::{Moments, NotEnoughData, Outcome, positive};

const TOL: f64 = 1e-10;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BetaPrior {
    pub alpha: f64,
    pub beta: f64,
}

impl Default for BetaPrior {
    fn default() -> Self {
        BetaPrior { alpha: 1.0, beta: 1.0 }
    }
}

/// A posterior Beta(alpha, beta) with its mean and equal-tailed credible interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BetaArm {
    pub alpha: f64,
    pub beta: f64,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pairwise {
    /// P(variant > control).
    pub prob_beats_control: f64,
    /// E[max(control − variant, 0)]: what shipping the variant risks, in the metric's units.
    pub expected_loss: f64,
    /// E[max(variant − control, 0)]: what keeping control risks.
    pub expected_loss_control: f64,
}

pub fn beta_posterior(converted: f64, units: f64, prior: BetaPrior, alpha: f64) -> Outcome<BetaArm> {
    if !(prior.alpha > 0.0 && prior.beta > 0.0) || converted < 0.0 || converted > units {
        return Err(NotEnoughData::new("prior parameters must be positive and converters at most units"));
    }
    let (a, b) = (prior.alpha + converted, prior.beta + units - converted);
    Ok(BetaArm { alpha: a, beta: b, mean: a / (a + b), ci_low: inv_beta_reg(a, b, alpha / 2.0), ci_high: inv_beta_reg(a, b, 1.0 - alpha / 2.0) })
}

/// Regularised incomplete beta I_x(a, b). statrs' version stops its continued fraction after
/// 140 terms, which is too few once a and b reach millions (it needs ~√max(a, b)); this is the
/// same Lentz evaluation without that cap.
pub fn beta_reg(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (a * x.ln() + b * (-x).ln_1p() - ln_beta(a, b)).exp();
    if x < (a + 1.0) / (a + b + 2.0) { front * continued_fraction(a, b, x) / a } else { 1.0 - front * continued_fraction(b, a, 1.0 - x) / b }
}

fn continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const EPS: f64 = 1e-16;
    const TINY: f64 = 1e-300;
    let clamp = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / clamp(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..200_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / clamp(1.0 + aa * d);
        c = clamp(1.0 + aa / c);
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

fn open(u: f64) -> f64 {
    u.clamp(1e-15, 1.0 - 1e-15)
}

/// E[max(X − y, 0)] for X ~ Beta(a, b): m·(1 − I_y(a+1, b)) − y·(1 − I_y(a, b)).
fn beta_excess(x: &BetaArm, y: f64) -> f64 {
    let m = x.alpha / (x.alpha + x.beta);
    (m * (1.0 - beta_reg(x.alpha + 1.0, x.beta, y)) - y * (1.0 - beta_reg(x.alpha, x.beta, y))).max(0.0)
}

/// ∫ f_arm(x)·g(x) dx over the arm's central 1 − 2e-13 mass. Integrating in x against the
/// density (cheap: logs) rather than in quantile space saves an inverse incomplete beta per
/// point, which matters for posteriors with millions of units.
fn against(arm: &BetaArm, g: &dyn Fn(f64) -> f64) -> f64 {
    let (a, b) = (arm.alpha, arm.beta);
    let ln_norm = ln_beta(a, b);
    let lo = inv_beta_reg(a, b, 1e-13);
    let hi = inv_beta_reg(a, b, 1.0 - 1e-13);
    let pdf = |x: f64| if x <= 0.0 || x >= 1.0 { 0.0 } else { ((a - 1.0) * x.ln() + (b - 1.0) * (-x).ln_1p() - ln_norm).exp() };
    simpson(&|x| pdf(x) * g(x), lo, hi, TOL)
}

pub fn beta_pairwise(control: &BetaArm, variant: &BetaArm) -> Pairwise {
    let p = against(variant, &|x| beta_reg(control.alpha, control.beta, x));
    let loss = against(variant, &|y| beta_excess(control, y));
    let loss_c = against(control, &|y| beta_excess(variant, y));
    Pairwise { prob_beats_control: p.clamp(0.0, 1.0), expected_loss: loss.max(0.0), expected_loss_control: loss_c.max(0.0) }
}

/// P(each arm has the highest rate).
pub fn beta_prob_best(arms: &[BetaArm]) -> Vec<f64> {
    (0..arms.len())
        .map(|i| {
            let others = |x: f64| (0..arms.len()).filter(|&j| j != i).map(|j| beta_reg(arms[j].alpha, arms[j].beta, x)).product::<f64>();
            against(&arms[i], &others).clamp(0.0, 1.0)
        })
        .collect()
}

fn prob_best(k: usize, inv: &dyn Fn(usize, f64) -> f64, cdf: &dyn Fn(usize, f64) -> f64) -> Vec<f64> {
    (0..k)
        .map(|i| {
            let f = |u: f64| {
                let x = inv(i, u);
                (0..k).filter(|&j| j != i).map(|j| cdf(j, x)).product::<f64>()
            };
            simpson(&f, 0.0, 1.0, TOL).clamp(0.0, 1.0)
        })
        .collect()
}

/// Normal approximation for a difference of means, with an optional N(0, prior_sd²) prior on it.
pub fn normal_pairwise(control: Moments, variant: Moments, prior_sd: Option<f64>) -> Outcome<Pairwise> {
    let (Some(vc), Some(vt)) = (control.var_of_mean(), variant.var_of_mean()) else {
        return Err(NotEnoughData::new("each arm needs at least 2 units with the metric"));
    };
    let var = vc + vt;
    if !positive(var) {
        return Err(NotEnoughData::new("zero variance in both arms"));
    }
    let d = variant.sum / variant.n - control.sum / control.n;
    let (mean, var) = match prior_sd.filter(|s| *s > 0.0 && s.is_finite()) {
        Some(s) => {
            let post = 1.0 / (1.0 / var + 1.0 / (s * s));
            (post * d / var, post)
        }
        None => (d, var),
    };
    let sd = var.sqrt();
    let normal = Normal::standard();
    let excess = |m: f64| sd * pdf(m / sd) + m * normal.cdf(m / sd); // E[max(D, 0)], D ~ N(m, sd²)
    Ok(Pairwise { prob_beats_control: normal.cdf(mean / sd), expected_loss: excess(-mean), expected_loss_control: excess(mean) })
}

fn pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// P(each arm has the highest mean), arms as (mean, standard error); flat priors.
pub fn normal_prob_best(arms: &[(f64, f64)]) -> Outcome<Vec<f64>> {
    if arms.len() < 2 || arms.iter().any(|(m, s)| !m.is_finite() || !positive(*s)) {
        return Err(NotEnoughData::new("every arm needs a mean with a positive standard error"));
    }
    let normal = Normal::standard();
    Ok(prob_best(arms.len(), &|i, u| arms[i].0 + arms[i].1 * normal.inverse_cdf(open(u)), &|j, x| normal.cdf((x - arms[j].0) / arms[j].1)))
}
