//! `ferry diff`: two tables on any two databases, no spec, no state.

use crate::compare::{order_is_shared, same_text_form, DiffOutcome, Side, TableDiff};
use crate::connect::{self, Role};
use crate::error::{Result, RunError, RunErrorKind};
use crate::progress::Progress;
use ferry_core::{Column, DataType, TableName, TableSchema};
use ferry_engine::{Engine, ErrorKind, ReadSpec, SelectItem};
use serde::Serialize;
use std::path::Path;

/// One side of a standalone comparison: `URL#table`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRef {
    pub url: String,
    pub table: TableName,
}

impl TableRef {
    pub fn parse(s: &str) -> Result<TableRef> {
        // A password may hold a `#`; the rest of the URL may not.
        let after_password = s.rfind('@').map_or(s, |at| &s[at..]);
        if after_password.matches('#').count() > 1 {
            return Err(RunError::new(
                RunErrorKind::Usage,
                format!("`{}` has more than one `#`: it names one table after the URL", hide_password(s)),
            )
            .with_hint("write URL#table, e.g. postgres://localhost/app#public.users"));
        }
        match s.rsplit_once('#') {
            Some((url, table)) if !url.is_empty() && !table.is_empty() => {
                Ok(TableRef { url: url.to_string(), table: TableName::parse(table) })
            }
            _ => Err(RunError::new(RunErrorKind::Spec, format!("`{}` does not name a table", hide_password(s)))
                .with_hint("write URL#table, e.g. postgres://localhost/app#public.users or data.db#users")),
        }
    }
}

fn hide_password(s: &str) -> String {
    ferry_core::spec::redact_for_message(s)
}

#[derive(Debug, Clone, Default)]
pub struct DiffRequest {
    /// Key columns; the source's primary key when empty.
    pub key: Vec<String>,
    /// Columns to compare; every column both tables have when empty.
    pub columns: Vec<String>,
    /// A condition in SQL, applied on both sides.
    pub filter: Option<String>,
    pub chunk_rows: usize,
    pub sample_size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub source: String,
    pub target: String,
    pub key: Vec<String>,
    pub columns: Vec<String>,
    /// Columns only one of the tables has (not compared).
    pub skipped_columns: Vec<String>,
    #[serde(skip)]
    pub outcome: DiffOutcome,
}

impl DiffReport {
    /// The report as `ferry diff --json` prints it.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Json<'a> {
            #[serde(flatten)]
            report: &'a DiffReport,
            #[serde(flatten)]
            outcome: crate::compare::DiffSummary<'a>,
        }
        serde_json::to_string_pretty(&Json { report: self, outcome: self.outcome.summary() }).unwrap_or_default()
    }
}

/// Compares `source` with `target`.
pub async fn diff_tables(
    source: &TableRef,
    target: &TableRef,
    request: &DiffRequest,
    progress: &dyn Progress,
) -> Result<DiffReport> {
    let here = Path::new(".");
    let (left, right) = tokio::try_join!(
        connect::open(&source.url, here, Role::Compared("first")),
        connect::open(&target.url, here, Role::Compared("second")),
    )?;
    diff_engines(&*left, &source.table, &*right, &target.table, request, progress).await
}

/// Compares `source_table` on `left` with `target_table` on `right`.
pub async fn diff_engines(
    left: &dyn Engine,
    source_table: &TableName,
    right: &dyn Engine,
    target_table: &TableName,
    request: &DiffRequest,
    progress: &dyn Progress,
) -> Result<DiffReport> {
    let source = TableRef { url: left.display_url(), table: source_table.clone() };
    let target = TableRef { url: right.display_url(), table: target_table.clone() };
    let (source, target) = (&source, &target);
    check_filter(request, [left, right])?;
    let (left_schema, right_schema) =
        tokio::try_join!(introspect(left, &source.table), introspect(right, &target.table))?;

    let key = key_of(request, &left_schema, &right_schema, source, target)?;
    let (pairs, skipped) = pair_columns(request, &key, (left, &left_schema, source), (right, &right_schema, target))?;
    let key_positions: Vec<usize> =
        key.iter().map(|k| pairs.iter().position(|(l, _)| l.name.eq_ignore_ascii_case(k)).unwrap_or(0)).collect();
    let read = |table: &TableName, names: Vec<String>| {
        let key: Vec<String> = key_positions.iter().map(|&i| names[i].clone()).collect();
        ReadSpec {
            table: table.clone(),
            select: names.iter().map(|n| SelectItem::Column(n.clone())).collect(),
            key,
            key_positions: key_positions.clone(),
            filter: request.filter.clone(),
        }
    };
    let left_read = read(&source.table, pairs.iter().map(|(l, _)| l.name.clone()).collect());
    let right_read = read(&target.table, pairs.iter().map(|(_, r)| r.name.clone()).collect());
    let types: Vec<DataType> = pairs.iter().map(|(_, r)| r.data_type.clone()).collect();
    let ordered_keys =
        key_positions.iter().all(|&i| order_is_shared(&pairs[i].0.data_type) && order_is_shared(&pairs[i].1.data_type));
    let in_database = left.kind() == right.kind()
        && left.capabilities().checksums_in_database
        && pairs.iter().all(|(l, r)| same_text_form(&l.data_type, &r.data_type));
    let task = format!("diff {}", target.table);
    progress.task_started(&task, left_schema.stats.row_estimate, 0);
    let names: Vec<String> = pairs.iter().map(|(l, _)| l.name.clone()).collect();
    let diff = TableDiff {
        source: Side { engine: left, read: left_read },
        target: Side { engine: right, read: right_read },
        types,
        key_names: key.clone(),
        names: names.clone(),
        ordered_keys,
        in_database,
        chunk_rows: request.chunk_rows.max(1),
        row_estimate: left_schema.stats.row_estimate,
        sample_size: request.sample_size,
        progress,
        task: task.clone(),
    };
    let outcome = diff.run(None, &mut |_| Ok(())).await?;
    progress.task_finished(&task);
    Ok(DiffReport {
        source: format!("{}#{}", left.display_url(), source.table),
        target: format!("{}#{}", right.display_url(), target.table),
        key,
        columns: names,
        skipped_columns: skipped,
        outcome,
    })
}

