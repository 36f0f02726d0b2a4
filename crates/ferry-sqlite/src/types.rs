//! SQLite declared types <-> [`DataType`].
//!
//! SQLite stores any value in any column; the declared type is a hint that
//! Ferry reads to know what the column means. Names are chosen so that a
//! table Ferry creates introspects back to the same types.

use ferry_core::DataType;

/// What a declared column type means.
pub fn from_declared(declared: &str) -> DataType {
    let lowered = declared.trim().to_ascii_lowercase();
    let (base, args) = match lowered.find('(') {
        Some(open) => (
            lowered[..open].trim().to_string(),
            lowered[open + 1..]
                .trim_end_matches(')')
                .split(',')
                .filter_map(|a| a.trim().parse::<u32>().ok())
                .collect::<Vec<_>>(),
        ),
        None => (lowered.clone(), Vec::new()),
    };
    match base.as_str() {
        "bool" | "boolean" => DataType::Bool,
        "tinyint" | "smallint" | "int2" => DataType::Int16,
        "mediumint" | "int4" => DataType::Int32,
        "int" | "integer" | "bigint" | "int8" | "unsigned big int" => DataType::Int64,
        "float4" => DataType::Float32,
        "real" | "double" | "double precision" | "float" | "float8" => DataType::Float64,
        "numeric" | "decimal" | "decimal_text" => match args.as_slice() {
            [p, s] => DataType::Decimal { precision: Some(*p), scale: Some(*s) },
            [p] => DataType::Decimal { precision: Some(*p), scale: Some(0) },
            _ => DataType::Decimal { precision: None, scale: None },
        },
        "varchar" | "character varying" | "nvarchar" | "char" | "character" | "nchar" | "varying character"
        | "native character" => DataType::Text { max_chars: args.first().copied() },
        "text" | "clob" | "string" => DataType::text(),
        "blob" | "bytea" | "binary" | "varbinary" | "bytes" => DataType::Bytes,
        "date" => DataType::Date,
        "time" => DataType::Time,
        "datetime" | "timestamp" => DataType::Timestamp,
        "timestamptz" | "timestamp with time zone" => DataType::TimestampTz,
        "json" | "jsonb" => DataType::Json,
        "uuid" => DataType::Uuid,
        // SQLite's own affinity rules for everything else.
        _ if base.contains("int") => DataType::Int64,
        _ if base.contains("char") || base.contains("clob") || base.contains("text") => DataType::text(),
        _ if base.contains("blob") || base.is_empty() => DataType::Bytes,
        _ if base.contains("real") || base.contains("floa") || base.contains("doub") => DataType::Float64,
        _ => DataType::Decimal { precision: None, scale: None },
    }
}

/// The declared type Ferry writes for `t`.
pub fn declare(t: &DataType, rowid_alias: bool) -> String {
    match t {
        _ if rowid_alias => "INTEGER".into(),
        DataType::Bool => "BOOLEAN".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT4".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT4".into(),
        DataType::Float64 => "REAL".into(),
        // NUMERIC affinity keeps 15 significant digits exactly (it stores a
        // REAL); anything wider is declared with TEXT affinity so that no digit is lost.
        DataType::Decimal { precision: Some(p), scale } if *p <= 15 => format!("NUMERIC({p},{})", scale.unwrap_or(0)),
        DataType::Decimal { precision: Some(p), scale } => format!("DECIMAL_TEXT({p},{})", scale.unwrap_or(0)),
        DataType::Decimal { precision: None, .. } => "DECIMAL_TEXT".into(),
        DataType::Text { max_chars: Some(n) } => format!("VARCHAR({n})"),
        DataType::Text { max_chars: None } => "TEXT".into(),
        DataType::Bytes => "BLOB".into(),
        DataType::Date => "DATE".into(),
        DataType::Time => "TIME".into(),
        DataType::Timestamp => "TIMESTAMP".into(),
        DataType::TimestampTz => "TIMESTAMPTZ".into(),
        DataType::Json => "JSON".into(),
        DataType::Uuid => "UUID".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_round_trip() {
        for t in DataType::examples() {
            assert_eq!(from_declared(&declare(&t, false)), t, "{t}");
        }
    }

    #[test]
    fn affinity_fallbacks() {
        assert_eq!(from_declared("UNSIGNED INTEGER"), DataType::Int64);
        assert_eq!(from_declared("NATIONAL VARCHAR"), DataType::text());
        assert_eq!(from_declared(""), DataType::Bytes);
        assert_eq!(from_declared("MONEY"), DataType::Decimal { precision: None, scale: None });
    }
}
