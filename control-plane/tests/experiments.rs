//! The experiments API's input rules (issue 11): nothing sent is silently dropped, a NUL
//! character is a 4xx wherever it is sent, and every refusal names its field in words a user
//! understands.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, App};
use litmus_control_plane::MIGRATOR;
use serde_json::{Value, json};
use sqlx::PgPool;

fn two_arms() -> Value {
    json!([{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}])
}

/// Asserts a 422 naming `field`, and returns its message.
fn refused(r: &common::Reply, field: &str) -> String {
    let (code, got) = r.error(422);
    assert_eq!(code, "validation_failed");
    assert_eq!(got.as_deref(), Some(field), "{}", r.text);
    r.json()["error"]["message"].as_str().unwrap_or_default().to_owned()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_fields_are_refused_at_every_level(db: PgPool) {
    let app = App::new(db);
    let ok = json!({"name": "n", "variants": two_arms()});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5, "config": {"x": 1}}]}), "variants[1].config"),
        (json!({"layer": {"key": "l", "start": 0, "end": 10, "size": 3}}), "layer.size"),
        (json!({"metrics": [{"name": "m", "rol": "primary"}]}), "metrics[0].rol"),
        (json!({"unknown_field": 1}), "unknown_field"),
    ];
    for (patch, field) in cases {
        let mut body = ok.clone();
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        let message = refused(&app.post("/api/v1/experiments", body).await, field);
        assert!(message.starts_with("unknown field"), "{message}");
        assert!(message.contains("; expected one of "), "says what is known: {message}");
    }
    assert_eq!(app.get("/api/v1/experiments").await.json(), json!([]), "nothing was created");

    // targeting and config_json are free-form: any key goes, and comes back as sent
    let free = json!({"theme": {"any": {"deep": ["key"]}}, "config": 1});
    let e = app.create(json!({"variants": [{"key": "a", "weight": 0.5, "config_json": free}, {"key": "b", "weight": 0.5}]})).await;
    assert_eq!(e["variants"][0]["config_json"], free);

    let p = "/api/v1/experiments/model_ranking";
    let r = app.patch(p, json!({"variants": [{"key": "a", "weight": 0.5, "config": {}}, {"key": "b", "weight": 0.5}]})).await;
    refused(&r, "variants[0].config");
    let message = refused(&app.patch(p, json!({"descripton": "typo"})).await, "descripton");
    assert!(message.contains("description"), "{message}");
    let r = app.post("/api/v1/experiments", json!({"name": "v", "variants": [{"key": "a", "weight": 1, "config": 1}, {"key": "b", "weight": 0}]})).await;
    assert_eq!(refused(&r, "variants[0].config"), "unknown field `config`; expected one of key, name, weight, config_json");
    refused(&app.post(&format!("{p}/launch"), json!({"ramp": 10})).await, "ramp");
    refused(&app.post(&format!("{p}/pause"), json!({"actr": "x"})).await, "actr");
    refused(&app.post(&format!("{p}/stop"), json!({"by": "x"})).await, "by");
    let after = app.get(p).await.json();
    assert_eq!((after["status"].as_str(), after["version"].as_i64()), (Some("draft"), Some(1)), "nothing changed");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_launch_without_a_ramp_never_starts_at_zero_silently(db: PgPool) {
    let app = App::new(db);
    app.create(json!({})).await; // ramp_pct 0
    let launch = "/api/v1/experiments/model_ranking/launch";
    for body in [None, Some("{}".to_owned()), Some(json!({"actor": "ds.user"}).to_string())] {
        let r = app.raw(Method::POST, launch, Some(ADMIN), body).await;
        let message = refused(&r, "ramp_pct");
        assert!(message.contains("0 %") && message.contains("ramp_pct"), "{message}");
    }
    assert_eq!(app.get("/api/v1/experiments/model_ranking").await.json()["status"], "draft");
    // asking for 0 % explicitly is a decision, not an accident
    let zero = app.post(launch, json!({"ramp_pct": 0, "actor": "ds.user"})).await;
    assert_eq!((zero.status, zero.json()["ramp_pct"].as_f64()), (StatusCode::OK, Some(0.0)));

    // a draft created with a ramp launches at that ramp
    app.create(json!({"key": "ramped", "ramp_pct": 25})).await;
    let r = app.raw(Method::POST, "/api/v1/experiments/ramped/launch", Some(ADMIN), None).await;
    assert_eq!((r.status, r.json()["ramp_pct"].as_f64()), (StatusCode::OK, Some(25.0)), "{}", r.text);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn nul_characters_are_refused_never_a_500(db: PgPool) {
    let app = App::new(db);
    let nul = "a\u{0}b";
    let ok = json!({"name": "n", "variants": two_arms()});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": nul}), "name"),
        (json!({"description": nul}), "description"),
        (json!({"owner_team": nul}), "owner_team"),
        (json!({"created_by": nul}), "created_by"),
        (json!({"unit_type": nul}), "unit_type"),
        (json!({"salt": nul}), "salt"),
        (json!({"variants": [{"key": "a", "name": nul, "weight": 0.5}, {"key": "b", "weight": 0.5}]}), "variants[0].name"),
        (json!({"variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5, "config_json": {"model": nul}}]}), "variants[1].config_json.model"),
        (json!({"variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5, "config_json": {nul: 1}}]}), "variants[1].config_json"),
        (json!({"targeting": {"country": {"in": ["US", nul]}}}), "targeting.country.in[1]"),
        (json!({"metrics": [{"name": nul}]}), "metrics[0].name"),
    ];
    for (patch, field) in cases {
        let mut body = ok.clone();
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        let message = refused(&app.post("/api/v1/experiments", body).await, field);
        assert!(message.contains("NUL"), "{message}");
    }
    assert_eq!(app.get("/api/v1/experiments").await.json(), json!([]), "nothing was created");

    app.create(json!({})).await;
    let p = "/api/v1/experiments/model_ranking";
    refused(&app.patch(p, json!({"description": nul})).await, "description");
    refused(&app.patch(p, json!({"description": "ok", "actor": nul})).await, "actor");
    refused(&app.post(&format!("{p}/launch"), json!({"ramp_pct": 10, "actor": nul})).await, "actor");
    refused(&app.get("/api/v1/experiments?q=a%00b").await, "q");
    refused(&app.get("/api/v1/experiments?status=running%00").await, "status");
    for path in ["/api/v1/experiments/a%00b", "/api/v1/experiments/a%00b/audit", "/api/v1/experiments/a%00b/results", "/api/v1/experiments/a%FFb"] {
        assert_eq!(app.get(path).await.error(404).0, "not_found", "{path}");
    }
    assert_eq!(app.patch("/api/v1/experiments/a%00b", json!({"description": "x"})).await.error(404).0, "not_found");
    refused(&app.post("/api/v1/assign", json!({"experiment": nul, "unit_id": "u"})).await, "experiment");
    assert_eq!(app.get(p).await.json()["version"], 1, "nothing changed");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn type_errors_speak_to_users_not_rust(db: PgPool) {
    let app = App::new(db);
    let ok = json!({"name": "n", "variants": two_arms()});
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"ramp_pct": "ten"}), "ramp_pct", "must be a number"),
        (json!({"variants": [{"key": "a", "weight": "half"}, {"key": "b", "weight": 0.5}]}), "variants[0].weight", "must be a number"),
        (json!({"type": "multivariate"}), "type", "must be one of ab, bandit"),
        (json!({"layer": {"key": "l", "start": 1.5, "end": 10}}), "layer.start", "must be a whole number"),
        (json!({"layer": {"key": "l", "start": -1, "end": 10}}), "layer.start", "must be a whole number"),
        (json!({"name": 5}), "name", "must be a string"),
        (json!({"variants": {"a": 1}}), "variants", "must be an array"),
        (json!({"variants": [{"key": "a", "weight": 0.5}, {"weight": 0.5}]}), "variants[1].key", "is required"),
        (json!({"metrics": [{"name": "m", "kind": "median"}]}), "metrics[0].kind", "must be one of mean, conversion, proportion"),
        (json!({"variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}], "name": null}), "name", "must be a string"),
    ];
    for (patch, field, want) in cases {
        let mut body = ok.clone();
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        let message = refused(&app.post("/api/v1/experiments", body.clone()).await, field);
        assert!(message.starts_with(want), "for {body}: {message}");
        for rust in ["u32", "f64", "i64", "struct", "invalid type", "invalid value", "enum", "variant", "line 1"] {
            assert!(!message.contains(rust), "for {body}: `{rust}` in {message}");
        }
    }
    let missing = refused(&app.post("/api/v1/experiments", json!({"variants": two_arms()})).await, "name");
    assert_eq!(missing, "is required");
    // a null in a PATCH is not "leave it": it is refused, not dropped
    app.create(json!({"key": "nulls"})).await;
    for field in ["name", "description", "owner_team", "targeting", "ramp_pct", "variants", "layer", "metrics", "actor"] {
        let r = app.patch("/api/v1/experiments/nulls", json!({field: null, "unit_type": "store_id"})).await;
        let message = refused(&r, field);
        assert!(message.starts_with("cannot be null"), "{field}: {message}");
    }
    refused(&app.post("/api/v1/experiments/nulls/launch", json!({"ramp_pct": null})).await, "ramp_pct");
    refused(&app.post("/api/v1/experiments/nulls/stop", json!({"actor": null})).await, "actor");
    assert_eq!(app.get("/api/v1/experiments/nulls").await.json()["version"], 1);
    // launch bodies too
    app.create(json!({})).await;
    let r = app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": "all"})).await;
    assert!(refused(&r, "ramp_pct").starts_with("must be a number"));
    // a body that is not an object at all
    let r = app.raw(Method::POST, "/api/v1/experiments", Some(ADMIN), Some("[1]".into())).await;
    assert_eq!(r.error(422).0, "validation_failed");
    assert!(!r.text.contains("struct"), "{}", r.text);
}

fn keys(v: &Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(|e| e["key"].as_str().expect("key").to_owned()).collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_list_pages_with_an_opaque_cursor_in_stable_order(db: PgPool) {
    let app = App::new(db.clone());
    for i in 0..7 {
        app.create(json!({"key": format!("e{i}"), "name": format!("Experiment {i}")})).await;
    }
    // three created in the same microsecond: the key breaks the tie, always the same way
    sqlx::query("UPDATE experiments SET created_at = '2026-01-01T00:00:00Z' WHERE key IN ('e2', 'e3', 'e4')").execute(&db).await.expect("tie");
    let everything = app.get("/api/v1/experiments").await;
    assert!(everything.headers.get("x-next-cursor").is_none(), "no limit, no pages: the whole list as before");
    let all = keys(&everything.json());
    assert_eq!(all.len(), 7);

    let mut seen = Vec::new();
    let mut url = "/api/v1/experiments?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let r = app.get(&url).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let page = keys(&r.json());
        assert!(page.len() <= 3);
        seen.extend(page);
        pages += 1;
        if pages == 1 {
            // created after the first page was read: newest first, so it cannot shift later pages
            app.create(json!({"key": "late", "name": "Late"})).await;
        }
        let Some(cursor) = r.headers.get("x-next-cursor") else { break };
        let cursor = cursor.to_str().expect("ascii").to_owned();
        let link = r.headers["link"].to_str().expect("ascii");
        assert_eq!(link, format!("</api/v1/experiments?limit=3&cursor={cursor}>; rel=\"next\""));
        url = format!("/api/v1/experiments?limit=3&cursor={cursor}");
        assert!(pages < 10, "the cursor must move");
    }
    assert_eq!((seen, pages), (all, 3), "every experiment once, in the list's order");

    // filters and pages combine; the Link keeps the filters
    let r = app.get("/api/v1/experiments?q=experiment%20&limit=2&status=draft").await;
    assert_eq!(keys(&r.json()).len(), 2);
    let link = r.headers["link"].to_str().expect("ascii");
    assert!(link.starts_with("</api/v1/experiments?status=draft&q=experiment%20&limit=2&cursor="), "{link}");
    let exact = app.get("/api/v1/experiments?limit=8").await;
    assert_eq!(keys(&exact.json()).len(), 8);
    assert!(exact.headers.get("x-next-cursor").is_none(), "no next page when the page is exactly the rest");

    for bad in ["limit=0", "limit=201", "limit=ten", "limit=-1"] {
        refused(&app.get(&format!("/api/v1/experiments?{bad}")).await, "limit");
    }
    for bad in ["cursor=zz", "cursor=313a", "cursor=00"] {
        refused(&app.get(&format!("/api/v1/experiments?limit=2&{bad}")).await, "cursor");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn drafts_can_be_deleted_and_the_audit_trail_stays(db: PgPool) {
    let app = App::new(db);
    let e = app.create(json!({})).await;
    let id = e["id"].as_str().expect("id").to_owned();
    let r = app.raw(Method::DELETE, "/api/v1/experiments/model_ranking", Some(common::READER), None).await;
    assert_eq!(r.error(403).0, "forbidden");
    refused(&app.raw(Method::DELETE, "/api/v1/experiments/model_ranking", Some(ADMIN), Some(r#"{"by":"me"}"#.into())).await, "by");
    let r = app.raw(Method::DELETE, "/api/v1/experiments/model_ranking", Some(ADMIN), Some(json!({"actor": "ds.user"}).to_string())).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(app.get("/api/v1/experiments/model_ranking").await.error(404).0, "not_found");
    assert_eq!(app.get(&format!("/api/v1/experiments/{id}")).await.error(404).0, "not_found");
    assert_eq!(app.get("/api/v1/experiments").await.json(), json!([]));
    assert_eq!(app.delete("/api/v1/experiments/model_ranking").await.error(404).0, "not_found", "once");

    // who deleted it, and when, is still on record, by id or by key
    for path in [format!("/api/v1/experiments/{id}/audit"), "/api/v1/experiments/model_ranking/audit".to_owned()] {
        let audit = app.get(&path).await.json();
        let rows: Vec<(&str, &str, &str)> = audit.as_array().expect("array").iter()
            .map(|a| (a["action"].as_str().unwrap_or(""), a["to_status"].as_str().unwrap_or(""), a["actor"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(rows, [("create", "draft", "env:admin (ds.user)"), ("delete", "deleted", "env:admin (ds.user)")], "{path}");
        assert_eq!(audit[1]["from_status"], "draft");
        assert_eq!(audit[1]["version"], 2);
    }
    // the key is free again; its audit is now the new experiment's
    app.create(json!({})).await;
    assert_eq!(app.get("/api/v1/experiments/model_ranking/audit").await.json().as_array().map(Vec::len), Some(1));
    assert_eq!(app.get(&format!("/api/v1/experiments/{id}/audit")).await.json().as_array().map(Vec::len), Some(2));

    // anything that ran keeps its results: 409, and nothing changes
    app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": 10})).await;
    for then in ["pause", "stop"] {
        let r = app.delete("/api/v1/experiments/model_ranking").await;
        assert!(r.error(409).0 == "conflict" && r.text.contains("only drafts"), "{}", r.text);
        app.post(&format!("/api/v1/experiments/model_ranking/{then}"), json!({})).await;
    }
    assert_eq!(app.delete("/api/v1/experiments/model_ranking").await.error(409).0, "conflict");
    assert_eq!(app.get("/api/v1/experiments/model_ranking").await.json()["status"], "stopped");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn stopped_experiments_leave_the_edge_config_after_the_grace_period(db: PgPool) {
    let app = App::with_config(db.clone(), |c| c.stopped_grace = std::time::Duration::from_secs(3600));
    for key in ["live", "paused", "recent", "old"] {
        app.create(json!({"key": key, "ramp_pct": 50})).await;
        app.post(&format!("/api/v1/experiments/{key}/launch"), json!({})).await;
    }
    app.post("/api/v1/experiments/paused/pause", json!({})).await;
    for key in ["recent", "old"] {
        app.post(&format!("/api/v1/experiments/{key}/stop"), json!({})).await;
    }
    app.create(json!({"key": "draft"})).await;
    sqlx::query("UPDATE experiments SET stopped_at = now() - interval '61 minutes' WHERE key = 'old'").execute(&db).await.expect("age");
    let config = app.get("/api/v1/edge/config").await.json();
    assert_eq!(keys(&config["config"]["experiments"]), ["live", "paused", "recent"]);
}

/// A stand-in for the worker's publish endpoint: every config set PUT to it.
async fn capture_edge() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let router = axum::Router::new().route(
        "/v1/admin/config",
        axum::routing::put(move |body: String| {
            if let (Ok(mut s), Ok(v)) = (sink.lock(), serde_json::from_str::<Value>(&body)) {
                s.push(v);
            }
            async { axum::Json(json!({"stale": false})) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/v1/admin/config", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_edge_gets_a_new_config_when_a_grace_period_ends(db: PgPool) {
    use litmus_control_plane::{publish, retire};
    let grace = std::time::Duration::from_secs(3);
    let app = App::new(db.clone());
    for key in ["live", "ending"] {
        app.create(json!({"key": key, "ramp_pct": 50})).await;
        app.post(&format!("/api/v1/experiments/{key}/launch"), json!({})).await;
    }
    app.post("/api/v1/experiments/ending/stop", json!({})).await;
    let stopped = std::time::Instant::now();

    let (url, seen) = capture_edge().await;
    let mut config = litmus_control_plane::config::Config::for_tests("postgres://unused", ADMIN);
    config.edge_publish_url = Some(url);
    config.stopped_grace = grace;
    let publisher = publish::Publisher::default();
    let tasks = [
        tokio::spawn(publish::run(db.clone(), std::sync::Arc::new(config), publisher.clone())),
        // two control planes: one leads, the other waits
        tokio::spawn(retire::run(db.clone(), grace, publisher.clone())),
        tokio::spawn(retire::run(db.clone(), grace, publisher.clone())),
    ];
    let published = || -> Vec<Vec<String>> { seen.lock().expect("lock").iter().map(|s| keys(&s["experiments"])).collect() };
    // The publisher's own re-check is every 30 s: anything sooner is the job's doing.
    while !published().iter().any(|k| k == &["live"]) {
        assert!(stopped.elapsed() < std::time::Duration::from_secs(15), "no republish after the grace period: {:?}", published());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(stopped.elapsed() >= grace, "not before the grace period ends");
    assert_eq!(published()[0], ["ending", "live"], "within the grace period the stopped experiment is still served");
    let leaders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&db)
    .await
    .expect("locks");
    assert_eq!(leaders, 1, "one leader among control planes");
    for t in tasks {
        t.abort();
    }
}
