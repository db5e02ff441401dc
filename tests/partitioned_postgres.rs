//! Partitioned and inherited tables on a real Postgres, through the
//! executor (`Workspace::apply`) the way an environment runs a plan.
//!
//! `events` is range-partitioned by a date into `events_2024`,
//! `events_2025` (itself range-partitioned into two halves) and
//! `events_2026`, with rows in every partition.
//!
//! - The catalog reads the partition key, the tree of partitions, a
//!   partition's parent and inheritance both ways.
//! - `add_index` and a unique `add_index` (which includes the partition key)
//!   roll out while the application inserts, reads and updates rows on its
//!   own connections: no query fails, the parent's index ends valid with one
//!   index attached per partition, and the planner uses it. Rolling back
//!   removes every index the plan built.
//! - Each refused case (a unique index without the partition key, a foreign
//!   key on the partitioned table, a column change on a partition, a
//!   partition-key column, inheritance) fails before any DDL, with a message
//!   that names the table and the reason; the schema is unchanged. The
//!   binary exits non-zero.

mod common;
mod executor_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use common::{TestDb, TestResult, fail, with_postgres};
use executor_support::{ENV, Project};
use phasegate::catalog::Lookup;
use phasegate::execute::Workspace;
use phasegate::name::TableName;
use phasegate::tracker::SystemClock;
use sqlx::{Connection, PgConnection};

const PLAN: &str = "change";
/// Rows in `events` before the plan starts, spread over every partition.
const ROWS: i64 = 20_000;
/// The ids of the rows the application inserts, above the initial ones.
static NEXT_ID: AtomicI64 = AtomicI64::new(1_000_000);

async fn schema(db: &TestDb) -> TestResult {
    for sql in [
        "CREATE TABLE users (id bigint PRIMARY KEY)",
        "INSERT INTO users SELECT i FROM generate_series(0, 99) AS s(i)",
        "CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, email text, \
           user_id bigint, note text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)",
        "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') \
           PARTITION BY RANGE (at)",
        "CREATE TABLE events_2025_h1 PARTITION OF events_2025 FOR VALUES FROM ('2025-01-01') TO ('2025-07-01')",
        "CREATE TABLE events_2025_h2 PARTITION OF events_2025 FOR VALUES FROM ('2025-07-01') TO ('2026-01-01')",
        "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        // 1,000 days from 2024-01-01: every partition gets rows.
        "INSERT INTO events SELECT i, date '2024-01-01' + (i % 1000), 'user' || i || '@example.com', i % 100, 'n' \
           FROM generate_series(1, 20000) AS s(i)",
        "CREATE TABLE base (id bigint PRIMARY KEY, v text)",
        "CREATE TABLE kid (extra int) INHERITS (base)",
        "INSERT INTO base VALUES (1, 'a')",
        "INSERT INTO kid VALUES (2, 'b', 1)",
        "ANALYZE",
    ] {
        db.exec(sql).await?;
    }
    for part in [
        "events_2024",
        "events_2025_h1",
        "events_2025_h2",
        "events_2026",
    ] {
        let n = db.scalar(&format!("SELECT count(*) FROM {part}")).await?;
        if n == 0 {
            return Err(fail(format!("{part} has no rows")));
        }
    }
    Ok(())
}

