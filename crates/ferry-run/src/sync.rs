//! Phase 3: replay captured changes into the target.
//!
//! The change log is a queue. Replay reads the oldest changes, fetches the
//! *current* source row of every key they touched, upserts the rows that
//! exist and deletes the keys that no longer do, and only then removes those
//! changes from the log. Replaying twice is harmless, order between keys does
//! not matter, and a change committed late (with a lower sequence number than
//! one already replayed) is still in the queue and is replayed when read.
//!
//! A table is replayed only once its backfill is complete: a change applied
//! before the backfill wrote that key range could be overwritten by the
//! backfill's older read. Changes logged meanwhile wait in the queue.

use crate::backfill::{convert_row, Backfill, Lane};
use crate::error::{Result, RunError, RunErrorKind};
use crate::mapping::TablePlan;
use crate::state::{Direction, StateStore};
use ferry_core::{AuditEvent, DataType, Row, Value};
use ferry_engine::{CaptureLag, Engine, Rows, WriteSpec};
use std::collections::HashSet;
use std::sync::Arc;

pub struct Replayer<'a> {
    pub source: Arc<dyn Engine>,
    pub target: Arc<dyn Engine>,
    pub state: &'a StateStore,
    pub backfill: &'a Backfill<'a>,
    pub batch: usize,
    /// Target to source, after the switch: `plan` is the inverted plan.
    pub reverse: bool,
    /// While paused, the step waits only as long as this holds (then replays nothing this time).
    pub go_on: Option<&'a dyn Fn() -> bool>,
    /// Further connections a large batch's keys are spread over (by a hash
    /// of the key, so that no two connections write one row); empty: the
    /// batch is applied on `source` and `target` alone.
    pub helpers: Vec<Lane>,
}

/// Keys per connection below which a batch is not worth spreading.
const KEYS_PER_HELPER: usize = 500;

impl Replayer<'_> {
    /// Lag and progress, recorded under the migration's own (forward) table name.
    fn record(&self, plan: &TablePlan, replayed: u64, lag: CaptureLag) -> Result<()> {
        if self.reverse {
            self.state.record_reverse_replay(&plan.source_name.to_string(), replayed, lag)
        } else {
            self.state.record_replay(&plan.target_display(), replayed, lag)
        }
    }

    /// Whether the step may replay now (after waiting out a pause, as long as `go_on` lets it).
    async fn throttle(&self) -> Result<bool> {
        match self.backfill.throttle {
            Some(t) => t.wait_while(self.go_on.unwrap_or(&|| true)).await,
            None => Ok(true),
        }
    }

    /// Nothing replayed (still paused): the lag is measured all the same, so that it shows and its trigger can fire.
    async fn held_by_pause(&self, plan: &TablePlan) -> Result<Step> {
        let lag = self.source.capture_lag(&plan.source_name).await?;
        self.record(plan, 0, lag)?;
        Ok(Step { lag, ..Step::default() })
    }
}

/// What one replay step did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Step {
    pub changes: usize,
    pub upserted: usize,
    pub deleted: usize,
    pub lag: CaptureLag,
}

/// Rounds in a row in which a foreign key held some table back and no
/// table made progress, before the hold is reported as an error.
const HOLD_ROUNDS: u32 = 20;

/// Tables a foreign key on the written side holds back, across the rounds of
/// a replay loop. The source accepted every change, so a parent not yet
/// replayed, or children whose delete is still queued, arrive in a later
/// round: the held table keeps its changes queued and goes again. Only when
/// nothing moves any more is it an error (a key the source does not enforce).
#[derive(Default)]
pub struct Holds {
    held: Vec<RunError>,
    stuck_rounds: u32,
}

impl Holds {
    /// Whether any table was held back this round.
    pub fn any(&self) -> bool {
        !self.held.is_empty()
    }

