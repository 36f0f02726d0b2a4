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
use crate::state::{now, timestamp, StateStore};
use chrono::{DateTime, Utc};
use ferry_core::status::{HistorySample, RunnerStatus};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
    path: PathBuf,
}

impl Heartbeat {
    /// Starts beating for `command` (e.g. `run`) on the state store at `path`.
    pub fn start(path: &Path, command: &str) -> Result<Heartbeat> {
        let store = StateStore::open(path)?;
        let started = timestamp(now());
        let runner = RunnerStatus {
            running: true,
            command: command.to_string(),
            pid: std::process::id(),
            host: host_name(),
            started_at: started.clone(),
            last_seen: started,
            exited_at: None,
        };
        store.beat(&runner)?;
        store.record_samples()?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ferry-heartbeat".into())
            .spawn(move || beat_until_stopped(store, runner, &signal))
            .map_err(|e| crate::RunError::state(format!("cannot start the heartbeat thread: {e}")))?;
        Ok(Heartbeat { stop, thread: Some(thread), path: path.to_path_buf() })
    }
}

fn beat_until_stopped(store: StateStore, mut runner: RunnerStatus, stop: &(Mutex<bool>, Condvar)) {
    let (lock, wake) = stop;
    let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
    while !*stopped {
        let (guard, _) = wake.wait_timeout(stopped, BEAT_EVERY).unwrap_or_else(|e| e.into_inner());
        stopped = guard;
        if *stopped {
            break;
        }
        runner.last_seen = timestamp(now());
        // A busy store (a long write of the runner) only delays a beat; the next one goes on.
        if let Err(e) = store.beat(&runner).and_then(|()| store.record_samples()) {
            tracing::debug!("heartbeat: {e}");
        }
    }
    runner.last_seen = timestamp(now());
    runner.exited_at = Some(runner.last_seen.clone());
    runner.running = false;
    if let Err(e) = store.beat(&runner).and_then(|()| store.record_samples()) {
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
                tracing::warn!("the heartbeat thread of {} panicked", self.path.display());
            }
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether the runner's process is alive, where this host can tell.
fn process_alive(runner: &RunnerStatus) -> bool {
    if runner.host != host_name() || !Path::new("/proc/self").exists() {
        return true;
    }
    // A killed process not yet reaped by its parent is a zombie: gone all the same.
    match std::fs::read_to_string(format!("/proc/{}/stat", runner.pid)) {
        Ok(stat) => stat.rsplit_once(") ").is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn parse_time(at: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc))
}

impl StateStore {
    fn beat(&self, runner: &RunnerStatus) -> Result<()> {
        let json = serde_json::to_string(runner).map_err(|e| crate::RunError::state(format!("heartbeat: {e}")))?;
        self.set_meta("runner", &json)
    }

    /// The last process that drove this migration, and whether it still does.
    pub fn runner_status(&self) -> Result<Option<RunnerStatus>> {
        let Some(json) = self.meta("runner")? else { return Ok(None) };
        let Ok(mut runner) = serde_json::from_str::<RunnerStatus>(&json) else { return Ok(None) };
        let fresh =
            parse_time(&runner.last_seen).is_some_and(|seen| (now() - seen).to_std().unwrap_or_default() < STALE_AFTER);
        runner.running = runner.exited_at.is_none() && fresh && process_alive(&runner);
        Ok(Some(runner))
    }

    /// Samples every table whose figures changed since its last sample (or
    /// whose last sample is older than a minute).
    pub fn record_samples(&self) -> Result<()> {
        let at = now();
        let stamp = timestamp(at);
        let resample_before = timestamp(at - chrono::Duration::from_std(RESAMPLE_UNCHANGED).unwrap_or_default());
        self.conn().execute(
            "INSERT INTO samples (at, target, rows_copied, replayed_changes, pending_changes, oldest_pending_seconds)
             SELECT ?1, t.target, t.rows_copied, t.replayed_changes, t.pending_changes, t.oldest_pending_seconds
             FROM tables t
             WHERE NOT EXISTS (
                 SELECT 1 FROM samples s
                 WHERE s.target = t.target
                   AND s.at = (SELECT max(at) FROM samples WHERE target = t.target)
                   AND s.rows_copied = t.rows_copied AND s.replayed_changes = t.replayed_changes
                   AND s.pending_changes IS t.pending_changes
                   AND s.oldest_pending_seconds IS t.oldest_pending_seconds
                   AND s.at > ?2)",
            params![stamp, resample_before],
        )?;
        Ok(())
    }

    /// Every sample in time order, at most `limit` per table (evenly thinned, newest kept).
    pub fn history(&self, limit: usize) -> Result<Vec<HistorySample>> {
        let mut stmt = self.conn().prepare(
            "SELECT at, target, rows_copied, replayed_changes, pending_changes, oldest_pending_seconds
             FROM samples ORDER BY target, at",
        )?;
        let all: Vec<HistorySample> = stmt
            .query_map([], |r| {
                Ok(HistorySample {
                    at: r.get(0)?,
                    table: r.get(1)?,
                    rows_copied: r.get::<_, i64>(2)? as u64,
                    replayed_changes: r.get::<_, i64>(3)? as u64,
                    pending_changes: r.get::<_, Option<i64>>(4)?.map(|n| n as u64),
                    oldest_pending_seconds: r.get(5)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
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
        let mut stmt = self.conn().prepare(
            "SELECT s.target, s.at, s.rows_copied FROM samples s
             JOIN (SELECT target, max(at) AS at FROM samples GROUP BY target) m
               ON m.target = s.target AND m.at = s.at",
        )?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))? {
            let (target, at, rows) = row?;
            newest.insert(target, (at, rows as u64));
        }
        let mut rates = HashMap::new();
        for (target, (at, rows)) in newest {
            let Some(end) = parse_time(&at) else { continue };
            let from = timestamp(end - chrono::Duration::from_std(RATE_WINDOW).unwrap_or_default());
            let first: Option<(String, i64)> = self
                .conn()
                .query_row(
                    "SELECT at, rows_copied FROM samples WHERE target = ?1 AND at >= ?2 ORDER BY at LIMIT 1",
                    params![target, from],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((_, first_rows)) = first else { continue };
            // A table that waited its turn is measured from when it began to move.
            let first_at: String = self.conn().query_row(
                "SELECT max(at) FROM samples WHERE target = ?1 AND at >= ?2 AND rows_copied = ?3",
                params![target, from, first_rows],
                |r| r.get(0),
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
        let beat = Heartbeat::start(&path, "run").unwrap();
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
        store.beat(&stale).unwrap();
        assert!(!store.runner_status().unwrap().unwrap().running);
        // A fresh heartbeat of a process that is gone on this host: not running either.
        let gone = RunnerStatus { last_seen: timestamp(now()), pid: u32::MAX - 1, ..stale };
        store.beat(&gone).unwrap();
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
            store.conn().execute("UPDATE tables SET rows_copied = ?1", [i as i64 * 100]).unwrap();
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
                .conn()
                .execute(
                    "INSERT INTO samples (at, target, rows_copied, replayed_changes) VALUES (?1, 't', ?2, 0)",
                    params![at, rows],
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
