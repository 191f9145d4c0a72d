//! Signed assignments and sticky documents: what the edge and the control plane hand out can be
//! told apart from what a client made up.
//!
//! Every answer carries `signature`: a MAC over (experiment, bucket version, unit, variant, config
//! version, in the experiment or not), keyed by a secret the edge and the control plane share.
//! An event sent to the public edge counts only when it echoes the signature of an in-experiment
//! answer for that unit and variant, so no one can report a variant they were not given. Sticky
//! documents are signed the same way by their issuer, so no one can pick their own variant.
//!
//! The MAC is SipHash-2-4 with a 128-bit key and its standard 64-bit tag (`siphasher`): a keyed
//! PRF built for short inputs, a few hundred bytes of wasm, and fast enough to sign 50
//! assignments per request at the edge without a crossing into JavaScript. HMAC-SHA256 through
//! Web Crypto would be asynchronous (a promise per answer on a route that never waits) and HMAC
//! in wasm would cost the worker several KiB of its 250 KiB upload. A tag is only ever checked
//! online, one guess per event sent: forging one means about 2^63 events on average. (A
//! 128-bit tag would add 16 bytes to each of 50 assignments per answer, and rounds to each.)
//!
//! Each field is length-prefixed after a domain string, so no two different inputs (nor an
//! assignment and a document) feed the MAC the same bytes. The unit comes last: everything
//! before it is the same for every unit, so an issuer absorbs it once per config set
//! ([`Signer`]) and each answer costs the unit's few blocks. The token a client echoes,
//! `{version}.{bucket_version}.{tag as 16 hex digits}`, carries the two numbers the verifier
//! needs: an event signed under an older version of the experiment still proves itself.
//!
//! Keys: one or more, comma-separated, each 32 hex digits (128 bits). The first signs; every one
//! verifies, so a key is rotated by prepending the new one, deploying both sides, and dropping the
//! old one once answers signed with it are no longer echoed.

use std::fmt;
use std::hash::Hasher;

use serde::{Serialize, Serializer};
use siphasher::sip::SipHasher24;
use subtle::ConstantTimeEq;

use crate::assign::Assignment;
use crate::config::Experiment;

/// How many keys may be valid at once: the signing one and those being rotated out.
pub const MAX_KEYS: usize = 4;
const ASSIGNMENT_DOMAIN: &[u8] = b"litmus-edge assignment v1";
const DOCUMENT_DOMAIN: &[u8] = b"litmus-edge sticky v1";

/// The signing keys of one deployment. Never printed: `Debug` says how many there are.
#[derive(Clone, Default)]
pub struct Keys {
    keys: Vec<[u8; 16]>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({} key(s), redacted)", self.keys.len())
    }
}

impl Keys {
    /// From `"{32 hex digits}[,{32 hex digits}…]"`; blank = no keys (nothing is signed, and
    /// nothing unsigned verifies). The refusal says what is wrong, never the text given.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let mut keys = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut key = [0u8; 16];
            if !parse_hex(part, &mut key) {
                return Err("a signing key is 32 lowercase hex digits (128 bits), e.g. from `openssl rand -hex 16`");
            }
            keys.push(key);
        }
        if keys.len() > MAX_KEYS {
            return Err("at most 4 signing keys at once");
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The signature of `experiment`'s answer `a` to `unit_id`; `None` without keys.
    pub fn sign(&self, experiment: &Experiment, unit_id: &str, a: &Assignment) -> Option<Signature> {
        let signer = self.signer(a.experiment, a.variant_key, a.version, experiment.bucket_version, a.in_experiment)?;
        Some(signer.sign(unit_id))
    }

    /// What signs every answer giving `variant_key` of `experiment` (at this version and bucket
    /// version, in the experiment or not), whichever the unit; `None` without keys.
    pub fn signer(&self, experiment: &str, variant_key: &str, version: i64, bucket_version: i64, in_experiment: bool) -> Option<Signer> {
        let key = self.keys.first()?;
        Some(Signer::new(key, experiment, variant_key, version, bucket_version, in_experiment))
    }

    /// Whether `token` is the signature of an in-experiment answer giving `variant_key` of
    /// `experiment` to `unit_id`, under any of the keys. The signature read from the token on
    /// success (its version and bucket version).
    pub fn verify(&self, token: &str, experiment: &str, unit_id: &str, variant_key: &str) -> Option<Signature> {
        let s = Signature::parse(token)?;
        self.any_key_gives(s.tag, |key| Signer::new(key, experiment, variant_key, s.version, s.bucket_version, true).tag(unit_id)).then_some(s)
    }

    /// The tag of a sticky document's content (its unit and entries, in order); `None` without keys.
    pub fn sign_document(&self, unit_id: &str, entries: &[(String, String)]) -> Option<u64> {
        self.keys.first().map(|key| document_tag(key, unit_id, entries))
    }

    /// Whether `tag` signs this content under any of the keys.
    pub fn verify_document(&self, unit_id: &str, entries: &[(String, String)], tag: u64) -> bool {
        self.any_key_gives(tag, |key| document_tag(key, unit_id, entries))
    }

    /// Whether `tag_under(key)` is `given` for any key: every key is tried and compared in
    /// constant time, so the time says neither which key matched nor where a guess went wrong.
    fn any_key_gives(&self, given: u64, tag_under: impl Fn(&[u8; 16]) -> u64) -> bool {
        let given = given.to_le_bytes();
        bool::from(self.keys.iter().fold(subtle::Choice::from(0), |ok, key| ok | tag_under(key).to_le_bytes().ct_eq(&given)))
    }
}

