//! In-place changes, executed: expand, backfill, verify, contract and
//! rollback of `[[change]]` operations on one live table, through the same
//! lifecycle as a move (planned → expanding → backfilling → syncing →
//! verified → contracting → completed, rollback anywhere before contract).
//!
//! Every statement comes from [`ferry_core::plan::in_place`]: the plan
//! shows exactly what runs. Each table's steps are recorded in its stage
//! before they act (`creating` while expand runs, `copying` with a
//! checkpoint per batch), so a run killed anywhere resumes: expand's
//! statements can run again, a batch fills only rows no write filled.

use crate::error::{Result, RunError, RunErrorKind};
use crate::integrity::{custom_checks, run_check, table_checks, CheckResult};
use crate::machine::{advance, permit};
use crate::mapping::TablePlan;
use crate::progress::Progress;
use crate::runner::{retry_ddl, Migration, RunOutcome, TableOutcome, LOCK_TIMEOUT};
use crate::throttle::{ChunkSize, Throttle};
use crate::verify::{Difference, DifferenceCounts, DifferenceKind, Method, TableReport};
use ferry_core::lifecycle::{Command, Event, Stage, State, TableStage};
use ferry_core::plan::in_place::{Guard, InPlace, Statement, Version};
use ferry_core::plan::{ColumnFacts, EngineName};
use ferry_core::spec::CheckOn;
use ferry_core::value::describe_key;
use ferry_core::{AuditEvent, Phase, TableName};
use ferry_engine::{engine_name, Engine, EngineKind, ReadSpec, SelectItem};
use std::time::Instant;

/// Where the version views of `table` go: its schema (PostgreSQL) or database (MariaDB/MySQL).
pub async fn namespace(engine: &dyn Engine, table: &TableName) -> Result<Option<String>> {
    if let Some(schema) = &table.schema {
        return Ok(Some(schema.clone()));
    }
    let sql = match engine.kind() {
        EngineKind::Postgres => "SELECT current_schema()",
        EngineKind::Mysql => "SELECT DATABASE()",
        EngineKind::Sqlite => return Ok(None),
    };
    Ok(engine.scalar(sql).await?)
}

/// What a verification found wrong, in words.
fn failures(reports: &[TableReport], checks: &[CheckResult]) -> Vec<String> {
    let mut out: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{} rows of {} disagree with their old columns", r.differences_found, r.target))
        .collect();
    out.extend(checks.iter().filter(|c| !c.passed).map(|c| format!("check failed: {}", c.name)));
    out
}

/// One table's change, owning what [`InPlace`] borrows.
pub(crate) struct Change {
    engine: EngineName,
    table: String,
    name: TableName,
    target: String,
    key: Vec<String>,
    columns: Vec<ColumnFacts>,
    dropped: Vec<String>,
    namespace: Option<String>,
    indexes: Vec<ferry_core::spec::IndexChange>,
    constraints: Vec<ferry_core::spec::ConstraintChange>,
    downs: Vec<ferry_core::spec::DownChange>,
}

impl Change {
    pub(crate) fn sql(&self) -> InPlace<'_> {
        InPlace {
            engine: self.engine,
            table: &self.table,
            key: &self.key,
            columns: &self.columns,
            dropped: &self.dropped,
            namespace: self.namespace.as_deref(),
            indexes: &self.indexes,
            constraints: &self.constraints,
            downs: &self.downs,
        }
    }
}

/// Statements after a kill may find their work done: an engine without
/// `IF [NOT] EXISTS` for columns is asked first.
async fn wanted(engine: &dyn Engine, table: &TableName, guard: &Option<Guard>) -> Result<bool> {
    let Some(guard) = guard else { return Ok(true) };
    let schema = engine.introspect(table).await?;
    Ok(match guard {
        Guard::ColumnMissing(c) => schema.column(c).is_none(),
        Guard::ColumnPresent(c) => schema.column(c).is_some(),
        Guard::BothPresent(a, b) => schema.column(a).is_some() && schema.column(b).is_some(),
        Guard::IndexMissing(i) => !has_index(&schema, i),
        Guard::IndexPresent(i) => has_index(&schema, i),
        Guard::ConstraintMissing(c) => !has_constraint(&schema, c),
    })
}

