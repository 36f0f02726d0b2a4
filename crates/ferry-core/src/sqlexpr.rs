//! SQL expressions read from one engine's catalog and written for another:
//! column defaults, CHECK constraints, generated columns, index expressions
//! and predicates.
//!
//! Translation is deliberately conservative. Identifiers are re-quoted (and
//! renamed columns renamed), PostgreSQL's catalog spellings (`::casts`,
//! `= ANY (ARRAY[...])`, `~~`) become portable SQL, and a short list of
//! functions whose meaning is the same on every engine is mapped by name.
//! Anything else between two different engines is refused with the reason,
//! so that the plan can say what was not carried over instead of creating a
//! constraint that means something else.

use crate::schema::{DefaultValue, Literal};
use crate::types::DataType;
use crate::EngineKind;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident {
        name: String,
        quoted: bool,
    },
    Str(String),
    Num(String),
    Op(String),
    Open,
    Close,
    Comma,
    LBracket,
    RBracket,
    /// PostgreSQL `::type`, with the type as written.
    Cast(String),
}

/// Splits SQL of `engine` into tokens; an error names what could not be read.
fn tokenize(sql: &str, engine: EngineKind) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let backslash_escapes =
            engine == EngineKind::Mysql || (matches!(c, 'E' | 'e') && chars.get(i + 1) == Some(&'\''));
        if matches!(c, 'E' | 'e') && chars.get(i + 1) == Some(&'\'') && engine == EngineKind::Postgres {
            i += 1;
        }
        match chars[i] {
            '\'' => {
                let (text, next) = read_quoted(&chars, i, '\'', backslash_escapes)?;
                out.push(Token::Str(text));
                i = next;
            }
            '"' if engine == EngineKind::Mysql => {
                let (text, next) = read_quoted(&chars, i, '"', true)?;
                out.push(Token::Str(text));
                i = next;
            }
            q @ ('"' | '`') => {
                let (name, next) = read_quoted(&chars, i, q, false)?;
                out.push(Token::Ident { name, quoted: true });
                i = next;
            }
            '[' if engine == EngineKind::Sqlite => {
                let end = chars[i..].iter().position(|&c| c == ']').ok_or("an unclosed [identifier]")?;
                out.push(Token::Ident { name: chars[i + 1..i + end].iter().collect(), quoted: true });
                i += end + 1;
            }
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '[' => {
                out.push(Token::LBracket);
                i += 1;
            }
            ']' => {
                out.push(Token::RBracket);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                let (ty, next) = read_cast_type(&chars, i + 2);
                if ty.is_empty() {
                    return Err("a `::` cast without a type".into());
                }
                out.push(Token::Cast(ty));
                i = next;
            }
            c if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                if i < chars.len() && matches!(chars[i], 'e' | 'E') {
                    let mut j = i + 1;
                    if j < chars.len() && matches!(chars[j], '+' | '-') {
                        j += 1;
                    }
                    if j < chars.len() && chars[j].is_ascii_digit() {
                        i = j;
                        while i < chars.len() && chars[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                out.push(Token::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                    i += 1;
                }
                out.push(Token::Ident { name: chars[start..i].iter().collect(), quoted: false });
            }
            _ => {
                const OPERATORS: [&str; 24] = [
                    "!~~*", "!~~", "~~*", "!~*", "->>", "#>>", "<=>", "~~", "!~", "~*", "->", "#>", "<>", "!=", "<=",
                    ">=", "||", "&&", "@>", "<@", "=", "<", ">", "~",
                ];
                const SINGLE: &str = "+-*/%&|^.!";
                let rest: String = chars[i..chars.len().min(i + 4)].iter().collect();
                if let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) {
                    out.push(Token::Op(op.to_string()));
                    i += op.chars().count();
                } else if SINGLE.contains(chars[i]) {
                    out.push(Token::Op(chars[i].to_string()));
                    i += 1;
                } else {
                    return Err(format!("cannot read `{}` in `{sql}`", chars[i]));
                }
            }
        }
    }
    Ok(out)
}

/// A quoted string or identifier starting at `start`; returns its text and the index after it.
fn read_quoted(chars: &[char], start: usize, quote: char, backslash: bool) -> Result<(String, usize), String> {
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if backslash && c == '\\' && i + 1 < chars.len() {
            text.push(match chars[i + 1] {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                '0' => '\0',
                other => other,
            });
            i += 2;
        } else if c == quote && chars.get(i + 1) == Some(&quote) {
            text.push(quote);
            i += 2;
        } else if c == quote {
            return Ok((text, i + 1));
        } else {
            text.push(c);
            i += 1;
        }
    }
    Err(format!("an unclosed {quote}"))
}

