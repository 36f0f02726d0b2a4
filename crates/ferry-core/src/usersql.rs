//! The operator's own SQL — filters, computed columns, `[[check]]` queries,
//! the latency probe, `ferry diff --where` — is spliced into SQL Ferry
//! writes. Before any of it runs, each fragment is read with the engine's
//! dialect of `sqlparser` and must be exactly what its place allows: one
//! expression, or one `SELECT`. No comment (it would hide the generated
//! tail), no `;` (a second statement), no word that writes.

use crate::EngineKind;
use sqlparser::ast::{SetExpr, Statement};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// What a fragment must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment {
    /// A row filter: one boolean expression over the row's columns.
    Filter,
    /// A computed column: one scalar expression over the row's columns.
    Expression,
    /// A `[[check]]` or the latency probe: one `SELECT`.
    Query,
}

impl Fragment {
    fn what(self) -> &'static str {
        match self {
            Fragment::Filter => "one boolean expression (what follows WHERE)",
            Fragment::Expression => "one expression (what could follow SELECT)",
            Fragment::Query => "one SELECT statement",
        }
    }
}

/// Words that change data, schema, privileges or files; none belongs in a
/// fragment Ferry reads with (`FOR UPDATE` takes locks, `INTO` writes a table
/// or, on MySQL, a file).
const WRITING: &[Keyword] = &[
    Keyword::INSERT,
    Keyword::UPDATE,
    Keyword::DELETE,
    Keyword::MERGE,
    Keyword::INTO,
    Keyword::CREATE,
    Keyword::DROP,
    Keyword::ALTER,
    Keyword::TRUNCATE,
    Keyword::GRANT,
    Keyword::REVOKE,
    Keyword::COPY,
    Keyword::CALL,
    Keyword::EXECUTE,
    Keyword::LOCK,
];

fn dialect(engine: EngineKind) -> Box<dyn Dialect> {
    match engine {
        EngineKind::Postgres => Box::new(PostgreSqlDialect {}),
        EngineKind::Mysql => Box::new(MySqlDialect {}),
        EngineKind::Sqlite => Box::new(SQLiteDialect {}),
    }
}

/// Checks that `sql` is exactly one `kind` in `engine`'s dialect; the error
/// says what was found instead (the caller adds where).
pub fn validate(sql: &str, kind: Fragment, engine: EngineKind) -> Result<(), String> {
    let dialect = dialect(engine);
    let refuse = |why: String| Err(format!("must be {}: {why}", kind.what()));
    let tokens = match Tokenizer::new(dialect.as_ref(), sql).tokenize() {
        Ok(tokens) => tokens,
        Err(e) => return refuse(format!("{} cannot read it ({e})", engine.title())),
    };
    for token in &tokens {
        match token {
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => {
                return refuse("it holds a comment, which would hide the SQL Ferry writes after it".into())
            }
            Token::SemiColon => return refuse("it holds `;`, which would start another statement".into()),
            Token::Word(w) if w.quote_style.is_none() && WRITING.contains(&w.keyword) => {
                return refuse(format!("`{}` has no place in SQL Ferry only reads with", w.value))
            }
            // Where the parser and the server may read a token differently
            // (MySQL's `@;` is a variable to one and a statement end to the other).
            other if !is_quoted(other) && hides_a_break(&other.to_string(), engine) => {
                return refuse(format!("`{other}` holds `;` or the start of a comment"))
            }
            _ => {}
        }
    }
    if tokens.iter().all(|t| matches!(t, Token::Whitespace(_))) {
        return refuse("it is empty".into());
    }
    let mut parser = Parser::new(dialect.as_ref()).with_tokens(tokens);
    match kind {
        Fragment::Filter | Fragment::Expression => {
            let parsed = parser.parse_expr().map_err(|e| format!("must be {}: {e}", kind.what()))?;
            if parser.peek_token().token != Token::EOF {
                return refuse(format!("`{parsed}` is followed by `{}`", parser.peek_token().token));
            }
        }
        Fragment::Query => {
            let statements = parser.parse_statements().map_err(|e| format!("must be {}: {e}", kind.what()))?;
            match statements.as_slice() {
                [Statement::Query(query)]
                    if matches!(
                        *query.body,
                        SetExpr::Select(_) | SetExpr::SetOperation { .. } | SetExpr::Values(_) | SetExpr::Query(_)
                    ) => {}
                [other] => return refuse(format!("`{}` is not a SELECT", first_words(&other.to_string()))),
                _ => return refuse(format!("it holds {} statements", statements.len())),
            }
        }
    }
    Ok(())
}

