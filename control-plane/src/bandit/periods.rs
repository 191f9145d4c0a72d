//! Each arm's reward, weighted across reweighting periods.
//!
//! A bandit's weights change over time, and so may the reward itself (weekday against weekend,
//! a campaign): an arm served mostly in a good period looks better than it is when its units are
//! simply pooled (Simpson's paradox). As GrowthBook's bandits do, each period (from one weight
//! change to the next, a unit placed by its first exposure) contributes to every arm's estimate
//! in proportion to the period's share of all units, whatever share of it the arm got:
//!
//!   mean(a) = Σₚ wₚ · mean(a, p),  var(a) = Σₚ wₚ² · var(a, p) / n(a, p),  wₚ = Nₚ / Σ N
//!
//! over the periods in which the arm has units. The inputs are per (period, arm) sufficient
//! statistics aggregated in SQL ([`cells`]); [`estimates`] is pure.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::policy::Estimate;
use crate::error::ApiResult;
use crate::results::MetricKind;

/// Sufficient statistics of one arm in one period.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cell {
    pub period: usize,
    pub arm: usize,
    /// Exposed units.
    pub units: f64,
    /// Units with the reward: converting units (rates) or units with the metric (means).
    pub n: f64,
    /// Σ and Σ² of the units' metric values (means only).
    pub sum: f64,
    pub sum_sq: f64,
}

/// One arm's reward, as the readout shows it (higher or lower may be better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmReward {
    pub units: f64,
    /// Pooled over all periods (what the results page shows; biased once weights moved).
    pub pooled_mean: Option<f64>,
    pub weighted_mean: Option<f64>,
    pub se: Option<f64>,
    /// Per-unit standard deviation (1 for rates: UCB1's scale).
    pub scale: f64,
}

impl ArmReward {
    /// The policies' view: higher is better.
    pub fn estimate(&self, lower_is_better: bool) -> Estimate {
        let sign = if lower_is_better { -1.0 } else { 1.0 };
        Estimate { units: self.units, mean: self.weighted_mean.map(|m| sign * m), se: self.se, scale: self.scale }
    }
}

/// One arm in one period: mean, variance of one unit's reward (if known), units.
type PeriodMean = (f64, Option<f64>, f64);