/// The type of a `::` cast: words (`character varying`), arguments, `[]`.
fn read_cast_type(chars: &[char], mut i: usize) -> (String, usize) {
    const MORE_WORDS: [&str; 6] = ["varying", "precision", "with", "without", "time", "zone"];
    let mut words: Vec<String> = Vec::new();
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let start = i;
        if i < chars.len() && chars[i] == '"' {
            if let Some(end) = chars[i + 1..].iter().position(|&c| c == '"') {
                i += end + 2;
            }
        } else {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
        }
        let word: String = chars[start..i].iter().collect();
        if word.is_empty() || (!words.is_empty() && !MORE_WORDS.contains(&word.to_ascii_lowercase().as_str())) {
            i = start;
            break;
        }
        words.push(word);
    }
    let mut ty = words.join(" ");
    if i < chars.len() && chars[i] == '(' {
        if let Some(end) = chars[i..].iter().position(|&c| c == ')') {
            ty.extend(&chars[i..=i + end]);
            i += end + 1;
        }
    }
    while i + 1 < chars.len() && chars[i] == '[' && chars[i + 1] == ']' {
        ty.push_str("[]");
        i += 2;
    }
    (ty, i)
}

/// Casts PostgreSQL's catalog adds to plain values, which every engine
/// reads the same without them.
fn is_plain_cast(ty: &str) -> bool {
    let base = ty.split('(').next().unwrap_or("").trim_end_matches("[]").trim().to_ascii_lowercase();
    matches!(
        base.as_str(),
        "text"
            | "character varying"
            | "varchar"
            | "character"
            | "bpchar"
            | "char"
            | "integer"
            | "int"
            | "int4"
            | "bigint"
            | "int8"
            | "smallint"
            | "int2"
            | "numeric"
            | "decimal"
            | "real"
            | "double precision"
            | "boolean"
            | "bool"
    )
}

/// Words every engine reads the same way.
const PORTABLE_WORDS: [&str; 21] = [
    "asc",
    "desc",
    "and",
    "or",
    "not",
    "is",
    "null",
    "in",
    "like",
    "between",
    "true",
    "false",
    "case",
    "when",
    "then",
    "else",
    "end",
    "escape",
    "current_timestamp",
    "current_date",
    "current_time",
];

/// A function whose meaning is the same on every engine, under each engine's name.
struct Function {
    postgres: &'static str,
    mysql: &'static str,
    sqlite: &'static str,
    /// Other spellings read from an engine's catalog.
    aliases: &'static [(EngineKind, &'static str)],
}

impl Function {
    fn name(&self, engine: EngineKind) -> &'static str {
        match engine {
            EngineKind::Postgres => self.postgres,
            EngineKind::Mysql => self.mysql,
            EngineKind::Sqlite => self.sqlite,
        }
    }
}

const FUNCTIONS: &[Function] = &[
    Function { postgres: "lower", mysql: "lower", sqlite: "lower", aliases: &[(EngineKind::Mysql, "lcase")] },
    Function { postgres: "upper", mysql: "upper", sqlite: "upper", aliases: &[(EngineKind::Mysql, "ucase")] },
    Function { postgres: "abs", mysql: "abs", sqlite: "abs", aliases: &[] },
    Function { postgres: "coalesce", mysql: "coalesce", sqlite: "coalesce", aliases: &[(EngineKind::Mysql, "ifnull")] },
    Function { postgres: "nullif", mysql: "nullif", sqlite: "nullif", aliases: &[] },
    Function { postgres: "trim", mysql: "trim", sqlite: "trim", aliases: &[] },
    Function { postgres: "ltrim", mysql: "ltrim", sqlite: "ltrim", aliases: &[] },
    Function { postgres: "rtrim", mysql: "rtrim", sqlite: "rtrim", aliases: &[] },
    Function { postgres: "replace", mysql: "replace", sqlite: "replace", aliases: &[] },
    Function { postgres: "substr", mysql: "substr", sqlite: "substr", aliases: &[(EngineKind::Mysql, "substring")] },
    // Characters, not bytes: MySQL's length() counts bytes.
    Function {
        postgres: "char_length",
        mysql: "char_length",
        sqlite: "length",
        aliases: &[
            (EngineKind::Postgres, "length"),
            (EngineKind::Postgres, "character_length"),
            (EngineKind::Mysql, "character_length"),
        ],
    },
    Function {
        postgres: "octet_length",
        mysql: "octet_length",
        sqlite: "octet_length",
        aliases: &[(EngineKind::Mysql, "length")],
    },
];

