//! The command line's grammar: every command, option and shorthand, with
//! the help text `phasegate --help` shows. Parsing only; no work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use phasegate::dialect::Dialect;
use phasegate::output::{self, Format};

/// What `phasegate --help` says about exit codes (docs/workflow.md has the table).
const EXIT_CODES: &str = "\
Exit codes:
  0    done, or nothing to do (complete, marked or approved already)
  1    blocked by a gate: try again later, or do what the reasons say
  2    error: bad input, config or plan; unknown env or phase; unreachable database; failed step
  3    waiting for the app deploy of a migrated phase: deploy it, then `phasegate mark`
  130  interrupted
With --format json every environment command prints exactly one JSON document
on stdout, whatever happens (docs/json.md).";

/// Plan and drive expand–contract schema changes across deploys and environments.
#[derive(Parser)]
#[command(name = "phasegate", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// The config file (default: phasegate.yaml in the current folder).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// For an environment that is a fleet: work on this one of its
    /// databases (its URL, or its database or file name). Without it,
    /// apply, gate, mark, rollback and status run across the fleet, and the
    /// other commands refuse it.
    #[arg(long, global = true, value_name = "DB")]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// text for people, json for pipelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Out {
    /// Text for people.
    Text,
    /// One JSON document on stdout, whatever happens (docs/json.md).
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Expand a plan into deploys: the migrations each runs, the app code each ships.
    ///
    /// PLAN is a plan file, or the name of one under plans/. Or describe one
    /// change directly: `phasegate plan rename users.name full_name`.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_value_name = "SHORTHAND"
    )]
    Plan(PlanArgs),
    /// Write phasegate.yaml (dev, staging, prod as SQLite files under .phasegate/) and an example plan.
    Init,
    /// Every plan in every environment: phase reached, state, what blocks the next step.
    Status {
        /// Only this environment (a name from phasegate.yaml).
        #[arg(long)]
        env: Option<String>,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// May the plan's next step run in ENV? Exit 0: yes (or the plan is complete); 1: a gate blocks; 2: error; 3: waiting for an app deploy.
    Gate {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Has ENV's database reached phase N of PLAN? Exit 0: yes; 1: not yet; 2: error.
    ///
    /// For a service's start-up script or a pipeline. Reached: the phase's
    /// migrations are applied (with --deployed: and its app code is marked
    /// deployed). Reads the log only; creates and writes nothing.
    Check {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// The phase the service needs (1-based, as `phasegate plan` numbers deploys).
        #[arg(long)]
        phase: usize,
        /// Require the phase's app code to be marked deployed too (`phasegate mark`).
        #[arg(long)]
        deployed: bool,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Run the next phase's migrations in ENV, if every gate holds.
    Apply {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// Print the SQL that would run, and run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Record that phase N's app code is deployed in ENV.
    Mark {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// The phase whose app code is deployed (1 is the first).
        #[arg(long)]
        phase: usize,
        /// The app release that ships it (a tag, a commit): recorded in the log.
        #[arg(long)]
        app_version: String,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Undo the latest phase that ran in ENV, or phase N with --phase (reversible phases only).
    Rollback {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// Roll back phase N only: if it is rolled back already, nothing to
        /// do (a re-run is safe); if a later phase is in place, refused.
        #[arg(long, value_name = "N")]
        phase: Option<usize>,
        /// The phase's app code was deployed and has been reverted already.
        #[arg(long)]
        app_reverted: bool,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Approve an irreversible phase in ENV.
    Approve {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// The irreversible phase to approve (1 is the first).
        #[arg(long)]
        phase: usize,
        /// Who approves (default: the current user).
        #[arg(long)]
        by: Option<String>,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Record a backup of ENV (running its backup_command, if configured).
    Backup {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// Where the backup is (default: the last line the backup_command printed).
        #[arg(long)]
        location: Option<String>,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Run the verification queries of the latest phase that ran and has some (or of --phase).
    Verify {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// This phase's queries (default: the latest phase that ran and has some).
        #[arg(long)]
        phase: Option<usize>,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// The event log of ENV (or of one plan there).
    History {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// Only this plan's events (a plan file, or the name of a plan under plans/).
        plan: Option<String>,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Accept an edited plan file in ENV on purpose (the drift gate blocks it otherwise).
    AcceptChange {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// Why the change is safe: recorded in the log.
        #[arg(long)]
        reason: String,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Settle a step that failed or never finished, after checking the database by hand.
    ///
    /// `--as applied` records that the step's change is in the database: apply
    /// skips it and goes on. `--as not-applied` records that it is not: apply
    /// runs it again (a backfill resumes after its last checkpoint). A step
    /// that ran only in part (MySQL commits DDL statement by statement) must
    /// first be finished or undone by hand. A step whose undo by `rollback`
    /// failed or never finished is settled `--as rolled-back` (its change is
    /// gone: the next rollback goes on with the steps before it) or `--as
    /// not-rolled-back` (the next rollback undoes it again).
    Resolve {
        /// The environment (a name from phasegate.yaml).
        #[arg(long)]
        env: String,
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// The step's id, as `status` and the error that stopped it name it (e.g. 1.add_column).
        #[arg(long)]
        step: String,
        /// What the database shows: the step's effect is there (applied) or not (not-applied).
        /// For a step whose rollback failed or never finished: rolled-back (its
        /// effect is gone) or not-rolled-back (it is still there).
        #[arg(long = "as", value_parser = ["applied", "not-applied", "rolled-back", "not-rolled-back"])]
        outcome: String,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Write deploys of a plan as a migration runner's files (docs/export.md).
    ///
    /// The plan is made against ENV's live schema exactly as `apply` makes
    /// it. Each deploy's files open with a guard (it refuses to run out of
    /// order, twice, or from an edited plan) and record what they ran in the
    /// database's phasegate log, so `status`, `mark` and the gates keep
    /// working. Without --phase: every deploy before the first irreversible
    /// one; that one (and those after it) only with --phase. A file that
    /// exists with other content is never overwritten.
    Export {
        #[command(flatten)]
        args: crate::commands::export::Args,
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// Output: text for people, json for pipelines (one document on stdout).
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Print a shell completion script: `phasegate completions bash > /etc/bash_completion.d/phasegate`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into --dir.
    Man {
        /// Write phasegate.1, phasegate-apply.1, … into this folder (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Report unsafe statements in SQL migration files. Exit 0: none; 1: findings (parse errors included); 2: a file could not be read.
    ///
    /// Each finding: file:line:column, the rule, the lock the statement takes
    /// and why it is unsafe while the previous release runs, and the
    /// phasegate intent that does it in phases. Accept a statement with
    /// `-- phasegate: accept <rule> <reason>` on the line above it.
    Lint(LintArgs),
    /// Turn a migration file's unsafe statements into a phasegate plan (printed as YAML; --write saves it under plans/).
    Convert(ConvertArgs),
    /// Print a JSON Schema: `phasegate schema plan > plan.schema.json` for editors (docs/intents.md).
    Schema {
        /// Which document: plan (a plan file).
        #[arg(value_enum)]
        document: SchemaDocument,
    },
    /// Sizes of the tables PLAN touches and each backfill's estimated duration, as Markdown (docs/review.md). Reads only.
    Estimate {
        /// A plan file, or the name of a plan under plans/.
        plan: String,
        /// The database to read the tables' sizes from (postgres://…, mysql://…, mariadb://…, sqlite:…); its dialect plans the plan.
        #[arg(long, value_name = "URL")]
        database_url: String,
        /// The backfill rate to estimate with, in rows per second (default: 150000, from the backfill benchmark).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        rows_per_second: Option<u64>,
        /// Project templates that override the built-in ones (<DIR>/<dialect>/<kind>.sql).
        #[arg(long, default_value = "templates")]
        templates: PathBuf,
    },
}

/// The documents `phasegate schema` prints the JSON Schema of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaDocument {
    /// A plan file (plans/*.yaml); the same as docs/schema/plan.json.
    Plan,
}

/// Output of `lint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LintFormat {
    /// Text for people: each finding with its lock, why, and what instead.
    Text,
    /// One JSON document (docs/lint.md).
    Json,
    /// `file:line:col: warning: rule: message`, one a line (editors, compilers' format).
    Gcc,
    /// GitHub Actions workflow commands (`::warning file=…,line=…,col=…::…`): annotations on the pull request.
    Github,
}

#[derive(Args)]
pub struct LintArgs {
    /// SQL files, or folders of them (their .sql files, recursively, in name order).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    /// SQL dialect: postgres, mysql (alias mariadb) or sqlite. Default: the
    /// dialect of the config's environments, else postgres.
    #[arg(long, value_parser = parse_dialect)]
    pub dialect: Option<Dialect>,
    /// Output: text, json, gcc or github.
    #[arg(long, value_enum, default_value = "text")]
    pub format: LintFormat,
}

#[derive(Args)]
pub struct ConvertArgs {
    /// The SQL migration file.
    pub file: PathBuf,
    /// SQL dialect: postgres, mysql (alias mariadb) or sqlite. Default: the
    /// dialect of the config's environments, else postgres.
    #[arg(long, value_parser = parse_dialect)]
    pub dialect: Option<Dialect>,
    /// Save the plan under plans/ (never overwrites a plan).
    #[arg(long)]
    pub write: bool,
}

impl Command {
    /// The command's name as typed (and as the JSON `command` field says it).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Plan(_) => "plan",
            Command::Init => "init",
            Command::Status { .. } => "status",
            Command::Gate { .. } => "gate",
            Command::Apply { .. } => "apply",
            Command::Mark { .. } => "mark",
            Command::Rollback { .. } => "rollback",
            Command::Approve { .. } => "approve",
            Command::Backup { .. } => "backup",
            Command::Verify { .. } => "verify",
            Command::History { .. } => "history",
            Command::AcceptChange { .. } => "accept-change",
            Command::Resolve { .. } => "resolve",
            Command::Check { .. } => "check",
            Command::Export { .. } => "export",
            Command::Completions { .. } => "completions",
            Command::Man { .. } => "man",
            Command::Lint(_) => "lint",
            Command::Convert(_) => "convert",
            Command::Schema { .. } => "schema",
            Command::Estimate { .. } => "estimate",
        }
    }

    /// A command that works on no database (`--database` means nothing to it).
    pub fn works_on_no_database(&self) -> bool {
        matches!(
            self,
            Command::Plan(_)
                | Command::Init
                | Command::Completions { .. }
                | Command::Man { .. }
                | Command::Lint(_)
                | Command::Convert(_)
                | Command::Schema { .. }
                | Command::Estimate { .. }
        )
    }

    /// The environment an environment command names (`None` for the
    /// others, for `status`, which covers every environment, and for
    /// `export` without `--env`).
    pub fn env(&self) -> Option<&str> {
        match self {
            Command::Gate { env, .. }
            | Command::Check { env, .. }
            | Command::Apply { env, .. }
            | Command::Mark { env, .. }
            | Command::Rollback { env, .. }
            | Command::Approve { env, .. }
            | Command::Backup { env, .. }
            | Command::Verify { env, .. }
            | Command::History { env, .. }
            | Command::AcceptChange { env, .. }
            | Command::Resolve { env, .. } => Some(env),
            Command::Export { args, .. } => args.env.as_deref(),
            _ => None,
        }
    }

    /// The output format of an environment command (text for `plan` and `init`).
    pub fn format(&self) -> Out {
        match self {
            Command::Plan(_)
            | Command::Init
            | Command::Completions { .. }
            | Command::Man { .. }
            | Command::Lint(_)
            | Command::Convert(_)
            | Command::Schema { .. }
            | Command::Estimate { .. } => Out::Text,
            Command::Status { format, .. }
            | Command::Gate { format, .. }
            | Command::Apply { format, .. }
            | Command::Mark { format, .. }
            | Command::Rollback { format, .. }
            | Command::Approve { format, .. }
            | Command::Backup { format, .. }
            | Command::Verify { format, .. }
            | Command::History { format, .. }
            | Command::AcceptChange { format, .. }
            | Command::Resolve { format, .. }
            | Command::Check { format, .. }
            | Command::Export { format, .. } => *format,
        }
    }
}

#[derive(Args)]
pub struct PlanArgs {
    /// A plan file, or the name of a plan under plans/.
    pub plan: Option<String>,
    #[command(flatten)]
    pub opts: PlanOpts,
    #[command(subcommand)]
    pub shorthand: Option<Shorthand>,
}

#[derive(Args, Clone)]
pub struct PlanOpts {
    /// SQL dialect: postgres, sqlite or mysql (MySQL 8 / MariaDB 10.5+; alias mariadb).
    /// Default: the dialect of the config's environments, else postgres.
    #[arg(long, global = true, value_parser = parse_dialect)]
    pub dialect: Option<Dialect>,
    /// Output: text, json, markdown, mermaid, dot or sql.
    #[arg(long, global = true, default_value = "text", value_parser = parse_format)]
    pub format: Format,
    /// Save a shorthand as a plan file under plans/.
    #[arg(long, global = true)]
    pub write: bool,
    /// Project templates that override the built-in ones (<DIR>/<dialect>/<kind>.sql).
    #[arg(long, global = true, default_value = "templates")]
    pub templates: PathBuf,
    /// Plan against this environment's live schema, exactly as `apply` would
    /// (its dialect, server version, column types, indexes and constraints).
    #[arg(long, global = true)]
    pub env: Option<String>,
}

/// One change, described on the command line.
#[derive(Subcommand)]
pub enum Shorthand {
    /// Rename a column: `rename users.name full_name`.
    Rename {
        /// The column to rename, as table.column.
        column: String,
        /// Its new name.
        new_name: String,
        /// How old and new columns stay equal: trigger (default) or app.
        #[arg(long, default_value = "trigger", value_parser = ["trigger", "app"])]
        sync: String,
        /// How both names work meanwhile: copy (a second column, the default)
        /// or view (Postgres: an updatable view shows the column under
        /// both names; nothing is copied).
        #[arg(long, default_value = "copy", value_parser = ["copy", "view"])]
        strategy: String,
    },
    /// Add a column: `add-column users.email text --not-null --backfill "''"`.
    AddColumn {
        /// The new column, as table.column.
        column: String,
        /// Its SQL type.
        #[arg(value_name = "TYPE")]
        ty: String,
        /// Make it NOT NULL (after the backfill).
        #[arg(long)]
        not_null: bool,
        /// SQL default expression.
        #[arg(long)]
        default: Option<String>,
        /// SQL expression for existing rows.
        #[arg(long)]
        backfill: Option<String>,
    },
    /// Change a column's type: `change-type orders.amount bigint`.
    ChangeType {
        /// The column, as table.column.
        column: String,
        /// The new SQL type.
        #[arg(value_name = "TYPE")]
        ty: String,
        /// old → new, in terms of the old column.
        #[arg(long)]
        using: Option<String>,
        /// new → old, in terms of the new column.
        #[arg(long)]
        reverse: Option<String>,
        /// The column that holds the new type (default <column>_new).
        #[arg(long)]
        new_column: Option<String>,
    },
    /// Drop a column: `drop-column users.legacy`.
    DropColumn {
        /// The column to drop, as table.column.
        column: String,
        /// What the column holds, on rollback, for rows written without it (SQL over the row).
        #[arg(long)]
        down: Option<String>,
    },
    /// Rename a table: `rename-table invoices bills`.
    RenameTable {
        /// The table to rename.
        table: String,
        /// Its new name.
        new_name: String,
    },
    /// Add an index: `add-index users email[,other] [--unique]`.
    AddIndex {
        /// The table to index.
        table: String,
        /// Comma-separated columns.
        columns: String,
        /// A unique index.
        #[arg(long)]
        unique: bool,
        /// The index's name (default: derived from the table and columns).
        #[arg(long)]
        name: Option<String>,
        /// Partial index predicate.
        #[arg(long = "where")]
        predicate: Option<String>,
    },
    /// Add a foreign key: `add-foreign-key orders.user_id users.id [--on-delete cascade]`.
    AddForeignKey {
        /// The referencing column, as table.column.
        column: String,
        /// The referenced column, as table.column.
        references: String,
        /// What deleting a referenced row does.
        #[arg(long, value_parser = ["no_action", "restrict", "cascade", "set_null", "set_default"])]
        on_delete: Option<String>,
        /// The constraint's name (default: derived from the table and column).
        #[arg(long)]
        name: Option<String>,
    },
    /// Make a column NOT NULL: `set-not-null users.email [--backfill "''"]`.
    SetNotNull {
        /// The column, as table.column.
        column: String,
        /// SQL expression for the rows where it is NULL now.
        #[arg(long)]
        backfill: Option<String>,
    },
    /// Add a check constraint: `add-check orders amount_positive "amount > 0"`.
    AddCheck {
        /// The table.
        table: String,
        /// The constraint's name.
        name: String,
        /// The SQL condition every row must meet.
        check: String,
    },
    /// Drop a table: `drop-table audit_log`.
    DropTable {
        /// The table to drop.
        table: String,
    },
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    s.parse()
        .map_err(|e: phasegate::dialect::UnknownDialect| e.to_string())
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse().map_err(|e: output::UnknownFormat| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every command and subcommand, with no help text.
    fn without_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            without_help(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_of_every_command_has_help() {
        let cmd = Cli::command();
        let mut missing = Vec::new();
        without_help(&cmd, "phasegate", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
        // The walk reaches the arguments the issue named.
        let apply = cmd.find_subcommand("apply").expect("apply");
        for id in ["env", "plan", "format"] {
            assert!(apply.get_arguments().any(|a| a.get_id() == id), "{id}");
        }
    }

    #[test]
    fn every_environment_command_takes_format_json() {
        for name in crate::commands::ENV_COMMANDS {
            let cmd = Cli::command();
            let sub = cmd.find_subcommand(name).expect(name);
            assert!(
                sub.get_arguments().any(|a| a.get_id() == "format"),
                "{name} has no --format"
            );
        }
    }

    #[test]
    fn help_lists_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        for code in [
            "0    done",
            "1    blocked",
            "2    error",
            "3    waiting",
            "130  interrupted",
        ] {
            assert!(help.contains(code), "{code}: {help}");
        }
    }
}
