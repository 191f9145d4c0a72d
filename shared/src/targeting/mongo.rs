//! GrowthBook's condition language (MongoDB-style `$`-operators), with the semantics of
//! GrowthBook's SDK `evalCondition`: a condition pasted from GrowthBook answers here as it does
//! there (the SDK's own test cases, `testdata/growthbook-conditions.json`, pin it). Values are
//! compared as JavaScript compares them ([`super::js`]).
//!
//! One deliberate difference: what GrowthBook silently evaluates to false because it cannot mean
//! anything (an unknown operator, an invalid regular expression, `$in` with a non-array) is
//! refused when the condition is parsed, with the JSON path of the fault.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::{SavedGroups, js, short, version};
use crate::error::{ConfigError, join_path};

/// A condition document: every entry must hold.
#[derive(Debug, Clone)]
pub struct Condition(Vec<Entry>);

#[derive(Debug, Clone)]
enum Entry {
    Or(Vec<Condition>),
    Nor(Vec<Condition>),
    And(Vec<Condition>),
    Not(Box<Condition>),
    Path(Vec<String>, Test),
}

/// What a value at a path must satisfy (`evalConditionValue`).
#[derive(Debug, Clone)]
enum Test {
    /// `value + "" === s`.
    Str(String),
    /// `value * 1 === n`.
    Num(f64),
    /// `value !== null && !!value === b`.
    Bool(bool),
    Null,
    /// An array or an object that is not all operators: `JSON.stringify` equality.
    Literal(Value),
    Ops(Vec<Op>),
}

#[derive(Debug, Clone)]
enum Op {
    Version(Ordering, bool, String),
    VersionNe(String),
    Eq(Value),
    Ne(Value),
    Cmp(Ordering, bool, Value),
    Exists(bool),
    In { values: Vec<Value>, insensitive: bool, negate: bool },
    InGroup { group: String, negate: bool },
    Not(Box<Test>),
    Size(Box<Test>),
    ElemMatch(ElemMatch),
    All { tests: Vec<Test>, insensitive: bool },
    /// The regex, and whether it is `$regexi` (non-ASCII letters folded, see [`fold_non_ascii`]).
    Regex(regex_lite::Regex, bool),
    Type(String),
}

#[derive(Debug, Clone)]
enum ElemMatch {
    Value(Box<Test>),
    Condition(Box<Condition>),
}

pub const OPERATORS: &[&str] = &[
    "$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$ini", "$nini", "$all", "$alli", "$elemMatch", "$size",
    "$exists", "$type", "$regex", "$regexi", "$not", "$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte", "$inGroup",
    "$notInGroup",
];

/// What `$type` can answer (GrowthBook's `getType`).
const TYPES: &[&str] = &["null", "array", "string", "number", "boolean", "object", "undefined", "unknown"];

pub fn parse(v: &Value, path: &str) -> Result<Condition, ConfigError> {
    let Value::Object(map) = v else {
        return Err(ConfigError::new(path, "a condition must be a JSON object"));
    };
    let mut entries = Vec::with_capacity(map.len());
    for (key, value) in map {
        let here = join_path(path, key);
        let list = |value: &Value| match value {
            Value::Array(items) => {
                items.iter().enumerate().map(|(i, c)| parse(c, &format!("{here}[{i}]"))).collect::<Result<Vec<_>, _>>()
            }
            _ => Err(ConfigError::new(&here, format!("`{key}` takes an array of conditions"))),
        };
        entries.push(match key.as_str() {
            "$or" => Entry::Or(list(value)?),
            "$nor" => Entry::Nor(list(value)?),
            "$and" => Entry::And(list(value)?),
            "$not" => Entry::Not(Box::new(parse(value, &here)?)),
            "$savedGroup" => {
                return Err(ConfigError::new(here, "`$savedGroup` is not supported; use `$inGroup`/`$notInGroup` with a saved group's id"));
            }
            "and" | "or" | "not" => {
                return Err(ConfigError::new(
                    here,
                    format!("mixes the two dialects: this condition uses `$`-operators, so write `${key}`"),
                ));
            }
            name => Entry::Path(name.split('.').map(str::to_owned).collect(), parse_test(value, &here)?),
        });
    }
    Ok(Condition(entries))
}

fn is_operator_object(map: &Map<String, Value>) -> bool {
    !map.is_empty() && map.keys().all(|k| k.starts_with('$'))
}

