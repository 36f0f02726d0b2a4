use crate::output::Reporter;
use crate::{EXIT_DIFFERENCES, EXIT_OK};
use ferry_core::audit::format_duration;
use ferry_run::rehearse::{rehearse, DEFAULT_ROWS};
use std::path::Path;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Rows copied from each source table (plus the parent rows they reference).
    #[arg(long, default_value_t = DEFAULT_ROWS)]
    rows: usize,
}

pub async fn run(spec_path: &Path, args: Args, invocation: ferry_run::Invocation) -> anyhow::Result<u8> {
    if args.rows == 0 {
        anyhow::bail!(ferry_run::RunError::new(ferry_run::RunErrorKind::Usage, "`--rows` must be at least 1")
            .with_hint("the default, 10000, rehearses on the first 10000 rows of each table"));
    }
    let spec = super::load_spec(spec_path)?;
    let outcome = rehearse(spec, args.rows, invocation, &Reporter::new()).await?;
    let took = format_duration(Duration::from_millis(outcome.record.duration_ms));
    for (table, rows) in &outcome.seeded {
        outln!("{table}: {rows} rows rehearsed");
    }
    match &outcome.record.failure {
        None => {
            outln!(
                "rehearsal passed in {took}: run, {} writes on both sides of a switch, rollback; the source ended as \
                 it began plus those writes ({}, removed again)",
                outcome.writes,
                outcome.environment
            );
            Ok(EXIT_OK)
        }
        Some(failure) => {
            outln!("rehearsal FAILED after {took}: {failure}");
            outln!("the scratch databases are removed; fix the cause and run `ferry rehearse` again");
            Ok(EXIT_DIFFERENCES)
        }
    }
}
