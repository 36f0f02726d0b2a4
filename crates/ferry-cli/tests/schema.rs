//! After `ferry run` the target can take the application's writes: every
//! engine pair carries identity, defaults, checks, a case-insensitive
//! unique email, a generated column, comments, partial and expression
//! indexes and an ON DELETE CASCADE child over, or the plan said why not.

use ferry_core::TableName;
use ferry_testkit::{describe_schema, engine_matrix, fixtures, spec, Kind, Session, TestDb, Workspace};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

async fn scalar(db: &TestDb, sql: &str) -> Option<String> {
    db.engine().await.scalar(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A connection as an application opens it (SQLite enforces foreign keys only when asked).
async fn app_session(db: &TestDb) -> Session {
    let mut session = db.session().await;
    if db.kind == Kind::Sqlite {
        session.exec("PRAGMA foreign_keys = ON").await.unwrap();
    }
    session
}

async fn application_can_write(source: Kind, target: Kind) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    src.exec(fixtures::app_schema_sql(source)).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, fixtures::APP_TABLES));
    let ran = ws.run(&["run"]);
    ran.assert_code(0);

    // What the target holds, item by item, per engine pair.
    let engine = dst.engine().await;
    let mut described = String::new();
    for table in ["users", "sessions"] {
        let schema = engine.introspect(&TableName::parse(table)).await.expect("target table");
        described.push_str(&describe_schema(&schema));
    }
    insta::assert_snapshot!(format!("{source}_to_{target}"), described);

    let pair = format!("{source} -> {target}");
    let mut app = app_session(&dst).await;
    // An INSERT without the key gets one beyond every key the source handed out (3 was deleted there).
    app.exec("INSERT INTO users (email) VALUES ('dave@example.com')")
        .await
        .unwrap_or_else(|e| panic!("{pair}: {e}\n{ran}"));
    let id: i64 = scalar(&dst, "SELECT id FROM users WHERE email = 'dave@example.com'").await.unwrap().parse().unwrap();
    assert!(id >= 4, "{pair}: the new user got id {id}, which the source already handed out\n{}", ws.audit_log());
    // Defaults fill the omitted columns; the generated column is computed.
    let row = scalar(
        &dst,
        &format!(
            "SELECT {} FROM users WHERE id = {id}",
            match target {
                Kind::Mysql => "concat(name, '|', status, '|', score, '|', name_upper, '|', created_at IS NOT NULL)",
                _ => "name || '|' || status || '|' || score || '|' || name_upper || '|' || (created_at IS NOT NULL)",
            }
        ),
    )
    .await
    .unwrap();
    let truth = if target == Kind::Postgres { "true" } else { "1" };
    assert_eq!(row, format!("anon|active|0|ANON|{truth}"), "{pair}: defaults and the generated column");
    // A CHECK rejects a bad row.
    let bad = app.exec("INSERT INTO users (email, score) VALUES ('eve@example.com', -1)").await;
    assert!(bad.is_err(), "{pair}: score >= 0 is not enforced");
    let bad = app.exec("INSERT INTO users (email, status) VALUES ('eve@example.com', 'gone')").await;
    assert!(bad.is_err(), "{pair}: the status list is not enforced");
    // The email is unique without regard to case, as on the source.
    let dup = app.exec("INSERT INTO users (email) VALUES ('ANN@EXAMPLE.COM')").await;
    assert!(dup.is_err(), "{pair}: a case-insensitive duplicate email was accepted");
    // Deleting a user deletes its sessions.
    app.exec("INSERT INTO sessions (user_id, token) VALUES (1, 't9')").await.unwrap_or_else(|e| panic!("{pair}: {e}"));
    app.exec("DELETE FROM users WHERE id = 1").await.unwrap();
    assert_eq!(scalar(&dst, "SELECT COUNT(*) FROM sessions WHERE user_id = 1").await.as_deref(), Some("0"), "{pair}");

    let audit = ws.audit_log();
    assert!(audit.contains("identity-advanced: table=users, column=id, next=4"), "{pair}: {audit}");
    assert!(dst.ferry_objects().await.is_empty(), "{pair}: ferry_ objects left in the target");
}

engine_matrix!(application_can_write);

/// A foreign key to a table that stays where it is, in the same database,
/// is recreated on the copy.
async fn foreign_key_to_a_table_left_in_place(kind: Kind) {
    let db = TestDb::new(kind).await;
    db.exec(
        "CREATE TABLE accounts (id integer PRIMARY KEY, name varchar(20));
         CREATE TABLE orders (id integer PRIMARY KEY, account_id integer REFERENCES accounts (id) ON DELETE SET NULL);
         INSERT INTO accounts VALUES (1, 'a'), (2, 'b');
         INSERT INTO orders VALUES (10, 1), (11, 2), (12, NULL);",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&ferry_testkit::spec_in_place(&db, "[[table]]\nfrom = \"orders\"\nto = \"orders_v2\"\n"));
    let plan = ws.plan_json();
    let items = plan["migration_plan"]["tables"][0]["schema"].as_array().unwrap().clone();
    let fk = items.iter().find(|i| i["kind"] == "foreign_key").unwrap_or_else(|| panic!("{kind}: {items:?}"));
    assert!(fk["target"].as_str().unwrap().contains("REFERENCES accounts (id) ON DELETE SET NULL"), "{kind}: {fk}");
    assert!(fk["problem"].is_null(), "{kind}: {fk}");
    ws.run(&["run"]).assert_code(0);
    let copy = db.engine().await.introspect(&TableName::parse("orders_v2")).await.unwrap();
    assert_eq!(copy.foreign_keys.len(), 1, "{kind}: {copy:?}");
    assert_eq!(copy.foreign_keys[0].ref_table.name, "accounts");
    assert_eq!(copy.foreign_keys[0].on_delete, ferry_core::FkAction::SetNull, "{kind}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_to_tables_outside_the_migration() {
    for kind in ferry_testkit::ALL {
        foreign_key_to_a_table_left_in_place(kind).await;
    }
}

/// A schema item expand created and someone removed is drift: verify fails and names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_on_schema_drift() {
    for (kind, drop_check) in [
        (Kind::Postgres, "ALTER TABLE users DROP CONSTRAINT users_score_positive"),
        (Kind::Mysql, "ALTER TABLE users DROP CONSTRAINT users_score_positive"),
    ] {
        let src = TestDb::new(Kind::Sqlite).await;
        let dst = TestDb::new(kind).await;
        src.exec(fixtures::app_schema_sql(Kind::Sqlite)).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(&src, &dst, fixtures::APP_TABLES));
        ws.run(&["run"]).assert_code(0);
        ws.run(&["verify"]).assert_code(0);
        dst.exec(drop_check).await;
        let ran = ws.run(&["verify"]);
        ran.assert_code(1);
        assert!(ran.stdout.contains("check users_score_positive is missing"), "{kind}: {ran}");
    }
}
