//! Insights (pure): findings worth an alert on every running experiment, rules or not: a sample
//! ratio mismatch, a breached guardrail, a primary metric the always-valid test has decided
//! ("ready to call"), a planned effect the current traffic cannot detect in time
//! ("underpowered"), and a sudden drop or spike of the exposure rate against the experiment's own
//! recent baseline.

use serde::Serialize;
use serde_json::{Value, json};

use super::rules::{ALPHA, Facts, breaches, fmt_p};
use crate::results::Role;
use crate::stats::power;

/// A finding, before it is an alert (`alerts::raise` makes it one, once per `key`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    pub severity: &'static str,
    pub key: String,
    pub title: String,
    pub details: Value,
}

pub fn from_facts(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some((p, true)) = f.srm {
        out.push(Finding {
            kind: "srm", severity: "critical", key: "srm".into(),
            title: format!("sample ratio mismatch: units do not split as configured (p = {})", fmt_p(p)),
            details: json!({"p_value": p, "threshold": crate::stats::srm::SRM_ALPHA}),
        });
    }
    for b in breaches(f, None, 0.0) {
        out.push(Finding {
            kind: "guardrail", severity: "critical", key: format!("guardrail:{}:{}", b.metric, b.variant),
            title: format!("guardrail `{}` is worse in {} (always-valid p = {})", b.metric, b.variant, fmt_p(b.p_value)),
            details: json!(b),
        });
    }
    let mut metrics: Vec<&str> = f.rows.iter().filter(|r| r.role == Role::Primary).map(|r| r.metric.as_str()).collect();
    metrics.dedup();
    for m in metrics {
        let decided: Vec<Value> = f.rows.iter()
            .filter(|r| r.metric == m && r.role == Role::Primary)
            .filter_map(|r| r.sequence.filter(|s| s.2 < ALPHA).map(|(lo, hi, p)| {
                json!({"variant": r.variant, "p_value": p, "ci_low": lo, "ci_high": hi, "rel_lift": r.rel_lift})
            }))
            .collect();
        if !decided.is_empty() {
            out.push(Finding {
                kind: "ready_to_call", severity: "info", key: format!("ready_to_call:{m}"),
                title: format!("`{m}` is decided by the always-valid test: the experiment is ready to call"),
                details: json!({"metric": m, "alpha": ALPHA, "decided": decided}),
            });
        }
    }
    out
}

/// The control arm's level of a metric, for power.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    Mean { mean: f64, sd: f64 },
    Rate(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Power {
    pub needed_per_variant: u64,
    pub units_per_variant: f64,
    pub units_per_day: f64,
    pub more_days: f64,
}

/// Days more traffic at today's rate needs to reach 80 % power for a relative effect `mde`.
pub fn days_needed(baseline: Baseline, mde: f64, arms: usize, units: i64, running_seconds: f64) -> Option<Power> {
    let per = match baseline {
        Baseline::Mean { mean, sd } => power::means(sd, mde * mean.abs(), ALPHA, 0.8).ok()?,
        Baseline::Rate(p) => power::proportions(p, mde * p, ALPHA, 0.8).ok()?,
    };
    if arms < 2 || units <= 0 || running_seconds <= 0.0 {
        return None;
    }
    let units_per_day = units as f64 / (running_seconds / 86_400.0);
    let missing = (per.per_variant as f64 * arms as f64 - units as f64).max(0.0);
    Some(Power { needed_per_variant: per.per_variant, units_per_variant: units as f64 / arms as f64, units_per_day, more_days: missing / units_per_day })
}

/// Too few recent buckets, or too little traffic per bucket, to tell noise from an incident.
pub const MIN_BASELINE_BUCKETS: usize = 6;
pub const MIN_BASELINE_RATE: f64 = 10.0;
/// How far from the baseline, in standard deviations, and by what factor, before it is news.
pub const Z: f64 = 4.0;
pub const FACTOR: f64 = 2.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub direction: &'static str,
    pub observed: i64,
    pub expected: f64,
    pub z: f64,
    pub baseline_buckets: usize,
}

