//! Bad input gets a clear message naming the culprit and exit code 2, never a
//! panic, and nothing is lost.

use ferry_testkit::{spec, Kind, Ran, TestDb, Workspace};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

#[track_caller]
fn assert_error(ran: &Ran, needles: &[&str]) {
    ran.assert_code(2);
    assert!(!ran.stderr.contains("panicked"), "a panic is never an error message\n{ran}");
    assert!(
        ran.stderr.lines().any(|l| l.starts_with("error[E") && l.get(10..13) == Some("]: ")),
        "errors are reported on a line starting `error[E...]: `, with their code\n{ran}"
    );
    for needle in needles {
        assert!(ran.stderr.contains(needle), "the message should mention {needle:?}\n{ran}");
    }
}

const SOURCE_ONLY: &str = "[migration]\ndowntime = \"0s\"\nrollback = \"lossless\"\nowner = \"ops\"\n\
    [source]\nurl = \"sqlite:source.db\"\n[target]\nurl = \"sqlite:target.db\"\n[[table]]\nfrom = \"users\"\n";

fn sqlite_workspace() -> Workspace {
    let ws = Workspace::new(FERRY);
    let conn = rusqlite_open(&ws.path().join("source.db"));
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER);
         INSERT INTO users VALUES (1, 'a', 30), (2, 'b', 'abc'), (3, 'c', 40);
         CREATE TABLE logs (at TEXT, message TEXT);
         INSERT INTO logs VALUES ('2024-01-01', 'x');",
    )
    .unwrap();
    ws
}

fn rusqlite_open(path: &std::path::Path) -> ferry_testkit::rusqlite::Connection {
    ferry_testkit::rusqlite::Connection::open(path).unwrap()
}

#[test]
fn missing_spec_says_how_to_make_one() {
    let ws = Workspace::new(FERRY);
    assert_error(&ws.run(&["run"]), &["ferry.toml", "ferry init"]);
    assert_error(&ws.run(&["--spec", "elsewhere.toml", "status"]), &["elsewhere.toml"]);
}

#[test]
fn malformed_toml_names_file_and_line() {
    let ws = sqlite_workspace();
    ws.write_spec("[source]\nurl = \"sqlite:source.db\"\n[target\nurl = 1\n");
    assert_error(&ws.run(&["run"]), &["ferry.toml:3:"]);
}

#[test]
fn unknown_key_names_the_key() {
    let ws = sqlite_workspace();
    ws.write_spec(&format!("{SOURCE_ONLY}batchsize = 10\n"));
    assert_error(&ws.run(&["run"]), &["ferry.toml:11:", "unknown field `batchsize`", "help:"]);
}

#[test]
fn wrong_type_and_missing_field() {
    let ws = sqlite_workspace();
    ws.write_spec(&format!("{SOURCE_ONLY}[policy]\nbatch_size = \"lots\"\n"));
    assert_error(&ws.run(&["run"]), &["ferry.toml:12:", "invalid type"]);
    ws.write_spec("[source]\nurl = \"sqlite:source.db\"\n[[table]]\nfrom = \"users\"\n");
    assert_error(&ws.run(&["run"]), &["the spec has no [target]", "[[change]]"]);
}

#[test]
fn unknown_scheme_names_the_url() {
    let ws = sqlite_workspace();
    ws.write_spec(&SOURCE_ONLY.replace("sqlite:target.db", "oracle://scott:tiger@db/orcl"));
    let ran = ws.run(&["run"]);
    assert_error(&ran, &["ferry.toml:8:", "target.url", "oracle://scott:***@db/orcl", "postgres://"]);
    assert!(!ran.stderr.contains("tiger"), "passwords are never printed\n{ran}");
}

#[test]
fn missing_environment_variable() {
    let ws = sqlite_workspace();
    ws.write_spec(&SOURCE_ONLY.replace("sqlite:target.db", "postgres://u:${FERRY_TEST_SURELY_UNSET}@h/db"));
    assert_error(&ws.run(&["run"]), &["FERRY_TEST_SURELY_UNSET", "export"]);
}

