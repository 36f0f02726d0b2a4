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
    #[test]
    fn cases() {
        let said = super::super::fixture::schema_problem_cases(
            super::RULE.code,
            "generated",
            "a generated column",
            "generated",
        );
        insta::assert_snapshot!(said);
    }
}
