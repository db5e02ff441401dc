//! A migration file as the linter reads it: the runner's markers, psql's
//! meta-commands, and the statements with where each starts.
//!
//! The text is read by sqlparser's tokenizer (the dialect's), so `;` inside
//! strings, dollar quotes (`DO $$ … $$`), quoted names and comments never
//! ends a statement, and a runner's marker is a whole-line `--` comment
//! token ([`super::split`]): everything after a *down* marker (`--
//! migrate:down` of dbmate, `-- +goose Down`, `-- +migrate Down` of
//! sql-migrate) undoes the file, is not what deploys run, and is not read.
//! Before that, lines the tokenizer must not see are blanked (kept as
//! spaces, so every line and column stays where it was): psql
//! meta-commands (`\set`, `\connect`, …) and the mysql client's `DELIMITER
//! //` lines; the delimiter they set, ending a line, becomes `;`. The text
//! is tokenized a window at a time ([`Reader`]), so memory stays bounded.

use sqlparser::dialect::Dialect as SqlDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use super::split::{Pushed, Splitter, Step};

/// A 1-based position in a file (sqlparser's `Location`: line, column in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// One statement of the file: its tokens (whitespace and comments
/// included, without the terminating `;`), where its first word is, and the
/// comments written between the previous statement and it.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub tokens: Vec<TokenWithSpan>,
    pub start: Pos,
    /// `--` comments before the statement: where each starts, and its text
    /// after the `--`.
    pub comments: Vec<(Pos, String)>,
    /// The statement's first word, upper-cased (`ALTER`, `DO`, …).
    pub first_word: String,
}

/// What a runner's markers in the file say about how it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Markers {
    /// The runner wraps the file in a transaction (dbmate's `-- migrate:up`
    /// without `transaction:false`, goose's `-- +goose Up` without
    /// `-- +goose NO TRANSACTION`, sql-migrate's `-- +migrate Up` without
    /// `notransaction`).
    pub runner_transaction: bool,
}

/// The file's statements, one at a time, each with the runner's markers
/// seen before it; `Err` when the tokenizer cannot read the file (an
/// unterminated string or comment), with the message and where.
///
/// The text is tokenized a window at a time (a window ends after the last
/// statement-ending `;` the tokenizer found in it; a window that ends inside
/// a string or comment is grown), so only one window's tokens are held at
/// once, however long the file.
pub fn read(dialect: &dyn SqlDialect, text: &str) -> Result<(Markers, Vec<Chunk>), (Pos, String)> {
    let mut chunks = Vec::new();
    let mut markers = Markers::default();
    for item in Reader::new(dialect, text) {
        let (m, c) = item?;
        markers = m;
        chunks.push(c);
    }
    Ok((markers, chunks))
}

/// The statements of a file, read window by window (see [`read`]).
pub struct Reader<'a> {
    dialect: &'a dyn SqlDialect,
    text: String,
    /// Byte offset of the first character not tokenized yet.
    offset: usize,
    /// Where `offset` is in the file (1-based line and column).
    line: u64,
    column: u64,
    split: Splitter,
    pending: std::collections::VecDeque<(Markers, Chunk)>,
    done: bool,
}

/// Bytes tokenized at once, at first.
const WINDOW: usize = 64 * 1024;