/// `counts`: new exposed units per bucket, oldest first, the last the most recent complete
/// bucket. Flags the last when it is both `FACTOR` times off the baseline's mean and `Z`
/// standard deviations away (Poisson spread, or the baseline's own when it is noisier).
pub fn exposure_anomaly(counts: &[i64]) -> Option<Anomaly> {
    let (&last, base) = counts.split_last()?;
    if base.len() < MIN_BASELINE_BUCKETS {
        return None;
    }
    let n = base.len() as f64;
    let mean = base.iter().sum::<i64>() as f64 / n;
    if mean < MIN_BASELINE_RATE {
        return None;
    }
    let var = base.iter().map(|&c| (c as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let z = (last as f64 - mean) / var.max(mean).sqrt();
    let x = last as f64;
    let direction = if x * FACTOR <= mean && z <= -Z {
        "drop"
    } else if x >= mean * FACTOR && z >= Z {
        "spike"
    } else {
        return None;
    };
    Some(Anomaly { direction, observed: last, expected: mean, z, baseline_buckets: base.len() })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::results::Direction;
    use crate::watch::rules::Row;

    #[test]
    fn anomalies_against_the_recent_baseline() {
        let steady = [100, 96, 104, 99, 101, 103, 97, 100];
        assert_eq!(exposure_anomaly(&[&steady[..], &[98]].concat()), None);
        let drop = exposure_anomaly(&[&steady[..], &[12]].concat()).expect("a drop");
        assert_eq!((drop.direction, drop.observed), ("drop", 12));
        assert!(drop.z < -8.0, "{}", drop.z);
        assert_eq!(exposure_anomaly(&[&steady[..], &[260]].concat()).map(|a| a.direction), Some("spike"));
        // Halving is within a noisy baseline's own swings: not news.
        assert_eq!(exposure_anomaly(&[20, 180, 40, 160, 30, 170, 100, 45]), None);
        // Too little traffic or history to tell.
        assert_eq!(exposure_anomaly(&[3, 4, 2, 5, 3, 4, 3, 0]), None);
        assert_eq!(exposure_anomaly(&[100, 100, 100, 0]), None);
    }

    proptest! {
        /// A last bucket at the baseline's median is never an anomaly (a median lies within one
        /// standard deviation of the mean).
        #[test]
        fn nothing_at_the_median(base in prop::collection::vec(0i64..10_000, 6..30)) {
            let mut sorted = base.clone();
            sorted.sort_unstable();
            let last = sorted[sorted.len() / 2];
            prop_assert_eq!(exposure_anomaly(&[&base[..], &[last]].concat()), None);
        }
    }

    #[test]
    fn days_needed_at_the_current_rate() {
        // 10 % baseline, +20 % relative (2 points): 3841 per variant, 7682 in all; 1000 units a
        // day so far with 2000 in: 5.682 more days.
        let p = days_needed(Baseline::Rate(0.1), 0.2, 2, 2000, 2.0 * 86_400.0).expect("power");
        assert_eq!(p.needed_per_variant, 3841);
        assert!((p.more_days - 5.682).abs() < 1e-9, "{}", p.more_days);
        let done = days_needed(Baseline::Rate(0.1), 0.2, 2, 10_000, 86_400.0).expect("power");
        assert_eq!(done.more_days, 0.0);
        assert_eq!(days_needed(Baseline::Rate(0.1), 0.2, 2, 0, 86_400.0), None);
    }

    #[test]
    fn findings_from_a_readout() {
        let row = |metric: &str, role, direction, seq| Row {
            metric: metric.into(), kind: "mean", variant: "b".into(), role, direction, control_value: Some(1.0), variant_value: Some(1.0),
            rel_lift: Some(0.0), sequence: Some(seq),
        };
        let f = Facts {
            running_seconds: 10.0, units: 100, arms: 2, srm: Some((1e-9, true)),
            rows: vec![row("revenue", Role::Primary, Direction::Increase, (0.1, 0.3, 0.001)),
                       row("latency", Role::Guardrail, Direction::Decrease, (0.1, 0.3, 0.001)),
                       row("clicks", Role::Secondary, Direction::Increase, (0.1, 0.3, 0.001))],
        };
        let kinds: Vec<&str> = from_facts(&f).iter().map(|x| x.kind).collect();
        assert_eq!(kinds, ["srm", "guardrail", "ready_to_call"]);
        let quiet = Facts { srm: Some((0.5, false)), rows: vec![row("revenue", Role::Primary, Direction::Increase, (-0.1, 0.3, 0.4))], ..f };
        assert!(from_facts(&quiet).is_empty());
    }
}
