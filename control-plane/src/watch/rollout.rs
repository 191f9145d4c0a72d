//! Safe rollouts (pure): a ramp schedule that advances only while every guardrail holds and the
//! sample-ratio check passes, and rolls back (ramp 0 %) on a breach.
//!
//! `{"steps":[{"ramp_pct":5,"hold_seconds":3600},{"ramp_pct":25,"hold_seconds":3600},
//!            {"ramp_pct":50,"hold_seconds":3600},{"ramp_pct":100,"hold_seconds":0}],
//!   "guardrail_margin":0.0,"min_units_per_step":200}`
//!
//! Compared with GrowthBook's safe rollouts (one-sided sequential test per guardrail, SRM check,
//! 1 → 5 → 10 → 25 → 50 %): the same guards on our always-valid sequences (`rules::breach`),
//! any schedule, a margin per rollout, a minimum of new units before a step may advance (a hold
//! time with no traffic proves nothing), and every step audited with the numbers it rested on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rules::{Breach, Facts, breaches, fmt_p};

pub const MAX_STEPS: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    pub steps: Vec<Step>,
    /// Relative harm tolerated on every guardrail before it counts as a breach.
    #[serde(default)]
    pub guardrail_margin: f64,
    /// New exposed units a step needs before it may advance.
    #[serde(default)]
    pub min_units_per_step: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub ramp_pct: f64,
    #[serde(default)]
    pub hold_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ramping,
    Complete,
    RolledBack,
    /// Someone changed the ramp by hand: the schedule stops steering.
    Overridden,
}

/// Where a rollout stands (`experiments.rollout_state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub step: usize,
    pub step_started_at: DateTime<Utc>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl State {
    pub fn start(now: DateTime<Utc>) -> State {
        State { step: 0, step_started_at: now, outcome: Outcome::Ramping, reason: None }
    }
}

pub fn validate(r: &Rollout) -> Result<(), (String, String)> {
    if r.steps.is_empty() || r.steps.len() > MAX_STEPS {
        return Err(("rollout.steps".into(), format!("1 to {MAX_STEPS} steps")));
    }
    let mut last = 0.0;
    for (i, s) in r.steps.iter().enumerate() {
        if !(s.ramp_pct.is_finite() && s.ramp_pct > last && s.ramp_pct <= 100.0) {
            return Err((format!("rollout.steps[{i}].ramp_pct"), "ramps go strictly up, above 0 and at most 100".into()));
        }
        if !(s.hold_seconds.is_finite() && (0.0..=90.0 * 86_400.0).contains(&s.hold_seconds)) {
            return Err((format!("rollout.steps[{i}].hold_seconds"), "0 to 90 days in seconds".into()));
        }
        last = s.ramp_pct;
    }
    if !(r.guardrail_margin.is_finite() && (0.0..1.0).contains(&r.guardrail_margin)) {
        return Err(("rollout.guardrail_margin".into(), "a relative margin from 0 to below 1".into()));
    }
    if r.min_units_per_step < 0 {
        return Err(("rollout.min_units_per_step".into(), "0 or more".into()));
    }
    Ok(())
}

/// What the schedule says to do now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Hold { reason: String },
    Advance { from_pct: f64, to_pct: f64, step: usize },
    /// The last step held: the rollout is done at its final ramp.
    Complete { ramp_pct: f64 },
    Rollback { reason: String, breaches: Vec<Breach>, srm_p: Option<f64> },
}