#[test]
fn unreachable_host() {
    let ws = sqlite_workspace();
    ws.write_spec(&SOURCE_ONLY.replace("sqlite:target.db", "postgres://postgres@127.0.0.1:1/nowhere"));
    assert_error(
        &ws.run(&["run"]),
        &["target", "cannot connect to PostgreSQL at postgres://postgres@127.0.0.1:1/nowhere"],
    );
    ws.write_spec(&SOURCE_ONLY.replace("sqlite:target.db", "mysql://root@127.0.0.1:1/nowhere"));
    assert_error(&ws.run(&["run"]), &["target", "cannot connect to MySQL"]);
}

#[tokio::test]
async fn wrong_password_and_missing_database() {
    let ws = sqlite_workspace();
    let server = ferry_testkit::mysql_server().replace("mysql://root@", "mysql://root:not-the-password@");
    ws.write_spec(&SOURCE_ONLY.replace("sqlite:target.db", &format!("{server}/mysql")));
    let ran = ws.run(&["run"]);
    assert_error(&ran, &["refused the login", "Access denied", "password"]);
    assert!(!ran.stderr.contains("not-the-password"), "passwords are never printed\n{ran}");
    ws.write_spec(
        &SOURCE_ONLY.replace("sqlite:target.db", &format!("{}/ferry_no_such_db", ferry_testkit::pg_server())),
    );
    assert_error(&ws.run(&["run"]), &["ferry_no_such_db", "does not exist", "createdb"]);
}

#[test]
fn missing_table_lists_the_tables_there() {
    let ws = sqlite_workspace();
    ws.write_spec(&SOURCE_ONLY.replace("from = \"users\"", "from = \"userz\""));
    assert_error(&ws.run(&["run"]), &["ferry.toml:9:", "userz", "does not exist", "users"]);
}

#[test]
fn table_without_a_key() {
    let ws = sqlite_workspace();
    ws.write_spec(&SOURCE_ONLY.replace("from = \"users\"", "from = \"logs\""));
    assert_error(&ws.run(&["run"]), &["logs", "no primary key", "key = "]);
    // Naming a key fixes it.
    ws.write_spec(&SOURCE_ONLY.replace("from = \"users\"", "from = \"logs\"\nkey = [\"at\"]"));
    ws.run(&["run"]).assert_code(0);
}

#[test]
fn unconvertible_value_is_reported_with_its_key_and_nothing_is_dropped() {
    let ws = sqlite_workspace();
    // users.age holds the text 'abc' in row 2; the target wants an integer.
    ws.write_spec(&format!("{SOURCE_ONLY}[table.columns]\nage = {{ type = \"integer\" }}\n"));
    let ran = ws.run(&["run"]);
    assert_error(&ran, &["users", "id=2", "age", "\"abc\"", "integer", "quarantine"]);
    let status = ws.status_json();
    assert_eq!(status["quarantined_rows"], 1, "{status:#}");
    assert_eq!(status["tables"][0]["backfill_complete"], false, "the run stopped\n{status:#}");
    assert!(ws.audit_log().contains("row-quarantined: table=users, key=id=2, column=age"), "{}", ws.audit_log());

    // With quarantine the other rows are copied, and verification still says a row is missing.
    let text = std::fs::read_to_string(ws.spec_path()).unwrap();
    ws.write_spec(&text.replace("[[table]]", "[policy]\non_conversion_error = \"quarantine\"\n\n[[table]]"));
    let ran = ws.run(&["run"]);
    ran.assert_code(1);
    assert!(ran.stdout.contains("not convertible") && ran.stdout.contains("id=2"), "{ran}");

    // Fixed at the source and repaired: the row is copied, and no longer listed as quarantined.
    rusqlite_open(&ws.path().join("source.db")).execute("UPDATE users SET age = '42' WHERE id = 2", []).unwrap();
    ws.run(&["verify", "--repair"]).assert_code(0);
    let status = ws.status_json();
    assert_eq!((status["quarantined_rows"].as_u64(), status["verification"].as_str()), (Some(0), Some("pass")));
}

