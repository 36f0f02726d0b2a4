//! The cancellation token: Ctrl-C or SIGTERM asks the work to stop at its
//! next batch boundary, where everything before it is recorded.

use crate::error::{RunError, RunErrorKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared by everything one command runs; cloned cheaply.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks the work to stop at the next batch boundary.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(interrupted)` once a stop was asked for.
    pub fn check(&self) -> Result<(), RunError> {
        if self.requested() {
            Err(interrupted())
        } else {
            Ok(())
        }
    }
}

pub fn interrupted() -> RunError {
    RunError::new(RunErrorKind::Interrupted, "stopped at a batch boundary as asked; everything up to it is recorded")
        .with_hint("run the same command again to resume")
}

/// Who runs a command and how to stop it: what every Ferry command carries
/// into the migration it opens.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub cancel: Cancel,
    /// For the audit log: `--operator`, `FERRY_OPERATOR`, else the OS user.
    pub operator: String,
    /// The command's name (`run`, `sync`...), for the runner's heartbeat.
    pub command: String,
}
