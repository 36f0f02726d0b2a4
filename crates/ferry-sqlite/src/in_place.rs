//! A change in place in SQLite's SQL: no online index build and no ALTER of
//! a constraint or NOT NULL (the table rebuild at contract brings those);
//! triggers cannot assign `NEW`, so each one updates the row after the write.

use crate::plan_dialect::SqlitePlanDialect as D;
use ferry_core::in_place::{
    column_list, ChangedTable, Event, IndexBuildSql, IndexSpec, Statement, Steps, SyncTriggers,
};
use ferry_core::PlanDialect;

fn create_index(d: &D, t: &ChangedTable, name: &str, i: &IndexSpec) -> Statement {
    let unique = if i.unique { "UNIQUE " } else { "" };
    Statement::plain(format!(
        "CREATE {unique}INDEX IF NOT EXISTS {} ON {} ({})",
        t.beside(d, name),
        d.ident(t.bare()),
        column_list(d, i.columns)
    ))
}

fn drop_index(d: &D, t: &ChangedTable, name: &str) -> Statement {
    Statement::plain(format!("DROP INDEX IF EXISTS {}", t.beside(d, name)))
}

pub(crate) fn online_index(d: &D, t: &ChangedTable, i: &IndexSpec) -> IndexBuildSql {
    IndexBuildSql { build: create_index(d, t, i.name, i), abort: drop_index(d, t, i.name) }
}

/// No RENAME INDEX: built again under the old name, in contract's transaction.
pub(crate) fn swap_index(d: &D, t: &ChangedTable, old: &str, new: &IndexSpec) -> Steps {
    Steps {
        enforce: vec![drop_index(d, t, old)],
        complete: vec![drop_index(d, t, new.name), create_index(d, t, old, new)],
        ..Steps::default()
    }
}

pub(crate) fn sync_triggers(d: &D, s: &SyncTriggers) -> Vec<String> {
    let t = s.table;
    let name = t.quoted(d);
    let this_row: Vec<String> = s.key.iter().map(|k| format!("{0} = NEW.{0}", d.ident(k))).collect();
    let this_row = this_row.join(" AND ");
    // The table's columns, read in the UPDATE below: the row as the write left it.
    let stored = |c: &ferry_core::in_place::NewColumn| d.ident(&c.physical);
    let up = |c: &ferry_core::in_place::NewColumn| c.up.clone();
    let mut out = Vec::new();
    // SQLite triggers cannot assign NEW: each column is set after the write, when the write left it alone.
    for event in Event::BOTH {
        // Every value is read from the row as the application wrote it (NEW, OLD): the order does not matter.
        let mut sets = Vec::new();
        for c in &s.added {
            let column = d.ident(&c.physical);
            let untouched = s.recompute(d, c, event);
            sets.push(format!("{column} = CASE WHEN {untouched} THEN {} ELSE {column} END", c.up));
        }
        for b in &s.write_backs {
            let old = d.ident(&b.old);
            sets.push(format!(
                "{old} = CASE WHEN {} AND {} THEN {} ELSE {old} END",
                s.written(d, b, event),
                s.set_apart(d, b, &stored, &up),
                b.value
            ));
        }
        let mut body = format!("UPDATE {name} SET {} WHERE {this_row};", sets.join(", "));
        if s.marks() {
            body.push_str(&format!(
                " INSERT OR IGNORE INTO {} ({keys}) SELECT {keys} FROM {name} WHERE {this_row} AND ({});",
                t.beside(d, &t.written_table()),
                s.disagree(d, &stored, &up),
                keys = s.keys(d),
            ));
        }
        out.push(format!(
            "CREATE TRIGGER {} AFTER {} ON {name} BEGIN {body} END",
            t.beside(d, &format!("{}_{}", t.sync_trigger(), event.suffix())),
            event.sql()
        ));
    }
    out
}
