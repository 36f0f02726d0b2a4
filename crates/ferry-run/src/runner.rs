//! The phases, in order, each recorded before and after it acts.

use crate::backfill::Backfill;
use crate::connect::{open, Role};
use crate::error::{Result, RunError, RunErrorKind};
use crate::mapping::{incompatibilities, plan_tables, Mode, TablePlan};
use crate::progress::Progress;
use crate::state::{now, timestamp, StateStore};
use crate::verify::{TableReport, Verifier};
use ferry_core::status::{PhaseState, StatusReport, TableVerification};
use ferry_core::{AuditEvent, DataType, Phase, Spec, TableSchema};
use ferry_engine::{DatabaseUrl, Engine, LockGuard, WriteSpec};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// A migration with its databases connected, its state open and its locks held.
pub struct Migration {
    pub spec: Spec,
    pub state: StateStore,
    pub source: Arc<dyn Engine>,
    pub target: Arc<dyn Engine>,
    pub plans: Vec<TablePlan>,
    _state_lock: Option<std::fs::File>,
    _target_lock: Option<LockGuard>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableOutcome {
    pub target: String,
    pub rows_copied_now: u64,
    pub rows_total: u64,
    pub batches_redone: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub tables: Vec<TableOutcome>,
    pub backfill_seconds: f64,
    pub verification: Vec<TableReport>,
    pub elapsed_seconds: f64,
    /// Set when `--until` stopped the run before verification.
    pub stopped_after: Option<Phase>,
}

impl RunOutcome {
    pub fn verified(&self) -> bool {
        !self.verification.is_empty() && self.verification.iter().all(TableReport::passed)
    }

    /// Whether the run did what was asked: verified, or stopped where told to.
    pub fn succeeded(&self) -> bool {
        self.stopped_after.is_some() || self.verified()
    }
}

/// Where the state store of a spec lives.
pub fn state_path(spec: &Spec) -> Result<PathBuf> {
    match DatabaseUrl::parse(&spec.state_url, &spec.base_dir()).map_err(RunError::from)? {
        DatabaseUrl::Sqlite(path) => Ok(path),
        _ => Err(RunError::state("only a SQLite state store is supported in this version")),
    }
}

impl Migration {
    /// Connects both databases and plans every table. With `exclusive`, takes
    /// the locks that keep a second runner off this migration.
    pub async fn open(spec: Spec, exclusive: bool) -> Result<Migration> {
        if exclusive {
            check_answered(&spec)?;
        }
        let state = StateStore::open(&state_path(&spec)?)?;
        let state_lock = if exclusive {
            Some(state.lock()?.ok_or_else(|| {
                RunError::new(
                    RunErrorKind::Locked,
                    format!(
                        "another ferry process is running this migration (state {} is locked)",
                        state.path().display()
                    ),
                )
                .with_hint("wait for it to finish, or stop it; two runners must never drive one migration")
            })?)
        } else {
            None
        };
        let base = spec.base_dir();
        let source = open(&spec.source_url, &base, Role::Source).await?;
        let target = open(&spec.target_url, &base, Role::Target).await?;
        check_identity(&state, &*source, &*target)?;
        let target_lock = if exclusive {
            let mut names: Vec<&str> = spec.tables.iter().map(|t| t.to.as_str()).collect();
            names.sort();
            let lock_name = format!("ferry/{}", names.join(","));
            Some(target.try_lock(&lock_name).await?.ok_or_else(|| {
                RunError::new(
                    RunErrorKind::Locked,
                    format!(
                        "another ferry runner holds the migration lock on {} for these tables",
                        target.display_url()
                    ),
                )
                .with_hint("two runners must never drive one migration; wait for the other one or stop it")
            })?)
        } else {
            None
        };
        let plans = plan_tables(&spec, &*source, &*target, Mode::Run).await?;
        let mut spec_changed = false;
        // Only a runner records tables; `ferry verify` reads what is there.
        for (i, plan) in plans.iter().enumerate().filter(|_| exclusive) {
            let fingerprint = Spec::table_fingerprint(&plan.spec);
            let known = state.table(&plan.target_display())?.is_some();
            let progress =
                state.register_table(&plan.target_display(), &plan.source_name.to_string(), &fingerprint, i)?;
            spec_changed |= !known;
            if progress.fingerprint != fingerprint {
                if progress.rows_copied > 0 || progress.backfill_done {
                    return Err(RunError::new(
                        RunErrorKind::State,
                        format!(
                            "{}:{}: the [[table]] entry for {} changed after its backfill started ({} rows copied)",
                            spec.path.display(),
                            plan.spec.line,
                            plan.target_name,
                            progress.rows_copied
                        ),
                    )
                    .with_hint("restore the entry as it was, or start over: drop the target table and remove the state directory"));
                }
                state.set_fingerprint(&plan.target_display(), &fingerprint)?;
                spec_changed = true;
            }
        }
        // A new or edited table entry: expand, backfill and verify run again
        // (tables already copied are skipped by their own checkpoints).
        if spec_changed && exclusive && state.phase_state(Phase::Expand)? != PhaseState::NotStarted {
            state.reset_phases(&[Phase::Expand, Phase::Backfill, Phase::Verify])?;
        }
        Ok(Migration { spec, state, source, target, plans, _state_lock: state_lock, _target_lock: target_lock })
    }

