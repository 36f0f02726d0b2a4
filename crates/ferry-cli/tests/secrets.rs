//! No password reaches any output, file, audit line, plan, report or error:
//! a password with `/`, `@`, `#` and `?` in it, written in the URL as is and
//! through `${ENV}`, is looked for in everything a whole migration prints
//! and writes.

use ferry_testkit::{Kind, TestDb, Workspace, MIGRATION};
use std::path::Path;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const PASSWORD: &str = "Tr0ub/4dor@x#y?z";

/// Every file under `dir`, as bytes: the state store, the audit log, plans and reports.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_in_any_output_or_file() {
    let source = TestDb::new(Kind::Postgres).await;
    let target = TestDb::new(Kind::Mysql).await;
    let user = format!("ferry_secret_{}", std::process::id());
    target
        .exec(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}';
             GRANT ALL ON `{}`.* TO '{user}'@'%';",
            target.name
        ))
        .await;
    source
        .exec("CREATE TABLE items (id bigint PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        .await;
    // The source's password through ${ENV}, the target's written in the URL as is.
    let source_url = source.url.replacen("postgres@", "postgres:${FERRY_TEST_SECRET}@", 1);
    let target_url = format!("mysql://{user}:{PASSWORD}@127.0.0.1:3306/{}", target.name);
    let ws = Workspace::new(FERRY);
    ws.write_spec(&format!(
        "{MIGRATION}[source]\nurl = \"{source_url}\"\n\n[target]\nurl = \"{target_url}\"\n\n[[table]]\nfrom = \"items\"\n"
    ));
    let diff_source = format!("{}#items", source.url.replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1));
    let wrong_db = format!("{}#items", target_url.replace(&target.name, "no_such_database"));
    let commands: Vec<Vec<&str>> = vec![
        vec!["plan", "--output", "out"],
        vec!["run"],
        vec!["sync"],
        vec!["verify"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["audit", "verify"],
        vec!["diff", &diff_source, &diff_source],
        vec!["diff", &diff_source, "--json", &wrong_db],
        vec!["-vv", "plan", "--output", "out2"],
    ];
    let mut printed = Vec::new();
    for args in &commands {
        let out = ws.command(args).env("FERRY_TEST_SECRET", PASSWORD).output().unwrap();
        printed.push((args.join(" "), out.stdout, out.stderr, out.status.code()));
    }
    assert_eq!(printed[1].3, Some(0), "run: {}", String::from_utf8_lossy(&printed[1].2));
    assert_eq!(printed[8].3, Some(2), "a wrong database is an error: {}", String::from_utf8_lossy(&printed[8].2));
    let encoded = PASSWORD.replace('/', "%2F").replace('@', "%40").replace('#', "%23").replace('?', "%3F");
    for (command, stdout, stderr, _) in &printed {
        for (what, text) in [("stdout", stdout), ("stderr", stderr)] {
            for secret in [PASSWORD, &encoded] {
                assert!(
                    !holds(text, secret),
                    "`ferry {command}` printed the password on {what}:\n{}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }
    // Nor does any answer of `ferry serve`.
    let served = ws.serving(&["serve", "--listen", "127.0.0.1:0"]);
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    for path in [
        "/",
        "/api/v1/status",
        "/api/v1/events?limit=1000",
        "/api/v1/history",
        "/api/v1/verification/items",
        "/metrics",
        "/no/such/page",
    ] {
        let body = http.get(&served.url(path)).call().unwrap().body_mut().read_to_string().unwrap();
        assert!(body.len() > 20, "GET {path}: {body}");
        for secret in [PASSWORD, &encoded] {
            assert!(!body.contains(secret), "GET {path} answered the password:\n{body}");
        }
    }
    drop(served);
    let written = files(ws.path());
    assert!(written.iter().any(|(p, _)| p.ends_with("audit.log")), "the run wrote its files");
    for (path, bytes) in &written {
        if path.ends_with("ferry.toml") {
            continue;
        }
        for secret in [PASSWORD, &encoded] {
            assert!(!holds(bytes, secret), "{path} holds the password");
        }
    }
    target.exec(&format!("DROP USER '{user}'@'%'")).await;
}
