//! The engine conformance suite: what every engine must do the same way,
//! run against a real database of each kind by [`crate::engine_conformance!`].
//! A new engine passes these before any migration test means anything.
//!
//! Each behaviour creates its own database ([`TestDb`]) and says, when it
//! fails, which engine and which promise of the `Engine` trait broke.

use crate::{Kind, TestDb};
use ferry_core::convert::convert;
use ferry_core::{CaptureMethod, ColumnDef, DataType, ForeignKey, Row, TableDef, TableName, Value};
use ferry_engine::{Engine, KeyRange, ReadSpec, SelectItem, WriteSpec};
use std::sync::Arc;
use std::time::Duration;

const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// `items (id int64 key, name text, n int64 NULL)` created by the engine itself.
async fn items(db: &TestDb) -> (Arc<dyn Engine>, ReadSpec, WriteSpec) {
    let engine = db.engine().await;
    let table = TableName::parse("items");
    let columns = vec![
        ColumnDef::new("id", DataType::Int64, false),
        ColumnDef::new("name", DataType::Text { max_chars: None }, false),
        ColumnDef::new("n", DataType::Int64, true),
    ];
    engine.create_table(&TableDef::new(table.clone(), columns, vec!["id".into()])).await.expect("create items");
    let read = ReadSpec {
        table: table.clone(),
        select: ["id", "name", "n"].iter().map(|c| SelectItem::Column(c.to_string())).collect(),
        key: vec!["id".into()],
        key_positions: vec![0],
        filter: None,
    };
    let write = WriteSpec {
        table,
        columns: vec![
            ("id".into(), DataType::Int64),
            ("name".into(), DataType::Text { max_chars: None }),
            ("n".into(), DataType::Int64),
        ],
        key: vec!["id".into()],
    };
    (engine, read, write)
}

fn row(id: i64, name: &str, n: Option<i64>) -> Row {
    vec![Value::Int(id), Value::Text(name.into()), n.map_or(Value::Null, Value::Int)]
}

fn ids(rows: &[Row]) -> Vec<i64> {
    rows.iter()
        .map(|r| match &r[0] {
            Value::Int(i) => *i,
            other => panic!("a key read back as {other:?}"),
        })
        .collect()
}

/// Every neutral type created by the engine introspects back as the type
/// the engine says it stores, with its nullability and the primary key.
pub async fn introspection_round_trip(kind: Kind) {
    let db = TestDb::new(kind).await;
    let engine = db.engine().await;
    let examples = DataType::examples();
    let stored: Vec<DataType> = examples.iter().map(|t| engine.storage_type(t, false)).collect();
    let mut columns = vec![ColumnDef::new("id", DataType::Int64, false)];
    columns.extend(stored.iter().enumerate().map(|(i, t)| ColumnDef::new(format!("c{i}"), t.clone(), i % 2 == 0)));
    let table = TableName::parse("typed");
    engine.create_table(&TableDef::new(table.clone(), columns, vec!["id".into()])).await.expect("create");
    assert!(engine.table_exists(&table).await.unwrap(), "{kind}: table_exists after create_table");
    let schema = engine.introspect(&table).await.expect("introspect");
    assert_eq!(schema.primary_key, vec!["id".to_string()], "{kind}: primary key");
    for (i, want) in stored.iter().enumerate() {
        let col = schema.column(&format!("c{i}")).unwrap_or_else(|| panic!("{kind}: c{i} missing"));
        assert_eq!(
            &col.data_type, want,
            "{kind}: {} created as {} reads back as {}",
            examples[i], col.native_type, col.data_type
        );
        assert_eq!(col.nullable, i % 2 == 0, "{kind}: c{i}'s nullability");
    }
}

