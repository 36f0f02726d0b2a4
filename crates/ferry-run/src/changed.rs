//! The rows written since the last look, looked at again.
//!
//! Every replay step records the keys it wrote (`changed_keys` in the state
//! store, under a mark that only grows). A passing verification forgets the
//! forward keys it covered. The switch compares the rest twice: every key
//! changed since the last verification before it fences the source (rows
//! still moving are copied again), then, with the source fenced and capture
//! drained, the keys changed since — where a difference can no longer be a
//! write in flight. During the soak, `ferry sync --follow` compares the
//! rows reverse sync wrote into the source the same way.

use crate::backfill::Backfill;
use crate::compare::{Difference, DifferenceKind};
use crate::error::{Result, RunError, RunErrorKind};
use crate::machine::advance;
use crate::mapping::TablePlan;
use crate::progress::Progress;
use crate::runner::Migration;
use crate::state::Direction;
use crate::switch::Reverse;
use crate::sync::copy_keys;
use crate::verify::compare_keys;
use ferry_core::lifecycle::Event;
use ferry_core::{AuditEvent, Phase, TableSchema};
use ferry_core::{DataType, Value};
use ferry_engine::{Engine, WriteSpec};

/// Rows re-copied per statement.
const REPAIR_BATCH: usize = 1_000;

/// What a look at the changed keys of every table found.
#[derive(Debug, Clone, Default)]
pub struct ChangedCheck {
    pub compared: usize,
    /// Rows found different and copied again (`settle`).
    pub recopied: usize,
    /// The rows that still differ: table, key, and how, for a person.
    pub still_different: Vec<(String, Vec<Value>, String)>,
}

impl ChangedCheck {
    pub fn described(&self) -> String {
        let shown: Vec<&str> = self.still_different.iter().take(5).map(|(_, _, d)| d.as_str()).collect();
        let more = self.still_different.len().saturating_sub(shown.len());
        format!("{}{}", shown.join("; "), if more > 0 { format!("; and {more} more") } else { String::new() })
    }
}

/// One table's side of a check: which way rows flow, and its names.
pub struct Flow<'a> {
    pub plan: &'a TablePlan,
    pub write: &'a WriteSpec,
    /// The forward target table's name, under which its keys are recorded.
    pub table: String,
}

fn describe(table: &str, difference: &Difference) -> String {
    let columns: Vec<&str> = difference.columns.iter().map(|c| c.column.as_str()).collect();
    let what = match difference.kind {
        DifferenceKind::Missing => "missing where it was written",
        DifferenceKind::Extra => "still there where it was deleted",
        DifferenceKind::Mismatched => "different",
        DifferenceKind::Unconvertible => "cannot be converted",
    };
    format!(
        "{table}: key {}: {what}{}",
        difference.key,
        if columns.is_empty() { String::new() } else { format!(" ({})", columns.join(", ")) }
    )
}

impl Migration {
    /// Compares the rows of the keys recorded with a mark in `after..=through`
    /// between `from` and `to`. With `settle`, rows that differ are copied
    /// from `from` again and compared once more; what differs then is reported.
    pub(crate) async fn check_changed(
        &self,
        flows: &[Flow<'_>],
        direction: Direction,
        (after, through): (i64, i64),
        settle: bool,
        progress: &dyn Progress,
    ) -> Result<ChangedCheck> {
        let (from, to) = match direction {
            Direction::Forward => (self.source.clone(), self.target.clone()),
            Direction::Reverse => (self.target.clone(), self.source.clone()),
        };
        let backfill = Backfill { source: from.clone(), target: to.clone(), ..self.backfiller(progress, None) };
        let mut check = ChangedCheck::default();
        for flow in flows {
            let keys = self.state.changed_keys(&flow.table, direction, after, through)?;
            check.compared += keys.len();
            let types: Vec<DataType> = flow.write.columns.iter().map(|(_, t)| t.clone()).collect();
            let mut different = compare_keys(&*from, &*to, flow.plan, &types, keys).await?;
            if settle && !different.is_empty() {
                let keys: Vec<Vec<Value>> = different.iter().map(|(k, _)| k.clone()).collect();
                check.recopied += keys.len();
                recopy(&*from, &*to, &backfill, flow, &keys).await?;
                different = compare_keys(&*from, &*to, flow.plan, &types, keys).await?;
            }
            check
                .still_different
                .extend(different.into_iter().map(|(k, d)| (flow.table.clone(), k, describe(&flow.table, &d))));
        }
        Ok(check)
    }
}

async fn recopy(
    from: &dyn Engine,
    to: &dyn Engine,
    backfill: &Backfill<'_>,
    flow: &Flow<'_>,
    keys: &[Vec<Value>],
) -> Result<()> {
    for batch in keys.chunks(REPAIR_BATCH) {
        copy_keys(from, to, backfill, flow.plan, flow.write, batch).await?;
    }
    Ok(())
}

/// The switch's two looks and the soak's.
impl Migration {
    fn forward_writes(&self, targets: &[TableSchema]) -> Vec<WriteSpec> {
        self.plans.iter().zip(targets).map(|(p, t)| p.write_spec(t)).collect()
    }

