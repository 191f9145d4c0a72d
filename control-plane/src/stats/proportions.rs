use statrs::distribution::{ContinuousCDF, Normal};

use super::{Comparison, NotEnoughData, finite};

/// Two-proportion z-test: p-value from the pooled standard error (the test under H0: equal
/// rates), confidence interval for the difference from the unpooled (Wald) standard error.
pub fn z_test(control_x: f64, control_n: f64, treatment_x: f64, treatment_n: f64, alpha: f64) -> Result<Comparison, NotEnoughData> {
    if control_n <= 0.0 || treatment_n <= 0.0 {
        return Err(NotEnoughData::new("each arm needs exposed units"));
    }
    let (pc, pt) = (control_x / control_n, treatment_x / treatment_n);
    let pooled = (control_x + treatment_x) / (control_n + treatment_n);
    let se0 = (pooled * (1.0 - pooled) * (1.0 / control_n + 1.0 / treatment_n)).sqrt();
    if !(se0 > 0.0) {
        return Err(NotEnoughData::new("no variation: every unit converted or none did"));
    }
    let normal = Normal::standard();
    let diff = pt - pc;
    let p = 2.0 * normal.cdf(-(diff / se0).abs());
    let se = (pc * (1.0 - pc) / control_n + pt * (1.0 - pt) / treatment_n).sqrt();
    let q = normal.inverse_cdf(1.0 - alpha / 2.0);
    Ok(Comparison {
        control_value: pc,
        variant_value: pt,
        abs_lift: diff,
        rel_lift: (pc != 0.0).then(|| diff / pc).and_then(finite),
        ci_low: diff - q * se,
        ci_high: diff + q * se,
        p_value: p.clamp(0.0, 1.0),
        test: "z_test",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_example() {
        // 120/1000 vs 150/1000: pooled p = 0.135, z = 0.03 / sqrt(0.135*0.865*0.002) = 1.9614...
        let r = z_test(120.0, 1000.0, 150.0, 1000.0, 0.05).expect("enough data");
        let z = 0.03 / (0.135f64 * 0.865 * 0.002).sqrt();
        let expected_p = 2.0 * Normal::standard().cdf(-z);
        assert!((r.p_value - expected_p).abs() < 1e-12);
        assert!((r.p_value - 0.0498).abs() < 1e-3);
        assert!((r.abs_lift - 0.03).abs() < 1e-12);
        assert!((r.rel_lift.expect("nonzero control") - 0.25).abs() < 1e-12);
    }

    #[test]
    fn degenerate() {
        assert!(z_test(0.0, 0.0, 1.0, 10.0, 0.05).is_err());
        assert!(z_test(0.0, 10.0, 0.0, 10.0, 0.05).is_err());
        assert!(z_test(10.0, 10.0, 10.0, 10.0, 0.05).is_err());
    }
}
