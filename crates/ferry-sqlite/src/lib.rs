//! Ferry engine for SQLite files.
//!
//! rusqlite is synchronous; every call runs on tokio's blocking pool with
//! the one connection behind a mutex.

mod in_place;
mod plan_dialect;
pub use plan_dialect::PLAN_DIALECT;
mod capture;
mod types;

pub use types::{declare, from_declared};

use async_trait::async_trait;
use ferry_core::sqlexpr;
use ferry_core::temporal;
use ferry_core::{
    schema::object_name, CaptureMethod, Check, Collation, Column, ColumnDependent, DataType, DefaultValue,
    DependentKind, Dependents, ExpressionIndex, FkAction, ForeignKey, Identity, Index, Row, TableDef, TableName,
    TableSchema, TableStats, Value,
};
use ferry_engine::sql::SQLITE;
use ferry_engine::{
    fence_name, unsupported_capture, Capabilities, CaptureLag, Change, Checkpoint, Durability, Engine, EngineError,
    EngineKind, ErrorKind, KeyRange, LockGuard, ReadSpec, ReplicaLag, Result, Rows, SchemaSupport, WriteSpec,
};
use ferry_engine::{Catalog, ChangeCapture, Ddl, Health, Locks, Reader, Writer};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct SqliteEngine {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
    scope: ferry_engine::ScopeCell,
}

/// Whether opening may create the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist (a source).
    Existing,
    /// The file is created if missing (a target).
    Create,
}

impl SqliteEngine {
    pub async fn open(path: &Path, mode: OpenMode) -> Result<SqliteEngine> {
        let path = path.to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            if mode == OpenMode::Existing && !p.exists() {
                return Err(EngineError::new(
                    ErrorKind::NotFound,
                    format!("SQLite file {} does not exist", p.display()),
                )
                .with_hint("check the path in the URL; relative paths are resolved against the spec's directory"));
            }
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                if mode == OpenMode::Create && !dir.exists() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        EngineError::new(ErrorKind::Io, format!("cannot create directory {}: {e}", dir.display()))
                    })?;
                }
            }
            let mut flags =
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
            if mode == OpenMode::Create {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            let conn = Connection::open_with_flags(&p, flags)
                .map_err(|e| map_err(e).context(format_args!("opening SQLite file {}", p.display())))?;
            conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(map_err)?;
            // Check that this is a database at all before anything else touches it.
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                .map_err(|e| map_err(e).context(format_args!("reading {}", p.display())))?;
            // A large page cache keeps index maintenance in memory during bulk loads.
            conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -262144;")
                .map_err(map_err)?;
            Ok(conn)
        })
        .await
        .map_err(join_err)??;
        Ok(SqliteEngine { path, conn: Arc::new(Mutex::new(conn)), scope: Default::default() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rows of one query run with `query_only` on: the operator's checks
    /// and probe can read, and nothing they call can write.
    async fn read_only(&self, sql: &str) -> Result<Vec<Row>> {
        let sql = sql.to_string();
        self.with_conn(move |c| {
            c.execute_batch("PRAGMA query_only = ON").map_err(map_err)?;
            let rows = query_rows(c, &sql, Vec::new());
            c.execute_batch("PRAGMA query_only = OFF").map_err(map_err)?;
            rows
        })
        .await
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(join_err)?
    }
}

fn no_capture(c: &Connection, table: &TableName) -> EngineError {
    if capture::has_legacy_log(c, table).unwrap_or(false) {
        return EngineError::new(
            ErrorKind::Unsupported,
            format!("change capture on {table} was installed by an earlier Ferry version (a log per table)"),
        )
        .with_hint("finish the migration with that version, or run `ferry rollback` and start it again");
    }
    EngineError::new(ErrorKind::NotFound, format!("change capture is not installed on {table}"))
        .with_hint("`ferry rollback` removes what is left of this migration so that `ferry run` can start it again")
}

fn join_err(e: tokio::task::JoinError) -> EngineError {
    EngineError::new(ErrorKind::Other, format!("SQLite worker failed: {e}"))
}

fn map_err(e: rusqlite::Error) -> EngineError {
    use rusqlite::ErrorCode;
    let message = e.to_string();
    let kind = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            // SQLITE_CONSTRAINT_FOREIGNKEY
            ErrorCode::ConstraintViolation if f.extended_code == 787 => ErrorKind::ForeignKey,
            ErrorCode::ConstraintViolation => ErrorKind::Constraint,
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Transient,
            ErrorCode::CannotOpen => ErrorKind::Io,
            ErrorCode::NotADatabase => ErrorKind::Other,
            ErrorCode::PermissionDenied | ErrorCode::ReadOnly => ErrorKind::Permission,
            _ if message.contains("no such table") => ErrorKind::NotFound,
            _ => ErrorKind::Sql,
        },
        rusqlite::Error::SqlInputError { .. } => ErrorKind::Sql,
        _ => ErrorKind::Other,
    };
    EngineError::new(kind, message).with_source(e)
}

/// A [`Value`] bound as a SQLite parameter, stored in the form Ferry reads back.
struct Bind<'a>(&'a Value);

impl SqliteEngine {
    /// Upserts `rows` with one prepared statement, with the batch's
    /// checkpoint in the same transaction.
    async fn write_rows(&self, write: &WriteSpec, rows: Rows, checkpoint: Option<Checkpoint>) -> Result<()> {
        let names: Vec<String> = write.columns.iter().map(|(n, _)| n.clone()).collect();
        let mut sql = SQLITE.insert(&write.table, &names, 1);
        let updates: Vec<String> = names
            .iter()
            .filter(|n| !write.key.contains(n))
            .map(|n| format!("{0} = excluded.{0}", SQLITE.ident(n)))
            .collect();
        if updates.is_empty() {
            sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", SQLITE.idents(&write.key)));
        } else {
            sql.push_str(&format!(" ON CONFLICT ({}) DO UPDATE SET {}", SQLITE.idents(&write.key), updates.join(", ")));
        }
        let table = write.table.clone();
        self.with_conn(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let fences = lift_fences(&tx, &table)?;
            {
                let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
                for row in rows.iter() {
                    stmt.execute(params_from_iter(row.iter().map(Bind)))
                        .map_err(|e| map_err(e).context(format_args!("writing {table}")))?;
                }
            }
            restore_fences(&tx, &fences)?;
            if let Some(checkpoint) = &checkpoint {
                let mut stmt = tx.prepare_cached(&checkpoint_upsert()).map_err(map_err)?;
                stmt.execute(params_from_iter(checkpoint.row().iter().map(Bind))).map_err(map_err)?;
            }
            tx.commit().map_err(map_err)
        })
        .await
    }
}

