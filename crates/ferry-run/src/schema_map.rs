//! The target's schema from the source's: defaults, identity, collations,
//! generated columns, checks, indexes and comments, each translated into
//! the target's SQL where it means the same there, and otherwise written
//! down as a problem that the plan reports with the spec line that settles
//! it. Nothing is dropped without an item saying so.

use ferry_core::dialect::IdentityColumn;
use ferry_core::schema::{object_name, renamed_object};
use ferry_core::sqlexpr;
use ferry_core::{
    Check, Column, ColumnDef, DataType, DefaultValue, ExpressionIndex, FkAction, ForeignKey, Generated, Identity,
    TableSchema,
};
use ferry_core::{EngineKind, PlanDialect};
use ferry_engine::{Engine, SchemaSupport};
use ferry_plan::{SchemaItem, SchemaItemKind, SchemaProblem, SchemaProblemClass};
use std::collections::{BTreeMap, BTreeSet};

/// Translates one table's schema from `from` to `to`, collecting what it did.
pub struct Translator<'a> {
    /// The source's and the target's SQL, as each engine writes it.
    pub from_dialect: &'static dyn PlanDialect,
    pub to_dialect: &'static dyn PlanDialect,
    pub support: SchemaSupport,
    pub source: &'a TableSchema,
    pub target_table: &'a str,
    /// `[table.translate]` of the spec.
    pub overrides: &'a BTreeMap<String, String>,
    /// Source column -> target column, for every source column the target has.
    pub renames: BTreeMap<String, String>,
    pub items: Vec<SchemaItem>,
    identity_taken: bool,
    /// Source columns of the key Ferry copies by: never given a
    /// case-insensitive collation, which would reorder them on the target.
    key: Vec<String>,
    /// Source columns of a unique index on `lower(column)` that a target
    /// without such indexes (MySQL/MariaDB) enforces with a case-insensitive
    /// collation and a plain unique key instead.
    lowered_unique: BTreeSet<String>,
}

/// A plain copied column as the mapping planned it.
pub struct PlannedColumn<'a> {
    pub name: &'a str,
    pub data_type: &'a DataType,
    pub nullable: bool,
    /// The target's key is this column alone.
    pub sole_key: bool,
}

fn item(kind: SchemaItemKind, name: &str, source: impl Into<String>) -> SchemaItem {
    SchemaItem { kind, name: name.to_string(), source: source.into(), target: None, note: None, problem: None }
}

fn problem(class: SchemaProblemClass, reason: impl Into<String>, resolve: impl Into<String>) -> Option<SchemaProblem> {
    Some(SchemaProblem { class, reason: reason.into(), resolve: resolve.into(), info: false })
}

/// `"key" = "..."` as a line of `[table.translate]`.
fn translate_line(key: &str, value: &str) -> String {
    format!("[table.translate] \"{key}\" = \"{value}\"")
}

