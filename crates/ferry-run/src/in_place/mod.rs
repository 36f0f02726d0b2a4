//! In-place changes, executed: expand, backfill, verify, contract and
//! rollback of `[[change]]` operations on one live table, through the same
//! lifecycle as a move (planned → expanding → backfilling → syncing →
//! verified → contracting → completed, rollback anywhere before contract).
//!
//! Every statement comes from [`ferry_plan::in_place`]: the plan
//! shows exactly what runs. Each table's steps are recorded in its stage
//! before they act (`creating` while expand runs, `copying` with a
//! checkpoint per batch), so a run killed anywhere resumes: expand's
//! statements can run again, a batch fills only rows no write filled.

mod contract;
mod verify;

use crate::error::{Result, RunError, RunErrorKind};
use crate::machine::{advance, permit};
use crate::mapping::TablePlan;
use crate::progress::Progress;
use crate::runner::{retry_ddl, Migration, RunOutcome, TableOutcome, LOCK_TIMEOUT};
use crate::state::WrittenBatch;
use crate::throttle::{ChunkSize, Throttle};
use ferry_core::lifecycle::{Command, Event, OperationStage, Stage, State, TableStage};
use ferry_core::value::describe_key;
use ferry_core::{AuditEvent, Phase, TableName};
use ferry_engine::{Engine, EngineKind, ReadSpec, SelectItem};
use ferry_plan::in_place::{CarriedIndex, Guard, InPlace, Operation, Statement, Version};
use ferry_plan::ColumnFacts;
use std::time::Instant;

/// Where the version views of `table` go: its schema (PostgreSQL) or database (MariaDB/MySQL).
pub async fn namespace(engine: &dyn Engine, table: &TableName) -> Result<Option<String>> {
    if let Some(schema) = &table.schema {
        return Ok(Some(schema.clone()));
    }
    Ok(engine.namespace().await?)
}

/// Refuses a check or foreign key the change cannot add (see
/// [`InPlace::constraint_conflict`]) or a check whose SQL the database refuses.
pub async fn refuse_bad_constraints(engine: &dyn Engine, table: &str, sql: &InPlace<'_>) -> Result<()> {
    for c in sql.constraints {
        if let Some(why) = sql.constraint_conflict(c) {
            return Err(RunError::new(RunErrorKind::Spec, format!("{table}: {why}"))
                .with_hint("change the [[change]] and run again; nothing was changed"));
        }
        if let ferry_core::spec::ConstraintChange::Check { name, sql: check } = c {
            if let Err(e) = engine.query_text(&sql.check_probe(check)).await {
                return Err(RunError::new(
                    RunErrorKind::Spec,
                    format!("{table}: the database refuses the check {name} (`{check}`): {e}"),
                )
                .with_hint(
                    "write it in the table's own SQL dialect, over the columns the change leaves; nothing was changed",
                ));
            }
        }
    }
    Ok(())
}

/// Whether `spec` changes its tables in place (its source is its target, each table stays where it is).
pub fn spec_in_place(spec: &ferry_core::Spec) -> bool {
    spec.source_url == spec.target_url
        && !spec.tables.is_empty()
        && spec.tables.iter().all(|t| TableName::parse(&t.from) == TableName::parse(&t.to))
}

/// The legal commands `ferry status` lists, without those of a move when the change is in place.
pub fn for_shape(spec: &ferry_core::Spec, commands: Vec<&'static str>) -> Vec<String> {
    let in_place = spec_in_place(spec);
    commands
        .into_iter()
        .filter(|c| !in_place || !matches!(*c, "sync" | "cutover" | "switch"))
        .map(str::to_string)
        .collect()
}

/// One table's change, owning what [`InPlace`] borrows.
pub(crate) struct Change {
    engine: EngineKind,
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
    carried: Vec<CarriedIndex>,
}

