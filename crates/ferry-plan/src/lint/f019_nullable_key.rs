//! F019 nullable-key: a key column the rows are copied by can be NULL.

use super::{Finding, Rule, Severity};
use crate::facts::{Assessment, TableFacts};

pub(super) const RULE: Rule = Rule {
    code: "F019",
    name: "nullable-key",
    summary: "A key column the rows are copied by can be NULL",
    help: "Ferry copies, replays and verifies rows by their key: a NULL key cannot be read in key order, \
           found again by a change, or matched by verification. Fill the NULLs and make the column NOT NULL \
           on the source, or name other columns with `key = [...]`, or leave those rows out with \
           `filter = \"col IS NOT NULL\"`.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    let nullable = |t: &TableFacts| -> Vec<String> {
        t.key
            .iter()
            .filter(|k| t.columns.iter().any(|c| c.source_column.as_deref() == Some(k.as_str()) && c.source_nullable))
            .cloned()
            .collect()
    };
    a.tables
        .iter()
        .filter_map(|t| {
            let columns = nullable(t);
            let rows = t.null_key_rows?;
            let (severity, what) = match rows {
                0 => (Severity::Warning, "no row has a NULL there yet, but a new one would stop the sync".to_string()),
                n => (Severity::Error, format!("{n} row(s) have a NULL there and cannot be copied by key")),
            };
            Some(rule.finding(
                severity,
                t,
                columns.first().map(String::as_str),
                format!(
                    "`{}` is copied by key ({}), and {} can be NULL: {what}",
                    t.source,
                    t.key.join(", "),
                    columns.join(", ")
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        clean, column, run, table,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags("NULL in the key", clean, |a| {
                    column(a, 0)["source_nullable"] = json!(true);
                    table(a)["null_key_rows"] = json!(2);
                }),
                Flags("a nullable key with no NULL yet", clean, |a| {
                    column(a, 0)["source_nullable"] = json!(true);
                    table(a)["null_key_rows"] = json!(0);
                }),
                Passes("a key NOT NULL (not counted)", clean, |_| {}),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
