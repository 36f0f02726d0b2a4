//! `ferry.toml`, the migration spec.
//!
//! Parsing happens in two steps. Serde reads the file into [`raw`] types that
//! keep the position of every value that is checked later; [`Spec::parse`]
//! then interpolates `${ENV}` and validates, so that every error, whether a
//! TOML syntax error, an unknown key or a bad URL, names the file, the line
//! and the key, and says how to fix it.

use crate::types::DataType;
use crate::EngineKind;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod changes;
mod cutover;
pub use cutover::{
    fill_placeholders, placeholders, Advance, CutoverPolicy, PrometheusQuery, ShadowQuery, Trigger, TriggerMetric,
};

pub const DEFAULT_BATCH_SIZE: usize = 5000;
pub const DEFAULT_SAMPLE_SIZE: usize = 1000;
/// Where a spec's state store was kept before each spec had its own; still used when it is there.
pub const LEGACY_STATE_URL: &str = "sqlite:.ferry/state.db";

/// A spec's own state store, unless `[state] url` says otherwise:
/// `.ferry/<spec file stem>/state.db`, so that two specs in one folder never share one.
pub fn default_state_url(spec_path: &Path) -> String {
    let stem = spec_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "ferry".into());
    format!("sqlite:.ferry/{stem}/state.db")
}

/// The schema that keeps a spec's state in a shared PostgreSQL state store:
/// `ferry_<spec file stem>`, in lower case with anything but letters, digits
/// and `_` made `_`, so that every machine running the same spec file meets
/// in one schema and two specs never share one.
pub fn state_schema(spec_path: &Path) -> String {
    let stem = spec_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "ferry".into());
    let name: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    // PostgreSQL keeps 63 bytes of a name.
    format!("ferry_{name}").chars().take(63).collect()
}

/// A validated migration spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Where the spec was read from; relative SQLite paths are resolved against its directory.
    pub path: PathBuf,
    pub migration: MigrationInfo,
    pub source_url: String,
    pub target_url: String,
    /// How the source's writes are captured (`[source] capture`).
    pub capture: CaptureMethod,
    pub tables: Vec<TableSpec>,
    pub policy: Policy,
    pub state_url: String,
    /// Custom assertions that verification runs (`[[check]]`).
    pub checks: Vec<CheckSpec>,
    /// `[switch]`: the gates of `ferry switch` and its hook.
    pub switch: SwitchPolicy,
    /// `[cutover]`: the read ramp; absent, `ferry switch` may follow verification directly.
    pub cutover: Option<CutoverPolicy>,
    /// `[soak]`: how long writes stay on the target before contract, and what a trigger does.
    pub soak: SoakPolicy,
    /// `[contract]`: what becomes of the source tables.
    pub contract: ContractPolicy,
}

/// `[soak]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakPolicy {
    /// From the switch; `ferry contract` waits for it to elapse.
    pub duration: Duration,
    pub on_trigger: OnTrigger,
    /// How often `ferry sync --follow` compares the rows written on the target since the last look.
    pub check_every: Duration,
}

impl Default for SoakPolicy {
    fn default() -> Self {
        SoakPolicy {
            duration: Duration::from_secs(24 * 3600),
            on_trigger: OnTrigger::Alert,
            check_every: Duration::from_secs(60),
        }
    }
}

/// What a rollback trigger does during the soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTrigger {
    /// Record it (`rollback-triggered` in the audit log, `ferry status`) and go on.
    Alert,
    /// Record it and roll back at once.
    Rollback,
}

/// `[contract]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractPolicy {
    pub source: ArchiveSource,
}

impl Default for ContractPolicy {
    fn default() -> Self {
        ContractPolicy { source: ArchiveSource::Rename }
    }
}

/// What contract does with the source tables once writes have moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveSource {
    /// Renamed to `<table>_ferry_archive_<YYYYMMDD>`: readable, out of the way.
    Rename,
    Drop,
    Keep,
}

/// `[switch]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchPolicy {
    /// The last passing verification must be at most this old.
    pub max_verify_age: Duration,
    /// Capture lag (the oldest change not yet replayed) must be below this.
    pub max_lag: Duration,
    /// An executable run once writes are recorded as switched (and again,
    /// the other way, by a rollback after the switch), with `FERRY_MIGRATION`,
    /// `FERRY_PHASE` and `FERRY_WRITES_TO` in its environment.
    pub hook: Option<String>,
}

impl Default for SwitchPolicy {
    fn default() -> Self {
        SwitchPolicy { max_verify_age: Duration::from_secs(3600), max_lag: Duration::from_secs(1), hook: None }
    }
}

/// How change capture records the source's writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    /// Triggers log each statement's keys inside the writing transaction. Every engine.
    #[default]
    Triggers,
    /// PostgreSQL logical decoding: a replication slot reads the keys from the
    /// WAL after commit, so the writing transaction does no extra work.
    /// Needs `wal_level = logical`.
    Logical,
    /// MySQL/MariaDB binary log: keys read from row events after commit.
    /// Needs `log_bin`, `binlog_format = ROW` and `binlog_row_image = FULL`.
    Binlog,
}

impl CaptureMethod {
    /// The engine whose server log this method reads (None: every engine).
    pub fn engine_name(&self) -> Option<&'static str> {
        match self {
            CaptureMethod::Triggers => None,
            CaptureMethod::Logical => Some("PostgreSQL"),
            CaptureMethod::Binlog => Some("MySQL/MariaDB"),
        }
    }
}

impl std::fmt::Display for CaptureMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaptureMethod::Triggers => "triggers",
            CaptureMethod::Logical => "logical",
            CaptureMethod::Binlog => "binlog",
        })
    }
}

/// Which database a custom check runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOn {
    Source,
    Target,
}

/// `[[check]] name = "...", sql = "...", expect = 0`: a query returning one
/// number, and the number it must return.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckSpec {
    pub name: String,
    /// SQL in the dialect of the database it runs on; its first column of its first row is compared.
    pub sql: String,
    pub expect: i64,
    pub on: CheckOn,
    pub line: usize,
}

/// `[migration]`: the answers the method needs before anything runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrationInfo {
    pub name: Option<String>,
    pub owner: Option<String>,
    /// Accepted downtime: zero for a zero-downtime migration.
    pub downtime: Option<Duration>,
    pub rollback: Option<RollbackRequirement>,
    /// When it is scheduled, as written.
    pub when: Option<String>,
    /// `ferry switch` refuses without a passing `ferry rehearse` of this spec.
    pub require_rehearsal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackRequirement {
    /// Rolling back must never lose a write, at any phase before contract.
    Lossless,
    /// After writes switch to the target, a rollback may lose writes made since.
    LossAcceptedAfterSwitch,
}

impl RollbackRequirement {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackRequirement::Lossless => "lossless",
            RollbackRequirement::LossAcceptedAfterSwitch => "loss-accepted-after-switch",
        }
    }
}

/// Something the spec must answer before `ferry run` may start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenQuestion {
    /// The spec key that answers it, e.g. `migration.downtime`.
    pub key: &'static str,
    pub question: &'static str,
    /// A line to paste under `[migration]`.
    pub example: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub from: String,
    /// Defaults to `from` without its schema.
    pub to: String,
    /// Source column names; empty means "the source's primary key".
    pub key: Vec<String>,
    pub filter: Option<String>,
    /// Source columns not to copy.
    pub exclude: Vec<String>,
    /// Target column -> where its value comes from, in file order.
    pub columns: Vec<(String, ColumnSource)>,
    /// `[table.translate]`: the target's SQL for schema items Ferry cannot
    /// (or should not) translate by itself, by the item's key (a check,
    /// index or foreign key name, or `column.default`, `column.on_update`,
    /// `column.generated`, `column.collation`, `column.identity`,
    /// `column.zone`); `""` leaves the item out knowingly.
    pub translate: BTreeMap<String, String>,
    /// `existing_rows = "merge"`: rows an existing target table already holds
    /// may stay (those whose key the source has are overwritten).
    pub merge_existing_rows: bool,
    /// In place: how a retyped column's values convert, by column.
    pub conversions: BTreeMap<String, Conversion>,
    /// In place: indexes expand builds without blocking writes.
    pub added_indexes: Vec<IndexChange>,
    /// In place: checks and foreign keys the change adds.
    pub added_constraints: Vec<ConstraintChange>,
    /// In place: old columns written back from new ones (split and merge).
    pub downs: Vec<DownChange>,
    /// 1-based line of the `[[table]]` entry, for messages.
    pub line: usize,
}

