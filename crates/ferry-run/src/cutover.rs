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
use crate::machine::{advance, permit};
use crate::progress::Progress;
use crate::runner::Migration;
use crate::state::{now, timestamp, StateStore};
use ferry_core::lifecycle::{Command, Event, Stage, State};
use ferry_core::spec::{Advance, CutoverPolicy};
use ferry_core::{AuditEvent, Phase, Spec};
use ferry_engine::WriteSpec;
use serde::Serialize;
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

/// `ferry cutover --abort`: every read back to the source, at once. Needs only the state store.
pub fn abort(spec: &Spec, by: &str) -> Result<Flags> {
    let state = StateStore::open(&crate::state_path(spec)?)?;
    let current = permit(&state, Command::Cutover)?;
    if matches!(current, State::At { stage } if stage.reads_ramped()) {
        advance(&state, Event::CutoverAborted)?;
        state.audit(&AuditEvent::CutoverAborted { by: by.to_string() })?;
    }
    publish(spec, &state)
}

/// `ferry cutover --next`: lets a manual ramp go on to its next stage once the hold elapsed.
pub fn request_next(spec: &Spec) -> Result<()> {
    let state = StateStore::open(&crate::state_path(spec)?)?;
    match state.lifecycle()? {
        State::At { stage: Stage::CuttingOver } => state.set_meta("cutover_next", &timestamp(now())),
        other => Err(RunError::new(
            RunErrorKind::Refused,
            format!("there is no read ramp to advance: the migration is {other}"),
        )
        .with_hint("`ferry cutover` starts the ramp")),
    }
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
    pub async fn cutover(&self, progress: &dyn Progress, resume: bool) -> Result<CutoverOutcome> {
        let policy = self.spec.cutover.clone().ok_or_else(|| {
            RunError::new(RunErrorKind::Usage, format!("{} has no [cutover] section", self.spec.path.display()))
                .with_hint("add `[cutover]` (stages = [1, 10, 50, 100], hold = \"15m\") to ramp reads, or go straight to `ferry switch`")
        })?;
        let state = permit(&self.state, Command::Cutover)?;
        if state == State::at(Stage::CutOver) {
            progress.note("every read already goes to the target; `ferry switch` moves the writes");
            return Ok(CutoverOutcome::Completed);
        }
        if state == State::at(Stage::Verified) {
            self.check_trigger_cleared(resume)?;
            self.state.set_meta("cutover_stage", "0")?;
        }
        advance(&self.state, Event::CutoverStarted)?;
        self.begin(Phase::Cutover, progress)?;
        let result = self.ramp(&policy, progress).await;
        let ended = match &result {
            Ok(CutoverOutcome::Completed) => Ok(()),
            Ok(CutoverOutcome::Triggered(t)) => Err(RunError::new(RunErrorKind::Refused, t.clone())),
            Ok(CutoverOutcome::Withdrawn(s)) => {
                Err(RunError::new(RunErrorKind::Refused, format!("reads withdrawn: {s}")))
            }
            Err(e) => Err(RunError::new(e.kind, e.message.clone())),
        };
        self.end(Phase::Cutover, &ended)?;
        publish(&self.spec, &self.state)?;
        result
    }

    async fn ramp(&self, policy: &CutoverPolicy, progress: &dyn Progress) -> Result<CutoverOutcome> {
        let targets = self.target_schemas().await?;
        let writes: Vec<WriteSpec> = self.plans.iter().zip(&targets).map(|(p, t)| p.write_spec(t)).collect();
        let throttle = self.throttle(progress).await?;
        let first: usize = self.state.meta("cutover_stage")?.and_then(|s| s.parse().ok()).unwrap_or(0);
        for (index, &percent) in policy.stages.iter().enumerate().skip(first.min(policy.stages.len() - 1)) {
            self.state.set_meta("cutover_stage", &index.to_string())?;
            self.state.set_meta("cutover_percent", &percent.to_string())?;
            // A resumed stage holds again in full: the time the process was gone was not watched.
            self.state.set_meta("cutover_stage_since", &timestamp(now()))?;
            self.state.clear_meta(&["cutover_next"])?;
            self.state.audit(&AuditEvent::CutoverStage { percent })?;
            publish(&self.spec, &self.state)?;
            progress.note(&format!(
                "reads: {percent} % to the target; holding {}",
                ferry_core::audit::format_duration(policy.hold)
            ));
            let manual = policy.advance == Advance::Manual && percent < 100;
            if let Some(end) = self.hold(policy, percent, manual, &writes, &throttle, progress).await? {
                return Ok(end);
            }
        }
        advance(&self.state, Event::CutoverCompleted)?;
        Ok(CutoverOutcome::Completed)
    }

    /// Holds a stage, replaying and watching the gates, until it may advance.
    async fn hold(
        &self,
        policy: &CutoverPolicy,
        percent: u8,
        manual: bool,
        writes: &[WriteSpec],
        throttle: &crate::throttle::Throttle<'_>,
        progress: &dyn Progress,
    ) -> Result<Option<CutoverOutcome>> {
        let started = Instant::now();
        let mut reported = Instant::now();
        loop {
            let slice = Instant::now() + GATE_EVERY;
            self.replay_while(writes, progress, throttle, || Instant::now() < slice).await?;
            let state = self.state.lifecycle()?;
            if state != State::at(Stage::CuttingOver) {
                return Ok(Some(CutoverOutcome::Withdrawn(state)));
            }
            let lag = self.worst_lag()?;
            if let Some((table, seconds)) = lag.clone().filter(|(_, s)| *s > policy.max_lag.as_secs_f64()) {
                let trigger = format!(
                    "replay lag {seconds:.1}s on {table} above [cutover] max_lag {}",
                    ferry_core::audit::format_duration(policy.max_lag)
                );
                advance(&self.state, Event::CutoverAborted)?;
                self.state.set_meta("cutover_triggered_at", &timestamp(now()))?;
                self.state.set_meta("cutover_trigger", &trigger)?;
                self.state.audit(&AuditEvent::RollbackTriggered {
                    trigger: trigger.clone(),
                    phase: Phase::Cutover.number(),
                    action: "reads-to-source".into(),
                })?;
                publish(&self.spec, &self.state)?;
                return Ok(Some(CutoverOutcome::Triggered(trigger)));
            }
            let held = started.elapsed() >= policy.hold;
            let next = !manual || self.state.meta("cutover_next")?.is_some();
            if held && next {
                return Ok(None);
            }
            if reported.elapsed() >= REPORT_EVERY {
                reported = Instant::now();
                let left = policy.hold.saturating_sub(started.elapsed());
                progress.note(&format!(
                    "reads: {percent} % to the target; {}; replay lag {} (max {})",
                    if held {
                        "waiting for `ferry cutover --next`".to_string()
                    } else {
                        format!("{} left in hold", ferry_core::audit::format_duration(left))
                    },
                    lag.map_or("0s".to_string(), |(_, s)| format!("{s:.1}s")),
                    ferry_core::audit::format_duration(policy.max_lag)
                ));
            }
        }
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

    /// The table whose oldest pending change is oldest, and its age in seconds.
    fn worst_lag(&self) -> Result<Option<(String, f64)>> {
        Ok(self
            .state
            .table_statuses()?
            .into_iter()
            .filter_map(|t| Some((t.target, t.capture?.oldest_pending_seconds?)))
            .max_by(|a, b| a.1.total_cmp(&b.1)))
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