/// Keyset reads: every row once, in ascending key order, page by page;
/// a key range with an offset; the key's bounds; rows by key.
pub async fn keyset_reads(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (engine, read, write) = items(&db).await;
    let mut rows: Vec<Row> = (1..=1000).map(|i| row(i, &format!("item {i} 🦀"), Some(i % 7))).collect();
    rows.reverse();
    engine.upsert(&write, rows.into()).await.expect("upsert");
    let (mut seen, mut after) = (Vec::new(), None::<Vec<Value>>);
    loop {
        let page = engine.read_batch(&read, after.as_deref(), 97).await.expect("read_batch");
        let Some(last) = page.last() else { break };
        after = Some(read.key_of(last));
        seen.extend(ids(&page));
    }
    assert_eq!(seen, (1..=1000).collect::<Vec<_>>(), "{kind}: read_batch pages cover every key once, ascending");
    let range = KeyRange { after: Some(vec![Value::Int(100)]), through: Some(vec![Value::Int(200)]) };
    let part = engine.read_range(&read, &range, 10, 1000).await.expect("read_range");
    assert_eq!(ids(&part), (111..=200).collect::<Vec<_>>(), "{kind}: read_range (100, 200] skipping 10");
    assert_eq!(engine.key_bounds(&read).await.unwrap(), Some((Value::Int(1), Value::Int(1000))), "{kind}: key_bounds");
    let keys = [vec![Value::Int(5)], vec![Value::Int(999)], vec![Value::Int(5000)]];
    let mut found = ids(&engine.read_keys(&read, &keys).await.expect("read_keys"));
    found.sort();
    assert_eq!(found, vec![5, 999], "{kind}: read_keys returns the keys that exist");
}

/// Upserts are idempotent and replace by key; deletes by key ignore missing keys.
pub async fn upsert_is_idempotent(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (engine, read, write) = items(&db).await;
    let first: Vec<Row> = (1..=50).map(|i| row(i, "a", None)).collect();
    engine.upsert(&write, first.clone().into()).await.expect("upsert");
    engine.upsert(&write, first.into()).await.expect("the same upsert again");
    assert_eq!(engine.count(&read.table, None).await.unwrap(), 50, "{kind}: the same rows twice are 50 rows");
    engine.upsert(&write, vec![row(7, "changed", Some(1))].into()).await.expect("upsert a change");
    let seven = engine.read_keys(&read, &[vec![Value::Int(7)]]).await.unwrap();
    assert_eq!(seven, vec![row(7, "changed", Some(1))], "{kind}: an upsert replaces the row with its key");
    engine.delete_keys(&write, &[vec![Value::Int(7)], vec![Value::Int(4000)]]).await.expect("delete_keys");
    assert_eq!(engine.count(&read.table, None).await.unwrap(), 49, "{kind}: delete_keys");
    engine.delete_all(&read.table).await.expect("delete_all");
    assert_eq!(engine.count(&read.table, None).await.unwrap(), 0, "{kind}: delete_all");
}

/// Where the engine says it checksums in the database, equal ranges agree
/// and a changed row changes the sum; where it does not, it returns none.
pub async fn checksums_are_honest(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (engine, read, write) = items(&db).await;
    let rows: Vec<Row> = (1..=300).map(|i| row(i, &format!("r{i}"), (i % 3 != 0).then_some(i))).collect();
    engine.upsert(&write, rows.into()).await.unwrap();
    let all = KeyRange::default();
    let summed = engine.checksum_range(&read, &all).await.expect("checksum_range");
    if !engine.capabilities().checksums_in_database {
        assert_eq!(summed, None, "{kind}: no in-database checksums, as its capabilities say");
        return;
    }
    let summed = summed.unwrap_or_else(|| panic!("{kind}: says it checksums in the database, returned none"));
    assert_eq!(summed.rows, 300, "{kind}: rows counted");
    assert_eq!(engine.checksum_range(&read, &all).await.unwrap(), Some(summed), "{kind}: stable");
    engine.upsert(&write, vec![row(150, "r150!", Some(150))].into()).await.unwrap();
    let changed = engine.checksum_range(&read, &all).await.unwrap().unwrap();
    assert_eq!(changed.rows, 300, "{kind}");
    assert_ne!(changed.sum, summed.sum, "{kind}: one changed value changes the sum");
}

/// Trigger capture logs the key of every insert, update and delete until
/// acknowledged, and leaves nothing behind once removed.
pub async fn capture_logs_every_write(kind: Kind) {
    capture_scenario(&TestDb::new(kind).await, CaptureMethod::Triggers).await;
}

/// A server set up for a log-based capture method: `wal_level = logical`,
/// or a row-based binary log.
enum LogServer {
    Logical(crate::LogicalPostgres),
    Binlog(crate::PrivateMariadb),
}

