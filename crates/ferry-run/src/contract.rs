//! Phase 8, `ferry contract --confirm`: the point of no return.
//!
//! Refused unless every gate is green: writes switched (or, with
//! `--keep-source`, a one-off copy that never switches), the soak elapsed
//! (`--skip-soak "reason"` records why not), a final verification passes,
//! and a backup of the source tables restores into a scratch database and
//! matches the source by checksum. Then it removes reverse capture and every
//! fence, archives the source tables as `[contract] source` says, removes
//! every `ferry_` object on both sides, and records `migration-completed`.
//! Every step is idempotent: a contract killed anywhere is finished by
//! running it again; it can no longer be rolled back.

use crate::diff::{diff_engines, DiffRequest};
use crate::error::{Result, RunError, RunErrorKind};
use crate::machine::{advance, permit};
use crate::progress::Progress;
use crate::runner::{retry_ddl, Migration, LOCK_TIMEOUT};
use crate::state::{now, timestamp};
use crate::switch::Side;
use ferry_core::lifecycle::{Command, Event, Stage, State};
use ferry_core::spec::ArchiveSource;
use ferry_core::{AuditEvent, Phase, TableName, TableSchema};
use std::path::{Path, PathBuf};

/// How `ferry contract` runs.
#[derive(Debug, Clone, Default)]
pub struct ContractOptions {
    /// The operator's explicit go-ahead: without it nothing happens.
    pub confirm: bool,
    /// End the migration keeping the source tables as they are (a one-off copy, or `[contract] source = "keep"`).
    pub keep_source: bool,
    /// Go ahead before the soak elapsed, for this recorded reason.
    pub skip_soak: Option<String>,
    /// Restore-check this backup instead of taking one.
    pub backup: Option<PathBuf>,
}

/// What contract did.
#[derive(Debug, Clone, Default)]
pub struct ContractOutcome {
    pub notes: Vec<String>,
    /// The backup that was restored and checked.
    pub backup: Option<PathBuf>,
}

impl Migration {
    /// `ferry contract`.
    pub async fn contract(&self, progress: &dyn Progress, options: &ContractOptions) -> Result<ContractOutcome> {
        if self.in_place() {
            return self.contract_in_place(progress, options).await;
        }
        let state = permit(&self.state, Command::Contract)?;
        let switched = self.writes_to()? == Side::Target;
        if !options.confirm {
            return Err(RunError::new(
                RunErrorKind::State,
                "contract is the point of no return: it archives the source tables and removes capture, fences \
                 and every other Ferry object; after it, `ferry rollback` is refused",
            )
            .with_hint("read the plan's contract phase, then run `ferry contract --confirm`"));
        }
        if state == State::at(Stage::Verified) && !options.keep_source {
            return Err(RunError::new(RunErrorKind::State, "writes have not switched to the target")
                .with_hint("`ferry switch` first, or end a one-off copy with `ferry contract --confirm --keep-source` (both tables stay)"));
        }
        let archive = if options.keep_source || !switched { ArchiveSource::Keep } else { self.spec.contract.source };
        let mut outcome = ContractOutcome::default();
        if state != State::at(Stage::Contracting) {
            if switched {
                self.check_soak(options.skip_soak.as_deref())?;
            }
            self.final_verification(progress).await?;
            if archive != ArchiveSource::Keep {
                outcome.backup = Some(self.check_backup(options.backup.as_deref(), progress).await?);
            }
        }
        advance(&self.state, Event::ContractStarted)?;
        self.begin(Phase::Contract, progress)?;
        let result = self.contract_steps(switched, archive, progress).await;
        self.end(Phase::Contract, &result.as_ref().map(|_| ()).map_err(|e| RunError::new(e.kind, e.message.clone())))?;
        outcome.notes = result?;
        outcome.notes.extend(self.remove_routing().await?);
        advance(&self.state, Event::ContractCompleted)?;
        let started = self.state.phase_started_at(Phase::Expand)?.unwrap_or_else(now);
        self.state.audit(&AuditEvent::MigrationCompleted {
            total_duration_ms: (now() - started).num_milliseconds().max(0) as u64,
            soak_period_start: self.state.meta("switched_at")?.unwrap_or_else(|| "none (never switched)".into()),
        })?;
        Ok(outcome)
    }

