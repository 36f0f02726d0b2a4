//! `ferry_routing`: the flags as a table in the databases the application
//! already talks to, for applications that would rather `SELECT` than call
//! HTTP. One row per migration, written whenever the flags change: on the
//! source while writes go there, on the target too once they moved. A
//! rollback or a contract deletes the migration's row, and the table with
//! its last row: nothing of Ferry's stays behind.

use crate::cutover::Flags;
use crate::error::Result;
use crate::state::{now, timestamp};
use ferry_core::schema::{ColumnDef, TableDef};
use ferry_core::{DataType, TableName, Value};
use ferry_engine::{Engine, ReadSpec, SelectItem, WriteSpec};
use std::sync::Arc;

pub const ROUTING_TABLE: &str = "ferry_routing";

fn name() -> TableName {
    TableName { schema: None, name: ROUTING_TABLE.into() }
}

fn columns() -> Vec<(String, DataType)> {
    let text = |n: u32| DataType::Text { max_chars: Some(n) };
    vec![
        ("migration".into(), text(200)),
        ("read_percent".into(), DataType::Int32),
        ("writes_to".into(), text(10)),
        ("version".into(), text(32)),
        ("updated_at".into(), text(40)),
    ]
}

fn write_spec() -> WriteSpec {
    WriteSpec { table: name(), columns: columns(), key: vec!["migration".into()] }
}

/// Writes the migration's row (creating the table the first time).
pub async fn publish(engine: &dyn Engine, flags: &Flags) -> Result<()> {
    if !engine.table_exists(&name()).await? {
        let defs = columns().into_iter().map(|(n, t)| ColumnDef::new(n, t, false)).collect();
        engine.create_table(&TableDef::new(name(), defs, vec!["migration".into()])).await?;
    }
    let row = vec![
        Value::Text(flags.migration.clone()),
        Value::Int(flags.read_percent.into()),
        Value::Text(if flags.writes_to_target { "target" } else { "source" }.into()),
        Value::Text(flags.version()),
        Value::Text(timestamp(now())),
    ];
    engine.upsert(&write_spec(), Arc::from(vec![row])).await?;
    Ok(())
}

/// Deletes the migration's row, and the table when no other migration has one.
pub async fn remove(engine: &dyn Engine, migration: &str) -> Result<()> {
    if !engine.table_exists(&name()).await? {
        return Ok(());
    }
    engine.delete_keys(&write_spec(), &[vec![Value::Text(migration.into())]]).await?;
    if engine.count(&name(), None).await? == 0 {
        engine.drop_table(&name()).await?;
    }
    Ok(())
}

/// The migration's row as the application would read it: (read_percent, writes_to).
pub async fn read(engine: &dyn Engine, migration: &str) -> Result<Option<(i64, String)>> {
    if !engine.table_exists(&name()).await? {
        return Ok(None);
    }
    let spec = ReadSpec {
        table: name(),
        select: columns().into_iter().map(|(n, _)| SelectItem::Column(n)).collect(),
        key: vec!["migration".into()],
        key_positions: vec![0],
        filter: None,
    };
    let rows = engine.read_keys(&spec, &[vec![Value::Text(migration.into())]]).await?;
    Ok(rows.into_iter().next().and_then(|r| match (&r[1], &r[2]) {
        (Value::Int(p), Value::Text(w)) => Some((*p, w.clone())),
        (Value::Decimal(p), Value::Text(w)) => Some((p.parse().ok()?, w.clone())),
        _ => None,
    }))
}
