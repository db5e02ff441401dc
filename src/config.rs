//! `phasegate.yaml`: the environments, in promotion order, and what each
//! requires before an irreversible phase.
//!
//! ```yaml
//! environments:
//!   - name: dev
//!     database_url: sqlite://.phasegate/dev.db
//!   - name: prod
//!     database_url: ${PROD_DATABASE_URL}
//!     soak: 72h
//!     require_approval: true
//!     require_backup: 24h
//!     backup_command: pg_dump "$PHASEGATE_DATABASE_URL" -Fc -f "backups/$(date +%s).dump" && echo backups/...
//!     lock_timeout: 2s          # each DDL waits this long for its lock …
//!     lock_retries: 3           # … and is retried this often, with backoff and jitter
//!     statement_timeout: 5m     # optional
//!     backfill_batch_size: 5000 # rows per backfill transaction
//!     backfill_pause: 50ms      # between batches
//! ```
//!
//! `${VAR}` is read from the environment when the file is loaded; an unset
//! variable is an error that names it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::dialect::Dialect;
use crate::intent::Diagnostic;

/// The file name phasegate looks for in the current folder.
pub const CONFIG_FILE: &str = "phasegate.yaml";

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub environments: Vec<Environment>,
    /// The folder the config file is in: the project root (plans/, templates/).
    pub root: PathBuf,
    pub path: PathBuf,
}

/// One database target.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub name: String,
    /// With `${VAR}`s expanded; relative SQLite paths resolved against the project root.
    pub database_url: String,
    pub dialect: Dialect,
    /// How long the previous phase must have been deployed before an irreversible one.
    pub soak: Option<Duration>,
    pub require_approval: bool,
    /// How recent a backup must be before an irreversible phase.
    pub require_backup: Option<Duration>,
    /// A shell command that takes a backup; its last line of output is where it went.
    pub backup_command: Option<String>,
    /// The `lock_timeout` each DDL statement runs under.
    pub lock_timeout: Duration,
    /// How long a run waits for another run's lock on this environment.
    pub lock_wait: Duration,
    /// How long `status` waits for this environment's database.
    pub connect_timeout: Duration,
    /// How many times a DDL that hit `lock_timeout` is retried (with backoff and jitter).
    pub lock_retries: u32,
    /// The `statement_timeout` of each statement phasegate runs (`None`: the server's).
    pub statement_timeout: Option<Duration>,
    /// Rows per backfill batch; each batch is one short transaction.
    pub backfill_batch_size: u32,
    /// A pause between backfill batches, to leave room for the application.
    pub backfill_pause: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    environments: Vec<RawEnvironment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    name: String,
    database_url: String,
    #[serde(default)]
    soak: Option<String>,
    #[serde(default)]
    require_approval: bool,
    #[serde(default)]
    require_backup: Option<String>,
    #[serde(default)]
    backup_command: Option<String>,
    #[serde(default)]
    lock_timeout: Option<String>,
    #[serde(default)]
    lock_wait: Option<String>,
    #[serde(default)]
    connect_timeout: Option<String>,
    #[serde(default)]
    lock_retries: Option<u32>,
    #[serde(default)]
    statement_timeout: Option<String>,
    #[serde(default)]
    backfill_batch_size: Option<u32>,
    #[serde(default)]
    backfill_pause: Option<String>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no {CONFIG_FILE} in {} (run `phasegate init`, or pass --config FILE)", dir.display())]
    NotFound { dir: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostic),
    #[error("unknown environment `{given}`{}", crate::suggest::did_you_mean(.given, &.known.iter().map(String::as_str).collect::<Vec<_>>()))]
    UnknownEnvironment { given: String, known: Vec<String> },
}

