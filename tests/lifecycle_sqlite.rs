//! Every intent kind, planned against a populated SQLite database (a
//! temporary file per test) and rolled out phase by phase while the old and
//! new releases of the application keep running (see `tests/scenarios`).

mod common;
mod scenarios;

use common::with_sqlite;
use scenarios::Catalogue::{Live, Offline};
use scenarios::OldColumn::{NotNullDefault, Nullable};

#[tokio::test]
async fn rename_column_live() {
    with_sqlite(|db| scenarios::rename_column(db, "users", "name", "full_name", Nullable, Live))
        .await
}

#[tokio::test]
async fn rename_column_offline() {
    with_sqlite(|db| scenarios::rename_column(db, "users", "name", "full_name", Nullable, Offline))
        .await
}

#[tokio::test]
async fn rename_column_awkward_names() {
    with_sqlite(|db| scenarios::rename_column(db, "user", "we\"ird", "full name", Nullable, Live))
        .await
}

#[tokio::test]
async fn rename_column_dual_write_nullable() {
    with_sqlite(|db| scenarios::rename_column_dual_write(db, false)).await
}

#[tokio::test]
async fn add_column_nullable_with_backfill() {
    with_sqlite(scenarios::add_column_nullable).await
}

#[tokio::test]
async fn add_column_required_with_default() {
    with_sqlite(scenarios::add_column_required_with_default).await
}

#[tokio::test]
async fn add_column_required_backfilled() {
    with_sqlite(scenarios::add_column_required_backfilled).await
}

#[tokio::test]
async fn change_column_type_using_and_reverse() {
    with_sqlite(scenarios::change_column_type_using).await
}

#[tokio::test]
async fn change_column_type_cast_live() {
    with_sqlite(|db| scenarios::change_column_type_cast(db, Live)).await
}

#[tokio::test]
async fn change_column_type_cast_offline() {
    with_sqlite(|db| scenarios::change_column_type_cast(db, Offline)).await
}

#[tokio::test]
async fn drop_column_nullable() {
    with_sqlite(|db| scenarios::drop_column(db, "text")).await
}

#[tokio::test]
async fn drop_column_not_null_with_default() {
    with_sqlite(|db| scenarios::drop_column(db, "text NOT NULL DEFAULT 'x'")).await
}

// rename_table is refused on SQLite (a write through a view reports no rows
// and no id): see tests/rename_table_writes.rs.

#[tokio::test]
async fn add_index() {
    with_sqlite(scenarios::add_index_plain).await
}

#[tokio::test]
async fn add_index_unique_after_cleanup() {
    with_sqlite(scenarios::add_index_unique).await
}

#[tokio::test]
async fn add_foreign_key_restrict() {
    with_sqlite(|db| scenarios::add_foreign_key(db, "customers", "invoices", None)).await
}

#[tokio::test]
async fn add_foreign_key_cascade() {
    with_sqlite(|db| scenarios::add_foreign_key(db, "customers", "invoices", Some("cascade"))).await
}

#[tokio::test]
async fn add_foreign_key_set_null() {
    with_sqlite(|db| scenarios::add_foreign_key(db, "customers", "invoices", Some("set_null")))
        .await
}

#[tokio::test]
async fn set_not_null() {
    with_sqlite(|db| scenarios::set_not_null(db, "users", "email")).await
}

#[tokio::test]
async fn set_not_null_awkward_names() {
    with_sqlite(|db| scenarios::set_not_null(db, "user", "we\"ird")).await
}

#[tokio::test]
async fn add_check() {
    with_sqlite(scenarios::add_check).await
}

#[tokio::test]
async fn drop_table() {
    with_sqlite(scenarios::drop_table).await
}

#[tokio::test]
async fn drop_table_still_referenced_is_refused() {
    with_sqlite(scenarios::drop_table_still_referenced).await
}

#[tokio::test]
async fn sql_escape_hatch() {
    with_sqlite(scenarios::sql_phases).await
}

#[tokio::test]
async fn two_renames_share_three_deploys() {
    with_sqlite(scenarios::two_renames).await
}

#[tokio::test]
async fn contradictory_intents_are_refused() {
    with_sqlite(scenarios::contradiction).await
}

#[tokio::test]
async fn copy_of_not_null_column_is_refused() {
    with_sqlite(scenarios::copy_of_not_null_column_is_refused).await
}

#[tokio::test]
async fn rename_column_not_null_with_default() {
    with_sqlite(|db| {
        scenarios::rename_column(
            db,
            "users",
            "name",
            "full_name",
            NotNullDefault("anon"),
            Live,
        )
    })
    .await
}

#[tokio::test]
async fn add_index_partial_unique_named() {
    with_sqlite(scenarios::add_index_partial_unique).await
}

#[tokio::test]
async fn rename_carries_indexes_and_foreign_key() {
    with_sqlite(scenarios::rename_carries_constraints).await
}

#[tokio::test]
async fn validation_against_live_schema() {
    with_sqlite(scenarios::validation_against_live_schema).await
}

#[tokio::test]
async fn drop_column_on_an_old_sqlite_is_refused() {
    with_sqlite(scenarios::drop_column_on_an_old_sqlite).await
}

#[tokio::test]
async fn add_serial_column_numbers_every_row() {
    with_sqlite(scenarios::add_serial_column).await
}

#[tokio::test]
async fn drop_column_rollback_fills_rows_from_down() {
    with_sqlite(scenarios::drop_column_rollback_down).await
}
