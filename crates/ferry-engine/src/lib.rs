//! The small set of primitives every database engine supplies.
//!
//! Policy (what to copy, in which order, when to checkpoint, how to verify)
//! lives in `ferry-run` and is written once against [`Engine`]. An engine
//! only knows how to talk to its database: introspect, create, read a key
//! range in key order, upsert, count, and hold an advisory lock.

mod capabilities;
pub mod checkpoint;
mod error;
mod scope;
pub mod sql;
pub mod tls;
mod url;
mod watched;

pub use crate::capabilities::{Capabilities, ZeroDateConditions};
pub use crate::checkpoint::{Checkpoint, CHECKPOINT_TABLE};
pub use crate::error::{EngineError, ErrorKind, Result};
pub use crate::scope::{CaptureScope, ScopeCell};
pub use crate::url::{DatabaseUrl, EngineKind};
pub use crate::watched::Watched;

use async_trait::async_trait;
use ferry_core::{
    CaptureMethod, ColumnDependent, DataType, Dependents, ExpressionIndex, ForeignKey, Row, TableDef, TableName,
    TableSchema, Value,
};

/// A batch of rows, shared so that the caller keeps it while an engine writes it.
pub type Rows = std::sync::Arc<[Row]>;

/// One item of a SELECT list on the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem {
    Column(String),
    /// Source-dialect SQL, spliced as written in the spec (it is the user's SQL).
    Expr(String),
}

/// How to read rows of one table in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSpec {
    pub table: TableName,
    pub select: Vec<SelectItem>,
    /// Key column names, in key order; each is also a plain column of `select`.
    pub key: Vec<String>,
    /// Positions in `select` of the key columns, in key order.
    pub key_positions: Vec<usize>,
    pub filter: Option<String>,
}

impl ReadSpec {
    pub fn key_of(&self, row: &Row) -> Vec<Value> {
        self.key_positions.iter().map(|&i| row[i].clone()).collect()
    }
}

/// A slice of the key space: keys greater than `after` (when given) and at
/// most `through` (when given). Consecutive ranges share a bound, so a
/// table cut into ranges loses and repeats no key.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeyRange {
    pub after: Option<Vec<Value>>,
    pub through: Option<Vec<Value>>,
}

impl KeyRange {
    /// The values to bind for [`sql::Dialect::range_where`]'s placeholders.
    pub fn bind_values<'a>(&'a self, binds: &[usize], width: usize) -> Vec<&'a Value> {
        binds
            .iter()
            .map(|&i| match i.checked_sub(width) {
                None => &self.after.as_ref().expect("after bound")[i],
                Some(j) => &self.through.as_ref().expect("through bound")[j],
            })
            .collect()
    }
}

/// The number of rows of a key range and an order-independent sum of their
/// hashes, computed in the database. Comparable only with a checksum the
/// same engine computed over columns of the same types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeChecksum {
    pub rows: u64,
    /// The sum of 64-bit row hashes, modulo 2^64.
    pub sum: u64,
}

/// A decimal integer (a database's exact sum of signed or unsigned 64-bit
/// hashes) reduced modulo 2^64, so that engines that sum differently agree.
pub fn wrap_sum(decimal: &str) -> u64 {
    let (negative, digits) = match decimal.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, decimal.trim()),
    };
    let mut value: u64 = 0;
    for d in digits.bytes().take_while(|b| b.is_ascii_digit()) {
        value = value.wrapping_mul(10).wrapping_add((d - b'0') as u64);
    }
    if negative {
        value.wrapping_neg()
    } else {
        value
    }
}

/// Whether a commit must be on disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A crash of the server may lose it (with everything committed after
    /// it); what it committed is still all or nothing.
    Deferred,
    /// On disk, with every commit before it, when the commit returns.
    Immediate,
}

/// One captured change: its place in the log and the key of the row it touched.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub seq: i64,
    pub key: Vec<Value>,
}

impl Change {
    /// From a change-log row read as `seq, k0, k1, ...`.
    pub fn from_row(mut row: Row) -> Change {
        let seq = match row.first() {
            Some(Value::Int(i)) => *i,
            _ => 0,
        };
        row.remove(0);
        Change { seq, key: row }
    }