/// A signed answer's `signature`: `{version}.{bucket_version}.{tag:016x}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub version: i64,
    pub bucket_version: i64,
    pub tag: u64,
}

/// The longest token [`Signature::parse`] reads (two `i64`s, two dots, 16 digits).
pub const MAX_TOKEN_BYTES: usize = 20 + 1 + 20 + 1 + 16;

/// The MAC of one (experiment, variant, version, bucket version, in or out) with everything but
/// the unit absorbed: cloned per answer, it costs the unit's blocks and the finalization.
#[derive(Clone)]
pub struct Signer {
    state: SipHasher24,
    version: i64,
    bucket_version: i64,
}

impl Signer {
    fn new(key: &[u8; 16], experiment: &str, variant_key: &str, version: i64, bucket_version: i64, in_experiment: bool) -> Self {
        let mut h = SipHasher24::new_with_key(key);
        field(&mut h, ASSIGNMENT_DOMAIN);
        field(&mut h, experiment.as_bytes());
        field(&mut h, variant_key.as_bytes());
        absorb(&mut h, &version.to_le_bytes());
        absorb(&mut h, &bucket_version.to_le_bytes());
        absorb(&mut h, &[u8::from(in_experiment)]);
        Self { state: h, version, bucket_version }
    }

    /// The tag for `unit_id`.
    pub fn tag(&self, unit_id: &str) -> u64 {
        let mut h = self.state;
        field(&mut h, unit_id.as_bytes());
        finish(&h)
    }

    pub fn sign(&self, unit_id: &str) -> Signature {
        Signature { version: self.version, bucket_version: self.bucket_version, tag: self.tag(unit_id) }
    }
}

impl Signature {
    /// From its text; `None` unless it is exactly what [`fmt::Display`] writes.
    pub fn parse(token: &str) -> Option<Self> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let mut parts = token.split('.');
        let (version, bucket, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(Self { version: parse_i64(version)?, bucket_version: parse_i64(bucket)?, tag: parse_tag(tag)? })
    }

}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{:016x}", self.version, self.bucket_version, self.tag)
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Integers as `Display` writes them: no `+`, no leading zeros, so one signature has one text.
/// By hand: `str::parse` brought 600 bytes of generic radix code into the worker for this.
#[inline(never)]
fn parse_i64(s: &str) -> Option<i64> {
    let (negative, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits.starts_with('0')) || (negative && digits == "0") {
        return None;
    }
    // Accumulated below zero, so that i64::MIN reads too.
    let mut n: i64 = 0;
    for c in digits.bytes() {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

/// A 64-bit tag as written: exactly 16 lowercase hex digits.
pub fn parse_tag(s: &str) -> Option<u64> {
    let mut bytes = [0u8; 8];
    parse_hex(s, &mut bytes).then(|| u64::from_be_bytes(bytes))
}

/// Fills `out` (zeroed) from exactly `2 × out.len()` lowercase hex digits; `false` for anything
/// else. One plain loop, never inlined: the keys and every tag read through it.
#[inline(never)]
fn parse_hex(s: &str, out: &mut [u8]) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * out.len() {
        return false;
    }
    for (i, c) in bytes.iter().enumerate() {
        let nibble = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return false,
        };
        out[i / 2] = out[i / 2] << 4 | nibble;
    }
    true
}

