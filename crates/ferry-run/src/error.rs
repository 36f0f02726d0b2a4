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
    /// The migration's state does not allow the command now.
    Refused,
    /// The command line asks for something that cannot be done as given.
    Usage,
}

/// A stable error code, with what it means and how to fix it (docs/errors.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: &'static str,
    pub name: &'static str,
    pub meaning: &'static str,
}

/// Every error code Ferry prints. Codes are never reused.
pub const ERROR_CODES: &[ErrorCode] = &[
    ErrorCode {
        code: "E101",
        name: "spec",
        meaning: "the spec is wrong: syntax, a key, or what it names does not exist",
    },
    ErrorCode {
        code: "E102",
        name: "usage",
        meaning: "the command line asks for something that cannot be done as given",
    },
    ErrorCode {
        code: "E201",
        name: "refused",
        meaning: "the migration's state does not allow the command now; the hint says what does",
    },
    ErrorCode {
        code: "E202",
        name: "state",
        meaning: "the state store is unusable, belongs to another migration, or a gate is not met",
    },
    ErrorCode { code: "E203", name: "locked", meaning: "another ferry process drives this migration" },
    ErrorCode { code: "E301", name: "connect", meaning: "a database cannot be reached" },
    ErrorCode { code: "E302", name: "auth", meaning: "a database refused the login" },
    ErrorCode { code: "E303", name: "not-found", meaning: "a database, table or column that should exist does not" },
    ErrorCode { code: "E304", name: "permission", meaning: "a database refused for lack of privileges" },
    ErrorCode { code: "E305", name: "database-conversion", meaning: "a database refused a value" },
    ErrorCode { code: "E306", name: "constraint", meaning: "a constraint (unique, not null, check) rejected a row" },
    ErrorCode {
        code: "E307",
        name: "sql",
        meaning: "SQL a database could not run, usually a filter or expression of the spec",
    },
    ErrorCode {
        code: "E308",
        name: "transient",
        meaning: "a lock timeout, deadlock or serialization failure that outlasted the retries",
    },
    ErrorCode { code: "E309", name: "connection-lost", meaning: "a connection dropped mid-operation" },
    ErrorCode { code: "E310", name: "unsupported", meaning: "the engine or its version cannot do what the spec asks" },
    ErrorCode { code: "E311", name: "io", meaning: "a file or tool could not be read, written or run" },
    ErrorCode {
        code: "E312",
        name: "foreign-key",
        meaning: "a foreign key rejected a row: its parent is missing, or children still reference it",
    },
    ErrorCode {
        code: "E313",
        name: "tls",
        meaning: "a TLS connection failed: a certificate check (which one is said), no TLS offered, or an unreadable certificate file",
    },
    ErrorCode {
        code: "E399",
        name: "database",
        meaning: "another database error; the message has the database's own words",
    },
    ErrorCode { code: "E401", name: "conversion", meaning: "a value cannot be converted to its target column's type" },
    ErrorCode { code: "E402", name: "incompatible-target", meaning: "an existing target table cannot take the copy" },
    ErrorCode {
        code: "E901",
        name: "interrupted",
        meaning: "stopped at a batch boundary as asked (exit 130): run the command again",
    },
];

impl RunErrorKind {
    /// Its stable code.
    pub fn code(self) -> &'static str {
        use ferry_engine::ErrorKind as E;
        match self {
            RunErrorKind::Spec => "E101",
            RunErrorKind::Usage => "E102",
            RunErrorKind::Refused => "E201",
            RunErrorKind::State => "E202",
            RunErrorKind::Locked => "E203",
            RunErrorKind::Engine(kind) => match kind {
                E::Connect => "E301",
                E::Auth => "E302",
                E::NotFound => "E303",
                E::Permission => "E304",
                E::Conversion => "E305",
                E::Constraint => "E306",
                E::Sql => "E307",
                E::Transient => "E308",
                E::ConnectionLost => "E309",
                E::Unsupported => "E310",
                E::Io => "E311",
                E::ForeignKey => "E312",
                E::Tls => "E313",
                E::Other => "E399",
            },
            RunErrorKind::Conversion => "E401",
            RunErrorKind::IncompatibleTarget => "E402",
            RunErrorKind::Interrupted => "E901",
        }
    }
}

/// Ferry's error: a kind with a stable code, what happened, how to fix it,
/// and the error that caused it.
#[derive(Debug)]
pub struct RunError {
    pub kind: RunErrorKind,
    pub message: String,
    pub hint: Option<String>,
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = RunError> = std::result::Result<T, E>;

impl RunError {
    pub fn new(kind: RunErrorKind, message: impl Into<String>) -> RunError {
        RunError { kind, message: message.into(), hint: None, source: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> RunError {
        self.hint = Some(hint.into());
        self
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// Whether the same command may succeed if run again as it is.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            RunErrorKind::Interrupted
                | RunErrorKind::Locked
                | RunErrorKind::Engine(ferry_engine::ErrorKind::Transient | ferry_engine::ErrorKind::ConnectionLost)
        )
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

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<EngineError> for RunError {
    fn from(mut e: EngineError) -> RunError {
        RunError {
            kind: RunErrorKind::Engine(e.kind()),
            message: e.message().to_string(),
            hint: e.hint().map(str::to_string),
            source: e.take_source(),
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
        RunError { kind: RunErrorKind::Spec, message, hint, source: None }
    }
}

impl From<rusqlite::Error> for RunError {
    fn from(e: rusqlite::Error) -> RunError {
        let message = format!("state store: {e}");
        RunError { source: Some(Box::new(e)), ..RunError::state(message) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code is unique and documented in docs/errors.md with its name.
    #[test]
    fn codes_are_unique_and_documented() {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md")).unwrap();
        let mut seen = std::collections::HashSet::new();
        for c in ERROR_CODES {
            assert!(seen.insert(c.code), "{} twice", c.code);
            assert!(
                docs.contains(&format!("| {} | {} |", c.code, c.name)),
                "{} {} missing from docs/errors.md",
                c.code,
                c.name
            );
        }
        let documented = docs.lines().filter(|l| l.starts_with("| E")).count();
        assert_eq!(documented, ERROR_CODES.len(), "docs/errors.md lists codes that do not exist");
        for kind in [RunErrorKind::Spec, RunErrorKind::Refused, RunErrorKind::Interrupted] {
            assert!(ERROR_CODES.iter().any(|c| c.code == kind.code()));
        }
    }
}
