//! An in-place change (expand/contract on a live table), as the statements
//! of each of its steps in the table's own dialect. `ferry plan` shows these
//! statements and `ferry run`, `verify`, `contract` and `rollback` execute
//! the same ones: what the plan says is what runs.
//!
//! The two-version model (pgroll's, on all three engines): while the change
//! is open, version 1 of the application sees the table as it was and
//! version 2 as it will be. New columns are added nullable; sync triggers
//! keep both shapes right whichever version writes:
//!
//! - a write that leaves a new column alone (version 1) computes it (`up`);
//! - a write that sets it (version 2) keeps its value, and where the change
//!   knows how (`down`: a renamed or retyped column) computes the old column
//!   from it;
//! - a write that leaves a row where `new = up(old)` does not hold (version 2
//!   set a computed column the old ones cannot express) records the row's key
//!   in `ferry_written_<table>`: verification accepts those rows as the
//!   application's own, and the backfill never overwrites them.
//!
//! Temporary objects have predictable names: `ferry_sync_<table>` (triggers
//! and function), `ferry_mark_<table>_*` (MariaDB/MySQL and SQLite),
//! `ferry_written_<table>`, and the version views `<schema>_ferry_v1` /
//! `_ferry_v2` (PostgreSQL schemas) or `<table>_ferry_v1` / `_ferry_v2`.

use super::facts::{ColumnFacts, TableFacts};
use ferry_core::in_place::{ChangedTable, IndexSpec, NewColumn, SyncTriggers, WriteBack};
use ferry_core::spec::{ConstraintChange, DownChange, IndexChange};
use ferry_core::value::Value;
use ferry_core::{EngineKind, PlanDialect};

mod operation;
mod triggers;

pub use operation::{Operation, OperationKind, Versions};

pub use ferry_core::in_place::{Guard, Statement};

/// Contract's statements: checks run before the point of no return, then the steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    /// PostgreSQL's NOT NULL checks, added NOT VALID and validated without
    /// blocking writers, each statement by itself.
    pub prepare: Vec<Statement>,
    pub steps: Vec<Statement>,
    /// One transaction (PostgreSQL, SQLite); else an ordered sequence whose
    /// progress is recorded step by step (MariaDB/MySQL commit each DDL).
    pub atomic: bool,
}

/// Which version of the application a view serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The table as it was.
    Old,
    /// The table as the change leaves it.
    New,
}

impl Version {
    pub fn suffix(self) -> &'static str {
        match self {
            Version::Old => "ferry_v1",
            Version::New => "ferry_v2",
        }
    }
}

/// What one application version does with one column, while both versions
/// run (expand to contract) and after contract: the code-change table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CodeChange {
    pub table: String,
    pub column: String,
    pub version_1: String,
    pub version_2: String,
    pub after_contract: String,
}

/// An in-place change of one table.
#[derive(Debug, Clone)]
pub struct InPlace<'a> {
    /// The SQL of the engine the table is on.
    pub dialect: &'static dyn PlanDialect,
    /// The table as the spec names it (`users`, `app.users`).
    pub table: &'a str,
    pub key: &'a [String],
    /// The table's shape after the change (version 2).
    pub columns: &'a [ColumnFacts],
    /// Columns the change removes: dropped at contract, never before.
    pub dropped: &'a [String],
    /// The schema (PostgreSQL) or database (MariaDB/MySQL) the table is in,
    /// where the version views go; `None` for SQLite.
    pub namespace: Option<&'a str>,
    /// Indexes expand builds, each by itself, without blocking writes where the engine can.
    pub indexes: &'a [IndexChange],
    /// Checks and foreign keys: enforced on new writes from expand and
    /// validated at contract on PostgreSQL; added at contract elsewhere.
    pub constraints: &'a [ConstraintChange],
    /// Old columns computed back from new ones (a split column from its
    /// parts, merged columns from the whole), besides renamed and retyped ones.
    pub downs: &'a [DownChange],
    /// The table's indexes on a column the change replaces, built again on the new one.
    pub carried: &'a [CarriedIndex],
}