/// A string literal or a quoted identifier: the one place `;` and comment
/// marks are text.
fn is_quoted(token: &Token) -> bool {
    match token {
        Token::Word(w) => w.quote_style.is_some(),
        Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::NationalStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_) => true,
        _ => false,
    }
}

fn hides_a_break(text: &str, engine: EngineKind) -> bool {
    text.contains(';')
        || text.contains("--")
        || text.contains("/*")
        || (engine == EngineKind::Mysql && text.contains('#'))
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGINES: [EngineKind; 3] = [EngineKind::Postgres, EngineKind::Mysql, EngineKind::Sqlite];

    #[test]
    fn accepts_what_people_write() {
        for engine in ENGINES {
            for filter in ["deleted_at IS NULL", "status IN ('a', 'b') AND id > 10", "name = 'it''s -- fine; ok'"] {
                validate(filter, Fragment::Filter, engine).unwrap_or_else(|e| panic!("{engine:?} {filter}: {e}"));
            }
            for expr in ["lower(email)", "price * 100", "CASE WHEN a > 0 THEN 'x' ELSE 'y' END", "coalesce(a, b)"] {
                validate(expr, Fragment::Expression, engine).unwrap_or_else(|e| panic!("{engine:?} {expr}: {e}"));
            }
            let check =
                "SELECT COUNT(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL";
            validate(check, Fragment::Query, engine).unwrap_or_else(|e| panic!("{engine:?}: {e}"));
        }
        validate("split_part(email, '@', 2)", Fragment::Expression, EngineKind::Postgres).unwrap();
        validate("amount::numeric(10,2) > 0", Fragment::Filter, EngineKind::Postgres).unwrap();
        validate("`order` > 0", Fragment::Filter, EngineKind::Mysql).unwrap();
        validate("\"update\" > 0", Fragment::Filter, EngineKind::Postgres).unwrap();
    }

    #[test]
    fn refuses_what_would_escape_its_place() {
        let cases = [
            ("1=1; DROP TABLE t", Fragment::Filter, "`;`"),
            ("1=1 -- ", Fragment::Filter, "comment"),
            ("1=1 /*", Fragment::Filter, "must be one boolean expression"),
            ("1=1 /* x */", Fragment::Filter, "comment"),
            ("a b", Fragment::Expression, "followed by"),
            ("", Fragment::Expression, "empty"),
            ("SELECT 1; DELETE FROM t", Fragment::Query, "`;`"),
            ("DELETE FROM t", Fragment::Query, "`DELETE`"),
            ("SELECT * INTO copy FROM t", Fragment::Query, "`INTO`"),
            ("WITH d AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM d", Fragment::Query, "`DELETE`"),
            ("SELECT 1 FROM t FOR UPDATE", Fragment::Query, "`UPDATE`"),
            ("SHOW TABLES", Fragment::Query, "SELECT"),
            ("id IN (SELECT id FROM t) OR (SELECT set_config('a', 'b', false)) IS NULL", Fragment::Filter, ""),
        ];
        for engine in ENGINES {
            for (sql, kind, why) in cases {
                match validate(sql, kind, engine) {
                    Ok(()) if why.is_empty() => {}
                    Ok(()) => panic!("{engine:?} accepted {sql:?}"),
                    Err(e) => assert!(e.contains(why), "{engine:?} {sql:?}: {e}"),
                }
            }
        }
        let e = validate("1=1 # hidden", Fragment::Filter, EngineKind::Mysql).unwrap_err();
        assert!(e.contains("comment"), "{e}");
        // Found by fuzzing (fuzz/fuzz_targets/user_sql.rs): a token MySQL's server reads otherwise.
        let e = validate("1-@;", Fragment::Filter, EngineKind::Mysql).unwrap_err();
        assert!(e.contains("`;`"), "{e}");
    }
}