#[tokio::test]
async fn incompatible_existing_target_says_what_differs() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)").await;
    dst.exec("CREATE TABLE users (id integer PRIMARY KEY, name varchar(3), extra text NOT NULL)").await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"users\"\n"));
    assert_error(
        &ws.run(&["run"]),
        &[
            "already exists",
            "column `score` is missing",
            "column `id` is integer",
            "column `name` is varchar(3)",
            "`extra`",
        ],
    );
}

#[tokio::test]
async fn two_runners_never_drive_one_migration() {
    let ws = sqlite_workspace();
    let conn = rusqlite_open(&ws.path().join("source.db"));
    conn.execute_batch(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) INSERT INTO big SELECT x, 'v' FROM c;",
    )
    .unwrap();
    ws.write_spec(
        &SOURCE_ONLY
            .replace("from = \"users\"", "from = \"big\"")
            .replace("[[table]]", "[policy]\nbatch_size = 100\nbatch_pause = \"20ms\"\n\n[[table]]"),
    );
    let mut first = ws.spawn_quiet(&["run"]);
    std::thread::sleep(std::time::Duration::from_millis(400));
    let second = ws.run(&["run"]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_error(&second, &["another ferry process", "locked"]);
}

#[test]
fn init_refuses_to_overwrite_and_needs_a_reachable_source() {
    let ws = sqlite_workspace();
    ws.write_spec("# mine\n");
    assert_error(
        &ws.run(&["init", "--source", "sqlite:source.db", "--target", "sqlite:t.db", "--table", "users"]),
        &["already exists", "--force"],
    );
    assert_error(
        &ws.run(&["init", "--source", "sqlite:nope.db", "--target", "sqlite:t.db", "--table", "users", "-o", "x.toml"]),
        &["nope.db", "does not exist"],
    );
}

#[test]
fn open_questions_block_the_run_and_name_the_key() {
    let ws = sqlite_workspace();
    let text = SOURCE_ONLY.replace("rollback = \"lossless\"\n", "").replace("owner = \"ops\"\n", "");
    ws.write_spec(&text);
    let ran = ws.run(&["run"]);
    assert_error(&ran, &["migration.rollback", "migration.owner", "rollback = \"lossless\"", "[migration]"]);
    assert!(!ran.stderr.contains("migration.downtime"), "downtime is answered\n{ran}");
    assert!(!ws.path().join("target.db").exists(), "nothing ran");
}

#[test]
fn source_and_target_the_same_table() {
    let ws = sqlite_workspace();
    ws.write_spec(&SOURCE_ONLY.replace("sqlite:target.db", "sqlite:source.db"));
    assert_error(&ws.run(&["run"]), &["same table", "users", "to = "]);
}

/// Logical capture is PostgreSQL's: asked of another source, the run stops
/// before it creates anything, and says what to change.
#[test]
fn logical_capture_on_a_sqlite_source() {
    let ws = sqlite_workspace();
    ws.write_spec(
        &SOURCE_ONLY.replace("url = \"sqlite:source.db\"\n", "url = \"sqlite:source.db\"\ncapture = \"logical\"\n"),
    );
    assert_error(&ws.run(&["run"]), &["[source] capture", "needs a PostgreSQL source", "remove `capture`"]);
    assert!(
        !ws.path().join("target.db").exists()
            || rusqlite_open(&ws.path().join("target.db"))
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
                .unwrap()
                == 0,
        "nothing was created on the target"
    );
    ws.write_spec(
        &SOURCE_ONLY.replace("url = \"sqlite:source.db\"\n", "url = \"sqlite:source.db\"\ncapture = \"wal\"\n"),
    );
    assert_error(&ws.run(&["run"]), &["ferry.toml:7:", "unknown method `wal`", "\"logical\""]);
}

/// On a PostgreSQL source without `wal_level = logical`, the run stops
/// before expand creates anything, and says how to change the setting.
#[tokio::test]
async fn logical_capture_without_wal_level_logical() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE users (id integer PRIMARY KEY, name text)").await;
    let wal_level = src.engine().await.scalar("SHOW wal_level").await.unwrap().unwrap_or_default();
    if wal_level == "logical" {
        return; // this server can decode: tests/live.rs covers it
    }
    let ws = Workspace::new(FERRY);
    let text = spec(&src, &dst, "[[table]]\nfrom = \"users\"\n");
    ws.write_spec(&text.replacen("\n\n[target]", "\ncapture = \"logical\"\n\n[target]", 1));
    assert_error(&ws.run(&["run"]), &["wal_level is `replica`", "wal_level = logical", "restart"]);
    assert!(!dst.engine().await.table_exists(&ferry_core::TableName::parse("users")).await.unwrap(), "nothing created");
    assert!(src.ferry_objects().await.is_empty(), "{:?}", src.ferry_objects().await);
}

