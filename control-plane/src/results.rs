//! The readout of an experiment: per-variant exposures, metric and conversion summaries, lifts
//! with confidence intervals, the SRM check and every other analysis. A domain service: the HTTP
//! route (`http::results`, which adds CSV and Markdown), the live socket, the bandit readout and
//! the background jobs all call [`compute`].
//!
//!
//! Unit-level definitions (the contract's): a unit belongs to the variant of its first exposure;
//! its metric value is the sum of its metric events at or after that exposure; `mean`/`std` are
//! over exposed units that have the metric; a conversion rate is converting units / exposed units.
//! Postgres aggregates to sufficient statistics (maintained at ingest, migration 0003); only
//! those reach this process, and every test runs in `crate::stats`.
//!
//! # Fields beyond the contract (also in control-plane/README.md, "Results fields")
//! Top level: `id`, `version`, `alpha` (0.05), `generated_at`, `srm.flagged` (p < 0.001);
//! `bayesian`: `[{metric, kind, prob_best: {variant: P(best of all arms)}, note?}]`;
//! `settings`: `{beta_prior: {alpha, beta}, mean_prior_sd, sequential_tuning_n, bootstrap_replicates}`;
//! `filter`: `{from?, to?, segment?}`; `segments` (with `?segment=`): `[{attribute, value, results}]`.
//!
//! Each `lift[]` row keeps the contract's fields (fixed-horizon `welch_t` / `z_test`, `note` when
//! a test could not run) and adds: `role` (`primary` | `guardrail` | `secondary`),
//! `guardrail_violated` (guardrails only), `rel_ci_low`/`rel_ci_high` (delta method),
//! `p_value_holm`/`p_value_bh` (across all rows), and analyses, each either its fields or
//! `{"not_enough_data": "<reason>"}`:
//! - `sequential` `{ci_low, ci_high, p_value, method, tuning_n}`: always-valid (mSPRT);
//! - `bayesian` `{prob_beats_control, expected_loss, expected_loss_control}`;
//! - means: `mann_whitney` `{u, z, p_value, cliffs_delta, method}`, `effect_size` `{cohens_d, hedges_g}`,
//!   `bootstrap` `{ci_low, ci_high, replicates, blocks, method}`,
//!   `cuped` `{theta, abs_lift, ci_low, ci_high, p_value, variance_reduction, covariate}`;
//! - proportions: `table_test` `{test: chi2 | fisher, statistic, p_value, min_expected}`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::error::{ApiError, ApiResult};
use crate::experiments::ExperimentRow;
use crate::stats::bayes::{self, BetaPrior};
use crate::stats::bootstrap::{self, Block};
use crate::stats::cuped::{self, CovMoments};
use crate::stats::rank::{self, RankSums};
use crate::stats::{self, Analysis, Comparison, Moments, effect, finite, multiple, sequential};
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
    /// P(best) per metric over all arms.
    pub bayesian: Vec<ProbBest>,
    pub settings: Settings,
    /// The cohort/segment this readout covers (empty: every exposed unit).
    pub filter: Filter,
    /// `?segment=<attribute>`: the same readout per attribute value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<Segment>>,
    /// Events of this experiment the aggregator could not apply and set aside (see
    /// `rollup::apply`); they are not in these numbers.
    pub quarantined_events: i64,
    /// Bandits: the period-weighted readout (`crate::bandit`). The lifts above pool every unit,
    /// which is biased once the weights moved; `note` says when they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandit: Option<crate::bandit::Readout>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Segment {
    pub attribute: String,
    pub value: String,
    pub results: Results,
}

/// A metric's declared role in an experiment (`metrics` on create/patch):
/// `{"name":"order_value","kind":"mean","role":"primary","direction":"increase"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDecl {
    pub name: String,
    /// `mean` (metric events) or `proportion` (conversion events); absent: both.
    #[serde(default)]
    pub kind: Option<MetricKind>,
    #[serde(default)]
    pub role: Role,
    /// Which way is good; a guardrail is violated by a significant move the other way.
    #[serde(default)]
    pub direction: Direction,
    /// The planned minimum detectable effect, relative (0.05 = 5 %): a primary metric with one
    /// raises `underpowered` when today's traffic cannot reach 80 % power in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mde: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Mean,
    #[serde(alias = "conversion")]
    Proportion,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Guardrail,
    #[default]
    Secondary,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Increase,
    Decrease,
}

