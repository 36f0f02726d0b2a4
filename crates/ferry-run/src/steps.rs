//! The per-table steps of expand, each with its start and its abort:
//! create (or reuse) the target table, install capture on the source. A
//! step records its intent in the table's stage before it acts, so that a
//! run killed in the middle finds the step to do again (every step is
//! idempotent) and a rollback finds the object to remove. Rollback aborts
//! the steps in reverse, tables in dependency order, and records its
//! progress after each, so that a killed rollback resumes.

use crate::error::{Result, RunError, RunErrorKind};
use crate::machine::{advance, permit};
use crate::mapping::{incompatibilities, TablePlan};
use crate::progress::Progress;
use crate::runner::{retry_ddl, Migration, LOCK_TIMEOUT};
use ferry_core::lifecycle::{Command, Event, State, TableStage};
use ferry_core::{AuditEvent, Phase};
use ferry_plan::SchemaItemKind;

impl Migration {
    /// Expand: every target table, then capture on every source table.
    pub(crate) async fn expand(&self, progress: &dyn Progress) -> Result<()> {
        self.check_privileges().await?;
        self.check_source_reads().await?;
        for plan in &self.plans {
            self.create_target(plan, progress).await?;
            // Capture goes in before the backfill starts, so no write falls between the two.
            self.install_capture(plan, progress).await?;
            self.report_not_carried(plan, progress)?;
        }
        Ok(())
    }

    /// Before anything is created: the privileges every step needs, on both
    /// sides, asked of the servers (PostgreSQL's catalog, MySQL's grants), all missing
    /// ones said at once as the statements that grant them.
    async fn check_privileges(&self) -> Result<()> {
        use ferry_engine::Need;
        let (mut source, mut target) = (Vec::new(), Vec::new());
        for plan in &self.plans {
            source.push(Need::Read(plan.source_name.clone()));
            source.push(Need::Capture(plan.source_name.clone(), self.spec.capture));
            target.push(match self.target.table_exists(&plan.target_name).await? {
                true => Need::Write(plan.target_name.clone()),
                false => Need::Create(plan.target_name.clone()),
            });
        }
        let mut missing = Vec::new();
        for (side, engine, needs) in [("source", &self.source, source), ("target", &self.target, target)] {
            let lacking = engine.missing_privileges(&needs).await.map_err(|e| RunError::from(e).context(side))?;
            missing.extend(lacking.into_iter().map(|grant| format!("{side} ({}): {grant}", engine.display_url())));
        }
        if missing.is_empty() {
            return Ok(());
        }
        let error = ferry_engine::EngineError::new(
            ferry_engine::ErrorKind::Permission,
            format!("the database users lack privileges the migration needs:\n  - {}", missing.join("\n  - ")),
        );
        Err(RunError::from(error).with_hint(
            "expand stopped before creating anything more: run these statements as an administrator (or connect as a user who has \
             the privileges), then `ferry run` again",
        ))
    }

    /// Before anything is created: every table's first rows are read as the
    /// backfill will read them, so that a missing privilege, a filter or a
    /// computed column the source refuses, or one that fails on those rows,
    /// is an error that names the spec's table and leaves nothing behind; the
    /// same for the operator's latency probe.
    async fn check_source_reads(&self) -> Result<()> {
        for plan in &self.plans {
            self.source.read_batch(&plan.read, None, 100).await.map_err(|e| {
                RunError::from(e).context(plan.origin()).with_hint(format!(
                    "expand stopped before creating anything more: correct the table's filter or [table.columns] expressions at line {} (they \
                     run on the source as written), or grant the source user SELECT on {}",
                    plan.spec.line, plan.source_name
                ))
            })?;
        }
        if let Some(probe) = &self.spec.policy.latency_probe {
            self.source.probe(probe).await.map_err(|e| {
                RunError::from(e).context("source: the [policy] latency_probe").with_hint(
                    "expand stopped before creating anything more: correct `latency_probe` (it runs on the source as written), or remove it \
                     to time a keyed read of the first table",
                )
            })?;
        }
        Ok(())
    }