fn has_constraint(schema: &ferry_core::TableSchema, name: &str) -> bool {
    schema.checks.iter().any(|c| c.name == name) || schema.foreign_keys.iter().any(|f| f.name == name)
}

fn has_index(schema: &ferry_core::TableSchema, name: &str) -> bool {
    schema.indexes.iter().chain(&schema.unique_keys).any(|i| i.name == name)
        || schema.expression_indexes.iter().any(|i| i.name == name)
}

impl Migration {
    /// Whether this migration changes tables in place (a `[[change]]` spec).
    pub fn in_place(&self) -> bool {
        !self.plans.is_empty() && self.plans.iter().all(|p| p.in_place)
    }

    /// The commands that move reads or writes between two tables have
    /// nothing to do in place, and `ferry switch` would fence the one table.
    pub(crate) fn refuse_in_place(&self, command: &str) -> Result<()> {
        if !self.in_place() {
            return Ok(());
        }
        Err(RunError::new(
            RunErrorKind::Refused,
            format!(
                "`ferry {command}` moves reads or writes from one table to another; this change is in place: one \
                 table, two versions of the application"
            ),
        )
        .with_hint(
            "roll out version 2 with its connection setting (`ferry plan` lists it; docs/in-place.md), then \
             `ferry contract --confirm`",
        ))
    }

    pub(crate) async fn changes(&self) -> Result<Vec<Change>> {
        let engine = engine_name(self.source.kind());
        let mut out = Vec::new();
        for plan in &self.plans {
            let facts = plan.column_facts();
            let retyped_key = ferry_core::plan::in_place::added_columns(&facts)
                .into_iter()
                .find(|c| ferry_core::plan::in_place::physical(c) != c.name && plan.key_source.contains(&c.name));
            if let Some(c) = retyped_key {
                return Err(RunError::new(
                    RunErrorKind::Spec,
                    format!(
                        "{}: `alter_type` of {}, a key column, cannot be done in place in this version",
                        plan.source_name, c.name
                    ),
                )
                .with_hint(
                    "the key identifies rows while both versions run; move the table instead (a [[table]] with `to`)",
                ));
            }
            out.push(Change {
                engine,
                table: plan.source_name.to_string(),
                name: plan.source_name.clone(),
                target: plan.target_display(),
                key: plan.key_source.clone(),
                columns: plan.column_facts(),
                dropped: plan.dropped_columns(),
                namespace: namespace(&*self.source, &plan.source_name).await?,
                indexes: plan.spec.added_indexes.clone(),
                constraints: plan.spec.added_constraints.clone(),
                downs: plan.spec.downs.clone(),
            });
        }
        Ok(out)
    }

    /// Runs `statements` on the table's database: in one transaction when
    /// `atomic`, else one by one; each waits for its lock at most the lock
    /// timeout, and a busy table is retried with backoff.
    pub(crate) async fn execute_change(
        &self,
        table: &TableName,
        statements: &[Statement],
        atomic: bool,
        progress: &dyn Progress,
    ) -> Result<()> {
        if atomic {
            let mut sql = Vec::new();
            for s in statements {
                if wanted(&*self.source, table, &s.only_if).await? {
                    sql.push(s.sql.clone());
                }
            }
            return retry_ddl(|| async { self.source.execute(&sql, true, LOCK_TIMEOUT).await.map(|_| ()) }, progress)
                .await;
        }
        for s in statements {
            if wanted(&*self.source, table, &s.only_if).await? {
                let sql = [s.sql.clone()];
                retry_ddl(|| async { self.source.execute(&sql, false, LOCK_TIMEOUT).await.map(|_| ()) }, progress)
                    .await?;
            }
        }
        Ok(())
    }

