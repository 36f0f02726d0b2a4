//! In-place changes, executed through the real binary on every engine: the
//! seed's `email_verified` example under writers of both application
//! versions, a refused and then passing contract, a rollback that leaves the
//! table as it was, and a backfill killed with SIGKILL that resumes.

use ferry_testkit::{Kind, Session, TestDb, Workspace, ALL, MIGRATION};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// `users` with `rows` rows; every third one verified.
async fn users(kind: Kind, rows: u64) -> TestDb {
    let db = TestDb::new(kind).await;
    let (create, fill) = match kind {
        Kind::Postgres => (
            "CREATE TABLE users (id serial PRIMARY KEY, email varchar(100) NOT NULL, verification_date date)",
            format!(
                "INSERT INTO users (email, verification_date) SELECT 'u' || i || '@example.com', \
                 CASE WHEN i % 3 = 0 THEN DATE '2025-01-01' + (i % 300) END FROM generate_series(1, {rows}) i"
            ),
        ),
        Kind::Mysql => (
            "CREATE TABLE users (id int AUTO_INCREMENT PRIMARY KEY, email varchar(100) NOT NULL, verification_date date)",
            format!(
                "INSERT INTO users (email, verification_date) SELECT concat('u', seq, '@example.com'), \
                 IF(seq % 3 = 0, DATE '2025-01-01' + INTERVAL (seq % 300) DAY, NULL) FROM seq_1_to_{rows}"
            ),
        ),
        Kind::Sqlite => (
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email varchar(100) NOT NULL, verification_date date)",
            format!(
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {rows}) \
                 INSERT INTO users (email, verification_date) SELECT 'u' || i || '@example.com', \
                 CASE WHEN i % 3 = 0 THEN date('2025-01-01', '+' || (i % 300) || ' days') END FROM s"
            ),
        ),
    };
    db.exec(create).await;
    db.exec(&fill).await;
    db
}

/// The seed's spec, exactly as the issue writes it, with a policy of its own.
fn seed_spec(db: &TestDb, policy: &str) -> String {
    format!(
        "{MIGRATION}[source]\nurl = \"{}\"\n\n{policy}\n[[change]]\ntable = \"users\"\nadd_column = \"email_verified\"\n\
         type = \"boolean\"\nexpr = \"verification_date IS NOT NULL\"\nnot_null = true\n\n\
         [[change]]\ntable = \"users\"\ndrop_column = \"verification_date\"\n",
        db.url
    )
}

/// Where each application version reads and writes `users` (SQLite's views are read-only: it writes the table).
fn version_table(kind: Kind, version: u8) -> String {
    match kind {
        Kind::Postgres => format!("public_ferry_v{version}.users"),
        Kind::Mysql => format!("users_ferry_v{version}"),
        Kind::Sqlite => "users".into(),
    }
}

fn truth(kind: Kind, b: bool) -> &'static str {
    match (kind, b) {
        (Kind::Postgres, true) => "true",
        (Kind::Postgres, false) => "false",
        (_, true) => "1",
        (_, false) => "0",
    }
}

