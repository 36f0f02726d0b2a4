//! Live migrations: the application keeps writing (inserts, updates, key
//! changes, deletes) while Ferry copies and replays, the runner is killed,
//! and in the end an independent comparison finds nothing missing.

use ferry_core::{DataType, Row};
use ferry_testkit::{engine_matrix, spec, Kind, Session, TestDb, Workspace};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const ROWS: i64 = 6_000;
const WRITERS: u64 = 3;

async fn fill(db: &TestDb) {
    let ts = if db.kind == Kind::Mysql { "datetime(6)" } else { "timestamp" };
    db.exec(&format!(
        "CREATE TABLE items (id bigint PRIMARY KEY, name varchar(100) NOT NULL, qty integer, updated {ts})"
    ))
    .await;
    if db.kind == Kind::Sqlite {
        // Writers and Ferry share the file: WAL lets readers and one writer go on together.
        db.exec("PRAGMA journal_mode = WAL").await;
    }
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(2000) {
        let values: Vec<String> =
            chunk.iter().map(|i| format!("({i}, 'item {i}', {}, '2026-01-01 00:00:00')", i % 50)).collect();
        db.exec(&format!("INSERT INTO items (id, name, qty, updated) VALUES {}", values.join(", "))).await;
    }
}

/// One writer: a random mix of inserts, updates, key changes and deletes,
/// each its own transaction, until told to stop.
async fn write(mut session: Session, kind: Kind, writer: u64, stop: Arc<AtomicBool>, ops: Arc<AtomicU64>) {
    let mut next_id = 1_000_000 * (writer as i64 + 1);
    let now = if kind == Kind::Sqlite { "strftime('%Y-%m-%d %H:%M:%f', 'now')" } else { "CURRENT_TIMESTAMP" };
    while !stop.load(Ordering::Relaxed) {
        let target = fastrand::i64(1..=ROWS);
        let sql = match fastrand::u8(0..10) {
            0..=2 => {
                next_id += 1;
                format!("INSERT INTO items (id, name, qty, updated) VALUES ({next_id}, 'new {next_id} ✓', 1, {now})")
            }
            3..=6 => {
                format!("UPDATE items SET qty = qty + 1, name = 'upd {writer}', updated = {now} WHERE id = {target}")
            }
            7 => {
                next_id += 1;
                format!("UPDATE items SET id = {next_id} WHERE id = {target}")
            }
            _ => format!("DELETE FROM items WHERE id = {target}"),
        };
        // Lock waits and busy errors are the application's business, not the test's.
        let _ = session.exec(&sql).await;
        ops.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1..4))).await;
    }
}

struct Writers {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    async fn start(db: &TestDb) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let session = db.session().await;
            tasks.push(tokio::spawn(write(session, db.kind, w, stop.clone(), ops.clone())));
        }
        Writers { stop, ops, tasks }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        self.ops.load(Ordering::Relaxed)
    }
}

const COLUMNS: [&str; 4] = ["id", "name", "qty", "updated"];

fn types() -> Vec<DataType> {
    vec![DataType::Int64, DataType::text(), DataType::Int32, DataType::Timestamp]
}

/// Reads both tables completely and compares canonical values: not Ferry's checksum.
async fn independent_comparison(src: &TestDb, dst: &TestDb) -> (usize, Vec<String>) {
    let a: Vec<Row> = src.rows("items", &["id"], &COLUMNS, &types()).await;
    let b: Vec<Row> = dst.rows("items", &["id"], &COLUMNS, &types()).await;
    let index = |rows: &[Row]| -> std::collections::BTreeMap<String, Vec<u8>> {
        rows.iter().map(|r| (r[0].to_string(), ferry_core::Value::encode_row(r))).collect()
    };
    let (ia, ib) = (index(&a), index(&b));
    let mut diffs = Vec::new();
    for (k, v) in &ia {
        match ib.get(k) {
            None => diffs.push(format!("missing {k}")),
            Some(w) if w != v => diffs.push(format!("different {k}")),
            _ => {}
        }
    }
    diffs.extend(ib.keys().filter(|k| !ia.contains_key(*k)).map(|k| format!("extra {k}")));
    (a.len(), diffs)
}

const TABLES: &str = "[policy]\nbatch_size = 200\nbatch_pause = \"10ms\"\n\n[[table]]\nfrom = \"items\"\n";

