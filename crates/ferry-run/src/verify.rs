//! Phase 4: every row compared (by chunk checksums, bisected down to the
//! rows that differ; see [`crate::compare`]), and a random sample compared
//! column by column.
//!
//! Every source row is converted to the target's column types exactly as
//! the backfill converts it before it is compared. Progress is checkpointed
//! after every chunk, so a verification that is stopped continues where it
//! stopped.

use crate::backfill::convert_row;
use crate::compare::{classify, order_is_shared, same_text_form, DiffOutcome, Side, TableDiff};
pub use crate::compare::{ColumnDifference, Difference, DifferenceCounts, DifferenceKind, Method};
use crate::error::Result;
use crate::mapping::TablePlan;
use crate::progress::Progress;
use crate::state::StateStore;
use ferry_core::value::describe_key;
use ferry_core::{DataType, Row, Value};
use ferry_engine::{Engine, SelectItem};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// How often a verification's progress is written to the state store.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Differences listed in a report (all are counted).
pub const MAX_LISTED: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableReport {
    pub source: String,
    pub target: String,
    pub method: Method,
    pub rows_source: u64,
    pub rows_target: u64,
    pub chunks: u64,
    pub chunks_differing: u64,
    pub rows_compared: u64,
    /// Every chunk's count and checksum agreed.
    pub checksum_match: bool,
    /// Rows found to differ (a lower bound when `differences_truncated`).
    pub differences_found: u64,
    pub differences_truncated: bool,
    pub counts: DifferenceCounts,
    /// Up to [`MAX_LISTED`] differences.
    pub differences: Vec<Difference>,
    pub sample_size: u64,
    pub sample_mismatches: u64,
    pub sample_differences: Vec<Difference>,
    /// Rows that differed while they were being written and matched once replay caught up.
    pub settled_rows: u64,
    /// Whether this verification continued one that had been stopped.
    pub resumed: bool,
    pub duration_ms: u64,
    /// Keys (target types) of every row found different, for a second look or a repair.
    #[serde(skip)]
    pub keys: Vec<Vec<Value>>,
}

impl TableReport {
    pub fn passed(&self) -> bool {
        self.sample_mismatches == 0 && self.differences_found == 0
    }

    fn from_outcome(plan: &TablePlan, o: DiffOutcome, resumed: bool) -> TableReport {
        let found = o.counts.total();
        let mut differences = o.differences;
        differences.truncate(MAX_LISTED);
        let mut sample_differences = o.sample_differences;
        sample_differences.truncate(MAX_LISTED);
        TableReport {
            source: plan.source_name.to_string(),
            target: plan.target_name.to_string(),
            method: o.method,
            rows_source: o.rows_source,
            rows_target: o.rows_target,
            chunks: o.chunks,
            chunks_differing: o.chunks_differing,
            rows_compared: o.rows_compared,
            checksum_match: found == 0,
            differences_found: found,
            differences_truncated: o.keys.len() as u64 + o.counts.unconvertible < found,
            counts: o.counts,
            differences,
            sample_size: o.sample.len() as u64,
            sample_mismatches: o.sample_mismatches,
            sample_differences,
            settled_rows: 0,
            resumed,
            duration_ms: o.duration_ms,
            keys: o.keys,
        }
    }
}

pub struct Verifier<'a> {
    pub source: Arc<dyn Engine>,
    pub target: Arc<dyn Engine>,
    pub sample_size: usize,
    /// Source rows per chunk.
    pub chunk_rows: usize,
    pub progress: &'a dyn Progress,
    pub cancel: crate::cancel::Cancel,
}

