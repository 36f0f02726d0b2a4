//! What a plan shows for MySQL/MariaDB: mysqldump, a CRC32 fold of the
//! table's rows, `?` parameters.

use crate::in_place;
use ferry_core::dialect::{IdentityColumn, UrlParts};
use ferry_core::in_place::{ChangedTable, IndexBuildSql, IndexSpec, Steps, SyncTriggers};
use ferry_core::{Capabilities, DataType, EngineKind, PlanDialect};

pub struct MysqlPlanDialect;

/// MySQL's and MariaDB's dialect, for `Engine::plan_dialect`.
pub static PLAN_DIALECT: MysqlPlanDialect = MysqlPlanDialect;

impl PlanDialect for MysqlPlanDialect {
    fn kind(&self) -> EngineKind {
        EngineKind::Mysql
    }

    fn backup_commands(&self, url: &str, tables: &[&str]) -> Vec<String> {
        let p = UrlParts::of(url);
        let conn = format!("-h {} -P {} -u {} -p", p.host, p.port.as_deref().unwrap_or("3306"), p.user);
        vec![
            format!(
                "mysqldump {conn} --single-transaction --routines --triggers {} {} > ferry-backup.sql",
                p.database,
                tables.join(" ")
            ),
            format!(
                "mysql {conn} -e 'CREATE DATABASE ferry_restore_test' && mysql {conn} ferry_restore_test < ferry-backup.sql"
            ),
            format!(
                "mysql {conn} ferry_restore_test -e 'SELECT count(*) FROM {}'   # must match the source, then: DROP DATABASE ferry_restore_test",
                tables.first().copied().unwrap_or("TABLE")
            ),
        ]
    }

    fn table_checksum(&self, table: &str, _key: &[String], columns: &[String]) -> String {
        let values: Vec<String> = columns.iter().map(|c| format!("IFNULL({}, '\\\\N')", self.ident(c))).collect();
        format!("SELECT count(*), BIT_XOR(CRC32(CONCAT_WS('|', {}))) FROM {};", values.join(", "), self.table(table))
    }

    fn parameter(&self, _n: usize) -> String {
        "?".into()
    }

    fn identity(&self, column: &IdentityColumn) -> Result<String, String> {
        if column.data_type.is_integer() {
            Ok("AUTO_INCREMENT".into())
        } else {
            Err(format!("AUTO_INCREMENT needs an integer column, and `{}` is {}", column.name, column.data_type))
        }
    }

    fn case_insensitive_names(&self) -> bool {
        true
    }

    fn case_insensitive_collation_advice(&self) -> &'static str {
        "utf8mb4_general_ci"
    }

    /// MariaDB has no indexes on expressions; a unique key stays on the column.
    fn enforces_unique_on_lower(&self) -> bool {
        false
    }

    fn declare(&self, t: &DataType) -> String {
        match t {
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
        }
    }

    fn is_distinct_from(&self, a: &str, b: &str) -> String {
        format!("NOT ({a} <=> {b})")
    }

    fn is_not_distinct_from(&self, a: &str, b: &str) -> String {
        format!("{a} <=> {b}")
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            server: true,
            transactional_ddl: false,
            concurrent_writers: true,
            checksums_in_database: true,
            // A server's utf8mb4_bin pads (Engine::capabilities asks the server's collation).
            pads_trailing_spaces: false,
            adds_foreign_keys_later: true,
            builds_indexes_online: true,
            validates_foreign_keys_online: false,
            alters_by_rebuilding: false,
            enum_columns: true,
            tinyint_booleans: true,
        }
    }

    fn online_index(&self, t: &ChangedTable, index: &IndexSpec) -> IndexBuildSql {
        in_place::online_index(self, t, index)
    }

    fn swap_index(&self, t: &ChangedTable, old: &str, new: &IndexSpec) -> Steps {
        in_place::swap_index(self, t, old, new)
    }

    fn not_null(&self, t: &ChangedTable, _column: &str, physical: &str, declared: &DataType) -> Steps {
        in_place::not_null(self, t, physical, declared)
    }

    fn add_constraint(&self, t: &ChangedTable, name: &str, clause: &str) -> Steps {
        in_place::add_constraint(self, t, name, clause)
    }

    fn sync_triggers(&self, s: &SyncTriggers) -> Vec<String> {
        in_place::sync_triggers(self, s)
    }

    fn reads_tables_its_triggers_write(&self) -> bool {
        false
    }

    fn views_follow_renames(&self) -> bool {
        false
    }
}
