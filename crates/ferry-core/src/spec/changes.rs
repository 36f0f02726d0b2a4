//! `[[change]]`: an in-place change described as operations on one
//! database's tables (no `[target]`). Each operation is lowered into the
//! in-place `[[table]]` form the planner already reads — `add_column` a
//! computed column, `drop_column` an excluded one, `rename_column` a renamed
//! one, `alter_type` a retyped one (its `up`/`down` in the table's
//! `conversions`) — so that both spellings plan the same.

use super::raw::{ColumnValue, Detailed, Endpoint, File, Table};
use super::{Ctx, SpecError};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChange {
    table: Spanned<String>,
    add_column: Option<Spanned<String>>,
    #[serde(rename = "type")]
    data_type: Option<Spanned<String>>,
    expr: Option<Spanned<String>>,
    not_null: Option<bool>,
    drop_column: Option<Spanned<String>>,
    rename_column: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    alter_type: Option<Spanned<String>>,
    add_index: Option<Spanned<String>>,
    columns: Option<Spanned<Vec<String>>>,
    unique: Option<bool>,
    add_check: Option<Spanned<String>>,
    check: Option<Spanned<String>>,
    add_foreign_key: Option<Spanned<String>>,
    references: Option<Spanned<String>>,
    referenced_columns: Option<Spanned<Vec<String>>>,
    // Operations of the issue that are read, so that they are refused by name rather than as unknown keys.
    split_column: Option<Spanned<String>>,
    into: Option<Spanned<BTreeMap<String, String>>>,
    merge_columns: Option<Spanned<Vec<String>>>,
    up: Option<Spanned<String>>,
    /// SQL (alter_type, split_column), or one SQL per merged column (merge_columns).
    down: Option<Spanned<toml::Value>>,
}

/// Fills `file.tables` and `file.target` from `file.changes`; a spec without
/// changes must have a `[target]`.
pub(super) fn lower(ctx: &Ctx, file: &mut File) -> Result<(), SpecError> {
    let Some(first) = file.changes.first() else {
        if file.target.is_none() {
            return Err(ctx.error(
                0..0,
                "the spec has no [target]",
                "add [target] with url = \"...\" to move tables, or describe an in-place change with [[change]] \
                 entries (docs/spec.md)",
            ));
        }
        return Ok(());
    };
    if let Some(table) = file.tables.first() {
        return Err(ctx.error(
            table.span(),
            "a spec has [[table]] entries (a move) or [[change]] entries (a change in place), not both",
            "keep one kind: a change in place needs no [[table]]",
        ));
    }
    match &file.target {
        Some(target) if target.url.get_ref() != file.source.url.get_ref() => {
            return Err(ctx.error(
                target.url.span(),
                "[[change]] changes tables in place, on the source: `target.url` names another database",
                "remove [target] (or give it the source's url)",
            ))
        }
        Some(_) => {}
        None => file.target = Some(Endpoint { url: file.source.url.clone(), capture: None }),
    }
    let mut tables: Vec<Table> = Vec::new();
    for entry in &file.changes {
        let change = entry.get_ref();
        let index = match tables.iter().position(|t| t.from.get_ref() == change.table.get_ref()) {
            Some(i) => i,
            None => {
                tables.push(empty_table(change.table.clone()));
                tables.len() - 1
            }
        };
        apply(ctx, entry, &mut tables[index])?;
    }
    let span = first.span();
    file.tables = tables.into_iter().map(|t| Spanned::new(span.clone(), t)).collect();
    Ok(())
}

fn empty_table(from: Spanned<String>) -> Table {
    Table {
        from,
        to: None,
        key: None,
        filter: None,
        exclude: Vec::new(),
        columns: BTreeMap::new(),
        translate: BTreeMap::new(),
        existing_rows: None,
        conversions: BTreeMap::new(),
        added_indexes: Vec::new(),
        added_constraints: Vec::new(),
        downs: Vec::new(),
    }
}