    /// Ends a round in which `work` changes were replayed: waits a moment if
    /// tables are held, and fails once they have been held without progress
    /// for [`HOLD_ROUNDS`] rounds.
    pub async fn end_round(&mut self, work: usize) -> Result<()> {
        if self.held.is_empty() {
            self.stuck_rounds = 0;
            return Ok(());
        }
        self.stuck_rounds = if work == 0 { self.stuck_rounds + 1 } else { 0 };
        let held = std::mem::take(&mut self.held);
        if self.stuck_rounds >= HOLD_ROUNDS {
            let first = held.into_iter().next().expect("held is not empty");
            return Err(first.with_hint(
                "the target's foreign key refuses rows the source holds, and no queued change supplies what it \
                 needs: the source does not enforce this reference, or its parent table is not in the migration. \
                 Add the parent to the spec, or drop the key on the target",
            ));
        }
        if work == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// The order a replay round visits tables: parents before children, so that
/// a parent and its child inserted together arrive in one round.
pub fn replay_order(plans: &[TablePlan]) -> Vec<usize> {
    let mut order = crate::steps::drop_order(plans);
    order.reverse();
    order
}

impl Replayer<'_> {
    /// [`Replayer::step`], except that a batch the target's foreign keys
    /// refuse for now is held back (see [`Holds`]): its changes stay queued.
    pub async fn step_or_hold(&self, plan: &TablePlan, write: &WriteSpec, holds: &mut Holds) -> Result<Step> {
        match self.step(plan, write).await {
            Err(e) if e.kind == RunErrorKind::Engine(ferry_engine::ErrorKind::ForeignKey) => {
                let lag = self.source.capture_lag(&plan.source_name).await?;
                holds.held.push(e.context(format_args!("replaying {} into {}", plan.source_name, plan.target_name)));
                Ok(Step { lag, ..Step::default() })
            }
            other => other,
        }
    }

    /// Replays up to one batch of changes of one table.
    pub async fn step(&self, plan: &TablePlan, write: &WriteSpec) -> Result<Step> {
        let mut changes = self.source.read_changes(&plan.source_name, plan.key_source.len(), self.batch).await?;
        // A TRUNCATE is a barrier: the changes before it are replayed first,
        // then the target table is emptied, and every row written to the
        // source since is in the changes after it.
        match changes.iter().position(|c| c.is_truncation()) {
            Some(0) => return self.replay_truncation(plan, write, changes[0].seq).await,
            Some(first) => changes.truncate(first),
            None => {}
        }
        if !changes.is_empty() && !self.throttle().await? {
            return self.held_by_pause(plan).await;
        }
        let count = changes.len();
        if changes.is_empty() {
            let lag = self.source.capture_lag(&plan.source_name).await?;
            self.record(plan, 0, lag)?;
            return Ok(Step { lag, ..Step::default() });
        }
        let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
        let keys: Vec<Vec<Value>> = changes.into_iter().map(|c| c.key).collect();
        let (upserted, deleted) = self.apply(plan, write, &keys).await?;
        // Before the ack: a step killed in between is replayed, and recorded, again.
        let (table, direction) = if self.reverse {
            (plan.source_name.to_string(), Direction::Reverse)
        } else {
            (plan.target_display(), Direction::Forward)
        };
        self.state.record_changed_keys(&table, direction, &written_keys(plan, write, &keys))?;
        self.source.ack_changes(&plan.source_name, &seqs).await?;
        let lag = self.source.capture_lag(&plan.source_name).await?;
        self.record(plan, count as u64, lag)?;
        Ok(Step { changes: count, upserted, deleted, lag })
    }

    /// Makes the target's rows of `keys` the source's, on as many
    /// connections as the batch is worth. Order between keys does not
    /// matter (each key's current row is read), and each key goes to one
    /// connection, so the parts cannot wait for each other's row locks.
    async fn apply(&self, plan: &TablePlan, write: &WriteSpec, keys: &[Vec<Value>]) -> Result<(usize, usize)> {
        let parts = (keys.len() / KEYS_PER_HELPER).clamp(1, self.helpers.len() + 1);
        if parts == 1 {
            return copy_keys(&*self.source, &*self.target, self.backfill, plan, write, keys).await;
        }
        let split = split_keys(keys, parts, canonical_key(plan, write));
        let main = Lane { source: self.source.clone(), target: self.target.clone() };
        let lanes = std::iter::once(&main).chain(&self.helpers);
        let applied = lanes
            .zip(&split)
            .map(|(lane, keys)| copy_keys(&*lane.source, &*lane.target, self.backfill, plan, write, keys));
        // Every part runs to its end before an error is returned: a part
        // cut off mid-statement would leave its connection mid-answer, and
        // a held batch (a parent not there yet) is retried whole.
        let mut done = (0, 0);
        for part in futures_util::future::join_all(applied).await {
            let (upserted, deleted) = part?;
            done = (done.0 + upserted, done.1 + deleted);
        }
        Ok(done)
    }

    async fn replay_truncation(&self, plan: &TablePlan, write: &WriteSpec, seq: i64) -> Result<Step> {
        if !self.throttle().await? {
            return self.held_by_pause(plan).await;
        }
        self.target.delete_all(&write.table).await?;
        self.state.audit(&AuditEvent::TruncateReplayed { table: plan.target_display() })?;
        self.source.ack_changes(&plan.source_name, &[seq]).await?;
        let lag = self.source.capture_lag(&plan.source_name).await?;
        self.record(plan, 1, lag)?;
        Ok(Step { changes: 1, lag, ..Step::default() })
    }
}

/// Keys as the written side types them (the form a check reads both sides by).
pub fn written_keys(plan: &TablePlan, write: &WriteSpec, keys: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let key_types: Vec<DataType> = plan.read.key_positions.iter().map(|&i| write.columns[i].1.clone()).collect();
    keys.iter()
        .filter_map(|key| {
            let mut k = key.clone();
            convert_row(&mut k, &key_types).ok().map(|()| k)
        })
        .collect()
}

/// `keys` in `parts` parts by a hash of each key's encoding: every form of
/// one key lands in the same part.
fn split_keys(keys: &[Vec<Value>], parts: usize, encode: impl Fn(&[Value]) -> Vec<u8>) -> Vec<Vec<Vec<Value>>> {
    let mut split: Vec<Vec<Vec<Value>>> = vec![Vec::new(); parts];
    for key in keys {
        let part = xxhash_rust::xxh3::xxh3_64(&encode(key)) % parts as u64;
        split[part as usize].push(key.clone());
    }
    split
}

/// A key's encoding in the written side's types (its own where it does not
/// convert): two forms of one key encode alike.
fn canonical_key(plan: &TablePlan, write: &WriteSpec) -> impl Fn(&[Value]) -> Vec<u8> {
    let key_types: Vec<DataType> = plan.read.key_positions.iter().map(|&i| write.columns[i].1.clone()).collect();
    move |key: &[Value]| {
        let mut k = key.to_vec();
        match convert_row(&mut k, &key_types) {
            Ok(()) => Value::encode_row(&k),
            Err(_) => Value::encode_row(key),
        }
    }
}

/// Makes the target's rows of `keys` what the source's are now: upserts the
/// rows that exist, deletes the keys that no longer do (or no longer pass the
/// filter). Idempotent. Returns (rows upserted, keys deleted).
pub async fn copy_keys(
    source: &dyn Engine,
    target: &dyn Engine,
    backfill: &Backfill<'_>,
    plan: &TablePlan,
    write: &WriteSpec,
    keys: &[Vec<Value>],
) -> Result<(usize, usize)> {
    let key_types: Vec<DataType> = plan.read.key_positions.iter().map(|&i| write.columns[i].1.clone()).collect();
    let canonical = |key: &[Value]| -> Option<Vec<u8>> {
        let mut k = key.to_vec();
        convert_row(&mut k, &key_types).ok()?;
        Some(Value::encode_row(&k))
    };
    let mut seen = HashSet::new();
    let mut unique: Vec<Vec<Value>> = Vec::new();
    let any_form = canonical_key(plan, write);
    for key in keys {
        if seen.insert(any_form(key)) {
            unique.push(key.clone());
        }
    }
    let current: Vec<Row> = source.read_keys(&plan.read, &unique).await?;
    let present: HashSet<Vec<u8>> = current.iter().filter_map(|r| canonical(&plan.read.key_of(r))).collect();
    let mut gone: Vec<Vec<Value>> = Vec::new();
    for key in &unique {
        if canonical(key).is_some_and(|k| !present.contains(&k)) {
            let mut k = key.clone();
            if convert_row(&mut k, &key_types).is_ok() {
                gone.push(k);
            }
        }
    }
    let types: Vec<DataType> = write.columns.iter().map(|(_, t)| t.clone()).collect();
    let rows = backfill.convert_batch(plan, &types, current)?;
    let upserted = rows.len();
    if !rows.is_empty() {
        target.upsert(write, Rows::from(rows)).await?;
    }
    if !gone.is_empty() {
        let delete =
            WriteSpec { table: write.table.clone(), columns: write.columns.clone(), key: plan.key_target.clone() };
        target.delete_keys(&delete, &gone).await?;
    }
    Ok((upserted, gone.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_split_so_that_each_key_is_written_on_one_connection() {
        let keys: Vec<Vec<Value>> = (0..3000).map(|i| vec![Value::Int(i % 1000)]).collect();
        let split = split_keys(&keys, 3, Value::encode_row);
        assert_eq!(split.iter().map(Vec::len).sum::<usize>(), keys.len());
        for part in &split {
            // Roughly even: no part empty, none with most of the keys.
            assert!(part.len() > 600 && part.len() < 1400, "{}", part.len());
        }
        for i in 0..1000 {
            let holding = split.iter().filter(|p| p.contains(&vec![Value::Int(i)])).count();
            assert_eq!(holding, 1, "key {i} in {holding} parts");
        }
    }
}
