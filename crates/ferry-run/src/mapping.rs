//! From a `[[table]]` entry and the live source schema to a plan of what to
//! read, what to create and what to write.

use crate::error::{Result, RunError, RunErrorKind};
use crate::schema_map::{foreign_key_actions, PlannedColumn, Translator};
use ferry_core::schema::object_name;
use ferry_core::{ColumnDef, ColumnSource, DataType, ForeignKey, Spec, TableDef, TableName, TableSchema, TableSpec};
use ferry_engine::{Engine, ErrorKind, ReadSpec, SchemaSupport, SelectItem, WriteSpec};
use ferry_plan::{SchemaItem, SchemaItemKind, SchemaProblem, SchemaProblemClass};
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
    /// A contract resumed: as `Run`, but a source table it already archived
    /// (renamed or dropped) is planned by its names alone.
    Contract,
    /// As `Run`, after an in-place expand: the columns it added to the
    /// source are the change's own, not columns the table had.
    Expanded,
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
    /// Defaults, identity, collations, generated columns, checks, indexes,
    /// foreign keys and comments: as the source has them, and as `def` creates them.
    pub schema_items: Vec<SchemaItem>,
}

impl TablePlan {
    /// Where a table's read errors come from: the side and the spec's `[[table]]` entry.
    pub fn origin(&self) -> String {
        format!("source table {} (the [[table]] at spec line {})", self.source_name, self.spec.line)
    }

    /// A table whose source a resumed contract already archived: its names, nothing to copy.
    fn archived(table: &TableSpec, source_name: TableName) -> TablePlan {
        let target_name = TableName::parse(&table.to);
        TablePlan {
            spec: table.clone(),
            source: TableSchema {
                name: source_name.clone(),
                columns: Vec::new(),
                primary_key: Vec::new(),
                unique_keys: Vec::new(),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                checks: Vec::new(),
                expression_indexes: Vec::new(),
                comment: None,
                stats: Default::default(),
            },
            columns: Vec::new(),
            key_source: Vec::new(),
            key_target: Vec::new(),
            def: TableDef::new(target_name.clone(), Vec::new(), Vec::new()),
            read: ReadSpec {
                table: source_name.clone(),
                select: Vec::new(),
                key: Vec::new(),
                key_positions: Vec::new(),
                filter: None,
            },
            source_name,
            target_name,
            skipped_foreign_keys: Vec::new(),
            in_place: false,
            schema_items: Vec::new(),
        }
    }

    /// The columns as the plan's facts describe them (nothing measured).
    pub fn column_facts(&self) -> Vec<ferry_plan::ColumnFacts> {
        self.columns
            .iter()
            .map(|c| {
                let (source_column, expression) = match &c.source {
                    ColumnSource::Column { name, .. } => (Some(name.clone()), None),
                    ColumnSource::Expr { sql, .. } => (None, Some(sql.clone())),
                };
                let (source_type, source_native, source_nullable) = match &c.source_type {
                    Some((t, n, null)) => (Some(t.clone()), Some(n.clone()), *null),
                    None => (None, None, true),
                };
                ferry_plan::ColumnFacts {
                    name: c.name.clone(),
                    assumed_zone: source_column
                        .as_ref()
                        .and_then(|col| self.spec.translate.get(&format!("{col}.zone")).cloned()),
                    source_column,
                    expression,
                    source_type,
                    source_native,
                    source_nullable,
                    desired: c.desired_type.clone(),
                    planned: c.data_type.clone(),
                    nullable: c.nullable,
                    null_rows: None,
                    zero_dates: None,
                    up: self.spec.conversions.get(&c.name).and_then(|v| v.up.clone()),
                    down: self.spec.conversions.get(&c.name).and_then(|v| v.down.clone()),
                }
            })
            .collect()
    }