    /// Creates the target table, or checks that an existing one can take the copy.
    async fn create_target(&self, plan: &TablePlan, progress: &dyn Progress) -> Result<()> {
        let name = plan.target_display();
        let recorded = self.state.table(&name)?.unwrap_or_default();
        if recorded.stage >= TableStage::Created {
            return Ok(());
        }
        if self.target.table_exists(&plan.target_name).await? {
            // Created by an earlier run that was killed before it recorded so, or the user's own.
            if !recorded.created_by_ferry {
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
                let rows = self.target.count(&plan.target_name, None).await?;
                if rows > 0 && !plan.spec.merge_existing_rows {
                    return Err(RunError::new(
                        RunErrorKind::IncompatibleTarget,
                        format!(
                            "target table {} already holds {rows} row(s): the copy would overwrite those whose key \
                             the source has and keep the others",
                            plan.target_name
                        ),
                    )
                    .with_hint(format!(
                        "empty it first, copy into another table with `to = \"...\"`, or keep them with \
                         `existing_rows = \"merge\"` (spec line {}); `ferry plan` reports it as F021",
                        plan.spec.line
                    )));
                }
                self.state.audit(&AuditEvent::TableReused { table: name.clone() })?;
                progress.note(&format!("reusing the existing target table {name}"));
            }
        } else {
            let mut def = plan.def.clone();
            if self.target.capabilities().adds_foreign_keys_later {
                def.foreign_keys.clear();
            }
            // Intent first: a crash between the two leaves a table the next run recognises as its own.
            self.state.set_created_by_ferry(&name)?;
            self.state.set_table_stage(&name, TableStage::Creating)?;
            self.target.create_table(&def).await?;
            self.state.audit(&AuditEvent::TableCreated { table: name.clone(), target: self.target.display_url() })?;
        }
        self.state.set_table_stage(&name, TableStage::Created)
    }

    /// Installs change capture on the source table. Recorded as being
    /// installed before it is, and as installed only once it is: an install
    /// that fails (a lock held past every retry) is tried again by the next run.
    async fn install_capture(&self, plan: &TablePlan, progress: &dyn Progress) -> Result<()> {
        let name = plan.target_display();
        if self.state.table_stage(&name)?.capturing() {
            return Ok(());
        }
        self.state.set_table_stage(&name, TableStage::CaptureInstalling)?;
        retry_ddl(
            || self.source.install_capture(&plan.source, &plan.key_source, self.spec.capture, LOCK_TIMEOUT),
            progress,
        )
        .await?;
        self.state.set_table_stage(&name, TableStage::Capturing)?;
        self.state.audit(&AuditEvent::CaptureInstalled { table: plan.source_name.to_string() })?;
        Ok(())
    }

    /// Says (and records) what of the source's schema the target does not get.
    fn report_not_carried(&self, plan: &TablePlan, progress: &dyn Progress) -> Result<()> {
        let name = plan.target_display();
        for (fk, reason) in &plan.skipped_foreign_keys {
            self.state.audit(&AuditEvent::ForeignKeySkipped {
                table: name.clone(),
                name: fk.name.clone(),
                reason: reason.clone(),
            })?;
            progress.note(&format!("{name}: foreign key {} is not recreated: {reason}", fk.name));
        }
        let created = self.state.table(&name)?.unwrap_or_default().created_by_ferry;
        for item in plan.schema_items.iter().filter(|i| created && i.kind != SchemaItemKind::ForeignKey) {
            let Some(problem) = item.problem.as_ref().filter(|p| !p.info) else { continue };
            let what = format!("{} {}", item.kind.label(), item.name);
            self.state.audit(&AuditEvent::SchemaItemSkipped {
                table: name.clone(),
                item: what.clone(),
                reason: problem.reason.clone(),
            })?;
            progress.note(&format!("{name}: {what} is not carried over as the source has it: {}", problem.reason));
        }
        Ok(())
    }

    /// `ferry rollback`: removes capture from every source table, then drops
    /// what expand created, children before parents, recording each step as
    /// it is undone. Forgets the progress (the audit log stays). Its audit
    /// line says whether it succeeded.
    pub async fn rollback(&self, progress: &dyn Progress) -> Result<Vec<String>> {
        self.rollback_with(progress, false).await
    }

