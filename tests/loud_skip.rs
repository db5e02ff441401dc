//! A database test that cannot reach its server says so under plain
//! `cargo test` (libtest captures `print!`, so the notice goes to the raw
//! stderr handle), and fails instead under `PHASEGATE_REQUIRE_DATABASES=1`.
//!
//! Each check runs this test binary again as a child process, as `cargo
//! test` would run it (output captured, no `--nocapture`), with the server
//! URL pointing at a closed port; the child runs only the probe tests, which
//! do nothing unless [`CHILD_ENV`] is set.

mod common;

use std::process::{Command, Output};

use common::{MYSQL_URL_ENV, POSTGRES_URL_ENV, REQUIRE_ENV, with_mysql, with_postgres};

/// Set in the child process only: the probes then try their server.
const CHILD_ENV: &str = "PHASEGATE_LOUD_SKIP_CHILD";
/// Nothing listens on port 1: the connection is refused at once.
const CLOSED_POSTGRES: &str = "postgres://postgres@127.0.0.1:1/postgres";
const CLOSED_MYSQL: &str = "mysql://root@127.0.0.1:1/test";

fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// The probe: a Postgres test whose body must not run (the server is absent).
#[tokio::test]
async fn probe_postgres() {
    if !is_child() {
        return;
    }
    with_postgres(|_db| async { Err(common::fail("the body ran without a server")) }).await;
}

/// The probe for MySQL/MariaDB.
#[tokio::test]
async fn probe_mysql() {
    if !is_child() {
        return;
    }
    with_mysql(|_db| async { Err(common::fail("the body ran without a server")) }).await;
}

/// Runs one probe in a child test process, with `url_env` set to a closed
/// port and `PHASEGATE_REQUIRE_DATABASES` as given.
fn run_probe(probe: &str, url_env: &str, url: &str, require: Option<&str>) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([probe, "--exact", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env(url_env, url)
        .env_remove(REQUIRE_ENV);
    if let Some(value) = require {
        cmd.env(REQUIRE_ENV, value);
    }
    cmd.output().expect("run the test binary")
}

fn both(o: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_loud_skip(probe: &str, url_env: &str, url: &str, server: &str) {
    let out = run_probe(probe, url_env, url, None);
    let shown = both(&out);
    assert!(out.status.success(), "a skip must pass:\n{shown}");
    assert!(
        shown.contains("1 passed"),
        "the probe did not run:\n{shown}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notice = stderr
        .lines()
        .find(|l| l.starts_with("skipped: "))
        .unwrap_or_else(|| panic!("no `skipped:` line on stderr under captured output:\n{shown}"));
    assert!(
        notice.contains(probe) && notice.contains(server) && notice.contains(REQUIRE_ENV),
        "the notice should name the test, the server and {REQUIRE_ENV}: {notice}"
    );
}

fn assert_required_fails(probe: &str, url_env: &str, url: &str) {
    let out = run_probe(probe, url_env, url, Some("1"));
    let shown = both(&out);
    assert!(
        !out.status.success(),
        "with {REQUIRE_ENV}=1 a missing server must fail the test:\n{shown}"
    );
    assert!(shown.contains("1 failed"), "{shown}");
    assert!(
        shown.contains(&format!("{REQUIRE_ENV}=1")),
        "the failure should say why:\n{shown}"
    );
}

#[test]
fn a_postgres_skip_shows_under_plain_cargo_test() {
    assert_loud_skip(
        "probe_postgres",
        POSTGRES_URL_ENV,
        CLOSED_POSTGRES,
        "Postgres",
    );
}

#[test]
fn a_mysql_skip_shows_under_plain_cargo_test() {
    assert_loud_skip("probe_mysql", MYSQL_URL_ENV, CLOSED_MYSQL, "MySQL");
}

#[test]
fn a_missing_postgres_fails_when_databases_are_required() {
    assert_required_fails("probe_postgres", POSTGRES_URL_ENV, CLOSED_POSTGRES);
}

#[test]
fn a_missing_mysql_fails_when_databases_are_required() {
    assert_required_fails("probe_mysql", MYSQL_URL_ENV, CLOSED_MYSQL);
}
