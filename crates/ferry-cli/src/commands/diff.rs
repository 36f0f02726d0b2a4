use crate::output::{print_outcome, Reporter};
use crate::{EXIT_DIFFERENCES, EXIT_OK};
use ferry_run::diff::{diff_tables, DiffRequest, TableRef};

#[derive(clap::Args)]
pub struct Args {
    /// The first table (the source): URL#table, e.g. postgres://host/db#public.users or app.db#users.
    source: String,
    /// The second table (the target), in the same form.
    target: String,
    /// Columns that identify a row (default: the first table's primary key).
    #[arg(long, value_delimiter = ',')]
    key: Vec<String>,
    /// Columns to compare (default: every column both tables have).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Compare only rows matching this SQL condition (applied on both sides, in each one's dialect).
    #[arg(long = "where")]
    filter: Option<String>,
    /// Source rows per chunk: a chunk whose checksums differ is cut down to its rows.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    chunk_rows: u64,
    /// Random rows compared column by column, reported on their own.
    #[arg(long, default_value_t = 1000)]
    sample: usize,
    /// Print the whole result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<u8> {
    let source = TableRef::parse(&args.source)?;
    let target = TableRef::parse(&args.target)?;
    let request = DiffRequest {
        key: args.key,
        columns: args.columns,
        filter: args.filter,
        chunk_rows: args.chunk_rows as usize,
        sample_size: args.sample,
    };
    let report = if args.json {
        diff_tables(&source, &target, &request, &ferry_run::Silent).await?
    } else {
        diff_tables(&source, &target, &request, &Reporter::new()).await?
    };
    if args.json {
        outln!("{}", report.to_json());
    } else {
        outln!("{} -> {}", report.source, report.target);
        outln!("  key {}; {} columns compared", report.key.join(", "), report.columns.len());
        if !report.skipped_columns.is_empty() {
            outln!("  not compared (only one table has them): {}", report.skipped_columns.join(", "));
        }
        print_outcome(&report.outcome);
    }
    let identical = report.outcome.identical() && report.outcome.sample_mismatches == 0;
    Ok(if identical { EXIT_OK } else { EXIT_DIFFERENCES })
}
