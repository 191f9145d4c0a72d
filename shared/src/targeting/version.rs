//! GrowthBook's version comparison (`$veq`, `$vgt`, …): a version becomes a string whose plain
//! text order is the version order, and the strings are compared.

use std::borrow::Cow;

use serde_json::Value;

use super::js;

/// GrowthBook's `paddedVersionString`: a leading `v` and build metadata (`+…`) dropped, parts
/// split on `.` and `-`, numeric parts left-padded with spaces to five characters, joined with
/// `-`; a plain `x.y.z` gets a `~` part, which sorts after any pre-release (`1.0.0` >
/// `1.0.0-beta`). Anything not a string or a number reads as `"0"`, as does the empty string.
pub fn padded(v: &Value) -> String {
    let text = match v {
        Value::Number(_) | Value::String(_) => js::as_text(v),
        _ => Cow::Borrowed(""),
    };
    let text = if text.is_empty() { "0" } else { &text };
    let mut s = text.strip_prefix('v').unwrap_or(text);
    // `/\+.*$/`: from the first `+` whose rest holds no line break (`.` stops at one).
    let mut from = 0;
    while let Some(i) = s[from..].find('+').map(|i| i + from) {
        if !s[i..].contains(['\n', '\r', '\u{2028}', '\u{2029}']) {
            s = &s[..i];
            break;
        }
        from = i + 1;
    }
    // Written into one string: this runs per request for every `$v…` operator.
    let mut out = String::with_capacity(s.len() + 24);
    let mut parts = 0;
    for part in s.split(['-', '.']) {
        if parts > 0 {
            out.push('-');
        }
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.extend(std::iter::repeat_n(' ', 5usize.saturating_sub(part.len())));
        }
        out.push_str(part);
        parts += 1;
    }
    if parts == 3 {
        out.push_str("-~");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pads_as_growthbook_does() {
        assert_eq!(padded(&json!("v1.2.3-rc.1+build123")), "    1-    2-    3-rc-    1");
        assert_eq!(padded(&json!("1.2.3")), "    1-    2-    3-~");
        assert_eq!(padded(&json!(1.5)), "    1-    5");
        assert_eq!(padded(&json!(null)), "    0");
        assert_eq!(padded(&json!("")), "    0");
        assert_eq!(padded(&json!("123456.0.0")), "123456-    0-    0-~");
        assert!(js::utf16_cmp(&padded(&json!("1.0.0")), &padded(&json!("1.0.0-beta"))).is_gt());
        assert!(js::utf16_cmp(&padded(&json!("0.10.0")), &padded(&json!("0.9.0"))).is_gt());
    }
}