/// The upsert of a checkpoint row.
fn checkpoint_upsert() -> String {
    let updates: Vec<String> =
        Checkpoint::updated_columns().iter().map(|c| format!("{0} = excluded.{0}", SQLITE.ident(c))).collect();
    let key: Vec<String> = Checkpoint::key_columns().iter().map(|c| c.to_string()).collect();
    format!(
        "{} ON CONFLICT ({}) DO UPDATE SET {}",
        Checkpoint::insert_sql(SQLITE),
        SQLITE.idents(&key),
        updates.join(", ")
    )
}

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as V;
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(V::Null),
            Value::Bool(b) => ToSqlOutput::Owned(V::Integer(*b as i64)),
            Value::Int(i) => ToSqlOutput::Owned(V::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(V::Real(*f)),
            Value::Decimal(d) => ToSqlOutput::Borrowed(ValueRef::Text(d.as_bytes())),
            Value::Text(s) | Value::Json(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Uuid(u) => ToSqlOutput::Owned(V::Text(ferry_core::value::format_uuid(u))),
            Value::Date(d) => {
                let mut s = String::with_capacity(10);
                temporal::write_date(&mut s, d);
                ToSqlOutput::Owned(V::Text(s))
            }
            Value::Time(t) => {
                let mut s = String::with_capacity(15);
                temporal::write_time(&mut s, t);
                ToSqlOutput::Owned(V::Text(s))
            }
            Value::Timestamp(t) => {
                let mut s = String::with_capacity(26);
                temporal::write_timestamp(&mut s, t);
                ToSqlOutput::Owned(V::Text(s))
            }
            Value::TimestampTz(t) => {
                let mut s = String::with_capacity(32);
                temporal::write_timestamp(&mut s, &t.naive_utc());
                s.push_str("+00:00");
                ToSqlOutput::Owned(V::Text(s))
            }
        })
    }
}

fn read_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_string()),
            Err(_) => Value::Bytes(t.to_vec()),
        },
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

fn query_rows(conn: &Connection, sql: &str, params: Vec<&Value>) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let width = stmt.column_count();
    let mut rows = stmt.query(params_from_iter(params.into_iter().map(Bind))).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(read_value(row.get_ref(i).map_err(map_err)?));
        }
        out.push(values);
    }
    Ok(out)
}

fn introspect_sync(conn: &Connection, table: &TableName) -> Result<TableSchema> {
    let name = table.name.clone();
    let exists: bool = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [&name], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(map_err)?
        > 0;
    if !exists {
        return Err(not_found(conn, table));
    }
    let q = SQLITE.ident(&name);
    let create_sql: String = conn
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1", [&name], |r| r.get(0))
        .map_err(map_err)?;
    let parsed = sqlexpr::parse_create_table(&create_sql, EngineKind::Sqlite).unwrap_or_default();
    let (mut columns, primary_key) = columns_of(conn, &q, &parsed)?;
    // A single INTEGER PRIMARY KEY is the rowid: SQLite numbers it by itself.
    if let [key] = primary_key.as_slice() {
        let autoincrement = parsed.columns.iter().any(|p| p.name.eq_ignore_ascii_case(key) && p.autoincrement);
        if let Some(c) = columns.iter_mut().find(|c| &c.name == key && c.native_type.eq_ignore_ascii_case("integer")) {
            c.identity = Some(if autoincrement { Identity::RowidAutoincrement } else { Identity::Rowid });
        }
    }
    let mut unnamed = 0;
    let checks = parsed
        .checks
        .iter()
        .map(|(check_name, expr)| {
            let check_name = check_name.clone().unwrap_or_else(|| {
                unnamed += 1;
                format!("{name}_check{unnamed}")
            });
            Check::new(check_name, expr.clone())
        })
        .collect();
    let (unique_keys, indexes, expression_indexes) = indexes_of(conn, &q)?;
    let foreign_keys = foreign_keys_of(conn, &name, &q)?;
    let row_estimate: i64 = conn.query_row(&format!("SELECT count(*) FROM {q}"), [], |r| r.get(0)).map_err(map_err)?;
    let size_bytes: Option<i64> =
        conn.query_row("SELECT sum(pgsize) FROM dbstat WHERE name = ?1", [&name], |r| r.get(0)).ok().flatten();

    Ok(TableSchema {
        name: table.clone(),
        columns,
        primary_key,
        unique_keys,
        indexes,
        foreign_keys,
        checks,
        expression_indexes,
        comment: None,
        stats: TableStats { row_estimate: Some(row_estimate as u64), size_bytes: size_bytes.map(|s| s as u64) },
    })
}

