//! `ferry`: plan and run zero-downtime data migrations between SQLite,
//! PostgreSQL and MySQL/MariaDB.
//!
//! Exit codes: 0 success; 1 verification found differences (or the plan an
//! error finding, or the rehearsal failed); 2 error (bad
//! input, unreachable database, a value that cannot be converted...);
//! 130 interrupted.

/// `println!` that ends the process quietly when stdout is a closed pipe
/// (`ferry status | head -1`), as Unix tools do, instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::output::stdout_failed(e);
        }
    }};
}

mod commands;
mod output;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

// Copying and comparing allocate a few small values per row from several
// threads; glibc's allocator spent a quarter of `ferry diff`'s time there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub const EXIT_OK: u8 = 0;
pub const EXIT_DIFFERENCES: u8 = 1;
pub const EXIT_ERROR: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Zero-downtime data migrations between SQLite, PostgreSQL and MySQL/MariaDB"
)]
struct Cli {
    /// The migration spec.
    #[arg(long, global = true, default_value = "ferry.toml", env = "FERRY_SPEC")]
    spec: PathBuf,

    /// Who runs this command, for the audit log (default: the OS user).
    #[arg(long, global = true, env = "FERRY_OPERATOR")]
    operator: Option<String>,

    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a spec from live introspection of the source.
    Init(commands::init::Args),
    /// Assess the live databases and write the plan: plan.md and plan.json.
    Plan(commands::plan::Args),
    /// Expand, backfill and verify; resumes wherever an earlier run stopped.
    Run(commands::run::Args),
    /// Replay captured changes into the target until it has caught up (or, with --follow, until stopped).
    Sync {
        /// Keep replaying until Ctrl-C or SIGTERM.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        http: commands::serve::HttpArgs,
    },
    /// Compare source and target (chunk checksums down to rows, a random sample), check the
    /// target's integrity, write integrity_report.md and .json.
    Verify(commands::verify::Args),
    /// Compare two tables on any two databases (no spec, no state): which rows and columns differ.
    Diff(commands::diff::Args),
    /// The read ramp: move reads to the target stage by stage ([cutover] stages, 1 -> 10 -> 50 -> 100 %),
    /// holding each while replaying changes and watching replay lag; published as flags.
    Cutover(commands::cutover::Args),
    /// Move writes to the target: fence the source, replay what is left, then
    /// keep the source current by reverse sync (gated by a recent verification and a small lag).
    Switch {
        /// Keep replaying the target's changes into the source until Ctrl-C or SIGTERM.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        http: commands::serve::HttpArgs,
    },
    /// Rehearse the rollback: the whole lifecycle through a switch and back, on scratch copies of
    /// the first rows of each table in scratch databases beside the real ones; records the result.
    Rehearse(commands::rehearse::Args),
    /// The point of no return: after the soak, a final verification and a restore-checked backup,
    /// archive the source tables and remove every Ferry object.
    Contract(commands::contract::Args),
    /// Undo the migration before contract: after a switch, move writes back to the source first
    /// (nothing written on the target is lost); then remove capture and what expand created.
    Rollback {
        /// Keep the target tables and their rows (Ferry's capture and fences on them are still removed).
        #[arg(long)]
        keep_target: bool,
    },
    /// Ask a running backfill or sync to wait before its next batch.
    Pause {
        /// Why, for `ferry status` and the audit log.
        #[arg(long, default_value = "paused by an operator")]
        reason: String,
    },
    /// Let a paused backfill or sync go on.
    Resume,
    /// The audit log: `ferry audit verify` recomputes its hash chain.
    Audit {
        #[command(subcommand)]
        action: commands::status::AuditAction,
    },
    /// Phase, per-table progress, last checkpoint, verification, and whether a runner is alive (from the state store).
    Status {
        /// Print the status as JSON (see docs/status-json.md).
        #[arg(long)]
        json: bool,
    },
    /// Serve the migration's dashboard, its JSON API (/api/v1) and Prometheus metrics (/metrics)
    /// from the state store, until Ctrl-C or SIGTERM.
    Serve(commands::serve::Args),
    /// The whole journey on embedded SQLite: build a source, migrate it, verify it.
    Demo(commands::demo::Args),
}

