//! `GET /api/v1/experiments/{id}/results`: per-variant exposures, metric and conversion
//! summaries, lifts with confidence intervals, and the SRM check, as JSON, CSV or Markdown.
//!
//! Unit-level definitions (the contract's): a unit belongs to the variant of its first exposure;
//! its metric value is the sum of its metric events at or after that exposure; `mean`/`std` are
//! over exposed units that have the metric; a conversion rate is converting units / exposed units.
//! Postgres aggregates to sufficient statistics; only those reach this process.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::experiments::{ExperimentRow, find};
use super::{ApiError, ApiResult, AppState};
use crate::stats::{self, Comparison, Moments, finite};

pub fn router() -> Router<AppState> {
    Router::new().route("/experiments/{id}/results", get(results))
}

const ALPHA: f64 = 0.05;

#[derive(Debug, Serialize)]
pub struct Results {
    pub experiment: String,
    pub id: String,
    pub status: String,
    pub version: i64,
    pub control: String,
    pub alpha: f64,
    pub generated_at: DateTime<Utc>,
    pub variants: Vec<VariantResult>,
    pub lift: Vec<Lift>,
    pub srm: Option<stats::srm::Srm>,
}

#[derive(Debug, Serialize)]
pub struct VariantResult {
    pub key: String,
    pub weight: f64,
    pub exposures: i64,
    pub metrics: BTreeMap<String, MetricSummary>,
    pub conversions: BTreeMap<String, ConversionSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricSummary {
    pub units: i64,
    pub count: i64,
    pub sum: f64,
    pub mean: Option<f64>,
    pub std: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversionSummary {
    pub units: i64,
    pub rate: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Lift {
    pub metric: String,
    pub kind: &'static str,
    pub control: String,
    pub variant: String,
    pub control_value: Option<f64>,
    pub variant_value: Option<f64>,
    pub abs_lift: Option<f64>,
    pub rel_lift: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub p_value: Option<f64>,
    pub test: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Lift {
    fn from(metric: &str, kind: &'static str, control: &str, variant: &str, result: Result<Comparison, stats::NotEnoughData>,
            fallback: (Option<f64>, Option<f64>)) -> Self {
        let base = Lift {
            metric: metric.to_owned(), kind, control: control.to_owned(), variant: variant.to_owned(),
            control_value: fallback.0, variant_value: fallback.1, abs_lift: None, rel_lift: None,
            ci_low: None, ci_high: None, p_value: None, test: None, note: None,
        };
        match result {
            Ok(c) => Lift {
                control_value: Some(c.control_value), variant_value: Some(c.variant_value),
                abs_lift: finite(c.abs_lift), rel_lift: c.rel_lift, ci_low: finite(c.ci_low), ci_high: finite(c.ci_high),
                p_value: finite(c.p_value), test: Some(c.test), ..base
            },
            Err(e) => Lift { abs_lift: fallback.0.zip(fallback.1).map(|(c, v)| v - c), note: Some(format!("not enough data: {}", e.reason)), ..base },
        }
    }
}

#[derive(Debug, Deserialize)]
struct ResultsQuery {
    format: Option<String>,
}

async fn results(State(state): State<AppState>, Path(id): Path<String>, Query(q): Query<ResultsQuery>) -> ApiResult<Response> {
    let row = find(&state.db, &id).await?;
    let doc = compute(&state.db, &row).await?;
    Ok(match q.format.as_deref() {
        None | Some("json") => axum::Json(doc).into_response(),
        Some("csv") => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], to_csv(&doc)).into_response(),
        Some("md" | "markdown") => ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], to_markdown(&doc, &row)).into_response(),
        Some(other) => return Err(ApiError::validation("format", format!("unknown format `{other}` (json, csv, md)"))),
    })
}

