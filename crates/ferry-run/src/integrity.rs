//! Integrity checks on the target, beyond "same rows as the source": rows
//! whose foreign key points nowhere, NULLs where the column must have a
//! value, duplicates where a key must be unique, and the operator's own
//! assertions from the spec (`[[check]]`).
//!
//! The migration's own definition of each table is what is checked, not
//! only what the target enforces: a target table that existed before the
//! migration, or an engine that loads without enforcing (SQLite's foreign
//! keys), can hold rows its constraints would refuse.

use crate::error::Result;
use crate::mapping::TablePlan;
use ferry_core::spec::{CheckOn, CheckSpec};
use ferry_engine::sql::Dialect;
use ferry_engine::Engine;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Rows whose foreign key has no parent row.
    Orphans,
    /// NULLs in columns that must have a value.
    NotNull,
    /// Key values held by more than one row.
    Unique,
    /// An assertion from the spec.
    Custom,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub kind: CheckKind,
    pub on: CheckOn,
    pub sql: String,
    pub expected: i64,
    /// What the query returned; `None` when it failed (see `error`).
    pub actual: Option<i64>,
    pub passed: bool,
    pub error: Option<String>,
}

/// The checks of one table as it is defined by the migration.
pub fn table_checks(
    plan: &TablePlan,
    target: &dyn Engine,
    target_tables: &[&TablePlan],
) -> Vec<(String, CheckKind, String)> {
    let q = Dialect::of(target.kind());
    let table = q.table(&plan.target_name);
    let mut checks = Vec::new();
    for fk in &plan.def.foreign_keys {
        // Only parents this migration brings along (or that the target already has) can be checked.
        let Some(parent) =
            target_tables.iter().find(|p| p.target_name == fk.ref_table || p.source_name == fk.ref_table)
        else {
            continue;
        };
        let not_null: Vec<String> = fk.columns.iter().map(|c| format!("c.{} IS NOT NULL", q.ident(c))).collect();
        let join: Vec<String> = fk
            .columns
            .iter()
            .zip(&fk.ref_columns)
            .map(|(c, p)| format!("p.{} = c.{}", q.ident(p), q.ident(c)))
            .collect();
        checks.push((
            format!("{}: every {} has its {} row", plan.target_name, fk.columns.join(", "), parent.target_name),
            CheckKind::Orphans,
            format!(
                "SELECT COUNT(*) FROM {table} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
                not_null.join(" AND "),
                q.table(&parent.target_name),
                join.join(" AND ")
            ),
        ));
    }
    let required: Vec<&str> = plan.def.columns.iter().filter(|c| !c.nullable).map(|c| c.name.as_str()).collect();
    if !required.is_empty() {
        let any_null: Vec<String> = required.iter().map(|c| format!("{} IS NULL", q.ident(c))).collect();
        checks.push((
            format!("{}: no NULL in {}", plan.target_name, required.join(", ")),
            CheckKind::NotNull,
            format!("SELECT COUNT(*) FROM {table} WHERE {}", any_null.join(" OR ")),
        ));
    }
    let mut keys: Vec<&Vec<String>> = vec![&plan.def.primary_key];
    keys.extend(plan.def.unique_keys.iter());
    for key in keys.into_iter().filter(|k| !k.is_empty()) {
        let columns = q.idents(key);
        let not_null: Vec<String> = key.iter().map(|c| format!("{} IS NOT NULL", q.ident(c))).collect();
        checks.push((
            format!("{}: ({}) is unique", plan.target_name, key.join(", ")),
            CheckKind::Unique,
            format!(
                "SELECT COUNT(*) FROM (SELECT 1 AS one FROM {table} WHERE {} GROUP BY {columns} HAVING COUNT(*) > 1) d",
                not_null.join(" AND ")
            ),
        ));
    }
    checks
}

/// Runs one check: its query must return `expected`.
pub async fn run_check(
    engine: &dyn Engine,
    name: String,
    kind: CheckKind,
    on: CheckOn,
    sql: String,
    expected: i64,
) -> CheckResult {
    let (actual, error) = match engine.scalar(&sql).await {
        Ok(Some(text)) => match parse_count(&text) {
            Some(n) => (Some(n), None),
            None => (None, Some(format!("the query returned `{text}`, not a whole number"))),
        },
        Ok(None) => (None, Some("the query returned no value (no row, or NULL)".to_string())),
        Err(e) => (None, Some(e.to_string())),
    };
    CheckResult { name, kind, on, sql, expected, passed: actual == Some(expected), actual, error }
}

/// The operator's `[[check]]` entries.
pub async fn custom_checks(checks: &[CheckSpec], source: &dyn Engine, target: &dyn Engine) -> Result<Vec<CheckResult>> {
    let mut results = Vec::new();
    for check in checks {
        let engine = match check.on {
            CheckOn::Source => source,
            CheckOn::Target => target,
        };
        results.push(
            run_check(engine, check.name.clone(), CheckKind::Custom, check.on, check.sql.clone(), check.expect).await,
        );
    }
    Ok(results)
}

/// A whole number, also when an engine writes it as a decimal (`3.000`).
fn parse_count(text: &str) -> Option<i64> {
    let text = text.trim();
    text.parse::<i64>().ok().or_else(|| {
        let (whole, fraction) = text.split_once('.')?;
        fraction.bytes().all(|b| b == b'0').then(|| whole.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::parse_count;

    #[test]
    fn counts_in_every_engines_spelling() {
        assert_eq!(parse_count("3"), Some(3));
        assert_eq!(parse_count(" -2 "), Some(-2));
        assert_eq!(parse_count("3.000"), Some(3));
        assert_eq!(parse_count("3.5"), None);
        assert_eq!(parse_count("abc"), None);
    }
}
