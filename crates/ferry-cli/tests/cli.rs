//! The commands end to end: demo, init -> run, status, verify finding a difference.

use ferry_testkit::{spec, Kind, TestDb, Workspace};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

#[test]
fn demo_runs_without_any_server() {
    let ws = Workspace::new(FERRY);
    let dir = ws.path().join("demo");
    let ran = ws.run(&["demo", "--dir", dir.to_str().unwrap()]);
    ran.assert_code(0);
    for needle in ["200,000 users and 500,000 sessions", "rows copied   700,000", "verification  passed", "rows/s"] {
        assert!(ran.stdout.contains(needle), "demo output should contain {needle:?}\n{ran}");
    }
    let status = ws.run(&["--spec", dir.join("ferry.toml").to_str().unwrap(), "status", "--json"]);
    status.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["verification"], "pass", "{json:#}");
    assert_eq!(json["phase"], "verify");
    assert_eq!(json["tables"][0]["rows_copied"], 200_000);
    assert_eq!(json["tables"][1]["rows_copied"], 500_000);
    let audit = std::fs::read_to_string(dir.join(".ferry/ferry/audit.log")).unwrap();
    assert!(audit.contains("phase-started: phase=2 \"backfill\""), "{audit}");
    // SQLite has no server whose load could brake the copy: an idle machine shows no pause.
    assert!(!audit.contains("throttle-paused") && !audit.contains("throttle-paced"), "{audit}");
    assert!(!ran.stderr.contains("pausing"), "{ran}");
    assert!(
        audit.contains("integrity-check: phase=4, rows_expected=500000, rows_actual=500000, checksum=pass"),
        "{audit}"
    );
    // a second demo into the same directory is refused rather than mixed up
    ws.run(&["demo", "--dir", dir.to_str().unwrap()]).assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_a_spec_that_runs() {
    let src = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL UNIQUE, balance numeric(12,2));
         CREATE TABLE events (account_id int NOT NULL REFERENCES accounts (id), seq int NOT NULL, kind text,
                              PRIMARY KEY (account_id, seq));
         INSERT INTO accounts (email, balance) SELECT 'a' || g || '@example.com', g * 1.5 FROM generate_series(1, 500) g;
         INSERT INTO events SELECT (g % 500) + 1, g, 'k' || (g % 7) FROM generate_series(1, 3000) g;",
    )
    .await;
    let ws = Workspace::new(FERRY);
    // A password in the URL stays out of the file (trust auth ignores it here).
    let url = src.url.replacen("postgres://postgres@", "postgres://postgres:s3cret@", 1);
    // Without the [migration] answers the spec is written with them open, and run waits.
    let ran =
        ws.run(&["init", "--source", &url, "--target", "sqlite:copy.db", "--table", "accounts", "-o", "open.toml"]);
    ran.assert_code(0);
    assert!(ran.stderr.contains("open questions"), "{ran}");
    let open = std::fs::read_to_string(ws.path().join("open.toml")).unwrap();
    assert!(open.contains("# downtime = ") && open.contains("OPEN QUESTION"), "{open}");
    let blocked = ws.command(&["--spec", "open.toml", "run"]).env("FERRY_SOURCE_PASSWORD", "s3cret").output().unwrap();
    assert_eq!(blocked.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&blocked.stderr).contains("migration.downtime"));

    let ran = ws.run(&[
        "init",
        "--source",
        &url,
        "--target",
        "sqlite:copy.db",
        "--table",
        "accounts",
        "--table",
        "events",
        "--downtime",
        "0s",
        "--rollback",
        "lossless",
        "--owner",
        "dba@example.com",
    ]);
    ran.assert_code(0);
    let bad = ws.run(&[
        "init",
        "--source",
        &url,
        "--target",
        "sqlite:x.db",
        "--table",
        "accounts",
        "-o",
        "bad.toml",
        "--rollback",
        "maybe",
    ]);
    assert_eq!(bad.code, Some(2), "{bad}");
    let text = std::fs::read_to_string(ws.spec_path()).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("${FERRY_SOURCE_PASSWORD}"), "{text}");
    assert!(ran.stderr.contains("export FERRY_SOURCE_PASSWORD"), "{ran}");
    assert!(text.contains("from = \"events\"") && text.contains("account_id"), "{text}");

    // Without the variable the run explains itself; with it, it works.
    ws.run(&["run"]).assert_code(2);
    let out = ws.command(&["run"]).env("FERRY_SOURCE_PASSWORD", "s3cret").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let copy = ferry_testkit::rusqlite::Connection::open(ws.path().join("copy.db")).unwrap();
    let n: i64 = copy.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_verify_tell_the_truth() {
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE products (sku varchar(20) PRIMARY KEY, name varchar(100) NOT NULL, price decimal(10,2), stock int unsigned);
         INSERT INTO products VALUES ('A-1', 'Ünïcode ☕', 3.50, 10), ('B-2', 'Plain', 12.00, NULL), ('C-3', 'Emoji 🧪', NULL, 4000000000);",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"products\"\n"));

    let before = ws.run(&["status"]);
    before.assert_code(0);
    assert!(before.stdout.contains("not started"), "{before}");

    ws.run(&["run"]).assert_code(0);
    let status = ws.run(&["status"]);
    assert!(status.stdout.contains("4 verify (completed)"), "{status}");
    assert!(status.stdout.contains("3/3 rows (100.0%), backfill complete"), "{status}");
    assert!(status.stdout.contains("verification pass"), "{status}");
    let json = ws.status_json();
    assert_eq!(json["tables"][0]["last_key"], "sku=\"C-3\"", "{json:#}");

    let verify = ws.run(&["verify"]);
    verify.assert_code(0);
    assert!(verify.stdout.contains("PASS  products -> products: rows 3 / 3, checksum equal"), "{verify}");

    // Break the target three ways: verify finds exactly those rows.
    dst.exec(
        "DELETE FROM products WHERE sku = 'A-1';
         UPDATE products SET price = 12.01 WHERE sku = 'B-2';
         INSERT INTO products VALUES ('Z-9', 'Stray', 1, 1);",
    )
    .await;
    let verify = ws.run(&["verify"]);
    verify.assert_code(1);
    for needle in [
        "FAIL  products -> products: rows 3 / 3, checksum DIFFERENT",
        "3 row(s) differ",
        "missing in target  sku=\"A-1\"",
        "extra in target    sku=\"Z-9\"",
        "different          sku=\"B-2\"",
        "price: source 12.00 / target 12.01",
    ] {
        assert!(verify.stdout.contains(needle), "verify should report {needle:?}\n{verify}");
    }
    assert_eq!(ws.status_json()["verification"], "fail");
    assert!(ws.audit_log().contains("rows_expected=3, rows_actual=3, checksum=fail"), "{}", ws.audit_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_stops_after_a_phase_and_run_continues() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');").await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n"));
    let ran = ws.run(&["run", "--until", "expand"]);
    ran.assert_code(0);
    assert_eq!(dst.count("t").await, 0, "expand creates, copies nothing");
    let ran = ws.run(&["run", "--until", "backfill"]);
    ran.assert_code(0);
    assert!(ran.stdout.contains("stopped after phase 2 backfill"), "{ran}");
    let status = ws.status_json();
    assert_eq!(status["phase"], "backfill");
    assert!(status["verification"].is_null(), "{status:#}");
    ws.run(&["run"]).assert_code(0);
    assert_eq!(ws.status_json()["verification"], "pass");
    assert_error_code(&ws.run(&["run", "--until", "cutover"]), "not implemented yet");
}

