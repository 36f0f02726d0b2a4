//! F004 dropped: a column or table goes away.

use super::{Finding, Rule, Severity};
use crate::facts::{Assessment, Shape};

pub(super) const RULE: Rule = Rule {
    code: "F004",
    name: "dropped",
    summary: "A column or table goes away",
    help: "Dropping is a contract-phase step only, after verification and soak: Ferry drops nothing before \
           `ferry contract --confirm`. Keep the old data readable for at least one release cycle, and move its \
           readers (views, foreign keys, triggers, jobs, reports) first.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in &a.tables {
        for col in &t.dropped_columns {
            let users: Vec<String> = t
                .dropped_column_users
                .iter()
                .filter(|d| &d.column == col)
                .map(|d| format!("{} {}", d.kind.name(), d.name))
                .collect();
            let (severity, message) = match a.shape {
                Shape::TableMove => {
                    (Severity::Warning, format!("`{}.{col}` is not copied: {} will not have it", t.source, t.target))
                }
                Shape::InPlace if users.is_empty() => (
                    Severity::Warning,
                    format!("`{}.{col}` is dropped, in contract only (the point of no return)", t.source),
                ),
                // Dropping it would fail (or, with CASCADE, take them along): contract must refuse until they change.
                Shape::InPlace => (
                    Severity::Error,
                    format!(
                        "`{}.{col}` is dropped in contract, but {} still use{} it: change {} first",
                        t.source,
                        users.join(", "),
                        if users.len() == 1 { "s" } else { "" },
                        if users.len() == 1 { "it" } else { "them" }
                    ),
                ),
            };
            out.push(rule.finding(severity, t, Some(col), message));
        }
        if a.shape == Shape::TableMove {
            let d = &t.dependents;
            let readers = d.views.len() + d.triggers.len() + d.foreign_keys_in.len();
            let (severity, tail) = if readers == 0 {
                (Severity::Info, "nothing in the database depends on it".to_string())
            } else {
                (
                    Severity::Warning,
                    format!(
                        "{} view(s), {} trigger(s) and {} foreign key(s) depend on it and must move first",
                        d.views.len(),
                        d.triggers.len(),
                        d.foreign_keys_in.len()
                    ),
                )
            };
            out.push(rule.finding(
                severity,
                t,
                None,
                format!("the old table `{}` is dropped in contract; {tail}", t.source),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        clean, in_place, run, table,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags("a column left out", clean, |a| table(a)["dropped_columns"] = json!(["legacy_flag"])),
                Flags("a view reads the old table", clean, |a| {
                    table(a)["dependents"]["views"] = json!(["active_users"]);
                }),
                Flags(
                    "a column dropped in place",
                    || in_place("postgres"),
                    |a| {
                        table(a)["dropped_columns"] = json!(["legacy_flag"]);
                    },
                ),
                Flags(
                    "a column dropped in place that a view still reads",
                    || in_place("postgres"),
                    |a| {
                        table(a)["dropped_columns"] = json!(["legacy_flag"]);
                        table(a)["dropped_column_users"] =
                            json!([{ "column": "legacy_flag", "kind": "view", "name": "active_users" }]);
                    },
                ),
                Passes("a change in place that drops nothing", || in_place("postgres"), |_| {}),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
