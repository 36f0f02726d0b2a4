//! The phases, in order, each recorded before and after it acts.

use crate::backfill::Backfill;
use crate::cancel::Cancel;
use crate::connect::{open, Role};
use crate::error::{Result, RunError, RunErrorKind};
use crate::integrity::{custom_checks, run_check, schema_check, table_checks, CheckResult};
use crate::machine::{advance, permit};
use crate::mapping::{plan_tables, Mode, TablePlan};
use crate::progress::Progress;
use crate::state::{now, timestamp, Direction, StateLocation, StateStore};
use crate::sync::Replayer;
use crate::throttle::Throttle;
use crate::verify::{TableReport, Verifier};
use ferry_core::lifecycle::{Command, Event, Stage, State, TableStage};
use ferry_core::spec::CheckOn;
use ferry_core::status::{PhaseState, StatusReport, TableVerification};
use ferry_core::{AuditEvent, ColumnSource, DataType, Phase, Spec, TableSchema};
use ferry_engine::{DatabaseUrl, Engine, LockGuard, WriteSpec};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A migration with its databases connected, its state open and its locks held.
pub struct Migration {
    pub spec: Spec,
    /// Asks everything this migration runs to stop at its next batch boundary.
    pub cancel: Cancel,
    /// Who runs the commands, for the audit log.
    pub operator: String,
    pub state: StateStore,
    pub source: Arc<dyn Engine>,
    pub target: Arc<dyn Engine>,
    pub plans: Vec<TablePlan>,
    /// This process, as its chunk leases and the workers' list name it.
    pub(crate) owner: String,
    _state_lock: Option<crate::state::StateLock>,
    _target_lock: Option<LockGuard>,
    /// While this process drives the migration, it says so every few seconds.
    _heartbeat: Option<crate::Heartbeat>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableOutcome {
    pub target: String,
    pub rows_copied_now: u64,
    pub rows_total: u64,
    pub batches_redone: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutcome {
    pub tables: Vec<TableOutcome>,
    pub backfill_seconds: f64,
    pub verification: Vec<TableReport>,
    pub checks: Vec<CheckResult>,
    pub elapsed_seconds: f64,
    /// Set when `--until` stopped the run before verification.
    pub stopped_after: Option<Phase>,
    /// A change in place: the backfill filled new columns, it copied nothing.
    pub in_place: bool,
    /// The plan's estimate and this run's time, when the run did all the estimate covers.
    pub estimate: Option<EstimateCheck>,
}

/// `ferry plan`'s estimate of a run, and what the run took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstimateCheck {
    pub estimated_ms: u64,
    pub low_ms: u64,
    pub high_ms: u64,
    pub actual_ms: u64,
    /// Each phase the run went through: estimated and actual milliseconds.
    pub phases: Vec<(Phase, u64, u64)>,
}

impl EstimateCheck {
    /// How many times the estimate the run took.
    pub fn ratio(&self) -> f64 {
        self.actual_ms as f64 / (self.estimated_ms.max(1)) as f64
    }

    /// Whether the run took a time inside the estimate's range.
    pub fn within_range(&self) -> bool {
        (self.low_ms..=self.high_ms).contains(&self.actual_ms)
    }

    /// `expand 90/120 ms, backfill …`: each phase's estimate and time.
    pub fn by_phase(&self) -> String {
        self.phases
            .iter()
            .map(|(phase, estimated, actual)| format!("{} {estimated}/{actual} ms", phase.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl RunOutcome {
    pub fn verified(&self) -> bool {
        !self.verification.is_empty()
            && self.verification.iter().all(TableReport::passed)
            && self.checks.iter().all(|c| c.passed)
    }

    /// Whether the run did what was asked: verified, or stopped where told to.
    pub fn succeeded(&self) -> bool {
        self.stopped_after.is_some() || self.verified()
    }
}

/// How `ferry verify` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Re-copy the rows found different from the source, then look again.
    pub repair: bool,
    /// Start over instead of continuing a stopped verification.
    pub restart: bool,
}

/// What `ferry verify` found: the tables compared, the integrity checks, and any repair.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub started_at: String,
    pub duration_ms: u64,
    pub tables: Vec<TableReport>,
    pub checks: Vec<CheckResult>,
    pub repairs: Vec<Repair>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.tables.iter().all(TableReport::passed) && self.checks.iter().all(|c| c.passed)
    }
}

/// What `--repair` did to one table.
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    pub table: String,
    /// Rows found different before the repair.
    pub differences: u64,
    pub upserted: u64,
    pub deleted: u64,
    /// Rows still different when looked at again after the repair.
    pub still_different: u64,
}

/// Where the state store of a spec lives: `[state] url` (a SQLite file by
/// default, or a schema of a PostgreSQL database several machines share).
pub fn state_location(spec: &Spec) -> Result<StateLocation> {
    let local_dir = |spec: &Spec| -> Result<PathBuf> {
        let default = DatabaseUrl::parse(&ferry_core::spec::default_state_url(&spec.path), &spec.base_dir())?;
        match default {
            DatabaseUrl::Sqlite(path) => Ok(path.parent().map(Path::to_path_buf).unwrap_or_default()),
            _ => Err(RunError::state("the default state store is a SQLite file")),
        }
    };
    match DatabaseUrl::parse(&spec.state_url, &spec.base_dir()).map_err(RunError::from)? {
        DatabaseUrl::Sqlite(path) => {
            // A migration started before each spec had a store of its own goes on in the shared one.
            if spec.state_url == ferry_core::spec::default_state_url(&spec.path) && !path.exists() {
                if let DatabaseUrl::Sqlite(legacy) =
                    DatabaseUrl::parse(ferry_core::spec::LEGACY_STATE_URL, &spec.base_dir()).map_err(RunError::from)?
                {
                    if legacy.exists() {
                        return Ok(StateLocation::File(legacy));
                    }
                }
            }
            Ok(StateLocation::File(path))
        }
        DatabaseUrl::Postgres(_) => Ok(StateLocation::Postgres {
            url: spec.state_url.clone(),
            schema: ferry_core::spec::state_schema(&spec.path),
            local: local_dir(spec)?,
        }),
        _ => Err(RunError::state("the state store is a SQLite file or a PostgreSQL database")
            .with_hint("set [state] url to sqlite:PATH or postgres://USER@HOST/DATABASE")),
    }
}

impl Migration {
    /// Connects both databases and plans every table. With `exclusive`, takes
    /// the locks that keep a second runner off this migration.
    pub async fn open(spec: Spec, exclusive: bool) -> Result<Migration> {
        Migration::open_with(spec, exclusive, crate::Invocation::default()).await
    }

