//! Phase 0: measure what the plan needs, read-only on the source.
//!
//! The one write is the copy probe ([`crate::probe`]): a sample of rows
//! copied into a `ferry_probe_*` table on the target, indexed, checked,
//! timed, and dropped. Probe tables left by a killed `ferry plan` are
//! dropped when the next one starts.

use crate::connect::{open, Role};
use crate::error::{Result, RunError};
use crate::mapping::{plan_tables, Mode, TablePlan};
use crate::probe::{LoadReadings, Probe};
use crate::progress::Progress;
use crate::runner::state_location;
use crate::state::{now, timestamp, StateStore};
use ferry_core::schema::object_name;
use ferry_core::{AuditEvent, ColumnDef, Spec, TableDef, TableName};
use ferry_engine::{Engine, ReadSpec, SelectItem, ZeroDateConditions, SCRATCH_PREFIX};
use ferry_plan::in_place::InPlace;
use ferry_plan::{
    self as plan, Assessment, ColumnFacts, EndpointFacts, Latency, SchemaItem, SchemaItemKind, SchemaProblem,
    SchemaProblemClass, Shape, TableFacts, ZeroDates,
};
use std::sync::Arc;
use std::time::Instant;

/// State store meta key: the last plan's estimate of a run (JSON).
pub const PLAN_ESTIMATE: &str = "plan_estimate";
/// Keyed reads timed for the latency baseline.
pub const LATENCY_SAMPLES: usize = 300;
/// Above this estimate the engine's statistics are used instead of COUNT(*).
const EXACT_COUNT_LIMIT: u64 = 10_000_000;

pub struct Assessor {
    pub spec: Spec,
    pub source: Arc<dyn Engine>,
    pub target: Arc<dyn Engine>,
    pub plans: Vec<TablePlan>,
}

/// The probe table for a target table: predictable, so a leftover is found and dropped.
pub fn probe_table(target: &TableName) -> TableName {
    TableName {
        schema: target.schema.clone(),
        name: object_name(&format!("{SCRATCH_PREFIX}probe_{}", target.name), &[], "t"),
    }
}

impl Assessor {
    pub async fn connect(spec: Spec) -> Result<Assessor> {
        let base = spec.base_dir();
        let source = open(&spec.source_url, &base, Role::Source).await?;
        let target = open(&spec.target_url, &base, Role::Target).await?;
        let plans = plan_tables(&spec, &*source, &*target, Mode::Plan).await?;
        Ok(Assessor { spec, source, target, plans })
    }

    /// Drops probe tables a killed `ferry plan` may have left, and what a
    /// change in place's fill gave them (its mark table and trigger function).
    pub async fn clean_up(&self) -> Result<()> {
        for plan in &self.plans {
            let probe = probe_table(&plan.target_name);
            if plan.in_place && self.target.table_exists(&probe).await? {
                let leftovers = InPlace::stand_in_leftovers(self.target.plan_dialect(), &probe.to_string());
                // Each is `IF EXISTS`; one the engine refuses is left for the next plan to try.
                let _ = self.target.execute(&leftovers, false, std::time::Duration::from_secs(5)).await;
            }
            self.target.drop_scratch_table(&probe).await?;
        }
        Ok(())
    }

    pub async fn assess(&self, progress: &dyn Progress) -> Result<Assessment> {
        self.clean_up().await?;
        let load = LoadReadings::default();
        load.baseline(&*self.source).await;
        let mut tables = Vec::new();
        for plan in &self.plans {
            progress.note(&format!("assessing {}", plan.source_name));
            tables.push(self.table(plan, &load, progress).await?);
        }
        let shape = if !self.plans.is_empty() && self.plans.iter().all(|p| p.in_place) {
            Shape::InPlace
        } else {
            Shape::TableMove
        };
        Ok(Assessment {
            measured_at: timestamp(now()),
            shape,
            source: self.endpoint(&*self.source).await?,
            target: self.endpoint(&*self.target).await?,
            tables,
            rollback_lossless: self.spec.migration.rollback == Some(ferry_core::spec::RollbackRequirement::Lossless),
            source_load: load.summary(),
        })
    }

    async fn endpoint(&self, engine: &dyn Engine) -> Result<EndpointFacts> {
        Ok(EndpointFacts {
            engine: engine.kind(),
            capabilities: engine.capabilities(),
            url: engine.display_url(),
            version: engine.version().await?,
            free_disk_bytes: engine.free_disk_bytes().await?,
            transport: engine.transport().await?,
        })
    }

