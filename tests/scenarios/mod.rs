//! Lifecycle scenarios, written once for every dialect: a populated table,
//! a plan made against it, and the application's releases running their
//! queries while the plan is rolled out (see [`crate::common::roll_out`]).
//!
//! Release k is the code shipped by phase k; release 0 is the code before
//! the plan. After each phase both the release before it and the release it
//! ships run, since a rolling deploy runs both at once.

#![allow(dead_code)]

use phasegate::catalog::Catalog;
use phasegate::dialect::Dialect;
use phasegate::plan::{Plan, PlanningError};

mod fidelity;
// Not every test binary that includes the scenarios runs these.
#[allow(unused_imports)]
pub use fidelity::*;

use crate::common::{
    Model, Scenario, TestDb, TestResult, apply_phase, assert_reversible, assert_shape, fail, lit,
    plan_error, plan_live, plan_offline, roll_out, run_step, step,
};

/// How the plan is made: against the live schema, or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catalogue {
    Live,
    Offline,
}

/// A YAML single-quoted string.
fn yq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn id_type(db: &TestDb) -> &'static str {
    db.pick3("bigint", "INTEGER", "bigint")
}

async fn plan_for(
    db: &TestDb,
    catalogue: Catalogue,
    changes: &str,
    tables: &[&str],
) -> TestResult<Plan> {
    match catalogue {
        Catalogue::Live => plan_live(db, changes, tables).await,
        Catalogue::Offline => plan_offline(db.dialect, changes),
    }
}

/// The messages each dialect gives when a NOT NULL rule refuses a write.
fn not_null_error(db: &TestDb) -> &'static str {
    db.pick3("null value in column", "may not be NULL", "cannot be null")
}

/// The messages each dialect gives when an INSERT leaves out a NOT NULL
/// column without a default (MySQL's strict mode words it differently from
/// an explicit NULL).
fn omitted_not_null_error(db: &TestDb) -> &'static str {
    db.pick3(
        "null value in column",
        "may not be NULL",
        "doesn't have a default value",
    )
}

/// A text column an index is built on: MySQL cannot index a `TEXT` column
/// without a prefix length, which `add_index` cannot express (a known limit
/// on MySQL, see docs/intents.md), so there it is a bounded VARCHAR.
fn indexed_text(db: &TestDb) -> &'static str {
    db.pick3("text", "text", "varchar(255)")
}

// ---------------------------------------------------------------------------
// rename_column (and the shared copy-column shape)
// ---------------------------------------------------------------------------

/// The steps that give a copied column the old one's NOT NULL (Postgres).
const NOT_NULL_CARRIED: [&str; 4] = [
    "verify:verify_no_nulls",
    "migration:check_not_valid",
    "migration:validate_check",
    "migration:set_not_null",
];

/// How the column to rename is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldColumn<'a> {
    /// `text`: releases write NULLs and leave it out.
    Nullable,
    /// `text NOT NULL`: releases always write it.
    NotNull,
    /// `text NOT NULL DEFAULT '<literal>'`: releases may leave it out.
    NotNullDefault(&'a str),
}

/// A column renamed while old code writes the old name and new code the new
/// one.
pub struct RenameColumn {
    table: String,
    old: String,
    new: String,
    t: String,
    qold: String,
    qnew: String,
    default: Option<String>,
    nullable: bool,
    /// Set once the contract has run: on SQLite the new column then has no
    /// default (SQLite cannot add one to an existing column; the plan says so).
    contracted: bool,
    /// The first release whose code uses the new name.
    switch: usize,
    /// The phase that drops the old column.
    contract: usize,
    model: Model,
    touched: i64,
}

impl RenameColumn {
    /// Creates `table (id, old)` with 300 rows (duplicates, and NULLs when nullable).
    pub async fn setup(
        db: &TestDb,
        table: &str,
        old: &str,
        new: &str,
        old_column: OldColumn<'_>,
    ) -> TestResult<RenameColumn> {
        let (t, qold) = (db.table(table), db.ident(old));
        let (decl, default) = match old_column {
            OldColumn::Nullable => ("text".to_string(), None),
            OldColumn::NotNull => ("text NOT NULL".to_string(), None),
            OldColumn::NotNullDefault(d) => {
                (format!("text NOT NULL DEFAULT {}", lit(Some(d))), Some(d))
            }
        };
        let nullable = old_column == OldColumn::Nullable;
        db.create_table(
            table,
            &format!("id {} PRIMARY KEY, {qold} {decl}, other text", id_type(db)),
        )
        .await?;
        let value = if nullable {
            "CASE WHEN i % 10 = 0 THEN NULL ELSE 'name ' || (i % 50) END"
        } else {
            "'name ' || (i % 50)"
        };
        db.exec(&format!(
            "INSERT INTO {t} (id, {qold}, other) SELECT i, {value}, 'x' FROM {}",
            db.series(300)
        ))
        .await?;
        let model = Model::from_rows(db.rows(&t, "id", &qold).await?);
        assert_eq!(model.len(), 300, "rows of {table}");
        Ok(RenameColumn {
            table: table.into(),
            old: old.into(),
            new: new.into(),
            qnew: db.ident(new),
            t,
            qold,
            default: default.map(str::to_string),
            nullable,
            contracted: false,
            switch: 2,
            contract: 3,
            model,
            touched: 0,
        })
    }

    fn changes(&self, sync: &str) -> String {
        format!(
            "  - rename_column: {{ table: {}, from: {}, to: {}, sync: {sync} }}\n",
            yq(&self.table),
            yq(&self.old),
            yq(&self.new)
        )
    }

    /// Whether a release may insert a row without the column.
    fn may_omit(&self) -> bool {
        self.nullable || self.default.is_some()
    }
}

impl Scenario for RenameColumn {
    async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
        let col = if k >= self.switch {
            &self.qnew
        } else {
            &self.qold
        };
        let t = &self.t;
        // Insert with the column, and without it.
        let value = format!("release {k} wrote {col}");
        let id = self.model.insert(Some(&value));
        db.exec(&format!(
            "INSERT INTO {t} (id, {col}, other) VALUES ({id}, {}, 'new')",
            lit(Some(&value))
        ))
        .await?;
        if self.may_omit() {
            let omitted = match db.dialect {
                Dialect::Sqlite if self.contracted => None,
                _ => self.default.clone(),
            };
            let id2 = self.model.insert(omitted.as_deref());
            db.exec(&format!(
                "INSERT INTO {t} (id, other) VALUES ({id2}, 'omitted')"
            ))
            .await?;
        }
        // Update one existing row's column, another's to NULL (when allowed),
        // and a third row without touching the column.
        self.touched += 7;
        let target = self.touched;
        let updated = format!("release {k} updated {col}");
        db.exec(&format!(
            "UPDATE {t} SET {col} = {} WHERE id = {target}",
            lit(Some(&updated))
        ))
        .await?;
        self.model.set(target, Some(&updated));
        if self.nullable {
            db.exec(&format!(
                "UPDATE {t} SET {col} = NULL WHERE id = {}",
                target + 1
            ))
            .await?;
            self.model.set(target + 1, None);
        }
        db.exec(&format!(
            "UPDATE {t} SET other = 'touched' WHERE id = {}",
            target + 2
        ))
        .await?;
        // Read back what this release wrote, through the name it uses.
        let read = db
            .text(&format!("SELECT {col} FROM {t} WHERE id = {id}"))
            .await?;
        if read.as_deref() != Some(value.as_str()) {
            return Err(fail(format!(
                "release {k} read {read:?} back from {col}, wrote {value:?}"
            )));
        }
        let read = db
            .text(&format!("SELECT {col} FROM {t} WHERE id = {target}"))
            .await?;
        if read.as_deref() != Some(updated.as_str()) {
            return Err(fail(format!(
                "release {k} read {read:?} back from {col} after an update, wrote {updated:?}"
            )));
        }
        let count = db.scalar(&format!("SELECT count(*) FROM {t}")).await?;
        if count != self.model.len() as i64 {
            return Err(fail(format!(
                "{t} has {count} rows, expected {}",
                self.model.len()
            )));
        }
        Ok(())
    }

    async fn before(&mut self, _db: &TestDb, phase: usize) -> TestResult {
        self.contracted = phase >= self.contract;
        Ok(())
    }

    async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
        let when = format!("after phase {phase}");
        db.assert_rows(&self.t, &self.qnew, &self.model.rows, &when)
            .await?;
        if phase < self.contract {
            // While both exist, the old column mirrors the new one for old code.
            db.assert_rows(&self.t, &self.qold, &self.model.rows, &when)
                .await?;
        } else {
            if db.has_column(&self.table, &self.old).await? {
                return Err(fail(format!(
                    "{} still has {} after the contract",
                    self.table, self.old
                )));
            }
            // Qualified: SQLite reads an unknown "quoted" bare name as a string.
            db.assert_fails(
                &format!("SELECT {t}.{} FROM {t}", self.qold, t = self.t),
                "",
            )
            .await?;
        }
        Ok(())
    }
}

/// rename_column with the trigger sync: expand, switch, contract, with old
/// and new code writing side by side.
pub async fn rename_column(
    db: TestDb,
    table: &str,
    old: &str,
    new: &str,
    old_column: OldColumn<'_>,
    catalogue: Catalogue,
) -> TestResult {
    let db = &db;
    let mut s = RenameColumn::setup(db, table, old, new, old_column).await?;
    let plan = plan_for(db, catalogue, &s.changes("trigger"), &[table]).await?;
    let mut expand = vec![
        "migration:add_column",
        "migration:sync_trigger",
        "backfill:backfill",
        "verify:verify",
    ];
    if !s.nullable && catalogue == Catalogue::Live && db.dialect == Dialect::Postgres {
        // Known NOT NULL: the new column gets it too, the lock-safe way.
        expand.extend(NOT_NULL_CARRIED);
    }
    assert_shape(
        &plan,
        &[&expand, &["app:app_switch"], &["migration:contract"]],
    )?;
    assert_reversible(&plan, &[true, true, false])?;
    if s.default.is_some()
        && db.dialect == Dialect::Sqlite
        && !plan.notes.iter().any(|n| n.text.contains("has none"))
    {
        return Err(fail(
            "the plan should say the new column has no default on SQLite",
        ));
    }
    if catalogue == Catalogue::Offline && db.dialect == Dialect::Postgres {
        // Offline Postgres reads the column's type and default when it runs.
        let add = step(&plan, "add_column")?;
        if !add
            .sql
            .as_deref()
            .unwrap_or_default()
            .contains("DO $phasegate$")
        {
            return Err(fail(
                "offline Postgres add_column should read the catalog in a DO block",
            ));
        }
    }
    roll_out(db, &plan, &mut s).await?;
    // Postgres carries NOT NULL over in the expand phase, MySQL at the
    // contract (which restates the column); SQLite cannot add it.
    let carried_not_null =
        !s.nullable && catalogue == Catalogue::Live && db.dialect != Dialect::Sqlite;
    if carried_not_null && db.is_nullable(table, new).await? {
        return Err(fail(format!("{new} should be NOT NULL like {old} was")));
    }
    if let (OldColumn::NotNullDefault(d), Dialect::Postgres | Dialect::Mysql) =
        (old_column, db.dialect)
    {
        // The new column took over the old one's default at the contract.
        let id = s.model.insert(Some(d));
        db.exec(&format!("INSERT INTO {} (id) VALUES ({id})", s.t))
            .await?;
        db.assert_rows(&s.t, &s.qnew, &s.model.rows, "after the contract")
            .await?;
    }
    Ok(())
}

