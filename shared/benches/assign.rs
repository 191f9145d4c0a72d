//! `cargo bench -p litmus-shared`: nanoseconds per `assign` for 1 running experiment and for a
//! request that evaluates 50 (the edge's "all running experiments" case), with targeting; then
//! nanoseconds per `Targeting::matches` for typical and nested conditions in both dialects.

use std::hint::black_box;
use std::time::{Duration, Instant};

use litmus_shared::{Attributes, Experiment, Targeting, assign};
use serde_json::json;

fn experiment(i: usize) -> Experiment {
    let targeting = match i % 3 {
        0 => json!({}),
        1 => json!({"country":{"in":["US","CA","GB"]}}),
        _ => json!({"and":[{"plan":{"ne":"free"}},{"app_version":{"semver":">=2.0.0"}}]}),
    };
    serde_json::from_value(json!({
        "key": format!("exp_{i}"), "status": "running", "version": 3, "ramp_pct": 50,
        "targeting": targeting,
        "variants": [
            {"key":"control","weight":0.34,"config_json":{"color":"blue"}},
            {"key":"b","weight":0.33,"config_json":{"color":"green"}},
            {"key":"c","weight":0.33,"config_json":{"color":"red"}}
        ]
    }))
    .expect("valid bench experiment")
}

/// Runs `f` for at least `budget`, returns ns per call.
fn measure(budget: Duration, mut f: impl FnMut(usize)) -> f64 {
    let mut calls = 0usize;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..1000 {
            f(calls);
            calls += 1;
        }
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn main() {
    let experiments: Vec<Experiment> = (0..50).map(experiment).collect();
    let units: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    let attrs: Attributes = json!({"country":"US","plan":"pro","app_version":"2.3.1"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let budget = Duration::from_secs(2);

    let one = measure(budget, |i| {
        black_box(assign(&experiments[1], &units[i % units.len()], &attrs));
    });
    let fifty = measure(budget, |i| {
        let unit = &units[i % units.len()];
        for e in &experiments {
            black_box(assign(e, unit, &attrs));
        }
    });
    println!("assign, 1 experiment:   {one:>8.1} ns per assign");
    println!("assign, 50 experiments: {fifty:>8.1} ns per request ({:.1} ns per assign)", fifty / 50.0);

    let conditions = [
        ("ours, typical", json!({"country":{"in":["US","CA","GB"]}})),
        ("ours, nested", json!({"or":[{"and":[{"plan":{"ne":"free"}},{"app_version":{"semver":">=2.0.0"}}]},
                                       {"not":{"user.tier":{"in":[1,2]}}},{"email":{"regex":"@example\\.com$"}}]})),
        ("GrowthBook, typical", json!({"country":{"$in":["US","CA","GB"]}})),
        ("GrowthBook, nested", json!({"$and":[{"$or":[{"plan":{"$ne":"free"}},{"tags":{"$elemMatch":{"$eq":"beta"}}}]},
                                              {"app_version":{"$vgte":"2.0.0"}},{"user.tier":{"$nin":[1,2]}},
                                              {"email":{"$regexi":"@EXAMPLE\\.com$"}}]})),
    ];
    let attrs: Attributes = json!({"country":"US","plan":"pro","app_version":"2.3.1","tags":["alpha","beta"],
                                   "user":{"tier":3},"email":"ana@example.com"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, condition) in conditions {
        let t = Targeting::parse(&condition).expect("valid bench condition");
        assert!(t.matches(&attrs), "{name} matches the bench's attributes");
        let ns = measure(budget, |_| {
            black_box(t.matches(black_box(&attrs)));
        });
        println!("Targeting::matches, {name:<20} {ns:>8.1} ns");
    }
}
