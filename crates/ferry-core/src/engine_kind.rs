//! Which database engine: one name for it, shared by the planner, the
//! engines and the state (serialised as `sqlite`, `postgres`, `mysql`).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Sqlite,
    Postgres,
    Mysql,
}

/// Every database URL scheme Ferry knows and the engine it names: the one
/// list the spec's checks, the user-SQL checks and the engines' URL parser read.
pub const URL_SCHEMES: [(&str, EngineKind); 5] = [
    ("sqlite:", EngineKind::Sqlite),
    ("postgres://", EngineKind::Postgres),
    ("postgresql://", EngineKind::Postgres),
    ("mysql://", EngineKind::Mysql),
    ("mariadb://", EngineKind::Mysql),
];

impl EngineKind {
    /// The engine a database URL names, by its scheme.
    pub fn of_url(url: &str) -> Option<EngineKind> {
        URL_SCHEMES.iter().find(|(scheme, _)| url.starts_with(scheme)).map(|(_, kind)| *kind)
    }

    /// The schemes in words, for messages: `sqlite:PATH, postgres://, … or mariadb://`.
    pub fn schemes_in_words() -> String {
        let names: Vec<String> = URL_SCHEMES
            .iter()
            .map(|(s, _)| if s.ends_with(':') { format!("{s}PATH") } else { s.to_string() })
            .collect();
        let (last, rest) = names.split_last().expect("schemes");
        format!("{} or {last}", rest.join(", "))
    }

    /// `name` quoted as an identifier of this engine (a quote inside it
    /// doubled): the one quoting rule the plan, the translator and the
    /// engines' SQL use.
    pub fn ident(self, name: &str) -> String {
        match self {
            EngineKind::Mysql => format!("`{}`", name.replace('`', "``")),
            EngineKind::Sqlite | EngineKind::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// The engine as a person names it, for prose.
    pub fn title(self) -> &'static str {
        match self {
            EngineKind::Sqlite => "SQLite",
            EngineKind::Postgres => "PostgreSQL",
            EngineKind::Mysql => "MySQL/MariaDB",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Sqlite => "sqlite",
            EngineKind::Postgres => "postgres",
            EngineKind::Mysql => "mysql",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_quotes_doubled() {
        assert_eq!(EngineKind::Mysql.ident("a`b"), "`a``b`");
        assert_eq!(EngineKind::Postgres.ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(EngineKind::Sqlite.ident("order"), "\"order\"");
    }

    #[test]
    fn urls_name_their_engine() {
        assert_eq!(EngineKind::of_url("mariadb://root@h/db"), Some(EngineKind::Mysql));
        assert_eq!(EngineKind::of_url("postgresql://h/db"), Some(EngineKind::Postgres));
        assert_eq!(EngineKind::of_url("sqlite:x.db"), Some(EngineKind::Sqlite));
        assert_eq!(EngineKind::of_url("postgres:h/db"), None);
        assert_eq!(EngineKind::schemes_in_words(), "sqlite:PATH, postgres://, postgresql://, mysql:// or mariadb://");
    }

    /// The name in messages and the name in plan.json and the state are one.
    #[test]
    fn display_and_serde_agree() {
        for kind in [EngineKind::Sqlite, EngineKind::Postgres, EngineKind::Mysql] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
    }
}
