//! Ferry engine for PostgreSQL.
//!
//! Reads use the extended protocol with binary results; writes use binary
//! `COPY ... FROM STDIN`, straight into the table when the batch is new and
//! through a session-local staging table with `INSERT ... ON CONFLICT` when
//! some of its keys are already there (a batch redone after a crash).

mod in_place;
mod plan_dialect;
pub use plan_dialect::PLAN_DIALECT;
mod codec;
mod logical;
mod privileges;

pub use codec::{data_type_of, Decoded, Encode};
/// The pgoutput decoder, for the fuzz targets (fuzz/).
#[doc(hidden)]
pub use logical::parse as parse_pgoutput;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use ferry_core::sqlexpr;
use ferry_core::{
    schema::object_name, CaptureMethod, Check, Collation, Column, ColumnDependent, DataType, DefaultValue,
    DependentKind, Dependents, ExpressionIndex, FkAction, ForeignKey, Generated, Identity, Index, Row, TableDef,
    TableName, TableSchema, TableStats, Value,
};
use ferry_engine::sql::{Dialect, POSTGRES};
use ferry_engine::tls::{TlsDialect, TlsFailure, TlsMode, TlsSettings};
use ferry_engine::{
    capture_name, change_log_table, fence_name, unsupported_capture, Capabilities, CaptureLag, Change, Checkpoint,
    Durability, Engine, EngineError, EngineKind, ErrorKind, KeyRange, LockGuard, RangeChecksum, ReadSpec, ReplicaLag,
    Result, Rows, SchemaSupport, SelectItem, WriteSpec,
};
use ferry_engine::{Catalog, ChangeCapture, Ddl, Health, Locks, Reader, Writer};
use futures_util::{pin_mut, SinkExt, TryStreamExt};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{Client, Config, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

pub(crate) const Q: Dialect = POSTGRES;

pub struct PostgresEngine {
    config: Config,
    tls: Tls,
    display: String,
    client: Mutex<Client>,
    /// Prepared reads, keyed by the SQL Ferry built, with any `::text` casts applied.
    reads: Mutex<HashMap<String, Statement>>,
    /// Target column types per table, for binary COPY.
    copy_types: Mutex<HashMap<TableName, Vec<Type>>>,
    /// This database's replication slot (logical capture), once looked up.
    slot: Mutex<Option<logical::SlotState>>,
    /// Held while decoded changes move into the change logs: one pump at a time.
    pumping: Mutex<()>,
    /// The last pump stopped at its limit: the slot holds more than the logs show.
    slot_behind: std::sync::atomic::AtomicBool,
    scope: ferry_engine::ScopeCell,
}

impl PostgresEngine {
    /// Connects; `display` is the URL with the password hidden.
    pub async fn connect(url: &str, display: String) -> Result<PostgresEngine> {
        let (config, tls) = parse_url(url, &display)?;
        PostgresEngine::from_config(config, tls, display).await
    }

    async fn from_config(mut config: Config, tls: Tls, display: String) -> Result<PostgresEngine> {
        settle_config(&mut config, &tls);
        let client = connect(&config, &tls, &display).await?;
        Ok(PostgresEngine {
            config,
            tls,
            display,
            client: Mutex::new(client),
            reads: Mutex::new(HashMap::new()),
            copy_types: Mutex::new(HashMap::new()),
            slot: Mutex::new(None),
            pumping: Mutex::new(()),
            slot_behind: Default::default(),
            scope: Default::default(),
        })
    }

    /// Runs one query in a READ ONLY transaction: the operator's checks and
    /// probe can read, and nothing they call can write. The simple protocol
    /// returns every value as text, whatever its type.
    async fn read_only(&self, sql: &str) -> Result<Vec<tokio_postgres::SimpleQueryMessage>> {
        let client = self.client.lock().await;
        client.batch_execute("BEGIN READ ONLY").await.map_err(map_err)?;
        let result = client.simple_query(sql).await;
        client.batch_execute("ROLLBACK").await.map_err(map_err)?;
        result.map_err(map_err)
    }

    /// The database the URL names (libpq's default: the user's name).
    fn database(&self) -> String {
        self.config.get_dbname().or(self.config.get_user()).unwrap_or("postgres").to_string()
    }

    /// A libpq tool (pg_dump, pg_restore) reaching the same server as this engine.
    fn libpq_tool(&self, program: &str) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        if let Some(host) = self.config.get_hosts().first() {
            match host {
                tokio_postgres::config::Host::Tcp(h) => command.env("PGHOST", h),
                tokio_postgres::config::Host::Unix(p) => command.env("PGHOST", p),
            };
        }
        if let Some(port) = self.config.get_ports().first() {
            command.env("PGPORT", port.to_string());
        }
        if let Some(user) = self.config.get_user() {
            command.env("PGUSER", user);
        }
        if let Some(password) = self.config.get_password() {
            command.env("PGPASSWORD", String::from_utf8_lossy(password).into_owned());
        }
        command.env("PGDATABASE", self.database()).env("PGCONNECT_TIMEOUT", "10");
        let tls = &self.tls.settings;
        command.env("PGSSLMODE", tls.mode.url_value(TlsDialect::Libpq));
        for (var, path) in
            [("PGSSLROOTCERT", &tls.root_cert), ("PGSSLCERT", &tls.client_cert), ("PGSSLKEY", &tls.client_key)]
        {
            if let Some(path) = path {
                command.env(var, path);
            }
        }
        command
    }

    /// Cuts each of the oldest log entries holding more than `limit` keys (a
    /// statement that touched many rows) into entries of `limit` keys, queued
    /// at the end with the original time: replay order between keys does not
    /// matter, and a replay step then never holds a whole huge statement.
    async fn split_large_changes(&self, log: &TableName, columns: &[String], limit: usize) -> Result<()> {
        let log = Q.table(log);
        let client = self.client.lock().await;
        let large = client
            .query(
                &format!(
                    "SELECT seq FROM (SELECT seq, k0 FROM {log} ORDER BY seq LIMIT {limit}) AS head WHERE cardinality(k0) > {limit}"
                ),
                &[],
            )
            .await
            .map_err(map_err)?;
        let cols = columns.join(", ");
        let of_gone: Vec<String> = columns.iter().map(|c| format!("g.{c}")).collect();
        let aggregated: Vec<String> = columns.iter().map(|c| format!("array_agg(u.{c} ORDER BY u.o)")).collect();
        let split = format!(
            "WITH gone AS (DELETE FROM {log} WHERE seq = $1 RETURNING op, at, {cols})
             INSERT INTO {log} (op, at, {cols})
             SELECT g.op, g.at, {aggregated} FROM gone g, unnest({of_gone}) WITH ORDINALITY AS u({cols}, o)
             GROUP BY g.op, g.at, (u.o - 1) / {limit} ORDER BY (u.o - 1) / {limit}",
            aggregated = aggregated.join(", "),
            of_gone = of_gone.join(", "),
        );
        for row in large {
            let seq: i64 = row.get(0);
            client.execute(&split, &[&seq]).await.map_err(map_err)?;
        }
        Ok(())
    }

    /// Runs SQL in one transaction, rolled back on error.
    async fn in_transaction(&self, sql: &str) -> Result<()> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await.map_err(map_err)?;
        tx.batch_execute(sql).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    /// Runs SQL on this engine's connection (used by tests and tooling).
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        self.client.lock().await.batch_execute(sql).await.map_err(map_err)
    }

    async fn table_oid(&self, client: &Client, table: &TableName) -> Result<Option<(u32, String)>> {
        let row = client
            .query_opt(
                "SELECT c.oid, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = $1 AND c.relkind IN ('r', 'p') \
                 AND n.nspname = COALESCE($2, current_schema())",
                &[&table.name, &table.schema],
            )
            .await
            .map_err(map_err)?;
        Ok(row.map(|r| (r.get::<_, u32>(0), r.get::<_, String>(1))))
    }

    /// Prepares a read, casting to text the columns Ferry does not decode natively.
    async fn prepare_read(&self, client: &Client, sql: &str, read: &ReadSpec) -> Result<Statement> {
        if let Some(stmt) = self.reads.lock().await.get(sql) {
            return Ok(stmt.clone());
        }
        // The caller names the table read (`reading t`): said once.
        let mut stmt = client.prepare(sql).await.map_err(map_err)?;
        let undecodable: Vec<usize> =
            stmt.columns().iter().enumerate().filter(|(_, c)| !codec::decodes(c.type_())).map(|(i, _)| i).collect();
        if !undecodable.is_empty() {
            let mut cast = read.clone();
            for i in undecodable {
                let item = match &read.select[i] {
                    SelectItem::Column(c) => Q.ident(c),
                    SelectItem::Expr(e) => format!("({e})"),
                };
                cast.select[i] = SelectItem::Expr(format!("{item}::text"));
            }
            let cast_sql = sql.replacen(&Q.select_list(&read.select), &Q.select_list(&cast.select), 1);
            stmt = client.prepare(&cast_sql).await.map_err(map_err)?;
        }
        self.reads.lock().await.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }

    async fn query_values(&self, sql: &str, read: &ReadSpec, params: Vec<&Value>) -> Result<Vec<Row>> {
        let client = self.client.lock().await;
        let stmt = self.prepare_read(&client, sql, read).await?;
        let params: Vec<Encode> = params.into_iter().map(Encode).collect();
        let stream = client.query_raw(&stmt, params.iter()).await.map_err(map_err)?;
        pin_mut!(stream);
        let width = stmt.columns().len();
        let mut out = Vec::new();
        while let Some(row) = stream.try_next().await.map_err(map_err)? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(row.try_get::<_, Decoded>(i).map_err(map_err)?.0);
            }
            out.push(values);
        }
        Ok(out)
    }

    /// Upserts `rows` (COPY, or COPY into a stage and merge when a key is
    /// already there), with the batch's checkpoint in the same transaction.
    async fn write_rows(&self, write: &WriteSpec, rows: Rows, commit: Option<(&Checkpoint, Durability)>) -> Result<()> {
        if rows.is_empty() && commit.is_none() {
            return Ok(());
        }
        let mut client = self.client.lock().await;
        let types = self.copy_types(&client, write).await?;
        let names: Vec<String> = write.columns.iter().map(|(n, _)| n.clone()).collect();
        let context = |e: EngineError| e.context(format_args!("writing {}", write.table));

        // Fast path: COPY straight in. A key that is already there makes the
        // whole COPY fail and roll back, and the merge path below takes over.
        // No rows: the transaction writes the checkpoint alone (no COPY).
        let payload = if rows.is_empty() { Bytes::new() } else { encode_copy(&types, &rows).map_err(context)? };
        let direct = format!("COPY {} ({}) FROM STDIN (FORMAT binary)", Q.table(&write.table), Q.idents(&names));
        match copy_rows(&mut client, &direct, None, &payload, commit).await {
            Ok(()) => return Ok(()),
            Err(e) if e.as_db_error().is_some_and(|db| *db.code() == SqlState::UNIQUE_VIOLATION) => {}
            Err(e) => return Err(context(map_err(e))),
        }
        let updates: Vec<String> = names
            .iter()
            .filter(|n| !write.key.contains(n))
            .map(|n| format!("{0} = EXCLUDED.{0}", Q.ident(n)))
            .collect();
        let on_conflict =
            if updates.is_empty() { "DO NOTHING".to_string() } else { format!("DO UPDATE SET {}", updates.join(", ")) };
        let stage = Q.ident("ferry_stage");
        let prepare = format!(
            "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {t} WITH NO DATA",
            cols = Q.idents(&names),
            t = Q.table(&write.table)
        );
        let merge = format!(
            "INSERT INTO {t} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({key}) {on_conflict}",
            t = Q.table(&write.table),
            cols = Q.idents(&names),
            key = Q.idents(&write.key)
        );
        let staged = format!("COPY {stage} ({}) FROM STDIN (FORMAT binary)", Q.idents(&names));
        copy_rows(&mut client, &staged, Some((&prepare, &merge)), &payload, commit)
            .await
            .map_err(|e| context(map_err(e)))
    }

    async fn copy_types(&self, client: &Client, write: &WriteSpec) -> Result<Vec<Type>> {
        if let Some(types) = self.copy_types.lock().await.get(&write.table) {
            return Ok(types.clone());
        }
        let names: Vec<String> = write.columns.iter().map(|(n, _)| n.clone()).collect();
        let stmt = client
            .prepare(&format!("SELECT {} FROM {} LIMIT 0", Q.idents(&names), Q.table(&write.table)))
            .await
            .map_err(map_err)?;
        let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        self.copy_types.lock().await.insert(write.table.clone(), types.clone());
        Ok(types)
    }
}

