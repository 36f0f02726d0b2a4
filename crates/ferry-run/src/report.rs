//! `integrity_report.md` and `integrity_report.json`: what verification
//! compared, how, what it found, which checks ran, and what a repair changed.

use crate::compare::{Difference, DifferenceCounts};
use crate::integrity::CheckResult;
use crate::runner::{Repair, Verification};
use crate::verify::TableReport;
use ferry_core::audit::format_duration;
use serde::Serialize;
use std::fmt::Write;
use std::time::Duration;

/// Who and what the report is about.
pub struct ReportContext {
    pub migration: String,
    pub source: String,
    pub target: String,
    /// The read ramp's shadow reads, when a ramp compared any.
    pub shadow: Option<ferry_core::status::ShadowStatus>,
}

#[derive(Serialize)]
struct Totals {
    rows_expected: u64,
    rows_actual: u64,
    chunks: u64,
    chunks_differing: u64,
    rows_compared: u64,
    differences: DifferenceCounts,
    sample_size: u64,
    sample_mismatches: u64,
    checks_run: usize,
    checks_failed: usize,
}

#[derive(Serialize)]
struct Report<'a> {
    migration: &'a str,
    source: &'a str,
    target: &'a str,
    started_at: &'a str,
    duration_ms: u64,
    passed: bool,
    /// The audit log's line for this verification.
    audit_line: String,
    totals: Totals,
    tables: &'a [TableReport],
    checks: &'a [CheckResult],
    repairs: &'a [Repair],
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow_reads: Option<&'a ferry_core::status::ShadowStatus>,
}

fn totals(v: &Verification) -> Totals {
    let mut differences = DifferenceCounts::default();
    for t in &v.tables {
        differences.missing += t.counts.missing;
        differences.extra += t.counts.extra;
        differences.mismatched += t.counts.mismatched;
        differences.unconvertible += t.counts.unconvertible;
    }
    Totals {
        rows_expected: v.tables.iter().map(|t| t.rows_source).sum(),
        rows_actual: v.tables.iter().map(|t| t.rows_target).sum(),
        chunks: v.tables.iter().map(|t| t.chunks).sum(),
        chunks_differing: v.tables.iter().map(|t| t.chunks_differing).sum(),
        rows_compared: v.tables.iter().map(|t| t.rows_compared).sum(),
        differences,
        sample_size: v.tables.iter().map(|t| t.sample_size).sum(),
        sample_mismatches: v.tables.iter().map(|t| t.sample_mismatches).sum(),
        checks_run: v.checks.len(),
        checks_failed: v.checks.iter().filter(|c| !c.passed).count(),
    }
}

/// The seed-style summary line, as in the audit log.
pub fn audit_line(v: &Verification) -> String {
    let t = totals(v);
    let settled: u64 = v.tables.iter().map(|t| t.settled_rows).sum();
    format!(
        "integrity-check: phase=4, rows_expected={}, rows_actual={}, checksum={}{}",
        t.rows_expected,
        t.rows_actual,
        if v.tables.iter().all(|t| t.checksum_match) { "pass" } else { "fail" },
        if settled > 0 { format!(", settled={settled}") } else { String::new() }
    )
}

pub fn json(ctx: &ReportContext, v: &Verification) -> String {
    let report = Report {
        migration: &ctx.migration,
        source: &ctx.source,
        target: &ctx.target,
        started_at: &v.started_at,
        duration_ms: v.duration_ms,
        passed: v.passed(),
        audit_line: audit_line(v),
        totals: totals(v),
        tables: &v.tables,
        checks: &v.checks,
        repairs: &v.repairs,
        shadow_reads: ctx.shadow.as_ref(),
    };
    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
}

