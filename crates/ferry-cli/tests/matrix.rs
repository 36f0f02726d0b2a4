//! Every engine pair moves a table holding every common type, and the values
//! arrive exactly (compared as canonical values, not just counted).

use ferry_core::convert::convert;
use ferry_core::{DataType, Row, TableName, Value};
use ferry_testkit::{engine_matrix, fixtures, spec, Kind, TestDb, Workspace};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn expected_in(types: &[DataType], rows: &[Row]) -> Vec<Row> {
    rows.iter()
        .map(|r| r.iter().zip(types).map(|(v, t)| convert(v.clone(), t).expect("fixture converts")).collect())
        .collect()
}

/// Column-by-column differences, for a failure message that says what differs.
fn differences(names: &[&str], expected: &[Row], actual: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    if expected.len() != actual.len() {
        out.push(format!("{} rows expected, {} found", expected.len(), actual.len()));
    }
    for (e, a) in expected.iter().zip(actual) {
        for ((name, ev), av) in names.iter().zip(e).zip(a) {
            if Value::encode_row(std::slice::from_ref(ev)) != Value::encode_row(std::slice::from_ref(av)) {
                out.push(format!("row id={}: {name}: expected {ev:?}, found {av:?}", e[0]));
            }
        }
    }
    out
}

async fn table_types(db: &TestDb, table: &str, names: &[&str]) -> Vec<DataType> {
    let schema = db.engine().await.introspect(&TableName::parse(table)).await.expect("introspect");
    names
        .iter()
        .map(|n| schema.column(n).unwrap_or_else(|| panic!("column {n} missing in {table}")).data_type.clone())
        .collect()
}

async fn every_type_round_trip(source: Kind, target: Kind) {
    let fixture = fixtures::every_type();
    let names = fixture.column_names();
    let src = TestDb::new(source).await;
    let dst = TestDb::new(target).await;
    src.exec(fixtures::every_type_ddl(source)).await;
    src.exec(&fixtures::insert_sql(source, &fixture)).await;

    // The fixture itself reads back as written (guards the test, not Ferry).
    let src_types = table_types(&src, "every_type", &names).await;
    let in_source = src.rows("every_type", &["id"], &names, &src_types).await;
    let diffs = differences(&names, &expected_in(&src_types, &fixture.rows), &in_source);
    assert!(diffs.is_empty(), "{source} fixture does not read back as written:\n{}", diffs.join("\n"));

    let ws = Workspace::new(FERRY);
    ws.write_spec(&spec(&src, &dst, "[policy]\nbatch_size = 3\n\n[[table]]\nfrom = \"every_type\"\n"));
    let ran = ws.run(&["run"]);
    ran.assert_code(0);

    let dst_types = table_types(&dst, "every_type", &names).await;
    let in_target = dst.rows("every_type", &["id"], &names, &dst_types).await;
    let diffs = differences(&names, &expected_in(&dst_types, &fixture.rows), &in_target);
    assert!(diffs.is_empty(), "{source} -> {target}: values did not arrive exactly:\n{}\n{ran}", diffs.join("\n"));

    // Verification ran and says so, in the status and in the audit log.
    let status = ws.status_json();
    assert_eq!(status["verification"], "pass", "{status:#}");
    assert_eq!(status["tables"][0]["rows_copied"], 4, "{status:#}");
    let audit = ws.audit_log();
    assert!(audit.contains("integrity-check: phase=4, rows_expected=4, rows_actual=4, checksum=pass"), "{audit}");
    assert!(dst.ferry_objects().await.is_empty(), "ferry_ objects left in the target");
}

engine_matrix!(every_type_round_trip);
