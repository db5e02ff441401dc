//! Schema fidelity: everything that hangs on a column survives a rename,
//! type change or drop, or the plan is refused before anything runs.
//!
//! Each test builds a table the way teams have them (serial keys, identity,
//! json, triggers, views, comments, column grants, `ON UPDATE` timestamps,
//! policies, generated columns), plans against the live schema, and either
//! rolls the plan out phase by phase with both releases' queries running
//! (inserts that let the database supply the key, the timestamp, the
//! default) or checks the refusal names the object, with the schema
//! untouched.

mod common;
mod executor_support;

use common::outcomes::{Releases, assert_refused, check};
use common::{TestDb, TestResult, plan_live, roll_out, with_mysql, with_postgres, with_sqlite};

// ---------------------------------------------------------------------------
// Sequences and identity (Postgres)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn serial_key_rename_hands_the_sequence_to_the_new_column() {
    with_postgres(|db| async move {
        db.exec("CREATE TABLE shelves (id serial PRIMARY KEY, label text NOT NULL)")
            .await?;
        db.exec("INSERT INTO shelves (label) SELECT 'l' || i FROM generate_series(1, 500) i")
            .await?;
        let plan = plan_live(
            &db,
            "  - rename_column: { table: shelves, from: id, to: shelf_id }\n",
            &["shelves"],
        )
        .await?;
        let mut app = Releases(|release| {
            // Every release lets the database pick the key.
            vec![if release < 2 {
                "INSERT INTO shelves (label) VALUES ('old release')".to_string()
            } else {
                "INSERT INTO shelves (label) VALUES ('new release')".to_string()
            }]
        });
        roll_out(&db, &plan, &mut app).await?;
        db.exec("INSERT INTO shelves (label) VALUES ('after')")
            .await?;
        check(
            db.text("SELECT pg_get_serial_sequence('shelves', 'shelf_id')")
                .await?
                .as_deref()
                == Some("public.shelves_id_seq"),
            "the sequence must be owned by shelf_id",
        )?;
        check(
            db.scalar("SELECT count(DISTINCT shelf_id) FROM shelves")
                .await?
                == db.scalar("SELECT count(*) FROM shelves").await?,
            "every row keeps a distinct key",
        )?;
        check(
            db.scalar("SELECT max(shelf_id)::bigint FROM shelves")
                .await?
                >= 505,
            "new keys continue the sequence",
        )?;
        db.assert_fails(
            "INSERT INTO shelves (shelf_id, label) VALUES (1, 'dup')",
            "duplicate",
        )
        .await
    })
    .await;
}

#[tokio::test]
async fn serial_key_type_change_keeps_numbering_and_widens_the_sequence() {
    with_postgres(|db| async move {
        db.exec("CREATE TABLE people (id serial PRIMARY KEY, name text)")
            .await?;
        db.exec("INSERT INTO people (name) SELECT 'p' || i FROM generate_series(1, 300) i")
            .await?;
        let plan = plan_live(
            &db,
            "  - change_column_type: { table: people, column: id, type: bigint }\n",
            &["people"],
        )
        .await?;
        let mut app = Releases(|_| vec!["INSERT INTO people (name) VALUES ('x')".to_string()]);
        roll_out(&db, &plan, &mut app).await?;
        db.exec("INSERT INTO people (name) VALUES ('after')").await?;
        check(
            db.text("SELECT data_type FROM information_schema.sequences WHERE sequence_name = 'people_id_seq'")
                .await?
                .as_deref()
                == Some("bigint"),
            "the sequence is widened to bigint",
        )?;
        check(
            db.text("SELECT pg_get_serial_sequence('people', 'id_new')")
                .await?
                .is_some(),
            "the sequence is owned by id_new",
        )?;
        check(
            db.scalar("SELECT count(*) FROM people WHERE id_new IS NULL").await? == 0,
            "every row has a key",
        )?;
        check(
            db.text("SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = 'people'::regclass AND i.indisprimary")
                .await?
                .as_deref()
                == Some("id_new"),
            "id_new is the primary key",
        )
    })
    .await;
}

