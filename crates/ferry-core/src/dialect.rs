//! The SQL and shell commands an engine writes where no connection is open:
//! what a plan shows (backup and restore, a table's checksum, a batch's
//! read), how the schema translator writes a table for it (identities,
//! collations, index expressions) and pieces of a change in place (type
//! declarations, NULL-safe comparisons, where version views live). Each
//! engine crate implements [`PlanDialect`] and hands it out through
//! `Engine::plan_dialect`; the planner, the translator and the in-place
//! operations receive it and never ask which engine it is.

use crate::in_place::{ChangedTable, Event, IndexBuildSql, IndexSpec, Steps, SyncTriggers};
use crate::{Capabilities, DataType, EngineKind};

/// A column the source numbers itself, as the target is asked to number it.
#[derive(Debug, Clone, Copy)]
pub struct IdentityColumn<'a> {
    pub name: &'a str,
    pub data_type: &'a DataType,
    /// The table's key is this column alone.
    pub sole_key: bool,
    /// The source numbers it as SQLite's rowid (`INTEGER PRIMARY KEY` without AUTOINCREMENT).
    pub rowid: bool,
    /// The name a sequence for it takes, where the engine needs one.
    pub sequence: &'a str,
}

/// An engine's SQL, as pure functions: one static value per engine crate.
pub trait PlanDialect: Send + Sync {
    /// Whose dialect, for the plan's labels.
    fn kind(&self) -> EngineKind;

    /// Backup, and a restore test that proves the backup, for `tables` of
    /// the database at the (redacted) `url`.
    fn backup_commands(&self, url: &str, tables: &[&str]) -> Vec<String>;

    /// A checksum of a whole table in the engine's own SQL, comparable
    /// between two copies on the same engine.
    fn table_checksum(&self, table: &str, key: &[String], columns: &[String]) -> String;

    /// The `n`-th (1-based) bind parameter of a statement.
    fn parameter(&self, n: usize) -> String;

    /// How the target numbers `column` (the clause its DDL shows), or why it cannot.
    fn identity(&self, column: &IdentityColumn) -> Result<String, String>;

    /// Column names compare without regard to case (`Email` is `email`).
    fn case_insensitive_names(&self) -> bool;

    /// A collation of this engine to suggest for text the source compares
    /// without regard to case.
    fn case_insensitive_collation_advice(&self) -> &'static str;

    /// A unique key on text the source compares without case can be
    /// enforced here on `lower()` of its columns.
    fn enforces_unique_on_lower(&self) -> bool;

    /// An expression as an index element.
    fn index_expression(&self, sql: &str) -> String {
        format!("({sql})")
    }

    /// A column type as this engine declares it in `ALTER TABLE ... ADD COLUMN`.
    fn declare(&self, t: &DataType) -> String;

    /// `a` and `b` differ, NULL-safe (`NULL` and `NULL` do not differ).
    fn is_distinct_from(&self, a: &str, b: &str) -> String;

    /// `a` and `b` are equal, NULL-safe (`NULL` equals `NULL`).
    fn is_not_distinct_from(&self, a: &str, b: &str) -> String;

    /// A condition no row meets (`WHERE` of an empty copy of a table's shape).
    fn never(&self) -> &'static str {
        "1 = 0"
    }

    /// Each application version of a change in place sees the table through
    /// a schema of its own on the search path (PostgreSQL); elsewhere its
    /// view stands beside the table under another name.
    fn version_schemas(&self) -> bool {
        false
    }

    /// What the engine can do whatever a server's settings say (a server may
    /// change some: `Engine::capabilities` is the connected engine's word).
    fn capabilities(&self) -> Capabilities;

    // A change in place (crate::in_place): what the planner decides, in this engine's SQL.

    /// Expand's build of `index`, without blocking writers where the engine
    /// can, and what drops a build stopped halfway.
    fn online_index(&self, t: &ChangedTable, index: &IndexSpec) -> IndexBuildSql;

    /// A carried index at contract: the old one `old` goes before its column
    /// (`enforce`), `new` takes its name once the columns have theirs (`complete`).
    fn swap_index(&self, t: &ChangedTable, old: &str, new: &IndexSpec) -> Steps;

    /// `column`, written to `physical` while both versions run, made NOT NULL at contract.
    fn not_null(&self, t: &ChangedTable, column: &str, physical: &str, declared: &DataType) -> Steps;

    /// A check or foreign key `name` (`clause`: `CONSTRAINT name ...`): when
    /// it is enforced on new writes and when on every row.
    fn add_constraint(&self, t: &ChangedTable, name: &str, clause: &str) -> Steps;

    /// The sync triggers, in the engine's trigger language.
    fn sync_triggers(&self, s: &SyncTriggers) -> Vec<String>;

    /// Drops what [`PlanDialect::sync_triggers`] creates: by default one
    /// trigger per event for the sync and the mark triggers.
    fn drop_sync_triggers(&self, t: &ChangedTable) -> Vec<String> {
        let mut out = Vec::new();
        for trigger in [t.sync_trigger(), t.mark_trigger()] {
            for event in Event::BOTH {
                let name = format!("{trigger}_{}", event.suffix());
                out.push(format!("DROP TRIGGER IF EXISTS {}", t.beside(self, &name)));
            }
        }
        out
    }

    /// A statement may read a table its triggers write (MariaDB/MySQL refuse it: error 1442).
    fn reads_tables_its_triggers_write(&self) -> bool {
        true
    }

    /// A view follows a column's rename; else (views that name columns as
    /// text) version 2's view is written again after contract renames.
    fn views_follow_renames(&self) -> bool {
        true
    }

    /// `name` quoted as an identifier.
    fn ident(&self, name: &str) -> String {
        self.kind().ident(name)
    }

    /// `schema.table` quoted part by part.
    fn table(&self, name: &str) -> String {
        name.split('.').map(|p| self.ident(p)).collect::<Vec<_>>().join(".")
    }
}

impl std::fmt::Debug for dyn PlanDialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlanDialect({})", self.kind())
    }
}

/// The parts of a (redacted) server URL a shell command needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub user: String,
    pub host: String,
    pub port: Option<String>,
    pub database: String,
}

impl UrlParts {
    /// The parts of `url`, or placeholders the reader replaces (`USER`, `HOST`, `DB`).
    pub fn of(url: &str) -> UrlParts {
        UrlParts::parse(url).unwrap_or_else(|| UrlParts {
            user: "USER".into(),
            host: "HOST".into(),
            port: None,
            database: "DB".into(),
        })
    }

    fn parse(url: &str) -> Option<UrlParts> {
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
}

#[cfg(test)]
mod tests {
    use super::UrlParts;

    #[test]
    fn url_parts_read_redacted_urls() {
        let p = UrlParts::of("postgres://app:***@db.internal:6432/shop");
        assert_eq!(
            (p.user.as_str(), p.host.as_str(), p.port.as_deref(), p.database.as_str()),
            ("app", "db.internal", Some("6432"), "shop")
        );
        assert_eq!(UrlParts::of("mysql://root@h/x?ssl=1").database, "x");
        assert_eq!(UrlParts::of("no url").host, "HOST");
    }
}
