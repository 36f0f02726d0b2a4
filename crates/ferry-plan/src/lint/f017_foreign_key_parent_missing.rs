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
    #[test]
    fn cases() {
        let said = super::super::fixture::schema_problem_cases(
            super::RULE.code,
            "foreign_key",
            "a foreign key",
            "parent_missing",
        );
        insta::assert_snapshot!(said);
    }
}
