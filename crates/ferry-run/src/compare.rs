//! Finding the rows that differ between two tables, on any pair of engines.
//!
//! The key space is cut into chunks of consecutive source keys. Each chunk is
//! compared by count and checksum on both sides; only a chunk that differs is
//! cut again (into [`FANOUT`] parts, by the source keys it holds) until a part
//! is small enough to read and compare row by row. Where both databases are
//! the same engine the checksums are computed in the database and no row
//! crosses the network until a difference is found; otherwise each chunk is
//! read from both sides and compared over the canonical encoding.
//!
//! Whatever the path, differences are only ever *named* by the row-by-row
//! comparison of canonical values, after converting both rows to the same
//! types: a checksum computed in the database can raise a false alarm
//! (`timestamp` against `timestamptz` text, say), never a false report.
//!
//! Ranges need both engines to order keys alike. Integer, decimal, temporal
//! and byte-string keys do; text keys do not (collations differ: `a < B` in
//! one, `B < a` in another), so tables keyed by text are compared by key-hash
//! buckets instead: one streaming pass over each side, rows spread over
//! buckets by a hash of their canonical key, a second pass over the buckets
//! that differ. Neither side's collation plays any part in either method.

use crate::backfill::convert_row;
use crate::error::Result;
use crate::progress::Progress;
use ferry_core::convert::ConversionError;
use ferry_core::value::describe_key;
use ferry_core::{DataType, Row, Value};
use ferry_engine::{Engine, KeyRange, ReadSpec};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

/// A differing chunk is cut into this many parts.
const FANOUT: usize = 16;
/// A part with at most this many source rows is compared row by row.
const LEAF_ROWS: usize = 512;
/// Rows read per query when a range is read in full.
const READ_PAGE: usize = 10_000;
/// Buckets of the key-hash method.
const BUCKETS: usize = 4096;
/// After this many chunks whose checksums differed but whose rows were equal,
/// the database's checksums are not worth asking for on this table.
const FALSE_ALARMS_TOLERATED: u32 = 3;
/// At most this many differences are kept for the report (all are counted).
pub const MAX_KEPT: usize = 10_000;
/// A range holding more rows than this on one side is not read into memory.
const MAX_RANGE_ROWS: usize = 4_000_000;
/// At most this many differing keys are kept for a second look or a repair.
const MAX_KEYS: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub kind: DifferenceKind,
    pub key: String,
    /// For mismatches: the differing columns with source and target values.
    pub columns: Vec<ColumnDifference>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDifference {
    pub column: String,
    pub source: String,
    pub target: String,
}

/// How the two tables were compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Key ranges, checksums computed in both databases, bisection to rows.
    RangesInDatabase,
    /// Key ranges, each read from both sides and hashed here.
    Ranges,
    /// Key-hash buckets (keys whose order the engines do not share).
    KeyHashBuckets,
    /// In place: every row's new columns recomputed from its old ones, in the database.
    Recomputed,
}

/// Counts of differences by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DifferenceCounts {
    pub missing: u64,
    pub extra: u64,
    pub mismatched: u64,
    pub unconvertible: u64,
}

impl DifferenceCounts {
    pub fn total(&self) -> u64 {
        self.missing + self.extra + self.mismatched + self.unconvertible
    }

    fn add(&mut self, kind: DifferenceKind) {
        match kind {
            DifferenceKind::Missing => self.missing += 1,
            DifferenceKind::Extra => self.extra += 1,
            DifferenceKind::Mismatched => self.mismatched += 1,
            DifferenceKind::Unconvertible => self.unconvertible += 1,
        }
    }
}

/// Everything one comparison found; also its checkpoint while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffOutcome {
    pub method: Method,
    pub rows_source: u64,
    pub rows_target: u64,
    /// Chunks (or buckets) compared, and how many of them differed.
    pub chunks: u64,
    pub chunks_differing: u64,
    /// Rows read and compared value by value (the rest were settled by checksums).
    pub rows_compared: u64,
    pub counts: DifferenceCounts,
    /// The first [`MAX_KEPT`] differences, in the order found.
    pub differences: Vec<Difference>,
    /// Keys of the differing rows, in the target's types (unconvertible rows excluded).
    pub keys: Vec<Vec<Value>>,
    /// Keys of the random sample (source types).
    pub sample: Vec<Vec<Value>>,
    /// Sampled rows whose columns differ (compared one by one, independently of the checksums).
    pub sample_mismatches: u64,
    pub sample_differences: Vec<Difference>,
    /// Where a resumed comparison continues: after this source key.
    pub resume_after: Option<Vec<Value>>,
    pub finished: bool,
    /// Chunks whose in-database checksums differed though every row was equal.
    pub false_alarms: u32,
    /// Rows seen, for the sample's reservoir.
    pub seen: u64,
    pub duration_ms: u64,
}

