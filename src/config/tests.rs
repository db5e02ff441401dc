//! The config loader's tests.

use super::*;

fn parse(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Config::parse(
        text,
        Path::new("phasegate.yaml"),
        Path::new("/proj"),
        &move |n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()),
    )
}

#[test]
fn environments_in_order_with_expanded_urls() -> Result<(), ConfigError> {
    let c = parse(
        "environments:\n  - name: dev\n    database_url: sqlite://.phasegate/dev.db\n  - name: prod\n    database_url: ${PROD_URL}\n    soak: 72h\n    require_backup: 1d\n    require_approval: true\n",
        &[("PROD_URL", "postgres://u@db/app")],
    )?;
    assert_eq!(
        c.environments[0].database_url,
        "sqlite:///proj/.phasegate/dev.db?mode=rwc"
    );
    assert_eq!(c.environments[1].database_url, "postgres://u@db/app");
    assert_eq!(c.environments[1].soak, Some(Duration::from_secs(72 * 3600)));
    assert_eq!(
        c.environments[1].require_backup,
        Some(Duration::from_secs(86400))
    );
    assert_eq!(
        c.previous("prod").ok().flatten().map(|e| e.name.as_str()),
        Some("dev")
    );
    assert!(matches!(c.previous("dev"), Ok(None)));
    Ok(())
}

#[test]
fn mysql_and_mariadb_urls_are_mysql_environments() -> Result<(), ConfigError> {
    let c = parse(
        "environments:\n  - name: a\n    database_url: mysql://u@db/app\n  - name: b\n    database_url: MariaDB://u@db/app_b\n",
        &[],
    )?;
    for e in &c.environments {
        assert_eq!(e.dialect, Dialect::Mysql);
    }
    assert_eq!(c.environments[0].database_url, "mysql://u@db/app");
    assert_eq!(c.environments[1].database_url, "mysql://u@db/app_b");
    let err = parse(
        "environments:\n  - name: a\n    database_url: oracle://u@db/app\n",
        &[],
    );
    assert!(err.is_err_and(|e| {
        e.to_string()
            .contains("expected postgres://…, mysql://… or sqlite://…")
    }));
    Ok(())
}

