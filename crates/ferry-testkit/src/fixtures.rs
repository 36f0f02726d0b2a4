//! Fixture tables, written with each engine's own SQL (never through Ferry),
//! and the values they are expected to hold.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use ferry_core::value::parse_uuid;
use ferry_core::{DataType, Row, Value};
use ferry_engine::EngineKind;

pub struct Fixture {
    pub table: &'static str,
    pub columns: Vec<(&'static str, DataType)>,
    pub rows: Vec<Row>,
}

impl Fixture {
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(n, _)| *n).collect()
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn time(h: u32, m: u32, s: u32, us: u32) -> NaiveTime {
    NaiveTime::from_hms_micro_opt(h, m, s, us).unwrap()
}

fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> NaiveDateTime {
    date(y, mo, d).and_time(time(h, mi, s, us))
}

/// One table with every common type, extremes, unicode and NULL in every nullable column.
pub fn every_type() -> Fixture {
    use DataType::*;
    let columns = vec![
        ("id", Int64),
        ("i16", Int16),
        ("i32", Int32),
        ("i64", Int64),
        ("num", Decimal { precision: Some(12), scale: Some(4) }),
        ("f32", Float32),
        ("f64", Float64),
        ("flag", Bool),
        ("txt", DataType::text()),
        ("vc", Text { max_chars: Some(50) }),
        ("bin", Bytes),
        ("d", Date),
        ("t", Time),
        ("ts", Timestamp),
        ("tstz", TimestampTz),
        ("js", Json),
        ("uid", Uuid),
    ];
    let long_text: String = "Grüße, 世界! 🦀 ".repeat(700);
    let rows = vec![
        vec![
            Value::Int(1),
            Value::Int(32767),
            Value::Int(2147483647),
            Value::Int(i64::MAX),
            Value::Decimal("12345678.1234".into()),
            Value::Float(1.5),
            Value::Float(std::f64::consts::PI),
            Value::Bool(true),
            Value::Text("héllo wörld — 🦀🚀 日本語 ✓ 'quoted' \\ backslash".into()),
            Value::Text("ünïcode ✓ 👩🏽‍💻".into()),
            Value::Bytes(vec![0, 1, 2, 255, 254, 0]),
            Value::Date(date(2024, 2, 29)),
            Value::Time(time(23, 59, 59, 123_456)),
            Value::Timestamp(ts(2024, 2, 29, 23, 59, 59, 123_456)),
            Value::TimestampTz(Utc.from_utc_datetime(&ts(2024, 2, 29, 18, 29, 59, 123_456))),
            Value::Json(r#"{"b": [1, 2, {"c": null}], "a": "x ✓", "n": 1.5}"#.into()),
            Value::Uuid(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap()),
        ],
        vec![
            Value::Int(2),
            Value::Int(-32768),
            Value::Int(-2147483648),
            Value::Int(i64::MIN),
            Value::Decimal("-0.0001".into()),
            Value::Float(0.1f32 as f64),
            Value::Float(-1e-300),
            Value::Bool(false),
            Value::Text(String::new()),
            Value::Text("x".into()),
            Value::Bytes(Vec::new()),
            Value::Date(date(1970, 1, 1)),
            Value::Time(time(0, 0, 0, 0)),
            Value::Timestamp(ts(1999, 12, 31, 23, 59, 59, 0)),
            Value::TimestampTz(Utc.from_utc_datetime(&ts(2038, 1, 19, 3, 14, 7, 0))),
            Value::Json("[]".into()),
            Value::Uuid([0; 16]),
        ],
        std::iter::once(Value::Int(3)).chain(std::iter::repeat_n(Value::Null, 16)).collect(),
        vec![
            Value::Int(4),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
            Value::Decimal("0".into()),
            Value::Float(-2.25),
            Value::Float(1e300),
            Value::Bool(true),
            Value::Text(long_text),
            Value::Text("é".repeat(50)),
            Value::Bytes((0..1000).map(|i| (i * 7 % 256) as u8).collect()),
            Value::Date(date(1000, 1, 1)),
            Value::Time(time(12, 0, 0, 1)),
            Value::Timestamp(ts(2000, 1, 1, 0, 0, 0, 1)),
            Value::TimestampTz(Utc.from_utc_datetime(&ts(1970, 1, 1, 0, 0, 1, 0))),
            Value::Json(r#"{"nested": {"deep": [true, false, null]}, "emoji": "🦀"}"#.into()),
            Value::Uuid([0xff; 16]),
        ],
    ];
    Fixture { table: "every_type", columns, rows }
}

/// `CREATE TABLE every_type` in each engine's own types.
pub fn every_type_ddl(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Postgres => {
            "CREATE TABLE every_type (id bigint PRIMARY KEY, i16 smallint, i32 integer, i64 bigint, num numeric(12,4),
             f32 real, f64 double precision, flag boolean, txt text, vc varchar(50), bin bytea, d date, t time,
             ts timestamp, tstz timestamptz, js jsonb, uid uuid)"
        }
        EngineKind::Mysql => {
            "CREATE TABLE every_type (id bigint PRIMARY KEY, i16 smallint, i32 int, i64 bigint, num decimal(12,4),
             f32 float, f64 double, flag tinyint(1), txt longtext, vc varchar(50), bin longblob, d date, t time(6),
             ts datetime(6), tstz timestamp(6) NULL DEFAULT NULL, js json, uid uuid) CHARACTER SET utf8mb4"
        }
        EngineKind::Sqlite => {
            "CREATE TABLE every_type (id INTEGER PRIMARY KEY, i16 SMALLINT, i32 INT4, i64 BIGINT, num NUMERIC(12,4),
             f32 FLOAT4, f64 REAL, flag BOOLEAN, txt TEXT, vc VARCHAR(50), bin BLOB, d DATE, t TIME, ts TIMESTAMP,
             tstz TIMESTAMPTZ, js JSON, uid UUID)"
        }
    }
}