    /// `ferry run` for an in-place change: expand → backfill → verify.
    pub(crate) async fn run_in_place(&self, until: Option<Phase>, progress: &dyn Progress) -> Result<RunOutcome> {
        let started = Instant::now();
        let state = permit(&self.state, Command::Run)?;
        self.state
            .audit(&AuditEvent::RunStarted { command: "run".into(), spec: self.spec.path.display().to_string() })?;
        let changes = self.changes().await?;
        let mut outcome = RunOutcome::default();
        if matches!(state, State::RolledBack | State::At { stage: Stage::Planned | Stage::Expanding }) {
            advance(&self.state, Event::ExpandStarted)?;
            self.begin(Phase::Expand, progress)?;
            let result = self.expand_in_place(&changes, progress).await;
            self.end(Phase::Expand, &result)?;
            result?;
            advance(&self.state, Event::Expanded)?;
        }
        if until == Some(Phase::Expand) {
            outcome.stopped_after = until;
            outcome.elapsed_seconds = started.elapsed().as_secs_f64();
            return Ok(outcome);
        }
        let backfill_started = Instant::now();
        let before: Vec<u64> = self
            .plans
            .iter()
            .map(|p| Ok(self.state.table(&p.target_display())?.unwrap_or_default().rows_copied))
            .collect::<Result<_>>()?;
        if self.state.lifecycle()? == State::at(Stage::Backfilling) {
            self.begin(Phase::Backfill, progress)?;
            let throttle = self.throttle(progress).await?;
            let mut result = Ok(());
            for (change, plan) in changes.iter().zip(&self.plans) {
                result = self.backfill_in_place(change, plan, &throttle, progress).await;
                if result.is_err() {
                    break;
                }
            }
            self.end(Phase::Backfill, &result)?;
            result?;
            advance(&self.state, Event::Backfilled)?;
        }
        outcome.backfill_seconds = backfill_started.elapsed().as_secs_f64();
        for (plan, before) in self.plans.iter().zip(before) {
            let done = self.state.table(&plan.target_display())?.unwrap_or_default();
            outcome.tables.push(TableOutcome {
                target: done.target.clone(),
                rows_copied_now: done.rows_copied.saturating_sub(before),
                rows_total: done.rows_copied,
                batches_redone: done.batches_redone,
            });
        }
        if until == Some(Phase::Backfill) {
            outcome.stopped_after = until;
            outcome.elapsed_seconds = started.elapsed().as_secs_f64();
            return Ok(outcome);
        }
        let (verification, checks) = self.verify_in_place(&changes, progress).await?;
        outcome.verification = verification;
        outcome.checks = checks;
        outcome.elapsed_seconds = started.elapsed().as_secs_f64();
        Ok(outcome)
    }

    async fn expand_in_place(&self, changes: &[Change], progress: &dyn Progress) -> Result<()> {
        for change in changes {
            let sql = change.sql();
            let expand = sql.expand();
            if expand.is_empty() && change.indexes.is_empty() && change.constraints.is_empty() {
                continue;
            }
            if self.state.table_stage(&change.target)? < TableStage::Creating {
                self.refuse_taken_names(change).await?;
            }
            // Recorded first: a run killed halfway knows the columns may exist, and a rollback removes them.
            self.state.set_table_stage(&change.target, TableStage::Creating)?;
            if !expand.is_empty() {
                let atomic = change.engine != EngineName::Mysql;
                self.execute_change(&change.name, &expand, atomic, progress).await?;
            }
            if !sql.added().is_empty() {
                let added: Vec<String> = sql.added().iter().map(|c| c.name.clone()).collect();
                progress.note(&format!(
                    "{}: added {} beside the old columns, with two-way sync triggers; version 1: `{}`; version 2: `{}`",
                    change.table,
                    added.join(", "),
                    sql.connection_setting(Version::Old),
                    sql.connection_setting(Version::New)
                ));
            }
            self.build_indexes(change, progress).await?;
            self.state.set_table_stage(&change.target, TableStage::Created)?;
        }
        Ok(())
    }

    /// A check or foreign key of a name the table already uses is not Ferry's to add (or to drop).
    async fn refuse_taken_names(&self, change: &Change) -> Result<()> {
        let schema = self.source.introspect(&change.name).await?;
        match change.constraints.iter().find(|c| has_constraint(&schema, c.name())) {
            Some(c) => Err(RunError::new(
                RunErrorKind::Spec,
                format!("{} already has a constraint named {}", change.table, c.name()),
            )
            .with_hint(
                "give the [[change]] a name the table does not use, or remove it if the constraint is already there",
            )),
            None => Ok(()),
        }
    }