async fn wait_for_backfill(ws: &Workspace) {
    for _ in 0..600 {
        let status = ws.status_json();
        if status["tables"][0]["backfill_complete"] == true {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the backfill did not finish");
}

/// The spec of `src` -> `dst`, with `[source] capture = "..."` unless `capture` is empty.
fn capture_spec(src: &TestDb, dst: &TestDb, tables: &str, capture: &str) -> String {
    let text = spec(src, dst, tables);
    if capture.is_empty() {
        text
    } else {
        text.replacen("\n\n[target]", &format!("\ncapture = \"{capture}\"\n\n[target]"), 1)
    }
}

async fn writes_during_migration(source: Kind, target: Kind) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    writes_during(&src, &dst, "").await;
}

async fn writes_during(src: &TestDb, dst: &TestDb, capture: &str) {
    let (source, target) = (src.kind, dst.kind);
    fill(src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&capture_spec(src, dst, TABLES, capture));

    let writers = Writers::start(src).await;
    let mut command = ws.command(&["run"]);
    let run = tokio::task::spawn_blocking(move || command.output().unwrap());
    // The application writes throughout the backfill and into the sync.
    wait_for_backfill(&ws).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ops = writers.stop().await;
    let out = run.await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "ferry run\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ops > 100, "the writers did write ({ops} statements)");

    // Everything captured is replayed: nothing pending.
    ws.run(&["sync"]).assert_code(0);
    let status = ws.status_json();
    assert_eq!(status["tables"][0]["capture"]["pending_changes"], 0, "{status:#}");
    assert!(status["tables"][0]["capture"]["replayed_changes"].as_u64().unwrap() > 0, "{status:#}");

    let (rows, diffs) = independent_comparison(src, dst).await;
    assert!(
        diffs.is_empty(),
        "{source} -> {target}: {} differences after {ops} writes over {rows} rows: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(20)]
    );
}

engine_matrix!(writes_during_migration);

async fn killed_while_writing(source: Kind, target: Kind) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    killed_during(&src, &dst, "").await;
}

async fn killed_during(src: &TestDb, dst: &TestDb, capture: &str) {
    let (source, target) = (src.kind, dst.kind);
    fill(src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&capture_spec(src, dst, &TABLES.replace("10ms", "20ms"), capture));
    let writers = Writers::start(src).await;
    let mut kills = 0;
    let mut failures = 0;
    while kills < 6 {
        let mut child = ws.spawn_quiet(&["run"]);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(200..700))).await;
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap();
                kills += 1;
                failures = 0;
            }
            Some(status) if status.success() => failures = 0,
            // Right after a kill the server may still hold the dead runner's
            // lock ("another ferry runner"); a run that keeps failing would
            // loop here forever.
            Some(status) => {
                failures += 1;
                assert!(failures < 20, "ferry run failed {failures} times in a row between kills: {status}");
            }
        }
        child.wait().unwrap();
    }
    let ops = writers.stop().await;
    let ran = ws.run(&["run"]);
    ran.assert_code(0);
    ws.run(&["sync"]).assert_code(0);
    let (rows, diffs) = independent_comparison(src, dst).await;
    assert!(
        diffs.is_empty(),
        "{source} -> {target}: {} differences after {kills} kills and {ops} writes over {rows} rows: {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(20)]
    );
    let audit = ws.audit_log();
    assert_eq!(audit.matches("capture-installed").count(), 1, "capture installed once across all runs\n{audit}");
}

engine_matrix!(killed_while_writing);