    /// From a change-log row read as `seq, op = 'T', k0, k1, ...`: a
    /// truncation is told by its op, never by its keys (which may be NULL).
    pub fn from_log_row(mut row: Row) -> Change {
        let truncated = row.len() > 1 && matches!(row.remove(1), Value::Bool(true) | Value::Int(1));
        let change = Change::from_row(row);
        if truncated {
            Change::truncation(change.seq)
        } else {
            change
        }
    }

    /// The table was emptied (a `TRUNCATE`): every key may have changed.
    pub fn truncation(seq: i64) -> Change {
        Change { seq, key: Vec::new() }
    }

    pub fn is_truncation(&self) -> bool {
        self.key.is_empty()
    }
}

/// How far capture is ahead of replay for one table.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CaptureLag {
    /// Changes logged and not yet replayed.
    pub pending: u64,
    /// Seconds since the oldest pending change, by the source's clock.
    pub oldest_seconds: Option<f64>,
}

/// How far one replica is behind its primary.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaLag {
    /// Which replica (host:port, or PostgreSQL's application name / address).
    pub replica: String,
    /// Seconds behind; None when the replica is not replicating (stopped or broken).
    pub seconds: Option<f64>,
}

impl ReplicaLag {
    /// The worse of two: not replicating, then the larger lag.
    pub fn worst(self, other: ReplicaLag) -> ReplicaLag {
        match (self.seconds, other.seconds) {
            (None, _) => self,
            (_, None) => other,
            (Some(a), Some(b)) if b > a => other,
            _ => self,
        }
    }
}

/// The change log of a source table in one migration's scope, named predictably.
pub fn change_log_table(scope: &CaptureScope, table: &TableName) -> TableName {
    TableName {
        schema: table.schema.clone(),
        name: ferry_core::schema::object_name(
            &scope.qualify(&format!("{SCRATCH_PREFIX}changes_"), &table.name),
            &[],
            "log",
        ),
    }
}

/// The key columns of a change log (`k0 int, k1 varchar(20)`), of the
/// source key's own types, each wrapped by `declare` (PostgreSQL makes them
/// arrays); `fallback` for a key that is not a column.
pub fn log_key_columns(
    table: &ferry_core::TableSchema,
    key: &[String],
    fallback: &str,
    declare: impl Fn(&str) -> String,
) -> String {
    key.iter()
        .enumerate()
        .map(|(i, k)| format!("k{i} {}", declare(table.column(k).map(|c| c.native_type.as_str()).unwrap_or(fallback))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The base name of the capture triggers (`_ins`, `_upd`, `_del` are appended)
/// and of the PostgreSQL function, in one migration's scope: short enough for
/// every engine's 63-64 limit.
pub fn capture_name(scope: &CaptureScope, table: &TableName) -> String {
    ferry_core::schema::bounded_name(&scope.qualify(&format!("{SCRATCH_PREFIX}capture_"), &table.name), 58)
}

/// The base name of a table's write fence (a trigger, and on PostgreSQL its function).
pub fn fence_name(table: &TableName) -> String {
    ferry_core::schema::bounded_name(&format!("{SCRATCH_PREFIX}fence_{}", table.name), 58)
}

/// How to write rows into one target table.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteSpec {
    pub table: TableName,
    pub columns: Vec<(String, DataType)>,
    /// Key column names (target names); upserts conflict on these.
    pub key: Vec<String>,
}

/// The error an engine gives for a capture method it does not have.
pub fn unsupported_capture(kind: EngineKind, method: CaptureMethod) -> EngineError {
    EngineError::new(
        ErrorKind::Unsupported,
        format!(
            "`capture = \"{method}\"` needs a {} source; a {kind} source captures with triggers",
            method.engine_name().unwrap_or("other")
        ),
    )
    .with_hint("remove `capture` from [source] to use triggers (the default)")
}

/// What Ferry will do to a table, asked of the server's privileges before
/// anything is created.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// Read the rows (every source table).
    Read(TableName),
    /// Create the table (a target table that does not exist yet).
    Create(TableName),
    /// Insert, update and delete rows (a target table that exists).
    Write(TableName),
    /// Install change capture on the table (a source table).
    Capture(TableName, CaptureMethod),
}

/// What of a table's definition an engine can create, beyond columns and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaSupport {
    /// Indexes with a `WHERE`.
    pub partial_indexes: bool,
    /// Indexes on expressions (`lower(email)`).
    pub expression_indexes: bool,
    /// Index access methods other than the B-tree (`gin`, `gist`, `brin`, `hash`).
    pub index_methods: bool,
    /// Table and column comments.
    pub comments: bool,
    /// Generated columns computed on read; where false, every generated column is stored.
    pub virtual_columns: bool,
    /// An identity on any integer column; SQLite numbers only its `INTEGER PRIMARY KEY`.
    pub identity_anywhere: bool,
    /// `ON DELETE SET DEFAULT` / `ON UPDATE SET DEFAULT`.
    pub fk_set_default: bool,
    /// `ON UPDATE CURRENT_TIMESTAMP` on a column (MySQL/MariaDB).
    pub on_update_timestamp: bool,
    /// A collation that ignores case but not accents or trailing spaces, for
    /// text the source compares without case (where the engine has one).
    pub case_insensitive_collation: Option<&'static str>,
}