/// One index build of expand: the statement, and the one that undoes a
/// build stopped halfway (PostgreSQL leaves an invalid index behind).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexBuild {
    pub name: String,
    pub build: Statement,
    pub abort: Statement,
}

impl<'a> InPlace<'a> {
    pub fn of(dialect: &'static dyn PlanDialect, t: &'a TableFacts) -> InPlace<'a> {
        InPlace {
            dialect,
            table: &t.source,
            key: &t.key,
            columns: &t.columns,
            dropped: &t.dropped_columns,
            namespace: t.namespace.as_deref(),
            indexes: &t.added_indexes,
            constraints: &t.added_constraints,
            downs: &t.downs,
            carried: &t.carried_indexes,
        }
    }

    /// The engine the table is on.
    pub fn engine(&self) -> EngineKind {
        self.dialect.kind()
    }

    /// The schema whose version schemas hold the views, where the engine
    /// keeps each version in a schema of its own.
    fn version_schema(&self) -> Option<&'a str> {
        self.namespace.filter(|_| self.dialect.version_schemas())
    }

    fn name(&self) -> String {
        self.dialect.table(self.table)
    }

    /// The table as the dialect names the objects beside it.
    fn changed(&self) -> ChangedTable<'a> {
        ChangedTable { name: self.table }
    }

    /// The table's own name, without its schema.
    fn bare(&self) -> &'a str {
        self.changed().bare()
    }

    /// A Ferry object beside the table (same schema).
    fn beside(&self, name: &str) -> String {
        self.changed().beside(self.dialect, name)
    }

    fn id(&self, name: &str) -> String {
        self.dialect.ident(name)
    }

    pub fn sync_trigger(&self) -> String {
        self.changed().sync_trigger()
    }

    /// The table of keys whose new columns version 2 wrote itself.
    pub fn written_table(&self) -> String {
        self.changed().written_table()
    }

    /// Columns the change adds: computed, renamed or retyped ones.
    pub fn added(&self) -> Vec<&'a ColumnFacts> {
        added_columns(self.columns)
    }

    /// Whether any added column can be set by version 2 to a value its old
    /// columns cannot express (a computed column: no `down`).
    fn marks(&self) -> bool {
        self.added().iter().any(|c| !self.has_down(c))
    }

    /// The table's columns as version 1 knows them: those kept, then those the change drops.
    pub fn old_columns(&self) -> Vec<String> {
        let mut out: Vec<String> = self.columns.iter().filter_map(|c| c.source_column.clone()).collect();
        out.dedup();
        out.extend(self.dropped.iter().cloned());
        out
    }

    /// Where a version's view is: a PostgreSQL schema, or a view name beside the table.
    pub fn view(&self, version: Version) -> String {
        match self.version_schema() {
            Some(schema) => {
                format!("{}.{}", self.id(&format!("{schema}_{}", version.suffix())), self.id(self.bare()))
            }
            None => self.beside(&format!("{}_{}", self.bare(), version.suffix())),
        }
    }

    /// What an application version sets to see its shape, in words.
    pub fn connection_setting(&self, version: Version) -> String {
        match self.version_schema() {
            Some(schema) => {
                format!(
                    "SET search_path TO {}, {}",
                    self.id(&format!("{schema}_{}", version.suffix())),
                    self.id(schema)
                )
            }
            None => format!("read and write `{}_{}` instead of `{}`", self.bare(), version.suffix(), self.bare()),
        }
    }

    /// Which version reads and writes which column, in which phase.
    pub fn code_changes(&self) -> Vec<CodeChange> {
        let row = |column: &str, v1: &str, v2: &str, after: &str| CodeChange {
            table: self.table.to_string(),
            column: column.to_string(),
            version_1: v1.to_string(),
            version_2: v2.to_string(),
            after_contract: after.to_string(),
        };
        let mut out = vec![row(
            "(connection)",
            &self.connection_setting(Version::Old),
            &self.connection_setting(Version::New),
            "version 2's setting, or none once its views are dropped",
        )];
        for c in self.added() {
            let not_null = if c.nullable { "" } else { " (NOT NULL)" };
            match (c.expression.is_some(), c.renamed_from()) {
                (true, _) => out.push(row(
                    &c.name,
                    "does not see it: the triggers compute it on every write",
                    "reads and writes it; a value it writes stands",
                    &format!("reads and writes it{not_null}"),
                )),
                (false, Some(old)) => out.push(row(
                    &format!("{old} → {}", c.name),
                    &format!("reads and writes `{old}`; the triggers copy it to `{}`", c.name),
                    &format!("reads and writes `{}`; the triggers copy it to `{old}`", c.name),
                    &format!("`{}` only{not_null}", c.name),
                )),
                (false, None) => out.push(row(
                    &c.name,
                    "reads and writes the old type",
                    "reads and writes the new type",
                    &format!("the new type only{not_null}"),
                )),
            }
        }
        for d in self.dropped {
            let v2 = match self.downs.iter().find(|b| &b.column == d) {
                Some(b) => format!("does not see it: the triggers write it back from {}", b.written_by.join(", ")),
                None => "does not see it (NULL on its inserts)".to_string(),
            };
            out.push(row(d, "reads and writes it", &v2, "gone: version 1 retired"));
        }
        out
    }

    /// Expand: each operation's start (new columns nullable, no rewrite;
    /// PostgreSQL's constraints `NOT VALID`), then the table of version 2's
    /// own writes, the sync triggers and the version views. Index builds run
    /// after, each by itself ([`InPlace::index_builds`]).
    pub fn expand(&self) -> Vec<Statement> {
        let mut out: Vec<Statement> =
            self.operations().into_iter().filter(|op| !op.kind.built_apart()).flat_map(|op| op.start).collect();
        out.extend(self.versions().start);
        out
    }

    /// `CONSTRAINT name CHECK (...)` or `... FOREIGN KEY (...) REFERENCES ...`.
    pub fn constraint_clause(&self, c: &ConstraintChange) -> String {
        match c {
            ConstraintChange::Check { name, sql } => format!("CONSTRAINT {} CHECK ({sql})", self.id(name)),
            ConstraintChange::ForeignKey { name, columns, references, referenced_columns } => {
                let list = |cols: &[String]| cols.iter().map(|c| self.id(c)).collect::<Vec<_>>().join(", ");
                format!(
                    "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
                    self.id(name),
                    list(columns),
                    self.dialect.table(references),
                    list(referenced_columns)
                )
            }
        }
    }

    /// Why the change cannot add `c`, if it cannot: it would rest on a
    /// column that contract drops or replaces (a retyped column's old one, a
    /// renamed column's old name), and go with it. A check or foreign key is
    /// written over the table as the change leaves it.
    pub fn constraint_conflict(&self, c: &ConstraintChange) -> Option<String> {
        let mut going: Vec<String> = self.dropped.to_vec();
        going.extend(self.columns.iter().filter_map(|c| c.renamed_from().map(str::to_string)));
        let retyped: Vec<String> =
            self.added().iter().filter(|c| physical(c) != c.name).map(|c| c.name.clone()).collect();
        let used = match c {
            ConstraintChange::Check { sql, .. } => {
                let known = |n: &str| going.iter().chain(&retyped).any(|g| g.eq_ignore_ascii_case(n));
                ferry_core::sqlexpr::columns_read(sql, self.engine(), &known)
            }
            ConstraintChange::ForeignKey { columns, .. } => columns.clone(),
        };
        if let Some(col) = used.iter().find(|u| going.iter().any(|g| g.eq_ignore_ascii_case(u))) {
            return Some(format!(
                "{} uses {col}, which contract drops: write it over the columns the change leaves",
                c.name()
            ));
        }
        used.iter().find(|u| retyped.iter().any(|r| r.eq_ignore_ascii_case(u))).map(|col| {
            format!(
                "{} uses {col}, whose type the same change alters: add it in a change of its own once this one \
                 is contracted",
                c.name()
            )
        })
    }

    /// A query the database refuses when a check's SQL is not valid over the
    /// table as the change leaves it; it reads no row.
    pub fn check_probe(&self, sql: &str) -> String {
        format!(
            "SELECT 1 FROM (SELECT {} FROM {}) AS ferry_new WHERE ({sql}) AND 1 = 0",
            self.new_shape("").join(", "),
            self.name()
        )
    }

    /// Rows that break a constraint the change adds (must be 0 before contract adds or validates it).
    pub fn violations(&self, c: &ConstraintChange) -> String {
        match c {
            ConstraintChange::Check { sql, .. } => {
                format!("SELECT count(*) FROM {} WHERE NOT ({sql})", self.name())
            }
            ConstraintChange::ForeignKey { columns, references, referenced_columns, .. } => {
                super::sql::orphans(self.dialect, self.table, columns, references, referenced_columns)
                    .trim_end_matches(';')
                    .to_string()
            }
        }
    }

    /// Expand's index builds, after the rest of expand and each by itself,
    /// without blocking writers where the engine can (SQLite cannot: F005).
    pub fn index_builds(&self) -> Vec<IndexBuild> {
        self.indexes
            .iter()
            .chain(self.carried.iter().map(|c| &c.new))
            .map(|i| {
                let spec = IndexSpec { name: &i.name, unique: i.unique, columns: &i.columns };
                let sql = self.dialect.online_index(&self.changed(), &spec);
                IndexBuild { name: i.name.clone(), build: sql.build, abort: sql.abort }
            })
            .collect()
    }

    fn keys(&self) -> String {
        ferry_core::in_place::column_list(self.dialect, self.key)
    }

    /// `NOT EXISTS` a mark for the row of `row` (a table name or alias).
    fn unmarked(&self, row: &str) -> String {
        let on: Vec<String> = self.key.iter().map(|k| format!("m.{0} = {row}.{0}", self.id(k))).collect();
        format!("NOT EXISTS (SELECT 1 FROM {} AS m WHERE {})", self.beside(&self.written_table()), on.join(" AND "))
    }

    /// Drops what expand creates besides columns (triggers, function, mark
    /// table, views): before expand creates them again, and at rollback.
    /// `views_too`: the version 2 views as well (contract keeps them).
    fn drop_objects(&self, views_too: bool) -> Vec<String> {
        let mut out = self.drop_sync_objects();
        let versions: &[Version] = if views_too { &[Version::Old, Version::New] } else { &[Version::Old] };
        for v in versions {
            out.push(format!("DROP VIEW IF EXISTS {}", self.view(*v)));
            if let Some(schema) = self.version_schema() {
                // The version schema is shared by every table changed in place: it goes with its last view.
                let name = format!("{schema}_{}", v.suffix());
                out.push(format!(
                    "DO $ferry$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = {literal}) THEN DROP SCHEMA IF EXISTS {}; END IF; END $ferry$",
                    self.id(&name),
                    literal = ferry_core::sqlexpr::string_literal(self.engine(), &name)
                ));
            }
        }
        out
    }

    /// Drops the sync triggers (and PostgreSQL's trigger function) and the mark table.
    fn drop_sync_objects(&self) -> Vec<String> {
        let mut out = self.dialect.drop_sync_triggers(&self.changed());
        out.push(format!("DROP TABLE IF EXISTS {}", self.beside(&self.written_table())));
        out
    }

    /// The version views: version 1 shows the old columns, version 2 the new ones under their final names.
    fn views(&self) -> Vec<String> {
        let name = self.name();
        let old: Vec<String> = self.old_columns().iter().map(|c| self.id(c)).collect();
        let new: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let p = physical(c);
                if p == c.name || !is_added(c) {
                    self.id(&c.name)
                } else {
                    format!("{} AS {}", self.id(&p), self.id(&c.name))
                }
            })
            .collect();
        let mut out = Vec::new();
        for (version, columns) in [(Version::Old, old), (Version::New, new)] {
            if let Some(schema) = self.version_schema() {
                out.push(format!("CREATE SCHEMA IF NOT EXISTS {}", self.id(&format!("{schema}_{}", version.suffix()))));
            }
            out.push(format!("CREATE VIEW {} AS SELECT {} FROM {name}", self.view(version), columns.join(", ")));
        }
        out
    }

    /// One backfill batch: fills the new columns of rows in `(after, upto]`
    /// that no write filled yet. Rows a write filled (the triggers, or
    /// version 2 itself) are never overwritten, even by a batch that read
    /// them before that write committed.
    pub fn backfill_batch(&self, after: Option<&[Value]>, upto: &[Value]) -> String {
        let literals = |values: &[Value]| -> Vec<String> {
            values.iter().map(|v| ferry_core::sqlexpr::value_literal(self.engine(), v)).collect()
        };
        self.backfill_between(after.map(literals), literals(upto))
    }

    /// The batch statement as the plan shows it: bounds as placeholders.
    pub fn backfill_shown(&self) -> String {
        let lo = self.key.iter().map(|k| format!(":last_{k}")).collect();
        let hi = self.key.iter().map(|k| format!(":batch_end_{k}")).collect();
        format!("{};   -- one batch, key range by key range", self.backfill_between(Some(lo), hi))
    }

    fn backfill_between(&self, after: Option<Vec<String>>, upto: Vec<String>) -> String {
        let name = self.name();
        let added = self.added();
        let sets: Vec<String> = added
            .iter()
            .map(|c| {
                let column = self.id(&physical(c));
                format!("{column} = CASE WHEN {column} IS NULL THEN {} ELSE {column} END", up_of(self.dialect, c))
            })
            .collect();
        let empty: Vec<String> = added.iter().map(|c| format!("{} IS NULL", self.id(&physical(c)))).collect();
        let mut conds = Vec::new();
        if let Some(after) = after {
            conds.push(format!("{} > {}", self.key_tuple(), tuple(&after)));
        }
        conds.push(format!("{} <= {}", self.key_tuple(), tuple(&upto)));
        conds.push(format!("({})", empty.join(" OR ")));
        // MariaDB/MySQL refuse a statement that reads the table its triggers
        // write (error 1442): there, a row version 2 set to NULL itself is filled.
        if self.marks() && self.dialect.reads_tables_its_triggers_write() {
            conds.push(self.unmarked(&name));
        }
        format!("UPDATE {name} SET {} WHERE {}", sets.join(", "), conds.join(" AND "))
    }

    fn key_tuple(&self) -> String {
        let keys: Vec<String> = self.key.iter().map(|k| self.id(k)).collect();
        tuple(&keys)
    }

    /// Rows whose new columns disagree with the old ones, and that version 2 did not write itself.
    fn mismatch_filter(&self) -> String {
        let name = self.name();
        let conds: Vec<String> = self
            .added()
            .iter()
            .map(|c| self.dialect.is_distinct_from(&self.id(&physical(c)), &up_of(self.dialect, c)))
            .collect();
        let disagree = if conds.is_empty() { "1 = 0".to_string() } else { conds.join(" OR ") };
        if self.marks() {
            format!("({disagree}) AND {}", self.unmarked(&name))
        } else {
            disagree
        }
    }

    /// Verify: the number of rows whose new columns disagree (must be 0).
    pub fn mismatches(&self) -> String {
        format!("SELECT count(*) FROM {} WHERE {}", self.name(), self.mismatch_filter())
    }

    /// Verify: the keys of the first disagreeing rows, for the report.
    pub fn mismatch_sample(&self, limit: usize) -> String {
        format!(
            "SELECT {keys} FROM {} WHERE {} ORDER BY {keys} LIMIT {limit}",
            self.name(),
            self.mismatch_filter(),
            keys = self.keys()
        )
    }

    /// Verify: the number of rows whose old columns differ from what their
    /// new ones compute back (`old = down(new)`, must be 0): a row where the
    /// round trip loses something cannot be restored from version 2's
    /// columns. `None` when the spec gives no `down`.
    pub fn down_mismatches(&self) -> Option<String> {
        self.down_rows("count(*)", "")
    }

    /// Verify: the keys of the first rows whose old columns disagree with `down(new)`.
    pub fn down_mismatch_sample(&self, limit: usize) -> Option<String> {
        let keys: Vec<String> = (0..self.key.len()).map(|i| format!("ferry_key_{i}")).collect();
        let keys = keys.join(", ");
        self.down_rows(&keys, &format!(" ORDER BY {keys} LIMIT {limit}"))
    }

    /// The old columns `down` computes, by name (the columns a down mismatch concerns).
    pub fn down_columns(&self) -> Vec<String> {
        self.downs_given().into_iter().map(|(old, _)| old).collect()
    }

    /// `SELECT select` over the rows where some `old <> down(new)`: the table
    /// read in its new shape, each old column beside it as `ferry_was_<i>`.
    fn down_rows(&self, select: &str, tail: &str) -> Option<String> {
        let downs = self.downs_given();
        if downs.is_empty() {
            return None;
        }
        let mut columns = self.new_shape("");
        columns.extend(downs.iter().enumerate().map(|(i, (old, _))| format!("{} AS ferry_was_{i}", self.id(old))));
        columns.extend(self.key.iter().enumerate().map(|(i, k)| format!("{} AS ferry_key_{i}", self.id(k))));
        let differ: Vec<String> = downs
            .iter()
            .enumerate()
            .map(|(i, (_, sql))| self.dialect.is_distinct_from(&format!("ferry_was_{i}"), &format!("({sql})")))
            .collect();
        Some(format!(
            "SELECT {select} FROM (SELECT {} FROM {}) AS ferry_new WHERE {}{tail}",
            columns.join(", "),
            self.name(),
            differ.join(" OR ")
        ))
    }

    /// Verify: the rows version 2 wrote itself (their new value stands as written).
    pub fn written_rows(&self) -> Option<String> {
        self.marks().then(|| format!("SELECT count(*) FROM {}", self.beside(&self.written_table())))
    }

    /// Contract: each operation's proofs, its NOT NULL and constraints, then
    /// the triggers, the mark table and version 1's views, then the old
    /// columns (a retyped column takes its name).
    pub fn contract(&self) -> Contract {
        let operations = self.operations();
        let versions = self.versions();
        let prepare = operations.iter().flat_map(|op| op.validate.clone()).collect();
        let mut steps: Vec<Statement> = operations.iter().flat_map(|op| op.enforce.clone()).collect();
        steps.extend(versions.complete);
        steps.extend(operations.into_iter().flat_map(|op| op.complete));
        steps.extend(versions.finish);
        Contract { prepare, steps, atomic: self.dialect.capabilities().transactional_ddl }
    }

    /// Columns that an engine which alters by rebuilding (SQLite) makes
    /// NOT NULL only by rebuilding the table.
    pub fn sqlite_not_null(&self) -> Vec<String> {
        if !self.dialect.capabilities().alters_by_rebuilding {
            return Vec::new();
        }
        self.added().iter().filter(|c| !c.nullable).map(|c| physical(c)).collect()
    }

    /// Rollback before contract: the shared objects, then each operation
    /// aborted in reverse order; the table is as it was. Indexes are not in
    /// it: only those whose build started are Ferry's to drop (their
    /// operation's `abort`, run by the caller that knows their stage).
    pub fn rollback(&self) -> Vec<Statement> {
        let mut out = self.versions().abort;
        out.extend(self.operations().into_iter().rev().filter(|op| !op.kind.built_apart()).flat_map(|op| op.abort));
        out
    }
}

