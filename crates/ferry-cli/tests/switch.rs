//! `ferry switch` and the rollback after it, on every engine pair, under an
//! application that keeps writing: the writer moves to the target when the
//! switch's hook tells it, and back when the rollback's hook does. Every
//! write the target acknowledged is on the source after the rollback.

use ferry_testkit::{engine_matrix, spec, Kind, Session, TestDb, Workspace};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const HOOK: &str = "[switch]\nhook = \"printf %s \\\"$FERRY_WRITES_TO\\\" > writes_to\"\n\n";

/// Writes until told to stop, always to the side the hook last named;
/// returns the value each id was last acknowledged with.
async fn writer(
    mut source: Session,
    mut target: Session,
    routing: PathBuf,
    stop: Arc<AtomicBool>,
) -> (BTreeMap<i64, i64>, usize, usize) {
    let mut acknowledged = BTreeMap::new();
    let (mut on_target, mut refused) = (0, 0);
    let mut op: i64 = 0;
    while !stop.load(Ordering::SeqCst) {
        op += 1;
        // New rows, and updates of rows written before (some from the backfill).
        let (id, sql) = if op % 3 == 0 {
            let id = 1 + (op * 7) % 60;
            (id, format!("UPDATE items SET n = {op} WHERE id = {id}"))
        } else {
            let id = 1000 + op;
            (id, format!("INSERT INTO items (id, n) VALUES ({id}, {op})"))
        };
        loop {
            let to_target = std::fs::read_to_string(&routing).is_ok_and(|s| s == "target");
            let session = if to_target { &mut target } else { &mut source };
            match session.exec(&sql).await {
                Ok(_) => {
                    acknowledged.insert(id, op);
                    on_target += to_target as usize;
                    break;
                }
                Err(e) if e.contains("Ferry fenced writes") => {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("the writer failed: {e}\n{sql}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (acknowledged, on_target, refused)
}

async fn switch_then_roll_back_loses_nothing(source: Kind, target: Kind) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    let rows: Vec<String> = (1..=60).map(|i| format!("({i}, {i})")).collect();
    src.exec(&format!(
        "CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO items (id, n) VALUES {};",
        rows.join(", ")
    ))
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, &format!("{HOOK}[[table]]\nfrom = \"items\"\n")));
    ws.run(&["run"]).assert_code(0);

    let stop = Arc::new(AtomicBool::new(false));
    let app = tokio::spawn(writer(src.session().await, dst.session().await, ws.path().join("writes_to"), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let switched = tokio::task::spawn_blocking({
        let ws_dir = ws.path().to_path_buf();
        move || std::process::Command::new(FERRY).arg("switch").current_dir(ws_dir).output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        switched.status.code(),
        Some(0),
        "{source} -> {target}: {}{}",
        String::from_utf8_lossy(&switched.stdout),
        String::from_utf8_lossy(&switched.stderr)
    );
    let status = ws.status_json();
    assert_eq!(status["state"], "switched", "{status:#}");
    assert_eq!(status["routing"]["writes"], "target");
    assert!(status["switch"]["write_unavailability_ms"].as_u64().is_some(), "{status:#}");
    // The application writes the target for a while, then the migration is rolled back under it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let rolled_back = tokio::task::spawn_blocking({
        let ws_dir = ws.path().to_path_buf();
        move || std::process::Command::new(FERRY).arg("rollback").current_dir(ws_dir).output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        rolled_back.status.code(),
        Some(0),
        "{source} -> {target}: {}{}",
        String::from_utf8_lossy(&rolled_back.stdout),
        String::from_utf8_lossy(&rolled_back.stderr)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let (acknowledged, on_target, _refused) = app.await.unwrap();
    assert!(on_target > 10, "{source} -> {target}: the writer wrote the target only {on_target} times");

    // Independently of Ferry: the source holds every acknowledged write.
    let mut expected: BTreeMap<i64, i64> = (1..=60).map(|i| (i, i)).collect();
    expected.extend(acknowledged);
    let found =
        src.rows("items", &["id"], &["id", "n"], &[ferry_core::DataType::Int64, ferry_core::DataType::Int64]).await;
    let found: BTreeMap<i64, i64> = found
        .into_iter()
        .map(|r| match (&r[0], &r[1]) {
            (ferry_core::Value::Int(id), ferry_core::Value::Int(n)) => (*id, *n),
            other => panic!("{other:?}"),
        })
        .collect();
    let lost: Vec<_> = expected.iter().filter(|(id, n)| found.get(id) != Some(n)).collect();
    assert!(
        lost.is_empty(),
        "{source} -> {target}: {} acknowledged writes are not on the source: {lost:?}",
        lost.len()
    );
    assert_eq!(found.len(), expected.len(), "{source} -> {target}: rows that were never written");
    assert!(
        src.ferry_objects().await.is_empty(),
        "{source} -> {target}: {:?} left on the source",
        src.ferry_objects().await
    );
    assert_eq!(ws.status_json()["state"], "rolled_back");
}

engine_matrix!(switch_then_roll_back_loses_nothing);

/// Refused, with what to do: a switch before verification, and a lossless
/// switch whose mapping cannot be inverted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_gates() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, secret TEXT); INSERT INTO items VALUES (1, 1, 'x');")
        .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"items\"\nexclude = [\"secret\"]\n"));
    let ran = ws.run(&["switch"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("the target must be verified first"), "{ran}");
    ws.run(&["run"]).assert_code(0);
    let ran = ws.run(&["switch"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("cannot be inverted: `items.secret` is not copied"), "{ran}");
    assert!(ran.stderr.contains("loss-accepted-after-switch"), "{ran}");
    assert_eq!(ws.status_json()["state"], "verified", "a refused switch changes nothing");
    assert!(src.ferry_objects().await.iter().all(|o| !o.contains("fence")), "no fence left");
}

/// run -> switch -> soak (1s) -> contract: the source is archived as
/// configured, both sides hold no `ferry_` object, and nothing can be
/// rolled back any more.
async fn contract_after_the_soak(source: Kind, target: Kind) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    src.exec(
        "CREATE TABLE authors (id integer PRIMARY KEY, name varchar(40) NOT NULL);
         CREATE TABLE books (id integer PRIMARY KEY, author_id integer REFERENCES authors (id), title varchar(40));
         INSERT INTO authors VALUES (1, 'Ann'), (2, 'Bob'); INSERT INTO books VALUES (10, 1, 'x'), (11, 2, 'y');",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[soak]\nduration = \"1s\"\n\n[[table]]\nfrom = \"books\"\n"));
    ws.run(&["run"]).assert_code(0);
    ws.run(&["switch"]).assert_code(0);
    let mut app = dst.session().await;
    app.exec("INSERT INTO books (id, author_id, title) VALUES (12, 1, 'z')").await.unwrap();
    let refused = ws.run(&["contract"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("point of no return"), "{refused}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ran = ws.run(&["contract", "--confirm"]);
    ran.assert_code(0);
    assert!(ran.stdout.contains("restored into a scratch database and matched the source"), "{ran}");

    let engine = src.engine().await;
    assert!(
        !engine.table_exists(&ferry_core::TableName::parse("books")).await.unwrap(),
        "{source}: books was not archived"
    );
    let archive = format!("books_ferry_archive_{}", chrono_date());
    assert_eq!(src.count(&archive).await, 3, "{source}: the archive holds the rows, the reverse-synced one included");
    assert_eq!(dst.count("books").await, 3);
    assert!(
        src.ferry_objects().await.is_empty(),
        "{source} -> {target}: {:?} left on the source",
        src.ferry_objects().await
    );
    assert!(
        dst.ferry_objects().await.is_empty(),
        "{source} -> {target}: {:?} left on the target",
        dst.ferry_objects().await
    );
    assert_eq!(ws.status_json()["state"], "completed");
    let audit = ws.audit_log();
    assert!(audit.contains("backup-checked: ") && audit.contains("result=success"), "{audit}");
    assert!(audit.contains("migration-completed: total_duration="), "{audit}");
    let ran = ws.run(&["rollback"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("point of no return"), "{ran}");
}

engine_matrix!(contract_after_the_soak);

fn chrono_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y%m%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap()
}

/// Contract is refused, naming the unmet gate: before the switch (without
/// --keep-source), before the soak, after a failed verification, and with a
/// backup that does not restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_gates() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO items VALUES (1, 1), (2, 2);",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[soak]\nduration = \"1h\"\n\n[[table]]\nfrom = \"items\"\n"));
    ws.run(&["run"]).assert_code(0);
    let ran = ws.run(&["contract", "--confirm"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("writes have not switched"), "{ran}");
    ws.run(&["switch"]).assert_code(0);
    let status = ws.run(&["status"]);
    for line in
        ["state   switched (legal now: ", "writes  go to the target", "writes unavailable for ", "watching reverse lag"]
    {
        assert!(status.stdout.contains(line), "`{line}` missing: {status}");
    }
    let ran = ws.run(&["contract", "--confirm"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("the soak ends at"), "{ran}");

    // A write on the target that capture does not see: the copies differ.
    dst.exec("SET session_replication_role = replica; UPDATE items SET n = 99 WHERE id = 1;").await;
    let ran = ws.run(&["contract", "--confirm", "--skip-soak", "the test says so"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("the final verification failed"), "{ran}");
    dst.exec("SET session_replication_role = replica; UPDATE items SET n = 1 WHERE id = 1;").await;

    let corrupt = ws.path().join("corrupt-backup.db");
    std::fs::write(&corrupt, b"this is not a SQLite database, whatever its name says").unwrap();
    let ran =
        ws.run(&["contract", "--confirm", "--skip-soak", "the test says so", "--backup", corrupt.to_str().unwrap()]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("did not pass its restore check"), "{ran}");
    assert_eq!(ws.status_json()["state"], "switched", "a refused contract changes nothing");
    assert!(ws.audit_log().contains("result=failure"), "{}", ws.audit_log());

    let ran = ws.run(&["contract", "--confirm", "--skip-soak", "the test says so"]);
    ran.assert_code(0);
    assert!(ws.audit_log().contains("soak-skipped: reason=the test says so"), "{}", ws.audit_log());
    assert!(src.ferry_objects().await.is_empty() && dst.ferry_objects().await.is_empty());
}

/// A one-off copy that never switches ends with both tables kept and no Ferry object left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_keep_source_ends_a_one_off_copy() {
    for (source, target) in [(Kind::Postgres, Kind::Mysql), (Kind::Mysql, Kind::Sqlite), (Kind::Sqlite, Kind::Postgres)]
    {
        let src = TestDb::new(source).await;
        let dst = TestDb::new(target).await;
        src.exec("CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO items VALUES (1, 1);")
            .await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"items\"\n"));
        ws.run(&["run"]).assert_code(0);
        assert!(!src.ferry_objects().await.is_empty(), "capture is installed after the run");
        ws.run(&["contract", "--confirm", "--keep-source"]).assert_code(0);
        assert!(src.ferry_objects().await.is_empty(), "{source}: {:?}", src.ferry_objects().await);
        assert!(dst.ferry_objects().await.is_empty());
        assert_eq!(src.count("items").await, 1);
        assert_eq!(dst.count("items").await, 1);
        assert_eq!(ws.status_json()["state"], "completed");
    }
}

/// The switch compares the rows changed since the last verification. One
/// made different on the target behind Ferry's back is copied again before
/// writes move; one the target keeps changing (a trigger of its own) aborts
/// the switch: the fence is lifted and writes stay on the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_compares_the_rows_changed_since_verify() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec("CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO items VALUES (1, 1), (2, 2), (3, 3);")
        .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"items\"\n"));
    ws.run(&["run"]).assert_code(0);

    // Changed and replayed after the verification, then made different on the target.
    src.exec("UPDATE items SET n = 20 WHERE id = 2; UPDATE items SET n = 30 WHERE id = 3;").await;
    ws.run(&["sync"]).assert_code(0);
    dst.exec("UPDATE items SET n = 77 WHERE id = 2;").await;
    // The target bumps every write to row 3: no copy can make it equal.
    dst.exec(
        "CREATE FUNCTION bump() RETURNS trigger AS $$ BEGIN IF NEW.id = 3 THEN NEW.n := NEW.n + 1000; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER bump BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION bump();
         UPDATE items SET n = 30 WHERE id = 3;",
    )
    .await;
    let ran = ws.run(&["switch"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("the switch is aborted") && ran.stderr.contains("key id=3"), "{ran}");
    assert!(!ran.stderr.contains("key id=2"), "row 2 was copied again and matched: {ran}");
    assert_eq!(ws.status_json()["state"], "verified", "{}", ws.audit_log());
    assert!(src.ferry_objects().await.iter().all(|o| !o.contains("fence")), "{:?}", src.ferry_objects().await);
    let mut app = src.session().await;
    app.exec("UPDATE items SET n = 4 WHERE id = 1").await.expect("the source takes writes again");
    let audit = ws.audit_log();
    assert!(
        audit.contains("changed-keys-checked: phase=6, direction=forward, compared=2, recopied=2, different=1"),
        "{audit}"
    );

    // Without the trigger the same switch goes through, comparing what changed since.
    dst.exec("DROP TRIGGER bump ON items; UPDATE items SET n = 30 WHERE id = 3;").await;
    ws.run(&["switch"]).assert_code(0);
    let int = ferry_core::DataType::Int64;
    let rows = dst.rows("items", &["id"], &["id", "n"], &[int.clone(), int]).await;
    assert_eq!(rows[1], vec![ferry_core::Value::Int(2), ferry_core::Value::Int(20)], "row 2 was copied again");
    let audit = ws.audit_log();
    // Row 1, written on the source after the abort, is among them.
    assert!(audit.contains("direction=forward, compared=3, recopied=0, different=0"), "{audit}");
}

/// During the soak, `ferry sync --follow` compares the rows reverse sync
/// wrote into the source; one that differs is a rollback trigger, and with
/// `on_trigger = "rollback"` the migration rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_difference_during_the_soak_triggers_a_rollback() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec(
        "CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO items VALUES (1, 1), (2, 2);",
    )
    .await;
    let ws = Workspace::new(FERRY);
    let soak = "[soak]\ncheck_every = \"1s\"\non_trigger = \"rollback\"\n\n[[table]]\nfrom = \"items\"\n";
    ws.write_spec(&spec(&src, &dst, soak));
    ws.run(&["run"]).assert_code(0);
    ws.run(&["switch"]).assert_code(0);
    let mut app = dst.session().await;
    app.exec("UPDATE items SET n = 50 WHERE id = 1").await.unwrap();
    ws.run(&["sync"]).assert_code(0);
    // Behind reverse sync's back, past the fence.
    src.exec("SET ferry.bypass_fence = 'on'; UPDATE items SET n = 51 WHERE id = 1;").await;

    let mut follow = ws.spawn_quiet(&["sync", "--follow"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while follow.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the difference was not found:\n{}", ws.audit_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let audit = ws.audit_log();
    let line = audit.lines().find(|l| l.contains("rollback-triggered: ")).unwrap_or_else(|| panic!("{audit}"));
    assert!(line.contains("1 row(s) differ between target and source") && line.contains("action=rollback"), "{line}");
    assert_eq!(ws.status_json()["state"], "rolled_back", "{audit}");
}

/// A contract that stops after archiving some source tables finishes when
/// run again: the tables already archived are planned by name alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_resumes_after_archiving_part_of_the_source() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec(
        "CREATE TABLE a (id integer PRIMARY KEY); CREATE TABLE b (id integer PRIMARY KEY);
         INSERT INTO a VALUES (1); INSERT INTO b VALUES (1);",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(
        &src,
        &dst,
        "[soak]\nduration = \"0s\"\n\n[[table]]\nfrom = \"a\"\n\n[[table]]\nfrom = \"b\"\n",
    ));
    ws.run(&["run"]).assert_code(0);
    ws.run(&["switch"]).assert_code(0);
    // The archive name of `b` is taken: contract archives `a`, then stops.
    let blocker = format!("b_ferry_archive_{}", chrono_date());
    src.exec(&format!("CREATE TABLE {blocker} (x integer);")).await;
    let ran = ws.run(&["contract", "--confirm"]);
    assert_ne!(ran.code, Some(0), "{ran}");
    assert_eq!(ws.status_json()["state"], "contracting", "{ran}");
    assert!(ws.audit_log().contains("table-archived: table=a"), "{}", ws.audit_log());

    src.exec(&format!("DROP TABLE {blocker};")).await;
    let ran = ws.run(&["contract", "--confirm"]);
    ran.assert_code(0);
    assert_eq!(ws.status_json()["state"], "completed");
    assert_eq!(src.count(&format!("a_ferry_archive_{}", chrono_date())).await, 1);
    assert_eq!(src.count(&format!("b_ferry_archive_{}", chrono_date())).await, 1);
    assert!(src.ferry_objects().await.is_empty(), "{:?}", src.ferry_objects().await);
}

