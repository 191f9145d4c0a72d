//! `GET /api/v1/experiments/{id}/results`: the readout (`crate::results`) as JSON, CSV or
//! Markdown, for a cohort, a segment, or with read-time priors.
//!
//! Query: `format=json|csv|md`, `from`/`to` (RFC 3339, cohort by first exposure), `segment`
//! (attribute), `prior_alpha`/`prior_beta` (Beta prior), `prior_sd` (normal prior on a
//! difference of means), `tuning_n` (always-valid tuning).

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{ApiError, ApiResult, AppState};
use crate::experiments::{ExperimentRow, find};
use crate::results::{Filter, Lift, Results, Role, Settings, compute_with, decision_p, segments};
use crate::stats::Analysis;

pub fn router() -> Router<AppState> {
    Router::new().route("/experiments/{id}/results", get(results))
}


#[derive(Debug, Deserialize)]
struct ResultsQuery {
    format: Option<String>,
    // Strings, parsed here: a malformed value is a 422 in the contract's error shape, not
    // axum's plain-text rejection.
    prior_alpha: Option<String>,
    prior_beta: Option<String>,
    prior_sd: Option<String>,
    tuning_n: Option<String>,
    from: Option<String>,
    to: Option<String>,
    segment: Option<String>,
}

fn positive(field: &str, v: Option<&str>) -> ApiResult<Option<f64>> {
    v.map(|raw| match raw.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(ApiError::validation(field, format!("`{raw}` is not a positive number"))),
    })
    .transpose()
}

fn timestamp(field: &str, v: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    v.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::validation(field, format!("`{raw}` is not an RFC 3339 time")))
    })
    .transpose()
}

impl ResultsQuery {
    fn settings(&self) -> ApiResult<Settings> {
        let mut s = Settings::default();
        s.beta_prior.alpha = positive("prior_alpha", self.prior_alpha.as_deref())?.unwrap_or(s.beta_prior.alpha);
        s.beta_prior.beta = positive("prior_beta", self.prior_beta.as_deref())?.unwrap_or(s.beta_prior.beta);
        s.mean_prior_sd = positive("prior_sd", self.prior_sd.as_deref())?;
        s.sequential_tuning_n = positive("tuning_n", self.tuning_n.as_deref())?.unwrap_or(s.sequential_tuning_n);
        Ok(s)
    }

    fn window(&self) -> ApiResult<Filter> {
        Ok(Filter { from: timestamp("from", self.from.as_deref())?, to: timestamp("to", self.to.as_deref())?, segment: None })
    }
}

async fn results(State(state): State<AppState>, Path(id): Path<String>, Query(q): Query<ResultsQuery>) -> ApiResult<Response> {
    let settings = q.settings()?;
    let window = q.window()?;
    if let Some(s) = q.segment.as_deref().filter(|s| s.is_empty() || s.len() > 128) {
        return Err(ApiError::validation("segment", format!("`{s}`: an attribute name of 1 to 128 bytes")));
    }
    let row = find(&state.db, &id).await?;
    let mut doc = compute_with(&state.db, &row, &settings, &window).await?;
    if let Some(attribute) = q.segment.as_deref() {
        doc.segments = Some(segments(&state.db, &row, &settings, &window, attribute).await?);
    }
    Ok(match q.format.as_deref() {
        None | Some("json") => axum::Json(doc).into_response(),
        Some("csv") => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], to_csv(&doc)).into_response(),
        Some("md" | "markdown") => ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], to_markdown(&doc, &row)).into_response(),
        Some(other) => return Err(ApiError::validation("format", format!("unknown format `{other}` (json, csv, md)"))),
    })
}

