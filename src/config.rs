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
//!     backfill_batch_time: 100ms # each backfill batch sized to take about this long …
//!     # backfill_batch_size: 5000 # … or a fixed number of rows per batch instead
//!     backfill_pause: 50ms      # between batches
//!     max_replica_lag: 10s      # batches wait while a replica is further behind
//!     replica_urls: [ "${PROD_REPLICA_URL}" ] # Postgres or MySQL/MariaDB replicas, as database_url
//!     pause_for_vacuum: true    # batches wait while a VACUUM runs on the table (Postgres)
//!   - name: tenants            # a fleet: many databases, one environment
//!     database_urls_from: { glob: "tenants/*.db" }   # or { command: "./tenant-urls" }, or database_urls: [..]
//!     waves: { canary: 1, growth: 2, parallelism: 4, pause: false }
//! ```
//!
//! An environment names its database with exactly one of `database_url`,
//! `database_urls` (a list) and `database_urls_from` (a `glob` of SQLite
//! files relative to the project root, sorted; or a `command` run by `sh`
//! in the project root that prints one URL a line, killed after
//! [`COMMAND_TIMEOUT`]); see [`Fleet`] and [`Waves`]. Every database of one
//! environment is of one dialect, and no database is listed twice, in one
//! environment or in two.
//!
//! `${VAR}` is read from the environment when the file is loaded. An
//! environment whose URL names an unset variable is set aside
//! ([`Config::unresolved`]): it is an error only for a command that uses
//! that environment ([`Config::environment`]), or the promotion gate of the
//! environment after it ([`Config::previous_slot`]), so a job that holds one
//! environment's secret can work on that environment alone.
//!
//! Every duration is range-checked ([`DurationRange`]: timeouts 1ms–24h,
//! never 0; `soak`/`require_backup` up to 365d; `backfill_pause` up to 1h;
//! `backfill_batch_time` 1ms–1h; `max_replica_lag` 1ms–24h, on MySQL/MariaDB
//! whole seconds from 1s, the granularity of their replica lag),
//! `lock_retries` is at most [`MAX_LOCK_RETRIES`], and every error points at
//! the line and column of the value it is about. The file is read within the
//! budgets of [`crate::intent::yaml`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::dialect::Dialect;
use crate::intent::Diagnostic;

mod backfill;
mod durations;
mod fleet;
mod identity;

pub use backfill::{BatchSizing, ReplicaLag};
pub use durations::{
    AGE_RANGE, BATCH_TIME_RANGE, DurationRange, LAG_RANGE, MAX_LOCK_RETRIES, PAUSE_RANGE,
    TIMEOUT_RANGE, WHOLE_SECONDS_LAG_RANGE, parse_duration,
};
pub use fleet::{COMMAND_TIMEOUT, Fleet, MAX_TARGETS, Waves};
pub use identity::database_identity;
use identity::{refused_url, shared_database};

/// The file name phasegate looks for in the current folder.
pub const CONFIG_FILE: &str = "phasegate.yaml";

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub environments: Vec<Environment>,
    /// Environments whose `database_url` names a `${VAR}` that is not set,
    /// with the error. [`Config::load`] fills it; [`Config::parse`] refuses
    /// such a file instead.
    pub unresolved: Vec<Unresolved>,
    /// The folder the config file is in: the project root (plans/, templates/).
    pub root: PathBuf,
    pub path: PathBuf,
}

/// One database target.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub name: String,
    /// With `${VAR}`s expanded; relative SQLite paths resolved against the
    /// project root. For a fleet, its first target's.
    pub database_url: String,
    /// The environment's databases when it is a fleet (`database_urls` or
    /// `database_urls_from`), and how `apply` rolls phases across them.
    pub fleet: Option<Fleet>,
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
    /// How many rows each backfill batch (one short transaction) updates.
    pub backfill_batch: BatchSizing,
    /// A pause between backfill batches, to leave room for the application.
    pub backfill_pause: Duration,
    /// Backfill batches wait while a replica is further behind than this
    /// (`max_replica_lag` and `replica_urls`; Postgres and MySQL/MariaDB).
    pub replica_lag: Option<ReplicaLag>,
    /// Backfill batches wait while a VACUUM (autovacuum's or another
    /// session's) runs on the table (`pause_for_vacuum: true`; Postgres only).
    pub pause_for_vacuum: bool,
}