/// What a comparison found, for people and programs: the outcome without
/// its working state (checkpoint position, the sample's and differences' keys).
#[derive(Debug, Serialize)]
pub struct DiffSummary<'a> {
    pub method: Method,
    pub rows_source: u64,
    pub rows_target: u64,
    pub chunks: u64,
    pub chunks_differing: u64,
    pub rows_compared: u64,
    pub counts: DifferenceCounts,
    pub differences: &'a [Difference],
    pub sample_size: usize,
    pub sample_mismatches: u64,
    pub sample_differences: &'a [Difference],
    pub duration_ms: u64,
}

impl DiffOutcome {
    pub fn summary(&self) -> DiffSummary<'_> {
        DiffSummary {
            method: self.method,
            rows_source: self.rows_source,
            rows_target: self.rows_target,
            chunks: self.chunks,
            chunks_differing: self.chunks_differing,
            rows_compared: self.rows_compared,
            counts: self.counts,
            differences: &self.differences,
            sample_size: self.sample.len(),
            sample_mismatches: self.sample_mismatches,
            sample_differences: &self.sample_differences,
            duration_ms: self.duration_ms,
        }
    }

    fn new(method: Method) -> DiffOutcome {
        DiffOutcome {
            method,
            rows_source: 0,
            rows_target: 0,
            chunks: 0,
            chunks_differing: 0,
            rows_compared: 0,
            counts: DifferenceCounts::default(),
            differences: Vec::new(),
            keys: Vec::new(),
            sample: Vec::new(),
            sample_mismatches: 0,
            sample_differences: Vec::new(),
            resume_after: None,
            finished: false,
            false_alarms: 0,
            seen: 0,
            duration_ms: 0,
        }
    }

    pub fn identical(&self) -> bool {
        self.counts.total() == 0
    }

    fn record(&mut self, difference: Difference, key: Option<Vec<Value>>) {
        self.counts.add(difference.kind);
        if self.differences.len() < MAX_KEPT {
            self.differences.push(difference);
        }
        if let Some(key) = key {
            if self.keys.len() < MAX_KEYS {
                self.keys.push(key);
            }
        }
    }

    fn offer_sample(&mut self, size: usize, key: impl FnOnce() -> Vec<Value>) {
        offer(&mut self.sample, &mut self.seen, size, key);
    }
}

/// Reservoir sampling: every key seen has the same chance to be kept. The
/// key is built only when it is kept (this runs once per row).
fn offer(sample: &mut Vec<Vec<Value>>, seen: &mut u64, size: usize, key: impl FnOnce() -> Vec<Value>) {
    if size == 0 {
        return;
    }
    *seen += 1;
    if sample.len() < size {
        sample.push(key());
    } else {
        let j = fastrand::u64(0..*seen) as usize;
        if j < size {
            sample[j] = key();
        }
    }
}

/// One table as the comparison reads it.
pub struct Side<'a> {
    pub engine: &'a dyn Engine,
    pub read: ReadSpec,
}

/// Compares one table on two databases.
pub struct TableDiff<'a> {
    pub source: Side<'a>,
    pub target: Side<'a>,
    /// The types both sides' rows are converted to before comparing (the target's).
    pub types: Vec<DataType>,
    /// Column names for reports, in select order.
    pub names: Vec<String>,
    /// Key column names for reports, in key order.
    pub key_names: Vec<String>,
    /// Whether key ranges select the same rows on both sides.
    pub ordered_keys: bool,
    /// Whether the two databases can checksum in place comparably (same engine, same types).
    pub in_database: bool,
    pub chunk_rows: usize,
    /// Rows in the source table, estimated; sizes ranges cut by arithmetic.
    pub row_estimate: Option<u64>,
    pub sample_size: usize,
    pub progress: &'a dyn Progress,
    pub task: String,
}

/// Whether engines agree on the order of keys of this type, so that a key
/// range selects the same rows on both sides.
pub fn order_is_shared(t: &DataType) -> bool {
    !matches!(t, DataType::Text { .. } | DataType::Json | DataType::Uuid)
}

