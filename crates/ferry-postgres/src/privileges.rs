//! Privileges asked of PostgreSQL before expand, so that a missing one is
//! said as the GRANT that gives it, before anything is created.

use crate::{map_err, PostgresEngine, Q};
use ferry_core::{CaptureMethod, TableName};
use ferry_engine::{Need, Result};

/// One question to the catalog: whether the current user may, and the
/// statement that lets it when not.
struct Check {
    sql: &'static str,
    /// The table or schema asked about (`$1`), if the query takes one.
    subject: Option<String>,
    grant: String,
}

pub(crate) async fn missing(engine: &PostgresEngine, needs: &[Need]) -> Result<Vec<String>> {
    let client = engine.client.lock().await;
    let row = client
        .query_one("SELECT current_user::text, current_schema()::text, current_database()::text", &[])
        .await
        .map_err(map_err)?;
    let (user, schema, database): (String, Option<String>, String) = (row.get(0), row.get(1), row.get(2));
    let here = Here { schema: schema.unwrap_or_else(|| "public".into()), database };
    let mut missing = Vec::new();
    for need in needs {
        for check in checks(need, &Q.ident(&user), &here) {
            let row = match &check.subject {
                Some(subject) => client.query_one(check.sql, &[subject]).await,
                None => client.query_one(check.sql, &[]).await,
            };
            let row = row.map_err(map_err)?;
            let granted: Option<bool> = row.get(0);
            // A second column names the role the GRANT gives (a table's owner).
            let grant = match row.columns().len() {
                2 => check.grant.replace("{owner}", &Q.ident(&row.get::<_, String>(1))),
                _ => check.grant,
            };
            if granted == Some(false) && !missing.contains(&grant) {
                missing.push(grant);
            }
        }
    }
    Ok(missing)
}

/// Where the connection is: the schema an unqualified name is created in, the database.
struct Here {
    schema: String,
    database: String,
}

/// What to ask for `need`.
fn checks(need: &Need, user: &str, here: &Here) -> Vec<Check> {
    let table = |t: &TableName, privilege: &'static str, sql: &'static str| Check {
        sql,
        subject: Some(Q.table(t)),
        grant: format!("GRANT {privilege} ON {} TO {user}", Q.table(t)),
    };
    let create_in_schema = |t: &TableName| Check {
        sql: match t.schema {
            Some(_) => "SELECT has_schema_privilege($1, 'CREATE')",
            None => "SELECT has_schema_privilege(current_schema(), 'CREATE')",
        },
        subject: t.schema.clone(),
        grant: format!("GRANT CREATE ON SCHEMA {} TO {user}", Q.ident(t.schema.as_deref().unwrap_or(&here.schema))),
    };
    // Only a table's owner (or a member of its role) may drop its triggers
    // and add it to a publication: capture could be installed, and then
    // neither rolled back nor contracted.
    let owner = |t: &TableName| Check {
        sql: "SELECT pg_has_role(current_user, c.relowner, 'USAGE'), pg_get_userbyid(c.relowner)::text
              FROM pg_class c WHERE c.oid = $1::text::regclass",
        subject: Some(Q.table(t)),
        grant: format!(
            "GRANT {{owner}} TO {user} (the owner of {}: capture is installed and removed by it)",
            Q.table(t)
        ),
    };
    match need {
        Need::Read(t) => vec![table(t, "SELECT", "SELECT has_table_privilege($1::text::regclass, 'SELECT')")],
        Need::Create(t) => vec![create_in_schema(t)],
        Need::Write(t) => vec![
            table(t, "SELECT", "SELECT has_table_privilege($1::text::regclass, 'SELECT')"),
            table(t, "INSERT", "SELECT has_table_privilege($1::text::regclass, 'INSERT')"),
            table(t, "UPDATE", "SELECT has_table_privilege($1::text::regclass, 'UPDATE')"),
            table(t, "DELETE", "SELECT has_table_privilege($1::text::regclass, 'DELETE')"),
        ],
        Need::Capture(t, method) => {
            let mut checks = vec![create_in_schema(t), owner(t)];
            if *method == CaptureMethod::Logical {
                checks.push(Check {
                    sql: "SELECT has_database_privilege(current_database(), 'CREATE')",
                    subject: None,
                    grant: format!(
                        "GRANT CREATE ON DATABASE {} TO {user} (for the publication)",
                        Q.ident(&here.database)
                    ),
                });
                checks.push(Check {
                    sql: "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
                    subject: None,
                    grant: format!("ALTER ROLE {user} REPLICATION"),
                });
            }
            checks
        }
    }
}
