//! F018 rollback-not-lossless: the spec asks for a lossless rollback, but the mapping cannot be written back.

use super::{Finding, Rule, Severity};
use crate::facts::{Assessment, Shape};

pub(super) const RULE: Rule = Rule {
    code: "F018",
    name: "rollback-not-lossless",
    summary: "The spec asks for a lossless rollback, but the mapping cannot be written back",
    help: "After the switch, reverse sync writes the target's rows back into the source through the inverted \
           mapping, so that a rollback loses nothing. Renames and type changes invert; a computed column, or a \
           source column that is not copied, does not. `ferry switch` refuses such a mapping under \
           `rollback = \"lossless\"`. Copy every column plainly, or accept the loss with \
           `rollback = \"loss-accepted-after-switch\"`.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    if !a.rollback_lossless || a.shape != Shape::TableMove {
        return Vec::new();
    }
    a.tables
        .iter()
        .filter_map(|t| {
            let why = t.not_invertible.as_ref()?;
            Some(rule.finding(
                Severity::Error,
                t,
                None,
                format!(
                    "`rollback = \"lossless\"`, but writes made on {} after the switch cannot reach {}: {why}",
                    t.target, t.source
                ),
            ))
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
                Flags("lossless asked, a computed column", clean, |a| {
                    a["rollback_lossless"] = json!(true);
                    table(a)["not_invertible"] = json!("`email` is computed (lower(email)) and cannot be written back");
                }),
                Passes("loss accepted", clean, |a| {
                    table(a)["not_invertible"] = json!("`email` is computed (lower(email)) and cannot be written back");
                }),
                Passes("lossless asked, every column plain", clean, |a| a["rollback_lossless"] = json!(true)),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
