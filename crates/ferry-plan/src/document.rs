//! The plan: built from the assessment, the spec and what the state store
//! recorded; rendered as `plan.md` and `plan.json` (same content).

use super::estimate::Estimate;
use super::facts::{Assessment, EndpointFacts, Shape, TableFacts};
use super::in_place::{InPlace, Version};
use super::lint::{lint, Finding, Severity};
use super::sql;
use super::strategy::{self, Decision, Risk, RollbackComplexity, Strategy};
use ferry_core::audit::{format_duration, Phase};
use ferry_core::spec::{OpenQuestion, RollbackRequirement, Spec};
use ferry_core::status::{PhaseState, PhaseStatus, TableStatus};
use ferry_core::{EngineKind, PlanDialect};
use serde::Serialize;
use std::time::Duration;

pub const FORMAT_VERSION: u32 = 1;
/// The soak the method asks for in production.
pub const DEFAULT_SOAK: Duration = Duration::from_secs(24 * 3600);
/// Read-ramp steps of the cutover, in percent.
pub const RAMP: [u8; 4] = [1, 10, 50, 100];

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub format_version: u32,
    pub generated_at: String,
    pub migration_plan: MigrationPlan,
    pub rollback_plan: RollbackPlan,
    pub strategy_adr: StrategyAdr,
    pub runbook: Runbook,
    pub lint: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationPlan {
    pub title: String,
    pub migration_types: Vec<String>,
    pub shape: Shape,
    pub strategy: Strategy,
    pub risk: Risk,
    pub expected_downtime: String,
    pub rollback_complexity: RollbackComplexity,
    pub owner: Option<String>,
    pub when: Option<String>,
    pub accepted_downtime: Option<String>,
    pub rollback_requirement: Option<String>,
    pub source: EndpointFacts,
    pub target: EndpointFacts,
    pub estimates: Estimates,
    pub tables: Vec<TableFacts>,
    pub checklist: Vec<ChecklistItem>,
    pub verification_queries: Vec<Query>,
    /// In place: which application version reads and writes which column, in which phase.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub code_changes: Vec<super::in_place::CodeChange>,
    pub risk_register: Vec<RiskEntry>,
    pub downstream_consumers: Vec<Consumer>,
    pub timeline: Vec<TimelineEntry>,
    pub success_criteria: Vec<String>,
    pub open_questions: Vec<OpenQuestion>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Estimates {
    pub total_rows: u64,
    pub total_size_bytes: Option<u64>,
    pub backfill_seconds: f64,
    pub verify_seconds: f64,
    pub backfill_rows_per_second: Option<f64>,
    /// The whole run, part by part, with its range and what each part assumed.
    pub run: Estimate,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChecklistItem {
    pub id: String,
    pub section: String,
    pub text: String,
    pub done: bool,
    /// What proves it: measured figures or the state store's record, with a time.
    pub evidence: Option<String>,
    pub commands: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Query {
    pub purpose: String,
    pub table: String,
    pub engine: EngineKind,
    pub sql: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RiskEntry {
    pub failure: String,
    pub symptom: String,
    pub mitigation: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Consumer {
    pub kind: String,
    pub name: String,
    pub table: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub when: String,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackPlan {
    pub point_of_no_return: String,
    pub steps: Vec<RollbackStep>,
    pub triggers: Vec<RollbackTrigger>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackStep {
    pub phase: u8,
    pub name: String,
    pub how: String,
    pub data_loss: String,
    pub time: String,
    pub point_of_no_return: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackTrigger {
    pub signal: String,
    pub threshold: String,
    pub action: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StrategyAdr {
    pub title: String,
    pub status: String,
    pub context: Vec<String>,
    pub decision: String,
    pub rule: String,
    pub alternatives: Vec<Alternative>,
    pub consequences: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alternative {
    pub strategy: Strategy,
    pub title: String,
    pub why_not: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Runbook {
    pub phases: Vec<PhasePlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhasePlan {
    pub number: u8,
    pub name: String,
    pub goal: String,
    pub entry_criteria: Vec<String>,
    pub steps: Vec<Step>,
    pub exit_criteria: Vec<String>,
    pub rollback: String,
    pub estimated_time: String,
    /// Whether this version of Ferry runs the phase itself.
    pub automated: bool,
    /// For a phase this version does not automate: how to do it by hand meanwhile.
    pub manual: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub text: String,
    pub command: Option<String>,
    pub sql: Vec<SqlBlock>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SqlBlock {
    pub engine: EngineKind,
    pub sql: String,
}

/// What the state store recorded of a run, for the living checklist.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub phases: Vec<PhaseStatus>,
    pub tables: Vec<TableStatus>,
    /// The last `ferry rehearse`.
    pub rehearsal: Option<RehearsalStatus>,
}

/// The last rehearsal, as the checklist reports it.
#[derive(Debug, Clone, Default)]
pub struct RehearsalStatus {
    pub passed: bool,
    pub at: String,
    pub rows_per_table: u64,
    pub duration_ms: u64,
    pub failure: Option<String>,
    /// Whether it rehearsed this version of the spec.
    pub current: bool,
}

impl Recorded {
    fn completed(&self, number: u8) -> Option<&PhaseStatus> {
        self.phases.iter().find(|p| p.number == number && p.state == PhaseState::Completed)
    }
}

fn step(text: impl Into<String>) -> Step {
    Step { text: text.into(), command: None, sql: Vec::new() }
}

fn cmd(text: impl Into<String>, command: impl Into<String>) -> Step {
    Step { text: text.into(), command: Some(command.into()), sql: Vec::new() }
}

fn with_sql(mut s: Step, engine: EngineKind, statements: impl IntoIterator<Item = String>) -> Step {
    let sql: Vec<String> = statements
        .into_iter()
        .map(|st| if st.trim_end().ends_with(';') || st.trim_start().starts_with("--") { st } else { format!("{st};") })
        .collect();
    if !sql.is_empty() {
        s.sql.push(SqlBlock { engine, sql: sql.join("\n") });
    }
    s
}

fn dur(seconds: f64) -> String {
    format_duration(Duration::from_secs_f64(seconds.max(0.0)))
}

/// `2026-11-21T10:32:05.123Z` -> `2026-11-21T10:32Z`
fn minute(ts: &str) -> String {
    match ts.get(..16) {
        Some(head) if ts.len() > 16 => format!("{head}Z"),
        _ => ts.to_string(),
    }
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Whether the migration breaks readers or writers of the old shape.
fn backward_incompatible(a: &Assessment, findings: &[Finding]) -> bool {
    a.shape == Shape::InPlace
        && findings
            .iter()
            .any(|f| matches!(f.code.as_str(), "F001" | "F002" | "F004") && f.severity >= Severity::Warning)
}

/// Each side's dialect: the SQL and shell commands the plan shows are the
/// engines' own (`Engine::plan_dialect`).
#[derive(Clone, Copy)]
pub struct Dialects {
    pub source: &'static dyn PlanDialect,
    pub target: &'static dyn PlanDialect,
}

pub fn build(spec: &Spec, a: &Assessment, dialects: Dialects, recorded: &Recorded, generated_at: &str) -> Plan {
    let findings = lint(a);
    let run_estimate = super::estimate::estimate(a, &spec.policy);
    let backfill = run_estimate.phase_seconds(Phase::Backfill);
    let verify = run_estimate.phase_seconds(Phase::Verify);
    let estimated = Duration::from_secs_f64(run_estimate.seconds);
    let inputs = strategy::Inputs {
        shape: a.shape,
        largest_table_rows: a.largest_table_rows(),
        total_rows: a.total_rows(),
        downtime: spec.migration.downtime,
        estimated,
        backward_incompatible: backward_incompatible(a, &findings),
        big_bang_max_rows: spec.policy.big_bang_max_rows,
        very_large_rows: spec.policy.very_large_rows,
    };
    let decision = strategy::decide(&inputs);
    let risk = strategy::risk(decision.strategy, &findings, a.cross_engine());
    let rollback_complexity = strategy::rollback_complexity(decision.strategy, a.shape, spec.migration.rollback);
    let expected_downtime = strategy::expected_downtime(decision.strategy, estimated, spec.migration.downtime);
    let rate =
        a.tables.iter().filter_map(|t| t.throughput.as_ref()).map(|p| p.backfill_rows_per_second()).reduce(f64::min);

    let mut types = Vec::new();
    if a.cross_engine() {
        types.push(format!(
            "infrastructure (engine switch: {} to {})",
            a.source.engine.title(),
            a.target.engine.title()
        ));
    } else if a.shape == Shape::TableMove {
        types.push("data (table move)".to_string());
    }
    if a.tables.iter().any(|t| {
        !t.dropped_columns.is_empty()
            || t.columns.iter().any(|c| c.renamed_from().is_some() || c.source_type.as_ref() != Some(&c.desired))
    }) {
        types.push("schema (columns change)".to_string());
    }
    if a.tables.iter().any(|t| t.columns.iter().any(|c| c.expression.is_some()) || t.filter.is_some()) {
        types.push("data (transformation)".to_string());
    }

    let title = spec.migration.name.clone().unwrap_or_else(|| {
        let names: Vec<String> = a
            .tables
            .iter()
            .map(|t| if t.source == t.target { t.source.clone() } else { format!("{} -> {}", t.source, t.target) })
            .collect();
        match a.shape {
            Shape::InPlace => format!("Reshape {} in place", names.join(", ")),
            Shape::TableMove => {
                format!("Move {} ({} to {})", names.join(", "), a.source.engine.title(), a.target.engine.title())
            }
        }
    });

    let migration_plan = MigrationPlan {
        title: title.clone(),
        migration_types: types,
        shape: a.shape,
        strategy: decision.strategy,
        risk,
        expected_downtime,
        rollback_complexity,
        owner: spec.migration.owner.clone(),
        when: spec.migration.when.clone(),
        accepted_downtime: spec.migration.downtime.map(|d| {
            if d.is_zero() {
                "none (0s)".into()
            } else {
                format_duration(d)
            }
        }),
        rollback_requirement: spec.migration.rollback.map(|r| r.as_str().to_string()),
        source: a.source.clone(),
        target: a.target.clone(),
        estimates: Estimates {
            total_rows: a.total_rows(),
            total_size_bytes: a.total_size_bytes(),
            backfill_seconds: backfill,
            verify_seconds: verify,
            backfill_rows_per_second: rate,
            run: run_estimate.clone(),
        },
        tables: a.tables.clone(),
        checklist: checklist(spec, a, dialects, recorded, generated_at),
        verification_queries: verification_queries(a, dialects),
        code_changes: if a.shape == Shape::InPlace {
            a.tables.iter().flat_map(|t| InPlace::of(dialects.source, t).code_changes()).collect()
        } else {
            Vec::new()
        },
        risk_register: risk_register(a, &findings, &decision),
        downstream_consumers: consumers(a),
        timeline: timeline(spec, a, decision.strategy, run_estimate.seconds),
        success_criteria: success_criteria(spec, a),
        open_questions: spec.open_questions(),
    };
    Plan {
        format_version: FORMAT_VERSION,
        generated_at: generated_at.to_string(),
        rollback_plan: rollback_plan(spec, a, decision.strategy),
        strategy_adr: adr(spec, a, &decision, &findings, &run_estimate, risk),
        runbook: runbook(spec, a, dialects, decision.strategy, backfill, verify),
        lint: findings,
        migration_plan,
    }
}

/// "Rollback tested", ticked by a passing `ferry rehearse` of this spec.
/// An in-place change is not rehearsed by `ferry rehearse` (it moves tables).
fn rollback_tested(spec: &Spec, shape: Shape, rehearsal: Option<&RehearsalStatus>) -> ChecklistItem {
    let evidence = rehearsal.map(|r| {
        let when = minute(&r.at);
        match (r.passed, r.current) {
            (true, true) => format!(
                "`ferry rehearse` passed {when} on {} rows per table in {}",
                r.rows_per_table,
                ferry_core::audit::format_duration(std::time::Duration::from_millis(r.duration_ms))
            ),
            (true, false) => format!("the rehearsal that passed {when} was of another version of the spec"),
            (false, _) => {
                format!("the rehearsal {when} failed: {}", r.failure.as_deref().unwrap_or("see the audit log"))
            }
        }
    });
    ChecklistItem {
        id: "rollback-tested".into(),
        section: "pre-migration".into(),
        text: "Rollback tested: the lifecycle rehearsed through a switch and back on scratch copies".into(),
        done: rehearsal.is_some_and(|r| r.passed && r.current),
        evidence,
        commands: match shape {
            Shape::TableMove => vec![format!("ferry rehearse --spec {}", spec.path.display())],
            Shape::InPlace => vec![],
        },
    }
}

/// The living checklist: what must be done before the migration, then each
/// phase, ticked from what the state store recorded.
fn checklist(spec: &Spec, a: &Assessment, d: Dialects, recorded: &Recorded, generated_at: &str) -> Vec<ChecklistItem> {
    let mut out = pre_migration(spec, a, d, recorded, generated_at);
    out.extend(phase_progress(spec, a, recorded));
    out
}

fn item(
    id: &str,
    section: &str,
    text: String,
    done: bool,
    evidence: Option<String>,
    commands: Vec<String>,
) -> ChecklistItem {
    ChecklistItem { id: id.into(), section: section.into(), text, done, evidence, commands }
}

fn pre_migration(
    spec: &Spec,
    a: &Assessment,
    d: Dialects,
    recorded: &Recorded,
    generated_at: &str,
) -> Vec<ChecklistItem> {
    let mut out = Vec::new();
    out.push(item(
        "assessment",
        "pre-migration",
        "Assessment measured on the live databases and this plan reviewed".into(),
        true,
        Some(format!("measured {}", minute(generated_at))),
        vec!["ferry plan".into()],
    ));
    let sources: Vec<&str> = a.tables.iter().map(|t| t.source.as_str()).collect();
    let mut backup = d.source.backup_commands(&a.source.url, &sources);
    if a.shape == Shape::TableMove && a.tables.iter().any(|t| t.target_exists) {
        let targets: Vec<&str> = a.tables.iter().filter(|t| t.target_exists).map(|t| t.target.as_str()).collect();
        backup.extend(d.target.backup_commands(&a.target.url, &targets));
    }
    out.push(item("backup", "pre-migration", "Backup taken **and restore tested**".into(), false, None, backup));
    out.push(disk_item(a));
    out.push(item(
        "rehearsal",
        "pre-migration",
        "Staging rehearsal on production-sized data, including a rollback".into(),
        false,
        None,
        match a.shape {
            Shape::TableMove => {
                vec![format!("ferry run --spec {}   # against staging copies of both databases", spec.path.display())]
            }
            Shape::InPlace => vec![],
        },
    ));
    out.push(rollback_tested(spec, a.shape, recorded.rehearsal.as_ref()));
    out.push(item("notice", "pre-migration", "Stakeholders notified at least 48 h ahead".into(), false, None, vec![]));
    let latencies: Vec<String> = a
        .tables
        .iter()
        .filter_map(|t| {
            t.latency.as_ref().map(|l| format!("{}: p50 {:.2} ms, p99 {:.2} ms", t.source, l.p50_ms, l.p99_ms))
        })
        .collect();
    out.push(item(
        "baseline",
        "pre-migration",
        "Baseline latency of a keyed read recorded".into(),
        !latencies.is_empty(),
        (!latencies.is_empty()).then(|| format!("{} (measured {})", latencies.join("; "), minute(&a.measured_at))),
        vec![],
    ));
    out.push(item(
        "monitoring",
        "pre-migration",
        format!(
            "Monitoring and alerts on the rollback triggers (error rate > {}, lag > {}, p99 +{} over baseline, any integrity mismatch)",
            percent(spec.policy.max_error_rate),
            format_duration(spec.policy.max_lag),
            percent(spec.policy.max_latency_increase)
        ),
        false,
        None,
        vec![],
    ));
    let consumers = consumers(a);
    out.push(item(
        "consumers",
        "pre-migration",
        "Downstream consumers catalogued and their owners told (views, foreign keys, triggers, jobs, ETL, caches, search indexes)".into(),
        false,
        (!consumers.is_empty()).then(|| format!("found in the database: {}", consumers.iter().map(|c| format!("{} {}", c.kind, c.name)).collect::<Vec<_>>().join(", "))),
        vec![],
    ));
    out
}

/// Room on the target for the copy and its indexes: about twice the source's size.
fn disk_item(a: &Assessment) -> ChecklistItem {
    let needed = a.total_size_bytes().map(|s| s.saturating_mul(2));
    let (disk_done, disk_evidence) = match (a.target.free_disk_bytes, needed) {
        (Some(free), Some(need)) if free >= need => (
            true,
            Some(format!(
                "{} free on the target, about {} needed (measured {})",
                bytes(free),
                bytes(need),
                minute(&a.measured_at)
            )),
        ),
        (Some(free), Some(need)) => {
            (false, Some(format!("only {} free on the target, about {} needed", bytes(free), bytes(need))))
        }
        (None, Some(need)) => {
            (false, Some(format!("the target cannot report free space: check for about {} on its server", bytes(need))))
        }
        _ => (false, None),
    };
    item(
        "disk",
        "pre-migration",
        "Disk space on the target for the copy and its indexes".into(),
        disk_done,
        disk_evidence,
        vec![],
    )
}

/// Each phase, ticked from what the state store recorded; the commands of the
/// phases `ferry run` carries out (table moves only in this version).
fn phase_progress(spec: &Spec, a: &Assessment, recorded: &Recorded) -> Vec<ChecklistItem> {
    let mut out = Vec::new();
    let run_cmd = |c: &str| if a.shape == Shape::TableMove { vec![c.to_string()] } else { vec![] };
    let expand = recorded.completed(1);
    let created = recorded.tables.iter().filter(|t| t.created_by_ferry).count();
    out.push(item(
        "expand",
        "phases",
        match a.shape {
            Shape::TableMove => "Expand complete: target tables exist".into(),
            Shape::InPlace => "Expand complete: new columns and sync triggers in place".into(),
        },
        expand.is_some(),
        expand.map(|p| {
            format!(
                "{} table(s), {created} created by Ferry, {}",
                recorded.tables.len(),
                minute(p.completed_at.as_deref().unwrap_or(""))
            )
        }),
        run_cmd("ferry run --until expand"),
    ));
    let backfill = recorded.completed(2);
    let rows: u64 = recorded.tables.iter().map(|t| t.rows_copied).sum();
    out.push(item(
        "backfill",
        "phases",
        "Backfill complete".into(),
        backfill.is_some(),
        backfill.map(|p| format!("{} rows, {}", thousands(rows), minute(p.completed_at.as_deref().unwrap_or("")))),
        run_cmd("ferry run --until backfill"),
    ));
    out.push(item(
        "sync",
        "phases",
        format!("Sync: replay lag under {}", format_duration(spec.policy.max_lag)),
        false,
        None,
        vec![],
    ));
    let verified = recorded
        .completed(4)
        .filter(|_| recorded.tables.iter().all(|t| t.verification.as_ref().is_some_and(|v| v.passed)));
    out.push(item(
        "verify",
        "phases",
        "Verification passed: counts, checksums and sample equal".into(),
        verified.is_some(),
        verified.map(|p| {
            let rows: u64 = recorded.tables.iter().filter_map(|t| t.verification.as_ref()).map(|v| v.rows_target).sum();
            format!(
                "{} rows compared, 0 differences, {}",
                thousands(rows),
                minute(p.completed_at.as_deref().unwrap_or(""))
            )
        }),
        run_cmd("ferry verify"),
    ));
    for (id, text) in [
        ("cutover", "Cutover: reads at 100 % on the target, shadow reads equal"),
        ("switch", "Switch: writes go to the target; reverse capture keeps the source current"),
        ("soak", "Soak elapsed with no rollback trigger"),
        ("contract", "Contract: old objects archived and dropped (point of no return), sign-off recorded"),
    ] {
        out.push(item(id, "phases", text.into(), false, None, vec![]));
    }
    out
}

fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0} %")
    } else {
        format!("{p} %")
    }
}

fn consumers(a: &Assessment) -> Vec<Consumer> {
    let mut out = Vec::new();
    for t in &a.tables {
        for v in &t.dependents.views {
            out.push(Consumer { kind: "view".into(), name: v.clone(), table: t.source.clone() });
        }
        for tr in &t.dependents.triggers {
            out.push(Consumer { kind: "trigger".into(), name: tr.clone(), table: t.source.clone() });
        }
        for (child, fk) in &t.dependents.foreign_keys_in {
            out.push(Consumer {
                kind: "foreign key".into(),
                name: format!("{child}.{} ({})", fk.name, fk.columns.join(", ")),
                table: t.source.clone(),
            });
        }
    }
    out
}

fn verification_queries(a: &Assessment, d: Dialects) -> Vec<Query> {
    let mut out = Vec::new();
    let q = |purpose: &str, table: &str, engine: EngineKind, sql: String| Query {
        purpose: purpose.into(),
        table: table.into(),
        engine,
        sql,
    };
    for t in &a.tables {
        let target_cols: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
        let target_key = t.target_key();
        if a.shape == Shape::InPlace {
            out.push(q("rows", &t.source, a.source.engine, sql::count(d.source, &t.source, None)));
            out.push(q(
                "new columns agree with the old (must be 0)",
                &t.source,
                a.source.engine,
                InPlace::of(d.source, t).mismatches(),
            ));
            if let Some(sql) = InPlace::of(d.source, t).down_mismatches() {
                out.push(q("old columns agree with down(new) (must be 0)", &t.source, a.source.engine, sql));
            }
        } else {
            out.push(q(
                "rows in the source",
                &t.source,
                a.source.engine,
                sql::count(d.source, &t.source, t.filter.as_deref()),
            ));
            out.push(q("rows in the target", &t.target, a.target.engine, sql::count(d.target, &t.target, None)));
            if !target_key.is_empty() {
                out.push(q("checksum of the target (compare with the same query on a copy on this engine; `ferry verify` compares across engines)", &t.target, a.target.engine, d.target.table_checksum(&t.target, &target_key, &target_cols)));
            }
        }
        let table = if a.shape == Shape::InPlace { &t.source } else { &t.target };
        for fk in &t.foreign_keys_out {
            let cols: Option<Vec<String>> = fk
                .columns
                .iter()
                .map(|c| t.columns.iter().find(|x| x.source_column.as_deref() == Some(c)).map(|x| x.name.clone()))
                .collect();
            let moved_parent = a
                .tables
                .iter()
                .find(|p| p.source == fk.ref_table.to_string() || p.source == fk.ref_table.name)
                .map(|p| if a.shape == Shape::InPlace { p.source.clone() } else { p.target.clone() });
            // A parent outside the migration is only reachable when both sides share one database.
            let same_database = a.shape == Shape::InPlace || a.source.url == a.target.url;
            let parent = moved_parent.or_else(|| same_database.then(|| fk.ref_table.to_string()));
            if let (Some(cols), Some(parent)) = (cols, parent) {
                out.push(q(
                    "orphans (must be 0)",
                    table,
                    a.target.engine,
                    sql::orphans(d.target, table, &cols, &parent, &fk.ref_columns),
                ));
            }
        }
        let not_null: Vec<String> = t.columns.iter().filter(|c| !c.nullable).map(|c| c.name.clone()).collect();
        if !not_null.is_empty() {
            out.push(q(
                "NULL in NOT NULL or key columns (must be 0)",
                table,
                a.target.engine,
                sql::nulls(d.target, table, &not_null),
            ));
        }
    }
    out
}

fn risk_register(a: &Assessment, findings: &[Finding], decision: &Decision) -> Vec<RiskEntry> {
    let r = |failure: &str, symptom: &str, mitigation: String| RiskEntry {
        failure: failure.into(),
        symptom: symptom.into(),
        mitigation,
    };
    let mut out = vec![
        r(
            "The migration takes longer than planned",
            "progress ETA beyond the plan; backfill rows/s below the measured figure",
            format!(
                "every phase is resumable: stop with Ctrl-C at any time and `ferry run` continues after the last checkpoint; estimate measured at {} rows/s",
                a.tables.iter().filter_map(|t| t.throughput.as_ref()).map(|p| thousands(p.backfill_rows_per_second() as u64)).collect::<Vec<_>>().join(", ")
            ),
        ),
        r(
            "Integrity loss (a row missing or different)",
            "`ferry verify` exits 1 and lists keys; integrity-check line with checksum=fail",
            "verification gates every phase after backfill; a failing check is a rollback trigger; the source stays untouched until contract".into(),
        ),
        r(
            "Rollback fails when needed",
            "the rollback step errors or takes longer than planned",
            "rehearse the rollback on staging before the production run; keep the tested backup until after contract".into(),
        ),
        r(
            "Downstream consumers break",
            "errors in applications, reports or jobs that read the old shape",
            if consumers(a).is_empty() {
                "no view, trigger or foreign key depends on these tables in the database; check applications, ETL and caches outside it".into()
            } else {
                format!("move the consumers listed below before contract ({}); ramp reads behind a flag", consumers(a).len())
            },
        ),
        r(
            "Point of no return reached too early",
            "old objects dropped while a consumer still needs them",
            "contract only with `--confirm`, after verification and the soak, with the owner's sign-off".into(),
        ),
    ];
    if decision.strategy != Strategy::BigBang {
        out.push(r(
            "Dual-write divergence (capture or replay falls behind or misses a change)",
            format!("replay lag above {}, or verification differences after sync", "the lag threshold").as_str(),
            "capture is installed before the backfill starts; replay is idempotent; verify after sync and before every ramp step".into(),
        ));
    }
    if findings.iter().any(|f| matches!(f.code.as_str(), "F002" | "F003" | "F009")) {
        out.push(r(
            "Values that do not convert to the target types",
            "the run stops naming a table, key and column; row-quarantined lines in the audit log",
            "see the F002/F003/F009 findings; widen target types or clean the source before the run".into(),
        ));
    }
    if findings.iter().any(|f| matches!(f.code.as_str(), "F005" | "F006" | "F008")) {
        out.push(r(
            "Locks block application writes",
            "write latency and lock waits rise during DDL",
            "see the F005/F006/F008 findings; run those steps in a quiet period or a window".into(),
        ));
    }
    if a.target.free_disk_bytes.is_none()
        || a.target.free_disk_bytes.zip(a.total_size_bytes()).is_some_and(|(f, n)| f < 2 * n)
    {
        out.push(r(
            "The target runs out of disk",
            "write errors on the target; backfill stops",
            "check free space on the target's server before the run (the copy, its indexes and WAL need about twice the source size)".into(),
        ));
    }
    out
}

fn timeline(spec: &Spec, a: &Assessment, strategy: Strategy, work_seconds: f64) -> Vec<TimelineEntry> {
    let e = |when: &str, what: String| TimelineEntry { when: when.into(), what };
    let mut out = vec![
        e("T-48h", "notice to stakeholders: scope, window, expected impact, rollback plan, contacts".into()),
        e("T-24h", "staging rehearsal passed, including a rollback; go/no-go with the owner".into()),
        e(
            "T-1h",
            "backup taken and restore tested; monitoring on the rollback triggers; status update: starting".into(),
        ),
    ];
    match strategy {
        Strategy::BigBang => {
            out.push(e(
                "T0",
                format!("writes stopped; `ferry run` (about {}); status update at each phase", dur(work_seconds)),
            ));
            out.push(e(
                "T0 + run",
                "verification passed: switch the application; writes resume; status update: done".into(),
            ));
        }
        _ => {
            out.push(e(
                "T0",
                format!(
                    "expand, backfill and verify with the application running (about {}); status update at each phase",
                    dur(work_seconds)
                ),
            ));
            if a.shape == Shape::TableMove {
                out.push(e("T0 + run", "sync keeps the target current; cutover ramps reads 1 % → 10 % → 50 % → 100 %, one status update per step".into()));
            } else {
                out.push(e(
                    "T0 + run",
                    "readers move to the new columns behind a flag, one status update per step".into(),
                ));
            }
            out.push(e("after the ramp", "switch writes; status update".into()));
        }
    }
    out.push(e(
        &format!("+{}", format_duration(spec.soak.duration)),
        format!("soak ends ({} with no trigger); status update", format_duration(spec.soak.duration)),
    ));
    out.push(e("after sign-off", "contract (point of no return); final status update and close-out".into()));
    out
}

fn success_criteria(spec: &Spec, a: &Assessment) -> Vec<String> {
    let mut out = vec![
        "`ferry verify` exits 0: equal counts, equal checksums of every row, every sampled row equal".to_string(),
        "no orphaned rows and no NULL in NOT NULL or key columns (queries below return 0)".to_string(),
        format!("error rate under {} throughout", percent(spec.policy.max_error_rate)),
    ];
    for t in &a.tables {
        if let Some(l) = &t.latency {
            out.push(format!(
                "p99 of a keyed read on {} within +{} of the {:.2} ms baseline",
                t.target,
                percent(spec.policy.max_latency_increase),
                l.p99_ms
            ));
        }
    }
    out.push(format!("soak of {} passed with no rollback trigger", format_duration(spec.soak.duration)));
    out.push("every phase's start, end and integrity check recorded in the audit log".to_string());
    out
}

fn rollback_plan(spec: &Spec, a: &Assessment, strategy: Strategy) -> RollbackPlan {
    let lossless = spec.migration.rollback != Some(RollbackRequirement::LossAcceptedAfterSwitch);
    let s = |phase: u8, name: &str, how: &str, data_loss: &str, time: &str| RollbackStep {
        phase,
        name: name.into(),
        how: how.into(),
        data_loss: data_loss.into(),
        time: time.into(),
        point_of_no_return: phase == 8,
    };
    let mut steps = match (a.shape, strategy) {
        (Shape::InPlace, _) => vec![
            s(1, "expand", "drop the added columns and the sync triggers (`ferry rollback`)", "none", "minutes"),
            s(2, "backfill", "stop; the added columns are dropped with expand", "none", "minutes"),
            s(4, "verify", "nothing to undo", "none", "none"),
            s(5, "cutover (reads)", "flag back to the old columns", "none", "seconds"),
            s(
                6,
                "switch (writes)",
                "flag back; the reverse trigger kept renamed columns current",
                if a.tables.iter().any(|t| t.columns.iter().any(|c| c.expression.is_some())) {
                    "computed columns: old values of rows written since the switch are not kept"
                } else {
                    "none"
                },
                "seconds",
            ),
            s(7, "soak", "as switch", "as switch", "seconds"),
        ],
        (_, Strategy::BigBang) => vec![
            s(1, "expand", "drop the new tables", "none", "minutes"),
            s(2, "backfill", "stop, drop the new tables; the source was never written", "none", "minutes"),
            s(4, "verify", "nothing to undo", "none", "none"),
            s(
                6,
                "switch",
                "point the application back at the source",
                if lossless { "none while writes are stopped" } else { "writes made after the switch" },
                "minutes",
            ),
            s(
                7,
                "soak",
                "as switch; writes made on the target since the switch must be copied back by hand",
                "writes since the switch",
                "minutes to hours",
            ),
        ],
        _ => vec![
            s(
                1,
                "expand",
                "drop what expand created: target tables, capture on the source (`ferry rollback`)",
                "none",
                "minutes",
            ),
            s(2, "backfill", "stop, truncate or drop the new copy", "none", "minutes"),
            s(3, "sync", "stop replay", "none", "seconds"),
            s(4, "verify", "nothing to undo", "none", "none"),
            s(5, "cutover (reads)", "flags back to 0 %", "none", "seconds"),
            s(
                6,
                "switch (writes)",
                "`ferry rollback`: fences the target, replays its changes into the source (reverse sync kept it current), switches writes back with the hook",
                if lossless { "none" } else { "writes since the switch to tables whose mapping does not invert" },
                "seconds",
            ),
            s(7, "soak", "as switch (`ferry rollback`)", if lossless { "none" } else { "writes since the switch" }, "seconds"),
        ],
    };
    steps.push(s(
        8,
        "contract",
        "restore from the tested backup",
        "writes made since contract",
        "hours (restore time)",
    ));
    RollbackPlan {
        point_of_no_return:
            "phase 8, contract: `ferry contract --confirm` archives the old tables and removes every Ferry object; \
             `ferry rollback` is refused after it"
                .into(),
        steps,
        triggers: vec![
            RollbackTrigger {
                signal: "apply or dual-write error rate".into(),
                threshold: format!("> {}", percent(spec.policy.max_error_rate)),
                action: "pause and roll back the current phase at once".into(),
            },
            RollbackTrigger {
                signal: "replay or replica lag".into(),
                threshold: format!("> {}", format_duration(spec.policy.max_lag)),
                action: "pause the backfill; roll back the phase if it does not recover".into(),
            },
            RollbackTrigger {
                signal: "p99 latency on the new path".into(),
                threshold: format!(
                    "> +{} over the baseline (> +50 % anywhere)",
                    percent(spec.policy.max_latency_increase)
                ),
                action: "ramp reads back one step, or roll back the switch".into(),
            },
            RollbackTrigger {
                signal: "error rate on the new path".into(),
                threshold: "> 5 % over the baseline".into(),
                action: "flags back to 0 %".into(),
            },
            RollbackTrigger {
                signal: "integrity check".into(),
                threshold: "any mismatch".into(),
                action: "stop; do not move to the next phase; roll back the current one".into(),
            },
        ],
    }
}

fn adr(
    spec: &Spec,
    a: &Assessment,
    d: &Decision,
    findings: &[Finding],
    run_estimate: &Estimate,
    risk: Risk,
) -> StrategyAdr {
    let estimated = Duration::from_secs_f64(run_estimate.seconds);
    let mut context = vec![
        format!(
            "{} table(s), {} rows in all ({}), largest {} rows; {} {} to {} {}",
            a.tables.len(),
            thousands(a.total_rows()),
            a.total_size_bytes().map(bytes).unwrap_or_else(|| "size unknown".into()),
            thousands(a.largest_table_rows()),
            a.source.engine.title(),
            a.source.version,
            a.target.engine.title(),
            a.target.version
        ),
        format!(
            "measured: the run about {} ({} to {}): backfill about {}, verification about {}",
            dur(run_estimate.seconds),
            dur(run_estimate.low_seconds),
            dur(run_estimate.high_seconds),
            dur(run_estimate.phase_seconds(Phase::Backfill)),
            dur(run_estimate.phase_seconds(Phase::Verify))
        ),
        match spec.migration.downtime {
            Some(w) if w.is_zero() => "accepted downtime: none".to_string(),
            Some(w) => format!("accepted downtime: a {} window", format_duration(w)),
            None => "accepted downtime: not stated (open question)".to_string(),
        },
        match spec.migration.rollback {
            Some(r) => format!("rollback requirement: {}", r.as_str()),
            None => "rollback requirement: not stated (open question)".to_string(),
        },
    ];
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    let warnings = findings.iter().filter(|f| f.severity == Severity::Warning).count();
    context.push(format!("change analysis: {errors} error(s), {warnings} warning(s)"));
    let decision = format!("{}, because {}.", d.strategy.title(), d.rule);
    let mut consequences = match d.strategy {
        Strategy::BigBang => vec![
            format!("writes stop for about {} inside the accepted window", format_duration(estimated)),
            "the source stays untouched, so rolling back is pointing the application back at it".into(),
        ],
        Strategy::ExpandContract => vec![
            "no downtime; the old and new columns coexist, kept in step by triggers, until contract".into(),
            "the triggers add a small cost to every write on the table until contract".into(),
            "readers and writers move in steps behind flags; each step can be undone".into(),
        ],
        Strategy::CopyCaptureCutover => vec![
            match spec.capture {
                ferry_core::CaptureMethod::Triggers => {
                    "no downtime; capture triggers on the source add a cost to every write until contract".into()
                }
                ferry_core::CaptureMethod::Logical => {
                    "no downtime; logical decoding adds no work to the source's writes, but its slot keeps WAL until Ferry reads it".into()
                }
                ferry_core::CaptureMethod::Binlog => {
                    "no downtime; reading the binary log adds no work to the source's writes, but needs it kept until Ferry reads it".into()
                }
            },
            "the target needs space for a full copy".into(),
            "reads move by flag 1 % → 10 % → 50 % → 100 %; writes switch last, with reverse capture keeping rollback lossless".into(),
        ],
        Strategy::SnapshotAndReplay => vec![
            "no downtime, but a long migration: the snapshot runs in batches for hours or days".into(),
            "capture and replay must keep up for the whole snapshot; lag is a rollback trigger".into(),
            "rollback after the switch is hard: plan and rehearse it".into(),
        ],
    };
    consequences.push(format!("risk is {risk:?}; the point of no return is contract"));
    StrategyAdr {
        title: format!("ADR: {}", d.strategy.title()),
        status: "proposed".into(),
        context,
        decision,
        rule: d.rule.clone(),
        alternatives: d
            .rejected
            .iter()
            .map(|(s, why)| Alternative { strategy: *s, title: s.title().into(), why_not: why.clone() })
            .collect(),
        consequences,
    }
}

/// What every phase of the runbook is written from.
struct RunbookContext<'a> {
    spec: &'a Spec,
    a: &'a Assessment,
    dialects: Dialects,
    strategy: Strategy,
    /// Seconds of backfill and of verification, as estimated.
    backfill: f64,
    verify: f64,
    /// `--spec PATH`, for the commands shown.
    spec_arg: String,
}

fn runbook(spec: &Spec, a: &Assessment, dialects: Dialects, strategy: Strategy, backfill: f64, verify: f64) -> Runbook {
    let c = RunbookContext {
        spec,
        a,
        dialects,
        strategy,
        backfill,
        verify,
        spec_arg: format!("--spec {}", spec.path.display()),
    };
    let mut phases = if a.shape == Shape::InPlace {
        vec![in_place_expand(&c), in_place_backfill(&c), in_place_sync(), in_place_verify(&c)]
    } else {
        let mut phases = vec![move_expand(&c), move_backfill(&c)];
        if strategy != Strategy::BigBang {
            phases.push(move_sync(&c));
        }
        phases.push(move_verify(&c));
        phases
    };
    if strategy != Strategy::BigBang {
        phases.push(cutover_phase(&c));
    }
    phases.extend([switch_phase(&c), soak_phase(&c), contract_phase(&c)]);
    Runbook { phases }
}

impl PhasePlan {
    fn new(number: u8, name: &str, goal: &str, automated: bool) -> PhasePlan {
        PhasePlan {
            number,
            name: name.into(),
            goal: goal.into(),
            entry_criteria: Vec::new(),
            steps: Vec::new(),
            exit_criteria: Vec::new(),
            rollback: String::new(),
            estimated_time: String::new(),
            automated,
            manual: None,
        }
    }
}

/// In place, phase 1: the new columns, the sync triggers and each version's views.
fn in_place_expand(c: &RunbookContext) -> PhasePlan {
    let (a, spec_arg) = (c.a, &c.spec_arg);
    let e = a.source.engine;
    let mut expand = PhasePlan::new(
        1,
        "expand",
        "add the new columns beside the old ones, keep both in step on every write, and give each application \
         version its view",
        true,
    );
    expand.entry_criteria = vec!["pre-migration checklist complete".into(), "no open questions".into()];
    for t in &a.tables {
        let change = InPlace::of(c.dialects.source, t);
        let operations: Vec<String> = change.operations().iter().map(|op| op.label()).collect();
        expand.steps.push(step(format!(
            "operations on {}: {} — each started here, completed by contract, aborted by rollback; `ferry status` shows each one's stage",
            t.source,
            operations.join(", ")
        )));
        expand.steps.push(with_sql(
            cmd(
                format!(
                    "add the new columns to {} (nullable, so no table rewrite), the two-way sync triggers and the \
                     version views; each statement waits for its lock at most the lock timeout, and is retried",
                    t.source
                ),
                format!("ferry run {spec_arg} --until expand"),
            ),
            e,
            change.expand().into_iter().chain(change.index_builds().into_iter().map(|b| b.build)).map(|s| s.sql),
        ));
        for version in [Version::Old, Version::New] {
            expand.steps.push(step(format!(
                "application version {} ({}): `{}`",
                if version == Version::Old { 1 } else { 2 },
                if version == Version::Old { "the table as it was" } else { "the table as the change leaves it" },
                change.connection_setting(version)
            )));
        }
    }
    expand.exit_criteria =
        vec!["the new columns exist; an insert and an update through either version fill them".into()];
    expand.rollback = "`ferry rollback`: drop the added columns, triggers and views".into();
    expand.estimated_time = "seconds (metadata only)".into();
    expand
}

/// In place, phase 2: the new columns filled for existing rows.
fn in_place_backfill(c: &RunbookContext) -> PhasePlan {
    let (a, spec_arg, batch) = (c.a, &c.spec_arg, c.spec.policy.batch_size);
    let mut bf = PhasePlan::new(2, "backfill", "fill the new columns for existing rows, in batches", true);
    bf.entry_criteria = vec!["expand complete: triggers keep new writes in step".into()];
    for t in &a.tables {
        bf.steps.push(with_sql(
            cmd(
                format!(
                    "update {} in key order, {batch} rows per batch, each batch its own transaction, \
                     checkpointed and throttled",
                    t.source
                ),
                format!("ferry run {spec_arg} --until backfill"),
            ),
            a.source.engine,
            [InPlace::of(c.dialects.source, t).backfill_shown()],
        ));
    }
    bf.exit_criteria = vec!["every batch done".into()];
    bf.rollback = "`ferry rollback`: drop the added columns".into();
    bf.estimated_time = dur(c.backfill);
    bf
}

/// In place, phase 3: the triggers keep both shapes in step; nothing runs.
fn in_place_sync() -> PhasePlan {
    let mut sync =
        PhasePlan::new(3, "sync", "the triggers keep old and new in step while the application writes", false);
    sync.entry_criteria = vec!["backfill complete".into()];
    sync.steps = vec![step("nothing to run: the triggers installed in expand do the work")];
    sync.exit_criteria = vec!["the mismatch query of verify returns 0".into()];
    sync.rollback = "drop the triggers and the added columns".into();
    sync.estimated_time = "continuous until contract".into();
    sync
}

/// In place, phase 4: new = up(old) on every row.
fn in_place_verify(c: &RunbookContext) -> PhasePlan {
    let (a, spec_arg) = (c.a, &c.spec_arg);
    let mut v = PhasePlan::new(4, "verify", "prove new = up(old) (and old = down(new) where given) on every row", true);
    v.entry_criteria = vec!["backfill complete".into()];
    for t in &a.tables {
        v.steps.push(with_sql(
            cmd(
                format!(
                    "count rows of {} where the new columns disagree (rows version 2 wrote itself stand as written)",
                    t.source
                ),
                format!("ferry verify {spec_arg}"),
            ),
            a.source.engine,
            std::iter::once(InPlace::of(c.dialects.source, t).mismatches())
                .chain(InPlace::of(c.dialects.source, t).down_mismatches()),
        ));
    }
    v.exit_criteria = vec!["0 rows disagree".into()];
    v.rollback = "nothing to undo".into();
    v.estimated_time = dur(c.verify);
    v
}

/// A move, phase 1: the target tables and change capture on the source.
fn move_expand(c: &RunbookContext) -> PhasePlan {
    let (spec, a, spec_arg) = (c.spec, c.a, &c.spec_arg);
    let mut expand = PhasePlan::new(
        1,
        "expand",
        "create the target tables (additive only) and install change capture on the source",
        true,
    );
    expand.entry_criteria = vec![
        "pre-migration checklist complete (backup restored and tested)".into(),
        "no open questions in the spec".into(),
        "no error-level finding in the change analysis".into(),
    ];
    let mut create = cmd(
        "create the target tables (an existing compatible table is reused)",
        format!("ferry run {spec_arg} --until expand"),
    );
    for t in &a.tables {
        create = with_sql(create, a.target.engine, t.ddl_expand.clone());
    }
    expand.steps.push(create);
    expand.steps.push(step(match spec.capture {
        ferry_core::CaptureMethod::Triggers => {
            "install change capture on the source (a change log and triggers), before the backfill starts (`ferry run` does it)"
        }
        ferry_core::CaptureMethod::Logical => {
            "install change capture on the source (a change log, a publication and a logical replication slot), \
             before the backfill starts (`ferry run` does it)"
        }
        ferry_core::CaptureMethod::Binlog => {
            "install change capture on the source (a change log and the binary log position to read from), \
             before the backfill starts (`ferry run` does it)"
        }
    }));
    expand.exit_criteria = vec!["the target tables exist with their primary keys".into(), "capture is live".into()];
    expand.rollback = "drop what expand created (`ferry rollback`)".into();
    expand.estimated_time = "under a minute".into();
    expand
}

/// A move, phase 2: the copy in checkpointed batches, then indexes and identities.
fn move_backfill(c: &RunbookContext) -> PhasePlan {
    let (a, spec_arg, batch) = (c.a, &c.spec_arg, c.spec.policy.batch_size);
    let mut bf = PhasePlan::new(2, "backfill", "copy existing rows in key order, in checkpointed batches", true);
    bf.entry_criteria = vec!["expand complete".into()];
    if c.strategy == Strategy::BigBang {
        bf.entry_criteria.push("writes to the source stopped (maintenance window started)".into());
    }
    let mut copy = cmd(
        format!("copy every table in batches of {batch} rows, one upsert transaction and one checkpoint per batch; resumable at any point"),
        format!("ferry run {spec_arg} --until backfill"),
    );
    for t in &a.tables {
        copy = with_sql(copy, a.source.engine, [sql::keyset_read(c.dialects.source, t, batch)]);
    }
    for t in &a.tables {
        copy = with_sql(copy, a.target.engine, t.ddl_after_load.clone());
    }
    bf.steps.push(copy);
    if a.tables.iter().any(|t| !t.identity_sql.is_empty()) {
        let mut identity = step(
            "move each identity (sequence, AUTO_INCREMENT) beyond the largest copied key and beyond what the \
             source has handed out, so that an INSERT without a key works on the target (`ferry run` does it \
             after the backfill; `ferry sync` and `ferry verify` again)",
        );
        for t in &a.tables {
            identity = with_sql(identity, a.target.engine, t.identity_sql.clone());
        }
        bf.steps.push(identity);
    }
    bf.exit_criteria = vec!["every table's backfill complete (`ferry status`)".into(), "row counts match".into()];
    bf.rollback = "stop (Ctrl-C); drop or truncate the new copy".into();
    bf.estimated_time = format!("{} at the measured rate", dur(c.backfill));
    bf
}

/// A move, phase 3: replay until the target is current (not in a big bang).
fn move_sync(c: &RunbookContext) -> PhasePlan {
    let (spec, spec_arg) = (c.spec, &c.spec_arg);
    let mut sync = PhasePlan::new(3, "sync", "replay captured changes until the target is current", true);
    sync.entry_criteria = vec!["backfill complete".into()];
    sync.steps = vec![cmd("replay changes; keep running until the switch", format!("ferry sync {spec_arg} --follow"))];
    sync.exit_criteria = vec![format!("replay lag under {}", format_duration(spec.policy.max_lag))];
    sync.rollback = "stop replay".into();
    sync.estimated_time = "continuous until the switch".into();
    sync
}

/// A move, phase 4: counts, checksums, a sample, and the queries shown.
fn move_verify(c: &RunbookContext) -> PhasePlan {
    let (spec, spec_arg) = (c.spec, &c.spec_arg);
    let mut v = PhasePlan::new(4, "verify", "prove the target equals the source", true);
    v.entry_criteria = vec![if c.strategy == Strategy::BigBang {
        "backfill complete".into()
    } else {
        "lag under the threshold".into()
    }];
    v.steps.push(cmd(
        format!("counts, a checksum of every row and a column-by-column sample of {} rows", spec.policy.sample_size),
        format!("ferry verify {spec_arg}"),
    ));
    v.steps.push(step("run the verification queries below for orphans and NULLs"));
    v.exit_criteria = vec!["zero differences (exit code 0)".into(), "orphan and NULL queries return 0".into()];
    v.rollback = "nothing to undo".into();
    v.estimated_time = dur(c.verify);
    v
}

/// Phase 5: reads move to the new shape stage by stage (not in a big bang).
fn cutover_phase(c: &RunbookContext) -> PhasePlan {
    let (spec, a, spec_arg) = (c.spec, c.a, &c.spec_arg);
    let mut cut =
        PhasePlan::new(5, "cutover", "move reads to the new shape step by step, comparing old and new reads", false);
    cut.entry_criteria = vec!["verification passed".into()];
    match &spec.cutover {
        Some(policy) => ramp_steps(&mut cut, policy, spec_arg),
        None => {
            for pct in RAMP {
                cut.steps.push(step(format!(
                    "reads at {pct} %: route this share of reads to the new shape, compare a sample of results, \
                     then hold"
                )));
            }
            cut.manual = Some(if a.shape == Shape::InPlace {
                "In place, reads move with the application version: roll version 2 out to this share of the \
                 fleet, and compare a sample of results at each step."
                    .into()
            } else {
                "The spec has no [cutover] section, so Ferry does not ramp reads for this migration: add one \
                 (stages, hold, triggers) and run `ferry cutover`, or route reads with the application's own \
                 feature flag and compare a sample of results at each step."
                    .into()
            });
            let baseline = a.tables.iter().filter_map(|t| t.latency.as_ref()).map(|l| l.p99_ms).reduce(f64::max);
            cut.exit_criteria = vec![
                "shadow reads: 0 mismatches".into(),
                format!("error rate under {}", percent(spec.policy.max_error_rate)),
                match baseline {
                    Some(b) => {
                        format!("p99 within +{} of the {b:.2} ms baseline", percent(spec.policy.max_latency_increase))
                    }
                    None => format!("p99 within +{} of the baseline", percent(spec.policy.max_latency_increase)),
                },
            ];
        }
    }
    cut.rollback = "flags back to 0 %".into();
    cut.estimated_time = "one soak per step (at least an hour each in production)".into();
    cut
}

/// Phase 6: writes move to the new shape.
fn switch_phase(c: &RunbookContext) -> PhasePlan {
    let (spec, a, spec_arg) = (c.spec, c.a, &c.spec_arg);
    let mut sw = PhasePlan::new(6, "switch", "make the new shape primary for writes", false);
    sw.entry_criteria = vec![if c.strategy == Strategy::BigBang {
        "verification passed".into()
    } else {
        "reads at 100 % for one soak step".into()
    }];
    if c.strategy == Strategy::BigBang {
        sw.steps = vec![step("point the application at the target and resume writes; announce the end of the window")];
        sw.rollback = "point the application back at the source".into();
    } else if a.shape == Shape::InPlace {
        let computed = a.tables.iter().any(|t| t.columns.iter().any(|c| c.expression.is_some()));
        sw.steps = vec![step(
            "roll out application version 2 (its connection setting is in expand) and retire version 1: the two-way \
             sync triggers keep both shapes right while both run, so the rollout can be gradual",
        )];
        if computed {
            sw.steps.push(step(
                "a computed column has no way back into its old columns: rows version 2 writes itself are recorded \
                 (ferry_written_<table>) and verification accepts them as written",
            ));
        }
        sw.manual =
            Some("deploy version 2 of the application with the setting above; Ferry has nothing to run here.".into());
        sw.rollback = if computed {
            "redeploy version 1; rows version 2 wrote keep their old columns as they were (the new value is not turned back)".into()
        } else {
            "redeploy version 1: the triggers kept the old columns current".into()
        };
    } else {
        sw.automated = true;
        sw.steps = vec![
            cmd(
                format!(
                    "fence the source, replay what capture holds, move identities, install capture on the target, \
                     record writes = target, run the [switch] hook{}, start reverse sync; refused unless verified within {} \
                     and capture lag is under {}",
                    spec.switch.hook.as_ref().map(|h| format!(" (`{h}`)")).unwrap_or_default(),
                    format_duration(spec.switch.max_verify_age),
                    format_duration(spec.switch.max_lag)
                ),
                format!("ferry switch {spec_arg}"),
            ),
            cmd("keep the source current from the target (reverse sync)", format!("ferry sync {spec_arg} --follow")),
        ];
        sw.rollback =
            "`ferry rollback`: fence the target, replay its changes into the source, switch writes back; nothing is lost".into();
    }
    sw.exit_criteria =
        vec![format!("reverse lag under {}", format_duration(spec.policy.max_lag)), "error rate normal".into()];
    sw.estimated_time = "minutes".into();
    sw
}

/// Phase 7: production watched on the new shape before anything is dropped.
fn soak_phase(c: &RunbookContext) -> PhasePlan {
    let (spec, a, spec_arg) = (c.spec, c.a, &c.spec_arg);
    let mut soak = PhasePlan::new(7, "soak", "watch production on the new shape before anything is dropped", false);
    soak.automated = a.shape != Shape::InPlace && c.strategy != Strategy::BigBang;
    soak.entry_criteria = vec!["switch complete".into()];
    soak.steps = if soak.automated {
        vec![cmd(
            format!(
                "keep reverse sync running and watch the rollback triggers for {} (reverse lag over {}: {})",
                format_duration(spec.soak.duration),
                format_duration(spec.policy.max_lag),
                match spec.soak.on_trigger {
                    ferry_core::spec::OnTrigger::Alert => "recorded as rollback-triggered",
                    ferry_core::spec::OnTrigger::Rollback => "rolled back at once",
                }
            ),
            format!("ferry sync {spec_arg} --follow"),
        )]
    } else {
        vec![step(format!("monitor the rollback triggers for {}", format_duration(spec.soak.duration)))]
    };
    soak.exit_criteria = vec!["soak elapsed".into(), "no trigger fired".into()];
    soak.rollback = "as switch".into();
    soak.estimated_time = format_duration(spec.soak.duration);
    soak
}

/// Phase 8: the point of no return.
fn contract_phase(c: &RunbookContext) -> PhasePlan {
    let (spec, a, spec_arg) = (c.spec, c.a, &c.spec_arg);
    let mut contract =
        PhasePlan::new(8, "contract", "archive, then drop the old objects: the point of no return", false);
    contract.entry_criteria = vec!["soak elapsed, every gate green, owner's sign-off recorded".into()];
    if a.shape == Shape::InPlace {
        contract.automated = true;
        for t in &a.tables {
            let change = InPlace::of(c.dialects.source, t);
            let plan = change.contract();
            let mut sql: Vec<String> = plan.prepare.into_iter().map(|s| s.sql).collect();
            if plan.atomic {
                sql.push("BEGIN".into());
                sql.extend(plan.steps.into_iter().map(|s| s.sql));
                sql.push("COMMIT".into());
            } else {
                sql.push(
                    "-- MariaDB/MySQL commit each ALTER by itself: Ferry runs these in order, records each, checks \
                     between them, and resumes after the last one done"
                        .into(),
                );
                sql.extend(plan.steps.into_iter().map(|s| s.sql));
            }
            for column in change.sqlite_not_null() {
                sql.push(format!("-- NOT NULL on {column}: SQLite rebuilds the table in the same transaction"));
            }
            contract.steps.push(with_sql(
                cmd(
                    format!(
                        "refused while an object still uses a column it drops (named); then enforce NOT NULL where \
                         asked, drop version 1's views, the triggers and the old columns of {} (version 2's views stay \
                         for the application that uses them)",
                        t.source
                    ),
                    format!("ferry contract {spec_arg} --confirm"),
                ),
                a.source.engine,
                sql,
            ));
        }
    } else {
        contract.automated = true;
        contract.steps.push(cmd(
            format!(
                "refused until the soak elapsed, a final verification passes and a backup of the source tables \
                 restores into a scratch database and matches them; then removes reverse capture and every fence, \
                 archives the source tables ([contract] source = {}), and removes every `ferry_` object on both sides",
                match spec.contract.source {
                    ferry_core::spec::ArchiveSource::Rename => "rename: <table>_ferry_archive_<date>",
                    ferry_core::spec::ArchiveSource::Drop => "drop",
                    ferry_core::spec::ArchiveSource::Keep => "keep",
                }
            ),
            format!("ferry contract {spec_arg} --confirm"),
        ));
    }
    contract.exit_criteria = vec!["old objects gone; no `ferry_` object left; final status update sent".into()];
    contract.rollback = "restore from backup (writes since contract are lost)".into();
    contract.estimated_time = "minutes".into();
    contract
}

/// The cutover phase as `[cutover]` configures it: each stage, its hold, and every trigger with its threshold.
fn ramp_steps(cut: &mut PhasePlan, policy: &ferry_core::spec::CutoverPolicy, spec_arg: &str) {
    let hold = ferry_core::audit::format_duration(policy.hold);
    let advance = match policy.advance {
        ferry_core::spec::Advance::Auto => "then goes on by itself".to_string(),
        ferry_core::spec::Advance::Manual => {
            "then waits for `ferry cutover --next` (or the dashboard's button)".to_string()
        }
    };
    let shadow = if policy.shadow_rate > 0.0 {
        format!("{} shadow reads/s of Ferry's own", policy.shadow_rate)
    } else {
        "no shadow reads of Ferry's own (`shadow_rate = 0`)".to_string()
    };
    let custom: Vec<&str> = policy.shadow.iter().map(|q| q.name.as_str()).collect();
    cut.steps.push(cmd(
        format!(
            "run the ramp in the foreground (it replays captured changes, reads in shadow — {shadow}{} — and \
             serves the flags): stages {}",
            if custom.is_empty() { String::new() } else { format!(", plus the queries {}", custom.join(", ")) },
            policy.stages.iter().map(|p| format!("{p} %")).collect::<Vec<_>>().join(" → ")
        ),
        format!("ferry cutover {spec_arg}"),
    ));
    for pct in &policy.stages {
        cut.steps.push(step(format!(
            "reads at {pct} %: the flags (flagd file, /api/v1/flags, ferry_routing) send this share of users to the \
             target; the stage holds {hold} with every trigger below its threshold, {advance}"
        )));
    }
    for trigger in &policy.triggers {
        let window = if trigger.window.is_zero() {
            "at once".to_string()
        } else {
            format!("for {}", ferry_core::audit::format_duration(trigger.window))
        };
        cut.steps.push(step(format!(
            "rollback trigger {}: above {} {window} → every read back to the source within a second, \
             `rollback-triggered` in the audit log, `ferry cutover` exits 1",
            trigger.metric.name(),
            trigger.metric.format(trigger.above)
        )));
    }
    if let Some(p) = &policy.prometheus {
        cut.steps.push(step(format!("error rate read from Prometheus at {}: `{}`", p.url, p.query)));
    }
    cut.exit_criteria = policy
        .triggers
        .iter()
        .map(|t| format!("{} at most {}", t.metric.name(), t.metric.format(t.above)))
        .chain(std::iter::once("reads at 100 %, held".to_string()))
        .collect();
}
