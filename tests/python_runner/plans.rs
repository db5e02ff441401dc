//! A plan rolled out through a Python runner end to end, through the built
//! `phasegate` binary: each deploy exported with `phasegate export --to
//! <runner> --phase N`, run by the real runner (a hand-off to phasegate for a
//! backfill: the runner refuses, naming the `phasegate apply` to run, which
//! the test runs before running the runner again), the application's old and
//! new releases querying between deploys, its app deploy recorded with
//! `phasegate mark`, and `phasegate status --format json` showing the phase.
//! At the end the schema equals what `phasegate apply` gives on a twin
//! database given the same plan.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use phasegate::dialect::Dialect;

use super::{TempDir, python, run, sqlalchemy_url, write};
use crate::common::{TestDb, TestResult, fail};

/// The Python runner driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Alembic,
    Django,
}

/// A plan of `plans/`, and the queries of the application's releases.
pub struct PlanCase {
    /// The file under the repository's `plans/`.
    pub file: &'static str,
    /// The plan's name as `status` shows it.
    pub name: &'static str,
    /// The table the plan changes, created with these rows before it starts.
    pub setup: fn(Dialect) -> Vec<String>,
    /// The queries a release runs while deploy `phase` of `of` is live
    /// (`old`: the release from before that deploy's app change).
    pub release: fn(dialect: Dialect, phase: usize, of: usize, old: bool, n: usize) -> Vec<String>,
}

fn phasegate(dir: &Path, args: &[&str]) -> TestResult<Output> {
    Command::new(env!("CARGO_BIN_EXE_phasegate"))
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| fail(format!("running phasegate {args:?}: {e}")))
}

fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn phasegate_ok(dir: &Path, args: &[&str]) -> TestResult<Output> {
    let o = phasegate(dir, args)?;
    if !o.status.success() {
        return Err(fail(format!("phasegate {}: {}", args.join(" "), shown(&o))));
    }
    Ok(o)
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The phase `status --format json` shows for `plan` in `dev`.
fn status_phase(dir: &Path, plan: &str) -> TestResult<(u64, u64, String)> {
    let o = phasegate_ok(dir, &["status", "--env", "dev", "--format", "json"])?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .map_err(|e| fail(format!("status --format json: {e}: {}", shown(&o))))?;
    let envs = v
        .get("environments")
        .and_then(|e| e.as_array())
        .or_else(|| v.as_array())
        .ok_or_else(|| fail(format!("no environments in {v}")))?;
    let p = envs
        .iter()
        .filter_map(|e| e["plans"].as_array())
        .flatten()
        .find(|p| p["plan"] == plan)
        .ok_or_else(|| fail(format!("status does not show {plan}: {v}")))?;
    Ok((
        p["phase"].as_u64().unwrap_or(0),
        p["deployed"].as_u64().unwrap_or(0),
        p["state"].as_str().unwrap_or("?").to_string(),
    ))
}

/// `M` of the "deploy N of M" header line in `text`.
fn deploys_of(text: &str) -> Option<usize> {
    let at = text.find(", deploy ")?;
    let rest = &text[at + ", deploy ".len()..];
    let of = rest.find(" of ")?;
    rest[of + 4..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Rolls `case` out on `db` through the runner `kind`, and the same plan
/// with `phasegate apply` on `twin`; compares the results.
pub async fn roll_out(kind: Kind, case: &PlanCase, db: TestDb, twin: TestDb) -> TestResult {
    run_plan(kind, case, db, Some(twin)).await
}

/// Deploy 1 of `case` through the runner `kind`, then the runner's own way
/// back (`alembic downgrade` / `manage.py migrate` to the team's migration):
/// the schema is as before and `status` shows the phase rolled back.
pub async fn roll_back(kind: Kind, case: &PlanCase, db: TestDb) -> TestResult {
    run_plan(kind, case, db, None).await
}

async fn run_plan(kind: Kind, case: &PlanCase, db: TestDb, twin: Option<TestDb>) -> TestResult {
    let Some(py) = python() else { return Ok(()) };
    let tmp = TempDir::new(match kind {
        Kind::Alembic => "alembic-plan",
        Kind::Django => "django-plan",
    });
    let dir = &tmp.0;
    let url = sqlalchemy_url(&db);
    let plan_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("plans")
            .join(case.file),
    )?;
    write(dir, &format!("plans/{}", case.file), &plan_text)?;
    let plan = format!("plans/{}", case.file);
    write(
        dir,
        "phasegate.yaml",
        &format!(
            "environments:\n  - name: dev\n    database_url: {}\n",
            db.url
        ),
    )?;
    if let Some(twin) = &twin {
        write(
            dir,
            "twin.yaml",
            &format!(
                "environments:\n  - name: dev\n    database_url: {}\n",
                twin.url
            ),
        )?;
    }
    for d in std::iter::once(&db).chain(twin.as_ref()) {
        for s in (case.setup)(d.dialect) {
            d.exec(&s).await?;
        }
    }

    // The runner's project, with one migration of the team's own.
    let (export_dir, bookkeeping) = match kind {
        Kind::Alembic => {
            write(dir, "alembic.ini", super::alembic::INI)?;
            write(dir, "alembic/env.py", super::alembic::ENV_PY)?;
            write(
                dir,
                "alembic/versions/team0001_start.py",
                "revision = \"team0001\"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n",
            )?;
            (dir.join("alembic/versions"), "alembic_version")
        }
        Kind::Django => {
            write(dir, "manage.py", super::django::MANAGE_PY)?;
            write(dir, "settings.py", super::django::SETTINGS_PY)?;
            write(dir, "shop/__init__.py", "")?;
            write(dir, "shop/migrations/__init__.py", "")?;
            write(
                dir,
                "shop/migrations/0001_initial.py",
                "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    dependencies = []\n    operations = []\n",
            )?;
            (dir.clone(), "django_migrations")
        }
    };
    let forward: Vec<&str> = match kind {
        Kind::Alembic => vec!["-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
        Kind::Django => vec!["manage.py", "migrate", "shop"],
    };
    let mut after = match kind {
        Kind::Alembic => "team0001".to_string(),
        Kind::Django => "shop.0001_initial".to_string(),
    };

    // Without --phase, no irreversible deploy is written.
    let probe = TempDir::new("export-probe");
    let mut args = vec![
        "export".to_string(),
        "--to".into(),
        format!("{kind:?}").to_lowercase(),
        "--env".into(),
        "dev".into(),
        "--dir".into(),
        probe.0.display().to_string(),
        "--after".into(),
        after.clone(),
    ];
    if kind == Kind::Django {
        args.extend(["--app".into(), "shop".into()]);
    }
    args.push(plan.clone());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    phasegate_ok(dir, &argv)?;
    let written = files(&probe.0);
    let mut of = None;
    for f in &written {
        let text = std::fs::read_to_string(probe.0.join(f))?;
        of = of.or(deploys_of(&text));
        assert!(
            !text.contains("cannot be undone"),
            "export without --phase wrote an irreversible deploy: {}",
            f.display()
        );
    }
    let of = of.ok_or_else(|| fail(format!("no deploy header in {written:?}")))?;
    assert!(of >= 2, "{} has {of} deploys", case.file);

    let strip = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| !l.contains(bookkeeping))
            .collect()
    };
    let untouched = strip(db.schema().await?);
    let mut n = 0;
    for phase in 1..=of {
        let before = files(&export_dir);
        let version = format!("2026030112{:04}", phase);
        let mut args = vec![
            "export".to_string(),
            "--to".into(),
            format!("{kind:?}").to_lowercase(),
            "--env".into(),
            "dev".into(),
            "--phase".into(),
            phase.to_string(),
            "--dir".into(),
            export_dir.display().to_string(),
            "--version".into(),
            version,
            "--after".into(),
            after.clone(),
        ];
        if kind == Kind::Django {
            args.extend(["--app".into(), "shop".into()]);
        }
        args.push(plan.clone());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        phasegate_ok(dir, &argv)?;
        let new: Vec<PathBuf> = files(&export_dir)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        let last = new
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "py"))
            .max()
            .ok_or_else(|| fail(format!("export --phase {phase} wrote no file")))?;
        let stem = last
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        after = match kind {
            Kind::Alembic => stem.get(..17).unwrap_or(&stem).to_string(),
            Kind::Django => format!("shop.{stem}"),
        };

        // The runner; a hand-off sends the test to phasegate and back.
        let mut out = run(&py, dir, &url, &forward)?;
        if db.dialect == Dialect::Sqlite {
            // SQLite has no SHA-256 in SQL to record a step in the log: the
            // exported files refuse, naming the phasegate command instead.
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && stderr.contains("phasegate apply --env dev"),
                "deploy {phase} on SQLite: {}",
                shown(&out)
            );
            let (_, deployed, _) = status_phase(dir, case.name).unwrap_or((0, 0, String::new()));
            assert_eq!(deployed, 0, "a refused deploy is not recorded");
            assert_eq!(
                strip(db.schema().await?),
                untouched,
                "a refused deploy changes nothing (but the runner's own table)"
            );
            return Ok(());
        }
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            eprintln!("deploy {phase}: the runner stopped:\n{}", shown(&out));
            if !stderr.contains("phasegate apply") {
                return Err(fail(format!("deploy {phase}: {}", shown(&out))));
            }
            phasegate_ok(dir, &["apply", "--env", "dev", &plan])?;
            out = run(&py, dir, &url, &forward)?;
            if !out.status.success() {
                return Err(fail(format!("deploy {phase} after apply: {}", shown(&out))));
            }
        }

        if twin.is_none() {
            // The runner's way back, before the app change ships.
            let back: Vec<&str> = match kind {
                Kind::Alembic => vec![
                    "-m",
                    "alembic",
                    "-c",
                    "alembic.ini",
                    "downgrade",
                    "team0001",
                ],
                Kind::Django => vec!["manage.py", "migrate", "shop", "0001_initial"],
            };
            let out = run(&py, dir, &url, &back)?;
            if !out.status.success() {
                return Err(fail(format!("rolling deploy 1 back: {}", shown(&out))));
            }
            assert_eq!(
                strip(db.schema().await?),
                untouched,
                "the schema after rolling deploy 1 back"
            );
            let (_, deployed, state) = status_phase(dir, case.name)?;
            assert_eq!(deployed, 0, "status after the rollback: state {state}");
            let history = phasegate_ok(dir, &["history", "--env", "dev", "--format", "json"])?;
            let history = String::from_utf8_lossy(&history.stdout);
            assert!(history.contains("\"phase_rolled_back\""), "{history}");
            return Ok(());
        }

        // Both releases run while the new app code rolls out.
        for old in [true, false] {
            if old && phase == of {
                continue;
            }
            for q in (case.release)(db.dialect, phase, of, old, n) {
                db.exec(&q).await.map_err(|e| {
                    fail(format!(
                        "deploy {phase}, {} release: {e}",
                        if old { "old" } else { "new" }
                    ))
                })?;
            }
            n += 1;
        }
        phasegate_ok(
            dir,
            &[
                "mark",
                "--env",
                "dev",
                &plan,
                "--phase",
                &phase.to_string(),
                "--app-version",
                &format!("v{phase}"),
            ],
        )?;
        let (shown_phase, deployed, state) = status_phase(dir, case.name)?;
        assert_eq!(
            deployed as usize, phase,
            "status after deploy {phase}: phase {shown_phase}, state {state}"
        );
    }

    // The twin, with phasegate apply.
    let Some(twin) = twin else {
        return Err(fail("a rollback run returns after deploy 1"));
    };
    for phase in 1..=of {
        phasegate_ok(
            dir,
            &["apply", "--config", "twin.yaml", "--env", "dev", &plan],
        )?;
        phasegate_ok(
            dir,
            &[
                "mark",
                "--config",
                "twin.yaml",
                "--env",
                "dev",
                &plan,
                "--phase",
                &phase.to_string(),
                "--app-version",
                &format!("v{phase}"),
            ],
        )?;
    }
    assert_eq!(strip(db.schema().await?), strip(twin.schema().await?));
    Ok(())
}

