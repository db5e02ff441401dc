//! Schema fidelity: a serial column added as what it is (an integer numbered
//! from a sequence, NOT NULL), and a dropped column's rollback told what
//! rows written without it hold (`down`).

use phasegate::dialect::Dialect;

use crate::common::{
    Model, Scenario, TestDb, TestResult, apply_phase, assert_reversible, fail, plan_error,
    plan_live, roll_out, rollback_phase,
};

/// The old and the new release both insert without naming the serial
/// column; every row, old or new, must hold a distinct number.
struct Numbered {
    next: i64,
}

impl Scenario for Numbered {
    async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
        for _ in 0..3 {
            self.next += 1;
            db.exec(&format!(
                "INSERT INTO items (id, name) VALUES ({}, 'release {k}')",
                self.next
            ))
            .await?;
        }
        if k >= 1 {
            // New code reads the number the database gave its row.
            let n = db
                .text(&format!(
                    "SELECT CAST(seq_no AS {}) FROM items WHERE id = {}",
                    db.pick3("text", "text", "char"),
                    self.next
                ))
                .await?;
            if n.is_none() {
                return Err(fail(format!("release {k}: the new row got no number")));
            }
        }
        Ok(())
    }

    async fn check(&mut self, db: &TestDb, phase: usize) -> TestResult {
        let rows = db.scalar("SELECT count(*) FROM items").await?;
        let numbered = db
            .scalar("SELECT count(DISTINCT seq_no) FROM items WHERE seq_no IS NOT NULL")
            .await?;
        if rows != self.next || numbered != rows {
            return Err(fail(format!(
                "after phase {phase}: {rows} rows (expected {}), {numbered} distinct numbers",
                self.next
            )));
        }
        if db.is_nullable("items", "seq_no").await? {
            return Err(fail("seq_no should be NOT NULL"));
        }
        if db.dialect == Dialect::Postgres {
            db.assert_fails(
                "INSERT INTO items (id, name, seq_no) VALUES (900000, 'x', NULL)",
                "null value",
            )
            .await?;
            // The sequence belongs to the column: it goes when the column goes.
            let owned = db
                .scalar(
                    "SELECT count(*) FROM pg_depend d JOIN pg_class s ON s.oid = d.objid \
                      WHERE s.relname = 'items_seq_no_seq' AND d.deptype = 'a'",
                )
                .await?;
            if owned != 1 {
                return Err(fail("items_seq_no_seq is not owned by items.seq_no"));
            }
        }
        Ok(())
    }
}

/// A serial column added to a populated table while old code inserts:
/// Postgres and MySQL/MariaDB number every existing row and every new one;
/// SQLite refuses at plan time with the way forward.
pub async fn add_serial_column(db: TestDb) -> TestResult {
    let db = &db;
    super::people(db, "items").await?;
    let ty = db.pick3("bigserial", "bigserial", "serial");
    let changes = format!("  - add_column: {{ table: items, column: seq_no, type: {ty} }}\n");
    if db.dialect == Dialect::Sqlite {
        let e = plan_live(db, &changes, &["items"]).await.err();
        return match e.map(|e| e.to_string()) {
            Some(m) if m.contains("SQLite has no sequences") && m.contains("backfill: rowid") => {
                Ok(())
            }
            other => Err(fail(format!(
                "expected SQLite to refuse serial, got {other:?}"
            ))),
        };
    }
    let plan = plan_live(db, &changes, &["items"]).await?;
    // The exact steps are the recipe's unit test; here: one deploy, the
    // sequence first on Postgres, then the column numbered and made NOT NULL.
    let first = plan.steps.first().map(|s| s.id.as_str());
    let expected = db.pick3("1.create_sequence", "", "1.add_column");
    if plan.phases.len() != 1 || first != Some(expected) {
        return Err(fail(format!(
            "expected one deploy starting with {expected}, got {} starting with {first:?}",
            plan.phases.len()
        )));
    }
    assert_reversible(&plan, &[true])?;
    roll_out(db, &plan, &mut Numbered { next: 300 }).await
}

