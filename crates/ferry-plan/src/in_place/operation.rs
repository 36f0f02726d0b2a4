//! The operations of an in-place change, each with what expand runs to
//! start it, what contract runs to complete it and what rollback runs to
//! abort it (Reshape's and pgroll's model). A table's expand, contract and
//! rollback are these, in order, around the sync triggers and version views
//! the table's operations share ([`Versions`]).

use super::{physical, CarriedIndex, ColumnFacts, Guard, InPlace, PlanDialect, Statement};
use ferry_core::in_place::{IndexSpec, Steps};
use ferry_core::spec::ConstraintChange;

/// What an operation does, as the spec's `[[change]]` names it. A split is
/// new computed columns and a dropped one; a merge, the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    AddColumn,
    RenameColumn,
    AlterType,
    DropColumn,
    AddIndex,
    /// An index on a renamed or retyped column, built again on the new one.
    CarryIndex,
    AddCheck,
    AddForeignKey,
}

impl OperationKind {
    pub const ALL: [OperationKind; 8] = [
        OperationKind::AddColumn,
        OperationKind::RenameColumn,
        OperationKind::AlterType,
        OperationKind::DropColumn,
        OperationKind::AddIndex,
        OperationKind::CarryIndex,
        OperationKind::AddCheck,
        OperationKind::AddForeignKey,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OperationKind::AddColumn => "add_column",
            OperationKind::RenameColumn => "rename_column",
            OperationKind::AlterType => "alter_type",
            OperationKind::DropColumn => "drop_column",
            OperationKind::AddIndex => "add_index",
            OperationKind::CarryIndex => "carry_index",
            OperationKind::AddCheck => "add_check",
            OperationKind::AddForeignKey => "add_foreign_key",
        }
    }

    /// Built by itself after the rest of expand (an index build), not in expand's transaction.
    pub fn built_apart(self) -> bool {
        matches!(self, OperationKind::AddIndex | OperationKind::CarryIndex)
    }
}

/// One operation and its statements. Contract runs every operation's
/// `validate`, then every `enforce`, drops the shared sync objects, then
/// every `complete`; rollback drops them, then runs each `abort` in reverse.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub kind: OperationKind,
    /// The column, index or constraint it concerns.
    pub subject: String,
    /// The index it builds (an index operation), by itself after the rest of expand.
    pub builds: Option<String>,
    /// Expand: what it adds beside the old shape.
    pub start: Vec<Statement>,
    /// Contract, before anything is dropped: proofs that hold no long lock
    /// (PostgreSQL's checks added `NOT VALID`, then validated).
    pub validate: Vec<Statement>,
    /// Contract, while the sync triggers still stand: NOT NULL, constraints.
    pub enforce: Vec<Statement>,
    /// Contract, once the sync triggers are gone: old columns dropped, new ones take their names.
    pub complete: Vec<Statement>,
    /// Rollback, once the sync triggers are gone: what `start` added.
    pub abort: Vec<Statement>,
}

impl Operation {
    fn new(kind: OperationKind, subject: &str) -> Operation {
        Operation {
            kind,
            subject: subject.to_string(),
            builds: None,
            start: Vec::new(),
            validate: Vec::new(),
            enforce: Vec::new(),
            complete: Vec::new(),
            abort: Vec::new(),
        }
    }

    /// Adds an engine's statements to each step.
    fn add(&mut self, steps: Steps) {
        self.start.extend(steps.start);
        self.validate.extend(steps.validate);
        self.enforce.extend(steps.enforce);
        self.complete.extend(steps.complete);
        self.abort.extend(steps.abort);
    }

    /// `add_column email_verified`: how status and the audit name it.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.name(), self.subject)
    }
}

/// What a table's operations share: the mark table, the sync triggers and
/// the version views. Started after the columns exist, dropped first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Versions {
    pub start: Vec<Statement>,
    /// Contract: the triggers, the mark table and version 1's views.
    pub complete: Vec<Statement>,
    /// Contract, after the operations completed: version 2's view follows a
    /// retyped column's rename (MariaDB/MySQL views name columns as text).
    pub finish: Vec<Statement>,
    pub abort: Vec<Statement>,
}

