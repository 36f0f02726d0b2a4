//! Phase 2: copy existing rows in key order, one checkpointed batch at a time.
//!
//! A reader task fetches the next batch while the current one is written.
//! Each batch's checkpoint (its last key, the rows and batches so far) is
//! written into the target in the batch's own transaction
//! ([`ferry_engine::checkpoint`]), so the target's commit is the checkpoint
//! and need not wait for the disk: a crash of the target loses rows and
//! checkpoint together. The state store follows the target: before a batch
//! its intent is recorded, after it its checkpoint, and a resume first takes
//! the target's. A run killed between the two redoes at most that batch, and
//! the upsert makes the redo harmless.

use crate::error::{Result, RunError, RunErrorKind};
use crate::mapping::TablePlan;
use crate::progress::Progress;
use crate::state::{json_key, ChunkProgress, StateStore, TableProgress, WrittenBatch};
use crate::throttle::{ChunkSize, Throttle};
use ferry_core::convert::convert;
use ferry_core::lifecycle::TableStage;
use ferry_core::spec::OnConversionError;
use ferry_core::value::describe_key;
use ferry_core::{AuditEvent, DataType, Policy, Row, Value};
use ferry_engine::{Checkpoint, Durability, Engine, ErrorKind, KeyRange, Rows, WriteSpec};
use std::cell::Cell;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Above this estimate the engine's statistics are used instead of COUNT(*).
const EXACT_COUNT_LIMIT: u64 = 10_000_000;

pub struct Backfill<'a> {
    pub source: Arc<dyn Engine>,
    pub target: Arc<dyn Engine>,
    pub state: &'a StateStore,
    pub policy: &'a Policy,
    pub progress: &'a dyn Progress,
    pub throttle: Option<&'a Throttle<'a>>,
    pub cancel: &'a crate::cancel::Cancel,
    /// This process, as its chunk leases name it.
    pub owner: &'a str,
}

/// The workers a table is cut for when its state store is shared (PostgreSQL):
/// `ferry run --worker` processes may join the runner's own.
const SHARED_WORKERS: usize = 8;

/// How often a copy that waits for other processes' chunks says so again.
const SAY_WAITING_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// How often a copy that waits for chunks other processes hold looks again.
const WAIT_FOR_OTHERS: std::time::Duration = std::time::Duration::from_millis(500);

/// A row that could not be converted: which, where and why.
#[derive(Debug, Clone)]
pub struct ConversionFailure {
    pub key: String,
    pub column: String,
    pub value: String,
    pub reason: String,
}

/// Converts a source row into the target's types, in place. On failure the
/// row is left part converted: fine for naming its key in a message.
pub fn convert_row(
    row: &mut Row,
    types: &[DataType],
) -> std::result::Result<(), (usize, ferry_core::convert::ConversionError)> {
    for (i, (v, t)) in row.iter_mut().zip(types).enumerate() {
        *v = convert(std::mem::take(v), t).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// One worker's connections: it reads from `source` and writes to `target`.
#[derive(Clone)]
pub struct Lane {
    pub source: Arc<dyn Engine>,
    pub target: Arc<dyn Engine>,
}

/// A table whose copy is under way, shared by the workers copying its chunks.
struct TableCopy<'p> {
    plan: &'p TablePlan,
    write: &'p WriteSpec,
    target: String,
    types: Vec<DataType>,
    task: String,
    batch: Arc<ChunkSize>,
    copied: Cell<u64>,
    /// Its progress task has started (a worker starts it at its first chunk).
    announced: Cell<bool>,
}

impl TableCopy<'_> {
    fn announce(&self, progress: &dyn Progress, recorded: &TableProgress) {
        if !self.announced.replace(true) {
            progress.task_started(&self.task, recorded.rows_total, recorded.rows_copied);
        }
    }
}

