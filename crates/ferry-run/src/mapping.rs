//! From a `[[table]]` entry and the live source schema to a plan of what to
//! read, what to create and what to write.

use crate::error::{Result, RunError, RunErrorKind};
use ferry_core::schema::object_name;
use ferry_core::{ColumnDef, ColumnSource, DataType, ForeignKey, Spec, TableDef, TableName, TableSchema, TableSpec};
use ferry_engine::{Engine, ErrorKind, ReadSpec, SelectItem, WriteSpec};
use std::collections::BTreeMap;

/// One target column and where its value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetColumn {
    pub name: String,
    pub source: ColumnSource,
    /// The type Ferry wants (source type or the spec's override), as the target engine stores it.
    pub data_type: DataType,
    /// The type before the target engine's adjustments (what the spec or the source says).
    pub desired_type: DataType,
    /// The source column's own type and nullability; `None` for a computed column.
    pub source_type: Option<(DataType, String, bool)>,
    pub nullable: bool,
}

/// How strictly a spec is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `ferry run`: everything needed to copy must be there.
    Run,
    /// `ferry plan`: report what is missing (no key, same table) instead of failing.
    Plan,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TablePlan {
    pub spec: TableSpec,
    pub source_name: TableName,
    pub target_name: TableName,
    pub source: TableSchema,
    pub columns: Vec<TargetColumn>,
    /// Key columns, source names, in key order.
    pub key_source: Vec<String>,
    /// Key columns, target names, in key order.
    pub key_target: Vec<String>,
    /// What expand creates when the target table does not exist.
    pub def: TableDef,
    /// Source reads in target column order.
    pub read: ReadSpec,
    /// Foreign keys whose parent is not part of this migration (added nowhere, reported).
    pub skipped_foreign_keys: Vec<(ForeignKey, String)>,
    /// Source and target are the same table: an in-place change (expand/contract).
    pub in_place: bool,
}

impl TablePlan {
    pub fn target_display(&self) -> String {
        self.target_name.to_string()
    }

    /// Writes into the target, with the target's actual column types.
    pub fn write_spec(&self, target: &TableSchema) -> WriteSpec {
        WriteSpec {
            table: self.target_name.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| {
                    let t = target.column(&c.name).map(|t| t.data_type.clone()).unwrap_or_else(|| c.data_type.clone());
                    (c.name.clone(), t)
                })
                .collect(),
            key: self.key_target.clone(),
        }
    }

    /// Reads the target's copy in the same column order as `read`.
    pub fn target_read(&self) -> ReadSpec {
        ReadSpec {
            table: self.target_name.clone(),
            select: self.columns.iter().map(|c| SelectItem::Column(c.name.clone())).collect(),
            key: self.key_target.clone(),
            key_positions: self.read.key_positions.clone(),
            filter: None,
        }
    }
}

fn spec_error(spec: &Spec, table: &TableSpec, message: impl Into<String>, hint: impl Into<String>) -> RunError {
    RunError::new(RunErrorKind::Spec, format!("{}:{}: {}", spec.path.display(), table.line, message.into()))
        .with_hint(hint)
}

/// Resolves every table of the spec against the live source (and the target
/// engine's type capabilities).
pub async fn plan_tables(spec: &Spec, source: &dyn Engine, target: &dyn Engine, mode: Mode) -> Result<Vec<TablePlan>> {
    let mut plans = Vec::new();
    for table in &spec.tables {
        plans.push(plan_table(spec, table, source, target, mode).await?);
    }
    resolve_foreign_keys(&mut plans);
    Ok(plans)
}

