//! `ferry cutover`: the read ramp. Reads move to the target in the spec's
//! stages (1 → 10 → 50 → 100 % by default), each held for `[cutover] hold`
//! while captured changes are replayed and the gates are watched; a gate
//! that fails sends every read back to the source at once.
//!
//! The share of reads is published as flags the application reads: derived
//! from the lifecycle state and the stage in the state store (so a rollback,
//! an abort or a failed verification is 0 % without anyone publishing it),
//! served by `ferry serve` (`/api/v1/flags`, flagd's format at
//! `/api/v1/flags/flagd.json`) and written to `[cutover] flagd_file`.

use crate::error::{Result, RunError, RunErrorKind};
use crate::gates::{Gates, Reading};
use crate::machine::{advance, permit};
use crate::progress::Progress;
use crate::runner::Migration;
use crate::shadow::ShadowReader;
use crate::state::{now, timestamp, StateStore};
use ferry_core::lifecycle::{Command, Event, Stage, State};
use ferry_core::spec::{Advance, CutoverPolicy, TriggerMetric};
use ferry_core::status::GateStatus;
use ferry_core::{AuditEvent, Phase, Spec};
use ferry_engine::{Engine, WriteSpec};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the ramp looks at its gates (and at `--next`, `--abort`).
const GATE_EVERY: Duration = Duration::from_secs(1);
/// How often the ramp reports where it stands.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// What the application is told: the flags, one truth for every publication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flags {
    /// The migration's name in flag keys: the spec file's stem.
    pub migration: String,
    /// Share of reads (by targeting key) that go to the target, 0–100.
    pub read_percent: u8,
    pub writes_to_target: bool,
}

impl Flags {
    /// Every read and write on the source: before any command ran.
    pub fn before_any_run(spec: &Spec) -> Flags {
        Flags { migration: migration_name(spec), read_percent: 0, writes_to_target: false }
    }

    pub fn read_flag(&self) -> String {
        format!("ferry.{}.read-from-target", self.migration)
    }

    pub fn write_flag(&self) -> String {
        format!("ferry.{}.write-to-target", self.migration)
    }

    /// Changes whenever a flag does: the `ETag` and the `version` of `/api/v1/flags`.
    pub fn version(&self) -> String {
        let text = format!("{}/{}/{}", self.migration, self.read_percent, self.writes_to_target);
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }

    /// `GET /api/v1/flags`: the stage, the bucketing rule any language can compute, and a version.
    pub fn document(&self) -> serde_json::Value {
        serde_json::json!({
            "migration": self.migration,
            "version": self.version(),
            "read_from_target": {
                "flag": self.read_flag(),
                "percent": self.read_percent,
                "bucketing": "flagd fractional: h = murmur3_x86_32(flag + targeting_key, seed 0) as a signed 32-bit \
                              integer; bucket = |h| / 2147483647 * 100; the key reads from the target when bucket < percent",
            },
            "writes_to": if self.writes_to_target { "target" } else { "source" },
            "write_to_target": { "flag": self.write_flag(), "enabled": self.writes_to_target },
        })
    }

    /// The flag definitions in flagd's format: `fractional` targeting on the
    /// targeting key, "on" first, so a key on at 1 % stays on at 10 % and 50 %.
    pub fn flagd(&self) -> serde_json::Value {
        let boolean = |default_on: bool| {
            serde_json::json!({
                "state": "ENABLED",
                "variants": { "on": true, "off": false },
                "defaultVariant": if default_on { "on" } else { "off" },
            })
        };
        let mut read = boolean(self.read_percent >= 100);
        if (1..100).contains(&self.read_percent) {
            read["targeting"] =
                serde_json::json!({ "fractional": [["on", self.read_percent], ["off", 100 - self.read_percent]] });
        }
        serde_json::json!({
            "$schema": "https://flagd.dev/schema/v0/flags.json",
            "flags": {
                self.read_flag(): read,
                self.write_flag(): boolean(self.writes_to_target),
            }
        })
    }
}

