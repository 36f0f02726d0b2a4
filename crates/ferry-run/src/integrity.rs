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
use ferry_core::{FkAction, TableDef, TableSchema};
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
    /// The target's defaults, identity, checks, foreign keys, indexes,
    /// collations and comments against what expand promised.
    Schema,
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
    let q = target.sql_dialect();
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

/// Compares the target table, as introspected now, with the definition
/// expand created it from: every default, identity (and its position beyond
/// the largest key), generated column, collation, comment, check, foreign
/// key (with its actions) and expression index must still be there.
pub async fn schema_check(plan: &TablePlan, target: &dyn Engine) -> Result<CheckResult> {
    let actual = target.introspect(&plan.target_name).await?;
    let mut drift = schema_drift(&plan.def, &actual);
    if let Some(column) = plan.def.identity_column() {
        let position = target.identity_next(&plan.target_name, &column.name).await?;
        let q = target.sql_dialect();
        let largest = target
            .scalar(&format!("SELECT MAX({}) FROM {}", q.ident(&column.name), q.table(&plan.target_name)))
            .await?
            .and_then(|t| t.split('.').next().and_then(|w| w.trim().parse::<i64>().ok()));
        if let (Some(position), Some(largest)) = (position, largest) {
            if position <= largest {
                drift.push(format!("{} hands out {position}, not beyond the largest key {largest}", column.name));
            }
        }
    }
    Ok(CheckResult {
        name: format!("{}: schema as expand created it", plan.target_name),
        kind: CheckKind::Schema,
        on: CheckOn::Target,
        sql: "(introspection of the target)".into(),
        expected: 0,
        actual: Some(drift.len() as i64),
        passed: drift.is_empty(),
        error: (!drift.is_empty()).then(|| drift.join("; ")),
    })
}

/// What `def` promised and `actual` lacks, one line each.
pub fn schema_drift(def: &TableDef, actual: &TableSchema) -> Vec<String> {
    let mut drift = Vec::new();
    for promised in &def.columns {
        let Some(column) = actual.column(&promised.name) else {
            drift.push(format!("column {} is missing", promised.name));
            continue;
        };
        let name = &promised.name;
        if promised.identity.is_some() && column.identity.is_none() {
            drift.push(format!("{name} is no longer numbered by the database"));
        }
        if promised.default.is_some() && column.default.is_none() && column.identity.is_none() {
            drift.push(format!("{name} lost its default"));
        }
        if promised.generated.is_some() && column.generated.is_none() {
            drift.push(format!("{name} is no longer generated"));
        }
        if let Some(collation) = &promised.collation {
            if !column.collation.as_ref().is_some_and(|c| c.name.eq_ignore_ascii_case(collation)) {
                drift.push(format!("{name} is not collated {collation}"));
            }
        }
        if promised.comment.is_some() && column.comment != promised.comment {
            drift.push(format!("{name} lost its comment"));
        }
    }
    for check in &def.checks {
        if !actual.checks.iter().any(|c| c.name == check.name) {
            drift.push(format!("check {} is missing", check.name));
        }
    }
    for fk in &def.foreign_keys {
        match actual.foreign_keys.iter().find(|f| f.columns == fk.columns && f.ref_table.name == fk.ref_table.name) {
            None => drift.push(format!("foreign key ({}) is missing", fk.columns.join(", "))),
            Some(f) if !same_action(f.on_delete, fk.on_delete) || !same_action(f.on_update, fk.on_update) => drift
                .push(format!(
                    "foreign key ({}) has{} instead of{}",
                    fk.columns.join(", "),
                    or_none(&f.actions_sql()),
                    or_none(&fk.actions_sql())
                )),
            Some(_) => {}
        }
    }
    for index in &def.expression_indexes {
        if !actual.expression_indexes.iter().any(|i| i.name == index.name) {
            drift.push(format!("index {} is missing", index.name));
        }
    }
    if def.comment.is_some() && actual.comment != def.comment {
        drift.push("the table lost its comment".into());
    }
    drift
}

/// RESTRICT and NO ACTION differ only in when they are checked.
fn same_action(a: FkAction, b: FkAction) -> bool {
    let plain = |x: FkAction| if x == FkAction::Restrict { FkAction::NoAction } else { x };
    plain(a) == plain(b)
}

fn or_none(actions: &str) -> String {
    if actions.is_empty() {
        " NO ACTION".into()
    } else {
        actions.to_string()
    }
}

/// Runs one check: its query must return `expected`. A query that fails is
/// a failed check; a lost connection is an error (the command reconnects
/// and runs it again).
pub async fn run_check(
    engine: &dyn Engine,
    name: String,
    kind: CheckKind,
    on: CheckOn,
    sql: String,
    expected: i64,
) -> Result<CheckResult> {
    let (actual, error) = match engine.scalar(&sql).await {
        Err(e) if matches!(e.kind(), ferry_engine::ErrorKind::Connect | ferry_engine::ErrorKind::ConnectionLost) => {
            return Err(e.into())
        }
        Ok(Some(text)) => match parse_count(&text) {
            Some(n) => (Some(n), None),
            None => (None, Some(format!("the query returned `{text}`, not a whole number"))),
        },
        Ok(None) => (None, Some("the query returned no value (no row, or NULL)".to_string())),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(CheckResult { name, kind, on, sql, expected, passed: actual == Some(expected), actual, error })
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
            run_check(engine, check.name.clone(), CheckKind::Custom, check.on, check.sql.clone(), check.expect).await?,
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
