//! `ferry serve` and `--http`: the JSON API against the state store and
//! `ferry status --json`, `/metrics` through `promtool check metrics`, the
//! token, bad requests, a bounded load loop, status that cannot go stale, and
//! the dashboard in a real headless Chromium.

use ferry_testkit::{spec, wait_until, Kind, Served, TestDb, Workspace};
use serde_json::Value;
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// GET: status code and body.
fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut response = agent.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
}

fn get_json(agent: &ureq::Agent, url: &str) -> Value {
    let (code, body) = get(agent, url);
    assert_eq!(code, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url} is not JSON ({e}): {body}"))
}

/// POST with an optional token: status code and body.
fn post(agent: &ureq::Agent, url: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut request = agent.post(url).header("Content-Type", "application/json");
    if let Some(t) = token {
        request = request.header("Authorization", &format!("Bearer {t}"));
    }
    let mut response = request.send(body).unwrap_or_else(|e| panic!("POST {url}: {e}"));
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
}

/// The status document without the instant it was read.
fn comparable(mut status: Value) -> Value {
    status["generated_at"] = Value::Null;
    if let Some(runner) = status["runner"].as_object_mut() {
        runner.remove("running");
    }
    status
}

/// `promtool check metrics` on `text`: its output when it objects.
fn promtool(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is not installed ({e}): install Debian's prometheus package (scripts/test does)")
        });
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// The value of one sample line `name{labels} value` in the classic text format.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{metrics}"))
}

/// Resident memory and open descriptors of a process.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    (rss_kb, std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count())
}

