use crate::EXIT_OK;
use anyhow::{bail, Context};
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
    /// Where to write the spec.
    #[arg(long, short, default_value = "ferry.toml")]
    output: PathBuf,
    /// Overwrite the output if it exists.
    #[arg(long)]
    force: bool,
}

pub async fn run(args: Args) -> anyhow::Result<u8> {
    if args.output.exists() && !args.force {
        bail!(
            "{} already exists\n  help: pass --force to overwrite it, or --output another path",
            args.output.display()
        );
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let output_dir = match args.output.parent() {
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
    let text = render(&source_url, &target_url, &schemas, &source.display_url());
    std::fs::write(&args.output, text).with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!("wrote {} ({} table{})", args.output.display(), schemas.len(), if schemas.len() == 1 { "" } else { "s" });
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
    eprintln!("next: review it, then `ferry run --spec {}`", args.output.display());
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

fn render(source_url: &str, target_url: &str, schemas: &[TableSchema], source_display: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Migration spec written by `ferry init` from {source_display}.");
    let _ = writeln!(out, "# Reference: docs/spec.md. Secrets: write ${{ENV_VAR}} instead of a password.\n");
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
