//! `drop_table`: the application stops using the table; a later deploy drops it.

use minijinja::context;

use super::table_value;
use crate::intent::DropTable;
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe};

pub(super) fn expand(r: &mut Recipe<'_>, i: &DropTable) -> Result<(), PlanningError> {
    let t = &i.table;
    let sql = r.render(
        "drop_table",
        &context! { table => table_value(t) },
        &["drop_table"],
    )?;
    r.effects.replaces_table = Some((t.clone(), "drops"));
    r.app(
        "app_stop_using",
        format!("Stop reading and writing table {t}"),
    );
    let lock = r.lock(
        "ACCESS EXCLUSIVE",
        &[t],
        Blocks::ReadsAndWrites,
        LockDuration::Brief,
    );
    let drop = r.migration(
        "drop_table",
        format!("Drop table {t}"),
        sql.get("drop_table"),
        None,
        lock,
    );
    let s = r.step(drop);
    s.reversible = false;
    s.table = Some(t.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, reversible, shape};

    #[test]
    fn app_stops_then_drop_is_irreversible() {
        let p = plan(Dialect::Sqlite, "  - drop_table: { table: audit_log }\n");
        assert_eq!(
            shape(&p),
            vec![vec!["app:app_stop_using"], vec!["migration:drop_table"]]
        );
        assert_eq!(reversible(&p), vec![true, false]);
    }
}
