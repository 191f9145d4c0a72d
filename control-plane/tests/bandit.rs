//! Bandits against real Postgres: the readout (`GET .../bandit`), policy settings on the
//! experiment, reweighting (`bandit::reweight`, what the scheduler runs) and its history.

mod common;

use axum::http::{Method, StatusCode};
use common::{App, INGEST, READER};
use litmus_control_plane::{MIGRATOR, bandit};
use serde_json::{Value, json};
use sqlx::PgPool;

async fn five_models(app: &App, metrics: Value) {
    five_models_with(app, metrics, None).await;
}

async fn five_models_with(app: &App, metrics: Value, bandit: Option<Value>) {
    let variants: Vec<Value> = ["m1", "m2", "m3", "m4", "m5"]
        .iter()
        .map(|k| json!({"key": k, "weight": 0.2, "config_json": {"model": k}}))
        .collect();
    let mut body = json!({"key": "five_models", "type": "bandit", "targeting": {}, "variants": variants, "metrics": metrics});
    if let Some(b) = bandit {
        body["bandit"] = b;
    }
    app.create(body).await;
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

/// (key, P(best), the weight the policy proposes) per arm.
fn arms(v: &Value) -> Vec<(String, f64, f64)> {
    v["variants"].as_array().expect("variants").iter()
        .map(|a| (a["key"].as_str().unwrap_or("").to_owned(), a["win_probability"].as_f64().unwrap_or(-1.0), a["proposed_weight"].as_f64().unwrap_or(-1.0)))
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
    assert!(v["variants"].as_array().into_iter().flatten().all(|a| a["exposures"] == 20 && a["weight"] == 0.2 && a["serving_weight"] == 0.2), "{v}");
    // 20 units per arm is under the default minimum of 100: nothing would move yet.
    assert_eq!(v["stage"], "min_units");
    assert_eq!(v["policy"], json!({"policy": "thompson", "floor": 0.01, "min_units_per_arm": 100, "exploration_seconds": 0, "reweight_every_seconds": 60, "epsilon": 0.1}));
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
    // Thompson sampling proposes P(best), floored; the edge still serves the launch weights.
    let expected = litmus_control_plane::bandit::policy::floored(&arms.iter().map(|a| a.1).collect::<Vec<_>>(), 0.01);
    assert!(arms.iter().zip(&expected).all(|(a, e)| (a.2 - e).abs() < 1e-12), "{arms:?} vs {expected:?}");
    assert!(v["variants"].as_array().into_iter().flatten().all(|a| a["weight"] == 0.2), "{v}");
    assert_eq!((v["stage"].as_str(), v["periods"].as_u64(), v["weights_version"].as_i64()), (Some("adapting"), Some(1), Some(0)));
    // Regret: 400 units per arm, each short of m3's rate.
    let rates = [20.0, 24.0, 90.0, 22.0, 21.0].map(|x: f64| x / 400.0);
    let regret: f64 = rates.iter().map(|r| 400.0 * (90.0 / 400.0 - r)).sum();
    assert_eq!(v["regret"]["best_variant"], "m3");
    assert!((v["regret"]["expected"].as_f64().unwrap_or(0.0) - regret).abs() < 1e-9, "{v}");
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

async fn now_traffic(app: &App, tag: &str, per_arm: [(usize, usize); 5]) {
    traffic_served(app, tag, per_arm, None).await;
}

/// [`now_traffic`], the exposures saying which config version served them.
async fn traffic_served(app: &App, tag: &str, per_arm: [(usize, usize); 5], version: Option<i64>) {
    let mut events = Vec::new();
    for (i, arm) in ["m1", "m2", "m3", "m4", "m5"].iter().enumerate() {
        let (exposed, converted) = per_arm[i];
        for u in 0..exposed {
            let unit = format!("{tag}-{arm}-{u}");
            let mut exposure = json!({"kind": "exposure", "experiment": "five_models", "unit_id": unit, "variant_key": arm});
            if let Some(v) = version {
                exposure["version"] = json!(v);
            }
            events.push(exposure);
            if u < converted {
                events.push(json!({"kind": "conversion", "experiment": "five_models", "unit_id": unit, "variant_key": arm, "metric": "click"}));
            }
        }
    }
    for chunk in events.chunks(5000) {
        let r = app.post("/api/v1/events/batch", json!({"events": chunk})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
}

async fn experiment_id(app: &App) -> uuid::Uuid {
    let v = app.get("/api/v1/experiments/five_models").await.json();
    v["id"].as_str().and_then(|s| s.parse().ok()).expect("an id")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn reweighting_serves_the_policy_and_keeps_a_history(db: PgPool) {
    let app = App::new(db.clone());
    five_models_with(&app, json!([]), Some(json!({"reweight_every_seconds": 1}))).await;
    let id = experiment_id(&app).await;
    // Too few units per arm: nothing moves, nothing is written.
    now_traffic(&app, "a", [(50, 5); 5]).await;
    assert!(bandit::reweight(&db, id).await.expect("reweight").is_none());
    assert_eq!(app.get("/api/v1/experiments/five_models/bandit/history").await.json(), json!([]));

    now_traffic(&app, "b", [(150, 10), (150, 12), (150, 60), (150, 11), (150, 9)]).await;
    let before = app.get("/api/v1/experiments/five_models").await.json();
    let proposed = arms(&app.get("/api/v1/experiments/five_models/bandit").await.json());
    let v1 = bandit::reweight(&db, id).await.expect("reweight").expect("weights moved");
    assert_eq!(v1.seq, 1);

    // The experiment serves the proposal, as a new version (what the publisher sends the edge).
    let after = app.get("/api/v1/experiments/five_models").await.json();
    assert_eq!(after["version"].as_i64(), before["version"].as_i64().map(|v| v + 1));
    let served: Vec<f64> = after["variants"].as_array().expect("variants").iter().map(|v| v["weight"].as_f64().unwrap_or(-1.0)).collect();
    assert!(served.iter().zip(&proposed).all(|(s, p)| (s - p.2).abs() < 1e-12), "{served:?} vs {proposed:?}");
    assert!(served[2] > 0.9, "m3 converts 40 % against ≤ 8 %: {served:?}");
    assert!((served.iter().sum::<f64>() - 1.0).abs() < 1e-9);

    let history = app.get("/api/v1/experiments/five_models/bandit/history").await.json();
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!((history[0]["seq"].as_i64(), history[0]["policy"].as_str(), history[0]["stage"].as_str()), (Some(1), Some("thompson"), Some("adapting")));
    assert_eq!(history[0]["experiment_version"], after["version"]);
    assert!((history[0]["weights"]["m3"].as_f64().unwrap_or(0.0) - served[2]).abs() < 1e-12, "{history}");
    assert_eq!(history[0]["arms"][2]["units"], 200);

    let audit = app.get("/api/v1/experiments/five_models/audit").await.json();
    let entry = audit.as_array().expect("audit").iter().find(|e| e["action"] == "reweight").expect("a reweight entry").clone();
    assert_eq!((entry["actor"].as_str(), entry["details"]["weights_version"].as_i64()), (Some("bandit"), Some(1)), "{entry}");
    assert_eq!(entry["details"]["previous"]["m3"], 0.2);

    // Unchanged evidence: the same weights, nothing new.
    assert!(bandit::reweight(&db, id).await.expect("reweight").is_none());
    // The readout now weighs two periods (units exposed after the reweight form the second).
    // As served: 300 units at the new weights.
    let c: Vec<usize> = served.iter().map(|w| (300.0 * w).round() as usize).collect();
    let c_units: usize = c.iter().sum();
    now_traffic(&app, "c", [(c[0], 1), (c[1], 1), (c[2], c[2] * 2 / 5), (c[3], 1), (c[4], 1)]).await;
    let v = app.get("/api/v1/experiments/five_models/bandit").await.json();
    assert_eq!((v["periods"].as_u64(), v["weights_version"].as_i64()), (Some(2), Some(1)), "{v}");
    assert_eq!(v["variants"][2]["weight"].as_f64(), Some(served[2]));
    assert_eq!(v["weight_history"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["weight_history"][0]["weights"]["m3"].as_f64(), Some(served[2]));
    // The results carry the period-weighted readout and say the pooled lifts are not.
    let results = app.get("/api/v1/experiments/five_models/results").await.json();
    assert_eq!(results["bandit"]["periods"], 2);
    assert!(results["note"].as_str().is_some_and(|n| n.contains("2 periods")), "{}", results["note"]);
    // The results' sample-ratio check expects each period's units at that period's weights.
    let srm = &results["srm"];
    let n = 1000.0 + c_units as f64;
    let expected: Vec<f64> = (0..5).map(|a| (1000.0 * 0.2 + c_units as f64 * served[a]) / n).collect();
    let got: Vec<f64> = srm["expected"].as_array().expect("expected").iter().map(|x| x.as_f64().unwrap_or(-1.0)).collect();
    assert!(got.iter().zip(&expected).all(|(g, e)| (g - e).abs() < 1e-12), "{got:?} vs {expected:?}");
    assert_eq!(srm["flagged"], false, "{srm}");
    // Then 20 units each for the four arms served 1 %: a mismatch a chi-square against the
    // averaged shares (which assumes more spread than moving weights leave) lets through, and
    // the check against each period's weights does not.
    now_traffic(&app, "c2", [(20, 1), (20, 1), (200, 80), (20, 1), (20, 1)]).await;
    let results = app.get("/api/v1/experiments/five_models/results").await.json();
    let srm = &results["srm"];
    assert_eq!(srm["flagged"], true, "{srm}");
    let observed: Vec<u64> = srm["observed"].as_array().expect("observed").iter().map(|x| x.as_u64().unwrap_or(0)).collect();
    let shares: Vec<f64> = srm["expected"].as_array().expect("expected").iter().map(|x| x.as_f64().unwrap_or(-1.0)).collect();
    let pooled = litmus_control_plane::stats::srm::srm(&shares, &observed).expect("data");
    assert!(!pooled.flagged && srm["p_value"].as_f64().unwrap_or(1.0) < pooled.p_value, "{srm} vs {pooled:?}");
    let history = app.get("/api/v1/experiments/five_models/bandit/history").await.json();
    assert_eq!(history[0]["previous"], json!({"m1": 0.2, "m2": 0.2, "m3": 0.2, "m4": 0.2, "m5": 0.2}));

    // A paused bandit is left alone.
    app.post("/api/v1/experiments/five_models/pause", json!({})).await;
    now_traffic(&app, "d", [(500, 400), (10, 0), (10, 0), (10, 0), (10, 0)]).await;
    assert!(bandit::reweight(&db, id).await.expect("reweight").is_none());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_unit_belongs_to_the_weights_it_was_served_not_to_the_clock(db: PgPool) {
    // The edge switches to new weights some time after the reweight commits: units exposed in
    // between were served the old weights. Their exposures say so (`version`), and the
    // sample-ratio check and the periods follow the version, not the exposure's time.
    let app = App::new(db.clone());
    five_models_with(&app, json!([]), Some(json!({"reweight_every_seconds": 1}))).await;
    let id = experiment_id(&app).await;
    let launched = app.get("/api/v1/experiments/five_models").await.json()["version"].as_i64().expect("a version");
    traffic_served(&app, "a", [(150, 10), (150, 12), (150, 60), (150, 11), (150, 9)], Some(launched)).await;
    let v1 = bandit::reweight(&db, id).await.expect("reweight").expect("weights moved");
    assert_eq!(v1.seq, 1);
    // After the commit, still at the launch's equal weights (the old version).
    traffic_served(&app, "late", [(60, 4), (60, 5), (60, 24), (60, 4), (60, 4)], Some(launched)).await;
    let results = app.get("/api/v1/experiments/five_models/results").await.json();
    assert_eq!(results["srm"]["flagged"], false, "{}", results["srm"]);
    assert_eq!(results["bandit"]["periods"], 1, "no unit was served the new weights yet");
    // The same units without a version fall to the clock: the new weights' period, where four
    // arms have 1 % each, and the check flags them.
    let before: Vec<i64> = results["variants"].as_array().expect("variants").iter().map(|v| v["exposures"].as_i64().unwrap_or(0)).collect();
    traffic_served(&app, "clock", [(60, 4), (60, 5), (60, 24), (60, 4), (60, 4)], None).await;
    let results = app.get("/api/v1/experiments/five_models/results").await.json();
    assert_eq!(results["srm"]["flagged"], true, "{}", results["srm"]);
    assert_eq!(results["bandit"]["periods"], 2);
    let after: Vec<i64> = results["variants"].as_array().expect("variants").iter().map(|v| v["exposures"].as_i64().unwrap_or(0)).collect();
    assert!(after.iter().zip(&before).all(|(a, b)| a - b == 60), "{before:?} -> {after:?}");
    // The version travels with the exposure as stored.
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM events WHERE experiment_id = $1 AND kind = 1 AND version = $2")
        .bind(id)
        .bind(launched)
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(stored, 5 * 150 + 5 * 60);
    // A signed exposure's version is the one its signature names (what the edge verified), not
    // a `version` written beside it.
    let r = app.post("/api/v1/events/batch", json!({"events": [{"kind": "exposure", "experiment": "five_models", "unit_id": "signed-1",
        "variant_key": "m1", "version": 999, "signature": format!("{launched}.0.00000000000000ff")}]})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let (version,): (Option<i64>,) = sqlx::query_as("SELECT version FROM events WHERE experiment_id = $1 AND unit_id = 'signed-1'")
        .bind(id)
        .fetch_one(&db)
        .await
        .expect("the event");
    assert_eq!(version, Some(launched));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn policies_are_settings_of_the_experiment(db: PgPool) {
    let app = App::new(db);
    let variants = json!([{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}]);
    // Only bandits take them, and each field is checked.
    let r = app.post("/api/v1/experiments", json!({"name": "ab with bandit", "variants": variants, "bandit": {"policy": "ucb1"}})).await;
    assert_eq!(r.error(422).1.as_deref(), Some("bandit"));
    let bad = [
        (json!({"floor": 0.6}), "bandit.floor"),
        (json!({"epsilon": -0.1}), "bandit.epsilon"),
        (json!({"reweight_every_seconds": 0}), "bandit.reweight_every_seconds"),
    ];
    for (settings, field) in bad {
        let r = app.post("/api/v1/experiments", json!({"name": "b", "type": "bandit", "variants": variants, "bandit": settings})).await;
        assert_eq!(r.error(422).1.as_deref(), Some(field), "{settings}");
    }
    let r = app.post("/api/v1/experiments", json!({"name": "b", "type": "bandit", "variants": variants, "bandit": {"policy": "softmax"}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    let created = app.create(json!({"key": "eg", "type": "bandit", "variants": variants, "bandit": {"policy": "epsilon_greedy", "epsilon": 0.2}})).await;
    assert_eq!(created["bandit"]["policy"], "epsilon_greedy");
    assert_eq!(created["bandit"]["min_units_per_arm"], 100, "defaults fill in: {created}");
    assert_eq!(created["bucket_version"], 0);
    // A/B experiments carry none.
    assert_eq!(app.create(json!({"key": "plain"})).await["bandit"], Value::Null);

    // The policy can change while running, audited.
    app.post("/api/v1/experiments/eg/launch", json!({"ramp_pct": 100})).await;
    let r = app.patch("/api/v1/experiments/eg", json!({"bandit": {"policy": "ucb1", "reweight_every_seconds": 5}, "actor": "ds@example.com"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["bandit"]["policy"], "ucb1");
    let audit = app.get("/api/v1/experiments/eg/audit").await.json();
    assert!(audit.as_array().into_iter().flatten().any(|e| e["action"] == "update" && e["details"]["changed"] == json!(["bandit"])), "{audit}");
    // A bucket version only goes up.
    assert_eq!(app.patch("/api/v1/experiments/eg", json!({"bucket_version": 2})).await.json()["bucket_version"], 2);
    assert_eq!(app.patch("/api/v1/experiments/eg", json!({"bucket_version": 1})).await.error(422).1.as_deref(), Some("bucket_version"));
    assert_eq!(app.patch("/api/v1/experiments/plain", json!({"bandit": {}})).await.error(422).1.as_deref(), Some("bandit"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn epsilon_greedy_and_ucb1_steer_too(db: PgPool) {
    let app = App::new(db.clone());
    five_models_with(&app, json!([]), Some(json!({"policy": "epsilon_greedy", "epsilon": 0.1}))).await;
    let id = experiment_id(&app).await;
    now_traffic(&app, "a", [(200, 20), (200, 30), (200, 25), (200, 60), (200, 22)]).await;
    bandit::reweight(&db, id).await.expect("reweight").expect("weights moved");
    let w: Vec<f64> = app.get("/api/v1/experiments/five_models").await.json()["variants"].as_array().expect("variants").iter().map(|v| v["weight"].as_f64().unwrap_or(-1.0)).collect();
    assert!((w[3] - 0.92).abs() < 1e-12 && w.iter().enumerate().all(|(i, x)| i == 3 || (x - 0.02).abs() < 1e-12), "{w:?}");

    app.patch("/api/v1/experiments/five_models", json!({"bandit": {"policy": "ucb1"}})).await;
    // UCB1 picks the highest upper bound: m4 (rate 0.30) whatever its extra units.
    bandit::reweight(&db, id).await.expect("reweight");
    let v = app.get("/api/v1/experiments/five_models/bandit").await.json();
    assert_eq!(v["policy"]["policy"], "ucb1");
    assert!((v["variants"][3]["proposed_weight"].as_f64().unwrap_or(0.0) - 0.96).abs() < 1e-12, "{v}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn assignments_keep_a_units_first_variant(db: PgPool) {
    let app = App::new(db);
    let variants = json!([{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}]);
    app.create(json!({"key": "sticky_b", "type": "bandit", "unit_type": "user_id", "targeting": {}, "variants": variants})).await;
    app.post("/api/v1/experiments/sticky_b/launch", json!({"ramp_pct": 100})).await;
    let first = app.post("/api/v1/assign", json!({"experiment": "sticky_b", "unit_id": "u1"})).await.json();
    let got = first["variant_key"].as_str().expect("a variant").to_owned();
    assert_eq!(first["sticky"]["assignments"], json!({"sticky_b__0": got}), "{first}");
    assert_eq!(first["sticky"]["unit_id"], "u1");
    let keys = litmus_shared::signing::Keys::parse(litmus_control_plane::config::TEST_SIGNING_KEY).expect("the test key");
    let signed = |doc: serde_json::Value| {
        let mut d = litmus_shared::StickyDoc::from_json(&doc).expect("a document");
        d.sign(&keys);
        serde_json::from_str::<serde_json::Value>(&d.to_json()).expect("json")
    };
    assert_eq!(first["sticky"], signed(json!({"unit_id": "u1", "assignments": {"sticky_b__0": got}})), "signed by the issuer");
    // A remembered variant the issuer signed wins over the hash (here: the other one), reason `sticky`.
    let other = if got == "a" { "b" } else { "a" };
    let doc = signed(json!({"unit_id": "u1", "assignments": {"sticky_b__0": other}}));
    let again = app.post("/api/v1/assign", json!({"experiment": "sticky_b", "unit_id": "u1", "sticky": doc})).await.json();
    assert_eq!((again["variant_key"].as_str(), again["reason"].as_str(), again["in_experiment"].as_bool()), (Some(other), Some("sticky"), Some(true)));
    // The same document unsigned, altered, or signed with another key: ignored, the hash answers.
    let mut altered = doc.clone();
    altered["assignments"]["sticky_b__0"] = json!(got);
    altered["unit_id"] = json!("u1");
    let mut foreign = litmus_shared::StickyDoc::from_json(&doc).expect("a document");
    foreign.sign(&litmus_shared::signing::Keys::parse("00112233445566778899aabbccddeeff").expect("a key"));
    let foreign: serde_json::Value = serde_json::from_str(&foreign.to_json()).expect("json");
    for forged in [json!({"unit_id": "u1", "assignments": {"sticky_b__0": other}}), altered, foreign] {
        let a = app.post("/api/v1/assign", json!({"experiment": "sticky_b", "unit_id": "u1", "sticky": forged})).await.json();
        assert_eq!((a["variant_key"].as_str(), a["reason"].as_str()), (Some(got.as_str()), Some("assigned")), "{forged}");
    }
    // Another unit's document does not apply; a malformed one is refused.
    let third = app.post("/api/v1/assign", json!({"experiment": "sticky_b", "unit_id": "u2", "sticky": doc})).await.json();
    assert_eq!(third["sticky"]["unit_id"], "u2");
    let bad = app.post("/api/v1/assign", json!({"experiment": "sticky_b", "unit_id": "u1", "sticky": {"assignments": 3}})).await;
    assert_eq!(bad.error(422).1.as_deref(), Some("sticky"));
    // A/B experiments answer as before: no document.
    app.create(json!({"key": "plain_ab", "unit_type": "user_id", "targeting": {}})).await;
    app.post("/api/v1/experiments/plain_ab/launch", json!({"ramp_pct": 100})).await;
    assert!(app.post("/api/v1/assign", json!({"experiment": "plain_ab", "unit_id": "u1"})).await.json().get("sticky").is_none());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_readout_is_one_moment_even_when_a_reweight_commits_in_the_middle(db: PgPool) {
    // The readout reads the experiment's row (the weights served) and then the weight history;
    // a reweight committing between the two used to give the new weights_version beside the old
    // weights (seen once in the console's browser test: weights_version 1, weight 0.34).
    let app = App::new(db.clone());
    five_models(&app, json!([])).await;
    let id = experiment_id(&app).await;
    now_traffic(&app, "a", [(200, 20), (200, 30), (200, 25), (200, 60), (200, 22)]).await;
    let before = litmus_control_plane::experiments::find(&db, &id.to_string()).await.expect("the row");
    bandit::reweight(&db, id).await.expect("reweight").expect("weights moved");
    let r = bandit::readout(&db, &before).await.expect("readout");
    let served: Vec<f64> = r.variants.iter().map(|a| a.weight).collect();
    let launch: Vec<f64> = before.variants.0.iter().map(|v| v.weight).collect();
    assert_eq!((r.weights_version, served), (0, launch), "the history as of the row that was read");
}
