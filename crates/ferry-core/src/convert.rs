//! Conversion of a value into a column type.
//!
//! One function, used by the backfill (to produce what the target will store)
//! and by verification (to compare source and target in the target's terms).
//! A conversion either keeps the value's meaning or fails with a reason; it
//! never quietly truncates or drops. Rounding a decimal to the column's scale
//! is the one deliberate exception, because that is what every engine does
//! when it stores the value.

use crate::decimal::Decimal;
use crate::types::DataType;
use crate::value::{canonical_json, format_uuid, parse_uuid, Value};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

/// Why a value could not be converted; the caller adds table, key and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionError {
    pub value: String,
    pub to: DataType,
    pub reason: String,
}

impl std::fmt::Display for ConversionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot convert {} to {}: {}", self.value, self.to, self.reason)
    }
}

fn fail(value: &Value, to: &DataType, reason: impl Into<String>) -> ConversionError {
    let mut shown = value.to_string();
    if shown.len() > 80 {
        let cut = (0..=80).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    ConversionError { value: shown, to: to.clone(), reason: reason.into() }
}

pub fn convert(value: Value, to: &DataType) -> Result<Value, ConversionError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match to {
        DataType::Bool => to_bool(value, to),
        DataType::Int16 => to_int(value, to, i16::MIN as i64, i16::MAX as i64),
        DataType::Int32 => to_int(value, to, i32::MIN as i64, i32::MAX as i64),
        DataType::Int64 => to_int(value, to, i64::MIN, i64::MAX),
        DataType::Float32 => {
            let f = to_float(value, to)?;
            let narrowed = f as f32;
            if f.is_finite() && !narrowed.is_finite() {
                return Err(fail(&Value::Float(f), to, "out of the range of a 32-bit float"));
            }
            Ok(Value::Float(narrowed as f64))
        }
        DataType::Float64 => to_float(value, to).map(Value::Float),
        DataType::Decimal { precision, scale } => to_decimal(value, to, *precision, *scale),
        DataType::Text { max_chars } => to_text(value, to, *max_chars),
        DataType::Bytes => match value {
            Value::Bytes(b) => Ok(Value::Bytes(b)),
            Value::Text(s) => Ok(Value::Bytes(s.into_bytes())),
            Value::Uuid(u) => Ok(Value::Bytes(u.to_vec())),
            other => Err(fail(&other, to, "only text and binary values convert to bytes")),
        },
        DataType::Date => match value {
            Value::Date(d) => Ok(Value::Date(d)),
            Value::Timestamp(ts) if ts.time() == NaiveTime::MIN => Ok(Value::Date(ts.date())),
            Value::Text(ref s) => parse_date(s).map(Value::Date).ok_or_else(|| fail(&value, to, "expected YYYY-MM-DD")),
            other => Err(fail(&other, to, "not a date")),
        },
        DataType::Time => match value {
            Value::Time(t) => Ok(Value::Time(round_time(t))),
            Value::Text(ref s) => parse_time(s)
                .map(|t| Value::Time(round_time(t)))
                .ok_or_else(|| fail(&value, to, "expected HH:MM:SS[.ffffff]")),
            other => Err(fail(&other, to, "not a time of day")),
        },
        DataType::Timestamp => match value {
            Value::Timestamp(ts) => Ok(Value::Timestamp(round_timestamp(ts))),
            Value::TimestampTz(ts) => Ok(Value::Timestamp(round_timestamp(ts.naive_utc()))),
            Value::Date(d) => Ok(Value::Timestamp(d.and_time(NaiveTime::MIN))),
            Value::Text(ref s) => parse_timestamp(s)
                .map(|ts| Value::Timestamp(round_timestamp(ts.naive_utc())))
                .ok_or_else(|| fail(&value, to, "expected YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]")),
            other => Err(fail(&other, to, "not a timestamp")),
        },
        DataType::TimestampTz => match value {
            Value::TimestampTz(ts) => Ok(Value::TimestampTz(round_timestamp(ts.naive_utc()).and_utc())),
            // A timestamp without zone is taken to be UTC.
            Value::Timestamp(ts) => Ok(Value::TimestampTz(round_timestamp(ts).and_utc())),
            Value::Date(d) => Ok(Value::TimestampTz(d.and_time(NaiveTime::MIN).and_utc())),
            Value::Text(ref s) => parse_timestamp(s)
                .map(|ts| Value::TimestampTz(round_timestamp(ts.naive_utc()).and_utc()))
                .ok_or_else(|| fail(&value, to, "expected YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]")),
            other => Err(fail(&other, to, "not a timestamp")),
        },
        DataType::Json => match value {
            Value::Json(j) => Ok(Value::Json(j)),
            Value::Text(s) | Value::Decimal(s) => match canonical_json(&s) {
                Some(_) => Ok(Value::Json(s)),
                None => Err(fail(&Value::Text(s), to, "not valid JSON")),
            },
            Value::Bytes(b) => match String::from_utf8(b) {
                Ok(s) if canonical_json(&s).is_some() => Ok(Value::Json(s)),
                Ok(s) => Err(fail(&Value::Text(s), to, "not valid JSON")),
                Err(e) => Err(fail(&Value::Bytes(e.into_bytes()), to, "not UTF-8")),
            },
            Value::Int(i) => Ok(Value::Json(i.to_string())),
            Value::Bool(b) => Ok(Value::Json(b.to_string())),
            Value::Float(f) if f.is_finite() => Ok(Value::Json(format!("{f:?}"))),
            other => Err(fail(&other, to, "not a JSON value")),
        },
        DataType::Uuid => match value {
            Value::Uuid(u) => Ok(Value::Uuid(u)),
            Value::Text(ref s) => parse_uuid(s).map(Value::Uuid).ok_or_else(|| fail(&value, to, "not a UUID")),
            Value::Bytes(ref b) if b.len() == 16 => Ok(Value::Uuid(b.as_slice().try_into().expect("16 bytes"))),
            Value::Bytes(ref b) => match std::str::from_utf8(b).ok().and_then(parse_uuid) {
                Some(u) => Ok(Value::Uuid(u)),
                None => Err(fail(&value, to, "not a UUID")),
            },
            other => Err(fail(&other, to, "not a UUID")),
        },
    }
}

