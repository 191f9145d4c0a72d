//! `GET /api/v1/experiments/{id}/bandit` against real Postgres.

mod common;

use axum::http::{Method, StatusCode};
use common::{App, INGEST, READER};
use litmus_control_plane::MIGRATOR;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn five_models(app: &App, metrics: Value) {
    let variants: Vec<Value> = ["m1", "m2", "m3", "m4", "m5"]
        .iter()
        .map(|k| json!({"key": k, "weight": 0.2, "config_json": {"model": k}}))
        .collect();
    app.create(json!({"key": "five_models", "type": "bandit", "targeting": {}, "variants": variants, "metrics": metrics})).await;
    let r = app.post("/api/v1/experiments/five_models/launch", json!({"ramp_pct": 100})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// `exposed` units per arm; of those, the first `converted[i]` convert (and earn `value`).
async fn traffic(app: &App, exposed: usize, converted: [usize; 5], value: [f64; 5]) {
    let mut events = Vec::new();
    for (i, arm) in ["m1", "m2", "m3", "m4", "m5"].iter().enumerate() {
        for u in 0..exposed {
            let unit = format!("{arm}-u{u}");
            events.push(json!({"kind": "exposure", "experiment": "five_models", "unit_id": unit, "variant_key": arm, "ts": "2026-01-01T00:00:00Z"}));
            if u < converted[i] {
                events.push(json!({"kind": "conversion", "experiment": "five_models", "unit_id": unit, "variant_key": arm, "metric": "click", "ts": "2026-01-01T00:01:00Z"}));
                let v = value[i] + (u % 7) as f64; // some spread, so every arm has a variance
                events.push(json!({"kind": "metric", "experiment": "five_models", "unit_id": unit, "variant_key": arm, "metric": "latency_ms", "value": v, "ts": "2026-01-01T00:01:00Z"}));
            }
        }
    }
    for chunk in events.chunks(5000) {
        let r = app.post("/api/v1/events/batch", json!({"events": chunk})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
}

fn arms(v: &Value) -> Vec<(String, f64, f64)> {
    v["variants"].as_array().expect("variants").iter()
        .map(|a| (a["key"].as_str().unwrap_or("").to_owned(), a["win_probability"].as_f64().unwrap_or(-1.0), a["weight"].as_f64().unwrap_or(-1.0)))
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn before_any_reward_every_arm_is_equally_likely(db: PgPool) {
    let app = App::new(db);
    five_models(&app, json!([])).await;
    traffic(&app, 20, [0; 5], [0.0; 5]).await;
    let v = app.get("/api/v1/experiments/five_models/bandit").await.json();
    assert_eq!(v["metric"], Value::Null);
    assert_eq!((v["top_variant"].clone(), v["converged"].clone()), (Value::Null, json!(false)));
    assert!(v["note"].as_str().is_some_and(|n| n.contains("not enough data")), "{v}");
    for (key, p, w) in arms(&v) {
        assert!((p - 0.2).abs() < 1e-12 && (w - 0.2).abs() < 1e-12, "{key}: {p} {w}");
    }
    assert!(v["variants"].as_array().into_iter().flatten().all(|a| a["exposures"] == 20 && a["serving_weight"] == 0.2), "{v}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn conversions_pick_the_best_arm_as_the_results_do(db: PgPool) {
    let app = App::new(db);
    five_models(&app, json!([])).await;
    traffic(&app, 400, [20, 24, 90, 22, 21], [100.0; 5]).await;
    let v = app.get("/api/v1/experiments/five_models/bandit").await.json();
    assert_eq!(v["metric"], json!({"name": "click", "kind": "proportion", "direction": "increase"}));
    assert_eq!(v["top_variant"], "m3");
    assert_eq!(v["converged"], true);
    let arms = arms(&v);
    assert!((arms.iter().map(|a| a.1).sum::<f64>() - 1.0).abs() < 1e-6, "P(best) sums to 1: {arms:?}");
    assert!((arms.iter().map(|a| a.2).sum::<f64>() - 1.0).abs() < 1e-9, "weights sum to 1: {arms:?}");
    assert!(arms.iter().all(|a| a.2 >= 0.01 - 1e-12), "no arm below the exploration floor: {arms:?}");
    assert_eq!(v["variants"][2]["mean"], json!(90.0 / 400.0));
    // The same probabilities as the results' Bayesian readout.
    let results = app.get("/api/v1/experiments/five_models/results").await.json();
    let block = results["bayesian"].as_array().expect("bayesian").iter()
        .find(|b| b["metric"] == "click" && b["kind"] == "proportion").expect("click").clone();
    for (key, p, _) in &arms {
        let q = block["prob_best"][key.as_str()].as_f64().expect("prob_best");
        assert!((p - q).abs() < 1e-12, "{key}: bandit {p} vs results {q}");
    }
    // A close race is not converged.
    let mut near = Vec::new();
    for (arm, conv) in [("m1", 30), ("m2", 31)] {
        for u in 0..1000 {
            near.push(json!({"kind": "exposure", "experiment": "five_models", "unit_id": format!("near-{arm}-{u}"), "variant_key": arm}));
            if u < conv { near.push(json!({"kind": "conversion", "experiment": "five_models", "unit_id": format!("near-{arm}-{u}"), "variant_key": arm, "metric": "signup"})); }
        }
    }
    app.post("/api/v1/events/batch", json!({"events": near})).await;
    app.patch("/api/v1/experiments/five_models", json!({"metrics": [{"name": "signup", "kind": "proportion", "role": "primary"}]})).await;
    let v = app.get("/api/v1/experiments/five_models/bandit").await.json();
    assert_eq!(v["metric"]["name"], "signup");
    assert_eq!(v["converged"], false, "{v}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_declared_primary_metric_with_direction_decrease(db: PgPool) {
    let app = App::new(db);
    // Lower latency is better: m4 (mean ≈ 53) should lead, m1 (≈ 203) trail.
    five_models(&app, json!([{"name": "latency_ms", "kind": "mean", "role": "primary", "direction": "decrease"}])).await;
    traffic(&app, 100, [100; 5], [200.0, 120.0, 110.0, 50.0, 150.0]).await;
    let v = app.get("/api/v1/experiments/five_models/bandit").await.json();
    assert_eq!(v["metric"], json!({"name": "latency_ms", "kind": "mean", "direction": "decrease"}));
    assert_eq!(v["top_variant"], "m4", "{v}");
    assert_eq!(v["converged"], true);
    let arms = arms(&v);
    assert!(arms[0].1 < 1e-9 && (arms[0].2 - 0.01).abs() < 1e-12, "the slowest arm keeps only the floor: {arms:?}");
    assert!(v["variants"][3]["mean"].as_f64().is_some_and(|m| (m - 53.0).abs() < 0.5), "{v}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn only_for_bandits_and_readers(db: PgPool) {
    let app = App::new(db);
    app.create(json!({})).await;
    let (code, _) = app.get("/api/v1/experiments/model_ranking/bandit").await.error(409);
    assert_eq!(code, "conflict");
    assert_eq!(app.get("/api/v1/experiments/nope/bandit").await.error(404).0, "not_found");
    five_models(&app, json!([])).await;
    let r = app.raw(Method::GET, "/api/v1/experiments/five_models/bandit", Some(READER), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.raw(Method::GET, "/api/v1/experiments/five_models/bandit", Some(INGEST), None).await.error(403);
}
