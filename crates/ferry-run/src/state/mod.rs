//! The state store: phases, per-table checkpoints, verification results,
//! quarantined rows and the audit log — in a SQLite file on this machine,
//! or in a schema of a PostgreSQL database that several machines share
//! (`[state] url = "postgres://…"`).
//!
//! Every write is its own committed transaction, made before the runner
//! moves on, so a `kill -9` at any instant loses nothing that was recorded.
//! The audit log is append-only and hash-chained (each entry's SHA-256
//! covers the previous entry's hash), and mirrored as human lines in
//! `audit.log` in the migration's local directory.

#[cfg(test)]
mod conformance;
mod db;
mod leases;
mod postgres;
mod schema;

use crate::error::{Result, RunError};
use chrono::{DateTime, SecondsFormat, Utc};
pub(crate) use db::{args, Backend, Db, Param, Row, ToParam};
use ferry_core::lifecycle::{OperationStage, Stage, State, TableStage};
use ferry_core::status::{OperationStatus, PhaseState, PhaseStatus, TableStatus, TableVerification};
use ferry_core::{AuditEvent, Phase, Value};
use ferry_engine::KeyRange;
use ferry_plan::in_place::Operation;
pub use leases::LEASE;
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

/// Where a migration's state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// A SQLite file on this machine.
    File(PathBuf),
    /// A schema of a PostgreSQL database, shared by every machine that runs
    /// the migration. `local` is this machine's directory for what stays on
    /// it: the `audit.log` mirror and contract's backups.
    Postgres { url: String, schema: String, local: PathBuf },
}

impl StateLocation {
    /// The location for messages: a path, or a schema and a URL without its password.
    pub fn describe(&self) -> String {
        match self {
            StateLocation::File(path) => path.display().to_string(),
            StateLocation::Postgres { url, schema, .. } => {
                format!("schema {schema} at {}", ferry_core::spec::redact_for_message(url))
            }
        }
    }

    /// This machine's directory of the migration (where `audit.log` is written).
    pub fn local_dir(&self) -> PathBuf {
        match self {
            StateLocation::File(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            StateLocation::Postgres { local, .. } => local.clone(),
        }
    }

    /// Whether a store is there (without creating one).
    pub fn exists(&self) -> Result<bool> {
        match self {
            StateLocation::File(path) => Ok(path.exists()),
            StateLocation::Postgres { url, schema, .. } => {
                let session = postgres::PgSession::connect(url, &ferry_core::spec::redact_for_message(url))?;
                let db = Db::postgres(session);
                let found: Option<Row> = db.query_opt(
                    "SELECT 1 FROM pg_tables WHERE schemaname = ?1 AND tablename = 'meta'",
                    args![schema.as_str()],
                )?;
                Ok(found.is_some())
            }
        }
    }
}

pub struct StateStore {
    db: Db,
    location: StateLocation,
    audit_log: PathBuf,
    /// The store's clock ahead of this machine's (zero for a file): leases
    /// and heartbeats of processes on several machines are timed by one clock.
    clock_ahead: chrono::Duration,
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
    /// Opens (creating if needed) the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<StateStore> {
        StateStore::open_at(&StateLocation::File(path.to_path_buf()))
    }

    /// Opens the store at `location` if there is one (`ferry status` and
    /// the dashboard read; they never create a store).
    pub fn open_existing(location: &StateLocation) -> Result<Option<StateStore>> {
        if !location.exists()? {
            return Ok(None);
        }
        StateStore::open_at(location).map(Some)
    }

    /// Opens (creating if needed) the store at `location`.
    pub fn open_at(location: &StateLocation) -> Result<StateStore> {
        let db = match location {
            StateLocation::File(path) => schema::open_file(path)?,
            StateLocation::Postgres { url, schema, local } => {
                std::fs::create_dir_all(local).map_err(|e| {
                    RunError::state(format!("cannot create the migration's directory {}: {e}", local.display()))
                })?;
                schema::open_postgres(url, schema)?
            }
        };
        let audit_log = location.local_dir().join("audit.log");
        let clock_ahead = match db.backend() {
            Backend::Sqlite => chrono::Duration::zero(),
            Backend::Postgres => {
                let asked = now();
                let server: String = db.query_value(
                    "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                    args![],
                )?;
                let server = DateTime::parse_from_rfc3339(&server)
                    .map_err(|e| RunError::state(format!("the state store's clock reads `{server}`: {e}")))?;
                // The server read its clock about half-way through the round trip.
                let midway = asked + (now() - asked) / 2;
                server.with_timezone(&Utc) - midway
            }
        };
        Ok(StateStore { db, location: location.clone(), audit_log, clock_ahead })
    }
}