/// The TLS a connection asks for, and the connector that provides it.
#[derive(Clone)]
struct Tls {
    settings: TlsSettings,
    connector: MakeRustlsConnect,
}

impl Tls {
    fn new(settings: TlsSettings) -> Result<Tls> {
        let connector = MakeRustlsConnect::new(settings.client_config()?);
        Ok(Tls { settings, connector })
    }

    fn ssl_mode(&self) -> SslMode {
        match self.settings.mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }
}

/// The driver's settings and Ferry's TLS settings of a URL.
fn parse_url(url: &str, display: &str) -> Result<(Config, Tls)> {
    let invalid = |e: &dyn std::fmt::Display| {
        EngineError::new(ErrorKind::Other, format!("invalid PostgreSQL URL {display}: {e}"))
            .with_hint("postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
    };
    // The driver knows `sslmode` only up to `require`: Ferry reads the TLS parameters itself.
    let mut url = url::Url::parse(url).map_err(|e| invalid(&e))?;
    let tls = TlsSettings::take_from(&mut url, TlsDialect::Libpq)
        .map_err(|e| e.context(format_args!("PostgreSQL URL {display}")))?;
    let config: Config = url.as_str().parse().map_err(|e: tokio_postgres::Error| invalid(&e))?;
    Ok((config, Tls::new(tls)?))
}

fn settle_config(config: &mut Config, tls: &Tls) {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name("ferry");
    config.ssl_mode(tls.ssl_mode());
}

/// A plain client for Ferry's own bookkeeping (a state store several
/// machines share): the URL's TLS settings and the engine's connect errors,
/// without the engine. Its connection runs on the current Tokio runtime.
pub async fn connect_client(url: &str, display: &str) -> Result<Client> {
    let (mut config, tls) = parse_url(url, display)?;
    settle_config(&mut config, &tls);
    connect(&config, &tls, display).await
}

async fn connect(config: &Config, tls: &Tls, display: &str) -> Result<Client> {
    // The driver's connect timeout covers the TCP connect only: a server that
    // accepts and then never answers would hold the handshake forever.
    let limit = config.get_connect_timeout().copied().unwrap_or(Duration::from_secs(10));
    let (client, connection) = tokio::time::timeout(limit, config.connect(tls.connector.clone()))
        .await
        .map_err(|_| {
            EngineError::new(
                ErrorKind::Connect,
                format!("PostgreSQL at {display} accepted the connection but did not answer within {limit:?}"),
            )
            .with_hint(
                "check that host and port lead to a PostgreSQL server that is up (not a proxy or another service)",
            )
        })?
        .map_err(|e| {
            let server = format!("PostgreSQL at {display}");
            if let Some(failure) = tls.settings.explain_failure(&e, &server) {
                return failure;
            }
            if e.to_string().contains("server does not support TLS") {
                return tls.settings.explain(TlsFailure::NotOffered, &server);
            }
            connect_error(e, display)
        })?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped; errors surface on the client.
        let _ = connection.await;
    });
    // Ferry's own writes pass the write fences it installs (see install_fence).
    client.batch_execute("SET ferry.bypass_fence = 'on'").await.map_err(map_err)?;
    Ok(client)
}

fn connect_error(e: tokio_postgres::Error, display: &str) -> EngineError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            return EngineError::new(
                ErrorKind::Auth,
                format!("PostgreSQL at {display} refused the login: {}", db.message()),
            )
            .with_hint("check the user and password in the URL (use ${ENV_VAR} to keep the password out of the file)");
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return EngineError::new(ErrorKind::NotFound, format!("PostgreSQL at {display}: {}", db.message()))
                .with_hint("create the database first (createdb NAME) or fix its name in the URL");
        }
    }
    let text = e.to_string();
    let source_text = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
    if text.contains("password") || source_text.contains("password") {
        return EngineError::new(
            ErrorKind::Auth,
            format!("PostgreSQL at {display} asked for a password: {source_text}"),
        )
        .with_hint("put the password in the URL, e.g. postgres://user:${PGPASSWORD}@host/db");
    }
    EngineError::new(
        ErrorKind::Connect,
        format!("cannot connect to PostgreSQL at {display}: {text} {source_text}").trim().to_string(),
    )
    .with_hint("check that the server is running and that host and port in the URL are right")
}

/// The key columns of a change log: arrays of the source key's own types,
/// one element per row a statement touched.
pub(crate) fn log_key_columns(table: &TableSchema, key: &[String]) -> String {
    ferry_engine::log_key_columns(table, key, "text", |t| format!("{t}[]"))
}

pub(crate) fn map_err(e: tokio_postgres::Error) -> EngineError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let kind = match code {
            "28P01" | "28000" => ErrorKind::Auth,
            "3D000" | "42P01" => ErrorKind::NotFound,
            "42501" => ErrorKind::Permission,
            // 55006: object in use, e.g. a replication slot a killed runner's
            // backend has not let go of yet.
            "40001" | "40P01" | "55P03" | "55006" | "57014" => ErrorKind::Transient,
            "23503" => ErrorKind::ForeignKey,
            // 25006: the operator's SQL tried to write inside Ferry's READ ONLY transaction.
            "25006" => ErrorKind::Sql,
            _ if code.starts_with("23") => ErrorKind::Constraint,
            _ if code.starts_with("22") => ErrorKind::Conversion,
            _ if code.starts_with("42") => ErrorKind::Sql,
            _ if code.starts_with("08") || code.starts_with("57") => ErrorKind::ConnectionLost,
            _ => ErrorKind::Other,
        };
        let mut message = db.message().to_string();
        if let Some(detail) = db.detail() {
            message.push_str(&format!(" ({detail})"));
        }
        let mut err = EngineError::new(kind, message);
        if let Some(hint) = db.hint() {
            err = err.with_hint(hint.to_string());
        }
        return err.with_source(e);
    }
    let kind = if e.is_closed() { ErrorKind::ConnectionLost } else { ErrorKind::Other };
    let mut message = e.to_string();
    if let Some(source) = std::error::Error::source(&e) {
        message.push_str(&format!(": {source}"));
    }
    EngineError::new(kind, message).with_source(e)
}