impl<'a> InPlace<'a> {
    /// The table's operations, in a stable order (their positions are how
    /// the state store knows them): added columns in the table's order,
    /// dropped columns, constraints, then indexes.
    pub fn operations(&self) -> Vec<Operation> {
        let mut out: Vec<Operation> = self.added().into_iter().map(|c| self.column_operation(c)).collect();
        out.extend(self.dropped.iter().map(|d| {
            let mut op = Operation::new(OperationKind::DropColumn, d);
            op.complete.push(self.drop_column(d));
            op
        }));
        out.extend(self.constraints.iter().map(|c| self.constraint_operation(c)));
        out.extend(self.index_builds().into_iter().map(|b| {
            let carried = self.carried.iter().find(|c| c.new.name == b.name);
            let kind = if carried.is_some() { OperationKind::CarryIndex } else { OperationKind::AddIndex };
            let mut op = Operation::new(kind, &b.name);
            op.builds = Some(b.name.clone());
            op.start.push(b.build);
            op.abort.push(b.abort);
            if let Some(c) = carried {
                op.subject = c.old.clone();
                self.swap_index(c, &mut op);
            }
            op
        }));
        out
    }

    /// A carried index at contract: the old one goes before its column (on
    /// MariaDB/MySQL a dropped column would narrow it; SQLite refuses to drop
    /// an indexed column), the new one takes its name once the columns have theirs.
    fn swap_index(&self, c: &CarriedIndex, op: &mut Operation) {
        let new = IndexSpec { name: &c.new.name, unique: c.new.unique, columns: &c.columns };
        op.add(self.dialect.swap_index(&self.changed(), &c.old, &new));
    }

    fn drop_column(&self, column: &str) -> Statement {
        Statement {
            sql: format!("ALTER TABLE {} DROP COLUMN {}", self.name(), self.id(column)),
            only_if: Some(Guard::ColumnPresent(column.to_string())),
        }
    }

    /// A computed, renamed or retyped column: added nullable under its
    /// physical name, made NOT NULL and given its name at contract.
    fn column_operation(&self, c: &ColumnFacts) -> Operation {
        let name = self.name();
        let kind = match (c.expression.is_some(), c.renamed_from()) {
            (true, _) => OperationKind::AddColumn,
            (false, Some(_)) => OperationKind::RenameColumn,
            (false, None) => OperationKind::AlterType,
        };
        let mut op = Operation::new(kind, &c.name);
        let col = physical(c);
        op.start.push(Statement {
            sql: format!("ALTER TABLE {name} ADD COLUMN {} {}", self.id(&col), self.dialect.declare(&c.desired)),
            only_if: Some(Guard::ColumnMissing(col.clone())),
        });
        if !c.nullable {
            self.not_null(c, &mut op);
        }
        match kind {
            OperationKind::RenameColumn => op.complete.extend(c.renamed_from().map(|old| self.drop_column(old))),
            OperationKind::AlterType => {
                op.complete.push(Statement {
                    sql: format!("ALTER TABLE {name} DROP COLUMN {}", self.id(&c.name)),
                    only_if: Some(Guard::BothPresent(c.name.clone(), col.clone())),
                });
                op.complete.push(Statement {
                    sql: format!("ALTER TABLE {name} RENAME COLUMN {} TO {}", self.id(&col), self.id(&c.name)),
                    only_if: Some(Guard::ColumnPresent(col.clone())),
                });
            }
            _ => {}
        }
        op.abort.push(self.drop_column(&col));
        op
    }

    /// NOT NULL at contract: on PostgreSQL a `CHECK … NOT VALID` validated
    /// without blocking writers first, so that SET NOT NULL does not scan;
    /// SQLite's comes from the table rebuild (see `sqlite_not_null`).
    fn not_null(&self, c: &ColumnFacts, op: &mut Operation) {
        op.add(self.dialect.not_null(&self.changed(), &c.name, &physical(c), &c.desired));
    }

    /// A check or foreign key: enforced on new writes from expand and
    /// validated at contract on PostgreSQL (`NOT VALID`: no scan, no long
    /// lock); added at contract on MariaDB/MySQL; by the table rebuild on SQLite.
    fn constraint_operation(&self, c: &ConstraintChange) -> Operation {
        let kind = match c {
            ConstraintChange::Check { .. } => OperationKind::AddCheck,
            ConstraintChange::ForeignKey { .. } => OperationKind::AddForeignKey,
        };
        let mut op = Operation::new(kind, c.name());
        op.add(self.dialect.add_constraint(&self.changed(), c.name(), &self.constraint_clause(c)));
        op
    }