    async fn table(&self, plan: &TablePlan, load: &LoadReadings, progress: &dyn Progress) -> Result<TableFacts> {
        let changed_before = self.rows_changed(plan).await;
        let s = &plan.source;
        let filter = plan.read.filter.as_deref();
        let (rows, rows_exact) = match s.stats.row_estimate {
            Some(e) if e > EXACT_COUNT_LIMIT && filter.is_none() => (e, false),
            _ => (self.source.count(&plan.source_name, filter).await?, true),
        };
        let mut columns = plan.column_facts();
        self.count_bad_values(plan, &mut columns).await?;
        let dropped_columns = plan.dropped_columns();
        let key_enforced = !plan.key_source.is_empty()
            && (s.primary_key == plan.key_source || s.unique_keys.iter().any(|u| u.columns == plan.key_source));
        let null_key_rows = crate::keycheck::null_key_rows(&*self.source, plan).await?;
        let comparison = crate::keycheck::target_key_comparison(&*self.source, &*self.target, plan).await?;
        let key_collisions = crate::keycheck::key_collisions(&*self.source, plan, key_enforced, comparison).await?;
        let target_exists = plan.in_place || self.target.table_exists(&plan.target_name).await?;
        let (ddl_expand, ddl_after_load) = if target_exists { (Vec::new(), Vec::new()) } else { self.target_ddl(plan) };
        let mut schema = plan.schema_items.clone();
        if !target_exists {
            self.validate_schema(plan, &mut schema).await?;
        }
        let identity_sql = match plan.def.identity_column() {
            Some(c) if !target_exists => {
                self.target.identity_sql(&plan.target_name, &c.name, &format!("<the largest copied {} + 1>", c.name))
            }
            _ => Vec::new(),
        };
        let latency = if plan.key_source.is_empty() { None } else { Some(self.latency(plan).await?) };
        let mut facts = TableFacts {
            source: plan.source_name.to_string(),
            target: plan.target_name.to_string(),
            rows,
            rows_exact,
            size_bytes: s.stats.size_bytes,
            filter: plan.read.filter.clone(),
            primary_key: s.primary_key.clone(),
            key: plan.key_source.clone(),
            key_enforced,
            unique_keys: s.unique_keys.iter().map(|u| u.columns.clone()).collect(),
            indexes: s.indexes.iter().map(|i| i.columns.clone()).collect(),
            foreign_keys_out: s.foreign_keys.clone(),
            dependents: self.source.dependents(&plan.source_name).await?,
            dropped_column_users: if plan.in_place && !dropped_columns.is_empty() {
                self.source.column_dependents(&plan.source_name, &dropped_columns).await?
            } else {
                Vec::new()
            },
            added_indexes: plan.spec.added_indexes.clone(),
            added_constraints: plan.spec.added_constraints.clone(),
            downs: plan.spec.downs.clone(),
            carried_indexes: if plan.in_place {
                ferry_plan::in_place::carried_indexes(&plan.source, &columns)
            } else {
                Vec::new()
            },
            namespace: if plan.in_place {
                crate::in_place::namespace(&*self.source, &plan.source_name).await?
            } else {
                None
            },
            columns,
            dropped_columns,
            target_exists,
            latency,
            throughput: None,
            write_rate: None,
            ddl_expand,
            ddl_after_load,
            not_invertible: plan.inversion_blocker(),
            null_key_rows,
            key_collisions,
            target_rows: if target_exists && !plan.in_place {
                Some(self.target.count(&plan.target_name, None).await?)
            } else {
                None
            },
            merge_existing_rows: plan.spec.merge_existing_rows,
            schema,
            identity_sql,
        };
        if plan.in_place {
            let change = ferry_plan::in_place::InPlace::of(self.source.plan_dialect(), &facts);
            crate::in_place::refuse_bad_constraints(&*self.source, &facts.source, &change).await?;
        }
        if !plan.key_source.is_empty() {
            let probe = Probe { source: &self.source, target: &self.target, policy: &self.spec.policy, load };
            let change = plan.in_place.then_some(&facts);
            match probe.measure(plan, &probe_table(&plan.target_name), rows, change).await {
                Ok(t) => facts.throughput = Some(t),
                Err(e) => progress.note(&format!("{}: copy speed not measured: {}", plan.source_name, e.message)),
            }
        }
        facts.write_rate = match (changed_before, self.rows_changed(plan).await) {
            (Some((before, at)), Some((after, _))) => {
                Some(after.saturating_sub(before) as f64 / at.elapsed().as_secs_f64().max(1e-3))
            }
            _ => None,
        };
        Ok(facts)
    }

