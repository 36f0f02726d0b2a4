//! What the operator sees: errors, progress, reports.

use ferry_core::audit::format_duration;
use ferry_core::Phase;
use ferry_run::compare::{DiffOutcome, Method};
use ferry_run::integrity::CheckResult;
use ferry_run::verify::{Difference, DifferenceKind, MAX_LISTED};
use ferry_run::{Progress, TableReport};
use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Stdout cannot be written: a reader that went away (`| head`) ends the
/// command quietly; anything else is said on stderr.
pub fn stdout_failed(e: std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(crate::EXIT_OK as i32);
    }
    eprintln!("error[E311]: cannot write to standard output: {e}");
    std::process::exit(crate::EXIT_ERROR as i32);
}

/// `error[E303]: message`, the hint, and what caused it (where the message does not already say it).
pub fn print_error(e: &anyhow::Error) {
    let Some(run) = e.downcast_ref::<ferry_run::RunError>() else {
        // Not Ferry's own error: a file the command could not read or write, or worse.
        let io = e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some());
        let text = format!("{e:#}");
        let mut lines = text.lines();
        if let Some(first) = lines.next() {
            eprintln!("error[{}]: {first}", if io { "E311" } else { "E399" });
        }
        for line in lines {
            eprintln!("{line}");
        }
        return;
    };
    let mut lines = run.message.lines();
    if let Some(first) = lines.next() {
        eprintln!("error[{}]: {first}", run.code());
    }
    for line in lines {
        eprintln!("{line}");
    }
    let mut cause = std::error::Error::source(run);
    while let Some(c) = cause {
        let text = c.to_string();
        if !run.message.contains(text.trim()) {
            eprintln!("  caused by: {}", text.trim());
        }
        cause = c.source();
    }
    if let Some(hint) = &run.hint {
        eprintln!("  help: {hint}");
    }
}

/// Progress bars on a terminal; a plain line every few seconds otherwise.
pub struct Reporter {
    terminal: bool,
    inner: Mutex<HashMap<String, Task>>,
}

struct Task {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    done: u64,
    started: Instant,
    started_at: u64,
    last_line: Instant,
}

const LINE_EVERY: Duration = Duration::from_secs(5);

impl Reporter {
    pub fn new() -> Reporter {
        Reporter { terminal: std::io::stderr().is_terminal(), inner: Mutex::new(HashMap::new()) }
    }

    fn line(task: &str, t: &Task) -> String {
        let elapsed = t.started.elapsed().as_secs_f64().max(0.001);
        let rate = (t.done - t.started_at) as f64 / elapsed;
        match t.total {
            Some(total) if total > 0 => {
                let pct = (t.done as f64 / total as f64 * 100.0).min(100.0);
                let eta = if rate > 0.0 && total > t.done {
                    format_duration(Duration::from_secs_f64((total - t.done) as f64 / rate))
                } else {
                    "0s".into()
                };
                format!(
                    "{task}: {}/{} rows ({pct:.1}%), {} rows/s, ETA {eta}",
                    HumanCount(t.done),
                    HumanCount(total),
                    HumanCount(rate as u64)
                )
            }
            _ => format!("{task}: {} rows, {} rows/s", HumanCount(t.done), HumanCount(rate as u64)),
        }
    }
}

impl Progress for Reporter {
    fn phase_started(&self, phase: Phase) {
        eprintln!("phase {} {}", phase.number(), phase.name());
    }

    fn task_started(&self, task: &str, total: Option<u64>, done: u64) {
        let bar = self.terminal.then(|| {
            let bar = match total {
                Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let template = if total.is_some() {
                "  {prefix:<24} [{bar:30}] {human_pos}/{human_len} rows  {rate}  ETA {eta}"
            } else {
                "  {prefix:<24} {spinner} {human_pos} rows  {rate}"
            };
            let style = ProgressStyle::with_template(template)
                .expect("valid template")
                .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{} rows/s", HumanCount(state.per_sec() as u64));
                })
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(task.to_string());
            bar.set_position(done);
            bar.reset_eta();
            bar
        });
        let t = Task { bar, total, done, started: Instant::now(), started_at: done, last_line: Instant::now() };
        if !self.terminal {
            eprintln!("{}", Reporter::line(task, &t));
        }
        self.inner.lock().expect("progress lock").insert(task.to_string(), t);
    }

    fn advanced(&self, task: &str, rows: u64) {
        let mut tasks = self.inner.lock().expect("progress lock");
        let Some(t) = tasks.get_mut(task) else { return };
        t.done += rows;
        if let Some(bar) = &t.bar {
            bar.inc(rows);
        } else if t.last_line.elapsed() >= LINE_EVERY {
            t.last_line = Instant::now();
            eprintln!("{}", Reporter::line(task, t));
        }
    }

    fn task_finished(&self, task: &str) {
        let mut tasks = self.inner.lock().expect("progress lock");
        if let Some(t) = tasks.remove(task) {
            if let Some(bar) = &t.bar {
                bar.finish();
            } else {
                eprintln!("{} — done in {}", Reporter::line(task, &t), format_duration(t.started.elapsed()));
            }
        }
    }

    fn note(&self, message: &str) {
        let tasks = self.inner.lock().expect("progress lock");
        match tasks.values().find_map(|t| t.bar.as_ref()) {
            Some(bar) => bar.println(format!("note: {message}")),
            None => eprintln!("note: {message}"),
        }
    }
}

