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
    #[test]
    fn cases() {
        let said = super::super::fixture::schema_problem_cases(super::RULE.code, "identity", "an identity", "not_kept");
        insta::assert_snapshot!(said);
    }
}
