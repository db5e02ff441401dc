//! Zero downtime, proven on real databases: the executor
//! ([`Workspace::apply`] / [`Workspace::mark`], configured by a
//! `phasegate.yaml`) rolls a plan out phase by phase over a populated table
//! (10,000 rows, backfilled in batches of 500) while the application keeps
//! running queries against it on its own connections.
//!
//! - While phase k's migrations apply, release k-1 runs (two instances).
//! - After them, release k-1 and release k run side by side (a rolling
//!   deploy), then the phase is marked deployed.
//! - Every query of a supported release must succeed, and every read must
//!   return what the application last wrote; each apply must overlap client
//!   queries (counted), or the test proves nothing.
//! - At the end: no row lost or extra, every row's value what the writes of
//!   both releases (and the backfill) put there; and the release the plan
//!   retired now fails (the negative control: the client does notice).
//!
//! Then the lock discipline: a DDL facing a long transaction gives way
//! after `lock_timeout` × `lock_retries` without stalling other sessions
//! for longer than `lock_timeout`, and succeeds once the transaction ends;
//! a failed `CREATE INDEX CONCURRENTLY` leaves no INVALID index behind.
//!
//! Every scenario runs on Postgres, SQLite and MySQL/MariaDB, each with the
//! queries an application on that database sends (on MySQL: positional `?`
//! parameters, `CAST(… AS CHAR)`); the Postgres-only behaviours (concurrent
//! index builds, NOT VALID constraints) stay Postgres-only.

mod common;
mod executor_support;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Rows, TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use executor_support::{Conn, ENV, Project, Query, Rng, int, null, series, text};
use phasegate::dialect::Dialect;
use phasegate::execute::{RunError, Workspace};
use phasegate::plan::StepKind;
use phasegate::tracker::SystemClock;

/// Rows in each table before the plan starts.
const ROWS: i64 = 10_000;
/// Ops each instance runs during a rolling deploy.
const ROLLING_OPS: u64 = 300;
/// Bounds on an instance's ops while an apply runs.
const APPLY_MAX_OPS: u64 = 200_000;
const APPLY_MAX_TIME: Duration = Duration::from_secs(60);
const PLAN: &str = "change";

// ---------------------------------------------------------------------------
// The application model
// ---------------------------------------------------------------------------

/// What a row's checked column must hold: `exact` when the application
/// wrote it (a read must return it); otherwise the value a backfill will
/// give it (reads before then may see NULL).
#[derive(Debug, Clone, PartialEq)]
struct Cell {
    value: Option<String>,
    exact: bool,
}

fn exact(v: Option<String>) -> Cell {
    Cell {
        value: v,
        exact: true,
    }
}

fn filled_later(v: &str) -> Cell {
    Cell {
        value: Some(v.to_string()),
        exact: false,
    }
}

/// A one-off job: its SQL, and what it does to each row's model.
type Job = (String, fn(&mut Cell));

/// One intent's application: what each release's code sends. Release k is
/// the code shipped by phase k; release 0 the code before the plan.
trait Scenario: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The plan's `changes:` item (indented by two spaces).
    fn change(&self) -> &'static str;
    /// The phases as `kind:slug` lists, per dialect.
    fn shape(&self, d: Dialect) -> Vec<Vec<&'static str>>;
    /// The table whose rows the application reads and writes.
    fn table(&self) -> &'static str;
    /// Creates and fills the tables (ids 1..=ROWS).
    fn setup(&self, db: &TestDb) -> Vec<String>;
    /// The checked column's value of initial row `id`.
    fn initial(&self, id: i64) -> Cell;
    /// The checked column, read at the end (after the plan completes).
    fn final_value(&self) -> &'static str;
    /// The application's queries are what release `release` sends to a
    /// database of dialect `d`.
    fn insert(&self, d: Dialect, release: usize, id: i64, rng: &mut Rng) -> (Query, Cell);
    /// The update, and the checked column's new value when it changes.
    fn update(&self, d: Dialect, release: usize, id: i64, rng: &mut Rng) -> (Query, Option<Cell>);
    /// A read of row `id` whose first column is the checked one when the
    /// second value is true.
    fn select(&self, d: Dialect, release: usize, id: i64) -> (Query, bool);
    /// The release that stops working once the plan completes.
    fn retired(&self) -> Option<usize>;
    /// Statements that must fail once the plan completes.
    fn forbidden(&self) -> Vec<String> {
        Vec::new()
    }
    /// A one-off job before phase `phase` (after the previous deploy
    /// reached every instance), and how it changes the model.
    fn before_phase(&self, _phase: usize) -> Option<Job> {
        None
    }
    /// Schema facts that must hold at the end.
    fn schema_checks(&self, _db: &TestDb) -> Vec<(String, i64)> {
        Vec::new()
    }
}

/// `expr` as text, the way an application reading a number as a string
/// spells it: MySQL casts to CHAR (it has no TEXT target type).
fn as_text(d: Dialect, expr: &str) -> String {
    match d {
        Dialect::Mysql => format!("CAST({expr} AS CHAR)"),
        Dialect::Postgres | Dialect::Sqlite => format!("CAST({expr} AS TEXT)"),
    }
}

/// `'prefix' || i || 'suffix'`: MySQL's `||` is a logical OR (unless the
/// session sets PIPES_AS_CONCAT); its string concatenation is CONCAT.
fn concat(db: &TestDb, parts: &[&str]) -> String {
    match db.dialect {
        Dialect::Mysql => format!("CONCAT({})", parts.join(", ")),
        Dialect::Postgres | Dialect::Sqlite => parts.join(" || "),
    }
}

fn seq_value(prefix: &str, rng: &mut Rng) -> String {
    format!("{prefix}-{}", rng.below(1_000_000_000))
}

// --- rename_column -----------------------------------------------------------

struct Rename;

impl Scenario for Rename {
    fn name(&self) -> &'static str {
        "rename_column"
    }
    fn change(&self) -> &'static str {
        "  - rename_column: { table: users, from: name, to: full_name }\n"
    }
    fn shape(&self, _: Dialect) -> Vec<Vec<&'static str>> {
        vec![
            vec![
                "migration:add_column",
                "migration:sync_trigger",
                "backfill:backfill",
                "verify:verify",
            ],
            vec!["app:app_switch"],
            vec!["migration:contract"],
        ]
    }
    fn table(&self) -> &'static str {
        "users"
    }
    fn setup(&self, db: &TestDb) -> Vec<String> {
        // SQLite's sync triggers run AFTER the write, so a NOT NULL old
        // column would refuse new-release inserts (the planner says so).
        // MySQL's are BEFORE triggers that set NEW.name, as on Postgres.
        let name = db.pick3("text NOT NULL", "text", "varchar(200) NOT NULL");
        vec![
            format!(
                "CREATE TABLE users (id {} PRIMARY KEY, name {name}, note text)",
                db.pick3("bigint", "INTEGER", "bigint")
            ),
            format!(
                "INSERT INTO users (id, name, note) SELECT i, {}, 'seed' FROM {}",
                concat(db, &["'name '", "i"]),
                series(db, ROWS as u32)
            ),
        ]
    }
    fn initial(&self, id: i64) -> Cell {
        exact(Some(format!("name {id}")))
    }
    fn final_value(&self) -> &'static str {
        "full_name"
    }
    fn insert(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Cell) {
        let v = seq_value(&format!("r{r}"), rng);
        let col = if r < 2 { "name" } else { "full_name" };
        let q = Query::new(
            &format!("INSERT INTO users (id, {col}, note) VALUES ($1, $2, $3)"),
            vec![int(id), text(&v), text(format!("r{r}"))],
        );
        (q, exact(Some(v)))
    }
    fn update(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Option<Cell>) {
        let v = seq_value(&format!("u{r}"), rng);
        let col = if r < 2 { "name" } else { "full_name" };
        let q = Query::new(
            &format!("UPDATE users SET {col} = $2, note = $3 WHERE id = $1"),
            vec![int(id), text(&v), text(format!("r{r}"))],
        );
        (q, Some(exact(Some(v))))
    }
    fn select(&self, _: Dialect, r: usize, id: i64) -> (Query, bool) {
        let col = if r < 2 { "name" } else { "full_name" };
        (
            Query::new(
                &format!("SELECT {col}, note FROM users WHERE id = $1"),
                vec![int(id)],
            ),
            true,
        )
    }
    fn retired(&self) -> Option<usize> {
        Some(1)
    }
    fn schema_checks(&self, db: &TestDb) -> Vec<(String, i64)> {
        vec![(column_count(db, "users", "name"), 0)]
    }
}

