//! Throttling: the backfill waits while the source is slow or an operator
//! asks, and `ferry status` and the audit log say why.

use ferry_testkit::{spec, Kind, PrivateMariadb, TestDb, Workspace};
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

async fn source_with_rows(kind: Kind) -> TestDb {
    let db = TestDb::new(kind).await;
    db.exec("CREATE TABLE t (id integer PRIMARY KEY, v varchar(20))").await;
    let values: Vec<String> = (1..=2000).map(|i| format!("({i}, 'v{i}')")).collect();
    db.exec(&format!("INSERT INTO t VALUES {}", values.join(", "))).await;
    db
}

async fn wait_for<F: Fn(&serde_json::Value) -> bool>(ws: &Workspace, what: &str, check: F) -> serde_json::Value {
    for _ in 0..200 {
        let status = ws.status_json();
        if check(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}: {:#}", ws.status_json());
}

/// An artificially slow latency probe pauses the backfill, and the status says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_source_pauses_the_backfill() {
    for (kind, slow) in [(Kind::Postgres, "SELECT pg_sleep(0.2)"), (Kind::Mysql, "SELECT SLEEP(0.2)")] {
        let src = source_with_rows(kind).await;
        let dst = TestDb::new(Kind::Sqlite).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(
            &src,
            &dst,
            &format!("[policy]\nbatch_size = 100\nlatency_probe = \"{slow}\"\nmax_probe_latency = \"50ms\"\n\n[[table]]\nfrom = \"t\"\n"),
        ));
        let mut child = ws.spawn_quiet(&["run"]);
        let status = wait_for(&ws, "a throttle pause", |s| s["pauses"].as_array().is_some_and(|p| !p.is_empty())).await;
        let pause = &status["pauses"][0];
        assert_eq!(pause["by"], "throttle", "{status:#}");
        assert!(pause["reason"].as_str().unwrap().contains("latency probe"), "{status:#}");
        let copied = status["tables"][0]["rows_copied"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap_or(0),
            copied,
            "{kind}: nothing is copied while paused"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(ws.audit_log().contains("throttle-paused: reason=source latency probe took"), "{}", ws.audit_log());
    }
}

/// `ferry pause` holds a run before its next batch; `ferry resume` lets it finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pauses_and_resumes() {
    let src = source_with_rows(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[policy]\nbatch_size = 100\nchunk_time = \"0\"\n\n[[table]]\nfrom = \"t\"\n"));
    ws.run(&["pause", "--reason", "peak hours"]).assert_code(0);
    let mut command = ws.command(&["run"]);
    let run = tokio::task::spawn_blocking(move || command.output().unwrap());
    let status = wait_for(&ws, "the pause to hold the run", |s| s["phase"] == "backfill").await;
    assert_eq!(status["pauses"][0]["by"], "operator", "{status:#}");
    assert_eq!(status["pauses"][0]["reason"], "peak hours");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ws.status_json()["tables"][0]["rows_copied"], 0, "held before the first batch");
    let human = ws.run(&["status"]);
    assert!(human.stdout.contains("PAUSED by operator"), "{human}");
    ws.run(&["resume"]).assert_code(0);
    let out = run.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dst.count("t").await, 2000);
    assert!(ws.status_json()["pauses"].as_array().unwrap().is_empty());
}

/// The batch size follows the target chunk time instead of staying fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_adapt_to_the_chunk_time() {
    let src = source_with_rows(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Postgres).await;
    let ws = Workspace::new(FERRY);
    // Tiny batches that take far less than 500 ms grow, so 2000 rows need far fewer than 20 batches
    // (one worker: several would each start small on a chunk of their own).
    ws.write_spec(&spec(&src, &dst, "[policy]\nbatch_size = 100\nworkers = 1\n\n[[table]]\nfrom = \"t\"\n"));
    ws.run(&["run"]).assert_code(0);
    let batches = ws.status_json()["tables"][0]["batches"].as_u64().unwrap();
    assert!(batches <= 12, "batches grew (20 at a fixed size): {batches}");
}

