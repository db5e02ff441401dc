//! golang-migrate (`migrate -path DIR -database URL up`): one pair of files
//! per migration, `<version>_<name>.up.sql` and `<version>_<name>.down.sql`
//! (an irreversible deploy has no `.down.sql`).
//!
//! Conventions (golang-migrate `MIGRATIONS.md`, `database/postgres/README.md`,
//! issue golang-migrate/migrate#284): a file is sent as one `Exec`; the
//! runner opens no transaction of its own on Postgres or MySQL, and has no
//! per-file "no transaction" marker. On Postgres a text of several statements
//! sent at once is one implicit transaction, so each transactional unit is
//! all-or-nothing as a file, and a non-transactional statement runs outside
//! a transaction only when it is alone in its file: [`super::sql_files`]
//! splits such a unit (settings, statement, reset). Do not set
//! `x-multi-statement=true`: it splits files on `;` (breaking a `DO` block)
//! and runs each statement on its own, dropping the unit's transaction.
//! MySQL needs `multiStatements=true` in the URL; its DDL commits
//! implicitly anyway. The sqlite3 driver wraps every file in a transaction
//! (unless `x-no-tx-wrap=true`), so a non-transactional SQLite unit cannot be
//! written (`Cannot`). Supports Postgres, MySQL/MariaDB and SQLite.

use std::path::PathBuf;

use super::sql_files::{self, Piece, Versions};
use crate::dialect::Dialect;
use crate::export::{Deploy, ExportError, ExportFile, Options, Runner};

const RUNNER: Runner = Runner::GolangMigrate;

fn render(deploy: &Deploy, piece: &Piece, lead: &[String]) -> String {
    let mut out = String::new();
    for line in sql_files::header(deploy, piece, RUNNER) {
        sql_files::push_comment(&mut out, &line);
    }
    for line in lead {
        sql_files::push_comment(&mut out, line);
    }
    out.push('\n');
    out.push_str(&piece.body());
    out
}

fn refuse_sqlite_outside_transaction(deploy: &Deploy, piece: &Piece) -> Result<(), ExportError> {
    if deploy.dialect == Dialect::Sqlite && !piece.transactional {
        return Err(ExportError::Cannot {
            runner: RUNNER,
            message: format!(
                "deploy {} of {}: {} must run outside a transaction, and golang-migrate's \
                 sqlite3 driver runs every file in one (x-no-tx-wrap=true would drop the \
                 transaction of every other file); run this deploy with phasegate apply",
                deploy.phase, deploy.plan, piece.name
            ),
        });
    }
    Ok(())
}

pub(super) fn write(deploys: &[Deploy], options: &Options) -> Result<Vec<ExportFile>, ExportError> {
    sql_files::check_dialect(
        RUNNER,
        deploys,
        &[Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite],
    )?;
    let mut versions = Versions::new(RUNNER, options)?;
    let mut files = Vec::new();
    for deploy in deploys {
        let laid = sql_files::lay_out(deploy);
        let count = laid.len();
        for l in &laid {
            refuse_sqlite_outside_transaction(deploy, &l.up)?;
            let version = versions.next()?;
            let stem = format!("{version}_{}", sql_files::file_stem(deploy, &l.up));
            files.push(ExportFile {
                path: PathBuf::from(format!("{stem}.up.sql")),
                contents: render(deploy, &l.up, &[]),
            });
            let Some(down) = &l.down else { continue };
            let undo = format!(
                "Undo deploy {} as a whole: migrate down {count} (its files newest first), \
                 then phasegate status.",
                deploy.phase
            );
            let piece = match down {
                Some(piece) => {
                    refuse_sqlite_outside_transaction(deploy, piece)?;
                    piece.clone()
                }
                None => sql_files::empty_down(deploy, &l.up),
            };
            files.push(ExportFile {
                path: PathBuf::from(format!("{stem}.down.sql")),
                contents: render(deploy, &piece, &[undo]),
            });
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;
    use crate::export::runners::golden_files;

    #[test]
    fn golden_files_on_every_dialect() {
        for dialect in Dialect::ALL {
            let files = write(&fixture::deploys(dialect), &Options::default()).unwrap();
            golden_files::check(RUNNER.name(), dialect, &files);
        }
    }

    #[test]
    fn a_postgres_concurrent_index_is_alone_in_its_file_and_the_contract_has_no_down() {
        let files = write(&fixture::deploys(Dialect::Postgres), &Options::default()).unwrap();
        let index = files
            .iter()
            .find(|f| {
                f.path
                    .to_string_lossy()
                    .ends_with("_deploy1_create_index.up.sql")
            })
            .expect("the index file");
        let statements: Vec<&str> = index
            .contents
            .lines()
            .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
            .collect();
        assert_eq!(statements.len(), 1, "{}", index.contents);
        assert!(statements[0].starts_with("CREATE INDEX CONCURRENTLY"));
        assert!(!files.iter().any(|f| {
            let p = f.path.to_string_lossy();
            p.contains("_deploy2_") && p.ends_with(".down.sql")
        }));
    }

    #[test]
    fn a_sqlite_unit_outside_a_transaction_cannot_be_written() {
        let mut deploys = fixture::deploys(Dialect::Sqlite);
        deploys[0].units[2].transactional = false;
        let e = write(&deploys, &Options::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x-no-tx-wrap") && e.contains("create_index"),
            "{e}"
        );
    }
}
