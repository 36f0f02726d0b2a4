//! F020 key-collision: several source rows have one key as the target compares keys.

use super::{Finding, Rule, Severity};
use crate::facts::Assessment;

pub(super) const RULE: Rule = Rule {
    code: "F020",
    name: "key-collision",
    summary: "Several source rows have one key as the target compares keys",
    help: "On the target, rows that share a key overwrite each other (or stop the copy). Either the key is \
           not unique on the source (no constraint enforces it), or the target compares text keys more \
           loosely: MariaDB before 10.10 ignores trailing spaces, and an existing target table whose key \
           has a case-insensitive collation (`utf8mb4_general_ci`) ignores case. Choose a key that is \
           unique with `key = [...]`, give the existing target key a binary collation, or clean the \
           listed values on the source first; `ferry run` stops before copying such a table.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    a.tables
        .iter()
        .filter_map(|t| {
            let c = t.key_collisions.as_ref().filter(|c| c.groups > 0)?;
            Some(rule.finding(
                Severity::Error,
                t,
                None,
                format!(
                    "{} key value(s) of `{}` ({}) are shared by several rows, compared {}: first {}",
                    c.groups,
                    t.source,
                    t.key.join(", "),
                    c.comparison,
                    c.first.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
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
                Flags("keys that collide on the target", clean, |a| {
                    table(a)["key_collisions"] =
                        json!({ "comparison": "ignoring case", "groups": 2, "first": ["Ann", "BOB"] });
                }),
                Passes("compared, and none collide", clean, |a| {
                    table(a)["key_collisions"] = json!({ "comparison": "ignoring case", "groups": 0, "first": [] });
                }),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
