//! Every change-analysis rule fires where it should and stays quiet where it
//! should not, on every engine it applies to, against real databases.

use ferry_testkit::{findings, spec, spec_in_place, Kind, TestDb, Workspace, ALL};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Plans a move of one table between two fresh databases of `source`/`target` kinds.
async fn plan_move(source: Kind, target: Kind, ddl: &str, tables: &str) -> Vec<(String, String, String)> {
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    src.exec(ddl).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, tables));
    let plan = ws.plan_json();
    assert!(dst.ferry_objects().await.is_empty(), "the probe table is gone");
    findings(&plan)
}

async fn plan_in_place(kind: Kind, ddl: &str, tables: &str) -> Vec<(String, String, String)> {
    let db = TestDb::new(kind).await;
    db.exec(ddl).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec_in_place(&db, tables));
    let plan = ws.plan_json();
    assert_eq!(plan["migration_plan"]["shape"], "in_place");
    assert!(db.ferry_objects().await.is_empty(), "the probe table is gone");
    findings(&plan)
}

fn has(found: &[(String, String, String)], code: &str, severity: &str) -> bool {
    found.iter().any(|(c, s, _)| c == code && s == severity)
}

fn has_code(found: &[(String, String, String)], code: &str) -> bool {
    found.iter().any(|(c, _, _)| c == code)
}

