//! The `phasegate` binary, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch project folder, removed when dropped.
struct Project(PathBuf);

impl Project {
    fn new() -> Project {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phasegate-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(dir.join("plans")).expect("create scratch project");
        Project(dir)
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.0.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(p, text).expect("write file");
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_phasegate"))
            .args(args)
            .current_dir(&self.0)
            .output()
            .expect("run phasegate")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "phasegate failed: {}", stderr(o));
    serde_json::from_str(&stdout(o)).expect("plan --format json prints JSON")
}

#[test]
fn the_readme_command_plans_a_rename_in_three_deploys() {
    let p = Project::new();
    let o = p.run(&["plan", "rename", "users.name", "full_name"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("3 deploys"), "{out}");
    assert!(out.contains("Deploy 3 of 3 (IRREVERSIBLE)"), "{out}");
    assert!(out.contains("Read and write full_name only"), "{out}");
}

#[test]
fn json_follows_the_contract() {
    let p = Project::new();
    let v = json(&p.run(&[
        "plan",
        "rename",
        "users.name",
        "full_name",
        "--format",
        "json",
        "--dialect",
        "sqlite",
    ]));
    assert_eq!(v["name"], "rename-users-name-to-full-name");
    assert_eq!(v["dialect"], "sqlite");
    let phases = v["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 3);
    assert_eq!(
        phases
            .iter()
            .map(|p| p["number"].as_u64())
            .collect::<Vec<_>>(),
        vec![Some(1), Some(2), Some(3)]
    );
    assert_eq!(phases[2]["reversible"], false);
    let mut ids = Vec::new();
    for phase in phases {
        for step in phase["steps"].as_array().expect("steps") {
            for field in [
                "id",
                "kind",
                "description",
                "sql",
                "rollback_sql",
                "transactional",
                "depends_on",
            ] {
                assert!(step.get(field).is_some(), "step lacks {field}: {step}");
            }
            let kind = step["kind"].as_str().expect("kind");
            assert!(["migration", "backfill", "verify", "app"].contains(&kind));
            assert_eq!(step["sql"].is_null(), kind == "app", "{step}");
            for dep in step["depends_on"].as_array().expect("depends_on") {
                assert!(
                    ids.contains(dep),
                    "{dep} comes after the step that depends on it"
                );
            }
            ids.push(step["id"].clone());
        }
    }
}

#[test]
fn every_format_renders() {
    let p = Project::new();
    let cases = [
        ("text", "Deploy 1 of 3"),
        ("markdown", "# Runbook: rename-users-name-to-full-name"),
        ("mermaid", "flowchart TD"),
        ("dot", "digraph {"),
        ("sql", "BEGIN;"),
        ("json", "\"phases\""),
    ];
    for (format, marker) in cases {
        let o = p.run(&[
            "plan",
            "rename",
            "users.name",
            "full_name",
            "--format",
            format,
        ]);
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        assert!(
            stdout(&o).contains(marker),
            "{format} output lacks {marker:?}:\n{}",
            stdout(&o)
        );
    }
    let md = stdout(&p.run(&[
        "plan",
        "rename",
        "users.name",
        "full_name",
        "--format",
        "markdown",
    ]));
    assert!(
        md.contains("```sql") && md.contains("**Rollback:**") && md.contains("cannot be undone"),
        "{md}"
    );
}

#[test]
fn misspelt_kind_points_at_the_line_and_suggests() {
    let p = Project::new();
    p.write(
        "plans/bad.yaml",
        "name: bad\nchanges:\n  - rename_colum: { table: users, from: a, to: b }\n",
    );
    let o = p.run(&["plan", "bad"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("plans/bad.yaml:3:5"), "{err}");
    assert!(err.contains("did you mean `rename_column`?"), "{err}");
    assert!(err.contains("3 |   - rename_colum"), "{err}");
}

#[test]
fn misspelt_field_missing_field_and_bad_yaml_are_exit_2() {
    let p = Project::new();
    p.write(
        "plans/f.yaml",
        "changes:\n  - drop_column: { tabel: users, column: x }\n",
    );
    p.write(
        "plans/m.yaml",
        "changes:\n  - drop_column: { table: users }\n",
    );
    p.write("plans/y.yaml", "changes:\n  - drop_column: [\n");
    let f = p.run(&["plan", "plans/f.yaml"]);
    assert_eq!(f.status.code(), Some(2));
    assert!(
        stderr(&f).contains("unknown field `tabel`, did you mean `table`?"),
        "{}",
        stderr(&f)
    );
    let m = p.run(&["plan", "m"]);
    assert_eq!(m.status.code(), Some(2));
    assert!(
        stderr(&m).contains("missing field `column`"),
        "{}",
        stderr(&m)
    );
    let y = p.run(&["plan", "y"]);
    assert_eq!(y.status.code(), Some(2));
    assert!(stderr(&y).contains("plans/y.yaml:"), "{}", stderr(&y));
}

#[test]
fn unknown_plan_lists_the_known_ones() {
    let p = Project::new();
    p.write(
        "plans/rename-users.yaml",
        "changes:\n  - drop_table: { table: t }\n",
    );
    let o = p.run(&["plan", "rename-user"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("did you mean `rename-users`?")
            && err.contains("plans under plans/: rename-users"),
        "{err}"
    );
}

#[test]
fn unknown_dialect_and_format_are_refused_with_a_suggestion() {
    let p = Project::new();
    let o = p.run(&[
        "plan",
        "rename",
        "users.name",
        "full_name",
        "--dialect",
        "postgress",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("did you mean `postgres`?"),
        "{}",
        stderr(&o)
    );
    let o = p.run(&[
        "plan",
        "rename",
        "users.name",
        "full_name",
        "--format",
        "jsn",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("did you mean `json`?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn write_saves_the_shorthand_as_a_plan_file_once() {
    let p = Project::new();
    let from_shorthand = json(&p.run(&[
        "plan",
        "rename",
        "users.name",
        "full_name",
        "--write",
        "--format",
        "json",
    ]));
    let saved = p.0.join("plans/rename-users-name-to-full-name.yaml");
    assert!(saved.is_file());
    let from_file = json(&p.run(&["plan", "rename-users-name-to-full-name", "--format", "json"]));
    assert_eq!(from_shorthand, from_file);
    let again = p.run(&["plan", "rename", "users.name", "full_name", "--write"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn every_shorthand_builds_its_intent() {
    let p = Project::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "add-column",
                "users.email",
                "text",
                "--not-null",
                "--backfill",
                "''",
            ],
            "add_column users.email text NOT NULL",
        ),
        (
            &["change-type", "orders.amount", "bigint"],
            "change_column_type orders.amount → bigint",
        ),
        (&["drop-column", "users.legacy"], "drop_column users.legacy"),
        (
            &["rename-table", "billing.invoices", "bills"],
            "rename_table billing.invoices → bills",
        ),
        (
            &["add-index", "users", "email,tenant_id", "--unique"],
            "add_index users(email, tenant_id)",
        ),
        (
            &[
                "add-foreign-key",
                "orders.user_id",
                "users.id",
                "--on-delete",
                "cascade",
            ],
            "add_foreign_key orders(user_id) → users(id)",
        ),
        (&["set-not-null", "users.email"], "set_not_null users.email"),
        (
            &["add-check", "orders", "amount_positive", "amount > 0"],
            "add_check orders amount_positive",
        ),
        (&["drop-table", "audit_log"], "drop_table audit_log"),
        (
            &["rename", "users.name", "full_name", "--sync", "app"],
            "rename_column users.name → full_name",
        ),
    ];
    for (args, change) in cases {
        let mut all = vec!["plan"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "json"]);
        let v = json(&p.run(&all));
        assert_eq!(v["changes"][0], *change, "{args:?}");
    }
    // drop-column --down is saved with the plan.
    let out = p.run(&[
        "plan",
        "drop-column",
        "users.legacy",
        "--down",
        "'gone'",
        "--write",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let saved = std::fs::read_to_string(p.0.join("plans/drop-users-legacy.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(saved.contains(r#"down: "'gone'""#), "{saved}");
    let bad = p.run(&[
        "plan",
        "add-column",
        "users.email",
        "text; drop table users",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("is not an SQL type"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn independent_changes_pack_into_the_fewest_deploys() {
    let p = Project::new();
    p.write(
        "plans/two.yaml",
        "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n  - rename_column: { table: teams, from: title, to: name }\n",
    );
    let v = json(&p.run(&["plan", "two", "--format", "json"]));
    assert_eq!(v["phases"].as_array().map(Vec::len), Some(3));
}

#[test]
fn contradictory_changes_are_refused() {
    let p = Project::new();
    p.write(
        "plans/c.yaml",
        "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n  - drop_column: { table: users, column: name }\n",
    );
    let o = p.run(&["plan", "c"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("contradict") && err.contains("users.name"),
        "{err}"
    );
}

#[test]
fn project_templates_override_the_built_in_ones() {
    let p = Project::new();
    p.write(
        "templates/postgres/drop_table.sql",
        "{% block drop_table %}DROP TABLE {{ table|ident }} RESTRICT; -- house style{% endblock %}\n",
    );
    let o = p.run(&["plan", "drop-table", "audit_log", "--format", "sql"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("RESTRICT; -- house style"),
        "{}",
        stdout(&o)
    );
    // The other dialect still uses the built-in template.
    let o = p.run(&[
        "plan",
        "drop-table",
        "audit_log",
        "--format",
        "sql",
        "--dialect",
        "sqlite",
    ]);
    assert!(!stdout(&o).contains("house style"));

    p.write(
        "templates/postgres/drop_table.sql",
        "{% block drop_table %}DROP TABLE {{ table }}{% endblock %}\n",
    );
    let o = p.run(&["plan", "drop-table", "audit_log"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unquoted"),
        "an unquoted name must be refused: {}",
        stderr(&o)
    );

    p.write(
        "templates/postgres/drop_table.sql",
        "{% block drop_table %}{{ table|ident }\n",
    );
    let o = p.run(&["plan", "drop-table", "audit_log"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("drop_table.sql"), "{}", stderr(&o));
}

#[test]
fn the_shipped_plans_plan_in_every_dialect() {
    let plans = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let mut count = 0;
    for entry in std::fs::read_dir(&plans).expect("plans/ exists") {
        let path = entry.expect("entry").path();
        for dialect in ["postgres", "sqlite"] {
            let o = Command::new(env!("CARGO_BIN_EXE_phasegate"))
                .args([
                    "plan",
                    &path.display().to_string(),
                    "--dialect",
                    dialect,
                    "--format",
                    "json",
                ])
                .output()
                .expect("run phasegate");
            // SQLite refuses rename_table, with the reason (see docs/intents.md).
            let renames_table = std::fs::read_to_string(&path)
                .expect("read plan")
                .contains("rename_table:");
            if dialect == "sqlite" && renames_table {
                assert_eq!(o.status.code(), Some(2), "{}", path.display());
                assert!(
                    stderr(&o).contains("SQLite cannot rename table"),
                    "{}",
                    stderr(&o)
                );
                continue;
            }
            assert!(
                o.status.success(),
                "{} ({dialect}): {}",
                path.display(),
                stderr(&o)
            );
        }
        count += 1;
    }
    assert!(count >= 8, "expected the example plans, found {count}");
}
