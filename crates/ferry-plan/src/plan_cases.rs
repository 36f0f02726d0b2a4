//! Whole plans from fixture assessments, with no database: every section of
//! plan.md, and plan.json, for a move within an engine, a move across
//! engines with findings to answer, and a change in place.

use super::fixture::{assessment, between, column, in_place, table, url};
use super::{build, markdown, Dialects, Recorded};
use ferry_core::spec::Spec;
use ferry_core::PlanDialect;
use serde_json::{json, Value};
use std::path::Path;

const GENERATED_AT: &str = "2026-12-01T09:00:00.000Z";

fn spec(text: &str) -> Spec {
    Spec::parse(Path::new("/srv/migrations/ferry.toml"), text).unwrap_or_else(|e| panic!("a fixture spec: {e}"))
}

/// A table of `rows` whose probe copied 40,000 rows/s, with a measured
/// latency and write rate, as `ferry plan` records after its probe.
fn measured(a: &mut Value, rows: u64) {
    let rate = 40_000.0;
    let t = table(a);
    t["rows"] = json!(rows);
    t["size_bytes"] = json!(rows * 180);
    t["latency"] = json!({ "samples": 20, "p50_ms": 0.4, "p99_ms": 1.9 });
    t["write_rate"] = json!(12.5);
    t["throughput"] = json!({
        "sample_rows": 20_000, "seconds": 0.5, "read_rows_per_second": rate * 2.0, "write_rows_per_second": rate,
        "target_read_rows_per_second": rate * 3.0, "lanes": 2, "copy_rows_per_second": rate,
        "overlapped_rows_per_second": rate * 1.4, "checksum_rows_per_second": rate * 8.0,
        "key_read_rows_per_second": rate * 10.0, "indexes_built": 1, "index_seconds": 0.05,
        "checks_run": 0, "check_seconds": null, "ddl_seconds": 0.004
    });
    t["indexes"] = json!([["email"]]);
    t["ddl_expand"] = json!([
        "CREATE TABLE \"users\" (\"id\" bigint NOT NULL, \"email\" varchar(200) NOT NULL, \"created_at\" timestamp NOT NULL, PRIMARY KEY (\"id\"))"
    ]);
    t["ddl_after_load"] = json!(["CREATE INDEX \"users_email\" ON \"users\" (\"email\")"]);
}

/// The engines' own dialects, by the fixture's engine names.
fn dialect(engine: &Value) -> &'static dyn PlanDialect {
    match engine.as_str() {
        Some("sqlite") => &ferry_sqlite::PLAN_DIALECT,
        Some("postgres") => &ferry_postgres::PLAN_DIALECT,
        Some("mysql") => &ferry_mysql::PLAN_DIALECT,
        other => panic!("no fixture engine {other:?}"),
    }
}

fn rendered(spec_text: &str, a: Value) -> (String, String) {
    let dialects = Dialects { source: dialect(&a["source"]["engine"]), target: dialect(&a["target"]["engine"]) };
    let plan = build(&spec(spec_text), &assessment(a), dialects, &Recorded::default(), GENERATED_AT);
    (markdown::render(&plan), serde_json::to_string_pretty(&plan).unwrap())
}

fn move_spec(source: &str, target: &str, downtime: &str) -> String {
    format!(
        "[migration]\nname = \"users to the new cluster\"\ndowntime = \"{downtime}\"\nrollback = \"lossless\"\n\
         owner = \"data-platform\"\n\n[source]\nurl = \"{}\"\n\n[target]\nurl = \"{}\"\n\n[[table]]\nfrom = \"users\"\n",
        url(source),
        url(target).replace("pg.internal", "pg-new.internal"),
    )
}

#[test]
fn a_move_within_postgresql() {
    let mut a = between("postgres", "postgres");
    a["target"]["url"] = json!("postgres://app@pg-new.internal:5432/shop");
    measured(&mut a, 2_500_000);
    let (md, json) = rendered(&move_spec("postgres", "postgres", "0s"), a);
    insta::assert_snapshot!("move_within_postgresql_md", md);
    insta::assert_snapshot!("move_within_postgresql_json", json);
}

/// MariaDB to PostgreSQL, small enough for a window: a big bang, with
/// case-insensitive text that becomes case-sensitive.
#[test]
fn a_small_move_from_mariadb_to_postgresql_in_a_window() {
    let mut a = between("mysql", "postgres");
    measured(&mut a, 40_000);
    column(&mut a, 1)["source_native"] = json!("varchar(200)");
    table(&mut a)["schema"] = json!([{
        "kind": "collation", "name": "email", "source": "utf8mb4_general_ci", "target": null,
        "problem": {
            "class": "collation", "reason": "PostgreSQL compares text with case",
            "resolve": "[table.translate] \"email.collation\" = \"\""
        }
    }]);
    let (md, _) = rendered(&move_spec("mysql", "postgres", "30m"), a);
    insta::assert_snapshot!("small_move_from_mariadb_md", md);
}

/// A rename in place on PostgreSQL: expand/contract, with the versions of
/// the table the application reads in each phase.
#[test]
fn a_rename_in_place() {
    let mut a = in_place("postgres");
    measured(&mut a, 300_000);
    table(&mut a)["throughput"]["in_place_rows_per_second"] = json!(25_000.0);
    column(&mut a, 1)["name"] = json!("login");
    let spec_text = format!(
        "[migration]\ndowntime = \"0s\"\nrollback = \"lossless\"\nowner = \"data-platform\"\n\n[source]\nurl = \"{}\"\n\n\
         [[change]]\ntable = \"users\"\nrename_column = \"email\"\nto = \"login\"\n",
        url("postgres")
    );
    let (md, _) = rendered(&spec_text, a);
    insta::assert_snapshot!("rename_in_place_md", md);
}
