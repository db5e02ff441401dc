//! `phasegate convert` on the corpus (tests/lint_corpus/): the plans it
//! prints and writes load back with phasegate's loader and plan offline;
//! `--write` never overwrites; what stays SQL is said, with why.

use std::path::PathBuf;

mod lint_support;

use lint_support::*;

/// Every corpus file `convert` turns into intents, and the kinds it makes.
const CONVERTED: &[(&str, &str, &[&str])] = &[
    (
        "postgres",
        "postgres/flyway/V3__rename_user_name.sql",
        &["rename_column"],
    ),
    (
        "postgres",
        "postgres/flyway/V4__add_email_index.sql",
        &["add_index"],
    ),
    (
        "postgres",
        "postgres/rails/20240105120000_add_status_to_orders.sql",
        &["sql", "add_index", "add_foreign_key", "sql"],
    ),
    (
        "postgres",
        "postgres/django/0012_alter_invoice_amount.sql",
        &["change_column_type"],
    ),
    (
        "postgres",
        "postgres/alembic/3f2a9c1d_drop_legacy_id.sql",
        &["drop_column", "sql"],
    ),
    (
        "postgres",
        "postgres/goose/00005_require_email.sql",
        &["set_not_null"],
    ),
    (
        "postgres",
        "postgres/flyway/V6__drop_import_staging.sql",
        &["drop_table"],
    ),
    (
        "mysql",
        "mysql/rails/20240201100000_index_users_email.sql",
        &["add_index", "add_index", "rename_table", "sql"],
    ),
    (
        "sqlite",
        "sqlite/rails/20240301000000_rename_name.sql",
        &["rename_column", "sql"],
    ),
];

#[test]
fn convert_writes_plans_that_load_and_plan() -> TestResult {
    for (dialect, file, kinds) in CONVERTED {
        let dir = TempDir::new("t4")?;
        let path = corpus().join(file);
        let path = path.to_str().ok_or("path")?;
        let o = phasegate(
            &["convert", "--dialect", dialect, path, "--write"],
            dir.path(),
        )?;
        assert_eq!(o.status.code(), Some(0), "{file}: {}", text(&o.stderr));
        let plans: Vec<PathBuf> = std::fs::read_dir(dir.path().join("plans"))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        assert_eq!(plans.len(), 1, "{plans:?}");
        let plan = phasegate::intent::load_plan(&plans[0])?;
        let got: Vec<&str> = plan.changes.iter().map(|c| c.kind()).collect();
        assert_eq!(&got, kinds, "{file}");
        // It plans offline, as `phasegate plan` would.
        let d: phasegate::dialect::Dialect = dialect.parse()?;
        let templates = phasegate::dialect::templates::Templates::builtin(d);
        let catalog = phasegate::catalog::Catalog::offline();
        phasegate::plan::Planner::new(&templates, &catalog)
            .plan(&plan)
            .map_err(|e| format!("{file}: {e}"))?;
        // Without --write the same plan is printed.
        let o = phasegate(&["convert", "--dialect", dialect, path], dir.path())?;
        let printed = phasegate::intent::parse_plan(&text(&o.stdout), "stdout", "x")?;
        assert_eq!(printed.changes, plan.changes, "{file}");
        // A second --write refuses to overwrite.
        let before = std::fs::read_to_string(&plans[0])?;
        let o = phasegate(
            &["convert", "--dialect", dialect, path, "--write"],
            dir.path(),
        )?;
        assert_eq!(o.status.code(), Some(2));
        assert!(
            text(&o.stderr).contains("exists already; not overwritten"),
            "{}",
            text(&o.stderr)
        );
        assert_eq!(std::fs::read_to_string(&plans[0])?, before);
    }
    Ok(())
}

#[test]
fn convert_says_which_statements_stay_sql_and_why() -> TestResult {
    let o = phasegate(
        &[
            "convert",
            "postgres/rails/20240105120000_add_status_to_orders.sql",
        ],
        &corpus(),
    )?;
    let err = text(&o.stderr);
    assert!(err.contains(":4:1: kept as a `sql` change: add_column: required column `status` needs `default` or `backfill`"), "{err}");
    assert!(err.contains(":5:1: converted to add_index"), "{err}");
    assert!(err.contains(":10:1: kept as a `sql` change"), "{err}");
    let o = phasegate(&["convert", "missing.sql"], &corpus())?;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot read missing.sql"));
    Ok(())
}
