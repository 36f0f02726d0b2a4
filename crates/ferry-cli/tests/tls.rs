//! TLS to servers that take nothing else: a PostgreSQL and a MariaDB server
//! of the test's own, with certificates from a test CA. A migration runs
//! with full verification on both sides; each failed check (unknown CA,
//! host name mismatch, expired certificate, no TLS offered) is an exit-2
//! error that names the check and the URL parameter that changes it.

use ferry_testkit::certs::TestCerts;
use ferry_testkit::{mysql_async, LogicalPostgres, PrivateMariadb, Ran, Workspace, MIGRATION};
use std::process::Stdio;
use std::time::Duration;

const ROWS: i64 = 2_000;

fn workspace() -> Workspace {
    Workspace::new(env!("CARGO_BIN_EXE_ferry"))
}

fn pg_url(pg: &LogicalPostgres, host: &str, params: &str) -> String {
    format!("postgres://postgres@{host}:{}/app?{params}", pg.port())
}

fn my_url(my: &PrivateMariadb, host: &str, params: &str) -> String {
    format!("mysql://root@{host}:{}/app?{params}", my.port)
}

/// `ferry diff` of a table with itself: the lightest command that connects.
fn connect(url: &str) -> Ran {
    let ws = workspace();
    ws.run(&["diff", &format!("{url}#users"), &format!("{url}#users")])
}

async fn tls_servers(certs: &TestCerts) -> (LogicalPostgres, PrivateMariadb) {
    let pg = LogicalPostgres::start_tls_only(certs);
    pg.psql("postgres", "CREATE DATABASE app");
    pg.psql(
        "app",
        &format!(
            "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, note text);
             INSERT INTO users SELECT g, 'user ' || g, CASE WHEN g % 3 = 0 THEN 'ünïcode 🚢' END
             FROM generate_series(1, {ROWS}) g"
        ),
    );
    let my = PrivateMariadb::start_tls_only(21, certs);
    my.exec("CREATE DATABASE app").await;
    my.exec("CREATE TABLE app.users (id bigint PRIMARY KEY, name varchar(40) NOT NULL)").await;
    (pg, my)
}

async fn target_rows(my: &PrivateMariadb) -> (i64, String) {
    use mysql_async::prelude::Queryable;
    let url = format!("{}?require_ssl=true&verify_ca=false&verify_identity=false", my.url("app"));
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap()).await.unwrap();
    let row: (i64, String) = conn.query_first("SELECT COUNT(*), MAX(note) FROM users").await.unwrap().expect("a row");
    let _ = conn.disconnect().await;
    row
}