    /// expand -> backfill -> verify, resuming wherever an earlier run stopped.
    /// With `until`, stops once that phase is complete.
    pub async fn run(&self, until: Option<Phase>, progress: &dyn Progress) -> Result<RunOutcome> {
        let started = Instant::now();
        self.state
            .audit(&AuditEvent::RunStarted { command: "run".into(), spec: self.spec.path.display().to_string() })?;

        if self.state.phase_state(Phase::Expand)? != PhaseState::Completed {
            self.begin(Phase::Expand, progress)?;
            let result = self.expand(progress).await;
            self.end(Phase::Expand, &result)?;
            result?;
        }
        let targets = self.target_schemas().await?;
        let mut outcome = RunOutcome {
            tables: Vec::new(),
            backfill_seconds: 0.0,
            verification: Vec::new(),
            elapsed_seconds: 0.0,
            stopped_after: None,
        };
        if until == Some(Phase::Expand) {
            outcome.stopped_after = until;
            outcome.elapsed_seconds = started.elapsed().as_secs_f64();
            return Ok(outcome);
        }

        let backfill_started = Instant::now();
        let mut tables = Vec::new();
        let backfill_state = self.state.phase_state(Phase::Backfill)?;
        if backfill_state != PhaseState::Completed {
            self.begin(Phase::Backfill, progress)?;
            let result = self.backfill(&targets, progress, &mut tables).await;
            self.end(Phase::Backfill, &result)?;
            result?;
        }
        let backfill_seconds = backfill_started.elapsed().as_secs_f64();
        for plan in &self.plans {
            let done = self.state.table(&plan.target_display())?.unwrap_or_default();
            if !tables.iter().any(|t: &TableOutcome| t.target == done.target) {
                tables.push(TableOutcome {
                    target: done.target.clone(),
                    rows_copied_now: 0,
                    rows_total: done.rows_copied,
                    batches_redone: done.batches_redone,
                });
            }
        }
        outcome.tables = tables;
        outcome.backfill_seconds = backfill_seconds;
        if until == Some(Phase::Backfill) {
            outcome.stopped_after = until;
            outcome.elapsed_seconds = started.elapsed().as_secs_f64();
            return Ok(outcome);
        }

        self.begin(Phase::Verify, progress)?;
        let verification = self.verify_tables(&targets, progress).await;
        let verification = match verification {
            Ok(v) => v,
            Err(e) => {
                self.end(Phase::Verify, &Err::<(), _>(RunError::new(e.kind, e.message.clone())))?;
                return Err(e);
            }
        };
        let passed = verification.iter().all(TableReport::passed);
        if passed {
            self.end(Phase::Verify, &Ok(()))?;
        } else {
            let failing: Vec<&str> = verification.iter().filter(|r| !r.passed()).map(|r| r.target.as_str()).collect();
            self.end(
                Phase::Verify,
                &Err(RunError::new(RunErrorKind::State, format!("differences in {}", failing.join(", ")))),
            )?;
        }
        outcome.verification = verification;
        outcome.elapsed_seconds = started.elapsed().as_secs_f64();
        Ok(outcome)
    }

    /// Verification on demand (`ferry verify`): needs the target tables to exist.
    pub async fn verify(&self, progress: &dyn Progress) -> Result<Vec<TableReport>> {
        self.state
            .audit(&AuditEvent::RunStarted { command: "verify".into(), spec: self.spec.path.display().to_string() })?;
        let targets = self.target_schemas().await?;
        self.verify_tables(&targets, progress).await
    }

    fn begin(&self, phase: Phase, progress: &dyn Progress) -> Result<()> {
        let before = self.state.phase_state(phase)?;
        self.state.start_phase(phase)?;
        if before != PhaseState::Running {
            self.state.audit(&AuditEvent::PhaseStarted { phase })?;
        }
        progress.phase_started(phase);
        Ok(())
    }

