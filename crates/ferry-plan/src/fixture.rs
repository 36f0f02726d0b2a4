//! Fixture assessments, with no database: a clean table that no rule flags
//! (a table move says only, as information, that the old table goes at
//! contract), to which each test makes the smallest change it needs. The
//! engines' capabilities are read from docs/engines.md's table, which a
//! ferry-cli test asserts against the engines themselves: the fixtures
//! cannot drift from what an engine says.

use crate::facts::Assessment;
use serde_json::{json, Map, Value};

/// An engine's capabilities, from the table in docs/engines.md.
fn capabilities(engine: &str) -> Value {
    let column = match engine {
        "sqlite" => 0,
        "postgres" => 1,
        "mysql" => 2,
        other => panic!("no engine {other} in docs/engines.md"),
    };
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/engines.md")).unwrap();
    let mut out = Map::new();
    for line in docs.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`');
        // "with utf8mb4_bin": a server setting decides it; a fixture server has the default.
        out.insert(name.to_string(), json!(cells[2 + column] == "yes"));
    }
    Value::Object(out)
}

/// Where each fixture engine is, as a spec would say it.
pub fn url(engine: &str) -> &'static str {
    match engine {
        "sqlite" => "sqlite:shop.db",
        "postgres" => "postgres://app@pg.internal:5432/shop",
        "mysql" => "mysql://app@mariadb.internal:3306/shop",
        other => panic!("no fixture engine {other}"),
    }
}

pub fn endpoint(engine: &str) -> Value {
    let (version, transport) = match engine {
        "sqlite" => ("3.46.1", json!({ "kind": "local_file" })),
        "postgres" => ("16.4", json!({ "kind": "tls", "protocol": "TLSv1.3", "mode": "sslmode=verify-full" })),
        _ => ("10.11.9-MariaDB", json!({ "kind": "unencrypted" })),
    };
    json!({
        "engine": engine, "capabilities": capabilities(engine), "url": url(engine),
        "version": version, "free_disk_bytes": null, "transport": transport
    })
}

/// PostgreSQL -> PostgreSQL, `users (id bigint key, email varchar(200), created_at timestamp)`,
/// all NOT NULL, 1,000 rows, nothing odd.
pub fn clean() -> Value {
    between("postgres", "postgres")
}

/// The clean table moved from one engine to another.
pub fn between(source: &str, target: &str) -> Value {
    let column = |name: &str, native: &str, ty: Value, nullable: bool| {
        json!({
            "name": name, "source_column": name, "expression": null, "source_type": ty, "source_native": native,
            "source_nullable": nullable, "desired": ty, "planned": ty, "nullable": nullable, "null_rows": null
        })
    };
    let table = json!({
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
    });
    json!({
        "measured_at": "2026-12-01T00:00:00Z", "shape": "table_move",
        "source": endpoint(source), "target": endpoint(target), "tables": [table]
    })
}

/// The clean table changed in place on `engine`.
pub fn in_place(engine: &str) -> Value {
    let mut a = between(engine, engine);
    a["shape"] = json!("in_place");
    a
}

/// The fixture's only table.
pub fn table(a: &mut Value) -> &mut Value {
    &mut a["tables"][0]
}

/// Column `i` of the fixture's table: 0 `id`, 1 `email`, 2 `created_at`.
pub fn column(a: &mut Value, i: usize) -> &mut Value {
    &mut a["tables"][0]["columns"][i]
}

pub fn assessment(a: Value) -> Assessment {
    serde_json::from_value(a).expect("a fixture assessment")
}

/// A schema item of `kind` with a problem of `class`, as the assessment
/// records one the target cannot create as it is.
pub fn problem(kind: &str, class: &str) -> Value {
    json!({
        "kind": kind, "name": "email", "source": "lower(email)", "target": null,
        "problem": { "class": class, "reason": "the target has no such thing", "resolve": "[table.translate] \"email\" = \"...\"" }
    })
}