impl StateStore {
    /// Where the migration stands. A store of an earlier version, which kept
    /// only its phases, is read from them.
    pub fn lifecycle(&self) -> Result<State> {
        if let Some(json) = self.meta("lifecycle")? {
            return serde_json::from_str(&json).map_err(|e| {
                RunError::state(format!("the state store {} holds an unknown state `{json}`: {e}", self.describe()))
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
        let stage: Option<Option<String>> = self
            .db
            .query_opt("SELECT stage FROM tables WHERE target = ?1", args![target])?
            .map(|r| r.get(0))
            .transpose()?;
        Ok(stage.flatten().and_then(|s| TableStage::from_name(&s)).unwrap_or_default())
    }

    pub fn set_table_stage(&self, target: &str, stage: TableStage) -> Result<()> {
        self.db.execute("UPDATE tables SET stage = ?2 WHERE target = ?1", args![target, stage.name()])?;
        Ok(())
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Where the store is.
    pub fn location(&self) -> &StateLocation {
        &self.location
    }

    /// Now by the store's clock: the one every process sharing it agrees on.
    pub fn clock(&self) -> DateTime<Utc> {
        now() + self.clock_ahead
    }

    /// The store for messages: its path, or its schema and server.
    pub fn describe(&self) -> String {
        self.location.describe()
    }

    pub fn audit_log_path(&self) -> &Path {
        &self.audit_log
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.db.query_opt("SELECT value FROM meta WHERE key = ?1", args![key])?.map(|r| r.get(0)).transpose()
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            args![key, value],
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
                RunError::state(format!("the state store {} holds a damaged capture scope: {e}", self.describe()))
            });
        }
        // A store that already names its databases was started before scopes
        // existed: the capture it installed carries none.
        let scope =
            if self.meta("source")?.is_some() { CaptureScope::legacy() } else { CaptureScope::generate(spec_stem) };
        // The first process to choose wins: a worker opening the store while
        // the runner starts must not replace the scope the runner installs.
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES ('capture_scope', ?1) ON CONFLICT (key) DO NOTHING",
            args![scope.as_str()],
        )?;
        let chosen = self.meta("capture_scope")?.unwrap_or_default();
        CaptureScope::parse(&chosen).map_err(|e| {
            RunError::state(format!("the state store {} holds a damaged capture scope: {e}", self.describe()))
        })
    }

    pub fn clear_meta(&self, keys: &[&str]) -> Result<()> {
        for key in keys {
            self.db.execute("DELETE FROM meta WHERE key = ?1", args![*key])?;
        }
        Ok(())
    }

    /// Appends an event to the audit log (table and file) and returns its line.
    pub fn audit(&self, event: &AuditEvent) -> Result<String> {
        let at = now();
        let line = event.line(at);
        let data = serde_json::to_string(event).map_err(|e| RunError::state(format!("audit event: {e}")))?;
        let stamp = timestamp(at);
        // Several processes may append (workers on a shared store): the
        // chain is read and extended under one lock.
        self.db.transaction(|| {
            self.db.lock_for_append("audit")?;
            let last: Option<Row> =
                self.db.query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", args![])?;
            let (seq, prev): (i64, String) = match last {
                Some(r) => (r.get(0)?, r.get(1)?),
                None => (0, "0".repeat(64)),
            };
            let hash = chain_hash(&prev, &stamp, event.name(), &data);
            self.db.execute(
                "INSERT INTO audit (seq, at, event, data, line, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                args![seq + 1, stamp.as_str(), event.name(), data.as_str(), line.as_str(), prev, hash],
            )
        })?;
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
        self.db
            .query("SELECT line, event, data FROM audit ORDER BY seq", args![])?
            .iter()
            .map(|r| Ok::<_, crate::RunError>((r.get(0)?, r.get(1)?, r.get(2)?)))
            .collect()
    }

