//! F013 zero-dates: mySQL/MariaDB zero dates that no other engine (and no strict MySQL) can hold.

use super::{columns, Finding, Rule, Severity};
use crate::facts::Assessment;

pub(super) const RULE: Rule = Rule {
    code: "F013",
    name: "zero-dates",
    summary: "MySQL/MariaDB zero dates that no other engine (and no strict MySQL) can hold",
    help: "`0000-00-00`, and dates with a zero month or day, are not dates: the copy stops at the first one with \
           its key. Map them to NULL with a computed column (the finding shows the expression), or fix them in \
           the source.",
    check,
};

fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    columns(a)
        .filter_map(|(t, c)| {
            let zero = c.zero_dates.filter(|z| z.rows > 0)?;
            let src = c.source_column.as_deref().unwrap_or(&c.name);
            let datetime = !c.source_native.as_deref().is_some_and(|n| n.eq_ignore_ascii_case("date"));
            let zero_literal = if datetime { "0000-00-00 00:00:00" } else { "0000-00-00" };
            let expr = if zero.whole == zero.rows {
                format!("NULLIF({src}, '{zero_literal}')")
            } else {
                format!("CASE WHEN MONTH({src}) = 0 OR DAYOFMONTH({src}) = 0 THEN NULL ELSE {src} END")
            };
            let ty = if datetime { "timestamp" } else { "date" };
            Some(rule.finding(
                Severity::Error,
                t,
                Some(&c.name),
                format!(
                    "`{src}` holds {} zero date(s) ({} of them `{zero_literal}`): the copy stops at the first. Map \
                     them to NULL under [table.columns]: {} = {{ expr = \"{expr}\", type = \"{ty}\" }}",
                    zero.rows, zero.whole, c.name
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        between, column, run,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags(
                    "zero dates, all of them 0000-00-00",
                    || between("mysql", "postgres"),
                    |a| {
                        column(a, 2)["source_native"] = json!("datetime(6)");
                        column(a, 2)["zero_dates"] = json!({ "rows": 4, "whole": 4 });
                    },
                ),
                Flags(
                    "zero months or days in a date",
                    || between("mysql", "postgres"),
                    |a| {
                        column(a, 2)["source_native"] = json!("date");
                        column(a, 2)["zero_dates"] = json!({ "rows": 4, "whole": 3 });
                    },
                ),
                Passes(
                    "counted, and none found",
                    || between("mysql", "postgres"),
                    |a| {
                        column(a, 2)["zero_dates"] = json!({ "rows": 0, "whole": 0 });
                    },
                ),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
