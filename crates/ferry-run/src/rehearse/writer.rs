//! The rehearsal's built-in writer: a short load of the writes an
//! application makes (update, delete, insert), on the scratch source before
//! the switch and on the scratch target after it. It remembers what the
//! source must look like once the rollback has brought those writes back.

use super::seed::{key_text, SeededTable};
use crate::backfill::convert_row;
use crate::error::Result;
use crate::mapping::TablePlan;
use ferry_core::{DataType, Row, TableSchema, Value};
use ferry_engine::Engine;
use std::collections::BTreeMap;

/// What the writer did to one table, and the rows the source must end with.
pub struct Expected {
    pub rows: BTreeMap<String, Row>,
    pub writes: u64,
}

/// Keys of rows no other row references, newest first: the writer's victims.
fn free_keys(table: &SeededTable) -> Vec<(String, Row)> {
    table
        .rows
        .iter()
        .rev()
        .filter(|(k, _)| !table.referenced.contains(*k))
        .map(|(k, r)| (k.clone(), r.clone()))
        .collect()
}

/// On the scratch source, before the switch: rewrites the newest free row
/// in place, deletes and re-inserts the next one, deletes the one after.
pub async fn write_source(scratch: &dyn Engine, table: &SeededTable, expected: &mut Expected) -> Result<()> {
    let free = free_keys(table);
    let key_of = |row: &Row| table.mirror.target_read().key_of(row);
    if let Some((_, row)) = free.first() {
        scratch.upsert(&table.write, vec![row.clone()].into()).await?;
        expected.writes += 1;
    }
    if let Some((_, row)) = free.get(1) {
        scratch.delete_keys(&table.write, &[key_of(row)]).await?;
        scratch.upsert(&table.write, vec![row.clone()].into()).await?;
        expected.writes += 2;
    }
    if let Some((text, row)) = free.get(2) {
        scratch.delete_keys(&table.write, &[key_of(row)]).await?;
        expected.rows.remove(text);
        expected.writes += 1;
    }
    Ok(())
}

/// On the scratch target, after the switch: deletes the oldest free row,
/// deletes and re-inserts the next one. `plan` is the rehearsed mapping.
pub async fn write_target(
    source: &dyn Engine,
    target: &dyn Engine,
    table: &SeededTable,
    plan: &TablePlan,
    target_schema: &TableSchema,
    expected: &mut Expected,
) -> Result<()> {
    let mut free = free_keys(table);
    free.reverse();
    // Rows the source-side writes left alone.
    let untouched: Vec<&(String, Row)> = free.iter().take(free.len().saturating_sub(3)).collect();
    let write = plan.write_spec(target_schema);
    let types: Vec<DataType> = write.columns.iter().map(|(_, t)| t.clone()).collect();
    for (n, (text, row)) in untouched.into_iter().take(2).enumerate() {
        let Some(key) = target_key(source, plan, &types, &table.mirror.target_read().key_of(row)).await? else {
            continue;
        };
        let on_target = target.read_keys(&plan.target_read(), std::slice::from_ref(&key)).await?;
        target.delete_keys(&write, std::slice::from_ref(&key)).await?;
        expected.writes += 1;
        if n == 0 {
            expected.rows.remove(text);
        } else if !on_target.is_empty() {
            target.upsert(&write, on_target.into()).await?;
            expected.writes += 1;
        }
    }
    Ok(())
}

/// The key a source row has on the target: read through the mapping and
/// converted as the backfill converts it. `None` when the mapping's filter
/// leaves the row out.
async fn target_key(
    source: &dyn Engine,
    plan: &TablePlan,
    types: &[DataType],
    source_key: &[Value],
) -> Result<Option<Vec<Value>>> {
    let rows = source.read_keys(&plan.read, &[source_key.to_vec()]).await?;
    let Some(mut row) = rows.into_iter().next() else { return Ok(None) };
    if convert_row(&mut row, types).is_err() {
        return Ok(None);
    }
    Ok(Some(plan.read.key_of(&row)))
}

/// The differences between what the source holds and what it should,
/// described for a person: at most three per table.
pub fn differences(table: &str, expected: &BTreeMap<String, Row>, actual: &BTreeMap<String, Row>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, row) in expected {
        match actual.get(key) {
            None => out.push(format!("{table}: the row with key {key} is missing")),
            Some(found) if found != row => out.push(format!(
                "{table}: the row with key {key} differs: expected {}, found {}",
                key_text(row),
                key_text(found)
            )),
            Some(_) => {}
        }
    }
    for key in actual.keys().filter(|k| !expected.contains_key(*k)) {
        out.push(format!("{table}: the row with key {key} should have been deleted"));
    }
    out.truncate(3);
    out
}
