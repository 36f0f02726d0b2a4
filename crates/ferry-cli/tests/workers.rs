//! Several workers copy a table's key range in chunks, and several tables at
//! once, on every engine pair: a text-and-integer key (cut at text
//! boundaries), 4-byte UTF-8, NULLs; every row arrives once, exactly. Replay
//! spreads large batches over the same workers' connections.

use ferry_core::{DataType, Value};
use ferry_testkit::{engine_matrix, fixtures::literal, spec, Kind, TestDb, Workspace};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const ORDERS: usize = 3_000;
const NOTES: usize = 1_500;

async fn fill(db: &TestDb) {
    let text = "varchar(60)";
    db.exec(&format!(
        "CREATE TABLE orders (region {text} NOT NULL, seq integer NOT NULL, note {text}, qty integer, \
         PRIMARY KEY (region, seq))"
    ))
    .await;
    db.exec(&format!("CREATE TABLE notes (id bigint PRIMARY KEY, body {text} NOT NULL)")).await;
    let regions = ["eu-north", "eu-west", "us-east", "Zürich", "ap-south", "🚀-launch"];
    let mut values = Vec::new();
    for i in 0..ORDERS {
        let region = literal(db.kind, &Value::Text(regions[i % regions.len()].to_string()));
        let note =
            if i % 7 == 0 { "NULL".to_string() } else { literal(db.kind, &Value::Text(format!("order {i} 🚀✓"))) };
        values.push(format!("({region}, {i}, {note}, {})", i % 13));
        if values.len() == 500 || i + 1 == ORDERS {
            db.exec(&format!("INSERT INTO orders (region, seq, note, qty) VALUES {}", values.join(", "))).await;
            values.clear();
        }
    }
    for i in 1..=NOTES {
        let body = literal(db.kind, &Value::Text(format!("note {i} — ✓")));
        values.push(format!("({i}, {body})"));
        if values.len() == 500 || i == NOTES {
            db.exec(&format!("INSERT INTO notes (id, body) VALUES {}", values.join(", "))).await;
            values.clear();
        }
    }
}

/// A filled source, an empty target, and a spec moving both tables under `policy`.
async fn both_tables(source: Kind, target: Kind, policy: &str) -> (TestDb, TestDb, Workspace) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    fill(&src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(
        &src,
        &dst,
        &format!("[policy]\n{policy}\n[[table]]\nfrom = \"orders\"\n\n[[table]]\nfrom = \"notes\"\n"),
    ));
    (src, dst, ws)
}

async fn copied_by_workers(source: Kind, target: Kind) {
    let (src, dst, ws) = both_tables(source, target, "workers = 3\nbatch_size = 100\nchunk_time = \"0\"\n").await;
    let ran = ws.run(&["run"]);
    ran.assert_code(0);

    let status = ws.status_json();
    assert_eq!(status["verification"], "pass", "{status:#}\n{ran}");
    let orders = &status["tables"][0];
    // Into SQLite one worker writes (its writers wait for each other): one chunk.
    let chunks = if target == Kind::Sqlite { 1 } else { 6 };
    assert_eq!(orders["chunks"], chunks, "{status:#}");
    assert_eq!(orders["chunks_done"], chunks, "{status:#}");
    assert_eq!(orders["rows_copied"], ORDERS, "each row copied once: {status:#}");
    assert_eq!(status["tables"][1]["rows_copied"], NOTES, "{status:#}");

    // An independent comparison, row for row.
    let text = DataType::Text { max_chars: None };
    let types = [text.clone(), DataType::Int64, text.clone(), DataType::Int64];
    let columns = ["region", "seq", "note", "qty"];
    let a = src.rows("orders", &["region", "seq"], &columns, &types).await;
    let b = dst.rows("orders", &["region", "seq"], &columns, &types).await;
    assert_eq!(a.len(), ORDERS);
    assert!(a == b, "orders differ between source and target");
    let types = [DataType::Int64, text];
    let a = src.rows("notes", &["id"], &["id", "body"], &types).await;
    let b = dst.rows("notes", &["id"], &["id", "body"], &types).await;
    assert!(a.len() == NOTES && a == b, "notes differ between source and target");
    assert!(dst.ferry_objects().await.is_empty(), "ferry_ objects left in the target: {:?}", dst.ferry_objects().await);
}

engine_matrix!(copied_by_workers);

/// Changes made after the copy (updates, deletes and inserts on both
/// tables, thousands of keys) are replayed in batches spread over the
/// workers' connections: the target ends equal to the source.
async fn replayed_by_workers(source: Kind, target: Kind) {
    let (src, dst, ws) = both_tables(source, target, "workers = 3\n").await;
    ws.run(&["run", "--until", "backfill"]).assert_code(0);

    src.exec("UPDATE orders SET qty = qty + 100, note = 'changed ✓' WHERE seq % 2 = 0").await;
    src.exec("DELETE FROM notes WHERE id % 5 = 0").await;
    let added: Vec<String> = (NOTES + 1..=NOTES + 1_200).map(|i| format!("({i}, 'added {i} 🚀')")).collect();
    src.exec(&format!("INSERT INTO notes (id, body) VALUES {}", added.join(", "))).await;

    let ran = ws.run(&["run"]);
    ran.assert_code(0);
    assert_eq!(ws.status_json()["verification"], "pass", "{ran}");
    let text = DataType::Text { max_chars: None };
    let types = [text.clone(), DataType::Int64, text.clone(), DataType::Int64];
    let columns = ["region", "seq", "note", "qty"];
    let a = src.rows("orders", &["region", "seq"], &columns, &types).await;
    assert!(a == dst.rows("orders", &["region", "seq"], &columns, &types).await, "orders differ");
    let types = [DataType::Int64, text];
    let a = src.rows("notes", &["id"], &["id", "body"], &types).await;
    assert_eq!(a.len(), NOTES - NOTES / 5 + 1_200);
    assert!(a == dst.rows("notes", &["id"], &["id", "body"], &types).await, "notes differ");
}

engine_matrix!(replayed_by_workers);

/// Another migration into the same target database keeps its checkpoints in
/// the same table: a migration that finishes its copy removes only its own
/// rows, and leaves the table to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_migrations_checkpoints_are_left_alone() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Postgres).await;
    fill(&src).await;
    dst.exec(&ferry_engine::Checkpoint::create_sql(ferry_engine::sql::POSTGRES)).await;
    dst.exec(
        "INSERT INTO ferry_checkpoint (table_name, chunk, last_key, rows_copied, batches) \
         VALUES ('public.other', 0, '[42]', 42, 1)",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[policy]\nworkers = 2\nbatch_size = 100\n\n[[table]]\nfrom = \"orders\"\n"));
    ws.run(&["run"]).assert_code(0);
    let left = dst.engine().await.query_text("SELECT table_name, rows_copied FROM ferry_checkpoint").await.unwrap();
    assert_eq!(left, vec![vec![Some("public.other".to_string()), Some("42".to_string())]]);
}
