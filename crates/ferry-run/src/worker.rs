//! `ferry run --worker`: a process that only copies chunks, beside the
//! runner that drives the migration, on this machine or another one sharing
//! its state store.
//!
//! A worker waits until the runner has cut every table into chunks, claims
//! chunks (see [`crate::state::LEASE`]) and copies them until none is left,
//! then exits. It never changes the migration's phase: planning the chunks,
//! sealing the tables, the constraints, sync and verification stay with the
//! runner — the one process that holds the migration's lock. A runner that
//! dies leaves its lock to the next `ferry run`, which resumes from the state
//! store; the workers go on meanwhile.

use crate::error::{Result, RunError, RunErrorKind};
use crate::heartbeat::{Heartbeat, Role};
use crate::progress::Progress;
use crate::runner::{state_location, Migration};
use ferry_core::Spec;
use ferry_engine::WriteSpec;
use std::time::Duration;

/// How often a worker that waits for the runner looks at the state store.
const WAIT_FOR_RUNNER: Duration = Duration::from_secs(1);

/// What a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkOutcome {
    /// Rows this process copied.
    pub rows_copied: u64,
}

/// Opens the migration as a worker: connected, listed among the workers
/// (its heartbeat also keeps its chunk leases); [`Migration::work`] copies.
pub async fn open_worker(spec: Spec, invocation: crate::Invocation) -> Result<Migration> {
    if crate::in_place::spec_in_place(&spec) {
        return Err(RunError::new(
            RunErrorKind::Refused,
            "`ferry run --worker` copies the chunks of a move; a change in place is filled by `ferry run` alone",
        )
        .with_hint("run `ferry run` without --worker"));
    }
    let location = state_location(&spec)?;
    let mut migration = Migration::open_with(spec, false, invocation).await?;
    if !migration.target.capabilities().concurrent_writers {
        return Err(RunError::new(
            RunErrorKind::Refused,
            "`ferry run --worker` into SQLite: a SQLite file has one writer, the runner",
        )
        .with_hint("run `ferry run` alone; workers help a PostgreSQL or MySQL/MariaDB target"));
    }
    migration.set_heartbeat(Heartbeat::start_as(&location, "run --worker", Role::Worker)?);
    Ok(migration)
}

impl Migration {
    /// Waits for the runner to cut the tables into chunks, then copies
    /// chunks until every one is done.
    pub async fn work(&self, progress: &dyn Progress) -> Result<WorkOutcome> {
        if !self.wait_for_chunks(progress).await? {
            progress.note("every table is copied already: nothing for a worker to do");
            return Ok(WorkOutcome::default());
        }
        let targets = self.target_schemas().await?;
        let writes: Vec<WriteSpec> = self.plans.iter().zip(&targets).map(|(p, t)| p.write_spec(t)).collect();
        let tables: Vec<_> = self.plans.iter().zip(&writes).collect();
        let throttle = self.throttle(progress).await?;
        let backfill = self.backfiller(progress, Some(&throttle));
        let lanes = self.lanes(progress).await;
        let rows_copied = backfill.work(&tables, &lanes).await?;
        Ok(WorkOutcome { rows_copied })
    }

    /// `true` once every table is copied or cut into chunks; `false` when
    /// every table is copied (nothing to do).
    async fn wait_for_chunks(&self, progress: &dyn Progress) -> Result<bool> {
        let mut said = false;
        loop {
            let mut copied = 0;
            let mut planned = 0;
            for plan in &self.plans {
                let target = plan.target_display();
                let stage = self.state.table_stage(&target)?;
                if stage.copied() {
                    copied += 1;
                } else if !self.state.chunks(&target)?.is_empty() {
                    planned += 1;
                }
            }
            if copied == self.plans.len() {
                return Ok(false);
            }
            if copied + planned == self.plans.len() {
                return Ok(true);
            }
            if !said {
                progress.note("waiting for `ferry run` to begin the copy (it cuts the tables into chunks)");
                said = true;
            }
            self.cancel.check()?;
            tokio::time::sleep(WAIT_FOR_RUNNER).await;
        }
    }
}
