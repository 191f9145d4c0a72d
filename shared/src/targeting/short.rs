//! Litmus's own short dialect: bare operator names (`{"country": {"in": ["US"]}}`), `and`/`or`/
//! `not`, query-string-friendly equality (`"31"` equals `31`). Grammar and semantics in
//! `shared/README.md`.

use std::cmp::Ordering;

use serde_json::Value;

use super::Attributes;
use crate::error::{ConfigError, join_path};

/// A parsed condition in this dialect.
#[derive(Debug, Clone)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Attr { name: String, tests: Vec<Test> },
}

#[derive(Debug, Clone)]
pub enum Test {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Cmp(Ordering, bool, Value),
    Exists(bool),
    Regex(regex_lite::Regex),
    Semver(semver::VersionReq),
}

pub const OPERATORS: &[&str] = &["eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "exists", "regex", "semver"];

/// Parses a condition; `null` is the empty condition. Errors carry the JSON path of the fault.
pub fn parse(v: &Value, path: &str) -> Result<Condition, ConfigError> {
    match v {
        Value::Null => Ok(Condition::All(Vec::new())),
        other => parse_condition(other, path),
    }
}

fn parse_condition(v: &Value, path: &str) -> Result<Condition, ConfigError> {
    let Value::Object(map) = v else {
        return Err(ConfigError::new(path, "a condition must be a JSON object"));
    };
    let mut all = Vec::with_capacity(map.len());
    for (key, value) in map {
        let here = join_path(path, key);
        all.push(match key.as_str() {
            "and" | "or" => {
                let Value::Array(items) = value else {
                    return Err(ConfigError::new(here, format!("`{key}` takes an array of conditions")));
                };
                if key == "or" && items.is_empty() {
                    return Err(ConfigError::new(here, "`or` needs at least one condition"));
                }
                let parsed = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| parse_condition(item, &format!("{here}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                if key == "and" { Condition::All(parsed) } else { Condition::Any(parsed) }
            }
            "not" => Condition::Not(Box::new(parse_condition(value, &here)?)),
            name => Condition::Attr { name: name.to_owned(), tests: parse_tests(value, &here)? },
        });
    }
    Ok(if all.len() == 1 { all.remove(0) } else { Condition::All(all) })
}

fn parse_tests(v: &Value, path: &str) -> Result<Vec<Test>, ConfigError> {
    let ops = match v {
        Value::Object(ops) => ops,
        // Short form: `{"plan":"pro"}` is `{"plan":{"eq":"pro"}}`.
        other => return Ok(vec![Test::Eq(other.clone())]),
    };
    if ops.is_empty() {
        return Err(ConfigError::new(path, format!("no operator given; use one of {}", OPERATORS.join(", "))));
    }
    ops.iter().map(|(op, arg)| parse_test(op, arg, &join_path(path, op))).collect()
}

fn parse_test(op: &str, arg: &Value, path: &str) -> Result<Test, ConfigError> {
    let err = |msg: &str| ConfigError::new(path, msg);
    let list = |arg: &Value| match arg {
        Value::Array(items) => Ok(items.clone()),
        _ => Err(err("expected an array of values")),
    };
    let ordered = |ord: Ordering, or_equal: bool| match arg {
        Value::Number(_) | Value::String(_) => Ok(Test::Cmp(ord, or_equal, arg.clone())),
        _ => Err(err("expected a number or a string")),
    };
    match op {
        "eq" => Ok(Test::Eq(arg.clone())),
        "ne" => Ok(Test::Ne(arg.clone())),
        "in" => Ok(Test::In(list(arg)?)),
        "nin" => Ok(Test::Nin(list(arg)?)),
        "gt" => ordered(Ordering::Greater, false),
        "gte" => ordered(Ordering::Greater, true),
        "lt" => ordered(Ordering::Less, false),
        "lte" => ordered(Ordering::Less, true),
        "exists" => arg.as_bool().map(Test::Exists).ok_or_else(|| err("expected true or false")),
        "regex" => {
            let pattern = arg.as_str().ok_or_else(|| err("expected a regular expression string"))?;
            regex_lite::Regex::new(pattern)
                .map(Test::Regex)
                .map_err(|e| err(&format!("invalid regular expression: {e}")))
        }
        "semver" => {
            let req = arg.as_str().ok_or_else(|| err("expected a version range string such as \">=1.2.0, <2\""))?;
            semver::VersionReq::parse(req)
                .map(Test::Semver)
                .map_err(|e| err(&format!("invalid version range: {e}")))
        }
        other => Err(err(&format!("unknown operator `{other}`; use one of {}", OPERATORS.join(", ")))),
    }
}

impl Condition {
    pub fn eval(&self, attrs: &Attributes) -> bool {
        match self {
            Condition::All(cs) => cs.iter().all(|c| c.eval(attrs)),
            Condition::Any(cs) => cs.iter().any(|c| c.eval(attrs)),
            Condition::Not(c) => !c.eval(attrs),
            Condition::Attr { name, tests } => {
                let value = lookup(attrs, name);
                tests.iter().all(|t| t.eval(value))
            }
        }
    }
}

/// `a.b` finds `{"a":{"b":..}}` unless an attribute is literally named `a.b`; `items.0.sku`
/// indexes into arrays, as GrowthBook's paths do.
fn lookup<'a>(attrs: &'a Attributes, name: &str) -> Option<&'a Value> {
    if let Some(v) = attrs.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut current = attrs.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok().filter(|i| i.to_string() == part)?)?,
            _ => return None,
        };
    }
    Some(current)
}

