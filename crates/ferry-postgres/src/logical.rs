//! Change capture by logical decoding (`[source] capture = "logical"`).
//!
//! Triggers log keys inside the application's transaction, and that costs
//! its writes 20-40% on PostgreSQL (docs/benchmarks.md). Logical decoding
//! reads the same keys from the WAL after commit instead: a publication
//! names the captured tables, a replication slot (`pgoutput`) keeps the WAL
//! from the moment capture was installed, and the application's transactions
//! do no extra work.
//!
//! The decoded keys are moved into the very change logs the triggers write
//! (`ferry_changes_*`), so replay, acknowledgement and lag are the same for
//! both methods. The move is crash-safe: the slot is only peeked, the keys
//! are committed to the logs, and only then is the slot advanced past them.
//! A crash in between decodes them again, and replaying a key twice is harmless.

use crate::{log_key_columns, map_err, PostgresEngine, Q};
use ferry_core::{TableName, TableSchema};
use ferry_engine::{change_log_table, CaptureScope, ChangeCapture, EngineError, ErrorKind, Result};
use futures_util::{pin_mut, TryStreamExt};
use std::collections::HashMap;
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// The prefix of the publication naming one migration's captured tables of
/// a database, and of its replication slot.
const PUBLICATION: &str = "ferry_capture";

/// The publication of one migration's captured tables in a database.
pub fn publication(scope: &CaptureScope) -> String {
    let name = scope.qualify(&format!("{PUBLICATION}_"), "");
    name.trim_end_matches('_').to_string()
}

/// Changes asked of the slot per peek. `pgoutput` ends a peek at a
/// transaction boundary, so one large transaction can exceed it.
pub const PEEK_CHANGES: i32 = 50_000;

/// Tries of a pump that finds the slot busy, 250 ms apart.
const SLOT_BUSY_ATTEMPTS: u32 = 40;

/// Keys per change-log entry the decoder writes.
const ENTRY_KEYS: usize = 10_000;

/// The replication slot of one migration in one database. Slots are
/// cluster-wide, so the database name is part of it; names allow only `[a-z0-9_]`.
pub fn slot_name(scope: &CaptureScope, database: &str) -> String {
    let clean: String =
        database.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let prefix = format!("{PUBLICATION}_");
    let base = if clean == database {
        scope.qualify(&prefix, &clean)
    } else {
        // Two databases differing only in case or punctuation get different slots.
        scope.qualify(&prefix, &format!("{clean}_{:08x}", xxhash(database) as u32))
    };
    ferry_core::schema::bounded_name(&base, 63)
}

fn xxhash(s: &str) -> u64 {
    // FNV-1a, like lock keys: stable everywhere.
    ferry_engine::lock_key(s)
}

/// One column value of a decoded row, as `pgoutput` sends it (text format).
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Null,
    /// A TOASTed value the UPDATE did not change: not sent.
    Unchanged,
    Text(String),
}