    /// How many rows would fail each column's conversion: NULLs where the
    /// target asks NOT NULL, and the source's zero dates.
    async fn count_bad_values(&self, plan: &TablePlan, columns: &mut [ColumnFacts]) -> Result<()> {
        let filter = plan.read.filter.as_deref();
        for c in columns.iter_mut() {
            // NOT NULL asked for a column whose source allows NULL: how many rows would fail?
            c.null_rows = match (&c.source_column, c.nullable, c.source_nullable) {
                (Some(col), false, true) => {
                    let condition = format!("{} IS NULL", self.source.sql_dialect().ident(col));
                    let condition = match filter {
                        Some(f) => format!("({f}) AND {condition}"),
                        None => condition,
                    };
                    Some(self.source.count(&plan.source_name, Some(&condition)).await?)
                }
                _ => None,
            };
            c.zero_dates = match (&c.source_column, &c.source_native) {
                (Some(col), Some(native)) => match self.source.zero_date_conditions(col, native) {
                    Some(conditions) => self.zero_dates(plan, conditions).await?,
                    None => None,
                },
                _ => None,
            };
        }
        Ok(())
    }

    /// The target's table as Ferry would create it: what expand runs, and
    /// what runs after the load (foreign keys, where the engine adds them later).
    fn target_ddl(&self, plan: &TablePlan) -> (Vec<String>, Vec<String>) {
        let mut def = plan.def.clone();
        if self.target.capabilities().adds_foreign_keys_later {
            let fks = std::mem::take(&mut def.foreign_keys);
            let (create, _) = self.target.table_ddl(&def);
            def.foreign_keys = fks;
            let (_, after) = self.target.table_ddl(&def);
            (create, after)
        } else {
            self.target.table_ddl(&def)
        }
    }

    /// The source's count of rows changed in the table, and when it was
    /// read; none where the engine keeps none. A change in place writes
    /// the table itself while measuring: its count says nothing.
    async fn rows_changed(&self, plan: &TablePlan) -> Option<(u64, Instant)> {
        if plan.in_place {
            return None;
        }
        self.source.rows_changed(&plan.source_name).await.ok().flatten().map(|n| (n, Instant::now()))
    }

    /// MySQL/MariaDB zero dates in a copied date or datetime column, counted
    /// in the live data: they cannot be converted and would stop the run.
    async fn zero_dates(&self, plan: &TablePlan, conditions: ZeroDateConditions) -> Result<Option<ZeroDates>> {
        let count = |condition: String| {
            let condition = match &plan.read.filter {
                Some(f) => format!("({f}) AND ({condition})"),
                None => condition,
            };
            async move { self.source.count(&plan.source_name, Some(&condition)).await }
        };
        let rows = count(conditions.any_zero).await?;
        if rows == 0 {
            return Ok(None);
        }
        let whole = count(conditions.all_zero).await?;
        Ok(Some(ZeroDates { rows, whole }))
    }

    /// Asks the target whether it accepts each translated expression (a
    /// check, a generated column, an index predicate), on a bare probe table
    /// of the same columns: a type mismatch the translation could not see
    /// (`flag IN (0, 1)` on a boolean) becomes a finding, not a failed expand.
    async fn validate_schema(&self, plan: &TablePlan, schema: &mut [SchemaItem]) -> Result<()> {
        let probe = probe_table(&plan.target_name);
        let columns =
            plan.def.columns.iter().map(|c| ColumnDef::new(c.name.clone(), c.data_type.clone(), true)).collect();
        let bare = TableDef::new(probe.clone(), columns, Vec::new());
        self.target.create_table(&bare).await?;
        let table = self.target.sql_dialect().table(&probe);
        // (kind, text the item's target holds, query)
        let mut probes: Vec<(SchemaItemKind, String, String)> = Vec::new();
        for check in &plan.def.checks {
            let sql = format!("SELECT 1 FROM {table} WHERE ({}) AND 1 = 0", check.expr);
            probes.push((SchemaItemKind::Check, format!("CONSTRAINT {} ", check.name), sql));
        }
        for c in &plan.def.columns {
            if let Some(g) = &c.generated {
                let sql = format!("SELECT ({}) FROM {table} WHERE 1 = 0", g.expr);
                probes.push((SchemaItemKind::Generated, format!("AS ({})", g.expr), sql));
            }
        }
        for index in &plan.def.expression_indexes {
            if let Some(p) = &index.predicate {
                let sql = format!("SELECT 1 FROM {table} WHERE ({p}) AND 1 = 0");
                probes.push((SchemaItemKind::Index, format!("WHERE {p}"), sql));
            }
        }
        let mut refused = Vec::new();
        for (kind, name, sql) in probes {
            if let Err(e) = self.target.probe(&sql).await {
                refused.push((kind, name, e.message().to_string()));
            }
        }
        self.target.drop_scratch_table(&probe).await?;
        for (kind, held, error) in refused {
            let Some(item) =
                schema.iter_mut().find(|i| i.kind == kind && i.target.as_deref().is_some_and(|t| t.contains(&held)))
            else {
                continue;
            };
            let class = match kind {
                SchemaItemKind::Generated => SchemaProblemClass::Generated,
                SchemaItemKind::Index => SchemaProblemClass::Index,
                _ => SchemaProblemClass::Expression,
            };
            item.problem = Some(SchemaProblem {
                class,
                reason: format!(
                    "{} refuses the translation `{}`: {error}",
                    self.target.kind(),
                    item.target.clone().unwrap_or_default()
                ),
                resolve: format!(
                    "[table.translate] \"{}\" = \"<SQL the target accepts>\" (or \"\" to leave it out)",
                    item.name
                ),
                info: false,
            });
        }
        Ok(())
    }

