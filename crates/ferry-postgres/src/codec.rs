//! PostgreSQL binary wire format <-> [`Value`].
//!
//! Ferry reads and writes in the binary format (results and COPY), so every
//! value keeps its exact bits: no float printing, no decimal rounding, no
//! time zone in between.

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use ferry_core::decimal::Decimal;
use ferry_core::{DataType, Value};
use std::error::Error;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, Kind, ToSql, Type};

type BoxError = Box<dyn Error + Sync + Send>;

/// Whether Ferry decodes this type natively; others are read as `::text`.
pub fn decodes(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Domain(base) => decodes(base),
        Kind::Simple => matches!(
            *ty,
            Type::BOOL
                | Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::OID
                | Type::FLOAT4
                | Type::FLOAT8
                | Type::NUMERIC
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::BYTEA
                | Type::DATE
                | Type::TIME
                | Type::TIMESTAMP
                | Type::TIMESTAMPTZ
                | Type::JSON
                | Type::JSONB
                | Type::UUID
        ),
        _ => false,
    }
}

/// The neutral type of a result column (no typmod: numeric without scale).
pub fn data_type_of(ty: &Type) -> DataType {
    match ty.kind() {
        Kind::Domain(base) => return data_type_of(base),
        Kind::Simple => {}
        _ => return DataType::text(),
    }
    match *ty {
        Type::BOOL => DataType::Bool,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 | Type::OID => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::NUMERIC => DataType::Decimal { precision: None, scale: None },
        Type::BYTEA => DataType::Bytes,
        Type::DATE => DataType::Date,
        Type::TIME => DataType::Time,
        Type::TIMESTAMP => DataType::Timestamp,
        Type::TIMESTAMPTZ => DataType::TimestampTz,
        Type::JSON | Type::JSONB => DataType::Json,
        Type::UUID => DataType::Uuid,
        _ => DataType::text(),
    }
}

/// A value decoded from a result column.
pub struct Decoded(pub Value);

impl<'a> FromSql<'a> for Decoded {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if let Kind::Domain(base) = ty.kind() {
            return Decoded::from_sql(base, raw);
        }
        let v = match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)? as i64),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::OID => Value::Int(u32::from_sql(ty, raw)? as i64),
            Type::FLOAT4 => Value::Float(f32::from_sql(ty, raw)? as f64),
            Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
            Type::NUMERIC => Value::Decimal(decode_numeric(raw)?),
            Type::BYTEA => Value::Bytes(raw.to_vec()),
            Type::DATE => Value::Date(NaiveDate::from_sql(ty, raw)?),
            Type::TIME => Value::Time(NaiveTime::from_sql(ty, raw)?),
            Type::TIMESTAMP => Value::Timestamp(NaiveDateTime::from_sql(ty, raw)?),
            Type::TIMESTAMPTZ => Value::TimestampTz(DateTime::<Utc>::from_sql(ty, raw)?),
            Type::JSON => Value::Json(std::str::from_utf8(raw)?.to_string()),
            Type::JSONB => match raw.split_first() {
                Some((1, text)) => Value::Json(std::str::from_utf8(text)?.to_string()),
                _ => return Err("unsupported jsonb version".into()),
            },
            Type::UUID => Value::Uuid(raw.try_into().map_err(|_| "uuid is not 16 bytes")?),
            // text, varchar, bpchar, name, and anything read through ::text
            _ => Value::Text(std::str::from_utf8(raw)?.to_string()),
        };
        Ok(Decoded(v))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Decoded(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A value bound as a parameter or written by COPY, encoded for the column's type.
#[derive(Debug)]
pub struct Encode<'a>(pub &'a Value);

