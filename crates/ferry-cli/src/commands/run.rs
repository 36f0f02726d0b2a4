use crate::output::{print_reports, Reporter};
use crate::{EXIT_DIFFERENCES, EXIT_OK};
use ferry_core::audit::format_duration;
use ferry_run::{Migration, RunOutcome};
use indicatif::HumanCount;
use std::path::Path;
use std::time::Duration;

pub async fn run(spec_path: &Path) -> anyhow::Result<u8> {
    let spec = super::load_spec(spec_path)?;
    let migration = Migration::open(spec, true).await?;
    let outcome = migration.run(&Reporter::new()).await?;
    print_summary(&outcome);
    Ok(if outcome.verified() { EXIT_OK } else { EXIT_DIFFERENCES })
}

pub fn print_summary(outcome: &RunOutcome) {
    print_reports(&outcome.verification);
    let copied: u64 = outcome.tables.iter().map(|t| t.rows_copied_now).sum();
    let rate = if outcome.backfill_seconds > 0.0 { copied as f64 / outcome.backfill_seconds } else { 0.0 };
    println!(
        "copied {} rows in {} ({} rows/s); total {}; verification {}",
        HumanCount(copied),
        format_duration(Duration::from_secs_f64(outcome.backfill_seconds)),
        HumanCount(rate as u64),
        format_duration(Duration::from_secs_f64(outcome.elapsed_seconds)),
        if outcome.verified() { "passed" } else { "FAILED" }
    );
}
