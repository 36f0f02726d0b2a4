//! Change capture from the binary log (`[source] capture = "binlog"`).
//!
//! Triggers cost MySQL/MariaDB a log row per changed row inside the writing
//! statement: a 200,000-row UPDATE takes 3-5 times as long (docs/benchmarks.md).
//! With a row-based binary log the server already writes every changed row,
//! committed transactions only, in commit order. Ferry reads it the way a
//! replica does and moves the keys into the same change log the triggers
//! fill (`ferry_changes_*`), so replay, acknowledgement and lag stay as they are.
//!
//! Where to read from is kept on the source, in `ferry_binlog_position`,
//! written in the same transaction as the keys it covers: a crash loses
//! neither, and repeats nothing that was committed.

use crate::binlog_events::{unsigned_bits, Captured, Collector};
use crate::{map_err, MysqlEngine, Q};
use ferry_core::{TableName, TableSchema};
use ferry_engine::{change_log_table, CaptureScope, ChangeCapture, EngineError, ErrorKind, Result};
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Params, Value as MyValue};
use std::collections::HashMap;
use std::time::Duration;

/// Where the next read of the binary log starts (one row).
const POSITION_TABLE: &str = "ferry_binlog_position";

/// The table holding one migration's binlog reader position in a database.
pub fn position_table(scope: &CaptureScope) -> String {
    if scope.is_legacy() {
        POSITION_TABLE.to_string()
    } else {
        format!("{POSITION_TABLE}_{}", scope.as_str())
    }
}

/// Keys moved into the logs per transaction of the collector.
const FLUSH_KEYS: usize = 50_000;

/// The longest wait for the next event of a log known to hold more.
const STALL: Duration = Duration::from_secs(10);

/// Rows per INSERT into a change log.
const INSERT_ROWS: usize = 1_000;

pub use crate::binlog_events::Position;

/// The comment on a change log filled from the binary log.
#[derive(serde::Serialize, serde::Deserialize)]
struct LogComment {
    binlog: CapturedTable,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CapturedTable {
    /// The migration that captures it (empty: from before scopes).
    #[serde(default)]
    scope: String,
    database: String,
    table: String,
    key: Vec<String>,
    /// The database whose `ferry_binlog_position` this log is filled from
    /// (the source URL's): migrations of other databases keep theirs.
    position: String,
}

impl MysqlEngine {
    /// The database of a table name (the URL's when not qualified).
    fn database_of(&self, table: &TableName) -> String {
        table.schema.clone().unwrap_or_else(|| self.database.clone())
    }

    /// Binlog capture needs a row-based binary log with full row images.
    pub(crate) async fn check_binlog(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let settings: Option<(i64, String, String)> =
            conn.query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image").await.map_err(map_err)?;
        let (log_bin, format, image) = settings.unwrap_or((0, String::new(), String::new()));
        if log_bin == 1 && format == "ROW" && image == "FULL" {
            return Ok(());
        }
        let log_bin = if log_bin == 1 { "ON" } else { "OFF" };
        Err(EngineError::new(
            ErrorKind::Unsupported,
            format!(
                "the server has log_bin = {log_bin}, binlog_format = {format}, binlog_row_image = {image}; \
                 binlog capture needs ON, ROW and FULL"
            ),
        )
        .with_hint(
            "start the server with log_bin and binlog_format = ROW (binlog_row_image = FULL is the default), \
             or remove `capture` from [source] to capture with triggers",
        ))
    }

