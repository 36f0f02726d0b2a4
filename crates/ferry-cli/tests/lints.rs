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

/// The seed's `users`: one row verified, one not.
async fn users_with_verification_date(kind: Kind) -> TestDb {
    let db = TestDb::new(kind).await;
    db.exec(
        "CREATE TABLE users (id integer PRIMARY KEY, email varchar(100) NOT NULL, verification_date date);
         INSERT INTO users VALUES (1, 'a@example.com', NULL), (2, 'b@example.com', '2025-01-01');",
    )
    .await;
    db
}

/// In place, a dropped column that a view still reads makes contract fail: the plan says so, as an error naming
/// the view, on every engine; once the view no longer reads it, only the warning stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f004_a_view_on_a_column_contract_drops_is_an_error() {
    let tables = "[[table]]\nfrom = \"users\"\nexclude = [\"verification_date\"]\n\n[table.columns]\n\
                  email_verified = { expr = \"verification_date IS NOT NULL\", type = \"boolean\" }\n";
    for kind in ALL {
        let db = users_with_verification_date(kind).await;
        db.exec("CREATE VIEW verified_users AS SELECT id, email FROM users WHERE verification_date IS NOT NULL").await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec_in_place(&db, tables));
        let plan = ws.plan_json();
        let lint = plan["lint"].as_array().unwrap();
        let f004: Vec<&serde_json::Value> = lint.iter().filter(|f| f["code"] == "F004").collect();
        assert!(
            f004.iter().any(|f| f["severity"] == "error"
                && f["message"].as_str().unwrap().contains("view verified_users still uses it")),
            "{kind}: {f004:?}"
        );
        db.exec("DROP VIEW verified_users").await;
        db.exec("CREATE VIEW verified_users AS SELECT id, email FROM users").await;
        let found = findings(&ws.plan_json());
        assert!(has(&found, "F004", "warning") && !has(&found, "F004", "error"), "{kind}: {found:?}");
    }
}

/// The seed's in-place example, written as `[[change]]` with no [target], plans the same expand/contract on
/// every engine, with the version views and the commands that run it (tests/in_place.rs runs them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_s_change_spec_plans_in_place_on_every_engine() {
    for kind in ALL {
        let db = users_with_verification_date(kind).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&format!(
            "{}[source]\nurl = \"{}\"\n\n[[change]]\ntable = \"users\"\nadd_column = \"email_verified\"\n\
             type = \"boolean\"\nexpr = \"verification_date IS NOT NULL\"\nnot_null = true\n\n\
             [[change]]\ntable = \"users\"\ndrop_column = \"verification_date\"\n",
            ferry_testkit::MIGRATION,
            db.url
        ));
        let plan = ws.plan_json();
        assert_eq!(plan["migration_plan"]["shape"], "in_place", "{kind}");
        let text = plan.to_string();
        assert!(text.contains("email_verified") && text.contains("DROP COLUMN"), "{kind}: {text}");
        let found = findings(&plan);
        assert!(has(&found, "F004", "warning"), "{kind}: the drop is in contract: {found:?}");
        let expand = plan["runbook"]["phases"].to_string();
        assert!(expand.contains("ferry_v2") && expand.contains("ferry run"), "{kind}: expand is Ferry's: {expand}");
    }
}