    /// [`Migration::open`] for a command: stopping when its token says so,
    /// recording its operator in the audit log.
    pub async fn open_with(spec: Spec, exclusive: bool, invocation: crate::Invocation) -> Result<Migration> {
        let mut migration = Migration::connect(spec, exclusive).await?;
        migration.cancel = invocation.cancel;
        if !invocation.operator.is_empty() {
            migration.operator = invocation.operator;
        }
        if exclusive {
            // This process now drives the migration: a throttle pause left by a
            // killed runner held only while that one lived. (Not in Throttle::new:
            // `ferry verify` beside a runner makes a throttle too, and must not
            // clear the runner's pause.)
            migration.state.set_pause("throttle", None)?;
            migration.state.set_pace(None)?;
            let command = if invocation.command.is_empty() { "run" } else { invocation.command.as_str() };
            migration._heartbeat = Some(crate::Heartbeat::start(migration.state.location(), command)?);
        }
        Ok(migration)
    }

    async fn connect(spec: Spec, exclusive: bool) -> Result<Migration> {
        if exclusive {
            check_answered(&spec)?;
        }
        let state = StateStore::open_at(&state_location(&spec)?)?;
        // Past contract the source tables may be gone: say so before looking for them.
        if state.lifecycle()? == State::at(Stage::Completed) {
            return Err(RunError::new(
                RunErrorKind::State,
                "the migration is completed: contract passed the point of no return, and nothing runs on it any more \
                 (`ferry rollback` included)",
            )
            .with_hint(format!(
                "`ferry status` shows what it did; a new migration needs a [state] url of its own in {}",
                spec.path.display()
            )));
        }
        let state_lock = if exclusive {
            Some(state.lock()?.ok_or_else(|| {
                RunError::new(
                    RunErrorKind::Locked,
                    format!("another ferry process is running this migration (state {} is locked)", state.describe()),
                )
                .with_hint("wait for it to finish, or stop it; two runners must never drive one migration")
            })?)
        } else {
            None
        };
        let base = spec.base_dir();
        let source = open(&spec.source_url, &base, Role::Source).await?;
        let target = open(&spec.target_url, &base, Role::Target).await?;
        Migration::assemble(spec, state, state_lock, source, target, exclusive).await
    }