/// `format_type()` output -> neutral type.
pub fn from_format_type(formatted: &str) -> DataType {
    let t = formatted.trim();
    if t.ends_with("[]") {
        return DataType::text();
    }
    let (base, args) = match t.find('(') {
        Some(open) => {
            let close = t.find(')').unwrap_or(t.len());
            let args: Vec<u32> = t[open + 1..close].split(',').filter_map(|a| a.trim().parse().ok()).collect();
            (format!("{}{}", t[..open].trim(), &t[(close + 1).min(t.len())..]), args)
        }
        None => (t.to_string(), Vec::new()),
    };
    match base.trim() {
        "boolean" => DataType::Bool,
        "smallint" => DataType::Int16,
        "integer" => DataType::Int32,
        "bigint" | "oid" => DataType::Int64,
        "real" => DataType::Float32,
        "double precision" => DataType::Float64,
        "numeric" => match args.as_slice() {
            [p, s] => DataType::Decimal { precision: Some(*p), scale: Some(*s) },
            [p] => DataType::Decimal { precision: Some(*p), scale: Some(0) },
            _ => DataType::Decimal { precision: None, scale: None },
        },
        "character varying" | "character" => DataType::Text { max_chars: args.first().copied() },
        "bytea" => DataType::Bytes,
        "date" => DataType::Date,
        "time without time zone" => DataType::Time,
        "timestamp without time zone" => DataType::Timestamp,
        "timestamp with time zone" => DataType::TimestampTz,
        "json" | "jsonb" => DataType::Json,
        "uuid" => DataType::Uuid,
        _ => DataType::text(),
    }
}

/// `CREATE TABLE` with its columns, defaults, identity, checks and primary
/// key, then what must follow it (an owned sequence, comments); run as one
/// transaction, so a table is created whole or not at all.
fn create_table_sql(def: &TableDef) -> Vec<String> {
    let t = Q.table(&def.name);
    let mut after = Vec::new();
    let mut parts: Vec<String> = def
        .columns
        .iter()
        .map(|c| {
            let mut sql = format!("{} {}", Q.ident(&c.name), declare(&c.data_type));
            if let Some(collation) = &c.collation {
                sql.push_str(&format!(" COLLATE {}", Q.ident(collation)));
            }
            if let Some(g) = &c.generated {
                sql.push_str(&format!(" GENERATED ALWAYS AS ({}) STORED", g.expr));
            } else if c.identity.is_some() && c.data_type.is_integer() {
                // BY DEFAULT, never ALWAYS: Ferry writes the source's keys.
                sql.push_str(" GENERATED BY DEFAULT AS IDENTITY");
            } else if c.identity.is_some() {
                let seq = Q.ident(&object_name(&def.name.name, std::slice::from_ref(&c.name), "seq"));
                let seq = match &def.name.schema {
                    Some(schema) => format!("{}.{seq}", Q.ident(schema)),
                    None => seq,
                };
                after.push(format!("CREATE SEQUENCE {seq} AS bigint OWNED BY {t}.{}", Q.ident(&c.name)));
                after.push(format!(
                    "ALTER TABLE {t} ALTER COLUMN {} SET DEFAULT nextval({})",
                    Q.ident(&c.name),
                    sqlexpr::string_literal(EngineKind::Postgres, &seq)
                ));
            } else if let Some(d) = &c.default {
                sql.push_str(&format!(" DEFAULT {}", default_sql(d, &c.data_type)));
            }
            if !c.nullable {
                sql.push_str(" NOT NULL");
            }
            sql
        })
        .collect();
    if !def.primary_key.is_empty() {
        parts.push(format!(
            "CONSTRAINT {} PRIMARY KEY ({})",
            Q.ident(&object_name(&def.name.name, &[], "pkey")),
            Q.idents(&def.primary_key)
        ));
    }
    for check in &def.checks {
        parts.push(format!("CONSTRAINT {} CHECK ({})", Q.ident(&check.name), check.expr));
    }
    if let Some(comment) = &def.comment {
        after.push(format!("COMMENT ON TABLE {t} IS {}", sqlexpr::string_literal(EngineKind::Postgres, comment)));
    }
    for c in &def.columns {
        if let Some(comment) = &c.comment {
            after.push(format!(
                "COMMENT ON COLUMN {t}.{} IS {}",
                Q.ident(&c.name),
                sqlexpr::string_literal(EngineKind::Postgres, comment)
            ));
        }
    }
    let mut statements = vec![format!("CREATE TABLE {t} (\n  {}\n)", parts.join(",\n  "))];
    statements.extend(after);
    statements
}

/// A column default in PostgreSQL's SQL.
fn default_sql(d: &DefaultValue, t: &DataType) -> String {
    match d {
        DefaultValue::Literal(l) => sqlexpr::literal_sql(EngineKind::Postgres, l, t),
        DefaultValue::CurrentTimestamp => match t {
            DataType::Timestamp => "LOCALTIMESTAMP".into(),
            DataType::Date => "CURRENT_DATE".into(),
            DataType::Time => "LOCALTIME".into(),
            _ => "CURRENT_TIMESTAMP".into(),
        },
        DefaultValue::CurrentDate => "CURRENT_DATE".into(),
        DefaultValue::Expr(sql) => sql.clone(),
    }
}

/// A unique key is a constraint, not just a unique index, so that foreign keys may reference it.
fn index_sql(table: &TableName, columns: &[String], unique: bool) -> String {
    let name = Q.ident(&object_name(&table.name, columns, if unique { "key" } else { "idx" }));
    if unique {
        format!("ALTER TABLE {} ADD CONSTRAINT {name} UNIQUE ({})", Q.table(table), Q.idents(columns))
    } else {
        format!("CREATE INDEX IF NOT EXISTS {name} ON {} ({})", Q.table(table), Q.idents(columns))
    }
}

fn expression_index_sql(table: &TableName, index: &ExpressionIndex) -> String {
    let mut sql = format!(
        "CREATE {}INDEX IF NOT EXISTS {} ON {}{} ({})",
        if index.unique { "UNIQUE " } else { "" },
        Q.ident(&index.name),
        Q.table(table),
        index.method.as_ref().map(|m| format!(" USING {m}")).unwrap_or_default(),
        index.elements
    );
    if let Some(p) = &index.predicate {
        sql.push_str(&format!(" WHERE {p}"));
    }
    sql
}

/// NOT VALID takes only a brief lock; VALIDATE then checks the rows without blocking writes.
fn foreign_key_sql(table: &TableName, fk: &ForeignKey) -> [String; 2] {
    let t = Q.table(table);
    let name = Q.ident(&fk.name);
    [
        format!(
            "ALTER TABLE {t} ADD CONSTRAINT {name} FOREIGN KEY ({}) REFERENCES {} ({}){} NOT VALID",
            Q.idents(&fk.columns),
            Q.table(&fk.ref_table),
            Q.idents(&fk.ref_columns),
            fk.actions_sql()
        ),
        format!("ALTER TABLE {t} VALIDATE CONSTRAINT {name}"),
    ]
}

async fn constraint_exists(
    client: &Client,
    table: &TableName,
    name: &str,
) -> std::result::Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE con.conname = $1 AND c.relname = $2 AND n.nspname = COALESCE($3, current_schema())",
            &[&name, &table.name, &table.schema],
        )
        .await?
        .is_some())
}

/// A table that does not exist, with the tables that do.
async fn not_found(client: &Client, table: &TableName, display: &str) -> Result<EngineError> {
    let tables: Vec<String> = client
        .query(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE' \
             ORDER BY 1 LIMIT 30",
            &[],
        )
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(EngineError::table_not_found(table, display, &tables))
}

type Indexes = (Vec<String>, Vec<Index>, Vec<Index>, Vec<ExpressionIndex>);

/// The primary key, unique keys, plain indexes, and the indexes on
/// expressions, partial or of another method than btree, of the table `oid`.
async fn introspect_indexes(client: &Client, oid: u32) -> Result<Indexes> {
    let mut primary_key = Vec::new();
    let mut unique_keys = Vec::new();
    let mut indexes = Vec::new();
    let mut expression_indexes = Vec::new();
    for r in client
        .query(
            "SELECT i.relname, ix.indisprimary, ix.indisunique, \
                    ix.indpred IS NOT NULL OR ix.indexprs IS NOT NULL OR am.amname <> 'btree', \
                    ARRAY(SELECT a.attname::text FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(attnum, ord) \
                          JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum ORDER BY k.ord), \
                    pg_get_indexdef(ix.indexrelid), pg_get_expr(ix.indpred, ix.indrelid), am.amname::text \
             FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_am am ON am.oid = i.relam \
             WHERE ix.indrelid = $1 AND NOT EXISTS \
                (SELECT 1 FROM pg_constraint x WHERE x.conindid = ix.indexrelid AND x.contype = 'x') \
             ORDER BY i.relname",
            &[&oid],
        )
        .await
        .map_err(map_err)?
    {
        let (name, primary, unique, special, cols): (String, bool, bool, bool, Vec<String>) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if special {
            let definition: String = r.get(5);
            let method: String = r.get(7);
            expression_indexes.push(ExpressionIndex {
                name,
                unique,
                elements: index_elements(&definition).unwrap_or_else(|| cols.join(", ")),
                predicate: r.get(6),
                method: (method != "btree").then_some(method),
            });
        } else if primary {
            primary_key = cols;
        } else if unique {
            unique_keys.push(Index { name, columns: cols, unique: true });
        } else {
            indexes.push(Index { name, columns: cols, unique: false });
        }
    }
    Ok((primary_key, unique_keys, indexes, expression_indexes))
}

