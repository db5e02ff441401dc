//! Building an index on a partitioned Postgres table without blocking
//! writes. Postgres refuses `CREATE INDEX CONCURRENTLY` on a partitioned
//! table, so [`build`] creates the index `ON ONLY` the parent (a catalog
//! change; the index is INVALID), builds one concurrently on each partition
//! and attaches it (`ALTER INDEX … ATTACH PARTITION`); a sub-partitioned
//! partition gets an index `ON ONLY` it, its own partitions' indexes
//! attached, and is then attached above. The parent's index is valid once
//! every partition's is attached, which the last step verifies.
//!
//! Every statement is a step of its own with its rollback: a concurrent
//! build is undone with `DROP INDEX CONCURRENTLY`; an `ON ONLY` index and an
//! attach by dropping the partitioned index, which drops the indexes
//! attached to it (an attached index cannot be detached or dropped alone).
//!
//! `add_index` calls it for a partitioned table; it is meant as well for any
//! recipe that builds an index on a table that may be partitioned (a rename
//! carrying an index to the new column).

use serde::Serialize;

use crate::catalog::{IndexKey, Partition, Partitioning};
use crate::name::{Ident, TableName};
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

/// The index to build: its name and definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexSpec {
    /// The parent's index, in the partitioned table's schema.
    pub name: Ident,
    pub unique: bool,
    /// The access method when not btree.
    pub method: Option<String>,
    /// The key columns, in order (expression keys are not supported).
    pub keys: Vec<IndexKey>,
    /// `INCLUDE` columns.
    pub include: Vec<Ident>,
    /// `NULLS NOT DISTINCT` (Postgres 15+).
    pub nulls_not_distinct: bool,
    /// The `WHERE` of a partial index, as SQL.
    pub predicate: Option<String>,
}

impl IndexSpec {
    /// A plain index on `columns`, as `add_index` writes one.
    pub fn on_columns(
        name: Ident,
        columns: &[Ident],
        unique: bool,
        predicate: Option<String>,
    ) -> IndexSpec {
        IndexSpec {
            name,
            unique,
            keys: columns
                .iter()
                .map(|c| IndexKey {
                    column: Some(c.clone()),
                    ..IndexKey::default()
                })
                .collect(),
            method: None,
            include: Vec::new(),
            nulls_not_distinct: false,
            predicate,
        }
    }

    fn columns(&self) -> Vec<Ident> {
        self.keys.iter().filter_map(|k| k.column.clone()).collect()
    }
}

#[derive(Serialize)]
struct KeyCtx {
    column: String,
    descending: bool,
    nulls_first: bool,
    opclass: Option<Vec<String>>,
    collation: Option<Vec<String>>,
}

#[derive(Serialize)]
struct IndexCtx {
    unique: bool,
    method: Option<String>,
    keys: Vec<KeyCtx>,
    include: Vec<String>,
    nulls_not_distinct: bool,
    predicate: Option<String>,
}

fn parts(t: &TableName) -> Vec<String> {
    t.parts().into_iter().map(str::to_string).collect()
}

