//! Stopping rules (pure): what an experiment declares under `rules`, their validation, and their
//! evaluation against [`Facts`], the readout's numbers. The watch job (`watch::evaluate`) turns
//! each [`Firing`] into an alert and its action.
//!
//! `[{"kind":"max_sample","units":20000,"action":"stop"},
//!   {"kind":"guardrail","metric":"latency_ms","margin":0.05,"action":"rollback"}]`
//!
//! Significance and guardrails use the always-valid (mSPRT) confidence sequence the readout
//! already carries, so a job that looks every few seconds does not inflate the error rate. A
//! guardrail is breached when the sequence lies wholly beyond `margin` (relative to control) in
//! the harmful direction. The sequence is two-sided at α = 0.05, so as a one-sided test it is
//! conservative: it never breaches more often than α under the null, at any number of looks.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::results::{Direction, MetricDecl, Results, Role};
use crate::stats::Analysis;

/// The level the always-valid decisions are taken at (the readout's α).
pub const ALPHA: f64 = 0.05;
pub const MAX_RULES: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub kind: RuleKind,
    #[serde(default)]
    pub action: Action,
    /// `max_duration`: days since launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<f64>,
    /// `max_sample`: exposed units over all arms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<i64>,
    /// `significance` (optional: every primary metric) and `guardrail` (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `guardrail`: how much worse than control, relative (0.05 = 5 %), before it counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    MaxDuration,
    MaxSample,
    Significance,
    Guardrail,
    Srm,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::MaxDuration => "max_duration",
            RuleKind::MaxSample => "max_sample",
            RuleKind::Significance => "significance",
            RuleKind::Guardrail => "guardrail",
            RuleKind::Srm => "srm",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Notify,
    Pause,
    Stop,
    /// Ramp to 0 %: every unit gets the control experience; the experiment keeps running.
    Rollback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Notify => "notify",
            Action::Pause => "pause",
            Action::Stop => "stop",
            Action::Rollback => "rollback",
        }
    }
}

/// `(field, message)` of the first problem, for a 422 naming the field.
pub fn validate(rules: &[Rule], metrics: &[MetricDecl]) -> Result<(), (String, String)> {
    if rules.len() > MAX_RULES {
        return Err(("rules".into(), format!("at most {MAX_RULES} rules")));
    }
    for (i, r) in rules.iter().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        let given = [("days", r.days.is_some()), ("units", r.units.is_some()), ("metric", r.metric.is_some()), ("margin", r.margin.is_some())];
        let wanted: &[&str] = match r.kind {
            RuleKind::MaxDuration => &["days"],
            RuleKind::MaxSample => &["units"],
            RuleKind::Significance => &["metric"],
            RuleKind::Guardrail => &["metric", "margin"],
            RuleKind::Srm => &[],
        };
        if let Some((f, _)) = given.iter().find(|(f, set)| *set && !wanted.contains(f)) {
            return Err((at(f), format!("`{f}` does not apply to a `{}` rule", r.kind.as_str())));
        }
        match r.kind {
            RuleKind::MaxDuration => match r.days {
                Some(d) if d.is_finite() && d > 0.0 && d <= 3650.0 => {}
                _ => return Err((at("days"), "a max_duration rule needs `days`, more than 0 and at most 3650".into())),
            },
            RuleKind::MaxSample => match r.units {
                Some(u) if u >= 1 => {}
                _ => return Err((at("units"), "a max_sample rule needs `units`, at least 1".into())),
            },
            RuleKind::Significance => {
                if let Some(m) = &r.metric
                    && !metrics.is_empty()
                    && !metrics.iter().any(|d| &d.name == m)
                {
                    return Err((at("metric"), format!("`{m}` is not among the experiment's declared metrics")));
                }
            }
            RuleKind::Guardrail => {
                let Some(m) = &r.metric else {
                    return Err((at("metric"), "a guardrail rule needs the `metric` it guards".into()));
                };
                if m.is_empty() || m.len() > 128 {
                    return Err((at("metric"), "must be 1 to 128 bytes".into()));
                }
                if r.margin.is_some_and(|x| !(x.is_finite() && (0.0..1.0).contains(&x))) {
                    return Err((at("margin"), "a relative margin from 0 (any harm) to below 1 (100 %)".into()));
                }
            }
            RuleKind::Srm => {}
        }
    }
    Ok(())
}

/// One lift row as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub kind: &'static str,
    pub variant: String,
    pub role: Role,
    pub direction: Direction,
    pub control_value: Option<f64>,
    pub variant_value: Option<f64>,
    pub rel_lift: Option<f64>,
    /// The always-valid confidence sequence of the difference and its p-value.
    pub sequence: Option<(f64, f64, f64)>,
}