    /// A migration of `spec` between two engines already connected (the
    /// rehearsal's scratch databases, say), its state in `state`.
    pub(crate) async fn assemble(
        spec: Spec,
        state: StateStore,
        state_lock: Option<crate::state::StateLock>,
        source: Arc<dyn Engine>,
        target: Arc<dyn Engine>,
        exclusive: bool,
    ) -> Result<Migration> {
        // Every statement watched: a frozen server or a silent network is a lost connection, not a hang.
        let source: Arc<dyn Engine> = Arc::new(ferry_engine::Watched::new(source, spec.policy.liveness_check));
        let target: Arc<dyn Engine> = Arc::new(ferry_engine::Watched::new(target, spec.policy.liveness_check));
        check_capture_method(&spec, &*source).await?;
        let scope = state.capture_scope(&spec.path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default())?;
        source.set_capture_scope(scope.clone());
        target.set_capture_scope(scope);
        check_identity(&state, &*source, &*target)?;
        let target_lock = if exclusive {
            let mut names: Vec<&str> = spec.tables.iter().map(|t| t.to.as_str()).collect();
            names.sort();
            // MySQL locks are server-wide: the name must say which database.
            let lock_name = format!("ferry/{}/{}", target.display_url(), names.join(","));
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
        // A contract killed after archiving some source tables finds them gone.
        let mode = match state.lifecycle()? {
            State::At { stage: Stage::Contracting } => Mode::Contract,
            State::At { stage: Stage::Planned } | State::RolledBack => Mode::Run,
            // Expand may have run: an in-place change finds its own columns on the table.
            _ => Mode::Expanded,
        };
        let plans = plan_tables(&spec, &*source, &*target, mode).await?;
        let mut spec_changed = false;
        // Only a runner records tables; `ferry verify` reads what is there.
        for (i, plan) in plans.iter().enumerate().filter(|_| exclusive) {
            let fingerprint = Spec::table_fingerprint(&plan.spec);
            let known = state.table(&plan.target_display())?.is_some();
            let progress =
                state.register_table(&plan.target_display(), &plan.source_name.to_string(), &fingerprint, i)?;
            spec_changed |= !known;
            if progress.fingerprint != fingerprint {
                if progress.rows_copied > 0 || progress.stage.copied() {
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
        // (tables already copied are skipped by their own stages).
        if spec_changed && exclusive && state.lifecycle()? != State::PLANNED {
            if matches!(state.lifecycle()?, State::At { stage } if stage.past_switch()) {
                return Err(RunError::new(
                    RunErrorKind::State,
                    format!("{}: the spec gained or changed a table after writes switched", spec.path.display()),
                )
                .with_hint(
                    "restore the spec as it was at the switch; move further tables in a migration of their own",
                ));
            }
            if matches!(state.lifecycle()?, State::At { .. }) {
                advance(&state, Event::TablesAdded)?;
            }
            state.reset_phases(&[Phase::Expand, Phase::Backfill, Phase::Verify])?;
        }
        Ok(Migration {
            spec,
            cancel: Cancel::default(),
            operator: operator_from_env(),
            state,
            source,
            target,
            plans,
            owner: crate::heartbeat::owner_id(),
            _heartbeat: None,
            _state_lock: state_lock,
            _target_lock: target_lock,
        })
    }

    /// expand -> backfill -> verify, resuming wherever an earlier run stopped.
    /// With `until`, stops once that phase is complete.
    pub async fn run(&self, until: Option<Phase>, progress: &dyn Progress) -> Result<RunOutcome> {
        let mut outcome = if self.in_place() {
            self.run_in_place(until, progress).await?
        } else {
            self.run_move(until, progress).await?
        };
        outcome.estimate = self.check_estimate(&outcome)?;
        Ok(outcome)
    }

    /// The plan's estimate against this run, when this run did all the
    /// estimate covers (every row copied, and verified, in this run): audited
    /// (`estimate-checked`) and returned for the summary.
    fn check_estimate(&self, outcome: &RunOutcome) -> Result<Option<EstimateCheck>> {
        let Some(estimate) = self
            .state
            .meta(crate::assess::PLAN_ESTIMATE)?
            .and_then(|v| serde_json::from_str::<ferry_plan::Estimate>(&v).ok())
        else {
            return Ok(None);
        };
        let whole = outcome.stopped_after.is_none()
            && !outcome.verification.is_empty()
            && !outcome.tables.is_empty()
            && outcome.tables.iter().all(|t| t.rows_copied_now == t.rows_total);
        if !whole {
            return Ok(None);
        }
        let ms = |seconds: f64| (seconds * 1000.0).round() as u64;
        let recorded = self.state.phases()?;
        let phases = [Phase::Expand, Phase::Backfill, Phase::Sync, Phase::Verify]
            .into_iter()
            .filter_map(|phase| {
                let r = recorded.iter().find(|r| r.number == phase.number())?;
                let took = elapsed_ms(r.started_at.as_deref()?, r.completed_at.as_deref()?)?;
                Some((phase, ms(estimate.phase_seconds(phase)), took))
            })
            .collect();
        let check = EstimateCheck {
            estimated_ms: ms(estimate.seconds),
            low_ms: ms(estimate.low_seconds),
            high_ms: ms(estimate.high_seconds),
            actual_ms: ms(outcome.elapsed_seconds),
            phases,
        };
        self.state.audit(&AuditEvent::EstimateChecked {
            estimated_ms: check.estimated_ms,
            low_ms: check.low_ms,
            high_ms: check.high_ms,
            actual_ms: check.actual_ms,
            by_phase: check.by_phase(),
        })?;
        Ok(Some(check))
    }

    async fn run_move(&self, until: Option<Phase>, progress: &dyn Progress) -> Result<RunOutcome> {
        let started = Instant::now();
        let state = permit(&self.state, Command::Run)?;
        self.state
            .audit(&AuditEvent::RunStarted { command: "run".into(), spec: self.spec.path.display().to_string() })?;

        if matches!(state, State::RolledBack | State::At { stage: Stage::Planned | Stage::Expanding }) {
            advance(&self.state, Event::ExpandStarted)?;
            self.begin(Phase::Expand, progress)?;
            let result = self.expand(progress).await;
            self.end(Phase::Expand, &result)?;
            result?;
            advance(&self.state, Event::Expanded)?;
        }
        let targets = self.target_schemas().await?;
        let mut outcome = RunOutcome::default();
        if until == Some(Phase::Expand) {
            outcome.stopped_after = until;
            outcome.elapsed_seconds = started.elapsed().as_secs_f64();
            return Ok(outcome);
        }

        let writes: Vec<WriteSpec> = self.plans.iter().zip(&targets).map(|(p, t)| p.write_spec(t)).collect();
        let backfill_started = Instant::now();
        let mut tables = Vec::new();
        if self.state.lifecycle()? == State::at(Stage::Backfilling) {
            self.begin(Phase::Backfill, progress)?;
            // Tables whose backfill is done are replayed while the others
            // copy, under one throttle: one pause holds both.
            let throttle = self.throttle(progress).await?;
            let finished = std::cell::Cell::new(false);
            let (result, replayed) = tokio::join!(
                async {
                    let r = self.backfill(&targets, progress, &throttle, &mut tables).await;
                    finished.set(true);
                    r
                },
                // The backfill's workers hold the other connections meanwhile.
                self.replay_while(&writes, progress, &throttle, false, || !finished.get())
            );
            let result = result.and(replayed);
            self.end(Phase::Backfill, &result)?;
            result?;
            advance(&self.state, Event::Backfilled)?;
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

        if self.capturing()? {
            self.begin(Phase::Sync, progress)?;
            let result = self.drain(&writes, progress, false).await;
            self.end(Phase::Sync, &result)?;
            result?;
        }

        self.begin(Phase::Verify, progress)?;
        let verification = self.verify_settled(&targets, &writes, progress).await;
        let verification = match verification {
            Ok(v) => v,
            // Stopped as asked: the phase stays running and resumes from its checkpoint.
            Err(e) if e.kind == RunErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.end(Phase::Verify, &Err::<(), _>(RunError::new(e.kind, e.message.clone())))?;
                return Err(e);
            }
        };
        let checks = self.integrity_checks(progress).await?;
        let mut failing: Vec<String> =
            verification.iter().filter(|r| !r.passed()).map(|r| format!("differences in {}", r.target)).collect();
        failing.extend(checks.iter().filter(|c| !c.passed).map(|c| format!("check failed: {}", c.name)));
        if failing.is_empty() {
            self.end(Phase::Verify, &Ok(()))?;
        } else {
            self.end(Phase::Verify, &Err(RunError::new(RunErrorKind::State, failing.join("; "))))?;
        }
        advance(&self.state, Event::VerifyFinished { passed: failing.is_empty() })?;
        outcome.verification = verification;
        outcome.checks = checks;
        outcome.elapsed_seconds = started.elapsed().as_secs_f64();
        Ok(outcome)
    }

    /// Whether change capture is installed on any source table.
    fn capturing(&self) -> Result<bool> {
        for plan in &self.plans {
            if self.state.table_stage(&plan.target_display())?.capturing() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether replay may run for `plan`'s table: its capture is installed
    /// and its existing rows are copied (until then replay would write rows
    /// the backfill writes anyway, see sync.rs).
    fn replays(&self, plan: &TablePlan) -> Result<bool> {
        Ok(self.state.table_stage(&plan.target_display())?.copied())
    }

    fn replayer<'s>(&'s self, backfill: &'s Backfill<'s>) -> Replayer<'s> {
        Replayer {
            source: self.source.clone(),
            target: self.target.clone(),
            state: &self.state,
            backfill,
            batch: self.spec.policy.batch_size,
            reverse: false,
            go_on: None,
            helpers: Vec::new(),
        }
    }

    /// Connections a replay spreads large batches over besides the
    /// migration's own: one pair per further worker (`[policy] workers`).
    async fn replay_helpers(&self, progress: &dyn Progress) -> Vec<crate::backfill::Lane> {
        self.lanes(progress).await.into_iter().skip(1).collect()
    }

    /// Keeps `heartbeat` going for as long as this migration is open.
    pub(crate) fn set_heartbeat(&mut self, heartbeat: crate::Heartbeat) {
        self._heartbeat = Some(heartbeat);
    }

    pub(crate) fn backfiller<'s>(
        &'s self,
        progress: &'s dyn Progress,
        throttle: Option<&'s Throttle<'s>>,
    ) -> Backfill<'s> {
        Backfill {
            cancel: &self.cancel,
            source: self.source.clone(),
            target: self.target.clone(),
            state: &self.state,
            policy: &self.spec.policy,
            progress,
            throttle,
            owner: &self.owner,
        }
    }

    pub(crate) async fn throttle<'s>(&'s self, progress: &'s dyn Progress) -> Result<Throttle<'s>> {
        Throttle::new(
            self.throttle_connection(progress).await,
            &self.state,
            &self.spec.policy,
            &self.plans,
            progress,
            self.cancel.clone(),
        )
        .await
    }

    /// The workers' connections (backfill, verification, replay): the migration's own, and for
    /// each further worker (`[policy] workers`) one to each side, watched
    /// like the migration's. Fewer when a connection cannot be had (said).
    pub(crate) async fn lanes(&self, progress: &dyn Progress) -> Vec<crate::backfill::Lane> {
        let workers = self.spec.policy.workers_for(self.target.capabilities().concurrent_writers);
        let mut lanes = vec![crate::backfill::Lane { source: self.source.clone(), target: self.target.clone() }];
        while lanes.len() < workers {
            // Connections to the databases this migration has open (a rehearsal's are scratch copies).
            let opened = async {
                let source = self.source.connect_again().await.map_err(|e| RunError::from(e).context(Role::Source))?;
                let target = self.target.connect_again().await.map_err(|e| RunError::from(e).context(Role::Target))?;
                Ok::<_, RunError>(crate::backfill::Lane { source, target })
            };
            match opened.await {
                Ok(lane) => lanes.push(lane),
                Err(e) => {
                    progress.note(&format!(
                        "going on with {} worker(s) of the {workers} asked: another connection failed: {}",
                        lanes.len(),
                        e.message
                    ));
                    break;
                }
            }
        }
        lanes
    }

    /// Removes this migration's checkpoints from the target, and the
    /// checkpoint table with them unless another migration into the same
    /// database still keeps its own there.
    pub(crate) async fn forget_checkpoints(&self) -> Result<()> {
        let name = ferry_engine::Checkpoint::table_name();
        if !self.target.table_exists(&name).await? {
            return Ok(());
        }
        let mut keys = Vec::new();
        for plan in &self.plans {
            let target = plan.target_display();
            keys.push(ferry_engine::Checkpoint::key(&target, ferry_engine::Checkpoint::SEALED));
            for chunk in self.state.chunks(&target)? {
                keys.push(ferry_engine::Checkpoint::key(&target, chunk.chunk));
            }
        }
        self.target.delete_keys(&ferry_engine::Checkpoint::write_spec(), &keys).await?;
        if self.target.count(&name, None).await? == 0 {
            self.target.drop_scratch_table(&name).await?;
        }
        Ok(())
    }

    /// A connection of the throttle's own to the source, to read its load,
    /// time its probe or ask for replica lag: on the copy's connection each reading would wait for the
    /// read running ahead of the writes, and the copy would lose that overlap
    /// (measured: 15-20 % of the copy's speed; and a probe timed behind a read
    /// measures the read). The copy's connection when there is no server
    /// to ask, or a second connection cannot be had.
    async fn throttle_connection(&self, progress: &dyn Progress) -> Arc<dyn Engine> {
        if self.spec.policy.throttle == ferry_core::spec::ThrottleMode::Off || !self.source.capabilities().server {
            return self.source.clone();
        }
        // Watched like the copy's (connect_again keeps the watch): a frozen
        // server is a lost connection here too, not a hang.
        match self.source.connect_again().await {
            Ok(engine) => engine,
            Err(e) => {
                progress.note(&format!(
                    "the throttle reads the source's load on the copy's connection (a second one failed: {})",
                    e.message()
                ));
                self.source.clone()
            }
        }
    }

    /// Replays tables whose backfill is complete for as long as `go_on` says.
    pub(crate) async fn replay_while<'s>(
        &'s self,
        writes: &[WriteSpec],
        progress: &'s dyn Progress,
        throttle: &'s Throttle<'s>,
        spread: bool,
        go_on: impl Fn() -> bool,
    ) -> Result<()> {
        let backfill = self.backfiller(progress, Some(throttle));
        let helpers = if spread { self.replay_helpers(progress).await } else { Vec::new() };
        let replayer = Replayer { go_on: Some(&go_on), helpers, ..self.replayer(&backfill) };
        let mut collected: Option<Instant> = None;
        let order = crate::sync::replay_order(&self.plans);
        let mut holds = crate::sync::Holds::default();
        while go_on() {
            let mut work = 0;
            // Also while tables are still in backfill, so that a logical slot
            // never holds much WAL for Ferry; but at most every COLLECT_EVERY:
            // each read of the slot through SQL decodes again from its restart
            // point, which is up to 15 s of WAL behind on a busy server.
            if collected.is_none_or(|at| at.elapsed() >= COLLECT_EVERY) {
                self.measure_capture_log(progress).await?;
                self.source.collect_changes().await?;
                collected = Some(Instant::now());
            }
            for &i in &order {
                let (plan, write) = (&self.plans[i], &writes[i]);
                if !go_on() || self.cancel.requested() {
                    break;
                }
                if self.replays(plan)? {
                    work += replayer.step_or_hold(plan, write, &mut holds).await?.changes;
                }
            }
            holds.end_round(work).await?;
            if work == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.cancel.check()?;
        }
        Ok(())
    }

    /// Replays until every backfilled table has caught up: nothing pending, or
    /// (unless `to_empty`) less than one batch pending and younger than the lag threshold.
    /// Records how much log the source keeps for log-based capture (before
    /// Ferry reads it: the distance it is behind), and warns
    /// when it grows past `[policy] max_retained` (once per crossing).
    async fn measure_capture_log(&self, progress: &dyn Progress) -> Result<()> {
        let Some(bytes) = self.source.capture_retained_bytes().await? else { return Ok(()) };
        let limit = self.spec.policy.max_retained_bytes;
        let before: Option<u64> = self.state.meta("capture_retained_bytes")?.and_then(|b| b.parse().ok());
        if bytes > limit && before.is_none_or(|b| b <= limit) {
            progress.note(&format!(
                "the source keeps {} of log for Ferry's capture, above [policy] max_retained ({}): \
                 keep `ferry sync` running, or the source's disk fills",
                ferry_plan::document::bytes(bytes),
                ferry_plan::document::bytes(limit)
            ));
        }
        self.state.set_meta("capture_retained_bytes", &bytes.to_string())?;
        self.state.set_meta("capture_retained_at", &crate::state::timestamp(crate::state::now()))
    }

    pub async fn drain(&self, writes: &[WriteSpec], progress: &dyn Progress, to_empty: bool) -> Result<()> {
        let throttle = self.throttle(progress).await?;
        let backfill = self.backfiller(progress, Some(&throttle));
        let replayer = Replayer { helpers: self.replay_helpers(progress).await, ..self.replayer(&backfill) };
        let task = "sync".to_string();
        let mut started = false;
        let order = crate::sync::replay_order(&self.plans);
        let mut holds = crate::sync::Holds::default();
        let mut measured: Option<Instant> = None;
        loop {
            let mut caught_up = true;
            let mut pending = 0;
            let mut work = 0;
            // Collected every round, measured at most every COLLECT_EVERY: a
            // draining round can be 50 ms, and each measure writes the state store.
            if measured.is_none_or(|at| at.elapsed() >= COLLECT_EVERY) {
                self.measure_capture_log(progress).await?;
                measured = Some(Instant::now());
            }
            self.source.collect_changes().await?;
            for &i in &order {
                let (plan, write) = (&self.plans[i], &writes[i]);
                // A table still waiting for its backfill keeps its changes
                // queued (see sync.rs): nothing to catch up yet.
                if !self.replays(plan)? {
                    continue;
                }
                let step = replayer.step_or_hold(plan, write, &mut holds).await?;
                work += step.changes;
                pending += step.lag.pending;
                let young = step.lag.oldest_seconds.is_none_or(|s| s < self.spec.policy.max_lag.as_secs_f64());
                caught_up &= step.lag.pending == 0
                    || (!to_empty && step.lag.pending < self.spec.policy.batch_size as u64 && young);
            }
            if !started {
                progress.task_started(&task, Some(pending + work as u64), 0);
                started = true;
            }
            progress.advanced(&task, work as u64);
            self.cancel.check()?;
            let held = holds.any();
            holds.end_round(work).await?;
            if caught_up || (work == 0 && !to_empty && !held) {
                progress.task_finished(&task);
                return Ok(());
            }
        }
    }

    /// `ferry sync` / `--follow`: keeps replaying until stopped. Stopped as
    /// asked (Ctrl-C, SIGTERM), it returns the `Interrupted` error; it
    /// returns `Ok` only when it ended by itself (a soak trigger rolled back).
    pub async fn follow(&self, progress: &dyn Progress) -> Result<()> {
        self.refuse_in_place("sync --follow")?;
        let result = if self.state.lifecycle()? == State::at(Stage::Switched) {
            self.sync_reverse(progress, true).await
        } else {
            let targets = self.target_schemas().await?;
            let writes: Vec<WriteSpec> = self.plans.iter().zip(&targets).map(|(p, t)| p.write_spec(t)).collect();
            progress.note("following changes; Ctrl-C or SIGTERM stops at the next batch boundary");
            let throttle = self.throttle(progress).await?;
            self.replay_while(&writes, progress, &throttle, true, || !self.cancel.requested()).await
        };
        match result {
            Ok(()) if self.cancel.requested() => Err(crate::cancel::interrupted()),
            other => other,
        }
    }

    /// `ferry sync`: replays until caught up.
    pub async fn sync(&self, progress: &dyn Progress) -> Result<()> {
        self.refuse_in_place("sync")?;
        if permit(&self.state, Command::Sync)? == State::at(Stage::Switched) {
            return self.sync_reverse(progress, false).await;
        }
        let targets = self.target_schemas().await?;
        let writes: Vec<WriteSpec> = self.plans.iter().zip(&targets).map(|(p, t)| p.write_spec(t)).collect();
        self.begin(Phase::Sync, progress)?;
        let result = self.drain(&writes, progress, true).await;
        self.end(Phase::Sync, &result)?;
        result?;
        self.advance_identities(progress).await
    }

    /// Verification that tells a row still being written from a lost one:
    /// rows that differ are checked again after replay has caught up, a few
    /// times, and only those that still differ are reported.
    pub(crate) async fn verify_settled(
        &self,
        targets: &[TableSchema],
        writes: &[WriteSpec],
        progress: &dyn Progress,
    ) -> Result<Vec<TableReport>> {
        let mut reports = self.verify_tables(targets, progress).await?;
        let switched = self.writes_to()? == crate::switch::Side::Target;
        if !self.capturing()? && !switched {
            return Ok(reports);
        }
        let verifier = self.verifier(progress, 0);
        for round in 0..SETTLE_ROUNDS {
            if reports.iter().all(TableReport::passed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 * (round as u64 + 1))).await;
            if switched {
                self.drain_reverse(&self.reverse_plans(targets)?, progress, false).await?;
            } else {
                self.drain(writes, progress, false).await?;
            }
            for ((plan, write), report) in self.plans.iter().zip(writes).zip(reports.iter_mut()) {
                if report.passed() || report.differences_truncated {
                    continue;
                }
                let types: Vec<DataType> = write.columns.iter().map(|(_, t)| t.clone()).collect();
                verifier.recheck(plan, &types, report).await?;
            }
        }
        for (plan, report) in self.plans.iter().zip(&reports) {
            self.record_report(plan, report)?;
        }
        Ok(reports)
    }