async fn migrated(rows: usize) -> (TestDb, TestDb, Workspace) {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Mysql).await;
    src.exec(&format!(
        "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, {rows}) g;"
    ))
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"items\"\n"));
    (src, dst, ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_from_the_state_store_and_its_metrics_pass_promtool() {
    let (_src, _dst, ws) = migrated(3000).await;
    ws.run(&["run"]).assert_code(0);
    let served = ws.serving(&["serve", "--listen", "127.0.0.1:0"]);
    let http = agent();
    let token = served.token.clone().expect("a generated token");

    // One source of truth: the API's status is `ferry status --json`.
    let status = get_json(&http, &served.url("/api/v1/status"));
    assert_eq!(comparable(status.clone()), comparable(ws.status_json()));
    assert_eq!(status["verification"], "pass");
    assert_eq!(status["runner"]["running"], false, "{status}");
    assert_eq!(status["runner"]["command"], "run");

    // The audit log as JSON: every line of audit.log, in order.
    let events = get_json(&http, &served.url("/api/v1/events?limit=1000"));
    let lines: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["line"].as_str().unwrap()).collect();
    assert_eq!(lines, ws.audit_log().lines().collect::<Vec<_>>());
    let after = events[1]["seq"].as_i64().unwrap();
    let rest = get_json(&http, &served.url(&format!("/api/v1/events?after={after}&limit=1000")));
    assert_eq!(rest.as_array().unwrap().len(), lines.len() - 2);
    assert!(!get_json(&http, &served.url("/api/v1/history")).as_array().unwrap().is_empty());
    let report = get_json(&http, &served.url("/api/v1/verification/items"));
    assert_eq!(report["differences_found"], 0, "{report}");

    // The event stream starts with the audit log's tail and the status document.
    let mut stream = http.get(&served.url("/api/v1/stream")).call().unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut reader = std::io::BufReader::new(stream.body_mut().as_reader());
    let mut seen = String::new();
    while !seen.contains("event: status\n") {
        assert!(reader.read_line(&mut seen).unwrap() > 0, "the stream ended:\n{seen}");
    }
    use std::io::BufRead;
    reader.read_line(&mut seen).unwrap();
    assert!(seen.contains("event: audit\nid: 1\n"), "{seen}");
    let sent = seen.lines().skip_while(|l| *l != "event: status").nth(1).unwrap().strip_prefix("data: ").unwrap();
    assert_eq!(comparable(serde_json::from_str(sent).unwrap()), comparable(ws.status_json()));
    drop(reader);

    // Metrics: valid for promtool, and the state store's figures.
    let (code, metrics) = get(&http, &served.url("/metrics"));
    assert_eq!(code, 200);
    promtool(&metrics).unwrap_or_else(|e| panic!("promtool check metrics:\n{e}\n{metrics}"));
    assert_eq!(sample(&metrics, "ferry_table_rows_copied{table=\"items\"}"), 3000.0);
    assert_eq!(sample(&metrics, "ferry_table_rows_expected{table=\"items\"}"), 3000.0);
    assert_eq!(sample(&metrics, "ferry_verify_tables{result=\"passed\"}"), 1.0);
    assert_eq!(sample(&metrics, "ferry_lifecycle_state{state=\"verified\"}"), 1.0);
    assert_eq!(sample(&metrics, "ferry_phase{phase=\"backfill\",state=\"completed\"}"), 1.0);
    assert_eq!(sample(&metrics, "ferry_runner_running"), 0.0);
    assert!(sample(&metrics, "ferry_integrity_checks_total{result=\"passed\"}") >= 1.0);
    assert_eq!(sample(&metrics, "ferry_integrity_checks_total{result=\"failed\"}"), 0.0);
    assert_documented(&metrics, &status);
    let openmetrics = http
        .get(&served.url("/metrics"))
        .header("Accept", "application/openmetrics-text;version=1.0.0")
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");

    // Bad requests: unknown paths, no or a wrong token, an oversized body.
    assert_eq!(get(&http, &served.url("/no/such/page")).0, 404);
    assert_eq!(get(&http, &served.url("/api/v1/verification/no_such_table")).0, 404);
    assert_eq!(post(&http, &served.url("/api/v1/pause"), None, "").0, 401);
    assert_eq!(post(&http, &served.url("/api/v1/pause"), Some("wrong"), "").0, 401);
    assert_eq!(post(&http, &served.url("/api/v1/resume"), Some("wrong"), "").0, 401);
    // Twice the limit: small enough to be sent whole before the server answers and closes.
    let big = format!("{{\"reason\": \"{}\"}}", "x".repeat(8 * 1024));
    assert_eq!(post(&agent(), &served.url("/api/v1/pause"), Some(&token), &big).0, 413);
    assert_eq!(post(&http, &served.url("/api/v1/pause"), Some(&token), "not json").0, 400);
    assert!(ws.status_json()["pauses"].as_array().unwrap().is_empty(), "a refused request changed nothing");

    // Pause and resume do what `ferry pause` and `ferry resume` do.
    let (code, body) = post(&http, &served.url("/api/v1/pause"), Some(&token), r#"{"reason": "night freeze"}"#);
    assert_eq!(code, 200, "{body}");
    let pauses = ws.status_json()["pauses"].clone();
    assert_eq!((pauses[0]["by"].as_str(), pauses[0]["reason"].as_str()), (Some("operator"), Some("night freeze")));
    assert_eq!(sample(&get(&http, &served.url("/metrics")).1, "ferry_paused{by=\"operator\"}"), 1.0);
    assert_eq!(post(&http, &served.url("/api/v1/resume"), Some(&token), "").0, 200);
    assert!(ws.status_json()["pauses"].as_array().unwrap().is_empty());
    assert!(ws.audit_log().contains("throttle-paused: reason=operator: night freeze"), "{}", ws.audit_log());

    // The dashboard and its assets are in the binary.
    let (code, page) = get(&http, &served.url("/"));
    assert_eq!(code, 200);
    assert!(page.contains("/assets/dashboard.js") && !page.contains("://cdn"), "{page}");
    assert_eq!(get(&http, &served.url("/assets/dashboard.js")).0, 200);
    assert_eq!(get(&http, &served.url("/assets/dashboard.css")).0, 200);

    // 10,000 requests on one connection and on new ones: no error, no leak.
    let pid = served.child.id();
    let paths = ["/api/v1/status", "/metrics", "/api/v1/events?limit=5", "/no/such/page"];
    for i in 0..500 {
        get(&http, &served.url(paths[i % paths.len()]));
    }
    let (rss_before, fds_before) = footprint(pid);
    let started = Instant::now();
    for i in 0..10_000 {
        let fresh;
        let client = if i % 10 == 0 {
            fresh = agent();
            &fresh
        } else {
            &http
        };
        let path = paths[i % paths.len()];
        let (code, body) = get(client, &served.url(path));
        assert_eq!(code, if path == "/no/such/page" { 404 } else { 200 }, "request {i} to {path}: {body}");
        assert!(started.elapsed() < Duration::from_secs(600), "the load loop is bounded");
    }
    let (rss_after, fds_after) = footprint(pid);
    assert!(
        rss_after < rss_before + 20 * 1024,
        "resident memory grew from {rss_before} kB to {rss_after} kB over 10,000 requests"
    );
    assert!(fds_after <= fds_before + 4, "open descriptors grew from {fds_before} to {fds_after}");
    assert!(served.child.id() == pid && footprint(pid).0 > 0, "still serving:\n{}", served.output());
}

/// docs/serve.md lists every metric family served, and docs/status-json.md
/// every key of the status document.
fn assert_documented(metrics: &str, status: &Value) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let serve_md = std::fs::read_to_string(root.join("serve.md")).unwrap();
    let documented: Vec<&str> =
        serve_md.lines().filter_map(|l| l.strip_prefix("| `ferry_")?.split_once('`').map(|(name, _)| name)).collect();
    let served: Vec<&str> =
        metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ferry_")?.split_whitespace().next()).collect();
    for name in &served {
        assert!(documented.contains(name), "ferry_{name} is served but not in docs/serve.md");
    }
    // Served only with log-based capture, while a copy runs, or once a phase failed.
    let conditional = [
        "capture_log_retained_bytes",
        "table_backfill_rows_per_second",
        "table_backfill_eta_seconds",
        "errors_total",
        "cutover_stage_percent",
        "shadow_reads_total",
        "trigger_value",
    ];
    for name in &documented {
        assert!(served.contains(name) || conditional.contains(name), "docs/serve.md lists ferry_{name}, not served");
    }
    let status_md = std::fs::read_to_string(root.join("status-json.md")).unwrap();
    let mut keys: Vec<&String> = status.as_object().unwrap().keys().collect();
    keys.extend(status["tables"][0].as_object().unwrap().keys());
    keys.extend(status["runner"].as_object().unwrap().keys());
    keys.extend(status["workers"][0].as_object().expect("the runner is among the workers").keys());
    for key in keys {
        assert!(status_md.contains(&format!("\"{key}\"")), "docs/status-json.md does not show \"{key}\"");
    }
}