/// A SQL literal for `v` in the engine's dialect (fixtures only: Ferry itself always binds).
pub fn literal(kind: EngineKind, v: &Value) -> String {
    let quote = |s: &str| {
        let s = s.replace('\'', "''");
        let s = if kind == EngineKind::Mysql { s.replace('\\', "\\\\") } else { s };
        format!("'{s}'")
    };
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) if kind == EngineKind::Postgres => b.to_string(),
        Value::Bool(b) => (*b as i32).to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Decimal(d) => d.clone(),
        Value::Text(s) | Value::Json(s) => quote(s),
        Value::Bytes(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            match kind {
                EngineKind::Postgres => format!("decode('{hex}', 'hex')"),
                _ if b.is_empty() => "X''".into(),
                _ => format!("X'{hex}'"),
            }
        }
        Value::Date(d) => format!("'{d}'"),
        Value::Time(t) => format!("'{}'", t.format("%H:%M:%S%.6f")),
        Value::Timestamp(t) => format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f")),
        // Written with a non-UTC offset where the engine keeps one, to exercise the conversion.
        Value::TimestampTz(t) => match kind {
            EngineKind::Mysql => format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f")),
            _ => {
                let local = t.with_timezone(&chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap());
                format!("'{}'", local.format("%Y-%m-%d %H:%M:%S%.6f%:z"))
            }
        },
        Value::Uuid(u) => format!("'{}'", ferry_core::value::format_uuid(u)),
    }
}

/// `INSERT INTO table (cols) VALUES ...` for the rows.
pub fn insert_sql(kind: EngineKind, fixture: &Fixture) -> String {
    let q = |n: &str| if kind == EngineKind::Mysql { format!("`{n}`") } else { format!("\"{n}\"") };
    let cols: Vec<String> = fixture.columns.iter().map(|(n, _)| q(n)).collect();
    let rows: Vec<String> = fixture
        .rows
        .iter()
        .map(|r| format!("({})", r.iter().map(|v| literal(kind, v)).collect::<Vec<_>>().join(", ")))
        .collect();
    let prefix = if kind == EngineKind::Mysql { "SET time_zone = '+00:00';\n" } else { "" };
    format!("{prefix}INSERT INTO {} ({}) VALUES\n{};", q(fixture.table), cols.join(", "), rows.join(",\n"))
}

