use crate::output::{print_checks, print_reports, Reporter};
use crate::{EXIT_DIFFERENCES, EXIT_INTERRUPTED, EXIT_OK};
use ferry_core::audit::format_duration;
use ferry_core::Phase;
use ferry_run::{Migration, RunOutcome};
use indicatif::HumanCount;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Stop once this phase is complete: expand, backfill or verify (the default).
    #[arg(long, value_parser = parse_phase)]
    until: Option<Phase>,
    /// After verification, keep replaying changes until Ctrl-C or SIGTERM.
    #[arg(long, conflicts_with = "until")]
    follow: bool,
    /// Only copy chunks, beside the `ferry run` that drives the migration
    /// (on this machine or another one sharing its `[state] url`); exits
    /// when every chunk is copied. See docs/scale-out.md.
    #[arg(long, conflicts_with_all = ["until", "follow"])]
    worker: bool,
    #[command(flatten)]
    http: super::serve::HttpArgs,
}

fn parse_phase(s: &str) -> Result<Phase, String> {
    match Phase::from_name(s) {
        Some(p @ (Phase::Expand | Phase::Backfill | Phase::Verify)) => Ok(p),
        Some(p) => Err(format!("phase `{}` is not implemented yet; use expand, backfill or verify", p.name())),
        None => Err(format!("unknown phase `{s}`; use expand, backfill or verify")),
    }
}

pub async fn run(spec_path: &Path, args: Args, cancel: ferry_run::Invocation) -> anyhow::Result<u8> {
    let spec = super::load_spec(spec_path)?;
    if args.worker {
        return work(spec, cancel).await;
    }
    let until = args.until.filter(|p| *p != Phase::Verify);
    let _serving = super::serve::start(spec_path, &args.http).await?;
    let reporter = Reporter::new();
    // A dropped connection or a restarting server: open again, go on from the checkpoint.
    let connected = AtomicBool::new(false);
    let (migration, outcome) = ferry_run::reconnect::surviving(&spec, &reporter, &connected, || async {
        let migration = Migration::open_with(spec.clone(), true, cancel.clone()).await?;
        connected.store(true, Ordering::Relaxed);
        let outcome = migration.run(until, &reporter).await?;
        Ok((migration, outcome))
    })
    .await?;
    print_summary(&outcome);
    if !outcome.succeeded() {
        return Ok(EXIT_DIFFERENCES);
    }
    if args.follow {
        return match follow_until_stopped(&migration, &reporter).await {
            // Following lost a server: go on as `ferry sync --follow` does, reconnecting.
            Err(e) if e.downcast_ref().is_some_and(ferry_run::reconnect::is_connection_failure) => {
                ferry_run::progress::Progress::note(
                    &reporter,
                    &format!("{e}; following again as `ferry sync --follow`"),
                );
                drop(migration);
                sync_with(spec, true, cancel, AtomicBool::new(true)).await
            }
            other => other,
        };
    }
    Ok(EXIT_OK)
}

/// `ferry run --worker`: copies chunks until none is left, reconnecting
/// after a dropped connection as `ferry run` does.
async fn work(spec: ferry_core::Spec, cancel: ferry_run::Invocation) -> anyhow::Result<u8> {
    let reporter = Reporter::new();
    let connected = AtomicBool::new(false);
    let outcome = ferry_run::reconnect::surviving(&spec, &reporter, &connected, || async {
        let migration = ferry_run::open_worker(spec.clone(), cancel.clone()).await?;
        connected.store(true, Ordering::Relaxed);
        migration.work(&reporter).await
    })
    .await?;
    outln!("worker done: copied {} rows; `ferry status` shows the migration", HumanCount(outcome.rows_copied));
    Ok(EXIT_OK)
}

