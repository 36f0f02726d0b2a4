//! A batch's checkpoint, kept in the target and written in the batch's own
//! transaction: the target's commit is the checkpoint. Rows and their
//! checkpoint are committed, or lost in a crash, together, so the commit need
//! not wait for the disk (PostgreSQL: `synchronous_commit = off`) and a
//! resume still redoes at most one batch. The state store follows the target.

use crate::sql::Dialect;
use crate::{ReadSpec, SelectItem, WriteSpec};
use ferry_core::{DataType, Row, TableName, Value};

/// The target's table of checkpoints, one row per copied table (and chunk).
pub const CHECKPOINT_TABLE: &str = "ferry_checkpoint";

const COLUMNS: [&str; 5] = ["table_name", "chunk", "last_key", "rows_copied", "batches"];

/// Where a table's copy stands, as its target has committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The copied table's target name, as shown.
    pub table: String,
    /// The part of the table's key range (0: the whole table).
    pub chunk: i64,
    /// The last key written, as JSON of its values.
    pub last_key: String,
    /// Rows written up to and including this batch.
    pub rows: i64,
    /// Batches written up to and including this one.
    pub batches: i64,
}

impl Checkpoint {
    /// The chunk of the row a table's last, durable commit writes (chunks count from 0).
    pub const SEALED: i64 = -1;

    pub fn table_name() -> TableName {
        TableName::parse(CHECKPOINT_TABLE)
    }

    /// `CREATE TABLE IF NOT EXISTS`, in types all three engines declare alike.
    pub fn create_sql(dialect: Dialect) -> String {
        let q = |c: &str| dialect.ident(c);
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({} varchar(512) NOT NULL, {} bigint NOT NULL, {} text NOT NULL, \
             {} bigint NOT NULL, {} bigint NOT NULL, PRIMARY KEY ({}, {}))",
            dialect.table(&Checkpoint::table_name()),
            q(COLUMNS[0]),
            q(COLUMNS[1]),
            q(COLUMNS[2]),
            q(COLUMNS[3]),
            q(COLUMNS[4]),
            q(COLUMNS[0]),
            q(COLUMNS[1]),
        )
    }

    /// The insert of one checkpoint, its values bound in [`Checkpoint::row`]'s
    /// order; the engine appends its way of replacing an existing one.
    pub fn insert_sql(dialect: Dialect) -> String {
        let columns: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
        dialect.insert(&Checkpoint::table_name(), &columns, 1)
    }

    /// The columns an upsert replaces (all but the key).
    pub fn updated_columns() -> &'static [&'static str] {
        &COLUMNS[2..]
    }

    /// The key columns an upsert conflicts on.
    pub fn key_columns() -> &'static [&'static str] {
        &COLUMNS[..2]
    }

    pub fn row(&self) -> Row {
        vec![
            Value::Text(self.table.clone()),
            Value::Int(self.chunk),
            Value::Text(self.last_key.clone()),
            Value::Int(self.rows),
            Value::Int(self.batches),
        ]
    }

    /// A read of the checkpoints, by `(table, chunk)`, for `Engine::read_keys`.
    pub fn read_spec() -> ReadSpec {
        ReadSpec {
            table: Checkpoint::table_name(),
            select: COLUMNS.iter().map(|c| SelectItem::Column(c.to_string())).collect(),
            key: Checkpoint::key_columns().iter().map(|c| c.to_string()).collect(),
            key_positions: vec![0, 1],
            filter: None,
        }
    }

    /// The checkpoint table as `Engine::delete_keys` writes it.
    pub fn write_spec() -> WriteSpec {
        let text = DataType::Text { max_chars: None };
        let types = [text.clone(), DataType::Int64, text, DataType::Int64, DataType::Int64];
        WriteSpec {
            table: Checkpoint::table_name(),
            columns: COLUMNS.iter().zip(types).map(|(c, t)| (c.to_string(), t)).collect(),
            key: Checkpoint::key_columns().iter().map(|c| c.to_string()).collect(),
        }
    }

    pub fn key(table: &str, chunk: i64) -> Vec<Value> {
        vec![Value::Text(table.to_string()), Value::Int(chunk)]
    }

    /// A checkpoint read back with [`Checkpoint::read_spec`].
    pub fn from_row(row: &Row) -> Option<Checkpoint> {
        let text = |v: &Value| match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        };
        let int = |v: &Value| match v {
            Value::Int(i) => Some(*i),
            Value::Decimal(d) => d.parse().ok(),
            _ => None,
        };
        match row.as_slice() {
            [table, chunk, last_key, rows, batches] => Some(Checkpoint {
                table: text(table)?,
                chunk: int(chunk)?,
                last_key: text(last_key)?,
                rows: int(rows)?,
                batches: int(batches)?,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{MYSQL, POSTGRES};

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let c = Checkpoint { table: "public.items".into(), chunk: 0, last_key: "[42]".into(), rows: 500, batches: 2 };
        assert_eq!(Checkpoint::from_row(&c.row()), Some(c));
        assert_eq!(Checkpoint::from_row(&vec![Value::Null]), None);
    }

    #[test]
    fn statements_quote_for_the_engine() {
        assert!(
            Checkpoint::create_sql(MYSQL).starts_with("CREATE TABLE IF NOT EXISTS `ferry_checkpoint` (`table_name`")
        );
        assert_eq!(
            Checkpoint::insert_sql(POSTGRES),
            "INSERT INTO \"ferry_checkpoint\" (\"table_name\", \"chunk\", \"last_key\", \"rows_copied\", \"batches\") \
             VALUES ($1, $2, $3, $4, $5)"
        );
    }
}