/// The flags as the state store has them now.
pub fn flags(spec: &Spec, state: &StateStore) -> Result<Flags> {
    flags_named(migration_name(spec), state)
}

fn flags_named(migration: String, state: &StateStore) -> Result<Flags> {
    let read_percent = match state.lifecycle()? {
        State::At { stage } if stage.reads_ramped() => {
            state.meta("cutover_percent")?.and_then(|p| p.parse().ok()).unwrap_or(0)
        }
        State::At { stage } if stage >= Stage::Switching => 100,
        _ => 0,
    };
    Ok(Flags { migration, read_percent, writes_to_target: state.meta("writes")?.as_deref() == Some("target") })
}

fn migration_name(spec: &Spec) -> String {
    spec.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "ferry".into())
}

/// Writes the flagd file, when the spec names one. The file and the name are
/// remembered in the state store, so that every later change of state (a
/// switch, a rollback, a failed verification) rewrites it too: see [`republish`].
pub fn publish(spec: &Spec, state: &StateStore) -> Result<Flags> {
    if let Some(path) = spec.cutover.as_ref().and_then(|c| c.flagd_file.as_deref()) {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        state.set_meta("cutover_flagd_file", &absolute.to_string_lossy())?;
        state.set_meta("cutover_flags_name", &migration_name(spec))?;
    }
    republish(state)?;
    flags(spec, state)
}

/// Rewrites the flagd file a cutover named, from the state store as it is now;
/// called by the state machine after every change of state.
pub(crate) fn republish(state: &StateStore) -> Result<()> {
    let (Some(path), Some(name)) = (state.meta("cutover_flagd_file")?, state.meta("cutover_flags_name")?) else {
        return Ok(());
    };
    let flags = flags_named(name, state)?;
    // Written to a temporary file beside it, then renamed over it: a reader never sees half a file.
    write_atomically(Path::new(&path), &serde_json::to_string_pretty(&flags.flagd()).unwrap_or_default())
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let temporary = path.with_extension("ferry-tmp");
    let failed = |e: std::io::Error| {
        RunError::state(format!("cannot write the flagd file {}: {e}", path.display()))
            .with_hint("check `[cutover] flagd_file`: its directory must exist and be writable")
    };
    std::fs::write(&temporary, text).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

/// Writes the flags into `ferry_routing`: on the source, and on the target
/// too once writes moved there. Only for a migration with a `[cutover]`.
pub async fn publish_routing(spec: &Spec, flags: &Flags, source: &dyn Engine, target: &dyn Engine) -> Result<()> {
    if spec.cutover.is_none() {
        return Ok(());
    }
    crate::routing::publish(source, flags).await.map_err(|e| e.context("ferry_routing on the source"))?;
    if flags.writes_to_target {
        crate::routing::publish(target, flags).await.map_err(|e| e.context("ferry_routing on the target"))?;
    }
    Ok(())
}

/// `ferry cutover --abort`: every read back to the source, at once. Needs
/// only the state store (which `/api/v1/flags` derives from) and writes the
/// flag file; `ferry_routing` is written by the caller, which connects.
pub fn abort(spec: &Spec, by: &str) -> Result<Flags> {
    let state = StateStore::open_at(&crate::state_location(spec)?)?;
    let current = permit(&state, Command::Cutover)?;
    if matches!(current, State::At { stage } if stage.reads_ramped()) {
        advance(&state, Event::CutoverAborted)?;
        state.audit(&AuditEvent::CutoverAborted { by: by.to_string() })?;
    }
    publish(spec, &state)
}

/// `ferry cutover --next`: lets a manual ramp go on to its next stage once the hold elapsed.
pub fn request_next(spec: &Spec) -> Result<()> {
    let state = StateStore::open_at(&crate::state_location(spec)?)?;
    match state.lifecycle()? {
        State::At { stage: Stage::CuttingOver } => state.set_meta("cutover_next", &timestamp(now())),
        other => Err(RunError::new(
            RunErrorKind::Refused,
            format!("there is no read ramp to advance: the migration is {other}"),
        )
        .with_hint("`ferry cutover` starts the ramp")),
    }
}

/// `ferry cutover`'s options.
#[derive(Debug, Clone, Copy, Default)]
pub struct CutoverOptions {
    /// After a rollback trigger: start the ramp again.
    pub resume: bool,
    /// Record the differing values of shadow mismatches (masked otherwise).
    pub show_values: bool,
}

/// What a ramp carries from stage to stage.
struct Ramp<'a> {
    writes: Vec<WriteSpec>,
    throttle: crate::throttle::Throttle<'a>,
    shadow: ShadowReader<'a>,
    gates: Gates,
}

