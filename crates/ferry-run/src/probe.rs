//! The copy probe: for a couple of seconds `ferry plan` copies rows into a
//! `ferry_probe_*` table on the target the way the run will — with the
//! run's workers side by side, each from its own part of the key range on
//! connections of its own, each batch its own commit — then builds the
//! table's unique keys and indexes on those rows, runs the built-in checks
//! on them, reads them back, and drops the table. Each step is timed: the
//! estimate (`ferry_plan::estimate`) is built from these figures.

use crate::backfill::{convert_row, Lane};
use crate::chunks::keys_only;
use crate::error::Result;
use crate::integrity::table_checks;
use crate::mapping::TablePlan;
use ferry_core::{ColumnDef, DataType, Policy, TableDef, TableName, Value};
use ferry_engine::{Engine, KeyRange, ReadSpec, Rows, SelectItem, WriteSpec};
use ferry_plan::in_place::InPlace;
use ferry_plan::{LoadReading, TableFacts, Throughput};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the workers copy into the probe table.
pub const PROBE_TIME: Duration = Duration::from_secs(2);
/// The most rows one worker's part of the key range holds: its start is an
/// OFFSET into the key's index, which must stay cheap on a huge table.
const LANE_ROWS: u64 = 250_000;
/// How often the source's load is read while the probe copies.
const LOAD_EVERY: Duration = Duration::from_millis(100);
/// Readings of the load that make the throttle's baseline (as the throttle takes them).
const BASELINE_READINGS: usize = 5;

/// Readings of the source's active sessions, as the load throttle takes them.
#[derive(Default)]
pub struct LoadReadings {
    readings: RefCell<Vec<u64>>,
    /// The engine has nothing to count (SQLite).
    unavailable: std::cell::Cell<bool>,
    last: std::cell::Cell<Option<Instant>>,
}

impl LoadReadings {
    /// Reads the load now, or not if it was read less than LOAD_EVERY ago.
    pub async fn read(&self, source: &dyn Engine) {
        if self.unavailable.get() || self.last.get().is_some_and(|t| t.elapsed() < LOAD_EVERY) {
            return;
        }
        self.last.set(Some(Instant::now()));
        match source.active_sessions().await {
            Ok(Some(n)) => self.readings.borrow_mut().push(n),
            _ => self.unavailable.set(true),
        }
    }

    /// The throttle's baseline readings, taken one after the other as it does.
    pub async fn baseline(&self, source: &dyn Engine) {
        for _ in 0..BASELINE_READINGS {
            self.last.set(None);
            self.read(source).await;
        }
    }

    /// What the readings say, with the throttle's own marks.
    pub fn summary(&self) -> Option<LoadReading> {
        let readings = self.readings.borrow();
        if self.unavailable.get() || readings.len() < BASELINE_READINGS {
            return None;
        }
        let mut first: Vec<u64> = readings[..BASELINE_READINGS].to_vec();
        first.sort_unstable();
        let marks = crate::throttle::LoadMarks::from_baseline(first[first.len() / 2]);
        Some(LoadReading {
            samples: readings.len() as u32,
            baseline: marks.baseline,
            high: marks.high,
            above_high: readings.iter().filter(|&&n| n > marks.high).count() as u32,
        })
    }
}

/// What every lane of the probe copies, and until when.
struct LaneJob<'p> {
    read: &'p ReadSpec,
    write: &'p WriteSpec,
    types: Vec<DataType>,
    batch: usize,
    deadline: Instant,
}

/// One worker's share of the probe.
#[derive(Default)]
struct LaneTimes {
    rows: usize,
    read: Duration,
    write: Duration,
}

pub struct Probe<'a> {
    pub source: &'a Arc<dyn Engine>,
    pub target: &'a Arc<dyn Engine>,
    pub policy: &'a Policy,
    pub load: &'a LoadReadings,
}