/// A MySQL/MariaDB replica that stops replicating pauses the backfill, named
/// in the status and the audit log, and the run finishes once it replicates again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_mariadb_replica_pauses_the_backfill() {
    let primary = PrivateMariadb::start(1);
    let replica = PrivateMariadb::start(2);
    replica
        .exec(&format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', MASTER_PASSWORD = '', \
             MASTER_USE_GTID = current_pos; START SLAVE",
            primary.port
        ))
        .await;
    primary.wait_for_replicas(1).await;
    primary.exec("CREATE DATABASE shop").await;
    primary.exec("CREATE TABLE shop.t (id integer PRIMARY KEY, v varchar(20))").await;
    let values: Vec<String> = (1..=2000).map(|i| format!("({i}, 'v{i}')")).collect();
    primary.exec(&format!("INSERT INTO shop.t VALUES {}", values.join(", "))).await;
    replica.exec("STOP SLAVE SQL_THREAD").await;

    let dst = TestDb::new(Kind::Sqlite).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&format!(
        "{}[source]\nurl = \"{}\"\n\n[target]\nurl = \"{}\"\n\n[policy]\nbatch_size = 100\nmax_lag = \"5s\"\nmax_probe_latency = \"10s\"\n\n[[table]]\nfrom = \"t\"\n",
        ferry_testkit::MIGRATION,
        primary.url("shop"),
        dst.url
    ));
    // (`max_probe_latency` is generous: on a loaded machine the latency probe must not pause first.)
    let mut command = ws.command(&["run"]);
    let run = tokio::task::spawn_blocking(move || command.output().unwrap());
    let status = wait_for(&ws, "a replica pause", |s| s["pauses"].as_array().is_some_and(|p| !p.is_empty())).await;
    let reason = status["pauses"][0]["reason"].as_str().unwrap().to_string();
    assert_eq!(reason, format!("replica 127.0.0.1:{} is not replicating", replica.port), "{status:#}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap_or(0), 0, "nothing copied while paused");

    replica.exec("START SLAVE SQL_THREAD").await;
    let out = run.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dst.count("t").await, 2000);
    assert!(ws.audit_log().contains("throttle-paused: reason=replica 127.0.0.1:"), "{}", ws.audit_log());
}

/// The default throttle paces the copy by the load other sessions put on the
/// source, against what it measured before the copy: sessions that start
/// running statements in the source database mid-copy slow the batches down
/// (audited as `throttle-paced`), never stop them, and the copy's own load
/// does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_from_other_sessions_slows_the_copy_down() {
    for kind in [Kind::Postgres, Kind::Mysql] {
        let source = TestDb::new(kind).await;
        source.exec("CREATE TABLE t (id integer PRIMARY KEY, v varchar(20))").await;
        let values: Vec<String> = (1..=20_000).map(|i| format!("({i}, 'v{i}')")).collect();
        source.exec(&format!("INSERT INTO t VALUES {}", values.join(", "))).await;
        let target = TestDb::new(Kind::Postgres).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(
            &source,
            &target,
            "[policy]\nbatch_size = 100\nchunk_time = \"0s\"\nbatch_pause = \"80ms\"\nworkers = 4\n\n\
             [[table]]\nfrom = \"t\"\n",
        ));
        let run = ws.run_beside(&["run"]);
        wait_for(&ws, "the copy to start", |s| s["tables"][0]["rows_copied"].as_u64().unwrap_or(0) > 0).await;
        let sleep = if kind == Kind::Postgres { "SELECT pg_sleep(20)" } else { "SELECT SLEEP(20)" };
        let mut load = Vec::new();
        for _ in 0..8 {
            let mut session = source.session().await;
            load.push(tokio::spawn(async move {
                let _ = session.exec(sleep).await;
            }));
        }
        let status = wait_for(&ws, "the throttle to slow the copy down", |s| !s["pace"].is_null()).await;
        assert!(status["pace"]["delay_ms"].as_u64().unwrap() >= 100, "{status:#}");
        // Slowed, the four workers write two at a time at most.
        assert!(status["pace"]["workers"].as_u64().unwrap() <= 2, "{status:#}");
        assert!(status["pace"]["active_sessions"].as_u64().unwrap() > status["pace"]["baseline"].as_u64().unwrap());
        // Ended from outside: the copy goes on at full speed.
        let stop = if kind == Kind::Postgres {
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' \
             AND datname = current_database()"
        } else {
            "SELECT 1"
        };
        source.exec(stop).await;
        if kind == Kind::Mysql {
            let ids = source
                .engine()
                .await
                .query_text(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%' AND DB = DATABASE()",
                )
                .await
                .unwrap();
            for id in ids.into_iter().flatten().flatten() {
                source.exec(&format!("KILL {id}")).await;
            }
        }
        for l in load {
            let _ = l.await;
        }
        let run = run.await.unwrap();
        run.assert_code(0);
        let audit = ws.audit_log();
        assert!(audit.contains("throttle-paced: active_sessions="), "{kind}: {audit}");
        assert!(!audit.contains("throttle-paused"), "{kind}: slowed down, never paused: {audit}");
        assert!(run.stderr.contains("slowing down"), "{kind}: {run}");
        assert_eq!(target.engine().await.count(&ferry_core::TableName::parse("t"), None).await.unwrap(), 20_000);
    }
}
