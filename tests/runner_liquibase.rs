//! `phasegate export --to liquibase`, run by the real Liquibase (4.28, from
//! the npm package `liquibase`, which ships it; `.ci/run` installs it and
//! sets `PHASEGATE_LIQUIBASE`): a rename and required columns roll out on
//! Postgres and MariaDB through every deploy, one changeset at a time with
//! the application's releases querying between them (`export_rollout`),
//! and end where `phasegate apply` ends; on SQLite the files refuse.

mod common;
mod executor_support;
mod export_rollout;
mod rollback_support;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::Project;
use export_rollout::{RENAME, REQUIRED, Runner, Step, command, out, tool, url_parts};
use phasegate::dialect::Dialect;

/// The root changelog: every exported file, in name order.
const ROOT: &str = "databaseChangeLog:\n  - includeAll:\n      path: db/changelog/\n";

struct Liquibase {
    launcher: String,
}

impl Liquibase {
    fn jdbc(db: &TestDb) -> (String, String, Option<String>) {
        match db.dialect {
            Dialect::Sqlite => (format!("jdbc:sqlite:{}", db.name), String::new(), None),
            d => {
                let (user, password, host, name) = url_parts(&db.url);
                let kind = if d == Dialect::Postgres {
                    "postgresql"
                } else {
                    "mariadb"
                };
                (format!("jdbc:{kind}://{host}/{name}"), user, password)
            }
        }
    }
}

impl Runner for Liquibase {
    fn name(&self) -> &'static str {
        "liquibase"
    }

    fn step(&self, project: &Project, db: &TestDb) -> TestResult<Step> {
        std::fs::write(project.dir.join("changelog-root.yaml"), ROOT)?;
        let (url, user, password) = Self::jdbc(db);
        let mut args = vec![
            "--show-banner=false".to_string(),
            format!("--url={url}"),
            "--changelog-file=changelog-root.yaml".to_string(),
            format!("--search-path={}", project.dir.display()),
        ];
        if !user.is_empty() {
            args.push(format!("--username={user}"));
        }
        if let Some(p) = password {
            args.push(format!("--password={p}"));
        }
        args.extend(["update-count".to_string(), "--count=1".to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = command(&self.launcher, &args, &project.dir)?;
        let said = out(&o);
        if !o.status.success() {
            return Ok(Step::Failed(said));
        }
        let run = said
            .lines()
            .find_map(|l| l.trim().strip_prefix("Run:"))
            .map(|n| n.trim().to_string())
            .ok_or_else(|| fail(format!("liquibase printed no update summary:\n{said}")))?;
        Ok(if run == "0" {
            Step::Done
        } else {
            Step::Applied
        })
    }
}

fn liquibase(test: &str) -> Option<Liquibase> {
    tool("PHASEGATE_LIQUIBASE", test).map(|launcher| Liquibase { launcher })
}

#[tokio::test]
async fn a_rename_rolls_out_through_liquibase_on_postgres() {
    let Some(lb) = liquibase("a_rename_rolls_out_through_liquibase_on_postgres") else {
        return;
    };
    with_postgres(|db| async move {
        with_postgres(|twin| async move {
            export_rollout::rolls_out(db, twin, "rename-users-name", RENAME, &lb).await
        })
        .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn required_columns_roll_out_through_liquibase_on_postgres() {
    let Some(lb) = liquibase("required_columns_roll_out_through_liquibase_on_postgres") else {
        return;
    };
    with_postgres(|db| async move {
        with_postgres(|twin| async move {
            export_rollout::rolls_out(db, twin, "add-users-email-verified", REQUIRED, &lb).await
        })
        .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_rename_rolls_out_through_liquibase_on_mariadb() {
    let Some(lb) = liquibase("a_rename_rolls_out_through_liquibase_on_mariadb") else {
        return;
    };
    with_mysql(|db| async move {
        with_mysql(|twin| async move {
            export_rollout::rolls_out(db, twin, "rename-users-name", RENAME, &lb).await
        })
        .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn required_columns_roll_out_through_liquibase_on_mariadb() {
    let Some(lb) = liquibase("required_columns_roll_out_through_liquibase_on_mariadb") else {
        return;
    };
    with_mysql(|db| async move {
        with_mysql(|twin| async move {
            export_rollout::rolls_out(db, twin, "add-users-email-verified", REQUIRED, &lb).await
        })
        .await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn on_sqlite_liquibase_is_refused_with_what_to_run() {
    let Some(lb) = liquibase("on_sqlite_liquibase_is_refused_with_what_to_run") else {
        return;
    };
    with_sqlite(|db| async move {
        export_rollout::refused_on_sqlite(db, "rename-users-name", RENAME, &lb).await
    })
    .await;
}