/// One operation of a `[[change]]` into its table.
fn apply(ctx: &Ctx, entry: &Spanned<RawChange>, table: &mut Table) -> Result<(), SpecError> {
    let c = entry.get_ref();
    check_one_operation(ctx, entry)?;
    if let Some(column) = &c.add_column {
        add_column(ctx, entry, column, table)?;
    } else if let Some(column) = &c.drop_column {
        table.exclude.push(column.clone());
    } else if let Some(column) = &c.alter_type {
        alter_type(ctx, entry, column, table)?;
    } else if let Some(name) = &c.add_index {
        add_index(ctx, c, name, table)?;
    } else if let Some(name) = &c.add_check {
        add_check(ctx, c, name, table)?;
    } else if let Some(name) = &c.add_foreign_key {
        add_foreign_key(ctx, c, name, table)?;
    } else if let Some(column) = &c.split_column {
        split(ctx, c, column, table)?;
    } else if let Some(columns) = &c.merge_columns {
        merge(ctx, c, columns, table)?;
    } else if let Some(old) = &c.rename_column {
        let Some(new) = &c.to else {
            return Err(ctx.error(old.span(), "`change.rename_column` needs `to`", "give the new name: to = \"...\""));
        };
        table.columns.insert(new.clone(), Spanned::new(old.span(), ColumnValue::Name(old.get_ref().clone())));
    }
    check_keys_fit(ctx, c)
}

/// A `[[change]]` names exactly one operation, and `columns` only where it goes.
fn check_one_operation(ctx: &Ctx, entry: &Spanned<RawChange>) -> Result<(), SpecError> {
    let c = entry.get_ref();
    let operations = [
        c.add_column.is_some(),
        c.drop_column.is_some(),
        c.rename_column.is_some(),
        c.alter_type.is_some(),
        c.add_index.is_some(),
        c.add_check.is_some(),
        c.add_foreign_key.is_some(),
        c.split_column.is_some(),
        c.merge_columns.is_some(),
    ];
    if operations.iter().filter(|&&o| o).count() != 1 {
        return Err(ctx.error(
            entry.span(),
            "each [[change]] has exactly one operation",
            "give one of add_column, drop_column, rename_column, alter_type, split_column, merge_columns, add_index, \
             add_check or add_foreign_key (one [[change]] per operation)",
        ));
    }
    if let (Some(columns), None, None) = (&c.columns, &c.add_index, &c.add_foreign_key) {
        return Err(ctx.error(
            columns.span(),
            "`change.columns` goes with `add_index` or `add_foreign_key`",
            "remove it",
        ));
    }
    Ok(())
}

/// The keys an operation does not take are refused, not ignored.
fn check_keys_fit(ctx: &Ctx, c: &RawChange) -> Result<(), SpecError> {
    let split_or_merge = c.split_column.is_some() || c.merge_columns.is_some();
    for (key, span, allowed) in [
        (
            "type",
            c.data_type.as_ref().map(Spanned::span),
            c.add_column.is_some() || c.alter_type.is_some() || split_or_merge,
        ),
        ("expr", c.expr.as_ref().map(Spanned::span), c.add_column.is_some()),
        ("up", c.up.as_ref().map(Spanned::span), c.alter_type.is_some() || c.merge_columns.is_some()),
        ("down", c.down.as_ref().map(Spanned::span), c.alter_type.is_some() || split_or_merge),
        ("into", c.into.as_ref().map(Spanned::span), c.split_column.is_some()),
    ] {
        if let Some(span) = span.filter(|_| !allowed) {
            return Err(ctx.error(span, format!("`change.{key}` does not go with this operation"), "remove it"));
        }
    }
    Ok(())
}