impl LogServer {
    fn start(method: CaptureMethod) -> LogServer {
        match method {
            CaptureMethod::Logical => LogServer::Logical(crate::LogicalPostgres::start()),
            CaptureMethod::Binlog => LogServer::Binlog(crate::PrivateMariadb::start(1)),
            CaptureMethod::Triggers => unreachable!("triggers need no server of their own"),
        }
    }

    fn server(&self) -> String {
        match self {
            LogServer::Logical(s) => s.server(),
            LogServer::Binlog(s) => s.server(),
        }
    }
}

/// Each log-based method the engine lists (`Engine::capture_methods`) logs
/// the keys of every write as triggers do, on a server set up for it; a
/// method it does not list is refused before anything is created.
pub async fn log_capture_logs_every_write(kind: Kind) {
    let db = TestDb::new(kind).await;
    let engine = db.engine().await;
    let listed = engine.capture_methods();
    assert!(listed.contains(&CaptureMethod::Triggers), "{kind}: every engine captures with triggers");
    for method in [CaptureMethod::Logical, CaptureMethod::Binlog] {
        if !listed.contains(&method) {
            assert!(engine.check_capture(method).await.is_err(), "{kind}: {method:?} is not listed, yet accepted");
            continue;
        }
        let server = LogServer::start(method);
        capture_scenario(&TestDb::on(kind, &server.server()).await, method).await;
    }
}

async fn capture_scenario(db: &TestDb, method: CaptureMethod) {
    let kind = db.kind;
    let (engine, read, write) = items(db).await;
    engine.upsert(&write, vec![row(1, "a", None), row(2, "b", None)].into()).await.unwrap();
    let schema = engine.introspect(&read.table).await.unwrap();
    engine.install_capture(&schema, &read.key, method, LOCK_TIMEOUT).await.expect("install_capture");
    engine.install_capture(&schema, &read.key, method, LOCK_TIMEOUT).await.expect("idempotent");
    let t = kind.ident("items");
    let (id, name) = (kind.ident("id"), kind.ident("name"));
    let statements = [
        format!("INSERT INTO {t} ({id}, {name}) VALUES (3, 'c')"),
        format!("UPDATE {t} SET {name} = 'b2' WHERE {id} = 2"),
        format!("DELETE FROM {t} WHERE {id} = 1"),
    ];
    engine.execute(&statements, false, LOCK_TIMEOUT).await.expect("the application's writes");
    engine.collect_changes().await.unwrap();
    let changes = engine.read_changes(&read.table, 1, 100).await.expect("read_changes");
    let mut keys: Vec<i64> = changes.iter().flat_map(|c| ids(std::slice::from_ref(&c.key))).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys, vec![1, 2, 3], "{kind} {method:?}: the keys of the insert, the update and the delete");
    let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
    engine.ack_changes(&read.table, &seqs).await.expect("ack_changes");
    engine.collect_changes().await.unwrap();
    assert!(
        engine.read_changes(&read.table, 1, 100).await.unwrap().is_empty(),
        "{kind} {method:?}: acknowledged changes are gone"
    );
    engine.remove_capture(&read.table, LOCK_TIMEOUT).await.expect("remove_capture");
    assert_eq!(db.ferry_objects().await, Vec::<String>::new(), "{kind} {method:?}: nothing of capture is left");
}

/// An advisory lock has one holder at a time, and is free again when its guard goes.
pub async fn locks_are_exclusive(kind: Kind) {
    let db = TestDb::new(kind).await;
    let engine = db.engine().await;
    let other = engine.connect_again().await.expect("connect_again");
    let held = engine.try_lock("conformance").await.unwrap();
    assert!(held.is_some(), "{kind}: a free lock is taken");
    assert!(
        other.try_lock("conformance").await.unwrap().is_none(),
        "{kind}: a held lock is refused to another session"
    );
    drop(held);
    // PostgreSQL and MariaDB release on the session's next round trip; give it a moment.
    let mut again = None;
    for _ in 0..50 {
        again = other.try_lock("conformance").await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "{kind}: a released lock can be taken again");
}

