//! F021 target-has-rows: an existing target table already holds rows.

use super::{Finding, Rule, Severity};
use crate::facts::Assessment;

pub(super) const RULE: Rule = Rule {
    code: "F021",
    name: "target-has-rows",
    summary: "An existing target table already holds rows",
    help: "Ferry copies into an existing table with upserts: a row whose key the source also has is \
           overwritten, the others stay, and verification then finds them as differences. Empty the table \
           first, copy into another with `to = \"...\"`, or accept keeping them with \
           `existing_rows = \"merge\"` in the table's [[table]] entry.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    a.tables
        .iter()
        .filter_map(|t| {
            let rows = t.target_rows.filter(|n| *n > 0)?;
            let (severity, answer) = if t.merge_existing_rows {
                (Severity::Info, "kept, as `existing_rows = \"merge\"` says; those with a source key are overwritten")
            } else {
                (Severity::Error, "the copy would overwrite those whose key the source has and keep the others")
            };
            Some(rule.finding(
                severity,
                t,
                None,
                format!("the existing target table `{}` already holds {rows} row(s): {answer}", t.target),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        clean, run, table,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags("a target that holds rows", clean, |a| {
                    table(a)["target_exists"] = json!(true);
                    table(a)["target_rows"] = json!(12);
                }),
                Flags("a target that holds rows, merged (information)", clean, |a| {
                    table(a)["target_exists"] = json!(true);
                    table(a)["target_rows"] = json!(12);
                    table(a)["merge_existing_rows"] = json!(true);
                }),
                Passes("an existing empty target", clean, |a| {
                    table(a)["target_exists"] = json!(true);
                    table(a)["target_rows"] = json!(0);
                }),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