/// A write rolled back on the source never reaches the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_writes_are_not_captured() {
    for kind in ferry_testkit::ALL {
        let src = TestDb::new(kind).await;
        let dst = TestDb::new(Kind::Sqlite).await;
        fill(&src).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(&src, &dst, TABLES));
        ws.run(&["run"]).assert_code(0);
        let mut s = src.session().await;
        let begin = if kind == Kind::Mysql { "START TRANSACTION" } else { "BEGIN" };
        s.exec(begin).await.unwrap();
        s.exec("INSERT INTO items (id, name, qty) VALUES (-1, 'rolled back', 0)").await.unwrap();
        s.exec("UPDATE items SET name = 'rolled back' WHERE id = 1").await.unwrap();
        s.exec("DELETE FROM items WHERE id = 2").await.unwrap();
        s.exec("ROLLBACK").await.unwrap();
        s.exec("INSERT INTO items (id, name, qty) VALUES (-2, 'committed', 0)").await.unwrap();
        ws.run(&["sync"]).assert_code(0);
        let (_, diffs) = independent_comparison(&src, &dst).await;
        assert!(diffs.is_empty(), "{kind}: {diffs:?}");
        let names: Vec<Row> = dst.rows("items", &["id"], &COLUMNS, &types()).await;
        assert!(
            names.iter().any(|r| r[1] == ferry_core::Value::Text("committed".into())),
            "{kind}: the committed insert arrived"
        );
        assert!(
            !names.iter().any(|r| r[1] == ferry_core::Value::Text("rolled back".into())),
            "{kind}: nothing rolled back arrived"
        );
        assert_eq!(ws.status_json()["tables"][0]["capture"]["pending_changes"], 0);
    }
}

/// `ferry rollback` leaves both databases as they were: no `ferry_` object anywhere.
async fn rollback_leaves_nothing(source: Kind, target: Kind) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    fill(&src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, TABLES));
    ws.run(&["run"]).assert_code(0);
    assert!(!src.ferry_objects().await.is_empty(), "capture is installed on the source after a run");
    let ran = ws.run(&["rollback"]);
    ran.assert_code(0);
    assert!(src.ferry_objects().await.is_empty(), "{source}: {:?}\n{ran}", src.ferry_objects().await);
    assert!(dst.ferry_objects().await.is_empty(), "{target}: {:?}", dst.ferry_objects().await);
    assert!(
        !dst.engine().await.table_exists(&ferry_core::TableName::parse("items")).await.unwrap(),
        "the table expand created is gone"
    );
    assert_eq!(src.count("items").await, ROWS as u64, "the source is untouched");
    assert!(ws.audit_log().contains("rollback-executed: trigger=manual"), "{}", ws.audit_log());
    // And the migration can start over.
    ws.run(&["run"]).assert_code(0);
}

engine_matrix!(rollback_leaves_nothing);

/// A TRUNCATE on a PostgreSQL source is replayed: the rows written before it
/// vanish from the target, the rows written after it arrive.
async fn truncate_on_postgres_source(target: Kind) {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(target).await;
    truncate_replayed(&src, &dst, "").await;
}