/// Length, then bytes. Never inlined, and every write goes through [`absorb`]: SipHash's rounds
/// inlined at each call cost the worker kilobytes of its upload (measured: 6.5 KiB gzipped).
#[inline(never)]
fn field(h: &mut SipHasher24, bytes: &[u8]) {
    absorb(h, &(bytes.len() as u64).to_le_bytes());
    absorb(h, bytes);
}

#[inline(never)]
fn absorb(h: &mut SipHasher24, bytes: &[u8]) {
    h.write(bytes);
}

fn document_tag(key: &[u8; 16], unit_id: &str, entries: &[(String, String)]) -> u64 {
    let mut h = SipHasher24::new_with_key(key);
    field(&mut h, DOCUMENT_DOMAIN);
    field(&mut h, unit_id.as_bytes());
    absorb(&mut h, &(entries.len() as u64).to_le_bytes());
    for (k, v) in entries {
        field(&mut h, k.as_bytes());
        field(&mut h, v.as_bytes());
    }
    finish(&h)
}

/// SipHash's finalization, once in the worker rather than inlined at each use.
#[inline(never)]
fn finish(h: &SipHasher24) -> u64 {
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targeting::Attributes;
    use serde_json::json;

    const K1: &str = "000102030405060708090a0b0c0d0e0f";
    const K2: &str = "f0e0d0c0b0a090807060504030201000";

    fn keys(text: &str) -> Keys {
        Keys::parse(text).expect("keys")
    }

    fn experiment(weights: [f64; 2]) -> Experiment {
        serde_json::from_value(json!({
            "key": "checkout", "status": "running", "ramp_pct": 100, "version": 7, "bucket_version": 2,
            "variants": [{"key": "control", "weight": weights[0]}, {"key": "treatment", "weight": weights[1]}]
        }))
        .expect("an experiment")
    }

    #[test]
    fn siphash_matches_the_reference_vectors() {
        // SipHash-2-4 of the empty message and of the byte 0x00 under key 00..0f, from the
        // reference implementation's vectors_sip64 (Aumasson & Bernstein), little-endian.
        let mut key = [0u8; 16];
        assert!(parse_hex(K1, &mut key));
        assert_eq!(SipHasher24::new_with_key(&key).finish().to_le_bytes(), [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72]);
        let mut h = SipHasher24::new_with_key(&key);
        h.write(&[0]);
        assert_eq!(h.finish().to_le_bytes(), [0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74]);
    }

    #[test]
    fn an_answer_verifies_and_nothing_else_does() {
        let e = experiment([0.5, 0.5]);
        let k = keys(K1);
        let a = crate::assign(&e, "u1", &Attributes::new());
        let s = k.sign(&e, "u1", &a).expect("signed");
        let token = s.to_string();
        assert_eq!((s.version, s.bucket_version), (7, 2));
        assert!(token.starts_with("7.2.") && token.len() == 4 + 16, "{token}");
        assert_eq!(k.verify(&token, "checkout", "u1", a.variant_key), Some(s));
        let other = if a.variant_key == "control" { "treatment" } else { "control" };
        for (exp, unit, variant) in [("checkout", "u2", a.variant_key), ("checkout", "u1", other), ("other", "u1", a.variant_key)] {
            assert_eq!(k.verify(&token, exp, unit, variant), None, "{exp} {unit} {variant}");
        }
        // Another key, another version or bucket version in the token, a flipped digit: refused.
        assert_eq!(keys(K2).verify(&token, "checkout", "u1", a.variant_key), None);
        let tag = &token[4..];
        for forged in [format!("8.2.{tag}"), format!("7.3.{tag}"), format!("07.2.{tag}"), format!("7.2.{}", tag.to_uppercase()), format!("7.2.{tag}.1"), String::new(), "7.2".into()] {
            assert_eq!(k.verify(&forged, "checkout", "u1", a.variant_key), None, "{forged}");
        }
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(k.verify(&String::from_utf8(flipped).expect("utf8"), "checkout", "u1", a.variant_key), None);
        // No keys: nothing signed, nothing verifies.
        assert_eq!(Keys::default().sign(&e, "u1", &a), None);
        assert_eq!(Keys::default().verify(&token, "checkout", "u1", a.variant_key), None);
    }

    #[test]
    fn out_of_experiment_answers_prove_nothing() {
        let mut e = experiment([0.5, 0.5]);
        e.ramp_pct = 0.0;
        let k = keys(K1);
        let a = crate::assign(&e, "u1", &Attributes::new());
        assert!(!a.in_experiment);
        let token = k.sign(&e, "u1", &a).expect("signed").to_string();
        assert_eq!(k.verify(&token, "checkout", "u1", "control"), None);
    }

    #[test]
    fn rotation_keeps_both_keys_valid() {
        let e = experiment([0.5, 0.5]);
        let a = crate::assign(&e, "u9", &Attributes::new());
        let old = keys(K1).sign(&e, "u9", &a).expect("signed").to_string();
        let rotated = keys(&format!("{K2}, {K1}"));
        let new = rotated.sign(&e, "u9", &a).expect("signed").to_string();
        assert_ne!(old, new, "the first key signs");
        assert!(rotated.verify(&old, "checkout", "u9", a.variant_key).is_some());
        assert!(rotated.verify(&new, "checkout", "u9", a.variant_key).is_some());
        assert!(keys(K2).verify(&old, "checkout", "u9", a.variant_key).is_none(), "dropped: refused");
    }

    #[test]
    fn keys_parse_strictly_and_never_print() {
        assert!(Keys::parse("").expect("blank").is_empty());
        assert_eq!(Keys::parse(&format!(" {K1} ,{K2},")).map(|k| k.keys.len()), Ok(2));
        for bad in ["secret", &K1[..31], &K1.to_uppercase(), &format!("{K1}00"), &[K1; 5].join(",")] {
            assert!(Keys::parse(bad).is_err(), "{bad}");
        }
        assert!(Keys::parse(&format!("{K1},nope")).expect_err("refused").contains("32 lowercase hex digits"));
        assert!(!format!("{:?}", keys(K1)).contains("0102"));
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        // ("ab", "c") and ("a", "bc") would feed a MAC without length prefixes the same bytes.
        let mut key = [0u8; 16];
        assert!(parse_hex(K1, &mut key));
        assert_ne!(Signer::new(&key, "ab", "c", 1, 0, true).tag("u"), Signer::new(&key, "a", "bc", 1, 0, true).tag("u"));
        assert_ne!(Signer::new(&key, "e", "v", 1, 0, true).tag("u"), Signer::new(&key, "e", "v", 1, 0, false).tag("u"));
        let doc = |u: &str, e: &[(&str, &str)]| document_tag(&key, u, &e.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect::<Vec<_>>());
        assert_ne!(doc("u", &[("ab", "c")]), doc("u", &[("a", "bc")]));
        assert_ne!(doc("u", &[("a", "b"), ("c", "d")]), doc("u", &[("c", "d"), ("a", "b")]));
    }

    #[test]
    fn tokens_read_back_exactly() {
        for s in [Signature { version: 0, bucket_version: 0, tag: 0 }, Signature { version: i64::MIN, bucket_version: i64::MAX, tag: u64::MAX }, Signature { version: -7, bucket_version: 10, tag: 1 }] {
            assert_eq!(Signature::parse(&s.to_string()), Some(s));
            assert!(s.to_string().len() <= MAX_TOKEN_BYTES);
        }
        for bad in ["+1.0.0000000000000000", "-0.0.0000000000000000", "1..0000000000000000", "1.0.0", "1.0.00000000000000000", "9223372036854775808.0.0000000000000000", "1.-.0000000000000000", "1.0x.0000000000000000"] {
            assert_eq!(Signature::parse(bad), None, "{bad}");
        }
    }
}
