use crate::output::Reporter;
use crate::EXIT_OK;
use ferry_run::contract::ContractOptions;
use ferry_run::Migration;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Go ahead: without it, contract says what it would do and exits 2.
    #[arg(long)]
    confirm: bool,
    /// Keep the source tables as they are: end a one-off copy that never switched, or keep them after the switch.
    #[arg(long)]
    keep_source: bool,
    /// Go ahead before the soak elapsed; the reason is recorded in the audit log.
    #[arg(long, value_name = "REASON")]
    skip_soak: Option<String>,
    /// Restore-check this backup of the source tables instead of taking one.
    #[arg(long, value_name = "FILE")]
    backup: Option<PathBuf>,
}

pub async fn run(spec_path: &Path, args: Args, cancel: ferry_run::Invocation) -> anyhow::Result<u8> {
    let spec = super::load_spec(spec_path)?;
    let migration = Migration::open_with(spec, true, cancel).await?;
    let options = ContractOptions {
        confirm: args.confirm,
        keep_source: args.keep_source,
        skip_soak: args.skip_soak,
        backup: args.backup,
    };
    let outcome = migration.contract(&Reporter::new(), &options).await?;
    if let Some(backup) = &outcome.backup {
        outln!("backup {} restored into a scratch database and matched the source", backup.display());
    }
    for note in &outcome.notes {
        outln!("{note}");
    }
    outln!("contract complete: the point of no return is passed; `ferry rollback` is refused from now on");
    Ok(EXIT_OK)
}