/// The columns of the table `q` (quoted), with what its CREATE TABLE says
/// of each (collation, generation), and its primary key in order.
fn columns_of(conn: &Connection, q: &str, parsed: &sqlexpr::ParsedTable) -> Result<(Vec<Column>, Vec<String>)> {
    let mut columns = Vec::new();
    let mut pk: Vec<(i64, String)> = Vec::new();
    let mut stmt = conn.prepare(&format!("PRAGMA table_xinfo({q})")).map_err(map_err)?;
    let mut rows = stmt.query([]).map_err(map_err)?;
    while let Some(r) = rows.next().map_err(map_err)? {
        let hidden: i64 = r.get(6).map_err(map_err)?;
        if hidden == 1 {
            continue; // virtual-table hidden column
        }
        // 2 and 3: a generated column, virtual or stored.
        let generated = hidden >= 2;
        let col_name: String = r.get(1).map_err(map_err)?;
        let declared: String = r.get::<_, Option<String>>(2).map_err(map_err)?.unwrap_or_default();
        let notnull: i64 = r.get(3).map_err(map_err)?;
        let default: Option<String> = r.get(4).map_err(map_err)?;
        let pk_pos: i64 = r.get(5).map_err(map_err)?;
        if pk_pos > 0 {
            pk.push((pk_pos, col_name.clone()));
        }
        let mut column = Column::new(
            col_name,
            from_declared(&declared),
            notnull == 0 && pk_pos == 0,
            if declared.is_empty() { "(none)".to_string() } else { declared },
        );
        column.default = default.and_then(|d| sqlexpr::parse_default(&d, EngineKind::Sqlite));
        if let Some(p) = parsed.columns.iter().find(|p| p.name.eq_ignore_ascii_case(&column.name)) {
            column.collation = p.collation.as_ref().filter(|c| !c.eq_ignore_ascii_case("binary")).map(|c| Collation {
                name: c.to_ascii_uppercase(),
                case_insensitive: c.eq_ignore_ascii_case("nocase"),
            });
            column.generated = p.generated.clone().filter(|_| generated);
        }
        columns.push(column);
    }
    pk.sort();
    Ok((columns, pk.into_iter().map(|(_, c)| c).collect()))
}

/// Unique keys, plain indexes, and indexes on expressions (or partial) of the table `q`.
fn indexes_of(conn: &Connection, q: &str) -> Result<(Vec<Index>, Vec<Index>, Vec<ExpressionIndex>)> {
    let mut unique_keys = Vec::new();
    let mut indexes = Vec::new();
    let mut expression_indexes = Vec::new();
    let mut stmt = conn.prepare(&format!("PRAGMA index_list({q})")).map_err(map_err)?;
    let list: Vec<(String, bool, String, bool)> = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, i64>(2)? == 1, r.get::<_, String>(3)?, r.get::<_, i64>(4)? == 1))
        })
        .map_err(map_err)?
        .collect::<std::result::Result<_, _>>()
        .map_err(map_err)?;
    for (index_name, unique, origin, partial) in list {
        if origin == "pk" {
            continue;
        }
        let index_sql: Option<String> = conn
            .query_row("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1", [&index_name], |r| r.get(0))
            .map_err(map_err)?;
        let mut cols = conn.prepare(&format!("PRAGMA index_info({})", SQLITE.ident(&index_name))).map_err(map_err)?;
        let members: Vec<Option<String>> = cols
            .query_map([], |r| r.get::<_, Option<String>>(2))
            .map_err(map_err)?
            .collect::<std::result::Result<_, _>>()
            .map_err(map_err)?;
        // An index on an expression has a NULL column name.
        let plain = members.iter().all(Option::is_some) && !partial;
        let Some(members) = members.into_iter().collect::<Option<Vec<String>>>().filter(|_| plain) else {
            if let Some((elements, predicate)) =
                index_sql.as_deref().and_then(|sql| sqlexpr::parse_create_index(sql, EngineKind::Sqlite))
            {
                expression_indexes.push(ExpressionIndex {
                    name: index_name,
                    unique,
                    elements,
                    predicate,
                    method: None,
                });
            }
            continue;
        };
        let index = Index { name: index_name, columns: members, unique };
        if unique {
            unique_keys.push(index);
        } else {
            indexes.push(index);
        }
    }
    Ok((unique_keys, indexes, expression_indexes))
}

/// The foreign keys of the table `name` (`q` quoted), named as Ferry names them.
fn foreign_keys_of(conn: &Connection, name: &str, q: &str) -> Result<Vec<ForeignKey>> {
    let mut foreign_keys: Vec<ForeignKey> = Vec::new();
    let mut stmt = conn.prepare(&format!("PRAGMA foreign_key_list({q})")).map_err(map_err)?;
    type FkRow = (i64, String, String, Option<String>, String, String);
    let rows: Vec<FkRow> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
        .map_err(map_err)?
        .collect::<std::result::Result<_, _>>()
        .map_err(map_err)?;
    // id -> (parent table, child columns, parent columns, on update, on delete)
    type Parts = (String, Vec<String>, Vec<Option<String>>, String, String);
    let mut by_id: std::collections::BTreeMap<i64, Parts> = Default::default();
    for (id, parent, from, to, on_update, on_delete) in rows {
        let entry = by_id.entry(id).or_insert_with(|| (parent, Vec::new(), Vec::new(), on_update, on_delete));
        entry.1.push(from);
        entry.2.push(to);
    }
    for (_, (parent, from, to, on_update, on_delete)) in by_id {
        // A NULL target column means "the parent's primary key".
        let ref_columns = if to.iter().all(Option::is_some) {
            to.into_iter().flatten().collect()
        } else {
            let parent_schema = introspect_sync(conn, &TableName::parse(&parent))?;
            parent_schema.primary_key
        };
        foreign_keys.push(ForeignKey {
            name: object_name(name, &from, "fkey"),
            columns: from,
            ref_table: TableName::parse(&parent),
            ref_columns,
            on_delete: FkAction::parse(&on_delete),
            on_update: FkAction::parse(&on_update),
        });
    }
    Ok(foreign_keys)
}