async fn plan_table(
    spec: &Spec,
    table: &TableSpec,
    source_engine: &dyn Engine,
    target: &dyn Engine,
    mode: Mode,
) -> Result<TablePlan> {
    let source_name = TableName::parse(&table.from);
    let target_name = TableName::parse(&table.to);
    let in_place = source_engine.display_url() == target.display_url() && source_name == target_name;
    if in_place && mode == Mode::Run {
        return Err(spec_error(
            spec,
            table,
            format!("source and target are the same table: {} in {}", table.from, target.display_url()),
            "an in-place change (expand/contract) can be planned with `ferry plan` but not run yet; \
             to copy, give the copy another name with `to = \"...\"` or point [target] at another database",
        ));
    }
    let schema = source_engine.introspect(&source_name).await.map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            spec_error(
                spec,
                table,
                format!("source table `{}`: {}", table.from, e.message()),
                e.hint().unwrap_or("check `from`"),
            )
        } else {
            RunError::from(e).context(format_args!("source table {}", table.from))
        }
    })?;
    let column_list = || schema.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");

    for name in &table.exclude {
        if schema.column(name).is_none() {
            return Err(spec_error(
                spec,
                table,
                format!("`exclude` names `{name}`, which is not a column of {}", table.from),
                format!("columns of {}: {}", table.from, column_list()),
            ));
        }
    }
    for (target_col, source) in &table.columns {
        if let ColumnSource::Column { name, .. } = source {
            if schema.column(name).is_none() {
                return Err(spec_error(
                    spec,
                    table,
                    format!("`columns.{target_col}` reads `{name}`, which is not a column of {}", table.from),
                    format!("columns of {}: {}", table.from, column_list()),
                ));
            }
        }
    }

    // Source columns in their order, each renamed or overridden where the spec
    // says so; then computed columns in spec order.
    let overrides: BTreeMap<&str, &ColumnSource> = table.columns.iter().map(|(t, s)| (t.as_str(), s)).collect();
    let mut emitted: Vec<(String, ColumnSource)> = Vec::new();
    let mut used_overrides: Vec<&str> = Vec::new();
    for col in &schema.columns {
        if table.exclude.contains(&col.name) {
            continue;
        }
        if let Some(source) = overrides.get(col.name.as_str()) {
            emitted.push((col.name.clone(), (*source).clone()));
            used_overrides.push(col.name.as_str());
            continue;
        }
        let renamed = table
            .columns
            .iter()
            .find(|(t, s)| matches!(s, ColumnSource::Column { name, .. } if name == &col.name) && t != &col.name);
        match renamed {
            Some((t, s)) if !used_overrides.contains(&t.as_str()) => {
                emitted.push((t.clone(), s.clone()));
                used_overrides.push(t.as_str());
            }
            Some(_) => {}
            None => emitted.push((
                col.name.clone(),
                ColumnSource::Column { name: col.name.clone(), data_type: None, not_null: false },
            )),
        }
    }
    for (t, s) in &table.columns {
        if !used_overrides.contains(&t.as_str()) {
            emitted.push((t.clone(), s.clone()));
            used_overrides.push(t.as_str());
        }
    }

    let key_source = if table.key.is_empty() {
        match (schema.natural_key(), mode) {
            (Some(key), _) => Ok(key),
            // The plan reports the missing key as a finding (F007).
            (None, Mode::Plan) => Ok(Vec::new()),
            (None, Mode::Run) => Err(spec_error(
                spec,
                table,
                format!("table `{}` has no primary key and no unique key on NOT NULL columns", table.from),
                "Ferry copies and verifies rows by key: add `key = [\"col\", ...]` naming columns whose values are unique, \
                 or give the table a primary key",
            )),
        }?
    } else {
        for k in &table.key {
            if schema.column(k).is_none() {
                return Err(spec_error(
                    spec,
                    table,
                    format!("key column `{k}` is not a column of {}", table.from),
                    format!("columns of {}: {}", table.from, column_list()),
                ));
            }
        }
        table.key.clone()
    };
    let target_of = |source_col: &str| -> Option<String> {
        emitted
            .iter()
            .find(|(_, s)| matches!(s, ColumnSource::Column { name, .. } if name == source_col))
            .map(|(t, _)| t.clone())
    };
    let mut key_target = Vec::new();
    for k in &key_source {
        key_target.push(target_of(k).ok_or_else(|| {
            spec_error(
                spec,
                table,
                format!("key column `{k}` is not copied to the target"),
                "the key identifies rows on both sides: do not exclude it or replace it with a computed column",
            )
        })?);
    }

    let indexed: Vec<&String> = key_target.iter().collect();
    let mut columns = Vec::new();
    for (name, source) in &emitted {
        let (data_type, nullable) = match source {
            ColumnSource::Column { name: src, data_type, .. } => {
                let col = schema.column(src).expect("checked above");
                (data_type.clone().unwrap_or_else(|| col.data_type.clone()), col.nullable)
            }
            ColumnSource::Expr { sql, data_type, .. } => {
                let t = match data_type {
                    Some(t) => t.clone(),
                    None => source_engine
                        .expression_type(&source_name, sql)
                        .await
                        .map_err(|e| {
                            spec_error(
                                spec,
                                table,
                                format!("computed column `{name}`: {}", e.message()),
                                "check the expression's SQL",
                            )
                        })?
                        .ok_or_else(|| {
                            spec_error(
                                spec,
                                table,
                                format!(
                                    "computed column `{name}` needs a type: {} cannot tell an expression's type",
                                    source_engine.kind()
                                ),
                                format!("write {name} = {{ expr = \"{sql}\", type = \"text\" }} with the right type"),
                            )
                        })?,
                };
                (t, true)
            }
        };
        let in_key = indexed.contains(&name);
        let source_type = match source {
            ColumnSource::Column { name: src, .. } => {
                schema.column(src).map(|c| (c.data_type.clone(), c.native_type.clone(), c.nullable))
            }
            ColumnSource::Expr { .. } => None,
        };
        columns.push(TargetColumn {
            name: name.clone(),
            source: source.clone(),
            desired_type: data_type.clone(),
            data_type,
            source_type,
            nullable: nullable && !in_key && !source.not_null(),
        });
    }
    // Index and key columns may need a bounded type on some engines (MySQL text keys).
    let map_cols = |cols: &[String]| -> Option<Vec<String>> { cols.iter().map(|c| target_of(c)).collect() };
    let unique_keys: Vec<Vec<String>> =
        schema.unique_keys.iter().filter_map(|u| map_cols(&u.columns)).filter(|cols| cols != &key_target).collect();
    let indexes: Vec<Vec<String>> = schema.indexes.iter().filter_map(|i| map_cols(&i.columns)).collect();
    let in_any_index = |c: &String| {
        key_target.contains(c)
            || unique_keys.iter().flatten().any(|u| u == c)
            || indexes.iter().flatten().any(|u| u == c)
    };
    for col in &mut columns {
        col.data_type = target.storage_type(&col.data_type, in_any_index(&col.name));
    }

    let select: Vec<SelectItem> = columns
        .iter()
        .map(|c| match &c.source {
            ColumnSource::Column { name, .. } => SelectItem::Column(name.clone()),
            ColumnSource::Expr { sql, .. } => SelectItem::Expr(sql.clone()),
        })
        .collect();
    let key_positions =
        key_target.iter().map(|k| columns.iter().position(|c| &c.name == k).expect("key is a column")).collect();
    let read = ReadSpec {
        table: source_name.clone(),
        select,
        key: key_source.clone(),
        key_positions,
        filter: table.filter.clone(),
    };

    let def = TableDef {
        name: target_name.clone(),
        columns: columns
            .iter()
            .map(|c| ColumnDef { name: c.name.clone(), data_type: c.data_type.clone(), nullable: c.nullable })
            .collect(),
        primary_key: key_target.clone(),
        unique_keys,
        indexes,
        foreign_keys: Vec::new(),
    };
    Ok(TablePlan {
        spec: table.clone(),
        source_name,
        target_name,
        source: schema,
        columns,
        key_source,
        key_target,
        def,
        read,
        skipped_foreign_keys: Vec::new(),
        in_place,
    })
}