    /// [`Migration::rollback`]; with `keep_target`, the target tables stay
    /// (Ferry's objects on them go). A rollback resumed after a kill keeps
    /// them if the first attempt was asked to.
    pub async fn rollback_with(&self, progress: &dyn Progress, keep_target: bool) -> Result<Vec<String>> {
        permit(&self.state, Command::Rollback)?;
        if keep_target {
            self.state.set_meta(KEEP_TARGET, "true")?;
        }
        let keep_target = self.state.meta(KEEP_TARGET)?.is_some();
        let phase = self
            .state
            .phases()?
            .iter()
            .filter(|p| p.state != ferry_core::status::PhaseState::NotStarted)
            .map(|p| p.number)
            .max()
            .unwrap_or(0);
        let rolling = advance(&self.state, Event::RollbackStarted)?;
        let past_switch = matches!(rolling, State::RollingBack { from } if from.past_switch());
        let result = async {
            if past_switch {
                self.switch_back(progress).await?;
            }
            if self.in_place() {
                return self.undo_in_place(progress).await;
            }
            let mut notes = self.remove_routing().await?;
            notes.extend(self.undo(progress, keep_target).await?);
            Ok::<_, RunError>(notes)
        }
        .await;
        let outcome = match &result {
            Ok(_) => "success".to_string(),
            Err(e) => format!("failure: {}", e.message),
        };
        self.state.audit(&AuditEvent::RollbackExecuted { trigger: "manual".into(), phase, result: outcome })?;
        let notes = result?;
        self.state.reset_phases(&Phase::ALL)?;
        self.state.clear_meta(&[
            "writes",
            "cutover_triggered_at",
            "cutover_trigger",
            "switch_fenced_at",
            "switched_at",
            "switch_window_ms",
            "soak_triggers",
            "switch_check_mark",
            KEEP_TARGET,
        ])?;
        advance(&self.state, Event::RollbackFinished)?;
        Ok(notes)
    }

    async fn undo(&self, progress: &dyn Progress, keep_target: bool) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        // The backfill's checkpoints, when it was stopped before its end
        // (before the tables' progress, which names their chunks, is reset).
        self.forget_checkpoints().await?;
        for plan in &self.plans {
            let name = plan.target_display();
            let stage = self.state.table_stage(&name)?;
            if stage.capture_may_exist() {
                retry_ddl(|| self.source.remove_capture(&plan.source_name, LOCK_TIMEOUT), progress).await?;
                self.state.set_table_stage(&name, TableStage::Created)?;
                self.state.audit(&AuditEvent::CaptureRemoved { table: plan.source_name.to_string() })?;
                notes.push(format!("removed change capture from {}", plan.source_name));
            }
        }
        for i in drop_order(&self.plans) {
            let plan = &self.plans[i];
            let name = plan.target_display();
            let Some(recorded) = self.state.table(&name)? else { continue };
            if keep_target && recorded.stage.table_may_exist() {
                notes.push(format!(
                    "kept {} as it is (--keep-target); a new `ferry run` copies into it again once its [[table]] \
                     says existing_rows = \"merge\"",
                    plan.target_name
                ));
            } else if recorded.created_by_ferry && recorded.stage.table_may_exist() {
                self.target.drop_table(&plan.target_name).await?;
                notes.push(format!("dropped {} (created by expand)", plan.target_name));
            } else if recorded.rows_copied > 0 {
                notes.push(format!(
                    "{} existed before the migration and was kept, with the rows copied into it",
                    plan.target_name
                ));
            }
            self.state.reset_table(&name)?;
        }
        Ok(notes)
    }
}

/// Meta key: the rollback under way keeps the target tables.
const KEEP_TARGET: &str = "rollback_keep_target";

/// The order in which target tables can be dropped: a table before every
/// table it references (children first).
pub fn drop_order(plans: &[TablePlan]) -> Vec<usize> {
    children_first(plans.len(), |child, parent| {
        let (child, parent) = (&plans[child], &plans[parent]);
        child.target_name != parent.target_name
            && child.def.foreign_keys.iter().any(|fk| fk.ref_table.name == parent.target_name.name)
    })
}

/// `0..count` ordered so that every item comes before the items it
/// references. Items that reference each other in a cycle come last, in
/// reverse order.
pub fn children_first(count: usize, references: impl Fn(usize, usize) -> bool) -> Vec<usize> {
    let mut left: Vec<usize> = (0..count).collect();
    let mut order = Vec::with_capacity(count);
    while !left.is_empty() {
        // An item no remaining item references can go now.
        let free: Vec<usize> =
            left.iter().copied().filter(|&p| !left.iter().any(|&c| c != p && references(c, p))).collect();
        if free.is_empty() {
            order.extend(left.iter().rev());
            break;
        }
        left.retain(|i| !free.contains(i));
        order.extend(free);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::children_first;

    #[test]
    fn children_come_first() {
        // 0 is referenced by 1, 1 by 2: 2, 1, 0.
        assert_eq!(children_first(3, |c, p| (c, p) == (1, 0) || (c, p) == (2, 1)), [2, 1, 0]);
        // A cycle between 0 and 1 goes last, reversed; 2 is free.
        assert_eq!(children_first(3, |c, p| (c, p) == (0, 1) || (c, p) == (1, 0)), [2, 1, 0]);
    }
}
