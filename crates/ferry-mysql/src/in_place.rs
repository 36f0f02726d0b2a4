//! A change in place in MariaDB's and MySQL's SQL: `ALGORITHM=INPLACE,
//! LOCK=NONE` where the server can, guards where a statement has no
//! `IF [NOT] EXISTS`, constraints added at contract (every row checked as
//! they are added), two triggers per event (sync before, mark after).

use crate::plan_dialect::MysqlPlanDialect as D;
use ferry_core::in_place::{
    column_list, ChangedTable, Event, Guard, IndexBuildSql, IndexSpec, NewColumn, Statement, Steps, SyncTriggers,
};
use ferry_core::{DataType, PlanDialect};

pub(crate) fn online_index(d: &D, t: &ChangedTable, i: &IndexSpec) -> IndexBuildSql {
    let (name, index) = (t.quoted(d), d.ident(i.name));
    let unique = if i.unique { "UNIQUE " } else { "" };
    IndexBuildSql {
        build: Statement::guarded(
            format!(
                "ALTER TABLE {name} ADD {unique}INDEX {index} ({}), ALGORITHM=INPLACE, LOCK=NONE",
                column_list(d, i.columns)
            ),
            Guard::IndexMissing(i.name.to_string()),
        ),
        abort: Statement::guarded(
            format!("ALTER TABLE {name} DROP INDEX {index}"),
            Guard::IndexPresent(i.name.to_string()),
        ),
    }
}

pub(crate) fn swap_index(d: &D, t: &ChangedTable, old: &str, new: &IndexSpec) -> Steps {
    let name = t.quoted(d);
    Steps {
        enforce: vec![Statement::guarded(
            format!("ALTER TABLE {name} DROP INDEX {}", d.ident(old)),
            Guard::IndexPresent(old.to_string()),
        )],
        complete: vec![Statement::guarded(
            format!("ALTER TABLE {name} RENAME INDEX {} TO {}", d.ident(new.name), d.ident(old)),
            Guard::IndexPresent(new.name.to_string()),
        )],
        ..Steps::default()
    }
}

pub(crate) fn not_null(d: &D, t: &ChangedTable, physical: &str, declared: &DataType) -> Steps {
    Steps {
        enforce: vec![Statement::plain(format!(
            "ALTER TABLE {} MODIFY {} {} NOT NULL, ALGORITHM=INPLACE, LOCK=NONE",
            t.quoted(d),
            d.ident(physical),
            d.declare(declared)
        ))],
        ..Steps::default()
    }
}

/// Added at contract: the server checks every row as it adds one (the table is copied: writes wait).
pub(crate) fn add_constraint(d: &D, t: &ChangedTable, constraint: &str, clause: &str) -> Steps {
    Steps {
        enforce: vec![Statement::guarded(
            format!("ALTER TABLE {} ADD {clause}", t.quoted(d)),
            Guard::ConstraintMissing(constraint.to_string()),
        )],
        ..Steps::default()
    }
}

pub(crate) fn sync_triggers(d: &D, s: &SyncTriggers) -> Vec<String> {
    let t = s.table;
    // The row an expression is evaluated over: `NEW.a AS a, ...`.
    let row: Vec<String> = s.row_columns().iter().map(|c| format!("NEW.{0} AS {0}", d.ident(c))).collect();
    let row = format!("(SELECT {}) AS r", row.join(", "));
    let new = |c: &NewColumn| format!("NEW.{}", d.ident(&c.physical));
    let up = |c: &NewColumn| format!("(SELECT {} FROM {row})", c.up);
    let mut out = Vec::new();
    for event in Event::BOTH {
        // Written back first, from the row as the application wrote it; then what the old columns compute.
        let mut sets: Vec<String> = s
            .write_backs
            .iter()
            .map(|b| {
                format!(
                    "IF {} AND {} THEN SET NEW.{} = {}; END IF;",
                    s.written(d, b, event),
                    s.set_apart(d, b, &new, &up),
                    d.ident(&b.old),
                    b.value
                )
            })
            .collect();
        sets.extend(s.added.iter().map(|c| {
            format!(
                "IF {} THEN SET NEW.{} = (SELECT {} FROM {row}); END IF;",
                s.recompute(d, c, event),
                d.ident(&c.physical),
                c.up
            )
        }));
        out.push(format!(
            "CREATE TRIGGER {} BEFORE {} ON {} FOR EACH ROW BEGIN {} END",
            t.beside(d, &format!("{}_{}", t.sync_trigger(), event.suffix())),
            event.sql(),
            t.quoted(d),
            sets.join(" ")
        ));
        if s.marks() {
            // After the write: NEW then holds the key an AUTO_INCREMENT assigned.
            let keys: Vec<String> = s.key.iter().map(|k| format!("NEW.{}", d.ident(k))).collect();
            out.push(format!(
                "CREATE TRIGGER {} AFTER {} ON {} FOR EACH ROW INSERT IGNORE INTO {} ({}) SELECT {} FROM DUAL WHERE {}",
                t.beside(d, &format!("{}_{}", t.mark_trigger(), event.suffix())),
                event.sql(),
                t.quoted(d),
                t.beside(d, &t.written_table()),
                s.keys(d),
                keys.join(", "),
                s.disagree(d, &new, &up)
            ));
        }
    }
    out
}
