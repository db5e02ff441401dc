//! `add_index`: built without blocking writes (`CREATE INDEX CONCURRENTLY`
//! on Postgres, which cannot run in a transaction). A unique index is a
//! constraint new rows must already satisfy, so the application stops writing
//! duplicates one deploy before, and a verification finds none left.
//!
//! A partitioned Postgres table (known from the live catalog) is indexed
//! partition by partition ([`super::partitioned_index`]); a unique index
//! there must include the partition key. An index on an inheritance parent
//! covers only its own rows: a unique one is refused, a plain one noted.
//!
//! MySQL/MariaDB build a secondary index online (`ALGORITHM=INPLACE,
//! LOCK=NONE`): reads and writes go on, with a brief metadata lock at the
//! start and end. They have no partial indexes, so `where` is refused.

use minijinja::context;

use super::partitioned_index::{self, IndexSpec};
use super::{beside, cols_text, names, partitioned, table_value};
use crate::dialect::Dialect;
use crate::intent::AddIndex;
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

pub(super) fn expand(r: &mut Recipe<'_>, i: &AddIndex) -> Result<(), PlanningError> {
    let t = &i.table;
    if r.dialect == Dialect::Mysql && i.predicate.is_some() {
        return Err(r.unsupported(
            "MySQL and MariaDB have no partial indexes: drop `where`, or index an expression column",
        ));
    }
    let cols = i
        .columns
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join("_");
    let name = i.name.clone().unwrap_or_else(|| {
        derived_name(&[t.name.as_str(), &cols, if i.unique { "key" } else { "idx" }])
    });
    let ctx = context! {
        table => table_value(t),
        table_name => t.name.as_str(),
        index => &name,
        index_qualified => beside(t, &name),
        columns => names(&i.columns),
        unique => i.unique,
        predicate => i.predicate.as_ref().map(|p| p.as_str()),
    };
    let sql = r.render(
        "add_index",
        &ctx,
        &["create_index", "drop_index", "verify_unique"],
    )?;
    for c in &i.columns {
        r.effects.uses.push((t.clone(), c.clone()));
    }
    if let Some(p) = &i.predicate {
        r.effects
            .exprs
            .push((t.clone(), p.as_str().to_string(), true));
    }
    let partitioning = partitioned::table_partitioning(r, t);
    let spec = IndexSpec::on_columns(
        name.clone(),
        &i.columns,
        i.unique,
        i.predicate.as_ref().map(|p| p.as_str().to_string()),
    );
    if let Some(p) = partitioning.filter(|p| !p.inherited_by.is_empty()) {
        let children = partitioned::names(&p.inherited_by);
        if i.unique {
            return Err(r.unsupported(format!(
                "{t} has inheritance children ({children}), and a unique index on {t} covers only the rows stored in {t} itself, not theirs: Postgres cannot enforce uniqueness across an inheritance tree. If uniqueness within {t} alone is what you want, create it with a `sql` change (CREATE UNIQUE INDEX CONCURRENTLY … ON {t}, transactional: false)"
            )));
        }
        r.note(format!(
            "indexes are not inherited: this index covers only the rows stored in {t} itself; its inheritance children ({children}) need their own add_index"
        ));
    }
    if r.dialect == Dialect::Postgres && !r.catalog.was_read(t) {
        r.note(format!(
            "planned offline: if {t} is a partitioned table, Postgres refuses CREATE INDEX CONCURRENTLY on it; plan against the database (`phasegate plan --env ENV PLAN`) so the index is built partition by partition"
        ));
    }
    let cols = cols_text(&i.columns);
    if i.unique {
        r.app(
            "app_no_duplicates",
            format!(
                "Never write two rows of {t} with the same ({cols}); clean up existing duplicates"
            ),
        );
        r.verify(
            "verify_unique",
            format!("No duplicate ({cols}) in {t}"),
            sql.get("verify_unique"),
            0,
        );
    }
    if let Some(p) = partitioning.filter(|p| p.is_partitioned()) {
        return partitioned_index::build(r, t, p, &spec, "create_index");
    }
    let lock = match r.dialect {
        Dialect::Postgres => r.lock(
            "SHARE UPDATE EXCLUSIVE",
            &[t],
            Blocks::Nothing,
            LockDuration::Scan,
        ),
        Dialect::Sqlite => r.lock("", &[t], Blocks::Writes, LockDuration::Scan),
        Dialect::Mysql => r.lock(
            "online build (ALGORITHM=INPLACE, LOCK=NONE); brief metadata lock at start and end",
            &[t],
            Blocks::Nothing,
            LockDuration::Scan,
        ),
    };
    let unique = if i.unique { "unique " } else { "" };
    let step = r.migration(
        "create_index",
        format!(
            "Build {unique}index {name} on {t} ({cols}){}",
            match r.dialect {
                Dialect::Postgres => " concurrently",
                Dialect::Mysql => " online (INPLACE, LOCK=NONE)",
                Dialect::Sqlite => "",
            }
        ),
        sql.get("create_index"),
        Some(sql.get("drop_index")),
        lock,
    );
    let transactional = r.dialect == Dialect::Sqlite;
    let s = r.step(step);
    s.transactional = transactional;
    s.table = Some(t.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, shape, sql_of};

    #[test]
    fn concurrent_build_outside_a_transaction() {
        let p = plan(
            Dialect::Postgres,
            "  - add_index: { table: users, columns: [email] }\n",
        );
        assert_eq!(shape(&p), vec![vec!["migration:create_index"]]);
        assert!(!p.steps[0].transactional);
        assert!(
            sql_of(&p, "create_index")
                .contains("CREATE INDEX CONCURRENTLY IF NOT EXISTS \"users_email_idx\"")
        );
    }

    #[test]
    fn unique_index_waits_for_the_app() {
        let p = plan(
            Dialect::Postgres,
            "  - add_index: { table: users, columns: [email], unique: true }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec!["app:app_no_duplicates"],
                vec!["verify:verify_unique", "migration:create_index"]
            ]
        );
    }
}