impl Config {
    /// Loads `path`, or `phasegate.yaml` in `dir` when `path` is `None`.
    pub fn load(path: Option<&Path>, dir: &Path) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => {
                let p = dir.join(CONFIG_FILE);
                if !p.is_file() {
                    return Err(ConfigError::NotFound {
                        dir: dir.to_path_buf(),
                    });
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let root = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Config::parse(&text, &path, &root, &|name| std::env::var(name).ok())
    }

    /// Parses config text; `lookup` reads `${VAR}`s (the process environment in `load`).
    pub fn parse(
        text: &str,
        path: &Path,
        root: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let diag = |needle: Option<&str>, message: String| {
            let found = needle.and_then(|n| {
                text.lines()
                    .enumerate()
                    .find_map(|(i, l)| l.find(n).map(|c| (i + 1, c + 1, l.to_string())))
            });
            ConfigError::Invalid(Diagnostic {
                file: file.clone(),
                line: found.as_ref().map(|f| f.0),
                column: found.as_ref().map(|f| f.1),
                message,
                source_line: found.map(|f| f.2),
            })
        };
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unzip();
            let full = e.to_string();
            let message = full
                .rfind(" at line ")
                .map_or(full.clone(), |i| full[..i].to_string());
            ConfigError::Invalid(Diagnostic {
                file: file.clone(),
                line,
                column,
                source_line: line
                    .and_then(|l| text.lines().nth(l - 1))
                    .map(str::to_string),
                message,
            })
        })?;
        if raw.environments.is_empty() {
            return Err(diag(
                Some("environments"),
                "`environments` is empty: list at least one, in promotion order".into(),
            ));
        }
        let mut environments: Vec<Environment> = Vec::new();
        for e in raw.environments {
            if !crate::intent::is_valid_plan_name(&e.name) {
                return Err(diag(
                    Some(&e.name),
                    format!(
                        "environment name `{}` must hold only letters, digits, `-`, `_` and `.`",
                        e.name
                    ),
                ));
            }
            if environments.iter().any(|x| x.name == e.name) {
                return Err(diag(
                    Some(&e.name),
                    format!("environment `{}` is listed twice", e.name),
                ));
            }
            let url = expand(&e.database_url, lookup).map_err(|var| {
                diag(
                    Some(&format!("${{{var}}}")),
                    format!(
                        "environment variable `{var}` (in {}'s database_url) is not set",
                        e.name
                    ),
                )
            })?;
            let backup_command = e.backup_command.clone();
            let duration =
                |field: &str, value: &Option<String>| -> Result<Option<Duration>, ConfigError> {
                    value
                        .as_deref()
                        .map(|v| {
                            parse_duration(v)
                                .map_err(|m| diag(Some(v), format!("{}.{field}: {m}", e.name)))
                        })
                        .transpose()
                };
            let dialect = dialect_of(&url).map_err(|m| {
                diag(
                    Some(&e.database_url),
                    format!("{}.database_url: {m}", e.name),
                )
            })?;
            environments.push(Environment {
                database_url: resolve_sqlite_path(&mariadb_as_mysql(&url), root),
                dialect,
                soak: duration("soak", &e.soak)?,
                require_approval: e.require_approval,
                require_backup: duration("require_backup", &e.require_backup)?,
                backup_command,
                lock_timeout: duration("lock_timeout", &e.lock_timeout)?
                    .unwrap_or(Duration::from_secs(2)),
                lock_wait: duration("lock_wait", &e.lock_wait)?.unwrap_or(Duration::from_secs(30)),
                connect_timeout: duration("connect_timeout", &e.connect_timeout)?
                    .unwrap_or(Duration::from_secs(5)),
                lock_retries: e.lock_retries.unwrap_or(3),
                statement_timeout: duration("statement_timeout", &e.statement_timeout)?,
                backfill_batch_size: match e.backfill_batch_size {
                    Some(0) => {
                        return Err(diag(
                            Some("backfill_batch_size"),
                            format!("{}.backfill_batch_size must be at least 1", e.name),
                        ));
                    }
                    Some(n) => n,
                    None => 5000,
                },
                backfill_pause: duration("backfill_pause", &e.backfill_pause)?
                    .unwrap_or(Duration::ZERO),
                name: e.name,
            });
        }
        if let Some((first, second)) = shared_database(&environments) {
            return Err(diag(
                Some(&format!("name: {second}")),
                format!(
                    "environments `{first}` and `{second}` point at the same database: each environment needs its own, or promotion from one to the other proves nothing"
                ),
            ));
        }
        Ok(Config {
            environments,
            root: root.to_path_buf(),
            path: path.to_path_buf(),
        })
    }

    pub fn environment(&self, name: &str) -> Result<&Environment, ConfigError> {
        self.environments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ConfigError::UnknownEnvironment {
                given: name.to_string(),
                known: self.environments.iter().map(|e| e.name.clone()).collect(),
            })
    }

    /// The environment promoted to `name` from, if any.
    pub fn previous(&self, name: &str) -> Option<&Environment> {
        let i = self.environments.iter().position(|e| e.name == name)?;
        i.checked_sub(1).map(|p| &self.environments[p])
    }

    pub fn plans_dir(&self) -> PathBuf {
        self.root.join("plans")
    }
}

