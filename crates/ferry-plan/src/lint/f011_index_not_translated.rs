//! F011 index-not-translated: a partial, expression or non-B-tree index the target cannot create.

use super::{schema_problems, Finding, Rule};
use crate::facts::{Assessment, SchemaProblemClass};

pub(super) const RULE: Rule = Rule {
    code: "F011",
    name: "index-not-translated",
    summary: "A partial, expression or non-B-tree index the target cannot create",
    help: "MySQL/MariaDB has no partial indexes and MariaDB no indexes on expressions; only PostgreSQL has gin, \
           gist, brin and hash indexes. A unique one also stops being enforced. Leave it out knowingly with \
           `\"<index>\" = \"\"` under [table.translate] and add an index of your own after the load, or keep \
           the data on an engine that has it.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    schema_problems(rule, a, SchemaProblemClass::Index)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cases() {
        let said = super::super::fixture::schema_problem_cases(super::RULE.code, "index", "an index", "index");
        insta::assert_snapshot!(said);
    }
}