#[tokio::test]
async fn identity_key_rename_numbers_on() {
    with_postgres(|db| async move {
        db.exec("CREATE TABLE accounts (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text)")
            .await?;
        db.exec("INSERT INTO accounts (name) SELECT 'a' || i FROM generate_series(1, 200) i")
            .await?;
        let plan = plan_live(
            &db,
            "  - rename_column: { table: accounts, from: id, to: account_id }\n",
            &["accounts"],
        )
        .await?;
        let mut app = Releases(|_| vec!["INSERT INTO accounts (name) VALUES ('x')".to_string()]);
        roll_out(&db, &plan, &mut app).await?;
        db.exec("INSERT INTO accounts (name) VALUES ('after')").await?;
        check(
            db.text("SELECT attidentity::text FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'account_id'")
                .await?
                .as_deref()
                == Some("a"),
            "account_id is GENERATED ALWAYS AS IDENTITY",
        )?;
        check(
            db.scalar("SELECT count(DISTINCT account_id) FROM accounts").await?
                == db.scalar("SELECT count(*) FROM accounts").await?,
            "keys stay distinct after the identity moved",
        )
    })
    .await;
}

#[tokio::test]
async fn dropping_a_serial_column_notes_its_sequence() {
    with_postgres(|db| async move {
        db.exec("CREATE TABLE tickets (id bigint PRIMARY KEY, seq serial)")
            .await?;
        let plan = plan_live(
            &db,
            "  - drop_column: { table: tickets, column: seq }\n",
            &["tickets"],
        )
        .await?;
        check(
            plan.notes
                .iter()
                .any(|n| n.text.contains("tickets_seq_seq")),
            "drop_column notes the owned sequence",
        )
    })
    .await;
}

// ---------------------------------------------------------------------------
// Types without equality (Postgres)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn json_column_rename_compares_as_text() {
    with_postgres(|db| async move {
        db.exec("CREATE TABLE widgets (id bigint PRIMARY KEY, settings json, shape point)")
            .await?;
        db.exec("INSERT INTO widgets SELECT i, json_build_object('n', i), point(i, i) FROM generate_series(1, 400) i")
            .await?;
        for (from, to) in [("settings", "config"), ("shape", "position")] {
            let plan = plan_live(
                &db,
                &format!("  - rename_column: {{ table: widgets, from: {from}, to: {to} }}\n"),
                &["widgets"],
            )
            .await?;
            let (from, to) = (from.to_string(), to.to_string());
            let mut app = Releases(move |release| {
                let col = if release < 2 { &from } else { &to };
                vec![format!(
                    "UPDATE widgets SET {col} = {col} WHERE id % 7 = {release}"
                )]
            });
            roll_out(&db, &plan, &mut app).await?;
        }
        check(
            db.scalar("SELECT count(*) FROM widgets WHERE config IS NULL OR position IS NULL")
                .await?
                == 0,
            "every value was carried",
        )
    })
    .await;
}

// ---------------------------------------------------------------------------
// Triggers, views, policies, generated columns, publications (refused)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn postgres_user_trigger_on_the_column_is_refused() {
    with_postgres(|db| async move {
        db.exec("CREATE TABLE logins (id bigint PRIMARY KEY, handle text, email text)")
            .await?;
        db.exec(
            "CREATE FUNCTION logins_lower() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN NEW.handle := lower(NEW.handle); RETURN NEW; END $$; \
             CREATE TRIGGER logins_lower BEFORE INSERT OR UPDATE ON logins \
             FOR EACH ROW EXECUTE FUNCTION logins_lower()",
        )
        .await?;
        assert_refused(
            &db,
            "  - rename_column: { table: logins, from: handle, to: login }\n",
            &["logins"],
            &["trigger logins_lower", "handle", "Way forward"],
        )
        .await?;
        assert_refused(
            &db,
            "  - drop_column: { table: logins, column: handle }\n",
            &["logins"],
            &["trigger logins_lower"],
        )
        .await?;
        // A column the trigger does not use is planned, with a note for the backfill.
        let plan = plan_live(
            &db,
            "  - rename_column: { table: logins, from: email, to: mail }\n",
            &["logins"],
        )
        .await?;
        check(
            plan.notes
                .iter()
                .any(|n| n.text.contains("logins_lower") && n.text.contains("backfill")),
            "an UPDATE trigger is noted for the backfill",
        )
    })
    .await;
}