fn to_bool(value: Value, to: &DataType) -> Result<Value, ConversionError> {
    match value {
        Value::Bool(b) => Ok(Value::Bool(b)),
        Value::Int(0) => Ok(Value::Bool(false)),
        Value::Int(1) => Ok(Value::Bool(true)),
        Value::Int(_) => Err(fail(
            &value,
            to,
            "only 0 and 1 are booleans; override the column type (e.g. type = \"smallint\") to keep other values",
        )),
        Value::Decimal(ref d) => match Decimal::parse(d).and_then(|d| d.to_i64()) {
            Some(0) => Ok(Value::Bool(false)),
            Some(1) => Ok(Value::Bool(true)),
            _ => Err(fail(&value, to, "only 0 and 1 are booleans")),
        },
        Value::Text(ref s) => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "yes" | "y" | "on" => Ok(Value::Bool(true)),
            "f" | "false" | "0" | "no" | "n" | "off" => Ok(Value::Bool(false)),
            _ => Err(fail(&value, to, "not a boolean word")),
        },
        other => Err(fail(&other, to, "not a boolean")),
    }
}

fn to_int(value: Value, to: &DataType, min: i64, max: i64) -> Result<Value, ConversionError> {
    let int = match &value {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
        Value::Float(_) => return Err(fail(&value, to, "has a fractional part or is out of range")),
        Value::Decimal(d) => match Decimal::parse(d) {
            Some(d) => d.to_i64(),
            None => None,
        },
        Value::Text(s) => s.trim().parse::<i64>().ok().or_else(|| Decimal::parse(s).and_then(|d| d.to_i64())),
        _ => return Err(fail(&value, to, "not a number")),
    };
    match int {
        Some(i) if i >= min && i <= max => Ok(Value::Int(i)),
        Some(_) => Err(fail(&value, to, format!("out of range {min}..={max}"))),
        None => Err(fail(&value, to, "not an integer")),
    }
}

