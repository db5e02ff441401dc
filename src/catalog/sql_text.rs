//! Just enough SQL lexing to work with definitions a database stores as
//! text: which columns an expression mentions, a copy of an expression that
//! refers to another column, the CHECK constraints in SQLite's `CREATE TABLE`
//! text, and the `WHERE` of a partial index.
//!
//! This is not a parser. It knows string literals, quoted identifiers,
//! comments, parentheses, `::type` casts, `CAST(… AS type)`, `COLLATE name`
//! and function calls, which is what tells a column reference apart from the
//! other words of an expression. Anything it rewrites is checked again by the
//! database when the step that uses it runs.

/// One token of SQL text, with its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bare word: an identifier or a keyword, as written.
    Word(String),
    /// A quoted identifier, unescaped (`"a""b"` → `a"b`).
    Quoted(String),
    /// A string, number or dollar-quoted literal.
    Literal,
    /// `::`
    Cast,
    /// Any other single character (`(`, `)`, `,`, `.`, operators).
    Punct(char),
}

impl Token {
    /// The identifier this token names, if it is a word or a quoted name.
    fn name(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(w) | Kind::Quoted(w) => Some(w),
            _ => None,
        }
    }

    fn is_word(&self, keyword: &str) -> bool {
        matches!(&self.kind, Kind::Word(w) if w.eq_ignore_ascii_case(keyword))
    }

    fn is(&self, c: char) -> bool {
        self.kind == Kind::Punct(c)
    }
}

/// Which database's rules for quoting and identifier case apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Text as Postgres deparses it: unquoted names are lower case.
    Postgres,
    /// Text as written in SQLite: names compare case-insensitively, and
    /// `` `x` `` and `[x]` quote names too.
    Sqlite,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Splits SQL text into tokens (whitespace and comments dropped).
pub(crate) fn tokens(sql: &str, flavor: Flavor) -> Vec<Token> {
    let chars: Vec<(usize, char)> = sql.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(sql.len(), |&(b, _)| b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let next = chars.get(i + 1).map(|&(_, c)| c);
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i].1 != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len()
                && !(chars[i].1 == '*' && chars.get(i + 1).map(|c| c.1) == Some('/'))
            {
                i += 1;
            }
            i = (i + 2).min(chars.len());
            continue;
        }
        // E'…' (backslash escapes) on Postgres.
        let escape_string =
            flavor == Flavor::Postgres && (c == 'E' || c == 'e') && next == Some('\'');
        if c == '\'' || escape_string {
            if escape_string {
                i += 1;
            }
            i += 1;
            while i < chars.len() {
                match chars[i].1 {
                    '\\' if escape_string => i += 2,
                    '\'' if chars.get(i + 1).map(|c| c.1) == Some('\'') => i += 2,
                    '\'' => break,
                    _ => i += 1,
                }
            }
            i = (i + 1).min(chars.len());
            out.push(Token {
                kind: Kind::Literal,
                start,
                end: end_of(i),
            });
            continue;
        }
        let close = match c {
            '"' => Some('"'),
            '`' if flavor == Flavor::Sqlite => Some('`'),
            '[' if flavor == Flavor::Sqlite => Some(']'),
            _ => None,
        };
        if let Some(close) = close {
            let mut name = String::new();
            i += 1;
            while i < chars.len() {
                let ch = chars[i].1;
                if ch == close {
                    if close != ']' && chars.get(i + 1).map(|c| c.1) == Some(close) {
                        name.push(close);
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(ch);
                i += 1;
            }
            i = (i + 1).min(chars.len());
            out.push(Token {
                kind: Kind::Quoted(name),
                start,
                end: end_of(i),
            });
            continue;
        }
        if c == '$' && flavor == Flavor::Postgres {
            // $tag$ … $tag$, or a parameter $1.
            let rest = &sql[start..];
            if let Some(tag_end) = rest[1..].find('$') {
                let tag = &rest[..tag_end + 2];
                if tag[1..tag.len() - 1].chars().all(is_ident_char) {
                    let body = &rest[tag.len()..];
                    let stop = body
                        .find(tag)
                        .map_or(sql.len(), |p| start + tag.len() + p + tag.len());
                    while i < chars.len() && chars[i].0 < stop {
                        i += 1;
                    }
                    out.push(Token {
                        kind: Kind::Literal,
                        start,
                        end: stop,
                    });
                    continue;
                }
            }
        }
        if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) {
            while i < chars.len() && (chars[i].1.is_ascii_alphanumeric() || chars[i].1 == '.') {
                i += 1;
            }
            out.push(Token {
                kind: Kind::Literal,
                start,
                end: end_of(i),
            });
            continue;
        }
        if is_ident_start(c) {
            let mut word = String::new();
            while i < chars.len() && is_ident_char(chars[i].1) {
                word.push(chars[i].1);
                i += 1;
            }
            out.push(Token {
                kind: Kind::Word(word),
                start,
                end: end_of(i),
            });
            continue;
        }
        if c == ':' && next == Some(':') {
            i += 2;
            out.push(Token {
                kind: Kind::Cast,
                start,
                end: end_of(i),
            });
            continue;
        }
        i += 1;
        out.push(Token {
            kind: Kind::Punct(c),
            start,
            end: end_of(i),
        });
    }
    out
}

