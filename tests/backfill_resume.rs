//! A backfill killed halfway (`kill -9` of the `phasegate apply` process)
//! resumes from its last checkpoint and finishes with every row correct,
//! while the application's old release keeps writing, including rows
//! behind the checkpoint.
//!
//! The table has 100,000 rows (even ids, so rows can be inserted between
//! them later), the backfill runs in batches of 1,000 with a 20ms pause, and
//! the built binary is killed once the event log holds some
//! `backfill_progress` checkpoints. A second `apply` must continue after the
//! last checkpoint (not redo finished batches: the batches of both runs add
//! up to no more than one full run, plus a margin), finish, pass the
//! phase's verification, and leave every row as the writes made it.

mod common;
mod executor_support;

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Rows, TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{Conn, ENV, Project, Query, Rng, int, series, text};
use phasegate::execute::Workspace;
use phasegate::tracker::SystemClock;

const ROWS: i64 = 100_000;
const BATCH: i64 = 1000;
const PLAN: &str = "resume";
/// Checkpoints the first run commits before it is killed.
const KILL_AFTER: usize = 15;

/// What the plan backfills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `change_column_type` int → bigint: `amount_new` = `amount`, kept in
    /// sync by a trigger for rows the old release writes.
    TypeChange,
    /// `add_column` with `backfill: amount * 2`: rows the old release
    /// inserts behind the walk stay NULL until the final sweep fills them.
    AddColumn,
}

impl Kind {
    fn change(self) -> &'static str {
        match self {
            Kind::TypeChange => {
                "  - change_column_type: { table: big, column: amount, type: bigint }\n"
            }
            Kind::AddColumn => {
                "  - add_column: { table: big, column: doubled, type: bigint, backfill: amount * 2 }\n"
            }
        }
    }
    fn step(self) -> &'static str {
        "1.backfill"
    }
    /// The phase's steps that run SQL.
    fn steps(self) -> &'static [&'static str] {
        match self {
            Kind::TypeChange => &["1.add_column", "1.sync_trigger", "1.backfill", "1.verify"],
            Kind::AddColumn => &["1.add_column", "1.backfill"],
        }
    }
}

/// The old release, writing while phasegate runs and while it is dead:
/// inserts of ids ≡ `residue` (mod 4) anywhere in the key range and
/// updates of existing ids ≡ `residue - 1` (mod 4). It owns those rows, so
/// its model of their `amount` is exact.
struct Writer {
    conn: Conn,
    kind: Kind,
    residue: i64,
    /// Only ids below this (when set).
    below: Option<i64>,
    amounts: BTreeMap<i64, i64>,
    used: HashSet<i64>,
    rng: Rng,
    ops: u64,
    inserts_below: u64,
    failures: Vec<String>,
}

impl Writer {
    async fn new(db: &TestDb, kind: Kind, residue: i64, seed: u64) -> TestResult<Writer> {
        Ok(Writer {
            conn: Conn::open(db).await?,
            kind,
            residue,
            below: None,
            amounts: BTreeMap::new(),
            used: HashSet::new(),
            rng: Rng::new(seed),
            ops: 0,
            inserts_below: 0,
            failures: Vec::new(),
        })
    }

    /// A key ≡ `residue` (mod 4), below the limit if one is set; updates
    /// (`existing`) pick among the seeded rows only.
    fn id(&mut self, residue: i64, existing: bool) -> i64 {
        let top = if existing {
            2 * ROWS + 1
        } else {
            2 * ROWS + 4000
        };
        let top = self.below.map_or(top, |b| b.min(top));
        loop {
            let id = self.rng.range(0, top / 4 - 1) * 4 + residue;
            if id > 0 && id < top {
                return id;
            }
        }
    }

    /// One insert or update.
    async fn step(&mut self, checkpoint: i64) {
        self.ops += 1;
        if self.rng.chance(50) {
            let id = self.id(self.residue, false);
            if !self.used.insert(id) {
                return;
            }
            let amount = self.rng.range(-1_000_000_000, 1_000_000_000);
            let q = Query::new(
                "INSERT INTO big (id, amount, memo) VALUES ($1, $2, $3)",
                vec![int(id), int(amount), text("old release")],
            );
            match self.conn.run(&q).await {
                Ok(_) => {
                    self.amounts.insert(id, amount);
                    if id < checkpoint {
                        self.inserts_below += 1;
                    }
                }
                Err(e) => self.failures.push(format!("insert {id}: {e}")),
            }
        } else {
            let id = self.id(self.residue - 1, true);
            let amount = self.rng.range(-1_000_000_000, 1_000_000_000);
            let q = match self.kind {
                Kind::TypeChange => Query::new(
                    "UPDATE big SET amount = $2, memo = $3 WHERE id = $1",
                    vec![int(id), int(amount), text("old release")],
                ),
                // The backfill's value is computed from amount: the old
                // release here changes other columns only.
                Kind::AddColumn => Query::new(
                    "UPDATE big SET memo = $2 WHERE id = $1",
                    vec![int(id), text(format!("old release {amount}"))],
                ),
            };
            match self.conn.run(&q).await {
                Ok(_) => {
                    if self.kind == Kind::TypeChange {
                        self.amounts.insert(id, amount);
                    }
                }
                Err(e) => self.failures.push(format!("update {id}: {e}")),
            }
        }
    }

