//! F005 index-build-locks-writes: an index is built on a live table by an engine that blocks writes while it builds.

use super::{estimate, rebuilt_columns, Finding, Rule, Severity};
use crate::facts::{Assessment, Shape};

pub(super) const RULE: Rule = Rule {
    code: "F005",
    name: "index-build-locks-writes",
    summary: "An index is built on a live table by an engine that blocks writes while it builds",
    help: "While the index builds, writes wait. On PostgreSQL Ferry uses CREATE INDEX CONCURRENTLY and on \
           MySQL/MariaDB ALGORITHM=INPLACE, LOCK=NONE; SQLite has no online build. Schedule the build in a quiet \
           period or a window, or move the table instead of changing it in place.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    if a.shape != Shape::InPlace || a.target.capabilities.builds_indexes_online {
        return Vec::new();
    }
    let mut out = Vec::new();
    for t in &a.tables {
        for (c, src) in rebuilt_columns(t).filter(|(_, src)| t.is_indexed(src)) {
            let estimate = estimate(t.rows, t.throughput.as_ref().map(|p| p.write_rows_per_second));
            out.push(rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!("the index on `{src}` must be rebuilt for `{}` on the live table: writers wait about {estimate} ({} rows)", c.name, t.rows),
            ));
        }
        for index in &t.added_indexes {
            let estimate = estimate(t.rows, t.throughput.as_ref().map(|p| p.write_rows_per_second));
            out.push(rule.finding(
                Severity::Warning,
                t,
                None,
                format!(
                    "`add_index = \"{}\"` builds on the live table: writers wait about {estimate} ({} rows)",
                    index.name, t.rows
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        between, column, in_place, run, table,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags(
                    "an indexed column renamed in place on SQLite",
                    || in_place("sqlite"),
                    |a| {
                        table(a)["indexes"] = json!([["email"]]);
                        column(a, 1)["name"] = json!("login");
                    },
                ),
                Flags(
                    "an index added in place on SQLite",
                    || in_place("sqlite"),
                    |a| {
                        table(a)["added_indexes"] =
                            json!([{ "name": "users_email", "columns": ["email"], "unique": false }]);
                    },
                ),
                Passes(
                    "an index added in place on PostgreSQL (concurrently)",
                    || in_place("postgres"),
                    |a| {
                        table(a)["added_indexes"] =
                            json!([{ "name": "users_email", "columns": ["email"], "unique": false }]);
                    },
                ),
                Passes(
                    "an index added in place on MySQL (in place, no lock)",
                    || in_place("mysql"),
                    |a| {
                        table(a)["added_indexes"] =
                            json!([{ "name": "users_email", "columns": ["email"], "unique": false }]);
                    },
                ),
                Passes(
                    "an index on a table move to SQLite",
                    || between("postgres", "sqlite"),
                    |a| {
                        table(a)["indexes"] = json!([["email"]]);
                        column(a, 1)["name"] = json!("login");
                    },
                ),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
