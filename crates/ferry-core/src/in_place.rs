//! A change in place as values each engine writes in its own SQL: the
//! statements of an operation's steps, an online index build, the sync
//! triggers. The planner (`ferry_plan::in_place`) decides what a change does;
//! the table's [`PlanDialect`] writes it, so the planner never asks which
//! engine it is.

use crate::PlanDialect;

/// One statement of a step, with the condition under which it runs: an
/// engine without `IF [NOT] EXISTS` for columns gets the check from Ferry.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub only_if: Option<Guard>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Guard {
    /// Runs only while the table lacks this column (adding it).
    ColumnMissing(String),
    /// Runs only while the table has this column (dropping or renaming it).
    ColumnPresent(String),
    /// Runs only while the table has both columns: a retyped column's old
    /// one is dropped while its replacement still waits beside it.
    BothPresent(String, String),
    /// Runs only while the table has no index of this name.
    IndexMissing(String),
    /// Runs only while the table has an index of this name.
    IndexPresent(String),
    /// Runs only while the table has no check or foreign key of this name.
    ConstraintMissing(String),
}

impl Statement {
    pub fn plain(sql: impl Into<String>) -> Statement {
        Statement { sql: sql.into(), only_if: None }
    }

    pub fn guarded(sql: impl Into<String>, guard: Guard) -> Statement {
        Statement { sql: sql.into(), only_if: Some(guard) }
    }
}

/// What an engine adds to an operation's steps (see `ferry_plan::in_place::Operation`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Steps {
    pub start: Vec<Statement>,
    pub validate: Vec<Statement>,
    pub enforce: Vec<Statement>,
    pub complete: Vec<Statement>,
    pub abort: Vec<Statement>,
}

/// An index build of expand, and what undoes one stopped halfway.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexBuildSql {
    pub build: Statement,
    pub abort: Statement,
}

/// An index a change in place builds.
#[derive(Debug, Clone, Copy)]
pub struct IndexSpec<'a> {
    pub name: &'a str,
    pub unique: bool,
    pub columns: &'a [String],
}

/// A table changed in place, and the names of the objects Ferry puts beside it.
#[derive(Debug, Clone, Copy)]
pub struct ChangedTable<'a> {
    /// As the spec names it: `users`, `app.users`.
    pub name: &'a str,
}

impl<'a> ChangedTable<'a> {
    /// The table's own name, without its schema.
    pub fn bare(&self) -> &'a str {
        self.name.rsplit('.').next().unwrap_or(self.name)
    }

    /// The table, quoted part by part.
    pub fn quoted<D: PlanDialect + ?Sized>(&self, d: &D) -> String {
        d.table(self.name)
    }

    /// A Ferry object beside the table (same schema), quoted.
    pub fn beside<D: PlanDialect + ?Sized>(&self, d: &D, object: &str) -> String {
        match self.name.rsplit_once('.') {
            Some((schema, _)) => format!("{}.{}", d.ident(schema), d.ident(object)),
            None => d.ident(object),
        }
    }

    /// The sync triggers' name (and PostgreSQL's trigger function's).
    pub fn sync_trigger(&self) -> String {
        format!("ferry_sync_{}", self.bare())
    }

    /// The triggers that record version 2's own writes, where they are apart from the sync triggers.
    pub fn mark_trigger(&self) -> String {
        format!("ferry_mark_{}", self.bare())
    }

    /// The table of keys whose new columns version 2 wrote itself.
    pub fn written_table(&self) -> String {
        format!("ferry_written_{}", self.bare())
    }
}

/// The write a trigger fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Insert,
    Update,
}

impl Event {
    pub const BOTH: [Event; 2] = [Event::Insert, Event::Update];

    pub fn sql(self) -> &'static str {
        match self {
            Event::Insert => "INSERT",
            Event::Update => "UPDATE",
        }
    }

    /// The suffix of a trigger that fires on this event alone.
    pub fn suffix(self) -> &'static str {
        match self {
            Event::Insert => "insert",
            Event::Update => "update",
        }
    }
}

/// A column a change in place adds, as its sync triggers see it.
#[derive(Debug, Clone)]
pub struct NewColumn {
    /// The column it is written to while both versions run (unquoted).
    pub physical: String,
    /// Its value computed from the old columns (SQL over them).
    pub up: String,
    /// The old columns `up` reads (unquoted).
    pub reads: Vec<String>,
    /// A write to it is written back into the old columns.
    pub written_back: bool,
}

/// A write back into an old column from new ones.
#[derive(Debug, Clone)]
pub struct WriteBack {
    /// The old column (unquoted).
    pub old: String,
    /// Its value, over the row as the write left it (`NEW`).
    pub value: String,
    /// The new columns whose write sets it (positions in [`SyncTriggers::added`]).
    pub from: Vec<usize>,
}

