//! F007 table-without-key: the table has no primary key or unique key.

use super::{Finding, Rule, Severity};
use crate::facts::Assessment;

pub(super) const RULE: Rule = Rule {
    code: "F007",
    name: "table-without-key",
    summary: "The table has no primary key or unique key",
    help: "Without a key, rows cannot be copied in resumable batches, changes cannot be captured and replayed, \
           and verification cannot name a row. Add a primary key first (it is itself a migration), or name \
           columns whose values are unique with `key = [...]`.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    a.tables
        .iter()
        .filter_map(|t| {
            if t.key.is_empty() {
                Some(rule.finding(
                    Severity::Error,
                    t,
                    None,
                    format!("`{}` has no primary key or unique key: it cannot be copied in batches, captured or verified by row", t.source),
                ))
            } else if !t.key_enforced {
                Some(rule.finding(
                    Severity::Warning,
                    t,
                    None,
                    format!(
                        "`{}` is copied by key ({}) but no constraint enforces it: duplicate values would merge rows",
                        t.source,
                        t.key.join(", ")
                    ),
                ))
            } else {
                None
            }
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
                Flags("no key at all", clean, |a| {
                    table(a)["key"] = json!([]);
                    table(a)["primary_key"] = json!([]);
                }),
                Flags("a key no constraint enforces", clean, |a| table(a)["key_enforced"] = json!(false)),
                Passes("a primary key", clean, |_| {}),
                Passes("a unique key named with key = [...]", clean, |a| {
                    table(a)["primary_key"] = json!([]);
                    table(a)["unique_keys"] = json!([["email"]]);
                    table(a)["key"] = json!(["email"]);
                }),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
