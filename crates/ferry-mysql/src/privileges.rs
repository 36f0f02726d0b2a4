//! Privileges asked of MySQL/MariaDB before expand, from `SHOW GRANTS`.
//!
//! MySQL has no `has_table_privilege`: the grants are read and matched. The
//! reading is conservative, as a false refusal would stop a migration that
//! would have run: with a role in play, or a grant line it cannot read,
//! nothing is reported; a database name with wildcards (`app\_%`) counts as
//! granting every database; a column grant counts as a table grant.

use crate::{map_err, MysqlEngine, Q};
use ferry_core::{CaptureMethod, TableName};
use ferry_engine::{Need, Result};
use mysql_async::prelude::Queryable;

/// Which databases a grant covers.
#[derive(Debug, PartialEq)]
enum Databases {
    /// `*.*`: all, and the global privileges.
    All,
    /// A name with wildcards (`app\_%`): counted as all.
    Pattern,
    Named(String),
}

/// One `GRANT privileges ON scope` line of `SHOW GRANTS`.
#[derive(Debug, PartialEq)]
struct Grant {
    privileges: Vec<String>,
    databases: Databases,
    /// `None` for `*`: every table of the databases.
    table: Option<String>,
}

impl Grant {
    fn gives(&self, privilege: &str, database: &str, table: Option<&str>) -> bool {
        let on_database = match &self.databases {
            Databases::All | Databases::Pattern => true,
            Databases::Named(d) => d == database,
        };
        let on_table = match (&self.table, table) {
            (None, _) => true,
            (Some(granted), Some(wanted)) => granted == wanted,
            (Some(_), None) => false,
        };
        on_database && on_table && self.privileges.iter().any(|p| p == privilege || p == "ALL PRIVILEGES" || p == "ALL")
    }
}

/// The grant lines, or `None` when they cannot be read for sure.
fn parse(lines: &[String]) -> Option<Vec<Grant>> {
    lines.iter().map(|line| parse_line(line)).collect()
}

fn parse_line(line: &str) -> Option<Grant> {
    let rest = line.strip_prefix("GRANT ")?;
    let (privileges, rest) = rest.split_once(" ON ")?;
    let (scope, _) = rest.split_once(" TO ")?;
    // Column grants (`SELECT (a, b)`) count for the table.
    let mut cleaned = String::new();
    let mut depth = 0;
    for c in privileges.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => cleaned.push(c),
            _ => {}
        }
    }
    let privileges = cleaned.split(',').map(|p| p.trim().to_ascii_uppercase()).filter(|p| !p.is_empty()).collect();
    let scope = scope.trim().strip_prefix("TABLE ").unwrap_or(scope.trim());
    // The dot between the two names: after `*`, or after the closing backquote.
    let dot = if scope.starts_with('*') { 1 } else { scope.get(1..)?.find("`.")? + 2 };
    let (database, table) = (scope.get(..dot)?, scope.get(dot + 1..)?);
    let databases = match database {
        "*" => Databases::All,
        quoted => {
            let raw = quoted.strip_prefix('`')?.strip_suffix('`')?;
            // An unescaped `_` or `%` is a wildcard; `\_` a literal.
            let mut chars = raw.chars();
            let (mut name, mut pattern) = (String::new(), false);
            while let Some(c) = chars.next() {
                match c {
                    '\\' => name.extend(chars.next()),
                    '_' | '%' => {
                        pattern = true;
                        name.push(c);
                    }
                    _ => name.push(c),
                }
            }
            if pattern {
                Databases::Pattern
            } else {
                Databases::Named(name.replace("``", "`"))
            }
        }
    };
    let table = match table {
        "*" => None,
        quoted => Some(quoted.strip_prefix('`')?.strip_suffix('`')?.replace("``", "`")),
    };
    Some(Grant { privileges, databases, table })
}

/// What each need asks: (privilege, on the table or the database).
fn asks(need: &Need) -> Vec<(&'static str, &TableName, bool)> {
    match need {
        Need::Read(t) => vec![("SELECT", t, true)],
        Need::Create(t) => vec![("CREATE", t, false)],
        Need::Write(t) => vec![("SELECT", t, true), ("INSERT", t, true), ("UPDATE", t, true), ("DELETE", t, true)],
        Need::Capture(t, CaptureMethod::Binlog) => {
            vec![("CREATE", t, false), ("REPLICATION SLAVE", t, false), ("BINLOG MONITOR", t, false)]
        }
        Need::Capture(t, _) => vec![("CREATE", t, false), ("TRIGGER", t, true)],
    }
}