/// `--where` is one piece of SQL both engines accept.
fn check_filter(request: &DiffRequest, engines: [&dyn Engine; 2]) -> Result<()> {
    if let Some(filter) = &request.filter {
        for engine in engines {
            let name = engine.kind();
            ferry_core::usersql::validate(filter, ferry_core::usersql::Fragment::Filter, name).map_err(|why| {
                RunError::new(RunErrorKind::Usage, format!("--where {why}"))
                    .with_hint("write the condition as one piece of SQL with no comment and no `;`")
            })?;
        }
    }
    Ok(())
}

/// The key the rows pair up by: `--key`, or the first table's own (or the second's).
fn key_of(
    request: &DiffRequest,
    left_schema: &TableSchema,
    right_schema: &TableSchema,
    source: &TableRef,
    target: &TableRef,
) -> Result<Vec<String>> {
    Ok(if request.key.is_empty() {
        left_schema.natural_key().or_else(|| right_schema.natural_key()).ok_or_else(|| {
            RunError::new(
                RunErrorKind::Spec,
                format!("neither {} nor {} has a primary key or a NOT NULL unique key", source.table, target.table),
            )
            .with_hint("name the columns that identify a row with --key COL[,COL...]")
        })?
    } else {
        request.key.clone()
    })
}

/// A column of the left table and the right table's column of the same name.
type ColumnPair = (Column, Column);

/// One side of a comparison: its engine, its table's schema and how it was named.
type SideOf<'a> = (&'a dyn Engine, &'a TableSchema, &'a TableRef);

/// The columns compared, paired by name (the key's first), and the columns
/// only one side has, skipped when `--columns` does not name them.
fn pair_columns(
    request: &DiffRequest,
    key: &[String],
    (left, left_schema, source): SideOf,
    (right, right_schema, target): SideOf,
) -> Result<(Vec<ColumnPair>, Vec<String>)> {
    // Columns pair up by name; a differing case is forgiven (PostgreSQL folds, MySQL keeps).
    let find = |schema: &TableSchema, name: &str| {
        schema.column(name).or_else(|| schema.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))).cloned()
    };
    let mut skipped = Vec::new();
    // The key columns always take part, so that a key one table lacks is an
    // error here rather than a wrong comparison later.
    let mut wanted: Vec<String> = key.to_vec();
    if request.columns.is_empty() {
        wanted.extend(left_schema.columns.iter().map(|c| c.name.clone()).filter(|c| !key.contains(c)));
    } else {
        wanted.extend(request.columns.iter().filter(|c| !key.contains(c)).cloned());
    }
    let mut pairs = Vec::new();
    for name in &wanted {
        match (find(left_schema, name), find(right_schema, name)) {
            (Some(l), Some(r)) => pairs.push((l, r)),
            (l, _) if request.columns.is_empty() && !key.contains(name) && l.is_some() => skipped.push(name.clone()),
            (l, _) => {
                let (table, url) = if l.is_none() { (source, left) } else { (target, right) };
                return Err(RunError::new(
                    RunErrorKind::Spec,
                    format!("column `{name}` is not in {} on {}", table.table, url.display_url()),
                )
                .with_hint("check --key and --columns against both tables"));
            }
        }
    }
    for c in &right_schema.columns {
        if find(left_schema, &c.name).is_none() && request.columns.is_empty() {
            skipped.push(c.name.clone());
        }
    }
    Ok((pairs, skipped))
}

async fn introspect(engine: &dyn Engine, table: &TableName) -> Result<TableSchema> {
    engine.introspect(table).await.map_err(|e| {
        let not_found = e.kind() == ErrorKind::NotFound;
        let err = RunError::from(e);
        if not_found {
            err.with_hint(format!("check the table name after `#` and that it exists on {}", engine.display_url()))
        } else {
            err
        }
    })
}
