//! Ferry engine for MySQL and MariaDB.
//!
//! Sessions run in UTC with strict SQL mode, so that the server rejects a
//! value it would otherwise truncate, and talk utf8mb4 so that 4-byte
//! characters survive. Tables Ferry creates use a binary, no-pad collation:
//! keys that differ only in case or trailing spaces stay different rows.

mod in_place;
mod plan_dialect;
pub use plan_dialect::PLAN_DIALECT;
mod binlog;
mod binlog_events;
mod privileges;
mod replicas;
mod tls;

#[doc(hidden)]
pub use binlog_events::keys_in_binlog_bytes;

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};
use ferry_core::sqlexpr;
use ferry_core::{
    schema::object_name, CaptureMethod, Check, Collation, Column, ColumnDef, ColumnDependent, DataType, DefaultValue,
    DependentKind, Dependents, ExpressionIndex, FkAction, ForeignKey, Generated, Identity, Index, Literal, Row,
    TableDef, TableName, TableSchema, TableStats, Value,
};
use ferry_engine::sql::{Dialect, MYSQL};
use ferry_engine::tls::{TlsDialect, TlsMode, TlsSettings};
use ferry_engine::{
    capture_name, change_log_table, fence_name, unsupported_capture, Capabilities, CaptureLag, Change, Checkpoint,
    Durability, Engine, EngineError, EngineKind, ErrorKind, KeyRange, LockGuard, RangeChecksum, ReadSpec, ReplicaLag,
    Result, Rows, SchemaSupport, SelectItem, WriteSpec, ZeroDateConditions,
};
use ferry_engine::{Catalog, ChangeCapture, Ddl, Health, Locks, Reader, Writer};
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts};
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) const Q: Dialect = MYSQL;

/// One row of information_schema.COLUMNS.
struct ColumnFacts {
    name: String,
    column_type: String,
    nullable: String,
    default: Option<String>,
    extra: String,
    generation: Option<String>,
    collation: Option<String>,
    comment: Option<String>,
}

type ColumnRow = (String, String, String, Option<String>, String, Option<String>, Option<String>, Option<String>);
/// The binary character set's id in column definitions.
const BINARY_CHARSET: u16 = 63;
/// Statements stay well under the protocol's 65,535 placeholders and the
/// server's default max_allowed_packet.
const MAX_PARAMS: usize = 60_000;
const MAX_STATEMENT_BYTES: usize = 4 << 20;

pub struct MysqlEngine {
    opts: Opts,
    tls: TlsSettings,
    pool: Pool,
    display: String,
    database: String,
    mariadb_version: Option<(u32, u32)>,
    /// Replicas already reported as impossible to ask for their lag.
    unreachable_replicas: std::sync::Mutex<std::collections::HashSet<String>>,
    scope: ferry_engine::ScopeCell,
}

