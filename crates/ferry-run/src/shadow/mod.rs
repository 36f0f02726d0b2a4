//! Shadow reads: while the read ramp holds, Ferry reads the same rows from
//! both sides and compares them — keys drawn from the changes just replayed
//! and from the whole key space, at `[cutover] shadow_rate` reads a second,
//! through the migration's mapping and over the canonical encoding (so emoji,
//! JSON spelling, numeric scale or a collation never make a false mismatch),
//! plus the application's own query shapes (`[[cutover.shadow]]`).
//!
//! A read that differs is not a mismatch yet: its change may still wait in
//! the replay queue. It is read again once replay has passed the moment of
//! the first read; only a row whose source side did not move in between and
//! that still differs counts. Each read is timed on both sides: the target's
//! p99 against the source's baseline is the latency trigger's value.

mod canonical;
mod latency;
pub mod store;

pub use canonical::{canonical_rows, canonical_text};
pub use latency::Latency;
pub use store::{ShadowMismatch, ShadowOrigin, ShadowTally, ShadowTotals};

use crate::error::{Result, RunError, RunErrorKind};
use crate::mapping::TablePlan;
use crate::state::{now, timestamp, StateStore};
use crate::verify::{difference_of, index_rows};
use ferry_core::spec::ShadowQuery;
use ferry_core::{DataType, Value};
use ferry_engine::{Engine, WriteSpec};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Keys read once per table to sample from, when the key is not one integer column.
const KEY_POOL: usize = 10_000;
/// Recently replayed keys a sample is drawn from.
const RECENT_KEYS: usize = 200;
/// How often the integer key range is read again (the table grows).
const BOUNDS_EVERY: Duration = Duration::from_secs(30);
/// How long the ramp replays between two ticks.
const REPLAY_SLICE: Duration = Duration::from_secs(1);
/// A row whose source side keeps moving is read again at most this often, then left alone.
const MAX_RECHECKS: u32 = 30;

/// What one shadow read looks at.
#[derive(Debug, Clone)]
enum Probe {
    /// A row of a migrated table, by key (target-typed).
    Row { table: usize, key: Vec<Value> },
    /// A `[[cutover.shadow]]` query with its placeholders filled.
    Query { query: usize, source_sql: String, target_sql: String, key: String },
}

/// What a read found.
struct Look {
    /// The source side's answer, encoded: a recheck tells a moving row from a wrong one.
    source_digest: Vec<u8>,
    difference: Option<Found>,
}

/// A difference, as it is recorded.
struct Found {
    subject: String,
    key: String,
    columns: Vec<String>,
    detail: String,
}

impl Probe {
    fn same(&self, other: &Probe) -> bool {
        match (self, other) {
            (Probe::Row { table: a, key: k }, Probe::Row { table: b, key: l }) => a == b && k == l,
            (Probe::Query { query: a, key: k, .. }, Probe::Query { query: b, key: l, .. }) => a == b && k == l,
            _ => false,
        }
    }
}

struct Pending {
    probe: Probe,
    since: Instant,
    source_digest: Vec<u8>,
    rechecks: u32,
}

struct Table<'a> {
    plan: &'a TablePlan,
    types: Vec<DataType>,
    /// `Some` when the key is one integer column: samples are uniform over its range.
    int_range: Option<(i64, i64)>,
    range_read_at: Option<Instant>,
    pool: Vec<Vec<Value>>,
    samples: usize,
}

pub struct ShadowReader<'a> {
    source: &'a dyn Engine,
    target: &'a dyn Engine,
    state: &'a StateStore,
    tables: Vec<Table<'a>>,
    queries: &'a [ShadowQuery],
    rate: f64,
    credit: f64,
    last_tick: Instant,
    turn: usize,
    pending: Vec<Pending>,
    pub latency: Latency,
    show_values: bool,
}