/// The capabilities an engine states are what it does: DDL in a
/// transaction is undone with it; foreign keys are added to an existing
/// table exactly where the engine says it can.
pub async fn capabilities_are_honest(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (engine, _, _) = items(&db).await;
    let capabilities = engine.capabilities();
    let t = kind.ident("ddl_probe");
    let statements = [format!("CREATE TABLE {t} (x integer)"), "SELECT * FROM no_such_table_anywhere".to_string()];
    assert!(engine.execute(&statements, true, LOCK_TIMEOUT).await.is_err(), "{kind}: the second statement fails");
    let kept = engine.table_exists(&TableName::parse("ddl_probe")).await.unwrap();
    assert_eq!(
        kept, !capabilities.transactional_ddl,
        "{kind}: transactional_ddl is {}",
        capabilities.transactional_ddl
    );

    let children = TableName::parse("children");
    let columns = vec![ColumnDef::new("id", DataType::Int64, false), ColumnDef::new("item", DataType::Int64, true)];
    engine.create_table(&TableDef::new(children.clone(), columns, vec!["id".into()])).await.unwrap();
    let fk = ForeignKey {
        name: "children_item".into(),
        columns: vec!["item".into()],
        ref_table: TableName::parse("items"),
        ref_columns: vec!["id".into()],
        on_delete: Default::default(),
        on_update: Default::default(),
    };
    let added = engine.add_foreign_key(&children, &fk).await;
    assert_eq!(
        added.is_ok(),
        capabilities.adds_foreign_keys_later,
        "{kind}: adds_foreign_keys_later is {}: {added:?}",
        capabilities.adds_foreign_keys_later
    );
}

/// Every type written and read back has the canonical encoding it had
/// before. Ferry hashes those bytes to verify and diff, so a row hashes
/// alike on every engine and a comparison across engines compares like
/// with like.
pub async fn rows_hash_alike_on_every_engine(kind: Kind) {
    let db = TestDb::new(kind).await;
    let engine = db.engine().await;
    let fixture = crate::fixtures::every_type();
    let table = TableName::parse(fixture.table);
    let columns = fixture.columns.iter().map(|(n, t)| ColumnDef::new(*n, t.clone(), *n != "id")).collect();
    engine.create_table(&TableDef::new(table.clone(), columns, vec!["id".into()])).await.expect("create every_type");
    let write = WriteSpec {
        table: table.clone(),
        columns: fixture.columns.iter().map(|(n, t)| (n.to_string(), t.clone())).collect(),
        key: vec!["id".into()],
    };
    engine.upsert(&write, fixture.rows.clone().into()).await.expect("upsert every_type");
    let read = ReadSpec {
        table,
        select: fixture.column_names().iter().map(|c| SelectItem::Column(c.to_string())).collect(),
        key: vec!["id".into()],
        key_positions: vec![0],
        filter: None,
    };
    let back = engine.read_batch(&read, None, 1000).await.expect("read every_type");
    assert_eq!(back.len(), fixture.rows.len(), "{kind}: rows read back");
    let canonical = |v: &Value, t: &DataType| {
        Value::encode_row(&[convert(v.clone(), t).unwrap_or_else(|e| panic!("{kind}: {v:?}: {e}"))])
    };
    for (written, read) in fixture.rows.iter().zip(&back) {
        for ((w, r), (name, t)) in written.iter().zip(read).zip(&fixture.columns) {
            assert_eq!(canonical(w, t), canonical(r, t), "{kind}: `{name}` written as {w:?} reads back as {r:?}");
        }
    }
}

/// The engine's plan dialect is its own, and the table checksum a plan
/// shows runs on it as written and sees a change.
pub async fn plan_dialect_runs_on_the_engine(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (engine, _, _) = items(&db).await;
    let dialect = engine.plan_dialect();
    assert_eq!(dialect.kind(), engine.kind(), "{kind}: the plan dialect of another engine");
    assert_eq!(engine.sql_dialect().kind, engine.kind(), "{kind}: the SQL dialect of another engine");
    // A server's collation may pad (MariaDB's utf8mb4_bin): the rest is the engine's alone.
    let said = engine.capabilities();
    let static_part =
        ferry_core::Capabilities { pads_trailing_spaces: said.pads_trailing_spaces, ..dialect.capabilities() };
    assert_eq!(static_part, said, "{kind}: capabilities differ from its dialect's");
    let columns = ["id".to_string(), "name".to_string(), "n".to_string()];
    let checksum = dialect.table_checksum("items", &columns[..1], &columns);
    let sum = || async {
        let rows = engine.query_text(&checksum).await.unwrap_or_else(|e| panic!("{kind}: {checksum}: {e}"));
        assert_eq!(rows.len(), 1, "{kind}: {checksum} gives one row");
        rows
    };
    let empty = sum().await;
    let insert = format!("INSERT INTO {} VALUES (1, 'a', 2)", dialect.table("items"));
    engine.execute(&[insert], false, LOCK_TIMEOUT).await.unwrap();
    assert_ne!(sum().await, empty, "{kind}: {checksum} does not see a new row");
    assert!(!dialect.backup_commands(&db.url, &["items"]).is_empty(), "{kind}: no backup command");
}

