//! PostgreSQL's binary value format, as COPY and binary results carry it:
//! any bytes decode to a value or an error; a decoded value encodes back to
//! bytes that decode to the same value (the canonical round trip).
#![no_main]
use bytes::BytesMut;
use ferry_postgres::{Decoded, Encode};
use libfuzzer_sys::fuzz_target;
use tokio_postgres::types::{FromSql, ToSql, Type};

const TYPES: &[Type] = &[
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::TEXT,
    Type::VARCHAR,
    Type::BYTEA,
    Type::DATE,
    Type::TIME,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::JSON,
    Type::JSONB,
    Type::UUID,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, raw)) = data.split_first() else { return };
    let ty = &TYPES[pick as usize % TYPES.len()];
    let Ok(Decoded(value)) = Decoded::from_sql(ty, raw) else { return };
    let mut out = BytesMut::new();
    if Encode(&value).to_sql(ty, &mut out).is_ok() {
        let again = Decoded::from_sql(ty, &out).expect("what Ferry encodes, it decodes");
        // Compared by the canonical encoding verification uses (a NaN equals itself there).
        let canonical = |v: &ferry_core::Value| ferry_core::Value::encode_row(std::slice::from_ref(v));
        assert_eq!(canonical(&again.0), canonical(&value), "{ty}: round trip of {value:?}");
    }
});
