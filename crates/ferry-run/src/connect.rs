//! Opening an engine from a URL in the spec.

use crate::error::Result;
use ferry_engine::{DatabaseUrl, Engine};
use ferry_mysql::MysqlEngine;
use ferry_postgres::PostgresEngine;
use ferry_sqlite::{OpenMode, SqliteEngine};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
    /// One of the two databases `ferry diff` compares ("first", "second"); never created.
    Compared(&'static str),
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Target => "target",
            Role::Compared(which) => return write!(f, "{which} database"),
        })
    }
}

/// Connects to the database at `url` (relative SQLite paths resolve against `base_dir`).
pub async fn open(url: &str, base_dir: &Path, role: Role) -> Result<Arc<dyn Engine>> {
    let parsed = DatabaseUrl::parse(url, base_dir).map_err(|e| crate::RunError::from(e).context(role))?;
    let display = parsed.to_string();
    let engine: Arc<dyn Engine> = match &parsed {
        DatabaseUrl::Sqlite(path) => {
            let mode = match role {
                Role::Source | Role::Compared(_) => OpenMode::Existing,
                Role::Target => OpenMode::Create,
            };
            Arc::new(SqliteEngine::open(path, mode).await.map_err(|e| crate::RunError::from(e).context(role))?)
        }
        DatabaseUrl::Postgres(u) => Arc::new(
            PostgresEngine::connect(u.as_str(), display).await.map_err(|e| crate::RunError::from(e).context(role))?,
        ),
        DatabaseUrl::Mysql(u) => Arc::new(
            MysqlEngine::connect(u.as_str(), display).await.map_err(|e| crate::RunError::from(e).context(role))?,
        ),
    };
    Ok(engine)
}