/// Words that continue a multi-word type name after `::` (`double precision`,
/// `timestamp with time zone`, `character varying`).
const TYPE_WORDS: &[&str] = &["varying", "precision", "with", "without", "time", "zone"];

/// For each token, whether it is a reference to a column: a name that is not
/// a function being called, a type, a collation, or the part after a dot.
pub(crate) fn column_refs(toks: &[Token]) -> Vec<bool> {
    let mut refs: Vec<bool> = toks.iter().map(|t| t.name().is_some()).collect();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let next_is_paren = toks.get(i + 1).is_some_and(|n| n.is('('));
        if t.name().is_some() && next_is_paren {
            refs[i] = false; // a function call
        }
        if i > 0 && toks[i - 1].is('.') {
            refs[i] = false; // a field or a qualified name's second part
        }
        if toks.get(i + 1).is_some_and(|n| n.is('.'))
            && toks.get(i + 2).is_some_and(|n| n.name().is_some())
        {
            // `schema.function(…)` or `table.column`: the first part is no column.
            refs[i] = false;
        }
        let type_follows = matches!(t.kind, Kind::Cast) || t.is_word("as") || t.is_word("collate");
        if type_follows {
            // The type (or collation) name that follows.
            let mut j = i + 1;
            if toks.get(j).is_some_and(|n| n.name().is_some()) {
                refs[j] = false;
                j += 1;
                while toks.get(j).is_some_and(|n| n.is('.'))
                    && toks.get(j + 1).is_some_and(|n| n.name().is_some())
                {
                    refs[j + 1] = false;
                    j += 2;
                }
                loop {
                    match toks.get(j) {
                        Some(n) if n.is('(') && !t.is_word("collate") => {
                            // Type modifiers: `(10,2)`.
                            let mut depth = 0;
                            while let Some(n) = toks.get(j) {
                                if n.is('(') {
                                    depth += 1;
                                } else if n.is(')') {
                                    depth -= 1;
                                }
                                if n.name().is_some() {
                                    refs[j] = false;
                                }
                                j += 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                        }
                        Some(n) if n.is('[') && toks.get(j + 1).is_some_and(|m| m.is(']')) => {
                            j += 2
                        }
                        Some(Token {
                            kind: Kind::Word(w),
                            ..
                        }) if TYPE_WORDS.contains(&w.to_ascii_lowercase().as_str()) => {
                            refs[j] = false;
                            j += 1;
                        }
                        _ => break,
                    }
                }
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    refs
}

fn same_name(a: &str, b: &str, flavor: Flavor) -> bool {
    match flavor {
        Flavor::Postgres => a == b,
        Flavor::Sqlite => a.eq_ignore_ascii_case(b),
    }
}

/// The bare-word form Postgres would read `word` as (folded to lower case).
fn folded(t: &Token, flavor: Flavor) -> Option<String> {
    match (&t.kind, flavor) {
        (Kind::Word(w), Flavor::Postgres) => Some(w.to_lowercase()),
        (Kind::Word(w) | Kind::Quoted(w), _) => Some(w.clone()),
        _ => None,
    }
}

/// Whether `sql` refers to `column` (as a column, not a function, type or
/// string).
pub(crate) fn mentions(sql: &str, column: &str, flavor: Flavor) -> bool {
    let toks = tokens(sql, flavor);
    let refs = column_refs(&toks);
    toks.iter()
        .zip(refs)
        .any(|(t, r)| r && folded(t, flavor).is_some_and(|n| same_name(&n, column, flavor)))
}

/// `sql` with every reference to column `old` replaced by `new` (already
/// quoted); `None` when it refers to `old` nowhere.
pub(crate) fn rewrite_column(sql: &str, old: &str, new: &str, flavor: Flavor) -> Option<String> {
    let toks = tokens(sql, flavor);
    let refs = column_refs(&toks);
    let mut out = String::with_capacity(sql.len() + new.len());
    let mut at = 0;
    let mut replaced = false;
    for (t, r) in toks.iter().zip(refs) {
        if r && folded(t, flavor).is_some_and(|n| same_name(&n, old, flavor)) {
            out.push_str(&sql[at..t.start]);
            out.push_str(new);
            at = t.end;
            replaced = true;
        }
    }
    out.push_str(&sql[at..]);
    replaced.then_some(out)
}

/// A CHECK constraint found in SQLite's `CREATE TABLE` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqliteCheck {
    pub name: Option<String>,
    /// The expression between the parentheses after CHECK.
    pub expression: String,
    /// The column whose definition holds it (`None` for a table constraint).
    pub column: Option<String>,
}

/// Index of the `)` matching the `(` at `open`.
fn matching(toks: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(open) {
        if t.is('(') {
            depth += 1;
        } else if t.is(')') {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(j);
            }
        }
    }
    None
}

const TABLE_CONSTRAINT_STARTS: &[&str] = &["constraint", "primary", "unique", "check", "foreign"];

/// The items of a `CREATE TABLE` body (column definitions and table
/// constraints) as token ranges, split at top-level commas.
fn table_items(toks: &[Token]) -> Vec<(usize, usize)> {
    let Some(open) = toks.iter().position(|t| t.is('(')) else {
        return Vec::new();
    };
    let Some(close) = matching(toks, open) else {
        return Vec::new();
    };
    let mut items: Vec<(usize, usize)> = Vec::new();
    let (mut depth, mut from) = (0usize, open + 1);
    for (j, tok) in toks.iter().enumerate().take(close).skip(open + 1) {
        if tok.is('(') {
            depth += 1;
        } else if tok.is(')') {
            depth = depth.saturating_sub(1);
        } else if tok.is(',') && depth == 0 {
            items.push((from, j));
            from = j + 1;
        }
    }
    items.push((from, close));
    items
}

/// The column a `CREATE TABLE` item defines (`None` for a table constraint).
fn item_column(toks: &[Token], (a, b): (usize, usize)) -> Option<String> {
    let first = toks.get(a).filter(|_| a < b)?;
    if TABLE_CONSTRAINT_STARTS.iter().any(|k| first.is_word(k)) {
        return None;
    }
    first.name().map(str::to_string)
}

/// The columns of an SQLite `CREATE TABLE` whose own definition holds a
/// `REFERENCES` clause (rather than a table-level `FOREIGN KEY`).
pub(crate) fn sqlite_inline_references(create_table: &str) -> Vec<String> {
    let toks = tokens(create_table, Flavor::Sqlite);
    table_items(&toks)
        .into_iter()
        .filter(|&(a, b)| toks[a..b].iter().any(|t| t.is_word("references")))
        .filter_map(|item| item_column(&toks, item))
        .collect()
}

/// The CHECK constraints of an SQLite `CREATE TABLE` statement.
pub(crate) fn sqlite_checks(create_table: &str) -> Vec<SqliteCheck> {
    let toks = tokens(create_table, Flavor::Sqlite);
    let items = table_items(&toks);
    let mut out = Vec::new();
    for (a, b) in items {
        let column = item_column(&toks, (a, b));
        let mut j = a;
        while j < b {
            if toks[j].is_word("check") && toks.get(j + 1).is_some_and(|t| t.is('(')) {
                let Some(end) = matching(&toks, j + 1).filter(|&e| e <= b) else {
                    break;
                };
                let name = (j >= a + 2 && toks[j - 2].is_word("constraint"))
                    .then(|| toks[j - 1].name().map(str::to_string))
                    .flatten();
                let expression = create_table[toks[j + 1].end..toks[end].start]
                    .trim()
                    .to_string();
                out.push(SqliteCheck {
                    name,
                    expression,
                    column: column.clone(),
                });
                j = end + 1;
                continue;
            }
            j += 1;
        }
    }
    out
}

/// The text from the first `(` on (an index's keys and predicate, past its
/// and its table's names).
pub(crate) fn after_first_paren(sql: &str) -> Option<&str> {
    let toks = tokens(sql, Flavor::Sqlite);
    let open = toks.iter().find(|t| t.is('('))?;
    Some(&sql[open.start..])
}

/// The predicate of a partial index from its `CREATE INDEX … WHERE …` text.
pub(crate) fn index_predicate(create_index: &str, flavor: Flavor) -> Option<String> {
    let toks = tokens(create_index, flavor);
    let open = toks.iter().position(|t| t.is('('))?;
    let close = matching(&toks, open)?;
    let at = toks[close + 1..].iter().position(|t| t.is_word("where"))? + close + 1;
    let text = create_index[toks[at].end..]
        .trim()
        .trim_end_matches(';')
        .trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: Flavor = Flavor::Postgres;

    #[test]
    fn rewrites_column_references_only() {
        assert_eq!(
            rewrite_column("(email <> ''::text)", "email", "\"mail\"", PG).as_deref(),
            Some("(\"mail\" <> ''::text)")
        );
        // A column named like a type: the cast's type stays.
        assert_eq!(
            rewrite_column("((text)::text <> 'text'::text)", "text", "\"body\"", PG).as_deref(),
            Some("((\"body\")::text <> 'text'::text)")
        );
        // A function of the same name is not the column.
        assert_eq!(
            rewrite_column("(lower(lower) = lower)", "lower", "\"l2\"", PG).as_deref(),
            Some("(lower(\"l2\") = \"l2\")")
        );
        assert_eq!(
            rewrite_column("(\"We\"\"ird\" > 0)", "We\"ird", "\"x\"", PG).as_deref(),
            Some("(\"x\" > 0)")
        );
        // Multi-word types and modifiers after ::
        assert_eq!(
            rewrite_column(
                "((zone)::timestamp(3) with time zone > '2020-01-01'::timestamp with time zone)",
                "zone",
                "\"z\"",
                PG
            )
            .as_deref(),
            Some("((\"z\")::timestamp(3) with time zone > '2020-01-01'::timestamp with time zone)")
        );
        assert_eq!(rewrite_column("(other > 0)", "email", "\"x\"", PG), None);
        assert_eq!(
            rewrite_column("('email' <> '')", "email", "\"x\"", PG),
            None
        );
        // Upper-case bare words fold to lower case on Postgres.
        assert!(mentions("EMAIL IS NOT NULL", "email", PG));
        assert!(!mentions("\"Email\" IS NOT NULL", "email", PG));
    }

    #[test]
    fn sqlite_names_compare_without_case() {
        let s = Flavor::Sqlite;
        assert!(mentions("lower(`EMAIL`)", "email", s));
        assert!(mentions("[email] IS NOT NULL", "Email", s));
        assert!(!mentions("CAST(x AS email)", "email", s));
        assert!(!mentions("x COLLATE email", "email", s));
        assert_eq!(
            rewrite_column("length(Email) > 3", "email", "\"mail\"", s).as_deref(),
            Some("length(\"mail\") > 3")
        );
    }

    #[test]
    fn finds_sqlite_checks_and_their_owners() {
        let sql = "CREATE TABLE \"t\" (id INTEGER PRIMARY KEY, a text CHECK (a <> ''), b text NOT NULL CONSTRAINT b_len CHECK (length(b) > (1)), c text, -- a comment, (\n CONSTRAINT bc CHECK (b <> c), CHECK (c IS NOT 'x,y'))";
        let checks = sqlite_checks(sql);
        assert_eq!(
            checks,
            vec![
                SqliteCheck {
                    name: None,
                    expression: "a <> ''".into(),
                    column: Some("a".into())
                },
                SqliteCheck {
                    name: Some("b_len".into()),
                    expression: "length(b) > (1)".into(),
                    column: Some("b".into())
                },
                SqliteCheck {
                    name: Some("bc".into()),
                    expression: "b <> c".into(),
                    column: None
                },
                SqliteCheck {
                    name: None,
                    expression: "c IS NOT 'x,y'".into(),
                    column: None
                },
            ]
        );
    }

    #[test]
    fn tells_inline_references_from_table_foreign_keys() {
        let sql = "CREATE TABLE t (a INTEGER REFERENCES p (id), b INTEGER, \"c d\" text references q, FOREIGN KEY (b) REFERENCES p (id))";
        assert_eq!(sqlite_inline_references(sql), vec!["a", "c d"]);
    }

    #[test]
    fn finds_a_partial_index_predicate() {
        let s = Flavor::Sqlite;
        assert_eq!(
            index_predicate("CREATE INDEX i ON t (a, lower(b)) WHERE a IS NOT NULL", s).as_deref(),
            Some("a IS NOT NULL")
        );
        assert_eq!(index_predicate("CREATE INDEX \"where\" ON t (a)", s), None);
    }
}