    /// Verification on demand (`ferry verify`): needs the target tables to exist.
    pub async fn verify(&self, progress: &dyn Progress, options: VerifyOptions) -> Result<Verification> {
        let started = Instant::now();
        let started_at = timestamp(now());
        permit(&self.state, Command::Verify)?;
        self.state
            .audit(&AuditEvent::RunStarted { command: "verify".into(), spec: self.spec.path.display().to_string() })?;
        if self.in_place() {
            let changes = self.changes().await?;
            let (tables, checks) = self.verify_in_place(&changes, progress).await?;
            return Ok(Verification {
                started_at,
                duration_ms: started.elapsed().as_millis() as u64,
                tables,
                checks,
                repairs: Vec::new(),
            });
        }
        if options.restart {
            for plan in &self.plans {
                self.state.clear_verify_checkpoint(&plan.target_display())?;
            }
        }
        let targets = self.target_schemas().await?;
        let writes: Vec<WriteSpec> = self.plans.iter().zip(&targets).map(|(p, t)| p.write_spec(t)).collect();
        // While the application writes, rows written during the comparison
        // settle after replay: the result recorded is the settled one.
        let mut tables = self.verify_settled(&targets, &writes, progress).await?;
        let mut repairs = Vec::new();
        if options.repair {
            repairs = self.repair(&targets, &mut tables, progress).await?;
            for (plan, report) in self.plans.iter().zip(&tables) {
                self.record_report(plan, report)?;
            }
        }
        let checks = self.integrity_checks(progress).await?;
        let verification =
            Verification { started_at, duration_ms: started.elapsed().as_millis() as u64, tables, checks, repairs };
        advance(&self.state, Event::VerifyFinished { passed: verification.passed() })?;
        Ok(verification)
    }