/// The `pgoutput` messages capture uses (protocol version 1).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `commit_time`: microseconds since 2000-01-01 UTC.
    Begin {
        commit_time: i64,
    },
    /// `end_lsn`: where the slot may be advanced to once this transaction is logged.
    Commit {
        end_lsn: u64,
    },
    Relation {
        id: u32,
        table: TableName,
        columns: Vec<String>,
    },
    Insert {
        relation: u32,
        new: Vec<Field>,
    },
    Update {
        relation: u32,
        old: Option<Vec<Field>>,
        new: Vec<Field>,
    },
    Delete {
        relation: u32,
        old: Vec<Field>,
    },
    Truncate {
        relations: Vec<u32>,
    },
    /// Type, origin and logical messages: nothing to capture.
    Other,
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.data.len() < n {
            return Err(format!("message ends {} bytes early", n - self.data.len()));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn string(&mut self) -> Result<String, String> {
        let end = self.data.iter().position(|&b| b == 0).ok_or("unterminated string")?;
        let s = String::from_utf8_lossy(&self.data[..end]).into_owned();
        self.data = &self.data[end + 1..];
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Field>, String> {
        let n = self.u16()?;
        (0..n)
            .map(|_| match self.u8()? {
                b'n' => Ok(Field::Null),
                b'u' => Ok(Field::Unchanged),
                b't' => {
                    let len = self.u32()? as usize;
                    Ok(Field::Text(String::from_utf8_lossy(self.take(len)?).into_owned()))
                }
                other => Err(format!("unknown column kind {:?}", other as char)),
            })
            .collect()
    }
}

/// Parses one `pgoutput` message.
pub fn parse(data: &[u8]) -> Result<Message, String> {
    let mut r = Reader { data };
    Ok(match r.u8()? {
        b'B' => {
            let _final_lsn = r.u64()?;
            let commit_time = r.u64()? as i64;
            Message::Begin { commit_time }
        }
        b'C' => {
            let _flags = r.u8()?;
            let _commit_lsn = r.u64()?;
            Message::Commit { end_lsn: r.u64()? }
        }
        b'R' => {
            let id = r.u32()?;
            let schema = r.string()?;
            let name = r.string()?;
            let _identity = r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let _flags = r.u8()?;
                columns.push(r.string()?);
                let _type = r.u32()?;
                let _modifier = r.u32()?;
            }
            Message::Relation { id, table: TableName { schema: Some(schema), name }, columns }
        }
        b'I' => {
            let relation = r.u32()?;
            expect(&mut r, b'N')?;
            Message::Insert { relation, new: r.tuple()? }
        }
        b'U' => {
            let relation = r.u32()?;
            let (old, new) = match r.u8()? {
                b'K' | b'O' => {
                    let old = r.tuple()?;
                    expect(&mut r, b'N')?;
                    (Some(old), r.tuple()?)
                }
                b'N' => (None, r.tuple()?),
                other => return Err(format!("unexpected tuple tag {:?} in an update", other as char)),
            };
            Message::Update { relation, old, new }
        }
        b'D' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'K' | b'O' => Message::Delete { relation, old: r.tuple()? },
                other => return Err(format!("unexpected tuple tag {:?} in a delete", other as char)),
            }
        }
        b'T' => {
            let n = r.u32()?;
            let _options = r.u8()?;
            Message::Truncate { relations: (0..n).map(|_| r.u32()).collect::<Result<_, _>>()? }
        }
        _ => Message::Other,
    })
}

fn expect(r: &mut Reader, tag: u8) -> Result<(), String> {
    match r.u8()? {
        t if t == tag => Ok(()),
        other => Err(format!("expected tuple tag {:?}, found {:?}", tag as char, other as char)),
    }
}

/// A change-log entry to write: the op (`U` for rows, `T` for a TRUNCATE),
/// the commit time of its first change, and its keys, one text value (or
/// NULL) per key column.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub op: char,
    pub commit_time: i64,
    pub keys: Vec<Vec<Option<String>>>,
}

/// Turns decoded messages into change-log entries per captured table.
pub struct Decoder {
    /// Captured tables (schema always given) and the names of their capture
    /// key columns, in log order.
    keys: HashMap<TableName, Vec<String>>,
    /// Relation id -> table and positions of its key columns in a tuple.
    relations: HashMap<u32, (TableName, Vec<usize>)>,
    commit_time: i64,
    pub entries: HashMap<TableName, Vec<Entry>>,
    /// Where the slot may be advanced once the entries are logged.
    pub end_lsn: Option<u64>,
    pub messages: usize,
}

impl Decoder {
    pub fn new(keys: HashMap<TableName, Vec<String>>) -> Decoder {
        Decoder { keys, relations: HashMap::new(), commit_time: 0, entries: HashMap::new(), end_lsn: None, messages: 0 }
    }