fn parse_test(v: &Value, path: &str) -> Result<Test, ConfigError> {
    Ok(match v {
        Value::String(s) => Test::Str(s.clone()),
        Value::Number(n) => Test::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::Bool(b) => Test::Bool(*b),
        Value::Null => Test::Null,
        Value::Array(_) => Test::Literal(v.clone()),
        Value::Object(map) if is_operator_object(map) => {
            Test::Ops(map.iter().map(|(op, arg)| parse_op(op, arg, &join_path(path, op))).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => {
            if map.keys().any(|k| k.starts_with('$')) {
                return Err(ConfigError::new(path, "mixes `$`-operators with plain fields; GrowthBook would compare it as a literal object, which is never what is meant"));
            }
            if !map.is_empty() && map.keys().all(|k| short::OPERATORS.contains(&k.as_str())) {
                return Err(ConfigError::new(path, "mixes the two dialects: this condition uses `$`-operators, so write them with `$` here too"));
            }
            Test::Literal(v.clone())
        }
    })
}

fn parse_op(op: &str, arg: &Value, path: &str) -> Result<Op, ConfigError> {
    let err = |msg: &str| ConfigError::new(path, msg);
    let array = || match arg {
        Value::Array(items) => Ok(items.clone()),
        _ => Err(err("expected an array")),
    };
    let version = |ord, or_equal| Op::Version(ord, or_equal, version::padded(arg));
    let regex = |insensitive: bool| {
        let pattern = arg.as_str().ok_or_else(|| err("expected a regular expression string"))?;
        let pattern = if insensitive { fold_non_ascii(pattern) } else { std::borrow::Cow::Borrowed(pattern) };
        regex_lite::RegexBuilder::new(&pattern)
            .case_insensitive(insensitive)
            .build()
            .map(|re| Op::Regex(re, insensitive))
            .map_err(|e| err(&format!("invalid regular expression (regex-lite syntax: no look-around or back-references): {e}")))
    };
    Ok(match op {
        "$veq" => version(Ordering::Equal, true),
        "$vne" => Op::VersionNe(version::padded(arg)),
        "$vgt" => version(Ordering::Greater, false),
        "$vgte" => version(Ordering::Greater, true),
        "$vlt" => version(Ordering::Less, false),
        "$vlte" => version(Ordering::Less, true),
        "$eq" => Op::Eq(arg.clone()),
        "$ne" => Op::Ne(arg.clone()),
        "$lt" => Op::Cmp(Ordering::Less, false, arg.clone()),
        "$lte" => Op::Cmp(Ordering::Less, true, arg.clone()),
        "$gt" => Op::Cmp(Ordering::Greater, false, arg.clone()),
        "$gte" => Op::Cmp(Ordering::Greater, true, arg.clone()),
        "$exists" => Op::Exists(js::truthy(arg)),
        "$in" | "$nin" | "$ini" | "$nini" => {
            Op::In { values: array()?, insensitive: op.ends_with('i'), negate: op.starts_with("$n") }
        }
        "$inGroup" | "$notInGroup" => Op::InGroup {
            group: arg.as_str().ok_or_else(|| err("expected a saved group's id"))?.to_owned(),
            negate: op == "$notInGroup",
        },
        "$not" => Op::Not(Box::new(parse_test(arg, path)?)),
        "$size" => Op::Size(Box::new(parse_test(arg, path)?)),
        "$elemMatch" => match arg {
            Value::Object(map) if is_operator_object(map) => Op::ElemMatch(ElemMatch::Value(Box::new(parse_test(arg, path)?))),
            Value::Object(_) => Op::ElemMatch(ElemMatch::Condition(Box::new(parse(arg, path)?))),
            _ => return Err(err("expected a condition object")),
        },
        "$all" | "$alli" => Op::All {
            tests: array()?.iter().enumerate().map(|(i, t)| parse_test(t, &format!("{path}[{i}]"))).collect::<Result<_, _>>()?,
            insensitive: op == "$alli",
        },
        "$regex" => regex(false)?,
        "$regexi" => regex(true)?,
        "$type" => match arg.as_str() {
            Some(t) if TYPES.contains(&t) => Op::Type(t.to_owned()),
            _ => return Err(err(&format!("expected one of {}", TYPES.join(", ")))),
        },
        other => return Err(err(&format!("unknown operator `{other}`; use one of {}", OPERATORS.join(", ")))),
    })
}

static NULL: Value = Value::Null;

/// Where paths are looked up: the attributes, or (in `$elemMatch`) an array's element.
#[derive(Clone, Copy)]
pub enum Root<'a> {
    Attributes(&'a Map<String, Value>),
    Value(&'a Value),
}

/// `getPath`: `a.b.0` walks objects and arrays (an index, or `length`); anything missing is null.
fn lookup<'a>(root: Root<'a>, path: &[String]) -> Cow<'a, Value> {
    let mut current = match root {
        Root::Attributes(map) => Cow::Borrowed(map.get(&path[0]).unwrap_or(&NULL)),
        Root::Value(v) => step(v, &path[0]),
    };
    for part in &path[1..] {
        current = match current {
            Cow::Borrowed(v) => step(v, part),
            // A length is a number, and a number has no parts.
            Cow::Owned(_) => Cow::Borrowed(&NULL),
        };
    }
    current
}

fn step<'a>(v: &'a Value, part: &str) -> Cow<'a, Value> {
    let found = match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) if part == "length" => return Cow::Owned(Value::from(items.len())),
        Value::Array(items) => part.parse::<usize>().ok().filter(|n| n.to_string() == part).and_then(|n| items.get(n)),
        _ => None,
    };
    Cow::Borrowed(found.unwrap_or(&NULL))
}

