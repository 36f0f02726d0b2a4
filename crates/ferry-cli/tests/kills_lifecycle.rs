//! `kill -9` at random instants during `ferry switch`, `ferry rollback` and
//! `ferry contract`, then the same command again: it finishes, nothing
//! written on the target is lost, and no fence or `ferry_` object is left.

use ferry_testkit::{spec, Kind, TestDb, Workspace};
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const TABLES: usize = 5;

/// Kills `args` at random instants, later and later (from the start-up to
/// the last steps), until one run finishes before its kill; returns how
/// many kills landed.
fn kill_repeatedly(ws: &Workspace, args: &[&str]) -> usize {
    let mut landed = 0;
    for latest in [80, 200, 350, 500, 800, 1200] {
        let mut child = ws.spawn_quiet(args);
        std::thread::sleep(Duration::from_millis(fastrand::u64(latest / 3..latest)));
        let _ = child.kill();
        if child.wait().unwrap().code().is_some() {
            break;
        }
        landed += 1;
    }
    landed
}

/// Runs `args` to the end, waiting out a lock the killed process's server session still holds.
fn finish(ws: &Workspace, args: &[&str], done_state: &str) {
    for _ in 0..40 {
        if ws.status_json()["state"] == done_state {
            return;
        }
        let ran = ws.run(args);
        match ran.code {
            Some(0) => return,
            _ if ran.stderr.contains("lock") => std::thread::sleep(Duration::from_millis(250)),
            _ => panic!("{ran}"),
        }
    }
    panic!("`ferry {}` did not finish", args.join(" "));
}

async fn survives_kills(source: Kind, target: Kind) {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    let mut ddl = String::new();
    let mut tables = String::from("[soak]\nduration = \"0s\"\n\n");
    for t in 0..TABLES {
        let rows: Vec<String> = (1..=100).map(|i| format!("({i}, {})", i * t as i64)).collect();
        ddl.push_str(&format!(
            "CREATE TABLE items{t} (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO items{t} VALUES {};\n",
            rows.join(", ")
        ));
        tables.push_str(&format!("[[table]]\nfrom = \"items{t}\"\n\n"));
    }
    src.exec(&ddl).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, &tables));

    // Switch, killed; writes on the target; rollback, killed: nothing lost, nothing left.
    ws.run(&["run"]).assert_code(0);
    let kills = kill_repeatedly(&ws, &["switch"]);
    finish(&ws, &["switch"], "switched");
    let mut app = dst.session().await;
    for t in 0..TABLES {
        app.exec(&format!("INSERT INTO items{t} (id, n) VALUES (1000, 7)")).await.unwrap();
        app.exec(&format!("UPDATE items{t} SET n = -1 WHERE id = 1")).await.unwrap();
    }
    let kills = kills + kill_repeatedly(&ws, &["rollback"]);
    finish(&ws, &["rollback"], "rolled_back");
    for t in 0..TABLES {
        let engine = src.engine().await;
        let n = engine.scalar(&format!("SELECT n FROM items{t} WHERE id = 1000")).await.unwrap();
        assert_eq!(n.as_deref(), Some("7"), "{source} -> {target}: a target write on items{t} was lost");
        let n = engine.scalar(&format!("SELECT n FROM items{t} WHERE id = 1")).await.unwrap();
        assert_eq!(n.as_deref(), Some("-1"), "{source} -> {target}: a target update on items{t} was lost");
    }
    assert!(src.ferry_objects().await.is_empty(), "{source}: {:?} left (a fence?)", src.ferry_objects().await);
    assert!(dst.ferry_objects().await.is_empty(), "{target}: {:?} left", dst.ferry_objects().await);

    // Again to the end: switch, then contract, killed.
    ws.run(&["run"]).assert_code(0);
    finish(&ws, &["switch"], "switched");
    let kills = kills + kill_repeatedly(&ws, &["contract", "--confirm"]);
    finish(&ws, &["contract", "--confirm"], "completed");
    assert!(src.ferry_objects().await.is_empty(), "{source}: {:?} left", src.ferry_objects().await);
    assert!(dst.ferry_objects().await.is_empty(), "{target}: {:?} left", dst.ferry_objects().await);
    assert_eq!(dst.count("items0").await, 101);
    eprintln!("{source} -> {target}: {kills} kills landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_switch_rollback_contract_survive_kills() {
    survives_kills(Kind::Sqlite, Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_mysql_switch_rollback_contract_survive_kills() {
    survives_kills(Kind::Postgres, Kind::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_to_sqlite_switch_rollback_contract_survive_kills() {
    survives_kills(Kind::Mysql, Kind::Sqlite).await;
}
