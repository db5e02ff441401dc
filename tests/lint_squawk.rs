//! Squawk (squawk-cli 2.66.0, `PHASEGATE_SQUAWK`) on the Postgres files of
//! tests/lint_corpus/: the rules it reports per file, as docs/lint.md's
//! comparison table says.

use std::process::Command;

mod lint_support;

use lint_support::*;

/// What squawk 2.66.0 reports on each Postgres corpus file (its rule ids,
/// sorted): the table docs/lint.md explains.
const SQUAWK: &[(&str, &[&str])] = &[
    (
        "alembic/3f2a9c1d_drop_legacy_id.sql",
        &[
            "ban-drop-column",
            "require-lock-timeout",
            "require-statement-timeout",
        ],
    ),
    (
        "alembic/7c1e2b3a_create_products.sql",
        &[
            "prefer-bigint-over-int",
            "prefer-identity",
            "prefer-text-field",
        ],
    ),
    (
        "alembic/9d8e7f6a_widen_sku.sql",
        &[
            "changing-column-type",
            "prefer-text-field",
            "require-statement-timeout",
        ],
    ),
    (
        "alembic/b4c5d6e7_retype_sku.sql",
        &[
            "changing-column-type",
            "prefer-bigint-over-int",
            "require-statement-timeout",
        ],
    ),
    ("broken/V9__typo.sql", &["syntax-error"]),
    (
        "dbmate/20240110093000_index_orders_created_at.sql",
        &[
            "prefer-robust-stmts",
            "require-concurrent-index-deletion",
            "require-lock-timeout",
            "require-statement-timeout",
        ],
    ),
    (
        "dbmate/20240111093000_index_orders_status_safely.sql",
        &["require-statement-timeout"],
    ),
    (
        "django/0012_alter_invoice_amount.sql",
        &[
            "changing-column-type",
            "require-lock-timeout",
            "require-statement-timeout",
        ],
    ),
    (
        "django/0013_create_refund.sql",
        &["require-lock-timeout", "require-statement-timeout"],
    ),
    (
        "flyway/V3__rename_user_name.sql",
        &[
            "prefer-robust-stmts",
            "renaming-column",
            "require-lock-timeout",
            "require-statement-timeout",
        ],
    ),
    (
        "flyway/V4__add_email_index.sql",
        &[
            "prefer-robust-stmts",
            "require-concurrent-index-creation",
            "require-statement-timeout",
        ],
    ),
    (
        "flyway/V5__orders_fk_not_valid.sql",
        &["prefer-robust-stmts"],
    ),
    (
        "flyway/V6__drop_import_staging.sql",
        &[
            "ban-drop-table",
            "prefer-robust-stmts",
            "require-statement-timeout",
        ],
    ),
    (
        "goose/00005_require_email.sql",
        &[
            "adding-not-nullable-field",
            "ban-drop-not-null",
            "prefer-robust-stmts",
            "require-statement-timeout",
        ],
    ),
    ("psql/001_mood_type.sql", &["syntax-error"]),
    (
        "rails/20240105120000_add_status_to_orders.sql",
        &[
            "adding-foreign-key-constraint",
            "adding-required-field",
            "constraint-missing-not-valid",
            "require-concurrent-index-creation",
            "require-statement-timeout",
        ],
    ),
    (
        "rails/20240106090000_add_nickname_to_users.sql",
        &["prefer-timestamp-tz", "require-statement-timeout"],
    ),
];

/// Squawk (`npm install squawk-cli@2.66.0`, `.ci/run` does it into
/// .ci/tools and sets `PHASEGATE_SQUAWK`) on every Postgres corpus file
/// reports exactly the rules docs/lint.md's comparison lists. Without the
/// variable: skipped loudly, or a failure under PHASEGATE_REQUIRE_DATABASES=1.
#[test]
fn squawk_reports_what_the_comparison_says() -> TestResult {
    let Ok(squawk) = std::env::var("PHASEGATE_SQUAWK") else {
        if std::env::var("PHASEGATE_REQUIRE_DATABASES").is_ok_and(|v| v == "1") {
            return Err("PHASEGATE_SQUAWK is not set and PHASEGATE_REQUIRE_DATABASES=1: .ci/run installs squawk-cli".into());
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: squawk_reports_what_the_comparison_says: set PHASEGATE_SQUAWK to a squawk 2.66.0 binary"
        );
        return Ok(());
    };
    let dir = corpus().join("postgres");
    let mut files = Vec::new();
    for (file, _) in SQUAWK {
        files.push(file.to_string());
    }
    let (ours, _) = lint_folder("postgres")?;
    assert_eq!(
        ours.keys().cloned().collect::<Vec<_>>(),
        files,
        "every corpus file is compared"
    );
    let mut mismatches = Vec::new();
    for (file, want) in SQUAWK {
        let o = Command::new(&squawk)
            .args(["--reporter", "gcc", file])
            .current_dir(&dir)
            .output()?;
        let out = text(&o.stdout) + &text(&o.stderr);
        let mut rules: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        rules.sort();
        rules.dedup();
        if rules != *want {
            mismatches.push(format!(
                "{file}: squawk reports {rules:?}, the table says {want:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    Ok(())
}
