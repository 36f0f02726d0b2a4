//! `plan.md`: the plan as a document a team can review, sign and follow.

use super::document::{bytes, thousands, ChecklistItem, Plan, Step};
use super::facts::{Shape, TableFacts};
use super::strategy::Strategy;
use ferry_core::audit::format_duration;
use std::fmt::Write;
use std::time::Duration;

fn dur(seconds: f64) -> String {
    format_duration(Duration::from_secs_f64(seconds.max(0.0)))
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Inline code in a table cell, also when the SQL holds backticks (MySQL).
fn code(s: &str) -> String {
    if s.contains('`') {
        format!("`` {} ``", cell(s))
    } else {
        format!("`{}`", cell(s))
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn checklist_line(out: &mut String, item: &ChecklistItem) {
    let mark = if item.done { "x" } else { " " };
    let _ = write!(out, "- [{mark}] {}", item.text);
    if let Some(e) = &item.evidence {
        let _ = write!(out, " — {e}");
    }
    out.push('\n');
    if !item.commands.is_empty() {
        let _ = writeln!(out, "  ```sh");
        for c in &item.commands {
            let _ = writeln!(out, "  {c}");
        }
        let _ = writeln!(out, "  ```");
    }
}

fn step_block(out: &mut String, n: usize, s: &Step) {
    let _ = writeln!(out, "{n}. {}", s.text);
    if let Some(c) = &s.command {
        let _ = writeln!(out, "   ```sh\n   {c}\n   ```");
    }
    for block in &s.sql {
        let _ = writeln!(out, "   ```sql\n   -- {}", block.engine.title());
        for line in block.sql.lines() {
            let _ = writeln!(out, "   {line}");
        }
        let _ = writeln!(out, "   ```");
    }
}

/// The run's estimate part by part, with what each part rests on.
fn estimate(out: &mut String, e: &super::Estimate) {
    let _ = writeln!(out, "## Estimate\n");
    let _ = writeln!(
        out,
        "`ferry run` (expand to verification) should take about **{}**, between {} and {}. \
         The run prints its time beside this and records both in the audit log.\n",
        dur(e.seconds),
        dur(e.low_seconds),
        dur(e.high_seconds)
    );
    let _ = writeln!(out, "| part | estimate | range | what it rests on |\n|---|---|---|---|");
    for p in &e.parts {
        let _ = writeln!(
            out,
            "| {} | {} | {} to {} | {} |",
            p.part.as_str(),
            dur(p.seconds),
            dur(p.low_seconds),
            dur(p.high_seconds),
            cell(&p.basis)
        );
    }
    let _ = writeln!(out);
}

fn current_state(out: &mut String, t: &TableFacts) {
    let _ = writeln!(out, "### {}\n", t.source);
    let _ = writeln!(out, "| fact | value |\n|---|---|");
    let rows =
        format!("{} ({})", thousands(t.rows), if t.rows_exact { "exact count" } else { "estimate from statistics" });
    let _ = writeln!(out, "| rows | {rows} |");
    if let Some(f) = &t.filter {
        let _ = writeln!(out, "| filter | `{}` |", cell(f));
    }
    let _ = writeln!(out, "| size on disk | {} |", t.size_bytes.map(bytes).unwrap_or_else(|| "unknown".into()));
    let _ = writeln!(
        out,
        "| primary key | {} |",
        if t.primary_key.is_empty() { "**none**".into() } else { t.primary_key.join(", ") }
    );
    let uniques: Vec<String> = t.unique_keys.iter().map(|u| format!("({})", u.join(", "))).collect();
    let _ = writeln!(out, "| unique keys | {} |", list(&uniques));
    let idx: Vec<String> = t.indexes.iter().map(|u| format!("({})", u.join(", "))).collect();
    let _ = writeln!(out, "| indexes | {} |", list(&idx));
    let fks: Vec<String> = t
        .foreign_keys_out
        .iter()
        .map(|f| format!("({}) → {} ({})", f.columns.join(", "), f.ref_table, f.ref_columns.join(", ")))
        .collect();
    let _ = writeln!(out, "| foreign keys out | {} |", cell(&list(&fks)));
    let fks_in: Vec<String> = t
        .dependents
        .foreign_keys_in
        .iter()
        .map(|(c, f)| format!("{c} ({}) → ({})", f.columns.join(", "), f.ref_columns.join(", ")))
        .collect();
    let _ = writeln!(out, "| referenced by | {} |", cell(&list(&fks_in)));
    let _ = writeln!(out, "| triggers | {} |", list(&t.dependents.triggers));
    let _ = writeln!(out, "| dependent views | {} |", list(&t.dependents.views));
    match &t.latency {
        Some(l) => {
            let _ = writeln!(
                out,
                "| keyed read latency (baseline) | p50 {:.2} ms, p99 {:.2} ms over {} reads |",
                l.p50_ms, l.p99_ms, l.samples
            );
        }
        None => {
            let _ = writeln!(out, "| keyed read latency (baseline) | not measured (no key) |");
        }
    }
    match &t.throughput {
        Some(p) => {
            let _ = writeln!(
                out,
                "| measured copy speed | {} rows in {:.2} s: read {} rows/s, write {} rows/s{} |",
                thousands(p.sample_rows),
                p.seconds,
                thousands(p.read_rows_per_second as u64),
                thousands(p.write_rows_per_second as u64),
                p.target_read_rows_per_second
                    .map(|r| format!(", read back from the target {} rows/s", thousands(r as u64)))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(out, "| measured copy speed | not measured |");
        }
    }
    out.push('\n');
}

fn target_state(out: &mut String, t: &TableFacts, shape: Shape) {
    let name = if shape == Shape::InPlace { format!("{} (in place)", t.target) } else { t.target.clone() };
    let exists = match (shape, t.target_exists) {
        (Shape::InPlace, _) => "the same table, changed in place",
        (_, true) => "exists: reused if compatible",
        (_, false) => "created by expand",
    };
    let _ = writeln!(out, "### {name}\n\n{exists}; key ({}).\n", list(&t.target_key()));
    let _ = writeln!(out, "| column | from | source type | target type | null |\n|---|---|---|---|---|");
    for c in &t.columns {
        let from = match (&c.expression, &c.source_column) {
            (Some(e), _) => format!("`{}`", cell(e)),
            (None, Some(s)) if s != &c.name => format!("{s} (renamed)"),
            (None, Some(s)) => s.clone(),
            _ => String::new(),
        };
        let source_type = c.source_native.clone().unwrap_or_else(|| "computed".into());
        let target_type = if c.planned == c.desired {
            c.planned.to_string()
        } else {
            format!("{} (asked: {})", c.planned, c.desired)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            c.name,
            from,
            cell(&source_type),
            target_type,
            if c.nullable { "yes" } else { "NOT NULL" }
        );
    }
    for d in &t.dropped_columns {
        let _ = writeln!(out, "| ~~{d}~~ | dropped | | | |");
    }
    out.push('\n');
    schema_items(out, t);
}

/// Defaults, identity, collations, generated columns, checks, indexes,
/// foreign keys and comments, source and target side by side.
fn schema_items(out: &mut String, t: &TableFacts) {
    if t.schema.is_empty() {
        return;
    }
    let _ = writeln!(out, "| schema item | name | source | target | note |\n|---|---|---|---|---|");
    for item in &t.schema {
        let target = match (&item.target, &item.problem) {
            (Some(sql), _) => code(sql),
            (None, Some(p)) if p.info => "not kept".to_string(),
            (None, _) => "**not created**".to_string(),
        };
        let note = match &item.problem {
            Some(p) => format!("{} — settle with {}", p.reason, p.resolve),
            None => item.note.clone().unwrap_or_default(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {target} | {} |",
            item.kind.label(),
            cell(&item.name),
            code(&item.source),
            cell(&note)
        );
    }
    out.push('\n');
}

pub fn render(plan: &Plan) -> String {
    let mp = &plan.migration_plan;
    let mut out = String::new();
    let _ = writeln!(out, "# Migration plan: {}\n", mp.title);
    let _ = writeln!(
        out,
        "Written by `ferry plan` on {} from measurements of the live databases. The checklists are ticked from Ferry's state store; run `ferry plan` again to refresh them.\n",
        plan.generated_at
    );
    overview(&mut out, plan);
    current_and_target_state(&mut out, plan);
    change_analysis(&mut out, plan);
    code_changes(&mut out, plan);
    strategy_adr(&mut out, plan);
    checklists_and_phases(&mut out, plan);
    rollback(&mut out, plan);
    verification_queries(&mut out, plan);
    risks_and_consumers(&mut out, plan);
    timeline_and_criteria(&mut out, plan);
    open_questions(&mut out, plan);
    out
}

/// The overview table and the estimate.
fn overview(out: &mut String, plan: &Plan) {
    let mp = &plan.migration_plan;
    let _ = writeln!(out, "## Overview\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| type | {} |", list(&mp.migration_types));
    let _ = writeln!(out, "| strategy | {} |", mp.strategy.title());
    let _ = writeln!(out, "| risk | **{:?}** |", mp.risk);
    let _ = writeln!(out, "| expected downtime | {} |", mp.expected_downtime);
    let _ = writeln!(out, "| rollback complexity | {} |", mp.rollback_complexity.title());
    let _ = writeln!(out, "| accepted downtime | {} |", mp.accepted_downtime.as_deref().unwrap_or("**open question**"));
    let _ = writeln!(
        out,
        "| rollback requirement | {} |",
        mp.rollback_requirement.as_deref().unwrap_or("**open question**")
    );
    let _ = writeln!(out, "| owner | {} |", mp.owner.as_deref().unwrap_or("**open question**"));
    if let Some(when) = &mp.when {
        let _ = writeln!(out, "| when | {when} |");
    }
    for (role, end) in [("source", &mp.source), ("target", &mp.target)] {
        let _ = writeln!(out, "| {role} | {} {} (`{}`), {} |", end.engine.title(), end.version, end.url, end.transport);
    }
    let e = &mp.estimates;
    let _ = writeln!(
        out,
        "| data | {} rows, {} |",
        thousands(e.total_rows),
        e.total_size_bytes.map(bytes).unwrap_or_else(|| "size unknown".into())
    );
    let _ = writeln!(
        out,
        "| estimated run | {} ({} to {}; see Estimate) |",
        dur(e.run.seconds),
        dur(e.run.low_seconds),
        dur(e.run.high_seconds)
    );
    let _ = writeln!(out, "| estimated backfill | {} |", dur(e.backfill_seconds));
    let _ = writeln!(out, "| estimated verification | {} |\n", dur(e.verify_seconds));
    estimate(out, &e.run);
}

/// What each side holds now, and what the target will hold.
fn current_and_target_state(out: &mut String, plan: &Plan) {
    let mp = &plan.migration_plan;
    let _ = writeln!(out, "## Current state\n");
    let _ =
        writeln!(out, "Source: {} {}, measured {}.\n", mp.source.engine.title(), mp.source.version, plan.generated_at);
    for t in &mp.tables {
        current_state(out, t);
    }

    let _ = writeln!(out, "## Target state\n");
    let free = mp.target.free_disk_bytes.map(bytes).unwrap_or_else(|| "not reported by the engine".into());
    let _ = writeln!(out, "Target: {} {}; free disk: {free}.\n", mp.target.engine.title(), mp.target.version);
    for t in &mp.tables {
        target_state(out, t, mp.shape);
    }
}

/// Every finding, then each rule's help once.
fn change_analysis(out: &mut String, plan: &Plan) {
    let _ = writeln!(out, "### Change analysis\n");
    if plan.lint.is_empty() {
        let _ = writeln!(out, "No finding.\n");
    } else {
        let _ = writeln!(out, "| code | severity | table | finding |\n|---|---|---|---|");
        for f in &plan.lint {
            let _ = writeln!(
                out,
                "| [{}]({}) | {} | {} | {} |",
                f.code,
                f.docs,
                f.severity.label(),
                f.table,
                cell(&f.message)
            );
        }
        let mut seen = Vec::new();
        out.push('\n');
        for f in &plan.lint {
            if !seen.contains(&f.code) {
                let _ = writeln!(out, "- **{} {}**: {}", f.code, f.rule, f.help);
                seen.push(f.code.clone());
            }
        }
        out.push('\n');
    }
}

/// In place: which application version reads and writes what.
fn code_changes(out: &mut String, plan: &Plan) {
    let mp = &plan.migration_plan;
    if !mp.code_changes.is_empty() {
        let _ = writeln!(out, "### Code changes (two application versions)\n");
        let _ = writeln!(
            out,
            "| table | column | version 1 (expand → contract) | version 2 (expand → contract) | after contract |\n|---|---|---|---|---|"
        );
        for c in &mp.code_changes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                c.table,
                cell(&c.column),
                cell(&c.version_1),
                cell(&c.version_2),
                cell(&c.after_contract)
            );
        }
        out.push('\n');
    }
}

/// The strategy, recorded as an ADR.
fn strategy_adr(out: &mut String, plan: &Plan) {
    let adr = &plan.strategy_adr;
    let _ = writeln!(out, "## Strategy and ADR\n");
    let _ = writeln!(out, "### {}\n\nStatus: {}.\n", adr.title, adr.status);
    let _ = writeln!(out, "**Context**\n");
    for c in &adr.context {
        let _ = writeln!(out, "- {c}");
    }
    let _ = writeln!(out, "\n**Decision**\n\n{}\n", adr.decision);
    let _ = writeln!(out, "**Alternatives considered**\n\n| alternative | why not |\n|---|---|");
    for a in &adr.alternatives {
        let _ = writeln!(out, "| {} | {} |", a.title, cell(&a.why_not));
    }
    let _ = writeln!(out, "\n**Consequences**\n");
    for c in &adr.consequences {
        let _ = writeln!(out, "- {c}");
    }
    out.push('\n');
}

/// The living checklists, then each phase of the runbook.
fn checklists_and_phases(out: &mut String, plan: &Plan) {
    let mp = &plan.migration_plan;
    let _ = writeln!(out, "## Pre-migration checklist\n");
    for item in mp.checklist.iter().filter(|i| i.section == "pre-migration") {
        checklist_line(out, item);
    }
    out.push('\n');

    let _ = writeln!(out, "## Phases\n");
    let _ = writeln!(out, "Progress, from the state store:\n");
    for item in mp.checklist.iter().filter(|i| i.section == "phases") {
        checklist_line(out, item);
    }
    out.push('\n');
    for phase in &plan.runbook.phases {
        let auto = if phase.automated { "" } else { " (manual in this version)" };
        let _ = writeln!(out, "### Phase {}: {}{auto}\n", phase.number, phase.name);
        let _ = writeln!(out, "**Goal**: {}\n", phase.goal);
        let _ = writeln!(out, "**Entry criteria**\n");
        for c in &phase.entry_criteria {
            let _ = writeln!(out, "- {c}");
        }
        let _ = writeln!(out, "\n**Steps**\n");
        for (i, s) in phase.steps.iter().enumerate() {
            step_block(out, i + 1, s);
        }
        if let Some(manual) = &phase.manual {
            let _ = writeln!(out, "\n*By hand in this version:* {manual}");
        }
        let _ = writeln!(out, "\n**Exit criteria**\n");
        for c in &phase.exit_criteria {
            let _ = writeln!(out, "- {c}");
        }
        let _ = writeln!(out, "\n**Rollback**: {}\n\n**Estimated time**: {}\n", phase.rollback, phase.estimated_time);
    }
}

/// How each phase is undone, and what triggers it.
fn rollback(out: &mut String, plan: &Plan) {
    let rp = &plan.rollback_plan;
    let _ = writeln!(out, "## Rollback plan\n");
    let _ = writeln!(out, "Point of no return: {}.\n", rp.point_of_no_return);
    let _ = writeln!(out, "| phase | how | data loss | time |\n|---|---|---|---|");
    for s in &rp.steps {
        let name = if s.point_of_no_return {
            format!("**{} {} — point of no return**", s.phase, s.name)
        } else {
            format!("{} {}", s.phase, s.name)
        };
        let _ = writeln!(out, "| {name} | {} | {} | {} |", cell(&s.how), cell(&s.data_loss), s.time);
    }
    let _ = writeln!(out, "\n## Rollback triggers\n");
    let _ = writeln!(
        out,
        "On a trigger, pause or roll back the current phase at once and record why; do not wait for a human.\n"
    );
    let _ = writeln!(out, "| signal | threshold | action |\n|---|---|---|");
    for t in &rp.triggers {
        let _ = writeln!(out, "| {} | {} | {} |", t.signal, t.threshold, t.action);
    }
}

/// The queries that check by hand, in each engine's dialect.
fn verification_queries(out: &mut String, plan: &Plan) {
    let mp = &plan.migration_plan;
    let _ = writeln!(out, "\n## Verification queries\n");
    let _ = writeln!(out, "`ferry verify` compares counts, a checksum of every row and a random sample across engines. These queries check by hand, in each engine's dialect:\n");
    for q in &mp.verification_queries {
        let _ = writeln!(out, "{} — {} ({}):\n\n```sql\n{}\n```\n", q.table, q.purpose, q.engine.title(), q.sql);
    }
}

/// The risk register and the consumers to check.
fn risks_and_consumers(out: &mut String, plan: &Plan) {
    let mp = &plan.migration_plan;
    let _ = writeln!(out, "## Risk register\n");
    let _ = writeln!(out, "| failure | symptom | mitigation |\n|---|---|---|");
    for r in &mp.risk_register {
        let _ = writeln!(out, "| {} | {} | {} |", cell(&r.failure), cell(&r.symptom), cell(&r.mitigation));
    }

    let _ = writeln!(out, "\n## Downstream consumers to check\n");
    if mp.downstream_consumers.is_empty() {
        let _ = writeln!(out, "No view, trigger or foreign key in the database depends on these tables. Check what the database cannot see: applications, jobs, ETL, caches, search indexes, reports.\n");
    } else {
        for c in &mp.downstream_consumers {
            let _ = writeln!(out, "- [ ] {} `{}` on {}", c.kind, c.name, c.table);
        }
        let _ = writeln!(out, "- [ ] outside the database: applications, jobs, ETL, caches, search indexes, reports\n");
    }
}

/// When, who is told, and what success is.
fn timeline_and_criteria(out: &mut String, plan: &Plan) {
    let mp = &plan.migration_plan;
    let _ = writeln!(out, "## Timeline and communication plan\n");
    let _ = writeln!(out, "| when | what |\n|---|---|");
    for t in &mp.timeline {
        let _ = writeln!(out, "| {} | {} |", t.when, cell(&t.what));
    }
    let _ = writeln!(out, "\nA status update goes out when each phase starts and ends, and on any rollback trigger.\n");

    let _ = writeln!(out, "## Success criteria\n");
    for c in &mp.success_criteria {
        let _ = writeln!(out, "- [ ] {c}");
    }
}

/// What the spec has yet to answer.
fn open_questions(out: &mut String, plan: &Plan) {
    let mp = &plan.migration_plan;
    let _ = writeln!(out, "\n## Open questions\n");
    if mp.open_questions.is_empty() {
        let _ = writeln!(out, "None: the spec answers every question the method asks.");
    } else {
        let _ = writeln!(out, "`ferry run` will not start until these are answered in the spec under `[migration]`:\n");
        for q in &mp.open_questions {
            let _ = writeln!(out, "- **{}**: {} Answer with `{}`.", q.key, q.question, q.example);
        }
    }
    if mp.strategy == Strategy::BigBang {
        let _ =
            writeln!(out, "\n*Big bang: writes stop for the window; phases 3 (sync) and 5 (cutover) do not apply.*");
    }
}
