//! The engine's required properties, each proven over generated inputs.

use litmus_shared::hashing::{self, BUCKETS};
use litmus_shared::{Attributes, Experiment, LayerSlot, Reason, Targeting, assign};
use proptest::prelude::*;
use serde_json::{Value, json};
use statrs::distribution::{ChiSquared, ContinuousCDF};

fn experiment(key: &str, weights: &[f64], ramp_pct: f64) -> Experiment {
    let variants: Vec<Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"key": format!("v{i}"), "weight": w, "config_json": {"i": i}}))
        .collect();
    serde_json::from_value(json!({"key": key, "status": "running", "ramp_pct": ramp_pct, "variants": variants}))
        .expect("valid experiment")
}

/// Normalised positive weights for 2..=6 variants, each at least 5 % so chi-square counts are large.
fn weights() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(1u32..20, 2..=6).prop_map(|raw| {
        let total: u32 = raw.iter().sum();
        let mut w: Vec<f64> = raw.iter().map(|&r| f64::from(r) / f64::from(total)).collect();
        let head: f64 = w[..w.len() - 1].iter().sum();
        let last = w.len() - 1;
        w[last] = 1.0 - head;
        w
    })
}

fn salt() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,20}"
}

/// Upper-tail p-value of a chi-square statistic.
fn chi2_p(stat: f64, df: usize) -> f64 {
    1.0 - ChiSquared::new(df as f64).expect("df > 0").cdf(stat)
}

fn none() -> Attributes {
    Attributes::new()
}

/// Significance for the statistical properties: a true property fails by chance one run in a
/// million, a real bias of a fraction of a percent at 100k units fails every run.
const ALPHA: f64 = 1e-6;
const UNITS: usize = 100_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn deterministic(key in salt(), w in weights(), ramp in 0.0f64..=100.0, unit in any::<String>()) {
        let e = experiment(&key, &w, ramp);
        let copy = e.clone();
        prop_assert_eq!(assign(&e, &unit, &none()), assign(&copy, &unit, &none()));
    }

    #[test]
    fn raising_the_ramp_never_moves_a_unit(key in salt(), w in weights(), lo in 0.0f64..=100.0,
                                            hi in 0.0f64..=100.0, unit in any::<String>()) {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        let low = experiment(&key, &w, lo);
        let high = experiment(&key, &w, hi);
        let before = { let a = assign(&low, &unit, &none()); (a.in_experiment, a.variant_key.to_owned()) };
        let after = assign(&high, &unit, &none());
        if before.0 {
            prop_assert!(after.in_experiment, "unit left the experiment when the ramp rose");
            prop_assert_eq!(before.1.as_str(), after.variant_key, "unit changed variant when the ramp rose");
        }
    }

    #[test]
    fn never_panics_on_arbitrary_unit_ids_and_attributes(unit in any::<String>(), country in any::<String>(), n in any::<i64>()) {
        let mut e = experiment("t", &[0.5, 0.5], 50.0);
        e.targeting = Targeting::parse(&json!({"or":[{"country":{"regex":"^U"}},{"n":{"gt":3}},{"v":{"semver":">=1"}}]})).expect("valid");
        let attrs: Attributes = json!({"country": country, "n": n, "v": unit.clone()}).as_object().cloned().unwrap_or_default();
        let a = assign(&e, &unit, &attrs);
        prop_assert!(a.variant_key == "v0" || a.variant_key == "v1");
    }
}

