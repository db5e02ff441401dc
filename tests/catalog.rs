//! The catalog readers against real databases: a schema with every kind of
//! fact the planner uses (indexes plain, unique, partial and on expressions,
//! unique, check and foreign-key constraints both ways), read by URL the way
//! the executor reads an environment.
//!
//! Postgres: `PHASEGATE_TEST_POSTGRES_URL` (see `tests/common`); without a
//! server the Postgres tests print `skipped:` unless
//! `PHASEGATE_REQUIRE_DATABASES=1`.

mod common;

use common::{TestDb, TestResult, fail, with_postgres, with_sqlite};
use phasegate::catalog::{
    Catalog, CatalogError, IndexFacts, Lookup, ReferentialAction, RelationKind, TableFacts,
};
use phasegate::dialect::Dialect;
use phasegate::name::{Ident, TableName};

fn t(s: &str) -> TableName {
    TableName::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn names(idents: &[Ident]) -> Vec<&str> {
    idents.iter().map(Ident::as_str).collect()
}

fn index<'a>(facts: &'a TableFacts, name: &str) -> TestResult<&'a IndexFacts> {
    facts
        .indexes
        .iter()
        .find(|i| i.name.as_str() == name)
        .ok_or_else(|| {
            fail(format!(
                "no index {name}; found {:?}",
                facts
                    .indexes
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
            ))
        })
}

fn check(cond: bool, what: impl Into<String>) -> TestResult {
    if cond { Ok(()) } else { Err(fail(what)) }
}

/// `accounts`, `users` (the table under test) and `orders`, which references it.
async fn schema(db: &TestDb) -> TestResult {
    let id = db.pick("bigint", "INTEGER");
    db.create_table("accounts", &format!("id {id} PRIMARY KEY, code text"))
        .await?;
    db.create_table(
        "users",
        &format!(
            "id {id} PRIMARY KEY, \
             email text NOT NULL UNIQUE CHECK (email LIKE '%@%'), \
             account_id {id} REFERENCES accounts (id) ON DELETE CASCADE, \
             nick {} DEFAULT 'anon', \
             CONSTRAINT nick_not_email CHECK (nick <> email)",
            db.pick("varchar(20)", "text")
        ),
    )
    .await?;
    db.create_table(
        "orders",
        &format!("id {id} PRIMARY KEY, user_email text REFERENCES users (email)"),
    )
    .await?;
    db.exec(db.pick(
        "CREATE INDEX users_nick ON users (nick DESC NULLS LAST) INCLUDE (account_id)",
        "CREATE INDEX users_nick ON users (nick COLLATE NOCASE DESC)",
    ))
    .await?;
    db.exec("CREATE INDEX users_lower_email ON users (lower(email)) WHERE nick IS NOT NULL")
        .await?;
    Ok(())
}

