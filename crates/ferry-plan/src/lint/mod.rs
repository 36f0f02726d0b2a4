//! Change analysis: every change a migration makes, classified by rules with
//! stable codes. Each rule is a file of its own (`fNNN_name.rs`): a small
//! function over the assessment, its help text and its cases, positive and
//! negative, on fixture assessments (squawk's layout). Each has a page in
//! `docs/lints/`. The rules ask the engines' capabilities, never their names.

use super::facts::{Assessment, ColumnFacts, SchemaItemKind, SchemaProblemClass, TableFacts};
use ferry_core::audit::format_duration;
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
    pub(super) check: fn(&Rule, &Assessment) -> Vec<Finding>,
}

impl Rule {
    pub(super) fn finding(
        &self,
        severity: Severity,
        table: &TableFacts,
        column: Option<&str>,
        message: String,
    ) -> Finding {
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

mod f001_column_renamed;
mod f002_type_narrowed;
mod f003_not_null_on_existing_rows;
mod f004_dropped;
mod f005_index_build_locks_writes;
mod f006_foreign_key_validation_locks;
mod f007_table_without_key;
mod f008_sqlite_table_rebuild;
mod f009_cross_engine_conversion;
mod f010_expression_not_translated;
mod f011_index_not_translated;
mod f012_collation_changes_comparison;
mod f013_zero_dates;
mod f014_naive_timestamp_to_timestamptz;
mod f015_generated_column_not_translated;
mod f016_schema_item_not_kept;
mod f017_foreign_key_parent_missing;
mod f018_rollback_not_lossless;
mod f019_nullable_key;
mod f020_key_collision;
mod f021_target_has_rows;

pub const RULES: &[Rule] = &[
    f001_column_renamed::RULE,
    f002_type_narrowed::RULE,
    f003_not_null_on_existing_rows::RULE,
    f004_dropped::RULE,
    f005_index_build_locks_writes::RULE,
    f006_foreign_key_validation_locks::RULE,
    f007_table_without_key::RULE,
    f008_sqlite_table_rebuild::RULE,
    f009_cross_engine_conversion::RULE,
    f010_expression_not_translated::RULE,
    f011_index_not_translated::RULE,
    f012_collation_changes_comparison::RULE,
    f013_zero_dates::RULE,
    f014_naive_timestamp_to_timestamptz::RULE,
    f015_generated_column_not_translated::RULE,
    f016_schema_item_not_kept::RULE,
    f017_foreign_key_parent_missing::RULE,
    f018_rollback_not_lossless::RULE,
    f019_nullable_key::RULE,
    f020_key_collision::RULE,
    f021_target_has_rows::RULE,
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

pub(super) fn columns(a: &Assessment) -> impl Iterator<Item = (&TableFacts, &ColumnFacts)> {
    a.tables.iter().flat_map(|t| t.columns.iter().map(move |c| (t, c)))
}

/// In place, a renamed or retyped column is a new physical column.
pub(super) fn rebuilt_columns(t: &TableFacts) -> impl Iterator<Item = (&ColumnFacts, &str)> {
    t.columns.iter().filter_map(|c| {
        let src = c.source_column.as_deref()?;
        let retyped = c.source_type.as_ref().is_some_and(|s| s != &c.desired);
        (c.renamed_from().is_some() || retyped).then_some((c, src))
    })
}

/// Findings of one class of schema problem, one per item.
pub(super) fn schema_problems(rule: &Rule, a: &Assessment, class: SchemaProblemClass) -> Vec<Finding> {
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

/// A duration estimate for `rows` at `rate` rows/s, for messages.
pub fn estimate(rows: u64, rate: Option<f64>) -> String {
    let rate = rate.filter(|r| *r > 0.0).unwrap_or(10_000.0);
    format_duration(Duration::from_secs_f64(rows as f64 / rate))
}

#[cfg(test)]
mod fixture;

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
