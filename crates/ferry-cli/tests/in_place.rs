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

/// `ferry run` beside one application writer that sends `write(n)` every
/// 3 ms until the run ends; the run must pass, and the writer must have
/// written during it.
async fn run_while_writing(ws: &Workspace, session: &mut Session, kind: Kind, write: impl Fn(u64) -> String) {
    run_while_writing_ends(ws, session, kind, 0, write).await
}

/// [`run_while_writing`], with the exit code `ferry run` must end with.
async fn run_while_writing_ends(
    ws: &Workspace,
    session: &mut Session,
    kind: Kind,
    code: i32,
    write: impl Fn(u64) -> String,
) {
    let run = ws.run_beside(&["run"]);
    let mut n = 0u64;
    while !run.is_finished() {
        n += 1;
        let sql = write(n);
        session.exec(&sql).await.unwrap_or_else(|e| panic!("{kind}: {sql}: {e}"));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    run.await.unwrap().assert_code(code);
    assert!(n > 10, "{kind}: the writer wrote during the backfill ({n} writes)");
}

/// `ferry contract --confirm` passes and leaves `table` with exactly `columns` and nothing of Ferry's.
async fn contract_leaves(
    ws: &Workspace,
    db: &TestDb,
    kind: Kind,
    table: &str,
    columns: &[&str],
) -> ferry_core::TableSchema {
    ws.run(&["contract", "--confirm"]).assert_code(0);
    let schema = db.engine().await.introspect(&ferry_core::TableName::parse(table)).await.unwrap();
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, columns, "{kind}");
    assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "{kind}");
    schema
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
        ws.write_spec(&seed_spec(&db, ""));
        let expand = ws.run(&["run", "--until", "expand"]);
        expand.assert_code(0);
        assert!(expand.stderr.contains("version 2") || expand.stdout.contains("version 2"), "{kind}: {expand}");

        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for version in [1u8, 2] {
            handles.push(tokio::spawn(writer(db.session().await, kind, version, stop.clone(), writes.clone())));
        }
        // Both writers are under way before the run starts, and go on through it.
        for _ in 0..1000 {
            if writes.load(Ordering::Relaxed) >= 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before = writes.load(Ordering::Relaxed);
        assert!(before >= 20, "{kind}: the writers did not start ({before} writes)");
        let run = ws.run_beside(&["run"]).await.unwrap();
        let during = writes.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await.unwrap();
        }
        run.assert_code(0);
        // A backfill of SQLite holds the file's write lock for each batch: its
        // writers get in between batches, fewer the faster the copy is.
        assert!(during > 0, "{kind}: the writers wrote during the backfill: {run}");

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

