//! The outcomes a fidelity test accepts, shared by `tests/fidelity*.rs`: a
//! plan refused before any DDL, naming what it must; or a plan rolled out
//! with the application's releases running, after which the object still
//! works.

use super::{Scenario, TestDb, TestResult, apply_phase, fail, plan_error, plan_live, roll_out};

/// `Ok` when `cond` holds, else a failure saying `what`.
pub fn check(cond: bool, what: impl Into<String>) -> TestResult {
    if cond { Ok(()) } else { Err(fail(what)) }
}

/// A release model driven by a closure over the release number: the SQL
/// each release runs.
pub struct Releases<F: Fn(usize) -> Vec<String>>(pub F);

impl<F: Fn(usize) -> Vec<String>> Scenario for Releases<F> {
    async fn release(&mut self, db: &TestDb, release: usize) -> TestResult {
        for sql in (self.0)(release) {
            db.exec(&sql).await?;
        }
        Ok(())
    }
}

/// The planner's refusal for `changes`, which must name every `needle`,
/// with the schema unchanged by planning.
pub async fn assert_refused(
    db: &TestDb,
    changes: &str,
    tables: &[&str],
    needles: &[&str],
) -> TestResult {
    let catalog = db.catalog(tables).await?;
    let before = db.schema().await?;
    let Some(err) = plan_error(db.dialect, &catalog, changes) else {
        return Err(fail(format!(
            "{} planned, but must be refused before any DDL:\n{changes}",
            db.dialect
        )));
    };
    let text = err.to_string();
    for needle in needles {
        check(
            text.contains(needle),
            format!("the refusal must name {needle:?}; got: {text}"),
        )?;
    }
    check(
        before == db.schema().await?,
        "planning must not change the schema",
    )
}

/// Either right outcome: refused naming `needle` (schema untouched), or
/// rolled out with `app` running at every phase and every statement of
/// `after` succeeding after the last phase.
pub async fn refused_or_works(
    db: &TestDb,
    changes: &str,
    tables: &[&str],
    needle: &str,
    app: &mut impl Scenario,
    after: &[&str],
) -> TestResult {
    let catalog = db.catalog(tables).await?;
    if plan_error(db.dialect, &catalog, changes).is_some() {
        return assert_refused(db, changes, tables, &[needle]).await;
    }
    let plan = plan_live(db, changes, tables).await?;
    roll_out(db, &plan, app).await?;
    for sql in after {
        db.exec(sql).await.map_err(|e| {
            fail(format!(
                "planned without refusing, and after the contract this fails: {e}"
            ))
        })?;
    }
    Ok(())
}

/// Applies only deploy 1 of `changes` (no up/down/up).
pub async fn apply_first_phase(db: &TestDb, changes: &str, tables: &[&str]) -> TestResult {
    let plan = plan_live(db, changes, tables).await?;
    let first = plan
        .phases
        .first()
        .ok_or_else(|| fail("the plan has no phase"))?;
    apply_phase(db, &plan, first).await
}
