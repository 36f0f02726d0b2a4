//! Keeping production comfortable: batches sized to a target time, paced by
//! the load other sessions put on the source, and paused while a replica
//! lags, an operator asks, or (where the spec asks for it) a latency probe is slow.
//!
//! The default control is the rate, not on/off (gh-ost and spirit throttle on
//! a load signal against a baseline, not on the latency the copy itself
//! causes): before each batch the throttle counts the statements other
//! sessions are running in the source database
//! ([`ferry_engine::Health::active_sessions`], Ferry's own left out). Above a high mark it doubles a delay between
//! batches (the rate falls fast), below a low mark it takes a quarter of it
//! off, at least 50 ms (the rate comes back slowly); in between it holds, so
//! the two marks give hysteresis and the pace does not oscillate. A latency probe
//! (`latency_probe`, `max_probe_latency`) is an explicit policy: while it is
//! slower than its threshold, the work pauses. The copy's concurrency
//! follows the pace: at full speed every worker writes at once; each doubling
//! of the delay halves how many may (down to one), and they come back as the
//! delay falls, so a loaded source sees fewer writers as well as slower ones.
//! Pauses are recorded with their
//! reason in the state store (for `ferry status`) and the audit log, and so
//! is each change between full speed and a slowed pace.

use crate::cancel::Cancel;
use crate::error::Result;
use crate::mapping::TablePlan;
use crate::progress::Progress;
use crate::state::StateStore;
use ferry_core::audit::PauseCause;
use ferry_core::spec::{ThrottleMode, MAX_BATCH, MIN_BATCH};
use ferry_core::{AuditEvent, Policy};
use ferry_engine::{Engine, ReadSpec, ReplicaLag, SelectItem};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAUSE_STEP: Duration = Duration::from_millis(500);
/// How often the load is read: the workers waiting before their batches
/// share a reading, so the pace steps at this rate however many they are
/// (each stepping it would double the delay once per worker).
const LOAD_EVERY: Duration = Duration::from_millis(100);
const BASELINE_SAMPLES: usize = 5;
/// How long a replica lag reading is reused: asking MySQL/MariaDB replicas
/// takes a connection to each, and batches can be much shorter than this.
const REPLICA_CHECK_EVERY: Duration = Duration::from_secs(1);
/// The pace: the first delay between batches when the load is high, the
/// least a calm reading takes off it (a quarter otherwise), and the most it grows to.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const DELAY_STEP: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(5);

enum Probe {
    Sql(String),
    KeyedRead(ReadSpec),
}

/// What the throttle watches on the source, besides replicas and operators.
enum Signal {
    /// The spec asked for a latency probe: pause while it is slower than `threshold`.
    Latency { probe: Probe, threshold: Duration },
    /// Active sessions (the default): slow down above `high`, speed up below `low`.
    Load(LoadMarks),
    /// Nothing to watch (SQLite: no server; a table without a key to probe).
    Nothing,
}

/// The load marks, from the number of active sessions measured before the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadMarks {
    pub baseline: u64,
    pub high: u64,
    pub low: u64,
}

impl LoadMarks {
    /// Above twice the baseline and at least 4 more, slow down; back to
    /// full speed only at 1.5 times the baseline and at most 2 more.
    pub fn from_baseline(baseline: u64) -> LoadMarks {
        LoadMarks { baseline, high: baseline + baseline.max(4), low: baseline + (baseline / 2).max(2) }
    }

    /// The delay between batches after a reading of `active` sessions, from `delay`.
    pub fn next_delay(&self, active: u64, delay: Duration) -> Duration {
        if active > self.high {
            (delay * 2).clamp(FIRST_DELAY, MAX_DELAY)
        } else if active <= self.low {
            delay.saturating_sub((delay / 4).max(DELAY_STEP))
        } else {
            delay
        }
    }
}

pub struct Throttle<'a> {
    /// The source, on a connection of the throttle's own where it can be.
    source: Arc<dyn Engine>,
    state: &'a StateStore,
    policy: &'a Policy,
    progress: &'a dyn Progress,
    signal: Signal,
    /// The delay between batches the load asks for now.
    delay: Cell<Duration>,
    /// When the load was last read (see LOAD_EVERY).
    load_read_at: Cell<Option<Instant>>,
    /// The reason of the throttle's own pause in force, if any.
    paused: RefCell<Option<String>>,
    last_probe: Cell<Option<Instant>>,
    replica_lag: RefCell<Option<(Instant, Option<ReplicaLag>)>>,
    cancel: Cancel,
    /// The workers sharing this throttle, and how many are writing a batch now.
    workers: Cell<usize>,
    writing: Cell<usize>,
}

