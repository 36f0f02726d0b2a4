//! A change in place in PostgreSQL's SQL: indexes built `CONCURRENTLY`,
//! checks and foreign keys added `NOT VALID` and validated without blocking
//! writers, one PL/pgSQL function behind one trigger for both events.

use crate::plan_dialect::PostgresPlanDialect as D;
use ferry_core::in_place::{
    column_list, ChangedTable, Event, IndexBuildSql, IndexSpec, NewColumn, Statement, Steps, SyncTriggers,
};
use ferry_core::PlanDialect;

pub(crate) fn online_index(d: &D, t: &ChangedTable, i: &IndexSpec) -> IndexBuildSql {
    let unique = if i.unique { "UNIQUE " } else { "" };
    IndexBuildSql {
        build: Statement::plain(format!(
            "CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})",
            d.ident(i.name),
            t.quoted(d),
            column_list(d, i.columns)
        )),
        abort: Statement::plain(format!("DROP INDEX CONCURRENTLY IF EXISTS {}", t.beside(d, i.name))),
    }
}

pub(crate) fn swap_index(d: &D, t: &ChangedTable, old: &str, new: &IndexSpec) -> Steps {
    let name = t.quoted(d);
    Steps {
        // A unique key may be a constraint (which owns its index) or an index.
        enforce: vec![
            Statement::plain(format!("ALTER TABLE {name} DROP CONSTRAINT IF EXISTS {}", d.ident(old))),
            Statement::plain(format!("DROP INDEX IF EXISTS {}", t.beside(d, old))),
        ],
        complete: vec![Statement::plain(format!(
            "ALTER INDEX IF EXISTS {} RENAME TO {}",
            t.beside(d, new.name),
            d.ident(old)
        ))],
        ..Steps::default()
    }
}

/// A `CHECK … NOT VALID` validated without blocking writers first, so that SET NOT NULL does not scan.
pub(crate) fn not_null(d: &D, t: &ChangedTable, column: &str, physical: &str) -> Steps {
    let name = t.quoted(d);
    let col = d.ident(physical);
    let check = d.ident(&format!("ferry_{}_{column}_not_null", t.bare()));
    let sql = |s: String| Statement::plain(format!("ALTER TABLE {name} {s}"));
    Steps {
        // Dropped first, so that a contract stopped after this step can run again.
        validate: vec![
            sql(format!("DROP CONSTRAINT IF EXISTS {check}")),
            sql(format!("ADD CONSTRAINT {check} CHECK ({col} IS NOT NULL) NOT VALID")),
            sql(format!("VALIDATE CONSTRAINT {check}")),
        ],
        enforce: vec![sql(format!("ALTER COLUMN {col} SET NOT NULL")), sql(format!("DROP CONSTRAINT {check}"))],
        ..Steps::default()
    }
}

/// Enforced on new writes from expand (`NOT VALID`: no scan, no long lock), validated at contract.
pub(crate) fn add_constraint(d: &D, t: &ChangedTable, constraint: &str, clause: &str) -> Steps {
    let name = t.quoted(d);
    let drop = Statement::plain(format!("ALTER TABLE {name} DROP CONSTRAINT IF EXISTS {}", d.ident(constraint)));
    Steps {
        // Ferry's own (a name the table had is refused before expand): added again after a stop.
        start: vec![drop.clone(), Statement::plain(format!("ALTER TABLE {name} ADD {clause} NOT VALID"))],
        validate: vec![Statement::plain(format!("ALTER TABLE {name} VALIDATE CONSTRAINT {}", d.ident(constraint)))],
        abort: vec![drop],
        ..Steps::default()
    }
}

pub(crate) fn sync_triggers(d: &D, s: &SyncTriggers) -> Vec<String> {
    let t = s.table;
    let row = format!("(SELECT NEW.*) AS {}", d.ident(t.bare()));
    let new = |c: &NewColumn| format!("NEW.{}", d.ident(&c.physical));
    let up = |c: &NewColumn| format!("(SELECT {} FROM {row})", c.up);
    let mut body = Vec::new();
    // Written back first, from the row as the application wrote it; then what the old columns compute.
    for b in &s.write_backs {
        body.push(format!(
            "  IF ((TG_OP = 'INSERT' AND {}) OR (TG_OP = 'UPDATE' AND {})) AND {} THEN\n    NEW.{} := {};\n  END IF;",
            s.written(d, b, Event::Insert),
            s.written(d, b, Event::Update),
            s.set_apart(d, b, &new, &up),
            d.ident(&b.old),
            b.value
        ));
    }
    for c in &s.added {
        body.push(format!(
            "  IF (TG_OP = 'INSERT' AND {}) OR (TG_OP = 'UPDATE' AND {}) THEN\n    SELECT {} INTO NEW.{} FROM {row};\n  END IF;",
            s.recompute(d, c, Event::Insert),
            s.recompute(d, c, Event::Update),
            c.up,
            d.ident(&c.physical),
        ));
    }
    if s.marks() {
        let keys: Vec<String> = s.key.iter().map(|k| format!("NEW.{}", d.ident(k))).collect();
        body.push(format!(
            "  IF {} THEN\n    INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING;\n  END IF;",
            s.disagree(d, &new, &up),
            t.beside(d, &t.written_table()),
            s.keys(d),
            keys.join(", ")
        ));
    }
    let function = t.beside(d, &t.sync_trigger());
    vec![
        format!(
            "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $ferry$\nBEGIN\n{}\n  RETURN NEW;\nEND $ferry$",
            body.join("\n")
        ),
        format!(
            "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION {function}()",
            d.ident(&t.sync_trigger()),
            t.quoted(d)
        ),
    ]
}

pub(crate) fn drop_sync_triggers(d: &D, t: &ChangedTable) -> Vec<String> {
    vec![
        format!("DROP TRIGGER IF EXISTS {} ON {}", d.ident(&t.sync_trigger()), t.quoted(d)),
        format!("DROP FUNCTION IF EXISTS {}()", t.beside(d, &t.sync_trigger())),
    ]
}