pub fn validate_metrics(decls: &[MetricDecl]) -> ApiResult<()> {
    for (i, d) in decls.iter().enumerate() {
        if d.name.is_empty() || d.name.len() > 128 {
            return Err(ApiError::validation(format!("metrics[{i}].name"), "must be 1 to 128 bytes"));
        }
        let clash = |o: &MetricDecl| o.name == d.name && (o.kind.is_none() || d.kind.is_none() || o.kind == d.kind);
        if d.mde.is_some_and(|m| !(m.is_finite() && m > 0.0 && m <= 10.0)) {
            return Err(ApiError::validation(format!("metrics[{i}].mde"), "a relative effect above 0 and at most 10 (1000 %)"));
        }
        if decls[..i].iter().any(clash) {
            return Err(ApiError::validation(format!("metrics[{i}].name"), format!("`{}` is declared twice", d.name)));
        }
    }
    if decls.len() > 100 {
        return Err(ApiError::validation("metrics", "at most 100 metrics"));
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct ProbBest {
    pub metric: String,
    pub kind: &'static str,
    /// variant key → P(this arm is best); `null` with `note` when it could not be computed.
    pub prob_best: Option<BTreeMap<String, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ProbBest {
    fn new(metric: &str, kind: &'static str, variants: &[VariantResult], p: stats::Outcome<Vec<f64>>) -> Self {
        let (prob_best, note) = match p {
            Ok(p) => (Some(variants.iter().map(|v| v.key.clone()).zip(p).collect()), None),
            Err(e) => (None, Some(format!("not enough data: {}", e.reason))),
        };
        ProbBest { metric: metric.to_owned(), kind, prob_best, note }
    }
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
    /// Declared role; with no declarations every metric is `primary`, else undeclared ones are
    /// `secondary`.
    pub role: Role,
    /// Guardrails only: a significant move against `direction` (always-valid p while running,
    /// Holm-adjusted p once stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail_violated: Option<bool>,
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
    /// Delta-method 95% CI of `rel_lift`.
    pub rel_ci_low: Option<f64>,
    pub rel_ci_high: Option<f64>,
    /// `p_value` adjusted across every lift row (variants × metrics).
    pub p_value_holm: Option<f64>,
    pub p_value_bh: Option<f64>,
    /// Always-valid (mSPRT) interval and p-value: valid at whatever time the readout is looked at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequential: Option<Analysis<sequential::AlwaysValid>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bayesian: Option<Analysis<bayes::Pairwise>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mann_whitney: Option<Analysis<rank::MannWhitney>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect_size: Option<Analysis<effect::EffectSize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Analysis<bootstrap::BootstrapCi>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuped: Option<Analysis<cuped::Cuped>>,
    /// Chi-square, or Fisher's exact test when an expected cell count is below 5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_test: Option<Analysis<stats::proportions::TableTest>>,
}

impl Lift {
    fn from(metric: &str, kind: &'static str, control: &str, variant: &str, result: Result<Comparison, stats::NotEnoughData>,
            fallback: (Option<f64>, Option<f64>)) -> Self {
        let base = Lift {
            metric: metric.to_owned(), kind, role: Role::Secondary, guardrail_violated: None, control: control.to_owned(), variant: variant.to_owned(),
            control_value: fallback.0, variant_value: fallback.1, abs_lift: None, rel_lift: None,
            ci_low: None, ci_high: None, p_value: None, test: None, note: None, rel_ci_low: None, rel_ci_high: None,
            p_value_holm: None, p_value_bh: None, sequential: None, bayesian: None, mann_whitney: None, effect_size: None,
            bootstrap: None, cuped: None, table_test: None,
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

    fn set_rel_ci(&mut self, ci: stats::Outcome<(f64, f64)>) {
        if let Ok((lo, hi)) = ci {
            (self.rel_ci_low, self.rel_ci_high) = (Some(lo), Some(hi));
        }
    }
}

/// Read-time settings: `?prior_alpha=&prior_beta=` (Beta prior for conversions, default 1, 1),
/// `?prior_sd=` (normal prior on a difference of means; default flat), `?tuning_n=` (units at
/// which the always-valid interval is tightest, default 5000).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub beta_prior: BetaPrior,
    pub mean_prior_sd: Option<f64>,
    pub sequential_tuning_n: f64,
    pub bootstrap_replicates: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { beta_prior: BetaPrior::default(), mean_prior_sd: None, sequential_tuning_n: sequential::DEFAULT_TUNING_N, bootstrap_replicates: bootstrap::DEFAULT_REPLICATES }
    }
}

/// One row of `arm_stats`: sufficient statistics of one hash bucket of one arm.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ArmRow {
    kind: i16,
    metric: String,
    variant_key: String,
    units: i64,
    events: i64,
    sum_y: f64,
    sum_y2: f64,
    sum_x: f64,
    sum_x2: f64,
    sum_xy: f64,
}

/// Rank statistics of one arm's per-unit values against control's, from SQL.
#[derive(Debug, Clone, sqlx::FromRow)]
struct RankRow {
    metric: String,
    variant_key: String,
    n: f64,
    u: f64,
    tie_delta: f64,
    own_ties: f64,
}

pub async fn compute(db: &PgPool, row: &ExperimentRow) -> ApiResult<Results> {
    compute_with(db, row, &Settings::default(), &Filter::default()).await
}

/// Which units a readout covers: a cohort by first exposure (`from` ≤ first exposure < `to`)
/// and/or one value of a segment attribute (from the unit's first exposure event).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<(String, String)>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.from.is_none() && self.to.is_none() && self.segment.is_none()
    }

    /// SQL over `unit_metrics um` with $3 from, $4 to, $5 attribute, $6 value.
    const SQL: &'static str = "AND ($3::timestamptz IS NULL OR um.split_ts >= $3) AND ($4::timestamptz IS NULL OR um.split_ts < $4)
         AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM unit_exposures x WHERE x.experiment_id = um.experiment_id
                                          AND x.unit_id = um.unit_id AND x.attributes ->> $5 = $6))";
}

