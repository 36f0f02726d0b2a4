//! F001 column-renamed: a column is renamed.

use super::{columns, Finding, Rule, Severity};
use crate::facts::Assessment;

pub(super) const RULE: Rule = Rule {
    code: "F001",
    name: "column-renamed",
    summary: "A column is renamed",
    help: "Every reader of the old name breaks at once: application code, caches, API contracts, event payloads, \
           downstream ETL and reports. Find them first. Keep both names while they move (expand: add the new name; \
           keep both in step; move readers; contract: drop the old name), or keep the old name.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    columns(a)
        .filter_map(|(t, c)| {
            let old = c.renamed_from()?;
            Some(rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!("`{}.{old}` becomes `{}.{}`: who reads `{old}`?", t.source, t.target, c.name),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        clean, column, in_place, run,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags("a renamed column", clean, |a| column(a, 1)["name"] = json!("login")),
                Flags("a column renamed in place", || in_place("mysql"), |a| column(a, 1)["name"] = json!("login")),
                Passes("every column under its own name", clean, |_| {}),
                Passes("a computed column", clean, |a| {
                    column(a, 1)["source_column"] = json!(null);
                    column(a, 1)["expression"] = json!("lower(email)");
                }),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