/// How a ramp ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CutoverOutcome {
    /// Every read goes to the target, held at 100 %.
    Completed,
    /// A gate failed: reads went back to the source. The trigger, in words.
    Triggered(String),
    /// Someone else moved reads back (`--abort`, a rollback, a failed verification).
    Withdrawn(State),
}

impl Migration {
    /// `ferry cutover`: runs (or resumes) the read ramp to 100 %. After a
    /// rollback trigger, only with `resume`, and only once a verification
    /// newer than the trigger passed.
    pub async fn cutover(&self, progress: &dyn Progress, options: CutoverOptions) -> Result<CutoverOutcome> {
        self.refuse_in_place("cutover")?;
        let policy = self.spec.cutover.clone().ok_or_else(|| {
            RunError::new(RunErrorKind::Usage, format!("{} has no [cutover] section", self.spec.path.display()))
                .with_hint("add `[cutover]` (stages = [1, 10, 50, 100], hold = \"15m\") to ramp reads, or go straight to `ferry switch`")
        })?;
        let state = permit(&self.state, Command::Cutover)?;
        // A spec mistake is said before the ramp starts, not as an error that ends it.
        crate::shadow::validate_queries(&self.plans, &policy)?;
        if state == State::at(Stage::CutOver) {
            progress.note("every read already goes to the target; `ferry switch` moves the writes");
            return Ok(CutoverOutcome::Completed);
        }
        if state == State::at(Stage::Verified) {
            self.check_trigger_cleared(options.resume)?;
            // A ramp from its first stage: its shadow counts and latency baseline start afresh.
            self.state.set_meta("cutover_stage", "0")?;
            // Until the first stage is published, no read moves (an aborted ramp's stage is not this one's).
            self.state.set_meta("cutover_percent", "0")?;
            self.state.set_meta("cutover_started_at", &timestamp(now()))?;
            self.state.clear_meta(&["cutover_latency_baseline", "cutover_gates"])?;
        }
        advance(&self.state, Event::CutoverStarted)?;
        self.begin(Phase::Cutover, progress)?;
        let result = self.ramp(&policy, progress, options.show_values).await;
        if let Err(e) = &result {
            self.fail_safe(e).await?;
        }
        let ended = match &result {
            Ok(CutoverOutcome::Completed) => Ok(()),
            Ok(CutoverOutcome::Triggered(t)) => Err(RunError::new(RunErrorKind::Refused, t.clone())),
            Ok(CutoverOutcome::Withdrawn(s)) => {
                Err(RunError::new(RunErrorKind::Refused, format!("reads withdrawn: {s}")))
            }
            Err(e) => Err(RunError::new(e.kind, e.message.clone())),
        };
        self.end(Phase::Cutover, &ended)?;
        if result.is_ok() {
            self.publish_flags_after_move().await;
        }
        result
    }