async fn truncate_replayed(src: &TestDb, dst: &TestDb, capture: &str) {
    let target = dst.kind;
    fill(src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&capture_spec(src, dst, TABLES, capture));
    ws.run(&["run"]).assert_code(0);
    assert_eq!(dst.count("items").await, ROWS as u64);

    src.exec("UPDATE items SET qty = qty + 1 WHERE id <= 10").await;
    src.exec("TRUNCATE items").await;
    src.exec(
        "INSERT INTO items (id, name, qty, updated) VALUES (7, 'after', 1, '2026-02-01 00:00:00'), \
         (90001, 'new', 2, '2026-02-01 00:00:00')",
    )
    .await;
    src.exec("UPDATE items SET qty = 3 WHERE id = 7").await;
    ws.run(&["sync"]).assert_code(0);

    let (rows, diffs) = independent_comparison(src, dst).await;
    assert_eq!(rows, 2);
    assert!(diffs.is_empty(), "postgres -> {target}: {diffs:?}");
    assert_eq!(ws.status_json()["tables"][0]["capture"]["pending_changes"], 0);
    assert!(ws.audit_log().contains("truncate-replayed: table=items"), "{}", ws.audit_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_on_postgres_source_to_postgres() {
    truncate_on_postgres_source(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_on_postgres_source_to_mysql() {
    truncate_on_postgres_source(Kind::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_on_postgres_source_to_sqlite() {
    truncate_on_postgres_source(Kind::Sqlite).await;
}

/// Capture from the server's own log: a rolled-back write never arrives, and
/// rollback drops the logs and what the method keeps on the source
/// (`kept`: names that exist until then): no `ferry_` object is left.
async fn rolled_back_then_rollback(src: &TestDb, capture: &str, kept: &[&str]) {
    let dst = TestDb::new(Kind::Sqlite).await;
    fill(src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&capture_spec(src, &dst, TABLES, capture));
    ws.run(&["run"]).assert_code(0);
    let objects = src.ferry_objects().await;
    for name in kept {
        assert!(objects.iter().any(|o| o.starts_with(name)), "{name} is there: {objects:?}");
    }
    assert!(!objects.iter().any(|o| o.ends_with("_ins")), "no trigger: {objects:?}");

    let mut s = src.session().await;
    s.exec("BEGIN").await.unwrap();
    s.exec("INSERT INTO items (id, name, qty) VALUES (-1, 'rolled back', 0)").await.unwrap();
    s.exec("UPDATE items SET name = 'rolled back' WHERE id = 1").await.unwrap();
    s.exec("DELETE FROM items WHERE id = 2").await.unwrap();
    s.exec("ROLLBACK").await.unwrap();
    s.exec("INSERT INTO items (id, name, qty) VALUES (-2, 'committed', 0)").await.unwrap();
    ws.run(&["sync"]).assert_code(0);
    let (_, diffs) = independent_comparison(src, &dst).await;
    assert!(diffs.is_empty(), "{diffs:?}");
    assert_eq!(dst.count("items").await, ROWS as u64 + 1, "the committed insert arrived, nothing else");

    let ran = ws.run(&["rollback"]);
    ran.assert_code(0);
    assert!(src.ferry_objects().await.is_empty(), "{:?}\n{ran}", src.ferry_objects().await);
    assert!(dst.ferry_objects().await.is_empty(), "{:?}", dst.ferry_objects().await);
    ws.run(&["run"]).assert_code(0);
}

/// Two migrations capture one source table (two specs, each in a folder of
/// its own and both named ferry.toml): each replays every change into its
/// own target, and rolling one back leaves the other's capture working.
async fn two_migrations_of_one_table(src: &TestDb, capture: &str) {
    fill(src).await;
    let (dst_a, dst_b) = (TestDb::new(Kind::Sqlite).await, TestDb::new(Kind::Sqlite).await);
    let (a, b) = (Workspace::new(FERRY), Workspace::new(FERRY));
    a.write_spec(&capture_spec(src, &dst_a, TABLES, capture));
    b.write_spec(&capture_spec(src, &dst_b, TABLES, capture));
    a.run(&["run"]).assert_code(0);
    b.run(&["run"]).assert_code(0);
    let write = |round: i64| async move {
        let mut s = src.session().await;
        s.exec(&format!("INSERT INTO items (id, name, qty) VALUES ({}, 'new', 0)", -round)).await.unwrap();
        s.exec(&format!("UPDATE items SET name = 'changed {round}' WHERE id = {round}")).await.unwrap();
        s.exec(&format!("DELETE FROM items WHERE id = {}", round + 100)).await.unwrap();
    };
    write(1).await;
    let same = |dst| async move {
        let (_, diffs) = independent_comparison(src, dst).await;
        assert!(diffs.is_empty(), "{diffs:?}");
    };
    let synced = a.run(&["sync"]);
    synced.assert_code(0);
    same(&dst_a).await;
    // B still has the three changes A replayed: it needs them too.
    b.run(&["sync"]).assert_code(0);
    same(&dst_b).await;
    b.run(&["verify"]).assert_code(0);

    let ran = a.run(&["rollback"]);
    ran.assert_code(0);
    assert!(!src.ferry_objects().await.is_empty(), "B's capture stays after A's rollback\n{ran}");
    write(2).await;
    b.run(&["sync"]).assert_code(0);
    same(&dst_b).await;
    b.run(&["rollback"]).assert_code(0);
    assert!(src.ferry_objects().await.is_empty(), "{:?}", src.ferry_objects().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrations_of_one_table_on_postgres() {
    two_migrations_of_one_table(&TestDb::new(Kind::Postgres).await, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrations_of_one_table_on_mysql() {
    two_migrations_of_one_table(&TestDb::new(Kind::Mysql).await, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrations_of_one_table_on_sqlite() {
    let src = TestDb::new(Kind::Sqlite).await;
    two_migrations_of_one_table(&src, "").await;
}

/// Writes during migration and kills, into every target, from a source on
/// a server of the test's own (`$server`) captured with `$capture`.
macro_rules! writes_and_kills {
    ($server:expr, $capture:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn writes_during_migration_to_postgres() {
            let server = $server;
            writes_during(&source(&server).await, &TestDb::new(Kind::Postgres).await, $capture).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn writes_during_migration_to_mysql() {
            let server = $server;
            writes_during(&source(&server).await, &TestDb::new(Kind::Mysql).await, $capture).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn writes_during_migration_to_sqlite() {
            let server = $server;
            writes_during(&source(&server).await, &TestDb::new(Kind::Sqlite).await, $capture).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn killed_while_writing_to_postgres() {
            let server = $server;
            killed_during(&source(&server).await, &TestDb::new(Kind::Postgres).await, $capture).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn killed_while_writing_to_mysql() {
            let server = $server;
            killed_during(&source(&server).await, &TestDb::new(Kind::Mysql).await, $capture).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn killed_while_writing_to_sqlite() {
            let server = $server;
            killed_during(&source(&server).await, &TestDb::new(Kind::Sqlite).await, $capture).await;
        }
    };
}

/// Capture by logical decoding (`[source] capture = "logical"`) on a
/// PostgreSQL server of the test's own with `wal_level = logical`: the same
/// writes, kills and truncation, the same zero differences.
mod logical {
    use super::*;
    use ferry_testkit::LogicalPostgres;

    async fn source(server: &LogicalPostgres) -> TestDb {
        TestDb::on(Kind::Postgres, &server.server()).await
    }

    writes_and_kills!(LogicalPostgres::start(), "logical");

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncate_is_replayed() {
        let server = LogicalPostgres::start();
        truncate_replayed(&source(&server).await, &TestDb::new(Kind::Postgres).await, "logical").await;
    }

    /// The slot is read while tables are still waiting for their backfill:
    /// the source keeps no WAL for Ferry, and the changes wait in the log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_are_collected_before_the_backfill_is_done() {
        let server = LogicalPostgres::start();
        let src = source(&server).await;
        let dst = TestDb::new(Kind::Sqlite).await;
        fill(&src).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&capture_spec(&src, &dst, TABLES, "logical"));
        ws.run(&["run", "--until", "expand"]).assert_code(0);
        src.exec("UPDATE items SET qty = qty + 1 WHERE id <= 100").await;
        let engine = src.engine().await;
        engine.set_capture_scope(ws.capture_scope());
        let items = ferry_core::TableName::parse("items");
        assert_eq!(engine.capture_lag(&items).await.unwrap().pending, 0, "still in the slot");
        let mut follow = ws.spawn_quiet(&["sync", "--follow"]);
        let mut pending = 0;
        for _ in 0..100 {
            pending = engine.capture_lag(&items).await.unwrap().pending;
            if pending == 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        follow.kill().unwrap();
        follow.wait().unwrap();
        assert_eq!(pending, 100, "the 100 updated keys moved from the slot into the log");
        ws.run(&["run"]).assert_code(0);
        let (_, diffs) = independent_comparison(&src, &dst).await;
        assert!(diffs.is_empty(), "{diffs:?}");
    }

    /// The WAL the slot keeps is measured and shown in `ferry status`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retained_wal_is_shown() {
        let server = LogicalPostgres::start();
        let src = source(&server).await;
        let dst = TestDb::new(Kind::Postgres).await;
        fill(&src).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&capture_spec(&src, &dst, TABLES, "logical"));
        ws.run(&["run"]).assert_code(0);
        src.exec("UPDATE items SET qty = qty + 1").await;
        ws.run(&["sync"]).assert_code(0);
        let status = ws.status_json();
        let log = &status["capture_log"];
        assert!(log["retained_bytes"].as_u64().is_some_and(|b| b > 0), "{status:#}");
        assert_eq!(log["max_retained_bytes"], 10_000_000_000u64, "the default, 10GB: {status:#}");
        let shown = ws.run(&["status"]);
        assert!(shown.stdout.contains("capture the source keeps") && !shown.stdout.contains("WARNING"), "{shown}");
    }

    /// A rolled-back write never arrives; rollback drops the slot and the
    /// publication with the logs, so no WAL is kept for Ferry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolled_back_writes_and_rollback_leave_nothing() {
        let server = LogicalPostgres::start();
        rolled_back_then_rollback(&source(&server).await, "logical", &["ferry_capture_"]).await;
    }

    /// Two migrations of one table each keep a slot and a publication.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_migrations_of_one_table() {
        let server = LogicalPostgres::start();
        super::two_migrations_of_one_table(&source(&server).await, "logical").await;
    }
}

/// Capture from the binary log (`[source] capture = "binlog"`) on a MariaDB
/// server of the test's own with a row-based binary log: the same writes
/// and kills, the same zero differences.
mod binlog {
    use super::*;
    use ferry_testkit::PrivateMariadb;

    async fn source(server: &PrivateMariadb) -> TestDb {
        TestDb::on(Kind::Mysql, &server.server()).await
    }

    async fn purge_all_but_the_newest(server: &PrivateMariadb) -> usize {
        use ferry_testkit::mysql_async::prelude::Queryable;
        let opts = ferry_testkit::mysql_async::Opts::from_url(&server.url("")).unwrap();
        let mut conn = ferry_testkit::mysql_async::Conn::new(opts).await.unwrap();
        for _ in 0..50 {
            let dumps: Vec<u64> = conn
                .query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
                .await
                .unwrap();
            for id in dumps {
                let _ = conn.query_drop(format!("KILL {id}")).await;
            }
            conn.query_drop("PURGE BINARY LOGS BEFORE NOW() + INTERVAL 1 DAY").await.unwrap();
            let logs: Vec<ferry_testkit::mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
            if logs.len() == 1 {
                return 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let logs: Vec<ferry_testkit::mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
        logs.len()
    }

    writes_and_kills!(PrivateMariadb::start(1), "binlog");

    /// A TRUNCATE in the binary log is replayed as the barrier PostgreSQL's is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncate_is_replayed() {
        let server = PrivateMariadb::start(1);
        truncate_replayed(&source(&server).await, &TestDb::new(Kind::Postgres).await, "binlog").await;
    }

    /// A rolled-back write never arrives; rollback drops the logs and the position.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolled_back_writes_and_rollback_leave_nothing() {
        let server = PrivateMariadb::start(1);
        rolled_back_then_rollback(&source(&server).await, "binlog", &["ferry_binlog_position_"]).await;
    }

    /// Two migrations of one table each keep a position and read the binary log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_migrations_of_one_table() {
        let server = PrivateMariadb::start(1);
        super::two_migrations_of_one_table(&source(&server).await, "binlog").await;
    }

    /// How far the reader is behind is measured and shown, with a warning
    /// above `max_retained`; a binary log purged past the reader's position
    /// is a clear error, not a silent loss.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn distance_is_shown_and_a_purged_log_is_an_error() {
        let server = PrivateMariadb::start(1);
        let src = source(&server).await;
        let dst = TestDb::new(Kind::Postgres).await;
        fill(&src).await;
        let ws = Workspace::new(FERRY);
        let tables = TABLES.replacen("[policy]\n", "[policy]\nmax_retained = \"1KB\"\n", 1);
        ws.write_spec(&capture_spec(&src, &dst, &tables, "binlog"));
        ws.run(&["run"]).assert_code(0);
        src.exec("UPDATE items SET qty = qty + 1 WHERE id <= 500").await;
        let ran = ws.run(&["sync"]);
        ran.assert_code(0);
        assert!(ran.stderr.contains("above [policy] max_retained (1000 B)"), "{ran}");
        let status = ws.status_json();
        let log = &status["capture_log"];
        assert!(log["retained_bytes"].as_u64().is_some_and(|b| b > 1000), "{status:#}");
        assert_eq!(log["max_retained_bytes"], 1000, "{status:#}");
        let shown = ws.run(&["status"]);
        assert!(shown.stdout.contains("WARNING: above [policy] max_retained"), "{shown}");

        src.exec("UPDATE items SET qty = qty + 1 WHERE id <= 10").await;
        server.exec("FLUSH BINARY LOGS").await;
        // A dump thread of an earlier read keeps its file from the purge.
        let logs = purge_all_but_the_newest(&server).await;
        assert_eq!(logs, 1, "only the newest binary log is left");
        let ran = ws.run(&["sync"]);
        ran.assert_code(2);
        assert!(ran.stderr.contains("was purged") && ran.stderr.contains("ferry rollback"), "{ran}");
    }
}