    /// Audit entries after `after` (a sequence number), oldest first, at most `limit`.
    pub fn audit_since(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.db
            .query(
                "SELECT seq, at, event, data, line FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                args![after, limit],
            )?
            .iter()
            .map(|r| {
                let data: String = r.get(3)?;
                Ok(AuditEntry {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    event: r.get(2)?,
                    data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
                    line: r.get(4)?,
                })
            })
            .collect()
    }

    /// Every audit event of the given names, oldest first (for counters such as `/metrics`).
    pub fn audit_events(&self, names: &[&str]) -> Result<Vec<AuditEvent>> {
        let mut out = Vec::new();
        for row in self.db.query("SELECT event, data FROM audit ORDER BY seq", args![])? {
            let (name, data): (String, String) = (row.get(0)?, row.get(1)?);
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
        let last: i64 = self.db.query_value("SELECT coalesce(max(seq), 0) FROM audit", args![])?;
        self.audit_since((last - limit as i64).max(0), limit)
    }

    /// Checks the hash chain; returns the number of entries, or the first broken one.
    pub fn verify_audit_chain(&self) -> Result<usize> {
        let rows = self.db.query("SELECT seq, at, event, data, prev_hash, hash FROM audit ORDER BY seq", args![])?;
        let mut prev = "0".repeat(64);
        let mut n = 0;
        for r in rows {
            let (seq, at, event, data, prev_hash, hash): (i64, String, String, String, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
            let expect = chain_hash(&prev, &at, &event, &data);
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
            .db
            .query_opt("SELECT state FROM phases WHERE phase = ?1", args![phase.number()])?
            .map(|r| r.get(0))
            .transpose()?;
        Ok(state.as_deref().map_or(PhaseState::NotStarted, PhaseState::from_name))
    }

    pub fn start_phase(&self, phase: Phase) -> Result<()> {
        self.db.execute(
            "INSERT INTO phases (phase, name, state, started_at) VALUES (?1, ?2, 'running', ?3)
             ON CONFLICT (phase) DO UPDATE SET state = 'running', error = NULL,
                 started_at = COALESCE(phases.started_at, excluded.started_at)",
            args![phase.number(), phase.name(), timestamp(now())],
        )?;
        Ok(())
    }

    pub fn complete_phase(&self, phase: Phase) -> Result<()> {
        self.db.execute(
            "UPDATE phases SET state = 'completed', completed_at = ?2, error = NULL WHERE phase = ?1",
            args![phase.number(), timestamp(now())],
        )?;
        Ok(())
    }

    /// Stopped at a batch boundary as asked: not failed, the same command goes on.
    pub fn stop_phase(&self, phase: Phase) -> Result<()> {
        self.db.execute("UPDATE phases SET state = 'stopped', error = NULL WHERE phase = ?1", args![phase.number()])?;
        Ok(())
    }

    pub fn fail_phase(&self, phase: Phase, error: &str) -> Result<()> {
        self.db
            .execute("UPDATE phases SET state = 'failed', error = ?2 WHERE phase = ?1", args![phase.number(), error])?;
        Ok(())
    }

    /// When the phase first started, for durations across resumed runs.
    pub fn phase_started_at(&self, phase: Phase) -> Result<Option<DateTime<Utc>>> {
        let at: Option<Option<String>> = self
            .db
            .query_opt("SELECT started_at FROM phases WHERE phase = ?1", args![phase.number()])?
            .map(|r| r.get(0))
            .transpose()?;
        Ok(at.flatten().and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|d| d.with_timezone(&Utc)))
    }

    pub fn phases(&self) -> Result<Vec<PhaseStatus>> {
        self.db
            .query("SELECT phase, name, state, started_at, completed_at, error FROM phases ORDER BY phase", args![])?
            .iter()
            .map(|r| {
                let state: String = r.get(2)?;
                Ok(PhaseStatus {
                    number: r.get(0)?,
                    name: r.get(1)?,
                    state: PhaseState::from_name(&state),
                    started_at: r.get(3)?,
                    completed_at: r.get(4)?,
                    error: r.get(5)?,
                })
            })
            .collect()
    }

    /// Registers a table (idempotent); returns its progress.
    pub fn register_table(
        &self,
        target: &str,
        source: &str,
        fingerprint: &str,
        position: usize,
    ) -> Result<TableProgress> {
        self.db.execute(
            "INSERT INTO tables (target, source, fingerprint, position) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (target) DO NOTHING",
            args![target, source, fingerprint, position as i64],
        )?;
        self.table(target)?.ok_or_else(|| RunError::state(format!("table {target} vanished from the state store")))
    }

    pub fn table(&self, target: &str) -> Result<Option<TableProgress>> {
        self.db
            .query_opt(
                "SELECT target, source, fingerprint, created_by_ferry, rows_total, rows_total_exact, rows_copied, batches,
                        batches_redone, last_key, last_key_display, pending_batch, checkpoint_at, stage
                 FROM tables WHERE target = ?1",
                args![target],
            )?
            .map(|r| row_to_progress(&r))
            .transpose()
    }

    pub fn tables(&self) -> Result<Vec<TableProgress>> {
        self.db
            .query(
                "SELECT target, source, fingerprint, created_by_ferry, rows_total, rows_total_exact, rows_copied, batches,
                        batches_redone, last_key, last_key_display, pending_batch, checkpoint_at, stage
                 FROM tables ORDER BY position, target",
                args![],
            )?
            .iter()
            .map(row_to_progress)
            .collect()
    }

    pub fn set_fingerprint(&self, target: &str, fingerprint: &str) -> Result<()> {
        self.db.execute("UPDATE tables SET fingerprint = ?2 WHERE target = ?1", args![target, fingerprint])?;
        Ok(())
    }

    /// Marks phases to be run again (after the spec gained or changed a table).
    pub fn reset_phases(&self, phases: &[Phase]) -> Result<()> {
        for phase in phases {
            self.db.execute(
                "UPDATE phases SET state = 'not_started', started_at = NULL, completed_at = NULL WHERE phase = ?1",
                args![phase.number()],
            )?;
        }
        Ok(())
    }

    pub fn set_created_by_ferry(&self, target: &str) -> Result<()> {
        self.db.execute("UPDATE tables SET created_by_ferry = 1 WHERE target = ?1", args![target])?;
        Ok(())
    }

    pub fn set_rows_total(&self, target: &str, total: Option<u64>, exact: bool) -> Result<()> {
        self.db.execute(
            "UPDATE tables SET rows_total = ?2, rows_total_exact = ?3 WHERE target = ?1",
            args![target, total.map(|t| t as i64), exact],
        )?;
        Ok(())
    }

    /// The parts a table's key range is copied in, as planned when its copy
    /// began (none yet: not planned).
    pub fn chunks(&self, target: &str) -> Result<Vec<ChunkProgress>> {
        self.db
            .query(
                "SELECT chunk, after, through, rows_copied, batches, last_key, pending_batch, done
                 FROM chunks WHERE target = ?1 ORDER BY chunk",
                args![target],
            )?
            .iter()
            .map(row_to_chunk)
            .collect()
    }

    /// Records the parts of a table's key range, before any is copied; a
    /// resumed copy keeps them. The first starts where the table's copy
    /// stands (a store of an earlier version copied in one part).
    pub fn plan_chunks(&self, target: &str, ranges: &[KeyRange]) -> Result<()> {
        self.db.transaction(|| {
            let table = self.table(target)?.unwrap_or_default();
            for (i, range) in ranges.iter().enumerate() {
                let (rows, batches, last) = if i == 0 {
                    (table.rows_copied, table.batches, table.last_key.as_deref().map(json_key).transpose()?)
                } else {
                    (0, 0, None)
                };
                self.db.execute(
                    "INSERT INTO chunks (target, chunk, after, through, rows_copied, batches, last_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    args![
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
            Ok(())
        })
    }

    /// Records the intent to write a chunk's next batch, before it is
    /// written, and renews `owner`'s lease on the chunk. `false`: the chunk
    /// is no longer `owner`'s (its lease ran out and another worker took
    /// it), and the batch must not be written.
    pub fn begin_batch(&self, target: &str, chunk: i64, owner: &str) -> Result<bool> {
        self.db.transaction(|| {
            let held = self.db.execute(
                "UPDATE chunks SET pending_batch = 1, lease_until = ?4
                 WHERE target = ?1 AND chunk = ?2 AND (owner = ?3 OR owner IS NULL)",
                args![target, chunk, owner, self.lease_end()],
            )?;
            // A copy not cut into chunks (a change in place) holds no lease.
            let planned =
                || self.db.query_opt("SELECT 1 FROM chunks WHERE target = ?1 AND chunk = ?2", args![target, chunk]);
            if held == 0 && planned()?.is_some() {
                return Ok(false);
            }
            self.db.execute("UPDATE tables SET pending_batch = 1 WHERE target = ?1", args![target])?;
            Ok(true)
        })
    }

    /// Records a written batch: the checkpoint its chunk resumes after, and
    /// the table's totals.
    pub fn complete_batch(&self, target: &str, chunk: i64, written: &WrittenBatch<'_>) -> Result<()> {
        let key = json_key(written.last_key)?;
        self.db.transaction(|| {
            self.db.execute(
            "UPDATE chunks SET pending_batch = 0, rows_copied = rows_copied + ?3, batches = batches + 1, last_key = ?4
             WHERE target = ?1 AND chunk = ?2",
            args![target, chunk, written.rows as i64, key],
        )?;
            self.db.execute(
                "UPDATE tables SET rows_copied = rows_copied + ?2, batches = batches + 1,
                 batches_redone = batches_redone + ?3, last_key = ?4, last_key_display = ?5, checkpoint_at = ?6,
                 pending_batch = CASE WHEN EXISTS (
                     SELECT 1 FROM chunks WHERE target = ?1 AND pending_batch = 1) THEN 1 ELSE 0 END
             WHERE target = ?1",
                args![target, written.rows as i64, written.redone as i64, key, written.display, timestamp(now())],
            )?;
            Ok(())
        })
    }

    /// Every row of a chunk is copied.
    pub fn finish_chunk(&self, target: &str, chunk: i64) -> Result<()> {
        self.db.execute(
            "UPDATE chunks SET done = 1, pending_batch = 0, lease_until = NULL WHERE target = ?1 AND chunk = ?2",
            args![target, chunk],
        )?;
        Ok(())
    }

    /// Makes a chunk's checkpoint the target's: the rows, batches and last
    /// key its last commit recorded (none: nothing is committed there). The
    /// table's totals are the sums of its chunks'. The pending batch stays
    /// pending only when the target has not committed it.
    pub fn follow_target(&self, target: &str, chunk: i64, committed: &ChunkProgress) -> Result<()> {
        let key = committed.last_key.as_deref().map(json_key).transpose()?;
        self.db.transaction(|| {
            self.db.execute(
                "UPDATE chunks SET rows_copied = ?3, batches = ?4, last_key = ?5, pending_batch = ?6
             WHERE target = ?1 AND chunk = ?2",
                args![
                    target,
                    chunk,
                    committed.rows_copied as i64,
                    committed.batches as i64,
                    key,
                    committed.pending_batch
                ],
            )?;
            self.db.execute(
                "UPDATE tables SET
                 rows_copied = (
                     SELECT CAST(coalesce(sum(rows_copied), 0) AS BIGINT) FROM chunks WHERE target = ?1),
                 batches = (SELECT CAST(coalesce(sum(batches), 0) AS BIGINT) FROM chunks WHERE target = ?1),
                 pending_batch = CASE WHEN EXISTS (
                     SELECT 1 FROM chunks WHERE target = ?1 AND pending_batch = 1) THEN 1 ELSE 0 END,
                 checkpoint_at = ?2
             WHERE target = ?1",
                args![target, timestamp(now())],
            )?;
            Ok(())
        })
    }

    /// Records replayed changes and the lag measured after them.
    pub fn record_replay(&self, target: &str, replayed: u64, lag: ferry_engine::CaptureLag) -> Result<()> {
        self.record_lag(target, Direction::Forward, replayed, lag)
    }

    /// Records changes replayed from the target back into the source (after the switch).
    pub fn record_reverse_replay(&self, target: &str, replayed: u64, lag: ferry_engine::CaptureLag) -> Result<()> {
        self.record_lag(target, Direction::Reverse, replayed, lag)
    }

    /// A replay's count and lag, in the columns of its direction.
    fn record_lag(
        &self,
        target: &str,
        direction: Direction,
        replayed: u64,
        lag: ferry_engine::CaptureLag,
    ) -> Result<()> {
        let [count, last_at, pending, oldest, measured_at] = match direction {
            Direction::Forward => {
                ["replayed_changes", "last_replay_at", "pending_changes", "oldest_pending_seconds", "lag_measured_at"]
            }
            Direction::Reverse => {
                ["reverse_replayed", "reverse_last_at", "reverse_pending", "reverse_oldest_seconds", "reverse_lag_at"]
            }
        };
        self.db.execute(
            &format!(
                "UPDATE tables SET {count} = {count} + ?2,
                     {last_at} = CASE WHEN ?2 > 0 THEN ?3 ELSE {last_at} END,
                     {pending} = ?4, {oldest} = ?5, {measured_at} = ?3
                 WHERE target = ?1"
            ),
            args![target, replayed, timestamp(now()), lag.pending, lag.oldest_seconds],
        )?;
        Ok(())
    }

    /// Reverse sync of `target`, once it has run.
    pub fn reverse_status(&self, target: &str) -> Result<Option<ferry_core::status::CaptureStatus>> {
        self.db
            .query_opt(
                "SELECT reverse_replayed, reverse_last_at, reverse_pending, reverse_oldest_seconds, reverse_lag_at
                 FROM tables WHERE target = ?1 AND reverse_lag_at IS NOT NULL",
                args![target],
            )?
            .map(|r| {
                Ok::<_, RunError>(ferry_core::status::CaptureStatus {
                    replayed_changes: r.get::<i64>(0)? as u64,
                    last_replay_at: r.get(1)?,
                    pending_changes: r.get::<Option<i64>>(2)?.map(|p| p as u64),
                    oldest_pending_seconds: r.get(3)?,
                    lag_measured_at: r.get(4)?,
                })
            })
            .transpose()
    }

    /// An operator's pause (`ferry pause`), or the throttle's: reason and since when.
    pub fn set_pause(&self, who: &str, reason: Option<&str>) -> Result<()> {
        match reason {
            Some(r) => {
                self.set_meta(&format!("pause:{who}"), r)?;
                self.set_meta(&format!("pause_since:{who}"), &timestamp(now()))
            }
            None => {
                self.db.execute(
                    "DELETE FROM meta WHERE key IN (?1, ?2)",
                    args![format!("pause:{who}"), format!("pause_since:{who}")],
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
            self.db.execute(
                "INSERT INTO operations (target, position, kind, subject, stage, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (target, position) DO NOTHING",
                args![
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
            .db
            .query_opt(
                "SELECT stage FROM operations WHERE target = ?1 AND position = ?2",
                args![target, position as i64],
            )?
            .map(|r| r.get(0))
            .transpose()?;
        Ok(stage.and_then(|s| OperationStage::from_name(&s)).unwrap_or_default())
    }

    /// Records the stage of the operation at `position`, before the work it names (see [`OperationStage`]).
    pub fn set_operation_stage(&self, target: &str, position: usize, stage: OperationStage) -> Result<()> {
        self.db.execute(
            "UPDATE operations SET stage = ?3, at = ?4 WHERE target = ?1 AND position = ?2",
            args![target, position as i64, stage.name(), timestamp(now())],
        )?;
        Ok(())
    }

    /// Every operation of `target`'s change, in order, for `ferry status`.
    pub fn operations(&self, target: &str) -> Result<Vec<OperationStatus>> {
        self.db
            .query(
                "SELECT kind, subject, stage, at FROM operations WHERE target = ?1 ORDER BY position",
                args![target],
            )?
            .iter()
            .map(|r| Ok(OperationStatus { kind: r.get(0)?, subject: r.get(1)?, stage: r.get(2)?, at: r.get(3)? }))
            .collect()
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
            self.db.execute(&format!("DELETE FROM {table} WHERE target = ?1"), args![target])?;
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
        self.db.transaction(|| {
            self.db.lock_for_append("changed_keys")?;
            let seq: i64 = self.db.query_value("SELECT coalesce(max(seq), 0) + 1 FROM changed_keys", args![])?;
            for key in keys {
                let text = serde_json::to_string(key).map_err(|e| RunError::state(e.to_string()))?;
                self.db.execute(
                    "INSERT INTO changed_keys (target, direction, key, seq) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (target, direction, key) DO UPDATE SET seq = excluded.seq",
                    args![target, direction.name(), text, seq],
                )?;
            }
            Ok(())
        })
    }

    /// The newest mark of the changed keys (0 when there is none).
    pub fn changed_mark(&self) -> Result<i64> {
        self.db.query_value("SELECT coalesce(max(seq), 0) FROM changed_keys", args![])
    }

    /// Keys changed with a mark in `after` (exclusive) ..= `through`.
    pub fn changed_keys(
        &self,
        target: &str,
        direction: Direction,
        after: i64,
        through: i64,
    ) -> Result<Vec<Vec<Value>>> {
        let texts: Vec<String> = self
            .db
            .query(
                "SELECT key FROM changed_keys
                 WHERE target = ?1 AND direction = ?2 AND seq > ?3 AND seq <= ?4 ORDER BY seq",
                args![target, direction.name(), after, through],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect::<Result<_>>()?;
        texts
            .iter()
            .map(|t| {
                serde_json::from_str(t).map_err(|e| RunError::state(format!("a changed key in the state store: {e}")))
            })
            .collect()
    }

    /// The `limit` keys most recently written forward into `target`, newest first.
    pub fn recent_changed_keys(&self, target: &str, limit: usize) -> Result<Vec<Vec<Value>>> {
        let texts: Vec<String> = self
            .db
            .query(
                "SELECT key FROM changed_keys WHERE target = ?1 AND direction = ?2 ORDER BY seq DESC LIMIT ?3",
                args![target, Direction::Forward.name(), limit],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect::<Result<_>>()?;
        Ok(texts.iter().filter_map(|t| serde_json::from_str(t).ok()).collect())
    }

    /// Forgets the changed keys up to a mark: a check covered them.
    pub fn clear_changed_keys(&self, target: &str, direction: Direction, through: i64) -> Result<()> {
        self.db.execute(
            "DELETE FROM changed_keys WHERE target = ?1 AND direction = ?2 AND seq <= ?3",
            args![target, direction.name(), through],
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
        self.db.execute(
            "UPDATE tables SET stage = ?2, pending_batch = 0 WHERE target = ?1",
            args![target, TableStage::Copied.name()],
        )?;
        Ok(())
    }

    pub fn quarantine(&self, target: &str, key: &str, column: &str, value: &str, reason: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO quarantine (target, key, column_name, value, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![target, key, column, value, reason, timestamp(now())],
        )?;
        Ok(())
    }

    pub fn quarantined_rows(&self) -> Result<u64> {
        Ok(self.db.query_value::<i64>("SELECT count(*) FROM quarantine", args![])? as u64)
    }

    /// Where an unfinished verification of `target` stopped: when it started and its checkpoint (JSON).
    pub fn verify_checkpoint(&self, target: &str) -> Result<Option<(String, String)>> {
        self.db
            .query_opt("SELECT started_at, checkpoint FROM verify_checkpoints WHERE target = ?1", args![target])?
            .map(|r| Ok::<_, RunError>((r.get(0)?, r.get(1)?)))
            .transpose()
    }

    pub fn save_verify_checkpoint(&self, target: &str, started_at: &str, checkpoint: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO verify_checkpoints (target, started_at, checkpoint) VALUES (?1, ?2, ?3)
             ON CONFLICT (target) DO UPDATE SET checkpoint = excluded.checkpoint",
            args![target, started_at, checkpoint],
        )?;
        Ok(())
    }

    pub fn clear_verify_checkpoint(&self, target: &str) -> Result<()> {
        self.db.execute("DELETE FROM verify_checkpoints WHERE target = ?1", args![target])?;
        Ok(())
    }

    pub fn record_verification(&self, target: &str, v: &TableVerification, report_json: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO verifications (target, at, passed, rows_source, rows_target, checksum_match, sample_size,
                 sample_mismatches, differences, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            args![
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
            self.db.execute("DELETE FROM quarantine WHERE target = ?1", args![target])?;
        }
        Ok(())
    }

    /// The full report (JSON) of a table's last verification: its differing rows.
    pub fn last_verification_report(&self, target: &str) -> Result<Option<String>> {
        self.db
            .query_opt("SELECT report FROM verifications WHERE target = ?1 ORDER BY id DESC LIMIT 1", args![target])?
            .map(|r| r.get(0))
            .transpose()
    }

    pub fn last_verification(&self, target: &str) -> Result<Option<TableVerification>> {
        let row = self.db.query_opt(
            "SELECT at, passed, rows_source, rows_target, checksum_match, sample_size, sample_mismatches, differences
             FROM verifications WHERE target = ?1 ORDER BY id DESC LIMIT 1",
            args![target],
        )?;
        row.map(|r| {
            Ok(TableVerification {
                at: r.get(0)?,
                passed: r.get(1)?,
                rows_source: r.get(2)?,
                rows_target: r.get(3)?,
                checksum_match: r.get(4)?,
                sample_size: r.get(5)?,
                sample_mismatches: r.get(6)?,
                differences: r.get(7)?,
            })
        })
        .transpose()
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
        let Some(r) = self.db.query_opt(
            "SELECT stage, replayed_changes, last_replay_at, pending_changes, oldest_pending_seconds, lag_measured_at
             FROM tables WHERE target = ?1",
            args![target],
        )?
        else {
            return Ok(None);
        };
        let stage: Option<String> = r.get(0)?;
        if !stage.and_then(|s| TableStage::from_name(&s)).is_some_and(TableStage::capturing) {
            return Ok(None);
        }
        Ok(Some(ferry_core::status::CaptureStatus {
            replayed_changes: r.get(1)?,
            last_replay_at: r.get(2)?,
            pending_changes: r.get(3)?,
            oldest_pending_seconds: r.get(4)?,
            lag_measured_at: r.get(5)?,
        }))
    }

    /// Takes the lock that makes this process the one driving the
    /// migration, held for the life of the guard (a SQLite store: a lock on
    /// its file) or of this store's session (PostgreSQL: an advisory lock,
    /// released by the server when the process or its connection ends).
    /// `None`: another process holds it.
    pub fn lock(&self) -> Result<Option<StateLock>> {
        match &self.location {
            StateLocation::File(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| RunError::state(format!("cannot open {}: {e}", path.display())))?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(StateLock::File(file))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => {
                        Err(RunError::state(format!("cannot lock {}: {e}", path.display())))
                    }
                }
            }
            StateLocation::Postgres { schema, .. } => {
                let taken: bool = self.db.query_value(
                    "SELECT pg_try_advisory_lock(hashtext(?1))",
                    args![format!("ferry-coordinator:{schema}")],
                )?;
                Ok(taken.then_some(StateLock::Session))
            }
        }
    }
}

/// The lock of the process that drives a migration (see [`StateStore::lock`]).
#[derive(Debug)]
pub enum StateLock {
    File(std::fs::File),
    /// Held by the state store's PostgreSQL session.
    Session,
}

fn row_to_chunk(r: &Row) -> Result<ChunkProgress> {
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str::<Vec<Value>>(&t).ok());
    Ok(ChunkProgress {
        chunk: r.get(0)?,
        range: KeyRange { after: json(r.get(1)?), through: json(r.get(2)?) },
        rows_copied: r.get(3)?,
        batches: r.get(4)?,
        last_key: json(r.get(5)?),
        pending_batch: r.get(6)?,
        done: r.get(7)?,
    })
}

/// The SHA-256 of an audit entry, covering the previous entry's hash.
fn chain_hash(prev: &str, at: &str, event: &str, data: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [prev, at, event, data] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn row_to_progress(r: &Row) -> Result<TableProgress> {
    let last_key: Option<String> = r.get(9)?;
    Ok(TableProgress {
        target: r.get(0)?,
        source: r.get(1)?,
        fingerprint: r.get(2)?,
        created_by_ferry: r.get(3)?,
        rows_total: r.get::<Option<i64>>(4)?.map(|v| v as u64),
        rows_total_exact: r.get(5)?,
        rows_copied: r.get::<i64>(6)? as u64,
        batches: r.get::<i64>(7)? as u64,
        batches_redone: r.get::<i64>(8)? as u64,
        last_key: last_key.and_then(|k| serde_json::from_str(&k).ok()),
        last_key_display: r.get(10)?,
        pending_batch: r.get(11)?,
        checkpoint_at: r.get(12)?,
        stage: r.get::<Option<String>>(13)?.and_then(|s| TableStage::from_name(&s)).unwrap_or_default(),
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
}