/// After `ferry plan`, the `ferry run` that copies and verifies every row
/// says what the plan estimated and what it took, and records both; a run
/// that copies nothing has nothing to compare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_compares_itself_with_the_plans_estimate() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 3000)
         INSERT INTO t SELECT n, 'row ' || n FROM g;",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n"));
    let planned = ws.run(&["plan", "--output", "out"]);
    assert!(planned.code == Some(0) || planned.code == Some(1), "{planned}");
    let ran = ws.run(&["run"]);
    ran.assert_code(0);
    assert!(ran.stdout.contains("`ferry plan` estimated "), "{ran}");
    assert!(
        ran.stdout.contains("x the estimate, inside its range)")
            || ran.stdout.contains("x the estimate, outside its range)"),
        "{ran}"
    );
    // Each phase the run went through, estimated and taken.
    for phase in ["expand", "backfill", "verify"] {
        assert!(
            ran.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(phase) && l.contains("estimated") && l.contains("took")),
            "{phase}: {ran}"
        );
    }
    let audit = ws.audit_log();
    let checked: Vec<&str> = audit.lines().filter(|l| l.contains("estimate-checked: estimated_ms=")).collect();
    assert_eq!(checked.len(), 1, "{audit}");
    assert!(
        checked[0].contains("low_ms=") && checked[0].contains("high_ms=") && checked[0].contains("by_phase=\"expand "),
        "{audit}"
    );
    let planned_ms = audit
        .lines()
        .find_map(|l| l.split("estimated_duration=").nth(1))
        .expect("the plan's estimate in the audit log");
    assert!(!planned_ms.is_empty());

    let again = ws.run(&["run"]);
    again.assert_code(0);
    assert!(!again.stdout.contains("`ferry plan` estimated"), "nothing copied, nothing compared: {again}");
}