/// The name an enum has in the JSON report, for the Markdown one.
fn label(value: impl Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// `|` and newlines would break a table cell.
fn cell(s: &str) -> String {
    let s: String = s.chars().take(200).collect();
    s.replace('|', "\\|").replace('\n', " ")
}

fn difference_rows(out: &mut String, table: &str, differences: &[Difference]) {
    for d in differences {
        let kind = label(d.kind);
        if d.columns.is_empty() {
            let _ = writeln!(out, "| {} | {kind} | `{}` | | | |", cell(table), cell(&d.key));
        }
        for c in &d.columns {
            let _ = writeln!(
                out,
                "| {} | {kind} | `{}` | {} | `{}` | `{}` |",
                cell(table),
                cell(&d.key),
                cell(&c.column),
                cell(&c.source),
                cell(&c.target)
            );
        }
    }
}

pub fn markdown(ctx: &ReportContext, v: &Verification) -> String {
    let mut out = String::new();
    summary_section(&mut out, ctx, v);
    tables_section(&mut out, v);
    differences_sections(&mut out, v);
    checks_section(&mut out, v);
    repairs_section(&mut out, v);
    if let Some(shadow) = &ctx.shadow {
        shadow_section(&mut out, shadow);
    }
    out
}

/// The verdict, the two databases, and what was compared with what result.
fn summary_section(out: &mut String, ctx: &ReportContext, v: &Verification) {
    let t = totals(v);
    let verdict = if v.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(out, "# Integrity report: {}\n", ctx.migration);
    let _ = writeln!(out, "**{verdict}**: {}\n", audit_line(v));
    let _ = writeln!(out, "- Source: `{}`", ctx.source);
    let _ = writeln!(out, "- Target: `{}`", ctx.target);
    let _ = writeln!(out, "- Started: {}", v.started_at);
    let _ = writeln!(out, "- Duration: {}", format_duration(Duration::from_millis(v.duration_ms)));
    let _ = writeln!(
        out,
        "- Compared: {} chunks ({} differing), {} rows value by value; {} sampled rows column by column ({} differ)",
        t.chunks, t.chunks_differing, t.rows_compared, t.sample_size, t.sample_mismatches
    );
    let d = &t.differences;
    let _ = writeln!(
        out,
        "- Differences: {} missing in target, {} extra in target, {} different, {} not convertible",
        d.missing, d.extra, d.mismatched, d.unconvertible
    );
    let _ = writeln!(out, "- Checks: {} run, {} failed\n", t.checks_run, t.checks_failed);
}

fn tables_section(out: &mut String, v: &Verification) {
    out.push_str("## Tables\n\n");
    out.push_str("| table | method | rows source | rows target | chunks (differing) | missing | extra | different | not convertible | sample (differ) | result |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in &v.tables {
        let method = label(r.method);
        let _ = writeln!(
            out,
            "| {} -> {} | {method} | {} | {} | {} ({}) | {} | {} | {} | {} | {} ({}) | {}{} |",
            cell(&r.source),
            cell(&r.target),
            r.rows_source,
            r.rows_target,
            r.chunks,
            r.chunks_differing,
            r.counts.missing,
            r.counts.extra,
            r.counts.mismatched,
            r.counts.unconvertible,
            r.sample_size,
            r.sample_mismatches,
            if r.passed() { "pass" } else { "fail" },
            if r.resumed { " (resumed)" } else { "" }
        );
    }
}

/// The first differences of each table, and the sampled rows that differ.
fn differences_sections(out: &mut String, v: &Verification) {
    let listed: Vec<&TableReport> = v.tables.iter().filter(|r| !r.differences.is_empty()).collect();
    if !listed.is_empty() {
        out.push_str("\n## Differences\n\nThe first 20 of each table; the JSON report has the same list.\n\n");
        out.push_str("| table | kind | key | column | source | target |\n|---|---|---|---|---|---|\n");
        for r in listed {
            difference_rows(out, &r.target, &r.differences);
        }
    }
    let sampled: Vec<&TableReport> = v.tables.iter().filter(|r| !r.sample_differences.is_empty()).collect();
    if !sampled.is_empty() {
        out.push_str("\n## Sampled rows that differ\n\n");
        out.push_str("| table | kind | key | column | source | target |\n|---|---|---|---|---|---|\n");
        for r in sampled {
            difference_rows(out, &r.target, &r.sample_differences);
        }
    }
}

fn checks_section(out: &mut String, v: &Verification) {
    if !v.checks.is_empty() {
        out.push_str(
            "\n## Checks\n\n| check | kind | on | expected | actual | result |\n|---|---|---|---:|---:|---|\n",
        );
        for c in &v.checks {
            let kind = label(c.kind);
            let on = label(c.on);
            let actual = match (&c.actual, &c.error) {
                (Some(a), Some(detail)) => format!("{a}: {}", cell(detail)),
                (Some(a), None) => a.to_string(),
                (None, Some(e)) => format!("error: {}", cell(e)),
                (None, None) => "-".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {kind} | {on} | {} | {actual} | {} |",
                cell(&c.name),
                c.expected,
                if c.passed { "pass" } else { "**fail**" }
            );
        }
    }
}

fn repairs_section(out: &mut String, v: &Verification) {
    if !v.repairs.is_empty() {
        out.push_str("\n## Repairs\n\n| table | rows different | re-copied | deleted | still different |\n|---|---:|---:|---:|---:|\n");
        for r in &v.repairs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&r.table),
                r.differences,
                r.upserted,
                r.deleted,
                r.still_different
            );
        }
    }
}

/// The read ramp's shadow reads: counts, and the newest mismatches (values only if recorded).
fn shadow_section(out: &mut String, s: &ferry_core::status::ShadowStatus) {
    let _ = writeln!(
        out,
        "\n## Shadow reads (read ramp)\n\n{} reads compared on both sides since the ramp started ({} reported by \
         the application): {} mismatched, {} different at first and equal once replay passed them.\n",
        s.compared, s.compared_by_application, s.mismatched, s.rechecked
    );
    if s.recent_mismatches.is_empty() {
        return;
    }
    out.push_str("| at | by | table or query | key | columns | values |\n|---|---|---|---|---|---|\n");
    for m in &s.recent_mismatches {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            m.at,
            m.origin,
            cell(&m.subject),
            cell(&m.key),
            cell(&m.columns.join(", ")),
            m.detail.as_deref().map_or("masked (`ferry cutover --show-values`)".to_string(), cell)
        );
    }
}