    /// The soak elapsed, or the operator's reason to go ahead is recorded.
    fn check_soak(&self, skip: Option<&str>) -> Result<()> {
        let switched_at = self
            .state
            .meta("switched_at")?
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
            .unwrap_or_else(now);
        let ends = switched_at + chrono::Duration::from_std(self.spec.soak.duration).unwrap_or_default();
        let remaining = (ends - now()).to_std().unwrap_or_default();
        if remaining.is_zero() {
            return Ok(());
        }
        match skip {
            Some(reason) => {
                self.state.audit(&AuditEvent::SoakSkipped {
                    reason: reason.to_string(),
                    remaining_ms: remaining.as_millis() as u64,
                })?;
                Ok(())
            }
            None => Err(RunError::new(
                RunErrorKind::State,
                format!(
                    "the soak ends at {} ({} from now; `[soak] duration` is {})",
                    timestamp(ends),
                    ferry_core::audit::format_duration(remaining),
                    ferry_core::audit::format_duration(self.spec.soak.duration)
                ),
            )
            .with_hint("wait for it, or go ahead with `--skip-soak \"<why>\"`, which the audit log records")),
        }
    }

    /// Source and target equal (rows both ways, checksums, the sample) and every integrity check green.
    async fn final_verification(&self, progress: &dyn Progress) -> Result<()> {
        let targets = self.target_schemas().await?;
        let writes: Vec<_> = self.plans.iter().zip(&targets).map(|(p, t)| p.write_spec(t)).collect();
        let reports = self.verify_settled(&targets, &writes, progress).await?;
        let checks = self.integrity_checks(progress).await?;
        let mut failing: Vec<String> =
            reports.iter().filter(|r| !r.passed()).map(|r| format!("{} differs from its source", r.target)).collect();
        failing.extend(checks.iter().filter(|c| !c.passed).map(|c| format!("check failed: {}", c.name)));
        if failing.is_empty() {
            return Ok(());
        }
        Err(RunError::new(RunErrorKind::State, format!("the final verification failed: {}", failing.join("; ")))
            .with_hint("`ferry verify` shows the rows; repair or roll back before contract"))
    }

