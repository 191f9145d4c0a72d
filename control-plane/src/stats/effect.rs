//! Standardised effect sizes of `treatment − control`.

use serde::Serialize;
use statrs::function::gamma::ln_gamma;

use super::{Moments, NotEnoughData, Outcome, positive};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EffectSize {
    /// Mean difference over the pooled standard deviation.
    pub cohens_d: f64,
    /// Cohen's d with the exact small-sample bias correction J(df) = Γ(df/2) / (√(df/2) Γ((df−1)/2)).
    pub hedges_g: f64,
}

pub fn cohens_d(control: Moments, treatment: Moments) -> Outcome<EffectSize> {
    let (Some(vc), Some(vt)) = (control.variance(), treatment.variance()) else {
        return Err(NotEnoughData::new("each arm needs at least 2 units with the metric"));
    };
    let df = control.n + treatment.n - 2.0;
    let pooled = (((control.n - 1.0) * vc + (treatment.n - 1.0) * vt) / df).sqrt();
    if !positive(pooled) {
        return Err(NotEnoughData::new("zero variance in both arms"));
    }
    let d = (treatment.sum / treatment.n - control.sum / control.n) / pooled;
    // ln Γ keeps J finite for large df (J → 1).
    let j = (ln_gamma(df / 2.0) - ln_gamma((df - 1.0) / 2.0)).exp() / (df / 2.0).sqrt();
    let g = d * j;
    if d.is_finite() && g.is_finite() { Ok(EffectSize { cohens_d: d, hedges_g: g }) } else { Err(NotEnoughData::new("numerically degenerate input")) }
}
