//! F006 foreign-key-validation-locks: a foreign key is added to a live table and validated under a lock.

use super::{rebuilt_columns, Finding, Rule, Severity};
use crate::facts::{Assessment, Shape};

pub(super) const RULE: Rule = Rule {
    code: "F006",
    name: "foreign-key-validation-locks",
    summary: "A foreign key is added to a live table and validated under a lock",
    help: "PostgreSQL can add a foreign key NOT VALID and VALIDATE it later without blocking writes (Ferry does). \
           MySQL/MariaDB validate while they hold a lock on the table. Add it in a quiet period or a window, or \
           rely on the application until contract.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    if a.shape != Shape::InPlace
        || !a.target.capabilities.adds_foreign_keys_later
        || a.target.capabilities.validates_foreign_keys_online
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    for t in &a.tables {
        for (c, src) in rebuilt_columns(t).filter(|(_, src)| t.in_foreign_key(src)) {
            out.push(rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!(
                    "`{src}` is in a foreign key: the key is added again for `{}` on the live table and validated under a lock ({} rows)",
                    c.name, t.rows
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        column, in_place, run, table,
        Case::{Flags, Passes},
    };
    use serde_json::{json, Value};

    /// `email` is in a foreign key to `accounts`, and renamed.
    const FK_RENAMED: fn(&mut Value) = |a| {
        table(a)["foreign_keys_out"] = json!([{
            "name": "users_account", "columns": ["email"],
            "ref_table": { "schema": null, "name": "accounts" }, "ref_columns": ["email"]
        }]);
        column(a, 1)["name"] = json!("login");
    };

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags("a column of a foreign key renamed in place on MySQL", || in_place("mysql"), FK_RENAMED),
                Passes("the same on PostgreSQL (NOT VALID, then VALIDATE)", || in_place("postgres"), FK_RENAMED),
                Passes("the same on SQLite (a rebuild: F008)", || in_place("sqlite"), FK_RENAMED),
                Passes(
                    "a column outside the foreign key renamed on MySQL",
                    || in_place("mysql"),
                    |a| {
                        FK_RENAMED(a);
                        column(a, 1)["name"] = json!("email");
                        column(a, 2)["name"] = json!("created");
                    },
                ),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
