//! Evaluates conditions read from stdin, one JSON array per line: `[condition, attributes,
//! saved_groups]` → one line per input: `true`, `false`, or `refused <path>: <message>`.
//! The differential test against GrowthBook's own SDK (`tests/conformance/`) drives it.
//!
//!     cargo run -q -p litmus-shared --example eval_conditions < cases.jsonl

use std::io::{BufRead, Write};

use litmus_shared::{Attributes, SavedGroups, Targeting};
use serde_json::Value;

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    for line in stdin.lock().lines() {
        let line = line.expect("stdin");
        let answer = match serde_json::from_str::<(Value, Attributes, SavedGroups)>(&line) {
            Err(e) => format!("unreadable input: {e}"),
            Ok((condition, attributes, groups)) => match Targeting::parse(&condition) {
                Ok(t) => t.matches_with(&attributes, &groups).to_string(),
                Err(e) => format!("refused {}: {}", e.path, e.message),
            },
        };
        writeln!(out, "{answer}").expect("stdout");
    }
}
