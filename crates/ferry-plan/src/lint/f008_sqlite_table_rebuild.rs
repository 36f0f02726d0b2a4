//! F008 sqlite-table-rebuild: a large SQLite table must be rebuilt for the change.

use super::{estimate, Finding, Rule, Severity};
use crate::facts::{Assessment, Shape};

pub(super) const RULE: Rule = Rule {
    code: "F008",
    name: "sqlite-table-rebuild",
    summary: "A large SQLite table must be rebuilt for the change",
    help: "SQLite changes a column's type, adds NOT NULL or a foreign key only by rebuilding the table: a full copy \
           under an exclusive lock, during which every writer waits. Do it in a window sized from the estimate, or \
           move the data to a new table with `to = \"...\"` and cut over.",
    check,
};

/// From this many rows a SQLite rebuild is worth a finding.
const SQLITE_LARGE_ROWS: u64 = 100_000;

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    if a.shape != Shape::InPlace || !a.target.capabilities.alters_by_rebuilding {
        return Vec::new();
    }
    a.tables
        .iter()
        .filter(|t| t.rows >= SQLITE_LARGE_ROWS)
        .filter_map(|t| {
            let reasons: Vec<String> = t
                .columns
                .iter()
                .filter_map(|c| {
                    let src = c.source_column.as_deref()?;
                    if c.source_type.as_ref().is_some_and(|s| s != &c.desired) {
                        Some(format!("`{src}` changes type"))
                    } else if !c.nullable && c.source_nullable {
                        Some(format!("`{}` becomes NOT NULL", c.name))
                    } else if c.renamed_from().is_some() && t.in_foreign_key(src) {
                        Some(format!("`{src}` is in a foreign key"))
                    } else {
                        None
                    }
                })
                .collect();
            (!reasons.is_empty()).then(|| {
                let estimate = estimate(t.rows, t.throughput.as_ref().map(|p| p.write_rows_per_second));
                rule.finding(
                    Severity::Warning,
                    t,
                    None,
                    format!(
                        "rebuilding `{}` ({} rows) holds an exclusive lock for about {estimate}: {}",
                        t.source,
                        t.rows,
                        reasons.join(", ")
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        column, in_place, run, table,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags(
                    "a type changed in place on a large SQLite table",
                    || in_place("sqlite"),
                    |a| {
                        table(a)["rows"] = json!(100_000);
                        column(a, 1)["desired"] = json!({ "kind": "text", "max_chars": 300 });
                        column(a, 1)["planned"] = json!({ "kind": "text", "max_chars": 300 });
                    },
                ),
                Flags(
                    "NOT NULL added in place on a large SQLite table",
                    || in_place("sqlite"),
                    |a| {
                        table(a)["rows"] = json!(250_000);
                        column(a, 1)["source_nullable"] = json!(true);
                    },
                ),
                Passes(
                    "one row fewer than large",
                    || in_place("sqlite"),
                    |a| {
                        table(a)["rows"] = json!(99_999);
                        column(a, 1)["desired"] = json!({ "kind": "text", "max_chars": 300 });
                        column(a, 1)["planned"] = json!({ "kind": "text", "max_chars": 300 });
                    },
                ),
                Passes(
                    "the same change on PostgreSQL",
                    || in_place("postgres"),
                    |a| {
                        table(a)["rows"] = json!(100_000);
                        column(a, 1)["desired"] = json!({ "kind": "text", "max_chars": 300 });
                        column(a, 1)["planned"] = json!({ "kind": "text", "max_chars": 300 });
                    },
                ),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
