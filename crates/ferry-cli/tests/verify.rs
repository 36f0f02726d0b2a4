//! `ferry verify`: repair of injected differences, a verification killed
//! midway that continues where it stopped, integrity checks (orphans, NULLs,
//! duplicates, custom assertions) and the integrity reports.

use ferry_testkit::{engine_matrix, rusqlite, spec, Kind, TestDb, Workspace};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn report_json(ws: &Workspace) -> serde_json::Value {
    let text = std::fs::read_to_string(ws.path().join("integrity_report.json")).expect("integrity_report.json written");
    serde_json::from_str(&text).expect("integrity_report.json is JSON")
}

async fn repair(source_kind: Kind, target_kind: Kind) {
    let (source, target) = (TestDb::new(source_kind).await, TestDb::new(target_kind).await);
    let rows: Vec<String> = (1..=300).map(|i| format!("({i}, 'item {i}', {i}.50)")).collect();
    source.exec("CREATE TABLE items (id int PRIMARY KEY, name varchar(50) NOT NULL, price numeric(10,2))").await;
    source.exec(&format!("INSERT INTO items VALUES {}", rows.join(", "))).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&source, &target, "[[table]]\nfrom = \"items\"\n\n[policy]\nverify_chunk_rows = 64\n"));
    ws.run(&["run"]).assert_code(0);

    target.exec("DELETE FROM items WHERE id = 7; UPDATE items SET price = 0 WHERE id = 150; INSERT INTO items VALUES (999, 'stray', 1)").await;
    let found = ws.run(&["verify"]);
    found.assert_code(1);
    let report = report_json(&ws);
    assert_eq!(report["passed"], false);
    assert_eq!(report["totals"]["differences"]["missing"], 1, "{report:#}");
    assert_eq!(report["totals"]["differences"]["extra"], 1, "{report:#}");
    assert_eq!(report["totals"]["differences"]["mismatched"], 1, "{report:#}");
    let markdown = std::fs::read_to_string(ws.path().join("integrity_report.md")).unwrap();
    assert!(markdown.contains("| items | mismatched | `id=150` | price | `150.50` | `0.00` |"), "{markdown}");
    assert!(
        found.stdout.contains("integrity-check: phase=4, rows_expected=300, rows_actual=300, checksum=fail"),
        "{found}"
    );

    let repaired = ws.run(&["verify", "--repair"]);
    repaired.assert_code(0);
    assert!(
        repaired.stderr.contains("repaired items: 2 row(s) re-copied from the source, 1 deleted, 0 still different"),
        "{repaired}"
    );
    // Every figure shown and recorded is measured after the repair.
    assert!(repaired.stdout.contains("rows_expected=300, rows_actual=300, checksum=pass"), "{repaired}");
    let report = report_json(&ws);
    assert_eq!(report["repairs"][0]["differences"], 3, "{report:#}");
    assert_eq!(report["tables"][0]["checksum_match"], true, "{report:#}");
    assert_eq!(ws.status_json()["tables"][0]["verification"]["checksum_match"], true);
    assert!(
        ws.audit_log().contains("rows-repaired: table=items, upserted=2, deleted=1, still_different=0"),
        "{}",
        ws.audit_log()
    );

    let clean = ws.run(&["verify"]);
    clean.assert_code(0);
    assert!(
        clean.stdout.contains("integrity-check: phase=4, rows_expected=300, rows_actual=300, checksum=pass"),
        "{clean}"
    );
    assert_eq!(target.count("items").await, 300);
}
engine_matrix!(repair);

fn checkpoints(state: &std::path::Path) -> i64 {
    let Ok(conn) = rusqlite::Connection::open_with_flags(state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return 0;
    };
    let _ = conn.busy_timeout(Duration::from_millis(50));
    conn.query_row("SELECT count(*) FROM verify_checkpoints", [], |r| r.get(0)).unwrap_or(0)
}

