//! The engine-neutral column type model.
//!
//! Every engine maps its own type names onto [`DataType`] when it introspects
//! and back onto its own DDL when it creates a table. Values are converted
//! between types by [`crate::convert`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// A column type every engine can store, in engine-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataType {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Exact decimal. `None` precision means unconstrained (PostgreSQL `numeric`).
    Decimal {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    /// Character data; `max_chars` is the declared limit (`varchar(n)`), if any.
    Text {
        max_chars: Option<u32>,
    },
    Bytes,
    Date,
    /// Time of day, microsecond precision.
    Time,
    /// Date and time without a time zone, microsecond precision.
    Timestamp,
    /// An instant, stored and compared in UTC, microsecond precision.
    TimestampTz,
    Json,
    Uuid,
}

impl DataType {
    pub fn text() -> DataType {
        DataType::Text { max_chars: None }
    }

    /// One of every kind, with the parameter shapes that matter (bounded and
    /// unbounded decimals and text, a decimal wider than a double): for tests
    /// of type mappings.
    pub fn examples() -> Vec<DataType> {
        vec![
            DataType::Bool,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal { precision: Some(12), scale: Some(2) },
            DataType::Decimal { precision: Some(30), scale: Some(4) },
            DataType::Decimal { precision: None, scale: None },
            DataType::Text { max_chars: Some(40) },
            DataType::text(),
            DataType::Bytes,
            DataType::Date,
            DataType::Time,
            DataType::Timestamp,
            DataType::TimestampTz,
            DataType::Json,
            DataType::Uuid,
        ]
    }

    pub fn is_integer(&self) -> bool {
        matches!(self, DataType::Int16 | DataType::Int32 | DataType::Int64)
    }

