//! Round 2 of the adversarial review of issue 9 ("Schema fidelity"): new
//! instances of each kind the issue lists, on real Postgres, MariaDB and
//! SQLite, beyond the cases of `tests/fidelity.rs` and
//! `tests/fidelity_adversarial.rs`.
//!
//! Each test accepts either right outcome: the plan is refused before any DDL
//! naming the object, or it rolls out with both releases' queries running
//! after every phase and the object still working after the contract.
//! The two tests still marked `#[ignore = "…"]` are known limits the plan
//! notes; every other case here failed once and was fixed.

mod common;

use common::outcomes::{Releases, check, refused_or_works};
use common::{
    TestDb, TestResult, apply_phase, fail, plan_live, roll_out, with_mysql, with_postgres,
    with_sqlite,
};

// ---------------------------------------------------------------------------
// Failing today, most severe first
// ---------------------------------------------------------------------------

/// Two plans on one table (most severe): plan A `rename_column users.name
/// → full_name` has run deploy 1 (its sync trigger reads and writes `name`);
/// plan B `drop_column users.name`, planned against that database, is
/// accepted without a word (a user trigger naming the column is refused,
/// but phasegate's own sync trigger of another plan is not counted). B's
/// irreversible deploy 2 drops `name`, and from then on every INSERT and
/// UPDATE of `users` fails (`record "new" has no field "name"`), and plan A
/// can no longer finish. Right: B refused at plan time naming plan A's
/// trigger (or the column it still syncs).
#[tokio::test]
async fn break2_pg_drop_column_synced_by_another_plan() {
    with_postgres(drop_column_synced_by_another_plan).await;
}

/// The same on MariaDB: B's DROP COLUMN succeeds and every INSERT and
/// UPDATE of `users` then fails (Unknown column 'name' in 'NEW').
#[tokio::test]
async fn break2_mysql_drop_column_synced_by_another_plan() {
    with_mysql(drop_column_synced_by_another_plan).await;
}

/// The same on SQLite: B's irreversible deploy 2 fails every time ("error
/// in trigger users_name_full_name_sync_ins after drop column").
#[tokio::test]
async fn break2_sqlite_drop_column_synced_by_another_plan() {
    with_sqlite(drop_column_synced_by_another_plan).await;
}

async fn drop_column_synced_by_another_plan(db: TestDb) -> TestResult {
    db.exec(&format!(
        "CREATE TABLE users (id {}, name varchar(50) NOT NULL DEFAULT '', mail text)",
        db.pick3(
            "bigserial PRIMARY KEY",
            "integer PRIMARY KEY",
            "int AUTO_INCREMENT PRIMARY KEY"
        )
    ))
    .await?;
    db.exec("INSERT INTO users (name, mail) VALUES ('n1', 'm1'), ('n2', 'm2'), ('n3', 'm3')")
        .await?;
    let a = plan_live(
        &db,
        "  - rename_column: { table: users, from: name, to: full_name }\n",
        &["users"],
    )
    .await?;
    let first = a
        .phases
        .first()
        .ok_or_else(|| fail("plan A has no phase"))?;
    apply_phase(&db, &a, first).await?;
    let mut app = Releases(|_| {
        vec![
            "INSERT INTO users (full_name, mail) VALUES ('z', 'q')".to_string(),
            "UPDATE users SET mail = 'u' WHERE id = 1".to_string(),
        ]
    });
    refused_or_works(
        &db,
        "  - drop_column: { table: users, column: name }\n",
        &["users"],
        "name",
        &mut app,
        &[],
    )
    .await
}

/// Postgres `acct(id bigint primary key, code text not null)` whose REPLICA
/// IDENTITY is `USING INDEX acct_code` (unique on `code`), in a publication.
/// `rename_column code → account_code`: the plan says nothing; the unique
/// index is copied for the new column but the replica identity is not moved
/// to it, so the contract's DROP COLUMN takes the replica identity index
/// with it and from then on every UPDATE and DELETE of `acct` fails
/// ("cannot update table "acct" because it does not have a replica identity
/// and publishes updates"), after the irreversible deploy.
#[tokio::test]
async fn break2_pg_rename_keeps_replica_identity_index() {
    with_postgres(|db| async move {
        replica_identity_case(
            db,
            "  - rename_column: { table: acct, from: code, to: account_code }\n",
        )
        .await
    })
    .await;
}

