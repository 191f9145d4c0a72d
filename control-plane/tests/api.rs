//! The contract, endpoint by endpoint, including its error cases, against a real Postgres.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, App, INGEST, READER};
use litmus_control_plane::MIGRATOR;
use serde_json::{Value, json};
use sqlx::PgPool;

#[sqlx::test(migrator = "MIGRATOR")]
async fn health_ready_metrics_need_no_token(db: PgPool) {
    let app = App::new(db);
    let h = app.raw(Method::GET, "/health", None, None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json(), json!({"status": "ok"}));
    assert_eq!(app.raw(Method::GET, "/ready", None, None).await.status, StatusCode::OK);
    let m = app.raw(Method::GET, "/metrics", None, None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.headers["content-type"].to_str().expect("ascii").starts_with("text/plain"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_operator_can_put_metrics_behind_a_key(db: PgPool) {
    let app = App::with_config(db, |c| c.metrics_require_key = true);
    assert_eq!(app.raw(Method::GET, "/metrics", None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.raw(Method::GET, "/metrics", Some("wrong"), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.raw(Method::GET, "/metrics", Some(common::INGEST), None).await.status, StatusCode::FORBIDDEN);
    for token in [common::READER, common::ADMIN] {
        assert_eq!(app.raw(Method::GET, "/metrics", Some(token), None).await.status, StatusCode::OK);
    }
    // Health and readiness stay open: load balancers carry no key.
    assert_eq!(app.raw(Method::GET, "/ready", None, None).await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn ready_is_503_when_the_database_is_gone(db: PgPool) {
    let app = App::new(db.clone());
    db.close().await;
    assert_eq!(app.raw(Method::GET, "/ready", None, None).await.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn auth_is_required_and_nothing_changes_without_it(db: PgPool) {
    let app = App::new(db);
    let body = json!({"name": "x", "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}]}).to_string();
    for token in [None, Some("wrong"), Some("")] {
        let r = app.raw(Method::POST, "/api/v1/experiments", token, Some(body.clone())).await;
        assert_eq!(r.error(401).0, "unauthorized");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
    }
    assert_eq!(app.get("/api/v1/experiments").await.json(), json!([]));
    // read tokens read, but may not write
    assert_eq!(app.raw(Method::GET, "/api/v1/experiments", Some(READER), None).await.status, StatusCode::OK);
    let r = app.raw(Method::POST, "/api/v1/experiments", Some(READER), Some(body.clone())).await;
    assert_eq!(r.error(403).0, "forbidden");
    // ingest tokens only send events
    let r = app.raw(Method::GET, "/api/v1/experiments", Some(INGEST), None).await;
    assert_eq!(r.error(403).0, "forbidden");
    assert_eq!(app.get("/api/v1/experiments").await.json(), json!([]));
    // whoami says what each token may do
    assert_eq!(app.get("/api/v1/whoami").await.json()["role"], "admin");
    let read = app.raw(Method::GET, "/api/v1/whoami", Some(READER), None).await.json();
    assert_eq!((read["role"].as_str(), read["can_write"].as_bool()), (Some("read"), Some(false)));
    assert_eq!(app.raw(Method::GET, "/api/v1/whoami", None, None).await.error(401).0, "unauthorized");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn create_returns_the_experiment(db: PgPool) {
    let app = App::new(db);
    let e = app.create(json!({})).await;
    assert!(uuid::Uuid::parse_str(e["id"].as_str().expect("id")).is_ok());
    assert_eq!(e["key"], "model_ranking");
    assert_eq!(e["status"], "draft");
    assert_eq!(e["version"], 1);
    for field in ["name", "description", "owner_team", "created_by", "unit_type", "type", "targeting", "ramp_pct", "variants", "created_at", "updated_at"] {
        assert!(!e[field].is_null(), "missing {field}");
    }
    assert_eq!(e["variants"][1]["config_json"], json!({"model": "b"}));
    assert_eq!(e["targeting"], json!({"country": {"in": ["US"]}}));
    // by id and by key
    assert_eq!(app.get(&format!("/api/v1/experiments/{}", e["id"].as_str().expect("id"))).await.json()["key"], "model_ranking");
    assert_eq!(app.get("/api/v1/experiments/model_ranking").await.json()["id"], e["id"]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn keys_are_derived_unique_and_conflicts_are_409(db: PgPool) {
    let app = App::new(db);
    let body = |name: &str| json!({"name": name, "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}]});
    let a = app.post("/api/v1/experiments", body("Checkout Button Color")).await.json();
    let b = app.post("/api/v1/experiments", body("Checkout button color!")).await.json();
    assert_eq!(a["key"], "checkout_button_color");
    assert_eq!(b["key"], "checkout_button_color_2");
    assert_eq!(a["type"], "ab");
    let mut explicit = body("Other");
    explicit["key"] = json!("checkout_button_color");
    assert_eq!(app.post("/api/v1/experiments", explicit).await.error(409).0, "conflict");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn validation_failures_are_422_naming_the_field(db: PgPool) {
    let app = App::new(db);
    let ok = json!({"name": "n", "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}]});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"variants": [{"key": "a", "weight": 1.0}]}), "variants"),
        (json!({"variants": [{"key": "a", "weight": 0.6}, {"key": "b", "weight": 0.6}]}), "variants"),
        (json!({"variants": [{"key": "a", "weight": 0.5}, {"key": "a", "weight": 0.5}]}), "variants[1].key"),
        (json!({"variants": [{"key": "a", "weight": -0.5}, {"key": "b", "weight": 1.5}]}), "variants[0].weight"),
        (json!({"ramp_pct": 101}), "ramp_pct"),
        (json!({"ramp_pct": -1}), "ramp_pct"),
        (json!({"name": "  "}), "name"),
        (json!({"key": "Has Spaces"}), "key"),
        (json!({"key": "-lead"}), "key"),
        (json!({"type": "multivariate"}), "type"),
        (json!({"targeting": {"country": {"inn": ["US"]}}}), "targeting.country.inn"),
        (json!({"targeting": {"or": [{"plan": "pro"}, {"age": {"gt": [1]}}]}}), "targeting.or[1].age.gt"),
        (json!({"targeting": {"email": {"regex": "(unclosed"}}}), "targeting.email.regex"),
        (json!({"ramp_pct": "ten"}), "ramp_pct"),
        (json!({"unknown_field": 1}), "unknown_field"),
    ];
    for (patch, field) in cases {
        let mut body = ok.clone();
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        let r = app.post("/api/v1/experiments", body.clone()).await;
        let (code, got) = r.error(422);
        assert_eq!(code, "validation_failed");
        if !field.is_empty() {
            assert_eq!(got.as_deref(), Some(field), "for {body}: {}", r.text);
        }
    }
    assert_eq!(app.get("/api/v1/experiments").await.json(), json!([]), "nothing was created");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_json_400_too_large_413_unknown_404_405(db: PgPool) {
    let app = App::new(db);
    let r = app.raw(Method::POST, "/api/v1/experiments", Some(ADMIN), Some("{\"name\": ".into())).await;
    assert_eq!(r.error(400).0, "bad_json");
    let big = json!({"name": "x".repeat(100_000), "variants": []}).to_string();
    assert_eq!(app.raw(Method::POST, "/api/v1/experiments", Some(ADMIN), Some(big)).await.error(413).0, "payload_too_large");
    assert_eq!(app.get("/api/v1/experiments/nope").await.error(404).0, "not_found");
    assert_eq!(app.get("/api/v1/experiments/00000000-0000-0000-0000-000000000000").await.error(404).0, "not_found");
    assert_eq!(app.get("/api/v1/no-such-route").await.error(404).0, "not_found");
    assert_eq!(app.raw(Method::DELETE, "/api/v1/assign", Some(ADMIN), None).await.error(405).0, "method_not_allowed");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn list_filters_by_status_and_search(db: PgPool) {
    let app = App::new(db);
    app.create(json!({})).await;
    app.create(json!({"key": "other", "name": "Search Ranking", "owner_team": "growth"})).await;
    app.post("/api/v1/experiments/other/launch", json!({"ramp_pct": 5})).await;
    let keys = |v: Value| v.as_array().expect("array").iter().map(|e| e["key"].as_str().expect("key").to_owned()).collect::<Vec<_>>();
    assert_eq!(keys(app.get("/api/v1/experiments?status=running").await.json()), ["other"]);
    assert_eq!(keys(app.get("/api/v1/experiments?status=draft").await.json()), ["model_ranking"]);
    assert_eq!(keys(app.get("/api/v1/experiments?status=draft,running").await.json()).len(), 2);
    assert_eq!(keys(app.get("/api/v1/experiments?q=GROWTH").await.json()), ["other"]);
    assert_eq!(app.get("/api/v1/experiments?status=bogus").await.error(422).1.as_deref(), Some("status"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn lifecycle_and_audit(db: PgPool) {
    let app = App::new(db);
    let e = app.create(json!({})).await;
    let id = e["id"].as_str().expect("id");
    let path = |action: &str| format!("/api/v1/experiments/{id}/{action}");

    assert_eq!(app.post(&path("pause"), json!({})).await.error(409).0, "conflict", "draft cannot pause");
    let launched = app.post(&path("launch"), json!({"ramp_pct": 10, "actor": "ds.user"})).await.json();
    assert_eq!(launched["status"], "running");
    assert_eq!(launched["ramp_pct"], 10.0);
    assert_eq!(launched["version"], 2);
    assert!(launched["started_at"].is_string());
    let ramped = app.post(&path("launch"), json!({"ramp_pct": 50, "actor": "ds.user"})).await.json();
    assert_eq!((ramped["status"].as_str(), ramped["ramp_pct"].as_f64()), (Some("running"), Some(50.0)));
    assert_eq!(app.post(&path("launch"), json!({"ramp_pct": 150})).await.error(422).1.as_deref(), Some("ramp_pct"));
    assert_eq!(app.post(&path("pause"), json!({"actor": "oncall"})).await.json()["status"], "paused");
    // an empty body is fine for actions
    let relaunched = app.raw(Method::POST, &path("launch"), Some(ADMIN), None).await;
    assert_eq!(relaunched.json()["status"], "running");
    assert_eq!(relaunched.json()["ramp_pct"], 50.0, "relaunch keeps the ramp");
    let stopped = app.post(&path("stop"), json!({"actor": "ds.lead"})).await.json();
    assert_eq!(stopped["status"], "stopped");
    assert!(stopped["stopped_at"].is_string());
    for action in ["launch", "pause", "stop"] {
        assert_eq!(app.post(&path(action), json!({})).await.error(409).0, "conflict", "stopped is terminal ({action})");
    }
    assert_eq!(app.patch(&format!("/api/v1/experiments/{id}"), json!({"description": "late"})).await.error(409).0, "conflict");

    let audit = app.get(&path("audit")).await.json();
    let rows: Vec<(String, String, String)> = audit.as_array().expect("array").iter()
        .map(|a| (a["action"].as_str().unwrap_or("").into(), a["to_status"].as_str().unwrap_or("").into(), a["actor"].as_str().unwrap_or("").into()))
        .collect();
    // The key's name first (an env token's is `env:{role}`), then what the body said.
    let expect = [("create", "draft", "env:admin (ds.user)"), ("launch", "running", "env:admin (ds.user)"), ("ramp", "running", "env:admin (ds.user)"),
                  ("pause", "paused", "env:admin (oncall)"), ("launch", "running", "env:admin"), ("stop", "stopped", "env:admin (ds.lead)")];
    assert_eq!(rows, expect.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())));
    assert_eq!(audit[5]["version"], 6);
    assert_eq!(app.get("/api/v1/experiments/nope/audit").await.error(404).0, "not_found");
    assert_eq!(app.post("/api/v1/experiments/nope/launch", json!({})).await.error(404).0, "not_found");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn patch_rules(db: PgPool) {
    let app = App::new(db);
    app.create(json!({})).await;
    let p = "/api/v1/experiments/model_ranking";
    let new_variants = json!([{"key": "a", "weight": 0.2}, {"key": "b", "weight": 0.3}, {"key": "c", "weight": 0.5}]);
    let v = app.patch(p, json!({"variants": new_variants, "description": "three arms"})).await.json();
    assert_eq!(v["variants"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["version"], 2);
    assert_eq!(app.patch(p, json!({"variants": [{"key": "a", "weight": 1}]})).await.error(422).1.as_deref(), Some("variants"));
    assert_eq!(app.patch(p, json!({})).await.error(422).0, "validation_failed");
    app.post(&format!("{p}/launch"), json!({"ramp_pct": 10})).await;
    let running = app.patch(p, json!({"targeting": {"country": "CA"}, "ramp_pct": 20, "description": "d"})).await.json();
    assert_eq!((running["ramp_pct"].as_f64(), running["targeting"].clone()), (Some(20.0), json!({"country": "CA"})));
    assert_eq!(running["version"], 4);
    assert_eq!(app.patch(p, json!({"variants": new_variants})).await.error(409).0, "conflict");
    assert_eq!(app.patch(p, json!({"targeting": {"x": {"bad": 1}}})).await.error(422).1.as_deref(), Some("targeting.x.bad"));
    assert_eq!(app.get(p).await.json()["version"], 4, "failed patches change nothing");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn layers_keep_running_experiments_apart(db: PgPool) {
    let app = App::new(db);
    app.create(json!({"key": "left", "layer": {"key": "checkout", "start": 0, "end": 6000}})).await;
    app.create(json!({"key": "right", "layer": {"key": "checkout", "start": 5000, "end": 10000}})).await;
    assert_eq!(app.post("/api/v1/experiments/left/launch", json!({"ramp_pct": 100})).await.status, StatusCode::OK);
    let r = app.post("/api/v1/experiments/right/launch", json!({"ramp_pct": 100})).await;
    assert!(r.error(409).0 == "conflict" && r.text.contains("overlaps"), "{}", r.text);
    app.post("/api/v1/experiments/left/stop", json!({})).await;
    assert_eq!(app.post("/api/v1/experiments/right/launch", json!({"ramp_pct": 100})).await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn assign_follows_lifecycle_targeting_and_ramp(db: PgPool) {
    let app = App::new(db);
    app.create(json!({})).await;
    let ask = |unit: &str, country: &str| json!({"experiment": "model_ranking", "unit_id": unit, "attributes": {"country": country}});
    let draft = app.post("/api/v1/assign", ask("store-123", "US")).await.json();
    assert_eq!((draft["in_experiment"].as_bool(), draft["variant_key"].as_str()), (Some(false), Some("model_a")));
    assert_eq!(draft["config_json"], json!({"model": "a"}));
    assert_eq!(draft["reason"], "not_running");

    app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": 100})).await;
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..400 {
        let a = app.post("/api/v1/assign", ask(&format!("u{i}"), "US")).await.json();
        assert_eq!(a["in_experiment"], true);
        assert_eq!(a["experiment"], "model_ranking");
        assert_eq!(a["version"], 2);
        assert!(a["assignment_id"].as_str().is_some_and(|s| s.len() == 16));
        let again = app.post("/api/v1/assign", ask(&format!("u{i}"), "US")).await.json();
        assert_eq!(a, again, "deterministic");
        *seen.entry(a["variant_key"].as_str().expect("key").to_owned()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both arms get traffic: {seen:?}");
    assert!(seen.values().all(|&n| n > 150), "roughly even: {seen:?}");

    let out = app.post("/api/v1/assign", ask("u1", "FR")).await.json();
    assert_eq!((out["in_experiment"].as_bool(), out["reason"].as_str(), out["variant_key"].as_str()), (Some(false), Some("targeting"), Some("model_a")));

    app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": 0})).await;
    assert_eq!(app.post("/api/v1/assign", ask("u1", "US")).await.json()["reason"], "ramp");

    assert_eq!(app.post("/api/v1/assign", json!({"experiment": "nope", "unit_id": "u"})).await.error(404).0, "not_found");
    assert_eq!(app.post("/api/v1/assign", json!({"experiment": "model_ranking", "unit_id": ""})).await.error(422).1.as_deref(), Some("unit_id"));
    assert_eq!(app.post("/api/v1/assign", json!({"experiment": "model_ranking"})).await.error(422).0, "validation_failed");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn assign_equals_the_shared_engine(db: PgPool) {
    let app = App::new(db);
    let e = app.create(json!({"targeting": {"or": [{"country": "US"}, {"age": {"gte": 30}}]},
                              "variants": [{"key": "c", "weight": 0.2}, {"key": "t1", "weight": 0.3}, {"key": "t2", "weight": 0.5}]})).await;
    app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": 60})).await;
    let row = app.get("/api/v1/experiments/model_ranking").await.json();
    let mut engine: litmus_shared::Experiment = serde_json::from_value(row.clone()).expect("rows deserialize as engine configs");
    engine.id = Some(e["id"].as_str().expect("id").into());
    let keys = litmus_shared::signing::Keys::parse(litmus_control_plane::config::TEST_SIGNING_KEY).expect("the test key");
    for i in 0..300 {
        let attrs = json!({"country": if i % 3 == 0 { "US" } else { "DE" }, "age": i % 60});
        let unit = format!("unit-{i}-ü");
        let api = app.post("/api/v1/assign", json!({"experiment": "model_ranking", "unit_id": unit, "attributes": attrs})).await.json();
        // The engine's answer, signed with the deployment's key: the same bytes the edge writes.
        let mut local = litmus_shared::assign(&engine, &unit, attrs.as_object().expect("object"));
        local.signature = keys.sign(&engine, &unit, &local);
        assert!(local.signature.is_some());
        assert_eq!(api, serde_json::to_value(&local).expect("json"));
        // Only an in-experiment answer's signature proves an event for its unit and variant.
        let proves = keys.verify(api["signature"].as_str().expect("signed"), "model_ranking", &unit, local.variant_key).is_some();
        assert_eq!(proves, local.in_experiment, "{api}");
        assert!(keys.verify(api["signature"].as_str().expect("signed"), "model_ranking", "someone-else", local.variant_key).is_none());
    }
}
