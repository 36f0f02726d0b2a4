//! How long `ferry run` should take, part by part, from what the plan measured.
//!
//! Every figure comes from the assessment: the probe copied a sample with
//! the run's workers side by side (each batch its own commit, as in the
//! run), built the table's indexes on it and ran the built-in checks on it;
//! verification is priced at both sides' measured read rates; sync at the
//! source's measured write rate; the throttle at the load it read. Each
//! part has a range that says how far its extrapolation may be off, and a
//! basis that says what it assumed. The run compares itself with it
//! (`estimate-checked` in the audit log).

use super::document::thousands;
use super::facts::{Assessment, Shape, TableFacts, Throughput};
use ferry_core::audit::Phase;
use ferry_core::spec::{Policy, ThrottleMode};
use serde::{Deserialize, Serialize};

/// A part of the run, in the order the run does them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Creating the target tables and installing change capture.
    Expand,
    /// Copying the rows.
    Copy,
    /// Unique keys, indexes and foreign keys, built after the data.
    Indexes,
    /// Replaying the changes made while the rows copied.
    Sync,
    /// Comparing every row of both sides.
    Verify,
    /// The built-in integrity checks on the target.
    Checks,
}

impl Part {
    /// The lifecycle phase whose time this part is spent in.
    pub fn phase(self) -> Phase {
        match self {
            Part::Expand => Phase::Expand,
            Part::Copy | Part::Indexes => Phase::Backfill,
            Part::Sync => Phase::Sync,
            Part::Verify | Part::Checks => Phase::Verify,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Expand => "expand",
            Part::Copy => "copy",
            Part::Indexes => "indexes",
            Part::Sync => "sync",
            Part::Verify => "verify",
            Part::Checks => "checks",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartEstimate {
    pub part: Part,
    pub seconds: f64,
    pub low_seconds: f64,
    pub high_seconds: f64,
    /// What the figure rests on, in words.
    pub basis: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub seconds: f64,
    pub low_seconds: f64,
    pub high_seconds: f64,
    pub parts: Vec<PartEstimate>,
}

impl Estimate {
    /// Seconds estimated for the parts spent in `phase`.
    pub fn phase_seconds(&self, phase: Phase) -> f64 {
        self.parts.iter().filter(|p| p.part.phase() == phase).map(|p| p.seconds).sum()
    }
}

/// Rows per second assumed where nothing could be measured (a table without a key).
const UNMEASURED_RATE: f64 = 10_000.0;
/// Statements expand runs per table besides its DDL: change capture's log
/// table, function and triggers, or a slot; about this many.
const CAPTURE_STATEMENTS: usize = 4;
/// DDL time assumed where the probe did not create a table.
const UNMEASURED_DDL_SECONDS: f64 = 0.02;

/// A figure and how far it may be off, as factors of it.
struct Figure {
    seconds: f64,
    low: f64,
    high: f64,
}

impl Figure {
    fn exact(seconds: f64) -> Figure {
        Figure { seconds, low: 1.0, high: 1.0 }
    }
    fn add(&mut self, other: Figure) {
        // Ranges of independent tables add up as their ends do.
        let (low, high) = (
            self.seconds * self.low + other.seconds * other.low,
            self.seconds * self.high + other.seconds * other.high,
        );
        self.seconds += other.seconds;
        if self.seconds > 0.0 {
            self.low = low / self.seconds;
            self.high = high / self.seconds;
        }
    }
}

/// The estimate of a run at `policy`, from the assessment.
pub fn estimate(a: &Assessment, policy: &Policy) -> Estimate {
    let throttle = throttle_factor(a, policy);
    let mut parts = vec![expand(a), copy(a, policy, throttle), indexes(a)];
    let (verify, checks) = (verify(a), checks(a));
    // The changes sync replays are those written while the rest ran.
    let meanwhile = parts[1].seconds + parts[2].seconds + verify.seconds + checks.seconds;
    parts.push(sync(a, meanwhile));
    parts.push(verify);
    parts.push(checks);
    Estimate {
        seconds: parts.iter().map(|p| p.seconds).sum(),
        low_seconds: parts.iter().map(|p| p.low_seconds).sum(),
        high_seconds: parts.iter().map(|p| p.high_seconds).sum(),
        parts,
    }
}

fn part(part: Part, figure: Figure, basis: String) -> PartEstimate {
    PartEstimate {
        part,
        seconds: figure.seconds,
        low_seconds: figure.seconds * figure.low,
        high_seconds: figure.seconds * figure.high,
        basis,
    }
}

/// How much of the table the probe's sample was: the extrapolation's reach.
fn sample_share(t: &TableFacts, p: &Throughput) -> f64 {
    if t.rows == 0 {
        1.0
    } else {
        (p.sample_rows as f64 / t.rows as f64).min(1.0)
    }
}

/// A measured sample's spread: the whole table measured is ±10 %, a part
/// of it −20 %/+30 % (the rest of a table may be wider, or colder).
fn spread(share: f64) -> (f64, f64) {
    if share >= 1.0 {
        (0.9, 1.1)
    } else {
        (0.8, 1.3)
    }
}

fn ddl_seconds(a: &Assessment) -> f64 {
    let measured: Vec<f64> = a.tables.iter().filter_map(|t| t.throughput.as_ref()?.ddl_seconds).collect();
    if measured.is_empty() {
        UNMEASURED_DDL_SECONDS
    } else {
        measured.iter().sum::<f64>() / measured.len() as f64
    }
}

fn expand(a: &Assessment) -> PartEstimate {
    let statements: usize = a.tables.iter().map(|t| t.ddl_expand.len() + CAPTURE_STATEMENTS).sum();
    let each = ddl_seconds(a);
    part(
        Part::Expand,
        Figure { seconds: statements as f64 * each, low: 0.5, high: 3.0 },
        format!(
            "about {statements} statements (tables, change capture) at {} each, as creating the probe table took",
            ms(each)
        ),
    )
}

/// How much longer the copy takes under the throttle, from the load the
/// plan read: readings above the high mark slow the pace (each doubling of
/// the delay halving the writers), so the copy takes at least twice as long
/// for that share of the time.
struct ThrottleFactor {
    expected: f64,
    worst: f64,
    basis: String,
}

fn throttle_factor(a: &Assessment, policy: &Policy) -> ThrottleFactor {
    let calm = |basis: String| ThrottleFactor { expected: 1.0, worst: 1.0, basis };
    match policy.throttle {
        ThrottleMode::Off => calm("throttle off".into()),
        ThrottleMode::Latency => latency_factor(a, policy),
        ThrottleMode::Load => match &a.source_load {
            None => calm("no load throttle on this source (no sessions to count)".into()),
            Some(l) if l.above_high == 0 => calm(format!(
                "no slowdown expected: {} readings of the source's load, none above the throttle's high mark ({} statements)",
                l.samples, l.high
            )),
            Some(l) => {
                let share = l.above_high as f64 / l.samples.max(1) as f64;
                ThrottleFactor {
                    expected: 1.0 + share,
                    worst: 1.0 + 3.0 * share,
                    basis: format!(
                        "{} of {} readings of the source's load above the throttle's high mark ({} statements): the copy slows for that share",
                        l.above_high, l.samples, l.high
                    ),
                }
            }
        },
    }
}

/// The latency throttle pauses while its probe is slower than the
/// threshold: about half the time if the median read already is, a little
/// if only the slowest reads are.
fn latency_factor(a: &Assessment, policy: &Policy) -> ThrottleFactor {
    let Some(max) = policy.max_probe_latency else {
        return ThrottleFactor {
            expected: 1.0,
            worst: 1.5,
            basis: "latency throttle against twice the baseline it reads when the run starts: pauses only if reads slow down"
                .into(),
        };
    };
    let max_ms = max.as_secs_f64() * 1000.0;
    let latencies: Vec<_> = a.tables.iter().filter_map(|t| t.latency.as_ref()).collect();
    let share = if latencies.iter().any(|l| l.p50_ms > max_ms) {
        0.5
    } else if latencies.iter().any(|l| l.p99_ms > max_ms) {
        0.01
    } else {
        0.0
    };
    ThrottleFactor {
        expected: 1.0 + share,
        worst: 1.0 + 3.0 * share.max(0.1),
        basis: format!(
            "latency throttle at {max_ms:.0} ms: {}",
            match share {
                s if s >= 0.5 => "the median read was slower when measured, expect pauses about half the time",
                s if s > 0.0 => "only the slowest reads were slower when measured, expect few pauses",
                _ => "reads were faster when measured",
            }
        ),
    }
}

fn copy(a: &Assessment, policy: &Policy, throttle: ThrottleFactor) -> PartEstimate {
    let mut total = Figure::exact(0.0);
    let mut bases = Vec::new();
    for t in &a.tables {
        let figure = match &t.throughput {
            Some(p) if a.shape == Shape::InPlace => fill_in_place(t, p, policy, &throttle, &mut bases),
            Some(p) => copy_table(t, p, policy, &throttle, &mut bases),
            None => {
                bases.push(format!("{}: not measured, {} rows/s assumed", t.source, UNMEASURED_RATE as u64));
                Figure { seconds: t.rows as f64 / UNMEASURED_RATE, low: 0.25, high: 4.0 }
            }
        };
        total.add(figure);
    }
    bases.push(throttle.basis);
    part(Part::Copy, total, bases.join("; "))
}

/// Seconds of `batch_pause` a copy of `rows` on `lanes` connections waits.
fn pauses(rows: f64, lanes: u32, policy: &Policy) -> f64 {
    rows / lanes.max(1) as f64 / policy.batch_size.max(1) as f64 * policy.batch_pause.as_secs_f64()
}

fn copy_table(
    t: &TableFacts,
    p: &Throughput,
    policy: &Policy,
    throttle: &ThrottleFactor,
    bases: &mut Vec<String>,
) -> Figure {
    let rows = t.rows as f64;
    let (low, high) = spread(sample_share(t, p));
    let paused = pauses(rows, p.lanes, policy);
    let seconds = (rows / p.copy_rate() + paused) * throttle.expected;
    // Reads and writes overlapping fully is as fast as it can go.
    let fastest = p.overlapped_rows_per_second.map_or(low, |o| ((rows / o + paused) / seconds).min(low));
    bases.push(format!(
        "{}: {} rows at {} rows/s ({} copied by {} worker{} side by side, each batch its own commit)",
        t.source,
        thousands(t.rows),
        thousands(p.copy_rate().round() as u64),
        thousands(p.sample_rows),
        p.lanes,
        if p.lanes == 1 { "" } else { "s" }
    ));
    Figure { seconds, low: fastest, high: high * throttle.worst / throttle.expected }
}

/// A change in place fills its new columns with an UPDATE per batch, on one
/// connection, while the table's sync triggers fire on every filled row.
fn fill_in_place(
    t: &TableFacts,
    p: &Throughput,
    policy: &Policy,
    throttle: &ThrottleFactor,
    bases: &mut Vec<String>,
) -> Figure {
    let rows = t.rows as f64;
    let (low, high) = spread(sample_share(t, p));
    let paused = pauses(rows, 1, policy);
    match p.in_place_rows_per_second {
        Some(rate) => {
            bases.push(format!(
                "{}: {} rows filled in place at {} rows/s (an UPDATE per batch of the probe's rows, on one \
                 connection, with the change's sync triggers firing on every filled row, as the run fills)",
                t.source,
                thousands(t.rows),
                thousands(rate.round() as u64)
            ));
            let seconds = (rows / rate.max(1.0) + paused) * throttle.expected;
            // The run's batches also write their checkpoints and grow or
            // shrink to `chunk_time`: half as long again at most.
            Figure { seconds, low, high: 1.5 * high * throttle.worst / throttle.expected }
        }
        None => {
            bases.push(format!(
                "{}: the fill in place not measured; the copy's rate stands in for it, and the run may take up to 4 times longer",
                t.source
            ));
            let seconds = (rows / p.copy_rate() + paused) * throttle.expected;
            Figure { seconds, low, high: 4.0 * high * throttle.worst / throttle.expected }
        }
    }
}

/// Scales a time measured on `sample` rows to `rows` as a sort does (n log n).
fn n_log_n(seconds: f64, sample: u64, rows: u64) -> f64 {
    let (n, s) = ((rows.max(2)) as f64, (sample.max(2)) as f64);
    seconds * (n / s) * (n.ln() / s.ln())
}

/// Foreign keys the target validates after the data (one scan of the table each).
fn foreign_keys_added(t: &TableFacts) -> usize {
    t.ddl_after_load.iter().filter(|s| s.contains("FOREIGN KEY")).count()
}

fn indexes(a: &Assessment) -> PartEstimate {
    let mut total = Figure::exact(0.0);
    let mut bases = Vec::new();
    for t in a.tables.iter().filter(|t| !t.target_exists) {
        let Some(p) = &t.throughput else { continue };
        let share = sample_share(t, p);
        if let (Some(s), n) = (p.index_seconds, p.indexes_built) {
            if n > 0 {
                let seconds = n_log_n(s, p.sample_rows, t.rows);
                bases.push(format!("{}: {n} built on the probe's rows in {}, scaled n·log n", t.source, ms(s)));
                let (low, high) = if share >= 1.0 { (0.8, 1.25) } else { (0.6, 1.6) };
                total.add(Figure { seconds, low, high });
            }
        }
        let fks = foreign_keys_added(t);
        if fks > 0 {
            let per_scan = check_scan_seconds(t, p);
            bases.push(format!(
                "{}: {fks} foreign key{} validated, a scan each",
                t.source,
                if fks == 1 { "" } else { "s" }
            ));
            total.add(Figure { seconds: fks as f64 * per_scan, low: 0.5, high: 3.0 });
        }
    }
    if bases.is_empty() {
        bases.push("nothing to build after the data".into());
    }
    part(Part::Indexes, total, bases.join("; "))
}

/// Seconds one scan of the whole target table takes, from the checks run on the probe.
fn check_scan_seconds(t: &TableFacts, p: &Throughput) -> f64 {
    match p.check_seconds {
        Some(s) if p.checks_run > 0 && p.sample_rows > 0 => {
            s / p.checks_run as f64 * t.rows as f64 / p.sample_rows as f64
        }
        _ => t.rows as f64 / p.target_read_rows_per_second.unwrap_or(p.read_rows_per_second).max(1.0),
    }
}

/// The built-in checks the run makes on a table: no NULL where NOT NULL,
/// each key unique, no orphans per foreign key; the schema as created is a
/// catalog read.
fn checks_on(t: &TableFacts) -> usize {
    let not_null = t.columns.iter().any(|c| !c.nullable) as usize;
    not_null + 1 + t.unique_keys.len() + t.foreign_keys_out.len()
}

fn checks(a: &Assessment) -> PartEstimate {
    let mut total = Figure::exact(0.0);
    let mut runs = 0;
    for t in &a.tables {
        let n = checks_on(t);
        runs += n;
        let seconds = match &t.throughput {
            Some(p) => n as f64 * check_scan_seconds(t, p),
            None => n as f64 * t.rows as f64 / UNMEASURED_RATE,
        };
        total.add(Figure { seconds, low: 0.6, high: 1.6 });
    }
    part(
        Part::Checks,
        total,
        format!(
            "{runs} check{}, each a scan of the target table at the rate the same checks ran on the probe's rows",
            if runs == 1 { "" } else { "s" }
        ),
    )
}

fn verify(a: &Assessment) -> PartEstimate {
    let cross = a.cross_engine();
    let mut total = Figure::exact(0.0);
    let mut how = Vec::new();
    for t in &a.tables {
        let rows = t.rows as f64;
        let (figure, basis) = match &t.throughput {
            None => (Figure { seconds: rows / 20_000.0, low: 0.25, high: 4.0 }, "not measured, 20,000 rows/s assumed"),
            Some(p) => {
                let source = rows / p.read_rows_per_second.max(1.0);
                let (seconds, basis) = match (p.target_read_rows_per_second, p.checksum_rows_per_second) {
                    (Some(target), _) if cross => (
                        source + rows / target.max(1.0),
                        "every row read and hashed by Ferry on both sides, at the rates the probe read them",
                    ),
                    // Each chunk's keys are read, then both sides checksum it at once.
                    (_, Some(checksums)) if !cross => (
                        rows / checksums.max(1.0) + rows / p.key_read_rows_per_second.unwrap_or(checksums).max(1.0),
                        "each chunk's keys read, then checksummed in place on both sides at once, at the rates the target did both on the probe's rows",
                    ),
                    // No checksum in the database (SQLite): Ferry reads and hashes both sides' rows.
                    (Some(target), _) => (
                        source + rows / target.max(1.0),
                        "every row read and hashed by Ferry on both sides, at the rates the probe read them",
                    ),
                    (None, _) => (source, "every row read and hashed by Ferry, at the source's measured read rate"),
                };
                let (low, high) = spread(sample_share(t, p));
                (Figure { seconds, low, high }, basis)
            }
        };
        total.add(figure);
        if !how.contains(&basis) {
            how.push(basis);
        }
    }
    part(Part::Verify, total, how.join("; "))
}

/// Catching up with the changes made while the rows copied, were built
/// into indexes and verified: at the source's measured write rate, replayed
/// (spread over the workers' connections) at the copy's rate, which the
/// writes keep adding to.
fn sync(a: &Assessment, meanwhile: f64) -> PartEstimate {
    if a.shape == Shape::InPlace {
        // The run has no sync phase: the triggers expand installs keep both shapes in step.
        return part(
            Part::Sync,
            Figure::exact(0.0),
            "in place: triggers keep both shapes in step, nothing to replay".into(),
        );
    }
    let mut total = Figure::exact(0.0);
    let mut bases = Vec::new();
    let mut unmeasured = Vec::new();
    for t in &a.tables {
        match (t.write_rate, &t.throughput) {
            (Some(w), Some(p)) if w > 0.0 => {
                let replay = p.copy_rate();
                let changes = w * meanwhile;
                if replay > w {
                    total.add(Figure { seconds: changes / (replay - w), low: 0.5, high: 2.0 });
                    bases.push(format!("{}: {:.0} rows changed/s, replayed at {:.0} rows/s", t.source, w, replay));
                } else {
                    total.add(Figure { seconds: changes / replay, low: 1.0, high: 10.0 });
                    bases.push(format!(
                        "{}: the source changes {:.0} rows/s, as fast as the workers replay them ({:.0}/s): sync may not catch up",
                        t.source, w, replay
                    ));
                }
            }
            (Some(_), _) => {}
            (None, _) => unmeasured.push(t.source.as_str()),
        }
    }
    if !unmeasured.is_empty() {
        bases.push(format!("write rate not measured on {}: no changes assumed", unmeasured.join(", ")));
    } else if bases.is_empty() {
        bases.push("no writes on the source while measured".into());
    }
    part(Part::Sync, total, bases.join("; "))
}

fn ms(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Latency, LoadReading};
    use serde_json::json;
    use std::fmt::Write;

    /// A PostgreSQL -> PostgreSQL assessment of one table of `rows` rows,
    /// copied by the probe at `rate` rows/s (`sample` rows, two workers).
    fn assessment(rows: u64, sample: u64, rate: f64) -> Assessment {
        let endpoint = crate::fixture::endpoint("postgres");
        let throughput = json!({
            "sample_rows": sample, "seconds": 2.0, "read_rows_per_second": rate, "write_rows_per_second": rate,
            "target_read_rows_per_second": rate * 2.0, "lanes": 2, "copy_rows_per_second": rate,
            "overlapped_rows_per_second": rate * 1.5, "checksum_rows_per_second": rate * 10.0,
            "key_read_rows_per_second": rate * 10.0, "indexes_built": 1, "index_seconds": 0.1,
            "checks_run": 2, "check_seconds": 0.05, "ddl_seconds": 0.004
        });
        let table = json!({
            "source": "items", "target": "items", "rows": rows, "rows_exact": true, "size_bytes": null,
            "filter": null, "primary_key": ["id"], "key": ["id"], "key_enforced": true, "unique_keys": [],
            "indexes": [["owner"]], "foreign_keys_out": [],
            "dependents": { "foreign_keys_in": [], "triggers": [], "views": [] },
            "columns": [], "dropped_columns": [], "target_exists": false, "latency": null,
            "throughput": throughput, "write_rate": 0.0,
            "ddl_expand": ["CREATE TABLE items (id bigint PRIMARY KEY, owner integer)"],
            "ddl_after_load": ["CREATE INDEX items_owner ON items (owner)"]
        });
        serde_json::from_value(json!({
            "measured_at": "2026-12-01T00:00:00Z", "shape": "table_move",
            "source": endpoint, "target": endpoint, "tables": [table]
        }))
        .unwrap()
    }

    fn part(e: &Estimate, which: Part) -> &PartEstimate {
        e.parts.iter().find(|p| p.part == which).unwrap()
    }

    fn render(e: &Estimate) -> String {
        let mut out = format!("total {:.2} s ({:.2} to {:.2})\n", e.seconds, e.low_seconds, e.high_seconds);
        for p in &e.parts {
            let _ = writeln!(
                out,
                "{:<8} {:>7.3} s ({:.3} to {:.3})  {}",
                p.part.as_str(),
                p.seconds,
                p.low_seconds,
                p.high_seconds,
                p.basis
            );
        }
        out
    }

    #[test]
    fn every_part_of_a_measured_run_is_estimated_with_what_it_rests_on() {
        let e = estimate(&assessment(1_000_000, 200_000, 100_000.0), &Policy::default());
        insta::assert_snapshot!(render(&e));
        let sum: f64 = e.parts.iter().map(|p| p.seconds).sum();
        assert!((e.seconds - sum).abs() < 1e-9);
        assert!(e.parts.iter().all(|p| p.low_seconds <= p.seconds && p.seconds <= p.high_seconds), "{e:?}");
    }

    #[test]
    fn the_copy_takes_rows_over_the_workers_measured_rate_and_can_be_as_fast_as_full_overlap() {
        let e = estimate(&assessment(1_000_000, 200_000, 100_000.0), &Policy::default());
        let copy = part(&e, Part::Copy);
        assert!((copy.seconds - 10.0).abs() < 1e-9, "{copy:?}");
        assert!((copy.low_seconds - 1_000_000.0 / 150_000.0).abs() < 1e-9, "{copy:?}");
        assert!((copy.high_seconds - 13.0).abs() < 1e-9, "{copy:?}");
    }

    #[test]
    fn a_whole_table_in_the_sample_narrows_the_range() {
        let whole = estimate(&assessment(200_000, 200_000, 100_000.0), &Policy::default());
        let part_of = estimate(&assessment(2_000_000, 200_000, 100_000.0), &Policy::default());
        let width = |e: &Estimate| {
            let v = part(e, Part::Verify);
            (v.high_seconds - v.low_seconds) / v.seconds
        };
        assert!(width(&whole) < width(&part_of));
    }

    #[test]
    fn index_builds_scale_as_a_sort_does() {
        assert!((n_log_n(1.0, 1000, 1000) - 1.0).abs() < 1e-9);
        let scaled = n_log_n(1.0, 1000, 1_000_000);
        assert!((scaled - 2000.0).abs() < 1e-6, "{scaled}");
        let e = estimate(&assessment(200_000, 200_000, 100_000.0), &Policy::default());
        assert!((part(&e, Part::Indexes).seconds - 0.1).abs() < 1e-9);
    }

    #[test]
    fn the_throttle_slows_the_copy_for_the_share_of_readings_above_its_high_mark() {
        let mut a = assessment(1_000_000, 200_000, 100_000.0);
        a.source_load = Some(LoadReading { samples: 20, baseline: 1, high: 5, above_high: 5 });
        let copy = part(&estimate(&a, &Policy::default()), Part::Copy).clone();
        assert!((copy.seconds - 12.5).abs() < 1e-9, "{copy:?}");
        assert!(copy.basis.contains("5 of 20 readings"), "{}", copy.basis);
        let off = Policy { throttle: ThrottleMode::Off, ..Policy::default() };
        assert!((part(&estimate(&a, &off), Part::Copy).seconds - 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_latency_throttle_pauses_by_how_the_measured_reads_compare_with_its_threshold() {
        let mut a = assessment(1_000_000, 200_000, 100_000.0);
        a.tables[0].latency = Some(Latency { samples: 300, p50_ms: 2.0, p99_ms: 20.0 });
        let at = |max_ms: u64| {
            let policy = Policy {
                throttle: ThrottleMode::Latency,
                max_probe_latency: Some(std::time::Duration::from_millis(max_ms)),
                ..Policy::default()
            };
            part(&estimate(&a, &policy), Part::Copy).seconds
        };
        assert!((at(50) - 10.0).abs() < 1e-9, "faster than the threshold: no pause");
        assert!((at(10) - 10.1).abs() < 1e-9, "only the slowest reads slower: few pauses");
        assert!((at(1) - 15.0).abs() < 1e-9, "the median slower: about half the time paused");
    }

    #[test]
    fn sync_replays_what_was_written_meanwhile_at_the_replay_rate_less_the_write_rate() {
        let mut a = assessment(1_000_000, 200_000, 100_000.0);
        a.tables[0].write_rate = Some(1_000.0);
        let e = estimate(&a, &Policy::default());
        let meanwhile = part(&e, Part::Copy).seconds
            + part(&e, Part::Indexes).seconds
            + part(&e, Part::Verify).seconds
            + part(&e, Part::Checks).seconds;
        let sync = part(&e, Part::Sync);
        assert!((sync.seconds - 1_000.0 * meanwhile / 99_000.0).abs() < 1e-9, "{sync:?}");

        a.tables[0].write_rate = Some(200_000.0);
        let sync = part(&estimate(&a, &Policy::default()), Part::Sync).clone();
        assert!(sync.basis.contains("may not catch up"), "{}", sync.basis);
    }

    #[test]
    fn an_unmeasured_table_is_said_to_be_and_gets_a_wide_range() {
        let mut a = assessment(1_000_000, 200_000, 100_000.0);
        a.tables[0].throughput = None;
        a.tables[0].write_rate = None;
        let e = estimate(&a, &Policy::default());
        let copy = part(&e, Part::Copy);
        assert!(copy.basis.contains("not measured"), "{}", copy.basis);
        assert!(copy.high_seconds >= copy.seconds * 4.0 - 1e-9);
        assert!(part(&e, Part::Sync).basis.contains("write rate not measured on items"));
    }
}