proptest! {
    // Each case hashes 100k units: fewer cases, same rigour per case.
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn variants_are_uniform_over_their_weights(key in salt(), w in weights()) {
        let e = experiment(&key, &w, 100.0);
        let mut counts = vec![0usize; w.len()];
        for i in 0..UNITS {
            let a = assign(&e, &format!("unit-{i}"), &none());
            counts[a.variant_key[1..].parse::<usize>().expect("v<i>")] += 1;
        }
        let stat: f64 = counts.iter().zip(&w).map(|(&o, &p)| {
            let expected = p * UNITS as f64;
            (o as f64 - expected).powi(2) / expected
        }).sum();
        let p = chi2_p(stat, w.len() - 1);
        prop_assert!(p > ALPHA, "counts {:?} for weights {:?}: chi2 {} p {}", counts, w, stat, p);
    }

    #[test]
    fn buckets_are_uniform(key in salt()) {
        const BINS: usize = 100;
        let seed = hashing::seed(&key);
        let mut counts = [0usize; BINS];
        for i in 0..UNITS {
            counts[hashing::bucket(seed, hashing::VARIANT_TAG, &i.to_string()) as usize * BINS / BUCKETS as usize] += 1;
        }
        let expected = (UNITS / BINS) as f64;
        let stat: f64 = counts.iter().map(|&o| (o as f64 - expected).powi(2) / expected).sum();
        prop_assert!(chi2_p(stat, BINS - 1) > ALPHA, "chi2 {}", stat);
    }

    #[test]
    fn ramp_admits_its_share(key in salt(), ramp in 1.0f64..=99.0) {
        let e = experiment(&key, &[0.5, 0.5], ramp);
        let inside = (0..UNITS).filter(|i| assign(&e, &format!("u{i}"), &none()).in_experiment).count();
        let p = ramp / 100.0;
        let expected = p * UNITS as f64;
        // chi-square with 1 df over {in, out}
        let stat = (inside as f64 - expected).powi(2) / expected
            + ((UNITS - inside) as f64 - (UNITS as f64 - expected)).powi(2) / (UNITS as f64 - expected);
        prop_assert!(chi2_p(stat, 1) > ALPHA, "{} of {} inside at ramp {}", inside, UNITS, ramp);
    }

    #[test]
    fn experiments_are_independent(a in salt(), b in salt()) {
        prop_assume!(a != b);
        let ea = experiment(&a, &[0.5, 0.5], 100.0);
        let eb = experiment(&b, &[0.3, 0.3, 0.4], 100.0);
        let mut table = [[0usize; 3]; 2];
        for i in 0..UNITS {
            let unit = format!("user:{i}");
            let va = assign(&ea, &unit, &none()).variant_key[1..].parse::<usize>().expect("index");
            let vb = assign(&eb, &unit, &none()).variant_key[1..].parse::<usize>().expect("index");
            table[va][vb] += 1;
        }
        // chi-square test of independence on the 2x3 contingency table
        let rows: Vec<f64> = table.iter().map(|r| r.iter().sum::<usize>() as f64).collect();
        let cols: Vec<f64> = (0..3).map(|j| table.iter().map(|r| r[j]).sum::<usize>() as f64).collect();
        let n = UNITS as f64;
        let mut stat = 0.0;
        for (i, row) in table.iter().enumerate() {
            for (j, &o) in row.iter().enumerate() {
                let expected = rows[i] * cols[j] / n;
                stat += (o as f64 - expected).powi(2) / expected;
            }
        }
        prop_assert!(chi2_p(stat, 2) > ALPHA, "table {:?}", table);
    }

    #[test]
    fn layers_are_mutually_exclusive(layer in salt(), split in 1u32..BUCKETS, units in prop::collection::vec(any::<String>(), 2000)) {
        let mut left = experiment("left", &[0.5, 0.5], 100.0);
        let mut right = experiment("right", &[0.5, 0.5], 100.0);
        left.layer = Some(LayerSlot { key: layer.clone(), start: 0, end: split });
        right.layer = Some(LayerSlot { key: layer, start: split, end: BUCKETS });
        for unit in &units {
            let (l, r) = (assign(&left, unit, &none()), assign(&right, unit, &none()));
            prop_assert!(!(l.in_experiment && r.in_experiment), "unit {:?} in both", unit);
            // the two slots cover the layer, so at full ramp every unit is in exactly one
            prop_assert!(l.in_experiment || r.in_experiment);
            prop_assert!(l.reason == Reason::Layer || r.reason == Reason::Layer);
        }
    }

    #[test]
    fn targeting_parse_never_panics(v in arb_json()) {
        if let Ok(t) = Targeting::parse(&v) {
            let attrs: Attributes = json!({"a": 1, "b": "x", "c": [1, "y"], "d": {"e": true}}).as_object().cloned().unwrap_or_default();
            let _ = t.matches(&attrs);
        }
    }
}