/// rename_column with `strategy: view` (Postgres): the table moves aside
/// behind a view that shows the column under both names, and the contract
/// swaps it back renamed. The same releases as the copy strategy run at every
/// phase; every phase (the contract too) is applied, rolled back and applied
/// again.
pub async fn rename_column_view(
    db: TestDb,
    table: &str,
    old: &str,
    new: &str,
    old_column: OldColumn<'_>,
    catalogue: Catalogue,
) -> TestResult {
    let db = &db;
    let mut s = RenameColumn::setup(db, table, old, new, old_column).await?;
    let changes = format!(
        "  - rename_column: {{ table: {}, from: {}, to: {}, strategy: view }}\n",
        yq(&s.table),
        yq(&s.old),
        yq(&s.new)
    );
    let plan = plan_for(db, catalogue, &changes, &[table]).await?;
    assert_shape(
        &plan,
        &[
            &["migration:swap_in_view"],
            &["app:app_switch"],
            &["migration:contract"],
        ],
    )?;
    assert_reversible(&plan, &[true, true, true])?;
    roll_out(db, &plan, &mut s).await?;
    if db.relation_kind(table).await?.as_deref() != Some("table") {
        return Err(fail(format!(
            "{table} should be the table again after the contract"
        )));
    }
    Ok(())
}

/// SQLite cannot relax NOT NULL in place: renaming a NOT NULL column without
/// a default would make every insert by the new code fail, so the planner
/// refuses it (for both sync modes, and for a type change through a copy).
pub async fn copy_of_not_null_column_is_refused(db: TestDb) -> TestResult {
    let db = &db;
    let s = RenameColumn::setup(db, "users", "name", "full_name", OldColumn::NotNull).await?;
    let type_change =
        "  - change_column_type: { table: users, column: name, type: integer }\n".to_string();
    for changes in [s.changes("trigger"), s.changes("app"), type_change] {
        match plan_live(db, &changes, &["users"]).await {
            Err(e) if e.to_string().contains("NOT NULL without a default") => {}
            other => {
                return Err(fail(format!(
                    "planning {changes:?} on SQLite should be refused, got {:?}",
                    other.map(|p| p.phases.len())
                )));
            }
        }
    }
    Ok(())
}

/// rename_column with `sync: app`, the dual-write recipe: release 1 writes
/// both columns and reads the old one; release 2 reads the new one and still
/// writes both (so release-1 instances still rolling read fresh values);
/// release 3 writes the new one only. `not_null`: the old column is
/// `NOT NULL` (no default), which Postgres relaxes before release 3 stops
/// writing it.
pub async fn rename_column_dual_write(db: TestDb, not_null: bool) -> TestResult {
    let db = &db;
    let old_column = if not_null {
        OldColumn::NotNull
    } else {
        OldColumn::Nullable
    };
    let s = RenameColumn::setup(db, "people", "name", "full_name", old_column).await?;
    let plan = plan_live(db, &s.changes("app"), &["people"]).await?;
    // SQLite cannot relax NOT NULL in place (it refuses to plan that case).
    let relaxes = not_null && db.dialect != Dialect::Sqlite;
    let phase3: &[&str] = if relaxes {
        &["migration:relax_old", "app:app_stop_writing_old"]
    } else {
        &["app:app_stop_writing_old"]
    };
    let mut phase2 = vec!["backfill:backfill", "verify:verify"];
    if relaxes && db.dialect == Dialect::Postgres {
        // The new column is NOT NULL like the old one, once releases write both
        // (MySQL's contract gives it the old column's NOT NULL instead).
        phase2.extend(NOT_NULL_CARRIED);
    }
    phase2.push("app:app_read_new");
    assert_shape(
        &plan,
        &[
            &["migration:add_column", "app:app_write_both"],
            &phase2,
            phase3,
            &["migration:contract"],
        ],
    )?;
    assert_reversible(&plan, &[true, true, true, false])?;
    roll_out(db, &plan, &mut DualWrite(s)).await?;
    if relaxes && db.is_nullable("people", "full_name").await? {
        return Err(fail("full_name should be NOT NULL like name was"));
    }
    Ok(())
}

/// The releases of the dual-write recipe (see [`rename_column_dual_write`]).
struct DualWrite(RenameColumn);

impl Scenario for DualWrite {
    async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
        let s = &mut self.0;
        let (t, old, new) = (&s.t, &s.qold, &s.qnew);
        let value = format!("release {k} wrote");
        let v = lit(Some(&value));
        let id = s.model.insert(Some(&value));
        s.touched += 7;
        let target = s.touched;
        let updated = format!("release {k} updated");
        let u = lit(Some(&updated));
        let write_both = (
            format!("INSERT INTO {t} (id, {old}, {new}) VALUES ({id}, {v}, {v})"),
            format!("UPDATE {t} SET {old} = {u}, {new} = {u} WHERE id = {target}"),
        );
        let ((insert, update), read) = match k {
            0 => (
                (
                    format!("INSERT INTO {t} (id, {old}) VALUES ({id}, {v})"),
                    format!("UPDATE {t} SET {old} = {u} WHERE id = {target}"),
                ),
                old,
            ),
            1 => (write_both, old),
            2 => (write_both, new),
            _ => (
                (
                    format!("INSERT INTO {t} (id, {new}) VALUES ({id}, {v})"),
                    format!("UPDATE {t} SET {new} = {u} WHERE id = {target}"),
                ),
                new,
            ),
        };
        db.exec(&insert).await?;
        db.exec(&update).await?;
        s.model.set(target, Some(&updated));
        let got = db
            .text(&format!("SELECT {read} FROM {t} WHERE id = {id}"))
            .await?;
        if got.as_deref() != Some(value.as_str()) {
            return Err(fail(format!(
                "release {k} read back {got:?}, wrote {value:?}"
            )));
        }
        Ok(())
    }

    async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
        let s = &self.0;
        let when = format!("after phase {phase}");
        match phase {
            // Rows release 0 writes are copied by phase 2's backfill; the old column is complete.
            1 => db.assert_rows(&s.t, &s.qold, &s.model.rows, &when).await,
            // Releases 1 and 2 write both columns: both are complete, so
            // release-1 instances reading the old one see every write.
            2 => {
                db.assert_rows(&s.t, &s.qold, &s.model.rows, &when).await?;
                db.assert_rows(&s.t, &s.qnew, &s.model.rows, &when).await
            }
            // Release 3 no longer writes the old column.
            _ => db.assert_rows(&s.t, &s.qnew, &s.model.rows, &when).await,
        }
    }
}

// ---------------------------------------------------------------------------
// add_column
// ---------------------------------------------------------------------------

/// A table `people (id, name)` of 300 rows; the model tracks `name`.
async fn people(db: &TestDb, table: &str) -> TestResult<Model> {
    db.create_table(table, &format!("id {} PRIMARY KEY, name text", id_type(db)))
        .await?;
    db.exec(&format!(
        "INSERT INTO {} (id, name) SELECT i, 'person ' || (i % 40) FROM {}",
        db.table(table),
        db.series(300)
    ))
    .await?;
    Ok(Model::from_rows(
        db.rows(&db.table(table), "id", "name").await?,
    ))
}

/// A column added while old code, which does not know it, keeps inserting.
/// `model` tracks the new column: `omitted` is what rows written without it get.
struct AddColumn {
    t: String,
    col: String,
    /// What rows written without the column hold, by release.
    omitted: Box<dyn Fn(usize, i64) -> Option<String>>,
    /// The first release that writes the column.
    writes_from: usize,
    model: Model,
    /// The value expression compared with the model.
    read: String,
}

impl Scenario for AddColumn {
    async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
        let t = &self.t;
        if k >= self.writes_from {
            let v = format!("r{k}");
            let id = self.model.insert(Some(&v));
            db.exec(&format!(
                "INSERT INTO {t} (id, name, {}) VALUES ({id}, 'new', {})",
                self.col,
                lit(Some(&v))
            ))
            .await?;
            db.exec(&format!(
                "UPDATE {t} SET {} = 'updated r{k}' WHERE id = {}",
                self.col,
                10 + k
            ))
            .await?;
            self.model
                .set(10 + k as i64, Some(&format!("updated r{k}")));
            let read = db
                .text(&format!("SELECT {} FROM {t} WHERE id = {id}", self.read))
                .await?;
            if read.as_deref() != Some(v.as_str()) {
                return Err(fail(format!("release {k} read back {read:?}, wrote {v:?}")));
            }
        } else {
            // Old code: knows nothing of the column.
            let id = self.model.insert(None);
            let v = (self.omitted)(k, id);
            self.model.set(id, v.as_deref());
            db.exec(&format!("INSERT INTO {t} (id, name) VALUES ({id}, 'old')"))
                .await?;
            db.exec(&format!(
                "UPDATE {t} SET name = 'renamed' WHERE id = {}",
                20 + k
            ))
            .await?;
            db.text(&format!("SELECT name FROM {t} WHERE id = {id}"))
                .await?;
        }
        Ok(())
    }

    async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
        db.assert_rows(
            &self.t,
            &self.read,
            &self.model.rows,
            &format!("after phase {phase}"),
        )
        .await
    }
}

/// A nullable column with a backfill for existing rows: one phase.
pub async fn add_column_nullable(db: TestDb) -> TestResult {
    let db = &db;
    let model = people(db, "people").await?;
    let plan = plan_live(
        db,
        "  - add_column: { table: people, column: nickname, type: text, backfill: \"'nick-' || id\" }\n",
        &["people"],
    )
    .await?;
    assert_shape(
        &plan,
        &[&["migration:add_column", "backfill:backfill", "app:app_use"]],
    )?;
    assert_reversible(&plan, &[true])?;
    let model = Model::from_rows(
        model
            .rows
            .keys()
            .map(|&id| (id, Some(format!("nick-{id}"))))
            .collect(),
    );
    let mut s = AddColumn {
        t: db.table("people"),
        col: db.ident("nickname"),
        omitted: Box::new(|_, _| None),
        writes_from: 1,
        model,
        read: db.ident("nickname"),
    };
    roll_out(db, &plan, &mut s).await?;
    // Rows old code inserted after the backfill stay NULL: nullable means so.
    if db
        .scalar("SELECT count(*) FROM people WHERE nickname IS NULL")
        .await?
        != 1
    {
        return Err(fail(
            "exactly the one row release 0 wrote after the backfill should be NULL",
        ));
    }
    Ok(())
}

/// `NOT NULL DEFAULT true`: one phase, catalog only; old code's inserts get
/// the default; an explicit NULL is refused.
pub async fn add_column_required_with_default(db: TestDb) -> TestResult {
    let db = &db;
    let model = people(db, "people").await?;
    let plan = plan_live(
        db,
        "  - add_column: { table: people, column: active, type: boolean, nullable: false, default: 'true' }\n",
        &["people"],
    )
    .await?;
    assert_shape(&plan, &[&["migration:add_column", "app:app_use"]])?;
    assert_reversible(&plan, &[true])?;
    let read = "CASE WHEN active THEN 'yes' ELSE 'no' END".to_string();
    let mut s = AddColumn {
        t: db.table("people"),
        col: "active".into(),
        omitted: Box::new(|_, _| Some("yes".into())),
        writes_from: usize::MAX,
        model: Model::from_rows(
            model
                .rows
                .keys()
                .map(|&id| (id, Some("yes".into())))
                .collect(),
        ),
        read,
    };
    roll_out(db, &plan, &mut s).await?;
    db.exec("INSERT INTO people (id, name, active) VALUES (100000, 'off', false)")
        .await?;
    db.assert_fails(
        "INSERT INTO people (id, name, active) VALUES (100001, 'null', NULL)",
        db.pick3(
            "null value in column",
            "NOT NULL constraint failed",
            "cannot be null",
        ),
    )
    .await?;
    if db.is_nullable("people", "active").await? {
        return Err(fail("active should be NOT NULL"));
    }
    Ok(())
}

