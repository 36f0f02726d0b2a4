use crate::EXIT_OK;
use ferry_core::status::{PhaseState, StatusReport, TableStatus};
use std::path::Path;

pub fn run(spec_path: &Path, json: bool) -> anyhow::Result<u8> {
    let spec = super::load_spec_without_secrets(spec_path)?;
    let report = ferry_run::status(&spec)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(EXIT_OK);
    }
    outln!("spec    {}", report.spec);
    outln!("source  {}", report.source);
    outln!("target  {}", report.target);
    let legal: Vec<String> = report.legal_commands.iter().map(|c| format!("`ferry {c}`")).collect();
    outln!("state   {} (legal now: {})", report.state, if legal.is_empty() { "none".into() } else { legal.join(", ") });
    outln!("writes  go to the {}", report.routing.writes);
    outln!("runner  {}", runner(&report));
    print_workers(&report);
    outln!("as of   {}", report.generated_at);
    print_switch_and_soak(&report);
    print_capture_log(&report);
    print_phases(&report);
    if !report.tables.is_empty() {
        outln!("tables");
    }
    for t in &report.tables {
        print_table(t);
    }
    print_brakes(&report);
    Ok(EXIT_OK)
}

fn print_workers(report: &StatusReport) {
    // Listed once a `ferry run --worker` took part (a single runner is the line above).
    if report.workers.iter().any(|w| w.command == "run --worker") {
        for w in &report.workers {
            let holds = if w.chunks.is_empty() { String::new() } else { format!(", holds {}", w.chunks.join(", ")) };
            let state = if w.running {
                "working"
            } else if w.exited_at.is_some() {
                "exited"
            } else {
                "gone (no heartbeat)"
            };
            outln!("worker  {} ({}): {state}, last heartbeat {}{holds}", w.id, w.command, w.last_seen);
        }
    }
}

/// The switch's times and the soak's watch, once they started.
fn print_switch_and_soak(report: &StatusReport) {
    if let Some(s) = &report.switch {
        outln!(
            "switch  fenced {}, switched {}, writes unavailable for {}",
            s.fenced_at.as_deref().unwrap_or("-"),
            s.switched_at.as_deref().unwrap_or("not yet"),
            s.write_unavailability_ms.map_or("-".to_string(), |ms| format!("{ms} ms"))
        );
    }
    if let Some(soak) = &report.soak {
        outln!(
            "soak    {} -> {}{}",
            soak.started_at,
            soak.ends_at,
            if soak.elapsed { " (elapsed: `ferry contract --confirm` may go ahead)" } else { "" }
        );
        for w in &soak.watching {
            outln!("      watching {w}");
        }
        for t in &soak.triggers {
            outln!("      rollback trigger {t}");
        }
    }
}

/// How much log the source keeps for Ferry, and whether that is too much.
fn print_capture_log(report: &StatusReport) {
    if let Some(log) = &report.capture_log {
        let over = log.retained_bytes > log.max_retained_bytes;
        outln!(
            "capture the source keeps {} of log for Ferry (measured {}){}",
            ferry_plan::document::bytes(log.retained_bytes),
            log.measured_at,
            if over {
                format!(
                    " - WARNING: above [policy] max_retained ({}): run `ferry sync` to read it, or the source's disk fills",
                    ferry_plan::document::bytes(log.max_retained_bytes)
                )
            } else {
                String::new()
            }
        );
    }
}

fn print_phases(report: &StatusReport) {
    match report.phase {
        None => outln!("phase   not started (run `ferry run`)"),
        Some(p) => outln!("phase   {} {} ({})", p.number(), p.name(), state(report.phase_state)),
    }
    for p in &report.phases {
        let when = p.completed_at.as_deref().or(p.started_at.as_deref()).unwrap_or("");
        outln!("  {} {:<9} {:<11} {when}", p.number, p.name, state(p.state));
        if let Some(e) = &p.error {
            outln!("      {e}");
        }
    }
}

