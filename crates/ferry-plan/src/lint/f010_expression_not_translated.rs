//! F010 expression-not-translated: a default, ON UPDATE or CHECK uses SQL the target does not have.

use super::{schema_problems, Finding, Rule};
use crate::facts::{Assessment, SchemaProblemClass};

pub(super) const RULE: Rule = Rule {
    code: "F010",
    name: "expression-not-translated",
    summary: "A default, ON UPDATE or CHECK uses SQL the target does not have",
    help: "Ferry translates expressions whose meaning is the same on both engines (columns, literals, IN lists, \
           LIKE, comparisons, lower/upper/coalesce/length and a few more). Anything else is not created on the \
           target, so that nothing means something else there. Write the target's SQL for it under \
           [table.translate], or \"\" to go without it knowingly.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    schema_problems(rule, a, SchemaProblemClass::Expression)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cases() {
        let said = super::super::fixture::schema_problem_cases(super::RULE.code, "default", "a default", "expression");
        insta::assert_snapshot!(said);
    }
}
