//! What the assessment measured: the facts a plan is built from.

use ferry_core::schema::{Dependents, ForeignKey};
use ferry_core::types::DataType;
use ferry_core::{EngineKind, Transport};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointFacts {
    pub engine: EngineKind,
    /// The URL with any password hidden.
    pub url: String,
    pub version: String,
    /// Free space where the data lives, where the engine can tell.
    pub free_disk_bytes: Option<u64>,
    /// What the engine can do, as it said: the rules ask this, never the engine's name.
    pub capabilities: ferry_core::Capabilities,
    /// How Ferry's connection reaches the data: encrypted or not.
    #[serde(default)]
    pub transport: Transport,
}

/// The two shapes of migration (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Rows move to another table (same engine or not).
    TableMove,
    /// Columns of one table change where it is: expand/contract.
    InPlace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnFacts {
    /// The column's name on the target.
    pub name: String,
    /// The source column it comes from; `None` for a computed column.
    pub source_column: Option<String>,
    /// The source-dialect expression of a computed column.
    pub expression: Option<String>,
    pub source_type: Option<DataType>,
    /// The source's own type name (`tinyint(1)`, `character varying(80)`).
    pub source_native: Option<String>,
    pub source_nullable: bool,
    /// What the spec or the source asks for.
    pub desired: DataType,
    /// What the target engine will store.
    pub planned: DataType,
    pub nullable: bool,
    /// Rows with NULL here, measured when the target wants NOT NULL and the source allows NULL.
    pub null_rows: Option<u64>,
    /// MySQL/MariaDB zero dates (`0000-00-00`, or a zero month or day) in a
    /// copied date or datetime column, counted in the live data; and how
    /// many of them are whole zero dates (`NULLIF` turns those into NULL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_dates: Option<ZeroDates>,
    /// The zone the spec says naive source times are in (`"<column>.zone"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assumed_zone: Option<String>,
    /// In place, a retyped column: SQL computing the new value from the old row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<String>,
    /// In place, a retyped column: SQL computing the old value from the new row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZeroDates {
    pub rows: u64,
    pub whole: u64,
}

/// What kind of thing a schema item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaItemKind {
    Default,
    OnUpdate,
    Identity,
    Collation,
    Generated,
    Check,
    Index,
    ForeignKey,
    Comment,
}

impl SchemaItemKind {
    pub fn label(self) -> &'static str {
        match self {
            SchemaItemKind::Default => "default",
            SchemaItemKind::OnUpdate => "on update",
            SchemaItemKind::Identity => "identity",
            SchemaItemKind::Collation => "collation",
            SchemaItemKind::Generated => "generated column",
            SchemaItemKind::Check => "check",
            SchemaItemKind::Index => "index",
            SchemaItemKind::ForeignKey => "foreign key",
            SchemaItemKind::Comment => "comment",
        }
    }
}

/// Why a schema item is not carried over as the source has it: the lint
/// class it falls in, and the spec line that settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaProblemClass {
    /// F010: an expression (default, ON UPDATE, CHECK) the target cannot take.
    Expression,
    /// F011: an index kind the target lacks.
    Index,
    /// F012: a collation difference that changes uniqueness or comparisons.
    Collation,
    /// F015: a generated column the target cannot compute the same way.
    Generated,
    /// F016: identity, a foreign-key action or a comment the target cannot keep.
    NotKept,
    /// F017: a foreign key whose parent table is not on the target.
    ParentMissing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaProblem {
    pub class: SchemaProblemClass,
    /// What happens on the target and why.
    pub reason: String,
    /// The spec line (or action) that settles it.
    pub resolve: String,
    /// Informational only: nothing the application relies on is lost.
    #[serde(default)]
    pub info: bool,
}

/// One schema item of a table: as the source has it, and as the target will.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaItem {
    pub kind: SchemaItemKind,
    /// The object's name (checks, indexes, foreign keys) or its column's.
    pub name: String,
    /// As the source has it, in its SQL.
    pub source: String,
    /// As expand creates it, in the target's SQL; `None` when it is not created.
    pub target: Option<String>,
    /// How it was translated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<SchemaProblem>,
}