/// Sufficient statistics from the tables maintained at ingest (migration 0003), tests in Rust.
/// Without a filter the arm statistics are read as materialised (a few thousand rows); with
/// one they are aggregated from the per-unit rows of the selected units.
pub async fn compute_with(db: &PgPool, row: &ExperimentRow, settings: &Settings, filter: &Filter) -> ApiResult<Results> {
    // Read-your-writes: every event acknowledged before this request is in the aggregates.
    crate::rollup::catch_up(db).await?;
    let mut tx = db.begin().await?;
    // The rank query sorts and windows up to one row per unit: enough memory keeps it off disk,
    // and JIT compilation costs more than it saves on a query this short (bench-stats).
    sqlx::query("SET LOCAL work_mem = '64MB'").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    let arms: Vec<ArmRow> = if filter.is_empty() {
        sqlx::query_as(
            "SELECT kind, metric, variant_key, bucket, units, events, sum_y, sum_y2, sum_x, sum_x2, sum_xy
             FROM arm_stats WHERE experiment_id = $1 AND units <> 0 ORDER BY kind, metric, variant_key, bucket",
        )
        .bind(row.id)
        .fetch_all(&mut *tx)
        .await?
    } else {
        let sql = format!(
            "SELECT kind, metric, variant_key, bucket, count(*) AS units, sum(post_n)::int8 AS events, sum(post_sum) AS sum_y,
                    sum(post_sum * post_sum) AS sum_y2, sum(pre_sum) AS sum_x, sum(pre_sum * pre_sum) AS sum_x2, sum(pre_sum * post_sum) AS sum_xy
             FROM unit_metrics um
             WHERE experiment_id = $1 AND variant_key IS NOT NULL AND (kind = 1 OR post_n > 0) {}
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            Filter::SQL
        );
        // $2 (the control key, used by the rank query) keeps the filter's placeholders aligned.
        let sql = sql.replace("(kind = 1 OR post_n > 0)", "(kind = 1 OR post_n > 0) AND $2::text IS NOT NULL");
        bind_filter(sqlx::query_as(&sql).bind(row.id).bind(row.control()), filter).fetch_all(&mut *tx).await?
    };
    // Ranks in SQL: per-unit values come in index order (unit_metrics_values_idx), ties are
    // grouped, and window sums give each value's count of control units at or below it.
    let rank_sql = format!(
        "WITH v AS (
             SELECT metric, post_sum AS y, variant_key, count(*) AS c
             FROM unit_metrics um
             WHERE experiment_id = $1 AND kind = 2 AND post_n > 0 AND variant_key IS NOT NULL {}
             GROUP BY 1, 2, 3
         ), w AS (
             SELECT metric, variant_key, c::float8 AS c,
                    coalesce(sum(c) FILTER (WHERE variant_key = $2) OVER (PARTITION BY metric ORDER BY y RANGE UNBOUNDED PRECEDING), 0)::float8 AS cc_le,
                    coalesce(sum(c) FILTER (WHERE variant_key = $2) OVER (PARTITION BY metric, y), 0)::float8 AS cc_eq
             FROM v
         )
         SELECT metric, variant_key, sum(c)::float8 AS n, sum(c * (cc_le - 0.5 * cc_eq))::float8 AS u,
                sum((cc_eq + c) ^ 3 - (cc_eq + c) - (cc_eq ^ 3 - cc_eq))::float8 AS tie_delta,
                sum(c * c * c - c)::float8 AS own_ties
         FROM w GROUP BY 1, 2",
        if filter.is_empty() { "" } else { Filter::SQL }
    );
    let query = sqlx::query_as(&rank_sql).bind(row.id).bind(row.control());
    let ranks: Vec<RankRow> = if filter.is_empty() { query.fetch_all(&mut *tx).await? } else { bind_filter(query, filter).fetch_all(&mut *tx).await? };
    tx.commit().await?;
    let mut doc = assemble(row, &arms, &ranks, settings);
    // A bandit's weights moved: its units are expected in the proportions it was served at,
    // period by period, not in today's weights.
    if row.kind == "bandit" && filter.is_empty() {
        let readout = crate::bandit::readout(db, row).await?;
        if readout.srm.is_some() {
            doc.srm = readout.srm.clone();
        }
        if readout.periods > 1 {
            doc.note = Some(format!(
                "the bandit's weights moved ({} periods): lifts and tests here pool every unit, which favours arms served more in \
                 better periods; `bandit` nets out each period's effect (its weighted_mean and win_probability)",
                readout.periods
            ));
        }
        doc.bandit = Some(readout);
    }
    doc.filter = filter.clone();
    doc.quarantined_events = crate::rollup::quarantined(db, Some(row.id)).await?;
    Ok(doc)
}

