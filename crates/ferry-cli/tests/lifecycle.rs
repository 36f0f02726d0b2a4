//! The lifecycle state machine through the real binary: commands the state
//! does not allow are refused with what is allowed; a capture install that
//! failed is tried again; rollback undoes tables in dependency order,
//! records its real result, and resumes after a failure.

use ferry_testkit::{engine_matrix, spec, Kind, TestDb, Workspace};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

const AUTHORS_BOOKS: &str = "CREATE TABLE authors (id integer PRIMARY KEY, name varchar(50) NOT NULL);
     CREATE TABLE books (id integer PRIMARY KEY, author_id integer NOT NULL REFERENCES authors (id), title varchar(80));
     INSERT INTO authors VALUES (1, 'Ann'), (2, 'Bob');
     INSERT INTO books VALUES (10, 1, 'First'), (11, 1, 'Second'), (12, 2, 'Third');";

/// Parent first in the spec: rollback must still drop the child first.
const PARENT_FIRST: &str = "[[table]]\nfrom = \"authors\"\n\n[[table]]\nfrom = \"books\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_the_state_does_not_allow_are_refused() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec(AUTHORS_BOOKS).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, PARENT_FIRST));

    let status = ws.status_json();
    assert_eq!(status["state"], "planned", "{status:#}");
    assert_eq!(status["legal_commands"], serde_json::json!(["run", "rollback"]));
    for command in ["verify", "sync"] {
        let ran = ws.run(&[command]);
        ran.assert_code(2);
        assert!(
            ran.stderr.contains(&format!("`ferry {command}` is not possible now: the migration is planned")),
            "{ran}"
        );
        assert!(ran.stderr.contains("legal now: `ferry run` (start the migration)"), "{ran}");
    }

    ws.run(&["run", "--until", "expand"]).assert_code(0);
    assert_eq!(ws.status_json()["state"], "backfilling");
    let ran = ws.run(&["verify"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("the backfill is not complete"), "{ran}");

    ws.run(&["run"]).assert_code(0);
    let status = ws.status_json();
    assert_eq!(status["state"], "verified", "{status:#}");
    assert_eq!(
        status["legal_commands"],
        serde_json::json!(["run", "sync", "verify", "cutover", "switch", "contract", "rollback"])
    );
    assert!(status["tables"].as_array().unwrap().iter().all(|t| t["stage"] == "constrained"), "{status:#}");
    ws.run(&["verify"]).assert_code(0);
}

async fn rollback_drops_children_first(source: Kind, target: Kind) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    src.exec(AUTHORS_BOOKS).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, PARENT_FIRST));
    ws.run(&["run"]).assert_code(0);
    let ran = ws.run(&["rollback"]);
    ran.assert_code(0);
    let engine = dst.engine().await;
    for table in ["authors", "books"] {
        assert!(!engine.table_exists(&ferry_core::TableName::parse(table)).await.unwrap(), "{table} left\n{ran}");
    }
    assert!(src.ferry_objects().await.is_empty(), "capture left on the source");
    assert_eq!(ws.status_json()["state"], "rolled_back");
    let audit = ws.audit_log();
    assert!(audit.contains("rollback-executed: trigger=manual, phase=4, result=success"), "{audit}");
    // And it starts over.
    ws.run(&["run"]).assert_code(0);
    assert_eq!(dst.count("books").await, 3);
}

engine_matrix!(rollback_drops_children_first);

/// A rollback that fails says so in the audit log, keeps the migration in
/// `rolling_back` (only `ferry rollback` is legal), and finishes when run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollback_is_recorded_and_resumes() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(AUTHORS_BOOKS).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, PARENT_FIRST));
    ws.run(&["run"]).assert_code(0);
    // Something of the application's now depends on the copy: the drop must fail.
    dst.exec("CREATE TABLE reviews (id integer PRIMARY KEY, book_id integer REFERENCES books (id))").await;
    let ran = ws.run(&["rollback"]);
    ran.assert_code(2);
    assert!(
        ws.audit_log().contains("rollback-executed: trigger=manual, phase=4, result=failure"),
        "{}",
        ws.audit_log()
    );
    let status = ws.status_json();
    assert_eq!(status["state"], "rolling_back", "{status:#}");
    assert_eq!(status["legal_commands"], serde_json::json!(["rollback"]));
    let refused = ws.run(&["run"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("legal now: `ferry rollback` (finish the rollback)"), "{refused}");
    // Capture was removed before the failing drop, and stays removed.
    assert!(src.ferry_objects().await.is_empty());

    dst.exec("DROP TABLE reviews").await;
    ws.run(&["rollback"]).assert_code(0);
    assert_eq!(ws.status_json()["state"], "rolled_back");
    assert!(ws.audit_log().contains("result=success"));
}

