//! Servers that restart under a running Ferry: the source mid-backfill, the
//! target mid-sync. Ferry reconnects with backoff, goes on from its
//! checkpoint, and the tables end equal, row for row; a server that stays
//! down past `[policy] reconnect_for` is an exit-2 error naming it.

use ferry_core::DataType;
use ferry_testkit::{spec, Kind, LogicalPostgres, PrivateMariadb, TestDb, Workspace};
use std::process::Stdio;
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const ROWS: i64 = 40_000;
/// Small batches with a pause: the backfill takes a few seconds, time enough to restart a server.
const SLOW: &str =
    "[policy]\nbatch_size = 500\nchunk_time = \"0\"\nbatch_pause = \"30ms\"\n\n[[table]]\nfrom = \"items\"\n";

async fn fill(db: &TestDb) {
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY, name varchar(40) NOT NULL, qty integer)").await;
    let select = match db.kind {
        Kind::Postgres => format!("SELECT g, 'item ' || g, g % 7 FROM generate_series(1, {ROWS}) g"),
        _ => format!(
            "WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c WHERE g < {ROWS}) \
             SELECT g, concat('item ', g), g % 7 FROM c"
        ),
    };
    if db.kind == Kind::Mysql {
        db.exec("SET SESSION cte_max_recursion_depth = 1000000").await;
    }
    db.exec(&format!("INSERT INTO items (id, name, qty) {select}")).await;
}

/// Every row of both sides, compared outside Ferry.
async fn assert_equal(src: &TestDb, dst: &TestDb) {
    let types = [DataType::Int64, DataType::Text { max_chars: None }, DataType::Int32];
    let a = src.rows("items", &["id"], &["id", "name", "qty"], &types).await;
    let b = dst.rows("items", &["id"], &["id", "name", "qty"], &types).await;
    assert_eq!(a.len(), b.len(), "row counts differ");
    assert!(a == b, "rows differ");
}