// --- add_column, required -----------------------------------------------------

struct AddRequired;

const CURRENCIES: [&str; 3] = ["USD", "GBP", "CHF"];

impl Scenario for AddRequired {
    fn name(&self) -> &'static str {
        "add_column required"
    }
    fn change(&self) -> &'static str {
        "  - add_column: { table: orders, column: currency, type: text, nullable: false, backfill: \"'EUR'\" }\n"
    }
    fn shape(&self, d: Dialect) -> Vec<Vec<&'static str>> {
        let enforce = match d {
            // MODIFY … NOT NULL, rebuilt in place (ALGORITHM=INPLACE, LOCK=NONE).
            Dialect::Mysql => vec![
                "backfill:backfill",
                "verify:verify_no_nulls",
                "migration:set_not_null",
            ],
            Dialect::Postgres => vec![
                "backfill:backfill",
                "verify:verify_no_nulls",
                "migration:check_not_valid",
                "migration:validate_check",
                "migration:set_not_null",
            ],
            Dialect::Sqlite => vec![
                "backfill:backfill",
                "verify:verify_no_nulls",
                "migration:enforce_not_null",
            ],
        };
        vec![vec!["migration:add_column", "app:app_write_value"], enforce]
    }
    fn table(&self) -> &'static str {
        "orders"
    }
    fn setup(&self, db: &TestDb) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE orders (id {} PRIMARY KEY, total integer NOT NULL, note text)",
                db.pick3("bigint", "INTEGER", "bigint")
            ),
            format!(
                "INSERT INTO orders (id, total, note) SELECT i, i % 1000, 'seed' FROM {}",
                series(db, ROWS as u32)
            ),
        ]
    }
    fn initial(&self, _: i64) -> Cell {
        filled_later("EUR")
    }
    fn final_value(&self) -> &'static str {
        "currency"
    }
    fn insert(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Cell) {
        let total = rng.range(0, 100_000);
        if r == 0 {
            let q = Query::new(
                "INSERT INTO orders (id, total, note) VALUES ($1, $2, $3)",
                vec![int(id), int(total), text("r0")],
            );
            return (q, filled_later("EUR"));
        }
        let c = CURRENCIES[rng.below(3) as usize];
        let q = Query::new(
            "INSERT INTO orders (id, total, note, currency) VALUES ($1, $2, $3, $4)",
            vec![int(id), int(total), text(format!("r{r}")), text(c)],
        );
        (q, exact(Some(c.into())))
    }
    fn update(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Option<Cell>) {
        let total = rng.range(0, 100_000);
        if r == 0 {
            let q = Query::new(
                "UPDATE orders SET total = $2, note = $3 WHERE id = $1",
                vec![int(id), int(total), text("u0")],
            );
            return (q, None);
        }
        // Release 1 writes the column on every insert and update (its app stage).
        let c = CURRENCIES[rng.below(3) as usize];
        let q = Query::new(
            "UPDATE orders SET total = $2, currency = $3 WHERE id = $1",
            vec![int(id), int(total), text(c)],
        );
        (q, Some(exact(Some(c.into()))))
    }
    fn select(&self, d: Dialect, r: usize, id: i64) -> (Query, bool) {
        if r == 0 {
            let q = Query::new(
                &format!(
                    "SELECT {}, note FROM orders WHERE id = $1",
                    as_text(d, "total")
                ),
                vec![int(id)],
            );
            return (q, false);
        }
        let q = Query::new(
            "SELECT currency, total FROM orders WHERE id = $1",
            vec![int(id)],
        );
        (q, true)
    }
    fn retired(&self) -> Option<usize> {
        Some(0)
    }
    fn schema_checks(&self, db: &TestDb) -> Vec<(String, i64)> {
        match db.dialect {
            Dialect::Postgres | Dialect::Mysql => {
                vec![(not_null_count(db, "orders", "currency"), 1)]
            }
            Dialect::Sqlite => Vec::new(),
        }
    }
}

// --- change_column_type int → bigint --------------------------------------------

struct IntToBigint;

impl IntToBigint {
    fn column(r: usize) -> &'static str {
        if r < 2 { "amount" } else { "amount_new" }
    }
    /// While the old int column exists every value must fit in it; once it
    /// is gone (release 3), the new release writes what only a bigint holds.
    fn amount(r: usize, rng: &mut Rng) -> i64 {
        if r >= 3 {
            rng.range(3_000_000_000, 9_000_000_000_000)
        } else {
            rng.range(-2_000_000_000, 2_000_000_000)
        }
    }
}

impl Scenario for IntToBigint {
    fn name(&self) -> &'static str {
        "change_column_type int→bigint"
    }
    fn change(&self) -> &'static str {
        "  - change_column_type: { table: ledger, column: amount, type: bigint }\n"
    }
    fn shape(&self, d: Dialect) -> Vec<Vec<&'static str>> {
        Rename.shape(d)
    }
    fn table(&self) -> &'static str {
        "ledger"
    }
    fn setup(&self, db: &TestDb) -> Vec<String> {
        let amount = db.pick3("integer NOT NULL", "integer", "integer NOT NULL");
        vec![
            format!(
                "CREATE TABLE ledger (id {} PRIMARY KEY, amount {amount}, memo text)",
                db.pick3("bigint", "INTEGER", "bigint")
            ),
            format!(
                "INSERT INTO ledger (id, amount, memo) SELECT i, (i * 7919) % 100000 - 50000, 'seed' FROM {}",
                series(db, ROWS as u32)
            ),
        ]
    }
    fn initial(&self, id: i64) -> Cell {
        exact(Some(((id * 7919) % 100_000 - 50_000).to_string()))
    }
    fn final_value(&self) -> &'static str {
        "amount_new"
    }
    fn insert(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Cell) {
        let v = Self::amount(r, rng);
        let q = Query::new(
            &format!(
                "INSERT INTO ledger (id, {}, memo) VALUES ($1, $2, $3)",
                Self::column(r)
            ),
            vec![int(id), int(v), text(format!("r{r}"))],
        );
        (q, exact(Some(v.to_string())))
    }
    fn update(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Option<Cell>) {
        let v = Self::amount(r, rng);
        let q = Query::new(
            &format!(
                "UPDATE ledger SET {} = $2, memo = $3 WHERE id = $1",
                Self::column(r)
            ),
            vec![int(id), int(v), text(format!("u{r}"))],
        );
        (q, Some(exact(Some(v.to_string()))))
    }
    fn select(&self, d: Dialect, r: usize, id: i64) -> (Query, bool) {
        let q = Query::new(
            &format!(
                "SELECT {}, memo FROM ledger WHERE id = $1",
                as_text(d, Self::column(r))
            ),
            vec![int(id)],
        );
        (q, true)
    }
    fn retired(&self) -> Option<usize> {
        Some(1)
    }
    fn schema_checks(&self, db: &TestDb) -> Vec<(String, i64)> {
        let mut v = vec![(column_count(db, "ledger", "amount"), 0)];
        if db.dialect != Dialect::Sqlite {
            v.push((
                format!(
                    "SELECT count(*) FROM information_schema.columns WHERE {} AND table_name = 'ledger' AND column_name = 'amount_new' AND data_type = 'bigint'",
                    this_database(db)
                ),
                1,
            ));
        }
        v
    }
}