/// An index a change in place adds (`[[change]] add_index`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexChange {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
}

/// An old column a change in place writes back from new ones while both
/// versions run: a split column from its parts, each merged column from the
/// whole. `sql` is over the row in its new shape.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DownChange {
    pub column: String,
    pub sql: String,
    /// The new columns whose write sets it.
    pub written_by: Vec<String>,
}

/// A constraint a change in place adds (`[[change]] add_check`, `add_foreign_key`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConstraintChange {
    Check { name: String, sql: String },
    ForeignKey { name: String, columns: Vec<String>, references: String, referenced_columns: Vec<String> },
}

impl ConstraintChange {
    pub fn name(&self) -> &str {
        match self {
            ConstraintChange::Check { name, .. } | ConstraintChange::ForeignKey { name, .. } => name,
        }
    }
}

/// How a column changed in place converts: `up` computes the new value from
/// the old row (the column's name is its old value), `down` the old value
/// from the new row (the column's name is its new value). `None`: the
/// engine's own conversion of the column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversion {
    pub up: Option<String>,
    pub down: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnSource {
    /// A source column, possibly with a different target type.
    Column { name: String, data_type: Option<DataType>, not_null: bool },
    /// A source-dialect SQL expression.
    Expr { sql: String, data_type: Option<DataType>, not_null: bool },
}

impl ColumnSource {
    pub fn data_type(&self) -> Option<&DataType> {
        match self {
            ColumnSource::Column { data_type, .. } | ColumnSource::Expr { data_type, .. } => data_type.as_ref(),
        }
    }

    /// The spec asks for NOT NULL on the target (`nullable = false`).
    pub fn not_null(&self) -> bool {
        match self {
            ColumnSource::Column { not_null, .. } | ColumnSource::Expr { not_null, .. } => *not_null,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConversionError {
    /// Record the row in quarantine and stop the run (the default).
    Stop,
    /// Record the row in quarantine and carry on; verification will report it.
    Quarantine,
}

/// What the throttle watches on the source (`[policy] throttle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleMode {
    /// Pace the batches by the load other sessions put on the source (the default).
    Load,
    /// Pause while a latency probe is slower than its threshold (chosen too by
    /// setting `latency_probe` or `max_probe_latency`).
    Latency,
    /// Neither: only replica lag and an operator's pause hold the work.
    Off,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub batch_size: usize,
    /// Sleep between batches, to leave room for production traffic.
    pub batch_pause: Duration,
    pub sample_size: usize,
    pub on_conversion_error: OnConversionError,
    /// Rollback trigger: apply or dual-write error rate, as a fraction.
    pub max_error_rate: f64,
    /// Rollback trigger: replay or replica lag.
    pub max_lag: Duration,
    /// Rollback trigger: p99 latency increase over the baseline, as a fraction.
    pub max_latency_increase: f64,
    /// Big bang is considered only below this many rows.
    pub big_bang_max_rows: u64,
    /// At or above this many rows a table is very large: snapshot and replay in batches.
    pub very_large_rows: u64,
    /// The time one batch should take; the batch size adapts to it. Zero keeps `batch_size` fixed.
    pub chunk_time: Duration,
    /// What the throttle watches besides replicas and operators.
    pub throttle: ThrottleMode,
    /// Source-dialect SQL timed before each batch; by default a keyed read of the first table.
    pub latency_probe: Option<String>,
    /// Pause while the probe takes longer than this. By default twice the
    /// probe's baseline (measured when the run starts), and at least 10 ms more.
    pub max_probe_latency: Option<Duration>,
    /// Source rows per verification chunk (each is checkpointed).
    pub verify_chunk_rows: usize,
    /// Warn when log-based capture keeps more WAL or binary log than this on the source.
    pub max_retained_bytes: u64,
    /// How long a command keeps reconnecting to a server that dropped it or restarts.
    pub reconnect_for: Duration,
    /// How long a statement runs before Ferry asks the server, on a
    /// connection of its own, whether it still answers (zero: never asks).
    pub liveness_check: Duration,
    /// Concurrent copiers of a table's key range, each with its own
    /// connections. `None`: chosen by the run (see [`Policy::workers_for`]).
    pub workers: Option<usize>,
}

/// The most workers `[policy] workers` may ask for.
pub const MAX_WORKERS: usize = 64;
/// The most workers the run chooses by itself.
pub const AUTO_WORKERS_CAP: usize = 4;

impl Policy {
    /// The workers to copy with: as set, or one per core of this machine up
    /// to [`AUTO_WORKERS_CAP`]; always one into a target whose writers wait
    /// for each other (SQLite).
    pub fn workers_for(&self, target_takes_concurrent_writers: bool) -> usize {
        if !target_takes_concurrent_writers {
            return 1;
        }
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(AUTO_WORKERS_CAP))
    }
}

/// Batch sizes the adaptation keeps between.
pub const MIN_BATCH: usize = 100;
pub const MAX_BATCH: usize = 100_000;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            batch_size: DEFAULT_BATCH_SIZE,
            batch_pause: Duration::ZERO,
            sample_size: DEFAULT_SAMPLE_SIZE,
            on_conversion_error: OnConversionError::Stop,
            max_error_rate: 0.001,
            max_lag: Duration::from_secs(30),
            max_latency_increase: 0.10,
            big_bang_max_rows: 1_000_000,
            very_large_rows: 100_000_000,
            chunk_time: Duration::from_millis(500),
            throttle: ThrottleMode::Load,
            latency_probe: None,
            max_probe_latency: None,
            verify_chunk_rows: 50_000,
            max_retained_bytes: 10_000_000_000,
            reconnect_for: Duration::from_secs(300),
            liveness_check: Duration::from_secs(30),
            workers: None,
        }
    }
}

/// An error in the spec, with its place and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