fn kind_label(kind: DifferenceKind) -> &'static str {
    match kind {
        DifferenceKind::Missing => "missing in target",
        DifferenceKind::Extra => "extra in target",
        DifferenceKind::Mismatched => "different",
        DifferenceKind::Unconvertible => "not convertible",
    }
}

fn print_difference(d: &Difference) {
    outln!("    {:<18} {}", kind_label(d.kind), d.key);
    for c in &d.columns {
        outln!("        {}: source {} / target {}", c.column, c.source, c.target);
    }
}

fn method_label(method: Method) -> &'static str {
    match method {
        Method::RangesInDatabase => "key ranges, checksums computed in both databases",
        Method::Ranges => "key ranges, rows hashed by ferry",
        Method::KeyHashBuckets => "key-hash buckets (text keys: the engines' collations differ)",
        Method::Recomputed => "in place: every row's new columns recomputed from its old ones",
    }
}

/// What one comparison found: how, how much, and the differences.
pub fn print_outcome(o: &DiffOutcome) {
    outln!(
        "  {}: {} chunks ({} differing), rows {} / {}, {} rows compared value by value, {}",
        method_label(o.method),
        HumanCount(o.chunks),
        HumanCount(o.chunks_differing),
        HumanCount(o.rows_source),
        HumanCount(o.rows_target),
        HumanCount(o.rows_compared),
        format_duration(Duration::from_millis(o.duration_ms))
    );
    outln!(
        "  sample: {} rows compared column by column, {} differ",
        HumanCount(o.sample.len() as u64),
        o.sample_mismatches
    );
    let c = &o.counts;
    if o.identical() {
        outln!("  identical");
    } else {
        outln!(
            "  {} difference(s): {} missing in target, {} extra in target, {} different, {} not convertible",
            HumanCount(c.total()),
            c.missing,
            c.extra,
            c.mismatched,
            c.unconvertible
        );
        let listed = o.differences.len().min(MAX_LISTED);
        if (listed as u64) < c.total() {
            outln!("  first {listed}:");
        }
        o.differences.iter().take(listed).for_each(print_difference);
    }
    if o.sample_mismatches > 0 {
        outln!("  sampled rows that differ:");
        o.sample_differences.iter().take(MAX_LISTED).for_each(print_difference);
    }
}

/// Integrity and custom checks, one line each.
pub fn print_checks(checks: &[CheckResult]) {
    if checks.is_empty() {
        return;
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    outln!("checks: {} run, {failed} failed", checks.len());
    for c in checks.iter().filter(|c| !c.passed) {
        match (&c.actual, &c.error) {
            (Some(actual), Some(detail)) => {
                outln!("  FAIL  {}: expected {}, got {actual}: {detail}", c.name, c.expected)
            }
            (Some(actual), None) => outln!("  FAIL  {}: expected {}, got {actual}", c.name, c.expected),
            (None, error) => outln!("  FAIL  {}: {}", c.name, error.as_deref().unwrap_or("no value")),
        }
        outln!("        {}", c.sql);
    }
}

/// The verification report, one block per table.
pub fn print_reports(reports: &[TableReport]) {
    for r in reports {
        let verdict = if r.passed() { "PASS" } else { "FAIL" };
        if r.method == Method::Recomputed {
            outln!(
                "{verdict}  {}: {} rows, each checked against its old columns (new = up(old), old = down(new)), {} disagreement(s)  ({})",
                r.source,
                HumanCount(r.rows_source),
                HumanCount(r.differences_found),
                format_duration(Duration::from_millis(r.duration_ms))
            );
        } else {
            outln!(
                "{verdict}  {} -> {}: rows {} / {}, checksum {}, sample {} rows, {} different  ({})",
                r.source,
                r.target,
                HumanCount(r.rows_source),
                HumanCount(r.rows_target),
                if r.checksum_match { "equal" } else { "DIFFERENT" },
                HumanCount(r.sample_size),
                r.sample_mismatches,
                format_duration(Duration::from_millis(r.duration_ms))
            );
        }
        if r.settled_rows > 0 {
            outln!(
                "  {} row(s) written while they were compared (hence the counts) matched once replay caught up",
                HumanCount(r.settled_rows)
            );
        }
        if r.differences_found > 0 {
            outln!(
                "  {}{} row(s) differ{}:",
                if r.differences_truncated { "at least " } else { "" },
                HumanCount(r.differences_found),
                if r.differences_found as usize > r.differences.len() {
                    format!(", first {}", r.differences.len())
                } else {
                    String::new()
                }
            );
            r.differences.iter().for_each(print_difference);
        } else if !r.sample_differences.is_empty() {
            outln!("  sampled rows that differ:");
            r.sample_differences.iter().for_each(print_difference);
        }
    }
}