/// A required column without a default: added nullable, the app writes it,
/// then the backfill fills old rows and NOT NULL is enforced lock-safely.
pub async fn add_column_required_backfilled(db: TestDb) -> TestResult {
    let db = &db;
    let model = people(db, "people").await?;
    let plan = plan_live(
        db,
        "  - add_column: { table: people, column: region, type: text, nullable: false, backfill: \"'unknown'\" }\n",
        &["people"],
    )
    .await?;
    let enforce: &[&str] = match db.dialect {
        Dialect::Mysql => &[
            "backfill:backfill",
            "verify:verify_no_nulls",
            "migration:set_not_null",
        ],
        Dialect::Postgres => &[
            "backfill:backfill",
            "verify:verify_no_nulls",
            "migration:check_not_valid",
            "migration:validate_check",
            "migration:set_not_null",
        ],
        Dialect::Sqlite => &[
            "backfill:backfill",
            "verify:verify_no_nulls",
            "migration:enforce_not_null",
        ],
    };
    assert_shape(
        &plan,
        &[&["migration:add_column", "app:app_write_value"], enforce],
    )?;
    assert_reversible(&plan, &[true, true])?;
    let s = AddColumn {
        t: db.table("people"),
        col: "region".into(),
        omitted: Box::new(|_, _| None),
        writes_from: 1,
        model: Model::from_rows(model.rows.keys().map(|&id| (id, None)).collect()),
        read: "region".into(),
    };
    // Phase 2's backfill gives every row old code wrote 'unknown'.
    struct Backfilled(AddColumn);
    impl Scenario for Backfilled {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            self.0.release(db, k).await
        }
        async fn before(&mut self, _db: &TestDb, phase: usize) -> TestResult {
            if phase == 2 {
                for v in self.0.model.rows.values_mut() {
                    v.get_or_insert_with(|| "unknown".into());
                }
            }
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            if phase == 1 {
                // Release 0's rows hold NULL until the backfill.
                return self.0.check(db, phase).await;
            }
            self.0.check(db, phase).await?;
            let t = &self.0.t;
            db.assert_fails(
                &format!("INSERT INTO {t} (id, name) VALUES (100000, 'no region')"),
                omitted_not_null_error(db),
            )
            .await?;
            db.assert_fails(
                &format!("UPDATE {t} SET region = NULL WHERE id = 1"),
                not_null_error(db),
            )
            .await
        }
    }
    roll_out(db, &plan, &mut Backfilled(s)).await?;
    // SQLite enforces it with triggers, which the catalog does not show.
    if db.dialect != Dialect::Sqlite && db.is_nullable("people", "region").await? {
        return Err(fail("region should be NOT NULL"));
    }
    Ok(())
}

/// Postgres: a required column with a volatile default (`gen_random_uuid()`):
/// added without it (no rewrite), default set for new rows, old rows filled.
pub async fn add_column_volatile_default(db: TestDb) -> TestResult {
    let db = &db;
    people(db, "people").await?;
    let plan = plan_live(
        db,
        "  - add_column: { table: people, column: token, type: uuid, nullable: false, default: gen_random_uuid() }\n",
        &["people"],
    )
    .await?;
    assert_shape(
        &plan,
        &[&[
            "migration:add_column",
            "migration:set_default",
            "backfill:backfill",
            "verify:verify_no_nulls",
            "migration:check_not_valid",
            "migration:validate_check",
            "migration:set_not_null",
            "app:app_use",
        ]],
    )?;
    assert_reversible(&plan, &[true])?;
    struct Tokens;
    impl Scenario for Tokens {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            db.exec(&format!(
                "INSERT INTO people (id, name) VALUES ({}, 'release {k}')",
                1000 + k
            ))
            .await?;
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, _phase: usize) -> TestResult {
            let (rows, distinct) = (
                db.scalar("SELECT count(*) FROM people").await?,
                db.scalar("SELECT count(DISTINCT token) FROM people")
                    .await?,
            );
            if rows != 302 || distinct != rows {
                return Err(fail(format!("{rows} rows, {distinct} distinct tokens")));
            }
            db.assert_fails(
                "INSERT INTO people (id, name, token) VALUES (5000, 'x', NULL)",
                "null value",
            )
            .await
        }
    }
    roll_out(db, &plan, &mut Tokens).await
}

// ---------------------------------------------------------------------------
// change_column_type
// ---------------------------------------------------------------------------

/// A type change through a new column, with `using` and `reverse`: prices in
/// a decimal column become integer cents in `price_cents`.
pub struct PriceToCents {
    model: Model,
    touched: i64,
}

impl PriceToCents {
    /// `price` as integer cents (MySQL casts to `SIGNED`, not `BIGINT`).
    fn cents_of_price(db: &TestDb) -> &'static str {
        db.pick3(
            "CAST(round(price * 100) AS BIGINT)",
            "CAST(round(price * 100) AS BIGINT)",
            "CAST(round(price * 100) AS SIGNED)",
        )
    }
}

impl Scenario for PriceToCents {
    async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
        self.touched += 5;
        let target = self.touched;
        if k >= 2 {
            let id = self.model.insert(Some(&format!("{}", 1000 + k)));
            db.exec(&format!(
                "INSERT INTO products (id, price_cents) VALUES ({id}, {})",
                1000 + k
            ))
            .await?;
            db.exec(&format!(
                "UPDATE products SET price_cents = 250 WHERE id = {target}"
            ))
            .await?;
            self.model.set(target, Some("250"));
            let got = db
                .scalar(&format!(
                    "SELECT CAST(price_cents AS {}) FROM products WHERE id = {id}",
                    db.pick3("BIGINT", "BIGINT", "SIGNED")
                ))
                .await?;
            if got != 1000 + k as i64 {
                return Err(fail(format!("read back {got} cents")));
            }
        } else {
            let id = self.model.insert(Some("1234"));
            db.exec(&format!(
                "INSERT INTO products (id, price) VALUES ({id}, 12.34)"
            ))
            .await?;
            let id = self.model.insert(None);
            db.exec(&format!("INSERT INTO products (id) VALUES ({id})"))
                .await?;
            db.exec(&format!(
                "UPDATE products SET price = 5.5 WHERE id = {target}"
            ))
            .await?;
            self.model.set(target, Some("550"));
        }
        Ok(())
    }

    async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
        let when = format!("after phase {phase}");
        db.assert_rows("products", "price_cents", &self.model.rows, &when)
            .await?;
        if phase < 3 {
            db.assert_rows(
                "products",
                Self::cents_of_price(db),
                &self.model.rows,
                &when,
            )
            .await?;
        } else if db.has_column("products", "price").await? {
            return Err(fail("price should be gone after the contract"));
        }
        Ok(())
    }
}

pub async fn change_column_type_using(db: TestDb) -> TestResult {
    let db = &db;
    db.create_table(
        "products",
        &format!(
            "id {} PRIMARY KEY, price {}",
            id_type(db),
            db.pick3("numeric(10,2)", "REAL", "decimal(10,2)")
        ),
    )
    .await?;
    db.exec(&format!(
        "INSERT INTO products (id, price) SELECT i, CASE WHEN i % 13 = 0 THEN NULL ELSE i * 1.25 END FROM {}",
        db.series(300)
    ))
    .await?;
    let model = Model::from_rows(
        db.rows("products", "id", PriceToCents::cents_of_price(db))
            .await?,
    );
    let plan = plan_live(
        db,
        &format!(
            "  - change_column_type: {{ table: products, column: price, type: integer, using: \"CAST(round(price * 100) AS {})\", reverse: \"price_cents / 100.0\", new_column: price_cents }}\n",
            db.pick3("integer", "integer", "SIGNED")
        ),
        &["products"],
    )
    .await?;
    assert_reversible(&plan, &[true, true, false])?;
    assert_eq!(plan.phases.len(), 3);
    roll_out(db, &plan, &mut PriceToCents { model, touched: 0 }).await
}

/// A type change by plain cast (text digits → integer), planned `mode`.
pub struct TextToInteger {
    model: Model,
    touched: i64,
}

impl Scenario for TextToInteger {
    async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
        self.touched += 3;
        let target = self.touched;
        let n = 7000 + k as i64;
        let id = self.model.insert(Some(&n.to_string()));
        if k >= 2 {
            db.exec(&format!(
                "INSERT INTO counters (id, code_new) VALUES ({id}, {n})"
            ))
            .await?;
            db.exec(&format!(
                "UPDATE counters SET code_new = 42 WHERE id = {target}"
            ))
            .await?;
        } else {
            db.exec(&format!(
                "INSERT INTO counters (id, code) VALUES ({id}, '{n}')"
            ))
            .await?;
            db.exec(&format!(
                "UPDATE counters SET code = '42' WHERE id = {target}"
            ))
            .await?;
        }
        self.model.set(target, Some("42"));
        Ok(())
    }

    async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
        let when = format!("after phase {phase}");
        db.assert_rows("counters", "code_new", &self.model.rows, &when)
            .await?;
        if phase < 3 {
            db.assert_rows("counters", "code", &self.model.rows, &when)
                .await?;
        }
        Ok(())
    }
}

pub async fn change_column_type_cast(db: TestDb, catalogue: Catalogue) -> TestResult {
    let db = &db;
    db.create_table(
        "counters",
        &format!("id {} PRIMARY KEY, code text", id_type(db)),
    )
    .await?;
    db.exec(&format!(
        "INSERT INTO counters (id, code) SELECT i, CASE WHEN i % 9 = 0 THEN NULL ELSE CAST(i * 3 AS {}) END FROM {}",
        db.pick3("TEXT", "TEXT", "CHAR"),
        db.series(300)
    ))
    .await?;
    let model = Model::from_rows(db.rows("counters", "id", "code").await?);
    let plan = plan_for(
        db,
        catalogue,
        "  - change_column_type: { table: counters, column: code, type: integer }\n",
        &["counters"],
    )
    .await?;
    assert_reversible(&plan, &[true, true, false])?;
    roll_out(db, &plan, &mut TextToInteger { model, touched: 0 }).await
}

/// Live: varchar(20) → varchar(100) is widened in place: one catalog-only
/// phase, reversible. On Postgres it is binary coercible; on MySQL it stays
/// within the one-byte length prefix (≤ 255 bytes), so the column is latin1
/// there (100 utf8mb4 characters would need a two-byte prefix: a copy).
pub async fn change_column_type_coercible(db: TestDb) -> TestResult {
    let db = &db;
    db.create_table(
        "handles",
        &format!(
            "id bigint PRIMARY KEY, nick varchar(20){}",
            db.pick3("", "", " CHARACTER SET latin1")
        ),
    )
    .await?;
    db.exec(&format!(
        "INSERT INTO handles SELECT i, 'nick' || i FROM {}",
        db.series(300)
    ))
    .await?;
    let plan = plan_live(
        db,
        "  - change_column_type: { table: handles, column: nick, type: varchar(100) }\n",
        &["handles"],
    )
    .await?;
    assert_shape(&plan, &[&["migration:alter_type"]])?;
    assert_reversible(&plan, &[true])?;
    let alter = step(&plan, "alter_type")?
        .sql
        .as_deref()
        .unwrap_or_default();
    if db.dialect == Dialect::Mysql && !alter.contains("ALGORITHM=INPLACE, LOCK=NONE") {
        return Err(fail(format!("the widening should be online: {alter}")));
    }
    struct Long;
    impl Scenario for Long {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            db.exec(&format!(
                "INSERT INTO handles VALUES ({}, 'short {k}')",
                1000 + k
            ))
            .await?;
            if k == 1 {
                let long = "x".repeat(60);
                db.exec(&format!("INSERT INTO handles VALUES (2000, '{long}')"))
                    .await?;
            }
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, _phase: usize) -> TestResult {
            let n = db.scalar("SELECT count(*) FROM handles").await?;
            if n != 303 {
                return Err(fail(format!("{n} rows, expected 303")));
            }
            db.assert_fails(
                &format!("INSERT INTO handles VALUES (3000, '{}')", "y".repeat(101)),
                "too long",
            )
            .await
        }
    }
    roll_out(db, &plan, &mut Long).await
}