/// Every kind of object that uses a column is found, on every engine, Ferry's own left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_dependents_are_found_at_the_column_level() {
    use ferry_core::DependentKind::*;
    for kind in ALL {
        let db = TestDb::new(kind).await;
        let ddl = match kind {
            Kind::Postgres => vec![
                "CREATE TABLE t (id integer PRIMARY KEY, a integer CHECK (a > 0), b integer UNIQUE,
                     g integer GENERATED ALWAYS AS (a * 2) STORED, z integer)",
                "CREATE TABLE c (id integer PRIMARY KEY, tb integer REFERENCES t (b))",
                "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.b := NEW.a; RETURN NEW; END $$",
                "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
            ],
            Kind::Mysql => vec![
                "CREATE TABLE t (id integer PRIMARY KEY, a integer CHECK (a > 0), b integer UNIQUE,
                     g integer AS (a * 2) STORED, z integer)",
                "CREATE TABLE c (id integer PRIMARY KEY, tb integer, FOREIGN KEY (tb) REFERENCES t (b))",
                "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.b = NEW.a",
            ],
            Kind::Sqlite => vec![
                "CREATE TABLE t (id integer PRIMARY KEY, a integer CHECK (a > 0), b integer UNIQUE,
                     g integer GENERATED ALWAYS AS (a * 2) STORED, z integer)",
                "CREATE TABLE c (id integer PRIMARY KEY, tb integer REFERENCES t (b))",
                "CREATE TRIGGER tr BEFORE INSERT ON t BEGIN SELECT NEW.a, NEW.b; END",
            ],
        };
        for statement in ddl {
            db.exec(statement).await;
        }
        db.exec("CREATE VIEW v AS SELECT id, a FROM t").await;
        let engine = db.engine().await;
        let table = ferry_core::TableName::parse("t");
        let found = engine.column_dependents(&table, &["a".into(), "b".into(), "z".into()]).await.unwrap();
        let kinds = |column: &str| {
            let mut k: Vec<_> = found.iter().filter(|d| d.column == column).map(|d| d.kind).collect();
            k.sort();
            k.dedup();
            k
        };
        assert_eq!(kinds("a"), vec![View, Trigger, Check, GeneratedColumn], "{kind}: {found:?}");
        assert_eq!(kinds("b"), vec![Trigger, Unique, ForeignKey], "{kind}: {found:?}");
        assert_eq!(kinds("z"), vec![], "{kind}: {found:?}");
        assert!(found.iter().any(|d| d.kind == View && d.name.ends_with('v')), "{kind}: {found:?}");
        assert!(found.iter().any(|d| d.kind == Trigger && d.name == "tr"), "{kind}: {found:?}");
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