    fn audit_check(&self, phase: Phase, direction: Direction, check: &ChangedCheck) -> Result<()> {
        self.state.audit(&AuditEvent::ChangedKeysChecked {
            phase,
            direction: direction.name().into(),
            compared: check.compared as u64,
            recopied: check.recopied as u64,
            different: check.still_different.len() as u64,
        })?;
        Ok(())
    }

    /// Before the fence: every row changed since the last passing
    /// verification, compared (and copied again where it differs) while the
    /// application still writes. What still differs may be a write in flight:
    /// it is looked at again behind the fence. Records where the look stopped.
    pub(crate) async fn check_before_fence(&self, targets: &[TableSchema], progress: &dyn Progress) -> Result<()> {
        let mark = self.state.changed_mark()?;
        let writes = self.forward_writes(targets);
        let flows: Vec<Flow> = self
            .plans
            .iter()
            .zip(&writes)
            .map(|(plan, write)| Flow { plan, write, table: plan.target_display() })
            .collect();
        let check = self.check_changed(&flows, Direction::Forward, (0, mark), true, progress).await?;
        for (table, key, _) in &check.still_different {
            self.state.record_changed_keys(table, Direction::Forward, std::slice::from_ref(key))?;
        }
        self.audit_check(Phase::Switch, Direction::Forward, &check)?;
        progress.note(&format!(
            "compared the {} row(s) changed since the last verification: {} copied again, {} to look at behind the fence",
            check.compared,
            check.recopied,
            check.still_different.len()
        ));
        self.state.set_meta(CHECK_MARK, &mark.to_string())
    }

    /// Behind the fence, capture drained: the rows changed since the first
    /// look (and those it left different) must now be equal, or be made so
    /// by one more copy. If any still differs, the switch is aborted: the
    /// fence is lifted, writes stay on the source, and the error says which rows.
    pub(crate) async fn check_behind_fence(&self, targets: &[TableSchema], progress: &dyn Progress) -> Result<()> {
        let after = self.state.meta(CHECK_MARK)?.and_then(|m| m.parse().ok()).unwrap_or(0);
        let through = self.state.changed_mark()?;
        let writes = self.forward_writes(targets);
        let flows: Vec<Flow> = self
            .plans
            .iter()
            .zip(&writes)
            .map(|(plan, write)| Flow { plan, write, table: plan.target_display() })
            .collect();
        let check = self.check_changed(&flows, Direction::Forward, (after, through), true, progress).await?;
        self.audit_check(Phase::Switch, Direction::Forward, &check)?;
        if check.still_different.is_empty() {
            for plan in &self.plans {
                self.state.clear_changed_keys(&plan.target_display(), Direction::Forward, i64::MAX)?;
            }
            return Ok(());
        }
        self.abort_switch(progress).await?;
        Err(RunError::new(
            RunErrorKind::State,
            format!(
                "the switch is aborted: with the source fenced, {} row(s) changed since the last verification still \
                 differ after being copied again: {}",
                check.still_different.len(),
                check.described()
            ),
        )
        .with_hint(
            "the fence is lifted and writes stay on the source; `ferry verify` shows every difference (a type \
             that does not convert back, say), then `ferry switch` again",
        ))
    }

    /// Undoes a switch that has not moved writes: lifts the source's fence.
    async fn abort_switch(&self, progress: &dyn Progress) -> Result<()> {
        self.lift_source_fences(progress).await?;
        self.state.clear_meta(&["switch_fenced_at", CHECK_MARK])?;
        advance(&self.state, Event::SwitchAborted)?;
        Ok(())
    }

    /// During the soak: the rows reverse sync wrote into the source since the
    /// last look, compared with the target's. A row that differs is looked at
    /// again after reverse sync catches up; `Some(what)` when one still does.
    pub(crate) async fn compare_soak_writes(
        &self,
        reverse: &[Option<Reverse>],
        progress: &dyn Progress,
    ) -> Result<Option<String>> {
        let through = self.state.changed_mark()?;
        let flows: Vec<Flow> = self
            .plans
            .iter()
            .zip(reverse)
            .filter_map(|(plan, r)| {
                r.as_ref().map(|r| Flow { plan: &r.plan, write: &r.write, table: plan.target_display() })
            })
            .collect();
        let mut check = self.check_changed(&flows, Direction::Reverse, (0, through), false, progress).await?;
        if !check.still_different.is_empty() {
            self.drain_reverse(reverse, progress, false).await?;
            check = self.check_changed(&flows, Direction::Reverse, (0, through), false, progress).await?;
        }
        if check.compared > 0 {
            self.audit_check(Phase::Soak, Direction::Reverse, &check)?;
        }
        if !check.still_different.is_empty() {
            return Ok(Some(format!(
                "{} row(s) differ between target and source: {}",
                check.still_different.len(),
                check.described()
            )));
        }
        for flow in &flows {
            self.state.clear_changed_keys(&flow.table, Direction::Reverse, through)?;
        }
        Ok(None)
    }
}

/// Where the switch's look before the fence stopped.
const CHECK_MARK: &str = "switch_check_mark";