// ---------------------------------------------------------------------------
// drop_column
// ---------------------------------------------------------------------------

/// `people (id, name, legacy <decl>)` with 300 rows, none NULL.
pub async fn people_with_legacy(db: &TestDb, decl: &str) -> TestResult {
    db.create_table(
        "people",
        &format!("id {} PRIMARY KEY, name text, legacy {decl}", id_type(db)),
    )
    .await?;
    db.exec(&format!(
        "INSERT INTO people (id, name, legacy) SELECT i, 'person ' || i, 'legacy ' || (i % 3) FROM {}",
        db.series(300)
    ))
    .await?;
    Ok(())
}

/// A column dropped after the code stops using it. `decl` is the column's
/// declaration (`text NOT NULL` makes Postgres relax it first).
pub async fn drop_column(db: TestDb, decl: &str) -> TestResult {
    let db = &db;
    people_with_legacy(db, decl).await?;
    let model = Model::from_rows(db.rows("people", "id", "name").await?);
    let plan = plan_live(
        db,
        "  - drop_column: { table: people, column: legacy }\n",
        &["people"],
    )
    .await?;
    // SQLite cannot relax NOT NULL in place; Postgres and MySQL do, first.
    let relaxes =
        db.dialect != Dialect::Sqlite && decl.contains("NOT NULL") && !decl.contains("DEFAULT");
    let first: &[&str] = if relaxes {
        &["migration:relax_not_null", "app:app_stop_using"]
    } else {
        &["app:app_stop_using"]
    };
    assert_shape(&plan, &[first, &["migration:drop_column"]])?;
    assert_reversible(&plan, &[true, false])?;
    struct Stop {
        model: Model,
    }
    impl Scenario for Stop {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            let v = format!("release {k}");
            let id = self.model.insert(Some(&v));
            if k == 0 {
                db.exec(&format!(
                    "INSERT INTO people (id, name, legacy) VALUES ({id}, '{v}', 'still written')"
                ))
                .await?;
                db.text(&format!("SELECT legacy FROM people WHERE id = {id}"))
                    .await?;
            } else {
                // New code: never names legacy.
                db.exec(&format!(
                    "INSERT INTO people (id, name) VALUES ({id}, '{v}')"
                ))
                .await?;
                db.exec(&format!(
                    "UPDATE people SET name = 'upd {k}' WHERE id = {}",
                    30 + k
                ))
                .await?;
                self.model.set(30 + k as i64, Some(&format!("upd {k}")));
            }
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            db.assert_rows(
                "people",
                "name",
                &self.model.rows,
                &format!("after phase {phase}"),
            )
            .await?;
            if phase == 2 && db.has_column("people", "legacy").await? {
                return Err(fail("legacy should be gone"));
            }
            Ok(())
        }
    }
    roll_out(db, &plan, &mut Stop { model }).await
}

// ---------------------------------------------------------------------------
// rename_table
// ---------------------------------------------------------------------------

/// A table renamed: a view under the new name while old code uses the old
/// one, then the table takes the new name.
pub async fn rename_table(db: TestDb, from: &str, to: &str) -> TestResult {
    let db = &db;
    db.create_table(
        from,
        &format!(
            "id {} PRIMARY KEY, customer text, status text NOT NULL DEFAULT 'open'",
            id_type(db)
        ),
    )
    .await?;
    let old = db.table(from);
    db.exec(&format!(
        "INSERT INTO {old} (id, customer, status) SELECT i, 'customer ' || (i % 30), CASE WHEN i % 4 = 0 THEN 'paid' ELSE 'open' END FROM {}",
        db.series(300)
    ))
    .await?;
    let model = Model::from_rows(db.rows(&old, "id", "customer").await?);
    let plan = plan_live(
        db,
        &format!(
            "  - rename_table: {{ from: {}, to: {} }}\n",
            yq(from),
            yq(to)
        ),
        &[from],
    )
    .await?;
    assert_shape(
        &plan,
        &[
            &["migration:create_view", "app:app_use_new_name"],
            &["migration:contract"],
        ],
    )?;
    assert_reversible(&plan, &[true, true])?;
    let new_name = match from.split_once('.') {
        Some((schema, _)) => format!("{schema}.{to}"),
        None => to.to_string(),
    };
    struct Renamed {
        old: String,
        new: String,
        new_name: String,
        old_name: String,
        model: Model,
    }
    impl Scenario for Renamed {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            let t = if k >= 1 { &self.new } else { &self.old };
            let v = format!("release {k} customer");
            let id = self.model.insert(Some(&v));
            // Leaves status out: the table's default must apply, through the view too.
            db.exec(&format!(
                "INSERT INTO {t} (id, customer) VALUES ({id}, '{v}')"
            ))
            .await?;
            let status = db
                .text(&format!("SELECT status FROM {t} WHERE id = {id}"))
                .await?;
            if status.as_deref() != Some("open") {
                return Err(fail(format!(
                    "status of a row inserted into {t} is {status:?}"
                )));
            }
            let target = 40 + k as i64;
            db.exec(&format!(
                "UPDATE {t} SET customer = 'moved {k}' WHERE id = {target}"
            ))
            .await?;
            self.model.set(target, Some(&format!("moved {k}")));
            let gone = 200 + k as i64;
            db.exec(&format!("DELETE FROM {t} WHERE id = {gone}"))
                .await?;
            self.model.remove(gone);
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            let when = format!("after phase {phase}");
            db.assert_rows(&self.new, "customer", &self.model.rows, &when)
                .await?;
            if phase == 1 {
                db.assert_rows(&self.old, "customer", &self.model.rows, &when)
                    .await?;
                if db.relation_kind(&self.new_name).await?.as_deref() != Some("view") {
                    return Err(fail("the new name should be a view in phase 1"));
                }
            } else {
                if db.relation_kind(&self.new_name).await?.as_deref() != Some("table") {
                    return Err(fail("the new name should be the table after the contract"));
                }
                if db.has_relation(&self.old_name).await? {
                    return Err(fail("the old name should be gone after the contract"));
                }
            }
            Ok(())
        }
    }
    let mut s = Renamed {
        old,
        new: db.table(&new_name),
        new_name,
        old_name: from.to_string(),
        model,
    };
    roll_out(db, &plan, &mut s).await
}

// ---------------------------------------------------------------------------
// add_index
// ---------------------------------------------------------------------------

/// A non-unique index on two columns: one phase (concurrently on Postgres).
pub async fn add_index_plain(db: TestDb) -> TestResult {
    let db = &db;
    db.create_table(
        "people",
        &format!(
            "id {} PRIMARY KEY, last_name {t}, first_name {t}",
            id_type(db),
            t = indexed_text(db)
        ),
    )
    .await?;
    db.exec(&format!(
        "INSERT INTO people SELECT i, 'last ' || (i % 20), CASE WHEN i % 6 = 0 THEN NULL ELSE 'first ' || (i % 7) END FROM {}",
        db.series(300)
    ))
    .await?;
    let plan = plan_live(
        db,
        "  - add_index: { table: people, columns: [last_name, first_name] }\n",
        &["people"],
    )
    .await?;
    assert_shape(&plan, &[&["migration:create_index"]])?;
    assert_reversible(&plan, &[true])?;
    let create = step(&plan, "create_index")?;
    let sql = create.sql.as_deref().unwrap_or_default();
    if !sql.contains(db.pick3("CONCURRENTLY", "", "ALGORITHM=INPLACE, LOCK=NONE")) {
        return Err(fail(format!("create_index should build online: {sql}")));
    }
    let transactional = create.transactional;
    if transactional != (db.dialect == Dialect::Sqlite) {
        return Err(fail(format!(
            "create_index transactional = {transactional}"
        )));
    }
    struct Writes;
    impl Scenario for Writes {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            db.exec(&format!(
                "INSERT INTO people VALUES ({}, 'last 1', 'first 1')",
                1000 + k
            ))
            .await?;
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, _phase: usize) -> TestResult {
            if db.index_state("people_last_name_first_name_idx").await? != Some(true) {
                return Err(fail("the index should exist and be valid"));
            }
            let n = db
                .scalar("SELECT count(*) FROM people WHERE last_name = 'last 1' AND first_name = 'first 1'")
                .await?;
            if n < 2 {
                return Err(fail(format!("{n} rows found through the index")));
            }
            Ok(())
        }
    }
    roll_out(db, &plan, &mut Writes).await
}