    /// Source columns the plan does not carry over (generated ones the target computes itself aside).
    pub fn dropped_columns(&self) -> Vec<String> {
        let copied: Vec<&str> = self
            .columns
            .iter()
            .filter_map(|c| match &c.source {
                ColumnSource::Column { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let recreated = |name: &str| self.def.columns.iter().any(|c| c.name == name && c.generated.is_some());
        self.source
            .columns
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| !copied.contains(&n.as_str()) && !recreated(n) && !self.produces(n))
            .collect()
    }

    /// In place, the source already holds the columns expand added (a
    /// column of the spec, or `<name>_new` beside a retyped one).
    fn produces(&self, column: &str) -> bool {
        self.in_place && self.columns.iter().any(|c| c.name == column || format!("{}_new", c.name) == column)
    }

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

    /// The plan of reverse sync, once writes go to the target: the target's
    /// rows written back into the source through the inverted mapping
    /// (`target` is the target table as it is now). Renames and type
    /// changes invert; a computed column, or a source column that is not
    /// copied, does not: the error says which, and why.
    pub fn inverted(&self, target: &TableSchema) -> std::result::Result<TablePlan, String> {
        if let Some(why) = self.inversion_blocker() {
            return Err(why);
        }
        let mut columns = Vec::new();
        for c in &self.columns {
            let ColumnSource::Column { name: source_column, .. } = &c.source else { continue };
            let original = self.source.column(source_column).expect("planned from the source");
            let on_target = target.column(&c.name);
            columns.push(TargetColumn {
                name: source_column.clone(),
                source: ColumnSource::Column { name: c.name.clone(), data_type: None, not_null: false },
                data_type: original.data_type.clone(),
                desired_type: original.data_type.clone(),
                source_type: on_target.map(|t| (t.data_type.clone(), t.native_type.clone(), t.nullable)),
                nullable: original.nullable,
            });
        }
        let select = columns
            .iter()
            .map(|c| match &c.source {
                ColumnSource::Column { name, .. } => SelectItem::Column(name.clone()),
                ColumnSource::Expr { sql, .. } => SelectItem::Expr(sql.clone()),
            })
            .collect();
        let key_positions = self
            .key_source
            .iter()
            .map(|k| columns.iter().position(|c| &c.name == k).expect("the key is copied"))
            .collect();
        Ok(TablePlan {
            spec: self.spec.clone(),
            source_name: self.target_name.clone(),
            target_name: self.source_name.clone(),
            source: target.clone(),
            read: ReadSpec {
                table: self.target_name.clone(),
                select,
                key: self.key_target.clone(),
                key_positions,
                filter: None,
            },
            def: TableDef::new(self.source_name.clone(), Vec::new(), self.key_source.clone()),
            columns,
            key_source: self.key_target.clone(),
            key_target: self.key_source.clone(),
            skipped_foreign_keys: Vec::new(),
            in_place: false,
            schema_items: Vec::new(),
        })
    }

    /// Why the mapping cannot be inverted: a computed column, or a source
    /// column that is not copied. `None` when reverse sync can write back.
    pub fn inversion_blocker(&self) -> Option<String> {
        if let Some(c) = self.columns.iter().find(|c| !matches!(c.source, ColumnSource::Column { .. })) {
            return Some(format!(
                "`{}.{}` is computed on the target: the source's columns cannot be told from it",
                self.target_name, c.name
            ));
        }
        let copied = |name: &str| {
            self.columns.iter().any(|c| matches!(&c.source, ColumnSource::Column { name: n, .. } if n == name))
        };
        let left = self.source.columns.iter().find(|c| c.generated.is_none() && !copied(&c.name))?;
        Some(format!(
            "`{}.{}` is not copied: rows written on the target would reach the source without it",
            self.source_name, left.name
        ))
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

/// A column an in-place expand adds for `table`: a computed or renamed
/// column of the spec, or `<name>_new` beside a retyped one.
fn added_by_expand(table: &TableSpec, column: &str) -> bool {
    table.columns.iter().any(|(name, source)| {
        let added = match source {
            ColumnSource::Expr { .. } => true,
            ColumnSource::Column { name: from, .. } => from != name,
        };
        (added && name == column) || format!("{name}_new") == column
    })
}

/// Resolves every table of the spec against the live source (and the target
/// engine's type capabilities).
pub async fn plan_tables(spec: &Spec, source: &dyn Engine, target: &dyn Engine, mode: Mode) -> Result<Vec<TablePlan>> {
    let mut plans = Vec::new();
    for table in &spec.tables {
        let source_name = TableName::parse(&table.from);
        if mode == Mode::Contract && !source.table_exists(&source_name).await? {
            plans.push(TablePlan::archived(table, source_name));
            continue;
        }
        let expanded = matches!(mode, Mode::Expanded | Mode::Contract);
        let mode = if matches!(mode, Mode::Contract | Mode::Expanded) { Mode::Run } else { mode };
        plans.push(plan_table(spec, table, source, target, mode, expanded).await?);
    }
    let in_place = plans.iter().filter(|p| p.in_place).count();
    if mode != Mode::Plan && in_place > 0 && in_place < plans.len() {
        let first = plans.iter().find(|p| p.in_place).expect("counted");
        return Err(spec_error(
            spec,
            &first.spec,
            format!("{} is changed in place while other tables move", first.source_name),
            "a migration moves tables or changes them in place, not both: give each its own spec",
        ));
    }
    resolve_foreign_keys(&mut plans, target).await?;
    Ok(plans)
}

/// One table's entry of the spec, for errors that point at it.
#[derive(Clone, Copy)]
struct Entry<'a> {
    spec: &'a Spec,
    table: &'a TableSpec,
}

impl Entry<'_> {
    fn error(&self, message: impl Into<String>, hint: impl Into<String>) -> RunError {
        spec_error(self.spec, self.table, message, hint)
    }

    /// `name` is a column of the source table, or an error listing those it has.
    fn require_column(&self, schema: &TableSchema, name: &str, message: String) -> Result<()> {
        if schema.column(name).is_some() {
            return Ok(());
        }
        let columns: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        Err(self.error(message, format!("columns of {}: {}", self.table.from, columns.join(", "))))
    }
}

async fn plan_table(
    spec: &Spec,
    table: &TableSpec,
    source_engine: &dyn Engine,
    target: &dyn Engine,
    mode: Mode,
    expanded: bool,
) -> Result<TablePlan> {
    let entry = Entry { spec, table };
    let source_name = TableName::parse(&table.from);
    let target_name = TableName::parse(&table.to);
    let in_place = source_engine.display_url() == target.display_url() && source_name == target_name;
    if in_place && mode == Mode::Run {
        refuse_empty_change(entry, target)?;
    }
    let mut schema = introspect_source(entry, source_engine, &source_name).await?;
    if in_place && expanded {
        schema.columns.retain(|c| !added_by_expand(table, &c.name));
    }
    check_column_names(entry, &schema)?;
    let emitted = emitted_columns(table, &schema);
    let (key_source, key_target) = resolve_key(entry, &schema, mode, &emitted)?;

    let renames: BTreeMap<String, String> = emitted
        .iter()
        .filter_map(|(t, s)| match s {
            ColumnSource::Column { name, .. } => Some((name.clone(), t.clone())),
            _ => None,
        })
        .collect();
    let translate = &table.translate;
    let mut translator =
        Translator::new(source_engine, target, &schema, &target_name.name, translate, renames, key_source.clone());
    // Generated columns the target computes itself are created, never copied.
    let generated =
        if in_place { Vec::new() } else { recreated_generated(table, &schema, &emitted, &key_source, &mut translator) };
    let mut columns = Vec::new();
    for (name, source) in emitted.iter().filter(|(t, _)| !generated.iter().any(|(_, g)| &g.name == t)) {
        columns.push(target_column(entry, source_engine, &schema, name, source, key_target.contains(name)).await?);
    }
    // Index and key columns may need a bounded type on some engines (MySQL text keys).
    let (mut unique_keys, indexes) = carried_keys(&schema, &emitted, &key_target);
    let in_any_index = |c: &String| {
        key_target.contains(c)
            || unique_keys.iter().flatten().any(|u| u == c)
            || indexes.iter().flatten().any(|u| u == c)
    };
    for col in &mut columns {
        col.data_type = target.storage_type(&col.data_type, in_any_index(&col.name));
    }
    let read = read_spec(table, &source_name, &columns, &key_source, &key_target);

    let mut column_defs = if in_place {
        columns.iter().map(|c| ColumnDef::new(c.name.clone(), c.data_type.clone(), c.nullable)).collect()
    } else {
        translated_columns(&mut translator, &columns, &key_target, &schema)
    };
    for (inserted, (position, mut def)) in generated.into_iter().enumerate() {
        def.data_type = target.storage_type(&def.data_type, in_any_index(&def.name));
        column_defs.insert((position + inserted).min(column_defs.len()), def);
    }
    let (expression_indexes, checks, comment) = if in_place {
        (Vec::new(), Vec::new(), None)
    } else {
        (translator.indexes(&mut unique_keys, &column_defs), translator.checks(), translator.table_comment())
    };
    check_translate_keys(spec, table, &translator)?;
    let schema_items = std::mem::take(&mut translator.items);
    let def = TableDef {
        name: target_name.clone(),
        columns: column_defs,
        primary_key: key_target.clone(),
        unique_keys,
        indexes,
        foreign_keys: Vec::new(),
        expression_indexes,
        checks,
        comment,
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
        schema_items,
    })
}

/// An entry whose source and target are the same table must describe a change.
fn refuse_empty_change(entry: Entry, target: &dyn Engine) -> Result<()> {
    let table = entry.table;
    if table.columns.is_empty()
        && table.exclude.is_empty()
        && table.added_indexes.is_empty()
        && table.added_constraints.is_empty()
    {
        return Err(entry.error(
            format!(
                "source and target are the same table, {} in {}, and the entry changes nothing",
                table.from,
                target.display_url()
            ),
            "to copy, give the copy another name with `to = \"...\"` or point [target] at another database; \
             to change the table in place, describe the change with [[change]] entries (docs/in-place.md)",
        ));
    }
    Ok(())
}

async fn introspect_source(entry: Entry<'_>, source: &dyn Engine, name: &TableName) -> Result<TableSchema> {
    let from = &entry.table.from;
    source.introspect(name).await.map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            entry.error(format!("source table `{from}`: {}", e.message()), e.hint().unwrap_or("check `from`"))
        } else {
            RunError::from(e).context(format_args!("source table {from}"))
        }
    })
}