/// How many of `workers` may write at once at the pace `delay`: all at full
/// speed, half as many for each doubling of the delay from its first step,
/// at least one.
pub fn concurrency(workers: usize, delay: Duration) -> usize {
    if delay.is_zero() {
        return workers.max(1);
    }
    let doublings = (delay.as_millis() / FIRST_DELAY.as_millis()).max(1).ilog2() + 1;
    workers.checked_shr(doublings).unwrap_or(0).max(1)
}

/// A worker's turn to write a batch (see [`Throttle::turn`]); ends when dropped.
pub struct Turn<'t> {
    writing: &'t Cell<usize>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.writing.set(self.writing.get().saturating_sub(1));
    }
}

impl<'a> Throttle<'a> {
    /// Chooses what to watch and measures its baseline.
    pub async fn new(
        source: Arc<dyn Engine>,
        state: &'a StateStore,
        policy: &'a Policy,
        plans: &[TablePlan],
        progress: &'a dyn Progress,
        cancel: Cancel,
    ) -> Result<Throttle<'a>> {
        let mut throttle = Throttle {
            source,
            state,
            policy,
            progress,
            signal: Signal::Nothing,
            delay: Cell::new(Duration::ZERO),
            load_read_at: Cell::new(None),
            paused: RefCell::new(None),
            last_probe: Cell::new(None),
            replica_lag: RefCell::new(None),
            cancel,
            workers: Cell::new(1),
            writing: Cell::new(0),
        };
        throttle.signal = match policy.throttle {
            ThrottleMode::Latency => throttle.latency_signal(plans).await?,
            ThrottleMode::Load => throttle.load_signal().await?,
            ThrottleMode::Off => Signal::Nothing,
        };
        Ok(throttle)
    }

    /// The spec's probe (or a keyed read of the first table) and its threshold
    /// (the spec's, or twice the median of a few readings and 10 ms more).
    async fn latency_signal(&self, plans: &[TablePlan]) -> Result<Signal> {
        let probe = match (&self.policy.latency_probe, plans.iter().find(|p| !p.key_source.is_empty())) {
            (Some(sql), _) => Probe::Sql(sql.clone()),
            (None, Some(plan)) => Probe::KeyedRead(ReadSpec {
                table: plan.source_name.clone(),
                select: plan.key_source.iter().map(|k| SelectItem::Column(k.clone())).collect(),
                key: plan.key_source.clone(),
                key_positions: (0..plan.key_source.len()).collect(),
                filter: None,
            }),
            (None, None) => return Ok(Signal::Nothing),
        };
        let threshold = match self.policy.max_probe_latency {
            Some(t) => t,
            None => {
                let mut samples = Vec::with_capacity(BASELINE_SAMPLES);
                for _ in 0..BASELINE_SAMPLES {
                    samples.push(self.measure(&probe).await?);
                }
                samples.sort();
                let baseline = samples[samples.len() / 2];
                (baseline * 2).max(baseline + Duration::from_millis(10))
            }
        };
        Ok(Signal::Latency { probe, threshold })
    }

    /// The median of a few readings of the source's active sessions.
    async fn load_signal(&self) -> Result<Signal> {
        let mut samples = Vec::with_capacity(BASELINE_SAMPLES);
        for _ in 0..BASELINE_SAMPLES {
            match self.source.active_sessions().await? {
                Some(n) => samples.push(n),
                None => return Ok(Signal::Nothing),
            }
        }
        samples.sort_unstable();
        Ok(Signal::Load(LoadMarks::from_baseline(samples[samples.len() / 2])))
    }

    async fn measure(&self, probe: &Probe) -> Result<Duration> {
        let started = Instant::now();
        match probe {
            Probe::Sql(sql) => self.source.probe(sql).await?,
            Probe::KeyedRead(read) => {
                self.source.read_batch(read, None, 1).await?;
            }
        }
        Ok(started.elapsed())
    }

    /// The most lagging replica, read at most every REPLICA_CHECK_EVERY.
    async fn replica_lag(&self) -> Result<Option<ReplicaLag>> {
        if let Some((at, lag)) = self.replica_lag.borrow().as_ref() {
            if at.elapsed() < REPLICA_CHECK_EVERY {
                return Ok(lag.clone());
            }
        }
        let lag = self.source.replica_lag().await?;
        *self.replica_lag.borrow_mut() = Some((Instant::now(), lag.clone()));
        Ok(lag)
    }

    /// Why the work should wait now, if it should.
    async fn reason(&self) -> Result<Option<(PauseCause, String)>> {
        if let Some((_, reason, _)) = self.state.pauses()?.into_iter().find(|(who, _, _)| who == "operator") {
            return Ok(Some((PauseCause::Operator, format!("paused by an operator: {reason}"))));
        }
        if let Signal::Latency { probe, threshold } = &self.signal {
            let threshold = *threshold;
            let took = self.measure(probe).await?;
            self.last_probe.set(Some(Instant::now()));
            if took > threshold {
                return Ok(Some((
                    PauseCause::SourceLatency,
                    format!("source latency probe took {took:.0?}, over the {threshold:.0?} threshold"),
                )));
            }
        }
        if let Some(lag) = self.replica_lag().await? {
            match lag.seconds {
                None => {
                    return Ok(Some((
                        PauseCause::ReplicaStopped,
                        format!("replica {} is not replicating", lag.replica),
                    )))
                }
                Some(s) if s > self.policy.max_lag.as_secs_f64() => {
                    return Ok(Some((
                        PauseCause::ReplicaLag,
                        format!("replica lag {s:.1}s on {}, over the {:?} threshold", lag.replica, self.policy.max_lag),
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(None)
    }

    /// `workers` copy side by side under this throttle (see [`concurrency`]).
    pub fn share_among(&self, workers: usize) {
        self.workers.set(workers.max(1));
    }

    /// Waits, before a worker's batch, for as long as there is a reason to
    /// and until fewer workers write than the pace allows; the batch is
    /// written while the returned turn lives.
    pub async fn turn(&self) -> Result<Turn<'_>> {
        loop {
            self.wait().await?;
            if self.writing.get() < concurrency(self.workers.get(), self.delay.get()) {
                self.writing.set(self.writing.get() + 1);
                return Ok(Turn { writing: &self.writing });
            }
            self.cancel.check()?;
            tokio::time::sleep(LOAD_EVERY).await;
        }
    }

    /// Waits, before a batch, for as long as there is a reason to.
    pub async fn wait(&self) -> Result<()> {
        self.wait_while(&|| true).await.map(|_| ())
    }

    /// [`Throttle::wait`], giving up while `go_on` is false: `Ok(false)` when
    /// the work is still to wait (so that a caller with other duties, such as
    /// the read ramp's triggers, gets back to them).
    pub async fn wait_while(&self, go_on: &dyn Fn() -> bool) -> Result<bool> {
        loop {
            let why = self.reason().await?;
            let reason = why.as_ref().map(|(_, r)| r.clone());
            let was = self.paused.borrow().clone();
            match (&why, &was) {
                (Some((cause, r)), None) => {
                    self.state.set_pause("throttle", Some(r))?;
                    self.state.audit(&AuditEvent::ThrottlePaused { reason: r.clone(), cause: Some(*cause) })?;
                    self.progress.note(&format!("pausing: {r}"));
                }
                (None, Some(_)) => {
                    self.state.set_pause("throttle", None)?;
                    self.state.audit(&AuditEvent::ThrottleResumed {})?;
                    self.progress.note("resuming");
                }
                _ => {}
            }
            *self.paused.borrow_mut() = reason.clone();
            if reason.is_none() {
                self.pace().await?;
                return Ok(true);
            }
            self.cancel.check()?;
            if !go_on() {
                return Ok(false);
            }
            tokio::time::sleep(PAUSE_STEP).await;
        }
    }
}

impl Throttle<'_> {
    /// Reads the load and waits the delay it asks for before the next batch;
    /// a change between full speed and a slowed pace is noted and audited.
    async fn pace(&self) -> Result<()> {
        let Signal::Load(marks) = &self.signal else { return Ok(()) };
        if self.load_read_at.get().is_none_or(|at| at.elapsed() >= LOAD_EVERY) {
            self.load_read_at.set(Some(Instant::now()));
            self.step_pace(marks).await?;
        }
        let until = Instant::now() + self.delay.get();
        while Instant::now() < until {
            self.cancel.check()?;
            tokio::time::sleep((until - Instant::now()).min(PAUSE_STEP)).await;
        }
        Ok(())
    }

    /// Reads the load and sets the delay it asks for.
    async fn step_pace(&self, marks: &LoadMarks) -> Result<()> {
        let active = self.source.active_sessions().await?.unwrap_or(0);
        let before = self.delay.get();
        let delay = marks.next_delay(active, before);
        self.delay.set(delay);
        if delay != before {
            let since = match self.state.pace()? {
                Some(p) if !before.is_zero() => p.since,
                _ => crate::state::timestamp(crate::state::now()),
            };
            let pace = ferry_core::status::Pace {
                delay_ms: delay.as_millis() as u64,
                workers: concurrency(self.workers.get(), delay) as u64,
                active_sessions: active,
                baseline: marks.baseline,
                since,
            };
            self.state.set_pace((!delay.is_zero()).then_some(&pace))?;
        }
        if before.is_zero() != delay.is_zero() {
            self.state.audit(&AuditEvent::ThrottlePaced {
                active_sessions: active,
                baseline: marks.baseline,
                delay_ms: delay.as_millis() as u64,
            })?;
            if delay.is_zero() {
                self.progress.note(&format!("full speed again: {active} active session(s) on the source"));
            } else {
                self.progress.note(&format!(
                    "slowing down: {active} active session(s) on the source against {} before the copy \
                     (slower above {}, full speed again at {})",
                    marks.baseline, marks.high, marks.low
                ));
            }
        }
        Ok(())
    }
}

/// A batch size that follows the target chunk time.
pub struct ChunkSize {
    size: AtomicUsize,
    target: Duration,
}

impl ChunkSize {
    pub fn new(policy: &Policy) -> ChunkSize {
        ChunkSize { size: AtomicUsize::new(policy.batch_size), target: policy.chunk_time }
    }

    pub fn get(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// After a batch of `rows` took `took`: aim the next one at the target time,
    /// changing by at most a factor of two at once. A short last batch says nothing.
    pub fn record(&self, rows: usize, took: Duration) {
        if self.target.is_zero() || took.is_zero() || rows < MIN_BATCH {
            return;
        }
        let basis = rows as f64;
        let ideal = basis * self.target.as_secs_f64() / took.as_secs_f64();
        let next = ideal.clamp(basis / 2.0, basis * 2.0).clamp(MIN_BATCH as f64, MAX_BATCH as f64);
        self.size.store(next as usize, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_slows_fast_and_recovers_slowly_with_hysteresis() {
        let marks = LoadMarks::from_baseline(1);
        assert_eq!((marks.high, marks.low), (5, 3));
        let ms = Duration::from_millis;
        assert_eq!(marks.next_delay(5, Duration::ZERO), Duration::ZERO, "at the high mark: full speed");
        assert_eq!(marks.next_delay(6, Duration::ZERO), ms(100));
        assert_eq!(marks.next_delay(6, ms(100)), ms(200), "doubled while the load stays high");
        assert_eq!(marks.next_delay(4, ms(200)), ms(200), "between the marks: held");
        assert_eq!(marks.next_delay(3, ms(200)), ms(150), "at the low mark: 50 ms less");
        assert_eq!(marks.next_delay(3, ms(2000)), ms(1500), "or a quarter less");
        assert_eq!(marks.next_delay(0, ms(30)), Duration::ZERO);
        assert_eq!(marks.next_delay(50, ms(4000)), MAX_DELAY, "capped");
    }

    #[test]
    fn the_workers_writing_at_once_halve_with_each_doubling_of_the_delay() {
        let ms = Duration::from_millis;
        assert_eq!(concurrency(4, Duration::ZERO), 4, "full speed: all");
        assert_eq!(concurrency(4, ms(100)), 2);
        assert_eq!(concurrency(4, ms(150)), 2);
        assert_eq!(concurrency(4, ms(200)), 1);
        assert_eq!(concurrency(8, ms(400)), 1);
        assert_eq!(concurrency(64, MAX_DELAY), 1, "at least one");
        assert_eq!(concurrency(1, ms(100)), 1);
        let busy = LoadMarks::from_baseline(20);
        assert_eq!((busy.high, busy.low), (40, 30));
    }

    #[test]
    fn chunk_size_follows_the_target_time() {
        let policy = Policy { batch_size: 1000, chunk_time: Duration::from_millis(500), ..Policy::default() };
        let c = ChunkSize::new(&policy);
        c.record(1000, Duration::from_millis(100));
        assert_eq!(c.get(), 2000, "at most doubled");
        c.record(2000, Duration::from_millis(1000));
        assert_eq!(c.get(), 1000, "halved when twice too slow");
        c.record(50, Duration::from_millis(1000));
        assert_eq!(c.get(), 1000, "a tiny last batch says nothing");
        let fixed = ChunkSize::new(&Policy { batch_size: 1000, chunk_time: Duration::ZERO, ..Policy::default() });
        fixed.record(1000, Duration::from_millis(1));
        assert_eq!(fixed.get(), 1000);
    }
}