/// The foreign keys of the table `oid` (in `schema_name`), a referenced
/// table in the same schema named as `table` names its schema.
async fn introspect_foreign_keys(
    client: &Client,
    oid: u32,
    schema_name: &str,
    table: &TableName,
) -> Result<Vec<ForeignKey>> {
    Ok(client
        .query(
            "SELECT con.conname, \
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, ord) \
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.ord), \
                nf.nspname, cf.relname, \
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, ord) \
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.ord), \
                con.confdeltype::text, con.confupdtype::text \
             FROM pg_constraint con JOIN pg_class cf ON cf.oid = con.confrelid \
             JOIN pg_namespace nf ON nf.oid = cf.relnamespace \
             WHERE con.conrelid = $1 AND con.contype = 'f' ORDER BY con.conname",
            &[&oid],
        )
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            let ref_schema: String = r.get(2);
            ForeignKey {
                name: r.get(0),
                columns: r.get(1),
                ref_table: TableName {
                    schema: if ref_schema == schema_name { table.schema.clone() } else { Some(ref_schema) },
                    name: r.get(3),
                },
                ref_columns: r.get(4),
                on_delete: fk_action(r.get(5)),
                on_update: fk_action(r.get(6)),
            }
        })
        .collect())
}

/// Columns with their defaults, identity, generation, collation and comment.
async fn introspect_columns(client: &Client, oid: u32) -> Result<Vec<Column>> {
    let rows = client
        .query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), \
                    COALESCE(format_type(bt.oid, t.typtypmod), ''), a.attidentity::text, a.attgenerated::text, \
                    CASE WHEN a.attcollation = t.typcollation OR co.collname = 'default' THEN NULL ELSE co.collname::text END, \
                    COALESCE(NOT co.collisdeterministic, false), t.typname = 'citext', col_description(a.attrelid, a.attnum) \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_type bt ON bt.oid = t.typbasetype AND t.typtype = 'd' \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(map_err)?;
    Ok(rows
        .iter()
        .map(|r| {
            let native: String = r.get(1);
            let domain_base: String = r.get(4);
            let data_type = from_format_type(if domain_base.is_empty() { &native } else { &domain_base });
            let mut column = Column::new(r.get::<_, String>(0), data_type, !r.get::<_, bool>(2), native);
            let default: Option<String> = r.get(3);
            let (identity, generated): (String, String) = (r.get(5), r.get(6));
            column.identity = match identity.as_str() {
                "a" => Some(Identity::Always),
                "d" => Some(Identity::ByDefault),
                _ if default.as_deref().and_then(sqlexpr::nextval_sequence).is_some() => Some(Identity::Sequence),
                _ => None,
            };
            if generated == "s" {
                column.generated = default.map(|expr| Generated { expr, stored: true });
            } else if column.identity.is_none() {
                column.default = default.and_then(|d| sqlexpr::parse_default(&d, EngineKind::Postgres));
            }
            let (collation, nondeterministic, citext): (Option<String>, bool, bool) = (r.get(7), r.get(8), r.get(9));
            column.collation = match (collation, citext) {
                (Some(name), _) => Some(Collation { name, case_insensitive: nondeterministic }),
                // citext compares in lower case: no collation of its own to carry over.
                (None, true) => Some(Collation { name: String::new(), case_insensitive: true }),
                (None, false) => None,
            };
            column.comment = r.get(10);
            column
        })
        .collect())
}

/// `confdeltype` / `confupdtype` letters.
fn fk_action(code: String) -> FkAction {
    match code.as_str() {
        "r" => FkAction::Restrict,
        "c" => FkAction::Cascade,
        "n" => FkAction::SetNull,
        "d" => FkAction::SetDefault,
        _ => FkAction::NoAction,
    }
}

/// What is indexed, from `pg_get_indexdef`: `... USING btree (lower(email)) WHERE ...` -> `lower(email)`.
fn index_elements(definition: &str) -> Option<String> {
    let after_using = &definition[definition.find(" USING ")? + 7..];
    let open = after_using.find('(')?;
    let mut depth = 0;
    for (i, c) in after_using[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(after_using[open + 1..open + i].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// The sequence an identity or serial column draws from, quoted.
async fn serial_sequence(client: &Client, table: &TableName, column: &str) -> Result<Option<String>> {
    client
        .query_one("SELECT pg_get_serial_sequence($1, $2)", &[&Q.table(table), &column])
        .await
        .map(|r| r.get(0))
        .map_err(|e| map_err(e).context(format_args!("finding the sequence of {table}.{column}")))
}

pub fn declare(t: &DataType) -> String {
    match t {
        DataType::Bool => "boolean".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal { precision: Some(p), scale } => format!("numeric({p},{})", scale.unwrap_or(0)),
        DataType::Decimal { precision: None, .. } => "numeric".into(),
        DataType::Text { max_chars: Some(n) } => format!("varchar({n})"),
        DataType::Text { max_chars: None } => "text".into(),
        DataType::Bytes => "bytea".into(),
        DataType::Date => "date".into(),
        DataType::Time => "time".into(),
        DataType::Timestamp => "timestamp".into(),
        DataType::TimestampTz => "timestamptz".into(),
        DataType::Json => "jsonb".into(),
        DataType::Uuid => "uuid".into(),
    }
}

#[async_trait]
impl Catalog for PostgresEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Postgres
    }

    fn plan_dialect(&self) -> &'static dyn ferry_core::PlanDialect {
        &plan_dialect::PLAN_DIALECT
    }

    fn sql_dialect(&self) -> ferry_engine::sql::Dialect {
        POSTGRES
    }

    fn capabilities(&self) -> Capabilities {
        ferry_core::PlanDialect::capabilities(&plan_dialect::PLAN_DIALECT)
    }

    async fn namespace(&self) -> Result<Option<String>> {
        self.scalar("SELECT current_schema()").await
    }

    fn display_url(&self) -> String {
        self.display.clone()
    }

    async fn missing_privileges(&self, needs: &[ferry_engine::Need]) -> Result<Vec<String>> {
        privileges::missing(self, needs).await
    }

    async fn introspect(&self, table: &TableName) -> Result<TableSchema> {
        let client = self.client.lock().await;
        let Some((oid, schema_name)) = self.table_oid(&client, table).await? else {
            return Err(not_found(&client, table, &self.display).await?);
        };
        let columns = introspect_columns(&client, oid).await?;
        let (primary_key, unique_keys, indexes, expression_indexes) = introspect_indexes(&client, oid).await?;
        let foreign_keys = introspect_foreign_keys(&client, oid, &schema_name, table).await?;
        let checks = client
            .query(
                "SELECT conname::text, pg_get_expr(conbin, conrelid), convalidated FROM pg_constraint \
                 WHERE conrelid = $1 AND contype = 'c' ORDER BY conname",
                &[&oid],
            )
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| Check { validated: r.get(2), ..Check::new(r.get::<_, String>(0), r.get::<_, String>(1)) })
            .collect();
        let comment: Option<String> =
            client.query_one("SELECT obj_description($1, 'pg_class')", &[&oid]).await.map_err(map_err)?.get(0);
        let stats = client
            .query_one("SELECT reltuples::float8, pg_total_relation_size(oid) FROM pg_class WHERE oid = $1", &[&oid])
            .await
            .map_err(map_err)?;
        let reltuples: f64 = stats.get(0);
        let size: i64 = stats.get(1);
        Ok(TableSchema {
            name: table.clone(),
            columns,
            primary_key,
            unique_keys,
            indexes,
            foreign_keys,
            checks,
            expression_indexes,
            comment,
            stats: TableStats {
                row_estimate: (reltuples >= 0.0).then_some(reltuples as u64),
                size_bytes: Some(size as u64),
            },
        })
    }

    async fn table_exists(&self, table: &TableName) -> Result<bool> {
        let client = self.client.lock().await;
        Ok(self.table_oid(&client, table).await?.is_some())
    }

    async fn code_dependents(&self, table: &TableName, columns: &[String]) -> Result<Vec<ColumnDependent>> {
        let client = self.client.lock().await;
        let Some((oid, _)) = self.table_oid(&client, table).await? else {
            return Err(EngineError::new(ErrorKind::NotFound, format!("table `{table}` does not exist")));
        };
        let columns = columns.to_vec();
        // Views record the very columns they read (pg_depend on the rewrite rule).
        let mut out: Vec<ColumnDependent> = client
            .query(
                "SELECT DISTINCT a.attname::text, v.oid::regclass::text FROM pg_depend d \
                 JOIN pg_rewrite w ON d.classid = 'pg_rewrite'::regclass AND w.oid = d.objid \
                 JOIN pg_class v ON v.oid = w.ev_class \
                 JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                 WHERE d.refobjid = $1 AND v.oid <> $1 AND a.attname::text = ANY($2)",
                &[&oid, &columns],
            )
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| ColumnDependent { column: r.get(0), kind: DependentKind::View, name: r.get(1) })
            .collect();
        // A trigger's function body is not tracked: its text (and its UPDATE OF list and WHEN) is read.
        for r in client
            .query(
                "SELECT t.tgname::text, pg_get_triggerdef(t.oid) || ' ' || p.prosrc FROM pg_trigger t \
                 JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = $1 AND NOT t.tgisinternal",
                &[&oid],
            )
            .await
            .map_err(map_err)?
        {
            let (name, text): (String, String) = (r.get(0), r.get(1));
            for column in columns.iter().filter(|c| ferry_core::schema::mentions_column(&text, c)) {
                out.push(ColumnDependent { column: column.clone(), kind: DependentKind::Trigger, name: name.clone() });
            }
        }
        Ok(out)
    }

    async fn dependents(&self, table: &TableName) -> Result<Dependents> {
        let client = self.client.lock().await;
        let Some((oid, schema_name)) = self.table_oid(&client, table).await? else {
            return Err(EngineError::new(ErrorKind::NotFound, format!("table `{table}` does not exist")));
        };
        let mut out = Dependents::default();
        for r in client
            .query(
                "SELECT con.conname, n.nspname, c.relname, \
                    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, ord) \
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.ord), \
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, ord) \
                          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.ord), \
                    con.confdeltype::text, con.confupdtype::text \
                 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE con.confrelid = $1 AND con.contype = 'f' ORDER BY 2, 3, 1",
                &[&oid],
            )
            .await
            .map_err(map_err)?
        {
            let child_schema: String = r.get(1);
            let child = TableName { schema: (child_schema != schema_name).then_some(child_schema), name: r.get(2) };
            let fk = ForeignKey {
                name: r.get(0),
                columns: r.get(3),
                ref_table: table.clone(),
                ref_columns: r.get(4),
                on_delete: fk_action(r.get(5)),
                on_update: fk_action(r.get(6)),
            };
            out.foreign_keys_in.push((child, fk));
        }
        out.triggers = client
            .query("SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY 1", &[&oid])
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        out.views = client
            .query(
                "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid \
                 JOIN pg_class v ON v.oid = w.ev_class WHERE d.refobjid = $1 AND v.oid <> $1 ORDER BY 1",
                &[&oid],
            )
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(out)
    }

    async fn version(&self) -> Result<String> {
        let client = self.client.lock().await;
        let row = client.query_one("SHOW server_version", &[]).await.map_err(map_err)?;
        Ok(row.get::<_, String>(0))
    }

    async fn transport(&self) -> Result<ferry_core::Transport> {
        let client = self.client.lock().await;
        let row = client
            .query_opt("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl", &[])
            .await
            .map_err(map_err)?;
        Ok(match row {
            Some(row) => ferry_core::Transport::Tls {
                protocol: row.get::<_, Option<String>>(0).unwrap_or_else(|| "TLS".into()),
                mode: format!("sslmode={}", self.tls.settings.mode.url_value(TlsDialect::Libpq)),
            },
            None => ferry_core::Transport::Unencrypted,
        })
    }

    async fn free_disk_bytes(&self) -> Result<Option<u64>> {
        // PostgreSQL does not report free space over SQL.
        Ok(None)
    }

    async fn expression_type(&self, table: &TableName, sql: &str) -> Result<Option<DataType>> {
        let client = self.client.lock().await;
        let stmt = client
            .prepare(&format!("SELECT ({sql}) FROM {} LIMIT 0", Q.table(table)))
            .await
            .map_err(|e| map_err(e).context(format_args!("checking expression `{sql}` on {table}")))?;
        Ok(stmt.columns().first().map(|c| data_type_of(c.type_())))
    }

    fn storage_type(&self, t: &DataType, _in_key_or_index: bool) -> DataType {
        t.clone()
    }

    fn schema_support(&self) -> SchemaSupport {
        SchemaSupport {
            partial_indexes: true,
            expression_indexes: true,
            index_methods: true,
            comments: true,
            virtual_columns: false,
            identity_anywhere: true,
            fk_set_default: true,
            on_update_timestamp: false,
            case_insensitive_collation: None,
        }
    }

    async fn count(&self, table: &TableName, filter: Option<&str>) -> Result<u64> {
        let client = self.client.lock().await;
        let row = client
            .query_one(&Q.count(table, filter), &[])
            .await
            .map_err(|e| map_err(e).context(format_args!("counting {table}")))?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}