/// On a MySQL/MariaDB source without a row-based binary log, the run stops
/// before expand creates anything, and says which settings it needs.
#[tokio::test]
async fn binlog_capture_without_a_binary_log() {
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE users (id integer PRIMARY KEY, name text)").await;
    if src.engine().await.scalar("SELECT @@log_bin").await.unwrap().as_deref() == Some("1") {
        return; // this server has one: tests/live.rs covers it
    }
    let ws = Workspace::new(FERRY);
    let text = spec(&src, &dst, "[[table]]\nfrom = \"users\"\n");
    ws.write_spec(&text.replacen("\n\n[target]", "\ncapture = \"binlog\"\n\n[target]", 1));
    assert_error(&ws.run(&["run"]), &["capture = \"binlog\"", "log_bin = OFF", "binlog_format = ROW"]);
    assert!(!dst.engine().await.table_exists(&ferry_core::TableName::parse("users")).await.unwrap(), "nothing created");
    assert!(src.ferry_objects().await.is_empty(), "{:?}", src.ferry_objects().await);
    ws.write_spec(&text.replacen("\n\n[target]", "\ncapture = \"logical\"\n\n[target]", 1));
    assert_error(&ws.run(&["run"]), &["needs a PostgreSQL source; a mysql source captures with triggers"]);
}

/// Values that parse but cannot be meant are refused, saying what would be.
#[test]
fn values_out_of_range_and_near_misses() {
    let ws = sqlite_workspace();
    ws.write_spec(&format!("{SOURCE_ONLY}[policy]\nmax_error_rate = \"200%\"\n"));
    assert_error(&ws.run(&["run"]), &["max_error_rate", "between 0% and 100%"]);
    ws.write_spec(&SOURCE_ONLY.replace("sqlite:target.db", "postgres:/app"));
    assert_error(&ws.run(&["run"]), &["missing the `//` after `postgres:`", "postgres://user@host:port/database"]);
    std::fs::write(ws.spec_path(), b"[migration]\nowner = \"\xff\xfe\"\n").unwrap();
    assert_error(&ws.run(&["run"]), &["save the spec as UTF-8 text"]);
    let diff = ws.run(&["diff", "sqlite:source.db#users", "sqlite:source.db#users", "--chunk-rows", "0"]);
    diff.assert_code(2);
    assert!(diff.stderr.contains("--chunk-rows"), "{diff}");
    assert_error(&ws.run(&["diff", "sqlite:source.db#users#x", "sqlite:source.db#users"]), &["more than one `#`"]);
}

/// `ferry init --spec x.toml` writes x.toml (the global --spec names the spec everywhere).
#[test]
fn init_writes_where_spec_points() {
    let ws = sqlite_workspace();
    let ran = ws.run(&[
        "--spec",
        "named.toml",
        "init",
        "--source",
        "sqlite:source.db",
        "--target",
        "sqlite:t.db",
        "--table",
        "users",
    ]);
    ran.assert_code(0);
    assert!(ws.path().join("named.toml").exists(), "{ran}");
    assert!(!ws.path().join("ferry.toml").exists(), "{ran}");
}

/// A rename into a name the source table already has is refused at plan and
/// run time, naming both columns and the two ways out.
#[test]
fn rename_into_an_existing_column() {
    let ws = sqlite_workspace();
    ws.write_spec(&format!("{SOURCE_ONLY}[table.columns]\nage = \"name\"\n"));
    for command in ["plan", "run"] {
        assert_error(
            &ws.run(&[command]),
            &["ferry.toml:9:", "`columns.age` renames `name` to `age`", "exclude = [\"age\"]"],
        );
    }
    let target = ws.path().join("target.db");
    assert!(!target.exists() || rusqlite_open(&target).prepare("SELECT 1 FROM users").is_err(), "nothing was created");
    ws.write_spec(&format!("{SOURCE_ONLY}exclude = [\"age\"]\n[table.columns]\nage = \"name\"\n"));
    ws.run(&["run"]).assert_code(0);
}

