//! `ferry status --json`: the JSON contract. Field names are stable; new
//! fields may be added, none renamed or removed without a major version.

use crate::audit::Phase;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseState {
    NotStarted,
    Running,
    Completed,
    Failed,
    /// Stopped at a batch boundary as asked (Ctrl-C, SIGTERM): the same command goes on.
    Stopped,
}

impl PhaseState {
    /// As the state store and `ferry status --json` write it.
    pub fn name(self) -> &'static str {
        match self {
            PhaseState::NotStarted => "not_started",
            PhaseState::Running => "running",
            PhaseState::Completed => "completed",
            PhaseState::Failed => "failed",
            PhaseState::Stopped => "stopped",
        }
    }

    pub fn from_name(name: &str) -> PhaseState {
        [PhaseState::Running, PhaseState::Completed, PhaseState::Failed, PhaseState::Stopped]
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or(PhaseState::NotStarted)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseStatus {
    pub number: u8,
    pub name: String,
    pub state: PhaseState,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStatus {
    pub source: String,
    pub target: String,
    pub created_by_ferry: bool,
    pub rows_copied: u64,
    /// Rows expected (exact count or engine estimate, see `rows_total_exact`).
    pub rows_total: Option<u64>,
    pub rows_total_exact: bool,
    pub batches: u64,
    pub batches_redone: u64,
    /// The parts of the key range the copy is cut into (`[policy] workers`
    /// copy them side by side), and how many are copied; 0 before the copy.
    #[serde(default)]
    pub chunks: u64,
    #[serde(default)]
    pub chunks_done: u64,
    pub backfill_complete: bool,
    /// How far the table has come: registered, creating, created,
    /// capture_installing, capturing, copying, copied, constrained.
    #[serde(default)]
    pub stage: String,
    pub last_checkpoint_at: Option<String>,
    /// The last key copied, as `col=value` text.
    pub last_key: Option<String>,
    pub verification: Option<TableVerification>,
    /// Change capture on the source, when installed.
    pub capture: Option<CaptureStatus>,
    /// Reverse sync (target to source) after the switch, once it has run.
    #[serde(default)]
    pub reverse: Option<CaptureStatus>,
    /// Copy speed over the last minute of samples, while the copy goes on.
    #[serde(default)]
    pub rows_per_second: Option<f64>,
    /// Seconds left at that speed, when the total is known.
    #[serde(default)]
    pub eta_seconds: Option<f64>,
    /// When the speed was measured (the newest sample it is drawn from).
    #[serde(default)]
    pub rate_measured_at: Option<String>,
    /// An in-place change's operations on this table, in the spec's order
    /// (empty for a move).
    #[serde(default)]
    pub operations: Vec<OperationStatus>,
}

/// One operation of an in-place change and how far it has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationStatus {
    /// add_column, rename_column, alter_type, drop_column, add_index, carry_index, add_check, add_foreign_key.
    pub kind: String,
    /// The column, index or constraint it concerns.
    pub subject: String,
    /// pending, starting, started, completing, completed, aborting, aborted.
    pub stage: String,
    /// When it reached that stage.
    pub at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureStatus {
    pub replayed_changes: u64,
    pub last_replay_at: Option<String>,
    /// Changes captured and not yet replayed, at `lag_measured_at`.
    pub pending_changes: Option<u64>,
    /// Age of the oldest pending change, in seconds.
    pub oldest_pending_seconds: Option<f64>,
    pub lag_measured_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableVerification {
    pub at: String,
    pub passed: bool,
    pub rows_source: u64,
    pub rows_target: u64,
    pub checksum_match: bool,
    pub sample_size: u64,
    pub sample_mismatches: u64,
    pub differences: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// When this document was read from the state store.
    #[serde(default)]
    pub generated_at: String,
    pub spec: String,
    pub source: String,
    pub target: String,
    /// Where the migration stands: planned, expanding, backfilling, syncing,
    /// verified, rolling_back, rolled_back.
    #[serde(default)]
    pub state: String,
    /// The commands that may run now (`run`, `sync`, `verify`, `rollback`).
    #[serde(default)]
    pub legal_commands: Vec<String>,
    /// The furthest phase that has started.
    pub phase: Option<Phase>,
    pub phase_state: PhaseState,
    pub phases: Vec<PhaseStatus>,
    pub tables: Vec<TableStatus>,
    pub quarantined_rows: u64,
    /// `pass`, `fail`, or absent when verification has not run.
    pub verification: Option<String>,
    /// Pauses in force: by an operator (`ferry pause`) or by the throttle.
    pub pauses: Vec<Pause>,
    /// While a runner's load throttle slows the copy down: its pace (absent at full speed).
    #[serde(default)]
    pub pace: Option<Pace>,
    /// Which side serves the application's reads and writes.
    #[serde(default)]
    pub routing: Routing,
    /// The switch of writes, once it has started.
    #[serde(default)]
    pub switch: Option<SwitchStatus>,
    /// The soak, once writes have switched.
    #[serde(default)]
    pub soak: Option<SoakStatus>,
    /// Log-based capture: the WAL or binary log the source keeps for Ferry.
    #[serde(default)]
    pub capture_log: Option<CaptureLogStatus>,
    /// The process driving the migration, from its heartbeat; absent before any ran.
    #[serde(default)]
    pub runner: Option<RunnerStatus>,
    /// Every process that has worked on the migration — the commands that
    /// drove it (`run`, `sync`, ...) and each `ferry run --worker`, on any
    /// machine — with the chunks it holds and its last heartbeat.
    #[serde(default)]
    pub workers: Vec<WorkerStatus>,
    /// The read ramp, when the spec has a `[cutover]` section.
    #[serde(default)]
    pub cutover: Option<CutoverStatus>,
}

/// Where the read ramp stands (`ferry cutover`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutoverStatus {
    /// Share of reads that go to the target now (the flags say the same).
    pub read_percent: u8,
    /// The configured stages, e.g. [1, 10, 50, 100].
    pub stages: Vec<u8>,
    /// When the current stage began to hold.
    pub stage_started_at: Option<String>,
    pub hold_seconds: f64,
    /// `auto`, or `manual` (each stage waits for `ferry cutover --next`).
    pub advance: String,
    /// Each rollback trigger: its value as last measured by the ramp, against its threshold.
    pub gates: Vec<GateStatus>,
    /// Shadow reads since the ramp started (Ferry's own and the application's reports).
    pub shadow: ShadowStatus,
    /// The trigger that last sent reads back to the source, until `ferry cutover --resume`.
    pub triggered: Option<String>,
}

/// One rollback trigger of the read ramp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateStatus {
    /// `mismatch_rate`, `replay_lag`, `latency_ratio` or `error_rate`.
    pub trigger: String,
    /// `None` while there is nothing to measure (no shadow read yet, no error-rate source).
    pub value: Option<f64>,
    /// The value with its unit, or why there is none.
    pub shown: String,
    pub above: f64,
    pub threshold: String,
    /// How long the value must stay above before the trigger fires.
    pub for_seconds: f64,
    /// How long it has been above, when it is.
    pub breached_seconds: Option<f64>,
    pub measured_at: String,
}

/// Shadow reads compared since the ramp started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowStatus {
    pub compared: u64,
    /// Still different once replay had passed them.
    pub mismatched: u64,
    /// Different at first, equal once replay passed them: lag, not mismatches.
    pub rechecked: u64,
    /// Of `compared`, those the application reported (`POST /api/v1/shadow`).
    pub compared_by_application: u64,
    pub mismatch_percent: Option<f64>,
    /// The newest mismatches, newest first.
    pub recent_mismatches: Vec<ShadowMismatch>,
}