// --- set_not_null ---------------------------------------------------------------

struct SetNotNull;

const UNKNOWN: &str = "unknown@example.com";

impl Scenario for SetNotNull {
    fn name(&self) -> &'static str {
        "set_not_null"
    }
    fn change(&self) -> &'static str {
        "  - set_not_null: { table: profiles, column: email, backfill: \"'unknown@example.com'\" }\n"
    }
    fn shape(&self, d: Dialect) -> Vec<Vec<&'static str>> {
        let mut s = AddRequired.shape(d);
        s[0] = vec!["app:app_write_value"];
        s
    }
    fn table(&self) -> &'static str {
        "profiles"
    }
    fn setup(&self, db: &TestDb) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE profiles (id {} PRIMARY KEY, email text, bio text)",
                db.pick3("bigint", "INTEGER", "bigint")
            ),
            format!(
                "INSERT INTO profiles (id, email, bio) SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE {} END, 'seed' FROM {}",
                concat(db, &["'u'", "i", "'@example.com'"]),
                series(db, ROWS as u32)
            ),
        ]
    }
    fn initial(&self, id: i64) -> Cell {
        if id % 3 == 0 {
            filled_later(UNKNOWN)
        } else {
            exact(Some(format!("u{id}@example.com")))
        }
    }
    fn final_value(&self) -> &'static str {
        "email"
    }
    fn insert(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Cell) {
        let (v, cell) = if r == 0 && rng.chance(50) {
            (null(), filled_later(UNKNOWN))
        } else {
            let e = format!("{}@example.com", seq_value(&format!("r{r}"), rng));
            (text(&e), exact(Some(e)))
        };
        let q = Query::new(
            "INSERT INTO profiles (id, email, bio) VALUES ($1, $2, $3)",
            vec![int(id), v, text(format!("r{r}"))],
        );
        (q, cell)
    }
    fn update(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Option<Cell>) {
        let (v, cell) = if r == 0 && rng.chance(30) {
            (null(), filled_later(UNKNOWN))
        } else {
            let e = format!("{}@example.com", seq_value(&format!("u{r}"), rng));
            (text(&e), exact(Some(e)))
        };
        let q = Query::new(
            "UPDATE profiles SET email = $2, bio = $3 WHERE id = $1",
            vec![int(id), v, text(format!("u{r}"))],
        );
        (q, Some(cell))
    }
    fn select(&self, _: Dialect, _: usize, id: i64) -> (Query, bool) {
        (
            Query::new(
                "SELECT email, bio FROM profiles WHERE id = $1",
                vec![int(id)],
            ),
            true,
        )
    }
    fn retired(&self) -> Option<usize> {
        Some(0)
    }
    fn schema_checks(&self, db: &TestDb) -> Vec<(String, i64)> {
        match db.dialect {
            Dialect::Postgres | Dialect::Mysql => {
                vec![(not_null_count(db, "profiles", "email"), 1)]
            }
            Dialect::Sqlite => Vec::new(),
        }
    }
}

// --- add_foreign_key ------------------------------------------------------------

struct ForeignKey;

const CUSTOMERS: i64 = 1000;
/// The first customer id that does not exist: release 0 writes some.
const ORPHAN: i64 = 5_000_000;

impl ForeignKey {
    fn customer(r: usize, rng: &mut Rng) -> i64 {
        if r == 0 && rng.chance(5) {
            ORPHAN + rng.range(0, 1000)
        } else {
            rng.range(1, CUSTOMERS)
        }
    }
}

impl Scenario for ForeignKey {
    fn name(&self) -> &'static str {
        "add_foreign_key"
    }
    fn change(&self) -> &'static str {
        "  - add_foreign_key: { table: orders, columns: [customer_id], references: { table: customers, columns: [id] } }\n"
    }
    fn shape(&self, d: Dialect) -> Vec<Vec<&'static str>> {
        let enforce = match d {
            // ADD CONSTRAINT in place with foreign_key_checks=0: existing
            // rows are not scanned (the verification checked them).
            Dialect::Mysql => vec!["verify:verify_orphans", "migration:add_foreign_key"],
            Dialect::Postgres => vec![
                "verify:verify_orphans",
                "migration:add_not_valid",
                "migration:validate",
            ],
            Dialect::Sqlite => vec!["verify:verify_orphans", "migration:enforce_reference"],
        };
        vec![vec!["app:app_valid_references"], enforce]
    }
    fn table(&self) -> &'static str {
        "orders"
    }
    fn setup(&self, db: &TestDb) -> Vec<String> {
        let id = db.pick3("bigint", "INTEGER", "bigint");
        vec![
            format!("CREATE TABLE customers (id {id} PRIMARY KEY, name text)"),
            format!(
                "INSERT INTO customers (id, name) SELECT i, {} FROM {}",
                concat(db, &["'customer '", "i"]),
                series(db, CUSTOMERS as u32)
            ),
            format!("CREATE TABLE orders (id {id} PRIMARY KEY, customer_id {id}, total integer)"),
            format!(
                "INSERT INTO orders (id, customer_id, total) SELECT i, i % {CUSTOMERS} + 1, i FROM {}",
                series(db, ROWS as u32)
            ),
        ]
    }
    fn initial(&self, id: i64) -> Cell {
        exact(Some((id % CUSTOMERS + 1).to_string()))
    }
    fn final_value(&self) -> &'static str {
        "customer_id"
    }
    fn insert(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Cell) {
        let c = Self::customer(r, rng);
        let q = Query::new(
            "INSERT INTO orders (id, customer_id, total) VALUES ($1, $2, $3)",
            vec![int(id), int(c), int(rng.range(1, 1000))],
        );
        (q, exact(Some(c.to_string())))
    }
    fn update(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Option<Cell>) {
        let c = Self::customer(r, rng);
        let q = Query::new(
            "UPDATE orders SET customer_id = $2, total = $3 WHERE id = $1",
            vec![int(id), int(c), int(rng.range(1, 1000))],
        );
        (q, Some(exact(Some(c.to_string()))))
    }
    fn select(&self, d: Dialect, _: usize, id: i64) -> (Query, bool) {
        (
            Query::new(
                &format!(
                    "SELECT {}, total FROM orders WHERE id = $1",
                    as_text(d, "customer_id")
                ),
                vec![int(id)],
            ),
            true,
        )
    }
    fn retired(&self) -> Option<usize> {
        None
    }
    /// The one-off job of phase 1's app stage ("fix existing orphans"), run
    /// once release 1 is on every instance.
    fn before_phase(&self, phase: usize) -> Option<Job> {
        (phase == 2).then(|| {
            (
                "UPDATE orders SET customer_id = NULL WHERE customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = orders.customer_id)".to_string(),
                (|c: &mut Cell| {
                    if c.value.as_deref().and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v >= ORPHAN) {
                        c.value = None;
                    }
                }) as fn(&mut Cell),
            )
        })
    }
    fn forbidden(&self) -> Vec<String> {
        vec![format!(
            "INSERT INTO orders (id, customer_id, total) VALUES (999999999, {}, 1)",
            ORPHAN + 77
        )]
    }
    fn schema_checks(&self, db: &TestDb) -> Vec<(String, i64)> {
        match db.dialect {
            // MySQL has no NOT VALID constraint: one that exists is enforced.
            Dialect::Mysql => vec![(
                "SELECT count(*) FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE() AND table_name = 'orders' AND referenced_table_name = 'customers'".into(),
                1,
            )],
            Dialect::Postgres => vec![(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'f' AND convalidated".into(),
                1,
            )],
            Dialect::Sqlite => Vec::new(),
        }
    }
}