/// Where a source table and its plain columns went.
struct Moved {
    source: TableName,
    target: TableName,
    /// (source column, target column)
    columns: Vec<(String, String)>,
}

impl Moved {
    fn column(&self, source_column: &str) -> Option<String> {
        self.columns.iter().find(|(s, _)| s == source_column).map(|(_, t)| t.clone())
    }
}

/// Foreign keys between tables of the spec are re-pointed at the target names;
/// those to tables outside it are reported and left out.
fn resolve_foreign_keys(plans: &mut [TablePlan]) {
    let moved: Vec<Moved> = plans
        .iter()
        .map(|p| Moved {
            source: p.source_name.clone(),
            target: p.target_name.clone(),
            columns: p
                .columns
                .iter()
                .filter_map(|c| match &c.source {
                    ColumnSource::Column { name, .. } => Some((name.clone(), c.name.clone())),
                    _ => None,
                })
                .collect(),
        })
        .collect();
    for (plan, own) in plans.iter_mut().zip(&moved) {
        let mut fks = Vec::new();
        let mut skipped = Vec::new();
        for fk in &plan.source.foreign_keys {
            let columns: Option<Vec<String>> = fk.columns.iter().map(|c| own.column(c)).collect();
            let parent = moved.iter().find(|m| {
                m.source.name == fk.ref_table.name
                    && (fk.ref_table.schema.is_none() || m.source.schema == fk.ref_table.schema)
            });
            let Some(parent) = parent else {
                skipped.push((fk.clone(), format!("table {} is not part of this migration", fk.ref_table)));
                continue;
            };
            let Some(columns) = columns else {
                skipped.push((fk.clone(), "one of its columns is not copied".to_string()));
                continue;
            };
            match fk.ref_columns.iter().map(|c| parent.column(c)).collect::<Option<Vec<String>>>() {
                Some(ref_columns) => fks.push(ForeignKey {
                    name: object_name(&plan.target_name.name, &columns, "fkey"),
                    columns,
                    ref_table: parent.target.clone(),
                    ref_columns,
                }),
                None => skipped.push((fk.clone(), "a referenced column is not copied".to_string())),
            }
        }
        plan.def.foreign_keys = fks;
        plan.skipped_foreign_keys = skipped;
    }
}

