use crate::output::{print_reports, Reporter};
use crate::{EXIT_DIFFERENCES, EXIT_OK};
use ferry_core::audit::format_duration;
use ferry_core::Phase;
use ferry_run::{Migration, RunOutcome};
use indicatif::HumanCount;
use std::path::Path;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Stop once this phase is complete: expand, backfill or verify (the default).
    #[arg(long, value_parser = parse_phase)]
    until: Option<Phase>,
}

fn parse_phase(s: &str) -> Result<Phase, String> {
    match Phase::from_name(s) {
        Some(p @ (Phase::Expand | Phase::Backfill | Phase::Verify)) => Ok(p),
        Some(p) => Err(format!("phase `{}` is not implemented yet; use expand, backfill or verify", p.name())),
        None => Err(format!("unknown phase `{s}`; use expand, backfill or verify")),
    }
}

pub async fn run(spec_path: &Path, args: Args) -> anyhow::Result<u8> {
    let spec = super::load_spec(spec_path)?;
    let migration = Migration::open(spec, true).await?;
    let until = args.until.filter(|p| *p != Phase::Verify);
    let outcome = migration.run(until, &Reporter::new()).await?;
    print_summary(&outcome);
    Ok(if outcome.succeeded() { EXIT_OK } else { EXIT_DIFFERENCES })
}

pub fn print_summary(outcome: &RunOutcome) {
    print_reports(&outcome.verification);
    if let Some(phase) = outcome.stopped_after {
        println!("stopped after phase {} {} as asked; `ferry run` continues from there", phase.number(), phase.name());
    }
    let copied: u64 = outcome.tables.iter().map(|t| t.rows_copied_now).sum();
    let rate = if outcome.backfill_seconds > 0.0 { copied as f64 / outcome.backfill_seconds } else { 0.0 };
    println!(
        "copied {} rows in {} ({} rows/s); total {}; verification {}",
        HumanCount(copied),
        format_duration(Duration::from_secs_f64(outcome.backfill_seconds)),
        HumanCount(rate as u64),
        format_duration(Duration::from_secs_f64(outcome.elapsed_seconds)),
        if outcome.verified() {
            "passed"
        } else if outcome.stopped_after.is_some() {
            "not run yet"
        } else {
            "FAILED"
        }
    );
}
