//! `ferry rehearse`: the lifecycle through a switch and back on scratch
//! copies, on every engine pair, with a schema an application has (identity,
//! defaults, checks, a generated column, a child table with a cascading
//! foreign key, 4-byte UTF-8). Nothing scratch is left, the real databases
//! are untouched, and the result reaches the audit log, the plan's checklist
//! and the switch's gate.

use ferry_testkit::{engine_matrix, fixtures, spec, Kind, TestDb, Workspace};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// The application schema, with more users and sessions: the first sessions
/// belong to the last users, so the rehearsal must bring their parents along.
async fn app_source(kind: Kind) -> TestDb {
    let src = TestDb::new(kind).await;
    src.exec(fixtures::app_schema_sql(kind)).await;
    let users: Vec<String> = (1..=20).map(|i| format!("('u{i}@example.com', 'user {i} 😀', {i})")).collect();
    src.exec(&format!("INSERT INTO users (email, name, score) VALUES {};", users.join(", "))).await;
    let sessions: Vec<String> = (0..30).map(|i| format!("({}, 'tok{i}')", 23 - i % 20)).collect();
    src.exec(&format!("INSERT INTO sessions (user_id, token) VALUES {};", sessions.join(", "))).await;
    src
}

async fn rehearsal_passes(source: Kind, target: Kind) {
    let pair = format!("{source} -> {target}");
    let src = app_source(source).await;
    let dst = TestDb::new(target).await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, fixtures::APP_TABLES));
    let objects_before = src.ferry_objects().await;
    let users_before = src.count("users").await;

    let ran = ws.run(&["rehearse", "--rows", "6"]);
    ran.assert_code(0);
    assert!(ran.stdout.contains("rehearsal passed"), "{pair}: {ran}");
    // Six sessions of users 23..18 need those users, beyond the first six.
    assert!(ran.stdout.contains("users: 9 rows") && ran.stdout.contains("sessions: 6 rows"), "{pair}: {ran}");

    let audit = ws.audit_log();
    let line = audit.lines().find(|l| l.contains("rollback-tested: ")).unwrap_or_else(|| panic!("{pair}: {audit}"));
    assert!(line.contains("result=pass") && line.contains("rows_per_table=6"), "{pair}: {line}");
    // The rehearsal's own lifecycle stays in its own log.
    assert!(!audit.contains("writes-switched"), "{pair}: {audit}");

    // Nothing scratch is left; the real databases are as they were.
    assert_eq!(src.scratch_databases().await, Vec::<String>::new(), "{pair}");
    assert_eq!(dst.scratch_databases().await, Vec::<String>::new(), "{pair}");
    assert_eq!(src.ferry_objects().await, objects_before, "{pair}");
    assert_eq!(src.count("users").await, users_before, "{pair}");
    assert!(!dst.engine().await.table_exists(&ferry_core::TableName::parse("users")).await.unwrap(), "{pair}");
    assert!(!ws.path().join(".ferry/ferry/rehearsal").exists(), "{pair}: the rehearsal's state is left");
}

engine_matrix!(rehearsal_passes);

/// MariaDB's `bigint unsigned` keys (numeric(20,0) elsewhere): the parents
/// the first orders need are found and the rehearsal ends. The references
/// were keyed as converted and the parents as read, so they never met and
/// the seed read the same parents for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_keys_lead_to_their_parents() {
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE customers (id bigint unsigned AUTO_INCREMENT PRIMARY KEY, name varchar(50) NOT NULL);
         CREATE TABLE orders (id bigint unsigned AUTO_INCREMENT PRIMARY KEY, customer_id bigint unsigned NOT NULL,
             CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE);
         INSERT INTO customers (name) SELECT concat('c', seq) FROM seq_1_to_20;
         INSERT INTO orders (customer_id) SELECT 21 - seq FROM seq_1_to_20;",
    )
    .await;
    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[[table]]\nfrom = \"customers\"\n\n[[table]]\nfrom = \"orders\"\n"));
    let ran = ws.run(&["rehearse", "--rows", "4"]);
    ran.assert_code(0);
    // The first four orders belong to customers 20..17, beyond the first four.
    assert!(ran.stdout.contains("customers: 8 rows") && ran.stdout.contains("orders: 4 rows"), "{ran}");
    assert_eq!(src.scratch_databases().await, Vec::<String>::new());
    assert_eq!(dst.scratch_databases().await, Vec::<String>::new());
}

