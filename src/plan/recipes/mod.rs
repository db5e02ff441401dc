//! Recipes: how each intent kind becomes steps. One file per kind; each
//! renders its SQL from `templates/<dialect>/<kind>.sql` and tests beside it
//! check the shape of the plan it makes (the SQL itself is executed against
//! real databases in `tests/`).

mod add_check;
mod add_column;
mod add_foreign_key;
mod add_index;
mod carry;
mod change_column_type;
mod copy_column;
mod drop_column;
mod drop_table;
mod partitioned;
mod partitioned_index;
mod rename_column;
mod rename_column_view;
mod rename_table;
mod serial;
mod set_not_null;
mod sql;

use minijinja::Value;

use super::{PlanningError, Recipe};
use crate::intent::Intent;
use crate::name::{Ident, TableName};

pub(crate) fn expand(r: &mut Recipe<'_>, intent: &Intent) -> Result<(), PlanningError> {
    match intent {
        Intent::RenameColumn(i) => rename_column::expand(r, i),
        Intent::AddColumn(i) => add_column::expand(r, i),
        Intent::ChangeColumnType(i) => change_column_type::expand(r, i),
        Intent::DropColumn(i) => drop_column::expand(r, i),
        Intent::RenameTable(i) => rename_table::expand(r, i),
        Intent::AddIndex(i) => add_index::expand(r, i),
        Intent::AddForeignKey(i) => add_foreign_key::expand(r, i),
        Intent::SetNotNull(i) => set_not_null::expand(r, i),
        Intent::AddCheck(i) => add_check::expand(r, i),
        Intent::DropTable(i) => drop_table::expand(r, i),
        Intent::Sql(i) => sql::expand(r, i),
    }
}

/// A table as template context: the list of its name parts, which the
/// `ident` filter quotes as a qualified name.
fn table_value(t: &TableName) -> Value {
    Value::from(
        t.parts()
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>(),
    )
}

/// An object (function, index, view) in the same schema as `table`.
fn beside(table: &TableName, name: &Ident) -> Value {
    table_value(&table.sibling(name.clone()))
}

fn names(cols: &[Ident]) -> Value {
    Value::from(
        cols.iter()
            .map(|c| c.as_str().to_string())
            .collect::<Vec<_>>(),
    )
}

/// MySQL/MariaDB: a column's definition as template context (`type`,
/// `charset`, `collation`, `default`), for a `MODIFY` that must restate all
/// of it. `live` supplies the character set and collation when known.
/// `census` supplies `ON UPDATE` and the comment, which a `MODIFY` that
/// does not restate them drops.
fn mysql_definition(
    type_sql: &str,
    live: Option<&crate::catalog::ColumnFacts>,
    default: Option<&str>,
    census: Option<&crate::catalog::ColumnCensus>,
) -> Value {
    let (on_update, comment) = carry::default::mysql_extras(census);
    minijinja::context! {
        type => type_sql,
        charset => live.and_then(|c| c.charset.clone()),
        collation => live.and_then(|c| c.collation.clone()),
        default => default,
        on_update,
        comment,
        invisible => census.is_some_and(|c| c.invisible),
    }
}

/// The census of `table.column` when the live schema is known.
fn column_census(
    r: &Recipe<'_>,
    table: &TableName,
    column: &Ident,
) -> Option<crate::catalog::ColumnCensus> {
    r.catalog.table(table).map(|f| f.census.column(column))
}

/// MySQL/MariaDB: whether the server (assumed recent offline) is at least
/// `mysql` when it is MySQL, or `mariadb` when it is MariaDB.
fn mysql_at_least(r: &Recipe<'_>, mysql: (u32, u32, u32), mariadb: (u32, u32, u32)) -> bool {
    match r.server() {
        None => true,
        Some(v) => {
            let want = if v.mariadb { mariadb } else { mysql };
            (v.major, v.minor, v.patch) >= want
        }
    }
}

/// Bytes per character of a MySQL character set (its maximum); 4 when unknown.
fn mysql_bytes_per_char(charset: Option<&str>) -> u32 {
    match charset.map(str::to_ascii_lowercase).as_deref() {
        Some("latin1" | "ascii" | "binary" | "latin2" | "cp1252") => 1,
        Some("ucs2") => 2,
        Some("utf8" | "utf8mb3") => 3,
        _ => 4,
    }
}

