//! Property tests: one logical value has one canonical encoding, however an
//! engine spells it (numeric scale, float formatting, time zone offsets,
//! JSON spacing, key order and number spelling, 4-byte UTF-8), and two
//! different values never share one. This is what lets verification compare
//! across engines without false differences.

use chrono::{DateTime, FixedOffset, Utc};
use ferry_core::convert::convert;
use ferry_core::{DataType, Value};
use proptest::prelude::*;
use serde_json::json;

fn canonical(v: Value, t: &DataType) -> Vec<u8> {
    let converted = convert(v, t).expect("converts");
    Value::encode_all(std::iter::once(&converted))
}

/// A decimal as text with `scale` fraction digits (zero-padded), as an engine with that column scale prints it.
fn decimal_text(units: i64, fraction: u32, digits: u32, scale: u32) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let mut frac = format!("{:0width$}", fraction, width = digits as usize);
    while (frac.len() as u32) < scale {
        frac.push('0');
    }
    if frac.is_empty() {
        format!("{sign}{}", units.unsigned_abs())
    } else {
        format!("{sign}{}.{frac}", units.unsigned_abs())
    }
}

/// A JSON document of nested objects, arrays, strings (any Unicode), numbers and literals.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i32>().prop_map(|i| json!(i)),
        (-1_000_000i64..1_000_000, 1u32..4).prop_map(|(m, e)| json!(m as f64 / 10f64.powi(e as i32))),
        "\\PC{0,8}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-zA-Z_é🦀]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The same document as another engine might write it: keys in reverse
/// order, spaces after separators, integral numbers as `n.0` or `nE0`.
fn respell(v: &serde_json::Value, style: u8) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .rev()
                .map(|(k, v)| {
                    format!(
                        "{}{}{}",
                        serde_json::to_string(k).unwrap(),
                        if style.is_multiple_of(2) { ": " } else { ":" },
                        respell(v, style)
                    )
                })
                .collect();
            format!("{{ {} }}", parts.join(" , "))
        }
        serde_json::Value::Array(items) => {
            format!("[ {} ]", items.iter().map(|i| respell(i, style)).collect::<Vec<_>>().join(", "))
        }
        serde_json::Value::Number(n) if n.is_i64() => match style % 3 {
            0 => format!("{n}.0"),
            1 => format!("{n}E0"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

proptest! {
    #[test]
    fn numeric_scale_never_matters(units in -1_000_000_000i64..1_000_000_000, fraction in 0u32..1000, s1 in 3u32..8, s2 in 3u32..8) {
        let t = DataType::Decimal { precision: Some(20), scale: Some(s1.max(s2)) };
        let a = canonical(Value::Decimal(decimal_text(units, fraction, 3, s1)), &t);
        let b = canonical(Value::Decimal(decimal_text(units, fraction, 3, s2)), &t);
        prop_assert_eq!(&a, &b);
        let other = canonical(Value::Decimal(decimal_text(units, (fraction + 1) % 1000, 3, s1)), &t);
        if fraction + 1 < 1000 {
            prop_assert_ne!(a, other);
        }
    }

    #[test]
    fn time_zone_offsets_never_matter(seconds in -2_000_000_000i64..4_000_000_000, micros in 0u32..1_000_000, offset_minutes in -14 * 60i32..=14 * 60) {
        let instant = DateTime::<Utc>::from_timestamp(seconds, micros * 1000).unwrap();
        let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
        let local = instant.with_timezone(&offset).format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string();
        let utc = instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        for t in [DataType::TimestampTz, DataType::Timestamp] {
            let from_local = canonical(Value::Text(local.clone()), &t);
            prop_assert_eq!(&from_local, &canonical(Value::Text(utc.clone()), &t));
            prop_assert_eq!(&from_local, &canonical(Value::TimestampTz(instant), &t));
            prop_assert_eq!(&from_local, &canonical(Value::Timestamp(instant.naive_utc()), &t));
        }
        let later = instant + chrono::Duration::microseconds(1);
        prop_assert_ne!(canonical(Value::TimestampTz(instant), &DataType::TimestampTz), canonical(Value::TimestampTz(later), &DataType::TimestampTz));
    }

    #[test]
    fn float_formatting_never_matters(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let t = DataType::Float64;
        let reference = canonical(Value::Float(f), &t);
        for text in [format!("{f}"), format!("{f:e}"), format!("{f:?}"), format!("{f:.17e}")] {
            prop_assert_eq!(&reference, &canonical(Value::Text(text.clone()), &t), "{}", text);
        }
        let next = f64::from_bits(f.to_bits() + 1);
        if next.is_finite() && next != f {
            prop_assert_ne!(reference, canonical(Value::Float(next), &t));
        }
    }

    #[test]
    fn json_spelling_never_matters(doc in json_value(), style in 0u8..6) {
        let compact = serde_json::to_string(&doc).unwrap();
        let respelled = respell(&doc, style);
        prop_assert_eq!(
            canonical(Value::Json(compact.clone()), &DataType::Json),
            canonical(Value::Json(respelled.clone()), &DataType::Json),
            "{} vs {}", compact, respelled
        );
        let changed = json!({ "wrapped": doc });
        prop_assert_ne!(canonical(Value::Json(compact), &DataType::Json), canonical(Value::Json(changed.to_string()), &DataType::Json));
    }

    /// Text is compared as its exact UTF-8 bytes: 4-byte characters intact,
    /// and no collation folds case or accents together.
    #[test]
    fn text_is_exact_bytes(s in "\\PC{0,12}", emoji in "[🦀🧪👩🏽‍💻😀]{1,3}") {
        let t = DataType::Text { max_chars: None };
        let text = format!("{s}{emoji}");
        let from_bytes = Value::Text(String::from_utf8(text.clone().into_bytes()).unwrap());
        prop_assert_eq!(canonical(Value::Text(text.clone()), &t), canonical(from_bytes, &t));
        let upper = text.to_uppercase();
        if upper != text {
            prop_assert_ne!(canonical(Value::Text(text), &t), canonical(Value::Text(upper), &t));
        }
    }
}
