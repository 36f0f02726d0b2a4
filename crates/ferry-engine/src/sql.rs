//! SQL text that differs between engines only in quoting and placeholders.
//!
//! Identifiers are always quoted here; values are always placeholders. The
//! only SQL spliced as written is the user's own (filters and expressions
//! from the spec).

use crate::{ReadSpec, SelectItem};
use ferry_core::TableName;

#[derive(Debug, Clone, Copy)]
enum KeyBound {
    After,
    Through,
}

#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// Whose identifiers: quoted by [`crate::EngineKind::ident`].
    pub kind: crate::EngineKind,
    /// `$1, $2` (PostgreSQL) instead of `?`.
    pub numbered_params: bool,
    /// Whether `(a, b) > (?, ?)` is used efficiently by the planner.
    pub row_value_ranges: bool,
    /// A row-value `IN` takes only a subquery: `(a, b) IN (VALUES (?, ?), …)` (SQLite).
    pub row_value_in_needs_values: bool,
}

pub const SQLITE: Dialect = Dialect {
    kind: crate::EngineKind::Sqlite,
    numbered_params: false,
    row_value_ranges: true,
    row_value_in_needs_values: true,
};
pub const POSTGRES: Dialect = Dialect {
    kind: crate::EngineKind::Postgres,
    numbered_params: true,
    row_value_ranges: true,
    row_value_in_needs_values: false,
};
pub const MYSQL: Dialect = Dialect {
    kind: crate::EngineKind::Mysql,
    numbered_params: false,
    row_value_ranges: false,
    row_value_in_needs_values: false,
};

/// SQL with its placeholders, and for each placeholder the index of the
/// value to bind (so one key component can be bound twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub sql: String,
    pub binds: Vec<usize>,
}

/// A read of `MIN(k), MAX(k)` of the first key column, for `Engine::key_bounds`
/// (no key: [`Dialect::range_select`] then orders nothing).
pub fn bounds_spec(read: &ReadSpec, dialect: Dialect) -> ReadSpec {
    let key = dialect.ident(&read.key[0]);
    ReadSpec {
        table: read.table.clone(),
        select: vec![SelectItem::Expr(format!("MIN({key})")), SelectItem::Expr(format!("MAX({key})"))],
        key: Vec::new(),
        key_positions: Vec::new(),
        filter: read.filter.clone(),
    }
}

impl Dialect {
    pub fn ident(&self, name: &str) -> String {
        self.kind.ident(name)
    }

    pub fn table(&self, t: &TableName) -> String {
        match &t.schema {
            Some(s) => format!("{}.{}", self.ident(s), self.ident(&t.name)),
            None => self.ident(&t.name),
        }
    }

    pub fn idents(&self, names: &[String]) -> String {
        names.iter().map(|n| self.ident(n)).collect::<Vec<_>>().join(", ")
    }

    fn placeholder(&self, n: usize) -> String {
        if self.numbered_params {
            format!("${n}")
        } else {
            "?".to_string()
        }
    }