impl Probe<'_> {
    /// Copies, indexes, checks and reads back a sample of `plan`'s table
    /// (`rows` rows in all) in `probe`, always dropping it. A change in
    /// place (`change`: its facts) copies rows of the old shape instead and
    /// fills them as the run will.
    pub async fn measure(
        &self,
        plan: &TablePlan,
        probe: &TableName,
        rows: u64,
        change: Option<&TableFacts>,
    ) -> Result<Throughput> {
        let sample = match change {
            Some(_) => Sample::old_shape(plan, probe),
            None => Sample::copied(plan, probe),
        };
        let started = Instant::now();
        self.target.create_table(&sample.def).await?;
        let ddl_seconds = started.elapsed().as_secs_f64();
        let result = self.measure_in(plan, &sample, rows, change).await;
        // Always drop the probe, whatever the copy did.
        let dropped = self.target.drop_scratch_table(probe).await;
        let mut measured = result?;
        dropped?;
        measured.ddl_seconds = Some(ddl_seconds);
        Ok(measured)
    }

    async fn measure_in(
        &self,
        plan: &TablePlan,
        sample: &Sample,
        rows: u64,
        change: Option<&TableFacts>,
    ) -> Result<Throughput> {
        let write = WriteSpec {
            table: sample.def.name.clone(),
            columns: sample.def.columns.iter().map(|c| (c.name.clone(), c.data_type.clone())).collect(),
            key: sample.def.primary_key.clone(),
        };
        let probe = &sample.def.name;
        let batch = self.policy.batch_size;
        let started = Instant::now();
        let lanes = self.copy(&sample.read, &write, rows, batch).await?;
        let wall = started.elapsed();
        let sample: usize = lanes.iter().map(|l| l.rows).sum();
        let per_second = |rows: usize, d: Duration| rows as f64 / d.as_secs_f64().max(1e-6);
        // The run overlaps each lane's reads and writes; where the machine
        // has the cores for it, the slower of the two sets the lane's pace.
        let overlapped: f64 = lanes.iter().map(|l| per_second(l.rows, l.read.max(l.write))).sum();
        let (read, written) =
            lanes.iter().fold((Duration::ZERO, Duration::ZERO), |(r, w), l| (r + l.read, w + l.write));
        let read_back = probe_read(&write);
        let in_place_rows_per_second = match change {
            Some(facts) => self.fill_in_place(facts, &keys_only(&read_back), batch).await,
            None => None,
        };
        let (indexes_built, index_seconds) = self.indexes(plan, probe).await;
        let (checks_run, check_seconds) = self.checks(plan, probe).await;
        Ok(Throughput {
            sample_rows: sample as u64,
            seconds: wall.as_secs_f64(),
            read_rows_per_second: per_second(sample, read),
            write_rows_per_second: per_second(sample, written),
            target_read_rows_per_second: self.read_back(&read_back, batch).await?,
            checksum_rows_per_second: self.checksum(&read_back, sample).await,
            key_read_rows_per_second: self.read_back(&keys_only(&read_back), self.policy.verify_chunk_rows).await?,
            lanes: lanes.len() as u32,
            copy_rows_per_second: (sample > 0).then(|| per_second(sample, wall)),
            overlapped_rows_per_second: (sample > 0).then_some(overlapped),
            indexes_built,
            index_seconds,
            checks_run,
            check_seconds,
            ddl_seconds: None,
            in_place_rows_per_second,
        })
    }

    /// A change in place fills its new columns with an UPDATE per batch of
    /// keys while its sync triggers fire on every filled row: the same on
    /// the probe's rows, given the change's new columns, mark table and
    /// triggers, on one connection as the run does. Rows per second (none
    /// when the target refuses it).
    async fn fill_in_place(&self, facts: &TableFacts, keys: &ReadSpec, batch: usize) -> Option<f64> {
        let mut on_probe = facts.clone();
        on_probe.source = keys.table.to_string();
        let change = InPlace::of(self.target.plan_dialect(), &on_probe);
        let (start, teardown) = change.fill_stand_in();
        let timeout = Duration::from_secs(5);
        let filled = match self.target.execute(&start, true, timeout).await {
            Ok(_) => self.fill(&change, keys, batch, timeout).await,
            Err(_) => None,
        };
        // The triggers go with the probe table; the mark table and a trigger function would not.
        let _ = self.target.execute(&teardown, false, timeout).await;
        filled
    }

    async fn fill(&self, change: &InPlace<'_>, keys: &ReadSpec, batch: usize, timeout: Duration) -> Option<f64> {
        let (mut rows, mut took, mut after): (usize, Duration, Option<Vec<Value>>) = (0, Duration::ZERO, None);
        loop {
            let found = self.target.read_batch(keys, after.as_deref(), batch).await.ok()?;
            let Some(last) = found.last() else { break };
            let upto = keys.key_of(last);
            let started = Instant::now();
            self.target.execute(&[change.backfill_batch(after.as_deref(), &upto)], true, timeout).await.ok()?;
            took += started.elapsed();
            rows += found.len();
            if found.len() < batch {
                break;
            }
            after = Some(upto);
        }
        (rows > 0).then(|| rows as f64 / took.as_secs_f64().max(1e-6))
    }

    /// The run's workers for this table, each copying from the start of its
    /// own part of the key range until PROBE_TIME is up.
    async fn copy(&self, read: &ReadSpec, write: &WriteSpec, rows: u64, batch: usize) -> Result<Vec<LaneTimes>> {
        let workers = self.policy.workers_for(self.target.capabilities().concurrent_writers);
        let lanes = crate::chunks::count(rows, workers, batch).min(workers).max(1);
        let ranges = self.parts(read, rows, lanes).await?;
        let mut connections = vec![Lane { source: self.source.clone(), target: self.target.clone() }];
        for _ in 1..ranges.len() {
            connections
                .push(Lane { source: self.source.connect_again().await?, target: self.target.connect_again().await? });
        }
        let job = LaneJob {
            read,
            write,
            types: write.columns.iter().map(|(_, t)| t.clone()).collect(),
            batch,
            deadline: Instant::now() + PROBE_TIME,
        };
        // The first lane also reads the source's load as it goes.
        let copies = connections
            .iter()
            .zip(ranges)
            .enumerate()
            .map(|(i, (lane, range))| self.copy_lane(&job, lane, range, i == 0));
        // Every lane ends before an error is returned: the probe table is
        // dropped next, on the first lane's connection, which must not be
        // left mid-statement.
        futures_util::future::join_all(copies).await.into_iter().collect()
    }

    /// `lanes` consecutive parts of the key range from its start, each
    /// holding at most LANE_ROWS rows (the last one open-ended).
    async fn parts(&self, read: &ReadSpec, rows: u64, lanes: usize) -> Result<Vec<KeyRange>> {
        if lanes == 1 {
            return Ok(vec![KeyRange::default()]);
        }
        let step = (rows / lanes as u64).clamp(1, LANE_ROWS) as usize;
        let keys = keys_only(read);
        let mut ranges = Vec::new();
        let mut after: Option<Vec<Value>> = None;
        for _ in 1..lanes {
            let from = KeyRange { after: after.clone(), through: None };
            let Some(bound) = self.source.read_range(&keys, &from, step - 1, 1).await?.into_iter().next() else {
                break;
            };
            ranges.push(KeyRange { after: after.replace(bound.clone()), through: Some(bound) });
        }
        ranges.push(KeyRange { after, through: None });
        Ok(ranges)
    }

    async fn copy_lane(&self, job: &LaneJob<'_>, lane: &Lane, range: KeyRange, reads_load: bool) -> Result<LaneTimes> {
        let LaneJob { read, write, types, batch, deadline } = job;
        let (batch, deadline) = (*batch, *deadline);
        let mut times = LaneTimes::default();
        let mut after = range.after.clone();
        while Instant::now() < deadline {
            if reads_load {
                self.load.read(&*lane.source).await;
            }
            let part = KeyRange { after: after.clone(), through: range.through.clone() };
            let t = Instant::now();
            let rows = lane.source.read_range(read, &part, 0, batch).await?;
            times.read += t.elapsed();
            let Some(last) = rows.last() else { break };
            after = Some(read.key_of(last));
            let full = rows.len() == batch;
            // Rows that do not convert are the change analysis's business, not the probe's.
            let converted: Vec<_> =
                rows.into_iter().filter_map(|mut r| convert_row(&mut r, types).ok().map(|_| r)).collect();
            times.rows += converted.len();
            let t = Instant::now();
            lane.target.upsert(write, Rows::from(converted)).await?;
            times.write += t.elapsed();
            if !self.policy.batch_pause.is_zero() {
                tokio::time::sleep(self.policy.batch_pause).await;
            }
            if !full {
                break;
            }
        }
        Ok(times)
    }

    /// Builds the unique keys and indexes the run builds after the data, on
    /// the probe's rows. A build the target refuses is the change analysis's
    /// business: it is left out of the measure.
    async fn indexes(&self, plan: &TablePlan, probe: &TableName) -> (u32, Option<f64>) {
        let wanted = plan.def.unique_keys.iter().map(|k| (k, true)).chain(plan.def.indexes.iter().map(|k| (k, false)));
        let (mut built, mut took) = (0, Duration::ZERO);
        for (columns, unique) in wanted {
            let t = Instant::now();
            if self.target.create_index(probe, columns, unique).await.is_ok() {
                built += 1;
                took += t.elapsed();
            }
        }
        (built, (built > 0).then_some(took.as_secs_f64()))
    }

    /// Runs the run's built-in checks (no NULL where NOT NULL, keys unique)
    /// on the probe's rows.
    async fn checks(&self, plan: &TablePlan, probe: &TableName) -> (u32, Option<f64>) {
        let mut on_probe = plan.clone();
        on_probe.target_name = probe.clone();
        let (mut run, mut took) = (0, Duration::ZERO);
        for (_, _, sql) in table_checks(&on_probe, &**self.target, &[]) {
            let t = Instant::now();
            if self.target.scalar(&sql).await.is_ok() {
                run += 1;
                took += t.elapsed();
            }
        }
        (run, (run > 0).then_some(took.as_secs_f64()))
    }

    /// Checksums the probe's rows in the target, as verification does
    /// within one engine: rows per second (none where the engine leaves
    /// hashing to Ferry, or without rows).
    async fn checksum(&self, read: &ReadSpec, rows: usize) -> Option<f64> {
        let started = Instant::now();
        let summed = self.target.checksum_range(read, &KeyRange::default()).await.ok().flatten()?;
        (rows > 0 && summed.rows > 0).then(|| summed.rows as f64 / started.elapsed().as_secs_f64().max(1e-6))
    }

    /// Reads the probe's rows back from the target, in key order and in
    /// batches as verification does: the target's read rate (none without rows).
    async fn read_back(&self, read: &ReadSpec, batch: usize) -> Result<Option<f64>> {
        let started = Instant::now();
        let (mut rows, mut after): (usize, Option<Vec<Value>>) = (0, None);
        loop {
            let batch_rows = self.target.read_batch(read, after.as_deref(), batch).await?;
            let Some(last) = batch_rows.last() else { break };
            after = Some(read.key_of(last));
            rows += batch_rows.len();
            if batch_rows.len() < batch {
                break;
            }
        }
        let took = started.elapsed().as_secs_f64();
        Ok((rows > 0).then(|| rows as f64 / took.max(1e-6)))
    }
}

