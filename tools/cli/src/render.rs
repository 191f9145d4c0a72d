//! Text for people: tables of experiments and alerts, an experiment's settings, and the results
//! readout. Everything reads `serde_json::Value` leniently, so a field the server adds or drops
//! later shows as `-` instead of failing the command.

use std::fmt::Write as _;

use serde_json::Value;

/// Left-aligned columns, two spaces apart; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

pub fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `2026-12-02T12:37:41.268308Z` → `2026-12-02 12:37:41`.
pub fn time(v: &Value) -> String {
    match v.as_str() {
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(d) => d.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S").to_string(),
            Err(_) => t.to_owned(),
        },
        None => "-".into(),
    }
}

/// Four significant digits, without exponent notation for everyday magnitudes.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    let decimals = if a == 0.0 { 0 } else if a >= 1000.0 { 1 } else if a >= 10.0 { 2 } else if a >= 1.0 { 3 } else { 4 };
    if a != 0.0 && a < 0.0001 {
        return format!("{x:.2e}");
    }
    format!("{x:.decimals$}")
}

pub fn pct(x: f64) -> String {
    if x.is_finite() { format!("{:.2} %", x * 100.0) } else { "-".into() }
}

pub fn signed_pct(x: f64) -> String {
    if x.is_finite() { format!("{:+.2} %", x * 100.0) } else { "-".into() }
}

pub fn p_value(v: &Value) -> String {
    match v.as_f64() {
        Some(p) if p < 0.0001 => "<0.0001".into(),
        Some(p) => format!("{p:.4}"),
        None => "-".into(),
    }
}

pub fn experiments(list: &[Value]) -> String {
    if list.is_empty() {
        return "no experiments\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            let variants: Vec<String> = e["variants"].as_array().into_iter().flatten().map(|v| s(&v["key"])).collect();
            vec![s(&e["key"]), s(&e["status"]), s(&e["type"]), ramp(&e["ramp_pct"]), variants.join(","), time(&e["started_at"])]
        })
        .collect();
    table(&["KEY", "STATUS", "TYPE", "RAMP", "VARIANTS", "STARTED"], &rows)
}

fn ramp(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |r| format!("{r} %"))
}

fn compact(v: &Value) -> String {
    if v.is_null() { "-".into() } else { v.to_string() }
}

pub fn experiment(e: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} — {}", s(&e["key"]), s(&e["name"]));
    let desc = s(&e["description"]);
    if desc != "-" && !desc.is_empty() {
        let _ = writeln!(out, "{desc}");
    }
    out.push('\n');
    let fields = [
        ("id", s(&e["id"])),
        ("status", format!("{} (version {})", s(&e["status"]), s(&e["version"]))),
        ("type", s(&e["type"])),
        ("ramp", ramp(&e["ramp_pct"])),
        ("unit type", s(&e["unit_type"])),
        ("owner", format!("{} (created by {})", s(&e["owner_team"]), s(&e["created_by"]))),
        ("layer", s(&e["layer"])),
        ("targeting", compact(&e["targeting"])),
        ("created", time(&e["created_at"])),
        ("started", time(&e["started_at"])),
        ("stopped", time(&e["stopped_at"])),
    ];
    for (k, v) in fields {
        let _ = writeln!(out, "{k:<11}{v}");
    }
    let variants: Vec<Vec<String>> = e["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| vec![s(&v["key"]), s(&v["name"]), s(&v["weight"]), compact(&v["config_json"])])
        .collect();
    out.push_str("\nvariants\n");
    out.push_str(&indent(&table(&["KEY", "NAME", "WEIGHT", "CONFIG"], &variants)));
    if let Some(m) = e["metrics"].as_array().filter(|m| !m.is_empty()) {
        let rows: Vec<Vec<String>> = m.iter().map(|m| vec![s(&m["name"]), s(&m["kind"]), s(&m["role"]), s(&m["direction"]), s(&m["mde"])]).collect();
        out.push_str("\nmetrics\n");
        out.push_str(&indent(&table(&["NAME", "KIND", "ROLE", "DIRECTION", "MDE"], &rows)));
    }
    if let Some(rules) = e["rules"].as_array().filter(|r| !r.is_empty()) {
        out.push_str("\nstopping rules\n");
        for r in rules {
            let _ = writeln!(out, "  {}", r);
        }
    }
    if !e["rollout"].is_null() {
        let _ = writeln!(out, "\nrollout    {}", e["rollout"]);
        let _ = writeln!(out, "state      {}", compact(&e["rollout_state"]));
    }
    out
}