/// A unique index over a column with duplicates and NULLs: the new code
/// stops writing duplicates and cleans the old ones up; the index comes a
/// deploy later, after a verification that none are left.
pub async fn add_index_unique(db: TestDb) -> TestResult {
    let db = &db;
    db.create_table(
        "accounts",
        &format!("id {} PRIMARY KEY, email {}", id_type(db), indexed_text(db)),
    )
    .await?;
    db.exec(&format!(
        "INSERT INTO accounts SELECT i, CASE WHEN i % 11 = 0 THEN NULL WHEN i % 7 = 0 THEN 'dup' || (i % 3) || '@example.com' ELSE 'user' || i || '@example.com' END FROM {}",
        db.series(300)
    ))
    .await?;
    let model = Model::from_rows(db.rows("accounts", "id", "email").await?);
    let plan = plan_live(
        db,
        "  - add_index: { table: accounts, columns: [email], unique: true }\n",
        &["accounts"],
    )
    .await?;
    assert_shape(
        &plan,
        &[
            &["app:app_no_duplicates"],
            &["verify:verify_unique", "migration:create_index"],
        ],
    )?;
    assert_reversible(&plan, &[true, true])?;

    struct Unique<'p> {
        plan: &'p Plan,
        model: Model,
    }
    impl Scenario for Unique<'_> {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            let v = format!("release{k}-{}@example.com", self.model.len());
            let id = self.model.insert(Some(&v));
            db.exec(&format!("INSERT INTO accounts VALUES ({id}, '{v}')"))
                .await?;
            if k == 0 {
                // Old code still writes duplicates while release 1 rolls out.
                let id = self.model.insert(Some("dup1@example.com"));
                db.exec(&format!(
                    "INSERT INTO accounts VALUES ({id}, 'dup1@example.com')"
                ))
                .await?;
            }
            // NULLs never collide.
            let id = self.model.insert(None);
            db.exec(&format!("INSERT INTO accounts VALUES ({id}, NULL)"))
                .await?;
            Ok(())
        }

        async fn before(&mut self, db: &TestDb, phase: usize) -> TestResult {
            if phase != 2 {
                return Ok(());
            }
            let p2 = &self.plan.phases[1];
            // The verification refuses while duplicates remain.
            match apply_phase(db, self.plan, p2).await {
                Err(e) if e.to_string().contains("verify_unique") => {}
                other => {
                    return Err(fail(format!(
                        "phase 2 should stop at verify_unique while duplicates remain, got {other:?}"
                    )));
                }
            }
            if db.dialect == Dialect::Postgres {
                // Bypassing the verification, a concurrent build fails and
                // leaves an INVALID index behind, which re-running the same
                // step (IF NOT EXISTS) keeps: the executor must run the
                // step's rollback (DROP INDEX CONCURRENTLY) before retrying.
                let create = step(self.plan, "create_index")?;
                if run_step(db, p2, create).await.is_ok() {
                    return Err(fail("a unique build over duplicates should fail"));
                }
                if db.index_state("accounts_email_key").await? != Some(false) {
                    return Err(fail("the failed build should leave an invalid index"));
                }
                db.exec(create.rollback_sql.as_deref().unwrap_or_default())
                    .await?;
                if db.index_state("accounts_email_key").await?.is_some() {
                    return Err(fail("the rollback should drop the invalid index"));
                }
            } else if db.dialect == Dialect::Mysql {
                // Bypassing the verification, the online build fails on the
                // duplicates and leaves nothing behind: retrying needs no rollback.
                let create = step(self.plan, "create_index")?;
                match run_step(db, p2, create).await {
                    Err(e) if e.to_string().contains("Duplicate entry") => {}
                    other => {
                        return Err(fail(format!(
                            "a unique build over duplicates should fail on a duplicate, got {other:?}"
                        )));
                    }
                }
                if db.index_state("accounts_email_key").await?.is_some() {
                    return Err(fail("the failed build should leave no index"));
                }
            }
            // The new code's one-off cleanup: keep the first of each email.
            // (Through a derived table: MySQL refuses a subquery on the table
            // an UPDATE writes.)
            db.exec(
                "UPDATE accounts SET email = NULL WHERE email IS NOT NULL AND id NOT IN \
                 (SELECT id FROM (SELECT min(id) AS id FROM accounts WHERE email IS NOT NULL GROUP BY email) AS keep)",
            )
            .await?;
            let mut seen = std::collections::HashSet::new();
            for v in self.model.rows.values_mut() {
                if let Some(e) = v.clone()
                    && !seen.insert(e)
                {
                    *v = None;
                }
            }
            Ok(())
        }

        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            db.assert_rows(
                "accounts",
                "email",
                &self.model.rows,
                &format!("after phase {phase}"),
            )
            .await?;
            if phase == 2 {
                if db.index_state("accounts_email_key").await? != Some(true) {
                    return Err(fail("the unique index should be valid"));
                }
                db.assert_fails(
                    "INSERT INTO accounts VALUES (100000, 'user1@example.com')",
                    db.pick3(
                        "duplicate key value",
                        "UNIQUE constraint failed",
                        "Duplicate entry",
                    ),
                )
                .await?;
                db.assert_fails(
                    "UPDATE accounts SET email = 'user1@example.com' WHERE id = 2",
                    db.pick3(
                        "duplicate key value",
                        "UNIQUE constraint failed",
                        "Duplicate entry",
                    ),
                )
                .await?;
                db.exec("INSERT INTO accounts VALUES (100001, NULL), (100002, NULL)")
                    .await?;
                db.exec("DELETE FROM accounts WHERE id IN (100001, 100002)")
                    .await?;
            }
            Ok(())
        }
    }
    let mut s = Unique { plan: &plan, model };
    roll_out(db, &plan, &mut s).await
}

/// A named partial unique index (`where`): duplicates among deleted rows
/// stay allowed; a live duplicate is cleaned up by the new code first.
pub async fn add_index_partial_unique(db: TestDb) -> TestResult {
    let db = &db;
    db.create_table(
        "accounts",
        &format!(
            "id {} PRIMARY KEY, email text, deleted integer NOT NULL DEFAULT 0",
            id_type(db)
        ),
    )
    .await?;
    // Every 5th row is a deleted duplicate of 'gone@example.com'; one live
    // duplicate (ids 1 and 2 share an email).
    db.exec(&format!(
        "INSERT INTO accounts SELECT i, CASE WHEN i % 5 = 0 THEN 'gone@example.com' WHEN i = 2 THEN 'user1@example.com' ELSE 'user' || i || '@example.com' END, CASE WHEN i % 5 = 0 THEN 1 ELSE 0 END FROM {}",
        db.series(300)
    ))
    .await?;
    let plan = plan_live(
        db,
        "  - add_index: { table: accounts, columns: [email], unique: true, where: deleted = 0, name: accounts_live_email }\n",
        &["accounts"],
    )
    .await?;
    assert_shape(
        &plan,
        &[
            &["app:app_no_duplicates"],
            &["verify:verify_unique", "migration:create_index"],
        ],
    )?;
    struct Partial;
    impl Scenario for Partial {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            db.exec(&format!(
                "INSERT INTO accounts (id, email, deleted) VALUES ({}, 'gone@example.com', 1)",
                1000 + db.scalar("SELECT count(*) FROM accounts").await? + k as i64
            ))
            .await?;
            Ok(())
        }
        async fn before(&mut self, db: &TestDb, phase: usize) -> TestResult {
            if phase == 2 {
                // The new code's cleanup: the later live duplicate is deleted.
                db.exec("UPDATE accounts SET deleted = 1 WHERE id = 2")
                    .await?;
            }
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            if phase != 2 {
                return Ok(());
            }
            if db.index_state("accounts_live_email").await? != Some(true) {
                return Err(fail("the partial index should exist and be valid"));
            }
            db.assert_fails(
                "INSERT INTO accounts (id, email) VALUES (100000, 'user3@example.com')",
                db.pick3(
                    "duplicate key value",
                    "UNIQUE constraint failed",
                    "Duplicate entry",
                ),
            )
            .await?;
            db.exec(
                "INSERT INTO accounts (id, email, deleted) VALUES (100001, 'user3@example.com', 1)",
            )
            .await?;
            let n = db.scalar("SELECT count(*) FROM accounts").await?;
            // 300 rows, 4 release inserts, the deleted duplicate just written.
            if n != 305 {
                return Err(fail(format!("{n} rows, expected 305")));
            }
            Ok(())
        }
    }
    roll_out(db, &plan, &mut Partial).await
}

// ---------------------------------------------------------------------------
// add_foreign_key
// ---------------------------------------------------------------------------

/// A foreign key over a child table with orphans and NULLs. `on_delete`:
/// `None`, `cascade`, `set_null` or `restrict`.
pub async fn add_foreign_key(
    db: TestDb,
    parent: &str,
    child: &str,
    on_delete: Option<&str>,
) -> TestResult {
    let db = &db;
    db.create_table(
        parent,
        &format!("id {} PRIMARY KEY, name text", id_type(db)),
    )
    .await?;
    db.create_table(
        child,
        &format!(
            "id {} PRIMARY KEY, customer_id {}, amount integer",
            id_type(db),
            id_type(db)
        ),
    )
    .await?;
    let (p, c) = (db.table(parent), db.table(child));
    db.exec(&format!(
        "INSERT INTO {p} SELECT i, 'customer ' || i FROM {}",
        db.series(50)
    ))
    .await?;
    // Customer ids 1..=60: 51..=60 are orphans; every 8th row has none.
    db.exec(&format!(
        "INSERT INTO {c} SELECT i, CASE WHEN i % 8 = 0 THEN NULL ELSE (i % 60) + 1 END, i FROM {}",
        db.series(300)
    ))
    .await?;
    let model = Model::from_rows(db.rows(&c, "id", "customer_id").await?);
    let on = on_delete
        .map(|o| format!(", on_delete: {o}"))
        .unwrap_or_default();
    let plan = plan_live(
        db,
        &format!(
            "  - add_foreign_key: {{ table: {}, columns: [customer_id], references: {{ table: {}, columns: [id] }}{on} }}\n",
            yq(child),
            yq(parent)
        ),
        &[child, parent],
    )
    .await?;
    let enforce: &[&str] = match db.dialect {
        Dialect::Mysql => &["verify:verify_orphans", "migration:add_foreign_key"],
        Dialect::Postgres => &[
            "verify:verify_orphans",
            "migration:add_not_valid",
            "migration:validate",
        ],
        Dialect::Sqlite => &["verify:verify_orphans", "migration:enforce_reference"],
    };
    assert_shape(&plan, &[&["app:app_valid_references"], enforce])?;
    assert_reversible(&plan, &[true, true])?;

    struct Fk<'p> {
        plan: &'p Plan,
        p: String,
        c: String,
        on_delete: Option<String>,
        model: Model,
    }
    impl Scenario for Fk<'_> {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            let c = &self.c;
            let customer = if k == 0 { 999 } else { 1 + k as i64 };
            let id = self.model.insert(Some(&customer.to_string()));
            db.exec(&format!("INSERT INTO {c} VALUES ({id}, {customer}, 10)"))
                .await?;
            let id = self.model.insert(None);
            db.exec(&format!("INSERT INTO {c} VALUES ({id}, NULL, 10)"))
                .await?;
            db.exec(&format!(
                "UPDATE {c} SET customer_id = 7 WHERE id = {}",
                50 + k
            ))
            .await?;
            self.model.set(50 + k as i64, Some("7"));
            Ok(())
        }

        async fn before(&mut self, db: &TestDb, phase: usize) -> TestResult {
            if phase != 2 {
                return Ok(());
            }
            match apply_phase(db, self.plan, &self.plan.phases[1]).await {
                Err(e) if e.to_string().contains("verify_orphans") => {}
                other => {
                    return Err(fail(format!(
                        "phase 2 should stop at verify_orphans while orphans remain, got {other:?}"
                    )));
                }
            }
            // The new code's cleanup: orphans lose their customer.
            db.exec(&format!(
                "UPDATE {c} SET customer_id = NULL WHERE customer_id NOT IN (SELECT id FROM {p})",
                c = self.c,
                p = self.p
            ))
            .await?;
            for v in self.model.rows.values_mut() {
                if v.as_deref()
                    .and_then(|s| s.parse::<i64>().ok())
                    .is_some_and(|n| n > 50)
                {
                    *v = None;
                }
            }
            Ok(())
        }

        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            let (p, c) = (&self.p, &self.c);
            db.assert_rows(
                c,
                "customer_id",
                &self.model.rows,
                &format!("after phase {phase}"),
            )
            .await?;
            if phase != 2 {
                return Ok(());
            }
            let refused = db.pick3(
                "violates foreign key constraint",
                "must reference an existing",
                "foreign key constraint fails",
            );
            db.assert_fails(
                &format!("INSERT INTO {c} VALUES (100000, 12345, 1)"),
                refused,
            )
            .await?;
            db.assert_fails(
                &format!("UPDATE {c} SET customer_id = 12345 WHERE id = 1"),
                refused,
            )
            .await?;
            // Deleting a referenced parent follows on_delete.
            let children: Vec<i64> = self.model.ids_where(|v| v == Some("3"));
            if children.is_empty() {
                return Err(fail("customer 3 should have children"));
            }
            let delete = format!("DELETE FROM {p} WHERE id = 3");
            match self.on_delete.as_deref() {
                Some("cascade") => {
                    db.exec(&delete).await?;
                    children.iter().for_each(|&id| self.model.remove(id));
                }
                Some("set_null") => {
                    db.exec(&delete).await?;
                    children.iter().for_each(|&id| self.model.set(id, None));
                }
                _ => {
                    db.assert_fails(
                        &delete,
                        db.pick3(
                            "violates foreign key constraint",
                            "still reference",
                            "foreign key constraint fails",
                        ),
                    )
                    .await?;
                }
            }
            db.assert_rows(
                c,
                "customer_id",
                &self.model.rows,
                "after deleting a parent",
            )
            .await
        }
    }
    let mut s = Fk {
        plan: &plan,
        p,
        c,
        on_delete: on_delete.map(str::to_string),
        model,
    };
    roll_out(db, &plan, &mut s).await
}