/// The column an in-place change writes: its own name, or `name_new` while a
/// retyped column lives beside the old one.
pub fn physical(c: &ColumnFacts) -> String {
    if c.renamed_from().is_none() && c.expression.is_none() {
        format!("{}_new", c.name)
    } else {
        c.name.clone()
    }
}

/// An index or unique key of the table on a column the change replaces
/// (renamed or retyped): expand builds it again on the new column beside the
/// old one, without blocking writes where the engine can; contract drops the
/// old one before its column and gives the new one the old name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CarriedIndex {
    /// The index as the table has it.
    pub old: String,
    /// Its replacement while both versions run (`ferry_<old>`), on the new columns.
    pub new: IndexChange,
    /// Its columns once contract is done (a retyped column has its name back).
    pub columns: Vec<String>,
}

/// The indexes and unique keys of `schema` that use a column that `columns`
/// replaces. An index on an expression is not carried: contract refuses
/// while it uses a column it drops.
pub fn carried_indexes(schema: &ferry_core::schema::TableSchema, columns: &[ColumnFacts]) -> Vec<CarriedIndex> {
    let replaced = |old: &str| {
        columns.iter().find(|c| c.expression.is_none() && is_added(c) && c.source_column.as_deref() == Some(old))
    };
    let unique = schema.unique_keys.iter().map(|i| (i, true));
    let plain = schema.indexes.iter().map(|i| (i, false));
    unique
        .chain(plain)
        .filter(|(i, _)| i.columns.iter().any(|c| replaced(c).is_some()))
        .map(|(i, unique)| {
            let now: Vec<String> = i.columns.iter().map(|c| replaced(c).map_or_else(|| c.clone(), physical)).collect();
            let after: Vec<String> =
                i.columns.iter().map(|c| replaced(c).map_or_else(|| c.clone(), |n| n.name.clone())).collect();
            let mut name = format!("ferry_{}", i.name);
            // Within every engine's 63-character limit.
            while name.len() > 60 {
                name.pop();
            }
            CarriedIndex { old: i.name.clone(), new: IndexChange { name, columns: now, unique }, columns: after }
        })
        .collect()
}

