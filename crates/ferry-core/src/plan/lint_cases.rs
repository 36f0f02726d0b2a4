//! The change-analysis rules on fixture assessments, with no database:
//! a clean table that no rule flags, and for each rule the smallest change
//! to its facts that it must flag (squawk's way: each rule positive and
//! negative, the messages in one snapshot).

use super::{lint, Severity};
use crate::plan::facts::Assessment;
use serde_json::{json, Value};
use std::fmt::Write;

/// PostgreSQL -> PostgreSQL, `users (id bigint key, email varchar(200), created_at timestamp)`,
/// all NOT NULL, 1,000 rows, nothing odd.
fn clean_table() -> Value {
    let column = |name: &str, native: &str, ty: Value, nullable: bool| {
        json!({
            "name": name, "source_column": name, "expression": null, "source_type": ty, "source_native": native,
            "source_nullable": nullable, "desired": ty, "planned": ty, "nullable": nullable, "null_rows": null
        })
    };
    json!({
        "source": "users", "target": "users", "rows": 1000, "rows_exact": true, "size_bytes": null,
        "filter": null, "primary_key": ["id"], "key": ["id"], "key_enforced": true, "unique_keys": [],
        "indexes": [], "foreign_keys_out": [],
        "dependents": { "foreign_keys_in": [], "triggers": [], "views": [] },
        "columns": [
            column("id", "bigint", json!({ "kind": "int64" }), false),
            column("email", "character varying(200)", json!({ "kind": "text", "max_chars": 200 }), false),
            column("created_at", "timestamp without time zone", json!({ "kind": "timestamp" }), false)
        ],
        "dropped_columns": [], "target_exists": false, "latency": null, "throughput": null,
        "ddl_expand": [], "ddl_after_load": []
    })
}

fn assessment(table: Value) -> Assessment {
    let endpoint = json!({ "engine": "postgres", "url": "postgres://db", "version": "16", "free_disk_bytes": null });
    serde_json::from_value(json!({
        "measured_at": "2026-12-01T00:00:00Z", "shape": "table_move",
        "source": endpoint, "target": endpoint, "tables": [table]
    }))
    .expect("a fixture assessment")
}

/// A case: its name, the codes it must raise (in the plan's order), and
/// the change to the clean table's facts.
type Case = (&'static str, &'static [&'static str], fn(&mut Value));

fn cases() -> Vec<Case> {
    vec![
        ("a renamed column", &["F001"], |t| {
            t["columns"][1]["name"] = json!("login");
        }),
        ("text narrowed", &["F002"], |t| {
            t["columns"][1]["desired"] = json!({ "kind": "text", "max_chars": 50 });
            t["columns"][1]["planned"] = json!({ "kind": "text", "max_chars": 50 });
        }),
        ("text to a number", &["F002"], |t| {
            t["columns"][1]["desired"] = json!({ "kind": "int64" });
            t["columns"][1]["planned"] = json!({ "kind": "int64" });
        }),
        ("NULLs counted in a column made NOT NULL", &["F003"], |t| {
            t["columns"][1]["source_nullable"] = json!(true);
            t["columns"][1]["null_rows"] = json!(3);
        }),
        ("a nullable source column made NOT NULL, not counted", &["F003"], |t| {
            t["columns"][1]["source_nullable"] = json!(true);
        }),
        ("a column left out", &["F004"], |t| {
            t["dropped_columns"] = json!(["legacy_flag"]);
        }),
        ("no key at all", &["F007"], |t| {
            t["key"] = json!([]);
            t["primary_key"] = json!([]);
        }),
        ("a key no constraint enforces", &["F007"], |t| {
            t["key_enforced"] = json!(false);
        }),
        ("MySQL zero dates", &["F013"], |t| {
            t["columns"][2]["source_native"] = json!("datetime(6)");
            t["columns"][2]["zero_dates"] = json!({ "rows": 4, "whole": 3 });
        }),
        ("NULL in the key", &["F019", "F003"], |t| {
            t["columns"][0]["source_nullable"] = json!(true);
            t["null_key_rows"] = json!(2);
        }),
        ("a nullable key with no NULL yet", &["F003", "F019"], |t| {
            t["columns"][0]["source_nullable"] = json!(true);
            t["null_key_rows"] = json!(0);
        }),
        ("keys that collide on the target", &["F020"], |t| {
            t["key_collisions"] = json!({ "comparison": "ignoring case", "groups": 2, "first": ["Ann", "BOB"] });
        }),
        ("a target that holds rows", &["F021"], |t| {
            t["target_exists"] = json!(true);
            t["target_rows"] = json!(12);
        }),
        ("a target that holds rows, merged", &["F021"], |t| {
            t["target_exists"] = json!(true);
            t["target_rows"] = json!(12);
            t["merge_existing_rows"] = json!(true);
        }),
    ]
}

/// A table move always says, as information, that the old table goes at contract.
#[test]
fn a_clean_table_raises_only_the_contract_note() {
    let findings = lint(&assessment(clean_table()));
    let said: Vec<(&str, Severity)> = findings.iter().map(|f| (f.code.as_str(), f.severity)).collect();
    assert_eq!(said, vec![("F004", Severity::Info)], "{findings:#?}");
}

#[test]
fn each_rule_flags_its_case_and_only_its_case() {
    let mut shown = String::new();
    for (case, codes_wanted, change) in cases() {
        let mut table = clean_table();
        change(&mut table);
        let clean = lint(&assessment(clean_table()));
        let findings: Vec<_> = lint(&assessment(table)).into_iter().filter(|f| !clean.contains(f)).collect();
        let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, codes_wanted.to_vec(), "{case}: {findings:#?}");
        let _ = writeln!(shown, "{case}");
        for f in &findings {
            let column = f.column.as_deref().unwrap_or("-");
            let _ = writeln!(shown, "  {} {:?} {column}: {}", f.code, f.severity, f.message);
        }
    }
    insta::assert_snapshot!(shown);
}