fn add_column(
    ctx: &Ctx,
    entry: &Spanned<RawChange>,
    column: &Spanned<String>,
    table: &mut Table,
) -> Result<(), SpecError> {
    let c = entry.get_ref();
    let (Some(data_type), Some(expr)) = (&c.data_type, &c.expr) else {
        return Err(ctx.error(
            column.span(),
            format!("`change.add_column = \"{}\"` needs `type` and `expr`", column.get_ref()),
            "e.g. type = \"boolean\", expr = \"verification_date IS NOT NULL\" (SQL of the database, over the row's columns)",
        ));
    };
    let detailed = Detailed {
        from: None,
        expr: Some(expr.get_ref().clone()),
        data_type: Some(data_type.get_ref().clone()),
        // NOT NULL is applied at contract (the planner adds it through a validated check).
        nullable: Some(!c.not_null.unwrap_or(false)),
    };
    table.columns.insert(column.clone(), Spanned::new(entry.span(), ColumnValue::Detailed(detailed)));
    Ok(())
}

fn alter_type(
    ctx: &Ctx,
    entry: &Spanned<RawChange>,
    column: &Spanned<String>,
    table: &mut Table,
) -> Result<(), SpecError> {
    let c = entry.get_ref();
    let Some(data_type) = &c.data_type else {
        return Err(ctx.error(
            column.span(),
            format!("`change.alter_type = \"{}\"` needs `type`", column.get_ref()),
            "e.g. type = \"bigint\"; with `up` (SQL computing the new value from the old row) and `down` \
             (the old value from the new row) when the database cannot convert by itself",
        ));
    };
    let detailed = Detailed {
        from: Some(column.get_ref().clone()),
        expr: None,
        data_type: Some(data_type.get_ref().clone()),
        nullable: None,
    };
    table.columns.insert(column.clone(), Spanned::new(entry.span(), ColumnValue::Detailed(detailed)));
    table.conversions.insert(column.get_ref().clone(), (c.up.clone(), down_text(ctx, c)?));
    Ok(())
}

fn add_index(ctx: &Ctx, c: &RawChange, name: &Spanned<String>, table: &mut Table) -> Result<(), SpecError> {
    let columns = c.columns.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default();
    if columns.is_empty() {
        return Err(ctx.error(
            name.span(),
            format!("`change.add_index = \"{}\"` needs `columns`", name.get_ref()),
            "e.g. columns = [\"email\"] (and unique = true for a unique index)",
        ));
    }
    let unique = c.unique.unwrap_or(false);
    table.added_indexes.push(super::IndexChange { name: name.get_ref().clone(), columns, unique });
    Ok(())
}

fn add_check(ctx: &Ctx, c: &RawChange, name: &Spanned<String>, table: &mut Table) -> Result<(), SpecError> {
    let Some(check) = &c.check else {
        return Err(ctx.error(
            name.span(),
            format!("`change.add_check = \"{}\"` needs `check`", name.get_ref()),
            "e.g. check = \"qty > 0\" (a boolean expression of the database's SQL over the row)",
        ));
    };
    let sql = check.get_ref().clone();
    table.added_constraints.push(super::ConstraintChange::Check { name: name.get_ref().clone(), sql });
    Ok(())
}

fn add_foreign_key(ctx: &Ctx, c: &RawChange, name: &Spanned<String>, table: &mut Table) -> Result<(), SpecError> {
    let columns = c.columns.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default();
    let referenced = c.referenced_columns.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default();
    let (Some(references), false, true) = (&c.references, columns.is_empty(), columns.len() == referenced.len()) else {
        return Err(ctx.error(
            name.span(),
            format!(
                "`change.add_foreign_key = \"{}\"` needs `columns`, `references` and as many `referenced_columns`",
                name.get_ref()
            ),
            "e.g. columns = [\"user_id\"], references = \"users\", referenced_columns = [\"id\"]",
        ));
    };
    table.added_constraints.push(super::ConstraintChange::ForeignKey {
        name: name.get_ref().clone(),
        columns,
        references: references.get_ref().clone(),
        referenced_columns: referenced,
    });
    Ok(())
}