    /// Re-copies the rows verification found different from the source, then
    /// looks at exactly those rows again.
    async fn repair(
        &self,
        targets: &[TableSchema],
        reports: &mut [TableReport],
        progress: &dyn Progress,
    ) -> Result<Vec<Repair>> {
        let backfill = self.backfiller(progress, None);
        let mut repairs = Vec::new();
        for ((plan, schema), report) in self.plans.iter().zip(targets).zip(reports.iter_mut()) {
            if report.keys.is_empty() {
                continue;
            }
            let write = plan.write_spec(schema);
            let types: Vec<DataType> = write.columns.iter().map(|(_, t)| t.clone()).collect();
            let keys = report.keys.clone();
            let mut upserted = 0;
            let mut deleted = 0;
            for batch in keys.chunks(self.spec.policy.batch_size.max(1)) {
                let (u, d) =
                    crate::sync::copy_keys(&*self.source, &*self.target, &backfill, plan, &write, batch).await?;
                upserted += u as u64;
                deleted += d as u64;
            }
            let found_before = report.differences_found;
            // The report shown and recorded is a verification of the repaired
            // table, every figure measured after the repair.
            let full = self.verifier(progress, self.spec.policy.sample_size);
            *report = full.table(plan, &types, Some(&self.state)).await?;
            let repair = Repair {
                table: plan.target_display(),
                differences: found_before,
                upserted,
                deleted,
                still_different: report.differences_found,
            };
            self.state.audit(&AuditEvent::RowsRepaired {
                table: repair.table.clone(),
                upserted,
                deleted,
                remaining: repair.still_different,
            })?;
            progress.note(&format!(
                "repaired {}: {upserted} row(s) re-copied from the source, {deleted} deleted, {} still different",
                repair.table, repair.still_different
            ));
            repairs.push(repair);
        }
        Ok(repairs)
    }

