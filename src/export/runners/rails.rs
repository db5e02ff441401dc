//! Rails (ActiveRecord migrations): one migration per unit,
//! `<YYYYMMDDHHMMSS>_<plan>_p<phase>_<NN>_<unit>.rb` in `db/migrate`,
//! timestamped from `--version` one second apart.
//!
//! Rails conventions used (Rails guides, "Active Record Migrations", and
//! the ActiveRecord API documentation):
//! - the file `<version>_<name>.rb` holds the class `name.camelize`
//!   (`RenameUsersNameP102AddColumn`), a subclass of
//!   `ActiveRecord::Migration[7.1]`;
//! - each migration runs in a transaction where the database has
//!   transactional DDL, unless its class calls `disable_ddl_transaction!`,
//!   which a non-transactional unit's does (for `up` and `down` alike);
//! - on MySQL, where Rails wraps no migration in a transaction, a
//!   transactional unit's statements run in `transaction do … end`;
//! - SQL goes through `execute`, one statement per call (the SQLite adapter
//!   runs only the first statement of a string), each a heredoc with a
//!   quoted terminator (`<<~'SQL'`) so Ruby neither interpolates `#{}` nor
//!   reads backslashes in it (see `escape::ruby_heredoc`);
//! - `def up` / `def down`; `rails db:rollback` runs `down` newest migration
//!   first. The deploy's rollback units go in the `down` of its oldest
//!   migrations that run in a transaction exactly when they do (see
//!   `layout::place_down`; on MySQL, where Rails wraps no migration in a
//!   transaction, on any migration); the other migrations' `down` does
//!   nothing. An
//!   irreversible deploy's `down` raises
//!   `ActiveRecord::IrreversibleMigration`.

use std::path::PathBuf;

use super::escape::{camel, comment_lines, ruby_heredoc, ruby_string};
use super::layout::{header, nth_version, place_down, unit_line, unit_name};
use crate::dialect::Dialect;
use crate::export::{Deploy, ExportError, ExportFile, Options, Runner, Unit};

const RUNNER: Runner = Runner::Rails;

/// The `ActiveRecord::Migration[…]` version exported classes inherit from.
pub(crate) const MIGRATION_VERSION: &str = "7.1";

pub(super) fn write(deploys: &[Deploy], options: &Options) -> Result<Vec<ExportFile>, ExportError> {
    let mut files = Vec::new();
    let mut n = 0;
    for deploy in deploys {
        let down = match deploy.down.as_ref().filter(|_| deploy.reversible) {
            Some(down) => Some(
                place_down(&deploy.units, down, deploy.dialect != Dialect::Mysql).ok_or_else(|| ExportError::Cannot {
                    runner: RUNNER,
                    message: format!(
                        "deploy {}'s rollback cannot be split over its migrations (each rollback part needs a migration that runs in a transaction exactly when it does); roll it back with phasegate",
                        deploy.phase
                    ),
                })?,
            ),
            None => None,
        };
        for (i, unit) in deploy.units.iter().enumerate() {
            let version = nth_version(RUNNER, &options.version, n)?;
            n += 1;
            let name = unit_name(deploy, i, unit);
            let rollback = down.as_ref().map(|slots| slots[i].as_ref());
            files.push(ExportFile {
                path: PathBuf::from(format!("{version}_{name}.rb")),
                contents: migration(deploy, i, unit, &name, rollback),
            });
        }
    }
    Ok(files)
}

/// The migration file of unit `i`. `rollback`: `None` for an irreversible
/// deploy, `Some(None)` for nothing to undo.
fn migration(
    deploy: &Deploy,
    i: usize,
    unit: &Unit,
    name: &str,
    rollback: Option<Option<&Unit>>,
) -> String {
    let mut out = String::new();
    for line in header(deploy, &unit_line(deploy, i, unit)) {
        push_comment(&mut out, "", &line);
    }
    out.push('\n');
    out.push_str(&format!(
        "class {} < ActiveRecord::Migration[{MIGRATION_VERSION}]\n",
        camel(name)
    ));
    if !unit.transactional {
        out.push_str("  # It cannot run inside a transaction.\n  disable_ddl_transaction!\n\n");
    }
    out.push_str("  def up\n");
    body(&mut out, deploy, unit);
    out.push_str("  end\n\n  def down\n");
    match rollback {
        None => {
            let why = format!(
                "deploy {} of plan {} is irreversible",
                deploy.phase, deploy.plan
            );
            out.push_str(&format!(
                "    raise ActiveRecord::IrreversibleMigration, {}\n",
                ruby_string(&why)
            ));
        }
        Some(None) => out.push_str(
            "    # Nothing to undo here: the deploy's rollback runs when its oldest\n    # migrations are rolled back.\n",
        ),
        Some(Some(r)) => body(&mut out, deploy, r),
    }
    out.push_str("  end\nend\n");
    out
}

