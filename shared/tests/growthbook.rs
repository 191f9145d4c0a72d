//! GrowthBook's own `evalCondition` test cases (`testdata/growthbook-conditions.json`, copied
//! from its SDK's `cases.json`): a condition pasted from GrowthBook answers as GrowthBook's SDK
//! does, except where we refuse it when it is saved (a condition that cannot mean anything),
//! which is listed here with the path the refusal names.

use litmus_shared::targeting::{Dialect, SavedGroups, Targeting};
use serde_json::Value;

/// Cases GrowthBook evaluates to false because the condition is meaningless, and that we refuse
/// instead: name → the refusal's path.
const REFUSED: &[(&str, &str)] = &[
    ("$in - not array", "num.$in"),
    ("$nin - not array", "num.$nin"),
    ("$ini - not array", "num.$ini"),
    ("$nini - not array", "num.$nini"),
    ("unknown operator - pass", "name.$regx"),
    ("$regex invalid - pass", "name.$regex"),
    ("$regex invalid - fail", "name.$regex"),
    // Not meaningless, but without a `$` anywhere these read as our dialect, where an object under
    // an attribute holds operators and `hello` is refused as an unknown one (a typo such as `inn`
    // must not silently become an object literal). Wrapped in `$and`, they answer as GrowthBook's
    // (`object_literals_in_growthbooks_dialect` below).
    ("equals object - pass", "tags.hello"),
    ("equals object - fail extra property", "tags.hello"),
    ("equals object - fail missing property", "tags.hello"),
    ("equals object - fail type mismatch", "tags.hello"),
];

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/growthbook-conditions.json")).expect("the cases file");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    doc["cases"].as_array().expect("cases").clone()
}

#[test]
fn growthbooks_cases_answer_as_growthbook_does() {
    let cases = cases();
    assert!(cases.len() >= 240, "{} cases", cases.len());
    let mut failures = Vec::new();
    let mut refused = Vec::new();
    for case in &cases {
        let (name, condition, attributes, expected) = (case[0].as_str().expect("name"), &case[1], &case[2], case[3].as_bool().expect("bool"));
        let groups: SavedGroups = case.get(4).map(|g| serde_json::from_value(g.clone()).expect("groups")).unwrap_or_default();
        match Targeting::parse(condition) {
            Ok(t) => {
                let got = t.matches_with(attributes.as_object().expect("attributes"), &groups);
                if got != expected {
                    failures.push(format!("{name}: {condition} with {attributes} → {got}, GrowthBook says {expected}"));
                }
                if REFUSED.iter().any(|(n, _)| *n == name) {
                    failures.push(format!("{name}: expected a refusal"));
                }
            }
            Err(e) => refused.push((name.to_owned(), e.path)),
        }
    }
    let want: Vec<(String, String)> = REFUSED.iter().map(|(n, p)| ((*n).to_owned(), (*p).to_owned())).collect();
    let mut got = refused.clone();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "refused cases");
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn every_growthbook_case_is_read_as_growthbooks_dialect_when_it_has_a_dollar() {
    for case in cases() {
        if let Ok(t) = Targeting::parse(&case[1])
            && case[1].to_string().contains("\"$")
        {
            assert_eq!(t.dialect(), Dialect::Growthbook, "{}", case[0]);
        }
    }
}

#[test]
fn object_literals_in_growthbooks_dialect() {
    for case in cases().iter().filter(|c| c[0].as_str().is_some_and(|n| n.starts_with("equals object"))) {
        let wrapped = serde_json::json!({"$and": [case[1]]});
        let t = Targeting::parse(&wrapped).expect("a literal object in GrowthBook's dialect");
        assert_eq!(t.matches(case[2].as_object().expect("attributes")), case[3].as_bool().expect("bool"), "{}", case[0]);
    }
}