/// `[table.translate]` lines appended to one `[[table]]`.
fn translate(lines: &str) -> String {
    format!("{ONE_TABLE}\n[table.translate]\n{lines}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f010_expression_not_translated() {
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, token text DEFAULT md5(random()::text), score integer DEFAULT 0,
               CONSTRAINT t_token_hex CHECK (token ~* '^[a-f0-9]+$'), CONSTRAINT t_score CHECK (score >= 0));
               INSERT INTO t (id) VALUES (1);";
    let found = plan_move(Kind::Postgres, Kind::Mysql, ddl, ONE_TABLE).await;
    assert_eq!(
        found.iter().filter(|(c, s, _)| c == "F010" && s == "warning").count(),
        2,
        "default and check: {found:?}"
    );
    let settled = translate("\"token.default\" = \"\"\nt_token_hex = \"token REGEXP '^[a-f0-9]+$'\"");
    let found = plan_move(Kind::Postgres, Kind::Mysql, ddl, &settled).await;
    assert!(!has_code(&found, "F010"), "settled in the spec: {found:?}");
    let found = plan_move(Kind::Postgres, Kind::Postgres, ddl, ONE_TABLE).await;
    assert!(!has_code(&found, "F010"), "same engine: {found:?}");
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP);
               INSERT INTO t (id) VALUES (1);";
    let found = plan_move(Kind::Mysql, Kind::Postgres, ddl, ONE_TABLE).await;
    assert!(has(&found, "F010", "warning"), "ON UPDATE has no PostgreSQL clause: {found:?}");
    let found = plan_move(Kind::Mysql, Kind::Postgres, ddl, &translate("\"at.on_update\" = \"\"")).await;
    assert!(!has_code(&found, "F010"), "{found:?}");
    // A check added NOT VALID over rows that break it cannot be created before the copy.
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, score integer); INSERT INTO t VALUES (1, -5);
               ALTER TABLE t ADD CONSTRAINT t_score CHECK (score >= 0) NOT VALID;";
    let found = plan_move(Kind::Postgres, Kind::Postgres, ddl, ONE_TABLE).await;
    assert!(has(&found, "F010", "warning"), "NOT VALID: {found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f011_index_not_translated() {
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, email varchar(100), gone boolean NOT NULL DEFAULT false);
               CREATE UNIQUE INDEX t_live_email ON t (email) WHERE NOT gone; INSERT INTO t VALUES (1, 'a', false);";
    for target in [Kind::Mysql] {
        let found = plan_move(Kind::Postgres, target, ddl, ONE_TABLE).await;
        assert!(has(&found, "F011", "warning"), "no partial indexes on {target}: {found:?}");
        let found = plan_move(Kind::Postgres, target, ddl, &translate("t_live_email = \"\"")).await;
        assert!(!has_code(&found, "F011"), "{found:?}");
    }
    for target in [Kind::Postgres, Kind::Sqlite] {
        let found = plan_move(Kind::Postgres, target, ddl, ONE_TABLE).await;
        assert!(!has_code(&found, "F011"), "{target} has partial indexes: {found:?}");
    }
    let gin = "CREATE TABLE t (id integer PRIMARY KEY, doc jsonb); CREATE INDEX t_doc ON t USING gin (doc);
               INSERT INTO t VALUES (1, '{}');";
    let found = plan_move(Kind::Postgres, Kind::Sqlite, gin, ONE_TABLE).await;
    assert!(has(&found, "F011", "warning"), "no gin on SQLite: {found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f012_collation_changes_comparison() {
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, email varchar(100) NOT NULL, UNIQUE KEY t_email (email));
               INSERT INTO t VALUES (1, 'a@x');";
    for target in [Kind::Postgres, Kind::Sqlite] {
        let found = plan_move(Kind::Mysql, target, ddl, ONE_TABLE).await;
        assert!(has(&found, "F012", "warning"), "MariaDB's _ci collation on {target}: {found:?}");
        let found = plan_move(Kind::Mysql, target, ddl, &translate("\"email.collation\" = \"\"")).await;
        assert!(!has_code(&found, "F012"), "accepted in the spec: {found:?}");
    }
    let found = plan_move(Kind::Mysql, Kind::Mysql, ddl, ONE_TABLE).await;
    assert!(!has_code(&found, "F012"), "the collation is carried: {found:?}");
    let nocase = "CREATE TABLE t (id INTEGER PRIMARY KEY, email VARCHAR(100) COLLATE NOCASE UNIQUE); INSERT INTO t VALUES (1, 'a');";
    let found = plan_move(Kind::Sqlite, Kind::Postgres, nocase, ONE_TABLE).await;
    assert!(has(&found, "F012", "warning"), "NOCASE on PostgreSQL: {found:?}");
    let found = plan_move(Kind::Sqlite, Kind::Mysql, nocase, ONE_TABLE).await;
    assert!(!has_code(&found, "F012"), "MariaDB takes a case-insensitive collation: {found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f013_zero_dates_are_counted() {
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "SET SESSION sql_mode = '';
         CREATE TABLE t (id integer PRIMARY KEY, born date, seen datetime);
         INSERT INTO t VALUES (1, '0000-00-00', '2024-01-01 10:00:00'), (2, '2020-01-01', '0000-00-00 00:00:00'),
             (3, '0000-00-00', NULL), (4, '2021-02-03', NULL);",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, ONE_TABLE));
    let plan = ws.plan_json();
    let messages: Vec<&str> = plan["lint"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "F013")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("`born` holds 2 zero date(s)") && m.contains("NULLIF(born, '0000-00-00')")),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("`seen` holds 1 zero date(s)")), "{messages:?}");
    assert!(findings(&plan).iter().any(|(c, s, _)| c == "F013" && s == "error"));
    // The expressions the finding suggests settle it, and the run copies NULLs.
    ws.write_spec(&spec(
        &src,
        &dst,
        &format!(
            "{ONE_TABLE}[table.columns]\nborn = {{ expr = \"NULLIF(born, '0000-00-00')\", type = \"date\" }}\n\
             seen = {{ expr = \"NULLIF(seen, '0000-00-00 00:00:00')\", type = \"timestamp\" }}\n"
        ),
    ));
    let plan = ws.plan_json();
    assert!(!findings(&plan).iter().any(|(c, _, _)| c == "F013"), "{:?}", findings(&plan));
    ws.run(&["run"]).assert_code(0);
    assert_eq!(
        dst.engine().await.scalar("SELECT COUNT(*) FROM t WHERE born IS NULL").await.unwrap().as_deref(),
        Some("2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f014_naive_timestamp_to_timestamptz() {
    for kind in ALL {
        let at = if kind == Kind::Mysql { "datetime" } else { "timestamp" };
        let ddl = format!(
            "CREATE TABLE t (id integer PRIMARY KEY, at {at}); INSERT INTO t VALUES (1, '2024-01-01 10:00:00');"
        );
        let retype = format!("{ONE_TABLE}[table.columns]\nat = {{ type = \"timestamptz\" }}\n");
        let found = plan_move(kind, Kind::Postgres, &ddl, &retype).await;
        assert!(has(&found, "F014", "warning"), "{kind}: {found:?}");
        let found =
            plan_move(kind, Kind::Postgres, &ddl, &format!("{retype}\n[table.translate]\n\"at.zone\" = \"UTC\"\n"))
                .await;
        assert!(!has_code(&found, "F014"), "{kind}: the zone is said: {found:?}");
        let found = plan_move(kind, Kind::Postgres, &ddl, ONE_TABLE).await;
        assert!(!has_code(&found, "F014"), "{kind}: stays without a zone: {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f015_generated_column_not_translated() {
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, first varchar(20), last varchar(20),
               full_name varchar(50) AS (concat(first, ' ', last)) STORED, low varchar(20) AS (lower(first)) VIRTUAL);
               INSERT INTO t (id, first, last) VALUES (1, 'a', 'b');";
    for target in [Kind::Postgres, Kind::Sqlite] {
        let found = plan_move(Kind::Mysql, target, ddl, ONE_TABLE).await;
        assert_eq!(found.iter().filter(|(c, _, _)| c == "F015").count(), 1, "only concat() is refused: {found:?}");
        let found = plan_move(Kind::Mysql, target, ddl, &translate("\"full_name.generated\" = \"\"")).await;
        assert!(!has_code(&found, "F015"), "{found:?}");
    }
    let found = plan_move(Kind::Mysql, Kind::Mysql, ddl, ONE_TABLE).await;
    assert!(!has_code(&found, "F015"), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f016_schema_item_not_kept() {
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, seq bigint GENERATED ALWAYS AS IDENTITY);
               INSERT INTO t (id) VALUES (1);";
    let found = plan_move(Kind::Postgres, Kind::Sqlite, ddl, ONE_TABLE).await;
    assert!(has(&found, "F016", "warning"), "SQLite numbers only its INTEGER PRIMARY KEY: {found:?}");
    let found = plan_move(Kind::Postgres, Kind::Sqlite, ddl, &translate("\"seq.identity\" = \"\"")).await;
    assert!(!has_code(&found, "F016"), "{found:?}");
    let found = plan_move(Kind::Postgres, Kind::Mysql, ddl, ONE_TABLE).await;
    assert!(!has_code(&found, "F016"), "MariaDB numbers any integer column: {found:?}");
    let commented =
        "CREATE TABLE t (id integer PRIMARY KEY); COMMENT ON TABLE t IS 'kept elsewhere'; INSERT INTO t VALUES (1);";
    let found = plan_move(Kind::Postgres, Kind::Sqlite, commented, ONE_TABLE).await;
    assert!(has(&found, "F016", "info"), "SQLite keeps no comments: {found:?}");
    let found = plan_move(Kind::Postgres, Kind::Mysql, commented, ONE_TABLE).await;
    assert!(!has_code(&found, "F016"), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f017_foreign_key_parent_missing() {
    let ddl = "CREATE TABLE p (id integer PRIMARY KEY);
               CREATE TABLE t (id integer PRIMARY KEY, p_id integer REFERENCES p (id) ON DELETE CASCADE);
               INSERT INTO p VALUES (1); INSERT INTO t VALUES (1, 1);";
    for target in ALL {
        let src = TestDb::new(Kind::Postgres).await;
        let dst = TestDb::new(target).await;
        src.exec(ddl).await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(&src, &dst, ONE_TABLE));
        let plan = ws.plan_json();
        let f017: Vec<&str> = plan["lint"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "F017")
            .map(|f| f["message"].as_str().unwrap())
            .collect();
        assert_eq!(f017.len(), 1, "{target}: {f017:?}");
        if target != Kind::Sqlite {
            assert!(
                f017[0].contains("ADD CONSTRAINT") && f017[0].contains("ON DELETE CASCADE"),
                "{target}: the SQL to add it: {f017:?}"
            );
        }
        // With the parent on the target, the key is recreated and nothing is said.
        dst.exec("CREATE TABLE p (id integer PRIMARY KEY); INSERT INTO p VALUES (1);").await;
        let plan = ws.plan_json();
        assert!(!findings(&plan).iter().any(|(c, _, _)| c == "F017"), "{target}: {:?}", findings(&plan));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translate_keys_must_name_something() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, at TIMESTAMP);").await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, &translate("no_such_check = \"\"")));
    let ran = ws.run(&["plan", "--output", "out"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("`[table.translate] \"no_such_check\"` names nothing of t"), "{ran}");
    ws.write_spec(&spec(&src, &dst, &translate("\"at.zone\" = \"Europe/Berlin\"")));
    let ran = ws.run(&["run"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("only \"UTC\" can be assumed"), "{ran}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f018_rollback_not_lossless() {
    let ddl = "CREATE TABLE t (id integer PRIMARY KEY, n integer NOT NULL, secret varchar(20)); INSERT INTO t VALUES (1, 2, 'x');";
    let computed = format!("{ONE_TABLE}[table.columns]\ndouble = {{ expr = \"n * 2\", type = \"integer\" }}\n");
    let found = plan_move(Kind::Sqlite, Kind::Postgres, ddl, &computed).await;
    assert!(has(&found, "F018", "error"), "a computed column: {found:?}");
    let found = plan_move(Kind::Postgres, Kind::Mysql, ddl, &format!("{ONE_TABLE}exclude = [\"secret\"]\n")).await;
    assert!(has(&found, "F018", "error"), "a column left out: {found:?}");
    let renamed = format!("{ONE_TABLE}[table.columns]\ncount = {{ from = \"n\", type = \"bigint\" }}\n");
    let found = plan_move(Kind::Mysql, Kind::Sqlite, ddl, &renamed).await;
    assert!(!has_code(&found, "F018"), "renames and type changes invert: {found:?}");

    // Accepting the loss answers it.
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec(ddl).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(
        &spec(&src, &dst, &computed).replace("rollback = \"lossless\"", "rollback = \"loss-accepted-after-switch\""),
    );
    assert!(!findings(&ws.plan_json()).iter().any(|(c, _, _)| c == "F018"));
}

fn lint_message(plan: &serde_json::Value, code: &str) -> String {
    plan["lint"].as_array().unwrap().iter().filter(|f| f["code"] == code).map(|f| f["message"].to_string()).collect()
}

/// NULL keys and shared keys are counted at plan time (F019, F020), and a
/// run that meets one anyway stops with the key named, copying nothing wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f019_nullable_key_and_f020_key_collision() {
    for kind in ALL {
        let src = TestDb::new(kind).await;
        let dst = TestDb::new(kind).await;
        src.exec(
            "CREATE TABLE t (id integer PRIMARY KEY, email varchar(40) UNIQUE, grp varchar(10));
             INSERT INTO t VALUES (1, 'a@x', 'a'), (2, NULL, 'a'), (3, NULL, 'b'), (4, 'd@x', 'c'), (5, 'e@x', 'c');",
        )
        .await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(&src, &dst, &format!("{ONE_TABLE}key = [\"email\"]\n")));
        let plan = ws.plan_json();
        let message = lint_message(&plan, "F019");
        assert!(message.contains("2 row(s) have a NULL"), "{kind}: {message}\n{plan:#}");
        let ran = ws.run(&["run"]);
        ran.assert_code(2);
        assert!(ran.stderr.contains("a row's key (email) is NULL") && ran.stderr.contains("F019"), "{kind}\n{ran}");

        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(&src, &dst, &format!("{ONE_TABLE}to = \"t_grp\"\nkey = [\"grp\"]\n")));
        let plan = ws.plan_json();
        let message = lint_message(&plan, "F020");
        assert!(message.contains("2 key value(s)") && message.contains("`a`, `c`"), "{kind}: {message}");
        let found = findings(&plan);
        assert!(has(&found, "F019", "warning") && !has(&found, "F019", "error"), "grp may be NULL, is not: {found:?}");
        let ran = ws.run(&["run"]);
        ran.assert_code(2);
        assert!(ran.stderr.contains("two rows have the key (grp) = (\"a\")"), "{kind}\n{ran}");

        // The primary key: nothing to say.
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(&src, &dst, &format!("{ONE_TABLE}to = \"t_id\"\n")));
        let found = findings(&ws.plan_json());
        assert!(!has_code(&found, "F019") && !has_code(&found, "F020"), "{kind}: {found:?}");
    }
}

