//! Alembic (SQLAlchemy's migration tool): each deploy as revision files in
//! `versions/` (`--dir`, default `alembic/versions`), named
//! `<revision>_<slug>.py`, chained by `down_revision` (the first one's is
//! `--after`, the team's latest revision; `None` without it).
//!
//! Conventions followed (Alembic's documentation, "Operation Reference" and
//! `MigrationContext.autocommit_block`):
//! - Each unit is a revision of its own (a unit is one transaction as
//!   `apply` runs it: two in one revision would share its transaction, and a
//!   refusing hand-off would roll back the steps before it). A
//!   non-transactional unit's statements run in
//!   `with op.get_context().autocommit_block():` (Alembic commits the
//!   transaction before the block; its documentation recommends short
//!   per-file migrations around such blocks, which this gives).
//! - Each statement is sent with `op.execute(sa.text(...))`, one call per
//!   statement. `text()` reads `:name` as a bind parameter, so the file's
//!   `_sql` helper escapes every colon as `\:` (which `text()` turns back
//!   into `:`); percent signs are doubled by SQLAlchemy itself for drivers
//!   that need it. The statement reaches the database as written.
//! - A reversible deploy starts with "undo" revisions, one per rollback
//!   unit, last unit first, whose `upgrade()` does nothing and whose
//!   `downgrade()` runs that unit: `alembic downgrade <revision before the
//!   deploy>` undoes the whole deploy in order, and upgrading again after a
//!   partial downgrade meets the deploy's guard instead of re-running half a
//!   deploy. An irreversible deploy's revisions refuse to downgrade.

use crate::export::{Deploy, ExportError, ExportFile, Options, Runner, Unit};

use super::python::{self, comment, string};

/// Alembic's revision ids may not hold these (alembic/script/revision.py).
const ILLEGAL_IN_REVISION: &[char] = &['@', '-', '+', ':'];

/// One revision before it is rendered.
struct Revision<'d> {
    deploy: &'d Deploy,
    /// `upgrade()` units (empty for the undo revision).
    up: &'d [Unit],
    /// The undo revision's `downgrade()` units.
    undo: Option<&'d [Unit]>,
    name: String,
}

pub(super) fn write(deploys: &[Deploy], options: &Options) -> Result<Vec<ExportFile>, ExportError> {
    let bad = |message: String| ExportError::Cannot {
        runner: Runner::Alembic,
        message,
    };
    if options.version.is_empty()
        || !options
            .version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(bad(format!(
            "--version {:?} cannot start Alembic revision ids: expected letters, digits and _ (e.g. 20260101000000)",
            options.version
        )));
    }
    if let Some(after) = &options.after
        && (after.is_empty() || after.contains(ILLEGAL_IN_REVISION))
    {
        return Err(bad(format!(
            "--after {after:?} is not an Alembic revision id (expected the team's latest revision, e.g. ae1027a6acf; it may not hold @ - + :)"
        )));
    }

    let mut revisions: Vec<Revision> = Vec::new();
    // Index in `revisions` of each deploy's first revision.
    let mut firsts = Vec::new();
    for d in deploys {
        firsts.push(revisions.len());
        if let Some(down) = d.down.as_deref().filter(|u| !u.is_empty()) {
            // Downgraded last-to-first: the first rollback unit goes last.
            for part in python::migrations(down).into_iter().rev() {
                revisions.push(Revision {
                    deploy: d,
                    up: &[],
                    undo: Some(part),
                    name: python::undo_name(part),
                });
            }
        }
        for m in python::migrations(&d.units) {
            revisions.push(Revision {
                deploy: d,
                up: m,
                undo: None,
                name: python::migration_name(m).to_string(),
            });
        }
    }

    let id = |i: usize| format!("{}_{:02}", options.version, i + 1);
    let previous = |i: usize| {
        if i == 0 {
            options.after.clone()
        } else {
            Some(id(i - 1))
        }
    };
    let mut files = Vec::new();
    for (i, r) in revisions.iter().enumerate() {
        let d = r.deploy;
        let di = deploys
            .iter()
            .position(|x| std::ptr::eq(x, d))
            .unwrap_or_default();
        let first = firsts[di];
        let parts = revisions[first..]
            .iter()
            .take_while(|x| std::ptr::eq(x.deploy, d))
            .count();
        let before = previous(first).unwrap_or_else(|| "base".into());
        let undo_note = if d.down.is_some() {
            format!(
                "Undo the whole deploy with `alembic downgrade {before}` (its rollback runs in\nthe downgrade() of its first revisions, from {}); undo deploys one at a time,\nlatest first.",
                id(first)
            )
        } else {
            format!(
                "Deploy {} cannot be undone: its downgrade() refuses. phasegate writes it only\nwhen asked for with `phasegate export --phase {}`.",
                d.phase, d.phase
            )
        };
        let slug = format!(
            "{}_{}_{}",
            python::slug(&d.plan, 40),
            d.phase,
            python::slug(&r.name, 40)
        );
        let mut doc = python::header(d, i - first + 1, parts, &undo_note);
        doc.push_str(&format!(
            "\n\nRevision ID: {}\nRevises: {}\n",
            id(i),
            previous(i).as_deref().unwrap_or("")
        ));
        let mut f = String::new();
        f.push_str(&string(&doc));
        f.push_str("\n\nfrom typing import Sequence, Union\n\nfrom alembic import op\nimport sqlalchemy as sa\n\n");
        f.push_str(&format!("revision: str = {}\n", string(&id(i))));
        f.push_str(&format!(
            "down_revision: Union[str, Sequence[str], None] = {}\n",
            previous(i).map_or("None".into(), |p| string(&p))
        ));
        f.push_str("branch_labels: Union[str, Sequence[str], None] = None\n");
        f.push_str("depends_on: Union[str, Sequence[str], None] = None\n\n\n");
        f.push_str(HELPER);
        f.push_str("\n\ndef upgrade() -> None:\n");
        if r.undo.is_some() {
            comment(
                &mut f,
                "    ",
                &format!(
                    "Nothing to do on the way up: this revision holds (part of) the rollback of\ndeploy {}, which runs when Alembic downgrades past it.",
                    d.phase
                ),
            );
            f.push_str("    pass\n");
        } else {
            body(&mut f, r.up);
        }
        f.push_str("\n\ndef downgrade() -> None:\n");
        match (r.undo, &d.down) {
            (Some(units), _) => body(&mut f, units),
            (None, Some(_)) => {
                comment(
                    &mut f,
                    "    ",
                    &format!(
                        "Deploy {} is undone by the downgrade() of its first revisions (from {}),\nwhich run after this one.",
                        d.phase,
                        id(first)
                    ),
                );
                f.push_str("    pass\n");
            }
            (None, None) => {
                f.push_str(&format!(
                    "    raise RuntimeError(\n        {}\n    )\n",
                    string(&format!(
                        "phasegate: deploy {} of plan {} is irreversible and cannot be downgraded",
                        d.phase, d.plan
                    ))
                ));
            }
        }
        files.push(ExportFile {
            path: format!("{}_{slug}.py", id(i)).into(),
            contents: f,
        });
    }
    Ok(files)
}