#[test]
fn another_host_s_address_needs_a_token() {
    let ws = Workspace::new(FERRY);
    ws.write_spec(&format!(
        "{}[source]\nurl = \"sqlite:a.db\"\n\n[target]\nurl = \"sqlite:b.db\"\n\n[[table]]\nfrom = \"t\"\n",
        ferry_testkit::MIGRATION
    ));
    let ran = ws.command(&["serve", "--listen", "0.0.0.0:0"]).env_remove("FERRY_HTTP_TOKEN").output().unwrap();
    assert_eq!(ran.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(stderr.contains("no token was given") && stderr.contains("--token"), "{stderr}");

    // FERRY_HTTP_TOKEN in the environment (set for `ferry serve`) asks nothing of a command without --http.
    let ran = ws.command(&["sync"]).env("FERRY_HTTP_TOKEN", "secret").output().unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(!stderr.contains("Usage:"), "{stderr}");
}

/// Holds a run before its first batch with an operator pause, and starts it with `--http`.
fn paused_run(ws: &Workspace) -> Served {
    ws.run(&["pause", "--reason", "held by the test"]).assert_code(0);
    let served = ws.serving(&["run", "--http", "127.0.0.1:0", "--token", "test-token"]);
    wait_until("the run to wait at its first batch", Duration::from_secs(60), || {
        ws.status_json()["pauses"].as_array().unwrap().iter().any(|p| p["by"] == "throttle")
    });
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_http_serves_live_figures_and_status_does_not_go_stale() {
    let (_src, _dst, ws) = migrated(2000).await;
    let http = agent();

    // Live: the running process serves its own figures; the token given is the one needed.
    let mut served = paused_run(&ws);
    assert_eq!(served.token, None, "a given token is not printed");
    let status = get_json(&http, &served.url("/api/v1/status"));
    assert_eq!(status["runner"]["running"], true, "{status}");
    assert_eq!(status["runner"]["pid"], served.child.id());
    assert_eq!(status["phase"], "backfill");
    let metrics = get(&http, &served.url("/metrics")).1;
    promtool(&metrics).unwrap_or_else(|e| panic!("promtool check metrics:\n{e}\n{metrics}"));
    assert_eq!(sample(&metrics, "ferry_runner_running"), 1.0);
    assert_eq!(sample(&metrics, "ferry_paused{by=\"throttle\"}"), 1.0);
    assert!(sample(&metrics, "ferry_throttle_pauses_total{cause=\"operator\"}") >= 1.0);
    assert_eq!(post(&http, &served.url("/api/v1/resume"), None, "").0, 401);
    assert_eq!(post(&http, &served.url("/api/v1/resume"), Some("test-token"), "").0, 200);
    assert_eq!(served.wait(Duration::from_secs(120)), Some(0), "{}", served.output());
    let status = ws.status_json();
    assert_eq!((status["verification"].as_str(), &status["runner"]["running"]), (Some("pass"), &Value::Bool(false)));
    assert!(status["runner"]["exited_at"].is_string(), "a clean exit is recorded: {status}");

    // Rollback and a new run: the old verification is not shown for the new copy.
    ws.run(&["rollback"]).assert_code(0);
    let mut served = paused_run(&ws);
    let status = get_json(&http, &served.url("/api/v1/status"));
    assert_eq!(status["verification"], Value::Null, "{status}");
    assert_eq!(status["tables"][0]["verification"], Value::Null, "{status}");

    // SIGKILL: not running, not "paused by throttle"; the operator's pause still holds.
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    let status = ws.status_json();
    assert_eq!(status["runner"]["running"], false, "{status}");
    assert_eq!(status["runner"]["exited_at"], Value::Null, "killed, it could not say goodbye: {status}");
    let pauses: Vec<&str> = status["pauses"].as_array().unwrap().iter().map(|p| p["by"].as_str().unwrap()).collect();
    assert_eq!(pauses, ["operator"], "{status}");
    let text = ws.run(&["status"]);
    assert!(text.stdout.contains("not running, last seen") && !text.stdout.contains("PAUSED by throttle"), "{text}");
}

/// WebDriver's address and process, started on a free port.
struct Chromedriver {
    child: std::process::Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Chromedriver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("chromedriver is not installed ({e}): install Debian's chromium and chromium-driver (scripts/test does)")
        });
    wait_until("chromedriver to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Chromedriver { child, url: format!("http://127.0.0.1:{port}") }
}

/// A headless Chromium session through `driver`.
async fn browser(driver: &Chromedriver) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000"]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    fantoccini::ClientBuilder::new(connector).capabilities(caps).connect(&driver.url).await.unwrap()
}

