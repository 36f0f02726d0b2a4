//! The rehearsal's scratch source: each source table created as the source
//! has it, filled with its first rows, and with the parent rows those rows
//! reference, so that foreign keys between the tables hold there too.

use crate::backfill::convert_row;
use crate::error::{Result, RunError, RunErrorKind};
use crate::mapping::{plan_tables, Mode, TablePlan};
use crate::progress::Progress;
use crate::steps::drop_order;
use ferry_core::convert::convert;
use ferry_core::{DataType, Row, Spec, TableSchema, TableSpec, Value};
use ferry_engine::{Engine, WriteSpec};
use std::collections::BTreeMap;

/// Rows inserted per statement while seeding.
const SEED_BATCH: usize = 1_000;

/// One table of the scratch source: how it was copied, and what it holds.
pub struct SeededTable {
    /// Real source table -> scratch source table, column for column.
    pub mirror: TablePlan,
    /// Writes into the scratch table.
    pub write: WriteSpec,
    /// Its rows, keyed by [`key_text`], as the scratch database returns them.
    pub rows: BTreeMap<String, Row>,
    /// Keys of rows other seeded rows reference: deleting them would cascade or fail.
    pub referenced: std::collections::BTreeSet<String>,
}

/// A key, as text that compares equal exactly when the keys do.
pub fn key_text(key: &[Value]) -> String {
    format!("{key:?}")
}

/// The spec that copies every source table, unchanged, into the scratch source.
pub fn mirror_spec(spec: &Spec, rehearsed: &Spec) -> Spec {
    let mut mirror = rehearsed.clone();
    mirror.tables = spec
        .tables
        .iter()
        .zip(&rehearsed.tables)
        .map(|(real, scratch)| TableSpec {
            from: real.from.clone(),
            to: scratch.from.clone(),
            key: real.key.clone(),
            filter: None,
            exclude: Vec::new(),
            columns: Vec::new(),
            translate: BTreeMap::new(),
            merge_existing_rows: false,
            conversions: BTreeMap::new(),
            added_indexes: Vec::new(),
            added_constraints: Vec::new(),
            downs: Vec::new(),
            line: real.line,
        })
        .collect();
    mirror
}

/// Creates every source table in `scratch` and copies into it the first
/// `rows` rows of each, plus every parent row they need.
pub async fn seed(
    mirror: &Spec,
    source: &dyn Engine,
    scratch: &dyn Engine,
    rows: usize,
    progress: &dyn Progress,
) -> Result<Vec<SeededTable>> {
    let mut plans = plan_tables(mirror, source, scratch, Mode::Run).await?;
    let parent_keys: Vec<(String, Vec<String>)> =
        plans.iter().map(|p| (p.target_name.name.clone(), p.key_target.clone())).collect();
    // Only a reference to a parent's key can be followed to the parent's rows.
    for plan in &mut plans {
        plan.def.foreign_keys.retain(|fk| {
            parent_keys.iter().any(|(name, key)| {
                *name == fk.ref_table.name
                    && key.len() == fk.ref_columns.len()
                    && key.iter().all(|k| fk.ref_columns.contains(k))
            })
        });
    }
    let mut picked: Vec<BTreeMap<String, Row>> = Vec::new();
    for plan in &plans {
        let first = source.read_batch(&plan.read, None, rows).await.map_err(|e| {
            RunError::from(e).context(format_args!("reading the first rows of {} for the rehearsal", plan.source_name))
        })?;
        picked.push(first.into_iter().map(|r| (plan.typed_key_text(&plan.read, &r), r)).collect());
    }
    add_parents(&plans, source, &mut picked).await?;
    let mut out = Vec::new();
    for (plan, rows) in plans.into_iter().zip(picked) {
        out.push(SeededTable { mirror: plan, write: empty_write(), rows, referenced: Default::default() });
    }
    create_and_fill(scratch, &mut out, progress).await?;
    mark_referenced(&mut out);
    Ok(out)
}

fn empty_write() -> WriteSpec {
    WriteSpec { table: ferry_core::TableName::parse(""), columns: Vec::new(), key: Vec::new() }
}

/// The parent key a child row references through `fk`, typed as the
/// parent's key; `None` when any of its columns is NULL (no reference).
fn referenced_key(child: &TablePlan, fk: &ferry_core::ForeignKey, parent: &TablePlan, row: &Row) -> Option<Vec<Value>> {
    let types = parent.key_types();
    if types.len() != parent.key_target.len() {
        return None;
    }
    let mut key = Vec::new();
    for (k, column) in parent.key_target.iter().zip(types) {
        let at = fk.ref_columns.iter().position(|c| c == k)?;
        let position = child.columns.iter().position(|c| c.name == fk.columns[at])?;
        let value = row.get(position)?.clone();
        if value == Value::Null {
            return None;
        }
        key.push(convert(value, &column).ok()?);
    }
    Some(key)
}

impl TablePlan {
    /// A row's key (read by `read`) as text, typed as [`referenced_key`]
    /// types a reference to it: a MariaDB `bigint unsigned` key read as
    /// itself and a reference converted to `numeric(20,0)` are one key.
    fn typed_key_text(&self, read: &ferry_engine::ReadSpec, row: &Row) -> String {
        let key: Vec<Value> = read
            .key_of(row)
            .into_iter()
            .zip(self.key_types())
            .map(|(value, to)| convert(value.clone(), &to).unwrap_or(value))
            .collect();
        key_text(&key)
    }

