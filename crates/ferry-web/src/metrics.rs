//! `/metrics`: the migration's figures in the OpenMetrics text format
//! (which Prometheus scrapes), built from the status document and the audit
//! log at each scrape, so the figures are the state store's, never a cache.

use chrono::{DateTime, Utc};
use ferry_core::audit::PauseCause;
use ferry_core::status::{PhaseState, StatusReport};
use ferry_core::{AuditEvent, Phase, Spec};
use ferry_run::{RunError, StateStore};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

/// What Prometheus asks for first; the encoder writes it.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format, for a client that does not ask for OpenMetrics
/// (curl, `promtool check metrics`, older scrapers).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The OpenMetrics text as the classic Prometheus text format: a counter's
/// family takes its samples' `_total` name, and `# UNIT` and `# EOF` go
/// (the classic parser reads no units and no end marker).
pub fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Every figure, read now.
pub fn render(spec: &Spec) -> Result<String, RunError> {
    let report = ferry_run::status(spec)?;
    let events = if let Some(store) = StateStore::open_existing(&ferry_run::state_location(spec)?)? {
        store.audit_events(&[
            "throttle-paused",
            "phase-failed",
            "check-run",
            "integrity-check",
            "rollback-triggered",
        ])?
    } else {
        Vec::new()
    };
    let mut registry = Registry::with_prefix("ferry");
    register_migration(&mut registry, &report);
    register_tables(&mut registry, &report);
    register_verification(&mut registry, &report, &events);
    register_events(&mut registry, &events);
    let mut text = String::new();
    encode(&mut text, &registry).map_err(|e| RunError::state(format!("cannot encode the metrics: {e}")))?;
    Ok(text)
}

fn family<M: Default + Clone + prometheus_client::metrics::TypedMetric + prometheus_client::encoding::EncodeMetric>(
) -> Family<Labels, M> {
    Family::default()
}

fn seconds_since(at: Option<&str>, now: DateTime<Utc>) -> Option<f64> {
    let at = DateTime::parse_from_rfc3339(at?).ok()?.with_timezone(&Utc);
    Some(((now - at).num_milliseconds() as f64 / 1000.0).max(0.0))
}

fn unix_seconds(at: &str) -> Option<f64> {
    Some(DateTime::parse_from_rfc3339(at).ok()?.timestamp_millis() as f64 / 1000.0)
}