impl Environment {
    /// The database URLs of this environment: its `database_url`, or every
    /// target of its fleet in wave order.
    pub fn target_urls(&self) -> Vec<&str> {
        match &self.fleet {
            Some(f) => f.targets.iter().map(String::as_str).collect(),
            None => vec![self.database_url.as_str()],
        }
    }

    /// This environment on one of its databases, `url`: the same name
    /// (each target's log is that environment's) and settings, no fleet.
    pub fn on_target(&self, url: &str) -> Environment {
        Environment {
            database_url: url.to_string(),
            fleet: None,
            ..self.clone()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    environments: At<Vec<RawEnvironment>>,
}

/// A value with where it stands in the file.
type At<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    name: At<String>,
    #[serde(default)]
    database_url: Option<At<String>>,
    #[serde(default)]
    database_urls: Option<At<Vec<String>>>,
    #[serde(default)]
    database_urls_from: Option<At<fleet::RawSource>>,
    #[serde(default)]
    waves: Option<At<fleet::RawWaves>>,
    #[serde(default)]
    soak: Option<At<String>>,
    #[serde(default)]
    require_approval: bool,
    #[serde(default)]
    require_backup: Option<At<String>>,
    #[serde(default)]
    backup_command: Option<String>,
    #[serde(default)]
    lock_timeout: Option<At<String>>,
    #[serde(default)]
    lock_wait: Option<At<String>>,
    #[serde(default)]
    connect_timeout: Option<At<String>>,
    #[serde(default)]
    lock_retries: Option<At<u32>>,
    #[serde(default)]
    statement_timeout: Option<At<String>>,
    #[serde(default)]
    backfill_batch_size: Option<At<u32>>,
    #[serde(default)]
    backfill_batch_time: Option<At<String>>,
    #[serde(default)]
    backfill_pause: Option<At<String>>,
    #[serde(default)]
    max_replica_lag: Option<At<String>>,
    #[serde(default)]
    replica_urls: Option<At<Vec<String>>>,
    #[serde(default)]
    pause_for_vacuum: Option<At<bool>>,
}

/// An environment of the file whose database URL could not be expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Unresolved {
    pub name: String,
    /// Where it stands in the promotion order (0-based, counting every
    /// environment of the file).
    pub position: usize,
    /// The error, with the file, line and column of the variable.
    pub error: String,
}

/// One environment of the file, in promotion order: usable, or not
/// (see [`Config::unresolved`]).
#[derive(Debug, Clone, Copy)]
pub enum Slot<'a> {
    Usable(&'a Environment),
    Unresolved(&'a Unresolved),
}

impl Slot<'_> {
    /// The environment's name.
    pub fn name(&self) -> &str {
        match self {
            Slot::Usable(e) => &e.name,
            Slot::Unresolved(u) => &u.name,
        }
    }
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
    /// The environment a command works on has a `database_url` whose
    /// `${VAR}` is not set.
    #[error("{error}")]
    Unresolved { name: String, error: String },
    /// The environment before `env`, which its promotion gate reads, has a
    /// `database_url` whose `${VAR}` is not set.
    #[error(
        "{error}: the promotion gate of {env} reads {previous} (the environment before it), so it needs that variable too"
    )]
    PromotionNeeds {
        env: String,
        previous: String,
        error: String,
    },
}

