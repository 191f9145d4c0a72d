//! The ingest triggers (migration 0003) under concurrency and out-of-order arrival: whatever the
//! interleaving, the materialised per-unit rows equal a recomputation from raw events, and the
//! per-arm statistics equal the sum of the per-unit rows.

mod common;

use axum::http::StatusCode;
use common::App;
use litmus_control_plane::MIGRATOR;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Deterministic shuffle (no RandomState): a 64-bit LCG.
fn shuffle(v: &mut [Value], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        v.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

fn events(round: u64) -> Vec<Value> {
    let mut out = Vec::new();
    for u in 0..80u64 {
        let unit = format!("r{round}-u{}", u % 60); // some units recur across rounds
        let ev = |kind: &str, variant: &str, metric: Option<&str>, value: Option<f64>, minute: u64| {
            let mut e = json!({"kind": kind, "experiment": "model_ranking", "unit_id": unit, "variant_key": variant,
                               "ts": format!("2026-03-01T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60)});
            if let Some(m) = metric { e["metric"] = json!(m); }
            if let Some(v) = value { e["value"] = json!(v); }
            e
        };
        let first = 60 + (u * 7) % 120;
        // Two exposures, the later one to the other arm: the earlier must win whenever it lands.
        out.push(ev("exposure", "model_b", None, None, first + 30));
        out.push(ev("exposure", "model_a", None, None, first));
        for k in 0..4 {
            // Metric events on both sides of both exposures: every re-split path.
            let minute = first - 40 + k * 25;
            out.push(ev("metric", "model_a", Some("order_value"), Some((u * 3 + k) as f64 % 17.0), minute));
        }
        if u % 3 == 0 {
            out.push(ev("conversion", "model_a", Some("purchase"), None, first + 10));
        }
    }
    out
}

async fn check_consistency(db: &PgPool) {
    litmus_control_plane::rollup::catch_up(db).await.expect("rollup");
    let (bad_units,): (i64,) = sqlx::query_as(
        "WITH raw AS (
             SELECT e.experiment_id, e.unit_id, e.kind, e.metric, x.variant_key, x.first_ts,
                    count(*) FILTER (WHERE e.ts >= x.first_ts) AS post_n, coalesce(sum(e.value) FILTER (WHERE e.ts >= x.first_ts), 0) AS post_sum,
                    count(*) FILTER (WHERE e.ts < x.first_ts) AS pre_n, coalesce(sum(e.value) FILTER (WHERE e.ts < x.first_ts), 0) AS pre_sum
             FROM events e JOIN unit_exposures x USING (experiment_id, unit_id)
             WHERE e.kind IN (2, 3) GROUP BY 1, 2, 3, 4, 5, 6
         )
         SELECT count(*) FROM raw FULL JOIN (SELECT * FROM unit_metrics WHERE kind IN (2, 3) AND variant_key IS NOT NULL) um
             USING (experiment_id, unit_id, kind, metric)
         WHERE um.unit_id IS NULL OR raw.unit_id IS NULL OR um.stale OR um.variant_key <> raw.variant_key OR um.split_ts <> raw.first_ts
            OR um.post_n <> raw.post_n OR abs(um.post_sum - raw.post_sum) > 1e-9 OR um.pre_n <> raw.pre_n OR abs(um.pre_sum - raw.pre_sum) > 1e-9",
    ).fetch_one(db).await.expect("query");
    assert_eq!(bad_units, 0, "unit_metrics disagrees with raw events");
    let (bad_exposures,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM unit_exposures x FULL JOIN (SELECT * FROM unit_metrics WHERE kind = 1) um USING (experiment_id, unit_id)
         WHERE um.unit_id IS NULL OR x.unit_id IS NULL OR um.variant_key <> x.variant_key OR um.split_ts <> x.first_ts",
    ).fetch_one(db).await.expect("query");
    assert_eq!(bad_exposures, 0, "exposure markers disagree with unit_exposures");
    let (bad_arms,): (i64,) = sqlx::query_as(
        "WITH want AS (
             SELECT experiment_id, kind, metric, variant_key, count(*) AS units, sum(post_n) AS events, sum(post_sum) AS sy,
                    sum(post_sum * post_sum) AS syy, sum(pre_sum) AS sx, sum(pre_sum * post_sum) AS sxy
             FROM unit_metrics WHERE variant_key IS NOT NULL AND (kind = 1 OR post_n > 0) GROUP BY 1, 2, 3, 4
         ), got AS (
             SELECT experiment_id, kind, metric, variant_key, sum(units) AS units, sum(events) AS events, sum(sum_y) AS sy,
                    sum(sum_y2) AS syy, sum(sum_x) AS sx, sum(sum_xy) AS sxy
             FROM arm_stats GROUP BY 1, 2, 3, 4
         )
         SELECT count(*) FROM want FULL JOIN got USING (experiment_id, kind, metric, variant_key)
         WHERE coalesce(want.units, 0) <> coalesce(got.units, 0) OR coalesce(want.events, 0) <> coalesce(got.events, 0)
            OR abs(coalesce(want.sy, 0) - coalesce(got.sy, 0)) > 1e-6 OR abs(coalesce(want.syy, 0) - coalesce(got.syy, 0)) > 1e-6
            OR abs(coalesce(want.sx, 0) - coalesce(got.sx, 0)) > 1e-6 OR abs(coalesce(want.sxy, 0) - coalesce(got.sxy, 0)) > 1e-6",
    ).fetch_one(db).await.expect("query");
    assert_eq!(bad_arms, 0, "arm_stats disagrees with unit_metrics");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn concurrent_out_of_order_ingest_stays_exact(db: PgPool) {
    let app = App::new(db.clone());
    app.create(json!({"targeting": {}})).await;
    app.post("/api/v1/experiments/model_ranking/launch", json!({"ramp_pct": 100})).await;
    for round in 0..3 {
        let mut all = events(round);
        shuffle(&mut all, round + 1);
        let batches: Vec<Value> = all.chunks(23).map(|c| json!({"events": c})).collect();
        // Every batch in flight at once: the triggers of concurrent statements race on units.
        let replies = futures_util::future::join_all(batches.into_iter().map(|b| app.post("/api/v1/events/batch", b))).await;
        for r in replies {
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        }
        check_consistency(&db).await;
    }
    // And the readout built from them is the readout of the raw events.
    let res = app.get("/api/v1/experiments/model_ranking/results").await.json();
    let (units_a,): (i64,) = sqlx::query_as("SELECT count(*) FROM unit_exposures WHERE variant_key = 'model_a'").fetch_one(&db).await.expect("count");
    assert_eq!(res["variants"][0]["exposures"], units_a);
}