/// `ferry plan` times the fill as the run fills — on a copy of the table's
/// rows in the old shape, given the change's new column, mark table and
/// sync triggers — and leaves nothing behind, nor what a killed plan left:
/// the table untouched, no probe, no trigger, no mark table, no trigger function.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_times_the_fill_under_the_change_s_triggers_and_leaves_nothing() {
    for kind in ALL {
        let db = users(kind, 5_000).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&seed_spec(&db, ""));
        let shape = || async {
            let schema = db.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
            schema.columns.into_iter().map(|c| c.name).collect::<Vec<_>>()
        };
        let before = shape().await;
        // What a plan killed during the fill leaves: the probe, its mark table, PostgreSQL's trigger function.
        db.exec("CREATE TABLE ferry_probe_users_t (id integer PRIMARY KEY)").await;
        db.exec("CREATE TABLE ferry_written_ferry_probe_users_t (id integer)").await;
        if kind == Kind::Postgres {
            db.exec(
                "CREATE FUNCTION ferry_sync_ferry_probe_users_t() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
            )
            .await;
        }
        let plan = ws.plan_json();
        let parts =
            plan["migration_plan"]["estimates"]["run"]["parts"].as_array().unwrap_or_else(|| panic!("{kind}: {plan}"));
        let copy = parts.iter().find(|p| p["part"] == "copy").unwrap_or_else(|| panic!("{kind}: {plan}"));
        let basis = copy["basis"].as_str().unwrap();
        assert!(basis.contains("rows filled in place at"), "{kind}: the fill was measured: {basis}");
        assert!(basis.contains("sync triggers firing"), "{kind}: {basis}");
        assert_eq!(shape().await, before, "{kind}: the table is as it was");
        assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "{kind}: nothing named ferry_ is left");
        assert_eq!(scalar(&db, "SELECT count(*) FROM users").await, "5000", "{kind}");
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
        // A move's commands have nothing to do in place (and a switch would fence the table).
        for command in [&["switch"][..], &["sync"], &["cutover"], &["rehearse"]] {
            let refused = ws.run(command);
            assert_ne!(refused.code, Some(0), "{kind}: {refused}");
            assert!(refused.stderr.contains("in place"), "{kind}: {refused}");
        }
        let fences = db.ferry_objects().await.into_iter().filter(|o| o.contains("fence")).count();
        assert_eq!(fences, 0, "{kind}: no write fence");
        let legal = ws.status_json()["legal_commands"].to_string();
        assert!(legal.contains("contract") && !legal.contains("switch"), "{kind}: status lists what applies: {legal}");
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
        // Indexes on the renamed column: carried to the new one, under their names after contract.
        db.exec("CREATE INDEX people_name ON people (fullname)").await;
        db.exec("CREATE UNIQUE INDEX people_id_name ON people (id, fullname)").await;
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
        assert_eq!(
            operations(&ws),
            [
                "rename_column full_name started",
                "carry_index people_id_name started",
                "carry_index people_name started"
            ],
            "{kind}"
        );
        let table = |v: u8| match kind {
            Kind::Postgres => format!("public_ferry_v{v}.people"),
            Kind::Mysql => format!("people_ferry_v{v}"),
            Kind::Sqlite => "people".into(),
        };
        run_while_writing(&ws, &mut session, kind, |n| {
            let id = 1 + (n * 37) % 2000;
            let (v, column) = if n.is_multiple_of(2) { (1, "fullname") } else { (2, "full_name") };
            if n.is_multiple_of(5) {
                format!("INSERT INTO {} ({column}) VALUES ('w{n}')", table(v))
            } else {
                format!("UPDATE {} SET {column} = 'w{n}' WHERE id = {id}", table(v))
            }
        })
        .await;
        let differ = match kind {
            Kind::Postgres => "fullname IS DISTINCT FROM full_name",
            Kind::Mysql => "NOT (fullname <=> full_name)",
            Kind::Sqlite => "fullname IS NOT full_name",
        };
        assert_eq!(scalar(&db, &format!("SELECT count(*) FROM people WHERE {differ}")).await, "0", "{kind}");
        let schema = contract_leaves(&ws, &db, kind, "people", &["id", "full_name"]).await;
        let index = |name: &str| {
            schema.indexes.iter().chain(&schema.unique_keys).find(|i| i.name == name).map(|i| i.columns.clone())
        };
        assert_eq!(index("people_name"), Some(vec!["full_name".to_string()]), "{kind}: {schema:?}");
        assert_eq!(index("people_id_name"), Some(vec!["id".to_string(), "full_name".to_string()]), "{kind}");
        assert!(schema.unique_keys.iter().any(|u| u.name == "people_id_name"), "{kind}: still unique");
        assert!(operations(&ws).iter().all(|o| o.ends_with(" completed")), "{kind}: {:?}", operations(&ws));
    }
}

/// Each operation of the change and its stage, as `ferry status --json` shows them.
fn operations(ws: &Workspace) -> Vec<String> {
    let status = ws.run(&["status", "--json"]);
    status.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    json["tables"][0]["operations"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|o| {
            format!(
                "{} {} {}",
                o["kind"].as_str().unwrap(),
                o["subject"].as_str().unwrap(),
                o["stage"].as_str().unwrap()
            )
        })
        .collect()
}

