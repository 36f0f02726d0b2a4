//! The state store: phases, per-table checkpoints, verification results,
//! quarantined rows and the audit log, in one SQLite file.
//!
//! Every write is its own committed transaction, made before the runner
//! moves on, so a `kill -9` at any instant loses nothing that was recorded.
//! The audit log is append-only and hash-chained (each entry's SHA-256
//! covers the previous entry's hash), and mirrored as human lines in
//! `audit.log` next to the database.

use crate::error::{Result, RunError};
use chrono::{DateTime, SecondsFormat, Utc};
use ferry_core::lifecycle::{OperationStage, Stage, State, TableStage};
use ferry_core::plan::in_place::Operation;
use ferry_core::status::{OperationStatus, PhaseState, PhaseStatus, TableStatus, TableVerification};
use ferry_core::{AuditEvent, Phase, Value};
use ferry_engine::KeyRange;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which way a replay wrote: source to target before the switch, target
/// to source (reverse sync) after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
        }
    }
}

const SCHEMA_VERSION: i64 = 1;

pub struct StateStore {
    conn: Connection,
    path: PathBuf,
    audit_log: PathBuf,
}

/// One entry of the audit log, as `GET /api/v1/events` serves it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub event: String,
    /// The event's fields, as the audit table keeps them.
    pub data: serde_json::Value,
    /// The line of audit.log.
    pub line: String,
}

/// The checkpoint of one table's backfill.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableProgress {
    pub target: String,
    pub source: String,
    pub fingerprint: String,
    pub created_by_ferry: bool,
    pub rows_total: Option<u64>,
    pub rows_total_exact: bool,
    pub rows_copied: u64,
    pub batches: u64,
    pub batches_redone: u64,
    pub last_key: Option<Vec<Value>>,
    pub last_key_display: Option<String>,
    /// A batch was started and not recorded as done: it may have been written.
    pub pending_batch: bool,
    pub checkpoint_at: Option<String>,
    pub stage: TableStage,
}

/// Where one part of a table's key range stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkProgress {
    pub chunk: i64,
    pub range: KeyRange,
    pub rows_copied: u64,
    pub batches: u64,
    pub last_key: Option<Vec<Value>>,
    /// A batch was started and not recorded as done: it may have been written.
    pub pending_batch: bool,
    pub done: bool,
}

/// A batch the target committed, as the state store records it.
pub struct WrittenBatch<'a> {
    pub last_key: &'a [Value],
    pub display: &'a str,
    pub rows: u64,
    pub redone: bool,
}

