//! SQLite has one write lock for the whole database, and a busy application
//! may hold it past phasegate's busy timeout just when a step is to be
//! recorded. The record then gives way and tries again after a pause, as a
//! step's statements do (`lock_retries`), instead of failing the step: here
//! another connection takes the write lock the moment the verification step
//! starts and holds it for longer than `lock_timeout`; `apply` finishes.

mod common;
mod executor_support;

use std::sync::mpsc;
use std::time::Duration;

use sqlx::Connection;

use common::{fail, with_sqlite};
use executor_support::{ENV, Project};
use phasegate::execute::{BackfillProgress, Progress, Workspace};
use phasegate::plan::{Step, StepKind};
use phasegate::tracker::SystemClock;

const PLAN: &str = "rename";

/// When the verification step starts (`at` Verify), or the backfill has
/// done its last batch and is about to record it (`at` Backfill), a
/// connection of its own takes the write lock (`BEGIN IMMEDIATE`) on `url`
/// and keeps it for `hold`; the run goes on only once the lock is taken.
struct TakeTheLock {
    url: String,
    hold: Duration,
    at: StepKind,
}

impl TakeTheLock {
    fn take(&self) {
        let (taken, held) = mpsc::channel();
        let (url, hold) = (self.url.clone(), self.hold);
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(mut c) = sqlx::SqliteConnection::connect(&url).await else {
                    return;
                };
                let locked = sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut c)
                    .await
                    .is_ok();
                let _ = taken.send(locked);
                tokio::time::sleep(hold).await;
                let _ = sqlx::raw_sql("COMMIT").execute(&mut c).await;
            });
        });
        let _ = held.recv_timeout(Duration::from_secs(10));
    }
}

impl Progress for TakeTheLock {
    fn step(&self, step: &Step) {
        if step.kind == StepKind::Verify && self.at == StepKind::Verify {
            self.take();
        }
    }

    fn backfill_progress(&self, _step: &Step, p: &BackfillProgress) {
        if p.finished && self.at == StepKind::Backfill {
            self.take();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_waits_out_the_applications_write_lock() {
    for at in [StepKind::Verify, StepKind::Backfill] {
        records_wait_out_the_lock(at).await;
    }
}

async fn records_wait_out_the_lock(at: StepKind) {
    with_sqlite(|db| async move {
        db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            .await?;
        db.exec("INSERT INTO users (name) VALUES ('a'), ('b')").await?;
        let plan = format!(
            "name: {PLAN}\nchanges:\n  - rename_column: {{ table: users, from: name, to: full_name }}\n"
        );
        // Each try waits 300 ms; the lock is held 1.5 s: the first tries give way.
        let project = Project::new(&db, &["lock_timeout: 300ms", "lock_retries: 10"], PLAN, &plan)?;
        let clock = SystemClock;
        let hold = TakeTheLock {
            url: db.url.clone(),
            hold: Duration::from_millis(1500),
            at,
        };
        let ws = Workspace::new(&project.config, &clock, "lock").with_progress(&hold);
        let started = std::time::Instant::now();
        let applied = ws.apply(ENV, PLAN, false).await?;
        if !applied.ran.iter().any(|s| s.ends_with(".verify")) {
            return Err(fail(format!("the verification did not run: {:?}", applied.ran)));
        }
        if started.elapsed() < Duration::from_millis(1500) {
            return Err(fail(format!(
                "apply finished before the lock taken at {at:?} was let go: it was never held"
            )));
        }
        Ok(())
    })
    .await;
}