/// Whether a column of type `a` on one side and `b` on the other have the same
/// text form in one engine, so that in-database checksums can agree.
pub fn same_text_form(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (Int16 | Int32 | Int64, Int16 | Int32 | Int64) => true,
        (Text { .. }, Text { .. }) => true,
        (Decimal { scale: s1, .. }, Decimal { scale: s2, .. }) => s1 == s2 && s1.is_some(),
        _ => a == b,
    }
}

impl TableDiff<'_> {
    /// Runs the comparison from `resume` (or from the start), calling
    /// `checkpoint` after every chunk with everything found so far.
    pub async fn run(
        &self,
        resume: Option<DiffOutcome>,
        checkpoint: &mut dyn FnMut(&DiffOutcome) -> Result<()>,
    ) -> Result<DiffOutcome> {
        let started = Instant::now();
        let method = if !self.ordered_keys {
            Method::KeyHashBuckets
        } else if self.in_database {
            Method::RangesInDatabase
        } else {
            Method::Ranges
        };
        let mut out = match resume {
            Some(r) if r.method == method || (method == Method::RangesInDatabase && r.method == Method::Ranges) => r,
            _ => DiffOutcome::new(method),
        };
        let elapsed_before = out.duration_ms;
        if method == Method::KeyHashBuckets {
            // One pass per side; nothing to resume from but the start.
            out = DiffOutcome::new(method);
            self.buckets(&mut out).await?;
        } else {
            self.ranges(&mut out, checkpoint).await?;
        }
        self.compare_sample(&mut out).await?;
        out.finished = true;
        out.duration_ms = elapsed_before + started.elapsed().as_millis() as u64;
        Ok(out)
    }

    fn key_types(&self) -> Vec<DataType> {
        self.source.read.key_positions.iter().map(|&i| self.types[i].clone()).collect()
    }

    /// The range as the target must see it: bounds in the target's key types.
    fn target_range(&self, range: &KeyRange) -> KeyRange {
        let types = self.key_types();
        let convert = |k: &Option<Vec<Value>>| {
            k.as_ref().map(|k| {
                let mut k = k.clone();
                let _ = convert_row(&mut k, &types);
                k
            })
        };
        KeyRange { after: convert(&range.after), through: convert(&range.through) }
    }

    fn key_only(read: &ReadSpec) -> ReadSpec {
        ReadSpec {
            table: read.table.clone(),
            select: read.key.iter().map(|k| ferry_engine::SelectItem::Column(k.clone())).collect(),
            key: read.key.clone(),
            key_positions: (0..read.key.len()).collect(),
            filter: read.filter.clone(),
        }
    }

    async fn ranges(
        &self,
        out: &mut DiffOutcome,
        checkpoint: &mut dyn FnMut(&DiffOutcome) -> Result<()>,
    ) -> Result<()> {
        if out.method == Method::RangesInDatabase && !self.ranges_in_database(out, checkpoint).await? {
            return Ok(());
        }
        self.ranges_hashed(out, checkpoint).await
    }

    /// Chunks compared by checksums computed in both databases. Returns
    /// whether the rest of the table must be compared by hashing rows here
    /// (after too many false alarms), `false` once the table is done.
    async fn ranges_in_database(
        &self,
        out: &mut DiffOutcome,
        checkpoint: &mut dyn FnMut(&DiffOutcome) -> Result<()>,
    ) -> Result<bool> {
        let source_keys = Self::key_only(&self.source.read);
        loop {
            let after = out.resume_after.clone();
            let first = KeyRange { after: after.clone(), through: None };
            // The chunk is the next `chunk_rows` source keys; the last one is
            // open-ended so that target rows past the source's end are seen.
            let keys = self.source.engine.read_range(&source_keys, &first, 0, self.chunk_rows).await?;
            let last = keys.len() < self.chunk_rows;
            let range = KeyRange { after, through: if last { None } else { keys.last().cloned() } };
            for key in &keys {
                out.offer_sample(self.sample_size, || key.clone());
            }
            out.chunks += 1;
            let before = out.counts.total();
            self.bisect(out, &range, &keys).await?;
            if out.counts.total() > before {
                out.chunks_differing += 1;
            }
            self.progress.advanced(&self.task, keys.len() as u64);
            out.resume_after = range.through.clone();
            if last {
                return Ok(false);
            }
            checkpoint(out)?;
            if out.false_alarms >= FALSE_ALARMS_TOLERATED {
                out.method = Method::Ranges;
                self.progress.note(&format!(
                    "{}: the databases' checksums disagree on equal rows (types differ in text form); comparing row by row",
                    self.task
                ));
                return Ok(true);
            }
        }
    }

    /// Chunks read from both sides and hashed here. Source chunks are read
    /// back to back by one future while another reads the target's rows of
    /// each and hashes both on the blocking pool, so that both databases
    /// and the hashing work at once.
    async fn ranges_hashed(
        &self,
        out: &mut DiffOutcome,
        checkpoint: &mut dyn FnMut(&DiffOutcome) -> Result<()>,
    ) -> Result<()> {
        let types: std::sync::Arc<[DataType]> = self.types.clone().into();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(KeyRange, Vec<Row>, bool)>(2);
        let start = out.resume_after.clone();
        let integer_ranges = self.integer_ranges(start.clone()).await?;
        let producer = async move {
            if let Some(ranges) = integer_ranges {
                // Independent ranges: two are read at once (in order).
                let page = self.chunk_rows + self.chunk_rows / 8;
                let mut reads = futures_util::stream::iter(ranges.into_iter().map(|(range, last)| async move {
                    let rows = self.read_all(&self.source, &range, page).await?;
                    Ok::<_, crate::RunError>((range, rows, last))
                }))
                .buffered(2);
                while let Some(read) = reads.next().await {
                    if tx.send(read?).await.is_err() {
                        break;
                    }
                }
                return Ok(());
            }
            let mut after = start;
            loop {
                let first = KeyRange { after: after.clone(), through: None };
                let rows = self.source.engine.read_range(&self.source.read, &first, 0, self.chunk_rows).await?;
                let last = rows.len() < self.chunk_rows;
                let through = if last { None } else { rows.last().map(|r| self.source.read.key_of(r)) };
                let range = KeyRange { after, through: through.clone() };
                if tx.send((range, rows, last)).await.is_err() || last {
                    return Ok::<_, crate::RunError>(());
                }
                after = through;
            }
        };
        let consumer = async {
            while let Some((range, source, last)) = rx.recv().await {
                for row in &source {
                    out.offer_sample(self.sample_size, || self.source.read.key_of(row));
                }
                let count = source.len() as u64;
                let target_range = self.target_range(&range);
                let hash_source = tokio::task::spawn_blocking({
                    let types = types.clone();
                    move || hash_rows(source, &types)
                });
                let started = Instant::now();
                // About as many rows as the source's chunk: one query, most of the time.
                let target = self.read_all(&self.target, &target_range, self.chunk_rows + self.chunk_rows / 8).await?;
                tracing::debug!(rows = target.len(), ms = started.elapsed().as_millis() as u64, "target chunk read");
                let hash_target = tokio::task::spawn_blocking({
                    let types = types.clone();
                    move || hash_rows(target, &types)
                });
                let started = Instant::now();
                let (source, target) = (joined(hash_source.await)?, joined(hash_target.await)?);
                tracing::debug!(ms = started.elapsed().as_millis() as u64, "hashes ready");
                out.chunks += 1;
                let before = out.counts.total();
                if source.failures.is_empty() && source.sum == target.sum && source.rows.len() == target.rows.len() {
                    out.rows_source += source.rows.len() as u64;
                    out.rows_target += target.rows.len() as u64;
                    out.rows_compared += (source.rows.len() + target.rows.len()) as u64;
                } else {
                    self.compare_hashed(out, source, target);
                }
                if out.counts.total() > before {
                    out.chunks_differing += 1;
                }
                self.progress.advanced(&self.task, count);
                out.resume_after = range.through.clone();
                if last {
                    break;
                }
                checkpoint(out)?;
            }
            // Dropping the receiver ends a producer still reading ahead.
            drop(rx);
            Ok::<_, crate::RunError>(())
        };
        tokio::try_join!(producer, consumer)?;
        Ok(())
    }

    /// For a key of one integer column: the key space from `after` cut into
    /// ranges of equal width by arithmetic (about `chunk_rows` rows each by
    /// the row estimate), which can be read independently. `None` for other
    /// keys, an empty table or a key space too sparse for it.
    async fn integer_ranges(&self, after: Option<Vec<Value>>) -> Result<Option<Vec<(KeyRange, bool)>>> {
        if self.source.read.key_positions.len() != 1 {
            return Ok(None);
        }
        let (source, target) = tokio::try_join!(
            self.source.engine.key_bounds(&self.source.read),
            self.target.engine.key_bounds(&self.target.read)
        )?;
        let int = |b: &Option<(Value, Value)>| match b {
            Some((Value::Int(lo), Value::Int(hi))) => Some(Some((*lo as i128, *hi as i128))),
            None => Some(None),
            Some(_) => None,
        };
        let (Some(source), Some(target)) = (int(&source), int(&target)) else {
            return Ok(None);
        };
        let (lo, hi) = match (source, target) {
            (None, None) => return Ok(None),
            (Some(b), None) | (None, Some(b)) => b,
            (Some(s), Some(t)) => (s.0.min(t.0), s.1.max(t.1)),
        };
        let start = match after.as_deref() {
            None => lo - 1,
            Some([Value::Int(k)]) => *k as i128,
            Some(_) => return Ok(None),
        };
        let span = (hi - lo + 1).max(1);
        let rows = self.row_estimate.unwrap_or(span as u64).max(1) as i128;
        // Wider than dense only as far as the estimate can be trusted.
        let width = (span * self.chunk_rows as i128 / rows).clamp(1, 4 * self.chunk_rows as i128);
        if (hi - start) / width > 100_000 {
            return Ok(None);
        }
        let mut ranges = Vec::new();
        let mut from = start;
        loop {
            let to = from + width;
            let last = to >= hi;
            let bound = |k: i128| Some(vec![Value::Int(k as i64)]);
            // The first range is open below, the last above: nothing escapes.
            let after = if from < lo { None } else { bound(from) };
            ranges.push((KeyRange { after, through: if last { None } else { bound(to) } }, last));
            if last {
                return Ok(Some(ranges));
            }
            from = to;
        }
    }

    /// Compares a range by checksums; descends into it while it differs.
    /// `keys` are the source keys of the range, in order.
    async fn bisect(&self, out: &mut DiffOutcome, range: &KeyRange, keys: &[Vec<Value>]) -> Result<()> {
        let target_range = self.target_range(range);
        let (s, t) = tokio::try_join!(
            self.source.engine.checksum_range(&self.source.read, range),
            self.target.engine.checksum_range(&self.target.read, &target_range),
        )?;
        let (Some(s), Some(t)) = (s, t) else {
            // An engine that cannot checksum in place: read the range.
            return self.leaf(out, range, false).await;
        };
        if s == t {
            out.rows_source += s.rows;
            out.rows_target += t.rows;
            return Ok(());
        }
        if keys.len() <= LEAF_ROWS {
            return self.leaf(out, range, true).await;
        }
        let step = keys.len().div_ceil(FANOUT);
        let mut after = range.after.clone();
        let parts: Vec<&[Vec<Value>]> = keys.chunks(step).collect();
        for (i, part) in parts.iter().enumerate() {
            // The last part keeps the range's own upper bound (open, or the chunk's end).
            let through = if i + 1 == parts.len() { range.through.clone() } else { part.last().cloned() };
            let sub = KeyRange { after: after.clone(), through: through.clone() };
            Box::pin(self.bisect(out, &sub, part)).await?;
            after = through;
        }
        Ok(())
    }

    async fn leaf(&self, out: &mut DiffOutcome, range: &KeyRange, after_alarm: bool) -> Result<()> {
        let target_range = self.target_range(range);
        let (source, target) = tokio::try_join!(
            self.read_all(&self.source, range, READ_PAGE),
            self.read_all(&self.target, &target_range, READ_PAGE)
        )?;
        let before = out.counts.total();
        self.compare_rows(out, source, target);
        if after_alarm && out.counts.total() == before {
            out.false_alarms += 1;
        }
        Ok(())
    }

    /// Rows are never dropped to fit in memory: past [`MAX_RANGE_ROWS`] the comparison stops and says why.
    fn too_many(&self, side: &Side<'_>, what: &str) -> crate::RunError {
        crate::RunError::new(
            crate::RunErrorKind::State,
            format!(
                "{}: more than {MAX_RANGE_ROWS} rows of {} {what}: the tables differ too much to name every row",
                self.task, side.read.table
            ),
        )
        .with_hint("compare row counts first, or narrow the comparison with --where")
    }

    /// Every row of a range, read `page` rows per query.
    async fn read_all(&self, side: &Side<'_>, range: &KeyRange, page: usize) -> Result<Vec<Row>> {
        let mut rows: Vec<Row> = Vec::new();
        let limit = page.max(1);
        let mut page = range.clone();
        loop {
            let batch = side.engine.read_range(&side.read, &page, 0, limit).await?;
            let done = batch.len() < limit;
            if let Some(last) = batch.last() {
                page.after = Some(side.read.key_of(last));
            }
            rows.extend(batch);
            if done {
                return Ok(rows);
            }
            if rows.len() > MAX_RANGE_ROWS {
                return Err(self.too_many(side, "lie between two keys of the other side"));
            }
        }
    }

    /// Row-by-row comparison of the same key range read from both sides.
    fn compare_rows(&self, out: &mut DiffOutcome, source: Vec<Row>, target: Vec<Row>) {
        let source = hash_rows(source, &self.types);
        let target = hash_rows(target, &self.types);
        self.compare_hashed(out, source, target);
    }

    /// Row-by-row comparison of rows already converted by [`hash_rows`].
    fn compare_hashed(&self, out: &mut DiffOutcome, source: Hashed, target: Hashed) {
        out.rows_source += source.rows.len() as u64;
        out.rows_target += target.rows.len() as u64;
        out.rows_compared += (source.rows.len() + target.rows.len()) as u64;
        if let Some(source) = self.merge_integer_keyed(out, source, &target) {
            self.compare_by_key(out, source, target);
        }
    }

    /// Both sides ordered by one integer key (as ranges read them): a merge
    /// that looks at the columns of rows whose hashes differ, and nothing
    /// else. Gives the rows back when they are not so ordered.
    fn merge_integer_keyed(&self, out: &mut DiffOutcome, source: Hashed, target: &Hashed) -> Option<Hashed> {
        let positions = &self.source.read.key_positions;
        let int_keys = |rows: &[Row]| -> Option<Vec<i64>> {
            let keys: Option<Vec<i64>> = rows
                .iter()
                .map(|r| match (positions.len(), &r[positions[0]]) {
                    (1, Value::Int(k)) => Some(*k),
                    _ => None,
                })
                .collect();
            keys.filter(|k| k.windows(2).all(|w| w[0] < w[1]))
        };
        let (Some(left), Some(right)) = (int_keys(&source.rows), int_keys(&target.rows)) else {
            return Some(source);
        };
        let failures: HashMap<usize, &(usize, usize, ConversionError)> =
            source.failures.iter().map(|f| (f.0, f)).collect();
        let (mut i, mut j) = (0, 0);
        while i < left.len() || j < right.len() {
            let order = match (left.get(i), right.get(j)) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            if order != std::cmp::Ordering::Greater {
                if let Some((_, column, e)) = failures.get(&i) {
                    out.record(self.unconvertible(&source.rows[i], *column, e), None);
                } else if order == std::cmp::Ordering::Less || source.hashes[i] != target.hashes[j] {
                    let other = (order == std::cmp::Ordering::Equal).then(|| &target.rows[j]);
                    self.record(out, &source.rows[i], Some(&source.rows[i]), other);
                }
                i += 1;
                if order == std::cmp::Ordering::Equal {
                    j += 1;
                }
            } else {
                self.record(out, &target.rows[j], None, Some(&target.rows[j]));
                j += 1;
            }
        }
        None
    }

    /// Records how the rows of `row`'s key differ, if they do.
    fn record(&self, out: &mut DiffOutcome, row: &Row, source: Option<&Row>, target: Option<&Row>) {
        let key = self.source.read.key_of(row);
        if let Some(d) = classify(&self.names, describe_key(&self.key_names, &key), source, target) {
            out.record(d, Some(key));
        }
    }

    fn unconvertible(&self, row: &Row, column: usize, e: &ConversionError) -> Difference {
        Difference {
            kind: DifferenceKind::Unconvertible,
            key: describe_key(&self.key_names, &self.source.read.key_of(row)),
            columns: vec![ColumnDifference {
                column: self.names[column].clone(),
                source: e.value.clone(),
                target: e.reason.clone(),
            }],
        }
    }

    /// Rows matched by canonical key, whatever their order.
    fn compare_by_key(&self, out: &mut DiffOutcome, source: Hashed, target: Hashed) {
        let positions = &self.source.read.key_positions;
        let mut targets: HashMap<Vec<u8>, Row> = HashMap::with_capacity(target.rows.len());
        for row in target.rows {
            targets.insert(Value::encode_all(positions.iter().map(|&i| &row[i])), row);
        }
        let failures: HashMap<usize, (usize, ConversionError)> =
            source.failures.into_iter().map(|(row, column, e)| (row, (column, e))).collect();
        for (index, row) in source.rows.into_iter().enumerate() {
            let key = self.source.read.key_of(&row);
            if let Some((column, e)) = failures.get(&index) {
                // The same key may still be in the target: it is not extra.
                targets.remove(&Value::encode_row(&key));
                out.record(self.unconvertible(&row, *column, e), None);
                continue;
            }
            let other = targets.remove(&Value::encode_row(&key));
            self.record(out, &row, Some(&row), other.as_ref());
        }
        let mut extra: Vec<Row> = targets.into_values().collect();
        extra.sort_by_cached_key(|r| Value::encode_all(positions.iter().map(|&i| &r[i])));
        for row in extra {
            self.record(out, &row, None, Some(&row));
        }
    }

    /// A column-by-column comparison of the sampled keys, reported on its own.
    async fn compare_sample(&self, out: &mut DiffOutcome) -> Result<()> {
        out.sample_differences.clear();
        out.sample_mismatches = 0;
        if out.sample.is_empty() {
            return Ok(());
        }
        let key_types = self.key_types();
        let target_keys: Vec<Vec<Value>> = out
            .sample
            .iter()
            .map(|k| {
                let mut k = k.clone();
                let _ = convert_row(&mut k, &key_types);
                k
            })
            .collect();
        let (source, target) = tokio::try_join!(
            self.source.engine.read_keys(&self.source.read, &out.sample),
            self.target.engine.read_keys(&self.target.read, &target_keys),
        )?;
        let index = |rows: Vec<Row>| -> HashMap<Vec<u8>, Row> {
            rows.into_iter()
                .filter_map(|mut row| {
                    convert_row(&mut row, &self.types).ok()?;
                    Some((Value::encode_all(self.source.read.key_positions.iter().map(|&i| &row[i])), row))
                })
                .collect()
        };
        let (source, target) = (index(source), index(target));
        for key in &target_keys {
            let encoded = Value::encode_row(key);
            // Deleted since it was sampled, or unconvertible: counted elsewhere.
            let Some(row) = source.get(&encoded) else { continue };
            let display = describe_key(&self.key_names, key);
            if let Some(d) = classify(&self.names, display, Some(row), target.get(&encoded)) {
                out.sample_mismatches += 1;
                if out.sample_differences.len() < MAX_KEPT {
                    out.sample_differences.push(d);
                }
            }
        }
        Ok(())
    }

    /// The key-hash method: both sides streamed once, then the differing buckets again.
    async fn buckets(&self, out: &mut DiffOutcome) -> Result<()> {
        let (source, target) = tokio::try_join!(self.scan(&self.source, true), self.scan(&self.target, false))?;
        out.rows_source = source.rows;
        out.rows_target = target.rows;
        out.chunks = BUCKETS as u64;
        out.sample = source.sample;
        out.seen = source.rows;
        for d in source.unconvertible {
            out.record(d, None);
        }
        let differing: HashSet<usize> = (0..BUCKETS)
            .filter(|&b| source.sums[b] != target.sums[b] || source.counts[b] != target.counts[b])
            .collect();
        out.chunks_differing = differing.len() as u64;
        if differing.is_empty() {
            return Ok(());
        }
        let (source_rows, target_rows) = tokio::try_join!(
            self.collect_buckets(&self.source, &differing),
            self.collect_buckets(&self.target, &differing)
        )?;
        // The rows were counted by the scans; these are only looked at again.
        let counted = (out.rows_source, out.rows_target);
        self.compare_rows(out, source_rows, target_rows);
        (out.rows_source, out.rows_target) = counted;
        Ok(())
    }

    async fn scan(&self, side: &Side<'_>, is_source: bool) -> Result<Scan> {
        let mut scan = Scan {
            rows: 0,
            sums: vec![0; BUCKETS],
            counts: vec![0; BUCKETS],
            unconvertible: Vec::new(),
            sample: Vec::new(),
        };
        let mut seen = 0u64;
        let mut range = KeyRange::default();
        loop {
            let rows = side.engine.read_range(&side.read, &range, 0, READ_PAGE).await?;
            let done = rows.len() < READ_PAGE;
            if let Some(last) = rows.last() {
                range.after = Some(side.read.key_of(last));
            }
            self.progress.advanced(&self.task, rows.len() as u64);
            for mut row in rows {
                scan.rows += 1;
                if let Err((column, e)) = convert_row(&mut row, &self.types) {
                    scan.unconvertible.push(Difference {
                        kind: DifferenceKind::Unconvertible,
                        key: describe_key(&self.key_names, &side.read.key_of(&row)),
                        columns: vec![ColumnDifference {
                            column: self.names[column].clone(),
                            source: e.value.clone(),
                            target: e.reason.clone(),
                        }],
                    });
                    continue;
                }
                let (bucket, hash) = row_hash(&row, &side.read.key_positions);
                scan.sums[bucket] = scan.sums[bucket].wrapping_add(hash);
                scan.counts[bucket] += 1;
                if is_source {
                    offer(&mut scan.sample, &mut seen, self.sample_size, || side.read.key_of(&row));
                }
            }
            if done {
                return Ok(scan);
            }
        }
    }

    async fn collect_buckets(&self, side: &Side<'_>, buckets: &HashSet<usize>) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        let mut range = KeyRange::default();
        loop {
            let rows = side.engine.read_range(&side.read, &range, 0, READ_PAGE).await?;
            let done = rows.len() < READ_PAGE;
            if let Some(last) = rows.last() {
                range.after = Some(side.read.key_of(last));
            }
            for mut row in rows {
                // Rows that do not convert were reported by the scan.
                if convert_row(&mut row, &self.types).is_err() {
                    continue;
                }
                if buckets.contains(&row_hash(&row, &side.read.key_positions).0) {
                    out.push(row);
                }
            }
            if done {
                return Ok(out);
            }
            if out.len() > MAX_RANGE_ROWS {
                return Err(self.too_many(side, "fall in buckets that differ"));
            }
        }
    }
}

