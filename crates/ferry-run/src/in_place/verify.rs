//! Verify, in place: every row's new columns against what its old ones
//! compute, and the integrity checks (the constraints the change adds among them).

use super::Change;
use crate::error::{Result, RunError, RunErrorKind};
use crate::integrity::{custom_checks, run_check, table_checks, CheckResult};
use crate::machine::advance;
use crate::mapping::TablePlan;
use crate::progress::Progress;
use crate::runner::Migration;
use crate::verify::{ColumnDifference, Difference, DifferenceCounts, DifferenceKind, Method, TableReport, MAX_LISTED};
use ferry_core::lifecycle::Event;
use ferry_core::spec::CheckOn;
use ferry_core::Phase;
use std::time::Instant;

/// What a verification found wrong, in words.
pub(super) fn failures(reports: &[TableReport], checks: &[CheckResult]) -> Vec<String> {
    let mut out: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            format!(
                "{} disagreement(s) in {}: a new column is not up(old), or an old one is not down(new)",
                r.differences_found, r.target
            )
        })
        .collect();
    out.extend(checks.iter().filter(|c| !c.passed).map(|c| format!("check failed: {}", c.name)));
    out
}

/// One disagreeing row of the report: its key, and the columns that disagree.
fn difference(change: &Change, row: &[Option<String>], columns: &[String], computed: &str) -> Difference {
    let values: Vec<String> = row.iter().map(|v| v.clone().unwrap_or_else(|| "NULL".into())).collect();
    let key = if change.key.len() == 1 {
        format!("{}={}", change.key[0], values[0])
    } else {
        format!("({})=({})", change.key.join(", "), values.join(", "))
    };
    Difference {
        kind: DifferenceKind::Mismatched,
        key,
        columns: columns
            .iter()
            .map(|c| ColumnDifference { column: c.clone(), source: computed.into(), target: "stored".into() })
            .collect(),
    }
}

impl Migration {
    /// Verify, in place: every row's new columns equal what its old ones
    /// compute (rows version 2 wrote itself stand as written), and the
    /// integrity checks. Moves the state like a move's verification.
    pub(crate) async fn verify_in_place(
        &self,
        changes: &[Change],
        progress: &dyn Progress,
    ) -> Result<(Vec<TableReport>, Vec<CheckResult>)> {
        self.begin(Phase::Verify, progress)?;
        let mut reports = Vec::new();
        for change in changes {
            let report = self.verify_change(change, progress).await;
            match report {
                Ok(r) => {
                    let plan =
                        self.plans.iter().find(|p| p.target_display() == change.target).expect("one plan per change");
                    self.record_report(plan, &r)?;
                    reports.push(r)
                }
                Err(e) => {
                    self.end(Phase::Verify, &Err(RunError::new(e.kind, e.message.clone())))?;
                    return Err(e);
                }
            }
        }
        let checks = self.in_place_checks().await?;
        let failing = failures(&reports, &checks);
        let result =
            if failing.is_empty() { Ok(()) } else { Err(RunError::new(RunErrorKind::State, failing.join("; "))) };
        self.end(Phase::Verify, &result)?;
        advance(&self.state, Event::VerifyFinished { passed: failing.is_empty() })?;
        Ok((reports, checks))
    }

    /// One table's verification: `new = up(old)` on every row (rows version
    /// 2 wrote itself stand as written), then `old = down(new)` where the
    /// spec gives a `down`.
    async fn verify_change(&self, change: &Change, progress: &dyn Progress) -> Result<TableReport> {
        let started = Instant::now();
        let sql = change.sql(self.source.plan_dialect());
        progress.note(&format!("verifying {}: every row's new columns against its old ones", change.table));
        let rows = self.source.count(&change.name, None).await?;
        let mut differences = Vec::new();
        let mut mismatched = 0;
        if !sql.added().is_empty() {
            let added: Vec<String> = sql.added().iter().map(|c| c.name.clone()).collect();
            let (count, sample) = self.disagreeing(&sql.mismatches(), &sql.mismatch_sample(MAX_LISTED)).await?;
            mismatched += count;
            differences
                .extend(sample.iter().map(|row| difference(change, row, &added, "computed from the old columns (up)")));
            if let Some(q) = sql.written_rows() {
                let written = self.number(&q).await?;
                if written > 0 {
                    progress.note(&format!(
                        "{}: {written} row(s) whose new columns version 2 wrote itself stand as written",
                        change.table
                    ));
                }
            }
        }
        if let (Some(count), Some(sample)) = (sql.down_mismatches(), sql.down_mismatch_sample(MAX_LISTED)) {
            let (count, rows) = self.disagreeing(&count, &sample).await?;
            mismatched += count;
            let old = sql.down_columns();
            differences.extend(
                rows.iter().map(|row| difference(change, row, &old, "computed back from the new columns (down)")),
            );
        }
        differences.truncate(MAX_LISTED);
        Ok(TableReport {
            source: change.table.clone(),
            target: change.target.clone(),
            method: Method::Recomputed,
            rows_source: rows,
            rows_target: rows,
            chunks: 1,
            chunks_differing: u64::from(mismatched > 0),
            rows_compared: rows,
            checksum_match: mismatched == 0,
            differences_found: mismatched,
            differences_truncated: mismatched as usize > differences.len(),
            counts: DifferenceCounts { mismatched, ..Default::default() },
            differences,
            sample_size: 0,
            sample_mismatches: 0,
            sample_differences: Vec::new(),
            settled_rows: 0,
            resumed: false,
            duration_ms: started.elapsed().as_millis() as u64,
            keys: Vec::new(),
        })
    }

    async fn number(&self, sql: &str) -> Result<u64> {
        Ok(self.source.scalar(sql).await?.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0))
    }

    /// How many rows `count` counts, and the keys `sample` lists when there are any.
    async fn disagreeing(&self, count: &str, sample: &str) -> Result<(u64, Vec<Vec<Option<String>>>)> {
        let n = self.number(count).await?;
        let rows = if n > 0 { self.source.query_text(sample).await? } else { Vec::new() };
        Ok((n, rows))
    }

    /// The integrity checks of the changed tables and the spec's own checks.
    async fn in_place_checks(&self) -> Result<Vec<CheckResult>> {
        let plans: Vec<&TablePlan> = self.plans.iter().collect();
        let mut results = Vec::new();
        for plan in &self.plans {
            for (name, kind, sql) in table_checks(plan, &*self.source, &plans) {
                results.push(run_check(&*self.source, name, kind, CheckOn::Target, sql, 0).await?);
            }
        }
        for change in self.changes().await? {
            for c in &change.constraints {
                let name = format!("{}: no row breaks {}", change.table, c.name());
                let kind = match c {
                    ferry_core::spec::ConstraintChange::Check { .. } => crate::integrity::CheckKind::Custom,
                    ferry_core::spec::ConstraintChange::ForeignKey { .. } => crate::integrity::CheckKind::Orphans,
                };
                let sql = change.sql(self.source.plan_dialect()).violations(c);
                results.push(run_check(&*self.source, name, kind, CheckOn::Target, sql, 0).await?);
            }
        }
        results.extend(custom_checks(&self.spec.checks, &*self.source, &*self.source).await?);
        self.record_checks(&results)?;
        Ok(results)
    }
}
