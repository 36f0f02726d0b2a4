//! A whole schema in one spec: a composite primary key, a renamed column,
//! computed columns, a filter, a foreign key between tables and a
//! self-referencing one whose rows point forward in load order.

use ferry_core::{DataType, TableName, Value};
use ferry_testkit::{engine_matrix, fixtures::literal, spec, Kind, TestDb, Workspace};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const TENANTS: i64 = 3;
const PER_TENANT: i64 = 30;

struct Employee {
    tenant: i64,
    id: i64,
    name: String,
    manager: Option<i64>,
    email: String,
    salary: String,
    active: bool,
}

/// Employees 1-20 report to managers 21-30; manager 21-29 report to 30, which
/// is loaded after them. Only non-managers are inactive, so the filter leaves
/// no dangling manager.
fn employees() -> Vec<Employee> {
    let mut out = Vec::new();
    for tenant in 1..=TENANTS {
        for id in 1..=PER_TENANT {
            out.push(Employee {
                tenant,
                id,
                name: format!("Émployée {tenant}-{id} ✓"),
                manager: match id {
                    1..=20 => Some(21 + id % 9),
                    30 => None,
                    _ => Some(30),
                },
                email: format!("Person.{tenant}.{id}@Example.COM"),
                salary: format!("{}.{:02}", 1000 + id * 37, id % 100),
                active: !(id <= 20 && id % 7 == 0),
            });
        }
    }
    out
}

fn ddl(kind: Kind) -> String {
    let boolean = if kind == Kind::Mysql { "tinyint(1)" } else { "boolean" };
    format!(
        "CREATE TABLE tenants (id integer PRIMARY KEY, name varchar(100) NOT NULL);
         CREATE TABLE employees (
             tenant_id integer NOT NULL, id integer NOT NULL, full_name varchar(100) NOT NULL, manager_id integer,
             email varchar(200) NOT NULL, salary numeric(10,2), active {boolean} NOT NULL,
             PRIMARY KEY (tenant_id, id),
             CONSTRAINT employees_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id),
             CONSTRAINT employees_manager_fk FOREIGN KEY (tenant_id, manager_id) REFERENCES employees (tenant_id, id));
         CREATE UNIQUE INDEX employees_email_uq ON employees (email);
         CREATE INDEX employees_name_ix ON employees (full_name);"
    )
}

fn inserts(kind: Kind) -> String {
    let mut sql = String::from("INSERT INTO tenants (id, name) VALUES ");
    sql.push_str(&(1..=TENANTS).map(|t| format!("({t}, 'Tenant {t}')")).collect::<Vec<_>>().join(", "));
    sql.push_str(";\nINSERT INTO employees (tenant_id, id, full_name, manager_id, email, salary, active) VALUES ");
    let rows: Vec<String> = employees()
        .iter()
        .map(|e| {
            format!(
                "({}, {}, {}, {}, {}, {}, {})",
                e.tenant,
                e.id,
                literal(kind, &Value::Text(e.name.clone())),
                e.manager.map_or("NULL".into(), |m| m.to_string()),
                literal(kind, &Value::Text(e.email.clone())),
                e.salary,
                literal(kind, &Value::Bool(e.active))
            )
        })
        .collect();
    sql.push_str(&rows.join(",\n"));
    sql.push(';');
    // Self-references pointing forward need the checks off while the fixture loads.
    match kind {
        Kind::Mysql => format!("SET foreign_key_checks = 0;\n{sql}\nSET foreign_key_checks = 1;"),
        Kind::Postgres => format!("BEGIN; SET CONSTRAINTS ALL DEFERRED; {sql} COMMIT;"),
        Kind::Sqlite => sql,
    }
}

const TABLES: &str = r#"[policy]
batch_size = 7

[[table]]
from = "tenants"

[[table]]
from = "employees"
to = "staff"
filter = "active"

