//! `--database DB`: one database of a fleet, for the commands that work on
//! one database (`rollback --phase`, `verify`, `history`, `resolve`,
//! `approve`, `backup`, `accept-change`, `check`, `export`) and for `apply`,
//! `mark` and `gate` on that database alone.
//!
//! A database is named by its URL as listed (or as generated), by its URL as
//! phasegate shows it (the password hidden), or by its name: the last
//! segment of the URL's path (a Postgres or MySQL database name, a SQLite
//! file name), when exactly one database of the fleet has it; failing
//! that, a SQLite file also by its name without extension or by its path
//! as the glob or list gave it.

use crate::catalog::redact;
use crate::suggest::did_you_mean;

use super::super::{RunError, Workspace};

/// The names `url` answers to besides itself: its shown form and the last
/// segment of its path (a database's name; a SQLite file's name).
fn names(url: &str) -> Vec<String> {
    let mut out = vec![redact(url)];
    if let Some(last) = path(url).rsplit('/').next().filter(|s| !s.is_empty())
        && last != path(url)
    {
        out.push(last.to_string());
    }
    out
}

/// The part of `url` after its scheme and before its query.
fn path(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.split_once("://").map_or(path, |(_, rest)| rest)
}

/// SQLite only: a file's name without its extension (`acme` for
/// `acme.db`), or its path as a glob or a list gave it (`tenants/acme.db`).
fn sqlite_names(url: &str, wanted: &str) -> bool {
    if !url.starts_with("sqlite:") {
        return false;
    }
    let path = path(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    stem == wanted
        || path == wanted
        || path.strip_prefix("./") == Some(wanted)
        || path.ends_with(&format!("/{}", wanted.trim_start_matches("./")))
}

impl<'a> Workspace<'a> {
    /// The workspace working on the database of fleet `env_name` that
    /// `wanted` names (see the module doc). [`RunError::Invalid`] when
    /// `env_name` is one database, when no database of the fleet has that
    /// name (with the nearest name), or when several have it.
    pub fn on_database(&self, env_name: &str, wanted: &str) -> Result<Workspace<'a>, RunError> {
        let env = self.config.environment(env_name)?;
        let Some(fleet) = &env.fleet else {
            return Err(RunError::Invalid(format!(
                "{env_name} is one database, not a fleet: --database picks one database of a fleet; leave it out"
            )));
        };
        if fleet.targets.iter().any(|u| u == wanted) {
            return Ok(self.on_target(wanted));
        }
        // A name as it is first (a database called `a.b` is not `a`), then,
        // for SQLite files, a file name without extension or a path.
        let mut matching: Vec<&String> = fleet
            .targets
            .iter()
            .filter(|u| names(u).iter().any(|n| n == wanted))
            .collect();
        if matching.is_empty() {
            matching = fleet
                .targets
                .iter()
                .filter(|u| sqlite_names(u, wanted))
                .collect();
        }
        match matching.as_slice() {
            [one] => Ok(self.on_target(one)),
            [] => {
                let all: Vec<Vec<String>> = fleet.targets.iter().map(|u| names(u)).collect();
                // A SQLite file's name without its extension is a name too.
                let stems: Vec<String> = all
                    .iter()
                    .zip(&fleet.targets)
                    .filter(|(_, u)| u.starts_with("sqlite:"))
                    .filter_map(|(n, _)| n.get(1)?.rsplit_once('.').map(|(s, _)| s.to_string()))
                    .collect();
                let candidates: Vec<&str> = all
                    .iter()
                    .flatten()
                    .chain(&stems)
                    .map(String::as_str)
                    .collect();
                let shown: Vec<&str> = all
                    .iter()
                    .map(|n| n.get(1).unwrap_or(&n[0]).as_str())
                    .take(5)
                    .collect();
                let more = if fleet.targets.len() > shown.len() {
                    ", …"
                } else {
                    ""
                };
                Err(RunError::Invalid(format!(
                    "no database of {env_name} is `{wanted}`{} ({} databases: {}{more}; `phasegate status --env {env_name}` lists them)",
                    did_you_mean(wanted, &candidates),
                    fleet.targets.len(),
                    shown.join(", "),
                )))
            }
            several => Err(RunError::Invalid(format!(
                "`{wanted}` names {} databases of {env_name}: {}; give one's URL",
                several.len(),
                several
                    .iter()
                    .map(|u| redact(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{names, sqlite_names};

    #[test]
    fn a_database_answers_to_its_shown_url_and_its_name() {
        assert_eq!(
            names("postgres://app:secret@db.internal:5432/tenant_7?sslmode=require"),
            [
                "postgres://app:***@db.internal:5432/tenant_7?sslmode=require",
                "tenant_7"
            ]
        );
        assert_eq!(
            names("sqlite:///srv/tenants/acme.db?mode=rwc"),
            ["sqlite:///srv/tenants/acme.db?mode=rwc", "acme.db"]
        );
        // A URL without a path has no name of its own.
        assert_eq!(names("mysql://root@h"), ["mysql://root@h"]);
        // A Postgres database called `brk_f.c` is not `brk_f`.
        assert!(!sqlite_names("postgres://h/brk_f.c", "brk_f"));
        let file = "sqlite://./tenants/x/acme.db?mode=rwc";
        for name in [
            "acme",
            "tenants/x/acme.db",
            "./tenants/x/acme.db",
            "x/acme.db",
        ] {
            assert!(sqlite_names(file, name), "{name}");
        }
        assert!(!sqlite_names(file, "cme.db"));
    }
}