/// MariaDB commits each contract statement by itself: a contract killed
/// between its steps is finished by running it again, and ends with the
/// table contracted and nothing of Ferry's left. A transaction holding the
/// mark table stops contract at the step that drops it, after the steps
/// before it are done and recorded; the kill lands there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_killed_between_steps_on_mariadb_resumes() {
    let db = users(Kind::Mysql, 20_000).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&seed_spec(&db, ""));
    ws.run(&["run"]).assert_code(0);
    let mut blocker = db.session().await;
    blocker.exec("START TRANSACTION").await.unwrap();
    blocker.exec("SELECT count(*) FROM ferry_written_users").await.unwrap();
    let mut child = ws.spawn_quiet(&["contract", "--confirm"]);
    let state = ferry_run::state::StateStore::open(&ws.path().join(".ferry/ferry/state.db")).unwrap();
    let step = || state.meta("contract_step:users").unwrap().and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    ferry_testkit::wait_until("contract steps done before the mark table", Duration::from_secs(30), || step() >= 1);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let done = step();
    assert_eq!(ws.status_json()["state"], "contracting", "killed past the point of no return, before the end");
    let schema = db.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
    assert!(!schema.column("email_verified").unwrap().nullable, "NOT NULL was the first step, done ({done} done)");
    assert!(schema.column("verification_date").is_some(), "the drop is a later step");
    blocker.exec("COMMIT").await.unwrap();

    let again = ws.run(&["contract", "--confirm"]);
    again.assert_code(0);
    let schema = db.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
    assert!(schema.column("verification_date").is_none());
    assert!(!schema.column("email_verified").unwrap().nullable);
    assert_eq!(db.ferry_objects().await, Vec::<String>::new());
    assert_eq!(ws.status_json()["state"], "completed");
    assert!(ws.audit_log().contains("migration-completed"), "{}", ws.audit_log());
}

/// Type changes under writers of both versions — `int` → `bigint`,
/// `varchar` → `text`, and a date kept as a string → `date` with `up` and
/// `down` — on every engine: until contract each old column equals its new
/// one converted back, after it each column has its new type and its own name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn type_changes_keep_both_versions_in_step() {
    for kind in ALL {
        let db = TestDb::new(kind).await;
        let (key, up, down) = match kind {
            Kind::Postgres => ("id serial PRIMARY KEY", "CAST(placed AS date)", "CAST(placed AS varchar(10))"),
            Kind::Mysql => ("id int AUTO_INCREMENT PRIMARY KEY", "CAST(placed AS date)", "CAST(placed AS char(10))"),
            Kind::Sqlite => ("id INTEGER PRIMARY KEY", "date(placed)", "placed"),
        };
        db.exec(&format!("CREATE TABLE orders ({key}, qty int NOT NULL, note varchar(20), placed varchar(10))")).await;
        db.exec("CREATE INDEX orders_placed ON orders (placed)").await;
        let mut session = db.session().await;
        for i in 0..1500 {
            let day = 1 + i % 28;
            session
                .exec(&format!("INSERT INTO orders (qty, note, placed) VALUES ({i}, 'n{i}', '2025-03-{day:02}')"))
                .await
                .unwrap();
        }
        let ws = Workspace::new(FERRY);
        ws.write_spec(&format!(
            "{MIGRATION}[source]\nurl = \"{}\"\n\n[policy]\nbatch_size = 100\nchunk_time = \"0s\"\nbatch_pause = \"10ms\"\n\n\
             [[change]]\ntable = \"orders\"\nalter_type = \"qty\"\ntype = \"bigint\"\n\n\
             [[change]]\ntable = \"orders\"\nalter_type = \"note\"\ntype = \"text\"\n\n\
             [[change]]\ntable = \"orders\"\nalter_type = \"placed\"\ntype = \"date\"\nup = \"{up}\"\ndown = \"{down}\"\n",
            db.url
        ));
        ws.run(&["run", "--until", "expand"]).assert_code(0);
        let table = |v: u8| match kind {
            Kind::Postgres => format!("public_ferry_v{v}.orders"),
            Kind::Mysql => format!("orders_ferry_v{v}"),
            // SQLite's views take no writes: version 2 writes the new columns.
            Kind::Sqlite => "orders".into(),
        };
        run_while_writing(&ws, &mut session, kind, |n| {
            let v = if n.is_multiple_of(2) { 1 } else { 2 };
            // SQLite stores int and bigint alike: only `note` and `placed` change type there.
            let (q, p) = if kind == Kind::Sqlite && v == 2 { ("qty", "placed_new") } else { ("qty", "placed") };
            let id = 1 + (n * 13) % 1500;
            let day = 1 + n % 28;
            if n.is_multiple_of(4) {
                format!("INSERT INTO {} ({q}, note, {p}) VALUES ({n}, 'w', '2025-04-{day:02}')", table(v))
            } else {
                format!("UPDATE {} SET {q} = {n}, {p} = '2025-05-{day:02}' WHERE id = {id}", table(v))
            }
        })
        .await;
        let differ = match kind {
            Kind::Postgres => {
                "qty_new IS DISTINCT FROM qty OR note_new IS DISTINCT FROM note \
                               OR placed_new IS DISTINCT FROM CAST(placed AS date)"
            }
            Kind::Mysql => {
                "NOT (qty_new <=> qty) OR NOT (note_new <=> note) OR NOT (placed_new <=> CAST(placed AS date))"
            }
            Kind::Sqlite => "note_new IS NOT note OR placed_new IS NOT placed",
        };
        assert_eq!(scalar(&db, &format!("SELECT count(*) FROM orders WHERE {differ}")).await, "0", "{kind}");
        let schema = contract_leaves(&ws, &db, kind, "orders", &["id", "qty", "note", "placed"]).await;
        assert_eq!(schema.column("qty").unwrap().data_type, ferry_core::DataType::Int64, "{kind}");
        assert!(!schema.column("qty").unwrap().nullable, "{kind}: qty stays NOT NULL");
        if kind != Kind::Sqlite {
            assert_eq!(schema.column("placed").unwrap().data_type, ferry_core::DataType::Date, "{kind}");
        }
        let placed = schema.indexes.iter().find(|i| i.name == "orders_placed").map(|i| i.columns.clone());
        assert_eq!(placed, Some(vec!["placed".to_string()]), "{kind}: the index follows the retyped column");
        let v2 = if kind == Kind::Postgres { "public_ferry_v2.orders" } else { "orders_ferry_v2" };
        assert_ne!(scalar(&db, &format!("SELECT count(*) FROM {v2} WHERE qty > 0")).await, "0", "{kind}");
    }
}

