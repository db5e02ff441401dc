//! `phasegate lint` on the corpus of migration files under
//! tests/lint_corpus/ (Rails, Django, Alembic, Flyway, dbmate, goose, psql;
//! Postgres, MySQL, SQLite): the exact findings of every file, the formats,
//! the exit codes, accept markers.

mod lint_support;

use lint_support::*;

#[test]
fn postgres_corpus_findings_are_exactly_these() -> TestResult {
    let (got, code) = lint_folder("postgres")?;
    let want = expected(&[
        (
            "alembic/3f2a9c1d_drop_legacy_id.sql",
            &[("drop-column", 5, 1), ("missing-lock-timeout", 5, 1)],
        ),
        ("alembic/7c1e2b3a_create_products.sql", &[]),
        // varchar(32) → varchar(64) → text: binary-coercible, known from the file before.
        ("alembic/9d8e7f6a_widen_sku.sql", &[]),
        (
            "alembic/b4c5d6e7_retype_sku.sql",
            &[("type-change-rewrite", 8, 1)],
        ),
        // The parse error is where sqlparser stopped; the next statement is still linted.
        (
            "broken/V9__typo.sql",
            &[("parse-error", 3, 19), ("rename-column", 4, 1)],
        ),
        (
            "dbmate/20240110093000_index_orders_created_at.sql",
            &[
                ("missing-lock-timeout", 2, 1),
                ("concurrently-in-transaction", 2, 1),
            ],
        ),
        ("dbmate/20240111093000_index_orders_status_safely.sql", &[]),
        (
            "django/0012_alter_invoice_amount.sql",
            &[
                ("type-change-rewrite", 5, 1),
                ("missing-lock-timeout", 5, 1),
            ],
        ),
        // A new table: only the lock its foreign key takes on billing_invoice.
        (
            "django/0013_create_refund.sql",
            &[("missing-lock-timeout", 6, 1)],
        ),
        (
            "flyway/V3__rename_user_name.sql",
            &[("rename-column", 4, 1), ("missing-lock-timeout", 4, 1)],
        ),
        (
            "flyway/V4__add_email_index.sql",
            &[("blocking-index", 4, 1)],
        ),
        ("flyway/V5__orders_fk_not_valid.sql", &[]),
        // Accepted with a reason.
        ("flyway/V6__drop_import_staging.sql", &[]),
        (
            "goose/00005_require_email.sql",
            &[("validating-constraint", 4, 1)],
        ),
        ("psql/001_mood_type.sql", &[]),
        (
            "rails/20240105120000_add_status_to_orders.sql",
            &[
                ("add-required-column", 4, 1),
                ("blocking-index", 5, 1),
                ("validating-constraint", 6, 1),
            ],
        ),
        ("rails/20240106090000_add_nickname_to_users.sql", &[]),
    ]);
    assert_eq!(got, want);
    assert_eq!(code, 1);
    Ok(())
}

#[test]
fn mysql_corpus_findings_are_exactly_these() -> TestResult {
    let (got, code) = lint_folder("mysql")?;
    let want = expected(&[
        ("dbmate/20240301120000_add_nickname.sql", &[]),
        (
            "django/0003_order_user_fk.sql",
            &[
                ("missing-lock-timeout", 4, 1),
                ("validating-constraint", 5, 1),
            ],
        ),
        (
            "flyway/V2__orders_total_cents.sql",
            &[
                ("rename-column", 2, 1),
                ("type-change-rewrite", 2, 1),
                ("missing-lock-timeout", 2, 1),
                ("type-change-rewrite", 3, 1),
            ],
        ),
        // A trigger between `DELIMITER //` and `DELIMITER ;` is one statement.
        (
            "flyway/V3__orders_audit_trigger.sql",
            &[("drop-column", 12, 1)],
        ),
        (
            "rails/20240201100000_index_users_email.sql",
            &[("blocking-index", 2, 1), ("rename-table", 4, 1)],
        ),
    ]);
    assert_eq!(got, want);
    assert_eq!(code, 1);
    Ok(())
}

#[test]
fn sqlite_corpus_findings_are_exactly_these() -> TestResult {
    let (got, code) = lint_folder("sqlite")?;
    let want = expected(&[
        (
            "alembic/ae1027a6acf_drop_legacy.sql",
            &[("drop-column", 5, 1)],
        ),
        // SQLite has no other way to build an index: none reported.
        ("django/0002_user_bio.sql", &[]),
        (
            "rails/20240301000000_rename_name.sql",
            &[("rename-column", 1, 1), ("add-required-column", 2, 1)],
        ),
    ]);
    assert_eq!(got, want);
    assert_eq!(code, 1);
    Ok(())
}

