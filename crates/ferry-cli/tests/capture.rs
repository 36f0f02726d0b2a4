//! Change capture through the engines' own primitives, on every source
//! engine: what a bulk statement, a key update and a delete log, that a
//! replay batch stays bounded however many rows one statement touched, and
//! that removing capture leaves nothing behind.

use ferry_core::{CaptureMethod, TableName, Value};
use ferry_testkit::{Kind, LogicalPostgres, PrivateMariadb, TestDb};
use std::collections::BTreeSet;
use std::time::Duration;

const ROWS: i64 = 3_000;
const BATCH: usize = 500;

fn int(v: &Value) -> i64 {
    v.to_string().parse().unwrap_or_else(|_| panic!("key {v:?} is not an integer"))
}

async fn bulk_statement_replays_in_bounded_batches(kind: Kind) {
    let db = TestDb::new(kind).await;
    bulk_replays_in_bounded_batches(&db, CaptureMethod::Triggers).await;
}

async fn bulk_replays_in_bounded_batches(db: &TestDb, method: CaptureMethod) {
    db.exec("CREATE TABLE items (id integer PRIMARY KEY, qty integer)").await;
    let values: Vec<String> = (1..=ROWS).map(|i| format!("({i}, 0)")).collect();
    db.exec(&format!("INSERT INTO items (id, qty) VALUES {}", values.join(", "))).await;
    let engine = db.engine().await;
    let table = TableName::parse("items");
    let schema = engine.introspect(&table).await.unwrap();
    engine.install_capture(&schema, &["id".into()], method, Duration::from_secs(5)).await.unwrap();

    db.exec("UPDATE items SET qty = qty + 1").await;
    db.exec("UPDATE items SET id = 5000 WHERE id = 1").await;
    db.exec("DELETE FROM items WHERE id = 2").await;
    db.exec("INSERT INTO items (id, qty) VALUES (4000, 1)").await;
    // Logically decoded changes are moved into the log; triggers put them there at once.
    engine.collect_changes().await.unwrap();
    let lag = engine.capture_lag(&table).await.unwrap();
    assert!(lag.pending >= ROWS as u64 + 3, "{lag:?}");

    let mut seen = BTreeSet::new();
    let mut reads = 0;
    loop {
        let changes = engine.read_changes(&table, 1, BATCH).await.unwrap();
        if changes.is_empty() {
            break;
        }
        assert!(changes.len() <= 2 * BATCH, "one read returned {} changes for a batch of {BATCH}", changes.len());
        seen.extend(changes.iter().map(|c| int(&c.key[0])));
        let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
        engine.ack_changes(&table, &seqs).await.unwrap();
        reads += 1;
        assert!(reads < 100, "the log does not drain");
    }
    let expected: BTreeSet<i64> = (1..=ROWS).chain([4000, 5000]).collect();
    assert_eq!(seen, expected);
    assert!(reads >= ROWS as usize / (2 * BATCH), "{reads} reads for {ROWS} keys");
    assert_eq!(engine.capture_lag(&table).await.unwrap().pending, 0);

    engine.remove_capture(&table, Duration::from_secs(5)).await.unwrap();
    assert_eq!(db.ferry_objects().await, Vec::<String>::new());
    assert!(engine.read_changes(&table, 1, BATCH).await.is_err(), "reading a removed capture must fail");
}

#[tokio::test]
async fn postgres_bulk_statement_replays_in_bounded_batches() {
    bulk_statement_replays_in_bounded_batches(Kind::Postgres).await;
}

#[tokio::test]
async fn mysql_bulk_statement_replays_in_bounded_batches() {
    bulk_statement_replays_in_bounded_batches(Kind::Mysql).await;
}

#[tokio::test]
async fn sqlite_bulk_statement_replays_in_bounded_batches() {
    bulk_statement_replays_in_bounded_batches(Kind::Sqlite).await;
}

