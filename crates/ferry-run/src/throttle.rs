//! Keeping production comfortable: batches sized to a target time, and pauses
//! while the source is slow, a replica lags, or an operator asks.
//!
//! Before each batch the throttle runs a latency probe on the source (a keyed
//! read by default, or the spec's `latency_probe`). While the probe is slower
//! than its threshold, or replicas lag more than `max_lag`, or `ferry pause`
//! is in force, backfill and replay wait; each pause and resume is recorded
//! with its reason in the state store (for `ferry status`) and the audit log.

use crate::cancel::Cancel;
use crate::error::Result;
use crate::mapping::TablePlan;
use crate::progress::Progress;
use crate::state::StateStore;
use ferry_core::audit::PauseCause;
use ferry_core::spec::{MAX_BATCH, MIN_BATCH};
use ferry_core::{AuditEvent, Policy};
use ferry_engine::{Engine, ReadSpec, ReplicaLag, SelectItem};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAUSE_STEP: Duration = Duration::from_millis(500);
const BASELINE_SAMPLES: usize = 5;
/// How long a replica lag reading is reused: asking MySQL/MariaDB replicas
/// takes a connection to each, and batches can be much shorter than this.
const REPLICA_CHECK_EVERY: Duration = Duration::from_secs(1);

enum Probe {
    Sql(String),
    KeyedRead(ReadSpec),
    None,
}

pub struct Throttle<'a> {
    source: Arc<dyn Engine>,
    state: &'a StateStore,
    policy: &'a Policy,
    progress: &'a dyn Progress,
    probe: Probe,
    threshold: Option<Duration>,
    /// The reason of the throttle's own pause in force, if any.
    paused: RefCell<Option<String>>,
    last_probe: Cell<Option<Instant>>,
    replica_lag: RefCell<Option<(Instant, Option<ReplicaLag>)>>,
    cancel: Cancel,
}

impl<'a> Throttle<'a> {
    /// Measures the probe's baseline and derives the threshold.
    pub async fn new(
        source: Arc<dyn Engine>,
        state: &'a StateStore,
        policy: &'a Policy,
        plans: &[TablePlan],
        progress: &'a dyn Progress,
        cancel: Cancel,
    ) -> Result<Throttle<'a>> {
        let probe = match (&policy.latency_probe, plans.iter().find(|p| !p.key_source.is_empty())) {
            (Some(sql), _) => Probe::Sql(sql.clone()),
            (None, Some(plan)) => Probe::KeyedRead(ReadSpec {
                table: plan.source_name.clone(),
                select: plan.key_source.iter().map(|k| SelectItem::Column(k.clone())).collect(),
                key: plan.key_source.clone(),
                key_positions: (0..plan.key_source.len()).collect(),
                filter: None,
            }),
            (None, None) => Probe::None,
        };
        let mut throttle = Throttle {
            source,
            state,
            policy,
            progress,
            probe,
            threshold: None,
            paused: RefCell::new(None),
            last_probe: Cell::new(None),
            replica_lag: RefCell::new(None),
            cancel,
        };
        throttle.threshold = match policy.max_probe_latency {
            Some(t) => Some(t),
            None if matches!(throttle.probe, Probe::None) => None,
            None => {
                let mut samples = Vec::with_capacity(BASELINE_SAMPLES);
                for _ in 0..BASELINE_SAMPLES {
                    samples.push(throttle.measure().await?);
                }
                samples.sort();
                let baseline = samples[samples.len() / 2];
                Some((baseline * 2).max(baseline + Duration::from_millis(10)))
            }
        };
        Ok(throttle)
    }

    async fn measure(&self) -> Result<Duration> {
        let started = Instant::now();
        match &self.probe {
            Probe::Sql(sql) => self.source.probe(sql).await?,
            Probe::KeyedRead(read) => {
                self.source.read_batch(read, None, 1).await?;
            }
            Probe::None => {}
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
        if let Some(threshold) = self.threshold {
            let took = self.measure().await?;
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
