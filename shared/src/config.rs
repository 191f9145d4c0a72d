//! Experiment configuration: what the control plane stores, publishes to the edge, and hands to
//! [`crate::assign()`]. Serialized field names are the API contract's.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConfigError;
use crate::hashing::{BUCKETS, HASH_VERSION};
use crate::targeting::{SavedGroups, Targeting};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentType {
    #[default]
    Ab,
    Bandit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Status::Draft, Status::Running, Status::Paused, Status::Stopped].into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub key: String,
    #[serde(default)]
    pub name: String,
    pub weight: f64,
    #[serde(default)]
    pub config_json: Value,
}

/// A slot `[start, end)` of a layer's bucket space `0..10_000`. Experiments in one layer with
/// non-overlapping slots are mutually exclusive: no unit is in two of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSlot {
    pub key: String,
    pub start: u32,
    pub end: u32,
}

impl LayerSlot {
    pub fn overlaps(&self, other: &LayerSlot) -> bool {
        self.key == other.key && self.start < other.end && other.start < self.end
    }
}

/// Everything an evaluator needs to assign a unit. The first variant is the control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub key: String,
    #[serde(rename = "type", default)]
    pub kind: ExperimentType,
    #[serde(default)]
    pub unit_type: String,
    pub status: Status,
    #[serde(default)]
    pub version: i64,
    pub ramp_pct: f64,
    #[serde(default)]
    pub targeting: Targeting,
    pub variants: Vec<Variant>,
    /// Seeds the hash; defaults to the key. Changing it reshuffles every unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    #[serde(default = "default_hash_version")]
    pub hash_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerSlot>,
    /// Keys units' sticky assignments (`crate::sticky`): a bump re-randomises them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bucket_version: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn default_hash_version() -> u32 {
    HASH_VERSION
}

/// Weights must sum to 1 within this tolerance.
pub const WEIGHT_TOLERANCE: f64 = 1e-6;

impl Experiment {
    pub fn salt(&self) -> &str {
        self.salt.as_deref().unwrap_or(&self.key)
    }

    pub fn control(&self) -> Option<&Variant> {
        self.variants.first()
    }

    /// Checks every rule of the contract; the error names the field (`variants[1].weight`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_key(&self.key).map_err(|m| ConfigError::new("key", m))?;
        if !(self.ramp_pct.is_finite() && (0.0..=100.0).contains(&self.ramp_pct)) {
            return Err(ConfigError::new("ramp_pct", "must be a number from 0 to 100"));
        }
        if self.hash_version != HASH_VERSION {
            return Err(ConfigError::new("hash_version", format!("unsupported hash version (supported: {HASH_VERSION})")));
        }
        validate_variants(&self.variants)?;
        if let Some(layer) = &self.layer {
            if layer.key.is_empty() {
                return Err(ConfigError::new("layer.key", "must not be empty"));
            }
            if !(layer.start < layer.end && layer.end <= BUCKETS) {
                return Err(ConfigError::new("layer", format!("slot must satisfy 0 <= start < end <= {BUCKETS}")));
            }
        }
        Ok(())
    }
}

/// Keys are `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn validate_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && (b == b'_' || b == b'-'))
        });
    if ok { Ok(()) } else { Err("must match [a-z0-9][a-z0-9_-]{0,63}".into()) }
}

pub fn validate_variants(variants: &[Variant]) -> Result<(), ConfigError> {
    if variants.len() < 2 {
        return Err(ConfigError::new("variants", "at least 2 variants are required (the first is the control)"));
    }
    let mut sum = 0.0;
    for (i, v) in variants.iter().enumerate() {
        let at = |field: &str| format!("variants[{i}].{field}");
        if v.key.is_empty() || v.key.len() > 64 {
            return Err(ConfigError::new(at("key"), "must be 1 to 64 characters"));
        }
        if variants[..i].iter().any(|o| o.key == v.key) {
            return Err(ConfigError::new(at("key"), format!("duplicate variant key `{}`", v.key)));
        }
        if !(v.weight.is_finite() && v.weight >= 0.0) {
            return Err(ConfigError::new(at("weight"), "must be a number >= 0"));
        }
        sum += v.weight;
    }
    if (sum - 1.0).abs() > WEIGHT_TOLERANCE {
        return Err(ConfigError::new("variants", format!("weights must sum to 1 (they sum to {sum})")));
    }
    Ok(())
}

