//! The sync triggers of an in-place change, in each engine's form: what
//! keeps the old and the new shape of the table right whichever version of
//! the application writes (see the parent module).

use super::{is_added, physical, up_of, InPlace};
use crate::facts::ColumnFacts;
use ferry_core::EngineKind;

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

    /// A trigger's condition for "the write set one of `from`": an INSERT
    /// that gives it a value, or an UPDATE that changes it.
    fn written(&self, from: &[&ColumnFacts], event: &str) -> String {
        let conds: Vec<String> = from
            .iter()
            .map(|c| {
                let column = self.id(&physical(c));
                if event == "INSERT" {
                    format!("NEW.{column} IS NOT NULL")
                } else {
                    self.dialect.is_distinct_from(&format!("NEW.{column}"), &format!("OLD.{column}"))
                }
            })
            .collect();
        if conds.is_empty() {
            "1 = 0".into()
        } else {
            format!("({})", conds.join(" OR "))
        }
    }

    /// A trigger's condition for "the write set one of `from` to a value
    /// that the old columns do not compute": only then is it written back.
    /// A fill from the old columns (the backfill's UPDATE, or on SQLite the
    /// trigger's own) must not rewrite them as `down(up(old))`: where the
    /// round trip loses something (a one-word name split and joined back),
    /// version 1's value would change under it.
    fn set_apart(
        &self,
        from: &[&ColumnFacts],
        new: &dyn Fn(&ColumnFacts) -> String,
        up: &dyn Fn(&ColumnFacts) -> String,
    ) -> String {
        let conds: Vec<String> = from.iter().map(|c| self.dialect.is_distinct_from(&new(c), &up(c))).collect();
        if conds.is_empty() {
            "1 = 0".into()
        } else {
            format!("({})", conds.join(" OR "))
        }
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

    /// A trigger's condition for computing `c` from the old columns: an
    /// INSERT that leaves it NULL, or an UPDATE that leaves it as it was and
    /// changes a column `up` reads. An UPDATE of anything else keeps the
    /// value version 2 wrote.
    fn recompute(&self, c: &ColumnFacts, event: &str) -> String {
        let column = self.id(&physical(c));
        if event == "INSERT" {
            return format!("NEW.{column} IS NULL");
        }
        let changed: Vec<String> = self
            .reads(c)
            .iter()
            .map(|r| self.dialect.is_distinct_from(&format!("NEW.{}", self.id(r)), &format!("OLD.{}", self.id(r))))
            .collect();
        let kept = self.dialect.is_not_distinct_from(&format!("NEW.{column}"), &format!("OLD.{column}"));
        if changed.is_empty() {
            return "1 = 0".into();
        }
        format!("{kept} AND ({})", changed.join(" OR "))
    }

    /// The sync triggers, in the engine's form.
    pub(super) fn triggers(&self) -> Vec<String> {
        match self.engine() {
            EngineKind::Postgres => self.postgres_trigger(),
            EngineKind::Mysql => self.mysql_triggers(),
            EngineKind::Sqlite => self.sqlite_triggers(),
        }
    }

    fn postgres_trigger(&self) -> Vec<String> {
        let row = format!("(SELECT NEW.*) AS {}", self.id(self.bare()));
        let mut body = Vec::new();
        // Written back first, from the row as the application wrote it; then what the old columns compute.
        for b in self.backwards() {
            let apart = self.set_apart(&b.from, &|c| format!("NEW.{}", self.id(&physical(c))), &|c| {
                format!("(SELECT {} FROM {row})", up_of(self.dialect, c))
            });
            body.push(format!(
                "  IF ((TG_OP = 'INSERT' AND {}) OR (TG_OP = 'UPDATE' AND {})) AND {apart} THEN\n    NEW.{} := {};\n  END IF;",
                self.written(&b.from, "INSERT"),
                self.written(&b.from, "UPDATE"),
                self.id(&b.old),
                b.value
            ));
        }
        for c in self.added() {
            let column = self.id(&physical(c));
            body.push(format!(
                "  IF (TG_OP = 'INSERT' AND {}) OR (TG_OP = 'UPDATE' AND {}) THEN\n    SELECT {} INTO NEW.{column} FROM {row};\n  END IF;",
                self.recompute(c, "INSERT"),
                self.recompute(c, "UPDATE"),
                up_of(self.dialect, c),
            ));
        }
        if self.marks() {
            let keys: Vec<String> = self.key.iter().map(|k| format!("NEW.{}", self.id(k))).collect();
            body.push(format!(
                "  IF {} THEN\n    INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING;\n  END IF;",
                self.disagree(&|c| format!("NEW.{}", self.id(&physical(c))), &|c| format!(
                    "(SELECT {} FROM {row})",
                    up_of(self.dialect, c)
                )),
                self.beside(&self.written_table()),
                self.keys(),
                keys.join(", ")
            ));
        }
        let function = self.beside(&self.sync_trigger());
        vec![
            format!(
                "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $ferry$\nBEGIN\n{}\n  RETURN NEW;\nEND $ferry$",
                body.join("\n")
            ),
            format!(
                "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION {function}()",
                self.id(&self.sync_trigger()),
                self.name()
            ),
        ]
    }

    /// `NEW.a AS a, ...`: the row a MariaDB/MySQL trigger evaluates an expression over.
    fn mysql_row(&self) -> String {
        let mut names = self.old_columns();
        names.extend(self.added().iter().map(|c| physical(c)));
        names.dedup();
        let all: Vec<String> = names.iter().map(|c| format!("NEW.{0} AS {0}", self.id(c))).collect();
        format!("(SELECT {}) AS r", all.join(", "))
    }

    fn mysql_triggers(&self) -> Vec<String> {
        let row = self.mysql_row();
        let mut out = Vec::new();
        for event in ["INSERT", "UPDATE"] {
            // Written back first, from the row as the application wrote it; then what the old columns compute.
            let mut sets: Vec<String> = self
                .backwards()
                .iter()
                .map(|b| {
                    let apart = self.set_apart(&b.from, &|c| format!("NEW.{}", self.id(&physical(c))), &|c| {
                        format!("(SELECT {} FROM {row})", up_of(self.dialect, c))
                    });
                    format!(
                        "IF {} AND {apart} THEN SET NEW.{} = {}; END IF;",
                        self.written(&b.from, event),
                        self.id(&b.old),
                        b.value
                    )
                })
                .collect();
            sets.extend(self.added().iter().map(|c| {
                format!(
                    "IF {} THEN SET NEW.{} = (SELECT {} FROM {row}); END IF;",
                    self.recompute(c, event),
                    self.id(&physical(c)),
                    up_of(self.dialect, c)
                )
            }));
            out.push(format!(
                "CREATE TRIGGER {} BEFORE {event} ON {} FOR EACH ROW BEGIN {} END",
                self.beside(&format!("{}_{}", self.sync_trigger(), event.to_lowercase())),
                self.name(),
                sets.join(" ")
            ));
            if self.marks() {
                // After the write: NEW then holds the key an AUTO_INCREMENT assigned.
                let keys: Vec<String> = self.key.iter().map(|k| format!("NEW.{}", self.id(k))).collect();
                out.push(format!(
                    "CREATE TRIGGER {} AFTER {event} ON {} FOR EACH ROW INSERT IGNORE INTO {} ({}) SELECT {} FROM DUAL WHERE {}",
                    self.beside(&format!("{}_{}", self.mark_trigger(), event.to_lowercase())),
                    self.name(),
                    self.beside(&self.written_table()),
                    self.keys(),
                    keys.join(", "),
                    self.disagree(&|c| format!("NEW.{}", self.id(&physical(c))), &|c| format!("(SELECT {} FROM {row})", up_of(self.dialect, c)))
                ));
            }
        }
        out
    }

    fn sqlite_triggers(&self) -> Vec<String> {
        let name = self.name();
        let this_row: Vec<String> = self.key.iter().map(|k| format!("{0} = NEW.{0}", self.id(k))).collect();
        let this_row = this_row.join(" AND ");
        let mut out = Vec::new();
        // SQLite triggers cannot assign NEW: each column is set after the write, when the write left it alone.
        for event in ["INSERT", "UPDATE"] {
            // Every value is read from the row as the application wrote it (NEW, OLD): the order does not matter.
            let mut sets = Vec::new();
            for c in self.added() {
                let column = self.id(&physical(c));
                let untouched = self.recompute(c, event);
                sets.push(format!(
                    "{column} = CASE WHEN {untouched} THEN {} ELSE {column} END",
                    up_of(self.dialect, c)
                ));
            }
            for b in self.backwards() {
                let old = self.id(&b.old);
                // The table's columns, read in the UPDATE below: the row as the write left it.
                let apart = self.set_apart(&b.from, &|c| self.id(&physical(c)), &|c| up_of(self.dialect, c));
                sets.push(format!(
                    "{old} = CASE WHEN {} AND {apart} THEN {} ELSE {old} END",
                    self.written(&b.from, event),
                    b.value
                ));
            }
            let mut body = format!("UPDATE {name} SET {} WHERE {this_row};", sets.join(", "));
            if self.marks() {
                body.push_str(&format!(
                    " INSERT OR IGNORE INTO {} ({keys}) SELECT {keys} FROM {name} WHERE {this_row} AND ({});",
                    self.beside(&self.written_table()),
                    self.disagree(&|c| self.id(&physical(c)), &|c| up_of(self.dialect, c)),
                    keys = self.keys(),
                ));
            }
            out.push(format!(
                "CREATE TRIGGER {} AFTER {event} ON {name} BEGIN {body} END",
                self.beside(&format!("{}_{}", self.sync_trigger(), event.to_lowercase())),
            ));
        }
        out
    }

    /// A trigger's condition for marking a row as version 2's own: some
    /// added column without `down` holds a value that `up(old)` does not
    /// give. A NULL there is a row the backfill has not reached, not a write.
    fn disagree(&self, new: &dyn Fn(&ColumnFacts) -> String, up: &dyn Fn(&ColumnFacts) -> String) -> String {
        let conds: Vec<String> = self
            .added()
            .into_iter()
            .filter(|c| !self.has_down(c))
            .map(|c| format!("({} IS NOT NULL AND {})", new(c), self.dialect.is_distinct_from(&new(c), &up(c))))
            .collect();
        if conds.is_empty() {
            "1 = 0".into()
        } else {
            conds.join(" OR ")
        }
    }
}
