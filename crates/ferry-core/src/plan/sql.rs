//! SQL and shell commands a plan shows, in each engine's dialect.

use super::facts::{ColumnFacts, EngineName, TableFacts};
use crate::types::DataType;

fn quote(engine: EngineName, name: &str) -> String {
    match engine {
        EngineName::Mysql => format!("`{}`", name.replace('`', "``")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// `schema.table` quoted part by part.
pub fn table(engine: EngineName, name: &str) -> String {
    name.split('.').map(|p| quote(engine, p)).collect::<Vec<_>>().join(".")
}

pub fn ident(engine: EngineName, name: &str) -> String {
    quote(engine, name)
}

fn idents(engine: EngineName, names: &[String]) -> String {
    names.iter().map(|n| quote(engine, n)).collect::<Vec<_>>().join(", ")
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
pub fn backup_commands(engine: EngineName, url: &str, tables: &[&str]) -> Vec<String> {
    match engine {
        EngineName::Postgres => {
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
        EngineName::Mysql => {
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
        EngineName::Sqlite => {
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

pub fn count(engine: EngineName, name: &str, filter: Option<&str>) -> String {
    match filter {
        Some(f) => format!("SELECT count(*) FROM {} WHERE ({f});", table(engine, name)),
        None => format!("SELECT count(*) FROM {};", table(engine, name)),
    }
}

/// An engine-native checksum of a whole table, comparable between two copies on the same engine.
pub fn checksum(engine: EngineName, name: &str, key: &[String], columns: &[String]) -> String {
    let t = table(engine, name);
    match engine {
        EngineName::Postgres => {
            format!("SELECT md5(string_agg(t::text, '|' ORDER BY {})) FROM {t} AS t;", idents(engine, key))
        }
        EngineName::Mysql => format!(
            "SELECT count(*), BIT_XOR(CRC32(CONCAT_WS('|', {}))) FROM {t};",
            columns.iter().map(|c| format!("IFNULL({}, '\\\\N')", ident(engine, c))).collect::<Vec<_>>().join(", ")
        ),
        EngineName::Sqlite => format!(
            "-- SQLite has no built-in hash; `ferry verify` checksums every row.\nSELECT count(*), total(length(quote({}))) FROM {t};",
            columns.iter().map(|c| ident(engine, c)).collect::<Vec<_>>().join(") || quote(")
        ),
    }
}

/// Rows of `child` whose foreign key points at no row of `parent`.
pub fn orphans(engine: EngineName, child: &str, columns: &[String], parent: &str, ref_columns: &[String]) -> String {
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

pub fn nulls(engine: EngineName, name: &str, columns: &[String]) -> String {
    let cond: Vec<String> = columns.iter().map(|c| format!("{} IS NULL", ident(engine, c))).collect();
    format!("SELECT count(*) FROM {} WHERE {};", table(engine, name), cond.join(" OR "))
}

/// A type declaration for an in-place ALTER TABLE, in the engine's terms.
pub fn declare(engine: EngineName, t: &DataType) -> String {
    match engine {
        EngineName::Postgres => match t {
            DataType::Json => "jsonb".into(),
            DataType::Float64 => "double precision".into(),
            other => other.to_string(),
        },
        EngineName::Mysql => match t {
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
        EngineName::Sqlite => match t {
            DataType::Bool => "BOOLEAN".into(),
            DataType::Text { max_chars: None } => "TEXT".into(),
            DataType::Bytes => "BLOB".into(),
            DataType::Float64 => "REAL".into(),
            other => other.to_string().to_uppercase(),
        },
    }
}

/// The value a new column takes from the old row: the expression, or the old column.
fn new_value(engine: EngineName, c: &ColumnFacts) -> String {
    match (&c.expression, &c.source_column) {
        (Some(expr), _) => format!("({expr})"),
        (None, Some(src)) => ident(engine, src),
        (None, None) => "NULL".into(),
    }
}

/// The column an in-place change writes: its own name, or `name_new` while a
/// retyped column lives beside the old one.
fn physical(c: &ColumnFacts) -> String {
    if c.renamed_from().is_none() && c.expression.is_none() {
        format!("{}_new", c.name)
    } else {
        c.name.clone()
    }
}

/// Columns that an in-place change adds: computed, renamed or retyped ones.
pub fn added_columns(t: &TableFacts) -> Vec<&ColumnFacts> {
    t.columns
        .iter()
        .filter(|c| {
            c.expression.is_some()
                || c.renamed_from().is_some()
                || c.source_type.as_ref().is_some_and(|s| s != &c.desired)
        })
        .collect()
}

/// Expand, in place: the new columns, nullable, and the triggers that keep
/// them in step. A write that sets the new column itself (a new application
/// version, or any writer after the switch) keeps its value: the trigger
/// computes the column only on an INSERT that leaves it NULL and on an
/// UPDATE that leaves it as it was.
pub fn in_place_expand(engine: EngineName, t: &TableFacts) -> Vec<String> {
    let name = table(engine, &t.source);
    let added = added_columns(t);
    let mut out: Vec<String> = added
        .iter()
        .map(|c| {
            format!("ALTER TABLE {name} ADD COLUMN {} {};", ident(engine, &physical(c)), declare(engine, &c.desired))
        })
        .collect();
    if added.is_empty() {
        return out;
    }
    let trigger = format!("ferry_sync_{}", t.source.replace('.', "_"));
    match engine {
        EngineName::Postgres => {
            let sets: Vec<String> = added
                .iter()
                .map(|c| {
                    let column = ident(engine, &physical(c));
                    format!(
                        "  IF (TG_OP = 'INSERT' AND {})\n     OR (TG_OP = 'UPDATE' AND {}) THEN\n    \
                         SELECT {} INTO NEW.{column} FROM (SELECT NEW.*) AS {};\n  END IF;",
                        left_alone(engine, "INSERT", &column),
                        left_alone(engine, "UPDATE", &column),
                        new_value(engine, c),
                        ident(engine, &t.source)
                    )
                })
                .collect();
            out.push(format!(
                "CREATE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n{}\n  RETURN NEW;\nEND $$;",
                sets.join("\n"),
                f = ident(engine, &trigger)
            ));
            out.push(format!(
                "CREATE TRIGGER {tr} BEFORE INSERT OR UPDATE ON {name} FOR EACH ROW EXECUTE FUNCTION {tr}();",
                tr = ident(engine, &trigger)
            ));
        }
        EngineName::Mysql => {
            let all: Vec<String> = t
                .columns
                .iter()
                .filter_map(|c| c.source_column.as_ref())
                .chain(t.dropped_columns.iter())
                .map(|c| format!("NEW.{0} AS {0}", ident(engine, c)))
                .collect();
            for event in ["INSERT", "UPDATE"] {
                let sets: Vec<String> = added
                    .iter()
                    .map(|c| {
                        let column = ident(engine, &physical(c));
                        let untouched = left_alone(engine, event, &column);
                        format!(
                            "NEW.{column} = IF({untouched}, (SELECT {} FROM (SELECT {}) AS r), NEW.{column})",
                            new_value(engine, c),
                            all.join(", ")
                        )
                    })
                    .collect();
                out.push(format!(
                    "CREATE TRIGGER {} BEFORE {event} ON {name} FOR EACH ROW SET {};",
                    ident(engine, &format!("{trigger}_{}", event.to_lowercase())),
                    sets.join(", ")
                ));
            }
        }
        EngineName::Sqlite => {
            // SQLite triggers cannot assign NEW: each column is set after the write, when the write left it alone.
            for event in ["INSERT", "UPDATE"] {
                let sets: Vec<String> = added
                    .iter()
                    .map(|c| {
                        let column = ident(engine, &physical(c));
                        let untouched = left_alone(engine, event, &column);
                        format!("{column} = CASE WHEN {untouched} THEN {} ELSE {column} END", new_value(engine, c))
                    })
                    .collect();
                out.push(format!(
                    "CREATE TRIGGER {} AFTER {event} ON {name} BEGIN UPDATE {name} SET {} WHERE rowid = NEW.rowid; END;",
                    ident(engine, &format!("{trigger}_{}", event.to_lowercase())),
                    sets.join(", ")
                ));
            }
        }
    }
    out
}

/// A trigger's condition for "the write left `column` alone": an INSERT
/// without it, or an UPDATE that kept its value (NULL-safe).
fn left_alone(engine: EngineName, event: &str, column: &str) -> String {
    match (event, engine) {
        ("INSERT", _) => format!("NEW.{column} IS NULL"),
        (_, EngineName::Mysql) => format!("NEW.{column} <=> OLD.{column}"),
        (_, EngineName::Sqlite) => format!("NEW.{column} IS OLD.{column}"),
        (_, EngineName::Postgres) => format!("NEW.{column} IS NOT DISTINCT FROM OLD.{column}"),
    }
}

/// Backfill, in place: one batch of a keyset-ordered UPDATE.
pub fn in_place_backfill(engine: EngineName, t: &TableFacts) -> String {
    let name = table(engine, &t.source);
    let sets: Vec<String> = added_columns(t)
        .iter()
        .map(|c| format!("{} = {}", ident(engine, &physical(c)), new_value(engine, c)))
        .collect();
    let key = t.key.first().map(|k| ident(engine, k)).unwrap_or_else(|| "KEY".into());
    let (lo, hi) = match engine {
        EngineName::Postgres => ("$1", "$2"),
        _ => ("?", "?"),
    };
    format!(
        "UPDATE {name} SET {} WHERE {key} > {lo} AND {key} <= {hi};   -- one batch, key range by key range",
        sets.join(", ")
    )
}

/// Verify, in place: rows whose new columns disagree with the old ones (must be 0).
pub fn in_place_mismatches(engine: EngineName, t: &TableFacts) -> String {
    let conds: Vec<String> = added_columns(t)
        .iter()
        .map(|c| {
            let (a, b) = (ident(engine, &physical(c)), new_value(engine, c));
            match engine {
                EngineName::Postgres => format!("{a} IS DISTINCT FROM {b}"),
                EngineName::Mysql => format!("NOT ({a} <=> {b})"),
                EngineName::Sqlite => format!("{a} IS NOT {b}"),
            }
        })
        .collect();
    format!(
        "SELECT count(*) FROM {} WHERE {};",
        table(engine, &t.source),
        if conds.is_empty() { "false".into() } else { conds.join(" OR ") }
    )
}

/// Contract, in place: NOT NULL where asked, drop the triggers and the old columns.
pub fn in_place_contract(engine: EngineName, t: &TableFacts) -> Vec<String> {
    let name = table(engine, &t.source);
    let trigger = format!("ferry_sync_{}", t.source.replace('.', "_"));
    // PostgreSQL validates its NOT NULL checks first, outside the transaction:
    // a scan under the lock the transaction's DDL then holds would stop writers.
    let mut validate = Vec::new();
    let mut out = Vec::new();
    for c in added_columns(t).iter().filter(|c| !c.nullable) {
        let col = ident(engine, &physical(c));
        match engine {
            EngineName::Postgres => {
                let check = ident(engine, &format!("{}_{}_not_null", t.source, c.name));
                // Dropped first, so that a contract stopped after this step can run again.
                validate.push(format!("ALTER TABLE {name} DROP CONSTRAINT IF EXISTS {check};"));
                validate
                    .push(format!("ALTER TABLE {name} ADD CONSTRAINT {check} CHECK ({col} IS NOT NULL) NOT VALID;"));
                validate.push(format!("ALTER TABLE {name} VALIDATE CONSTRAINT {check};"));
                out.push(format!("ALTER TABLE {name} ALTER COLUMN {col} SET NOT NULL;"));
                out.push(format!("ALTER TABLE {name} DROP CONSTRAINT {check};"));
            }
            EngineName::Mysql => out.push(format!(
                "ALTER TABLE {name} MODIFY {col} {} NOT NULL, ALGORITHM=INPLACE, LOCK=NONE;",
                declare(engine, &c.desired)
            )),
            EngineName::Sqlite => out.push(format!("-- SQLite: NOT NULL on {col} needs a table rebuild (see F008)")),
        }
    }
    match engine {
        EngineName::Postgres => {
            out.push(format!("DROP TRIGGER IF EXISTS {0} ON {name};", ident(engine, &trigger)));
            out.push(format!("DROP FUNCTION IF EXISTS {}();", ident(engine, &trigger)));
        }
        _ => {
            for event in ["insert", "update"] {
                out.push(format!("DROP TRIGGER IF EXISTS {};", ident(engine, &format!("{trigger}_{event}"))));
            }
        }
    }
    for c in t.columns.iter().filter_map(|c| c.renamed_from()).chain(t.dropped_columns.iter().map(String::as_str)) {
        out.push(format!("ALTER TABLE {name} DROP COLUMN {};", ident(engine, c)));
    }
    // A retyped column: drop the old one and give the new one its name.
    for c in added_columns(t).into_iter().filter(|c| c.renamed_from().is_none() && c.expression.is_none()) {
        out.push(format!("ALTER TABLE {name} DROP COLUMN {};", ident(engine, &c.name)));
        out.push(format!(
            "ALTER TABLE {name} RENAME COLUMN {} TO {};",
            ident(engine, &physical(c)),
            ident(engine, &c.name)
        ));
    }
    // Where DDL is transactional, the contract is one step: a drop that fails
    // (an object still uses the column) leaves the sync triggers and every column in place.
    match engine {
        EngineName::Postgres | EngineName::Sqlite => {
            validate.push("BEGIN;".into());
            validate.extend(out);
            validate.push("COMMIT;".into());
            validate
        }
        EngineName::Mysql => {
            validate.push(
                "-- MariaDB/MySQL commit each ALTER by itself: run these in order, checking each; each can run again"
                    .into(),
            );
            validate.extend(out);
            validate
        }
    }
}

/// The keyset read the backfill runs on the source, for one batch.
pub fn keyset_read(engine: EngineName, t: &TableFacts, batch: usize) -> String {
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
        (EngineName::Postgres, 1) => format!("{key} > $1"),
        (EngineName::Postgres, n) => {
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
        assert_eq!(count(EngineName::Mysql, "a.b", None), "SELECT count(*) FROM `a`.`b`;");
        assert_eq!(
            nulls(EngineName::Postgres, "t", &["x".into(), "y".into()]),
            r#"SELECT count(*) FROM "t" WHERE "x" IS NULL OR "y" IS NULL;"#
        );
    }
}
