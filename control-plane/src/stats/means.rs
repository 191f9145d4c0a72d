use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{Comparison, Moments, NotEnoughData};

/// Welch's t-test of `treatment − control` with the Welch–Satterthwaite degrees of freedom; the
/// confidence interval bounds the absolute lift at `1 − alpha`.
pub fn welch_t(control: Moments, treatment: Moments, alpha: f64) -> Result<Comparison, NotEnoughData> {
    let (Some(vc), Some(vt)) = (control.variance(), treatment.variance()) else {
        return Err(NotEnoughData::new("each arm needs at least 2 units with the metric"));
    };
    let (mc, mt) = (control.sum / control.n, treatment.sum / treatment.n);
    let (sc, st) = (vc / control.n, vt / treatment.n);
    let se = (sc + st).sqrt();
    if !super::positive(se) {
        return Err(NotEnoughData::new("zero variance in both arms"));
    }
    let df = (sc + st).powi(2) / (sc * sc / (control.n - 1.0) + st * st / (treatment.n - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).map_err(|e| NotEnoughData::new(format!("t distribution: {e}")))?;
    let diff = mt - mc;
    let t = diff / se;
    let p = 2.0 * dist.cdf(-t.abs());
    let q = dist.inverse_cdf(1.0 - alpha / 2.0);
    let out = Comparison::new(mc, mt, q * se, p, "welch_t");
    if [out.ci_low, out.ci_high, out.p_value].iter().all(|x| x.is_finite()) {
        Ok(out)
    } else {
        Err(NotEnoughData::new("numerically degenerate input"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(xs: &[f64]) -> Moments {
        Moments { n: xs.len() as f64, sum: xs.iter().sum(), sum_sq: xs.iter().map(|x| x * x).sum() }
    }

    #[test]
    fn matches_scipy_welch() {
        // scipy 1.x: ttest_ind(b, a, equal_var=False) → p = 0.020595846496570282,
        // confidence_interval(0.95) = (0.4545611158984584, 4.450200788863446).
        let a = [10.0, 12.0, 9.0, 11.0, 13.0, 10.0];
        let b = [12.0, 14.0, 11.0, 15.0, 13.0, 12.0, 16.0];
        let r = welch_t(moments(&a), moments(&b), 0.05).expect("enough data");
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs();
        assert!(close(r.abs_lift, 93.0 / 7.0 - 65.0 / 6.0));
        assert!(close(r.p_value, 0.020595846496570282), "{}", r.p_value);
        assert!(close(r.ci_low, 0.4545611158984584), "{}", r.ci_low);
        assert!(close(r.ci_high, 4.450200788863446), "{}", r.ci_high);
        assert_eq!(r.test, "welch_t");
    }

    #[test]
    fn degenerate_inputs_are_typed() {
        let one = moments(&[1.0]);
        let flat = moments(&[2.0, 2.0, 2.0]);
        assert!(welch_t(one, flat, 0.05).is_err());
        assert!(welch_t(flat, flat, 0.05).is_err());
        assert!(welch_t(Moments { n: 0.0, sum: 0.0, sum_sq: 0.0 }, flat, 0.05).is_err());
    }
}