/// Rows already in an existing target table are counted (F021), and the run
/// leaves them alone until the spec answers `existing_rows = "merge"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f021_target_has_rows() {
    for kind in ALL {
        let src = TestDb::new(kind).await;
        let dst = TestDb::new(kind).await;
        src.exec("CREATE TABLE t (id integer PRIMARY KEY, v varchar(10)); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');")
            .await;
        dst.exec("CREATE TABLE t (id integer PRIMARY KEY, v varchar(10)); INSERT INTO t VALUES (3, 'old'), (9, 'z');")
            .await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&spec(&src, &dst, ONE_TABLE));
        let plan = ws.plan_json();
        assert!(lint_message(&plan, "F021").contains("already holds 2 row(s)"), "{kind}: {plan:#}");
        assert!(has(&findings(&plan), "F021", "error"), "{kind}");
        let ran = ws.run(&["run"]);
        ran.assert_code(2);
        assert!(ran.stderr.contains("E402") && ran.stderr.contains("existing_rows = \"merge\""), "{kind}\n{ran}");
        assert_eq!(dst.count("t").await, 2, "{kind}: nothing written");

        ws.write_spec(&spec(&src, &dst, &format!("{ONE_TABLE}existing_rows = \"merge\"\n")));
        assert!(has(&findings(&ws.plan_json()), "F021", "info"), "{kind}");
        let ran = ws.run(&["run"]);
        ran.assert_code(1); // copied; verification then finds the row the source does not have
        assert_eq!(dst.count("t").await, 4, "{kind}: 3 copied (one overwritten), 1 kept\n{ran}");
    }
}