/// What a readout says, reduced to what rules, rollouts and insights need.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub running_seconds: f64,
    /// Exposed units over all arms.
    pub units: i64,
    pub arms: usize,
    /// `(p, flagged)` of the sample-ratio check.
    pub srm: Option<(f64, bool)>,
    pub rows: Vec<Row>,
}

impl Facts {
    pub fn new(results: &Results, decls: &[MetricDecl], running_seconds: f64) -> Facts {
        let rows = results.lift.iter().map(|l| {
            let direction = decls.iter().find(|d| d.name == l.metric).map_or(Direction::Increase, |d| d.direction);
            let sequence = match &l.sequential {
                Some(Analysis::Ran(s)) => Some((s.ci_low, s.ci_high, s.p_value)),
                _ => None,
            };
            Row {
                metric: l.metric.clone(), kind: l.kind, variant: l.variant.clone(), role: l.role, direction,
                control_value: l.control_value, variant_value: l.variant_value, rel_lift: l.rel_lift, sequence,
            }
        }).collect();
        Facts {
            running_seconds,
            units: results.variants.iter().map(|v| v.exposures).sum(),
            arms: results.variants.len(),
            srm: results.srm.as_ref().map(|s| (s.p_value, s.flagged)),
            rows,
        }
    }
}

/// A guardrail's sequence lies wholly beyond `margin` in the harmful direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    pub metric: String,
    pub variant: String,
    pub control_value: Option<f64>,
    pub variant_value: Option<f64>,
    pub rel_lift: Option<f64>,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
    pub margin: f64,
    /// The difference beyond which it counts (margin × |control|, signed the harmful way).
    pub threshold: f64,
}

pub fn breach(row: &Row, margin: f64) -> Option<Breach> {
    let (lo, hi, p) = row.sequence?;
    let scale = row.control_value.map_or(0.0, f64::abs);
    let (threshold, harmful) = match row.direction {
        Direction::Increase => (-margin * scale, hi < -margin * scale),
        Direction::Decrease => (margin * scale, lo > margin * scale),
    };
    harmful.then(|| Breach {
        metric: row.metric.clone(), variant: row.variant.clone(), control_value: row.control_value, variant_value: row.variant_value,
        rel_lift: row.rel_lift, ci_low: lo, ci_high: hi, p_value: p, margin, threshold,
    })
}

/// Every breached guardrail row of `metric` (all declared guardrails when `None`).
pub fn breaches(facts: &Facts, metric: Option<&str>, margin: f64) -> Vec<Breach> {
    facts.rows.iter()
        .filter(|r| metric.map_or(r.role == Role::Guardrail, |m| r.metric == m))
        .filter_map(|r| breach(r, margin))
        .collect()
}

/// A rule whose condition holds, with the numbers that made it hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub index: usize,
    pub rule: Rule,
    pub title: String,
    pub details: Value,
    /// Stable across evaluations while the rule is unchanged: the alert's dedupe key.
    pub key: String,
}

/// Where each rule stands now (the console's rule states and `GET .../watch`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleState {
    pub index: usize,
    pub rule: Rule,
    pub holds: bool,
    /// In words: "1,204 of 20,000 units", "p = 0.21 (needs < 0.05)".
    pub progress: String,
}

pub fn evaluate(rules: &[Rule], facts: &Facts) -> (Vec<RuleState>, Vec<Firing>) {
    let mut states = Vec::new();
    let mut firings = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let (holds, progress, title, details) = check(rule, facts);
        if holds {
            firings.push(Firing { index, rule: rule.clone(), title, details, key: key(rule) });
        }
        states.push(RuleState { index, rule: rule.clone(), holds, progress });
    }
    (states, firings)
}