/// `CREATE TABLE` with columns, defaults, checks, primary key and foreign
/// keys (SQLite cannot add constraints later).
fn create_table_sql(def: &TableDef) -> String {
    let rowid_alias = def.primary_key.len() == 1
        && def.columns.iter().any(|col| col.name == def.primary_key[0] && col.data_type.is_integer());
    // AUTOINCREMENT (never reuse a key, as sequences do) is written on the column itself.
    let autoincrement = rowid_alias
        && def.columns.iter().any(|c| c.name == def.primary_key[0] && c.identity.is_some_and(|i| i != Identity::Rowid));
    let mut parts: Vec<String> = def
        .columns
        .iter()
        .map(|col| {
            let is_alias = rowid_alias && col.name == def.primary_key[0];
            let mut sql = format!("{} {}", SQLITE.ident(&col.name), declare(&col.data_type, is_alias));
            if is_alias && autoincrement {
                sql.push_str(" PRIMARY KEY AUTOINCREMENT");
            }
            if let Some(collation) = &col.collation {
                sql.push_str(&format!(" COLLATE {collation}"));
            }
            if let Some(g) = &col.generated {
                sql.push_str(&format!(
                    " GENERATED ALWAYS AS ({}) {}",
                    g.expr,
                    if g.stored { "STORED" } else { "VIRTUAL" }
                ));
            } else if let Some(d) = &col.default {
                sql.push_str(&format!(" DEFAULT {}", default_sql(d, &col.data_type)));
            }
            if !col.nullable {
                sql.push_str(" NOT NULL");
            }
            sql
        })
        .collect();
    if !def.primary_key.is_empty() && !autoincrement {
        parts.push(format!("PRIMARY KEY ({})", SQLITE.idents(&def.primary_key)));
    }
    for check in &def.checks {
        parts.push(format!("CONSTRAINT {} CHECK ({})", SQLITE.ident(&check.name), check.expr));
    }
    for fk in &def.foreign_keys {
        parts.push(format!(
            "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){}",
            SQLITE.ident(&fk.name),
            SQLITE.idents(&fk.columns),
            SQLITE.ident(&fk.ref_table.name),
            SQLITE.idents(&fk.ref_columns),
            fk.actions_sql()
        ));
    }
    format!("CREATE TABLE {} (\n  {}\n)", SQLITE.ident(&def.name.name), parts.join(",\n  "))
}

/// A column default in SQLite's SQL.
fn default_sql(d: &DefaultValue, t: &DataType) -> String {
    match d {
        DefaultValue::Literal(l) => sqlexpr::literal_sql(EngineKind::Sqlite, l, t),
        DefaultValue::CurrentTimestamp => match t {
            DataType::Date => "CURRENT_DATE".into(),
            DataType::Time => "CURRENT_TIME".into(),
            _ => "CURRENT_TIMESTAMP".into(),
        },
        DefaultValue::CurrentDate => "CURRENT_DATE".into(),
        DefaultValue::Expr(sql) => format!("({sql})"),
    }
}

fn expression_index_sql(table: &TableName, index: &ExpressionIndex) -> String {
    let mut sql = format!(
        "CREATE {}INDEX IF NOT EXISTS {} ON {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        SQLITE.ident(&index.name),
        SQLITE.ident(&table.name),
        index.elements
    );
    if let Some(p) = &index.predicate {
        sql.push_str(&format!(" WHERE {p}"));
    }
    sql
}

