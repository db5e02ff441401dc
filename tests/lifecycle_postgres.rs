//! Every intent kind, planned against a populated Postgres database and
//! rolled out phase by phase while the old and new releases of the
//! application keep running (see `tests/scenarios`).
//!
//! Needs a Postgres server: `PHASEGATE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each test creates and
//! drops its own database. Without a server each test prints one `skipped:`
//! line, unless `PHASEGATE_REQUIRE_DATABASES=1`.

mod common;
mod scenarios;

use common::with_postgres;
use scenarios::Catalogue::{Live, Offline};
use scenarios::OldColumn::{NotNull, NotNullDefault, Nullable};

#[tokio::test]
async fn rename_column_live() {
    with_postgres(|db| scenarios::rename_column(db, "users", "name", "full_name", Nullable, Live))
        .await
}

#[tokio::test]
async fn rename_column_offline_reads_the_catalog_when_it_runs() {
    with_postgres(|db| {
        scenarios::rename_column(db, "users", "name", "full_name", Nullable, Offline)
    })
    .await
}

#[tokio::test]
async fn rename_column_awkward_names_offline_moves_the_default() {
    with_postgres(|db| {
        scenarios::rename_column(
            db,
            "user",
            "we\"ird",
            "full name",
            NotNullDefault("anon"),
            Offline,
        )
    })
    .await
}

#[tokio::test]
async fn rename_column_awkward_names_live_moves_the_default() {
    with_postgres(|db| {
        scenarios::rename_column(
            db,
            "user",
            "we\"ird",
            "full name",
            NotNullDefault("it's"),
            Live,
        )
    })
    .await
}

#[tokio::test]
async fn rename_column_schema_qualified() {
    with_postgres(|db| {
        scenarios::rename_column(db, "billing.invoices", "note", "memo", Nullable, Live)
    })
    .await
}

#[tokio::test]
async fn rename_column_dual_write_nullable() {
    with_postgres(|db| scenarios::rename_column_dual_write(db, false)).await
}

#[tokio::test]
async fn rename_column_dual_write_relaxes_not_null() {
    with_postgres(|db| scenarios::rename_column_dual_write(db, true)).await
}

#[tokio::test]
async fn add_column_nullable_with_backfill() {
    with_postgres(scenarios::add_column_nullable).await
}

#[tokio::test]
async fn add_column_required_with_default() {
    with_postgres(scenarios::add_column_required_with_default).await
}

#[tokio::test]
async fn add_column_required_backfilled() {
    with_postgres(scenarios::add_column_required_backfilled).await
}

#[tokio::test]
async fn add_column_volatile_default() {
    with_postgres(scenarios::add_column_volatile_default).await
}

#[tokio::test]
async fn change_column_type_using_and_reverse() {
    with_postgres(scenarios::change_column_type_using).await
}

#[tokio::test]
async fn change_column_type_cast_live() {
    with_postgres(|db| scenarios::change_column_type_cast(db, Live)).await
}

#[tokio::test]
async fn change_column_type_cast_offline() {
    with_postgres(|db| scenarios::change_column_type_cast(db, Offline)).await
}

#[tokio::test]
async fn change_column_type_binary_coercible() {
    with_postgres(scenarios::change_column_type_coercible).await
}

#[tokio::test]
async fn drop_column_not_null_is_relaxed_first() {
    with_postgres(|db| scenarios::drop_column(db, "text NOT NULL")).await
}

#[tokio::test]
async fn drop_column_nullable() {
    with_postgres(|db| scenarios::drop_column(db, "text")).await
}

#[tokio::test]
async fn drop_column_not_null_with_default() {
    with_postgres(|db| scenarios::drop_column(db, "text NOT NULL DEFAULT 'x'")).await
}

#[tokio::test]
async fn rename_table_schema_qualified() {
    with_postgres(|db| scenarios::rename_table(db, "billing.invoices", "bills")).await
}

#[tokio::test]
async fn rename_table_reserved_word() {
    with_postgres(|db| scenarios::rename_table(db, "user", "account")).await
}

#[tokio::test]
async fn add_index_concurrently() {
    with_postgres(scenarios::add_index_plain).await
}

#[tokio::test]
async fn add_index_unique_after_cleanup() {
    with_postgres(scenarios::add_index_unique).await
}

#[tokio::test]
async fn add_foreign_key_schema_qualified_cascade() {
    with_postgres(|db| {
        scenarios::add_foreign_key(db, "billing.customers", "billing.invoices", Some("cascade"))
    })
    .await
}

#[tokio::test]
async fn add_foreign_key_no_action() {
    with_postgres(|db| scenarios::add_foreign_key(db, "customers", "invoices", None)).await
}

#[tokio::test]
async fn add_foreign_key_set_null() {
    with_postgres(|db| scenarios::add_foreign_key(db, "customers", "invoices", Some("set_null")))
        .await
}

#[tokio::test]
async fn set_not_null() {
    with_postgres(|db| scenarios::set_not_null(db, "users", "email")).await
}

#[tokio::test]
async fn set_not_null_awkward_names() {
    with_postgres(|db| scenarios::set_not_null(db, "user", "we\"ird")).await
}

#[tokio::test]
async fn add_check() {
    with_postgres(scenarios::add_check).await
}

#[tokio::test]
async fn drop_table() {
    with_postgres(scenarios::drop_table).await
}

#[tokio::test]
async fn drop_table_still_referenced_is_refused() {
    with_postgres(scenarios::drop_table_still_referenced).await
}

#[tokio::test]
async fn sql_escape_hatch() {
    with_postgres(scenarios::sql_phases).await
}

#[tokio::test]
async fn two_renames_share_three_deploys() {
    with_postgres(scenarios::two_renames).await
}

#[tokio::test]
async fn contradictory_intents_are_refused() {
    with_postgres(scenarios::contradiction).await
}

#[tokio::test]
async fn rename_column_not_null() {
    with_postgres(|db| scenarios::rename_column(db, "users", "name", "full_name", NotNull, Live))
        .await
}

#[tokio::test]
async fn add_index_partial_unique_named() {
    with_postgres(scenarios::add_index_partial_unique).await
}

#[tokio::test]
async fn rename_column_schema_qualified_offline() {
    with_postgres(|db| {
        scenarios::rename_column(db, "billing.invoices", "note", "memo", Nullable, Offline)
    })
    .await
}

#[tokio::test]
async fn rename_carries_indexes_and_constraints() {
    with_postgres(scenarios::rename_carries_constraints).await
}

#[tokio::test]
async fn change_primary_key_type_moves_the_primary_key() {
    with_postgres(scenarios::change_primary_key_type).await
}

#[tokio::test]
async fn validation_against_live_schema() {
    with_postgres(scenarios::validation_against_live_schema).await
}

#[tokio::test]
async fn add_column_on_an_old_postgres_takes_the_multi_phase_path() {
    with_postgres(scenarios::add_column_on_an_old_postgres).await
}

#[tokio::test]
async fn add_serial_column_numbers_every_row() {
    with_postgres(scenarios::add_serial_column).await
}

#[tokio::test]
async fn drop_column_rollback_fills_rows_from_down() {
    with_postgres(scenarios::drop_column_rollback_down).await
}