impl Condition {
    pub fn eval(&self, root: Root<'_>, groups: &SavedGroups) -> bool {
        self.0.iter().all(|entry| match entry {
            Entry::Or(cs) => cs.is_empty() || cs.iter().any(|c| c.eval(root, groups)),
            Entry::Nor(cs) => !(cs.is_empty() || cs.iter().any(|c| c.eval(root, groups))),
            Entry::And(cs) => cs.iter().all(|c| c.eval(root, groups)),
            Entry::Not(c) => !c.eval(root, groups),
            Entry::Path(path, test) => test.eval(&lookup(root, path), groups, false),
        })
    }
}

impl Test {
    fn eval(&self, value: &Value, groups: &SavedGroups, insensitive: bool) -> bool {
        match self {
            Test::Str(s) if insensitive => js::to_lower(&js::as_text(value)) == js::to_lower(s),
            Test::Str(s) => js::as_text(value) == s.as_str(),
            Test::Num(n) => js::to_number(value) == *n,
            Test::Bool(b) => !value.is_null() && js::truthy(value) == *b,
            Test::Null => value.is_null(),
            Test::Literal(want) => js::json_eq(value, want),
            Test::Ops(ops) => ops.iter().all(|op| op.eval(value, groups)),
        }
    }
}

fn fold(v: &Value) -> Cow<'_, Value> {
    match v {
        Value::String(s) => Cow::Owned(Value::String(js::to_lower(s))),
        other => Cow::Borrowed(other),
    }
}

/// `isIn`: an array attribute is in when any element is (an intersection).
fn is_in(actual: &Value, values: &[Value], insensitive: bool) -> bool {
    let one = |a: &Value| {
        if insensitive {
            let a = fold(a);
            values.iter().any(|v| js::strict_eq(&a, &fold(v)))
        } else {
            values.iter().any(|v| js::strict_eq(a, v))
        }
    };
    match actual {
        Value::Array(items) => items.iter().any(one),
        other => one(other),
    }
}

impl Op {
    fn eval(&self, actual: &Value, groups: &SavedGroups) -> bool {
        match self {
            Op::Version(ord, or_equal, want) => {
                let o = js::utf16_cmp(&version::padded(actual), want);
                o == *ord || (*or_equal && o == Ordering::Equal)
            }
            Op::VersionNe(want) => version::padded(actual) != *want,
            Op::Eq(want) => js::strict_eq(actual, want),
            Op::Ne(want) => !js::strict_eq(actual, want),
            Op::Cmp(ord, or_equal, want) => {
                // JavaScript's `a <= b` is "not b < a", and false when either is NaN.
                js::compare(actual, want).is_some_and(|o| o == *ord || (*or_equal && o == Ordering::Equal))
            }
            Op::Exists(want) => actual.is_null() != *want,
            Op::In { values, insensitive, negate } => is_in(actual, values, *insensitive) != *negate,
            Op::InGroup { group, negate } => is_in(actual, groups.get(group).map_or(&[][..], Vec::as_slice), false) != *negate,
            Op::Not(test) => !test.eval(actual, groups, false),
            Op::Size(test) => actual.as_array().is_some_and(|a| test.eval(&Value::from(a.len()), groups, false)),
            Op::ElemMatch(m) => actual.as_array().is_some_and(|items| {
                // Nullish elements are skipped; falsy ones (0, "", false) are tested.
                items.iter().filter(|i| !i.is_null()).any(|item| match m {
                    ElemMatch::Value(test) => test.eval(item, groups, false),
                    ElemMatch::Condition(c) => c.eval(Root::Value(item), groups),
                })
            }),
            Op::All { tests, insensitive } => actual
                .as_array()
                .is_some_and(|items| tests.iter().all(|t| items.iter().any(|item| t.eval(item, groups, *insensitive)))),
            Op::Regex(re, false) => re.is_match(&js::as_text(actual)),
            Op::Regex(re, true) => re.is_match(&fold_non_ascii(&js::as_text(actual))),
            Op::Type(t) => type_of(actual) == t,
        }
    }
}

/// `regex-lite` folds case for ASCII only; JavaScript's `/i` folds `Ë` and `ë` too. For
/// `$regexi`, non-ASCII letters are lowercased ([`js::to_lower`]) in both the pattern and the
/// text (escapes and class syntax are ASCII, so the pattern's meaning is kept).
fn fold_non_ascii(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if c.is_ascii() { c } else { js::lower(c) }).collect())
}

/// GrowthBook's `getType`.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Object(_) => "object",
    }
}