/// Sample variance from n, Σ, Σ² (n − 1 denominator); `None` below two values.
fn variance(n: f64, sum: f64, sum_sq: f64) -> Option<f64> {
    (n >= 2.0).then(|| ((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0))
}

/// Each of `arms` arms' reward from its cells (any order; missing cells are empty).
pub fn estimates(arms: usize, kind: MetricKind, cells: &[Cell]) -> Vec<ArmReward> {
    let periods = cells.iter().map(|c| c.period + 1).max().unwrap_or(0);
    let mut grid = vec![vec![Cell::default(); arms]; periods];
    for c in cells.iter().filter(|c| c.arm < arms) {
        let g = &mut grid[c.period][c.arm];
        (g.units, g.n, g.sum, g.sum_sq) = (g.units + c.units, g.n + c.n, g.sum + c.sum, g.sum_sq + c.sum_sq);
    }
    let period_units: Vec<f64> = grid.iter().map(|row| row.iter().map(|c| c.units).sum()).collect();
    (0..arms)
        .map(|a| {
            let col: Vec<(f64, &Cell)> = grid.iter().zip(&period_units).map(|(row, &np)| (np, &row[a])).collect();
            let units: f64 = col.iter().map(|(_, c)| c.units).sum();
            let (n, sum, sum_sq) = col.iter().fold((0.0, 0.0, 0.0), |t, (_, c)| (t.0 + c.n, t.1 + c.sum, t.2 + c.sum_sq));
            // Per period: the mean, the variance of one unit's reward (if known), the units.
            let per_period = |c: &Cell| -> Option<PeriodMean> {
                match kind {
                    MetricKind::Proportion => {
                        if c.units <= 0.0 {
                            return None;
                        }
                        // The variance from a Beta(1, 1)-smoothed rate: never 0 at 0 or 100 %.
                        let smoothed = (c.n + 1.0) / (c.units + 2.0);
                        Some((c.n / c.units, Some(smoothed * (1.0 - smoothed)), c.units))
                    }
                    MetricKind::Mean => {
                        if c.n <= 0.0 {
                            return None;
                        }
                        // A period with one value borrows the arm's pooled variance.
                        let var = variance(c.n, c.sum, c.sum_sq).or_else(|| variance(n, sum, sum_sq));
                        Some((c.sum / c.n, var, c.n))
                    }
                }
            };
            let used: Vec<(f64, PeriodMean)> = col.iter().filter_map(|(np, c)| Some((*np, per_period(c)?))).collect();
            let total: f64 = used.iter().map(|(np, _)| np).sum();
            let pooled_mean = match kind {
                MetricKind::Proportion => (units > 0.0).then(|| n / units),
                MetricKind::Mean => (n > 0.0).then(|| sum / n),
            };
            let (weighted_mean, se) = if used.is_empty() || total <= 0.0 {
                (None, None)
            } else {
                let mean = used.iter().map(|(np, (m, _, _))| np / total * m).sum();
                let var: Option<f64> = used.iter().map(|(np, (_, v, k))| Some((np / total).powi(2) * (*v)? / k)).sum();
                (Some(mean), var.filter(|&v| v > 0.0).map(f64::sqrt))
            };
            let scale = match kind {
                MetricKind::Proportion => 1.0,
                MetricKind::Mean => variance(n, sum, sum_sq).map_or(0.0, f64::sqrt),
            };
            ArmReward { units, pooled_mean, weighted_mean, se, scale }
        })
        .collect()
}

/// The share of units each arm should have received when period `p` (with `period_units[p]`
/// units) served `period_weights[p]`: Σₚ Nₚ·wₚ / Σₚ Nₚ. What a sample-ratio check compares a
/// bandit's exposures with; `None` without units.
pub fn expected_shares(period_units: &[f64], period_weights: &[Vec<f64>]) -> Option<Vec<f64>> {
    let arms = period_weights.first()?.len();
    let total: f64 = period_units.iter().sum();
    if total <= 0.0 || period_weights.iter().any(|w| w.len() != arms) {
        return None;
    }
    Some((0..arms).map(|a| period_units.iter().zip(period_weights).map(|(n, w)| n * w[a]).sum::<f64>() / total).collect())
}

/// The cells of an experiment's reward, `boundaries` being the starts of the second and later
/// periods (ascending). Reads the per-unit aggregates the results read (`unit_metrics`), never
/// events; `variants` gives the arms' order.
pub async fn cells(
    db: &PgPool,
    experiment: Uuid,
    variants: &[String],
    kind: MetricKind,
    metric: &str,
    boundaries: &[DateTime<Utc>],
) -> ApiResult<Vec<Cell>> {
    let kind_code: i16 = match kind {
        MetricKind::Mean => 2,
        MetricKind::Proportion => 3,
    };
    let rows: Vec<(i32, String, f64, f64, f64, f64)> = sqlx::query_as(
        "SELECT width_bucket(um.split_ts, $2::timestamptz[]) AS period, um.variant_key,
                count(*) FILTER (WHERE um.kind = 1)::float8,
                count(*) FILTER (WHERE um.kind = $3 AND um.post_n > 0)::float8,
                coalesce(sum(um.post_sum) FILTER (WHERE um.kind = $3 AND um.post_n > 0), 0)::float8,
                coalesce(sum(um.post_sum * um.post_sum) FILTER (WHERE um.kind = $3 AND um.post_n > 0), 0)::float8
         FROM unit_metrics um
         WHERE um.experiment_id = $1 AND um.variant_key IS NOT NULL AND um.split_ts IS NOT NULL
           AND (um.kind = 1 OR (um.kind = $3 AND um.metric = $4))
         GROUP BY 1, 2",
    )
    .bind(experiment)
    .bind(boundaries)
    .bind(kind_code)
    .bind(metric)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(period, key, units, n, sum, sum_sq)| {
            let arm = variants.iter().position(|v| *v == key)?;
            Some(Cell { period: usize::try_from(period).unwrap_or(0), arm, units, n, sum, sum_sq })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate_cell(period: usize, arm: usize, units: f64, rate: f64) -> Cell {
        Cell { period, arm, units, n: (units * rate).round(), sum: 0.0, sum_sq: 0.0 }
    }

    #[test]
    fn weighting_periods_undoes_simpsons_paradox() {
        // Arm 0 converts 2 points better than arm 1 in both periods, but was served mostly in
        // the poor first period: pooled, it looks 30 points worse.
        let cells = [
            rate_cell(0, 0, 1800.0, 0.10),
            rate_cell(0, 1, 200.0, 0.08),
            rate_cell(1, 0, 200.0, 0.50),
            rate_cell(1, 1, 1800.0, 0.48),
        ];
        let r = estimates(2, MetricKind::Proportion, &cells);
        let (pooled0, pooled1) = (r[0].pooled_mean.unwrap_or(0.0), r[1].pooled_mean.unwrap_or(0.0));
        assert!((pooled0 - 0.14).abs() < 1e-12 && (pooled1 - 0.44).abs() < 1e-12, "{r:?}");
        let (w0, w1) = (r[0].weighted_mean.unwrap_or(0.0), r[1].weighted_mean.unwrap_or(0.0));
        assert!((w0 - 0.30).abs() < 1e-12 && (w1 - 0.28).abs() < 1e-12, "{r:?}");
        // Each period weighs half: var = ¼·v₀/1800 + ¼·v₁/200 (smoothed rates).
        let v = |x: f64, n: f64| {
            let p = (x + 1.0) / (n + 2.0);
            p * (1.0 - p) / n
        };
        let se0 = (0.25 * v(180.0, 1800.0) + 0.25 * v(100.0, 200.0)).sqrt();
        assert!((r[0].se.unwrap_or(0.0) - se0).abs() < 1e-15, "{r:?}");
        assert_eq!(r[0].units, 2000.0);
    }

    #[test]
    fn one_period_is_the_pooled_estimate() {
        let cells = [
            Cell { period: 0, arm: 0, units: 10.0, n: 4.0, sum: 10.0, sum_sq: 30.0 },
            Cell { period: 0, arm: 1, units: 10.0, n: 5.0, sum: 20.0, sum_sq: 90.0 },
        ];
        let r = estimates(2, MetricKind::Mean, &cells);
        assert_eq!(r[0].weighted_mean, r[0].pooled_mean);
        assert_eq!(r[1].weighted_mean, Some(4.0));
        // Sample variance (30 − 100/4)/3 = 5/3; se = √(5/3 / 4).
        assert!((r[0].se.unwrap_or(0.0) - (5.0f64 / 3.0 / 4.0).sqrt()).abs() < 1e-12);
        assert!((r[0].scale - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // Lower is better: the policies see the negated mean.
        assert_eq!(r[1].estimate(true).mean, Some(-4.0));
    }

    #[test]
    fn expected_shares_follow_the_weights_each_period_served() {
        // 1000 units at 50/50, then 3000 at 10/90.
        let e = expected_shares(&[1000.0, 3000.0], &[vec![0.5, 0.5], vec![0.1, 0.9]]).expect("shares");
        assert!((e[0] - (500.0 + 300.0) / 4000.0).abs() < 1e-12 && (e[1] - (500.0 + 2700.0) / 4000.0).abs() < 1e-12, "{e:?}");
        assert_eq!(expected_shares(&[0.0], &[vec![0.5, 0.5]]), None);
        assert_eq!(expected_shares(&[1.0, 1.0], &[vec![0.5, 0.5], vec![1.0]]), None);
    }

    #[test]
    fn arms_without_data_have_no_estimate() {
        let r = estimates(3, MetricKind::Mean, &[Cell { period: 0, arm: 0, units: 5.0, n: 1.0, sum: 2.0, sum_sq: 4.0 }]);
        // One value: a mean, but no spread to take a standard error from.
        assert_eq!((r[0].weighted_mean, r[0].se), (Some(2.0), None));
        assert_eq!((r[1].units, r[1].weighted_mean, r[1].pooled_mean), (0.0, None, None));
        assert!(estimates(0, MetricKind::Proportion, &[]).is_empty());
        // A cell naming an arm that does not exist is ignored.
        assert_eq!(estimates(1, MetricKind::Proportion, &[rate_cell(0, 7, 10.0, 0.5)])[0].units, 0.0);
    }
}
