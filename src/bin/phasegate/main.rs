//! The `phasegate` command line: parses arguments, calls the library, renders
//! results and errors. All the work happens in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use phasegate::catalog::Catalog;
use phasegate::dialect::Dialect;
use phasegate::dialect::templates::Templates;
use phasegate::intent::{self, Intent, PlanError, PlanFile};
use phasegate::name::{ColumnRef, Ident, SqlExpr, SqlType, TableName};
use phasegate::output::{self, Format};
use phasegate::plan::Planner;

/// Plan and drive expand–contract schema changes across deploys and environments.
#[derive(Parser)]
#[command(name = "phasegate", version, about, long_about = None)]
struct Cli {
    /// The config file (default: phasegate.yaml in the current folder).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// text for people, json for pipelines.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Out {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
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
}

#[derive(Args)]
struct PlanArgs {
    /// A plan file, or the name of a plan under plans/.
    plan: Option<String>,
    #[command(flatten)]
    opts: PlanOpts,
    #[command(subcommand)]
    shorthand: Option<Shorthand>,
}

#[derive(Args, Clone)]
struct PlanOpts {
    /// SQL dialect: postgres, sqlite or mysql (MySQL 8 / MariaDB 10.5+; alias mariadb).
    #[arg(long, global = true, default_value = "postgres", value_parser = parse_dialect)]
    dialect: Dialect,
    /// Output: text, json, markdown, mermaid, dot or sql.
    #[arg(long, global = true, default_value = "text", value_parser = parse_format)]
    format: Format,
    /// Save a shorthand as a plan file under plans/.
    #[arg(long, global = true)]
    write: bool,
    /// Project templates that override the built-in ones (<DIR>/<dialect>/<kind>.sql).
    #[arg(long, global = true, default_value = "templates")]
    templates: PathBuf,
    /// Plan against this environment's live schema, exactly as `apply` would
    /// (its dialect, server version, column types, indexes and constraints).
    #[arg(long, global = true)]
    env: Option<String>,
}

/// One change, described on the command line.
#[derive(Subcommand)]
enum Shorthand {
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

mod commands;

/// An error for the person at the terminal, and the exit code it means.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn input(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan(args, cli.config),
        Command::Init => commands::init(),
        other => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(commands::run(cli.config, other)),
            Err(e) => Err(Failure::input(format!(
                "error: cannot start the async runtime: {e}"
            ))),
        },
    };
    match result {
        Ok(out) => {
            crate::out(&out);
            ExitCode::SUCCESS
        }
        Err(f) => {
            crate::err_line(format_args!("{}", f.message));
            ExitCode::from(f.code)
        }
    }
}

fn plan(args: PlanArgs, config: Option<PathBuf>) -> Result<String, Failure> {
    let opts = args.opts;
    let file = match (args.shorthand, args.plan) {
        (Some(s), _) => PlanFile::from_intent(shorthand(s)?),
        (None, Some(target)) => {
            if opts.write {
                return Err(Failure::input(
                    "error: --write saves a shorthand (e.g. `plan rename users.name full_name --write`); this plan is a file already",
                ));
            }
            load(&target)?
        }
        (None, None) => return Err(Failure::input(no_plan_named())),
    };
    let mut saved = String::new();
    if opts.write {
        saved = write_plan(&file)?;
    }
    let plan = match &opts.env {
        Some(env) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    Failure::input(format!("error: cannot start the async runtime: {e}"))
                })?;
            rt.block_on(commands::plan_live(config, env, file))?
        }
        None => {
            let templates = Templates::with_overrides(opts.dialect, &opts.templates)
                .map_err(|e| Failure::input(format!("error: {e}")))?;
            let catalog = Catalog::offline();
            Planner::new(&templates, &catalog)
                .plan(&file)
                .map_err(|e| Failure::input(format!("error: {}: {e}", plan_label(&file))))?
        }
    };
    let mut out = output::render(&plan, opts.format);
    if !saved.is_empty() && opts.format == Format::Text {
        out.push_str(&saved);
    }
    Ok(out)
}

fn plan_label(file: &PlanFile) -> String {
    file.path
        .as_ref()
        .map_or_else(|| file.name.clone(), |p| p.display().to_string())
}

/// A path to a plan file, or the name of one under plans/.
fn load(target: &str) -> Result<PlanFile, Failure> {
    let found = intent::locate_plan(Path::new("plans"), target)
        .map_err(|e| Failure::input(format!("error: {e}")))?;
    intent::load_plan(&found).map_err(render_plan_error)
}

fn no_plan_named() -> String {
    let known = intent::plan_names(Path::new("plans"));
    let mut msg = String::from(
        "error: name a plan file, a plan under plans/, or a change (`phasegate plan rename users.name full_name`); see `phasegate plan --help`",
    );
    if !known.is_empty() {
        msg.push_str(&format!("\n  plans under plans/: {}", known.join(", ")));
    }
    msg
}

/// A plan error the way compilers show them: message, location, the line, a caret.
fn render_plan_error(e: PlanError) -> Failure {
    match e {
        PlanError::Read { .. } => Failure::input(format!("error: {e}")),
        PlanError::Invalid(d) => {
            let mut msg = format!("error: {}", d.message);
            let loc = match (d.line, d.column) {
                (Some(l), Some(c)) => format!("{}:{l}:{c}", d.file),
                (Some(l), None) => format!("{}:{l}", d.file),
                _ => d.file.clone(),
            };
            msg.push_str(&format!("\n  --> {loc}"));
            if let (Some(line), Some(text)) = (d.line, &d.source_line) {
                let width = line.to_string().len();
                let caret = " ".repeat(d.column.unwrap_or(1).saturating_sub(1));
                msg.push_str(&format!(
                    "\n{:width$} |\n{line} | {text}\n{:width$} | {caret}^",
                    "", ""
                ));
            }
            Failure::input(msg)
        }
    }
}