/// The fence triggers of `table` (name, SQL), lifted inside one of Ferry's
/// write transactions and put back before it commits: SQLite has one writer
/// at a time, so no application write can slip in between, and the
/// application always meets the fence.
fn lift_fences(tx: &rusqlite::Transaction<'_>, table: &TableName) -> Result<Vec<String>> {
    let prefix = format!("{}_", fence_name(table));
    let fences: Vec<(String, String)> = tx
        .prepare_cached("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1 AND substr(name, 1, length(?2)) = ?2")
        .and_then(|mut s| s.query_map(rusqlite::params![table.name, prefix], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(map_err)?;
    for (name, _) in &fences {
        tx.execute_batch(&format!("DROP TRIGGER {}", SQLITE.ident(name))).map_err(map_err)?;
    }
    Ok(fences.into_iter().map(|(_, sql)| sql).collect())
}

fn restore_fences(tx: &rusqlite::Transaction<'_>, fences: &[String]) -> Result<()> {
    for sql in fences {
        tx.execute_batch(sql).map_err(map_err)?;
    }
    Ok(())
}

/// Whether the table numbers its rowid with AUTOINCREMENT (kept in `sqlite_sequence`).
fn has_autoincrement(conn: &Connection, table: &str) -> Result<bool> {
    let sql: Option<String> = conn
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| r.get(0))
        .map_err(map_err)?;
    Ok(sql
        .and_then(|sql| sqlexpr::parse_create_table(&sql, EngineKind::Sqlite))
        .is_some_and(|t| t.columns.iter().any(|c| c.autoincrement)))
}

fn index_sql(table: &TableName, columns: &[String], unique: bool) -> String {
    let name = object_name(&table.name, columns, if unique { "key" } else { "idx" });
    format!(
        "CREATE {}INDEX IF NOT EXISTS {} ON {} ({})",
        if unique { "UNIQUE " } else { "" },
        SQLITE.ident(&name),
        SQLITE.ident(&table.name),
        SQLITE.idents(columns)
    )
}

fn not_found(conn: &Connection, table: &TableName) -> EngineError {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .unwrap_or_default();
    EngineError::table_not_found(
        table,
        &conn.path().map_or_else(|| "this database".to_string(), |p| format!("sqlite:{p}")),
        &tables,
    )
}

#[async_trait]
impl Catalog for SqliteEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Sqlite
    }

    fn plan_dialect(&self) -> &'static dyn ferry_core::PlanDialect {
        &plan_dialect::PLAN_DIALECT
    }

    fn sql_dialect(&self) -> ferry_engine::sql::Dialect {
        SQLITE
    }

    fn capabilities(&self) -> Capabilities {
        ferry_core::PlanDialect::capabilities(&plan_dialect::PLAN_DIALECT)
    }

    async fn namespace(&self) -> Result<Option<String>> {
        Ok(None)
    }

    fn display_url(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    async fn introspect(&self, table: &TableName) -> Result<TableSchema> {
        let table = table.clone();
        self.with_conn(move |c| introspect_sync(c, &table)).await
    }

    async fn table_exists(&self, table: &TableName) -> Result<bool> {
        let name = table.name.clone();
        self.with_conn(move |c| {
            c.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [&name], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n > 0)
            .map_err(map_err)
        })
        .await
    }

    async fn code_dependents(&self, table: &TableName, columns: &[String]) -> Result<Vec<ColumnDependent>> {
        let (name, columns) = (table.name.clone(), columns.to_vec());
        self.with_conn(move |c| {
            let objects: Vec<(String, String, String, Option<String>)> = c
                .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('view', 'trigger')")
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect())
                .map_err(map_err)?;
            let mut out = Vec::new();
            for (kind, object, on_table, sql) in objects {
                let sql = sql.unwrap_or_default();
                let (kind, about_table) = match kind.as_str() {
                    "view" => (DependentKind::View, ferry_core::schema::mentions_column(&sql, &name)),
                    _ => (DependentKind::Trigger, on_table == name),
                };
                for column in columns.iter().filter(|col| about_table && ferry_core::schema::mentions_column(&sql, col))
                {
                    out.push(ColumnDependent { column: column.clone(), kind, name: object.clone() });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn dependents(&self, table: &TableName) -> Result<Dependents> {
        let name = table.name.clone();
        self.with_conn(move |c| {
            let objects: Vec<(String, String, Option<String>)> = c
                .prepare("SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'view', 'trigger') ORDER BY name")
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
                .map_err(map_err)?;
            let mut out = Dependents::default();
            for (kind, object, sql) in objects {
                match kind.as_str() {
                    "table" if !object.starts_with("sqlite_") => {
                        let schema = introspect_sync(c, &TableName::parse(&object))?;
                        for fk in schema.foreign_keys.into_iter().filter(|fk| fk.ref_table.name == name) {
                            out.foreign_keys_in.push((TableName::parse(&object), fk));
                        }
                    }
                    "trigger" => {
                        let on_table: String = c
                            .query_row("SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' AND name = ?1", [&object], |r| r.get(0))
                            .map_err(map_err)?;
                        if on_table == name {
                            out.triggers.push(object);
                        }
                    }
                    "view" if sql.as_deref().is_some_and(|sql| ferry_core::schema::mentions_column(sql, &name)) => out.views.push(object),
                    _ => {}
                }
            }
            Ok(out)
        })
        .await
    }

    async fn version(&self) -> Result<String> {
        Ok(rusqlite::version().to_string())
    }

    async fn transport(&self) -> Result<ferry_core::Transport> {
        Ok(ferry_core::Transport::LocalFile)
    }

    async fn free_disk_bytes(&self) -> Result<Option<u64>> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ".".into());
        Ok(fs4::available_space(&dir).ok())
    }

    async fn expression_type(&self, _table: &TableName, _sql: &str) -> Result<Option<DataType>> {
        // SQLite expressions have no declared type.
        Ok(None)
    }

    fn storage_type(&self, t: &DataType, _in_key_or_index: bool) -> DataType {
        t.clone()
    }

    fn schema_support(&self) -> SchemaSupport {
        SchemaSupport {
            partial_indexes: true,
            expression_indexes: true,
            index_methods: false,
            comments: false,
            virtual_columns: true,
            identity_anywhere: false,
            fk_set_default: true,
            on_update_timestamp: false,
            case_insensitive_collation: None,
        }
    }

    async fn count(&self, table: &TableName, filter: Option<&str>) -> Result<u64> {
        let sql = SQLITE.count(table, filter);
        let table = table.clone();
        self.with_conn(move |c| {
            c.query_row(&sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(|e| map_err(e).context(format_args!("counting {table}")))
        })
        .await
    }
}

#[async_trait]
impl Ddl for SqliteEngine {
    async fn drop_scratch_table(&self, table: &TableName) -> Result<()> {
        ferry_engine::ensure_scratch(table)?;
        let sql = format!("DROP TABLE IF EXISTS {}", SQLITE.ident(&table.name));
        self.with_conn(move |c| c.execute_batch(&sql).map_err(map_err)).await
    }

    async fn create_table(&self, def: &TableDef) -> Result<()> {
        let sql = create_table_sql(def);
        let name = def.name.clone();
        self.with_conn(move |c| {
            c.execute_batch(&sql).map_err(|e| map_err(e).context(format_args!("creating table {name}")))
        })
        .await
    }

    async fn create_index(&self, table: &TableName, columns: &[String], unique: bool) -> Result<()> {
        let sql = index_sql(table, columns, unique);
        let table = table.clone();
        self.with_conn(move |c| {
            c.execute_batch(&sql).map_err(|e| map_err(e).context(format_args!("creating an index on {table}")))
        })
        .await
    }

    fn table_ddl(&self, def: &TableDef) -> (Vec<String>, Vec<String>) {
        let after = def
            .unique_keys
            .iter()
            .map(|cols| index_sql(&def.name, cols, true))
            .chain(def.indexes.iter().map(|cols| index_sql(&def.name, cols, false)))
            .chain(def.expression_indexes.iter().map(|i| expression_index_sql(&def.name, i)))
            .collect();
        (vec![create_table_sql(def)], after)
    }

    async fn create_expression_index(&self, table: &TableName, index: &ExpressionIndex) -> Result<()> {
        let sql = expression_index_sql(table, index);
        let context = format!("creating index {} on {table}", index.name);
        self.with_conn(move |c| c.execute_batch(&sql).map_err(|e| map_err(e).context(context))).await
    }

    async fn set_identity_next(&self, table: &TableName, _column: &str, next: i64) -> Result<()> {
        let name = table.name.clone();
        self.with_conn(move |c| {
            if !has_autoincrement(c, &name)? {
                return Ok(());
            }
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let updated = tx
                .execute(
                    "UPDATE sqlite_sequence SET seq = max(seq, ?2 - 1) WHERE name = ?1",
                    rusqlite::params![name, next],
                )
                .map_err(map_err)?;
            if updated == 0 {
                tx.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2 - 1)",
                    rusqlite::params![name, next],
                )
                .map_err(map_err)?;
            }
            tx.commit().map_err(map_err)
        })
        .await
    }

    fn identity_sql(&self, table: &TableName, _column: &str, next: &str) -> Vec<String> {
        vec![format!(
            "UPDATE sqlite_sequence SET seq = max(seq, {next} - 1) WHERE name = {}",
            sqlexpr::string_literal(EngineKind::Sqlite, &table.name)
        )]
    }

    async fn add_foreign_key(&self, table: &TableName, _fk: &ForeignKey) -> Result<()> {
        Err(EngineError::new(
            ErrorKind::Unsupported,
            format!("SQLite cannot add a foreign key to the existing table {table}"),
        ))
    }

    async fn execute(&self, statements: &[String], atomic: bool, lock_timeout: std::time::Duration) -> Result<u64> {
        let statements = statements.to_vec();
        self.with_conn(move |c| {
            c.busy_timeout(lock_timeout).map_err(map_err)?;
            let run = |c: &Connection| -> Result<u64> {
                let mut changed = 0;
                for sql in &statements {
                    changed =
                        c.execute(sql, []).map_err(|e| map_err(e).context(ferry_engine::statement_context(sql)))?
                            as u64;
                }
                Ok(changed)
            };
            let result = if atomic {
                c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(map_err).and_then(|tx| {
                    let changed = run(&tx)?;
                    tx.commit().map_err(map_err)?;
                    Ok(changed)
                })
            } else {
                run(c)
            };
            c.busy_timeout(std::time::Duration::from_secs(10)).map_err(map_err)?;
            result
        })
        .await
    }

    async fn drop_table(&self, table: &TableName) -> Result<()> {
        let sql = format!("DROP TABLE IF EXISTS {}", SQLITE.ident(&table.name));
        self.with_conn(move |c| c.execute_batch(&sql).map_err(map_err)).await
    }

    async fn rename_table(&self, from: &TableName, to: &TableName) -> Result<()> {
        let sql = format!("ALTER TABLE {} RENAME TO {}", SQLITE.ident(&from.name), SQLITE.ident(&to.name));
        let what = format!("renaming {from} to {to}");
        self.with_conn(move |c| c.execute_batch(&sql).map_err(|e| map_err(e).context(what))).await
    }

    /// SQLite's own copy: `VACUUM INTO` writes a consistent, compact copy of the whole file.
    async fn backup(&self, _tables: &[TableName], dir: &Path) -> Result<PathBuf> {
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "db".into());
        let file = dir.join(format!("ferry-backup-{stem}.db"));
        let _ = std::fs::remove_file(&file);
        let sql = format!("VACUUM INTO {}", sqlexpr::string_literal(EngineKind::Sqlite, &file.to_string_lossy()));
        self.with_conn(move |c| c.execute_batch(&sql).map_err(|e| map_err(e).context("backing up the source"))).await?;
        Ok(file)
    }

    fn scratch_name(&self, purpose: &str) -> String {
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "db".into());
        self.path.with_file_name(format!("ferry_{purpose}_{stem}.db")).to_string_lossy().into_owned()
    }

    async fn create_scratch_database(&self, name: &str) -> Result<Arc<dyn Engine>> {
        self.drop_scratch_database(name).await?;
        Ok(Arc::new(SqliteEngine::open(Path::new(name), OpenMode::Create).await?))
    }

    async fn drop_scratch_database(&self, name: &str) -> Result<()> {
        ferry_engine::ensure_scratch_name(name)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{name}{suffix}"));
        }
        Ok(())
    }

    async fn restore_scratch(&self, dump: &Path, name: &str) -> Result<Arc<dyn Engine>> {
        self.drop_scratch_database(name).await?;
        std::fs::copy(dump, name).map_err(|e| {
            EngineError::new(ErrorKind::Io, format!("cannot copy the backup {} to {name}: {e}", dump.display()))
        })?;
        Ok(Arc::new(SqliteEngine::open(Path::new(name), OpenMode::Existing).await?))
    }

    async fn install_fence(&self, table: &TableName, message: &str, _lock_timeout: Duration) -> Result<()> {
        let name = fence_name(table);
        let mut sql = String::from("BEGIN IMMEDIATE;");
        for (suffix, event) in [("ins", "INSERT"), ("upd", "UPDATE"), ("del", "DELETE")] {
            let trigger = SQLITE.ident(&format!("{name}_{suffix}"));
            sql.push_str(&format!(
                "DROP TRIGGER IF EXISTS {trigger}; CREATE TRIGGER {trigger} BEFORE {event} ON {} BEGIN SELECT RAISE(ABORT, {}); END;",
                SQLITE.ident(&table.name),
                sqlexpr::string_literal(EngineKind::Sqlite, message)
            ));
        }
        sql.push_str("COMMIT;");
        let table = table.clone();
        self.with_conn(move |c| {
            c.execute_batch(&sql).map_err(|e| {
                let _ = c.execute_batch("ROLLBACK");
                map_err(e).context(format_args!("fencing writes to {table}"))
            })
        })
        .await
    }

    async fn remove_fence(&self, table: &TableName, _lock_timeout: Duration) -> Result<()> {
        let name = fence_name(table);
        let sql: String = ["ins", "upd", "del"]
            .iter()
            .map(|suffix| format!("DROP TRIGGER IF EXISTS {};", SQLITE.ident(&format!("{name}_{suffix}"))))
            .collect();
        let table = table.clone();
        self.with_conn(move |c| {
            c.execute_batch(&sql).map_err(|e| map_err(e).context(format_args!("lifting the write fence of {table}")))
        })
        .await
    }
}

