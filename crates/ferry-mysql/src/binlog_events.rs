//! The binary log's events, turned into the keys of committed changes: a
//! collector that sees one event at a time, with no connection of its own,
//! so that what it makes of any bytes can be tested and fuzzed
//! ([`keys_in_binlog_bytes`]).

use ferry_engine::{EngineError, ErrorKind};
use mysql_async::binlog::events::{Event, EventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value as MyValue;
use std::collections::HashMap;

/// A binary log position: file name, then offset; file names sort in order.
pub type Position = (String, u64);

/// MariaDB's GTID event (it opens every transaction) and its flag for a
/// statement that is a transaction of its own.
const MARIADB_GTID_EVENT: u8 = 162;
const MARIADB_GTID_STANDALONE: u8 = 1;

/// Keys of one table, each with the time of its event.
type Keys = Vec<(Vec<MyValue>, u32)>;

/// A captured table as the collector needs it.
pub(crate) struct Captured {
    pub log: String,
    /// Per key column: its position in a row image, and its integer width when unsigned.
    pub columns: Vec<(usize, Option<u32>)>,
}

/// An unsigned integer column read back from a row image as signed (the
/// image does not say which): the width to bring it back into range.
pub(crate) fn unsigned_bits(column_type: &str, data_type: &str) -> Option<u32> {
    if !column_type.contains("unsigned") {
        return None;
    }
    match data_type {
        "tinyint" => Some(8),
        "smallint" => Some(16),
        "mediumint" => Some(24),
        "int" | "integer" => Some(32),
        "bigint" => Some(64),
        _ => None,
    }
}

fn key_value(value: Option<&BinlogValue<'_>>, unsigned: Option<u32>) -> std::result::Result<MyValue, String> {
    match value {
        Some(BinlogValue::Value(MyValue::Int(i))) if *i < 0 && unsigned.is_some() => {
            let bits = unsigned.unwrap_or(64);
            let wrapped = if bits == 64 { *i as u64 } else { (*i as u64) & ((1u64 << bits) - 1) };
            Ok(MyValue::UInt(wrapped))
        }
        Some(BinlogValue::Value(v)) => Ok(v.clone()),
        Some(_) => Err("a JSON key column".into()),
        None => Err("a key column missing from the row image".into()),
    }
}

/// What the events read so far hold: keys of committed transactions by
/// table, keys of the one still open, and the last position a reading may
/// resume from (between transactions only).
pub(crate) struct Collector {
    /// Captured tables by `database.table`.
    pub captured: HashMap<String, Captured>,
    /// The binary log holds checksums: the first (artificial) rotate event,
    /// parsed before the format description, keeps them in its file name.
    checksums: bool,
    file: String,
    pub position: Position,
    in_transaction: bool,
    open: HashMap<String, Keys>,
    committed: HashMap<String, Keys>,
    /// Keys in `committed`.
    pub committed_keys: usize,
}

impl Collector {
    pub fn new(captured: HashMap<String, Captured>, start: Position, checksums: bool) -> Collector {
        Collector {
            captured,
            checksums,
            file: start.0.clone(),
            position: start,
            in_transaction: false,
            open: HashMap::new(),
            committed: HashMap::new(),
            committed_keys: 0,
        }
    }

    /// The committed keys by table, taken out (to be written with `position`).
    pub fn take_committed(&mut self) -> HashMap<String, Keys> {
        self.committed_keys = 0;
        std::mem::take(&mut self.committed)
    }

    /// Takes in one event; `table_map` finds the map of a rows event's table.
    /// Returns whether `position` now is one to resume from.
    pub fn event<'t>(
        &mut self,
        event: &Event,
        table_map: impl Fn(u64) -> Option<&'t TableMapEvent<'static>>,
    ) -> Result<bool, EngineError> {
        let header = event.header();
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            // Starts a transaction that ends with an XID or COMMIT, unless
            // it is a standalone statement (DDL), which has neither.
            let flags = event.data().get(12).copied().unwrap_or(0);
            self.in_transaction = flags & MARIADB_GTID_STANDALONE == 0;
        }
        // Only the events collection reads are parsed: parsing the others
        // costs time, and mysql_common 0.37 aborts the process on some
        // malformed ones (a GTID list declaring billions of entries).
        let data = if collected(header.event_type_raw()) {
            decoding(|| event.read_data())?
                .map_err(|e| EngineError::new(ErrorKind::Other, format!("unreadable binlog event: {e}")))?
        } else {
            None
        };
        match data {
            Some(EventData::RotateEvent(r)) => {
                let mut name = r.name_raw().to_vec();
                if header.log_pos() == 0 && self.checksums && name.len() > 4 {
                    name.truncate(name.len() - 4);
                }
                self.file = String::from_utf8_lossy(&name).into_owned();
                if header.log_pos() != 0 || r.position() > 4 {
                    // A real rotation: the next file, from its start.
                    self.position = (self.file.clone(), r.position());
                }
                return Ok(false);
            }
            Some(EventData::RowsEvent(rows)) => {
                self.in_transaction = true;
                if let Some(tme) = table_map(rows.table_id()) {
                    self.rows(&rows, tme, header.timestamp(), event.data().len())?;
                }
            }
            Some(EventData::XidEvent(_)) => self.commit(),
            Some(EventData::QueryEvent(q)) => match q.query().trim() {
                "BEGIN" => self.in_transaction = true,
                "COMMIT" => self.commit(),
                query => {
                    // TRUNCATE is a statement of its own: a barrier in the log
                    // (no key), replayed by emptying the target table.
                    let truncated = truncated_table(query, &q.schema()).filter(|n| self.captured.contains_key(n));
                    if let Some(name) = truncated {
                        self.committed.entry(name).or_default().push((Vec::new(), header.timestamp()));
                        self.committed_keys += 1;
                    }
                }
            },
            _ => {}
        }
        // Only between transactions is a position safe to resume from.
        let resumable = !self.in_transaction && header.log_pos() != 0;
        if resumable {
            self.position = (self.file.clone(), header.log_pos() as u64);
        }
        Ok(resumable)
    }

    /// The keys of a rows event's images (before and after; a key once when both have it).
    fn rows(
        &mut self,
        rows: &mysql_async::binlog::events::RowsEventData<'_>,
        tme: &TableMapEvent<'_>,
        at: u32,
        size: usize,
    ) -> Result<(), EngineError> {
        let name = format!("{}.{}", tme.database_name(), tme.table_name());
        let Some(table) = self.captured.get(&name) else { return Ok(()) };
        let keys = self.open.entry(name.clone()).or_default();
        // Up to the first error (after one, the iterator may never end), and
        // no more rows than the event has bytes: a damaged event whose rows
        // have no image, or no columns, would be read for ever (found by fuzzing).
        let most = size + 1;
        let images = decoding(|| rows.rows(tme).take(most).collect::<Result<Vec<_>, _>>())?
            .map_err(|e| EngineError::new(ErrorKind::Other, format!("unreadable row event: {e}")))?;
        if images.len() == most || images.iter().any(|(before, after)| before.is_none() && after.is_none()) {
            return Err(EngineError::new(ErrorKind::Other, "unreadable row event: rows without an image"));
        }
        for (before, after) in images {
            let mut seen: Option<Vec<MyValue>> = None;
            for image in [before, after].into_iter().flatten() {
                let key = key_of(&image, table)
                    .map_err(|e| EngineError::new(ErrorKind::Unsupported, format!("{name}: {e}")))?;
                if seen.as_ref() != Some(&key) {
                    keys.push((key.clone(), at));
                    seen = Some(key);
                }
            }
        }
        Ok(())
    }

    fn commit(&mut self) {
        self.in_transaction = false;
        for (name, keys) in self.open.drain() {
            self.committed_keys += keys.len();
            self.committed.entry(name).or_default().extend(keys);
        }
    }
}

