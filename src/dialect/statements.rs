//! Splitting a step's SQL into its statements, for MySQL.
//!
//! MySQL commits each DDL statement on its own, so a step of several
//! statements that gives way on a lock after its first one has already
//! changed the schema: retrying the whole step would repeat that statement
//! and fail. The executor therefore runs a MySQL step statement by
//! statement and retries only the one that gave way.
//!
//! The split knows MySQL's string literals (`'…'`, `"…"`, with doubled
//! quotes and backslash escapes), backquoted names and the three comment
//! forms. A compound statement (a trigger or routine with `BEGIN … END`)
//! has semicolons inside its body; text that holds one is not split, and
//! runs as one unit as written.

/// The statements of `sql`, trimmed, without their terminating `;`.
pub fn split_mysql(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    // Whether the current statement has a word yet (a BEGIN that opens a
    // statement is a transaction's; one after other words opens a body).
    let mut words_in_statement = 0usize;
    // Whether the current statement holds more than comments and blanks.
    let mut has_code = false;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        let comment = c == b'#'
            || (c == b'/' && next == Some(b'*'))
            || (c == b'-'
                && next == Some(b'-')
                && bytes.get(i + 2).is_none_or(|b| b.is_ascii_whitespace()));
        if !comment && c != b';' && !c.is_ascii_whitespace() {
            has_code = true;
        }
        match c {
            b'\'' | b'"' | b'`' => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\\' && c != b'`' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == c {
                        if bytes.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                words_in_statement += 1;
            }
            b'#' => skip_line(bytes, &mut i),
            // `--` starts a comment only before whitespace on MySQL.
            b'-' if next == Some(b'-')
                && bytes.get(i + 2).is_none_or(|b| b.is_ascii_whitespace()) =>
            {
                skip_line(bytes, &mut i)
            }
            b'/' if next == Some(b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b';' => {
                if has_code {
                    out.push(sql[start..i].trim().to_string());
                }
                has_code = false;
                i += 1;
                start = i;
                words_in_statement = 0;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let from = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if words_in_statement > 0 && sql[from..i].eq_ignore_ascii_case("begin") {
                    // A compound statement's body: run the text as written.
                    return single(sql);
                }
                words_in_statement += 1;
            }
            _ => i += 1,
        }
    }
    if has_code {
        out.push(sql[start.min(sql.len())..].trim().to_string());
    }
    out
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

fn skip_line(bytes: &[u8], i: &mut usize) {
    while *i < bytes.len() && bytes[*i] != b'\n' {
        *i += 1;
    }
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
                "-- a note; with a semicolon\nCREATE TRIGGER `t` BEFORE INSERT ON `a;b` FOR EACH ROW SET NEW.`c` = \"q;\"",
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
    fn minus_minus_without_a_space_is_an_operator() {
        assert_eq!(
            split_mysql("UPDATE a SET c = 1--1; SELECT 1"),
            vec!["UPDATE a SET c = 1--1", "SELECT 1"]
        );
    }
}