#[async_trait]
impl Reader for SqliteEngine {
    async fn identity_next(&self, table: &TableName, _column: &str) -> Result<Option<i64>> {
        let name = table.name.clone();
        self.with_conn(move |c| {
            if !has_autoincrement(c, &name)? {
                return Ok(None); // the largest rowid plus one
            }
            let seq: Option<i64> = c
                .query_row("SELECT seq FROM sqlite_sequence WHERE name = ?1", [&name], |r| r.get(0))
                .optional()
                .map_err(map_err)?;
            Ok(Some(seq.unwrap_or(0) + 1))
        })
        .await
    }

    async fn read_batch(&self, read: &ReadSpec, after: Option<&[Value]>, limit: usize) -> Result<Vec<Row>> {
        let query = SQLITE.keyset_select(read, after.is_some(), limit);
        let after: Vec<Value> = after.map(|a| a.to_vec()).unwrap_or_default();
        let table = read.table.clone();
        self.with_conn(move |c| {
            let params: Vec<&Value> = query.binds.iter().map(|&i| &after[i]).collect();
            query_rows(c, &query.sql, params).map_err(|e| e.context(format_args!("reading {table}")))
        })
        .await
    }

    async fn read_range(&self, read: &ReadSpec, range: &KeyRange, offset: usize, limit: usize) -> Result<Vec<Row>> {
        let query = SQLITE.range_select(read, range.after.is_some(), range.through.is_some(), offset, limit);
        let range = range.clone();
        let (table, width) = (read.table.clone(), read.key.len());
        self.with_conn(move |c| {
            let params = range.bind_values(&query.binds, width);
            query_rows(c, &query.sql, params).map_err(|e| e.context(format_args!("reading {table}")))
        })
        .await
    }