/// A server that accepts the connection and never answers is an error
/// after the connect timeout, not a hang.
#[test]
fn a_server_that_never_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream); // accepted, never answered
        }
    });
    let ws = sqlite_workspace();
    ws.write_spec(
        &SOURCE_ONLY
            .replace("sqlite:target.db", &format!("postgres://postgres@127.0.0.1:{port}/app?connect_timeout=2")),
    );
    let started = std::time::Instant::now();
    let ran = ws.run(&["plan"]);
    assert_error(&ran, &["did not answer within 2s", "127.0.0.1"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
}

/// A password written as is, `/`, `@` and `#` included, reaches the server
/// whole, and no output ever shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_with_url_characters() {
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);").await;
    let user = format!("u{}", &src.name[src.name.len() - 8..]).replace('_', "");
    let password = "Tr0ub/4d#r@x?y";
    src.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; GRANT ALL ON `{}`.* TO '{user}'@'%'; \
         GRANT RELOAD, PROCESS, REPLICATION CLIENT ON *.* TO '{user}'@'%';",
        src.name
    ))
    .await;
    let url = src.url.replacen("mysql://root@", &format!("mysql://{user}:{password}@"), 1);
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n").replace(&src.url, &url));
    let ran = ws.run(&["run"]);
    let status = ws.run(&["status", "--json"]);
    let diff = ws.run(&["diff", &format!("{url}#t"), &format!("{url}#nope")]);
    src.exec(&format!("DROP USER '{user}'@'%';")).await;
    ran.assert_code(0);
    status.assert_code(0);
    assert_error(&diff, &["nope"]);
    for out in [&ran, &status, &diff] {
        assert!(!out.stdout.contains("Tr0ub") && !out.stderr.contains("Tr0ub"), "{out}");
    }
    assert!(status.stdout.contains(&format!("mysql://{user}:***@127.0.0.1")), "{status}");
    let written: Vec<_> = walk(ws.path());
    for file in written {
        let text = std::fs::read(&file).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&text).contains("Tr0ub/4d"), "{} holds the password", file.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.file_name().is_some_and(|n| n != "ferry.toml") {
            out.push(path);
        }
    }
    out
}

