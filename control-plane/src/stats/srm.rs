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
}