    async fn read_keys(&self, read: &ReadSpec, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let read = read.clone();
        let keys = keys.to_vec();
        self.with_conn(move |c| {
            let mut out = Vec::new();
            for chunk in keys.chunks(200) {
                let query = SQLITE.select_by_keys(&read, chunk.len());
                let flat: Vec<&Value> = chunk.iter().flatten().collect();
                let params = query.binds.iter().map(|&i| flat[i]).collect();
                out.extend(query_rows(c, &query.sql, params)?);
            }
            Ok(out)
        })
        .await
    }

    async fn scalar(&self, sql: &str) -> Result<Option<String>> {
        let rows = self.read_only(sql).await?;
        Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()).and_then(text_of))
    }

    async fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        Ok(self.read_only(sql).await?.into_iter().map(|r| r.into_iter().map(text_of).collect()).collect())
    }
}

#[async_trait]
impl Writer for SqliteEngine {
    async fn upsert(&self, write: &WriteSpec, rows: Rows) -> Result<()> {
        self.write_rows(write, rows, None).await
    }

    /// `durability` is the connection's `synchronous = NORMAL`: lowering it
    /// for a batch would risk the file itself on a power loss, not only the
    /// last commits.
    async fn upsert_checkpointed(
        &self,
        write: &WriteSpec,
        rows: Rows,
        checkpoint: &Checkpoint,
        _durability: Durability,
    ) -> Result<()> {
        self.write_rows(write, rows, Some(checkpoint.clone())).await
    }

    async fn delete_keys(&self, write: &WriteSpec, keys: &[Vec<Value>]) -> Result<()> {
        let (table, key, keys) = (write.table.clone(), write.key.clone(), keys.to_vec());
        self.with_conn(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let fences = lift_fences(&tx, &table)?;
            for chunk in keys.chunks(200) {
                let q = SQLITE.delete_by_keys(&table, &key, chunk.len());
                let flat: Vec<&Value> = chunk.iter().flatten().collect();
                tx.execute(&q.sql, params_from_iter(q.binds.iter().map(|&i| Bind(flat[i])))).map_err(map_err)?;
            }
            restore_fences(&tx, &fences)?;
            tx.commit().map_err(map_err)
        })
        .await
    }

    async fn delete_all(&self, table: &TableName) -> Result<()> {
        let sql = format!("DELETE FROM {}", SQLITE.ident(&table.name));
        let table = table.clone();
        self.with_conn(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let fences = lift_fences(&tx, &table)?;
            tx.execute_batch(&sql).map_err(map_err)?;
            restore_fences(&tx, &fences)?;
            tx.commit().map_err(map_err)
        })
        .await
    }
}

#[async_trait]
impl ChangeCapture for SqliteEngine {
    fn capture_scope(&self) -> ferry_engine::CaptureScope {
        self.scope.get()
    }

    fn set_capture_scope(&self, scope: ferry_engine::CaptureScope) {
        self.scope.set(scope);
    }

    async fn install_capture(
        &self,
        table: &TableSchema,
        key: &[String],
        method: CaptureMethod,
        _lock_timeout: Duration,
    ) -> Result<()> {
        if method != CaptureMethod::Triggers {
            return Err(unsupported_capture(self.kind(), method));
        }
        let (table, key, scope) = (table.clone(), key.to_vec(), self.scope.get());
        self.with_conn(move |c| {
            capture::install(c, &scope, &table, &key)
                .map_err(|e| map_err(e).context(format_args!("installing change capture on {}", table.name)))
        })
        .await
    }

    async fn remove_capture(&self, table: &TableName, _lock_timeout: Duration) -> Result<()> {
        let (table, scope) = (table.clone(), self.scope.get());
        self.with_conn(move |c| {
            capture::remove(c, &scope, &table)
                .map_err(|e| map_err(e).context(format_args!("removing change capture from {table}")))
        })
        .await
    }

    async fn read_changes(&self, table: &TableName, key_width: usize, limit: usize) -> Result<Vec<Change>> {
        let (table, scope) = (table.clone(), self.scope.get());
        self.with_conn(move |c| {
            let sql = capture::read_sql(c, &scope, &table, key_width, limit)
                .map_err(map_err)?
                .ok_or_else(|| no_capture(c, &table))?;
            Ok(query_rows(c, &sql, Vec::new())?.into_iter().map(Change::from_row).collect())
        })
        .await
    }

    async fn ack_changes(&self, _table: &TableName, seqs: &[i64]) -> Result<()> {
        let seqs = seqs.to_vec();
        self.with_conn(move |c| capture::ack(c, &seqs).map_err(map_err)).await
    }

