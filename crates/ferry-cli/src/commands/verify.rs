use crate::output::{print_checks, print_reports, Reporter};
use crate::{EXIT_DIFFERENCES, EXIT_OK};
use anyhow::Context;
use ferry_run::report::{self, ReportContext};
use ferry_run::{Migration, Verification, VerifyOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(clap::Args)]
pub struct Args {
    /// Re-copy the rows found different from the source, then look at them again.
    #[arg(long)]
    repair: bool,
    /// Start over instead of continuing a verification that was stopped.
    #[arg(long)]
    restart: bool,
    /// Directory to write integrity_report.md and integrity_report.json into.
    #[arg(long, short, default_value = ".")]
    output: PathBuf,
    #[command(flatten)]
    http: super::serve::HttpArgs,
}

pub async fn run(spec_path: &Path, args: Args, cancel: ferry_run::Invocation) -> anyhow::Result<u8> {
    let spec = super::load_spec(spec_path)?;
    let _serving = super::serve::start(spec_path, &args.http).await?;
    let reporter = Reporter::new();
    // A dropped connection or a restarting server: open again, go on from the
    // verification's checkpoint (a restart asked for is done once only).
    let connected = AtomicBool::new(false);
    let restart = AtomicBool::new(args.restart);
    let (migration, verification) = ferry_run::reconnect::surviving(&spec, &reporter, &connected, || async {
        // Read-only on both databases unless repairing: no lock, it may run beside `ferry run`.
        let migration = Migration::open_with(spec.clone(), args.repair, cancel.clone()).await?;
        connected.store(true, Ordering::Relaxed);
        let options = VerifyOptions { repair: args.repair, restart: restart.swap(false, Ordering::Relaxed) };
        let verification = migration.verify(&reporter, options).await?;
        Ok((migration, verification))
    })
    .await?;
    print_reports(&verification.tables);
    print_checks(&verification.checks);
    write_reports(&migration, &verification, &args.output)?;
    Ok(if verification.passed() { EXIT_OK } else { EXIT_DIFFERENCES })
}

/// Writes integrity_report.{md,json} into `dir`.
pub fn write_reports(migration: &Migration, verification: &Verification, dir: &Path) -> anyhow::Result<()> {
    let ctx = ReportContext {
        migration: migration.spec.migration.name.clone().unwrap_or_else(|| migration.spec.path.display().to_string()),
        source: migration.source.display_url(),
        target: migration.target.display_url(),
        shadow: match migration.spec.cutover {
            Some(_) => Some(ferry_run::shadow::status(&migration.state)?).filter(|s| s.compared > 0),
            None => None,
        },
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in [
        ("integrity_report.md", report::markdown(&ctx, verification)),
        ("integrity_report.json", report::json(&ctx, verification)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    outln!("{}", report::audit_line(verification));
    outln!("wrote {}", dir.join("integrity_report.md").display());
    Ok(())
}