/// Rows converted to the compared types, with the sum of their hashes.
struct Hashed {
    rows: Vec<Row>,
    /// Each row's hash, in row order.
    hashes: Vec<u128>,
    sum: u128,
    /// Rows (index, column) that do not convert, and why.
    failures: Vec<(usize, usize, ConversionError)>,
}

fn hash_rows(mut rows: Vec<Row>, types: &[DataType]) -> Hashed {
    let mut sum = 0u128;
    let mut hashes = Vec::with_capacity(rows.len());
    let mut failures = Vec::new();
    let mut buf = Vec::with_capacity(256);
    for (index, row) in rows.iter_mut().enumerate() {
        if let Err((column, e)) = convert_row(row, types) {
            failures.push((index, column, e));
        }
        buf.clear();
        for v in row.iter() {
            v.encode_canonical(&mut buf);
        }
        let hash = xxh3_128(&buf);
        hashes.push(hash);
        sum = sum.wrapping_add(hash);
    }
    Hashed { rows, hashes, sum, failures }
}

fn joined<T>(result: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    result.map_err(|e| crate::RunError::new(crate::RunErrorKind::State, format!("comparison task failed: {e}")))
}

struct Scan {
    rows: u64,
    sums: Vec<u128>,
    counts: Vec<u64>,
    unconvertible: Vec<Difference>,
    sample: Vec<Vec<Value>>,
}

