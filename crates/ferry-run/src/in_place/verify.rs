//! Verify, in place: every row's new columns against what its old ones
//! compute, and the integrity checks (the constraints the change adds among them).

use super::Change;
use crate::error::{Result, RunError, RunErrorKind};
use crate::integrity::{custom_checks, run_check, table_checks, CheckResult};
use crate::machine::advance;
use crate::mapping::TablePlan;
use crate::progress::Progress;
use crate::runner::Migration;
use crate::verify::{Difference, DifferenceCounts, DifferenceKind, Method, TableReport};
use ferry_core::lifecycle::Event;
use ferry_core::spec::CheckOn;
use ferry_core::Phase;
use std::time::Instant;

/// What a verification found wrong, in words.
pub(super) fn failures(reports: &[TableReport], checks: &[CheckResult]) -> Vec<String> {
    let mut out: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{} rows of {} disagree with their old columns", r.differences_found, r.target))
        .collect();
    out.extend(checks.iter().filter(|c| !c.passed).map(|c| format!("check failed: {}", c.name)));
    out
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

    async fn verify_change(&self, change: &Change, progress: &dyn Progress) -> Result<TableReport> {
        let started = Instant::now();
        let sql = change.sql();
        progress.note(&format!("verifying {}: every row's new columns against its old ones", change.table));
        let rows = self.source.count(&change.name, None).await?;
        let number = |v: Option<String>| v.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let (mismatched, sample, written) = if sql.added().is_empty() {
            (0, Vec::new(), 0)
        } else {
            let mismatched = number(self.source.scalar(&sql.mismatches()).await?);
            let sample = if mismatched > 0 {
                self.source.query_text(&sql.mismatch_sample(crate::verify::MAX_LISTED)).await?
            } else {
                Vec::new()
            };
            let written = match sql.written_rows() {
                Some(q) => number(self.source.scalar(&q).await?),
                None => 0,
            };
            (mismatched, sample, written)
        };
        if written > 0 {
            progress.note(&format!(
                "{}: {written} row(s) whose new columns version 2 wrote itself stand as written",
                change.table
            ));
        }
        let added: Vec<String> = sql.added().iter().map(|c| c.name.clone()).collect();
        let differences: Vec<Difference> = sample
            .iter()
            .map(|row| {
                let values: Vec<String> = row.iter().map(|v| v.clone().unwrap_or_else(|| "NULL".into())).collect();
                let key = if change.key.len() == 1 {
                    format!("{}={}", change.key[0], values[0])
                } else {
                    format!("({})=({})", change.key.join(", "), values.join(", "))
                };
                Difference {
                    kind: DifferenceKind::Mismatched,
                    key,
                    columns: added
                        .iter()
                        .map(|c| crate::verify::ColumnDifference {
                            column: c.clone(),
                            source: "computed from the old columns".into(),
                            target: "stored".into(),
                        })
                        .collect(),
                }
            })
            .collect();
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
                let sql = change.sql().violations(c);
                results.push(run_check(&*self.source, name, kind, CheckOn::Target, sql, 0).await?);
            }
        }
        results.extend(custom_checks(&self.spec.checks, &*self.source, &*self.source).await?);
        self.record_checks(&results)?;
        Ok(results)
    }
}
