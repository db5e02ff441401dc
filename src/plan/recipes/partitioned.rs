//! What the intents do on Postgres partitioned tables, partitions and
//! inheritance trees, as far as the live catalog tells ([`Partitioning`]):
//! each check here lets a change through where its SQL works there, and
//! otherwise refuses it at plan time, before any step runs, with the reason
//! and the way forward. (`add_index` builds partition by partition:
//! [`super::partitioned_index`].)
//!
//! | intent | partitioned table | partition | inheritance parent | inheritance child |
//! |---|---|---|---|---|
//! | `add_check`, `set_not_null` | works (recurses) | works | works (recurses) | works |
//! | `add_foreign_key` | refused before Postgres 18 (no NOT VALID there) | works | refused (not inherited) | works |
//! | … referencing the table | works from Postgres 12 | works | refused (children's rows cannot be referenced) | works |
//! | `rename_column`, `change_column_type` (new column) | works from Postgres 13 (row triggers), except a partition-key column or one an index or foreign key uses | refused (columns are the parent's) | trigger sync refused (children's writes are missed) | refused for an inherited column |
//! | `drop_column` | works, except a partition-key column | refused | works (recurses) | refused for an inherited column |
//!
//! Offline nothing is known, and nothing is refused.

use crate::catalog::Partitioning;
use crate::dialect::Dialect;
use crate::name::{Ident, TableName};
use crate::plan::{PlanningError, Recipe};

/// The partitioning of `t` when planning for Postgres against a catalog that read it.
pub(super) fn table_partitioning<'a>(r: &Recipe<'a>, t: &TableName) -> Option<&'a Partitioning> {
    if r.dialect != Dialect::Postgres {
        return None;
    }
    let catalog = r.catalog;
    catalog.table(t).map(|f| &f.partitioning)
}

