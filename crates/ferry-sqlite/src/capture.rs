//! Change capture on SQLite: one change log shared by every captured table.
//!
//! SQLite has only row-level triggers, so each captured row costs one log
//! insert. What a small transaction pays most for is not that insert but the
//! pages it dirties: with a log per table, a transaction writing three tables
//! wrote three more B-tree pages to the WAL at commit, plus `sqlite_sequence`
//! for AUTOINCREMENT. One log (`ferry_changes`, each row tagged with its
//! table's number from `ferry_capture_tables`) whose sequence is the rowid
//! dirties one page per transaction, whatever the number of tables.
//!
//! The log has no index but its rowid: reading one table's changes walks the
//! log in order and skips the other tables' rows, which only costs when one
//! table's changes wait behind many of another's. A rowid is one more than
//! the largest present, so once the oldest rows are acknowledged a removed
//! number could come back; a sentinel row (table 0) is moved up to the largest
//! acknowledged number, which keeps the sequence increasing for the log's
//! whole life.

use ferry_core::{TableName, TableSchema};
use ferry_engine::sql::SQLITE;
use ferry_engine::{capture_name, change_log_table};
use ferry_engine::{CaptureLag, CaptureScope};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

pub const LOG: &str = "ferry_changes";
pub const TABLES: &str = "ferry_capture_tables";

/// The table number of the sentinel row, which no captured table has.
const SENTINEL: i64 = 0;

fn trigger_names(scope: &CaptureScope, table: &TableName) -> [String; 4] {
    let name = capture_name(scope, table);
    ["ins", "upd", "key", "del"].map(|suffix| format!("{name}_{suffix}"))
}

fn key_columns(width: usize) -> Vec<String> {
    (0..width).map(|i| format!("k{i}")).collect()
}

/// The name `table` is registered under in one migration's scope: its own
/// name for the legacy scope, `scope/table` otherwise.
fn registered_name(scope: &CaptureScope, table: &TableName) -> String {
    if scope.is_legacy() {
        table.name.clone()
    } else {
        format!("{}/{}", scope.as_str(), table.name)
    }
}

/// Creates the shared log if needed, registers `table` in `scope` and
/// installs its triggers, in one transaction.
pub fn install(c: &mut Connection, scope: &CaptureScope, table: &TableSchema, key: &[String]) -> rusqlite::Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {TABLES} (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         CREATE TABLE IF NOT EXISTS {LOG} (seq INTEGER PRIMARY KEY, tbl INTEGER NOT NULL, op TEXT NOT NULL,
             at REAL NOT NULL DEFAULT (julianday('now')));
         INSERT INTO {LOG} (tbl, op) SELECT {SENTINEL}, '-' WHERE NOT EXISTS (SELECT 1 FROM {LOG} WHERE tbl = {SENTINEL});"
    ))?;
    let registered = registered_name(scope, &table.name);
    tx.execute(&format!("INSERT OR IGNORE INTO {TABLES} (name) VALUES (?1)"), [&registered])?;
    let id: i64 = tx.query_row(&format!("SELECT id FROM {TABLES} WHERE name = ?1"), [&registered], |r| r.get(0))?;
    // Key columns carry no type, so each keeps the value exactly as the
    // table stored it; the log has as many as the widest key captured.
    let present: usize =
        tx.query_row(&format!("SELECT count(*) FROM pragma_table_info('{LOG}') WHERE name GLOB 'k[0-9]*'"), [], |r| {
            r.get::<_, i64>(0)
        })? as usize;
    for i in present..key.len() {
        tx.execute_batch(&format!("ALTER TABLE {LOG} ADD COLUMN k{i}"))?;
    }
    let t = SQLITE.ident(&table.name.name);
    let ks = key_columns(key.len()).join(", ");
    let of = |row: &str| key.iter().map(|k| format!("{row}.{}", SQLITE.ident(k))).collect::<Vec<_>>().join(", ");
    let quoted: Vec<String> = key.iter().map(|k| SQLITE.ident(k)).collect();
    let changed = quoted.iter().map(|k| format!("OLD.{k} IS NOT NEW.{k}")).collect::<Vec<_>>().join(" OR ");
    let insert = |op: &str, row: &str| format!("INSERT INTO {LOG} (tbl, op, {ks}) VALUES ({id}, '{op}', {});", of(row));
    let [ins, upd, key_update, del] = trigger_names(scope, &table.name).map(|n| SQLITE.ident(&n));
    // An update logs its new key; only an update of a key column that changes
    // it also logs the old one, through a trigger whose WHEN is checked
    // without running it.
    tx.execute_batch(&format!(
        "CREATE TRIGGER IF NOT EXISTS {ins} AFTER INSERT ON {t} BEGIN {} END;
         CREATE TRIGGER IF NOT EXISTS {upd} AFTER UPDATE ON {t} BEGIN {} END;
         CREATE TRIGGER IF NOT EXISTS {key_update} AFTER UPDATE OF {} ON {t} WHEN {changed} BEGIN {} END;
         CREATE TRIGGER IF NOT EXISTS {del} AFTER DELETE ON {t} BEGIN {} END;",
        insert("I", "NEW"),
        insert("U", "NEW"),
        quoted.join(", "),
        insert("U", "OLD"),
        insert("D", "OLD"),
    ))?;
    tx.commit()
}