fn bind_filter<'q, O>(q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>, f: &'q Filter)
    -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(f.from).bind(f.to).bind(f.segment.as_ref().map(|s| s.0.as_str())).bind(f.segment.as_ref().map(|s| s.1.as_str()))
}

/// The most common values of a segment attribute among exposed units.
async fn segment_values(db: &PgPool, row: &ExperimentRow, attribute: &str) -> ApiResult<Vec<String>> {
    let values: Vec<(String, i64)> = sqlx::query_as(
        "SELECT attributes ->> $2, count(*) FROM unit_exposures
         WHERE experiment_id = $1 AND attributes ->> $2 IS NOT NULL
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3",
    )
    .bind(row.id)
    .bind(attribute)
    .bind(MAX_SEGMENTS)
    .fetch_all(db)
    .await?;
    Ok(values.into_iter().map(|v| v.0).collect())
}

/// A segment breakdown covers at most this many values (the most common).
const MAX_SEGMENTS: i64 = 20;

/// The whole readout once per value of `attribute` (same window), most common values first.
pub async fn segments(db: &PgPool, row: &ExperimentRow, settings: &Settings, window: &Filter, attribute: &str) -> ApiResult<Vec<Segment>> {
    let mut out = Vec::new();
    for value in segment_values(db, row, attribute).await? {
        let filter = Filter { segment: Some((attribute.to_owned(), value.clone())), ..window.clone() };
        let results = compute_with(db, row, settings, &filter).await?;
        out.push(Segment { attribute: attribute.to_owned(), value, results });
    }
    Ok(out)
}

