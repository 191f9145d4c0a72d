//! Experiments that watch themselves, against real Postgres: stopping rules fire on data built to
//! trip them and stay quiet on data built not to; safe rollouts advance and roll back; alerts are
//! raised once, listed, acknowledged and pushed; webhooks are signed and retried; anomalies.
//! Evaluation runs `watch::scheduler::once`, one look of the job itself.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use common::{App, READER};
use litmus_control_plane::publish::Publisher;
use litmus_control_plane::watch::scheduler::{Watch, once};
use litmus_control_plane::{MIGRATOR, webhooks};
use serde_json::{Value, json};
use sqlx::PgPool;

fn watcher(db: &PgPool) -> Watch {
    Watch {
        db: db.clone(), publisher: Publisher::default(), live: tokio::sync::broadcast::channel(16).0, every: Duration::from_secs(30),
        anomaly_bucket: Duration::from_secs(3600), wake: Arc::default(), deliver: Arc::default(),
    }
}

const METRICS: &str = r#"[{"name": "revenue", "kind": "mean", "role": "primary"},
                          {"name": "errors", "kind": "proportion", "role": "guardrail", "direction": "decrease"}]"#;

async fn two_arms(app: &App, key: &str, extra: Value) {
    let mut body = json!({"key": key, "unit_type": "user_id", "targeting": {}, "metrics": serde_json::from_str::<Value>(METRICS).expect("json"),
                          "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    app.create(body).await;
    let launch = if extra.get("rollout").is_some() { json!({}) } else { json!({"ramp_pct": 100}) };
    let r = app.post(&format!("/api/v1/experiments/{key}/launch"), launch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// One arm's traffic: `units` exposed units (ids from `first`), revenue `revenue(u)`, and the
/// first `errors` of them with an error conversion.
struct Arm<'a> {
    variant: &'a str,
    first: usize,
    units: usize,
    revenue: fn(usize) -> f64,
    errors: usize,
}

async fn traffic(app: &App, key: &str, arms: &[Arm<'_>]) {
    let ts = Utc::now().to_rfc3339();
    let mut events = Vec::new();
    for a in arms {
        for u in a.first..a.first + a.units {
            let unit = format!("{key}-{}-{u}", a.variant);
            events.push(json!({"kind": "exposure", "experiment": key, "unit_id": unit, "variant_key": a.variant, "ts": ts}));
            events.push(json!({"kind": "metric", "experiment": key, "unit_id": unit, "variant_key": a.variant, "metric": "revenue", "value": (a.revenue)(u), "ts": ts}));
            if u - a.first < a.errors {
                events.push(json!({"kind": "conversion", "experiment": key, "unit_id": unit, "variant_key": a.variant, "metric": "errors", "ts": ts}));
            }
        }
    }
    for chunk in events.chunks(5000) {
        let r = app.post("/api/v1/events/batch", json!({"events": chunk})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
}

fn flat(u: usize) -> f64 {
    (u % 10) as f64
}

fn higher(u: usize) -> f64 {
    (u % 10) as f64 + 4.0
}

/// Both arms alike: `n` units each, the same revenue and error rate.
async fn healthy(app: &App, key: &str, first: usize, n: usize) {
    let errors = n / 10;
    traffic(app, key, &[Arm { variant: "control", first, units: n, revenue: flat, errors },
                        Arm { variant: "treatment", first, units: n, revenue: flat, errors }]).await;
}

async fn alerts(app: &App, query: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/alerts?{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json().as_array().expect("array").clone()
}

async fn audit(app: &App, key: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/experiments/{key}/audit")).await.json().as_array().expect("array").clone()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn rules_are_validated_stored_and_audited(db: PgPool) {
    let app = App::new(db);
    let bad = [
        (json!([{"kind": "max_sample"}]), "rules[0].units"),
        (json!([{"kind": "srm", "units": 5}]), "rules[0].units"),
        (json!([{"kind": "guardrail", "metric": "errors", "margin": -0.1}]), "rules[0].margin"),
        (json!([{"kind": "significance", "metric": "nope"}]), "rules[0].metric"),
    ];
    for (rules, field) in bad {
        let r = app.post("/api/v1/experiments", json!({"key": "x", "name": "x", "metrics": serde_json::from_str::<Value>(METRICS).expect("json"),
                                                       "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}], "rules": rules})).await;
        assert_eq!(r.error(422), ("validation_failed".into(), Some(field.into())), "{rules}");
    }
    let r = app.post("/api/v1/experiments", json!({"key": "x", "name": "x", "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
                                                   "rules": [{"kind": "srm", "action": "explode"}]})).await;
    assert_eq!(r.error(422).1.as_deref(), Some("rules[0].action"));
    // A rollout needs a guardrail to watch.
    let r = app.post("/api/v1/experiments", json!({"key": "x", "name": "x", "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
                                                   "rollout": {"steps": [{"ramp_pct": 10}]}})).await;
    assert_eq!(r.error(422).1.as_deref(), Some("rollout"));

    two_arms(&app, "ranker", json!({"rules": [{"kind": "max_sample", "units": 1000, "action": "pause"}]})).await;
    let r = app.patch("/api/v1/experiments/ranker", json!({"rules": [{"kind": "max_sample", "units": 2000, "action": "stop"}, {"kind": "srm"}], "actor": "ds"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["rules"], json!([{"kind": "max_sample", "units": 2000, "action": "stop"}, {"kind": "srm", "action": "notify"}]));
    let last = audit(&app, "ranker").await.last().cloned().expect("entry");
    assert_eq!((last["action"].clone(), last["details"]["changed"].clone(), last["actor"].clone()), (json!("update"), json!(["rules"]), json!("env:admin (ds)")));
    // A rollout's plan is fixed once launched.
    let r = app.patch("/api/v1/experiments/ranker", json!({"rollout": {"steps": [{"ramp_pct": 10}]}})).await;
    assert_eq!(r.error(409).0, "conflict");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn each_rule_stays_quiet_on_healthy_data_then_fires_once_with_its_numbers(db: PgPool) {
    let app = App::new(db.clone());
    let w = watcher(&db);
    two_arms(&app, "quiet", json!({"rules": [
        {"kind": "max_duration", "days": 1, "action": "notify"},
        {"kind": "max_sample", "units": 1000, "action": "pause"},
        {"kind": "significance", "action": "notify"},
        {"kind": "guardrail", "metric": "errors", "margin": 0.0, "action": "rollback"},
        {"kind": "srm", "action": "stop"}]})).await;
    healthy(&app, "quiet", 0, 300).await;
    once(&w).await.expect("look");
    assert_eq!(alerts(&app, "experiment=quiet").await, Vec::<Value>::new());
    let states = app.get("/api/v1/experiments/quiet/watch").await.json();
    let holds: Vec<bool> = states["rules"].as_array().expect("rules").iter().map(|r| r["holds"].as_bool().expect("holds")).collect();
    assert_eq!(holds, [false; 5], "{states}");
    assert_eq!(states["rules"][1]["progress"], "600 of 1000 units");

    // 1000 units: max_sample pauses it, once, with the numbers; the others still hold back.
    healthy(&app, "quiet", 300, 200).await;
    once(&w).await.expect("look");
    once(&w).await.expect("a second look raises nothing new");
    let fired = alerts(&app, "experiment=quiet").await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!((fired[0]["kind"].clone(), fired[0]["action"].clone()), (json!("rule"), json!("pause")));
    assert_eq!(fired[0]["details"]["numbers"], json!({"units": 1000, "max_units": 1000}));
    assert_eq!(app.get("/api/v1/experiments/quiet").await.json()["status"], "paused");
    let entry = audit(&app, "quiet").await.last().cloned().expect("entry");
    assert_eq!((entry["action"].clone(), entry["actor"].clone()), (json!("pause"), json!("rule")));
    assert!(entry["details"]["reason"].as_str().is_some_and(|r| r.contains("stopping rule 2")), "{entry}");
    assert_eq!(entry["details"]["alert_id"], fired[0]["id"]);

    // Three days in: max_duration fires (the watch looks at running experiments only).
    app.post("/api/v1/experiments/quiet/launch", json!({})).await;
    sqlx::query("UPDATE experiments SET started_at = now() - interval '3 days' WHERE key = 'quiet'").execute(&db).await.expect("backdate");
    once(&w).await.expect("look");
    let fired = alerts(&app, "experiment=quiet&kind=rule").await;
    assert_eq!(fired.len(), 2);
    assert_eq!(fired[0]["action"], "notify");
    assert!(fired[0]["details"]["numbers"]["running_days"].as_f64().is_some_and(|d| (d - 3.0).abs() < 0.01), "{}", fired[0]);
    assert_eq!(app.get("/api/v1/experiments/quiet").await.json()["status"], "running", "notify only tells");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn significance_guardrail_and_srm_rules_act(db: PgPool) {
    let app = App::new(db.clone());
    let w = watcher(&db);
    // Revenue clearly up: the always-valid test decides and the rule stops the experiment.
    two_arms(&app, "winner", json!({"rules": [{"kind": "significance", "action": "stop"}]})).await;
    traffic(&app, "winner", &[Arm { variant: "control", first: 0, units: 400, revenue: flat, errors: 40 },
                              Arm { variant: "treatment", first: 0, units: 400, revenue: higher, errors: 40 }]).await;
    // Errors up from 5 % to 30 %: the guardrail rule rolls back to 0 %.
    two_arms(&app, "harmful", json!({"rules": [{"kind": "guardrail", "metric": "errors", "margin": 0.1, "action": "rollback"}]})).await;
    traffic(&app, "harmful", &[Arm { variant: "control", first: 0, units: 400, revenue: flat, errors: 20 },
                               Arm { variant: "treatment", first: 0, units: 400, revenue: flat, errors: 120 }]).await;
    // 300 against 600 units at 50/50: a sample ratio mismatch pauses it.
    two_arms(&app, "skewed", json!({"rules": [{"kind": "srm", "action": "pause"}]})).await;
    traffic(&app, "skewed", &[Arm { variant: "control", first: 0, units: 300, revenue: flat, errors: 30 },
                              Arm { variant: "treatment", first: 0, units: 600, revenue: flat, errors: 60 }]).await;
    once(&w).await.expect("look");

    let exp = |k: &'static str| { let app = &app; async move { app.get(&format!("/api/v1/experiments/{k}")).await.json() } };
    assert_eq!(exp("winner").await["status"], "stopped");
    let harmful = exp("harmful").await;
    assert_eq!((harmful["status"].clone(), harmful["ramp_pct"].clone()), (json!("running"), json!(0.0)));
    assert_eq!(exp("skewed").await["status"], "paused");

    let kinds = |v: &[Value]| { let mut k: Vec<String> = v.iter().map(|a| a["kind"].as_str().unwrap_or("").to_owned()).collect(); k.sort(); k };
    // Insights ride along: the decided metric is ready to call, the breach and mismatch alert.
    assert_eq!(kinds(&alerts(&app, "experiment=winner").await), ["ready_to_call", "rule"]);
    assert_eq!(kinds(&alerts(&app, "experiment=harmful").await), ["guardrail", "rule"]);
    assert_eq!(kinds(&alerts(&app, "experiment=skewed").await), ["rule", "srm"]);
    let rule = alerts(&app, "experiment=harmful&kind=rule").await.remove(0);
    let breach = &rule["details"]["numbers"]["breaches"][0];
    assert_eq!((breach["metric"].clone(), breach["variant"].clone(), breach["margin"].clone()), (json!("errors"), json!("treatment"), json!(0.1)));
    assert!(breach["ci_low"].as_f64().is_some_and(|lo| lo > 0.1 * 0.05), "beyond the margin: {breach}");
    let rollback = audit(&app, "harmful").await.last().cloned().expect("entry");
    assert_eq!((rollback["action"].clone(), rollback["details"]["ramp_pct"].clone()), (json!("ramp"), json!({"from": 100.0, "to": 0.0})));
    let srm = alerts(&app, "experiment=skewed&kind=rule").await.remove(0);
    assert!(srm["details"]["numbers"]["p_value"].as_f64().is_some_and(|p| p < 0.001), "{srm}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_evaluators_act_once(db: PgPool) {
    let app = App::new(db.clone());
    two_arms(&app, "race", json!({"rules": [{"kind": "max_sample", "units": 100, "action": "pause"}]})).await;
    healthy(&app, "race", 0, 100).await;
    let (a, b) = (watcher(&db), watcher(&db));
    let (x, y) = tokio::join!(once(&a), once(&b));
    x.expect("look");
    y.expect("look");
    assert_eq!(alerts(&app, "experiment=race&kind=rule").await.len(), 1);
    let pauses = audit(&app, "race").await.iter().filter(|e| e["action"] == "pause").count();
    assert_eq!(pauses, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_safe_rollout_advances_on_healthy_data_and_rolls_back_on_a_breach(db: PgPool) {
    let app = App::new(db.clone());
    let w = watcher(&db);
    let rollout = json!({"steps": [{"ramp_pct": 5, "hold_seconds": 0}, {"ramp_pct": 25, "hold_seconds": 0}, {"ramp_pct": 100, "hold_seconds": 0}],
                         "min_units_per_step": 50});
    two_arms(&app, "safe", json!({"rollout": rollout})).await;
    let exp = app.get("/api/v1/experiments/safe").await.json();
    assert_eq!((exp["ramp_pct"].clone(), exp["rollout_state"]["step"].clone()), (json!(5.0), json!(0)), "launch starts at step 1: {exp}");
    // No traffic yet: a hold time proves nothing, so it waits for units.
    once(&w).await.expect("look");
    assert_eq!(app.get("/api/v1/experiments/safe").await.json()["ramp_pct"], 5.0);
    let view = app.get("/api/v1/experiments/safe/watch").await.json();
    assert_eq!(view["rollout"]["decision"]["decision"], "hold", "{view}");
    let mut first = 0;
    for expected in [25.0, 100.0] {
        healthy(&app, "safe", first, 100).await;
        first += 100;
        once(&w).await.expect("look");
        assert_eq!(app.get("/api/v1/experiments/safe").await.json()["ramp_pct"], expected);
    }
    healthy(&app, "safe", first, 100).await;
    once(&w).await.expect("look");
    let exp = app.get("/api/v1/experiments/safe").await.json();
    assert_eq!((exp["ramp_pct"].clone(), exp["rollout_state"]["outcome"].clone()), (json!(100.0), json!("complete")));
    let trail: Vec<(String, String, Value)> = audit(&app, "safe").await.iter()
        .map(|e| (e["action"].as_str().unwrap_or("").to_owned(), e["actor"].as_str().unwrap_or("").to_owned(), e["details"]["ramp_pct"].clone()))
        .collect();
    assert_eq!(trail[1..], [("launch".into(), "env:admin".into(), json!({"from": 0.0, "to": 5.0})),
                            ("ramp".into(), "rollout".into(), json!({"from": 5.0, "to": 25.0})),
                            ("ramp".into(), "rollout".into(), json!({"from": 25.0, "to": 100.0})),
                            ("ramp".into(), "rollout".into(), json!({"from": 100.0, "to": 100.0}))]);
    let steps = alerts(&app, "experiment=safe&kind=rollout").await;
    assert_eq!(steps.iter().map(|a| a["action"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["complete", "advance", "advance"]);

    // The same plan on a change that raises errors: rolled back at its first look with data.
    two_arms(&app, "unsafe", json!({"rollout": rollout})).await;
    traffic(&app, "unsafe", &[Arm { variant: "control", first: 0, units: 400, revenue: flat, errors: 20 },
                              Arm { variant: "treatment", first: 0, units: 400, revenue: flat, errors: 140 }]).await;
    once(&w).await.expect("look");
    let exp = app.get("/api/v1/experiments/unsafe").await.json();
    assert_eq!((exp["status"].clone(), exp["ramp_pct"].clone(), exp["rollout_state"]["outcome"].clone()), (json!("running"), json!(0.0), json!("rolled_back")));
    let last = audit(&app, "unsafe").await.last().cloned().expect("entry");
    assert_eq!(last["actor"], "rollout");
    assert!(last["details"]["reason"].as_str().is_some_and(|r| r.contains("rolled back") && r.contains("guardrail `errors`")), "{last}");
    // Nothing moves it again on its own.
    once(&w).await.expect("look");
    assert_eq!(audit(&app, "unsafe").await.len(), 3);

    // A ramp by hand takes over from the schedule.
    two_arms(&app, "manual", json!({"rollout": rollout})).await;
    app.post("/api/v1/experiments/manual/launch", json!({"ramp_pct": 50, "actor": "ops"})).await;
    let exp = app.get("/api/v1/experiments/manual").await.json();
    assert_eq!((exp["ramp_pct"].clone(), exp["rollout_state"]["outcome"].clone()), (json!(50.0), json!("overridden")));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_feed_filters_acknowledges_and_refuses_bad_input(db: PgPool) {
    let app = App::new(db.clone());
    two_arms(&app, "fed", json!({"rules": [{"kind": "max_sample", "units": 10}, {"kind": "srm"}]})).await;
    traffic(&app, "fed", &[Arm { variant: "control", first: 0, units: 100, revenue: flat, errors: 0 },
                           Arm { variant: "treatment", first: 0, units: 300, revenue: flat, errors: 0 }]).await;
    once(&watcher(&db)).await.expect("look");
    let all = alerts(&app, "").await;
    assert_eq!(all.len(), 3, "two rules and the SRM insight: {all:?}");
    assert!(all.windows(2).all(|p| p[0]["id"].as_i64() > p[1]["id"].as_i64()), "newest first");
    let id = all[0]["id"].as_i64().expect("id");
    let r = app.post(&format!("/api/v1/alerts/{id}/acknowledge"), json!({"actor": "ds.user"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let at = r.json()["acknowledged_at"].clone();
    let again = app.post(&format!("/api/v1/alerts/{id}/acknowledge"), json!({"actor": "someone else"})).await.json();
    assert_eq!((again["acknowledged_at"].clone(), again["acknowledged_by"].clone()), (at, json!("env:admin (ds.user)")));
    assert_eq!(alerts(&app, "acknowledged=false").await.len(), 2);
    assert_eq!(alerts(&app, "acknowledged=true").await.len(), 1);
    assert_eq!(alerts(&app, "kind=srm").await.len(), 1);
    let page = app.get("/api/v1/alerts?limit=2").await;
    let cursor = page.headers.get("x-next-cursor").and_then(|v| v.to_str().ok()).expect("cursor").to_owned();
    assert_eq!(alerts(&app, &format!("limit=2&before={cursor}")).await.len(), 1);
    assert_eq!(app.get("/api/v1/alerts?kind=weather").await.error(422).1.as_deref(), Some("kind"));
    assert_eq!(app.get("/api/v1/alerts?limit=0").await.error(422).1.as_deref(), Some("limit"));
    assert_eq!(app.get("/api/v1/alerts?experiment=nope").await.error(404).0, "not_found");
    assert_eq!(app.post("/api/v1/alerts/999999/acknowledge", json!({})).await.error(404).0, "not_found");
    // Readers read the feed; acknowledging is a change.
    let r = app.raw(axum::http::Method::POST, &format!("/api/v1/alerts/{id}/acknowledge"), Some(READER), Some("{}".into())).await;
    assert_eq!(r.error(403).0, "forbidden");
}

/// A receiver that fails `fail_first` requests with 500, then answers 204; it keeps each request.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>) {
    let seen: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route("/hook", axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
        let log = log.clone();
        async move {
            let mut l = log.lock().expect("lock");
            l.push((headers, body));
            if l.len() <= fail_first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT }
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

async fn wait_for_deliveries(app: &App, hook: &str, status: &str) -> Vec<Value> {
    for _ in 0..200 {
        let d = app.get(&format!("/api/v1/webhooks/{hook}/deliveries")).await.json();
        if d.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(|x| x["status"] == status)) {
            return d.as_array().cloned().unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries of {hook} never all {status}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn webhooks_are_signed_retried_with_backoff_and_logged(db: PgPool) {
    let app = App::new(db.clone());
    let (url, seen) = receiver(2).await;
    let hook = app.post("/api/v1/webhooks", json!({"url": url, "kinds": ["rule"]})).await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.text);
    let hook = hook.json();
    let secret = hook["secret"].as_str().expect("the secret, once").to_owned();
    assert!(app.get("/api/v1/webhooks").await.json()[0].get("secret").is_none(), "never shown again");
    let (dead_url, dead_seen) = receiver(usize::MAX).await;
    let dead = app.post("/api/v1/webhooks", json!({"url": dead_url})).await.json();
    for (body, field) in [(json!({"url": "ftp://x"}), "url"), (json!({"url": "http://x", "kinds": ["weather"]}), "kinds"), (json!({"url": "http://x", "secret": "short"}), "secret")] {
        assert_eq!(app.post("/api/v1/webhooks", body).await.error(422).1.as_deref(), Some(field));
    }

    two_arms(&app, "hooked", json!({"rules": [{"kind": "max_sample", "units": 10, "action": "notify"}]})).await;
    healthy(&app, "hooked", 0, 10).await;
    let w = watcher(&db);
    once(&w).await.expect("look");
    let deliverer = webhooks::Deliverer { db: db.clone(), wake: w.deliver.clone(), backoff: Duration::from_millis(100), attempts: 3, allow_private: true };
    let task = tokio::spawn(webhooks::run(deliverer));

    let log = wait_for_deliveries(&app, hook["id"].as_str().expect("id"), "delivered").await;
    assert_eq!((log.len(), log[0]["attempts"].clone(), log[0]["last_status"].clone()), (1, json!(3), json!(204)));
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 3, "two failures, then delivered");
    let ids: Vec<&str> = requests.iter().map(|(h, _)| h["x-litmus-delivery"].to_str().unwrap_or("")).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one delivery id across retries: {ids:?}");
    for (headers, body) in &requests {
        let sig = headers["x-litmus-signature"].to_str().expect("ascii");
        let t: i64 = sig.trim_start_matches("t=").split(',').next().and_then(|t| t.parse().ok()).expect("t");
        assert_eq!(sig, webhooks::signature(&secret, t, body.as_bytes()), "signed with the webhook's secret");
        assert!((Utc::now().timestamp() - t).abs() < 60);
        let v: Value = serde_json::from_str(body).expect("json");
        assert_eq!((v["type"].clone(), v["alert"]["kind"].clone(), v["alert"]["experiment_key"].clone()), (json!("alert"), json!("rule"), json!("hooked")));
        assert_eq!(headers["x-litmus-event"], "alert.rule");
    }
    // The receiver that always fails: given up after the last attempt, each failure logged.
    let log = wait_for_deliveries(&app, dead["id"].as_str().expect("id"), "failed").await;
    assert_eq!((log[0]["attempts"].clone(), log[0]["last_status"].clone(), log[0]["last_error"].clone()), (json!(3), json!(500), json!("HTTP 500 Internal Server Error")));
    assert_eq!(dead_seen.lock().expect("lock").len(), 3);
    task.abort();
    assert_eq!(app.delete(&format!("/api/v1/webhooks/{}", hook["id"].as_str().expect("id"))).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&format!("/api/v1/webhooks/{}", hook["id"].as_str().expect("id"))).await.error(404).0, "not_found");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn webhooks_to_private_addresses_are_refused_at_creation_and_at_delivery(db: PgPool) {
    // The default: no private targets. Only loopback is ever contacted here (and nothing is).
    let app = App::with_config(db.clone(), |c| c.webhook_allow_private = false);
    let (url, seen) = receiver(0).await;
    for target in [url.as_str(), "http://169.254.169.254/latest/meta-data/", "http://localhost:9/x", "http://[::1]:9/", "http://10.0.0.8/", "http://[fd00:ec2::254]/"] {
        let r = app.post("/api/v1/webhooks", json!({"url": target}));
        let r = r.await;
        assert_eq!(r.error(422).1.as_deref(), Some("url"), "{target}: {}", r.text);
    }
    // Targets stored before (or while an operator allowed them): refused at delivery, an IP
    // literal and a name (resolved, then refused: what DNS rebinding would try).
    let (id, named) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    for (hook, target) in [(id, url.clone()), (named, url.replace("127.0.0.1", "localhost"))] {
        sqlx::query("INSERT INTO webhooks (id, url, secret, kinds) VALUES ($1, $2, 'whsec_0123456789abcdef', '{}')")
            .bind(hook)
            .bind(&target)
            .execute(&db)
            .await
            .expect("insert");
    }
    two_arms(&app, "inside", json!({"rules": [{"kind": "max_sample", "units": 10, "action": "notify"}]})).await;
    healthy(&app, "inside", 0, 10).await;
    let w = watcher(&db);
    once(&w).await.expect("look");
    let deliverer = webhooks::Deliverer { db: db.clone(), wake: w.deliver.clone(), backoff: Duration::from_millis(100), attempts: 3, allow_private: false };
    let task = tokio::spawn(webhooks::run(deliverer));
    let log = wait_for_deliveries(&app, &id.to_string(), "failed").await;
    assert!(log[0]["last_error"].as_str().is_some_and(|e| e.contains("not a public address")), "{log:?}");
    let log = wait_for_deliveries(&app, &named.to_string(), "failed").await;
    task.abort();
    assert_eq!((log[0]["attempts"].clone(), log[0]["last_status"].clone()), (json!(3), Value::Null), "{log:?}");
    assert!(seen.lock().expect("lock").is_empty(), "nothing was sent");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_exposure_rate_drop_against_the_recent_baseline_is_an_anomaly(db: PgPool) {
    let app = App::new(db.clone());
    let w = watcher(&db);
    let hour = 3600;
    // Far enough from an hour's end that the buckets below are still the last complete ones
    // when the job looks.
    let now = Utc::now().timestamp();
    if hour - now % hour < 30 {
        tokio::time::sleep(Duration::from_secs((hour - now % hour + 1) as u64)).await;
    }
    let end = Utc::now().timestamp() / hour * hour;
    for (key, last) in [("steady", 95), ("dropped", 8)] {
        two_arms(&app, key, json!({})).await;
        sqlx::query("UPDATE experiments SET started_at = to_timestamp($1), updated_at = to_timestamp($1) WHERE key = $2")
            .bind((end - 14 * hour) as f64).bind(key).execute(&db).await.expect("backdate");
        let mut events = Vec::new();
        for b in 0..13 {
            let n = if b == 12 { last } else { 100 + (b % 3) * 4 };
            let start = end - (13 - b) * hour;
            for u in 0..n {
                let ts = chrono::DateTime::from_timestamp(start + u * 30, 0).expect("ts").to_rfc3339();
                events.push(json!({"kind": "exposure", "experiment": key, "unit_id": format!("{b}-{u}"), "variant_key": if u % 2 == 0 { "control" } else { "treatment" }, "ts": ts}));
            }
        }
        let r = app.post("/api/v1/events/batch", json!({"events": events})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    once(&w).await.expect("look");
    assert_eq!(alerts(&app, "experiment=steady").await, Vec::<Value>::new());
    let a = alerts(&app, "experiment=dropped").await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!((a[0]["kind"].clone(), a[0]["details"]["anomaly"]["direction"].clone(), a[0]["details"]["anomaly"]["observed"].clone()),
               (json!("anomaly"), json!("drop"), json!(8)));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn underpowered_when_the_planned_effect_needs_more_days_than_allowed(db: PgPool) {
    let app = App::new(db.clone());
    let metrics = json!([{"name": "errors", "kind": "proportion", "role": "primary", "mde": 0.05}]);
    for (key, days) in [("slow", 3), ("roomy", 3650)] {
        two_arms(&app, key, json!({"metrics": metrics, "rules": [{"kind": "max_duration", "days": days}]})).await;
        sqlx::query("UPDATE experiments SET started_at = now() - interval '1 day' WHERE key = $1").bind(key).execute(&db).await.expect("backdate");
        // 10 % errors, 400 units a day: a 5 % relative effect needs ~58k units per arm.
        healthy(&app, key, 0, 200).await;
    }
    once(&watcher(&db)).await.expect("look");
    let a = alerts(&app, "experiment=slow&kind=underpowered").await;
    assert_eq!(a.len(), 1, "{a:?}");
    let more = a[0]["details"]["estimate"]["more_days"].as_f64().expect("days");
    assert!((250.0..350.0).contains(&more), "{more}");
    assert_eq!(alerts(&app, "experiment=roomy&kind=underpowered").await, Vec::<Value>::new());
    let r = app.post("/api/v1/experiments", json!({"name": "x", "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
                                                   "metrics": [{"name": "m", "mde": 0}]})).await;
    assert_eq!(r.error(422).1.as_deref(), Some("metrics[0].mde"));
}