impl<'a> Reader<'a> {
    /// A reader of `text` (psql meta-commands and the mysql client's
    /// `DELIMITER` lines blanked first).
    pub fn new(dialect: &'a dyn SqlDialect, text: &str) -> Reader<'a> {
        Reader {
            dialect,
            text: blank(text),
            offset: 0,
            line: 1,
            column: 1,
            split: Splitter::default(),
            pending: Default::default(),
            done: false,
        }
    }

    /// Tokenizes the next window and queues the statements it ends.
    fn fill(&mut self) -> Result<(), (Pos, String)> {
        let len = self.text.len();
        let mut size = WINDOW;
        loop {
            let mut end = (self.offset + size).min(len);
            while !self.text.is_char_boundary(end) {
                end += 1;
            }
            let last = end == len;
            let window = &self.text[self.offset..end];
            let tokens = match Tokenizer::new(self.dialect, window).tokenize_with_location() {
                Ok(t) => t,
                Err(e) => {
                    // A down marker before the error ends what is read: the
                    // down section, never read, may hold anything.
                    let head = &window[..byte_offset(window, (e.location.line, 1), (1, 1))];
                    match Tokenizer::new(self.dialect, head)
                        .tokenize_with_location()
                        .ok()
                        .filter(|t| reaches_down(self.split.state, t))
                    {
                        Some(t) => t,
                        None if last => {
                            return Err((
                                self.shift(e.location.line, e.location.column),
                                e.message,
                            ));
                        }
                        None => {
                            size *= 2;
                            continue;
                        }
                    }
                }
            };
            // Where the statements this window surely holds end: after the
            // last `;` that ends one (or at a down marker); the whole window
            // when it is the file's end.
            let cut = if last {
                Some(tokens.len())
            } else {
                let mut state = self.split.state;
                let mut cut = None;
                for (i, t) in tokens.iter().enumerate() {
                    match state.step(&t.token) {
                        Step::End => cut = Some(i + 1),
                        Step::Down => {
                            cut = Some(i + 1);
                            break;
                        }
                        _ => {}
                    }
                }
                cut
            };
            let Some(cut) = cut else {
                size *= 2;
                continue;
            };
            let mut next = (self.line, self.column);
            for mut t in tokens.into_iter().take(cut) {
                let (sl, sc) = (t.span.start.line, t.span.start.column);
                let (el, ec) = (t.span.end.line, t.span.end.column);
                let s = self.shift(sl, sc);
                let e = self.shift(el, ec);
                t.span.start.line = s.line;
                t.span.start.column = s.column;
                t.span.end.line = e.line;
                t.span.end.column = e.column;
                next = (e.line, e.column);
                match self.split.push(t) {
                    Pushed::Chunk(c) => self.pending.push_back((self.split.markers, c)),
                    Pushed::Down(c) => {
                        self.pending.extend(c.map(|c| (self.split.markers, c)));
                        self.done = true;
                        return Ok(());
                    }
                    Pushed::None => {}
                }
            }
            if last {
                if let Some(c) = chunk(std::mem::take(&mut self.split.current)) {
                    self.pending.push_back((self.split.markers, c));
                }
                self.done = true;
                return Ok(());
            }
            // The text after the cut starts where the cut's last token ended.
            self.offset += byte_offset(window, next, (self.line, self.column));
            (self.line, self.column) = next;
            return Ok(());
        }
    }

    /// A window's 1-based position as a position in the file.
    fn shift(&self, line: u64, column: u64) -> Pos {
        if line <= 1 {
            Pos {
                line: self.line,
                column: self.column + column.saturating_sub(1),
            }
        } else {
            Pos {
                line: self.line + line - 1,
                column,
            }
        }
    }
}

/// Whether the tokens, split from `state` on, reach a down marker.
fn reaches_down(mut state: super::split::State, tokens: &[TokenWithSpan]) -> bool {
    tokens.iter().any(|t| state.step(&t.token) == Step::Down)
}

/// The byte offset in `window` (which starts at file position `from`) of
/// the file position `to`.
fn byte_offset(window: &str, to: (u64, u64), from: (u64, u64)) -> usize {
    let (mut line, mut column) = from;
    for (i, c) in window.char_indices() {
        if (line, column) >= to {
            return i;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    window.len()
}

impl Iterator for Reader<'_> {
    type Item = Result<(Markers, Chunk), (Pos, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(c) = self.pending.pop_front() {
                return Some(Ok(c));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

/// Blanks psql meta-command lines and the mysql client's `DELIMITER` lines.
fn blank(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut delimiter: Option<String> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        // The mysql client's `DELIMITER //`: a client command, blanked;
        // until `DELIMITER ;`, the new delimiter ending a line ends a statement.
        let mut words = trimmed.split_whitespace();
        let delimiter_command = match (words.next(), words.next()) {
            (Some(w), Some(d)) if w.eq_ignore_ascii_case("delimiter") => Some(d.to_string()),
            _ => None,
        };
        if trimmed.starts_with('\\') || delimiter_command.is_some() {
            out.extend(line.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
            if let Some(d) = delimiter_command {
                delimiter = (d != ";").then_some(d);
            }
        } else if let Some(d) = delimiter
            .as_deref()
            .filter(|d| line.trim_end().ends_with(d))
        {
            // `END //` → `END ; ` (same length: every column stays put).
            let body = line.trim_end();
            let at = body.len() - d.len();
            out.push_str(&body[..at]);
            out.push(';');
            out.extend(std::iter::repeat_n(' ', d.chars().count() - 1));
            out.push_str(&line[body.len()..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

fn is_trivia(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

pub(super) fn chunk(tokens: Vec<TokenWithSpan>) -> Option<Chunk> {
    let first = tokens.iter().position(|t| !is_trivia(&t.token))?;
    let comments = tokens[..first]
        .iter()
        .filter_map(|t| match &t.token {
            Token::Whitespace(Whitespace::SingleLineComment { comment, prefix })
                if prefix == "--" =>
            {
                Some((pos(t), comment.trim().to_string()))
            }
            _ => None,
        })
        .collect();
    let start = pos(&tokens[first]);
    let first_word = match &tokens[first].token {
        Token::Word(w) => w.value.to_ascii_uppercase(),
        other => other.to_string(),
    };
    // Trailing trivia is dropped; the statement's own tokens stay.
    let last = tokens
        .iter()
        .rposition(|t| !is_trivia(&t.token))
        .unwrap_or(first);
    let mut tokens = tokens;
    tokens.truncate(last + 1);
    tokens.drain(..first);
    tokens.shrink_to_fit();
    Some(Chunk {
        tokens,
        start,
        comments,
        first_word,
    })
}

fn pos(t: &TokenWithSpan) -> Pos {
    Pos {
        line: t.span.start.line,
        column: t.span.start.column,
    }
}

impl Chunk {
    /// The statement's text as written (tokens joined), for messages.
    pub fn text(&self) -> String {
        self.tokens.iter().map(|t| t.token.to_string()).collect()
    }

    /// The statement's first line, shortened, for messages.
    pub fn summary(&self) -> String {
        let text = self.text();
        let line = text.lines().next().unwrap_or("").trim();
        if line.chars().count() > 80 {
            let short: String = line.chars().take(77).collect();
            format!("{short}…")
        } else {
            line.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};

    #[test]
    fn statements_keep_their_positions_past_meta_commands_and_dollar_quotes() {
        let sql = "\\set ON_ERROR_STOP on\n-- a note; here\nALTER TABLE a ADD b int;\n  DO $$ BEGIN PERFORM 1; END $$;\nSELECT ';';";
        let (m, chunks) = read(&PostgreSqlDialect {}, sql).expect("reads");
        assert!(!m.runner_transaction);
        let starts: Vec<(u64, u64, &str)> = chunks
            .iter()
            .map(|c| (c.start.line, c.start.column, c.first_word.as_str()))
            .collect();
        assert_eq!(
            starts,
            vec![(3, 1, "ALTER"), (4, 3, "DO"), (5, 1, "SELECT")]
        );
        assert_eq!(
            chunks[0].comments,
            vec![(Pos { line: 2, column: 1 }, "a note; here".to_string())]
        );
    }

    #[test]
    fn the_down_section_is_not_read_and_markers_say_who_wraps_a_transaction() {
        let sql = "-- migrate:up\nCREATE TABLE a (b int);\n-- migrate:down\nDROP TABLE a;\n";
        let (m, chunks) = read(&PostgreSqlDialect {}, sql).expect("reads");
        assert!(m.runner_transaction);
        assert_eq!(chunks.len(), 1);
        let sql = "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY i ON a (b);\n-- +goose Down\nDROP INDEX i;";
        let (m, chunks) = read(&PostgreSqlDialect {}, sql).expect("reads");
        assert!(!m.runner_transaction);
        assert_eq!(chunks.len(), 1);
    }

    #[test]
    fn a_trigger_body_is_one_statement() {
        let sql = "CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET NEW.c = CASE WHEN 1 THEN 2 END; SET NEW.d = 2; END;\nBEGIN;\nSELECT 1;";
        let (_, chunks) = read(&MySqlDialect {}, sql).expect("reads");
        let words: Vec<&str> = chunks.iter().map(|c| c.first_word.as_str()).collect();
        assert_eq!(words, vec!["CREATE", "BEGIN", "SELECT"]);
    }

    #[test]
    fn the_mysql_clients_delimiter_ends_statements() {
        let sql = "DELIMITER //\nCREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW\nBEGIN\n  SET NEW.c = 1;\nEND //\nDELIMITER ;\nALTER TABLE a DROP COLUMN b;";
        let (_, chunks) = read(&MySqlDialect {}, sql).expect("reads");
        let starts: Vec<(u64, &str)> = chunks
            .iter()
            .map(|c| (c.start.line, c.first_word.as_str()))
            .collect();
        assert_eq!(starts, vec![(2, "CREATE"), (7, "ALTER")]);
        // Odd delimiters and text after them do not panic.
        for sql in [
            "DELIMITER  é  x\nSELECT 1 é\n",
            "delimiter $$\nSELECT 1 $$",
            "DELIMITER",
        ] {
            let _ = read(&MySqlDialect {}, sql);
        }
    }

    #[test]
    fn an_unterminated_string_is_an_error_with_its_place() {
        let Err((p, _)) = read(&PostgreSqlDialect {}, "SELECT 1;\nSELECT 'x") else {
            panic!("expected an error");
        };
        assert_eq!(p.line, 2);
    }

    #[test]
    fn a_marker_inside_a_string_or_comment_is_not_a_marker() {
        let sql = "COMMENT ON TABLE a IS '\n-- migrate:down\n';\n/*\n-- +goose Down\n*/\nDROP TABLE a;\n  -- migrate:down\nDROP TABLE b;";
        let (_, chunks) = read(&PostgreSqlDialect {}, sql).expect("reads");
        let words: Vec<&str> = chunks.iter().map(|c| c.first_word.as_str()).collect();
        assert_eq!(words, vec!["COMMENT", "DROP"]);
        assert_eq!(chunks[1].start, Pos { line: 7, column: 1 });
    }

    #[test]
    fn statements_across_windows_keep_their_text_and_positions() {
        // Strings of several KB straddle the window's end at some point.
        let big = "x".repeat(5000);
        let mut sql = String::new();
        let n = 200;
        for i in 0..n {
            sql.push_str(&format!("SELECT '{big}\n{i}'; SELECT {i};\n"));
        }
        let chunks: Vec<Chunk> = Reader::new(&PostgreSqlDialect {}, &sql)
            .map(|r| r.expect("reads").1)
            .collect();
        assert_eq!(chunks.len(), 2 * n);
        for (i, pair) in chunks.chunks(2).enumerate() {
            let line = 2 * i as u64 + 1;
            assert_eq!(pair[0].start, Pos { line, column: 1 });
            assert!(pair[0].text().ends_with(&format!("\n{i}'")), "{i}");
            assert_eq!(
                pair[1].start,
                Pos {
                    line: line + 1,
                    column: 4 + i.to_string().len() as u64
                }
            );
            assert_eq!(pair[1].text(), format!("SELECT {i}"));
        }
    }

    #[test]
    fn an_unreadable_down_section_is_not_read() {
        let sql = "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 'x\n";
        let (_, chunks) = read(&PostgreSqlDialect {}, sql).expect("reads");
        assert_eq!(chunks.len(), 1);
    }
}