/// The sync triggers of a change in place: what keeps the old and the new
/// shape of the table right whichever version of the application writes.
/// Each engine's [`PlanDialect::sync_triggers`] writes them in its trigger
/// language; the conditions are the same on every engine and written here.
#[derive(Debug, Clone)]
pub struct SyncTriggers<'a> {
    pub table: ChangedTable<'a>,
    /// The table's key (unquoted).
    pub key: &'a [String],
    /// The columns version 1 knows (unquoted).
    pub old_columns: Vec<String>,
    pub added: Vec<NewColumn>,
    /// Written first, from the row as the application wrote it; then what the old columns compute.
    pub write_backs: Vec<WriteBack>,
}

impl SyncTriggers<'_> {
    /// Some added column can be set by version 2 to a value the old
    /// columns cannot express: such rows' keys go to the mark table.
    pub fn marks(&self) -> bool {
        self.added.iter().any(|c| !c.written_back)
    }

    /// The key's columns, quoted and listed.
    pub fn keys(&self, d: &dyn PlanDialect) -> String {
        column_list(d, self.key)
    }

    /// Every column a write leaves in the row: the old ones, then the new ones.
    pub fn row_columns(&self) -> Vec<String> {
        let mut names = self.old_columns.clone();
        names.extend(self.added.iter().map(|c| c.physical.clone()));
        names.dedup();
        names
    }

    pub fn sources<'s>(&'s self, b: &'s WriteBack) -> impl Iterator<Item = &'s NewColumn> + 's {
        b.from.iter().map(|&i| &self.added[i])
    }

    /// "The write set one of `b`'s sources": an INSERT that gives it a
    /// value, or an UPDATE that changes it.
    pub fn written(&self, d: &dyn PlanDialect, b: &WriteBack, event: Event) -> String {
        let conds: Vec<String> = self
            .sources(b)
            .map(|c| {
                let column = d.ident(&c.physical);
                match event {
                    Event::Insert => format!("NEW.{column} IS NOT NULL"),
                    Event::Update => d.is_distinct_from(&format!("NEW.{column}"), &format!("OLD.{column}")),
                }
            })
            .collect();
        any(&conds)
    }

    /// "The write set one of `b`'s sources to a value the old columns do
    /// not compute": only then is it written back. A fill from the old
    /// columns (the backfill's UPDATE, or on SQLite the trigger's own) must
    /// not rewrite them as `down(up(old))`: where the round trip loses
    /// something (a one-word name split and joined back), version 1's value
    /// would change under it.
    pub fn set_apart(
        &self,
        d: &dyn PlanDialect,
        b: &WriteBack,
        new: &dyn Fn(&NewColumn) -> String,
        up: &dyn Fn(&NewColumn) -> String,
    ) -> String {
        let conds: Vec<String> = self.sources(b).map(|c| d.is_distinct_from(&new(c), &up(c))).collect();
        any(&conds)
    }

    /// "Compute `c` from the old columns": an INSERT that leaves it NULL, or
    /// an UPDATE that leaves it as it was and changes a column `up` reads.
    /// An UPDATE of anything else keeps the value version 2 wrote.
    pub fn recompute(&self, d: &dyn PlanDialect, c: &NewColumn, event: Event) -> String {
        let column = d.ident(&c.physical);
        if event == Event::Insert {
            return format!("NEW.{column} IS NULL");
        }
        let changed: Vec<String> = c
            .reads
            .iter()
            .map(|r| d.is_distinct_from(&format!("NEW.{}", d.ident(r)), &format!("OLD.{}", d.ident(r))))
            .collect();
        let kept = d.is_not_distinct_from(&format!("NEW.{column}"), &format!("OLD.{column}"));
        if changed.is_empty() {
            return "1 = 0".into();
        }
        format!("{kept} AND ({})", changed.join(" OR "))
    }

    /// "Mark the row as version 2's own": some added column without a write
    /// back holds a value that `up(old)` does not give. A NULL there is a
    /// row the backfill has not reached, not a write.
    pub fn disagree(
        &self,
        d: &dyn PlanDialect,
        new: &dyn Fn(&NewColumn) -> String,
        up: &dyn Fn(&NewColumn) -> String,
    ) -> String {
        let conds: Vec<String> = self
            .added
            .iter()
            .filter(|c| !c.written_back)
            .map(|c| format!("({} IS NOT NULL AND {})", new(c), d.is_distinct_from(&new(c), &up(c))))
            .collect();
        if conds.is_empty() {
            "1 = 0".into()
        } else {
            conds.join(" OR ")
        }
    }
}

/// `(a OR b)`, or a condition never met when there is nothing to meet.
fn any(conds: &[String]) -> String {
    if conds.is_empty() {
        "1 = 0".into()
    } else {
        format!("({})", conds.join(" OR "))
    }
}

/// `columns`, quoted and listed.
pub fn column_list(d: &dyn PlanDialect, columns: &[String]) -> String {
    columns.iter().map(|c| d.ident(c)).collect::<Vec<_>>().join(", ")
}
