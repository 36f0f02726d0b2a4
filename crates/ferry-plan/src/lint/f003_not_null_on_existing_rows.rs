//! F003 not-null-on-existing-rows: nOT NULL without a default on a column whose existing rows may hold NULL.

use super::{columns, Finding, Rule, Severity};
use crate::facts::{Assessment, Shape};

pub(super) const RULE: Rule = Rule {
    code: "F003",
    name: "not-null-on-existing-rows",
    summary: "NOT NULL without a default on a column whose existing rows may hold NULL",
    help: "Existing rows must have a value before NOT NULL can hold. Add the column nullable, backfill it, then \
           enforce NOT NULL in contract (PostgreSQL: CHECK (col IS NOT NULL) NOT VALID, VALIDATE, then SET NOT NULL), \
           or give it a default, or fill the NULLs in the source.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    columns(a)
        .filter(|(_, c)| !c.nullable && (c.source_nullable || c.expression.is_some()))
        .filter_map(|(t, c)| match a.shape {
            Shape::TableMove => match c.null_rows {
                Some(0) => None,
                Some(n) => Some(rule.finding(
                    Severity::Error,
                    t,
                    Some(&c.name),
                    format!("`{}` is NOT NULL on the target but {n} source row(s) are NULL: the copy stops at the first", c.name),
                )),
                None => Some(rule.finding(
                    Severity::Warning,
                    t,
                    Some(&c.name),
                    format!("`{}` is NOT NULL on the target and its source allows NULL", c.name),
                )),
            },
            Shape::InPlace if t.rows > 0 && (c.renamed_from().is_some() || c.expression.is_some()) => Some(rule.finding(
                Severity::Warning,
                t,
                Some(&c.name),
                format!(
                    "`{}` is a new NOT NULL column on {} existing rows: it is added nullable, backfilled, and made NOT NULL in contract",
                    c.name, t.rows
                ),
            )),
            Shape::InPlace => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        clean, column, in_place, run, table,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags("NULLs counted in a column made NOT NULL", clean, |a| {
                    column(a, 1)["source_nullable"] = json!(true);
                    column(a, 1)["null_rows"] = json!(3);
                }),
                Flags("a nullable source column made NOT NULL, not counted", clean, |a| {
                    column(a, 1)["source_nullable"] = json!(true);
                }),
                Flags(
                    "a new NOT NULL column computed in place",
                    || in_place("postgres"),
                    |a| {
                        column(a, 1)["source_column"] = json!(null);
                        column(a, 1)["expression"] = json!("lower(email)");
                    },
                ),
                Passes("counted, and no row is NULL", clean, |a| {
                    column(a, 1)["source_nullable"] = json!(true);
                    column(a, 1)["null_rows"] = json!(0);
                }),
                Passes("nullable on both", clean, |a| {
                    column(a, 1)["source_nullable"] = json!(true);
                    column(a, 1)["nullable"] = json!(true);
                }),
                Passes(
                    "a new NOT NULL column in place on an empty table",
                    || in_place("postgres"),
                    |a| {
                        table(a)["rows"] = json!(0);
                        column(a, 1)["source_column"] = json!(null);
                        column(a, 1)["expression"] = json!("lower(email)");
                    },
                ),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
