use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::config::{Experiment, Status};
use crate::hashing::{self, BUCKETS};
use crate::signing::Signature;
use crate::targeting::{Attributes, SavedGroups};

/// Why a unit got the answer it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// In the experiment: variant chosen by weight.
    Assigned,
    /// The experiment is draft, paused or stopped.
    NotRunning,
    /// The unit's layer bucket falls outside the experiment's layer slot.
    Layer,
    /// The unit's attributes do not satisfy the targeting condition.
    Targeting,
    /// The unit's ramp bucket is above the ramp.
    Ramp,
    /// The config cannot be evaluated (no usable variants or unknown hash version): control.
    InvalidConfig,
    /// In the experiment, with the variant the unit was first given (its sticky document).
    Sticky,
}

/// One answer, borrowing from the experiment so that assigning allocates nothing.
/// Serializes to the contract's assignment object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment<'a> {
    pub experiment: &'a str,
    pub variant_key: &'a str,
    pub config_json: &'a Value,
    #[serde(serialize_with = "hex16")]
    pub assignment_id: u64,
    /// Set by the issuer when it holds signing keys (`crate::signing`); the engine itself never
    /// signs, so the vectors and every evaluator's deterministic fields are unchanged by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    pub version: i64,
    pub in_experiment: bool,
    pub reason: Reason,
}

fn hex16<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{id:016x}"))
}

static NULL: Value = Value::Null;

/// Which variant does `unit_id` get? Checks, in order: running, layer slot, targeting, ramp; the
/// first that fails gives the control variant with `in_experiment: false`. Never fails.
#[inline]
pub fn assign<'a>(experiment: &'a Experiment, unit_id: &str, attributes: &Attributes) -> Assignment<'a> {
    assign_with(experiment, unit_id, attributes, &SavedGroups::new())
}

/// [`assign`], with the saved groups (`$inGroup`/`$notInGroup`) of the experiment's config set.
pub fn assign_with<'a>(experiment: &'a Experiment, unit_id: &str, attributes: &Attributes, groups: &SavedGroups) -> Assignment<'a> {
    assign_remembering(experiment, unit_id, attributes, groups, None)
}

/// [`assign_with`], giving a unit that passes every check the `remembered` variant when the
/// experiment still has it (`crate::sticky`). Never inlined: one copy of the engine in the
/// worker, whichever way it is called (each inlined copy cost the worker kilobytes of upload).
#[inline(never)]
pub(crate) fn assign_remembering<'a>(
    experiment: &'a Experiment,
    unit_id: &str,
    attributes: &Attributes,
    groups: &SavedGroups,
    remembered: Option<&str>,
) -> Assignment<'a> {
    let seed = hashing::seed(experiment.salt());
    let answer = |index: usize, reason: Reason| {
        let (variant_key, config_json) = experiment
            .variants
            .get(index)
            .map_or(("", &NULL), |v| (v.key.as_str(), &v.config_json));
        Assignment {
            experiment: &experiment.key,
            variant_key,
            config_json,
            assignment_id: hashing::assignment_id(seed, unit_id, variant_key),
            signature: None,
            version: experiment.version,
            in_experiment: matches!(reason, Reason::Assigned | Reason::Sticky),
            reason,
        }
    };

    if experiment.hash_version != hashing::HASH_VERSION || experiment.variants.is_empty() {
        return answer(0, Reason::InvalidConfig);
    }
    if experiment.status != Status::Running {
        return answer(0, Reason::NotRunning);
    }
    if let Some(slot) = &experiment.layer {
        let b = hashing::bucket(hashing::layer_seed(&slot.key), b"", unit_id);
        if !(slot.start <= b && b < slot.end) {
            return answer(0, Reason::Layer);
        }
    }
    if !experiment.targeting.matches_with(attributes, groups) {
        return answer(0, Reason::Targeting);
    }
    let threshold = hashing::ramp_threshold(experiment.ramp_pct);
    if threshold < BUCKETS && hashing::bucket(seed, hashing::RAMP_TAG, unit_id) >= threshold {
        return answer(0, Reason::Ramp);
    }
    // Only where keeping a variant is the design (a bandit over lasting units), and only for a
    // variant still served: a document can never pick an A/B arm or a zero-weight arm.
    let keeps = |key: &str| experiment.variants.iter().position(|v| v.key == key && v.weight > 0.0);
    if let Some(i) = remembered.filter(|_| experiment.is_sticky()).and_then(keeps) {
        return answer(i, Reason::Sticky);
    }
    let b = hashing::bucket(seed, hashing::VARIANT_TAG, unit_id);
    match hashing::pick_variant(experiment.variants.iter().map(|v| v.weight), b) {
        Some(i) => answer(i, Reason::Assigned),
        None => answer(0, Reason::InvalidConfig),
    }
}