#[async_trait]
impl Ddl for PostgresEngine {
    async fn drop_scratch_table(&self, table: &TableName) -> Result<()> {
        ferry_engine::ensure_scratch(table)?;
        self.batch_execute(&format!("DROP TABLE IF EXISTS {}", Q.table(table))).await
    }

    async fn create_table(&self, def: &TableDef) -> Result<()> {
        let client = self.client.lock().await;
        client
            .batch_execute(&create_table_sql(def).join(";\n"))
            .await
            .map_err(|e| map_err(e).context(format_args!("creating table {}", def.name)))
    }

    async fn create_index(&self, table: &TableName, columns: &[String], unique: bool) -> Result<()> {
        let name = object_name(&table.name, columns, if unique { "key" } else { "idx" });
        let client = self.client.lock().await;
        let context = |e| map_err(e).context(format_args!("creating {name} on {table}"));
        if unique && constraint_exists(&client, table, &name).await.map_err(context)? {
            return Ok(());
        }
        client.batch_execute(&index_sql(table, columns, unique)).await.map_err(context)
    }

    fn table_ddl(&self, def: &TableDef) -> (Vec<String>, Vec<String>) {
        let mut after: Vec<String> = def
            .unique_keys
            .iter()
            .map(|cols| index_sql(&def.name, cols, true))
            .chain(def.indexes.iter().map(|cols| index_sql(&def.name, cols, false)))
            .chain(def.expression_indexes.iter().map(|i| expression_index_sql(&def.name, i)))
            .collect();
        for fk in &def.foreign_keys {
            after.extend(foreign_key_sql(&def.name, fk));
        }
        (create_table_sql(def), after)
    }

    async fn add_foreign_key(&self, table: &TableName, fk: &ForeignKey) -> Result<()> {
        let client = self.client.lock().await;
        let [add, validate] = foreign_key_sql(table, fk);
        if !constraint_exists(&client, table, &fk.name).await.map_err(map_err)? {
            client
                .batch_execute(&add)
                .await
                .map_err(|e| map_err(e).context(format_args!("adding foreign key {} on {table}", fk.name)))?;
        }
        client
            .batch_execute(&validate)
            .await
            .map_err(|e| map_err(e).context(format_args!("validating foreign key {} on {table}", fk.name)))
    }

    async fn create_expression_index(&self, table: &TableName, index: &ExpressionIndex) -> Result<()> {
        self.batch_execute(&expression_index_sql(table, index))
            .await
            .map_err(|e| e.context(format_args!("creating index {} on {table}", index.name)))
    }

    async fn set_identity_next(&self, table: &TableName, column: &str, next: i64) -> Result<()> {
        let client = self.client.lock().await;
        let Some(sequence) = serial_sequence(&client, table, column).await? else {
            return Err(EngineError::new(
                ErrorKind::NotFound,
                format!("{table}.{column} draws from no sequence of its own"),
            ));
        };
        client
            .query("SELECT setval($1::text::regclass, $2, false)", &[&sequence, &next])
            .await
            .map_err(|e| map_err(e).context(format_args!("moving sequence {sequence}")))?;
        Ok(())
    }

    fn identity_sql(&self, table: &TableName, column: &str, next: &str) -> Vec<String> {
        vec![format!(
            "SELECT setval(pg_get_serial_sequence({}, {}), {next}, false)",
            sqlexpr::string_literal(EngineKind::Postgres, &Q.table(table)),
            sqlexpr::string_literal(EngineKind::Postgres, column)
        )]
    }

    async fn install_fence(&self, table: &TableName, message: &str, lock_timeout: Duration) -> Result<()> {
        let name = fence_name(table);
        let func = Q.table(&TableName { schema: table.schema.clone(), name: name.clone() });
        let sql = format!(
            "SET LOCAL lock_timeout = '{ms}ms';
             CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $ferry$
             BEGIN
               IF current_setting('ferry.bypass_fence', true) = 'on' THEN RETURN NULL; END IF;
               RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = {message};
             END $ferry$;
             DROP TRIGGER IF EXISTS {trigger} ON {t};
             CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {t}
                 FOR EACH STATEMENT EXECUTE FUNCTION {func}();",
            ms = lock_timeout.as_millis(),
            message = sqlexpr::string_literal(EngineKind::Postgres, message),
            trigger = Q.ident(&name),
            t = Q.table(table),
        );
        self.in_transaction(&sql).await.map_err(|e| e.context(format_args!("fencing writes to {table}")))
    }

    async fn remove_fence(&self, table: &TableName, lock_timeout: Duration) -> Result<()> {
        let name = fence_name(table);
        let func = Q.table(&TableName { schema: table.schema.clone(), name: name.clone() });
        let drop_trigger = if self.table_exists(table).await? {
            format!("DROP TRIGGER IF EXISTS {} ON {};", Q.ident(&name), Q.table(table))
        } else {
            String::new()
        };
        let sql = format!(
            "SET LOCAL lock_timeout = '{}ms'; {drop_trigger} DROP FUNCTION IF EXISTS {func}();",
            lock_timeout.as_millis()
        );
        self.in_transaction(&sql).await.map_err(|e| e.context(format_args!("lifting the write fence of {table}")))
    }

    async fn rename_table(&self, from: &TableName, to: &TableName) -> Result<()> {
        self.batch_execute(&format!("ALTER TABLE {} RENAME TO {}", Q.table(from), Q.ident(&to.name)))
            .await
            .map_err(|e| e.context(format_args!("renaming {from} to {to}")))
    }

    async fn backup(&self, tables: &[TableName], dir: &std::path::Path) -> Result<std::path::PathBuf> {
        let schema: String = {
            let client = self.client.lock().await;
            client.query_one("SELECT current_schema()", &[]).await.map_err(map_err)?.get(0)
        };
        let file = dir.join(format!("ferry-backup-{}.dump", self.database()));
        let mut command = self.libpq_tool("pg_dump");
        command.args(["--format=custom", "--no-owner", "--no-acl"]).arg(format!("--file={}", file.display()));
        for t in tables {
            let qualified =
                TableName { schema: Some(t.schema.clone().unwrap_or_else(|| schema.clone())), name: t.name.clone() };
            command.arg(format!("--table={}", Q.table(&qualified)));
        }
        tokio::task::spawn_blocking(move || ferry_engine::run_tool(command, "backing up the source tables"))
            .await
            .map_err(|e| EngineError::new(ErrorKind::Other, format!("pg_dump did not finish: {e}")))??;
        Ok(file)
    }