/// What the probe copies: a read of the source, and the probe table its rows go to.
struct Sample {
    read: ReadSpec,
    def: TableDef,
}

impl Sample {
    /// The table as the run copies it: the plan's read, into the target's columns.
    fn copied(plan: &TablePlan, probe: &TableName) -> Sample {
        // Constraints are the change analysis's business: the probe only times the copy.
        let columns = plan
            .columns
            .iter()
            .map(|c| ColumnDef::new(c.name.clone(), c.data_type.clone(), !plan.key_target.contains(&c.name)))
            .collect();
        Sample { read: plan.read.clone(), def: TableDef::new(probe.clone(), columns, plan.def.primary_key.clone()) }
    }

    /// The table as it is before a change in place: every column read as it is.
    fn old_shape(plan: &TablePlan, probe: &TableName) -> Sample {
        let names: Vec<String> = plan.source.columns.iter().map(|c| c.name.clone()).collect();
        let columns = plan
            .source
            .columns
            .iter()
            .map(|c| ColumnDef::new(c.name.clone(), c.data_type.clone(), !plan.key_source.contains(&c.name)))
            .collect();
        let read = ReadSpec {
            table: plan.source_name.clone(),
            select: names.iter().cloned().map(SelectItem::Column).collect(),
            key: plan.key_source.clone(),
            key_positions: plan.key_source.iter().filter_map(|k| names.iter().position(|n| n == k)).collect(),
            filter: plan.read.filter.clone(),
        };
        Sample { read, def: TableDef::new(probe.clone(), columns, plan.key_source.clone()) }
    }
}

/// A read of every column of the probe table, in key order.
fn probe_read(write: &WriteSpec) -> ReadSpec {
    let names: Vec<String> = write.columns.iter().map(|(n, _)| n.clone()).collect();
    ReadSpec {
        table: write.table.clone(),
        select: names.iter().map(|n| SelectItem::Column(n.clone())).collect(),
        key: write.key.clone(),
        key_positions: write.key.iter().filter_map(|k| names.iter().position(|n| n == k)).collect(),
        filter: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_readings_are_summarised_with_the_throttle_s_own_marks() {
        let load = LoadReadings::default();
        assert_eq!(load.summary(), None, "no baseline yet");
        load.readings.borrow_mut().extend([0, 0, 1, 0, 0, 9, 0, 5, 4]);
        let marks = crate::throttle::LoadMarks::from_baseline(0);
        let summary = load.summary().unwrap();
        assert_eq!((summary.baseline, summary.high), (marks.baseline, marks.high));
        assert_eq!(summary.samples, 9);
        assert_eq!(summary.above_high, 2, "9 and 5 are above the high mark of 4; 4 is not");
        load.unavailable.set(true);
        assert_eq!(load.summary(), None, "an engine without sessions to count says nothing");
    }
}
