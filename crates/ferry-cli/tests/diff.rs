//! `ferry diff` on every engine pair: exactly the injected differences are
//! found, with the differing column named, and nothing else — not the
//! representation differences that are logically equal (numeric scale, time
//! zone offsets, JSON spacing and key order), not collation order of text keys.

use chrono::NaiveDate;
use ferry_core::value::parse_uuid;
use ferry_core::Value;
use ferry_testkit::fixtures::{every_type, every_type_ddl, insert_sql, literal, Fixture};
use ferry_testkit::{engine_matrix, Kind, TestDb, Workspace};
use std::collections::BTreeSet;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn table_ref(db: &TestDb, table: &str) -> String {
    format!("{}#{table}", db.url)
}

/// Runs `ferry diff --json` and returns `(exit code, report)`.
fn diff_json(db1: &TestDb, db2: &TestDb, table: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let ws = Workspace::new(FERRY);
    let (a, b) = (table_ref(db1, table), table_ref(db2, table));
    let mut args = vec!["diff", a.as_str(), b.as_str(), "--json"];
    args.extend_from_slice(extra);
    let ran = ws.run(&args);
    let report = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{ran}"));
    (ran.code.unwrap_or(-1), report)
}

/// `(kind, key, differing columns)` of every difference in a report.
fn differences(report: &serde_json::Value) -> BTreeSet<(String, String, Vec<String>)> {
    report["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| {
            let columns = d["columns"].as_array().unwrap().iter().map(|c| c["column"].as_str().unwrap().to_string());
            (d["kind"].as_str().unwrap().to_string(), d["key"].as_str().unwrap().to_string(), columns.collect())
        })
        .collect()
}