/// The same table, `change_column_type code → varchar(20)`: same outcome.
#[tokio::test]
async fn break2_pg_type_change_keeps_replica_identity_index() {
    with_postgres(|db| async move {
        replica_identity_case(
            db,
            "  - change_column_type: { table: acct, column: code, type: \"varchar(20)\" }\n",
        )
        .await
    })
    .await;
}

async fn replica_identity_case(db: TestDb, changes: &str) -> TestResult {
    db.exec(
        "CREATE TABLE acct (id bigint PRIMARY KEY, code text NOT NULL, bal int); \
         CREATE UNIQUE INDEX acct_code ON acct (code); \
         ALTER TABLE acct REPLICA IDENTITY USING INDEX acct_code; \
         INSERT INTO acct SELECT g, 'c' || g, g FROM generate_series(1, 20) g; \
         CREATE PUBLICATION acct_pub FOR TABLE acct",
    )
    .await?;
    let mut app = Releases(|_| {
        vec![
            "UPDATE acct SET bal = bal + 1 WHERE id = 1".to_string(),
            "DELETE FROM acct WHERE id = 20".to_string(),
        ]
    });
    refused_or_works(
        &db,
        changes,
        &["acct"],
        "replica identity",
        &mut app,
        &[
            "UPDATE acct SET bal = bal + 1 WHERE id = 2",
            "DELETE FROM acct WHERE id = 3",
        ],
    )
    .await
}

/// `drop_column acct.code` where `code` is in the replica identity index:
/// planned without a word; apply fails at its first step
/// (`1.relax_not_null`: "column "code" is in index used as replica
/// identity"). Right: refused at plan time naming the replica identity (or
/// carried: the plan resets REPLICA IDENTITY before the drop).
#[tokio::test]
async fn break2_pg_drop_column_in_replica_identity() {
    with_postgres(|db| async move {
        db.exec(
            "CREATE TABLE acct (id bigint PRIMARY KEY, code text NOT NULL, bal int); \
             CREATE UNIQUE INDEX acct_code ON acct (code); \
             ALTER TABLE acct REPLICA IDENTITY USING INDEX acct_code; \
             INSERT INTO acct SELECT g, 'c' || g, g FROM generate_series(1, 20) g",
        )
        .await?;
        let mut app = Releases(|release| {
            let mut q = vec!["UPDATE acct SET bal = bal + 1 WHERE id = 1".to_string()];
            if release == 0 {
                q.push("INSERT INTO acct VALUES (100, 'x100', 0)".to_string());
            } else {
                q.push(format!(
                    "INSERT INTO acct (id, bal) VALUES ({}, 0)",
                    200 + release
                ));
            }
            q
        });
        refused_or_works(
            &db,
            "  - drop_column: { table: acct, column: code }\n",
            &["acct"],
            "replica identity",
            &mut app,
            &["UPDATE acct SET bal = 0 WHERE id = 2"],
        )
        .await
    })
    .await;
}

/// Postgres `docs(tags int[] NOT NULL DEFAULT '{}')`,
/// `change_column_type tags → bigint[]`: the plan notes that the default
/// `'{}'::integer[]` "is written for its old type" and is not given to
/// `tags_new` (which is NOT NULL after the contract), although it casts to
/// bigint[] by assignment. After the irreversible contract every insert that
/// lets the database supply `tags` fails (null value in column "tags_new").
/// The same happens for `qty text NOT NULL DEFAULT '0'` → integer (`using`).
#[tokio::test]
async fn break2_pg_type_change_keeps_not_null_default() {
    with_postgres(|db| async move {
        db.exec(
            "CREATE TABLE docs (id bigserial PRIMARY KEY, tags int[] NOT NULL DEFAULT '{}', note text); \
             CREATE INDEX docs_tags_gin ON docs USING gin (tags); \
             INSERT INTO docs (tags) SELECT ARRAY[g, g + 1] FROM generate_series(1, 20) g",
        )
        .await?;
        let mut app = Releases(|_| vec!["INSERT INTO docs (note) VALUES ('app')".to_string()]);
        refused_or_works(
            &db,
            "  - change_column_type: { table: docs, column: tags, type: \"bigint[]\" }\n",
            &["docs"],
            "default",
            &mut app,
            &["INSERT INTO docs (note) VALUES ('after')"],
        )
        .await
    })
    .await;
}