fn t(s: &str) -> TableName {
    TableName::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_catalog_reads_partitions_and_inheritance() {
    with_postgres(|db| async move {
        schema(&db).await?;
        let c = db
            .catalog(&[
                "events",
                "events_2025",
                "events_2024",
                "base",
                "kid",
                "users",
            ])
            .await?;
        let facts = |name: &str| match c.lookup(&t(name)) {
            Lookup::Found(f) => Ok(f.partitioning.clone()),
            _ => Err(fail(format!("{name} not read"))),
        };
        let events = facts("events")?;
        let key = events
            .key
            .clone()
            .ok_or_else(|| fail("events has no key"))?;
        assert_eq!(
            (key.strategy.as_str(), key.definition.as_str()),
            ("range", "RANGE (at)")
        );
        assert_eq!(
            key.columns.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            ["at"]
        );
        let tree: Vec<(String, usize, bool)> = events
            .partitions
            .iter()
            .map(|p| (p.table.to_string(), p.partitions.len(), p.key.is_some()))
            .collect();
        assert_eq!(
            tree,
            vec![
                ("public.events_2024".to_string(), 0, false),
                ("public.events_2025".to_string(), 2, true),
                ("public.events_2026".to_string(), 0, false),
            ]
        );
        assert_eq!(
            events.partitions[1].partitions[0].bound.as_deref(),
            Some("FOR VALUES FROM ('2025-01-01') TO ('2025-07-01')")
        );
        assert_eq!(events.all_partitions().len(), 5);
        assert!(events.partition_of.is_none() && !events.has_inheritance());
        let sub = facts("events_2025")?;
        assert_eq!(sub.partition_of, Some(t("public.events")));
        assert_eq!(sub.partitions.len(), 2);
        let leaf = facts("events_2024")?;
        assert!(leaf.key.is_none() && leaf.partitions.is_empty() && leaf.is_partition());
        assert_eq!(leaf.inherited_columns.len(), 5);
        let base = facts("base")?;
        assert_eq!(base.inherited_by, vec![t("public.kid")]);
        assert!(!base.is_partitioned() && base.inherited_columns.is_empty());
        let kid = facts("kid")?;
        assert_eq!(kid.inherits, vec![t("public.base")]);
        assert_eq!(
            kid.inherited_columns
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>(),
            ["id", "v"]
        );
        assert!(facts("users")?.is_plain());
        Ok(())
    })
    .await;
}

/// The application: inserts a row into a random partition, reads one back
/// by email, updates one, on its own connection, until told to stop.
struct App {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>,
}

impl App {
    async fn start(db: &TestDb, instances: u64) -> TestResult<App> {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..instances {
            let mut conn = PgConnection::connect(&db.url).await?;
            let (stop, ops) = (stop.clone(), ops.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                    let email = format!("app{id}@example.com");
                    sqlx::query(
                        "INSERT INTO events (id, at, email, user_id, note) \
                         VALUES ($1, date '2024-01-01' + ($1 % 1000)::int, $2, $1 % 100, 'app')",
                    )
                    .bind(id)
                    .bind(&email)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| format!("insert {id}: {e}"))?;
                    let found: i64 =
                        sqlx::query_scalar("SELECT count(*) FROM events WHERE email = $1")
                            .bind(&email)
                            .fetch_one(&mut conn)
                            .await
                            .map_err(|e| format!("read {email}: {e}"))?;
                    if found != 1 {
                        return Err(format!("read {email}: {found} rows, expected 1"));
                    }
                    let old = 1 + (id % ROWS);
                    sqlx::query("UPDATE events SET note = 'seen' WHERE id = $1")
                        .bind(old)
                        .execute(&mut conn)
                        .await
                        .map_err(|e| format!("update {old}: {e}"))?;
                    ops.fetch_add(3, Ordering::Relaxed);
                }
                let _ = conn.close().await;
                Ok(())
            }));
        }
        Ok(App { stop, ops, tasks })
    }

    /// Stops the instances; the number of queries they ran, or the first failure.
    async fn stop(self) -> TestResult<u64> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(fail(format!("the application failed: {e}"))),
                Ok(Err(e)) => return Err(fail(format!("the application panicked: {e}"))),
                Err(_) => return Err(fail("the application did not stop within 30s")),
            }
        }
        Ok(self.ops.load(Ordering::Relaxed))
    }
}

/// Applies the next phase while the application runs; the queries it ran.
async fn apply_with_app(db: &TestDb, ws: &Workspace<'_>) -> TestResult<u64> {
    let app = App::start(db, 2).await?;
    // Let the application get going before the DDL starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = app.ops.load(Ordering::Relaxed);
    let applied = ws.apply(ENV, PLAN, false).await;
    let during = app.ops.load(Ordering::Relaxed) - before;
    let total = app.stop().await?;
    let applied = applied.map_err(|e| fail(format!("apply failed: {e}")))?;
    if during == 0 {
        return Err(fail(format!(
            "no application query ran during the apply of phase {}",
            applied.phase
        )));
    }
    eprintln!(
        "phase {}: {during} application queries ran during the apply, {total} in all, none failed",
        applied.phase
    );
    if !applied.deployed {
        ws.mark(ENV, PLAN, applied.phase, &format!("v{}", applied.phase))
            .await?;
    }
    Ok(total)
}

/// The parent's index is valid, every partition has one attached (the
/// sub-partitioned one through its own), and the planner uses them.
async fn assert_index_complete(db: &TestDb, index: &str, probe: &str) -> TestResult {
    if db.index_state(index).await? != Some(true) {
        return Err(fail(format!(
            "{index} is not valid: {:?}",
            db.schema().await?
        )));
    }
    let attached = db
        .texts(&format!(
            "WITH RECURSIVE tree(oid) AS ( \
               SELECT '{index}'::regclass::oid \
               UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid) \
             SELECT format('%s on %s valid=%s', x.indexrelid::regclass, x.indrelid::regclass, x.indisvalid) \
               FROM tree JOIN pg_index x ON x.indexrelid = tree.oid ORDER BY 1"
        ))
        .await?;
    let tables: Vec<&str> = attached
        .iter()
        .filter_map(|l| l.split(" on ").nth(1))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut sorted = tables.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "events",
            "events_2024",
            "events_2025",
            "events_2025_h1",
            "events_2025_h2",
            "events_2026"
        ],
        "{attached:?}"
    );
    assert!(
        attached.iter().all(|l| l.ends_with("valid=t")),
        "{attached:?}"
    );
    db.exec("ANALYZE events").await?;
    let plan = db
        .texts(&format!("EXPLAIN SELECT * FROM events WHERE {probe}"))
        .await?
        .join("\n");
    if !plan.contains("Index") || !plan.contains(index) {
        return Err(fail(format!(
            "the planner does not use {index} for {probe}:\n{plan}"
        )));
    }
    Ok(())
}