mod raw {
    use serde::de::{self, Deserializer, MapAccess, Visitor};
    use serde::Deserialize;
    use std::collections::BTreeMap;
    use toml::Spanned;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        #[serde(default)]
        pub migration: Migration,
        pub source: Endpoint,
        /// Absent for a change in place (`[[change]]`): then the source's.
        pub target: Option<Endpoint>,
        #[serde(default, rename = "table")]
        pub tables: Vec<Spanned<Table>>,
        #[serde(default, rename = "change")]
        pub changes: Vec<Spanned<super::changes::RawChange>>,
        #[serde(default)]
        pub policy: Policy,
        #[serde(default)]
        pub state: Option<State>,
        #[serde(default, rename = "check")]
        pub checks: Vec<Spanned<Check>>,
        #[serde(default)]
        pub switch: Switch,
        #[serde(default)]
        pub soak: Soak,
        #[serde(default)]
        pub contract: Contract,
        #[serde(default)]
        pub cutover: Option<Spanned<super::cutover::RawCutover>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Soak {
        pub duration: Option<Spanned<String>>,
        pub on_trigger: Option<Spanned<String>>,
        pub check_every: Option<Spanned<String>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Contract {
        pub source: Option<Spanned<String>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Switch {
        pub max_verify_age: Option<Spanned<String>>,
        pub max_lag: Option<Spanned<String>>,
        pub hook: Option<Spanned<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Check {
        pub name: Spanned<String>,
        pub sql: Spanned<String>,
        #[serde(default)]
        pub expect: i64,
        pub on: Option<Spanned<String>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Migration {
        pub name: Option<Spanned<String>>,
        pub owner: Option<Spanned<String>>,
        pub downtime: Option<Spanned<String>>,
        pub rollback: Option<Spanned<String>>,
        pub when: Option<Spanned<String>>,
        pub require_rehearsal: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Endpoint {
        pub url: Spanned<String>,
        pub capture: Option<Spanned<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct State {
        pub url: Spanned<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Policy {
        pub batch_size: Option<Spanned<i64>>,
        pub batch_pause: Option<Spanned<String>>,
        pub sample_size: Option<Spanned<i64>>,
        pub on_conversion_error: Option<Spanned<String>>,
        pub max_error_rate: Option<Spanned<String>>,
        pub max_lag: Option<Spanned<String>>,
        pub max_latency_increase: Option<Spanned<String>>,
        pub big_bang_max_rows: Option<Spanned<i64>>,
        pub very_large_rows: Option<Spanned<i64>>,
        pub chunk_time: Option<Spanned<String>>,
        pub throttle: Option<Spanned<String>>,
        pub latency_probe: Option<Spanned<String>>,
        pub max_probe_latency: Option<Spanned<String>>,
        pub verify_chunk_rows: Option<Spanned<i64>>,
        pub max_retained: Option<Spanned<String>>,
        pub reconnect_for: Option<Spanned<String>>,
        pub liveness_check: Option<Spanned<String>>,
        pub workers: Option<Spanned<i64>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Table {
        pub from: Spanned<String>,
        pub to: Option<Spanned<String>>,
        pub key: Option<Spanned<OneOrMany>>,
        pub filter: Option<Spanned<String>>,
        #[serde(default)]
        pub exclude: Vec<Spanned<String>>,
        #[serde(default)]
        pub columns: BTreeMap<Spanned<String>, Spanned<ColumnValue>>,
        #[serde(default)]
        pub translate: BTreeMap<String, String>,
        pub existing_rows: Option<Spanned<String>>,
        /// In place (`[[change]] alter_type`): a retyped column's `up` and `down`, by column.
        #[serde(skip)]
        pub conversions: BTreeMap<String, UpDown>,
        /// In place (`[[change]] add_index`): indexes built without blocking writes.
        #[serde(skip)]
        pub added_indexes: Vec<super::IndexChange>,
        /// In place (`[[change]] add_check`, `add_foreign_key`).
        #[serde(skip)]
        pub added_constraints: Vec<super::ConstraintChange>,
        /// In place (`[[change]] split_column`, `merge_columns`): old columns written back from new ones.
        #[serde(skip)]
        pub downs: Vec<super::DownChange>,
    }

    /// A retyped column's `up` and `down` SQL, as written.
    pub type UpDown = (Option<Spanned<String>>, Option<Spanned<String>>);

    pub struct OneOrMany(pub Vec<String>);

    impl<'de> Deserialize<'de> for OneOrMany {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = OneOrMany;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a column name or a list of column names")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<OneOrMany, E> {
                    Ok(OneOrMany(vec![s.to_string()]))
                }
                fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                    let mut out = Vec::new();
                    while let Some(s) = seq.next_element::<String>()? {
                        out.push(s);
                    }
                    Ok(OneOrMany(out))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// `target = "source_column"` or `target = { from|expr = "...", type = "..." }`.
    pub enum ColumnValue {
        Name(String),
        Detailed(Detailed),
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Detailed {
        pub from: Option<String>,
        pub expr: Option<String>,
        #[serde(rename = "type")]
        pub data_type: Option<String>,
        pub nullable: Option<bool>,
    }

    impl<'de> Deserialize<'de> for ColumnValue {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ColumnValue;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a source column name, or a table { from = \"...\" | expr = \"...\", type = \"...\" }")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<ColumnValue, E> {
                    Ok(ColumnValue::Name(s.to_string()))
                }
                fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<ColumnValue, M::Error> {
                    Detailed::deserialize(de::value::MapAccessDeserializer::new(map)).map(ColumnValue::Detailed)
                }
            }
            d.deserialize_any(V)
        }
    }
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    /// A `${VAR}` that is not set stays as written instead of being an error.
    keep_unset: bool,
}

impl Ctx<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    fn error(&self, span: std::ops::Range<usize>, message: impl Into<String>, help: impl Into<String>) -> SpecError {
        let (line, column) = self.position(span.start);
        let help = help.into();
        SpecError {
            path: self.path.to_path_buf(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
            help: (!help.is_empty()).then_some(help),
        }
    }

    /// The duration `key` gives, or an error showing how one is written.
    fn duration(&self, v: &toml::Spanned<String>, key: &str, example: &str) -> Result<Duration, SpecError> {
        parse_duration(v.get_ref()).ok_or_else(|| {
            self.error(
                v.span(),
                format!("`{key}`: `{}` is not a duration", v.get_ref()),
                format!("write e.g. {example}"),
            )
        })
    }

    /// The whole number `key` gives, if it lies in `range`.
    fn count_in(
        &self,
        v: &toml::Spanned<i64>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        help: &str,
    ) -> Result<usize, SpecError> {
        if !range.contains(v.get_ref()) {
            let message = format!("`{key}` must be between {} and {}", range.start(), range.end());
            return Err(self.error(v.span(), message, help));
        }
        Ok(*v.get_ref() as usize)
    }

    /// The operator's SQL at `span` must be one `kind` of fragment in `engine`'s dialect.
    fn user_sql(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        sql: &str,
        kind: crate::usersql::Fragment,
        engine: Option<crate::EngineKind>,
    ) -> Result<(), SpecError> {
        let Some(engine) = engine else { return Ok(()) };
        crate::usersql::validate(sql, kind, engine).map_err(|why| {
            self.error(
                span,
                format!("`{key}` {why}"),
                "write it as one piece of SQL with no comment and no `;`; Ferry adds the rest",
            )
        })
    }

    fn interpolate(&self, value: &toml::Spanned<String>, key: &str) -> Result<String, SpecError> {
        let lookup = |name: &str| std::env::var(name).ok().or_else(|| self.keep_unset.then(|| format!("${{{name}}}")));
        interpolate(value.get_ref(), lookup).map_err(|missing| {
            self.error(
                value.span(),
                format!("`{key}`: environment variable `{missing}` is not set"),
                format!("export {missing}=... before running ferry, or write `$${{` for a literal `${{`"),
            )
        })
    }
}

/// Replaces `${NAME}` with the variable's value; `$${` stands for a literal `${`.
/// Returns the name of the first missing variable as the error.
pub fn interpolate(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                out.push_str(after);
                return Ok(out);
            };
            let name = &tail[..end];
            out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `10GB`, `512MiB`, `1TB`, `4096` (bytes): decimal and binary units.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024f64.powi(2),
        "GiB" => 1024f64.powi(3),
        "TiB" => 1024f64.powi(4),
        _ => return None,
    };
    (number >= 0.0).then_some((number * factor) as u64)
}

/// `500ms`, `2s`, `1m`, `1h`, `0`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

impl Spec {
    /// Reads and validates a spec file.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            message: format!("cannot read the spec: {e}"),
            help: Some(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "write one with `ferry init --source URL --target URL --table NAME`, or pass --spec PATH".into()
                }
                std::io::ErrorKind::InvalidData => "save the spec as UTF-8 text".into(),
                _ => "check the path and its permissions".into(),
            }),
        })?;
        Spec::parse(path, &text)
    }

