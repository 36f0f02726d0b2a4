//! Database URLs: which engine, and where.

use crate::error::{EngineError, ErrorKind, Result};
use std::fmt;
use std::path::{Path, PathBuf};

pub use ferry_core::EngineKind;

/// A parsed database URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite:PATH`; a relative path is resolved against the spec's directory.
    Sqlite(PathBuf),
    /// `postgres://` or `postgresql://`, passed to the driver as written.
    Postgres(url::Url),
    /// `mysql://` or `mariadb://` (normalised to `mysql://`).
    Mysql(url::Url),
}

impl DatabaseUrl {
    pub fn parse(input: &str, base_dir: &Path) -> Result<DatabaseUrl> {
        let bad = |why: &str| {
            EngineError::new(ErrorKind::Other, format!("invalid database URL `{}`: {why}", redact(input)))
                .with_hint("write sqlite:PATH, postgres://USER[:PASSWORD]@HOST[:PORT]/DB or mysql://USER[:PASSWORD]@HOST[:PORT]/DB")
        };
        if let Some(rest) = input.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(bad("no file path after sqlite:"));
            }
            let path = PathBuf::from(path);
            let path = if path.is_absolute() { path } else { base_dir.join(path) };
            return Ok(DatabaseUrl::Sqlite(path));
        }
        // A password written as is (`/`, `@`, `#` and all) reaches the driver whole.
        let encoded = ferry_core::spec::encode_userinfo(input);
        let input = encoded.as_str();
        let Some(kind) = EngineKind::of_url(input) else {
            return Err(bad(&format!("unknown scheme (use {})", EngineKind::schemes_in_words())));
        };
        // The driver knows MariaDB by MySQL's scheme.
        let normalized = match input.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => input.to_string(),
        };
        let url = url::Url::parse(&normalized).map_err(|e| bad(&e.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let db = url.path().trim_start_matches('/');
        if kind == EngineKind::Mysql && db.is_empty() {
            return Err(bad("no database name after the host (mysql://USER@HOST/DATABASE)"));
        }
        Ok(match kind {
            EngineKind::Mysql => DatabaseUrl::Mysql(url),
            _ => DatabaseUrl::Postgres(url),
        })
    }

    pub fn kind(&self) -> EngineKind {
        match self {
            DatabaseUrl::Sqlite(_) => EngineKind::Sqlite,
            DatabaseUrl::Postgres(_) => EngineKind::Postgres,
            DatabaseUrl::Mysql(_) => EngineKind::Mysql,
        }
    }

    /// The database name (file path for SQLite).
    pub fn database(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => p.display().to_string(),
            DatabaseUrl::Postgres(u) | DatabaseUrl::Mysql(u) => {
                let db = u.path().trim_start_matches('/');
                if db.is_empty() {
                    u.username().to_string()
                } else {
                    db.to_string()
                }
            }
        }
    }
}

/// Never prints the password.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            DatabaseUrl::Postgres(u) | DatabaseUrl::Mysql(u) => {
                let mut u = u.clone();
                if u.password().is_some() {
                    let _ = u.set_password(Some("***"));
                }
                f.write_str(u.as_str())
            }
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn redact(input: &str) -> String {
    ferry_core::spec::redact_for_message(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        let base = Path::new("/work");
        assert_eq!(DatabaseUrl::parse("sqlite:a.db", base).unwrap(), DatabaseUrl::Sqlite("/work/a.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite:///tmp/a.db", base).unwrap(), DatabaseUrl::Sqlite("/tmp/a.db".into()));
        let pg = DatabaseUrl::parse("postgresql://u:secret@h:5432/app", base).unwrap();
        assert_eq!(pg.kind(), EngineKind::Postgres);
        assert_eq!(pg.database(), "app");
        assert_eq!(pg.to_string(), "postgresql://u:***@h:5432/app");
        let my = DatabaseUrl::parse("mariadb://root@127.0.0.1/app", base).unwrap();
        assert_eq!(my.kind(), EngineKind::Mysql);
        assert!(my.to_string().starts_with("mysql://"));
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        let base = Path::new(".");
        for bad in ["oracle://x/y", "mysql://root@h", "postgres:///db", "sqlite:"] {
            let err = DatabaseUrl::parse(bad, base).unwrap_err();
            assert!(err.hint().is_some(), "{bad}");
        }
        let err = DatabaseUrl::parse("oracle://u:pw@x/y", base).unwrap_err();
        assert!(!err.to_string().contains("pw@"));
    }
}
