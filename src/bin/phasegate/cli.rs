//! The command line's grammar: every command, option and shorthand, with
//! the help text `phasegate --help` shows. Parsing only; no work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use phasegate::dialect::Dialect;
use phasegate::output::{self, Format};

/// Plan and drive expand–contract schema changes across deploys and environments.
#[derive(Parser)]
#[command(name = "phasegate", version, about, long_about = None)]
pub struct Cli {
    /// The config file (default: phasegate.yaml in the current folder).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// text for people, json for pipelines.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Out {
    Text,
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
        #[arg(long)]
        env: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// May the plan's next step run in ENV? Exit 0: yes; 1: a gate blocks; 2: error.
    Gate {
        #[arg(long)]
        env: String,
        plan: String,
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Has ENV's database reached phase N of PLAN? Exit 0: yes; 1: not yet; 2: error.
    ///
    /// For a service's start-up script or a pipeline. Reached: the phase's
    /// migrations are applied (with --deployed: and its app code is marked
    /// deployed). Reads the log only; creates and writes nothing.
    Check {
        #[arg(long)]
        env: String,
        plan: String,
        #[arg(long)]
        phase: usize,
        /// Require the phase's app code to be marked deployed too (`phasegate mark`).
        #[arg(long)]
        deployed: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Run the next phase's migrations in ENV, if every gate holds.
    Apply {
        #[arg(long)]
        env: String,
        plan: String,
        /// Print the SQL that would run, and run nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Record that phase N's app code is deployed in ENV.
    Mark {
        #[arg(long)]
        env: String,
        plan: String,
        #[arg(long)]
        phase: usize,
        #[arg(long)]
        app_version: String,
    },
    /// Undo the latest phase that ran in ENV (reversible phases only).
    Rollback {
        #[arg(long)]
        env: String,
        plan: String,
        /// The phase's app code was deployed and has been reverted already.
        #[arg(long)]
        app_reverted: bool,
    },
    /// Approve an irreversible phase in ENV.
    Approve {
        #[arg(long)]
        env: String,
        plan: String,
        #[arg(long)]
        phase: usize,
        /// Who approves (default: the current user).
        #[arg(long)]
        by: Option<String>,
    },
    /// Record a backup of ENV (running its backup_command, if configured).
    Backup {
        #[arg(long)]
        env: String,
        /// Where the backup is (default: the last line the backup_command printed).
        #[arg(long)]
        location: Option<String>,
    },
    /// Run the verification queries of the latest phase that ran (or of --phase).
    Verify {
        #[arg(long)]
        env: String,
        plan: String,
        #[arg(long)]
        phase: Option<usize>,
    },
    /// The event log of ENV (or of one plan there).
    History {
        #[arg(long)]
        env: String,
        plan: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Out,
    },
    /// Accept an edited plan file in ENV on purpose (the drift gate blocks it otherwise).
    AcceptChange {
        #[arg(long)]
        env: String,
        plan: String,
        /// Why the change is safe: recorded in the log.
        #[arg(long)]
        reason: String,
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
        #[arg(long)]
        env: String,
        plan: String,
        #[arg(long)]
        step: String,
        /// What the database shows: the step's effect is there (applied) or not (not-applied).
        /// For a step whose rollback failed or never finished: rolled-back (its
        /// effect is gone) or not-rolled-back (it is still there).
        #[arg(long = "as", value_parser = ["applied", "not-applied", "rolled-back", "not-rolled-back"])]
        outcome: String,
    },
    /// Print a shell completion script: `phasegate completions bash > /etc/bash_completion.d/phasegate`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into --dir.
    Man {
        /// Write phasegate.1, phasegate-apply.1, … into this folder (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
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
    #[arg(long, global = true, default_value = "postgres", value_parser = parse_dialect)]
    pub dialect: Dialect,
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
        column: String,
        new_name: String,
        /// How old and new columns stay equal: trigger (default) or app.
        #[arg(long, default_value = "trigger", value_parser = ["trigger", "app"])]
        sync: String,
    },
    /// Add a column: `add-column users.email text --not-null --backfill "''"`.
    AddColumn {
        column: String,
        #[arg(value_name = "TYPE")]
        ty: String,
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
        column: String,
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
        column: String,
        /// What the column holds, on rollback, for rows written without it (SQL over the row).
        #[arg(long)]
        down: Option<String>,
    },
    /// Rename a table: `rename-table invoices bills`.
    RenameTable { table: String, new_name: String },
    /// Add an index: `add-index users email[,other] [--unique]`.
    AddIndex {
        table: String,
        /// Comma-separated columns.
        columns: String,
        #[arg(long)]
        unique: bool,
        #[arg(long)]
        name: Option<String>,
        /// Partial index predicate.
        #[arg(long = "where")]
        predicate: Option<String>,
    },
    /// Add a foreign key: `add-foreign-key orders.user_id users.id [--on-delete cascade]`.
    AddForeignKey {
        column: String,
        references: String,
        #[arg(long, value_parser = ["no_action", "restrict", "cascade", "set_null", "set_default"])]
        on_delete: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Make a column NOT NULL: `set-not-null users.email [--backfill "''"]`.
    SetNotNull {
        column: String,
        #[arg(long)]
        backfill: Option<String>,
    },
    /// Add a check constraint: `add-check orders amount_positive "amount > 0"`.
    AddCheck {
        table: String,
        name: String,
        check: String,
    },
    /// Drop a table: `drop-table audit_log`.
    DropTable { table: String },
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    s.parse()
        .map_err(|e: phasegate::dialect::UnknownDialect| e.to_string())
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse().map_err(|e: output::UnknownFormat| e.to_string())
}