#[test]
fn safe_files_exit_zero_and_say_so() -> TestResult {
    for (dialect, file) in [
        ("postgres", "postgres/flyway/V5__orders_fk_not_valid.sql"),
        (
            "postgres",
            "postgres/dbmate/20240111093000_index_orders_status_safely.sql",
        ),
        (
            "postgres",
            "postgres/rails/20240106090000_add_nickname_to_users.sql",
        ),
        ("postgres", "postgres/psql/001_mood_type.sql"),
        ("postgres", "postgres/flyway/V6__drop_import_staging.sql"),
        ("mysql", "mysql/dbmate/20240301120000_add_nickname.sql"),
        ("sqlite", "sqlite/django/0002_user_bio.sql"),
    ] {
        let o = phasegate(&["lint", "--dialect", dialect, file], &corpus())?;
        assert_eq!(o.status.code(), Some(0), "{file}: {}", text(&o.stdout));
        assert!(
            text(&o.stdout).starts_with("0 findings in 1 file"),
            "{}",
            text(&o.stdout)
        );
    }
    Ok(())
}

#[test]
fn an_accepted_statement_keeps_its_reason_in_json() -> TestResult {
    let o = phasegate(
        &[
            "lint",
            "--format",
            "json",
            "postgres/flyway/V6__drop_import_staging.sql",
        ],
        &corpus(),
    )?;
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let f = &doc["findings"][0];
    assert_eq!(f["rule"], "drop-table");
    assert_eq!(
        f["accepted"],
        "import_staging has had no reader since release 41 (see PR #812)"
    );
    assert_eq!(doc["exit_code"], 0);
    Ok(())
}

#[test]
fn an_accept_without_a_reason_or_with_an_unknown_rule_accepts_nothing() -> TestResult {
    let dir = TempDir::new("t1")?;
    std::fs::write(
        dir.path().join("a.sql"),
        "SET lock_timeout = '1s';\n-- phasegate: accept drop-table\nDROP TABLE a;\n-- phasegate: accept drop-tabel it is unused\nDROP TABLE b;\n",
    )?;
    let o = phasegate(&["lint", "--format", "gcc", "a.sql"], dir.path())?;
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0]
            .starts_with("a.sql:2:1: warning: invalid-accept: `accept drop-table` needs a reason"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("a.sql:3:1: warning: drop-table: drops table a"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("a.sql:4:1: warning: invalid-accept: ")
            && lines[2].contains("drop-table"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("a.sql:5:1: warning: drop-table: drops table b"),
        "{out}"
    );
    assert_eq!(o.status.code(), Some(1));
    Ok(())
}

#[test]
fn gcc_and_github_formats() -> TestResult {
    let dir = TempDir::new("t2")?;
    // A file name with the characters GitHub's properties escape.
    std::fs::write(
        dir.path().join("V1__a,b:c.sql"),
        "SET lock_timeout = '1s';\nALTER TABLE users RENAME COLUMN name TO full_name;\n",
    )?;
    let o = phasegate(&["lint", "--format", "gcc", "V1__a,b:c.sql"], dir.path())?;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).starts_with(
            "V1__a,b:c.sql:2:1: warning: rename-column: renames column users.name to full_name (lock: ACCESS EXCLUSIVE"
        ),
        "{}",
        text(&o.stdout)
    );
    let o = phasegate(&["lint", "--format", "github", "V1__a,b:c.sql"], dir.path())?;
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(
            "::warning file=V1__a%2Cb%3Ac.sql,line=2,col=1,title=phasegate rename-column::renames column users.name to full_name%0Alock: ACCESS EXCLUSIVE"
        ),
        "{out}"
    );
    assert!(!out.trim_end().contains('\n'));
    Ok(())
}

#[test]
fn an_unreadable_path_exits_2_and_the_others_are_still_linted() -> TestResult {
    let o = phasegate(
        &[
            "lint",
            "missing.sql",
            "postgres/flyway/V4__add_email_index.sql",
        ],
        &corpus(),
    )?;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("cannot read missing.sql"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stdout).contains("V4__add_email_index.sql:4:1: blocking-index"),
        "{}",
        text(&o.stdout)
    );
    let o = phasegate(&["lint", "--format", "json", "missing.sql"], &corpus())?;
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(o.status.code(), Some(2));
    Ok(())
}

#[test]
fn the_dialect_comes_from_the_config_when_not_given() -> TestResult {
    let dir = TempDir::new("t3")?;
    std::fs::write(
        dir.path().join("phasegate.yaml"),
        "environments:\n  - name: dev\n    database_url: sqlite://dev.db\n",
    )?;
    // SQLite reports no blocking index, Postgres would.
    std::fs::write(dir.path().join("a.sql"), "CREATE INDEX i ON t (a);\n")?;
    let o = phasegate(&["lint", "a.sql"], dir.path())?;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let o = phasegate(&["lint", "--dialect", "postgres", "a.sql"], dir.path())?;
    assert_eq!(o.status.code(), Some(1));
    Ok(())
}