    fn scratch_name(&self, purpose: &str) -> String {
        ferry_core::schema::bounded_name(&format!("ferry_{purpose}_{}", self.database()), 63)
    }

    async fn create_scratch_database(&self, name: &str) -> Result<std::sync::Arc<dyn Engine>> {
        ferry_engine::ensure_scratch_name(name)?;
        self.drop_scratch_database(name).await?;
        self.batch_execute(&format!("CREATE DATABASE {}", Q.ident(name))).await?;
        let mut config = self.config.clone();
        config.dbname(name);
        Ok(std::sync::Arc::new(
            PostgresEngine::from_config(config, self.tls.clone(), ferry_engine::scratch_display(&self.display, name))
                .await?,
        ))
    }

    async fn drop_scratch_database(&self, name: &str) -> Result<()> {
        ferry_engine::ensure_scratch_name(name)?;
        // A logical slot (capture left by a failed rehearsal) keeps a database from being dropped.
        {
            let client = self.client.lock().await;
            client
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
                    &[&name],
                )
                .await
                .map_err(map_err)?;
        }
        self.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", Q.ident(name))).await
    }

    async fn restore_scratch(&self, dump: &std::path::Path, name: &str) -> Result<std::sync::Arc<dyn Engine>> {
        let engine = self.create_scratch_database(name).await?;
        let extensions: Vec<String> = {
            let client = self.client.lock().await;
            client
                .query("SELECT extname::text FROM pg_extension WHERE extname <> 'plpgsql'", &[])
                .await
                .map_err(map_err)?
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        for extension in extensions {
            engine.probe(&format!("CREATE EXTENSION IF NOT EXISTS {}", Q.ident(&extension))).await?;
        }
        // Ferry's own objects (fences, capture) are left out: they are not the application's.
        let mut list = self.libpq_tool("pg_restore");
        list.arg("--list").arg(dump);
        let mut restore = self.libpq_tool("pg_restore");
        let list_file = dump.with_extension("list");
        restore
            .args(["--exit-on-error", "--no-owner", "--no-acl"])
            .arg(format!("--use-list={}", list_file.display()))
            .arg(format!("--dbname={name}"))
            .arg(dump);
        tokio::task::spawn_blocking(move || -> Result<()> {
            let listing = String::from_utf8_lossy(&ferry_engine::run_tool(list, "reading the backup")?).into_owned();
            let kept: String = listing.lines().filter(|l| !l.contains("ferry_")).map(|l| format!("{l}\n")).collect();
            std::fs::write(&list_file, kept)
                .map_err(|e| EngineError::new(ErrorKind::Io, format!("cannot write {}: {e}", list_file.display())))?;
            ferry_engine::run_tool(restore, "restoring the backup into a scratch database").map(|_| ())
        })
        .await
        .map_err(|e| EngineError::new(ErrorKind::Other, format!("pg_restore did not finish: {e}")))??;
        Ok(engine)
    }

    async fn execute(&self, statements: &[String], atomic: bool, lock_timeout: Duration) -> Result<u64> {
        let mut client = self.client.lock().await;
        let timeout = format!("SET LOCAL lock_timeout = '{}ms'", lock_timeout.as_millis());
        let mut changed = 0;
        if atomic {
            let tx = client.transaction().await.map_err(map_err)?;
            tx.batch_execute(&timeout).await.map_err(map_err)?;
            for sql in statements {
                changed = tx
                    .execute(sql.as_str(), &[])
                    .await
                    .map_err(|e| map_err(e).context(ferry_engine::statement_context(sql)))?;
            }
            tx.commit().await.map_err(map_err)?;
        } else {
            // One statement at a time, each its own transaction (CREATE INDEX CONCURRENTLY needs that).
            client.batch_execute(&timeout.replace("SET LOCAL", "SET")).await.map_err(map_err)?;
            let mut result = Ok(());
            for sql in statements {
                match client.execute(sql.as_str(), &[]).await {
                    Ok(n) => changed = n,
                    Err(e) => {
                        result = Err(map_err(e).context(ferry_engine::statement_context(sql)));
                        break;
                    }
                }
            }
            // The statement's own error first: a lost connection fails the reset too.
            let reset = client.batch_execute("RESET lock_timeout").await;
            result?;
            reset.map_err(map_err)?;
        }
        Ok(changed)
    }

    async fn drop_table(&self, table: &TableName) -> Result<()> {
        self.batch_execute(&format!("DROP TABLE IF EXISTS {}", Q.table(table))).await
    }
}

#[async_trait]
impl Reader for PostgresEngine {
    async fn identity_next(&self, table: &TableName, column: &str) -> Result<Option<i64>> {
        let client = self.client.lock().await;
        let Some(sequence) = serial_sequence(&client, table, column).await? else {
            return Ok(None);
        };
        let row = client
            .query_one(&format!("SELECT last_value, is_called FROM {sequence}"), &[])
            .await
            .map_err(|e| map_err(e).context(format_args!("reading sequence {sequence}")))?;
        let (last, called): (i64, bool) = (row.get(0), row.get(1));
        Ok(Some(if called { last + 1 } else { last }))
    }

    async fn read_batch(&self, read: &ReadSpec, after: Option<&[Value]>, limit: usize) -> Result<Vec<Row>> {
        let query = Q.keyset_select(read, after.is_some(), limit);
        let params: Vec<&Value> = match after {
            Some(after) => query.binds.iter().map(|&i| &after[i]).collect(),
            None => Vec::new(),
        };
        self.query_values(&query.sql, read, params).await.map_err(|e| e.context(format_args!("reading {}", read.table)))
    }

    async fn read_range(&self, read: &ReadSpec, range: &KeyRange, offset: usize, limit: usize) -> Result<Vec<Row>> {
        let query = Q.range_select(read, range.after.is_some(), range.through.is_some(), offset, limit);
        let params = range.bind_values(&query.binds, read.key.len());
        self.query_values(&query.sql, read, params).await.map_err(|e| e.context(format_args!("reading {}", read.table)))
    }

    async fn checksum_range(&self, read: &ReadSpec, range: &KeyRange) -> Result<Option<RangeChecksum>> {
        // Each value through the 64-bit hash of its type's hash opclass (the
        // functions PostgreSQL keeps stable for hash partitioning; equal
        // values hash equal, 1.50 and 1.5 included), one seed per column,
        // XORed into a row hash; summed exactly (sum(bigint) is numeric) and
        // reduced modulo 2^64 here. No value is formatted as text.
        let items: Vec<String> = read
            .select
            .iter()
            .map(|item| match item {
                SelectItem::Column(c) => Q.ident(c),
                SelectItem::Expr(e) => format!("({e})"),
            })
            .collect();
        let client = self.client.lock().await;
        let probe = format!("SELECT {} FROM {} LIMIT 0", items.join(", "), Q.table(&read.table));
        let cached = self.reads.lock().await.get(&probe).cloned();
        let types: Vec<Type> = match cached {
            Some(stmt) => stmt.columns().iter().map(|c| c.type_().clone()).collect(),
            None => {
                let stmt = client
                    .prepare(&probe)
                    .await
                    .map_err(|e| map_err(e).context(format_args!("reading {}", read.table)))?;
                let types = stmt.columns().iter().map(|c| c.type_().clone()).collect();
                self.reads.lock().await.insert(probe, stmt);
                types
            }
        };
        let row_hash: Vec<String> =
            items.iter().zip(&types).enumerate().map(|(i, (item, t))| column_hash(item, t, i as i64 + 1)).collect();
        let filter = Q.range_where(read, range.after.is_some(), range.through.is_some());
        let sql = format!(
            "SELECT count(*), coalesce(sum({}), 0)::text FROM {}{}",
            row_hash.join(" # "),
            Q.table(&read.table),
            filter.sql
        );
        let params: Vec<Encode> = range.bind_values(&filter.binds, read.key.len()).into_iter().map(Encode).collect();
        let row = client
            .query_one(&sql, &params.iter().map(|p| p as &(dyn ToSql + Sync)).collect::<Vec<_>>())
            .await
            .map_err(|e| map_err(e).context(format_args!("checksumming {}", read.table)))?;
        let rows: i64 = row.get(0);
        let sum: String = row.get(1);
        Ok(Some(RangeChecksum { rows: rows as u64, sum: ferry_engine::wrap_sum(&sum) }))
    }

    async fn read_keys(&self, read: &ReadSpec, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let query = Q.select_by_keys(read, chunk.len());
            let flat: Vec<&Value> = chunk.iter().flatten().collect();
            let params = query.binds.iter().map(|&i| flat[i]).collect();
            out.extend(self.query_values(&query.sql, read, params).await?);
        }
        Ok(out)
    }

    async fn scalar(&self, sql: &str) -> Result<Option<String>> {
        let messages = self.read_only(sql).await?;
        Ok(messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
                _ => None,
            })
            .flatten())
    }

    async fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        // The simple query protocol answers every value in its text form.
        Ok(self
            .read_only(sql)
            .await?
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }
}

#[async_trait]
impl Writer for PostgresEngine {
    async fn upsert(&self, write: &WriteSpec, rows: Rows) -> Result<()> {
        self.write_rows(write, rows, None).await
    }

