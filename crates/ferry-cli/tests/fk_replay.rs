//! Replay respects the target's foreign keys. With `ferry sync --follow`
//! running, the application inserts a parent and its child in one
//! transaction, and later deletes a child and its parent together; the spec
//! lists the child first. Replay must never stop on an order the source
//! itself accepted, and the copies end equal.

use ferry_testkit::{spec, Kind, TestDb, Workspace};
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn transaction(kind: Kind, statements: &str) -> String {
    match kind {
        Kind::Mysql => format!("START TRANSACTION; {statements} COMMIT;"),
        _ => format!("BEGIN; {statements} COMMIT;"),
    }
}

async fn parent_and_child_in_one_transaction(source: Kind, target: Kind) {
    let pair = format!("{source} -> {target}");
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    src.exec(
        "CREATE TABLE authors (id integer PRIMARY KEY, name varchar(40) NOT NULL);
         CREATE TABLE books (id integer PRIMARY KEY, author_id integer NOT NULL REFERENCES authors (id), title varchar(40));
         INSERT INTO authors VALUES (1, 'first'); INSERT INTO books VALUES (1, 1, 'first book');",
    )
    .await;
    if source == Kind::Sqlite {
        src.exec("PRAGMA journal_mode = WAL").await;
    }
    let ws = Workspace::new(FERRY);
    // The child first: the order a careless spec has.
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"books\"\n\n[[table]]\nfrom = \"authors\"\n"));
    ws.run(&["run"]).assert_code(0);

    // Its output goes to a file, to be shown if it stops.
    let errors = ws.path().join("follow.err");
    let mut follow = ws
        .command(&["sync", "--follow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&errors).unwrap())
        .spawn()
        .unwrap();
    let mut app = src.session().await;
    if source == Kind::Sqlite {
        app.exec("PRAGMA foreign_keys = ON").await.unwrap();
    }
    for i in 2..=41 {
        let sql = transaction(
            source,
            &format!(
                "INSERT INTO authors VALUES ({i}, 'author {i}'); INSERT INTO books VALUES ({i}, {i}, 'book {i}');"
            ),
        );
        app.exec(&sql).await.unwrap_or_else(|e| panic!("{pair}: {e}"));
        if i % 4 == 0 {
            // A child and its parent deleted together: children first on the source.
            let gone = i - 2;
            let sql = transaction(
                source,
                &format!("DELETE FROM books WHERE author_id = {gone}; DELETE FROM authors WHERE id = {gone};"),
            );
            app.exec(&sql).await.unwrap_or_else(|e| panic!("{pair}: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let expected = (src.count("authors").await, src.count("books").await);
    let mut found = (0, 0);
    for _ in 0..150 {
        assert!(
            follow.try_wait().unwrap().is_none(),
            "{pair}: `ferry sync --follow` stopped:\n{}\n{}",
            std::fs::read_to_string(&errors).unwrap_or_default(),
            ws.audit_log()
        );
        found = (dst.count("authors").await, dst.count("books").await);
        if found == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, expected, "{pair}: replay did not catch up");
    follow.kill().unwrap();
    follow.wait().unwrap();
    ws.run(&["sync"]).assert_code(0);
    let verified = ws.run(&["verify"]);
    verified.assert_code(0);
}

/// Every pair whose target enforces foreign keys on Ferry's connection
/// (SQLite targets are written with `foreign_keys = OFF`).
mod parent_and_child_in_one_transaction {
    use super::Kind::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_to_postgres() {
        super::parent_and_child_in_one_transaction(Sqlite, Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_to_mysql() {
        super::parent_and_child_in_one_transaction(Sqlite, Mysql).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_to_postgres() {
        super::parent_and_child_in_one_transaction(Postgres, Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_to_mysql() {
        super::parent_and_child_in_one_transaction(Postgres, Mysql).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql_to_postgres() {
        super::parent_and_child_in_one_transaction(Mysql, Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql_to_mysql() {
        super::parent_and_child_in_one_transaction(Mysql, Mysql).await
    }
}

/// A reference the source does not enforce (SQLite without `foreign_keys`)
/// cannot be replayed into a target that does: once nothing queued can
/// supply the parent, sync stops and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_the_source_accepted_is_named() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE authors (id integer PRIMARY KEY); CREATE TABLE books (id integer PRIMARY KEY, author_id integer REFERENCES authors (id));
         INSERT INTO authors VALUES (1); INSERT INTO books VALUES (1, 1);",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"authors\"\n\n[[table]]\nfrom = \"books\"\n"));
    ws.run(&["run"]).assert_code(0);
    src.exec("PRAGMA foreign_keys = OFF; INSERT INTO books VALUES (2, 999);").await;
    let ran = ws.run(&["sync"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("error[E312]") && ran.stderr.contains("replaying books"), "{ran}");
    assert!(ran.stderr.contains("the source does not enforce this reference"), "{ran}");
}
