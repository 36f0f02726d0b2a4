//! SQL and shell commands a plan shows, in each engine's dialect.

use super::facts::TableFacts;
use ferry_core::types::DataType;
use ferry_core::EngineKind;

/// `schema.table` quoted part by part.
pub fn table(engine: EngineKind, name: &str) -> String {
    name.split('.').map(|p| engine.ident(p)).collect::<Vec<_>>().join(".")
}

pub fn ident(engine: EngineKind, name: &str) -> String {
    engine.ident(name)
}

fn idents(engine: EngineKind, names: &[String]) -> String {
    names.iter().map(|n| engine.ident(n)).collect::<Vec<_>>().join(", ")
}

/// The parts of a (redacted) URL a shell command needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub user: String,
    pub host: String,
    pub port: Option<String>,
    pub database: String,
}

pub fn url_parts(url: &str) -> Option<UrlParts> {
    let rest = url.split_once("://")?.1;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let user = userinfo.split(':').next().unwrap_or("").to_string();
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), Some(p.to_string())),
        None => (hostport.to_string(), None),
    };
    let database = path.split('?').next().unwrap_or("").to_string();
    Some(UrlParts { user, host, port, database })
}

fn sqlite_path(url: &str) -> String {
    url.strip_prefix("sqlite:").unwrap_or(url).to_string()
}

/// Backup, and a restore test that proves the backup, for the tables of one database.
pub fn backup_commands(engine: EngineKind, url: &str, tables: &[&str]) -> Vec<String> {
    match engine {
        EngineKind::Postgres => {
            let p = url_parts(url).unwrap_or(UrlParts {
                user: "USER".into(),
                host: "HOST".into(),
                port: None,
                database: "DB".into(),
            });
            let conn = format!("-h {} -p {} -U {}", p.host, p.port.as_deref().unwrap_or("5432"), p.user);
            let t: String = tables.iter().map(|t| format!(" -t '{t}'")).collect();
            vec![
                format!("pg_dump {conn} -Fc{t} -f ferry-backup.dump {}", p.database),
                format!("createdb {conn} ferry_restore_test && pg_restore {conn} -d ferry_restore_test ferry-backup.dump"),
                format!(
                    "psql {conn} -d ferry_restore_test -c \"SELECT count(*) FROM {}\"   # must match the source, then: dropdb {conn} ferry_restore_test",
                    tables.first().copied().unwrap_or("TABLE")
                ),
            ]
        }
        EngineKind::Mysql => {
            let p = url_parts(url).unwrap_or(UrlParts {
                user: "USER".into(),
                host: "HOST".into(),
                port: None,
                database: "DB".into(),
            });
            let conn = format!("-h {} -P {} -u {} -p", p.host, p.port.as_deref().unwrap_or("3306"), p.user);
            vec![
                format!("mysqldump {conn} --single-transaction --routines --triggers {} {} > ferry-backup.sql", p.database, tables.join(" ")),
                format!("mysql {conn} -e 'CREATE DATABASE ferry_restore_test' && mysql {conn} ferry_restore_test < ferry-backup.sql"),
                format!(
                    "mysql {conn} ferry_restore_test -e 'SELECT count(*) FROM {}'   # must match the source, then: DROP DATABASE ferry_restore_test",
                    tables.first().copied().unwrap_or("TABLE")
                ),
            ]
        }
        EngineKind::Sqlite => {
            let path = sqlite_path(url);
            vec![
                format!("sqlite3 '{path}' \".backup '{path}.ferry-backup'\""),
                format!(
                    "sqlite3 '{path}.ferry-backup' 'PRAGMA integrity_check; SELECT count(*) FROM {}'   # must print ok and match the source",
                    tables.first().copied().unwrap_or("TABLE")
                ),
            ]
        }
    }
}

pub fn count(engine: EngineKind, name: &str, filter: Option<&str>) -> String {
    match filter {
        Some(f) => format!("SELECT count(*) FROM {} WHERE ({f});", table(engine, name)),
        None => format!("SELECT count(*) FROM {};", table(engine, name)),
    }
}

/// An engine-native checksum of a whole table, comparable between two copies on the same engine.
pub fn checksum(engine: EngineKind, name: &str, key: &[String], columns: &[String]) -> String {
    let t = table(engine, name);
    match engine {
        EngineKind::Postgres => {
            format!("SELECT md5(string_agg(t::text, '|' ORDER BY {})) FROM {t} AS t;", idents(engine, key))
        }
        EngineKind::Mysql => format!(
            "SELECT count(*), BIT_XOR(CRC32(CONCAT_WS('|', {}))) FROM {t};",
            columns.iter().map(|c| format!("IFNULL({}, '\\\\N')", ident(engine, c))).collect::<Vec<_>>().join(", ")
        ),
        EngineKind::Sqlite => format!(
            "-- SQLite has no built-in hash; `ferry verify` checksums every row.\nSELECT count(*), total(length(quote({}))) FROM {t};",
            columns.iter().map(|c| ident(engine, c)).collect::<Vec<_>>().join(") || quote(")
        ),
    }
}