/// Postgres `orders(status text NOT NULL DEFAULT 'new')`,
/// `change_column_type status → order_status` (an enum, `using:
/// status::order_status`): the default 'new' is a valid label of the enum,
/// yet it is "not given" to `status_new`; after the irreversible contract
/// `INSERT INTO orders DEFAULT VALUES` fails (null value in column
/// "status_new"). Right: the default carried as `'new'::order_status`, or
/// the plan refused naming the default before any DDL.
#[tokio::test]
async fn break2_pg_text_to_enum_keeps_not_null_default() {
    with_postgres(|db| async move {
        db.exec(
            "CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped'); \
             CREATE TABLE orders (id bigserial PRIMARY KEY, status text NOT NULL DEFAULT 'new'); \
             INSERT INTO orders (status) SELECT (ARRAY['new', 'paid', 'shipped'])[1 + g % 3] FROM generate_series(1, 30) g",
        )
        .await?;
        let mut app = Releases(|_| vec!["INSERT INTO orders DEFAULT VALUES".to_string()]);
        refused_or_works(
            &db,
            "  - change_column_type: { table: orders, column: status, type: order_status, using: \"status::order_status\", reverse: \"status_new::text\" }\n",
            &["orders"],
            "default",
            &mut app,
            &["INSERT INTO orders DEFAULT VALUES"],
        )
        .await
    })
    .await;
}

/// SQLite `kv(k text primary key, v text NOT NULL DEFAULT 'x') WITHOUT
/// ROWID`, `rename_column v → val`: the plan notes that `val` gets no
/// default and no NOT NULL ("SQLite cannot add …"), yet phasegate adds `val`
/// itself and SQLite's ADD COLUMN accepts `NOT NULL DEFAULT 'x'`. After the
/// contract an insert that lets the database supply the value stores NULL
/// where the old schema stored 'x', silently. Same with a STRICT table's
/// `change_column_type qty text NOT NULL DEFAULT '0' → integer`.
#[tokio::test]
#[ignore = "known limit, noted in the plan: SQLite cannot give the copy its default while the sync trigger tells writers apart by NULL"]
async fn break2_sqlite_rename_keeps_not_null_default() {
    with_sqlite(|db| async move {
        db.exec(
            "CREATE TABLE kv (k text PRIMARY KEY, v text NOT NULL DEFAULT 'x', n integer) WITHOUT ROWID; \
             INSERT INTO kv (k, v) VALUES ('a', '1'), ('b', '2'), ('c', '3')",
        )
        .await?;
        let mut app = Releases(|release| {
            vec![format!(
                "INSERT INTO kv (k) VALUES ('r{release}-' || hex(randomblob(4)))"
            )]
        });
        refused_or_works(
            &db,
            "  - rename_column: { table: kv, from: v, to: val }\n",
            &["kv"],
            "default",
            &mut app,
            &["INSERT INTO kv (k) VALUES ('after')"],
        )
        .await?;
        if db.has_column("kv", "val").await? {
            check(
                db.scalar("SELECT count(*) FROM kv WHERE val IS NULL").await? == 0,
                "rows inserted without val must hold its default 'x', not NULL",
            )?;
        }
        Ok(())
    })
    .await;
}

/// Postgres `stock(qty text NOT NULL DEFAULT '0' CHECK (qty <> ''))`,
/// `change_column_type qty → integer` with `using`/`reverse`: planned (a
/// note says a check that does not fit "fails its step in phase 1"); apply
/// runs add_column, the trigger, the backfill, the index and NOT NULL, then
/// fails at `1.check_1` (operator does not exist: integer <> text). Right:
/// decided at plan time (the check's expression can be tried against the
/// new type without DDL) and refused naming the check.
#[tokio::test]
#[ignore = "known limit, noted in the plan: a check that does not fit the new type fails its step in deploy 1, which rolls back"]
async fn break2_pg_type_change_check_that_does_not_fit() {
    with_postgres(|db| async move {
        db.exec(
            "CREATE TABLE stock (id bigserial PRIMARY KEY, qty text NOT NULL DEFAULT '0' CHECK (qty <> '')); \
             INSERT INTO stock (qty) SELECT g::text FROM generate_series(1, 20) g",
        )
        .await?;
        let mut app = Releases(|release| {
            let col = if release < 2 { "qty" } else { "qty_new" };
            vec![format!("INSERT INTO stock ({col}) VALUES ('7')")]
        });
        refused_or_works(
            &db,
            "  - change_column_type: { table: stock, column: qty, type: integer, using: \"qty::integer\", reverse: \"qty_new::text\" }\n",
            &["stock"],
            "stock_qty_check",
            &mut app,
            &[],
        )
        .await
    })
    .await;
}