/// An application's two tables, in each engine's own SQL, with everything an
/// application relies on when it writes: an identity key, defaults (text,
/// numbers, the current time, an expression on PostgreSQL), MySQL's ON
/// UPDATE CURRENT_TIMESTAMP, CHECKs, a unique email that ignores case, a
/// generated column, comments where the engine has them, partial and
/// expression indexes where it has them, and a child table whose rows go
/// with their user (`ON DELETE CASCADE ON UPDATE CASCADE`). User 3 is deleted after it was numbered, so the
/// source's identity is ahead of its largest key.
pub fn app_schema_sql(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Postgres => {
            "CREATE TABLE users (
                 id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 email varchar(200) NOT NULL,
                 name varchar(100) NOT NULL DEFAULT 'anon',
                 status varchar(10) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'banned')),
                 score integer NOT NULL DEFAULT 0,
                 created_at timestamptz NOT NULL DEFAULT now(),
                 balance numeric(12,2) DEFAULT 0.00,
                 name_upper varchar(100) GENERATED ALWAYS AS (upper(name)) STORED,
                 CONSTRAINT users_score_positive CHECK (score >= 0));
             CREATE UNIQUE INDEX users_email_lower ON users (lower(email));
             CREATE INDEX users_active_created ON users (created_at) WHERE status = 'active';
             COMMENT ON TABLE users IS 'people who log in';
             COMMENT ON COLUMN users.email IS 'login name';
             CREATE TABLE sessions (
                 id serial PRIMARY KEY,
                 user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE ON UPDATE CASCADE,
                 token varchar(64) NOT NULL DEFAULT md5(random()::text),
                 revoked boolean NOT NULL DEFAULT false);
             CREATE UNIQUE INDEX sessions_live_token ON sessions (token) WHERE NOT revoked;
             INSERT INTO users (email, name, score) VALUES ('Ann@example.com', 'ann', 3), ('bob@example.com', 'bob', 5),
                 ('carol@example.com', 'carol', 7);
             INSERT INTO sessions (user_id, token) VALUES (1, 't1'), (1, 't2'), (2, 't3'), (3, 't4');
             DELETE FROM users WHERE id = 3;"
        }
        EngineKind::Mysql => {
            "CREATE TABLE users (
                 id bigint AUTO_INCREMENT PRIMARY KEY,
                 email varchar(200) NOT NULL COMMENT 'login name',
                 name varchar(100) NOT NULL DEFAULT 'anon',
                 status varchar(10) NOT NULL DEFAULT 'active',
                 score int NOT NULL DEFAULT 0,
                 created_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                 updated_at datetime(6) NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP(6),
                 balance decimal(12,2) DEFAULT 0.00,
                 name_upper varchar(100) AS (upper(name)) STORED,
                 UNIQUE KEY users_email (email),
                 CONSTRAINT users_status_check CHECK (status IN ('active', 'banned')),
                 CONSTRAINT users_score_positive CHECK (score >= 0)) COMMENT 'people who log in';
             CREATE TABLE sessions (
                 id int AUTO_INCREMENT PRIMARY KEY,
                 user_id bigint NOT NULL,
                 token varchar(64) NOT NULL,
                 revoked tinyint(1) NOT NULL DEFAULT 0,
                 CONSTRAINT sessions_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE ON UPDATE CASCADE);
             INSERT INTO users (email, name, score) VALUES ('Ann@example.com', 'ann', 3), ('bob@example.com', 'bob', 5),
                 ('carol@example.com', 'carol', 7);
             INSERT INTO sessions (user_id, token) VALUES (1, 't1'), (1, 't2'), (2, 't3'), (3, 't4');
             DELETE FROM users WHERE id = 3;"
        }
        EngineKind::Sqlite => {
            "PRAGMA foreign_keys = ON;
             CREATE TABLE users (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 email VARCHAR(200) NOT NULL COLLATE NOCASE UNIQUE,
                 name VARCHAR(100) NOT NULL DEFAULT 'anon',
                 status VARCHAR(10) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'banned')),
                 score INTEGER NOT NULL DEFAULT 0,
                 created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                 balance NUMERIC(12,2) DEFAULT 0.00,
                 name_upper VARCHAR(100) GENERATED ALWAYS AS (upper(name)) STORED,
                 CONSTRAINT users_score_positive CHECK (score >= 0));
             CREATE INDEX users_active_created ON users (created_at) WHERE status = 'active';
             CREATE INDEX users_lower_name ON users (lower(name));
             CREATE TABLE sessions (
                 id INTEGER PRIMARY KEY,
                 user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE ON UPDATE CASCADE,
                 token VARCHAR(64) NOT NULL,
                 revoked BOOLEAN NOT NULL DEFAULT 0);
             CREATE UNIQUE INDEX sessions_live_token ON sessions (token) WHERE NOT revoked;
             INSERT INTO users (email, name, score) VALUES ('Ann@example.com', 'ann', 3), ('bob@example.com', 'bob', 5),
                 ('carol@example.com', 'carol', 7);
             INSERT INTO sessions (user_id, token) VALUES (1, 't1'), (1, 't2'), (2, 't3'), (3, 't4');
             DELETE FROM users WHERE id = 3;"
        }
    }
}

/// The `[[table]]` entries that move [`app_schema_sql`]'s tables.
pub const APP_TABLES: &str = "[[table]]\nfrom = \"users\"\n\n[[table]]\nfrom = \"sessions\"\n";
