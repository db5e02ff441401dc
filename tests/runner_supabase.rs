//! Supabase end to end: a rename and a required column exported with
//! `phasegate export --to supabase`, deploy by deploy, run by the Supabase
//! CLI (3.1.0 from npm; `.ci/run` installs it into `.ci/tools/` and sets
//! `PHASEGATE_SUPABASE`) with `supabase migration up --remote=<url>` on
//! Postgres while the application's releases query the table, each app
//! deploy marked in between; `status` shows each deploy, and the schema
//! equals `phasegate apply`'s on a twin database (see tests/runner_support).
//!
//! Without `PHASEGATE_SUPABASE` each test prints `SKIPPED: …` and passes,
//! unless `PHASEGATE_REQUIRE_DATABASES=1` (CI), which makes it a failure.

mod common;
mod executor_support;
mod rollback_support;
mod runner_support;

use std::path::{Path, PathBuf};

use common::{TestDb, loud, with_postgres};
use executor_support::Project;
use runner_support::{RENAME, REQUIRED_COLUMN, RealRunner, Scenario, roll_out};

struct Supabase(PathBuf);

fn supabase() -> Option<Supabase> {
    match std::env::var("PHASEGATE_SUPABASE") {
        Ok(p) if Path::new(&p).is_file() => Some(Supabase(PathBuf::from(p))),
        other => {
            let why = format!(
                "PHASEGATE_SUPABASE ({other:?}) does not name the Supabase CLI; .ci/run installs it"
            );
            assert!(
                std::env::var("PHASEGATE_REQUIRE_DATABASES").as_deref() != Ok("1"),
                "{why}, and PHASEGATE_REQUIRE_DATABASES=1"
            );
            loud(format_args!("SKIPPED: supabase: {why}"));
            None
        }
    }
}

impl RealRunner for Supabase {
    fn name(&self) -> &'static str {
        "supabase"
    }

    fn dir(&self, project: &Project) -> PathBuf {
        project.dir.join("supabase/migrations")
    }

    async fn up(&self, db: &TestDb, dir: &Path) -> Result<(), String> {
        // The CLI's working folder holds supabase/migrations.
        let workdir = dir
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| format!("{} is not <workdir>/supabase/migrations", dir.display()))?;
        let sep = if db.url.contains('?') { '&' } else { '?' };
        let out = tokio::process::Command::new(&self.0)
            .args(["migration", "up", "--yes", "--workdir"])
            .arg(workdir)
            .arg(format!("--remote={}{sep}sslmode=disable", db.url))
            .env("SUPABASE_TELEMETRY_DISABLED", "1")
            .output()
            .await
            .map_err(|e| format!("running {}: {e}", self.0.display()))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(said)
        }
    }
}

async fn on_postgres(scn: &'static Scenario) {
    let Some(s) = supabase() else { return };
    with_postgres(|db| async move {
        let mut out = Ok(());
        with_postgres(|twin| async {
            out = roll_out(&s, scn, db, twin).await.map_err(|e| e.to_string());
            Ok(())
        })
        .await;
        out.map_err(Into::into)
    })
    .await
}

#[tokio::test]
async fn a_rename_through_supabase_on_postgres() {
    on_postgres(&RENAME).await
}

#[tokio::test]
async fn a_required_column_through_supabase_on_postgres() {
    on_postgres(&REQUIRED_COLUMN).await
}