    /// The objects the table's operations share (none when it adds no column).
    pub fn versions(&self) -> Versions {
        if self.added().is_empty() {
            return Versions::default();
        }
        let name = self.name();
        let mut start: Vec<Statement> = self.drop_objects(true).into_iter().map(Statement::plain).collect();
        start.extend(self.sync_objects().into_iter().map(Statement::plain));
        start.extend(self.views().into_iter().map(Statement::plain));
        let mut finish = Vec::new();
        if !self.dialect.views_follow_renames() && self.added().iter().any(|c| physical(c) != c.name) {
            let columns: Vec<String> = self.columns.iter().map(|c| self.id(&c.name)).collect();
            finish.push(Statement::plain(format!(
                "CREATE OR REPLACE VIEW {} AS SELECT {} FROM {name}",
                self.view(super::Version::New),
                columns.join(", ")
            )));
        }
        Versions {
            start,
            complete: self.drop_objects(false).into_iter().map(Statement::plain).collect(),
            finish,
            abort: self.drop_objects(true).into_iter().map(Statement::plain).collect(),
        }
    }

    /// The mark table (where version 2 can write what version 1 cannot
    /// express) and the sync triggers: what every write to the table pays for.
    fn sync_objects(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.marks() {
            let written = self.beside(&self.written_table());
            let keys = self.keys();
            let never = self.dialect.never();
            out.push(format!("CREATE TABLE {written} AS SELECT {keys} FROM {} WHERE {never}", self.name()));
            out.push(format!(
                "CREATE UNIQUE INDEX {} ON {written} ({keys})",
                self.id(&format!("{}_key", self.written_table()))
            ));
        }
        out.extend(self.triggers());
        out
    }

    /// The fill's cost on a stand-in table of the old shape (the plan's
    /// probe): what to run before filling it with [`InPlace::backfill_batch`]
    /// — the new columns, the mark table and the sync triggers that fire on
    /// every filled row, without views or constraints — and what drops the
    /// objects that would outlive the table (the mark table, PostgreSQL's
    /// trigger function).
    pub fn fill_stand_in(&self) -> (Vec<String>, Vec<String>) {
        let name = self.name();
        let mut start: Vec<String> = self
            .added()
            .into_iter()
            .map(|c| {
                format!("ALTER TABLE {name} ADD COLUMN {} {}", self.id(&physical(c)), self.dialect.declare(&c.desired))
            })
            .collect();
        start.extend(self.sync_objects());
        (start, self.drop_sync_objects())
    }

    /// What a `ferry plan` killed while filling a stand-in table named
    /// `table` leaves besides it: the triggers, the mark table and
    /// PostgreSQL's trigger function ([`InPlace::fill_stand_in`]'s teardown).
    pub fn stand_in_leftovers(dialect: &'static dyn PlanDialect, table: &str) -> Vec<String> {
        let nothing = InPlace {
            dialect,
            table,
            key: &[],
            columns: &[],
            dropped: &[],
            namespace: None,
            indexes: &[],
            constraints: &[],
            downs: &[],
            carried: &[],
        };
        nothing.drop_sync_objects()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/in-place.md's table of operations and docs/status-json.md name every kind, and the stages.
    #[test]
    fn the_docs_name_every_operation_and_stage() {
        let read =
            |doc: &str| std::fs::read_to_string(format!("{}/../../docs/{doc}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let (in_place, status) = (read("in-place.md"), read("status-json.md"));
        for kind in OperationKind::ALL {
            assert!(in_place.contains(&format!("`{}`", kind.name())), "docs/in-place.md lacks {}", kind.name());
            assert!(status.contains(kind.name()), "docs/status-json.md lacks {}", kind.name());
        }
        for stage in ferry_core::lifecycle::OperationStage::ALL {
            assert!(status.contains(stage.name()) && in_place.contains(&format!("`{}`", stage.name())), "{stage:?}");
        }
    }
}
