//! A server that restarts, fails over or drops Ferry's connection is waited
//! for, not fatal: the command opens the migration again and goes on from
//! its checkpoint, with backoff and jitter, for up to `[policy]
//! reconnect_for`; then it stops with the server and the last error.

use crate::error::{Result, RunError, RunErrorKind};
use crate::progress::Progress;
use ferry_core::Spec;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The first wait, and the longest.
const FIRST_WAIT: Duration = Duration::from_millis(250);
const LONGEST_WAIT: Duration = Duration::from_secs(10);
/// An attempt that lasted this long got through: its failure starts a new count.
const RECOVERED: Duration = Duration::from_secs(5);

/// Whether an error is a lost or refused connection (a restart, a failover,
/// a network blip, a killed session), which opening again may cure.
pub fn is_connection_failure(e: &RunError) -> bool {
    matches!(e.kind, RunErrorKind::Engine(ferry_engine::ErrorKind::Connect | ferry_engine::ErrorKind::ConnectionLost))
}

/// Runs `attempt` (which opens the migration, sets `connected`, and does the
/// work) until it ends other than by a connection failure, or `[policy]
/// reconnect_for` has passed since the first failure of a row. A server never
/// reached (`connected` still false: a wrong address, a server that is down)
/// is an error at once: waiting is for servers that were there.
pub async fn surviving<T, F, Fut>(
    spec: &Spec,
    progress: &dyn Progress,
    connected: &AtomicBool,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let limit = spec.policy.reconnect_for;
    let mut failing_since: Option<Instant> = None;
    let mut wait = FIRST_WAIT;
    let mut tries = 0u32;
    loop {
        let began = Instant::now();
        let error = match attempt().await {
            Err(e) if is_connection_failure(&e) && connected.load(Ordering::Relaxed) => e,
            other => return other,
        };
        if began.elapsed() >= RECOVERED {
            (failing_since, wait) = (None, FIRST_WAIT);
        }
        let since = *failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= limit {
            let given_up = format!(
                "gave up reconnecting after {:?} ([policy] reconnect_for = {:?}, {tries} tries)",
                since.elapsed(),
                limit
            );
            return Err(error.with_hint(given_up));
        }
        tries += 1;
        let jitter = Duration::from_millis(fastrand::u64(0..=wait.as_millis() as u64 / 2));
        progress.note(&format!(
            "{}; reconnecting in {:?} (try {tries}; up to [policy] reconnect_for = {limit:?})",
            error.message,
            wait + jitter
        ));
        tokio::time::sleep(wait + jitter).await;
        wait = (wait * 2).min(LONGEST_WAIT);
    }
}
