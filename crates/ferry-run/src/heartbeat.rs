//! The runner's heartbeat, and the history it samples.
//!
//! A process that drives a migration writes a heartbeat into the state store
//! every [`BEAT_EVERY`] from a thread of its own, so `ferry status` and
//! `ferry serve` tell a working runner from a killed one by facts, not by the
//! last thing it happened to record (a SIGKILLed runner once stayed "paused by
//! throttle" for ever). The same thread samples each table's progress into
//! `samples`: the dashboard's chart and the rows/s figures are drawn from it,
//! and a restarted server still has the whole history.

use crate::error::Result;
use crate::state::args;
use crate::state::{now, timestamp, StateLocation, StateStore};
use chrono::{DateTime, Utc};
use ferry_core::status::{HistorySample, RunnerStatus};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a runner says it is alive, and samples its tables.
pub const BEAT_EVERY: Duration = Duration::from_secs(2);
/// A heartbeat older than this is a runner that stopped without saying so.
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// An unchanged table is still sampled this often, so a chart shows the plateau.
const RESAMPLE_UNCHANGED: Duration = Duration::from_secs(60);
/// The speed of a copy is measured over the samples of this last stretch.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Keeps the heartbeat going until dropped; dropping it records a clean exit.
pub struct Heartbeat {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    store: String,
}

impl Heartbeat {
    /// Starts beating for `command` (e.g. `run`) on the state store at
    /// `location`, as the process that drives the migration.
    pub fn start(location: &StateLocation, command: &str) -> Result<Heartbeat> {
        Heartbeat::start_as(location, command, Role::Runner)
    }

    /// Starts beating as `role`: a runner says it drives the migration and
    /// samples the tables; every process lists itself among the workers
    /// and keeps its chunk leases.
    pub fn start_as(location: &StateLocation, command: &str, role: Role) -> Result<Heartbeat> {
        let store = StateStore::open_at(location)?;
        let started = timestamp(store.clock());
        let runner = RunnerStatus {
            running: true,
            command: command.to_string(),
            pid: std::process::id(),
            host: host_name(),
            started_at: started.clone(),
            last_seen: started,
            exited_at: None,
        };
        store.beat(&runner, role)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ferry-heartbeat".into())
            .spawn(move || beat_until_stopped(store, runner, role, &signal))
            .map_err(|e| crate::RunError::state(format!("cannot start the heartbeat thread: {e}")))?;
        Ok(Heartbeat { stop, thread: Some(thread), store: location.describe() })
    }
}

/// What a beating process is to the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Drives the migration (`ferry run` and the commands like it).
    Runner,
    /// Copies chunks only (`ferry run --worker`).
    Worker,
}

fn beat_until_stopped(store: StateStore, mut runner: RunnerStatus, role: Role, stop: &(Mutex<bool>, Condvar)) {
    let (lock, wake) = stop;
    let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
    while !*stopped {
        let (guard, _) = wake.wait_timeout(stopped, BEAT_EVERY).unwrap_or_else(|e| e.into_inner());
        stopped = guard;
        if *stopped {
            break;
        }
        runner.last_seen = timestamp(store.clock());
        // A busy store (a long write of the runner) only delays a beat; the next one goes on.
        if let Err(e) = store.beat(&runner, role) {
            tracing::debug!("heartbeat: {e}");
        }
    }
    runner.last_seen = timestamp(store.clock());
    runner.exited_at = Some(runner.last_seen.clone());
    runner.running = false;
    // The chunks this process held and did not finish are free for the others at once.
    if let Err(e) = store.beat(&runner, role).and_then(|()| store.release_leases(&owner_id())) {
        tracing::debug!("heartbeat at exit: {e}");
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the heartbeat thread of {} panicked", self.store);
            }
        }
    }
}

/// This process, as chunk leases and the workers' list name it: `host/pid`.
pub fn owner_id() -> String {
    format!("{}/{}", host_name(), std::process::id())
}

