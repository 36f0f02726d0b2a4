//! Keys that cannot carry a copy, found at plan time: NULLs in a key
//! column, and values several rows share as the target compares keys.

use crate::error::{Result, RunError, RunErrorKind};
use crate::mapping::TablePlan;
use ferry_core::{DataType, Row, Value};
use ferry_engine::Engine;
use ferry_plan::KeyCollisions;

/// How many collisions are listed by name.
const LISTED: usize = 5;

/// Rows with a NULL in a key column (within the filter); `None` when the
/// source declares every key column NOT NULL.
pub async fn null_key_rows(source: &dyn Engine, plan: &TablePlan) -> Result<Option<u64>> {
    let q = source.sql_dialect();
    let nullable: Vec<String> = plan
        .key_source
        .iter()
        .filter(|k| plan.source.column(k).is_some_and(|c| c.nullable))
        .map(|k| format!("{} IS NULL", q.ident(k)))
        .collect();
    if nullable.is_empty() {
        return Ok(None);
    }
    let nulls = nullable.join(" OR ");
    let filter = match &plan.read.filter {
        Some(f) => format!("({f}) AND ({nulls})"),
        None => nulls,
    };
    Ok(Some(source.count(&plan.source_name, Some(&filter)).await?))
}

/// How the target compares the key's text columns, where it differs from
/// the source: a case-insensitive collation of an existing target table
/// (`'A'` = `'a'`), and trailing spaces ignored (`PAD SPACE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyComparison {
    pub ignores_case: bool,
    pub ignores_trailing_spaces: bool,
}

impl KeyComparison {
    fn describe(self) -> &'static str {
        match (self.ignores_case, self.ignores_trailing_spaces) {
            (false, false) => "exactly",
            (true, false) => "ignoring case",
            (false, true) => "ignoring trailing spaces",
            (true, true) => "ignoring case and trailing spaces",
        }
    }
}

/// How the target will compare `plan`'s key, against how the source does:
/// from the existing target table's key collations, or from the engine's
/// tables when Ferry creates it. Case is folded with `lower()`, which
/// misses accent-insensitive equality (`'a'` = `'á'`).
pub async fn target_key_comparison(
    source: &dyn Engine,
    target: &dyn Engine,
    plan: &TablePlan,
) -> Result<KeyComparison> {
    let text_keys: Vec<(&String, &String)> = plan
        .key_source
        .iter()
        .zip(&plan.key_target)
        .filter(|(k, _)| plan.source.column(k).is_some_and(|c| matches!(c.data_type, DataType::Text { .. })))
        .collect();
    if text_keys.is_empty() || plan.in_place {
        return Ok(KeyComparison::default());
    }
    let source_collation = |k: &str| plan.source.column(k).and_then(|c| c.collation.as_ref());
    let source_ci = |k: &str| source_collation(k).is_some_and(|c| c.case_insensitive);
    let pads = |engine: &dyn Engine| engine.capabilities().pads_trailing_spaces;
    let source_pads = |k: &str| pads(source) || source_collation(k).is_some_and(|c| source.collation_pads(&c.name));
    let mut comparison = KeyComparison { ignores_case: false, ignores_trailing_spaces: pads(target) && !pads(source) };
    if target.table_exists(&plan.target_name).await? {
        let existing = target.introspect(&plan.target_name).await?;
        comparison.ignores_trailing_spaces = false;
        for (source_key, target_key) in text_keys {
            let Some(collation) = existing.column(target_key).and_then(|c| c.collation.as_ref()) else { continue };
            comparison.ignores_case |= collation.case_insensitive && !source_ci(source_key);
            comparison.ignores_trailing_spaces |= target.collation_pads(&collation.name) && !source_pads(source_key);
        }
    }
    Ok(comparison)
}

