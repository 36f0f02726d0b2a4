//! The state store's tables, created (or completed) when a store is opened.
//!
//! The DDL is written once; the few words the two engines spell apart
//! (`{int}`, `{real}`, `{id}`) are filled in per backend.

use super::db::{args, Db};
use super::postgres::PgSession;
use crate::error::{Result, RunError};
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

pub(super) const SCHEMA_VERSION: i64 = 1;

const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS phases (
        phase {int} PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL,
        started_at TEXT, completed_at TEXT, error TEXT);
    CREATE TABLE IF NOT EXISTS tables (
        target TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL,
        created_by_ferry {int} NOT NULL DEFAULT 0,
        rows_total {int}, rows_total_exact {int} NOT NULL DEFAULT 0,
        rows_copied {int} NOT NULL DEFAULT 0, batches {int} NOT NULL DEFAULT 0,
        batches_redone {int} NOT NULL DEFAULT 0, last_key TEXT, last_key_display TEXT,
        pending_batch {int} NOT NULL DEFAULT 0, checkpoint_at TEXT,
        backfill_done {int} NOT NULL DEFAULT 0, constraints_done {int} NOT NULL DEFAULT 0,
        position {int} NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS verifications (
        id {id}, target TEXT NOT NULL, at TEXT NOT NULL, passed {int} NOT NULL,
        rows_source {int} NOT NULL, rows_target {int} NOT NULL, checksum_match {int} NOT NULL,
        sample_size {int} NOT NULL, sample_mismatches {int} NOT NULL, differences {int} NOT NULL,
        report TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS verify_checkpoints (
        target TEXT PRIMARY KEY, started_at TEXT NOT NULL, checkpoint TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS quarantine (
        id {id}, target TEXT NOT NULL, key TEXT NOT NULL, column_name TEXT NOT NULL,
        value TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS changed_keys (
        target TEXT NOT NULL, direction TEXT NOT NULL, key TEXT NOT NULL, seq {int} NOT NULL,
        PRIMARY KEY (target, direction, key));
    CREATE TABLE IF NOT EXISTS audit (
        seq {int} PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL,
        line TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS samples (
        at TEXT NOT NULL, target TEXT NOT NULL, rows_copied {int} NOT NULL,
        replayed_changes {int} NOT NULL, pending_changes {int}, oldest_pending_seconds {real});
    CREATE INDEX IF NOT EXISTS samples_by_target ON samples (target, at);
    CREATE TABLE IF NOT EXISTS shadow_reports (
        at TEXT NOT NULL, origin TEXT NOT NULL, compared {int} NOT NULL, mismatched {int} NOT NULL,
        rechecked {int} NOT NULL DEFAULT 0, requests {int}, errors {int});
    CREATE TABLE IF NOT EXISTS operations (
        target TEXT NOT NULL, position {int} NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
        stage TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (target, position));
    CREATE TABLE IF NOT EXISTS chunks (
        target TEXT NOT NULL, chunk {int} NOT NULL, after TEXT, through TEXT,
        rows_copied {int} NOT NULL DEFAULT 0, batches {int} NOT NULL DEFAULT 0,
        last_key TEXT, pending_batch {int} NOT NULL DEFAULT 0, done {int} NOT NULL DEFAULT 0,
        PRIMARY KEY (target, chunk));
    CREATE TABLE IF NOT EXISTS shadow_mismatches (
        id {id}, at TEXT NOT NULL, origin TEXT NOT NULL, subject TEXT NOT NULL,
        key TEXT NOT NULL, columns TEXT NOT NULL, detail TEXT);
    CREATE TABLE IF NOT EXISTS workers (
        id TEXT PRIMARY KEY, host TEXT NOT NULL, pid {int} NOT NULL, command TEXT NOT NULL,
        started_at TEXT NOT NULL, last_seen TEXT NOT NULL, exited_at TEXT,
        target TEXT, chunk {int});";

/// Columns added after the first release of the schema: (table, column, declaration).
const ADDED_COLUMNS: [(&str, &str, &str); 14] = [
    ("tables", "capture_installed", "{int} NOT NULL DEFAULT 0"),
    ("tables", "replayed_changes", "{int} NOT NULL DEFAULT 0"),
    ("tables", "last_replay_at", "TEXT"),
    ("tables", "pending_changes", "{int}"),
    ("tables", "oldest_pending_seconds", "{real}"),
    ("tables", "lag_measured_at", "TEXT"),
    ("tables", "stage", "TEXT"),
    ("tables", "reverse_replayed", "{int} NOT NULL DEFAULT 0"),
    ("tables", "reverse_last_at", "TEXT"),
    ("tables", "reverse_pending", "{int}"),
    ("tables", "reverse_oldest_seconds", "{real}"),
    ("tables", "reverse_lag_at", "TEXT"),
    // Chunk leases: which process copies the chunk, and until when its claim holds.
    ("chunks", "owner", "TEXT"),
    ("chunks", "lease_until", "TEXT"),
];

/// Tables added after the first release; a store without one is completed.
const ADDED_TABLES: [&str; 6] = ["samples", "shadow_reports", "shadow_mismatches", "operations", "chunks", "workers"];

fn spelled(sql: &str, backend: super::Backend) -> String {
    let (int, real, id) = match backend {
        super::Backend::Sqlite => ("INTEGER", "REAL", "INTEGER PRIMARY KEY"),
        super::Backend::Postgres => {
            ("BIGINT", "DOUBLE PRECISION", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        }
    };
    sql.replace("{int}", int).replace("{real}", real).replace("{id}", id)
}

/// Opens (creating or completing) the SQLite store at `path`.
pub(super) fn open_file(path: &Path) -> Result<Db> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| RunError::state(format!("cannot create the state directory {}: {e}", dir.display())))?;
    }
    let conn = Connection::open(path)
        .map_err(|e| RunError::state(format!("cannot open the state store {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Switching to WAL needs the file to itself for a moment; another
    // ferry (a status beside a run) may be reading it.
    let mut attempts = 0;
    loop {
        match conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;") {
            Ok(()) => break,
            Err(_) if attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                return Err(RunError::state(format!("{} is not a usable Ferry state store: {e}", path.display())))
            }
        }
    }
    // A store already at this version is not written: `ferry status`
    // beside a runner only reads.
    let current: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))
        .optional()
        .unwrap_or(None);
    if current == Some(SCHEMA_VERSION.to_string()) && sqlite_is_complete(&conn)? {
        return Ok(Db::sqlite(conn));
    }
    // The schema is created (or completed) in one transaction, so a reader never sees half of it.
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {}", spelled(TABLES, super::Backend::Sqlite)))
        .map_err(|e| RunError::state(format!("{} is not a usable Ferry state store: {e}", path.display())))?;
    let db = Db::sqlite(conn);
    let completed = complete(&db, &path.display().to_string()).and_then(|()| complete_sqlite_columns(&db));
    if completed.is_err() {
        let _ = db.batch("ROLLBACK");
    }
    completed?;
    db.batch("COMMIT")?;
    Ok(db)
}

/// Opens (creating or completing) the store in `schema` of the PostgreSQL database at `url`.
pub(super) fn open_postgres(url: &str, schema: &str) -> Result<Db> {
    let display = ferry_core::spec::redact_for_message(url);
    let db = Db::postgres(PgSession::connect(url, &display)?);
    let quoted = ferry_core::PlanDialect::ident(&ferry_postgres::PLAN_DIALECT, schema);
    let current: Option<String> = db
        .query_opt("SELECT 1 FROM pg_tables WHERE schemaname = ?1 AND tablename = 'workers'", args![schema])?
        .map(|_| String::new());
    db.batch(&format!("SET search_path TO {quoted}"))?;
    if current.is_some() {
        let version: Option<String> = db
            .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", args![])?
            .map(|r| r.get(0))
            .transpose()?;
        if version == Some(SCHEMA_VERSION.to_string()) {
            return Ok(db);
        }
    }
    let place = format!("schema {schema} at {display}");
    let created = db.transaction(|| {
        // Two processes opening a new store at once: one creates it, the other waits and finds it.
        db.execute("SELECT pg_advisory_xact_lock(hashtext(?1))", args![format!("ferry-state:{schema}")])?;
        db.batch(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))?;
        db.batch(&spelled(TABLES, super::Backend::Postgres))?;
        for (table, column, decl) in ADDED_COLUMNS {
            db.batch(&spelled(
                &format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {decl}"),
                super::Backend::Postgres,
            ))?;
        }
        complete(&db, &place)
    });
    created.map_err(|e| {
        e.with_hint(format!(
            "the state store's user needs CREATE on the database (for schema {schema}) or an existing schema it owns"
        ))
    })?;
    Ok(db)
}

/// Inside the schema transaction: the version check, and progress kept by an older store read into stages.
fn complete(db: &Db, place: &str) -> Result<()> {
    let version: Option<String> =
        db.query_opt("SELECT value FROM meta WHERE key = 'schema_version'", args![])?.map(|r| r.get(0)).transpose()?;
    match version {
        None => {
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                args![SCHEMA_VERSION.to_string()],
            )?;
        }
        Some(v) if v == SCHEMA_VERSION.to_string() => {}
        Some(v) => {
            return Err(RunError::state(format!(
                "the state store {place} has schema version {v}; this ferry understands {SCHEMA_VERSION}"
            ))
            .with_hint("use the ferry version that started this migration"))
        }
    }
    Ok(())
}

