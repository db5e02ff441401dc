//! Splitting a step's SQL into its statements, for MySQL and Postgres.
//!
//! MySQL commits each DDL statement on its own, so a step of several
//! statements that gives way on a lock after its first one has already
//! changed the schema: retrying the whole step would repeat that statement
//! and fail. The executor therefore runs a MySQL step statement by
//! statement and retries only the one that gave way.
//!
//! The split reads the text with sqlparser's tokenizer (its MySQL dialect):
//! string literals (`'…'`, `"…"`, with doubled quotes and backslash
//! escapes), backquoted names and the three comment forms. A compound
//! statement (a trigger, routine or event whose body is `BEGIN … END`, or
//! MariaDB's `BEGIN NOT ATOMIC … END`) has semicolons inside its body: the
//! body is followed to the `END` that closes its `BEGIN` (`END IF`, `END
//! LOOP`, `END WHILE` and `END REPEAT` close no block; `CASE` opens one);
//! text whose bodies do not close that way is not split, and runs as one
//! unit as written.
//!
//! Postgres runs a text of several statements sent at once as one implicit
//! transaction, where `CREATE INDEX CONCURRENTLY` and its kind refuse to
//! run; a step that is not transactional is therefore sent statement by
//! statement too ([`split_postgres`]). That split reads the text with
//! sqlparser's tokenizer (its PostgreSQL dialect): dollar quotes (`$$…$$`,
//! `$tag$…$tag$`), `E'…'` strings with backslash escapes, standard strings
//! with `''`, quoted identifiers, `--` and nested `/* */` comments. Like
//! psql it does not split inside parentheses or inside the `BEGIN … END`
//! body of `CREATE [OR REPLACE] FUNCTION|PROCEDURE … BEGIN ATOMIC`.