/// Table names for a message: `public.a, public.b`.
pub(super) fn names(tables: &[TableName]) -> String {
    tables
        .iter()
        .map(TableName::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `add_foreign_key` from `t` to `parent`.
pub(crate) fn check_foreign_key(
    r: &Recipe<'_>,
    t: &TableName,
    parent: &TableName,
) -> Result<(), PlanningError> {
    if let Some(p) = table_partitioning(r, t) {
        if p.is_partitioned()
            && let Some(v) = r.server_below(18, 0)
        {
            return Err(r.unsupported(format!(
                "{t} is partitioned, and {v} cannot add a foreign key NOT VALID to a partitioned table (Postgres 18 can), so adding it would check every row of every partition while writes to {t} wait: add it to each partition with its own add_foreign_key (each NOT VALID, then validated), or, at a quiet time, with a `sql` change (ALTER TABLE {t} ADD FOREIGN KEY …, which checks all rows under a lock that blocks writes)"
            )));
        }
        if !p.inherited_by.is_empty() {
            return Err(r.unsupported(format!(
                "{t} has inheritance children ({}), and foreign keys are not inherited: the key would check only the rows stored in {t} itself. Add it to {t} and to each child with their own add_foreign_key, reading each table alone (`sql` changes with ALTER TABLE ONLY …)",
                names(&p.inherited_by)
            )));
        }
    }
    if let Some(p) = table_partitioning(r, parent) {
        if p.is_partitioned() {
            r.require(
                12,
                0,
                &format!("a foreign key that references a partitioned table ({parent})"),
            )?;
        }
        if !p.inherited_by.is_empty() {
            return Err(r.unsupported(format!(
                "{parent} has inheritance children ({}), and a foreign key sees only the rows stored in {parent} itself: rows of {t} that match a child's row would be refused. Reference a table that holds all the rows (or each child with its own key)",
                names(&p.inherited_by)
            )));
        }
    }
    Ok(())
}

/// How a change replaces or removes a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnChange {
    /// A new column beside the old one, kept in sync (`rename_column`,
    /// the copy path of `change_column_type`), dropped at the contract.
    Copy {
        /// Synced by a trigger (`sync: trigger`) rather than by the application.
        trigger: bool,
    },
    /// `drop_column`.
    Drop,
}

/// `rename_column`, the copy path of `change_column_type`, and
/// `drop_column`, of `t.column`. Called by those recipes before they add a step.
pub(crate) fn check_column_change(
    r: &Recipe<'_>,
    t: &TableName,
    column: &Ident,
    change: ColumnChange,
) -> Result<(), PlanningError> {
    let Some(p) = table_partitioning(r, t) else {
        return Ok(());
    };
    if let Some(parent) = &p.partition_of {
        return Err(r.unsupported(format!(
            "{t} is a partition of {parent}, and a partition's columns are its parent's: Postgres neither adds nor drops a column of a partition alone. Make this change on {parent}"
        )));
    }
    if p.inherited_columns.contains(column) {
        return Err(r.unsupported(format!(
            "{t}.{column} is inherited from {}: Postgres neither renames, retypes nor drops an inherited column in the child. Make this change on the parent",
            names(&p.inherits)
        )));
    }
    if let Some(key) = &p.key
        && key.columns.contains(column)
    {
        return Err(r.unsupported(format!(
            "{column} is in the partition key of {t} ({}), and Postgres cannot drop a partition-key column: the change would fail at its last step. Repartition {t} into a new table instead",
            key.definition
        )));
    }
    if let Some((part, key)) = p
        .all_partitions()
        .into_iter()
        .find_map(|x| x.key.as_ref().map(|k| (&x.table, k)))
        .filter(|(_, k)| k.columns.contains(column))
    {
        return Err(r.unsupported(format!(
            "{column} is in the partition key of {part} ({}), a partition of {t}, and Postgres cannot drop a partition-key column: the change would fail at its last step",
            key.definition
        )));
    }
    let ColumnChange::Copy { trigger } = change else {
        return Ok(());
    };
    if trigger && !p.inherited_by.is_empty() {
        return Err(r.unsupported(format!(
            "{t} has inheritance children ({}), and the trigger that keeps the new column in sync would fire only for rows stored in {t} itself, not for writes to the children. For a rename use `sync: app` (the application writes both columns); a type change needs a `sql` change per table",
            names(&p.inherited_by)
        )));
    }
    if !p.is_partitioned() {
        return Ok(());
    }
    if trigger {
        r.require(
            13,
            0,
            &format!("row triggers BEFORE INSERT OR UPDATE on a partitioned table ({t})"),
        )?;
    }
    let facts = r.catalog.table(t);
    if let Some(ix) = facts.and_then(|f| f.indexes.iter().find(|ix| ix.uses(column))) {
        return Err(r.unsupported(format!(
            "{t} is partitioned and index {} uses {column}: its copy for the new column would be built with CREATE INDEX CONCURRENTLY, which Postgres refuses on a partitioned table. Drop {} first (a `sql` change), make this change, then build the index on the new column with add_index, which builds it partition by partition",
            ix.name, ix.name
        )));
    }
    if let Some(fk) = facts.and_then(|f| f.foreign_keys.iter().find(|k| k.columns.contains(column)))
    {
        let name = fk.name.as_ref().map_or("a foreign key", Ident::as_str);
        return Err(r.unsupported(format!(
            "{t} is partitioned and foreign key {name} uses {column}: its copy for the new column would be added NOT VALID, which Postgres refuses on a partitioned table before Postgres 18. Drop {name} first (and add it again afterwards with add_foreign_key on each partition)"
        )));
    }
    Ok(())
}

/// A partitioned table, a partition and an inheritance tree, as the live
/// catalog reads them, for the tests of this module and of
/// [`super::partitioned_index`].
#[cfg(test)]
pub(super) mod fixture {
    use crate::catalog::{
        Catalog, ColumnFacts, IndexFacts, IndexKey, Partitioning, ServerVersion, TableFacts,
    };
    use crate::name::TableName;

    pub use crate::catalog::partitioning_testing::id;
    use crate::catalog::partitioning_testing::{key, part};

    pub fn t(s: &str) -> TableName {
        TableName::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn table(cols: &[&str], partitioning: Partitioning) -> TableFacts {
        TableFacts {
            columns: cols
                .iter()
                .map(|c| ColumnFacts {
                    name: id(c),
                    type_sql: "text".into(),
                    ty: None,
                    nullable: true,
                    default: None,
                    charset: None,
                    collation: None,
                })
                .collect(),
            // The backfills walk a key (plan/key.rs).
            primary_key: cols.first().map(|c| vec![id(c)]).unwrap_or_default(),
            partitioning,
            ..TableFacts::default()
        }
    }

    /// `events`, partitioned by RANGE (at): `events_2024`, and `events_2025`
    /// partitioned by RANGE (region) into `events_2025_eu` and `events_2025_us`;
    /// index `events_code_idx` on (code). `events_2024` as a partition.
    /// `base` with inheritance child `kid`. `users`. On Postgres `version`.
    pub fn catalog(version: u32) -> Catalog {
        let mut c = Catalog::offline().with_server(ServerVersion::postgres(version));
        let cols = ["id", "at", "region", "email", "code", "user_id"];
        let mut events = table(
            &cols,
            Partitioning {
                key: Some(key(&["at"])),
                partitions: vec![
                    part("events_2024", None, vec![]),
                    part(
                        "events_2025",
                        Some(&["region"]),
                        vec![
                            part("events_2025_eu", None, vec![]),
                            part("events_2025_us", None, vec![]),
                        ],
                    ),
                ],
                ..Partitioning::default()
            },
        );
        events.indexes.push(IndexFacts {
            name: id("events_code_idx"),
            unique: false,
            primary: false,
            keys: vec![IndexKey {
                column: Some(id("code")),
                ..IndexKey::default()
            }],
            include: vec![],
            has_expression: false,
            predicate: None,
            columns_used: vec![id("code")],
            method: Some("btree".into()),
            valid: true,
            constraint: None,
            exclusion: false,
            nulls_not_distinct: false,
            options: vec![],
            definition: None,
        });
        c.insert(t("events"), events);
        c.insert(
            t("events_2024"),
            table(
                &cols,
                Partitioning {
                    partition_of: Some(t("public.events")),
                    inherited_columns: cols.iter().map(|c| id(c)).collect(),
                    ..Partitioning::default()
                },
            ),
        );
        c.insert(
            t("base"),
            table(
                &["id", "v"],
                Partitioning {
                    inherited_by: vec![t("public.kid")],
                    ..Partitioning::default()
                },
            ),
        );
        c.insert(
            t("kid"),
            table(
                &["id", "v", "extra"],
                Partitioning {
                    inherits: vec![t("public.base")],
                    inherited_columns: vec![id("id"), id("v")],
                    ..Partitioning::default()
                },
            ),
        );
        c.insert(t("users"), table(&["id"], Partitioning::default()));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::catalog;
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan_with, shape};

    fn refused(version: u32, changes: &str) -> String {
        match plan_with(Dialect::Postgres, &catalog(version), changes) {
            Ok(p) => panic!("{changes} should be refused, planned {:?}", shape(&p)),
            Err(e) => e.to_string(),
        }
    }

    fn planned(version: u32, changes: &str) -> crate::plan::Plan {
        plan_with(Dialect::Postgres, &catalog(version), changes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn foreign_keys_on_a_partitioned_table_wait_for_postgres_18() {
        let fk = "  - add_foreign_key: { table: events, columns: [user_id], references: { table: users, columns: [id] } }\n";
        let e = refused(150_000, fk);
        assert!(
            e.contains("events is partitioned")
                && e.contains("Postgres 15.0 cannot add a foreign key NOT VALID")
                && e.contains("each partition"),
            "{e}"
        );
        assert!(shape(&planned(180_000, fk)).len() == 2);
        // A partition takes one like any table.
        planned(
            150_000,
            "  - add_foreign_key: { table: events_2024, columns: [user_id], references: { table: users, columns: [id] } }\n",
        );
    }

    #[test]
    fn foreign_keys_and_inheritance_are_refused() {
        let e = refused(
            150_000,
            "  - add_foreign_key: { table: base, columns: [v], references: { table: users, columns: [id] } }\n",
        );
        assert!(
            e.contains("base has inheritance children (public.kid)") && e.contains("not inherited"),
            "{e}"
        );
        let e = refused(
            150_000,
            "  - add_foreign_key: { table: users, columns: [id], references: { table: base, columns: [id] } }\n",
        );
        assert!(
            e.contains("sees only the rows stored in base itself"),
            "{e}"
        );
        let e = refused(
            110_000,
            "  - add_foreign_key: { table: users, columns: [id], references: { table: events, columns: [id] } }\n",
        );
        assert!(e.contains("references a partitioned table"), "{e}");
    }

    #[test]
    fn a_partitions_columns_are_changed_on_its_parent() {
        for change in [
            "  - rename_column: { table: events_2024, from: email, to: mail }\n",
            "  - change_column_type: { table: events_2024, column: email, type: integer }\n",
            "  - drop_column: { table: events_2024, column: email }\n",
        ] {
            let e = refused(150_000, change);
            assert!(
                e.contains("events_2024 is a partition of public.events")
                    && e.contains("Make this change on public.events"),
                "{e}"
            );
        }
        let e = refused(150_000, "  - drop_column: { table: kid, column: v }\n");
        assert!(e.contains("kid.v is inherited from public.base"), "{e}");
        // The child's own column is its own.
        planned(150_000, "  - drop_column: { table: kid, column: extra }\n");
    }

    #[test]
    fn partition_key_columns_are_never_dropped() {
        let e = refused(150_000, "  - drop_column: { table: events, column: at }\n");
        assert!(
            e.contains("at is in the partition key of events (RANGE (at))"),
            "{e}"
        );
        let e = refused(
            150_000,
            "  - rename_column: { table: events, from: region, to: area }\n",
        );
        assert!(
            e.contains("partition key of public.events_2025 (RANGE (region))"),
            "{e}"
        );
        planned(
            150_000,
            "  - drop_column: { table: events, column: email }\n",
        );
    }

    #[test]
    fn renames_on_a_partitioned_table_need_row_triggers_and_no_index() {
        let rename = "  - rename_column: { table: events, from: email, to: mail }\n";
        assert_eq!(shape(&planned(150_000, rename)).len(), 3);
        let e = refused(120_000, rename);
        assert!(
            e.contains("row triggers BEFORE INSERT OR UPDATE on a partitioned table"),
            "{e}"
        );
        let e = refused(
            150_000,
            "  - rename_column: { table: events, from: code, to: product }\n",
        );
        assert!(
            e.contains("index events_code_idx uses code")
                && e.contains("refuses on a partitioned table"),
            "{e}"
        );
    }

    #[test]
    fn inheritance_parents_sync_through_the_application() {
        let e = refused(
            150_000,
            "  - rename_column: { table: base, from: v, to: w }\n",
        );
        assert!(e.contains("use `sync: app`"), "{e}");
        planned(
            150_000,
            "  - rename_column: { table: base, from: v, to: w, sync: app }\n",
        );
        let e = refused(
            150_000,
            "  - change_column_type: { table: base, column: v, type: integer }\n",
        );
        assert!(e.contains("inheritance children (public.kid)"), "{e}");
        planned(150_000, "  - drop_column: { table: base, column: v }\n");
    }
}