/// Conditions and attributes in either dialect: keys drawn from both operator sets, attribute
/// names, dotted paths and array indexes; leaves of every JSON type, unicode and numbers-as-text.
fn arb_any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        prop::sample::select(vec!["a", "b", "8", " 8 ", "0x1f", "1.2.3", "v2.0.0-rc.1+b", "ü", "😀", "", "(", "^a", "string", "array", "null", "g1"])
            .prop_map(|s| Value::String(s.to_owned())),
        "\\PC{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        let keys = prop::sample::select(vec![
            "a", "b", "c.0", "c.length", "d.e", "and", "or", "not", "in", "eq", "gt", "regex", "semver", "exists",
            "$or", "$nor", "$and", "$not", "$eq", "$ne", "$lt", "$gte", "$in", "$nin", "$ini", "$all", "$alli", "$elemMatch",
            "$size", "$exists", "$type", "$regex", "$regexi", "$veq", "$vgt", "$vlte", "$inGroup", "$notInGroup", "$savedGroup",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any JSON as a condition, any JSON as attributes: parsing gives a verdict, evaluation an
    /// answer, never a panic, and the same answer every time.
    #[test]
    fn any_condition_on_any_attributes_is_total_and_deterministic(cond in arb_any_json(), attrs in arb_any_json(), group in arb_any_json()) {
        if let Ok(t) = Targeting::parse(&cond) {
            let attrs: Attributes = match attrs { Value::Object(m) => m, other => [("a".to_owned(), other)].into_iter().collect() };
            let groups: litmus_shared::targeting::SavedGroups = [("g1".to_owned(), vec![group, json!("a"), json!(8)])].into_iter().collect();
            let first = t.matches_with(&attrs, &groups);
            prop_assert_eq!(first, t.matches_with(&attrs, &groups));
            prop_assert_eq!(first, Targeting::parse(&cond).expect("parses again").matches_with(&attrs, &groups));
        }
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        prop::sample::select(vec!["a", "b", "c", "d.e", "and", "or", "not", "in", "eq", "gt", "regex", "semver", "exists", "^x", ">=1.0.0", "("])
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        let keys = prop::sample::select(vec!["a", "b", "c", "d.e", "and", "or", "not", "in", "nin", "eq", "ne", "gt", "lte", "regex", "semver", "exists"]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The batch endpoint expands whatever it is sent: never a panic, only a verdict.
    #[test]
    fn exposure_groups_never_panic(text in ".{0,80}", v in arb_json()) {
        let _ = litmus_shared::exposures::expand(&text);
        let _ = litmus_shared::exposures::expand(&v.to_string());
        let group = json!({"id": text, "unit_id": "u", "ts": "t", "exposures": [["a", "b"], ["c", "d"]]});
        let events = litmus_shared::exposures::expand(&group.to_string()).expect("a well-formed group");
        prop_assert_eq!(events.len(), 2);
        prop_assert_ne!(&events[0], &events[1], "ids apart, whatever the request id");
    }

    /// A group is its events: one per pair, ids distinct, the unit and attributes in each.
    #[test]
    fn exposure_groups_expand_to_one_distinct_event_per_pair(
        unit in "\\PC{1,20}", n in 0usize..100, millis in 0u64..(1 << 40), rand in any::<u64>(),
    ) {
        let id = format!("{:08x}-{:04x}-7{:03x}-8{:03x}-{:012x}", millis >> 16, millis & 0xffff, rand & 0xfff, (rand >> 12) & 0xfff, rand >> 16 & 0xffff_ffff_ffff);
        let pairs: Vec<[String; 2]> = (0..n).map(|i| [format!("e{i}"), "v".to_owned()]).collect();
        let group = json!({"id": id, "unit_id": unit, "ts": "2026-12-01T00:00:00Z", "attributes": {"k": "ü"}, "exposures": pairs});
        let text = group.to_string();
        prop_assert_eq!(litmus_shared::exposures::count(&text), Ok(n));
        let events: Vec<Value> = litmus_shared::exposures::expand(&text).expect("expands").iter()
            .map(|e| serde_json::from_str(e).expect("JSON")).collect();
        let ids: std::collections::BTreeSet<&str> = events.iter().filter_map(|e| e["event_id"].as_str()).collect();
        prop_assert_eq!(ids.len(), n);
        prop_assert!(ids.iter().all(|i| i.len() == 36 && i[..33] == id[..33]));
        let faithful = events.iter().enumerate().all(|(i, e)| e["unit_id"] == unit.as_str() && e["experiment"] == format!("e{}", i) && e["attributes"]["k"] == "ü");
        prop_assert!(faithful);
    }
}