/// MariaDB system-versioned table (`WITH SYSTEM VERSIONING`),
/// `rename_column amount → cents`: planned without a word; apply fails at
/// its first step ("Not allowed for system-versioned … Change
/// @@system_versioning_alter_history to proceed", error 4119). Right:
/// refused at plan time naming system versioning, or carried.
#[tokio::test]
async fn break2_mysql_system_versioned_table_rename() {
    with_mysql(|db| async move {
        db.exec("CREATE TABLE prices (id int AUTO_INCREMENT PRIMARY KEY, amount int NOT NULL DEFAULT 0) WITH SYSTEM VERSIONING")
            .await?;
        db.exec("INSERT INTO prices (amount) VALUES (1), (2), (3)")
            .await?;
        let mut app = Releases(|_| vec!["INSERT INTO prices () VALUES ()".to_string()]);
        refused_or_works(
            &db,
            "  - rename_column: { table: prices, from: amount, to: cents }\n",
            &["prices"],
            "system",
            &mut app,
            &["INSERT INTO prices () VALUES ()"],
        )
        .await
    })
    .await;
}

/// Postgres `booking(room int, during tsrange, EXCLUDE USING gist (room WITH
/// =, during WITH &&))`, `rename_column room → room_id`: planned with a note
/// that the exclusion constraint "goes with room at the contract". After
/// the irreversible contract double bookings are accepted: an integrity
/// constraint is lost, which no user wants (unique expression and partial
/// indexes are refused for the same reason). Right: carried (rebuilt over
/// room_id) or refused naming `no_overlap`.
#[tokio::test]
async fn break2_pg_rename_keeps_exclusion_constraint() {
    with_postgres(|db| async move {
        db.exec(
            "CREATE EXTENSION IF NOT EXISTS btree_gist; \
             CREATE TABLE booking (id bigserial PRIMARY KEY, room int NOT NULL, during tsrange NOT NULL, \
               CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&)); \
             INSERT INTO booking (room, during) SELECT g, tsrange('2020-01-01', '2020-01-02') FROM generate_series(1, 20) g",
        )
        .await?;
        let mut app = Releases(|release| {
            let col = if release < 2 { "room" } else { "room_id" };
            vec![format!(
                "INSERT INTO booking ({col}, during) SELECT 1000 + max(id), tsrange('2021-01-01', '2021-01-02') FROM booking"
            )]
        });
        refused_or_works(
            &db,
            "  - rename_column: { table: booking, from: room, to: room_id }\n",
            &["booking"],
            "no_overlap",
            &mut app,
            &[],
        )
        .await?;
        if db.has_column("booking", "room_id").await? {
            db.assert_fails(
                "INSERT INTO booking (room_id, during) VALUES (1, tsrange('2020-01-01', '2020-01-02'))",
                "exclusion constraint",
            )
            .await?;
        }
        Ok(())
    })
    .await;
}

/// MariaDB `docs(body text, FULLTEXT KEY docs_ft (body))`, `rename_column
/// body → content`: planned (a note says the FULLTEXT index "goes with body
/// at the contract"), then apply fails at its first step: `ADD COLUMN …,
/// ALGORITHM=INSTANT` is not supported on a table with a FULLTEXT index
/// (error 1845). And had it run, every `MATCH (content) AGAINST …` of the
/// new release fails after the contract (no FULLTEXT index). Right: refused
/// at plan time naming docs_ft, or carried (index rebuilt, lock noted).
#[tokio::test]
async fn break2_mysql_fulltext_column_rename() {
    with_mysql(|db| async move {
        db.exec("CREATE TABLE docs (id int AUTO_INCREMENT PRIMARY KEY, body text NOT NULL, FULLTEXT KEY docs_ft (body)) ENGINE=InnoDB")
            .await?;
        db.exec("INSERT INTO docs (body) VALUES ('hello world'), ('foo bar')")
            .await?;
        let mut app = Releases(|release| {
            let col = if release < 2 { "body" } else { "content" };
            vec![format!("INSERT INTO docs ({col}) VALUES ('hello again')")]
        });
        refused_or_works(
            &db,
            "  - rename_column: { table: docs, from: body, to: content }\n",
            &["docs"],
            "docs_ft",
            &mut app,
            &["SELECT count(*) FROM docs WHERE MATCH (content) AGAINST ('hello')"],
        )
        .await
    })
    .await;
}

