//! The read ramp's gates on real servers: shadow reads that find a row
//! changed behind Ferry's back, a slow target query shape, an error rate in a
//! real Prometheus server — each sends every read back to the source in all
//! three publications and exits 1 naming its trigger — and a minute-long
//! ramp under a writer, across engines, that ends at 100 % with no mismatch.

use ferry_testkit::{spec, wait_until, Kind, Served, TestDb, Workspace};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const READ_FLAG: &str = "ferry.ferry.read-from-target";

fn with_cutover(base: &str, cutover: &str) -> String {
    base.replacen("[[table]]", &format!("[cutover]\nflagd_file = \"flags.json\"\n{cutover}\n[[table]]"), 1)
}

fn status_cutover(ws: &Workspace) -> Value {
    ws.status_json()["cutover"].clone()
}

/// Waits for the ramp to exit by itself; asserts it exited 1 naming `trigger`, and that reads are at 0 % in
/// the state store (what `/api/v1/flags` serves), the flag file, and `ferry_routing` on the source.
async fn assert_triggered(ws: &Workspace, ramp: &mut Served, src: &TestDb, trigger: &str) {
    assert_eq!(ramp.wait(Duration::from_secs(120)), Some(1), "{}", ramp.output());
    assert!(ramp.output().contains(&format!("ROLLBACK TRIGGER: {trigger}")), "{}", ramp.output());
    let cutover = status_cutover(ws);
    assert_eq!(cutover["read_percent"], 0, "{cutover}");
    assert!(cutover["triggered"].as_str().unwrap().starts_with(trigger), "{cutover}");
    let flags: Value = serde_json::from_str(&std::fs::read_to_string(ws.path().join("flags.json")).unwrap()).unwrap();
    assert_eq!(flags["flags"][READ_FLAG]["defaultVariant"], "off", "{flags}");
    assert!(flags["flags"][READ_FLAG].get("targeting").is_none(), "{flags}");
    assert_eq!(src.routing_row("ferry").await, Some((0, "source".into())));
    let log = ws.audit_log();
    assert!(
        log.lines().any(|l| l.contains(&format!("rollback-triggered: phase=cutover, trigger={trigger}"))
            && l.contains("threshold=")
            && l.ends_with("action=reads-to-source")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_changed_on_the_target_is_a_shadow_mismatch_that_sends_reads_back() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Mysql).await;
    src.exec("CREATE TABLE items (id integer PRIMARY KEY, name varchar(40) NOT NULL, doc json)").await;
    src.exec(
        "INSERT INTO items SELECT g, 'item ' || g || ' 😀', json_build_object('n', g, 'tags', json_build_array('a', 'b'))
         FROM generate_series(1, 20) g",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&with_cutover(
        &spec(&src, &dst, "[[table]]\nfrom = \"items\"\n"),
        "stages = [50, 100]\nhold = \"5m\"\n",
    ));
    ws.run(&["run"]).assert_code(0);
    let serve = ws.serving(&["serve", "--listen", "127.0.0.1:0"]);
    let mut ramp = ws.serving(&["cutover", "--http", "127.0.0.1:0"]);
    // Equal rows first: the ramp compares and finds nothing.
    wait_until("shadow reads at 50 %", Duration::from_secs(60), || {
        let c = status_cutover(&ws);
        c["read_percent"] == 50 && c["shadow"]["compared"].as_u64().unwrap_or(0) >= 20
    });
    assert_eq!(status_cutover(&ws)["shadow"]["mismatched"], 0);

    dst.exec("UPDATE items SET name = 'changed behind Ferry' WHERE id = 7").await;
    assert_triggered(&ws, &mut ramp, &src, "mismatch_rate").await;
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let flags: Value = serde_json::from_str(
        &http.get(&serve.url("/api/v1/flags")).call().unwrap().body_mut().read_to_string().unwrap(),
    )
    .unwrap();
    assert_eq!(flags["read_from_target"]["percent"], 0, "{flags}");
    // The mismatch is recorded with its key and column, its values masked.
    let shadow = &status_cutover(&ws)["shadow"];
    let mismatch = &shadow["recent_mismatches"][0];
    assert_eq!((mismatch["key"].as_str(), mismatch["columns"][0].as_str()), (Some("id=7"), Some("name")), "{shadow}");
    assert!(mismatch.get("detail").is_none(), "values are masked without --show-values: {mismatch}");
    let metrics = http.get(&serve.url("/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(metrics.contains("ferry_trigger_fired_total{trigger=\"mismatch_rate\"} 1"), "{metrics}");
    assert!(metrics.contains("ferry_shadow_reads_total{result=\"mismatch\"} 1"), "{metrics}");
    assert!(metrics.contains("ferry_trigger_value{trigger=\"mismatch_rate\"}"), "{metrics}");

    // The application's own dual reads join Ferry's (token needed).
    let report = serde_json::json!({
        "compared": 500, "mismatched": 1, "requests": 1000, "errors": 0,
        "examples": [{ "key": "id=3", "subject": "getUser", "columns": ["email"] }],
    });
    let post = |token: Option<&str>| {
        let mut request = http.post(&serve.url("/api/v1/shadow"));
        if let Some(t) = token {
            request = request.header("Authorization", &format!("Bearer {t}"));
        }
        request.header("Content-Type", "application/json").send(report.to_string()).unwrap().status().as_u16()
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(serve.token.as_deref()), 200);
    let shadow = &status_cutover(&ws)["shadow"];
    assert_eq!(shadow["compared_by_application"], 500, "{shadow}");
    assert_eq!(shadow["recent_mismatches"][0]["subject"], "getUser", "{shadow}");

    // The integrity report has a section for them; verification finds the row too.
    ws.run(&["verify"]).assert_code(1);
    let report = std::fs::read_to_string(ws.path().join("integrity_report.md")).unwrap();
    let section = report.split("## Shadow reads (read ramp)").nth(1).unwrap_or_else(|| panic!("{report}"));
    assert!(section.contains("| items | id=7 | name | masked"), "{section}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_stopped_by_a_pause_fires_the_lag_trigger() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');").await;
    let ws = Workspace::new(FERRY);
    let cutover = "stages = [50, 100]\nhold = \"5m\"\n[[cutover.trigger]]\nmetric = \"replay_lag\"\nabove = 2\n";
    ws.write_spec(&with_cutover(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n"), cutover));
    ws.run(&["run"]).assert_code(0);
    let mut ramp = ws.serving(&["cutover", "--http", "127.0.0.1:0"]);
    wait_until("stage 50 %", Duration::from_secs(60), || status_cutover(&ws)["read_percent"] == 50);
    // Replay stops (an operator's pause), the source goes on being written.
    ws.run(&["pause", "--reason", "replay stopped by the test"]).assert_code(0);
    let mut session = src.session().await;
    for id in 2..=20 {
        session.exec(&format!("INSERT INTO t VALUES ({id}, 'x')")).await.unwrap();
    }
    assert_triggered(&ws, &mut ramp, &src, "replay_lag").await;
    ws.run(&["resume"]).assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_query_shape_fires_the_latency_trigger() {
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec("CREATE TABLE items (id integer PRIMARY KEY, name varchar(40) NOT NULL)").await;
    src.exec("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')").await;
    let ws = Workspace::new(FERRY);
    let cutover = "stages = [50, 100]\nhold = \"5m\"\n\
        [[cutover.shadow]]\nname = \"item by id\"\ntable = \"items\"\n\
        source_sql = \"SELECT name FROM items WHERE id = {id}\"\n\
        target_sql = \"SELECT name FROM items_slow WHERE id = {id}\"\n\
        [[cutover.trigger]]\nmetric = \"latency_ratio\"\nabove = 1.1\nfor = \"2s\"\n";
    ws.write_spec(&with_cutover(&spec(&src, &dst, "[[table]]\nfrom = \"items\"\n"), cutover));
    ws.run(&["run"]).assert_code(0);
    // What the application's query reads on the target is slow: 80 ms a query.
    dst.exec("CREATE VIEW items_slow AS SELECT i.id, i.name FROM items i, pg_sleep(0.08)").await;
    let plan = ws.run(&["plan", "--output", "out"]);
    let plan_md = std::fs::read_to_string(ws.path().join("out/plan.md")).unwrap_or_else(|e| panic!("{e}\n{plan}"));
    assert!(plan_md.contains("rollback trigger latency_ratio: above 1.10x for 2s"), "{plan_md}");
    assert!(plan_md.contains("ferry cutover --spec"), "{plan_md}");
    let mut ramp = ws.serving(&["cutover", "--http", "127.0.0.1:0"]);
    assert_triggered(&ws, &mut ramp, &src, "latency_ratio").await;
    assert!(ramp.output().contains("on item by id"), "{}", ramp.output());
}

/// A metrics endpoint serving `app_error_ratio`, for Prometheus to scrape.
fn exporter(ratio: f64) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = format!("# TYPE app_error_ratio gauge\napp_error_ratio {ratio}\n");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Debian's Prometheus server on a free loopback port, scraping `target_port` every second.
struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus (Debian's `prometheus` package; scripts/test installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let prometheus = Prometheus { child, url, _dir: dir };
        let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        wait_until("Prometheus scraped the exporter", Duration::from_secs(60), || {
            http.get(&format!("{}/api/v1/query", prometheus.url))
                .query("query", "app_error_ratio")
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .is_some_and(|body| body.contains("app_error_ratio"))
        });
        prometheus
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_rate_in_prometheus_fires_the_error_trigger() {
    let prometheus = Prometheus::start(exporter(0.05));
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');").await;
    let ws = Workspace::new(FERRY);
    let cutover = format!(
        "stages = [50, 100]\nhold = \"5m\"\nprometheus = \"{}\"\nquery = \"max(app_error_ratio)\"\n\
         [[cutover.trigger]]\nmetric = \"error_rate\"\nabove = 0.1\nfor = \"1s\"\n",
        prometheus.url
    );
    ws.write_spec(&with_cutover(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n"), &cutover));
    ws.run(&["run"]).assert_code(0);
    let mut ramp = ws.serving(&["cutover", "--http", "127.0.0.1:0"]);
    assert_triggered(&ws, &mut ramp, &src, "error_rate").await;
    assert!(ws.audit_log().contains("value=5.0000%, threshold=0.1000%"), "{}", ws.audit_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_long_ramp_under_a_writer_ends_at_100_percent_with_no_mismatch() {
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE profiles (id integer PRIMARY KEY, name varchar(60) NOT NULL, bio text,
         settings json, balance decimal(12, 2) NOT NULL, seen datetime(6))",
    )
    .await;
    for id in 1..=200 {
        src.exec(&format!(
            "INSERT INTO profiles VALUES ({id}, 'user {id} 😀 naïve', 'bio 𝄞 {id}', '{{\"b\": {id}, \"a\": [1, 2.50]}}', {id}.50, '2024-05-01 10:00:00.250000')"
        ))
        .await;
    }
    let ws = Workspace::new(FERRY);
    ws.write_spec(&with_cutover(&spec(&src, &dst, "[[table]]\nfrom = \"profiles\"\n"), "hold = \"15s\"\n"));
    ws.run(&["run"]).assert_code(0);

    // A steady writer: new rows, and updates to a few hot rows, for the whole ramp.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut session = src.session().await;
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let sql = if n % 2 == 0 {
                    format!(
                        "INSERT INTO profiles VALUES ({}, 'new {n} 🚀', NULL, '{{\"n\":{n}}}', 0.10, NULL)",
                        1000 + n
                    )
                } else {
                    format!(
                        "UPDATE profiles SET balance = balance + 1, settings = '{{\"z\": {n}, \"a\": \"ü\"}}' WHERE id = {}",
                        1 + n % 5
                    )
                };
                session.exec(&sql).await.unwrap();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            n
        })
    };
    let mut ramp = ws.serving(&["cutover", "--http", "127.0.0.1:0"]);
    let code = ramp.wait(Duration::from_secs(240));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert_eq!(code, Some(0), "{}", ramp.output());
    assert!(written > 1000, "the writer wrote {written} statements");
    let cutover = status_cutover(&ws);
    assert_eq!((ws.status_json()["state"].as_str(), cutover["read_percent"].as_u64()), (Some("cut_over"), Some(100)));
    let shadow = &cutover["shadow"];
    assert_eq!(shadow["mismatched"], 0, "{shadow}");
    assert!(shadow["compared"].as_u64().unwrap() >= 500, "about 20 shadow reads a second for a minute: {shadow}");
    let gates: Vec<&str> =
        cutover["gates"].as_array().unwrap().iter().map(|g| g["trigger"].as_str().unwrap()).collect();
    assert_eq!(gates, ["mismatch_rate", "replay_lag", "latency_ratio", "error_rate"], "{cutover}");
    assert!(Path::new(&ws.path().join("flags.json")).exists());
}

/// The ramp cannot go on (the target table is gone): nothing would watch the gates, so reads go back first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_that_stops_the_ramp_sends_reads_back_first() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');").await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&with_cutover(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n"), "stages = [50, 100]\nhold = \"5m\"\n"));
    ws.run(&["run"]).assert_code(0);
    let mut ramp = ws.serving(&["cutover", "--http", "127.0.0.1:0"]);
    wait_until("stage 50 %", Duration::from_secs(60), || status_cutover(&ws)["read_percent"] == 50);
    dst.exec("DROP TABLE t").await;
    assert_eq!(ramp.wait(Duration::from_secs(60)), Some(2), "{}", ramp.output());
    assert!(ramp.output().contains("reads: 0 % to the target"), "{}", ramp.output());
    let cutover = status_cutover(&ws);
    assert_eq!(cutover["read_percent"], 0, "{cutover}");
    assert!(cutover["triggered"].as_str().unwrap().starts_with("error E"), "{cutover}");
    assert_eq!(src.routing_row("ferry").await, Some((0, "source".into())));
    assert!(ws.audit_log().contains("rollback-triggered: phase=cutover, trigger=error E"), "{}", ws.audit_log());
}

/// A shadow query whose placeholder is not a key column is refused before the ramp starts: no trigger, no read moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_query_with_a_wrong_placeholder_is_refused_before_the_ramp() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');").await;
    let ws = Workspace::new(FERRY);
    let cutover = "stages = [100]\nhold = \"0s\"\n[[cutover.shadow]]\nname = \"by v\"\n\
                   source_sql = \"SELECT id FROM t WHERE v = {v}\"\ntarget_sql = \"SELECT id FROM t WHERE v = {v}\"\n";
    ws.write_spec(&with_cutover(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n"), cutover));
    ws.run(&["run"]).assert_code(0);
    let refused = ws.run(&["cutover"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("{v} is not a key column of t (its key: id)"), "{refused}");
    let cutover = status_cutover(&ws);
    assert_eq!((ws.status_json()["state"].as_str(), cutover["triggered"].as_str()), (Some("verified"), None));
}