// --- drop_column ----------------------------------------------------------------

struct DropColumn;

impl Scenario for DropColumn {
    fn name(&self) -> &'static str {
        "drop_column"
    }
    fn change(&self) -> &'static str {
        "  - drop_column: { table: items, column: legacy }\n"
    }
    fn shape(&self, d: Dialect) -> Vec<Vec<&'static str>> {
        match d {
            // MySQL relaxes NOT NULL with a MODIFY rebuilt in place.
            Dialect::Postgres | Dialect::Mysql => vec![
                vec!["migration:relax_not_null", "app:app_stop_using"],
                vec!["migration:drop_column"],
            ],
            Dialect::Sqlite => vec![vec!["app:app_stop_using"], vec!["migration:drop_column"]],
        }
    }
    fn table(&self) -> &'static str {
        "items"
    }
    fn setup(&self, db: &TestDb) -> Vec<String> {
        // Postgres and MySQL relax NOT NULL first; SQLite cannot, so there
        // the column has a default (the planner's note says why).
        let legacy = db.pick3("text NOT NULL", "text NOT NULL DEFAULT ''", "text NOT NULL");
        vec![
            format!(
                "CREATE TABLE items (id {} PRIMARY KEY, title text NOT NULL, legacy {legacy})",
                db.pick3("bigint", "INTEGER", "bigint")
            ),
            format!(
                "INSERT INTO items (id, title, legacy) SELECT i, {}, {} FROM {}",
                concat(db, &["'item '", "i"]),
                concat(db, &["'old '", "i"]),
                series(db, ROWS as u32)
            ),
        ]
    }
    fn initial(&self, id: i64) -> Cell {
        exact(Some(format!("item {id}")))
    }
    fn final_value(&self) -> &'static str {
        "title"
    }
    fn insert(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Cell) {
        let v = seq_value(&format!("r{r}"), rng);
        let q = if r == 0 {
            Query::new(
                "INSERT INTO items (id, title, legacy) VALUES ($1, $2, $3)",
                vec![int(id), text(&v), text("legacy")],
            )
        } else {
            Query::new(
                "INSERT INTO items (id, title) VALUES ($1, $2)",
                vec![int(id), text(&v)],
            )
        };
        (q, exact(Some(v)))
    }
    fn update(&self, _: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Option<Cell>) {
        let v = seq_value(&format!("u{r}"), rng);
        let q = if r == 0 {
            Query::new(
                "UPDATE items SET title = $2, legacy = $3 WHERE id = $1",
                vec![int(id), text(&v), text("legacy")],
            )
        } else {
            Query::new(
                "UPDATE items SET title = $2 WHERE id = $1",
                vec![int(id), text(&v)],
            )
        };
        (q, Some(exact(Some(v))))
    }
    fn select(&self, _: Dialect, r: usize, id: i64) -> (Query, bool) {
        let sql = if r == 0 {
            "SELECT title, legacy FROM items WHERE id = $1"
        } else {
            "SELECT title FROM items WHERE id = $1"
        };
        (Query::new(sql, vec![int(id)]), true)
    }
    fn retired(&self) -> Option<usize> {
        Some(0)
    }
    fn schema_checks(&self, db: &TestDb) -> Vec<(String, i64)> {
        vec![(column_count(db, "items", "legacy"), 0)]
    }
}

/// Restricts `information_schema` to the test's own database: MySQL's
/// spans every database on the server (other tests have the same tables).
/// (SQLite has no `information_schema`; its checks read pragmas.)
fn this_database(db: &TestDb) -> &'static str {
    match db.dialect {
        Dialect::Mysql => "table_schema = DATABASE()",
        Dialect::Postgres | Dialect::Sqlite => "table_catalog = current_database()",
    }
}

fn column_count(db: &TestDb, table: &str, column: &str) -> String {
    match db.dialect {
        Dialect::Postgres | Dialect::Mysql => format!(
            "SELECT count(*) FROM information_schema.columns WHERE {} AND table_name = '{table}' AND column_name = '{column}'",
            this_database(db)
        ),
        Dialect::Sqlite => {
            format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = '{column}'")
        }
    }
}

fn not_null_count(db: &TestDb, table: &str, column: &str) -> String {
    format!(
        "SELECT count(*) FROM information_schema.columns WHERE {} AND table_name = '{table}' AND column_name = '{column}' AND is_nullable = 'NO'",
        this_database(db)
    )
}

// ---------------------------------------------------------------------------
// Application instances
// ---------------------------------------------------------------------------

/// One application instance: its connection, the rows it owns (ids of its
/// parity among the initial rows, and the ones it inserts), and what each
/// must hold. Instances own disjoint rows, so each one's model is exact.
struct Instance {
    no: u64,
    dialect: Dialect,
    conn: Conn,
    rows: BTreeMap<i64, Cell>,
    keys: Vec<i64>,
    inserted: Vec<i64>,
    next_id: i64,
    rng: Rng,
}

/// What an instance saw in one window.
#[derive(Debug, Default, Clone)]
struct Tally {
    ops: u64,
    failed: u64,
    bad_reads: u64,
    /// The first few failures and bad reads.
    examples: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.ops += other.ops;
        self.failed += other.failed;
        self.bad_reads += other.bad_reads;
        for e in &other.examples {
            if self.examples.len() < 6 {
                self.examples.push(e.clone());
            }
        }
    }
    fn note(&mut self, e: String) {
        if self.examples.len() < 6 {
            self.examples.push(e);
        }
    }
}

/// When an instance stops.
#[derive(Clone)]
struct Stop {
    flag: Arc<AtomicBool>,
    max_ops: u64,
    deadline: Instant,
}

impl Instance {
    async fn new(db: &TestDb, no: u64, scn: &dyn Scenario) -> TestResult<Instance> {
        let mut rows = BTreeMap::new();
        for id in (1..=ROWS).filter(|id| (*id as u64) % 2 == no) {
            rows.insert(id, scn.initial(id));
        }
        Ok(Instance {
            no,
            dialect: db.dialect,
            conn: Conn::open(db).await?,
            keys: rows.keys().copied().collect(),
            rows,
            inserted: Vec::new(),
            next_id: 1_000_000 + no as i64,
            rng: Rng::new(0xC0FFEE + no),
        })
    }