fn row_hash(row: &Row, key_positions: &[usize]) -> (usize, u128) {
    let key_bytes = Value::encode_all(key_positions.iter().map(|&i| &row[i]));
    let bucket = (xxh3_64(&key_bytes) % BUCKETS as u64) as usize;
    (bucket, xxh3_128(&Value::encode_row(row)))
}

/// How the source's and the target's rows of one key differ, if they do:
/// the one classification every comparison (verify, its recheck, the
/// sample, `ferry diff`, shadow reads) makes. `key` is the key as shown.
pub(crate) fn classify(
    names: &[String],
    key: String,
    source: Option<&Row>,
    target: Option<&Row>,
) -> Option<Difference> {
    let (kind, columns) = match (source, target) {
        (None, None) => return None,
        (Some(_), None) => (DifferenceKind::Missing, Vec::new()),
        (None, Some(_)) => (DifferenceKind::Extra, Vec::new()),
        (Some(s), Some(t)) => {
            let columns = column_differences(names, s, t);
            if columns.is_empty() {
                return None;
            }
            (DifferenceKind::Mismatched, columns)
        }
    };
    Some(Difference { kind, key, columns })
}

pub fn column_differences(names: &[String], source: &Row, target: &Row) -> Vec<ColumnDifference> {
    names
        .iter()
        .zip(source.iter().zip(target))
        .filter(|(_, (s, t))| Value::encode_all(std::iter::once(*s)) != Value::encode_all(std::iter::once(*t)))
        .map(|(n, (s, t))| ColumnDifference { column: n.clone(), source: s.to_string(), target: t.to_string() })
        .collect()
}