/// Whether the process a lease names may still be alive: gone only when it
/// ran on this host and is not there any more (another host's is waited out
/// by the lease's expiry).
pub(crate) fn owner_alive(owner: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once('/') else { return true };
    let Ok(pid) = pid.parse::<u32>() else { return true };
    pid == std::process::id() || pid_alive(host, pid)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether the runner's process is alive, where this host can tell.
fn process_alive(runner: &RunnerStatus) -> bool {
    pid_alive(&runner.host, runner.pid)
}

/// Whether process `pid` of `host` is alive, where this host can tell.
fn pid_alive(host: &str, pid: u32) -> bool {
    if host != host_name() || !Path::new("/proc/self").exists() {
        return true;
    }
    // A killed process not yet reaped by its parent is a zombie: gone all the same.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn parse_time(at: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc))
}

impl StateStore {
    fn beat(&self, runner: &RunnerStatus, role: Role) -> Result<()> {
        if role == Role::Runner {
            let json = serde_json::to_string(runner).map_err(|e| crate::RunError::state(format!("heartbeat: {e}")))?;
            self.set_meta("runner", &json)?;
            self.record_samples()?;
        }
        self.db().execute(
            "INSERT INTO workers (id, host, pid, command, started_at, last_seen, exited_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (id) DO UPDATE SET command = excluded.command, started_at = excluded.started_at,
                 last_seen = excluded.last_seen, exited_at = excluded.exited_at",
            args![
                owner_id(),
                runner.host.as_str(),
                runner.pid,
                runner.command.as_str(),
                runner.started_at.as_str(),
                runner.last_seen.as_str(),
                runner.exited_at.as_deref()
            ],
        )?;
        if runner.exited_at.is_none() {
            self.renew_leases(&owner_id())?;
        }
        Ok(())
    }

    /// Every process that worked on this migration, with the chunk it holds
    /// and its last heartbeat (for `ferry status`).
    pub fn workers(&self) -> Result<Vec<ferry_core::status::WorkerStatus>> {
        let rows = self.db().query(
            "SELECT w.id, w.host, w.pid, w.command, w.started_at, w.last_seen, w.exited_at, c.target, c.chunk
             FROM workers w LEFT JOIN chunks c ON c.owner = w.id AND c.done = 0
             ORDER BY w.started_at, w.id, c.target, c.chunk",
            args![],
        )?;
        let mut out: Vec<ferry_core::status::WorkerStatus> = Vec::new();
        for r in rows {
            let id: String = r.get(0)?;
            let holding = r.get::<Option<String>>(7)?.zip(r.get::<Option<i64>>(8)?);
            if let Some(worker) = out.last_mut().filter(|w| w.id == id) {
                worker.chunks.extend(holding.map(|(t, c)| format!("{t}#{c}")));
                continue;
            }
            let (host, pid, exited_at): (String, u32, Option<String>) = (r.get(1)?, r.get(2)?, r.get(6)?);
            let last_seen: String = r.get(5)?;
            let fresh = parse_time(&last_seen)
                .is_some_and(|seen| (self.clock() - seen).to_std().unwrap_or_default() < STALE_AFTER);
            out.push(ferry_core::status::WorkerStatus {
                running: exited_at.is_none() && fresh && pid_alive(&host, pid),
                id,
                host,
                pid,
                command: r.get(3)?,
                started_at: r.get(4)?,
                last_seen,
                exited_at,
                chunks: holding.map(|(t, c)| format!("{t}#{c}")).into_iter().collect(),
            });
        }
        Ok(out)
    }

    /// The last process that drove this migration, and whether it still does.
    pub fn runner_status(&self) -> Result<Option<RunnerStatus>> {
        let Some(json) = self.meta("runner")? else { return Ok(None) };
        let Ok(mut runner) = serde_json::from_str::<RunnerStatus>(&json) else { return Ok(None) };
        let fresh = parse_time(&runner.last_seen)
            .is_some_and(|seen| (self.clock() - seen).to_std().unwrap_or_default() < STALE_AFTER);
        runner.running = runner.exited_at.is_none() && fresh && process_alive(&runner);
        Ok(Some(runner))
    }

    /// Samples every table whose figures changed since its last sample (or
    /// whose last sample is older than a minute).
    pub fn record_samples(&self) -> Result<()> {
        let at = now();
        let stamp = timestamp(at);
        let resample_before = timestamp(at - chrono::Duration::from_std(RESAMPLE_UNCHANGED).unwrap_or_default());
        self.db().execute(
            "INSERT INTO samples (at, target, rows_copied, replayed_changes, pending_changes, oldest_pending_seconds)
             SELECT ?1, t.target, t.rows_copied, t.replayed_changes, t.pending_changes, t.oldest_pending_seconds
             FROM tables t
             WHERE NOT EXISTS (
                 SELECT 1 FROM samples s
                 WHERE s.target = t.target
                   AND s.at = (SELECT max(at) FROM samples WHERE target = t.target)
                   AND s.rows_copied = t.rows_copied AND s.replayed_changes = t.replayed_changes
                   AND s.pending_changes IS NOT DISTINCT FROM t.pending_changes
                   AND s.oldest_pending_seconds IS NOT DISTINCT FROM t.oldest_pending_seconds
                   AND s.at > ?2)",
            args![stamp, resample_before],
        )?;
        Ok(())
    }

    /// Every sample in time order, at most `limit` per table (evenly thinned, newest kept).
    pub fn history(&self, limit: usize) -> Result<Vec<HistorySample>> {
        let all: Vec<HistorySample> = self
            .db()
            .query(
                "SELECT at, target, rows_copied, replayed_changes, pending_changes, oldest_pending_seconds
                 FROM samples ORDER BY target, at",
                args![],
            )?
            .iter()
            .map(|r| {
                Ok(HistorySample {
                    at: r.get(0)?,
                    table: r.get(1)?,
                    rows_copied: r.get::<i64>(2)? as u64,
                    replayed_changes: r.get::<i64>(3)? as u64,
                    pending_changes: r.get::<Option<i64>>(4)?.map(|n| n as u64),
                    oldest_pending_seconds: r.get(5)?,
                })
            })
            .collect::<Result<_>>()?;
        let mut by_table: Vec<Vec<HistorySample>> = Vec::new();
        for sample in all {
            match by_table.last_mut() {
                Some(group) if group[0].table == sample.table => group.push(sample),
                _ => by_table.push(vec![sample]),
            }
        }
        let mut out: Vec<HistorySample> = by_table.into_iter().flat_map(|group| thin(group, limit)).collect();
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.table.cmp(&b.table)));
        Ok(out)
    }

    /// Each table's copy speed over the last minute of its samples, from when
    /// it began to move in that minute: (rows/s, measured at).
    pub fn copy_rates(&self) -> Result<HashMap<String, (f64, String)>> {
        let mut newest: HashMap<String, (String, u64)> = HashMap::new();
        let latest = self.db().query(
            "SELECT s.target, s.at, s.rows_copied FROM samples s
             JOIN (SELECT target, max(at) AS at FROM samples GROUP BY target) m
               ON m.target = s.target AND m.at = s.at",
            args![],
        )?;
        for row in latest {
            let (target, at, rows): (String, String, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            newest.insert(target, (at, rows as u64));
        }
        let mut rates = HashMap::new();
        for (target, (at, rows)) in newest {
            let Some(end) = parse_time(&at) else { continue };
            let from = timestamp(end - chrono::Duration::from_std(RATE_WINDOW).unwrap_or_default());
            let first: Option<(String, i64)> = self
                .db()
                .query_opt(
                    "SELECT at, rows_copied FROM samples WHERE target = ?1 AND at >= ?2 ORDER BY at LIMIT 1",
                    args![target, from],
                )?
                .map(|r| Ok::<_, crate::RunError>((r.get(0)?, r.get(1)?)))
                .transpose()?;
            let Some((_, first_rows)) = first else { continue };
            // A table that waited its turn is measured from when it began to move.
            let first_at: String = self.db().query_value(
                "SELECT max(at) FROM samples WHERE target = ?1 AND at >= ?2 AND rows_copied = ?3",
                args![target, from, first_rows],
            )?;
            let Some(start) = parse_time(&first_at) else { continue };
            let seconds = (end - start).num_milliseconds() as f64 / 1000.0;
            if seconds >= 1.0 && rows >= first_rows as u64 {
                rates.insert(target, ((rows - first_rows as u64) as f64 / seconds, at));
            }
        }
        Ok(rates)
    }
}