impl Backfill<'_> {
    /// Copies the rows of every table not copied yet: each table's key range
    /// in chunks, the chunks of all tables claimed in order by one worker per
    /// lane (each lane its own connections) and by any `ferry run --worker`
    /// sharing the state store. Returns the rows this process copied, per table.
    pub async fn tables(&self, tables: &[(&TablePlan, &WriteSpec)], lanes: &[Lane]) -> Result<Vec<u64>> {
        let mut copies = Vec::new();
        for &(plan, write) in tables {
            copies.push(self.prepare(plan, write, lanes.len()).await?);
        }
        self.copy_until_done(lanes, &copies).await?;
        for copy in copies.iter().flatten() {
            self.finish_table(&lanes[0], copy).await?;
        }
        Ok(copies.iter().map(|c| c.as_ref().map_or(0, |c| c.copied.get())).collect())
    }

    /// `ferry run --worker`: copies chunks of the tables being copied until
    /// none is left; the runner plans the chunks and seals the tables.
    /// Returns the rows this process copied.
    pub async fn work(&self, tables: &[(&TablePlan, &WriteSpec)], lanes: &[Lane]) -> Result<u64> {
        let copies: Vec<_> = tables.iter().map(|&(plan, write)| Some(self.table_copy(plan, write))).collect();
        self.copy_until_done(lanes, &copies).await?;
        for copy in copies.iter().flatten().filter(|c| c.announced.get()) {
            self.progress.task_finished(&copy.task);
        }
        Ok(copies.iter().flatten().map(|c| c.copied.get()).sum())
    }

    /// Every lane claims and copies chunks until none is free; then, while
    /// chunks others hold are left, waits and claims again (a lease that runs
    /// out is taken over).
    async fn copy_until_done(&self, lanes: &[Lane], copies: &[Option<TableCopy<'_>>]) -> Result<()> {
        if let Some(throttle) = self.throttle {
            throttle.share_among(lanes.len());
        }
        // Chunks this process still holds were left by an attempt that failed
        // (a lost connection, before reconnecting): its heartbeat would keep
        // their leases alive for ever, so they are given back first.
        self.state.release_leases(self.owner)?;
        let mut said_at: Option<std::time::Instant> = None;
        loop {
            let workers = lanes.iter().map(|lane| self.worker(lane, copies));
            futures_util::future::try_join_all(workers).await?;
            let left = self.state.chunks_left()?;
            if left == 0 {
                return Ok(());
            }
            // Said at once, then every SAY_WAITING_EVERY while it lasts, with who holds them.
            if said_at.is_none_or(|at| at.elapsed() >= SAY_WAITING_EVERY) {
                self.say_waiting(left)?;
                said_at = Some(std::time::Instant::now());
            }
            self.cancel.check()?;
            tokio::time::sleep(WAIT_FOR_OTHERS).await;
        }
    }

    fn say_waiting(&self, left: u64) -> Result<()> {
        let holders: Vec<String> = self
            .state
            .workers()?
            .into_iter()
            .filter(|w| !w.chunks.is_empty())
            .map(|w| format!("{} ({}, last heartbeat {})", w.id, w.chunks.join(", "), w.last_seen))
            .collect();
        self.progress.note(&format!(
            "waiting for {left} chunk(s) that other workers hold: {}",
            if holders.is_empty() { "none held now, claiming again".to_string() } else { holders.join("; ") }
        ));
        Ok(())
    }

    /// One worker: claims the next free chunk and copies it, until none is free.
    async fn worker(&self, lane: &Lane, copies: &[Option<TableCopy<'_>>]) -> Result<()> {
        loop {
            self.cancel.check()?;
            let Some((target, chunk)) = self.state.claim_chunk(self.owner)? else { return Ok(()) };
            let Some(copy) = copies.iter().flatten().find(|c| c.target == target) else {
                self.state.release_leases(self.owner)?;
                return Err(RunError::state(format!(
                    "the state store holds chunks of {target}, which this spec does not copy"
                ))
                .with_hint("every worker must run the same spec file as the runner"));
            };
            copy.announce(self.progress, &self.state.table(&target)?.unwrap_or_default());
            let chunk = self.follow_target(&*lane.target, copy.plan, chunk).await?;
            self.copy_chunk(lane, copy, chunk).await?;
        }
    }

    /// Readies a table's copy: its keys checked, its rows counted, its key
    /// range cut into chunks (once: a resumed copy keeps them), each chunk's
    /// checkpoint taken from the target. `None` when it is copied already;
    /// else the chunks left to copy.
    async fn prepare<'p>(
        &self,
        plan: &'p TablePlan,
        write: &'p WriteSpec,
        workers: usize,
    ) -> Result<Option<TableCopy<'p>>> {
        let target = plan.target_display();
        let progress =
            self.state.table(&target)?.ok_or_else(|| RunError::state(format!("table {target} is not registered")))?;
        if progress.stage.copied() {
            return Ok(None);
        }
        if progress.stage < TableStage::Copying {
            crate::keycheck::refuse_colliding_keys(&*self.source, &*self.target, plan).await?;
            self.state.set_table_stage(&target, TableStage::Copying)?;
        }
        let total = self.rows_total(plan, &progress).await?;
        if self.state.chunks(&target)?.is_empty() {
            // A copy an earlier version began goes on in the one chunk it had.
            // On a shared state store, workers of other processes may join:
            // the table is cut for SHARED_WORKERS at least.
            let shared = matches!(self.state.location(), crate::state::StateLocation::Postgres { .. });
            let workers = if progress.rows_copied > 0 || progress.pending_batch {
                1
            } else if shared {
                workers.max(SHARED_WORKERS)
            } else {
                workers
            };
            let ranges = crate::chunks::plan(&*self.source, plan, total, workers, self.policy.batch_size).await?;
            self.state.plan_chunks(&target, &ranges)?;
        }
        let create = Checkpoint::create_sql(self.target.sql_dialect());
        self.target.execute(&[create], false, crate::runner::LOCK_TIMEOUT).await.map_err(|e| {
            RunError::from(e)
                .context(format!(
                    "creating {} (the backfill's checkpoints) in the target",
                    ferry_engine::CHECKPOINT_TABLE
                ))
                .with_hint(
                    "Ferry's user needs CREATE in the target's default schema (PostgreSQL) or database \
                     (MySQL/MariaDB); grant it and run `ferry run` again",
                )
        })?;
        let progress = self.state.table(&target)?.unwrap_or(progress);
        self.note_resumed(&progress)?;
        let copy = self.table_copy(plan, write);
        copy.announce(self.progress, &progress);
        Ok(Some(copy))
    }

    /// A table's copy as this process takes part in it.
    fn table_copy<'p>(&self, plan: &'p TablePlan, write: &'p WriteSpec) -> TableCopy<'p> {
        let target = plan.target_display();
        let task = format!("backfill {target}");
        TableCopy {
            plan,
            write,
            types: write.columns.iter().map(|(_, t)| t.clone()).collect(),
            target,
            task,
            batch: Arc::new(ChunkSize::new(self.policy)),
            copied: Cell::new(0),
            announced: Cell::new(false),
        }
    }

    /// The rows to copy: counted once (estimated above EXACT_COUNT_LIMIT).
    async fn rows_total(&self, plan: &TablePlan, progress: &TableProgress) -> Result<u64> {
        if let Some(total) = progress.rows_total {
            return Ok(total);
        }
        let (total, exact) = match plan.source.stats.row_estimate {
            Some(e) if e > EXACT_COUNT_LIMIT && plan.read.filter.is_none() => (e, false),
            _ => (self.source.count(&plan.source_name, plan.read.filter.as_deref()).await?, true),
        };
        self.state.set_rows_total(&progress.target, Some(total), exact)?;
        Ok(total)
    }

    fn note_resumed(&self, progress: &TableProgress) -> Result<()> {
        if progress.rows_copied == 0 && !progress.pending_batch {
            return Ok(());
        }
        let line = self.state.audit(&AuditEvent::BackfillResumed {
            table: progress.target.clone(),
            rows_copied: progress.rows_copied,
            redoing_batch: progress.pending_batch,
        })?;
        self.progress.note(&format!(
            "resuming {} after {} rows{}",
            progress.target,
            progress.rows_copied,
            progress.last_key_display.as_deref().map(|k| format!(" (last key {k})")).unwrap_or_default()
        ));
        tracing::info!("{line}");
        Ok(())
    }

    /// Copies one chunk's rows after its checkpoint, batch by batch, on one
    /// lane: a reader task fetches the next batch while this one is written.
    async fn copy_chunk(&self, lane: &Lane, copy: &TableCopy<'_>, chunk: ChunkProgress) -> Result<()> {
        if self.copy_batches(lane, copy, &chunk).await? {
            self.state.finish_chunk(&copy.target, chunk.chunk)?;
        }
        Ok(())
    }

    /// The batches of [`Self::copy_chunk`]; `false` when the chunk's lease was lost.
    async fn copy_batches(&self, lane: &Lane, copy: &TableCopy<'_>, chunk: &ChunkProgress) -> Result<bool> {
        let (plan, target) = (copy.plan, &copy.target);
        let (tx, mut rx) = mpsc::channel::<ferry_engine::Result<Vec<Row>>>(2);
        let reader = {
            let (source, read, batch) = (lane.source.clone(), plan.read.clone(), copy.batch.clone());
            let mut range = KeyRange {
                after: chunk.last_key.clone().or(chunk.range.after.clone()),
                through: chunk.range.through.clone(),
            };
            tokio::spawn(async move {
                loop {
                    let size = batch.get();
                    let rows = match &range.through {
                        None => source.read_batch(&read, range.after.as_deref(), size).await,
                        Some(_) => source.read_range(&read, &range, 0, size).await,
                    };
                    let rows = match rows {
                        Ok(rows) => rows,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    let last = rows.len() < size;
                    if let Some(row) = rows.last() {
                        range.after = Some(read.key_of(row));
                    }
                    if tx.send(Ok(rows)).await.is_err() || last {
                        return;
                    }
                }
            })
        };
        let mut redo = chunk.pending_batch;
        let mut done = (chunk.rows_copied, chunk.batches);
        let result: Result<bool> = async {
            while let Some(rows) = rx.recv().await {
                let rows = rows.map_err(|e| RunError::from(e).context(plan.origin()))?;
                let Some(last) = rows.last() else { break };
                crate::keycheck::refuse_unusable_keys(plan, &rows)?;
                let last_key = plan.read.key_of(last);
                let display = describe_key(&plan.key_source, &last_key);
                let count = rows.len() as u64;
                let converted = self.convert_batch(plan, &copy.types, rows)?;
                // Held while the batch is written: the pace limits how many write at once.
                let _turn = match self.throttle {
                    Some(throttle) => Some(throttle.turn().await?),
                    None => None,
                };
                if !self.state.begin_batch(target, chunk.chunk, self.owner)? {
                    let note = format!(
                        "{target}: chunk {} was taken over by another worker (this one's lease ran out); \
                         leaving it to that one",
                        chunk.chunk
                    );
                    self.progress.note(&note);
                    tracing::warn!("{note}");
                    return Ok(false);
                }
                let started = std::time::Instant::now();
                done = (done.0 + count, done.1 + 1);
                let checkpoint = Checkpoint {
                    table: target.clone(),
                    chunk: chunk.chunk,
                    last_key: json_key(&last_key)?,
                    rows: done.0 as i64,
                    batches: done.1 as i64,
                };
                self.write_batch(&*lane.target, plan, copy.write, converted, Some(&checkpoint)).await?;
                copy.batch.record(count as usize, started.elapsed());
                let written = WrittenBatch { last_key: &last_key, display: &display, rows: count, redone: redo };
                self.state.complete_batch(target, chunk.chunk, &written)?;
                redo = false;
                copy.copied.set(copy.copied.get() + count);
                self.progress.advanced(&copy.task, count);
                self.cancel.check()?;
                if !self.policy.batch_pause.is_zero() {
                    tokio::time::sleep(self.policy.batch_pause).await;
                }
            }
            Ok(true)
        }
        .await;
        reader.abort();
        result
    }

    /// Every chunk of the table is copied: one commit that waits for the
    /// disk (and so for every commit before it) makes the copy durable on
    /// the target, and only then is the table recorded as copied.
    async fn finish_table(&self, lane: &Lane, copy: &TableCopy<'_>) -> Result<()> {
        let done = self.state.table(&copy.target)?.unwrap_or_default();
        let sealed = Checkpoint {
            table: copy.target.clone(),
            chunk: Checkpoint::SEALED,
            last_key: "[]".into(),
            rows: done.rows_copied as i64,
            batches: done.batches as i64,
        };
        lane.target.upsert_checkpointed(copy.write, Rows::from(Vec::new()), &sealed, Durability::Immediate).await?;
        self.state.complete_backfill(&copy.target)?;
        self.progress.task_finished(&copy.task);
        Ok(())
    }

    /// Takes the target's checkpoint of a chunk into the state store when
    /// the two differ: the target committed a batch the state store did not
    /// record (a kill between the two), or lost batches the state store
    /// recorded (a crash of the target server, whose last commits need not
    /// be on disk). Either way the copy resumes after what the target holds.
    async fn follow_target(&self, on: &dyn Engine, plan: &TablePlan, local: ChunkProgress) -> Result<ChunkProgress> {
        let target = plan.target_display();
        let key = Checkpoint::key(&target, local.chunk);
        let found = on.read_keys(&Checkpoint::read_spec(), &[key]).await?;
        let committed = match found.first() {
            Some(row) => Some(Checkpoint::from_row(row).ok_or_else(|| {
                RunError::state(format!("the target's checkpoint of {target} cannot be read: {row:?}"))
            })?),
            None => None,
        };
        let (rows, batches) = committed.as_ref().map_or((0, 0), |c| (c.rows as u64, c.batches as u64));
        let last_key: Option<Vec<Value>> = match &committed {
            Some(c) => Some(serde_json::from_str(&c.last_key).map_err(|e| {
                RunError::state(format!("the target's checkpoint key of {target} ({}): {e}", c.last_key))
            })?),
            None => None,
        };
        if rows == local.rows_copied && batches == local.batches && last_key == local.last_key {
            return Ok(local);
        }
        let note = if batches < local.batches {
            format!(
                "{target}: the target holds {rows} copied rows of chunk {}, the state store recorded {}; \
                 the target lost its last commits (a crash?), copying them again",
                local.chunk, local.rows_copied
            )
        } else {
            format!(
                "{target}: the target committed {rows} rows of chunk {}, the state store had recorded {}",
                local.chunk, local.rows_copied
            )
        };
        self.progress.note(&note);
        tracing::warn!("{note}");
        self.state.audit(&AuditEvent::CheckpointFollowed {
            table: target.clone(),
            chunk: local.chunk,
            recorded_rows: local.rows_copied,
            target_rows: rows,
        })?;
        let followed = ChunkProgress {
            rows_copied: rows,
            batches,
            last_key,
            pending_batch: local.pending_batch && batches <= local.batches,
            ..local
        };
        self.state.follow_target(&target, followed.chunk, &followed)?;
        Ok(followed)
    }

    /// Converts rows to the target's types. Rows that do not convert are
    /// quarantined; by policy the batch stops there, or goes on without them.
    pub fn convert_batch(&self, plan: &TablePlan, types: &[DataType], rows: Vec<Row>) -> Result<Vec<Row>> {
        let target = plan.target_display();
        let mut converted = Vec::with_capacity(rows.len());
        let mut failures = Vec::new();
        for mut row in rows {
            match convert_row(&mut row, types) {
                Ok(()) => converted.push(row),
                Err((col, e)) => failures.push(ConversionFailure {
                    key: failed_key(&plan.key_source, &plan.read.key_positions, &row, col, &e.value),
                    column: plan.columns[col].name.clone(),
                    value: e.value.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        for f in &failures {
            self.state.quarantine(&target, &f.key, &f.column, &f.value, &f.reason)?;
            self.state.audit(&AuditEvent::RowQuarantined {
                table: target.clone(),
                key: f.key.clone(),
                column: f.column.clone(),
                reason: f.reason.clone(),
            })?;
        }
        if let Some(first) = failures.first() {
            if self.policy.on_conversion_error == OnConversionError::Stop {
                return Err(conversion_error(&target, first, failures.len()));
            }
            self.progress.note(&format!(
                "{target}: quarantined {} row(s), first {}: {}",
                failures.len(),
                first.key,
                first.reason
            ));
        }
        Ok(converted)
    }

    /// Upserts a batch; when the target rejects it for its data, finds and names the row.
    /// With a checkpoint, it is committed with the rows (even when every row
    /// was quarantined), without waiting for the disk.
    pub async fn write_batch(
        &self,
        target: &dyn Engine,
        plan: &TablePlan,
        write: &WriteSpec,
        rows: Vec<Row>,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<()> {
        if rows.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        let rows = Rows::from(rows);
        let written = match checkpoint {
            Some(c) => target.upsert_checkpointed(write, rows.clone(), c, Durability::Deferred).await,
            None => target.upsert(write, rows.clone()).await,
        };
        let Err(err) = written else {
            return Ok(());
        };
        if !matches!(err.kind(), ErrorKind::Conversion | ErrorKind::Constraint) {
            return Err(RunError::from(err));
        }
        for row in rows.iter() {
            if let Err(e) = target.upsert(write, Rows::from(vec![row.clone()])).await {
                let key = describe_key(&plan.key_target, &plan.read.key_of(row));
                return Err(RunError::new(
                    RunErrorKind::Engine(e.kind()),
                    format!("the target rejected row {key} of {}: {}", plan.target_name, e.message()),
                )
                .with_hint("compare the row with the target column types; override a type in [table.columns] if the default mapping does not fit"));
            }
        }
        Err(RunError::from(err))
    }
}

/// The key of a row whose conversion failed; when the failing column is part
/// of the key its value was consumed, so its display text stands in.
fn failed_key(names: &[String], positions: &[usize], row: &Row, failed: usize, shown: &str) -> String {
    let parts: Vec<String> =
        positions.iter().map(|&i| if i == failed { shown.to_string() } else { row[i].to_string() }).collect();
    if names.len() == 1 {
        format!("{}={}", names[0], parts[0])
    } else {
        format!("({})=({})", names.join(", "), parts.join(", "))
    }
}

fn conversion_error(table: &str, first: &ConversionFailure, count: usize) -> RunError {
    let more = if count > 1 {
        format!(" ({} rows in this batch failed; all are listed in the state store's quarantine)", count)
    } else {
        String::new()
    };
    RunError::new(
        RunErrorKind::Conversion,
        format!("table {table}, row {}, column {}: {}{more}", first.key, first.column, first.reason),
    )
    .with_hint(
        "fix the value in the source, override the column's type in [table.columns], or set \
         policy.on_conversion_error = \"quarantine\" to copy the other rows and list this one; then run `ferry run` again",
    )
}

/// The key values as they will be bound on resume, for tests and tools.
pub fn key_values(row: &Row, positions: &[usize]) -> Vec<Value> {
    positions.iter().map(|&i| row[i].clone()).collect()
}