/// Rows written by the release that stopped using `legacy`: they lack it.
struct StopWriting {
    model: Model,
}

impl Scenario for StopWriting {
    async fn release(&mut self, db: &TestDb, k: usize) -> TestResult {
        for _ in 0..4 {
            let name = format!("r{k}");
            let id = self.model.insert(Some(&format!("legacy of {name}")));
            if k == 0 {
                db.exec(&format!(
                    "INSERT INTO people (id, name, legacy) VALUES ({id}, '{name}', 'legacy of {name}')"
                ))
                .await?;
            } else {
                db.exec(&format!(
                    "INSERT INTO people (id, name) VALUES ({id}, '{name}')"
                ))
                .await?;
                self.model.set(id, None);
            }
        }
        Ok(())
    }
}

/// `people (id, name, legacy NOT NULL)` with 300 rows; the model tracks legacy.
async fn people(db: &TestDb) -> TestResult<Model> {
    super::people_with_legacy(db, "text NOT NULL").await?;
    Ok(Model::from_rows(db.rows("people", "id", "legacy").await?))
}

/// `down` for `legacy`: what rows written without it hold after a rollback.
pub fn legacy_down(db: &TestDb) -> &'static str {
    db.pick3(
        "'legacy of ' || name",
        "'legacy of ' || name",
        "CONCAT('legacy of ', name)",
    )
}

/// Postgres and MySQL: phase 1 of a drop_column relaxes NOT NULL; the new
/// release writes rows without the column; rolling phase 1 back fills those
/// rows from `down` and restores NOT NULL. Without `down` the rollback
/// stops and names the field. SQLite never relaxes NOT NULL (new code must
/// keep writing the column), so there `down` is unused and says so.
pub async fn drop_column_rollback_down(db: TestDb) -> TestResult {
    let db = &db;
    let model = people(db).await?;
    let without = "  - drop_column: { table: people, column: legacy }\n";
    let with = format!(
        "  - drop_column: {{ table: people, column: legacy, down: \"{}\" }}\n",
        legacy_down(db)
    );
    if db.dialect == Dialect::Sqlite {
        // SQLite cannot relax NOT NULL: the new release's inserts would
        // fail once it stops writing the column, so the drop is refused.
        let catalog = db.catalog(&["people"]).await?;
        return match plan_error(db.dialect, &catalog, &with) {
            Some(e) if e.to_string().contains("cannot relax") => Ok(()),
            other => Err(fail(format!(
                "SQLite: dropping a NOT NULL column without a default must be refused, got {other:?}"
            ))),
        };
    }
    let plan = plan_live(db, &with, &["people"]).await?;
    let bare = plan_live(db, without, &["people"]).await?;
    let phase = &plan.phases[0];
    apply_phase(db, &plan, phase).await?;
    let mut app = StopWriting { model };
    app.release(db, 0).await?;
    app.release(db, 1).await?;
    if !db.is_nullable("people", "legacy").await? {
        return Err(fail("phase 1 should have relaxed NOT NULL"));
    }
    // Without `down`: the rollback stops, naming the field, and changes nothing.
    match rollback_phase(db, &bare, &bare.phases[0]).await {
        Err(e) if e.to_string().contains("add `down") => {}
        other => {
            return Err(fail(format!(
                "rollback without `down` should stop and name it, got {other:?}"
            )));
        }
    }
    if !db.is_nullable("people", "legacy").await? {
        return Err(fail("a refused rollback must leave legacy nullable"));
    }
    // With `down`: filled, then NOT NULL again.
    rollback_phase(db, &plan, phase).await?;
    if db.is_nullable("people", "legacy").await? {
        return Err(fail("rollback should have restored NOT NULL"));
    }
    for id in app.model.ids_where(|v| v.is_none()) {
        app.model.set(id, Some("legacy of r1"));
    }
    db.assert_rows("people", "legacy", &app.model.rows, "after the rollback")
        .await?;
    // The old release works again; then the plan goes forward to the end.
    app.release(db, 0).await?;
    roll_out(db, &plan, &mut app).await
}
