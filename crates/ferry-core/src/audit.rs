//! Phases and audit events, and the human lines of the method.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The phases of DESIGN.md §2, numbered as the method numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Assess,
    Expand,
    Backfill,
    Sync,
    Verify,
    Cutover,
    Switch,
    Soak,
    Contract,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::Assess,
        Phase::Expand,
        Phase::Backfill,
        Phase::Sync,
        Phase::Verify,
        Phase::Cutover,
        Phase::Switch,
        Phase::Soak,
        Phase::Contract,
    ];

    pub fn number(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Assess => "assess",
            Phase::Expand => "expand",
            Phase::Backfill => "backfill",
            Phase::Sync => "sync",
            Phase::Verify => "verify",
            Phase::Cutover => "cutover",
            Phase::Switch => "switch",
            Phase::Soak => "soak",
            Phase::Contract => "contract",
        }
    }

    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "phase={} \"{}\"", self.number(), self.name())
    }
}

/// Why backfill and replay wait before their next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    /// `ferry pause`, or the dashboard's pause button.
    Operator,
    /// The latency probe on the source was slower than its threshold.
    SourceLatency,
    /// A replica lagged more than `[policy] max_lag`.
    ReplicaLag,
    /// A replica stopped replicating.
    ReplicaStopped,
}

impl PauseCause {
    pub const ALL: [PauseCause; 4] =
        [PauseCause::Operator, PauseCause::SourceLatency, PauseCause::ReplicaLag, PauseCause::ReplicaStopped];

    /// As metrics label it and the audit log's JSON writes it.
    pub fn name(self) -> &'static str {
        match self {
            PauseCause::Operator => "operator",
            PauseCause::SourceLatency => "source_latency",
            PauseCause::ReplicaLag => "replica_lag",
            PauseCause::ReplicaStopped => "replica_stopped",
        }
    }
}