impl<'a> Translator<'a> {
    pub fn new(
        source_engine: &dyn Engine,
        target_engine: &dyn Engine,
        source: &'a TableSchema,
        target_table: &'a str,
        overrides: &'a BTreeMap<String, String>,
        renames: BTreeMap<String, String>,
        key: Vec<String>,
    ) -> Translator<'a> {
        let support = target_engine.schema_support();
        let mut translator = Translator {
            from_dialect: source_engine.plan_dialect(),
            to_dialect: target_engine.plan_dialect(),
            support,
            source,
            target_table,
            overrides,
            renames,
            items: Vec::new(),
            identity_taken: false,
            key,
            lowered_unique: BTreeSet::new(),
        };
        if support.case_insensitive_collation.is_some() && !support.expression_indexes {
            let lowered: Vec<String> = source
                .expression_indexes
                .iter()
                .filter_map(|i| translator.lowered_unique_columns(i))
                .flatten()
                .collect();
            translator.lowered_unique.extend(lowered);
        }
        translator
    }

    /// For a unique index on `lower(a)` (and plain columns), with no WHERE:
    /// the lowered source columns, when none is in Ferry's key.
    fn lowered_unique_columns(&self, index: &ExpressionIndex) -> Option<Vec<String>> {
        if !index.unique || index.predicate.is_some() || index.method.is_some() {
            return None;
        }
        let mut lowered = Vec::new();
        for element in split_top_level(&index.elements) {
            match sqlexpr::lowered_column(element.trim(), self.source_kind()) {
                Some(column) if !self.key.contains(&column) && self.target_column(&column).is_some() => {
                    lowered.push(column)
                }
                Some(_) => return None,
                None if self.target_column(element.trim().trim_matches(['"', '`'])).is_some() => {}
                None => return None,
            }
        }
        (!lowered.is_empty()).then_some(lowered)
    }

    fn target_column(&self, source_column: &str) -> Option<String> {
        self.renames.get(source_column).cloned().or_else(|| {
            self.from_dialect
                .case_insensitive_names()
                .then(|| {
                    self.renames.iter().find(|(s, _)| s.eq_ignore_ascii_case(source_column)).map(|(_, t)| t.clone())
                })
                .flatten()
        })
    }

    /// An expression of the source in the target's SQL.
    pub fn expr(&self, sql: &str) -> Result<String, String> {
        sqlexpr::translate(sql, self.source_kind(), self.target_kind(), &|c| self.target_column(c))
    }

    fn overridden(&self, key: &str) -> Option<&'a str> {
        self.overrides.get(key).map(String::as_str)
    }

    fn source_kind(&self) -> EngineKind {
        self.from_dialect.kind()
    }

    fn target_kind(&self) -> EngineKind {
        self.to_dialect.kind()
    }

    fn to_title(&self) -> &'static str {
        self.target_kind().title()
    }

    /// Whether a generated source column is recreated as generated on the
    /// target (`Some`, in its SQL) or copied as a plain column (`None`).
    pub fn generated(&mut self, column: &Column) -> Option<Generated> {
        let g = column.generated.as_ref()?;
        let key = format!("{}.generated", column.name);
        let kind_word = if g.stored { "STORED" } else { "VIRTUAL" };
        let mut it = item(SchemaItemKind::Generated, &column.name, format!("AS ({}) {kind_word}", g.expr));
        let stored = g.stored || !self.support.virtual_columns;
        let translated = match self.overridden(&key) {
            Some("") => {
                it.note = Some("copied as a plain column, as the spec says".into());
                self.items.push(it);
                return None;
            }
            Some(sql) => Ok(sql.to_string()),
            None => self.expr(&g.expr),
        };
        match translated {
            Ok(expr) => {
                it.target = Some(format!("AS ({expr}) {}", if stored { "STORED" } else { "VIRTUAL" }));
                if stored != g.stored {
                    it.note = Some(format!("{} computes generated columns only when stored", self.to_title()));
                }
                self.items.push(it);
                Some(Generated { expr, stored })
            }
            Err(why) => {
                it.problem = problem(
                    SchemaProblemClass::Generated,
                    format!(
                        "`{}` is computed from `{}` on the source, but {why}: it is copied as a plain column, which the \
                         application must then write itself",
                        column.name, g.expr
                    ),
                    format!(
                        "{}, or {} to copy it as a plain column",
                        translate_line(&key, &format!("<{} SQL>", self.to_title())),
                        translate_line(&key, "")
                    ),
                );
                self.items.push(it);
                None
            }
        }
    }

    /// The target definition of a column copied from `source`, with its
    /// default, identity, collation, ON UPDATE and comment.
    pub fn column(&mut self, planned: PlannedColumn, source: &Column) -> ColumnDef {
        let mut def = ColumnDef::new(planned.name, planned.data_type.clone(), planned.nullable);
        def.identity = self.identity(&planned, source);
        if def.identity.is_none() {
            def.default = self.default(&planned, source);
        }
        def.on_update = self.on_update(source);
        def.collation = self.collation(&planned, source);
        def.comment = self.comment(SchemaItemKind::Comment, &source.name, source.comment.as_ref());
        def
    }

    fn default(&mut self, planned: &PlannedColumn, source: &Column) -> Option<DefaultValue> {
        let key = format!("{}.default", source.name);
        let overridden = self.overridden(&key);
        let original = source.default.as_ref();
        if original.is_none() && overridden.is_none() {
            return None;
        }
        let mut it = item(SchemaItemKind::Default, planned.name, original.map(|d| d.to_string()).unwrap_or_default());
        let result = match (overridden, original) {
            (Some(""), _) => {
                it.note = Some("left out, as the spec says".into());
                None
            }
            (Some(sql), _) => {
                it.note = Some("as the spec says".into());
                Some(DefaultValue::Expr(sql.to_string()))
            }
            (None, Some(DefaultValue::Expr(sql))) => match self.expr(sql) {
                Ok(t) => Some(DefaultValue::Expr(t)),
                Err(why) => {
                    it.problem = problem(
                        SchemaProblemClass::Expression,
                        format!(
                            "the default of `{}` cannot be created: {why}; an INSERT that leaves `{}` out gets NULL{}",
                            planned.name,
                            planned.name,
                            if planned.nullable { "" } else { " and fails (NOT NULL)" }
                        ),
                        format!(
                            "{} (or \"\" to create none)",
                            translate_line(&key, &format!("<{} SQL>", self.to_title()))
                        ),
                    );
                    None
                }
            },
            (None, other) => other.cloned(),
        };
        it.target = result.as_ref().map(|d| d.to_string());
        self.items.push(it);
        result
    }

    fn on_update(&mut self, source: &Column) -> Option<DefaultValue> {
        let on_update = source.on_update.as_ref()?;
        let key = format!("{}.on_update", source.name);
        let target = self.target_column(&source.name).unwrap_or_else(|| source.name.clone());
        let mut it = item(SchemaItemKind::OnUpdate, &target, format!("ON UPDATE {on_update}"));
        let kept = if self.overridden(&key) == Some("") {
            it.note = Some("left out, as the spec says".into());
            None
        } else if self.support.on_update_timestamp {
            it.target = Some(format!("ON UPDATE {on_update}"));
            Some(on_update.clone())
        } else {
            it.problem = problem(
                SchemaProblemClass::Expression,
                format!(
                    "{} has no ON UPDATE clause: `{target}` keeps the value written at INSERT unless the application \
                     (or a trigger of yours) sets it on every UPDATE",
                    self.to_title()
                ),
                format!("{} once the application sets it itself", translate_line(&key, "")),
            );
            None
        };
        self.items.push(it);
        kept
    }

    fn identity(&mut self, planned: &PlannedColumn, source: &Column) -> Option<Identity> {
        let identity = source.identity?;
        let key = format!("{}.identity", source.name);
        let mut it = item(SchemaItemKind::Identity, planned.name, describe_identity(identity, self.source_kind()));
        let sequence = object_name(self.target_table, &[planned.name.to_string()], "seq");
        let identity_clause = self.to_dialect.identity(&IdentityColumn {
            name: planned.name,
            data_type: planned.data_type,
            sole_key: planned.sole_key,
            rowid: identity == Identity::Rowid,
            sequence: &sequence,
        });
        let refusal = if self.overridden(&key) == Some("") {
            it.note = Some("left out, as the spec says: the application supplies every key".into());
            self.items.push(it);
            return None;
        } else if self.identity_taken {
            Some(format!("{} numbers one column per table only", self.to_title()))
        } else {
            identity_clause.as_ref().err().cloned()
        };
        if let Some(why) = refusal {
            it.problem = problem(
                SchemaProblemClass::NotKept,
                format!("`{}` is not numbered by the target: {why}; an INSERT without it fails", planned.name),
                format!(
                    "`{} = {{ type = \"bigint\" }}` under [table.columns] where the type is the cause, or {} if the \
                     application supplies every key",
                    planned.name,
                    translate_line(&key, "")
                ),
            );
            self.items.push(it);
            return None;
        }
        self.identity_taken = true;
        it.target = identity_clause.ok();
        let mut notes = Vec::new();
        if identity == Identity::Always {
            notes.push("BY DEFAULT, not ALWAYS: Ferry writes the source's keys".to_string());
        }
        notes.push("moved beyond the largest copied key after the backfill".to_string());
        it.note = Some(notes.join("; "));
        self.items.push(it);
        Some(identity)
    }

    fn collation(&mut self, planned: &PlannedColumn, source: &Column) -> Option<String> {
        if !matches!(planned.data_type, DataType::Text { .. }) {
            return None;
        }
        let key = format!("{}.collation", source.name);
        let overridden = self.overridden(&key);
        let original = source.collation.as_ref();
        // A case-sensitive collation crossing engines becomes the target's
        // default, which is case-sensitive too: nothing to say.
        let noteworthy = overridden.is_some()
            || self.lowered_unique.contains(&source.name)
            || original.is_some_and(|c| {
                c.case_insensitive || (self.source_kind() == self.target_kind() && !c.name.is_empty())
            });
        if !noteworthy {
            return None;
        }
        let source_text = original
            .map(|c| if c.name.is_empty() { "citext (compares in lower case)".to_string() } else { c.name.clone() })
            .unwrap_or_else(|| "default".into());
        let mut it = item(SchemaItemKind::Collation, planned.name, source_text.clone());
        let result = match overridden {
            Some("") => {
                it.note = Some("the target's default, as the spec says".into());
                None
            }
            Some(name) => {
                it.note = Some("as the spec says".into());
                Some(name.to_string())
            }
            None if self.source_kind() == self.target_kind() => {
                original.map(|c| c.name.clone()).filter(|n| !n.is_empty())
            }
            None if self.lowered_unique.contains(&source.name) => {
                let ci = self.support.case_insensitive_collation.unwrap_or_default();
                it.note = Some(format!(
                    "a unique index on lower({}) on the source: {ci} ignores case (not accents or trailing spaces) here",
                    source.name
                ));
                Some(ci.to_string())
            }
            None if original.is_some_and(|c| c.case_insensitive)
                && !self.key.contains(&source.name)
                && self.support.case_insensitive_collation.is_some() =>
            {
                let ci = self.support.case_insensitive_collation.unwrap_or_default();
                it.note = Some(format!("ignores case as on the source; {ci} tells accents and trailing spaces apart"));
                Some(ci.to_string())
            }
            None if original.is_some_and(|c| c.case_insensitive) => {
                let suggestion = self.to_dialect.case_insensitive_collation_advice();
                let unique = if self.to_dialect.enforces_unique_on_lower() {
                    "unique keys on it are enforced on lower()"
                } else {
                    "unique keys on it become case-sensitive"
                };
                it.problem = problem(
                    SchemaProblemClass::Collation,
                    format!(
                        "`{}` compares without regard to case on the source ({source_text}); on {} it is case-sensitive: \
                         `=`, ORDER BY, GROUP BY and joins on it behave differently, and {unique}",
                        planned.name,
                        self.to_title()
                    ),
                    format!(
                        "{} to accept the case-sensitive default, or {}",
                        translate_line(&key, ""),
                        translate_line(&key, suggestion)
                    ),
                );
                None
            }
            None => None,
        };
        it.target = Some(result.clone().unwrap_or_else(|| "default (case-sensitive)".into()));
        self.items.push(it);
        result
    }

    /// A table or column comment, kept where the target has them.
    fn comment(&mut self, kind: SchemaItemKind, name: &str, comment: Option<&String>) -> Option<String> {
        let comment = comment?;
        let target = self.target_column(name).unwrap_or_else(|| name.to_string());
        let mut it = item(
            kind,
            if kind == SchemaItemKind::Comment && name.is_empty() { "(table)" } else { &target },
            comment.clone(),
        );
        if self.support.comments {
            it.target = Some(comment.clone());
            self.items.push(it);
            return Some(comment.clone());
        }
        it.problem = Some(SchemaProblem {
            class: SchemaProblemClass::NotKept,
            reason: format!("{} keeps no comments", self.to_title()),
            resolve: "nothing to do: the comment is only documentation".into(),
            info: true,
        });
        self.items.push(it);
        None
    }

    pub fn table_comment(&mut self) -> Option<String> {
        self.comment(SchemaItemKind::Comment, "", self.source.comment.as_ref())
    }

    /// The source's CHECK constraints in the target's SQL.
    pub fn checks(&mut self) -> Vec<Check> {
        let mut out = Vec::new();
        let source_table = self.source.name.name.clone();
        for check in &self.source.checks {
            let mut it = item(SchemaItemKind::Check, &check.name, format!("CHECK ({})", check.expr));
            let translated = match self.overridden(&check.name) {
                Some("") => {
                    it.note = Some("left out, as the spec says".into());
                    self.items.push(it);
                    continue;
                }
                Some(sql) => Ok(sql.to_string()),
                // Rows written before a NOT VALID check may break it: the copy would stop on them.
                None if !check.validated => Err(
                    "the source added it NOT VALID, so rows written before it may break it and the copy would \
                     stop on them; add it after the load (PostgreSQL: NOT VALID, then VALIDATE once the rows are clean)"
                        .to_string(),
                ),
                None => self.expr(&check.expr),
            };
            match translated {
                Ok(expr) => {
                    let name = renamed_object(&source_table, self.target_table, &check.name);
                    it.target = Some(format!("CONSTRAINT {name} CHECK ({expr})"));
                    out.push(Check::new(name, expr));
                }
                Err(why) => {
                    it.problem = problem(
                        SchemaProblemClass::Expression,
                        format!(
                            "the check `{}` cannot be created: {why}; the target accepts rows it would refuse",
                            check.name
                        ),
                        format!(
                            "{} (or \"\" to leave it out)",
                            translate_line(&check.name, &format!("<a {} boolean expression>", self.to_title()))
                        ),
                    );
                }
            }
            self.items.push(it);
        }
        out
    }

    /// Partial, expression and non-B-tree indexes in the target's SQL; and
    /// unique keys on case-insensitive columns, which a case-sensitive
    /// target enforces on `lower()` (taken out of `unique_keys`).
    pub fn indexes(&mut self, unique_keys: &mut Vec<Vec<String>>, columns: &[ColumnDef]) -> Vec<ExpressionIndex> {
        let mut out = Vec::new();
        let source_table = self.source.name.name.clone();
        for index in &self.source.expression_indexes {
            let source_sql = describe_index(index);
            let mut it = item(SchemaItemKind::Index, &index.name, source_sql);
            if self.overridden(&index.name) == Some("") {
                it.note = Some("left out, as the spec says".into());
                self.items.push(it);
                continue;
            }
            if let Some(lowered) = self.lowered_unique_columns(index).filter(|_| !self.lowered_unique.is_empty()) {
                let columns: Vec<String> = split_top_level(&index.elements)
                    .iter()
                    .map(|e| {
                        let e = e.trim();
                        sqlexpr::lowered_column(e, self.source_kind())
                            .unwrap_or_else(|| e.trim_matches(['"', '`']).to_string())
                    })
                    .filter_map(|c| self.target_column(&c))
                    .collect();
                it.target = Some(format!("UNIQUE ({})", columns.join(", ")));
                it.note = Some(format!(
                    "{} has no index on lower(): a case-insensitive collation on {} instead",
                    self.to_title(),
                    lowered.join(", ")
                ));
                self.items.push(it);
                unique_keys.push(columns);
                continue;
            }
            match self.index(index) {
                Ok(mut translated) => {
                    translated.name = renamed_object(&source_table, self.target_table, &index.name);
                    it.target = Some(describe_index(&translated));
                    out.push(translated);
                }
                Err(why) => {
                    it.problem = problem(
                        SchemaProblemClass::Index,
                        format!(
                            "the index `{}` is not created: {why}{}",
                            index.name,
                            if index.unique { "; the target does not enforce its uniqueness" } else { "" }
                        ),
                        format!(
                            "{} to go without it (add an index of your own after the load if queries need one)",
                            translate_line(&index.name, "")
                        ),
                    );
                }
            }
            self.items.push(it);
        }
        let case_insensitive: BTreeSet<String> = self
            .source
            .columns
            .iter()
            .filter(|c| c.case_insensitive())
            .filter_map(|c| self.target_column(&c.name))
            .filter(|t| columns.iter().any(|d| &d.name == t && d.collation.is_none()))
            .collect();
        if !self.to_dialect.enforces_unique_on_lower() || self.source_kind() == self.target_kind() {
            return out;
        }
        unique_keys.retain(|key| {
            if !key.iter().any(|c| case_insensitive.contains(c)) {
                return true;
            }
            let elements: Vec<String> = key
                .iter()
                .map(|c| {
                    let quoted = self.to_dialect.ident(c);
                    if case_insensitive.contains(c) {
                        format!("lower({quoted})")
                    } else {
                        quoted
                    }
                })
                .collect();
            let index = ExpressionIndex {
                name: object_name(self.target_table, key, "key"),
                unique: true,
                elements: elements.join(", "),
                predicate: None,
                method: None,
            };
            let mut it = item(SchemaItemKind::Index, &index.name, format!("UNIQUE ({})", key.join(", ")));
            it.target = Some(describe_index(&index));
            it.note = Some("the source compares these columns without case: so does the unique index".into());
            self.items.push(it);
            out.push(index);
            false
        });
        out
    }

    fn index(&self, index: &ExpressionIndex) -> Result<ExpressionIndex, String> {
        let same = self.source_kind() == self.target_kind();
        if index.method.is_some() && !(same && self.support.index_methods) {
            return Err(format!(
                "{} has no `{}` indexes",
                self.to_title(),
                index.method.as_deref().unwrap_or_default()
            ));
        }
        if index.predicate.is_some() && !self.support.partial_indexes {
            return Err(format!("{} has no partial indexes (WHERE)", self.to_title()));
        }
        let plain = index.elements.split(',').all(|e| self.target_column(e.trim()).is_some());
        if !plain && !self.support.expression_indexes {
            return Err(format!("{} has no indexes on expressions", self.to_title()));
        }
        Ok(ExpressionIndex {
            name: index.name.clone(),
            unique: index.unique,
            elements: self.elements(&index.elements)?,
            predicate: index.predicate.as_deref().map(|p| self.expr(p)).transpose()?,
            method: index.method.clone(),
        })
    }

    /// Index elements one by one, each with its ASC/DESC.
    fn elements(&self, elements: &str) -> Result<String, String> {
        let mut out = Vec::new();
        for element in split_top_level(elements) {
            let trimmed = element.trim();
            let (body, order) = match trimmed.rsplit_once(' ') {
                Some((body, order)) if order.eq_ignore_ascii_case("desc") || order.eq_ignore_ascii_case("asc") => {
                    (body, format!(" {}", order.to_ascii_uppercase()))
                }
                _ => (trimmed, String::new()),
            };
            let sql = self.expr(body)?;
            // A bare expression needs parentheses in an index; a column does not.
            let is_column = self.target_column(body.trim_matches(['"', '`'])).is_some();
            out.push(if is_column {
                format!("{sql}{order}")
            } else {
                format!("{}{order}", self.to_dialect.index_expression(&sql))
            });
        }
        Ok(out.join(", "))
    }

    /// Keys of `[table.translate]` that name nothing of this table.
    pub fn unknown_keys(&self) -> Vec<String> {
        let mut known: BTreeSet<String> = BTreeSet::new();
        for c in &self.source.columns {
            for suffix in ["default", "on_update", "generated", "collation", "identity", "zone"] {
                known.insert(format!("{}.{suffix}", c.name));
            }
        }
        known.extend(self.source.checks.iter().map(|c| c.name.clone()));
        known.extend(self.source.expression_indexes.iter().map(|i| i.name.clone()));
        known.extend(self.source.foreign_keys.iter().map(|f| f.name.clone()));
        self.overrides.keys().filter(|k| !known.contains(*k)).cloned().collect()
    }
}