// ---------------------------------------------------------------------------
// set_not_null
// ---------------------------------------------------------------------------

/// NULLs backfilled before NOT NULL, on `table.column` (awkward names allowed).
pub async fn set_not_null(db: TestDb, table: &str, column: &str) -> TestResult {
    let db = &db;
    let (t, c) = (db.table(table), db.ident(column));
    db.create_table(table, &format!("id {} PRIMARY KEY, {c} text", id_type(db)))
        .await?;
    db.exec(&format!(
        "INSERT INTO {t} SELECT i, CASE WHEN i % 6 = 0 THEN NULL ELSE 'mail' || (i % 25) END FROM {}",
        db.series(300)
    ))
    .await?;
    let model = Model::from_rows(db.rows(&t, "id", &c).await?);
    let plan = plan_live(
        db,
        &format!(
            "  - set_not_null: {{ table: {}, column: {}, backfill: \"'unknown-' || id\" }}\n",
            yq(table),
            yq(column)
        ),
        &[table],
    )
    .await?;
    let enforce: &[&str] = match db.dialect {
        Dialect::Mysql => &[
            "backfill:backfill",
            "verify:verify_no_nulls",
            "migration:set_not_null",
        ],
        Dialect::Postgres => &[
            "backfill:backfill",
            "verify:verify_no_nulls",
            "migration:check_not_valid",
            "migration:validate_check",
            "migration:set_not_null",
        ],
        Dialect::Sqlite => &[
            "backfill:backfill",
            "verify:verify_no_nulls",
            "migration:enforce_not_null",
        ],
    };
    assert_shape(&plan, &[&["app:app_write_value"], enforce])?;
    assert_reversible(&plan, &[true, true])?;
    struct NotNull {
        t: String,
        c: String,
        table: String,
        column: String,
        model: Model,
    }
    impl Scenario for NotNull {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            let (t, c) = (&self.t, &self.c);
            let v = format!("r{k}@example.com");
            let id = self.model.insert(Some(&v));
            db.exec(&format!("INSERT INTO {t} (id, {c}) VALUES ({id}, '{v}')"))
                .await?;
            if k == 0 {
                // Old code writes NULLs.
                let id = self.model.insert(None);
                db.exec(&format!("INSERT INTO {t} (id) VALUES ({id})"))
                    .await?;
                db.exec(&format!("UPDATE {t} SET {c} = NULL WHERE id = 1"))
                    .await?;
                self.model.set(1, None);
            } else {
                db.exec(&format!(
                    "UPDATE {t} SET {c} = 'fixed{k}' WHERE id = {}",
                    60 + k
                ))
                .await?;
                self.model.set(60 + k as i64, Some(&format!("fixed{k}")));
            }
            Ok(())
        }
        async fn before(&mut self, _db: &TestDb, phase: usize) -> TestResult {
            if phase == 2 {
                // What the backfill expression will write.
                for (id, v) in self.model.rows.iter_mut() {
                    v.get_or_insert_with(|| format!("unknown-{id}"));
                }
            }
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            let (t, c) = (&self.t, &self.c);
            db.assert_rows(t, c, &self.model.rows, &format!("after phase {phase}"))
                .await?;
            if phase == 2 {
                db.assert_fails(
                    &format!("INSERT INTO {t} (id) VALUES (100000)"),
                    omitted_not_null_error(db),
                )
                .await?;
                db.assert_fails(
                    &format!("INSERT INTO {t} (id, {c}) VALUES (100000, NULL)"),
                    not_null_error(db),
                )
                .await?;
                db.assert_fails(
                    &format!("UPDATE {t} SET {c} = NULL WHERE id = 2"),
                    not_null_error(db),
                )
                .await?;
                // SQLite enforces it with triggers, which the catalog does not show.
                if db.dialect != Dialect::Sqlite
                    && db.is_nullable(&self.table, &self.column).await?
                {
                    return Err(fail("the column should be NOT NULL in the catalog"));
                }
            }
            Ok(())
        }
    }
    let mut s = NotNull {
        t,
        c,
        table: table.into(),
        column: column.into(),
        model,
    };
    roll_out(db, &plan, &mut s).await
}

// ---------------------------------------------------------------------------
// add_check
// ---------------------------------------------------------------------------

/// A CHECK over rows that violate it until the new code fixes them.
pub async fn add_check(db: TestDb) -> TestResult {
    let db = &db;
    db.create_table(
        "orders",
        &format!("id {} PRIMARY KEY, amount integer", id_type(db)),
    )
    .await?;
    db.exec(&format!(
        "INSERT INTO orders SELECT i, CASE WHEN i % 17 = 0 THEN NULL ELSE (i % 20) - 5 END FROM {}",
        db.series(300)
    ))
    .await?;
    let model = Model::from_rows(db.rows("orders", "id", "amount").await?);
    let plan = plan_live(
        db,
        "  - add_check: { table: orders, name: amount_positive, check: amount > 0 }\n",
        &["orders"],
    )
    .await?;
    let enforce: &[&str] = match db.dialect {
        Dialect::Mysql => &["verify:verify_check", "migration:add_check"],
        Dialect::Postgres => &[
            "verify:verify_check",
            "migration:add_not_valid",
            "migration:validate",
        ],
        Dialect::Sqlite => &["verify:verify_check", "migration:enforce_check"],
    };
    assert_shape(&plan, &[&["app:app_satisfy_check"], enforce])?;
    assert_reversible(&plan, &[true, true])?;
    struct Check<'p> {
        plan: &'p Plan,
        model: Model,
    }
    impl Scenario for Check<'_> {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            let amount = if k == 0 { -3 } else { 40 + k as i64 };
            let id = self.model.insert(Some(&amount.to_string()));
            db.exec(&format!("INSERT INTO orders VALUES ({id}, {amount})"))
                .await?;
            let id = self.model.insert(None);
            db.exec(&format!("INSERT INTO orders VALUES ({id}, NULL)"))
                .await?;
            Ok(())
        }
        async fn before(&mut self, db: &TestDb, phase: usize) -> TestResult {
            if phase != 2 {
                return Ok(());
            }
            match apply_phase(db, self.plan, &self.plan.phases[1]).await {
                Err(e) if e.to_string().contains("verify_check") => {}
                other => {
                    return Err(fail(format!(
                        "phase 2 should stop at verify_check while rows fail the check, got {other:?}"
                    )));
                }
            }
            db.exec("UPDATE orders SET amount = 1 - amount WHERE amount <= 0")
                .await?;
            for v in self.model.rows.values_mut() {
                if let Some(n) = v.as_deref().and_then(|s| s.parse::<i64>().ok())
                    && n <= 0
                {
                    *v = Some((1 - n).to_string());
                }
            }
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            db.assert_rows(
                "orders",
                "amount",
                &self.model.rows,
                &format!("after phase {phase}"),
            )
            .await?;
            if phase == 2 {
                let refused = db.pick3(
                    "violates check constraint",
                    "check amount_positive failed",
                    "amount_positive",
                );
                db.assert_fails("INSERT INTO orders VALUES (100000, -1)", refused)
                    .await?;
                db.assert_fails("UPDATE orders SET amount = 0 WHERE id = 1", refused)
                    .await?;
                db.exec("INSERT INTO orders VALUES (100001, NULL)").await?;
                self.model.set(100001, None);
            }
            Ok(())
        }
    }
    let mut s = Check { plan: &plan, model };
    roll_out(db, &plan, &mut s).await
}

// ---------------------------------------------------------------------------
// drop_table
// ---------------------------------------------------------------------------

/// A table the code stops using, dropped a deploy later.
pub async fn drop_table(db: TestDb) -> TestResult {
    let db = &db;
    let model = people(db, "people").await?;
    db.create_table(
        "audit_log",
        &format!(
            "id {} PRIMARY KEY, person_id {}, event text",
            id_type(db),
            id_type(db)
        ),
    )
    .await?;
    db.exec(&format!(
        "INSERT INTO audit_log SELECT i, i % 300 + 1, 'event ' || i FROM {}",
        db.series(500)
    ))
    .await?;
    let plan = plan_live(db, "  - drop_table: { table: audit_log }\n", &["audit_log"]).await?;
    assert_shape(&plan, &[&["app:app_stop_using"], &["migration:drop_table"]])?;
    assert_reversible(&plan, &[true, false])?;
    struct Stop {
        model: Model,
    }
    impl Scenario for Stop {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            let id = self.model.insert(Some(&format!("release {k}")));
            db.exec(&format!("INSERT INTO people VALUES ({id}, 'release {k}')"))
                .await?;
            if k == 0 {
                db.exec(&format!(
                    "INSERT INTO audit_log VALUES ({}, {id}, 'created')",
                    1000 + id
                ))
                .await?;
            }
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            db.assert_rows(
                "people",
                "name",
                &self.model.rows,
                &format!("after phase {phase}"),
            )
            .await?;
            let exists = db.has_relation("audit_log").await?;
            if exists != (phase == 1) {
                return Err(fail(format!(
                    "audit_log exists = {exists} after phase {phase}"
                )));
            }
            Ok(())
        }
    }
    roll_out(db, &plan, &mut Stop { model }).await
}