/// Why `index` cannot be built on `table` partition by partition, if it
/// cannot: a unique index that lacks a column of a partition key (Postgres
/// enforces uniqueness per partition, so the key must decide the
/// partition), an expression key, or a foreign-table partition.
pub(crate) fn refusal(table: &TableName, p: &Partitioning, index: &IndexSpec) -> Option<String> {
    if index.keys.iter().any(|k| k.column.is_none()) {
        return Some(format!(
            "{table} is partitioned, and phasegate builds an index there partition by partition only on columns, not expressions: create it with `sql` changes (CREATE INDEX … ON ONLY {table}, CREATE INDEX CONCURRENTLY on each partition, ALTER INDEX … ATTACH PARTITION)"
        ));
    }
    if index.unique
        && let Some((of, key, missing)) = p.uncovered_key(&index.columns())
    {
        let whose = match of {
            None => format!("{table} is partitioned by {}", key.definition),
            Some(part) => format!(
                "partition {part} of {table} is partitioned in turn by {}",
                key.definition
            ),
        };
        let lacks = if missing.is_empty() {
            "an expression of it".to_string()
        } else {
            missing
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Some(format!(
            "a unique index on a partitioned table must include every column of the partition key (Postgres checks uniqueness within each partition only): {whose}, and the index ({}) lacks {lacks}; add {lacks} to `columns`, or make the index non-unique",
            super::cols_text(&index.columns())
        ));
    }
    if let Some(f) = p.all_partitions().into_iter().find(|part| part.foreign) {
        return Some(format!(
            "partition {} of {table} is a foreign table, which Postgres cannot index, so no index on {table} can cover it: detach it first, or index the other partitions one by one with add_index",
            f.table
        ));
    }
    None
}

/// Adds the steps that build `index` on the partitioned table `table`
/// (whose partitioning is `p`), after the recipe's last step: `{slug}` (the
/// index ON ONLY `table`), then for the n-th partition, depth first,
/// `{slug}_part_{n}` (its index: built concurrently, or ON ONLY a
/// sub-partitioned one followed by its own partitions' steps) and
/// `{slug}_attach_{n}`, and last `{slug}_valid`, which verifies the index
/// valid. Refuses (see [`refusal`]) before adding any step.
pub(crate) fn build(
    r: &mut Recipe<'_>,
    table: &TableName,
    p: &Partitioning,
    index: &IndexSpec,
    slug: &str,
) -> Result<(), PlanningError> {
    if let Some(why) = refusal(table, p, index) {
        return Err(r.unsupported(why));
    }
    let ctx = IndexCtx {
        unique: index.unique,
        method: index.method.clone(),
        keys: index
            .keys
            .iter()
            .filter_map(|k| {
                Some(KeyCtx {
                    column: k.column.as_ref()?.as_str().to_string(),
                    descending: k.descending,
                    nulls_first: k.nulls_first,
                    opclass: k.opclass.as_ref().map(parts),
                    collation: k.collation.as_ref().map(parts),
                })
            })
            .collect(),
        include: index
            .include
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        nulls_not_distinct: index.nulls_not_distinct,
        predicate: index.predicate.clone(),
    };
    let ctx = minijinja::Value::from(minijinja::value::Serde(&ctx));
    let parent = table.sibling(index.name.clone());
    let unique = if index.unique { "unique " } else { "" };
    let mut b = Builder {
        r,
        ctx,
        index: &index.name,
        slug,
        n: 0,
    };
    b.on_only(
        slug.to_string(),
        table,
        &parent,
        format!(
            "Create {unique}index {} on only {table}: a catalog change; INVALID until every partition's index is attached",
            index.name
        ),
    )?;
    for part in &p.partitions {
        b.partition(part, &parent)?;
    }
    let sql = b.sql(&parent, table, &parent, &["verify_valid"])?;
    b.r.verify(
        &format!("{slug}_valid"),
        format!(
            "Index {} on {table} is valid: every partition's index is attached (a partition created since the plan was made has none; attach one to finish)",
            index.name
        ),
        sql.get("verify_valid"),
        1,
    );
    Ok(())
}

struct Builder<'r, 'a> {
    r: &'r mut Recipe<'a>,
    ctx: minijinja::Value,
    index: &'r Ident,
    slug: &'r str,
    n: usize,
}

impl Builder<'_, '_> {
    fn sql(
        &self,
        qualified: &TableName,
        on: &TableName,
        attach_to: &TableName,
        blocks: &[&'static str],
    ) -> Result<crate::dialect::templates::Blocks, PlanningError> {
        let ctx = minijinja::context! {
            index => self.ctx.clone(),
            name => qualified.name.as_str(),
            qualified => parts(qualified),
            on => parts(on),
            attach_to => parts(attach_to),
        };
        self.r.render("partitioned_index", &ctx, blocks)
    }

    /// The index ON ONLY a partitioned table (the parent, or a sub-partitioned partition).
    fn on_only(
        &mut self,
        slug: String,
        on: &TableName,
        qualified: &TableName,
        description: String,
    ) -> Result<(), PlanningError> {
        let sql = self.sql(
            qualified,
            on,
            qualified,
            &["create_on_only", "drop_on_only"],
        )?;
        let lock = self
            .r
            .lock("SHARE", &[on], Blocks::Writes, LockDuration::Brief);
        let step = self.r.migration(
            &slug,
            description,
            sql.get("create_on_only"),
            Some(sql.get("drop_on_only")),
            lock,
        );
        self.r.step(step).table = Some(on.clone());
        Ok(())
    }

    /// A partition's index, attached to `above`.
    fn partition(&mut self, part: &Partition, above: &TableName) -> Result<(), PlanningError> {
        self.n += 1;
        let n = self.n;
        let t = &part.table;
        let own = t.sibling(derived_name(&[self.index.as_str(), t.name.as_str()]));
        let slug = format!("{}_part_{n}", self.slug);
        if part.key.is_some() {
            self.on_only(
                slug,
                t,
                &own,
                format!(
                    "Create index {} on only {t}, a sub-partitioned partition: INVALID until its partitions' indexes are attached",
                    own.name
                ),
            )?;
            for sub in &part.partitions {
                self.partition(sub, &own)?;
            }
        } else {
            let sql = self.sql(&own, t, above, &["create_partition", "drop_partition"])?;
            let lock = self.r.lock(
                "SHARE UPDATE EXCLUSIVE",
                &[t],
                Blocks::Nothing,
                LockDuration::Scan,
            );
            let step = self.r.migration(
                &slug,
                format!("Build index {} on partition {t} concurrently", own.name),
                sql.get("create_partition"),
                Some(sql.get("drop_partition")),
                lock,
            );
            let s = self.r.step(step);
            s.transactional = false;
            s.table = Some(t.clone());
        }
        let sql = self.sql(&own, t, above, &["attach"])?;
        // Rolled back by dropping the index it was attached to, which takes
        // this one with it: an attached index cannot be detached.
        let undo = self.sql(above, t, above, &["drop_on_only"])?;
        let lock = self.r.lock(
            "ACCESS EXCLUSIVE on the partition's index, brief",
            &[t],
            Blocks::ReadsAndWrites,
            LockDuration::Brief,
        );
        let step = self.r.migration(
            &format!("{}_attach_{n}", self.slug),
            format!("Attach index {} of {t} to {}", own.name, above.name),
            sql.get("attach"),
            Some(undo.get("drop_on_only")),
            lock,
        );
        self.r.step(step).table = Some(t.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::partitioned::fixture::catalog;
    use crate::plan::recipes::testing::{plan, plan_with, reversible, shape, sql_of};

    fn rollback<'a>(p: &'a crate::plan::Plan, slug: &str) -> &'a str {
        p.steps
            .iter()
            .find(|s| s.id.ends_with(&format!(".{slug}")))
            .and_then(|s| s.rollback_sql.as_deref())
            .unwrap_or_else(|| panic!("no rollback for {slug}"))
    }

    #[test]
    fn a_partitioned_table_is_indexed_partition_by_partition() {
        let p = plan_with(
            Dialect::Postgres,
            &catalog(150_000),
            "  - add_index: { table: events, columns: [email] }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            shape(&p),
            vec![vec![
                "migration:create_index",
                "migration:create_index_part_1",
                "migration:create_index_attach_1",
                "migration:create_index_part_2",
                "migration:create_index_part_3",
                "migration:create_index_attach_3",
                "migration:create_index_part_4",
                "migration:create_index_attach_4",
                "migration:create_index_attach_2",
                "verify:create_index_valid",
            ]]
        );
        assert_eq!(reversible(&p), vec![true]);
        // (step, its SQL or a part of it, its rollback)
        let expected = [
            (
                "create_index",
                "CREATE INDEX IF NOT EXISTS \"events_email_idx\"\n  ON ONLY \"events\" (\"email\");",
                "DROP INDEX IF EXISTS \"events_email_idx\";",
            ),
            (
                "create_index_part_1",
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"events_email_idx_events_2024\"\n  ON \"public\".\"events_2024\" (\"email\");",
                "DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"events_email_idx_events_2024\";",
            ),
            (
                "create_index_attach_1",
                "ALTER INDEX \"events_email_idx\" ATTACH PARTITION \"public\".\"events_email_idx_events_2024\";",
                "DROP INDEX IF EXISTS \"events_email_idx\";",
            ),
            // The sub-partitioned partition: ON ONLY it, its partitions
            // attached to it, then it above.
            (
                "create_index_part_2",
                "ON ONLY \"public\".\"events_2025\" (\"email\");",
                "DROP INDEX IF EXISTS \"public\".\"events_email_idx_events_2025\";",
            ),
            (
                "create_index_attach_3",
                "ALTER INDEX \"public\".\"events_email_idx_events_2025\" ATTACH PARTITION \"public\".\"events_email_idx_events_2025_eu\";",
                "DROP INDEX IF EXISTS \"public\".\"events_email_idx_events_2025\";",
            ),
            (
                "create_index_attach_2",
                "ATTACH PARTITION \"public\".\"events_email_idx_events_2025\";",
                "DROP INDEX IF EXISTS \"events_email_idx\";",
            ),
        ];
        for (slug, sql, undo) in expected {
            assert!(
                sql_of(&p, slug).ends_with(sql),
                "{slug}: {}",
                sql_of(&p, slug)
            );
            assert_eq!(rollback(&p, slug), undo, "{slug}");
        }
        let concurrent: Vec<bool> = p
            .steps
            .iter()
            .filter(|s| s.sql.as_deref().is_some_and(|q| q.contains("CONCURRENTLY")))
            .map(|s| s.transactional)
            .collect();
        assert_eq!(concurrent, vec![false, false, false]);
        assert!(
            sql_of(&p, "create_index_valid")
                .contains("to_regclass('\"events_email_idx\"') AND indisvalid")
        );
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn a_unique_index_must_hold_every_partition_key() {
        let c = catalog(150_000);
        let e = plan_with(
            Dialect::Postgres,
            &c,
            "  - add_index: { table: events, columns: [email], unique: true }\n",
        )
        .map(|p| shape(&p));
        let e = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("events is partitioned by RANGE (at), and the index (email) lacks at; add at to `columns`"),
            "{e}"
        );
        let e = plan_with(
            Dialect::Postgres,
            &c,
            "  - add_index: { table: events, columns: [email, at], unique: true }\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains(
                "partition public.events_2025 of events is partitioned in turn by RANGE (region)"
            ) && e.contains("lacks region"),
            "{e}"
        );
        let p = plan_with(
            Dialect::Postgres,
            &c,
            "  - add_index: { table: events, columns: [email, at, region], unique: true, where: \"email <> ''\" }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shape(&p)[0], vec!["app:app_no_duplicates"]);
        assert_eq!(shape(&p)[1][0], "verify:verify_unique");
        assert!(sql_of(&p, "create_index_part_4").starts_with(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"events_email_at_region_key_events_2025_us\"\n  ON \"public\".\"events_2025_us\" (\"email\", \"at\", \"region\") WHERE email <> '';"
        ));
    }

    #[test]
    fn inheritance_parents_and_offline_plans_are_noted() {
        let c = catalog(150_000);
        let p = plan_with(
            Dialect::Postgres,
            &c,
            "  - add_index: { table: base, columns: [v] }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shape(&p), vec![vec!["migration:create_index"]]);
        assert!(
            p.notes[0]
                .text
                .contains("its inheritance children (public.kid) need their own add_index")
        );
        let e = plan_with(
            Dialect::Postgres,
            &c,
            "  - add_index: { table: base, columns: [v], unique: true }\n",
        );
        assert!(e.is_err_and(|e| {
            e.to_string()
                .contains("cannot enforce uniqueness across an inheritance tree")
        }));
        let p = plan(
            Dialect::Postgres,
            "  - add_index: { table: events, columns: [email] }\n",
        );
        assert!(
            p.notes[0]
                .text
                .contains("planned offline: if events is a partitioned table")
        );
        assert!(
            plan(
                Dialect::Sqlite,
                "  - add_index: { table: events, columns: [email] }\n"
            )
            .notes
            .is_empty()
        );
        // A partition is indexed like any table.
        let p = plan_with(
            Dialect::Postgres,
            &c,
            "  - add_index: { table: events_2024, columns: [email] }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(sql_of(&p, "create_index").contains("CONCURRENTLY"));
    }
}
