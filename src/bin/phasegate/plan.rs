//! `phasegate plan`: a plan file or a shorthand, planned offline or against
//! an environment's live schema, rendered in the format asked for.

use std::path::{Path, PathBuf};

use phasegate::catalog::Catalog;
use phasegate::config::{CONFIG_FILE, Config, ConfigError};
use phasegate::dialect::Dialect;
use phasegate::dialect::templates::Templates;
use phasegate::intent::{self, Intent, PlanError, PlanFile};
use phasegate::name::{ColumnRef, Ident, SqlExpr, SqlType, TableName};
use phasegate::output::{self, Format};
use phasegate::plan::Planner;
use phasegate::session_bounds::StepBounds;

use crate::Failure;
use crate::cli::{PlanArgs, Shorthand};
use crate::commands;

pub fn plan(args: PlanArgs, config: Option<PathBuf>) -> Result<String, Failure> {
    let opts = args.opts;
    let project = Project::find(config.as_deref());
    let file = match (args.shorthand, args.plan) {
        (Some(s), _) => PlanFile::from_intent(shorthand(s)?),
        (None, Some(target)) => {
            if opts.write {
                return Err(Failure::input(
                    "error: --write saves a shorthand (e.g. `plan rename users.name full_name --write`); this plan is a file already",
                ));
            }
            load(&project.plans, &target)?
        }
        (None, None) => return Err(Failure::input(no_plan_named(&project.plans))),
    };
    let mut saved = String::new();
    if opts.write {
        saved = write_plan(&project.plans, config.as_deref(), &file)?;
    }
    // The runbook lists the configured environments; the SQL of `--env E`
    // runs under E's bounds.
    let wants_config = opts.env.is_some() || opts.format == Format::Markdown;
    let settings = if wants_config {
        config_for_output(config.as_deref())?
    } else {
        None
    };
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
            let dialect = match opts.dialect {
                Some(d) => d,
                None => project.dialect(),
            };
            let templates = Templates::with_overrides(dialect, &opts.templates)
                .map_err(|e| Failure::input(format!("error: {e}")))?;
            let catalog = Catalog::offline();
            Planner::new(&templates, &catalog)
                .plan(&file)
                .map_err(|e| Failure::input(format!("error: {}: {e}", plan_label(&file))))?
        }
    };
    let environment = match (&settings, &opts.env) {
        (Some(c), Some(env)) => c.environment(env).ok(),
        _ => None,
    };
    let cx = output::Context {
        bounds: environment.map_or_else(Default::default, |e| StepBounds {
            lock_timeout: e.lock_timeout,
            statement_timeout: e.statement_timeout,
        }),
        env: environment.map(|e| e.name.as_str()),
        environments: settings.as_ref().map(|c| c.environments.as_slice()),
    };
    let mut out = output::render_with(&plan, opts.format, &cx);
    if !saved.is_empty() && opts.format == Format::Text {
        out.push_str(&saved);
    }
    Ok(out)
}

/// `phasegate.yaml` (or `--config`) for the runbook and the SQL's bounds;
/// `None` when there is no file and none was named. An unset `${VAR}` in a
/// database URL is no error here: the runbook needs the environments, not
/// their databases (`--env E` connects to E through `plan_live`, which
/// refuses E when its own variable is unset).
fn config_for_output(path: Option<&Path>) -> Result<Option<Config>, Failure> {
    let failed = |e: ConfigError| Failure::input(format!("error: {e}"));
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => {
            let p = PathBuf::from(CONFIG_FILE);
            if !p.is_file() {
                return Ok(None);
            }
            p
        }
    };
    let text = intent::yaml::read_bounded(&path).map_err(|source| {
        failed(ConfigError::Read {
            path: path.clone(),
            source,
        })
    })?;
    let root = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    // An unset variable stands for a database of its own (named after it).
    let lookup = |name: &str| {
        std::env::var(name)
            .ok()
            .or_else(|| Some(format!("postgres://unset.invalid/{name}")))
    };
    Config::parse(&text, &path, &root, &lookup)
        .map(Some)
        .map_err(failed)
}

fn plan_label(file: &PlanFile) -> String {
    file.path
        .as_ref()
        .map_or_else(|| file.name.clone(), |p| p.display().to_string())
}

/// Where `plan` finds plans, and the config it takes its dialect from.
pub(crate) struct Project {
    /// `plans/` beside the config (`--config`, or `phasegate.yaml` here).
    pub(crate) plans: PathBuf,
    /// The config, when there is one; `Err` when it cannot be read.
    config: Option<Result<Config, ConfigError>>,
}

impl Project {
    pub(crate) fn find(config: Option<&Path>) -> Project {
        let config = match config {
            Some(path) => Some(Config::load(Some(path), Path::new("."))),
            None if Path::new(CONFIG_FILE).is_file() => Some(Config::load(None, Path::new("."))),
            None => None,
        };
        let plans = match &config {
            Some(Ok(c)) => c.plans_dir(),
            _ => PathBuf::from("plans"),
        };
        let plans = plans
            .strip_prefix("./")
            .map_or(plans.clone(), Path::to_path_buf);
        Project { plans, config }
    }