impl ColumnFacts {
    pub fn renamed_from(&self) -> Option<&str> {
        self.source_column.as_deref().filter(|s| *s != self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u32,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Rows copied into the temporary table.
    pub sample_rows: u64,
    pub seconds: f64,
    /// Rows read per second from the source.
    pub read_rows_per_second: f64,
    /// Rows written per second into the target.
    pub write_rows_per_second: f64,
    /// Rows read per second back from the target's probe table: a
    /// verification across engines reads the target's rows too.
    #[serde(default)]
    pub target_read_rows_per_second: Option<f64>,
    /// Workers that copied the sample side by side, each from the start of
    /// one of the table's chunks on connections of its own, as the run will.
    #[serde(default = "one_lane")]
    pub lanes: u32,
    /// Rows per second the lanes copied together, by the clock.
    #[serde(default)]
    pub copy_rows_per_second: Option<f64>,
    /// The same if each lane's reads and writes overlapped fully, as the
    /// run lets them where the machine has the cores: the estimate's low end.
    #[serde(default)]
    pub overlapped_rows_per_second: Option<f64>,
    /// Rows per second the target checksummed the probe's rows in place, as
    /// verification does within one engine (none where Ferry hashes them).
    #[serde(default)]
    pub checksum_rows_per_second: Option<f64>,
    /// Rows per second the target read the probe's keys alone, in chunks as
    /// verification reads them.
    #[serde(default)]
    pub key_read_rows_per_second: Option<f64>,
    /// Unique keys and indexes built on the probe's rows once they were in,
    /// as the run builds them after the data, and the seconds that took.
    #[serde(default)]
    pub indexes_built: u32,
    #[serde(default)]
    pub index_seconds: Option<f64>,
    /// The run's built-in checks (no NULL where NOT NULL, key unique) run on
    /// the probe's rows, and the seconds they took.
    #[serde(default)]
    pub checks_run: u32,
    #[serde(default)]
    pub check_seconds: Option<f64>,
    /// Seconds creating the probe table took: one DDL statement on the target.
    #[serde(default)]
    pub ddl_seconds: Option<f64>,
    /// A change in place: rows per second an UPDATE per batch filled a
    /// column added to the probe's rows, on one connection, as the run fills.
    #[serde(default)]
    pub in_place_rows_per_second: Option<f64>,
}

fn one_lane() -> u32 {
    1
}

/// Statements other sessions were running on the source, read several
/// times while the plan measured: what the load throttle would have seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReading {
    pub samples: u32,
    /// The throttle's baseline (its first readings) and its high mark.
    pub baseline: u64,
    pub high: u64,
    /// Readings above the high mark: the throttle would have slowed the copy.
    pub above_high: u32,
}

impl Throughput {
    /// One lane's speed: reading and writing overlap, so the slower one sets the pace.
    pub fn backfill_rows_per_second(&self) -> f64 {
        self.read_rows_per_second.min(self.write_rows_per_second).max(1.0)
    }

