//! Adaptive Simpson quadrature on a finite interval: the Bayesian probabilities are
//! one-dimensional integrals, deterministic to ~1e-10 (unlike Monte Carlo draws).

/// ∫ₐᵇ f, to absolute tolerance `tol` (the recursion depth is capped, so this always returns).
pub fn simpson(f: &dyn Fn(f64) -> f64, a: f64, b: f64, tol: f64) -> f64 {
    // Split first: an integrand that is flat at a, b and the midpoint would fool one panel.
    const PANELS: usize = 64;
    let h = (b - a) / PANELS as f64;
    (0..PANELS)
        .map(|i| {
            let (lo, hi) = (a + i as f64 * h, a + (i + 1) as f64 * h);
            let (flo, fhi, fmid) = (f(lo), f(hi), f(0.5 * (lo + hi)));
            let whole = (hi - lo) / 6.0 * (flo + 4.0 * fmid + fhi);
            step(f, lo, hi, flo, fmid, fhi, whole, tol / PANELS as f64, 40)
        })
        .sum()
}

#[allow(clippy::too_many_arguments)]
fn step(f: &dyn Fn(f64) -> f64, a: f64, b: f64, fa: f64, fm: f64, fb: f64, whole: f64, tol: f64, depth: u32) -> f64 {
    let m = 0.5 * (a + b);
    let (lm, rm) = (0.5 * (a + m), 0.5 * (m + b));
    let (flm, frm) = (f(lm), f(rm));
    let left = (m - a) / 6.0 * (fa + 4.0 * flm + fm);
    let right = (b - m) / 6.0 * (fm + 4.0 * frm + fb);
    let delta = left + right - whole;
    if depth == 0 || delta.abs() <= 15.0 * tol {
        return left + right + delta / 15.0;
    }
    step(f, a, m, fa, flm, fm, left, tol / 2.0, depth - 1) + step(f, m, b, fm, frm, fb, right, tol / 2.0, depth - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomials_and_steps() {
        assert!((simpson(&|x| x * x, 0.0, 3.0, 1e-12) - 9.0).abs() < 1e-10);
        let s = simpson(&|x: f64| if x < 0.3 { 0.0 } else { 1.0 }, 0.0, 1.0, 1e-10);
        assert!((s - 0.7).abs() < 1e-8, "{s}");
    }
}
