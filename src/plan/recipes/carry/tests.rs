//! The carry's tests across kinds: renames and type changes planned against
//! hand-built catalogs (the fixtures at the top, shared by every test) on
//! each dialect and offline, and the names the copies get.

use super::*;
use crate::catalog::{
    Catalog, CheckFacts, ColumnFacts, ForeignKeyFacts, IndexFacts, IndexKey, ReferentialAction,
    TableFacts, UniqueFacts,
};
use crate::plan::recipes::testing::{plan_with, shape, sql_of};

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap_or_else(|e| panic!("{e}"))
}

fn ids(s: &[&str]) -> Vec<Ident> {
    s.iter().map(|c| id(c)).collect()
}

fn t(s: &str) -> TableName {
    TableName::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn col(name: &str, ty: &str, nullable: bool) -> ColumnFacts {
    ColumnFacts {
        name: id(name),
        type_sql: ty.into(),
        ty: crate::name::SqlType::parse(ty).ok(),
        nullable,
        default: None,
        charset: None,
        collation: None,
    }
}

fn key(c: &str) -> IndexKey {
    IndexKey {
        column: Some(id(c)),
        ..IndexKey::default()
    }
}

fn index(name: &str, keys: Vec<IndexKey>, used: &[&str]) -> IndexFacts {
    IndexFacts {
        name: id(name),
        unique: false,
        primary: false,
        keys,
        include: Vec::new(),
        has_expression: false,
        predicate: None,
        columns_used: ids(used),
        method: Some("btree".into()),
        valid: true,
        constraint: None,
        exclusion: false,
        nulls_not_distinct: false,
        options: Vec::new(),
        definition: Some(format!("CREATE INDEX {name} …")),
    }
}

fn fk(
    name: Option<&str>,
    table: &str,
    cols: &[&str],
    parent: &str,
    pcols: &[&str],
) -> ForeignKeyFacts {
    ForeignKeyFacts {
        name: name.map(id),
        table: t(table),
        columns: ids(cols),
        references: t(parent),
        referenced_columns: ids(pcols),
        on_delete: ReferentialAction::Cascade,
        on_update: ReferentialAction::NoAction,
        match_full: false,
        deferrable: false,
        initially_deferred: false,
        validated: true,
        declared_inline: false,
    }
}

/// Postgres `users`: a primary key on id; email NOT NULL with a
/// deferrable unique constraint, a multi-column index, an expression
/// index, a partial index, an exclusion constraint, a check, a foreign
/// key, and a foreign key of `orders` that references it.
fn pg_users() -> Catalog {
    let mut pkey = index("users_pkey", vec![key("id")], &["id"]);
    (pkey.unique, pkey.primary, pkey.constraint) = (true, true, Some(id("users_pkey")));
    let mut email_key = index("users_email_key", vec![key("email")], &["email"]);
    (email_key.unique, email_key.constraint) = (true, Some(id("users_email_key")));
    let mut multi = index(
        "users_name_email_idx",
        vec![
            key("name"),
            IndexKey {
                descending: true,
                nulls_first: true,
                opclass: Some(t("pg_catalog.text_pattern_ops")),
                ..key("email")
            },
        ],
        &["name", "email", "code"],
    );
    multi.include = ids(&["code"]);
    let mut lower = index("users_lower_email", vec![IndexKey::default()], &["email"]);
    lower.has_expression = true;
    let mut partial = index("users_active", vec![key("id")], &["id", "email"]);
    partial.predicate = Some("(email IS NOT NULL)".into());
    let facts = TableFacts {
        columns: vec![
            col("id", "bigint", false),
            col("email", "text", false),
            col("name", "text", true),
            col("code", "text", true),
        ],
        primary_key: ids(&["id"]),
        indexes: vec![email_key, lower, partial, multi, pkey],
        uniques: vec![UniqueFacts {
            name: id("users_email_key"),
            index: id("users_email_key"),
            columns: ids(&["email"]),
            deferrable: true,
            initially_deferred: false,
        }],
        checks: vec![CheckFacts {
            name: Some(id("users_email_check")),
            expression: "(email <> ''::text)".into(),
            columns: ids(&["email"]),
            column: None,
            validated: true,
        }],
        foreign_keys: vec![fk(
            Some("users_email_fkey"),
            "public.users",
            &["email"],
            "public.mailboxes",
            &["address"],
        )],
        ..TableFacts::default()
    };
    let mut c = Catalog::offline();
    c.insert(t("users"), facts);
    c
}

fn plan_ok(d: Dialect, c: &Catalog, changes: &str) -> crate::plan::Plan {
    plan_with(d, c, changes).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn postgres_carries_indexes_constraints_and_not_null() {
    let p = plan_ok(
        Dialect::Postgres,
        &pg_users(),
        "  - rename_column: { table: users, from: email, to: mail }\n",
    );
    assert_eq!(
        shape(&p)[0],
        vec![
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
        ]
    );
    assert_eq!(
        sql_of(&p, "index_1"),
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"users_mail_key\"\n  ON \"users\" (\"mail\");"
    );
    let index_1 = p.steps.iter().find(|s| s.id == "1.index_1");
    assert!(index_1.is_some_and(|s| !s.transactional));
    assert!(
        sql_of(&p, "unique_1").contains(
            "ADD CONSTRAINT \"users_mail_key\" UNIQUE USING INDEX \"users_mail_key\" DEFERRABLE;"
        ),
        "{}",
        sql_of(&p, "unique_1")
    );
    assert_eq!(
        sql_of(&p, "index_2"),
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"users_name_mail_idx\"\n  ON \"users\" (\"name\", \"mail\" \"pg_catalog\".\"text_pattern_ops\" DESC) INCLUDE (\"code\");"
    );
    assert!(sql_of(&p, "check_1").contains("CHECK ((\"mail\" <> ''::text)) NOT VALID"));
    assert!(sql_of(&p, "foreign_key_1").contains(
        "FOREIGN KEY (\"mail\")\n  REFERENCES \"public\".\"mailboxes\" (\"address\") ON DELETE CASCADE ON UPDATE NO ACTION NOT VALID"
    ));
    let notes: Vec<&str> = p.notes.iter().map(|n| n.text.as_str()).collect();
    for name in ["users_lower_email", "users_active"] {
        assert!(
            notes.iter().any(|n| n.contains(name)),
            "{name} should be in a note: {notes:#?}"
        );
    }
    // The contract needs nothing more: the old column's objects go with it.
    assert!(!sql_of(&p, "contract").contains("PRIMARY KEY"));
}

#[test]
fn planned_again_after_the_first_phase_the_copies_keep_their_names() {
    let before = plan_ok(Dialect::Postgres, &pg_users(), RENAME);
    // Phase 1 ran: mail exists, with the copies.
    let mut after = pg_users();
    let mut facts = after.table(&t("users")).cloned().unwrap_or_default();
    facts.columns.push(col("mail", "text", false));
    let mut copy = index("users_mail_key", vec![key("mail")], &["mail"]);
    (copy.unique, copy.constraint) = (true, Some(id("users_mail_key")));
    facts.indexes.push(copy);
    facts.indexes.push(index(
        "users_name_mail_idx",
        vec![key("name"), key("mail")],
        &["name", "mail", "code"],
    ));
    facts.uniques.push(UniqueFacts {
        name: id("users_mail_key"),
        index: id("users_mail_key"),
        columns: ids(&["mail"]),
        deferrable: true,
        initially_deferred: false,
    });
    facts.checks.push(CheckFacts {
        name: Some(id("users_mail_check")),
        expression: "(mail <> ''::text)".into(),
        columns: ids(&["mail"]),
        column: None,
        validated: true,
    });
    after.insert(t("users"), facts);
    let again = plan_ok(Dialect::Postgres, &after, RENAME);
    let sql = |p: &crate::plan::Plan| -> Vec<Option<String>> {
        p.steps.iter().map(|s| s.sql.clone()).collect()
    };
    assert_eq!(sql(&before), sql(&again));
}

#[test]
fn the_primary_key_moves_at_the_contract() {
    let p = plan_ok(
        Dialect::Postgres,
        &pg_users(),
        "  - change_column_type: { table: users, column: id, type: numeric(20) }\n",
    );
    assert!(
        sql_of(&p, "index_1")
            .contains("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"users_pkey_id_new\"")
    );
    assert!(
        sql_of(&p, "contract").ends_with(
            "ALTER TABLE \"users\" DROP COLUMN \"id\";\n-- The copy of the primary key's index becomes the primary key.\nALTER TABLE \"users\"\n  ADD CONSTRAINT \"users_pkey\" PRIMARY KEY USING INDEX \"users_pkey_id_new\";"
        ),
        "{}",
        sql_of(&p, "contract")
    );
    // The partial index uses id too: noted.
    assert!(p.notes.iter().any(|n| n.text.contains("users_active")));
}

#[test]
fn a_new_type_gets_its_own_operator_classes() {
    let p = plan_ok(
        Dialect::Postgres,
        &pg_users(),
        "  - change_column_type: { table: users, column: email, type: varchar(200) }\n",
    );
    assert!(!sql_of(&p, "index_2").contains("text_pattern_ops"));
    assert!(p.notes.iter().any(|n| n.text.contains("operator class")));
}

#[test]
fn mysql_builds_copies_online_and_drops_the_originals_with_the_column() {
    let p = plan_ok(
        Dialect::Mysql,
        &pg_users(),
        "  - rename_column: { table: users, from: email, to: mail }\n",
    );
    let sql: String = p
        .steps
        .iter()
        .filter_map(|s| s.sql.as_deref())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "ADD UNIQUE INDEX /*M! IF NOT EXISTS */ `users_mail_key` (`mail`), ALGORITHM=INPLACE, LOCK=NONE",
        "ADD INDEX /*M! IF NOT EXISTS */ `users_name_mail_idx` (`name`, `mail` DESC), ALGORITHM=INPLACE, LOCK=NONE",
        "SET SESSION foreign_key_checks = 0;\nALTER TABLE `users`\n  ADD CONSTRAINT `users_mail_fkey` FOREIGN KEY /*M! IF NOT EXISTS */ (`mail`)",
        "DROP FOREIGN KEY /*M! IF EXISTS */ `users_email_fkey`,",
        "DROP INDEX /*M! IF EXISTS */ `users_email_key`,",
        "DROP INDEX /*M! IF EXISTS */ `users_lower_email`,",
        "DROP CONSTRAINT /*M! IF EXISTS */ `users_email_check`, DROP COLUMN /*M! IF EXISTS */ `email`",
    ] {
        assert!(sql.contains(needle), "no `{needle}` in:\n{sql}");
    }
    let notes: Vec<&str> = p.notes.iter().map(|n| n.text.as_str()).collect();
    for needle in ["users_lower_email", "users_email_check"] {
        assert!(notes.iter().any(|n| n.contains(needle)), "{notes:#?}");
    }
    // Indexes and the foreign key are built outside a transaction.
    assert!(p.steps.iter().all(|s| !s.transactional));
}

#[test]
fn mysql_refuses_to_move_a_primary_key() {
    let err = plan_with(
        Dialect::Mysql,
        &pg_users(),
        "  - rename_column: { table: users, from: id, to: user_id }\n",
    );
    assert!(
        err.as_ref()
            .is_err_and(|e| e.to_string().contains("part of the primary key")),
        "{err:?}"
    );
}

#[test]
fn offline_nothing_is_carried() {
    let p = plan_ok(
        Dialect::Postgres,
        &Catalog::offline(),
        "  - rename_column: { table: users, from: email, to: mail }\n",
    );
    assert_eq!(shape(&p)[0].len(), 4);
}

fn sqlite_users(edit: impl FnOnce(&mut TableFacts)) -> Catalog {
    let mut unique = index("users_email_uq", vec![key("email")], &["email"]);
    unique.unique = true;
    let mut lower = index("users_lower_email", vec![IndexKey::default()], &["email"]);
    lower.has_expression = true;
    let mut inline = fk(None, "users", &["email"], "mailboxes", &["address"]);
    inline.declared_inline = true;
    let mut facts = TableFacts {
        columns: vec![col("id", "INTEGER", true), col("email", "TEXT", true)],
        primary_key: ids(&["id"]),
        indexes: vec![unique, lower],
        checks: vec![CheckFacts {
            name: None,
            expression: "email LIKE '%@%'".into(),
            columns: ids(&["email"]),
            column: Some(id("email")),
            validated: true,
        }],
        foreign_keys: vec![inline],
        ..TableFacts::default()
    };
    edit(&mut facts);
    let mut c = Catalog::offline();
    c.insert(t("users"), facts);
    c
}

const RENAME: &str = "  - rename_column: { table: users, from: email, to: mail }\n";

#[test]
fn sqlite_rebuilds_indexes_and_declares_the_foreign_key() {
    let p = plan_ok(Dialect::Sqlite, &sqlite_users(|_| {}), RENAME);
    assert_eq!(
        shape(&p)[0],
        vec![
            "migration:add_column",
            "migration:sync_trigger",
            "backfill:backfill",
            "verify:verify",
            "migration:index_1"
        ]
    );
    assert_eq!(
        sql_of(&p, "add_column"),
        "ALTER TABLE `users` ADD COLUMN `mail` TEXT REFERENCES `mailboxes` (`address`) ON DELETE CASCADE ON UPDATE NO ACTION;"
    );
    assert_eq!(
        sql_of(&p, "index_1"),
        "CREATE UNIQUE INDEX IF NOT EXISTS `users_mail_uq`\n  ON `users` (`mail`);"
    );
    let contract = sql_of(&p, "contract");
    assert!(
        contract.contains("DROP INDEX IF EXISTS `users_email_uq`;\nDROP INDEX IF EXISTS `users_lower_email`;\nALTER TABLE `users` DROP COLUMN `email`;"),
        "{contract}"
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.text.contains("cannot add a CHECK"))
    );
    assert!(p.notes.iter().any(|n| n.text.contains("users_lower_email")));
}

