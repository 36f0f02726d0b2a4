//! What an engine can do, said once by the engine: policy asks for a
//! capability, never for an engine's name (the model of sqlx's and
//! refinery's drivers). In ferry-core because the plan reasons over them
//! as facts, with no engine connected.

use serde::{Deserialize, Serialize};

/// An engine's capabilities, as one value: `Engine::capabilities`
/// (ferry-engine) says them; the plan carries both ends' in its facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// A server other sessions share: its load can be read, and a second
    /// connection asks it apart from the copy's (SQLite is a file).
    pub server: bool,
    /// DDL statements take part in a transaction, so a failing one undoes
    /// those before it (PostgreSQL, SQLite; MySQL/MariaDB commit each).
    pub transactional_ddl: bool,
    /// More than one connection can write at once (SQLite: one writer per file).
    pub concurrent_writers: bool,
    /// Checksums a key range inside the database
    /// (`Engine::checksum_range`), comparable between two databases
    /// of this engine.
    pub checksums_in_database: bool,
    /// Foreign keys can be added to an existing table. Where they cannot
    /// (SQLite), `create_table` declares them and they are not enforced
    /// while Ferry loads.
    pub adds_foreign_keys_later: bool,
    /// Text keys in the tables this engine creates compare equal despite
    /// trailing spaces (a `PAD SPACE` collation): `'a'` = `'a '`.
    pub pads_trailing_spaces: bool,
    /// An index is built while writes go on (PostgreSQL `CREATE INDEX
    /// CONCURRENTLY`, MySQL/MariaDB `ALGORITHM=INPLACE, LOCK=NONE`); where
    /// not (SQLite), writers wait for the build.
    pub builds_indexes_online: bool,
    /// A foreign key added to a live table is validated without holding
    /// writes (PostgreSQL: `NOT VALID`, then `VALIDATE`).
    pub validates_foreign_keys_online: bool,
    /// A column's type, NOT NULL or foreign key changes only by rebuilding
    /// the whole table under an exclusive lock (SQLite).
    pub alters_by_rebuilding: bool,
    /// `enum(...)` and `set(...)` columns are kept as such, their lists of
    /// values enforced (MySQL/MariaDB); elsewhere they become text.
    pub enum_columns: bool,
    /// Booleans are `tinyint(1)`, which holds any small integer (MySQL/MariaDB).
    pub tinyint_booleans: bool,
}
