//! Exporting a plan's deploys as a migration runner's files (`phasegate
//! export --to <runner>`): Flyway, Liquibase, golang-migrate, dbmate, sqlx,
//! Supabase, Alembic, Django, Rails and Prisma.
//!
//! Two halves, one contract between them:
//! - [`build`] turns a plan, planned against an environment's live schema
//!   as `apply` plans it, into [`Deploy`]s: each deploy's migrations cut into
//!   [`Unit`]s (what may share a transaction, what must run alone outside
//!   one), each with its lock and statement timeouts, the guard that refuses
//!   to run it out of order, and the SQL that records it in the
//!   environment's phasegate log.
//! - [`runners`] writes deploys as one runner's files, with its naming,
//!   ordering and way of running outside a transaction. A runner knows
//!   nothing of plans; it only lays out units.

pub mod build;
pub mod direct;
mod down;
#[cfg(test)]
pub(crate) mod fixture;
mod guard;
mod refuse;
pub mod runners;

pub use build::{Built, build};

use std::path::PathBuf;

use crate::dialect::Dialect;

/// One deploy (phase) of a plan, ready to be laid out as a runner's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    /// The plan's name (`name:` in the plan file); runners slugify it for file names.
    pub plan: String,
    /// 1-based, as `phasegate plan` numbers deploys.
    pub phase: usize,
    /// How many deploys the plan has.
    pub of: usize,
    pub dialect: Dialect,
    /// One line saying what this deploy's migrations do, for file headers.
    pub summary: String,
    /// False when a step of it cannot be undone (its down file, if any, says so).
    pub reversible: bool,
    /// What the application code shipped with this deploy must do (one
    /// entry per app step), for the file's header comment.
    pub app: Vec<String>,
    /// The migrations, in the order they run.
    pub units: Vec<Unit>,
    /// How to undo the deploy, in the order it runs (`None`: irreversible).
    pub down: Option<Vec<Unit>>,
}

/// A run of statements a runner sends as one migration, or one part of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// A slug for file names and revision ids: `[a-z0-9_]+`, e.g.
    /// `add_column`, `create_index_concurrently`, `record`.
    pub name: String,
    /// True: may run inside the runner's transaction (and should: its
    /// recording is part of it). False: must run outside any transaction,
    /// and alone; a non-transactional unit holds its session settings and
    /// exactly one statement that cannot run in a transaction, and its
    /// recording is the next unit.
    pub transactional: bool,
    /// Comment lines (without `-- `) to put above the unit's SQL.
    pub comments: Vec<String>,
    /// The statements, in order, each terminated with `;` (a Postgres `DO`
    /// block or a MySQL body is one statement). Timeouts first; no
    /// `BEGIN`/`COMMIT`: the runner provides the transaction.
    pub statements: Vec<String>,
    /// The plan's step ids this unit runs (empty for a guard or a record).
    pub steps: Vec<String>,
}

impl Unit {
    /// The unit as one SQL text: its comments, then its statements, one per
    /// line group, as a runner that sends a whole file writes it.
    pub fn sql(&self) -> String {
        let mut out = String::new();
        for c in &self.comments {
            out.push_str("-- ");
            out.push_str(c);
            out.push('\n');
        }
        for s in &self.statements {
            out.push_str(s);
            out.push('\n');
        }
        out
    }
}

/// One file a runner's export writes, relative to the export folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    pub path: PathBuf,
    pub contents: String,
}

/// What `export` needs beyond the deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The version or timestamp files are numbered from, so they sort after
    /// the team's existing migrations: `YYYYMMDDHHMMSS` (UTC) of the export
    /// unless `--version` gives one. A runner with sequential versions
    /// (Flyway `V<n>`) uses it as is; each later file adds one.
    pub version: String,
    /// The runner's latest existing migration the first exported file must
    /// follow: Alembic's `down_revision`, Django's dependency
    /// (`app_label.0007_name`). `None`: the first in its history.
    pub after: Option<String>,
    /// Django's app label (the folder is `<app>/migrations/`).
    pub app: String,
    /// Liquibase's changeset author.
    pub author: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: "20260101000000".into(),
            after: None,
            app: "phasegate".into(),
            author: "phasegate".into(),
        }
    }
}

