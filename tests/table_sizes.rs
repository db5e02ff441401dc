//! `catalog::table_sizes` on real Postgres, MariaDB and SQLite databases:
//! the rows and bytes of an existing table, a table that does not exist,
//! and (Postgres) a table never analyzed, which is counted instead.

mod common;

use common::{TestDb, TestResult, fail, with_mysql, with_postgres, with_sqlite};
use phasegate::catalog::{TableSize, table_sizes};
use phasegate::dialect::Dialect;
use phasegate::name::TableName;

fn t(name: &str) -> TableName {
    TableName::parse(name).expect("a table name")
}

/// `items` with 500 rows, and the sizes of `items` and `nowhere`.
async fn sizes(db: &TestDb, analyze: bool) -> TestResult<(TableSize, TableSize)> {
    db.create_table("items", "id integer PRIMARY KEY, label varchar(40)")
        .await?;
    db.exec(&format!(
        "INSERT INTO {} (id, label) SELECT i, 'item' FROM {}",
        db.table("items"),
        db.series(500)
    ))
    .await?;
    if analyze {
        match db.dialect {
            Dialect::Postgres => db.exec("ANALYZE items").await?,
            Dialect::Mysql => db.exec("ANALYZE TABLE items").await?,
            Dialect::Sqlite => 0,
        };
    }
    let got = table_sizes(&db.url, &[t("items"), t("nowhere")])
        .await
        .map_err(|e| fail(e.to_string()))?;
    match <[TableSize; 2]>::try_from(got) {
        Ok([a, b]) => Ok((a, b)),
        Err(got) => Err(fail(format!("two sizes expected: {got:?}"))),
    }
}

fn assert_missing(s: &TableSize) {
    assert_eq!(s.table, t("nowhere"));
    assert!(!s.exists && s.rows.is_none() && s.bytes.is_none(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_estimates_from_pg_class_once_analyzed() {
    with_postgres(|db| async move {
        let (items, nowhere) = sizes(&db, true).await?;
        assert_eq!(
            (items.exists, items.rows, items.exact),
            (true, Some(500), false),
            "{items:?}"
        );
        // Heap, primary key index: at least a page each.
        assert!(items.bytes.is_some_and(|b| b >= 16_384), "{items:?}");
        assert_missing(&nowhere);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_counts_a_table_never_analyzed() {
    with_postgres(|db| async move {
        let (items, _) = sizes(&db, false).await?;
        // reltuples is -1 until the first ANALYZE (Postgres 14+); older
        // servers say 0 with relpages 0, which reads as an estimate of 0.
        let version: i64 = db
            .scalar("SELECT current_setting('server_version_num')::bigint")
            .await?;
        if version >= 140_000 {
            assert_eq!((items.rows, items.exact), (Some(500), true), "{items:?}");
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_reads_information_schema() {
    with_mysql(|db| async move {
        let (items, nowhere) = sizes(&db, true).await?;
        assert!(items.exists && !items.exact, "{items:?}");
        // InnoDB's TABLE_ROWS is an estimate: near 500 after ANALYZE TABLE.
        assert!(
            items.rows.is_some_and(|r| (250..=1000).contains(&r)),
            "{items:?}"
        );
        assert!(items.bytes.is_some_and(|b| b >= 16_384), "{items:?}");
        assert_missing(&nowhere);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_counts_rows() {
    with_sqlite(|db| async move {
        let (items, nowhere) = sizes(&db, false).await?;
        assert_eq!(
            (items.exists, items.rows, items.exact),
            (true, Some(500), true),
            "{items:?}"
        );
        // dbstat is compiled into the bundled library: the table's pages.
        assert!(items.bytes.is_some_and(|b| b >= 4096), "{items:?}");
        assert_missing(&nowhere);
        Ok(())
    })
    .await;
}
