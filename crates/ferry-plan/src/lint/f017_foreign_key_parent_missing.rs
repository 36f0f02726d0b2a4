//! F017 foreign-key-parent-missing: a foreign key to a table that is neither moved nor on the target.

use super::{schema_problems, Finding, Rule};
use crate::facts::{Assessment, SchemaProblemClass};

pub(super) const RULE: Rule = Rule {
    code: "F017",
    name: "foreign-key-parent-missing",
    summary: "A foreign key to a table that is neither moved nor on the target",
    help: "Ferry recreates a foreign key to a table outside the migration when the target already has that \
           table. Here it does not, so the reference is not checked on the target. Add the parent to the \
           migration, or create it on the target and run the statement the finding shows.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    schema_problems(rule, a, SchemaProblemClass::ParentMissing)
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
                Flags("a foreign key it cannot translate", clean, |a| {
                    table(a)["schema"] = json!([problem("foreign_key", "parent_missing")])
                }),
                Flags("one it can keep only in part (information)", clean, |a| {
                    let mut item = problem("foreign_key", "parent_missing");
                    item["problem"]["info"] = json!(true);
                    table(a)["schema"] = json!([item]);
                }),
                Passes("a foreign key translated", clean, |a| {
                    let mut item = problem("foreign_key", "parent_missing");
                    item["problem"] = json!(null);
                    table(a)["schema"] = json!([item]);
                }),
                Passes("another class of problem", clean, |a| {
                    table(a)["schema"] = json!([problem("foreign_key", "index")])
                }),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