/// Reads `data` as a binary log file's events (after its 4-byte magic
/// number) with every table captured, keyed by its first column (and its
/// third, read as unsigned, where it has one): the keys committed, or the
/// error an event makes. For tests and fuzzing: what the collector makes of
/// any bytes is an error or keys, never a panic.
/// Whether the collector reads events of this type: rotations, statements
/// (BEGIN, COMMIT, TRUNCATE), commits and row changes.
fn collected(event_type: u8) -> bool {
    use mysql_async::binlog::EventType as T;
    [
        T::QUERY_EVENT,
        T::ROTATE_EVENT,
        T::XID_EVENT,
        T::WRITE_ROWS_EVENT_V1,
        T::UPDATE_ROWS_EVENT_V1,
        T::DELETE_ROWS_EVENT_V1,
        T::WRITE_ROWS_EVENT,
        T::UPDATE_ROWS_EVENT,
        T::DELETE_ROWS_EVENT,
        T::PARTIAL_UPDATE_ROWS_EVENT,
    ]
    .iter()
    .any(|t| *t as u8 == event_type)
}

/// Runs the binary log decoder of mysql_common, which panics on some
/// malformed events (found by fuzzing: metadata shorter than its column type
/// needs, an event shorter than its header says): a panic there is an error
/// naming the event, not the end of Ferry.
pub(crate) fn decoding<T>(decode: impl FnOnce() -> T) -> Result<T, EngineError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        EngineError::new(ErrorKind::Other, format!("the binary log holds an event the decoder cannot read ({what})"))
            .with_hint("the server wrote a binary log Ferry cannot decode: report it with the server's version")
    })
}