/// Per (kind, metric, variant): totals and the per-bucket blocks for the bootstrap.
#[derive(Debug, Clone, Default)]
struct ArmTotals {
    units: f64,
    events: i64,
    cov: CovMoments,
    blocks: Vec<Block>,
}

impl ArmTotals {
    fn moments(&self) -> Moments {
        Moments { n: self.cov.n, sum: self.cov.sy, sum_sq: self.cov.syy }
    }
}

fn totals(arms: &[ArmRow]) -> BTreeMap<(i16, String, String), ArmTotals> {
    let mut out: BTreeMap<(i16, String, String), ArmTotals> = BTreeMap::new();
    for r in arms {
        let t = out.entry((r.kind, r.metric.clone(), r.variant_key.clone())).or_default();
        t.units += r.units as f64;
        t.events += r.events;
        let c = &mut t.cov;
        (c.n, c.sx, c.sy, c.sxx, c.syy, c.sxy) = (c.n + r.units as f64, c.sx + r.sum_x, c.sy + r.sum_y, c.sxx + r.sum_x2, c.syy + r.sum_y2, c.sxy + r.sum_xy);
        t.blocks.push(Block { n: r.units as f64, sum: r.sum_y });
    }
    out
}

fn assemble(row: &ExperimentRow, arms: &[ArmRow], ranks: &[RankRow], settings: &Settings) -> Results {
    let totals = totals(arms);
    let names = |kind: i16| dedup(totals.keys().filter(|k| k.0 == kind).map(|k| k.1.as_str()));
    let (metric_names, conversion_names) = (names(2), names(3));
    let get = |kind: i16, m: &str, v: &str| totals.get(&(kind, m.to_owned(), v.to_owned())).cloned().unwrap_or_default();

    let variants: Vec<VariantResult> = row.variants.0.iter().map(|v| {
        let exposed = get(1, "", &v.key).units as i64;
        let metrics = metric_names.iter().map(|&m| {
            let t = get(2, m, &v.key);
            let mo = t.moments();
            (m.to_owned(), MetricSummary { units: t.units as i64, count: t.events, sum: t.cov.sy, mean: mo.mean(), std: mo.variance().map(f64::sqrt) })
        }).collect();
        let conversions = conversion_names.iter().map(|&m| {
            let units = get(3, m, &v.key).units as i64;
            (m.to_owned(), ConversionSummary { units, rate: (exposed > 0).then(|| units as f64 / exposed as f64) })
        }).collect();
        VariantResult { key: v.key.clone(), weight: v.weight, exposures: exposed, metrics, conversions }
    }).collect();

    let mut lift = Vec::new();
    let mut bayesian = Vec::new();
    if let Some((control, treatments)) = variants.split_first() {
        for &m in &metric_names {
            let arms: Vec<ArmTotals> = variants.iter().map(|v| get(2, m, &v.key)).collect();
            let theta = cuped::theta(&arms.iter().map(|a| a.cov).collect::<Vec<_>>());
            let control_ties = ranks.iter().find(|r| r.metric == m && r.variant_key == control.key).map_or(0.0, |r| r.own_ties);
            for (i, t) in treatments.iter().enumerate() {
                let rank = ranks.iter().find(|r| r.metric == m && r.variant_key == t.key).map(|r| RankSums {
                    n_control: arms[0].units, n_treatment: r.n, u_treatment: r.u, tie_term: control_ties + r.tie_delta,
                });
                let seed = seed_for(row, m, &t.key);
                lift.push(mean_lift(m, &control.key, &t.key, &arms[0], &arms[i + 1], theta.clone(), rank, seed, settings));
            }
            bayesian.push(prob_best_means(m, &variants, &arms));
        }
        for &m in &conversion_names {
            let counts: Vec<(f64, f64)> = variants.iter().map(|v| (v.conversions[m].units as f64, v.exposures as f64)).collect();
            for (i, t) in treatments.iter().enumerate() {
                lift.push(proportion_lift(m, &control.key, &t.key, counts[0], counts[i + 1], (control.conversions[m].rate, t.conversions[m].rate), settings));
            }
            bayesian.push(prob_best_rates(m, &variants, &counts, settings));
        }
    }
    adjust(&mut lift);
    assign_roles(&mut lift, &row.metrics.0, row.status != "stopped");

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
        bayesian,
        settings: settings.clone(),
        filter: Filter::default(),
        segments: None,
        quarantined_events: 0,
        bandit: None,
        note: None,
    }
}