impl<'a> ShadowReader<'a> {
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        source: &'a dyn Engine,
        target: &'a dyn Engine,
        state: &'a StateStore,
        plans: &'a [TablePlan],
        writes: &[WriteSpec],
        policy: &'a ferry_core::spec::CutoverPolicy,
        show_values: bool,
    ) -> Result<ShadowReader<'a>> {
        let mut tables = Vec::new();
        for (plan, write) in plans.iter().zip(writes) {
            let types: Vec<DataType> = write.columns.iter().map(|(_, t)| t.clone()).collect();
            let integer_key = plan.key_source.len() == 1
                && plan
                    .source
                    .column(&plan.key_source[0])
                    .is_some_and(|c| matches!(c.data_type, DataType::Int16 | DataType::Int32 | DataType::Int64));
            let mut table = Table { plan, types, int_range: None, range_read_at: None, pool: Vec::new(), samples: 0 };
            if !integer_key {
                table.pool = key_pool(source, &table).await?;
            }
            tables.push(table);
        }
        validate_queries(plans, policy)?;
        Ok(ShadowReader {
            source,
            target,
            state,
            tables,
            queries: &policy.shadow,
            rate: policy.shadow_rate,
            credit: 0.0,
            last_tick: Instant::now(),
            turn: 0,
            pending: Vec::new(),
            latency: Latency::load(state)?,
            show_values,
        })
    }

    /// Runs each `[[cutover.shadow]]` query once on both sides, so that a
    /// query that fails does so before any read moves, not in the middle of a stage.
    pub async fn check_queries(&mut self) -> Result<()> {
        for index in 0..self.queries.len() {
            if let Some(probe) = self.query_probe(index).await? {
                self.look(&probe).await?;
            }
        }
        Ok(())
    }

    /// One second's shadow reads: rechecks of earlier differences replay has
    /// passed since, then new reads at the configured rate, then each custom
    /// query once. `lags` is each target table's replay lag in seconds.
    /// The counts are recorded in the state store and returned.
    pub async fn tick(&mut self, lags: &HashMap<String, f64>) -> Result<ShadowTally> {
        let mut tally = ShadowTally::default();
        self.recheck(lags, &mut tally).await?;
        let elapsed = self.last_tick.elapsed().as_secs_f64();
        self.last_tick = Instant::now();
        self.credit = (self.credit + self.rate * elapsed).min(self.rate * 2.0 + 1.0);
        // The reads go round the tables and the custom queries in turn.
        let slots = self.tables.len() + self.queries.len();
        let mut probes = Vec::new();
        while self.credit >= 1.0 && slots > 0 {
            self.credit -= 1.0;
            self.turn += 1;
            let slot = self.turn % slots;
            let probe = match slot.checked_sub(self.tables.len()) {
                None => self.sample_key(slot).await?.map(|key| Probe::Row { table: slot, key }),
                Some(query) => self.query_probe(query).await?,
            };
            probes.extend(probe);
        }
        for probe in probes {
            if self.pending.iter().any(|p| p.probe.same(&probe)) {
                // Already waiting for replay to pass it: one row, one verdict.
                continue;
            }
            let look = self.look(&probe).await?;
            match look.difference {
                None => tally.compared += 1,
                Some(_) => self.pending.push(Pending {
                    probe,
                    since: Instant::now(),
                    source_digest: look.source_digest,
                    rechecks: 0,
                }),
            }
        }
        self.latency.save(self.state)?;
        self.state.record_shadow(ShadowOrigin::Ferry, &tally)?;
        Ok(tally)
    }

    /// Differences waiting for replay to pass them: read again once it has.
    async fn recheck(&mut self, lags: &HashMap<String, f64>, tally: &mut ShadowTally) -> Result<()> {
        let worst = lags.values().copied().fold(0.0, f64::max);
        let mut waiting = Vec::new();
        for mut item in std::mem::take(&mut self.pending) {
            let lag = match &item.probe {
                Probe::Row { table, .. } => {
                    lags.get(&self.tables[*table].plan.target_display()).copied().unwrap_or(0.0)
                }
                Probe::Query { .. } => worst,
            };
            // The lag was measured up to a slice ago: a slice more, and replay has surely passed the first read.
            if item.since.elapsed().as_secs_f64() <= lag + REPLAY_SLICE.as_secs_f64() {
                waiting.push(item);
                continue;
            }
            let look = self.look(&item.probe).await?;
            match look.difference {
                None => {
                    tally.compared += 1;
                    tally.rechecked += 1;
                }
                Some(found) if look.source_digest == item.source_digest => {
                    tally.compared += 1;
                    tally.mismatched += 1;
                    self.record(found)?;
                }
                Some(_) if item.rechecks >= MAX_RECHECKS => {
                    // The source row kept moving for half a minute: not a verdict either way.
                    tally.compared += 1;
                    tally.rechecked += 1;
                }
                Some(_) => {
                    item.since = Instant::now();
                    item.source_digest = look.source_digest;
                    item.rechecks += 1;
                    waiting.push(item);
                }
            }
        }
        self.pending = waiting;
        Ok(())
    }

    fn record(&self, found: Found) -> Result<()> {
        self.state.record_shadow_mismatch(&ShadowMismatch {
            at: timestamp(now()),
            origin: ShadowOrigin::Ferry.name().into(),
            subject: found.subject,
            key: found.key,
            columns: found.columns,
            detail: self.show_values.then_some(found.detail),
        })
    }

    /// Reads a probe on both sides, timing each, and compares.
    async fn look(&mut self, probe: &Probe) -> Result<Look> {
        match probe {
            Probe::Row { table, key } => {
                let table = &self.tables[*table];
                let plan = table.plan;
                let keys = std::slice::from_ref(key);
                let target_read = plan.target_read();
                let ((src, source_time), (tgt, target_time)) = tokio::try_join!(
                    timed(self.source.read_keys(&plan.read, keys)),
                    timed(self.target.read_keys(&target_read, keys))
                )?;
                let subject = plan.target_display();
                self.latency.record(&subject, source_time, target_time);
                let (src, tgt) = (index_rows(plan, &table.types, src), index_rows(plan, &table.types, tgt));
                let encoded = Value::encode_row(key);
                let source_row = src.get(&encoded);
                let source_digest = source_row.map(|r| Value::encode_row(r)).unwrap_or_default();
                let difference = difference_of(plan, key, source_row, tgt.get(&encoded)).map(|d| Found {
                    subject,
                    key: d.key.clone(),
                    columns: if d.columns.is_empty() {
                        vec![format!("{:?}", d.kind).to_lowercase()]
                    } else {
                        d.columns.iter().map(|c| c.column.clone()).collect()
                    },
                    detail: d
                        .columns
                        .iter()
                        .map(|c| format!("{}: source={}, target={}", c.column, c.source, c.target))
                        .collect::<Vec<_>>()
                        .join("; "),
                });
                Ok(Look { source_digest, difference })
            }
            Probe::Query { query, source_sql, target_sql, key } => {
                let q = &self.queries[*query];
                let ((src, source_time), (tgt, target_time)) = tokio::try_join!(
                    timed(self.source.query_text(source_sql)),
                    timed(self.target.query_text(target_sql))
                )
                .map_err(|e| RunError::from(e).context(format!("[[cutover.shadow]] \"{}\"", q.name)))?;
                self.latency.record(&q.name, source_time, target_time);
                let (src, tgt) = (canonical_rows(src, q.ordered), canonical_rows(tgt, q.ordered));
                let source_digest = serde_json::to_vec(&src).unwrap_or_default();
                let difference = (src != tgt).then(|| Found {
                    subject: q.name.clone(),
                    key: key.clone(),
                    columns: differing_columns(&src, &tgt),
                    detail: format!("source={src:?}; target={tgt:?}"),
                });
                Ok(Look { source_digest, difference })
            }
        }
    }

    /// A key of table `index`: every other sample from the changes replayed
    /// most recently (where a lagging or lost change would show), the others
    /// from the whole key space.
    async fn sample_key(&mut self, index: usize) -> Result<Option<Vec<Value>>> {
        self.tables[index].samples += 1;
        if self.tables[index].samples.is_multiple_of(2) {
            let recent = self.state.recent_changed_keys(&self.tables[index].plan.target_display(), RECENT_KEYS)?;
            if !recent.is_empty() {
                return Ok(Some(recent[fastrand::usize(..recent.len())].clone()));
            }
        }
        let source = self.source;
        let table = &mut self.tables[index];
        if !table.pool.is_empty() {
            return Ok(Some(table.pool[fastrand::usize(..table.pool.len())].clone()));
        }
        if table.range_read_at.is_none_or(|at| at.elapsed() >= BOUNDS_EVERY) {
            table.int_range = match source.key_bounds(&table.plan.read).await? {
                Some((Value::Int(low), Value::Int(high))) => Some((low, high)),
                _ => None,
            };
            table.range_read_at = Some(Instant::now());
        }
        let Some((low, high)) = table.int_range else { return Ok(None) };
        // The first row at or after a uniform point of the range.
        let point = fastrand::i64(low..=high);
        let mut rows = source.read_batch(&table.plan.read, Some(&[Value::Int(point - 1)]), 1).await?;
        if rows.is_empty() {
            rows = source.read_batch(&table.plan.read, None, 1).await?;
        }
        Ok(index_rows(table.plan, &table.types, rows)
            .into_values()
            .next()
            .map(|row| table.plan.read.key_positions.iter().map(|&i| row[i].clone()).collect()))
    }

    /// A custom query with its placeholders filled from a sampled key of its table.
    async fn query_probe(&mut self, index: usize) -> Result<Option<Probe>> {
        let q = &self.queries[index];
        let plans: Vec<&TablePlan> = self.tables.iter().map(|t| t.plan).collect();
        let table = plans.iter().position(|p| std::ptr::eq(*p, shadow_table_in(&plans, q))).unwrap_or(0);
        let Some(key) = self.sample_key(table).await? else { return Ok(None) };
        let q = &self.queries[index];
        let plan = self.tables[table].plan;
        let value = |engine: &dyn Engine, column: &str| {
            let i = plan.key_source.iter().position(|k| k == column).unwrap_or(0);
            literal(engine, &key[i])
        };
        let source_sql = ferry_core::spec::fill_placeholders(&q.source_sql, |c| value(self.source, c));
        let target_sql = ferry_core::spec::fill_placeholders(&q.target_sql, |c| value(self.target, c));
        let shown = plan.key_source.iter().zip(&key).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
        Ok(Some(Probe::Query { query: index, source_sql, target_sql, key: shown }))
    }
}