/// The size an event's header declares, checked against the bytes there:
/// mysql_common 0.37 panics on an event shorter than its header says
/// (found by fuzzing; the live stream hands it whole packets).
fn check_event_size(input: &[u8]) -> Result<(), String> {
    const HEADER: usize = 19;
    let declared = input.get(9..13).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    match declared {
        Some(size) if size >= HEADER && size <= input.len() => Ok(()),
        Some(size) => Err(format!("an event of {size} bytes where {} remain", input.len())),
        None => Err(format!("an event header cut after {} bytes", input.len())),
    }
}

#[doc(hidden)]
pub fn keys_in_binlog_bytes(data: &[u8]) -> Result<usize, String> {
    use mysql_async::binlog::events::FormatDescriptionEvent;
    use mysql_async::binlog::{BinlogVersion, EventType};
    // What a replica's stream reader keeps: the format description and the table maps.
    let mut format = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let mut maps: HashMap<u64, TableMapEvent<'static>> = HashMap::new();
    let mut collector = Collector::new(HashMap::new(), ("fuzz.000001".into(), 4), false);
    let mut input = data;
    let mut keys = 0;
    while !input.is_empty() {
        check_event_size(input)?;
        let event =
            decoding(|| Event::read(&format, &mut input)).map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        let kind = event.header().event_type_raw();
        let wanted = [EventType::FORMAT_DESCRIPTION_EVENT as u8, EventType::TABLE_MAP_EVENT as u8].contains(&kind);
        let data =
            if wanted { decoding(|| event.read_data()).map_err(|e| e.to_string())?.ok().flatten() } else { None };
        match data {
            Some(EventData::FormatDescriptionEvent(f)) => format = f.into_owned().with_footer(event.footer()),
            Some(EventData::TableMapEvent(tme)) => {
                let columns = if tme.columns_count() > 2 { vec![(0, None), (2, Some(32))] } else { vec![(0, None)] };
                let name = format!("{}.{}", tme.database_name(), tme.table_name());
                collector.captured.entry(name).or_insert(Captured { log: String::new(), columns });
                maps.insert(tme.table_id(), tme.into_owned());
            }
            _ => {}
        }
        collector.event(&event, |id| maps.get(&id)).map_err(|e| e.to_string())?;
        keys += collector.take_committed().values().map(Vec::len).sum::<usize>();
    }
    Ok(keys)
}

/// The table a `TRUNCATE [TABLE] name` statement empties, as `database.table`
/// (`schema`: the statement's current database).
fn truncated_table(query: &str, schema: &str) -> Option<String> {
    let words = query.trim_start();
    let rest = words.get(..8).filter(|w| w.eq_ignore_ascii_case("truncate")).map(|_| words[8..].trim_start())?;
    let rest = match rest.get(..5) {
        Some(w) if w.eq_ignore_ascii_case("table") && rest[5..].starts_with(char::is_whitespace) => {
            rest[5..].trim_start()
        }
        _ => rest,
    };
    let mut parts = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'`') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '`' {
                    if chars.peek() == Some(&'`') {
                        chars.next();
                        part.push('`');
                        continue;
                    }
                    break;
                }
                part.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_alphanumeric() || c == '_' || c == '$' {
                    part.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        if chars.peek() == Some(&'.') {
            chars.next();
        } else {
            break;
        }
    }
    match parts.as_slice() {
        [table] => Some(format!("{schema}.{table}")),
        [database, table] => Some(format!("{database}.{table}")),
        _ => None,
    }
}

