//! Writes `shared/testdata/vectors.v1.json`, the language-neutral test vectors every evaluator
//! (native, wasm worker, SDKs) must reproduce:
//!
//!     cargo run -p litmus-shared --example gen_vectors > shared/testdata/vectors.v1.json
//!
//! The targeting cases carry hand-written expectations that are checked here before anything is
//! written, so the file records intent, not merely what the code happened to do. GrowthBook's
//! dialect also takes GrowthBook's own published cases (`testdata/growthbook-conditions.json`),
//! with GrowthBook's answers as the expectation; a case may carry `saved_groups`.

use litmus_shared::{Attributes, Experiment, SavedGroups, assign_with};
use serde_json::{Value, json};

fn exp(key: &str, status: &str, ramp: f64, weights: &[f64], extra: Value) -> Value {
    let variants: Vec<Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"key": if i == 0 { "control".to_owned() } else { format!("t{i}") }, "weight": w, "config_json": {"arm": i}}))
        .collect();
    let mut e = json!({"key": key, "type": "ab", "unit_type": "user_id", "status": status, "version": 7,
                       "ramp_pct": ramp, "targeting": {}, "variants": variants, "hash_version": 1});
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            e[k] = v;
        }
    }
    e
}

fn main() {
    let units = ["user-1", "user-2", "store-123", "42", "", "émile", "用户-七", "🙂🚀", "a b\tc", &"x".repeat(300)];
    let mut cases: Vec<(String, Value, String, Value, Option<bool>)> = Vec::new();
    let mut groups_of: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();

    // Hashing: weights, ramps, salts, unicode ids.
    let weight_sets: &[&[f64]] = &[&[0.5, 0.5], &[0.1, 0.9], &[1.0, 0.0], &[0.0, 1.0], &[0.0, 0.5, 0.5],
                                   &[0.2, 0.2, 0.2, 0.2, 0.2], &[0.999999, 0.000001], &[0.3333333, 0.3333333, 0.3333334]];
    for (wi, w) in weight_sets.iter().enumerate() {
        for (ui, unit) in units.iter().enumerate() {
            let ramp = [100.0, 50.0, 10.0, 99.99, 0.01][(wi + ui) % 5];
            cases.push((format!("weights{wi}-unit{ui}-ramp{ramp}"), exp(&format!("hash_{wi}"), "running", ramp, w, json!({})), unit.to_string(), json!({}), None));
        }
    }
    for unit in &units[..6] {
        cases.push((format!("ramp0-{unit}"), exp("ramp_zero", "running", 0.0, &[0.5, 0.5], json!({})), unit.to_string(), json!({}), None));
        cases.push((format!("salt-{unit}"), exp("salted", "running", 100.0, &[0.5, 0.5], json!({"salt": "2026-q4"})), unit.to_string(), json!({}), None));
    }
    for status in ["draft", "paused", "stopped"] {
        for unit in &units[..3] {
            cases.push((format!("{status}-{unit}"), exp("lifecycle", status, 100.0, &[0.5, 0.5], json!({})), unit.to_string(), json!({}), None));
        }
    }
    for i in 0..12 {
        let unit = format!("layer-unit-{i}");
        for (name, start, end) in [("left", 0, 5000), ("right", 5000, 10000), ("thin", 1234, 1300)] {
            cases.push((format!("layer-{name}-{i}"), exp(&format!("layer_{name}"), "running", 100.0, &[0.5, 0.5],
                json!({"layer": {"key": "checkout", "start": start, "end": end}})), unit.clone(), json!({}), None));
        }
    }

    for i in 0..40 {
        cases.push((format!("spread-{i}"), exp("spread", "running", 100.0, &[0.2, 0.2, 0.2, 0.2, 0.2], json!({})), format!("u{i}"), json!({}), None));
    }

    // Targeting: (condition, attributes, expected match). Ramp 100 and weights [1, 0] make the
    // expected answer depend on targeting alone.
    let targeting: Vec<(Value, Value, bool)> = vec![
        (json!({"country":"US"}), json!({"country":"US"}), true),
        (json!({"country":"US"}), json!({"country":"us"}), false),
        (json!({"country":{"eq":"US"}}), json!({"country":"US"}), true),
        (json!({"country":{"ne":"US"}}), json!({"country":"CA"}), true),
        (json!({"country":{"ne":"US"}}), json!({"country":"US"}), false),
        (json!({"country":{"ne":"US"}}), json!({}), true),
        (json!({"country":{"in":["US","CA"]}}), json!({"country":"CA"}), true),
        (json!({"country":{"in":["US","CA"]}}), json!({"country":"MX"}), false),
        (json!({"country":{"in":["US","CA"]}}), json!({}), false),
        (json!({"country":{"nin":["US","CA"]}}), json!({"country":"MX"}), true),
        (json!({"country":{"nin":["US","CA"]}}), json!({"country":"US"}), false),
        (json!({"country":{"nin":["US"]}}), json!({}), true),
        (json!({"age":{"gt":18}}), json!({"age":19}), true),
        (json!({"age":{"gt":18}}), json!({"age":18}), false),
        (json!({"age":{"gt":18}}), json!({"age":"18.5"}), true),
        (json!({"age":{"gte":18}}), json!({"age":18}), true),
        (json!({"age":{"gte":18}}), json!({"age":"17"}), false),
        (json!({"age":{"lt":18}}), json!({"age":17.9}), true),
        (json!({"age":{"lt":18}}), json!({"age":18}), false),
        (json!({"age":{"lte":18}}), json!({"age":"18"}), true),
        (json!({"age":{"lte":18}}), json!({"age":"eighteen"}), false),
        (json!({"age":{"gte":18,"lt":65}}), json!({"age":40}), true),
        (json!({"age":{"gte":18,"lt":65}}), json!({"age":70}), false),
        (json!({"name":{"gt":"m"}}), json!({"name":"zoe"}), true),
        (json!({"name":{"gt":"m"}}), json!({"name":"adam"}), false),
        (json!({"coupon":{"exists":true}}), json!({"coupon":"X1"}), true),
        (json!({"coupon":{"exists":true}}), json!({}), false),
        (json!({"coupon":{"exists":false}}), json!({}), true),
        (json!({"coupon":{"exists":false}}), json!({"coupon":""}), false),
        (json!({"email":{"regex":"@example\\.com$"}}), json!({"email":"ana@example.com"}), true),
        (json!({"email":{"regex":"@example\\.com$"}}), json!({"email":"ana@example.com.evil"}), false),
        (json!({"email":{"regex":"^[a-z]+@"}}), json!({"email":"Ana@x"}), false),
        (json!({"app":{"semver":">=2.1.0, <3.0.0"}}), json!({"app":"2.10.3"}), true),
        (json!({"app":{"semver":">=2.1.0, <3.0.0"}}), json!({"app":"3.0.0"}), false),
        (json!({"app":{"semver":">=2.1.0"}}), json!({"app":"v2.1"}), true),
        (json!({"app":{"semver":">=2.1.0"}}), json!({"app":"2.0.99"}), false),
        (json!({"app":{"semver":"^1.4"}}), json!({"app":"1.9.0"}), true),
        (json!({"app":{"semver":">=1.0.0"}}), json!({"app":"not-a-version"}), false),
        (json!({"beta":true}), json!({"beta":"true"}), true),
        (json!({"beta":true}), json!({"beta":false}), false),
        (json!({"plan":"pro"}), json!({"plan":"pro"}), true),
        (json!({"tier":2}), json!({"tier":"2"}), true),
        (json!({"tier":2}), json!({"tier":2.0}), true),
        (json!({"tags":"beta"}), json!({"tags":["alpha","beta"]}), true),
        (json!({"tags":{"in":["x","y"]}}), json!({"tags":["alpha","beta"]}), false),
        (json!({"user.plan":"pro"}), json!({"user":{"plan":"pro"}}), true),
        (json!({"and":[{"country":"US"},{"plan":"pro"}]}), json!({"country":"US","plan":"pro"}), true),
        (json!({"and":[{"country":"US"},{"plan":"pro"}]}), json!({"country":"US","plan":"free"}), false),
        (json!({"or":[{"country":"US"},{"plan":"pro"}]}), json!({"country":"FR","plan":"pro"}), true),
        (json!({"or":[{"country":"US"},{"plan":"pro"}]}), json!({"country":"FR","plan":"free"}), false),
        (json!({"not":{"country":"US"}}), json!({"country":"FR"}), true),
        (json!({"not":{"country":"US"}}), json!({"country":"US"}), false),
        (json!({"country":"US","plan":{"ne":"free"}}), json!({"country":"US","plan":"team"}), true),
        (json!({"country":"US","plan":{"ne":"free"}}), json!({"country":"US","plan":"free"}), false),
        (json!({"or":[{"and":[{"country":"CA"},{"not":{"plan":"free"}}]},{"age":{"gte":65}}]}), json!({"country":"CA","plan":"pro"}), true),
        (json!({"or":[{"and":[{"country":"CA"},{"not":{"plan":"free"}}]},{"age":{"gte":65}}]}), json!({"country":"CA","plan":"free","age":"30"}), false),
        (json!({"or":[{"and":[{"country":"CA"},{"not":{"plan":"free"}}]},{"age":{"gte":65}}]}), json!({"age":"70"}), true),
        (json!({"city":{"in":["Zürich","東京"]}}), json!({"city":"東京"}), true),
        (json!({}), json!({"anything":1}), true),
        // An array equals the same array, whole (it was compared element by element: never equal).
        (json!({"tags":["a","b"]}), json!({"tags":["a","b"]}), true),
        (json!({"tags":["a","b"]}), json!({"tags":["b","a"]}), false),
        (json!({"tags":{"eq":["a"]}}), json!({"tags":["a"]}), true),
        (json!({"tags":{"ne":["a"]}}), json!({"tags":["a","b"]}), true),
        (json!({"tags":{"in":[["a","b"],["c"]]}}), json!({"tags":["c"]}), true),
        (json!({"user_id":null}), json!({}), true),
        (json!({"user_id":null}), json!({"user_id":"u"}), false),
        (json!({"user.address.city":"Łódź"}), json!({"user":{"address":{"city":"Łódź"}}}), true),
        // GrowthBook's dialect beyond its own cases: nested paths, array indexes and lengths,
        // unicode, case-insensitive operators, versions with `v` and builds, numbers as text.
        (json!({"user.name":{"$regexi":"^zoË"}}), json!({"user":{"name":"Zoë Smith"}}), true),
        (json!({"items.0.sku":"A-1"}), json!({"items":[{"sku":"A-1"},{"sku":"B-2"}]}), true),
        (json!({"items.1.sku":"A-1"}), json!({"items":[{"sku":"A-1"},{"sku":"B-2"}]}), false),
        (json!({"tags.length":{"$gte":2}}), json!({"tags":["x","y"]}), true),
        (json!({"items":{"$elemMatch":{"sku":"B-2","qty":{"$gt":1}}}}), json!({"items":[{"sku":"B-2","qty":"3"}]}), true),
        (json!({"items":{"$elemMatch":{"sku":"B-2","qty":{"$gt":1}}}}), json!({"items":[{"sku":"B-2","qty":1}]}), false),
        (json!({"city":{"$ini":["zürich","東京"]}}), json!({"city":"ZÜRICH"}), true),
        (json!({"app":{"$vgt":"v2.9.0"}}), json!({"app":"2.10.0+build.7"}), true),
        (json!({"app":{"$vlt":"2.0.0"}}), json!({"app":"2.0.0-rc.1"}), true),
        (json!({"age":{"$gte":18}}), json!({"age":"18"}), true),
        (json!({"age":{"$gt":"9"}}), json!({"age":"10"}), false),
        (json!({"age":{"$lt":10}}), json!({}), true),
        (json!({"beta":true}), json!({"beta":"false", "$x": 1}), false),
        (json!({"$and":[{"beta":true}]}), json!({"beta":"false"}), true),
        (json!({"$and":[{"beta":true}]}), json!({"beta":0}), false),
        (json!({"n":{"$type":"number"}}), json!({"n":"1"}), false),
        (json!({"$not":{"country":{"$in":["US"]}},"plan":{"$exists":true}}), json!({"country":"FR","plan":"pro"}), true),
    ];
    for (i, (cond, attrs, want)) in targeting.into_iter().enumerate() {
        for unit in ["user-1", "用户-七"] {
            cases.push((format!("targeting{i}-{unit}"), exp("targeted", "running", 100.0, &[1.0, 0.0], json!({"targeting": cond.clone()})),
                        unit.to_owned(), attrs.clone(), Some(want)));
        }
    }

    let published: Value = serde_json::from_str(include_str!("../testdata/growthbook-conditions.json")).expect("GrowthBook's cases");
    for case in published["cases"].as_array().expect("cases") {
        // The ones we refuse when saved are tested in tests/growthbook.rs, not here.
        if litmus_shared::Targeting::parse(&case[1]).is_err() {
            continue;
        }
        let name = format!("growthbook: {}", case[0].as_str().expect("name"));
        if let Some(groups) = case.get(4) {
            groups_of.insert(name.clone(), groups.clone());
        }
        cases.push((name, exp("targeted", "running", 100.0, &[1.0, 0.0], json!({"targeting": case[1]})), "user-1".to_owned(),
                    case[2].clone(), Some(case[3].as_bool().expect("expected"))));
    }

    let mut out = Vec::new();
    for (name, experiment, unit, attributes, expect_match) in cases {
        let groups_json = groups_of.get(&name).cloned();
        let groups: SavedGroups = groups_json.clone().map(|g| serde_json::from_value(g).expect("groups")).unwrap_or_default();
        let e: Experiment = serde_json::from_value(experiment.clone()).expect("generator builds valid experiments");
        e.validate().expect("generator builds valid experiments");
        let attrs: Attributes = attributes.as_object().cloned().unwrap_or_default();
        let a = assign_with(&e, &unit, &attrs, &groups);
        if let Some(want) = expect_match {
            assert_eq!(a.in_experiment, want, "hand-written expectation failed for {name}: {experiment} {attributes}");
        }
        let mut case = json!({"name": name, "experiment": experiment, "unit_id": unit, "attributes": attributes,
                        "expected": serde_json::to_value(&a).expect("serializable")});
        if let Some(g) = groups_json {
            case["saved_groups"] = g;
        }
        out.push(case);
    }
    let doc = json!({
        "format": "litmus-assignment-vectors", "version": 1, "hash_version": litmus_shared::hashing::HASH_VERSION,
        "about": "Inputs and expected outputs of assign(experiment, unit_id, attributes), with the config set's saved_groups where a case has them. Every evaluator must reproduce `expected` exactly. Regenerate: cargo run -p litmus-shared --example gen_vectors",
        "cases": out,
    });
    println!("{}", serde_json::to_string_pretty(&doc).expect("serializable"));
}