/// A key as the checkpoints keep it: JSON of its values.
pub(crate) fn json_key(key: &[Value]) -> Result<String> {
    serde_json::to_string(key).map_err(|e| RunError::state(format!("checkpoint key: {e}")))
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl StateStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<StateStore> {
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
        let audit_log = path.with_file_name("audit.log");
        // A store already at this version is not written: `ferry status`
        // beside a runner only reads.
        let current: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))
            .optional()
            .unwrap_or(None);
        if current == Some(SCHEMA_VERSION.to_string()) && Self::has_every_column(&conn)? {
            return Ok(StateStore { conn, path: path.to_path_buf(), audit_log });
        }
        // The schema is created (or completed) in one transaction, so a reader never sees half of it.
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS phases (
                 phase INTEGER PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL,
                 started_at TEXT, completed_at TEXT, error TEXT);
             CREATE TABLE IF NOT EXISTS tables (
                 target TEXT PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL,
                 created_by_ferry INTEGER NOT NULL DEFAULT 0,
                 rows_total INTEGER, rows_total_exact INTEGER NOT NULL DEFAULT 0,
                 rows_copied INTEGER NOT NULL DEFAULT 0, batches INTEGER NOT NULL DEFAULT 0,
                 batches_redone INTEGER NOT NULL DEFAULT 0, last_key TEXT, last_key_display TEXT,
                 pending_batch INTEGER NOT NULL DEFAULT 0, checkpoint_at TEXT,
                 backfill_done INTEGER NOT NULL DEFAULT 0, constraints_done INTEGER NOT NULL DEFAULT 0,
                 position INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS verifications (
                 id INTEGER PRIMARY KEY, target TEXT NOT NULL, at TEXT NOT NULL, passed INTEGER NOT NULL,
                 rows_source INTEGER NOT NULL, rows_target INTEGER NOT NULL, checksum_match INTEGER NOT NULL,
                 sample_size INTEGER NOT NULL, sample_mismatches INTEGER NOT NULL, differences INTEGER NOT NULL,
                 report TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS verify_checkpoints (
                 target TEXT PRIMARY KEY, started_at TEXT NOT NULL, checkpoint TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS quarantine (
                 id INTEGER PRIMARY KEY, target TEXT NOT NULL, key TEXT NOT NULL, column_name TEXT NOT NULL,
                 value TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS changed_keys (
                 target TEXT NOT NULL, direction TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
                 PRIMARY KEY (target, direction, key));
             CREATE TABLE IF NOT EXISTS audit (
                 seq INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL,
                 line TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS samples (
                 at TEXT NOT NULL, target TEXT NOT NULL, rows_copied INTEGER NOT NULL,
                 replayed_changes INTEGER NOT NULL, pending_changes INTEGER, oldest_pending_seconds REAL);
             CREATE INDEX IF NOT EXISTS samples_by_target ON samples (target, at);
             CREATE TABLE IF NOT EXISTS shadow_reports (
                 at TEXT NOT NULL, origin TEXT NOT NULL, compared INTEGER NOT NULL, mismatched INTEGER NOT NULL,
                 rechecked INTEGER NOT NULL DEFAULT 0, requests INTEGER, errors INTEGER);
             CREATE TABLE IF NOT EXISTS operations (
                 target TEXT NOT NULL, position INTEGER NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
                 stage TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (target, position));
             CREATE TABLE IF NOT EXISTS chunks (
                 target TEXT NOT NULL, chunk INTEGER NOT NULL, after TEXT, through TEXT,
                 rows_copied INTEGER NOT NULL DEFAULT 0, batches INTEGER NOT NULL DEFAULT 0,
                 last_key TEXT, pending_batch INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (target, chunk));
             CREATE TABLE IF NOT EXISTS shadow_mismatches (
                 id INTEGER PRIMARY KEY, at TEXT NOT NULL, origin TEXT NOT NULL, subject TEXT NOT NULL,
                 key TEXT NOT NULL, columns TEXT NOT NULL, detail TEXT);",
        )
        .map_err(|e| RunError::state(format!("{} is not a usable Ferry state store: {e}", path.display())))?;
        let schema = Self::complete_schema(&conn, path);
        if schema.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        schema?;
        conn.execute_batch("COMMIT")?;
        Ok(StateStore { conn, path: path.to_path_buf(), audit_log })
    }

    /// Inside the schema transaction: the version check and columns added since version 1.
    fn complete_schema(conn: &Connection, path: &Path) -> Result<()> {
        let version: Option<String> =
            conn.query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0)).optional()?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(v) => {
                return Err(RunError::state(format!(
                    "the state store {} has schema version {v}; this ferry understands {SCHEMA_VERSION}",
                    path.display()
                ))
                .with_hint("use the ferry version that started this migration"))
            }
        }
        // Columns added after the first release of the schema.
        for (column, decl) in ADDED_COLUMNS {
            let exists: bool =
                conn.prepare("SELECT 1 FROM pragma_table_info('tables') WHERE name = ?1")?.exists([column])?;
            if !exists {
                conn.execute_batch(&format!("ALTER TABLE tables ADD COLUMN {column} {decl}"))?;
            }
        }
        // Stores of earlier versions kept a table's progress as flags: read them once into its stage.
        conn.execute_batch(
            "UPDATE tables SET stage = CASE
                 WHEN constraints_done = 1 THEN 'constrained'
                 WHEN backfill_done = 1 THEN 'copied'
                 WHEN capture_installed = 1 AND rows_copied > 0 THEN 'copying'
                 WHEN capture_installed = 1 THEN 'capturing'
                 WHEN created_by_ferry = 1 THEN 'created'
                 ELSE 'registered' END
             WHERE stage IS NULL",
        )?;
        Ok(())
    }

    /// Whether the schema is complete: `tables` has every column added since
    /// the first release, and no progress waits to be read from old flags.
    fn has_every_column(conn: &Connection) -> Result<bool> {
        let present: i64 = conn.query_row(
            &format!(
                "SELECT count(*) FROM pragma_table_info('tables') WHERE name IN ({})",
                ADDED_COLUMNS.iter().map(|(c, _)| format!("'{c}'")).collect::<Vec<_>>().join(", ")
            ),
            [],
            |r| r.get(0),
        )?;
        if present as usize != ADDED_COLUMNS.len() {
            return Ok(false);
        }
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('samples', 'shadow_reports', 'shadow_mismatches', 'operations', 'chunks')",
            [],
            |r| r.get(0),
        )?;
        if tables != 5 {
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
}

/// Columns of `tables` added after the first release of the schema.
const ADDED_COLUMNS: [(&str, &str); 12] = [
    ("capture_installed", "INTEGER NOT NULL DEFAULT 0"),
    ("replayed_changes", "INTEGER NOT NULL DEFAULT 0"),
    ("last_replay_at", "TEXT"),
    ("pending_changes", "INTEGER"),
    ("oldest_pending_seconds", "REAL"),
    ("lag_measured_at", "TEXT"),
    ("stage", "TEXT"),
    ("reverse_replayed", "INTEGER NOT NULL DEFAULT 0"),
    ("reverse_last_at", "TEXT"),
    ("reverse_pending", "INTEGER"),
    ("reverse_oldest_seconds", "REAL"),
    ("reverse_lag_at", "TEXT"),
];

impl StateStore {
    /// Where the migration stands. A store of an earlier version, which kept
    /// only its phases, is read from them.
    pub fn lifecycle(&self) -> Result<State> {
        if let Some(json) = self.meta("lifecycle")? {
            return serde_json::from_str(&json).map_err(|e| {
                RunError::state(format!("the state store {} holds an unknown state `{json}`: {e}", self.path.display()))
                    .with_hint("use the ferry version that started this migration")
            });
        }
        let completed = |p: Phase| -> Result<bool> { Ok(self.phase_state(p)? == PhaseState::Completed) };
        let stage = if completed(Phase::Verify)? {
            Stage::Verified
        } else if completed(Phase::Backfill)? {
            Stage::Syncing
        } else if completed(Phase::Expand)? {
            Stage::Backfilling
        } else if self.phase_state(Phase::Expand)? != PhaseState::NotStarted {
            Stage::Expanding
        } else {
            Stage::Planned
        };
        Ok(State::at(stage))
    }

    /// Written only by the state machine (`machine.rs`).
    pub(crate) fn set_lifecycle(&self, state: State) -> Result<()> {
        let json = serde_json::to_string(&state).map_err(|e| RunError::state(format!("state: {e}")))?;
        self.set_meta("lifecycle", &json)
    }

    /// How far a table has come (see [`TableStage`]); `Registered` for one the store does not know.
    pub fn table_stage(&self, target: &str) -> Result<TableStage> {
        let stage: Option<Option<String>> =
            self.conn.query_row("SELECT stage FROM tables WHERE target = ?1", [target], |r| r.get(0)).optional()?;
        Ok(stage.flatten().and_then(|s| TableStage::from_name(&s)).unwrap_or_default())
    }

