//! `ferry contract --confirm`, in place: the point of no return, refused
//! while an object uses a column it drops or a row breaks a constraint it
//! adds; one transaction on PostgreSQL and SQLite (NOT NULL and constraints
//! by SQLite's table rebuild), recorded steps on MariaDB/MySQL.

use super::verify::failures;
use super::Change;
use crate::error::{Result, RunError, RunErrorKind};
use crate::machine::{advance, permit};
use crate::progress::Progress;
use crate::runner::Migration;
use ferry_core::lifecycle::{Command, Event, OperationStage, Stage, State};
use ferry_core::{AuditEvent, Phase};
use ferry_plan::in_place::{Statement, Version};

impl Migration {
    /// `ferry contract --confirm` for an in-place change: refused unless a
    /// final verification passes and nothing but Ferry's own objects uses a
    /// column it drops; then one transaction (PostgreSQL, SQLite) or an
    /// ordered sequence recorded step by step (MariaDB/MySQL).
    pub(crate) async fn contract_in_place(
        &self,
        progress: &dyn Progress,
        options: &crate::contract::ContractOptions,
    ) -> Result<crate::contract::ContractOutcome> {
        let state = permit(&self.state, Command::Contract)?;
        if !options.confirm {
            return Err(RunError::new(
                RunErrorKind::State,
                "contract is the point of no return: it drops the old columns, the sync triggers and version 1's \
                 views; after it, `ferry rollback` is refused and version 1 of the application stops working",
            )
            .with_hint("retire version 1 of the application, read the plan's contract phase, then run `ferry contract --confirm`"));
        }
        let changes = self.changes().await?;
        if state != State::at(Stage::Contracting) {
            let (reports, checks) = self.verify_in_place(&changes, progress).await?;
            let failing = failures(&reports, &checks);
            if !failing.is_empty() {
                return Err(RunError::new(
                    RunErrorKind::State,
                    format!("the final verification failed: {}", failing.join("; ")),
                )
                .with_hint("`ferry run` fills what the backfill missed; `ferry verify` shows the rows"));
            }
            for change in &changes {
                self.refuse_column_users(change).await?;
                self.refuse_violations(change).await?;
            }
        }
        advance(&self.state, Event::ContractStarted)?;
        self.begin(Phase::Contract, progress)?;
        let mut notes = Vec::new();
        let mut result = Ok(());
        for change in &changes {
            result = self.contract_change(change, progress).await.map(|n| notes.extend(n));
            if result.is_err() {
                break;
            }
        }
        self.end(Phase::Contract, &result)?;
        result?;
        advance(&self.state, Event::ContractCompleted)?;
        let started = self.state.phase_started_at(Phase::Expand)?.unwrap_or_else(crate::state::now);
        self.state.audit(&AuditEvent::MigrationCompleted {
            total_duration_ms: (crate::state::now() - started).num_milliseconds().max(0) as u64,
            soak_period_start: "none (changed in place)".into(),
        })?;
        Ok(crate::contract::ContractOutcome { notes, backup: None })
    }

    /// Refuses while rows break a constraint contract adds or validates, with their number.
    async fn refuse_violations(&self, change: &Change) -> Result<()> {
        let sql = change.sql(self.source.plan_dialect());
        for c in &change.constraints {
            let rows = self.source.scalar(&sql.violations(c)).await?.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            if rows > 0 {
                return Err(RunError::new(
                    RunErrorKind::State,
                    format!("{rows} row(s) of {} break {}, which contract would add", change.table, c.name()),
                )
                .with_hint(format!(
                    "find them with `{}`, fix them, then run `ferry contract --confirm` again; nothing was changed",
                    sql.violations(c).replacen("count(*)", "*", 1)
                )));
            }
        }
        Ok(())
    }

