//! One migration copied by several processes that share a PostgreSQL state
//! store (`[state] url = "postgres://…"`): `ferry run --worker` beside the
//! runner; a killed worker's chunks are taken over, a killed runner's lock
//! passes to the next `ferry run`, and the target ends equal to the source,
//! every batch recorded once.

use ferry_core::{DataType, Value};
use ferry_testkit::{fixtures::literal, spec, wait_until, Kind, TestDb, Workspace};
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const ROWS: i64 = 24_000;
const BATCH: i64 = 200;
const CHUNKS: i64 = 16;

async fn fill(db: &TestDb) {
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY, name varchar(100) NOT NULL, note text)").await;
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(4000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                let name = literal(db.kind, &Value::Text(format!("item {i} — 🚀")));
                let note = if i % 9 == 0 { "NULL".into() } else { format!("'n{i}'") };
                format!("({i}, {name}, {note})")
            })
            .collect();
        db.exec(&format!("INSERT INTO items (id, name, note) VALUES {}", values.join(", "))).await;
    }
}

/// Source, target and state store on PostgreSQL; on a shared store the
/// table is cut for 8 workers at least: 16 chunks of 1,500 rows (8 batches
/// each), two workers per process, paced so that the copy lasts long enough
/// to be killed in.
async fn setup() -> (TestDb, TestDb, TestDb, Workspace) {
    let (src, dst, state) =
        (TestDb::new(Kind::Postgres).await, TestDb::new(Kind::Postgres).await, TestDb::new(Kind::Postgres).await);
    fill(&src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(
        &src,
        &dst,
        &format!(
            "[state]\nurl = \"{}\"\n\n[policy]\nbatch_size = {BATCH}\nbatch_pause = \"100ms\"\nchunk_time = \"0\"\n\
             workers = 2\n\n[[table]]\nfrom = \"items\"\n",
            state.url
        ),
    ));
    (src, dst, state, ws)
}

/// Starts `ferry ARGS` in the background, its output kept in a file of the workspace.
fn spawn_logged(ws: &Workspace, args: &[&str], log: &str) -> std::process::Child {
    ws.command(args)
        .stdout(std::fs::File::create(ws.path().join(log)).unwrap())
        .stderr(std::fs::File::create(ws.path().join(format!("{log}.err"))).unwrap())
        .spawn()
        .unwrap()
}

/// What a process started by `spawn_logged` printed, for assertion messages.
fn logged(ws: &Workspace, log: &str) -> String {
    let read = |name: &str| std::fs::read_to_string(ws.path().join(name)).unwrap_or_default();
    format!("--- {log} stdout ---\n{}\n--- stderr ---\n{}", read(log), read(&format!("{log}.err")))
}

fn worker_holding_a_chunk(ws: &Workspace, command: &str) -> bool {
    let status = ws.status_json();
    status["workers"].as_array().is_some_and(|workers| {
        workers.iter().any(|w| w["command"] == command && w["chunks"].as_array().is_some_and(|c| !c.is_empty()))
    })
}

async fn assert_copied_once(src: &TestDb, dst: &TestDb, ws: &Workspace) {
    let status = ws.status_json();
    let table = &status["tables"][0];
    assert_eq!(table["chunks"], CHUNKS, "{status:#}");
    assert_eq!(table["chunks_done"], CHUNKS, "{status:#}");
    assert_eq!(table["rows_copied"].as_u64(), Some(ROWS as u64), "{status:#}");
    // A chunk taken over is continued from the target's checkpoint: every batch recorded once.
    let per_chunk = ((ROWS / CHUNKS) as u64).div_ceil(BATCH as u64);
    assert_eq!(table["batches"].as_u64(), Some(CHUNKS as u64 * per_chunk), "{status:#}");
    assert_eq!(status["verification"], "pass", "{status:#}");
    // An independent comparison, not Ferry's checksum.
    let (columns, types) = (["id", "name", "note"], [DataType::Int64, DataType::text(), DataType::text()]);
    let a = src.rows("items", &["id"], &columns, &types).await;
    let b = dst.rows("items", &["id"], &columns, &types).await;
    assert_eq!(a.len(), ROWS as usize);
    assert!(a == b, "source and target differ");
    ws.run(&["audit", "verify"]).assert_code(0);
    assert!(dst.ferry_objects().await.is_empty(), "ferry_ objects left in the target: {:?}", dst.ferry_objects().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_chunks_are_taken_over() {
    let (src, dst, _state, ws) = setup().await;
    let runner = ws.run_beside(&["run"]);
    let mut worker = spawn_logged(&ws, &["run", "--worker"], "worker.out");
    wait_until("the worker to hold a chunk", Duration::from_secs(60), || worker_holding_a_chunk(&ws, "run --worker"));
    std::thread::sleep(Duration::from_millis(300));
    worker.kill().unwrap(); // SIGKILL: no chance to give its chunks back
    assert!(
        worker.wait().unwrap().code().is_none(),
        "the worker ended before it was killed\n{}",
        logged(&ws, "worker.out")
    );

    let ran = runner.await.unwrap();
    ran.assert_code(0);
    let status = ws.status_json();
    let workers = status["workers"].as_array().unwrap();
    let killed = workers.iter().find(|w| w["command"] == "run --worker").expect("the worker is listed");
    assert_eq!(killed["running"], false, "{status:#}");
    assert!(killed["exited_at"].is_null(), "a killed worker says no goodbye: {status:#}");
    assert!(workers.iter().any(|w| w["command"] == "run"), "the runner copied too: {status:#}");
    assert_copied_once(&src, &dst, &ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runner_s_lock_passes_to_the_next_run_while_a_worker_copies() {
    let (src, dst, _state, ws) = setup().await;
    let mut first = spawn_logged(&ws, &["run"], "first.out");
    let worker = ws.run_beside(&["run", "--worker"]);
    wait_until("the runner to hold a chunk", Duration::from_secs(60), || worker_holding_a_chunk(&ws, "run"));
    // One runner at a time: the lock is the state store's, seen from any machine.
    let refused = ws.run(&["run"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("another ferry process is running this migration"), "{refused}");

    first.kill().unwrap();
    assert!(
        first.wait().unwrap().code().is_none(),
        "the runner ended before it was killed\n{}",
        logged(&ws, "first.out")
    );
    // The server released the dead runner's lock with its session: the next run takes over.
    let second = ws.run(&["run"]);
    second.assert_code(0);
    let worked = worker.await.unwrap();
    worked.assert_code(0);
    assert!(worked.stdout.contains("worker done: copied"), "{worked}");
    assert_copied_once(&src, &dst, &ws).await;
    let audit = ws.audit_log();
    assert_eq!(audit.matches("phase-started: phase=2 \"backfill\"").count(), 1, "one backfill across runners\n{audit}");
}
