//! `phasegate export --to rails`, run by ActiveRecord's own migrator (from
//! Debian: `.ci/run` installs ruby-activerecord and the pg, mysql2 and
//! sqlite3 drivers and sets `PHASEGATE_RAILS_RUBY`), the way
//! `bin/rails db:migrate` runs it, without a Rails app
//! (`export_rollout/rails_migrate.rb`): a rename and required columns roll
//! out on Postgres and MariaDB through every deploy, one migration at a
//! time with the application's releases querying between them
//! (`export_rollout`), and end where `phasegate apply` ends; on SQLite the
//! files refuse.

mod common;
mod executor_support;
mod export_rollout;
mod rollback_support;

use common::{TestDb, TestResult, with_mysql, with_postgres, with_sqlite};
use executor_support::Project;
use export_rollout::{RENAME, REQUIRED, Runner, Step, command, out, tool};
use phasegate::dialect::Dialect;

const MIGRATOR: &str = include_str!("export_rollout/rails_migrate.rb");

struct Rails {
    ruby: String,
}

impl Runner for Rails {
    fn name(&self) -> &'static str {
        "rails"
    }

    fn step(&self, project: &Project, db: &TestDb) -> TestResult<Step> {
        let script = project.dir.join("rails_migrate.rb");
        std::fs::write(&script, MIGRATOR)?;
        let url = match db.dialect {
            Dialect::Postgres => db.url.clone(),
            // Rails' own database.yml template for MySQL says `encoding: utf8mb4`.
            Dialect::Mysql => {
                let url = db.url.replacen("mysql://", "mysql2://", 1);
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}encoding=utf8mb4")
            }
            Dialect::Sqlite => format!("sqlite3:{}", db.name),
        };
        let script = script.display().to_string();
        let o = command(
            &self.ruby,
            &[&script, &url, "db/migrate", "step"],
            &project.dir,
        )?;
        Ok(match o.status.code() {
            Some(0) => Step::Applied,
            Some(3) => Step::Done,
            _ => Step::Failed(out(&o)),
        })
    }
}

fn rails(test: &str) -> Option<Rails> {
    tool("PHASEGATE_RAILS_RUBY", test).map(|ruby| Rails { ruby })
}

#[tokio::test]
async fn a_rename_rolls_out_through_rails_on_postgres() {
    let Some(r) = rails("a_rename_rolls_out_through_rails_on_postgres") else {
        return;
    };
    with_postgres(|db| async move {
        with_postgres(|twin| async move {
            export_rollout::rolls_out(db, twin, "rename-users-name", RENAME, &r).await
        })
        .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn required_columns_roll_out_through_rails_on_postgres() {
    let Some(r) = rails("required_columns_roll_out_through_rails_on_postgres") else {
        return;
    };
    with_postgres(|db| async move {
        with_postgres(|twin| async move {
            export_rollout::rolls_out(db, twin, "add-users-email-verified", REQUIRED, &r).await
        })
        .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_rename_rolls_out_through_rails_on_mariadb() {
    let Some(r) = rails("a_rename_rolls_out_through_rails_on_mariadb") else {
        return;
    };
    with_mysql(|db| async move {
        with_mysql(|twin| async move {
            export_rollout::rolls_out(db, twin, "rename-users-name", RENAME, &r).await
        })
        .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn required_columns_roll_out_through_rails_on_mariadb() {
    let Some(r) = rails("required_columns_roll_out_through_rails_on_mariadb") else {
        return;
    };
    with_mysql(|db| async move {
        with_mysql(|twin| async move {
            export_rollout::rolls_out(db, twin, "add-users-email-verified", REQUIRED, &r).await
        })
        .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn on_sqlite_rails_is_refused_with_what_to_run() {
    let Some(r) = rails("on_sqlite_rails_is_refused_with_what_to_run") else {
        return;
    };
    with_sqlite(|db| async move {
        export_rollout::refused_on_sqlite(db, "rename-users-name", RENAME, &r).await
    })
    .await;
}
