//! Ferry's orchestration, written once over the [`ferry_engine::Engine`] trait.
//!
//! [`Migration`] connects the databases named in a spec, plans each table,
//! and runs the phases: expand, backfill and verify. Every step is recorded
//! in the [`StateStore`] before the runner moves on, so that a run killed at
//! any instant resumes where it stopped.

pub mod assess;
pub mod backfill;
pub mod cancel;
mod changed;
mod chunks;
pub mod compare;
pub mod connect;
pub mod contract;
pub mod cutover;
pub mod demo;
pub mod diff;
mod error;
pub mod gates;
mod heartbeat;
pub mod in_place;
pub mod integrity;
mod keycheck;
pub mod machine;
pub mod mapping;
pub mod probe;
pub mod progress;
pub mod reconnect;
pub mod rehearse;
pub mod report;
pub mod routing;
pub mod runner;
pub mod schema_map;
pub mod shadow;
pub mod state;
mod steps;
pub mod switch;
pub mod sync;
pub mod throttle;
pub mod verify;
mod worker;

pub use cancel::{Cancel, Invocation};
pub use error::{ErrorCode, Result, RunError, RunErrorKind, ERROR_CODES};
pub use heartbeat::{Heartbeat, Role, BEAT_EVERY, STALE_AFTER};
pub use progress::{Progress, Silent};
pub use runner::{
    operator_from_env, set_operator_pause, state_location, status, EstimateCheck, Migration, Repair, RunOutcome,
    TableOutcome, Verification, VerifyOptions,
};
pub use state::{AuditEntry, StateLocation, StateStore};
pub use verify::TableReport;
pub use worker::{open_worker, WorkOutcome};