impl Test {
    fn eval(&self, value: Option<&Value>) -> bool {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            // A missing (or null) attribute is null: it satisfies the negative tests, and the
            // positive ones only where they name null (`{"user_id": null}`).
            return match self {
                Test::Eq(want) => want.is_null(),
                Test::Ne(want) => !want.is_null(),
                Test::In(list) => list.iter().any(Value::is_null),
                Test::Nin(list) => !list.iter().any(Value::is_null),
                Test::Exists(want) => !want,
                Test::Cmp(..) | Test::Regex(_) | Test::Semver(_) => false,
            };
        };
        match self {
            Test::Eq(want) => equals(value, want),
            Test::Ne(want) => !equals(value, want),
            Test::In(list) => list.iter().any(|w| equals(value, w)),
            Test::Nin(list) => !list.iter().any(|w| equals(value, w)),
            Test::Cmp(ord, or_equal, want) => {
                compare(value, want).is_some_and(|o| o == *ord || (*or_equal && o == Ordering::Equal))
            }
            Test::Exists(want) => *want,
            Test::Regex(re) => any_element(value, |v| as_text(v).is_some_and(|s| re.is_match(&s))),
            Test::Semver(req) => value.as_str().and_then(parse_version).is_some_and(|v| req.matches(&v)),
        }
    }
}

/// The attribute equals `want`: an array `want` is the whole array (`{"tags":["a","b"]}` is the
/// list `["a","b"]`, not "a tag that is the list"); a single `want` matches an array attribute
/// when any element equals it.
fn equals(value: &Value, want: &Value) -> bool {
    match want {
        Value::Array(_) => loose_eq(value, want),
        _ => any_element(value, |v| loose_eq(v, want)),
    }
}

/// Array attributes (e.g. `"tags":["a","b"]`) match when any element does.
fn any_element(value: &Value, f: impl Fn(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) if !items.is_empty() => items.iter().any(f),
        other => f(other),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        // Query-string attributes arrive as text: `?age=31` must still compare as a number.
        Value::String(s) => text_number(s),
        _ => None,
    }
}