/// `add_index` builds the index beside the application's writes
/// (`CONCURRENTLY` on PostgreSQL, `ALGORITHM=INPLACE, LOCK=NONE` on MariaDB),
/// valid and usable; rollback removes it, contract keeps it; an index of that
/// name the table had before is refused, not taken for Ferry's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_is_added_beside_the_writers() {
    for kind in ALL {
        let db = users(kind, 20_000).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&format!(
            "{MIGRATION}[source]\nurl = \"{}\"\n\n[[change]]\ntable = \"users\"\nadd_index = \"users_email_idx\"\n\
             columns = [\"email\"]\nunique = true\n",
            db.url
        ));
        let plan = ws.plan_json().to_string();
        let online = match kind {
            Kind::Postgres => "CONCURRENTLY",
            Kind::Mysql => "LOCK=NONE",
            Kind::Sqlite => "CREATE UNIQUE INDEX IF NOT EXISTS",
        };
        assert!(plan.contains(online), "{kind}: the plan shows the online build: {plan}");
        let has_index = || async {
            let schema = db.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
            schema.unique_keys.iter().any(|i| i.name == "users_email_idx" && i.columns == ["email"])
        };
        let mut session = db.session().await;
        let run = ws.run_beside(&["run"]);
        let mut writes = 0;
        while !run.is_finished() {
            writes += 1;
            session
                .exec(&format!("UPDATE users SET email = 'w{writes}@example.com' WHERE id = {writes}"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        run.await.unwrap().assert_code(0);
        assert!(has_index().await, "{kind}: the index is built");
        if kind == Kind::Postgres {
            let valid =
                "SELECT bool_and(indisvalid)::text FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass";
            assert_eq!(scalar(&db, valid).await, "true");
        }
        ws.run(&["rollback"]).assert_code(0);
        assert!(!has_index().await, "{kind}: rollback removes it");
        ws.run(&["run"]).assert_code(0);
        ws.run(&["contract", "--confirm"]).assert_code(0);
        assert!(has_index().await, "{kind}: contract keeps it");
        assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "{kind}");

        // An index of that name the table already has is not Ferry's to build (or to drop).
        let other = users(kind, 10).await;
        other.exec("CREATE INDEX users_email_idx ON users (verification_date)").await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&format!(
            "{MIGRATION}[source]\nurl = \"{}\"\n\n[[change]]\ntable = \"users\"\nadd_index = \"users_email_idx\"\ncolumns = [\"email\"]\n",
            other.url
        ));
        let refused = ws.run(&["run"]);
        assert_ne!(refused.code, Some(0), "{kind}: {refused}");
        assert!(refused.stderr.contains("already has an index named users_email_idx"), "{kind}: {refused}");
        ws.run(&["rollback"]).assert_code(0);
        let schema = other.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
        assert!(schema.indexes.iter().any(|i| i.name == "users_email_idx"), "{kind}: the table's own index stays");
    }
}

