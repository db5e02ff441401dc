//! `--database DB`: one database of a fleet, for the commands that work on
//! one database (`rollback --phase`, `verify`, `history`, `resolve`,
//! `approve`, `backup`, `accept-change`, `check`, `export`) and for `apply`,
//! `mark` and `gate` on that database alone.
//!
//! A database is named by its URL as listed (or as generated), by its URL as
//! phasegate shows it (the password hidden), or by its name: the last
//! segment of the URL's path (a Postgres or MySQL database name, a SQLite
//! file name), with or without its extension, when exactly one database of
//! the fleet has it.

use crate::catalog::redact;
use crate::suggest::did_you_mean;

use super::super::{RunError, Workspace};

/// The names `url` answers to besides itself: its shown form, the last
/// segment of its path, and that segment without its extension.
fn names(url: &str) -> Vec<String> {
    let mut out = vec![redact(url)];
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let path = path.split_once("://").map_or(path, |(_, rest)| rest);
    if let Some(last) = path.rsplit('/').next().filter(|s| !s.is_empty())
        && last != path
    {
        out.push(last.to_string());
        if let Some((stem, _)) = last.rsplit_once('.')
            && !stem.is_empty()
        {
            out.push(stem.to_string());
        }
    }
    out
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
        let matching: Vec<&String> = fleet
            .targets
            .iter()
            .filter(|u| names(u).iter().any(|n| n == wanted))
            .collect();
        match matching.as_slice() {
            [one] => Ok(self.on_target(one)),
            [] => {
                let all: Vec<Vec<String>> = fleet.targets.iter().map(|u| names(u)).collect();
                let candidates: Vec<&str> = all.iter().flatten().map(String::as_str).collect();
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
    use super::names;

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
            ["sqlite:///srv/tenants/acme.db?mode=rwc", "acme.db", "acme"]
        );
        // A URL without a path has no name of its own.
        assert_eq!(names("mysql://root@h"), ["mysql://root@h"]);
    }
}
