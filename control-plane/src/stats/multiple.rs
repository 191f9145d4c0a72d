//! Multiple-comparison adjustments across every (variant, metric) p-value of a readout.
//! Both return adjusted p-values in the input order, as statsmodels' `multipletests` does.

/// Holm's step-down family-wise error control.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let order = sorted_indices(p);
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// Benjamini–Hochberg false-discovery-rate control (step-up).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let order = sorted_indices(p);
    let mut out = vec![0.0; m];
    let mut running: f64 = 1.0;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64).min(1.0);
        out[i] = running;
    }
    out
}

/// Ascending by p, ties in input order (a stable sort: deterministic output).
fn sorted_indices(p: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_example() {
        // statsmodels multipletests([0.01, 0.04, 0.03, 0.2], method='holm' / 'fdr_bh')
        let p = [0.01, 0.04, 0.03, 0.2];
        assert_eq!(holm(&p), vec![0.04, 0.09, 0.09, 0.2]);
        let bh = benjamini_hochberg(&p);
        for (a, b) in bh.iter().zip([0.04, 0.05333333333333334, 0.05333333333333334, 0.2]) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!(holm(&[]).is_empty());
    }
}