impl Command {
    /// Its name, as the runner's heartbeat shows it.
    fn name(&self) -> &'static str {
        match self {
            Command::Init(_) => "init",
            Command::Plan(_) => "plan",
            Command::Run(_) => "run",
            Command::Sync { .. } => "sync",
            Command::Verify(_) => "verify",
            Command::Diff(_) => "diff",
            Command::Cutover(_) => "cutover",
            Command::Switch { .. } => "switch",
            Command::Rehearse(_) => "rehearse",
            Command::Contract(_) => "contract",
            Command::Rollback { .. } => "rollback",
            Command::Pause { .. } => "pause",
            Command::Resume => "resume",
            Command::Audit { .. } => "audit",
            Command::Status { .. } => "status",
            Command::Serve(_) => "serve",
            Command::Demo(_) => "demo",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    // Colours only on a terminal: a redirected log stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let invocation = ferry_run::Invocation {
        cancel: ferry_run::Cancel::default(),
        operator: cli.operator.clone().filter(|o| !o.trim().is_empty()).unwrap_or_else(ferry_run::operator_from_env),
        command: cli.command.name().to_string(),
    };
    let cancel = invocation.cancel.clone();
    let code = runtime.block_on(async {
        let work = dispatch(cli, invocation);
        tokio::pin!(work);
        // The first signal asks the work to stop at its next batch boundary;
        // a second one stops at once (the state store has recorded every batch).
        tokio::select! {
            code = &mut work => return code,
            _ = shutdown_signal() => {
                eprintln!("\nstopping at the next batch boundary (again to stop at once)");
                cancel.request();
            }
        }
        tokio::select! {
            code = &mut work => code,
            _ = shutdown_signal() => {
                eprintln!("\ninterrupted: everything up to the last checkpoint is recorded; run the same command again to resume");
                EXIT_INTERRUPTED
            }
        }
    });
    // Don't wait for driver tasks still winding down.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

async fn dispatch(cli: Cli, cancel: ferry_run::Invocation) -> u8 {
    let result = match cli.command {
        Command::Init(args) => commands::init::run(args, &cli.spec).await,
        Command::Plan(args) => commands::plan::run(&cli.spec, args).await,
        Command::Run(args) => commands::run::run(&cli.spec, args, cancel).await,
        Command::Verify(args) => commands::verify::run(&cli.spec, args, cancel).await,
        Command::Diff(args) => commands::diff::run(args).await,
        Command::Sync { follow, http } => commands::run::sync(&cli.spec, follow, &http, cancel).await,
        Command::Cutover(args) => commands::cutover::run(&cli.spec, args, cancel).await,
        Command::Switch { follow, http } => commands::run::switch(&cli.spec, follow, &http, cancel).await,
        Command::Rehearse(args) => commands::rehearse::run(&cli.spec, args, cancel).await,
        Command::Contract(args) => commands::contract::run(&cli.spec, args, cancel).await,
        Command::Rollback { keep_target } => commands::run::rollback(&cli.spec, keep_target, cancel).await,
        Command::Pause { reason } => commands::status::pause(&cli.spec, Some(&reason)),
        Command::Resume => commands::status::pause(&cli.spec, None),
        Command::Status { json } => commands::status::run(&cli.spec, json),
        Command::Audit { action } => commands::status::audit(&cli.spec, action),
        Command::Serve(args) => commands::serve::run(&cli.spec, args, cancel).await,
        Command::Demo(args) => commands::demo::run(args, cancel).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&e);
            let interrupted =
                e.downcast_ref::<ferry_run::RunError>().is_some_and(|r| r.kind == ferry_run::RunErrorKind::Interrupted);
            if interrupted {
                EXIT_INTERRUPTED
            } else {
                EXIT_ERROR
            }
        }
    }
}