/// A foreign key's ON DELETE / ON UPDATE where the target has no such
/// action (SET DEFAULT on MySQL/MariaDB): an item with the problem, or, with
/// `"<name>" = ""` in the spec, NO ACTION instead.
pub fn foreign_key_actions(
    source_name: &str,
    fk: &mut ForeignKey,
    support: SchemaSupport,
    overrides: &BTreeMap<String, String>,
    to: ferry_engine::EngineKind,
) -> Option<SchemaItem> {
    let refused = [fk.on_delete, fk.on_update].contains(&FkAction::SetDefault) && !support.fk_set_default;
    if !refused {
        return None;
    }
    let mut it = item(SchemaItemKind::ForeignKey, source_name, fk.actions_sql().trim().to_string());
    if overrides.get(source_name).is_some_and(|v| v.is_empty()) {
        for action in [&mut fk.on_delete, &mut fk.on_update] {
            if *action == FkAction::SetDefault {
                *action = FkAction::NoAction;
            }
        }
        it.target = Some(if fk.actions_sql().is_empty() { "NO ACTION".into() } else { fk.actions_sql().trim().into() });
        it.note = Some("NO ACTION instead of SET DEFAULT, as the spec says".into());
    } else {
        it.problem = problem(
            SchemaProblemClass::NotKept,
            format!("{to} has no ON DELETE/UPDATE SET DEFAULT: the foreign key is not created"),
            format!("{} to create it with NO ACTION instead", translate_line(source_name, "")),
        );
    }
    Some(it)
}