fn num(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// One row per (variant, metric): the summary, then the lift against control where there is one.
fn to_csv(doc: &Results) -> String {
    let mut out = String::from("experiment,variant,weight,exposures,metric,kind,units,count,sum,mean,std,rate,abs_lift,rel_lift,ci_low,ci_high,p_value,test,rel_ci_low,rel_ci_high,p_value_holm,p_value_bh,always_valid_ci_low,always_valid_ci_high,always_valid_p,prob_beats_control\n");
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
            let lift = l.map_or_else(|| ",,,,,,,,,,,,,".to_owned(), |l| {
                let (seq_lo, seq_hi, seq_p) = match &l.sequential {
                    Some(Analysis::Ran(s)) => (Some(s.ci_low), Some(s.ci_high), Some(s.p_value)),
                    _ => (None, None, None),
                };
                let beats = match &l.bayesian { Some(Analysis::Ran(b)) => Some(b.prob_beats_control), _ => None };
                format!("{},{},{},{},{},{},{},{},{},{},{},{},{},{}", num(l.abs_lift), num(l.rel_lift), num(l.ci_low), num(l.ci_high),
                        num(l.p_value), l.test.unwrap_or(""), num(l.rel_ci_low), num(l.rel_ci_high), num(l.p_value_holm), num(l.p_value_bh),
                        num(seq_lo), num(seq_hi), num(seq_p), num(beats))
            });
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
        let role = match l.role { Role::Primary => "", Role::Guardrail => " (guardrail)", Role::Secondary => " (secondary)" };
        let _ = writeln!(out, "| {}{role} | `{}` | {} | {} | {} | {} | {ci} | {} | {} |", l.metric, l.variant, fmt(l.control_value, 4),
                         fmt(l.variant_value, 4), fmt(l.abs_lift, 4), l.rel_lift.map_or("–".into(), |r| format!("{:+.2}%", r * 100.0)),
                         fmt(l.p_value, 4), l.test.unwrap_or("–"));
    }
    let _ = writeln!(out, "\n## Always-valid and Bayesian readout\n\nThe always-valid interval (mSPRT) stays valid however often the results are looked at; \
                           the fixed-horizon one above only at the planned end.\n\n| metric | variant | always-valid 95% CI | always-valid p | Holm p | P(beats control) | CUPED lift (variance reduction) |\n|---|---|---|---:|---:|---:|---|");
    for l in &doc.lift {
        let (seq_ci, seq_p) = match &l.sequential {
            Some(Analysis::Ran(s)) => (format!("[{:.4}, {:.4}]", s.ci_low, s.ci_high), format!("{:.4}", s.p_value)),
            _ => ("–".into(), "–".into()),
        };
        let beats = match &l.bayesian { Some(Analysis::Ran(b)) => format!("{:.3}", b.prob_beats_control), _ => "–".into() };
        let cuped = match &l.cuped { Some(Analysis::Ran(c)) => format!("{:.4} ({:.0}%)", c.abs_lift, c.variance_reduction * 100.0), _ => "–".into() };
        let _ = writeln!(out, "| {} | `{}` | {seq_ci} | {seq_p} | {} | {beats} | {cuped} |", l.metric, l.variant, fmt(l.p_value_holm, 4));
    }
    for b in &doc.bayesian {
        if let Some(p) = &b.prob_best {
            let list: Vec<String> = p.iter().map(|(k, v)| format!("`{k}` {:.3}", v)).collect();
            let _ = writeln!(out, "\nP(best) for {}: {}", b.metric, list.join(", "));
        }
    }
    let _ = writeln!(out, "\n## Verdict\n");
    if let Some(srm) = doc.srm.as_ref().filter(|s| s.flagged) {
        let _ = writeln!(out, "⚠ **Sample-ratio mismatch** (p = {:.2e}): exposures do not match the weights; fix assignment or logging before trusting any lift.\n", srm.p_value);
    }
    let live = doc.status != "stopped";
    let p_of = |l: &Lift| decision_p(l, live);
    for l in doc.lift.iter().filter(|l| l.guardrail_violated == Some(true)) {
        let _ = writeln!(out, "⚠ **Guardrail `{}` violated** by `{}` (lift {}, p = {:.4}).\n", l.metric, l.variant, fmt(l.abs_lift, 4), p_of(l).unwrap_or(1.0));
    }
    let significant: Vec<&Lift> = doc.lift.iter().filter(|l| l.role == Role::Primary && p_of(l).is_some_and(|p| p < doc.alpha)).collect();
    let basis = if live { "always-valid p-values, safe to read at any time" } else { "Holm-adjusted fixed-horizon p-values" };
    if significant.is_empty() {
        let _ = writeln!(out, "No variant differs from control on a primary metric at α = {} ({basis}).", doc.alpha);
    }
    for l in significant {
        let dir = if l.abs_lift.unwrap_or(0.0) > 0.0 { "higher" } else { "lower" };
        let _ = writeln!(out, "- `{}` has {dir} `{}` than control (p = {:.4}; {basis}).", l.variant, l.metric, p_of(l).unwrap_or(1.0));
    }
    out
}