    pub(crate) async fn install_binlog(
        &self,
        table: &TableSchema,
        key: &[String],
        lock_timeout: Duration,
    ) -> Result<()> {
        let context = |e: EngineError| e.context(format_args!("installing binlog capture on {}", table.name));
        let mut conn = self.conn().await?;
        let typed = crate::log_key_columns(table, key);
        let comment = serde_json::to_string(&LogComment {
            binlog: CapturedTable {
                scope: self.capture_scope().as_str().to_string(),
                database: self.database_of(&table.name),
                table: table.name.name.clone(),
                key: key.to_vec(),
                position: self.database.clone(),
            },
        })
        .expect("comment serialises");
        let position = Q.table(&TableName { schema: None, name: position_table(&self.capture_scope()) });
        let statements = [
            format!("SET SESSION lock_wait_timeout = {}", lock_timeout.as_secs().max(1)),
            format!(
                "CREATE TABLE IF NOT EXISTS {position} (id tinyint NOT NULL PRIMARY KEY, file varchar(512) NOT NULL, \
                 pos bigint unsigned NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (seq bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, op char(1) NOT NULL, \
                 at datetime(6) NOT NULL, {typed}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT = '{}'",
                Q.table(&change_log_table(&self.capture_scope(), &table.name)),
                comment.replace('\'', "''")
            ),
        ];
        for sql in statements {
            conn.query_drop(sql).await.map_err(|e| context(map_err(e)))?;
        }
        // Reading starts where the log ends now, before the backfill reads
        // anything. A table added later finds a position already there: its
        // writes since are after it.
        let known: Option<u8> =
            conn.query_first(format!("SELECT 1 FROM {position} WHERE id = 1")).await.map_err(map_err)?;
        if known.is_none() {
            let (file, pos) = self.log_end(&mut conn).await.map_err(context)?;
            conn.exec_drop(format!("INSERT IGNORE INTO {position} (id, file, pos) VALUES (1, ?, ?)"), (file, pos))
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Where the binary log ends now.
    async fn log_end(&self, conn: &mut Conn) -> Result<Position> {
        let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await.map_err(|e| {
            map_err(e).with_hint("binlog capture needs the BINLOG MONITOR (REPLICATION CLIENT) privilege")
        })?;
        let row = row.ok_or_else(|| EngineError::new(ErrorKind::Unsupported, "the server writes no binary log"))?;
        let file: String = row.get(0).unwrap_or_default();
        let pos: u64 = row.get(1).unwrap_or_default();
        Ok((file, pos))
    }

    /// The reader's stored position, if this database is captured from the binary log.
    async fn stored_position(&self, conn: &mut Conn) -> Result<Option<Position>> {
        let has_position: Option<u8> = conn
            .exec_first(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&self.database, position_table(&self.capture_scope())),
            )
            .await
            .map_err(map_err)?;
        if has_position.is_none() {
            return Ok(None); // triggers, or no capture at all
        }
        conn.query_first(format!(
            "SELECT file, pos FROM {} WHERE id = 1",
            Q.ident(&position_table(&self.capture_scope()))
        ))
        .await
        .map_err(map_err)
    }

    /// Bytes of binary log from the reader's position to the log's end; an
    /// error when the file at the position was purged (its changes are lost).
    pub(crate) async fn binlog_behind(&self) -> Result<Option<u64>> {
        let mut conn = self.conn().await?;
        let Some(position) = self.stored_position(&mut conn).await? else { return Ok(None) };
        Ok(Some(self.bytes_after(&mut conn, &position).await?))
    }

    async fn bytes_after(&self, conn: &mut Conn, (file, pos): &Position) -> Result<u64> {
        let logs: Vec<(String, u64)> = conn
            .query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
                (row.get::<String, _>(0).unwrap_or_default(), row.get::<u64, _>(1).unwrap_or_default())
            })
            .await
            .map_err(|e| {
                map_err(e).with_hint("binlog capture needs the BINLOG MONITOR (REPLICATION CLIENT) privilege")
            })?;
        if !logs.iter().any(|(name, _)| name == file) {
            let oldest = logs.first().map(|(name, _)| name.as_str()).unwrap_or("none");
            return Err(EngineError::new(
                ErrorKind::Unsupported,
                format!(
                    "the binary log {file} that Ferry reads next (from position {pos}) was purged (the oldest kept is \
                     {oldest}): the changes in it are lost to capture"
                ),
            )
            .with_hint(
                "run `ferry rollback` and `ferry run` again to copy afresh, and keep binary logs longer than Ferry \
                 may be stopped (binlog_expire_logs_seconds, expire_logs_days)",
            ));
        }
        Ok(logs
            .iter()
            .filter(|(name, _)| name >= file)
            .map(|(name, size)| if name == file { size.saturating_sub(*pos) } else { *size })
            .sum())
    }