/// A number written as text, as `str::parse::<f64>` reads it (after trimming). Plain digits, the
/// usual query-string number, are read directly: every integer below 10^15 is an exact `f64`,
/// and the general parser was the largest cost of a `gte` test on `?age=31` (profiled).
fn text_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if (1..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        return Some(s.bytes().fold(0_u64, |n, b| n * 10 + u64::from(b - b'0')) as f64);
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn as_text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// Equality that treats `"31"` and `31`, `"true"` and `true` as equal (attributes from query
/// strings are always text); otherwise exact JSON equality.
fn loose_eq(attr: &Value, want: &Value) -> bool {
    if let (Value::Array(a), Value::Array(w)) = (attr, want) {
        return a.len() == w.len() && a.iter().zip(w).all(|(a, w)| loose_eq(a, w));
    }
    if attr.is_number() || want.is_number() {
        return matches!((as_number(attr), as_number(want)), (Some(a), Some(b)) if a == b);
    }
    match (attr, want) {
        (Value::String(s), Value::Bool(b)) | (Value::Bool(b), Value::String(s)) => s == if *b { "true" } else { "false" },
        _ => attr == want,
    }
}

/// Numbers compare numerically (text attributes are parsed), strings lexicographically.
fn compare(attr: &Value, want: &Value) -> Option<Ordering> {
    match want {
        Value::Number(_) => as_number(attr)?.partial_cmp(&as_number(want)?),
        Value::String(w) => Some(as_text(attr)?.as_ref().cmp(w.as_str())),
        _ => None,
    }
}

/// Lenient version parsing: `v1.2` → `1.2.0`.
fn parse_version(s: &str) -> Option<semver::Version> {
    let s = s.trim().trim_start_matches(['v', 'V']);
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    let (core, rest) = match s.find(['-', '+']) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let padded = match core.split('.').count() {
        1 => format!("{core}.0.0{rest}"),
        2 => format!("{core}.0{rest}"),
        _ => return None,
    };
    semver::Version::parse(&padded).ok()
}

#[cfg(test)]
mod tests {
    use super::super::Targeting;
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Attributes {
        v.as_object().cloned().unwrap_or_default()
    }

    fn check(cond: Value, a: Value) -> bool {
        Targeting::parse(&cond).expect("valid condition").matches(&attrs(a))
    }

    #[test]
    fn short_forms() {
        assert!(check(json!({"plan":"pro"}), json!({"plan":"pro"})));
        assert!(!check(json!({"plan":"pro"}), json!({"plan":"free"})));
        assert!(check(json!({"country":{"in":["US","CA"]}}), json!({"country":"CA"})));
        assert!(check(json!({}), json!({})));
        assert!(check(json!(null), json!({"x":1})));
    }

    #[test]
    fn plain_digits_read_as_the_general_parser_reads_them() {
        let mut texts: Vec<String> = ["0", "00", "007", "31", " 42 ", "999999999999999", "9999999999999999", "1e3", "-0", "-5", "+7", "4.50", "", " ", "x1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let mut n: u64 = 1;
        while n < 10_u64.pow(17) {
            texts.extend([n.to_string(), (n - 1).to_string(), (n + 7).to_string(), format!("0{n}")]);
            n = n * 3 + 1;
        }
        for t in texts {
            let general = t.trim().parse::<f64>().ok().filter(|f| f.is_finite());
            assert_eq!(text_number(&t).map(f64::to_bits), general.map(f64::to_bits), "{t:?}");
        }
    }

    #[test]
    fn numbers_from_query_strings() {
        assert!(check(json!({"age":{"gte":18}}), json!({"age":"18"})));
        assert!(!check(json!({"age":{"gte":18}}), json!({"age":"17.5"})));
        assert!(!check(json!({"age":{"gte":18}}), json!({"age":"old"})));
        assert!(check(json!({"beta":true}), json!({"beta":"true"})));
        assert!(check(json!({"n":{"in":[1,2]}}), json!({"n":"2"})));
    }

    #[test]
    fn missing_attributes_only_satisfy_negative_tests() {
        let empty = json!({});
        assert!(check(json!({"c":{"ne":"US"}}), empty.clone()));
        assert!(check(json!({"c":{"nin":["US"]}}), empty.clone()));
        assert!(check(json!({"c":{"exists":false}}), empty.clone()));
        for op in ["eq", "gt", "gte", "lt", "lte", "regex", "semver"] {
            let arg = if op == "semver" { json!(">=1.0.0") } else { json!("a") };
            assert!(!check(json!({"c":{op:arg}}), empty.clone()), "{op}");
        }
        assert!(!check(json!({"c":{"in":["US"]}}), empty.clone()));
        assert!(check(json!({"c":null}), empty.clone()), "null names a missing attribute");
        assert!(check(json!({"c":{"in":["US",null]}}), json!({"c":null})));
        assert!(!check(json!({"c":{"ne":null}}), empty.clone()));
        assert!(!check(json!({"c":{"nin":[null]}}), empty.clone()));
        assert!(!check(json!({"c":null}), json!({"c":"US"})));
        assert!(!check(json!({"c":{"exists":true}}), json!({"c":null})));
    }

    #[test]
    fn boolean_combinators_and_nesting() {
        let cond = json!({"or":[{"country":"US"},{"and":[{"country":"CA"},{"not":{"plan":"free"}}]}]});
        assert!(check(cond.clone(), json!({"country":"US"})));
        assert!(check(cond.clone(), json!({"country":"CA","plan":"pro"})));
        assert!(!check(cond.clone(), json!({"country":"CA","plan":"free"})));
        assert!(check(json!({"user.plan":"pro"}), json!({"user":{"plan":"pro"}})));
    }

    #[test]
    fn regex_and_semver() {
        assert!(check(json!({"email":{"regex":"@example\\.com$"}}), json!({"email":"a@example.com"})));
        assert!(!check(json!({"email":{"regex":"@example\\.com$"}}), json!({"email":"a@example.org"})));
        assert!(check(json!({"app":{"semver":">=2.1.0, <3"}}), json!({"app":"2.4.1"})));
        assert!(check(json!({"app":{"semver":">=2.1.0"}}), json!({"app":"v2.1"})));
        assert!(!check(json!({"app":{"semver":">=2.1.0"}}), json!({"app":"2.0.9"})));
        assert!(!check(json!({"app":{"semver":">=2.1.0"}}), json!({"app":"banana"})));
    }

    #[test]
    fn an_array_equals_the_same_array() {
        // Regression: an array attribute was compared element by element against the whole list.
        assert!(check(json!({"tags":["a","b"]}), json!({"tags":["a","b"]})));
        assert!(check(json!({"tags":{"eq":["a"]}}), json!({"tags":["a"]})));
        assert!(check(json!({"v":[1,"2"]}), json!({"v":["1",2]})), "elements compare as scalars do");
        assert!(!check(json!({"tags":["a","b"]}), json!({"tags":["b","a"]})), "order matters");
        assert!(!check(json!({"tags":["a","b"]}), json!({"tags":["a"]})));
        assert!(!check(json!({"tags":["a"]}), json!({"tags":"a"})));
        assert!(check(json!({"tags":{"ne":["a","b"]}}), json!({"tags":["a"]})));
        assert!(!check(json!({"tags":{"ne":["a"]}}), json!({"tags":["a"]})));
        assert!(check(json!({"tags":{"in":[["a","b"],["c"]]}}), json!({"tags":["c"]})));
        assert!(check(json!({"tags":{"nin":[["a","b"]]}}), json!({"tags":["a"]})));
    }

    #[test]
    fn array_attributes_match_any_element() {
        assert!(check(json!({"tags":"beta"}), json!({"tags":["alpha","beta"]})));
        assert!(check(json!({"tags":{"nin":["x"]}}), json!({"tags":["alpha"]})));
        assert!(!check(json!({"tags":{"in":["x"]}}), json!({"tags":["alpha"]})));
    }

    #[test]
    fn errors_name_the_path() {
        let e = |v: Value| Targeting::parse(&v).expect_err("invalid");
        assert_eq!(e(json!({"or":[{"c":"US"},{"c":{"inn":[1]}}]})).path, "or[1].c.inn");
        assert_eq!(e(json!({"c":{"in":"US"}})).path, "c.in");
        assert_eq!(e(json!({"c":{"regex":"("}})).path, "c.regex");
        assert_eq!(e(json!({"c":{"semver":"not a range"}})).path, "c.semver");
        assert_eq!(e(json!({"c":{}})).path, "c");
        assert_eq!(e(json!({"and":{"c":1}})).path, "and");
        assert_eq!(e(json!({"or":[]})).path, "or");
        assert_eq!(e(json!({"not":[1]})).path, "not");
        assert_eq!(e(json!({"c":{"exists":"yes"}})).path, "c.exists");
        assert_eq!(e(json!({"c":{"gt":[1]}})).path, "c.gt");
        assert_eq!(e(json!("US")).path, "");
    }
}