/// Differences that make an existing target table unusable, one line each.
pub fn incompatibilities(plan: &TablePlan, existing: &TableSchema) -> Vec<String> {
    let mut out = Vec::new();
    for col in &plan.columns {
        match existing.column(&col.name) {
            None => out.push(format!("column `{}` is missing", col.name)),
            Some(actual) => {
                if actual.data_type != col.data_type && !ferry_core::types::widens_to(&col.data_type, &actual.data_type)
                {
                    out.push(format!(
                        "column `{}` is {} ({}) but the copy needs {}",
                        col.name, actual.data_type, actual.native_type, col.data_type
                    ));
                }
                if col.nullable && !actual.nullable {
                    out.push(format!("column `{}` is NOT NULL but the source has NULLs allowed", col.name));
                }
            }
        }
    }
    for actual in &existing.columns {
        let mapped = plan.columns.iter().any(|c| c.name == actual.name);
        if !mapped && !actual.nullable && actual.default.is_none() {
            out.push(format!("column `{}` is NOT NULL without a default and nothing is copied into it", actual.name));
        }
    }
    let key_ok =
        existing.primary_key == plan.key_target || existing.unique_keys.iter().any(|u| u.columns == plan.key_target);
    if !key_ok {
        out.push(format!(
            "no primary key or unique key on ({}) to upsert on (primary key is ({}))",
            plan.key_target.join(", "),
            existing.primary_key.join(", ")
        ));
    }
    out
}