fn describe_identity(identity: Identity, engine: EngineKind) -> String {
    match (identity, engine) {
        (Identity::Always, _) => "GENERATED ALWAYS AS IDENTITY".into(),
        (Identity::ByDefault, _) => "GENERATED BY DEFAULT AS IDENTITY".into(),
        (Identity::Sequence, _) => "DEFAULT nextval(...) (serial)".into(),
        (Identity::AutoIncrement, _) => "AUTO_INCREMENT".into(),
        (Identity::Rowid, _) => "INTEGER PRIMARY KEY (rowid)".into(),
        (Identity::RowidAutoincrement, _) => "INTEGER PRIMARY KEY AUTOINCREMENT".into(),
    }
}

fn describe_index(index: &ExpressionIndex) -> String {
    let mut text = format!(
        "{}INDEX{} ({})",
        if index.unique { "UNIQUE " } else { "" },
        index.method.as_ref().map(|m| format!(" USING {m}")).unwrap_or_default(),
        index.elements
    );
    if let Some(p) = &index.predicate {
        text.push_str(&format!(" WHERE {p}"));
    }
    text
}

/// `a, lower(b), c` -> the three elements (commas inside parentheses stay).
fn split_top_level(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in list.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_top_level;

    #[test]
    fn elements_split_at_top_level_commas() {
        assert_eq!(split_top_level("a, lower(b, ','), c DESC"), ["a", " lower(b, ',')", " c DESC"]);
    }
}
