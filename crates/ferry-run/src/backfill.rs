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
use ferry_engine::sql::Dialect;
use ferry_engine::{Checkpoint, Durability, Engine, ErrorKind, KeyRange, Rows, WriteSpec};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
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
}

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
    /// Chunks not copied yet; the last worker to finish one seals the table.
    remaining: Cell<usize>,
    copied: Cell<u64>,
}

impl Backfill<'_> {
    /// Copies the rows of every table not copied yet: each table's key range
    /// in chunks, the chunks of all tables taken in order by one worker per
    /// lane (each lane its own connections). Returns the rows copied now, per table.
    pub async fn tables(&self, tables: &[(&TablePlan, &WriteSpec)], lanes: &[Lane]) -> Result<Vec<u64>> {
        let mut copies = Vec::new();
        let mut queue = VecDeque::new();
        for (i, &(plan, write)) in tables.iter().enumerate() {
            let Some((copy, chunks)) = self.prepare(plan, write, lanes.len()).await? else {
                copies.push(None);
                continue;
            };
            if chunks.is_empty() {
                self.finish_table(&lanes[0], &copy).await?;
            }
            queue.extend(chunks.into_iter().map(|c| (i, c)));
            copies.push(Some(copy));
        }
        let queue = RefCell::new(queue);
        let workers = lanes.iter().map(|lane| self.worker(lane, &queue, &copies));
        futures_util::future::try_join_all(workers).await?;
        Ok(copies.iter().map(|c| c.as_ref().map_or(0, |c| c.copied.get())).collect())
    }

    /// One worker: takes the next chunk until none is left; the one that
    /// copies a table's last chunk finishes the table.
    async fn worker(
        &self,
        lane: &Lane,
        queue: &RefCell<VecDeque<(usize, ChunkProgress)>>,
        copies: &[Option<TableCopy<'_>>],
    ) -> Result<()> {
        loop {
            let next = queue.borrow_mut().pop_front();
            let Some((i, chunk)) = next else { return Ok(()) };
            let copy = copies[i].as_ref().expect("a queued chunk's table is being copied");
            self.copy_chunk(lane, copy, chunk).await?;
            copy.remaining.set(copy.remaining.get() - 1);
            if copy.remaining.get() == 0 {
                self.finish_table(lane, copy).await?;
            }
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
    ) -> Result<Option<(TableCopy<'p>, Vec<ChunkProgress>)>> {
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
            let workers = if progress.rows_copied > 0 || progress.pending_batch { 1 } else { workers };
            let ranges = crate::chunks::plan(&*self.source, plan, total, workers, self.policy.batch_size).await?;
            self.state.plan_chunks(&target, &ranges)?;
        }
        let create = Checkpoint::create_sql(Dialect::of(self.target.kind()));
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
        let mut left = Vec::new();
        for chunk in self.state.chunks(&target)? {
            if !chunk.done {
                left.push(self.follow_target(plan, chunk).await?);
            }
        }
        let progress = self.state.table(&target)?.unwrap_or(progress);
        self.note_resumed(&progress)?;
        let task = format!("backfill {target}");
        self.progress.task_started(&task, Some(total), progress.rows_copied);
        let copy = TableCopy {
            plan,
            write,
            types: write.columns.iter().map(|(_, t)| t.clone()).collect(),
            target,
            task,
            batch: Arc::new(ChunkSize::new(self.policy)),
            remaining: Cell::new(left.len()),
            copied: Cell::new(0),
        };
        Ok(Some((copy, left)))
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
        let (plan, target) = (copy.plan, &copy.target);
        let (tx, mut rx) = mpsc::channel::<ferry_engine::Result<Vec<Row>>>(2);
        let reader = {
            let (source, read, batch) = (lane.source.clone(), plan.read.clone(), copy.batch.clone());
            let mut range = KeyRange { after: chunk.last_key.clone().or(chunk.range.after.clone()), ..chunk.range };
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
        let result: Result<()> = async {
            while let Some(rows) = rx.recv().await {
                let rows = rows.map_err(|e| RunError::from(e).context(plan.origin()))?;
                let Some(last) = rows.last() else { break };
                crate::keycheck::refuse_unusable_keys(plan, &rows)?;
                let last_key = plan.read.key_of(last);
                let display = describe_key(&plan.key_source, &last_key);
                let count = rows.len() as u64;
                let converted = self.convert_batch(plan, &copy.types, rows)?;
                if let Some(throttle) = self.throttle {
                    throttle.wait().await?;
                }
                self.state.begin_batch(target, chunk.chunk)?;
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
            Ok(())
        }
        .await;
        reader.abort();
        result?;
        self.state.finish_chunk(target, chunk.chunk)
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
    async fn follow_target(&self, plan: &TablePlan, local: ChunkProgress) -> Result<ChunkProgress> {
        let target = plan.target_display();
        let key = Checkpoint::key(&target, local.chunk);
        let found = self.target.read_keys(&Checkpoint::read_spec(), &[key]).await?;
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