async fn wait_for_rows_copied(ws: &Workspace) {
    for _ in 0..400 {
        let status = ws.status_json();
        if status["tables"][0]["rows_copied"].as_u64().is_some_and(|n| n > 2_000) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the backfill did not start: {:#}", ws.status_json());
}

/// `ferry run` of a slow backfill, started in the background once the source is filled.
async fn slow_run(src: &TestDb, dst: &TestDb) -> (Workspace, std::process::Child) {
    fill(src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(src, dst, SLOW));
    let run = ws.command(&["run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_rows_copied(&ws).await;
    (ws, run)
}

/// A run that went on through a restart: exit 0, the retries logged, the rows equal.
async fn assert_survived(run: std::process::Child, src: &TestDb, dst: &TestDb) {
    let (code, stderr) = finish(run);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("reconnecting in"), "each retry is logged:\n{stderr}");
    assert_equal(src, dst).await;
}

fn finish(child: std::process::Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_postgres_restarts_mid_backfill() {
    let mut server = LogicalPostgres::start();
    let src = TestDb::on(Kind::Postgres, &server.server()).await;
    let dst = TestDb::new(Kind::Mysql).await;
    let (_ws, run) = slow_run(&src, &dst).await;
    server.restart(Duration::from_millis(1500));
    assert_survived(run, &src, &dst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_mariadb_restarts_mid_backfill_and_mid_sync() {
    let mut server = PrivateMariadb::start(31);
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::on(Kind::Mysql, &server.server()).await;
    let (ws, run) = slow_run(&src, &dst).await;
    server.restart(Duration::from_millis(1500));
    assert_survived(run, &src, &dst).await;

    // Mid-sync: writes go on while the target is down; the follower waits
    // (its pool opens new connections, or it opens the migration again) and catches up.
    let follow = ws.command(&["sync", "--follow"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    src.exec("UPDATE items SET qty = qty + 100 WHERE id <= 300").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart(Duration::from_millis(1500));
    src.exec("DELETE FROM items WHERE id > 39900; UPDATE items SET name = 'renamed' WHERE id % 1000 = 0").await;
    let caught_up = caught_up(&ws, &dst, (ROWS - 100) as u64).await;
    let _ = std::process::Command::new("kill").args(["-TERM", &follow.id().to_string()]).status();
    let (code, stderr) = finish(follow);
    assert!(caught_up, "the follower caught up after the restart:\n{stderr}");
    assert_eq!(code, Some(130), "stopped as asked:\n{stderr}");
    assert_equal(&src, &dst).await;
    ws.run(&["verify"]).assert_code(0);
}

/// A target PostgreSQL that crashes mid-backfill (an immediate stop, as
/// `pg_ctl stop -m immediate` does) loses the commits whose WAL was still in
/// memory: the backfill's commits do not wait for the disk, and each carries
/// its batch's checkpoint, so rows and checkpoints are lost together. The
/// resumed run takes the target's checkpoint over the state store's, copies
/// the lost rows again, and the tables end equal, row for row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_postgres_crash_loses_commits_and_the_copy_redoes_them() {
    // WAL stays in memory for seconds (no write before 10 s or 64 MB), so
    // the crash loses every commit since the copy's first one was flushed.
    let mut server = LogicalPostgres::start_with_settings(&[
        "wal_buffers=16MB",
        "wal_writer_delay=10s",
        "wal_writer_flush_after=64MB",
    ]);
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::on(Kind::Postgres, &server.server()).await;
    let (ws, run) = slow_run(&src, &dst).await;
    let recorded = ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap();
    server.restart(Duration::from_millis(500));
    assert_survived(run, &src, &dst).await;

    // One line per chunk whose checkpoint the resume took from the target.
    let audit = ws.audit_log();
    let followed: Vec<&str> = audit.lines().filter_map(|l| l.split("checkpoint-followed: ").nth(1)).collect();
    let sum = |name: &str| -> u64 {
        followed
            .iter()
            .map(|line| {
                let at = line.split(&format!("{name}=")).nth(1).unwrap();
                at.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse::<u64>().unwrap()
            })
            .sum()
    };
    assert!(
        !followed.is_empty() && sum("target_rows") < sum("recorded_rows"),
        "the crash lost rows the state store had recorded ({recorded} before the crash), and the copy \
         went back to the target's checkpoints:\n{audit}"
    );
    let state = ws.status_json();
    assert_eq!(state["tables"][0]["rows_copied"].as_u64(), Some(ROWS as u64), "{state:#}");
    assert!(
        !dst.engine().await.table_exists(&ferry_core::TableName::parse("ferry_checkpoint")).await.unwrap(),
        "the checkpoints go once the copy is done"
    );
}

/// Whether replay caught up (nothing pending, `rows` on the target) within 30 s.
async fn caught_up(ws: &Workspace, dst: &TestDb, rows: u64) -> bool {
    for _ in 0..300 {
        let status = ws.status_json();
        let pending = status["tables"][0]["capture"]["pending_changes"].as_u64();
        if pending == Some(0) && dst.count("items").await == rows {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `ferry run --follow` that loses its target while following goes on as
/// `ferry sync --follow` does: it reconnects and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follow_survives_a_target_restart_while_following() {
    let server = PrivateMariadb::start(32);
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::on(Kind::Mysql, &server.server()).await;
    fill(&src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"items\"\n"));
    let follow = ws.command(&["run", "--follow"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    for _ in 0..300 {
        if ws.status_json()["verification"] == "pass" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ws.status_json()["verification"], "pass", "the run verified and follows");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Changes arrive while the target is down: the follower meets the closed port.
    let restarting = std::thread::spawn(move || {
        let mut server = server;
        server.restart(Duration::from_millis(2500));
        server
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    src.exec("DELETE FROM items WHERE id > 39950; UPDATE items SET qty = -1 WHERE id <= 10").await;
    let _server = restarting.join().unwrap();
    let caught_up = caught_up(&ws, &dst, (ROWS - 50) as u64).await;
    let _ = std::process::Command::new("kill").args(["-TERM", &follow.id().to_string()]).status();
    let (code, stderr) = finish(follow);
    assert!(caught_up, "the follower caught up after the restart:\n{stderr}");
    assert!(stderr.contains("following again"), "{stderr}");
    assert_eq!(code, Some(130), "stopped as asked:\n{stderr}");
    assert_equal(&src, &dst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stays_down_is_an_error_after_reconnect_for() {
    let server = LogicalPostgres::start();
    let src = TestDb::on(Kind::Postgres, &server.server()).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    fill(&src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, &SLOW.replacen("[policy]\n", "[policy]\nreconnect_for = \"2s\"\n", 1)));
    let run = ws.command(&["run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_rows_copied(&ws).await;
    drop(server);
    let (code, stderr) = finish(run);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("gave up reconnecting") && stderr.contains("reconnect_for"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:"), "the server is named:\n{stderr}");
}

/// A spec whose source is asked whether it answers after 1 s of any
/// statement, and given 2 s to connect.
fn watched_spec(src: &TestDb, dst: &TestDb, tables: &str) -> String {
    spec(src, dst, &tables.replacen("[policy]\n", "[policy]\nliveness_check = \"1s\"\n", 1)).replacen(
        &src.url,
        &format!("{}?connect_timeout=2", src.url),
        1,
    )
}

/// A source that freezes mid-backfill (every server process stopped: open
/// connections hang, new ones get no handshake) is found by the liveness
/// check, reconnected to once it thaws, and the copy ends equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_source_is_found_and_waited_for_mid_backfill() {
    let server = LogicalPostgres::start();
    let src = TestDb::on(Kind::Postgres, &server.server()).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    fill(&src).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&watched_spec(&src, &dst, SLOW));
    let run = ws.command(&["run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_rows_copied(&ws).await;
    server.freeze(Duration::from_secs(5));
    let (code, stderr) = finish(run);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("stopped answering") && stderr.contains("reconnecting in"), "{stderr}");
    assert_equal(&src, &dst).await;
}

/// `ferry verify` waits for a long statement of a server that answers (a
/// check sleeping 4 s under a 1 s liveness check is not cut short), and
/// survives the server freezing under it: it reconnects and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_waits_for_a_long_check_and_survives_a_frozen_server() {
    let server = LogicalPostgres::start();
    let src = TestDb::on(Kind::Postgres, &server.server()).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    fill(&src).await;
    let ws = Workspace::new(FERRY);
    let check =
        "[[check]]\nname = \"slow\"\non = \"source\"\nsql = \"SELECT 1 FROM (SELECT pg_sleep(4)) s\"\nexpect = 1\n\n";
    ws.write_spec(&watched_spec(&src, &dst, &format!("{check}{SLOW}")));
    let ran = ws.run(&["run"]);
    ran.assert_code(0);
    assert!(!ran.stderr.contains("stopped answering"), "a server that answers is waited for:\n{ran}");

    let verify = ws.command(&["verify"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let sleeping = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE '%pg_sleep(4)%' AND pid <> pg_backend_pid()",
        src.name
    );
    let mut seen = false;
    for _ in 0..200 {
        if server.psql("postgres", &sleeping) != "0" {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "verify reached the check");
    server.freeze(Duration::from_secs(5));
    let (code, stderr) = finish(verify);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("stopped answering") && stderr.contains("reconnecting in"), "{stderr}");
}