fn to_float(value: Value, to: &DataType) -> Result<f64, ConversionError> {
    match &value {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Decimal(d) => Decimal::parse(d).map(|d| d.to_f64()).ok_or_else(|| fail(&value, to, "not a number")),
        Value::Text(s) => s.trim().parse::<f64>().map_err(|_| fail(&value, to, "not a number")),
        Value::Bool(b) => Ok(*b as i64 as f64),
        _ => Err(fail(&value, to, "not a number")),
    }
}

fn to_decimal(
    value: Value,
    to: &DataType,
    precision: Option<u32>,
    scale: Option<u32>,
) -> Result<Value, ConversionError> {
    // Fast path: already plain, at the column's scale and within its precision.
    if let Value::Decimal(text) = &value {
        if let Some((int_digits, frac_digits)) = crate::decimal::plain_shape(text) {
            let scale_ok = scale.is_none_or(|s| s as usize == frac_digits);
            let precision_ok = precision.is_none_or(|p| int_digits <= p.saturating_sub(scale.unwrap_or(0)) as usize);
            if scale_ok && precision_ok {
                return Ok(value);
            }
        }
    }
    let parsed = match &value {
        Value::Int(i) => Decimal::parse(&i.to_string()),
        Value::Float(f) => Decimal::from_f64(*f),
        Value::Decimal(d) | Value::Text(d) => Decimal::parse(d),
        Value::Bool(b) => Decimal::parse(if *b { "1" } else { "0" }),
        _ => None,
    };
    let Some(mut d) = parsed else {
        return Err(fail(&value, to, "not a number"));
    };
    if let Some(scale) = scale {
        d = d.round_to_scale(scale as usize);
    }
    if let Some(precision) = precision {
        let allowed = precision.saturating_sub(scale.unwrap_or(0)) as usize;
        if d.integer_digits() > allowed {
            return Err(fail(&value, to, format!("needs more than {allowed} integer digits")));
        }
    }
    Ok(Value::Decimal(d.to_string()))
}

fn to_text(value: Value, to: &DataType, max_chars: Option<u32>) -> Result<Value, ConversionError> {
    let text = match value {
        Value::Text(s) => s,
        Value::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => return Err(fail(&Value::Bytes(e.into_bytes()), to, "bytes are not valid UTF-8")),
        },
        Value::Uuid(u) => format_uuid(&u),
        Value::Float(f) => format!("{f:?}"),
        Value::Json(j) => j,
        Value::Decimal(d) => d,
        other => other.to_string(),
    };
    if let Some(max) = max_chars {
        let chars = text.chars().count();
        if chars > max as usize {
            return Err(fail(
                &Value::Text(text),
                to,
                format!("{chars} characters do not fit in {max}; widen the column type"),
            ));
        }
    }
    Ok(Value::Text(text))
}

fn round_time(t: NaiveTime) -> NaiveTime {
    let micros = (t.nanosecond() as u64 + 500) / 1000;
    if micros >= 1_000_000 {
        // leap-second representation or rounding overflow: clamp inside the second
        t.with_nanosecond(999_999_000).unwrap_or(t)
    } else {
        t.with_nanosecond(micros as u32 * 1000).unwrap_or(t)
    }
}

