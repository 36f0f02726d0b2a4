//! The state store's database: a SQLite file on this machine, or a schema
//! in a PostgreSQL database several machines share.
//!
//! The store's SQL is written once, in the subset both engines read alike
//! (`?N` parameters, `ON CONFLICT`, `CASE`, `coalesce`); this module binds
//! parameters and reads rows in one shape for both, so every method of
//! [`super::StateStore`] works unchanged on either backend.

use super::postgres::PgSession;
use crate::error::{Result, RunError};
use rusqlite::types::ValueRef;
use std::cell::Cell as Depth;

/// A parameter of a state-store statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// A value that binds as a [`Param`] (taken by reference, so that `args!`
/// never moves what it is given).
pub(crate) trait ToParam {
    fn to_param(&self) -> Param;
}

macro_rules! integer_params {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn to_param(&self) -> Param {
                Param::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
integer_params!(i64, i32, u64, u32, u8, usize);

impl ToParam for bool {
    fn to_param(&self) -> Param {
        Param::Int(i64::from(*self))
    }
}

impl ToParam for f64 {
    fn to_param(&self) -> Param {
        Param::Real(*self)
    }
}

impl ToParam for str {
    fn to_param(&self) -> Param {
        Param::Text(self.to_string())
    }
}

impl ToParam for String {
    fn to_param(&self) -> Param {
        Param::Text(self.clone())
    }
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> Param {
        (**self).to_param()
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> Param {
        self.as_ref().map_or(Param::Null, ToParam::to_param)
    }
}

/// The parameters of one statement: `args![a, b]`.
macro_rules! args {
    () => { Vec::<$crate::state::Param>::new() };
    ($($value:expr),+ $(,)?) => { vec![$($crate::state::ToParam::to_param(&$value)),+] };
}
pub(crate) use args;

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(pub(crate) Vec<Cell>);

impl Row {
    /// The value of column `i` as a `T`.
    pub(crate) fn get<T: FromCell>(&self, i: usize) -> Result<T> {
        let cell = self.0.get(i).ok_or_else(|| RunError::state(format!("state store: no column {i} in a row")))?;
        T::from_cell(cell).ok_or_else(|| {
            RunError::state(format!("state store: column {i} holds {cell:?}, not a {}", std::any::type_name::<T>()))
        })
    }
}

/// A Rust value read from a [`Cell`].
pub(crate) trait FromCell: Sized {
    fn from_cell(cell: &Cell) -> Option<Self>;
}

impl FromCell for i64 {
    fn from_cell(cell: &Cell) -> Option<i64> {
        match cell {
            Cell::Int(v) => Some(*v),
            Cell::Real(v) => Some(*v as i64),
            _ => None,
        }
    }
}

impl FromCell for u64 {
    fn from_cell(cell: &Cell) -> Option<u64> {
        i64::from_cell(cell).map(|v| v.max(0) as u64)
    }
}

impl FromCell for u32 {
    fn from_cell(cell: &Cell) -> Option<u32> {
        i64::from_cell(cell).and_then(|v| u32::try_from(v).ok())
    }
}

impl FromCell for u8 {
    fn from_cell(cell: &Cell) -> Option<u8> {
        i64::from_cell(cell).and_then(|v| u8::try_from(v).ok())
    }
}

impl FromCell for bool {
    fn from_cell(cell: &Cell) -> Option<bool> {
        i64::from_cell(cell).map(|v| v != 0)
    }
}

impl FromCell for f64 {
    fn from_cell(cell: &Cell) -> Option<f64> {
        match cell {
            Cell::Real(v) => Some(*v),
            Cell::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}

impl FromCell for String {
    fn from_cell(cell: &Cell) -> Option<String> {
        match cell {
            Cell::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(cell: &Cell) -> Option<Option<T>> {
        match cell {
            Cell::Null => Some(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// Which database keeps the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The store's one connection.
pub(crate) struct Db {
    conn: Conn,
    /// Open transactions: an inner `transaction` joins the outer one.
    depth: Depth<u32>,
}

enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(PgSession),
}

impl Db {
    pub(crate) fn sqlite(conn: rusqlite::Connection) -> Db {
        Db { conn: Conn::Sqlite(conn), depth: Depth::new(0) }
    }

    pub(crate) fn postgres(session: PgSession) -> Db {
        Db { conn: Conn::Postgres(session), depth: Depth::new(0) }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self.conn {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs a statement; returns the rows it changed.
    pub(crate) fn execute(&self, sql: &str, args: Vec<Param>) -> Result<u64> {
        match &self.conn {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(args.iter().map(sqlite_value)))? as u64)
            }
            Conn::Postgres(s) => s.execute(sql, args),
        }
    }

    /// Runs a query; returns every row.
    pub(crate) fn query(&self, sql: &str, args: Vec<Param>) -> Result<Vec<Row>> {
        match &self.conn {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let width = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(args.iter().map(sqlite_value)))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(Row((0..width)
                        .map(|i| r.get_ref(i).map(sqlite_cell))
                        .collect::<rusqlite::Result<_>>()?));
                }
                Ok(out)
            }
            Conn::Postgres(s) => s.query(sql, args),
        }
    }

    /// The first row of a query, if it has one.
    pub(crate) fn query_opt(&self, sql: &str, args: Vec<Param>) -> Result<Option<Row>> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The first column of the first row (an aggregate, say).
    pub(crate) fn query_value<T: FromCell>(&self, sql: &str, args: Vec<Param>) -> Result<T> {
        let row =
            self.query_opt(sql, args)?.ok_or_else(|| RunError::state(format!("state store: no row from `{sql}`")))?;
        row.get(0)
    }

    /// Runs several statements without parameters.
    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(s) => s.batch(sql),
        }
    }

    /// Runs `work` in one transaction (joining the one already open, if
    /// any): all its writes commit, or none. On SQLite the transaction takes
    /// the write lock at once, so a read-then-write never fails half-way
    /// when another process wrote in between.
    pub(crate) fn transaction<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.depth.get() > 0 {
            return work();
        }
        self.batch(match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        })?;
        self.depth.set(1);
        let result = work();
        self.depth.set(0);
        match result {
            Ok(value) => {
                self.batch("COMMIT")?;
                Ok(value)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Inside a transaction: keeps other writers of `table` out until it
    /// ends, for appends numbered from what is there (the audit chain).
    /// SQLite's write lock already does.
    pub(crate) fn lock_for_append(&self, table: &str) -> Result<()> {
        match self.backend() {
            Backend::Sqlite => Ok(()),
            Backend::Postgres => self.batch(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE")),
        }
    }
}

fn sqlite_value(p: &Param) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match p {
        Param::Null => Value::Null,
        Param::Int(v) => Value::Integer(*v),
        Param::Real(v) => Value::Real(*v),
        Param::Text(v) => Value::Text(v.clone()),
    }
}

fn sqlite_cell(v: ValueRef<'_>) -> Cell {
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(r) => Cell::Real(r),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Cell::Text(String::from_utf8_lossy(b).into_owned()),
    }
}

/// `?N` placeholders as PostgreSQL writes them (`$N`); quoted text is left alone.
pub(crate) fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '?' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_turn_into_dollars_outside_quotes() {
        assert_eq!(
            dollar_placeholders("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
        assert_eq!(dollar_placeholders("SELECT 'it''s ?2' WHERE c = ?2"), "SELECT 'it''s ?2' WHERE c = $2");
    }

    #[test]
    fn cells_read_as_what_the_store_wrote() {
        let row = Row(vec![Cell::Int(1), Cell::Null, Cell::Text("x".into()), Cell::Real(1.5)]);
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<Option<i64>>(1).unwrap(), None);
        assert_eq!(row.get::<String>(2).unwrap(), "x");
        assert_eq!(row.get::<f64>(3).unwrap(), 1.5);
        assert!(row.get::<String>(0).is_err());
        assert!(row.get::<i64>(9).is_err());
    }
}