    /// [`Spec::load`] for commands that only read the state store (`ferry
    /// status`, `pause`, `resume`, `audit`): a `${VAR}` that is not set (a
    /// password, say) stays as written instead of being an error.
    pub fn load_without_secrets(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            message: format!("cannot read the spec: {e}"),
            help: Some(if e.kind() == std::io::ErrorKind::InvalidData {
                "save the spec as UTF-8 text".into()
            } else {
                "check the path and its permissions, or pass --spec PATH".into()
            }),
        })?;
        Spec::parse_with(path, &text, true)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Spec, SpecError> {
        Spec::parse_with(path, text, false)
    }

    fn parse_with(path: &Path, text: &str, keep_unset: bool) -> Result<Spec, SpecError> {
        let ctx = Ctx { path, text, keep_unset };
        let mut file = parse_toml(&ctx)?;

        changes::lower(&ctx, &mut file)?;
        let target = file.target.as_ref().expect("lower() gives every spec a target");
        let source_url = ctx.interpolate(&file.source.url, "source.url")?;
        let target_url = ctx.interpolate(&target.url, "target.url")?;
        check_url_scheme(&ctx, &source_url, &file.source.url, "source.url")?;
        check_url_scheme(&ctx, &target_url, &target.url, "target.url")?;
        let state_url = parse_state_url(&ctx, file.state.as_ref())?;

        let source_engine = EngineKind::of_url(&source_url);
        let target_engine = EngineKind::of_url(&target_url);
        let policy = parse_policy(&ctx, &file.policy)?;
        if let (Some(probe), Some(raw)) = (&policy.latency_probe, &file.policy.latency_probe) {
            let kind = crate::usersql::Fragment::Query;
            ctx.user_sql(raw.span(), "policy.latency_probe", probe, kind, source_engine)?;
        }
        let migration = parse_migration(&ctx, &file.migration)?;

        let tables = parse_tables(&ctx, &file.tables, source_engine)?;
        let checks = parse_checks(&ctx, &file.checks, source_engine, target_engine)?;
        let capture = parse_capture(&ctx, file.source.capture.as_ref(), target.capture.as_ref())?;

        let switch = parse_switch(&ctx, &file.switch)?;
        let cutover = file
            .cutover
            .as_ref()
            .map(|c| cutover::parse(&ctx, c.get_ref(), path, source_engine, target_engine))
            .transpose()?;
        let (soak, contract) = parse_soak_and_contract(&ctx, &file.soak, &file.contract)?;
        Ok(Spec {
            path: path.to_path_buf(),
            switch,
            cutover,
            soak,
            contract,
            migration,
            source_url,
            target_url,
            capture,
            tables,
            policy,
            state_url,
            checks,
        })
    }

    /// What the method needs and the spec does not say (`[migration]`).
    pub fn open_questions(&self) -> Vec<OpenQuestion> {
        let mut out = Vec::new();
        if self.migration.downtime.is_none() {
            out.push(OpenQuestion {
                key: "migration.downtime",
                question: "How much downtime is acceptable: none, or a maintenance window of what length?",
                example: "downtime = \"0s\"   # or a window such as \"15m\", \"2h\"",
            });
        }
        if self.migration.rollback.is_none() {
            out.push(OpenQuestion {
                key: "migration.rollback",
                question: "Must a rollback lose nothing, or is losing writes made after the switch acceptable?",
                example: "rollback = \"lossless\"   # or \"loss-accepted-after-switch\"",
            });
        }
        if self.migration.owner.is_none() {
            out.push(OpenQuestion {
                key: "migration.owner",
                question: "Who owns this migration and signs off each phase?",
                example: "owner = \"name@example.com\"",
            });
        }
        out
    }

    /// The directory relative paths in the spec are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// A fingerprint of what each table entry means, to detect a spec edited mid-migration.
    /// What a rehearsal rehearsed: the tables, their mapping, the capture
    /// method and the rollback requirement. Another spec needs another rehearsal.
    pub fn rehearsal_fingerprint(&self) -> String {
        let tables: Vec<String> = self.tables.iter().map(Spec::table_fingerprint).collect();
        let translations: Vec<&BTreeMap<String, String>> = self.tables.iter().map(|t| &t.translate).collect();
        let text = format!(
            "{tables:?}|{translations:?}|{:?}|{:?}|{}|{}",
            self.capture, self.migration.rollback, self.source_url, self.target_url
        );
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }

    pub fn table_fingerprint(table: &TableSpec) -> String {
        let text = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            table.from, table.to, table.key, table.filter, table.exclude, table.columns
        );
        // A spec written before conversions existed keeps its fingerprint.
        let text = if table.conversions.is_empty() { text } else { format!("{text}|{:?}", table.conversions) };
        let text = if table.added_indexes.is_empty() { text } else { format!("{text}|{:?}", table.added_indexes) };
        let text =
            if table.added_constraints.is_empty() { text } else { format!("{text}|{:?}", table.added_constraints) };
        let text = if table.downs.is_empty() { text } else { format!("{text}|{:?}", table.downs) };
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }
}

/// The spec's TOML, with a hint for each kind of mistake serde names.
fn parse_toml(ctx: &Ctx) -> Result<raw::File, SpecError> {
    toml::from_str(ctx.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let help = if message.starts_with("unknown field") {
            "remove the key or correct its spelling; docs/spec.md lists every key"
        } else if message.starts_with("missing field") {
            "add the key; docs/spec.md lists what each section needs"
        } else if message.starts_with("invalid type") {
            "give the value the type docs/spec.md shows for this key"
        } else {
            "fix the TOML syntax at this position"
        };
        ctx.error(span, message, help)
    })
}

/// A database URL has a scheme an engine registered. Engines do the full
/// parsing; the scheme is checked here, against the one list.
fn check_url_scheme(ctx: &Ctx, url: &str, raw: &toml::Spanned<String>, key: &str) -> Result<(), SpecError> {
    if EngineKind::of_url(url).is_some() {
        return Ok(());
    }
    let near = crate::engine_kind::URL_SCHEMES
        .iter()
        .filter_map(|(s, _)| s.strip_suffix("://"))
        .find(|s| url.strip_prefix(s).is_some_and(|rest| rest.starts_with(':')));
    let (message, help) = match near {
        Some(scheme) => (
            format!("`{key}`: `{}` is missing the `//` after `{scheme}:`", redact_for_message(url)),
            format!("write {scheme}://user@host:port/database"),
        ),
        None => (
            format!("`{key}`: unknown database URL scheme in `{}`", redact_for_message(url)),
            format!("use {}", EngineKind::schemes_in_words()),
        ),
    };
    Err(ctx.error(raw.span(), message, help))
}

/// `[state] url`: a SQLite file (by default beside the spec) or a PostgreSQL database.
fn parse_state_url(ctx: &Ctx, state: Option<&raw::State>) -> Result<String, SpecError> {
    let Some(state) = state else {
        return Ok(default_state_url(ctx.path));
    };
    let url = ctx.interpolate(&state.url, "state.url")?;
    let shared = EngineKind::of_url(&url) == Some(EngineKind::Postgres);
    if !url.starts_with("sqlite:") && !shared {
        return Err(ctx.error(
            state.url.span(),
            format!(
                "`state.url`: a state store is a SQLite file or a PostgreSQL database, not `{}`",
                redact_for_message(&url)
            ),
            format!(
                "use `{}` (the default), another sqlite: path, or postgres://USER@HOST/DATABASE to share the state between machines",
                default_state_url(ctx.path)
            ),
        ));
    }
    Ok(url)
}

/// Every `[[table]]`, each writing a target table of its own.
fn parse_tables(
    ctx: &Ctx,
    entries: &[toml::Spanned<raw::Table>],
    source_engine: Option<EngineKind>,
) -> Result<Vec<TableSpec>, SpecError> {
    if entries.is_empty() {
        return Err(SpecError {
            path: ctx.path.to_path_buf(),
            line: None,
            column: None,
            message: "the spec has no [[table]] entries".into(),
            help: Some("add one per table to move:\n\n    [[table]]\n    from = \"users\"\n".into()),
        });
    }
    let mut tables = Vec::new();
    let mut seen_targets: BTreeMap<String, usize> = BTreeMap::new();
    for entry in entries {
        let table = parse_table(ctx, entry, source_engine)?;
        if let Some(first) = seen_targets.insert(table.to.clone(), table.line) {
            return Err(ctx.error(
                entry.span(),
                format!(
                    "target table `{}` is written by two [[table]] entries (the other is on line {first})",
                    table.to
                ),
                "give each entry its own `to`",
            ));
        }
        tables.push(table);
    }
    Ok(tables)
}