/// `units_in_step`: exposed units whose first exposure is in the current step.
pub fn decide(plan: &Rollout, state: &State, facts: &Facts, units_in_step: i64, now: DateTime<Utc>) -> Decision {
    if state.outcome != Outcome::Ramping {
        return Decision::Hold { reason: format!("the rollout is {:?}", state.outcome).to_lowercase() };
    }
    let found = breaches(facts, None, plan.guardrail_margin);
    let srm = facts.srm.filter(|s| s.1).map(|s| s.0);
    if !found.is_empty() || srm.is_some() {
        let reason = match (found.first(), srm) {
            (Some(b), _) => format!(
                "guardrail `{}` breached by {} (always-valid p = {}, interval [{:.4}, {:.4}] beyond {:.4})",
                b.metric, b.variant, fmt_p(b.p_value), b.ci_low, b.ci_high, b.threshold
            ),
            (None, Some(p)) => format!("sample ratio mismatch (p = {})", fmt_p(p)),
            (None, None) => unreachable!("one of them is set"),
        };
        return Decision::Rollback { reason, breaches: found, srm_p: srm };
    }
    let Some(step) = plan.steps.get(state.step) else {
        return Decision::Complete { ramp_pct: plan.steps.last().map_or(0.0, |s| s.ramp_pct) };
    };
    let held = (now - state.step_started_at).num_milliseconds() as f64 / 1000.0;
    if held < step.hold_seconds {
        return Decision::Hold { reason: format!("step {} at {} % held {held:.0} of {:.0} s", state.step + 1, step.ramp_pct, step.hold_seconds) };
    }
    if units_in_step < plan.min_units_per_step {
        return Decision::Hold { reason: format!("step {} has {units_in_step} of {} new units", state.step + 1, plan.min_units_per_step) };
    }
    match plan.steps.get(state.step + 1) {
        Some(next) => Decision::Advance { from_pct: step.ramp_pct, to_pct: next.ramp_pct, step: state.step + 1 },
        None => Decision::Complete { ramp_pct: step.ramp_pct },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;
    use crate::results::{Direction, Role};
    use crate::watch::rules::Row;

    fn plan() -> Rollout {
        serde_json::from_value(json!({"steps": [{"ramp_pct": 5, "hold_seconds": 60}, {"ramp_pct": 25, "hold_seconds": 60}, {"ramp_pct": 100}],
                                      "min_units_per_step": 10})).expect("plan")
    }

    fn facts(seq: (f64, f64, f64), srm: bool) -> Facts {
        let row = Row {
            metric: "errors".into(), kind: "proportion", variant: "new".into(), role: Role::Guardrail, direction: Direction::Decrease,
            control_value: Some(0.1), variant_value: Some(0.1), rel_lift: Some(0.0), sequence: Some(seq),
        };
        Facts { running_seconds: 100.0, units: 500, arms: 2, srm: Some((if srm { 1e-5 } else { 0.5 }, srm)), rows: vec![row] }
    }

    #[test]
    fn validation() {
        assert!(validate(&plan()).is_ok());
        let bad = |v| validate(&serde_json::from_value(v).expect("shape")).expect_err("invalid").0;
        assert_eq!(bad(json!({"steps": []})), "rollout.steps");
        assert_eq!(bad(json!({"steps": [{"ramp_pct": 50}, {"ramp_pct": 25}]})), "rollout.steps[1].ramp_pct");
        assert_eq!(bad(json!({"steps": [{"ramp_pct": 0}]})), "rollout.steps[0].ramp_pct");
        assert_eq!(bad(json!({"steps": [{"ramp_pct": 5, "hold_seconds": -1}]})), "rollout.steps[0].hold_seconds");
        assert!(serde_json::from_value::<Rollout>(json!({"steps": [{"ramp_pct": 5, "hold": 1}]})).is_err());
    }

    #[test]
    fn advances_through_the_schedule_while_healthy() {
        let t0 = Utc::now();
        let healthy = facts((-0.01, 0.01, 0.9), false);
        let mut s = State::start(t0);
        assert!(matches!(decide(&plan(), &s, &healthy, 50, t0 + Duration::seconds(59)), Decision::Hold { .. }));
        assert!(matches!(decide(&plan(), &s, &healthy, 9, t0 + Duration::seconds(61)), Decision::Hold { .. }), "too few units");
        assert_eq!(decide(&plan(), &s, &healthy, 10, t0 + Duration::seconds(61)), Decision::Advance { from_pct: 5.0, to_pct: 25.0, step: 1 });
        s.step = 2;
        assert_eq!(decide(&plan(), &s, &healthy, 10, t0), Decision::Complete { ramp_pct: 100.0 });
        s.outcome = Outcome::Complete;
        assert!(matches!(decide(&plan(), &s, &healthy, 10, t0), Decision::Hold { .. }));
    }

    #[test]
    fn rolls_back_on_a_breach_or_a_mismatch_at_any_time() {
        let t0 = Utc::now();
        let s = State::start(t0);
        // Errors up by 2..6 points on a 10 % base: harmful beyond any margin under 20 %.
        match decide(&plan(), &s, &facts((0.02, 0.06, 0.001), false), 0, t0) {
            Decision::Rollback { breaches, srm_p: None, reason } => {
                assert_eq!(breaches.len(), 1);
                assert!(reason.contains("guardrail `errors`"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let mut lenient = plan();
        lenient.guardrail_margin = 0.25;
        assert!(matches!(decide(&lenient, &s, &facts((0.02, 0.06, 0.001), false), 0, t0), Decision::Hold { .. }));
        assert!(matches!(decide(&plan(), &s, &facts((-0.01, 0.01, 0.9), true), 0, t0), Decision::Rollback { srm_p: Some(_), .. }));
    }
}