    async fn capture_lag(&self, table: &TableName) -> Result<CaptureLag> {
        let (table, scope) = (table.clone(), self.scope.get());
        self.with_conn(move |c| capture::lag(c, &scope, &table).map_err(map_err)?.ok_or_else(|| no_capture(c, &table)))
            .await
    }
}

#[async_trait]
impl Health for SqliteEngine {
    /// A file has no server that could stop answering; a lock is waited for
    /// at most the busy timeout.
    async fn answers(&self) -> Result<()> {
        Ok(())
    }

    async fn probe(&self, sql: &str) -> Result<()> {
        self.read_only(sql).await.map(|_| ())
    }

    async fn replica_lag(&self) -> Result<Option<ReplicaLag>> {
        Ok(None)
    }

    async fn active_sessions(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    async fn connect_again(&self) -> Result<Arc<dyn Engine>> {
        let engine = SqliteEngine::open(&self.path, OpenMode::Existing).await?;
        engine.set_capture_scope(self.capture_scope());
        Ok(Arc::new(engine))
    }
}

#[async_trait]
impl Locks for SqliteEngine {
    async fn try_lock(&self, _name: &str) -> Result<Option<LockGuard>> {
        // One file, one migration: an advisory (flock) lock on the database
        // file itself, independent of the POSIX locks SQLite takes inside it.
        let file = std::fs::File::open(&self.path)
            .map_err(|e| EngineError::new(ErrorKind::Io, format!("cannot open {}: {e}", self.path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard::new(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(EngineError::new(ErrorKind::Io, format!("cannot lock {}: {e}", self.path.display())))
            }
        }
    }
}

/// A value in its text form (`None` for NULL).
fn text_of(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) => Some(s),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ColumnDef;
    use ferry_engine::SelectItem;

    async fn engine(dir: &Path) -> SqliteEngine {
        SqliteEngine::open(&dir.join("t.db"), OpenMode::Create).await.unwrap()
    }

    fn def() -> TableDef {
        let columns = vec![
            ColumnDef::new("id", DataType::Int64, false),
            ColumnDef::new("name", DataType::Text { max_chars: Some(20) }, true),
            ColumnDef::new("price", DataType::Decimal { precision: Some(30), scale: Some(2) }, true),
        ];
        let mut def = TableDef::new(TableName::parse("items"), columns, vec!["id".into()]);
        def.unique_keys = vec![vec!["name".into()]];
        def.indexes = vec![vec!["price".into()]];
        def
    }

    #[tokio::test]
    async fn create_introspect_upsert_read() {
        let dir = tempfile_dir();
        let e = engine(dir.path()).await;
        e.create_table(&def()).await.unwrap();
        e.create_index(&TableName::parse("items"), &["name".into()], true).await.unwrap();
        e.create_index(&TableName::parse("items"), &["price".into()], false).await.unwrap();
        e.create_index(&TableName::parse("items"), &["price".into()], false).await.unwrap();
        let schema = e.introspect(&TableName::parse("items")).await.unwrap();
        assert_eq!(schema.primary_key, ["id"]);
        assert_eq!(
            schema.column("price").unwrap().data_type,
            DataType::Decimal { precision: Some(30), scale: Some(2) }
        );
        assert_eq!(schema.unique_keys[0].columns, ["name"]);
        assert_eq!(schema.indexes[0].columns, ["price"]);

        let write = WriteSpec {
            table: TableName::parse("items"),
            columns: def().columns.iter().map(|c| (c.name.clone(), c.data_type.clone())).collect(),
            key: vec!["id".into()],
        };
        let big = "123456789012345678901234567.89".to_string();
        let rows: Vec<Row> =
            (1..=5).map(|i| vec![Value::Int(i), Value::Text(format!("n{i}")), Value::Decimal(big.clone())]).collect();
        e.upsert(&write, Rows::from(rows)).await.unwrap();
        // idempotent: the same keys again replace, never duplicate
        e.upsert(&write, Rows::from(vec![vec![Value::Int(1), Value::Text("one".into()), Value::Null]])).await.unwrap();
        assert_eq!(e.count(&TableName::parse("items"), None).await.unwrap(), 5);

        let read = ReadSpec {
            table: TableName::parse("items"),
            select: vec![
                SelectItem::Column("id".into()),
                SelectItem::Column("name".into()),
                SelectItem::Column("price".into()),
            ],
            key: vec!["id".into()],
            key_positions: vec![0],
            filter: None,
        };
        let first = e.read_batch(&read, None, 2).await.unwrap();
        assert_eq!(first[0], vec![Value::Int(1), Value::Text("one".into()), Value::Null]);
        let next = e.read_batch(&read, Some(&[Value::Int(2)]), 10).await.unwrap();
        assert_eq!(next.len(), 3);
        assert_eq!(next[0][2], Value::Text(big), "decimals wider than a double keep every digit");
        let picked = e.read_keys(&read, &[vec![Value::Int(4)], vec![Value::Int(99)]]).await.unwrap();
        assert_eq!(picked.len(), 1);
    }

    #[tokio::test]
    async fn missing_things_are_clear_errors() {
        let dir = tempfile_dir();
        let err = SqliteEngine::open(&dir.path().join("nope.db"), OpenMode::Existing).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let e = engine(dir.path()).await;
        e.create_table(&def()).await.unwrap();
        let err = e.introspect(&TableName::parse("itemz")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.hint().unwrap().contains("items"));
    }

    #[tokio::test]
    async fn lock_is_exclusive() {
        let dir = tempfile_dir();
        let a = engine(dir.path()).await;
        let b = engine(dir.path()).await;
        let held = a.try_lock("m").await.unwrap();
        assert!(held.is_some());
        assert!(b.try_lock("m").await.unwrap().is_none());
        drop(held);
        assert!(b.try_lock("m").await.unwrap().is_some());
    }

    fn tempfile_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }
}
