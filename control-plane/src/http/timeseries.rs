//! `GET /api/v1/experiments/{id}/timeseries?interval=minute|hour|day`: cumulative per-variant
//! exposures, metric means and conversion rates at the end of each time bucket, with the same
//! unit-level definitions as the results (the cumulative-lift chart is drawn from this).
//!
//! SQL returns per-bucket increments (new exposed units, summed values, units seen with a
//! metric or conversion for the first time); cumulative sums are taken here over the buckets.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::experiments::find;
use super::{ApiError, ApiResult, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/experiments/{id}/timeseries", get(timeseries))
}

/// More buckets than a chart can show is a request for a coarser interval.
const MAX_POINTS: usize = 5000;

#[derive(Debug, Deserialize)]
struct TimeseriesQuery {
    interval: Option<String>,
}

#[derive(Debug, Serialize)]
struct Timeseries {
    interval: String,
    points: Vec<Point>,
}

#[derive(Debug, Serialize)]
struct Point {
    t: DateTime<Utc>,
    variants: BTreeMap<String, VariantPoint>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct VariantPoint {
    exposures: i64,
    metrics: BTreeMap<String, MetricPoint>,
    conversions: BTreeMap<String, ConversionPoint>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct MetricPoint {
    units: i64,
    mean: Option<f64>,
    #[serde(skip)]
    sum: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct ConversionPoint {
    units: i64,
    rate: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
enum Field {
    Exposures,
    MetricSum,
    MetricUnits,
    Converters,
}

/// One increment: (bucket, variant, metric or "", units, sum).
type Increment = (DateTime<Utc>, String, String, i64, f64);

async fn timeseries(State(state): State<AppState>, Path(id): Path<String>, Query(q): Query<TimeseriesQuery>) -> ApiResult<axum::Json<Timeseries>> {
    let interval = q.interval.unwrap_or_else(|| "hour".into());
    if !["minute", "hour", "day"].contains(&interval.as_str()) {
        return Err(ApiError::validation("interval", "must be minute, hour or day"));
    }
    let row = find(&state.db, &id).await?;
    let exposures: Vec<Increment> = sqlx::query_as(
        "SELECT date_trunc($2, first_ts), variant_key, '', count(*), 0::float8
         FROM unit_exposures WHERE experiment_id = $1 GROUP BY 1, 2",
    )
    .bind(row.id)
    .bind(&interval)
    .fetch_all(&state.db)
    .await?;
    // Values land in the bucket of the event; a unit counts from the bucket of its first event.
    let metric_sums: Vec<Increment> = sqlx::query_as(
        "SELECT date_trunc($2, e.ts), x.variant_key, e.metric, 0::int8, sum(e.value)
         FROM events e JOIN unit_exposures x ON x.experiment_id = e.experiment_id AND x.unit_id = e.unit_id
         WHERE e.experiment_id = $1 AND e.kind = 2 AND e.ts >= x.first_ts
         GROUP BY 1, 2, 3",
    )
    .bind(row.id)
    .bind(&interval)
    .fetch_all(&state.db)
    .await?;
    let first_seen = |kind: i16| {
        sqlx::query_as::<_, Increment>(
            "SELECT date_trunc($2, first), variant_key, metric, count(*), 0::float8
             FROM (SELECT x.variant_key, e.metric, e.unit_id, min(e.ts) AS first
                   FROM events e JOIN unit_exposures x ON x.experiment_id = e.experiment_id AND x.unit_id = e.unit_id
                   WHERE e.experiment_id = $1 AND e.kind = $3 AND e.ts >= x.first_ts
                   GROUP BY 1, 2, 3) firsts
             GROUP BY 1, 2, 3",
        )
        .bind(row.id)
        .bind(&interval)
        .bind(kind)
        .fetch_all(&state.db)
    };
    let metric_units = first_seen(2).await?;
    let converters = first_seen(3).await?;

    let mut by_bucket: BTreeMap<DateTime<Utc>, Vec<(Field, Increment)>> = BTreeMap::new();
    for (field, list) in [(Field::Exposures, exposures), (Field::MetricSum, metric_sums), (Field::MetricUnits, metric_units), (Field::Converters, converters)] {
        for inc in list {
            by_bucket.entry(inc.0).or_default().push((field, inc));
        }
    }
    if by_bucket.len() > MAX_POINTS {
        return Err(ApiError::validation("interval", format!("{} points; ask for a coarser interval", by_bucket.len())));
    }

    let mut running: BTreeMap<String, VariantPoint> =
        row.variants.0.iter().map(|v| (v.key.clone(), VariantPoint::default())).collect();
    let mut points = Vec::with_capacity(by_bucket.len());
    for (t, increments) in by_bucket {
        for (field, (_, variant, metric, units, sum)) in increments {
            let v = running.entry(variant).or_default();
            match field {
                Field::Exposures => v.exposures += units,
                Field::MetricSum => v.metrics.entry(metric).or_default().sum += sum,
                Field::MetricUnits => v.metrics.entry(metric).or_default().units += units,
                Field::Converters => v.conversions.entry(metric).or_default().units += units,
            }
        }
        for v in running.values_mut() {
            for m in v.metrics.values_mut() {
                m.mean = (m.units > 0).then(|| m.sum / m.units as f64);
            }
            let exposed = v.exposures;
            for c in v.conversions.values_mut() {
                c.rate = (exposed > 0).then(|| c.units as f64 / exposed as f64);
            }
        }
        points.push(Point { t, variants: running.clone() });
    }
    Ok(axum::Json(Timeseries { interval, points }))
}
