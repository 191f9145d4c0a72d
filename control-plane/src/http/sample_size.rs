//! `POST /api/v1/sample-size`: units per variant for a two-arm test (see `stats::power`).
//!
//! Proportions (the contract's shape): `{"baseline_rate":0.1,"mde":0.02,"alpha":0.05,"power":0.8}`
//! → `{"per_variant":3841,...}`; `mde` is absolute (0.10 → 0.12) unless `"relative":true`.
//! Means: `{"kind":"mean","std":40,"mde":2}`. Optional: `variants` (default 2) and
//! `daily_traffic` (units entering the experiment per day) for the expected duration.

use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::extract::Json;
use super::{ApiError, ApiResult, AppState};
use crate::stats::power;

pub fn router() -> Router<AppState> {
    Router::new().route("/sample-size", post(sample_size))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default = "proportion")]
    kind: String,
    baseline_rate: Option<f64>,
    std: Option<f64>,
    mde: f64,
    #[serde(default)]
    relative: bool,
    #[serde(default = "default_alpha")]
    alpha: f64,
    #[serde(default = "default_power")]
    power: f64,
    #[serde(default = "two")]
    variants: u32,
    daily_traffic: Option<f64>,
}

fn proportion() -> String {
    "proportion".into()
}
fn default_alpha() -> f64 {
    0.05
}
fn default_power() -> f64 {
    0.8
}
fn two() -> u32 {
    2
}

#[derive(Debug, Serialize)]
struct Reply {
    per_variant: u64,
    total: u64,
    variants: u32,
    kind: String,
    /// The absolute difference the computation used.
    mde_absolute: f64,
    alpha: f64,
    power: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_days: Option<f64>,
    method: &'static str,
}

async fn sample_size(Json(req): Json<Request>) -> ApiResult<axum::Json<Reply>> {
    if req.variants < 2 {
        return Err(ApiError::validation("variants", "at least 2"));
    }
    let (n, mde, method) = match req.kind.as_str() {
        "proportion" => {
            let base = req.baseline_rate.ok_or_else(|| ApiError::validation("baseline_rate", "required for proportions"))?;
            let mde = if req.relative { base * req.mde } else { req.mde };
            (power::proportions(base, mde, req.alpha, req.power), mde, "two_proportion_z")
        }
        "mean" => {
            let sd = req.std.ok_or_else(|| ApiError::validation("std", "required for means: the per-unit standard deviation"))?;
            let mde = if req.relative {
                req.baseline_rate.ok_or_else(|| ApiError::validation("baseline_rate", "the baseline mean, required for a relative mde"))? * req.mde
            } else {
                req.mde
            };
            (power::means(sd, mde, req.alpha, req.power), mde, "two_sample_z")
        }
        other => return Err(ApiError::validation("kind", format!("unknown kind `{other}` (proportion, mean)"))),
    };
    let n = n.map_err(|e| ApiError::validation("", e.reason))?;
    let total = n.per_variant.saturating_mul(u64::from(req.variants));
    let duration_days = match req.daily_traffic {
        Some(t) if !(t.is_finite() && t > 0.0) => return Err(ApiError::validation("daily_traffic", "must be a positive number")),
        Some(t) => Some((total as f64 / t * 100.0).ceil() / 100.0),
        None => None,
    };
    Ok(axum::Json(Reply { per_variant: n.per_variant, total, variants: req.variants, kind: req.kind, mde_absolute: mde, alpha: req.alpha, power: req.power, duration_days, method }))
}