fn users(dialect: Dialect) -> Vec<String> {
    let text = if dialect == Dialect::Mysql {
        "varchar(200)"
    } else {
        "text"
    };
    vec![
        format!("CREATE TABLE users (id integer PRIMARY KEY, name {text})"),
        "INSERT INTO users (id, name) VALUES (1, 'Ada Lovelace'), (2, 'Grace Hopper'), (3, NULL)"
            .into(),
    ]
}

/// `plans/rename-users-name.yaml`: the old release reads and writes `name`;
/// the new one reads `full_name` and, until the contract, writes both.
pub const RENAME: PlanCase = PlanCase {
    file: "rename-users-name.yaml",
    name: "rename-users-name",
    setup: users,
    release: |_, phase, of, old, n| {
        let id = 100 + n;
        if old {
            vec![
                format!("INSERT INTO users (id, name) VALUES ({id}, 'old {n}')"),
                "SELECT id, name FROM users".into(),
            ]
        } else if phase < of {
            vec![
                format!(
                    "INSERT INTO users (id, name, full_name) VALUES ({id}, 'new {n}', 'new {n}')"
                ),
                "SELECT id, full_name FROM users".into(),
            ]
        } else {
            vec![
                format!("INSERT INTO users (id, full_name) VALUES ({id}, 'new {n}')"),
                "SELECT id, full_name FROM users".into(),
            ]
        }
    },
};

/// `plans/add-users-email-verified.yaml`: the old release knows none of the
/// new columns; the new one fills `signup_source` and sets `nickname`.
pub const EMAIL_VERIFIED: PlanCase = PlanCase {
    file: "add-users-email-verified.yaml",
    name: "add-users-email-verified",
    setup: users,
    release: |_, _, _, old, n| {
        let id = 100 + n;
        if old {
            vec![
                format!("INSERT INTO users (id, name) VALUES ({id}, 'old {n}')"),
                "SELECT id, name FROM users".into(),
            ]
        } else {
            vec![
                format!(
                    "INSERT INTO users (id, name, signup_source, nickname) VALUES ({id}, 'new {n}', 'web', 'n{n}')"
                ),
                "SELECT id, email_verified, signup_source, nickname FROM users".into(),
            ]
        }
    },
};
