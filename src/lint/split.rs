//! Where a file's statements end, token by token: `;`s outside parentheses
//! and outside a trigger's or routine's `BEGIN … END` body; and the
//! runner's markers, whole-line `--` comment tokens (docs/lint.md, "How
//! files are read").

use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

use super::source::{Chunk, Markers, chunk};

/// A runner's marker, when `comment` (a whole-line `--` comment's text
/// after the `--`) is one.
fn marker(comment: &str) -> Option<Marker> {
    let squeezed = comment
        .to_ascii_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if squeezed.starts_with("migrate:down")
        || squeezed.starts_with("+goose down")
        || squeezed.starts_with("+migrate down")
    {
        Some(Marker::Down)
    } else if squeezed.starts_with("migrate:up") {
        Some(Marker::Up(!squeezed.contains("transaction:false")))
    } else if squeezed.starts_with("+goose up") || squeezed.starts_with("+migrate up") {
        Some(Marker::Up(!squeezed.contains("notransaction")))
    } else if squeezed.starts_with("+goose no transaction") {
        Some(Marker::NoTransaction)
    } else {
        None
    }
}

pub(super) enum Marker {
    Down,
    Up(bool),
    NoTransaction,
}

/// What one token does to the statement being split.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Token,
    End,
    Down,
    Marker,
}

/// The splitter's counters: `;`s outside parentheses and outside the
/// `BEGIN … END` body of a trigger or routine end a statement; a
/// whole-line `--` comment may be a runner's marker.
#[derive(Debug, Clone, Copy)]
pub(super) struct State {
    parens: i32,
    body: i32,
    words: usize,
    after_end: bool,
    line_start: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            parens: 0,
            body: 0,
            words: 0,
            after_end: false,
            line_start: true,
        }
    }
}

impl State {
    pub(super) fn step(&mut self, t: &Token) -> Step {
        let line_start = self.line_start;
        match t {
            Token::Whitespace(Whitespace::Newline) => {
                self.line_start = true;
                return Step::Token;
            }
            Token::Whitespace(Whitespace::SingleLineComment { comment, prefix }) => {
                // The comment's token holds its line's end.
                self.line_start = true;
                if line_start && prefix == "--" {
                    return match marker(comment) {
                        Some(Marker::Down) => Step::Down,
                        Some(_) => Step::Marker,
                        None => Step::Token,
                    };
                }
                return Step::Token;
            }
            Token::Whitespace(Whitespace::Space | Whitespace::Tab) => return Step::Token,
            Token::Whitespace(_) => {
                self.line_start = false;
                return Step::Token;
            }
            _ => self.line_start = false,
        }
        match t {
            Token::EOF => return Step::Token,
            Token::SemiColon if self.parens <= 0 && self.body <= 0 => {
                *self = State {
                    line_start: false,
                    ..State::default()
                };
                return Step::End;
            }
            Token::LParen => self.parens += 1,
            Token::RParen => self.parens -= 1,
            Token::Word(w) if w.quote_style.is_none() => {
                let v = w.value.to_ascii_uppercase();
                let was_after_end = self.after_end;
                self.after_end = false;
                match v.as_str() {
                    // A BEGIN that opens its statement is a transaction's.
                    "BEGIN" if self.words > 0 => self.body += 1,
                    "CASE" if !was_after_end && self.body > 0 => self.body += 1,
                    "END" if self.body > 0 => {
                        self.body -= 1;
                        self.after_end = true;
                    }
                    _ => {}
                }
                self.words += 1;
            }
            _ => {
                self.after_end = false;
                self.words += 1;
            }
        }
        Step::Token
    }
}

/// The statement being split, and the markers seen so far.
#[derive(Default)]
pub(super) struct Splitter {
    pub(super) state: State,
    pub(super) current: Vec<TokenWithSpan>,
    pub(super) markers: Markers,
    /// `-- +goose NO TRANSACTION` was seen: a later `-- +goose Up` does not
    /// turn the runner's transaction back on.
    no_transaction: bool,
}

pub(super) enum Pushed {
    None,
    Chunk(Chunk),
    /// The down marker: the statement before it, if any; nothing after it is read.
    Down(Option<Chunk>),
}

impl Splitter {
    pub(super) fn push(&mut self, t: TokenWithSpan) -> Pushed {
        match self.state.step(&t.token) {
            Step::End => {
                chunk(std::mem::take(&mut self.current)).map_or(Pushed::None, Pushed::Chunk)
            }
            Step::Down => Pushed::Down(chunk(std::mem::take(&mut self.current))),
            Step::Marker => {
                if let Token::Whitespace(Whitespace::SingleLineComment { comment, .. }) = &t.token {
                    match marker(comment) {
                        Some(Marker::Up(tx)) => {
                            self.markers.runner_transaction = tx && !self.no_transaction;
                        }
                        Some(Marker::NoTransaction) => {
                            self.no_transaction = true;
                            self.markers.runner_transaction = false;
                        }
                        _ => {}
                    }
                }
                self.current.push(t);
                Pushed::None
            }
            Step::Token => {
                if !matches!(t.token, Token::EOF) {
                    self.current.push(t);
                }
                Pushed::None
            }
        }
    }
}