/// The unit's comments and one `execute` per statement, inside a method.
/// On MySQL, where Rails runs no migration in a transaction (MySQL has no
/// transactional DDL), a transactional unit's statements are wrapped in
/// `transaction do … end` so its recording commits whole (DDL in it still
/// commits implicitly, as under any runner).
fn body(out: &mut String, deploy: &Deploy, unit: &Unit) {
    let wrap = deploy.dialect == Dialect::Mysql && unit.transactional;
    let indent = if wrap { 6 } else { 4 };
    let pad = " ".repeat(indent);
    for c in &unit.comments {
        push_comment(out, "    ", c);
    }
    if wrap {
        out.push_str("    transaction do\n");
    }
    for s in &unit.statements {
        out.push_str(&pad);
        out.push_str("execute ");
        out.push_str(&ruby_heredoc(s, indent + 2));
        out.push('\n');
    }
    if wrap {
        out.push_str("    end\n");
    }
}

fn push_comment(out: &mut String, indent: &str, text: &str) {
    for l in comment_lines(text) {
        out.push_str(indent);
        out.push('#');
        if !l.is_empty() {
            out.push(' ');
            out.push_str(&l);
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;
    use crate::export::runners::golden_files;

    #[test]
    fn golden_on_every_dialect() {
        for dialect in Dialect::ALL {
            let files = write(&fixture::deploys(dialect), &Options::default()).unwrap();
            golden_files::check("rails", dialect, &files);
        }
    }

    #[test]
    fn one_migration_per_unit_named_as_rails_expects() {
        let files = write(&fixture::deploys(Dialect::Postgres), &Options::default()).unwrap();
        assert_eq!(files.len(), 7);
        let add = &files[1];
        assert_eq!(
            add.path.to_string_lossy(),
            "20260101000001_rename_users_name_p1_02_add_column.rb"
        );
        assert!(
            add.contents
                .contains("class RenameUsersNameP102AddColumn < ActiveRecord::Migration[7.1]\n"),
            "{}",
            add.contents
        );
        let index = &files[2].contents;
        assert!(index.contains("\n  disable_ddl_transaction!\n"), "{index}");
        assert_eq!(
            files
                .iter()
                .filter(|f| f.contents.contains("disable_ddl_transaction!"))
                .count(),
            1
        );
        // The rollback is in the oldest migration's down; the contract's downs raise.
        assert!(
            files[0]
                .contents
                .contains("  def down\n    # undo_add_column (fixture)\n"),
            "{}",
            files[0].contents
        );
        assert!(
            files[0]
                .contents
                .contains("ALTER TABLE users DROP COLUMN full_name;")
        );
        assert!(!files[1].contents.contains("DROP COLUMN"));
        for f in &files[5..] {
            assert!(
                f.contents.contains("raise ActiveRecord::IrreversibleMigration, 'deploy 2 of plan rename-users-name is irreversible'"),
                "{}",
                f.contents
            );
        }
    }

    #[test]
    fn hostile_text_stays_in_comments_and_literals() {
        let mut deploys = fixture::deploys(Dialect::Sqlite);
        deploys[1].plan = "it's #{`rm -rf`} \\ ünï\nclass X".into();
        deploys[1].units[1]
            .statements
            .push("UPDATE users SET name = 'SQL #{x} \\n'\n;".into());
        let files = write(&deploys, &Options::default()).unwrap();
        let f = &files[6].contents;
        assert!(
            f.contains("# phasegate export of plan \"it's #{`rm -rf`} \\\\ ünï\\nclass X\": deploy 2 of 2.\n"),
            "{f}"
        );
        assert!(
            f.contains("raise ActiveRecord::IrreversibleMigration, 'deploy 2 of plan it\\'s #{`rm -rf`} \\\\ ünï\nclass X is irreversible'"),
            "{f}"
        );
        assert!(
            f.contains("    execute <<~'SQL_1'\n      UPDATE users SET name = 'SQL #{x} \\n'\n      ;\n    SQL_1\n"),
            "{f}"
        );
        assert!(
            files[6]
                .path
                .to_string_lossy()
                .ends_with("_it_s_rm_rf_n_class_x_p2_02_drop_column.rb")
        );
    }

    #[test]
    fn on_mysql_a_transactional_unit_runs_in_a_transaction_block() {
        let files = write(&fixture::deploys(Dialect::Mysql), &Options::default()).unwrap();
        let add = &files[1].contents;
        assert!(
            add.contains(
                "  def up\n    # add_column (fixture)\n    transaction do\n      execute <<~'SQL'\n"
            ),
            "{add}"
        );
        assert!(
            !files[2].contents.contains("transaction do"),
            "{}",
            files[2].contents
        );
    }

    /// Ruby parses every exported migration (where `ruby` is installed).
    #[test]
    fn ruby_parses_every_file() {
        let Some(ruby) = super::super::escape::tests::ruby() else {
            eprintln!("SKIPPED: ruby_parses_every_file: no ruby on PATH");
            return;
        };
        let dir =
            std::env::temp_dir().join(format!("phasegate-rails-parse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for dialect in Dialect::ALL {
            for f in write(&fixture::deploys(dialect), &Options::default()).unwrap() {
                let p = dir.join(&f.path);
                std::fs::write(&p, &f.contents).unwrap();
                let out = std::process::Command::new(&ruby)
                    .arg("-c")
                    .arg(&p)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}: {}",
                    p.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