#[tokio::test]
async fn postgres_views_policies_rules_publications_and_generated_columns_are_refused() {
    with_postgres(|db| async move {
        db.exec(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text, price int, owner text, \
                                 sku text, doubled int GENERATED ALWAYS AS (price * 2) STORED, code text)",
        )
        .await?;
        db.exec("CREATE VIEW item_names AS SELECT id, name FROM items").await?;
        db.exec("CREATE MATERIALIZED VIEW item_skus AS SELECT sku FROM items").await?;
        db.exec("ALTER TABLE items ENABLE ROW LEVEL SECURITY; CREATE POLICY own ON items USING (owner = current_user)")
            .await?;
        db.exec("CREATE RULE log_code AS ON UPDATE TO items WHERE NEW.code IS NULL DO INSTEAD NOTHING")
            .await?;
        for (column, needles) in [
            ("name", vec!["view item_names"]),
            ("sku", vec!["materialized view item_skus"]),
            ("owner", vec!["policy own"]),
            ("price", vec!["generated column items.doubled"]),
            ("code", vec!["rule log_code"]),
        ] {
            assert_refused(
                &db,
                &format!("  - drop_column: {{ table: items, column: {column} }}\n"),
                &["items"],
                &needles,
            )
            .await?;
            assert_refused(
                &db,
                &format!("  - rename_column: {{ table: items, from: {column}, to: {column}_2 }}\n"),
                &["items"],
                &needles,
            )
            .await?;
        }
        // The generated column itself cannot be copied.
        assert_refused(
            &db,
            "  - rename_column: { table: items, from: doubled, to: twice }\n",
            &["items"],
            &["generated column", "doubled"],
        )
        .await
    })
    .await;
}

#[tokio::test]
async fn postgres_comment_grant_and_statistics_follow_the_rename() {
    with_postgres(|db| async move {
        let role = format!("{}_reader", db.name);
        db.exec("CREATE TABLE notes (id bigint PRIMARY KEY, body text, tag text)")
            .await?;
        db.exec("INSERT INTO notes SELECT i, 'b' || i, 't' FROM generate_series(1, 100) i")
            .await?;
        db.exec("COMMENT ON COLUMN notes.body IS 'what the user wrote, it''s markdown'")
            .await?;
        db.exec(&format!("CREATE ROLE {} NOLOGIN", db.ident(&role))).await?;
        db.exec(&format!(
            "GRANT SELECT (id, body) ON notes TO {}; GRANT UPDATE (body) ON notes TO {} WITH GRANT OPTION",
            db.ident(&role),
            db.ident(&role)
        ))
        .await?;
        db.exec("CREATE STATISTICS notes_body_tag ON body, tag FROM notes").await?;
        let result = async {
            let plan = plan_live(
                &db,
                "  - rename_column: { table: notes, from: body, to: content }\n",
                &["notes"],
            )
            .await?;
            check(
                plan.notes.iter().any(|n| n.text.contains("notes_body_tag")),
                "the statistics object is noted",
            )?;
            let mut app = Releases(|_| Vec::new());
            roll_out(&db, &plan, &mut app).await?;
            check(
                db.text("SELECT col_description('notes'::regclass, (SELECT attnum FROM pg_attribute WHERE attrelid = 'notes'::regclass AND attname = 'content'))")
                    .await?
                    .as_deref()
                    == Some("what the user wrote, it's markdown"),
                "the comment is carried",
            )?;
            for privilege in ["SELECT", "UPDATE"] {
                check(
                    db.scalar(&format!(
                        "SELECT has_column_privilege('{role}', 'notes', 'content', '{privilege}')::int::int8"
                    ))
                    .await?
                        == 1,
                    format!("{privilege} on content is granted"),
                )?;
            }
            check(
                db.scalar(&format!(
                    "SELECT count(*) FROM information_schema.column_privileges WHERE grantee = '{role}' AND column_name = 'content' AND privilege_type = 'UPDATE' AND is_grantable = 'YES'"
                ))
                .await?
                    == 1,
                "WITH GRANT OPTION is kept",
            )
        }
        .await;
        db.exec(&format!(
            "DROP OWNED BY {r}; DROP ROLE {r}",
            r = db.ident(&role)
        ))
        .await?;
        result
    })
    .await;
}