/// `add_check` and `add_foreign_key`: rows that break them fail verification
/// and keep contract from adding them (with the query that finds them);
/// PostgreSQL enforces them on new writes from expand (`NOT VALID`) and
/// validates the old rows at contract; rollback removes them; after
/// contract every engine has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_foreign_keys_are_validated_before_contract_adds_them() {
    for kind in ALL {
        let db = TestDb::new(kind).await;
        db.exec("CREATE TABLE owners (id integer PRIMARY KEY, name varchar(20))").await;
        db.exec("CREATE TABLE items (id integer PRIMARY KEY, owner_id integer, qty integer)").await;
        db.exec("INSERT INTO owners VALUES (1, 'a'), (2, 'b')").await;
        db.exec("INSERT INTO items VALUES (1, 1, 5), (2, 2, 7), (3, 9, 1), (4, 1, 0)").await;
        let ws = Workspace::new(FERRY);
        // Refused before anything is done: SQL the database refuses, a check over a column contract drops.
        let drop_qty = "[[change]]\ntable = \"items\"\ndrop_column = \"qty\"\n";
        for (check, also, words) in
            [("qty >", "", "the database refuses the check"), ("qty <> 0", drop_qty, "which contract drops")]
        {
            ws.write_spec(&format!(
                "{MIGRATION}[source]\nurl = \"{}\"\n\n\
                 [[change]]\ntable = \"items\"\nadd_check = \"items_bad\"\ncheck = \"{check}\"\n\n{also}",
                db.url
            ));
            for command in ["plan", "run"] {
                let refused = ws.run(&[command]);
                assert_eq!(refused.code, Some(2), "{kind}: {refused}");
                assert!(refused.stderr.contains(words), "{kind}: {refused}");
            }
            assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "{kind}: nothing was changed");
        }
        ws.write_spec(&format!(
            "{MIGRATION}[source]\nurl = \"{}\"\n\n\
             [[change]]\ntable = \"items\"\nadd_check = \"items_qty_positive\"\ncheck = \"qty > 0\"\n\n\
             [[change]]\ntable = \"items\"\nadd_foreign_key = \"items_owner_fk\"\ncolumns = [\"owner_id\"]\n\
             references = \"owners\"\nreferenced_columns = [\"id\"]\n",
            db.url
        ));
        let run = ws.run(&["run"]);
        assert_ne!(run.code, Some(0), "{kind}: two rows break the constraints: {run}");
        assert!(run.stdout.contains("items_qty_positive") && run.stdout.contains("items_owner_fk"), "{kind}: {run}");
        let refused = ws.run(&["contract", "--confirm"]);
        assert_ne!(refused.code, Some(0), "{kind}: {refused}");
        let constraints = || async {
            let schema = db.engine().await.introspect(&ferry_core::TableName::parse("items")).await.unwrap();
            let mut names: Vec<String> = schema.checks.iter().map(|c| c.name.clone()).collect();
            // SQLite does not keep a foreign key's name: it is known by its columns there.
            names.extend(schema.foreign_keys.iter().map(|f| {
                if f.columns == ["owner_id"] && f.ref_table.name == "owners" {
                    "items_owner_fk".to_string()
                } else {
                    f.name.clone()
                }
            }));
            names.sort();
            names
        };
        if kind == Kind::Postgres {
            // Enforced on new writes from expand, without scanning the old rows.
            assert_eq!(constraints().await, ["items_owner_fk", "items_qty_positive"]);
            let mut session = db.session().await;
            assert!(session.exec("INSERT INTO items VALUES (5, 1, -1)").await.is_err(), "the check holds for new rows");
            ws.run(&["rollback"]).assert_code(0);
            assert_eq!(constraints().await, Vec::<String>::new(), "rollback removes them");
            assert_ne!(ws.run(&["run"]).code, Some(0));
        }
        db.exec("DELETE FROM items WHERE id = 3").await;
        db.exec("UPDATE items SET qty = 1 WHERE id = 4").await;
        ws.run(&["verify"]).assert_code(0);
        let contract = ws.run(&["contract", "--confirm"]);
        contract.assert_code(0);
        assert_eq!(constraints().await, ["items_owner_fk", "items_qty_positive"], "{kind}: {contract}");
        let mut session = db.session().await;
        assert!(session.exec("INSERT INTO items VALUES (6, 1, -1)").await.is_err(), "{kind}: the check holds");
        if kind != Kind::Sqlite {
            // SQLite enforces foreign keys only where the application turns them on.
            assert!(
                session.exec("INSERT INTO items VALUES (7, 99, 1)").await.is_err(),
                "{kind}: the foreign key holds"
            );
        }
        assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "{kind}");
    }
}

