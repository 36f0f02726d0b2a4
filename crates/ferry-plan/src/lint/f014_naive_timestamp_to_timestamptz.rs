//! F014 naive-timestamp-to-timestamptz: times without a zone become instants with one.

use super::{columns, Finding, Rule, Severity};
use crate::facts::Assessment;
use ferry_core::types::DataType;

pub(super) const RULE: Rule = Rule {
    code: "F014",
    name: "naive-timestamp-to-timestamptz",
    summary: "Times without a zone become instants with one",
    help: "A `datetime` or `timestamp without time zone` says nothing about its zone; a `timestamptz` is an \
           instant. Ferry reads the naive values as UTC. Say so with `\"<column>.zone\" = \"UTC\"` under \
           [table.translate], or convert them from their real zone with a computed column.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    columns(a)
        .filter(|(_, c)| {
            c.source_type == Some(DataType::Timestamp) && c.desired == DataType::TimestampTz && c.assumed_zone.is_none()
        })
        .map(|(t, c)| {
            let src = c.source_column.as_deref().unwrap_or(&c.name);
            rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!(
                    "`{src}` ({}) holds times without a zone and becomes timestamptz: Ferry reads them as UTC. Say \
                     so with [table.translate] \"{src}.zone\" = \"UTC\", or convert them from their zone with a \
                     computed column",
                    c.source_native.as_deref().unwrap_or("timestamp")
                ),
            )
        })
        .collect()
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
                Flags("a naive timestamp made timestamptz", clean, |a| {
                    column(a, 2)["desired"] = json!({ "kind": "timestamp_tz" });
                    column(a, 2)["planned"] = json!({ "kind": "timestamp_tz" });
                }),
                Passes("its zone said", clean, |a| {
                    column(a, 2)["desired"] = json!({ "kind": "timestamp_tz" });
                    column(a, 2)["planned"] = json!({ "kind": "timestamp_tz" });
                    column(a, 2)["assumed_zone"] = json!("UTC");
                }),
                Passes("kept naive", clean, |_| {}),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