fn function(name: &str, engine: EngineKind) -> Option<&'static Function> {
    let lowered = name.to_ascii_lowercase();
    FUNCTIONS
        .iter()
        .find(|f| f.name(engine) == lowered || f.aliases.iter().any(|(e, alias)| *e == engine && *alias == lowered))
}

/// `x = ANY (ARRAY[a, b])` -> `x IN (a, b)`, `x <> ALL (ARRAY[...])` ->
/// `x NOT IN (...)`: PostgreSQL writes every `IN` list this way in its catalog.
fn rewrite_any_array(tokens: Vec<Token>) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let quantifier = match (&tokens[i], tokens.get(i + 1)) {
            (Token::Op(op), Some(Token::Ident { name, quoted: false })) => {
                match (op.as_str(), name.to_ascii_lowercase().as_str()) {
                    ("=", "any") => Some(false),
                    ("<>" | "!=", "all") => Some(true),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(negated) = quantifier {
            if let Some((elements, next)) = array_operand(&tokens, i + 2) {
                if negated {
                    out.push(Token::Ident { name: "NOT".into(), quoted: false });
                }
                out.push(Token::Ident { name: "IN".into(), quoted: false });
                out.push(Token::Open);
                out.extend(elements);
                out.push(Token::Close);
                i = next;
                continue;
            }
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    out
}

/// `((ARRAY[...]))` (casts already removed) at `start`: its elements and the index after it.
fn array_operand(tokens: &[Token], start: usize) -> Option<(Vec<Token>, usize)> {
    let mut i = start;
    let mut opened = 0;
    while tokens.get(i) == Some(&Token::Open) {
        opened += 1;
        i += 1;
    }
    match tokens.get(i) {
        Some(Token::Ident { name, quoted: false }) if name.eq_ignore_ascii_case("array") => {}
        _ => return None,
    }
    if tokens.get(i + 1) != Some(&Token::LBracket) {
        return None;
    }
    let close = i + 2 + tokens[i + 2..].iter().position(|t| *t == Token::RBracket)?;
    let elements = tokens[i + 2..close].to_vec();
    let mut j = close + 1;
    for _ in 0..opened {
        if tokens.get(j) != Some(&Token::Close) {
            return None;
        }
        j += 1;
    }
    Some((elements, j))
}

/// A string literal for `engine`.
pub fn string_literal(engine: EngineKind, text: &str) -> String {
    let mut escaped = text.replace('\'', "''");
    if engine == EngineKind::Mysql {
        escaped = escaped.replace('\\', "\\\\");
    }
    format!("'{escaped}'")
}

/// A value as a SQL literal of `engine`'s dialect: key bounds and sampled
/// keys written into statements Ferry runs.
pub fn value_literal(engine: EngineKind, value: &crate::Value) -> String {
    use crate::Value;
    match value {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::Decimal(d) => d.clone(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Text(t) | Value::Json(t) => string_literal(engine, t),
        Value::Bytes(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            match engine {
                EngineKind::Postgres => format!("'\\x{hex}'::bytea"),
                _ => format!("X'{hex}'"),
            }
        }
        other => string_literal(engine, &other.to_string()),
    }
}

/// A constant as `engine` writes it for a column of type `t`.
pub fn literal_sql(engine: EngineKind, literal: &Literal, t: &DataType) -> String {
    let truth = |b: bool| match (engine, b) {
        (EngineKind::Postgres, true) => "true".to_string(),
        (EngineKind::Postgres, false) => "false".to_string(),
        (_, true) => "1".to_string(),
        (_, false) => "0".to_string(),
    };
    match (t, literal) {
        (DataType::Bool, Literal::Bool(b)) => truth(*b),
        (DataType::Bool, Literal::Number(n)) => truth(n.trim().parse::<f64>().is_ok_and(|v| v != 0.0)),
        (DataType::Bool, Literal::Text(s)) => {
            truth(matches!(s.trim().to_ascii_lowercase().as_str(), "t" | "true" | "1" | "y" | "yes" | "on"))
        }
        (
            DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal { .. },
            _,
        ) => match literal {
            Literal::Number(n) => n.clone(),
            Literal::Text(s) if s.trim().parse::<f64>().is_ok() => s.trim().to_string(),
            Literal::Bool(b) => (*b as u8).to_string(),
            Literal::Text(s) => string_literal(engine, s),
        },
        (_, Literal::Text(s) | Literal::Number(s)) => string_literal(engine, s),
        (_, Literal::Bool(b)) => string_literal(engine, if *b { "true" } else { "false" }),
    }
}

/// Translates an expression of `from`'s SQL into `to`'s. `column` gives
/// the target name of a source column (None: not a column). The error says
/// why it cannot be translated.
pub fn translate(
    sql: &str,
    from: EngineKind,
    to: EngineKind,
    column: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut tokens = tokenize(sql, from)?;
    if from == EngineKind::Postgres && to != EngineKind::Postgres {
        let mut kept = Vec::with_capacity(tokens.len());
        for t in tokens {
            match t {
                Token::Cast(ty) if is_plain_cast(&ty) => {}
                Token::Cast(ty) => {
                    return Err(format!("the cast `::{ty}` has no {} equivalent Ferry knows", to.title()));
                }
                other => kept.push(other),
            }
        }
        tokens = rewrite_any_array(kept);
    }
    let same = from == to;
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        let next_is_call = tokens.get(i + 1) == Some(&Token::Open)
            && !matches!(token, Token::Ident { name, quoted: false } if is_word_operator(name));
        let piece = match token {
            Token::Ident { name, quoted } => {
                let lookup = if *quoted || from != EngineKind::Postgres { name.clone() } else { name.to_lowercase() };
                if let Some(target) = column(&lookup).or_else(|| if *quoted { None } else { column(name) }) {
                    to.ident(&target)
                } else if *quoted {
                    return Err(format!("`{name}` is not a column of the table"));
                } else if next_is_call {
                    if same {
                        name.clone()
                    } else {
                        match function(name, from) {
                            Some(f) => f.name(to).to_string(),
                            None => {
                                return Err(format!(
                                    "the function `{name}` has no {} equivalent Ferry knows",
                                    to.title()
                                ))
                            }
                        }
                    }
                } else if same || PORTABLE_WORDS.contains(&name.to_ascii_lowercase().as_str()) {
                    name.clone()
                } else {
                    return Err(format!(
                        "`{name}` is neither a column the target has nor SQL that {} reads the same way",
                        to.title()
                    ));
                }
            }
            Token::Str(text) => string_literal(to, text),
            Token::Num(n) => n.clone(),
            Token::Op(op) => match (op.as_str(), same) {
                (_, true) => op.clone(),
                ("~~", _) => "LIKE".into(),
                ("!~~", _) => "NOT LIKE".into(),
                ("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=" | "+" | "-" | "*" | "/" | "%" | ".", _) => op.clone(),
                ("||", _) if from != EngineKind::Mysql && to != EngineKind::Mysql => op.clone(),
                _ => return Err(format!("the operator `{op}` means something else on {}", to.title())),
            },
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::LBracket | Token::RBracket if same => {
                if matches!(token, Token::LBracket) {
                    "[".into()
                } else {
                    "]".into()
                }
            }
            Token::LBracket | Token::RBracket => return Err(format!("arrays do not exist on {}", to.title())),
            Token::Cast(ty) => format!("::{ty}"),
        };
        out.push(piece);
    }
    Ok(join(&out))
}

/// Tokens back into text, spaced as people write SQL.
fn join(pieces: &[String]) -> String {
    let mut text = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        let tight = match i.checked_sub(1).map(|p| pieces[p].as_str()) {
            None => true,
            Some(prev) => {
                let call = piece == "("
                    && prev.chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"' || c == '`')
                    && !is_word_operator(prev);
                // A minus that follows an operator or a parenthesis is a sign.
                let signed = i >= 2 && prev == "-" && {
                    let before = pieces[i - 2].as_str();
                    before == "(" || before == "," || !before.chars().any(|c| c.is_alphanumeric() || c == ')')
                };
                matches!(prev, "(" | "." | "[")
                    || matches!(piece.as_str(), ")" | "," | "." | "]")
                    || piece.starts_with("::")
                    || call
                    || signed
                    || (i == 1 && prev == "-")
            }
        };
        if !tight {
            text.push(' ');
        }
        text.push_str(piece);
    }
    text
}

fn is_word_operator(word: &str) -> bool {
    matches!(word.to_ascii_lowercase().as_str(), "in" | "and" | "or" | "not" | "like" | "then" | "else" | "when" | "is")
}

/// The columns an expression reads (unquoted names of `engine`, as the catalog spells them).
pub fn columns_read(sql: &str, engine: EngineKind, is_column: &dyn Fn(&str) -> bool) -> Vec<String> {
    let Ok(tokens) = tokenize(sql, engine) else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if let Token::Ident { name, quoted } = t {
            let name = if *quoted || engine != EngineKind::Postgres { name.clone() } else { name.to_lowercase() };
            if tokens.get(i + 1) != Some(&Token::Open) && is_column(&name) && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The column of an index element `lower(col)` (PostgreSQL writes
/// `lower((col)::text)`), unquoted as `engine` spells it.
pub fn lowered_column(element: &str, engine: EngineKind) -> Option<String> {
    let tokens: Vec<Token> =
        tokenize(element, engine).ok()?.into_iter().filter(|t| !matches!(t, Token::Cast(_))).collect();
    let inner: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Open | Token::Close)).collect();
    match inner.as_slice() {
        [Token::Ident { name: f, quoted: false }, Token::Ident { name, quoted }]
            if f.eq_ignore_ascii_case("lower") && matches!(tokens.get(1), Some(Token::Open)) =>
        {
            Some(if *quoted || engine != EngineKind::Postgres { name.clone() } else { name.to_lowercase() })
        }
        _ => None,
    }
}

/// Reads a column default as an engine's catalog shows it. `None` for a
/// NULL default (the same as none).
pub fn parse_default(sql: &str, engine: EngineKind) -> Option<DefaultValue> {
    let expr = DefaultValue::Expr(sql.trim().to_string());
    let Ok(mut tokens) = tokenize(sql, engine) else { return Some(expr) };
    while tokens.first() == Some(&Token::Open) && tokens.last() == Some(&Token::Close) && wraps_all(&tokens) {
        tokens = tokens[1..tokens.len() - 1].to_vec();
    }
    let cast = match tokens.last() {
        Some(Token::Cast(ty)) => Some(ty.to_ascii_lowercase()),
        _ => None,
    };
    if cast.is_some() {
        tokens.pop();
    }
    let word = |t: &Token| match t {
        Token::Ident { name, quoted: false } => Some(name.to_ascii_lowercase()),
        _ => None,
    };
    let numeric_cast = cast.as_deref().is_some_and(|c| is_plain_cast(c) && !c.contains("char") && c != "text");
    let literal = match tokens.as_slice() {
        [Token::Str(s)] if cast.as_deref().is_some_and(|c| c.starts_with("bool")) => {
            Literal::Bool(matches!(s.to_ascii_lowercase().as_str(), "t" | "true" | "1" | "yes" | "on"))
        }
        [Token::Str(s)] if numeric_cast && s.parse::<f64>().is_ok() => Literal::Number(s.clone()),
        [Token::Str(s)] => Literal::Text(s.clone()),
        [Token::Num(n)] => Literal::Number(n.clone()),
        [Token::Op(op), Token::Num(n)] if op == "-" => Literal::Number(format!("-{n}")),
        [t] if word(t).as_deref() == Some("null") => return None,
        [t] if matches!(word(t).as_deref(), Some("true" | "false")) => {
            Literal::Bool(word(t).as_deref() == Some("true"))
        }
        _ => return Some(time_default(&tokens, &word).unwrap_or(expr)),
    };
    Some(DefaultValue::Literal(literal))
}

/// `now()`, `CURRENT_TIMESTAMP`, `current_timestamp(6)`, `datetime('now')`, `curdate()`, ...
fn time_default(tokens: &[Token], word: &dyn Fn(&Token) -> Option<String>) -> Option<DefaultValue> {
    let name = word(tokens.first()?)?;
    let args = &tokens[1..];
    let no_args = args.is_empty()
        || matches!(args, [Token::Open, Token::Close])
        || matches!(args, [Token::Open, Token::Num(_), Token::Close]);
    let now_arg = matches!(args, [Token::Open, Token::Str(s), Token::Close] if s == "now");
    match name.as_str() {
        "now" | "current_timestamp" | "localtimestamp" | "transaction_timestamp" | "statement_timestamp" if no_args => {
            Some(DefaultValue::CurrentTimestamp)
        }
        "datetime" if now_arg => Some(DefaultValue::CurrentTimestamp),
        "current_date" | "curdate" if no_args => Some(DefaultValue::CurrentDate),
        "date" if now_arg => Some(DefaultValue::CurrentDate),
        _ => None,
    }
}

/// Whether the first `(` closes at the last token.
fn wraps_all(tokens: &[Token]) -> bool {
    let mut depth = 0;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 && i + 1 < tokens.len() {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// The sequence a PostgreSQL `nextval('name'::regclass)` default draws from.
pub fn nextval_sequence(sql: &str) -> Option<String> {
    let tokens = tokenize(sql, EngineKind::Postgres).ok()?;
    match tokens.as_slice() {
        [Token::Ident { name, quoted: false }, Token::Open, Token::Str(seq), rest @ ..]
            if name.eq_ignore_ascii_case("nextval") && matches!(rest.last(), Some(Token::Close)) =>
        {
            Some(seq.clone())
        }
        _ => None,
    }
}

/// Tokens back into `engine`'s SQL, as written (nothing translated).
fn render(tokens: &[Token], engine: EngineKind) -> String {
    let pieces: Vec<String> = tokens
        .iter()
        .map(|t| match t {
            Token::Ident { name, quoted: true } => engine.ident(name),
            Token::Ident { name, quoted: false } | Token::Num(name) | Token::Op(name) => name.clone(),
            Token::Str(text) => string_literal(engine, text),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::LBracket => "[".into(),
            Token::RBracket => "]".into(),
            Token::Cast(ty) => format!("::{ty}"),
        })
        .collect();
    join(&pieces)
}

/// The index of the `)` that closes the `(` at `open`.
fn closing(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_word(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Ident { name, quoted: false }) if name.eq_ignore_ascii_case(word))
}

/// What a `CREATE TABLE` statement says about its columns beyond their
/// types: SQLite keeps CHECKs, collations, AUTOINCREMENT and generation
/// expressions nowhere else.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedTable {
    pub columns: Vec<ParsedColumn>,
    /// Every CHECK, named (`CONSTRAINT name CHECK (...)`) or not, column-level or table-level.
    pub checks: Vec<(Option<String>, String)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedColumn {
    pub name: String,
    pub collation: Option<String>,
    pub autoincrement: bool,
    pub generated: Option<crate::schema::Generated>,
}

/// Reads a `CREATE TABLE` statement of `engine`; `None` when it is not one.
pub fn parse_create_table(sql: &str, engine: EngineKind) -> Option<ParsedTable> {
    let tokens = tokenize(sql, engine).ok()?;
    let open = tokens.iter().position(|t| *t == Token::Open)?;
    let close = closing(&tokens, open)?;
    let mut table = ParsedTable::default();
    let mut start = open + 1;
    let mut depth = 0;
    for i in open + 1..=close {
        match tokens[i] {
            Token::Open => depth += 1,
            Token::Close if depth > 0 => depth -= 1,
            Token::Comma | Token::Close if depth == 0 => {
                parse_table_item(&tokens[start..i], engine, &mut table);
                start = i + 1;
            }
            _ => {}
        }
    }
    Some(table)
}

fn parse_table_item(item: &[Token], engine: EngineKind, table: &mut ParsedTable) {
    let Some(Token::Ident { name, quoted }) = item.first() else { return };
    let constraint_words = ["constraint", "primary", "unique", "check", "foreign"];
    let is_table_constraint = !quoted && constraint_words.contains(&name.to_ascii_lowercase().as_str());
    let mut column = ParsedColumn { name: name.clone(), ..ParsedColumn::default() };
    let mut constraint_name: Option<String> = None;
    let mut i = if is_table_constraint { 0 } else { 1 };
    while i < item.len() {
        if is_word(item.get(i), "constraint") {
            if let Some(Token::Ident { name, .. }) = item.get(i + 1) {
                constraint_name = Some(name.clone());
            }
            i += 2;
        } else if is_word(item.get(i), "check") && item.get(i + 1) == Some(&Token::Open) {
            let Some(end) = closing(item, i + 1) else { return };
            table.checks.push((constraint_name.take(), render(&item[i + 2..end], engine)));
            i = end + 1;
        } else if is_word(item.get(i), "collate") {
            if let Some(Token::Ident { name, .. }) = item.get(i + 1) {
                column.collation = Some(name.clone());
            }
            i += 2;
        } else if is_word(item.get(i), "autoincrement") {
            column.autoincrement = true;
            i += 1;
        } else if is_word(item.get(i), "as") && item.get(i + 1) == Some(&Token::Open) {
            let Some(end) = closing(item, i + 1) else { return };
            let stored = is_word(item.get(end + 1), "stored");
            column.generated = Some(crate::schema::Generated { expr: render(&item[i + 2..end], engine), stored });
            i = end + 1;
        } else if item.get(i) == Some(&Token::Open) {
            // A type's arguments, a DEFAULT (expression) or a key's columns: skip it whole.
            i = closing(item, i).map_or(item.len(), |end| end + 1);
        } else {
            i += 1;
        }
    }
    if !is_table_constraint {
        table.columns.push(column);
    }
}

/// What a `CREATE INDEX` statement indexes, and its `WHERE`.
pub fn parse_create_index(sql: &str, engine: EngineKind) -> Option<(String, Option<String>)> {
    let tokens = tokenize(sql, engine).ok()?;
    let open = tokens.iter().position(|t| *t == Token::Open)?;
    let close = closing(&tokens, open)?;
    let elements = render(&tokens[open + 1..close], engine);
    let predicate = is_word(tokens.get(close + 1), "where").then(|| render(&tokens[close + 2..], engine));
    Some((elements, predicate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use EngineKind::*;

    fn plain(name: &str) -> Option<String> {
        ["status", "token", "email", "score", "n", "revoked", "price"].contains(&name).then(|| name.to_string())
    }

    fn tr(sql: &str, from: EngineKind, to: EngineKind) -> Result<String, String> {
        translate(sql, from, to, &plain)
    }

    #[test]
    fn postgres_catalog_spellings_become_portable() {
        let check = "((status)::text = ANY ((ARRAY['new'::character varying, 'old'::character varying])::text[]))";
        assert_eq!(tr(check, Postgres, Mysql).unwrap(), "((`status`) IN ('new', 'old'))");
        assert_eq!(tr(check, Postgres, Sqlite).unwrap(), r#"(("status") IN ('new', 'old'))"#);
        assert_eq!(tr("(email ~~ '%@%'::text)", Postgres, Mysql).unwrap(), "(`email` LIKE '%@%')");
        assert_eq!(tr("(char_length((token)::text) > 3)", Postgres, Sqlite).unwrap(), r#"(length(("token")) > 3)"#);
        assert_eq!(tr("(NOT revoked)", Postgres, Mysql).unwrap(), "(NOT `revoked`)");
        let not_in = "((status)::text <> ALL ((ARRAY['x'::character varying])::text[]))";
        assert_eq!(tr(not_in, Postgres, Mysql).unwrap(), "((`status`) NOT IN ('x'))");
    }

    #[test]
    fn same_engine_keeps_everything_and_renames() {
        let rename = |c: &str| (c == "email").then(|| "mail".to_string());
        let sql = "(email ~* '^[a-z]+@'::text)";
        assert_eq!(translate(sql, Postgres, Postgres, &rename).unwrap(), r#"("mail" ~* '^[a-z]+@'::text)"#);
        assert_eq!(tr("(n * (2)::numeric)", Postgres, Postgres).unwrap(), r#"("n" * (2)::numeric)"#);
    }

    #[test]
    fn mysql_catalog_spellings() {
        assert_eq!(tr("`status` in ('new','old')", Mysql, Postgres).unwrap(), r#""status" in ('new', 'old')"#);
        assert_eq!(tr("lcase(`email`)", Mysql, Postgres).unwrap(), r#"lower("email")"#);
        assert_eq!(tr("length(`email`) > 3", Mysql, Postgres).unwrap(), r#"octet_length("email") > 3"#);
        assert_eq!(tr("`score` >= 0", Mysql, Sqlite).unwrap(), r#""score" >= 0"#);
        assert_eq!(tr("'it\\'s'", Mysql, Postgres).unwrap(), "'it''s'");
        assert_eq!(tr("'a\\\\b'", Postgres, Mysql).unwrap(), "'a\\\\\\\\b'");
    }

    #[test]
    fn refuses_what_it_cannot_mean_the_same() {
        assert!(tr("(email ~* 'x'::text)", Postgres, Mysql).unwrap_err().contains("operator"));
        assert!(tr("gen_random_uuid()", Postgres, Mysql).unwrap_err().contains("gen_random_uuid"));
        assert!(tr("(now() + '1 day'::interval)", Postgres, Sqlite).unwrap_err().contains("interval"));
        assert!(tr("concat(`email`,' ',`n`)", Mysql, Postgres).unwrap_err().contains("concat"));
        assert!(tr("`a` || `b`", Sqlite, Mysql).is_err());
        assert!(tr("json_valid(`doc`)", Mysql, Sqlite).is_err());
    }

    #[test]
    fn defaults_in_every_catalogs_spelling() {
        let text = |s: &str| Some(DefaultValue::Literal(Literal::Text(s.into())));
        let num = |s: &str| Some(DefaultValue::Literal(Literal::Number(s.into())));
        assert_eq!(parse_default("'new'::character varying", Postgres), text("new"));
        assert_eq!(parse_default("'-1'::integer", Postgres), num("-1"));
        assert_eq!(parse_default("1.5", Postgres), num("1.5"));
        assert_eq!(parse_default("(-1)", Postgres), num("-1"));
        assert_eq!(parse_default("false", Postgres), Some(DefaultValue::Literal(Literal::Bool(false))));
        assert_eq!(parse_default("'{}'::jsonb", Postgres), text("{}"));
        assert_eq!(parse_default("NULL::character varying", Postgres), None);
        assert_eq!(parse_default("now()", Postgres), Some(DefaultValue::CurrentTimestamp));
        assert_eq!(parse_default("CURRENT_TIMESTAMP", Postgres), Some(DefaultValue::CurrentTimestamp));
        assert_eq!(parse_default("current_timestamp(6)", Mysql), Some(DefaultValue::CurrentTimestamp));
        assert_eq!(parse_default("curdate()", Mysql), Some(DefaultValue::CurrentDate));
        assert_eq!(parse_default("'anon'", Mysql), text("anon"));
        assert_eq!(parse_default("'it\\'s'", Mysql), text("it's"));
        assert_eq!(parse_default("0", Mysql), num("0"));
        assert_eq!(parse_default("(datetime('now'))", Sqlite), Some(DefaultValue::CurrentTimestamp));
        assert_eq!(parse_default("'x'", Sqlite), text("x"));
        assert_eq!(
            parse_default("(now() + '1 day'::interval)", Postgres),
            Some(DefaultValue::Expr("(now() + '1 day'::interval)".into()))
        );
        assert_eq!(nextval_sequence("nextval('sessions_id_seq'::regclass)").as_deref(), Some("sessions_id_seq"));
        assert_eq!(nextval_sequence("now()"), None);
    }

    #[test]
    fn sqlite_create_statements() {
        let sql = "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT COLLATE NOCASE NOT NULL \
                   CHECK (length(email) > 3), n INT DEFAULT (1 + 1), total INT GENERATED ALWAYS AS (n * 2) STORED, \
                   \"v\" TEXT AS (lower(email)), CONSTRAINT pos CHECK (n >= 0), UNIQUE (email), CHECK (n < 100))";
        let t = parse_create_table(sql, Sqlite).unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "email", "n", "total", "v"]);
        assert!(t.columns[0].autoincrement);
        assert_eq!(t.columns[1].collation.as_deref(), Some("NOCASE"));
        assert_eq!(t.columns[3].generated.as_ref().map(|g| (g.expr.as_str(), g.stored)), Some(("n * 2", true)));
        assert_eq!(t.columns[4].generated.as_ref().map(|g| (g.expr.as_str(), g.stored)), Some(("lower(email)", false)));
        assert_eq!(
            t.checks,
            vec![(None, "length(email) > 3".into()), (Some("pos".into()), "n >= 0".into()), (None, "n < 100".into())]
        );
        let (elements, predicate) =
            parse_create_index("CREATE UNIQUE INDEX i ON t (lower(email), n DESC) WHERE n > 0", Sqlite).unwrap();
        assert_eq!(elements, "lower(email), n DESC");
        assert_eq!(predicate.as_deref(), Some("n > 0"));
    }

    #[test]
    fn lowered_columns() {
        assert_eq!(lowered_column("lower((email)::text)", Postgres).as_deref(), Some("email"));
        assert_eq!(lowered_column("lower(`Email`)", Mysql).as_deref(), Some("Email"));
        assert_eq!(lowered_column("upper(email)", Postgres), None);
        assert_eq!(lowered_column("lower(a || b)", Postgres), None);
    }

    #[test]
    fn columns_an_expression_reads() {
        assert_eq!(columns_read("lower(email) || n", Postgres, &|c| plain(c).is_some()), ["email", "n"]);
    }
}