fn round_timestamp(ts: NaiveDateTime) -> NaiveDateTime {
    let nanos = ts.nanosecond() % 1_000_000_000;
    let base = ts.with_nanosecond(0).unwrap_or(ts);
    let micros = (nanos as i64 + 500) / 1000;
    base + chrono::Duration::microseconds(micros)
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    crate::temporal::parse_date(s.as_bytes()).or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

pub fn parse_time(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    if let Some(t) = crate::temporal::parse_time(s.as_bytes()) {
        return Some(t);
    }
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f").or_else(|_| NaiveTime::parse_from_str(s, "%H:%M")).ok()
}

/// Accepts the forms engines and people write: `2024-01-02 03:04:05.123456`,
/// `2024-01-02T03:04:05Z`, `... +02:00`, `... +0200`, `...+02`.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some((local, offset)) = crate::temporal::parse_timestamp(s.as_bytes()) {
        return Some((local - chrono::Duration::seconds(offset.unwrap_or(0) as i64)).and_utc());
    }
    let normalized = s.replacen('T', " ", 1);
    let text = normalized.strip_suffix('Z').or_else(|| normalized.strip_suffix(" UTC")).unwrap_or(&normalized);
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(naive.and_utc());
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M") {
        return Some(naive.and_utc());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(text, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
        if let Ok(dt) = DateTime::parse_from_str(&text.replacen(" +", "+", 1).replacen(" -", "-", 1), fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    parse_date(text).map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(v: Value, t: DataType) -> Result<Value, ConversionError> {
        convert(v, &t)
    }

    #[test]
    fn booleans_are_strict() {
        assert_eq!(c(Value::Int(1), DataType::Bool).unwrap(), Value::Bool(true));
        assert!(c(Value::Int(2), DataType::Bool).unwrap_err().reason.contains("smallint"));
        assert_eq!(c(Value::Text("f".into()), DataType::Bool).unwrap(), Value::Bool(false));
    }

    #[test]
    fn integers_check_range() {
        assert!(c(Value::Int(40_000), DataType::Int16).is_err());
        assert_eq!(c(Value::Text(" 12 ".into()), DataType::Int32).unwrap(), Value::Int(12));
        assert_eq!(c(Value::Decimal("12.000".into()), DataType::Int64).unwrap(), Value::Int(12));
        assert!(c(Value::Text("abc".into()), DataType::Int64).unwrap_err().reason.contains("not an integer"));
        assert!(c(Value::Float(1.5), DataType::Int64).is_err());
    }

    #[test]
    fn decimals_round_and_check_precision() {
        let t = DataType::Decimal { precision: Some(5), scale: Some(2) };
        assert_eq!(c(Value::Float(1.005), t.clone()).unwrap(), Value::Decimal("1.01".into()));
        assert_eq!(c(Value::Int(123), t.clone()).unwrap(), Value::Decimal("123.00".into()));
        assert!(c(Value::Int(1234), t).is_err());
    }

    #[test]
    fn text_limits_are_in_characters() {
        let t = DataType::Text { max_chars: Some(3) };
        assert_eq!(c(Value::Text("日本語".into()), t.clone()).unwrap(), Value::Text("日本語".into()));
        assert!(c(Value::Text("日本語!".into()), t).is_err());
    }

    #[test]
    fn timestamps_from_text_in_many_forms() {
        let want = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap().and_hms_micro_opt(1, 4, 5, 123_457).unwrap();
        for s in [
            "2024-01-02 01:04:05.1234567",
            "2024-01-02T01:04:05.1234567Z",
            "2024-01-02 03:04:05.1234567+02:00",
            "2024-01-02 03:04:05.1234567+0200",
            "2024-01-02 03:04:05.1234567 +02:00",
        ] {
            assert_eq!(c(Value::Text(s.into()), DataType::Timestamp).unwrap(), Value::Timestamp(want), "{s}");
        }
        assert_eq!(
            c(Value::Text("2024-01-02 01:04:05.123457".into()), DataType::TimestampTz).unwrap(),
            Value::TimestampTz(want.and_utc())
        );
    }

    #[test]
    fn json_is_validated() {
        assert!(c(Value::Text("{nope".into()), DataType::Json).is_err());
        assert_eq!(c(Value::Int(7), DataType::Json).unwrap(), Value::Json("7".into()));
    }

    proptest! {
        #[test]
        fn int_to_text_and_back(i: i64) {
            let text = c(Value::Int(i), DataType::text()).unwrap();
            prop_assert_eq!(c(text, DataType::Int64).unwrap(), Value::Int(i));
        }

        #[test]
        fn conversion_is_idempotent(i: i32, f: f32, s in "\\PC{0,20}") {
            let cases = [
                (Value::Int(i as i64), DataType::Decimal { precision: Some(15), scale: Some(3) }),
                (Value::Float(f as f64), DataType::Float32),
                (Value::Text(s), DataType::text()),
                (Value::Int(i as i64), DataType::Float64),
            ];
            for (v, t) in cases {
                if let Ok(once) = convert(v, &t) {
                    let twice = convert(once.clone(), &t).unwrap();
                    prop_assert_eq!(Value::encode_row(&[once]), Value::encode_row(&[twice]));
                }
            }
        }
    }
}
