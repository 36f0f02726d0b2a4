//! The sync triggers of an in-place change: what keeps the old and the new
//! shape of the table right whichever version of the application writes
//! (see the parent module), as a [`SyncTriggers`] value the table's dialect
//! writes in its trigger language.

use super::{is_added, physical, up_of, InPlace, NewColumn, SyncTriggers, WriteBack};
use crate::facts::ColumnFacts;

/// A write back into an old column: the value (over the row in its new
/// shape) and the new columns whose write sets it.
struct Backward<'c> {
    old: String,
    value: String,
    from: Vec<&'c ColumnFacts>,
}

impl<'a> InPlace<'a> {
    /// SQL over the row in its new shape, each new column under its final
    /// name. A new column the backfill has not reached yet (NULL) takes what
    /// the old columns compute, so that a write to one part of a split on
    /// such a row does not write back an incomplete whole.
    fn over_new_row(&self, sql: &str) -> String {
        let mut written: Vec<String> = self.old_columns();
        written.extend(self.added().iter().map(|c| physical(c)));
        written.dedup();
        let old_row: Vec<String> = written.iter().map(|c| format!("NEW.{0} AS {0}", self.id(c))).collect();
        format!(
            "(SELECT ({sql}) FROM (SELECT {} FROM (SELECT {}) AS ferry_old) AS ferry_new)",
            self.new_shape("ferry_old.").join(", "),
            old_row.join(", ")
        )
    }

    /// The row in its new shape, read from the table's physical columns
    /// (each qualified by `prefix`): a new column not yet filled reads as
    /// what the old columns compute.
    pub(super) fn new_shape(&self, prefix: &str) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| {
                if is_added(c) {
                    let p = self.id(&physical(c));
                    format!("COALESCE({prefix}{p}, {}) AS {}", up_of(self.dialect, c), self.id(&c.name))
                } else {
                    format!("{prefix}{0} AS {0}", self.id(&c.name))
                }
            })
            .collect()
    }

    /// Every old column the change computes back from the new ones with a
    /// `down` the spec gives, and that SQL (over the row in its new shape).
    pub(super) fn downs_given(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .added()
            .into_iter()
            .filter(|c| c.expression.is_none())
            .filter_map(|c| Some((c.source_column.clone()?, c.down.clone()?)))
            .collect();
        out.extend(self.downs.iter().map(|d| (d.column.clone(), d.sql.clone())));
        out
    }

    /// Every write back into an old column: a renamed or retyped column's
    /// old one (the new value, or the change's `down`), and the `down` of a
    /// split or merge.
    fn backwards(&self) -> Vec<Backward<'a>> {
        let mut out: Vec<Backward<'a>> = self
            .added()
            .into_iter()
            .filter(|c| c.expression.is_none())
            .filter_map(|c| {
                let old = c.source_column.clone()?;
                let value = match &c.down {
                    None => format!("NEW.{}", self.id(&physical(c))),
                    Some(down) => self.over_new_row(down),
                };
                Some(Backward { old, value, from: vec![c] })
            })
            .collect();
        for d in self.downs {
            let from: Vec<&'a ColumnFacts> = self.columns.iter().filter(|c| d.written_by.contains(&c.name)).collect();
            out.push(Backward { old: d.column.clone(), value: self.over_new_row(&d.sql), from });
        }
        out
    }

    /// Whether a write to `c` is written back into the old columns.
    pub(super) fn has_down(&self, c: &ColumnFacts) -> bool {
        self.backwards().iter().any(|b| b.from.iter().any(|f| f.name == c.name))
    }

    /// The old columns `up` reads for `c`.
    fn reads(&self, c: &ColumnFacts) -> Vec<String> {
        let old = self.old_columns();
        match (c.up.as_ref().or(c.expression.as_ref()), &c.source_column) {
            (Some(expr), _) => ferry_core::sqlexpr::columns_read(expr, self.engine(), &|n: &str| {
                old.iter().any(|o| o.eq_ignore_ascii_case(n))
            }),
            (None, Some(src)) => vec![src.clone()],
            (None, None) => Vec::new(),
        }
    }

    /// What the sync triggers do, for the dialect to write in its trigger language.
    pub(super) fn sync_model(&self) -> SyncTriggers<'a> {
        let added = self.added();
        let backwards = self.backwards();
        let position = |f: &ColumnFacts| added.iter().position(|c| c.name == f.name);
        SyncTriggers {
            table: self.changed(),
            key: self.key,
            old_columns: self.old_columns(),
            added: added
                .iter()
                .map(|c| NewColumn {
                    physical: physical(c),
                    up: up_of(self.dialect, c),
                    reads: self.reads(c),
                    written_back: backwards.iter().any(|b| b.from.iter().any(|f| f.name == c.name)),
                })
                .collect(),
            write_backs: backwards
                .iter()
                .map(|b| WriteBack {
                    old: b.old.clone(),
                    value: b.value.clone(),
                    from: b.from.iter().filter_map(|f| position(f)).collect(),
                })
                .collect(),
        }
    }

    /// The sync triggers, in the engine's form.
    pub(super) fn triggers(&self) -> Vec<String> {
        self.dialect.sync_triggers(&self.sync_model())
    }
}
