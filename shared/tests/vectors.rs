//! Runs the committed, language-neutral test vectors (`testdata/vectors.v1.json`). The edge
//! worker runs the same file inside workerd.

use litmus_shared::{Attributes, Experiment, SavedGroups, assign_with};
use serde_json::Value;

#[test]
fn every_vector_reproduces() {
    let text = include_str!("../testdata/vectors.v1.json");
    let doc: Value = serde_json::from_str(text).expect("vectors parse");
    assert_eq!(doc["version"], 1);
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 200, "the file promises at least 200 cases");
    let mut failures = Vec::new();
    for case in cases {
        let e: Experiment = serde_json::from_value(case["experiment"].clone()).expect("experiment parses");
        e.validate().expect("vector experiments are valid");
        let attrs: Attributes = case["attributes"].as_object().cloned().unwrap_or_default();
        let unit = case["unit_id"].as_str().expect("unit_id");
        let groups: SavedGroups = serde_json::from_value(case["saved_groups"].clone()).unwrap_or_default();
        let got = serde_json::to_value(assign_with(&e, unit, &attrs, &groups)).expect("serializes");
        if got != case["expected"] {
            failures.push(format!("{}: got {got}, want {}", case["name"], case["expected"]));
        }
    }
    assert!(failures.is_empty(), "{} of {} vectors differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