    /// All lanes together, where the probe measured them side by side.
    pub fn copy_rate(&self) -> f64 {
        self.copy_rows_per_second.unwrap_or_else(|| self.backfill_rows_per_second()).max(1.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableFacts {
    pub source: String,
    pub target: String,
    pub rows: u64,
    /// `false` when `rows` is the engine's estimate.
    pub rows_exact: bool,
    pub size_bytes: Option<u64>,
    pub filter: Option<String>,
    pub primary_key: Vec<String>,
    /// The key rows are copied by (source names); empty when the table has none.
    pub key: Vec<String>,
    /// Whether a primary key or unique constraint enforces `key`.
    pub key_enforced: bool,
    pub unique_keys: Vec<Vec<String>>,
    pub indexes: Vec<Vec<String>>,
    pub foreign_keys_out: Vec<ForeignKey>,
    pub dependents: Dependents,
    /// In place: the objects that use a column contract drops (views, triggers, keys, checks, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_column_users: Vec<ferry_core::schema::ColumnDependent>,
    /// In place: indexes expand builds without blocking writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_indexes: Vec<ferry_core::spec::IndexChange>,
    /// In place: checks and foreign keys the change adds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_constraints: Vec<ferry_core::spec::ConstraintChange>,
    /// In place: old columns written back from new ones (split and merge).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downs: Vec<ferry_core::spec::DownChange>,
    /// In place: the indexes on a renamed or retyped column, built again on the new one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried_indexes: Vec<super::in_place::CarriedIndex>,
    /// In place: the schema (PostgreSQL) or database (MariaDB/MySQL) the
    /// table is in, where the version views go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub columns: Vec<ColumnFacts>,
    /// Source columns that are not carried over.
    pub dropped_columns: Vec<String>,
    pub target_exists: bool,
    pub latency: Option<Latency>,
    pub throughput: Option<Throughput>,
    /// Rows the source's other sessions changed per second while the plan
    /// measured (inserts, updates and deletes), where the engine counts
    /// them per table: PostgreSQL always, MariaDB with `userstat`.
    #[serde(default)]
    pub write_rate: Option<f64>,
    /// The statements expand runs on the target for this table (none when it exists).
    pub ddl_expand: Vec<String>,
    /// The statements run once the data is in: unique keys, indexes, foreign keys.
    pub ddl_after_load: Vec<String>,
    /// Defaults, identity, collations, generated columns, checks, indexes,
    /// foreign keys and comments, source and target side by side.
    #[serde(default)]
    pub schema: Vec<SchemaItem>,
    /// The statements that move the target's identity beyond the copied keys after the backfill.
    #[serde(default)]
    pub identity_sql: Vec<String>,
    /// Why reverse sync could not write the target's rows back (a computed
    /// column, a column not copied); `None` when the mapping inverts.
    #[serde(default)]
    pub not_invertible: Option<String>,
    /// Rows with a NULL in a key column; `None` when no key column is nullable.
    #[serde(default)]
    pub null_key_rows: Option<u64>,
    /// Key values more than one source row shares, as the target compares
    /// them; `None` when the source's own constraints rule it out.
    #[serde(default)]
    pub key_collisions: Option<KeyCollisions>,
    /// Rows an existing target table (not Ferry's) already holds; `None` when Ferry creates it.
    #[serde(default)]
    pub target_rows: Option<u64>,
    /// `existing_rows = "merge"`: the spec accepts keeping them.
    #[serde(default)]
    pub merge_existing_rows: bool,
}

/// Source rows that would land on one target key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCollisions {
    /// How the target compares the key: `exactly`, `ignoring case`, `ignoring trailing spaces`, or both.
    pub comparison: String,
    /// Key values shared by two rows or more.
    pub groups: u64,
    /// The first of them (at most five), as text, `|` between columns.
    pub first: Vec<String>,
}

impl TableFacts {
    /// Target names of the columns in the target's key.
    pub fn target_key(&self) -> Vec<String> {
        self.key
            .iter()
            .filter_map(|k| {
                self.columns.iter().find(|c| c.source_column.as_deref() == Some(k.as_str())).map(|c| c.name.clone())
            })
            .collect()
    }

    /// Whether a source column takes part in an index, unique key, primary key or foreign key.
    pub fn is_indexed(&self, source_column: &str) -> bool {
        self.primary_key.iter().any(|c| c == source_column)
            || self.unique_keys.iter().flatten().any(|c| c == source_column)
            || self.indexes.iter().flatten().any(|c| c == source_column)
    }

    pub fn in_foreign_key(&self, source_column: &str) -> bool {
        self.foreign_keys_out.iter().any(|fk| fk.columns.iter().any(|c| c == source_column))
            || self.dependents.foreign_keys_in.iter().any(|(_, fk)| fk.ref_columns.iter().any(|c| c == source_column))
    }
}

/// Everything `ferry plan` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub measured_at: String,
    pub shape: Shape,
    pub source: EndpointFacts,
    pub target: EndpointFacts,
    pub tables: Vec<TableFacts>,
    /// The spec asks that a rollback lose nothing (`rollback = "lossless"`).
    #[serde(default)]
    pub rollback_lossless: bool,
    /// The source's load as the throttle would read it (none where the
    /// engine has no sessions to count, as SQLite).
    #[serde(default)]
    pub source_load: Option<LoadReading>,
}

impl Assessment {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn largest_table_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).max().unwrap_or(0)
    }

    pub fn total_size_bytes(&self) -> Option<u64> {
        self.tables.iter().map(|t| t.size_bytes).sum()
    }

    pub fn cross_engine(&self) -> bool {
        self.source.engine != self.target.engine
    }
}