/// The set of experiment configs published to the edge, versioned as a whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigSet {
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    pub experiments: Vec<Experiment>,
    /// Saved groups by id, for `$inGroup`/`$notInGroup` in the experiments' targeting.
    #[serde(default, skip_serializing_if = "SavedGroups::is_empty")]
    pub saved_groups: SavedGroups,
}

impl ConfigSet {
    pub fn get(&self, key_or_id: &str) -> Option<&Experiment> {
        self.position(key_or_id).map(|i| &self.experiments[i])
    }

    /// Where [`get`](Self::get) finds `key_or_id` (by key or by id) in `experiments`.
    pub fn position(&self, key_or_id: &str) -> Option<usize> {
        self.experiments.iter().position(|e| e.key == key_or_id || e.id.as_deref() == Some(key_or_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exp(v: Value) -> Result<Experiment, String> {
        let e: Experiment = serde_json::from_value(v).map_err(|e| e.to_string())?;
        e.validate().map_err(|e| e.path)?;
        Ok(e)
    }

    fn base() -> Value {
        json!({"key":"checkout","status":"running","ramp_pct":50,
               "variants":[{"key":"a","weight":0.5},{"key":"b","weight":0.5}]})
    }

    fn with(patch: Value) -> Value {
        let mut v = base();
        for (k, val) in patch.as_object().expect("object") {
            v[k] = val.clone();
        }
        v
    }

    #[test]
    fn defaults() {
        let e = exp(base()).expect("valid");
        assert_eq!(e.kind, ExperimentType::Ab);
        assert_eq!(e.hash_version, HASH_VERSION);
        assert_eq!(e.salt(), "checkout");
        assert!(e.targeting.is_empty());
        assert_eq!(e.control().map(|v| v.key.as_str()), Some("a"));
    }

    #[test]
    fn a_set_finds_experiments_by_key_or_id() {
        let set = ConfigSet {
            version: 1,
            published_at: None,
            experiments: vec![exp(base()).expect("valid"), exp(with(json!({"key":"pricing","id":"0192-p"}))).expect("valid")],
            saved_groups: SavedGroups::new(),
        };
        assert_eq!(set.position("checkout"), Some(0));
        assert_eq!(set.position("pricing"), Some(1));
        assert_eq!(set.position("0192-p"), Some(1));
        assert_eq!(set.position("nope"), None);
        assert_eq!(set.get("0192-p").map(|e| e.key.as_str()), Some("pricing"));
    }

    #[test]
    fn rejects_with_field_paths() {
        let bad = |p: Value| exp(with(p)).expect_err("invalid");
        assert_eq!(bad(json!({"key":"Bad Key"})), "key");
        assert_eq!(bad(json!({"key":"_x"})), "key");
        assert_eq!(bad(json!({"ramp_pct":101})), "ramp_pct");
        assert_eq!(bad(json!({"variants":[{"key":"a","weight":1}]})), "variants");
        assert_eq!(bad(json!({"variants":[{"key":"a","weight":0.5},{"key":"a","weight":0.5}]})), "variants[1].key");
        assert_eq!(bad(json!({"variants":[{"key":"a","weight":-0.5},{"key":"b","weight":1.5}]})), "variants[0].weight");
        assert_eq!(bad(json!({"variants":[{"key":"a","weight":0.5},{"key":"b","weight":0.4}]})), "variants");
        assert_eq!(bad(json!({"hash_version":2})), "hash_version");
        assert_eq!(bad(json!({"layer":{"key":"l","start":5,"end":5}})), "layer");
        assert!(bad(json!({"targeting":{"c":{"bogus":1}}})).contains("unknown operator"));
    }

    #[test]
    fn accepts_edge_weights() {
        exp(with(json!({"variants":[{"key":"a","weight":1},{"key":"b","weight":0}]}))).expect("valid");
        exp(with(json!({"variants":[{"key":"a","weight":0.3333333},{"key":"b","weight":0.3333333},{"key":"c","weight":0.3333334}]}))).expect("valid");
        exp(with(json!({"ramp_pct":0}))).expect("valid");
        exp(with(json!({"ramp_pct":100}))).expect("valid");
    }

    #[test]
    fn layer_overlap() {
        let s = |k: &str, a, b| LayerSlot { key: k.into(), start: a, end: b };
        assert!(s("l", 0, 5000).overlaps(&s("l", 4999, 6000)));
        assert!(!s("l", 0, 5000).overlaps(&s("l", 5000, 6000)));
        assert!(!s("l", 0, 5000).overlaps(&s("m", 0, 5000)));
    }
}
