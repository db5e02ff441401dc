//! Which database an environment's URL names, so that two spellings of one
//! database compare equal and two environments cannot share one.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::Environment;

/// The first two databases, of one environment or of two, that are one
/// database once normalised (see [`database_identity`]), each as
/// (environment index, index among its targets).
pub(super) fn shared_database(
    environments: &[Environment],
) -> Option<((usize, usize), (usize, usize))> {
    let mut seen: std::collections::HashMap<String, (usize, usize)> =
        std::collections::HashMap::new();
    for (i, e) in environments.iter().enumerate() {
        for (t, url) in e.target_urls().into_iter().enumerate() {
            if let Some(first) = seen.insert(database_identity(url), (i, t)) {
                return Some((first, (i, t)));
            }
        }
    }
    None
}

/// What identifies the database a URL points at, so that two spellings of
/// one database compare equal: for SQLite the file's canonical path (of its
/// folder, when the file does not exist yet); for a server, the dialect,
/// host (`localhost`, `127.0.0.1`, `::1` and a Postgres Unix socket are
/// one; a MySQL socket by its path), port (the default when absent) and database name (the user's
/// name on Postgres when none is given), as the driver parses them
/// (percent-decoded; Postgres' `dbname`, `host`, `port`, `user` query
/// parameters honoured), ignoring password and other options.
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
    server_identity(database_url).unwrap_or_else(|| database_url.to_string())
}

/// A server URL's identity from the driver's own parse of it
/// (`PgConnectOptions` / `MySqlConnectOptions`), so that what the driver
/// honours counts: percent-encoded names, and on Postgres the `host`,
/// `hostaddr`, `port`, `dbname` and `user` query parameters and the `PG*`
/// environment variables for what the URL leaves out. `None` when the
/// driver cannot parse it (the connection then fails with its error).
fn server_identity(database_url: &str) -> Option<String> {
    let scheme = database_url.split_once("://").map(|(s, _)| s)?;
    let (scheme, host, socket, port, db) = match scheme {
        "postgres" | "postgresql" => {
            let o = sqlx::postgres::PgConnectOptions::from_str(database_url).ok()?;
            // Postgres connects to the database named like the user when none is given.
            let db = o.get_database().unwrap_or(o.get_username()).to_string();
            let socket = o.get_socket().map(|p| p.display().to_string());
            (
                "postgres",
                o.get_host().to_string(),
                socket,
                o.get_port(),
                db,
            )
        }
        "mysql" | "mariadb" => {
            let o = sqlx::mysql::MySqlConnectOptions::from_str(database_url).ok()?;
            let db = o.get_database().unwrap_or_default().to_string();
            let socket = o.get_socket().map(|p| p.display().to_string());
            ("mysql", o.get_host().to_string(), socket, o.get_port(), db)
        }
        _ => return None,
    };
    let host = match socket {
        // A Postgres socket is `<dir>/.s.PGSQL.<port>`: the local server on that port.
        Some(_) if scheme == "postgres" => "localhost".to_string(),
        None if scheme == "postgres" && host.starts_with('/') => "localhost".to_string(),
        // MySQL's socket names the server by itself.
        Some(path) => format!("unix:{path}"),
        None => {
            let h = host.to_ascii_lowercase();
            let bare = h.trim_start_matches('[').trim_end_matches(']');
            if bare == "127.0.0.1" || bare == "::1" || bare == "localhost" {
                "localhost".to_string()
            } else {
                h
            }
        }
    };
    Some(format!("{scheme}://{host}:{port}/{db}"))
}

/// Why a database URL is refused at config load, if it is: a Postgres URL
/// whose `options` (or the `PGOPTIONS` the driver adds) set `search_path`. phasegate finds its own tables
/// (`phasegate_meta`, `phasegate_events`, `phasegate_head`) by unqualified
/// name, so a second search path would give one database a second event
/// log, and a second environment on it would escape the marker that says
/// whose the database is. A non-default schema for the application is set
/// on the role or database instead (`ALTER ROLE … SET search_path`).
pub(super) fn refused_url(database_url: &str) -> Option<String> {
    let scheme = database_url.split_once("://").map(|(s, _)| s)?;
    if scheme != "postgres" && scheme != "postgresql" {
        return None;
    }
    let o = sqlx::postgres::PgConnectOptions::from_str(database_url).ok()?;
    let options = o.get_options()?;
    options
        .to_ascii_lowercase()
        .replace('-', "_")
        .contains("search_path")
        .then(|| {
            "sets search_path in its options (or PGOPTIONS): phasegate keeps its event log in the tables it finds by name, so a second search path would give this database a second log; set the application's search_path on its role or database instead (ALTER ROLE … SET search_path), not in database_url".to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_the_driver_honours_are_one_database() {
        let base = database_identity("postgres://postgres@127.0.0.1:5432/app");
        for other in [
            "postgres://postgres@127.0.0.1:5432/%61pp",
            "postgres://postgres@127.0.0.1:5432/postgres?dbname=app",
            "postgresql://postgres@elsewhere:6000/app?host=localhost&port=5432",
            "postgres://postgres@[::1]/app",
        ] {
            assert_eq!(database_identity(other), base, "{other}");
        }
        assert_eq!(
            database_identity("postgres://postgres@%2Fvar%2Frun%2Fpostgresql/app"),
            base
        );
        assert_eq!(
            database_identity("postgres://app@127.0.0.1:5432"),
            database_identity("postgres://127.0.0.1:5432/app?user=app"),
        );
        assert_eq!(
            database_identity("mysql://root@127.0.0.1:3306/app"),
            database_identity("mariadb://root@localhost/%61pp"),
        );
    }

    #[test]
    fn different_databases_stay_different() {
        let base = database_identity("postgres://postgres@127.0.0.1:5432/app");
        for other in [
            "postgres://postgres@127.0.0.1:5432/app?dbname=app2",
            "postgres://postgres@127.0.0.1:5433/app",
            "postgres://postgres@db.example:5432/app",
            "mysql://postgres@127.0.0.1:5432/app",
        ] {
            assert_ne!(database_identity(other), base, "{other}");
        }
        // MySQL's driver does not read `dbname`: the path names the database.
        assert_ne!(
            database_identity("mysql://root@127.0.0.1/app"),
            database_identity("mysql://root@127.0.0.1/other?dbname=app"),
        );
    }

    #[test]
    fn a_search_path_in_postgres_options_is_refused() {
        for url in [
            "postgres://h/app?options=-c%20search_path%3Ds",
            "postgres://h/app?options=--search-path%3Ds",
            "postgres://h/app?options[search_path]=s",
        ] {
            assert!(refused_url(url).is_some(), "{url}");
        }
        for url in [
            "postgres://h/app?options=-c%20statement_timeout%3D5s",
            "postgres://h/app",
            "mysql://h/app?options=search_path",
        ] {
            assert!(refused_url(url).is_none(), "{url}");
        }
    }
}
