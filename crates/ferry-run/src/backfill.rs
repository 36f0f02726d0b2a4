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
use crate::state::{StateStore, TableProgress};
use crate::throttle::{ChunkSize, Throttle};
use ferry_core::convert::convert;
use ferry_core::lifecycle::TableStage;
use ferry_core::spec::OnConversionError;
use ferry_core::value::describe_key;
use ferry_core::{AuditEvent, DataType, Policy, Row, Value};
use ferry_engine::sql::Dialect;
use ferry_engine::{Checkpoint, Durability, Engine, ErrorKind, Rows, WriteSpec};
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

impl Backfill<'_> {
    pub async fn table(&self, plan: &TablePlan, write: &WriteSpec) -> Result<u64> {
        let target = plan.target_display();
        let progress =
            self.state.table(&target)?.ok_or_else(|| RunError::state(format!("table {target} is not registered")))?;
        if progress.stage.copied() {
            return Ok(0);
        }
        if progress.stage < TableStage::Copying {
            crate::keycheck::refuse_colliding_keys(&*self.source, &*self.target, plan).await?;
            self.state.set_table_stage(&target, TableStage::Copying)?;
        }
        let progress = self.follow_target(plan, progress).await?;
        let total = match progress.rows_total {
            Some(t) => Some(t),
            None => {
                let estimate = plan.source.stats.row_estimate;
                let (total, exact) = match estimate {
                    Some(e) if e > EXACT_COUNT_LIMIT && plan.read.filter.is_none() => (e, false),
                    _ => (self.source.count(&plan.source_name, plan.read.filter.as_deref()).await?, true),
                };
                self.state.set_rows_total(&target, Some(total), exact)?;
                Some(total)
            }
        };
        if progress.rows_copied > 0 || progress.pending_batch {
            let line = self.state.audit(&AuditEvent::BackfillResumed {
                table: target.clone(),
                rows_copied: progress.rows_copied,
                redoing_batch: progress.pending_batch,
            })?;
            self.progress.note(&format!(
                "resuming {target} after {} rows{}",
                progress.rows_copied,
                progress.last_key_display.as_deref().map(|k| format!(" (last key {k})")).unwrap_or_default()
            ));
            tracing::info!("{line}");
        }
        let task = format!("backfill {target}");
        self.progress.task_started(&task, total, progress.rows_copied);

        let (tx, mut rx) = mpsc::channel::<ferry_engine::Result<Vec<Row>>>(2);
        let chunk = Arc::new(ChunkSize::new(self.policy));
        let reader = {
            let source = self.source.clone();
            let read = plan.read.clone();
            let chunk = chunk.clone();
            let mut after = progress.last_key.clone();
            tokio::spawn(async move {
                loop {
                    let batch = chunk.get();
                    let rows = source.read_batch(&read, after.as_deref(), batch).await;
                    let rows = match rows {
                        Ok(rows) => rows,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    let last = rows.len() < batch;
                    if let Some(row) = rows.last() {
                        after = Some(read.key_of(row));
                    }
                    if tx.send(Ok(rows)).await.is_err() || last {
                        return;
                    }
                }
            })
        };

        let types: Vec<DataType> = write.columns.iter().map(|(_, t)| t.clone()).collect();
        let mut redo = progress.pending_batch;
        let mut copied = 0u64;
        let mut checkpoint: Option<Checkpoint> = None;
        let result: Result<()> = async {
            while let Some(batch) = rx.recv().await {
                let rows = batch.map_err(|e| RunError::from(e).context(plan.origin()))?;
                let Some(last) = rows.last() else { break };
                crate::keycheck::refuse_unusable_keys(plan, &rows)?;
                let last_key = plan.read.key_of(last);
                let key_display = describe_key(&plan.key_source, &last_key);
                let count = rows.len() as u64;
                let converted = self.convert_batch(plan, &types, rows)?;
                if let Some(throttle) = self.throttle {
                    throttle.wait().await?;
                }
                self.state.begin_batch(&target)?;
                let started = std::time::Instant::now();
                let next = Checkpoint {
                    table: target.clone(),
                    chunk: 0,
                    last_key: key_json(&last_key)?,
                    rows: (progress.rows_copied + copied + count) as i64,
                    batches: checkpoint.as_ref().map_or(progress.batches as i64, |c| c.batches) + 1,
                };
                self.write_batch(plan, write, converted, Some(&next)).await?;
                checkpoint = Some(next);
                chunk.record(count as usize, started.elapsed());
                self.state.complete_batch(&target, &last_key, &key_display, count, redo)?;
                redo = false;
                copied += count;
                self.progress.advanced(&task, count);
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
        self.seal(write, checkpoint, &target, &progress).await?;
        self.state.complete_backfill(&target)?;
        self.progress.task_finished(&task);
        Ok(copied)
    }

    /// Takes the target's checkpoint of `plan`'s table into the state store
    /// when the two differ: the target committed a batch the state store did
    /// not record (a kill between the two), or lost batches the state store
    /// recorded (a crash of the target server, whose last commits need not
    /// be on disk). Either way the copy resumes after what the target holds.
    async fn follow_target(&self, plan: &TablePlan, local: TableProgress) -> Result<TableProgress> {
        let target = plan.target_display();
        let create = Checkpoint::create_sql(Dialect::of(self.target.kind()));
        self.target.execute(&[create], false, crate::runner::LOCK_TIMEOUT).await?;
        let found = self.target.read_keys(&Checkpoint::read_spec(), &[Checkpoint::key(&target, 0)]).await?;
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
        let display = last_key.as_ref().map(|k| describe_key(&plan.key_source, k));
        let note = if batches < local.batches {
            format!(
                "{target}: the target holds {rows} copied rows, the state store recorded {}; \
                 the target lost its last commits (a crash?), copying them again",
                local.rows_copied
            )
        } else {
            format!("{target}: the target committed {rows} rows, the state store had recorded {}", local.rows_copied)
        };
        self.progress.note(&note);
        tracing::warn!("{note}");
        self.state.audit(&AuditEvent::CheckpointFollowed {
            table: target.clone(),
            recorded_rows: local.rows_copied,
            target_rows: rows,
        })?;
        let pending = local.pending_batch && batches <= local.batches;
        let committed_key = last_key.as_deref().zip(display.as_deref());
        self.state.follow_target(&target, committed_key, rows, batches, pending)?;
        Ok(TableProgress {
            rows_copied: rows,
            batches,
            last_key,
            last_key_display: display,
            pending_batch: pending,
            ..local
        })
    }

    /// Makes the table's copy durable on the target: a commit that waits for
    /// the disk, and so for every commit before it. Only then is the table
    /// recorded as copied.
    async fn seal(
        &self,
        write: &WriteSpec,
        last: Option<Checkpoint>,
        target: &str,
        resumed: &TableProgress,
    ) -> Result<()> {
        let last = match (last, &resumed.last_key) {
            (Some(last), _) => last,
            (None, Some(key)) => Checkpoint {
                table: target.to_string(),
                chunk: 0,
                last_key: key_json(key)?,
                rows: resumed.rows_copied as i64,
                batches: resumed.batches as i64,
            },
            // Nothing written: nothing to make durable.
            (None, None) => return Ok(()),
        };
        self.target.upsert_checkpointed(write, Rows::from(Vec::new()), &last, Durability::Immediate).await?;
        Ok(())
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
            Some(c) => self.target.upsert_checkpointed(write, rows.clone(), c, Durability::Deferred).await,
            None => self.target.upsert(write, rows.clone()).await,
        };
        let Err(err) = written else {
            return Ok(());
        };
        if !matches!(err.kind(), ErrorKind::Conversion | ErrorKind::Constraint) {
            return Err(RunError::from(err));
        }
        for row in rows.iter() {
            if let Err(e) = self.target.upsert(write, Rows::from(vec![row.clone()])).await {
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

/// A key as the checkpoints keep it (JSON of its values).
fn key_json(key: &[Value]) -> Result<String> {
    serde_json::to_string(key).map_err(|e| RunError::state(format!("checkpoint key: {e}")))
}

/// The key values as they will be bound on resume, for tests and tools.
pub fn key_values(row: &Row, positions: &[usize]) -> Vec<Value> {
    positions.iter().map(|&i| row[i].clone()).collect()
}
