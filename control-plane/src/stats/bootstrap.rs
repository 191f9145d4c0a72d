//! Poisson bootstrap of the difference in means, over per-bucket aggregates.
//!
//! How it scales: the database keeps, per arm, the sufficient statistics of 256 hash buckets of
//! units (`arm_stats`: units and Σy per bucket, maintained at ingest). Each replicate gives every
//! bucket an independent Poisson(1) weight and recomputes each arm's mean as
//! Σ wᵢ·sumᵢ / Σ wᵢ·nᵢ. Buckets are random (hash) partitions of the units, so weighting a bucket
//! resamples its units together: a block bootstrap whose blocks are exchangeable; with at most
//! one unit per bucket it is exactly the unit-level Poisson bootstrap. Cost: O(replicates ×
//! buckets), independent of the number of units or events. Percentile interval.

use rand::{Rng, SeedableRng};
use rand::rngs::StdRng;
use serde::Serialize;

use super::{NotEnoughData, Outcome, interval};

/// One block of units of one arm: how many, and the sum of their values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Block {
    pub n: f64,
    pub sum: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootstrapCi {
    pub ci_low: f64,
    pub ci_high: f64,
    pub replicates: usize,
    pub blocks: usize,
    pub method: &'static str,
}

pub const DEFAULT_REPLICATES: usize = 2000;

/// Percentile CI for mean(treatment) − mean(control). Deterministic for a given `seed`.
pub fn mean_difference(control: &[Block], treatment: &[Block], alpha: f64, replicates: usize, seed: u64) -> Outcome<BootstrapCi> {
    let units = |b: &[Block]| b.iter().map(|x| x.n).sum::<f64>();
    if units(control) < 2.0 || units(treatment) < 2.0 || replicates < 10 {
        return Err(NotEnoughData::new("each arm needs at least 2 units with the metric"));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut diffs = Vec::with_capacity(replicates);
    let mut draws = 0;
    while diffs.len() < replicates {
        // A replicate that drew no unit in an arm has no mean: draw again (rare unless tiny).
        if let (Some(c), Some(t)) = (resampled_mean(control, &mut rng), resampled_mean(treatment, &mut rng)) {
            diffs.push(t - c);
        }
        draws += 1;
        if draws > 100 * replicates {
            return Err(NotEnoughData::new("resamples keep coming out empty"));
        }
    }
    diffs.sort_by(f64::total_cmp);
    let (lo, hi) = interval(quantile(&diffs, alpha / 2.0), quantile(&diffs, 1.0 - alpha / 2.0), "bootstrap")?;
    Ok(BootstrapCi { ci_low: lo, ci_high: hi, replicates, blocks: control.len() + treatment.len(), method: "poisson_bucket_percentile" })
}

fn resampled_mean(blocks: &[Block], rng: &mut StdRng) -> Option<f64> {
    let (mut n, mut s) = (0.0, 0.0);
    for b in blocks {
        let w = poisson1(rng);
        n += w * b.n;
        s += w * b.sum;
    }
    (n > 0.0).then(|| s / n)
}

/// Poisson(1) by inversion: P(k) = e⁻¹ / k!.
fn poisson1(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random();
    let (mut k, mut p, mut cdf) = (0u32, (-1.0f64).exp(), (-1.0f64).exp());
    while u > cdf && k < 30 {
        k += 1;
        p /= f64::from(k);
        cdf += p;
    }
    f64::from(k)
}

/// Linear interpolation between order statistics (numpy's default, as scipy's percentile CI).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + frac * (next - sorted[i])
}
