//! End to end: per-unit data from the reference fixture, sent as events through the HTTP API (in
//! an order that exercises the ingest triggers' re-split and raw-recompute paths), must come back
//! from `GET .../results` with the numbers scipy computed. Also `POST /api/v1/sample-size`.

mod common;

use axum::http::StatusCode;
use common::App;
use litmus_control_plane::MIGRATOR;
use litmus_control_plane::stats::proportions;
use serde_json::{Value, json};
use sqlx::PgPool;

fn fixture(name: &str) -> Value {
    let doc: Value = serde_json::from_str(include_str!("fixtures/stats/reference.json")).expect("JSON");
    doc["datasets"].as_array().expect("datasets").iter().find(|d| d["name"] == name).cloned().expect("dataset")
}

#[track_caller]
fn close(what: &str, got: &Value, want: &Value) {
    let (g, w) = (got.as_f64().unwrap_or_else(|| panic!("{what}: got {got}")), want.as_f64().expect("reference"));
    assert!((g - w).abs() <= 1e-6 * w.abs() + 1e-9, "{what}: got {g}, want {w}");
}

fn ts(minute: i64) -> String {
    (chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").expect("ts") + chrono::Duration::minutes(minute)).to_rfc3339()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn results_match_scipy_through_the_api(db: PgPool) {
    let app = App::new(db.clone());
    let ds = fixture("three_arms");
    let arms = ds["arms"].as_array().expect("arms");
    let w: f64 = 1.0 / 3.0;
    let variants: Vec<Value> = arms.iter().enumerate().map(|(i, a)| {
        let weight = if i == 2 { 1.0 - 2.0 * ((w * 1e7).round() / 1e7) } else { (w * 1e7).round() / 1e7 };
        json!({"key": a["key"], "name": a["key"], "weight": weight, "config_json": {}})
    }).collect();
    app.create(json!({"targeting": {}, "variants": variants})).await;
    app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": 100})).await;

    // Even units: metrics (before and after exposure) arrive before the exposure itself, so the
    // trigger first files everything as pre-exposure and must re-split on the exposure.
    let (mut early, mut late) = (Vec::new(), Vec::new());
    let mut converted = Vec::new();
    for a in arms {
        let key = a["key"].as_str().expect("key");
        let mut conv = 0;
        for (u, (y, x)) in a["values"].as_array().expect("v").iter().zip(a["pre"].as_array().expect("p")).enumerate() {
            let unit = format!("{key}-{u}");
            let ev = |kind: &str, metric: Option<&str>, value: Option<&Value>, minute: i64| {
                let mut e = json!({"kind": kind, "experiment": "model_ranking", "unit_id": unit, "variant_key": key, "ts": ts(minute)});
                if let Some(m) = metric { e["metric"] = json!(m); }
                if let Some(v) = value { e["value"] = v.clone(); }
                e
            };
            let metrics = [ev("metric", Some("order_value"), Some(x), -60), ev("metric", Some("order_value"), Some(y), 5)];
            let exposure = ev("exposure", None, None, 0);
            if u % 2 == 0 { early.extend(metrics); late.push(exposure) } else { early.push(exposure); late.extend(metrics) }
            // A few converters per arm: small counts, so the table test must be Fisher's.
            if u % 37 == 0 {
                late.push(ev("conversion", Some("purchase"), None, 9));
                conv += 1;
            }
        }
        converted.push((conv as f64, a["values"].as_array().expect("v").len() as f64));
    }
    for chunk in early.chunks(150).chain(late.chunks(150)) {
        let r = app.post("/api/v1/events/batch", json!({"events": chunk})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }

    let res = app.get("/api/v1/experiments/model_ranking/results").await.json();
    assert!(!res.to_string().contains("NaN"));
    for (i, a) in arms.iter().enumerate() {
        let n = a["values"].as_array().expect("v").len() as i64;
        assert_eq!(res["variants"][i]["exposures"], n);
        assert_eq!(res["variants"][i]["metrics"]["order_value"]["units"], n);
    }
    for comp in ds["comparisons"].as_array().expect("comparisons") {
        let l = res["lift"].as_array().expect("lift").iter()
            .find(|l| l["metric"] == "order_value" && l["variant"] == comp["variant"]).expect("lift row");
        let at = |m: &str| format!("{}/{m}", comp["variant"]);
        assert_eq!(l["test"], "welch_t");
        close(&at("abs"), &l["abs_lift"], &comp["welch"]["abs_lift"]);
        close(&at("p"), &l["p_value"], &comp["welch"]["p_value"]);
        close(&at("ci_low"), &l["ci_low"], &comp["welch"]["ci_low"]);
        close(&at("ci_high"), &l["ci_high"], &comp["welch"]["ci_high"]);
        close(&at("rel ci"), &l["rel_ci_low"], &comp["rel_ci"][0]);
        close(&at("U"), &l["mann_whitney"]["u"], &comp["mann_whitney"]["u"]);
        close(&at("MW p"), &l["mann_whitney"]["p_value"], &comp["mann_whitney"]["p_value"]);
        close(&at("cliff"), &l["mann_whitney"]["cliffs_delta"], &comp["mann_whitney"]["cliffs_delta"]);
        close(&at("hedges"), &l["effect_size"]["hedges_g"], &comp["effect"]["hedges_g"]);
        close(&at("cuped theta"), &l["cuped"]["theta"], &comp["cuped"]["theta"]);
        close(&at("cuped p"), &l["cuped"]["p_value"], &comp["cuped"]["p_value"]);
        close(&at("cuped reduction"), &l["cuped"]["variance_reduction"], &comp["cuped"]["variance_reduction"]);
        close(&at("always-valid p"), &l["sequential"]["p_value"], &comp["sequential"]["p_value"]);
        close(&at("always-valid low"), &l["sequential"]["ci_low"], &comp["sequential"]["ci_low"]);
        close(&at("P(beats)"), &l["bayesian"]["prob_beats_control"], &comp["bayes"]["prob_beats_control"]);
        assert!(l["p_value_holm"].as_f64().expect("holm") >= l["p_value"].as_f64().expect("p"));
        let (lo, hi) = (l["bootstrap"]["ci_low"].as_f64().expect("lo"), l["bootstrap"]["ci_high"].as_f64().expect("hi"));
        let want: Vec<f64> = comp["bootstrap"].as_array().expect("b").iter().map(|v| v.as_f64().expect("n")).collect();
        // 256 hash buckets of ~1.8 units each: a block bootstrap, so a looser 20 % of the width.
        assert!((lo - want[0]).abs() < 0.2 * (want[1] - want[0]) && (hi - want[1]).abs() < 0.2 * (want[1] - want[0]), "{lo} {hi} {want:?}");
    }
    let best = &res["bayesian"].as_array().expect("bayesian")[0]["prob_best"];
    for (i, a) in arms.iter().enumerate() {
        close("P(best)", &best[a["key"].as_str().expect("key")], &ds["prob_best"][i]);
    }
    let conv = res["lift"].as_array().expect("lift").iter().find(|l| l["metric"] == "purchase" && l["variant"] == "b").expect("purchase");
    let want = proportions::fisher(converted[0].0, converted[0].1, converted[1].0, converted[1].1).expect("fisher");
    assert_eq!(conv["table_test"]["test"], "fisher");
    close("fisher", &conv["table_test"]["p_value"], &json!(want.p_value));

    // The materialised per-unit rows agree with a recomputation from raw events.
    let (mismatched,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM unit_metrics um
         JOIN (SELECT e.unit_id, sum(e.value) AS y FROM events e JOIN unit_exposures x USING (experiment_id, unit_id)
               WHERE e.kind = 2 AND e.ts >= x.first_ts GROUP BY 1) raw USING (unit_id)
         WHERE um.kind = 2 AND abs(um.post_sum - raw.y) > 1e-9",
    ).fetch_one(&db).await.expect("query");
    assert_eq!(mismatched, 0);

    let csv = app.get("/api/v1/experiments/model_ranking/results?format=csv").await;
    assert!(csv.text.lines().next().expect("header").ends_with("always_valid_p,prob_beats_control"), "{}", csv.text);
    let md = app.get("/api/v1/experiments/model_ranking/results?format=md").await.text;
    assert!(md.contains("Always-valid") && md.contains("P(best)"), "{md}");
    let prior = app.get("/api/v1/experiments/model_ranking/results?prior_alpha=0").await;
    assert_eq!(prior.error(422).1.as_deref(), Some("prior_alpha"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sample_size(db: PgPool) {
    let app = App::new(db);
    let r = app.post("/api/v1/sample-size", json!({"baseline_rate": 0.1, "mde": 0.02, "alpha": 0.05, "power": 0.8})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["per_variant"], 3841);
    let r = app.post("/api/v1/sample-size", json!({"baseline_rate": 0.1, "mde": 0.2, "relative": true, "variants": 3, "daily_traffic": 1000})).await.json();
    assert_eq!((r["per_variant"].as_u64(), r["total"].as_u64()), (Some(3841), Some(11523)));
    assert_eq!(r["duration_days"].as_f64(), Some(11.53));
    let m = app.post("/api/v1/sample-size", json!({"kind": "mean", "std": 10.0, "mde": 1.0})).await.json();
    assert_eq!(m["per_variant"], 1570);
    assert_eq!(app.post("/api/v1/sample-size", json!({"mde": 0.02})).await.error(422).1.as_deref(), Some("baseline_rate"));
    assert_eq!(app.post("/api/v1/sample-size", json!({"baseline_rate": 0.1, "mde": 0.0})).await.error(422).0, "validation_failed");
    assert_eq!(app.post("/api/v1/sample-size", json!({"kind": "median", "mde": 1})).await.error(422).1.as_deref(), Some("kind"));
}

/// Stores events as the ingest statement does (events + first exposures in one statement), with
/// segment attributes on exposures: what ingest will send once it accepts `attributes`.
/// kind, unit, variant, value, ts, attributes.
type Row<'a> = (i16, String, &'a str, Option<f64>, String, Option<Value>);

async fn ingest_sql(db: &PgPool, experiment: uuid::Uuid, rows: &[Row<'_>]) {
    for (i, (kind, unit, variant, value, ts, attrs)) in rows.iter().enumerate() {
        sqlx::query(
            "WITH ex AS (
                 INSERT INTO unit_exposures (experiment_id, unit_id, variant_key, first_ts)
                 SELECT $1, $3, $4, $6::timestamptz WHERE $2 = 1
                 ON CONFLICT (experiment_id, unit_id) DO UPDATE SET variant_key = excluded.variant_key, first_ts = excluded.first_ts
                 WHERE excluded.first_ts < unit_exposures.first_ts
             )
             INSERT INTO events (experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id, attributes)
             VALUES ($1, $2, $3, $4, CASE WHEN $2 = 2 THEN 'order_value' END, $5, $6::timestamptz, $7, $8)",
        )
        .bind(experiment).bind(kind).bind(unit).bind(*variant).bind(value).bind(ts).bind(format!("e{i}")).bind(attrs)
        .execute(db).await.expect("insert");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn windows_and_segments(db: PgPool) {
    let app = App::new(db.clone());
    let id: uuid::Uuid = app.create(json!({"targeting": {}})).await["id"].as_str().expect("id").parse().expect("uuid");
    let mut rows = Vec::new();
    for u in 0..40 {
        let (unit, variant) = (format!("u{u}"), if u % 2 == 0 { "model_a" } else { "model_b" });
        let country = if u % 4 < 2 { "US" } else { "DE" };
        rows.push((1, unit.clone(), variant, None, format!("2026-03-01T10:{u:02}:00Z"), Some(json!({"country": country}))));
        rows.push((2, unit.clone(), variant, Some(f64::from(u % 7) + if u % 2 == 1 { 1.5 } else { 0.0 }), format!("2026-03-01T11:{u:02}:00Z"), None));
        rows.push((2, unit, variant, Some(f64::from(u % 5)), format!("2026-03-01T09:{u:02}:00Z"), None));
    }
    ingest_sql(&db, id, &rows).await;

    let all = app.get("/api/v1/experiments/model_ranking/results").await.json();
    // A filter covering every unit goes through the per-unit path: same numbers as arm_stats.
    let wide = app.get("/api/v1/experiments/model_ranking/results?from=2026-01-01T00:00:00Z").await.json();
    assert_eq!(wide["filter"]["from"], "2026-01-01T00:00:00Z");
    for k in ["abs_lift", "p_value", "ci_low", "rel_ci_high", "p_value_holm"] {
        let (a, b) = (all["lift"][0][k].as_f64().expect(k), wide["lift"][0][k].as_f64().expect(k));
        assert!((a - b).abs() < 1e-9, "{k}: {a} vs {b}");
    }
    for k in ["u", "p_value"] {
        assert_eq!(all["lift"][0]["mann_whitney"][k], wide["lift"][0]["mann_whitney"][k]);
    }
    assert!((all["lift"][0]["cuped"]["theta"].as_f64().expect("theta") - wide["lift"][0]["cuped"]["theta"].as_f64().expect("theta")).abs() < 1e-9);

    // Cohort: units first exposed from 10:20 on.
    let late = app.get("/api/v1/experiments/model_ranking/results?from=2026-03-01T10:20:00Z&to=2026-03-01T11:00:00Z").await.json();
    assert_eq!((late["variants"][0]["exposures"].as_i64(), late["variants"][1]["exposures"].as_i64()), (Some(10), Some(10)));

    let seg = app.get("/api/v1/experiments/model_ranking/results?segment=country").await.json();
    let segments = seg["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), 2);
    let us = segments.iter().find(|s| s["value"] == "US").expect("US");
    assert_eq!(us["attribute"], "country");
    assert_eq!(us["results"]["variants"][0]["exposures"], 10);
    assert_eq!(us["results"]["variants"][0]["metrics"]["order_value"]["units"], 10);
    // u0, u4, u8, … in control: values (u % 7) after exposure.
    let want: f64 = (0..40).filter(|u| u % 4 == 0).map(|u| f64::from(u % 7)).sum::<f64>() / 10.0;
    assert!((us["results"]["variants"][0]["metrics"]["order_value"]["mean"].as_f64().expect("mean") - want).abs() < 1e-12);

    assert_eq!(app.get("/api/v1/experiments/model_ranking/results?from=yesterday").await.error(422).1.as_deref(), Some("from"));
    assert_eq!(app.get("/api/v1/experiments/model_ranking/results?tuning_n=abc").await.error(422).1.as_deref(), Some("tuning_n"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn metric_roles_and_guardrails(db: PgPool) {
    let app = App::new(db.clone());
    let metrics = json!([{"name": "order_value", "kind": "mean", "role": "primary"},
                         {"name": "latency", "kind": "mean", "role": "guardrail", "direction": "decrease"}]);
    let created = app.create(json!({"targeting": {}, "metrics": metrics})).await;
    assert_eq!((created["metrics"][0]["role"].as_str(), created["metrics"][0]["direction"].as_str()), (Some("primary"), Some("increase")));
    assert_eq!(created["metrics"][1]["direction"], "decrease");
    let bad = app.post("/api/v1/experiments", json!({"key": "x", "name": "X", "metrics": [{"name": "a"}, {"name": "a", "kind": "mean"}],
        "variants": [{"key": "a", "name": "A", "weight": 0.5, "config_json": {}}, {"key": "b", "name": "B", "weight": 0.5, "config_json": {}}]})).await;
    assert_eq!(bad.error(422).1.as_deref(), Some("metrics[1].name"));
    app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": 100})).await;
    let mut events = Vec::new();
    for u in 0..200 {
        let (unit, variant) = (format!("u{u}"), if u % 2 == 0 { "model_a" } else { "model_b" });
        let ev = |kind: &str, metric: Option<&str>, value: Option<f64>, m: u32| {
            let mut e = json!({"kind": kind, "experiment": "model_ranking", "unit_id": unit, "variant_key": variant, "ts": format!("2026-03-01T10:{m:02}:00Z")});
            if let Some(n) = metric { e["metric"] = json!(n); }
            if let Some(v) = value { e["value"] = json!(v); }
            e
        };
        events.push(ev("exposure", None, None, 0));
        // model_b is much slower: the guardrail (lower is better) must trip.
        let latency = 100.0 + f64::from(u % 10) + if u % 2 == 1 { 50.0 } else { 0.0 };
        events.push(ev("metric", Some("latency"), Some(latency), 1));
        events.push(ev("metric", Some("order_value"), Some(f64::from(u % 13)), 2));
        events.push(ev("metric", Some("clicks"), Some(f64::from(u % 3)), 3));
    }
    for chunk in events.chunks(200) {
        assert_eq!(app.post("/api/v1/events/batch", json!({"events": chunk})).await.status, StatusCode::ACCEPTED);
    }
    let res = app.get("/api/v1/experiments/model_ranking/results").await.json();
    let row = |m: &str| res["lift"].as_array().expect("lift").iter().find(|l| l["metric"] == m).cloned().expect("row");
    assert_eq!(row("order_value")["role"], "primary");
    assert_eq!(row("clicks")["role"], "secondary");
    assert_eq!((row("latency")["role"].as_str(), row("latency")["guardrail_violated"].as_bool()), (Some("guardrail"), Some(true)));
    assert!(row("order_value")["guardrail_violated"].is_null());
    let md = app.get("/api/v1/experiments/model_ranking/results?format=md").await.text;
    assert!(md.contains("Guardrail `latency` violated"), "{md}");
    let patched = app.patch("/api/v1/experiments/model_ranking", json!({"metrics": []})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let res = app.get("/api/v1/experiments/model_ranking/results").await.json();
    assert!(res["lift"].as_array().expect("lift").iter().all(|l| l["role"] == "primary"));
}