async fn reads_everything(db: TestDb) -> TestResult {
    let db = &db;
    schema(db).await?;
    let catalog = Catalog::read(&db.url, &[t("users"), t("ghosts")]).await?;
    let v = catalog
        .server()
        .ok_or_else(|| fail("the server's version should be read"))?;
    check(v.dialect == db.dialect, format!("version of {v}"))?;
    match db.dialect {
        Dialect::Postgres => check(v.at_least(10, 0), format!("{v}"))?,
        Dialect::Mysql => check(v.at_least(8, 0), format!("{v}"))?,
        Dialect::Sqlite => check(v.at_least(3, 35), format!("{v}"))?,
    }
    check(
        matches!(catalog.lookup(&t("ghosts")), Lookup::Missing),
        "ghosts should be missing",
    )?;
    check(
        matches!(catalog.lookup(&t("orders")), Lookup::NotRead),
        "orders was not asked for",
    )?;
    for name in ["users", "accounts", "orders"] {
        check(
            catalog
                .table_names()
                .iter()
                .any(|n| n.name.as_str() == name),
            format!("{name} should be among the table names"),
        )?;
    }
    let Lookup::Found(users) = catalog.lookup(&t("users")) else {
        return Err(fail("users should be found"));
    };
    check(users.kind == RelationKind::Table, "users is a table")?;
    check(names(&users.primary_key) == ["id"], "primary key")?;
    let email = users
        .column(&Ident::new("email")?)
        .ok_or_else(|| fail("no email column"))?;
    check(!email.nullable, "email is NOT NULL")?;
    let nick = users
        .column(&Ident::new("nick")?)
        .ok_or_else(|| fail("no nick column"))?;
    check(
        nick.default.as_deref().is_some_and(|d| d.contains("anon")),
        format!("nick's default: {:?}", nick.default),
    )?;

    // The unique constraint and the index behind it.
    let unique = users
        .uniques
        .iter()
        .find(|u| names(&u.columns) == ["email"])
        .ok_or_else(|| {
            fail(format!(
                "no unique constraint on email: {:?}",
                users.uniques
            ))
        })?;
    let behind = index(users, unique.index.as_str())?;
    check(
        behind.unique && !behind.primary && behind.constraint.as_ref() == Some(&unique.name),
        format!("{behind:?}"),
    )?;
    // (SQLite's INTEGER PRIMARY KEY is the rowid: it has no index.)
    check(
        db.dialect == Dialect::Sqlite
            || users.indexes.iter().any(|i| {
                i.primary
                    && i.keys
                        .first()
                        .and_then(|k| k.column.as_ref())
                        .map(Ident::as_str)
                        == Some("id")
            }),
        "the primary key's index",
    )?;

    // A plain index with key options.
    let plain = index(users, "users_nick")?;
    let key = plain
        .keys
        .first()
        .ok_or_else(|| fail("users_nick has no key"))?;
    check(
        !plain.unique && !plain.has_expression && plain.predicate.is_none() && plain.valid,
        format!("{plain:?}"),
    )?;
    check(
        key.column.as_ref().map(Ident::as_str) == Some("nick") && key.descending,
        format!("{key:?}"),
    )?;
    match db.dialect {
        Dialect::Mysql => {}
        Dialect::Postgres => {
            check(!key.nulls_first, "DESC NULLS LAST")?;
            check(
                names(&plain.include) == ["account_id"],
                format!("{plain:?}"),
            )?;
            check(plain.method.as_deref() == Some("btree"), "btree")?;
        }
        Dialect::Sqlite => check(
            key.collation
                .as_ref()
                .is_some_and(|c| c.name.as_str().eq_ignore_ascii_case("nocase")),
            format!("{key:?}"),
        )?,
    }

    // A partial index on an expression: its columns come from the expression and the predicate.
    let expr = index(users, "users_lower_email")?;
    check(
        expr.has_expression,
        "users_lower_email has an expression key",
    )?;
    check(
        expr.predicate
            .as_deref()
            .is_some_and(|p| p.contains("nick")),
        format!("predicate {:?}", expr.predicate),
    )?;
    check(
        expr.uses(&Ident::new("email")?) && expr.uses(&Ident::new("nick")?),
        format!("columns used: {:?}", expr.columns_used),
    )?;

    // Checks, with the columns they refer to.
    let email_check = users
        .checks
        .iter()
        .find(|c| names(&c.columns) == ["email"])
        .ok_or_else(|| fail(format!("no check on email: {:?}", users.checks)))?;
    check(
        email_check.expression.contains("%@%"),
        format!("{email_check:?}"),
    )?;
    let both = users
        .checks
        .iter()
        .find(|c| c.name.as_ref().map(Ident::as_str) == Some("nick_not_email"))
        .ok_or_else(|| fail(format!("no check nick_not_email: {:?}", users.checks)))?;
    let mut cols = names(&both.columns);
    cols.sort_unstable();
    check(cols == ["email", "nick"], format!("{both:?}"))?;
    if db.dialect == Dialect::Sqlite {
        check(
            email_check.column.as_ref().map(Ident::as_str) == Some("email")
                && both.column.is_none(),
            "SQLite tells column checks from table checks",
        )?;
    }

    // Foreign keys, both ways.
    let [fk] = users.foreign_keys.as_slice() else {
        return Err(fail(format!("foreign keys: {:?}", users.foreign_keys)));
    };
    check(
        names(&fk.columns) == ["account_id"]
            && fk.references.name.as_str() == "accounts"
            && names(&fk.referenced_columns) == ["id"]
            && fk.on_delete == ReferentialAction::Cascade
            && fk.on_update == ReferentialAction::NoAction,
        format!("{fk:?}"),
    )?;
    let [back] = users.referenced_by.as_slice() else {
        return Err(fail(format!("referenced by: {:?}", users.referenced_by)));
    };
    check(
        back.table.name.as_str() == "orders"
            && names(&back.columns) == ["user_email"]
            && names(&back.referenced_columns) == ["email"],
        format!("{back:?}"),
    )?;
    if db.dialect == Dialect::Postgres {
        check(
            fk.name.is_some() && back.name.is_some() && fk.validated,
            "Postgres names its foreign keys",
        )?;
    }

    // The pool-based readers the tests use give the same answer.
    let again = db.catalog(&["users"]).await?;
    check(
        again.table(&t("users")) == Some(users),
        "read_postgres/read_sqlite agree with read",
    )?;
    Ok(())
}

#[tokio::test]
async fn postgres_reads_everything() {
    with_postgres(reads_everything).await
}

#[tokio::test]
async fn sqlite_reads_everything() {
    with_sqlite(reads_everything).await
}

#[tokio::test]
async fn sqlite_schema_qualified_and_views() {
    with_sqlite(|db| async move {
        db.create_table("people", "id INTEGER PRIMARY KEY, name text")
            .await?;
        db.exec("CREATE VIEW folks AS SELECT * FROM people").await?;
        let catalog = Catalog::read(&db.url, &[t("main.people"), t("folks")]).await?;
        check(
            catalog
                .table(&t("main.people"))
                .is_some_and(|p| p.columns.len() == 2),
            "main.people",
        )?;
        check(
            catalog.table(&t("folks")).map(|f| f.kind) == Some(RelationKind::View),
            "folks is a view",
        )
    })
    .await
}

#[tokio::test]
async fn a_database_that_does_not_answer_is_an_error() {
    let err = Catalog::read_with_timeout(
        "postgres://nobody:secret@127.0.0.1:1/none",
        &[],
        std::time::Duration::from_secs(2),
    )
    .await
    .map(|_| ());
    match err {
        Err(e @ (CatalogError::Connect { .. } | CatalogError::Timeout { .. })) => {
            assert!(!e.to_string().contains("secret"), "{e}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    let err = Catalog::read("sqlite:///nonexistent/dir/x.db?mode=ro", &[])
        .await
        .map(|_| ());
    assert!(matches!(err, Err(CatalogError::Connect { .. })), "{err:?}");
}
