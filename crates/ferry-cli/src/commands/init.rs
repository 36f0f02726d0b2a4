use crate::EXIT_OK;
use anyhow::Context;
use ferry_core::{TableName, TableSchema};
use ferry_engine::DatabaseUrl;
use ferry_run::connect::{open, Role};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Source database URL (sqlite:PATH, postgres://..., mysql://...).
    #[arg(long)]
    source: String,
    /// Target database URL.
    #[arg(long)]
    target: String,
    /// A source table to move (repeat for several).
    #[arg(long = "table", required = true)]
    tables: Vec<String>,
    /// Where to write the spec (default: the global --spec, ferry.toml).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Overwrite the output if it exists.
    #[arg(long)]
    force: bool,
    /// Accepted downtime: "0s" for none, or a window such as "15m", "2h".
    #[arg(long)]
    downtime: Option<String>,
    /// Rollback requirement: "lossless" or "loss-accepted-after-switch".
    #[arg(long)]
    rollback: Option<String>,
    /// Who owns the migration and signs off each phase.
    #[arg(long)]
    owner: Option<String>,
}

/// The `[migration]` answers, from flags, from a prompt on a terminal, or left open.
struct Answers {
    downtime: Option<String>,
    rollback: Option<String>,
    owner: Option<String>,
}

fn validate_downtime(s: &str) -> Result<String, String> {
    ferry_core::spec::parse_duration(s)
        .map(|_| s.trim().to_string())
        .ok_or_else(|| format!("`{s}` is not a duration; write \"0s\" for zero downtime, or e.g. \"15m\", \"2h\""))
}

fn validate_rollback(s: &str) -> Result<String, String> {
    match s.trim() {
        "lossless" | "loss-accepted-after-switch" => Ok(s.trim().to_string()),
        other => {
            Err(format!("`{other}` is not a rollback requirement; use \"lossless\" or \"loss-accepted-after-switch\""))
        }
    }
}

fn ask(question: &str, validate: impl Fn(&str) -> Result<String, String>) -> anyhow::Result<Option<String>> {
    use std::io::{BufRead, Write};
    loop {
        eprint!("{question} (Enter to leave open): ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok(None);
        }
        match validate(&line) {
            Ok(v) => return Ok(Some(v)),
            Err(e) => eprintln!("  {e}"),
        }
    }
}

fn answers(args: &Args) -> anyhow::Result<Answers> {
    use std::io::IsTerminal;
    let check = |v: &Option<String>, f: fn(&str) -> Result<String, String>| -> anyhow::Result<Option<String>> {
        v.as_deref().map(f).transpose().map_err(|e| ferry_run::RunError::new(ferry_run::RunErrorKind::Usage, e).into())
    };
    let mut a = Answers {
        downtime: check(&args.downtime, validate_downtime)?,
        rollback: check(&args.rollback, validate_rollback)?,
        owner: args.owner.clone().filter(|o| !o.trim().is_empty()),
    };
    if std::io::stdin().is_terminal() {
        if a.downtime.is_none() {
            a.downtime = ask("Accepted downtime? \"0s\" for none, or a window like \"15m\"", validate_downtime)?;
        }
        if a.rollback.is_none() {
            a.rollback = ask("Rollback: \"lossless\" or \"loss-accepted-after-switch\"?", validate_rollback)?;
        }
        if a.owner.is_none() {
            a.owner = ask("Owner (who signs off each phase)?", |s| Ok(s.trim().to_string()))?;
        }
    }
    Ok(a)
}

pub async fn run(args: Args, spec_path: &Path) -> anyhow::Result<u8> {
    let output = args.output.clone().unwrap_or_else(|| spec_path.to_path_buf());
    if output.exists() && !args.force {
        return Err(ferry_run::RunError::new(
            ferry_run::RunErrorKind::Usage,
            format!("{} already exists", output.display()),
        )
        .with_hint("pass --force to overwrite it, or --output another path")
        .into());
    }
    let answers = answers(&args)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let output_dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let source = open(&args.source, &cwd, Role::Source).await?;
    let mut schemas = Vec::new();
    for name in &args.tables {
        schemas.push(source.introspect(&TableName::parse(name)).await.with_context(|| format!("source table {name}"))?);
    }
    let (source_url, source_secret) = for_spec(&args.source, "FERRY_SOURCE_PASSWORD", &cwd, &output_dir)?;
    let (target_url, target_secret) = for_spec(&args.target, "FERRY_TARGET_PASSWORD", &cwd, &output_dir)?;
    let text = render(&answers, &source_url, &target_url, &schemas, &source.display_url());
    std::fs::write(&output, text).with_context(|| format!("writing {}", output.display()))?;
    eprintln!("wrote {} ({} table{})", output.display(), schemas.len(), if schemas.len() == 1 { "" } else { "s" });
    for var in [source_secret, target_secret].into_iter().flatten() {
        eprintln!("note: the password is not written to the file; export {var}=... before `ferry run`");
    }
    for s in &schemas {
        if s.natural_key().is_none() {
            eprintln!(
                "warning: {} has no primary key or unique NOT NULL key; set `key = [...]` in its [[table]] entry",
                s.name
            );
        }
    }
    if answers.downtime.is_none() || answers.rollback.is_none() || answers.owner.is_none() {
        eprintln!("note: [migration] has open questions (commented out in the file); `ferry run` waits until they are answered");
    }
    eprintln!("next: review it, `ferry plan`, then `ferry run --spec {}`", output.display());
    Ok(EXIT_OK)
}

