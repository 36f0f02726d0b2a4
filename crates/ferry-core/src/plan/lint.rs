//! Change analysis: every change a migration makes, classified by rules with
//! stable codes. Each rule is a small function over the assessment; each has
//! a page in `docs/lints/`.

use super::facts::{Assessment, ColumnFacts, SchemaItemKind, SchemaProblemClass, Shape, TableFacts};
use crate::audit::format_duration;
use crate::types::{widens_to, DataType};
use crate::EngineKind;
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
               `ferry contract --confirm`. Keep the old data readable for at least one release cycle, and move its \
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
    Rule {
        code: "F010",
        name: "expression-not-translated",
        summary: "A default, ON UPDATE or CHECK uses SQL the target does not have",
        help: "Ferry translates expressions whose meaning is the same on both engines (columns, literals, IN lists, \
               LIKE, comparisons, lower/upper/coalesce/length and a few more). Anything else is not created on the \
               target, so that nothing means something else there. Write the target's SQL for it under \
               [table.translate], or \"\" to go without it knowingly.",
        check: expression_not_translated,
    },
    Rule {
        code: "F011",
        name: "index-not-translated",
        summary: "A partial, expression or non-B-tree index the target cannot create",
        help: "MySQL/MariaDB has no partial indexes and MariaDB no indexes on expressions; only PostgreSQL has gin, \
               gist, brin and hash indexes. A unique one also stops being enforced. Leave it out knowingly with \
               `\"<index>\" = \"\"` under [table.translate] and add an index of your own after the load, or keep \
               the data on an engine that has it.",
        check: index_not_translated,
    },
    Rule {
        code: "F012",
        name: "collation-changes-comparison",
        summary: "Text the source compares without regard to case is case-sensitive on the target",
        help: "MariaDB's default collations (`*_ci`), SQLite's NOCASE and PostgreSQL's citext compare 'A' and 'a' as \
               equal; the target's default does not. Ferry enforces unique keys on lower() where the target allows \
               it, but `=`, ORDER BY, GROUP BY and joins in the application's queries change meaning. Accept it with \
               `\"<column>.collation\" = \"\"`, or name a case-insensitive collation of the target.",
        check: collation_changes_comparison,
    },
    Rule {
        code: "F013",
        name: "zero-dates",
        summary: "MySQL/MariaDB zero dates that no other engine (and no strict MySQL) can hold",
        help: "`0000-00-00`, and dates with a zero month or day, are not dates: the copy stops at the first one with \
               its key. Map them to NULL with a computed column (the finding shows the expression), or fix them in \
               the source.",
        check: zero_dates,
    },
    Rule {
        code: "F014",
        name: "naive-timestamp-to-timestamptz",
        summary: "Times without a zone become instants with one",
        help: "A `datetime` or `timestamp without time zone` says nothing about its zone; a `timestamptz` is an \
               instant. Ferry reads the naive values as UTC. Say so with `\"<column>.zone\" = \"UTC\"` under \
               [table.translate], or convert them from their real zone with a computed column.",
        check: naive_timestamp_to_timestamptz,
    },
    Rule {
        code: "F015",
        name: "generated-column-not-translated",
        summary: "A generated column the target cannot compute the same way",
        help: "Ferry recreates a generated column when its expression means the same on the target; otherwise the \
               values are copied into a plain column, which the application must then write. Give the target's \
               expression with `\"<column>.generated\" = \"...\"`, or accept the plain column with `\"\"`.",
        check: generated_column_not_translated,
    },
    Rule {
        code: "F016",
        name: "schema-item-not-kept",
        summary: "An identity, a foreign-key action or a comment the target cannot keep",
        help: "SQLite numbers only a single INTEGER PRIMARY KEY; MySQL/MariaDB numbers only integers and has no SET \
               DEFAULT action; SQLite keeps no comments. The finding says what the application loses and the spec \
               line that settles it.",
        check: schema_item_not_kept,
    },
    Rule {
        code: "F017",
        name: "foreign-key-parent-missing",
        summary: "A foreign key to a table that is neither moved nor on the target",
        help: "Ferry recreates a foreign key to a table outside the migration when the target already has that \
               table. Here it does not, so the reference is not checked on the target. Add the parent to the \
               migration, or create it on the target and run the statement the finding shows.",
        check: foreign_key_parent_missing,
    },
    Rule {
        code: "F018",
        name: "rollback-not-lossless",
        summary: "The spec asks for a lossless rollback, but the mapping cannot be written back",
        help: "After the switch, reverse sync writes the target's rows back into the source through the inverted \
               mapping, so that a rollback loses nothing. Renames and type changes invert; a computed column, or a \
               source column that is not copied, does not. `ferry switch` refuses such a mapping under \
               `rollback = \"lossless\"`. Copy every column plainly, or accept the loss with \
               `rollback = \"loss-accepted-after-switch\"`.",
        check: rollback_not_lossless,
    },
    Rule {
        code: "F019",
        name: "nullable-key",
        summary: "A key column the rows are copied by can be NULL",
        help: "Ferry copies, replays and verifies rows by their key: a NULL key cannot be read in key order, \
               found again by a change, or matched by verification. Fill the NULLs and make the column NOT NULL \
               on the source, or name other columns with `key = [...]`, or leave those rows out with \
               `filter = \"col IS NOT NULL\"`.",
        check: nullable_key,
    },
    Rule {
        code: "F020",
        name: "key-collision",
        summary: "Several source rows have one key as the target compares keys",
        help: "On the target, rows that share a key overwrite each other (or stop the copy). Either the key is \
               not unique on the source (no constraint enforces it), or the target compares text keys more \
               loosely: MariaDB before 10.10 ignores trailing spaces, and an existing target table whose key \
               has a case-insensitive collation (`utf8mb4_general_ci`) ignores case. Choose a key that is \
               unique with `key = [...]`, give the existing target key a binary collation, or clean the \
               listed values on the source first; `ferry run` stops before copying such a table.",
        check: key_collision,
    },
    Rule {
        code: "F021",
        name: "target-has-rows",
        summary: "An existing target table already holds rows",
        help: "Ferry copies into an existing table with upserts: a row whose key the source also has is \
               overwritten, the others stay, and verification then finds them as differences. Empty the table \
               first, copy into another with `to = \"...\"`, or accept keeping them with \
               `existing_rows = \"merge\"` in the table's [[table]] entry.",
        check: target_has_rows,
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
            let users: Vec<String> = t
                .dropped_column_users
                .iter()
                .filter(|d| &d.column == col)
                .map(|d| format!("{} {}", d.kind.name(), d.name))
                .collect();
            let (severity, message) = match a.shape {
                Shape::TableMove => {
                    (Severity::Warning, format!("`{}.{col}` is not copied: {} will not have it", t.source, t.target))
                }
                Shape::InPlace if users.is_empty() => (
                    Severity::Warning,
                    format!("`{}.{col}` is dropped, in contract only (the point of no return)", t.source),
                ),
                // Dropping it would fail (or, with CASCADE, take them along): contract must refuse until they change.
                Shape::InPlace => (
                    Severity::Error,
                    format!(
                        "`{}.{col}` is dropped in contract, but {} still use{} it: change {} first",
                        t.source,
                        users.join(", "),
                        if users.len() == 1 { "s" } else { "" },
                        if users.len() == 1 { "it" } else { "them" }
                    ),
                ),
            };
            out.push(rule.finding(severity, t, Some(col), message));
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
    if a.shape != Shape::InPlace || a.target.engine != EngineKind::Sqlite {
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
        for index in &t.added_indexes {
            let estimate = estimate(t.rows, t.throughput.as_ref().map(|p| p.write_rows_per_second));
            out.push(rule.finding(
                Severity::Warning,
                t,
                None,
                format!(
                    "`add_index = \"{}\"` builds on the live table: writers wait about {estimate} ({} rows)",
                    index.name, t.rows
                ),
            ));
        }
    }
    out
}

