//! Change analysis: every change a migration makes, classified by rules with
//! stable codes. Each rule is a small function over the assessment; each has
//! a page in `docs/lints/`.

use super::facts::{Assessment, ColumnFacts, EngineName, Shape, TableFacts};
use crate::audit::format_duration;
use crate::types::{widens_to, DataType};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One finding of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub rule: String,
    pub severity: Severity,
    pub table: String,
    pub column: Option<String>,
    pub message: String,
    pub help: String,
    pub docs: String,
}

/// A lint rule: a stable code, a name, what it checks, and how to fix it.
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub summary: &'static str,
    pub help: &'static str,
    check: fn(&Rule, &Assessment) -> Vec<Finding>,
}

impl Rule {
    fn finding(&self, severity: Severity, table: &TableFacts, column: Option<&str>, message: String) -> Finding {
        Finding {
            code: self.code.into(),
            rule: self.name.into(),
            severity,
            table: table.target.clone(),
            column: column.map(str::to_string),
            message,
            help: self.help.into(),
            docs: format!("docs/lints/{}.md", self.code),
        }
    }
}

pub const RULES: &[Rule] = &[
    Rule {
        code: "F001",
        name: "column-renamed",
        summary: "A column is renamed",
        help: "Every reader of the old name breaks at once: application code, caches, API contracts, event payloads, \
               downstream ETL and reports. Find them first. Keep both names while they move (expand: add the new name; \
               keep both in step; move readers; contract: drop the old name), or keep the old name.",
        check: column_renamed,
    },
    Rule {
        code: "F002",
        name: "type-narrowed",
        summary: "A column's type narrows, or changes to one its values may not convert to",
        help: "Values that do not fit the new type stop the run with their key. Measure first (e.g. the longest value, \
               the largest number), widen the target type with `{ type = \"...\" }`, or clean the source. \
               `on_conversion_error = \"quarantine\"` copies the rest and lists the rows that failed.",
        check: type_narrowed,
    },
    Rule {
        code: "F003",
        name: "not-null-on-existing-rows",
        summary: "NOT NULL without a default on a column whose existing rows may hold NULL",
        help: "Existing rows must have a value before NOT NULL can hold. Add the column nullable, backfill it, then \
               enforce NOT NULL in contract (PostgreSQL: CHECK (col IS NOT NULL) NOT VALID, VALIDATE, then SET NOT NULL), \
               or give it a default, or fill the NULLs in the source.",
        check: not_null_on_existing_rows,
    },
    Rule {
        code: "F004",
        name: "dropped",
        summary: "A column or table goes away",
        help: "Dropping is a contract-phase step only, after verification and soak: Ferry drops nothing before \
               `ferry complete --confirm`. Keep the old data readable for at least one release cycle, and move its \
               readers (views, foreign keys, triggers, jobs, reports) first.",
        check: dropped,
    },
    Rule {
        code: "F005",
        name: "index-build-locks-writes",
        summary: "An index is built on a live table by an engine that blocks writes while it builds",
        help: "While the index builds, writes wait. On PostgreSQL Ferry uses CREATE INDEX CONCURRENTLY and on \
               MySQL/MariaDB ALGORITHM=INPLACE, LOCK=NONE; SQLite has no online build. Schedule the build in a quiet \
               period or a window, or move the table instead of changing it in place.",
        check: index_build_locks_writes,
    },
    Rule {
        code: "F006",
        name: "foreign-key-validation-locks",
        summary: "A foreign key is added to a live table and validated under a lock",
        help: "PostgreSQL can add a foreign key NOT VALID and VALIDATE it later without blocking writes (Ferry does). \
               MySQL/MariaDB validate while they hold a lock on the table. Add it in a quiet period or a window, or \
               rely on the application until contract.",
        check: foreign_key_validation_locks,
    },
    Rule {
        code: "F007",
        name: "table-without-key",
        summary: "The table has no primary key or unique key",
        help: "Without a key, rows cannot be copied in resumable batches, changes cannot be captured and replayed, \
               and verification cannot name a row. Add a primary key first (it is itself a migration), or name \
               columns whose values are unique with `key = [...]`.",
        check: table_without_key,
    },
    Rule {
        code: "F008",
        name: "sqlite-table-rebuild",
        summary: "A large SQLite table must be rebuilt for the change",
        help: "SQLite changes a column's type, adds NOT NULL or a foreign key only by rebuilding the table: a full copy \
               under an exclusive lock, during which every writer waits. Do it in a window sized from the estimate, or \
               move the data to a new table with `to = \"...\"` and cut over.",
        check: sqlite_table_rebuild,
    },
    Rule {
        code: "F009",
        name: "cross-engine-conversion",
        summary: "The target engine cannot hold a type exactly as the source does",
        help: "Check that the application accepts the target's type, or choose one with `{ type = \"...\" }`. \
               Values the target type cannot hold stop the run with their key; nothing is truncated silently.",
        check: cross_engine_conversion,
    },
];