#[track_caller]
fn assert_error_code(ran: &ferry_testkit::Ran, needle: &str) {
    ran.assert_code(2);
    assert!(ran.stderr.contains(needle), "{ran}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_added_to_a_finished_migration_is_moved_too() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO a VALUES (1, 'x');
         CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO b VALUES (1, 'y'), (2, 'z');",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"a\"\n"));
    ws.run(&["run"]).assert_code(0);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"a\"\n\n[[table]]\nfrom = \"b\"\n"));
    let ran = ws.run(&["run"]);
    ran.assert_code(0);
    assert_eq!(dst.count("b").await, 2, "{ran}");
    let status = ws.status_json();
    assert_eq!(status["verification"], "pass", "{status:#}");
    assert_eq!(status["tables"][0]["batches"], 1, "table a was not copied again\n{status:#}");

    // Editing an entry after its backfill is refused with a way out.
    ws.write_spec(&spec(
        &src,
        &dst,
        "[[table]]\nfrom = \"a\"\nto = \"a2\"\n\n[[table]]\nfrom = \"b\"\nfilter = \"id > 1\"\n",
    ));
    let ran = ws.run(&["run"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("changed after its backfill started"), "{ran}");
}

/// Every `ferry <command>` that the README, docs/, the help and lint texts in
/// the code, or a plan (the snapshots) names is one `ferry --help` lists.
#[test]
fn documents_name_only_commands_that_exist() {
    let help = std::process::Command::new(FERRY).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(commands.contains(&"contract".to_string()), "{help}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs"), root.join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("target") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md" || e == "rs" || e == "snap") {
                files.push(path);
            }
        }
    }
    let named = regex_lite::Regex::new(r"`ferry ([a-z][a-z-]+)").unwrap();
    let mut unknown = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let mut found: Vec<String> = named.captures_iter(&text).map(|c| c[1].to_string()).collect();
        if file.extension().is_some_and(|e| e == "snap" || e == "md") {
            found.extend(
                text.lines()
                    .filter_map(|l| l.trim_start().strip_prefix("ferry "))
                    .filter_map(|rest| rest.split_whitespace().next().map(str::to_string))
                    .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-')),
            );
        }
        for command in found.into_iter().filter(|c| !commands.contains(c)) {
            unknown.push(format!("{}: ferry {command}", file.display()));
        }
    }
    assert!(unknown.is_empty(), "commands that do not exist:\n{}", unknown.join("\n"));
}

