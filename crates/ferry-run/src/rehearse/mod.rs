//! `ferry rehearse`: the rollback, tested before it is needed.
//!
//! The whole lifecycle of the spec — expand, backfill, verify, a short write
//! load, switch, writes on the target, rollback — runs on scratch copies of
//! the source tables (their first rows, and the parent rows those need) in
//! scratch databases beside the real ones. Then the scratch source must hold
//! exactly what it held plus the rehearsal's own writes, on both sides of
//! the switch. Everything scratch is removed; the real migration's audit log
//! gets `rollback-tested`, and its state remembers the result for the plan's
//! checklist and for `[migration] require_rehearsal`.

mod seed;
mod writer;

use crate::connect::{open, Role};
use crate::error::{Result, RunError, RunErrorKind};
use crate::progress::Progress;
use crate::runner::{state_location, Migration};
use crate::state::{now, timestamp, StateStore};
use crate::Invocation;
use ferry_core::lifecycle::State;
use ferry_core::{AuditEvent, Spec, TableName};
use ferry_engine::Engine;
use seed::SeededTable;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use writer::Expected;

/// Rows per table a rehearsal copies unless told otherwise.
pub const DEFAULT_ROWS: usize = 10_000;

/// The state-store key of the last rehearsal.
const META_KEY: &str = "rehearsal";

/// A rehearsal's result, as the state store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RehearsalRecord {
    /// [`Spec::rehearsal_fingerprint`] of the spec rehearsed.
    pub fingerprint: String,
    pub passed: bool,
    pub at: String,
    pub rows_per_table: u64,
    pub duration_ms: u64,
    /// Why it failed.
    pub failure: Option<String>,
}

/// What `ferry rehearse` did.
#[derive(Debug, Clone)]
pub struct Rehearsal {
    pub record: RehearsalRecord,
    /// Where it ran: the scratch databases.
    pub environment: String,
    /// Rows seeded per table (parents a child needs included).
    pub seeded: Vec<(String, usize)>,
    /// Writes the built-in writer made, on both sides.
    pub writes: u64,
}

/// The last rehearsal recorded for this spec's migration, if any.
pub fn last_rehearsal(state: &StateStore) -> Result<Option<RehearsalRecord>> {
    Ok(state.meta(META_KEY)?.and_then(|json| serde_json::from_str(&json).ok()))
}

/// Whether `spec` has a passing rehearsal, for `[migration] require_rehearsal`.
pub fn check_rehearsed(state: &StateStore, spec: &Spec) -> Result<()> {
    let last = last_rehearsal(state)?;
    let fingerprint = spec.rehearsal_fingerprint();
    let problem = match &last {
        None => "the spec asks for a rehearsal (`require_rehearsal = true`), and none has run".to_string(),
        Some(r) if r.fingerprint != fingerprint => {
            format!("the last rehearsal ({}) rehearsed another version of the spec", r.at)
        }
        Some(r) if !r.passed => {
            format!("the last rehearsal ({}) failed: {}", r.at, r.failure.as_deref().unwrap_or("see the audit log"))
        }
        Some(_) => return Ok(()),
    };
    Err(RunError::new(RunErrorKind::State, problem)
        .with_hint(format!("run `ferry rehearse --spec {}` until it passes, then `ferry switch`", spec.path.display())))
}

/// The spec the rehearsal runs: every table in the scratch databases'
/// default schema, no hook (it would flip production), no custom checks
/// (they name the real tables), no read ramp (its holds and flags are the
/// real cutover's; the rehearsal proves the way back from a switch).
fn rehearsal_spec(spec: &Spec) -> Result<Spec> {
    let mut rehearsed = spec.clone();
    let unqualified = |name: &str| TableName::parse(name).name;
    for (i, table) in rehearsed.tables.iter_mut().enumerate() {
        table.from = unqualified(&table.from);
        table.to = unqualified(&table.to);
        let clash = spec.tables[..i].iter().find(|t| unqualified(&t.from) == table.from);
        if let Some(other) = clash {
            return Err(RunError::new(
                RunErrorKind::Spec,
                format!(
                    "{}:{}: {} and {} have the same name in different schemas: a rehearsal puts both in one scratch \
                     database",
                    spec.path.display(),
                    table.line,
                    spec.tables[i].from,
                    other.from
                ),
            )
            .with_hint("rehearse them in two specs, one per schema"));
        }
    }
    rehearsed.switch.hook = None;
    rehearsed.checks.clear();
    rehearsed.cutover = None;
    rehearsed.migration.require_rehearsal = false;
    Ok(rehearsed)
}