    /// Foreign keys, NOT NULL and unique keys of every table on the target,
    /// the schema expand promised, then the spec's own `[[check]]`s; each
    /// recorded in the audit log. Identities are first moved beyond the keys
    /// replay may have added since the backfill.
    pub(crate) async fn integrity_checks(&self, progress: &dyn Progress) -> Result<Vec<CheckResult>> {
        self.advance_identities(progress).await?;
        let plans: Vec<&TablePlan> = self.plans.iter().collect();
        let mut results = Vec::new();
        for plan in &self.plans {
            for (name, kind, sql) in table_checks(plan, &*self.target, &plans) {
                results.push(run_check(&*self.target, name, kind, CheckOn::Target, sql, 0).await?);
            }
            if self.state.table(&plan.target_display())?.unwrap_or_default().created_by_ferry {
                results.push(schema_check(plan, &*self.target).await?);
            }
        }
        results.extend(custom_checks(&self.spec.checks, &*self.source, &*self.target).await?);
        self.record_checks(&results)?;
        Ok(results)
    }

    /// Each integrity check's result, in the audit log.
    pub(crate) fn record_checks(&self, results: &[CheckResult]) -> Result<()> {
        for r in results {
            self.state.audit(&AuditEvent::CheckRun {
                name: r.name.clone(),
                expected: r.expected,
                actual: r.actual,
                passed: r.passed,
            })?;
        }
        Ok(())
    }

    fn verifier<'s>(&'s self, progress: &'s dyn Progress, sample_size: usize) -> Verifier<'s> {
        Verifier {
            source: self.source.clone(),
            target: self.target.clone(),
            sample_size,
            chunk_rows: self.spec.policy.verify_chunk_rows,
            progress,
            cancel: self.cancel.clone(),
        }
    }

    pub(crate) fn begin(&self, phase: Phase, progress: &dyn Progress) -> Result<()> {
        let before = self.state.phase_state(phase)?;
        self.state.start_phase(phase)?;
        if before != PhaseState::Running {
            self.state.audit(&AuditEvent::PhaseStarted { phase, operator: self.operator.clone() })?;
        }
        progress.phase_started(phase);
        Ok(())
    }

    pub(crate) fn end(&self, phase: Phase, result: &Result<()>) -> Result<()> {
        match result {
            Ok(()) => {
                let started = self.state.phase_started_at(phase)?.unwrap_or_else(now);
                let duration_ms = (now() - started).num_milliseconds().max(0) as u64;
                self.state.complete_phase(phase)?;
                self.state.audit(&AuditEvent::PhaseCompleted { phase, duration_ms })?;
            }
            Err(e) if e.kind == RunErrorKind::Interrupted => {
                self.state.stop_phase(phase)?;
                self.state.audit(&AuditEvent::PhaseStopped { phase })?;
            }
            Err(e) => {
                self.state.fail_phase(phase, &e.message)?;
                self.state.audit(&AuditEvent::PhaseFailed {
                    phase,
                    error: e.message.clone(),
                    code: e.code().to_string(),
                })?;
            }
        }
        Ok(())
    }

    /// The target tables as they are now (created or reused).
    pub(crate) async fn target_schemas(&self) -> Result<Vec<TableSchema>> {
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

    async fn backfill<'s>(
        &'s self,
        targets: &[TableSchema],
        progress: &'s dyn Progress,
        throttle: &'s Throttle<'s>,
        outcomes: &mut Vec<TableOutcome>,
    ) -> Result<()> {
        let backfill = self.backfiller(progress, Some(throttle));
        let writes: Vec<WriteSpec> = self.plans.iter().zip(targets).map(|(p, t)| p.write_spec(t)).collect();
        let tables: Vec<(&TablePlan, &WriteSpec)> = self.plans.iter().zip(&writes).collect();
        let lanes = self.lanes(progress).await;
        let copied = backfill.tables(&tables, &lanes).await?;
        for (plan, copied) in self.plans.iter().zip(copied) {
            let done = self.state.table(&plan.target_display())?.unwrap_or_default();
            outcomes.push(TableOutcome {
                target: done.target,
                rows_copied_now: copied,
                rows_total: done.rows_copied,
                batches_redone: done.batches_redone,
            });
        }
        // Every table's copy is durable on the target and recorded as copied.
        self.forget_checkpoints().await?;
        // Unique keys and indexes once the data is in (a bulk load into a bare
        // table is several times faster), then foreign keys, so that load
        // order never matters.
        for plan in &self.plans {
            let recorded = self.state.table(&plan.target_display())?.unwrap_or_default();
            if recorded.stage == TableStage::Constrained || !recorded.created_by_ferry {
                continue;
            }
            for cols in &plan.def.unique_keys {
                self.target.create_index(&plan.target_name, cols, true).await?;
            }
            for cols in &plan.def.indexes {
                self.target.create_index(&plan.target_name, cols, false).await?;
            }
            for index in &plan.def.expression_indexes {
                self.target.create_expression_index(&plan.target_name, index).await?;
            }
        }
        for plan in &self.plans {
            let name = plan.target_display();
            let recorded = self.state.table(&name)?.unwrap_or_default();
            if recorded.stage == TableStage::Constrained {
                continue;
            }
            if recorded.created_by_ferry && self.target.capabilities().adds_foreign_keys_later {
                for fk in &plan.def.foreign_keys {
                    self.target.add_foreign_key(&plan.target_name, fk).await.map_err(|e| {
                        RunError::from(e).with_hint("every child row needs its parent in the target: check that no filter leaves parents behind")
                    })?;
                    self.state.audit(&AuditEvent::ForeignKeyAdded { table: name.clone(), name: fk.name.clone() })?;
                }
            }
            self.state.set_table_stage(&name, TableStage::Constrained)?;
        }
        self.advance_identities(progress).await
    }