fn register_migration(registry: &mut Registry, report: &StatusReport) {
    let lifecycle = family::<Gauge>();
    lifecycle.get_or_create(&vec![("state", report.state.clone())]).set(1);
    registry.register("lifecycle_state", "Where the migration stands (value 1 on its current state)", lifecycle);

    let phases = family::<Gauge>();
    for phase in Phase::ALL {
        let state =
            report.phases.iter().find(|p| p.number == phase.number()).map_or(PhaseState::NotStarted, |p| p.state);
        phases.get_or_create(&vec![("phase", phase.name().to_string()), ("state", state.name().to_string())]).set(1);
    }
    registry.register("phase", "Each phase with its state (value 1)", phases);

    let runner = report.runner.as_ref();
    let up = Gauge::<i64>::default();
    up.set(i64::from(runner.is_some_and(|r| r.running)));
    registry.register("runner_running", "1 while a ferry process drives the migration (its heartbeat is fresh)", up);
    if let Some(seen) = runner.and_then(|r| unix_seconds(&r.last_seen)) {
        let last = FloatGauge::default();
        last.set(seen);
        registry.register_with_unit(
            "runner_last_seen_timestamp",
            "The runner's last heartbeat, as a Unix time",
            Unit::Seconds,
            last,
        );
    }

    let paused = family::<Gauge>();
    for by in ["operator", "throttle"] {
        paused.get_or_create(&vec![("by", by.to_string())]).set(i64::from(report.pauses.iter().any(|p| p.by == by)));
    }
    registry.register("paused", "1 while backfill and replay wait, by who asked", paused);

    let quarantined = Gauge::<i64>::default();
    quarantined.set(report.quarantined_rows as i64);
    registry.register("quarantined_rows", "Rows that could not be converted, listed in the quarantine", quarantined);

    let now = Utc::now();
    let newest = report.tables.iter().filter_map(|t| t.last_checkpoint_at.as_deref()).max();
    if let Some(age) = seconds_since(newest, now) {
        let gauge = FloatGauge::default();
        gauge.set(age);
        registry.register_with_unit(
            "state_checkpoint_age",
            "Time since the newest checkpoint recorded in the state store",
            Unit::Seconds,
            gauge,
        );
    }
    if let Some(cutover) = &report.cutover {
        let percent = Gauge::<i64>::default();
        percent.set(i64::from(cutover.read_percent));
        registry.register("cutover_stage_percent", "Share of reads the flags send to the target", percent);
        let reads = family::<Counter>();
        let shadow = &cutover.shadow;
        for (result, n) in [
            ("match", shadow.compared - shadow.mismatched - shadow.rechecked),
            ("mismatch", shadow.mismatched),
            ("lag", shadow.rechecked),
        ] {
            reads.get_or_create(&vec![("result", result.to_string())]).inc_by(n);
        }
        registry.register(
            "shadow_reads",
            "Shadow reads compared since the ramp started, by result (lag: equal once replay passed them)",
            reads,
        );
        let values = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for gate in cutover.gates.iter() {
            if let Some(value) = gate.value {
                values.get_or_create(&vec![("trigger", gate.trigger.clone())]).set(value);
            }
        }
        registry.register(
            "trigger_value",
            "Each rollback trigger's last value (percent, seconds or ratio, as its threshold)",
            values,
        );
    }
    if let Some(log) = &report.capture_log {
        let retained = Gauge::<i64>::default();
        retained.set(log.retained_bytes as i64);
        registry.register_with_unit(
            "capture_log_retained",
            "WAL or binary log the source keeps because Ferry has not read it yet",
            Unit::Bytes,
            retained,
        );
    }
}

fn register_tables(registry: &mut Registry, report: &StatusReport) {
    let copied = family::<Gauge>();
    let expected = family::<Gauge>();
    let rate = family::<FloatGauge>();
    let eta = family::<FloatGauge>();
    let lag = family::<FloatGauge>();
    let pending = family::<Gauge>();
    let replayed = family::<Counter>();
    for t in &report.tables {
        let labels = vec![("table", t.target.clone())];
        copied.get_or_create(&labels).set(t.rows_copied as i64);
        if let Some(total) = t.rows_total {
            expected.get_or_create(&labels).set(total as i64);
        }
        if let Some(r) = t.rows_per_second {
            rate.get_or_create(&labels).set(r);
        }
        if let Some(e) = t.eta_seconds {
            eta.get_or_create(&labels).set(e);
        }
        if let Some(c) = &t.capture {
            replayed.get_or_create(&labels).inc_by(c.replayed_changes);
            if let Some(p) = c.pending_changes {
                pending.get_or_create(&labels).set(p as i64);
            }
            lag.get_or_create(&labels).set(c.oldest_pending_seconds.unwrap_or(0.0));
        }
    }
    registry.register("table_rows_copied", "Rows the backfill has copied into the target table", copied);
    registry.register("table_rows_expected", "Rows the source table holds (exact, or the engine's estimate)", expected);
    registry.register("table_backfill_rows_per_second", "Copy speed over the last minute", rate);
    registry.register_with_unit(
        "table_backfill_eta",
        "Time left to copy the table at the current speed",
        Unit::Seconds,
        eta,
    );
    registry.register_with_unit(
        "table_replay_lag",
        "Age of the oldest captured change not yet replayed",
        Unit::Seconds,
        lag,
    );
    registry.register("table_replay_pending_changes", "Captured changes not yet replayed", pending);
    registry.register("table_changes_replayed", "Captured changes replayed into the target", replayed);
}