/// SQL of the spec that the source refuses or that fails on the first rows
/// (a filter naming a column that does not exist; on PostgreSQL, a computed
/// column dividing by zero) stops the run before expand creates anything,
/// naming the side and the spec line, the table read once.
async fn source_refuses_the_specs_sql(kind: Kind) {
    let src = TestDb::new(kind).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY, v integer)").await;
    src.exec("INSERT INTO t VALUES (1, 0), (2, 5)").await;
    let ws = Workspace::new(FERRY);
    let mut cases = vec!["[[table]]\nfrom = \"t\"\nfilter = \"nosuch > 3\"\n"];
    if kind == Kind::Postgres {
        cases.push("[[table]]\nfrom = \"t\"\n[table.columns]\nv = { expr = \"100 / v\" }\n");
    }
    for case in cases {
        ws.write_spec(&spec(&src, &dst, case));
        let ran = ws.run(&["run"]);
        assert_error(
            &ran,
            &["source table t (the [[table]] at spec line 12)", "expand stopped before creating anything more"],
        );
        assert!(!ran.stderr.contains("reading t: reading t"), "said once:\n{ran}");
        assert!(src.ferry_objects().await.is_empty(), "no capture: {:?}", src.ferry_objects().await);
        let target = dst.engine().await;
        assert!(!target.table_exists(&ferry_core::TableName::parse("t")).await.unwrap(), "no target table\n{ran}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_refuses_the_specs_sql_postgres() {
    source_refuses_the_specs_sql(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_refuses_the_specs_sql_mysql() {
    source_refuses_the_specs_sql(Kind::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_refuses_the_specs_sql_sqlite() {
    source_refuses_the_specs_sql(Kind::Sqlite).await;
}

/// A migration of table `t` whose URLs log in as `user` instead of `admin`.
fn workspace_as(src: &TestDb, dst: &TestDb, admin: &str, user: &str) -> Workspace {
    let as_user = |url: &str| url.replacen(&format!("{admin}@"), &format!("{user}@"), 1);
    let ws = Workspace::new(FERRY);
    let text = spec(src, dst, "[[table]]\nfrom = \"t\"\n");
    ws.write_spec(&text.replace(&src.url, &as_user(&src.url)).replace(&dst.url, &as_user(&dst.url)));
    ws
}

/// A PostgreSQL user without the privileges a migration needs is told, before
/// anything is created, every GRANT that is missing on either side; once
/// granted, the same run goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_privileges_are_listed_before_anything_is_created() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY, v integer); INSERT INTO t VALUES (1, 2)").await;
    let role = format!("ferry_limited_{}", src.name.rsplit('_').next().unwrap_or("x"));
    src.exec(&format!("CREATE ROLE {role} LOGIN; GRANT SELECT ON t TO {role}")).await;
    let ws = workspace_as(&src, &dst, "postgres", &role);

    let ran = ws.run(&["run"]);
    assert_error(
        &ran,
        &[
            "E304",
            &format!("source (postgres://{role}@"),
            &format!("GRANT \"postgres\" TO \"{role}\" (the owner of \"t\""),
            &format!("GRANT CREATE ON SCHEMA \"public\" TO \"{role}\""),
            &format!("target (postgres://{role}@"),
            "expand stopped before creating anything more",
        ],
    );
    assert!(src.ferry_objects().await.is_empty(), "{:?}", src.ferry_objects().await);
    assert!(!dst.engine().await.table_exists(&ferry_core::TableName::parse("t")).await.unwrap());

    src.exec(&format!("ALTER TABLE t OWNER TO {role}; GRANT CREATE ON SCHEMA public TO {role}")).await;
    dst.exec(&format!("GRANT CREATE ON SCHEMA public TO {role}")).await;
    let ran = ws.run(&["run"]);
    ran.assert_code(0);
    ws.run(&["rollback"]).assert_code(0);
    for db in [&src, &dst] {
        db.exec(&format!("DROP OWNED BY {role}")).await;
    }
    src.exec(&format!("DROP ROLE {role}")).await;
}

/// The same on MariaDB, read from `SHOW GRANTS`: a user who may only read
/// the source table is told the CREATE and TRIGGER grants it lacks, on each
/// side, before anything is created; once granted, the run goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_mariadb_privileges_are_listed_before_anything_is_created() {
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Mysql).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY, v integer); INSERT INTO t VALUES (1, 2)").await;
    let role = format!("ferry_limited_{}", src.name.rsplit('_').next().unwrap_or("x"));
    // Connecting to a database needs some privilege on it: reading is all it has.
    src.exec(&format!(
        "CREATE USER '{role}'@'%'; GRANT SELECT ON `{}`.t TO '{role}'@'%'; GRANT SELECT ON `{}`.* TO '{role}'@'%'",
        src.name, dst.name
    ))
    .await;
    let ws = workspace_as(&src, &dst, "root", &role);

    let ran = ws.run(&["run"]);
    assert_error(
        &ran,
        &[
            "E304",
            &format!("GRANT CREATE ON `{}`.* TO '{role}'@'%'", src.name),
            &format!("GRANT TRIGGER ON `{}`.`t` TO '{role}'@'%'", src.name),
            &format!("GRANT CREATE ON `{}`.* TO '{role}'@'%'", dst.name),
        ],
    );
    assert!(src.ferry_objects().await.is_empty(), "{:?}", src.ferry_objects().await);
    assert!(!dst.engine().await.table_exists(&ferry_core::TableName::parse("t")).await.unwrap());

    src.exec(&format!("GRANT ALL ON `{}`.* TO '{role}'@'%'; GRANT ALL ON `{}`.* TO '{role}'@'%'", src.name, dst.name))
        .await;
    let ran = ws.run(&["run"]);
    let _ = ws.run(&["rollback"]);
    src.exec(&format!("DROP USER '{role}'@'%'")).await;
    ran.assert_code(0);
}