/// Something Ferry did, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum AuditEvent {
    RunStarted {
        command: String,
        spec: String,
    },
    MigrationAssessed {
        scope: String,
        components: u64,
        estimated_duration_ms: u64,
    },
    /// A run that did everything `ferry plan` estimated (every row copied
    /// and verified): the estimate with its range, the time the run took,
    /// and each phase's estimate and time (`expand 90/120 ms, …`).
    EstimateChecked {
        estimated_ms: u64,
        #[serde(default)]
        low_ms: u64,
        #[serde(default)]
        high_ms: u64,
        actual_ms: u64,
        #[serde(default)]
        by_phase: String,
    },
    StrategySelected {
        strategy: String,
        rationale: String,
    },
    PhaseStarted {
        phase: Phase,
        /// Who started it: `--operator`, `FERRY_OPERATOR`, else the OS user.
        #[serde(default)]
        operator: String,
    },
    CaptureInstalled {
        table: String,
    },
    ThrottlePaused {
        reason: String,
        /// What the pause waits for (absent in logs written before causes were kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<PauseCause>,
    },
    ThrottleResumed {},
    /// The load throttle went from full speed to a slowed pace (`delay_ms` > 0) or back (0).
    ThrottlePaced {
        active_sessions: u64,
        baseline: u64,
        delay_ms: u64,
    },
    /// A source TRUNCATE was replayed: every row of the target table deleted.
    TruncateReplayed {
        table: String,
    },
    CaptureRemoved {
        table: String,
    },
    RollbackExecuted {
        trigger: String,
        phase: u8,
        result: String,
    },
    PhaseCompleted {
        phase: Phase,
        duration_ms: u64,
    },
    /// Stopped at a batch boundary as asked (Ctrl-C, SIGTERM).
    PhaseStopped {
        phase: Phase,
    },
    PhaseFailed {
        phase: Phase,
        error: String,
        /// The error's stable code (docs/errors.md); empty in logs written before codes were kept.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        code: String,
    },
    TableCreated {
        table: String,
        target: String,
    },
    TableReused {
        table: String,
    },
    ForeignKeyAdded {
        table: String,
        name: String,
    },
    ForeignKeySkipped {
        table: String,
        name: String,
        reason: String,
    },
    /// A default, check, index, collation, identity or comment of the source
    /// that expand did not create on the target (the plan reported it).
    SchemaItemSkipped {
        table: String,
        item: String,
        reason: String,
    },
    /// The target's identity (sequence, AUTO_INCREMENT) now hands out `next` or more.
    IdentityAdvanced {
        table: String,
        column: String,
        next: i64,
    },
    /// The application's writes to a table are refused (`on` = source or target).
    FenceInstalled {
        table: String,
        on: String,
    },
    FenceRemoved {
        table: String,
        on: String,
    },
    /// Writes are recorded as going to `to`; `window_ms` is how long no
    /// side took the application's writes (fence on to writes accepted).
    WritesSwitched {
        to: String,
        window_ms: u64,
    },
    /// The read ramp published a stage: `percent` of the reads go to the target.
    CutoverStage {
        percent: u8,
    },
    /// Reads went back to the source by an operator's `ferry cutover --abort`.
    CutoverAborted {
        by: String,
    },
    /// A rollback trigger fired (during the read ramp or the soak): what, and what was done.
    RollbackTriggered {
        trigger: String,
        phase: u8,
        action: String,
        /// The trigger's value when it fired, and its threshold, with units.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<String>,
    },
    /// Contract finished: the point of no return is passed.
    MigrationCompleted {
        total_duration_ms: u64,
        soak_period_start: String,
    },
    /// The source's backup restored into a scratch database and matched the source.
    BackupChecked {
        file: String,
        tables: u64,
        result: String,
    },
    /// The rows written since the last look were compared on both sides.
    ChangedKeysChecked {
        phase: Phase,
        direction: String,
        compared: u64,
        recopied: u64,
        different: u64,
    },
    /// `ferry rehearse` ran the lifecycle through a rollback on scratch copies.
    RollbackTested {
        environment: String,
        rows_per_table: u64,
        result: String,
        duration_ms: u64,
    },
    /// `ferry contract --skip-soak` went ahead before the soak elapsed.
    SoakSkipped {
        reason: String,
        remaining_ms: u64,
    },
    /// Contract archived a source table (`to` = its new name, or `dropped`).
    TableArchived {
        table: String,
        to: String,
    },
    /// The `[switch] hook` ran.
    HookRun {
        hook: String,
        writes_to: String,
        result: String,
    },
    /// An operation of a change in place reached a stage (started by
    /// expand, completed by contract, aborted by rollback), recorded before
    /// the work it names.
    OperationStage {
        table: String,
        operation: String,
        stage: String,
    },
    BackfillResumed {
        table: String,
        rows_copied: u64,
        redoing_batch: bool,
    },
    /// The state store took the target's checkpoint of a table: the target
    /// committed a batch the store had not recorded, or lost commits (a crash).
    CheckpointFollowed {
        table: String,
        /// The part of the table's key range (0 when it is copied whole).
        chunk: i64,
        recorded_rows: u64,
        target_rows: u64,
    },
    BackfillCompleted {
        table: String,
        rows: u64,
        batches: u64,
        batches_redone: u64,
    },
    RowQuarantined {
        table: String,
        key: String,
        column: String,
        reason: String,
    },
    /// A constraint or custom check of verification.
    CheckRun {
        name: String,
        expected: i64,
        actual: Option<i64>,
        passed: bool,
    },
    /// `ferry verify --repair` re-copied differing rows from the source.
    RowsRepaired {
        table: String,
        upserted: u64,
        deleted: u64,
        remaining: u64,
    },
    IntegrityCheck {
        phase: Phase,
        table: String,
        rows_expected: u64,
        rows_actual: u64,
        checksum_pass: bool,
        sample_size: u64,
        sample_mismatches: u64,
        /// Rows written during the comparison that matched once replay caught up.
        #[serde(default)]
        settled: u64,
    },
}

