//! `ferry cutover`: the read ramp through its stages, published three ways
//! that agree (flagd file, `/api/v1/flags`, status), evaluated by
//! OpenFeature's own flagd evaluator; `--next`, `--abort`, a lag trigger, a
//! SIGKILL mid-ramp, and `ferry switch` waiting for the ramp.

use ferry_testkit::{spec, wait_until, Kind, TestDb, Workspace};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const READ_FLAG: &str = "ferry.ferry.read-from-target";

fn read_percent(ws: &Workspace) -> u64 {
    ws.status_json()["cutover"]["read_percent"].as_u64().expect("a cutover status")
}

/// The spec with a `[cutover]` section, the flagd file beside it.
fn with_cutover(base: &str, cutover: &str) -> String {
    base.replacen("[[table]]", &format!("[cutover]\nflagd_file = \"flags.json\"\n{cutover}\n[[table]]"), 1)
}

fn flagd_file(ws: &Workspace) -> Value {
    serde_json::from_str(&std::fs::read_to_string(ws.path().join("flags.json")).unwrap()).unwrap()
}

/// The keys `user-0` .. `user-{count-1}` for which OpenFeature's flagd evaluator
/// turns the read flag on, for each flagd file.
fn evaluate(files: &[&Path], count: usize) -> Vec<BTreeSet<usize>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flagd");
    assert!(
        dir.join("node_modules/@openfeature/flagd-core").exists(),
        "@openfeature/flagd-core is not installed: run scripts/test (it runs `npm ci` in {})",
        dir.display()
    );
    let out = std::process::Command::new("node")
        .arg(dir.join("eval.js"))
        .arg(READ_FLAG)
        .arg(count.to_string())
        .args(files)
        .output()
        .expect("node (Node.js) runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagd_s_own_evaluator_reads_each_stage_and_abort_sends_reads_back() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, '😀');").await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&with_cutover(
        &spec(&src, &dst, "[[table]]\nfrom = \"t\"\n"),
        "stages = [1, 10, 50, 100]\nhold = \"0s\"\nadvance = \"manual\"\n",
    ));
    ws.run(&["run"]).assert_code(0);
    let refused = ws.run(&["switch"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("ferry cutover"), "{refused}");

    let mut ramp = ws.serving(&["cutover", "--http", "127.0.0.1:0"]);
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut files = Vec::new();
    for percent in [1, 10, 50] {
        // The state store records the stage a moment before the file is rewritten: wait for the file.
        wait_until(&format!("stage {percent} % in the flagd file"), Duration::from_secs(60), || {
            read_percent(&ws) == percent
                && ws.path().join("flags.json").exists()
                && flagd_file(&ws)["flags"][READ_FLAG]["targeting"]["fractional"][0][1].as_u64() == Some(percent)
        });
        let copy = ws.path().join(format!("flags-{percent}.json"));
        std::fs::copy(ws.path().join("flags.json"), &copy).unwrap();
        files.push(copy);
        // On once by the command, once by the API (as the dashboard's button does, with the token).
        if percent == 1 {
            ws.run(&["cutover", "--next"]).assert_code(0);
        } else if percent == 10 {
            let next = ramp.url("/api/v1/cutover/next");
            assert_eq!(http.post(&next).send_empty().unwrap().status(), 401);
            let token = format!("Bearer {}", ramp.token.clone().unwrap());
            assert_eq!(http.post(&next).header("Authorization", &token).send_empty().unwrap().status(), 200);
        }
    }
    let on = evaluate(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>(), 10_000);
    for (set, percent) in on.iter().zip([1.0, 10.0, 50.0]) {
        let share = set.len() as f64 / 100.0;
        assert!((share - percent).abs() <= 1.5, "{share} % of 10,000 keys read from the target at stage {percent} %");
    }
    assert!(on[0].is_subset(&on[1]) && on[1].is_subset(&on[2]), "a key on at a stage stays on at the next");

    // Abort: every read back to the source, in the file and the status; the running ramp stops.
    ws.run(&["cutover", "--abort"]).assert_code(0);
    assert_eq!(ramp.wait(Duration::from_secs(30)), Some(1), "{}", ramp.output());
    let flags = flagd_file(&ws);
    assert_eq!(flags["flags"][READ_FLAG]["defaultVariant"], "off");
    assert!(flags["flags"][READ_FLAG].get("targeting").is_none(), "{flags}");
    assert_eq!(evaluate(&[&ws.path().join("flags.json")], 1000)[0].len(), 0);
    let status = ws.status_json();
    assert_eq!((status["state"].as_str(), read_percent(&ws)), (Some("verified"), 0));
    assert!(ws.audit_log().contains("cutover-aborted: reads_to_target=0%"), "{}", ws.audit_log());
    assert_eq!(src.routing_row("ferry").await, Some((0, "source".into())), "ferry_routing follows the abort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ramp_runs_under_a_writer_and_its_flags_agree_everywhere() {
    for (source, target) in [(Kind::Postgres, Kind::Mysql), (Kind::Mysql, Kind::Postgres)] {
        let src = TestDb::new(source).await;
        let dst = TestDb::new(target).await;
        src.exec("CREATE TABLE items (id integer PRIMARY KEY, name varchar(40) NOT NULL)").await;
        src.exec("INSERT INTO items VALUES (1, 'one'), (2, 'two ✓')").await;
        let ws = Workspace::new(FERRY);
        ws.write_spec(&with_cutover(
            &spec(&src, &dst, "[[table]]\nfrom = \"items\"\n"),
            "stages = [1, 10, 50, 100]\nhold = \"2s\"\n",
        ));
        ws.run(&["run"]).assert_code(0);

        // A writer on the source for the whole ramp.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let session = src.session().await;
            tokio::spawn(async move {
                let mut session = session;
                let mut id = 1000;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    id += 1;
                    session.exec(&format!("INSERT INTO items VALUES ({id}, 'row {id} 😀')")).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                id - 1000
            })
        };
        let mut served = ws.serving(&["cutover", "--http", "127.0.0.1:0"]);
        let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut seen = BTreeSet::new();
        let mut routed = BTreeSet::new();
        let mut etag = String::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while served.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the ramp did not finish:\n{}", served.output());
            let mut request = http.get(&served.url("/api/v1/flags"));
            if !etag.is_empty() {
                request = request.header("If-None-Match", &etag);
            }
            let Ok(mut response) = request.call() else { break };
            match response.status().as_u16() {
                304 => {}
                200 => {
                    etag = response.headers()["etag"].to_str().unwrap().to_string();
                    let flags: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
                    assert_eq!(flags["version"].as_str().map(|v| format!("\"{v}\"")), Some(etag.clone()));
                    seen.insert(flags["read_from_target"]["percent"].as_u64().unwrap());
                }
                other => panic!("GET /api/v1/flags answered {other}"),
            }
            if let Some((percent, _)) = src.routing_row("ferry").await {
                routed.insert(percent as u64);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(served.wait(Duration::from_secs(10)), Some(0), "{}", served.output());
        assert_eq!(routed, BTreeSet::from([1, 10, 50, 100]), "the ferry_routing row follows each stage");
        assert_eq!(src.routing_row("ferry").await, Some((100, "source".into())));
        assert_eq!(dst.routing_row("ferry").await, None, "the target has no routing row before the switch");
        let shadow = &ws.status_json()["cutover"]["shadow"];
        assert!(shadow["compared"].as_u64().unwrap() > 0 && shadow["mismatched"] == 0, "{shadow}");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.await.unwrap();
        assert!(written > 20, "the writer wrote {written} rows during the ramp");
        seen.remove(&0); // before the first stage
        assert_eq!(seen, BTreeSet::from([1, 10, 50, 100]), "{}", served.output());
        assert_eq!(ws.status_json()["state"], "cut_over");
        assert_eq!(flagd_file(&ws)["flags"][READ_FLAG]["defaultVariant"], "on");
        let log = ws.audit_log();
        assert_eq!(log.lines().filter(|l| l.contains("cutover-stage")).count(), 4, "{log}");

        // Then the writes: `ferry switch` goes ahead after the ramp; the write flag follows.
        ws.run(&["switch"]).assert_code(0);
        let flags = flagd_file(&ws);
        assert_eq!(flags["flags"]["ferry.ferry.write-to-target"]["defaultVariant"], "on", "{flags}");
        assert_eq!(src.routing_row("ferry").await, Some((100, "target".into())));
        assert_eq!(dst.routing_row("ferry").await, Some((100, "target".into())), "after the switch, on the target too");
        ws.run(&["rollback"]).assert_code(0);
        assert_eq!(flagd_file(&ws)["flags"][READ_FLAG]["defaultVariant"], "off", "a rollback sends reads back");
        // Nothing of Ferry's stays: the routing table goes with the migration's last row.
        assert_eq!(src.ferry_objects().await, Vec::<String>::new());
        assert_eq!(dst.ferry_objects().await, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_ramp_resumes_at_its_stage_and_lag_sends_reads_back() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id integer PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');").await;
    let ws = Workspace::new(FERRY);
    let base = spec(&src, &dst, "[[table]]\nfrom = \"t\"\n");
    ws.write_spec(&with_cutover(&base, "stages = [5, 25, 100]\nhold = \"0s\"\nadvance = \"manual\"\n"));
    ws.run(&["run"]).assert_code(0);

    let mut ramp = ws.spawn_quiet(&["cutover"]);
    wait_until("stage 5 %", Duration::from_secs(60), || read_percent(&ws) == 5);
    ws.run(&["cutover", "--next"]).assert_code(0);
    // The state store moves first and the flag file follows it: kill once both say 25 %.
    let file_percent = |ws: &Workspace| flagd_file(ws)["flags"][READ_FLAG]["targeting"]["fractional"][0][1].as_u64();
    wait_until("stage 25 % published", Duration::from_secs(60), || {
        read_percent(&ws) == 25 && file_percent(&ws) == Some(25)
    });
    ramp.kill().unwrap();
    ramp.wait().unwrap();
    let status = ws.status_json();
    assert_eq!((status["state"].as_str(), read_percent(&ws)), (Some("cutting_over"), 25), "{status}");

    // Resumed: at 25 %, not from the start.
    let before = ws.audit_log().lines().count();
    let mut ramp = ws.spawn_quiet(&["cutover"]);
    wait_until("the resumed ramp", Duration::from_secs(60), || {
        ws.audit_log().lines().skip(before).any(|l| l.contains("cutover-stage"))
    });
    ws.run(&["cutover", "--next"]).assert_code(0);
    assert_eq!(ramp.wait().unwrap().code(), Some(0));
    let log = ws.audit_log();
    let resumed: Vec<&str> = log.lines().skip(before).filter(|l| l.contains("cutover-stage")).collect();
    assert!(resumed[0].ends_with("reads_to_target=25%") && resumed.len() == 2, "{log}");
    assert_eq!(ws.status_json()["state"], "cut_over");

    // A lag gate of zero under a writer: the trigger moves every read back and exits 1.
    ws.run(&["cutover", "--abort"]).assert_code(0);
    ws.write_spec(&with_cutover(&base, "stages = [50, 100]\nhold = \"60s\"\nmax_lag = \"0s\"\n"));
    let mut session = src.session().await;
    let ramp = ws.spawn_quiet(&["cutover"]);
    let mut id = 100;
    let mut ramp = ramp;
    let code = loop {
        if let Some(status) = ramp.try_wait().unwrap() {
            break status.code();
        }
        id += 1;
        session.exec(&format!("INSERT INTO t VALUES ({id}, 'x')")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(id < 100_000, "no trigger fired");
    };
    assert_eq!(code, Some(1));
    let status = ws.status_json();
    assert_eq!((status["state"].as_str(), read_percent(&ws)), (Some("verified"), 0), "{status}");
    let log = ws.audit_log();
    assert!(
        log.contains("rollback-triggered: phase=cutover, trigger=replay_lag, value=")
            && log.contains("threshold=0.0s, action=reads-to-source"),
        "{log}"
    );
    assert_eq!(src.routing_row("ferry").await, Some((0, "source".into())), "the trigger rewrote ferry_routing");

    // The ramp does not start again by itself: `--resume`, after a fresh verification.
    ws.write_spec(&with_cutover(&base, "stages = [100]\nhold = \"0s\"\n"));
    let refused = ws.run(&["cutover"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("ferry cutover --resume"), "{refused}");
    let refused = ws.run(&["cutover", "--resume"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("no passing verification since the trigger"), "{refused}");
    ws.run(&["verify"]).assert_code(0);
    ws.run(&["cutover", "--resume"]).assert_code(0);
    assert_eq!((ws.status_json()["state"].as_str(), read_percent(&ws)), (Some("cut_over"), 100));
}
