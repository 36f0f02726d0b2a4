//! The only code that changes the migration's lifecycle state: asks the
//! pure state machine (`ferry_core::lifecycle`) whether a command may run
//! and where an event leads, and persists the answer before the caller acts
//! on it.

use crate::error::{Result, RunError, RunErrorKind};
use crate::state::StateStore;
use ferry_core::lifecycle::{self, Command, Event, Refusal, State};

impl From<Refusal> for RunError {
    fn from(r: Refusal) -> RunError {
        RunError::new(RunErrorKind::Refused, r.to_string()).with_hint(format!("legal now: {}", r.legal_now()))
    }
}

/// The state, if `command` may run in it; otherwise an error that says what may.
pub fn permit(store: &StateStore, command: Command) -> Result<State> {
    let state = store.lifecycle()?;
    lifecycle::permits(state, command)?;
    Ok(state)
}

/// Moves the state by `event` and records it; returns the new state.
pub fn advance(store: &StateStore, event: Event) -> Result<State> {
    let next = lifecycle::transition(store.lifecycle()?, event)?;
    store.set_lifecycle(next)?;
    // The flags an application reads follow the state (a rollback or a failed verification is 0 % reads).
    // A flag file that cannot be written must not block the step that moved
    // the state (a rollback above all): it is said loudly instead.
    if let Err(e) = crate::cutover::republish(store) {
        tracing::warn!(
            "{}; the application may still read the old share of reads: fix [cutover] flagd_file, then run \
             `ferry cutover --abort` (or the step again) to rewrite it",
            e.message
        );
    }
    Ok(next)
}

/// The commands legal now, for `ferry status`.
pub fn legal_commands(store: &StateStore) -> Result<Vec<&'static str>> {
    Ok(lifecycle::legal(store.lifecycle()?).into_iter().map(Command::name).collect())
}
