//! `phasegate convert`: a migration file's statements as a phasegate plan
//! (`phasegate::lint::convert`): the plan's YAML on stdout, what became of
//! each statement on stderr, and with `--write` the plan saved under plans/.

use std::path::Path;

use phasegate::lint::convert::convert;

use crate::Failure;
use crate::cli::ConvertArgs;
use crate::plan::{Project, write_plan};

pub fn run(args: ConvertArgs, config: Option<&Path>) -> Result<String, Failure> {
    let project = Project::find(config);
    let dialect = match args.dialect {
        Some(d) => d,
        None => project.dialect_for("read as"),
    };
    let name = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| Failure::input(format!("error: cannot read {name}: {e}")))?;
    let c = convert(&name, &text, dialect).map_err(|e| Failure::input(format!("error: {e}")))?;
    for (at, kinds) in &c.converted {
        crate::err_line(format_args!(
            "{name}:{}:{}: converted to {}",
            at.line,
            at.column,
            kinds.join(", ")
        ));
    }
    for (at, statement, reason) in &c.kept {
        crate::err_line(format_args!(
            "{name}:{}:{}: kept as a `sql` change: {reason}\n  statement: {statement}",
            at.line, at.column
        ));
    }
    let yaml = c
        .plan
        .to_yaml()
        .map_err(|e| Failure::input(format!("error: cannot write the plan: {e}")))?;
    if args.write {
        let saved = write_plan(&project.plans, config, &c.plan)?;
        return Ok(saved.trim_start().to_string());
    }
    Ok(yaml)
}