    /// Backs the source tables up with the engine's own tool (and the
    /// tables they reference), restores the backup into a scratch database,
    /// and compares every table with the source; the scratch database is
    /// removed whatever happens.
    async fn check_backup(&self, given: Option<&Path>, progress: &dyn Progress) -> Result<PathBuf> {
        let tables = self.backup_tables().await?;
        let dump = match given {
            Some(path) => path.to_path_buf(),
            None => {
                let dir = self.state.location().local_dir().join("backup");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| RunError::state(format!("cannot create {}: {e}", dir.display())))?;
                progress.note(&format!("backing up {} source table(s) into {}", tables.len(), dir.display()));
                self.source.backup(&tables, &dir).await?
            }
        };
        let scratch = self.source.scratch_name("restore");
        let checked = self.restore_check(&dump, &scratch, progress).await;
        let _ = self.source.drop_scratch_database(&scratch).await;
        self.state.audit(&AuditEvent::BackupChecked {
            file: dump.display().to_string(),
            tables: self.plans.len() as u64,
            result: match &checked {
                Ok(()) => "success".into(),
                Err(e) => format!("failure: {}", e.message),
            },
        })?;
        checked.map_err(|e| {
            RunError::new(RunErrorKind::State, format!("the backup {} did not pass its restore check: {}", dump.display(), e.message))
                .with_hint("contract drops or renames the source only once its backup is proven: fix the backup (or let Ferry take one) and run again")
        })?;
        Ok(dump)
    }

    async fn restore_check(&self, dump: &Path, scratch: &str, progress: &dyn Progress) -> Result<()> {
        progress.note(&format!("restoring {} into the scratch database {scratch} to check it", dump.display()));
        let restored = self.source.restore_scratch(dump, scratch).await?;
        let request = DiffRequest { chunk_rows: 50_000, sample_size: 0, ..DiffRequest::default() };
        for plan in &self.plans {
            let report =
                diff_engines(&*self.source, &plan.source_name, &*restored, &plan.source_name, &request, progress)
                    .await?;
            if !report.outcome.identical() {
                return Err(RunError::new(
                    RunErrorKind::State,
                    format!("the restored {} differs from the source", plan.source_name),
                ));
            }
        }
        Ok(())
    }

    /// The source tables, and every table they reference (so the restore has no missing parent).
    async fn backup_tables(&self) -> Result<Vec<TableName>> {
        let mut tables: Vec<TableName> = Vec::new();
        let mut queue: Vec<TableSchema> = self.plans.iter().map(|p| p.source.clone()).collect();
        while let Some(schema) = queue.pop() {
            if tables.contains(&schema.name) {
                continue;
            }
            for fk in &schema.foreign_keys {
                if !tables.contains(&fk.ref_table) && !queue.iter().any(|q| q.name == fk.ref_table) {
                    queue.push(self.source.introspect(&fk.ref_table).await?);
                }
            }
            tables.push(schema.name);
        }
        Ok(tables)
    }

    /// Reverse capture and every fence off, the source archived, Ferry's objects gone.
    async fn contract_steps(
        &self,
        switched: bool,
        archive: ArchiveSource,
        progress: &dyn Progress,
    ) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for plan in &self.plans {
            if switched && self.target.table_exists(&plan.target_name).await? {
                retry_ddl(|| self.target.remove_capture(&plan.target_name, LOCK_TIMEOUT), progress).await?;
                retry_ddl(|| self.target.remove_fence(&plan.target_name, LOCK_TIMEOUT), progress).await?;
            }
            if self.source.table_exists(&plan.source_name).await? {
                retry_ddl(|| self.source.remove_fence(&plan.source_name, LOCK_TIMEOUT), progress).await?;
                retry_ddl(|| self.source.remove_capture(&plan.source_name, LOCK_TIMEOUT), progress).await?;
            }
        }
        notes.push("removed capture and fences from both sides".into());
        let date = now().format("%Y%m%d").to_string();
        // A dropped parent would take its children's foreign keys with it: children first.
        let order = crate::steps::children_first(self.plans.len(), |child, parent| {
            let (child, parent) = (&self.plans[child], &self.plans[parent]);
            child.source_name != parent.source_name
                && child.source.foreign_keys.iter().any(|fk| fk.ref_table.name == parent.source_name.name)
        });
        for plan in order.into_iter().map(|i| &self.plans[i]) {
            let table = plan.source_name.to_string();
            let exists = self.source.table_exists(&plan.source_name).await?;
            match archive {
                ArchiveSource::Keep => notes.push(format!("kept {table} as it is")),
                ArchiveSource::Rename if exists => {
                    let to = TableName {
                        schema: plan.source_name.schema.clone(),
                        name: ferry_core::schema::bounded_name(
                            &format!("{}_ferry_archive_{date}", plan.source_name.name),
                            63,
                        ),
                    };
                    self.source.rename_table(&plan.source_name, &to).await?;
                    self.state.audit(&AuditEvent::TableArchived { table: table.clone(), to: to.to_string() })?;
                    notes.push(format!("renamed {table} to {to} (the archive)"));
                }
                ArchiveSource::Drop if exists => {
                    self.source.drop_table(&plan.source_name).await?;
                    self.state.audit(&AuditEvent::TableArchived { table: table.clone(), to: "dropped".into() })?;
                    notes.push(format!("dropped {table} (its checked backup stays)"));
                }
                _ => notes.push(format!("{table} was archived by an earlier run")),
            }
        }
        Ok(notes)
    }
}