/// A spec with a read ramp (`[cutover]`) rehearses the way back from a
/// switch without running the ramp (its holds and flags are the real
/// cutover's), and leaves the flag file alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_with_a_read_ramp_rehearses_the_switch() {
    let src = app_source(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    let ws = Workspace::new(FERRY);
    let ramp = "\n[cutover]\nstages = [50, 100]\nhold = \"1h\"\nflagd_file = \"flags.json\"\n";
    ws.write_spec(&format!("{}{ramp}", spec(&src, &dst, fixtures::APP_TABLES)));
    let ran = ws.run(&["rehearse", "--rows", "6"]);
    ran.assert_code(0);
    assert!(ran.stdout.contains("rehearsal passed"), "{ran}");
    assert!(!ws.path().join("flags.json").exists(), "the rehearsal published no flag");
}

/// A computed column cannot be written back: with `rollback = "lossless"`
/// the rehearsal fails at the switch and says why; the plan's checklist
/// says it failed, and the switch refuses while the spec requires a rehearsal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearsal_fails_naming_the_cause() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Postgres).await;
    src.exec(
        "CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO items VALUES (1, 1), (2, 2);",
    )
    .await;
    let ws = Workspace::new(FERRY);
    let tables = "[[table]]\nfrom = \"items\"\n[table.columns]\ndouble = { expr = \"n * 2\", type = \"integer\" }\n";
    ws.write_spec(&spec(&src, &dst, tables).replace("[migration]\n", "[migration]\nrequire_rehearsal = true\n"));

    let ran = ws.run(&["rehearse"]);
    ran.assert_code(1);
    assert!(ran.stdout.contains("rehearsal FAILED"), "{ran}");
    assert!(ran.stdout.contains("cannot be inverted") && ran.stdout.contains("double"), "{ran}");
    assert!(ws.audit_log().contains("result=fail: "), "{}", ws.audit_log());
    assert_eq!(src.scratch_databases().await, Vec::<String>::new());
    assert_eq!(dst.scratch_databases().await, Vec::<String>::new());

    let plan = ws.plan_json();
    let item = plan["migration_plan"]["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "rollback-tested")
        .unwrap()
        .clone();
    assert_eq!(item["done"], false, "{item:#}");
    assert!(item["evidence"].as_str().unwrap().contains("failed"), "{item:#}");

    ws.run(&["run"]).assert_code(0);
    let refused = ws.run(&["switch"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("last rehearsal") && refused.stderr.contains("ferry rehearse"), "{refused}");
}

/// With `require_rehearsal`, the switch waits for a passing rehearsal of
/// this very spec; the plan's checklist ticks "rollback tested" from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_requires_a_rehearsal_of_this_spec() {
    let src = TestDb::new(Kind::Sqlite).await;
    let dst = TestDb::new(Kind::Sqlite).await;
    src.exec(
        "CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO items VALUES (1, 1), (2, 2);",
    )
    .await;
    let ws = Workspace::new(FERRY);
    let text = spec(&src, &dst, "[[table]]\nfrom = \"items\"\n")
        .replace("[migration]\n", "[migration]\nrequire_rehearsal = true\n");
    ws.write_spec(&text);
    ws.run(&["run"]).assert_code(0);
    let refused = ws.run(&["switch"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("none has run"), "{refused}");

    // A rehearsal of another version of the spec does not count.
    ws.write_spec(&text.replace("from = \"items\"\n", "from = \"items\"\nexclude = []\nkey = [\"id\"]\n"));
    ws.run(&["rehearse"]).assert_code(0);
    ws.write_spec(&text);
    let refused = ws.run(&["switch"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("another version of the spec"), "{refused}");

    ws.run(&["rehearse"]).assert_code(0);
    let plan = ws.plan_json();
    let item = plan["migration_plan"]["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "rollback-tested")
        .unwrap()
        .clone();
    assert_eq!(item["done"], true, "{item:#}");
    ws.run(&["verify"]).assert_code(0);
    ws.run(&["switch"]).assert_code(0);
}
