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
    /// The normal approximation's z (informative also when `method` is `exact`).
    pub z: f64,
    pub p_value: f64,
    /// P(T > C) − P(T < C): the rank effect size, in [−1, 1].
    pub cliffs_delta: f64,
    /// `exact` (the permutation distribution of U) or `asymptotic` (normal approximation).
    pub method: &'static str,
}

/// Exact p-values are computed for up to this many (treatment, control) pairs.
const EXACT_MAX_PAIRS: f64 = 200_000.0;

/// Two-sided Mann-Whitney U test, as `scipy.stats.mannwhitneyu(t, c)` with its default
/// `method="auto"`: exact when an arm has at most 8 units and nothing is tied, else the normal
/// approximation with tie and continuity corrections. (One difference: past
/// [`EXACT_MAX_PAIRS`] pairs, e.g. 8 units against 25 000, this stays asymptotic, to bound the
/// work of a readout.)
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
    let exact = (n1 <= 8.0 || n2 <= 8.0) && r.tie_term == 0.0 && n1 * n2 <= EXACT_MAX_PAIRS;
    let (p, method) = if exact {
        // Without ties U is a whole number; the distribution is symmetric, so P(U ≥ big) is
        // P(U ≤ n1·n2 − big).
        let small = (n1 * n2 - big).round().max(0.0) as usize;
        ((2.0 * exact_cdf(n1 as usize, n2 as usize, small)).min(1.0), "exact")
    } else {
        (p, "asymptotic")
    };
    Ok(MannWhitney { u: r.u_treatment, z: signed_z, p_value: p, cliffs_delta: 2.0 * r.u_treatment / (n1 * n2) - 1.0, method })
}

/// P(U ≤ u) when there is no difference, for samples of `a` and `b` units without ties. The
/// number of orderings giving each U is a coefficient of the Gaussian binomial
/// [a+b choose a]_q = ∏ᵢ₌₁..ₘ (1 − q^(n+i)) / (1 − q^i) (m = min(a, b), n = max(a, b)), built one
/// factor at a time in exact integers: multiplying by (1 − q^k) subtracts a shifted copy, dividing
/// by (1 − q^i) is a running sum with stride i. Both only look at lower powers, so the
/// coefficients above u are never needed. Within [`EXACT_MAX_PAIRS`] (m ≤ 8 there) every count is
/// below C(25 008, 8) ≈ 4·10³⁰, far inside i128.
fn exact_cdf(a: usize, b: usize, u: usize) -> f64 {
    let (m, n) = (a.min(b), a.max(b));
    let top = u.min(m * n);
    let mut counts = vec![0i128; top + 1];
    counts[0] = 1;
    let mut total: i128 = 1; // C(n + i, i), built alongside
    for i in 1..=m {
        for k in (n + i..=top).rev() {
            counts[k] -= counts[k - n - i];
        }
        for k in i..=top {
            counts[k] += counts[k - i];
        }
        total = total * (n + i) as i128 / i as i128;
    }
    let below: i128 = counts.iter().sum();
    below as f64 / total as f64
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

#[cfg(test)]
mod tests {
    use super::*;

    /// P(U ≤ u) by enumerating every way to pick which ranks are the first sample's.
    fn brute_cdf(a: usize, b: usize, u: usize) -> f64 {
        let n = a + b;
        let (mut hit, mut all) = (0u64, 0u64);
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != a {
                continue;
            }
            // U of the first sample: pairs (x in first, y in second) with x ranked above y.
            let (mut u_here, mut second_below) = (0, 0);
            for r in 0..n {
                if mask & (1 << r) != 0 {
                    u_here += second_below;
                } else {
                    second_below += 1;
                }
            }
            all += 1;
            hit += u64::from(u_here <= u);
        }
        hit as f64 / all as f64
    }

    #[test]
    fn exact_distribution_matches_enumeration() {
        for (a, b) in [(1, 1), (1, 5), (2, 3), (3, 4), (4, 4), (5, 7), (3, 9), (8, 6), (6, 8)] {
            for u in 0..=a * b {
                let (got, want) = (exact_cdf(a, b, u), brute_cdf(a, b, u));
                assert!((got - want).abs() < 1e-12, "({a}, {b}) u={u}: {got} vs {want}");
            }
        }
        // The widest case allowed stays a probability, and the whole distribution sums to 1.
        let p = exact_cdf(8, 25_000, 100_000);
        assert!(p > 0.0 && p < 1.0, "{p}");
        assert!((exact_cdf(8, 25_000, 8 * 25_000) - 1.0).abs() < 1e-12);
    }
}