/// Writes through one application version until told to stop; counts the writes that landed.
async fn writer(mut session: Session, kind: Kind, version: u8, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let table = version_table(kind, version);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let id = 1 + (i * 7919 + version as u64 * 104_729) % 150_000;
        let sql = match (version, i % 3) {
            (1, 0) => {
                format!("INSERT INTO {table} (email, verification_date) VALUES ('old{i}@example.com', '2025-06-01')")
            }
            (1, 1) => format!("UPDATE {table} SET verification_date = '2025-07-01' WHERE id = {id}"),
            (1, _) => format!("UPDATE {table} SET verification_date = NULL WHERE id = {id}"),
            (_, 0) => format!(
                "INSERT INTO {table} (email, email_verified) VALUES ('new{i}@example.com', {})",
                truth(kind, true)
            ),
            (_, 1) => {
                format!("UPDATE {table} SET email_verified = {} WHERE id = {id}", truth(kind, i.is_multiple_of(2)))
            }
            (_, _) => format!("UPDATE {table} SET email = 'renamed{i}@example.com' WHERE id = {id}"),
        };
        if session.exec(&sql).await.is_ok() {
            done.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn scalar(db: &TestDb, sql: &str) -> String {
    db.engine().await.scalar(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).unwrap_or_default()
}

/// The seed's example on each engine, 200,000 rows, with a version 1 writer
/// (writes `verification_date`) and a version 2 writer (writes
/// `email_verified`) during the backfill: verify passes, every row is
/// consistent by an independent query, contract is refused while a view reads
/// the dropped column and passes once it does not; then the column is NOT NULL
/// and the old one is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seed_s_change_runs_in_place_under_both_versions() {
    for kind in ALL {
        let db = users(kind, 200_000).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&seed_spec(&db, "[policy]\nbatch_size = 2000\nchunk_time = \"0s\"\nbatch_pause = \"10ms\"\n"));
        let expand = ws.run(&["run", "--until", "expand"]);
        expand.assert_code(0);
        assert!(expand.stderr.contains("version 2") || expand.stdout.contains("version 2"), "{kind}: {expand}");

        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for version in [1u8, 2] {
            handles.push(tokio::spawn(writer(db.session().await, kind, version, stop.clone(), writes.clone())));
        }
        let run = ws.run_beside(&["run"]).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await.unwrap();
        }
        run.assert_code(0);
        assert!(writes.load(Ordering::Relaxed) > 20, "{kind}: the writers wrote during the backfill: {run}");

        let verify = ws.run(&["verify"]);
        verify.assert_code(0);
        // Independently of Ferry: no row left unfilled, and every row either computed or written by version 2.
        assert_eq!(scalar(&db, "SELECT count(*) FROM users WHERE email_verified IS NULL").await, "0", "{kind}");
        let disagree = match kind {
            Kind::Postgres => "email_verified IS DISTINCT FROM (verification_date IS NOT NULL)",
            Kind::Mysql => "NOT (email_verified <=> (verification_date IS NOT NULL))",
            Kind::Sqlite => "email_verified IS NOT (verification_date IS NOT NULL)",
        };
        let unexplained = format!(
            "SELECT count(*) FROM users u WHERE {disagree} AND NOT EXISTS (SELECT 1 FROM ferry_written_users w WHERE w.id = u.id)"
        );
        assert_eq!(scalar(&db, &unexplained).await, "0", "{kind}");

        db.exec("CREATE VIEW verified_users AS SELECT id, email FROM users WHERE verification_date IS NOT NULL").await;
        let refused = ws.run(&["contract", "--confirm"]);
        assert_ne!(refused.code, Some(0), "{kind}: {refused}");
        assert!(refused.stderr.contains("verified_users"), "{kind}: the refusal names the view: {refused}");
        assert_ne!(
            scalar(&db, "SELECT count(*) FROM users WHERE verification_date IS NOT NULL").await,
            "0",
            "{kind}: refused, nothing dropped"
        );
        db.exec("DROP VIEW verified_users").await;

        let contract = ws.run(&["contract", "--confirm"]);
        contract.assert_code(0);
        let schema = db.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
        assert!(schema.column("verification_date").is_none(), "{kind}: the old column is gone");
        let new = schema.column("email_verified").unwrap_or_else(|| panic!("{kind}: no email_verified"));
        assert!(!new.nullable, "{kind}: email_verified is NOT NULL after contract");
        assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "{kind}: nothing named ferry_ is left");
        // Version 2 keeps working through its view.
        let v2 = format!(
            "SELECT count(*) FROM {}",
            if kind == Kind::Sqlite { "users_ferry_v2".into() } else { version_table(kind, 2) }
        );
        assert_ne!(scalar(&db, &v2).await, "0", "{kind}");
    }
}

/// Rollback before contract drops the new column, the triggers, the mark
/// table and the views: the table is exactly as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_before_contract_leaves_the_table_as_it_was() {
    for kind in ALL {
        let db = users(kind, 3_000).await;
        let before = db.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
        let types =
            [ferry_core::DataType::Int64, ferry_core::DataType::Text { max_chars: None }, ferry_core::DataType::Date];
        let rows = db.rows("users", &["id"], &["id", "email", "verification_date"], &types).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&seed_spec(&db, ""));
        ws.run(&["run"]).assert_code(0);
        assert!(!db.ferry_objects().await.is_empty(), "{kind}: expand created its objects");
        let rollback = ws.run(&["rollback"]);
        rollback.assert_code(0);
        let after = db.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
        assert_eq!(
            after.columns.iter().map(|c| &c.name).collect::<Vec<_>>(),
            before.columns.iter().map(|c| &c.name).collect::<Vec<_>>(),
            "{kind}"
        );
        assert_eq!(db.rows("users", &["id"], &["id", "email", "verification_date"], &types).await, rows, "{kind}");
        assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "{kind}: {rollback}");
        let views = match kind {
            Kind::Postgres => "SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%ferry_v%'",
            Kind::Mysql => "SELECT count(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()",
            Kind::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'view'",
        };
        assert_eq!(scalar(&db, views).await, "0", "{kind}: the version views are gone");
        // And it can start again.
        ws.run(&["run"]).assert_code(0);
    }
}

/// A backfill killed with SIGKILL resumes from its checkpoint and ends consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backfill_resumes_and_ends_consistent() {
    for kind in ALL {
        let db = users(kind, 30_000).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&seed_spec(&db, "[policy]\nbatch_size = 1000\nchunk_time = \"0s\"\nbatch_pause = \"20ms\"\n"));
        let mut child = ws.spawn_quiet(&["run"]);
        ferry_testkit::wait_until("a few batches", Duration::from_secs(60), || {
            ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap_or(0) >= 3000
        });
        child.kill().unwrap();
        child.wait().unwrap();
        let copied = ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap();
        assert!(copied < 30_000, "{kind}: killed before the end ({copied})");
        let resumed = ws.run(&["run"]);
        resumed.assert_code(0);
        assert_eq!(scalar(&db, "SELECT count(*) FROM users WHERE email_verified IS NULL").await, "0", "{kind}");
        assert!(ws.audit_log().contains("backfill-resumed"), "{kind}: {}", ws.audit_log());
    }
}