    /// Each index of the change, built by itself. Its start is recorded
    /// before the build: a build killed halfway (PostgreSQL leaves an invalid
    /// index) is undone and started again; an index of that name that the
    /// table had before is refused, not taken for Ferry's.
    async fn build_indexes(&self, change: &Change, progress: &dyn Progress) -> Result<()> {
        for build in change.sql().index_builds() {
            let key = format!("index_build:{}:{}", change.target, build.name);
            match self.state.meta(&key)?.as_deref() {
                Some("done") => continue,
                Some(_) => {
                    progress
                        .note(&format!("{}: the build of {} was stopped; starting it again", change.table, build.name));
                    self.execute_change(&change.name, std::slice::from_ref(&build.abort), false, progress).await?;
                }
                None => {
                    let schema = self.source.introspect(&change.name).await?;
                    if has_index(&schema, &build.name) {
                        return Err(RunError::new(
                            RunErrorKind::Spec,
                            format!("{} already has an index named {}", change.table, build.name),
                        )
                        .with_hint("give `add_index` a name the table does not use, or remove the [[change]] if the index is already there"));
                    }
                }
            }
            self.state.set_meta(&key, "started")?;
            let started = Instant::now();
            if build.abort.only_if.is_none() {
                // A build that timed out on a lock leaves an invalid index (PostgreSQL): each attempt drops it first.
                let attempt = [build.abort.sql.clone(), build.build.sql.clone()];
                retry_ddl(|| async { self.source.execute(&attempt, false, LOCK_TIMEOUT).await.map(|_| ()) }, progress)
                    .await?;
            } else {
                self.execute_change(&change.name, std::slice::from_ref(&build.build), false, progress).await?;
            }
            self.state.set_meta(&key, "done")?;
            progress.note(&format!(
                "{}: built index {} without blocking writes ({} ms)",
                change.table,
                build.name,
                started.elapsed().as_millis()
            ));
        }
        Ok(())
    }

    /// Fills the new columns in key order, one checkpointed batch (its own transaction) at a time.
    async fn backfill_in_place(
        &self,
        change: &Change,
        plan: &TablePlan,
        throttle: &Throttle<'_>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let target = &change.target;
        let recorded =
            self.state.table(target)?.ok_or_else(|| RunError::state(format!("table {target} is not registered")))?;
        if recorded.stage.copied() || change.sql().added().is_empty() {
            self.state.finish_backfill(target)?;
            return Ok(());
        }
        if recorded.stage < TableStage::Copying {
            self.state.set_table_stage(target, TableStage::Copying)?;
        }
        let total = match recorded.rows_total {
            Some(t) => t,
            None => {
                let t = self.source.count(&change.name, None).await?;
                self.state.set_rows_total(target, Some(t), true)?;
                t
            }
        };
        if recorded.rows_copied > 0 || recorded.pending_batch {
            self.state.audit(&AuditEvent::BackfillResumed {
                table: target.clone(),
                rows_copied: recorded.rows_copied,
                redoing_batch: recorded.pending_batch,
            })?;
        }
        let task = format!("backfill {target}");
        progress.task_started(&task, Some(total), recorded.rows_copied);
        let keys = ReadSpec {
            table: change.name.clone(),
            select: change.key.iter().cloned().map(SelectItem::Column).collect(),
            key: change.key.clone(),
            key_positions: (0..change.key.len()).collect(),
            filter: None,
        };
        let chunk = ChunkSize::new(&self.spec.policy);
        let mut after = recorded.last_key.clone();
        let mut redo = recorded.pending_batch;
        loop {
            let batch = chunk.get();
            let rows = self.source.read_batch(&keys, after.as_deref(), batch).await.map_err(|e| {
                RunError::from(e).context(format!("reading the keys of {} ({})", change.table, plan.origin()))
            })?;
            let Some(last) = rows.last() else { break };
            let upto = keys.key_of(last);
            throttle.wait().await?;
            self.state.begin_batch(target)?;
            let started = Instant::now();
            let sql = [change.sql().backfill_batch(after.as_deref(), &upto)];
            retry_ddl(|| async { self.source.execute(&sql, true, LOCK_TIMEOUT).await.map(|_| ()) }, progress).await?;
            chunk.record(rows.len(), started.elapsed());
            let display = describe_key(&change.key, &upto);
            self.state.complete_batch(target, &upto, &display, rows.len() as u64, redo)?;
            redo = false;
            progress.advanced(&task, rows.len() as u64);
            self.cancel.check()?;
            if rows.len() < batch {
                break;
            }
            after = Some(upto);
            if !self.spec.policy.batch_pause.is_zero() {
                tokio::time::sleep(self.spec.policy.batch_pause).await;
            }
        }
        self.state.complete_backfill(target)?;
        progress.task_finished(&task);
        Ok(())
    }