impl Verifier<'_> {
    /// Verifies one table, continuing a stopped verification recorded in
    /// `state` (when given) and checkpointing there after every chunk.
    pub async fn table(&self, plan: &TablePlan, types: &[DataType], state: Option<&StateStore>) -> Result<TableReport> {
        let name = plan.target_display();
        let task = format!("verify {}", plan.target_name);
        let mut resume: Option<DiffOutcome> = None;
        let mut started_at = crate::state::timestamp(crate::state::now());
        if let Some((at, json)) = state.map(|s| s.verify_checkpoint(&name)).transpose()?.flatten() {
            if let Ok(outcome) = serde_json::from_str::<DiffOutcome>(&json) {
                self.progress.note(&format!(
                    "continuing the verification of {name} started at {at}, after {} chunk(s)",
                    outcome.chunks
                ));
                started_at = at;
                resume = Some(outcome);
            }
        }
        let resumed = resume.is_some();
        let done = resume.as_ref().map_or(0, |r| r.rows_source);
        self.progress.task_started(&task, plan.source.stats.row_estimate, done);
        let source_types: Vec<Option<DataType>> = plan
            .read
            .select
            .iter()
            .map(|item| match item {
                SelectItem::Column(c) => plan.source.column(c).map(|c| c.data_type.clone()),
                SelectItem::Expr(_) => None,
            })
            .collect();
        let ordered_keys = plan
            .read
            .key_positions
            .iter()
            .all(|&i| order_is_shared(&types[i]) && source_types[i].as_ref().is_some_and(order_is_shared));
        let in_database = self.source.kind() == self.target.kind()
            && self.source.capabilities().checksums_in_database
            && source_types.iter().zip(types).all(|(s, t)| s.as_ref().is_some_and(|s| same_text_form(s, t)));
        let diff = TableDiff {
            source: Side { engine: &*self.source, read: plan.read.clone() },
            target: Side { engine: &*self.target, read: plan.target_read() },
            types: types.to_vec(),
            names: plan.columns.iter().map(|c| c.name.clone()).collect(),
            key_names: plan.key_target.clone(),
            ordered_keys,
            in_database,
            chunk_rows: self.chunk_rows,
            row_estimate: plan.source.stats.row_estimate,
            sample_size: self.sample_size,
            progress: self.progress,
            task: task.clone(),
        };
        // A checkpoint carries everything found so far (up to a million keys
        // when the tables differ a lot): written after the first chunk, then
        // at most every CHECKPOINT_EVERY, and always before stopping as asked.
        let mut saved_at: Option<std::time::Instant> = None;
        let mut save = |o: &DiffOutcome| -> Result<()> {
            let stopping = self.cancel.requested();
            let due = saved_at.is_none_or(|at| at.elapsed() >= CHECKPOINT_EVERY);
            if let Some(state) = state.filter(|_| due || stopping) {
                let json = serde_json::to_string(o).map_err(|e| crate::RunError::state(e.to_string()))?;
                state.save_verify_checkpoint(&name, &started_at, &json)?;
                saved_at = Some(std::time::Instant::now());
            }
            // Ctrl-C or SIGTERM: stop at this chunk boundary; the next verify continues from it.
            if stopping {
                return Err(crate::cancel::interrupted());
            }
            Ok(())
        };
        let outcome = diff.run(resume, &mut save).await?;
        if let Some(state) = state {
            state.clear_verify_checkpoint(&name)?;
        }
        self.progress.task_finished(&task);
        Ok(TableReport::from_outcome(plan, outcome, resumed))
    }

    /// Looks again at the rows a report found different; keeps only those that
    /// still differ, and counts the others as settled.
    pub async fn recheck(&self, plan: &TablePlan, types: &[DataType], report: &mut TableReport) -> Result<()> {
        let keys: Vec<Vec<Value>> = std::mem::take(&mut report.keys);
        let before = unique_keys(keys.clone()).len() as u64;
        let mut remaining: Vec<Difference> =
            report.differences.iter().filter(|d| d.kind == DifferenceKind::Unconvertible).cloned().collect();
        for (key, difference) in compare_keys(&*self.source, &*self.target, plan, types, keys).await? {
            remaining.push(difference);
            report.keys.push(key);
        }
        let still = report.keys.len() as u64;
        report.settled_rows += before - still;
        report.differences_found = remaining.len() as u64;
        report.sample_mismatches = report.sample_mismatches.min(still);
        if still == 0 && remaining.is_empty() {
            // Every chunk that differed was looked at again row by row and is
            // equal now: the checksum verdict is that, everywhere it is shown.
            report.sample_mismatches = 0;
            report.sample_differences.clear();
            report.checksum_match = true;
        }
        remaining.truncate(MAX_LISTED);
        report.differences = remaining;
        Ok(())
    }
}

fn unique_keys(keys: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    let mut unique: HashMap<Vec<u8>, Vec<Value>> = HashMap::new();
    for k in keys {
        unique.entry(Value::encode_row(&k)).or_insert(k);
    }
    unique.into_values().collect()
}

/// Reads `keys` (typed as the target types them) on both sides and returns
/// each key whose rows differ, with how. The rows found equal are not returned.
pub async fn compare_keys(
    source: &dyn Engine,
    target: &dyn Engine,
    plan: &TablePlan,
    types: &[DataType],
    keys: Vec<Vec<Value>>,
) -> Result<Vec<(Vec<Value>, Difference)>> {
    let keys = unique_keys(keys);
    let target_read = plan.target_read();
    let mut out = Vec::new();
    for chunk in keys.chunks(1_000) {
        let (src, tgt) = tokio::try_join!(source.read_keys(&plan.read, chunk), target.read_keys(&target_read, chunk))?;
        let (src, tgt) = (index_rows(plan, types, src), index_rows(plan, types, tgt));
        for key in chunk {
            let k = Value::encode_row(key);
            if let Some(d) = difference_of(plan, key, src.get(&k), tgt.get(&k)) {
                out.push((key.clone(), d));
            }
        }
    }
    Ok(out)
}

/// Rows converted to the target's types, by their encoded key; a row that
/// cannot be converted is left out (verification reports it).
pub(crate) fn index_rows(plan: &TablePlan, types: &[DataType], rows: Vec<Row>) -> HashMap<Vec<u8>, Row> {
    rows.into_iter()
        .filter_map(|mut r| {
            convert_row(&mut r, types).ok()?;
            let key = Value::encode_all(plan.read.key_positions.iter().map(|&i| &r[i]));
            Some((key, r))
        })
        .collect()
}

/// How the source and target rows of `key` differ, if they do.
pub(crate) fn difference_of(
    plan: &TablePlan,
    key: &[Value],
    source: Option<&Row>,
    target: Option<&Row>,
) -> Option<Difference> {
    let names: Vec<String> = plan.columns.iter().map(|c| c.name.clone()).collect();
    classify(&names, describe_key(&plan.key_target, key), source, target)
}