async fn rows_intact(db: &TestDb, at_least: i64) -> TestResult {
    let n = db.scalar("SELECT count(*) FROM events").await?;
    let seen = db
        .scalar("SELECT count(*) FROM events WHERE email IS NULL OR id IS NULL")
        .await?;
    if n < at_least || seen != 0 {
        return Err(fail(format!(
            "events has {n} rows ({seen} broken), expected at least {at_least}"
        )));
    }
    Ok(())
}

#[tokio::test]
async fn add_index_rolls_out_partition_by_partition_under_load() {
    with_postgres(|db| async move {
        schema(&db).await?;
        let plan = "name: change\nchanges:\n  - add_index: { table: events, columns: [email] }\n";
        let project = Project::new(&db, &[], PLAN, plan)?;
        let clock = SystemClock;
        let ws = Workspace::new(&project.config, &clock, "partitioned");
        let planned = ws.plan_against(ENV, PLAN).await?;
        let steps: Vec<&str> = planned.steps.iter().map(|s| s.id.as_str()).collect();
        // The parent, three partitions, one of them sub-partitioned in two: five
        // partitions built (or ON ONLY) and attached, and the check it is valid.
        assert_eq!(steps.len(), 12, "{steps:?}");
        let ops = apply_with_app(&db, &ws).await?;
        assert_index_complete(&db, "events_email_idx", "email = 'user5@example.com'").await?;
        rows_intact(&db, ROWS + (ops / 3) as i64).await?;

        // Rolled back, every index the plan built is gone; applied again, it is complete.
        ws.rollback(ENV, PLAN, false).await?;
        let left = db
            .texts("SELECT indexrelid::regclass::text FROM pg_index WHERE indexrelid::regclass::text LIKE 'events_email_idx%'")
            .await?;
        assert!(left.is_empty(), "{left:?}");
        apply_with_app(&db, &ws).await?;
        assert_index_complete(&db, "events_email_idx", "email = 'user5@example.com'").await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_unique_index_with_the_partition_key_rolls_out_under_load() {
    with_postgres(|db| async move {
        schema(&db).await?;
        let plan = "name: change\nchanges:\n  - add_index: { table: events, columns: [email, at], unique: true }\n";
        let project = Project::new(&db, &[], PLAN, plan)?;
        let clock = SystemClock;
        let ws = Workspace::new(&project.config, &clock, "partitioned");
        // Phase 1: the application stops writing duplicates; phase 2 verifies and builds.
        apply_with_app(&db, &ws).await?;
        let ops = apply_with_app(&db, &ws).await?;
        assert_index_complete(
            &db,
            "events_email_at_key",
            "email = 'user5@example.com' AND at = date '2024-01-06'",
        )
        .await?;
        rows_intact(&db, ROWS + (ops / 3) as i64).await?;
        db.assert_fails(
            "INSERT INTO events (id, at, email) VALUES (99999999, '2025-08-01', 'dup@example.com'), \
                                                   (99999998, '2025-08-01', 'dup@example.com')",
            "duplicate key value violates unique constraint",
        )
        .await?;
        Ok(())
    })
    .await;
}

/// The schema, without phasegate's own tables.
async fn user_schema(db: &TestDb) -> TestResult<Vec<String>> {
    Ok(db
        .schema()
        .await?
        .into_iter()
        .filter(|l| !l.contains("phasegate"))
        .collect())
}

#[tokio::test]
async fn refused_changes_stop_before_any_ddl() {
    with_postgres(|db| async move {
        schema(&db).await?;
        let cases = [
            (
                "  - add_index: { table: events, columns: [email], unique: true }\n",
                "events is partitioned by RANGE (at), and the index (email) lacks at",
            ),
            (
                "  - add_foreign_key: { table: events, columns: [user_id], references: { table: users, columns: [id] } }\n",
                "events is partitioned, and Postgres 1",
            ),
            (
                "  - rename_column: { table: events_2024, from: note, to: remark }\n",
                "events_2024 is a partition of public.events",
            ),
            (
                // A rename would carry the primary key's index with CREATE INDEX CONCURRENTLY.
                "  - rename_column: { table: events, from: id, to: event_id }\n",
                "events is partitioned and index events_pkey uses id",
            ),
            (
                "  - drop_column: { table: events, column: at }\n",
                "at is in the partition key of events (RANGE (at))",
            ),
            (
                "  - add_index: { table: base, columns: [v], unique: true }\n",
                "base has inheritance children (public.kid)",
            ),
            (
                "  - add_foreign_key: { table: users, columns: [id], references: { table: base, columns: [id] } }\n",
                "a foreign key sees only the rows stored in base itself",
            ),
            (
                "  - change_column_type: { table: kid, column: v, type: integer }\n",
                "kid.v is inherited from public.base",
            ),
        ];
        let before = user_schema(&db).await?;
        let clock = SystemClock;
        for (change, reason) in cases {
            // A first change that would run DDL if the plan were not refused whole.
            let plan = format!(
                "name: change\nchanges:\n  - add_index: {{ table: users, columns: [id], name: users_probe_idx }}\n{change}"
            );
            let project = Project::new(&db, &[], PLAN, &plan)?;
            let ws = Workspace::new(&project.config, &clock, "partitioned");
            let err = match ws.apply(ENV, PLAN, false).await {
                Ok(a) => return Err(fail(format!("{change} was applied: {:?}", a.ran))),
                Err(e) => e.to_string(),
            };
            if !err.contains(reason) {
                return Err(fail(format!("{change}: the error does not say `{reason}`: {err}")));
            }
            let after = user_schema(&db).await?;
            if after != before {
                return Err(fail(format!("{change}: the schema changed before the refusal: {after:#?}")));
            }
        }
        // The binary says so on stderr and exits non-zero.
        let plan = format!("name: change\nchanges:\n{}", cases[0].0);
        let project = Project::new(&db, &[], PLAN, &plan)?;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phasegate"))
            .current_dir(&project.dir)
            .args(["apply", "--env", ENV, PLAN])
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || out.status.code() == Some(0) || !stderr.contains(cases[0].1) {
            return Err(fail(format!("phasegate apply: {:?}, stderr: {stderr}", out.status)));
        }
        if user_schema(&db).await? != before {
            return Err(fail("phasegate apply changed the schema"));
        }
        Ok(())
    })
    .await;
}

/// Applies every phase of plan `name`, marking each deployed.
async fn roll_out(ws: &Workspace<'_>, name: &str) -> TestResult {
    loop {
        let applied = ws
            .apply(ENV, name, false)
            .await
            .map_err(|e| fail(format!("{name}: {e}")))?;
        if !applied.deployed {
            ws.mark(
                ENV,
                name,
                applied.phase,
                &format!("{name}-v{}", applied.phase),
            )
            .await?;
        }
        if applied.phase == applied.phases {
            return Ok(());
        }
    }
}

#[tokio::test]
async fn checks_not_null_renames_and_drops_work_on_a_partitioned_table() {
    with_postgres(|db| async move {
        schema(&db).await?;
        let clock = SystemClock;
        for (name, changes) in [
            (
                "constraints",
                "  - add_check: { table: events, name: id_positive, check: \"id > 0\" }\n  - set_not_null: { table: events, column: email }\n",
            ),
            (
                "rename",
                "  - rename_column: { table: events, from: user_id, to: account_id }\n",
            ),
            ("drop", "  - drop_column: { table: events, column: note }\n"),
        ] {
            let project = Project::new(&db, &[], name, &format!("name: {name}\nchanges:\n{changes}"))?;
            let ws = Workspace::new(&project.config, &clock, "partitioned");
            roll_out(&ws, name).await?;
        }
        let leaves = ["events_2024", "events_2025_h1", "events_2025_h2", "events_2026"];
        for leaf in leaves {
            let check = db
                .texts(&format!(
                    "SELECT format('%s validated=%s', conname, convalidated) FROM pg_constraint \
                      WHERE conrelid = '{leaf}'::regclass AND contype = 'c'"
                ))
                .await?;
            assert_eq!(check, ["id_positive validated=t"], "{leaf}");
            if db.is_nullable(leaf, "email").await? {
                return Err(fail(format!("{leaf}.email is still nullable")));
            }
            if db.has_column(leaf, "user_id").await? || db.has_column(leaf, "note").await? {
                return Err(fail(format!("{leaf} still has user_id or note")));
            }
        }
        let moved = db
            .scalar("SELECT count(*) FROM events WHERE account_id IS DISTINCT FROM id % 100")
            .await?;
        assert_eq!(moved, 0, "rows whose account_id is not the old user_id");
        let triggers = db
            .scalar("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'events%'")
            .await?;
        assert_eq!(triggers, 0, "the rename's sync triggers are gone");
        Ok(())
    })
    .await;
}
