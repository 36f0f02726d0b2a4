pub mod contract;
pub mod cutover;
pub mod demo;
pub mod diff;
pub mod init;
pub mod plan;
pub mod rehearse;
pub mod run;
pub mod serve;
pub mod status;
pub mod verify;

use ferry_core::Spec;
use std::path::Path;

/// Loads and validates the spec, or explains what is wrong with it.
pub fn load_spec(path: &Path) -> anyhow::Result<Spec> {
    Ok(Spec::load(path).map_err(ferry_run::RunError::from)?)
}

/// The spec for a command that only reads the state store: the databases'
/// passwords (`${VAR}`s) need not be set.
pub fn load_spec_without_secrets(path: &Path) -> anyhow::Result<Spec> {
    Ok(Spec::load_without_secrets(path).map_err(ferry_run::RunError::from)?)
}
