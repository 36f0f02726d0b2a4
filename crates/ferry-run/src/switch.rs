//! Phase 6, `ferry switch`: writes move to the target, and reverse sync
//! keeps the source current so that a rollback loses nothing.
//!
//! The order is Vitess's SwitchWrites, adapted: fence the source tables (the
//! application's writes fail; Ferry's own pass), replay what capture still
//! holds, move the target's identities beyond every copied key, install
//! capture on the target, record that writes go to the target, run the
//! operator's hook (which points the application at the target), then
//! remove the forward capture and start replaying the other way. Every step
//! is idempotent: a switch killed anywhere is finished by running `ferry
//! switch` again, or undone by `ferry rollback`.

use crate::backfill::Backfill;
use crate::error::{Result, RunError, RunErrorKind};
use crate::machine::{advance, permit};
use crate::mapping::TablePlan;
use crate::progress::Progress;
use crate::runner::{retry_ddl, Migration, LOCK_TIMEOUT};
use crate::state::{now, timestamp};
use crate::sync::Replayer;
use ferry_core::lifecycle::{Command, Event, Stage, State};
use ferry_core::spec::RollbackRequirement;
use ferry_core::{AuditEvent, CaptureMethod, Phase, TableSchema};
use ferry_engine::WriteSpec;
use std::time::{Duration, Instant};

/// Which side takes the application's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

/// What `ferry switch` did.
#[derive(Debug, Clone)]
pub struct SwitchOutcome {
    /// From the fence on the source to writes recorded (and the hook done) on the target.
    pub window: Duration,
    /// Tables whose writes come back to the source (the others are lost on rollback, as the spec accepts).
    pub reverse_synced: Vec<String>,
    pub hook_output: Option<String>,
}

/// A table after the switch: its reverse plan (when the mapping inverts) and how to write the source.
pub(crate) struct Reverse {
    pub(crate) plan: TablePlan,
    pub(crate) write: WriteSpec,
}

impl Migration {
    /// Where the application's writes go, as recorded.
    pub fn writes_to(&self) -> Result<Side> {
        Ok(match self.state.meta("writes")?.as_deref() {
            Some("target") => Side::Target,
            _ => Side::Source,
        })
    }

    /// `ferry switch`.
    pub async fn switch(&self, progress: &dyn Progress) -> Result<SwitchOutcome> {
        self.refuse_in_place("switch")?;
        let state = permit(&self.state, Command::Switch)?;
        if state == State::at(Stage::Verified) && self.spec.cutover.is_some() {
            return Err(RunError::new(
                RunErrorKind::Refused,
                "`ferry switch` waits for the read ramp: the spec has a [cutover] section and reads have not moved",
            )
            .with_hint("run `ferry cutover` (reads to the target, stage by stage), then `ferry switch`"));
        }
        if state == State::at(Stage::Verified) && self.spec.migration.require_rehearsal {
            crate::rehearse::check_rehearsed(&self.state, &self.spec)?;
        }
        let targets = self.target_schemas().await?;
        let reverse = self.reverse_plans(&targets)?;
        if state == State::at(Stage::Verified) {
            self.check_switch_gates(progress).await?;
            self.check_before_fence(&targets, progress).await?;
        }
        advance(&self.state, Event::SwitchStarted)?;
        self.begin(Phase::Switch, progress)?;
        let result = self.switch_steps(&targets, &reverse, progress).await;
        self.end(Phase::Switch, &result.as_ref().map(|_| ()).map_err(|e| RunError::new(e.kind, e.message.clone())))?;
        result
    }

