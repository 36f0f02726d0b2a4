//! The operator's SQL stays in its place: hostile filters, expressions,
//! checks, probes and `diff --where` are refused before anything runs, with
//! the spec line; a check that writes through a function runs read-only and
//! fails. Every case ends with the source untouched.

use ferry_testkit::{spec, Kind, TestDb, Workspace};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

const HOSTILE: &[(&str, &str)] = &[
    ("[[table]]\nfrom = \"t\"\nfilter = \"1=1; DROP TABLE t\"\n", "`table.filter` must be one boolean expression"),
    ("[[table]]\nfrom = \"t\"\nfilter = \"1=1 -- \"\n", "comment"),
    ("[[table]]\nfrom = \"t\"\nfilter = \"1=1 /*\"\n", "`table.filter`"),
    (
        "[[table]]\nfrom = \"t\"\n[table.columns]\nw = { expr = \"v); DELETE FROM t; --\", type = \"text\" }\n",
        "`table.columns.w`",
    ),
    (
        "[[table]]\nfrom = \"t\"\n\n[[check]]\nname = \"c\"\non = \"source\"\nsql = \"SELECT 1; DELETE FROM t\"\n",
        "`check.sql` must be one SELECT statement",
    ),
    ("[[table]]\nfrom = \"t\"\n\n[[check]]\nname = \"c\"\non = \"source\"\nsql = \"DELETE FROM t\"\n", "`DELETE`"),
    ("[[table]]\nfrom = \"t\"\n\n[policy]\nlatency_probe = \"SELECT 1; DROP TABLE t\"\n", "`policy.latency_probe`"),
];

async fn source_with_rows(kind: Kind) -> TestDb {
    let db = TestDb::new(kind).await;
    db.exec("CREATE TABLE t (id integer PRIMARY KEY, v varchar(20))").await;
    db.exec("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')").await;
    db
}

async fn hostile_fragments_are_refused(kind: Kind) {
    let source = source_with_rows(kind).await;
    let target = TestDb::new(kind).await;
    for (tables, why) in HOSTILE {
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(&source, &target, tables));
        for command in [&["plan"][..], &["run"]] {
            let ran = ws.run(command);
            ran.assert_code(2);
            assert!(ran.stderr.contains(why) && ran.stderr.contains("ferry.toml:"), "{why}\n{ran}");
        }
    }
    let ws = Workspace::new(FERRY);
    for filter in ["1=1; DROP TABLE t", "1=1 -- ", "id > 0 /* */"] {
        let ran = ws.run(&["diff", &format!("{}#t", source.url), &format!("{}#t", source.url), "--where", filter]);
        ran.assert_code(2);
        assert!(ran.stderr.contains("--where must be one boolean expression"), "{ran}");
    }
    assert_eq!(source.count("t").await, 3, "the source is untouched");
    let created = target.engine().await.table_exists(&ferry_core::TableName::parse("t")).await.unwrap();
    assert!(!created, "nothing was created on the target");
}

#[tokio::test]
async fn hostile_fragments_are_refused_sqlite() {
    hostile_fragments_are_refused(Kind::Sqlite).await;
}

#[tokio::test]
async fn hostile_fragments_are_refused_postgres() {
    hostile_fragments_are_refused(Kind::Postgres).await;
}

#[tokio::test]
async fn hostile_fragments_are_refused_mysql() {
    hostile_fragments_are_refused(Kind::Mysql).await;
}

/// A SELECT that passes every syntactic test but calls a function that
/// deletes: the check runs in a READ ONLY transaction, fails with the
/// server's refusal, and deletes nothing.
async fn a_check_cannot_write_through_a_function(kind: Kind, function: &str) {
    let source = source_with_rows(kind).await;
    source.exec(function).await;
    let target = TestDb::new(kind).await;
    let check = "[[check]]\nname = \"sneaky\"\non = \"source\"\nsql = \"SELECT ferry_test_wipe()\"\n";
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&source, &target, &format!("[[table]]\nfrom = \"t\"\n\n{check}")));
    let ran = ws.run(&["run"]);
    ran.assert_code(1);
    assert!(ran.stdout.contains("FAIL  sneaky: "), "{ran}");
    assert!(read_only_refusal(&ran.stdout), "{ran}");
    assert_eq!(source.count("t").await, 3, "the function deleted nothing\n{ran}");

    let probe = "[policy]\nlatency_probe = \"SELECT ferry_test_wipe()\"\n";
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&source, &target, &format!("[[table]]\nto = \"t2\"\nfrom = \"t\"\n\n{probe}")));
    let ran = ws.run(&["run"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("E307") && read_only_refusal(&ran.stderr), "{ran}");
    assert_eq!(source.count("t").await, 3, "the function deleted nothing\n{ran}");
}

fn read_only_refusal(said: &str) -> bool {
    said.to_lowercase().replace('-', " ").contains("read only transaction")
}

#[tokio::test]
async fn a_check_cannot_write_through_a_function_postgres() {
    a_check_cannot_write_through_a_function(
        Kind::Postgres,
        "CREATE FUNCTION ferry_test_wipe() RETURNS integer LANGUAGE plpgsql AS $$
         BEGIN DELETE FROM t; RETURN 0; END $$",
    )
    .await;
}

#[tokio::test]
async fn a_check_cannot_write_through_a_function_mysql() {
    a_check_cannot_write_through_a_function(
        Kind::Mysql,
        "CREATE FUNCTION ferry_test_wipe() RETURNS integer MODIFIES SQL DATA BEGIN DELETE FROM t; RETURN 0; END",
    )
    .await;
}