#[tokio::test]
async fn migrates_from_verify_full_postgres_to_verify_identity_mariadb() {
    let certs = TestCerts::generate();
    let (pg, my) = tls_servers(&certs).await;
    my.exec("DROP TABLE app.users").await;
    let ca = certs.path("ca.pem").display().to_string();
    let source = pg_url(&pg, "localhost", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let target = my_url(&my, "localhost", &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"));
    let ws = workspace();
    ws.write_spec(&format!(
        "{MIGRATION}[source]\nurl = \"{source}\"\ncapture = \"logical\"\n\n[target]\nurl = \"{target}\"\n\n[[table]]\nfrom = \"users\"\n"
    ));

    let plan = ws.plan_json();
    for (side, mode) in [("source", "sslmode=verify-full"), ("target", "ssl-mode=VERIFY_IDENTITY")] {
        let transport = &plan["migration_plan"][side]["transport"];
        assert_eq!(transport["kind"], "tls", "{side}: {transport}");
        assert_eq!(transport["mode"], mode, "{side}: {transport}");
        assert!(transport["protocol"].as_str().is_some_and(|p| p.starts_with("TLS")), "{side}: {transport}");
    }
    ws.run(&["plan", "--output", "md"]).assert_code(0);
    let markdown = std::fs::read_to_string(ws.path().join("md/plan.md")).unwrap();
    assert_eq!(markdown.matches("encrypted (TLS").count(), 2, "{markdown}");

    ws.run(&["run"]).assert_code(0);
    assert_eq!(target_rows(&my).await, (ROWS, "ünïcode 🚢".to_string()));
    // Changes made during the migration travel over the same connections.
    pg.psql("app", "UPDATE users SET name = 'changed' WHERE id <= 10; DELETE FROM users WHERE id > 1990");
    ws.run(&["sync"]).assert_code(0);
    ws.run(&["verify"]).assert_code(0);
    assert_eq!(target_rows(&my).await.0, 1990);
    assert_eq!(pg.psql("app", "SELECT count(*) FROM pg_replication_slots"), "1", "logical decoding ran over TLS");
    let everything = format!("{}{}", ws.audit_log(), ws.run(&["status"]).stdout);
    assert!(!everything.contains("BEGIN PRIVATE KEY"), "no key material in any output");
}

/// The other way round, with the binlog reader on its own TLS connection.
#[tokio::test]
async fn migrates_from_verify_identity_mariadb_by_binlog_to_verify_full_postgres() {
    let certs = TestCerts::generate();
    let (pg, my) = tls_servers(&certs).await;
    pg.psql("app", "DROP TABLE users");
    let values: Vec<String> = (1..=ROWS).map(|i| format!("({i}, 'user {i}')")).collect();
    my.exec(&format!("INSERT INTO app.users VALUES {}", values.join(", "))).await;
    let ca = certs.path("ca.pem").display().to_string();
    let source = my_url(&my, "localhost", &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"));
    let target = pg_url(&pg, "localhost", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let ws = workspace();
    ws.write_spec(&format!(
        "{MIGRATION}[source]\nurl = \"{source}\"\ncapture = \"binlog\"\n\n[target]\nurl = \"{target}\"\n\n[[table]]\nfrom = \"users\"\n"
    ));
    ws.run(&["run"]).assert_code(0);
    my.exec("UPDATE app.users SET name = 'changed' WHERE id <= 10; DELETE FROM app.users WHERE id > 1990").await;
    ws.run(&["sync"]).assert_code(0);
    ws.run(&["verify"]).assert_code(0);
    assert_eq!(
        pg.psql("app", "SELECT count(*) || ' ' || count(*) FILTER (WHERE name = 'changed') FROM users"),
        "1990 10"
    );
}

#[tokio::test]
async fn postgres_certificate_failures_name_the_check_and_the_parameter() {
    let certs = TestCerts::generate();
    let (pg, _my) = tls_servers(&certs).await;
    let ca = certs.path("ca.pem").display().to_string();
    let other = certs.path("other-ca.pem").display().to_string();
    let fails = |url: String, check: &str, hint: &str| {
        let ran = connect(&url);
        ran.assert_code(2);
        assert!(ran.stderr.contains("E313") && ran.stderr.contains(check), "{check}\n{ran}");
        assert!(ran.stderr.contains(hint), "{hint}\n{ran}");
    };
    fails(pg_url(&pg, "localhost", "sslmode=verify-full"), "unknown CA", "sslrootcert=PATH");
    fails(pg_url(&pg, "localhost", &format!("sslmode=verify-ca&sslrootcert={other}")), "unknown CA", "sslrootcert");
    fails(
        pg_url(&pg, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")),
        "host name mismatch",
        "sslmode=verify-ca",
    );
    // What each weaker mode allows, on the same server.
    connect(&pg_url(&pg, "127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}"))).assert_code(0);
    connect(&pg_url(&pg, "127.0.0.1", "sslmode=require")).assert_code(0);
    connect(&pg_url(&pg, "127.0.0.1", "")).assert_code(0);
    // The server refuses clear text; Ferry says the server's own words.
    let ran = connect(&pg_url(&pg, "localhost", "sslmode=disable"));
    ran.assert_code(2);
    assert!(ran.stderr.contains("no encryption") || ran.stderr.contains("pg_hba.conf"), "{ran}");
    let ran = connect(&pg_url(&pg, "localhost", "sslmode=verify-everything"));
    ran.assert_code(2);
    assert!(ran.stderr.contains("verify-full"), "{ran}");

    // A server that asks for a client certificate gets one from sslcert/sslkey; its key is never shown.
    pg.psql("app", "CREATE ROLE certuser LOGIN; GRANT SELECT ON users TO certuser");
    let as_certuser = |params: &str| format!("postgres://certuser@127.0.0.1:{}/app?{params}", pg.port());
    let ran = connect(&as_certuser("sslmode=require"));
    ran.assert_code(2);
    assert!(ran.stderr.contains("certificate"), "{ran}");
    let client = format!(
        "sslmode=verify-ca&sslrootcert={ca}&sslcert={}&sslkey={}",
        certs.path("client.pem").display(),
        certs.path("client.key").display()
    );
    connect(&as_certuser(&client)).assert_code(0);
    let ran = connect(&as_certuser(&format!("sslmode=require&sslcert={ca}&sslkey={ca}")));
    ran.assert_code(2);
    assert!(ran.stderr.contains("E313") && ran.stderr.contains("client key"), "{ran}");
    assert!(!ran.stderr.contains("BEGIN"), "no file contents in errors\n{ran}");

    pg.use_expired_certificate();
    fails(pg_url(&pg, "localhost", &format!("sslmode=verify-full&sslrootcert={ca}")), "expired", "renew");
}

#[tokio::test]
async fn mariadb_certificate_failures_name_the_check_and_the_parameter() {
    let certs = TestCerts::generate();
    let (_pg, my) = tls_servers(&certs).await;
    let ca = certs.path("ca.pem").display().to_string();
    let fails = |url: String, check: &str, hint: &str| {
        let ran = connect(&url);
        ran.assert_code(2);
        assert!(ran.stderr.contains("E313") && ran.stderr.contains(check), "{check}\n{ran}");
        assert!(ran.stderr.contains(hint), "{hint}\n{ran}");
    };
    fails(my_url(&my, "localhost", "ssl-mode=VERIFY_IDENTITY"), "unknown CA", "ssl-ca=PATH");
    fails(
        my_url(&my, "127.0.0.1", &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}")),
        "host name mismatch",
        "ssl-mode=VERIFY_CA",
    );
    connect(&my_url(&my, "127.0.0.1", &format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"))).assert_code(0);
    connect(&my_url(&my, "127.0.0.1", "ssl-mode=REQUIRED")).assert_code(0);
    connect(&my_url(&my, "127.0.0.1", "")).assert_code(0);
    let ran = connect(&my_url(&my, "127.0.0.1", "ssl-mode=DISABLED"));
    ran.assert_code(2);
    assert!(ran.stderr.contains("secure transport") && ran.stderr.contains("remove `ssl-mode=DISABLED`"), "{ran}");

    // The shared server offers no TLS: REQUIRED says so, PREFERRED goes on in clear text.
    let shared = ferry_testkit::TestDb::new(ferry_testkit::Kind::Mysql).await;
    shared.exec("CREATE TABLE users (id bigint PRIMARY KEY)").await;
    if !shared_offers_tls(&shared).await {
        fails(format!("{}?ssl-mode=REQUIRED", shared.url), "does not offer TLS", "ssl-mode");
        connect(&format!("{}?ssl-mode=PREFERRED", shared.url)).assert_code(0);
    }

    my.use_expired_certificate().await;
    fails(my_url(&my, "localhost", &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}")), "expired", "renew");
}

async fn shared_offers_tls(db: &ferry_testkit::TestDb) -> bool {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&db.url).unwrap()).await.unwrap();
    let have: Option<(String, String)> = conn.query_first("SHOW VARIABLES LIKE 'have_ssl'").await.unwrap();
    have.is_some_and(|(_, v)| v == "YES")
}

/// The bar: TLS-only PostgreSQL (`verify-full`) to TLS-only MariaDB
/// (`VERIFY_IDENTITY`), each server restarted mid-backfill and mid-sync, and
/// the tables equal at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_tls_migration_survives_restarts_of_both_servers() {
    let certs = TestCerts::generate();
    let (mut pg, mut my) = tls_servers(&certs).await;
    my.exec("DROP TABLE app.users").await;
    pg.psql("app", "INSERT INTO users SELECT g, 'user ' || g, NULL FROM generate_series(2001, 30000) g");
    let ca = certs.path("ca.pem").display().to_string();
    let source = pg_url(&pg, "localhost", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let target = my_url(&my, "localhost", &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"));
    let ws = workspace();
    ws.write_spec(&format!(
        "{MIGRATION}[source]\nurl = \"{source}\"\n\n[target]\nurl = \"{target}\"\n\n\
         [policy]\nbatch_size = 500\nchunk_time = \"0\"\nbatch_pause = \"40ms\"\n\n[[table]]\nfrom = \"users\"\n"
    ));
    let copied = |ws: &Workspace| ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap_or(0);
    let run = ws.command(&["run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(|| copied(&ws) > 3_000).await;
    pg.restart(Duration::from_millis(1000));
    wait_until(|| copied(&ws) > 12_000).await;
    my.restart(Duration::from_millis(1000));
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("reconnecting in"), "the restarts were waited for:\n{stderr}");

    let follow = ws.command(&["sync", "--follow"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    pg.psql("app", "UPDATE users SET name = 'changed' WHERE id <= 500");
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.restart(Duration::from_millis(1000));
    pg.psql("app", "DELETE FROM users WHERE id > 29000");
    my.restart(Duration::from_millis(1000));
    pg.psql("app", "UPDATE users SET note = 'after' WHERE id % 100 = 0");
    let pending = |ws: &Workspace| ws.status_json()["tables"][0]["capture"]["pending_changes"].as_u64();
    wait_until(|| pending(&ws) == Some(0)).await;
    tokio::time::sleep(Duration::from_secs(6)).await; // one more collection round after the last write
    wait_until(|| pending(&ws) == Some(0)).await;
    let _ = std::process::Command::new("kill").args(["-TERM", &follow.id().to_string()]).status();
    let out = follow.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    ws.run(&["verify"]).assert_code(0);
    // Independently of Ferry: the same rows on both sides.
    let source_sum = pg.psql(
        "app",
        "SELECT count(*) || ' ' || sum(id) || ' ' || count(*) FILTER (WHERE name = 'changed') \
         || ' ' || count(note) FROM users",
    );
    assert_eq!(source_sum, "29000 420514500 500 950");
    assert_eq!(target_sums(&my).await, source_sum);
}

async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out");
}

async fn target_sums(my: &PrivateMariadb) -> String {
    use mysql_async::prelude::Queryable;
    let url = format!("{}?require_ssl=true&verify_ca=false&verify_identity=false", my.url("app"));
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap()).await.unwrap();
    let row: (i64, i64, i64, i64) = conn
        .query_first("SELECT COUNT(*), SUM(id), SUM(name = 'changed'), COUNT(note) FROM users")
        .await
        .unwrap()
        .expect("a row");
    let _ = conn.disconnect().await;
    format!("{} {} {} {}", row.0, row.1, row.2, row.3)
}