/// The shadow reads since the ramp started, for `ferry status`.
pub fn status(state: &StateStore) -> Result<ferry_core::status::ShadowStatus> {
    let since = state.meta("cutover_started_at")?;
    let totals = state.shadow_totals(since.as_deref())?;
    Ok(ferry_core::status::ShadowStatus {
        compared: totals.compared(),
        mismatched: totals.mismatched(),
        rechecked: totals.ferry.rechecked + totals.application.rechecked,
        compared_by_application: totals.application.compared,
        mismatch_percent: totals.mismatch_percent(),
        recent_mismatches: state.shadow_mismatches(since.as_deref(), 10)?,
    })
}

async fn timed<T>(
    f: impl std::future::Future<Output = ferry_engine::Result<T>>,
) -> ferry_engine::Result<(T, Duration)> {
    let started = Instant::now();
    let value = f.await?;
    Ok((value, started.elapsed()))
}

/// The first keys of a table, in key order: what keys of other types than one integer are sampled from.
async fn key_pool(source: &dyn Engine, table: &Table<'_>) -> Result<Vec<Vec<Value>>> {
    let mut keys: Vec<Vec<Value>> = Vec::new();
    let mut after: Option<Vec<Value>> = None;
    while keys.len() < KEY_POOL {
        let rows = source.read_batch(&table.plan.read, after.as_deref(), 1_000).await?;
        let Some(last) = rows.last() else { break };
        after = Some(table.plan.read.key_of(last));
        let done = rows.len() < 1_000;
        keys.extend(
            index_rows(table.plan, &table.types, rows)
                .into_values()
                .map(|row| table.plan.read.key_positions.iter().map(|&i| row[i].clone()).collect::<Vec<_>>()),
        );
        if done {
            break;
        }
    }
    Ok(keys)
}

