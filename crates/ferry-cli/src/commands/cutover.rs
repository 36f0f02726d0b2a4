use crate::output::Reporter;
use crate::{EXIT_DIFFERENCES, EXIT_INTERRUPTED, EXIT_OK};
use ferry_run::cutover::CutoverOutcome;
use ferry_run::Migration;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Move every read back to the source now (flag file, /api/v1/flags and status).
    #[arg(long, conflicts_with = "next")]
    abort: bool,
    /// With `[cutover] advance = "manual"`: let the running ramp go on to its next stage.
    #[arg(long)]
    next: bool,
    /// After a rollback trigger: start the ramp again (a verification newer than the trigger must have passed).
    #[arg(long, conflicts_with_all = ["abort", "next"])]
    resume: bool,
    /// Record the differing values of shadow-read mismatches (status, dashboard); masked otherwise.
    #[arg(long, conflicts_with_all = ["abort", "next"])]
    show_values: bool,
    #[command(flatten)]
    http: super::serve::HttpArgs,
}

/// `ferry cutover`: the read ramp, in the foreground, replaying as it holds each stage.
pub async fn run(spec_path: &Path, args: Args, invocation: ferry_run::Invocation) -> anyhow::Result<u8> {
    if args.abort {
        return abort(spec_path, &invocation.operator).await;
    }
    if args.next {
        ferry_run::cutover::request_next(&super::load_spec_without_secrets(spec_path)?)?;
        outln!("the ramp goes on to its next stage once the current one has held");
        return Ok(EXIT_OK);
    }
    let spec = super::load_spec(spec_path)?;
    let _serving = super::serve::start(spec_path, &args.http).await?;
    let migration = Migration::open_with(spec, true, invocation).await?;
    let reporter = Reporter::new();
    let options = ferry_run::cutover::CutoverOptions { resume: args.resume, show_values: args.show_values };
    match migration.cutover(&reporter, options).await {
        Ok(CutoverOutcome::Completed) => {
            outln!("reads: 100 % to the target, held; `ferry switch` moves the writes");
            Ok(EXIT_OK)
        }
        Ok(CutoverOutcome::Triggered(trigger)) => {
            outln!("ROLLBACK TRIGGER: {trigger}; every read went back to the source");
            outln!("find the cause, run `ferry verify`, then `ferry cutover --resume` to start the ramp over");
            Ok(EXIT_DIFFERENCES)
        }
        Ok(CutoverOutcome::Withdrawn(state)) => {
            outln!("reads went back to the source while the ramp ran: the migration is {state}");
            Ok(EXIT_DIFFERENCES)
        }
        Err(e) if e.kind == ferry_run::RunErrorKind::Interrupted => {
            outln!("stopped as asked; reads stay where they are; `ferry cutover` goes on at this stage");
            Ok(EXIT_INTERRUPTED)
        }
        Err(e) => {
            if let Ok(flags) = ferry_run::cutover::flags(&migration.spec, &migration.state) {
                outln!("the ramp stopped on an error; reads: {} % to the target", flags.read_percent);
            }
            Err(e.into())
        }
    }
}

/// `ferry cutover --abort`: the state store first (what `/api/v1/flags` serves), the flag file, then `ferry_routing`.
async fn abort(spec_path: &Path, operator: &str) -> anyhow::Result<u8> {
    let spec = super::load_spec_without_secrets(spec_path)?;
    let flags = ferry_run::cutover::abort(&spec, operator)?;
    outln!("reads: {} % to the target; every read goes to the source", flags.read_percent);
    // The state store and the flag file say so already; the table needs the database.
    let spec = super::load_spec(spec_path)?;
    let base = spec.base_dir();
    let connected = async {
        let source = ferry_run::connect::open(&spec.source_url, &base, ferry_run::connect::Role::Source).await?;
        // The target has a row only once writes moved there; otherwise it need not answer.
        let target = if flags.writes_to_target {
            ferry_run::connect::open(&spec.target_url, &base, ferry_run::connect::Role::Target).await?
        } else {
            source.clone()
        };
        Ok::<_, ferry_run::RunError>((source, target))
    }
    .await;
    let (source, target) = connected.map_err(|e| {
        anyhow::anyhow!(
            "{e}; reads are at 0 % in the state store, /api/v1/flags and the flag file, but ferry_routing was \
             not rewritten: run `ferry cutover --abort` again once the database answers"
        )
    })?;
    ferry_run::cutover::publish_routing(&spec, &flags, &*source, &*target).await?;
    outln!("ferry_routing says so too");
    Ok(EXIT_OK)
}
