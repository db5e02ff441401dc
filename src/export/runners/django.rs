//! Django: each deploy as migrations of one app (`--app`, the app label),
//! written to `<app>/migrations/NNNN_phasegate_<slug>.py` under `--dir`
//! (default: the project folder, where `manage.py` is), numbered on from
//! `--after` (`app_label.0007_name`, the app's latest migration, which the
//! first one depends on; `0001` without it), each depending on the one
//! before.
//!
//! Conventions followed (Django's documentation, "Migration Operations":
//! `RunSQL`; "Writing migrations": non-atomic migrations):
//! - Each migration is one `migrations.RunSQL(sql=[...], reverse_sql=...)`
//!   whose list holds one statement per element. A statement given as a
//!   plain string runs with `params=None`, so Django and the driver leave its
//!   `%` alone (`cursor.execute(sql)`, no formatting).
//! - Each unit is a migration of its own (a unit is one transaction as
//!   `apply` runs it: two in one atomic migration would share its
//!   transaction, and a refusing hand-off would roll back the steps before
//!   it); a non-transactional unit's migration has `atomic = False`.
//! - A reversible deploy's rollback is written as migrations that do nothing
//!   forward and run the rollback units when Django unapplies them
//!   (`reverse_sql`), placed before the deploy's first migration so that
//!   migrating back to the migration before the deploy runs the whole
//!   rollback after the deploy's own (no-op) reversals, and migrating
//!   forward again after a partial reversal meets the deploy's guard. An
//!   irreversible deploy's migrations have no `reverse_sql`: Django refuses
//!   to unapply them (`IrreversibleError`).

use std::fmt::Write as _;

use crate::export::{Deploy, ExportError, ExportFile, Options, Runner, Unit};

use super::python::{self, comment, string};

/// One migration before it is rendered.
struct Migration<'d> {
    deploy: &'d Deploy,
    /// Forward units (empty for a rollback migration).
    up: &'d [Unit],
    /// A rollback migration's units (run by `reverse_sql`).
    undo: Option<&'d [Unit]>,
    name: String,
}

/// Whether `s` is a Python identifier of ASCII letters, digits and `_`, as
/// an app label must be.
fn identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn write(deploys: &[Deploy], options: &Options) -> Result<Vec<ExportFile>, ExportError> {
    let bad = |message: String| ExportError::Cannot {
        runner: Runner::Django,
        message,
    };
    let app = options.app.as_str();
    if !identifier(app) {
        return Err(bad(format!(
            "--app {app:?} is not a Django app label (expected letters, digits and _, not starting with a digit, e.g. shop)"
        )));
    }
    // The dependency the first migration has, and the number it takes.
    let (after, mut number) = match options.after.as_deref() {
        None => (None, 1),
        Some(after) => {
            let (label, name) = after.split_once('.').unwrap_or((app, after));
            if !identifier(label) || name.is_empty() || name.contains(['/', '\\', '.']) {
                return Err(bad(format!(
                    "--after {after:?} is not a Django migration (expected app_label.migration_name, e.g. {app}.0007_order_total)"
                )));
            }
            let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
            let next = match digits.parse::<usize>() {
                Ok(n) if label == app => n + 1,
                _ => 1,
            };
            (Some((label.to_string(), name.to_string())), next)
        }
    };

    let mut migrations: Vec<Migration> = Vec::new();
    let mut firsts = Vec::new();
    for d in deploys {
        firsts.push(migrations.len());
        if let Some(down) = d.down.as_deref().filter(|u| !u.is_empty()) {
            // Unapplied last-to-first: the first rollback part goes last.
            for part in python::migrations(down).into_iter().rev() {
                migrations.push(Migration {
                    deploy: d,
                    up: &[],
                    undo: Some(part),
                    name: python::undo_name(part),
                });
            }
        }
        for m in python::migrations(&d.units) {
            migrations.push(Migration {
                deploy: d,
                up: m,
                undo: None,
                name: python::migration_name(m).to_string(),
            });
        }
    }

    let mut names = Vec::new();
    for m in &migrations {
        names.push(format!(
            "{number:04}_phasegate_{}_{}_{}",
            python::slug(&m.deploy.plan, 30),
            m.deploy.phase,
            python::slug(&m.name, 30)
        ));
        number += 1;
    }
    let dependency = |i: usize| -> Option<(String, String)> {
        if i == 0 {
            after.clone()
        } else {
            Some((app.to_string(), names[i - 1].clone()))
        }
    };

    let mut files = Vec::new();
    for (i, m) in migrations.iter().enumerate() {
        let d = m.deploy;
        let di = deploys
            .iter()
            .position(|x| std::ptr::eq(x, d))
            .unwrap_or_default();
        let first = firsts[di];
        let parts = migrations[first..]
            .iter()
            .take_while(|x| std::ptr::eq(x.deploy, d))
            .count();
        let before = match dependency(first) {
            Some((label, name)) if label == app => name,
            _ => "zero".into(),
        };
        let undo_note = if d.down.is_some() {
            format!(
                "Undo the whole deploy with `python manage.py migrate {app} {before}` (its rollback\nruns when Django unapplies the migrations before the deploy's guard); undo\ndeploys one at a time, latest first."
            )
        } else {
            format!(
                "Deploy {} cannot be undone: Django refuses to unapply it. phasegate writes it\nonly when asked for with `phasegate export --phase {}`.",
                d.phase, d.phase
            )
        };
        let mut f = String::new();
        comment(
            &mut f,
            "",
            &python::header(d, i - first + 1, parts, &undo_note),
        );
        f.push_str(
            "\nfrom django.db import migrations\n\n\nclass Migration(migrations.Migration):\n",
        );
        let units = m.undo.unwrap_or(m.up);
        if units.iter().any(|u| !u.transactional) {
            comment(
                &mut f,
                "    ",
                "Its statement cannot run in a transaction: Django runs this migration\nstatement by statement, each committed on its own.",
            );
            f.push_str("    atomic = False\n\n");
        }
        f.push_str("    dependencies = [\n");
        if let Some((label, name)) = dependency(i) {
            let _ = writeln!(f, "        ({}, {}),", string(&label), string(&name));
        }
        f.push_str("    ]\n\n    operations = [\n        migrations.RunSQL(\n");
        if m.undo.is_some() {
            comment(
                &mut f,
                "            ",
                &format!(
                    "Nothing to do forward: this migration holds (part of) the rollback of\ndeploy {}, which runs when Django unapplies it.",
                    d.phase
                ),
            );
            f.push_str("            sql=migrations.RunSQL.noop,\n            reverse_sql=");
            statements(&mut f, units);
        } else {
            f.push_str("            sql=");
            statements(&mut f, units);
            if d.down.is_some() {
                comment(
                    &mut f,
                    "            ",
                    &format!(
                        "Unapplying this migration does nothing: deploy {}'s rollback runs in\n{} (and the migrations beside it), unapplied after this one.",
                        d.phase, names[first]
                    ),
                );
                f.push_str("            reverse_sql=migrations.RunSQL.noop,\n");
            }
        }
        f.push_str("        ),\n    ]\n");
        files.push(ExportFile {
            path: format!("{app}/migrations/{}.py", names[i]).into(),
            contents: f,
        });
    }
    Ok(files)
}