/// `ferry rollback --keep-target` after a switch: writes move back without
/// loss, the target keeps its rows, and neither side keeps a Ferry object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_can_keep_the_target() {
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO items VALUES (1, 1), (2, 2);",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"items\"\n"));
    ws.run(&["run"]).assert_code(0);
    ws.run(&["switch"]).assert_code(0);
    let mut app = dst.session().await;
    app.exec("INSERT INTO items (id, n) VALUES (3, 3)").await.unwrap();
    let ran = ws.run(&["rollback", "--keep-target"]);
    ran.assert_code(0);
    assert!(ran.stdout.contains("kept items as it is (--keep-target)"), "{ran}");
    assert_eq!(dst.count("items").await, 3);
    assert_eq!(src.count("items").await, 3, "the target's write is on the source");
    assert!(src.ferry_objects().await.is_empty(), "{:?}", src.ferry_objects().await);
    assert!(dst.ferry_objects().await.is_empty(), "{:?}", dst.ferry_objects().await);
    assert_eq!(ws.status_json()["state"], "rolled_back");
    // The kept copy holds rows: the next run reuses it once the spec says so.
    ws.run(&["run"]).assert_code(2);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"items\"\nexisting_rows = \"merge\"\n"));
    ws.run(&["run"]).assert_code(0);
}