impl Config {
    /// Loads `path`, or `phasegate.yaml` in `dir` when `path` is `None`.
    ///
    /// An environment whose URL names an unset `${VAR}` is kept aside in
    /// [`Config::unresolved`] instead of failing the whole file: a command
    /// on another environment runs, one on it fails
    /// ([`Config::environment`]), and reports (`status`) show it as an entry
    /// with its error.
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
        let text =
            crate::intent::yaml::read_bounded(&path).map_err(|source| ConfigError::Read {
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
        Config::parse_with(&text, &path, &root, &|name| std::env::var(name).ok(), true)
    }

    /// Parses config text; `lookup` reads `${VAR}`s (the process environment in `load`).
    pub fn parse(
        text: &str,
        path: &Path,
        root: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::parse_with(text, path, root, lookup, false)
    }

    /// Parses config text; `lenient`: set an environment with an unset
    /// `${VAR}` aside, as [`Config::load`] does, instead of failing.
    pub fn parse_with(
        text: &str,
        path: &Path,
        root: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
        lenient: bool,
    ) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        // An error at a line and column of the file.
        let at = |line: Option<usize>, column: Option<usize>, message: String| {
            ConfigError::Invalid(Diagnostic {
                file: file.clone(),
                line,
                column,
                source_line: line
                    .and_then(|l| text.lines().nth(l.saturating_sub(1)))
                    .map(str::to_string),
                message,
            })
        };
        // An error at a value of the file.
        let at_value = |value: &Location, message: String| {
            let (line, column) = position(value);
            at(line, column, message)
        };
        let raw: RawConfig = crate::intent::yaml::from_str(text)
            .map_err(|e| at(e.line, e.column, explain_yaml_error(&e)))?;
        if raw.environments.value.is_empty() {
            let (line, column) = position(&raw.environments.referenced);
            return Err(at(
                line,
                column,
                "`environments` is empty: list at least one, in promotion order".into(),
            ));
        }
        let mut environments: Vec<Environment> = Vec::new();
        let mut unresolved: Vec<Unresolved> = Vec::new();
        // Where each environment's database_url stands, for the shared-database error.
        let mut url_at = Vec::new();
        for e in raw.environments.value {
            let name = e.name.value.clone();
            if !crate::intent::is_valid_plan_name(&name) {
                return Err(at_value(
                    &e.name.referenced,
                    format!(
                        "environment name `{name}` must hold only letters, digits, `-`, `_` and `.`"
                    ),
                ));
            }
            if environments.iter().any(|x| x.name == name)
                || unresolved.iter().any(|x| x.name == name)
            {
                return Err(at_value(
                    &e.name.referenced,
                    format!("environment `{name}` is listed twice"),
                ));
            }
            let (urls, url_loc) =
                match fleet::urls_of(&e, &name, text, root, lookup, &at, &at_value) {
                    Ok(found) => found,
                    Err((e, can_wait)) if lenient && can_wait => {
                        unresolved.push(Unresolved {
                            position: environments.len() + unresolved.len(),
                            name,
                            error: e.to_string(),
                        });
                        continue;
                    }
                    Err((e, _)) => return Err(e),
                };
            url_at.push(url_loc);
            let url = urls[0].clone();
            let backup_command = e.backup_command.clone();
            let duration = |field: &str,
                            value: &Option<At<String>>,
                            range: DurationRange|
             -> Result<Option<Duration>, ConfigError> {
                value
                    .as_ref()
                    .map(|v| {
                        range
                            .parse(&v.value)
                            .map_err(|m| at_value(&v.referenced, format!("{name}.{field}: {m}")))
                    })
                    .transpose()
            };
            let field = fleet::url_field(&e);
            let dialect =
                dialect_of(&url).map_err(|m| at_value(&url_loc, format!("{name}.{field}: {m}")))?;
            for (i, u) in urls.iter().enumerate().skip(1) {
                let d = dialect_of(u).map_err(|m| {
                    at_value(&url_loc, format!("{name}.{field}: entry {}: {m}", i + 1))
                })?;
                if d != dialect {
                    return Err(at_value(
                        &url_loc,
                        format!(
                            "{name}.{field}: entry {} ({}) is {d}, entry 1 ({}) is {dialect}: every database of one environment must be of one dialect",
                            i + 1,
                            crate::catalog::redact(u),
                            crate::catalog::redact(&url),
                        ),
                    ));
                }
            }
            let fleet = match (&e.database_url, &e.waves) {
                (Some(_), Some(w)) => {
                    return Err(at_value(
                        &w.referenced,
                        format!(
                            "{name}.waves applies to a fleet: list its databases in database_urls or database_urls_from instead of database_url"
                        ),
                    ));
                }
                (Some(_), None) => None,
                (None, waves) => Some(Fleet {
                    targets: urls
                        .iter()
                        .map(|u| resolve_sqlite_path(&crate::dialect::driver_url(u), root))
                        .collect(),
                    waves: match waves {
                        Some(w) => w
                            .value
                            .check()
                            .map_err(|m| at_value(&w.referenced, format!("{name}.{m}")))?,
                        None => Waves::default(),
                    },
                }),
            };
            let replica_lag =
                match backfill::replica_lag(&e, &name, dialect, lookup, &at_value, &duration)? {
                    Ok(lag) => lag,
                    Err(unset) if lenient => {
                        // Set aside, as for an unset variable in its database_url.
                        url_at.pop();
                        unresolved.push(Unresolved {
                            position: environments.len() + unresolved.len(),
                            name,
                            error: unset.to_string(),
                        });
                        continue;
                    }
                    Err(unset) => return Err(unset),
                };
            let pause_for_vacuum = backfill::pause_for_vacuum(&e, &name, dialect, &at_value)?;
            environments.push(Environment {
                replica_lag,
                pause_for_vacuum,
                fleet,
                database_url: resolve_sqlite_path(&crate::dialect::driver_url(&url), root),
                dialect,
                soak: duration("soak", &e.soak, AGE_RANGE)?,
                require_approval: e.require_approval,
                require_backup: duration("require_backup", &e.require_backup, AGE_RANGE)?,
                backup_command,
                lock_timeout: duration("lock_timeout", &e.lock_timeout, TIMEOUT_RANGE)?
                    .unwrap_or(crate::session_bounds::DEFAULT_LOCK_TIMEOUT),
                lock_wait: duration("lock_wait", &e.lock_wait, TIMEOUT_RANGE)?
                    .unwrap_or(Duration::from_secs(30)),
                connect_timeout: duration("connect_timeout", &e.connect_timeout, TIMEOUT_RANGE)?
                    .unwrap_or(Duration::from_secs(5)),
                lock_retries: match &e.lock_retries {
                    Some(n) if n.value > MAX_LOCK_RETRIES => {
                        return Err(at_value(
                            &n.referenced,
                            format!(
                                "{name}.lock_retries: {} is out of range: expected from 0 to {MAX_LOCK_RETRIES}",
                                n.value
                            ),
                        ));
                    }
                    Some(n) => n.value,
                    None => 3,
                },
                statement_timeout: duration(
                    "statement_timeout",
                    &e.statement_timeout,
                    TIMEOUT_RANGE,
                )?,
                backfill_batch: backfill::batch_sizing(&e, &name, &at_value, &duration)?,
                backfill_pause: duration("backfill_pause", &e.backfill_pause, PAUSE_RANGE)?
                    .unwrap_or(Duration::ZERO),
                name,
            });
        }
        for (e, at) in environments.iter().zip(&url_at) {
            for url in e.target_urls() {
                if let Some(why) = refused_url(url) {
                    let which = match &e.fleet {
                        Some(_) => format!("{} ({})", e.name, crate::catalog::redact(url)),
                        None => format!("{}.database_url", e.name),
                    };
                    return Err(at_value(at, format!("{which} {why}")));
                }
            }
        }
        if let Some(((i, a), (j, b))) = shared_database(&environments) {
            let (first, second) = (&environments[i], &environments[j]);
            let message = if i == j {
                format!(
                    "`{}` lists one database twice (its entries {} and {}: {}): each database is one target of a fleet",
                    first.name,
                    a + 1,
                    b + 1,
                    crate::catalog::redact(second.target_urls()[b]),
                )
            } else {
                format!(
                    "environments `{}` and `{}` point at the same database{}: each environment needs its own, or promotion from one to the other proves nothing",
                    first.name,
                    second.name,
                    if first.fleet.is_some() || second.fleet.is_some() {
                        format!(" ({})", crate::catalog::redact(second.target_urls()[b]))
                    } else {
                        String::new()
                    }
                )
            };
            return Err(at_value(&url_at[j], message));
        }
        Ok(Config {
            environments,
            unresolved,
            root: root.to_path_buf(),
            path: path.to_path_buf(),
        })
    }