/// `units`' statements as a Python list (one string per statement), each
/// unit's comment above its statements; ends with `,\n`.
fn statements(f: &mut String, units: &[Unit]) {
    f.push_str("[\n");
    for u in units {
        comment(f, "                ", &python::unit_comment(u));
        for s in &u.statements {
            f.push_str("                ");
            f.push_str(&string(s));
            f.push_str(",\n");
        }
    }
    f.push_str("            ],\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Dialect;
    use crate::export::fixture;
    use crate::export::runners::python::tests::{compiles, golden};

    fn options() -> Options {
        Options {
            after: Some("shop.0007_order_total".into()),
            app: "shop".into(),
            ..Options::default()
        }
    }

    #[test]
    fn golden_files_on_every_dialect() {
        for dialect in Dialect::ALL {
            let files = write(&fixture::deploys(dialect), &options()).unwrap();
            golden("django", dialect, &files);
            compiles(&files);
        }
    }

    #[test]
    fn numbered_on_from_after_and_the_index_alone_in_a_non_atomic_migration() {
        let files = write(&fixture::deploys(Dialect::Postgres), &options()).unwrap();
        let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "shop/migrations/0008_phasegate_rename_users_name_1_undo_add_column.py",
                "shop/migrations/0009_phasegate_rename_users_name_1_guard.py",
                "shop/migrations/0010_phasegate_rename_users_name_1_add_column.py",
                "shop/migrations/0011_phasegate_rename_users_name_1_create_index.py",
                "shop/migrations/0012_phasegate_rename_users_name_1_record.py",
                "shop/migrations/0013_phasegate_rename_users_name_1_backfill_handoff.py",
                "shop/migrations/0014_phasegate_rename_users_name_2_guard.py",
                "shop/migrations/0015_phasegate_rename_users_name_2_drop_column.py",
            ]
        );
        assert!(
            files[0]
                .contents
                .contains("(\"shop\", \"0007_order_total\"),")
        );
        assert!(
            files[1]
                .contents
                .contains("(\"shop\", \"0008_phasegate_rename_users_name_1_undo_add_column\"),")
        );
        let atomic: Vec<bool> = files
            .iter()
            .map(|f| f.contents.contains("    atomic = False\n"))
            .collect();
        assert_eq!(
            atomic,
            [false, false, false, true, false, false, false, false]
        );
        assert!(files[0].contents.contains("sql=migrations.RunSQL.noop,"));
        assert!(files[0].contents.contains("DROP COLUMN full_name"));
        assert!(
            files[1]
                .contents
                .contains("reverse_sql=migrations.RunSQL.noop,")
        );
        // The irreversible contract has no reverse_sql: Django refuses to unapply it.
        assert!(!files[7].contents.contains("reverse_sql"));
        assert!(files[7].contents.contains("cannot be undone"));
    }

    #[test]
    fn after_in_another_app_or_none_starts_at_0001() {
        let deploys = fixture::deploys(Dialect::Sqlite);
        let files = write(&deploys, &Options::default()).unwrap();
        assert!(files[0].path.starts_with("phasegate/migrations"));
        assert!(files[0].path.to_string_lossy().contains("/0001_phasegate_"));
        assert!(files[0].contents.contains("    dependencies = [\n    ]"));
        let other = Options {
            after: Some("auth.0012_alter_user_first_name_max_length".into()),
            app: "shop".into(),
            ..Options::default()
        };
        let files = write(&deploys, &other).unwrap();
        assert!(files[0].path.to_string_lossy().contains("/0001_phasegate_"));
        assert!(
            files[0]
                .contents
                .contains("(\"auth\", \"0012_alter_user_first_name_max_length\"),")
        );
    }

    #[test]
    fn a_bad_app_label_or_after_is_refused_with_what_is_expected() {
        let deploys = fixture::deploys(Dialect::Postgres);
        let e = write(
            &deploys,
            &Options {
                app: "my-app".into(),
                ..Options::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("django:") && e.contains("not a Django app label"),
            "{e}"
        );
        let e = write(
            &deploys,
            &Options {
                after: Some("shop.".into()),
                ..Options::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("app_label.migration_name"), "{e}");
    }
}