    /// Verify, in place: every row's new columns equal what its old ones
    /// compute (rows version 2 wrote itself stand as written), and the
    /// integrity checks. Moves the state like a move's verification.
    pub(crate) async fn verify_in_place(
        &self,
        changes: &[Change],
        progress: &dyn Progress,
    ) -> Result<(Vec<TableReport>, Vec<CheckResult>)> {
        self.begin(Phase::Verify, progress)?;
        let mut reports = Vec::new();
        for change in changes {
            let report = self.verify_change(change, progress).await;
            match report {
                Ok(r) => {
                    let plan =
                        self.plans.iter().find(|p| p.target_display() == change.target).expect("one plan per change");
                    self.record_report(plan, &r)?;
                    reports.push(r)
                }
                Err(e) => {
                    self.end(Phase::Verify, &Err(RunError::new(e.kind, e.message.clone())))?;
                    return Err(e);
                }
            }
        }
        let checks = self.in_place_checks().await?;
        let failing = failures(&reports, &checks);
        let result =
            if failing.is_empty() { Ok(()) } else { Err(RunError::new(RunErrorKind::State, failing.join("; "))) };
        self.end(Phase::Verify, &result)?;
        advance(&self.state, Event::VerifyFinished { passed: failing.is_empty() })?;
        Ok((reports, checks))
    }

