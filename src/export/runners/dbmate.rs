//! dbmate (`dbmate up`, `dbmate rollback`): one file per migration,
//! `<VERSION>_<name>.sql` (the version: the digits before the first `_`,
//! by convention a `YYYYMMDDHHMMSS` timestamp), holding a `-- migrate:up`
//! block and the `-- migrate:down` block dbmate requires.
//!
//! Conventions (dbmate README, "Creating Migrations", "Options"): each block
//! runs in its own transaction unless its marker line says
//! `transaction:false` (`-- migrate:up transaction:false`); dbmate sends a
//! block as one text, so on Postgres a non-transactional unit is split (see
//! [`super::sql_files`]); `dbmate rollback` undoes the newest applied file.
//! An irreversible deploy's down blocks fail, saying so. Supports Postgres,
//! MySQL/MariaDB and SQLite.

use std::path::PathBuf;

use super::sql_files::{self, Piece, Versions};
use crate::dialect::Dialect;
use crate::export::{Deploy, ExportError, ExportFile, Options, Runner};

const RUNNER: Runner = Runner::Dbmate;

fn marker(direction: &str, piece: &Piece) -> String {
    if piece.transactional {
        format!("-- migrate:{direction}\n")
    } else {
        format!("-- migrate:{direction} transaction:false\n")
    }
}

fn render(deploy: &Deploy, up: &Piece, down: &Piece, files_in_deploy: usize) -> String {
    let mut out = marker("up", up);
    for line in sql_files::header(deploy, up, RUNNER) {
        sql_files::push_comment(&mut out, &line);
    }
    out.push('\n');
    out.push_str(&up.body());
    out.push('\n');
    out.push_str(&marker("down", down));
    if deploy.reversible {
        sql_files::push_comment(
            &mut out,
            &format!(
                "Undo deploy {} as a whole: dbmate rollback, {files_in_deploy} times \
                 (its files newest first), then phasegate status.",
                deploy.phase
            ),
        );
    }
    out.push_str(&down.body());
    out
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
            let version = versions.next()?;
            let down = match &l.down {
                Some(Some(piece)) => piece.clone(),
                Some(None) => sql_files::empty_down(deploy, &l.up),
                None => Piece {
                    name: format!("{}_irreversible", l.up.name),
                    transactional: true,
                    comments: vec![format!(
                        "Irreversible: deploy {} cannot be undone; this down block fails \
                         so dbmate rollback stops here.",
                        deploy.phase
                    )],
                    statements: sql_files::refuse_undo(deploy),
                },
            };
            files.push(ExportFile {
                path: PathBuf::from(format!(
                    "{version}_{}.sql",
                    sql_files::file_stem(deploy, &l.up)
                )),
                contents: render(deploy, &l.up, &down, count),
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
    fn every_file_has_both_blocks_and_non_transactional_ones_say_so() {
        let files = write(&fixture::deploys(Dialect::Postgres), &Options::default()).unwrap();
        for f in &files {
            assert!(f.contents.starts_with("-- migrate:up"), "{}", f.contents);
            assert_eq!(
                f.contents.matches("\n-- migrate:down").count(),
                1,
                "{}",
                f.contents
            );
        }
        let index = files
            .iter()
            .find(|f| {
                f.path
                    .to_string_lossy()
                    .ends_with("_deploy1_create_index.sql")
            })
            .expect("the index file");
        assert!(
            index
                .contents
                .starts_with("-- migrate:up transaction:false\n")
        );
        let up = index.contents.split("-- migrate:down").next().unwrap();
        let statements = up
            .lines()
            .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
            .count();
        assert_eq!(statements, 1, "{up}");
        let contract = files
            .iter()
            .find(|f| {
                f.path
                    .to_string_lossy()
                    .ends_with("_deploy2_drop_column.sql")
            })
            .expect("the contract");
        assert!(
            contract.contents.contains("RAISE EXCEPTION"),
            "{}",
            contract.contents
        );
        assert!(
            files[0]
                .path
                .to_string_lossy()
                .starts_with("20260101000000_"),
            "{:?}",
            files[0].path
        );
    }
}