#[test]
fn sqlite_refuses_what_drop_column_cannot_drop() {
    type Edit = Box<dyn FnOnce(&mut TableFacts)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "UNIQUE constraint",
            Box::new(|f| {
                f.uniques.push(UniqueFacts {
                    name: id("sqlite_autoindex_users_1"),
                    index: id("sqlite_autoindex_users_1"),
                    columns: ids(&["email"]),
                    deferrable: false,
                    initially_deferred: false,
                })
            }),
        ),
        ("primary key", Box::new(|f| f.primary_key = ids(&["email"]))),
        (
            "(a table constraint)",
            Box::new(|f| f.checks[0].column = None),
        ),
        (
            "table-level FOREIGN KEY",
            Box::new(|f| f.foreign_keys[0].declared_inline = false),
        ),
        (
            "foreign key of orders (user_email) uses users.email",
            Box::new(|f| {
                f.referenced_by
                    .push(fk(None, "orders", &["user_email"], "users", &["email"]))
            }),
        ),
    ];
    for (needle, edit) in cases {
        match plan_with(Dialect::Sqlite, &sqlite_users(edit), RENAME) {
            Err(e) => assert!(e.to_string().contains(needle), "{e}"),
            Ok(_) => panic!("{needle}: should be refused"),
        }
    }
}