/// A split and a merge under writers of both versions, on every engine: the
/// parts and the whole agree on every row until contract, which leaves only
/// the new shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_split_and_a_merge_keep_both_shapes_in_step() {
    for kind in ALL {
        let (first, last, join) = match kind {
            Kind::Postgres => {
                ("split_part(full_name, ' ', 1)", "split_part(full_name, ' ', 2)", "first_name || ' ' || last_name")
            }
            Kind::Mysql => (
                "substring_index(full_name, ' ', 1)",
                "substring_index(full_name, ' ', -1)",
                "concat(first_name, ' ', last_name)",
            ),
            Kind::Sqlite => (
                "substr(full_name, 1, instr(full_name, ' ') - 1)",
                "substr(full_name, instr(full_name, ' ') + 1)",
                "first_name || ' ' || last_name",
            ),
        };
        let differ = match kind {
            Kind::Mysql => format!("NOT (full_name <=> {join})"),
            Kind::Postgres => format!("full_name IS DISTINCT FROM {join}"),
            Kind::Sqlite => format!("full_name IS NOT ({join})"),
        };
        let views = |table: &str, v: u8| match kind {
            Kind::Postgres => format!("public_ferry_v{v}.{table}"),
            Kind::Mysql => format!("{table}_ferry_v{v}"),
            Kind::Sqlite => table.to_string(),
        };
        // The split: full_name -> first_name, last_name.
        let db = TestDb::new(kind).await;
        db.exec("CREATE TABLE people (id integer PRIMARY KEY, full_name varchar(60))").await;
        let mut session = db.session().await;
        for i in 1..=1500 {
            session.exec(&format!("INSERT INTO people VALUES ({i}, 'f{i} l{i}')")).await.unwrap();
        }
        // A name the split cannot give back (`down(up('Cher'))` is not 'Cher').
        session.exec("INSERT INTO people VALUES (5000, 'Cher')").await.unwrap();
        let policy = "[policy]\nbatch_size = 100\nchunk_time = \"0s\"\nbatch_pause = \"10ms\"\n";
        let ws = Workspace::new(FERRY);
        ws.write_spec(&format!(
            "{MIGRATION}[source]\nurl = \"{}\"\n\n{policy}\n[[change]]\ntable = \"people\"\nsplit_column = \"full_name\"\n\
             type = \"varchar(30)\"\ndown = \"{join}\"\n[change.into]\nfirst_name = \"{first}\"\nlast_name = \"{last}\"\n",
            db.url
        ));
        ws.run(&["run", "--until", "expand"]).assert_code(0);
        // Verification fails on that row: the run ends with exit code 1.
        run_while_writing_ends(&ws, &mut session, kind, 1, |n| {
            let id = 1 + (n * 7) % 1500;
            if n.is_multiple_of(2) {
                format!("UPDATE {} SET full_name = 'a{n} b{n}' WHERE id = {id}", views("people", 1))
            } else {
                format!("UPDATE {} SET first_name = 'x{n}' WHERE id = {id}", views("people", 2))
            }
        })
        .await;
        let check = format!("SELECT count(*) FROM people WHERE id < 5000 AND {differ}");
        assert_eq!(scalar(&db, &check).await, "0", "{kind}: split");
        // Neither the backfill nor the triggers rewrote the old value as `down(up(old))`; verify lists
        // the rows (the one above, and one version 1 inserts now), contract refuses.
        session
            .exec(&format!("INSERT INTO {} (id, full_name) VALUES (5001, 'Prince')", views("people", 1)))
            .await
            .unwrap();
        let full_name = "SELECT full_name FROM people WHERE id IN (5000, 5001) ORDER BY id";
        let names = db.engine().await.query_text(full_name).await.unwrap();
        assert_eq!(names, [[Some("Cher".to_string())], [Some("Prince".to_string())]], "{kind}");
        let verify = ws.run(&["verify"]);
        verify.assert_code(1);
        assert!(verify.stdout.contains("id=5000") && verify.stdout.contains("id=5001"), "{kind}: {verify}");
        assert!(verify.stdout.contains("down"), "{kind}: {verify}");
        // Refused by the state: a failed verification leaves the migration short of `verified`.
        ws.run(&["contract", "--confirm"]).assert_code(2);
        let v1 = views("people", 1);
        let two_words = if kind == Kind::Mysql { "concat(full_name, ' X')" } else { "full_name || ' X'" };
        session.exec(&format!("UPDATE {v1} SET full_name = {two_words} WHERE id >= 5000")).await.unwrap();
        ws.run(&["verify"]).assert_code(0);
        ws.run(&["contract", "--confirm"]).assert_code(0);
        let schema = db.engine().await.introspect(&ferry_core::TableName::parse("people")).await.unwrap();
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "first_name", "last_name"], "{kind}");

        // The merge: first_name, last_name -> full_name.
        let db = TestDb::new(kind).await;
        db.exec("CREATE TABLE people (id integer PRIMARY KEY, first_name varchar(30), last_name varchar(30))").await;
        let mut session = db.session().await;
        for i in 1..=1500 {
            session.exec(&format!("INSERT INTO people VALUES ({i}, 'f{i}', 'l{i}')")).await.unwrap();
        }
        let ws = Workspace::new(FERRY);
        ws.write_spec(&format!(
            "{MIGRATION}[source]\nurl = \"{}\"\n\n{policy}\n[[change]]\ntable = \"people\"\n\
             merge_columns = [\"first_name\", \"last_name\"]\nto = \"full_name\"\ntype = \"varchar(60)\"\nup = \"{join}\"\n\
             [change.down]\nfirst_name = \"{first}\"\nlast_name = \"{last}\"\n",
            db.url
        ));
        ws.run(&["run", "--until", "expand"]).assert_code(0);
        run_while_writing(&ws, &mut session, kind, |n| {
            let id = 1 + (n * 7) % 1500;
            if n.is_multiple_of(2) {
                format!("UPDATE {} SET last_name = 'z{n}' WHERE id = {id}", views("people", 1))
            } else {
                format!("UPDATE {} SET full_name = 'c{n} d{n}' WHERE id = {id}", views("people", 2))
            }
        })
        .await;
        assert_eq!(scalar(&db, &format!("SELECT count(*) FROM people WHERE {differ}")).await, "0", "{kind}: merge");
        contract_leaves(&ws, &db, kind, "people", &["id", "full_name"]).await;
    }
}