fn indent(t: &str) -> String {
    t.lines().map(|l| format!("  {l}\n")).collect()
}

/// The metrics of a readout in the order the server lists lifts, then any without a lift (a
/// metric only one arm has seen so far), each with its kind: a name can be both a mean and a rate.
pub fn metrics(doc: &Value) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut add = |name: &str, kind: &'static str| {
        if !out.iter().any(|(n, k)| n == name && *k == kind) {
            out.push((name.to_owned(), kind));
        }
    };
    for l in doc["lift"].as_array().into_iter().flatten() {
        if let Some(m) = l["metric"].as_str() {
            add(m, if l["kind"] == "proportion" { "proportion" } else { "mean" });
        }
    }
    for v in doc["variants"].as_array().into_iter().flatten() {
        for name in v["metrics"].as_object().into_iter().flatten().map(|(k, _)| k) {
            add(name, "mean");
        }
        for name in v["conversions"].as_object().into_iter().flatten().map(|(k, _)| k) {
            add(name, "proportion");
        }
    }
    // Primary metrics first: they decide the experiment.
    let rank = |name: &str| match doc["lift"].as_array().into_iter().flatten().find(|l| l["metric"] == name).and_then(|l| l["role"].as_str()) {
        Some("primary") => 0,
        Some("guardrail") => 1,
        _ => 2,
    };
    out.sort_by_key(|(name, _)| rank(name));
    out
}

/// One metric's rows: (variant, units, mean or rate, lift, CI, p, P(best)).
pub fn metric_rows(doc: &Value, metric: &str, kind: &str) -> Vec<[String; 7]> {
    let lift = |variant: &str| {
        doc["lift"].as_array().into_iter().flatten().find(|l| l["metric"] == metric && l["variant"] == variant && (l["kind"] == "proportion") == (kind == "proportion"))
    };
    let best = doc["bayesian"].as_array().into_iter().flatten().find(|b| b["metric"] == metric && (b["kind"] == "proportion") == (kind == "proportion"));
    let control = doc["control"].as_str().unwrap_or_default();
    doc["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let key = v["key"].as_str().unwrap_or("-");
            let summary = if kind == "proportion" { &v["conversions"][metric] } else { &v["metrics"][metric] };
            let value = if kind == "proportion" { summary["rate"].as_f64().map_or("-".into(), pct) } else { summary["mean"].as_f64().map_or("-".into(), num) };
            let (rel, ci, p) = match lift(key) {
                Some(l) => {
                    let ci = match (l["ci_low"].as_f64(), l["ci_high"].as_f64()) {
                        (Some(lo), Some(hi)) if kind == "proportion" => format!("[{:+.2}, {:+.2}] pp", lo * 100.0, hi * 100.0),
                        (Some(lo), Some(hi)) => format!("[{}, {}]", num(lo), num(hi)),
                        _ => l["note"].as_str().map_or("-".into(), |n| n.chars().take(40).collect()),
                    };
                    (l["rel_lift"].as_f64().map_or("-".into(), signed_pct), ci, p_value(&l["p_value"]))
                }
                None if key == control => ("(control)".into(), String::new(), String::new()),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let pbest = best.and_then(|b| b["prob_best"][key].as_f64()).map_or("-".into(), |p| format!("{p:.3}"));
            [key.to_owned(), summary["units"].as_i64().map_or("0".into(), |u| u.to_string()), value, rel, ci, p, pbest]
        })
        .collect()
}