/// Why an export cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The runner does not run this database (`runner`, `dialect`).
    #[error("{runner} does not run {dialect} migrations")]
    Unsupported { runner: Runner, dialect: Dialect },
    /// A statement the runner cannot carry as written.
    #[error("{runner}: {message}")]
    Cannot { runner: Runner, message: String },
}

/// The migration runners phasegate exports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runner {
    Flyway,
    Liquibase,
    GolangMigrate,
    Dbmate,
    Sqlx,
    Supabase,
    Alembic,
    Django,
    Rails,
    Prisma,
}

impl Runner {
    pub const ALL: [Runner; 10] = [
        Runner::Flyway,
        Runner::Liquibase,
        Runner::GolangMigrate,
        Runner::Dbmate,
        Runner::Sqlx,
        Runner::Supabase,
        Runner::Alembic,
        Runner::Django,
        Runner::Rails,
        Runner::Prisma,
    ];
    /// The names `--to` takes.
    pub const NAMES: &'static [&'static str] = &[
        "flyway",
        "liquibase",
        "golang-migrate",
        "dbmate",
        "sqlx",
        "supabase",
        "alembic",
        "django",
        "rails",
        "prisma",
    ];

    /// Where the runner looks for migrations by convention, relative to the
    /// project (the default `--dir`).
    pub fn default_dir(self) -> &'static str {
        match self {
            Runner::Flyway => "db/migration",
            Runner::Liquibase => "db/changelog",
            Runner::GolangMigrate => "migrations",
            Runner::Dbmate => "db/migrations",
            Runner::Sqlx => "migrations",
            Runner::Supabase => "supabase/migrations",
            Runner::Alembic => "alembic/versions",
            Runner::Django => ".",
            Runner::Rails => "db/migrate",
            Runner::Prisma => "prisma/migrations",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runner::Flyway => "flyway",
            Runner::Liquibase => "liquibase",
            Runner::GolangMigrate => "golang-migrate",
            Runner::Dbmate => "dbmate",
            Runner::Sqlx => "sqlx",
            Runner::Supabase => "supabase",
            Runner::Alembic => "alembic",
            Runner::Django => "django",
            Runner::Rails => "rails",
            Runner::Prisma => "prisma",
        }
    }
}

impl std::fmt::Display for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown runner name, with the nearest known one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", crate::suggest::unknown("runner", .given, Runner::NAMES))]
pub struct UnknownRunner {
    pub given: String,
}

impl std::str::FromStr for Runner {
    type Err = UnknownRunner;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let wanted = match lower.as_str() {
            "migrate" | "golang_migrate" => "golang-migrate",
            other => other,
        };
        Runner::NAMES
            .iter()
            .position(|n| *n == wanted)
            .map(|i| Runner::ALL[i])
            .ok_or(UnknownRunner { given: s.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_as_one_text_keeps_its_comments_and_statements_in_order() {
        let deploys = fixture::deploys(Dialect::Postgres);
        let sql = deploys[0].units[1].sql();
        let comment = sql.find("-- add_column").unwrap();
        let alter = sql.find("ALTER TABLE users ADD COLUMN").unwrap();
        let record = sql.find("INSERT INTO phasegate_events").unwrap();
        assert!(comment < alter && alter < record, "{sql}");
    }

    #[test]
    fn runner_names_read_back_and_a_misspelling_gets_the_nearest() {
        for r in Runner::ALL {
            assert_eq!(r.name().parse::<Runner>().unwrap(), r);
        }
        assert_eq!("migrate".parse::<Runner>().unwrap(), Runner::GolangMigrate);
        let e = "flywya".parse::<Runner>().unwrap_err().to_string();
        assert!(e.contains("flyway"), "{e}");
    }
}