    pub fn feed(&mut self, message: Message) -> Result<(), String> {
        self.messages += 1;
        match message {
            Message::Begin { commit_time } => self.commit_time = commit_time,
            Message::Commit { end_lsn } => self.end_lsn = Some(end_lsn),
            Message::Relation { id, table, columns } => {
                if let Some(key) = self.keys.get(&table) {
                    let positions = key
                        .iter()
                        .map(|k| {
                            columns.iter().position(|c| c == k).ok_or_else(|| {
                                format!("{table}: the capture key column {k} is not among the decoded columns")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    self.relations.insert(id, (table, positions));
                }
            }
            Message::Insert { relation, new } => self.row(relation, None, Some(&new))?,
            Message::Update { relation, old, new } => self.row(relation, old.as_deref(), Some(&new))?,
            Message::Delete { relation, old } => self.row(relation, Some(&old), None)?,
            Message::Truncate { relations } => {
                for relation in relations {
                    if let Some((table, _)) = self.relations.get(&relation) {
                        let commit_time = self.commit_time;
                        self.entries.entry(table.clone()).or_default().push(Entry {
                            op: 'T',
                            commit_time,
                            keys: Vec::new(),
                        });
                    }
                }
            }
            Message::Other => {}
        }
        Ok(())
    }

    /// Logs the old key (when sent: the key changed, or a delete) and the new one.
    fn row(&mut self, relation: u32, old: Option<&[Field]>, new: Option<&[Field]>) -> Result<(), String> {
        let Some((table, positions)) = self.relations.get(&relation) else {
            return Ok(()); // a published table Ferry does not capture
        };
        let key_of = |tuple: &[Field]| -> Result<Vec<Option<String>>, String> {
            positions
                .iter()
                .map(|&i| match tuple.get(i) {
                    Some(Field::Text(s)) => Ok(Some(s.clone())),
                    Some(Field::Null) => Ok(None),
                    _ => Err(format!(
                        "{table}: a key value of an updated row was not in the WAL (a large value stored out of line); \
                         use capture = \"triggers\" for this table"
                    )),
                })
                .collect()
        };
        let mut keys = Vec::with_capacity(2);
        if let Some(old) = old {
            keys.push(key_of(old)?);
        }
        if let Some(new) = new {
            let key = key_of(new)?;
            if keys.first() != Some(&key) {
                keys.push(key);
            }
        }
        let commit_time = self.commit_time;
        let entries = self.entries.entry(table.clone()).or_default();
        match entries.last_mut() {
            Some(e) if e.op == 'U' && e.keys.len() < ENTRY_KEYS => e.keys.extend(keys),
            _ => entries.push(Entry { op: 'U', commit_time, keys }),
        }
        Ok(())
    }
}

/// What the engine knows of this database's slot.
#[derive(Debug, Clone)]
pub struct SlotState {
    /// The capture scope the name was made for.
    pub scope: CaptureScope,
    pub name: String,
    pub exists: bool,
}

/// A change log filled by decoding, as its comment describes it.
struct LogicalLog {
    log: String,
    key_types: Vec<String>,
}

/// The comment on a change log filled by logical decoding.
#[derive(serde::Serialize, serde::Deserialize)]
struct LogComment {
    logical: CapturedTable,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CapturedTable {
    /// The migration that captures it (empty: from before scopes).
    #[serde(default)]
    scope: String,
    schema: String,
    table: String,
    key: Vec<String>,
}

fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn as u32)
}

impl PostgresEngine {
    /// This migration's slot in this database: its name, and whether it
    /// exists (cached once known, for the scope it was asked in).
    pub(crate) async fn slot(&self) -> Result<SlotState> {
        let scope = self.capture_scope();
        let mut cached = self.slot.lock().await;
        if let Some(state) = cached.as_ref().filter(|s| s.scope == scope) {
            return Ok(state.clone());
        }
        let client = self.client.lock().await;
        let database: String = client.query_one("SELECT current_database()::text", &[]).await.map_err(map_err)?.get(0);
        let name = slot_name(&scope, &database);
        let exists = client
            .query_opt("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", &[&name])
            .await
            .map_err(map_err)?
            .is_some();
        let state = SlotState { scope, name, exists };
        *cached = Some(state.clone());
        Ok(state)
    }

    /// Logical decoding needs `wal_level = logical`, which only a restart applies.
    pub(crate) async fn check_wal_level(&self) -> Result<()> {
        let client = self.client.lock().await;
        let wal_level: String = client.query_one("SHOW wal_level", &[]).await.map_err(map_err)?.get(0);
        if wal_level == "logical" {
            return Ok(());
        }
        Err(EngineError::new(
            ErrorKind::Unsupported,
            format!("the server's wal_level is `{wal_level}`; logical decoding needs `logical`"),
        )
        .with_hint(
            "set wal_level = logical in postgresql.conf and restart PostgreSQL, \
             or remove `capture = \"logical\"` from [source] to capture with triggers",
        ))
    }

    pub(crate) async fn install_logical(
        &self,
        table: &TableSchema,
        key: &[String],
        lock_timeout: Duration,
    ) -> Result<()> {
        let t = Q.table(&table.name);
        let context = |e: EngineError| e.context(format_args!("installing logical capture on {}", table.name));
        let (schema, identity) = {
            let client = self.client.lock().await;
            // The key must be what the WAL carries for old rows: the replica
            // identity (the primary key by default), or every column (FULL).
            let row = client
                .query_one(
                    "SELECT n.nspname::text, c.relreplident::text,
                            ARRAY(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a
                                    ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                                  WHERE i.indrelid = c.oid
                                    AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident)))
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::text::regclass",
                    &[&t],
                )
                .await
                .map_err(|e| context(map_err(e)))?;
            let schema: String = row.get(0);
            let identity: String = row.get(1);
            let columns: Vec<String> = row.get(2);
            (schema, if identity == "f" { None } else { Some(columns) })
        };
        if let Some(columns) = identity {
            let mut wanted: Vec<&String> = key.iter().collect();
            let mut have: Vec<&String> = columns.iter().collect();
            wanted.sort();
            have.sort();
            if wanted != have {
                let have = if columns.is_empty() { "nothing".to_string() } else { columns.join(", ") };
                return Err(context(
                    EngineError::new(
                        ErrorKind::Unsupported,
                        format!(
                            "the capture key ({}) is not the table's replica identity ({have}): the WAL would not carry the keys of updated and deleted rows",
                            key.join(", ")
                        ),
                    )
                    .with_hint(format!(
                        "key the table by its primary key in the spec, run `ALTER TABLE {t} REPLICA IDENTITY FULL`, or capture with triggers"
                    )),
                ));
            }
        }
        let scope = self.capture_scope();
        let publication = publication(&scope);
        let log = Q.table(&change_log_table(&scope, &table.name));
        let typed = log_key_columns(table, key);
        let comment = serde_json::to_string(&LogComment {
            logical: CapturedTable {
                scope: scope.as_str().to_string(),
                schema,
                table: table.name.name.clone(),
                key: key.to_vec(),
            },
        })
        .expect("comment serialises");
        let membership = {
            let client = self.client.lock().await;
            let published = client
                .query_opt(
                    "SELECT EXISTS (SELECT 1 FROM pg_publication_rel r WHERE r.prpubid = p.oid AND r.prrelid = $1::text::regclass)
                     FROM pg_publication p WHERE p.pubname = $2",
                    &[&t, &publication],
                )
                .await
                .map_err(map_err)?;
            match published.map(|r| r.get::<_, bool>(0)) {
                None => format!("CREATE PUBLICATION {publication} FOR TABLE {t};"),
                Some(false) => format!("ALTER PUBLICATION {publication} ADD TABLE {t};"),
                Some(true) => String::new(),
            }
        };
        let sql = format!(
            "SET LOCAL lock_timeout = '{ms}ms';
             CREATE TABLE IF NOT EXISTS {log} (seq bigserial PRIMARY KEY, op char(1) NOT NULL,
                 at timestamptz NOT NULL DEFAULT clock_timestamp(), {typed});
             COMMENT ON TABLE {log} IS '{comment}';
             {membership}",
            ms = lock_timeout.as_millis(),
            comment = comment.replace('\'', "''"),
        );
        self.in_transaction(&sql).await.map_err(context)?;
        let slot = self.slot().await?;
        if !slot.exists {
            // The slot's consistent point waits for the transactions open now
            // to end: bounded, like a lock, and retried by the caller.
            let client = self.client.lock().await;
            client
                .batch_execute(&format!("SET statement_timeout = '{}ms'", lock_timeout.as_millis() * 5))
                .await
                .map_err(map_err)?;
            let created = client
                .execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&slot.name])
                .await
                .map_err(|e| {
                    let e = map_err(e).context(format_args!(
                        "creating the replication slot {} (it waits for open transactions to end)",
                        slot.name
                    ));
                    if e.kind() == ErrorKind::Permission {
                        e.with_hint("give the user the REPLICATION attribute (ALTER ROLE ... REPLICATION), or capture with triggers")
                    } else {
                        e
                    }
                });
            let reset = client.batch_execute("RESET statement_timeout").await.map_err(map_err);
            drop(client); // slot() takes the slot lock before the client's
            created.map_err(context)?;
            reset?;
            *self.slot.lock().await = Some(SlotState { exists: true, ..slot });
        }
        Ok(())
    }

    /// Removes `table` from the publication; with the last table, drops the
    /// slot and the publication too, so no WAL is kept for Ferry any longer.
    pub(crate) async fn remove_logical(&self, table: &TableName, lock_timeout: Duration) -> Result<()> {
        let publication = publication(&self.capture_scope());
        let t = Q.table(table);
        let members: Vec<bool> = {
            let client = self.client.lock().await;
            client
                .query(
                    "SELECT r.prrelid = to_regclass($1) FROM pg_publication p JOIN pg_publication_rel r ON r.prpubid = p.oid
                     WHERE p.pubname = $2",
                    &[&t, &publication],
                )
                .await
                .map_err(map_err)?
                .iter()
                .map(|r| r.get::<_, Option<bool>>(0).unwrap_or(false))
                .collect()
        };
        if members.contains(&true) {
            self.in_transaction(&format!(
                "SET LOCAL lock_timeout = '{}ms'; ALTER PUBLICATION {publication} DROP TABLE {t};",
                lock_timeout.as_millis()
            ))
            .await?;
        }
        if members.iter().filter(|&&m| !m).count() > 0 {
            return Ok(()); // other tables are still captured
        }
        let slot = self.slot().await?;
        let client = self.client.lock().await;
        client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot.name],
            )
            .await
            .map_err(|e| map_err(e).context(format_args!("dropping the replication slot {}", slot.name)))?;
        client.batch_execute(&format!("DROP PUBLICATION IF EXISTS {publication}")).await.map_err(map_err)?;
        drop(client);
        *self.slot.lock().await = Some(SlotState { exists: false, ..slot });
        Ok(())
    }

    /// Moves what the slot decoded since the last pump into the change logs,
    /// then advances the slot past it. Does nothing without a slot. A slot
    /// still held by the backend of a runner that was killed is waited for
    /// (a few seconds): the pump is idempotent, so it simply runs again.
    pub(crate) async fn pump(&self) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.pump_once().await {
                Err(e) if e.kind() == ErrorKind::Transient && attempt < SLOT_BUSY_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => return other,
            }
        }
    }

    async fn pump_once(&self) -> Result<()> {
        let slot = self.slot().await?;
        if !slot.exists {
            return Ok(());
        }
        let scope = slot.scope.clone();
        let _pumping = self.pumping.lock().await;
        let mut client = self.client.lock().await;
        let context =
            |e: EngineError| e.context(format_args!("decoding changes from the replication slot {}", slot.name));
        let mut logs: HashMap<TableName, LogicalLog> = HashMap::new();
        let mut keys: HashMap<TableName, Vec<String>> = HashMap::new();
        let rows = client
            .query(
                "SELECT n.nspname::text, c.relname::text, obj_description(c.oid, 'pg_class'),
                        ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                              WHERE a.attrelid = c.oid AND a.attname ~ '^k[0-9]+$' ORDER BY a.attnum)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'r' AND c.relname LIKE 'ferry\\_changes\\_%'
                   AND obj_description(c.oid, 'pg_class') LIKE '{\"logical\"%'",
                &[],
            )
            .await
            .map_err(map_err)?;
        for row in rows {
            let Ok(comment) = serde_json::from_str::<LogComment>(row.get::<_, &str>(2)) else { continue };
            if comment.logical.scope != scope.as_str() {
                continue; // another migration's log, filled by its own slot
            }
            let source = TableName { schema: Some(comment.logical.schema), name: comment.logical.table };
            let log = format!("{}.{}", Q.ident(row.get::<_, &str>(0)), Q.ident(row.get::<_, &str>(1)));
            keys.insert(source.clone(), comment.logical.key);
            logs.insert(source, LogicalLog { log, key_types: row.get(3) });
        }
        let mut decoder = Decoder::new(keys);
        let stream = client
            .query_raw(
                "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, 'proto_version', '1', 'publication_names', $3)",
                [&slot.name as &(dyn ToSql + Sync), &PEEK_CHANGES, &publication(&scope)],
            )
            .await
            .map_err(|e| context(map_err(e)))?;
        pin_mut!(stream);
        while let Some(row) = stream.try_next().await.map_err(|e| context(map_err(e)))? {
            let message = parse(row.get::<_, &[u8]>(0)).map_err(|e| {
                context(EngineError::new(ErrorKind::Other, format!("unreadable pgoutput message: {e}")))
            })?;
            decoder.feed(message).map_err(|e| context(EngineError::new(ErrorKind::Unsupported, e)))?;
        }
        self.slot_behind.store(decoder.messages >= PEEK_CHANGES as usize, std::sync::atomic::Ordering::Relaxed);
        let Some(end_lsn) = decoder.end_lsn else { return Ok(()) };
        let tx = client.transaction().await.map_err(map_err)?;
        for (table, entries) in &decoder.entries {
            let Some(log) = logs.get(table) else { continue };
            let casts: Vec<String> =
                log.key_types.iter().enumerate().map(|(i, t)| format!("${}::text[]::{t}", i + 3)).collect();
            let ks: Vec<String> = (0..log.key_types.len()).map(|i| format!("k{i}")).collect();
            let insert = tx
                .prepare(&format!(
                    "INSERT INTO {} (op, at, {}) VALUES ($1, timestamptz '2000-01-01 00:00:00+00' + $2::int8 * interval '1 microsecond', {})",
                    log.log,
                    ks.join(", "),
                    casts.join(", ")
                ))
                .await
                .map_err(map_err)?;
            for entry in entries {
                let columns: Vec<Vec<Option<String>>> = (0..log.key_types.len())
                    .map(|i| entry.keys.iter().map(|k| k.get(i).cloned().flatten()).collect())
                    .collect();
                let op = entry.op.to_string();
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&op, &entry.commit_time];
                params.extend(columns.iter().map(|c| c as &(dyn ToSql + Sync)));
                tx.execute(&insert, &params).await.map_err(|e| context(map_err(e)))?;
            }
        }
        tx.commit().await.map_err(map_err)?;
        client
            .execute("SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)", &[&slot.name, &lsn_text(end_lsn)])
            .await
            .map_err(|e| context(map_err(e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(fields: &[Option<&str>]) -> Vec<u8> {
        let mut out = (fields.len() as u16).to_be_bytes().to_vec();
        for f in fields {
            match f {
                None => out.push(b'n'),
                Some(s) => {
                    out.push(b't');
                    out.extend((s.len() as u32).to_be_bytes());
                    out.extend(s.as_bytes());
                }
            }
        }
        out
    }

    fn relation(id: u32, name: &str, columns: &[&str]) -> Vec<u8> {
        let mut out = vec![b'R'];
        out.extend(id.to_be_bytes());
        out.extend(b"public\0");
        out.extend(name.as_bytes());
        out.extend([0, b'd']);
        out.extend((columns.len() as u16).to_be_bytes());
        for c in columns {
            out.push(1);
            out.extend(c.as_bytes());
            out.push(0);
            out.extend(23u32.to_be_bytes());
            out.extend((-1i32).to_be_bytes());
        }
        out
    }

    fn decoder() -> Decoder {
        let mut keys = HashMap::new();
        keys.insert(TableName::parse("public.items"), vec!["region".to_string(), "id".to_string()]);
        Decoder::new(keys)
    }

    #[test]
    fn parses_messages_and_collects_keys_in_key_order() {
        let mut d = decoder();
        let mut begin = vec![b'B'];
        begin.extend(7u64.to_be_bytes());
        begin.extend(1_000_000i64.to_be_bytes());
        begin.extend(42u32.to_be_bytes());
        d.feed(parse(&begin).unwrap()).unwrap();
        d.feed(parse(&relation(9, "items", &["id", "name", "region"])).unwrap()).unwrap();
        let mut insert = vec![b'I'];
        insert.extend(9u32.to_be_bytes());
        insert.push(b'N');
        insert.extend(tuple(&[Some("1"), Some("a"), Some("eu")]));
        d.feed(parse(&insert).unwrap()).unwrap();
        // A key update sends the old key ('K': other columns NULL) and the new row.
        let mut update = vec![b'U'];
        update.extend(9u32.to_be_bytes());
        update.push(b'K');
        update.extend(tuple(&[Some("1"), None, Some("eu")]));
        update.push(b'N');
        update.extend(tuple(&[Some("2"), Some("a"), Some("eu")]));
        d.feed(parse(&update).unwrap()).unwrap();
        let mut delete = vec![b'D'];
        delete.extend(9u32.to_be_bytes());
        delete.push(b'K');
        delete.extend(tuple(&[Some("2"), None, Some("eu")]));
        d.feed(parse(&delete).unwrap()).unwrap();
        let mut commit = vec![b'C', 0];
        commit.extend(7u64.to_be_bytes());
        commit.extend(99u64.to_be_bytes());
        commit.extend(1_000_000i64.to_be_bytes());
        d.feed(parse(&commit).unwrap()).unwrap();

        assert_eq!(d.end_lsn, Some(99));
        let key = |r: &str, i: &str| vec![Some(r.to_string()), Some(i.to_string())];
        assert_eq!(
            d.entries[&TableName::parse("public.items")],
            vec![Entry {
                op: 'U',
                commit_time: 1_000_000,
                keys: vec![key("eu", "1"), key("eu", "1"), key("eu", "2"), key("eu", "2")]
            }]
        );
    }

    #[test]
    fn a_truncate_is_an_entry_of_its_own_between_rows() {
        let mut d = decoder();
        d.feed(parse(&relation(9, "items", &["id", "region"])).unwrap()).unwrap();
        d.feed(parse(&relation(10, "other", &["id"])).unwrap()).unwrap();
        let insert = |id: &str| {
            let mut m = vec![b'I'];
            m.extend(9u32.to_be_bytes());
            m.push(b'N');
            m.extend(tuple(&[Some(id), Some("eu")]));
            parse(&m).unwrap()
        };
        d.feed(insert("1")).unwrap();
        let mut truncate = vec![b'T'];
        truncate.extend(2u32.to_be_bytes());
        truncate.push(0);
        truncate.extend(9u32.to_be_bytes());
        truncate.extend(10u32.to_be_bytes());
        d.feed(parse(&truncate).unwrap()).unwrap();
        d.feed(insert("2")).unwrap();
        let ops: Vec<(char, usize)> =
            d.entries[&TableName::parse("public.items")].iter().map(|e| (e.op, e.keys.len())).collect();
        assert_eq!(ops, vec![('U', 1), ('T', 0), ('U', 1)]);
        assert!(
            !d.entries.contains_key(&TableName::parse("public.other")),
            "tables Ferry does not capture are skipped"
        );
    }

    #[test]
    fn an_unsent_key_is_an_error_and_truncated_input_too() {
        let mut d = decoder();
        d.feed(parse(&relation(9, "items", &["id", "region"])).unwrap()).unwrap();
        let mut update = vec![b'U'];
        update.extend(9u32.to_be_bytes());
        update.push(b'N');
        update.extend([0, 2, b'u', b'n']);
        let err = d.feed(parse(&update).unwrap()).unwrap_err();
        assert!(err.contains("triggers"), "{err}");
        assert!(parse(&[b'I', 0, 0]).unwrap_err().contains("early"));
    }

    #[test]
    fn slot_names_are_valid_and_distinct() {
        let legacy = CaptureScope::legacy();
        assert_eq!(slot_name(&legacy, "app"), "ferry_capture_app");
        assert_eq!(publication(&legacy), "ferry_capture");
        let scope = CaptureScope::parse("orders_1a2b").unwrap();
        assert_eq!(slot_name(&scope, "app"), "ferry_capture_orders_1a2b_app");
        assert_eq!(publication(&scope), "ferry_capture_orders_1a2b");
        let a = slot_name(&legacy, "App-1");
        let b = slot_name(&legacy, "app_1");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{a}");
        assert!(slot_name(&scope, &"x".repeat(100)).len() <= 63);
    }
}