/// Capture that could not be installed (the table stayed locked through
/// every retry) is installed by the next run, not taken as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_capture_install_is_retried() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec(AUTHORS_BOOKS).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"authors\"\n"));
    let mut blocker = src.session().await;
    blocker.exec("BEGIN").await.unwrap();
    // What an open write transaction holds: reads go on, CREATE TRIGGER waits.
    blocker.exec("LOCK TABLE authors IN ROW EXCLUSIVE MODE").await.unwrap();
    let ran = tokio::task::spawn_blocking({
        let dir = ws.path().to_path_buf();
        move || std::process::Command::new(FERRY).arg("run").current_dir(dir).env_remove("FERRY_SPEC").output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(ran.status.code(), Some(2), "{}", String::from_utf8_lossy(&ran.stderr));
    let status = ws.status_json();
    assert_eq!(status["tables"][0]["stage"], "capture_installing", "{status:#}");
    blocker.exec("ROLLBACK").await.unwrap();

    ws.run(&["run"]).assert_code(0);
    assert!(!src.ferry_objects().await.is_empty(), "capture was not installed by the second run");
    src.exec("INSERT INTO authors VALUES (3, 'Cy')").await;
    ws.run(&["sync"]).assert_code(0);
    assert_eq!(dst.count("authors").await, 3, "the write after the run reached the target");
}

/// Phases say who started them; `ferry audit verify` recomputes the hash
/// chain and notices an entry changed behind Ferry's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_names_the_operator_and_proves_itself() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec(AUTHORS_BOOKS).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, PARENT_FIRST));
    ws.run(&["run", "--operator", "alice@example.com"]).assert_code(0);
    let audit = ws.audit_log();
    assert!(audit.contains("phase-started: phase=1 \"expand\" — started by alice@example.com"), "{audit}");
    let ran = ws.run(&["audit", "verify"]);
    ran.assert_code(0);
    assert!(ran.stdout.contains("audit log intact"), "{ran}");
    let store = ferry_testkit::rusqlite::Connection::open(ws.path().join(".ferry/ferry/state.db")).unwrap();
    store
        .execute("UPDATE audit SET data = replace(data, 'alice', 'mallory') WHERE event = 'phase-started'", [])
        .unwrap();
    let ran = ws.run(&["audit", "verify"]);
    ran.assert_code(1);
    assert!(ran.stdout.contains("audit log BROKEN: audit log entry"), "{ran}");
}

/// Each step, started and then aborted by a rollback, leaves nothing of
/// Ferry's on either side: after expand, after the backfill, verified, and
/// switched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_aborts_without_a_trace() {
    for (source, target) in [(Kind::Postgres, Kind::Mysql), (Kind::Sqlite, Kind::Sqlite), (Kind::Mysql, Kind::Postgres)]
    {
        for steps in [
            &[&["run", "--until", "expand"][..]][..],
            &[&["run", "--until", "backfill"]],
            &[&["run"]],
            &[&["run"], &["switch"]],
        ] {
            let src = TestDb::new(source).await;
            let dst = TestDb::new(target).await;
            src.exec(AUTHORS_BOOKS).await;
            let ws = Workspace::new(FERRY);
            ws.write_spec(&spec(&src, &dst, PARENT_FIRST));
            for args in steps {
                ws.run(args).assert_code(0);
            }
            ws.run(&["rollback"]).assert_code(0);
            let after = format!("{source} -> {target} after {steps:?}");
            assert!(src.ferry_objects().await.is_empty(), "{after}: {:?} on the source", src.ferry_objects().await);
            assert!(dst.ferry_objects().await.is_empty(), "{after}: {:?} on the target", dst.ferry_objects().await);
            let engine = dst.engine().await;
            for table in ["authors", "books"] {
                assert!(!engine.table_exists(&ferry_core::TableName::parse(table)).await.unwrap(), "{after}: {table}");
            }
            assert_eq!(src.count("books").await, 3, "{after}: the source is untouched");
        }
    }
}