    async fn verify_change(&self, change: &Change, progress: &dyn Progress) -> Result<TableReport> {
        let started = Instant::now();
        let sql = change.sql();
        progress.note(&format!("verifying {}: every row's new columns against its old ones", change.table));
        let rows = self.source.count(&change.name, None).await?;
        let number = |v: Option<String>| v.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let (mismatched, sample, written) = if sql.added().is_empty() {
            (0, Vec::new(), 0)
        } else {
            let mismatched = number(self.source.scalar(&sql.mismatches()).await?);
            let sample = if mismatched > 0 {
                self.source.query_text(&sql.mismatch_sample(crate::verify::MAX_LISTED)).await?
            } else {
                Vec::new()
            };
            let written = match sql.written_rows() {
                Some(q) => number(self.source.scalar(&q).await?),
                None => 0,
            };
            (mismatched, sample, written)
        };
        if written > 0 {
            progress.note(&format!(
                "{}: {written} row(s) whose new columns version 2 wrote itself stand as written",
                change.table
            ));
        }
        let added: Vec<String> = sql.added().iter().map(|c| c.name.clone()).collect();
        let differences: Vec<Difference> = sample
            .iter()
            .map(|row| {
                let values: Vec<String> = row.iter().map(|v| v.clone().unwrap_or_else(|| "NULL".into())).collect();
                let key = if change.key.len() == 1 {
                    format!("{}={}", change.key[0], values[0])
                } else {
                    format!("({})=({})", change.key.join(", "), values.join(", "))
                };
                Difference {
                    kind: DifferenceKind::Mismatched,
                    key,
                    columns: added
                        .iter()
                        .map(|c| crate::verify::ColumnDifference {
                            column: c.clone(),
                            source: "computed from the old columns".into(),
                            target: "stored".into(),
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(TableReport {
            source: change.table.clone(),
            target: change.target.clone(),
            method: Method::Recomputed,
            rows_source: rows,
            rows_target: rows,
            chunks: 1,
            chunks_differing: u64::from(mismatched > 0),
            rows_compared: rows,
            checksum_match: mismatched == 0,
            differences_found: mismatched,
            differences_truncated: mismatched as usize > differences.len(),
            counts: DifferenceCounts { mismatched, ..Default::default() },
            differences,
            sample_size: 0,
            sample_mismatches: 0,
            sample_differences: Vec::new(),
            settled_rows: 0,
            resumed: false,
            duration_ms: started.elapsed().as_millis() as u64,
            keys: Vec::new(),
        })
    }

    /// The integrity checks of the changed tables and the spec's own checks.
    async fn in_place_checks(&self) -> Result<Vec<CheckResult>> {
        let plans: Vec<&TablePlan> = self.plans.iter().collect();
        let mut results = Vec::new();
        for plan in &self.plans {
            for (name, kind, sql) in table_checks(plan, &*self.source, &plans) {
                results.push(run_check(&*self.source, name, kind, CheckOn::Target, sql, 0).await?);
            }
        }
        for change in self.changes().await? {
            for c in &change.constraints {
                let name = format!("{}: no row breaks {}", change.table, c.name());
                let kind = match c {
                    ferry_core::spec::ConstraintChange::Check { .. } => crate::integrity::CheckKind::Custom,
                    ferry_core::spec::ConstraintChange::ForeignKey { .. } => crate::integrity::CheckKind::Orphans,
                };
                let sql = change.sql().violations(c);
                results.push(run_check(&*self.source, name, kind, CheckOn::Target, sql, 0).await?);
            }
        }
        results.extend(custom_checks(&self.spec.checks, &*self.source, &*self.source).await?);
        self.record_checks(&results)?;
        Ok(results)
    }

    /// Rollback before contract: the triggers, the mark tables, the views
    /// and the added columns go; the table is as it was.
    pub(crate) async fn undo_in_place(&self, progress: &dyn Progress) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for change in self.changes().await? {
            let stage = self.state.table_stage(&change.target)?;
            if stage >= TableStage::Creating {
                let sql = change.sql();
                let atomic = change.engine != EngineName::Mysql;
                self.execute_change(&change.name, &sql.rollback(), atomic, progress).await?;
                for build in sql.index_builds() {
                    let key = format!("index_build:{}:{}", change.target, build.name);
                    // Only an index whose build was recorded is Ferry's: one the table had is left alone.
                    if self.state.meta(&key)?.is_some() {
                        self.execute_change(&change.name, std::slice::from_ref(&build.abort), false, progress).await?;
                        notes.push(format!("{}: dropped index {}", change.table, build.name));
                        self.state.clear_meta(&[&key])?;
                    }
                }
                let added: Vec<String> = sql.added().iter().map(|c| c.name.clone()).collect();
                if !added.is_empty() {
                    notes.push(format!(
                        "{}: dropped {} and the sync triggers and version views; the table is as it was",
                        change.table,
                        added.join(", ")
                    ));
                }
            }
            self.state.reset_table(&change.target)?;
        }
        Ok(notes)
    }

    /// `ferry contract --confirm` for an in-place change: refused unless a
    /// final verification passes and nothing but Ferry's own objects uses a
    /// column it drops; then one transaction (PostgreSQL, SQLite) or an
    /// ordered sequence recorded step by step (MariaDB/MySQL).
    pub(crate) async fn contract_in_place(
        &self,
        progress: &dyn Progress,
        options: &crate::contract::ContractOptions,
    ) -> Result<crate::contract::ContractOutcome> {
        let state = permit(&self.state, Command::Contract)?;
        if !options.confirm {
            return Err(RunError::new(
                RunErrorKind::State,
                "contract is the point of no return: it drops the old columns, the sync triggers and version 1's \
                 views; after it, `ferry rollback` is refused and version 1 of the application stops working",
            )
            .with_hint("retire version 1 of the application, read the plan's contract phase, then run `ferry contract --confirm`"));
        }
        let changes = self.changes().await?;
        if state != State::at(Stage::Contracting) {
            let (reports, checks) = self.verify_in_place(&changes, progress).await?;
            let failing = failures(&reports, &checks);
            if !failing.is_empty() {
                return Err(RunError::new(
                    RunErrorKind::State,
                    format!("the final verification failed: {}", failing.join("; ")),
                )
                .with_hint("`ferry run` fills what the backfill missed; `ferry verify` shows the rows"));
            }
            for change in &changes {
                self.refuse_column_users(change).await?;
                self.refuse_violations(change).await?;
            }
        }
        advance(&self.state, Event::ContractStarted)?;
        self.begin(Phase::Contract, progress)?;
        let mut notes = Vec::new();
        let mut result = Ok(());
        for change in &changes {
            result = self.contract_change(change, progress).await.map(|n| notes.extend(n));
            if result.is_err() {
                break;
            }
        }
        self.end(Phase::Contract, &result)?;
        result?;
        advance(&self.state, Event::ContractCompleted)?;
        let started = self.state.phase_started_at(Phase::Expand)?.unwrap_or_else(crate::state::now);
        self.state.audit(&AuditEvent::MigrationCompleted {
            total_duration_ms: (crate::state::now() - started).num_milliseconds().max(0) as u64,
            soak_period_start: "none (changed in place)".into(),
        })?;
        Ok(crate::contract::ContractOutcome { notes, backup: None })
    }

    /// Refuses while rows break a constraint contract adds or validates, with their number.
    async fn refuse_violations(&self, change: &Change) -> Result<()> {
        let sql = change.sql();
        for c in &change.constraints {
            let rows = self.source.scalar(&sql.violations(c)).await?.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            if rows > 0 {
                return Err(RunError::new(
                    RunErrorKind::State,
                    format!("{rows} row(s) of {} break {}, which contract would add", change.table, c.name()),
                )
                .with_hint(format!(
                    "find them with `{}`, fix them, then run `ferry contract --confirm` again; nothing was changed",
                    sql.violations(c).replacen("count(*)", "*", 1)
                )));
            }
        }
        Ok(())
    }

    /// Refuses while an object that is not Ferry's uses a column contract drops, naming each.
    async fn refuse_column_users(&self, change: &Change) -> Result<()> {
        let sql = change.sql();
        let mut dropped: Vec<String> = change.dropped.clone();
        dropped.extend(change.columns.iter().filter_map(|c| c.renamed_from().map(str::to_string)));
        dropped.extend(
            sql.added().iter().filter(|c| ferry_core::plan::in_place::physical(c) != c.name).map(|c| c.name.clone()),
        );
        if dropped.is_empty() {
            return Ok(());
        }
        let ours = |name: &str| {
            let bare = name.rsplit('.').next().unwrap_or(name);
            bare.starts_with("ferry_") || name.contains("_ferry_v1") || name.contains("_ferry_v2")
        };
        let users: Vec<String> = self
            .source
            .column_dependents(&change.name, &dropped)
            .await?
            .into_iter()
            .filter(|d| !ours(&d.name))
            .map(|d| format!("{} {} (uses {})", d.kind.name(), d.name, d.column))
            .collect();
        if users.is_empty() {
            return Ok(());
        }
        Err(RunError::new(
            RunErrorKind::State,
            format!("contract would drop columns of {} that are still used: {}", change.table, users.join(", ")),
        )
        .with_hint("change or drop each of them so that it no longer uses the column (see docs/lints/F004.md), then run `ferry contract --confirm` again; nothing was changed"))
    }

    /// One table's contract. MariaDB/MySQL commit each statement by
    /// itself: the index of the last one done is recorded, and the next
    /// attempt resumes after it.
    async fn contract_change(&self, change: &Change, progress: &dyn Progress) -> Result<Vec<String>> {
        let sql = change.sql();
        let contract = sql.contract();
        self.execute_change(&change.name, &contract.prepare, false, progress).await?;
        if contract.atomic {
            let mut steps = contract.steps.clone();
            if !sql.sqlite_not_null().is_empty()
                || (change.engine == EngineName::Sqlite && !change.constraints.is_empty())
            {
                // After Ferry's objects are dropped, before the old columns are.
                let at = steps.iter().position(|s| s.sql.contains(" DROP COLUMN ")).unwrap_or(steps.len());
                let rebuild = self.sqlite_not_null(change).await?;
                steps.splice(at..at, rebuild);
            }
            self.execute_change(&change.name, &steps, true, progress).await?;
        } else {
            let key = format!("contract_step:{}", change.target);
            let done: usize = self.state.meta(&key)?.and_then(|v| v.parse().ok()).unwrap_or(0);
            for (i, step) in contract.steps.iter().enumerate().skip(done) {
                if step.sql.contains(" DROP COLUMN ") {
                    // Between steps: an object created since the check must not lose its column.
                    self.refuse_column_users(change).await?;
                }
                self.execute_change(&change.name, std::slice::from_ref(step), false, progress).await?;
                self.state.set_meta(&key, &(i + 1).to_string())?;
            }
            self.state.clear_meta(&[&key])?;
        }
        let mut notes = Vec::new();
        for index in &change.indexes {
            notes.push(format!("{}: index {} stays", change.table, index.name));
        }
        for c in &change.constraints {
            notes.push(format!("{}: {} holds for every row", change.table, c.name()));
        }
        let not_null: Vec<String> = sql.added().iter().filter(|c| !c.nullable).map(|c| c.name.clone()).collect();
        if !not_null.is_empty() {
            notes.push(format!("{}: {} NOT NULL", change.table, not_null.join(", ")));
        }
        let mut gone = change.dropped.clone();
        gone.extend(change.columns.iter().filter_map(|c| c.renamed_from().map(str::to_string)));
        if !gone.is_empty() {
            notes.push(format!("{}: dropped {}", change.table, gone.join(", ")));
        }
        if !sql.added().is_empty() {
            notes.push(format!(
                "{}: the sync triggers and version 1's views are gone; version 2's view ({}) stays for the \
                 application that uses it",
                change.table,
                sql.view(Version::New)
            ));
        }
        let keys: Vec<String> =
            change.indexes.iter().map(|i| format!("index_build:{}:{}", change.target, i.name)).collect();
        self.state.clear_meta(&keys.iter().map(String::as_str).collect::<Vec<_>>())?;
        Ok(notes)
    }

    /// SQLite has no ALTER COLUMN or ADD CONSTRAINT: NOT NULL and the
    /// change's constraints come from rebuilding the table
    /// (SQLite's documented procedure: new table, copy, drop, rename, then
    /// its indexes and triggers again) inside the contract's transaction.
    /// Ferry's connection keeps foreign keys off, so dropping the old table
    /// touches no child row; views keep their text (the rename runs with
    /// `legacy_alter_table`, the table's name is the same afterwards).
    async fn sqlite_not_null(&self, change: &Change) -> Result<Vec<Statement>> {
        let sql = change.sql();
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let bare = &change.name.name;
        let rows = self
            .source
            .query_text(&format!(
                "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = {} AND sql IS NOT NULL \
                 AND name NOT LIKE 'ferry\\_%' ESCAPE '\\' ORDER BY type = 'table' DESC",
                quote(bare)
            ))
            .await?;
        let Some(create) = rows.iter().find(|r| r[0].as_deref() == Some("table")).and_then(|r| r[2].clone()) else {
            return Err(RunError::state(format!("{}: no CREATE TABLE in sqlite_master", change.table)));
        };
        let mut definition = create.clone();
        for c in sql.added().iter().filter(|c| !c.nullable) {
            // The column as expand added it: SQLite keeps the ADD COLUMN text in the table's definition.
            let added = format!(
                "{} {}",
                ferry_core::plan::sql::ident(change.engine, &ferry_core::plan::in_place::physical(c)),
                ferry_core::plan::sql::declare(change.engine, &c.desired)
            );
            let Some(at) = definition.find(&added) else {
                return Err(RunError::state(format!(
                    "{}: the definition of {} is not the one expand added (`{added}` not found in {create})",
                    change.table, c.name
                ))
                .with_hint("make the column NOT NULL by hand, then run `ferry contract --confirm` again"));
            };
            definition.insert_str(at + added.len(), " NOT NULL");
        }
        let Some(open) = definition.find('(') else {
            return Err(RunError::state(format!("{}: unreadable definition {create}", change.table)));
        };
        if let Some(close) = definition.rfind(')') {
            // The constraints the change adds, at the end of the definition (SQLite cannot ALTER them in).
            let clauses: String =
                change.constraints.iter().map(|c| format!(", {}", sql.constraint_clause(c))).collect();
            definition.insert_str(close, &clauses);
        }
        let scratch = format!("ferry_rebuild_{bare}");
        let columns: Vec<String> = self
            .source
            .introspect(&change.name)
            .await?
            .columns
            .iter()
            .filter(|c| c.generated.is_none())
            .map(|c| ferry_core::plan::sql::ident(change.engine, &c.name))
            .collect();
        let columns = columns.join(", ");
        let table = ferry_core::plan::sql::ident(change.engine, bare);
        let scratch_id = ferry_core::plan::sql::ident(change.engine, &scratch);
        let mut out = vec![
            format!("CREATE TABLE {scratch_id} {}", &definition[open..]),
            format!("INSERT INTO {scratch_id} ({columns}) SELECT {columns} FROM {table}"),
            format!("DROP TABLE {table}"),
            "PRAGMA legacy_alter_table = ON".to_string(),
            format!("ALTER TABLE {scratch_id} RENAME TO {table}"),
            "PRAGMA legacy_alter_table = OFF".to_string(),
        ];
        out.extend(rows.iter().filter(|r| r[0].as_deref() != Some("table")).filter_map(|r| r[2].clone()));
        Ok(out.into_iter().map(|sql| Statement { sql, only_if: None }).collect())
    }
}