/// PostgreSQL and SQLite run contract as one transaction: killed while it
/// waits for a lock (a transaction holds the table), nothing of it is done;
/// past the point of no return, running it again finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_killed_in_its_transaction_is_finished_by_the_next() {
    for kind in [Kind::Postgres, Kind::Sqlite] {
        let db = users(kind, 5_000).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&seed_spec(&db, ""));
        ws.run(&["run"]).assert_code(0);
        let mut blocker = db.session().await;
        match kind {
            Kind::Postgres => {
                blocker.exec("BEGIN").await.unwrap();
                blocker.exec("LOCK TABLE ferry_written_users IN ACCESS SHARE MODE").await.unwrap();
            }
            _ => blocker.exec("BEGIN IMMEDIATE").await.map(|_| ()).unwrap(),
        }
        let mut child = ws.spawn_quiet(&["contract", "--confirm"]);
        ferry_testkit::wait_until("contract started", Duration::from_secs(30), || {
            ws.status_json()["state"] == "contracting"
        });
        std::thread::sleep(Duration::from_millis(500));
        child.kill().unwrap();
        child.wait().unwrap();
        blocker.exec("COMMIT").await.unwrap();
        let schema = db.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
        assert!(schema.column("verification_date").is_some(), "{kind}: the transaction did not commit");
        assert_eq!(ws.status_json()["state"], "contracting", "{kind}");

        ws.run(&["contract", "--confirm"]).assert_code(0);
        let schema = db.engine().await.introspect(&ferry_core::TableName::parse("users")).await.unwrap();
        assert!(schema.column("verification_date").is_none(), "{kind}");
        assert!(!schema.column("email_verified").unwrap().nullable, "{kind}");
        assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "{kind}");
    }
}