/// A table still referenced by a foreign key is not dropped (no CASCADE):
/// the drop fails and the table and its rows stay.
pub async fn drop_table_still_referenced(db: TestDb) -> TestResult {
    let db = &db;
    people(db, "people").await?;
    // A table-level FOREIGN KEY: MySQL ignores a REFERENCES clause on a column.
    db.create_table(
        "visits",
        &format!(
            "id {} PRIMARY KEY, person_id {}, FOREIGN KEY (person_id) REFERENCES people (id)",
            id_type(db),
            id_type(db)
        ),
    )
    .await?;
    db.exec(&format!(
        "INSERT INTO visits SELECT i, i FROM {}",
        db.series(100)
    ))
    .await?;
    let plan = plan_live(db, "  - drop_table: { table: people }\n", &["people"]).await?;
    apply_phase(db, &plan, &plan.phases[0]).await?;
    match apply_phase(db, &plan, &plan.phases[1]).await {
        Err(e) if e.to_string().contains("drop_table") => {}
        other => {
            return Err(fail(format!(
                "dropping a referenced table should fail, got {other:?}"
            )));
        }
    }
    let n = db.scalar("SELECT count(*) FROM people").await?;
    if n != 300 {
        return Err(fail(format!("people has {n} rows after the refused drop")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// sql (the escape hatch)
// ---------------------------------------------------------------------------

pub async fn sql_phases(db: TestDb) -> TestResult {
    let db = &db;
    people(db, "people").await?;
    let index = db.pick3(
        "CREATE INDEX CONCURRENTLY people_tag_idx ON people (tag)",
        "CREATE INDEX people_tag_idx ON people (tag)",
        "CREATE INDEX people_tag_idx ON people (tag)",
    );
    let transactional = db.dialect == Dialect::Sqlite;
    let changes = format!(
        "  - sql:\n      phases:\n        - up: \"ALTER TABLE people ADD COLUMN tag text; UPDATE people SET tag = 'tag' || (id % 5)\"\n          down: \"ALTER TABLE people DROP COLUMN tag\"\n          app: Read and write people.tag\n        - up: {}\n          transactional: {transactional}\n",
        yq(index)
    );
    let plan = plan_live(db, &changes, &["people"]).await?;
    assert_shape(
        &plan,
        &[&["migration:sql_1", "app:app_1"], &["migration:sql_2"]],
    )?;
    assert_reversible(&plan, &[true, false])?;
    struct Tags(i64);
    impl Scenario for Tags {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            self.0 += 1;
            let id = 1000 + self.0;
            if k >= 1 {
                db.exec(&format!(
                    "INSERT INTO people (id, name, tag) VALUES ({id}, 'tagged', 'tag9')"
                ))
                .await?;
            } else {
                db.exec(&format!(
                    "INSERT INTO people (id, name) VALUES ({id}, 'untagged')"
                ))
                .await?;
            }
            Ok(())
        }
        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            let tagged = db
                .scalar("SELECT count(*) FROM people WHERE tag IS NOT NULL")
                .await?;
            // 300 tagged by the migration, plus one row per release-1+ run.
            let expected = if phase == 1 { 301 } else { 303 };
            if tagged != expected {
                return Err(fail(format!("{tagged} tagged rows after phase {phase}")));
            }
            if phase == 2 && db.index_state("people_tag_idx").await? != Some(true) {
                return Err(fail("the hand-written index should exist"));
            }
            Ok(())
        }
    }
    roll_out(db, &plan, &mut Tags(0)).await
}

// ---------------------------------------------------------------------------
// Plans of several intents
// ---------------------------------------------------------------------------

/// Two independent renames on different tables share the same three deploys.
pub async fn two_renames(db: TestDb) -> TestResult {
    let db = &db;
    let a = RenameColumn::setup(db, "users", "name", "full_name", OldColumn::Nullable).await?;
    let b = RenameColumn::setup(db, "orders", "note", "memo", OldColumn::Nullable).await?;
    let changes = format!("{}{}", a.changes("trigger"), b.changes("trigger"));
    let plan = plan_live(db, &changes, &["users", "orders"]).await?;
    if plan.phases.len() != 3 {
        return Err(fail(format!(
            "two independent renames should plan to 3 phases, got {}",
            plan.phases.len()
        )));
    }
    assert_reversible(&plan, &[true, true, false])?;
    let mut both = (a, b);
    roll_out(db, &plan, &mut both).await?;
    if both.0.model.len() != 312 || both.1.model.len() != 312 {
        return Err(fail(
            "each table should hold its 300 rows and 12 release rows",
        ));
    }
    Ok(())
}

/// Dropping a column another intent renames (or retypes) is refused before
/// any SQL runs, offline and against the live schema.
pub async fn contradiction(db: TestDb) -> TestResult {
    let db = &db;
    people(db, "users").await?;
    let drop = "  - drop_column: { table: users, column: name }\n";
    let rename =
        format!("{drop}  - rename_column: {{ table: users, from: name, to: full_name }}\n");
    let retype =
        format!("{drop}  - change_column_type: {{ table: users, column: name, type: integer }}\n");
    let live = db.catalog(&["users"]).await?;
    for (what, catalog) in [("offline", Catalog::offline()), ("live", live)] {
        for changes in [&rename, &retype] {
            let error = plan_error(db.dialect, &catalog, changes);
            if db.dialect == Dialect::Mysql && what == "offline" && changes == &rename {
                // MySQL plans a rename only from the live schema (the new
                // column restates the old one's definition): offline, the
                // rename itself is refused first, still before any SQL runs.
                match error {
                    Some(PlanningError::Unsupported {
                        change: 1, message, ..
                    }) if message.contains("live schema") => {}
                    other => {
                        return Err(fail(format!(
                            "{what}: expected the offline MySQL rename to be refused, got {other:?}"
                        )));
                    }
                }
                continue;
            }
            match error {
                Some(PlanningError::Contradiction { first, second, .. }) => {
                    if (first, second) != (0, 1) {
                        return Err(fail(format!(
                            "{what}: contradiction between {first} and {second}"
                        )));
                    }
                }
                other => {
                    return Err(fail(format!(
                        "{what}: {changes}expected PlanningError::Contradiction, got {other:?}"
                    )));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Carrying a column's indexes and constraints over (rename, type change)
// ---------------------------------------------------------------------------

/// `users.email`, renamed to `email_address` while old and new code write
/// it. The plan is made against the live schema, so what `email` has is
/// carried over to `email_address`.
struct Emails {
    model: Model,
    touched: i64,
    contracted: bool,
}

impl Emails {
    const OLD: &'static str = "email";
    const NEW: &'static str = "email_address";

    fn address(n: i64) -> String {
        format!("user{n}@example.com")
    }

    /// The columns that exist after `phase`.
    fn columns(&self) -> Vec<&'static str> {
        if self.contracted {
            vec![Self::NEW]
        } else {
            vec![Self::OLD, Self::NEW]
        }
    }
}

impl Scenario for Emails {
    async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
        let col = if k >= 2 { Self::NEW } else { Self::OLD };
        let value = Self::address(self.model.rows.len() as i64 + 1000);
        let id = self.model.insert(Some(&value));
        db.exec(&format!(
            "INSERT INTO users (id, {col}, name) VALUES ({id}, {}, 'release {k}')",
            lit(Some(&value))
        ))
        .await?;
        self.touched += 11;
        let target = self.touched;
        let updated = Self::address(2000 + target);
        db.exec(&format!(
            "UPDATE users SET {col} = {} WHERE id = {target}",
            lit(Some(&updated))
        ))
        .await?;
        self.model.set(target, Some(&updated));
        let read = db
            .text(&format!("SELECT {col} FROM users WHERE id = {id}"))
            .await?;
        if read.as_deref() != Some(value.as_str()) {
            return Err(fail(format!("release {k} read back {read:?} from {col}")));
        }
        Ok(())
    }

    async fn before(&mut self, _db: &TestDb, phase: usize) -> TestResult {
        self.contracted = phase >= 3;
        Ok(())
    }

    async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
        let when = format!("after phase {phase}");
        for col in self.columns() {
            db.assert_rows("users", col, &self.model.rows, &when)
                .await?;
            // Unique, and a foreign key to mailboxes, through either name.
            db.assert_fails(
                &format!("INSERT INTO users (id, {col}, name) VALUES (900000, 'user1@example.com', 'dup')"),
                db.pick3("duplicate key", "UNIQUE constraint failed", "Duplicate entry"),
            )
            .await?;
            db.assert_fails(
                &format!(
                    "INSERT INTO users (id, {col}, name) VALUES (900001, 'nobody@example.org', 'x')"
                ),
                db.pick3(
                    "foreign key",
                    "FOREIGN KEY constraint failed",
                    "foreign key constraint fails",
                ),
            )
            .await?;
            if db.dialect == Dialect::Postgres {
                db.assert_fails(
                    &format!("INSERT INTO users (id, {col}, name) VALUES (900002, NULL, 'x')"),
                    "null value",
                )
                .await?;
                db.assert_fails(
                    &format!(
                        "INSERT INTO users (id, {col}, name) VALUES (900003, 'no-at-sign', 'x')"
                    ),
                    "check constraint",
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// A unique, indexed, NOT NULL `email` with a CHECK and a foreign key
/// (Postgres; on SQLite: nullable, with a unique index, a plain index and an
/// inline foreign key, and a CHECK that SQLite cannot carry), renamed on a
/// populated table. After the contract the new column is still unique,
/// indexed, NOT NULL, checked, and references mailboxes with the same ON
/// DELETE; the expression index is named in a note.
pub async fn rename_carries_constraints(db: TestDb) -> TestResult {
    let db = &db;
    let id = id_type(db);
    db.create_table("mailboxes", "address text PRIMARY KEY")
        .await?;
    db.exec(&format!(
        "INSERT INTO mailboxes (address) SELECT 'user' || i || '@example.com' FROM {}",
        db.series(5000)
    ))
    .await?;
    let email = db.pick(
        "text NOT NULL CONSTRAINT users_email_key UNIQUE CONSTRAINT users_email_check CHECK (email LIKE '%@%') CONSTRAINT users_email_fkey REFERENCES mailboxes (address) ON DELETE CASCADE",
        "text CHECK (email LIKE '%@%') REFERENCES mailboxes (address) ON DELETE CASCADE",
    );
    db.create_table(
        "users",
        &format!("id {id} PRIMARY KEY, email {email}, name text"),
    )
    .await?;
    if db.dialect == Dialect::Sqlite {
        db.exec("CREATE UNIQUE INDEX users_email_key ON users (email)")
            .await?;
    }
    db.exec("CREATE INDEX users_name_email_idx ON users (name, email DESC)")
        .await?;
    db.exec("CREATE INDEX users_email_lower_idx ON users (lower(email))")
        .await?;
    db.exec(&format!(
        "INSERT INTO users (id, email, name) SELECT i, 'user' || i || '@example.com', 'name ' || (i % 7) FROM {}",
        db.series(300)
    ))
    .await?;
    let model = Model::from_rows(db.rows("users", "id", "email").await?);
    let plan = plan_live(
        db,
        "  - rename_column: { table: users, from: email, to: email_address }\n",
        &["users"],
    )
    .await?;
    let expand: Vec<&str> = match db.dialect {
        Dialect::Mysql => unreachable!("MySQL is not run by this test yet"),
        Dialect::Postgres => vec![
            "migration:add_column",
            "migration:sync_trigger",
            "backfill:backfill",
            "verify:verify",
            "migration:index_1",
            "migration:unique_1",
            "migration:index_2",
            "verify:verify_no_nulls",
            "migration:check_not_valid",
            "migration:validate_check",
            "migration:set_not_null",
            "migration:check_1",
            "migration:check_1_validate",
            "migration:foreign_key_1",
            "migration:foreign_key_1_validate",
        ],
        Dialect::Sqlite => vec![
            "migration:add_column",
            "migration:sync_trigger",
            "backfill:backfill",
            "verify:verify",
            "migration:index_1",
            "migration:index_2",
        ],
    };
    assert_shape(
        &plan,
        &[&expand, &["app:app_switch"], &["migration:contract"]],
    )?;
    assert_reversible(&plan, &[true, true, false])?;
    let noted = |needle: &str| plan.notes.iter().any(|n| n.text.contains(needle));
    if !noted("users_email_lower_idx") {
        return Err(fail(format!(
            "the expression index should be named in a note: {:#?}",
            plan.notes
        )));
    }
    if db.dialect == Dialect::Sqlite && !noted("cannot add a CHECK") {
        return Err(fail(format!(
            "SQLite should note the CHECK it cannot carry: {:#?}",
            plan.notes
        )));
    }
    let mut s = Emails {
        model,
        touched: 0,
        contracted: false,
    };
    roll_out(db, &plan, &mut s).await?;

    // The new column's indexes, as the catalog shows them.
    let (unique, plain) = match db.dialect {
        Dialect::Mysql => unreachable!("MySQL is not run by this test yet"),
        Dialect::Postgres => (
            db.scalar(
                "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                  WHERE i.indrelid = 'users'::regclass AND a.attname = 'email_address' AND i.indisvalid AND i.indisunique AND i.indnatts = 1",
            )
            .await?,
            db.scalar(
                "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[1] \
                  WHERE i.indrelid = 'users'::regclass AND a.attname = 'email_address' AND i.indisvalid AND NOT i.indisunique",
            )
            .await?,
        ),
        Dialect::Sqlite => (
            db.scalar(
                "SELECT count(*) FROM pragma_index_list('users') AS l, pragma_index_info(l.name) AS i \
                  WHERE l.\"unique\" = 1 AND i.name = 'email_address'",
            )
            .await?,
            db.scalar(
                "SELECT count(*) FROM pragma_index_list('users') AS l, pragma_index_info(l.name) AS i \
                  WHERE l.\"unique\" = 0 AND i.name = 'email_address' AND i.seqno = 1",
            )
            .await?,
        ),
    };
    if (unique, plain) != (1, 1) {
        return Err(fail(format!(
            "after the contract email_address should have one unique and one plain index, has {unique} and {plain}"
        )));
    }
    if db.dialect == Dialect::Postgres {
        if db.is_nullable("users", "email_address").await? {
            return Err(fail("email_address should be NOT NULL"));
        }
        let constraints = db
            .texts(
                "SELECT contype::text || ' ' || conname || ' ' || convalidated FROM pg_constraint \
                  WHERE conrelid = 'users'::regclass AND contype <> 'p' ORDER BY 1",
            )
            .await?;
        let expected = [
            "c users_email_address_check true",
            "f users_email_address_fkey true",
            "u users_email_address_key true",
        ];
        if constraints != expected {
            return Err(fail(format!(
                "constraints after the contract: {constraints:?}"
            )));
        }
    }
    // ON DELETE CASCADE came along.
    db.exec("DELETE FROM mailboxes WHERE address = 'user7@example.com'")
        .await?;
    if db.scalar("SELECT count(*) FROM users WHERE id = 7").await? != 0 {
        return Err(fail("deleting user 7's mailbox should delete user 7"));
    }
    Ok(())
}

/// Postgres: `counters.id integer PRIMARY KEY` becomes `bigint`: a new
/// column, whose copy of the primary key's index becomes the primary key at
/// the contract.
pub async fn change_primary_key_type(db: TestDb) -> TestResult {
    let db = &db;
    db.create_table("counters", "id integer PRIMARY KEY, n integer")
        .await?;
    db.exec(&format!(
        "INSERT INTO counters (id, n) SELECT i, i * 2 FROM {}",
        db.series(300)
    ))
    .await?;
    let plan = plan_live(
        db,
        "  - change_column_type: { table: counters, column: id, type: bigint }\n",
        &["counters"],
    )
    .await?;
    assert_shape(
        &plan,
        &[
            &[
                "migration:add_column",
                "migration:sync_trigger",
                "backfill:backfill",
                "verify:verify",
                "migration:index_1",
                "verify:verify_no_nulls",
                "migration:check_not_valid",
                "migration:validate_check",
                "migration:set_not_null",
            ],
            &["app:app_switch"],
            &["migration:contract"],
        ],
    )?;
    struct Counters(i64);
    impl Scenario for Counters {
        async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
            self.0 += 1;
            let id = 1000 + self.0;
            let col = if k >= 2 { "id_new" } else { "id" };
            db.exec(&format!(
                "INSERT INTO counters ({col}, n) VALUES ({id}, {k})"
            ))
            .await?;
            db.assert_fails(
                &format!("INSERT INTO counters ({col}, n) VALUES ({id}, 0)"),
                "duplicate key",
            )
            .await
        }
        async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
            let n = db
                .scalar("SELECT count(*) FROM counters WHERE id_new IS NOT NULL")
                .await?;
            if n != 300 + self.0 {
                return Err(fail(format!("{n} rows with id_new after phase {phase}")));
            }
            Ok(())
        }
    }
    roll_out(db, &plan, &mut Counters(0)).await?;
    let pk = db
        .texts(
            "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
              WHERE conrelid = 'counters'::regclass AND contype = 'p'",
        )
        .await?;
    if pk != ["counters_pkey PRIMARY KEY (id_new)"] {
        return Err(fail(format!("primary key after the contract: {pk:?}")));
    }
    if db
        .text("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'counters'::regclass AND attname = 'id_new'")
        .await?
        .as_deref()
        != Some("bigint")
    {
        return Err(fail("id_new should be bigint"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Checking a plan against the live schema; version rules
// ---------------------------------------------------------------------------

/// Every kind of mismatch between a plan and the live schema is refused by
/// `validate_against` before anything runs, naming the change and the
/// nearest existing name.
pub async fn validation_against_live_schema(db: TestDb) -> TestResult {
    let db = &db;
    people(db, "users").await?;
    db.create_table("customers", &format!("id {} PRIMARY KEY", id_type(db)))
        .await?;
    db.exec("CREATE VIEW people_view AS SELECT * FROM users")
        .await?;
    let cases: &[(&str, &str)] = &[
        (
            "  - rename_column: { table: users, from: nmae, to: full_name }\n",
            "changes[0] (rename_column users.nmae → full_name) does not match the live schema: table `users` has no column `nmae`; did you mean `name`?",
        ),
        (
            "  - rename_column: { table: users, from: name, to: id }\n",
            "table `users` already has a column `id`",
        ),
        (
            "  - add_column: { table: users, column: name, type: text }\n",
            "changes[0] (add_column users.name text) does not match the live schema: table `users` already has a column `name`",
        ),
        (
            "  - add_column: { table: usres, column: nick, type: text }\n",
            "table `usres` does not exist; did you mean `users`?",
        ),
        (
            "  - change_column_type: { table: users, column: nam, type: integer }\n",
            "has no column `nam`; did you mean `name`?",
        ),
        (
            "  - change_column_type: { table: users, column: id, type: text, new_column: name }\n",
            "table `users` already has a column `name`",
        ),
        (
            "  - drop_column: { table: users, column: legacy }\n",
            "changes[0] (drop_column users.legacy) does not match the live schema: table `users` has no column `legacy`",
        ),
        (
            "  - set_not_null: { table: users, column: email }\n",
            "table `users` has no column `email`",
        ),
        (
            "  - rename_table: { from: users, to: customers }\n",
            "a table named `customers` already exists",
        ),
        (
            "  - rename_table: { from: user, to: members }\n",
            "table `user` does not exist; did you mean `users`?",
        ),
        (
            "  - add_index: { table: users, columns: [name, nick] }\n",
            "table `users` has no column `nick`",
        ),
        (
            "  - add_foreign_key: { table: users, columns: [id], references: { table: customers, columns: [customer_id] } }\n",
            "table `customers` has no column `customer_id`",
        ),
        (
            "  - add_check: { table: orders, name: positive, check: 'id > 0' }\n",
            "table `orders` does not exist",
        ),
        (
            "  - drop_table: { table: people_view }\n",
            "`people_view` is a view, not a table",
        ),
        (
            "  - add_column: { table: users, column: region, type: text }\n  - add_index: { table: users, columns: [regoin] }\n",
            "changes[1] (add_index users(regoin)) does not match the live schema: table `users` has no column `regoin`; did you mean `region`?",
        ),
    ];
    for (changes, expected) in cases {
        let text = format!("name: lifecycle\nchanges:\n{changes}");
        let file = phasegate::intent::parse_plan(&text, "lifecycle.yaml", "lifecycle")
            .map_err(|e| fail(format!("{e}")))?;
        let tables = phasegate::plan::tables_touched(&file);
        let catalog = Catalog::read(&db.url, &tables).await?;
        match phasegate::plan::validate_against(&file, &catalog) {
            Err(e @ PlanningError::LiveSchema { .. }) if e.to_string().contains(expected) => {}
            other => {
                return Err(fail(format!(
                    "{changes}: expected an error containing {expected:?}, got {:?}",
                    other.map_err(|e| e.to_string())
                )));
            }
        }
    }
    // A plan that matches passes, and so does one whose later change builds
    // on an earlier one.
    for changes in [
        "  - rename_column: { table: users, from: name, to: full_name }\n",
        "  - add_column: { table: users, column: region, type: text }\n  - add_index: { table: users, columns: [region] }\n",
    ] {
        let text = format!("name: lifecycle\nchanges:\n{changes}");
        let file = phasegate::intent::parse_plan(&text, "lifecycle.yaml", "lifecycle")
            .map_err(|e| fail(format!("{e}")))?;
        let catalog = Catalog::read(&db.url, &phasegate::plan::tables_touched(&file)).await?;
        phasegate::plan::validate_against(&file, &catalog)
            .map_err(|e| fail(format!("{changes}: {e}")))?;
    }
    Ok(())
}

/// Postgres: the live schema, but a server older than 11: a required
/// column with a constant default takes the multi-phase path (no
/// `ADD COLUMN … DEFAULT`, which would rewrite the table there) and, rolled
/// out here, fills every row.
pub async fn add_column_on_an_old_postgres(db: TestDb) -> TestResult {
    let db = &db;
    let model = people(db, "people").await?;
    let mut catalog = db.catalog(&["people"]).await?;
    catalog.set_server(phasegate::catalog::ServerVersion::postgres(100_021));
    let plan = crate::common::plan_with(
        db.dialect,
        &catalog,
        "  - add_column: { table: people, column: active, type: boolean, nullable: false, default: 'true' }\n",
    )?;
    assert_shape(
        &plan,
        &[&[
            "migration:add_column",
            "migration:set_default",
            "backfill:backfill",
            "verify:verify_no_nulls",
            "migration:check_not_valid",
            "migration:validate_check",
            "migration:set_not_null",
            "app:app_use",
        ]],
    )?;
    if !plan
        .notes
        .iter()
        .any(|n| n.text.contains("Postgres 10.21 rewrites the whole table"))
    {
        return Err(fail(format!("the plan should say why: {:#?}", plan.notes)));
    }
    let mut s = AddColumn {
        t: db.table("people"),
        col: "active".into(),
        omitted: Box::new(|_, _| Some("yes".into())),
        writes_from: usize::MAX,
        model: Model::from_rows(
            model
                .rows
                .keys()
                .map(|&id| (id, Some("yes".into())))
                .collect(),
        ),
        read: "CASE WHEN active THEN 'yes' ELSE 'no' END".into(),
    };
    roll_out(db, &plan, &mut s).await?;
    if db.is_nullable("people", "active").await? {
        return Err(fail("active should be NOT NULL"));
    }
    // The same plan against the real server (15) is one catalog-only step.
    let live = plan_live(
        db,
        "  - add_column: { table: people, column: verified, type: boolean, nullable: false, default: 'false' }\n",
        &["people"],
    )
    .await?;
    assert_shape(&live, &[&["migration:add_column", "app:app_use"]])
}

/// SQLite: the live schema, but a library older than 3.35 (no DROP
/// COLUMN): dropping or renaming a column is refused before anything runs.
pub async fn drop_column_on_an_old_sqlite(db: TestDb) -> TestResult {
    let db = &db;
    people(db, "people").await?;
    let mut catalog = db.catalog(&["people"]).await?;
    let old = phasegate::catalog::ServerVersion::sqlite("3.31.1")
        .ok_or_else(|| fail("3.31.1 is a version"))?;
    catalog.set_server(old);
    for changes in [
        "  - drop_column: { table: people, column: name }\n",
        "  - rename_column: { table: people, from: name, to: full_name }\n",
    ] {
        match plan_error(db.dialect, &catalog, changes) {
            Some(PlanningError::Unsupported { message, .. })
                if message.contains("this database runs SQLite 3.31.1") => {}
            other => {
                return Err(fail(format!(
                    "{changes}: expected a refusal naming SQLite 3.31.1, got {other:?}"
                )));
            }
        }
    }
    // The real library is new enough.
    plan_live(
        db,
        "  - drop_column: { table: people, column: name }\n",
        &["people"],
    )
    .await?;
    Ok(())
}