/// Privileges that are global only, and the other names they go by.
fn global(privilege: &str) -> &'static [&'static str] {
    match privilege {
        "REPLICATION SLAVE" => &["REPLICATION SLAVE", "REPLICATION REPLICA"],
        "BINLOG MONITOR" => &["BINLOG MONITOR", "REPLICATION CLIENT"],
        _ => &[],
    }
}

pub(crate) async fn missing(engine: &MysqlEngine, needs: &[Need]) -> Result<Vec<String>> {
    let mut conn = engine.conn().await?;
    let role: Option<Option<String>> = conn.query_first("SELECT CURRENT_ROLE()").await.map_err(map_err)?;
    let lines: Vec<String> = conn.query("SHOW GRANTS").await.map_err(map_err)?;
    let user: Option<String> = conn.query_first("SELECT CURRENT_USER()").await.map_err(map_err)?;
    let granted_roles = lines.iter().any(|l| !l.contains(" ON "));
    let Some(grants) = parse(&lines).filter(|_| role.flatten().is_none() && !granted_roles) else {
        return Ok(Vec::new());
    };
    let user = user.unwrap_or_default();
    let user = match user.split_once('@') {
        Some((name, host)) => format!("'{name}'@'{host}'"),
        None => format!("'{user}'"),
    };
    let mut missing = Vec::new();
    for need in needs {
        for (privilege, t, on_table) in asks(need) {
            let database = t.schema.clone().unwrap_or_else(|| engine.database.clone());
            let names = global(privilege);
            let given = if names.is_empty() {
                grants.iter().any(|g| g.gives(privilege, &database, on_table.then_some(t.name.as_str())))
            } else {
                grants.iter().any(|g| g.databases == Databases::All && names.iter().any(|n| g.gives(n, "", None)))
            };
            let grant = match (names.is_empty(), on_table) {
                (false, _) => format!("GRANT {privilege} ON *.* TO {user}"),
                (true, true) => format!("GRANT {privilege} ON {}.{} TO {user}", Q.ident(&database), Q.ident(&t.name)),
                (true, false) => format!("GRANT {privilege} ON {}.* TO {user}", Q.ident(&database)),
            };
            if !given && !missing.contains(&grant) {
                missing.push(grant);
            }
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(line: &str) -> Grant {
        parse_line(line).unwrap_or_else(|| panic!("{line}"))
    }

    #[test]
    fn grant_lines_are_read() {
        let all = grant("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION");
        assert!(all.gives("TRIGGER", "shop", Some("t")) && all.gives("CREATE", "x", None));
        let db = grant("GRANT SELECT, INSERT ON `shop`.* TO `app`@`%`");
        assert!(db.gives("SELECT", "shop", Some("t")) && db.gives("INSERT", "shop", None));
        assert!(!db.gives("SELECT", "other", Some("t")) && !db.gives("CREATE", "shop", None));
        let table = grant("GRANT SELECT (`a`, `b`), UPDATE ON `shop`.`t` TO `app`@`%`");
        assert_eq!(table.privileges, ["SELECT", "UPDATE"]);
        assert!(table.gives("SELECT", "shop", Some("t")) && !table.gives("SELECT", "shop", Some("u")));
        assert!(!table.gives("CREATE", "shop", None), "a table grant is not a database grant");
        let pattern = grant("GRANT CREATE ON `app\\_%`.* TO `app`@`%`");
        assert!(pattern.gives("CREATE", "anything", None), "a wildcard counts as granting");
        let literal = grant("GRANT CREATE ON `my\\_db`.* TO `app`@`%`");
        assert_eq!(literal.databases, Databases::Named("my_db".into()));
        assert!(!literal.gives("CREATE", "other", None));
        let repl = grant("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `r`@`%`");
        assert!(repl.gives("BINLOG MONITOR", "", None));
        assert!(parse(&["GRANT `reader` TO `app`@`%`".to_string()]).is_none(), "a role: not read for sure");
        assert!(parse_line("REVOKE nonsense").is_none());
    }
}
