use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Sample-ratio mismatch is flagged below this p-value.
pub const SRM_ALPHA: f64 = 0.001;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Srm {
    pub p_value: f64,
    pub expected: Vec<f64>,
    pub observed: Vec<u64>,
    pub flagged: bool,
}

/// Chi-square goodness of fit of observed exposures against the configured weights. `None`
/// without exposures or with fewer than two arms of positive weight. Exposures in an arm of
/// weight zero are a mismatch by definition (p = 0).
pub fn srm(weights: &[f64], observed: &[u64]) -> Option<Srm> {
    let total: u64 = observed.iter().sum();
    let positive = weights.iter().filter(|w| **w > 0.0).count();
    if total == 0 || positive < 2 || weights.len() != observed.len() {
        return None;
    }
    let mut stat = 0.0;
    let mut impossible = false;
    for (&w, &o) in weights.iter().zip(observed) {
        let e = w * total as f64;
        if e > 0.0 {
            stat += (o as f64 - e).powi(2) / e;
        } else if o > 0 {
            impossible = true;
        }
    }
    let p_value = if impossible {
        0.0
    } else {
        let dist = ChiSquared::new((positive - 1) as f64).ok()?;
        (1.0 - dist.cdf(stat)).clamp(0.0, 1.0)
    };
    Some(Srm { p_value, expected: weights.to_vec(), observed: observed.to_vec(), flagged: p_value < SRM_ALPHA })
}

/// The sample-ratio check of weights that moved: period `p` served `period_units[p]` units at
/// `period_weights[p]`, and `observed` counts each arm's units over every period. Given the
/// periods' sizes, each period's split is multinomial, so the arms' totals have mean
/// `Σₚ Nₚ wₚ` and covariance `Σₚ Nₚ (diag wₚ − wₚ wₚᵀ)`: the Wald statistic on them (over all
/// arms but one, the covariance being singular) is χ² with arms − 1 degrees of freedom. A
/// multinomial chi-square against the averaged shares assumes more spread than weights that
/// varied leave (Σₚ Nₚ wₚ(1 − wₚ) ≤ N s(1 − s)): it would miss real mismatches. With one period it is Pearson's chi-square. `expected` in the answer is
/// the averaged shares.
pub fn srm_periods(period_units: &[f64], period_weights: &[Vec<f64>], observed: &[u64]) -> Option<Srm> {
    let k = observed.len();
    if period_units.len() != period_weights.len() || period_weights.iter().any(|w| w.len() != k) {
        return None;
    }
    let total: f64 = period_units.iter().sum();
    if total <= 0.0 || observed.iter().sum::<u64>() == 0 {
        return None;
    }
    let mean: Vec<f64> = (0..k).map(|a| period_units.iter().zip(period_weights).map(|(n, w)| n * w[a]).sum()).collect();
    let shares: Vec<f64> = mean.iter().map(|m| m / total).collect();
    // Arms never served: any unit in one is a mismatch by definition.
    let live: Vec<usize> = (0..k).filter(|&a| mean[a] > 0.0).collect();
    let answer = |p_value: f64| Some(Srm { p_value, expected: shares.clone(), observed: observed.to_vec(), flagged: p_value < SRM_ALPHA });
    if (0..k).any(|a| mean[a] <= 0.0 && observed[a] > 0) {
        return answer(0.0);
    }
    if live.len() < 2 {
        return None;
    }
    // All live arms but the last: their covariance is then of full rank.
    let m = live.len() - 1;
    let mut cov = vec![vec![0.0; m]; m];
    for (n, w) in period_units.iter().zip(period_weights) {
        for (i, &a) in live[..m].iter().enumerate() {
            for (j, &b) in live[..m].iter().enumerate() {
                cov[i][j] += n * (if i == j { w[a] } else { 0.0 } - w[a] * w[b]);
            }
        }
    }
    let d: Vec<f64> = live[..m].iter().map(|&a| observed[a] as f64 - mean[a]).collect();
    let stat = d.iter().zip(solve(cov, d.clone())?).map(|(x, y)| x * y).sum::<f64>().max(0.0);
    let dist = ChiSquared::new(m as f64).ok()?;
    answer((1.0 - dist.cdf(stat)).clamp(0.0, 1.0))
}