/// Every step of the lifecycle starts, completes and aborts with the
/// engine on both sides (`ferry` is the binary): run then rollback, and a
/// switch then rollback that writes the target's rows back, each leave no
/// `ferry_` object; run, switch and contract end completed, with nothing of
/// Ferry's left but the archive.
pub async fn lifecycle_steps_complete_and_abort(kind: Kind, ferry: &str) {
    let src = TestDb::new(kind).await;
    let dst = TestDb::new(kind).await;
    let t = kind.ident("items");
    src.exec(&format!("CREATE TABLE {t} (id integer PRIMARY KEY, name varchar(40) NOT NULL)")).await;
    src.exec(&format!("INSERT INTO {t} VALUES (1, 'a'), (2, 'b')")).await;
    let ws = crate::Workspace::new(ferry);
    ws.write_spec(&crate::spec(&src, &dst, "[soak]\nduration = \"1s\"\n\n[[table]]\nfrom = \"items\"\n"));
    let nothing_left = |step: &'static str| {
        let (src, dst) = (&src, &dst);
        async move {
            assert_eq!(src.ferry_objects().await, Vec::<String>::new(), "{kind}: after {step}, on the source");
            assert_eq!(dst.ferry_objects().await, Vec::<String>::new(), "{kind}: after {step}, on the target");
        }
    };

    ws.run(&["run"]).assert_code(0);
    ws.run(&["rollback"]).assert_code(0);
    nothing_left("run, rollback").await;
    let items = TableName::parse("items");
    assert!(!dst.engine().await.table_exists(&items).await.unwrap(), "{kind}: rollback keeps the copy");

    ws.run(&["run"]).assert_code(0);
    ws.run(&["switch"]).assert_code(0);
    dst.exec(&format!("INSERT INTO {t} VALUES (3, 'written on the target')")).await;
    ws.run(&["rollback"]).assert_code(0);
    nothing_left("switch, rollback").await;
    assert_eq!(src.count("items").await, 3, "{kind}: a rollback after the switch writes the target's rows back");

    ws.run(&["run"]).assert_code(0);
    ws.run(&["switch"]).assert_code(0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ws.run(&["contract", "--confirm"]).assert_code(0);
    nothing_left("contract").await;
    assert_eq!(ws.status_json()["state"], "completed", "{kind}: after contract");
    assert_eq!(dst.count("items").await, 3, "{kind}: the target keeps every row");
}

/// The conformance suite for one engine: a module named `$name` with one
/// test per behaviour, against a real database of kind `$kind`.
#[macro_export]
macro_rules! engine_conformance {
    ($name:ident, $kind:ident) => {
        mod $name {
            use $crate::conformance as c;
            use $crate::Kind::$kind as KIND;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn introspection_round_trip() {
                c::introspection_round_trip(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn keyset_reads() {
                c::keyset_reads(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn upsert_is_idempotent() {
                c::upsert_is_idempotent(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn checksums_are_honest() {
                c::checksums_are_honest(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn capture_logs_every_write() {
                c::capture_logs_every_write(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn log_capture_logs_every_write() {
                c::log_capture_logs_every_write(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lifecycle_steps_complete_and_abort() {
                c::lifecycle_steps_complete_and_abort(KIND, env!("CARGO_BIN_EXE_ferry")).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn locks_are_exclusive() {
                c::locks_are_exclusive(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn capabilities_are_honest() {
                c::capabilities_are_honest(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rows_hash_alike_on_every_engine() {
                c::rows_hash_alike_on_every_engine(KIND).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn plan_dialect_runs_on_the_engine() {
                c::plan_dialect_runs_on_the_engine(KIND).await
            }
        }
    };
}