    /// Moves every target identity (sequence, AUTO_INCREMENT, AUTOINCREMENT)
    /// beyond the largest key copied and beyond what the source's identity
    /// has handed out, so that an application's INSERT without a key gets a
    /// new one. After the backfill, at the end of a run and of `ferry sync`.
    pub async fn advance_identities(&self, progress: &dyn Progress) -> Result<()> {
        let targets = self.target_schemas().await?;
        for (plan, schema) in self.plans.iter().zip(&targets) {
            let Some(column) = schema.columns.iter().find(|c| c.identity.is_some()) else { continue };
            let Some(current) = self.target.identity_next(&plan.target_name, &column.name).await? else {
                continue; // numbered from the largest key by the engine itself
            };
            let q = self.target.sql_dialect();
            let largest = self
                .target
                .scalar(&format!("SELECT MAX({}) FROM {}", q.ident(&column.name), q.table(&plan.target_name)))
                .await?
                .and_then(|text| text.split('.').next().and_then(|whole| whole.trim().parse::<i64>().ok()))
                .unwrap_or(0);
            let source_column = plan.columns.iter().find(|c| c.name == column.name).and_then(|c| match &c.source {
                ColumnSource::Column { name, .. } => Some(name.clone()),
                ColumnSource::Expr { .. } => None,
            });
            let source_next = match source_column {
                Some(c) if plan.source.column(&c).is_some_and(|c| c.identity.is_some()) => {
                    self.source.identity_next(&plan.source_name, &c).await?.unwrap_or(0)
                }
                _ => 0,
            };
            let next = (largest.saturating_add(1)).max(source_next).max(1);
            if current >= next {
                continue;
            }
            self.target.set_identity_next(&plan.target_name, &column.name, next).await?;
            let table = plan.target_display();
            self.state.audit(&AuditEvent::IdentityAdvanced {
                table: table.clone(),
                column: column.name.clone(),
                next,
            })?;
            progress.note(&format!("{table}: {} now numbers new rows from {next}", column.name));
        }
        Ok(())
    }

    /// Verifies every table; several tables at once, each on a lane of its
    /// own (the backfill's workers' connections), when there are several.
    async fn verify_tables(&self, targets: &[TableSchema], progress: &dyn Progress) -> Result<Vec<TableReport>> {
        let lanes = if self.plans.len() > 1 {
            self.lanes(progress).await
        } else {
            vec![crate::backfill::Lane { source: self.source.clone(), target: self.target.clone() }]
        };
        let next = std::cell::Cell::new(0);
        let reports = std::cell::RefCell::new(vec![None; self.plans.len()]);
        let workers = lanes.iter().take(self.plans.len()).map(|lane| async {
            let verifier = Verifier {
                source: lane.source.clone(),
                target: lane.target.clone(),
                ..self.verifier(progress, self.spec.policy.sample_size)
            };
            loop {
                let i = next.get();
                let (Some(plan), Some(schema)) = (self.plans.get(i), targets.get(i)) else {
                    return Ok::<(), RunError>(());
                };
                next.set(i + 1);
                let report = self.verify_table(&verifier, plan, schema).await?;
                reports.borrow_mut()[i] = Some(report);
            }
        });
        futures_util::future::try_join_all(workers).await?;
        Ok(reports.into_inner().into_iter().flatten().collect())
    }

    async fn verify_table(
        &self,
        verifier: &Verifier<'_>,
        plan: &TablePlan,
        schema: &TableSchema,
    ) -> Result<TableReport> {
        let types: Vec<DataType> = plan.write_spec(schema).columns.into_iter().map(|(_, t)| t).collect();
        let mark = self.state.changed_mark()?;
        let report = verifier.table(plan, &types, Some(&self.state)).await?;
        // Rows replayed before this verification began are covered by it.
        if report.passed() && self.writes_to()? == crate::switch::Side::Source {
            self.state.clear_changed_keys(&plan.target_display(), Direction::Forward, mark)?;
        }
        if !self.capturing()? {
            self.record_report(plan, &report)?;
        }
        Ok(report)
    }

    pub(crate) fn record_report(&self, plan: &TablePlan, report: &TableReport) -> Result<()> {
        {
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
                settled: report.settled_rows,
            })?;
        }
        Ok(())
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

/// How often a follower moves changes captured outside the log into it
/// ([`ferry_engine::ChangeCapture::collect_changes`]); `drain` collects
/// every round.
pub const COLLECT_EVERY: Duration = Duration::from_secs(5);

/// How long capture DDL waits for its lock before it gives up and retries.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(2);
const DDL_ATTEMPTS: u32 = 6;
/// Rounds of replay-then-recheck before a difference counts as real.
const SETTLE_ROUNDS: usize = 5;

/// DDL that needs a lock on a busy table: a short lock timeout, then retries
/// with exponential backoff and jitter, then a clear error.
/// Capture from a server's own log needs that engine and its settings:
/// said before anything is created, not halfway through expand.
async fn check_capture_method(spec: &Spec, source: &dyn Engine) -> Result<()> {
    source.check_capture(spec.capture).await.map_err(|e| {
        RunError::from(e).context(format_args!("{}: [source] capture = \"{}\"", spec.path.display(), spec.capture))
    })
}

pub async fn retry_ddl<F, Fut>(mut op: F, progress: &dyn Progress) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ferry_engine::Result<()>>,
{
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=DDL_ATTEMPTS {
        match op().await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && attempt < DDL_ATTEMPTS => {
                let jitter = Duration::from_millis(fastrand::u64(0..=delay.as_millis() as u64 / 2));
                progress.note(&format!(
                    "{} (attempt {attempt} of {DDL_ATTEMPTS}); retrying in {:?}",
                    e.message(),
                    delay + jitter
                ));
                tokio::time::sleep(delay + jitter).await;
                delay *= 2;
            }
            Err(e) => {
                let retryable = e.is_retryable();
                let err = RunError::from(e);
                return Err(if retryable {
                    err.with_hint(format!(
                        "the table stayed busy for {DDL_ATTEMPTS} attempts of {LOCK_TIMEOUT:?} each; run again in a quieter period"
                    ))
                } else {
                    err
                });
            }
        }
    }
    unreachable!("the loop returns on the last attempt")
}

/// Who runs Ferry: `FERRY_OPERATOR`, else the OS user.
pub fn operator_from_env() -> String {
    ["FERRY_OPERATOR", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "unknown".into())
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
                    state.describe()
                ),
                )
                .with_hint("set a different [state] url for a new migration, or restore the spec's URL"))
            }
        }
    }
    Ok(())
}

/// `ferry pause` / `ferry resume`: the runner waits before its next batch while paused.
pub fn set_operator_pause(spec: &Spec, reason: Option<&str>) -> Result<()> {
    let state = StateStore::open_at(&state_location(spec)?)?;
    state.set_pause("operator", reason)?;
    state.audit(&match reason {
        Some(r) => AuditEvent::ThrottlePaused {
            reason: format!("operator: {r}"),
            cause: Some(ferry_core::audit::PauseCause::Operator),
        },
        None => AuditEvent::ThrottleResumed {},
    })?;
    Ok(())
}

