//! Killing the real `phasegate` binary (`kill -9`) at a known point, from
//! outside: the test holds a lock, polls the server (`pg_stat_activity`,
//! `information_schema.PROCESSLIST` / `INNODB_TRX`, bounded) until the
//! binary's statement shows up waiting on it, and SIGKILLs the process.
//! Two kinds of point:
//!
//! - [`Point::Event`]: the binary is about to record an event (`kind`,
//!   `step`). A BEFORE INSERT trigger the test puts on `phasegate_events`
//!   waits, for the events listed in `kill_point`, on a row of `kill_gate`
//!   the test holds `FOR UPDATE`.
//! - [`Point::Statement`]: the binary's DDL waits for a lock on `users`
//!   that the test holds (Postgres `LOCK TABLE … IN SHARE MODE`, MariaDB a
//!   transaction that read the table: a metadata lock). While the waiting
//!   statement is not the one asked for, the test lets it through and takes
//!   the lock again, until the one asked for waits.
//!
//! The server does not notice the dead client while its statement waits:
//! the statement carries on when the test lets go ([`Killed::release`]).

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use phasegate::dialect::Dialect;

use crate::common::{TestDb, TestResult, fail};
use crate::executor_support::{Conn, ENV, Project};

/// Where to kill.
#[derive(Debug, Clone, Copy)]
pub enum Point {
    /// Recording an event of this kind (and step, `None` for phase events).
    Event(&'static str, Option<&'static str>),
    /// A statement containing this text, waiting for its lock on `users`.
    Statement(&'static str),
}

/// The built binary, run in the project's folder.
pub fn phasegate(project: &Project, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phasegate"));
    c.arg("--config")
        .arg(project.config_path())
        .args(args)
        .current_dir(&project.dir)
        .stdin(Stdio::null());
    c
}

pub fn run(project: &Project, args: &[&str]) -> TestResult<Output> {
    Ok(phasegate(project, args).output()?)
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Creates phasegate's log in `db` for environment `env`, as a writing
/// command's first use does (read-only commands create nothing).
pub async fn create_log(db: &TestDb, env: &str) -> TestResult {
    let store = phasegate::tracker::Store::open(
        env,
        &db.url,
        db.dialect,
        std::time::Duration::from_secs(10),
    )
    .await?;
    store.close().await;
    Ok(())
}

/// Puts the stall trigger on the log (the log's tables must exist).
pub async fn install_stall(db: &TestDb) -> TestResult {
    match db.dialect {
        Dialect::Postgres => {
            db.exec("CREATE TABLE kill_gate (id int PRIMARY KEY)")
                .await?;
            db.exec("INSERT INTO kill_gate VALUES (1)").await?;
            db.exec("CREATE TABLE kill_point (kind text NOT NULL, step text)")
                .await?;
            db.exec(
                "CREATE FUNCTION kill_stall() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF EXISTS (SELECT 1 FROM kill_point WHERE kind = NEW.kind AND step IS NOT DISTINCT FROM NEW.step) THEN
                     PERFORM 1 FROM kill_gate WHERE id = 1 FOR UPDATE;
                   END IF;
                   RETURN NEW;
                 END $$",
            )
            .await?;
            db.exec("CREATE TRIGGER kill_stall BEFORE INSERT ON phasegate_events FOR EACH ROW EXECUTE FUNCTION kill_stall()").await?;
        }
        Dialect::Mysql => {
            db.exec("CREATE TABLE kill_gate (id int PRIMARY KEY) ENGINE=InnoDB")
                .await?;
            db.exec("INSERT INTO kill_gate VALUES (1)").await?;
            db.exec("CREATE TABLE kill_point (kind varchar(64) NOT NULL, step varchar(255) NULL) ENGINE=InnoDB").await?;
            db.exec(
                "CREATE TRIGGER kill_stall BEFORE INSERT ON phasegate_events FOR EACH ROW
                 BEGIN
                   IF EXISTS (SELECT 1 FROM kill_point WHERE kind = NEW.kind AND step <=> NEW.step) THEN
                     SET @kill_gate = (SELECT id FROM kill_gate WHERE id = 1 FOR UPDATE);
                   END IF;
                 END",
            )
            .await?;
        }
        Dialect::Sqlite => return Err(fail("no kill points on SQLite")),
    }
    Ok(())
}

/// The lock the test holds.
struct Holder {
    conn: Conn,
    dialect: Dialect,
}

impl Holder {
    async fn take(db: &TestDb, point: Point) -> TestResult<Holder> {
        let mut conn = Conn::open(db).await?;
        let sql = match (db.dialect, point) {
            (Dialect::Postgres, Point::Event(..)) => {
                "BEGIN; SELECT id FROM kill_gate WHERE id = 1 FOR UPDATE"
            }
            (Dialect::Postgres, Point::Statement(_)) => "BEGIN; LOCK TABLE users IN SHARE MODE",
            (_, Point::Event(..)) => {
                "START TRANSACTION; SELECT id FROM kill_gate WHERE id = 1 FOR UPDATE"
            }
            (_, Point::Statement(_)) => "START TRANSACTION; SELECT count(*) FROM users",
        };
        conn.exec(sql).await?;
        Ok(Holder {
            conn,
            dialect: db.dialect,
        })
    }

    /// Lets the waiting statement through and takes the lock again, so
    /// that the binary's next statement waits. The lock is asked for again
    /// on a new connection before this one lets go: that request queues
    /// behind the statement waiting now (a waiting exclusive request goes
    /// first, in both servers' lock queues), and so is granted as soon as
    /// that statement is done, before the binary can send its next one.
    /// Asking after letting go would race the binary's next statement.
    ///
    /// Postgres: asked after letting go, as there a run's statement that
    /// waits may already hold a weaker lock on `users` in its transaction,
    /// and a request queued ahead of its upgrade is a deadlock.
    async fn again(&mut self, db: &TestDb, waiters: usize) -> TestResult {
        if self.dialect == Dialect::Postgres {
            self.conn.exec("COMMIT").await?;
            self.conn
                .exec("BEGIN; LOCK TABLE users IN SHARE MODE")
                .await?;
            return Ok(());
        }
        let sql = "START TRANSACTION; SELECT count(*) FROM users";
        let mut next = Conn::open(db).await?;
        // Granted at once (nothing queued ahead of it) also will do.
        let granted = std::cell::Cell::new(false);
        let take = async {
            let r = next.exec(sql).await;
            granted.set(true);
            r
        };
        let queued = async {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !granted.get() && waiting(db).await?.len() <= waiters {
                if Instant::now() > deadline {
                    return Err(fail("the holder's next request never queued"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.conn.exec("COMMIT").await?;
            TestResult::Ok(())
        };
        let (taken, released) = tokio::join!(take, queued);
        released?;
        taken?;
        let old = std::mem::replace(&mut self.conn, next);
        old.close().await;
        Ok(())
    }
}

/// Server sessions of this database (other than the test's) waiting for a
/// lock, as `(id, statement)`.
pub async fn waiting(db: &TestDb) -> TestResult<Vec<(i64, String)>> {
    let sql = match db.dialect {
        Dialect::Postgres => {
            "SELECT CAST(pid AS text) || ' ' || query FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        }
        _ => {
            "SELECT CONCAT(p.ID, ' ', COALESCE(p.INFO, '')) FROM information_schema.PROCESSLIST p \
             WHERE p.DB = DATABASE() AND p.ID <> CONNECTION_ID() \
               AND (p.STATE LIKE 'Waiting for table metadata lock' OR p.INFO LIKE 'SET @kill_gate%')"
        }
    };
    Ok(db
        .texts(sql)
        .await?
        .iter()
        .filter_map(|row| {
            let (id, q) = row.split_once(' ')?;
            Some((id.parse().ok()?, q.to_string()))
        })
        .collect())
}

/// Whether server session `id` is still connected.
pub async fn connected(db: &TestDb, id: i64) -> TestResult<bool> {
    let sql = match db.dialect {
        Dialect::Postgres => format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {id}"),
        _ => format!("SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = {id}"),
    };
    Ok(db.scalar(&sql).await? > 0)
}

/// Waits (at most 60 s) until server session `session` has ended, `after`
/// what should end it.
async fn gone(db: &TestDb, session: i64, after: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected(db, session).await? {
        if Instant::now() > deadline {
            return Err(fail(format!(
                "the killed run's session {session} is still connected 60s after {after}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A binary killed at its point, its server session still waiting on the
/// test's lock.
pub struct Killed {
    holder: Holder,
    /// The binary's server session (backend pid, connection id).
    pub session: i64,
    /// What it was running.
    pub statement: String,
}

impl Killed {
    /// Ends the server session first, as the refusal says an operator may
    /// (`KILL n`, `pg_terminate_backend(n)`): the statement does not run.
    /// Then as [`Killed::release`], once the session is gone: both servers
    /// end a session asynchronously, and a lock let go before the killed
    /// statement noticed could be granted to it (MariaDB then ran the
    /// `CREATE TRIGGER` it was waiting to run).
    pub async fn abort(self, db: &TestDb) -> TestResult {
        let end = match db.dialect {
            Dialect::Postgres => format!("SELECT pg_terminate_backend({})", self.session),
            _ => format!("KILL {}", self.session),
        };
        db.exec(&end).await?;
        gone(db, self.session, "it was ended").await?;
        self.release(db).await
    }

    /// Lets the server-side statement go on, and waits (bounded) until the
    /// session has ended.
    pub async fn release(self, db: &TestDb) -> TestResult {
        let Killed {
            mut holder,
            session,
            ..
        } = self;
        holder.conn.exec("COMMIT").await?;
        holder.conn.close().await;
        gone(db, session, "its lock was released").await?;
        // The stalled insert read (and, on MariaDB, locked) the point:
        // cleared only now, so that the runs that finish the job go through.
        db.exec("DELETE FROM kill_point").await?;
        Ok(())
    }
}

/// Runs `args` and kills it with SIGKILL once it waits at `point`.
pub async fn kill_at(
    db: &TestDb,
    project: &Project,
    args: &[&str],
    point: Point,
) -> TestResult<Killed> {
    if let Point::Event(kind, step) = point {
        let step = step.map_or("NULL".to_string(), |s| format!("'{s}'"));
        db.exec("DELETE FROM kill_point").await?;
        db.exec(&format!(
            "INSERT INTO kill_point (kind, step) VALUES ('{kind}', {step})"
        ))
        .await?;
    }
    let mut holder = Holder::take(db, point).await?;
    let mut child: Child = phasegate(project, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (session, statement) = loop {
        let found = waiting(db).await?;
        let hit = found.iter().find(|(_, q)| match point {
            // MariaDB shows the trigger's statement that waits.
            Point::Event(..) => {
                q.trim_start().starts_with("INSERT INTO phasegate_events")
                    || q.starts_with("SET @kill_gate")
            }
            Point::Statement(s) => q.contains(s),
        });
        if let Some((id, q)) = hit {
            break (*id, q.clone());
        }
        if let Point::Statement(_) = point
            && !found.is_empty()
        {
            // Another statement of the run waits: let it through.
            holder.again(db, found.len()).await?;
            continue;
        }
        if child.try_wait()?.is_some() {
            let out = child.wait_with_output()?;
            return Err(fail(format!(
                "`phasegate {}` ended ({}) before reaching {point:?}:\n{}",
                args.join(" "),
                out.status,
                text(&out)
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(fail(format!("{point:?} was not reached within 60s")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill()?;
    child.wait()?;
    Ok(Killed {
        holder,
        session,
        statement,
    })
}

/// The step ids an output names as "step X started … never finished" (or,
/// for an undo, "rolling back step X of phase N started … never finished").
pub fn never_finished(output: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in output.split("step ").skip(1) {
        let Some((id, rest)) = part.split_once(' ') else {
            continue;
        };
        let rest = match rest.strip_prefix("of phase ") {
            Some(r) => r.split_once(' ').map_or("", |(_, r)| r),
            None => rest,
        };
        if rest.starts_with("started") && part.contains("never finished") {
            let id = id.to_string();
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

/// Runs `command` (`apply` or `rollback` of `plan`) until it succeeds,
/// settling each step it reports as never finished through `resolve`:
/// `--as applied` when the catalog shows its change, else (refused)
/// `--as not-applied`, as the refusal says. Returns the transcript.
pub fn finish(project: &Project, plan: &str, command: &str) -> TestResult<String> {
    let mut transcript = String::new();
    for _ in 0..8 {
        let out = run(project, &[command, "--env", ENV, plan])?;
        transcript.push_str(&format!("$ {command}\n{}\n", text(&out)));
        // The killed run's last statement may have finished the job on the
        // server (its session recorded the rollback after the client died).
        let done = command == "rollback" && text(&out).contains("nothing to roll back");
        if out.status.success() || done {
            return Ok(transcript);
        }
        let steps = never_finished(&text(&out));
        if steps.is_empty() {
            return Err(fail(format!(
                "`{command}` failed and names no step to resolve:\n{transcript}"
            )));
        }
        for step in steps {
            let applied = run(
                project,
                &[
                    "resolve", "--env", ENV, plan, "--step", &step, "--as", "applied",
                ],
            )?;
            transcript.push_str(&format!(
                "$ resolve {step} --as applied\n{}\n",
                text(&applied)
            ));
            if applied.status.success() {
                continue;
            }
            if !text(&applied).contains("cannot be recorded as applied") {
                return Err(fail(format!(
                    "resolve --as applied failed otherwise:\n{transcript}"
                )));
            }
            let not = run(
                project,
                &[
                    "resolve",
                    "--env",
                    ENV,
                    plan,
                    "--step",
                    &step,
                    "--as",
                    "not-applied",
                ],
            )?;
            transcript.push_str(&format!(
                "$ resolve {step} --as not-applied\n{}\n",
                text(&not)
            ));
            if !not.status.success() {
                return Err(fail(format!(
                    "resolve --as not-applied failed:\n{transcript}"
                )));
            }
        }
    }
    Err(fail(format!(
        "`{command}` did not finish in 8 rounds:\n{transcript}"
    )))
}