// ---------------------------------------------------------------------------
// MySQL / MariaDB
// ---------------------------------------------------------------------------

#[tokio::test]
async fn mysql_on_update_timestamp_survives_the_rename() {
    with_mysql(|db| async move {
        db.exec(
            "CREATE TABLE docs (id bigint PRIMARY KEY, title varchar(50), \
             modified timestamp(6) NOT NULL DEFAULT current_timestamp(6) ON UPDATE current_timestamp(6) COMMENT 'last change')",
        )
        .await?;
        db.exec("INSERT INTO docs (id, title) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            .await?;
        db.exec("UPDATE docs SET modified = '2000-01-01 00:00:00'").await?;
        let plan = plan_live(
            &db,
            "  - rename_column: { table: docs, from: modified, to: changed_at }\n",
            &["docs"],
        )
        .await?;
        let mut app = Releases(|release| {
            // The database supplies the timestamp.
            vec![format!(
                "INSERT INTO docs (id, title) SELECT MAX(id) + 1, 'release {release}' FROM docs"
            )]
        });
        roll_out(&db, &plan, &mut app).await?;
        let extra = db
            .text("SELECT CAST(EXTRA AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'docs' AND COLUMN_NAME = 'changed_at'")
            .await?
            .unwrap_or_default();
        check(
            extra.to_lowercase().contains("on update current_timestamp"),
            format!("ON UPDATE is kept; EXTRA is {extra:?}"),
        )?;
        check(
            db.text("SELECT CAST(COLUMN_COMMENT AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'docs' AND COLUMN_NAME = 'changed_at'")
                .await?
                .as_deref()
                == Some("last change"),
            "the comment is kept",
        )?;
        db.exec("UPDATE docs SET title = 'moved' WHERE id = 1").await?;
        check(
            db.scalar("SELECT CAST(YEAR(changed_at) AS SIGNED) FROM docs WHERE id = 1")
                .await?
                > 2000,
            "the timestamp still moves on update",
        )
    })
    .await;
}

#[tokio::test]
async fn mysql_triggers_views_and_generated_columns_are_refused() {
    with_mysql(|db| async move {
        db.exec(
            "CREATE TABLE people (id bigint PRIMARY KEY, handle varchar(40), email varchar(80), \
             first varchar(20), full_name varchar(60) AS (CONCAT(first, '!')) VIRTUAL)",
        )
        .await?;
        db.exec("CREATE TRIGGER people_lower BEFORE INSERT ON people FOR EACH ROW SET NEW.handle = LOWER(NEW.handle)")
            .await?;
        db.exec("CREATE VIEW people_emails AS SELECT id, email FROM people")
            .await?;
        for (column, needle) in [
            ("handle", "trigger people_lower"),
            ("email", "people_emails"),
            ("first", "generated column"),
        ] {
            assert_refused(
                &db,
                &format!("  - drop_column: {{ table: people, column: {column} }}\n"),
                &["people"],
                &[needle],
            )
            .await?;
            assert_refused(
                &db,
                &format!("  - rename_column: {{ table: people, from: {column}, to: {column}_2 }}\n"),
                &["people"],
                &[needle],
            )
            .await?;
        }
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_triggers_and_views_are_refused() {
    with_sqlite(|db| async move {
        db.exec("CREATE TABLE people (id INTEGER PRIMARY KEY, handle TEXT, email TEXT, note TEXT)")
            .await?;
        db.exec(
            "CREATE TRIGGER people_lower AFTER INSERT ON people BEGIN \
             UPDATE people SET handle = lower(NEW.handle) WHERE id = NEW.id; END",
        )
        .await?;
        db.exec("CREATE VIEW people_emails AS SELECT id, email FROM people")
            .await?;
        assert_refused(
            &db,
            "  - rename_column: { table: people, from: handle, to: login }\n",
            &["people"],
            &["trigger people_lower"],
        )
        .await?;
        assert_refused(
            &db,
            "  - drop_column: { table: people, column: email }\n",
            &["people"],
            &["view people_emails"],
        )
        .await?;
        // A column nothing uses still plans (the trigger is AFTER INSERT: no backfill note).
        let plan = plan_live(
            &db,
            "  - drop_column: { table: people, column: note }\n",
            &["people"],
        )
        .await?;
        check(!plan.phases.is_empty(), "the drop is planned")
    })
    .await;
}

#[tokio::test]
async fn mysql_column_grants_follow_the_rename_and_auto_increment_is_refused() {
    with_mysql(|db| async move {
        let user = format!("{}_r", &db.name[db.name.len().saturating_sub(20)..]);
        db.exec("CREATE TABLE notes (id bigint PRIMARY KEY, body varchar(200), seq int NOT NULL AUTO_INCREMENT, UNIQUE KEY (seq))")
            .await?;
        db.exec("INSERT INTO notes (id, body) VALUES (1, 'a'), (2, 'b')").await?;
        db.exec(&format!("CREATE USER '{user}'@'localhost'")).await?;
        let result = async {
            db.exec(&format!(
                "GRANT SELECT (id, body), UPDATE (body) ON notes TO '{user}'@'localhost'"
            ))
            .await?;
            assert_refused(
                &db,
                "  - rename_column: { table: notes, from: seq, to: position }\n",
                &["notes"],
                &["AUTO_INCREMENT"],
            )
            .await?;
            let plan = plan_live(
                &db,
                "  - rename_column: { table: notes, from: body, to: content }\n",
                &["notes"],
            )
            .await?;
            let mut app = Releases(|_| Vec::new());
            roll_out(&db, &plan, &mut app).await?;
            for privilege in ["SELECT", "UPDATE"] {
                check(
                    db.scalar(&format!(
                        "SELECT COUNT(*) FROM information_schema.COLUMN_PRIVILEGES \
                          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'notes' AND COLUMN_NAME = 'content' \
                            AND PRIVILEGE_TYPE = '{privilege}' AND GRANTEE LIKE '%{user}%'"
                    ))
                    .await?
                        == 1,
                    format!("{privilege} (content) is granted"),
                )?;
            }
            Ok(())
        }
        .await;
        db.exec(&format!("DROP USER '{user}'@'localhost'")).await?;
        result
    })
    .await;
}

#[tokio::test]
async fn postgres_publication_column_list_is_refused() {
    with_postgres(|db| async move {
        db.exec("CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload text)")
            .await?;
        let publication = format!("{}_pub", db.name);
        db.exec(&format!(
            "CREATE PUBLICATION {} FOR TABLE events (id, kind)",
            db.ident(&publication)
        ))
        .await?;
        let result = assert_refused(
            &db,
            "  - drop_column: { table: events, column: kind }\n",
            &["events"],
            &[&format!("publication {publication}"), "ALTER PUBLICATION"],
        )
        .await;
        db.exec(&format!("DROP PUBLICATION {}", db.ident(&publication)))
            .await?;
        result
    })
    .await;
}

#[tokio::test]
async fn sqlite_generated_columns_are_refused() {
    with_sqlite(|db| async move {
        db.exec("CREATE TABLE prices (id INTEGER PRIMARY KEY, net INTEGER, gross INTEGER GENERATED ALWAYS AS (net * 2) VIRTUAL)")
            .await?;
        assert_refused(
            &db,
            "  - drop_column: { table: prices, column: net }\n",
            &["prices"],
            &["generated column prices.gross"],
        )
        .await?;
        assert_refused(
            &db,
            "  - rename_column: { table: prices, from: gross, to: total }\n",
            &["prices"],
            &["generated column"],
        )
        .await
    })
    .await;
}

// ---------------------------------------------------------------------------
// Through the binary: `apply` refuses before any DDL
// ---------------------------------------------------------------------------

/// `phasegate apply` of a plan that drops a column a view uses exits 2,
/// names the view, and changes nothing (the column is still there).
async fn apply_refuses_before_any_ddl(db: TestDb) -> TestResult {
    db.exec(&format!(
        "CREATE TABLE items (id {} PRIMARY KEY, name {}, price int)",
        db.pick3("bigint", "INTEGER", "bigint"),
        db.pick3("text", "TEXT", "varchar(40)")
    ))
    .await?;
    db.exec("INSERT INTO items (id, name, price) VALUES (1, 'a', 2)")
        .await?;
    db.exec("CREATE VIEW item_names AS SELECT id, name FROM items")
        .await?;
    let plan = "name: drop-items-name\nchanges:\n  - drop_column: { table: items, column: name }\n";
    let project = executor_support::Project::new(&db, &[], "drop-items-name", plan)?;
    let before = db.schema().await?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .arg("--config")
        .arg(project.config_path())
        .args(["apply", "--env", executor_support::ENV, "drop-items-name"])
        .current_dir(&project.dir)
        .stdin(std::process::Stdio::null())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    check(
        out.status.code() == Some(2),
        format!("apply must exit 2, got {:?}:\n{text}", out.status.code()),
    )?;
    check(
        text.contains("item_names") && text.contains("Way forward"),
        format!("the refusal names the view and the way forward:\n{text}"),
    )?;
    let after: Vec<String> = db
        .schema()
        .await?
        .into_iter()
        .filter(|l| !l.contains("phasegate_"))
        .collect();
    let before: Vec<String> = before
        .into_iter()
        .filter(|l| !l.contains("phasegate_"))
        .collect();
    check(before == after, "the schema is unchanged")?;
    check(
        db.has_column("items", "name").await?,
        "the column is still there",
    )
}

#[tokio::test]
async fn apply_refuses_a_view_dependency_before_any_ddl_on_postgres() {
    with_postgres(apply_refuses_before_any_ddl).await;
}

#[tokio::test]
async fn apply_refuses_a_view_dependency_before_any_ddl_on_mysql() {
    with_mysql(apply_refuses_before_any_ddl).await;
}

#[tokio::test]
async fn apply_refuses_a_view_dependency_before_any_ddl_on_sqlite() {
    with_sqlite(apply_refuses_before_any_ddl).await;
}

#[tokio::test]
async fn mysql_a_second_auto_increment_column_is_refused() {
    with_mysql(|db| async move {
        db.exec("CREATE TABLE orders (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, total int)")
            .await?;
        db.exec("INSERT INTO orders (total) VALUES (1), (2)")
            .await?;
        assert_refused(
            &db,
            "  - add_column: { table: orders, column: seq_no, type: serial }\n",
            &["orders"],
            &["orders.id is already AUTO_INCREMENT", "Way forward"],
        )
        .await
    })
    .await;
}
