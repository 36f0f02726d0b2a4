//! `ferry demo`: a realistic SQLite source and the spec that moves it.

use crate::error::{Result, RunError};
use rusqlite::{params, Connection};
use std::path::Path;

pub const DEFAULT_USERS: u64 = 200_000;
pub const DEFAULT_SESSIONS: u64 = 500_000;

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Linus",
    "Zoë",
    "José",
    "Søren",
    "Łukasz",
    "Ömer",
    "Chloé",
    "Björk",
    "Nguyễn",
    "Анна",
    "Дмитрий",
    "Γιώργος",
    "محمد",
    "נועה",
    "李",
    "さくら",
    "민준",
    "Aarav",
    "Olúwásẹ́un",
    "Siobhán",
    "Mateus",
    "Priya",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Torvalds",
    "Müller",
    "García",
    "Kierkegaard",
    "Wałęsa",
    "Yılmaz",
    "Dubois",
    "Guðmundsdóttir",
    "Văn An",
    "Иванова",
    "Петров",
    "Παπαδόπουλος",
    "الفارسي",
    "כהן",
    "小龙",
    "山田",
    "김",
    "Sharma",
    "Adébáyọ̀",
    "Ó Briain",
    "Silva",
    "Patel",
];
const EMOJI: &[&str] = &["", "", "", " 🚀", " 🦀", " ✨", " 🇧🇷", " 👩🏽‍💻"];
const DOMAINS: &[&str] = &["example.com", "mail.example.org", "corp.example.net", "exämple.de", "例え.jp"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148",
    "curl/8.10.1",
];