    /// Writes until `stop` is set. On SQLite, with a breath between writes:
    /// one writer committing back to back (each commit a sync) would starve
    /// every other writer of the database's single write lock, phasegate
    /// or not.
    async fn run(mut self, stop: Arc<AtomicBool>) -> Writer {
        let sqlite = matches!(self.conn, Conn::Sqlite(_));
        while !stop.load(Ordering::Relaxed) {
            self.step(i64::MAX).await;
            if sqlite {
                tokio::time::sleep(Duration::from_millis(2)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
        self
    }
}

fn spawn_apply(project: &Project, log: &str) -> TestResult<Child> {
    let out = std::fs::File::create(project.dir.join(log))?;
    let err = out.try_clone()?;
    Ok(Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .arg("--config")
        .arg(project.config_path())
        .args(["apply", "--env", ENV, PLAN])
        .current_dir(&project.dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()?)
}

fn read_log(project: &Project, log: &str) -> String {
    std::fs::read_to_string(project.dir.join(log)).unwrap_or_default()
}

/// The last key of a checkpoint (`{"last":["'41000'"],"updated":…}`).
fn checkpoint(detail: &str) -> TestResult<(i64, u64)> {
    let v: serde_json::Value = serde_json::from_str(detail)?;
    let last = v["last"][0]
        .as_str()
        .ok_or_else(|| fail(format!("no last key in checkpoint {detail}")))?;
    let key = last
        .trim_matches('\'')
        .parse::<i64>()
        .map_err(|e| fail(format!("checkpoint key {last}: {e}")))?;
    Ok((key, v["updated"].as_u64().unwrap_or(0)))
}

async fn killed_backfill_resumes(db: TestDb, kind: Kind) -> TestResult {
    let d = db.dialect;
    db.exec(&format!(
        "CREATE TABLE big (id {} PRIMARY KEY, amount integer NOT NULL DEFAULT 0, memo text)",
        db.pick3("bigint", "INTEGER", "bigint")
    ))
    .await?;
    db.exec(&format!(
        "INSERT INTO big (id, amount, memo) SELECT 2 * i, (i * 7919) % 100000, 'seed' FROM {}",
        series(&db, ROWS as u32)
    ))
    .await?;
    let plan = format!("name: {PLAN}\nchanges:\n{}", kind.change());
    let project = Project::new(
        &db,
        &["backfill_batch_size: 1000", "backfill_pause: 20ms"],
        PLAN,
        &plan,
    )?;

    // The old release writes from before the first run until the end.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(Writer::new(&db, kind, 1, 11).await?.run(stop.clone()));

    // The first run, killed once it has committed some batches.
    let t0 = Instant::now();
    let mut child = spawn_apply(&project, "first.log")?;
    let progress = loop {
        let events = executor_support::events(&db).await;
        let progress: Vec<_> = events
            .into_iter()
            .filter(|e| e.1 == "backfill_progress")
            .collect();
        if progress.len() >= KILL_AFTER {
            child.kill()?;
            break progress;
        }
        if let Some(status) = child.try_wait()? {
            return Err(fail(format!(
                "the first apply ended ({status}) before it was killed:\n{}",
                read_log(&project, "first.log")
            )));
        }
        if t0.elapsed() > Duration::from_secs(60) {
            child.kill()?;
            return Err(fail("the first apply never reached its backfill"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let status = child.wait()?;
    let killed_after = t0.elapsed();
    // The checkpoints the dead run left (one more may have committed while the kill landed).
    let events = executor_support::events(&db).await;
    let before: Vec<_> = events
        .iter()
        .filter(|e| e.1 == "backfill_progress")
        .collect();
    let done = events
        .iter()
        .any(|e| e.1 == "step_applied" && e.2.as_deref() == Some(kind.step()));
    if done || before.len() < progress.len() {
        return Err(fail(format!(
            "the backfill finished before the kill ({} checkpoints): make the table bigger",
            before.len()
        )));
    }
    let last_id_before = before.last().map_or(0, |e| e.0);
    let (key, updated) = checkpoint(&before.last().map(|e| e.3.clone()).unwrap_or_default())?;

    // While phasegate is dead: the old release writes rows behind the
    // checkpoint (new keys between existing ones, and updates).
    let mut behind = Writer::new(&db, kind, 3, 29).await?;
    behind.below = Some(key);
    for _ in 0..400 {
        behind.step(key).await;
    }
    if kind == Kind::AddColumn {
        // Its rows would stay NULL if written after the final sweep: the
        // old release stops before the resumed run.
        stop.store(true, Ordering::Relaxed);
    }

    // The second run resumes and finishes.
    let t1 = Instant::now();
    let mut child = spawn_apply(&project, "second.log")?;
    let status2 = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if t1.elapsed() > Duration::from_secs(120) {
            child.kill()?;
            return Err(fail("the resumed apply did not finish within 120s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let resumed_in = t1.elapsed();
    stop.store(true, Ordering::Relaxed);
    let writer = writer.await?;
    if !status2.success() {
        return Err(fail(format!(
            "the resumed apply failed ({status2}):\n{}",
            read_log(&project, "second.log")
        )));
    }

    // It continued after the checkpoint instead of starting over.
    let events = executor_support::events(&db).await;
    let after: Vec<_> = events
        .iter()
        .filter(|e| e.0 > last_id_before && e.1 == "backfill_progress")
        .collect();
    let first = after
        .first()
        .ok_or_else(|| fail("the resumed run recorded no backfill progress"))?;
    let (first_key, first_updated) = checkpoint(&first.3)?;
    let rows = db.scalar("SELECT count(*) FROM big").await?;
    let full_run = (rows / BATCH + 1) as usize;
    let report = format!(
        "{kind:?} on {d}: {rows} rows at the end; first run killed ({status}) after {} ms with {} checkpoints (last key {key}, {updated} rows updated); \
         old release meanwhile: {} writes behind the checkpoint ({} inserts below it), {} writes in all, {} failed; \
         resumed run: first checkpoint key {first_key} ({first_updated} rows updated), {} batches, finished in {} ms; \
         {} batches in all vs {full_run} for one full run",
        killed_after.as_millis(),
        before.len(),
        behind.ops,
        behind.inserts_below,
        writer.ops + behind.ops,
        writer.failures.len() + behind.failures.len(),
        after.len(),
        resumed_in.as_millis(),
        before.len() + after.len(),
    );
    println!("{report}");
    if first_key <= key || first_updated < updated {
        return Err(fail(format!(
            "the resumed run did not continue after the checkpoint\n{report}"
        )));
    }
    if before.len() + after.len() > full_run + 2 {
        return Err(fail(format!("finished batches were redone\n{report}")));
    }
    if behind.inserts_below == 0 {
        return Err(fail(format!(
            "no row was written behind the checkpoint\n{report}"
        )));
    }
    let failures: Vec<_> = writer.failures.iter().chain(&behind.failures).collect();
    if !failures.is_empty() {
        return Err(fail(format!(
            "the old release's writes failed: {failures:#?}\n{report}"
        )));
    }
    // Each step of the phase is recorded applied exactly once.
    for step in kind.steps() {
        let n = events
            .iter()
            .filter(|e| e.1 == "step_applied" && e.2.as_deref() == Some(*step))
            .count();
        if n != 1 {
            return Err(fail(format!("{n} step_applied events for {step}")));
        }
    }
    if !events
        .iter()
        .any(|e| e.1 == "phase_migrated" || e.1 == "phase_deployed")
    {
        return Err(fail("phase 1 was not recorded as migrated"));
    }

    // The phase's verification passes, and every row is right.
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "resume");
    let (_, outcomes) = ws.verify(ENV, PLAN, Some(1)).await?;
    if outcomes.iter().any(|o| !o.passed()) {
        return Err(fail(format!("verification fails: {outcomes:?}")));
    }
    let mut amounts: BTreeMap<i64, i64> =
        (1..=ROWS).map(|i| (2 * i, (i * 7919) % 100_000)).collect();
    amounts.extend(&writer.amounts);
    amounts.extend(&behind.amounts);
    let expected: Rows = amounts
        .iter()
        .map(|(id, a)| {
            let v = match kind {
                Kind::TypeChange => *a,
                Kind::AddColumn => 2 * a,
            };
            (*id, Some(v.to_string()))
        })
        .collect();
    let column = match kind {
        Kind::TypeChange => "amount_new",
        Kind::AddColumn => "doubled",
    };
    db.assert_rows(
        "big",
        column,
        &expected,
        &format!("{kind:?} on {d} after the resumed backfill"),
    )
    .await?;
    writer.conn.close().await;
    behind.conn.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_type_change_backfill_resumes_on_postgres() {
    with_postgres(|db| killed_backfill_resumes(db, Kind::TypeChange)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_add_column_backfill_resumes_and_sweeps_rows_behind_it_on_postgres() {
    with_postgres(|db| killed_backfill_resumes(db, Kind::AddColumn)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_type_change_backfill_resumes_on_sqlite() {
    with_sqlite(|db| killed_backfill_resumes(db, Kind::TypeChange)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_add_column_backfill_resumes_and_sweeps_rows_behind_it_on_sqlite() {
    with_sqlite(|db| killed_backfill_resumes(db, Kind::AddColumn)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_type_change_backfill_resumes_on_mysql() {
    with_mysql(|db| killed_backfill_resumes(db, Kind::TypeChange)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_add_column_backfill_resumes_and_sweeps_rows_behind_it_on_mysql() {
    with_mysql(|db| killed_backfill_resumes(db, Kind::AddColumn)).await;
}