    /// The dialect to plan for when `--dialect` is not given: the
    /// environments', when they agree; the first's, said on stderr, when
    /// they do not; postgres without a config.
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect_for("planned for")
    }

    /// [`Project::dialect`], its notes saying `done` (`planned for`, `read as`).
    pub(crate) fn dialect_for(&self, done: &str) -> Dialect {
        let config = match &self.config {
            None => return Dialect::Postgres,
            Some(Err(e)) => {
                crate::err_line(format_args!(
                    "note: {done} postgres: the config cannot be read ({e})"
                ));
                return Dialect::Postgres;
            }
            Some(Ok(c)) => c,
        };
        let Some(first) = config.environments.first() else {
            return Dialect::Postgres;
        };
        let differ: Vec<String> = config
            .environments
            .iter()
            .filter(|e| e.dialect != first.dialect)
            .map(|e| format!("{} is {}", e.name, e.dialect))
            .collect();
        if !differ.is_empty() {
            crate::err_line(format_args!(
                "note: {done} {}, the dialect of {}, the first environment ({}); pass --dialect or --env to choose",
                first.dialect,
                first.name,
                differ.join(", ")
            ));
        }
        first.dialect
    }
}

/// A path to a plan file, or the name of one under `plans`.
fn load(plans: &Path, target: &str) -> Result<PlanFile, Failure> {
    let found =
        intent::locate_plan(plans, target).map_err(|e| Failure::input(format!("error: {e}")))?;
    intent::load_plan(&found).map_err(render_plan_error)
}