impl ToSql for Encode<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if let Kind::Domain(base) = ty.kind() {
            return Encode(self.0).to_sql(base, out);
        }
        let mismatch = || -> BoxError { format!("cannot write {} into a column of type {}", self.0, ty.name()).into() };
        match (self.0, ty) {
            (Value::Null, _) => return Ok(IsNull::Yes),
            (Value::Bool(b), &Type::BOOL) => out.put_u8(*b as u8),
            (Value::Int(i), &Type::INT2) => out.put_i16(i16::try_from(*i).map_err(|_| mismatch())?),
            (Value::Int(i), &Type::INT4) => out.put_i32(i32::try_from(*i).map_err(|_| mismatch())?),
            (Value::Int(i), &Type::INT8) => out.put_i64(*i),
            (Value::Int(i), &Type::OID) => out.put_u32(u32::try_from(*i).map_err(|_| mismatch())?),
            (Value::Float(f), &Type::FLOAT4) => out.put_f32(*f as f32),
            (Value::Float(f), &Type::FLOAT8) => out.put_f64(*f),
            (Value::Int(i), &Type::FLOAT8) => out.put_f64(*i as f64),
            (Value::Decimal(d), &Type::NUMERIC) => encode_numeric(d, out)?,
            (Value::Int(i), &Type::NUMERIC) => encode_numeric(&i.to_string(), out)?,
            (Value::Bytes(b), &Type::BYTEA) => out.put_slice(b),
            (Value::Date(d), &Type::DATE) => return d.to_sql(ty, out),
            (Value::Time(t), &Type::TIME) => return t.to_sql(ty, out),
            (Value::Timestamp(t), &Type::TIMESTAMP) => return t.to_sql(ty, out),
            (Value::TimestampTz(t), &Type::TIMESTAMPTZ) => return t.to_sql(ty, out),
            (Value::Timestamp(t), &Type::TIMESTAMPTZ) => return t.and_utc().to_sql(ty, out),
            (Value::TimestampTz(t), &Type::TIMESTAMP) => return t.naive_utc().to_sql(ty, out),
            (Value::Json(j), &Type::JSON) => out.put_slice(j.as_bytes()),
            (Value::Json(j), &Type::JSONB) => {
                out.put_u8(1);
                out.put_slice(j.as_bytes());
            }
            (Value::Uuid(u), &Type::UUID) => out.put_slice(u),
            // Text goes to every textual type, and to enums and other types
            // whose binary form is their text.
            (Value::Text(s), _) if is_textual(ty) => out.put_slice(s.as_bytes()),
            _ => return Err(mismatch()),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_textual(ty: &Type) -> bool {
    matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN)
        || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Appends a base-10000 digit group, zero-padded to four digits unless it leads.
fn push_group(out: &mut String, group: u16, pad: bool) {
    let digits = [group / 1000, group / 100 % 10, group / 10 % 10, group % 10];
    let skip = if pad { 0 } else { digits.iter().take(3).take_while(|d| **d == 0).count() };
    for d in &digits[skip..] {
        out.push((b'0' + *d as u8) as char);
    }
}

pub fn decode_numeric(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() < 8 {
        return Err("numeric value too short".into());
    }
    let word = |i: usize| u16::from_be_bytes([raw[i], raw[i + 1]]);
    let ndigits = word(0) as usize;
    let weight = word(2) as i16 as i64;
    let sign = word(4);
    let dscale = word(6) as usize;
    match sign {
        NUMERIC_NAN => return Ok("NaN".into()),
        NUMERIC_PINF => return Ok("Infinity".into()),
        NUMERIC_NINF => return Ok("-Infinity".into()),
        _ => {}
    }
    if raw.len() < 8 + ndigits * 2 {
        return Err("numeric value truncated".into());
    }
    let digit = |p: i64| -> u16 {
        if p < 0 || p as usize >= ndigits {
            0
        } else {
            word(8 + p as usize * 2)
        }
    };
    let mut text = String::with_capacity(4 * (weight.max(0) as usize + 1) + dscale + 2);
    if sign == NUMERIC_NEG {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for p in 0..=weight {
            push_group(&mut text, digit(p), p != 0);
        }
    }
    if dscale > 0 {
        text.push('.');
        let start = text.len();
        let mut p = weight + 1;
        while text.len() - start < dscale {
            push_group(&mut text, digit(p), true);
            p += 1;
        }
        text.truncate(start + dscale);
    }
    Ok(text)
}

/// Groups on the stack for numbers up to this many base-10000 digits; longer
/// ones take the general path.
const INLINE_GROUPS: usize = 32;

pub fn encode_numeric(text: &str, out: &mut BytesMut) -> Result<(), BoxError> {
    match text {
        "NaN" => return put_numeric_header(out, 0, 0, NUMERIC_NAN, 0),
        "Infinity" => return put_numeric_header(out, 0, 0, NUMERIC_PINF, 0),
        "-Infinity" => return put_numeric_header(out, 0, 0, NUMERIC_NINF, 0),
        _ => {}
    }
    let normalized;
    let plain = if ferry_core::decimal::plain_shape(text).is_some() {
        text
    } else {
        normalized = Decimal::parse(text).ok_or_else(|| format!("`{text}` is not a decimal number"))?.to_string();
        &normalized
    };
    let (negative, body) = match plain.strip_prefix('-') {
        Some(rest) => (true, rest.as_bytes()),
        None => (false, plain.as_bytes()),
    };
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[body.len()..]),
    };
    let int = if int == b"0" { &int[1..] } else { int };
    // Digits laid out on a grid of four, aligned on the decimal point.
    let lead = (4 - int.len() % 4) % 4;
    let int_groups = (lead + int.len()) / 4;
    let total_groups = int_groups + frac.len().div_ceil(4);
    let virtual_digit = |j: usize| -> u16 {
        if j < lead {
            0
        } else if j < lead + int.len() {
            (int[j - lead] - b'0') as u16
        } else if j < lead + int.len() + frac.len() {
            (frac[j - lead - int.len()] - b'0') as u16
        } else {
            0
        }
    };
    let group = |g: usize| -> u16 { (0..4).fold(0u16, |acc, k| acc * 10 + virtual_digit(4 * g + k)) };
    let mut inline = [0u16; INLINE_GROUPS];
    let mut heap = Vec::new();
    let groups: &mut [u16] = if total_groups <= INLINE_GROUPS {
        &mut inline[..total_groups]
    } else {
        heap.resize(total_groups, 0);
        &mut heap
    };
    for (g, slot) in groups.iter_mut().enumerate() {
        *slot = group(g);
    }
    let first = groups.iter().position(|g| *g != 0);
    let Some(first) = first else {
        return put_numeric_header(out, 0, 0, 0, frac.len());
    };
    let last = groups.iter().rposition(|g| *g != 0).expect("a nonzero group exists");
    let weight = int_groups as i64 - 1 - first as i64;
    let sign = if negative { NUMERIC_NEG } else { 0 };
    put_numeric_header(out, last - first + 1, weight, sign, frac.len())?;
    for g in &groups[first..=last] {
        out.put_u16(*g);
    }
    Ok(())
}