/// Every `[[check]]`: a named query, its SQL valid on the side it runs on.
fn parse_checks(
    ctx: &Ctx,
    entries: &[toml::Spanned<raw::Check>],
    source_engine: Option<EngineKind>,
    target_engine: Option<EngineKind>,
) -> Result<Vec<CheckSpec>, SpecError> {
    let mut checks: Vec<CheckSpec> = Vec::new();
    for entry in entries {
        let raw = entry.get_ref();
        let on = match raw.on.as_ref().map(|o| (o.get_ref().as_str(), o.span())) {
            None | Some(("target", _)) => CheckOn::Target,
            Some(("source", _)) => CheckOn::Source,
            Some((other, span)) => {
                return Err(ctx.error(
                    span,
                    format!("`check.on` is `{other}`"),
                    "use \"target\" (the default) or \"source\"",
                ))
            }
        };
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() || checks.iter().any(|c| c.name == name) {
            return Err(ctx.error(
                raw.name.span(),
                "every [[check]] needs a name of its own",
                "name it after what it asserts, e.g. name = \"no orders without a customer\"",
            ));
        }
        if raw.sql.get_ref().trim().is_empty() {
            return Err(ctx.error(raw.sql.span(), "`check.sql` is empty", "give a query that returns one number"));
        }
        let engine = match on {
            CheckOn::Source => source_engine,
            CheckOn::Target => target_engine,
        };
        ctx.user_sql(raw.sql.span(), "check.sql", raw.sql.get_ref(), crate::usersql::Fragment::Query, engine)?;
        checks.push(CheckSpec {
            name,
            sql: raw.sql.get_ref().clone(),
            expect: raw.expect,
            on,
            line: ctx.position(entry.span().start).0,
        });
    }
    Ok(checks)
}

/// `[source] capture`; capture is the source's, never the target's.
fn parse_capture(
    ctx: &Ctx,
    source: Option<&toml::Spanned<String>>,
    target: Option<&toml::Spanned<String>>,
) -> Result<CaptureMethod, SpecError> {
    if let Some(c) = target {
        return Err(ctx.error(
            c.span(),
            "`target.capture`: capture records the source's writes",
            "move `capture` to the [source] section",
        ));
    }
    match source.map(|c| (c, c.get_ref().as_str())) {
        None | Some((_, "triggers")) => Ok(CaptureMethod::Triggers),
        Some((_, "logical")) => Ok(CaptureMethod::Logical),
        Some((_, "binlog")) => Ok(CaptureMethod::Binlog),
        Some((c, other)) => Err(ctx.error(
            c.span(),
            format!("`source.capture`: unknown method `{other}`"),
            "use \"triggers\" (the default, every engine), \"logical\" (PostgreSQL with wal_level = logical) \
             or \"binlog\" (MySQL/MariaDB with a row-based binary log)",
        )),
    }
}

/// `[policy] throttle`: the load throttle by default, the latency probe
/// where the spec configures one (`probed`), or none.
fn parse_throttle(
    ctx: &Ctx,
    throttle: Option<&toml::Spanned<String>>,
    probed: bool,
) -> Result<ThrottleMode, SpecError> {
    Ok(match throttle.map(|t| (t, t.get_ref().as_str())) {
        None if probed => ThrottleMode::Latency,
        None | Some((_, "load")) => ThrottleMode::Load,
        Some((_, "latency")) => ThrottleMode::Latency,
        Some((_, "off")) => ThrottleMode::Off,
        Some((t, other)) => {
            return Err(ctx.error(
                t.span(),
                format!("`policy.throttle`: unknown value `{other}`"),
                "use \"load\" (the default: pace by the source's active sessions), \"latency\" (pause on a slow \
                 latency probe) or \"off\"",
            ))
        }
    })
}

fn parse_on_conversion_error(ctx: &Ctx, o: &toml::Spanned<String>) -> Result<OnConversionError, SpecError> {
    Ok(match o.get_ref().as_str() {
        "stop" => OnConversionError::Stop,
        "quarantine" => OnConversionError::Quarantine,
        other => {
            return Err(ctx.error(
                o.span(),
                format!("`policy.on_conversion_error`: unknown value `{other}`"),
                "use \"stop\" (the default) or \"quarantine\"",
            ))
        }
    })
}

fn parse_policy(ctx: &Ctx, raw: &raw::Policy) -> Result<Policy, SpecError> {
    let mut policy = Policy::default();
    if let Some(b) = &raw.batch_size {
        policy.batch_size = ctx.count_in(b, "policy.batch_size", 1..=1_000_000, "1000 to 10000 is the usual range")?;
    }
    if let Some(w) = &raw.workers {
        let help = "leave it out to use one per core, up to 4";
        policy.workers = Some(ctx.count_in(w, "policy.workers", 1..=MAX_WORKERS as i64, help)?);
    }
    if let Some(s) = &raw.sample_size {
        policy.sample_size = ctx.count_in(s, "policy.sample_size", 0..=10_000_000, "the default is 1000")?;
    }
    if let Some(s) = &raw.verify_chunk_rows {
        let help = "the default is 50000";
        policy.verify_chunk_rows = ctx.count_in(s, "policy.verify_chunk_rows", 1..=10_000_000, help)?;
    }
    if let Some(p) = &raw.batch_pause {
        policy.batch_pause = ctx.duration(p, "policy.batch_pause", "\"0\", \"50ms\", \"2s\"")?;
    }
    // An error rate is a share of the rows (at most all of them); a latency increase may exceed 100 %.
    for (value, key, slot, at_most_all) in [
        (&raw.max_error_rate, "max_error_rate", &mut policy.max_error_rate, true),
        (&raw.max_latency_increase, "max_latency_increase", &mut policy.max_latency_increase, false),
    ] {
        if let Some(v) = value {
            *slot = parse_percent(v.get_ref()).filter(|p| !at_most_all || *p <= 1.0).ok_or_else(|| {
                ctx.error(
                    v.span(),
                    format!(
                        "`policy.{key}`: `{}` is not a percentage{}",
                        v.get_ref(),
                        if at_most_all { " between 0% and 100%" } else { "" }
                    ),
                    "write e.g. \"0.1%\" or \"10%\"",
                )
            })?;
        }
    }
    if let Some(v) = &raw.chunk_time {
        policy.chunk_time = ctx.duration(v, "policy.chunk_time", "\"500ms\", or \"0\" for a fixed batch size")?;
    }
    if let Some(v) = &raw.max_probe_latency {
        policy.max_probe_latency = Some(ctx.duration(v, "policy.max_probe_latency", "\"50ms\"")?);
    }
    if let Some(v) = &raw.reconnect_for {
        let example = "\"5m\"; \"0\" stops at the first lost connection";
        policy.reconnect_for = ctx.duration(v, "policy.reconnect_for", example)?;
    }
    if let Some(v) = &raw.liveness_check {
        policy.liveness_check = ctx.duration(v, "policy.liveness_check", "\"30s\"; \"0\" never asks")?;
    }
    if let Some(v) = &raw.max_retained {
        policy.max_retained_bytes = parse_size(v.get_ref()).ok_or_else(|| {
            ctx.error(
                v.span(),
                format!("`policy.max_retained`: `{}` is not a size", v.get_ref()),
                "write e.g. \"10GB\" or \"512MiB\"",
            )
        })?;
    }
    if let Some(v) = &raw.latency_probe {
        policy.latency_probe = Some(ctx.interpolate(v, "policy.latency_probe")?);
    }
    if let Some(l) = &raw.max_lag {
        policy.max_lag = ctx.duration(l, "policy.max_lag", "\"30s\"")?;
    }
    for (value, key, slot) in [
        (&raw.big_bang_max_rows, "big_bang_max_rows", &mut policy.big_bang_max_rows),
        (&raw.very_large_rows, "very_large_rows", &mut policy.very_large_rows),
    ] {
        if let Some(v) = value {
            if *v.get_ref() < 0 {
                return Err(ctx.error(v.span(), format!("`policy.{key}` must not be negative"), ""));
            }
            *slot = *v.get_ref() as u64;
        }
    }
    let probed = policy.latency_probe.is_some() || policy.max_probe_latency.is_some();
    policy.throttle = parse_throttle(ctx, raw.throttle.as_ref(), probed)?;
    if let Some(o) = &raw.on_conversion_error {
        policy.on_conversion_error = parse_on_conversion_error(ctx, o)?;
    }
    Ok(policy)
}