    async fn upsert_checkpointed(
        &self,
        write: &WriteSpec,
        rows: Rows,
        checkpoint: &Checkpoint,
        durability: Durability,
    ) -> Result<()> {
        self.write_rows(write, rows, Some((checkpoint, durability))).await
    }

    async fn delete_keys(&self, write: &WriteSpec, keys: &[Vec<Value>]) -> Result<()> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await.map_err(map_err)?;
        for chunk in keys.chunks(500) {
            let q = Q.delete_by_keys(&write.table, &write.key, chunk.len());
            let flat: Vec<&Value> = chunk.iter().flatten().collect();
            let params: Vec<Encode> = q.binds.iter().map(|&i| Encode(flat[i])).collect();
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            tx.execute(q.sql.as_str(), &refs)
                .await
                .map_err(|e| map_err(e).context(format_args!("deleting from {}", write.table)))?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn delete_all(&self, table: &TableName) -> Result<()> {
        // DELETE, not TRUNCATE: no ACCESS EXCLUSIVE lock, and foreign keys are checked.
        self.batch_execute(&format!("DELETE FROM {}", Q.table(table))).await
    }
}

#[async_trait]
impl ChangeCapture for PostgresEngine {
    fn capture_methods(&self) -> &'static [CaptureMethod] {
        &[CaptureMethod::Triggers, CaptureMethod::Logical]
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
        if method == CaptureMethod::Logical {
            return self.install_logical(table, key, lock_timeout).await;
        }
        let t = Q.table(&table.name);
        let scope = self.capture_scope();
        let log = Q.table(&change_log_table(&scope, &table.name));
        let name = capture_name(&scope, &table.name);
        let func = Q.table(&TableName { schema: table.name.schema.clone(), name: name.clone() });
        // One log row per statement, holding the keys it touched as arrays
        // (one per key column): a bulk UPDATE writes one row and one index
        // entry instead of one per changed row.
        let typed = log_key_columns(table, key);
        let ks: Vec<String> = (0..key.len()).map(|i| format!("k{i}")).collect();
        let aggregated: Vec<String> = (0..key.len()).map(|i| format!("array_agg(k{i})")).collect();
        let of = |row: &str| {
            key.iter().enumerate().map(|(i, k)| format!("{row}.{} AS k{i}", Q.ident(k))).collect::<Vec<_>>().join(", ")
        };
        // Statement-level triggers with transition tables: one INSERT ... SELECT per
        // statement, not a function call per row. An UPDATE logs old and new
        // keys (a key update changes both); replay removes the repeats.
        let sql = format!(
            "SET LOCAL lock_timeout = '{ms}ms';
             CREATE TABLE IF NOT EXISTS {log} (seq bigserial PRIMARY KEY, op char(1) NOT NULL,
                 at timestamptz NOT NULL DEFAULT clock_timestamp(), {typed});
             CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $ferry$
             BEGIN
               IF TG_OP = 'INSERT' THEN
                 INSERT INTO {log} (op, {ks}) SELECT 'I', {agg} FROM (SELECT {new} FROM ferry_new n) c HAVING count(*) > 0;
               ELSIF TG_OP = 'UPDATE' THEN
                 INSERT INTO {log} (op, {ks}) SELECT 'U', {agg} FROM (SELECT {new} FROM ferry_new n UNION ALL SELECT {old} FROM ferry_old o) c HAVING count(*) > 0;
               ELSIF TG_OP = 'TRUNCATE' THEN
                 INSERT INTO {log} (op, {ks}) VALUES ('T', {empty});
               ELSE
                 INSERT INTO {log} (op, {ks}) SELECT 'D', {agg} FROM (SELECT {old} FROM ferry_old o) c HAVING count(*) > 0;
               END IF;
               RETURN NULL;
             END $ferry$;
             DROP TRIGGER IF EXISTS {ins} ON {t};
             DROP TRIGGER IF EXISTS {upd} ON {t};
             DROP TRIGGER IF EXISTS {del} ON {t};
             DROP TRIGGER IF EXISTS {trunc} ON {t};
             CREATE TRIGGER {ins} AFTER INSERT ON {t} REFERENCING NEW TABLE AS ferry_new FOR EACH STATEMENT EXECUTE FUNCTION {func}();
             CREATE TRIGGER {upd} AFTER UPDATE ON {t} REFERENCING OLD TABLE AS ferry_old NEW TABLE AS ferry_new FOR EACH STATEMENT EXECUTE FUNCTION {func}();
             CREATE TRIGGER {del} AFTER DELETE ON {t} REFERENCING OLD TABLE AS ferry_old FOR EACH STATEMENT EXECUTE FUNCTION {func}();
             CREATE TRIGGER {trunc} AFTER TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION {func}();",
            empty = vec!["'{}'"; key.len()].join(", "),
            trunc = Q.ident(&format!("{name}_trunc")),
            agg = aggregated.join(", "),
            ms = lock_timeout.as_millis(),
            ks = ks.join(", "),
            new = of("n"),
            old = of("o"),
            ins = Q.ident(&format!("{name}_ins")),
            upd = Q.ident(&format!("{name}_upd")),
            del = Q.ident(&format!("{name}_del")),
        );
        self.in_transaction(&sql)
            .await
            .map_err(|e| e.context(format_args!("installing change capture on {}", table.name)))
    }

    async fn remove_capture(&self, table: &TableName, lock_timeout: Duration) -> Result<()> {
        let t = Q.table(table);
        let scope = self.capture_scope();
        let name = capture_name(&scope, table);
        let func = Q.table(&TableName { schema: table.schema.clone(), name: name.clone() });
        let exists = self.table_exists(table).await?;
        let triggers = if exists {
            format!(
                "DROP TRIGGER IF EXISTS {} ON {t}; DROP TRIGGER IF EXISTS {} ON {t}; DROP TRIGGER IF EXISTS {} ON {t}; \
                 DROP TRIGGER IF EXISTS {} ON {t};",
                Q.ident(&format!("{name}_ins")),
                Q.ident(&format!("{name}_upd")),
                Q.ident(&format!("{name}_del")),
                Q.ident(&format!("{name}_trunc"))
            )
        } else {
            String::new()
        };
        let sql = format!(
            "SET LOCAL lock_timeout = '{}ms'; {triggers} DROP FUNCTION IF EXISTS {func}(); DROP TABLE IF EXISTS {};",
            lock_timeout.as_millis(),
            Q.table(&change_log_table(&scope, table))
        );
        self.in_transaction(&sql).await.map_err(|e| e.context(format_args!("removing change capture from {table}")))?;
        self.remove_logical(table, lock_timeout)
            .await
            .map_err(|e| e.context(format_args!("removing logical capture of {table}")))
    }

    async fn check_capture(&self, method: CaptureMethod) -> Result<()> {
        match method {
            CaptureMethod::Triggers => Ok(()),
            CaptureMethod::Logical => self.check_wal_level().await,
            CaptureMethod::Binlog => Err(unsupported_capture(self.kind(), method)),
        }
    }

    async fn collect_changes(&self) -> Result<()> {
        self.pump().await
    }

    async fn read_changes(&self, table: &TableName, key_width: usize, limit: usize) -> Result<Vec<Change>> {
        // Each log row holds a statement's keys as arrays: one change per key,
        // all with the row's sequence number (acknowledged together).
        let log = change_log_table(&self.capture_scope(), table);
        let limit = limit.max(1);
        let columns: Vec<String> = (0..key_width).map(|i| format!("k{i}")).collect();
        self.split_large_changes(&log, &columns, limit).await?;
        // A TRUNCATE's entry (op 'T') has empty arrays: read as one row of
        // NULLs, and told apart by its op, never by its keys (a key column
        // named in the spec may hold NULLs).
        let mut select = vec![SelectItem::Column("seq".into()), SelectItem::Expr("op = 'T'".into())];
        select.extend(
            (0..key_width)
                .map(|i| SelectItem::Expr(format!("unnest(CASE WHEN op = 'T' THEN '{{NULL}}' ELSE k{i} END)"))),
        );
        let read =
            ReadSpec { table: log.clone(), select, key: vec!["seq".into()], key_positions: vec![0], filter: None };
        // The oldest entries until the batch is full: at most `limit` keys
        // more than `limit`, as no entry holds more than `limit` keys.
        let sql = format!(
            "SELECT {select} FROM (SELECT seq, op, {columns}, sum(cardinality(k0)) OVER (ORDER BY seq) - cardinality(k0) AS before
                 FROM (SELECT seq, op, {columns} FROM {log} ORDER BY seq LIMIT {limit}) AS head) AS pending
             WHERE before < {limit} ORDER BY seq",
            select = Q.select_list(&read.select),
            columns = columns.join(", "),
            log = Q.table(&log)
        );
        let rows = self.query_values(&sql, &read, Vec::new()).await?;
        Ok(rows.into_iter().map(Change::from_log_row).collect())
    }

    async fn ack_changes(&self, table: &TableName, seqs: &[i64]) -> Result<()> {
        let client = self.client.lock().await;
        client
            .execute(
                &format!(
                    "DELETE FROM {} WHERE seq = ANY($1)",
                    Q.table(&change_log_table(&self.capture_scope(), table))
                ),
                &[&seqs.to_vec()],
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn capture_retained_bytes(&self) -> Result<Option<u64>> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 FROM pg_replication_slots
                 WHERE slot_name = $1",
                &[&logical::slot_name(&self.capture_scope(), &self.database())],
            )
            .await
            .map_err(map_err)?;
        Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).map(|b| b.max(0) as u64))
    }

    async fn capture_lag(&self, table: &TableName) -> Result<CaptureLag> {
        let client = self.client.lock().await;
        let row = client
            .query_one(
                &format!(
                    "SELECT coalesce(sum(cardinality(k0)), 0)::int8, extract(epoch FROM clock_timestamp() - min(at))::float8 FROM {}",
                    Q.table(&change_log_table(&self.capture_scope(), table))
                ),
                &[],
            )
            .await
            .map_err(map_err)?;
        // The slot holds changes not yet moved into the log: count them as one
        // more pending, so that no one takes the log for drained.
        let behind = self.slot_behind.load(std::sync::atomic::Ordering::Relaxed) as u64;
        Ok(CaptureLag { pending: row.get::<_, i64>(0) as u64 + behind, oldest_seconds: row.get(1) })
    }
}

