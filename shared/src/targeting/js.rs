//! JavaScript's value semantics, as GrowthBook's SDK gets them from the language: `value + ""`,
//! `value * 1`, `!!value`, `===`, `<` between mixed types, `JSON.stringify` equality. A condition
//! in GrowthBook's dialect means what these mean, so they are reproduced here exactly (the
//! GrowthBook test cases pin them), not approximated by Rust's own conversions.

use std::cmp::Ordering;

use serde_json::Value;

/// [`to_string`], borrowing a string attribute (the common case) instead of copying it.
pub fn as_text(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(to_string(other)),
    }
}

/// `String(value)` (also `value + ""`): arrays join their elements with `,` (null as empty),
/// objects are `[object Object]`, numbers are written as JavaScript writes them.
pub fn to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_to_string(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| if i.is_null() { String::new() } else { to_string(i) })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

/// `Number.prototype.toString()`: the shortest digits that round-trip, positional between 1e-7
/// and 1e21, exponential outside (`1e+21`, `1.5e-7`).
pub fn number_to_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if x < 0.0 {
        return format!("-{}", number_to_string(-x));
    }
    // Rust's `Display` gives the shortest round-trip digits, positionally ("0.00000015"); `n` is
    // where the decimal point sits relative to the first significant digit, as in ECMA-262.
    let text = x.to_string();
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let all = format!("{int}{frac}");
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_matches('0');
    let k = digits.len() as i32;
    let n = int.len() as i32 - lead as i32;
    if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let sign = if n - 1 < 0 { '-' } else { '+' };
        let rest = if k > 1 { format!(".{}", &digits[1..]) } else { String::new() };
        format!("{}{rest}e{sign}{}", &digits[..1], (n - 1).abs())
    }
}

/// `Number(value)` (also `value * 1`): `null` is 0, booleans 0/1, strings by JavaScript's own
/// grammar (trimmed; empty is 0; `0x1f`; `Infinity`; anything else NaN), arrays through their
/// string (`[]` is 0, `[5]` is 5), objects NaN.
pub fn to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => string_to_number(s),
        Value::Array(_) => string_to_number(&to_string(v)),
        Value::Object(_) => f64::NAN,
    }
}

/// JavaScript's white space and line terminators (what `String.prototype.trim` removes).
fn is_js_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}'
        | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}')
}

fn string_to_number(s: &str) -> f64 {
    let s = s.trim_matches(is_js_space);
    if s.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [("0x", 16), ("0X", 16), ("0o", 8), ("0O", 8), ("0b", 2), ("0B", 2)] {
        if let Some(digits) = s.strip_prefix(prefix) {
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return f64::NAN;
            }
            return digits.chars().fold(0.0, |acc, c| acc * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0)));
        }
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned == "Infinity" {
        return if s.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY };
    }
    // A StrDecimalLiteral: digits, an optional fraction, an optional exponent; at least one digit
    // before the exponent. Rust's parser takes more ("inf", "nan"), so the shape is checked first.
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) || !exponent_ok {
        return f64::NAN;
    }
    s.parse::<f64>().unwrap_or(f64::NAN)
}

/// `String.prototype.toLowerCase`, for the scripts targeting meets in practice: ASCII, Latin-1,
/// Latin Extended-A and Additional, Greek, Cyrillic, Armenian, fullwidth Latin. Other letters are
/// kept as they are (core's full Unicode tables would cost the edge worker 3 KB of its gzipped
/// budget), as are `İ` (two characters in JavaScript) and a final `Σ` (`σ` here, `ς` there).
pub fn to_lower(s: &str) -> String {
    s.chars().map(lower).collect()
}

/// One character of [`to_lower`].
pub fn lower(c: char) -> char {
    let u = c as u32;
    let to = match u {
        0x41..=0x5a | 0xc0..=0xd6 | 0xd8..=0xde | 0x391..=0x3a1 | 0x3a3..=0x3ab | 0x410..=0x42f | 0xff21..=0xff3a => u + 0x20,
        0x400..=0x40f => u + 0x50,
        0x531..=0x556 => u + 0x30,
        0x386 => 0x3ac,
        0x388..=0x38a => u + 37,
        0x38c => 0x3cc,
        0x38e..=0x38f => u + 63,
        0x178 => 0xff,
        0x4c0 => 0x4cf,
        // Pairs: the upper case first, the lower case next.
        0x100..=0x12f | 0x132..=0x137 | 0x14a..=0x177 | 0x460..=0x481 | 0x48a..=0x4bf | 0x4d0..=0x52f | 0x1e00..=0x1e95
        | 0x1ea0..=0x1eff
            if u.is_multiple_of(2) =>
        {
            u + 1
        }
        0x139..=0x148 | 0x179..=0x17e | 0x4c1..=0x4ce if u % 2 == 1 => u + 1,
        _ => u,
    };
    char::from_u32(to).unwrap_or(c)
}

/// `!!value`.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `a === b` (and `Array.prototype.includes`): primitives of one type and value. Arrays and
/// objects are equal only to themselves, and two values parsed from JSON never are the same one.
pub fn strict_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => x == y,
        _ => false,
    }
}

