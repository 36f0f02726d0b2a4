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
    let mut text = String::new();
    if sign == NUMERIC_NEG {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for p in 0..=weight {
            if p == 0 {
                text.push_str(&digit(p).to_string());
            } else {
                text.push_str(&format!("{:04}", digit(p)));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut p = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(p)));
            p += 1;
        }
        frac.truncate(dscale);
        text.push('.');
        text.push_str(&frac);
    }
    Ok(text)
}

pub fn encode_numeric(text: &str, out: &mut BytesMut) -> Result<(), BoxError> {
    match text {
        "NaN" => return put_numeric_header(out, 0, 0, NUMERIC_NAN, 0),
        "Infinity" => return put_numeric_header(out, 0, 0, NUMERIC_PINF, 0),
        "-Infinity" => return put_numeric_header(out, 0, 0, NUMERIC_NINF, 0),
        _ => {}
    }
    let d = Decimal::parse(text).ok_or_else(|| format!("`{text}` is not a decimal number"))?;
    let plain = d.to_string();
    let (negative, digits) = match plain.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, plain.as_str()),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let dscale = frac.len();
    let int_padded = format!("{}{int}", "0".repeat((4 - int.len() % 4) % 4));
    let frac_padded = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
    let mut groups: Vec<u16> = Vec::new();
    for chunk in int_padded.as_bytes().chunks(4).chain(frac_padded.as_bytes().chunks(4)) {
        groups.push(std::str::from_utf8(chunk)?.parse()?);
    }
    let mut weight = (int_padded.len() / 4) as i64 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if negative && !groups.is_empty() { NUMERIC_NEG } else { 0 };
    put_numeric_header(out, groups.len(), weight, sign, dscale)?;
    for g in groups {
        out.put_u16(g);
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

    #[test]
    fn numeric_known_encoding() {
        // 12.50: ndigits=2 weight=0 sign=0 dscale=2 digits=[12, 5000]
        let mut buf = BytesMut::new();
        encode_numeric("12.50", &mut buf).unwrap();
        assert_eq!(&buf[..], &[0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88]);
    }
}