/// Removes `table`'s triggers and changes in `scope`; the shared log goes
/// with the last captured table. Also removes a per-table log left by an
/// earlier version.
pub fn remove(c: &mut Connection, scope: &CaptureScope, table: &TableName) -> rusqlite::Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for name in trigger_names(scope, table) {
        tx.execute_batch(&format!("DROP TRIGGER IF EXISTS {}", SQLITE.ident(&name)))?;
    }
    if scope.is_legacy() {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", SQLITE.ident(&change_log_table(scope, table).name)))?;
    }
    if let Some(id) = table_id(&tx, scope, table)? {
        tx.execute(&format!("DELETE FROM {LOG} WHERE tbl = ?1"), [id])?;
        tx.execute(&format!("DELETE FROM {TABLES} WHERE id = ?1"), [id])?;
        let left: i64 = tx.query_row(&format!("SELECT count(*) FROM {TABLES}"), [], |r| r.get(0))?;
        if left == 0 {
            tx.execute_batch(&format!("DROP TABLE {LOG}; DROP TABLE {TABLES};"))?;
        }
    }
    tx.commit()
}

/// Whether `table` still has the per-table log of an earlier Ferry version.
pub fn has_legacy_log(c: &Connection, table: &TableName) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [&change_log_table(&CaptureScope::legacy(), table).name],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )
}

fn table_id(c: &Connection, scope: &CaptureScope, table: &TableName) -> rusqlite::Result<Option<i64>> {
    let registered: bool =
        c.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [TABLES], |r| {
            r.get::<_, i64>(0).map(|n| n > 0)
        })?;
    if !registered {
        return Ok(None);
    }
    c.query_row(&format!("SELECT id FROM {TABLES} WHERE name = ?1"), [registered_name(scope, table)], |r| r.get(0))
        .optional()
}

/// The query reading the oldest `limit` changes of `table` as `seq, k0, ...`,
/// or None when the table has no capture.
pub fn read_sql(
    c: &Connection,
    scope: &CaptureScope,
    table: &TableName,
    key_width: usize,
    limit: usize,
) -> rusqlite::Result<Option<String>> {
    Ok(table_id(c, scope, table)?.map(|id| {
        format!(
            "SELECT seq, {} FROM {LOG} WHERE tbl = {id} ORDER BY seq LIMIT {limit}",
            key_columns(key_width).join(", ")
        )
    }))
}