fn parse_switch(ctx: &Ctx, raw: &raw::Switch) -> Result<SwitchPolicy, SpecError> {
    let mut switch = SwitchPolicy::default();
    for (value, key, slot) in [
        (&raw.max_verify_age, "max_verify_age", &mut switch.max_verify_age),
        (&raw.max_lag, "max_lag", &mut switch.max_lag),
    ] {
        if let Some(v) = value {
            *slot = ctx.duration(v, &format!("switch.{key}"), "\"1s\", \"1h\"")?;
        }
    }
    if let Some(h) = &raw.hook {
        let hook = ctx.interpolate(h, "switch.hook")?;
        if hook.trim().is_empty() {
            return Err(ctx.error(h.span(), "`switch.hook` is empty", "name an executable, or remove the key"));
        }
        switch.hook = Some(hook);
    }
    Ok(switch)
}

fn parse_soak_and_contract(
    ctx: &Ctx,
    soak: &raw::Soak,
    contract: &raw::Contract,
) -> Result<(SoakPolicy, ContractPolicy), SpecError> {
    let mut policy = SoakPolicy::default();
    if let Some(d) = &soak.duration {
        policy.duration = ctx.duration(d, "soak.duration", "\"24h\"")?;
    }
    if let Some(d) = &soak.check_every {
        policy.check_every = parse_duration(d.get_ref()).filter(|d| !d.is_zero()).ok_or_else(|| {
            ctx.error(
                d.span(),
                format!("`soak.check_every`: `{}` is not a positive duration", d.get_ref()),
                "write e.g. \"1m\"",
            )
        })?;
    }
    if let Some(t) = &soak.on_trigger {
        policy.on_trigger = match t.get_ref().as_str() {
            "alert" => OnTrigger::Alert,
            "rollback" => OnTrigger::Rollback,
            other => {
                return Err(ctx.error(
                    t.span(),
                    format!("`soak.on_trigger`: unknown value `{other}`"),
                    "use \"alert\" (the default) or \"rollback\"",
                ))
            }
        };
    }
    let mut archive = ContractPolicy::default();
    if let Some(s) = &contract.source {
        archive.source = match s.get_ref().as_str() {
            "rename" => ArchiveSource::Rename,
            "drop" => ArchiveSource::Drop,
            "keep" => ArchiveSource::Keep,
            other => {
                return Err(ctx.error(
                    s.span(),
                    format!("`contract.source`: unknown value `{other}`"),
                    "use \"rename\" (the default: <table>_ferry_archive_<date>), \"drop\" or \"keep\"",
                ))
            }
        };
    }
    Ok((policy, archive))
}

fn parse_migration(ctx: &Ctx, raw: &raw::Migration) -> Result<MigrationInfo, SpecError> {
    let text = |v: &Option<toml::Spanned<String>>, key: &str| -> Result<Option<String>, SpecError> {
        v.as_ref().map(|v| ctx.interpolate(v, key)).transpose()
    };
    let downtime = match &raw.downtime {
        Some(d) => Some(parse_duration(d.get_ref()).ok_or_else(|| {
            ctx.error(
                d.span(),
                format!("`migration.downtime`: `{}` is not a duration", d.get_ref()),
                "write \"0s\" for zero downtime, or a window such as \"15m\" or \"2h\"",
            )
        })?),
        None => None,
    };
    let rollback = match &raw.rollback {
        Some(r) => Some(match r.get_ref().as_str() {
            "lossless" => RollbackRequirement::Lossless,
            "loss-accepted-after-switch" => RollbackRequirement::LossAcceptedAfterSwitch,
            other => {
                return Err(ctx.error(
                    r.span(),
                    format!("`migration.rollback`: unknown value `{other}`"),
                    "use \"lossless\" or \"loss-accepted-after-switch\"",
                ))
            }
        }),
        None => None,
    };
    Ok(MigrationInfo {
        name: text(&raw.name, "migration.name")?,
        owner: text(&raw.owner, "migration.owner")?.filter(|o| !o.trim().is_empty()),
        downtime,
        rollback,
        when: text(&raw.when, "migration.when")?,
        require_rehearsal: raw.require_rehearsal.unwrap_or(false),
    })
}

/// `"0.1%"` -> 0.001
pub fn parse_percent(s: &str) -> Option<f64> {
    let n: f64 = s.trim().strip_suffix('%')?.trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n / 100.0)
}

fn parse_table(
    ctx: &Ctx,
    entry: &toml::Spanned<raw::Table>,
    source: Option<crate::EngineKind>,
) -> Result<TableSpec, SpecError> {
    let raw = entry.get_ref();
    let (line, _) = ctx.position(entry.span().start);
    let from = ctx.interpolate(&raw.from, "table.from")?;
    if from.trim().is_empty() {
        return Err(ctx.error(raw.from.span(), "`table.from` is empty", "name the source table"));
    }
    let to = match &raw.to {
        Some(to) => ctx.interpolate(to, "table.to")?,
        // The table's own name: a source schema (PostgreSQL) would name a
        // database on MySQL, so it is not carried over unless `to` says so.
        None => from.rsplit('.').next().unwrap_or(&from).to_string(),
    };
    let key = match &raw.key {
        Some(k) if k.get_ref().0.is_empty() => {
            return Err(ctx.error(
                k.span(),
                "`table.key` is empty",
                "name the key columns, or remove `key` to use the primary key",
            ))
        }
        Some(k) => k.get_ref().0.clone(),
        None => Vec::new(),
    };
    let filter = match &raw.filter {
        Some(f) => {
            let filter = ctx.interpolate(f, "table.filter")?;
            ctx.user_sql(f.span(), "table.filter", &filter, crate::usersql::Fragment::Filter, source)?;
            Some(filter)
        }
        None => None,
    };
    let exclude = raw.exclude.iter().map(|e| e.get_ref().clone()).collect();
    let mut columns = Vec::new();
    let mut entries: Vec<_> = raw.columns.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (target, value) in entries {
        let target_name = target.get_ref().clone();
        let key_name = format!("table.columns.{target_name}");
        let parse_type = |t: &Option<String>| -> Result<Option<DataType>, SpecError> {
            t.as_deref()
                .map(DataType::parse)
                .transpose()
                .map_err(|msg| ctx.error(value.span(), format!("`{key_name}`: {msg}"), ""))
        };
        let source = match value.get_ref() {
            raw::ColumnValue::Name(name) => {
                ColumnSource::Column { name: name.clone(), data_type: None, not_null: false }
            }
            raw::ColumnValue::Detailed(d) => match (&d.from, &d.expr) {
                (Some(name), None) => ColumnSource::Column {
                    name: name.clone(),
                    data_type: parse_type(&d.data_type)?,
                    not_null: d.nullable == Some(false),
                },
                (None, Some(sql)) => ColumnSource::Expr {
                    sql: {
                        let kind = crate::usersql::Fragment::Expression;
                        ctx.user_sql(value.span(), &key_name, sql, kind, source)?;
                        sql.clone()
                    },
                    data_type: parse_type(&d.data_type)?,
                    not_null: d.nullable == Some(false),
                },
                (None, None) if d.data_type.is_some() || d.nullable.is_some() => ColumnSource::Column {
                    name: target_name.clone(),
                    data_type: parse_type(&d.data_type)?,
                    not_null: d.nullable == Some(false),
                },
                _ => {
                    return Err(ctx.error(
                        value.span(),
                        format!("`{key_name}` needs exactly one of `from` (a source column) or `expr` (SQL)"),
                        "e.g. { expr = \"lower(email)\", type = \"text\" }",
                    ))
                }
            },
        };
        columns.push((target_name, source));
    }
    let merge_existing_rows = match raw.existing_rows.as_ref().map(|v| (v.get_ref().as_str(), v.span())) {
        None => false,
        Some(("merge", _)) => true,
        Some((other, span)) => {
            return Err(ctx.error(
                span,
                format!("`table.existing_rows` is `{other}`"),
                "the one answer is \"merge\": keep the rows an existing target table holds, overwrite those \
                 whose key the source has; to start from an empty table, empty it yourself first",
            ))
        }
    };
    let mut conversions = BTreeMap::new();
    for (column, (up, down)) in &raw.conversions {
        for (name, sql) in [("up", up), ("down", down)] {
            if let Some(sql) = sql {
                let kind = crate::usersql::Fragment::Expression;
                ctx.user_sql(sql.span(), &format!("change.{name}"), sql.get_ref(), kind, source)?;
            }
        }
        let text = |v: &Option<toml::Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
        conversions.insert(column.clone(), Conversion { up: text(up), down: text(down) });
    }
    Ok(TableSpec {
        from,
        to,
        key,
        filter,
        exclude,
        columns,
        translate: raw.translate.clone(),
        merge_existing_rows,
        conversions,
        added_indexes: raw.added_indexes.clone(),
        added_constraints: raw.added_constraints.clone(),
        downs: raw.downs.clone(),
        line,
    })
}