impl Change {
    /// The change's statements, in the SQL of `dialect` (the source's: the
    /// database the change was recorded on).
    pub(crate) fn sql(&self, dialect: &'static dyn ferry_core::PlanDialect) -> InPlace<'_> {
        debug_assert_eq!(dialect.kind(), self.engine, "{}: a change recorded on another engine", self.table);
        InPlace {
            dialect,
            table: &self.table,
            key: &self.key,
            columns: &self.columns,
            dropped: &self.dropped,
            namespace: self.namespace.as_deref(),
            indexes: &self.indexes,
            constraints: &self.constraints,
            downs: &self.downs,
            carried: &self.carried,
        }
    }

    /// Where the state store keeps the carried indexes, chosen before expand
    /// acts: a contract stopped halfway finds the table's indexes changed.
    fn carried_key(&self) -> String {
        format!("carried_indexes:{}", self.target)
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
        let engine = self.source.kind();
        let mut out = Vec::new();
        for plan in &self.plans {
            let facts = plan.column_facts();
            let replaced_key = ferry_plan::in_place::added_columns(&facts).into_iter().find(|c| {
                c.expression.is_none() && c.source_column.as_ref().is_some_and(|s| plan.key_source.contains(s))
            });
            if let Some(c) = replaced_key {
                let op = if c.renamed_from().is_some() { "rename_column" } else { "alter_type" };
                return Err(RunError::new(
                    RunErrorKind::Spec,
                    format!(
                        "{}: `{op}` of {}, a key column, cannot be done in place in this version",
                        plan.source_name,
                        c.source_column.as_deref().unwrap_or(&c.name)
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
                carried: match self.state.meta(&format!("carried_indexes:{}", plan.target_display()))? {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|e| RunError::state(format!("the state store holds damaged carried indexes: {e}")))?,
                    None => ferry_plan::in_place::carried_indexes(&plan.source, &facts),
                },
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
        let mut outcome = RunOutcome { in_place: true, ..RunOutcome::default() };
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
            let sql = change.sql(self.source.plan_dialect());
            let operations = sql.operations();
            if operations.is_empty() {
                continue;
            }
            // Recorded even when empty: an index created on an old column after expand was not
            // copied, and must not be taken for carried (dropped at contract) by a later command.
            if self.state.meta(&change.carried_key())?.is_none() {
                let json = serde_json::to_string(&change.carried).map_err(|e| RunError::state(e.to_string()))?;
                self.state.set_meta(&change.carried_key(), &json)?;
            }
            self.state.register_operations(&change.target, &operations)?;
            if self.state.table_stage(&change.target)? < TableStage::Creating {
                self.refuse_taken_names(change).await?;
            }
            // Recorded first: a run killed halfway knows the columns may exist, and a rollback removes them.
            self.state.set_table_stage(&change.target, TableStage::Creating)?;
            self.set_operation_stages(change, &operations, |op| !op.kind.built_apart(), OperationStage::Starting)?;
            let expand = sql.expand();
            if !expand.is_empty() {
                let atomic = self.source.capabilities().transactional_ddl;
                self.execute_change(&change.name, &expand, atomic, progress).await?;
            }
            self.set_operation_stages(change, &operations, |op| !op.kind.built_apart(), OperationStage::Started)?;
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
            self.build_indexes(change, &operations, progress).await?;
            self.state.set_table_stage(&change.target, TableStage::Created)?;
        }
        Ok(())
    }

    /// Records `stage` for each operation of `change` that `which` picks.
    pub(crate) fn set_operation_stages(
        &self,
        change: &Change,
        operations: &[Operation],
        which: impl Fn(&Operation) -> bool,
        stage: OperationStage,
    ) -> Result<()> {
        for (position, op) in operations.iter().enumerate().filter(|(_, op)| which(op)) {
            self.set_operation_stage(change, position, op, stage)?;
        }
        Ok(())
    }

    /// Records an operation's stage in the state store and the audit log, before the work it names.
    fn set_operation_stage(
        &self,
        change: &Change,
        position: usize,
        op: &Operation,
        stage: OperationStage,
    ) -> Result<()> {
        self.state.set_operation_stage(&change.target, position, stage)?;
        self.state.audit(&AuditEvent::OperationStage {
            table: change.target.clone(),
            operation: op.label(),
            stage: stage.name().to_string(),
        })?;
        Ok(())
    }

    /// A check or foreign key of a name the table already uses is not Ferry's
    /// to add (or to drop); one that would go with a column contract drops,
    /// or whose SQL the database refuses, is refused before anything is done.
    pub(crate) async fn refuse_taken_names(&self, change: &Change) -> Result<()> {
        refuse_bad_constraints(&*self.source, &change.table, &change.sql(self.source.plan_dialect())).await?;
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
    async fn build_indexes(&self, change: &Change, operations: &[Operation], progress: &dyn Progress) -> Result<()> {
        for (position, op) in operations.iter().enumerate().filter(|(_, op)| op.kind.built_apart()) {
            let (Some(index), Some(build), Some(abort)) = (&op.builds, op.start.first(), op.abort.first()) else {
                continue;
            };
            match self.state.operation_stage(&change.target, position)? {
                OperationStage::Started => continue,
                stage if stage.may_exist() => {
                    progress.note(&format!("{}: the build of {index} was stopped; starting it again", change.table));
                    self.execute_change(&change.name, std::slice::from_ref(abort), false, progress).await?;
                }
                _ => {
                    let schema = self.source.introspect(&change.name).await?;
                    if has_index(&schema, index) {
                        return Err(RunError::new(
                            RunErrorKind::Spec,
                            format!("{} already has an index named {index}", change.table),
                        )
                        .with_hint("give `add_index` a name the table does not use, or remove the [[change]] if the index is already there"));
                    }
                }
            }
            self.set_operation_stage(change, position, op, OperationStage::Starting)?;
            let started = Instant::now();
            if abort.only_if.is_none() {
                // A build that timed out on a lock leaves an invalid index (PostgreSQL): each attempt drops it first.
                let attempt = [abort.sql.clone(), build.sql.clone()];
                retry_ddl(|| async { self.source.execute(&attempt, false, LOCK_TIMEOUT).await.map(|_| ()) }, progress)
                    .await?;
            } else {
                self.execute_change(&change.name, std::slice::from_ref(build), false, progress).await?;
            }
            self.set_operation_stage(change, position, op, OperationStage::Started)?;
            progress.note(&format!(
                "{}: built index {index} without blocking writes ({} ms)",
                change.table,
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
        if recorded.stage.copied() || change.sql(self.source.plan_dialect()).added().is_empty() {
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
            self.state.begin_batch(target, 0, &self.owner)?;
            let started = Instant::now();
            let sql = [change.sql(self.source.plan_dialect()).backfill_batch(after.as_deref(), &upto)];
            retry_ddl(|| async { self.source.execute(&sql, true, LOCK_TIMEOUT).await.map(|_| ()) }, progress).await?;
            chunk.record(rows.len(), started.elapsed());
            let display = describe_key(&change.key, &upto);
            let written = WrittenBatch { last_key: &upto, display: &display, rows: rows.len() as u64, redone: redo };
            self.state.complete_batch(target, 0, &written)?;
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

    /// Rollback before contract: each operation aborted (the triggers, the
    /// mark tables and the views first); the table is as it was.
    pub(crate) async fn undo_in_place(&self, progress: &dyn Progress) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for change in self.changes().await? {
            let stage = self.state.table_stage(&change.target)?;
            if stage >= TableStage::Creating {
                let sql = change.sql(self.source.plan_dialect());
                let operations = sql.operations();
                self.set_operation_stages(&change, &operations, |op| !op.kind.built_apart(), OperationStage::Aborting)?;
                let atomic = self.source.capabilities().transactional_ddl;
                self.execute_change(&change.name, &sql.rollback(), atomic, progress).await?;
                for (position, op) in operations.iter().enumerate().filter(|(_, op)| op.kind.built_apart()) {
                    // Only an index whose build was recorded is Ferry's: one the table had is left alone.
                    if self.state.operation_stage(&change.target, position)?.may_exist() {
                        self.set_operation_stage(&change, position, op, OperationStage::Aborting)?;
                        self.execute_change(&change.name, &op.abort, false, progress).await?;
                        let index = op.builds.as_deref().unwrap_or(&op.subject);
                        notes.push(format!("{}: dropped index {index}", change.table));
                    }
                }
                self.set_operation_stages(&change, &operations, |_| true, OperationStage::Aborted)?;
                let added: Vec<String> = sql.added().iter().map(|c| c.name.clone()).collect();
                if !added.is_empty() {
                    notes.push(format!(
                        "{}: dropped {} and the sync triggers and version views; the table is as it was",
                        change.table,
                        added.join(", ")
                    ));
                }
            }
            self.state.clear_meta(&[&change.carried_key()])?;
            self.state.reset_table(&change.target)?;
        }
        Ok(notes)
    }
}
