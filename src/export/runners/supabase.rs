//! Supabase CLI (`supabase db push`, `supabase migration up`): one file per
//! migration, `<timestamp>_<name>.sql` under `supabase/migrations/`, no down
//! files (the CLI has none; `supabase migration repair` edits its history).
//!
//! Conventions (supabase/cli#2898, supabase/cli#5671, supabase/cli#6276):
//! the CLI runs each file in its own transaction, over one connection; since
//! v2.109.0 it runs a statement that cannot run in a transaction block
//! (`CREATE INDEX CONCURRENTLY`, `REINDEX … CONCURRENTLY`, and since #6276
//! `DROP INDEX CONCURRENTLY`) on its own outside that transaction, on the
//! same session, after the file's earlier statements; the maintainers'
//! advice is to give such a statement a file of its own. So a
//! non-transactional unit is one file of its own, its session settings (a
//! plain `SET`) first: unlike the other runners here, it is not split, since
//! the CLI resets the session's settings between files (seen with CLI 3.1.0:
//! a `SET` in one file is gone in the next), which also means no reset is
//! needed. Postgres only.

use std::path::PathBuf;

use super::sql_files::{self, Piece, Versions};
use crate::dialect::Dialect;
use crate::export::{Deploy, ExportError, ExportFile, Options, Runner};

const RUNNER: Runner = Runner::Supabase;

fn render(deploy: &Deploy, piece: &Piece) -> String {
    let mut out = String::new();
    for line in sql_files::header(deploy, piece, RUNNER) {
        sql_files::push_comment(&mut out, &line);
    }
    if !piece.transactional {
        sql_files::push_comment(
            &mut out,
            "Alone in its file: the Supabase CLI (v2.109.0 or later) runs its last \
             statement outside the migration's transaction, after the settings.",
        );
    }
    if deploy.reversible {
        sql_files::push_comment(
            &mut out,
            &format!(
                "Undo deploy {} with phasegate rollback --env <ENV> {} --phase {} \
                 (the Supabase CLI has no down migrations).",
                deploy.phase, deploy.plan, deploy.phase
            ),
        );
    }
    out.push('\n');
    out.push_str(&piece.body());
    out
}

pub(super) fn write(deploys: &[Deploy], options: &Options) -> Result<Vec<ExportFile>, ExportError> {
    sql_files::check_dialect(RUNNER, deploys, &[Dialect::Postgres])?;
    let mut versions = Versions::new(RUNNER, options)?;
    let mut files = Vec::new();
    for deploy in deploys {
        for unit in &deploy.units {
            let piece = Piece {
                name: unit.name.clone(),
                transactional: unit.transactional,
                comments: unit.comments.clone(),
                statements: unit.statements.clone(),
            };
            let version = versions.next()?;
            files.push(ExportFile {
                path: PathBuf::from(format!(
                    "{version}_{}.sql",
                    sql_files::file_stem(deploy, &piece)
                )),
                contents: render(deploy, &piece),
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
    fn golden_files_on_postgres() {
        let files = write(&fixture::deploys(Dialect::Postgres), &Options::default()).unwrap();
        golden_files::check(RUNNER.name(), Dialect::Postgres, &files);
    }

    #[test]
    fn other_dialects_are_unsupported() {
        for dialect in [Dialect::Mysql, Dialect::Sqlite] {
            let e = write(&fixture::deploys(dialect), &Options::default()).unwrap_err();
            assert!(
                matches!(e, ExportError::Unsupported { runner: Runner::Supabase, dialect: d } if d == dialect),
                "{e}"
            );
        }
    }

    #[test]
    fn a_concurrent_index_has_a_file_of_its_own_with_its_settings() {
        let files = write(&fixture::deploys(Dialect::Postgres), &Options::default()).unwrap();
        let index = files
            .iter()
            .find(|f| {
                f.path
                    .to_string_lossy()
                    .ends_with("_deploy1_create_index.sql")
            })
            .expect("the index file");
        let statements: Vec<&str> = index
            .contents
            .lines()
            .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
            .collect();
        // Its settings, then the statement: the CLI keeps them in one session.
        assert_eq!(statements.len(), 2, "{}", index.contents);
        assert!(statements[0].starts_with("SET lock_timeout"));
        assert!(statements[1].starts_with("CREATE INDEX CONCURRENTLY"));
        assert!(
            files
                .iter()
                .all(|f| f.path.extension().is_some_and(|e| e == "sql"))
        );
    }
}