fn foreign_key_validation_locks(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    if a.shape != Shape::InPlace || a.target.engine != EngineKind::Mysql {
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

fn nullable_key(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    let nullable = |t: &TableFacts| -> Vec<String> {
        t.key
            .iter()
            .filter(|k| t.columns.iter().any(|c| c.source_column.as_deref() == Some(k.as_str()) && c.source_nullable))
            .cloned()
            .collect()
    };
    a.tables
        .iter()
        .filter_map(|t| {
            let columns = nullable(t);
            let rows = t.null_key_rows?;
            let (severity, what) = match rows {
                0 => (Severity::Warning, "no row has a NULL there yet, but a new one would stop the sync".to_string()),
                n => (Severity::Error, format!("{n} row(s) have a NULL there and cannot be copied by key")),
            };
            Some(rule.finding(
                severity,
                t,
                columns.first().map(String::as_str),
                format!(
                    "`{}` is copied by key ({}), and {} can be NULL: {what}",
                    t.source,
                    t.key.join(", "),
                    columns.join(", ")
                ),
            ))
        })
        .collect()
}

fn key_collision(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    a.tables
        .iter()
        .filter_map(|t| {
            let c = t.key_collisions.as_ref().filter(|c| c.groups > 0)?;
            Some(rule.finding(
                Severity::Error,
                t,
                None,
                format!(
                    "{} key value(s) of `{}` ({}) are shared by several rows, compared {}: first {}",
                    c.groups,
                    t.source,
                    t.key.join(", "),
                    c.comparison,
                    c.first.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                ),
            ))
        })
        .collect()
}

fn target_has_rows(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    a.tables
        .iter()
        .filter_map(|t| {
            let rows = t.target_rows.filter(|n| *n > 0)?;
            let (severity, answer) = if t.merge_existing_rows {
                (Severity::Info, "kept, as `existing_rows = \"merge\"` says; those with a source key are overwritten")
            } else {
                (Severity::Error, "the copy would overwrite those whose key the source has and keep the others")
            };
            Some(rule.finding(
                severity,
                t,
                None,
                format!("the existing target table `{}` already holds {rows} row(s): {answer}", t.target),
            ))
        })
        .collect()
}

/// From this many rows a SQLite rebuild is worth a finding.
pub const SQLITE_LARGE_ROWS: u64 = 100_000;

fn sqlite_table_rebuild(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    if a.shape != Shape::InPlace || a.target.engine != EngineKind::Sqlite {
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
        if let Some(native) = enumerated.filter(|_| a.target.engine != EngineKind::Mysql) {
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
        let tinyint_bool = a.source.engine == EngineKind::Mysql
            && c.desired == DataType::Bool
            && c.source_native.as_deref().is_some_and(|n| n.to_ascii_lowercase().starts_with("tinyint(1)"));
        if tinyint_bool && a.target.engine != EngineKind::Mysql {
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

fn conversion_note(desired: &DataType, planned: &DataType, engine: EngineKind) -> (Severity, String) {
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

/// Findings of one class of schema problem, one per item.
fn schema_problems(rule: &Rule, a: &Assessment, class: SchemaProblemClass) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in &a.tables {
        for item in &t.schema {
            let Some(problem) = item.problem.as_ref().filter(|p| p.class == class) else { continue };
            let column = match item.kind {
                SchemaItemKind::Check | SchemaItemKind::Index | SchemaItemKind::ForeignKey => None,
                _ if item.name == "(table)" => None,
                _ => Some(item.name.as_str()),
            };
            let severity = if problem.info { Severity::Info } else { Severity::Warning };
            let message = format!(
                "{} `{}` ({}): {}. Settle it with {}",
                item.kind.label(),
                item.name,
                item.source,
                problem.reason,
                problem.resolve
            );
            out.push(rule.finding(severity, t, column, message));
        }
    }
    out
}

fn expression_not_translated(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    schema_problems(rule, a, SchemaProblemClass::Expression)
}

fn index_not_translated(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    schema_problems(rule, a, SchemaProblemClass::Index)
}

fn generated_column_not_translated(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    schema_problems(rule, a, SchemaProblemClass::Generated)
}

fn schema_item_not_kept(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    schema_problems(rule, a, SchemaProblemClass::NotKept)
}

fn rollback_not_lossless(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    if !a.rollback_lossless || a.shape != Shape::TableMove {
        return Vec::new();
    }
    a.tables
        .iter()
        .filter_map(|t| {
            let why = t.not_invertible.as_ref()?;
            Some(rule.finding(
                Severity::Error,
                t,
                None,
                format!(
                    "`rollback = \"lossless\"`, but writes made on {} after the switch cannot reach {}: {why}",
                    t.target, t.source
                ),
            ))
        })
        .collect()
}

fn foreign_key_parent_missing(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    schema_problems(rule, a, SchemaProblemClass::ParentMissing)
}

/// One finding per table: every case-insensitive column is the same story.
fn collation_changes_comparison(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in &a.tables {
        let items: Vec<_> = t
            .schema
            .iter()
            .filter(|i| i.problem.as_ref().is_some_and(|p| p.class == SchemaProblemClass::Collation))
            .collect();
        let Some(first) = items.first() else { continue };
        let names: Vec<String> = items.iter().map(|i| format!("`{}` ({})", i.name, i.source)).collect();
        let unique_on_lower: Vec<&str> = t
            .schema
            .iter()
            .filter(|i| i.kind == SchemaItemKind::Index && i.target.as_deref().is_some_and(|t| t.contains("lower(")))
            .filter(|i| i.note.as_deref().is_some_and(|n| n.contains("without case")))
            .map(|i| i.name.as_str())
            .collect();
        let resolve = first.problem.as_ref().map(|p| p.resolve.clone()).unwrap_or_default();
        let mut message = format!(
            "{} compare without regard to case on the source; on {} they are case-sensitive: `=`, ORDER BY, GROUP BY \
             and joins on them behave differently",
            names.join(", "),
            a.target.engine.title()
        );
        if !unique_on_lower.is_empty() {
            message.push_str(&format!("; unique keys {} are enforced on lower()", unique_on_lower.join(", ")));
        }
        message.push_str(&format!(". Settle it per column, e.g. {resolve}"));
        out.push(rule.finding(Severity::Warning, t, None, message));
    }
    out
}

fn zero_dates(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    columns(a)
        .filter_map(|(t, c)| {
            let zero = c.zero_dates.filter(|z| z.rows > 0)?;
            let src = c.source_column.as_deref().unwrap_or(&c.name);
            let datetime = !c.source_native.as_deref().is_some_and(|n| n.eq_ignore_ascii_case("date"));
            let zero_literal = if datetime { "0000-00-00 00:00:00" } else { "0000-00-00" };
            let expr = if zero.whole == zero.rows {
                format!("NULLIF({src}, '{zero_literal}')")
            } else {
                format!("CASE WHEN MONTH({src}) = 0 OR DAYOFMONTH({src}) = 0 THEN NULL ELSE {src} END")
            };
            let ty = if datetime { "timestamp" } else { "date" };
            Some(rule.finding(
                Severity::Error,
                t,
                Some(&c.name),
                format!(
                    "`{src}` holds {} zero date(s) ({} of them `{zero_literal}`): the copy stops at the first. Map \
                     them to NULL under [table.columns]: {} = {{ expr = \"{expr}\", type = \"{ty}\" }}",
                    zero.rows, zero.whole, c.name
                ),
            ))
        })
        .collect()
}

fn naive_timestamp_to_timestamptz(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    columns(a)
        .filter(|(_, c)| {
            c.source_type == Some(DataType::Timestamp) && c.desired == DataType::TimestampTz && c.assumed_zone.is_none()
        })
        .map(|(t, c)| {
            let src = c.source_column.as_deref().unwrap_or(&c.name);
            rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!(
                    "`{src}` ({}) holds times without a zone and becomes timestamptz: Ferry reads them as UTC. Say \
                     so with [table.translate] \"{src}.zone\" = \"UTC\", or convert them from their zone with a \
                     computed column",
                    c.source_native.as_deref().unwrap_or("timestamp")
                ),
            )
        })
        .collect()
}

/// A duration estimate for `rows` at `rate` rows/s, for messages.
pub fn estimate(rows: u64, rate: Option<f64>) -> String {
    let rate = rate.filter(|r| *r > 0.0).unwrap_or(10_000.0);
    format_duration(Duration::from_secs_f64(rows as f64 / rate))
}

#[cfg(test)]
#[path = "lint_cases.rs"]
mod cases;

#[cfg(test)]
mod tests {
    use super::RULES;

    fn docs(path: &str) -> String {
        std::fs::read_to_string(format!("{}/../../docs/lints/{path}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("docs/lints/{path}: {e}"))
    }

    /// Every rule has its page, titled with its code and name, and a line in
    /// the index; the index names no rule that does not exist.
    #[test]
    fn every_rule_is_documented() {
        let index = docs("README.md");
        for rule in RULES {
            let page = docs(&format!("{}.md", rule.code));
            assert!(page.starts_with(&format!("# {} {}\n", rule.code, rule.name)), "{} page title", rule.code);
            assert!(
                index.contains(&format!("| [{0}]({0}.md) | {1} |", rule.code, rule.name)),
                "{} missing from docs/lints/README.md",
                rule.code
            );
        }
        let listed = index.lines().filter(|l| l.starts_with("| [F")).count();
        assert_eq!(listed, RULES.len(), "docs/lints/README.md lists rules that do not exist");
    }
}