/// A spec that changes one table in place and moves another is refused before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_that_both_moves_and_changes_in_place_is_refused() {
    let db = users(Kind::Sqlite, 10).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&ferry_testkit::spec_in_place(
        &db,
        "[[table]]\nfrom = \"users\"\nexclude = [\"verification_date\"]\n\n[[table]]\nfrom = \"users\"\nto = \"users_copy\"\n",
    ));
    let ran = ws.run(&["run"]);
    assert_ne!(ran.code, Some(0), "{ran}");
    assert!(ran.stderr.contains("changed in place while other tables move"), "{ran}");
    assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "nothing ran");
}

/// SQLite's contract rebuilds the table for NOT NULL: an AUTOINCREMENT key
/// keeps its sequence (rows deleted at the end of the key range never give
/// their keys out again), also when the table is empty.
#[tokio::test]
async fn sqlite_s_rebuild_keeps_the_autoincrement_sequence() {
    for rows_kept in [3, 0] {
        let db = TestDb::new(Kind::Sqlite).await;
        db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, verification_date text)").await;
        for _ in 0..6 {
            db.exec("INSERT INTO users (verification_date) VALUES (NULL)").await;
        }
        db.exec(&format!("DELETE FROM users WHERE id > {rows_kept}")).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(
            &seed_spec(&db, "").replace("\n[[change]]\ntable = \"users\"\ndrop_column = \"verification_date\"\n", "\n"),
        );
        ws.run(&["run"]).assert_code(0);
        ws.run(&["contract", "--confirm"]).assert_code(0);
        db.exec("INSERT INTO users (verification_date, email_verified) VALUES ('x', 1)").await;
        assert_eq!(scalar(&db, "SELECT max(id) FROM users").await, "7", "{rows_kept} rows kept");
    }
}

/// An index created on a renamed column after expand was not copied: contract
/// refuses naming it, and leaves it, rather than taking it for a carried one.
#[tokio::test]
async fn an_index_made_after_expand_on_an_old_column_stops_contract() {
    let db = TestDb::new(Kind::Postgres).await;
    db.exec("CREATE TABLE people (id integer PRIMARY KEY, fullname varchar(100))").await;
    db.exec("INSERT INTO people VALUES (1, 'a'), (2, 'b')").await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&format!(
        "{MIGRATION}[source]\nurl = \"{}\"\n\n[[change]]\ntable = \"people\"\nrename_column = \"fullname\"\nto = \"full_name\"\n",
        db.url
    ));
    ws.run(&["run"]).assert_code(0);
    db.exec("CREATE INDEX people_late ON people (fullname)").await;
    let refused = ws.run(&["contract", "--confirm"]);
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(refused.stderr.contains("people_late"), "{refused}");
    let schema = db.engine().await.introspect(&ferry_core::TableName::parse("people")).await.unwrap();
    assert!(schema.indexes.iter().any(|i| i.name == "people_late"), "{schema:?}");
}