/// The error for a schema object an engine cannot create.
pub fn unsupported_schema(kind: EngineKind, what: &str) -> EngineError {
    EngineError::new(ErrorKind::Unsupported, format!("{kind} has no {what}"))
}

/// Runs an engine's command-line tool; its output, or an error with what it printed.
pub fn run_tool(mut command: std::process::Command, what: &str) -> Result<Vec<u8>> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().map_err(|e| {
        EngineError::new(ErrorKind::Io, format!("cannot run {program} ({what}): {e}")).with_hint(format!(
            "install {program} (Debian: postgresql-client or mariadb-client) and put it on the PATH"
        ))
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(EngineError::new(
            ErrorKind::Other,
            format!("{program} failed ({what}, {}): {}", output.status, stderr.trim()),
        ));
    }
    Ok(output.stdout)
}

/// The first of `names` found on the PATH (or the first name, for the error it will give).
pub fn find_tool(names: &[&str]) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .find(|name| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
        .unwrap_or(&names[0])
        .to_string()
}

/// The prefix of every object Ferry creates for its own use.
pub const SCRATCH_PREFIX: &str = "ferry_";

/// Guards scratch databases: only `ferry_` names are ever created or dropped as such.
pub fn ensure_scratch_name(name: &str) -> Result<()> {
    let base = std::path::Path::new(name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if base.starts_with(SCRATCH_PREFIX) {
        Ok(())
    } else {
        Err(EngineError::new(
            ErrorKind::Other,
            format!("refusing to treat {name} as a scratch database: not a {SCRATCH_PREFIX} name"),
        ))
    }
}

/// How a scratch database beside `display_url`'s is shown: the same URL, another database.
pub fn scratch_display(display_url: &str, name: &str) -> String {
    match display_url.rsplit_once('/') {
        Some((server, _)) if display_url.contains("://") => format!("{server}/{name}"),
        _ => name.to_string(),
    }
}

/// Guards `drop_scratch_table`: nothing but Ferry's own objects is ever dropped.
pub fn ensure_scratch(table: &TableName) -> Result<()> {
    if table.name.starts_with(SCRATCH_PREFIX) {
        Ok(())
    } else {
        Err(EngineError::new(
            ErrorKind::Other,
            format!("refusing to drop {table}: only {SCRATCH_PREFIX} tables are Ferry's own"),
        ))
    }
}

/// A stable 64-bit key for an advisory lock name (FNV-1a: the same on every
/// platform and version, unlike Rust's randomised hasher).
pub fn lock_key(name: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Held for as long as a runner drives a migration; dropping it releases the lock.
pub struct LockGuard(#[allow(dead_code)] Box<dyn std::any::Any + Send + Sync>);

impl LockGuard {
    pub fn new(inner: impl std::any::Any + Send + Sync) -> LockGuard {
        LockGuard(Box::new(inner))
    }
}

/// A database Ferry reads from or writes to, on any engine: policy is
/// written once over `dyn Engine` (ferry-run) and asks it, never its kind.
///
/// It is the sum of small traits by concern, each implemented by every
/// engine crate: [`Catalog`], [`Ddl`], [`Reader`], [`Writer`],
/// [`ChangeCapture`], [`Health`] and [`Locks`]. Callers hold a `dyn Engine`.
pub trait Engine: Catalog + Ddl + Reader + Writer + ChangeCapture + Health + Locks {}

impl<T: Catalog + Ddl + Reader + Writer + ChangeCapture + Health + Locks> Engine for T {}

/// What an engine is and what a database holds: its kind, capabilities and
/// dialect, tables and their dependents, counts, sizes and types.
#[async_trait]
pub trait Catalog: Send + Sync {
    fn kind(&self) -> EngineKind;

    /// What this engine can do; callers ask this, never [`Catalog::kind`].
    fn capabilities(&self) -> Capabilities;

    /// The SQL and shell commands a plan shows for this engine.
    fn plan_dialect(&self) -> &'static dyn ferry_core::PlanDialect;

    /// How the engine's SQL quotes, numbers parameters and compares row
    /// values: what Ferry's generated reads and writes need to know.
    fn sql_dialect(&self) -> sql::Dialect;

    /// The URL with any password hidden, for messages and logs.
    fn display_url(&self) -> String;

    /// The privileges among `needs` the connected user lacks, each said as
    /// the GRANT (or attribute) that gives it. An engine that cannot tell for
    /// sure says nothing: the statement that needs it fails with the server's
    /// own error later.
    async fn missing_privileges(&self, _needs: &[Need]) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Columns, keys, indexes, foreign keys and size of a table.
    /// A missing table is an error of kind [`ErrorKind::NotFound`].
    async fn introspect(&self, table: &TableName) -> Result<TableSchema>;

    async fn table_exists(&self, table: &TableName) -> Result<bool>;

    /// Foreign keys that reference the table, its triggers, and views that read it.
    async fn dependents(&self, table: &TableName) -> Result<Dependents>;

    /// Every object that uses one of `columns` of `table` (views, triggers,
    /// indexes and key constraints, foreign keys either way, checks,
    /// generated columns), Ferry's own left out: what dropping a column must
    /// wait for.
    async fn column_dependents(&self, table: &TableName, columns: &[String]) -> Result<Vec<ColumnDependent>> {
        let mut out = self.introspect(table).await?.column_users(columns);
        out.extend(self.dependents(table).await?.referencing(columns));
        out.extend(self.code_dependents(table, columns).await?);
        out.retain(|d| !d.name.rsplit('.').next().unwrap_or_default().starts_with("ferry_"));
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The views and triggers whose SQL uses one of `columns` of `table`
    /// (the part of [`Catalog::column_dependents`] each engine finds its own way).
    async fn code_dependents(&self, table: &TableName, columns: &[String]) -> Result<Vec<ColumnDependent>>;

    /// The server's (or library's) version, for the plan.
    async fn version(&self) -> Result<String>;

    /// Free space where the database keeps its data, where the engine can tell.
    async fn free_disk_bytes(&self) -> Result<Option<u64>>;

    /// Whether text in `collation` compares equal despite trailing spaces.
    fn collation_pads(&self, _collation: &str) -> bool {
        false
    }

    /// Conditions for rows whose `column` (of the engine's type
    /// `native_type`) holds a date no other engine can store (MySQL's zero
    /// dates); none where the engine stores none.
    fn zero_date_conditions(&self, _column: &str, _native_type: &str) -> Option<ZeroDateConditions> {
        None
    }

    /// The schema (PostgreSQL) or database (MySQL/MariaDB) unqualified
    /// table names resolve in; none where there is only one (SQLite).
    async fn namespace(&self) -> Result<Option<String>>;

    /// How this engine's connection travels: a local file, clear text or TLS.
    async fn transport(&self) -> Result<ferry_core::Transport>;

    /// The type of a SQL expression over `table`, where the engine can tell.
    async fn expression_type(&self, table: &TableName, sql: &str) -> Result<Option<DataType>>;

    /// The type a column of type `t` will have once created here, as
    /// introspection will report it (`Uuid` becomes `varchar(36)` where the
    /// engine has no uuid type, for instance).
    fn storage_type(&self, t: &DataType, in_key_or_index: bool) -> DataType;

    /// What of a table's definition this engine can create.
    fn schema_support(&self) -> SchemaSupport;

    /// Exact number of rows, optionally under a filter.
    async fn count(&self, table: &TableName, filter: Option<&str>) -> Result<u64>;
}

/// What changes a database's objects: tables, indexes, foreign keys, fences,
/// scratch databases and backups, and statements run as given.
#[async_trait]
pub trait Ddl: Catalog {
    /// Drops a table Ferry made for its own use; refuses any name without the `ferry_` prefix.
    async fn drop_scratch_table(&self, table: &TableName) -> Result<()>;

    /// Creates the table with its columns and primary key (and its foreign
    /// keys where the engine cannot add them later). Unique keys and indexes
    /// come after the data, with [`Ddl::create_index`]: loading into a
    /// table with only its primary key is several times faster.
    async fn create_table(&self, def: &TableDef) -> Result<()>;

    /// Creates a unique key or an index named by [`ferry_core::schema::object_name`];
    /// does nothing if it exists already.
    async fn create_index(&self, table: &TableName, columns: &[String], unique: bool) -> Result<()>;

    /// The statements `create_table` runs for `def`, and those run once the
    /// data is in (unique keys, indexes, foreign keys), for plans to show.
    fn table_ddl(&self, def: &TableDef) -> (Vec<String>, Vec<String>);

    async fn add_foreign_key(&self, table: &TableName, fk: &ForeignKey) -> Result<()>;

    /// Creates a partial, expression or non-B-tree index (its SQL already
    /// this engine's); does nothing if it exists already.
    async fn create_expression_index(&self, _table: &TableName, _index: &ExpressionIndex) -> Result<()> {
        Err(unsupported_schema(self.kind(), "indexes on expressions or with a WHERE"))
    }

    /// Makes the identity of `column` hand out `next` or more from now on.
    async fn set_identity_next(&self, table: &TableName, column: &str, next: i64) -> Result<()>;

    /// The statements `set_identity_next` runs, with `next` as written, for plans.
    fn identity_sql(&self, table: &TableName, column: &str, next: &str) -> Vec<String>;

    /// Fences `table`: a trigger makes every INSERT, UPDATE and DELETE of
    /// the application fail with `message`, while this engine's own writes
    /// go through (writes switch, and reverse sync writes the fenced side).
    /// Idempotent; the DDL waits at most `lock_timeout` for its lock.
    async fn install_fence(&self, table: &TableName, message: &str, lock_timeout: std::time::Duration) -> Result<()>;

    /// Lifts the fence. Idempotent.
    async fn remove_fence(&self, table: &TableName, lock_timeout: std::time::Duration) -> Result<()>;

    /// Renames a table (contract's archive of a source table).
    async fn rename_table(&self, from: &TableName, to: &TableName) -> Result<()>;

    /// Writes a backup of `tables` with the engine's own tool or API
    /// (`pg_dump -Fc`, `mysqldump`, SQLite's `VACUUM INTO`) into `dir`;
    /// returns the file.
    async fn backup(&self, tables: &[TableName], dir: &std::path::Path) -> Result<std::path::PathBuf>;

    /// The name of a scratch database for `purpose` beside this one
    /// (`ferry_<purpose>_<database>`; for SQLite, a file beside this one).
    fn scratch_name(&self, purpose: &str) -> String;

    /// Creates the empty scratch database `name` (from `scratch_name`),
    /// replacing one left by an earlier run, and connects to it.
    async fn create_scratch_database(&self, name: &str) -> Result<std::sync::Arc<dyn Engine>>;

    /// Removes a scratch database. Idempotent.
    async fn drop_scratch_database(&self, name: &str) -> Result<()>;

    /// Restores a backup of this engine into the scratch database `name`
    /// and connects to it. An error says what the restore refused.
    async fn restore_scratch(&self, dump: &std::path::Path, name: &str) -> Result<std::sync::Arc<dyn Engine>>;

    /// Runs statements Ferry wrote (an in-place change's DDL, a backfill
    /// batch's UPDATE) in order, each waiting at most `lock_timeout` for a
    /// lock. With `atomic`, in one transaction: where the engine's DDL is
    /// transactional (PostgreSQL, SQLite) a failing statement undoes the
    /// ones before it; MariaDB/MySQL commit each DDL statement by itself, so
    /// their callers order steps to be resumable. Returns the rows the last
    /// statement changed.
    async fn execute(&self, statements: &[String], atomic: bool, lock_timeout: std::time::Duration) -> Result<u64>;

    /// Drops a table Ferry created (rollback of expand).
    async fn drop_table(&self, table: &TableName) -> Result<()>;
}

/// Rows read by key: batches, ranges, chosen keys, in-database checksums.
#[async_trait]
pub trait Reader: Catalog {
    /// The next value the identity of `column` hands out, where the engine
    /// keeps one apart from the data (a sequence, AUTO_INCREMENT,
    /// `sqlite_sequence`); `None` where it is simply the largest key plus one.
    async fn identity_next(&self, table: &TableName, column: &str) -> Result<Option<i64>>;

    /// Up to `limit` rows with key greater than `after` (all rows when
    /// `None`), in ascending key order.
    async fn read_batch(&self, read: &ReadSpec, after: Option<&[Value]>, limit: usize) -> Result<Vec<Row>>;

    /// Up to `limit` rows of a key range in ascending key order, skipping the first `offset`.
    async fn read_range(&self, read: &ReadSpec, range: &KeyRange, offset: usize, limit: usize) -> Result<Vec<Row>>;

    /// The smallest and largest value of the first key column (under the
    /// filter), or `None` for an empty table.
    async fn key_bounds(&self, read: &ReadSpec) -> Result<Option<(Value, Value)>> {
        let bounds = sql::bounds_spec(read, self.sql_dialect());
        let rows = self.read_range(&bounds, &KeyRange::default(), 0, 1).await?;
        Ok(rows.into_iter().next().and_then(|mut r| {
            let max = r.pop()?;
            let min = r.pop()?;
            (!min.is_null()).then_some((min, max))
        }))
    }

    /// Count and hash of a key range computed in the database, so that no
    /// row crosses the network; `None` where the engine leaves hashing to
    /// the caller (SQLite is in-process: reading is as cheap as hashing).
    async fn checksum_range(&self, _read: &ReadSpec, _range: &KeyRange) -> Result<Option<RangeChecksum>> {
        Ok(None)
    }

    /// The rows with the given keys, in no particular order; missing keys are absent.
    async fn read_keys(&self, read: &ReadSpec, keys: &[Vec<Value>]) -> Result<Vec<Row>>;

    /// The first column of the first row of a query, as text (`None` for no
    /// row or NULL): integrity checks and the operator's own assertions.
    async fn scalar(&self, sql: &str) -> Result<Option<String>>;

    /// Every row of a read-only query, each value in its text form (NULL as
    /// `None`): the shadow reads of the application's own query shapes.
    async fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>>;
}

/// Rows written by key: idempotent upserts (with the copy's checkpoint) and deletes.
#[async_trait]
pub trait Writer: Catalog {
    /// Inserts the rows, replacing any row with the same key. Idempotent:
    /// writing the same rows twice leaves the same table.
    async fn upsert(&self, write: &WriteSpec, rows: Rows) -> Result<()>;

    /// [`Writer::upsert`], and in the same transaction `checkpoint` into
    /// [`CHECKPOINT_TABLE`] (which must exist): the rows and their checkpoint
    /// are committed, or lost, together. With [`Durability::Deferred`] the
    /// commit may return before it is on disk where the engine can say so
    /// for one transaction (PostgreSQL); [`Durability::Immediate`] makes it,
    /// and every commit before it, durable.
    async fn upsert_checkpointed(
        &self,
        write: &WriteSpec,
        rows: Rows,
        checkpoint: &Checkpoint,
        durability: Durability,
    ) -> Result<()>;

    /// Deletes the rows with the given keys; missing keys are ignored.
    async fn delete_keys(&self, write: &WriteSpec, keys: &[Vec<Value>]) -> Result<()>;

    /// Deletes every row of `table` (replay of a source `TRUNCATE`).
    async fn delete_all(&self, table: &TableName) -> Result<()>;
}

/// Change capture on a source: install, read, acknowledge and remove the
/// change log of each capture method the engine offers.
#[async_trait]
pub trait ChangeCapture: Catalog {
    /// The migration whose capture objects this engine creates, reads and
    /// removes ([`CaptureScope::legacy`] until set).
    fn capture_scope(&self) -> CaptureScope;

    /// Sets the capture scope: once, by the migration that owns the engine,
    /// before any capture call.
    fn set_capture_scope(&self, scope: CaptureScope);

    /// The capture methods this engine has: triggers everywhere, and the
    /// server's own log where it can be read (logical decoding, the binlog).
    fn capture_methods(&self) -> &'static [CaptureMethod] {
        &[CaptureMethod::Triggers]
    }

    /// Whether this server can capture with `method`: an error of kind
    /// [`ErrorKind::Unsupported`] that says what to change, asked before
    /// anything is created and again by `install_capture`.
    async fn check_capture(&self, method: CaptureMethod) -> Result<()> {
        match method {
            CaptureMethod::Triggers => Ok(()),
            _ => Err(unsupported_capture(self.kind(), method)),
        }
    }

    /// Installs change capture on `table`: a change log, and what fills it
    /// with the key of every inserted, updated (old and new key) and deleted
    /// row: triggers inside the writing transaction, or the server's own log
    /// read after commit (PostgreSQL [`CaptureMethod::Logical`], MySQL/MariaDB
    /// [`CaptureMethod::Binlog`]). Idempotent. DDL waits at most
    /// `lock_timeout` for its lock.
    async fn install_capture(
        &self,
        table: &TableSchema,
        key: &[String],
        method: CaptureMethod,
        lock_timeout: std::time::Duration,
    ) -> Result<()>;

    /// Removes capture by either method, and the change log. Idempotent.
    async fn remove_capture(&self, table: &TableName, lock_timeout: std::time::Duration) -> Result<()>;

    /// Moves changes captured outside the change log into it (PostgreSQL's
    /// logical slot), so that `read_changes` and `capture_lag` see them and
    /// the source keeps no WAL for Ferry. Triggers write the log directly:
    /// nothing to do. The runner calls it every replay round, backfill or not.
    async fn collect_changes(&self) -> Result<()> {
        Ok(())
    }

    /// Up to `limit` logged changes, oldest first. The log is a queue:
    /// a change stays until `ack_changes` removes it.
    async fn read_changes(&self, table: &TableName, key_width: usize, limit: usize) -> Result<Vec<Change>>;

    /// Removes replayed changes from the log.
    async fn ack_changes(&self, table: &TableName, seqs: &[i64]) -> Result<()>;

    async fn capture_lag(&self, table: &TableName) -> Result<CaptureLag>;

    /// Bytes of write-ahead or binary log the server keeps because Ferry's
    /// log-based capture has not read them yet (`None` without one): a
    /// logical slot's retained WAL, the binary log past the reader's position.
    /// A binary log purged past that position is an error: changes are lost.
    async fn capture_retained_bytes(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// Whether the server answers and how loaded it is: the throttle's and the
/// reconnect loop's questions.
#[async_trait]
pub trait Health: Catalog {
    /// Whether the server answers, asked on a connection of its own (opened
    /// and closed for the question, within the connect timeout) while the
    /// engine's own connections may be waiting: see [`Watched`].
    async fn answers(&self) -> Result<()>;

    /// Another engine on a connection of its own to the same database (a
    /// backfill worker's, the throttle's), with the same capture scope.
    async fn connect_again(&self) -> Result<std::sync::Arc<dyn Engine>>;

    /// Runs a query and discards its rows: the throttle's latency probe.
    async fn probe(&self, sql: &str) -> Result<()>;

    /// The most lagging of the server's replicas, where the engine can find
    /// them: PostgreSQL's `pg_stat_replication`; MySQL/MariaDB replicas listed
    /// by the primary, asked for their own `SHOW REPLICA STATUS`. None when
    /// there is no replica to see.
    async fn replica_lag(&self) -> Result<Option<ReplicaLag>>;

    /// The load signal of the throttle: statements other sessions are
    /// running in this database right now, Ferry's own left out (the copy's
    /// load must not brake the copy). None where the engine has no such
    /// view (SQLite: one file, no server).
    async fn active_sessions(&self) -> Result<Option<u64>>;

    /// Rows inserted, updated and deleted in `table` since the server's
    /// counters began: read twice, the source's write rate. None where the
    /// engine keeps no such count per table (SQLite; MariaDB without `userstat`).
    async fn rows_changed(&self, _table: &TableName) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// Advisory locks: one runner per migration.
#[async_trait]
pub trait Locks: Catalog {
    /// Takes the named advisory lock for the life of the guard, or returns
    /// `None` when another session holds it.
    async fn try_lock(&self, name: &str) -> Result<Option<LockGuard>>;
}

/// A statement as an error's context (`running `…``): its first line, shortened.
pub fn statement_context(sql: &str) -> String {
    let first = sql.trim_start().lines().next().unwrap_or_default();
    let short: String = first.chars().take(120).collect();
    if short.len() < sql.trim().len() {
        format!("running `{short}…`")
    } else {
        format!("running `{short}`")
    }
}