impl AuditEvent {
    pub fn name(&self) -> &'static str {
        match self {
            AuditEvent::RunStarted { .. } => "run-started",
            AuditEvent::MigrationAssessed { .. } => "migration-assessed",
            AuditEvent::EstimateChecked { .. } => "estimate-checked",
            AuditEvent::StrategySelected { .. } => "strategy-selected",
            AuditEvent::PhaseStarted { .. } => "phase-started",
            AuditEvent::CaptureInstalled { .. } => "capture-installed",
            AuditEvent::ThrottlePaused { .. } => "throttle-paused",
            AuditEvent::ThrottleResumed {} => "throttle-resumed",
            AuditEvent::ThrottlePaced { .. } => "throttle-paced",
            AuditEvent::TruncateReplayed { .. } => "truncate-replayed",
            AuditEvent::CaptureRemoved { .. } => "capture-removed",
            AuditEvent::RollbackExecuted { .. } => "rollback-executed",
            AuditEvent::PhaseCompleted { .. } => "phase-completed",
            AuditEvent::PhaseStopped { .. } => "phase-stopped",
            AuditEvent::PhaseFailed { .. } => "phase-failed",
            AuditEvent::TableCreated { .. } => "table-created",
            AuditEvent::TableReused { .. } => "table-reused",
            AuditEvent::ForeignKeyAdded { .. } => "foreign-key-added",
            AuditEvent::ForeignKeySkipped { .. } => "foreign-key-skipped",
            AuditEvent::SchemaItemSkipped { .. } => "schema-item-skipped",
            AuditEvent::IdentityAdvanced { .. } => "identity-advanced",
            AuditEvent::FenceInstalled { .. } => "fence-installed",
            AuditEvent::FenceRemoved { .. } => "fence-removed",
            AuditEvent::WritesSwitched { .. } => "writes-switched",
            AuditEvent::HookRun { .. } => "hook-run",
            AuditEvent::RollbackTriggered { .. } => "rollback-triggered",
            AuditEvent::CutoverStage { .. } => "cutover-stage",
            AuditEvent::CutoverAborted { .. } => "cutover-aborted",
            AuditEvent::SoakSkipped { .. } => "soak-skipped",
            AuditEvent::TableArchived { .. } => "table-archived",
            AuditEvent::MigrationCompleted { .. } => "migration-completed",
            AuditEvent::BackupChecked { .. } => "backup-checked",
            AuditEvent::RollbackTested { .. } => "rollback-tested",
            AuditEvent::ChangedKeysChecked { .. } => "changed-keys-checked",
            AuditEvent::OperationStage { .. } => "operation-stage",
            AuditEvent::BackfillResumed { .. } => "backfill-resumed",
            AuditEvent::CheckpointFollowed { .. } => "checkpoint-followed",
            AuditEvent::BackfillCompleted { .. } => "backfill-completed",
            AuditEvent::RowQuarantined { .. } => "row-quarantined",
            AuditEvent::IntegrityCheck { .. } => "integrity-check",
            AuditEvent::CheckRun { .. } => "check-run",
            AuditEvent::RowsRepaired { .. } => "rows-repaired",
        }
    }

    /// The part after `name: ` in the human line.
    pub fn details(&self) -> String {
        match self {
            AuditEvent::RunStarted { command, spec } => format!("command={command}, spec={spec}"),
            AuditEvent::EstimateChecked { estimated_ms, low_ms, high_ms, actual_ms, by_phase } => {
                format!(
                    "estimated_ms={estimated_ms}, low_ms={low_ms}, high_ms={high_ms}, actual_ms={actual_ms}, by_phase=\"{by_phase}\""
                )
            }
            AuditEvent::MigrationAssessed { scope, components, estimated_duration_ms } => format!(
                "scope={scope}, components={components}, estimated_duration={}",
                format_duration(Duration::from_millis(*estimated_duration_ms))
            ),
            AuditEvent::StrategySelected { strategy, rationale } => format!("{strategy} — rationale: {}", one_line(rationale)),
            AuditEvent::PhaseStarted { phase, operator } if operator.is_empty() => phase.to_string(),
            AuditEvent::PhaseStarted { phase, operator } => format!("{phase} — started by {operator}"),
            AuditEvent::CaptureInstalled { table }
            | AuditEvent::CaptureRemoved { table }
            | AuditEvent::TruncateReplayed { table } => format!("table={table}"),
            AuditEvent::ThrottlePaused { reason, .. } => format!("reason={}", one_line(reason)),
            AuditEvent::ThrottleResumed {} => String::new(),
            AuditEvent::RollbackExecuted { trigger, phase, result } => format!("trigger={trigger}, phase={phase}, result={result}"),
            AuditEvent::PhaseCompleted { phase, duration_ms } => {
                format!("{phase} — duration={}", format_duration(Duration::from_millis(*duration_ms)))
            }
            AuditEvent::PhaseFailed { phase, error, .. } => format!("{phase} — error={}", one_line(error)),
            AuditEvent::PhaseStopped { phase } => format!("{phase} — at a batch boundary, as asked"),
            AuditEvent::TableCreated { table, target } => format!("table={table}, target={target}"),
            AuditEvent::TableReused { table } => format!("table={table}"),
            AuditEvent::ForeignKeyAdded { table, name } => format!("table={table}, name={name}"),
            AuditEvent::ForeignKeySkipped { table, name, reason } => {
                format!("table={table}, name={name}, reason={}", one_line(reason))
            }
            AuditEvent::SchemaItemSkipped { table, item, reason } => {
                format!("table={table}, item={}, reason={}", one_line(item), one_line(reason))
            }
            AuditEvent::IdentityAdvanced { table, column, next } => format!("table={table}, column={column}, next={next}"),
            AuditEvent::FenceInstalled { table, on } | AuditEvent::FenceRemoved { table, on } => {
                format!("table={table}, on={on}")
            }
            AuditEvent::WritesSwitched { to, window_ms } => format!(
                "to={to}, write_unavailability={}",
                format_duration(Duration::from_millis(*window_ms))
            ),
            AuditEvent::CutoverStage { percent } => format!("reads_to_target={percent}%"),
            AuditEvent::CutoverAborted { by } => format!("reads_to_target=0%, by={by}"),
            AuditEvent::RollbackTriggered { trigger, phase, action, value, threshold } => {
                let phase = Phase::ALL.into_iter().find(|p| p.number() == *phase).map_or(phase.to_string(), |p| p.name().into());
                let measured = match (value, threshold) {
                    (Some(v), Some(t)) => format!(", value={v}, threshold={t}"),
                    _ => String::new(),
                };
                format!("phase={phase}, trigger={}{measured}, action={action}", one_line(trigger))
            }
            AuditEvent::SoakSkipped { reason, remaining_ms } => format!(
                "reason={}, remaining={}",
                one_line(reason),
                format_duration(Duration::from_millis(*remaining_ms))
            ),
            AuditEvent::TableArchived { table, to } => format!("table={table}, to={to}"),
            AuditEvent::MigrationCompleted { total_duration_ms, soak_period_start } => format!(
                "total_duration={}, soak_period_start={soak_period_start}",
                format_duration(Duration::from_millis(*total_duration_ms))
            ),
            AuditEvent::BackupChecked { file, tables, result } => {
                format!("file={file}, tables={tables}, result={}", one_line(result))
            }
            AuditEvent::ChangedKeysChecked { phase, direction, compared, recopied, different } => format!(
                "phase={}, direction={direction}, compared={compared}, recopied={recopied}, different={different}",
                phase.number()
            ),
            AuditEvent::RollbackTested { environment, rows_per_table, result, duration_ms } => format!(
                "environment={environment}, rows_per_table={rows_per_table}, result={}, duration={}",
                one_line(result),
                format_duration(Duration::from_millis(*duration_ms))
            ),
            AuditEvent::HookRun { hook, writes_to, result } => {
                format!("hook={}, writes_to={writes_to}, result={}", one_line(hook), one_line(result))
            }
            AuditEvent::OperationStage { table, operation, stage } => {
                format!("table={table}, operation={operation}, stage={stage}")
            }
            AuditEvent::ThrottlePaced { active_sessions, baseline, delay_ms } => {
                format!("active_sessions={active_sessions}, baseline={baseline}, delay_ms={delay_ms}")
            }
            AuditEvent::BackfillResumed { table, rows_copied, redoing_batch } => {
                format!("table={table}, rows_copied={rows_copied}, redoing_batch={redoing_batch}")
            }
            AuditEvent::CheckpointFollowed { table, chunk, recorded_rows, target_rows } => {
                format!("table={table}, chunk={chunk}, recorded_rows={recorded_rows}, target_rows={target_rows}")
            }
            AuditEvent::BackfillCompleted { table, rows, batches, batches_redone } => {
                format!("table={table}, rows={rows}, batches={batches}, batches_redone={batches_redone}")
            }
            AuditEvent::RowQuarantined { table, key, column, reason } => {
                format!("table={table}, key={key}, column={column}, reason={}", one_line(reason))
            }
            AuditEvent::CheckRun { name, expected, actual, passed } => format!(
                "name={}, expected={expected}, actual={}, result={}",
                one_line(name),
                actual.map_or("error".to_string(), |a| a.to_string()),
                if *passed { "pass" } else { "fail" }
            ),
            AuditEvent::RowsRepaired { table, upserted, deleted, remaining } => {
                format!("table={table}, upserted={upserted}, deleted={deleted}, still_different={remaining}")
            }
            AuditEvent::IntegrityCheck {
                phase,
                table,
                rows_expected,
                rows_actual,
                checksum_pass,
                sample_size,
                sample_mismatches,
                settled,
            } => format!(
                "phase={}, rows_expected={rows_expected}, rows_actual={rows_actual}, checksum={}, table={table}, sample={sample_size}, sample_mismatches={sample_mismatches}{}",
                phase.number(),
                if *checksum_pass { "pass" } else { "fail" },
                if *settled > 0 { format!(", settled={settled}") } else { String::new() }
            ),
        }
    }

    /// `[2026-11-21T10:00:00Z] phase-started: phase=2 "backfill"`
    pub fn line(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        format!("[{}] {}: {}", at.format("%Y-%m-%dT%H:%M:%SZ"), self.name(), self.details())
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `850ms`, `12.3s`, `4m05s`, `2h03m`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{}ms", d.as_millis())
    } else if secs < 60.0 && d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h{:02}m", d.as_secs() / 3600, (d.as_secs() % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn lines_follow_the_method() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        assert_eq!(
            AuditEvent::PhaseStarted { phase: Phase::Backfill, operator: "dba@example.com".into() }.line(at),
            "[2026-11-21T10:00:00Z] phase-started: phase=2 \"backfill\" — started by dba@example.com"
        );
        assert_eq!(
            AuditEvent::PhaseCompleted { phase: Phase::Backfill, duration_ms: 65_000 }.line(at),
            "[2026-11-21T10:00:00Z] phase-completed: phase=2 \"backfill\" — duration=1m05s"
        );
        let check = AuditEvent::IntegrityCheck {
            phase: Phase::Verify,
            table: "users".into(),
            rows_expected: 10,
            rows_actual: 10,
            checksum_pass: true,
            sample_size: 10,
            sample_mismatches: 0,
            settled: 0,
        };
        assert!(check.line(at).starts_with(
            "[2026-11-21T10:00:00Z] integrity-check: phase=4, rows_expected=10, rows_actual=10, checksum=pass"
        ));
    }

    /// One event of every kind: the match makes the compiler ask for a new one.
    fn every_event() -> Vec<AuditEvent> {
        let s = || String::new();
        let events = vec![
            AuditEvent::RunStarted { command: s(), spec: s() },
            AuditEvent::MigrationAssessed { scope: s(), components: 0, estimated_duration_ms: 0 },
            AuditEvent::EstimateChecked { estimated_ms: 0, low_ms: 0, high_ms: 0, actual_ms: 0, by_phase: s() },
            AuditEvent::StrategySelected { strategy: s(), rationale: s() },
            AuditEvent::PhaseStarted { phase: Phase::Expand, operator: s() },
            AuditEvent::CaptureInstalled { table: s() },
            AuditEvent::ThrottlePaused { reason: s(), cause: Some(PauseCause::SourceLatency) },
            AuditEvent::ThrottleResumed {},
            AuditEvent::TruncateReplayed { table: s() },
            AuditEvent::CaptureRemoved { table: s() },
            AuditEvent::RollbackExecuted { trigger: s(), phase: 0, result: s() },
            AuditEvent::PhaseCompleted { phase: Phase::Expand, duration_ms: 0 },
            AuditEvent::PhaseFailed { phase: Phase::Expand, error: s(), code: "E301".into() },
            AuditEvent::PhaseStopped { phase: Phase::Backfill },
            AuditEvent::TableCreated { table: s(), target: s() },
            AuditEvent::TableReused { table: s() },
            AuditEvent::ForeignKeyAdded { table: s(), name: s() },
            AuditEvent::ForeignKeySkipped { table: s(), name: s(), reason: s() },
            AuditEvent::SchemaItemSkipped { table: s(), item: s(), reason: s() },
            AuditEvent::IdentityAdvanced { table: s(), column: s(), next: 0 },
            AuditEvent::FenceInstalled { table: s(), on: s() },
            AuditEvent::FenceRemoved { table: s(), on: s() },
            AuditEvent::WritesSwitched { to: s(), window_ms: 0 },
            AuditEvent::HookRun { hook: s(), writes_to: s(), result: s() },
            AuditEvent::RollbackTriggered { trigger: s(), phase: 0, action: s(), value: None, threshold: None },
            AuditEvent::CutoverStage { percent: 10 },
            AuditEvent::CutoverAborted { by: s() },
            AuditEvent::SoakSkipped { reason: s(), remaining_ms: 0 },
            AuditEvent::TableArchived { table: s(), to: s() },
            AuditEvent::MigrationCompleted { total_duration_ms: 0, soak_period_start: s() },
            AuditEvent::BackupChecked { file: s(), tables: 0, result: s() },
            AuditEvent::RollbackTested { environment: s(), rows_per_table: 0, result: s(), duration_ms: 0 },
            AuditEvent::ChangedKeysChecked {
                phase: Phase::Switch,
                direction: s(),
                compared: 0,
                recopied: 0,
                different: 0,
            },
            AuditEvent::OperationStage { table: s(), operation: s(), stage: s() },
            AuditEvent::ThrottlePaced { active_sessions: 0, baseline: 0, delay_ms: 0 },
            AuditEvent::BackfillResumed { table: s(), rows_copied: 0, redoing_batch: false },
            AuditEvent::CheckpointFollowed { table: s(), chunk: 0, recorded_rows: 0, target_rows: 0 },
            AuditEvent::BackfillCompleted { table: s(), rows: 0, batches: 0, batches_redone: 0 },
            AuditEvent::RowQuarantined { table: s(), key: s(), column: s(), reason: s() },
            AuditEvent::CheckRun { name: s(), expected: 0, actual: None, passed: true },
            AuditEvent::RowsRepaired { table: s(), upserted: 0, deleted: 0, remaining: 0 },
            AuditEvent::IntegrityCheck {
                phase: Phase::Verify,
                table: s(),
                rows_expected: 0,
                rows_actual: 0,
                checksum_pass: true,
                sample_size: 0,
                sample_mismatches: 0,
                settled: 0,
            },
        ];
        for e in &events {
            match e {
                AuditEvent::RunStarted { .. }
                | AuditEvent::MigrationAssessed { .. }
                | AuditEvent::EstimateChecked { .. }
                | AuditEvent::StrategySelected { .. }
                | AuditEvent::PhaseStarted { .. }
                | AuditEvent::CaptureInstalled { .. }
                | AuditEvent::ThrottlePaused { .. }
                | AuditEvent::ThrottleResumed {}
                | AuditEvent::TruncateReplayed { .. }
                | AuditEvent::CaptureRemoved { .. }
                | AuditEvent::RollbackExecuted { .. }
                | AuditEvent::PhaseCompleted { .. }
                | AuditEvent::PhaseFailed { .. }
                | AuditEvent::PhaseStopped { .. }
                | AuditEvent::TableCreated { .. }
                | AuditEvent::TableReused { .. }
                | AuditEvent::ForeignKeyAdded { .. }
                | AuditEvent::ForeignKeySkipped { .. }
                | AuditEvent::SchemaItemSkipped { .. }
                | AuditEvent::IdentityAdvanced { .. }
                | AuditEvent::FenceInstalled { .. }
                | AuditEvent::FenceRemoved { .. }
                | AuditEvent::WritesSwitched { .. }
                | AuditEvent::HookRun { .. }
                | AuditEvent::RollbackTriggered { .. }
                | AuditEvent::CutoverStage { .. }
                | AuditEvent::CutoverAborted { .. }
                | AuditEvent::SoakSkipped { .. }
                | AuditEvent::TableArchived { .. }
                | AuditEvent::MigrationCompleted { .. }
                | AuditEvent::BackupChecked { .. }
                | AuditEvent::RollbackTested { .. }
                | AuditEvent::ChangedKeysChecked { .. }
                | AuditEvent::OperationStage { .. }
                | AuditEvent::ThrottlePaced { .. }
                | AuditEvent::BackfillResumed { .. }
                | AuditEvent::CheckpointFollowed { .. }
                | AuditEvent::BackfillCompleted { .. }
                | AuditEvent::RowQuarantined { .. }
                | AuditEvent::CheckRun { .. }
                | AuditEvent::RowsRepaired { .. }
                | AuditEvent::IntegrityCheck { .. } => {}
            }
        }
        events
    }

    /// docs/concepts.md lists every event, and nothing else.
    #[test]
    fn the_event_list_in_the_docs_is_complete() {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/concepts.md")).unwrap();
        let list = docs.split("\nEvents: ").nth(1).expect("an `Events: ` paragraph").split("\n\n").next().unwrap();
        let mut documented: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
        documented.sort_unstable();
        let mut names: Vec<&str> = every_event().iter().map(AuditEvent::name).collect();
        names.sort_unstable();
        assert_eq!(documented, names, "docs/concepts.md's event list and AuditEvent disagree");
    }

    #[test]
    fn events_round_trip_as_json() {
        let e = AuditEvent::BackfillCompleted { table: "t".into(), rows: 1, batches: 2, batches_redone: 0 };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"event\":\"backfill-completed\""));
        assert_eq!(serde_json::from_str::<AuditEvent>(&json).unwrap(), e);
    }
}
