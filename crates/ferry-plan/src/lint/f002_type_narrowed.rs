//! F002 type-narrowed: a column's type narrows, or changes to one its values may not convert to.

use super::{columns, Finding, Rule, Severity};
use crate::facts::Assessment;
use ferry_core::types::{widens_to, DataType};

pub(super) const RULE: Rule = Rule {
    code: "F002",
    name: "type-narrowed",
    summary: "A column's type narrows, or changes to one its values may not convert to",
    help: "Values that do not fit the new type stop the run with their key. Measure first (e.g. the longest value, \
           the largest number), widen the target type with `{ type = \"...\" }`, or clean the source. \
           `on_conversion_error = \"quarantine\"` copies the rest and lists the rows that failed.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
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

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        clean, column, run,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags("text narrowed", clean, |a| {
                    column(a, 1)["desired"] = json!({ "kind": "text", "max_chars": 50 });
                    column(a, 1)["planned"] = json!({ "kind": "text", "max_chars": 50 });
                }),
                Flags("text to a number", clean, |a| {
                    column(a, 1)["desired"] = json!({ "kind": "int64" });
                    column(a, 1)["planned"] = json!({ "kind": "int64" });
                }),
                Flags("bigint to int", clean, |a| {
                    column(a, 0)["desired"] = json!({ "kind": "int32" });
                    column(a, 0)["planned"] = json!({ "kind": "int32" });
                }),
                Passes("text widened", clean, |a| {
                    column(a, 1)["desired"] = json!({ "kind": "text", "max_chars": 500 })
                }),
                Passes("text unbounded", clean, |a| {
                    column(a, 1)["desired"] = json!({ "kind": "text", "max_chars": null })
                }),
                Passes("a number to text", clean, |a| {
                    column(a, 0)["desired"] = json!({ "kind": "text", "max_chars": null })
                }),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