/// Only a TRUNCATE reads as a truncation: a key column named in the spec may
/// hold NULLs, and a change of such a row must not empty the target.
#[tokio::test]
async fn postgres_null_keys_are_not_a_truncation() {
    let db = TestDb::new(Kind::Postgres).await;
    db.exec("CREATE TABLE items (code text, qty integer)").await;
    let engine = db.engine().await;
    let table = TableName::parse("items");
    let schema = engine.introspect(&table).await.unwrap();
    engine.install_capture(&schema, &["code".into()], CaptureMethod::Triggers, Duration::from_secs(5)).await.unwrap();
    db.exec("INSERT INTO items VALUES (NULL, 1), ('a', 2)").await;
    db.exec("TRUNCATE items").await;
    let changes = engine.read_changes(&table, 1, BATCH).await.unwrap();
    let truncations: Vec<bool> = changes.iter().map(|c| c.is_truncation()).collect();
    assert_eq!(truncations, [false, false, true], "{changes:?}");
    assert_eq!(changes[0].key, [Value::Null]);
    engine.remove_capture(&table, Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn postgres_logical_bulk_statement_replays_in_bounded_batches() {
    let server = LogicalPostgres::start();
    let db = TestDb::on(Kind::Postgres, &server.server()).await;
    bulk_replays_in_bounded_batches(&db, CaptureMethod::Logical).await;
}

/// Logical capture reads old keys from the WAL: it needs `wal_level =
/// logical` and a key that is the table's replica identity, and says so.
#[tokio::test]
async fn postgres_logical_capture_says_what_it_needs() {
    let shared = TestDb::new(Kind::Postgres).await;
    shared.exec("CREATE TABLE items (id integer PRIMARY KEY, code text UNIQUE)").await;
    let engine = shared.engine().await;
    let schema = engine.introspect(&TableName::parse("items")).await.unwrap();
    let wal_level = engine.scalar("SHOW wal_level").await.unwrap().unwrap();
    if wal_level != "logical" {
        let err = engine
            .install_capture(&schema, &["id".into()], CaptureMethod::Logical, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("wal_level") && err.contains("restart"), "{err}");
    }

    let server = LogicalPostgres::start();
    let db = TestDb::on(Kind::Postgres, &server.server()).await;
    db.exec("CREATE TABLE items (id integer PRIMARY KEY, code text UNIQUE)").await;
    let engine = db.engine().await;
    let err = engine
        .install_capture(&schema, &["code".into()], CaptureMethod::Logical, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not the table's replica identity (id)") && err.contains("REPLICA IDENTITY FULL"), "{err}");
    assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "a refused install leaves nothing");
    // With every column in the WAL, any key works.
    db.exec("ALTER TABLE items REPLICA IDENTITY FULL").await;
    engine.install_capture(&schema, &["code".into()], CaptureMethod::Logical, Duration::from_secs(5)).await.unwrap();
    db.exec("INSERT INTO items VALUES (1, 'a'); UPDATE items SET code = 'b'; DELETE FROM items").await;
    engine.collect_changes().await.unwrap();
    let keys: Vec<Value> = engine
        .read_changes(&TableName::parse("items"), 1, BATCH)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.key[0].clone())
        .collect();
    assert_eq!(
        keys,
        [Value::Text("a".into()), Value::Text("a".into()), Value::Text("b".into()), Value::Text("b".into())]
    );
    engine.remove_capture(&TableName::parse("items"), Duration::from_secs(5)).await.unwrap();
    assert_eq!(db.ferry_objects().await, Vec::<String>::new());

    let sqlite = TestDb::new(Kind::Sqlite).await;
    sqlite.exec("CREATE TABLE items (id integer PRIMARY KEY)").await;
    let engine = sqlite.engine().await;
    let schema = engine.introspect(&TableName::parse("items")).await.unwrap();
    let err = engine
        .install_capture(&schema, &["id".into()], CaptureMethod::Logical, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a PostgreSQL source"), "{err}");
}

#[tokio::test]
async fn mysql_binlog_bulk_statement_replays_in_bounded_batches() {
    let server = PrivateMariadb::start(1);
    let db = TestDb::on(Kind::Mysql, &server.server()).await;
    bulk_replays_in_bounded_batches(&db, CaptureMethod::Binlog).await;
}

/// Binlog capture needs a row-based binary log, and says so; unsigned keys
/// beyond the signed range come back as they are.
#[tokio::test]
async fn mysql_binlog_capture_says_what_it_needs_and_keeps_unsigned_keys() {
    let shared = TestDb::new(Kind::Mysql).await;
    shared.exec("CREATE TABLE items (id int unsigned PRIMARY KEY, v int)").await;
    let engine = shared.engine().await;
    let schema = engine.introspect(&TableName::parse("items")).await.unwrap();
    if engine.scalar("SELECT @@log_bin").await.unwrap().as_deref() != Some("1") {
        let err = engine
            .install_capture(&schema, &["id".into()], CaptureMethod::Binlog, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("log_bin = OFF") && err.contains("binlog_format = ROW"), "{err}");
        assert_eq!(shared.ferry_objects().await, Vec::<String>::new(), "a refused install leaves nothing");
    }

    let server = PrivateMariadb::start(1);
    let db = TestDb::on(Kind::Mysql, &server.server()).await;
    db.exec("CREATE TABLE items (id int unsigned PRIMARY KEY, v int)").await;
    let engine = db.engine().await;
    let table = TableName::parse("items");
    engine.install_capture(&schema, &["id".into()], CaptureMethod::Binlog, Duration::from_secs(5)).await.unwrap();
    db.exec("INSERT INTO items VALUES (4000000000, 1), (7, 1); UPDATE items SET id = 8 WHERE id = 7; DELETE FROM items WHERE id = 4000000000").await;
    db.exec("START TRANSACTION; INSERT INTO items VALUES (9, 9); ROLLBACK").await;
    engine.collect_changes().await.unwrap();
    let keys: Vec<String> =
        engine.read_changes(&table, 1, BATCH).await.unwrap().iter().map(|c| c.key[0].to_string()).collect();
    assert_eq!(keys, ["4000000000", "7", "7", "8", "4000000000"]);
    engine.collect_changes().await.unwrap();
    assert_eq!(engine.read_changes(&table, 1, BATCH).await.unwrap().len(), 5, "collected once");
    engine.remove_capture(&table, Duration::from_secs(5)).await.unwrap();
    assert_eq!(db.ferry_objects().await, Vec::<String>::new());
}

/// Two databases of one server, each migrated with binlog capture: each keeps
/// its own position, and removing one capture leaves the other working.
#[tokio::test]
async fn mysql_binlog_captures_of_two_databases_are_independent() {
    let server = PrivateMariadb::start(1);
    let a = TestDb::on(Kind::Mysql, &server.server()).await;
    let b = TestDb::on(Kind::Mysql, &server.server()).await;
    let table = TableName::parse("items");
    let mut engines = Vec::new();
    for db in [&a, &b] {
        db.exec("CREATE TABLE items (id int PRIMARY KEY, v int)").await;
        let engine = db.engine().await;
        let schema = engine.introspect(&table).await.unwrap();
        engine.install_capture(&schema, &["id".into()], CaptureMethod::Binlog, Duration::from_secs(5)).await.unwrap();
        engines.push(engine);
    }
    engines[0].remove_capture(&table, Duration::from_secs(5)).await.unwrap();
    assert_eq!(a.ferry_objects().await, Vec::<String>::new());
    b.exec("INSERT INTO items VALUES (1, 1)").await;
    engines[1].collect_changes().await.unwrap();
    assert_eq!(engines[1].read_changes(&table, 1, BATCH).await.unwrap().len(), 1, "b still captures");
    engines[1].remove_capture(&table, Duration::from_secs(5)).await.unwrap();
    assert_eq!(b.ferry_objects().await, Vec::<String>::new());
}