    /// The ramp stopped on an error (a read that fails, a replay that cannot
    /// go on): nothing watches the gates any more, so every read goes back to
    /// the source, recorded as a trigger (`--resume` after a verification).
    /// Ctrl-C and SIGTERM stop without moving reads: run again, the ramp goes on.
    async fn fail_safe(&self, error: &RunError) -> Result<()> {
        if error.kind == RunErrorKind::Interrupted || self.state.lifecycle()? != State::at(Stage::CuttingOver) {
            return Ok(());
        }
        let trigger = format!("error {}: {}", error.code(), error.message);
        advance(&self.state, Event::CutoverAborted)?;
        self.state.set_meta("cutover_triggered_at", &timestamp(now()))?;
        self.state.set_meta("cutover_trigger", &trigger)?;
        self.state.audit(&AuditEvent::RollbackTriggered {
            trigger: trigger.clone(),
            phase: Phase::Cutover.number(),
            action: "reads-to-source".into(),
            value: None,
            threshold: None,
        })?;
        // The database may be what failed: the state store and the flag file say 0 % already.
        self.publish_flags_after_move().await;
        Ok(())
    }

    async fn ramp(&self, policy: &CutoverPolicy, progress: &dyn Progress, show_values: bool) -> Result<CutoverOutcome> {
        let targets = self.target_schemas().await?;
        let writes: Vec<WriteSpec> = self.plans.iter().zip(&targets).map(|(p, t)| p.write_spec(t)).collect();
        let throttle = self.throttle(progress).await?;
        let mut shadow =
            ShadowReader::new(&*self.source, &*self.target, &self.state, &self.plans, &writes, policy, show_values)
                .await?;
        shadow.check_queries().await?;
        let mut ramp =
            Ramp { writes, throttle, shadow, gates: Gates::new(&policy.triggers, policy.prometheus.clone()) };
        let first: usize = self.state.meta("cutover_stage")?.and_then(|s| s.parse().ok()).unwrap_or(0);
        for (index, &percent) in policy.stages.iter().enumerate().skip(first.min(policy.stages.len() - 1)) {
            self.state.set_meta("cutover_stage", &index.to_string())?;
            self.state.set_meta("cutover_percent", &percent.to_string())?;
            // A resumed stage holds again in full: the time the process was gone was not watched.
            self.state.set_meta("cutover_stage_since", &timestamp(now()))?;
            self.state.clear_meta(&["cutover_next"])?;
            self.state.audit(&AuditEvent::CutoverStage { percent })?;
            self.publish_flags().await?;
            progress.note(&format!(
                "reads: {percent} % to the target; holding {}",
                ferry_core::audit::format_duration(policy.hold)
            ));
            let manual = policy.advance == Advance::Manual && percent < 100;
            if let Some(end) = self.hold(policy, percent, manual, &mut ramp, progress).await? {
                return Ok(end);
            }
        }
        advance(&self.state, Event::CutoverCompleted)?;
        Ok(CutoverOutcome::Completed)
    }

    /// Holds a stage, replaying, reading in shadow and watching the triggers, until it may advance.
    async fn hold(
        &self,
        policy: &CutoverPolicy,
        percent: u8,
        manual: bool,
        ramp: &mut Ramp<'_>,
        progress: &dyn Progress,
    ) -> Result<Option<CutoverOutcome>> {
        let started = Instant::now();
        let mut reported = Instant::now();
        loop {
            let slice = Instant::now() + GATE_EVERY;
            // One slice at a time: connections opened for each would outnumber the changes.
            self.replay_while(&ramp.writes, progress, &ramp.throttle, false, || Instant::now() < slice).await?;
            let state = self.state.lifecycle()?;
            if state != State::at(Stage::CuttingOver) {
                // Someone else moved reads back: the tables follow the state store.
                self.publish_flags_after_move().await;
                return Ok(Some(CutoverOutcome::Withdrawn(state)));
            }
            let lags = self.lags()?;
            ramp.shadow.tick(&lags).await?;
            let readings = self.readings(&lags, ramp).await?;
            let (gates, fired) = ramp.gates.evaluate(&readings);
            self.state.set_meta("cutover_gates", &serde_json::to_string(&gates).unwrap_or_default())?;
            if let Some(gate) = fired {
                return Ok(Some(CutoverOutcome::Triggered(self.fire(&gate, &ramp.shadow).await?)));
            }
            let held = started.elapsed() >= policy.hold;
            let next = !manual || self.state.meta("cutover_next")?.is_some();
            if held && next {
                return Ok(None);
            }
            if reported.elapsed() >= REPORT_EVERY {
                reported = Instant::now();
                let left = policy.hold.saturating_sub(started.elapsed());
                let watched: Vec<String> =
                    gates.iter().map(|g| format!("{} {} (max {})", g.trigger, g.shown, g.threshold)).collect();
                progress.note(&format!(
                    "reads: {percent} % to the target; {}; {}",
                    if held {
                        "waiting for `ferry cutover --next`".to_string()
                    } else {
                        format!("{} left in hold", ferry_core::audit::format_duration(left))
                    },
                    watched.join(", ")
                ));
            }
        }
    }

