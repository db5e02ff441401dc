//! How deep a statement's expressions nest, read from its tokens before it
//! is parsed (docs/lint.md, "How files are read").

use sqlparser::tokenizer::{Token, TokenWithSpan};

/// The most operators (and parentheses) one expression of a statement may
/// chain: deeper trees are reported as a parse error rather than walked,
/// since walking, printing and dropping sqlparser's tree recurse once per
/// level and a generated `SELECT 1+1+…` of a few thousand terms overflows
/// the stack.
pub const MAX_DEPTH: usize = 200;

/// Words that end one expression and start another (a `CASE` of many
/// `WHEN x = 1 THEN …` is wide, not deep).
const SEPARATORS: &[&str] = &[
    "WHEN",
    "THEN",
    "ELSE",
    "SELECT",
    "FROM",
    "WHERE",
    "SET",
    "VALUES",
    "ON",
    "USING",
    "GROUP",
    "ORDER",
    "HAVING",
    "LIMIT",
    "RETURNING",
    "AS",
    "CHECK",
    "DEFAULT",
];

/// How deep an expression of the statement can nest, from its tokens: the
/// operators chained between commas (and clause keywords), plus the
/// parentheses around them; an over-estimate (`a = 1 AND b = 2` counts 3).
pub fn depth(tokens: &[TokenWithSpan]) -> usize {
    // One counter per open parenthesis; each counts the operators since
    // the last comma at its level.
    let mut levels: Vec<usize> = vec![0];
    let mut total = 0usize;
    let mut deepest = 0usize;
    for t in tokens {
        match &t.token {
            Token::LParen => {
                levels.push(0);
                total += 1;
            }
            Token::RParen => {
                if levels.len() > 1 {
                    let n = levels.pop().unwrap_or(0);
                    total = total.saturating_sub(n + 1);
                }
            }
            // A comma, and a clause or CASE keyword, start a new expression.
            Token::Comma => {
                if let Some(n) = levels.last_mut() {
                    total -= *n;
                    *n = 0;
                }
            }
            Token::Word(w)
                if w.quote_style.is_none()
                    && SEPARATORS.iter().any(|k| w.value.eq_ignore_ascii_case(k)) =>
            {
                if let Some(n) = levels.last_mut() {
                    total -= *n;
                    *n = 0;
                }
            }
            Token::Word(w)
                if w.quote_style.is_none()
                    && ["AND", "OR", "NOT"]
                        .iter()
                        .any(|k| w.value.eq_ignore_ascii_case(k)) =>
            {
                if let Some(n) = levels.last_mut() {
                    *n += 1;
                    total += 1;
                }
            }
            Token::Word(_)
            | Token::Number(..)
            | Token::Whitespace(_)
            | Token::Period
            | Token::SemiColon
            | Token::EOF => {}
            Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_) => {}
            _ => {
                if let Some(n) = levels.last_mut() {
                    *n += 1;
                    total += 1;
                }
            }
        }
        deepest = deepest.max(total);
    }
    deepest
}