fn register_verification(registry: &mut Registry, report: &StatusReport, events: &[AuditEvent]) {
    let tables = family::<Gauge>();
    let differences = family::<Gauge>();
    let mut by_result: BTreeMap<&str, i64> = [("passed", 0), ("failed", 0), ("not_verified", 0)].into();
    for t in &report.tables {
        let result = match &t.verification {
            None => "not_verified",
            Some(v) if v.passed => "passed",
            Some(_) => "failed",
        };
        *by_result.entry(result).or_default() += 1;
        if let Some(v) = &t.verification {
            differences.get_or_create(&vec![("table", t.target.clone())]).set(v.differences as i64);
        }
    }
    for (result, n) in by_result {
        tables.get_or_create(&vec![("result", result.to_string())]).set(n);
    }
    registry.register("verify_tables", "Tables by the result of their last verification", tables);
    registry.register("verify_differences", "Rows found different by the table's last verification", differences);

    let checks = family::<Counter>();
    for result in ["passed", "failed"] {
        checks.get_or_create(&vec![("result", result.to_string())]).inc_by(0);
    }
    for event in events {
        let passed = match event {
            AuditEvent::CheckRun { passed, .. } => *passed,
            AuditEvent::IntegrityCheck { checksum_pass, sample_mismatches, .. } => {
                *checksum_pass && *sample_mismatches == 0
            }
            _ => continue,
        };
        checks.get_or_create(&vec![("result", if passed { "passed" } else { "failed" }.to_string())]).inc();
    }
    registry.register("integrity_checks", "Integrity checks run (table comparisons and [[check]]s), by result", checks);
}

fn register_events(registry: &mut Registry, events: &[AuditEvent]) {
    let pauses = family::<Counter>();
    for cause in PauseCause::ALL {
        pauses.get_or_create(&vec![("cause", cause.name().to_string())]).inc_by(0);
    }
    let errors = family::<Counter>();
    let fired = family::<Counter>();
    for metric in ferry_core::spec::TriggerMetric::ALL {
        fired.get_or_create(&vec![("trigger", metric.name().to_string())]).inc_by(0);
    }
    for event in events {
        match event {
            AuditEvent::ThrottlePaused { cause, .. } => {
                let cause = cause.map_or("unknown", PauseCause::name);
                pauses.get_or_create(&vec![("cause", cause.to_string())]).inc();
            }
            AuditEvent::RollbackTriggered { trigger, phase, .. } if *phase == Phase::Cutover.number() => {
                let metric = trigger.split_whitespace().next().unwrap_or_default();
                fired.get_or_create(&vec![("trigger", metric.to_string())]).inc();
            }
            AuditEvent::PhaseFailed { code, .. } => {
                let code = if code.is_empty() { "unknown" } else { code.as_str() };
                errors.get_or_create(&vec![("code", code.to_string())]).inc();
            }
            _ => {}
        }
    }
    registry.register("throttle_pauses", "Pauses of backfill and replay, by cause", pauses);
    registry.register("errors", "Phases that failed, by error code (docs/errors.md)", errors);
    registry.register("trigger_fired", "Rollback triggers of the read ramp that fired, by trigger", fired);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counter_families_by_their_samples() {
        let openmetrics = "# HELP ferry_errors Phases that failed.\n# TYPE ferry_errors counter\n\
                           ferry_errors_total{code=\"E301\"} 2\n# HELP ferry_age Age.\n# TYPE ferry_age gauge\n\
                           # UNIT ferry_age seconds\nferry_age 1.5\n# EOF\n";
        assert_eq!(
            classic_text(openmetrics),
            "# HELP ferry_errors_total Phases that failed.\n# TYPE ferry_errors_total counter\n\
             ferry_errors_total{code=\"E301\"} 2\n# HELP ferry_age Age.\n# TYPE ferry_age gauge\nferry_age 1.5\n"
        );
    }
}