/// With capture from the server's log, the whole lifecycle ends with the
/// slot and publication (PostgreSQL) or the binlog position (MariaDB) gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_removes_log_based_capture() {
    let logical = ferry_testkit::LogicalPostgres::start();
    let binlog = ferry_testkit::PrivateMariadb::start(7);
    for (kind, server, method) in
        [(Kind::Postgres, logical.server(), "logical"), (Kind::Mysql, binlog.server(), "binlog")]
    {
        let src = TestDb::on(kind, &server).await;
        let dst = TestDb::new(Kind::Sqlite).await;
        src.exec("CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO items VALUES (1, 1);")
            .await;
        let ws = Workspace::new(FERRY);
        let text = spec(&src, &dst, "[soak]\nduration = \"0s\"\n\n[[table]]\nfrom = \"items\"\n").replacen(
            "\n\n[target]",
            &format!("\ncapture = \"{method}\"\n\n[target]"),
            1,
        );
        ws.write_spec(&text);
        ws.run(&["run"]).assert_code(0);
        src.exec("INSERT INTO items VALUES (2, 2);").await;
        ws.run(&["sync"]).assert_code(0);
        assert!(!src.ferry_objects().await.is_empty(), "{method}: capture is installed");
        ws.run(&["switch"]).assert_code(0);
        let mut app = dst.session().await;
        app.exec("INSERT INTO items (id, n) VALUES (3, 3)").await.unwrap();
        ws.run(&["contract", "--confirm"]).assert_code(0);
        assert_eq!(src.ferry_objects().await, Vec::<String>::new(), "{method}");
        assert_eq!(dst.ferry_objects().await, Vec::<String>::new(), "{method}");
        let archive = format!("items_ferry_archive_{}", chrono_date());
        assert_eq!(src.count(&archive).await, 3, "{method}: the archive holds every row");
    }
}