    pub fn set_table_stage(&self, target: &str, stage: TableStage) -> Result<()> {
        self.conn.execute("UPDATE tables SET stage = ?2 WHERE target = ?1", params![target, stage.name()])?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn audit_log_path(&self) -> &Path {
        &self.audit_log
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// The scope of this migration's capture objects (change logs, triggers,
    /// slot, binlog position): chosen from the spec's file stem when the store
    /// is new and kept in it, so that two migrations capturing one table never
    /// share them.
    pub fn capture_scope(&self, spec_stem: &str) -> Result<ferry_engine::CaptureScope> {
        use ferry_engine::CaptureScope;
        if let Some(stored) = self.meta("capture_scope")? {
            return CaptureScope::parse(&stored).map_err(|e| {
                RunError::state(format!("the state store {} holds a damaged capture scope: {e}", self.path.display()))
            });
        }
        // A store that already names its databases was started before scopes
        // existed: the capture it installed carries none.
        let scope =
            if self.meta("source")?.is_some() { CaptureScope::legacy() } else { CaptureScope::generate(spec_stem) };
        self.set_meta("capture_scope", scope.as_str())?;
        Ok(scope)
    }

    pub fn clear_meta(&self, keys: &[&str]) -> Result<()> {
        for key in keys {
            self.conn.execute("DELETE FROM meta WHERE key = ?1", [key])?;
        }
        Ok(())
    }

    /// Appends an event to the audit log (table and file) and returns its line.
    pub fn audit(&self, event: &AuditEvent) -> Result<String> {
        let at = now();
        let line = event.line(at);
        let data = serde_json::to_string(event).map_err(|e| RunError::state(format!("audit event: {e}")))?;
        let prev: String = self
            .conn
            .query_row("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
            .optional()?
            .unwrap_or_else(|| "0".repeat(64));
        let stamp = timestamp(at);
        let mut hasher = Sha256::new();
        for part in [prev.as_str(), stamp.as_str(), event.name(), data.as_str()] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        let hash: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        self.conn.execute(
            "INSERT INTO audit (at, event, data, line, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![stamp, event.name(), data, line, prev, hash],
        )?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.audit_log)
            .map_err(|e| RunError::state(format!("cannot write {}: {e}", self.audit_log.display())))?;
        writeln!(file, "{line}")
            .map_err(|e| RunError::state(format!("cannot write {}: {e}", self.audit_log.display())))?;
        Ok(line)
    }

    /// Every audit entry in order: (line, event name, JSON data).
    pub fn audit_entries(&self) -> Result<Vec<(String, String, String)>> {
        let mut stmt = self.conn.prepare("SELECT line, event, data FROM audit ORDER BY seq")?;
        let rows =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    /// Audit entries after `after` (a sequence number), oldest first, at most `limit`.
    pub fn audit_since(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut stmt =
            self.conn.prepare("SELECT seq, at, event, data, line FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                let data: String = r.get(3)?;
                Ok(AuditEntry {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    event: r.get(2)?,
                    data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
                    line: r.get(4)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    /// Every audit event of the given names, oldest first (for counters such as `/metrics`).
    pub fn audit_events(&self, names: &[&str]) -> Result<Vec<AuditEvent>> {
        let mut stmt = self.conn.prepare("SELECT event, data FROM audit ORDER BY seq")?;
        let mut out = Vec::new();
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (name, data) = row?;
            if names.contains(&name.as_str()) {
                // An event this version cannot read (a newer ferry's) is left out, not an error.
                if let Ok(event) = serde_json::from_str(&data) {
                    out.push(event);
                }
            }
        }
        Ok(out)
    }

    /// The newest `limit` audit entries, oldest first.
    pub fn audit_tail(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let last: i64 = self.conn.query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| r.get(0))?;
        self.audit_since((last - limit as i64).max(0), limit)
    }

    /// Checks the hash chain; returns the number of entries, or the first broken one.
    pub fn verify_audit_chain(&self) -> Result<usize> {
        let mut stmt = self.conn.prepare("SELECT seq, at, event, data, prev_hash, hash FROM audit ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut prev = "0".repeat(64);
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let (seq, at, event, data, prev_hash, hash): (i64, String, String, String, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
            let mut hasher = Sha256::new();
            for part in [prev.as_str(), at.as_str(), event.as_str(), data.as_str()] {
                hasher.update(part.as_bytes());
                hasher.update([0]);
            }
            let expect: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
            if prev_hash != prev || hash != expect {
                return Err(RunError::state(format!("audit log entry {seq} does not match its hash chain")));
            }
            prev = hash;
            n += 1;
        }
        Ok(n)
    }

    pub fn phase_state(&self, phase: Phase) -> Result<PhaseState> {
        let state: Option<String> = self
            .conn
            .query_row("SELECT state FROM phases WHERE phase = ?1", [phase.number()], |r| r.get(0))
            .optional()?;
        Ok(state.as_deref().map_or(PhaseState::NotStarted, PhaseState::from_name))
    }

    pub fn start_phase(&self, phase: Phase) -> Result<()> {
        self.conn.execute(
            "INSERT INTO phases (phase, name, state, started_at) VALUES (?1, ?2, 'running', ?3)
             ON CONFLICT (phase) DO UPDATE SET state = 'running', error = NULL,
                 started_at = COALESCE(phases.started_at, excluded.started_at)",
            params![phase.number(), phase.name(), timestamp(now())],
        )?;
        Ok(())
    }

    pub fn complete_phase(&self, phase: Phase) -> Result<()> {
        self.conn.execute(
            "UPDATE phases SET state = 'completed', completed_at = ?2, error = NULL WHERE phase = ?1",
            params![phase.number(), timestamp(now())],
        )?;
        Ok(())
    }

    /// Stopped at a batch boundary as asked: not failed, the same command goes on.
    pub fn stop_phase(&self, phase: Phase) -> Result<()> {
        self.conn
            .execute("UPDATE phases SET state = 'stopped', error = NULL WHERE phase = ?1", params![phase.number()])?;
        Ok(())
    }

    pub fn fail_phase(&self, phase: Phase, error: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE phases SET state = 'failed', error = ?2 WHERE phase = ?1",
            params![phase.number(), error],
        )?;
        Ok(())
    }

    /// When the phase first started, for durations across resumed runs.
    pub fn phase_started_at(&self, phase: Phase) -> Result<Option<DateTime<Utc>>> {
        let at: Option<Option<String>> = self
            .conn
            .query_row("SELECT started_at FROM phases WHERE phase = ?1", [phase.number()], |r| r.get(0))
            .optional()?;
        Ok(at.flatten().and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|d| d.with_timezone(&Utc)))
    }

    pub fn phases(&self) -> Result<Vec<PhaseStatus>> {
        let mut stmt = self
            .conn
            .prepare("SELECT phase, name, state, started_at, completed_at, error FROM phases ORDER BY phase")?;
        let rows = stmt
            .query_map([], |r| {
                let state: String = r.get(2)?;
                Ok(PhaseStatus {
                    number: r.get(0)?,
                    name: r.get(1)?,
                    state: PhaseState::from_name(&state),
                    started_at: r.get(3)?,
                    completed_at: r.get(4)?,
                    error: r.get(5)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    /// Registers a table (idempotent); returns its progress.
    pub fn register_table(
        &self,
        target: &str,
        source: &str,
        fingerprint: &str,
        position: usize,
    ) -> Result<TableProgress> {
        self.conn.execute(
            "INSERT INTO tables (target, source, fingerprint, position) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (target) DO NOTHING",
            params![target, source, fingerprint, position as i64],
        )?;
        self.table(target)?.ok_or_else(|| RunError::state(format!("table {target} vanished from the state store")))
    }

    pub fn table(&self, target: &str) -> Result<Option<TableProgress>> {
        Ok(self
            .conn
            .query_row(
                "SELECT target, source, fingerprint, created_by_ferry, rows_total, rows_total_exact, rows_copied, batches,
                        batches_redone, last_key, last_key_display, pending_batch, checkpoint_at, stage
                 FROM tables WHERE target = ?1",
                [target],
                row_to_progress,
            )
            .optional()?)
    }

    pub fn tables(&self) -> Result<Vec<TableProgress>> {
        let mut stmt = self.conn.prepare(
            "SELECT target, source, fingerprint, created_by_ferry, rows_total, rows_total_exact, rows_copied, batches,
                    batches_redone, last_key, last_key_display, pending_batch, checkpoint_at, stage
             FROM tables ORDER BY position, target",
        )?;
        let rows = stmt.query_map([], row_to_progress)?.collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    pub fn set_fingerprint(&self, target: &str, fingerprint: &str) -> Result<()> {
        self.conn.execute("UPDATE tables SET fingerprint = ?2 WHERE target = ?1", [target, fingerprint])?;
        Ok(())
    }

    /// Marks phases to be run again (after the spec gained or changed a table).
    pub fn reset_phases(&self, phases: &[Phase]) -> Result<()> {
        for phase in phases {
            self.conn.execute(
                "UPDATE phases SET state = 'not_started', started_at = NULL, completed_at = NULL WHERE phase = ?1",
                [phase.number()],
            )?;
        }
        Ok(())
    }

    pub fn set_created_by_ferry(&self, target: &str) -> Result<()> {
        self.conn.execute("UPDATE tables SET created_by_ferry = 1 WHERE target = ?1", [target])?;
        Ok(())
    }

    pub fn set_rows_total(&self, target: &str, total: Option<u64>, exact: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE tables SET rows_total = ?2, rows_total_exact = ?3 WHERE target = ?1",
            params![target, total.map(|t| t as i64), exact],
        )?;
        Ok(())
    }

    /// The parts a table's key range is copied in, as planned when its copy
    /// began (none yet: not planned).
    pub fn chunks(&self, target: &str) -> Result<Vec<ChunkProgress>> {
        let mut stmt = self.conn.prepare(
            "SELECT chunk, after, through, rows_copied, batches, last_key, pending_batch, done
             FROM chunks WHERE target = ?1 ORDER BY chunk",
        )?;
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str::<Vec<Value>>(&t).ok());
        let rows = stmt
            .query_map([target], |r| {
                Ok(ChunkProgress {
                    chunk: r.get(0)?,
                    range: KeyRange { after: json(r.get(1)?), through: json(r.get(2)?) },
                    rows_copied: r.get::<_, i64>(3)? as u64,
                    batches: r.get::<_, i64>(4)? as u64,
                    last_key: json(r.get(5)?),
                    pending_batch: r.get(6)?,
                    done: r.get(7)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    /// Records the parts of a table's key range, before any is copied; a
    /// resumed copy keeps them. The first starts where the table's copy
    /// stands (a store of an earlier version copied in one part).
    pub fn plan_chunks(&self, target: &str, ranges: &[KeyRange]) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        let table = self.table(target)?.unwrap_or_default();
        for (i, range) in ranges.iter().enumerate() {
            let (rows, batches, last) = if i == 0 {
                (table.rows_copied, table.batches, table.last_key.as_deref().map(json_key).transpose()?)
            } else {
                (0, 0, None)
            };
            tx.execute(
                "INSERT INTO chunks (target, chunk, after, through, rows_copied, batches, last_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    target,
                    i as i64,
                    range.after.as_deref().map(json_key).transpose()?,
                    range.through.as_deref().map(json_key).transpose()?,
                    rows as i64,
                    batches as i64,
                    last
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records the intent to write a chunk's next batch, before it is written.
    pub fn begin_batch(&self, target: &str, chunk: i64) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("UPDATE tables SET pending_batch = 1 WHERE target = ?1", [target])?;
        tx.execute("UPDATE chunks SET pending_batch = 1 WHERE target = ?1 AND chunk = ?2", params![target, chunk])?;
        tx.commit()?;
        Ok(())
    }

    /// Records a written batch: the checkpoint its chunk resumes after, and
    /// the table's totals.
    pub fn complete_batch(&self, target: &str, chunk: i64, written: &WrittenBatch<'_>) -> Result<()> {
        let key = json_key(written.last_key)?;
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE chunks SET pending_batch = 0, rows_copied = rows_copied + ?3, batches = batches + 1, last_key = ?4
             WHERE target = ?1 AND chunk = ?2",
            params![target, chunk, written.rows as i64, key],
        )?;
        tx.execute(
            "UPDATE tables SET rows_copied = rows_copied + ?2, batches = batches + 1,
                 batches_redone = batches_redone + ?3, last_key = ?4, last_key_display = ?5, checkpoint_at = ?6,
                 pending_batch = EXISTS (SELECT 1 FROM chunks WHERE target = ?1 AND pending_batch = 1)
             WHERE target = ?1",
            params![target, written.rows as i64, written.redone as i64, key, written.display, timestamp(now())],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every row of a chunk is copied.
    pub fn finish_chunk(&self, target: &str, chunk: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE chunks SET done = 1, pending_batch = 0 WHERE target = ?1 AND chunk = ?2",
            params![target, chunk],
        )?;
        Ok(())
    }

    /// Makes a chunk's checkpoint the target's: the rows, batches and last
    /// key its last commit recorded (none: nothing is committed there). The
    /// table's totals are the sums of its chunks'. The pending batch stays
    /// pending only when the target has not committed it.
    pub fn follow_target(&self, target: &str, chunk: i64, committed: &ChunkProgress) -> Result<()> {
        let key = committed.last_key.as_deref().map(json_key).transpose()?;
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE chunks SET rows_copied = ?3, batches = ?4, last_key = ?5, pending_batch = ?6
             WHERE target = ?1 AND chunk = ?2",
            params![
                target,
                chunk,
                committed.rows_copied as i64,
                committed.batches as i64,
                key,
                committed.pending_batch
            ],
        )?;
        tx.execute(
            "UPDATE tables SET
                 rows_copied = (SELECT coalesce(sum(rows_copied), 0) FROM chunks WHERE target = ?1),
                 batches = (SELECT coalesce(sum(batches), 0) FROM chunks WHERE target = ?1),
                 pending_batch = EXISTS (SELECT 1 FROM chunks WHERE target = ?1 AND pending_batch = 1),
                 checkpoint_at = ?2
             WHERE target = ?1",
            params![target, timestamp(now())],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records replayed changes and the lag measured after them.
    pub fn record_replay(&self, target: &str, replayed: u64, lag: ferry_engine::CaptureLag) -> Result<()> {
        let now = timestamp(now());
        self.conn.execute(
            "UPDATE tables SET replayed_changes = replayed_changes + ?2,
                 last_replay_at = CASE WHEN ?2 > 0 THEN ?3 ELSE last_replay_at END,
                 pending_changes = ?4, oldest_pending_seconds = ?5, lag_measured_at = ?3
             WHERE target = ?1",
            params![target, replayed as i64, now, lag.pending as i64, lag.oldest_seconds],
        )?;
        Ok(())
    }

    /// Records changes replayed from the target back into the source (after the switch).
    pub fn record_reverse_replay(&self, target: &str, replayed: u64, lag: ferry_engine::CaptureLag) -> Result<()> {
        let now = timestamp(now());
        self.conn.execute(
            "UPDATE tables SET reverse_replayed = reverse_replayed + ?2,
                 reverse_last_at = CASE WHEN ?2 > 0 THEN ?3 ELSE reverse_last_at END,
                 reverse_pending = ?4, reverse_oldest_seconds = ?5, reverse_lag_at = ?3
             WHERE target = ?1",
            params![target, replayed as i64, now, lag.pending as i64, lag.oldest_seconds],
        )?;
        Ok(())
    }

    /// Reverse sync of `target`, once it has run.
    pub fn reverse_status(&self, target: &str) -> Result<Option<ferry_core::status::CaptureStatus>> {
        Ok(self
            .conn
            .query_row(
                "SELECT reverse_replayed, reverse_last_at, reverse_pending, reverse_oldest_seconds, reverse_lag_at
                 FROM tables WHERE target = ?1 AND reverse_lag_at IS NOT NULL",
                [target],
                |r| {
                    Ok(ferry_core::status::CaptureStatus {
                        replayed_changes: r.get::<_, i64>(0)? as u64,
                        last_replay_at: r.get(1)?,
                        pending_changes: r.get::<_, Option<i64>>(2)?.map(|p| p as u64),
                        oldest_pending_seconds: r.get(3)?,
                        lag_measured_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// An operator's pause (`ferry pause`), or the throttle's: reason and since when.
    pub fn set_pause(&self, who: &str, reason: Option<&str>) -> Result<()> {
        match reason {
            Some(r) => {
                self.set_meta(&format!("pause:{who}"), r)?;
                self.set_meta(&format!("pause_since:{who}"), &timestamp(now()))
            }
            None => {
                self.conn.execute(
                    "DELETE FROM meta WHERE key IN (?1, ?2)",
                    [format!("pause:{who}"), format!("pause_since:{who}")],
                )?;
                Ok(())
            }
        }
    }

    /// Records the load throttle's pace (None: full speed).
    pub fn set_pace(&self, pace: Option<&ferry_core::status::Pace>) -> Result<()> {
        match pace {
            Some(p) => {
                let json = serde_json::to_string(p).map_err(|e| RunError::state(e.to_string()))?;
                self.set_meta("throttle_pace", &json)
            }
            None => self.clear_meta(&["throttle_pace"]),
        }
    }

    /// The load throttle's pace, as last recorded.
    pub fn pace(&self) -> Result<Option<ferry_core::status::Pace>> {
        Ok(self.meta("throttle_pace")?.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Every active pause: (who, reason, since).
    pub fn pauses(&self) -> Result<Vec<(String, String, String)>> {
        let mut out = Vec::new();
        for who in ["operator", "throttle"] {
            if let Some(reason) = self.meta(&format!("pause:{who}"))? {
                out.push((who.to_string(), reason, self.meta(&format!("pause_since:{who}"))?.unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// Records the operations of `target`'s in-place change that the store
    /// does not know yet, as pending.
    pub fn register_operations(&self, target: &str, operations: &[Operation]) -> Result<()> {
        for (position, op) in operations.iter().enumerate() {
            self.conn.execute(
                "INSERT INTO operations (target, position, kind, subject, stage, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (target, position) DO NOTHING",
                params![
                    target,
                    position as i64,
                    op.kind.name(),
                    op.subject,
                    OperationStage::Pending.name(),
                    timestamp(now())
                ],
            )?;
        }
        Ok(())
    }

    /// How far the operation at `position` of `target`'s change has come (`Pending` when unknown).
    pub fn operation_stage(&self, target: &str, position: usize) -> Result<OperationStage> {
        let stage: Option<String> = self
            .conn
            .query_row(
                "SELECT stage FROM operations WHERE target = ?1 AND position = ?2",
                params![target, position as i64],
                |r| r.get(0),
            )
            .optional()?;
        Ok(stage.and_then(|s| OperationStage::from_name(&s)).unwrap_or_default())
    }

    /// Records the stage of the operation at `position`, before the work it names (see [`OperationStage`]).
    pub fn set_operation_stage(&self, target: &str, position: usize, stage: OperationStage) -> Result<()> {
        self.conn.execute(
            "UPDATE operations SET stage = ?3, at = ?4 WHERE target = ?1 AND position = ?2",
            params![target, position as i64, stage.name(), timestamp(now())],
        )?;
        Ok(())
    }

    /// Every operation of `target`'s change, in order, for `ferry status`.
    pub fn operations(&self, target: &str) -> Result<Vec<OperationStatus>> {
        let mut statement =
            self.conn.prepare("SELECT kind, subject, stage, at FROM operations WHERE target = ?1 ORDER BY position")?;
        let rows = statement.query_map([target], |r| {
            Ok(OperationStatus { kind: r.get(0)?, subject: r.get(1)?, stage: r.get(2)?, at: r.get(3)? })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Forgets a table's progress (after a rollback), keeping the audit log:
    /// its verifications, quarantined rows, operations and history described
    /// a copy or a change that is gone.
    pub fn reset_table(&self, target: &str) -> Result<()> {
        for table in [
            "tables",
            "changed_keys",
            "verifications",
            "verify_checkpoints",
            "quarantine",
            "samples",
            "operations",
            "chunks",
        ] {
            self.conn.execute(&format!("DELETE FROM {table} WHERE target = ?1"), [target])?;
        }
        Ok(())
    }

    /// Remembers the keys a replay step wrote (as the written side types
    /// them), under one new mark, for the next check of changed keys.
    pub fn record_changed_keys(&self, target: &str, direction: Direction, keys: &[Vec<Value>]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // IMMEDIATE: a deferred transaction that reads, then writes, fails at
        // once (no busy wait) when another process wrote in between.
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let seq: i64 = tx.query_row("SELECT coalesce(max(seq), 0) + 1 FROM changed_keys", [], |r| r.get(0))?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO changed_keys (target, direction, key, seq) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (target, direction, key) DO UPDATE SET seq = excluded.seq",
            )?;
            for key in keys {
                let text = serde_json::to_string(key).map_err(|e| RunError::state(e.to_string()))?;
                insert.execute(params![target, direction.name(), text, seq])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The newest mark of the changed keys (0 when there is none).
    pub fn changed_mark(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT coalesce(max(seq), 0) FROM changed_keys", [], |r| r.get(0))?)
    }

    /// Keys changed with a mark in `after` (exclusive) ..= `through`.
    pub fn changed_keys(
        &self,
        target: &str,
        direction: Direction,
        after: i64,
        through: i64,
    ) -> Result<Vec<Vec<Value>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key FROM changed_keys WHERE target = ?1 AND direction = ?2 AND seq > ?3 AND seq <= ?4 ORDER BY seq",
        )?;
        let texts: Vec<String> = stmt
            .query_map(params![target, direction.name(), after, through], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        texts
            .iter()
            .map(|t| {
                serde_json::from_str(t).map_err(|e| RunError::state(format!("a changed key in the state store: {e}")))
            })
            .collect()
    }

    /// The `limit` keys most recently written forward into `target`, newest first.
    pub fn recent_changed_keys(&self, target: &str, limit: usize) -> Result<Vec<Vec<Value>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key FROM changed_keys WHERE target = ?1 AND direction = ?2 ORDER BY seq DESC LIMIT ?3",
        )?;
        let texts: Vec<String> = stmt
            .query_map(params![target, Direction::Forward.name(), limit as i64], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        Ok(texts.iter().filter_map(|t| serde_json::from_str(t).ok()).collect())
    }

    /// Forgets the changed keys up to a mark: a check covered them.
    pub fn clear_changed_keys(&self, target: &str, direction: Direction, through: i64) -> Result<()> {
        self.conn.execute(
            "DELETE FROM changed_keys WHERE target = ?1 AND direction = ?2 AND seq <= ?3",
            params![target, direction.name(), through],
        )?;
        Ok(())
    }

    /// Every existing row of `target` is copied: recorded, and said in the audit log.
    pub fn complete_backfill(&self, target: &str) -> Result<()> {
        self.finish_backfill(target)?;
        let done = self.table(target)?.unwrap_or_default();
        self.audit(&AuditEvent::BackfillCompleted {
            table: target.to_string(),
            rows: done.rows_copied,
            batches: done.batches,
            batches_redone: done.batches_redone,
        })?;
        Ok(())
    }

    /// Every existing row of `target` is copied.
    pub fn finish_backfill(&self, target: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE tables SET stage = ?2, pending_batch = 0 WHERE target = ?1",
            params![target, TableStage::Copied.name()],
        )?;
        Ok(())
    }

    pub fn quarantine(&self, target: &str, key: &str, column: &str, value: &str, reason: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO quarantine (target, key, column_name, value, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![target, key, column, value, reason, timestamp(now())],
        )?;
        Ok(())
    }

    pub fn quarantined_rows(&self) -> Result<u64> {
        Ok(self.conn.query_row("SELECT count(*) FROM quarantine", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Where an unfinished verification of `target` stopped: when it started and its checkpoint (JSON).
    pub fn verify_checkpoint(&self, target: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row("SELECT started_at, checkpoint FROM verify_checkpoints WHERE target = ?1", [target], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    pub fn save_verify_checkpoint(&self, target: &str, started_at: &str, checkpoint: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO verify_checkpoints (target, started_at, checkpoint) VALUES (?1, ?2, ?3)
             ON CONFLICT (target) DO UPDATE SET checkpoint = excluded.checkpoint",
            params![target, started_at, checkpoint],
        )?;
        Ok(())
    }

    pub fn clear_verify_checkpoint(&self, target: &str) -> Result<()> {
        self.conn.execute("DELETE FROM verify_checkpoints WHERE target = ?1", [target])?;
        Ok(())
    }

    pub fn record_verification(&self, target: &str, v: &TableVerification, report_json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO verifications (target, at, passed, rows_source, rows_target, checksum_match, sample_size,
                 sample_mismatches, differences, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                target,
                v.at,
                v.passed,
                v.rows_source as i64,
                v.rows_target as i64,
                v.checksum_match,
                v.sample_size as i64,
                v.sample_mismatches as i64,
                v.differences as i64,
                report_json
            ],
        )?;
        // A quarantined row is one the target lacks: a table found equal holds
        // it now (fixed at the source and copied, or repaired), so it is handled.
        if v.passed {
            self.conn.execute("DELETE FROM quarantine WHERE target = ?1", [target])?;
        }
        Ok(())
    }

    /// The full report (JSON) of a table's last verification: its differing rows.
    pub fn last_verification_report(&self, target: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT report FROM verifications WHERE target = ?1 ORDER BY id DESC LIMIT 1", [target], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn last_verification(&self, target: &str) -> Result<Option<TableVerification>> {
        Ok(self
            .conn
            .query_row(
                "SELECT at, passed, rows_source, rows_target, checksum_match, sample_size, sample_mismatches, differences
                 FROM verifications WHERE target = ?1 ORDER BY id DESC LIMIT 1",
                [target],
                |r| {
                    Ok(TableVerification {
                        at: r.get(0)?,
                        passed: r.get(1)?,
                        rows_source: r.get::<_, i64>(2)? as u64,
                        rows_target: r.get::<_, i64>(3)? as u64,
                        checksum_match: r.get(4)?,
                        sample_size: r.get::<_, i64>(5)? as u64,
                        sample_mismatches: r.get::<_, i64>(6)? as u64,
                        differences: r.get::<_, i64>(7)? as u64,
                    })
                },
            )
            .optional()?)
    }

    /// Status rows for `ferry status`.
    pub fn table_statuses(&self) -> Result<Vec<TableStatus>> {
        self.tables()?
            .into_iter()
            .map(|t| {
                let operations = self.operations(&t.target)?;
                let chunks = self.chunks(&t.target)?;
                // A change in place captures nothing: its triggers keep the table right.
                let capture = if operations.is_empty() { self.capture_status(&t.target)? } else { None };
                Ok(TableStatus {
                    capture,
                    reverse: self.reverse_status(&t.target)?,
                    verification: self.last_verification(&t.target)?,
                    operations,
                    source: t.source,
                    target: t.target,
                    created_by_ferry: t.created_by_ferry,
                    rows_copied: t.rows_copied,
                    rows_total: t.rows_total,
                    rows_total_exact: t.rows_total_exact,
                    batches: t.batches,
                    batches_redone: t.batches_redone,
                    chunks: chunks.len() as u64,
                    chunks_done: chunks.iter().filter(|c| c.done).count() as u64,
                    backfill_complete: t.stage.copied(),
                    stage: t.stage.name().to_string(),
                    last_checkpoint_at: t.checkpoint_at,
                    last_key: t.last_key_display,
                    rows_per_second: None,
                    eta_seconds: None,
                    rate_measured_at: None,
                })
            })
            .collect()
    }

    fn capture_status(&self, target: &str) -> Result<Option<ferry_core::status::CaptureStatus>> {
        Ok(self
            .conn
            .query_row(
                "SELECT stage, replayed_changes, last_replay_at, pending_changes, oldest_pending_seconds, lag_measured_at
                 FROM tables WHERE target = ?1",
                [target],
                |r| {
                    let stage: Option<String> = r.get(0)?;
                    let installed = stage.and_then(|s| TableStage::from_name(&s)).is_some_and(TableStage::capturing);
                    Ok(installed.then(|| ferry_core::status::CaptureStatus {
                        replayed_changes: r.get::<_, i64>(1).unwrap_or(0) as u64,
                        last_replay_at: r.get(2).ok().flatten(),
                        pending_changes: r.get::<_, Option<i64>>(3).ok().flatten().map(|p| p as u64),
                        oldest_pending_seconds: r.get(4).ok().flatten(),
                        lag_measured_at: r.get(5).ok().flatten(),
                    }))
                },
            )
            .optional()?
            .flatten())
    }

    /// Takes an exclusive advisory lock on the state file for the life of the guard.
    pub fn lock(&self) -> Result<Option<std::fs::File>> {
        let file = std::fs::File::open(&self.path)
            .map_err(|e| RunError::state(format!("cannot open {}: {e}", self.path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(RunError::state(format!("cannot lock {}: {e}", self.path.display())))
            }
        }
    }
}

fn row_to_progress(r: &rusqlite::Row<'_>) -> rusqlite::Result<TableProgress> {
    let last_key: Option<String> = r.get(9)?;
    Ok(TableProgress {
        target: r.get(0)?,
        source: r.get(1)?,
        fingerprint: r.get(2)?,
        created_by_ferry: r.get(3)?,
        rows_total: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
        rows_total_exact: r.get(5)?,
        rows_copied: r.get::<_, i64>(6)? as u64,
        batches: r.get::<_, i64>(7)? as u64,
        batches_redone: r.get::<_, i64>(8)? as u64,
        last_key: last_key.and_then(|k| serde_json::from_str(&k).ok()),
        last_key_display: r.get(10)?,
        pending_batch: r.get(11)?,
        checkpoint_at: r.get(12)?,
        stage: r.get::<_, Option<String>>(13)?.and_then(|s| TableStage::from_name(&s)).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_scope_is_chosen_once_and_a_started_store_keeps_none() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = StateStore::open(&dir.path().join("a/state.db")).unwrap();
        let scope = fresh.capture_scope("orders").unwrap();
        assert!(scope.as_str().starts_with("orders_"), "{scope}");
        assert_eq!(fresh.capture_scope("something else").unwrap(), scope, "kept, not chosen again");
        // A store an earlier version started (its databases recorded, no scope).
        let started = StateStore::open(&dir.path().join("b/state.db")).unwrap();
        started.set_meta("source", "postgres://db/app").unwrap();
        assert!(started.capture_scope("orders").unwrap().is_legacy());
        started.set_meta("capture_scope", "Bad Scope").unwrap();
        assert!(started.capture_scope("orders").is_err());
    }

    #[test]
    fn checkpoints_survive_reopen_and_audit_chains() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ferry/state.db");
        {
            let s = StateStore::open(&path).unwrap();
            s.register_table("users", "users", "fp", 0).unwrap();
            let half = KeyRange { after: None, through: Some(vec![Value::Int(500)]) };
            let rest = KeyRange { after: Some(vec![Value::Int(500)]), through: None };
            s.plan_chunks("users", &[half, rest]).unwrap();
            s.begin_batch("users", 0).unwrap();
            let written = WrittenBatch { last_key: &[Value::Int(42)], display: "id=42", rows: 100, redone: false };
            s.complete_batch("users", 0, &written).unwrap();
            s.begin_batch("users", 1).unwrap();
            s.audit(&AuditEvent::PhaseStarted { phase: Phase::Backfill, operator: String::new() }).unwrap();
            s.audit(&AuditEvent::PhaseCompleted { phase: Phase::Backfill, duration_ms: 5 }).unwrap();
        }
        let s = StateStore::open(&path).unwrap();
        let t = s.table("users").unwrap().unwrap();
        assert_eq!(t.rows_copied, 100);
        assert_eq!(t.last_key, Some(vec![Value::Int(42)]));
        assert!(t.pending_batch);
        let chunks = s.chunks("users").unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[0].rows_copied, chunks[0].pending_batch), (100, false));
        assert_eq!(chunks[1].range.after, Some(vec![Value::Int(500)]));
        assert!(chunks[1].pending_batch);

        // The target's checkpoint of chunk 1 is taken; the table's totals are the chunks' sums.
        let committed = ChunkProgress {
            rows_copied: 30,
            batches: 1,
            last_key: Some(vec![Value::Int(530)]),
            pending_batch: false,
            ..chunks[1].clone()
        };
        s.follow_target("users", 1, &committed).unwrap();
        let t = s.table("users").unwrap().unwrap();
        assert_eq!((t.rows_copied, t.batches, t.pending_batch), (130, 2, false));
        assert_eq!(s.verify_audit_chain().unwrap(), 2);
        let log = std::fs::read_to_string(dir.path().join(".ferry/audit.log")).unwrap();
        assert!(log.lines().next().unwrap().ends_with("phase-started: phase=2 \"backfill\""), "{log}");

        // tampering breaks the chain
        s.conn.execute("UPDATE audit SET data = replace(data, '5', '6') WHERE seq = 2", []).unwrap();
        assert!(s.verify_audit_chain().is_err());
    }
}
