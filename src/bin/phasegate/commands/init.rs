//! `phasegate init`: a config and an example plan that run on a fresh machine.

use std::fmt::Write;
use std::path::Path;

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
    soak: 1h
  - name: prod
    database_url: sqlite://.phasegate/prod.db
    soak: 24h               # before an irreversible phase, the previous one runs this long
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

/// `phasegate init`.
pub fn init() -> Result<String, Failure> {
    let write = |path: &Path, text: &str, out: &mut String| -> Result<(), Failure> {
        if path.exists() {
            let _ = writeln!(out, "kept     {} (exists already)", path.display());
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Failure::input(format!("error: cannot create {}: {e}", dir.display()))
            })?;
        }
        std::fs::write(path, text)
            .map_err(|e| Failure::input(format!("error: cannot write {}: {e}", path.display())))?;
        let _ = writeln!(out, "created  {}", path.display());
        Ok(())
    };
    let mut out = String::new();
    write(Path::new(CONFIG_FILE), INIT_CONFIG, &mut out)?;
    write(Path::new("plans/example-rename.yaml"), INIT_PLAN, &mut out)?;
    std::fs::create_dir_all(".phasegate")
        .map_err(|e| Failure::input(format!("error: cannot create .phasegate/: {e}")))?;
    // The example's SQLite databases, empty: read-only commands (status,
    // gate) never create a database, so the ones the config names exist.
    for env in ["dev", "staging", "prod"] {
        write(Path::new(&format!(".phasegate/{env}.db")), "", &mut out)?;
    }
    let _ = writeln!(
        out,
        "\nNext:\n  phasegate plan example-rename\n  phasegate apply --env dev example-rename\n  phasegate status"
    );
    Ok(out)
}
