//! Ferry's pure core: no database I/O happens here.
//!
//! The spec, the schema model, the [`Value`] that crosses engines with its
//! canonical encoding and conversions, phases and audit events, and the
//! status contract. Engines and the runner build on these.

pub mod audit;
pub mod capabilities;
pub mod convert;
pub mod decimal;
pub mod dialect;
pub mod engine_kind;
pub mod in_place;
pub mod lifecycle;
pub mod schema;
pub mod spec;
pub mod sqlexpr;
pub mod status;
pub mod temporal;
pub mod transport;
pub mod types;
pub mod usersql;
pub mod value;

pub use audit::{AuditEvent, Phase};
pub use capabilities::Capabilities;
pub use dialect::PlanDialect;
pub use engine_kind::EngineKind;
pub use schema::{
    Check, Collation, Column, ColumnDef, ColumnDependent, DefaultValue, DependentKind, Dependents, ExpressionIndex,
    FkAction, ForeignKey, Generated, Identity, Index, Literal, TableDef, TableName, TableSchema, TableStats,
};
pub use spec::{CaptureMethod, ColumnSource, Policy, Spec, SpecError, TableSpec};
pub use transport::Transport;
pub use types::DataType;
pub use value::{Row, Value};
