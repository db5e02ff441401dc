//! sqlx (`sqlx migrate run`, `sqlx::migrate::Migrator`): one file per
//! migration, `<VERSION>_<DESCRIPTION>.up.sql` with its
//! `<VERSION>_<DESCRIPTION>.down.sql` for a reversible deploy, a simple
//! `<VERSION>_<DESCRIPTION>.sql` (no down) for an irreversible one.
//!
//! Conventions (sqlx-core `migrate/source.rs`, `migrate/migration_type.rs`):
//! the version is the integer before the first `_`; files run in version
//! order, each in its own transaction unless its text starts with
//! `-- no-transaction`; `sqlx migrate revert` runs `.down.sql` files newest
//! first. sqlx sends a file as one text, so on Postgres a non-transactional
//! unit is split (see [`super::sql_files`]). Supports Postgres, MySQL/MariaDB
//! and SQLite.

use std::path::PathBuf;

use super::sql_files::{self, Laid, Piece, Versions};
use crate::dialect::Dialect;
use crate::export::{Deploy, ExportError, ExportFile, Options, Runner};

const RUNNER: Runner = Runner::Sqlx;

fn render(deploy: &Deploy, piece: &Piece, lead: &[String]) -> String {
    let mut out = String::new();
    if !piece.transactional {
        // sqlx checks `starts_with("-- no-transaction")`: the first line.
        out.push_str("-- no-transaction\n");
    }
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
        let numbered: Vec<(String, Laid)> = laid
            .into_iter()
            .map(|l| Ok((versions.next()?, l)))
            .collect::<Result<_, ExportError>>()?;
        let first = numbered.first().map(|(v, _)| v.clone()).unwrap_or_default();
        let before = first
            .parse::<i64>()
            .map(|v| (v - 1).to_string())
            .unwrap_or_else(|_| "<the version before>".into());
        for (version, l) in &numbered {
            let stem = format!("{version}_{}", sql_files::file_stem(deploy, &l.up));
            match &l.down {
                None => files.push(ExportFile {
                    path: PathBuf::from(format!("{stem}.sql")),
                    contents: render(deploy, &l.up, &[]),
                }),
                Some(down) => {
                    files.push(ExportFile {
                        path: PathBuf::from(format!("{stem}.up.sql")),
                        contents: render(deploy, &l.up, &[]),
                    });
                    let undo = format!(
                        "Undo deploy {} as a whole: sqlx migrate revert --target-version {before} \
                         (reverts its files newest first), then phasegate status.",
                        deploy.phase
                    );
                    let contents = match down {
                        Some(piece) => render(deploy, piece, &[undo]),
                        None => render(deploy, &sql_files::empty_down(deploy, &l.up), &[undo]),
                    };
                    files.push(ExportFile {
                        path: PathBuf::from(format!("{stem}.down.sql")),
                        contents,
                    });
                }
            }
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
    fn non_transactional_files_start_with_the_marker_and_hold_one_statement() {
        let files = write(&fixture::deploys(Dialect::Postgres), &Options::default()).unwrap();
        let index = files
            .iter()
            .find(|f| {
                f.path
                    .to_string_lossy()
                    .ends_with("_deploy1_create_index.up.sql")
            })
            .expect("the index file");
        assert!(
            index.contents.starts_with("-- no-transaction\n"),
            "{}",
            index.contents
        );
        let statements = index
            .contents
            .lines()
            .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
            .count();
        assert_eq!(statements, 1, "{}", index.contents);
        let guard = &files[0];
        assert!(!guard.contents.starts_with("-- no-transaction"));
        assert!(guard.path.to_string_lossy().ends_with(".up.sql"));
        // The irreversible contract has no down file.
        let contract: Vec<_> = files
            .iter()
            .filter(|f| f.path.to_string_lossy().contains("_deploy2_"))
            .collect();
        assert!(!contract.is_empty());
        assert!(contract.iter().all(|f| {
            let p = f.path.to_string_lossy();
            p.ends_with(".sql") && !p.ends_with(".up.sql") && !p.ends_with(".down.sql")
        }));
    }

    #[test]
    fn versions_follow_the_option_and_sort_in_run_order() {
        let options = Options {
            version: "20260301120000".into(),
            ..Options::default()
        };
        let files = write(&fixture::deploys(Dialect::Sqlite), &options).unwrap();
        let ups: Vec<i64> = files
            .iter()
            .filter(|f| !f.path.to_string_lossy().ends_with(".down.sql"))
            .map(|f| {
                let p = f.path.to_string_lossy().to_string();
                p.split('_').next().unwrap().parse().unwrap()
            })
            .collect();
        assert_eq!(ups[0], 20260301120000);
        assert!(ups.windows(2).all(|w| w[0] < w[1]), "{ups:?}");
    }
}