use sqlparser::dialect::{Dialect as SqlDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::tokenizer::{Location, Token, Tokenizer};

/// The statements of `sql` as MySQL reads it, trimmed, without their
/// terminating `;` and the comments before them: sqlparser's tokenizer (its
/// MySQL dialect) reads `'…'` and `"…"` strings with doubled quotes and
/// backslash escapes, backquoted names, and `#`, `-- ` and `/* */` comments.
/// The `BEGIN … END` body of a compound statement is kept whole (see the
/// module doc); text whose bodies do not close, or that the tokenizer cannot
/// read, is one unit, as written (the server says what is wrong with it).
pub fn split_mysql(sql: &str) -> Vec<String> {
    match split_checked(&MySqlDialect {}, sql, Body::is_compound) {
        Some(statements) => statements,
        None => single(sql),
    }
}

/// The statements of `sql` as Postgres reads it, trimmed, without their
/// terminating `;` and the comments before them. Text the tokenizer cannot
/// read (an unterminated quote or comment, or an `E'…'` string whose
/// escapes it does not accept, such as bytes over `\x7f`) is one statement,
/// as written: the server says what is wrong with it, or runs it.
pub fn split_postgres(sql: &str) -> Vec<String> {
    split_tokens(&PostgreSqlDialect {}, sql, Body::is_routine)
}

/// The statements of `sql` as SQLite reads it (`'…'` with `''`, `"…"`,
/// `[…]` and backquoted names, `--` and `/* */` comments), like
/// [`split_postgres`]; the `BEGIN … END` body of a `CREATE TRIGGER` is kept
/// whole.
pub fn split_sqlite(sql: &str) -> Vec<String> {
    split_tokens(&SQLiteDialect {}, sql, Body::is_trigger)
}

/// Splits `sql` read by `dialect`'s tokenizer on the `;`s that end a
/// statement; `has_body` says, from a statement's first words, whether its
/// `BEGIN … END` holds statements of its own.
fn split_tokens(dialect: &dyn SqlDialect, sql: &str, has_body: fn(&Body) -> bool) -> Vec<String> {
    split_checked(dialect, sql, has_body).unwrap_or_else(|| single(sql))
}

/// [`split_tokens`], or `None` when the tokenizer cannot read `sql` or a
/// body it opened is still open at the end of the text.
fn split_checked(
    dialect: &dyn SqlDialect,
    sql: &str,
    has_body: fn(&Body) -> bool,
) -> Option<Vec<String>> {
    let tokens = Tokenizer::new(dialect, sql)
        .with_unescape(false)
        .tokenize_with_location()
        .ok()?;
    let lines = LineStarts::new(sql);
    let mut out = Vec::new();
    // Where the current statement's first token starts, once it has one.
    let mut start: Option<usize> = None;
    let mut body = Body::default();
    for t in &tokens {
        match &t.token {
            Token::Whitespace(_) => {}
            Token::SemiColon if body.settle() == 0 && body.parens == 0 => {
                let end = lines.offset(sql, t.span.start);
                if let Some(from) = start.take() {
                    out.push(sql[from..end].trim().to_string());
                }
                body = Body::default();
            }
            token => {
                if start.is_none() {
                    start = Some(lines.offset(sql, t.span.start));
                }
                body.see(token, has_body);
            }
        }
    }
    if body.settle() > 0 {
        return None;
    }
    if let Some(from) = start {
        let last = sql[from..].trim().trim_end_matches(';').trim();
        if !last.is_empty() {
            out.push(last.to_string());
        }
    }
    Some(out)
}

/// psql's rule for a statement's `;` that does not end it: one inside
/// parentheses, or inside the body of `CREATE [OR REPLACE] FUNCTION` or
/// `PROCEDURE` (SQLite: `CREATE TRIGGER`; MySQL: see [`Body::is_compound`])
/// opened by `BEGIN` (a `CASE` within it also ends with `END`; MySQL's
/// `END IF`, `END LOOP`, `END WHILE` and `END REPEAT` end no block).
#[derive(Default)]
struct Body {
    /// The statement's first unquoted words, up to six.
    first: Vec<String>,
    depth: usize,
    parens: usize,
    /// An `END` whose block is known by the word after it.
    end: bool,
    /// The last token was a `.`: the next word is a name (`NEW.end`).
    dot: bool,
    /// The last token leaves an operand to come ([`expects_operand`]).
    operand: bool,
}

/// A token after which an expression's operand comes: an operator, `(`,
/// `,`, or a keyword such as `SET`, `WHERE`, `WHEN`, `THEN`, `SELECT`.
fn expects_operand(token: &Token) -> bool {
    match token {
        Token::Word(w) if w.quote_style.is_none() => matches!(
            w.value.to_ascii_uppercase().as_str(),
            "SET"
                | "WHERE"
                | "WHEN"
                | "THEN"
                | "ELSE"
                | "SELECT"
                | "AND"
                | "OR"
                | "NOT"
                | "ON"
                | "BY"
                | "IS"
                | "IN"
                | "LIKE"
                | "BETWEEN"
                | "RETURN"
                | "INTO"
                | "VALUES"
                | "DISTINCT"
                | "HAVING"
                | "UNTIL"
        ),
        Token::LParen
        | Token::Comma
        | Token::Eq
        | Token::DoubleEq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::Spaceship
        | Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::StringConcat => true,
        // Names, literals, `)`, `;` and the rest end an operand.
        _ => false,
    }
}

impl Body {
    fn see(&mut self, token: &Token, has_body: fn(&Body) -> bool) {
        let dot = std::mem::replace(&mut self.dot, matches!(token, Token::Period));
        // Whether the token before this one leaves an operand to come: an
        // `END` there is a column called `end` (`SET end = 0`, `WHERE end
        // > 1`, `(end)`, `, end`), not the end of a block.
        let operand = std::mem::replace(&mut self.operand, expects_operand(token));
        if self.end {
            self.end = false;
            if let Token::Word(w) = token
                && w.quote_style.is_none()
            {
                match w.value.to_ascii_uppercase().as_str() {
                    // The end of a control statement, counted by none.
                    "IF" | "LOOP" | "WHILE" | "REPEAT" => return,
                    // `END CASE` closes the CASE it names.
                    "CASE" => {
                        self.depth = self.depth.saturating_sub(1);
                        return;
                    }
                    _ => {}
                }
            }
            self.depth = self.depth.saturating_sub(1);
        }
        match token {
            Token::LParen => self.parens += 1,
            Token::RParen => self.parens = self.parens.saturating_sub(1),
            Token::Word(w) if w.quote_style.is_none() && !dot => {
                let word = w.value.to_ascii_uppercase();
                if self.first.len() < 6 {
                    self.first.push(word.clone());
                }
                if !has_body(self) || self.parens > 0 {
                    return;
                }
                match word.as_str() {
                    "BEGIN" => self.depth += 1,
                    // MariaDB's anonymous block: its BEGIN opened the statement.
                    "ATOMIC" if self.first == ["BEGIN", "NOT", "ATOMIC"] => self.depth += 1,
                    "CASE" if self.depth > 0 => self.depth += 1,
                    "END" if !operand => self.end = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Closes the block of an `END` seen last; the depth after it.
    fn settle(&mut self) -> usize {
        if std::mem::take(&mut self.end) {
            self.depth = self.depth.saturating_sub(1);
        }
        self.depth
    }

    /// MySQL/MariaDB: `CREATE … TRIGGER | PROCEDURE | FUNCTION | EVENT`
    /// (with `OR REPLACE`, `DEFINER = …`, `IF NOT EXISTS` between), or
    /// MariaDB's `BEGIN NOT ATOMIC`.
    fn is_compound(&self) -> bool {
        let w = |i: usize| self.first.get(i).map_or("", String::as_str);
        (w(0) == "CREATE"
            && self.first[1..]
                .iter()
                .any(|x| matches!(x.as_str(), "TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT")))
            || (w(0) == "BEGIN" && w(1) == "NOT" && w(2) == "ATOMIC")
    }

    fn is_routine(&self) -> bool {
        let w = |i: usize| self.first.get(i).map_or("", String::as_str);
        let routine = |s: &str| s == "FUNCTION" || s == "PROCEDURE";
        w(0) == "CREATE" && (routine(w(1)) || (w(1) == "OR" && w(2) == "REPLACE" && routine(w(3))))
    }

    /// `CREATE [TEMP|TEMPORARY] TRIGGER`.
    fn is_trigger(&self) -> bool {
        let w = |i: usize| self.first.get(i).map_or("", String::as_str);
        w(0) == "CREATE"
            && (w(1) == "TRIGGER" || ((w(1) == "TEMP" || w(1) == "TEMPORARY") && w(2) == "TRIGGER"))
    }
}

/// Byte offsets of line starts, to turn the tokenizer's line and column
/// (1-based, counted in characters) into a byte offset.
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn new(sql: &str) -> LineStarts {
        let mut v = vec![0];
        v.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        LineStarts(v)
    }

    fn offset(&self, sql: &str, at: Location) -> usize {
        let line = usize::try_from(at.line.saturating_sub(1)).unwrap_or(usize::MAX);
        let Some(&from) = self.0.get(line) else {
            return sql.len();
        };
        let column = usize::try_from(at.column.saturating_sub(1)).unwrap_or(usize::MAX);
        sql[from..]
            .char_indices()
            .nth(column)
            .map_or(sql.len(), |(i, _)| from + i)
    }
}

/// `sql` split into statements the way `dialect` reads it (see the
/// module doc for how each dialect is split).
pub fn split(dialect: super::Dialect, sql: &str) -> Vec<String> {
    match dialect {
        super::Dialect::Postgres => split_postgres(sql),
        super::Dialect::Mysql => split_mysql(sql),
        super::Dialect::Sqlite => split_sqlite(sql),
    }
}

/// Whether running `sql` on MySQL commits by itself: any statement but
/// plain data changes and reads (DDL, and anything phasegate cannot tell,
/// such as `CALL`) ends the open transaction, so it cannot share one with
/// the event that records it.
pub fn mysql_commits_implicitly(sql: &str) -> bool {
    const DATA: &[&str] = &[
        "INSERT", "UPDATE", "DELETE", "REPLACE", "SELECT", "WITH", "DO", "SET", "VALUES", "TABLE",
    ];
    split_mysql(sql).iter().any(|statement| {
        let word: String = statement
            .lines()
            .map(str::trim)
            .filter(|l| !(l.starts_with("-- ") || l.starts_with('#') || l.is_empty()))
            .flat_map(|l| l.chars())
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        !DATA.iter().any(|d| d.eq_ignore_ascii_case(&word))
    })
}

fn single(sql: &str) -> Vec<String> {
    let s = sql.trim().trim_end_matches(';').trim();
    if s.is_empty() {
        Vec::new()
    } else {
        vec![s.to_string()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_literals_names_and_comments() {
        let sql = "ALTER TABLE `a;b` ADD COLUMN `c` int DEFAULT 'x;''y\\';z';\n-- a note; with a semicolon\nCREATE TRIGGER `t` BEFORE INSERT ON `a;b` FOR EACH ROW SET NEW.`c` = \"q;\"; # trailing; comment\n/* block; */";
        let got = split_mysql(sql);
        assert_eq!(
            got,
            vec![
                "ALTER TABLE `a;b` ADD COLUMN `c` int DEFAULT 'x;''y\\';z'",
                "CREATE TRIGGER `t` BEFORE INSERT ON `a;b` FOR EACH ROW SET NEW.`c` = \"q;\"",
            ],
            "{got:#?}"
        );
    }

    #[test]
    fn a_compound_body_is_one_unit() {
        let sql = "CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET NEW.c = 1; SET NEW.d = 2; END;";
        assert_eq!(split_mysql(sql), vec![sql.trim_end_matches(';')]);
        // A transaction's BEGIN opens its statement and is split as usual.
        assert_eq!(
            split_mysql("BEGIN; UPDATE a SET c = 1; COMMIT"),
            vec!["BEGIN", "UPDATE a SET c = 1", "COMMIT"]
        );
    }

    #[test]
    fn compound_statements_split_at_the_end_of_their_body() {
        let trigger = "CREATE DEFINER = `root`@`localhost` TRIGGER `t` BEFORE UPDATE ON a FOR EACH ROW\n\
                       lbl: BEGIN\n\
                         IF @m IS NULL THEN SET NEW.c = IF(NEW.d > 0, 1, 2); ELSEIF NEW.end = 1 THEN SET NEW.c = 3; END IF;\n\
                         CASE NEW.d WHEN 1 THEN SET NEW.e = CASE WHEN NEW.f THEN 1 END; ELSE BEGIN END; END CASE;\n\
                         WHILE NEW.c < 0 DO SET NEW.c = NEW.c + 1; END WHILE;\n\
                         REPEAT SET NEW.c = NEW.c - 1; UNTIL NEW.c < 9 END REPEAT;\n\
                         l2: LOOP LEAVE l2; END LOOP l2;\n\
                       END lbl";
        let anonymous = "BEGIN NOT ATOMIC IF 1 THEN SELECT 1; END IF; END";
        let sql = format!(
            "DROP TRIGGER IF EXISTS `t`;\n{trigger};\nALTER TABLE a ADD COLUMN g int;\n{anonymous};\nCREATE PROCEDURE p() SELECT 1;\nCREATE OR REPLACE FUNCTION f() RETURNS int BEGIN RETURN 1; END"
        );
        let got = split_mysql(&sql);
        assert_eq!(
            got,
            vec![
                "DROP TRIGGER IF EXISTS `t`",
                trigger,
                "ALTER TABLE a ADD COLUMN g int",
                anonymous,
                "CREATE PROCEDURE p() SELECT 1",
                "CREATE OR REPLACE FUNCTION f() RETURNS int BEGIN RETURN 1; END",
            ],
            "{got:#?}"
        );
        // `end` as a column inside a body; MariaDB's anonymous block.
        let procedure = "CREATE PROCEDURE p3() BEGIN UPDATE e2 SET end = 0 WHERE end > 1 OR (end) IS NULL; SELECT end, CASE WHEN id > 0 THEN 1 END, id FROM e2; END";
        assert_eq!(
            split_mysql(&format!(
                "CREATE TABLE e2 (id int primary key, end int);\n{procedure};\nSELECT 1"
            )),
            vec![
                "CREATE TABLE e2 (id int primary key, end int)",
                procedure,
                "SELECT 1"
            ]
        );
        // A body that never closes: the text runs as one unit, as written.
        let open = "ALTER TABLE a ADD COLUMN g int; CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET NEW.c = 1;";
        assert_eq!(split_mysql(open), vec![open.trim_end_matches(';')]);
    }

    #[test]
    fn ddl_commits_implicitly_and_data_changes_do_not() {
        assert!(!mysql_commits_implicitly(
            "-- fix the rows\nUPDATE a SET c = 1; INSERT INTO b VALUES (1)"
        ));
        assert!(mysql_commits_implicitly(
            "UPDATE a SET c = 1; ALTER TABLE a ADD COLUMN d int"
        ));
        assert!(mysql_commits_implicitly("CALL tidy_up()"));
    }

    #[test]
    fn postgres_splits_outside_quotes_names_and_comments() {
        let sql = "CREATE INDEX CONCURRENTLY \"a;b\" ON t (c);\n\
                   -- a note; with a semicolon\n\
                   /* outer /* nested; */ still; comment */ CREATE INDEX CONCURRENTLY i2 ON t (d);\n\
                   UPDATE t SET s = 'it''s; fine', e = E'x\\'; y', f = 'back\\';\n\
                   SELECT 1 -- trailing; comment\n";
        let got = split_postgres(sql);
        assert_eq!(
            got,
            vec![
                "CREATE INDEX CONCURRENTLY \"a;b\" ON t (c)",
                "CREATE INDEX CONCURRENTLY i2 ON t (d)",
                "UPDATE t SET s = 'it''s; fine', e = E'x\\'; y', f = 'back\\'",
                "SELECT 1 -- trailing; comment",
            ],
            "{got:#?}"
        );
    }

    #[test]
    fn postgres_dollar_quotes_hold_semicolons() {
        let sql = "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\n\
                   BEGIN NEW.c := 'x;'; RETURN NEW; END\n$$;\n\
                   DO $body$ BEGIN PERFORM 1; /* ; */ END $body$;\n\
                   SELECT $a$ $$ ; $b$ $a$";
        let got = split_postgres(sql);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].ends_with("RETURN NEW; END\n$$"), "{got:#?}");
        assert_eq!(got[1], "DO $body$ BEGIN PERFORM 1; /* ; */ END $body$");
        assert_eq!(got[2], "SELECT $a$ $$ ; $b$ $a$");
    }

    #[test]
    fn postgres_keeps_atomic_bodies_and_parentheses_whole() {
        let sql = "CREATE OR REPLACE FUNCTION g(x int) RETURNS int LANGUAGE sql\n\
                   BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END; SELECT 2; END;\n\
                   CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO u VALUES (1); INSERT INTO u VALUES (2));\n\
                   BEGIN; SELECT 'ü;'; COMMIT";
        let got = split_postgres(sql);
        assert_eq!(
            got,
            vec![
                "CREATE OR REPLACE FUNCTION g(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END; SELECT 2; END",
                "CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO u VALUES (1); INSERT INTO u VALUES (2))",
                "BEGIN",
                "SELECT 'ü;'",
                "COMMIT",
            ],
            "{got:#?}"
        );
    }

    #[test]
    fn postgres_operators_and_casts_do_not_stop_the_split() {
        let sql = "CREATE INDEX CONCURRENTLY i ON t USING gin (j jsonb_path_ops) WHERE j @> '{}' AND j #>> '{a}' ~* 'x' AND a && b AND j ? 'k' AND j ?| array['a'] AND p <-> q < 1 AND n::text !~~ '%;' AND e = $1;\n\
                   CREATE INDEX CONCURRENTLY k ON \"S\".\"t;\"\"x\" (lower(\"c\"), (a || ';'))";
        let got = split_postgres(sql);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].ends_with("AND e = $1"), "{got:#?}");
    }

    #[test]
    fn postgres_text_it_cannot_read_is_one_statement() {
        assert_eq!(
            split_postgres("SELECT E'\\xC3\\xA9;'; SELECT 2;"),
            vec!["SELECT E'\\xC3\\xA9;'; SELECT 2"]
        );
        assert_eq!(
            split_postgres("SELECT 'open; SELECT 2"),
            vec!["SELECT 'open; SELECT 2"]
        );
        assert!(split_postgres(" -- only a comment;\n ; ").is_empty());
    }

    #[test]
    fn sqlite_keeps_trigger_bodies_whole() {
        let sql = "CREATE TEMP TRIGGER t AFTER INSERT ON [a;b] BEGIN\n\
                   UPDATE \"a;b\" SET c = CASE WHEN 1 THEN 'x;''y' END; DELETE FROM `q;`; END;\n\
                   -- between; statements\n\
                   VACUUM; /* tail; */";
        assert_eq!(
            split_sqlite(sql),
            vec![
                "CREATE TEMP TRIGGER t AFTER INSERT ON [a;b] BEGIN\nUPDATE \"a;b\" SET c = CASE WHEN 1 THEN 'x;''y' END; DELETE FROM `q;`; END",
                "VACUUM",
            ]
        );
    }

    #[test]
    fn minus_minus_without_a_space_is_an_operator() {
        assert_eq!(
            split_mysql("UPDATE a SET c = 1--1; SELECT 1"),
            vec!["UPDATE a SET c = 1--1", "SELECT 1"]
        );
    }
}