pub fn srm_line(doc: &Value) -> String {
    let srm = &doc["srm"];
    if srm.is_null() {
        return "SRM: not checked yet (no exposures)".into();
    }
    let observed: Vec<String> = srm["observed"].as_array().into_iter().flatten().map(s).collect();
    let expected: Vec<String> = srm["expected"].as_array().into_iter().flatten().map(|e| e.as_f64().map_or("-".into(), |x| format!("{:.0} %", x * 100.0))).collect();
    let verdict = if srm["flagged"].as_bool() == Some(true) { "MISMATCH: units do not split as configured" } else { "ok" };
    let p = p_value(&srm["p_value"]);
    let p = if p.starts_with('<') { format!("p {}", p.replacen('<', "< ", 1)) } else { format!("p = {p}") };
    format!("SRM: {verdict} ({p}; observed {}, expected {})", observed.join(" / "), expected.join(" / "))
}

pub fn results(doc: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} · {} · version {} · control {} · generated {}", s(&doc["experiment"]), s(&doc["status"]), s(&doc["version"]), s(&doc["control"]), time(&doc["generated_at"]));
    let exposures: Vec<String> = doc["variants"].as_array().into_iter().flatten().map(|v| format!("{} {}", s(&v["key"]), s(&v["exposures"]))).collect();
    let _ = writeln!(out, "exposures: {}", exposures.join(", "));
    let _ = writeln!(out, "{}", srm_line(doc));
    let all = metrics(doc);
    if all.is_empty() {
        out.push_str("\nno metric or conversion events yet\n");
    }
    for (metric, kind) in all {
        let role = doc["lift"].as_array().into_iter().flatten().find(|l| l["metric"] == metric.as_str()).and_then(|l| l["role"].as_str()).unwrap_or("secondary");
        let _ = writeln!(out, "\n{metric} ({}, {role})", if kind == "proportion" { "rate" } else { "mean" });
        let rows: Vec<Vec<String>> = metric_rows(doc, &metric, kind).into_iter().map(Vec::from).collect();
        let value = if kind == "proportion" { "RATE" } else { "MEAN" };
        out.push_str(&indent(&table(&["VARIANT", "UNITS", value, "LIFT", "95% CI", "P-VALUE", "P(BEST)"], &rows)));
    }
    if let Some(q) = doc["quarantined_events"].as_i64().filter(|q| *q > 0) {
        let _ = writeln!(out, "\n{q} events quarantined (not in these numbers)");
    }
    if let Some(note) = doc["note"].as_str() {
        let _ = writeln!(out, "\nnote: {note}");
    }
    out
}

pub fn alerts(list: &[Value]) -> String {
    if list.is_empty() {
        return "no alerts\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let acked = if a["acknowledged_at"].is_null() { "no".into() } else { format!("by {}", s(&a["acknowledged_by"])) };
            vec![s(&a["id"]), time(&a["created_at"]), s(&a["experiment_key"]), s(&a["kind"]), s(&a["severity"]), s(&a["action"]), acked, s(&a["title"])]
        })
        .collect();
    table(&["ID", "RAISED", "EXPERIMENT", "KIND", "SEVERITY", "ACTION", "ACKED", "TITLE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(num(102.0435), "102.04");
        assert_eq!(num(0.13213), "0.1321");
        assert_eq!(num(13979.96), "13980.0");
        assert_eq!(num(-5.67091), "-5.671");
        assert_eq!(p_value(&json!(0.00001)), "<0.0001");
        assert_eq!(signed_pct(0.0053), "+0.53 %");
    }

    #[test]
    fn a_readout_missing_fields_still_renders() {
        let text = results(&json!({"experiment": "x", "variants": [{"key": "a"}], "lift": [{"metric": "m"}]}));
        assert!(text.contains("SRM: not checked yet"), "{text}");
        assert!(text.contains("m (mean, secondary)"), "{text}");
    }
}