    /// Runs release `release`'s queries until told to stop.
    async fn run(
        mut self,
        scn: Arc<dyn Scenario>,
        release: usize,
        stop: Stop,
        done: Arc<AtomicU64>,
    ) -> (Instance, Tally) {
        let mut t = Tally::default();
        while t.ops < stop.max_ops
            && Instant::now() < stop.deadline
            && !stop.flag.load(Ordering::Relaxed)
        {
            self.step(&*scn, release, &mut t).await;
            t.ops += 1;
            done.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
        (self, t)
    }

    async fn step(&mut self, scn: &dyn Scenario, r: usize, t: &mut Tally) {
        let roll = self.rng.below(100);
        let pick = |rng: &mut Rng, keys: &[i64]| keys[rng.below(keys.len() as u64) as usize];
        if roll < 25 {
            let id = self.next_id;
            self.next_id += 2;
            let (q, cell) = scn.insert(self.dialect, r, id, &mut self.rng);
            match self.conn.run(&q).await {
                Ok(_) => {
                    self.rows.insert(id, cell);
                    self.keys.push(id);
                    self.inserted.push(id);
                }
                Err(e) => {
                    t.failed += 1;
                    t.note(format!("release {r} insert: {e}\n  {}", q.sql));
                }
            }
        } else if roll < 55 {
            let id = pick(&mut self.rng, &self.keys);
            let (q, cell) = scn.update(self.dialect, r, id, &mut self.rng);
            match self.conn.run(&q).await {
                Ok(_) => {
                    if let Some(c) = cell {
                        self.rows.insert(id, c);
                    }
                }
                Err(e) => {
                    t.failed += 1;
                    t.note(format!("release {r} update: {e}\n  {}", q.sql));
                }
            }
        } else if roll < 97 || self.inserted.is_empty() {
            let id = pick(&mut self.rng, &self.keys);
            let (q, checked) = scn.select(self.dialect, r, id);
            match self.conn.run(&q).await {
                Ok(got) => {
                    let want = &self.rows[&id];
                    let ok = match &got {
                        None => false,
                        Some(v) => !checked || !want.exact || *v == want.value,
                    };
                    if !ok {
                        t.bad_reads += 1;
                        t.note(format!(
                            "release {r} read id {id}: got {got:?}, the application wrote {:?}",
                            want.value
                        ));
                    }
                }
                Err(e) => {
                    t.failed += 1;
                    t.note(format!("release {r} select: {e}\n  {}", q.sql));
                }
            }
        } else {
            // Deletes: rows this instance inserted itself.
            let i = self.rng.below(self.inserted.len() as u64) as usize;
            let id = self.inserted[i];
            let q = Query::new(
                &format!("DELETE FROM {} WHERE id = $1", scn.table()),
                vec![int(id)],
            );
            match self.conn.run(&q).await {
                Ok(_) => {
                    self.inserted.swap_remove(i);
                    self.rows.remove(&id);
                    if let Some(k) = self.keys.iter().position(|k| *k == id) {
                        self.keys.swap_remove(k);
                    }
                }
                Err(e) => {
                    t.failed += 1;
                    t.note(format!("release {r} delete: {e}"));
                }
            }
        }
    }
}

/// One stretch of the rollout: which release each instance runs, and what
/// it saw.
#[derive(Debug)]
struct Window {
    label: String,
    releases: Vec<usize>,
    tally: Tally,
    /// Client queries completed while the apply ran (apply windows only).
    during_apply: Option<u64>,
    apply_time: Option<Duration>,
    /// Rows the apply's backfill batches went through, when it had one.
    batches: Option<usize>,
}

/// Runs the instances (instance i on `releases[i]`) while `during` runs,
/// then stops them; without `during`, each runs `ROLLING_OPS` queries.
async fn window<F: Future>(
    label: String,
    scn: &Arc<dyn Scenario>,
    instances: &mut Vec<Instance>,
    releases: &[usize],
    during: Option<F>,
) -> TestResult<(Option<F::Output>, Window)> {
    let flag = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Stop {
        flag: flag.clone(),
        max_ops: if during.is_some() {
            APPLY_MAX_OPS
        } else {
            ROLLING_OPS
        },
        deadline: Instant::now() + APPLY_MAX_TIME,
    };
    let mut handles = Vec::new();
    for (inst, r) in instances.drain(..).zip(releases) {
        handles.push(tokio::spawn(inst.run(
            scn.clone(),
            *r,
            stop.clone(),
            done.clone(),
        )));
    }
    let mut out = None;
    let mut during_apply = None;
    let mut apply_time = None;
    if let Some(f) = during {
        // Every instance is up and running before the apply starts.
        let started = Instant::now();
        while done.load(Ordering::Relaxed) < 2 * releases.len() as u64 {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(fail("the application's instances never started"));
            }
            tokio::task::yield_now().await;
        }
        let before = done.load(Ordering::Relaxed);
        let t0 = Instant::now();
        out = Some(f.await);
        apply_time = Some(t0.elapsed());
        during_apply = Some(done.load(Ordering::Relaxed) - before);
        flag.store(true, Ordering::Relaxed);
    }
    let mut tally = Tally::default();
    for h in handles {
        let (inst, t) = h.await?;
        tally.add(&t);
        instances.push(inst);
    }
    instances.sort_by_key(|i| i.no);
    Ok((
        out,
        Window {
            label,
            releases: releases.to_vec(),
            tally,
            during_apply,
            apply_time,
            batches: None,
        },
    ))
}

// ---------------------------------------------------------------------------
// The rollout
// ---------------------------------------------------------------------------

fn shape_of(plan: &phasegate::plan::Plan) -> Vec<Vec<String>> {
    plan.phases
        .iter()
        .map(|ph| {
            plan.phase_steps(ph)
                .map(|s| {
                    let slug = s.id.split_once('.').map_or(s.id.as_str(), |(_, b)| b);
                    format!("{}:{}", s.kind.name(), slug)
                })
                .collect()
        })
        .collect()
}

async fn backfill_batches(db: &TestDb) -> usize {
    executor_support::events(db)
        .await
        .iter()
        .filter(|e| e.1 == "backfill_progress")
        .count()
}

async fn zero_downtime(db: TestDb, scn: Arc<dyn Scenario>) -> TestResult {
    rollout(db, scn, false).await
}