/// A server URL split where people mean it: `scheme://`, the user, the
/// password (as written, unencoded characters and all), and the rest from
/// the `@`. The user information ends at the *last* `@`: a password may hold
/// `@`, `/`, `#` or `?` unencoded, as people write them; a host never holds `@`.
fn split_userinfo(url: &str) -> Option<(&str, &str, Option<&str>, &str)> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let at = rest.rfind('@')?;
    let userinfo = &rest[..at];
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    Some((&url[..scheme_end], user, password, &rest[at..]))
}

/// Percent-encodes what a URL's user information cannot hold as is; `%XX`
/// already written stays.
fn encode_userinfo_part(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = String::with_capacity(part.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = b == b'%' && bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || escaped {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    out
}

/// The URL with its user and password percent-encoded, so that a password
/// such as `Tr0ub/4dor` or `p@ss/w#rd` written as is reaches the driver whole.
pub fn encode_userinfo(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, user, password, rest)) => {
            let password = password.map(|p| format!(":{}", encode_userinfo_part(p))).unwrap_or_default();
            format!("{scheme}{}{password}{rest}", encode_userinfo_part(user))
        }
        None => url.to_string(),
    }
}

/// Hides a password in a URL for messages: `postgres://u:***@h/db`, whatever
/// the password holds.
pub fn redact_for_message(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, user, Some(_), rest)) => format!("{scheme}{user}:***{rest}"),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Spec, SpecError> {
        Spec::parse(Path::new("ferry.toml"), text)
    }

    const MINIMAL: &str =
        "[source]\nurl = \"sqlite:a.db\"\n[target]\nurl = \"sqlite:b.db\"\n[[table]]\nfrom = \"users\"\n";

    /// The seed's in-place example, exactly as issue 16 writes it.
    const SEED_CHANGE: &str = r#"
[migration]
downtime = "0s"
rollback = "lossless"
owner = "dba@example.com"

[source]
url = "postgres://app@db/app"

[[change]]
table = "users"
add_column = "email_verified"
type = "boolean"
expr = "verification_date IS NOT NULL"
not_null = true