    /// Parses a type as written in `ferry.toml` (`type = "numeric(12,2)"`).
    ///
    /// The names are engine-neutral, with the common aliases of all three
    /// engines accepted so that users can write what they know.
    pub fn parse(input: &str) -> Result<DataType, String> {
        let lowered = input.trim().to_ascii_lowercase();
        let (name, args) = match lowered.find('(') {
            Some(open) => {
                let close = lowered
                    .rfind(')')
                    .filter(|&c| c > open)
                    .ok_or_else(|| format!("unbalanced parentheses in type `{input}`"))?;
                let args: Result<Vec<u32>, _> =
                    lowered[open + 1..close].split(',').map(|a| a.trim().parse::<u32>()).collect();
                let args = args.map_err(|_| format!("type arguments must be numbers in `{input}`"))?;
                (lowered[..open].trim().to_string(), args)
            }
            None => (lowered.clone(), Vec::new()),
        };
        let no_args = |t: DataType| -> Result<DataType, String> {
            if args.is_empty() {
                Ok(t)
            } else {
                Err(format!("type `{name}` takes no arguments (in `{input}`)"))
            }
        };
        match name.as_str() {
            "bool" | "boolean" => no_args(DataType::Bool),
            "smallint" | "int2" | "int16" => no_args(DataType::Int16),
            "int" | "integer" | "int4" | "int32" => no_args(DataType::Int32),
            "bigint" | "int8" | "int64" => no_args(DataType::Int64),
            "real" | "float4" | "float32" | "float" => no_args(DataType::Float32),
            "double" | "double precision" | "float8" | "float64" => no_args(DataType::Float64),
            "numeric" | "decimal" => match args.as_slice() {
                [] => Ok(DataType::Decimal { precision: None, scale: None }),
                [p] => Ok(DataType::Decimal { precision: Some(*p), scale: Some(0) }),
                [p, s] if s <= p => Ok(DataType::Decimal { precision: Some(*p), scale: Some(*s) }),
                _ => Err(format!("`{input}`: expected numeric(precision, scale) with scale <= precision")),
            },
            "text" | "string" => no_args(DataType::text()),
            "varchar" | "character varying" => match args.as_slice() {
                [n] => Ok(DataType::Text { max_chars: Some(*n) }),
                _ => Err(format!("`{input}`: expected varchar(length)")),
            },
            "bytes" | "bytea" | "blob" | "binary" => no_args(DataType::Bytes),
            "date" => no_args(DataType::Date),
            "time" => no_args(DataType::Time),
            "timestamp" | "datetime" => no_args(DataType::Timestamp),
            "timestamptz" | "timestamp with time zone" => no_args(DataType::TimestampTz),
            "json" | "jsonb" => no_args(DataType::Json),
            "uuid" => no_args(DataType::Uuid),
            _ => Err(format!(
                "unknown type `{input}`; use one of: boolean, smallint, integer, bigint, real, double, \
                 numeric(p,s), text, varchar(n), bytes, date, time, timestamp, timestamptz, json, uuid"
            )),
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("boolean"),
            DataType::Int16 => f.write_str("smallint"),
            DataType::Int32 => f.write_str("integer"),
            DataType::Int64 => f.write_str("bigint"),
            DataType::Float32 => f.write_str("real"),
            DataType::Float64 => f.write_str("double"),
            DataType::Decimal { precision: Some(p), scale } => {
                write!(f, "numeric({p},{})", scale.unwrap_or(0))
            }
            DataType::Decimal { .. } => f.write_str("numeric"),
            DataType::Text { max_chars: Some(n) } => write!(f, "varchar({n})"),
            DataType::Text { max_chars: None } => f.write_str("text"),
            DataType::Bytes => f.write_str("bytes"),
            DataType::Date => f.write_str("date"),
            DataType::Time => f.write_str("time"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::TimestampTz => f.write_str("timestamptz"),
            DataType::Json => f.write_str("json"),
            DataType::Uuid => f.write_str("uuid"),
        }
    }
}

/// Whether values of `from` can always be stored in `to` without loss —
/// used to decide if an existing target column is compatible.
pub fn widens_to(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to {
        return true;
    }
    match (from, to) {
        (Int16, Int32 | Int64) | (Int32, Int64) => true,
        (Int16 | Int32, Float64) => true,
        (Int16 | Int32 | Int64, Decimal { precision: None, .. }) => true,
        (Int16, Decimal { precision: Some(p), scale }) => p - scale.unwrap_or(0) >= 5,
        (Int32, Decimal { precision: Some(p), scale }) => p - scale.unwrap_or(0) >= 10,
        (Int64, Decimal { precision: Some(p), scale }) => p - scale.unwrap_or(0) >= 19,
        (Float32, Float64) => true,
        (Decimal { .. }, Decimal { precision: None, scale: None }) => true,
        (Decimal { precision: Some(p1), scale: s1 }, Decimal { precision: Some(p2), scale: s2 }) => {
            let (s1, s2) = (s1.unwrap_or(0), s2.unwrap_or(0));
            s2 >= s1 && p2 - s2 >= p1 - s1
        }
        (Text { .. }, Text { max_chars: None }) => true,
        (Text { max_chars: Some(a) }, Text { max_chars: Some(b) }) => b >= a,
        (Uuid, Text { max_chars }) => max_chars.is_none_or(|n| n >= 36),
        (Json, Text { max_chars: None }) => true,
        (Timestamp, TimestampTz) | (TimestampTz, Timestamp) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aliases_and_arguments() {
        assert_eq!(DataType::parse("BIGINT").unwrap(), DataType::Int64);
        assert_eq!(
            DataType::parse("numeric(12, 2)").unwrap(),
            DataType::Decimal { precision: Some(12), scale: Some(2) }
        );
        assert_eq!(DataType::parse("varchar(80)").unwrap(), DataType::Text { max_chars: Some(80) });
        assert_eq!(DataType::parse("jsonb").unwrap(), DataType::Json);
        assert!(DataType::parse("numeric(2,5)").is_err());
        assert!(DataType::parse("geometry").unwrap_err().contains("use one of"));
        assert!(DataType::parse("integer(3)").is_err());
    }

    #[test]
    fn display_parses_back() {
        for t in DataType::examples() {
            assert_eq!(DataType::parse(&t.to_string()).unwrap(), t);
        }
    }

    #[test]
    fn widening() {
        assert!(widens_to(&DataType::Int32, &DataType::Int64));
        assert!(!widens_to(&DataType::Int64, &DataType::Int32));
        assert!(widens_to(&DataType::Text { max_chars: Some(10) }, &DataType::Text { max_chars: Some(20) }));
        assert!(!widens_to(&DataType::text(), &DataType::Text { max_chars: Some(20) }));
    }
}
