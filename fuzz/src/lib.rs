//! What each fuzz target checks, as plain functions: `fuzz_targets/*.rs`
//! hand them libFuzzer's inputs, and the main workspace's
//! `crates/ferry-cli/tests/fuzz_smoke.rs` includes this file and runs them
//! over seeds and random inputs on every `scripts/test` (no sanitizer build
//! there: it alone takes 12 minutes on two cores).
//!
//! Every function must not panic, whatever its input.

use bytes::BytesMut;
use ferry_core::usersql::{validate, Fragment};
use ferry_core::EngineKind;
use ferry_engine::tls::{TlsDialect, TlsSettings};
use ferry_postgres::{Decoded, Encode};
use tokio_postgres::types::{FromSql, ToSql, Type};

/// The spec parser, `${ENV}` interpolation included: any text is a spec or a
/// located error.
pub fn spec(text: &str) {
    if let Err(e) = ferry_core::Spec::parse(std::path::Path::new("/fuzz/ferry.toml"), text) {
        let _ = e.to_string();
    }
    let _ = ferry_core::spec::interpolate(text, |name| (name.len() % 2 == 0).then(|| name.repeat(2)));
}

/// Database URLs as people write them: parsed or refused, the password never
/// in what is shown, the TLS parameters taken out or refused.
pub fn database_url(text: &str) {
    let shown = ferry_core::spec::redact_for_message(text);
    if let Ok(url) = ferry_engine::DatabaseUrl::parse(text, std::path::Path::new("/fuzz")) {
        let shown_url = url.to_string();
        if let Some((_, password)) = password_of(text) {
            // A password that also occurs elsewhere in the URL cannot be told apart there, and
            // punctuation can reappear where the URL is normalised: letters and digits only.
            let distinct = password.len() >= 4 && password.bytes().all(|b| b.is_ascii_alphanumeric());
            if distinct && text.matches(password).count() == 1 {
                assert!(!shown_url.contains(password), "password shown: {shown_url}");
                assert!(!shown.contains(password), "password shown: {shown}");
            }
        }
    }
    if let Ok(mut url) = url::Url::parse(text) {
        for dialect in [TlsDialect::Libpq, TlsDialect::Mysql] {
            let _ = TlsSettings::take_from(&mut url.clone(), dialect);
        }
        let _ = TlsSettings::take_from(&mut url, TlsDialect::Libpq);
    }
}

/// `user:password` as the spec's parser splits it (at the last `@`); a
/// `sqlite:` URL is a file path, with no password in it.
fn password_of(text: &str) -> Option<(&str, &str)> {
    if text.starts_with("sqlite:") {
        return None;
    }
    let rest = &text[text.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    let (user, password) = userinfo.split_once(':')?;
    (!password.contains('*') && !password.contains("${")).then_some((user, password))
}

/// The operator's SQL checker: any text in any dialect is accepted or
/// refused with a reason, never a stack overflow; what passes cannot end the
/// statement it is spliced into.
pub fn user_sql(text: &str) {
    for engine in [EngineKind::Postgres, EngineKind::Mysql, EngineKind::Sqlite] {
        for kind in [Fragment::Filter, Fragment::Expression, Fragment::Query] {
            if validate(text, kind, engine).is_ok() {
                // What passes can never end the statement it is spliced into:
                // a `;` only inside a quoted string or identifier.
                let quoted = ['\'', '"', '`', '$', '['].iter().any(|q| text.contains(*q));
                assert!(!text.contains(';') || quoted, "{engine:?} {kind:?} accepted {text:?}");
            }
        }
    }
}

/// The pgoutput decoder of logical capture: any bytes are a message or an error.
pub fn pgoutput(data: &[u8]) {
    let _ = ferry_postgres::parse_pgoutput(data);
}

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

/// PostgreSQL's binary value format, as COPY and binary results carry it:
/// any bytes decode to a value or an error; a decoded value encodes back to
/// bytes that decode to the same value (the canonical round trip).
pub fn pg_values(data: &[u8]) {
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
}

/// The binary log reader's handling of events: any bytes, read as a binary
/// log file's events, give keys or an error. Panics of the decoder it uses
/// (mysql_common) are caught and made errors by Ferry; the caller's panic
/// hook tells those apart from any other ([`panicked_outside_the_decoder`]).
pub fn binlog(data: &[u8]) {
    let _ = ferry_mysql::keys_in_binlog_bytes(data);
}

/// Whether a panic at `file` is one Ferry does not catch: any panic but the
/// binary log decoder's.
pub fn panicked_outside_the_decoder(file: &str) -> bool {
    !file.contains("mysql_common")
}
