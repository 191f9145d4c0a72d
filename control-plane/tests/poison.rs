//! Issue 11, ingest half: one bad event must never take the platform down. Each poison input is
//! refused where it enters (with a field path and a message a user understands), and what still
//! reaches the events table is quarantined by the aggregator instead of stalling it: every
//! experiment's results keep answering 200 with the right numbers for the good events.

mod common;

use axum::http::{Method, StatusCode};
use chrono::{Duration, SecondsFormat, Utc};
use common::App;
use litmus_control_plane::MIGRATOR;
use serde_json::{Value, json};
use sqlx::PgPool;

fn ago(minutes: i64) -> String {
    (Utc::now() - Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn ev(kind: &str, exp: &str, unit: &str, variant: &str) -> Value {
    json!({"kind": kind, "experiment": exp, "unit_id": unit, "variant_key": variant, "ts": ago(10)})
}

fn metric(exp: &str, unit: &str, variant: &str, value: f64) -> Value {
    let mut e = ev("metric", exp, unit, variant);
    e["metric"] = json!("order_value");
    e["value"] = json!(value);
    e["ts"] = json!(ago(5));
    e
}

/// Two running A/B experiments and a running bandit, each with two exposed units per arm and
/// one metric value per unit: `model_ranking` a: 10, 20; b: 30, 50.
async fn world(app: &App) {
    app.create(json!({"targeting": {}})).await;
    app.create(json!({"key": "other", "targeting": {}})).await;
    app.create(json!({"key": "arms", "type": "bandit", "targeting": {}}))
        .await;
    for k in ["model_ranking", "other", "arms"] {
        let r = app
            .post(
                &format!("/api/v1/experiments/{k}/launch"),
                json!({"ramp_pct": 100}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let mut events = Vec::new();
    for exp in ["model_ranking", "other", "arms"] {
        for (unit, variant, value) in [
            ("u1", "model_a", 10.0),
            ("u2", "model_a", 20.0),
            ("u3", "model_b", 30.0),
            ("u4", "model_b", 50.0),
        ] {
            events.push(ev("exposure", exp, unit, variant));
            events.push(metric(exp, unit, variant, value));
        }
    }
    let r = app
        .post("/api/v1/events/batch", json!({"events": events}))
        .await;
    assert_eq!(r.json(), json!({"accepted": 24, "duplicates": 0}));
}

/// Every readout of every experiment answers 200, and the good events are counted exactly.
async fn all_readouts_are_right(app: &App) {
    for exp in ["model_ranking", "other", "arms"] {
        let r = app.get(&format!("/api/v1/experiments/{exp}/results")).await;
        assert_eq!(r.status, StatusCode::OK, "{exp}: {}", r.text);
        let v = r.json();
        let a = &v["variants"][0]["metrics"]["order_value"];
        let b = &v["variants"][1]["metrics"]["order_value"];
        assert_eq!(
            (a["units"].as_i64(), a["sum"].as_f64(), a["mean"].as_f64()),
            (Some(2), Some(30.0), Some(15.0)),
            "{exp}: {v}"
        );
        assert_eq!(
            (b["units"].as_i64(), b["sum"].as_f64(), b["mean"].as_f64()),
            (Some(2), Some(80.0), Some(40.0)),
            "{exp}: {v}"
        );
        assert_eq!(v["srm"]["observed"], json!([2, 2]), "{exp}");
        for format in ["csv", "md"] {
            let r = app
                .get(&format!(
                    "/api/v1/experiments/{exp}/results?format={format}"
                ))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{exp} {format}: {}", r.text);
        }
        let r = app
            .get(&format!(
                "/api/v1/experiments/{exp}/timeseries?interval=hour"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{exp} timeseries: {}", r.text);
    }
    let r = app.get("/api/v1/experiments/arms/bandit").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let exposures: Vec<i64> = r.json()["variants"]
        .as_array()
        .expect("arms")
        .iter()
        .filter_map(|a| a["exposures"].as_i64())
        .collect();
    assert_eq!(exposures, [2, 2]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn huge_metric_values_are_refused_where_they_enter(db: PgPool) {
    let app = App::new(db.clone());
    world(&app).await;
    for huge in [1e308, 1.7e308, -1e308, 1.000_000_1e15, -2e15] {
        let mut e = metric("model_ranking", "u1", "model_a", 0.0);
        e["value"] = json!(huge);
        let r = app.post("/api/v1/events/metric", e).await;
        assert_eq!(
            r.error(422),
            ("validation_failed".into(), Some("value".into())),
            "{huge}"
        );
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("1e15")),
            "{}",
            r.text
        );
    }
    // The bound itself is a legal value: it and its negative cancel out for u1.
    for edge in [1e15, -1e15] {
        let r = app
            .post(
                "/api/v1/events/metric",
                metric("model_ranking", "u1", "model_a", edge),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{edge}: {}", r.text);
    }
    all_readouts_are_right(&app).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn poison_that_reaches_the_events_table_is_quarantined_and_the_rest_goes_on(db: PgPool) {
    let app = App::new(db.clone());
    world(&app).await;
    all_readouts_are_right(&app).await;
    // What validation can no longer let in, but an older build (or a hand-written INSERT) did:
    // values whose sum or square overflows float8 in the aggregates.
    for (id, value) in [("poison-1", 1e308), ("poison-2", 1.7e308)] {
        sqlx::query(
            "INSERT INTO events (experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id)
             SELECT id, 2, 'u1', 'model_a', 'order_value', $1, now(), $2 FROM experiments WHERE key = 'model_ranking'",
        )
        .bind(value)
        .bind(id)
        .execute(&db)
        .await
        .expect("insert poison");
    }
    // And a good event after it, in the same aggregation run (a zero: only the count moves).
    let r = app
        .post(
            "/api/v1/events/batch",
            json!({"events": [metric("other", "u3", "model_b", 0.0)]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);

    let mut counts = Vec::new();
    for _ in 0..2 {
        let r = app.get("/api/v1/experiments/other/results").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        counts.push(r.json()["variants"][1]["metrics"]["order_value"]["count"].clone());
    }
    assert_eq!(
        counts,
        [json!(3), json!(3)],
        "the good event after the poison is counted, once"
    );
    // Back to the world as it was: the quarantined rows are out of the numbers.
    let r = app
        .post("/api/v1/events/batch", json!({"events": []}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let v = app
        .get("/api/v1/experiments/model_ranking/results")
        .await
        .json();
    assert_eq!(
        v["variants"][0]["metrics"]["order_value"]["sum"].as_f64(),
        Some(30.0),
        "{v}"
    );
    assert_eq!(
        v["quarantined_events"],
        json!(2),
        "the readout says events were set aside: {v}"
    );
    let other = app.get("/api/v1/experiments/other/results").await.json();
    assert_eq!(other["quarantined_events"], json!(0));

    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id, reason FROM quarantined_events ORDER BY event_id")
            .fetch_all(&db)
            .await
            .expect("quarantine");
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["poison-1", "poison-2"]
    );
    assert!(
        rows.iter().all(|r| r.1.contains("out of range")),
        "{rows:?}"
    );
    let (left,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM events WHERE event_id LIKE 'poison-%'")
            .fetch_one(&db)
            .await
            .expect("count");
    assert_eq!(
        left, 0,
        "moved out of events, so a recompute from raw events cannot meet them again"
    );

    let ready = app.raw(Method::GET, "/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.json()["quarantined_events"],
        json!(2),
        "{}",
        ready.text
    );

    // A later unit recompute from raw events (a late, earlier exposure) does not meet it again.
    let mut late = ev("exposure", "model_ranking", "u1", "model_a");
    late["ts"] = json!(ago(60));
    assert_eq!(
        app.post("/api/v1/events/batch", json!({"events": [late]}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    all_readouts_are_right(&app).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn nul_and_other_unstorable_text_is_a_422_naming_the_field(db: PgPool) {
    let app = App::new(db.clone());
    world(&app).await;
    let base = metric("model_ranking", "u1", "model_a", 1.0);
    for (field, value) in [
        ("unit_id", json!("q\u{0}s")),
        ("metric", json!("order\u{0}value")),
        ("event_id", json!("id\u{0}")),
        ("experiment", json!("model\u{0}ranking")),
        ("variant_key", json!("model_a\u{0}")),
    ] {
        let mut e = base.clone();
        e[field] = value;
        let r = app.post("/api/v1/events/metric", e).await;
        assert_eq!(
            r.error(422),
            ("validation_failed".into(), Some(field.to_owned())),
            "{field}: {}",
            r.text
        );
        assert!(r.text.contains("NUL"), "{}", r.text);
    }
    for attributes in [
        json!({"country": "U\u{0}S"}),
        json!({"coun\u{0}try": "US"}),
        json!({"nested": ["a", {"b": "\u{0}"}]}),
    ] {
        let mut e = ev("exposure", "model_ranking", "u1", "model_a");
        e["attributes"] = attributes;
        let r = app.post("/api/v1/events/exposure", e).await;
        let (code, field) = r.error(422);
        assert_eq!(code, "validation_failed");
        assert!(
            field
                .as_deref()
                .is_some_and(|f| f.starts_with("attributes")),
            "{}",
            r.text
        );
    }
    // One such event in a batch refuses only itself.
    let mut bad = ev("exposure", "model_ranking", "u\u{0}", "model_a");
    bad["event_id"] = json!("bad");
    let r = app
        .post(
            "/api/v1/events/batch",
            json!({"events": [ev("exposure", "model_ranking", "u5", "model_b"), bad]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let v = r.json();
    assert_eq!(v["accepted"], 1);
    assert_eq!(v["rejected"][0]["index"], 1);
    assert_eq!(v["rejected"][0]["field"], "events[1].unit_id");
    // Other routes: the path and the query string are refused before they reach Postgres (no id
    // or key can hold a NUL: 404; a query parameter that does is a mistake: 422).
    for path in ["/api/v1/experiments/a%00b", "/api/v1/experiments/a%00b/results"] {
        assert_eq!(app.get(path).await.error(404).0, "not_found", "{path}");
    }
    assert_eq!(app.get("/api/v1/experiments?q=a%00b").await.error(422), ("validation_failed".into(), Some("q".into())));
    let r = app
        .patch(
            "/api/v1/experiments/model_ranking",
            json!({"description": "a\u{0}b"}),
        )
        .await;
    assert_eq!(
        r.error(422),
        ("validation_failed".into(), Some("description".into())),
        "{}",
        r.text
    );
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM events WHERE unit_id = 'u5'")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(stored, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn empty_unit_ids_are_refused(db: PgPool) {
    let app = App::new(db.clone());
    world(&app).await;
    let r = app
        .post(
            "/api/v1/events/exposure",
            ev("exposure", "model_ranking", "", "model_a"),
        )
        .await;
    assert_eq!(
        r.error(422),
        ("validation_failed".into(), Some("unit_id".into()))
    );
    assert_eq!(
        r.json()["error"]["message"],
        litmus_shared::validate::unit_id("")
            .expect_err("empty")
            .message
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn lifecycle_and_time_window(db: PgPool) {
    let app = App::new(db.clone());
    world(&app).await;
    app.create(json!({"key": "drafty", "targeting": {}})).await;
    let r = app
        .post(
            "/api/v1/events/exposure",
            ev("exposure", "drafty", "u1", "model_a"),
        )
        .await;
    assert_eq!(r.error(409).0, "experiment_not_running", "{}", r.text);
    let r = app.post("/api/v1/events/batch", json!({"events": [ev("exposure", "drafty", "u1", "model_a"), ev("exposure", "other", "u7", "model_a")]})).await;
    let v = r.json();
    assert_eq!(
        (v["accepted"].as_i64(), v["rejected"][0]["code"].as_str()),
        (Some(1), Some("experiment_not_running")),
        "{v}"
    );

    // Stopped: what happened while it ran still counts (late delivery), what comes after does not.
    let r = app.post("/api/v1/experiments/other/stop", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    sqlx::query(
        "UPDATE experiments SET stopped_at = now() - interval '20 minutes' WHERE key = 'other'",
    )
    .execute(&db)
    .await
    .expect("backdate");
    let at = |unit: &str, minutes_ago: i64| {
        let mut e = ev("exposure", "other", unit, "model_a");
        e["ts"] = json!(ago(minutes_ago));
        e
    };
    assert_eq!(
        app.post("/api/v1/events/exposure", at("u8", 30))
            .await
            .status,
        StatusCode::ACCEPTED,
        "while it ran"
    );
    assert_eq!(
        app.post("/api/v1/events/exposure", at("u8b", 17))
            .await
            .status,
        StatusCode::ACCEPTED,
        "clock skew allowance"
    );
    let r = app.post("/api/v1/events/exposure", at("u9", 10)).await;
    assert_eq!(r.error(409).0, "experiment_stopped", "{}", r.text);
    let r = app
        .post(
            "/api/v1/events/batch",
            json!({"events": [at("u9", 10), at("u10", 25)]}),
        )
        .await;
    let v = r.json();
    assert_eq!(
        (
            v["accepted"].as_i64(),
            v["rejected"][0]["code"].as_str(),
            v["rejected"][0]["field"].as_str()
        ),
        (
            Some(1),
            Some("experiment_stopped"),
            Some("events[0].experiment")
        ),
        "{v}"
    );
    // Without `ts` the server's time is the event's: after the stop.
    let mut untimed = ev("exposure", "other", "u9", "model_a");
    untimed.as_object_mut().expect("object").remove("ts");
    assert_eq!(
        app.post("/api/v1/events/exposure", untimed)
            .await
            .error(409)
            .0,
        "experiment_stopped"
    );
    let r = app.get("/api/v1/experiments/other/results").await;
    assert_eq!(
        r.json()["variants"][0]["exposures"],
        6,
        "u1, u2, u7, u8, u8b, u10: {}",
        r.text
    );

    for (ts, why) in [
        ("1900-01-01T00:00:00Z", "before 2000"),
        ("1970-01-01T00:00:00Z", "epoch zero"),
        ("2026-02-30T00:00:00Z", "no such day"),
    ] {
        let mut e = ev("exposure", "model_ranking", "u1", "model_a");
        e["ts"] = json!(ts);
        assert_eq!(
            app.post("/api/v1/events/exposure", e)
                .await
                .error(422)
                .1
                .as_deref(),
            Some("ts"),
            "{why}"
        );
    }
    let mut future = ev("exposure", "model_ranking", "u1", "model_a");
    future["ts"] = json!((Utc::now() + Duration::hours(1)).to_rfc3339());
    assert_eq!(
        app.post("/api/v1/events/exposure", future)
            .await
            .error(422)
            .1
            .as_deref(),
        Some("ts")
    );
    let r = app
        .get("/api/v1/experiments/model_ranking/timeseries?interval=day")
        .await;
    assert!(
        !r.text.contains("1900") && !r.text.contains("1970"),
        "{}",
        r.text
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn conversions_name_their_metric_and_carry_no_value(db: PgPool) {
    let app = App::new(db.clone());
    world(&app).await;
    let c = json!({"experiment": "model_ranking", "unit_id": "u1", "variant_key": "model_a"});
    let r = app.post("/api/v1/events/conversion", c.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        r.json()["metric"],
        "conversion",
        "the default is said, not silent: {}",
        r.text
    );
    for value in [json!(-5), json!(1), json!(0)] {
        let mut with_value = c.clone();
        with_value["value"] = value;
        let r = app.post("/api/v1/events/conversion", with_value).await;
        assert_eq!(r.error(422).1.as_deref(), Some("value"));
        assert!(r.text.contains("metric event"), "{}", r.text);
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn event_errors_speak_json_not_rust(db: PgPool) {
    let app = App::new(db.clone());
    world(&app).await;
    let good = metric("model_ranking", "u1", "model_a", 1.0);
    let with = |k: &str, v: Value| {
        let mut e = good.clone();
        e[k] = v;
        e
    };
    let batch = json!({"events": [good.clone(), with("value", json!("12")), with("unit_id", json!(5)), with("kind", json!("click")),
                                   with("ts", json!(17)), json!("not an object"), with("metric", json!(["a"])), with("vlaue", json!(1))]});
    let r = app.post("/api/v1/events/batch", batch).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let v = r.json();
    let got: Vec<(i64, &str, &str)> = v["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|x| {
            (
                x["index"].as_i64().unwrap_or(-1),
                x["field"].as_str().unwrap_or("-"),
                x["message"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        got.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>(),
        [
            (1, "events[1].value"),
            (2, "events[2].unit_id"),
            (3, "events[3].kind"),
            (4, "events[4].ts"),
            (5, "events[5]"),
            (6, "events[6].metric"),
            (7, "events[7].vlaue"),
        ]
    );
    assert_eq!(got[0].2, "must be a number");
    assert_eq!(got[1].2, "must be a string");
    assert_eq!(got[2].2, "must be one of exposure, metric, conversion");
    for (_, _, message) in &got {
        for rust in [
            "f64",
            "String",
            "invalid type",
            "struct",
            "Option",
            "line 1",
        ] {
            assert!(!message.contains(rust), "{message}");
        }
    }
}
