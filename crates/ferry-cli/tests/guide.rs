//! docs/GUIDE.md, walked as written: its source schema (with fewer rows),
//! its spec snippets and its commands, from `ferry init` to `ferry contract`,
//! MariaDB to PostgreSQL. A snippet or a step the guide shows that stops
//! working fails here.

use ferry_testkit::{Kind, TestDb, Workspace};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// The guide's fenced blocks of one language, in order.
fn blocks(guide: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    guide.split(&fence).skip(1).map(|rest| rest.split("```").next().unwrap_or_default().to_string()).collect()
}

/// What a command printed, on either stream (as the guide shows it).
fn printed(ran: &ferry_testkit::Ran) -> String {
    format!("{}{}", ran.stdout, ran.stderr)
}

/// `ferry init`'s spec with its `[[table]]` entries replaced by `tables`
/// and the guide's ramp and soak after them.
fn spec_with(initialised: &str, tables: &str, ramp_and_soak: &str) -> String {
    let head = &initialised[..initialised.find("[[table]]").expect("init writes [[table]] entries")];
    format!("{head}{tables}\n{ramp_and_soak}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_runs_as_written() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/GUIDE.md")).unwrap();
    let sql = blocks(&guide, "sql");
    let toml = blocks(&guide, "toml");
    assert_eq!((sql.len(), toml.len()), (1, 2), "the guide's source and its two spec snippets");
    let src = TestDb::new(Kind::Mysql).await;
    let dst = TestDb::new(Kind::Postgres).await;
    let schema: String = sql[0].lines().filter(|l| !l.starts_with("--")).collect::<Vec<_>>().join("\n");
    let fewer = schema.replace("seq_1_to_50000", "seq_1_to_500").replace("seq % 50000", "seq % 500");
    src.exec(&fewer.replace("seq_1_to_200000", "seq_1_to_2000")).await;

    let ws = Workspace::new(FERRY);
    let init = ws.run(&[
        "init",
        "--source",
        &src.url,
        "--target",
        &dst.url,
        "--table",
        "customers",
        "--table",
        "orders",
        "--downtime",
        "0s",
        "--rollback",
        "lossless",
        "--owner",
        "you@example.com",
    ]);
    init.assert_code(0);
    assert!(printed(&init).contains("wrote ferry.toml (2 tables)"), "{init}");
    let initialised = std::fs::read_to_string(ws.spec_path()).unwrap();
    assert!(initialised.contains("bigint(20) unsigned -> numeric(20,0)"), "{initialised}");

    // The first snippet: a rename, the ramp and the soak. The plan asks about collations.
    let first = &toml[0];
    let ramp_and_soak = &first[first.find("[cutover]").expect("the first snippet has [cutover]")..];
    let tables = &first[..first.find("[cutover]").unwrap()];
    ws.write_spec(&spec_with(&initialised, tables, ramp_and_soak));
    let plan = ws.run(&["plan"]);
    plan.assert_code(0);
    for finding in ["F001 warning customers", "F004 warning customers", "F012 warning customers", "F012 warning orders"]
    {
        assert!(printed(&plan).contains(finding), "{finding}: {plan}");
    }
    // The second settles them.
    ws.write_spec(&spec_with(&initialised, &toml[1], ramp_and_soak));
    let plan = ws.run(&["plan"]);
    plan.assert_code(0);
    assert!(!printed(&plan).contains("F012"), "{plan}");

    let run = ws.run(&["run"]);
    run.assert_code(0);
    assert!(printed(&run).contains("verification passed") && printed(&run).contains("`ferry plan` estimated"), "{run}");
    let rehearse = ws.run(&["rehearse"]);
    rehearse.assert_code(0);
    assert!(printed(&rehearse).contains("rehearsal passed"), "{rehearse}");
    let cutover = ws.run(&["cutover"]);
    cutover.assert_code(0);
    assert!(printed(&cutover).contains("reads: 100 % to the target, held"), "{cutover}");
    assert!(ws.path().join("flags.json").exists(), "the flag file the guide names");
    ws.run(&["verify"]).assert_code(0);
    let switch = ws.run(&["switch"]);
    switch.assert_code(0);
    assert!(printed(&switch).contains("writes switched to the target"), "{switch}");

    // A write on the target after the switch reaches the source by reverse sync.
    let before = src.count("orders").await;
    dst.exec("INSERT INTO orders (customer_id, total, placed_at) VALUES (7, 1.00, now())").await;
    ws.run(&["sync"]).assert_code(0);
    assert_eq!(src.count("orders").await, before + 1, "reverse sync kept the source current");

    // The guide waits out its 30 s soak; the test says why it does not.
    let contract = ws.run(&["contract", "--confirm", "--skip-soak", "the guide's test"]);
    contract.assert_code(0);
    assert!(printed(&contract).contains("restored into a scratch database and matched the source"), "{contract}");
    assert!(printed(&contract).contains("contract complete"), "{contract}");
    let audit = ws.run(&["audit", "verify"]);
    audit.assert_code(0);
    assert!(printed(&audit).contains("audit log intact"), "{audit}");
    assert_eq!(src.ferry_objects().await, Vec::<String>::new());
    assert_eq!(dst.ferry_objects().await, Vec::<String>::new());
}