fn write_plan(file: &PlanFile) -> Result<String, Failure> {
    let path = Path::new("plans").join(format!("{}.yaml", file.name));
    if path.exists() {
        return Err(Failure::input(format!(
            "error: {} exists already; not overwritten",
            path.display()
        )));
    }
    let yaml = file
        .to_yaml()
        .map_err(|e| Failure::input(format!("error: cannot write the plan: {e}")))?;
    std::fs::create_dir_all("plans")
        .and_then(|_| std::fs::write(&path, yaml))
        .map_err(|e| Failure::input(format!("error: cannot write {}: {e}", path.display())))?;
    Ok(format!(
        "\nSaved as {} (phasegate plan {}).\n",
        path.display(),
        file.name
    ))
}

fn bad(what: &str, value: &str, e: impl std::fmt::Display) -> Failure {
    Failure::input(format!("error: {what} `{value}`: {e}"))
}

fn column_ref(s: &str) -> Result<ColumnRef, Failure> {
    ColumnRef::parse(s).map_err(|e| bad("column", s, e))
}
fn ident(s: &str) -> Result<Ident, Failure> {
    Ident::new(s).map_err(|e| bad("name", s, e))
}
fn table(s: &str) -> Result<TableName, Failure> {
    TableName::parse(s).map_err(|e| bad("table", s, e))
}
fn sql_type(s: &str) -> Result<SqlType, Failure> {
    SqlType::parse(s).map_err(|e| bad("type", s, e))
}
fn expr(s: Option<String>) -> Result<Option<SqlExpr>, Failure> {
    s.map(|s| SqlExpr::new(s.clone()).map_err(|e| bad("expression", &s, e)))
        .transpose()
}
fn idents(s: &str) -> Result<Vec<Ident>, Failure> {
    s.split(',').map(|c| ident(c.trim())).collect()
}
/// Parses a value the way a plan file would (for enums spelled like YAML).
fn yaml_value<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, Failure> {
    serde_saphyr::from_str(s).map_err(|e| bad("value", s, e))
}

fn shorthand(s: Shorthand) -> Result<Intent, Failure> {
    use phasegate::intent::*;
    let intent = match s {
        Shorthand::Rename {
            column,
            new_name,
            sync,
        } => {
            let c = column_ref(&column)?;
            Intent::RenameColumn(RenameColumn {
                table: c.table,
                from: c.column,
                to: ident(&new_name)?,
                sync: yaml_value(&sync)?,
            })
        }
        Shorthand::AddColumn {
            column,
            ty,
            not_null,
            default,
            backfill,
        } => {
            let c = column_ref(&column)?;
            Intent::AddColumn(AddColumn {
                table: c.table,
                column: c.column,
                ty: sql_type(&ty)?,
                nullable: !not_null,
                default: expr(default)?,
                backfill: expr(backfill)?,
            })
        }
        Shorthand::ChangeType {
            column,
            ty,
            using,
            reverse,
            new_column,
        } => {
            let c = column_ref(&column)?;
            Intent::ChangeColumnType(ChangeColumnType {
                table: c.table,
                column: c.column,
                ty: sql_type(&ty)?,
                using: expr(using)?,
                reverse: expr(reverse)?,
                new_column: new_column.as_deref().map(ident).transpose()?,
            })
        }
        Shorthand::DropColumn { column, down } => {
            let c = column_ref(&column)?;
            Intent::DropColumn(DropColumn {
                table: c.table,
                column: c.column,
                down: expr(down)?,
            })
        }
        Shorthand::RenameTable {
            table: from,
            new_name,
        } => {
            let from = table(&from)?;
            let to = from.sibling(ident(&new_name)?);
            Intent::RenameTable(RenameTable { from, to })
        }
        Shorthand::AddIndex {
            table: t,
            columns,
            unique,
            name,
            predicate,
        } => Intent::AddIndex(AddIndex {
            table: table(&t)?,
            columns: idents(&columns)?,
            unique,
            name: name.as_deref().map(ident).transpose()?,
            predicate: expr(predicate)?,
        }),
        Shorthand::AddForeignKey {
            column,
            references,
            on_delete,
            name,
        } => {
            let c = column_ref(&column)?;
            let r = column_ref(&references)?;
            Intent::AddForeignKey(AddForeignKey {
                table: c.table,
                columns: vec![c.column],
                references: References {
                    table: r.table,
                    columns: vec![r.column],
                },
                on_delete: on_delete.as_deref().map(yaml_value).transpose()?,
                name: name.as_deref().map(ident).transpose()?,
            })
        }
        Shorthand::SetNotNull { column, backfill } => {
            let c = column_ref(&column)?;
            Intent::SetNotNull(SetNotNull {
                table: c.table,
                column: c.column,
                backfill: expr(backfill)?,
            })
        }
        Shorthand::AddCheck {
            table: t,
            name,
            check,
        } => Intent::AddCheck(AddCheck {
            table: table(&t)?,
            name: ident(&name)?,
            check: SqlExpr::new(check.clone()).map_err(|e| bad("check", &check, e))?,
        }),
        Shorthand::DropTable { table: t } => Intent::DropTable(DropTable { table: table(&t)? }),
    };
    intent
        .validate()
        .map_err(|m| Failure::input(format!("error: {}: {m}", intent.kind())))?;
    Ok(intent)
}

/// Writes `text` to stdout. A closed pipe (`phasegate status | head -1`, a
/// CI log tailer that went away) must not end a run half-way, so a write
/// that fails is dropped: the exit code still tells the outcome.
pub(crate) fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes one line to stderr, dropping a failed write as [`out`] does.
pub(crate) fn err_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