/// At most `limit` samples, evenly spread, the first and the newest always kept.
fn thin(group: Vec<HistorySample>, limit: usize) -> Vec<HistorySample> {
    if group.len() <= limit || limit < 2 {
        return group;
    }
    let last = group.len() - 1;
    let step = last as f64 / (limit - 1) as f64;
    let keep: std::collections::BTreeSet<usize> =
        (0..limit).map(|i| ((i as f64 * step).round() as usize).min(last)).collect();
    group.into_iter().enumerate().filter(|(i, _)| keep.contains(i)).map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_that_stops_beating_is_not_running_and_a_clean_exit_says_when() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = StateStore::open(&path).unwrap();
        assert!(store.runner_status().unwrap().is_none());
        let beat = Heartbeat::start(&StateLocation::File(path.clone()), "run").unwrap();
        let runner = store.runner_status().unwrap().unwrap();
        assert!(runner.running, "{runner:?}");
        assert_eq!((runner.command.as_str(), runner.pid), ("run", std::process::id()));
        drop(beat);
        let runner = store.runner_status().unwrap().unwrap();
        assert!(!runner.running && runner.exited_at.is_some(), "{runner:?}");

        // A heartbeat that stopped without an exit (SIGKILL): stale, so not running.
        let stale = RunnerStatus {
            running: true,
            exited_at: None,
            last_seen: timestamp(now() - chrono::Duration::seconds(60)),
            ..runner.clone()
        };
        store.beat(&stale, Role::Runner).unwrap();
        assert!(!store.runner_status().unwrap().unwrap().running);
        // A fresh heartbeat of a process that is gone on this host: not running either.
        let gone = RunnerStatus { last_seen: timestamp(now()), pid: u32::MAX - 1, ..stale };
        store.beat(&gone, Role::Runner).unwrap();
        assert!(!store.runner_status().unwrap().unwrap().running);
    }

    #[test]
    fn samples_are_kept_when_figures_change_and_thinned_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        store.register_table("t", "t", "fp", 0).unwrap();
        store.record_samples().unwrap();
        store.record_samples().unwrap();
        assert_eq!(store.history(100).unwrap().len(), 1, "an unchanged table is not sampled again at once");
        for i in 1..=10u64 {
            store.db().execute("UPDATE tables SET rows_copied = ?1", args![i * 100]).unwrap();
            store.record_samples().unwrap();
        }
        let all = store.history(100).unwrap();
        assert_eq!(all.len(), 11);
        let thinned = store.history(4).unwrap();
        assert_eq!(thinned.len(), 4);
        assert_eq!((thinned[0].rows_copied, thinned[3].rows_copied), (0, 1000), "first and newest kept");
    }

    #[test]
    fn the_copy_rate_is_the_rows_over_the_seconds_between_samples() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        let insert = |at: &str, rows: i64| {
            store
                .db()
                .execute(
                    "INSERT INTO samples (at, target, rows_copied, replayed_changes) VALUES (?1, 't', ?2, 0)",
                    args![at, rows],
                )
                .unwrap();
        };
        insert("2026-11-30T10:00:00.000Z", 0);
        insert("2026-11-30T10:01:00.000Z", 1_000);
        insert("2026-11-30T10:01:10.000Z", 3_000);
        let rates = store.copy_rates().unwrap();
        let (rate, at) = &rates["t"];
        // The window is the last minute: from 10:00:10 on, only 10:01:00 and 10:01:10 count.
        assert_eq!(*rate, 200.0);
        assert_eq!(at, "2026-11-30T10:01:10.000Z");
        // A table that waited while another was copied: measured from when it moved.
        insert("2026-11-30T10:02:00.000Z", 3_000);
        insert("2026-11-30T10:02:30.000Z", 3_000);
        insert("2026-11-30T10:02:40.000Z", 5_000);
        assert_eq!(store.copy_rates().unwrap()["t"].0, 200.0);
    }
}