fn check(rule: &Rule, f: &Facts) -> (bool, String, String, Value) {
    match rule.kind {
        RuleKind::MaxDuration => {
            let days = rule.days.unwrap_or(f64::INFINITY);
            let ran = f.running_seconds / 86_400.0;
            let holds = ran >= days;
            (holds, format!("{ran:.2} of {days} days"), format!("ran {ran:.2} days, the maximum is {days}"),
             json!({"running_days": ran, "max_days": days}))
        }
        RuleKind::MaxSample => {
            let max = rule.units.unwrap_or(i64::MAX);
            (f.units >= max, format!("{} of {max} units", f.units), format!("{} units exposed, the maximum is {max}", f.units),
             json!({"units": f.units, "max_units": max}))
        }
        RuleKind::Significance => {
            let decided: Vec<&Row> = f.rows.iter()
                .filter(|r| rule.metric.as_deref().map_or(r.role == Role::Primary, |m| r.metric == m))
                .filter(|r| r.sequence.is_some_and(|s| s.2 < ALPHA))
                .collect();
            let best_p = f.rows.iter()
                .filter(|r| rule.metric.as_deref().map_or(r.role == Role::Primary, |m| r.metric == m))
                .filter_map(|r| r.sequence.map(|s| s.2))
                .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.min(p))));
            let progress = best_p.map_or("not enough data yet".into(), |p| format!("always-valid p = {} (decides below {ALPHA})", fmt_p(p)));
            let rows: Vec<Value> = decided.iter().map(|r| {
                let (lo, hi, p) = r.sequence.unwrap_or_default();
                json!({"metric": r.metric, "variant": r.variant, "p_value": p, "ci_low": lo, "ci_high": hi, "rel_lift": r.rel_lift})
            }).collect();
            let title = match decided.first() {
                Some(r) => format!("{} on `{}` is decided by the always-valid test (p = {})", r.variant, r.metric, fmt_p(r.sequence.map_or(1.0, |s| s.2))),
                None => String::new(),
            };
            (!decided.is_empty(), progress, title, json!({"alpha": ALPHA, "decided": rows}))
        }
        RuleKind::Guardrail => {
            let metric = rule.metric.as_deref().unwrap_or("");
            let margin = rule.margin.unwrap_or(0.0);
            let found = breaches(f, Some(metric), margin);
            let progress = if found.is_empty() {
                match f.rows.iter().filter(|r| r.metric == metric).filter_map(|r| r.rel_lift).next() {
                    Some(l) => format!("holds (lift {:+.2} %, margin {:.1} %)", l * 100.0, margin * 100.0),
                    None => "holds (no data on the metric yet)".into(),
                }
            } else {
                "breached".into()
            };
            let title = found.first().map_or(String::new(), |b| {
                format!("guardrail `{}` breached by {}: worse than control beyond a {:.1} % margin (always-valid p = {})",
                        b.metric, b.variant, margin * 100.0, fmt_p(b.p_value))
            });
            (!found.is_empty(), progress, title, json!({"breaches": found}))
        }
        RuleKind::Srm => match f.srm {
            Some((p, flagged)) => (flagged, format!("p = {} (fires below 0.001)", fmt_p(p)),
                                   format!("sample ratio mismatch: p = {} (below 0.001)", fmt_p(p)), json!({"p_value": p})),
            None => (false, "not enough data yet".into(), String::new(), json!({})),
        },
    }
}

/// A p-value in words: four decimals, or two significant digits once that would read 0.0000.
pub fn fmt_p(p: f64) -> String {
    if p < 1e-4 { format!("{p:.1e}") } else { format!("{p:.4}") }
}