/// `ferry status`: read from the state store only; no database is contacted.
pub fn status(spec: &Spec) -> Result<StatusReport> {
    let Some(state) = StateStore::open_existing(&state_location(spec)?)? else {
        return Ok(not_started(spec));
    };
    let runner = state.runner_status()?;
    let running = runner.as_ref().is_some_and(|r| r.running);
    let phases = state.phases()?;
    let current = phases.iter().filter(|p| p.state != PhaseState::NotStarted).max_by_key(|p| p.number);
    let tables = table_statuses(&state, running)?;
    let writes = state.meta("writes")?.unwrap_or_else(|| "source".into());
    Ok(StatusReport {
        generated_at: timestamp(now()),
        workers: state.workers()?,
        state: state.lifecycle()?.name().to_string(),
        legal_commands: crate::in_place::for_shape(spec, crate::machine::legal_commands(&state)?),
        source: state.meta("source")?.unwrap_or_else(|| ferry_core::spec::redact_for_message(&spec.source_url)),
        target: state.meta("target")?.unwrap_or_else(|| ferry_core::spec::redact_for_message(&spec.target_url)),
        phase: current.and_then(|p| Phase::ALL.into_iter().find(|x| x.number() == p.number)),
        phase_state: current.map_or(PhaseState::NotStarted, |p| p.state),
        quarantined_rows: state.quarantined_rows()?,
        // The throttle's pause holds only while its runner lives; an operator's holds until resumed.
        pauses: state
            .pauses()?
            .into_iter()
            .filter(|(by, _, _)| by != "throttle" || running)
            .map(|(by, reason, since)| ferry_core::status::Pause { by, reason, since })
            .collect(),
        pace: state.pace()?.filter(|_| running),
        runner,
        cutover: cutover_status(spec, &state)?,
        routing: ferry_core::status::Routing { reads: writes.clone(), writes },
        capture_log: capture_log_status(spec, &state)?,
        soak: soak_status(spec, &state)?,
        switch: switch_status(&state)?,
        phases,
        verification: verification_verdict(&tables),
        tables,
        spec: spec.path.display().to_string(),
    })
}

/// The status of a migration whose state store does not exist yet.
fn not_started(spec: &Spec) -> StatusReport {
    StatusReport {
        generated_at: timestamp(now()),
        runner: None,
        workers: Vec::new(),
        cutover: None,
        spec: spec.path.display().to_string(),
        source: ferry_core::spec::redact_for_message(&spec.source_url),
        target: ferry_core::spec::redact_for_message(&spec.target_url),
        state: State::PLANNED.name().to_string(),
        legal_commands: crate::in_place::for_shape(
            spec,
            ferry_core::lifecycle::legal(State::PLANNED).into_iter().map(|c| c.name()).collect(),
        ),
        phase: None,
        phase_state: PhaseState::NotStarted,
        phases: Vec::new(),
        tables: Vec::new(),
        quarantined_rows: 0,
        verification: None,
        pauses: Vec::new(),
        pace: None,
        routing: Default::default(),
        switch: None,
        soak: None,
        capture_log: None,
    }
}

/// Each table's progress, with its copy rate and time left while a runner copies.
fn table_statuses(state: &StateStore, running: bool) -> Result<Vec<ferry_core::status::TableStatus>> {
    let mut tables = state.table_statuses()?;
    let rates = if running { state.copy_rates()? } else { Default::default() };
    for t in tables.iter_mut().filter(|t| !t.backfill_complete) {
        if let Some((rate, at)) = rates.get(&t.target) {
            t.rows_per_second = Some(*rate);
            t.rate_measured_at = Some(at.clone());
            t.eta_seconds =
                t.rows_total.filter(|_| *rate > 0.0).map(|total| total.saturating_sub(t.rows_copied) as f64 / rate);
        }
    }
    Ok(tables)
}

/// `pass` once every table's verification passed, `fail` once one failed and all ran.
fn verification_verdict(tables: &[ferry_core::status::TableStatus]) -> Option<String> {
    if tables.is_empty() || tables.iter().any(|t| t.verification.is_none()) {
        None
    } else if tables.iter().all(|t| t.verification.as_ref().is_some_and(|v| v.passed)) {
        Some("pass".to_string())
    } else {
        Some("fail".to_string())
    }
}

fn cutover_status(spec: &Spec, state: &StateStore) -> Result<Option<ferry_core::status::CutoverStatus>> {
    Ok(match &spec.cutover {
        None => None,
        Some(policy) => Some(ferry_core::status::CutoverStatus {
            read_percent: crate::cutover::flags(spec, state)?.read_percent,
            stages: policy.stages.clone(),
            stage_started_at: state.meta("cutover_stage_since")?,
            hold_seconds: policy.hold.as_secs_f64(),
            advance: match policy.advance {
                ferry_core::spec::Advance::Auto => "auto".into(),
                ferry_core::spec::Advance::Manual => "manual".into(),
            },
            gates: state.meta("cutover_gates")?.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
            shadow: crate::shadow::status(state)?,
            triggered: state.meta("cutover_trigger")?,
        }),
    })
}

fn capture_log_status(spec: &Spec, state: &StateStore) -> Result<Option<ferry_core::status::CaptureLogStatus>> {
    Ok(match (state.meta("capture_retained_bytes")?, state.meta("capture_retained_at")?) {
        (Some(bytes), Some(at)) => bytes.parse().ok().map(|retained_bytes| ferry_core::status::CaptureLogStatus {
            retained_bytes,
            measured_at: at,
            max_retained_bytes: spec.policy.max_retained_bytes,
        }),
        _ => None,
    })
}

fn soak_status(spec: &Spec, state: &StateStore) -> Result<Option<ferry_core::status::SoakStatus>> {
    Ok(match state.meta("switched_at")?.and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok()) {
        None => None,
        Some(started) => {
            let started = started.with_timezone(&chrono::Utc);
            let ends = started + chrono::Duration::from_std(spec.soak.duration).unwrap_or_default();
            Some(ferry_core::status::SoakStatus {
                started_at: timestamp(started),
                ends_at: timestamp(ends),
                elapsed: now() >= ends,
                watching: vec![
                    format!(
                        "reverse lag against [policy] max_lag ({})",
                        ferry_core::audit::format_duration(spec.policy.max_lag)
                    ),
                    format!(
                        "rows written back into the source, compared with the target every {} ([soak] check_every)",
                        ferry_core::audit::format_duration(spec.soak.check_every)
                    ),
                ],
                triggers: state.meta("soak_triggers")?.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
            })
        }
    })
}

fn switch_status(state: &StateStore) -> Result<Option<ferry_core::status::SwitchStatus>> {
    Ok(match state.meta("switch_fenced_at")? {
        None => None,
        Some(fenced_at) => Some(ferry_core::status::SwitchStatus {
            fenced_at: Some(fenced_at),
            switched_at: state.meta("switched_at")?,
            write_unavailability_ms: state.meta("switch_window_ms")?.and_then(|w| w.parse().ok()),
        }),
    })
}

/// Milliseconds between two of the state store's timestamps.
fn elapsed_ms(started: &str, completed: &str) -> Option<u64> {
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    Some((at(completed)? - at(started)?).num_milliseconds().max(0) as u64)
}