/// Every finding of every rule, most severe first.
pub fn lint(a: &Assessment) -> Vec<Finding> {
    let mut out: Vec<Finding> = RULES.iter().flat_map(|r| (r.check)(r, a)).collect();
    out.sort_by(|x, y| y.severity.cmp(&x.severity).then(x.code.cmp(&y.code)).then(x.table.cmp(&y.table)));
    out
}

pub fn rule(code: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code == code)
}

fn columns(a: &Assessment) -> impl Iterator<Item = (&TableFacts, &ColumnFacts)> {
    a.tables.iter().flat_map(|t| t.columns.iter().map(move |c| (t, c)))
}

fn column_renamed(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    columns(a)
        .filter_map(|(t, c)| {
            let old = c.renamed_from()?;
            Some(rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!("`{}.{old}` becomes `{}.{}`: who reads `{old}`?", t.source, t.target, c.name),
            ))
        })
        .collect()
}

#[derive(PartialEq)]
enum Family {
    Number,
    Text,
    Bytes,
    Temporal,
    Bool,
    Json,
    Uuid,
}

fn family(t: &DataType) -> Family {
    match t {
        DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal { .. } => Family::Number,
        DataType::Text { .. } => Family::Text,
        DataType::Bytes => Family::Bytes,
        DataType::Date | DataType::Time | DataType::Timestamp | DataType::TimestampTz => Family::Temporal,
        DataType::Bool => Family::Bool,
        DataType::Json => Family::Json,
        DataType::Uuid => Family::Uuid,
    }
}

fn type_narrowed(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    columns(a)
        .filter_map(|(t, c)| {
            let from = c.source_type.as_ref()?;
            let to = &c.desired;
            let harmless = from == to || widens_to(from, to) || matches!(to, DataType::Text { max_chars: None });
            if harmless {
                return None;
            }
            let (severity, what) = if family(from) == family(to) {
                (Severity::Warning, "narrows")
            } else {
                (Severity::Error, "changes kind")
            };
            Some(rule.finding(
                severity,
                t,
                Some(&c.name),
                format!(
                    "`{}` {what}: {} ({from}) becomes {to}; values that do not fit stop the run",
                    c.name,
                    c.source_native.as_deref().unwrap_or("?")
                ),
            ))
        })
        .collect()
}

fn not_null_on_existing_rows(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    columns(a)
        .filter(|(_, c)| !c.nullable && (c.source_nullable || c.expression.is_some()))
        .filter_map(|(t, c)| match a.shape {
            Shape::TableMove => match c.null_rows {
                Some(0) => None,
                Some(n) => Some(rule.finding(
                    Severity::Error,
                    t,
                    Some(&c.name),
                    format!("`{}` is NOT NULL on the target but {n} source row(s) are NULL: the copy stops at the first", c.name),
                )),
                None => Some(rule.finding(
                    Severity::Warning,
                    t,
                    Some(&c.name),
                    format!("`{}` is NOT NULL on the target and its source allows NULL", c.name),
                )),
            },
            Shape::InPlace if t.rows > 0 && (c.renamed_from().is_some() || c.expression.is_some()) => Some(rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!(
                    "`{}` is a new NOT NULL column on {} existing rows: it is added nullable, backfilled, and made NOT NULL in contract",
                    c.name, t.rows
                ),
            )),
            Shape::InPlace => None,
        })
        .collect()
}