/// How long connecting may take, TLS and login included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl MysqlEngine {
    pub async fn connect(url: &str, display: String) -> Result<MysqlEngine> {
        let invalid = |e: &dyn std::fmt::Display| {
            EngineError::new(ErrorKind::Other, format!("invalid MySQL URL {display}: {e}"))
                .with_hint("mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
        };
        // The driver knows none of MySQL's own `ssl-mode` parameters: Ferry reads them itself.
        let mut url = url::Url::parse(url).map_err(|e| invalid(&e))?;
        let tls = TlsSettings::take_from(&mut url, TlsDialect::Mysql)
            .map_err(|e| e.context(format_args!("MySQL URL {display}")))?;
        let opts = Opts::from_url(url.as_str()).map_err(|e| invalid(&e))?;
        let opts = OptsBuilder::from_opts(opts).ssl_opts(tls::ssl_opts(&tls)?).into();
        let opts = tls::verify_ca_opts(&tls, opts).await?;
        match MysqlEngine::connect_opts(opts, tls.clone(), display.clone()).await {
            // `PREFERRED`, as MySQL's own clients: encrypt where the server can.
            Err(e) if tls.mode == TlsMode::Prefer && e.kind() == ErrorKind::Tls => {
                let opts = Opts::from_url(url.as_str()).map_err(|e| invalid(&e))?;
                MysqlEngine::connect_opts(opts, TlsSettings { mode: TlsMode::Disable, ..tls }, display).await
            }
            other => other,
        }
    }

    async fn connect_opts(opts: Opts, tls: TlsSettings, display: String) -> Result<MysqlEngine> {
        let database = opts.db_name().unwrap_or_default().to_string();
        let opts: Opts = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .init(vec![
                "SET NAMES utf8mb4",
                "SET time_zone = '+00:00'",
                "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO,ERROR_FOR_DIVISION_BY_ZERO'",
                // Ferry's own writes pass the write fences it installs (see install_fence).
                "SET @ferry_bypass_fence = 1",
            ])
            .pool_opts(PoolOpts::default().with_constraints(PoolConstraints::new(0, 8).expect("valid constraints")))
            .into();
        let pool = Pool::new(opts.clone());
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, pool.get_conn())
            .await
            .map_err(|_| {
                EngineError::new(
                    ErrorKind::Connect,
                    format!("cannot connect to MySQL at {display}: timed out after 10s"),
                )
                .with_hint("check that the server is running and that host and port in the URL are right")
            })?
            .map_err(|e| {
                let error = tls::connect_error(&tls, e, &display).unwrap_or_else(|e| connect_error(e, &display));
                match (error.kind(), tls.mode) {
                    // MariaDB refuses clear text under require_secure_transport as a failed login.
                    (ErrorKind::Auth, TlsMode::Disable) => error.with_hint(
                        "check the user and password in the URL; if the server requires secure transport, \
                         remove `ssl-mode=DISABLED` (Ferry then encrypts)",
                    ),
                    _ => error,
                }
            })?;
        let version: String = conn.query_first("SELECT VERSION()").await.map_err(map_err)?.unwrap_or_default();
        let mariadb_version = version.contains("MariaDB").then(|| {
            let mut parts = version.split(['.', '-']).filter_map(|p| p.parse::<u32>().ok());
            (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
        });
        Ok(MysqlEngine {
            opts,
            tls,
            pool,
            display,
            database,
            mariadb_version,
            unreachable_replicas: Default::default(),
            scope: Default::default(),
        })
    }

    /// A table that does not exist, with the tables that do.
    async fn not_found(&self, conn: &mut Conn, schema: &str, table: &TableName) -> Result<EngineError> {
        let tables: Vec<String> = conn
            .exec(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1 LIMIT 30",
                (schema,),
            )
            .await
            .map_err(map_err)?;
        Ok(EngineError::table_not_found(table, &self.display, &tables))
    }

    async fn conn(&self) -> Result<Conn> {
        self.pool.get_conn().await.map_err(map_err)
    }

    /// The first row of one query run in a READ ONLY transaction: the
    /// operator's checks and probe can read, and nothing they call can write.
    async fn read_only(&self, sql: &str) -> Result<Option<mysql_async::Row>> {
        let mut conn = self.conn().await?;
        conn.query_drop("START TRANSACTION READ ONLY").await.map_err(map_err)?;
        let result = conn.query_first(sql).await;
        conn.query_drop("ROLLBACK").await.map_err(map_err)?;
        result.map_err(map_err)
    }

    /// Runs SQL on a pooled connection (used by tests and tooling).
    pub async fn query_drop(&self, sql: &str) -> Result<()> {
        self.conn().await?.query_drop(sql).await.map_err(map_err)
    }

    fn has_uuid_type(&self) -> bool {
        self.mariadb_version.is_some_and(|v| v >= (10, 7))
    }

    fn collation(&self) -> &'static str {
        match self.mariadb_version {
            Some(v) if v >= (10, 10) => "utf8mb4_nopad_bin",
            Some(_) => "utf8mb4_bin",
            None => "utf8mb4_0900_bin",
        }
    }

    fn create_table_sql(&self, def: &TableDef) -> String {
        let indexed: Vec<&String> = def
            .primary_key
            .iter()
            .chain(def.unique_keys.iter().flatten())
            .chain(def.indexes.iter().flatten())
            .collect();
        let mut parts: Vec<String> =
            def.columns.iter().map(|c| self.column_sql(c, indexed.contains(&&c.name))).collect();
        if !def.primary_key.is_empty() {
            parts.push(format!("PRIMARY KEY ({})", Q.idents(&def.primary_key)));
        }
        // AUTO_INCREMENT must lead some key.
        if let Some(identity) = def.identity_column() {
            if def.primary_key.first() != Some(&identity.name) {
                parts.push(format!("KEY ({})", Q.ident(&identity.name)));
            }
        }
        for check in &def.checks {
            parts.push(format!("CONSTRAINT {} CHECK ({})", Q.ident(&check.name), check.expr));
        }
        let comment = def
            .comment
            .as_ref()
            .map(|c| format!(" COMMENT={}", sqlexpr::string_literal(EngineKind::Mysql, c)))
            .unwrap_or_default();
        format!(
            "CREATE TABLE {} (\n  {}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={}{comment}",
            Q.table(&def.name),
            parts.join(",\n  "),
            self.collation()
        )
    }

    /// A client tool (mysqldump, mysql) reaching the same server as this engine.
    fn client_tool(&self, names: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(ferry_engine::find_tool(names));
        command
            .arg(format!("--host={}", self.opts.ip_or_hostname()))
            .arg(format!("--port={}", self.opts.tcp_port()))
            .arg("--protocol=tcp");
        if let Some(user) = self.opts.user() {
            command.arg(format!("--user={user}"));
        }
        command.env("MYSQL_PWD", self.opts.pass().unwrap_or_default());
        command
    }

    /// Whether `table` has an index named `name` (index DDL is made idempotent by asking first).
    async fn index_exists(&self, conn: &mut Conn, table: &TableName, name: &str) -> Result<bool> {
        let schema = table.schema.clone().unwrap_or_else(|| self.database.clone());
        let exists: Option<i64> = conn
            .exec_first(
                "SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = ? LIMIT 1",
                (&schema, &table.name, name),
            )
            .await
            .map_err(map_err)?;
        Ok(exists.is_some())
    }

    /// One row of information_schema.COLUMNS as a column of the model.
    fn column_of(&self, f: ColumnFacts, json_checked: bool) -> Column {
        let extra = f.extra.to_ascii_lowercase();
        let mut column = Column::new(
            f.name,
            from_column_type(&f.column_type, json_checked),
            f.nullable == "YES",
            f.column_type.clone(),
        );
        if extra.contains("auto_increment") {
            column.identity = Some(Identity::AutoIncrement);
        }
        if extra.contains("on update") {
            column.on_update = Some(DefaultValue::CurrentTimestamp);
        }
        if let Some(expr) = f.generation.filter(|g| !g.is_empty() && extra.contains("generated")) {
            column.generated = Some(Generated { expr, stored: extra.contains("stored") });
        }
        // MariaDB reports the absence of a default as the text NULL and
        // quotes literals; MySQL 8 writes literals bare and marks expressions.
        column.default = match f.default.filter(|d| d != "NULL") {
            None => None,
            Some(d) if self.mariadb_version.is_some() || extra.contains("default_generated") => {
                sqlexpr::parse_default(&d, EngineKind::Mysql)
            }
            Some(d) if column.data_type.is_integer() || matches!(column.data_type, DataType::Decimal { .. }) => {
                Some(DefaultValue::Literal(Literal::Number(d)))
            }
            Some(d) => Some(DefaultValue::Literal(Literal::Text(d))),
        };
        column.collation = f.collation.map(|name| Collation { case_insensitive: name.ends_with("_ci"), name });
        column.comment = f.comment.filter(|c| !c.is_empty());
        column
    }

    fn column_sql(&self, c: &ColumnDef, in_key_or_index: bool) -> String {
        let mut sql = format!("{} {}", Q.ident(&c.name), self.declare(&c.data_type, in_key_or_index));
        if let Some(collation) = &c.collation {
            sql.push_str(&format!(" COLLATE {collation}"));
        }
        if let Some(g) = &c.generated {
            sql.push_str(&format!(" AS ({}) {}", g.expr, if g.stored { "STORED" } else { "VIRTUAL" }));
            return sql;
        }
        sql.push_str(if c.nullable { " NULL" } else { " NOT NULL" });
        if c.identity.is_some() {
            sql.push_str(" AUTO_INCREMENT");
        } else if let Some(d) = &c.default {
            sql.push_str(&format!(" DEFAULT {}", self.default_sql(d, &c.data_type, in_key_or_index)));
        }
        if c.on_update.is_some() {
            sql.push_str(&format!(
                " ON UPDATE {}",
                self.default_sql(&DefaultValue::CurrentTimestamp, &c.data_type, false)
            ));
        }
        if let Some(comment) = &c.comment {
            sql.push_str(&format!(" COMMENT {}", sqlexpr::string_literal(EngineKind::Mysql, comment)));
        }
        sql
    }

    /// A column default in MySQL's SQL: TEXT, BLOB and JSON columns take
    /// only an expression in parentheses (MySQL 8), which MariaDB reads too.
    fn default_sql(&self, d: &DefaultValue, t: &DataType, in_key_or_index: bool) -> String {
        let declared = self.declare(t, in_key_or_index);
        let long = declared.starts_with("long") || declared == "json";
        match d {
            DefaultValue::Literal(l) if long => format!("({})", sqlexpr::literal_sql(EngineKind::Mysql, l, t)),
            DefaultValue::Literal(l) => sqlexpr::literal_sql(EngineKind::Mysql, l, t),
            DefaultValue::CurrentTimestamp => match t {
                DataType::Timestamp | DataType::TimestampTz => "CURRENT_TIMESTAMP(6)".into(),
                DataType::Date => "(curdate())".into(),
                DataType::Time => "(curtime(6))".into(),
                _ => "CURRENT_TIMESTAMP".into(),
            },
            DefaultValue::CurrentDate => "(curdate())".into(),
            DefaultValue::Expr(sql) => format!("({sql})"),
        }
    }

    fn declare(&self, t: &DataType, in_key_or_index: bool) -> String {
        match self.storage_type(t, in_key_or_index) {
            DataType::Bool => "tinyint(1)".into(),
            DataType::Int16 => "smallint".into(),
            DataType::Int32 => "int".into(),
            DataType::Int64 => "bigint".into(),
            DataType::Float32 => "float".into(),
            DataType::Float64 => "double".into(),
            DataType::Decimal { precision, scale } => {
                format!("decimal({},{})", precision.unwrap_or(65), scale.unwrap_or(0))
            }
            DataType::Text { max_chars: Some(n) } => format!("varchar({n})"),
            DataType::Text { max_chars: None } => "longtext".into(),
            DataType::Bytes if in_key_or_index => "varbinary(255)".into(),
            DataType::Bytes => "longblob".into(),
            DataType::Date => "date".into(),
            DataType::Time => "time(6)".into(),
            DataType::Timestamp | DataType::TimestampTz => "datetime(6)".into(),
            DataType::Json => "json".into(),
            DataType::Uuid => "uuid".into(),
        }
    }
}

fn index_sql(table: &TableName, columns: &[String], unique: bool) -> String {
    let name = object_name(&table.name, columns, if unique { "key" } else { "idx" });
    format!(
        "ALTER TABLE {} ADD {}KEY {} ({})",
        Q.table(table),
        if unique { "UNIQUE " } else { "" },
        Q.ident(&name),
        Q.idents(columns)
    )
}

fn foreign_key_sql(table: &TableName, fk: &ForeignKey) -> String {
    format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){}",
        Q.table(table),
        Q.ident(&fk.name),
        Q.idents(&fk.columns),
        Q.table(&fk.ref_table),
        Q.idents(&fk.ref_columns),
        fk.actions_sql()
    )
}

fn expression_index_sql(table: &TableName, index: &ExpressionIndex) -> String {
    format!(
        "CREATE {}INDEX {} ON {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        Q.ident(&index.name),
        Q.table(table),
        index.elements
    )
}

fn connect_error(e: mysql_async::Error, display: &str) -> EngineError {
    match &e {
        mysql_async::Error::Server(s) if s.code == 1045 || s.code == 1044 => {
            EngineError::new(ErrorKind::Auth, format!("MySQL at {display} refused the login: {}", s.message)).with_hint(
                "check the user and password in the URL (use ${ENV_VAR} to keep the password out of the file)",
            )
        }
        mysql_async::Error::Server(s) if s.code == 1049 => {
            EngineError::new(ErrorKind::NotFound, format!("MySQL at {display}: {}", s.message))
                .with_hint("create the database first (CREATE DATABASE name) or fix its name in the URL")
        }
        _ => EngineError::new(ErrorKind::Connect, format!("cannot connect to MySQL at {display}: {e}"))
            .with_hint("check that the server is running and that host and port in the URL are right"),
    }
}

/// The key columns of a change log: the source key's own types.
pub(crate) fn log_key_columns(table: &TableSchema, key: &[String]) -> String {
    ferry_engine::log_key_columns(table, key, "longtext", str::to_string)
}