/// Keys distinct on the source (PostgreSQL compares exactly) that an existing
/// MariaDB target table's case-insensitive, PAD SPACE key collation takes
/// for one: counted and listed by the plan (F020), and the run stops before
/// copying the table, naming them, with nothing overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f020_an_existing_target_key_that_ignores_case_and_trailing_spaces() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Mysql).await;
    src.exec("CREATE TABLE t (code varchar(10) PRIMARY KEY, v integer); INSERT INTO t VALUES ('a', 1), ('A', 2), ('b', 3), ('b ', 4), ('c', 5)")
        .await;
    dst.exec("CREATE TABLE t (code varchar(10) COLLATE utf8mb4_general_ci PRIMARY KEY, v integer)").await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, ONE_TABLE));
    let plan = ws.plan_json();
    let message = lint_message(&plan, "F020");
    assert!(message.contains("2 key value(s)") && message.contains("`a`, `b`"), "{message}\n{plan:#}");
    assert!(message.contains("ignoring case and trailing spaces"), "{message}");
    let ran = ws.run(&["run"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("ignoring case and trailing spaces") && ran.stderr.contains("first a; b"), "{ran}");
    assert_eq!(dst.count("t").await, 0, "nothing overwritten");

    // A binary collation on the target key settles it.
    dst.exec("ALTER TABLE t MODIFY code varchar(10) COLLATE utf8mb4_nopad_bin").await;
    assert!(!has_code(&findings(&ws.plan_json()), "F020"));
}