/// A SQLite store of an earlier version gains the columns added since, and
/// its progress kept as flags is read once into each table's stage.
fn complete_sqlite_columns(db: &Db) -> Result<()> {
    for (table, column, decl) in ADDED_COLUMNS {
        let exists = db
            .query_opt(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"), args![column])?
            .is_some();
        if !exists {
            db.batch(&spelled(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"), super::Backend::Sqlite))?;
        }
    }
    db.batch(
        "UPDATE tables SET stage = CASE
             WHEN constraints_done = 1 THEN 'constrained'
             WHEN backfill_done = 1 THEN 'copied'
             WHEN capture_installed = 1 AND rows_copied > 0 THEN 'copying'
             WHEN capture_installed = 1 THEN 'capturing'
             WHEN created_by_ferry = 1 THEN 'created'
             ELSE 'registered' END
         WHERE stage IS NULL",
    )
}

/// Whether a SQLite store is complete: every table and column added since
/// the first release is there, and no progress waits to be read from old flags.
fn sqlite_is_complete(conn: &Connection) -> Result<bool> {
    for (table, column, _) in ADDED_COLUMNS {
        let present =
            conn.prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))?.exists([column])?;
        if !present {
            return Ok(false);
        }
    }
    let tables: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({})",
            ADDED_TABLES.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
        ),
        [],
        |r| r.get(0),
    )?;
    if tables as usize != ADDED_TABLES.len() {
        return Ok(false);
    }
    // Progress kept as flags only is read into a stage by the schema transaction.
    let unread: bool = conn
        .prepare(
            "SELECT 1 FROM tables WHERE stage IS NULL
               AND (constraints_done = 1 OR backfill_done = 1 OR capture_installed = 1 OR created_by_ferry = 1)",
        )?
        .exists([])?;
    Ok(!unread)
}