pub(crate) fn map_err(e: mysql_async::Error) -> EngineError {
    let (kind, message) = match &e {
        mysql_async::Error::Server(s) => (
            match s.code {
                1045 | 1044 => ErrorKind::Auth,
                1049 | 1146 => ErrorKind::NotFound,
                1142 | 1143 | 1227 => ErrorKind::Permission,
                // 1792: the operator's SQL tried to write inside Ferry's READ ONLY transaction.
                1054 | 1064 | 1305 | 1582 | 1583 | 1792 => ErrorKind::Sql,
                1451 | 1452 | 1216 | 1217 => ErrorKind::ForeignKey,
                1062 | 1048 | 4025 => ErrorKind::Constraint,
                1264 | 1265 | 1292 | 1366 | 1406 | 1367 | 3140 => ErrorKind::Conversion,
                1205 | 1213 | 1020 => ErrorKind::Transient,
                _ => ErrorKind::Other,
            },
            format!("{} (MySQL error {})", s.message, s.code),
        ),
        mysql_async::Error::Io(_) => (ErrorKind::ConnectionLost, format!("the connection to MySQL broke: {e}")),
        _ => (ErrorKind::Other, e.to_string()),
    };
    EngineError::new(kind, message).with_source(e)
}

/// InnoDB reports an action left unsaid as RESTRICT, which it treats as NO ACTION.
fn innodb_action(rule: &str) -> FkAction {
    match FkAction::parse(rule) {
        FkAction::Restrict => FkAction::NoAction,
        other => other,
    }
}

/// COLUMN_TYPE (plus whether a json_valid check guards it) -> neutral type.
pub fn from_column_type(column_type: &str, json_checked: bool) -> DataType {
    let t = column_type.trim().to_ascii_lowercase();
    let unsigned = t.contains("unsigned");
    let base = t.split(['(', ' ']).next().unwrap_or("");
    let args: Vec<u32> = match (t.find('('), t.find(')')) {
        (Some(o), Some(c)) if c > o => t[o + 1..c].split(',').filter_map(|a| a.trim().parse().ok()).collect(),
        _ => Vec::new(),
    };
    match base {
        "tinyint" if args.first() == Some(&1) && !unsigned => DataType::Bool,
        "bool" | "boolean" => DataType::Bool,
        "tinyint" => DataType::Int16,
        "smallint" if unsigned => DataType::Int32,
        "smallint" | "year" => DataType::Int16,
        "mediumint" => DataType::Int32,
        "int" | "integer" if unsigned => DataType::Int64,
        "int" | "integer" => DataType::Int32,
        "bigint" if unsigned => DataType::Decimal { precision: Some(20), scale: Some(0) },
        "bigint" => DataType::Int64,
        "float" => DataType::Float32,
        "double" | "real" => DataType::Float64,
        "decimal" | "numeric" | "dec" | "fixed" => match args.as_slice() {
            [p, s] => DataType::Decimal { precision: Some(*p), scale: Some(*s) },
            [p] => DataType::Decimal { precision: Some(*p), scale: Some(0) },
            _ => DataType::Decimal { precision: Some(10), scale: Some(0) },
        },
        "char" | "varchar" => DataType::Text { max_chars: args.first().copied() },
        "tinytext" | "text" | "mediumtext" | "longtext" if json_checked => DataType::Json,
        "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => DataType::text(),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit" => DataType::Bytes,
        "date" => DataType::Date,
        "time" => DataType::Time,
        "datetime" => DataType::Timestamp,
        "timestamp" => DataType::TimestampTz,
        "json" => DataType::Json,
        "uuid" => DataType::Uuid,
        _ => DataType::text(),
    }
}

/// A driver value -> [`Value`], by the result column's type.
fn read_value(v: mysql_async::Value, column: &mysql_async::Column) -> Value {
    use mysql_async::Value as M;
    match v {
        M::NULL => Value::Null,
        M::Int(i) => Value::Int(i),
        M::UInt(u) => i64::try_from(u).map(Value::Int).unwrap_or_else(|_| Value::Decimal(u.to_string())),
        M::Float(f) => Value::Float(f as f64),
        M::Double(f) => Value::Float(f),
        M::Bytes(b) => match column.column_type() {
            ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                Value::Decimal(String::from_utf8_lossy(&b).into_owned())
            }
            ColumnType::MYSQL_TYPE_BIT => Value::Bytes(b),
            _ if column.character_set() == BINARY_CHARSET && !column.flags().contains(ColumnFlags::ENUM_FLAG) => {
                Value::Bytes(b)
            }
            _ => match String::from_utf8(b) {
                Ok(s) => Value::Text(s),
                Err(e) => Value::Bytes(e.into_bytes()),
            },
        },
        M::Date(y, m, d, h, mi, s, us) => {
            let date = NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32);
            let time = NaiveTime::from_hms_micro_opt(h as u32, mi as u32, s as u32, us);
            match (date, time, column.column_type()) {
                (Some(date), _, ColumnType::MYSQL_TYPE_DATE) => Value::Date(date),
                (Some(date), Some(time), ColumnType::MYSQL_TYPE_TIMESTAMP) => {
                    Value::TimestampTz(date.and_time(time).and_utc())
                }
                (Some(date), Some(time), _) => Value::Timestamp(date.and_time(time)),
                // Zero dates and the like: text, so the conversion names the row.
                _ => Value::Text(format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}")),
            }
        }
        M::Time(negative, days, h, mi, s, us) => match NaiveTime::from_hms_micro_opt(h as u32, mi as u32, s as u32, us)
        {
            Some(t) if !negative && days == 0 => Value::Time(t),
            _ => Value::Text(format!("{}{}:{mi:02}:{s:02}", if negative { "-" } else { "" }, days * 24 + h as u32)),
        },
    }
}

impl MysqlEngine {
    /// Upserts `rows` in statements under the server's limits, with the
    /// batch's checkpoint in the same transaction.
    async fn write_rows(&self, write: &WriteSpec, rows: Rows, checkpoint: Option<&Checkpoint>) -> Result<()> {
        if rows.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        let names: Vec<String> = write.columns.iter().map(|(n, _)| n.clone()).collect();
        let updates: Vec<String> =
            names.iter().filter(|n| !write.key.contains(n)).map(|n| format!("{0} = VALUES({0})", Q.ident(n))).collect();
        let on_duplicate =
            if updates.is_empty() { format!("{0} = {0}", Q.ident(&write.key[0])) } else { updates.join(", ") };
        let max_rows = (MAX_PARAMS / names.len().max(1)).max(1);
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(Default::default()).await.map_err(map_err)?;
        let mut start = 0;
        while start < rows.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < rows.len() && end - start < max_rows && (end == start || bytes < MAX_STATEMENT_BYTES) {
                bytes += rows[end].iter().map(byte_size).sum::<usize>();
                end += 1;
            }
            let sql = format!(
                "{FERRY_TAG}{} ON DUPLICATE KEY UPDATE {on_duplicate}",
                Q.insert(&write.table, &names, end - start)
            );
            let params: Vec<mysql_async::Value> = rows[start..end].iter().flatten().map(bind).collect();
            tx.exec_drop(sql, Params::Positional(params))
                .await
                .map_err(|e| map_err(e).context(format_args!("writing {}", write.table)))?;
            start = end;
        }
        if let Some(checkpoint) = checkpoint {
            let params: Vec<mysql_async::Value> = checkpoint.row().iter().map(bind).collect();
            tx.exec_drop(checkpoint_upsert(), Params::Positional(params)).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }
}

/// The upsert of a checkpoint row.
fn checkpoint_upsert() -> String {
    let updates: Vec<String> =
        Checkpoint::updated_columns().iter().map(|c| format!("{0} = VALUES({0})", Q.ident(c))).collect();
    format!("{} ON DUPLICATE KEY UPDATE {}", Checkpoint::insert_sql(Q), updates.join(", "))
}

fn bind(v: &Value) -> mysql_async::Value {
    use mysql_async::Value as M;
    match v {
        Value::Null => M::NULL,
        Value::Bool(b) => M::Int(*b as i64),
        Value::Int(i) => M::Int(*i),
        Value::Float(f) => M::Double(*f),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) => M::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => M::Bytes(b.clone()),
        Value::Uuid(u) => M::Bytes(ferry_core::value::format_uuid(u).into_bytes()),
        Value::Date(d) => M::Date(d.year() as u16, d.month() as u8, d.day() as u8, 0, 0, 0, 0),
        Value::Time(t) => M::Time(false, 0, t.hour() as u8, t.minute() as u8, t.second() as u8, t.nanosecond() / 1000),
        Value::Timestamp(ts) => date_time(ts),
        Value::TimestampTz(ts) => date_time(&ts.naive_utc()),
    }
}