/// A stable bootstrap seed per (experiment, metric, variant): the same data gives the same CI.
fn seed_for(row: &ExperimentRow, metric: &str, variant: &str) -> u64 {
    fnv1a(row.id.as_bytes().iter().chain(metric.as_bytes()).chain([0u8].iter()).chain(variant.as_bytes()).copied())
}

/// FNV-1a: a hash that is the same in every process and release (no RandomState), for seeds and
/// keys that must not change between runs.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[allow(clippy::too_many_arguments)]
fn mean_lift(m: &str, control: &str, variant: &str, c: &ArmTotals, t: &ArmTotals, theta: stats::Outcome<f64>, rank: Option<RankSums>,
             seed: u64, settings: &Settings) -> Lift {
    let (cm, tm) = (c.moments(), t.moments());
    let welch = stats::means::welch_t(cm, tm, ALPHA);
    let mut l = Lift::from(m, "mean", control, variant, welch.clone(), (cm.mean(), tm.mean()));
    if let Ok(w) = &welch {
        let (vc, vt) = (cm.var_of_mean().unwrap_or(0.0), tm.var_of_mean().unwrap_or(0.0));
        l.set_rel_ci(stats::relative_lift_ci(w.control_value, vc, w.variant_value, vt, ALPHA));
        l.sequential = Some(sequential::msprt(w.abs_lift, vc + vt, cm.n + tm.n, ALPHA, settings.sequential_tuning_n).into());
    } else if let Err(e) = &welch {
        l.sequential = Some(Analysis::NotRun { not_enough_data: e.reason.clone() });
    }
    l.effect_size = Some(effect::cohens_d(cm, tm).into());
    l.mann_whitney = Some(match rank {
        Some(r) => rank::mann_whitney(r).into(),
        None => Analysis::NotRun { not_enough_data: "no units with the metric in one arm".into() },
    });
    l.bootstrap = Some(bootstrap::mean_difference(&c.blocks, &t.blocks, ALPHA, settings.bootstrap_replicates, seed).into());
    l.cuped = Some(theta.and_then(|th| cuped::compare(c.cov, t.cov, th, ALPHA)).into());
    l.bayesian = Some(bayes::normal_pairwise(cm, tm, settings.mean_prior_sd).into());
    l
}

