//! `kill -9` at random instants, then `ferry run`: the same result, with at
//! most one batch redone per kill and worker (the one each was writing).

use ferry_core::{DataType, TableName};
use ferry_testkit::{fixtures::literal, spec, wait_until, Kind, TestDb, Workspace};
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const ROWS: i64 = 40_000;
const BATCH: i64 = 250;
const KILLS: usize = 6;

async fn fill(db: &TestDb) {
    let numeric = if db.kind == Kind::Sqlite { "NUMERIC(12,2)" } else { "numeric(12,2)" };
    let ts = if db.kind == Kind::Mysql { "datetime(6)" } else { "timestamp" };
    db.exec(&format!(
        "CREATE TABLE items (id bigint PRIMARY KEY, name varchar(100) NOT NULL, amount {numeric}, created {ts})"
    ))
    .await;
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(2000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                let name = literal(db.kind, &ferry_core::Value::Text(format!("item {i} — ✓")));
                let amount = if i % 11 == 0 { "NULL".to_string() } else { format!("{}.{:02}", i * 3, i % 100) };
                format!("({i}, {name}, {amount}, '2024-01-01 00:00:{:02}.{:06}')", i % 60, i * 7 % 1_000_000)
            })
            .collect();
        db.exec(&format!("INSERT INTO items (id, name, amount, created) VALUES {}", values.join(", "))).await;
    }
}

/// Rows of the table the state store says are copied.
fn copied(ws: &Workspace) -> u64 {
    ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap_or(0)
}

async fn killed_and_resumed(source: Kind, target: Kind) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    fill(&src).await;
    let ws = Workspace::new(FERRY);
    // A short pause between batches keeps the backfill long enough to be
    // killed in. Four workers copy eight chunks of 5,000 rows (20 batches
    // each) side by side; into SQLite one worker copies one chunk.
    ws.write_spec(&spec(
        &src,
        &dst,
        &format!(
            "[policy]\nbatch_size = {BATCH}\nbatch_pause = \"40ms\"\nchunk_time = \"0\"\nworkers = 4\n\n\
             [[table]]\nfrom = \"items\"\n"
        ),
    ));

    let mut kills = 0;
    let mut seen_progress = Vec::new();
    while kills < KILLS {
        let before = seen_progress.last().copied().unwrap_or(0);
        let mut child = ws.spawn_quiet(&["run"]);
        // A loaded machine starts the copy late: kill once this run has
        // copied something, at a random instant after.
        wait_until("this run's first batches", Duration::from_secs(60), || copied(&ws) > before);
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..100)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "the run ended before it could be killed (status {status}); the test needs a longer backfill"
        );
        kills += 1;
        seen_progress.push(copied(&ws));
    }
    assert!(
        seen_progress.windows(2).any(|w| w[1] > w[0]) && *seen_progress.last().unwrap() < ROWS as u64,
        "kills should land during the backfill, with progress between them: {seen_progress:?}"
    );

    let ran = ws.run(&["run"]);
    ran.assert_code(0);
    let state = ws.status_json();
    let table = &state["tables"][0];
    let redone = table["batches_redone"].as_u64().unwrap();
    let batches = table["batches"].as_u64().unwrap();
    let (chunks, workers) = if target == Kind::Sqlite { (1, 1) } else { (8, 4) };
    assert_eq!(table["chunks"], chunks, "{state:#}");
    assert!(
        redone <= workers * kills as u64,
        "at most one batch per worker redone per kill: {redone} redone after {kills} kills\n{state:#}"
    );
    // A redone batch is one that was written, or half written, but not
    // recorded before the kill: it is recorded once, when the redo completes.
    assert_eq!(batches, (ROWS / BATCH) as u64, "every batch recorded exactly once\n{state:#}");
    assert_eq!(table["rows_copied"].as_u64().unwrap(), ROWS as u64, "{state:#}");
    assert_eq!(state["verification"], "pass", "{state:#}\n{ran}");

    // An independent full comparison, not Ferry's own checksum.
    let columns = ["id", "name", "amount", "created"];
    let types = [
        DataType::Int64,
        DataType::text(),
        DataType::Decimal { precision: Some(12), scale: Some(2) },
        DataType::Timestamp,
    ];
    let a = src.rows("items", &["id"], &columns, &types).await;
    let b = dst.rows("items", &["id"], &columns, &types).await;
    assert_eq!(a.len(), ROWS as usize);
    assert!(a == b, "source and target differ after resuming");
    assert!(dst.engine().await.introspect(&TableName::parse("items")).await.is_ok());
    let audit = ws.audit_log();
    assert!(audit.contains("backfill-resumed"), "{audit}");
    assert_eq!(
        audit.matches("phase-started: phase=2 \"backfill\"").count(),
        1,
        "one backfill phase across all runs\n{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_survives_kills() {
    killed_and_resumed(Kind::Sqlite, Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_mysql_survives_kills() {
    killed_and_resumed(Kind::Postgres, Kind::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_to_sqlite_survives_kills() {
    killed_and_resumed(Kind::Mysql, Kind::Sqlite).await;
}
