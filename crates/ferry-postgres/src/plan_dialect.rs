//! What a plan shows for PostgreSQL: pg_dump and pg_restore, an md5 of the
//! table's rows, `$n` parameters.

use ferry_core::dialect::UrlParts;
use ferry_core::{EngineKind, PlanDialect};

pub struct PostgresPlanDialect;

/// PostgreSQL's dialect, for `Engine::plan_dialect`.
pub static PLAN_DIALECT: PostgresPlanDialect = PostgresPlanDialect;

impl PlanDialect for PostgresPlanDialect {
    fn kind(&self) -> EngineKind {
        EngineKind::Postgres
    }

    fn backup_commands(&self, url: &str, tables: &[&str]) -> Vec<String> {
        let p = UrlParts::of(url);
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

    fn table_checksum(&self, table: &str, key: &[String], _columns: &[String]) -> String {
        let key: Vec<String> = key.iter().map(|k| self.ident(k)).collect();
        format!("SELECT md5(string_agg(t::text, '|' ORDER BY {})) FROM {} AS t;", key.join(", "), self.table(table))
    }

    fn parameter(&self, n: usize) -> String {
        format!("${n}")
    }
}