/// SQLite `acc(…, kind text, CHECK (amount >= 0 OR kind = 'refund'))` (or
/// `UNIQUE (tenant, kind)`), `drop_column kind`: planned without a word;
/// deploy 1 (the app stops using `kind`) goes out, then the IRREVERSIBLE
/// deploy 2 fails every time ("error in table acc after drop column: no
/// such column: kind"): SQLite's DROP COLUMN refuses a column named in a
/// table CHECK or a UNIQUE constraint. The plan can never finish. Right:
/// refused at plan time naming the constraint (or carried by a rebuild).
#[tokio::test]
async fn break2_sqlite_drop_column_named_by_table_check_or_unique() {
    for constraint in [
        "CHECK (amount >= 0 OR kind = 'refund')",
        "UNIQUE (tenant, kind)",
    ] {
        with_sqlite(|db| async move {
            db.exec(&format!(
                "CREATE TABLE acc (id integer PRIMARY KEY, kind text, amount int, tenant text, {constraint}); \
                 INSERT INTO acc (kind, amount, tenant) VALUES ('a', 1, 't'), ('b', 2, 't')"
            ))
            .await?;
            let mut app = Releases(|release| {
                if release == 0 {
                    vec!["INSERT INTO acc (kind, amount, tenant) VALUES ('c', 3, 'u')".to_string()]
                } else {
                    vec!["INSERT INTO acc (amount, tenant) VALUES (4, 'v')".to_string()]
                }
            });
            refused_or_works(
                &db,
                "  - drop_column: { table: acc, column: kind }\n",
                &["acc"],
                "kind",
                &mut app,
                &["INSERT INTO acc (amount) VALUES (5)"],
            )
            .await
        })
        .await;
    }
}

// ---------------------------------------------------------------------------
// Tried and right today
// ---------------------------------------------------------------------------

/// GENERATED ALWAYS identity key of a mixed-case table in a schema, renamed:
/// carried (the new column numbers on).
#[tokio::test]
async fn break2_pg_identity_always_mixed_case_schema_rename() {
    with_postgres(|db| async move {
        db.exec(
            "CREATE SCHEMA billing; \
             CREATE TABLE billing.\"Invoices\" (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \"Total\" numeric(10,2) NOT NULL DEFAULT 0); \
             INSERT INTO billing.\"Invoices\" (\"Total\") SELECT g FROM generate_series(1, 20) g",
        )
        .await?;
        let plan = plan_live(
            &db,
            "  - rename_column: { table: billing.Invoices, from: id, to: invoice_id }\n",
            &["billing.Invoices"],
        )
        .await?;
        let mut app =
            Releases(|_| vec!["INSERT INTO billing.\"Invoices\" (\"Total\") VALUES (5)".to_string()]);
        roll_out(&db, &plan, &mut app).await?;
        db.exec("INSERT INTO billing.\"Invoices\" (\"Total\") VALUES (6)")
            .await?;
        check(
            db.scalar("SELECT count(DISTINCT invoice_id) FROM billing.\"Invoices\"")
                .await?
                == db
                    .scalar("SELECT count(*) FROM billing.\"Invoices\"")
                    .await?,
            "invoice ids stay distinct",
        )
    })
    .await;
}

/// Composite primary key plus a DEFERRABLE INITIALLY DEFERRED unique
/// constraint on the renamed column: the constraint is carried deferrable.
#[tokio::test]
async fn break2_pg_deferrable_unique_with_composite_key_rename() {
    with_postgres(|db| async move {
        db.exec(
            "CREATE TABLE items (tenant_id int NOT NULL, id int NOT NULL, code text NOT NULL, \
               PRIMARY KEY (tenant_id, id), CONSTRAINT items_code_key UNIQUE (code) DEFERRABLE INITIALLY DEFERRED); \
             INSERT INTO items SELECT 1, g, 'c' || g FROM generate_series(1, 20) g",
        )
        .await?;
        let plan = plan_live(
            &db,
            "  - rename_column: { table: items, from: code, to: sku }\n",
            &["items"],
        )
        .await?;
        let mut app = Releases(|release| {
            let col = if release < 2 { "code" } else { "sku" };
            vec![format!(
                "INSERT INTO items (tenant_id, id, {col}) SELECT 1, max(id) + 1, 'n{release}-' || md5(random()::text) FROM items"
            )]
        });
        roll_out(&db, &plan, &mut app).await?;
        // A swap that only works while the constraint is deferred.
        db.exec_in_transaction(
            "UPDATE items SET sku = 'c2' WHERE id = 1; UPDATE items SET sku = 'c1' WHERE id = 2",
        )
        .await?;
        check(
            db.scalar(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'items'::regclass AND contype = 'u' AND condeferrable AND condeferred",
            )
            .await?
                == 1,
            "the unique constraint stays deferrable, initially deferred",
        )
    })
    .await;
}

