use crate::output::{print_reports, Reporter};
use crate::{EXIT_DIFFERENCES, EXIT_OK};
use anyhow::Context;
use ferry_core::audit::format_duration;
use ferry_run::demo::{create_source, spec_text, DEFAULT_SESSIONS, DEFAULT_USERS};
use ferry_run::Migration;
use indicatif::HumanCount;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Work in this directory (created; must be empty) and keep it afterwards.
    /// Without it, a temporary directory is used and removed.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Users in the generated source.
    #[arg(long, default_value_t = DEFAULT_USERS)]
    users: u64,
    /// Sessions in the generated source.
    #[arg(long, default_value_t = DEFAULT_SESSIONS)]
    sessions: u64,
    /// Serve the dashboard while the demo runs, and afterwards until Ctrl-C.
    #[command(flatten)]
    http: super::serve::HttpArgs,
}

pub async fn run(args: Args, cancel: ferry_run::Invocation) -> anyhow::Result<u8> {
    let started = Instant::now();
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            if std::fs::read_dir(dir)?.next().is_some() {
                return Err(ferry_run::RunError::new(
                    ferry_run::RunErrorKind::Usage,
                    format!("{} is not empty", dir.display()),
                )
                .with_hint("give `--dir` a new or empty directory")
                .into());
            }
            dir.clone()
        }
        None => {
            temp =
                tempfile::Builder::new().prefix("ferry-demo-").tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    outln!("Ferry demo: SQLite -> SQLite in {}", dir.display());

    let source_db = dir.join("source.db");
    let build = Instant::now();
    {
        let (users, sessions) = (args.users, args.sessions);
        let path = source_db.clone();
        tokio::task::spawn_blocking(move || create_source(&path, users, sessions)).await??;
    }
    outln!(
        "  source: {} users and {} sessions, every common type, NULLs and unicode (built in {})",
        HumanCount(args.users),
        HumanCount(args.sessions),
        format_duration(build.elapsed())
    );
    let spec_path = dir.join("ferry.toml");
    std::fs::write(&spec_path, spec_text(ferry_core::spec::DEFAULT_BATCH_SIZE))?;
    outln!("  spec:   {} (renames users.full_name to display_name, computes email_domain)", spec_path.display());

    let spec = super::load_spec(&spec_path)?;
    let serving = super::serve::start(&spec_path, &args.http).await?;
    let stop = cancel.cancel.clone();
    let migration = Migration::open_with(spec, true, cancel).await?;
    let outcome = migration.run(None, &Reporter::new()).await?;
    drop(migration);

    print_reports(&outcome.verification);
    let rows: u64 = outcome.tables.iter().map(|t| t.rows_total).sum();
    let rate = rows as f64 / outcome.backfill_seconds.max(0.001);
    let sampled: u64 = outcome.verification.iter().map(|r| r.sample_size).sum();
    outln!();
    outln!("  rows copied   {}", HumanCount(rows));
    outln!(
        "  backfill      {} ({} rows/s)",
        format_duration(Duration::from_secs_f64(outcome.backfill_seconds)),
        HumanCount(rate as u64)
    );
    outln!(
        "  verification  {}: counts and checksums of every row, {} sampled rows compared column by column",
        if outcome.verified() { "passed" } else { "FAILED" },
        HumanCount(sampled)
    );
    outln!("  total time    {}", format_duration(started.elapsed()));
    if serving.is_some() {
        outln!("  dashboard     stays up until Ctrl-C");
        super::serve::stopped(&stop).await;
        drop(serving);
    }
    if args.dir.is_some() {
        outln!("  kept in       {} (try: ferry status --spec {})", dir.display(), spec_path.display());
    } else {
        outln!("  files         removed; `ferry demo --dir DIR` keeps them to look at");
    }
    Ok(if outcome.verified() { EXIT_OK } else { EXIT_DIFFERENCES })
}
