//! Failing with a message, in plain SQL a runner sends: the guard, a
//! backfill's hand-off and a verification stop the runner with an error
//! whose text says why and what to run, whatever the runner prints of a
//! database error.
//!
//! - Postgres: one `DO` block, `RAISE EXCEPTION USING MESSAGE, HINT`
//!   (PL/pgSQL plans each condition only when it reaches it, so a check
//!   may read a table an earlier check found missing).
//! - MySQL/MariaDB: no `SIGNAL` outside stored programs (and MySQL has no
//!   anonymous blocks), so each check is `SET SESSION sql_mode = (SELECT
//!   CASE WHEN <refused> THEN '<reason>' ELSE @@SESSION.sql_mode END)`: when
//!   it holds, the server refuses the value and prints it — error 1231
//!   "Variable 'sql_mode' can't be set to the value of '<reason>'" (up to
//!   the first comma, which is why reasons carry none, and up to 200
//!   characters); otherwise the session's mode is set to itself. One
//!   statement per check: a check reading a table must not be parsed
//!   before the check that the table exists has passed.
//! - SQLite: `RAISE` exists only in triggers; a temporary table whose CHECK
//!   constraint is named with the reason is given a row that breaks it:
//!   "CHECK constraint failed: <reason>". One table per reason.

use crate::dialect::Dialect;

/// One refusal: when `refused` (an SQL boolean expression in the unit's
/// dialect) is true, the statement fails with `message`, and `hint` (the
/// command to run) as Postgres' HINT or after the message elsewhere.
#[derive(Debug, Clone)]
pub struct Check {
    pub refused: String,
    pub message: String,
    pub hint: String,
}

/// The statements (each terminated by `;`) that fail with the first of
/// `checks` whose condition holds, in order.
pub fn refuse_if(dialect: Dialect, checks: &[Check]) -> Vec<String> {
    match dialect {
        Dialect::Postgres => {
            let mut body = String::new();
            for c in checks {
                body.push_str(&format!(
                    "  IF {} THEN\n    RAISE EXCEPTION USING MESSAGE = {}, HINT = {};\n  END IF;\n",
                    c.refused,
                    dialect.quote_literal(&c.message),
                    dialect.quote_literal(&c.hint)
                ));
            }
            let mut tag = "$phasegate$".to_string();
            while body.contains(&tag) {
                tag = format!("$phasegate{}$", tag.len());
            }
            vec![format!("DO {tag}\nBEGIN\n{body}END\n{tag};")]
        }
        Dialect::Mysql => checks
            .iter()
            .map(|c| {
                let text = one_value(&format!("{} {}", c.message, c.hint));
                format!(
                    "SET SESSION sql_mode = (SELECT CASE WHEN {} THEN {} ELSE @@SESSION.sql_mode END);",
                    c.refused,
                    dialect.quote_literal(&text)
                )
            })
            .collect(),
        Dialect::Sqlite => checks
            .iter()
            .flat_map(|c| {
                let text = format!("{} {}", c.message, c.hint);
                let table = format!(
                    "phasegate_refusal_{}",
                    &crate::tracker::checksum(&text)[..12]
                );
                [
                    format!(
                        "CREATE TEMP TABLE IF NOT EXISTS {} (r INTEGER, CONSTRAINT {} CHECK (r IS NULL));",
                        dialect.quote_ident(&table),
                        dialect.quote_ident(&text)
                    ),
                    format!(
                        "INSERT INTO {} (r) SELECT 1 WHERE {};",
                        dialect.quote_ident(&table),
                        c.refused
                    ),
                ]
            })
            .collect(),
    }
}

/// A reason as one `sql_mode` value MySQL prints whole: no commas (the
/// server splits the value at them and prints the first part).
fn one_value(text: &str) -> String {
    text.replace(',', ";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_refusal_is_one_block_whose_quote_the_text_cannot_close() {
        let c = Check {
            refused: "true".into(),
            message: "it's $phasegate$ here".into(),
            hint: "run x".into(),
        };
        let sql = refuse_if(Dialect::Postgres, &[c]);
        assert_eq!(sql.len(), 1);
        assert!(sql[0].starts_with("DO $phasegate11$"), "{}", sql[0]);
        assert!(sql[0].contains("'it''s $phasegate$ here'"), "{}", sql[0]);
    }

    #[test]
    fn a_mysql_reason_has_no_comma_to_cut_it() {
        let c = Check {
            refused: "1 = 1".into(),
            message: "a, b".into(),
            hint: "c".into(),
        };
        let sql = refuse_if(Dialect::Mysql, &[c]);
        assert!(sql[0].contains("'a; b c'"), "{}", sql[0]);
    }
}