    async fn switch_steps(
        &self,
        targets: &[TableSchema],
        reverse: &[Option<Reverse>],
        progress: &dyn Progress,
    ) -> Result<SwitchOutcome> {
        // Up to `writes = target` every step is redone by a resumed switch;
        // after it, the forward capture may be gone and only what follows is.
        if self.writes_to()? == Side::Source {
            if self.state.meta("switch_fenced_at")?.is_none() {
                self.state.set_meta("switch_fenced_at", &timestamp(now()))?;
            }
            self.fence_and_hand_over(targets, reverse, progress).await?;
            self.state.set_meta("writes", Side::Target.name())?;
        }
        self.publish_flags_after_move().await;
        let hook_output = self.run_hook(Side::Target, Phase::Switch).await?;
        let fenced_at = self
            .state
            .meta("switch_fenced_at")?
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(now);
        let window = (now() - fenced_at).to_std().unwrap_or_default();
        if self.state.meta("switched_at")?.is_none() {
            self.state.set_meta("switch_window_ms", &window.as_millis().to_string())?;
            self.state.set_meta("switched_at", &timestamp(now()))?;
            self.state
                .audit(&AuditEvent::WritesSwitched { to: "target".into(), window_ms: window.as_millis() as u64 })?;
        }
        // Replayed writes to the source must not come back forward.
        for plan in &self.plans {
            retry_ddl(|| self.source.remove_capture(&plan.source_name, LOCK_TIMEOUT), progress).await?;
            self.state.audit(&AuditEvent::CaptureRemoved { table: plan.source_name.to_string() })?;
        }
        self.drain_reverse(reverse, progress, false).await?;
        advance(&self.state, Event::SwitchCompleted)?;
        Ok(SwitchOutcome {
            window,
            reverse_synced: self
                .plans
                .iter()
                .zip(reverse)
                .filter(|(_, r)| r.is_some())
                .map(|(p, _)| p.target_display())
                .collect(),
            hook_output,
        })
    }

    /// Fences the source, replays what capture holds, moves identities and
    /// installs capture on the target: everything before `writes = target`.
    async fn fence_and_hand_over(
        &self,
        targets: &[TableSchema],
        reverse: &[Option<Reverse>],
        progress: &dyn Progress,
    ) -> Result<()> {
        for plan in &self.plans {
            let message = format!(
                "Ferry fenced writes to {}: they move to {} (migration switch)",
                plan.source_name, plan.target_name
            );
            retry_ddl(|| self.source.install_fence(&plan.source_name, &message, LOCK_TIMEOUT), progress).await?;
            self.state
                .audit(&AuditEvent::FenceInstalled { table: plan.source_name.to_string(), on: "source".into() })?;
        }
        progress.note("the source is fenced: replaying what capture still holds");
        let writes: Vec<WriteSpec> = self.plans.iter().zip(targets).map(|(p, t)| p.write_spec(t)).collect();
        self.drain(&writes, progress, true).await?;
        self.check_behind_fence(targets, progress).await?;
        self.advance_identities(progress).await?;
        for (plan, (schema, r)) in self.plans.iter().zip(targets.iter().zip(reverse)) {
            if r.is_some() {
                retry_ddl(
                    || self.target.install_capture(schema, &plan.key_target, CaptureMethod::Triggers, LOCK_TIMEOUT),
                    progress,
                )
                .await?;
                self.state.audit(&AuditEvent::CaptureInstalled { table: plan.target_display() })?;
            }
        }
        Ok(())
    }

