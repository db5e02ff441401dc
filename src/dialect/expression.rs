//! Whether an SQL expression from a plan is exactly one expression, read the
//! way each database reads it.
//!
//! A plan's defaults, checks, index predicates, backfill, `using`, `reverse`
//! and `down` expressions are SQL on purpose, so they reach statements
//! unquoted. What keeps them to one expression is this check: the text is
//! read with sqlparser's tokenizer in each dialect phasegate generates SQL
//! for (its PostgreSQL, MySQL and SQLite dialects: dollar quotes, `E'…'`
//! strings, backslash escapes in MySQL strings, `#`, `--` and nested
//! `/* */` comments, backquoted and bracketed names), and refused when any of
//! them finds
//!
//! - text it cannot read (an unterminated string, quoted name or comment),
//! - a `;` outside quotes (the end of a statement),
//! - a comment (which could hide the rest of the statement phasegate builds),
//! - parentheses that close one more than they open (which would leave the
//!   `CHECK (…)` or `DEFAULT (…)` around the expression), or that stay open,
//! - a dollar-quoted string in MySQL or SQLite (only Postgres has them; MySQL
//!   and SQLite would read the `$`s as names and the body as SQL),
//! - a backslash outside quotes (a psql meta-command, never SQL).
//!
//! Each step's text is also split into statements the way the executor
//! splits it ([`super::statements`]); an expression must stay one statement
//! there too.
//!
//! The plan's dialect is not known when a plan file is read, so an
//! expression must be one expression in every dialect. A Postgres-only form
//! that another dialect cannot read (`E'it\'s'`: SQLite sees an unterminated
//! string) is refused; `E'it''s'` means the same and reads everywhere.

use sqlparser::dialect::{Dialect as SqlDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use super::Dialect;
use super::statements;

/// Why `text` is not one expression in `dialect`: what was found, in words.
pub fn check_expression(dialect: Dialect, text: &str) -> Result<(), String> {
    let reader: &dyn SqlDialect = match dialect {
        Dialect::Postgres => &PostgreSqlDialect {},
        Dialect::Mysql => &MySqlDialect {},
        Dialect::Sqlite => &SQLiteDialect {},
    };
    let tokens = Tokenizer::new(reader, text)
        .with_unescape(false)
        .tokenize()
        .map_err(|e| format!("{dialect} cannot read it: {}", e.message))?;
    let mut depth: usize = 0;
    for token in &tokens {
        match token {
            Token::SemiColon => {
                return Err(format!(
                    "{dialect} reads a `;` outside quotes, which would end the statement"
                ));
            }
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_)) => {
                return Err(format!("{dialect} reads a comment in it"));
            }
            Token::DollarQuotedString(_) if dialect != Dialect::Postgres => {
                return Err(format!(
                    "it holds a dollar-quoted string, which {dialect} does not have"
                ));
            }
            Token::Backslash => {
                return Err(format!("{dialect} reads a `\\` outside quotes"));
            }
            Token::CopyData { .. } => {
                return Err(format!("{dialect} reads COPY data in it"));
            }
            Token::LParen => depth += 1,
            Token::RParen => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    format!("{dialect} reads a `)` that closes more than the expression opened")
                })?;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("{dialect} reads a `(` that is never closed"));
    }
    let split = match dialect {
        Dialect::Postgres => statements::split_postgres(text),
        Dialect::Mysql => statements::split_mysql(text),
        Dialect::Sqlite => statements::split_sqlite(text),
    };
    if split.len() != 1 {
        return Err(format!(
            "phasegate's {dialect} statement splitter reads {} statements in it",
            split.len()
        ));
    }
    Ok(())
}

/// [`check_expression`] in every dialect, and no control characters but
/// tab, line feed and carriage return (no database takes a NUL in a
/// statement, and phasegate's templates mark their dollar-quote tags with
/// one). The first refusal is returned.
pub fn check_expression_everywhere(text: &str) -> Result<(), String> {
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!("it holds the control character U+{:04X}", c as u32));
    }
    Dialect::ALL
        .iter()
        .try_for_each(|d| check_expression(*d, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_expression_passes_everywhere() {
        for ok in [
            "now()",
            "'a;b'",
            "'it''s'",
            "E'\\n'",
            "CASE WHEN a > 0 THEN 'x' ELSE 'y' END",
            "'pending'::text",
            "(a + 1) * 2",
            "lower(email)",
        ] {
            assert_eq!(check_expression_everywhere(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn a_second_statement_is_refused_in_the_dialect_that_sees_it() {
        let e_string = "E'\\'' ; CREATE TABLE pwned(); SELECT E'\\''";
        assert!(check_expression(Dialect::Postgres, e_string).is_err());
        let dollar = "$$ x $$; CREATE TABLE pwned(); SELECT $$ y $$";
        assert!(check_expression(Dialect::Postgres, dollar).is_err());
        // One string to Postgres, a `;` between two names to MySQL.
        let hidden = "$$ ; CREATE TABLE pwned(x int); $$";
        assert_eq!(check_expression(Dialect::Postgres, hidden), Ok(()));
        assert!(check_expression(Dialect::Mysql, hidden).is_err());
        assert!(check_expression_everywhere(hidden).is_err());
        // MySQL reads `\'` as an escaped quote.
        let backslash = "'\\'' ; CREATE TABLE pwned(x int); SELECT '\\''";
        assert!(check_expression(Dialect::Mysql, backslash).is_err());
        assert!(check_expression_everywhere("1 # c").is_err());
        assert!(check_expression_everywhere("1) NOT VALID, ADD CHECK (true").is_err());
        assert!(check_expression_everywhere("1\u{0}").is_err());
    }
}