/// Two renames and a widening type change on one table in one plan, every
/// column with a default: carried.
#[tokio::test]
async fn break2_pg_several_changes_on_one_table() {
    with_postgres(|db| async move {
        db.exec(
            "CREATE TABLE people (id bigserial PRIMARY KEY, fname text NOT NULL DEFAULT '', lname text, age smallint NOT NULL DEFAULT 0); \
             INSERT INTO people (fname, lname, age) SELECT 'f' || g, 'l' || g, g FROM generate_series(1, 20) g",
        )
        .await?;
        let plan = plan_live(
            &db,
            "  - rename_column: { table: people, from: fname, to: first_name }\n  - rename_column: { table: people, from: lname, to: last_name }\n  - change_column_type: { table: people, column: age, type: integer }\n",
            &["people"],
        )
        .await?;
        let mut app = Releases(|_| vec!["INSERT INTO people DEFAULT VALUES".to_string()]);
        roll_out(&db, &plan, &mut app).await?;
        db.exec("INSERT INTO people DEFAULT VALUES").await?;
        check(
            db.scalar("SELECT count(*) FROM people WHERE first_name IS NULL OR age_new IS NULL")
                .await?
                == 0,
            "defaults still fill first_name and age_new",
        )
    })
    .await;
}

/// A `BEGIN ATOMIC` SQL function reading the column (recorded in pg_depend):
/// the rename is refused naming the function.
#[tokio::test]
async fn break2_pg_begin_atomic_function_is_refused() {
    with_postgres(|db| async move {
        db.exec(
            "CREATE TABLE geo (id bigserial PRIMARY KEY, label text); \
             INSERT INTO geo (label) SELECT 'l' || g FROM generate_series(1, 20) g; \
             CREATE FUNCTION first_label() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT label FROM geo ORDER BY id LIMIT 1; END",
        )
        .await?;
        let mut app = Releases(|_| Vec::new());
        refused_or_works(
            &db,
            "  - rename_column: { table: geo, from: label, to: title }\n",
            &["geo"],
            "first_label",
            &mut app,
            &["SELECT first_label()"],
        )
        .await
    })
    .await;
}

/// MariaDB: decimal scale widening with a comment and a default, beside an
/// ON UPDATE timestamp, and enum → varchar with a default: carried.
#[tokio::test]
async fn break2_mysql_decimal_and_enum_type_changes() {
    with_mysql(|db| async move {
        db.exec(
            "CREATE TABLE orders (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, \
               status enum('new','paid') NOT NULL DEFAULT 'new', \
               amount decimal(10,2) NOT NULL DEFAULT 0.00 COMMENT 'money', \
               updated timestamp NOT NULL DEFAULT current_timestamp ON UPDATE current_timestamp)",
        )
        .await?;
        db.exec("INSERT INTO orders (amount) VALUES (1.5), (2.25), (3)")
            .await?;
        let plan = plan_live(
            &db,
            "  - change_column_type: { table: orders, column: amount, type: \"decimal(12,4)\" }\n  - change_column_type: { table: orders, column: status, type: \"varchar(10)\" }\n",
            &["orders"],
        )
        .await?;
        let mut app = Releases(|_| vec!["INSERT INTO orders () VALUES ()".to_string()]);
        roll_out(&db, &plan, &mut app).await?;
        db.exec("INSERT INTO orders () VALUES ()").await?;
        check(
            db.text("SELECT column_comment FROM information_schema.columns WHERE table_schema = database() AND table_name = 'orders' AND column_name = 'amount_new'")
                .await?
                .as_deref()
                == Some("money"),
            "the comment follows the type change",
        )?;
        check(
            db.scalar("SELECT count(*) FROM orders WHERE status_new IS NULL OR status_new <> 'new'")
                .await?
                == 0,
            "status_new keeps the default 'new'",
        )
    })
    .await;
}