    /// The switch's gates: a passing rehearsal when the spec requires one, a
    /// recent passing verification, capture caught up, and (for a lossless
    /// rollback) a mapping that inverts, checked in `reverse_plans`.
    async fn check_switch_gates(&self, progress: &dyn Progress) -> Result<()> {
        let oldest_allowed = now() - chrono::Duration::from_std(self.spec.switch.max_verify_age).unwrap_or_default();
        for plan in &self.plans {
            let table = plan.target_display();
            let last = self.state.last_verification(&table)?;
            let fresh = last.as_ref().is_some_and(|v| {
                v.passed
                    && chrono::DateTime::parse_from_rfc3339(&v.at)
                        .is_ok_and(|at| at.with_timezone(&chrono::Utc) >= oldest_allowed)
            });
            if !fresh {
                return Err(RunError::new(
                    RunErrorKind::State,
                    format!(
                        "{table} has no passing verification younger than {} (`[switch] max_verify_age`); last: {}",
                        ferry_core::audit::format_duration(self.spec.switch.max_verify_age),
                        last.map_or("none".to_string(), |v| format!(
                            "{} at {}",
                            if v.passed { "pass" } else { "fail" },
                            v.at
                        ))
                    ),
                )
                .with_hint("run `ferry verify`, then `ferry switch`"));
            }
        }
        // Catch up first: the switch holds the lock, so no follower replays meanwhile.
        let targets = self.target_schemas().await?;
        let writes: Vec<WriteSpec> = self.plans.iter().zip(&targets).map(|(p, t)| p.write_spec(t)).collect();
        self.drain(&writes, progress, false).await?;
        let max_lag = self.spec.switch.max_lag.as_secs_f64();
        for plan in &self.plans {
            let lag = self.source.capture_lag(&plan.source_name).await?;
            if lag.oldest_seconds.is_some_and(|s| s >= max_lag) {
                return Err(RunError::new(
                    RunErrorKind::State,
                    format!(
                        "capture of {} lags {:.1}s ({} changes) behind, more than `[switch] max_lag` ({:.1}s)",
                        plan.source_name,
                        lag.oldest_seconds.unwrap_or_default(),
                        lag.pending,
                        max_lag
                    ),
                )
                .with_hint("run `ferry sync` until it has caught up, in a quieter moment, then `ferry switch`"));
            }
        }
        Ok(())
    }

    /// The reverse plan of every table, or why the spec's lossless rollback
    /// cannot hold.
    pub(crate) fn reverse_plans(&self, targets: &[TableSchema]) -> Result<Vec<Option<Reverse>>> {
        let lossless = self.spec.migration.rollback == Some(RollbackRequirement::Lossless);
        let mut out = Vec::new();
        for (plan, target) in self.plans.iter().zip(targets) {
            match plan.inverted(target) {
                Ok(reverse) => {
                    let write = reverse.write_spec(&plan.source);
                    out.push(Some(Reverse { plan: reverse, write }));
                }
                Err(why) if lossless => {
                    return Err(RunError::new(
                        RunErrorKind::State,
                        format!(
                            "the spec asks for a lossless rollback, but the mapping of {} cannot be inverted: {why}",
                            plan.target_name
                        ),
                    )
                    .with_hint(format!(
                        "copy every column plainly (renames and type changes invert), or accept the loss with \
                         `rollback = \"loss-accepted-after-switch\"` under [migration] in {}",
                        self.spec.path.display()
                    )))
                }
                Err(_) => out.push(None),
            }
        }
        Ok(out)
    }

    /// Replays the target's captured changes into the source until none is left (`to_empty`) or it has caught up.
    pub(crate) async fn drain_reverse(
        &self,
        reverse: &[Option<Reverse>],
        progress: &dyn Progress,
        to_empty: bool,
    ) -> Result<()> {
        let backfill = Backfill {
            source: self.target.clone(),
            target: self.source.clone(),
            state: &self.state,
            policy: &self.spec.policy,
            progress,
            throttle: None,
            cancel: &self.cancel,
            owner: &self.owner,
        };
        let replayer = self.reverse_replayer(&backfill);
        let order = crate::sync::replay_order(&self.plans);
        let mut holds = crate::sync::Holds::default();
        loop {
            let mut work = 0;
            let mut caught_up = true;
            for r in order.iter().filter_map(|&i| reverse[i].as_ref()) {
                let step = replayer.step_or_hold(&r.plan, &r.write, &mut holds).await?;
                work += step.changes;
                caught_up &= step.lag.pending == 0
                    || (!to_empty
                        && step.lag.pending < self.spec.policy.batch_size as u64
                        && step.lag.oldest_seconds.is_none_or(|s| s < self.spec.policy.max_lag.as_secs_f64()));
            }
            self.cancel.check()?;
            let held = holds.any();
            holds.end_round(work).await?;
            if caught_up || (work == 0 && !to_empty && !held) {
                return Ok(());
            }
        }
    }