/// Creates the demo source database at `path` (which must not exist).
pub fn create_source(path: &Path, users: u64, sessions: u64) -> Result<()> {
    let mut conn =
        Connection::open(path).map_err(|e| RunError::state(format!("demo: cannot create {}: {e}", path.display())))?;
    let err = |e: rusqlite::Error| RunError::state(format!("demo: building the source database: {e}"));
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = OFF;
         PRAGMA cache_size = -262144;
         CREATE TABLE users (
             id INTEGER PRIMARY KEY,
             email VARCHAR(255) NOT NULL,
             full_name TEXT NOT NULL,
             age SMALLINT,
             balance NUMERIC(12,2) NOT NULL,
             score REAL,
             is_active BOOLEAN NOT NULL,
             birth_date DATE,
             wake_time TIME,
             created_at TIMESTAMP NOT NULL,
             last_login TIMESTAMPTZ,
             profile JSON,
             avatar BLOB,
             api_key UUID NOT NULL
         );
         CREATE TABLE sessions (
             id INTEGER PRIMARY KEY,
             user_id INTEGER NOT NULL REFERENCES users (id),
             token TEXT NOT NULL,
             started_at TIMESTAMPTZ NOT NULL,
             expires_at TIMESTAMP,
             ip VARCHAR(45),
             user_agent TEXT,
             data JSON
         );",
    )
    .map_err(err)?;
    let mut rng = fastrand::Rng::with_seed(20261121);
    let tx = conn.transaction().map_err(err)?;
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO users (id, email, full_name, age, balance, score, is_active, birth_date, wake_time,
                     created_at, last_login, profile, avatar, api_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .map_err(err)?;
        for id in 1..=users as i64 {
            let first = FIRST[rng.usize(..FIRST.len())];
            let last = LAST[rng.usize(..LAST.len())];
            let name = format!("{first} {last}{}", EMOJI[rng.usize(..EMOJI.len())]);
            let email = format!("user{id}@{}", DOMAINS[rng.usize(..DOMAINS.len())]);
            let age = (rng.u8(..10) != 0).then(|| rng.i64(16..95));
            let balance = format!("{}.{:02}", rng.i64(-5_000..250_000), rng.u8(..100));
            let score = (rng.u8(..5) != 0).then(|| rng.f64() * 100.0);
            let created = 1_600_000_000 + rng.i64(0..150_000_000);
            let created_at = timestamp_text(created, rng.u32(..1_000_000), "");
            let last_login = (rng.u8(..4) != 0)
                .then(|| timestamp_text(created + rng.i64(0..20_000_000), rng.u32(..1_000_000), "+00:00"));
            let birth = (rng.u8(..3) != 0).then(|| {
                chrono::NaiveDate::from_num_days_from_ce_opt(rng.i32(711_000..739_000))
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            });
            let wake = (rng.u8(..3) != 0).then(|| format!("{:02}:{:02}:00", rng.u8(4..11), rng.u8(..60)));
            let profile = (rng.u8(..3) != 0).then(|| {
                serde_json::json!({
                    "theme": (["dark", "light", "système"][rng.usize(..3)]),
                    "newsletter": rng.bool(),
                    "tags": (0..rng.usize(..4)).map(|i| format!("t{i}")).collect::<Vec<_>>(),
                    "bio": format!("Hi, I am {first} ✌️"),
                })
                .to_string()
            });
            let avatar = (rng.u8(..5) == 0).then(|| (0..rng.usize(8..64)).map(|_| rng.u8(..)).collect::<Vec<u8>>());
            let api_key = uuid_text(&mut rng);
            insert
                .execute(params![
                    id,
                    email,
                    name,
                    age,
                    balance,
                    score,
                    rng.bool(),
                    birth,
                    wake,
                    created_at,
                    last_login,
                    profile,
                    avatar,
                    api_key
                ])
                .map_err(err)?;
        }
        let mut insert = tx
            .prepare(
                "INSERT INTO sessions (id, user_id, token, started_at, expires_at, ip, user_agent, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(err)?;
        for id in 1..=sessions as i64 {
            let user = rng.i64(1..=users.max(1) as i64);
            let token: String = (0..32).map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)])).collect();
            let started = 1_650_000_000 + rng.i64(0..100_000_000);
            let started_at = timestamp_text(started, rng.u32(..1_000_000), "+00:00");
            let expires_at = (rng.u8(..5) != 0).then(|| timestamp_text(started + 86_400 * rng.i64(1..31), 0, ""));
            let ip = if rng.bool() {
                format!("{}.{}.{}.{}", rng.u8(1..255), rng.u8(..), rng.u8(..), rng.u8(1..255))
            } else {
                format!("2001:db8:{:x}::{:x}", rng.u16(..), rng.u16(..))
            };
            let agent = (rng.u8(..6) != 0).then(|| AGENTS[rng.usize(..AGENTS.len())]);
            let data = (rng.bool()).then(|| {
                format!(
                    r#"{{"mfa": {}, "scopes": ["read"{}]}}"#,
                    rng.bool(),
                    if rng.bool() { r#", "write""# } else { "" }
                )
            });
            insert.execute(params![id, user, token, started_at, expires_at, ip, agent, data]).map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    // Indexes after the data, as any bulk load should.
    conn.execute_batch(
        "CREATE UNIQUE INDEX users_email_key ON users (email);
         CREATE UNIQUE INDEX sessions_token_key ON sessions (token);
         CREATE INDEX users_created_at_idx ON users (created_at);
         CREATE INDEX sessions_user_id_idx ON sessions (user_id);",
    )
    .map_err(err)?;
    Ok(())
}

fn timestamp_text(seconds: i64, micros: u32, suffix: &str) -> String {
    let at = chrono::DateTime::from_timestamp(seconds, micros * 1000).unwrap_or_default();
    format!("{}{suffix}", at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f"))
}

fn uuid_text(rng: &mut fastrand::Rng) -> String {
    let mut bytes = [0u8; 16];
    bytes.iter_mut().for_each(|b| *b = rng.u8(..));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    ferry_core::value::format_uuid(&bytes)
}

/// The demo's spec: renames a column, computes another, answers every question.
pub fn spec_text(batch_size: usize) -> String {
    format!(
        r#"# Written by `ferry demo`.
[migration]
name = "demo: users and sessions to a new SQLite file"
owner = "ferry demo"
downtime = "0s"
rollback = "lossless"

[source]
url = "sqlite:source.db"

[target]
url = "sqlite:target.db"

[policy]
batch_size = {batch_size}

[[table]]
from = "users"

[table.columns]
# A rename: the target calls it display_name.
display_name = "full_name"
# A computed column, in the source's SQL dialect.
email_domain = {{ expr = "substr(email, instr(email, '@') + 1)", type = "varchar(255)" }}

[[table]]
from = "sessions"
"#
    )
}