/// Aggregates in SQL, tests in Rust.
pub async fn compute(db: &PgPool, row: &ExperimentRow) -> ApiResult<Results> {
    let exposures: Vec<(String, i64)> =
        sqlx::query_as("SELECT variant_key, count(*) FROM unit_exposures WHERE experiment_id = $1 GROUP BY 1")
            .bind(row.id)
            .fetch_all(db)
            .await?;
    let metric_rows: Vec<(String, String, i64, i64, f64, f64)> = sqlx::query_as(
        "SELECT variant_key, metric, count(*), sum(n)::int8, sum(v), sum(v * v)
         FROM (SELECT x.variant_key, e.metric, e.unit_id, count(*) AS n, sum(e.value) AS v
               FROM events e
               JOIN unit_exposures x ON x.experiment_id = e.experiment_id AND x.unit_id = e.unit_id
               WHERE e.experiment_id = $1 AND e.kind = 2 AND e.ts >= x.first_ts
               GROUP BY 1, 2, 3) per_unit
         GROUP BY 1, 2",
    )
    .bind(row.id)
    .fetch_all(db)
    .await?;
    let conversion_rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT x.variant_key, e.metric, count(DISTINCT e.unit_id)
         FROM events e
         JOIN unit_exposures x ON x.experiment_id = e.experiment_id AND x.unit_id = e.unit_id
         WHERE e.experiment_id = $1 AND e.kind = 3 AND e.ts >= x.first_ts
         GROUP BY 1, 2",
    )
    .bind(row.id)
    .fetch_all(db)
    .await?;
    Ok(assemble(row, &exposures, &metric_rows, &conversion_rows))
}

fn assemble(row: &ExperimentRow, exposures: &[(String, i64)], metric_rows: &[(String, String, i64, i64, f64, f64)],
            conversion_rows: &[(String, String, i64)]) -> Results {
    let metric_names: Vec<&str> = dedup(metric_rows.iter().map(|r| r.1.as_str()));
    let conversion_names: Vec<&str> = dedup(conversion_rows.iter().map(|r| r.1.as_str()));
    let mut moments: BTreeMap<(&str, &str), Moments> = BTreeMap::new();

    let variants: Vec<VariantResult> = row.variants.0.iter().map(|v| {
        let exposed = exposures.iter().find(|(k, _)| *k == v.key).map_or(0, |e| e.1);
        let metrics = metric_names.iter().map(|&m| {
            let r = metric_rows.iter().find(|r| r.0 == v.key && r.1 == m);
            let (units, count, sum, sum_sq) = r.map_or((0, 0, 0.0, 0.0), |r| (r.2, r.3, r.4, r.5));
            let mo = Moments { n: units as f64, sum, sum_sq };
            moments.insert((v.key.as_str(), m), mo);
            (m.to_owned(), MetricSummary { units, count, sum, mean: mo.mean(), std: mo.variance().map(f64::sqrt) })
        }).collect();
        let conversions = conversion_names.iter().map(|&m| {
            let units = conversion_rows.iter().find(|r| r.0 == v.key && r.1 == m).map_or(0, |r| r.2);
            (m.to_owned(), ConversionSummary { units, rate: (exposed > 0).then(|| units as f64 / exposed as f64) })
        }).collect();
        VariantResult { key: v.key.clone(), weight: v.weight, exposures: exposed, metrics, conversions }
    }).collect();

    let mut lift = Vec::new();
    if let Some((control, treatments)) = variants.split_first() {
        for &m in &metric_names {
            let c = moments[&(control.key.as_str(), m)];
            for t in treatments {
                let tm = moments[&(t.key.as_str(), m)];
                lift.push(Lift::from(m, "mean", &control.key, &t.key, stats::means::welch_t(c, tm, ALPHA), (c.mean(), tm.mean())));
            }
        }
        for &m in &conversion_names {
            let (cx, cn) = (control.conversions[m].units as f64, control.exposures as f64);
            for t in treatments {
                let (tx, tn) = (t.conversions[m].units as f64, t.exposures as f64);
                lift.push(Lift::from(m, "proportion", &control.key, &t.key, stats::proportions::z_test(cx, cn, tx, tn, ALPHA),
                                     (control.conversions[m].rate, t.conversions[m].rate)));
            }
        }
    }

    let weights: Vec<f64> = variants.iter().map(|v| v.weight).collect();
    let observed: Vec<u64> = variants.iter().map(|v| v.exposures.max(0) as u64).collect();
    Results {
        experiment: row.key.clone(),
        id: row.id.to_string(),
        status: row.status.clone(),
        version: row.version,
        control: row.control().to_owned(),
        alpha: ALPHA,
        generated_at: Utc::now(),
        srm: stats::srm::srm(&weights, &observed),
        variants,
        lift,
    }
}