    /// Each trigger's value now.
    async fn readings(
        &self,
        lags: &HashMap<String, f64>,
        ramp: &mut Ramp<'_>,
    ) -> Result<BTreeMap<TriggerMetric, Reading>> {
        let since = self.state.meta("cutover_started_at")?;
        let totals = self.state.shadow_totals(since.as_deref())?;
        let mut readings = BTreeMap::new();
        readings.insert(
            TriggerMetric::MismatchRate,
            totals.mismatch_percent().map_or(Reading::Unmeasured("no read compared yet".into()), Reading::Value),
        );
        readings.insert(TriggerMetric::ReplayLag, Reading::Value(lags.values().copied().fold(0.0, f64::max)));
        readings.insert(
            TriggerMetric::LatencyRatio,
            ramp.shadow
                .latency
                .ratio()
                .map_or(Reading::Unmeasured("measuring the baseline".into()), |(_, r)| Reading::Value(r)),
        );
        let minute_ago = timestamp(now() - chrono::Duration::seconds(60));
        let reported = self.state.shadow_totals(Some(&minute_ago))?.error_percent().map(Reading::Value);
        let error_rate = match (ramp.gates.prometheus_error_rate().await, reported) {
            (Some(Reading::Value(p)), Some(Reading::Value(r))) => Reading::Value(p.max(r)),
            (Some(Reading::Value(p)), _) => Reading::Value(p),
            (_, Some(reported)) => reported,
            (Some(unmeasured), None) => unmeasured,
            (None, None) => Reading::Unmeasured("no error-rate source (set [cutover] prometheus)".into()),
        };
        readings.insert(TriggerMetric::ErrorRate, error_rate);
        Ok(readings)
    }

    /// A trigger fired: every read back to the source (state store, flag file,
    /// tables), recorded; returns the trigger in words.
    async fn fire(&self, gate: &GateStatus, shadow: &ShadowReader<'_>) -> Result<String> {
        let shape = match gate.trigger.as_str() {
            "latency_ratio" => shadow.latency.ratio().map(|(shape, _)| format!(" on {shape}")).unwrap_or_default(),
            _ => String::new(),
        };
        let trigger = format!("{} {}{shape} above {}", gate.trigger, gate.shown, gate.threshold);
        advance(&self.state, Event::CutoverAborted)?;
        self.state.set_meta("cutover_triggered_at", &timestamp(now()))?;
        self.state.set_meta("cutover_trigger", &trigger)?;
        self.publish_flags_after_move().await;
        self.state.audit(&AuditEvent::RollbackTriggered {
            trigger: format!("{}{shape}", gate.trigger),
            phase: Phase::Cutover.number(),
            action: "reads-to-source".into(),
            value: Some(gate.shown.clone()),
            threshold: Some(gate.threshold.clone()),
        })?;
        Ok(trigger)
    }