/// `down` as one piece of SQL (alter_type, split_column).
fn down_text(ctx: &Ctx, c: &RawChange) -> Result<Option<Spanned<String>>, SpecError> {
    match &c.down {
        None => Ok(None),
        Some(v) => match v.get_ref() {
            toml::Value::String(sql) => Ok(Some(Spanned::new(v.span(), sql.clone()))),
            _ => Err(ctx.error(
                v.span(),
                "`change.down` is one piece of SQL here",
                "e.g. down = \"CAST(placed AS text)\"",
            )),
        },
    }
}

fn computed(expr: &str, data_type: &Option<Spanned<String>>) -> ColumnValue {
    ColumnValue::Detailed(Detailed {
        from: None,
        expr: Some(expr.to_string()),
        data_type: data_type.as_ref().map(|t| t.get_ref().clone()),
        nullable: None,
    })
}

/// `split_column`: the parts are columns computed from the old one (`into`:
/// name = SQL), the old one is dropped at contract, and `down` (SQL over the
/// parts) writes it back while both versions run.
fn split(ctx: &Ctx, c: &RawChange, column: &Spanned<String>, table: &mut Table) -> Result<(), SpecError> {
    let (Some(into), Some(_)) = (&c.into, &c.data_type) else {
        return Err(ctx.error(
            column.span(),
            format!("`change.split_column = \"{}\"` needs `into` and `type`", column.get_ref()),
            "e.g. into = { first_name = \"split_part(name, ' ', 1)\", last_name = \"split_part(name, ' ', 2)\" }, \
             type = \"text\", down = \"first_name || ' ' || last_name\"",
        ));
    };
    for (part, up) in into.get_ref() {
        table
            .columns
            .insert(Spanned::new(into.span(), part.clone()), Spanned::new(into.span(), computed(up, &c.data_type)));
    }
    table.exclude.push(column.clone());
    if let Some(down) = down_text(ctx, c)? {
        table.downs.push(super::DownChange {
            column: column.get_ref().clone(),
            sql: down.get_ref().clone(),
            written_by: into.get_ref().keys().cloned().collect(),
        });
    }
    Ok(())
}

/// `merge_columns`: one column (`to`) computed from the old ones (`up`), the
/// old ones dropped at contract, and each written back from it while both
/// versions run (`down = { old = SQL over the merged column }`).
fn merge(ctx: &Ctx, c: &RawChange, columns: &Spanned<Vec<String>>, table: &mut Table) -> Result<(), SpecError> {
    let (Some(to), Some(up), Some(_), false) = (&c.to, &c.up, &c.data_type, columns.get_ref().is_empty()) else {
        return Err(ctx.error(
            columns.span(),
            "`change.merge_columns` needs the columns, `to`, `up` and `type`",
            "e.g. merge_columns = [\"first_name\", \"last_name\"], to = \"full_name\", type = \"text\", \
             up = \"first_name || ' ' || last_name\"",
        ));
    };
    table.columns.insert(to.clone(), Spanned::new(columns.span(), computed(up.get_ref(), &c.data_type)));
    for old in columns.get_ref() {
        table.exclude.push(Spanned::new(columns.span(), old.clone()));
    }
    if let Some(down) = &c.down {
        let toml::Value::Table(parts) = down.get_ref() else {
            return Err(ctx.error(
                down.span(),
                "`change.down` of merge_columns gives each merged column its SQL",
                "e.g. down = { first_name = \"split_part(full_name, ' ', 1)\", last_name = \"split_part(full_name, ' ', 2)\" }",
            ));
        };
        for (old, sql) in parts {
            let (Some(sql), true) = (sql.as_str(), columns.get_ref().contains(old)) else {
                return Err(ctx.error(
                    down.span(),
                    format!("`change.down.{old}` must be SQL for one of the merged columns"),
                    format!("the merged columns: {}", columns.get_ref().join(", ")),
                ));
            };
            table.downs.push(super::DownChange {
                column: old.clone(),
                sql: sql.to_string(),
                written_by: vec![to.get_ref().clone()],
            });
        }
    }
    Ok(())
}
