//! Change capture through the engines' own primitives, on every source
//! engine: what a bulk statement, a key update and a delete log, that a
//! replay batch stays bounded however many rows one statement touched, and
//! that removing capture leaves nothing behind.

use ferry_core::{TableName, Value};
use ferry_testkit::{Kind, TestDb};
use std::collections::BTreeSet;
use std::time::Duration;

const ROWS: i64 = 3_000;
const BATCH: usize = 500;

fn int(v: &Value) -> i64 {
    v.to_string().parse().unwrap_or_else(|_| panic!("key {v:?} is not an integer"))
}

async fn bulk_statement_replays_in_bounded_batches(kind: Kind) {
    let db = TestDb::new(kind).await;
    db.exec("CREATE TABLE items (id integer PRIMARY KEY, qty integer)").await;
    let values: Vec<String> = (1..=ROWS).map(|i| format!("({i}, 0)")).collect();
    db.exec(&format!("INSERT INTO items (id, qty) VALUES {}", values.join(", "))).await;
    let engine = db.engine().await;
    let table = TableName::parse("items");
    let schema = engine.introspect(&table).await.unwrap();
    engine.install_capture(&schema, &["id".into()], Duration::from_secs(5)).await.unwrap();

    db.exec("UPDATE items SET qty = qty + 1").await;
    db.exec("UPDATE items SET id = 5000 WHERE id = 1").await;
    db.exec("DELETE FROM items WHERE id = 2").await;
    db.exec("INSERT INTO items (id, qty) VALUES (4000, 1)").await;
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
    engine.install_capture(&schema, &["code".into()], Duration::from_secs(5)).await.unwrap();
    db.exec("INSERT INTO items VALUES (NULL, 1), ('a', 2)").await;
    db.exec("TRUNCATE items").await;
    let changes = engine.read_changes(&table, 1, BATCH).await.unwrap();
    let truncations: Vec<bool> = changes.iter().map(|c| c.is_truncation()).collect();
    assert_eq!(truncations, [false, false, true], "{changes:?}");
    assert_eq!(changes[0].key, [Value::Null]);
    engine.remove_capture(&table, Duration::from_secs(5)).await.unwrap();
}
