//! F016 schema-item-not-kept: an identity, a foreign-key action or a comment the target cannot keep.

use super::{schema_problems, Finding, Rule};
use crate::facts::{Assessment, SchemaProblemClass};

pub(super) const RULE: Rule = Rule {
    code: "F016",
    name: "schema-item-not-kept",
    summary: "An identity, a foreign-key action or a comment the target cannot keep",
    help: "SQLite numbers only a single INTEGER PRIMARY KEY; MySQL/MariaDB numbers only integers and has no SET \
           DEFAULT action; SQLite keeps no comments. The finding says what the application loses and the spec \
           line that settles it.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    schema_problems(rule, a, SchemaProblemClass::NotKept)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        clean, problem, run, table,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags("an identity it cannot translate", clean, |a| {
                    table(a)["schema"] = json!([problem("identity", "not_kept")])
                }),
                Flags("one it can keep only in part (information)", clean, |a| {
                    let mut item = problem("identity", "not_kept");
                    item["problem"]["info"] = json!(true);
                    table(a)["schema"] = json!([item]);
                }),
                Passes("an identity translated", clean, |a| {
                    let mut item = problem("identity", "not_kept");
                    item["problem"] = json!(null);
                    table(a)["schema"] = json!([item]);
                }),
                Passes("another class of problem", clean, |a| {
                    table(a)["schema"] = json!([problem("identity", "index")])
                }),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