const ONE_TABLE: &str = "[[table]]\nfrom = \"t\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f001_rename() {
    for kind in ALL {
        let ddl = "CREATE TABLE t (id integer PRIMARY KEY, name varchar(20)); INSERT INTO t VALUES (1, 'a');";
        let found = plan_move(kind, kind, ddl, &format!("{ONE_TABLE}[table.columns]\nlabel = \"name\"\n")).await;
        assert!(has(&found, "F001", "warning"), "{kind}: {found:?}");
        let found = plan_move(kind, kind, ddl, ONE_TABLE).await;
        assert!(!has_code(&found, "F001"), "{kind}: {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f002_narrowing() {
    for kind in ALL {
        let ddl =
            "CREATE TABLE t (id integer PRIMARY KEY, qty bigint, note varchar(20)); INSERT INTO t VALUES (1, 5, 'x');";
        let found = plan_move(
            kind,
            kind,
            ddl,
            &format!("{ONE_TABLE}[table.columns]\nqty = {{ type = \"smallint\" }}\nnote = {{ type = \"integer\" }}\n"),
        )
        .await;
        assert!(has(&found, "F002", "warning"), "{kind}: bigint to smallint narrows: {found:?}");
        assert!(has(&found, "F002", "error"), "{kind}: text to integer changes kind: {found:?}");
        let found = plan_move(
            kind,
            kind,
            ddl,
            &format!(
                "{ONE_TABLE}[table.columns]\nqty = {{ type = \"numeric(30,0)\" }}\nnote = {{ type = \"text\" }}\n"
            ),
        )
        .await;
        assert!(!has_code(&found, "F002"), "{kind}: widening is quiet: {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f003_not_null_on_rows_with_null() {
    for kind in ALL {
        let tables = format!("{ONE_TABLE}[table.columns]\nphone = {{ nullable = false }}\n");
        let ddl =
            "CREATE TABLE t (id integer PRIMARY KEY, phone varchar(20)); INSERT INTO t VALUES (1, 'x'), (2, NULL);";
        let found = plan_move(kind, kind, ddl, &tables).await;
        assert!(has(&found, "F003", "error"), "{kind}: {found:?}");
        let ddl =
            "CREATE TABLE t (id integer PRIMARY KEY, phone varchar(20)); INSERT INTO t VALUES (1, 'x'), (2, 'y');";
        let found = plan_move(kind, kind, ddl, &tables).await;
        assert!(!has_code(&found, "F003"), "{kind}: no NULL, nothing to say: {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f004_dropped_column() {
    for kind in ALL {
        let ddl = "CREATE TABLE t (id integer PRIMARY KEY, a integer, b integer); INSERT INTO t VALUES (1, 2, 3);";
        let found = plan_move(kind, kind, ddl, &format!("{ONE_TABLE}exclude = [\"b\"]\n")).await;
        assert!(has(&found, "F004", "warning"), "{kind}: {found:?}");
        let found = plan_move(kind, kind, ddl, ONE_TABLE).await;
        assert!(!has(&found, "F004", "warning"), "{kind}: {found:?}");
        assert!(has(&found, "F004", "info"), "{kind}: the old table's drop is noted: {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f005_index_build_on_a_live_table() {
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, email varchar(100)); CREATE INDEX t_email ON t (email); INSERT INTO t VALUES (1, 'a');";
    let rename = format!("{ONE_TABLE}[table.columns]\nmail = \"email\"\n");
    let found = plan_in_place(Kind::Sqlite, ddl, &rename).await;
    assert!(has(&found, "F005", "warning"), "SQLite cannot build online: {found:?}");
    for kind in [Kind::Postgres, Kind::Mysql] {
        let found = plan_in_place(kind, ddl, &rename).await;
        assert!(!has_code(&found, "F005"), "{kind} builds online: {found:?}");
    }
    let found = plan_move(Kind::Sqlite, Kind::Sqlite, ddl, &rename).await;
    assert!(!has_code(&found, "F005"), "a new table is not live: {found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f006_foreign_key_validated_under_lock() {
    let ddl = "CREATE TABLE p (id integer PRIMARY KEY);
               CREATE TABLE t (id integer PRIMARY KEY, p_id integer, CONSTRAINT t_p FOREIGN KEY (p_id) REFERENCES p (id));
               INSERT INTO p VALUES (1); INSERT INTO t VALUES (1, 1);";
    let rename = format!("{ONE_TABLE}[table.columns]\nparent_id = \"p_id\"\n");
    let found = plan_in_place(Kind::Mysql, ddl, &rename).await;
    assert!(has(&found, "F006", "warning"), "{found:?}");
    let found = plan_in_place(Kind::Postgres, ddl, &rename).await;
    assert!(!has_code(&found, "F006"), "NOT VALID + VALIDATE does not block: {found:?}");
    let found = plan_move(Kind::Mysql, Kind::Mysql, ddl, &format!("[[table]]\nfrom = \"p\"\n\n{rename}")).await;
    assert!(!has_code(&found, "F006"), "a new table is not live: {found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f007_table_without_key() {
    for kind in ALL {
        let ddl = "CREATE TABLE t (a integer, b varchar(10)); INSERT INTO t VALUES (1, 'x');";
        let found = plan_move(kind, kind, ddl, ONE_TABLE).await;
        assert!(has(&found, "F007", "error"), "{kind}: {found:?}");
        let found = plan_move(kind, kind, ddl, &format!("{ONE_TABLE}key = [\"a\"]\n")).await;
        assert!(has(&found, "F007", "warning"), "{kind}: a key no constraint enforces: {found:?}");
        let ddl = "CREATE TABLE t (a integer PRIMARY KEY, b varchar(10)); INSERT INTO t VALUES (1, 'x');";
        let found = plan_move(kind, kind, ddl, ONE_TABLE).await;
        assert!(!has_code(&found, "F007"), "{kind}: {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f008_large_sqlite_rebuild() {
    let large = "CREATE TABLE t (id INTEGER PRIMARY KEY, price REAL);
                 WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) INSERT INTO t SELECT x, x * 1.5 FROM c;";
    let retype = format!("{ONE_TABLE}[table.columns]\nprice = {{ type = \"numeric(12,2)\" }}\n");
    let found = plan_in_place(Kind::Sqlite, large, &retype).await;
    assert!(has(&found, "F008", "warning"), "{found:?}");
    let small = "CREATE TABLE t (id INTEGER PRIMARY KEY, price REAL); INSERT INTO t VALUES (1, 1.5);";
    let found = plan_in_place(Kind::Sqlite, small, &retype).await;
    assert!(!has_code(&found, "F008"), "small tables rebuild fast: {found:?}");
    let found = plan_in_place(
        Kind::Sqlite,
        large,
        &format!("{ONE_TABLE}[table.columns]\ncents = {{ expr = \"price * 100\", type = \"real\" }}\n"),
    )
    .await;
    assert!(!has_code(&found, "F008"), "adding a nullable column needs no rebuild: {found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f009_cross_engine_conversions() {
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, at timestamptz); INSERT INTO t VALUES (1, now());";
    let found = plan_move(Kind::Postgres, Kind::Mysql, ddl, ONE_TABLE).await;
    assert!(has(&found, "F009", "warning"), "timestamptz loses its zone on MySQL: {found:?}");
    let found = plan_move(Kind::Postgres, Kind::Postgres, ddl, ONE_TABLE).await;
    assert!(!has_code(&found, "F009"), "{found:?}");
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, flag tinyint(1)); INSERT INTO t VALUES (1, 1);";
    let found = plan_move(Kind::Mysql, Kind::Postgres, ddl, ONE_TABLE).await;
    assert!(has(&found, "F009", "warning"), "tinyint(1) as boolean: {found:?}");
    let found = plan_move(Kind::Mysql, Kind::Mysql, ddl, ONE_TABLE).await;
    assert!(!has_code(&found, "F009"), "{found:?}");
}
