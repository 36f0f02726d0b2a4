//! One error shape for every engine.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The server cannot be reached (refused, timed out, name not resolved).
    Connect,
    /// The server refused the credentials.
    Auth,
    /// A database, table or column that should exist does not.
    NotFound,
    /// The server refused for lack of privileges.
    Permission,
    /// A value could not be converted or stored.
    Conversion,
    /// A constraint (unique, not null, check) rejected a row.
    Constraint,
    /// A foreign key rejected a row: its parent is missing, or children still reference it.
    ForeignKey,
    /// SQL the engine could not run: usually a filter or expression from the spec.
    Sql,
    /// A lock or statement timeout, deadlock or serialization failure: try again.
    Transient,
    /// The connection dropped mid-operation.
    ConnectionLost,
    /// A feature this engine or version cannot provide.
    Unsupported,
    Io,
    /// A TLS connection could not be set up: a certificate failed a check,
    /// the server offers no TLS, or a certificate file cannot be read.
    Tls,
    Other,
}

/// An engine error: what went wrong, in which kind, with a hint how to fix it.
#[derive(Debug)]
pub struct EngineError {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> EngineError {
        EngineError { kind, message: message.into(), hint: None, source: None }
    }

    /// `table` is not in the database shown as `database`; `tables` are some that are.
    pub fn table_not_found(table: &ferry_core::TableName, database: &str, tables: &[String]) -> EngineError {
        let hint = if tables.is_empty() {
            "the database has no tables".to_string()
        } else {
            format!("tables here: {}", tables.join(", "))
        };
        EngineError::new(ErrorKind::NotFound, format!("table `{table}` does not exist in {database}")).with_hint(hint)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> EngineError {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> EngineError {
        self.source = Some(Box::new(source));
        self
    }

    /// Prefixes the message with where it happened: `reading users: ...`.
    pub fn context(mut self, context: impl fmt::Display) -> EngineError {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The error that caused this one, taken out (to carry it further).
    pub fn take_source(&mut self) -> Option<Box<dyn std::error::Error + Send + Sync>> {
        self.source.take()
    }

    /// Whether the same operation may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Transient | ErrorKind::ConnectionLost)
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  help: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}
