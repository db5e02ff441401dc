//! Which database an environment's URL names, so that two spellings of one
//! database compare equal and two environments cannot share one.

use std::path::{Path, PathBuf};

use super::Environment;

/// The indices of the first two environments whose database URLs name the
/// same database once normalised (see [`database_identity`]).
pub(super) fn shared_database(environments: &[Environment]) -> Option<(usize, usize)> {
    let ids: Vec<String> = environments
        .iter()
        .map(|e| database_identity(&e.database_url))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        if let Some(j) = ids[..i].iter().position(|other| other == id) {
            return Some((j, i));
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