    fn reverse_replayer<'s>(&'s self, backfill: &'s Backfill<'s>) -> Replayer<'s> {
        Replayer {
            source: self.target.clone(),
            target: self.source.clone(),
            state: &self.state,
            backfill,
            batch: self.spec.policy.batch_size,
            reverse: true,
            go_on: None,
            helpers: Vec::new(),
        }
    }

    /// `ferry sync` after the switch: the target's changes into the source.
    pub(crate) async fn sync_reverse(&self, progress: &dyn Progress, follow: bool) -> Result<()> {
        let targets = self.target_schemas().await?;
        let reverse = self.reverse_plans(&targets)?;
        self.drain_reverse(&reverse, progress, !follow).await?;
        if !follow {
            return Ok(());
        }
        progress.note("following the target's changes into the source; Ctrl-C or SIGTERM stops at the next batch");
        // One alert per episode: a trigger is raised again only after it cleared.
        let (mut lagging, mut differing) = (false, false);
        let mut last_check = Instant::now();
        while !self.cancel.requested() {
            self.drain_reverse(&reverse, progress, false).await?;
            let lag = self.lag_trigger()?;
            if self.raise_once(lag, &mut lagging, progress).await? {
                return Ok(());
            }
            if last_check.elapsed() >= self.spec.soak.check_every {
                last_check = Instant::now();
                let difference = self.compare_soak_writes(&reverse, progress).await?;
                if self.raise_once(difference, &mut differing, progress).await? {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// The soak's lag trigger: reverse lag above `[policy] max_lag`.
    fn lag_trigger(&self) -> Result<Option<String>> {
        let max = self.spec.policy.max_lag.as_secs_f64();
        let mut worst: Option<(String, f64)> = None;
        for plan in &self.plans {
            let lag = self.state.reverse_status(&plan.target_display())?.and_then(|r| r.oldest_pending_seconds);
            if let Some(lag) = lag.filter(|l| *l > max && worst.as_ref().is_none_or(|(_, w)| l > w)) {
                worst = Some((plan.target_display(), lag));
            }
        }
        Ok(worst.map(|(table, lag)| format!("reverse lag {lag:.1}s on {table} above max_lag {max:.1}s")))
    }

    /// A rollback trigger, recorded once per episode (`rollback-triggered`,
    /// `ferry status`); with `[soak] on_trigger = "rollback"` the migration
    /// rolls back at once. Returns whether it did.
    async fn raise_once(&self, trigger: Option<String>, raised: &mut bool, progress: &dyn Progress) -> Result<bool> {
        let Some(trigger) = trigger else {
            *raised = false;
            return Ok(false);
        };
        if std::mem::replace(raised, true) {
            return Ok(false);
        }
        let rollback = self.spec.soak.on_trigger == ferry_core::spec::OnTrigger::Rollback;
        self.state.audit(&AuditEvent::RollbackTriggered {
            trigger: trigger.clone(),
            phase: Phase::Soak.number(),
            action: if rollback { "rollback".into() } else { "alert".into() },
            value: None,
            threshold: None,
        })?;
        let mut recorded: Vec<String> =
            self.state.meta("soak_triggers")?.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default();
        recorded.push(format!("{} {trigger}", timestamp(now())));
        self.state.set_meta("soak_triggers", &serde_json::to_string(&recorded).unwrap_or_default())?;
        progress.note(&format!("rollback trigger: {trigger}"));
        if rollback {
            progress.note("[soak] on_trigger = \"rollback\": rolling back now");
            self.rollback(progress).await?;
        }
        Ok(rollback)
    }

    /// Rollback after (or during) the switch: fence the target, replay what
    /// its capture holds into the source, record that writes go to the
    /// source, run the hook, lift the source's fence. Every write the target
    /// acknowledged is then on the source. Idempotent.
    pub(crate) async fn switch_back(&self, progress: &dyn Progress) -> Result<()> {
        // Once writes are back on the source, a resumed rollback may already
        // have dropped target tables: only the move back reads them.
        if self.writes_to()? == Side::Target {
            let targets = self.target_schemas().await?;
            let fenced_at = Instant::now();
            for plan in &self.plans {
                let message = format!(
                    "Ferry fenced writes to {}: they move back to {} (migration rollback)",
                    plan.target_name, plan.source_name
                );
                retry_ddl(|| self.target.install_fence(&plan.target_name, &message, LOCK_TIMEOUT), progress).await?;
                self.state
                    .audit(&AuditEvent::FenceInstalled { table: plan.target_name.to_string(), on: "target".into() })?;
            }
            let reverse = self.reverse_plans(&targets).unwrap_or_default();
            self.drain_reverse(&reverse, progress, true).await?;
            self.state.set_meta("writes", Side::Source.name())?;
            self.publish_flags_after_move().await;
            self.run_hook(Side::Source, Phase::Switch).await?;
            self.lift_source_fences(progress).await?;
            let window = fenced_at.elapsed();
            self.state
                .audit(&AuditEvent::WritesSwitched { to: "source".into(), window_ms: window.as_millis() as u64 })?;
        } else {
            self.lift_source_fences(progress).await?;
        }
        for plan in &self.plans {
            if self.target.table_exists(&plan.target_name).await? {
                retry_ddl(|| self.target.remove_capture(&plan.target_name, LOCK_TIMEOUT), progress).await?;
                retry_ddl(|| self.target.remove_fence(&plan.target_name, LOCK_TIMEOUT), progress).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn lift_source_fences(&self, progress: &dyn Progress) -> Result<()> {
        for plan in &self.plans {
            retry_ddl(|| self.source.remove_fence(&plan.source_name, LOCK_TIMEOUT), progress).await?;
            self.state.audit(&AuditEvent::FenceRemoved { table: plan.source_name.to_string(), on: "source".into() })?;
        }
        Ok(())
    }

    /// Runs `[switch] hook` with the migration, the phase and where writes
    /// go in its environment; its output, or an error that shows it.
    async fn run_hook(&self, writes_to: Side, phase: Phase) -> Result<Option<String>> {
        let Some(hook) = self.spec.switch.hook.clone() else { return Ok(None) };
        let migration = self.spec.migration.name.clone().unwrap_or_else(|| self.spec.path.display().to_string());
        let dir = self.spec.base_dir();
        let command = hook.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(&command)
                .current_dir(dir)
                .env("FERRY_MIGRATION", migration)
                .env("FERRY_PHASE", phase.name())
                .env("FERRY_WRITES_TO", writes_to.name())
                .output()
        })
        .await
        .map_err(|e| RunError::state(format!("the hook did not finish: {e}")))?;
        let (result, text) = match &output {
            Ok(out) => {
                let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                (if out.status.success() { "success".to_string() } else { format!("failure: {}", out.status) }, text)
            }
            Err(e) => (format!("failure: {e}"), String::new()),
        };
        self.state.audit(&AuditEvent::HookRun {
            hook: hook.clone(),
            writes_to: writes_to.name().into(),
            result: result.clone(),
        })?;
        if result != "success" {
            return Err(RunError::new(
                RunErrorKind::State,
                format!("the `[switch] hook` `{hook}` failed ({result}): {}", text.trim()),
            )
            .with_hint(format!(
                "writes are recorded as going to the {}: point the application there yourself, or fix the hook and run `ferry rollback` to go back",
                writes_to.name()
            )));
        }
        Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()))
    }
}