#[test]
fn carried_names_swap_the_column() {
    let mut taken = vec!["users_mail_key".to_string()];
    let (old, new) = (id("email"), id("mail"));
    assert_eq!(
        carried_name("users_email_idx", &old, &new, &mut taken).as_str(),
        "users_mail_idx"
    );
    assert_eq!(
        carried_name("users_email_key", &old, &new, &mut taken).as_str(),
        "users_mail_key_2"
    );
    assert_eq!(
        carried_name("by_mailbox", &old, &new, &mut taken).as_str(),
        "by_mailbox_mail"
    );
    let (old, new) = (id("first_name"), id("given"));
    assert_eq!(
        carried_name("p_first_name_idx", &old, &new, &mut taken).as_str(),
        "p_given_idx"
    );
}

#[test]
fn a_referenced_column_is_refused_for_rename_type_change_and_drop() {
    let mut c = pg_users();
    let mut facts = c.table(&t("users")).cloned().unwrap_or_default();
    facts.referenced_by.push(fk(
        Some("orders_user_email_fkey"),
        "public.orders",
        &["user_email"],
        "public.users",
        &["email"],
    ));
    c.insert(t("users"), facts);
    for change in [
        "  - rename_column: { table: users, from: email, to: mail }\n",
        "  - change_column_type: { table: users, column: email, type: varchar(200) }\n",
        "  - drop_column: { table: users, column: email }\n",
    ] {
        match plan_with(Dialect::Postgres, &c, change) {
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("foreign key orders_user_email_fkey of public.orders (user_email)"),
                    "{e}"
                );
                assert!(e.contains("Way forward"), "{e}");
            }
            Ok(_) => panic!("{change}: should be refused"),
        }
    }
}

#[test]
fn an_exclusion_constraint_on_the_column_is_refused() {
    let mut c = pg_users();
    let mut facts = c.table(&t("users")).cloned().unwrap_or_default();
    let mut excl = index("users_email_excl", vec![key("email")], &["email"]);
    (excl.exclusion, excl.constraint) = (true, Some(id("users_email_excl")));
    facts.indexes.push(excl);
    c.insert(t("users"), facts);
    match plan_with(
        Dialect::Postgres,
        &c,
        "  - rename_column: { table: users, from: email, to: mail }\n",
    ) {
        Err(e) => assert!(
            e.to_string()
                .contains("exclusion constraint users_email_excl"),
            "{e}"
        ),
        Ok(_) => panic!("a rename that would lose an exclusion constraint must be refused"),
    }
}