/// Waits until the element matching `css` says `expected`.
async fn wait_for_text(page: &fantoccini::Client, css: &str, expected: &str, served: &Served) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while text_of(page, css).await != expected {
        assert!(Instant::now() < deadline, "{css} never said {expected:?}:\n{}", served.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `css`; empty while there is none.
async fn text_of(page: &fantoccini::Client, css: &str) -> String {
    match page.find_all(fantoccini::Locator::Css(css)).await.unwrap().first() {
        Some(element) => element.text().await.unwrap_or_default(),
        None => String::new(),
    }
}

/// The rows cell of the table's row: `copied / total`, as a number copied.
async fn rows_on_page(page: &fantoccini::Client) -> u64 {
    let text = text_of(page, "tr[data-table='items'] td.rows").await;
    text.split('/').next().unwrap().trim().replace(',', "").parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser_shows_progress_and_pauses_the_run() {
    // A copy that lasts a while: many small batches.
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec(
        "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 300000)
         INSERT INTO items SELECT i, 'item ' || i FROM g;",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&format!(
        "{}[policy]\nbatch_size = 100\nchunk_time = \"0s\"\nmax_probe_latency = \"10s\"\n\n[[table]]\nfrom = \"items\"\n",
        spec(&src, &dst, "")
    ));
    let driver = chromedriver();
    // Held before its first batch until the page lets it go.
    ws.run(&["pause", "--reason", "waiting for the browser"]).assert_code(0);
    let mut served = ws.serving(&["run", "--http", "127.0.0.1:0"]);
    let token = served.token.clone().unwrap();

    let page = browser(&driver).await;
    page.goto(&format!("{}/#token={token}", served.base)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !text_of(&page, "#pauses").await.contains("PAUSED by operator") {
        assert!(Instant::now() < deadline, "the page does not show the pause:\n{}", served.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    page.find(fantoccini::Locator::Css("#resume")).await.unwrap().click().await.unwrap();

    // The progress moves on the page.
    let first = loop {
        let rows = rows_on_page(&page).await;
        if rows > 0 {
            break rows;
        }
        assert!(Instant::now() < deadline, "no progress on the page:\n{}", served.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    loop {
        let rows = rows_on_page(&page).await;
        if rows > first {
            break;
        }
        assert!(Instant::now() < deadline, "the progress did not move from {first}:\n{}", served.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(text_of(&page, "#phase").await, "backfill (running)");
    assert!(text_of(&page, "#runner").await.starts_with("running `ferry run`"));
    assert!(text_of(&page, "tr[data-table='items'] td.rows").await.ends_with("/ 300,000"));

    // Pause from the page: the state store says so, and the copy holds still.
    page.find(fantoccini::Locator::Css("#pause")).await.unwrap().click().await.unwrap();
    wait_until("the state store to record the pause", Duration::from_secs(10), || {
        ws.status_json()["pauses"].as_array().unwrap().iter().any(|p| p["by"] == "operator")
    });
    wait_until("the run to wait", Duration::from_secs(30), || {
        ws.status_json()["pauses"].as_array().unwrap().iter().any(|p| p["by"] == "throttle")
    });
    let held = ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap(), held, "paused, nothing is copied");
    assert!(held < 300_000, "the copy paused before its end");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text_of(&page, "#pauses").await.contains("PAUSED by operator") {
        assert!(Instant::now() < deadline, "the page does not show the pause");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Resume from the page: the copy goes on.
    page.find(fantoccini::Locator::Css("#resume")).await.unwrap().click().await.unwrap();
    wait_until("the copy to go on", Duration::from_secs(30), || {
        ws.status_json()["tables"][0]["rows_copied"].as_u64().unwrap() > held
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let png = page.screenshot().await.unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferry-dashboard.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("dashboard screenshot: {}", shot.display());
    page.close().await.unwrap();
    assert_eq!(served.wait(Duration::from_secs(180)), Some(0), "{}", served.output());
    assert_eq!(ws.status_json()["verification"], "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_s_next_stage_button_advances_a_manual_read_ramp() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');").await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n").replacen(
        "[[table]]",
        "[cutover]\nstages = [20, 100]\nhold = \"0s\"\nadvance = \"manual\"\n\n[[table]]",
        1,
    ));
    ws.run(&["run"]).assert_code(0);
    let driver = chromedriver();
    let mut served = ws.serving(&["cutover", "--http", "127.0.0.1:0"]);
    let page = browser(&driver).await;
    page.goto(&format!("{}/#token={}", served.base, served.token.clone().unwrap())).await.unwrap();
    wait_for_text(&page, "#ramp-percent", "20 %", &served).await;
    wait_for_text(&page, "#ramp-stages li.current", "20 %", &served).await;
    // Each rollback trigger with its threshold, as the ramp measures them.
    wait_for_text(&page, "#gates tr:nth-child(2) th", "replay_lag", &served).await;
    wait_for_text(&page, "#gates tr:nth-child(1) td:nth-child(3)", "0.0100%", &served).await;
    page.find(fantoccini::Locator::Css("#ramp-next")).await.unwrap().click().await.unwrap();
    assert_eq!(served.wait(Duration::from_secs(60)), Some(0), "{}", served.output());
    let status = ws.status_json();
    assert_eq!((status["state"].as_str(), status["cutover"]["read_percent"].as_u64()), (Some("cut_over"), Some(100)));
    page.close().await.unwrap();
}