/// Rolls the plan out with the application running; `breaks` when the
/// plan is one the test must catch breaking the application.
async fn rollout(db: TestDb, scn: Arc<dyn Scenario>, breaks: bool) -> TestResult {
    let d = db.dialect;
    for sql in scn.setup(&db) {
        db.exec(&sql).await?;
    }
    let plan_text = format!("name: {PLAN}\nchanges:\n{}", scn.change());
    let project = Project::new(&db, &["backfill_batch_size: 500"], PLAN, &plan_text)?;
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "zero-downtime");
    let loaded = ws.load(PLAN)?;
    let _ = loaded;
    let plan = ws.plan_against(ENV, PLAN).await?;
    // The releases below follow the plan's deploys: its phases must hold
    // (at least, and in order) the steps this test models.
    let shape = shape_of(&plan);
    let modelled = scn.shape(d);
    let fits = shape.len() == modelled.len()
        && shape.iter().zip(&modelled).all(|(have, want)| {
            let mut rest = have.iter();
            want.iter().all(|w| rest.any(|h| h == w))
        });
    if !fits {
        return Err(fail(format!(
            "{} on {d}: the plan has phases {shape:#?}, this test models {modelled:#?}",
            scn.name(),
        )));
    }

    let mut instances = vec![
        Instance::new(&db, 0, &*scn).await?,
        Instance::new(&db, 1, &*scn).await?,
    ];
    let mut windows: Vec<Window> = Vec::new();
    for phase in 1..=plan.phases.len() {
        if let Some((sql, fix)) = scn.before_phase(phase) {
            db.exec(&sql).await?;
            for inst in &mut instances {
                inst.rows.values_mut().for_each(fix);
            }
        }
        let has_backfill = plan
            .phase_steps(&plan.phases[phase - 1])
            .any(|s| s.kind == StepKind::Backfill);
        let batches_before = backfill_batches(&db).await;
        let prev = phase - 1;
        let (applied, mut w) = window(
            format!("phase {phase} applies"),
            &scn,
            &mut instances,
            &[prev, prev],
            Some(ws.apply(ENV, PLAN, false)),
        )
        .await?;
        let applied = applied
            .ok_or_else(|| fail("the apply did not run"))?
            .map_err(|e| {
                fail(format!(
                    "{} on {d}: applying phase {phase} failed: {e}",
                    scn.name()
                ))
            })?;
        if applied.phase != phase {
            return Err(fail(format!(
                "apply ran phase {}, expected {phase}",
                applied.phase
            )));
        }
        if has_backfill {
            w.batches = Some(backfill_batches(&db).await - batches_before);
        }
        windows.push(w);
        let (_, w) = window::<std::future::Ready<()>>(
            format!("phase {phase} rolling deploy"),
            &scn,
            &mut instances,
            &[prev, phase],
            None,
        )
        .await?;
        windows.push(w);
        if !applied.deployed {
            ws.mark(ENV, PLAN, phase, &format!("v{phase}")).await?;
        }
    }

    // Every stretch where the plan supports the releases that ran: no
    // failure, no stale read, and the applies really overlapped the client.
    let mut report = format!("{} on {d} ({ROWS} rows, batches of 500):\n", scn.name());
    let mut problems = Vec::new();
    for w in &windows {
        report.push_str(&format!(
            "  {:<26} releases {:?}: {:>6} queries, {} failed, {} stale reads{}{}{}\n",
            w.label,
            w.releases,
            w.tally.ops,
            w.tally.failed,
            w.tally.bad_reads,
            w.during_apply
                .map(|n| format!(", {n} during the apply"))
                .unwrap_or_default(),
            w.apply_time
                .map(|t| format!(" ({} ms)", t.as_millis()))
                .unwrap_or_default(),
            w.batches
                .map(|b| format!(", {b} backfill batches"))
                .unwrap_or_default(),
        ));
        if w.tally.failed > 0 || w.tally.bad_reads > 0 {
            problems.push(format!("{}: {:#?}", w.label, w.tally.examples));
        }
        if w.during_apply == Some(0) {
            problems.push(format!(
                "{}: no client query ran during the apply, so it proves nothing",
                w.label
            ));
        }
        if w.batches.is_some_and(|b| b < 10) {
            problems.push(format!(
                "{}: the backfill ran in {:?} batches; expected many",
                w.label, w.batches
            ));
        }
    }

    if breaks {
        println!("{report}");
        let failed: u64 = windows.iter().map(|w| w.tally.failed).sum();
        return if failed > 0 {
            Ok(())
        } else {
            Err(fail(format!(
                "a one-step rename broke nothing the client saw:\n{report}"
            )))
        };
    }

    // The negative control: the retired release fails now.
    if let Some(r) = scn.retired() {
        let (_, w) = window::<std::future::Ready<()>>(
            format!("retired release {r}"),
            &scn,
            &mut instances,
            &[r, r],
            None,
        )
        .await?;
        report.push_str(&format!(
            "  after the plan, retired release {r}: {} of {} queries failed (expected: some)\n",
            w.tally.failed, w.tally.ops
        ));
        if w.tally.failed == 0 {
            problems.push(format!(
                "release {r} still works after the plan completed: the client would not notice a break"
            ));
        }
    }
    for sql in scn.forbidden() {
        let msg = db.fails(&sql).await?;
        report.push_str(&format!(
            "  refused as it must be: {}\n",
            msg.lines().next().unwrap_or_default()
        ));
    }

    // No row lost or extra; every value what the writes (and backfill) made it.
    let mut expected = Rows::new();
    for inst in &instances {
        for (id, cell) in &inst.rows {
            expected.insert(*id, cell.value.clone());
        }
    }
    db.assert_rows(
        scn.table(),
        scn.final_value(),
        &expected,
        &format!("{} on {d} after the rollout", scn.name()),
    )
    .await?;
    let count = db
        .scalar(&format!("SELECT count(*) FROM {}", scn.table()))
        .await?;
    report.push_str(&format!(
        "  end: {count} rows, every one as the application wrote it (expected {})\n",
        expected.len()
    ));
    for (sql, want) in scn.schema_checks(&db) {
        let got = db.scalar(&sql).await?;
        if got != want {
            problems.push(format!(
                "schema check returned {got}, expected {want}: {sql}"
            ));
        }
    }
    let status = ws.status(Some(ENV)).await?;
    let complete = status
        .first()
        .and_then(|e| e.plans.first())
        .is_some_and(|p| p.deployed == plan.phases.len());
    if !complete {
        problems.push(format!("the plan is not complete: {status:#?}"));
    }
    for inst in instances {
        inst.conn.close().await;
    }
    println!("{report}");
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(format!("{report}\n{}", problems.join("\n"))))
    }
}

/// The naive way: RENAME COLUMN in one deploy. The old release breaks the
/// moment it commits, while the new code is still rolling out: the check
/// above must see it (it is what the recipes are for).
struct NaiveRename;

impl NaiveRename {
    /// Release 0 is the old code; release 1 uses the new name.
    fn code(r: usize) -> usize {
        if r == 0 { 0 } else { 2 }
    }
}

