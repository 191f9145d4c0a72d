//! Deterministic bucketing, hash version 1. The exact algorithm (also in `shared/README.md`), so
//! that any language can reproduce it bit for bit:
//!
//! - `xxh64(seed, bytes)` is XXH64 (<https://github.com/Cyan4973/xxHash>) with a 64-bit seed.
//! - Experiment seed: `seed = xxh64(0, utf8(salt))`; the salt defaults to the experiment key.
//! - Bucket space: `BUCKETS = 10_000`; `bucket(seed, tag, unit) = xxh64(seed, tag ‖ utf8(unit)) mod 10_000`.
//! - Ramp: the unit is in the ramp iff `bucket(seed, "ramp:", unit) < round(ramp_pct × 100)`.
//! - Variant: with `end_i = round(10_000 × Σ_{j≤i} weight_j)` (sums in IEEE-754 double, left to
//!   right), the unit gets the first variant `i` with `bucket(seed, "variant:", unit) < end_i`.
//! - Layer: `bucket(xxh64(0, "layer:" ‖ layer_key), "", unit)` must lie in the experiment's slot
//!   `[start, end)`; experiments whose slots in one layer do not overlap never share a unit.
//!
//! Ramp and variant use separate hashes, so raising the ramp only adds units and never moves one.

use std::hash::Hasher;
use twox_hash::XxHash64;

/// Bumped whenever any formula above changes; configs name the version they were written for.
pub const HASH_VERSION: u32 = 1;
/// Size of every bucket space (ramp, variants, layers): 0.01 % resolution.
pub const BUCKETS: u32 = 10_000;

pub const RAMP_TAG: &[u8] = b"ramp:";
pub const VARIANT_TAG: &[u8] = b"variant:";
const ASSIGNMENT_TAG: &[u8] = b"assignment:";

/// The per-experiment seed derived from its salt.
pub fn seed(salt: &str) -> u64 {
    XxHash64::oneshot(0, salt.as_bytes())
}

/// The seed of a layer's shared bucket space.
pub fn layer_seed(layer_key: &str) -> u64 {
    let mut h = XxHash64::with_seed(0);
    h.write(b"layer:");
    h.write(layer_key.as_bytes());
    h.finish()
}

/// `xxh64(seed, tag ‖ unit) mod BUCKETS`.
pub fn bucket(seed: u64, tag: &[u8], unit_id: &str) -> u32 {
    // The remainder is < BUCKETS, so the narrowing cannot truncate.
    (xxh64_concat(seed, &[tag, unit_id.as_bytes()]) % u64::from(BUCKETS)) as u32
}

/// `xxh64(seed, a ‖ b ‖ …)`, in one pass over a stack copy when the parts fit in it (every unit id
/// of a usual length does): for inputs this short, the streaming hasher's buffering cost more
/// than the hashing (measured: a fifth of an assignment).
fn xxh64_concat(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut buf = [0u8; 192];
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if let Some(whole) = buf.get_mut(..len) {
        let mut rest = &mut whole[..];
        for p in parts {
            let (head, tail) = rest.split_at_mut(p.len());
            head.copy_from_slice(p);
            rest = tail;
        }
        return XxHash64::oneshot(seed, whole);
    }
    let mut h = XxHash64::with_seed(seed);
    for p in parts {
        h.write(p);
    }
    h.finish()
}

/// The ramp threshold in buckets: `round(ramp_pct × 100)`, clamped to `[0, BUCKETS]`.
pub fn ramp_threshold(ramp_pct: f64) -> u32 {
    if ramp_pct.is_nan() || ramp_pct <= 0.0 {
        return 0;
    }
    (ramp_pct * 100.0).round().min(f64::from(BUCKETS)) as u32
}

/// The variant whose range holds `bucket`, given weights in variant order. Falls back to the last
/// variant with a positive weight when rounding leaves the top bucket uncovered (weights summing
/// to slightly under 1); `None` only when no weight is positive.
pub fn pick_variant(weights: impl IntoIterator<Item = f64>, bucket: u32) -> Option<usize> {
    let mut cumulative = 0.0_f64;
    let mut last_positive = None;
    for (i, w) in weights.into_iter().enumerate() {
        if w.is_nan() || w <= 0.0 {
            continue;
        }
        cumulative += w;
        last_positive = Some(i);
        let end = (cumulative * f64::from(BUCKETS)).round();
        if f64::from(bucket) < end {
            return Some(i);
        }
    }
    last_positive
}

/// A stable id for one (experiment, unit, variant) answer: the same inputs give the same id
/// everywhere, so exposures logged by different evaluators can be joined.
pub fn assignment_id(seed: u64, unit_id: &str, variant_key: &str) -> u64 {
    xxh64_concat(seed, &[ASSIGNMENT_TAG, unit_id.as_bytes(), &[0], variant_key.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_equals_oneshot_of_concatenation() {
        let s = seed("exp");
        let mut h = XxHash64::with_seed(s);
        h.write(RAMP_TAG);
        h.write("user-1".as_bytes());
        assert_eq!(h.finish(), XxHash64::oneshot(s, b"ramp:user-1"));
    }

    #[test]
    fn one_pass_equals_streaming_at_every_length() {
        // Both sides of the stack copy's size, and parts of every shape.
        for len in 0..400 {
            let unit: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let mut h = XxHash64::with_seed(7);
            for p in [ASSIGNMENT_TAG, unit.as_bytes(), &[0], b"treatment"] {
                h.write(p);
            }
            assert_eq!(assignment_id(7, &unit, "treatment"), h.finish(), "length {len}");
            let mut h = XxHash64::with_seed(9);
            h.write(RAMP_TAG);
            h.write(unit.as_bytes());
            assert_eq!(u64::from(bucket(9, RAMP_TAG, &unit)), h.finish() % u64::from(BUCKETS), "length {len}");
        }
    }

    #[test]
    fn xxh64_matches_published_reference_values() {
        // From the xxHash reference implementation's sanity checks.
        assert_eq!(XxHash64::oneshot(0, b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(XxHash64::oneshot(0, b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(XxHash64::oneshot(0, b"abc"), 0x44BC_2CF5_AD77_0999);
    }

    #[test]
    fn ramp_threshold_edges() {
        assert_eq!(ramp_threshold(0.0), 0);
        assert_eq!(ramp_threshold(100.0), BUCKETS);
        assert_eq!(ramp_threshold(150.0), BUCKETS);
        assert_eq!(ramp_threshold(-3.0), 0);
        assert_eq!(ramp_threshold(f64::NAN), 0);
        assert_eq!(ramp_threshold(0.5), 50);
        assert_eq!(ramp_threshold(12.34), 1234);
    }

    #[test]
    fn variant_ranges_follow_weights() {
        let w = [0.5, 0.25, 0.25];
        assert_eq!(pick_variant(w, 0), Some(0));
        assert_eq!(pick_variant(w, 4999), Some(0));
        assert_eq!(pick_variant(w, 5000), Some(1));
        assert_eq!(pick_variant(w, 7499), Some(1));
        assert_eq!(pick_variant(w, 7500), Some(2));
        assert_eq!(pick_variant(w, 9999), Some(2));
    }

    #[test]
    fn zero_weight_variants_are_never_picked() {
        let w = [0.0, 1.0, 0.0];
        assert!((0..BUCKETS).all(|b| pick_variant(w, b) == Some(1)));
        assert_eq!(pick_variant([0.0, 0.0], 3), None);
        // sums a hair under 1 still cover the top bucket
        assert_eq!(pick_variant([0.49995, 0.49995], 9999), Some(1));
    }
}