/// A rollback after the switch that stops after dropping some target
/// tables (here: an application table came to reference one of them)
/// finishes when run again, though the tables it dropped are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_resumes_after_dropping_part_of_the_target() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec("CREATE TABLE a (id integer PRIMARY KEY); CREATE TABLE b (id integer PRIMARY KEY); INSERT INTO a VALUES (1); INSERT INTO b VALUES (1);")
        .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"a\"\n\n[[table]]\nfrom = \"b\"\n"));
    ws.run(&["run"]).assert_code(0);
    ws.run(&["switch"]).assert_code(0);
    dst.exec("CREATE TABLE blocker (b_id integer REFERENCES b (id));").await;
    let ran = ws.run(&["rollback"]);
    ran.assert_code(2);
    assert_eq!(ws.status_json()["state"], "rolling_back", "{ran}");
    let engine = dst.engine().await;
    assert!(!engine.table_exists(&ferry_core::TableName::parse("a")).await.unwrap(), "a was dropped first: {ran}");
    dst.exec("DROP TABLE blocker;").await;
    ws.run(&["rollback"]).assert_code(0);
    assert_eq!(ws.status_json()["state"], "rolled_back");
    assert!(src.ferry_objects().await.is_empty() && dst.ferry_objects().await.is_empty());
}