/// A rename under writers of both versions: version 1 writes `fullname`,
/// version 2 `full_name`; until contract both names hold the same value on
/// every row, after it only the new name is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rename_keeps_both_names_in_step_under_both_versions() {
    for kind in ALL {
        let db = TestDb::new(kind).await;
        let key = match kind {
            Kind::Postgres => "id serial PRIMARY KEY",
            Kind::Mysql => "id int AUTO_INCREMENT PRIMARY KEY",
            Kind::Sqlite => "id INTEGER PRIMARY KEY",
        };
        db.exec(&format!("CREATE TABLE people ({key}, fullname varchar(100))")).await;
        let mut session = db.session().await;
        for i in 0..2000 {
            session.exec(&format!("INSERT INTO people (fullname) VALUES ('n{i}')")).await.unwrap();
        }
        let ws = Workspace::new(FERRY);
        ws.write_spec(&format!(
            "{MIGRATION}[source]\nurl = \"{}\"\n\n[policy]\nbatch_size = 100\nchunk_time = \"0s\"\nbatch_pause = \"10ms\"\n\n\
             [[change]]\ntable = \"people\"\nrename_column = \"fullname\"\nto = \"full_name\"\n",
            db.url
        ));
        ws.run(&["run", "--until", "expand"]).assert_code(0);
        let run = ws.run_beside(&["run"]);
        let table = |v: u8| match kind {
            Kind::Postgres => format!("public_ferry_v{v}.people"),
            Kind::Mysql => format!("people_ferry_v{v}"),
            Kind::Sqlite => "people".into(),
        };
        let mut writes = 0;
        while !run.is_finished() {
            writes += 1;
            let id = 1 + (writes * 37) % 2000;
            let (v, column) = if writes % 2 == 0 { (1, "fullname") } else { (2, "full_name") };
            let sql = if writes % 5 == 0 {
                format!("INSERT INTO {} ({column}) VALUES ('w{writes}')", table(v))
            } else {
                format!("UPDATE {} SET {column} = 'w{writes}' WHERE id = {id}", table(v))
            };
            session.exec(&sql).await.unwrap_or_else(|e| panic!("{kind}: {sql}: {e}"));
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        run.await.unwrap().assert_code(0);
        assert!(writes > 10, "{kind}: the writers wrote during the backfill ({writes})");
        let differ = match kind {
            Kind::Postgres => "fullname IS DISTINCT FROM full_name",
            Kind::Mysql => "NOT (fullname <=> full_name)",
            Kind::Sqlite => "fullname IS NOT full_name",
        };
        assert_eq!(scalar(&db, &format!("SELECT count(*) FROM people WHERE {differ}")).await, "0", "{kind}");
        ws.run(&["contract", "--confirm"]).assert_code(0);
        let schema = db.engine().await.introspect(&ferry_core::TableName::parse("people")).await.unwrap();
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "full_name"], "{kind}");
        assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "{kind}");
    }
}

/// MariaDB commits each contract statement by itself: a contract killed
/// between its steps (state `contracting`) is finished by running it again,
/// and ends with the table contracted and nothing of Ferry's left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_killed_between_steps_on_mariadb_resumes() {
    let mut killed_mid_contract = 0;
    for delay_ms in [30u64, 80, 150, 250, 400, 600, 900] {
        let db = users(Kind::Mysql, 60_000).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&seed_spec(&db, ""));
        ws.run(&["run"]).assert_code(0);
        let mut child = ws.spawn_quiet(&["contract", "--confirm"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        let state = ws.status_json()["state"].as_str().unwrap_or_default().to_string();
        if state == "contracting" {
            killed_mid_contract += 1;
        }
        let again = ws.run(&["contract", "--confirm"]);
        // Killed before the point of no return: contract starts; after it: it finishes; finished: it says so.
        assert!(
            again.code == Some(0) || (state == "completed" && again.stderr.contains("completed")),
            "delay {delay_ms} ms, state {state}: {again}\n{}",
            ws.audit_log()
        );
        let schema = db.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
        assert!(schema.column("verification_date").is_none(), "delay {delay_ms} ms");
        assert!(!schema.column("email_verified").unwrap().nullable, "delay {delay_ms} ms");
        assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "delay {delay_ms} ms");
        assert_eq!(ws.status_json()["state"], "completed", "delay {delay_ms} ms");
        if killed_mid_contract > 0 && state == "completed" {
            break;
        }
    }
    assert!(killed_mid_contract > 0, "no kill landed between contract steps: the delays need adjusting");
}
