//! Event ingestion and results, with numbers checked by hand.

mod common;

use axum::http::{Method, StatusCode};
use common::{App, INGEST};
use litmus_control_plane::MIGRATOR;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn running(app: &App) {
    app.create(json!({"targeting": {}})).await;
    app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": 100})).await;
}

fn exposure(unit: &str, variant: &str, ts: &str) -> Value {
    json!({"kind": "exposure", "experiment": "model_ranking", "unit_id": unit, "variant_key": variant, "ts": ts})
}

fn metric(unit: &str, variant: &str, value: f64, ts: &str) -> Value {
    json!({"kind": "metric", "experiment": "model_ranking", "unit_id": unit, "variant_key": variant, "metric": "order_value", "value": value, "ts": ts})
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn single_events_and_idempotency(db: PgPool) {
    let app = App::new(db.clone());
    running(&app).await;
    let body = json!({"experiment": "model_ranking", "unit_id": "u1", "variant_key": "model_b", "event_id": "e-1"});
    let r = app.post("/api/v1/events/exposure", body.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json(), json!({"accepted": 1, "duplicates": 0}));
    assert_eq!(app.post("/api/v1/events/exposure", body).await.json(), json!({"accepted": 0, "duplicates": 1}));
    let m = json!({"experiment": "model_ranking", "unit_id": "u1", "variant_key": "model_b", "metric": "order_value", "value": 12.5});
    assert_eq!(app.post("/api/v1/events/metric", m).await.status, StatusCode::ACCEPTED);
    let c = json!({"experiment": "model_ranking", "unit_id": "u1", "variant_key": "model_b"});
    assert_eq!(app.post("/api/v1/events/conversion", c).await.status, StatusCode::ACCEPTED);
    // the edge's service token may send events
    let r = app.raw(Method::POST, "/api/v1/events/batch", Some(INGEST), Some(json!({"events": [exposure("u2", "model_a", "2026-01-01T00:00:00Z")]}).to_string())).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let (events,): (i64,) = sqlx::query_as("SELECT count(*) FROM events").fetch_one(&db).await.expect("count");
    assert_eq!(events, 4);
    let (conv_metric,): (String,) = sqlx::query_as("SELECT metric FROM events WHERE kind = 3").fetch_one(&db).await.expect("row");
    assert_eq!(conv_metric, "conversion", "conversions default to the metric `conversion`");

    // Exposures may carry the unit's attributes (for segment breakdowns); other kinds may not.
    let with_attrs = json!({"experiment": "model_ranking", "unit_id": "u7", "variant_key": "model_a", "attributes": {"country": "CA", "note": "tab\there \"quoted\""}});
    assert_eq!(app.post("/api/v1/events/exposure", with_attrs).await.status, StatusCode::ACCEPTED);
    let m = json!({"experiment": "model_ranking", "unit_id": "u7", "variant_key": "model_a", "metric": "m", "value": 1, "attributes": {"x": 1}});
    assert_eq!(app.post("/api/v1/events/metric", m).await.error(422).1.as_deref(), Some("attributes"));
    app.get("/api/v1/experiments/model_ranking/results").await; // applies pending events
    let (attrs,): (Value,) = sqlx::query_as("SELECT attributes FROM unit_exposures WHERE unit_id = 'u7'").fetch_one(&db).await.expect("row");
    assert_eq!(attrs, json!({"country": "CA", "note": "tab\there \"quoted\""}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn single_event_errors(db: PgPool) {
    let app = App::new(db.clone());
    running(&app).await;
    let base = json!({"experiment": "model_ranking", "unit_id": "u1", "variant_key": "model_b", "metric": "m", "value": 1.0});
    let with = |k: &str, v: Value| { let mut b = base.clone(); b[k] = v; b };
    assert_eq!(app.post("/api/v1/events/metric", with("experiment", json!("nope"))).await.error(404).0, "not_found");
    assert_eq!(app.post("/api/v1/events/metric", with("variant_key", json!("model_z"))).await.error(422).1.as_deref(), Some("variant_key"));
    assert_eq!(app.post("/api/v1/events/metric", with("value", Value::Null)).await.error(422).1.as_deref(), Some("value"));
    assert_eq!(app.post("/api/v1/events/metric", with("value", json!("12"))).await.error(422).1.as_deref(), Some("value"));
    assert_eq!(app.post("/api/v1/events/metric", with("unit_id", json!(""))).await.error(422).1.as_deref(), Some("unit_id"));
    assert_eq!(app.post("/api/v1/events/metric", with("ts", json!("yesterday"))).await.error(422).1.as_deref(), Some("ts"));
    assert_eq!(app.post("/api/v1/events/metric", with("ts", json!("2999-01-01T00:00:00Z"))).await.error(422).1.as_deref(), Some("ts"));
    assert_eq!(app.post("/api/v1/events/metric", with("kind", json!("exposure"))).await.error(422).1.as_deref(), Some("kind"));
    let (events,): (i64,) = sqlx::query_as("SELECT count(*) FROM events").fetch_one(&db).await.expect("count");
    assert_eq!(events, 0, "rejected events leave no trace");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn batch_lands_the_good_and_names_the_bad(db: PgPool) {
    let app = App::new(db.clone());
    running(&app).await;
    let events = json!({"events": [
        exposure("u1", "model_a", "2026-01-01T00:00:00Z"),
        {"kind": "exposure", "experiment": "model_ranking", "unit_id": "u2"},
        {"kind": "click", "experiment": "model_ranking", "unit_id": "u2", "variant_key": "model_a"},
        metric("u1", "model_a", 3.0, "2026-01-01T00:01:00Z"),
        {"kind": "metric", "experiment": "ghost", "unit_id": "u2", "variant_key": "model_a", "metric": "m", "value": 1},
        {"kind": "exposure", "experiment": "model_ranking", "unit_id": "u3", "variant_key": "model_b", "event_id": "dup"},
        {"kind": "exposure", "experiment": "model_ranking", "unit_id": "u3", "variant_key": "model_b", "event_id": "dup"}
    ]});
    let r = app.post("/api/v1/events/batch", events.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let v = r.json();
    assert_eq!((v["accepted"].as_u64(), v["duplicates"].as_u64()), (Some(3), Some(1)));
    let rejected: Vec<(u64, String)> = v["rejected"].as_array().expect("rejected").iter()
        .map(|x| (x["index"].as_u64().unwrap_or(99), x["code"].as_str().unwrap_or("").to_owned())).collect();
    assert_eq!(rejected, [(1, "validation_failed".into()), (2, "validation_failed".into()), (4, "not_found".into())]);
    // redelivery of the whole batch: nothing new (the events without ids got fresh ones and count again)
    let again = app.post("/api/v1/events/batch", json!({"events": [events["events"][5].clone()]})).await.json();
    assert_eq!((again["accepted"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(1)));

    let all_bad = app.post("/api/v1/events/batch", json!({"events": [{"kind": "exposure"}]})).await;
    assert_eq!(all_bad.error(422).0, "validation_failed");
    assert!(all_bad.json()["rejected"].is_array());
    let too_many: Vec<Value> = (0..10_001).map(|i| json!({"i": i})).collect();
    assert_eq!(app.post("/api/v1/events/batch", json!({"events": too_many})).await.error(413).0, "payload_too_large");
    assert_eq!(app.post("/api/v1/events/batch", json!({"events": []})).await.json(), json!({"accepted": 0, "duplicates": 0}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn exposure_groups_are_counted_before_they_are_expanded(db: PgPool) {
    let app = App::new(db.clone());
    running(&app).await;
    let group = |n: usize, attributes: Value| json!({"id": "0193a8f2-7c4e-7b21-9f3a-5d6e7f809102", "unit_id": "u1",
        "ts": "2026-01-01T00:05:00Z", "attributes": attributes,
        "exposures": (0..n).map(|_| json!(["model_ranking", "model_a"])).collect::<Vec<_>>()});
    // One group asking for more exposures than a request can give, or carrying attributes past
    // the limit: refused by name, nothing stored.
    let r = app.post("/api/v1/events/batch", json!({"exposures": [group(1001, json!(null))]})).await;
    assert_eq!(r.error(422).1.as_deref(), Some("exposures[0].exposures"));
    let r = app.post("/api/v1/events/batch", json!({"exposures": [group(1, json!({"a": "x".repeat(5000)}))]})).await;
    assert_eq!(r.error(422).1.as_deref(), Some("exposures[0].attributes"));
    // Groups adding up past the batch limit: 413 before any is expanded (11 × 1000 with 4 KiB
    // of attributes each would be 45 MB of events from a 120 KB body).
    let big = json!({"a": "x".repeat(4000)});
    let groups: Vec<Value> = (0..11).map(|_| group(1000, big.clone())).collect();
    assert_eq!(app.post("/api/v1/events/batch", json!({"exposures": groups})).await.error(413).0, "payload_too_large");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM events").fetch_one(&db).await.expect("count");
    assert_eq!(n, 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn exposure_groups_land_as_their_events_numbered_after_events(db: PgPool) {
    let app = App::new(db.clone());
    running(&app).await;
    let id = "0193a8f2-7c4e-7b21-9f3a-5d6e7f809102";
    let group = |unit: &str, id: &str, pairs: Value| json!({"id": id, "unit_id": unit, "ts": "2026-01-01T00:05:00Z",
        "attributes": {"country": "DE"}, "exposures": pairs});
    let mut order = metric("u1", "model_a", 2.0, "2026-01-01T00:06:00Z");
    order["event_id"] = json!("order-1");
    let body = json!({
        "events": [order],
        "exposures": [
            group("u1", id, json!([["model_ranking", "model_a"], ["ghost", "model_a"]])),
            group("u2", "0193a8f2-7c4e-7b21-9f3a-5d6e7f809202", json!([])),
            group("u3", "0193a8f2-7c4e-7b21-9f3a-5d6e7f809302", json!([["model_ranking", "model_z"], ["model_ranking", "model_b"]])),
        ],
    });
    let r = app.post("/api/v1/events/batch", body.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let v = r.json();
    assert_eq!((v["accepted"].as_u64(), v["duplicates"].as_u64()), (Some(3), Some(0)));
    let rejected: Vec<(u64, String)> = v["rejected"].as_array().expect("rejected").iter()
        .map(|x| (x["index"].as_u64().unwrap_or(99), x["field"].as_str().unwrap_or("").to_owned())).collect();
    assert_eq!(rejected, [(2, "exposures[0].exposures[1].experiment".to_owned()), (3, "exposures[2].exposures[0].variant_key".to_owned())]);
    // Ids are the group's, its position folded in (litmus_shared::exposures::nth_id), and the
    // attributes travel with each event.
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT event_id, unit_id, attributes->>'country' FROM events WHERE kind = 1 ORDER BY unit_id, event_id").fetch_all(&db).await.expect("rows");
    assert_eq!(rows, [
        (id.to_owned(), "u1".to_owned(), Some("DE".to_owned())),
        ("0193a8f2-7c4e-7b21-9f3a-5d6e7f809303".to_owned(), "u3".to_owned(), Some("DE".to_owned())),
    ]);
    // Redelivered, nothing new.
    let again = app.post("/api/v1/events/batch", body).await.json();
    assert_eq!((again["accepted"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(3)));

    // A malformed group refuses the body, naming the member; nothing lands.
    let bad = app.post("/api/v1/events/batch", json!({"exposures": [group("u9", id, json!([["model_ranking"]]))]})).await;
    assert_eq!(bad.error(422).1.as_deref(), Some("exposures[0].exposures[0]"));
    let bad = app.post("/api/v1/events/batch", json!({"exposures": [{"unit_id": "u9"}]})).await;
    assert_eq!(bad.error(422).1.as_deref(), Some("exposures[0]"));
    // The 10 000-event bound counts a group's exposures.
    let pairs: Vec<Value> = (0..100).map(|_| json!(["model_ranking", "model_a"])).collect();
    let groups: Vec<Value> = (0..101).map(|i| group(&format!("u{i}"), id, json!(pairs))).collect();
    assert_eq!(app.post("/api/v1/events/batch", json!({"exposures": groups})).await.error(413).0, "payload_too_large");
    let (events,): (i64,) = sqlx::query_as("SELECT count(*) FROM events").fetch_one(&db).await.expect("count");
    assert_eq!(events, 3);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_partly_redelivered_batch_lands_only_its_new_events(db: PgPool) {
    let app = App::new(db.clone());
    running(&app).await;
    let with_id = |mut e: Value, id: &str| { e["event_id"] = json!(id); e };
    let uuid = "0193a8f2-7c4e-7b21-9f3a-5d6e7f809102";
    let first = json!({"events": [
        with_id(exposure("u1", "model_a", "2026-01-01T00:05:00Z"), uuid),
        with_id(metric("u1", "model_a", 2.0, "2026-01-01T00:06:00Z"), "order-17"),
    ]});
    assert_eq!(app.post("/api/v1/events/batch", first).await.json(), json!({"accepted": 2, "duplicates": 0}));
    // The same two again, with an earlier exposure of u1 (another variant) and a new metric.
    let second = json!({"events": [
        with_id(metric("u1", "model_a", 2.0, "2026-01-01T00:06:00Z"), "order-17"),
        with_id(exposure("u1", "model_b", "2026-01-01T00:01:00Z"), "late-but-earlier"),
        with_id(exposure("u1", "model_a", "2026-01-01T00:05:00Z"), uuid),
        with_id(metric("u1", "model_a", 5.0, "2026-01-01T00:07:00Z"), "order-18"),
    ]});
    assert_eq!(app.post("/api/v1/events/batch", second).await.json(), json!({"accepted": 2, "duplicates": 2}));
    let ids: Vec<(String,)> = sqlx::query_as("SELECT event_id FROM events ORDER BY event_id").fetch_all(&db).await.expect("ids");
    let ids: Vec<&str> = ids.iter().map(|(i,)| i.as_str()).collect();
    assert_eq!(ids, [uuid, "late-but-earlier", "order-17", "order-18"]);
    let (variant, first_ts): (String, String) =
        sqlx::query_as("SELECT variant_key, to_char(first_ts AT TIME ZONE 'UTC', 'HH24:MI') FROM unit_exposures WHERE unit_id = 'u1'")
            .fetch_one(&db).await.expect("exposure");
    assert_eq!((variant.as_str(), first_ts.as_str()), ("model_b", "00:01"), "the earliest exposure wins");
    let (keys,): (i64,) = sqlx::query_as("SELECT count(*) FROM event_ids").fetch_one(&db).await.expect("keys");
    assert_eq!(keys, 4);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_id_sent_first_by_someone_else_claims_nothing(db: PgPool) {
    let app = App::new(db.clone());
    running(&app).await;
    // Someone learnt the id u1's client will use and sent it first: for another unit, and for u1
    // with another value.
    let id = "0193a8f2-7c4e-7b21-9f3a-5d6e7f809102";
    let with_id = |mut e: Value, id: &str| { e["event_id"] = json!(id); e };
    let squat = json!({"events": [
        with_id(metric("u2", "model_a", 0.0, "2026-01-01T00:06:00Z"), id),
        with_id(metric("u1", "model_a", 0.0, "2026-01-01T00:06:00Z"), id),
    ]});
    assert_eq!(app.post("/api/v1/events/batch", squat).await.json(), json!({"accepted": 2, "duplicates": 0}));
    // The real event still counts; sent again, it is a duplicate.
    let real = json!({"events": [with_id(metric("u1", "model_a", 42.0, "2026-01-01T00:06:00Z"), id)]});
    assert_eq!(app.post("/api/v1/events/batch", real.clone()).await.json(), json!({"accepted": 1, "duplicates": 0}));
    assert_eq!(app.post("/api/v1/events/batch", real).await.json(), json!({"accepted": 0, "duplicates": 1}));
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM events WHERE unit_id = 'u1' AND value = 42").fetch_one(&db).await.expect("count");
    assert_eq!(n, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn concurrent_batches_sharing_ids_store_each_event_once(db: PgPool) {
    let app = App::new(db.clone());
    running(&app).await;
    // Eight batches of 200 over 400 ids, overlapping each other in different orders.
    let batch = |k: usize| {
        let mut ids: Vec<usize> = (k * 50..k * 50 + 200).map(|i| i % 400).collect();
        if k % 2 == 1 { ids.reverse(); }
        let events: Vec<Value> = ids.iter().map(|i| {
            let mut e = metric(&format!("u{}", i % 50), "model_a", 1.0, "2026-01-01T00:00:00Z");
            e["event_id"] = json!(format!("ev-{i}"));
            e
        }).collect();
        json!({"events": events})
    };
    let answers = futures_util::future::join_all((0..8).map(|k| app.post("/api/v1/events/batch", batch(k)))).await;
    let mut accepted = 0;
    for r in &answers {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let v = r.json();
        assert_eq!(v["accepted"].as_u64().unwrap_or(0) + v["duplicates"].as_u64().unwrap_or(0), 200);
        accepted += v["accepted"].as_u64().unwrap_or(0);
    }
    let (stored, distinct): (i64, i64) = sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM events").fetch_one(&db).await.expect("count");
    assert_eq!((stored, distinct, accepted), (400, 400, 400));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn results_follow_the_unit_level_definitions(db: PgPool) {
    let app = App::new(db);
    running(&app).await;
    let t = |m: u32| format!("2026-03-01T10:{m:02}:00Z");
    let mut events = vec![
        // u1: control; two exposures (counted once); metric before exposure ignored; 10 + 20 after
        exposure("u1", "model_a", &t(5)), exposure("u1", "model_a", &t(9)),
        metric("u1", "model_a", 1000.0, &t(1)), metric("u1", "model_a", 10.0, &t(6)), metric("u1", "model_a", 20.0, &t(7)),
        // u2: control, value 40
        exposure("u2", "model_a", &t(5)), metric("u2", "model_a", 40.0, &t(8)),
        // u3: control, exposed, no metric, converts
        exposure("u3", "model_a", &t(5)),
        // u4: first exposed to model_b, later to model_a: belongs to model_b; value 5 + 7
        exposure("u4", "model_a", &t(30)), exposure("u4", "model_b", &t(10)),
        metric("u4", "model_a", 5.0, &t(31)), metric("u4", "model_b", 7.0, &t(11)),
        // u5, u6: model_b, values 1 and 3
        exposure("u5", "model_b", &t(5)), metric("u5", "model_b", 1.0, &t(6)),
        exposure("u6", "model_b", &t(5)), metric("u6", "model_b", 3.0, &t(6)),
        // never exposed: ignored entirely
        metric("u9", "model_b", 999.0, &t(6)),
    ];
    for (unit, variant, m) in [("u3", "model_a", 12), ("u1", "model_a", 12), ("u5", "model_b", 12), ("u1", "model_a", 13)] {
        events.push(json!({"kind": "conversion", "experiment": "model_ranking", "unit_id": unit, "variant_key": variant, "metric": "purchase", "ts": t(m)}));
    }
    // a conversion before exposure does not count
    events.push(json!({"kind": "conversion", "experiment": "model_ranking", "unit_id": "u6", "variant_key": "model_b", "metric": "purchase", "ts": t(1)}));
    let r = app.post("/api/v1/events/batch", json!({"events": events})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);

    let res = app.get("/api/v1/experiments/model_ranking/results").await.json();
    assert_eq!((res["experiment"].as_str(), res["status"].as_str(), res["control"].as_str()), (Some("model_ranking"), Some("running"), Some("model_a")));
    let a = &res["variants"][0];
    let b = &res["variants"][1];
    assert_eq!((a["key"].as_str(), a["exposures"].as_i64(), a["weight"].as_f64()), (Some("model_a"), Some(3), Some(0.5)));
    assert_eq!((b["key"].as_str(), b["exposures"].as_i64()), (Some("model_b"), Some(3)));
    // control: units u1 (30), u2 (40) → mean 35, sample std √50; count 3 events
    let am = &a["metrics"]["order_value"];
    assert_eq!((am["units"].as_i64(), am["count"].as_i64(), am["sum"].as_f64(), am["mean"].as_f64()), (Some(2), Some(3), Some(70.0), Some(35.0)));
    assert!((am["std"].as_f64().expect("std") - 50f64.sqrt()).abs() < 1e-9);
    // model_b: u4 (12), u5 (1), u6 (3) → mean 16/3
    let bm = &b["metrics"]["order_value"];
    assert_eq!((bm["units"].as_i64(), bm["count"].as_i64(), bm["sum"].as_f64()), (Some(3), Some(4), Some(16.0)));
    let var_b = ((12.0f64 - 16.0 / 3.0).powi(2) + (1.0f64 - 16.0 / 3.0).powi(2) + (3.0f64 - 16.0 / 3.0).powi(2)) / 2.0;
    assert!((bm["std"].as_f64().expect("std") - var_b.sqrt()).abs() < 1e-9);
    // conversions: control u1, u3 of 3 exposed; model_b u5 of 3
    assert_eq!(a["conversions"]["purchase"], json!({"units": 2, "rate": 2.0 / 3.0}));
    assert_eq!(b["conversions"]["purchase"], json!({"units": 1, "rate": 1.0 / 3.0}));

    let lift = res["lift"].as_array().expect("lift");
    let mean = lift.iter().find(|l| l["metric"] == "order_value").expect("mean lift");
    assert_eq!((mean["kind"].as_str(), mean["test"].as_str(), mean["variant"].as_str()), (Some("mean"), Some("welch_t"), Some("model_b")));
    assert!((mean["abs_lift"].as_f64().expect("abs") - (16.0 / 3.0 - 35.0)).abs() < 1e-9);
    assert!((mean["rel_lift"].as_f64().expect("rel") - (16.0 / 3.0 - 35.0) / 35.0).abs() < 1e-9);
    let (lo, hi, p) = (mean["ci_low"].as_f64().expect("lo"), mean["ci_high"].as_f64().expect("hi"), mean["p_value"].as_f64().expect("p"));
    assert!(lo < -29.0 && -29.0 < hi && (0.0..=1.0).contains(&p));
    let prop = lift.iter().find(|l| l["metric"] == "purchase").expect("conversion lift");
    // 2 of 3 against 1 of 3: expected counts below 5, so Fisher's exact test runs
    // (scipy.stats.fisher_exact([[2, 1], [1, 2]]).pvalue == 1.0).
    assert_eq!((prop["kind"].as_str(), prop["test"].as_str()), (Some("proportion"), Some("fisher")));
    assert!((prop["p_value"].as_f64().expect("p") - 1.0).abs() < 1e-12);
    assert!((prop["abs_lift"].as_f64().expect("abs") + 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(res["srm"]["observed"], json!([3, 3]));
    assert_eq!(res["srm"]["expected"], json!([0.5, 0.5]));
    assert!((res["srm"]["p_value"].as_f64().expect("p") - 1.0).abs() < 1e-12);

    let csv = app.get("/api/v1/experiments/model_ranking/results?format=csv").await;
    assert!(csv.headers["content-type"].to_str().expect("ascii").starts_with("text/csv"));
    assert!(csv.text.starts_with("experiment,variant,weight,exposures,metric"));
    assert!(csv.text.contains("model_ranking,model_b,0.5,3,order_value,mean,3,4,16,"), "{}", csv.text);
    let md = app.get("/api/v1/experiments/model_ranking/results?format=md").await;
    assert!(md.text.contains("# Model Ranking Test") && md.text.contains("| `model_b` |"), "{}", md.text);
    assert_eq!(app.get("/api/v1/experiments/model_ranking/results?format=xml").await.error(422).1.as_deref(), Some("format"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn results_without_data_have_no_nan(db: PgPool) {
    let app = App::new(db);
    running(&app).await;
    let r = app.get("/api/v1/experiments/model_ranking/results").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text.contains("NaN"));
    let v = r.json();
    assert_eq!(v["srm"], Value::Null);
    assert_eq!(v["variants"][0]["exposures"], 0);
    // one unit per arm: a mean exists, a test does not
    app.post("/api/v1/events/batch", json!({"events": [exposure("u1", "model_a", "2026-01-01T00:00:00Z"), metric("u1", "model_a", 2.0, "2026-01-01T00:00:01Z"),
                                                        exposure("u2", "model_b", "2026-01-01T00:00:00Z"), metric("u2", "model_b", 3.0, "2026-01-01T00:00:01Z")]})).await;
    let v = app.get("/api/v1/experiments/model_ranking/results").await.json();
    let l = &v["lift"][0];
    assert_eq!((l["control_value"].as_f64(), l["variant_value"].as_f64(), l["abs_lift"].as_f64()), (Some(2.0), Some(3.0), Some(1.0)));
    assert!(l["p_value"].is_null() && l["note"].as_str().is_some_and(|n| n.starts_with("not enough data")));
    assert_eq!(app.get("/api/v1/experiments/nope/results").await.error(404).0, "not_found");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn edge_config_holds_live_experiments_but_no_drafts(db: PgPool) {
    let app = App::new(db);
    app.create(json!({})).await;
    app.create(json!({"key": "second"})).await;
    app.create(json!({"key": "third"})).await;
    app.post("/api/v1/experiments/second/launch", json!({"ramp_pct": 30})).await;
    app.post("/api/v1/experiments/third/launch", json!({"ramp_pct": 30})).await;
    app.post("/api/v1/experiments/third/pause", json!({})).await;
    let v = app.get("/api/v1/edge/config").await.json();
    let exps = v["config"]["experiments"].as_array().expect("experiments");
    let summary: Vec<(&str, &str)> = exps.iter().map(|e| (e["key"].as_str().unwrap_or(""), e["status"].as_str().unwrap_or(""))).collect();
    assert_eq!(summary, [("second", "running"), ("third", "paused")], "drafts stay home; paused ones answer `not_running`");
    assert_eq!(exps[0]["ramp_pct"], 30.0);
    let set: litmus_shared::ConfigSet = serde_json::from_value(v["config"].clone()).expect("the edge can parse it");
    assert!(set.experiments.iter().all(|e| e.validate().is_ok()));
    let paused = litmus_shared::assign(&set.experiments[1], "u1", &litmus_shared::Attributes::new());
    assert_eq!((paused.in_experiment, paused.reason), (false, litmus_shared::Reason::NotRunning));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn partitions_are_created_ahead(db: PgPool) {
    litmus_control_plane::partitions::maintain(&db, 30).await.expect("maintain");
    litmus_control_plane::partitions::maintain(&db, 30).await.expect("idempotent");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass AND inhrelid::regclass::text LIKE 'events_p%'")
        .fetch_one(&db).await.expect("count");
    assert_eq!(n, 9);
    let app = App::new(db.clone());
    running(&app).await;
    app.post("/api/v1/events/exposure", json!({"experiment": "model_ranking", "unit_id": "u", "variant_key": "model_a"})).await;
    let (in_default,): (i64,) = sqlx::query_as("SELECT count(*) FROM events_default").fetch_one(&db).await.expect("count");
    assert_eq!(in_default, 0, "today's events land in today's partition");
}
