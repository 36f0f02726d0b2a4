//! Phase 4 (first level): exact counts, a checksum of every row, and a
//! column-by-column comparison of a random sample.
//!
//! Both tables are streamed once, concurrently. Every source row is first
//! converted to the target's column types, exactly as the backfill converts
//! it, then both sides are hashed over the canonical encoding. Rows are
//! spread over buckets by a hash of their key, so the comparison does not
//! depend on either engine's sort order or collation; only buckets that
//! differ are read a second time to name the rows.

use crate::backfill::convert_row;
use crate::error::Result;
use crate::mapping::TablePlan;
use crate::progress::Progress;
use ferry_core::value::describe_key;
use ferry_core::{DataType, Row, Value};
use ferry_engine::{Engine, ReadSpec};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

const BUCKETS: usize = 4096;
const READ_BATCH: usize = 10_000;
/// At most this many rows per side are held in memory to name differences.
const MAX_DIFF_ROWS: usize = 2_000_000;
pub const MAX_LISTED: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// In the source, not in the target.
    Missing,
    /// In the target, not in the source.
    Extra,
    /// Same key, different values.
    Mismatched,
    /// The source row cannot be converted to the target's types.
    Unconvertible,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub kind: DifferenceKind,
    pub key: String,
    /// For mismatches: the differing columns with source and target values.
    pub columns: Vec<ColumnDifference>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDifference {
    pub column: String,
    pub source: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableReport {
    pub source: String,
    pub target: String,
    pub rows_source: u64,
    pub rows_target: u64,
    pub checksum_source: String,
    pub checksum_target: String,
    pub checksum_match: bool,
    /// Rows found to differ (a lower bound when `differences_truncated`).
    pub differences_found: u64,
    pub differences_truncated: bool,
    /// Up to [`MAX_LISTED`] differences.
    pub differences: Vec<Difference>,
    pub sample_size: u64,
    pub sample_mismatches: u64,
    pub sample_differences: Vec<Difference>,
    /// Rows that differed while they were being written and matched once replay caught up.
    pub settled_rows: u64,
    pub duration_ms: u64,
    /// Keys (target types) of every row found different, for a second look.
    #[serde(skip)]
    pub keys: Vec<Vec<Value>>,
    /// Differences that cannot be looked at again (rows that do not convert).
    #[serde(skip)]
    pub unconvertible: Vec<Difference>,
}

impl TableReport {
    pub fn passed(&self) -> bool {
        let whole_table_agrees = self.rows_source == self.rows_target && self.checksum_match;
        let settled = self.settled_rows > 0 && !self.differences_truncated;
        self.sample_mismatches == 0 && self.differences_found == 0 && (whole_table_agrees || settled)
    }
}

/// Aggregates of one side.
struct Side {
    rows: u64,
    sums: Vec<u128>,
    counts: Vec<u64>,
    total: u128,
    unconvertible: Vec<Difference>,
    sample: Vec<(Vec<Value>, Row)>,
}

impl Side {
    fn new() -> Side {
        Side {
            rows: 0,
            sums: vec![0; BUCKETS],
            counts: vec![0; BUCKETS],
            total: 0,
            unconvertible: Vec::new(),
            sample: Vec::new(),
        }
    }
}

fn row_hashes(row: &Row, key_positions: &[usize]) -> (usize, u128, Vec<u8>) {
    let key_bytes = Value::encode_all(key_positions.iter().map(|&i| &row[i]));
    let bucket = (xxh3_64(&key_bytes) % BUCKETS as u64) as usize;
    (bucket, xxh3_128(&Value::encode_row(row)), key_bytes)
}

pub struct Verifier<'a> {
    pub source: Arc<dyn Engine>,
    pub target: Arc<dyn Engine>,
    pub sample_size: usize,
    pub progress: &'a dyn Progress,
}

