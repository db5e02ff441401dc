//! `phasegate plan`: a plan file or a shorthand, planned offline or against
//! an environment's live schema, rendered in the format asked for.

use std::path::{Path, PathBuf};

use phasegate::catalog::Catalog;
use phasegate::config::{CONFIG_FILE, Config, ConfigError};
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
    // The runbook lists the configured environments; the SQL of `--env E`
    // runs under E's bounds.
    let wants_config = opts.env.is_some() || opts.format == Format::Markdown;
    let settings = if wants_config {
        config_for_output(config.as_deref(), opts.env.is_some())?
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
            let templates = Templates::with_overrides(opts.dialect, &opts.templates)
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
/// `None` when there is no file and none was named. With `strict` false
/// (no `--env`: nothing connects), an unset `${VAR}` in a database URL is no
/// error: the runbook needs the environments, not their databases.
fn config_for_output(path: Option<&Path>, strict: bool) -> Result<Option<Config>, Failure> {
    let failed = |e: ConfigError| Failure::input(format!("error: {e}"));
    if strict {
        return Config::load(path, Path::new(".")).map(Some).map_err(failed);
    }
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