    pub fn select_list(&self, items: &[SelectItem]) -> String {
        items
            .iter()
            .map(|item| match item {
                SelectItem::Column(c) => self.ident(c),
                SelectItem::Expr(sql) => format!("({sql})"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `SELECT ... WHERE (filter) AND key > after ORDER BY key LIMIT n`.
    pub fn keyset_select(&self, read: &ReadSpec, with_after: bool, limit: usize) -> Query {
        self.range_select(read, with_after, false, 0, limit)
    }

    /// ` WHERE (filter) AND key > after AND key <= through` (only the parts
    /// that apply; empty when none does). Binds index the key components of
    /// `after` (`0..w`) then of `through` (`w..2w`).
    pub fn range_where(&self, read: &ReadSpec, with_after: bool, with_through: bool) -> Query {
        let mut conditions = Vec::new();
        if let Some(filter) = &read.filter {
            conditions.push(format!("({filter})"));
        }
        let mut binds = Vec::new();
        if with_after {
            conditions.push(self.key_compare(&read.key, KeyBound::After, 0, &mut binds));
        }
        if with_through {
            conditions.push(self.key_compare(&read.key, KeyBound::Through, read.key.len(), &mut binds));
        }
        let sql = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
        Query { sql, binds }
    }

    /// `SELECT ... WHERE <range> ORDER BY key LIMIT n OFFSET m`.
    pub fn range_select(
        &self,
        read: &ReadSpec,
        with_after: bool,
        with_through: bool,
        offset: usize,
        limit: usize,
    ) -> Query {
        let range = self.range_where(read, with_after, with_through);
        let mut sql =
            format!("SELECT {} FROM {}{}", self.select_list(&read.select), self.table(&read.table), range.sql);
        if !read.key.is_empty() {
            sql.push_str(&format!(" ORDER BY {}", self.idents(&read.key)));
        }
        sql.push_str(&format!(" LIMIT {limit}"));
        if offset > 0 {
            sql.push_str(&format!(" OFFSET {offset}"));
        }
        Query { sql, binds: range.binds }
    }

    /// `key > ?` (after) or `key <= ?` (through), for keys of any width.
    fn key_compare(&self, key: &[String], bound: KeyBound, first_bind: usize, binds: &mut Vec<usize>) -> String {
        let next = |binds: &mut Vec<usize>, component: usize| {
            binds.push(first_bind + component);
            self.placeholder(binds.len())
        };
        let (strict, last) = match bound {
            KeyBound::After => (">", ">"),
            KeyBound::Through => ("<", "<="),
        };
        if key.len() == 1 {
            return format!("{} {last} {}", self.ident(&key[0]), next(binds, 0));
        }
        if self.row_value_ranges {
            let placeholders: Vec<String> = (0..key.len()).map(|i| next(binds, i)).collect();
            return format!("({}) {last} ({})", self.idents(key), placeholders.join(", "));
        }
        // (a >= ?) AND ((a > ?) OR (a = ? AND b > ?) OR ...): the leading
        // range lets MySQL use the index where it cannot with row values.
        let lead = format!("{} {strict}= {}", self.ident(&key[0]), next(binds, 0));
        let mut alternatives = Vec::new();
        for i in 0..key.len() {
            let mut parts = Vec::new();
            for (j, col) in key.iter().enumerate().take(i) {
                parts.push(format!("{} = {}", self.ident(col), next(binds, j)));
            }
            let op = if i + 1 == key.len() { last } else { strict };
            parts.push(format!("{} {op} {}", self.ident(&key[i]), next(binds, i)));
            alternatives.push(format!("({})", parts.join(" AND ")));
        }
        format!("{lead} AND ({})", alternatives.join(" OR "))
    }

    /// `SELECT ... WHERE key IN (...)` for `count` keys.
    pub fn select_by_keys(&self, read: &ReadSpec, count: usize) -> Query {
        let mut binds = Vec::new();
        let width = read.key.len();
        let mut tuples = Vec::with_capacity(count);
        for k in 0..count {
            let ph: Vec<String> = (0..width)
                .map(|i| {
                    binds.push(k * width + i);
                    self.placeholder(binds.len())
                })
                .collect();
            tuples.push(if width == 1 { ph[0].clone() } else { format!("({})", ph.join(", ")) });
        }
        let lhs = if width == 1 { self.ident(&read.key[0]) } else { format!("({})", self.idents(&read.key)) };
        // SQLite accepts a row-value IN only against a subquery, hence VALUES.
        let rhs = if width > 1 && self.row_value_in_needs_values {
            format!("(VALUES {})", tuples.join(", "))
        } else {
            format!("({})", tuples.join(", "))
        };
        let mut sql =
            format!("SELECT {} FROM {} WHERE {lhs} IN {rhs}", self.select_list(&read.select), self.table(&read.table));
        if let Some(filter) = &read.filter {
            sql.push_str(&format!(" AND ({filter})"));
        }
        Query { sql, binds }
    }

    /// `DELETE FROM t WHERE key IN (...)` for `count` keys.
    pub fn delete_by_keys(&self, table: &TableName, key: &[String], count: usize) -> Query {
        let mut binds = Vec::new();
        let width = key.len();
        let mut conditions = Vec::with_capacity(count);
        for k in 0..count {
            let parts: Vec<String> = key
                .iter()
                .enumerate()
                .map(|(i, col)| {
                    binds.push(k * width + i);
                    format!("{} = {}", self.ident(col), self.placeholder(binds.len()))
                })
                .collect();
            conditions.push(format!("({})", parts.join(" AND ")));
        }
        Query { sql: format!("DELETE FROM {} WHERE {}", self.table(table), conditions.join(" OR ")), binds }
    }

    pub fn count(&self, table: &TableName, filter: Option<&str>) -> String {
        match filter {
            Some(f) => format!("SELECT COUNT(*) FROM {} WHERE ({f})", self.table(table)),
            None => format!("SELECT COUNT(*) FROM {}", self.table(table)),
        }
    }

    /// `INSERT INTO t (cols) VALUES (...), (...)` with `rows` tuples.
    pub fn insert(&self, table: &TableName, columns: &[String], rows: usize) -> String {
        let mut n = 0;
        let tuples: Vec<String> = (0..rows)
            .map(|_| {
                let ph: Vec<String> = columns
                    .iter()
                    .map(|_| {
                        n += 1;
                        self.placeholder(n)
                    })
                    .collect();
                format!("({})", ph.join(", "))
            })
            .collect();
        format!("INSERT INTO {} ({}) VALUES {}", self.table(table), self.idents(columns), tuples.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(key: &[&str]) -> ReadSpec {
        ReadSpec {
            table: TableName::parse("t"),
            select: vec![
                SelectItem::Column("a".into()),
                SelectItem::Column("b".into()),
                SelectItem::Expr("lower(c)".into()),
            ],
            key: key.iter().map(|s| s.to_string()).collect(),
            key_positions: (0..key.len()).collect(),
            filter: Some("c <> 'x'".into()),
        }
    }

    #[test]
    fn keyset_per_dialect() {
        let q = POSTGRES.keyset_select(&read(&["a", "b"]), true, 10);
        assert_eq!(
            q.sql,
            r#"SELECT "a", "b", (lower(c)) FROM "t" WHERE (c <> 'x') AND ("a", "b") > ($1, $2) ORDER BY "a", "b" LIMIT 10"#
        );
        assert_eq!(q.binds, [0, 1]);
        let q = MYSQL.keyset_select(&read(&["a", "b"]), true, 10);
        assert_eq!(
            q.sql,
            "SELECT `a`, `b`, (lower(c)) FROM `t` WHERE (c <> 'x') AND `a` >= ? AND ((`a` > ?) OR (`a` = ? AND `b` > ?)) ORDER BY `a`, `b` LIMIT 10"
        );
        assert_eq!(q.binds, [0, 0, 0, 1]);
        let q = SQLITE.keyset_select(&read(&["a"]), false, 5);
        assert_eq!(q.sql, r#"SELECT "a", "b", (lower(c)) FROM "t" WHERE (c <> 'x') ORDER BY "a" LIMIT 5"#);
    }

    #[test]
    fn ranges_per_dialect() {
        let q = POSTGRES.range_select(&read(&["a", "b"]), true, true, 0, 10);
        assert!(q.sql.contains(r#"("a", "b") > ($1, $2) AND ("a", "b") <= ($3, $4)"#), "{}", q.sql);
        assert_eq!(q.binds, [0, 1, 2, 3]);
        let q = MYSQL.range_where(&read(&["a", "b"]), false, true);
        assert_eq!(q.sql, " WHERE (c <> 'x') AND `a` <= ? AND ((`a` < ?) OR (`a` = ? AND `b` <= ?))");
        assert_eq!(q.binds, [2, 2, 2, 3]);
        let q = SQLITE.range_select(&read(&["a"]), true, true, 7, 1);
        assert!(
            q.sql.ends_with(r#"WHERE (c <> 'x') AND "a" > ? AND "a" <= ? ORDER BY "a" LIMIT 1 OFFSET 7"#),
            "{}",
            q.sql
        );
        assert_eq!(q.binds, [0, 1]);
    }

    #[test]
    fn by_keys_per_dialect() {
        let q = SQLITE.select_by_keys(&read(&["a", "b"]), 2);
        assert!(q.sql.contains(r#"WHERE ("a", "b") IN (VALUES (?, ?), (?, ?))"#), "{}", q.sql);
        assert_eq!(q.binds, [0, 1, 2, 3]);
        let q = POSTGRES.select_by_keys(&read(&["a"]), 3);
        assert!(q.sql.contains(r#"WHERE "a" IN ($1, $2, $3)"#), "{}", q.sql);
    }

    #[test]
    fn identifiers_are_escaped() {
        assert_eq!(POSTGRES.ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(MYSQL.ident("we`ird"), "`we``ird`");
        assert_eq!(POSTGRES.table(&TableName::parse("s.t")), r#""s"."t""#);
    }
}