/// One table: its copy, its operations in place, its capture and its verification.
fn print_table(t: &TableStatus) {
    let total = match (t.rows_total, t.rows_total_exact) {
        (Some(n), true) => n.to_string(),
        (Some(n), false) => format!("~{n}"),
        (None, _) => "?".into(),
    };
    let pct = t
        .rows_total
        .filter(|n| *n > 0)
        .map(|n| format!(" ({:.1}%)", (t.rows_copied as f64 / n as f64 * 100.0).min(100.0)))
        .unwrap_or_default();
    outln!(
        "  {} <- {}: {}/{total} rows{pct}{}, {} batches ({} redone)",
        t.target,
        t.source,
        t.rows_copied,
        if t.backfill_complete { ", backfill complete" } else { "" },
        t.batches,
        t.batches_redone
    );
    if let Some(at) = &t.last_checkpoint_at {
        outln!(
            "      last checkpoint {at}{}",
            t.last_key.as_deref().map(|k| format!(" after {k}")).unwrap_or_default()
        );
    }
    for op in &t.operations {
        let at = op.at.as_deref().map(|a| format!(" at {a}")).unwrap_or_default();
        outln!("      {} {}: {}{at}", op.kind, op.subject, op.stage);
    }
    if let Some(c) = &t.capture {
        outln!(
            "      capture: {} changes replayed{}, {} pending{}",
            c.replayed_changes,
            c.last_replay_at.as_deref().map(|a| format!(" (last {a})")).unwrap_or_default(),
            c.pending_changes.map_or("?".into(), |p| p.to_string()),
            c.oldest_pending_seconds.map(|s| format!(", oldest {s:.1}s")).unwrap_or_default()
        );
    }
    if let Some(v) = &t.verification {
        outln!(
            "      verification {} at {}: rows {}/{}, checksum {}, sample {} ({} different)",
            if v.passed { "pass" } else { "FAIL" },
            v.at,
            v.rows_source,
            v.rows_target,
            if v.checksum_match { "equal" } else { "different" },
            v.sample_size,
            v.sample_mismatches
        );
    }
}

/// What holds the migration back: pauses, the throttle's pace, quarantined rows.
fn print_brakes(report: &StatusReport) {
    for p in &report.pauses {
        outln!("PAUSED by {} since {}: {}", p.by, p.since, p.reason);
    }
    if let Some(p) = &report.pace {
        outln!(
            "SLOWED by the throttle since {}: {} ms between batches ({} active session(s) on the source, {} before the copy)",
            p.since,
            p.delay_ms,
            p.active_sessions,
            p.baseline
        );
    }
    if report.quarantined_rows > 0 {
        outln!("quarantined rows  {} (in the state store's quarantine table)", report.quarantined_rows);
    }
}

/// The process driving the migration, from its heartbeat.
fn runner(report: &StatusReport) -> String {
    match &report.runner {
        None => "none has run yet".into(),
        Some(r) if r.running => {
            format!("`ferry {}` running (pid {} on {}, last seen {})", r.command, r.pid, r.host, r.last_seen)
        }
        Some(r) => format!(
            "not running, last seen {} (`ferry {}`, pid {} on {}{})",
            r.last_seen,
            r.command,
            r.pid,
            r.host,
            if r.exited_at.is_some() { ", exited" } else { ", stopped without exiting: killed or crashed" }
        ),
    }
}

fn state(s: PhaseState) -> &'static str {
    match s {
        PhaseState::NotStarted => "not started",
        PhaseState::Running => "running",
        PhaseState::Completed => "completed",
        PhaseState::Failed => "failed",
        PhaseState::Stopped => "stopped (run the command again to go on)",
    }
}

pub fn pause(spec_path: &Path, reason: Option<&str>) -> anyhow::Result<u8> {
    let spec = super::load_spec_without_secrets(spec_path)?;
    ferry_run::set_operator_pause(&spec, reason)?;
    match reason {
        Some(r) => {
            outln!("paused ({r}): a running backfill or sync waits before its next batch; `ferry resume` lets it go on")
        }
        None => outln!("resumed"),
    }
    Ok(EXIT_OK)
}

#[derive(clap::Subcommand)]
pub enum AuditAction {
    /// Recompute the hash chain of the audit log: exit 0 when intact, 1 when an entry was changed or removed.
    Verify,
}

pub fn audit(spec_path: &Path, action: AuditAction) -> anyhow::Result<u8> {
    let spec = super::load_spec_without_secrets(spec_path)?;
    let location = ferry_run::state_location(&spec)?;
    let Some(store) = ferry_run::StateStore::open_existing(&location)? else {
        return Err(ferry_run::RunError::state(format!("there is no state store at {} yet", location.describe()))
            .with_hint("`ferry run` (or `ferry plan`) starts the audit log")
            .into());
    };
    match action {
        AuditAction::Verify => match store.verify_audit_chain() {
            Ok(entries) => {
                outln!(
                    "audit log intact: {entries} entries, each hash covering the one before ({})",
                    location.describe()
                );
                Ok(EXIT_OK)
            }
            Err(e) => {
                outln!("audit log BROKEN: {}", e.message);
                Ok(crate::EXIT_DIFFERENCES)
            }
        },
    }
}
