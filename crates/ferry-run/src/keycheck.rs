//! Keys that cannot carry a copy, found at plan time: NULLs in a key
//! column, and values several rows share as the target compares keys.

use crate::error::{Result, RunError, RunErrorKind};
use crate::mapping::TablePlan;
use ferry_core::plan::KeyCollisions;
use ferry_core::{DataType, Row, Value};
use ferry_engine::sql::Dialect;
use ferry_engine::Engine;

/// How many collisions are listed by name.
const LISTED: usize = 5;

/// Rows with a NULL in a key column (within the filter); `None` when the
/// source declares every key column NOT NULL.
pub async fn null_key_rows(source: &dyn Engine, plan: &TablePlan) -> Result<Option<u64>> {
    let q = Dialect::of(source.kind());
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

/// Key values more than one row shares, compared as the target will: exactly
/// where no constraint enforces the key, ignoring trailing spaces where the
/// target pads. `None` when the source's constraints and the target's
/// comparison rule collisions out.
pub async fn key_collisions(
    source: &dyn Engine,
    target: &dyn Engine,
    plan: &TablePlan,
    key_enforced: bool,
) -> Result<Option<KeyCollisions>> {
    let is_text = |k: &String| plan.source.column(k).is_some_and(|c| matches!(c.data_type, DataType::Text { .. }));
    let padded = target.pads_trailing_spaces() && !source.pads_trailing_spaces() && plan.key_source.iter().any(is_text);
    if plan.key_source.is_empty() || (key_enforced && !padded) {
        return Ok(None);
    }
    let q = Dialect::of(source.kind());
    let compared: Vec<String> = plan
        .key_source
        .iter()
        .map(|k| if padded && is_text(k) { format!("rtrim({})", q.ident(k)) } else { q.ident(k) })
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
    let comparison = if padded { "ignoring trailing spaces" } else { "exactly" };
    Ok(Some(KeyCollisions { comparison: comparison.into(), groups, first }))
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
