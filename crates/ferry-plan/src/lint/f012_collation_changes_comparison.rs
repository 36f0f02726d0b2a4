//! F012 collation-changes-comparison: text the source compares without regard to case is case-sensitive on the target.

use super::{Finding, Rule, Severity};
use crate::facts::{Assessment, SchemaItemKind, SchemaProblemClass};

pub(super) const RULE: Rule = Rule {
    code: "F012",
    name: "collation-changes-comparison",
    summary: "Text the source compares without regard to case is case-sensitive on the target",
    help: "MariaDB's default collations (`*_ci`), SQLite's NOCASE and PostgreSQL's citext compare 'A' and 'a' as \
           equal; the target's default does not. Ferry enforces unique keys on lower() where the target allows \
           it, but `=`, ORDER BY, GROUP BY and joins in the application's queries change meaning. Accept it with \
           `\"<column>.collation\" = \"\"`, or name a case-insensitive collation of the target.",
    check,
};

/// One finding per table: every case-insensitive column is the same story.
fn check(rule: &Rule, a: &Assessment) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in &a.tables {
        let items: Vec<_> = t
            .schema
            .iter()
            .filter(|i| i.problem.as_ref().is_some_and(|p| p.class == SchemaProblemClass::Collation))
            .collect();
        let Some(first) = items.first() else { continue };
        let names: Vec<String> = items.iter().map(|i| format!("`{}` ({})", i.name, i.source)).collect();
        let unique_on_lower: Vec<&str> = t
            .schema
            .iter()
            .filter(|i| i.kind == SchemaItemKind::Index && i.target.as_deref().is_some_and(|t| t.contains("lower(")))
            .filter(|i| i.note.as_deref().is_some_and(|n| n.contains("without case")))
            .map(|i| i.name.as_str())
            .collect();
        let resolve = first.problem.as_ref().map(|p| p.resolve.clone()).unwrap_or_default();
        let mut message = format!(
            "{} compare without regard to case on the source; on {} they are case-sensitive: `=`, ORDER BY, GROUP BY \
             and joins on them behave differently",
            names.join(", "),
            a.target.engine.title()
        );
        if !unique_on_lower.is_empty() {
            message.push_str(&format!("; unique keys {} are enforced on lower()", unique_on_lower.join(", ")));
        }
        message.push_str(&format!(". Settle it per column, e.g. {resolve}"));
        out.push(rule.finding(Severity::Warning, t, None, message));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{
        between, problem, run, table,
        Case::{Flags, Passes},
    };
    use serde_json::json;

    #[test]
    fn cases() {
        let said = run(
            super::RULE.code,
            &[
                Flags(
                    "a case-insensitive column",
                    || between("mysql", "postgres"),
                    |a| {
                        table(a)["schema"] = json!([problem("collation", "collation")]);
                    },
                ),
                Flags(
                    "a case-insensitive unique key enforced on lower()",
                    || between("mysql", "postgres"),
                    |a| {
                        let index = json!({
                            "kind": "index", "name": "users_email", "source": "UNIQUE (email)",
                            "target": "CREATE UNIQUE INDEX users_email ON users (lower(email))",
                            "note": "unique without case, as on the source"
                        });
                        table(a)["schema"] = json!([problem("collation", "collation"), index]);
                    },
                ),
                Passes(
                    "a collation the target keeps",
                    || between("mysql", "postgres"),
                    |a| {
                        let mut item = problem("collation", "collation");
                        item["problem"] = json!(null);
                        table(a)["schema"] = json!([item]);
                    },
                ),
            ],
        );
        insta::assert_snapshot!(said);
    }
}