    /// p50 and p99 of single-row reads by key, on keys spread over the first rows.
    async fn latency(&self, plan: &TablePlan) -> Result<Latency> {
        let keys_only = ReadSpec {
            table: plan.source_name.clone(),
            select: plan.key_source.iter().map(|k| SelectItem::Column(k.clone())).collect(),
            key: plan.key_source.clone(),
            key_positions: (0..plan.key_source.len()).collect(),
            filter: None,
        };
        let mut keys = self.source.read_batch(&keys_only, None, 2_000).await?;
        fastrand::shuffle(&mut keys);
        keys.truncate(LATENCY_SAMPLES);
        let mut times = Vec::with_capacity(keys.len());
        for key in &keys {
            let started = Instant::now();
            self.source.read_keys(&keys_only, std::slice::from_ref(key)).await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
        Ok(Latency { samples: times.len() as u32, p50_ms: pick(0.50), p99_ms: pick(0.99) })
    }
}

/// What `ferry plan` produced.
pub struct Planned {
    pub plan: plan::Plan,
    pub markdown: String,
    pub json: String,
}

/// Measures, plans and records the assessment in the audit log.
pub async fn make_plan(spec: Spec, progress: &dyn Progress) -> Result<Planned> {
    let state = StateStore::open_at(&state_location(&spec)?)?;
    let assessor = Assessor::connect(spec.clone()).await?;
    let assessment = assessor.assess(progress).await?;
    let rehearsal = crate::rehearse::last_rehearsal(&state)?.map(|r| plan::RehearsalStatus {
        current: r.fingerprint == spec.rehearsal_fingerprint(),
        passed: r.passed,
        at: r.at,
        rows_per_table: r.rows_per_table,
        duration_ms: r.duration_ms,
        failure: r.failure,
    });
    let recorded = plan::Recorded { phases: state.phases()?, tables: state.table_statuses()?, rehearsal };
    let generated_at = timestamp(now());
    let dialects = plan::Dialects { source: assessor.source.plan_dialect(), target: assessor.target.plan_dialect() };
    let plan = plan::build(&spec, &assessment, dialects, &recorded, &generated_at);
    let estimate = &plan.migration_plan.estimates.run;
    let estimated = estimate.seconds * 1000.0;
    state.set_meta(
        PLAN_ESTIMATE,
        &serde_json::to_string(estimate).map_err(|e| RunError::state(format!("the plan's estimate: {e}")))?,
    )?;
    state.audit(&AuditEvent::MigrationAssessed {
        scope: assessment.tables.iter().map(|t| t.source.clone()).collect::<Vec<_>>().join("+"),
        components: assessment.tables.len() as u64,
        estimated_duration_ms: estimated as u64,
    })?;
    state.audit(&AuditEvent::StrategySelected {
        strategy: plan.strategy_adr.title.trim_start_matches("ADR: ").to_string(),
        rationale: plan.strategy_adr.rule.clone(),
    })?;
    let json = serde_json::to_string_pretty(&plan).map_err(|e| RunError::state(format!("plan.json: {e}")))?;
    let markdown = plan::markdown::render(&plan);
    Ok(Planned { plan, markdown, json })
}
