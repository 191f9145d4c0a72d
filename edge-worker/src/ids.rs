//! Event ids and timestamps, made in wasm from the request's clock reading.
//!
//! Every `/v1/assign` answer that logs exposures needs an id and a time. Asking JavaScript for
//! them (`crypto.randomUUID`, `new Date().toISOString()`, each string copied back into wasm) was
//! eight crossings and a dozen allocations per answer, measured at several percent of the
//! isolate with forwarding on. Here they are arithmetic; JavaScript is asked for randomness once
//! per isolate.

use std::cell::Cell;

/// An event id: a UUIDv7 (RFC 9562) for `now_ms`, 48 bits of Unix milliseconds, then 74 bits
/// that never repeat within this isolate and are unpredictable across isolates: a counter
/// through splitmix64's finaliser (a bijection on 64 bits), from a random start and with a
/// random 12-bit prefix, both drawn once per isolate. Time-ordered ids land at the right edge of
/// the control plane's dedup index instead of at random places in it.
pub fn event_id(now_ms: f64) -> String {
    let (prefix, next) = NEXT.with(|n| {
        let (prefix, state) = n.get().unwrap_or_else(seed);
        let state = state.wrapping_add(GOLDEN);
        n.set(Some((prefix, state)));
        (prefix, mix(state))
    });
    uuid7(millis(now_ms), prefix, next)
}

/// `now_ms` as `toISOString` writes it: `YYYY-MM-DDTHH:MM:SS.sssZ` (UTC), for years 0 to 9999;
/// outside them (a clock gone wrong), JavaScript's own rendering.
pub fn timestamp(now_ms: f64) -> String {
    const MAX_MS: f64 = 253_402_300_800_000.0; // 10000-01-01T00:00:00Z
    if !(0.0..MAX_MS).contains(&now_ms) {
        return worker::js_sys::Date::new(&now_ms.into()).to_iso_string().into();
    }
    iso8601(now_ms as i64)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

thread_local! {
    // This isolate's random 12-bit prefix and counter state.
    static NEXT: Cell<Option<(u16, u64)>> = const { Cell::new(None) };
}

/// 64 random bits for the state and 12 for the prefix, from the runtime's CSPRNG (a v4 UUID's
/// hex digits: 122 random bits).
fn seed() -> (u16, u64) {
    let v4 = crate::events::random_uuid();
    let hex: String = v4.chars().filter(char::is_ascii_hexdigit).collect();
    let bits = u128::from_str_radix(hex.get(..32).unwrap_or("0"), 16).unwrap_or(0);
    // The v4's own version and variant digits (bits 76..80 and 62..64) are not random: skip them.
    ((bits >> 80) as u16 & 0xfff, bits as u64)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn millis(now_ms: f64) -> u64 {
    if now_ms.is_finite() && now_ms > 0.0 { (now_ms as u64) & 0xffff_ffff_ffff } else { 0 }
}

/// `xxxxxxxx-xxxx-7aaa-bbbb-bbbbbbbbbbbb`: 48 bits of milliseconds, version 7, 12 bits `rand_a`,
/// the variant `10`, 62 bits `rand_b`.
fn uuid7(ms: u64, rand_a: u16, rand_b: u64) -> String {
    let hi = (ms << 16) | 0x7000 | u64::from(rand_a & 0xfff);
    let lo = (rand_b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let mut out = String::with_capacity(36);
    for (i, nibble) in (0..16).rev().map(|k| (hi >> (4 * k)) & 0xf).chain((0..16).rev().map(|k| (lo >> (4 * k)) & 0xf)).enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
    out
}

/// Milliseconds since the epoch (0 ≤ ms < year 10000) as `YYYY-MM-DDTHH:MM:SS.sssZ`.
fn iso8601(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days: the proleptic Gregorian date of a day number.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = String::with_capacity(24);
    let mut put = |v: i64, width: u32, then: char| {
        for k in (0..width).rev() {
            out.push(char::from(b'0' + ((v / 10_i64.pow(k)) % 10) as u8));
        }
        if then != '\0' {
            out.push(then);
        }
    };
    put(year, 4, '-');
    put(month, 2, '-');
    put(day, 2, 'T');
    put(ms_of_day / 3_600_000, 2, ':');
    put(ms_of_day / 60_000 % 60, 2, ':');
    put(ms_of_day / 1000 % 60, 2, '.');
    put(ms_of_day % 1000, 3, 'Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_what_javascript_writes() {
        // Each right-hand side is `new Date(ms).toISOString()` in Node 22.
        for (ms, js) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (951_868_799_999, "2000-02-29T23:59:59.999Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (1_709_164_800_001, "2024-02-29T00:00:00.001Z"),
            (1_796_224_372_300, "2026-12-02T15:12:52.300Z"),
            (1_798_761_599_999, "2026-12-31T23:59:59.999Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (68_169_600_000, "1972-02-29T00:00:00.000Z"),
            (5_097_600_000, "1970-03-01T00:00:00.000Z"),
        ] {
            assert_eq!(iso8601(ms), js, "{ms}");
        }
    }

    #[test]
    fn every_day_follows_the_last() {
        // Over four centuries (every leap rule), each day is the one after the day before.
        let mut last = iso8601(0);
        for d in 1..146_097_i64 {
            let now = iso8601(d * 86_400_000);
            let (y0, m0, d0) = (&last[..4], &last[5..7], &last[8..10]);
            let (y1, m1, d1) = (&now[..4], &now[5..7], &now[8..10]);
            let next_day = y1 == y0 && m1 == m0 && d1.parse::<u32>().ok() == d0.parse::<u32>().ok().map(|x| x + 1);
            let next_month = y1 == y0 && d1 == "01" && m1.parse::<u32>().ok() == m0.parse::<u32>().ok().map(|x| x + 1);
            let next_year = d1 == "01" && m1 == "01" && m0 == "12" && d0 == "31";
            assert!(next_day || next_month || next_year, "{last} then {now}");
            let year: i64 = y1.parse().expect("a year");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            if m1 == "03" && d1 == "01" {
                assert_eq!(d0, if leap { "29" } else { "28" }, "{last} then {now}");
            }
            last = now;
        }
    }

    #[test]
    fn ids_are_uuid7_of_the_time_and_never_repeat() {
        let ms = 1_796_224_372_300.0;
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000 {
            let id = uuid7(millis(ms), 0xabc, mix(12_345_u64.wrapping_add(GOLDEN.wrapping_mul(i))));
            assert_eq!(id.len(), 36);
            let b = id.as_bytes();
            assert!([8, 13, 18, 23].iter().all(|&k| b[k] == b'-'), "{id}");
            assert_eq!(b[14], b'7', "version 7: {id}");
            assert!(b"89ab".contains(&b[19]), "variant 10: {id}");
            assert_eq!(u64::from_str_radix(&id[..8], 16).expect("hex") << 16 | u64::from_str_radix(&id[9..13], 16).expect("hex"), ms as u64);
            assert!(seen.insert(id));
        }
    }
}