/// docs/engines.md's table of capabilities is what each engine says of itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_state_each_engine_s_capabilities() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let docs = std::fs::read_to_string(root.join("docs/engines.md")).unwrap();
    let row = |name: &str| -> Vec<String> {
        let line = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("docs/engines.md has no row for `{name}`"));
        line.split('|').skip(2).take(3).map(|cell| cell.trim().to_string()).collect()
    };
    for (column, kind) in [Kind::Sqlite, Kind::Postgres, Kind::Mysql].into_iter().enumerate() {
        let db = TestDb::new(kind).await;
        // Destructured whole: a new capability does not compile here until the docs say it.
        let ferry_engine::Capabilities {
            server,
            transactional_ddl,
            concurrent_writers,
            checksums_in_database,
            adds_foreign_keys_later,
            pads_trailing_spaces,
            builds_indexes_online,
            validates_foreign_keys_online,
            alters_by_rebuilding,
            enum_columns,
            tinyint_booleans,
        } = db.engine().await.capabilities();
        let said = |yes: bool| if yes { "yes" } else { "no" };
        for (name, value) in [
            ("server", server),
            ("transactional_ddl", transactional_ddl),
            ("concurrent_writers", concurrent_writers),
            ("checksums_in_database", checksums_in_database),
            ("adds_foreign_keys_later", adds_foreign_keys_later),
            ("builds_indexes_online", builds_indexes_online),
            ("validates_foreign_keys_online", validates_foreign_keys_online),
            ("alters_by_rebuilding", alters_by_rebuilding),
            ("enum_columns", enum_columns),
            ("tinyint_booleans", tinyint_booleans),
        ] {
            assert_eq!(row(name)[column], said(value), "{kind}: `{name}` in docs/engines.md");
        }
        // A MariaDB/MySQL server's default collation decides it: the docs name the condition.
        let pads = &row("pads_trailing_spaces")[column];
        assert!(pads == said(pads_trailing_spaces) || pads.starts_with("with "), "{kind}: {pads}");
    }
}

/// Every crate's Cargo.toml says, in a comment above it, why it depends on
/// each library outside the workspace: a dependency nobody can justify goes.
#[test]
fn every_dependency_says_why() {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut unexplained = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let mut section = "";
        let mut previous = "";
        for line in text.lines() {
            if line.starts_with('[') {
                section = line;
            } else if section == "[dependencies]"
                && !line.trim().is_empty()
                && !line.starts_with('#')
                && !line.starts_with("ferry-")
                && !previous.starts_with('#')
            {
                unexplained.push(format!("{}: {line}", manifest.display()));
            }
            previous = line;
        }
    }
    assert!(unexplained.is_empty(), "dependencies without a comment saying why:\n{}", unexplained.join("\n"));
}

/// `ferry status | head -1`: a reader that goes away ends the command
/// quietly (exit 0, nothing on stderr), not with a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_is_a_quiet_exit() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY); INSERT INTO t VALUES (1);").await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n"));
    ws.run(&["run"]).assert_code(0);
    for args in [&["status"][..], &["status", "--json"][..], &["audit", "verify"][..]] {
        let mut child =
            ws.command(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        // The reader is gone before ferry writes a byte.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "ferry {}: {stderr}", args.join(" "));
        assert!(!stderr.contains("panicked"), "ferry {}: {stderr}", args.join(" "));
    }
}

