//! Cutting a table's key range into chunks that workers copy side by side.
//!
//! Boundaries are keys read from the source at equal row counts (the
//! `OFFSET`-th key after the previous boundary, on the key's index), so any
//! key — text, composite, sparse — cuts into chunks of about equal rows.
//! Consecutive chunks share a bound ([`KeyRange`]): no key is lost or copied
//! twice. The plan is recorded before any chunk is copied, and a resumed copy
//! keeps it.

use crate::error::{Result, RunError};
use crate::mapping::TablePlan;
use ferry_engine::{Engine, KeyRange, ReadSpec, SelectItem};

/// Chunks per worker: one that finishes early takes another.
const CHUNKS_PER_WORKER: usize = 2;

/// How many chunks `total` rows are copied in: one per worker and a spare,
/// none smaller than two batches; one when there is one worker.
pub fn count(total: u64, workers: usize, batch_size: usize) -> usize {
    if workers <= 1 {
        return 1;
    }
    let smallest = (2 * batch_size).max(1) as u64;
    ((total / smallest) as usize).clamp(1, workers * CHUNKS_PER_WORKER)
}

/// The key ranges `plan`'s table is copied in.
pub async fn plan(
    source: &dyn Engine,
    plan: &TablePlan,
    total: u64,
    workers: usize,
    batch_size: usize,
) -> Result<Vec<KeyRange>> {
    let parts = count(total, workers, batch_size);
    if parts == 1 {
        return Ok(vec![KeyRange::default()]);
    }
    let keys = keys_only(&plan.read);
    let step = (total / parts as u64).max(1) as usize;
    let mut bounds: Vec<Vec<ferry_core::Value>> = Vec::new();
    for _ in 1..parts {
        let from = KeyRange { after: bounds.last().cloned(), through: None };
        let found = source
            .read_range(&keys, &from, step - 1, 1)
            .await
            .map_err(|e| RunError::from(e).context(format!("cutting {} into chunks", plan.source_name)))?;
        // Fewer rows than counted: the last chunk takes the rest.
        let Some(row) = found.into_iter().next() else { break };
        bounds.push(row);
    }
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    let mut after = None;
    for bound in bounds {
        ranges.push(KeyRange { after: after.take(), through: Some(bound.clone()) });
        after = Some(bound);
    }
    ranges.push(KeyRange { after, through: None });
    Ok(ranges)
}

/// A read of the key columns only, in key order, under the table's filter.
pub(crate) fn keys_only(read: &ReadSpec) -> ReadSpec {
    ReadSpec {
        table: read.table.clone(),
        select: read.key.iter().map(|k| SelectItem::Column(k.clone())).collect(),
        key: read.key.clone(),
        key_positions: (0..read.key.len()).collect(),
        filter: read.filter.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_copies_in_one_chunk_and_small_tables_are_not_cut_fine() {
        assert_eq!(count(1_000_000, 1, 5000), 1);
        assert_eq!(count(1_000_000, 4, 5000), 8);
        assert_eq!(count(25_000, 4, 5000), 2);
        assert_eq!(count(9_999, 4, 5000), 1);
        assert_eq!(count(0, 4, 5000), 1);
    }
}