[table.columns]
name = "full_name"
email_lower = { expr = "lower(email)", type = "varchar(200)" }
salary_cents = { expr = "salary * 100", type = "numeric(14,2)" }
"#;

async fn whole_schema(source: Kind, target: Kind) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    // PostgreSQL defers only DEFERRABLE constraints: declare them so for the fixture.
    let ddl = if source == Kind::Postgres {
        ddl(source).replace("REFERENCES employees (tenant_id, id)", "REFERENCES employees (tenant_id, id) DEFERRABLE")
    } else {
        ddl(source)
    };
    src.exec(&ddl).await;
    src.exec(&inserts(source)).await;

    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, TABLES));
    let ran = ws.run(&["run"]);
    ran.assert_code(0);

    let engine = dst.engine().await;
    let staff = engine.introspect(&TableName::parse("staff")).await.expect("staff exists");
    assert_eq!(staff.primary_key, ["tenant_id", "id"], "{ran}");
    let names: Vec<&str> = staff.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["tenant_id", "id", "name", "manager_id", "email", "salary", "active", "email_lower", "salary_cents"],
        "renamed column in place, computed columns appended"
    );
    // MariaDB compares the email without case; a case-sensitive target enforces it on lower(email).
    let unique_email = if source == Kind::Mysql && target != Kind::Mysql {
        staff
            .expression_indexes
            .iter()
            .any(|i| i.unique && i.elements.contains("lower(") && i.elements.contains("email"))
    } else {
        staff.unique_keys.iter().any(|u| u.columns == ["email"])
    };
    assert!(unique_email, "unique key recreated: {:?} {:?}", staff.unique_keys, staff.expression_indexes);
    assert!(staff.indexes.iter().any(|i| i.columns == ["name"]), "index follows the rename: {:?}", staff.indexes);
    let mut fks: Vec<(Vec<String>, String, Vec<String>)> = staff
        .foreign_keys
        .iter()
        .map(|f| (f.columns.clone(), f.ref_table.name.clone(), f.ref_columns.clone()))
        .collect();
    fks.sort();
    assert_eq!(
        fks,
        vec![
            (vec!["tenant_id".to_string()], "tenants".to_string(), vec!["id".to_string()]),
            (vec!["tenant_id".into(), "manager_id".into()], "staff".into(), vec!["tenant_id".into(), "id".into()]),
        ],
        "foreign keys re-pointed at the target tables"
    );

    let columns = ["tenant_id", "id", "name", "manager_id", "email", "salary", "active", "email_lower", "salary_cents"];
    let types: Vec<DataType> = columns.iter().map(|c| staff.column(c).unwrap().data_type.clone()).collect();
    let rows = dst.rows("staff", &["tenant_id", "id"], &columns, &types).await;
    let active: Vec<Employee> = employees().into_iter().filter(|e| e.active).collect();
    assert_eq!(rows.len(), active.len(), "the filter kept only active employees");
    let mut expected = active;
    expected.sort_by_key(|e| (e.tenant, e.id));
    for (row, e) in rows.iter().zip(&expected) {
        assert_eq!(row[1], Value::Int(e.id));
        assert_eq!(row[2], Value::Text(e.name.clone()), "renamed column keeps its values");
        assert_eq!(row[3], e.manager.map_or(Value::Null, Value::Int));
        assert_eq!(row[7], Value::Text(e.email.to_lowercase()), "computed lower(email)");
        let cents = ferry_core::decimal::Decimal::parse(&e.salary).unwrap();
        let expect_cents =
            format!("{}{}", cents.to_string().replace('.', ""), ".00").trim_start_matches('0').to_string();
        assert_eq!(row[8], Value::Decimal(expect_cents), "computed salary * 100 for {}-{}", e.tenant, e.id);
    }
    assert_eq!(dst.count("tenants").await, TENANTS as u64);
    assert!(ws.audit_log().contains("foreign-key-added") || target == Kind::Sqlite, "{}", ws.audit_log());
}

engine_matrix!(whole_schema);
