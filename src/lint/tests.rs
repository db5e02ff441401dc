//! The linter's own tests: hostile input never panics, parse errors keep
//! their place, accept markers.

use proptest::prelude::*;

use super::{lint_text, schema::Schema};
use crate::dialect::Dialect;

fn lint(d: Dialect, sql: &str) -> Vec<super::Finding> {
    lint_text("t.sql", sql, d, &mut Schema::default())
}

#[test]
fn hostile_text_gives_findings_not_panics() {
    let deep = format!("SELECT {}1{};", "(".repeat(5000), ")".repeat(5000));
    let cases = [
        "",
        ";;;;",
        "-- only a comment",
        "/* unterminated",
        "SELECT 'unterminated",
        "DO $$ unterminated",
        "\\set a b\n\\\\\n",
        "\u{0}\u{1}ALTER\u{7f};",
        "ALTER TABLE;",
        "CREATE INDEX ON;",
        "BEGIN; BEGIN; COMMIT; COMMIT; ROLLBACK;",
        "END; END; CASE END;",
        deep.as_str(),
    ];
    for d in Dialect::ALL {
        for sql in cases {
            for f in lint(d, sql) {
                assert!(f.line >= 1 && f.column >= 1, "{d}: {sql:?}: {f:?}");
            }
        }
    }
}

#[test]
fn a_parse_error_is_placed_where_the_parser_stopped_and_linting_goes_on() {
    let sql = "SET lock_timeout = '1s';\n\nALTER TABLE users\n    ADD COLUMN x int NOT NULL,\n    RENAME COLUMN;\nALTER TABLE users DROP COLUMN y;";
    let got: Vec<(String, u64, u64)> = lint(Dialect::Postgres, sql)
        .into_iter()
        .map(|f| (f.rule, f.line, f.column))
        .collect();
    assert_eq!(
        got,
        vec![
            ("parse-error".to_string(), 5, 18),
            ("drop-column".to_string(), 6, 1)
        ]
    );
}

#[test]
fn an_accept_applies_to_the_statement_below_only() {
    let sql = "SET lock_timeout = '1s';\n-- phasegate: accept drop-column the column is unused since v41\nALTER TABLE a DROP COLUMN b;\nALTER TABLE a DROP COLUMN c;";
    let got: Vec<(u64, bool)> = lint(Dialect::Postgres, sql)
        .into_iter()
        .map(|f| (f.line, f.accepted.is_some()))
        .collect();
    assert_eq!(got, vec![(3, true), (4, false)]);
    // A marker for another rule accepts nothing here.
    let sql = "SET lock_timeout = '1s';\n-- phasegate: accept drop-table not this one\nALTER TABLE a DROP COLUMN b;";
    assert!(
        lint(Dialect::Postgres, sql)
            .iter()
            .all(|f| f.accepted.is_none())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn any_mix_of_sql_fragments_lints_without_panicking(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("ALTER TABLE t "), Just("RENAME COLUMN a TO b"), Just("ADD COLUMN c int NOT NULL"),
                Just(";"), Just("\n"), Just("BEGIN"), Just("END"), Just("$$"), Just("'"), Just("\""),
                Just("--"), Just("/*"), Just("*/"), Just("("), Just(")"), Just("CREATE INDEX CONCURRENTLY i ON t (a)"),
                Just("\\set x"), Just("-- phasegate: accept rename-column ok"), Just("DROP TABLE t"),
                Just("DO "), Just("CASE"), Just("-- migrate:down"), Just("é"), Just(" "),
            ],
            0..40,
        ),
        d in prop_oneof![Just(Dialect::Postgres), Just(Dialect::Mysql), Just(Dialect::Sqlite)],
    ) {
        let sql: String = parts.concat();
        for f in lint(d, &sql) {
            prop_assert!(f.line >= 1 && f.column >= 1);
        }
        let _ = super::convert::convert("t.sql", &sql, d);
    }
}

#[test]
fn a_long_expression_is_a_parse_error_and_a_wide_statement_is_not() {
    let long = vec!["1"; 3000].join("+");
    let f = lint_text(
        "a.sql",
        &format!(
            "SELECT {long};\nSELECT CASE {} END;\nINSERT INTO t VALUES {};\n",
            (0..500)
                .map(|i| format!("WHEN x = {i} THEN {i}"))
                .collect::<Vec<_>>()
                .join(" "),
            (0..3000)
                .map(|i| format!("({i} + 1, 'x')"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Dialect::Postgres,
        &mut Schema::default(),
    );
    let rules: Vec<(u64, &str)> = f.iter().map(|f| (f.line, f.rule.as_str())).collect();
    assert_eq!(rules, vec![(1, super::PARSE_ERROR)], "{f:?}");
}