/// `JSON.stringify(a) === JSON.stringify(b)`: deep equality, numbers by value (`1` and `1.0`
/// are both written `1`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => strict_eq(a, b),
    }
}

/// A JavaScript relational comparison (`<`, `<=`, `>`, `>=`) between two values: two strings
/// compare by UTF-16 code units, anything else as numbers, and NaN makes every comparison false
/// (`None`). Arrays and objects first become strings, as `ToPrimitive` makes them.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    let primitive = |v: &Value| match v {
        Value::Array(_) | Value::Object(_) => Value::String(to_string(v)),
        other => other.clone(),
    };
    match (primitive(a), primitive(b)) {
        (Value::String(x), Value::String(y)) => Some(utf16_cmp(&x, &y)),
        (x, y) => to_number(&x).partial_cmp(&to_number(&y)),
    }
}

/// JavaScript's string order: UTF-16 code units, not code points.
pub fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_written_as_javascript_writes_them() {
        for (x, s) in [
            (1.0, "1"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (-2.5, "-2.5"),
            (123456789012345680000.0, "123456789012345680000"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(number_to_string(x), s, "{x}");
        }
        assert_eq!(to_string(&json!([1, null, "a", [2, 3], {"x": 1}])), "1,,a,2,3,[object Object]");
    }

    #[test]
    fn lowercase_agrees_with_the_unicode_mapping_where_it_maps() {
        // Every character the compact table maps, it maps as Unicode does; and the letters of
        // the scripts it covers are all mapped.
        for c in (0..0x2000u32).chain(0xff00..0xff60).filter_map(char::from_u32) {
            let full: Vec<char> = c.to_lowercase().collect();
            let ours = lower(c);
            if ours != c {
                assert_eq!(full, [ours], "{c:?} U+{:04X}", c as u32);
            } else if full.len() == 1 && full[0] != c {
                let covered = matches!(c as u32, 0x41..=0x24f | 0x370..=0x3ff | 0x400..=0x52f | 0x531..=0x556 | 0x1e00..=0x1eff | 0xff21..=0xff3a);
                let known_gaps = matches!(c as u32, 0x180..=0x24f | 0x370..=0x385 | 0x3cf..=0x3ff | 0x1e9e);
                assert!(!covered || known_gaps, "{c:?} U+{:04X} left as is", c as u32);
            }
        }
        assert_eq!(to_lower("ZÜRICH Ærø ΣΟΦΊΑ Москва ԱՐՄ ŁÓDŹ ＡＢＣ"), "zürich ærø σοφία москва արմ łódź ａｂｃ");
    }

    #[test]
    fn strings_become_numbers_by_javascripts_grammar() {
        for (s, n) in [("", 0.0), ("  12 ", 12.0), ("1e3", 1000.0), (".5", 0.5), ("5.", 5.0), ("-0x10", f64::NAN), ("0x10", 16.0),
            ("0b101", 5.0), ("Infinity", f64::INFINITY), ("-Infinity", f64::NEG_INFINITY), ("inf", f64::NAN), ("NaN", f64::NAN),
            ("1e", f64::NAN), ("e5", f64::NAN), (".", f64::NAN), ("12px", f64::NAN), ("+.5e-1", 0.05), ("\u{feff}7\u{a0}", 7.0)]
        {
            let got = string_to_number(s);
            assert!(got == n || (got.is_nan() && n.is_nan()), "{s:?} → {got}, not {n}");
        }
        assert_eq!(to_number(&json!([])), 0.0);
        assert_eq!(to_number(&json!(["5"])), 5.0);
        assert!(to_number(&json!([1, 2])).is_nan());
        assert!(to_number(&json!({})).is_nan());
    }

    #[test]
    fn comparisons_coerce_as_javascript_does() {
        assert_eq!(compare(&json!(null), &json!(10)), Some(Ordering::Less), "null is 0");
        assert_eq!(compare(&json!("8"), &json!(5)), Some(Ordering::Greater));
        assert_eq!(compare(&json!("10"), &json!("9")), Some(Ordering::Less), "two strings compare as text");
        assert_eq!(compare(&json!("abc"), &json!(1)), None, "NaN: every comparison false");
        assert_eq!(compare(&json!(true), &json!(1)), Some(Ordering::Equal));
        assert_eq!(compare(&json!([5]), &json!(4)), Some(Ordering::Greater));
        assert_eq!(utf16_cmp("\u{ff61}", "😀"), Ordering::Greater, "UTF-16 units, not code points");
        assert!(strict_eq(&json!(1), &json!(1.0)));
        assert!(!strict_eq(&json!("1"), &json!(1)));
        assert!(!strict_eq(&json!([1]), &json!([1])));
        assert!(json_eq(&json!({"a": [1, {"b": 2.0}]}), &json!({"a": [1.0, {"b": 2}]})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": null})));
        assert!(truthy(&json!([])) && truthy(&json!("false")) && !truthy(&json!(0)) && !truthy(&json!("")));
    }
}