fn dropped(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in &a.tables {
        for col in &t.dropped_columns {
            let message = match a.shape {
                Shape::TableMove => format!("`{}.{col}` is not copied: {} will not have it", t.source, t.target),
                Shape::InPlace => format!("`{}.{col}` is dropped, in contract only (the point of no return)", t.source),
            };
            out.push(rule.finding(Severity::Warning, t, Some(col), message));
        }
        if a.shape == Shape::TableMove {
            let d = &t.dependents;
            let readers = d.views.len() + d.triggers.len() + d.foreign_keys_in.len();
            let (severity, tail) = if readers == 0 {
                (Severity::Info, "nothing in the database depends on it".to_string())
            } else {
                (
                    Severity::Warning,
                    format!(
                        "{} view(s), {} trigger(s) and {} foreign key(s) depend on it and must move first",
                        d.views.len(),
                        d.triggers.len(),
                        d.foreign_keys_in.len()
                    ),
                )
            };
            out.push(rule.finding(
                severity,
                t,
                None,
                format!("the old table `{}` is dropped in contract; {tail}", t.source),
            ));
        }
    }
    out
}

/// In place, a renamed or retyped column is a new physical column.
fn rebuilt_columns(t: &TableFacts) -> impl Iterator<Item = (&ColumnFacts, &str)> {
    t.columns.iter().filter_map(|c| {
        let src = c.source_column.as_deref()?;
        let retyped = c.source_type.as_ref().is_some_and(|s| s != &c.desired);
        (c.renamed_from().is_some() || retyped).then_some((c, src))
    })
}

fn index_build_locks_writes(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    if a.shape != Shape::InPlace || a.target.engine != EngineName::Sqlite {
        return Vec::new();
    }
    let mut out = Vec::new();
    for t in &a.tables {
        for (c, src) in rebuilt_columns(t).filter(|(_, src)| t.is_indexed(src)) {
            let estimate = estimate(t.rows, t.throughput.as_ref().map(|p| p.write_rows_per_second));
            out.push(rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!("the index on `{src}` must be rebuilt for `{}` on the live table: writers wait about {estimate} ({} rows)", c.name, t.rows),
            ));
        }
    }
    out
}

fn foreign_key_validation_locks(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    if a.shape != Shape::InPlace || a.target.engine != EngineName::Mysql {
        return Vec::new();
    }
    let mut out = Vec::new();
    for t in &a.tables {
        for (c, src) in rebuilt_columns(t).filter(|(_, src)| t.in_foreign_key(src)) {
            out.push(rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!(
                    "`{src}` is in a foreign key: the key is added again for `{}` on the live table and validated under a lock ({} rows)",
                    c.name, t.rows
                ),
            ));
        }
    }
    out
}

fn table_without_key(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    a.tables
        .iter()
        .filter_map(|t| {
            if t.key.is_empty() {
                Some(rule.finding(
                    Severity::Error,
                    t,
                    None,
                    format!("`{}` has no primary key or unique key: it cannot be copied in batches, captured or verified by row", t.source),
                ))
            } else if !t.key_enforced {
                Some(rule.finding(
                    Severity::Warning,
                    t,
                    None,
                    format!(
                        "`{}` is copied by key ({}) but no constraint enforces it: duplicate values would merge rows",
                        t.source,
                        t.key.join(", ")
                    ),
                ))
            } else {
                None
            }
        })
        .collect()
}

/// From this many rows a SQLite rebuild is worth a finding.
pub const SQLITE_LARGE_ROWS: u64 = 100_000;