/// Every column the entry names is the source's, and no rename lands on a column the source keeps.
fn check_column_names(entry: Entry, schema: &TableSchema) -> Result<()> {
    let table = entry.table;
    for name in &table.exclude {
        let message = format!("`exclude` names `{name}`, which is not a column of {}", table.from);
        entry.require_column(schema, name, message)?;
    }
    for (target_col, source) in &table.columns {
        if let ColumnSource::Column { name, .. } = source {
            let message = format!("`columns.{target_col}` reads `{name}`, which is not a column of {}", table.from);
            entry.require_column(schema, name, message)?;
        }
    }
    // A rename into the name of another source column would copy two columns into one.
    for (target_col, source) in &table.columns {
        if let ColumnSource::Column { name, .. } = source {
            if name != target_col && schema.column(target_col).is_some() && !table.exclude.contains(target_col) {
                return Err(entry.error(
                    format!(
                        "`columns.{target_col}` renames `{name}` to `{target_col}`, but {} has a column `{target_col}` \
                         of its own, which would be copied into the same target column",
                        table.from
                    ),
                    format!(
                        "to replace the source's `{target_col}`, add `exclude = [\"{target_col}\"]`; otherwise rename \
                         `{name}` to a name the table does not have"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The target's columns and where each comes from: source columns in their
/// order, each renamed or overridden where the spec says so; then computed
/// columns in spec order.
fn emitted_columns(table: &TableSpec, schema: &TableSchema) -> Vec<(String, ColumnSource)> {
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
    emitted
}

/// The target column a source column is copied to.
fn target_of(emitted: &[(String, ColumnSource)], source_col: &str) -> Option<String> {
    emitted
        .iter()
        .find(|(_, s)| matches!(s, ColumnSource::Column { name, .. } if name == source_col))
        .map(|(t, _)| t.clone())
}

/// The key as the source and as the target name it: the spec's, or the
/// table's own (`ferry plan` reports a table without one as F007).
fn resolve_key(
    entry: Entry,
    schema: &TableSchema,
    mode: Mode,
    emitted: &[(String, ColumnSource)],
) -> Result<(Vec<String>, Vec<String>)> {
    let table = entry.table;
    let key_source =
        if table.key.is_empty() {
            match (schema.natural_key(), mode) {
                (Some(key), _) => key,
                (None, Mode::Plan) => Vec::new(),
                (None, Mode::Run | Mode::Contract | Mode::Expanded) => return Err(entry.error(
                    format!("table `{}` has no primary key and no unique key on NOT NULL columns", table.from),
                    "Ferry copies and verifies rows by key: add `key = [\"col\", ...]` naming columns whose values \
                     are unique, or give the table a primary key",
                )),
            }
        } else {
            for k in &table.key {
                entry.require_column(schema, k, format!("key column `{k}` is not a column of {}", table.from))?;
            }
            table.key.clone()
        };
    let key_target = key_source
        .iter()
        .map(|k| {
            target_of(emitted, k).ok_or_else(|| {
                entry.error(
                    format!("key column `{k}` is not copied to the target"),
                    "the key identifies rows on both sides: do not exclude it or replace it with a computed column",
                )
            })
        })
        .collect::<Result<Vec<String>>>()?;
    Ok((key_source, key_target))
}

/// Generated source columns the target computes itself: each with its
/// position among the copied columns and its definition.
fn recreated_generated(
    table: &TableSpec,
    schema: &TableSchema,
    emitted: &[(String, ColumnSource)],
    key_source: &[String],
    translator: &mut Translator,
) -> Vec<(usize, ColumnDef)> {
    let mut generated: Vec<(usize, ColumnDef)> = Vec::new();
    for (target_col, source) in emitted {
        let recreated = match source {
            ColumnSource::Column { name, .. } if !table.columns.iter().any(|(t, _)| t == target_col) => schema
                .column(name)
                .filter(|c| c.generated.is_some() && !key_source.contains(&c.name))
                .and_then(|c| translator.generated(c).map(|g| (c, g))),
            _ => None,
        };
        if let Some((column, g)) = recreated {
            let mut def = ColumnDef::new(target_col.clone(), column.data_type.clone(), column.nullable);
            def.generated = Some(g);
            let copied_before = emitted.iter().take_while(|(t, _)| t != target_col).count() - generated.len();
            generated.push((copied_before, def));
        }
    }
    generated
}

/// A copied column: its type (the spec's, the source column's, or what the
/// source says its expression gives) and whether it may be NULL.
async fn target_column(
    entry: Entry<'_>,
    source_engine: &dyn Engine,
    schema: &TableSchema,
    name: &str,
    source: &ColumnSource,
    in_key: bool,
) -> Result<TargetColumn> {
    let (data_type, nullable, source_type) = match source {
        ColumnSource::Column { name: src, data_type, .. } => {
            let col = schema.column(src).expect("checked above");
            let t = data_type.clone().unwrap_or_else(|| col.data_type.clone());
            (t, col.nullable, Some((col.data_type.clone(), col.native_type.clone(), col.nullable)))
        }
        ColumnSource::Expr { sql, data_type, .. } => {
            let t = match data_type {
                Some(t) => t.clone(),
                None => expression_type(entry, source_engine, name, sql).await?,
            };
            (t, true, None)
        }
    };
    Ok(TargetColumn {
        name: name.to_string(),
        source: source.clone(),
        desired_type: data_type.clone(),
        data_type,
        source_type,
        nullable: nullable && !in_key && !source.not_null(),
    })
}

/// The type the source engine says a computed column's expression gives.
async fn expression_type(entry: Entry<'_>, source: &dyn Engine, name: &str, sql: &str) -> Result<DataType> {
    let table = TableName::parse(&entry.table.from);
    source
        .expression_type(&table, sql)
        .await
        .map_err(|e| entry.error(format!("computed column `{name}`: {}", e.message()), "check the expression's SQL"))?
        .ok_or_else(|| {
            entry.error(
                format!("computed column `{name}` needs a type: {} cannot tell an expression's type", source.kind()),
                format!("write {name} = {{ expr = \"{sql}\", type = \"text\" }} with the right type"),
            )
        })
}

/// The source's unique keys (but the key) and indexes whose columns are all
/// copied, as the target names them: their columns may need a bounded type.
fn carried_keys(
    schema: &TableSchema,
    emitted: &[(String, ColumnSource)],
    key_target: &[String],
) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let map_cols = |cols: &[String]| -> Option<Vec<String>> { cols.iter().map(|c| target_of(emitted, c)).collect() };
    let unique_keys =
        schema.unique_keys.iter().filter_map(|u| map_cols(&u.columns)).filter(|cols| cols != key_target).collect();
    let indexes = schema.indexes.iter().filter_map(|i| map_cols(&i.columns)).collect();
    (unique_keys, indexes)
}

/// The copied columns as the translator defines them on the target (a
/// computed column is declared by its type alone).
fn translated_columns(
    translator: &mut Translator,
    columns: &[TargetColumn],
    key_target: &[String],
    schema: &TableSchema,
) -> Vec<ColumnDef> {
    columns
        .iter()
        .map(|c| match &c.source {
            ColumnSource::Column { name, .. } => translator.column(
                PlannedColumn {
                    name: &c.name,
                    data_type: &c.data_type,
                    nullable: c.nullable,
                    sole_key: key_target.len() == 1 && key_target[0] == c.name,
                },
                schema.column(name).expect("checked above"),
            ),
            ColumnSource::Expr { .. } => ColumnDef::new(c.name.clone(), c.data_type.clone(), c.nullable),
        })
        .collect()
}

/// What to read from the source: the copied columns (or their expressions) and the key.
fn read_spec(
    table: &TableSpec,
    source_name: &TableName,
    columns: &[TargetColumn],
    key_source: &[String],
    key_target: &[String],
) -> ReadSpec {
    let select: Vec<SelectItem> = columns
        .iter()
        .map(|c| match &c.source {
            ColumnSource::Column { name, .. } => SelectItem::Column(name.clone()),
            ColumnSource::Expr { sql, .. } => SelectItem::Expr(sql.clone()),
        })
        .collect();
    let key_positions =
        key_target.iter().map(|k| columns.iter().position(|c| &c.name == k).expect("key is a column")).collect();
    ReadSpec {
        table: source_name.clone(),
        select,
        key: key_source.to_vec(),
        key_positions,
        filter: table.filter.clone(),
    }
}

/// Every `[table.translate]` key names something of the table; a zone is UTC.
fn check_translate_keys(spec: &Spec, table: &TableSpec, translator: &Translator) -> Result<()> {
    let unknown = translator.unknown_keys();
    if let Some(key) = unknown.first() {
        return Err(spec_error(
            spec,
            table,
            format!("`[table.translate] \"{key}\"` names nothing of {}", table.from),
            "a key is a check, index or foreign key name of the source table, or `<column>.default`, \
             `<column>.on_update`, `<column>.generated`, `<column>.collation`, `<column>.identity` or `<column>.zone`; \
             `ferry plan` lists each item with its key",
        ));
    }
    for (key, value) in table.translate.iter().filter(|(k, _)| k.ends_with(".zone")) {
        if !value.eq_ignore_ascii_case("UTC") {
            return Err(spec_error(
                spec,
                table,
                format!("`[table.translate] \"{key}\" = \"{value}\"`: only \"UTC\" can be assumed"),
                "for times written in another zone, convert them with a computed column, e.g. \
                 `created_at = { expr = \"CONVERT_TZ(created_at, 'Europe/Berlin', '+00:00')\", type = \"timestamptz\" }` \
                 (MySQL) or `{ expr = \"created_at AT TIME ZONE 'Europe/Berlin'\" }` (PostgreSQL)",
            ));
        }
    }
    Ok(())
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

/// Foreign keys between tables of the spec are re-pointed at the target
/// names; those to a table outside it are kept when the target has that
/// table, and otherwise reported with the statement that adds them later.
async fn resolve_foreign_keys(plans: &mut [TablePlan], target: &dyn Engine) -> Result<()> {
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
    let support = target.schema_support();
    for (plan, own) in plans.iter_mut().zip(&moved) {
        if plan.in_place {
            continue;
        }
        plan.def.foreign_keys.clear();
        plan.skipped_foreign_keys.clear();
        for fk in plan.source.foreign_keys.clone() {
            resolve_foreign_key(plan, &fk, own, &moved, target, support).await?;
        }
    }
    Ok(())
}

/// One foreign key of a moved table, as the target gets it (its columns
/// and its parent's renamed, its actions translated) or skipped with the
/// reason; either way the plan shows it.
async fn resolve_foreign_key(
    plan: &mut TablePlan,
    fk: &ForeignKey,
    own: &Moved,
    moved: &[Moved],
    target: &dyn Engine,
    support: SchemaSupport,
) -> Result<()> {
    let mut it = SchemaItem {
        kind: SchemaItemKind::ForeignKey,
        name: fk.name.clone(),
        source: describe_fk(fk),
        target: None,
        note: None,
        problem: None,
    };
    let not_kept = |reason: &str, resolve: &str| SchemaProblem {
        class: SchemaProblemClass::NotKept,
        reason: reason.into(),
        resolve: resolve.into(),
        info: false,
    };
    let parent = moved.iter().find(|m| {
        m.source.name == fk.ref_table.name && (fk.ref_table.schema.is_none() || m.source.schema == fk.ref_table.schema)
    });
    let Some(columns) = fk.columns.iter().map(|c| own.column(c)).collect::<Option<Vec<String>>>() else {
        let resolve = "copy the column, or accept that the target does not check this reference";
        skip(plan, it, fk, not_kept("one of its columns is not copied", resolve));
        return Ok(());
    };
    let (ref_table, ref_columns) = match parent {
        Some(parent) => match fk.ref_columns.iter().map(|c| parent.column(c)).collect::<Option<Vec<String>>>() {
            Some(ref_columns) => (parent.target.clone(), ref_columns),
            None => {
                let resolve = "copy the referenced column, or accept that the target does not check this reference";
                skip(plan, it, fk, not_kept("a referenced column is not copied", resolve));
                return Ok(());
            }
        },
        None => (fk.ref_table.clone(), fk.ref_columns.clone()),
    };
    let mut resolved = ForeignKey {
        name: object_name(&plan.target_name.name, &columns, "fkey"),
        columns,
        ref_table,
        ref_columns,
        on_delete: fk.on_delete,
        on_update: fk.on_update,
    };
    if parent.is_none() && !target.table_exists(&resolved.ref_table).await? {
        let problem = SchemaProblem {
            class: SchemaProblemClass::ParentMissing,
            reason: format!("table {} is not part of this migration and not on the target", fk.ref_table),
            resolve: add_later(target, &plan.target_name, &resolved),
            info: false,
        };
        skip(plan, it, fk, problem);
        return Ok(());
    }
    if let Some(action_item) =
        foreign_key_actions(&fk.name, &mut resolved, support, &plan.spec.translate, target.kind())
    {
        let refused = action_item.problem.is_some();
        plan.schema_items.push(action_item);
        if refused {
            let reason = "its ON DELETE/UPDATE action does not exist on the target".to_string();
            plan.skipped_foreign_keys.push((fk.clone(), reason));
            return Ok(());
        }
    }
    it.target = Some(describe_fk(&resolved));
    if parent.is_none() {
        it.note = Some(format!("{} is not moved, but the target has it", fk.ref_table));
    }
    plan.schema_items.push(it);
    plan.def.foreign_keys.push(resolved);
    Ok(())
}

/// A foreign key the target does not get: the plan shows it with `problem`.
fn skip(plan: &mut TablePlan, mut it: SchemaItem, fk: &ForeignKey, problem: SchemaProblem) {
    plan.skipped_foreign_keys.push((fk.clone(), problem.reason.clone()));
    it.problem = Some(problem);
    plan.schema_items.push(it);
}

fn describe_fk(fk: &ForeignKey) -> String {
    format!(
        "({}) REFERENCES {} ({}){}",
        fk.columns.join(", "),
        fk.ref_table,
        fk.ref_columns.join(", "),
        fk.actions_sql()
    )
}

/// What to run once the parent exists on the target.
fn add_later(target: &dyn Engine, table: &TableName, fk: &ForeignKey) -> String {
    if !target.capabilities().adds_foreign_keys_later {
        return format!(
            "create {} on the target (or add it to the migration) before `ferry run`: {} cannot add a foreign key to an existing table",
            fk.ref_table,
            target.kind()
        );
    }
    let mut def = TableDef::new(table.clone(), Vec::new(), Vec::new());
    def.foreign_keys = vec![fk.clone()];
    let (_, after) = target.table_ddl(&def);
    format!("add {} to the migration, or create it on the target and run: {}", fk.ref_table, after.join("; "))
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