    /// [`Migration::publish_flags`] after a step that already moved the
    /// state (a trigger, a withdrawal, a switch or a switch back): the state
    /// store and the flag file say where reads go; a `ferry_routing` that
    /// cannot be written is said loudly and does not fail the step.
    pub(crate) async fn publish_flags_after_move(&self) {
        if let Err(e) = self.publish_flags().await {
            tracing::warn!(
                "{}; ferry_routing may still show the previous routing: run `ferry cutover --abort` (or the step \
                 again) once it can be written",
                e.message
            );
        }
    }

    /// Writes the flags everywhere they are published: the state store's
    /// derivation (HTTP), the flagd file, and `ferry_routing`.
    pub async fn publish_flags(&self) -> Result<Flags> {
        let flags = publish(&self.spec, &self.state)?;
        publish_routing(&self.spec, &flags, &*self.source, &*self.target).await?;
        Ok(flags)
    }

    /// Deletes the migration's `ferry_routing` rows (and the tables with their last row): rollback and contract.
    pub(crate) async fn remove_routing(&self) -> Result<Vec<String>> {
        let migration = migration_name(&self.spec);
        let mut notes = Vec::new();
        for (engine, side) in [(&self.source, "source"), (&self.target, "target")] {
            if crate::routing::read(&**engine, &migration).await?.is_some() {
                crate::routing::remove(&**engine, &migration).await?;
                notes.push(format!("removed the {} row of {} on the {side}", migration, crate::routing::ROUTING_TABLE));
            }
        }
        Ok(notes)
    }

    /// Each table's replay lag (its oldest change not yet replayed), in seconds.
    fn lags(&self) -> Result<HashMap<String, f64>> {
        Ok(self
            .state
            .table_statuses()?
            .into_iter()
            .map(|t| (t.target, t.capture.and_then(|c| c.oldest_pending_seconds).unwrap_or(0.0)))
            .collect())
    }

    /// After a trigger the ramp starts again only when asked (`--resume`) and
    /// after a verification of every table, newer than the trigger, passed.
    fn check_trigger_cleared(&self, resume: bool) -> Result<()> {
        let Some(at) = self.state.meta("cutover_triggered_at")? else { return Ok(()) };
        let trigger = self.state.meta("cutover_trigger")?.unwrap_or_default();
        if !resume {
            return Err(RunError::new(
                RunErrorKind::Refused,
                format!("a rollback trigger sent every read back to the source at {at}: {trigger}"),
            )
            .with_hint("find the cause, run `ferry verify`, then `ferry cutover --resume`"));
        }
        for plan in &self.plans {
            let table = plan.target_display();
            let verified = self.state.last_verification(&table)?.filter(|v| v.passed && v.at > at);
            if verified.is_none() {
                return Err(RunError::new(
                    RunErrorKind::Refused,
                    format!("{table} has no passing verification since the trigger at {at}"),
                )
                .with_hint("run `ferry verify`, then `ferry cutover --resume`"));
            }
        }
        self.state.clear_meta(&["cutover_triggered_at", "cutover_trigger"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(read_percent: u8) -> Flags {
        Flags { migration: "users".into(), read_percent, writes_to_target: false }
    }

    #[test]
    fn flagd_definitions_follow_the_stage() {
        let ten = flags(10).flagd();
        let read = &ten["flags"]["ferry.users.read-from-target"];
        assert_eq!(read["defaultVariant"], "off");
        assert_eq!(read["targeting"], serde_json::json!({ "fractional": [["on", 10], ["off", 90]] }));
        assert_eq!(ten["flags"]["ferry.users.write-to-target"]["defaultVariant"], "off");
        let none = flags(0).flagd();
        assert!(none["flags"]["ferry.users.read-from-target"].get("targeting").is_none());
        let all = flags(100).flagd();
        assert_eq!(all["flags"]["ferry.users.read-from-target"]["defaultVariant"], "on");
        assert!(all["flags"]["ferry.users.read-from-target"].get("targeting").is_none());
        assert_ne!(flags(10).version(), flags(50).version());
        assert_eq!(flags(10).version(), flags(10).version());
    }
}
