//! The one value type that crosses engines, and its canonical encoding.
//!
//! Two values that mean the same thing encode to the same bytes, whatever
//! engine they came from: timestamps as UTC microseconds, decimals without
//! trailing zeros, JSON with sorted keys and no spacing, text as its exact
//! UTF-8 bytes. Checksums and comparisons work on this encoding, so they never
//! report a difference that is only a difference of representation.

use crate::decimal::Decimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Exact decimal, as text (see [`Decimal`]).
    Decimal(String),
    Text(String),
    Bytes(#[serde(with = "hex_bytes")] Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    /// JSON document as text, exactly as the engine returned it.
    Json(String),
    Uuid([u8; 16]),
}

/// One row: values in the order of the columns being read or written.
pub type Row = Vec<Value>;

mod tag {
    pub const NULL: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const FLOAT: u8 = 3;
    pub const DECIMAL: u8 = 4;
    pub const TEXT: u8 = 5;
    pub const BYTES: u8 = 6;
    pub const DATE: u8 = 7;
    pub const TIME: u8 = 8;
    pub const TIMESTAMP: u8 = 9;
    pub const JSON: u8 = 10;
    pub const UUID: u8 = 11;
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Appends this value's canonical encoding to `out`.
    ///
    /// Values should first be converted to the column's type (see
    /// [`crate::convert::convert`]); the encoding then only has to erase
    /// differences of representation, not of type.
    pub fn encode_canonical(&self, out: &mut Vec<u8>) {
        fn with_len(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
            out.push(tag);
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        match self {
            Value::Null => out.push(tag::NULL),
            Value::Bool(b) => out.extend_from_slice(&[tag::BOOL, *b as u8]),
            Value::Int(i) => {
                out.push(tag::INT);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Float(f) => {
                // One NaN and one zero: engines disagree on the sign of zero.
                let f = if f.is_nan() {
                    f64::NAN
                } else if *f == 0.0 {
                    0.0
                } else {
                    *f
                };
                out.push(tag::FLOAT);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::Decimal(d) => match crate::decimal::canonical_parts(d) {
                Some((negative, int, frac)) => {
                    let len = negative as usize + int.len() + if frac.is_empty() { 0 } else { 1 + frac.len() };
                    out.push(tag::DECIMAL);
                    out.extend_from_slice(&(len as u64).to_be_bytes());
                    if negative {
                        out.push(b'-');
                    }
                    out.extend_from_slice(int.as_bytes());
                    if !frac.is_empty() {
                        out.push(b'.');
                        out.extend_from_slice(frac.as_bytes());
                    }
                }
                None => {
                    let canonical = Decimal::parse(d).map(|d| d.canonical()).unwrap_or_else(|| d.clone());
                    with_len(out, tag::DECIMAL, canonical.as_bytes())
                }
            },
            Value::Text(s) => with_len(out, tag::TEXT, s.as_bytes()),
            Value::Bytes(b) => with_len(out, tag::BYTES, b),
            Value::Date(d) => {
                out.push(tag::DATE);
                out.extend_from_slice(&d.signed_duration_since(epoch_date()).num_days().to_be_bytes());
            }
            Value::Time(t) => {
                out.push(tag::TIME);
                let micros = t.num_seconds_from_midnight() as i64 * 1_000_000 + (t.nanosecond() / 1000) as i64;
                out.extend_from_slice(&micros.to_be_bytes());
            }
            // A naive timestamp is compared as if it were UTC, so that a
            // timestamptz moved into a datetime column (in UTC) compares equal.
            Value::Timestamp(ts) => {
                out.push(tag::TIMESTAMP);
                out.extend_from_slice(&ts.and_utc().timestamp_micros().to_be_bytes());
            }
            Value::TimestampTz(ts) => {
                out.push(tag::TIMESTAMP);
                out.extend_from_slice(&ts.timestamp_micros().to_be_bytes());
            }
            Value::Json(text) => {
                let canonical = canonical_json(text).unwrap_or_else(|| text.clone());
                with_len(out, tag::JSON, canonical.as_bytes())
            }
            Value::Uuid(u) => {
                out.push(tag::UUID);
                out.extend_from_slice(u);
            }
        }
    }

    /// Canonical encoding of a whole row.
    pub fn encode_row(row: &[Value]) -> Vec<u8> {
        Value::encode_all(row.iter())
    }

    /// Canonical encoding of a sequence of values (a key picked out of a row, say).
    pub fn encode_all<'a>(values: impl Iterator<Item = &'a Value>) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        for v in values {
            v.encode_canonical(&mut out);
        }
        out
    }
}

/// JSON re-serialised with sorted keys, no insignificant whitespace, and
/// numbers in one spelling (`100`, `100.0` and `1e2` are one number: MySQL
/// writes doubles where PostgreSQL keeps the digits it was given).
pub fn canonical_json(text: &str) -> Option<String> {
    // serde_json's map is a BTreeMap (no `preserve_order`), so keys come out sorted.
    let mut parsed: serde_json::Value = serde_json::from_str(text).ok()?;
    normalize_numbers(&mut parsed);
    serde_json::to_string(&parsed).ok()
}

fn normalize_numbers(v: &mut serde_json::Value) {
    /// Integers up to 2^53 survive a trip through a double exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match v {
        serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() <= EXACT {
                    *n = serde_json::Number::from(f as i64);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(normalize_numbers),
        serde_json::Value::Object(map) => map.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

pub fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.trim().trim_start_matches('{').trim_end_matches('}').chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// Human form, used in reports and error messages (never in SQL).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Decimal(d) => f.write_str(d),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bytes(b) if b.len() <= 32 => {
                f.write_str("\\x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Date(d) => write!(f, "{d}"),
            Value::Time(t) => write!(f, "{}", t.format("%H:%M:%S%.f")),
            Value::Timestamp(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.f")),
            Value::TimestampTz(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.fZ")),
            Value::Json(j) => f.write_str(j),
            Value::Uuid(u) => f.write_str(&format_uuid(u)),
        }
    }
}

/// `id=42` or `(tenant_id, id)=(7, 42)`, for messages.
pub fn describe_key(columns: &[String], values: &[Value]) -> String {
    if columns.len() == 1 && values.len() == 1 {
        format!("{}={}", columns[0], values[0])
    } else {
        let vals: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        format!("({})=({})", columns.join(", "), vals.join(", "))
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let hex = String::deserialize(d)?;
        if hex.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd hex length"));
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with_len_for_test(out: &mut Vec<u8>, bytes: &[u8]) {
        out.push(tag::DECIMAL);
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        v.encode_canonical(&mut out);
        out
    }

    #[test]
    fn representation_differences_encode_equal() {
        assert_eq!(enc(&Value::Decimal("1.50".into())), enc(&Value::Decimal("1.5".into())));
        assert_eq!(
            enc(&Value::Json(r#"{"b": 1, "a": [1, 2]}"#.into())),
            enc(&Value::Json(r#"{"a":[1,2],"b":1}"#.into()))
        );
        assert_eq!(enc(&Value::Float(-0.0)), enc(&Value::Float(0.0)));
        assert_eq!(enc(&Value::Json("[100, 1.50, -0.0]".into())), enc(&Value::Json("[1e2, 1.5, 0]".into())));
        assert_ne!(enc(&Value::Json("[1.5]".into())), enc(&Value::Json("[1.25]".into())));
        let ts = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap().and_hms_micro_opt(1, 2, 3, 4).unwrap();
        assert_eq!(enc(&Value::Timestamp(ts)), enc(&Value::TimestampTz(ts.and_utc())));
    }

    #[test]
    fn different_values_encode_differently() {
        assert_ne!(enc(&Value::Text("a".into())), enc(&Value::Text("A".into())));
        assert_ne!(enc(&Value::Null), enc(&Value::Text(String::new())));
        assert_ne!(enc(&Value::Int(1)), enc(&Value::Bool(true)));
        // length prefixes keep adjacent columns from running into each other
        assert_ne!(
            Value::encode_row(&[Value::Text("ab".into()), Value::Text("c".into())]),
            Value::encode_row(&[Value::Text("a".into()), Value::Text("bc".into())])
        );
    }

    #[test]
    fn uuid_text_round_trip() {
        let u = parse_uuid("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}").unwrap();
        assert_eq!(format_uuid(&u), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert!(parse_uuid("nope").is_none());
    }

    proptest! {
        #[test]
        fn value_serde_round_trips(i: i64, s in "\\PC*", b in proptest::collection::vec(any::<u8>(), 0..40)) {
            for v in [Value::Int(i), Value::Text(s.clone()), Value::Bytes(b.clone()), Value::Null] {
                let json = serde_json::to_string(&v).unwrap();
                let back: Value = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(back, v);
            }
        }

        #[test]
        fn decimal_fast_path_is_the_canonical_form(units in -1_000_000i64..1_000_000, frac in 0u32..10_000, zeros in 0usize..3) {
            let text = format!("{}{}.{:04}{}", if units < 0 { "-" } else { "" }, units.unsigned_abs(), frac, "0".repeat(zeros));
            let slow = Decimal::parse(&text).unwrap().canonical();
            let mut expected = Vec::new();
            with_len_for_test(&mut expected, slow.as_bytes());
            prop_assert_eq!(enc(&Value::Decimal(text)), expected);
        }

        #[test]
        fn json_key_order_never_matters(a: i32, b in "\\PC{0,10}") {
            let one = format!(r#"{{"x": {a}, "y": {}}}"#, serde_json::to_string(&b).unwrap());
            let two = format!(r#"{{ "y":{}, "x":{a} }}"#, serde_json::to_string(&b).unwrap());
            prop_assert_eq!(enc(&Value::Json(one)), enc(&Value::Json(two)));
        }
    }
}