/// A value of the column's type that differs from the fixture's first row.
fn changed(column: &str) -> Value {
    match column {
        "i16" | "i32" | "i64" => Value::Int(7),
        "num" => Value::Decimal("7.5".into()),
        "f32" | "f64" => Value::Float(7.5),
        "flag" => Value::Bool(false),
        "txt" | "vc" => Value::Text("changed ✓".into()),
        "bin" => Value::Bytes(vec![7, 7]),
        "d" => Value::Date(NaiveDate::from_ymd_opt(2001, 2, 3).unwrap()),
        "t" => Value::Time(chrono::NaiveTime::from_hms_opt(1, 2, 3).unwrap()),
        "ts" => Value::Timestamp(NaiveDate::from_ymd_opt(2001, 2, 3).unwrap().and_hms_opt(4, 5, 6).unwrap()),
        "tstz" => {
            Value::TimestampTz(NaiveDate::from_ymd_opt(2001, 2, 3).unwrap().and_hms_opt(4, 5, 6).unwrap().and_utc())
        }
        "js" => Value::Json(r#"{"changed": true}"#.into()),
        "uid" => Value::Uuid(parse_uuid("11111111-2222-3333-4444-555555555555").unwrap()),
        other => panic!("no changed value for {other}"),
    }
}

/// The every-type fixture plus one copy of its first row per column (ids 100+),
/// so that each column can be changed on its own row.
fn fixture() -> Fixture {
    let mut f = every_type();
    let first = f.rows[0].clone();
    for i in 1..f.columns.len() {
        let mut row = first.clone();
        row[0] = Value::Int(100 + i as i64);
        f.rows.push(row);
    }
    f
}

async fn exact_differences(source_kind: Kind, target_kind: Kind) {
    let (source, target) = (TestDb::new(source_kind).await, TestDb::new(target_kind).await);
    let f = fixture();
    for db in [&source, &target] {
        db.exec(every_type_ddl(db.kind)).await;
        db.exec(&insert_sql(db.kind, &f)).await;
    }
    let (code, report) = diff_json(&source, &target, "every_type", &[]);
    assert_eq!(code, 0, "identical tables must compare equal: {report:#}");
    assert_eq!(report["rows_source"], f.rows.len());
    assert!(differences(&report).is_empty(), "{report:#}");

    // One row missing, one extra, and on row 100+i only column i changed.
    let k = target.kind;
    let mut sql = String::from(if k == Kind::Mysql { "SET time_zone = '+00:00';\n" } else { "" });
    sql.push_str("DELETE FROM every_type WHERE id = 2;\n");
    let extra = f.rows[1].iter().enumerate().map(|(i, v)| if i == 0 { "9".into() } else { literal(k, v) });
    sql.push_str(&format!("INSERT INTO every_type VALUES ({});\n", extra.collect::<Vec<_>>().join(", ")));
    let mut expected = BTreeSet::from([
        ("missing".to_string(), "id=2".to_string(), vec![]),
        ("extra".to_string(), "id=9".to_string(), vec![]),
    ]);
    for (i, (column, _)) in f.columns.iter().enumerate().skip(1) {
        let id = 100 + i;
        sql.push_str(&format!("UPDATE every_type SET {column} = {} WHERE id = {id};\n", literal(k, &changed(column))));
        expected.insert(("mismatched".into(), format!("id={id}"), vec![column.to_string()]));
    }
    target.exec(&sql).await;
    let (code, report) = diff_json(&source, &target, "every_type", &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(differences(&report), expected, "{report:#}");
    assert_eq!(report["counts"]["mismatched"], f.columns.len() - 1);

    // The same through ranges read and hashed by ferry, in small chunks.
    let (_, small) = diff_json(&source, &target, "every_type", &["--chunk-rows", "3"]);
    assert_eq!(differences(&small), expected, "{small:#}");
    // And restricted: one column, a filter.
    let (code, report) = diff_json(&source, &target, "every_type", &["--columns", "txt", "--where", "id >= 100"]);
    assert_eq!(code, 1);
    let found = differences(&report);
    assert_eq!(found.len(), 1, "{report:#}");
    assert!(found.iter().all(|(kind, _, cols)| kind == "mismatched" && cols == &["txt".to_string()]), "{report:#}");
}
engine_matrix!(exact_differences);

/// Numbers at another scale, instants written at another offset, JSON with
/// other spacing and key order: equal values, no difference.
async fn equal_representations(source_kind: Kind, target_kind: Kind) {
    let (source, target) = (TestDb::new(source_kind).await, TestDb::new(target_kind).await);
    let ddl = |k: Kind, scale: u32| {
        match k {
        Kind::Postgres => format!("CREATE TABLE reps (id int PRIMARY KEY, amount numeric(14,{scale}), at timestamptz, doc jsonb, price double precision)"),
        Kind::Mysql => format!("CREATE TABLE reps (id int PRIMARY KEY, amount decimal(14,{scale}), at timestamp(6) NULL, doc json, price double)"),
        Kind::Sqlite => format!("CREATE TABLE reps (id INTEGER PRIMARY KEY, amount NUMERIC(14,{scale}), at TIMESTAMPTZ, doc JSON, price REAL)"),
    }
    };
    let tz =
        |k: Kind, offset: &str| if k == Kind::Mysql { format!("SET time_zone = '{offset}';\n") } else { String::new() };
    source.exec(&ddl(source.kind, 2)).await;
    target.exec(&ddl(target.kind, 4)).await;
    let at_source = match source.kind {
        Kind::Mysql => "'2024-05-01 12:00:00'".to_string(),
        _ => "'2024-05-01 12:00:00+02:00'".to_string(),
    };
    let at_target = match target.kind {
        Kind::Mysql => "'2024-05-01 15:30:00'".to_string(),
        _ => "'2024-05-01 10:00:00Z'".to_string(),
    };
    source
        .exec(&format!(
            "{}INSERT INTO reps VALUES (1, 1.50, {at_source}, '{{\"b\": 2, \"a\": [1, 2.5, \"✓ 🦀\"]}}', 0.1), (2, 10, NULL, '[]', 1e20), (3, -0.10, {at_source}, '{{}}', -0.0)",
            tz(source.kind, "+02:00")
        ))
        .await;
    target
        .exec(&format!(
            "{}INSERT INTO reps VALUES (1, 1.5000, {at_target}, '{{\"a\":[1,2.5,\"✓ 🦀\"],\"b\":2}}', 0.1), (2, 10.0000, NULL, '[ ]', 100000000000000000000), (3, -0.1, {at_target}, '{{ }}', 0)",
            tz(target.kind, "+05:30")
        ))
        .await;
    let (code, report) = diff_json(&source, &target, "reps", &[]);
    assert_eq!(code, 0, "logically equal rows were reported: {report:#}");
    assert_eq!(report["rows_target"], 3);
}
engine_matrix!(equal_representations);

/// Text keys whose order differs between collations (case, accents,
/// symbols, emoji): compared without any engine's collation deciding.
async fn text_keys(source_kind: Kind, target_kind: Kind) {
    let (source, target) = (TestDb::new(source_kind).await, TestDb::new(target_kind).await);
    let keys = [
        "apple",
        "Banana",
        "cherry",
        "Éclair",
        "zebra",
        "_under",
        "-dash",
        "~tilde",
        "1abc",
        "Ærø",
        "🦀 crab",
        "a b",
        "Zulu",
        "ñandú",
    ];
    for db in [&source, &target] {
        let ddl = match db.kind {
            Kind::Mysql => "CREATE TABLE words (k varchar(40) PRIMARY KEY, v int) CHARACTER SET utf8mb4",
            _ => "CREATE TABLE words (k varchar(40) PRIMARY KEY, v int)",
        };
        db.exec(ddl).await;
        let values: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("('{k}', {i})")).collect();
        db.exec(&format!("INSERT INTO words VALUES {}", values.join(", "))).await;
    }
    let (code, report) = diff_json(&source, &target, "words", &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["method"], "key_hash_buckets");
    target.exec("DELETE FROM words WHERE k = 'Éclair'; UPDATE words SET v = 99 WHERE k = 'Banana'; INSERT INTO words VALUES ('ÉCLAIRS', 1)").await;
    let (code, report) = diff_json(&source, &target, "words", &[]);
    assert_eq!(code, 1);
    let expected = BTreeSet::from([
        ("missing".to_string(), "k=\"Éclair\"".to_string(), vec![]),
        ("mismatched".to_string(), "k=\"Banana\"".to_string(), vec!["v".to_string()]),
        ("extra".to_string(), "k=\"ÉCLAIRS\"".to_string(), vec![]),
    ]);
    assert_eq!(differences(&report), expected, "{report:#}");
}
engine_matrix!(text_keys);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_references_are_explained() {
    let db = TestDb::new(Kind::Sqlite).await;
    db.exec("CREATE TABLE nokey (a int, b text); CREATE TABLE t (id int primary key)").await;
    let ws = Workspace::new(FERRY);
    let ran = ws.run(&["diff", &db.url, &table_ref(&db, "t")]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("does not name a table") && ran.stderr.contains("URL#table"), "{ran}");
    let ran = ws.run(&["diff", &table_ref(&db, "nokey"), &table_ref(&db, "nokey")]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("--key"), "{ran}");
    ws.run(&["diff", &table_ref(&db, "nokey"), &table_ref(&db, "nokey"), "--key", "a"]).assert_code(0);
    let ran = ws.run(&["diff", &table_ref(&db, "missing"), &table_ref(&db, "t")]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("missing"), "{ran}");
    let ran = ws.run(&["diff", &table_ref(&db, "t"), &table_ref(&db, "t"), "--columns", "nope"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("`nope`"), "{ran}");
    // The key comes from the second table and the first one lacks it: an error, not a guess.
    db.exec("CREATE TABLE keyless (x int, y int); CREATE TABLE keyed (id int primary key, x int)").await;
    let ran = ws.run(&["diff", &table_ref(&db, "keyless"), &table_ref(&db, "keyed")]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("column `id` is not in keyless"), "{ran}");
}

/// Where both databases checksum in place, a difference deep in a large
/// chunk is found by bisection: only the parts that differ are read.
async fn bisection(kind: Kind) {
    let (source, target) = (TestDb::new(kind).await, TestDb::new(kind).await);
    let rows: Vec<String> = (1..=6000).map(|i| format!("({i}, 'row {i}', {i}.25)")).collect();
    for db in [&source, &target] {
        db.exec("CREATE TABLE big (id int PRIMARY KEY, name varchar(40), amount numeric(10,2))").await;
        db.exec(&format!("INSERT INTO big VALUES {}", rows.join(", "))).await;
    }
    target.exec("UPDATE big SET name = 'x' WHERE id = 4321; DELETE FROM big WHERE id = 17; INSERT INTO big VALUES (6001, 'new', 1)").await;
    let (code, report) = diff_json(&source, &target, "big", &["--chunk-rows", "4000"]);
    assert_eq!(code, 1);
    assert_eq!(report["method"], "ranges_in_database", "{report:#}");
    let expected = BTreeSet::from([
        ("mismatched".to_string(), "id=4321".to_string(), vec!["name".to_string()]),
        ("missing".to_string(), "id=17".to_string(), vec![]),
        ("extra".to_string(), "id=6001".to_string(), vec![]),
    ]);
    assert_eq!(differences(&report), expected, "{report:#}");
    let compared = report["rows_compared"].as_u64().unwrap();
    assert!(compared < 2000, "bisection should read only the differing parts, read {compared} rows: {report:#}");
    assert_eq!((report["rows_source"].as_u64(), report["rows_target"].as_u64()), (Some(6000), Some(6000)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisection_postgres() {
    bisection(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisection_mysql() {
    bisection(Kind::Mysql).await;
}

mod random_rows {
    //! Property test across engines: random rows (any Unicode with 4-byte
    //! characters, decimals, instants at random offsets, JSON, doubles),
    //! each engine given its own spelling of them, compare equal; one changed
    //! value is found, alone.

    use super::*;
    use chrono::{DateTime, FixedOffset, Utc};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[derive(Debug, Clone)]
    struct Generated {
        text: String,
        units: i64,
        fraction: u32,
        instant: DateTime<Utc>,
        offset_minutes: i32,
        doc: serde_json::Value,
        price: f64,
    }

    fn generated() -> impl Strategy<Value = Generated> {
        let doc = proptest::collection::btree_map(
            "[a-zé🦀]{1,5}",
            prop_oneof![
                any::<i32>().prop_map(|i| serde_json::json!(i)),
                "\\PC{0,6}".prop_map(serde_json::Value::String),
                any::<bool>().prop_map(serde_json::Value::Bool),
            ],
            0..4,
        );
        (
            ("\\PC{0,16}", "[🦀🧪😀𝄞]{1,2}").prop_map(|(a, b)| format!("{a}{b}")),
            // 14 significant digits: SQLite keeps NUMERIC as a double (15 digits).
            -100_000_000i64..100_000_000,
            0u32..1_000_000,
            0i64..2_000_000_000,
            0u32..1_000_000,
            -12 * 60i32..=14 * 60,
            doc,
            proptest::num::f64::NORMAL,
        )
            .prop_map(|(text, units, fraction, secs, micros, offset_minutes, doc, price)| Generated {
                text,
                units,
                fraction,
                instant: DateTime::<Utc>::from_timestamp(secs, micros * 1000).unwrap(),
                offset_minutes,
                doc: serde_json::Value::Object(doc.into_iter().collect()),
                price,
            })
    }

    fn ddl(kind: Kind, scale: u32) -> String {
        match kind {
            Kind::Postgres => format!("CREATE TABLE r (id int PRIMARY KEY, txt text, amount numeric(24,{scale}), at timestamptz, doc jsonb, price double precision)"),
            Kind::Mysql => format!("CREATE TABLE r (id int PRIMARY KEY, txt longtext, amount decimal(24,{scale}), at timestamp(6) NULL, doc json, price double) CHARACTER SET utf8mb4"),
            Kind::Sqlite => format!("CREATE TABLE r (id INTEGER PRIMARY KEY, txt TEXT, amount NUMERIC(24,{scale}), at TIMESTAMPTZ, doc JSON, price REAL)"),
        }
    }

    /// The row as `kind` is given it; `variant` picks among equal spellings.
    fn insert(kind: Kind, id: usize, g: &Generated, scale: u32, variant: bool) -> String {
        let sign = if g.units < 0 { "-" } else { "" };
        let mut fraction = format!("{:06}", g.fraction);
        while (fraction.len() as u32) < scale {
            fraction.push('0');
        }
        let amount = format!("{sign}{}.{fraction}", g.units.unsigned_abs());
        let at = match kind {
            Kind::Mysql => format!("'{}'", g.instant.format("%Y-%m-%d %H:%M:%S%.6f")),
            _ => {
                let offset = FixedOffset::east_opt(if variant { g.offset_minutes * 60 } else { 0 }).unwrap();
                format!("'{}'", g.instant.with_timezone(&offset).format("%Y-%m-%d %H:%M:%S%.6f%:z"))
            }
        };
        let doc = if variant { serde_json::to_string_pretty(&g.doc).unwrap() } else { g.doc.to_string() };
        let price = if variant { format!("{:e}", g.price) } else { format!("{:?}", g.price) };
        format!(
            "({id}, {}, {amount}, {at}, {}, {price})",
            literal(kind, &Value::Text(g.text.clone())),
            literal(kind, &Value::Text(doc))
        )
    }

    async fn random_rows_compare_equal(source_kind: Kind, target_kind: Kind) {
        let mut runner = TestRunner::default();
        let rows: Vec<Generated> =
            (0..120).map(|_| generated().new_tree(&mut runner).expect("generate").current()).collect();
        let (source, target) = (TestDb::new(source_kind).await, TestDb::new(target_kind).await);
        for (db, scale, variant) in [(&source, 6, true), (&target, 8, false)] {
            db.exec(&ddl(db.kind, scale)).await;
            let values: Vec<String> =
                rows.iter().enumerate().map(|(i, g)| insert(db.kind, i + 1, g, scale, variant)).collect();
            let utc = if db.kind == Kind::Mysql { "SET time_zone = '+00:00';\n" } else { "" };
            db.exec(&format!("{utc}INSERT INTO r VALUES {}", values.join(",\n"))).await;
        }
        let (code, report) = diff_json(&source, &target, "r", &[]);
        assert_eq!(code, 0, "equal rows reported as different: {report:#}\nrows: {rows:#?}");
        let (code, report) = diff_json(&target, &source, "r", &[]);
        assert_eq!(code, 0, "equal rows reported as different (reversed): {report:#}");

        let victim = fastrand::usize(0..rows.len()) + 1;
        target
            .exec(&format!(
                "UPDATE r SET txt = {} WHERE id = {victim}",
                literal(target.kind, &Value::Text("changed 🦀".into()))
            ))
            .await;
        let (code, report) = diff_json(&source, &target, "r", &[]);
        assert_eq!(code, 1);
        let expected = BTreeSet::from([("mismatched".to_string(), format!("id={victim}"), vec!["txt".to_string()])]);
        assert_eq!(differences(&report), expected, "{report:#}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql_to_postgres() {
        random_rows_compare_equal(Kind::Mysql, Kind::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_to_mysql() {
        random_rows_compare_equal(Kind::Postgres, Kind::Mysql).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_to_mysql() {
        random_rows_compare_equal(Kind::Sqlite, Kind::Mysql).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_to_sqlite() {
        random_rows_compare_equal(Kind::Postgres, Kind::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_to_postgres() {
        random_rows_compare_equal(Kind::Postgres, Kind::Postgres).await;
    }
}