/// The first two environments whose database URLs name the same database
/// once normalised (see [`database_identity`]).
fn shared_database(environments: &[Environment]) -> Option<(String, String)> {
    let ids: Vec<String> = environments
        .iter()
        .map(|e| database_identity(&e.database_url))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        if let Some(j) = ids[..i].iter().position(|other| other == id) {
            return Some((environments[j].name.clone(), environments[i].name.clone()));
        }
    }
    None
}

/// What identifies the database a URL points at, so that two spellings of
/// one database compare equal: for SQLite the file's canonical path (of its
/// folder, when the file does not exist yet); for a server, the dialect,
/// host (`localhost`, `127.0.0.1` and `::1` are one), port (the default
/// when absent) and database name, ignoring user, password and options.
pub fn database_identity(database_url: &str) -> String {
    if let Some(rest) = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
    {
        let path = rest.split_once('?').map_or(rest, |(p, _)| p);
        if path.contains(":memory:") {
            // Each connection has its own in-memory database.
            return database_url.to_string();
        }
        let p = Path::new(path);
        let canonical = std::fs::canonicalize(p).ok().or_else(|| {
            let parent = std::fs::canonicalize(p.parent()?).ok()?;
            Some(parent.join(p.file_name()?))
        });
        return format!(
            "sqlite:{}",
            canonical
                .unwrap_or_else(|| p.components().collect::<PathBuf>())
                .display()
        );
    }
    let Ok(u) = url::Url::parse(database_url) else {
        return database_url.to_string();
    };
    let scheme = match u.scheme() {
        "postgresql" => "postgres",
        "mariadb" => "mysql",
        other => other,
    };
    let host = match u.host_str().unwrap_or("localhost").to_ascii_lowercase() {
        h if h == "127.0.0.1" || h == "[::1]" || h == "::1" => "localhost".to_string(),
        h => h,
    };
    let port = u
        .port()
        .unwrap_or(if scheme == "mysql" { 3306 } else { 5432 });
    let db = u.path().trim_start_matches('/');
    // Postgres connects to the database named like the user when none is given.
    let db = if db.is_empty() && scheme == "postgres" {
        u.username()
    } else {
        db
    };
    format!("{scheme}://{host}:{port}/{db}")
}

/// Durations as people write them: `72h`, `30m`, `2d`, `1h 30m`, `45s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 72h, 30m, 2d"))
}

/// Expands `${NAME}`; returns the name of the first unset variable.
fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn dialect_of(url: &str) -> Result<Dialect, String> {
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => Ok(Dialect::Postgres),
        "sqlite" => Ok(Dialect::Sqlite),
        "mysql" | "mariadb" => Ok(Dialect::Mysql),
        _ => Err(format!(
            "`{scheme}:` is not a database phasegate knows; expected postgres://…, mysql://… or sqlite://…"
        )),
    }
}

/// `mariadb://…` is spelt `mysql://…` for the driver: one wire protocol.
fn mariadb_as_mysql(url: &str) -> String {
    match url.get(..8) {
        Some(scheme) if scheme.eq_ignore_ascii_case("mariadb:") => format!("mysql:{}", &url[8..]),
        _ => url.to_string(),
    }
}

/// `sqlite://relative.db` is relative to the project root, not to wherever
/// phasegate runs; and the file is created on first use.
fn resolve_sqlite_path(url: &str, root: &Path) -> String {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_string();
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = if path.starts_with('/') || path == ":memory:" {
        path.to_string()
    } else {
        root.join(path).display().to_string()
    };
    let query = if query.contains("mode=") {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    format!("sqlite://{path}?{query}")
}

#[cfg(test)]
mod tests {
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
        assert_eq!(c.previous("prod").map(|e| e.name.as_str()), Some("dev"));
        assert!(c.previous("dev").is_none());
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
                    assert_eq!(d.line, Some(4), "{a} / {b}");
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
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_err());
    }
}