    /// Refuses while an object that is not Ferry's uses a column contract drops, naming each.
    async fn refuse_column_users(&self, change: &Change) -> Result<()> {
        let sql = change.sql(self.source.plan_dialect());
        let mut dropped: Vec<String> = change.dropped.clone();
        dropped.extend(change.columns.iter().filter_map(|c| c.renamed_from().map(str::to_string)));
        dropped
            .extend(sql.added().iter().filter(|c| ferry_plan::in_place::physical(c) != c.name).map(|c| c.name.clone()));
        if dropped.is_empty() {
            return Ok(());
        }
        // Ferry's own objects, and the indexes contract replaces by their copies on the new columns.
        let ours = |name: &str| {
            let bare = name.rsplit('.').next().unwrap_or(name);
            bare.starts_with("ferry_")
                || name.contains("_ferry_v1")
                || name.contains("_ferry_v2")
                || change.carried.iter().any(|c| c.old == bare)
        };
        let users: Vec<String> = self
            .source
            .column_dependents(&change.name, &dropped)
            .await?
            .into_iter()
            .filter(|d| !ours(&d.name))
            .map(|d| format!("{} {} (uses {})", d.kind.name(), d.name, d.column))
            .collect();
        if users.is_empty() {
            return Ok(());
        }
        Err(RunError::new(
            RunErrorKind::State,
            format!("contract would drop columns of {} that are still used: {}", change.table, users.join(", ")),
        )
        .with_hint("change or drop each of them so that it no longer uses the column (see docs/lints/F004.md), then run `ferry contract --confirm` again; nothing was changed"))
    }

    /// One table's contract. MariaDB/MySQL commit each statement by
    /// itself: the index of the last one done is recorded, and the next
    /// attempt resumes after it.
    async fn contract_change(&self, change: &Change, progress: &dyn Progress) -> Result<Vec<String>> {
        let sql = change.sql(self.source.plan_dialect());
        let contract = sql.contract();
        let operations = sql.operations();
        self.set_operation_stages(change, &operations, |_| true, OperationStage::Completing)?;
        self.execute_change(&change.name, &contract.prepare, false, progress).await?;
        if contract.atomic {
            let mut steps = contract.steps.clone();
            if !sql.sqlite_not_null().is_empty()
                || (self.source.capabilities().alters_by_rebuilding && !change.constraints.is_empty())
            {
                // After Ferry's objects are dropped, before the old columns are.
                let at = steps.iter().position(|s| s.sql.contains(" DROP COLUMN ")).unwrap_or(steps.len());
                let rebuild = self.sqlite_not_null(change).await?;
                steps.splice(at..at, rebuild);
            }
            self.execute_change(&change.name, &steps, true, progress).await?;
        } else {
            let key = format!("contract_step:{}", change.target);
            let done: usize = self.state.meta(&key)?.and_then(|v| v.parse().ok()).unwrap_or(0);
            for (i, step) in contract.steps.iter().enumerate().skip(done) {
                if step.sql.contains(" DROP COLUMN ") {
                    // Between steps: an object created since the check must not lose its column.
                    self.refuse_column_users(change).await?;
                }
                self.execute_change(&change.name, std::slice::from_ref(step), false, progress).await?;
                self.state.set_meta(&key, &(i + 1).to_string())?;
            }
            self.state.clear_meta(&[&key])?;
        }
        let mut notes = Vec::new();
        for index in &change.indexes {
            notes.push(format!("{}: index {} stays", change.table, index.name));
        }
        for c in &change.constraints {
            notes.push(format!("{}: {} holds for every row", change.table, c.name()));
        }
        let not_null: Vec<String> = sql.added().iter().filter(|c| !c.nullable).map(|c| c.name.clone()).collect();
        if !not_null.is_empty() {
            notes.push(format!("{}: {} NOT NULL", change.table, not_null.join(", ")));
        }
        let mut gone = change.dropped.clone();
        gone.extend(change.columns.iter().filter_map(|c| c.renamed_from().map(str::to_string)));
        if !gone.is_empty() {
            notes.push(format!("{}: dropped {}", change.table, gone.join(", ")));
        }
        if !sql.added().is_empty() {
            notes.push(format!(
                "{}: the sync triggers and version 1's views are gone; version 2's view ({}) stays for the \
                 application that uses it",
                change.table,
                sql.view(Version::New)
            ));
        }
        self.set_operation_stages(change, &operations, |_| true, OperationStage::Completed)?;
        Ok(notes)
    }