/// A mismatch a shadow read confirmed: where, which key, which columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowMismatch {
    pub at: String,
    /// `ferry` (its own shadow reads) or `application` (its reports).
    pub origin: String,
    /// The target table, or the name of a `[[cutover.shadow]]` query.
    pub subject: String,
    pub key: String,
    pub columns: Vec<String>,
    /// The differing values: only with `ferry cutover --show-values` (or as the application sent them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A Ferry process that drives the migration (`run`, `sync`, `verify`, ...),
/// as its heartbeat in the state store tells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerStatus {
    /// Its heartbeat is fresh and, on this host, its process is alive.
    pub running: bool,
    /// The command it runs, e.g. `run`.
    pub command: String,
    pub pid: u32,
    pub host: String,
    pub started_at: String,
    /// Its last heartbeat.
    pub last_seen: String,
    /// When it finished, if it ended cleanly; a killed runner has none.
    pub exited_at: Option<String>,
}

/// A process that worked on the migration — a command that drove it, or a
/// `ferry run --worker` on this or another machine — as its heartbeat in
/// the state store tells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// `host/pid`: the name its chunk leases carry.
    pub id: String,
    /// Its heartbeat is fresh and, on this host, its process is alive.
    pub running: bool,
    pub command: String,
    pub host: String,
    pub pid: u32,
    pub started_at: String,
    /// Its last heartbeat.
    pub last_seen: String,
    /// When it finished, if it ended cleanly.
    pub exited_at: Option<String>,
    /// The chunks it holds now, as `table#chunk`.
    pub chunks: Vec<String>,
}

/// One point of a table's history (`GET /api/v1/history`), kept in the state
/// store every few seconds while a runner works, so a chart survives restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistorySample {
    pub at: String,
    pub table: String,
    pub rows_copied: u64,
    pub replayed_changes: u64,
    pub pending_changes: Option<u64>,
    pub oldest_pending_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureLogStatus {
    /// Bytes of log the source keeps because Ferry has not read them yet.
    pub retained_bytes: u64,
    pub measured_at: String,
    /// `[policy] max_retained`: above it, the source's disk is at risk.
    pub max_retained_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakStatus {
    /// When writes switched.
    pub started_at: String,
    /// When `ferry contract` may go ahead.
    pub ends_at: String,
    pub elapsed: bool,
    /// What is watched: reverse lag against `[policy] max_lag`, and the rows written back.
    pub watching: Vec<String>,
    /// Rollback triggers that fired, with when.
    pub triggers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    /// `source` or `target`.
    pub reads: String,
    pub writes: String,
}

impl Default for Routing {
    fn default() -> Self {
        Routing { reads: "source".into(), writes: "source".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchStatus {
    /// When the source was fenced.
    pub fenced_at: Option<String>,
    /// When writes were recorded as going to the target.
    pub switched_at: Option<String>,
    /// How long no side took the application's writes, in milliseconds.
    pub write_unavailability_ms: Option<u64>,
}

/// The load throttle's pace: the delay it puts between batches and the reading that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pace {
    pub delay_ms: u64,
    /// How many of the copy's workers may write at once at this pace.
    #[serde(default)]
    pub workers: u64,
    /// Statements other sessions were running in the source database.
    pub active_sessions: u64,
    /// The same, measured before the work started.
    pub baseline: u64,
    /// When the copy was first slowed down.
    pub since: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    /// `operator` or `throttle`.
    pub by: String,
    pub reason: String,
    pub since: String,
}
