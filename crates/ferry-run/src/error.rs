//! The runner's error: what happened, and how to fix it.

use ferry_engine::EngineError;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunErrorKind {
    /// The spec is wrong (syntax, keys, or what it names does not exist).
    Spec,
    /// A database refused or failed.
    Engine(ferry_engine::ErrorKind),
    /// A value could not be converted to its target column type.
    Conversion,
    /// The target table exists but cannot hold what the spec maps into it.
    IncompatibleTarget,
    /// Another runner holds this migration's lock.
    Locked,
    /// The state store is unreadable or belongs to another migration.
    State,
    /// Stopped at a batch boundary on request (Ctrl-C, SIGTERM).
    Interrupted,
}

#[derive(Debug)]
pub struct RunError {
    pub kind: RunErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T, E = RunError> = std::result::Result<T, E>;

impl RunError {
    pub fn new(kind: RunErrorKind, message: impl Into<String>) -> RunError {
        RunError { kind, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> RunError {
        self.hint = Some(hint.into());
        self
    }

    pub fn state(message: impl Into<String>) -> RunError {
        RunError::new(RunErrorKind::State, message)
    }

    pub fn context(mut self, context: impl fmt::Display) -> RunError {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  help: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RunError {}

impl From<EngineError> for RunError {
    fn from(e: EngineError) -> RunError {
        RunError {
            kind: RunErrorKind::Engine(e.kind()),
            message: e.message().to_string(),
            hint: e.hint().map(str::to_string),
        }
    }
}

impl From<ferry_core::SpecError> for RunError {
    fn from(e: ferry_core::SpecError) -> RunError {
        let mut message = e.to_string();
        let hint = e.help.clone();
        if let Some(h) = &hint {
            message = message.replace(&format!("\n  help: {h}"), "");
        }
        RunError { kind: RunErrorKind::Spec, message, hint }
    }
}

impl From<rusqlite::Error> for RunError {
    fn from(e: rusqlite::Error) -> RunError {
        RunError::state(format!("state store: {e}"))
    }
}