    /// SQLite has no ALTER COLUMN or ADD CONSTRAINT: NOT NULL and the
    /// change's constraints come from rebuilding the table
    /// (SQLite's documented procedure: new table, copy, drop, rename, then
    /// its indexes and triggers again) inside the contract's transaction.
    /// Ferry's connection keeps foreign keys off, so dropping the old table
    /// touches no child row; views keep their text (the rename runs with
    /// `legacy_alter_table`, the table's name is the same afterwards).
    async fn sqlite_not_null(&self, change: &Change) -> Result<Vec<Statement>> {
        let sql = change.sql(self.source.plan_dialect());
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let bare = &change.name.name;
        let rows = self
            .source
            .query_text(&format!(
                "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = {} AND sql IS NOT NULL \
                 AND name NOT LIKE 'ferry\\_%' ESCAPE '\\' ORDER BY type = 'table' DESC",
                quote(bare)
            ))
            .await?;
        // An index contract replaces is built again under its name after the columns have theirs.
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|r| !change.carried.iter().any(|c| r[1].as_deref() == Some(c.old.as_str())))
            .collect();
        let Some(create) = rows.iter().find(|r| r[0].as_deref() == Some("table")).and_then(|r| r[2].clone()) else {
            return Err(RunError::state(format!("{}: no CREATE TABLE in sqlite_master", change.table)));
        };
        let mut definition = create.clone();
        for c in sql.added().iter().filter(|c| !c.nullable) {
            // The column as expand added it: SQLite keeps the ADD COLUMN text in the table's definition.
            let added = format!(
                "{} {}",
                sql.dialect.ident(&ferry_plan::in_place::physical(c)),
                sql.dialect.declare(&c.desired)
            );
            let Some(at) = definition.find(&added) else {
                return Err(RunError::state(format!(
                    "{}: the definition of {} is not the one expand added (`{added}` not found in {create})",
                    change.table, c.name
                ))
                .with_hint("make the column NOT NULL by hand, then run `ferry contract --confirm` again"));
            };
            definition.insert_str(at + added.len(), " NOT NULL");
        }
        let Some(open) = definition.find('(') else {
            return Err(RunError::state(format!("{}: unreadable definition {create}", change.table)));
        };
        if let Some(close) = definition.rfind(')') {
            // The constraints the change adds, at the end of the definition (SQLite cannot ALTER them in).
            let clauses: String =
                change.constraints.iter().map(|c| format!(", {}", sql.constraint_clause(c))).collect();
            definition.insert_str(close, &clauses);
        }
        let scratch = format!("ferry_rebuild_{bare}");
        let columns: Vec<String> = self
            .source
            .introspect(&change.name)
            .await?
            .columns
            .iter()
            .filter(|c| c.generated.is_none())
            .map(|c| sql.dialect.ident(&c.name))
            .collect();
        let columns = columns.join(", ");
        let table = sql.dialect.ident(bare);
        let scratch_id = sql.dialect.ident(&scratch);
        let mut out = vec![
            format!("CREATE TABLE {scratch_id} {}", &definition[open..]),
            format!("INSERT INTO {scratch_id} ({columns}) SELECT {columns} FROM {table}"),
        ];
        if definition.to_ascii_uppercase().contains("AUTOINCREMENT") {
            // The copy's sequence is its largest key; the table's may be higher (rows deleted since):
            // keys are never given out twice.
            let (table_name, scratch_name) = (quote(bare), quote(&scratch));
            out.push(format!(
                "INSERT INTO sqlite_sequence (name, seq) SELECT {scratch_name}, seq FROM sqlite_sequence \
                 WHERE name = {table_name} AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {scratch_name})"
            ));
            out.push(format!(
                "UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = {table_name})) \
                 WHERE name = {scratch_name}"
            ));
        }
        out.extend([
            format!("DROP TABLE {table}"),
            "PRAGMA legacy_alter_table = ON".to_string(),
            format!("ALTER TABLE {scratch_id} RENAME TO {table}"),
            "PRAGMA legacy_alter_table = OFF".to_string(),
        ]);
        out.extend(rows.iter().filter(|r| r[0].as_deref() != Some("table")).filter_map(|r| r[2].clone()));
        Ok(out.into_iter().map(|sql| Statement { sql, only_if: None }).collect())
    }
}