/// Columns that an in-place change adds: computed, renamed or retyped ones.
pub fn added_columns(columns: &[ColumnFacts]) -> Vec<&ColumnFacts> {
    columns.iter().filter(|c| is_added(c)).collect()
}

fn is_added(c: &ColumnFacts) -> bool {
    c.expression.is_some() || c.renamed_from().is_some() || c.source_type.as_ref().is_some_and(|s| s != &c.desired)
}

/// `a` alone, or `(a, b)`: a key as a row value.
fn tuple(parts: &[String]) -> String {
    match parts {
        [one] => one.clone(),
        _ => format!("({})", parts.join(", ")),
    }
}

/// The value a new column takes from the old row (`up`).
fn up_of(dialect: &dyn PlanDialect, c: &ColumnFacts) -> String {
    if let Some(up) = &c.up {
        return format!("({up})");
    }
    match (&c.expression, &c.source_column) {
        (Some(expr), _) => format!("({expr})"),
        (None, Some(src)) => dialect.ident(src),
        (None, None) => "NULL".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::types::DataType;

    fn column(name: &str, source: Option<&str>, expr: Option<&str>, t: DataType, nullable: bool) -> ColumnFacts {
        ColumnFacts {
            name: name.into(),
            source_column: source.map(str::to_string),
            expression: expr.map(str::to_string),
            source_type: source.map(|_| t.clone()),
            source_native: None,
            source_nullable: true,
            desired: t.clone(),
            planned: t,
            nullable,
            null_rows: None,
            zero_dates: None,
            assumed_zone: None,
            up: None,
            down: None,
        }
    }

    const NO_INDEX: &[IndexChange] = &[];
    const NO_CONSTRAINT: &[ConstraintChange] = &[];

    /// Every statement of the seed's change (a computed NOT NULL column, a
    /// dropped one) and of a rename, in each dialect: what the plan shows and
    /// what `ferry run` executes.
    #[test]
    fn statements_of_each_step_in_each_dialect() {
        let seed = [
            column("id", Some("id"), None, DataType::Int64, false),
            column("email", Some("email"), None, DataType::Text { max_chars: None }, false),
            column("email_verified", None, Some("verification_date IS NOT NULL"), DataType::Bool, false),
        ];
        let rename = [
            column("id", Some("id"), None, DataType::Int64, false),
            column("full_name", Some("fullname"), None, DataType::Text { max_chars: None }, true),
        ];
        let mut placed = column("placed", Some("placed"), None, DataType::Date, true);
        placed.source_type = Some(DataType::Text { max_chars: Some(10) });
        placed.up = Some("CAST(placed AS date)".into());
        placed.down = Some("CAST(placed AS varchar(10))".into());
        let retype = [column("id", Some("id"), None, DataType::Int64, false), placed];
        let dropped = ["verification_date".to_string()];
        let key = ["id".to_string()];
        let email_index = [IndexChange { name: "users_email_key".into(), columns: vec!["email".into()], unique: true }];
        let checks = [
            ConstraintChange::Check { name: "orders_id_positive".into(), sql: "id > 0".into() },
            ConstraintChange::ForeignKey {
                name: "orders_user_fk".into(),
                columns: vec!["user_id".into()],
                references: "users".into(),
                referenced_columns: vec!["id".into()],
            },
        ];
        let schema = ferry_core::schema::TableSchema {
            name: ferry_core::TableName::parse("people"),
            columns: Vec::new(),
            primary_key: vec!["id".into()],
            unique_keys: Vec::new(),
            indexes: vec![ferry_core::schema::Index {
                name: "people_name".into(),
                columns: vec!["fullname".into()],
                unique: false,
            }],
            foreign_keys: Vec::new(),
            checks: Vec::new(),
            expression_indexes: Vec::new(),
            comment: None,
            stats: Default::default(),
        };
        let carried = carried_indexes(&schema, &rename);
        let mut out = String::new();
        let dialects: [(&'static dyn PlanDialect, Option<&str>); 3] = [
            (&ferry_postgres::PLAN_DIALECT, Some("public")),
            (&ferry_mysql::PLAN_DIALECT, Some("app")),
            (&ferry_sqlite::PLAN_DIALECT, None),
        ];
        for (dialect, namespace) in dialects {
            let engine = dialect.kind();
            let tables = [
                ("users", &seed[..], &dropped[..]),
                ("people", &rename[..], &[][..]),
                ("orders", &retype[..], &[][..]),
            ];
            for (table, columns, dropped) in tables {
                let indexes = if table == "users" { &email_index[..] } else { NO_INDEX };
                let constraints = if table == "orders" { &checks[..] } else { NO_CONSTRAINT };
                let downs = &[][..];
                let carried = if table == "people" { &carried[..] } else { &[][..] };
                let change = InPlace {
                    dialect,
                    table,
                    key: &key,
                    columns,
                    dropped,
                    namespace,
                    indexes,
                    constraints,
                    downs,
                    carried,
                };
                let lines = |statements: Vec<Statement>| {
                    statements.into_iter().map(|s| format!("  {}", s.sql)).collect::<Vec<_>>().join("\n")
                };
                let contract = change.contract();
                out.push_str(&format!(
                    "=== {} {table}\n-- operations: {}\n-- expand\n{}\n{}\n-- backfill\n  {}\n-- verify\n  {}\n-- contract (atomic: {})\n{}\n{}\n-- rollback\n{}\n-- code changes\n{}\n\n",
                    engine.title(),
                    change.operations().iter().map(Operation::label).collect::<Vec<_>>().join(", "),
                    lines(change.expand()),
                    lines(change.index_builds().into_iter().flat_map(|b| [b.build, b.abort]).collect()),
                    change.backfill_batch(Some(&[ferry_core::Value::Int(100)]), &[ferry_core::Value::Int(200)]),
                    std::iter::once(change.mismatches())
                        .chain(change.down_mismatches())
                        .collect::<Vec<_>>()
                        .join("\n  "),
                    contract.atomic,
                    lines(contract.prepare),
                    lines(contract.steps),
                    lines(change.rollback()),
                    change
                        .code_changes()
                        .iter()
                        .map(|c| format!("  {} | {} | {} | {}", c.column, c.version_1, c.version_2, c.after_contract))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ));
            }
        }
        insta::assert_snapshot!(out);
    }
}