    /// Drops the position with the last table captured from the binary log.
    pub(crate) async fn remove_binlog(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        if self.binlog_logs(&mut conn).await?.is_empty() {
            conn.query_drop(format!("DROP TABLE IF EXISTS {}", Q.ident(&position_table(&self.capture_scope()))))
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Moves the keys of the transactions committed since the stored position
    /// (up to where the log ends now) into the change logs, with the new position.
    pub(crate) async fn collect_binlog(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let Some(start) = self.stored_position(&mut conn).await? else { return Ok(()) };
        let context = |e: EngineError| e.context("reading the binary log");
        let captured = self.captured_tables(&mut conn).await?;
        let end = self.log_end(&mut conn).await?;
        if start >= end {
            return Ok(());
        }
        // A purged file would make the stream start elsewhere or fail obscurely.
        self.bytes_after(&mut conn, &start).await.map_err(context)?;
        let request_file = start.0.clone();
        let request =
            BinlogStreamRequest::new(reader_server_id()).with_filename(request_file.as_bytes()).with_pos(start.1);
        let stream_conn = Conn::new(self.opts.clone()).await.map_err(map_err)?;
        let mut stream = stream_conn.get_binlog_stream(request).await.map_err(|e| {
            context(map_err(e)).with_hint(
                "the binary log Ferry needs may have been purged (binlog_expire_logs_seconds): run `ferry rollback` \
                 and `ferry run` again, and keep the logs longer than Ferry may be stopped",
            )
        })?;
        // The first (artificial) rotate event is parsed before the format
        // description, so its name keeps the 4 checksum bytes.
        let checksums: Option<String> = conn.query_first("SELECT @@binlog_checksum").await.map_err(map_err)?;
        let checksums = checksums.is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
        let mut collector = Collector::new(captured, start.clone(), checksums);
        // Read up to where the log ended when this collection began: later
        // writes wait for the next one (and for the tables captured by then).
        while collector.position < end {
            // The stream decodes events with mysql_common, which panics on some malformed ones.
            let next = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(stream.next()));
            let event = match tokio::time::timeout(STALL, next).await {
                Ok(Err(_)) => {
                    return Err(context(
                        crate::binlog_events::decoding(|| panic!("in the binary log stream")).unwrap_err(),
                    ))
                }
                Ok(Ok(Some(event))) => event.map_err(|e| context(map_err(e)))?,
                Ok(Ok(None)) => break,
                Err(_) => {
                    return Err(context(EngineError::new(
                        ErrorKind::Transient,
                        format!("the binary log stream sent nothing for {STALL:?} before {}:{}", end.0, end.1),
                    )))
                }
            };
            let resumable = collector.event(&event, |id| stream.get_tme(id)).map_err(context)?;
            if resumable && collector.committed_keys >= FLUSH_KEYS {
                self.flush(&mut conn, &mut collector).await.map_err(context)?;
            }
        }
        drop(stream);
        if collector.position != start {
            self.flush(&mut conn, &mut collector).await.map_err(context)?;
        }
        Ok(())
    }

    /// Captured tables by `database.table`, from the comments on their logs.
    /// This database's change logs filled from the binary log: (schema, log, what it captures).
    async fn binlog_logs(&self, conn: &mut Conn) -> Result<Vec<(String, String, CapturedTable)>> {
        let scope = self.capture_scope();
        let logs: Vec<(String, String, String)> = conn
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES \
                 WHERE TABLE_NAME LIKE 'ferry\\_changes\\_%' AND TABLE_COMMENT LIKE '{\"binlog\"%'",
            )
            .await
            .map_err(map_err)?;
        Ok(logs
            .into_iter()
            .filter_map(|(schema, name, comment)| {
                let t = serde_json::from_str::<LogComment>(&comment).ok()?.binlog;
                // Another database's or another migration's log keeps a position of its own.
                (t.position == self.database && t.scope == scope.as_str()).then_some((schema, name, t))
            })
            .collect())
    }