    /// The environment named `name`; an error when the file has none of
    /// that name, or when its URL names an unset `${VAR}`.
    pub fn environment(&self, name: &str) -> Result<&Environment, ConfigError> {
        match self.slots().into_iter().find(|s| s.name() == name) {
            Some(Slot::Usable(e)) => Ok(e),
            Some(Slot::Unresolved(u)) => Err(ConfigError::Unresolved {
                name: u.name.clone(),
                error: u.error.clone(),
            }),
            None => Err(ConfigError::UnknownEnvironment {
                given: name.to_string(),
                known: self.names(),
            }),
        }
    }

    /// The names of every environment of the file, in promotion order.
    pub fn names(&self) -> Vec<String> {
        self.slots().iter().map(|s| s.name().to_string()).collect()
    }

    /// Every environment of the file in promotion order, the unresolved
    /// ones (see [`Config::unresolved`]) in their places.
    pub fn slots(&self) -> Vec<Slot<'_>> {
        let mut out: Vec<Slot<'_>> = self.environments.iter().map(Slot::Usable).collect();
        for u in &self.unresolved {
            out.insert(u.position.min(out.len()), Slot::Unresolved(u));
        }
        out
    }

    /// The environment promoted to `name` from, if any (usable or not).
    pub fn previous_slot(&self, name: &str) -> Option<Slot<'_>> {
        let slots = self.slots();
        let i = slots.iter().position(|s| s.name() == name)?;
        i.checked_sub(1).map(|p| slots[p])
    }

    /// The environment promoted to `name` from, if any; an error when its
    /// URL names an unset `${VAR}` (the promotion gate of `name` reads it).
    pub fn previous(&self, name: &str) -> Result<Option<&Environment>, ConfigError> {
        match self.previous_slot(name) {
            None => Ok(None),
            Some(Slot::Usable(e)) => Ok(Some(e)),
            Some(Slot::Unresolved(u)) => Err(ConfigError::PromotionNeeds {
                env: name.to_string(),
                previous: u.name.clone(),
                error: u.error.clone(),
            }),
        }
    }

    pub fn plans_dir(&self) -> PathBuf {
        self.root.join("plans")
    }
}

/// The YAML reader's message; for an unknown key, which level it is at and
/// the nearest valid key ("did you mean `database_url`?").
fn explain_yaml_error(e: &crate::intent::yaml::YamlError) -> String {
    let Some((given, expected)) = &e.unknown else {
        return e.message.clone();
    };
    let has = |key: &str| expected.iter().any(|k| k == key);
    let what = if has("database_url") {
        "environment key"
    } else if has("canary") {
        "waves key"
    } else if has("glob") {
        "database_urls_from key"
    } else {
        "top-level key"
    };
    let candidates: Vec<&str> = expected.iter().map(String::as_str).collect();
    crate::suggest::unknown(what, given, &candidates)
}

/// A value's 1-based line and column, when the reader knew them.
fn position(l: &Location) -> (Option<usize>, Option<usize>) {
    let line = usize::try_from(l.line()).ok().filter(|l| *l > 0);
    let column = usize::try_from(l.column()).ok().filter(|c| *c > 0);
    (line, column.filter(|_| line.is_some()))
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
    Dialect::of_url(url).ok_or_else(|| {
        format!(
            "`{}:` is not a database phasegate knows; expected postgres://…, mysql://… or sqlite://…",
            crate::dialect::url_scheme(url)
        )
    })
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
mod tests;
