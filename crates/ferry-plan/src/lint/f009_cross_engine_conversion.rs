//! F009 cross-engine-conversion: the target engine cannot hold a type exactly as the source does.

use super::{columns, Finding, Rule, Severity};
use crate::facts::Assessment;
use ferry_core::types::{widens_to, DataType};

pub(super) const RULE: Rule = Rule {
    code: "F009",
    name: "cross-engine-conversion",
    summary: "The target engine cannot hold a type exactly as the source does",
    help: "Check that the application accepts the target's type, or choose one with `{ type = \"...\" }`. \
           Values the target type cannot hold stop the run with their key; nothing is truncated silently.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
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
        if let Some(native) = enumerated.filter(|_| !a.target.capabilities.enum_columns) {
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
        let tinyint_bool = a.source.capabilities.tinyint_booleans
            && c.desired == DataType::Bool
            && c.source_native.as_deref().is_some_and(|n| n.to_ascii_lowercase().starts_with("tinyint(1)"));
        if tinyint_bool && !a.target.capabilities.tinyint_booleans {
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

fn conversion_note(desired: &DataType, planned: &DataType, engine: ferry_core::EngineKind) -> (Severity, String) {
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

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        between, column, run,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags(
                    "a zone the target cannot keep",
                    || between("postgres", "mysql"),
                    |a| {
                        column(a, 2)["source_type"] = json!({ "kind": "timestamp_tz" });
                        column(a, 2)["desired"] = json!({ "kind": "timestamp_tz" });
                    },
                ),
                Flags(
                    "unbounded text a key needs bounded",
                    || between("postgres", "mysql"),
                    |a| {
                        column(a, 1)["desired"] = json!({ "kind": "text", "max_chars": null });
                        column(a, 1)["planned"] = json!({ "kind": "text", "max_chars": 768 });
                    },
                ),
                Flags(
                    "a MySQL enum to PostgreSQL",
                    || between("mysql", "postgres"),
                    |a| {
                        column(a, 1)["source_native"] = json!("enum('new','paid')");
                    },
                ),
                Flags(
                    "a MySQL tinyint(1) boolean to PostgreSQL",
                    || between("mysql", "postgres"),
                    |a| {
                        column(a, 2)["source_native"] = json!("tinyint(1)");
                        column(a, 2)["source_type"] = json!({ "kind": "bool" });
                        column(a, 2)["desired"] = json!({ "kind": "bool" });
                        column(a, 2)["planned"] = json!({ "kind": "bool" });
                    },
                ),
                Passes(
                    "a MySQL enum to MySQL",
                    || between("mysql", "mysql"),
                    |a| {
                        column(a, 1)["source_native"] = json!("enum('new','paid')");
                    },
                ),
                Passes(
                    "a MySQL tinyint(1) boolean to MySQL",
                    || between("mysql", "mysql"),
                    |a| {
                        column(a, 2)["source_native"] = json!("tinyint(1)");
                        column(a, 2)["source_type"] = json!({ "kind": "bool" });
                        column(a, 2)["desired"] = json!({ "kind": "bool" });
                        column(a, 2)["planned"] = json!({ "kind": "bool" });
                    },
                ),
                Passes("every type kept as it is", || between("mysql", "postgres"), |_| {}),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
