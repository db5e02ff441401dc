//! Laying out [`Deploy`]s as one runner's files: one file per runner.

mod alembic;
mod dbmate;
mod django;
mod flyway;
mod golang_migrate;
mod liquibase;
mod prisma;
mod python;
mod rails;
mod sqlx;
mod supabase;

// Shared by the plain-SQL-file runners (sqlx, dbmate, golang-migrate, Supabase, Prisma).
#[cfg(test)]
mod fixture_runs;
mod sql_files;
// Shared by the Flyway, Liquibase and Rails writers.
mod escape;
// (tests) Every runner's golden files.
#[cfg(test)]
mod golden_files;
mod layout;

use super::{Deploy, ExportError, ExportFile, Options, Runner};

/// The files `runner` needs for `deploys` (in order), relative to the
/// export folder (`--dir`).
pub fn write(
    runner: Runner,
    deploys: &[Deploy],
    options: &Options,
) -> Result<Vec<ExportFile>, ExportError> {
    match runner {
        Runner::Flyway => flyway::write(deploys, options),
        Runner::Liquibase => liquibase::write(deploys, options),
        Runner::GolangMigrate => golang_migrate::write(deploys, options),
        Runner::Dbmate => dbmate::write(deploys, options),
        Runner::Sqlx => sqlx::write(deploys, options),
        Runner::Supabase => supabase::write(deploys, options),
        Runner::Alembic => alembic::write(deploys, options),
        Runner::Django => django::write(deploys, options),
        Runner::Rails => rails::write(deploys, options),
        Runner::Prisma => prisma::write(deploys, options),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Dialect;
    use crate::export::fixture;

    /// A refusal (a version no runner takes; a dialect a runner does not
    /// run) names the runner asked for, never another one.
    #[test]
    fn every_refusal_names_the_runner_asked_for() {
        let bad = Options {
            version: "not a version!".into(),
            after: Some("not a revision!".into()),
            ..Options::default()
        };
        for dialect in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
            let deploys = fixture::deploys(dialect);
            for runner in Runner::ALL {
                for options in [&bad, &Options::default()] {
                    if let Err(e) = write(runner, &deploys, options) {
                        let said = e.to_string();
                        assert!(
                            said.starts_with(&format!("{} ", runner.name()))
                                || said.starts_with(&format!("{}:", runner.name())),
                            "{runner} on {dialect}: {said}"
                        );
                        match e {
                            ExportError::Cannot { runner: r, .. }
                            | ExportError::Unsupported { runner: r, .. } => {
                                assert_eq!(r, runner, "{said}")
                            }
                        }
                    }
                }
            }
        }
    }
}
