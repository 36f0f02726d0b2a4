//! F015 generated-column-not-translated: a generated column the target cannot compute the same way.

use super::{schema_problems, Finding, Rule};
use crate::facts::{Assessment, SchemaProblemClass};

pub(super) const RULE: Rule = Rule {
    code: "F015",
    name: "generated-column-not-translated",
    summary: "A generated column the target cannot compute the same way",
    help: "Ferry recreates a generated column when its expression means the same on the target; otherwise the \
           values are copied into a plain column, which the application must then write. Give the target's \
           expression with `\"<column>.generated\" = \"...\"`, or accept the plain column with `\"\"`.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    schema_problems(rule, a, SchemaProblemClass::Generated)
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
                Flags("a generated column it cannot translate", clean, |a| {
                    table(a)["schema"] = json!([problem("generated", "generated")])
                }),
                Flags("one it can keep only in part (information)", clean, |a| {
                    let mut item = problem("generated", "generated");
                    item["problem"]["info"] = json!(true);
                    table(a)["schema"] = json!([item]);
                }),
                Passes("a generated column translated", clean, |a| {
                    let mut item = problem("generated", "generated");
                    item["problem"] = json!(null);
                    table(a)["schema"] = json!([item]);
                }),
                Passes("another class of problem", clean, |a| {
                    table(a)["schema"] = json!([problem("generated", "index")])
                }),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