impl Verifier<'_> {
    pub async fn table(&self, plan: &TablePlan, types: &[DataType]) -> Result<TableReport> {
        let started = Instant::now();
        let task = format!("verify {}", plan.target_name);
        self.progress.task_started(&task, plan.source.stats.row_estimate.map(|r| r * 2), 0);
        let target_read = plan.target_read();
        let names: Vec<String> = plan.columns.iter().map(|c| c.name.clone()).collect();
        let (source, target) = tokio::try_join!(
            scan(&*self.source, &plan.read, types, &plan.key_source, self.sample_size, self.progress, &task),
            scan(&*self.target, &target_read, types, &plan.key_target, 0, self.progress, &task),
        )?;
        let checksum_match = source.total == target.total && source.rows == target.rows;
        let differing: HashSet<usize> = (0..BUCKETS)
            .filter(|&b| source.sums[b] != target.sums[b] || source.counts[b] != target.counts[b])
            .collect();

        let mut differences: Vec<Difference> = source.unconvertible.clone();
        let mut differing_keys: Vec<Vec<Value>> = Vec::new();
        let key_of = |row: &Row| plan.read.key_positions.iter().map(|&i| row[i].clone()).collect::<Vec<_>>();
        let mut truncated = false;
        if !differing.is_empty() {
            let (src_rows, tgt_rows) = tokio::try_join!(
                collect_buckets(&*self.source, &plan.read, types, &differing),
                collect_buckets(&*self.target, &target_read, types, &differing),
            )?;
            truncated = src_rows.len() >= MAX_DIFF_ROWS || tgt_rows.len() >= MAX_DIFF_ROWS;
            for (key, (hash, row)) in &src_rows {
                if tgt_rows.get(key).is_none_or(|(other, _)| other != hash) {
                    differing_keys.push(key_of(row));
                }
                match tgt_rows.get(key) {
                    None => differences.push(Difference {
                        kind: DifferenceKind::Missing,
                        key: describe_key(
                            &plan.key_target,
                            &plan.read.key_positions.iter().map(|&i| row[i].clone()).collect::<Vec<_>>(),
                        ),
                        columns: Vec::new(),
                    }),
                    Some((other, target_row)) if other != hash => differences.push(Difference {
                        kind: DifferenceKind::Mismatched,
                        key: describe_key(
                            &plan.key_target,
                            &plan.read.key_positions.iter().map(|&i| row[i].clone()).collect::<Vec<_>>(),
                        ),
                        columns: column_differences(&names, row, target_row),
                    }),
                    Some(_) => {}
                }
            }
            for (key, (_, row)) in &tgt_rows {
                if !src_rows.contains_key(key) {
                    differing_keys.push(key_of(row));
                    differences.push(Difference {
                        kind: DifferenceKind::Extra,
                        key: describe_key(
                            &plan.key_target,
                            &plan.read.key_positions.iter().map(|&i| row[i].clone()).collect::<Vec<_>>(),
                        ),
                        columns: Vec::new(),
                    });
                }
            }
        }
        differences.sort_by(|a, b| (a.kind as u8, &a.key).cmp(&(b.kind as u8, &b.key)));
        let differences_found = differences.len() as u64;
        differences.truncate(MAX_LISTED);

        // The sample: fetch the same keys from the target and compare every column.
        let keys: Vec<Vec<Value>> = source.sample.iter().map(|(k, _)| k.clone()).collect();
        let mut sample_differences = Vec::new();
        let mut sample_mismatches = 0u64;
        if !keys.is_empty() {
            let fetched = self.target.read_keys(&target_read, &keys).await?;
            let mut by_key: HashMap<Vec<u8>, Row> = HashMap::new();
            for mut row in fetched {
                if convert_row(&mut row, types).is_err() {
                    continue;
                }
                let key: Vec<Value> = plan.read.key_positions.iter().map(|&i| row[i].clone()).collect();
                by_key.insert(Value::encode_row(&key), row);
            }
            for (key, row) in &source.sample {
                let display = describe_key(&plan.key_target, key);
                match by_key.get(&Value::encode_row(key)) {
                    None => {
                        differing_keys.push(key.clone());
                        sample_mismatches += 1;
                        sample_differences.push(Difference {
                            kind: DifferenceKind::Missing,
                            key: display,
                            columns: Vec::new(),
                        });
                    }
                    Some(target_row) => {
                        let columns = column_differences(&names, row, target_row);
                        if !columns.is_empty() {
                            differing_keys.push(key.clone());
                            sample_mismatches += 1;
                            sample_differences.push(Difference {
                                kind: DifferenceKind::Mismatched,
                                key: display,
                                columns,
                            });
                        }
                    }
                }
            }
            sample_differences.truncate(MAX_LISTED);
        }
        self.progress.task_finished(&task);
        Ok(TableReport {
            source: plan.source_name.to_string(),
            target: plan.target_name.to_string(),
            rows_source: source.rows,
            rows_target: target.rows,
            checksum_source: format!("{:032x}", source.total),
            checksum_target: format!("{:032x}", target.total),
            checksum_match,
            differences_found,
            differences_truncated: truncated,
            differences,
            sample_size: source.sample.len() as u64,
            sample_mismatches,
            sample_differences,
            settled_rows: 0,
            duration_ms: started.elapsed().as_millis() as u64,
            keys: differing_keys,
            unconvertible: source.unconvertible,
        })
    }

    /// Looks again at the rows a report found different; keeps only those that
    /// still differ, and counts the others as settled.
    pub async fn recheck(&self, plan: &TablePlan, types: &[DataType], report: &mut TableReport) -> Result<()> {
        let mut unique: HashMap<Vec<u8>, Vec<Value>> = HashMap::new();
        for k in report.keys.drain(..) {
            unique.entry(Value::encode_row(&k)).or_insert(k);
        }
        let keys: Vec<Vec<Value>> = unique.into_values().collect();
        let before = keys.len() as u64;
        let target_read = plan.target_read();
        let (src, tgt) =
            tokio::try_join!(self.source.read_keys(&plan.read, &keys), self.target.read_keys(&target_read, &keys))?;
        let index = |rows: Vec<Row>| -> HashMap<Vec<u8>, Row> {
            rows.into_iter()
                .filter_map(|mut r| {
                    convert_row(&mut r, types).ok()?;
                    let key = Value::encode_all(plan.read.key_positions.iter().map(|&i| &r[i]));
                    Some((key, r))
                })
                .collect()
        };
        let (src, tgt) = (index(src), index(tgt));
        let names: Vec<String> = plan.columns.iter().map(|c| c.name.clone()).collect();
        let mut remaining = report.unconvertible.clone();
        for key in &keys {
            let k = Value::encode_row(key);
            let display = describe_key(&plan.key_target, key);
            let difference = match (src.get(&k), tgt.get(&k)) {
                (None, None) => None,
                (Some(_), None) => {
                    Some(Difference { kind: DifferenceKind::Missing, key: display, columns: Vec::new() })
                }
                (None, Some(_)) => Some(Difference { kind: DifferenceKind::Extra, key: display, columns: Vec::new() }),
                (Some(s), Some(t)) => {
                    let columns = column_differences(&names, s, t);
                    (!columns.is_empty()).then_some(Difference {
                        kind: DifferenceKind::Mismatched,
                        key: display,
                        columns,
                    })
                }
            };
            if let Some(d) = difference {
                remaining.push(d);
                report.keys.push(key.clone());
            }
        }
        let still = report.keys.len() as u64;
        report.settled_rows += before - still;
        report.differences_found = remaining.len() as u64;
        report.sample_mismatches = report.sample_mismatches.min(still);
        if still == 0 {
            report.sample_mismatches = 0;
            report.sample_differences.clear();
        }
        remaining.truncate(MAX_LISTED);
        report.differences = remaining;
        Ok(())
    }
}