fn dedup<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = names.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn num(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// One row per (variant, metric): the summary, then the lift against control where there is one.
fn to_csv(doc: &Results) -> String {
    let mut out = String::from("experiment,variant,weight,exposures,metric,kind,units,count,sum,mean,std,rate,abs_lift,rel_lift,ci_low,ci_high,p_value,test\n");
    for v in &doc.variants {
        let lift_for = |m: &str| doc.lift.iter().find(|l| l.metric == m && l.variant == v.key);
        let mut rows: Vec<(String, &str, String)> = Vec::new();
        for (m, s) in &v.metrics {
            rows.push((m.clone(), "mean", format!("{},{},{},{},{},", s.units, s.count, s.sum, num(s.mean), num(s.std))));
        }
        for (m, s) in &v.conversions {
            rows.push((m.clone(), "proportion", format!("{},,,,,{}", s.units, num(s.rate))));
        }
        if rows.is_empty() {
            rows.push((String::new(), "", ",,,,,".into()));
        }
        for (m, kind, summary) in rows {
            let l = lift_for(&m);
            let lift = l.map_or_else(|| ",,,,,".to_owned(), |l| format!("{},{},{},{},{},{}",
                num(l.abs_lift), num(l.rel_lift), num(l.ci_low), num(l.ci_high), num(l.p_value), l.test.unwrap_or("")));
            let _ = writeln!(out, "{},{},{},{},{},{kind},{summary},{lift}", csv_field(&doc.experiment), csv_field(&v.key), v.weight, v.exposures, csv_field(&m));
        }
    }
    out
}

fn fmt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

fn to_markdown(doc: &Results, row: &ExperimentRow) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {} (`{}`)\n", row.name, doc.experiment);
    if !row.description.is_empty() {
        let _ = writeln!(out, "**Hypothesis:** {}\n", row.description);
    }
    let _ = writeln!(out, "Status: **{}** · version {} · owner {} · generated {}\n", doc.status, doc.version,
                     if row.owner_team.is_empty() { "–" } else { &row.owner_team }, doc.generated_at.to_rfc3339());
    let _ = writeln!(out, "## Arms\n\n| variant | weight | exposed units |\n|---|---:|---:|");
    for v in &doc.variants {
        let control = if v.key == doc.control { " (control)" } else { "" };
        let _ = writeln!(out, "| `{}`{control} | {} | {} |", v.key, v.weight, v.exposures);
    }
    let _ = writeln!(out, "\n## Lift against control (95% CI on the absolute lift)\n\n| metric | variant | control | variant | abs lift | rel lift | 95% CI | p-value | test |\n|---|---|---:|---:|---:|---:|---|---:|---|");
    for l in &doc.lift {
        let ci = match (l.ci_low, l.ci_high) {
            (Some(a), Some(b)) => format!("[{a:.4}, {b:.4}]"),
            _ => l.note.clone().unwrap_or_default(),
        };
        let _ = writeln!(out, "| {} | `{}` | {} | {} | {} | {} | {ci} | {} | {} |", l.metric, l.variant, fmt(l.control_value, 4),
                         fmt(l.variant_value, 4), fmt(l.abs_lift, 4), l.rel_lift.map_or("–".into(), |r| format!("{:+.2}%", r * 100.0)),
                         fmt(l.p_value, 4), l.test.unwrap_or("–"));
    }
    let _ = writeln!(out, "\n## Verdict\n");
    if let Some(srm) = doc.srm.as_ref().filter(|s| s.flagged) {
        let _ = writeln!(out, "⚠ **Sample-ratio mismatch** (p = {:.2e}): exposures do not match the weights; fix assignment or logging before trusting any lift.\n", srm.p_value);
    }
    let significant: Vec<&Lift> = doc.lift.iter().filter(|l| l.p_value.is_some_and(|p| p < doc.alpha)).collect();
    if significant.is_empty() {
        let _ = writeln!(out, "No variant differs from control at α = {} (fixed-horizon tests; peeking inflates false positives).", doc.alpha);
    }
    for l in significant {
        let dir = if l.abs_lift.unwrap_or(0.0) > 0.0 { "higher" } else { "lower" };
        let _ = writeln!(out, "- `{}` has {dir} `{}` than control (p = {:.4}).", l.variant, l.metric, l.p_value.unwrap_or(1.0));
    }
    out
}