impl Scenario for NaiveRename {
    fn name(&self) -> &'static str {
        "one-step RENAME COLUMN (must be caught)"
    }
    fn change(&self) -> &'static str {
        "  - sql:\n      phases:\n        - up: ALTER TABLE users RENAME COLUMN name TO full_name\n          down: ALTER TABLE users RENAME COLUMN full_name TO name\n          app: read and write full_name\n"
    }
    fn shape(&self, _: Dialect) -> Vec<Vec<&'static str>> {
        vec![vec!["migration:sql_1", "app:app_1"]]
    }
    fn table(&self) -> &'static str {
        Rename.table()
    }
    fn setup(&self, db: &TestDb) -> Vec<String> {
        Rename.setup(db)
    }
    fn initial(&self, id: i64) -> Cell {
        Rename.initial(id)
    }
    fn final_value(&self) -> &'static str {
        Rename.final_value()
    }
    fn insert(&self, d: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Cell) {
        Rename.insert(d, Self::code(r), id, rng)
    }
    fn update(&self, d: Dialect, r: usize, id: i64, rng: &mut Rng) -> (Query, Option<Cell>) {
        Rename.update(d, Self::code(r), id, rng)
    }
    fn select(&self, d: Dialect, r: usize, id: i64) -> (Query, bool) {
        Rename.select(d, Self::code(r), id)
    }
    fn retired(&self) -> Option<usize> {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_step_rename_is_caught_breaking_the_old_release_on_postgres() {
    with_postgres(|db| rollout(db, Arc::new(NaiveRename), true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_step_rename_is_caught_breaking_the_old_release_on_sqlite() {
    with_sqlite(|db| rollout(db, Arc::new(NaiveRename), true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_step_rename_is_caught_breaking_the_old_release_on_mysql() {
    with_mysql(|db| rollout(db, Arc::new(NaiveRename), true)).await;
}

macro_rules! zero_downtime_tests {
    ($($name:ident: $scenario:expr;)*) => {
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    with_postgres(|db| zero_downtime(db, Arc::new($scenario))).await;
                }
            )*
        }
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    with_sqlite(|db| zero_downtime(db, Arc::new($scenario))).await;
                }
            )*
        }
        mod mysql {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    with_mysql(|db| zero_downtime(db, Arc::new($scenario))).await;
                }
            )*
        }
    };
}

zero_downtime_tests! {
    rename_column: Rename;
    add_column_required: AddRequired;
    change_column_type_int_to_bigint: IntToBigint;
    set_not_null: SetNotNull;
    add_foreign_key: ForeignKey;
    drop_column: DropColumn;
}

// ---------------------------------------------------------------------------
// Lock discipline
// ---------------------------------------------------------------------------

/// Latencies of a client's reads of `accounts` while it runs.
#[derive(Debug, Default)]
struct Latency {
    queries: u64,
    max: Duration,
    /// Reads that waited more than 50ms (queued behind a lock request).
    slow: u64,
}

/// Reads rows of `accounts` one by one, timing each, until `stop` is set.
async fn time_reads(
    mut conn: Conn,
    d: Dialect,
    stop: Arc<AtomicBool>,
) -> (Conn, Latency, Vec<String>) {
    let mut l = Latency::default();
    let mut errors = Vec::new();
    let mut rng = Rng::new(7);
    let sql = format!("SELECT {} FROM accounts WHERE id = $1", as_text(d, "v"));
    while !stop.load(Ordering::Relaxed) {
        let q = Query::new(&sql, vec![int(rng.range(1, ROWS))]);
        let t = Instant::now();
        if let Err(e) = conn.run(&q).await {
            errors.push(e.to_string());
        }
        let took = t.elapsed();
        l.queries += 1;
        l.max = l.max.max(took);
        if took > Duration::from_millis(50) {
            l.slow += 1;
        }
        tokio::task::yield_now().await;
    }
    (conn, l, errors)
}

async fn accounts(db: &TestDb) -> TestResult {
    db.exec("CREATE TABLE accounts (id bigint PRIMARY KEY, v integer NOT NULL, email text)")
        .await?;
    db.exec(&format!(
        "INSERT INTO accounts (id, v, email) SELECT i, i, {} FROM {}",
        concat(db, &["'a'", "i", "'@example.com'"]),
        series(db, ROWS as u32)
    ))
    .await?;
    Ok(())
}

