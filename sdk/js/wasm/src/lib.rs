//! The JS SDK's local evaluator: `litmus_shared` behind wasm-bindgen. No logic of its own: JSON in,
//! the engine's functions called, the engine's own serialization out, so a local answer is the
//! edge's answer byte for byte.

use litmus_shared::{Attributes, ConfigSet, assign_with};
use wasm_bindgen::prelude::*;

/// A parsed config set (`litmus_shared::ConfigSet`, the document the edge serves from).
#[wasm_bindgen]
pub struct Evaluator {
    set: ConfigSet,
}

#[wasm_bindgen]
impl Evaluator {
    /// Parses a config set's JSON; throws the parser's message when it is not one.
    #[wasm_bindgen(constructor)]
    pub fn new(config_set_json: &str) -> Result<Evaluator, JsError> {
        let set: ConfigSet = serde_json::from_str(config_set_json)?;
        Ok(Evaluator { set })
    }

    /// The config set's version.
    #[wasm_bindgen(getter)]
    pub fn version(&self) -> f64 {
        self.set.version as f64
    }

    /// Keys of the experiments in the set, in order.
    pub fn keys(&self) -> Vec<String> {
        self.set.experiments.iter().map(|e| e.key.clone()).collect()
    }

    /// Status of an experiment (`running`, `paused`…), or undefined when the set does not hold it.
    pub fn status(&self, experiment: &str) -> Option<String> {
        self.set.get(experiment).map(|e| e.status.as_str().to_owned())
    }

    /// `litmus_shared::assign_with` with the set's saved groups: the assignment's JSON, or
    /// undefined when the set does not hold `experiment`. `attributes_json` is a JSON object.
    pub fn assign(&self, experiment: &str, unit_id: &str, attributes_json: &str) -> Result<Option<String>, JsError> {
        let Some(e) = self.set.get(experiment) else { return Ok(None) };
        let attributes: Attributes = serde_json::from_str(attributes_json)?;
        Ok(Some(serde_json::to_string(&assign_with(e, unit_id, &attributes, &self.set.saved_groups))?))
    }
}