/// The URL as it goes into the file: the password replaced by `${VAR}`, and a
/// relative SQLite path made relative to the spec's directory.
fn for_spec(url: &str, password_var: &str, cwd: &Path, output_dir: &Path) -> anyhow::Result<(String, Option<String>)> {
    match DatabaseUrl::parse(url, cwd)? {
        DatabaseUrl::Sqlite(path) => {
            let absolute_output = cwd.join(output_dir);
            let shown = match path.strip_prefix(&absolute_output) {
                Ok(rel) => rel.to_path_buf(),
                Err(_) => path,
            };
            Ok((format!("sqlite:{}", shown.display()), None))
        }
        DatabaseUrl::Postgres(mut u) | DatabaseUrl::Mysql(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("PASSWORD_PLACEHOLDER"));
                let text = u.as_str().replace("PASSWORD_PLACEHOLDER", &format!("${{{password_var}}}"));
                // mariadb:// is kept as the user wrote it.
                let text =
                    if url.starts_with("mariadb://") { text.replacen("mysql://", "mariadb://", 1) } else { text };
                Ok((text, Some(password_var.to_string())))
            } else {
                Ok((url.to_string(), None))
            }
        }
    }
}

fn render(
    answers: &Answers,
    source_url: &str,
    target_url: &str,
    schemas: &[TableSchema],
    source_display: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Migration spec written by `ferry init` from {source_display}.");
    let _ = writeln!(out, "# Reference: docs/spec.md. Secrets: write ${{ENV_VAR}} instead of a password.\n");
    let _ = writeln!(out, "[migration]");
    let line = |out: &mut String, key: &str, value: &Option<String>, open: &str| {
        let _ = match value {
            Some(v) => writeln!(out, "{key} = {}", toml_string(v)),
            None => writeln!(out, "# {key} = {open}   # OPEN QUESTION: answer it before `ferry run`"),
        };
    };
    line(&mut out, "downtime", &answers.downtime, "\"0s\"  (zero downtime) or a window such as \"15m\"");
    line(&mut out, "rollback", &answers.rollback, "\"lossless\" or \"loss-accepted-after-switch\"");
    line(&mut out, "owner", &answers.owner, "\"name@example.com\"");
    let _ = writeln!(out, "# when = \"2026-12-01 22:00 UTC\"\n");
    let _ = writeln!(out, "[source]\nurl = {}\n", toml_string(source_url));
    let _ = writeln!(out, "[target]\nurl = {}\n", toml_string(target_url));
    let _ = writeln!(out, "[policy]\nbatch_size = {}", ferry_core::spec::DEFAULT_BATCH_SIZE);
    let _ = writeln!(out, "# batch_pause = \"0ms\"            # sleep between batches to spare production");
    let _ = writeln!(
        out,
        "# sample_size = {}              # rows compared column by column in verify",
        ferry_core::spec::DEFAULT_SAMPLE_SIZE
    );
    let _ = writeln!(out, "# on_conversion_error = \"stop\"  # or \"quarantine\"");
    for s in schemas {
        let _ = writeln!(out, "\n[[table]]\nfrom = {}", toml_string(&s.name.to_string()));
        let _ = writeln!(out, "# to = {}", toml_string(&s.name.to_string()));
        match s.natural_key() {
            Some(key) if key == s.primary_key => {
                let _ = writeln!(out, "# key = {}   # the primary key", toml_list(&key));
            }
            Some(key) => {
                let _ = writeln!(out, "key = {}   # a unique key (the table has no primary key)", toml_list(&key));
            }
            None => {
                let _ = writeln!(out, "# key = [\"...\"]   # REQUIRED: the table has no primary or unique key");
            }
        }
        let _ = writeln!(out, "# filter = \"...\"   # copy only matching rows (source SQL)");
        let estimate = s.stats.row_estimate.map(|r| format!(", about {r} rows")).unwrap_or_default();
        let _ = writeln!(out, "# {} columns{estimate}:", s.columns.len());
        let width = s.columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &s.columns {
            let _ = writeln!(
                out,
                "#   {:<width$}  {} -> {}{}",
                c.name,
                c.native_type,
                c.data_type,
                if c.nullable { "" } else { ", not null" }
            );
        }
        let _ = writeln!(out, "# [table.columns]");
        let _ = writeln!(out, "# new_name = \"old_name\"                                  # rename");
        let _ = writeln!(
            out,
            "# computed = {{ expr = \"lower(email)\", type = \"text\" }}   # computed, in the source's SQL"
        );
        let _ = writeln!(out, "# amount = {{ type = \"numeric(12,2)\" }}                   # type override");
    }
    out
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| toml_string(i)).collect::<Vec<_>>().join(", "))
}
