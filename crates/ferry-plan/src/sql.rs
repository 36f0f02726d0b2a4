//! SQL a plan shows that every engine writes alike, quoted its way; what
//! differs (backups, checksums, parameters) is each engine's [`PlanDialect`].

use super::facts::TableFacts;
use ferry_core::PlanDialect;

/// Rows of `name` (those `filter` keeps).
pub fn count(dialect: &dyn PlanDialect, name: &str, filter: Option<&str>) -> String {
    match filter {
        Some(f) => format!("SELECT count(*) FROM {} WHERE ({f});", dialect.table(name)),
        None => format!("SELECT count(*) FROM {};", dialect.table(name)),
    }
}

/// Rows of `child` whose foreign key points at no row of `parent`.
pub fn orphans(
    dialect: &dyn PlanDialect,
    child: &str,
    columns: &[String],
    parent: &str,
    ref_columns: &[String],
) -> String {
    let join: Vec<String> = columns
        .iter()
        .zip(ref_columns)
        .map(|(c, r)| format!("p.{} = c.{}", dialect.ident(r), dialect.ident(c)))
        .collect();
    let present: Vec<String> = columns.iter().map(|c| format!("c.{} IS NOT NULL", dialect.ident(c))).collect();
    format!(
        "SELECT count(*) FROM {} c LEFT JOIN {} p ON {} WHERE {} AND p.{} IS NULL;",
        dialect.table(child),
        dialect.table(parent),
        join.join(" AND "),
        present.join(" AND "),
        dialect.ident(&ref_columns[0])
    )
}

/// Rows of `name` with a NULL in one of `columns`.
pub fn nulls(dialect: &dyn PlanDialect, name: &str, columns: &[String]) -> String {
    let cond: Vec<String> = columns.iter().map(|c| format!("{} IS NULL", dialect.ident(c))).collect();
    format!("SELECT count(*) FROM {} WHERE {};", dialect.table(name), cond.join(" OR "))
}

/// The keyset read the backfill runs on the source, for one batch.
pub fn keyset_read(dialect: &dyn PlanDialect, t: &TableFacts, batch: usize) -> String {
    let select: Vec<String> = t
        .columns
        .iter()
        .map(|c| match (&c.expression, &c.source_column) {
            (Some(e), _) => format!("({e})"),
            (None, Some(s)) => dialect.ident(s),
            _ => "NULL".into(),
        })
        .collect();
    let key = t.key.iter().map(|k| dialect.ident(k)).collect::<Vec<_>>().join(", ");
    let after = match t.key.len() {
        1 => format!("{key} > {}", dialect.parameter(1)),
        n => format!("({key}) > ({})", (1..=n).map(|i| dialect.parameter(i)).collect::<Vec<_>>().join(", ")),
    };
    let filter = t.filter.as_deref().map(|f| format!("({f}) AND ")).unwrap_or_default();
    format!(
        "SELECT {} FROM {} WHERE {filter}{after} ORDER BY {key} LIMIT {batch};",
        select.join(", "),
        dialect.table(&t.source)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_quote_their_way() {
        assert_eq!(count(&ferry_mysql::PLAN_DIALECT, "a.b", None), "SELECT count(*) FROM `a`.`b`;");
        assert_eq!(
            nulls(&ferry_postgres::PLAN_DIALECT, "t", &["x".into(), "y".into()]),
            r#"SELECT count(*) FROM "t" WHERE "x" IS NULL OR "y" IS NULL;"#
        );
    }
}
