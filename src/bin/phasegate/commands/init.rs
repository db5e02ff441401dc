//! `phasegate init`: a config and an example plan that run on a fresh machine.
//!
//! The config goes where `--config` says (default `phasegate.yaml`); the
//! example plan, the SQLite databases and `.gitignore` go in the folder the
//! config is in, which is the project root every later command resolves
//! `plans/`, `templates/` and relative `sqlite://` paths against.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use phasegate::config::CONFIG_FILE;

use crate::Failure;

const INIT_CONFIG: &str =
    "# phasegate environments, in promotion order: a phase reaches staging only
# after dev completes it, and prod only after staging.
environments:
  - name: dev
    database_url: sqlite://.phasegate/dev.db
  - name: staging
    database_url: sqlite://.phasegate/staging.db
    soak: 2s                # so the example finishes today; in production: hours (e.g. 1h)
  - name: prod
    database_url: sqlite://.phasegate/prod.db
    soak: 5s                # before an irreversible phase, the previous one runs this long; in production: 24h or more
    require_approval: true  # irreversible phases need `phasegate approve`
    require_backup: 24h     # and a backup recorded within this window (`phasegate backup`)
    # backup_command: cp .phasegate/prod.db backups/prod-$(date +%s).db && echo backups/...
    # A real database: database_url: ${PROD_DATABASE_URL}
";

const INIT_PLAN: &str = "# An example: create a table, then rename one of its columns the safe way.
# Try: phasegate plan example-rename
#      phasegate apply --env dev example-rename
description: Create a users table, then rename users.name to full_name
changes:
  - sql:
      phases:
        - up: CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT)
          down: DROP TABLE users
  - rename_column: { table: users, from: name, to: full_name }
";

/// The line `.gitignore` gets: phasegate's local databases are not source.
const IGNORE: &str = ".phasegate/";

/// `phasegate init`, writing the config at `config` (default `phasegate.yaml`).
pub fn init(config: Option<PathBuf>) -> Result<String, Failure> {
    let config_path = config.unwrap_or_else(|| PathBuf::from(CONFIG_FILE));
    let root = match config_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let shown = |p: &Path| p.strip_prefix("./").unwrap_or(p).display().to_string();
    let write = |path: &Path, text: &str, out: &mut String| -> Result<(), Failure> {
        if path.exists() {
            let _ = writeln!(out, "kept     {} (exists already)", shown(path));
            return Ok(());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Failure::input(format!("error: cannot create {}: {e}", dir.display()))
            })?;
        }
        std::fs::write(path, text)
            .map_err(|e| Failure::input(format!("error: cannot write {}: {e}", path.display())))?;
        let _ = writeln!(out, "created  {}", shown(path));
        Ok(())
    };
    let mut out = String::new();
    write(&config_path, INIT_CONFIG, &mut out)?;
    write(&root.join("plans/example-rename.yaml"), INIT_PLAN, &mut out)?;
    let data = root.join(".phasegate");
    std::fs::create_dir_all(&data)
        .map_err(|e| Failure::input(format!("error: cannot create {}: {e}", data.display())))?;
    // The example's SQLite databases, empty: read-only commands (status,
    // gate) never create a database, so the ones the config names exist.
    for env in ["dev", "staging", "prod"] {
        write(&data.join(format!("{env}.db")), "", &mut out)?;
    }
    let gitignore = root.join(".gitignore");
    ignore_local_databases(&gitignore, &shown(&gitignore), &mut out)?;
    let flag = if config_path == Path::new(CONFIG_FILE) {
        String::new()
    } else {
        format!(" --config {}", config_path.display())
    };
    let _ = writeln!(
        out,
        "\nNext:\n  phasegate{flag} plan example-rename\n  phasegate{flag} apply --env dev example-rename\n  phasegate{flag} status"
    );
    Ok(out)
}

/// Adds `.phasegate/` to `.gitignore` (creating it) unless a line already
/// ignores that folder.
fn ignore_local_databases(path: &Path, shown: &str, out: &mut String) -> Result<(), Failure> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Failure::input(format!(
                "error: cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let ignored = existing.as_deref().is_some_and(|text| {
        text.lines().any(|l| {
            matches!(
                l.trim(),
                ".phasegate" | ".phasegate/" | "/.phasegate" | "/.phasegate/"
            )
        })
    });
    if ignored {
        let _ = writeln!(out, "kept     {shown} (ignores {IGNORE} already)");
        return Ok(());
    }
    let mut text = existing.clone().unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(IGNORE);
    text.push('\n');
    std::fs::write(path, text)
        .map_err(|e| Failure::input(format!("error: cannot write {}: {e}", path.display())))?;
    let verb = if existing.is_some() {
        "extended"
    } else {
        "created "
    };
    let _ = writeln!(out, "{verb} {shown} (ignores {IGNORE})");
    Ok(())
}