fn key_of(image: &BinlogRow, table: &Captured) -> std::result::Result<Vec<MyValue>, String> {
    table.columns.iter().map(|&(i, unsigned)| key_value(image.as_ref(i), unsigned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::binlog::value::BinlogValue;

    /// A binary log MariaDB 10.11 wrote (after its magic number): an insert of
    /// three rows, a transaction updating two (one key changed) and deleting
    /// one, a TRUNCATE, and a row of a table keyed by two columns; once
    /// without checksums and once with CRC32.
    const FIXTURES: [&[u8]; 2] = [
        include_bytes!("../tests/fixtures/rows-no-checksum.binlog"),
        include_bytes!("../tests/fixtures/rows-crc32.binlog"),
    ];

    #[test]
    fn a_real_binary_log_gives_the_keys_of_its_committed_rows() {
        for log in FIXTURES {
            // 3 inserted; (1,1) and (1,7), (2,max) and (10,max) updated; 1 deleted; the truncation; 1 pair.
            assert_eq!(keys_in_binlog_bytes(log), Ok(10));
        }
    }

    /// Found by fuzzing: a GTID list event declaring billions of entries made
    /// mysql_common ask for exabytes (an abort, not a panic); the collector
    /// no longer parses events it does not read.
    #[test]
    fn events_the_collector_does_not_read_are_not_parsed() {
        let log = include_bytes!("../tests/fixtures/fuzz-previous-gtids-huge.binlog");
        let _ = keys_in_binlog_bytes(log);
    }

    #[test]
    fn a_cut_or_damaged_binary_log_is_an_error_never_a_panic() {
        // A panic is caught and made an error only inside the dependency's decoder.
        static PANICKED_IN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        std::panic::set_hook(Box::new(|info| {
            let file = info.location().map(|l| l.file().to_string()).unwrap_or_default();
            PANICKED_IN.lock().unwrap().push(file);
        }));
        for log in FIXTURES {
            for end in 0..log.len() {
                let _ = keys_in_binlog_bytes(&log[..end]);
            }
            let mut rng = fastrand::Rng::with_seed(7);
            for _ in 0..2_000 {
                let mut damaged = log.to_vec();
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..damaged.len());
                    damaged[at] = rng.u8(..);
                }
                let _ = keys_in_binlog_bytes(&damaged);
            }
        }
        let _ = std::panic::take_hook();
        let outside: Vec<String> =
            PANICKED_IN.lock().unwrap().iter().filter(|f| !f.contains("mysql_common")).cloned().collect();
        assert!(outside.is_empty(), "panics outside the decoder: {outside:?}");
    }

    #[test]
    fn truncate_statements_name_their_table() {
        assert_eq!(truncated_table("TRUNCATE items", "shop").as_deref(), Some("shop.items"));
        assert_eq!(truncated_table("truncate table `other`.`my``t`", "shop").as_deref(), Some("other.my`t"));
        assert_eq!(truncated_table("  TRUNCATE TABLE tablets", "s").as_deref(), Some("s.tablets"));
        assert_eq!(truncated_table("TRUNCATE TABLE table_x", "s").as_deref(), Some("s.table_x"));
        assert_eq!(truncated_table("INSERT INTO t VALUES (1)", "s"), None);
        assert_eq!(truncated_table("TRUNCATE", "s"), None);
    }

    #[test]
    fn unsigned_keys_come_back_into_range() {
        let int = |i: i64| BinlogValue::Value(MyValue::Int(i));
        assert_eq!(key_value(Some(&int(-56)), Some(8)), Ok(MyValue::UInt(200)));
        assert_eq!(key_value(Some(&int(-1)), Some(32)), Ok(MyValue::UInt(u32::MAX as u64)));
        assert_eq!(key_value(Some(&int(-1)), Some(64)), Ok(MyValue::UInt(u64::MAX)));
        assert_eq!(key_value(Some(&int(-1)), None), Ok(MyValue::Int(-1)));
        assert_eq!(key_value(Some(&int(7)), Some(8)), Ok(MyValue::Int(7)));
        assert!(key_value(None, None).is_err());
        assert_eq!(unsigned_bits("int(10) unsigned", "int"), Some(32));
        assert_eq!(unsigned_bits("bigint(20)", "bigint"), None);
    }
}