    fn end(&self, phase: Phase, result: &Result<()>) -> Result<()> {
        match result {
            Ok(()) => {
                let started = self.state.phase_started_at(phase)?.unwrap_or_else(now);
                let duration_ms = (now() - started).num_milliseconds().max(0) as u64;
                self.state.complete_phase(phase)?;
                self.state.audit(&AuditEvent::PhaseCompleted { phase, duration_ms })?;
            }
            Err(e) => {
                self.state.fail_phase(phase, &e.message)?;
                self.state.audit(&AuditEvent::PhaseFailed { phase, error: e.message.clone() })?;
            }
        }
        Ok(())
    }

    async fn expand(&self, progress: &dyn Progress) -> Result<()> {
        for plan in &self.plans {
            let name = plan.target_display();
            let recorded = self.state.table(&name)?.unwrap_or_default();
            if self.target.table_exists(&plan.target_name).await? {
                let existing = self.target.introspect(&plan.target_name).await?;
                let problems = incompatibilities(plan, &existing);
                if !problems.is_empty() {
                    return Err(RunError::new(
                        RunErrorKind::IncompatibleTarget,
                        format!(
                            "target table {} already exists and cannot take the copy:\n  - {}",
                            plan.target_name,
                            problems.join("\n  - ")
                        ),
                    )
                    .with_hint(format!(
                        "change the target table to match, copy into another table with `to = \"...\"` (spec line {}), or override column types in [table.columns]",
                        plan.spec.line
                    )));
                }
                if !recorded.created_by_ferry {
                    self.state.audit(&AuditEvent::TableReused { table: name.clone() })?;
                    progress.note(&format!("reusing the existing target table {name}"));
                }
            } else {
                let mut def = plan.def.clone();
                if self.target.adds_foreign_keys_later() {
                    def.foreign_keys.clear();
                }
                // Intent first: a crash between the two leaves a table that the next run recognises as its own.
                self.state.set_created_by_ferry(&name)?;
                self.target.create_table(&def).await?;
                self.state
                    .audit(&AuditEvent::TableCreated { table: name.clone(), target: self.target.display_url() })?;
            }
            for (fk, reason) in &plan.skipped_foreign_keys {
                self.state.audit(&AuditEvent::ForeignKeySkipped {
                    table: name.clone(),
                    name: fk.name.clone(),
                    reason: reason.clone(),
                })?;
                progress.note(&format!("{name}: foreign key {} is not recreated: {reason}", fk.name));
            }
        }
        Ok(())
    }

    /// The target tables as they are now (created or reused).
    async fn target_schemas(&self) -> Result<Vec<TableSchema>> {
        let mut out = Vec::new();
        for plan in &self.plans {
            let schema = self.target.introspect(&plan.target_name).await.map_err(|e| {
                RunError::from(e)
                    .context(format_args!("target table {}", plan.target_name))
                    .with_hint("run `ferry run` to create it")
            })?;
            out.push(schema);
        }
        Ok(out)
    }

    async fn backfill(
        &self,
        targets: &[TableSchema],
        progress: &dyn Progress,
        outcomes: &mut Vec<TableOutcome>,
    ) -> Result<()> {
        let backfill = Backfill {
            source: self.source.clone(),
            target: self.target.clone(),
            state: &self.state,
            policy: &self.spec.policy,
            progress,
        };
        for (plan, schema) in self.plans.iter().zip(targets) {
            let write: WriteSpec = plan.write_spec(schema);
            let copied = backfill.table(plan, &write).await?;
            let done = self.state.table(&plan.target_display())?.unwrap_or_default();
            outcomes.push(TableOutcome {
                target: done.target,
                rows_copied_now: copied,
                rows_total: done.rows_copied,
                batches_redone: done.batches_redone,
            });
        }
        // Unique keys and indexes once the data is in (a bulk load into a bare
        // table is several times faster), then foreign keys, so that load
        // order never matters.
        for plan in &self.plans {
            let recorded = self.state.table(&plan.target_display())?.unwrap_or_default();
            if recorded.constraints_done || !recorded.created_by_ferry {
                continue;
            }
            for cols in &plan.def.unique_keys {
                self.target.create_index(&plan.target_name, cols, true).await?;
            }
            for cols in &plan.def.indexes {
                self.target.create_index(&plan.target_name, cols, false).await?;
            }
        }
        for plan in &self.plans {
            let name = plan.target_display();
            let recorded = self.state.table(&name)?.unwrap_or_default();
            if recorded.constraints_done {
                continue;
            }
            if recorded.created_by_ferry && self.target.adds_foreign_keys_later() {
                for fk in &plan.def.foreign_keys {
                    self.target.add_foreign_key(&plan.target_name, fk).await.map_err(|e| {
                        RunError::from(e).with_hint("every child row needs its parent in the target: check that no filter leaves parents behind")
                    })?;
                    self.state.audit(&AuditEvent::ForeignKeyAdded { table: name.clone(), name: fk.name.clone() })?;
                }
            }
            self.state.finish_constraints(&name)?;
        }
        Ok(())
    }