    /// The types of the key columns, in key order.
    fn key_types(&self) -> Vec<DataType> {
        self.key_target
            .iter()
            .filter_map(|k| self.columns.iter().find(|c| &c.name == k).map(|c| c.data_type.clone()))
            .collect()
    }
}

/// Reads the parent rows the picked rows reference, until nothing is missing
/// (a reference chain, or a table that references itself, takes several rounds).
async fn add_parents(plans: &[TablePlan], source: &dyn Engine, picked: &mut [BTreeMap<String, Row>]) -> Result<()> {
    loop {
        let mut missing: Vec<BTreeMap<String, Vec<Value>>> = vec![BTreeMap::new(); plans.len()];
        for (child_index, child) in plans.iter().enumerate() {
            for fk in &child.def.foreign_keys {
                let Some(parent_index) = plans.iter().position(|p| p.target_name.name == fk.ref_table.name) else {
                    continue;
                };
                let parent = &plans[parent_index];
                for row in picked[child_index].values() {
                    let Some(key) = referenced_key(child, fk, parent, row) else { continue };
                    let text = key_text(&key);
                    if !picked[parent_index].contains_key(&text) {
                        missing[parent_index].insert(text, key);
                    }
                }
            }
        }
        if missing.iter().all(BTreeMap::is_empty) {
            return Ok(());
        }
        let mut added = 0;
        for (index, keys) in missing.into_iter().enumerate().filter(|(_, k)| !k.is_empty()) {
            let keys: Vec<Vec<Value>> = keys.into_values().collect();
            for chunk in keys.chunks(SEED_BATCH) {
                let plan = &plans[index];
                for row in source.read_keys(&plan.read, chunk).await? {
                    added += usize::from(picked[index].insert(plan.typed_key_text(&plan.read, &row), row).is_none());
                }
            }
        }
        if added == 0 {
            // References to rows the source does not have (its own foreign
            // keys are not enforced), or none the rows found could settle.
            return Ok(());
        }
    }
}

/// Creates the scratch tables, fills them parents first, then adds indexes
/// and foreign keys as the source has them; re-reads what was stored.
async fn create_and_fill(scratch: &dyn Engine, tables: &mut [SeededTable], progress: &dyn Progress) -> Result<()> {
    let plans: Vec<TablePlan> = tables.iter().map(|t| t.mirror.clone()).collect();
    let mut parents_first = drop_order(&plans);
    parents_first.reverse();
    for &i in &parents_first {
        let table = &mut tables[i];
        let mut def = table.mirror.def.clone();
        if scratch.capabilities().adds_foreign_keys_later {
            def.foreign_keys.clear();
        }
        scratch.create_table(&def).await?;
        let schema: TableSchema = scratch.introspect(&def.name).await?;
        table.write = table.mirror.write_spec(&schema);
        let types: Vec<DataType> = table.write.columns.iter().map(|(_, t)| t.clone()).collect();
        let mut rows: Vec<Row> = std::mem::take(&mut table.rows).into_values().collect();
        for row in &mut rows {
            convert_row(row, &types).map_err(|(column, e)| {
                RunError::new(
                    RunErrorKind::Conversion,
                    format!("{}.{}: {e}", table.mirror.source_name, table.write.columns[column].0),
                )
                .context("seeding the rehearsal's scratch source")
            })?;
        }
        for chunk in rows.chunks(SEED_BATCH) {
            scratch.upsert(&table.write, chunk.to_vec().into()).await?;
        }
        progress.note(&format!("rehearsal: {} rows of {} copied to the scratch source", rows.len(), def.name));
    }
    for table in tables.iter_mut() {
        let def = &table.mirror.def;
        for cols in &def.unique_keys {
            scratch.create_index(&def.name, cols, true).await?;
        }
        for cols in &def.indexes {
            scratch.create_index(&def.name, cols, false).await?;
        }
        for index in &def.expression_indexes {
            scratch.create_expression_index(&def.name, index).await?;
        }
    }
    for &i in &parents_first {
        let def = &tables[i].mirror.def;
        if scratch.capabilities().adds_foreign_keys_later {
            for fk in &def.foreign_keys {
                scratch.add_foreign_key(&def.name, fk).await?;
            }
        }
    }
    for table in tables.iter_mut() {
        table.rows = read_all(scratch, &table.mirror).await?;
    }
    Ok(())
}

/// Every row of a scratch source table, keyed.
pub async fn read_all(scratch: &dyn Engine, mirror: &TablePlan) -> Result<BTreeMap<String, Row>> {
    let read = mirror.target_read();
    let mut out = BTreeMap::new();
    let mut after: Option<Vec<Value>> = None;
    loop {
        let rows = scratch.read_batch(&read, after.as_deref(), 10_000).await?;
        let last = rows.len() < 10_000;
        for row in rows {
            after = Some(read.key_of(&row));
            out.insert(mirror.typed_key_text(&read, &row), row);
        }
        if last {
            return Ok(out);
        }
    }
}

/// Records which rows other rows reference.
fn mark_referenced(tables: &mut [SeededTable]) {
    let plans: Vec<TablePlan> = tables.iter().map(|t| t.mirror.clone()).collect();
    for (child_index, child) in plans.iter().enumerate() {
        for fk in &child.def.foreign_keys {
            let Some(parent_index) = plans.iter().position(|p| p.target_name.name == fk.ref_table.name) else {
                continue;
            };
            let keys: Vec<String> = tables[child_index]
                .rows
                .values()
                .filter_map(|row| referenced_key(child, fk, &plans[parent_index], row))
                .map(|k| key_text(&k))
                .collect();
            tables[parent_index].referenced.extend(keys);
        }
    }
}
