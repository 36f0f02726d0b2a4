//! What a plan shows for SQLite: `.backup` and `integrity_check`, a sum
//! over the quoted rows (SQLite has no hash function), `?` parameters.

use crate::in_place;
use ferry_core::dialect::IdentityColumn;
use ferry_core::in_place::{ChangedTable, IndexBuildSql, IndexSpec, Steps, SyncTriggers};
use ferry_core::{Capabilities, DataType, EngineKind, PlanDialect};

pub struct SqlitePlanDialect;

/// SQLite's dialect, for `Engine::plan_dialect`.
pub static PLAN_DIALECT: SqlitePlanDialect = SqlitePlanDialect;

impl PlanDialect for SqlitePlanDialect {
    fn kind(&self) -> EngineKind {
        EngineKind::Sqlite
    }

    fn backup_commands(&self, url: &str, tables: &[&str]) -> Vec<String> {
        let path = url.strip_prefix("sqlite:").unwrap_or(url);
        vec![
            format!("sqlite3 '{path}' \".backup '{path}.ferry-backup'\""),
            format!(
                "sqlite3 '{path}.ferry-backup' 'PRAGMA integrity_check; SELECT count(*) FROM {}'   # must print ok and match the source",
                tables.first().copied().unwrap_or("TABLE")
            ),
        ]
    }

    fn table_checksum(&self, table: &str, _key: &[String], columns: &[String]) -> String {
        let quoted: Vec<String> = columns.iter().map(|c| self.ident(c)).collect();
        format!(
            "-- SQLite has no built-in hash; `ferry verify` checksums every row.\nSELECT count(*), total(length(quote({}))) FROM {};",
            quoted.join(") || quote("),
            self.table(table)
        )
    }

    fn parameter(&self, _n: usize) -> String {
        "?".into()
    }

    fn identity(&self, column: &IdentityColumn) -> Result<String, String> {
        match (column.sole_key && column.data_type.is_integer(), column.rowid) {
            (false, _) => Err("SQLite numbers only a table's single INTEGER PRIMARY KEY".into()),
            (true, true) => Ok("INTEGER PRIMARY KEY (rowid)".into()),
            (true, false) => Ok("INTEGER PRIMARY KEY AUTOINCREMENT".into()),
        }
    }

    fn case_insensitive_names(&self) -> bool {
        true
    }

    fn case_insensitive_collation_advice(&self) -> &'static str {
        "NOCASE"
    }

    fn enforces_unique_on_lower(&self) -> bool {
        true
    }

    fn index_expression(&self, sql: &str) -> String {
        sql.to_string()
    }

    fn declare(&self, t: &DataType) -> String {
        match t {
            DataType::Bool => "BOOLEAN".into(),
            DataType::Text { max_chars: None } => "TEXT".into(),
            DataType::Bytes => "BLOB".into(),
            DataType::Float64 => "REAL".into(),
            other => other.to_string().to_uppercase(),
        }
    }

    fn is_distinct_from(&self, a: &str, b: &str) -> String {
        format!("{a} IS NOT {b}")
    }

    fn is_not_distinct_from(&self, a: &str, b: &str) -> String {
        format!("{a} IS {b}")
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            server: false,
            transactional_ddl: true,
            concurrent_writers: false,
            checksums_in_database: false,
            adds_foreign_keys_later: false,
            pads_trailing_spaces: false,
            builds_indexes_online: false,
            validates_foreign_keys_online: false,
            alters_by_rebuilding: true,
            enum_columns: false,
            tinyint_booleans: false,
        }
    }

    fn online_index(&self, t: &ChangedTable, index: &IndexSpec) -> IndexBuildSql {
        in_place::online_index(self, t, index)
    }

    fn swap_index(&self, t: &ChangedTable, old: &str, new: &IndexSpec) -> Steps {
        in_place::swap_index(self, t, old, new)
    }

    fn not_null(&self, _t: &ChangedTable, _column: &str, _physical: &str, _declared: &DataType) -> Steps {
        // The table rebuild at contract makes it NOT NULL.
        Steps::default()
    }

    fn add_constraint(&self, _t: &ChangedTable, _name: &str, _clause: &str) -> Steps {
        // The table rebuild at contract adds it.
        Steps::default()
    }

    fn sync_triggers(&self, s: &SyncTriggers) -> Vec<String> {
        in_place::sync_triggers(self, s)
    }
}
