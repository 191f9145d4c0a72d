//! Targeting: JSON conditions over a unit's attributes, in either of two dialects, one engine.
//!
//! - [`short`]: Litmus's own (`{"country": {"in": ["US", "CA"]}}`, `and`/`or`/`not`).
//! - [`mongo`]: GrowthBook's MongoDB-style `$`-operators, with GrowthBook's semantics
//!   ([`js`] for JavaScript's value rules, [`version`] for `$v…` comparisons).
//!
//! A condition with a `$`-key anywhere is GrowthBook's; any other is ours (grammar, semantics and
//! where the two differ: `shared/README.md`). Conditions are parsed and compiled once (regexes,
//! version ranges) when a config is loaded, so evaluating one per request does not re-parse.

pub mod js;
pub mod mongo;
pub mod short;
pub mod version;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::ConfigError;

/// A unit's attributes: `{"country":"US","plan":"pro","age":31}`. serde_json's map is a BTreeMap,
/// so iteration order never depends on a random hasher.
pub type Attributes = serde_json::Map<String, Value>;

/// Saved groups by id: lists of attribute values that `$inGroup`/`$notInGroup` refer to,
/// published with the config set. An unknown id is an empty list, as in GrowthBook.
pub type SavedGroups = BTreeMap<String, Vec<Value>>;

/// Which language a condition is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Litmus,
    Growthbook,
}

/// A parsed targeting condition plus the JSON it came from (kept for round-trips and display).
#[derive(Debug, Clone)]
pub struct Targeting {
    raw: Value,
    condition: Compiled,
}

#[derive(Debug, Clone)]
enum Compiled {
    Short(short::Condition),
    Mongo(mongo::Condition),
}

impl Default for Targeting {
    fn default() -> Self {
        Self { raw: Value::Object(serde_json::Map::new()), condition: Compiled::Short(short::Condition::All(Vec::new())) }
    }
}

impl PartialEq for Targeting {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

/// Whether any object key in `v`, at any depth, starts with `$`.
fn has_dollar_key(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(k, v)| k.starts_with('$') || has_dollar_key(v)),
        Value::Array(items) => items.iter().any(has_dollar_key),
        _ => false,
    }
}

impl Targeting {
    /// Parses and validates a condition. `null` and `{}` match every unit. Errors carry the JSON
    /// path of the fault relative to the targeting root (e.g. `or[1].country.in`).
    pub fn parse(raw: &Value) -> Result<Self, ConfigError> {
        let condition = if has_dollar_key(raw) { Compiled::Mongo(mongo::parse(raw, "")?) } else { Compiled::Short(short::parse(raw, "")?) };
        let raw = if raw.is_null() { Value::Object(serde_json::Map::new()) } else { raw.clone() };
        Ok(Self { raw, condition })
    }

    /// A condition that could not be parsed (say, written by a newer control plane), kept as
    /// written and matching nobody: a reader that must not drop the experiment treats it as not
    /// matching, rather than as matching everyone.
    pub fn unmatchable(raw: Value) -> Self {
        Self { raw, condition: Compiled::Short(short::Condition::Any(Vec::new())) }
    }

    pub fn as_json(&self) -> &Value {
        &self.raw
    }

    pub fn dialect(&self) -> Dialect {
        match self.condition {
            Compiled::Short(_) => Dialect::Litmus,
            Compiled::Mongo(_) => Dialect::Growthbook,
        }
    }

    /// True when every unit matches (no condition at all).
    pub fn is_empty(&self) -> bool {
        matches!(&self.condition, Compiled::Short(short::Condition::All(c)) if c.is_empty())
    }

    /// Whether the attributes satisfy the condition, with no saved groups.
    #[inline]
    pub fn matches(&self, attributes: &Attributes) -> bool {
        self.matches_with(attributes, &SavedGroups::new())
    }

    /// Whether the attributes satisfy the condition; `$inGroup` looks up `groups`.
    #[inline]
    pub fn matches_with(&self, attributes: &Attributes, groups: &SavedGroups) -> bool {
        match &self.condition {
            Compiled::Short(c) => c.eval(attributes),
            Compiled::Mongo(c) => c.eval(mongo::Root::Attributes(attributes), groups),
        }
    }
}

impl Serialize for Targeting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Targeting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        Targeting::parse(&raw).map_err(serde::de::Error::custom)
    }
}