fn column_differences(names: &[String], source: &Row, target: &Row) -> Vec<ColumnDifference> {
    names
        .iter()
        .zip(source.iter().zip(target))
        .filter(|(_, (s, t))| {
            Value::encode_row(std::slice::from_ref(*s)) != Value::encode_row(std::slice::from_ref(*t))
        })
        .map(|(n, (s, t))| ColumnDifference { column: n.clone(), source: s.to_string(), target: t.to_string() })
        .collect()
}

/// Streams a whole table: counts, bucket sums, unconvertible rows, and a
/// uniform random sample of `sample_size` rows (reservoir sampling).
async fn scan(
    engine: &dyn Engine,
    read: &ReadSpec,
    types: &[DataType],
    key_names: &[String],
    sample_size: usize,
    progress: &dyn Progress,
    task: &str,
) -> Result<Side> {
    let mut side = Side::new();
    let mut after: Option<Vec<Value>> = None;
    let mut seen = 0u64;
    loop {
        let rows = engine.read_batch(read, after.as_deref(), READ_BATCH).await?;
        let last_batch = rows.len() < READ_BATCH;
        if let Some(last) = rows.last() {
            after = Some(read.key_of(last));
        }
        progress.advanced(task, rows.len() as u64);
        for mut row in rows {
            match convert_row(&mut row, types) {
                Ok(()) => {}
                Err((col, e)) => {
                    side.unconvertible.push(Difference {
                        kind: DifferenceKind::Unconvertible,
                        key: describe_key(key_names, &read.key_of(&row)),
                        columns: vec![ColumnDifference {
                            column: read_column_name(read, col),
                            source: e.value.clone(),
                            target: e.reason.clone(),
                        }],
                    });
                    side.rows += 1;
                    continue;
                }
            };
            let (bucket, hash, _) = row_hashes(&row, &read.key_positions);
            side.rows += 1;
            side.sums[bucket] = side.sums[bucket].wrapping_add(hash);
            side.counts[bucket] += 1;
            side.total = side.total.wrapping_add(hash);
            if sample_size > 0 {
                seen += 1;
                let key: Vec<Value> = read.key_positions.iter().map(|&i| row[i].clone()).collect();
                if side.sample.len() < sample_size {
                    side.sample.push((key, row));
                } else {
                    let j = fastrand::u64(0..seen) as usize;
                    if j < sample_size {
                        side.sample[j] = (key, row);
                    }
                }
            }
        }
        if last_batch {
            return Ok(side);
        }
    }
}

fn read_column_name(read: &ReadSpec, index: usize) -> String {
    match &read.select[index] {
        ferry_engine::SelectItem::Column(c) => c.clone(),
        ferry_engine::SelectItem::Expr(e) => e.clone(),
    }
}

/// Rows of the differing buckets, by canonical key.
async fn collect_buckets(
    engine: &dyn Engine,
    read: &ReadSpec,
    types: &[DataType],
    buckets: &HashSet<usize>,
) -> Result<HashMap<Vec<u8>, (u128, Row)>> {
    let mut out = HashMap::new();
    let mut after: Option<Vec<Value>> = None;
    loop {
        let rows = engine.read_batch(read, after.as_deref(), READ_BATCH).await?;
        let last_batch = rows.len() < READ_BATCH;
        if let Some(last) = rows.last() {
            after = Some(read.key_of(last));
        }
        for mut row in rows {
            if convert_row(&mut row, types).is_err() {
                continue;
            }
            let (bucket, hash, key) = row_hashes(&row, &read.key_positions);
            if buckets.contains(&bucket) {
                out.insert(key, (hash, row));
                if out.len() >= MAX_DIFF_ROWS {
                    return Ok(out);
                }
            }
        }
        if last_batch {
            return Ok(out);
        }
    }
}
