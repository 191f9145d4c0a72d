//! Mann-Whitney U and Cliff's delta from rank sums. The server gets [`RankSums`] from SQL (a
//! window over the per-unit values in index order); [`rank_sums`] computes the same from
//! in-memory samples, for tests and small inputs.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use super::{NotEnoughData, Outcome, positive};

/// What the test needs about two samples pooled and ranked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RankSums {
    pub n_control: f64,
    pub n_treatment: f64,
    /// U of the treatment: pairs (t, c) with t > c, plus half the ties.
    pub u_treatment: f64,
    /// Σ (t³ − t) over groups of tied values in the pooled sample.
    pub tie_term: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MannWhitney {
    pub u: f64,
    pub z: f64,
    pub p_value: f64,
    /// P(T > C) − P(T < C): the rank effect size, in [−1, 1].
    pub cliffs_delta: f64,
}

/// Two-sided Mann-Whitney U test, normal approximation with tie and continuity corrections
/// (`scipy.stats.mannwhitneyu(t, c, method="asymptotic")`).
pub fn mann_whitney(r: RankSums) -> Outcome<MannWhitney> {
    let (n1, n2) = (r.n_treatment, r.n_control);
    if n1 < 1.0 || n2 < 1.0 {
        return Err(NotEnoughData::new("each arm needs at least one unit with the metric"));
    }
    let n = n1 + n2;
    let mu = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - r.tie_term / (n * (n - 1.0)));
    if !positive(var) {
        return Err(NotEnoughData::new("every value is tied: ranks carry no information"));
    }
    // scipy tests the larger of U1, U2, which makes the continuity correction one-directional.
    let big = r.u_treatment.max(n1 * n2 - r.u_treatment);
    let z = (big - mu - 0.5) / var.sqrt();
    let p = (2.0 * (1.0 - Normal::standard().cdf(z))).clamp(0.0, 1.0);
    let signed_z = if r.u_treatment >= mu { z } else { -z };
    Ok(MannWhitney { u: r.u_treatment, z: signed_z, p_value: p, cliffs_delta: 2.0 * r.u_treatment / (n1 * n2) - 1.0 })
}

/// Rank sums of two in-memory samples (O((n + m) log(n + m))).
pub fn rank_sums(control: &[f64], treatment: &[f64]) -> RankSums {
    let mut all: Vec<(f64, bool)> = control.iter().map(|&v| (v, false)).chain(treatment.iter().map(|&v| (v, true))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut u, mut ties, mut control_below) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let j = all[i..].iter().position(|x| x.0 != all[i].0).map_or(all.len(), |k| i + k);
        let group = &all[i..j];
        let t = group.iter().filter(|x| x.1).count() as f64;
        let c = group.len() as f64 - t;
        u += t * (control_below + 0.5 * c);
        control_below += c;
        let g = group.len() as f64;
        ties += g * g * g - g;
        i = j;
    }
    RankSums { n_control: control.len() as f64, n_treatment: treatment.len() as f64, u_treatment: u, tie_term: ties }
}