fn date_time(ts: &chrono::NaiveDateTime) -> mysql_async::Value {
    mysql_async::Value::Date(
        ts.year() as u16,
        ts.month() as u8,
        ts.day() as u8,
        ts.hour() as u8,
        ts.minute() as u8,
        ts.second() as u8,
        ts.nanosecond() / 1000,
    )
}

/// Marks the copy's reads and writes, so that the throttle can tell them
/// from the application's in the process list (several workers read and
/// write at once; their own load is not a reason to slow down).
const FERRY_TAG: &str = "/* ferry */ ";

async fn query_rows(conn: &mut Conn, sql: &str, params: Vec<mysql_async::Value>) -> Result<Vec<Row>> {
    let params = if params.is_empty() { Params::Empty } else { Params::Positional(params) };
    let rows: Vec<mysql_async::Row> = conn.exec(format!("{FERRY_TAG}{sql}"), params).await.map_err(map_err)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let columns = row.columns();
            row.unwrap().into_iter().zip(columns.iter()).map(|(v, c)| read_value(v, c)).collect()
        })
        .collect())
}

fn byte_size(v: &Value) -> usize {
    match v {
        Value::Text(s) | Value::Json(s) | Value::Decimal(s) => s.len() + 4,
        Value::Bytes(b) => b.len() + 4,
        _ => 12,
    }
}