    async fn captured_tables(&self, conn: &mut Conn) -> Result<HashMap<String, Captured>> {
        let mut out = HashMap::new();
        for (schema, name, t) in self.binlog_logs(conn).await? {
            let columns: Vec<(String, u64, String, String)> = conn
                .exec(
                    "SELECT COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, DATA_TYPE FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    (&t.database, &t.table),
                )
                .await
                .map_err(map_err)?;
            let key = t
                .key
                .iter()
                .map(|k| {
                    columns
                        .iter()
                        .find(|c| &c.0 == k)
                        .map(|c| (c.1 as usize - 1, unsigned_bits(&c.2, &c.3)))
                        .ok_or_else(|| {
                            EngineError::new(
                                ErrorKind::NotFound,
                                format!("{}.{}: key column {k} is gone", t.database, t.table),
                            )
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let log = format!("{}.{}", Q.ident(&schema), Q.ident(&name));
            out.insert(format!("{}.{}", t.database, t.table), Captured { log, columns: key });
        }
        Ok(out)
    }

    /// Writes the committed keys and the position they reach, in one transaction.
    async fn flush(&self, conn: &mut Conn, collector: &mut Collector) -> Result<()> {
        let mut tx = conn.start_transaction(Default::default()).await.map_err(map_err)?;
        let position = collector.position.clone();
        for (name, keys) in collector.take_committed() {
            let Some(table) = collector.captured.get(&name) else { continue };
            // Keys in runs between truncations (an empty key), in their order.
            for run in keys.split_inclusive(|(key, _)| key.is_empty()) {
                let (rows, truncation) = match run.split_last() {
                    Some(((key, at), rows)) if key.is_empty() => (rows, Some(*at)),
                    _ => (run, None),
                };
                self.insert_keys(&mut tx, table, rows).await?;
                if let Some(at) = truncation {
                    tx.exec_drop(
                        format!("INSERT INTO {} (op, at) VALUES ('T', FROM_UNIXTIME(?))", table.log),
                        (at as u64,),
                    )
                    .await
                    .map_err(map_err)?;
                }
            }
        }
        tx.exec_drop(
            format!("UPDATE {} SET file = ?, pos = ? WHERE id = 1", Q.ident(&position_table(&self.capture_scope()))),
            (&position.0, position.1),
        )
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn insert_keys(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        table: &Captured,
        keys: &[(Vec<MyValue>, u32)],
    ) -> Result<()> {
        let width = table.columns.len();
        let ks: Vec<String> = (0..width).map(|i| format!("k{i}")).collect();
        for chunk in keys.chunks(INSERT_ROWS) {
            let row = format!("('U', FROM_UNIXTIME(?), {})", vec!["?"; width].join(", "));
            let sql = format!(
                "INSERT INTO {} (op, at, {}) VALUES {}",
                table.log,
                ks.join(", "),
                vec![row.as_str(); chunk.len()].join(", ")
            );
            let mut params = Vec::with_capacity(chunk.len() * (width + 1));
            for (key, at) in chunk {
                params.push(MyValue::UInt(*at as u64));
                params.extend(key.iter().cloned());
            }
            tx.exec_drop(sql, Params::Positional(params)).await.map_err(map_err)?;
        }
        Ok(())
    }
}

/// The server id the reader registers with: in a range of its own ("FE"),
/// varied so that two readers do not evict each other.
fn reader_server_id() -> u32 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    0x4645_0000 | ((nanos ^ std::process::id()) & 0xffff)
}
