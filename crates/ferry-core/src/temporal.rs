//! Fast paths for the ISO-8601 text engines store dates and times as.
//!
//! SQLite keeps timestamps as text, so a backfill parses and prints one per
//! row and column; chrono's format-string machinery dominated profiles. The
//! common shapes are handled here by hand and everything else falls back to
//! chrono in [`crate::convert`].

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use std::fmt::Write;

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32))
}

/// `YYYY-MM-DD`.
pub fn parse_date(s: &[u8]) -> Option<NaiveDate> {
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(digits(&s[0..4])? as i32, digits(&s[5..7])?, digits(&s[8..10])?)
}

/// `HH:MM:SS` with an optional fraction of 1 to 9 digits; returns the rest.
fn parse_time_prefix(s: &[u8]) -> Option<(NaiveTime, &[u8])> {
    if s.len() < 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (digits(&s[0..2])?, digits(&s[3..5])?, digits(&s[6..8])?);
    let mut rest = &s[8..];
    let mut nanos = 0u32;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(&rest[1..1 + n])? * 10u32.pow(9 - n as u32);
        rest = &rest[1 + n..];
    }
    Some((NaiveTime::from_hms_nano_opt(h, m, sec, nanos)?, rest))
}

pub fn parse_time(s: &[u8]) -> Option<NaiveTime> {
    match parse_time_prefix(s)? {
        (t, []) => Some(t),
        _ => None,
    }
}

/// `YYYY-MM-DD[ T]HH:MM:SS[.fffffffff][Z|+HH:MM|+HHMM|+HH]`: the local
/// date-time and the offset in seconds east of UTC, if one was written.
pub fn parse_timestamp(s: &[u8]) -> Option<(NaiveDateTime, Option<i32>)> {
    if s.len() < 19 || !(s[10] == b' ' || s[10] == b'T') {
        return None;
    }
    let date = parse_date(&s[..10])?;
    let (time, rest) = parse_time_prefix(&s[11..])?;
    let rest = match rest.first() {
        Some(b' ') => &rest[1..],
        _ => rest,
    };
    let offset = match rest {
        [] => None,
        [b'Z'] => Some(0),
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                _ => return None,
            };
            let secs = (h * 3600 + m * 60) as i32;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => return None,
    };
    Some((date.and_time(time), offset))
}

/// `YYYY-MM-DD`
pub fn write_date(out: &mut String, d: &NaiveDate) {
    let _ = write!(out, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
}

/// `HH:MM:SS` and `.ffffff` when there are microseconds.
pub fn write_time(out: &mut String, t: &NaiveTime) {
    let _ = write!(out, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    let micros = t.nanosecond() / 1000;
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`
pub fn write_timestamp(out: &mut String, ts: &NaiveDateTime) {
    write_date(out, &ts.date());
    out.push(' ');
    write_time(out, &ts.time());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shapes() {
        let (ts, off) = parse_timestamp(b"2024-02-29T23:59:58.5+05:30").unwrap();
        assert_eq!(ts.to_string(), "2024-02-29 23:59:58.500");
        assert_eq!(off, Some(5 * 3600 + 30 * 60));
        assert_eq!(parse_timestamp(b"2024-02-29 23:59:58 -0800").unwrap().1, Some(-8 * 3600));
        assert_eq!(parse_timestamp(b"2024-02-29 23:59:58Z").unwrap().1, Some(0));
        assert!(parse_timestamp(b"2023-02-29 23:59:58").is_none());
        assert!(parse_timestamp(b"2024-02-29 23:59").is_none());
        assert!(parse_time(b"25:00:00").is_none());
    }

    proptest! {
        #[test]
        fn print_then_parse(secs in -2_000_000_000i64..4_000_000_000i64, micros in 0u32..1_000_000) {
            let ts = chrono::DateTime::from_timestamp(secs, micros * 1000).unwrap().naive_utc();
            let mut s = String::new();
            write_timestamp(&mut s, &ts);
            prop_assert_eq!(parse_timestamp(s.as_bytes()), Some((ts, None)));
            prop_assert_eq!(s, ts.format("%Y-%m-%d %H:%M:%S%.6f").to_string().replace(".000000", ""));
        }
    }
}
