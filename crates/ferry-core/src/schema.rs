//! The schema model: what introspection finds and what expand creates.

use crate::types::DataType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A table name, optionally qualified by a schema (PostgreSQL) or database (MySQL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    /// `users` or `public.users`.
    pub fn parse(s: &str) -> TableName {
        match s.split_once('.') {
            Some((schema, name)) => TableName { schema: Some(schema.to_string()), name: name.to_string() },
            None => TableName { schema: None, name: s.to_string() },
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    /// The default as SQL text in the engine's own dialect, if any.
    pub default: Option<String>,
    /// The engine's own type name, for messages (`tinyint(1)`, `character varying(80)`).
    pub native_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_table: TableName,
    pub ref_columns: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    /// Estimated number of rows (engine statistics; exact for SQLite).
    pub row_estimate: Option<u64>,
    pub size_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    pub name: TableName,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// Unique constraints and unique indexes, other than the primary key.
    pub unique_keys: Vec<Index>,
    /// Non-unique indexes.
    pub indexes: Vec<Index>,
    pub foreign_keys: Vec<ForeignKey>,
    pub stats: TableStats,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The primary key, or else the first unique key whose columns are all NOT NULL.
    pub fn natural_key(&self) -> Option<Vec<String>> {
        if !self.primary_key.is_empty() {
            return Some(self.primary_key.clone());
        }
        self.unique_keys
            .iter()
            .find(|u| u.columns.iter().all(|c| self.column(c).is_some_and(|c| !c.nullable)))
            .map(|u| u.columns.clone())
    }
}

/// Who depends on a table: the downstream consumers a plan must list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dependents {
    /// Foreign keys of other tables (or of this one) that reference it: (child table, key).
    pub foreign_keys_in: Vec<(TableName, ForeignKey)>,
    pub triggers: Vec<String>,
    pub views: Vec<String>,
}

/// What expand creates on the target: columns already in target names and types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub name: TableName,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<String>,
    pub unique_keys: Vec<Vec<String>>,
    pub indexes: Vec<Vec<String>>,
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
}

/// Predictable object names, identical on every run and short enough for
/// every engine (63 bytes is PostgreSQL's limit, 64 MySQL's).
pub fn object_name(table: &str, columns: &[String], suffix: &str) -> String {
    let full = if columns.is_empty() {
        format!("{table}_{suffix}")
    } else {
        format!("{table}_{}_{suffix}", columns.join("_"))
    };
    bounded_name(&full, 63)
}

/// `full` if it fits in `max` bytes, else a prefix and a hash of the whole.
pub fn bounded_name(full: &str, max: usize) -> String {
    if full.len() <= max {
        return full.to_string();
    }
    let hash = xxhash_rust::xxh3::xxh3_64(full.as_bytes());
    let mut head: String = full.chars().take(max - 9).collect();
    while head.len() > max - 9 {
        head.pop();
    }
    format!("{head}_{:08x}", hash as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_bounded_and_stable() {
        let cols: Vec<String> = (0..20).map(|i| format!("column_number_{i}")).collect();
        let a = object_name("a_rather_long_table_name", &cols, "idx");
        assert!(a.len() <= 63);
        assert_eq!(a, object_name("a_rather_long_table_name", &cols, "idx"));
        assert_eq!(object_name("users", &["email".into()], "key"), "users_email_key");
    }
}