/// A DDL step meets a transaction that read the table and stays open. Each
/// attempt waits `lock_timeout` (200ms; 1s on MySQL) and gives way; after
/// `lock_retries` (2) retries the apply fails, saying why, in bounded time;
/// meanwhile other sessions' reads queue behind the waiting DDL for at most
/// about `lock_timeout`, never for the whole long transaction. Once the
/// transaction ends, the same apply succeeds.
///
/// The plan drops `accounts.email`: phase 1 (the app stops using it) runs
/// first, then phase 2's DROP COLUMN meets the long transaction. On
/// Postgres the DDL waits for ACCESS EXCLUSIVE behind the reader's ACCESS
/// SHARE; on SQLite its COMMIT waits for the reader's SHARED lock while
/// holding PENDING, which holds new readers back the same way. On MySQL
/// the ALTER waits for an exclusive metadata lock behind the reader's
/// shared one, and while it waits, every new statement on the table
/// (the application's plain reads included) queues behind it: that is
/// what `lock_wait_timeout` bounds.
async fn ddl_behind_a_long_transaction(db: TestDb) -> TestResult {
    let d = db.dialect;
    accounts(&db).await?;
    let plan =
        format!("name: {PLAN}\nchanges:\n  - drop_column: {{ table: accounts, column: email }}\n");
    // MySQL's lock_wait_timeout counts whole seconds (phasegate rounds
    // lock_timeout up): 1s is the shortest wait it can have, so that is
    // what this environment configures, and what every bound below scales.
    let lock_timeout = match d {
        Dialect::Mysql => Duration::from_secs(1),
        Dialect::Postgres | Dialect::Sqlite => Duration::from_millis(200),
    };
    let project = Project::new(
        &db,
        &[
            &format!("lock_timeout: {}ms", lock_timeout.as_millis()),
            "lock_retries: 2",
        ],
        PLAN,
        &plan,
    )?;
    let clock = SystemClock;
    let ws = Workspace::new(&project.config, &clock, "zero-downtime");
    ws.apply(ENV, PLAN, false).await?;
    ws.mark(ENV, PLAN, 1, "v1").await?;
    let failed_before = step_failures(&db).await;

    let mut long = Conn::open(&db).await?;
    long.exec("BEGIN; SELECT count(*) FROM accounts;").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(time_reads(Conn::open(&db).await?, d, stop.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let t0 = Instant::now();
    let result = ws.apply(ENV, PLAN, false).await;
    let took = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    let (reader_conn, latency, errors) = reader.await?;
    reader_conn.close().await;

    let message = match result {
        Err(RunError::Step(e)) => e.reason(),
        Err(other) => return Err(fail(format!("expected a step failure, got: {other}"))),
        Ok(a) => {
            return Err(fail(format!(
                "the apply succeeded behind a long transaction: {a:?}"
            )));
        }
    };
    println!(
        "long transaction on {d}: apply gave up after {} ms: {message}\n  concurrent reads meanwhile: {} queries, slowest {} ms, {} waited > 50ms, {} errors",
        took.as_millis(),
        latency.queries,
        latency.max.as_millis(),
        latency.slow,
        errors.len()
    );
    if !message.contains("could not take its lock") || !message.contains("3 times") {
        return Err(fail(format!(
            "the failure does not say it could not take its lock 3 times: {message}"
        )));
    }
    // 3 attempts of lock_timeout, and backoffs of 0.5–0.75s and 1–1.5s:
    // 2.1–2.9s for 200ms, 4.5–5.3s for MySQL's 1s.
    let least = lock_timeout * 3 + Duration::from_millis(1400);
    let most = lock_timeout * 3 + Duration::from_millis(5400);
    if took < least || took > most {
        return Err(fail(format!(
            "the apply gave up after {took:?}; expected 3 × {lock_timeout:?} plus backoff (between {least:?} and {most:?})"
        )));
    }
    if !errors.is_empty() {
        return Err(fail(format!("concurrent reads failed: {errors:?}")));
    }
    // The reads did queue behind each attempt (the queue is real), but
    // never much longer than lock_timeout.
    // (Twice lock_timeout is what an apply that queues them again to
    // record its failure would cost them.) On MySQL this wait is the
    // expected cost of a DDL meeting a long transaction: a pending
    // exclusive metadata lock holds back every new statement on the
    // table, for at most lock_wait_timeout.
    if latency.max < lock_timeout * 3 / 4 || latency.max >= lock_timeout * 2 {
        return Err(fail(format!(
            "the slowest concurrent read took {:?}; expected about lock_timeout ({lock_timeout:?}): queued behind an attempt, released when it gave way",
            latency.max
        )));
    }
    // Postgres and MySQL record the failure beside the table the long
    // transaction holds; SQLite's whole file is held, so the log may not
    // take it.
    let failed = step_failures(&db).await - failed_before;
    if d != Dialect::Sqlite && failed != 1 {
        return Err(fail(format!("{failed} step_failed events, expected 1")));
    }
    if !db.has_column("accounts", "email").await? {
        return Err(fail("the column was dropped although the step failed"));
    }

    long.exec("COMMIT").await?;
    long.close().await;
    let t0 = Instant::now();
    let applied = ws.apply(ENV, PLAN, false).await?;
    println!(
        "  after the long transaction ended: apply ran {:?} in {} ms",
        applied.ran,
        t0.elapsed().as_millis()
    );
    if db.has_column("accounts", "email").await? {
        return Err(fail("the column was not dropped"));
    }
    Ok(())
}

async fn step_failures(db: &TestDb) -> usize {
    executor_support::events(db)
        .await
        .iter()
        .filter(|e| e.1 == "step_failed")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ddl_behind_a_long_transaction_gives_way_then_succeeds_on_postgres() {
    with_postgres(ddl_behind_a_long_transaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ddl_behind_a_long_transaction_gives_way_then_succeeds_on_sqlite() {
    with_sqlite(ddl_behind_a_long_transaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ddl_behind_a_long_transaction_gives_way_then_succeeds_on_mysql() {
    with_mysql(ddl_behind_a_long_transaction).await;
}

/// The invalid indexes on `accounts`, by name.
async fn invalid_indexes(db: &TestDb) -> TestResult<Vec<String>> {
    db.texts(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
          WHERE i.indrelid = 'accounts'::regclass AND NOT i.indisvalid ORDER BY 1",
    )
    .await
}

/// A unique index built concurrently over duplicates fails, and a failed
/// `CREATE INDEX CONCURRENTLY` leaves an INVALID index behind (which
/// `IF NOT EXISTS` would then keep, unusable): the executor drops it. Once
/// the data is fixed, the same apply builds a valid index. And an INVALID
/// index left by an earlier, killed build is dropped before building.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_concurrent_index_build_leaves_no_invalid_index() {
    with_postgres(|db| async move {
        accounts(&db).await?;
        // 10 duplicate e-mail addresses.
        db.exec("UPDATE accounts SET email = 'dup' || (id % 10) || '@example.com' WHERE id > 9980")
            .await?;
        let plan = format!(
            "name: {PLAN}\nchanges:\n  - sql:\n      phases:\n        - up: CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"accounts_email_key\" ON \"accounts\" (\"email\")\n          down: DROP INDEX CONCURRENTLY IF EXISTS \"accounts_email_key\"\n          transactional: false\n"
        );
        let project = Project::new(&db, &[], PLAN, &plan)?;
        let clock = SystemClock;
        let ws = Workspace::new(&project.config, &clock, "zero-downtime");

        let err = match ws.apply(ENV, PLAN, false).await {
            Err(RunError::Step(e)) => e.reason(),
            Err(other) => return Err(fail(format!("expected a step failure, got: {other}"))),
            Ok(_) => return Err(fail("a unique index over duplicates was built")),
        };
        println!("unique index over duplicates: apply failed: {err}");
        if !err.contains("could not create unique index") {
            return Err(fail(format!("unexpected failure: {err}")));
        }
        let left = invalid_indexes(&db).await?;
        if !left.is_empty() {
            return Err(fail(format!("the failed build left INVALID indexes: {left:?}")));
        }
        if db.index_state("accounts_email_key").await?.is_some() {
            return Err(fail("the failed build left accounts_email_key behind"));
        }

        // An earlier build that died the same way, outside phasegate.
        let _ = db
            .fails("CREATE UNIQUE INDEX CONCURRENTLY \"accounts_email_key\" ON \"accounts\" (\"email\")")
            .await?;
        if invalid_indexes(&db).await? != ["accounts_email_key"] {
            return Err(fail("the simulated failed build did not leave an INVALID index"));
        }

        db.exec("UPDATE accounts SET email = 'a' || id || '@example.com' WHERE id > 9980")
            .await?;
        ws.apply(ENV, PLAN, false).await?;
        let state = db.index_state("accounts_email_key").await?;
        let left = invalid_indexes(&db).await?;
        println!("  after fixing the data: accounts_email_key valid = {state:?}, invalid indexes: {left:?}");
        if state != Some(true) || !left.is_empty() {
            return Err(fail(format!(
                "expected a valid accounts_email_key and no invalid index; got {state:?}, invalid {left:?}"
            )));
        }
        db.assert_fails(
            "INSERT INTO accounts (id, v, email) VALUES (0, 0, 'a1@example.com')",
            "duplicate key",
        )
        .await?;
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// Rollback after the schema moved on
// ---------------------------------------------------------------------------

/// Every command plans against the live schema, which the plan's own
/// phases change. Phase 1 of a drop_column on Postgres makes the column
/// nullable (so new code's inserts succeed); planned again afterwards, the
/// column is nullable and the plan no longer has that step. Rolling phase 1
/// back must still restore NOT NULL: it undoes what ran, as planned when it
/// started, and the schema is what it was before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_undoes_what_ran_after_the_schema_moved_on() {
    with_postgres(|db| async move {
        accounts(&db).await?;
        let plan =
            format!("name: {PLAN}\nchanges:\n  - drop_column: {{ table: accounts, column: v }}\n");
        let project = Project::new(&db, &[], PLAN, &plan)?;
        let clock = SystemClock;
        let ws = Workspace::new(&project.config, &clock, "zero-downtime");
        let schema = async || -> TestResult<Vec<String>> {
            Ok(db.schema().await?.into_iter().filter(|l| !l.contains("phasegate_")).collect())
        };
        let before = schema().await?;
        let first = shape_of(&ws.plan_against(ENV, PLAN).await?);
        let applied = ws.apply(ENV, PLAN, false).await?;
        let again = shape_of(&ws.plan_against(ENV, PLAN).await?);
        println!(
            "drop_column planned before phase 1: {first:?}\n  applied {:?}; planned again: {again:?}",
            applied.ran
        );
        if !db.is_nullable("accounts", "v").await? {
            return Err(fail("phase 1 did not relax NOT NULL"));
        }
        ws.rollback(ENV, PLAN, false).await?;
        let after = schema().await?;
        if after != before {
            let gone: Vec<_> = before.iter().filter(|l| !after.contains(l)).collect();
            let left: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
            return Err(fail(format!(
                "rolling back phase 1 did not restore the schema\nmissing: {gone:#?}\nleft: {left:#?}"
            )));
        }
        // And forward again, to the end.
        ws.apply(ENV, PLAN, false).await?;
        ws.mark(ENV, PLAN, 1, "v1").await?;
        ws.apply(ENV, PLAN, false).await?;
        if db.has_column("accounts", "v").await? {
            return Err(fail("the column was not dropped"));
        }
        Ok(())
    })
    .await;
}
