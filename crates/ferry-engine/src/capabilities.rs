//! What an engine can do, said once by the engine: policy asks for a
//! capability, never for an engine's name (the model of sqlx's and
//! refinery's drivers).

/// An engine's capabilities, as one value: [`crate::Engine::capabilities`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// ([`crate::Engine::checksum_range`]), comparable between two databases
    /// of this engine.
    pub checksums_in_database: bool,
    /// Foreign keys can be added to an existing table. Where they cannot
    /// (SQLite), `create_table` declares them and they are not enforced
    /// while Ferry loads.
    pub adds_foreign_keys_later: bool,
    /// Text keys in the tables this engine creates compare equal despite
    /// trailing spaces (a `PAD SPACE` collation): `'a'` = `'a '`.
    pub pads_trailing_spaces: bool,
}

/// Conditions that find dates only MySQL/MariaDB store (`0000-00-00`,
/// `2024-00-10`) in one column: [`crate::Engine::zero_date_conditions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroDateConditions {
    /// A zero month or day.
    pub any_zero: String,
    /// Year, month and day all zero.
    pub all_zero: String,
}