/// Rows of `child` whose foreign key points at no row of `parent`.
pub fn orphans(engine: EngineKind, child: &str, columns: &[String], parent: &str, ref_columns: &[String]) -> String {
    let join: Vec<String> = columns
        .iter()
        .zip(ref_columns)
        .map(|(c, r)| format!("p.{} = c.{}", ident(engine, r), ident(engine, c)))
        .collect();
    let present: Vec<String> = columns.iter().map(|c| format!("c.{} IS NOT NULL", ident(engine, c))).collect();
    format!(
        "SELECT count(*) FROM {} c LEFT JOIN {} p ON {} WHERE {} AND p.{} IS NULL;",
        table(engine, child),
        table(engine, parent),
        join.join(" AND "),
        present.join(" AND "),
        ident(engine, &ref_columns[0])
    )
}

pub fn nulls(engine: EngineKind, name: &str, columns: &[String]) -> String {
    let cond: Vec<String> = columns.iter().map(|c| format!("{} IS NULL", ident(engine, c))).collect();
    format!("SELECT count(*) FROM {} WHERE {};", table(engine, name), cond.join(" OR "))
}

/// A type declaration for an in-place ALTER TABLE, in the engine's terms.
pub fn declare(engine: EngineKind, t: &DataType) -> String {
    match engine {
        EngineKind::Postgres => match t {
            DataType::Json => "jsonb".into(),
            DataType::Float64 => "double precision".into(),
            other => other.to_string(),
        },
        EngineKind::Mysql => match t {
            DataType::Bool => "tinyint(1)".into(),
            DataType::Int32 => "int".into(),
            DataType::Float32 => "float".into(),
            DataType::Text { max_chars: None } => "longtext".into(),
            DataType::Bytes => "longblob".into(),
            DataType::Time => "time(6)".into(),
            DataType::Timestamp | DataType::TimestampTz => "datetime(6)".into(),
            DataType::Decimal { precision, scale } => {
                format!("decimal({},{})", precision.unwrap_or(65), scale.unwrap_or(0))
            }
            other => other.to_string(),
        },
        EngineKind::Sqlite => match t {
            DataType::Bool => "BOOLEAN".into(),
            DataType::Text { max_chars: None } => "TEXT".into(),
            DataType::Bytes => "BLOB".into(),
            DataType::Float64 => "REAL".into(),
            other => other.to_string().to_uppercase(),
        },
    }
}

/// The keyset read the backfill runs on the source, for one batch.
pub fn keyset_read(engine: EngineKind, t: &TableFacts, batch: usize) -> String {
    let select: Vec<String> = t
        .columns
        .iter()
        .map(|c| match (&c.expression, &c.source_column) {
            (Some(e), _) => format!("({e})"),
            (None, Some(s)) => ident(engine, s),
            _ => "NULL".into(),
        })
        .collect();
    let key = idents(engine, &t.key);
    let after = match (engine, t.key.len()) {
        (EngineKind::Postgres, 1) => format!("{key} > $1"),
        (EngineKind::Postgres, n) => {
            format!("({key}) > ({})", (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "))
        }
        (_, 1) => format!("{key} > ?"),
        (_, n) => format!("({key}) > ({})", vec!["?"; n].join(", ")),
    };
    let filter = t.filter.as_deref().map(|f| format!("({f}) AND ")).unwrap_or_default();
    format!(
        "SELECT {} FROM {} WHERE {filter}{after} ORDER BY {key} LIMIT {batch};",
        select.join(", "),
        table(engine, &t.source)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_read_redacted_urls() {
        let p = url_parts("postgres://app:***@db.internal:6432/shop").unwrap();
        assert_eq!(
            (p.user.as_str(), p.host.as_str(), p.port.as_deref(), p.database.as_str()),
            ("app", "db.internal", Some("6432"), "shop")
        );
        assert_eq!(url_parts("mysql://root@h/x?ssl=1").unwrap().database, "x");
    }

    #[test]
    fn dialects_quote_their_way() {
        assert_eq!(count(EngineKind::Mysql, "a.b", None), "SELECT count(*) FROM `a`.`b`;");
        assert_eq!(
            nulls(EngineKind::Postgres, "t", &["x".into(), "y".into()]),
            r#"SELECT count(*) FROM "t" WHERE "x" IS NULL OR "y" IS NULL;"#
        );
    }
}