fn proportion_lift(m: &str, control: &str, variant: &str, (cx, cn): (f64, f64), (tx, tn): (f64, f64), rates: (Option<f64>, Option<f64>),
                   settings: &Settings) -> Lift {
    let z = stats::proportions::z_test(cx, cn, tx, tn, ALPHA);
    let mut l = Lift::from(m, "proportion", control, variant, z.clone(), rates);
    if let Ok(z) = &z {
        let (pc, pt) = (z.control_value, z.variant_value);
        let (vc, vt) = (pc * (1.0 - pc) / cn, pt * (1.0 - pt) / tn);
        l.set_rel_ci(stats::relative_lift_ci(pc, vc, pt, vt, ALPHA));
        l.sequential = Some(sequential::msprt(z.abs_lift, vc + vt, cn + tn, ALPHA, settings.sequential_tuning_n).into());
    }
    let table = stats::proportions::table_test(cx, cn, tx, tn);
    // With small expected counts the normal approximation is poor: the headline p-value is then
    // Fisher's exact one, and `test` says so (the CI stays the Wald interval on the difference).
    if let Ok(t) = &table
        && t.test == "fisher"
        && l.test.is_some()
    {
        (l.p_value, l.test) = (finite(t.p_value), Some("fisher"));
    }
    l.table_test = Some(table.into());
    let posteriors = (bayes::beta_posterior(cx, cn, settings.beta_prior, ALPHA), bayes::beta_posterior(tx, tn, settings.beta_prior, ALPHA));
    l.bayesian = Some(match posteriors {
        (Ok(a), Ok(b)) => Analysis::Ran(bayes::beta_pairwise(&a, &b)),
        (Err(e), _) | (_, Err(e)) => Analysis::NotRun { not_enough_data: e.reason },
    });
    l
}

fn assign_roles(lift: &mut [Lift], decls: &[MetricDecl], live: bool) {
    for l in lift {
        let kind = if l.kind == "mean" { MetricKind::Mean } else { MetricKind::Proportion };
        let decl = decls.iter().find(|d| d.name == l.metric && d.kind.is_none_or(|k| k == kind));
        l.role = match decl {
            Some(d) => d.role,
            None if decls.is_empty() => Role::Primary,
            None => Role::Secondary,
        };
        if l.role == Role::Guardrail {
            let harmful = match decl.map_or(Direction::Increase, |d| d.direction) {
                Direction::Increase => l.abs_lift.is_some_and(|x| x < 0.0),
                Direction::Decrease => l.abs_lift.is_some_and(|x| x > 0.0),
            };
            l.guardrail_violated = Some(harmful && decision_p(l, live).is_some_and(|p| p < ALPHA));
        }
    }
}

/// The p-value a decision rests on: always-valid while the experiment runs (people look at it
/// every hour), Holm-adjusted fixed-horizon once it is stopped.
pub fn decision_p(l: &Lift, live: bool) -> Option<f64> {
    if live {
        match &l.sequential {
            Some(Analysis::Ran(s)) => Some(s.p_value),
            _ => None,
        }
    } else {
        l.p_value_holm
    }
}

/// Holm and Benjamini–Hochberg across every (variant, metric) fixed-horizon p-value.
fn adjust(lift: &mut [Lift]) {
    let idx: Vec<usize> = (0..lift.len()).filter(|&i| lift[i].p_value.is_some()).collect();
    let p: Vec<f64> = idx.iter().filter_map(|&i| lift[i].p_value).collect();
    for ((&i, h), b) in idx.iter().zip(multiple::holm(&p)).zip(multiple::benjamini_hochberg(&p)) {
        lift[i].p_value_holm = Some(h);
        lift[i].p_value_bh = Some(b);
    }
}

fn prob_best_means(m: &str, variants: &[VariantResult], arms: &[ArmTotals]) -> ProbBest {
    let est: Vec<(f64, f64)> = arms.iter().map(|a| {
        let mo = a.moments();
        (mo.mean().unwrap_or(f64::NAN), mo.var_of_mean().map_or(f64::NAN, f64::sqrt))
    }).collect();
    ProbBest::new(m, "mean", variants, bayes::normal_prob_best(&est))
}

fn prob_best_rates(m: &str, variants: &[VariantResult], counts: &[(f64, f64)], settings: &Settings) -> ProbBest {
    let posts: stats::Outcome<Vec<bayes::BetaArm>> = counts.iter().map(|&(x, n)| bayes::beta_posterior(x, n, settings.beta_prior, ALPHA)).collect();
    ProbBest::new(m, "proportion", variants, posts.map(|p| bayes::beta_prob_best(&p)))
}

fn dedup<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = names.collect();
    v.sort_unstable();
    v.dedup();
    v
}