/// A rule's identity for deduplication: its definition, so an edited rule may fire again and an
/// unchanged one fires once however often it is evaluated.
pub fn key(rule: &Rule) -> String {
    let h = crate::results::fnv1a(serde_json::to_string(rule).unwrap_or_default().bytes());
    format!("rule:{}:{h:016x}", rule.kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> Rule {
        serde_json::from_value(v).expect("rule")
    }

    fn row(metric: &str, role: Role, direction: Direction, control: f64, seq: (f64, f64, f64)) -> Row {
        Row {
            metric: metric.into(), kind: "mean", variant: "treatment".into(), role, direction, control_value: Some(control),
            variant_value: Some(control + (seq.0 + seq.1) / 2.0), rel_lift: Some((seq.0 + seq.1) / 2.0 / control), sequence: Some(seq),
        }
    }

    fn facts(rows: Vec<Row>) -> Facts {
        Facts { running_seconds: 3.0 * 86_400.0, units: 5_000, arms: 2, srm: Some((0.4, false)), rows }
    }

    #[test]
    fn validation_names_the_field() {
        let ok = |v: Value| validate(&[rule(v)], &[]);
        assert!(ok(json!({"kind": "max_duration", "days": 14, "action": "stop"})).is_ok());
        assert_eq!(ok(json!({"kind": "max_duration"})).expect_err("invalid").0, "rules[0].days");
        assert_eq!(ok(json!({"kind": "max_sample", "units": 0})).expect_err("invalid").0, "rules[0].units");
        assert_eq!(ok(json!({"kind": "srm", "days": 3})).expect_err("invalid").0, "rules[0].days");
        assert_eq!(ok(json!({"kind": "guardrail"})).expect_err("invalid").0, "rules[0].metric");
        assert_eq!(ok(json!({"kind": "guardrail", "metric": "x", "margin": 1.5})).expect_err("invalid").0, "rules[0].margin");
        assert!(serde_json::from_value::<Rule>(json!({"kind": "sometime"})).is_err());
        assert!(serde_json::from_value::<Rule>(json!({"kind": "srm", "action": "explode"})).is_err());
        let many: Vec<Rule> = (0..=MAX_RULES).map(|_| rule(json!({"kind": "srm"}))).collect();
        assert_eq!(validate(&many, &[]).expect_err("invalid").0, "rules");
    }

    #[test]
    fn duration_and_sample_fire_at_their_limits_only() {
        let f = facts(vec![]);
        let rules = [rule(json!({"kind": "max_duration", "days": 3})), rule(json!({"kind": "max_duration", "days": 3.5})),
                     rule(json!({"kind": "max_sample", "units": 5000})), rule(json!({"kind": "max_sample", "units": 5001}))];
        let (states, firings) = evaluate(&rules, &f);
        assert_eq!(firings.iter().map(|x| x.index).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(states[3].progress, "5000 of 5001 units");
        assert_eq!(firings[1].details["units"], 5000);
    }

    #[test]
    fn significance_needs_the_always_valid_p_of_a_primary_metric() {
        let decided = row("revenue", Role::Primary, Direction::Increase, 10.0, (0.1, 0.9, 0.01));
        let open = row("revenue", Role::Primary, Direction::Increase, 10.0, (-0.1, 0.9, 0.2));
        let secondary = row("clicks", Role::Secondary, Direction::Increase, 10.0, (0.1, 0.9, 0.001));
        let r = [rule(json!({"kind": "significance", "action": "stop"}))];
        assert_eq!(evaluate(&r, &facts(vec![decided.clone()])).1.len(), 1);
        assert!(evaluate(&r, &facts(vec![open, secondary.clone()])).1.is_empty());
        // Naming a metric looks at that metric whatever its role.
        assert_eq!(evaluate(&[rule(json!({"kind": "significance", "metric": "clicks"}))], &facts(vec![secondary])).1.len(), 1);
    }

    #[test]
    fn guardrail_respects_direction_and_margin() {
        // Latency (lower is better) up by 0.5..1.5 ms on a 10 ms control: 5 %..15 % worse.
        let latency = row("latency", Role::Guardrail, Direction::Decrease, 10.0, (0.5, 1.5, 0.001));
        assert!(breach(&latency, 0.0).is_some());
        assert!(breach(&latency, 0.04).is_some());
        assert!(breach(&latency, 0.05).is_none(), "the sequence reaches the margin: not beyond it");
        // The same numbers on a metric where up is good are no breach at all.
        let revenue = Row { direction: Direction::Increase, ..latency.clone() };
        assert!(breach(&revenue, 0.0).is_none());
        let down = row("revenue", Role::Guardrail, Direction::Increase, 10.0, (-1.5, -0.5, 0.001));
        assert_eq!(breach(&down, 0.02).map(|b| b.threshold), Some(-0.2));
        // Undecided (the sequence covers 0): holds.
        assert!(breach(&row("latency", Role::Guardrail, Direction::Decrease, 10.0, (-0.5, 1.5, 0.3)), 0.0).is_none());
        let r = [rule(json!({"kind": "guardrail", "metric": "latency", "margin": 0.02, "action": "rollback"}))];
        let (_, fired) = evaluate(&r, &facts(vec![latency]));
        assert_eq!(fired[0].rule.action, Action::Rollback);
        assert_eq!(fired[0].details["breaches"][0]["variant"], "treatment");
    }

    #[test]
    fn srm_fires_below_its_threshold() {
        let mut f = facts(vec![]);
        let r = [rule(json!({"kind": "srm", "action": "pause"}))];
        assert!(evaluate(&r, &f).1.is_empty());
        f.srm = Some((1e-6, true));
        assert_eq!(evaluate(&r, &f).1[0].details["p_value"], 1e-6);
        f.srm = None;
        assert!(evaluate(&r, &f).1.is_empty());
    }

    #[test]
    fn p_values_in_words() {
        assert_eq!((fmt_p(0.04213), fmt_p(0.0001), fmt_p(4.2106e-5), fmt_p(2.5396e-10)), ("0.0421".into(), "0.0001".into(), "4.2e-5".into(), "2.5e-10".into()));
    }

    #[test]
    fn the_key_follows_the_definition() {
        let a = rule(json!({"kind": "max_sample", "units": 10}));
        let b = rule(json!({"kind": "max_sample", "units": 11}));
        assert_eq!(key(&a), key(&a.clone()));
        assert_ne!(key(&a), key(&b));
        assert!(key(&a).starts_with("rule:max_sample:"));
    }
}
