//! `ferry plan` on four fixture migrations, snapshotted with the measured
//! figures masked; the living checklist; and the promise that planning never
//! writes to the source and leaves no probe table behind, even when killed.

use ferry_testkit::{spec, spec_in_place, Kind, TestDb, Workspace, MIGRATION};
use regex_lite::Regex;
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Replaces what changes from run to run (names, times, sizes, speeds) with placeholders.
fn mask(text: &str) -> String {
    let rules: &[(&str, &str)] = &[
        (r"ferrytest_\d+_\d+_\d+", "[DB]"),
        (r"/tmp/[A-Za-z0-9_./-]+", "[PATH]"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z", "[TIME]"),
        (r#""version": "[^"]*""#, r#""version": "[VERSION]""#),
        (r"(PostgreSQL|MySQL/MariaDB|SQLite) \d[^|(`\n]*(\([^)`]*\))?", "$1 [VERSION]"),
        (
            r#""(p50_ms|p99_ms|seconds|read_rows_per_second|write_rows_per_second|target_read_rows_per_second|backfill_seconds|verify_seconds|backfill_rows_per_second|size_bytes|total_size_bytes|free_disk_bytes|low_seconds|high_seconds|copy_rows_per_second|overlapped_rows_per_second|checksum_rows_per_second|key_read_rows_per_second|index_seconds|check_seconds|ddl_seconds|in_place_rows_per_second|write_rate|lanes|samples|baseline|high|above_high)": [0-9.e+-]+"#,
            r#""$1": "[MEASURED]""#,
        ),
        // What other tests' sessions and a fixture's own recent inserts show as the source's load and writes.
        (r#"no slowdown expected: [^|;"]*[^|;" ]|\d+ of \d+ readings of the source's load[^|;"]*[^|;" ]"#, "[LOAD]"),
        (
            r#"no writes on the source while measured|[^|;"]*rows changed/s[^|;"]*[^|;" ]|[^|;"]*sync may not catch up"#,
            "[WRITES]",
        ),
        (r"\b\d+ workers? side by side", "[WORKERS] side by side"),
        // A server's TLS is its configuration's (Debian's PostgreSQL offers it), not Ferry's.
        (r#""transport": \{\s*"kind": "(tls|unencrypted)"[^}]*\}"#, r#""transport": "[SERVER TRANSPORT]""#),
        (r"encrypted \([^)]*\)|NOT encrypted", "[SERVER TRANSPORT]"),
        (r"\d+(\.\d+)? (B|KiB|MiB|GiB|TiB)\b", "[SIZE]"),
        (r"\d+\.\d+ ms", "[MS] ms"),
        (r"\b\d+ ms\b", "[MS] ms"),
        (r"[\d,]+ rows/s", "[RATE] rows/s"),
        (r"\d+\.\d+ s\b", "[SECONDS] s"),
        (r"\b\d+m\d{2}s\b", "[DURATION]"),
        (r"\b\d+(\.\d+)?(ms|s)\b", "[DURATION]"),
    ];
    let mut out = text.to_string();
    for (pattern, replacement) in rules {
        out = Regex::new(pattern).unwrap().replace_all(&out, *replacement).into_owned();
    }
    out
}

fn plan_both(ws: &Workspace) -> (String, String) {
    let ran = ws.run(&["plan", "--output", "out"]);
    let md = std::fs::read_to_string(ws.path().join("out/plan.md")).unwrap();
    let json = std::fs::read_to_string(ws.path().join("out/plan.json")).unwrap();
    // Exit 1 exactly when the plan has an error finding: CI gates on it.
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let errors = ferry_testkit::findings(&plan).iter().filter(|(_, severity, _)| severity == "error").count();
    ran.assert_code(if errors > 0 { 1 } else { 0 });
    (md, json)
}

fn snapshot(name: &str, md: &str, json: &str) {
    insta::assert_snapshot!(format!("{name}.md"), mask(md));
    insta::assert_snapshot!(format!("{name}.json"), mask(json));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_to_jwt_tokens() {
    let db = TestDb::new(Kind::Postgres).await;
    db.exec(
        "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
         CREATE TABLE sessions (
             id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id), token varchar(64) NOT NULL UNIQUE,
             created_at timestamptz NOT NULL, expires_at timestamptz, revoked boolean NOT NULL DEFAULT false,
             legacy_flags integer);
         CREATE INDEX sessions_user_id ON sessions (user_id);
         CREATE VIEW active_sessions AS SELECT id, user_id, token FROM sessions WHERE NOT revoked;
         INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 500) g;
         INSERT INTO sessions SELECT g, (g % 500) + 1, md5(g::text), timestamptz '2026-01-01' + g * interval '1 minute',
             timestamptz '2026-02-01' + g * interval '1 minute', g % 10 = 0, NULL FROM generate_series(1, 5000) g;",
    )
    .await;
    let ws = Workspace::new(FERRY);
    let text = format!(
        "{}[source]\nurl = \"{url}\"\n\n[target]\nurl = \"{url}\"\n\n{}",
        MIGRATION
            .replace("owner = \"ferry-tests\"", "owner = \"auth-team@example.com\"\nname = \"sessions -> jwt_tokens\""),
        r#"[[table]]
from = "sessions"
to = "jwt_tokens"
filter = "NOT revoked"
exclude = ["legacy_flags"]

[table.columns]
jti = "token"
issued_at = "created_at"
subject = { expr = "'user:' || user_id", type = "varchar(40)" }
"#,
        url = db.url
    );
    ws.write_spec(&text);
    let (md, json) = plan_both(&ws);
    for section in [
        "## Overview",
        "## Current state",
        "## Target state",
        "## Strategy and ADR",
        "## Pre-migration checklist",
        "## Phases",
        "## Rollback plan",
        "## Rollback triggers",
        "## Verification queries",
        "## Risk register",
        "## Downstream consumers to check",
        "## Timeline and communication plan",
        "## Success criteria",
        "## Open questions",
    ] {
        assert!(md.contains(section), "plan.md lacks {section}");
    }
    let order: Vec<usize> = [
        "## Overview",
        "## Current state",
        "## Target state",
        "## Strategy and ADR",
        "## Pre-migration checklist",
        "## Phases",
        "## Rollback plan",
        "## Rollback triggers",
        "## Verification queries",
        "## Risk register",
        "## Downstream consumers",
        "## Timeline",
        "## Success criteria",
        "## Open questions",
    ]
    .iter()
    .map(|s| md.find(s).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "sections in the order the method asks");
    assert!(
        md.contains("view `public.active_sessions`") || md.contains("view `active_sessions`"),
        "the dependent view is listed"
    );
    assert!(md.contains("pg_dump") && md.contains("pg_restore"), "backup and restore test in PostgreSQL's terms");
    assert!(db.ferry_objects().await.is_empty());
    snapshot("a_sessions_to_jwt_tokens", &md, &json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_mariadb_users_to_postgres() {
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE users (
             id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, email varchar(190) NOT NULL UNIQUE, is_admin tinyint(1) NOT NULL,
             balance decimal(10,2), created datetime NOT NULL, last_seen timestamp NULL DEFAULT NULL, prefs json,
             status enum('active','disabled') NOT NULL, external_id bigint unsigned, notes text, KEY users_created (created)
         ) CHARACTER SET utf8mb4;",
    )
    .await;
    let rows: Vec<String> = (1..=2000)
        .map(|i| {
            format!(
                "({i}, 'user{i}@example.com', {}, {}.{:02}, '2025-01-01 00:00:00' + INTERVAL {i} MINUTE, {}, '{{\"lang\": \"en\"}}', '{}', {}, 'note ✓ {i}')",
                i % 2,
                i * 3,
                i % 100,
                if i % 3 == 0 { "NULL".to_string() } else { format!("'2025-06-01 00:00:00' + INTERVAL {i} SECOND") },
                if i % 7 == 0 { "disabled" } else { "active" },
                18_000_000_000_000_000_000u64 + i as u64
            )
        })
        .collect();
    src.exec(&format!("SET time_zone = '+00:00'; INSERT INTO users VALUES {};", rows.join(","))).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"users\"\n"));
    let (md, json) = plan_both(&ws);
    assert!(md.contains("mysqldump") && md.contains("--single-transaction"), "backup in MySQL's terms");
    assert!(md.contains("F009"), "tinyint(1) and timestamp conversions are flagged");
    assert!(md.contains("infrastructure (engine switch: MySQL/MariaDB to PostgreSQL)"));
    snapshot("b_mariadb_users_to_postgres", &md, &json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_in_place_email_verified() {
    let db = TestDb::new(Kind::Postgres).await;
    db.exec(
        "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, verification_date timestamptz);
         INSERT INTO users SELECT g, 'u' || g || '@example.com',
             CASE WHEN g % 4 = 0 THEN NULL ELSE timestamptz '2025-01-01' + g * interval '1 hour' END
         FROM generate_series(1, 3000) g;",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec_in_place(
        &db,
        r#"[[table]]
from = "users"
exclude = ["verification_date"]

[table.columns]
email_verified = { expr = "verification_date IS NOT NULL", type = "boolean", nullable = false }
"#,
    ));
    let (md, json) = plan_both(&ws);
    assert!(md.contains("Expand/contract in place"), "{md}");
    assert!(md.contains("ALTER TABLE \"users\" ADD COLUMN \"email_verified\" boolean;"));
    assert!(md.contains("CHECK (\"email_verified\" IS NOT NULL) NOT VALID"), "safe NOT NULL in contract");
    assert!(md.contains("ALTER TABLE \"users\" DROP COLUMN \"verification_date\";"), "the old column goes in contract");
    assert!(md.contains("search_path TO \"public_ferry_v2\""), "the plan says how version 2 connects: {md}");
    snapshot("c_in_place_email_verified", &md, &json);
    // What the plan shows is what `ferry run` executes.
    ws.run(&["run"]).assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_small_table_big_bang_and_the_living_checklist() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec(
        "CREATE TABLE countries (code VARCHAR(8) PRIMARY KEY, name TEXT NOT NULL, population BIGINT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
         INSERT INTO countries SELECT printf('%c%c', 65 + x / 26 % 26, 65 + x % 26) || x, 'Country ' || x, x * 1000 FROM c;",
    )
    .await;
    let ws = Workspace::new(FERRY);
    let text = spec(&src, &dst, "[[table]]\nfrom = \"countries\"\n")
        .replace("downtime = \"0s\"", "downtime = \"15m\"")
        .replace("rollback = \"lossless\"", "rollback = \"loss-accepted-after-switch\"");
    ws.write_spec(&text);
    let (md, json) = plan_both(&ws);
    assert!(md.contains("Big bang in a maintenance window"), "{md}");
    assert!(md.contains("sqlite3") && md.contains(".backup"), "backup in SQLite's terms");
    assert!(md.contains("- [ ] Backfill complete"));
    snapshot("d_small_table_big_bang", &md, &json);

    // After the run, the plan ticks what the state store proves, with times.
    ws.run(&["run"]).assert_code(0);
    let (md, _) = plan_both(&ws);
    let ticked = Regex::new(r"- \[x\] Backfill complete — 1,000 rows, \d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z").unwrap();
    assert!(ticked.is_match(&md), "{md}");
    assert!(md.contains("- [x] Expand complete"), "{md}");
    assert!(md.contains("- [x] Verification passed"), "{md}");
    assert!(md.contains("- [ ] Backup taken **and restore tested**"), "nothing proves the backup: it stays open");
    assert!(md.contains("- [ ] Contract"));
    let audit = ws.audit_log();
    assert!(audit.contains("migration-assessed: scope=countries, components=1"), "{audit}");
    assert!(audit.contains("strategy-selected: Big bang in a maintenance window — rationale: small data"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_questions_are_listed() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);").await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"t\"\n").replace(MIGRATION, ""));
    let (md, json) = plan_both(&ws);
    for key in ["migration.downtime", "migration.rollback", "migration.owner"] {
        assert!(md.contains(&format!("**{key}**")), "{md}");
    }
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["migration_plan"]["open_questions"].as_array().unwrap().len(), 3);
    assert!(md.contains("| accepted downtime | **open question** |"));
}

/// Planning reads the source and writes only a probe table on the target,
/// which is gone afterwards, and gone at the next start if a plan was killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_never_writes_to_the_source_and_cleans_its_probe() {
    let src = TestDb::new(Kind::Postgres).await;
    let dst = TestDb::new(Kind::Mysql).await;
    src.exec(
        "CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL, at timestamptz NOT NULL);
         INSERT INTO events SELECT g, 'k' || (g % 9), timestamptz '2026-01-01' + g * interval '1 second' FROM generate_series(1, 30000) g;",
    )
    .await;
    let fingerprint = || async {
        let (client, conn) = tokio_postgres_connect(&src.url).await;
        tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace),
                        (SELECT md5(string_agg(e::text, '|' ORDER BY id)) FROM events e)",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, String>(0), row.get::<_, String>(1))
    };
    let before = fingerprint().await;
    let ws = Workspace::new(FERRY);
    // Small batches with a pause make the 2 s probe easy to interrupt.
    ws.write_spec(&spec(
        &src,
        &dst,
        "[policy]\nbatch_size = 100\nbatch_pause = \"100ms\"\n\n[[table]]\nfrom = \"events\"\n",
    ));

    let mut left_behind = false;
    for attempt in 0..5 {
        let mut child = ws.spawn_quiet(&["plan"]);
        std::thread::sleep(Duration::from_millis(900 + attempt * 150));
        child.kill().unwrap();
        child.wait().unwrap();
        if !dst.ferry_objects().await.is_empty() {
            left_behind = true;
            break;
        }
    }
    assert!(
        left_behind,
        "a plan killed during its probe leaves the probe table (the test needs that to prove the cleanup)"
    );
    ws.run(&["plan"]).assert_code(0);
    assert!(dst.ferry_objects().await.is_empty(), "the next plan dropped the leftover probe and its own");
    assert_eq!(fingerprint().await, before, "the source is exactly as it was");
}

async fn tokio_postgres_connect(
    url: &str,
) -> (
    ferry_testkit::tokio_postgres::Client,
    ferry_testkit::tokio_postgres::Connection<
        ferry_testkit::tokio_postgres::Socket,
        ferry_testkit::tokio_postgres::tls::NoTlsStream,
    >,
) {
    ferry_testkit::tokio_postgres::connect(url, ferry_testkit::tokio_postgres::NoTls).await.unwrap()
}