fn put_numeric_header(
    out: &mut BytesMut,
    ndigits: usize,
    weight: i64,
    sign: u16,
    dscale: usize,
) -> Result<(), BoxError> {
    out.put_u16(u16::try_from(ndigits)?);
    out.put_i16(i16::try_from(weight)?);
    out.put_u16(sign);
    out.put_u16(u16::try_from(dscale)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> String {
        let mut buf = BytesMut::new();
        encode_numeric(s, &mut buf).unwrap();
        decode_numeric(&buf).unwrap()
    }

    #[test]
    fn numeric_round_trips() {
        for s in [
            "0",
            "1",
            "-1",
            "12.50",
            "0.0001",
            "-0.000012",
            "10000",
            "99999999.99990",
            "123456789012345678901234567890.123456789",
            "0.00",
            "NaN",
            "5e-7",
        ] {
            let back = round_trip(s);
            if s == "NaN" {
                assert_eq!(back, "NaN");
                continue;
            }
            let want = Decimal::parse(s).unwrap();
            assert_eq!(back, want.to_string(), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn numeric_round_trips_any_plain_decimal(neg: bool, int in "[1-9][0-9]{0,40}|0", frac in "[0-9]{0,40}") {
            let text = format!("{}{int}{}{frac}", if neg { "-" } else { "" }, if frac.is_empty() { "" } else { "." });
            let want = Decimal::parse(&text).unwrap().to_string();
            proptest::prop_assert_eq!(round_trip(&text), want);
        }
    }

    #[test]
    fn numeric_known_encoding() {
        // 12.50: ndigits=2 weight=0 sign=0 dscale=2 digits=[12, 5000]
        let mut buf = BytesMut::new();
        encode_numeric("12.50", &mut buf).unwrap();
        assert_eq!(&buf[..], &[0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88]);
    }
}