#[async_trait]
impl Catalog for MysqlEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Mysql
    }

    fn plan_dialect(&self) -> &'static dyn ferry_core::PlanDialect {
        &plan_dialect::PLAN_DIALECT
    }

    fn sql_dialect(&self) -> ferry_engine::sql::Dialect {
        MYSQL
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // utf8mb4_bin is PAD SPACE; MariaDB 10.10 and MySQL 8 get NO PAD collations (see `collation`).
            pads_trailing_spaces: self.collation() == "utf8mb4_bin",
            ..ferry_core::PlanDialect::capabilities(&plan_dialect::PLAN_DIALECT)
        }
    }

    fn display_url(&self) -> String {
        self.display.clone()
    }

    async fn missing_privileges(&self, needs: &[ferry_engine::Need]) -> Result<Vec<String>> {
        privileges::missing(self, needs).await
    }

    async fn introspect(&self, table: &TableName) -> Result<TableSchema> {
        let mut conn = self.conn().await?;
        let schema = table.schema.clone().unwrap_or_else(|| self.database.clone());
        let exists: Option<(Option<u64>, Option<u64>)> = conn
            .exec_first(
                "SELECT TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'BASE TABLE'",
                (&schema, &table.name),
            )
            .await
            .map_err(map_err)?;
        let Some((row_estimate, size_bytes)) = exists else {
            return Err(self.not_found(&mut conn, &schema, table).await?);
        };
        let check_rows: Vec<(String, String)> = conn
            .exec(
                "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? ORDER BY CONSTRAINT_NAME",
                (&schema, &table.name),
            )
            .await
            .unwrap_or_default();
        // MariaDB's JSON is LONGTEXT guarded by CHECK (json_valid(col)): part of the type, not a constraint.
        let json_check = |clause: &str, column: &str| {
            clause.to_ascii_lowercase().replace(['`', ' '], "")
                == format!("json_valid({})", column.to_ascii_lowercase())
        };
        let rows: Vec<mysql_async::Row> = conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, GENERATION_EXPRESSION, \
                        COLLATION_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&schema, &table.name),
            )
            .await
            .map_err(map_err)?;
        let columns: Vec<Column> = rows
            .into_iter()
            .map(|row| {
                let (name, column_type, nullable, default, extra, generation, collation, comment): ColumnRow =
                    mysql_async::from_row(row);
                let json_checked = check_rows.iter().any(|(_, clause)| json_check(clause, &name));
                self.column_of(
                    ColumnFacts { name, column_type, nullable, default, extra, generation, collation, comment },
                    json_checked,
                )
            })
            .collect();
        let checks = check_rows
            .iter()
            .filter(|(_, clause)| !columns.iter().any(|c| json_check(clause, &c.name)))
            .map(|(name, clause)| Check::new(name.clone(), clause.clone()))
            .collect();
        let comment: Option<String> = conn
            .exec_first(
                "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&schema, &table.name),
            )
            .await
            .map_err(map_err)?;
        let comment = comment.filter(|c| !c.is_empty());
        let (primary_key, unique_keys, indexes) = keys_and_indexes(&mut conn, &schema, &table.name).await?;
        let foreign_keys = foreign_keys(&mut conn, &schema, &table.name).await?;
        Ok(TableSchema {
            name: table.clone(),
            columns,
            primary_key,
            unique_keys,
            indexes,
            foreign_keys,
            checks,
            expression_indexes: Vec::new(),
            comment,
            stats: TableStats { row_estimate, size_bytes },
        })
    }

    async fn table_exists(&self, table: &TableName) -> Result<bool> {
        let mut conn = self.conn().await?;
        let schema = table.schema.clone().unwrap_or_else(|| self.database.clone());
        let found: Option<i64> = conn
            .exec_first(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'BASE TABLE'",
                (&schema, &table.name),
            )
            .await
            .map_err(map_err)?;
        Ok(found.is_some())
    }

    async fn code_dependents(&self, table: &TableName, columns: &[String]) -> Result<Vec<ColumnDependent>> {
        let mut conn = self.conn().await?;
        let schema = table.schema.clone().unwrap_or_else(|| self.database.clone());
        // A stored view definition names its tables `schema`.`table` and its columns `alias`.`column`.
        let views: Vec<(String, String)> = conn
            .exec(
                "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? AND VIEW_DEFINITION LIKE ?",
                (&schema, format!("%`{}`.`{}`%", schema, table.name)),
            )
            .await
            .map_err(map_err)?;
        let triggers: Vec<(String, String)> = conn
            .exec(
                "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS \
                 WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?",
                (&schema, &table.name),
            )
            .await
            .map_err(map_err)?;
        let mut out = Vec::new();
        for column in columns {
            for (name, definition) in &views {
                if definition.contains(&format!("`{column}`")) {
                    out.push(ColumnDependent { column: column.clone(), kind: DependentKind::View, name: name.clone() });
                }
            }
            for (name, statement) in &triggers {
                if ferry_core::schema::mentions_column(statement, column) {
                    out.push(ColumnDependent {
                        column: column.clone(),
                        kind: DependentKind::Trigger,
                        name: name.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn dependents(&self, table: &TableName) -> Result<Dependents> {
        let mut conn = self.conn().await?;
        let schema = table.schema.clone().unwrap_or_else(|| self.database.clone());
        let rows: Vec<(String, String, String, String, String)> = conn
            .exec(
                "SELECT CONSTRAINT_NAME, TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, REFERENCED_COLUMN_NAME \
                 FROM information_schema.KEY_COLUMN_USAGE WHERE REFERENCED_TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME = ? \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
                (&schema, &table.name),
            )
            .await
            .map_err(map_err)?;
        let mut out = Dependents::default();
        for (name, child_schema, child, column, ref_column) in rows {
            let child = TableName { schema: (child_schema != schema).then_some(child_schema), name: child };
            match out.foreign_keys_in.last_mut() {
                Some((c, fk)) if *c == child && fk.name == name => {
                    fk.columns.push(column);
                    fk.ref_columns.push(ref_column);
                }
                _ => out.foreign_keys_in.push((
                    child,
                    ForeignKey {
                        name,
                        columns: vec![column],
                        ref_table: table.clone(),
                        ref_columns: vec![ref_column],
                        on_delete: FkAction::NoAction,
                        on_update: FkAction::NoAction,
                    },
                )),
            }
        }
        out.triggers = conn
            .exec(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY 1",
                (&schema, &table.name),
            )
            .await
            .map_err(map_err)?;
        // Views name their tables fully qualified and quoted in their stored definition.
        let pattern = format!("%`{}`.`{}`%", schema, table.name);
        out.views = conn
            .exec(
                "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? AND VIEW_DEFINITION LIKE ? ORDER BY 1",
                (&schema, pattern),
            )
            .await
            .map_err(map_err)?;
        Ok(out)
    }

    async fn version(&self) -> Result<String> {
        let mut conn = self.conn().await?;
        let v: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(map_err)?;
        Ok(v.unwrap_or_default())
    }

    /// All but MariaDB's `_nopad_` collations and MySQL 8's `_0900_` ones, and `binary`.
    fn collation_pads(&self, collation: &str) -> bool {
        !collation.contains("_nopad_") && !collation.contains("_0900_") && collation != "binary"
    }

    /// Dates with a zero month or day (`0000-00-00`), which no other engine stores.
    fn zero_date_conditions(&self, column: &str, native_type: &str) -> Option<ZeroDateConditions> {
        let native = native_type.to_ascii_lowercase();
        if !["date", "datetime", "timestamp"].iter().any(|t| native.starts_with(t)) {
            return None;
        }
        let col = MYSQL.ident(column);
        Some(ZeroDateConditions {
            any_zero: format!("MONTH({col}) = 0 OR DAYOFMONTH({col}) = 0"),
            all_zero: format!("YEAR({col}) = 0 AND MONTH({col}) = 0 AND DAYOFMONTH({col}) = 0"),
        })
    }

    async fn namespace(&self) -> Result<Option<String>> {
        self.scalar("SELECT DATABASE()").await
    }

    async fn transport(&self) -> Result<ferry_core::Transport> {
        let mut conn = self.conn().await?;
        let row: Option<(String, String)> =
            conn.query_first("SHOW SESSION STATUS LIKE 'Ssl_version'").await.map_err(map_err)?;
        Ok(match row.map(|(_, v)| v).filter(|v| !v.is_empty()) {
            Some(protocol) => ferry_core::Transport::Tls {
                protocol,
                mode: format!("ssl-mode={}", self.tls.mode.url_value(TlsDialect::Mysql)),
            },
            None => ferry_core::Transport::Unencrypted,
        })
    }

    async fn free_disk_bytes(&self) -> Result<Option<u64>> {
        // MySQL does not report free space over SQL.
        Ok(None)
    }

    async fn expression_type(&self, table: &TableName, sql: &str) -> Result<Option<DataType>> {
        let mut conn = self.conn().await?;
        let stmt = conn
            .prep(format!("SELECT ({sql}) FROM {} LIMIT 0", Q.table(table)))
            .await
            .map_err(|e| map_err(e).context(format_args!("checking expression `{sql}` on {table}")))?;
        Ok(stmt.columns().first().map(|c| {
            let binary = c.character_set() == BINARY_CHARSET;
            match c.column_type() {
                ColumnType::MYSQL_TYPE_TINY | ColumnType::MYSQL_TYPE_SHORT => DataType::Int16,
                ColumnType::MYSQL_TYPE_LONG | ColumnType::MYSQL_TYPE_INT24
                    if c.flags().contains(ColumnFlags::UNSIGNED_FLAG) =>
                {
                    DataType::Int64
                }
                ColumnType::MYSQL_TYPE_LONG | ColumnType::MYSQL_TYPE_INT24 => DataType::Int32,
                ColumnType::MYSQL_TYPE_LONGLONG => DataType::Int64,
                ColumnType::MYSQL_TYPE_FLOAT => DataType::Float32,
                ColumnType::MYSQL_TYPE_DOUBLE => DataType::Float64,
                ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => DataType::Decimal {
                    precision: Some(c.column_length().saturating_sub(2).clamp(1, 65)),
                    scale: Some(c.decimals() as u32),
                },
                ColumnType::MYSQL_TYPE_DATE => DataType::Date,
                ColumnType::MYSQL_TYPE_TIME => DataType::Time,
                ColumnType::MYSQL_TYPE_DATETIME => DataType::Timestamp,
                ColumnType::MYSQL_TYPE_TIMESTAMP => DataType::TimestampTz,
                ColumnType::MYSQL_TYPE_JSON => DataType::Json,
                _ if binary => DataType::Bytes,
                _ => DataType::text(),
            }
        }))
    }

    fn storage_type(&self, t: &DataType, in_key_or_index: bool) -> DataType {
        match t {
            DataType::Text { max_chars: None } if in_key_or_index => DataType::Text { max_chars: Some(255) },
            DataType::Text { max_chars: Some(n) } if *n > 16_383 => DataType::text(),
            DataType::Decimal { precision: None, scale: None } => {
                DataType::Decimal { precision: Some(65), scale: Some(30) }
            }
            // MySQL allows 65 digits, 30 of them after the point.
            DataType::Decimal { precision: Some(p), scale } if *p > 65 || scale.unwrap_or(0) > 30 => {
                DataType::Decimal { precision: Some((*p).min(65)), scale: Some(scale.unwrap_or(0).min(30)) }
            }
            DataType::TimestampTz => DataType::Timestamp,
            DataType::Uuid if !self.has_uuid_type() => DataType::Text { max_chars: Some(36) },
            other => other.clone(),
        }
    }

    fn schema_support(&self) -> SchemaSupport {
        SchemaSupport {
            partial_indexes: false,
            // Functional key parts: MySQL 8.0.13 and later; MariaDB has none.
            expression_indexes: self.mariadb_version.is_none(),
            index_methods: false,
            comments: true,
            virtual_columns: true,
            identity_anywhere: true,
            fk_set_default: false,
            on_update_timestamp: true,
            case_insensitive_collation: match self.mariadb_version {
                Some(v) if v >= (10, 10) => Some("utf8mb4_uca1400_nopad_as_ci"),
                Some(_) => None,
                None => Some("utf8mb4_0900_as_ci"),
            },
        }
    }

    async fn count(&self, table: &TableName, filter: Option<&str>) -> Result<u64> {
        let mut conn = self.conn().await?;
        let n: Option<u64> = conn
            .query_first(Q.count(table, filter))
            .await
            .map_err(|e| map_err(e).context(format_args!("counting {table}")))?;
        Ok(n.unwrap_or(0))
    }
}

#[async_trait]
impl Ddl for MysqlEngine {
    async fn drop_scratch_table(&self, table: &TableName) -> Result<()> {
        ferry_engine::ensure_scratch(table)?;
        self.query_drop(&format!("DROP TABLE IF EXISTS {}", Q.table(table))).await
    }

    async fn create_table(&self, def: &TableDef) -> Result<()> {
        self.conn()
            .await?
            .query_drop(self.create_table_sql(def))
            .await
            .map_err(|e| map_err(e).context(format_args!("creating table {}", def.name)))
    }

    async fn create_index(&self, table: &TableName, columns: &[String], unique: bool) -> Result<()> {
        let name = object_name(&table.name, columns, if unique { "key" } else { "idx" });
        let mut conn = self.conn().await?;
        if self.index_exists(&mut conn, table, &name).await? {
            return Ok(());
        }
        conn.query_drop(index_sql(table, columns, unique))
            .await
            .map_err(|e| map_err(e).context(format_args!("creating {name} on {table}")))
    }

    fn table_ddl(&self, def: &TableDef) -> (Vec<String>, Vec<String>) {
        let after = def
            .unique_keys
            .iter()
            .map(|cols| index_sql(&def.name, cols, true))
            .chain(def.indexes.iter().map(|cols| index_sql(&def.name, cols, false)))
            .chain(def.expression_indexes.iter().map(|i| expression_index_sql(&def.name, i)))
            .chain(def.foreign_keys.iter().map(|fk| foreign_key_sql(&def.name, fk)))
            .collect();
        (vec![self.create_table_sql(def)], after)
    }

    async fn create_expression_index(&self, table: &TableName, index: &ExpressionIndex) -> Result<()> {
        if !self.schema_support().expression_indexes || index.predicate.is_some() || index.method.is_some() {
            return Err(ferry_engine::unsupported_schema(EngineKind::Mysql, "partial or expression indexes"));
        }
        let mut conn = self.conn().await?;
        if self.index_exists(&mut conn, table, &index.name).await? {
            return Ok(());
        }
        conn.query_drop(expression_index_sql(table, index))
            .await
            .map_err(|e| map_err(e).context(format_args!("creating index {} on {table}", index.name)))
    }

    async fn set_identity_next(&self, table: &TableName, column: &str, next: i64) -> Result<()> {
        let mut conn = self.conn().await?;
        for sql in self.identity_sql(table, column, &next.to_string()) {
            conn.query_drop(sql)
                .await
                .map_err(|e| map_err(e).context(format_args!("moving the AUTO_INCREMENT of {table}")))?;
        }
        Ok(())
    }

    fn identity_sql(&self, table: &TableName, _column: &str, next: &str) -> Vec<String> {
        vec![format!("ALTER TABLE {} AUTO_INCREMENT = {next}", Q.table(table))]
    }

    async fn add_foreign_key(&self, table: &TableName, fk: &ForeignKey) -> Result<()> {
        let mut conn = self.conn().await?;
        let schema = table.schema.clone().unwrap_or_else(|| self.database.clone());
        let exists: Option<i64> = conn
            .exec_first(
                "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? \
                 AND CONSTRAINT_NAME = ? AND CONSTRAINT_TYPE = 'FOREIGN KEY'",
                (&schema, &table.name, &fk.name),
            )
            .await
            .map_err(map_err)?;
        if exists.is_some() {
            return Ok(());
        }
        conn.query_drop(foreign_key_sql(table, fk))
            .await
            .map_err(|e| map_err(e).context(format_args!("adding foreign key {} on {table}", fk.name)))
    }

    async fn install_fence(&self, table: &TableName, message: &str, lock_timeout: Duration) -> Result<()> {
        let name = fence_name(table);
        // SIGNAL's message holds at most 128 characters.
        let message: String = message.chars().take(128).collect();
        let mut statements = vec![format!("SET SESSION lock_wait_timeout = {}", lock_timeout.as_secs().max(1))];
        for (suffix, event) in [("ins", "INSERT"), ("upd", "UPDATE"), ("del", "DELETE")] {
            let trigger = Q.ident(&format!("{name}_{suffix}"));
            statements.push(format!("DROP TRIGGER IF EXISTS {trigger}"));
            statements.push(format!(
                "CREATE TRIGGER {trigger} BEFORE {event} ON {} FOR EACH ROW BEGIN \
                 IF @ferry_bypass_fence IS NULL THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = {}; END IF; END",
                Q.table(table),
                sqlexpr::string_literal(EngineKind::Mysql, &message)
            ));
        }
        let mut conn = self.conn().await?;
        for sql in statements {
            conn.query_drop(sql).await.map_err(|e| map_err(e).context(format_args!("fencing writes to {table}")))?;
        }
        Ok(())
    }

    async fn remove_fence(&self, table: &TableName, lock_timeout: Duration) -> Result<()> {
        let name = fence_name(table);
        let mut conn = self.conn().await?;
        let mut statements = vec![format!("SET SESSION lock_wait_timeout = {}", lock_timeout.as_secs().max(1))];
        for suffix in ["ins", "upd", "del"] {
            statements.push(format!("DROP TRIGGER IF EXISTS {}", Q.ident(&format!("{name}_{suffix}"))));
        }
        for sql in statements {
            conn.query_drop(sql)
                .await
                .map_err(|e| map_err(e).context(format_args!("lifting the write fence of {table}")))?;
        }
        Ok(())
    }

    async fn rename_table(&self, from: &TableName, to: &TableName) -> Result<()> {
        let to = TableName { schema: from.schema.clone(), name: to.name.clone() };
        self.query_drop(&format!("RENAME TABLE {} TO {}", Q.table(from), Q.table(&to)))
            .await
            .map_err(|e| e.context(format_args!("renaming {from} to {to}")))
    }

    async fn backup(&self, tables: &[TableName], dir: &std::path::Path) -> Result<std::path::PathBuf> {
        let file = dir.join(format!("ferry-backup-{}.sql", self.database));
        let mut command = self.client_tool(&["mariadb-dump", "mysqldump"]);
        command
            .args(["--single-transaction", "--skip-triggers", "--no-tablespaces", "--hex-blob", "--skip-comments"])
            .arg(format!("--result-file={}", file.display()))
            .arg(&self.database)
            .args(tables.iter().map(|t| t.name.clone()));
        tokio::task::spawn_blocking(move || ferry_engine::run_tool(command, "backing up the source tables"))
            .await
            .map_err(|e| EngineError::new(ErrorKind::Other, format!("mysqldump did not finish: {e}")))??;
        Ok(file)
    }

    fn scratch_name(&self, purpose: &str) -> String {
        ferry_core::schema::bounded_name(&format!("ferry_{purpose}_{}", self.database), 64)
    }

    async fn create_scratch_database(&self, name: &str) -> Result<std::sync::Arc<dyn Engine>> {
        ferry_engine::ensure_scratch_name(name)?;
        self.drop_scratch_database(name).await?;
        self.query_drop(&format!("CREATE DATABASE {} CHARACTER SET utf8mb4", Q.ident(name))).await?;
        let opts: Opts = OptsBuilder::from_opts(self.opts.clone()).db_name(Some(name.to_string())).into();
        Ok(std::sync::Arc::new(
            MysqlEngine::connect_opts(opts, self.tls.clone(), ferry_engine::scratch_display(&self.display, name))
                .await?,
        ))
    }

    async fn drop_scratch_database(&self, name: &str) -> Result<()> {
        ferry_engine::ensure_scratch_name(name)?;
        self.query_drop(&format!("DROP DATABASE IF EXISTS {}", Q.ident(name))).await
    }

    async fn restore_scratch(&self, dump: &std::path::Path, name: &str) -> Result<std::sync::Arc<dyn Engine>> {
        let engine = self.create_scratch_database(name).await?;
        let file = std::fs::File::open(dump)
            .map_err(|e| EngineError::new(ErrorKind::Io, format!("cannot read the backup {}: {e}", dump.display())))?;
        let mut command = self.client_tool(&["mariadb", "mysql"]);
        command.arg("--binary-mode").arg(name).stdin(file);
        tokio::task::spawn_blocking(move || {
            ferry_engine::run_tool(command, "restoring the backup into a scratch database")
        })
        .await
        .map_err(|e| EngineError::new(ErrorKind::Other, format!("mysql did not finish: {e}")))??;
        Ok(engine)
    }

    async fn execute(&self, statements: &[String], atomic: bool, lock_timeout: Duration) -> Result<u64> {
        let mut conn = self.conn().await?;
        let seconds = lock_timeout.as_secs().max(1);
        conn.query_drop(format!(
            "SET SESSION lock_wait_timeout = {seconds}, SESSION innodb_lock_wait_timeout = {seconds}"
        ))
        .await
        .map_err(map_err)?;
        let result = async {
            if atomic {
                conn.query_drop("START TRANSACTION").await.map_err(map_err)?;
            }
            let mut changed = 0;
            for sql in statements {
                conn.query_drop(sql.as_str())
                    .await
                    .map_err(|e| map_err(e).context(ferry_engine::statement_context(sql)))?;
                changed = conn.affected_rows();
            }
            if atomic {
                conn.query_drop("COMMIT").await.map_err(map_err)?;
            }
            Ok(changed)
        }
        .await;
        if result.is_err() && atomic {
            let _ = conn.query_drop("ROLLBACK").await;
        }
        // The connection goes back to the pool: its next user gets the server's waits.
        // The statement's own error first: a lost connection fails the reset too.
        let reset = conn
            .query_drop("SET SESSION lock_wait_timeout = DEFAULT, SESSION innodb_lock_wait_timeout = DEFAULT")
            .await;
        let changed = result?;
        reset.map_err(map_err)?;
        Ok(changed)
    }

    async fn drop_table(&self, table: &TableName) -> Result<()> {
        self.query_drop(&format!("DROP TABLE IF EXISTS {}", Q.table(table))).await
    }
}

#[async_trait]
impl Reader for MysqlEngine {
    async fn identity_next(&self, table: &TableName, _column: &str) -> Result<Option<i64>> {
        let mut conn = self.conn().await?;
        if self.mariadb_version.is_none() {
            // MySQL 8 caches table statistics, AUTO_INCREMENT included, for a day by default.
            let _ = conn.query_drop("SET SESSION information_schema_stats_expiry = 0").await;
        }
        let schema = table.schema.clone().unwrap_or_else(|| self.database.clone());
        let next: Option<Option<u64>> = conn
            .exec_first(
                "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&schema, &table.name),
            )
            .await
            .map_err(map_err)?;
        Ok(next.flatten().map(|n| n.min(i64::MAX as u64) as i64))
    }

    async fn read_batch(&self, read: &ReadSpec, after: Option<&[Value]>, limit: usize) -> Result<Vec<Row>> {
        let query = Q.keyset_select(read, after.is_some(), limit);
        let params = match after {
            Some(after) => query.binds.iter().map(|&i| bind(&after[i])).collect(),
            None => Vec::new(),
        };
        let mut conn = self.conn().await?;
        query_rows(&mut conn, &query.sql, params).await.map_err(|e| e.context(format_args!("reading {}", read.table)))
    }

    async fn read_range(&self, read: &ReadSpec, range: &KeyRange, offset: usize, limit: usize) -> Result<Vec<Row>> {
        let query = Q.range_select(read, range.after.is_some(), range.through.is_some(), offset, limit);
        let params = range.bind_values(&query.binds, read.key.len()).into_iter().map(bind).collect();
        let mut conn = self.conn().await?;
        query_rows(&mut conn, &query.sql, params).await.map_err(|e| e.context(format_args!("reading {}", read.table)))
    }

    async fn checksum_range(&self, read: &ReadSpec, range: &KeyRange) -> Result<Option<RangeChecksum>> {
        // Each value as text (NULL as a byte no text holds), the first 64
        // bits of the row's MD5, summed exactly as DECIMAL and reduced
        // modulo 2^64 here.
        let items: Vec<String> = read
            .select
            .iter()
            .map(|item| match item {
                SelectItem::Column(c) => format!("IFNULL({}, 0x00)", Q.ident(c)),
                SelectItem::Expr(sql) => format!("IFNULL(({sql}), 0x00)"),
            })
            .collect();
        let filter = Q.range_where(read, range.after.is_some(), range.through.is_some());
        let sql = format!(
            "SELECT COUNT(*), CAST(IFNULL(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS(0x1f, {})), 16), 16, 10) AS UNSIGNED)), 0) AS CHAR) FROM {}{}",
            items.join(", "),
            Q.table(&read.table),
            filter.sql
        );
        let params: Vec<mysql_async::Value> =
            range.bind_values(&filter.binds, read.key.len()).into_iter().map(bind).collect();
        let params = if params.is_empty() { Params::Empty } else { Params::Positional(params) };
        let mut conn = self.conn().await?;
        let row: Option<(i64, String)> = conn
            .exec_first(sql, params)
            .await
            .map_err(|e| map_err(e).context(format_args!("checksumming {}", read.table)))?;
        let (rows, sum) = row.unwrap_or((0, "0".into()));
        Ok(Some(RangeChecksum { rows: rows as u64, sum: ferry_engine::wrap_sum(&sum) }))
    }

    async fn read_keys(&self, read: &ReadSpec, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let mut conn = self.conn().await?;
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let query = Q.select_by_keys(read, chunk.len());
            let flat: Vec<&Value> = chunk.iter().flatten().collect();
            let params = query.binds.iter().map(|&i| bind(flat[i])).collect();
            out.extend(query_rows(&mut conn, &query.sql, params).await?);
        }
        Ok(out)
    }

    async fn scalar(&self, sql: &str) -> Result<Option<String>> {
        // The text protocol returns every value as bytes of its text form.
        let row = self.read_only(sql).await?;
        Ok(row.and_then(|row| row.as_ref(0).and_then(text_of)))
    }

    async fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut conn = self.conn().await?;
        conn.query_drop("START TRANSACTION READ ONLY").await.map_err(map_err)?;
        let result: std::result::Result<Vec<mysql_async::Row>, _> = conn.query(sql).await;
        conn.query_drop("ROLLBACK").await.map_err(map_err)?;
        Ok(result
            .map_err(map_err)?
            .into_iter()
            .map(|row| (0..row.len()).map(|i| row.as_ref(i).and_then(text_of)).collect())
            .collect())
    }
}

#[async_trait]
impl Writer for MysqlEngine {
    async fn upsert(&self, write: &WriteSpec, rows: Rows) -> Result<()> {
        self.write_rows(write, rows, None).await
    }

    /// `durability` is the server's: `innodb_flush_log_at_trx_commit` and
    /// `sync_binlog` are global settings, not a session's (docs/engines.md).
    async fn upsert_checkpointed(
        &self,
        write: &WriteSpec,
        rows: Rows,
        checkpoint: &Checkpoint,
        _durability: Durability,
    ) -> Result<()> {
        self.write_rows(write, rows, Some(checkpoint)).await
    }

    async fn delete_keys(&self, write: &WriteSpec, keys: &[Vec<Value>]) -> Result<()> {
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(Default::default()).await.map_err(map_err)?;
        for chunk in keys.chunks(500) {
            let q = Q.delete_by_keys(&write.table, &write.key, chunk.len());
            let flat: Vec<&Value> = chunk.iter().flatten().collect();
            let params: Vec<mysql_async::Value> = q.binds.iter().map(|&i| bind(flat[i])).collect();
            tx.exec_drop(q.sql, Params::Positional(params))
                .await
                .map_err(|e| map_err(e).context(format_args!("deleting from {}", write.table)))?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn delete_all(&self, table: &TableName) -> Result<()> {
        self.query_drop(&format!("DELETE FROM {}", Q.table(table))).await
    }
}

#[async_trait]
impl ChangeCapture for MysqlEngine {
    fn capture_methods(&self) -> &'static [CaptureMethod] {
        &[CaptureMethod::Triggers, CaptureMethod::Binlog]
    }

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
        lock_timeout: Duration,
    ) -> Result<()> {
        self.check_capture(method)
            .await
            .map_err(|e| e.context(format_args!("installing {method} capture on {}", table.name)))?;
        if method == CaptureMethod::Binlog {
            return self.install_binlog(table, key, lock_timeout).await;
        }
        let t = Q.table(&table.name);
        let log = Q.table(&change_log_table(&self.capture_scope(), &table.name));
        let name = capture_name(&self.capture_scope(), &table.name);
        let typed = log_key_columns(table, key);
        let ks: Vec<String> = (0..key.len()).map(|i| format!("k{i}")).collect();
        let of = |row: &str| key.iter().map(|k| format!("{row}.{}", Q.ident(k))).collect::<Vec<_>>().join(", ");
        let unchanged =
            key.iter().map(|k| format!("OLD.{0} <=> NEW.{0}", Q.ident(k))).collect::<Vec<_>>().join(" AND ");
        let insert = |op: &str, row: &str| {
            format!("INSERT INTO {log} (op, at, {}) VALUES ('{op}', UTC_TIMESTAMP(6), {})", ks.join(", "), of(row))
        };
        let statements = vec![
            format!("SET SESSION lock_wait_timeout = {}", lock_timeout.as_secs().max(1)),
            format!(
                "CREATE TABLE IF NOT EXISTS {log} (seq bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, op char(1) NOT NULL, \
                 at datetime(6) NOT NULL, {typed}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            ),
            format!("DROP TRIGGER IF EXISTS {}", Q.ident(&format!("{name}_ins"))),
            format!("CREATE TRIGGER {} AFTER INSERT ON {t} FOR EACH ROW {}", Q.ident(&format!("{name}_ins")), insert("I", "NEW")),
            format!("DROP TRIGGER IF EXISTS {}", Q.ident(&format!("{name}_upd"))),
            format!(
                "CREATE TRIGGER {} AFTER UPDATE ON {t} FOR EACH ROW BEGIN {}; IF NOT ({unchanged}) THEN {}; END IF; END",
                Q.ident(&format!("{name}_upd")),
                insert("U", "NEW"),
                insert("U", "OLD")
            ),
            format!("DROP TRIGGER IF EXISTS {}", Q.ident(&format!("{name}_del"))),
            format!("CREATE TRIGGER {} AFTER DELETE ON {t} FOR EACH ROW {}", Q.ident(&format!("{name}_del")), insert("D", "OLD")),
        ];
        let mut conn = self.conn().await?;
        for sql in statements {
            conn.query_drop(sql)
                .await
                .map_err(|e| map_err(e).context(format_args!("installing change capture on {}", table.name)))?;
        }
        Ok(())
    }

    async fn remove_capture(&self, table: &TableName, lock_timeout: Duration) -> Result<()> {
        let name = capture_name(&self.capture_scope(), table);
        let mut conn = self.conn().await?;
        for sql in [
            format!("SET SESSION lock_wait_timeout = {}", lock_timeout.as_secs().max(1)),
            format!("DROP TRIGGER IF EXISTS {}", Q.ident(&format!("{name}_ins"))),
            format!("DROP TRIGGER IF EXISTS {}", Q.ident(&format!("{name}_upd"))),
            format!("DROP TRIGGER IF EXISTS {}", Q.ident(&format!("{name}_del"))),
            format!("DROP TABLE IF EXISTS {}", Q.table(&change_log_table(&self.capture_scope(), table))),
        ] {
            conn.query_drop(sql)
                .await
                .map_err(|e| map_err(e).context(format_args!("removing change capture from {table}")))?;
        }
        drop(conn);
        self.remove_binlog().await.map_err(|e| e.context(format_args!("removing binlog capture of {table}")))
    }

    async fn check_capture(&self, method: CaptureMethod) -> Result<()> {
        match method {
            CaptureMethod::Triggers => Ok(()),
            CaptureMethod::Binlog => self.check_binlog().await,
            CaptureMethod::Logical => Err(unsupported_capture(self.kind(), method)),
        }
    }

    async fn collect_changes(&self) -> Result<()> {
        self.collect_binlog().await
    }

    async fn read_changes(&self, table: &TableName, key_width: usize, limit: usize) -> Result<Vec<Change>> {
        let ks: Vec<String> = (0..key_width).map(|i| format!("k{i}")).collect();
        // A TRUNCATE read from the binary log is an entry of op 'T' without keys.
        let sql = format!(
            "SELECT seq, op = 'T', {} FROM {} ORDER BY seq LIMIT {limit}",
            ks.join(", "),
            Q.table(&change_log_table(&self.capture_scope(), table))
        );
        let mut conn = self.conn().await?;
        Ok(query_rows(&mut conn, &sql, Vec::new()).await?.into_iter().map(Change::from_log_row).collect())
    }

    async fn ack_changes(&self, table: &TableName, seqs: &[i64]) -> Result<()> {
        let mut conn = self.conn().await?;
        for chunk in seqs.chunks(1000) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let params: Vec<mysql_async::Value> = chunk.iter().map(|s| mysql_async::Value::Int(*s)).collect();
            conn.exec_drop(
                format!(
                    "DELETE FROM {} WHERE seq IN ({placeholders})",
                    Q.table(&change_log_table(&self.capture_scope(), table))
                ),
                Params::Positional(params),
            )
            .await
            .map_err(map_err)?;
        }
        Ok(())
    }

    async fn capture_retained_bytes(&self) -> Result<Option<u64>> {
        self.binlog_behind().await
    }

    async fn capture_lag(&self, table: &TableName) -> Result<CaptureLag> {
        let mut conn = self.conn().await?;
        let row: Option<(u64, Option<f64>)> = conn
            .query_first(format!(
                "SELECT COUNT(*), CAST(TIMESTAMPDIFF(MICROSECOND, MIN(at), UTC_TIMESTAMP(6)) / 1000000 AS DOUBLE) FROM {}",
                Q.table(&change_log_table(&self.capture_scope(), table))
            ))
            .await
            .map_err(map_err)?;
        let (pending, oldest_seconds) = row.unwrap_or((0, None));
        Ok(CaptureLag { pending, oldest_seconds })
    }
}

#[async_trait]
impl Health for MysqlEngine {
    async fn answers(&self) -> Result<()> {
        // A connection outside the pool: the pool's may all be the ones waiting.
        let asked = async {
            let mut conn = mysql_async::Conn::new(self.opts.clone()).await?;
            conn.ping().await?;
            conn.disconnect().await
        };
        tokio::time::timeout(CONNECT_TIMEOUT, asked)
            .await
            .map_err(|_| EngineError::new(ErrorKind::ConnectionLost, format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(map_err)
    }

    async fn connect_again(&self) -> Result<std::sync::Arc<dyn Engine>> {
        let engine = MysqlEngine::connect_opts(self.opts.clone(), self.tls.clone(), self.display.clone()).await?;
        engine.set_capture_scope(self.capture_scope());
        Ok(std::sync::Arc::new(engine))
    }

    async fn probe(&self, sql: &str) -> Result<()> {
        self.read_only(sql).await.map(|_| ()).map_err(|e| e.context("latency probe"))
    }

    async fn active_sessions(&self) -> Result<Option<u64>> {
        // The copy's statements carry FERRY_TAG; a binary log reader shows as `Binlog Dump`.
        let count = self
            .scalar(
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() \
                 AND COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID') AND ID <> CONNECTION_ID() \
                 AND coalesce(INFO, '') NOT LIKE '/* ferry */%'",
            )
            .await?;
        Ok(count.and_then(|c| c.parse().ok()))
    }

    async fn rows_changed(&self, table: &TableName) -> Result<Option<u64>> {
        // MariaDB counts per table only with `userstat` on; MySQL has no such variable.
        let Ok(Some(on)) = self.scalar("SELECT @@userstat").await else { return Ok(None) };
        if on != "1" {
            return Ok(None);
        }
        let schema = match &table.schema {
            Some(s) => sqlexpr::string_literal(EngineKind::Mysql, s),
            None => "DATABASE()".into(),
        };
        let count = self
            .scalar(&format!(
                "SELECT coalesce(sum(ROWS_CHANGED), 0) FROM information_schema.TABLE_STATISTICS \
                 WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {}",
                sqlexpr::string_literal(EngineKind::Mysql, &table.name)
            ))
            .await?;
        Ok(count.and_then(|c| c.parse().ok()))
    }

    async fn replica_lag(&self) -> Result<Option<ReplicaLag>> {
        let listed = replicas::list(&mut self.conn().await?).await;
        let mut worst: Option<ReplicaLag> = None;
        for (host, port) in listed {
            match replicas::lag_of(&self.opts, &host, port).await {
                Ok(Some(lag)) => {
                    worst = Some(match worst {
                        Some(w) => w.worst(lag),
                        None => lag,
                    })
                }
                Ok(None) => {}
                Err(why) => {
                    // Once per replica: the throttle asks every second.
                    let replica = format!("{host}:{port}");
                    if self.unreachable_replicas.lock().unwrap_or_else(|p| p.into_inner()).insert(replica) {
                        tracing::warn!("{why}; its lag is not watched");
                    }
                }
            }
        }
        Ok(worst)
    }
}

#[async_trait]
impl Locks for MysqlEngine {
    async fn try_lock(&self, name: &str) -> Result<Option<LockGuard>> {
        // Its own connection, outside the pool: the lock lives as long as it does.
        let mut conn = Conn::new(self.opts.clone()).await.map_err(|e| connect_error(e, &self.display))?;
        // Lock names are limited to 64 characters.
        let key = format!("ferry:{:016x}", ferry_engine::lock_key(name));
        let got: Option<Option<i64>> = conn.exec_first("SELECT GET_LOCK(?, 0)", (key,)).await.map_err(map_err)?;
        Ok((got.flatten() == Some(1)).then(|| LockGuard::new(conn)))
    }
}

/// A value of the text protocol in its text form (`None` for NULL).
fn text_of(value: &mysql_async::Value) -> Option<String> {
    match value {
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        mysql_async::Value::NULL => None,
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// The primary key, unique keys and plain indexes of `schema.table` (an index on an expression is left out).
async fn keys_and_indexes(conn: &mut Conn, schema: &str, table: &str) -> Result<(Vec<String>, Vec<Index>, Vec<Index>)> {
    let stats: Vec<(String, i64, Option<String>)> = conn
        .exec(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (schema, table),
        )
        .await
        .map_err(map_err)?;
    let mut by_index: BTreeMap<String, (bool, Vec<Option<String>>)> = BTreeMap::new();
    for (name, non_unique, column) in stats {
        by_index.entry(name).or_insert_with(|| (non_unique == 0, Vec::new())).1.push(column);
    }
    let mut primary_key = Vec::new();
    let mut unique_keys = Vec::new();
    let mut indexes = Vec::new();
    for (name, (unique, cols)) in by_index {
        let Some(cols) = cols.into_iter().collect::<Option<Vec<String>>>() else {
            continue; // functional index
        };
        if name == "PRIMARY" {
            primary_key = cols;
        } else if unique {
            unique_keys.push(Index { name, columns: cols, unique });
        } else {
            indexes.push(Index { name, columns: cols, unique });
        }
    }
    Ok((primary_key, unique_keys, indexes))
}

/// The foreign keys of `schema.table`, the referenced table's schema named only where it is another.
async fn foreign_keys(conn: &mut Conn, schema: &str, table: &str) -> Result<Vec<ForeignKey>> {
    let fk_rows: Vec<(String, String, String, String, String, String, String)> = conn
        .exec(
            "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, \
                    k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE \
             FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
              AND r.TABLE_NAME = k.TABLE_NAME \
             WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? \
             AND k.REFERENCED_TABLE_NAME IS NOT NULL ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(map_err)?;
    let mut fks: BTreeMap<String, ForeignKey> = BTreeMap::new();
    for (name, column, ref_schema, ref_table, ref_column, on_delete, on_update) in fk_rows {
        let fk = fks.entry(name.clone()).or_insert_with(|| ForeignKey {
            name,
            columns: Vec::new(),
            ref_table: TableName { schema: (ref_schema != schema).then_some(ref_schema), name: ref_table },
            ref_columns: Vec::new(),
            on_delete: innodb_action(&on_delete),
            on_update: innodb_action(&on_update),
        });
        fk.columns.push(column);
        fk.ref_columns.push(ref_column);
    }
    Ok(fks.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types() {
        assert_eq!(from_column_type("tinyint(1)", false), DataType::Bool);
        assert_eq!(from_column_type("tinyint(4)", false), DataType::Int16);
        assert_eq!(
            from_column_type("bigint(20) unsigned", false),
            DataType::Decimal { precision: Some(20), scale: Some(0) }
        );
        assert_eq!(from_column_type("int(10) unsigned", false), DataType::Int64);
        assert_eq!(from_column_type("decimal(12,2)", false), DataType::Decimal { precision: Some(12), scale: Some(2) });
        assert_eq!(from_column_type("varchar(80)", false), DataType::Text { max_chars: Some(80) });
        assert_eq!(from_column_type("longtext", true), DataType::Json);
        assert_eq!(from_column_type("datetime(6)", false), DataType::Timestamp);
        assert_eq!(from_column_type("timestamp", false), DataType::TimestampTz);
        assert_eq!(from_column_type("enum('a','b')", false), DataType::text());
    }
}