fn no_plan_named(plans: &Path) -> String {
    let known = intent::plan_names(plans);
    let mut msg = String::from(
        "error: name a plan file, a plan under plans/, or a change (`phasegate plan rename users.name full_name`); see `phasegate plan --help`",
    );
    if !known.is_empty() {
        msg.push_str(&format!(
            "\n  plans under {}/: {}",
            plans.display(),
            known.join(", ")
        ));
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

/// Saves a shorthand under `plans`; `config`: the `--config` given, which
/// the command that plans it again needs too.
pub(crate) fn write_plan(
    plans: &Path,
    config: Option<&Path>,
    file: &PlanFile,
) -> Result<String, Failure> {
    let path = plans.join(format!("{}.yaml", file.name));
    if path.exists() {
        return Err(Failure::input(format!(
            "error: {} exists already; not overwritten",
            path.display()
        )));
    }
    let yaml = file
        .to_yaml()
        .map_err(|e| Failure::input(format!("error: cannot write the plan: {e}")))?;
    std::fs::create_dir_all(plans)
        .and_then(|_| std::fs::write(&path, yaml))
        .map_err(|e| Failure::input(format!("error: cannot write {}: {e}", path.display())))?;
    let flag = config.map_or(String::new(), |c| format!(" --config {}", c.display()));
    Ok(format!(
        "\nSaved as {} (`phasegate{flag} plan {}`).\n",
        path.display(),
        file.name
    ))
}

/// A shorthand argument that is not what it should be: the argument as
/// `--help` names it, what is wrong (the value included), and a command
/// that shows the expected form.
fn bad(arg: &str, e: impl std::fmt::Display, example: &str) -> Failure {
    Failure::input(format!(
        "error: {arg}: {e}\n  e.g. phasegate plan {example}"
    ))
}

/// Parses a shorthand's arguments, each error naming its argument and an example.
struct Args {
    /// The shorthand's usage example, shown under an error.
    example: &'static str,
}

impl Args {
    fn column_ref(&self, arg: &str, s: &str) -> Result<ColumnRef, Failure> {
        ColumnRef::parse(s).map_err(|e| bad(arg, e, self.example))
    }
    fn ident(&self, arg: &str, s: &str) -> Result<Ident, Failure> {
        Ident::new(s).map_err(|e| bad(arg, e, self.example))
    }
    fn table(&self, arg: &str, s: &str) -> Result<TableName, Failure> {
        TableName::parse(s).map_err(|e| bad(arg, e, self.example))
    }
    fn sql_type(&self, s: &str) -> Result<SqlType, Failure> {
        SqlType::parse(s).map_err(|e| bad("TYPE", e, self.example))
    }
    fn expr(&self, arg: &str, s: Option<String>) -> Result<Option<SqlExpr>, Failure> {
        s.map(|s| SqlExpr::new(s).map_err(|e| bad(arg, e, self.example)))
            .transpose()
    }
    fn idents(&self, arg: &str, s: &str) -> Result<Vec<Ident>, Failure> {
        s.split(',').map(|c| self.ident(arg, c.trim())).collect()
    }
    /// Parses a value the way a plan file would (for enums spelled like YAML).
    fn yaml_value<T: serde::de::DeserializeOwned>(&self, arg: &str, s: &str) -> Result<T, Failure> {
        serde_saphyr::from_str(s).map_err(|e| bad(arg, format!("`{s}`: {e}"), self.example))
    }
}

/// The usage example each shorthand's errors show.
fn example(s: &Shorthand) -> &'static str {
    match s {
        Shorthand::Rename { .. } => "rename users.name full_name",
        Shorthand::AddColumn { .. } => "add-column users.email text --not-null --backfill \"''\"",
        Shorthand::ChangeType { .. } => "change-type orders.amount bigint",
        Shorthand::DropColumn { .. } => "drop-column users.legacy",
        Shorthand::RenameTable { .. } => "rename-table invoices bills",
        Shorthand::AddIndex { .. } => "add-index users email,created_at --unique",
        Shorthand::AddForeignKey { .. } => {
            "add-foreign-key orders.user_id users.id --on-delete cascade"
        }
        Shorthand::SetNotNull { .. } => "set-not-null users.email --backfill \"''\"",
        Shorthand::AddCheck { .. } => "add-check orders amount_positive \"amount > 0\"",
        Shorthand::DropTable { .. } => "drop-table audit_log",
    }
}

fn shorthand(s: Shorthand) -> Result<Intent, Failure> {
    use phasegate::intent::*;
    let a = Args {
        example: example(&s),
    };
    let intent = match s {
        Shorthand::Rename {
            column,
            new_name,
            sync,
            strategy,
        } => {
            let c = a.column_ref("COLUMN", &column)?;
            Intent::RenameColumn(RenameColumn {
                table: c.table,
                from: c.column,
                to: a.ident("NEW_NAME", &new_name)?,
                sync: a.yaml_value("--sync", &sync)?,
                strategy: a.yaml_value("--strategy", &strategy)?,
            })
        }
        Shorthand::AddColumn {
            column,
            ty,
            not_null,
            default,
            backfill,
        } => {
            let c = a.column_ref("COLUMN", &column)?;
            Intent::AddColumn(AddColumn {
                table: c.table,
                column: c.column,
                ty: a.sql_type(&ty)?,
                nullable: !not_null,
                default: a.expr("--default", default)?,
                backfill: a.expr("--backfill", backfill)?,
            })
        }
        Shorthand::ChangeType {
            column,
            ty,
            using,
            reverse,
            new_column,
        } => {
            let c = a.column_ref("COLUMN", &column)?;
            Intent::ChangeColumnType(ChangeColumnType {
                table: c.table,
                column: c.column,
                ty: a.sql_type(&ty)?,
                using: a.expr("--using", using)?,
                reverse: a.expr("--reverse", reverse)?,
                new_column: new_column
                    .as_deref()
                    .map(|n| a.ident("--new-column", n))
                    .transpose()?,
            })
        }
        Shorthand::DropColumn { column, down } => {
            let c = a.column_ref("COLUMN", &column)?;
            Intent::DropColumn(DropColumn {
                table: c.table,
                column: c.column,
                down: a.expr("--down", down)?,
            })
        }
        Shorthand::RenameTable {
            table: from,
            new_name,
        } => {
            let from = a.table("TABLE", &from)?;
            let to = from.sibling(a.ident("NEW_NAME", &new_name)?);
            Intent::RenameTable(RenameTable { from, to })
        }
        Shorthand::AddIndex {
            table: t,
            columns,
            unique,
            name,
            predicate,
        } => Intent::AddIndex(AddIndex {
            table: a.table("TABLE", &t)?,
            columns: a.idents("COLUMNS", &columns)?,
            unique,
            name: name.as_deref().map(|n| a.ident("--name", n)).transpose()?,
            predicate: a.expr("--where", predicate)?,
        }),
        Shorthand::AddForeignKey {
            column,
            references,
            on_delete,
            name,
        } => {
            let c = a.column_ref("COLUMN", &column)?;
            let r = a.column_ref("REFERENCES", &references)?;
            Intent::AddForeignKey(AddForeignKey {
                table: c.table,
                columns: vec![c.column],
                references: References {
                    table: r.table,
                    columns: vec![r.column],
                },
                on_delete: on_delete
                    .as_deref()
                    .map(|v| a.yaml_value("--on-delete", v))
                    .transpose()?,
                name: name.as_deref().map(|n| a.ident("--name", n)).transpose()?,
            })
        }
        Shorthand::SetNotNull { column, backfill } => {
            let c = a.column_ref("COLUMN", &column)?;
            Intent::SetNotNull(SetNotNull {
                table: c.table,
                column: c.column,
                backfill: a.expr("--backfill", backfill)?,
            })
        }
        Shorthand::AddCheck {
            table: t,
            name,
            check,
        } => Intent::AddCheck(AddCheck {
            table: a.table("TABLE", &t)?,
            name: a.ident("NAME", &name)?,
            check: SqlExpr::new(check).map_err(|e| bad("CHECK", e, a.example))?,
        }),
        Shorthand::DropTable { table: t } => Intent::DropTable(DropTable {
            table: a.table("TABLE", &t)?,
        }),
    };
    intent
        .validate()
        .map_err(|m| bad(intent.kind(), m, a.example))?;
    Ok(intent)
}

/// A plan file, or the name of one under the plans folder of `--config`
/// (or of phasegate.yaml here), as `plan` finds it (`estimate` uses it).
pub(crate) fn load_target(config: Option<&Path>, target: &str) -> Result<PlanFile, Failure> {
    load(&Project::find(config).plans, target)
}