/// Follows until Ctrl-C or SIGTERM; stopped as asked, it exits 130 as every
/// interrupted command does.
async fn follow_until_stopped(migration: &Migration, reporter: &Reporter) -> anyhow::Result<u8> {
    match migration.follow(reporter).await {
        Ok(()) => Ok(EXIT_OK),
        Err(e) if e.kind == ferry_run::RunErrorKind::Interrupted => {
            outln!("stopped following as asked; `ferry sync --follow` goes on from here");
            Ok(EXIT_INTERRUPTED)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn sync(
    spec_path: &Path,
    follow: bool,
    http: &super::serve::HttpArgs,
    cancel: ferry_run::Invocation,
) -> anyhow::Result<u8> {
    let spec = super::load_spec(spec_path)?;
    let _serving = super::serve::start(spec_path, http).await?;
    sync_with(spec, follow, cancel, AtomicBool::new(false)).await
}

/// `ferry sync`; `connected` says whether the servers were reached before
/// (a follower that lost one waits for it, as for a restart).
async fn sync_with(
    spec: ferry_core::Spec,
    follow: bool,
    cancel: ferry_run::Invocation,
    connected: AtomicBool,
) -> anyhow::Result<u8> {
    let reporter = Reporter::new();
    let (migration, code) = ferry_run::reconnect::surviving(&spec, &reporter, &connected, || async {
        let migration = Migration::open_with(spec.clone(), true, cancel.clone()).await?;
        connected.store(true, Ordering::Relaxed);
        migration.sync(&reporter).await?;
        if !follow {
            return Ok((migration, EXIT_OK));
        }
        match migration.follow(&reporter).await {
            Ok(()) => Ok((migration, EXIT_OK)),
            Err(e) if e.kind == ferry_run::RunErrorKind::Interrupted => {
                outln!("stopped following as asked; `ferry sync --follow` goes on from here");
                Ok((migration, EXIT_INTERRUPTED))
            }
            Err(e) => Err(e),
        }
    })
    .await?;
    print_lag(&migration)?;
    Ok(code)
}

fn print_lag(migration: &Migration) -> anyhow::Result<()> {
    for t in migration.state.table_statuses()? {
        if let Some(r) = t.reverse.as_ref().filter(|_| migration.writes_to().is_ok_and(|w| w.name() == "target")) {
            outln!(
                "{} -> {}: {} changes replayed into the source, {} pending",
                t.target,
                t.source,
                HumanCount(r.replayed_changes),
                HumanCount(r.pending_changes.unwrap_or(0))
            );
        } else if let Some(c) = &t.capture {
            outln!(
                "{}: {} changes replayed, {} pending{}",
                t.target,
                HumanCount(c.replayed_changes),
                HumanCount(c.pending_changes.unwrap_or(0)),
                c.oldest_pending_seconds.map(|s| format!(", oldest {s:.1}s")).unwrap_or_default()
            );
        }
    }
    Ok(())
}

pub async fn switch(
    spec_path: &Path,
    follow: bool,
    http: &super::serve::HttpArgs,
    cancel: ferry_run::Invocation,
) -> anyhow::Result<u8> {
    let spec = super::load_spec(spec_path)?;
    let _serving = super::serve::start(spec_path, http).await?;
    let migration = Migration::open_with(spec, true, cancel).await?;
    let reporter = Reporter::new();
    let outcome = migration.switch(&reporter).await?;
    if let Some(output) = &outcome.hook_output {
        outln!("hook: {output}");
    }
    outln!(
        "writes switched to the target; no side took writes for {} (fence on the source to writes recorded on the target)",
        format_duration(outcome.window)
    );
    if outcome.reverse_synced.is_empty() {
        outln!("no table is reverse synced: a rollback loses the writes made on the target, as the spec accepts");
    } else {
        outln!(
            "reverse sync keeps the source current for {}: run `ferry sync --follow`; `ferry rollback` moves writes back without loss",
            outcome.reverse_synced.join(", ")
        );
    }
    if follow {
        return follow_until_stopped(&migration, &reporter).await;
    }
    Ok(EXIT_OK)
}

pub async fn rollback(spec_path: &Path, keep_target: bool, cancel: ferry_run::Invocation) -> anyhow::Result<u8> {
    let spec = super::load_spec(spec_path)?;
    let migration = Migration::open_with(spec, true, cancel).await?;
    for note in migration.rollback_with(&Reporter::new(), keep_target).await? {
        outln!("{note}");
    }
    outln!("rolled back: neither side has a Ferry object left; `ferry run` starts over");
    Ok(EXIT_OK)
}

pub fn print_summary(outcome: &RunOutcome) {
    print_reports(&outcome.verification);
    print_checks(&outcome.checks);
    if let Some(phase) = outcome.stopped_after {
        outln!("stopped after phase {} {} as asked; `ferry run` continues from there", phase.number(), phase.name());
    }
    let copied: u64 = outcome.tables.iter().map(|t| t.rows_copied_now).sum();
    let rate = if outcome.backfill_seconds > 0.0 { copied as f64 / outcome.backfill_seconds } else { 0.0 };
    outln!(
        "{} {} rows in {} ({} rows/s); total {}; verification {}",
        if outcome.in_place { "backfilled" } else { "copied" },
        HumanCount(copied),
        format_duration(Duration::from_secs_f64(outcome.backfill_seconds)),
        HumanCount(rate as u64),
        format_duration(Duration::from_secs_f64(outcome.elapsed_seconds)),
        if outcome.verified() {
            "passed"
        } else if outcome.stopped_after.is_some() {
            "not run yet"
        } else {
            "FAILED"
        }
    );
    if let Some(estimate) = &outcome.estimate {
        let ms = |ms: u64| format_duration(Duration::from_millis(ms));
        outln!(
            "`ferry plan` estimated {} ({} to {}); this run took {} ({:.2}x the estimate, {} its range)",
            ms(estimate.estimated_ms),
            ms(estimate.low_ms),
            ms(estimate.high_ms),
            ms(estimate.actual_ms),
            estimate.ratio(),
            if estimate.within_range() { "inside" } else { "outside" }
        );
        for (phase, estimated, actual) in &estimate.phases {
            outln!("  {:<9} estimated {:>8}, took {:>8}", phase.name(), ms(*estimated), ms(*actual));
        }
    }
}