/// `ferry status`, `pause`, `resume` and `audit verify` read the state store
/// only: they work without the databases' passwords in the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_commands_need_no_passwords() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY); INSERT INTO t VALUES (1);").await;
    let ws = Workspace::new(FERRY);
    let url = src.url.replacen("postgres://postgres@", "postgres://postgres:${FERRY_TEST_SECRET}@", 1);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n").replace(&src.url, &url));
    let ran = ws.command(&["run"]).env("FERRY_TEST_SECRET", "s3cret-value").output().unwrap();
    assert_eq!(ran.status.code(), Some(0), "{}", String::from_utf8_lossy(&ran.stderr));
    for args in [&["status"][..], &["status", "--json"][..], &["pause"][..], &["resume"][..], &["audit", "verify"][..]]
    {
        let out = ws.command(args).env_remove("FERRY_TEST_SECRET").output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "ferry {}: {stdout}{stderr}", args.join(" "));
        assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"), "{stdout}{stderr}");
    }
    // Commands that connect still say what is missing.
    let out = ws.command(&["verify"]).env_remove("FERRY_TEST_SECRET").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FERRY_TEST_SECRET` is not set"));
}

/// SIGTERM (as Ctrl-C) stops a command at a batch boundary with exit 130:
/// the run's phase is recorded as stopped, not failed, and `ferry sync
/// --follow` exits 130 too; running the command again goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_as_asked_is_not_failed() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    let rows: Vec<String> = (1..=3000).map(|i| format!("({i})")).collect();
    src.exec(&format!("CREATE TABLE t (id integer PRIMARY KEY); INSERT INTO t VALUES {};", rows.join(", "))).await;
    let ws = Workspace::new(FERRY);
    let slow = "[policy]\nbatch_size = 100\nbatch_pause = \"50ms\"\n\n[[table]]\nfrom = \"t\"\n";
    ws.write_spec(&spec(&src, &dst, slow));
    let term = |child: &std::process::Child| {
        let sent = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(sent.success());
    };

    let mut run = ws.spawn_quiet(&["run"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap_or(0) == 0 {
        assert!(std::time::Instant::now() < deadline, "the backfill did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    term(&run);
    assert_eq!(run.wait().unwrap().code(), Some(130));
    let status = ws.status_json();
    let backfill = status["phases"].as_array().unwrap().iter().find(|p| p["name"] == "backfill").unwrap().clone();
    assert_eq!(backfill["state"], "stopped", "{status:#}");
    assert!(ws.audit_log().contains("phase-stopped: phase=2"), "{}", ws.audit_log());
    assert!(!ws.audit_log().contains("phase-failed"), "{}", ws.audit_log());
    ws.run(&["run"]).assert_code(0);

    let mut follow = ws.spawn_quiet(&["sync", "--follow"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    term(&follow);
    assert_eq!(follow.wait().unwrap().code(), Some(130));
}

/// Two specs in one folder keep their own state stores (`.ferry/<stem>/`);
/// a migration started in the shared `.ferry/state.db` of earlier versions
/// goes on there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_spec_has_its_own_state_store() {
    let src = TestDb::new(Kind::Sqlite).await;
    let (one, two) = (TestDb::new(Kind::Sqlite).await, TestDb::new(Kind::Sqlite).await);
    src.exec("CREATE TABLE t (id integer PRIMARY KEY); INSERT INTO t VALUES (1);").await;
    let ws = Workspace::new(FERRY);
    std::fs::write(ws.path().join("one.toml"), spec(&src, &one, "[[table]]\nfrom = \"t\"\n")).unwrap();
    std::fs::write(ws.path().join("two.toml"), spec(&src, &two, "[[table]]\nfrom = \"t\"\n")).unwrap();
    ws.run(&["--spec", "one.toml", "run"]).assert_code(0);
    ws.run(&["--spec", "two.toml", "run"]).assert_code(0);
    assert!(ws.path().join(".ferry/one/state.db").exists() && ws.path().join(".ferry/two/state.db").exists());

    // An older migration's shared store.
    let legacy = TestDb::new(Kind::Sqlite).await;
    let text = spec(&src, &legacy, "[[table]]\nfrom = \"t\"\n");
    std::fs::write(ws.path().join("old.toml"), format!("{text}\n[state]\nurl = \"sqlite:.ferry/state.db\"\n")).unwrap();
    ws.run(&["--spec", "old.toml", "run", "--until", "expand"]).assert_code(0);
    std::fs::write(ws.path().join("old.toml"), &text).unwrap();
    let status = ws.run(&["--spec", "old.toml", "status", "--json"]);
    status.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["phase"], "expand", "{json:#}");
    assert!(!ws.path().join(".ferry/old").exists());
}