fn cols_text(cols: &[Ident]) -> String {
    cols.iter()
        .map(Ident::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::catalog::Catalog;
    use crate::dialect::Dialect;
    use crate::dialect::templates::Templates;
    use crate::intent::parse_plan;
    use crate::plan::{Plan, Planner, PlanningError};

    /// Plans YAML `changes:` text offline.
    pub fn plan(dialect: Dialect, changes: &str) -> Plan {
        match plan_with(dialect, &Catalog::offline(), changes) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    /// Plans YAML `changes:` text with what `catalog` knows.
    pub fn plan_with(
        dialect: Dialect,
        catalog: &Catalog,
        changes: &str,
    ) -> Result<Plan, PlanningError> {
        let text = format!("name: t\nchanges:\n{changes}");
        let file = match parse_plan(&text, "test.yaml", "t") {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        let templates = Templates::builtin(dialect);
        Planner::new(&templates, catalog).plan(&file)
    }

    /// Each phase as `kind:slug` strings.
    pub fn shape(plan: &Plan) -> Vec<Vec<String>> {
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

    pub fn reversible(plan: &Plan) -> Vec<bool> {
        plan.phases.iter().map(|p| p.reversible).collect()
    }

    pub fn sql_of<'a>(plan: &'a Plan, slug: &str) -> &'a str {
        plan.steps
            .iter()
            .find(|s| s.id.ends_with(&format!(".{slug}")))
            .and_then(|s| s.sql.as_deref())
            .unwrap_or_else(|| panic!("no step {slug} with SQL"))
    }
}

/// One-phase paths only where the server supports them.
#[cfg(test)]
mod version_tests {
    use super::testing::{plan_with, reversible, shape, sql_of};
    use crate::catalog::{Catalog, ServerVersion};
    use crate::dialect::Dialect;

    fn pg(num: u32) -> Catalog {
        Catalog::offline().with_server(ServerVersion::postgres(num))
    }

    fn sqlite(v: &str) -> Catalog {
        match ServerVersion::sqlite(v) {
            Some(v) => Catalog::offline().with_server(v),
            None => panic!("{v}"),
        }
    }

    const REQUIRED_WITH_DEFAULT: &str = "  - add_column: { table: users, column: active, type: boolean, nullable: false, default: 'true' }\n";

    #[test]
    fn a_required_column_with_a_default_is_one_step_from_postgres_11() {
        let p = plan_with(Dialect::Postgres, &pg(110_000), REQUIRED_WITH_DEFAULT);
        assert_eq!(
            p.map(|p| shape(&p)).map_err(|e| e.to_string()),
            Ok(vec![vec![
                "migration:add_column".to_string(),
                "app:app_use".into()
            ]])
        );
        let p = match plan_with(Dialect::Postgres, &pg(100_023), REQUIRED_WITH_DEFAULT) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            shape(&p),
            vec![vec![
                "migration:add_column",
                "migration:set_default",
                "backfill:backfill",
                "verify:verify_no_nulls",
                "migration:check_not_valid",
                "migration:validate_check",
                "migration:set_not_null",
                "app:app_use",
            ]]
        );
        assert!(!sql_of(&p, "add_column").contains("DEFAULT"));
        assert!(sql_of(&p, "backfill").contains("\"active\" = true"));
        assert!(
            p.notes
                .iter()
                .any(|n| n.text.contains("Postgres 10.23 rewrites the whole table")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn set_not_null_scans_before_postgres_12() {
        let changes = "  - set_not_null: { table: users, column: email }\n";
        for (num, scans) in [(110_005, true), (120_000, false)] {
            let p = match plan_with(Dialect::Postgres, &pg(num), changes) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            let step = p.steps.iter().find(|s| s.id == "1.set_not_null");
            let duration = step.and_then(|s| s.lock.as_ref()).map(|l| l.duration);
            assert_eq!(
                duration == Some(crate::plan::LockDuration::Scan),
                scans,
                "{num}"
            );
            assert_eq!(
                p.notes
                    .iter()
                    .any(|n| n.text.contains("scans the whole of users")),
                scans,
                "{num}"
            );
        }
    }

    /// SQLite: the rename's backfill names its update trigger, which the
    /// batches drop inside their transaction, and needs no final sweep when
    /// it walks a primary key; over the rowid (none known, or none there) a
    /// VACUUM may renumber the walk's keys between runs, so it keeps it.
    #[test]
    fn sqlite_backfills_name_the_trigger_they_suspend() {
        use crate::catalog::{ColumnFacts, TableFacts};
        use crate::name::{Ident, SqlType, TableName};
        let id = |s: &str| Ident::new(s).unwrap_or_else(|e| panic!("{e}"));
        let col = |name: &str| ColumnFacts {
            name: id(name),
            type_sql: "INTEGER".into(),
            ty: SqlType::parse("INTEGER").ok(),
            nullable: true,
            default: None,
            charset: None,
            collation: None,
        };
        let with_key = |key: &[&str]| {
            let mut c = sqlite("3.45.0");
            c.insert(
                TableName::parse("users").unwrap_or_else(|e| panic!("{e}")),
                TableFacts {
                    columns: vec![col("id"), col("name")],
                    primary_key: key.iter().map(|k| id(k)).collect(),
                    ..TableFacts::default()
                },
            );
            c
        };
        let rename = "  - rename_column: { table: users, from: name, to: full_name }\n";
        let fill = |dialect: Dialect, catalog: &Catalog| {
            let plan = plan_with(dialect, catalog, rename).unwrap_or_else(|e| panic!("{e}"));
            plan.steps
                .iter()
                .find_map(|s| s.backfill.clone())
                .unwrap_or_else(|| panic!("no backfill"))
        };
        let b = fill(Dialect::Sqlite, &with_key(&["id"]));
        assert_eq!(b.sync_triggers, vec![id("users_name_full_name_sync_upd")]);
        assert!(b.synced);
        let b = fill(Dialect::Sqlite, &with_key(&[]));
        assert_eq!(b.key, Some(vec![id("rowid")]));
        assert!(!b.synced);
        assert_eq!(b.sync_triggers.len(), 1);
        assert!(!fill(Dialect::Sqlite, &sqlite("3.45.0")).synced);
        let b = fill(Dialect::Postgres, &pg(150_000));
        assert!(b.sync_triggers.is_empty());
    }

    #[test]
    fn sqlite_before_3_35_cannot_drop_a_column() {
        let old = sqlite("3.34.1");
        for changes in [
            "  - drop_column: { table: users, column: legacy }\n",
            "  - rename_column: { table: users, from: name, to: full_name }\n",
            "  - change_column_type: { table: users, column: n, type: integer }\n",
        ] {
            match plan_with(Dialect::Sqlite, &old, changes) {
                Err(e) => assert!(
                    e.to_string().contains("needs ALTER TABLE … DROP COLUMN")
                        && e.to_string().contains(
                            "which SQLite has from 3.35 on; this database runs SQLite 3.34.1"
                        ),
                    "{e}"
                ),
                Ok(_) => panic!("{changes} should be refused on SQLite 3.34"),
            }
            assert!(plan_with(Dialect::Sqlite, &sqlite("3.35.0"), changes).is_ok());
        }
        // Adding works, but cannot be undone.
        let p = match plan_with(
            Dialect::Sqlite,
            &old,
            "  - add_column: { table: users, column: nick, type: text }\n",
        ) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(reversible(&p), vec![false]);
        assert!(
            p.notes
                .iter()
                .any(|n| n.text.contains("has no DROP COLUMN"))
        );
    }

    #[test]
    fn triggers_use_execute_procedure_before_postgres_11() {
        let changes = "  - rename_column: { table: users, from: name, to: full_name }\n";
        for (num, word) in [
            (100_000, "EXECUTE PROCEDURE"),
            (110_000, "EXECUTE FUNCTION"),
        ] {
            let p = match plan_with(Dialect::Postgres, &pg(num), changes) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            assert!(sql_of(&p, "sync_trigger").contains(word), "{num}");
        }
    }

    #[test]
    fn a_version_of_another_dialect_is_ignored() {
        // A Postgres catalog does not make SQLite plans refuse anything.
        let changes = "  - drop_column: { table: users, column: legacy }\n";
        assert!(plan_with(Dialect::Sqlite, &pg(90_600), changes).is_ok());
    }
}

/// The MySQL shape of every intent kind, offline and against a live table.
#[cfg(test)]
mod mysql_tests {
    use super::testing::{plan, plan_with, reversible, shape, sql_of};
    use crate::catalog::{Catalog, ColumnFacts, ServerVersion, TableFacts};
    use crate::dialect::Dialect;
    use crate::name::{Ident, SqlType, TableName};

    const MY: Dialect = Dialect::Mysql;

    fn col(name: &str, ty: &str, nullable: bool, default: Option<&str>) -> ColumnFacts {
        ColumnFacts {
            name: Ident::new(name).unwrap_or_else(|e| panic!("{e}")),
            type_sql: ty.into(),
            ty: SqlType::parse(ty).ok(),
            nullable,
            default: default.map(str::to_string),
            charset: ty.starts_with("varchar").then(|| "utf8mb4".to_string()),
            collation: ty
                .starts_with("varchar")
                .then(|| "utf8mb4_general_ci".to_string()),
        }
    }

    fn users(version: &str) -> Catalog {
        let mut c = Catalog::offline();
        c.set_server(ServerVersion::mysql(version).unwrap_or_else(|| panic!("{version}")));
        let facts = TableFacts {
            columns: vec![
                col("id", "bigint", false, None),
                col("name", "varchar(50)", false, None),
                col("nick", "varchar(20)", true, Some("'x'")),
                col("age", "int", true, None),
            ],
            primary_key: vec![Ident::new("id").unwrap_or_else(|e| panic!("{e}"))],
            ..TableFacts::default()
        };
        let t = TableName::parse("users").unwrap_or_else(|e| panic!("{e}"));
        c.insert(t, facts);
        c
    }

    fn ok(catalog: &Catalog, changes: &str) -> crate::plan::Plan {
        plan_with(MY, catalog, changes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn versions_are_read_with_their_flavour() {
        let m = ServerVersion::mysql("10.11.6-MariaDB-1:10.11.6+maria~ubu2204");
        assert_eq!(
            m.as_ref().map(|v| (v.major, v.minor, v.patch, v.mariadb)),
            Some((10, 11, 6, true))
        );
        assert_eq!(m.map(|v| v.to_string()).as_deref(), Some("MariaDB 10.11.6"));
        let m = ServerVersion::mysql("8.0.36");
        assert_eq!(m.map(|v| v.to_string()).as_deref(), Some("MySQL 8.0.36"));
    }

    #[test]
    fn rename_uses_before_triggers_and_moves_not_null_at_the_contract() {
        let p = ok(
            &users("10.11.6-MariaDB"),
            "  - rename_column: { table: users, from: name, to: full_name }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec![
                    "migration:add_column",
                    "migration:sync_trigger",
                    "backfill:backfill",
                    "verify:verify"
                ],
                vec!["app:app_switch"],
                vec!["migration:contract"],
            ]
        );
        assert_eq!(reversible(&p), vec![true, true, false]);
        let add = sql_of(&p, "add_column");
        assert!(add.contains("ADD COLUMN /*M! IF NOT EXISTS */ `full_name` varchar(50) CHARACTER SET `utf8mb4` COLLATE `utf8mb4_general_ci` NULL, ALGORITHM=INSTANT"), "{add}");
        let trig = sql_of(&p, "sync_trigger");
        assert!(
            trig.contains("BEFORE INSERT ON `users` FOR EACH ROW"),
            "{trig}"
        );
        assert!(
            trig.contains("SET NEW.`name` = IF(NEW.`full_name` IS NULL"),
            "{trig}"
        );
        let contract = sql_of(&p, "contract");
        assert!(
            contract.contains(
                "DROP COLUMN /*M! IF EXISTS */ `name`,\n  MODIFY `full_name` varchar(50)"
            ),
            "{contract}"
        );
        assert!(contract.contains("NOT NULL;"), "{contract}");
        // name is NOT NULL without a default: it accepts NULL before the
        // triggers that fill it go (the statements commit one by one).
        let relax = contract
            .find("MODIFY `name` varchar(50) CHARACTER SET `utf8mb4` COLLATE `utf8mb4_general_ci` NULL, ALGORITHM=INPLACE, LOCK=NONE;")
            .unwrap_or_else(|| panic!("{contract}"));
        assert!(
            contract.find("DROP TRIGGER").is_some_and(|t| relax < t),
            "{contract}"
        );
        let nick = ok(
            &users("10.11.6-MariaDB"),
            "  - rename_column: { table: users, from: nick, to: nickname }\n",
        );
        let contract = sql_of(&nick, "contract");
        assert!(contract.starts_with("DROP TRIGGER"), "{contract}");
        assert!(p.steps.iter().all(|s| !s.transactional));
        assert!(
            sql_of(&p, "backfill")
                .contains("\nUPDATE `users` SET `full_name` = `name` WHERE NOT (")
        );
    }

    #[test]
    fn rename_offline_asks_for_the_database() {
        let e = plan_with(
            MY,
            &Catalog::offline(),
            "  - rename_column: { table: users, from: name, to: full_name }\n",
        );
        assert!(e.is_err_and(|e| e.to_string().contains("plan against the database")));
    }

    #[test]
    fn rename_with_app_sync_relaxes_the_old_not_null_column() {
        let p = ok(
            &users("8.0.36"),
            "  - rename_column: { table: users, from: name, to: full_name, sync: app }\n",
        );
        let relax = sql_of(&p, "relax_old");
        assert!(relax.contains("MODIFY `name` varchar(50) CHARACTER SET `utf8mb4` COLLATE `utf8mb4_general_ci` NULL, ALGORITHM=INPLACE, LOCK=NONE"), "{relax}");
    }

    #[test]
    fn add_column_required_with_constant_default_is_one_instant_phase() {
        let p = plan(
            MY,
            "  - add_column: { table: users, column: status, type: varchar(20), nullable: false, default: \"'new'\" }\n",
        );
        assert_eq!(shape(&p), vec![vec!["migration:add_column", "app:app_use"]]);
        assert!(sql_of(&p, "add_column").ends_with("NOT NULL DEFAULT 'new', ALGORITHM=INSTANT;"));
        // A server without INSTANT ADD COLUMN takes the multi-phase path.
        let old = Catalog::offline()
            .with_server(ServerVersion::mysql("8.0.11").unwrap_or_else(|| panic!()));
        let p = ok(
            &old,
            "  - add_column: { table: users, column: status, type: varchar(20), nullable: false, default: \"'new'\" }\n",
        );
        assert!(
            shape(&p)[0].contains(&"backfill:backfill".to_string()),
            "{:?}",
            shape(&p)
        );
        assert!(sql_of(&p, "add_column").ends_with("ALGORITHM=INPLACE, LOCK=NONE;"));
        let set = sql_of(&p, "set_not_null");
        assert!(
            set.contains(
                "MODIFY `status` varchar(20) NOT NULL DEFAULT 'new', ALGORITHM=INPLACE, LOCK=NONE"
            ),
            "{set}"
        );
    }

    #[test]
    fn add_column_required_without_default_is_multi_phase() {
        let p = plan(
            MY,
            "  - add_column: { table: users, column: plan, type: int, nullable: false, backfill: \"0\" }\n",
        );
        assert!(shape(&p).len() > 1);
        assert!(
            sql_of(&p, "set_not_null")
                .contains("MODIFY `plan` int NOT NULL, ALGORITHM=INPLACE, LOCK=NONE")
        );
    }

    #[test]
    fn varchar_widening_is_in_place_only_within_its_length_prefix() {
        let c = users("10.11.6-MariaDB");
        let p = ok(
            &c,
            "  - change_column_type: { table: users, column: nick, type: varchar(60) }\n",
        );
        assert_eq!(shape(&p), vec![vec!["migration:alter_type"]]);
        let sql = sql_of(&p, "alter_type");
        assert!(sql.contains("MODIFY `nick` varchar(60) CHARACTER SET `utf8mb4` COLLATE `utf8mb4_general_ci` NULL DEFAULT 'x', ALGORITHM=INPLACE, LOCK=NONE"), "{sql}");
        // 20 → 64 characters of utf8mb4 crosses 255 bytes: a table copy, so a new column.
        let p = ok(
            &c,
            "  - change_column_type: { table: users, column: nick, type: varchar(64) }\n",
        );
        assert!(shape(&p).len() == 3, "{:?}", shape(&p));
        let p = ok(
            &c,
            "  - change_column_type: { table: users, column: age, type: bigint }\n",
        );
        assert!(
            sql_of(&p, "add_column")
                .contains("ADD COLUMN /*M! IF NOT EXISTS */ `age_new` bigint NULL")
        );
        // Offline the old type is unknown: the copy path.
        let p = plan(
            MY,
            "  - change_column_type: { table: users, column: nick, type: varchar(60) }\n",
        );
        assert!(shape(&p).len() > 1);
    }

    #[test]
    fn drop_column_relaxes_a_required_column_from_the_live_definition() {
        let p = ok(
            &users("8.0.36"),
            "  - drop_column: { table: users, column: name }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec!["migration:relax_not_null", "app:app_stop_using"],
                vec!["migration:drop_column"]
            ]
        );
        assert!(sql_of(&p, "relax_not_null").contains("MODIFY `name` varchar(50)"));
        let p = plan(MY, "  - drop_column: { table: users, column: name }\n");
        assert_eq!(
            shape(&p),
            vec![vec!["app:app_stop_using"], vec!["migration:drop_column"]]
        );
    }

    #[test]
    fn rename_table_swaps_names_atomically() {
        let p = plan(MY, "  - rename_table: { from: user, to: members }\n");
        let c = sql_of(&p, "contract");
        assert!(
            c.starts_with(
                "RENAME TABLE `members` TO `members_phasegate_view`, `user` TO `members`;"
            ),
            "{c}"
        );
        assert!(
            c.ends_with("DROP VIEW IF EXISTS `members_phasegate_view`;"),
            "{c}"
        );
    }

    #[test]
    fn indexes_are_built_online_and_partial_ones_refused() {
        let p = plan(
            MY,
            "  - add_index: { table: users, columns: [email], unique: true }\n",
        );
        assert!(sql_of(&p, "create_index").contains(
            "ADD UNIQUE INDEX /*M! IF NOT EXISTS */ `users_email_key` (`email`), ALGORITHM=INPLACE, LOCK=NONE;"
        ));
        let e = plan_with(
            MY,
            &Catalog::offline(),
            "  - add_index: { table: users, columns: [email], where: \"email IS NOT NULL\" }\n",
        );
        assert!(e.is_err_and(|e| e.to_string().contains("partial")));
    }

    #[test]
    fn foreign_keys_are_added_in_place_without_checks() {
        let p = plan(
            MY,
            "  - add_foreign_key: { table: orders, columns: [user_id], references: { table: users, columns: [id] } }\n",
        );
        let sql = sql_of(&p, "add_foreign_key");
        assert!(
            sql.starts_with("SET SESSION foreign_key_checks = 0;"),
            "{sql}"
        );
        assert!(sql.contains(", ALGORITHM=INPLACE, LOCK=NONE;"), "{sql}");
        assert!(
            sql.contains("ADD INDEX /*M! IF NOT EXISTS */ `orders_user_id_fkey` (`user_id`),"),
            "{sql}"
        );
        assert!(
            sql.ends_with("SET SESSION foreign_key_checks = 1;"),
            "{sql}"
        );
        assert_eq!(
            p.steps[p.steps.len() - 1].rollback_sql.as_deref(),
            Some(
                "ALTER TABLE `orders` DROP FOREIGN KEY /*M! IF EXISTS */ `orders_user_id_fkey`, DROP INDEX /*M! IF EXISTS */ `orders_user_id_fkey`;"
            )
        );
    }

    #[test]
    fn set_not_null_needs_the_live_definition() {
        let e = plan_with(
            MY,
            &Catalog::offline(),
            "  - set_not_null: { table: users, column: age }\n",
        );
        assert!(e.is_err_and(|e| e.to_string().contains("plan against the database")));
        let p = ok(
            &users("10.11.6-MariaDB"),
            "  - set_not_null: { table: users, column: age, backfill: \"0\" }\n",
        );
        assert!(
            sql_of(&p, "set_not_null")
                .contains("MODIFY `age` int NOT NULL, ALGORITHM=INPLACE, LOCK=NONE;")
        );
        assert_eq!(
            sql_of(&p, "backfill"),
            "SET @phasegate_backfill = 1;\nUPDATE `users` SET `age` = 0 WHERE `age` IS NULL;\nSET @phasegate_backfill = NULL;"
        );
    }

    #[test]
    fn checks_are_verified_then_added_with_a_copy() {
        let p = plan(
            MY,
            "  - add_check: { table: users, name: age_positive, check: \"age > 0\" }\n",
        );
        assert!(sql_of(&p, "add_check").contains("CHECK (age > 0), ALGORITHM=COPY, LOCK=SHARED;"));
        assert_eq!(
            p.steps.last().and_then(|s| s.rollback_sql.as_deref()),
            Some("ALTER TABLE `users` DROP CONSTRAINT /*M! IF EXISTS */ `age_positive`;")
        );
    }

    #[test]
    fn awkward_names_are_quoted() {
        let p = plan(
            MY,
            "  - add_column: { table: user, column: \"we`ird\", type: int }\n",
        );
        assert!(
            sql_of(&p, "add_column")
                .starts_with("ALTER TABLE `user` ADD COLUMN /*M! IF NOT EXISTS */ `we``ird` int")
        );
        let p = plan(MY, "  - drop_table: { table: user }\n");
        assert_eq!(sql_of(&p, "drop_table"), "DROP TABLE IF EXISTS `user`;");
    }
}