/// Removes replayed changes and moves the sentinel up to the largest of them.
pub fn ack(c: &mut Connection, seqs: &[i64]) -> rusqlite::Result<()> {
    let Some(&largest) = seqs.iter().max() else { return Ok(()) };
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for chunk in seqs.chunks(500) {
        let list: Vec<String> = chunk.iter().map(|s| s.to_string()).collect();
        tx.execute(&format!("DELETE FROM {LOG} WHERE seq IN ({}) AND tbl <> {SENTINEL}", list.join(", ")), [])?;
    }
    tx.execute(&format!("UPDATE {LOG} SET seq = ?1 WHERE tbl = {SENTINEL} AND seq < ?1"), [largest])?;
    tx.commit()
}

/// How far replay is behind on `table`, or None when it has no capture.
pub fn lag(c: &Connection, scope: &CaptureScope, table: &TableName) -> rusqlite::Result<Option<CaptureLag>> {
    let Some(id) = table_id(c, scope, table)? else { return Ok(None) };
    c.query_row(
        &format!("SELECT count(*), (julianday('now') - julianday(min(at))) * 86400.0 FROM {LOG} WHERE tbl = ?1"),
        [id],
        |r| Ok(Some(CaptureLag { pending: r.get::<_, i64>(0)? as u64, oldest_seconds: r.get(1)? })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::Value;

    const L: CaptureScope = CaptureScope::LEGACY;

    fn changes(c: &Connection, table: &str, width: usize) -> Vec<(i64, Vec<Value>)> {
        let sql = read_sql(c, &CaptureScope::legacy(), &TableName::parse(table), width, 100).unwrap().unwrap();
        let rows = crate::query_rows(c, &sql, Vec::new()).unwrap();
        rows.into_iter().map(|mut r| (r.remove(0).to_string().parse().unwrap(), r)).collect()
    }

    fn ferry_objects(c: &Connection) -> Vec<String> {
        let mut stmt = c.prepare("SELECT name FROM sqlite_master WHERE name LIKE 'ferry%' ORDER BY name").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn tables_share_one_log_with_an_increasing_sequence() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE b (x TEXT, y INTEGER, v TEXT, PRIMARY KEY (x, y));",
        )
        .unwrap();
        let a = crate::introspect_sync(&c, &TableName::parse("a")).unwrap();
        let b = crate::introspect_sync(&c, &TableName::parse("b")).unwrap();
        install(&mut c, &L, &a, &["id".into()]).unwrap();
        install(&mut c, &L, &b, &["x".into(), "y".into()]).unwrap();
        install(&mut c, &L, &a, &["id".into()]).unwrap(); // twice is harmless
        c.execute_batch(
            "INSERT INTO a VALUES (1, 'one'), (2, 'two');
             INSERT INTO b VALUES ('k', 1, 'v');
             UPDATE a SET v = 'uno' WHERE id = 1;
             UPDATE a SET id = 3 WHERE id = 2;
             UPDATE b SET y = 2;
             DELETE FROM a WHERE id = 1;
             BEGIN; INSERT INTO a VALUES (9, 'rolled back'); ROLLBACK;",
        )
        .unwrap();
        let int = |i| vec![Value::Int(i)];
        // The key update logs its old and its new key (in either order).
        let mut keys_a: Vec<Vec<Value>> = changes(&c, "a", 1).into_iter().map(|(_, k)| k).collect();
        keys_a[3..5].sort_by_key(|k| k[0].to_string());
        assert_eq!(keys_a, [int(1), int(2), int(1), int(2), int(3), int(1)]);
        let mut keys_b: Vec<Vec<Value>> = changes(&c, "b", 2).into_iter().map(|(_, k)| k).collect();
        keys_b[1..3].sort_by_key(|k| k[1].to_string());
        let text = |s: &str| Value::Text(s.into());
        assert_eq!(
            keys_b,
            [vec![text("k"), Value::Int(1)], vec![text("k"), Value::Int(1)], vec![text("k"), Value::Int(2)]]
        );
        assert_eq!(lag(&c, &L, &TableName::parse("a")).unwrap().unwrap().pending, 6);

        // Replaying everything empties the log; later changes still number above it.
        let all: Vec<i64> = ["a", "b"].iter().flat_map(|t| changes(&c, t, 1)).map(|(s, _)| s).collect();
        let largest = *all.iter().max().unwrap();
        ack(&mut c, &all).unwrap();
        assert_eq!(lag(&c, &L, &TableName::parse("b")).unwrap().unwrap().pending, 0);
        c.execute_batch("INSERT INTO a VALUES (5, 'five')").unwrap();
        let after = changes(&c, "a", 1);
        assert_eq!(after.len(), 1);
        assert!(after[0].0 > largest, "sequence {} reused (largest acknowledged {largest})", after[0].0);

        remove(&mut c, &L, &TableName::parse("a")).unwrap();
        assert!(read_sql(&c, &L, &TableName::parse("a"), 1, 10).unwrap().is_none());
        assert!(ferry_objects(&c).contains(&LOG.to_string()), "the log stays while b is captured");
        c.execute_batch("INSERT INTO a VALUES (6, 'not captured')").unwrap();
        remove(&mut c, &L, &TableName::parse("b")).unwrap();
        remove(&mut c, &L, &TableName::parse("b")).unwrap(); // twice is harmless
        assert_eq!(ferry_objects(&c), Vec::<String>::new());
    }

    #[test]
    fn a_per_table_log_of_an_earlier_version_is_recognised() {
        let c = Connection::open_in_memory().unwrap();
        let table = TableName::parse("a");
        let legacy = change_log_table(&L, &table).name;
        c.execute_batch(&format!(
            "CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE TABLE {legacy} (seq INTEGER PRIMARY KEY)"
        ))
        .unwrap();
        assert!(read_sql(&c, &L, &table, 1, 10).unwrap().is_none());
        assert!(has_legacy_log(&c, &table).unwrap());
        assert!(!has_legacy_log(&c, &TableName::parse("b")).unwrap());
    }

    #[test]
    fn two_scopes_capturing_one_table_keep_their_own_changes() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)").unwrap();
        let a = crate::introspect_sync(&c, &TableName::parse("a")).unwrap();
        let (one, two) = (CaptureScope::parse("one_0001").unwrap(), CaptureScope::parse("two_0002").unwrap());
        install(&mut c, &one, &a, &["id".into()]).unwrap();
        install(&mut c, &two, &a, &["id".into()]).unwrap();
        c.execute_batch("INSERT INTO a VALUES (1, 'x'), (2, 'y')").unwrap();
        let read = |c: &Connection, scope: &CaptureScope| {
            let sql = read_sql(c, scope, &TableName::parse("a"), 1, 100).unwrap().unwrap();
            crate::query_rows(c, &sql, Vec::new()).unwrap()
        };
        let seqs: Vec<i64> = read(&c, &one).iter().map(|r| r[0].to_string().parse().unwrap()).collect();
        assert_eq!(seqs.len(), 2);
        ack(&mut c, &seqs).unwrap();
        assert_eq!(read(&c, &one).len(), 0);
        assert_eq!(read(&c, &two).len(), 2, "the other migration's changes stay");
        remove(&mut c, &one, &TableName::parse("a")).unwrap();
        c.execute_batch("INSERT INTO a VALUES (3, 'z')").unwrap();
        assert_eq!(read(&c, &two).len(), 3, "removing one scope leaves the other's capture");
        assert!(read_sql(&c, &one, &TableName::parse("a"), 1, 10).unwrap().is_none());
        remove(&mut c, &two, &TableName::parse("a")).unwrap();
        assert_eq!(ferry_objects(&c), Vec::<String>::new());
    }
}