/// Key values more than one row shares, compared as the target will
/// (`comparison`). `None` when the source's constraints rule collisions out.
pub async fn key_collisions(
    source: &dyn Engine,
    plan: &TablePlan,
    key_enforced: bool,
    comparison: KeyComparison,
) -> Result<Option<KeyCollisions>> {
    let is_text = |k: &String| plan.source.column(k).is_some_and(|c| matches!(c.data_type, DataType::Text { .. }));
    let folded = comparison != KeyComparison::default();
    if plan.key_source.is_empty() || (key_enforced && !folded) {
        return Ok(None);
    }
    let q = source.sql_dialect();
    let compared: Vec<String> = plan
        .key_source
        .iter()
        .map(|k| {
            let mut expr = q.ident(k);
            if is_text(k) && comparison.ignores_trailing_spaces {
                expr = format!("rtrim({expr})");
            }
            if is_text(k) && comparison.ignores_case {
                expr = format!("lower({expr})");
            }
            expr
        })
        .collect();
    let not_null: Vec<String> = plan.key_source.iter().map(|k| format!("{} IS NOT NULL", q.ident(k))).collect();
    let mut filter = not_null.join(" AND ");
    if let Some(f) = &plan.read.filter {
        filter = format!("({f}) AND {filter}");
    }
    let list = compared.join(", ");
    let shared = format!(
        "SELECT concat_ws(' | ', {list}) AS k FROM {} WHERE {filter} GROUP BY {list} HAVING COUNT(*) > 1",
        q.table(&plan.source_name)
    );
    let count = |sql: String| async move { source.scalar(&sql).await };
    let groups: u64 =
        count(format!("SELECT COUNT(*) FROM ({shared}) d")).await?.and_then(|n| n.parse().ok()).unwrap_or(0);
    let mut first = Vec::new();
    for i in 0..groups.min(LISTED as u64) {
        let sql = format!("SELECT k FROM ({shared}) d ORDER BY k LIMIT 1 OFFSET {i}");
        first.extend(source.scalar(&sql).await?);
    }
    Ok(Some(KeyCollisions { comparison: comparison.describe().into(), groups, first }))
}

/// Before a table's backfill, where the target compares its key more
/// loosely than the source (case, trailing spaces): keys that would meet
/// on the target stop the copy, named, before one row overwrites another.
/// A batch sees only neighbours in key order, which such keys need not be.
pub async fn refuse_colliding_keys(source: &dyn Engine, target: &dyn Engine, plan: &TablePlan) -> Result<()> {
    let comparison = target_key_comparison(source, target, plan).await?;
    if comparison == KeyComparison::default() {
        return Ok(());
    }
    let Some(collisions) = key_collisions(source, plan, false, comparison).await? else { return Ok(()) };
    if collisions.groups == 0 {
        return Ok(());
    }
    Err(RunError::new(
        RunErrorKind::Spec,
        format!(
            "{}: {} key values ({}) are shared by several rows when compared as the target compares them ({}): \
             first {}; one row would overwrite another",
            plan.source_name,
            collisions.groups,
            plan.key_source.join(", "),
            collisions.comparison,
            collisions.first.join("; ")
        ),
    )
    .with_hint(
        "run `ferry plan`: finding F020 says how to settle them (a binary collation on the target key, or another key)",
    ))
}

/// A batch read in key order whose key has a NULL, or repeats: the copy
/// would lose rows without a word, so it stops here and names the key.
pub fn refuse_unusable_keys(plan: &TablePlan, rows: &[Row]) -> Result<()> {
    let keys: Vec<Vec<Value>> = rows.iter().map(|row| plan.read.key_of(row)).collect();
    let shown = |key: &[Value]| key.iter().map(Value::to_string).collect::<Vec<_>>().join(" | ");
    let columns = plan.key_source.join(", ");
    if let Some(key) = keys.iter().find(|k| k.iter().any(|v| matches!(v, Value::Null))) {
        return Err(RunError::new(
            RunErrorKind::Spec,
            format!(
                "{}: a row's key ({columns}) is NULL ({}): it cannot be copied by key",
                plan.source_name,
                shown(key)
            ),
        )
        .with_hint("run `ferry plan`: finding F019 counts these rows and says how to settle them"));
    }
    if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(RunError::new(
            RunErrorKind::Spec,
            format!(
                "{}: two rows have the key ({columns}) = ({}): one would overwrite the other",
                plan.source_name,
                shown(&pair[0])
            ),
        )
        .with_hint("run `ferry plan`: finding F020 lists the shared keys; name a unique key with `key = [...]`"));
    }
    Ok(())
}