[[change]]
table = "users"
drop_column = "verification_date"
"#;

    #[test]
    fn the_throttle_paces_by_load_unless_told_otherwise() {
        let with = |policy: &str| parse(&format!("{MINIMAL}[policy]\n{policy}\n")).map(|s| s.policy.throttle);
        assert_eq!(parse(MINIMAL).unwrap().policy.throttle, ThrottleMode::Load);
        assert_eq!(
            with("max_probe_latency = \"50ms\"").unwrap(),
            ThrottleMode::Latency,
            "a threshold asks for the probe"
        );
        assert_eq!(with("latency_probe = \"SELECT 1\"").unwrap(), ThrottleMode::Latency);
        assert_eq!(with("throttle = \"off\"").unwrap(), ThrottleMode::Off);
        assert_eq!(with("throttle = \"load\"\nmax_probe_latency = \"1s\"").unwrap(), ThrottleMode::Load);
        let e = with("throttle = \"fast\"").unwrap_err().to_string();
        assert!(e.contains("policy.throttle") && e.contains("\"off\""), "{e}");
    }

    #[test]
    fn changes_in_place_are_one_table_on_the_source() {
        let spec = parse(SEED_CHANGE).unwrap();
        assert_eq!(spec.target_url, spec.source_url);
        assert_eq!(spec.tables.len(), 1);
        let users = &spec.tables[0];
        assert_eq!((users.from.as_str(), users.to.as_str()), ("users", "users"));
        assert_eq!(users.exclude, vec!["verification_date".to_string()]);
        assert_eq!(
            users.columns,
            vec![(
                "email_verified".to_string(),
                ColumnSource::Expr {
                    sql: "verification_date IS NOT NULL".into(),
                    data_type: Some(DataType::Bool),
                    not_null: true
                }
            )]
        );
        let renamed = SEED_CHANGE.replace(
            "drop_column = \"verification_date\"",
            "rename_column = \"verification_date\"\nto = \"verified_at\"",
        );
        let spec = parse(&renamed).unwrap();
        assert!(spec.tables[0].columns.iter().any(|(n, c)| n == "verified_at"
            && matches!(c, ColumnSource::Column { name, .. } if name == "verification_date")));
    }

    #[test]
    fn changes_that_cannot_be_planned_say_why() {
        let with_target = SEED_CHANGE.replacen("[[change]]", "[target]\nurl = \"sqlite:other.db\"\n\n[[change]]", 1);
        assert!(parse(&with_target).unwrap_err().message.contains("names another database"));
        let two =
            SEED_CHANGE.replace("drop_column = \"verification_date\"", "drop_column = \"a\"\nrename_column = \"b\"");
        assert!(parse(&two).unwrap_err().message.contains("exactly one operation"));
        let later = SEED_CHANGE.replace("drop_column = \"verification_date\"", "split_column = \"name\"");
        let e = parse(&later).unwrap_err();
        assert!(e.message.contains("needs `into` and `type`") && e.line == Some(19), "{e:?}");
        let merge = SEED_CHANGE.replace(
            "drop_column = \"verification_date\"",
            "merge_columns = [\"a\", \"b\"]\nto = \"ab\"\ntype = \"text\"\nup = \"a || b\"\ndown = { a = \"ab\", c = \"ab\" }",
        );
        assert!(parse(&merge)
            .unwrap_err()
            .message
            .contains("`change.down.c` must be SQL for one of the merged columns"));
        let untyped_alter = SEED_CHANGE.replace("drop_column = \"verification_date\"", "alter_type = \"id\"");
        assert!(parse(&untyped_alter).unwrap_err().message.contains("needs `type`"));
        let retype = SEED_CHANGE.replace(
            "drop_column = \"verification_date\"",
            "alter_type = \"placed\"\ntype = \"date\"\nup = \"CAST(placed AS date)\"\ndown = \"CAST(placed AS text)\"",
        );
        let spec = parse(&retype).unwrap();
        let conversion = &spec.tables[0].conversions["placed"];
        assert_eq!(conversion.up.as_deref(), Some("CAST(placed AS date)"));
        assert_eq!(conversion.down.as_deref(), Some("CAST(placed AS text)"));
        let stray = SEED_CHANGE.replace("not_null = true", "not_null = true\nup = \"x\"");
        assert!(parse(&stray).unwrap_err().message.contains("`change.up` does not go with this operation"));
        let untyped = SEED_CHANGE.replace("type = \"boolean\"\n", "");
        assert!(parse(&untyped).unwrap_err().message.contains("needs `type` and `expr`"));
        let mixed = format!("{SEED_CHANGE}\n[[table]]\nfrom = \"orders\"\n");
        assert!(parse(&mixed).unwrap_err().message.contains("not both"));
        let neither = MINIMAL.replace("[target]\nurl = \"sqlite:b.db\"\n", "");
        assert!(parse(&neither).unwrap_err().message.contains("no [target]"));
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let spec = parse(MINIMAL).unwrap();
        assert_eq!(spec.tables[0].to, "users");
        assert_eq!(spec.policy.batch_size, DEFAULT_BATCH_SIZE);
        assert_eq!(spec.state_url, "sqlite:.ferry/ferry/state.db");
        assert_eq!(spec.capture, CaptureMethod::Triggers);
    }

    #[test]
    fn capture_method_is_a_property_of_the_source() {
        let logical = MINIMAL.replace("url = \"sqlite:a.db\"", "url = \"sqlite:a.db\"\ncapture = \"logical\"");
        assert_eq!(parse(&logical).unwrap().capture, CaptureMethod::Logical);
        let err = parse(&MINIMAL.replace("url = \"sqlite:a.db\"", "url = \"sqlite:a.db\"\ncapture = \"wal\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown method `wal`") && err.contains("\"logical\""), "{err}");
        let err = parse(&MINIMAL.replace("url = \"sqlite:b.db\"", "url = \"sqlite:b.db\"\ncapture = \"logical\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("move `capture` to the [source] section"), "{err}");
    }

    #[test]
    fn full_spec() {
        let text = r#"
[source]
url = "postgres://app:${FERRY_TEST_PW}@db/app"
[target]
url = "mysql://root@127.0.0.1/app"
[policy]
batch_size = 100
batch_pause = "20ms"
[[table]]
from = "users"
to = "people"
key = ["tenant", "id"]
filter = "deleted_at IS NULL"
[table.columns]
display_name = "full_name"
domain = { expr = "split_part(email, '@', 2)", type = "varchar(255)" }
age = { type = "integer" }
"#;
        std::env::set_var("FERRY_TEST_PW", "s3cret");
        let spec = parse(text).unwrap();
        assert_eq!(spec.source_url, "postgres://app:s3cret@db/app");
        let t = &spec.tables[0];
        assert_eq!(t.key, ["tenant", "id"]);
        assert_eq!(t.columns[0].0, "display_name");
        assert_eq!(
            t.columns[1].1,
            ColumnSource::Expr {
                sql: "split_part(email, '@', 2)".into(),
                data_type: Some(DataType::Text { max_chars: Some(255) }),
                not_null: false,
            }
        );
        assert_eq!(
            t.columns[2].1,
            ColumnSource::Column { name: "age".into(), data_type: Some(DataType::Int32), not_null: false }
        );
        assert_eq!(spec.policy.batch_pause, Duration::from_millis(20));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = parse(&format!("{MINIMAL}[policy]\nbatchsize = 5\n")).unwrap_err();
        assert_eq!(err.line, Some(8));
        assert!(err.message.contains("unknown field `batchsize`"), "{err}");
        assert!(err.to_string().starts_with("ferry.toml:8:1:"), "{err}");
    }

    #[test]
    fn wrong_type_and_missing_field() {
        let err = parse(&format!("{MINIMAL}[policy]\nbatch_size = \"big\"\n")).unwrap_err();
        assert_eq!(err.line, Some(8));
        assert!(err.message.contains("invalid type"), "{err}");
        let err = parse("[source]\nurl = \"sqlite:a\"\n[[table]]\nfrom = \"t\"\n").unwrap_err();
        assert!(err.message.contains("the spec has no [target]"), "{err}");
    }

    #[test]
    fn unknown_scheme_and_missing_env() {
        let err = parse(&MINIMAL.replace("sqlite:b.db", "oracle://x")).unwrap_err();
        assert_eq!(err.line, Some(4));
        assert!(err.help.unwrap().contains("postgres://"));
        let err = parse(&MINIMAL.replace("sqlite:b.db", "sqlite:${FERRY_SURELY_UNSET_VAR}")).unwrap_err();
        assert!(err.message.contains("FERRY_SURELY_UNSET_VAR"), "{err}");
    }

    #[test]
    fn column_entry_needs_from_or_expr() {
        let err = parse(&format!("{MINIMAL}[table.columns]\nx = {{ from = \"a\", expr = \"b\" }}\n")).unwrap_err();
        assert_eq!(err.line, Some(8));
        let err = parse(&format!("{MINIMAL}[table.columns]\nx = {{ expr = \"a\", typ = \"text\" }}\n")).unwrap_err();
        assert!(err.message.contains("unknown field `typ`"), "{err}");
    }

    #[test]
    fn migration_answers_and_open_questions() {
        let spec = parse(MINIMAL).unwrap();
        let keys: Vec<&str> = spec.open_questions().iter().map(|q| q.key).collect();
        assert_eq!(keys, ["migration.downtime", "migration.rollback", "migration.owner"]);
        let answered = format!("[migration]\ndowntime = \"0s\"\nrollback = \"lossless\"\nowner = \"ops\"\n{MINIMAL}");
        let spec = parse(&answered).unwrap();
        assert!(spec.open_questions().is_empty());
        assert_eq!(spec.migration.downtime, Some(Duration::ZERO));
        let err = parse(&answered.replace("lossless", "maybe")).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.help.unwrap().contains("loss-accepted-after-switch"));
        let err = parse(&answered.replace("\"0s\"", "\"soon\"")).unwrap_err();
        assert!(err.message.contains("migration.downtime"), "{err}");
    }

    #[test]
    fn policy_thresholds() {
        let spec = parse(&format!(
            "{MINIMAL}[policy]\nmax_error_rate = \"0.5%\"\nmax_lag = \"10s\"\nbig_bang_max_rows = 10\n"
        ))
        .unwrap();
        assert!((spec.policy.max_error_rate - 0.005).abs() < 1e-12);
        assert_eq!(spec.policy.max_lag, Duration::from_secs(10));
        assert_eq!(spec.policy.big_bang_max_rows, 10);
        assert_eq!(parse_size("10GB"), Some(10_000_000_000));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("ten"), None);
        assert!((Policy::default().max_latency_increase - 0.10).abs() < 1e-12);
        assert!(parse(&format!("{MINIMAL}[policy]\nmax_error_rate = \"lots\"\n")).is_err());
    }

    #[test]
    fn target_name_defaults_to_the_unqualified_source_name() {
        let spec = parse(&MINIMAL.replace("from = \"users\"", "from = \"app.users\"")).unwrap();
        assert_eq!(spec.tables[0].from, "app.users");
        assert_eq!(spec.tables[0].to, "users");
    }

    #[test]
    fn interpolation_rules() {
        let env = |n: &str| (n == "A").then(|| "1".to_string());
        assert_eq!(interpolate("x${A}y", env).unwrap(), "x1y");
        assert_eq!(interpolate("$${A} $5", env).unwrap(), "${A} $5");
        assert_eq!(interpolate("${B}", env).unwrap_err(), "B");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_for_message("postgres://u:pw@h:5/db"), "postgres://u:***@h:5/db");
        assert_eq!(redact_for_message("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(redact_for_message("sqlite:x.db"), "sqlite:x.db");
        // Passwords as people write them, unencoded.
        assert_eq!(redact_for_message("mysql://u:Tr0ub/4dor@host/db"), "mysql://u:***@host/db");
        assert_eq!(redact_for_message("mysql://u:p@ss/w#rd@host:3306/db"), "mysql://u:***@host:3306/db");
        assert_eq!(encode_userinfo("mysql://u:p@ss/w#rd@host/db"), "mysql://u:p%40ss%2Fw%23rd@host/db");
        assert_eq!(encode_userinfo("postgres://u:already%2Fok@h/db"), "postgres://u:already%2Fok@h/db");
        assert_eq!(encode_userinfo("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50ms"), Some(Duration::from_millis(50)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("soon"), None);
    }
}
