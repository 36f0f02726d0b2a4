//! Test support: a fresh database per test on the real servers, the engine
//! matrix, and a runner for the real `ferry` binary that prints everything
//! useful when a test fails.
//!
//! Servers come from `FERRY_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`)
//! and `FERRY_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306`).

pub mod certs;
pub mod conformance;
pub mod fixtures;
mod logical;
mod mariadb;

pub use logical::LogicalPostgres;
pub use mariadb::PrivateMariadb;

use ferry_core::{DataType, Row, TableName, Value};
use ferry_engine::{Engine, EngineKind, ReadSpec, SelectItem};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

pub use ferry_engine::EngineKind as Kind;

pub const ALL: [EngineKind; 3] = [EngineKind::Sqlite, EngineKind::Postgres, EngineKind::Mysql];

pub fn pg_server() -> String {
    std::env::var("FERRY_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn mysql_server() -> String {
    std::env::var("FERRY_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), fastrand::u32(..0xffff))
}

/// A database of its own for one test; dropped (server) or deleted (file) at the end.
pub struct TestDb {
    pub kind: EngineKind,
    pub url: String,
    pub name: String,
    /// The server URL without a database (PostgreSQL, MySQL).
    server: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(kind: EngineKind) -> TestDb {
        let server = match kind {
            EngineKind::Mysql => mysql_server(),
            _ => pg_server(),
        };
        TestDb::on(kind, &server).await
    }

    /// A database on a given server (`postgres://...` or `mysql://...`, no database).
    pub async fn on(kind: EngineKind, server: &str) -> TestDb {
        let name = unique_name("ferrytest");
        let server = server.to_string();
        match kind {
            EngineKind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join(format!("{name}.db"));
                // Sources must exist: create the empty file.
                rusqlite::Connection::open(&path).expect("create sqlite file");
                TestDb { kind, url: format!("sqlite:{}", path.display()), name, server, _dir: Some(dir) }
            }
            EngineKind::Postgres => {
                let (client, conn) =
                    tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await.unwrap_or_else(
                        |e| panic!("PostgreSQL at {server} is not reachable ({e}); run scripts/test to set it up"),
                    );
                tokio::spawn(conn);
                client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create database");
                TestDb { kind, url: format!("{server}/{name}"), name, server, _dir: None }
            }
            EngineKind::Mysql => {
                let pool = mysql_async::Pool::new(server.as_str());
                let mut conn = pool.get_conn().await.unwrap_or_else(|e| {
                    panic!("MariaDB at {server} is not reachable ({e}); run scripts/test to set it up")
                });
                use mysql_async::prelude::Queryable;
                conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
                    .await
                    .expect("create database");
                drop(conn);
                let _ = pool.disconnect().await;
                TestDb { kind, url: format!("{server}/{name}"), name, server, _dir: None }
            }
        }
    }

    pub fn path(&self) -> Option<PathBuf> {
        self.url.strip_prefix("sqlite:").map(PathBuf::from)
    }

    /// Runs SQL in this database, with the engine's own driver.
    pub async fn exec(&self, sql: &str) {
        match self.kind {
            EngineKind::Sqlite => {
                let conn = rusqlite::Connection::open(self.path().unwrap()).unwrap();
                conn.execute_batch(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
            }
            EngineKind::Postgres => {
                let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{e:?}\n{sql}"));
            }
            EngineKind::Mysql => {
                use mysql_async::prelude::Queryable;
                let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&self.url).unwrap()).await.unwrap();
                conn.query_drop("SET NAMES utf8mb4").await.unwrap();
                conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
                let _ = conn.disconnect().await;
            }
        }
    }

    /// Ferry's engine for this database.
    pub async fn engine(&self) -> Arc<dyn Engine> {
        ferry_run::connect::open(&self.url, Path::new("/"), ferry_run::connect::Role::Target).await.expect("connect")
    }

    /// Every row of `table` (all columns), converted to `types`, ordered by canonical key bytes.
    pub async fn rows(&self, table: &str, key: &[&str], columns: &[&str], types: &[DataType]) -> Vec<Row> {
        let engine = self.engine().await;
        let read = ReadSpec {
            table: TableName::parse(table),
            select: columns.iter().map(|c| SelectItem::Column(c.to_string())).collect(),
            key: key.iter().map(|k| k.to_string()).collect(),
            key_positions: key.iter().map(|k| columns.iter().position(|c| c == k).expect("key in columns")).collect(),
            filter: None,
        };
        let mut out = Vec::new();
        let mut after: Option<Vec<Value>> = None;
        loop {
            let batch = engine.read_batch(&read, after.as_deref(), 1000).await.expect("read");
            let done = batch.len() < 1000;
            if let Some(last) = batch.last() {
                after = Some(read.key_of(last));
            }
            for row in batch {
                let converted: Row = row
                    .into_iter()
                    .zip(types)
                    .map(|(v, t)| ferry_core::convert::convert(v, t).expect("convertible"))
                    .collect();
                out.push(converted);
            }
            if done {
                break;
            }
        }
        out.sort_by_key(|r| Value::encode_row(&read.key_positions.iter().map(|&i| r[i].clone()).collect::<Vec<_>>()));
        out
    }

    /// The migration's `ferry_routing` row, as an application reads it: (read_percent, writes_to).
    pub async fn routing_row(&self, migration: &str) -> Option<(i64, String)> {
        ferry_run::routing::read(&*self.engine().await, migration).await.expect("read ferry_routing")
    }

    pub async fn count(&self, table: &str) -> u64 {
        self.engine().await.count(&TableName::parse(table), None).await.expect("count")
    }

    /// A connection of its own, for tests that write while Ferry works.
    pub async fn session(&self) -> Session {
        match self.kind {
            EngineKind::Sqlite => {
                let conn = rusqlite::Connection::open(self.path().unwrap()).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                Session::Sqlite(conn)
            }
            EngineKind::Postgres => {
                let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                Session::Postgres(client)
            }
            EngineKind::Mysql => {
                use mysql_async::prelude::Queryable;
                let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&self.url).unwrap()).await.unwrap();
                conn.query_drop("SET NAMES utf8mb4").await.unwrap();
                conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
                Session::Mysql(conn)
            }
        }
    }

    /// Scratch databases Ferry made beside this one (`ferry_<purpose>_<name>`) and left.
    pub async fn scratch_databases(&self) -> Vec<String> {
        match self.kind {
            EngineKind::Sqlite => {
                let dir = self.path().unwrap().parent().unwrap().to_path_buf();
                std::fs::read_dir(dir)
                    .unwrap()
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("ferry_") && n.contains(&self.name))
                    .collect()
            }
            EngineKind::Postgres => {
                let (client, conn) =
                    tokio_postgres::connect(&format!("{}/postgres", self.server), tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                let pattern = format!("ferry\\_%{}", self.name);
                client
                    .query("SELECT datname::text FROM pg_database WHERE datname LIKE $1", &[&pattern])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect()
            }
            EngineKind::Mysql => {
                use mysql_async::prelude::Queryable;
                let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&self.url).unwrap()).await.unwrap();
                let names: Vec<String> = conn
                    .exec(
                        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
                        (format!("ferry\\_%{}", self.name),),
                    )
                    .await
                    .unwrap();
                let _ = conn.disconnect().await;
                names
            }
        }
    }

    /// Names of `ferry_`-prefixed objects (tables, sequences, triggers, functions;
    /// PostgreSQL publications and replication slots) left in this database.
    pub async fn ferry_objects(&self) -> Vec<String> {
        let sql = match self.kind {
            EngineKind::Sqlite => "SELECT name FROM sqlite_master WHERE name LIKE 'ferry\\_%' ESCAPE '\\'".to_string(),
            EngineKind::Postgres => "SELECT relname::text FROM pg_class WHERE relname LIKE 'ferry\\_%'
                 UNION ALL SELECT tgname::text FROM pg_trigger WHERE tgname LIKE 'ferry\\_%'
                 UNION ALL SELECT proname::text FROM pg_proc WHERE proname LIKE 'ferry\\_%'
                 UNION ALL SELECT pubname::text FROM pg_publication WHERE pubname LIKE 'ferry\\_%'
                 UNION ALL SELECT slot_name::text FROM pg_replication_slots
                     WHERE slot_name LIKE 'ferry\\_%' AND database = current_database()"
                .to_string(),
            EngineKind::Mysql => format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{0}' AND TABLE_NAME LIKE 'ferry\\_%'
                 UNION ALL SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{0}' AND TRIGGER_NAME LIKE 'ferry\\_%'",
                self.name
            ),
        };
        match self.kind {
            EngineKind::Sqlite => {
                let conn = rusqlite::Connection::open(self.path().unwrap()).unwrap();
                let mut stmt = conn.prepare(&sql).unwrap();
                stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
            }
            EngineKind::Postgres => {
                let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                client.query(&sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
            }
            EngineKind::Mysql => {
                use mysql_async::prelude::Queryable;
                let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&self.url).unwrap()).await.unwrap();
                let names: Vec<String> = conn.query(sql).await.unwrap();
                let _ = conn.disconnect().await;
                names
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (kind, name, server) = (self.kind, self.name.clone(), self.server.clone());
        if kind == EngineKind::Sqlite {
            return; // the temp dir goes with it
        }
        // Drop the database from a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                match kind {
                    EngineKind::Postgres => {
                        if let Ok((client, conn)) =
                            tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await
                        {
                            tokio::spawn(conn);
                            // A database with a logical replication slot cannot be dropped.
                            let _ = client
                                .execute(
                                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
                                    &[&name],
                                )
                                .await;
                            let _ =
                                client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                        }
                    }
                    EngineKind::Mysql => {
                        use mysql_async::prelude::Queryable;
                        if let Ok(mut conn) =
                            mysql_async::Conn::new(mysql_async::Opts::from_url(&server).unwrap()).await
                        {
                            let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`")).await;
                            let _ = conn.disconnect().await;
                        }
                    }
                    EngineKind::Sqlite => {}
                }
            });
        })
        .join();
    }
}

/// One open connection to a test database.
pub enum Session {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

impl Session {
    /// Runs SQL; returns the number of rows it changed (0 for several statements).
    pub async fn exec(&mut self, sql: &str) -> Result<u64, String> {
        match self {
            Session::Sqlite(c) => {
                if sql.trim_end().trim_end_matches(';').contains(';') {
                    c.execute_batch(sql).map(|_| 0).map_err(|e| e.to_string())
                } else {
                    c.execute(sql, []).map(|n| n as u64).map_err(|e| e.to_string())
                }
            }
            Session::Postgres(c) => {
                if sql.trim_end().trim_end_matches(';').contains(';') {
                    c.batch_execute(sql).await.map(|_| 0).map_err(|e| format!("{e:?}"))
                } else {
                    c.execute(sql, &[]).await.map_err(|e| format!("{e:?}"))
                }
            }
            Session::Mysql(c) => {
                use mysql_async::prelude::Queryable;
                c.query_drop(sql).await.map_err(|e| e.to_string())?;
                Ok(c.affected_rows())
            }
        }
    }
}

/// A working directory with a spec, and the `ferry` binary to run in it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub binary: PathBuf,
}

/// What a run of the binary did; `Display` shows all of it for assertion messages.
pub struct Ran {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ferry {}\nexit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

impl Ran {
    fn from(args: &[&str], out: Output) -> Ran {
        Ran {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Ran {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        self
    }
}

impl Workspace {
    pub fn new(binary: impl Into<PathBuf>) -> Workspace {
        Workspace { dir: tempfile::tempdir().expect("temp dir"), binary: binary.into() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn spec_path(&self) -> PathBuf {
        self.dir.path().join("ferry.toml")
    }

    pub fn write_spec(&self, text: &str) {
        std::fs::write(self.spec_path(), text).expect("write spec");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args).current_dir(self.path()).env_remove("FERRY_SPEC");
        cmd
    }

    /// Starts ferry in the background with its output discarded (to be killed).
    pub fn spawn_quiet(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ferry")
    }

    /// Runs ferry on a blocking thread, for tests that write to the database meanwhile.
    pub fn run_beside(&self, args: &[&str]) -> tokio::task::JoinHandle<Ran> {
        let mut command = self.command(args);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let out = command.output().expect("run ferry");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Ran::from(&args, out)
        })
    }

    pub fn run(&self, args: &[&str]) -> Ran {
        let out = self.command(args).output().expect("run ferry");
        Ran::from(args, out)
    }

    /// The capture scope the migration's state store chose (after its first command).
    pub fn capture_scope(&self) -> ferry_engine::CaptureScope {
        let state =
            ferry_run::state::StateStore::open(&self.path().join(".ferry/ferry/state.db")).expect("state store");
        let stored = state.meta("capture_scope").expect("read meta").expect("a capture scope: run a command first");
        ferry_engine::CaptureScope::parse(&stored).expect("a valid scope")
    }

    /// Starts `ferry ARGS` (`serve`, or a command with `--http`) and waits
    /// until it prints the dashboard's address.
    pub fn serving(&self, args: &[&str]) -> Served {
        let mut child = self
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start ferry");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let (log, found) = (log.clone(), found.clone());
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(url) = line.strip_prefix("dashboard: ") {
                        let _ = found.send(url.to_string());
                    }
                    log.lock().unwrap().push_str(&(line + "\n"));
                }
            });
        }
        let url = address.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("`ferry {}` printed no dashboard address:\n{}", args.join(" "), log.lock().unwrap())
        });
        let rest = url.strip_prefix("http://").expect("an http address");
        let (addr, fragment) = rest.split_once('/').expect("a path");
        let token = fragment.strip_prefix("#token=").map(str::to_string);
        Served { child, base: format!("http://{addr}"), token, log }
    }

    pub fn status_json(&self) -> serde_json::Value {
        let ran = self.run(&["status", "--json"]);
        ran.assert_code(0);
        serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("status --json is not JSON ({e})\n{ran}"))
    }

    pub fn audit_log(&self) -> String {
        std::fs::read_to_string(self.path().join(".ferry/ferry/audit.log")).unwrap_or_default()
    }
}

/// Polls `done` every 50 ms until it holds; fails the test naming `what` after `limit`.
#[track_caller]
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A ferry process serving HTTP; killed when dropped.
pub struct Served {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The token it generated (none when one was given).
    pub token: Option<String>,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything it printed so far, for assertion messages.
    pub fn output(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for it to exit by itself; its exit code.
    pub fn wait(&mut self, limit: std::time::Duration) -> Option<i32> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("ferry did not exit within {limit:?}:\n{}", self.output());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `[migration]` answers every test spec carries.
pub const MIGRATION: &str = "[migration]\ndowntime = \"0s\"\nrollback = \"lossless\"\nowner = \"ferry-tests\"\n\n";

/// A spec with one or more `[[table]]` entries appended verbatim.
pub fn spec(source: &TestDb, target: &TestDb, tables: &str) -> String {
    format!("{MIGRATION}[source]\nurl = \"{}\"\n\n[target]\nurl = \"{}\"\n\n{tables}", source.url, target.url)
}

/// Generates one `#[tokio::test]` per engine pair, calling `$body(source, target)`.
#[macro_export]
macro_rules! engine_matrix {
    ($body:ident) => {
        mod $body {
            use $crate::Kind::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_to_sqlite() {
                super::$body(Sqlite, Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_to_postgres() {
                super::$body(Sqlite, Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_to_mysql() {
                super::$body(Sqlite, Mysql).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_to_sqlite() {
                super::$body(Postgres, Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_to_postgres() {
                super::$body(Postgres, Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_to_mysql() {
                super::$body(Postgres, Mysql).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql_to_sqlite() {
                super::$body(Mysql, Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql_to_postgres() {
                super::$body(Mysql, Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql_to_mysql() {
                super::$body(Mysql, Mysql).await
            }
        }
    };
}

/// Drivers, re-exported so tests can set up fixtures directly.
pub use mysql_async;
pub use rusqlite;
pub use tokio_postgres;

/// A spec whose source and target are the same database: an in-place change.
pub fn spec_in_place(db: &TestDb, tables: &str) -> String {
    format!("{MIGRATION}[source]\nurl = \"{0}\"\n\n[target]\nurl = \"{0}\"\n\n{tables}", db.url)
}

impl Workspace {
    /// Runs `ferry plan --format json` and returns the plan; checks that
    /// it exits 1 exactly when the plan has error findings.
    pub fn plan_json(&self) -> serde_json::Value {
        let ran = self.run(&["plan", "--format", "json", "--output", "out"]);
        let text = std::fs::read_to_string(self.path().join("out/plan.json"))
            .unwrap_or_else(|e| panic!("plan.json not written ({e})\n{ran}"));
        let plan: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("plan.json is not JSON ({e})\n{ran}"));
        let errors = findings(&plan).iter().filter(|(_, severity, _)| severity == "error").count();
        ran.assert_code(if errors > 0 { 1 } else { 0 });
        plan
    }
}

/// `(code, severity, table)` of every finding in a plan.
pub fn findings(plan: &serde_json::Value) -> Vec<(String, String, String)> {
    plan["lint"]
        .as_array()
        .expect("lint array")
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["table"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A table's schema as text, one item per line, for snapshots of what a
/// target holds (sizes and row counts left out).
pub fn describe_schema(t: &ferry_core::TableSchema) -> String {
    let mut out = format!("table {}", t.name);
    if let Some(c) = &t.comment {
        out.push_str(&format!("  -- {c}"));
    }
    out.push('\n');
    for c in &t.columns {
        let mut line = format!("  {} {}{}", c.name, c.native_type, if c.nullable { "" } else { " NOT NULL" });
        if let Some(i) = c.identity {
            line.push_str(&format!(" identity={}", serde_json::to_value(i).unwrap().as_str().unwrap()));
        }
        if let Some(d) = &c.default {
            line.push_str(&format!(" default={d}"));
        }
        if let Some(u) = &c.on_update {
            line.push_str(&format!(" on_update={u}"));
        }
        if let Some(col) = &c.collation {
            let name = if col.name.is_empty() { "citext" } else { &col.name };
            line.push_str(&format!(" collate={name}{}", if col.case_insensitive { " (ci)" } else { "" }));
        }
        if let Some(g) = &c.generated {
            line.push_str(&format!(" generated=({}) {}", g.expr, if g.stored { "stored" } else { "virtual" }));
        }
        if let Some(comment) = &c.comment {
            line.push_str(&format!("  -- {comment}"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!("  primary key ({})\n", t.primary_key.join(", ")));
    for u in &t.unique_keys {
        out.push_str(&format!("  unique ({})\n", u.columns.join(", ")));
    }
    for i in &t.indexes {
        out.push_str(&format!("  index ({})\n", i.columns.join(", ")));
    }
    for i in &t.expression_indexes {
        let method = i.method.as_ref().map(|m| format!(" using {m}")).unwrap_or_default();
        let filter = i.predicate.as_ref().map(|p| format!(" where {p}")).unwrap_or_default();
        out.push_str(&format!(
            "  {}index {}{method} ({}){filter}\n",
            if i.unique { "unique " } else { "" },
            i.name,
            i.elements
        ));
    }
    let mut checks: Vec<&ferry_core::Check> = t.checks.iter().collect();
    checks.sort_by(|a, b| a.name.cmp(&b.name));
    for c in checks {
        out.push_str(&format!("  check {}: {}\n", c.name, c.expr));
    }
    for fk in &t.foreign_keys {
        out.push_str(&format!(
            "  foreign key ({}) -> {} ({}){}\n",
            fk.columns.join(", "),
            fk.ref_table.name,
            fk.ref_columns.join(", "),
            fk.actions_sql()
        ));
    }
    out
}