/// The scratch databases and the rehearsal's own state store.
struct Scratch {
    source: Arc<dyn Engine>,
    target: Arc<dyn Engine>,
    source_name: String,
    target_name: String,
    state: PathBuf,
}

impl Scratch {
    async fn create(real_source: &dyn Engine, real_target: &dyn Engine, state: PathBuf) -> Result<Scratch> {
        let source_name = real_source.scratch_name("rehearse_source");
        let target_name = real_target.scratch_name("rehearse_target");
        remove_state(&state);
        let source = real_source.create_scratch_database(&source_name).await?;
        let target = real_target.create_scratch_database(&target_name).await?;
        Ok(Scratch { source, target, source_name, target_name, state })
    }

    fn describe(&self) -> String {
        format!("scratch databases {} and {}", self.source.display_url(), self.target.display_url())
    }
}

/// Removes the rehearsal's state directory (its store and audit log).
fn remove_state(state: &Path) {
    if let Some(dir) = state.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Keeps a second rehearsal of the same migration off the scratch databases.
fn lock_rehearsal(local_dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(local_dir)
        .map_err(|e| RunError::state(format!("cannot create {}: {e}", local_dir.display())))?;
    let path = local_dir.join("rehearsal.lock");
    let file =
        std::fs::File::create(&path).map_err(|e| RunError::state(format!("cannot create {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(RunError::new(RunErrorKind::Locked, "another `ferry rehearse` of this migration is running")
                .with_hint("wait for it to finish; two rehearsals would share their scratch databases"))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(RunError::state(format!("cannot lock {}: {e}", path.display()))),
    }
}

/// `ferry rehearse`: runs, checks and removes the rehearsal; records its
/// result in the migration's state. `Ok` with a failed record when the
/// lifecycle or the check failed; `Err` when it could not be set up.
pub async fn rehearse(spec: Spec, rows: usize, invocation: Invocation, progress: &dyn Progress) -> Result<Rehearsal> {
    if crate::in_place::spec_in_place(&spec) {
        return Err(RunError::new(
            RunErrorKind::Refused,
            "`ferry rehearse` runs a move's lifecycle on scratch copies; this change is in place",
        )
        .with_hint("rehearse an in-place change on a copy of the database: point [source] at it and run `ferry run`, `ferry contract --confirm`"));
    }
    let rehearsed = rehearsal_spec(&spec)?;
    let location = state_location(&spec)?;
    let real_state = StateStore::open_at(&location)?;
    let local_dir = location.local_dir();
    let _lock = lock_rehearsal(&local_dir)?;
    let base = spec.base_dir();
    let real_source = open(&spec.source_url, &base, Role::Source).await?;
    let real_target = open(&spec.target_url, &base, Role::Target).await?;
    let started = Instant::now();
    let scratch = Scratch::create(&*real_source, &*real_target, local_dir.join("rehearsal").join("state.db")).await?;
    let environment = scratch.describe();
    progress.note(&format!("rehearsal: running the lifecycle on the {environment}"));
    let outcome = rehearse_in(&spec, &rehearsed, &*real_source, &scratch, rows, &invocation, progress).await;
    // Nothing scratch outlives the rehearsal, whatever happened in it.
    let dropped_source = real_source.drop_scratch_database(&scratch.source_name).await;
    let dropped_target = real_target.drop_scratch_database(&scratch.target_name).await;
    remove_state(&scratch.state);
    let (failure, seeded, writes) = match outcome {
        Ok(Passed { seeded, writes }) => (None, seeded, writes),
        Err(e) if e.kind == RunErrorKind::Interrupted => return Err(e),
        Err(e) => (Some(describe_failure(&e)), Vec::new(), 0),
    };
    dropped_source?;
    dropped_target?;
    let record = RehearsalRecord {
        fingerprint: spec.rehearsal_fingerprint(),
        passed: failure.is_none(),
        at: timestamp(now()),
        rows_per_table: rows as u64,
        duration_ms: started.elapsed().as_millis() as u64,
        failure: failure.clone(),
    };
    real_state.set_meta(META_KEY, &serde_json::to_string(&record).map_err(|e| RunError::state(e.to_string()))?)?;
    real_state.audit(&AuditEvent::RollbackTested {
        environment: environment.clone(),
        rows_per_table: rows as u64,
        result: failure.map_or_else(|| "pass".to_string(), |f| format!("fail: {f}")),
        duration_ms: record.duration_ms,
    })?;
    Ok(Rehearsal { record, environment, seeded, writes })
}

fn describe_failure(e: &RunError) -> String {
    let mut text = e.to_string();
    if let Some(hint) = &e.hint {
        text.push_str(&format!(" (help: {hint})"));
    }
    text
}

struct Passed {
    seeded: Vec<(String, usize)>,
    writes: u64,
}

/// Seeds the scratch source, runs the lifecycle through a rollback with
/// writes on both sides, and compares the scratch source with what it must be.
async fn rehearse_in(
    spec: &Spec,
    rehearsed: &Spec,
    real_source: &dyn Engine,
    scratch: &Scratch,
    rows: usize,
    invocation: &Invocation,
    progress: &dyn Progress,
) -> Result<Passed> {
    let mirror = seed::mirror_spec(spec, rehearsed);
    let tables = seed::seed(&mirror, real_source, &*scratch.source, rows, progress)
        .await
        .map_err(|e| e.context("seeding the scratch source"))?;
    let seeded = tables.iter().map(|t| (t.mirror.source_name.to_string(), t.rows.len())).collect();
    let state = StateStore::open(&scratch.state)?;
    let lock = state.lock()?;
    let mut migration =
        Migration::assemble(rehearsed.clone(), state, lock, scratch.source.clone(), scratch.target.clone(), true)
            .await?;
    migration.cancel = invocation.cancel.clone();
    migration.operator = format!("{} (rehearsal)", invocation.operator);
    check_same_keys(&migration, &tables)?;
    let mut expected: Vec<Expected> = tables.iter().map(|t| Expected { rows: t.rows.clone(), writes: 0 }).collect();

    let outcome = migration.run(None, progress).await.map_err(|e| e.context("the rehearsal's run"))?;
    if !outcome.verified() {
        let failed: Vec<String> =
            outcome.verification.iter().filter(|r| !r.passed()).map(|r| r.target.clone()).collect();
        return Err(RunError::new(
            RunErrorKind::State,
            format!("the rehearsal's verification found differences in {}", failed.join(", ")),
        )
        .with_hint("run `ferry plan` and look at the mapping of these tables; `ferry diff` shows rows"));
    }
    for (table, expected) in tables.iter().zip(&mut expected) {
        writer::write_source(&*scratch.source, table, expected).await?;
    }
    migration.sync(progress).await.map_err(|e| e.context("the rehearsal's sync"))?;
    migration.switch(progress).await.map_err(|e| e.context("the rehearsal's switch"))?;
    let targets = migration.target_schemas().await?;
    for ((table, expected), (plan, schema)) in
        tables.iter().zip(&mut expected).zip(migration.plans.iter().zip(&targets))
    {
        writer::write_target(&*scratch.source, &*scratch.target, table, plan, schema, expected).await?;
    }
    migration.rollback(progress).await.map_err(|e| e.context("the rehearsal's rollback"))?;
    if migration.state.lifecycle()? != State::RolledBack {
        return Err(RunError::state(format!(
            "the rehearsal's rollback ended in state {}, not rolled-back",
            migration.state.lifecycle()?
        )));
    }
    compare(scratch, &tables, &expected).await?;
    Ok(Passed { seeded, writes: expected.iter().map(|e| e.writes).sum() })
}

/// The rehearsal finds rows by the key the mirror copied them with.
fn check_same_keys(migration: &Migration, tables: &[SeededTable]) -> Result<()> {
    for (plan, table) in migration.plans.iter().zip(tables) {
        if plan.key_source != table.mirror.key_target {
            return Err(RunError::state(format!(
                "{}: the rehearsal copied it keyed by ({}) but the spec keys it by ({})",
                plan.source_name,
                table.mirror.key_target.join(", "),
                plan.key_source.join(", ")
            )));
        }
    }
    Ok(())
}

/// The scratch source after the rollback against what it must hold.
async fn compare(scratch: &Scratch, tables: &[SeededTable], expected: &[Expected]) -> Result<()> {
    let mut problems = Vec::new();
    for (table, expected) in tables.iter().zip(expected) {
        let actual = seed::read_all(&*scratch.source, &table.mirror).await?;
        problems.extend(writer::differences(&table.mirror.source_name.to_string(), &expected.rows, &actual));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(RunError::new(
        RunErrorKind::State,
        format!(
            "after the rollback the source is not what it was plus the rehearsal's writes:\n  - {}",
            problems.join("\n  - ")
        ),
    )
    .with_hint("a write made on the target did not come back unchanged: look at the mapping of these columns"))
}
