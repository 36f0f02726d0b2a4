//! `ferry plan`: from measured facts to a plan, a rollback plan, an ADR, a
//! runbook and a change analysis. Pure: the measuring happens in `ferry-run`,
//! and every test here runs with no database (fixture assessments).

#[cfg(test)]
#[path = "plan_cases.rs"]
mod cases;
pub mod document;
pub mod estimate;
pub mod facts;
#[cfg(test)]
pub(crate) mod fixture;
pub mod in_place;
pub mod lint;
pub mod markdown;
pub mod sql;
pub mod strategy;

pub use document::{build, Dialects, Plan, Recorded, RehearsalStatus};
pub use estimate::{estimate, Estimate, Part, PartEstimate};
pub use facts::{
    Assessment, ColumnFacts, EndpointFacts, KeyCollisions, Latency, LoadReading, SchemaItem, SchemaItemKind,
    SchemaProblem, SchemaProblemClass, Shape, TableFacts, Throughput, ZeroDates,
};
pub use lint::{lint, Finding, Severity, RULES};
pub use strategy::{Risk, RollbackComplexity, Strategy};