#[async_trait]
impl Health for PostgresEngine {
    async fn answers(&self) -> Result<()> {
        let client = connect(&self.config, &self.tls, &self.display).await?;
        let limit = self.config.get_connect_timeout().copied().unwrap_or(Duration::from_secs(10));
        tokio::time::timeout(limit, client.simple_query("SELECT 1"))
            .await
            .map_err(|_| {
                EngineError::new(ErrorKind::ConnectionLost, format!("no answer to SELECT 1 within {limit:?}"))
            })?
            .map_err(map_err)?;
        Ok(())
    }

    async fn connect_again(&self) -> Result<std::sync::Arc<dyn Engine>> {
        let engine = PostgresEngine::from_config(self.config.clone(), self.tls.clone(), self.display.clone()).await?;
        engine.set_capture_scope(self.capture_scope());
        Ok(std::sync::Arc::new(engine))
    }

    async fn probe(&self, sql: &str) -> Result<()> {
        self.read_only(sql).await.map_err(|e| e.context("latency probe"))?;
        Ok(())
    }

    async fn active_sessions(&self) -> Result<Option<u64>> {
        // Ferry's connections call themselves `ferry` (capture, replay, verify beside the copy).
        let count = self
            .scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' \
                 AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
                 AND application_name IS DISTINCT FROM 'ferry'",
            )
            .await?;
        Ok(count.and_then(|c| c.parse().ok()))
    }

    async fn rows_changed(&self, table: &TableName) -> Result<Option<u64>> {
        // Other backends' counts arrive within a second (PostgreSQL 15 flushes them at most that often).
        let name = sqlexpr::string_literal(EngineKind::Postgres, &POSTGRES.table(table));
        let count = self
            .scalar(&format!(
                "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_all_tables WHERE relid = to_regclass({name})"
            ))
            .await?;
        Ok(count.and_then(|c| c.parse().ok()))
    }

    async fn replica_lag(&self) -> Result<Option<ReplicaLag>> {
        let client = self.client.lock().await;
        // replay_lag is NULL while a replica has nothing left to replay.
        let row = client
            .query_opt(
                "SELECT coalesce(nullif(application_name, ''), client_addr::text, 'a replica'),
                        coalesce(extract(epoch FROM replay_lag)::float8, 0)
                 FROM pg_stat_replication ORDER BY replay_lag DESC NULLS LAST LIMIT 1",
                &[],
            )
            .await
            .map_err(map_err)?;
        Ok(row.map(|r| ReplicaLag { replica: r.get(0), seconds: Some(r.get(1)) }))
    }
}

#[async_trait]
impl Locks for PostgresEngine {
    async fn try_lock(&self, name: &str) -> Result<Option<LockGuard>> {
        // A session lock on a connection of its own: it lives exactly as long
        // as the guard (or the process) does.
        let client = connect(&self.config, &self.tls, &self.display).await?;
        let key = ferry_engine::lock_key(name) as i64;
        let row = client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await.map_err(map_err)?;
        Ok(row.get::<_, bool>(0).then(|| LockGuard::new(client)))
    }
}

/// A 64-bit hash of one value by the hash function of its type, seeded per
/// column; a NULL hashes to a constant of the column's own.
fn column_hash(item: &str, t: &Type, seed: i64) -> String {
    let hash = match *t {
        Type::INT2 | Type::INT4 | Type::INT8 => format!("hashint8extended({item}::int8, {seed})"),
        Type::NUMERIC => format!("hash_numeric_extended({item}, {seed})"),
        Type::FLOAT4 => format!("hashfloat4extended({item}, {seed})"),
        Type::FLOAT8 => format!("hashfloat8extended({item}, {seed})"),
        Type::BOOL => format!("hashint4extended({item}::int4, {seed})"),
        Type::TIMESTAMP => format!("timestamp_hash_extended({item}, {seed})"),
        Type::TIMESTAMPTZ => format!("timestamp_hash_extended({item} AT TIME ZONE 'UTC', {seed})"),
        Type::DATE => format!("hashint4extended({item} - DATE '2000-01-01', {seed})"),
        Type::TIME => format!("time_hash_extended({item}, {seed})"),
        Type::UUID => format!("uuid_hash_extended({item}, {seed})"),
        Type::JSONB => format!("jsonb_hash_extended({item}, {seed})"),
        Type::BYTEA => format!("hashtextextended(encode({item}, 'base64'), {seed})"),
        _ => format!("hashtextextended({item}::text, {seed})"),
    };
    format!("coalesce({hash}, {})", -7919 * seed)
}

/// The whole batch in PostgreSQL's binary COPY format, encoded before any
/// transaction is opened.
fn encode_copy(types: &[Type], rows: &[Row]) -> Result<Bytes> {
    let mut buf = BytesMut::with_capacity(rows.len() * (8 + types.len() * 16) + 32);
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension
    for row in rows {
        buf.put_i16(types.len() as i16);
        for (i, (value, ty)) in row.iter().zip(types).enumerate() {
            let at = buf.len();
            buf.put_i32(0);
            let len = match Encode(value).to_sql(ty, &mut buf) {
                Ok(IsNull::Yes) => -1,
                Ok(IsNull::No) => (buf.len() - at - 4) as i32,
                Err(e) => {
                    return Err(EngineError::new(ErrorKind::Conversion, format!("column {}: {e}", i + 1)));
                }
            };
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
    buf.put_i16(-1);
    Ok(buf.freeze())
}

/// CopyData messages of this size: few enough to keep the connection task
/// out of the way, small enough to stream.
const COPY_CHUNK: usize = 256 * 1024;

/// One transaction: optional setup SQL, a binary COPY of `payload`, optional follow-up SQL.
async fn copy_rows(
    client: &mut Client,
    copy_sql: &str,
    around: Option<(&str, &str)>,
    payload: &Bytes,
    commit: Option<(&Checkpoint, Durability)>,
) -> std::result::Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    if let Some((_, Durability::Deferred)) = commit {
        // The checkpoint commits with the rows: a crash loses both, and the
        // resume redoes them, so this commit need not wait for the WAL flush.
        tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
    }
    if let Some((before, _)) = around {
        tx.batch_execute(before).await?;
    }
    if !payload.is_empty() {
        copy_payload(&tx, copy_sql, payload).await?;
    }
    if let Some((_, after)) = around {
        tx.batch_execute(after).await?;
    }
    if let Some((checkpoint, _)) = commit {
        let row = checkpoint.row();
        let params: Vec<Encode> = row.iter().map(Encode).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        tx.execute(checkpoint_upsert().as_str(), &refs).await?;
    }
    tx.commit().await
}

/// The upsert of a checkpoint row.
fn checkpoint_upsert() -> String {
    let updates: Vec<String> =
        Checkpoint::updated_columns().iter().map(|c| format!("{0} = EXCLUDED.{0}", Q.ident(c))).collect();
    let key: Vec<String> = Checkpoint::key_columns().iter().map(|c| c.to_string()).collect();
    format!("{} ON CONFLICT ({}) DO UPDATE SET {}", Checkpoint::insert_sql(Q), Q.idents(&key), updates.join(", "))
}

async fn copy_payload(
    tx: &tokio_postgres::Transaction<'_>,
    copy_sql: &str,
    payload: &Bytes,
) -> std::result::Result<(), tokio_postgres::Error> {
    let sink = tx.copy_in::<_, Bytes>(copy_sql).await?;
    pin_mut!(sink);
    let mut start = 0;
    while start < payload.len() {
        let end = (start + COPY_CHUNK).min(payload.len());
        sink.as_mut().feed(payload.slice(start..end)).await?;
        start = end;
    }
    sink.as_mut().finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_type_mapping() {
        assert_eq!(from_format_type("numeric(12,2)"), DataType::Decimal { precision: Some(12), scale: Some(2) });
        assert_eq!(from_format_type("character varying(80)"), DataType::Text { max_chars: Some(80) });
        assert_eq!(from_format_type("timestamp(3) with time zone"), DataType::TimestampTz);
        assert_eq!(from_format_type("timestamp without time zone"), DataType::Timestamp);
        assert_eq!(from_format_type("integer[]"), DataType::text());
        assert_eq!(from_format_type("interval"), DataType::text());
        for t in
            [DataType::Bool, DataType::Int32, DataType::Json, DataType::Decimal { precision: Some(20), scale: Some(0) }]
        {
            let declared = declare(&t);
            let formatted = match declared.as_str() {
                "jsonb" => "jsonb".to_string(),
                "numeric(20,0)" => "numeric(20,0)".to_string(),
                other => other.to_string(),
            };
            assert_eq!(from_format_type(&formatted), t);
        }
    }
}