fn sqlite_table_rebuild(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    if a.shape != Shape::InPlace || a.target.engine != EngineName::Sqlite {
        return Vec::new();
    }
    a.tables
        .iter()
        .filter(|t| t.rows >= SQLITE_LARGE_ROWS)
        .filter_map(|t| {
            let reasons: Vec<String> = t
                .columns
                .iter()
                .filter_map(|c| {
                    let src = c.source_column.as_deref()?;
                    if c.source_type.as_ref().is_some_and(|s| s != &c.desired) {
                        Some(format!("`{src}` changes type"))
                    } else if !c.nullable && c.source_nullable {
                        Some(format!("`{}` becomes NOT NULL", c.name))
                    } else if c.renamed_from().is_some() && t.in_foreign_key(src) {
                        Some(format!("`{src}` is in a foreign key"))
                    } else {
                        None
                    }
                })
                .collect();
            (!reasons.is_empty()).then(|| {
                let estimate = estimate(t.rows, t.throughput.as_ref().map(|p| p.write_rows_per_second));
                rule.finding(
                    Severity::Warning,
                    t,
                    None,
                    format!(
                        "rebuilding `{}` ({} rows) holds an exclusive lock for about {estimate}: {}",
                        t.source,
                        t.rows,
                        reasons.join(", ")
                    ),
                )
            })
        })
        .collect()
}

fn cross_engine_conversion(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    let mut out = Vec::new();
    for (t, c) in columns(a) {
        if c.planned != c.desired {
            let (severity, why) = conversion_note(&c.desired, &c.planned, a.target.engine);
            out.push(rule.finding(
                severity,
                t,
                Some(&c.name),
                format!("`{}`: {} becomes {} on {}: {why}", c.name, c.desired, c.planned, a.target.engine.title()),
            ));
        }
        let enumerated = c
            .source_native
            .as_deref()
            .map(str::to_ascii_lowercase)
            .filter(|n| n.starts_with("enum(") || n.starts_with("set("));
        if let Some(native) = enumerated.filter(|_| a.target.engine != EngineName::Mysql) {
            out.push(rule.finding(
                Severity::Info,
                t,
                Some(&c.name),
                format!(
                    "`{}`: {native} becomes {}; the list of allowed values is not enforced on {} (add a CHECK constraint if it matters)",
                    c.name,
                    c.planned,
                    a.target.engine.title()
                ),
            ));
        }
        let tinyint_bool = a.source.engine == EngineName::Mysql
            && c.desired == DataType::Bool
            && c.source_native.as_deref().is_some_and(|n| n.to_ascii_lowercase().starts_with("tinyint(1)"));
        if tinyint_bool && a.target.engine != EngineName::Mysql {
            out.push(rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!(
                    "`{}`: MySQL tinyint(1) becomes boolean; a row holding anything but 0 or 1 stops the run (keep it with {{ type = \"smallint\" }})",
                    c.name
                ),
            ));
        }
    }
    out
}

fn conversion_note(desired: &DataType, planned: &DataType, engine: EngineName) -> (Severity, String) {
    match (desired, planned) {
        (DataType::TimestampTz, DataType::Timestamp) => {
            (Severity::Warning, "the time zone is not kept; instants are stored in UTC".to_string())
        }
        (DataType::Text { max_chars: None }, DataType::Text { max_chars: Some(n) }) => (
            Severity::Warning,
            format!(
                "{} needs a bounded length to index it; values longer than {n} characters stop the run",
                engine.title()
            ),
        ),
        (DataType::Uuid, DataType::Text { .. }) => (Severity::Info, "stored as text; no value is lost".to_string()),
        (DataType::Decimal { .. }, DataType::Decimal { precision, scale }) => (
            Severity::Warning,
            format!(
                "{} allows at most {} digits, {} after the point; values needing more stop the run or are rounded",
                engine.title(),
                precision.unwrap_or(0),
                scale.unwrap_or(0)
            ),
        ),
        _ if widens_to(desired, planned) => (Severity::Info, "wider; no value is lost".to_string()),
        _ => (Severity::Warning, "values that do not fit stop the run".to_string()),
    }
}

/// A duration estimate for `rows` at `rate` rows/s, for messages.
pub fn estimate(rows: u64, rate: Option<f64>) -> String {
    let rate = rate.filter(|r| *r > 0.0).unwrap_or(10_000.0);
    format_duration(Duration::from_secs_f64(rows as f64 / rate))
}