/// The `_sql` helper every file defines.
const HELPER: &str = r#"def _sql(statement: str) -> None:
    """Runs one statement as written: text() would read ":name" as a bind
    parameter, so every colon is escaped with a backslash (text() removes
    it); SQLAlchemy doubles "%" itself where the driver needs it."""
    op.execute(sa.text(statement.replace(":", "\\:")))
"#;

/// A function body running `units` in order: transactional ones in the
/// revision's transaction, each non-transactional one in an autocommit block.
fn body(f: &mut String, units: &[Unit]) {
    if units.is_empty() {
        f.push_str("    pass\n");
    }
    for (n, u) in units.iter().enumerate() {
        if n > 0 {
            f.push('\n');
        }
        comment(f, "    ", &python::unit_comment(u));
        let indent = if u.transactional {
            "    "
        } else {
            f.push_str("    with op.get_context().autocommit_block():\n");
            "        "
        };
        if u.statements.is_empty() {
            f.push_str(indent);
            f.push_str("pass\n");
        }
        for s in &u.statements {
            f.push_str(indent);
            f.push_str("_sql(");
            f.push_str(&string(s));
            f.push_str(")\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Dialect;
    use crate::export::fixture;
    use crate::export::runners::python::tests::{compiles, golden};

    fn options() -> Options {
        Options {
            after: Some("ae1027a6acf".into()),
            ..Options::default()
        }
    }

    #[test]
    fn golden_files_on_every_dialect() {
        for dialect in Dialect::ALL {
            let files = write(&fixture::deploys(dialect), &options()).unwrap();
            golden("alembic", dialect, &files);
            compiles(&files);
        }
    }

    #[test]
    fn revisions_chain_from_after_and_the_index_runs_in_an_autocommit_block() {
        let files = write(&fixture::deploys(Dialect::Postgres), &options()).unwrap();
        let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "20260101000000_01_rename_users_name_1_undo_add_column.py",
                "20260101000000_02_rename_users_name_1_guard.py",
                "20260101000000_03_rename_users_name_1_add_column.py",
                "20260101000000_04_rename_users_name_1_create_index.py",
                "20260101000000_05_rename_users_name_1_record.py",
                "20260101000000_06_rename_users_name_1_backfill_handoff.py",
                "20260101000000_07_rename_users_name_2_guard.py",
                "20260101000000_08_rename_users_name_2_drop_column.py",
            ]
        );
        assert!(
            files[0]
                .contents
                .contains("down_revision: Union[str, Sequence[str], None] = \"ae1027a6acf\"")
        );
        assert!(files[1].contents.contains("= \"20260101000000_01\"\n"));
        let index = &files[3].contents;
        let block = index.find("autocommit_block()").unwrap();
        assert!(
            index[block..].contains("CREATE INDEX CONCURRENTLY"),
            "{index}"
        );
        assert!(!files[2].contents.contains("autocommit_block()"));
        // The undo revision's downgrade drops the column; the contract refuses.
        assert!(files[0].contents.contains("DROP COLUMN full_name"));
        assert!(files[6].contents.contains("raise RuntimeError("));
        assert!(files[7].contents.contains("raise RuntimeError("));
    }

    #[test]
    fn without_after_the_first_revision_is_a_root() {
        let files = write(&fixture::deploys(Dialect::Sqlite), &Options::default()).unwrap();
        assert!(
            files[0]
                .contents
                .contains("down_revision: Union[str, Sequence[str], None] = None\n")
        );
        assert!(files[1].contents.contains("alembic downgrade base"));
    }

    #[test]
    fn a_version_or_after_alembic_cannot_use_is_refused_with_what_is_expected() {
        let deploys = fixture::deploys(Dialect::Postgres);
        let e = write(
            &deploys,
            &Options {
                version: "2026-01-01".into(),
                ..Options::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("alembic:") && e.contains("letters, digits and _"),
            "{e}"
        );
        let e = write(
            &deploys,
            &Options {
                after: Some("abc-def".into()),
                ..Options::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not an Alembic revision id"), "{e}");
    }
}
