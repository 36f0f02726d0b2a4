use crate::output::Reporter;
use crate::{EXIT_DIFFERENCES, EXIT_OK};
use anyhow::Context;
use ferry_plan::Severity;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Json,
    Both,
}

#[derive(clap::Args)]
pub struct Args {
    /// Directory to write plan.md and plan.json into.
    #[arg(long, short, default_value = ".")]
    output: PathBuf,
    /// Which files to write.
    #[arg(long, value_enum, default_value_t = Format::Both)]
    format: Format,
}

pub async fn run(spec_path: &Path, args: Args) -> anyhow::Result<u8> {
    let spec = super::load_spec(spec_path)?;
    let planned = ferry_run::assess::make_plan(spec, &Reporter::new()).await?;
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let mut written = Vec::new();
    if args.format != Format::Json {
        let path = args.output.join("plan.md");
        std::fs::write(&path, &planned.markdown).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    if args.format != Format::Md {
        let path = args.output.join("plan.json");
        std::fs::write(&path, &planned.json).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    let p = &planned.plan;
    let mp = &p.migration_plan;
    outln!("strategy   {}", mp.strategy.title());
    outln!(
        "risk       {:?}; expected downtime: {}; rollback: {}",
        mp.risk,
        mp.expected_downtime,
        mp.rollback_complexity.title()
    );
    let count = |s: Severity| p.lint.iter().filter(|f| f.severity == s).count();
    outln!(
        "findings   {} error(s), {} warning(s), {} info",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    );
    for f in p.lint.iter().filter(|f| f.severity >= Severity::Warning) {
        outln!("  {} {:<7} {}: {}", f.code, f.severity.label(), f.table, f.message);
    }
    if !mp.open_questions.is_empty() {
        let keys: Vec<&str> = mp.open_questions.iter().map(|q| q.key).collect();
        outln!("open       {} (answer them under [migration] before `ferry run`)", keys.join(", "));
    }
    for path in written {
        outln!("wrote      {}", path.display());
    }
    // CI can gate on the plan: an error finding is a change that will fail or lose data as written.
    Ok(if count(Severity::Error) > 0 { EXIT_DIFFERENCES } else { EXIT_OK })
}