#[test]
fn an_unset_variable_is_named_with_its_line() {
    let err = parse(
        "environments:\n  - name: prod\n    database_url: ${PROD_URL}\n",
        &[],
    )
    .map(|_| ());
    match err {
        Err(ConfigError::Invalid(d)) => {
            assert!(
                d.message.contains("`PROD_URL`") && d.message.contains("not set"),
                "{}",
                d.message
            );
            assert_eq!(d.line, Some(3));
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn a_report_keeps_an_environment_with_an_unset_variable_in_its_place() {
    let text = "environments:\n  - name: dev\n    database_url: sqlite://a.db\n  - name: staging\n    database_url: ${STAGING_URL}\n  - name: prod\n    database_url: sqlite://c.db\n";
    let c = Config::parse_with(
        text,
        Path::new("phasegate.yaml"),
        Path::new("/proj"),
        &|_| None,
        true,
    );
    let c = match c {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let slots = c.slots();
    let names: Vec<&str> = slots.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["dev", "staging", "prod"]);
    assert!(
        matches!(c.slots()[1], Slot::Unresolved(u) if u.error.contains("phasegate.yaml:5:") && u.error.contains("`STAGING_URL`"))
    );
    assert_eq!(c.environments.len(), 2);
    // dev needs no variable; staging's own is an error; prod's promotion
    // gate reads staging, so prod's previous environment is an error too.
    assert!(c.environment("dev").is_ok());
    assert!(
        matches!(c.environment("staging"), Err(ConfigError::Unresolved { ref name, .. }) if name == "staging")
    );
    assert!(c.environment("prod").is_ok());
    match c.previous("prod") {
        Err(e @ ConfigError::PromotionNeeds { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("`STAGING_URL`") && m.contains("promotion gate of prod"),
                "{m}"
            );
        }
        other => panic!("expected PromotionNeeds, got {other:?}"),
    }
    assert!(matches!(c.previous("staging"), Ok(Some(e)) if e.name == "dev"));
    assert_eq!(c.names(), ["dev", "staging", "prod"]);
    // Parsed strictly, the same file is refused.
    assert!(parse(text, &[]).is_err());
}

#[test]
fn bad_durations_and_unknown_environments_are_explained() {
    let err = parse(
        "environments:\n  - name: a\n    database_url: sqlite://a.db\n    soak: 3 fortnights\n",
        &[],
    );
    assert!(err.is_err_and(|e| e.to_string().contains("is not a duration")));
    let c = parse(
        "environments:\n  - name: staging\n    database_url: sqlite://a.db\n",
        &[],
    );
    let unknown = c.map(|c| {
        c.environment("stagin")
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(
        matches!(unknown, Ok(Err(ref m)) if m.contains("did you mean `staging`?")),
        "{unknown:?}"
    );
}

#[test]
fn two_environments_on_one_database_are_refused() {
    for (a, b) in [
        (
            "postgres://u@localhost/app",
            "postgresql://other:pw@127.0.0.1:5432/app?sslmode=disable",
        ),
        ("mysql://root@db:3306/app", "mariadb://u@DB/app"),
        ("sqlite://app.db", "sqlite:///proj/./app.db"),
    ] {
        let err = parse(
            &format!(
                "environments:\n  - name: dev\n    database_url: {a}\n  - name: staging\n    database_url: '{b}'\n"
            ),
            &[],
        );
        match err {
            Err(ConfigError::Invalid(d)) => {
                assert!(
                    d.message
                        .contains("`dev` and `staging` point at the same database"),
                    "{}",
                    d.message
                );
                assert_eq!(d.line, Some(5), "{a} / {b}");
            }
            other => panic!("{a} and {b} accepted: {other:?}"),
        }
    }
    assert!(
        parse(
            "environments:\n  - name: dev\n    database_url: postgres://u@db/app_dev\n  - name: prod\n    database_url: postgres://u@db:5433/app_dev\n",
            &[],
        )
        .is_ok()
    );
}

#[test]
fn durations_are_range_checked() {
    let env = |extra: &str| {
        parse(
            &format!(
                "environments:\n  - name: a\n    database_url: postgres://h/db\n    {extra}\n"
            ),
            &[],
        )
        .map(|c| c.environments[0].clone())
        .map_err(|e| e.to_string())
    };
    for (field, value) in [
        ("lock_timeout", "0s"),
        ("lock_timeout", "500us"),
        ("statement_timeout", "0ms"),
        ("connect_timeout", "300000000000y"),
        ("lock_wait", "2d"),
        ("soak", "400d"),
        ("backfill_pause", "2h"),
    ] {
        let got = env(&format!("{field}: {value}"));
        assert!(
            got.as_ref()
                .is_err_and(|m| m.contains("out of range") && m.contains(field)),
            "{field}: {value} gave {got:?}"
        );
    }
    let got = env("lock_retries: 4000000000");
    assert!(got.is_err_and(|m| m.contains("lock_retries") && m.contains("out of range")));
    let e = env("lock_timeout: 1ms");
    assert_eq!(e.map(|e| e.lock_timeout), Ok(Duration::from_millis(1)));
    let e = env("soak: 0s");
    assert_eq!(e.map(|e| e.soak), Ok(Some(Duration::ZERO)));
}

#[test]
fn batches_are_timed_unless_a_size_is_set_and_never_both() {
    let env = |extra: &str| {
        parse(
            &format!("environments:\n  - name: a\n    database_url: postgres://h/db\n{extra}"),
            &[],
        )
        .map(|c| c.environments[0].backfill_batch)
    };
    assert!(matches!(
        env(""),
        Ok(BatchSizing::Timed(t)) if t == BatchSizing::DEFAULT_TIME
    ));
    assert!(matches!(
        env("    backfill_batch_time: 250ms\n"),
        Ok(BatchSizing::Timed(t)) if t == Duration::from_millis(250)
    ));
    assert!(matches!(
        env("    backfill_batch_size: 500\n"),
        Ok(BatchSizing::Rows(500))
    ));
    match env("    backfill_batch_size: 500\n    backfill_batch_time: 1s\n") {
        Err(ConfigError::Invalid(d)) => {
            assert_eq!((d.line, d.column), (Some(5), Some(26)), "{d}");
            assert!(
                d.message.contains("backfill_batch_size")
                    && d.message.contains("backfill_batch_time")
                    && d.message.contains("not both"),
                "{}",
                d.message
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    for bad in ["0ms", "2h", "fast"] {
        let got = env(&format!("    backfill_batch_time: {bad}\n")).map_err(|e| e.to_string());
        assert!(
            got.as_ref()
                .is_err_and(|m| m.contains("a.backfill_batch_time")),
            "{bad}: {got:?}"
        );
    }
}

#[test]
fn replica_lag_needs_both_settings_a_postgres_replica_and_its_variables() {
    let env = |url: &str, extra: &str, vars: &[(&str, &str)]| {
        parse(
            &format!("environments:\n  - name: prod\n    database_url: {url}\n{extra}"),
            vars,
        )
        .map(|c| c.environments[0].replica_lag.clone())
        .map_err(|e| e.to_string())
    };
    let both = "    max_replica_lag: 5s\n    replica_urls: [ \"${REPLICA}\" ]\n";
    assert_eq!(
        env(
            "postgres://h/app",
            both,
            &[("REPLICA", "postgres://r1/app")]
        ),
        Ok(Some(ReplicaLag {
            max: Duration::from_secs(5),
            urls: vec!["postgres://r1/app".into()],
        }))
    );
    assert_eq!(env("postgres://h/app", "", &[]), Ok(None));
    for (url, extra, vars, needle) in [
        (
            "postgres://h/app",
            "    max_replica_lag: 5s\n",
            &[][..],
            "max_replica_lag needs replica_urls",
        ),
        (
            "postgres://h/app",
            "    replica_urls: [ \"postgres://r1/app\" ]\n",
            &[][..],
            "replica_urls needs max_replica_lag",
        ),
        (
            "sqlite://dev.db",
            "    max_replica_lag: 5s\n    replica_urls: [ \"sqlite://r1.db\" ]\n",
            &[][..],
            "a SQLite database has no replicas",
        ),
        (
            "mysql://h/app",
            "    max_replica_lag: 5s\n    replica_urls: [ \"postgres://r1/app\" ]\n",
            &[][..],
            "entry 1 is not a MySQL/MariaDB URL (expected mysql://",
        ),
        (
            "mysql://h/app",
            "    max_replica_lag: 500ms\n    replica_urls: [ \"mysql://r1/app\" ]\n",
            &[][..],
            "prod.max_replica_lag: `500ms` is not a whole number of seconds: MySQL and MariaDB report a replica's lag in whole seconds",
        ),
        (
            "mysql://h/app",
            "    max_replica_lag: 1500ms\n    replica_urls: [ \"mysql://r1/app\" ]\n",
            &[][..],
            "write e.g. 1s",
        ),
        (
            "postgres://h/app",
            "    max_replica_lag: 5s\n    replica_urls: [ \"mysql://r1/app\" ]\n",
            &[][..],
            "entry 1 is not a Postgres URL",
        ),
        (
            "postgres://h/app",
            "    max_replica_lag: 5s\n    replica_urls: []\n",
            &[][..],
            "replica_urls is empty",
        ),
        (
            "postgres://h/app",
            both,
            &[][..],
            "`REPLICA` (in prod's replica_urls) is not set",
        ),
        (
            "postgres://h/app",
            "    max_replica_lag: 0s\n    replica_urls: [ \"postgres://r1/app\" ]\n",
            &[][..],
            "prod.max_replica_lag",
        ),
    ] {
        let got = env(url, extra, vars);
        assert!(
            got.as_ref().is_err_and(|m| m.contains(needle)),
            "{extra}: {got:?}"
        );
    }
}

#[test]
fn mysql_replicas_take_whole_seconds_and_pause_for_vacuum_is_postgres_only() {
    let env = |url: &str, extra: &str| {
        parse(
            &format!("environments:\n  - name: prod\n    database_url: {url}\n{extra}"),
            &[],
        )
        .map(|c| c.environments[0].clone())
        .map_err(|e| e.to_string())
    };
    let mysql = env(
        "mysql://h/app",
        "    max_replica_lag: 2s\n    replica_urls: [ \"mysql://r1/app\", \"mysql://r2/app\" ]\n",
    );
    assert_eq!(
        mysql.map(|e| e.replica_lag),
        Ok(Some(ReplicaLag {
            max: Duration::from_secs(2),
            urls: vec!["mysql://r1/app".into(), "mysql://r2/app".into()],
        }))
    );
    assert_eq!(
        env("postgres://h/app", "    pause_for_vacuum: true\n").map(|e| e.pause_for_vacuum),
        Ok(true)
    );
    assert_eq!(
        env("postgres://h/app", "").map(|e| e.pause_for_vacuum),
        Ok(false)
    );
    assert_eq!(
        env("mysql://h/app", "    pause_for_vacuum: false\n").map(|e| e.pause_for_vacuum),
        Ok(false)
    );
    for url in ["mysql://h/app", "sqlite://dev.db"] {
        let got = env(url, "    pause_for_vacuum: true\n");
        assert!(
            got.as_ref().is_err_and(|m| m.contains(":4:23")
                && m.contains("prod.pause_for_vacuum: only Postgres reports")),
            "{url}: {got:?}"
        );
    }
}

#[test]
fn a_bad_value_is_reported_where_it_stands() {
    let text = "environments:\n  - name: dev\n    database_url: sqlite://dev.db\n  - name: prod\n    database_url: postgres://u@db:5432/app?x=2\n    lock_timeout: 2\n";
    match parse(text, &[]) {
        Err(ConfigError::Invalid(d)) => {
            assert_eq!((d.line, d.column), (Some(6), Some(19)), "{d}");
            assert!(d.message.contains("prod.lock_timeout"), "{}", d.message);
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn a_misspelt_key_gets_the_nearest_one_at_its_level() {
    for (text, want, line) in [
        (
            "environments:\n  - name: dev\n    databse_url: sqlite://a.db\n",
            "unknown environment key `databse_url`, did you mean `database_url`?",
            3,
        ),
        (
            "environment:\n  - name: dev\n    database_url: sqlite://a.db\n",
            "unknown top-level key `environment`, did you mean `environments`?",
            1,
        ),
        (
            "environments:\n  - name: dev\n    database_url: sqlite://a.db\n    soak_time: 1h\n",
            "unknown environment key `soak_time`, did you mean `soak`?",
            4,
        ),
    ] {
        match parse(text, &[]) {
            Err(ConfigError::Invalid(d)) => {
                assert!(d.message.starts_with(want), "{}", d.message);
                assert_eq!(d.line, Some(line), "{d}");
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

#[test]
fn durations_read_like_people_write_them() {
    assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    assert!(parse_duration("soon").is_err());
}

/// The error's line and message, or a panic naming what loaded instead.
fn error_of(text: &str, root: &Path) -> (Option<usize>, String) {
    match Config::parse(text, Path::new("phasegate.yaml"), root, &|_| None) {
        Err(ConfigError::Invalid(d)) => (d.line, d.message),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A fresh folder of its own under the system's temporary folder.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "phasegate-fleet-{tag}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

#[test]
fn a_fleet_is_listed_globbed_or_printed_by_a_command() -> Result<(), ConfigError> {
    let dir = scratch("forms");
    std::fs::create_dir_all(dir.join("tenants")).map_err(|e| ConfigError::Read {
        path: dir.clone(),
        source: e,
    })?;
    for t in ["b", "a", "c"] {
        std::fs::write(dir.join("tenants").join(format!("{t}.db")), b"").map_err(|e| {
            ConfigError::Read {
                path: dir.clone(),
                source: e,
            }
        })?;
    }
    let text = "environments:\n  - name: dev\n    database_urls: [ \"sqlite://x.db\", \"sqlite://y.db\" ]\n  - name: staging\n    database_urls_from: { glob: \"tenants/*.db\" }\n    waves: { canary: 2, growth: 3, parallelism: 8, pause: true }\n  - name: prod\n    database_urls_from: { command: \"echo postgres://h/t1; echo; echo postgres://h/t2\" }\n";
    let c = Config::parse(text, Path::new("phasegate.yaml"), &dir, &|_| None)?;
    let root = dir.display().to_string();
    let dev = c.environments[0].fleet.as_ref().map(|f| f.targets.clone());
    assert_eq!(
        dev,
        Some(vec![
            format!("sqlite://{root}/x.db?mode=rwc"),
            format!("sqlite://{root}/y.db?mode=rwc"),
        ])
    );
    assert_eq!(
        c.environments[0].database_url,
        format!("sqlite://{root}/x.db?mode=rwc")
    );
    let staging = c.environments[1].fleet.as_ref();
    let names: Vec<String> = staging
        .map(|f| f.targets.clone())
        .unwrap_or_default()
        .iter()
        .map(|u| u.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["a.db?mode=rwc", "b.db?mode=rwc", "c.db?mode=rwc"]);
    assert_eq!(
        staging.map(|f| f.waves),
        Some(Waves {
            canary: 2,
            growth: 3,
            parallelism: 8,
            pause: true
        })
    );
    let prod = &c.environments[2];
    assert_eq!(prod.dialect, Dialect::Postgres);
    assert_eq!(prod.target_urls(), ["postgres://h/t1", "postgres://h/t2"]);
    assert_eq!(prod.fleet.as_ref().map(|f| f.waves), Some(Waves::default()));
    assert_eq!(
        prod.on_target("postgres://h/t2").database_url,
        "postgres://h/t2"
    );
    // An ordinary environment has its one database as its only target.
    let c = parse(
        "environments:\n  - name: dev\n    database_url: sqlite:///a.db\n",
        &[],
    )?;
    assert!(c.environments[0].fleet.is_none());
    assert_eq!(c.environments[0].target_urls().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn fleet_mistakes_are_reported_where_they_stand() {
    let dir = scratch("errors");
    for (text, line, want) in [
        (
            "environments:\n  - name: dev\n    database_url: sqlite://a.db\n    database_urls: [ \"sqlite://b.db\" ]\n",
            4,
            "set one of database_url, database_urls and database_urls_from, not both database_url and database_urls",
        ),
        (
            "environments:\n  - name: dev\n    soak: 1h\n",
            2,
            "environment `dev` needs database_url",
        ),
        (
            "environments:\n  - name: dev\n    database_urls: []\n",
            3,
            "dev.database_urls is empty",
        ),
        (
            "environments:\n  - name: dev\n    database_urls_from: { glob: \"tenants/[*.db\" }\n",
            3,
            "is not a valid pattern",
        ),
        (
            "environments:\n  - name: dev\n    database_urls_from: { glob: \"none-here/*.db\" }\n",
            3,
            "matches no file",
        ),
        (
            "environments:\n  - name: dev\n    database_urls_from: { command: \"echo tenant db is down >&2; exit 4\" }\n",
            3,
            "exited with 4; its stderr: tenant db is down",
        ),
        (
            "environments:\n  - name: dev\n    database_urls_from: { command: \"true\" }\n",
            3,
            "printed no database URL",
        ),
        (
            "environments:\n  - name: dev\n    database_urls_from: { }\n",
            3,
            "expected one of `glob",
        ),
        (
            "environments:\n  - name: dev\n    database_urls: [ \"postgres://u:secret@h/a\", \"sqlite://b.db\" ]\n",
            3,
            "entry 2 (sqlite://b.db) is sqlite, entry 1 (postgres://u:***@h/a) is postgres",
        ),
        (
            "environments:\n  - name: dev\n    database_urls: [ \"postgres://h/a\", \"postgres://h:5432/b\", \"postgresql://h/%61\" ]\n",
            3,
            "`dev` lists one database twice (its entries 1 and 3",
        ),
        (
            "environments:\n  - name: dev\n    database_urls: [ \"postgres://h/a\", \"postgres://h/b\" ]\n  - name: prod\n    database_url: postgres://h:5432/b\n",
            5,
            "environments `dev` and `prod` point at the same database",
        ),
        (
            "environments:\n  - name: dev\n    database_url: sqlite://a.db\n    waves: { canary: 2 }\n",
            4,
            "dev.waves applies to a fleet",
        ),
        (
            "environments:\n  - name: dev\n    database_urls: [ \"sqlite://a.db\" ]\n    waves: { parallelism: 0 }\n",
            4,
            "dev.waves.parallelism must be at least 1",
        ),
        (
            "environments:\n  - name: dev\n    database_urls: [ \"sqlite://a.db\" ]\n    waves: { canery: 2 }\n",
            4,
            "unknown waves key `canery`, did you mean `canary`?",
        ),
        (
            "environments:\n  - name: dev\n    database_urls_from: { globs: \"*.db\" }\n",
            3,
            "unknown database_urls_from key `globs`, did you mean `glob`?",
        ),
    ] {
        let (l, message) = error_of(text, &dir);
        assert!(message.contains(want), "{message}\n  wanted: {want}");
        assert_eq!(l, Some(line), "{message}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fleet_whose_list_cannot_be_made_is_set_aside_until_used() -> Result<(), ConfigError> {
    let dir = scratch("aside");
    let text = "environments:\n  - name: dev\n    database_url: sqlite://dev.db\n  - name: prod\n    database_urls_from: { command: \"echo no route >&2; exit 1\" }\n";
    let c = Config::parse_with(text, Path::new("phasegate.yaml"), &dir, &|_| None, true)?;
    assert_eq!(c.names(), ["dev", "prod"]);
    let err = c.environment("prod").map(|_| ()).map_err(|e| e.to_string());
    assert!(
        err.as_ref().is_err_and(|e| e.contains("no route")),
        "{err:?}"
    );
    assert!(c.environment("dev").is_ok());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