/// A `ferry verify` killed after some chunks (SIGKILL), or asked to stop
/// (SIGTERM: it stops at the next chunk, exit 130), continues from its checkpoint.
async fn killed_verify_resumes(source_kind: Kind, target_kind: Kind, signal: &str) {
    let (source, target) = (TestDb::new(source_kind).await, TestDb::new(target_kind).await);
    source.exec("CREATE TABLE seq (id int PRIMARY KEY, v varchar(20))").await;
    for start in (0..20_000).step_by(5_000) {
        let rows: Vec<String> = (start + 1..=start + 5_000).map(|i| format!("({i}, 'v{i}')")).collect();
        source.exec(&format!("INSERT INTO seq VALUES {}", rows.join(", "))).await;
    }
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&source, &target, "[[table]]\nfrom = \"seq\"\n\n[policy]\nverify_chunk_rows = 40\n"));
    ws.run(&["run"]).assert_code(0);
    target.exec("UPDATE seq SET v = 'changed' WHERE id = 19999").await;

    let state = ws.path().join(".ferry/ferry/state.db");
    let mut child = ws.spawn_quiet(&["verify"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoints(&state) == 0 {
        assert!(Instant::now() < deadline, "no verification checkpoint was written");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("verify finished ({status}) before it could be killed; make the table larger");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("reap");
    if signal == "-TERM" {
        assert_eq!(status.code(), Some(130), "SIGTERM stops verify at a chunk boundary with exit 130");
        assert_eq!(checkpoints(&state), 1, "the checkpoint is kept");
    }

    let resumed = ws.run(&["verify"]);
    resumed.assert_code(1);
    assert!(resumed.stderr.contains("continuing the verification of seq"), "{resumed}");
    let report = report_json(&ws);
    let table = &report["tables"][0];
    assert_eq!(table["resumed"], true, "{report:#}");
    assert_eq!(table["rows_source"], 20_000, "{report:#}");
    assert_eq!(table["counts"]["mismatched"], 1, "{report:#}");
    assert_eq!(table["differences"][0]["key"], "id=19999", "{report:#}");
    assert_eq!(checkpoints(&state), 0, "a finished verification leaves no checkpoint");

    let again = ws.run(&["verify", "--restart"]);
    again.assert_code(1);
    assert!(!again.stderr.contains("continuing"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_verify_resumes_postgres_to_postgres() {
    killed_verify_resumes(Kind::Postgres, Kind::Postgres, "-KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_verify_resumes_mysql_to_sqlite() {
    killed_verify_resumes(Kind::Mysql, Kind::Sqlite, "-KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_verify_resumes_sqlite_to_postgres() {
    killed_verify_resumes(Kind::Sqlite, Kind::Postgres, "-TERM").await;
}

/// A target loaded into tables that enforce less than the migration's
/// definition: every kind of violation is found and named.
async fn integrity_violations(target_kind: Kind) {
    let (source, target) = (TestDb::new(Kind::Sqlite).await, TestDb::new(target_kind).await);
    source
        .exec(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);
             CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id), total NUMERIC(10,2) NOT NULL);
             INSERT INTO customers VALUES (1, 'a@x'), (2, 'b@x'), (3, 'c@x');
             INSERT INTO orders VALUES (1, 1, 10.00), (2, 1, 20.00), (3, 2, 30.00), (4, 3, 40.00), (5, NULL, 50.00);",
        )
        .await;
    // The target's tables exist already, without the constraints.
    let text = if target_kind == Kind::Mysql { "longtext" } else { "text" };
    target
        .exec(&format!(
            "CREATE TABLE customers (id bigint PRIMARY KEY, email {text});
             CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, total numeric(10,2));"
        ))
        .await;
    let checks = r#"
[[check]]
name = "no order above 1000"
sql = "SELECT COUNT(*) FROM orders WHERE total > 1000"

[[check]]
name = "the source has five orders"
on = "source"
sql = "SELECT COUNT(*) FROM orders"
expect = 5
"#;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(
        &source,
        &target,
        &format!("[[table]]\nfrom = \"customers\"\n\n[[table]]\nfrom = \"orders\"\n{checks}"),
    ));
    let ran = ws.run(&["run"]);
    ran.assert_code(0);

    target
        .exec(
            "DELETE FROM customers WHERE id = 3;
             INSERT INTO customers VALUES (4, 'a@x');
             UPDATE orders SET total = NULL WHERE id = 1;
             UPDATE orders SET total = 5000 WHERE id = 2;",
        )
        .await;
    let ran = ws.run(&["verify"]);
    ran.assert_code(1);
    let report = report_json(&ws);
    let failed: Vec<(String, String, i64)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| {
            (c["kind"].as_str().unwrap().into(), c["name"].as_str().unwrap().into(), c["actual"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            ("unique".to_string(), "customers: (email) is unique".to_string(), 1),
            ("orphans".to_string(), "orders: every customer_id has its customers row".to_string(), 1),
            ("not_null".to_string(), "orders: no NULL in id, total".to_string(), 1),
            ("custom".to_string(), "no order above 1000".to_string(), 1),
        ],
        "{report:#}"
    );
    let passed = report["checks"].as_array().unwrap().iter().filter(|c| c["passed"] == true).count();
    assert!(passed >= 4, "the other checks, the source's custom one included, pass: {report:#}");
    for needle in [
        "FAIL  orders: every customer_id has its customers row: expected 0, got 1",
        "FAIL  no order above 1000: expected 0, got 1",
    ] {
        assert!(ran.stdout.contains(needle), "{needle}\n{ran}");
    }
    assert!(
        ws.audit_log().contains("check-run: name=no order above 1000, expected=0, actual=1, result=fail"),
        "{}",
        ws.audit_log()
    );
    let markdown = std::fs::read_to_string(ws.path().join("integrity_report.md")).unwrap();
    assert!(markdown.contains("| no order above 1000 | custom | target | 0 | 1 | **fail** |"), "{markdown}");

    // A check whose SQL is wrong fails with the database's message.
    let broken = "[[check]]\nname = \"broken\"\nsql = \"SELECT nonsense FROM nowhere\"\n";
    ws.write_spec(&spec(
        &source,
        &target,
        &format!("[[table]]\nfrom = \"customers\"\n\n[[table]]\nfrom = \"orders\"\n{broken}"),
    ));
    let ran = ws.run(&["verify"]);
    ran.assert_code(1);
    assert!(ran.stdout.contains("FAIL  broken: ") && ran.stdout.contains("nowhere"), "{ran}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_violations_sqlite() {
    integrity_violations(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_violations_postgres() {
    integrity_violations(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_violations_mysql() {
    integrity_violations(Kind::Mysql).await;
}

/// Verification while the application writes tells one truth: the console,
/// the audit log, the report and the state store agree on the checksum
/// verdict, and rows written during the comparison are named as settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_under_writes_tells_one_truth() {
    let (source, target) = (TestDb::new(Kind::Postgres).await, TestDb::new(Kind::Mysql).await);
    source.exec("CREATE TABLE seq (id int PRIMARY KEY, v varchar(20))").await;
    for start in (0..40_000).step_by(10_000) {
        let rows: Vec<String> = (start + 1..=start + 10_000).map(|i| format!("({i}, 'v{i}')")).collect();
        source.exec(&format!("INSERT INTO seq VALUES {}", rows.join(", "))).await;
    }
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&source, &target, "[[table]]\nfrom = \"seq\"\n\n[policy]\nverify_chunk_rows = 2000\n"));
    ws.run(&["run"]).assert_code(0);

    // Every key is written once: a row written during the comparison settles after replay.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let stop = stop.clone();
        let mut app = source.session().await;
        async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                app.exec(&format!("INSERT INTO seq VALUES ({}, 'new')", 100_000 + i)).await.unwrap();
                app.exec(&format!("UPDATE seq SET v = 'changed' WHERE id = {}", i * 7)).await.unwrap();
            }
            i
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let verified = tokio::task::spawn_blocking({
        let dir = ws.path().to_path_buf();
        move || std::process::Command::new(FERRY).arg("verify").current_dir(dir).output().unwrap()
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writer.await.unwrap();
    let stdout = String::from_utf8_lossy(&verified.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert_eq!(verified.status.code(), Some(0), "{writes} writes during it\n{stdout}{stderr}");

    let report = report_json(&ws);
    let table = &report["tables"][0];
    let equal = table["checksum_match"].as_bool().unwrap();
    assert!(equal, "a passing verification has equal checksums: {table:#}");
    assert!(stdout.contains("checksum equal"), "{stdout}");
    let audit = ws.audit_log();
    let line = audit.lines().rev().find(|l| l.contains("integrity-check: ")).unwrap();
    assert!(line.contains("checksum=pass"), "{line}");
    let recorded = &ws.status_json()["tables"][0]["verification"];
    assert_eq!(recorded["checksum_match"], true, "{recorded:#}");
    assert_eq!(recorded["passed"], true, "{recorded:#}");
    let settled = table["settled_rows"].as_u64().unwrap();
    if settled > 0 {
        assert!(line.contains(&format!("settled={settled}")), "{line}");
        assert!(stdout.contains("matched once replay caught up"), "{stdout}");
    }
    eprintln!("{writes} writes during the verification, {settled} rows settled");
}