/// Every `[[cutover.shadow]]` names a table of the migration and only its key columns as placeholders.
pub(crate) fn validate_queries(plans: &[TablePlan], policy: &ferry_core::spec::CutoverPolicy) -> Result<()> {
    for q in &policy.shadow {
        shadow_table(plans, q)?;
    }
    Ok(())
}

/// The table whose keys fill a shadow query's placeholders; every placeholder must be one of its key columns.
fn shadow_table<'p>(plans: &'p [TablePlan], q: &ShadowQuery) -> Result<&'p TablePlan> {
    let refs: Vec<&TablePlan> = plans.iter().collect();
    let plan = shadow_table_in(&refs, q);
    if let Some(table) = &q.table {
        if plan.source_name.name != *table && plan.source_name.to_string() != *table {
            return Err(RunError::new(
                RunErrorKind::Usage,
                format!("[[cutover.shadow]] \"{}\": `table = \"{table}\"` is not a table of this migration", q.name),
            )
            .with_hint("name a [[table]] `from` of the spec"));
        }
    }
    for placeholder in ferry_core::spec::placeholders(&q.source_sql) {
        if !plan.key_source.contains(&placeholder) {
            return Err(RunError::new(
                RunErrorKind::Usage,
                format!(
                    "[[cutover.shadow]] \"{}\": {{{placeholder}}} is not a key column of {} (its key: {})",
                    q.name,
                    plan.source_name,
                    plan.key_source.join(", ")
                ),
            )
            .with_hint("placeholders are filled from sampled keys: name them after the table's key columns"));
        }
    }
    Ok(plan)
}

fn shadow_table_in<'p>(plans: &[&'p TablePlan], q: &ShadowQuery) -> &'p TablePlan {
    q.table
        .as_ref()
        .and_then(|t| plans.iter().find(|p| p.source_name.name == *t || p.source_name.to_string() == *t))
        .copied()
        .unwrap_or(plans[0])
}

/// A key value as a SQL literal of `engine`'s dialect.
fn literal(engine: &dyn Engine, value: &Value) -> String {
    ferry_core::sqlexpr::value_literal(engine.kind(), value)
}

/// Where two canonical results differ: `rows` when their number does, else the column positions.
fn differing_columns(source: &[Vec<String>], target: &[Vec<String>]) -> Vec<String> {
    if source.len() != target.len() {
        return vec![format!("rows ({} and {})", source.len(), target.len())];
    }
    let mut columns: Vec<String> = Vec::new();
    for (s, t) in source.iter().zip(target) {
        for (i, (a, b)) in s.iter().zip(t).enumerate() {
            let name = format!("column {}", i + 1);
            if a != b && !columns.contains(&name) {
                columns.push(name);
            }
        }
    }
    columns
}