/// `a⁻¹ b` by Gaussian elimination with partial pivoting; `None` when `a` is singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            let (upper, lower) = a.split_at_mut(row);
            for (x, y) in lower[0][col..].iter_mut().zip(&upper[col][col..]) {
                *x -= f * y;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_and_mismatched() {
        let ok = srm(&[0.5, 0.5], &[1000, 1013]).expect("data");
        // scipy.stats.chisquare([1000, 1013], [1006.5, 1006.5]).pvalue
        assert!((ok.p_value - 0.7720085123811513).abs() < 1e-9, "{}", ok.p_value);
        assert!(!ok.flagged);
        let bad = srm(&[0.5, 0.5], &[1000, 1200]).expect("data");
        assert!(bad.flagged);
        assert_eq!(srm(&[1.0, 0.0], &[10, 1]), None);
        assert_eq!(srm(&[0.5, 0.5], &[0, 0]), None);
        assert_eq!(srm(&[0.5, 0.5, 0.0], &[10, 10, 1]).map(|s| s.p_value), Some(0.0));
    }

    #[test]
    fn one_period_is_pearsons_chi_square() {
        for (w, o) in [(vec![0.5, 0.5], vec![1000, 1013]), (vec![0.2, 0.3, 0.5], vec![190, 320, 490]), (vec![0.1, 0.0, 0.9], vec![12, 0, 88])] {
            let a = srm(&w, &o).expect("data");
            let b = srm_periods(&[o.iter().sum::<u64>() as f64], std::slice::from_ref(&w), &o).expect("data");
            assert!((a.p_value - b.p_value).abs() < 1e-9, "{w:?} {o:?}: {} vs {}", a.p_value, b.p_value);
        }
        assert_eq!(srm_periods(&[10.0], &[vec![0.5, 0.5, 0.0]], &[5, 4, 1]).map(|s| s.p_value), Some(0.0));
        assert_eq!(srm_periods(&[0.0], &[vec![0.5, 0.5]], &[0, 0]), None);
    }

    /// A draw of Binomial(n, p), one Bernoulli at a time: enough for simulated sample ratios.
    fn binomial(rng: &mut rand::rngs::StdRng, n: u64, p: f64) -> u64 {
        use rand::Rng;
        (0..n).filter(|_| rng.random::<f64>() < p).count() as u64
    }

    fn multinomial(rng: &mut rand::rngs::StdRng, n: u64, w: &[f64]) -> Vec<u64> {
        let (mut left, mut mass) = (n, 1.0);
        let mut out = Vec::with_capacity(w.len());
        for (i, &p) in w.iter().enumerate() {
            let x = if i + 1 == w.len() || mass <= 0.0 { left } else { binomial(rng, left, (p / mass).clamp(0.0, 1.0)) };
            out.push(x);
            left -= x;
            mass -= p;
        }
        out
    }

    #[test]
    fn moving_weights_without_a_mismatch_flag_at_the_nominal_rate() {
        // 400 runs of a bandit whose weights move every period, units exactly as served: the
        // check must reject at p < 0.05 in 5 % ± 2 % of them. The weights vary between
        // periods; a chi-square against averaged shares is too lenient (it rejects less).
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(27);
        let schedule: Vec<Vec<f64>> = vec![
            vec![0.2, 0.2, 0.2, 0.2, 0.2],
            vec![0.6, 0.1, 0.1, 0.1, 0.1],
            vec![0.9, 0.025, 0.025, 0.025, 0.025],
            vec![0.96, 0.01, 0.01, 0.01, 0.01],
            vec![0.3, 0.5, 0.1, 0.05, 0.05],
        ];
        let (mut wald, mut pooled) = (0, 0);
        for _ in 0..400 {
            let units: Vec<f64> = schedule.iter().map(|_| 200.0).collect();
            let mut observed = vec![0u64; 5];
            for w in &schedule {
                for (o, x) in observed.iter_mut().zip(multinomial(&mut rng, 200, w)) {
                    *o += x;
                }
            }
            let s = srm_periods(&units, &schedule, &observed).expect("data");
            wald += usize::from(s.p_value < 0.05);
            pooled += usize::from(srm(&s.expected, &observed).expect("data").p_value < 0.05);
        }
        let rate = wald as f64 / 400.0;
        assert!((0.03..=0.07).contains(&rate), "Wald check rejected {wald} of 400");
        assert!(pooled < wald, "the averaged-shares chi-square rejected {pooled}, the Wald check {wald}");
    }
}