    async fn verify_tables(&self, targets: &[TableSchema], progress: &dyn Progress) -> Result<Vec<TableReport>> {
        let verifier = Verifier {
            source: self.source.clone(),
            target: self.target.clone(),
            sample_size: self.spec.policy.sample_size,
            progress,
        };
        let mut reports = Vec::new();
        for (plan, schema) in self.plans.iter().zip(targets) {
            let types: Vec<DataType> = plan.write_spec(schema).columns.into_iter().map(|(_, t)| t).collect();
            let report = verifier.table(plan, &types).await?;
            let summary = TableVerification {
                at: timestamp(now()),
                passed: report.passed(),
                rows_source: report.rows_source,
                rows_target: report.rows_target,
                checksum_match: report.checksum_match,
                sample_size: report.sample_size,
                sample_mismatches: report.sample_mismatches,
                differences: report.differences_found,
            };
            let json = serde_json::to_string(&report).unwrap_or_default();
            self.state.record_verification(&plan.target_display(), &summary, &json)?;
            self.state.audit(&AuditEvent::IntegrityCheck {
                phase: Phase::Verify,
                table: plan.target_display(),
                rows_expected: report.rows_source,
                rows_actual: report.rows_target,
                checksum_pass: report.checksum_match,
                sample_size: report.sample_size,
                sample_mismatches: report.sample_mismatches,
            })?;
            reports.push(report);
        }
        Ok(reports)
    }
}

/// The method does not start while the spec leaves one of its questions open.
fn check_answered(spec: &Spec) -> Result<()> {
    let open = spec.open_questions();
    if open.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = open.iter().map(|q| q.key).collect();
    let questions: Vec<String> = open.iter().map(|q| format!("  - {}: {}", q.key, q.question)).collect();
    let examples: Vec<&str> = open.iter().map(|q| q.example).collect();
    Err(RunError::new(
        RunErrorKind::Spec,
        format!("{}: the spec leaves {} open:\n{}", spec.path.display(), keys.join(", "), questions.join("\n")),
    )
    .with_hint(format!(
        "answer them under [migration] in {}:\n\n    [migration]\n    {}\n",
        spec.path.display(),
        examples.join("\n    ")
    )))
}

/// The state store remembers which databases it belongs to.
fn check_identity(state: &StateStore, source: &dyn Engine, target: &dyn Engine) -> Result<()> {
    for (key, url) in [("source", source.display_url()), ("target", target.display_url())] {
        match state.meta(key)? {
            None => state.set_meta(key, &url)?,
            Some(recorded) if recorded == url => {}
            Some(recorded) => {
                return Err(RunError::new(
                    RunErrorKind::State,
                    format!(
                    "the state store {} belongs to a migration whose {key} is {recorded}, but the spec now says {url}",
                    state.path().display()
                ),
                )
                .with_hint("set a different [state] url for a new migration, or restore the spec's URL"))
            }
        }
    }
    Ok(())
}

/// `ferry status`: read from the state store only; no database is contacted.
pub fn status(spec: &Spec) -> Result<StatusReport> {
    let path = state_path(spec)?;
    let empty = || StatusReport {
        spec: spec.path.display().to_string(),
        source: ferry_core::spec::redact_for_message(&spec.source_url),
        target: ferry_core::spec::redact_for_message(&spec.target_url),
        phase: None,
        phase_state: PhaseState::NotStarted,
        phases: Vec::new(),
        tables: Vec::new(),
        quarantined_rows: 0,
        verification: None,
    };
    if !path.exists() {
        return Ok(empty());
    }
    let state = StateStore::open(&path)?;
    let phases = state.phases()?;
    let current = phases.iter().filter(|p| p.state != PhaseState::NotStarted).max_by_key(|p| p.number);
    let tables = state.table_statuses()?;
    let verification = if tables.is_empty() || tables.iter().any(|t| t.verification.is_none()) {
        None
    } else if tables.iter().all(|t| t.verification.as_ref().is_some_and(|v| v.passed)) {
        Some("pass".to_string())
    } else {
        Some("fail".to_string())
    };
    Ok(StatusReport {
        source: state.meta("source")?.unwrap_or_else(|| empty().source),
        target: state.meta("target")?.unwrap_or_else(|| empty().target),
        phase: current.and_then(|p| Phase::ALL.into_iter().find(|x| x.number() == p.number)),
        phase_state: current.map_or(PhaseState::NotStarted, |p| p.state),
        quarantined_rows: state.quarantined_rows()?,
        phases,
        tables,
        verification,
        spec: spec.path.display().to_string(),
    })
}
