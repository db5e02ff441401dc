//! `export`: a plan's deploys written as a migration runner's files
//! (`phasegate::export`), never overwriting a file whose content differs.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::{RunError, Workspace};
use phasegate::export::{self, Built, ExportFile, Options, Runner};

use super::envelope::Report;

/// The command line's options of `export` (see `cli.rs`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The runner: flyway, liquibase, golang-migrate, dbmate, sqlx,
    /// supabase, alembic, django, rails or prisma.
    #[arg(long = "to", value_name = "RUNNER")]
    pub to: String,
    /// The environment whose schema and timeouts the SQL is made for
    /// (default: the first in promotion order).
    #[arg(long)]
    pub env: Option<String>,
    /// Write deploy N only (1-based, as `phasegate plan` numbers deploys).
    #[arg(long)]
    pub phase: Option<usize>,
    /// The folder to write into (default: the runner's usual folder).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The version files are numbered from (default: the time now, UTC, YYYYMMDDHHMMSS).
    #[arg(long)]
    pub version: Option<String>,
    /// The runner's latest migration the first file follows (Alembic revision, Django `app.0007_name`).
    #[arg(long)]
    pub after: Option<String>,
    /// Django's app label.
    #[arg(long)]
    pub app: Option<String>,
}

/// One deploy written.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExportedDeploy {
    /// 1-based, as `phasegate plan` numbers deploys.
    pub phase: usize,
    /// False: it cannot be undone (no down file).
    pub reversible: bool,
    /// What its migrations do.
    pub summary: String,
    /// The app change shipped with it (mark it with `phasegate mark`).
    pub app: Vec<String>,
}

/// One file of the export.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExportedFile {
    /// Its path (under `dir`).
    pub path: String,
    /// `written`, or `unchanged` (it was there with this content).
    pub status: String,
}

/// `export`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExportPayload {
    /// The plan's name.
    pub plan: String,
    /// The environment the SQL was made for.
    pub env: String,
    /// The runner written for (`flyway`, `golang-migrate`, …).
    pub runner: String,
    /// The folder the files are under.
    pub dir: String,
    /// How many deploys the plan has.
    pub phases: usize,
    pub deploys: Vec<ExportedDeploy>,
    pub files: Vec<ExportedFile>,
    /// Without `--phase`: the first irreversible deploy, not written
    /// (export it with `--phase` when it is due).
    pub withheld: Option<usize>,
}

/// `phasegate export`.
pub async fn run(ws: &Workspace<'_>, plan: &str, args: Args) -> Report<ExportPayload> {
    match export(ws, plan, args).await {
        Ok((payload, text)) => Report::done("export", text, payload),
        Err(e) => Report::from_error("export", &e),
    }
}

async fn export(
    ws: &Workspace<'_>,
    plan: &str,
    args: Args,
) -> Result<(ExportPayload, String), RunError> {
    let runner: Runner = args
        .to
        .parse()
        .map_err(|e: phasegate::export::UnknownRunner| RunError::Invalid(e.to_string()))?;
    let built = export::build(ws, args.env.as_deref(), plan, runner, args.phase).await?;
    let dir = args
        .dir
        .unwrap_or_else(|| PathBuf::from(runner.default_dir()));
    let given = args.version.is_some();
    let mut options = Options {
        version: args
            .version
            .unwrap_or_else(|| chrono::Utc::now().format("%Y%m%d%H%M%S").to_string()),
        after: args.after,
        app: args.app.unwrap_or_else(|| Options::default().app),
        ..Options::default()
    };
    let write = |options: &Options| {
        export::runners::write(runner, &built.deploys, options)
            .map_err(|e| RunError::Invalid(e.to_string()))
    };
    let mut files = write(&options)?;
    if !given && let Some(after) = after_latest(&dir, &files, &options.version) {
        // An export moments ago numbered its files into the coming seconds;
        // this one's would take the same versions, which a runner reads as
        // applied already. Number from after the folder's latest instead.
        options.version = after;
        files = write(&options)?;
    }
    let written = write_files(&dir, &files)?;
    let text = text(&built, runner, &dir, &written);
    let payload = ExportPayload {
        plan: built.plan.clone(),
        env: built.env.clone(),
        runner: runner.name().to_string(),
        dir: dir.display().to_string(),
        phases: built.phases,
        deploys: built
            .deploys
            .iter()
            .map(|d| ExportedDeploy {
                phase: d.phase,
                reversible: d.reversible,
                summary: d.summary.clone(),
                app: d.app.clone(),
            })
            .collect(),
        files: written,
        withheld: built.withheld,
    };
    Ok((payload, text))
}

/// When a file or folder beside where `files` go is versioned with a
/// `YYYYMMDDHHMMSS` timestamp at or after `version` (a file of an earlier
/// export numbered into the seconds after it), the second after the latest
/// such timestamp; `None` when `version` already sorts after them all.
/// Looks at every folder between `dir` and each file (Prisma's and Django's
/// files sit in subfolders), one level deep; a `V`/`U`/`R` prefix (Flyway)
/// is skipped.
fn after_latest(dir: &Path, files: &[ExportFile], version: &str) -> Option<String> {
    let stamp = |name: &str| -> Option<chrono::NaiveDateTime> {
        let name = name.trim_start_matches(['V', 'U', 'R']);
        let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
        (digits.len() == 14)
            .then(|| chrono::NaiveDateTime::parse_from_str(&digits, "%Y%m%d%H%M%S").ok())
            .flatten()
    };
    let mut folders = std::collections::BTreeSet::new();
    for f in files {
        let mut at = dir.to_path_buf();
        folders.insert(at.clone());
        if let Some(parent) = f.path.parent() {
            for part in parent.components() {
                at.push(part);
                folders.insert(at.clone());
            }
        }
    }
    let latest = folders
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten())
        .filter_map(|e| stamp(&e.file_name().to_string_lossy()))
        .max()?;
    let ours = stamp(version)?;
    (latest >= ours).then(|| {
        (latest + chrono::TimeDelta::seconds(1))
            .format("%Y%m%d%H%M%S")
            .to_string()
    })
}

/// Writes `files` under `dir` (folders created): every file is checked
/// first, and none is written when one exists with other content.
fn write_files(dir: &Path, files: &[ExportFile]) -> Result<Vec<ExportedFile>, RunError> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        RunError::Invalid(format!("cannot {what} {}: {e}", path.display()))
    };
    let mut out = Vec::new();
    let mut differ = Vec::new();
    for f in files {
        let path = dir.join(&f.path);
        let status = match std::fs::read(&path) {
            Ok(bytes) if bytes == f.contents.as_bytes() => "unchanged",
            Ok(_) => {
                differ.push(path.display().to_string());
                "differs"
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "written",
            Err(e) => return Err(io("read", &path, e)),
        };
        out.push(ExportedFile {
            path: path.display().to_string(),
            status: status.into(),
        });
    }
    if !differ.is_empty() {
        return Err(RunError::Invalid(format!(
            "not overwriting {} (it exists with other content): move it away or export into another --dir; nothing was written",
            differ.join(", ")
        )));
    }
    for (f, o) in files.iter().zip(&out) {
        if o.status != "written" {
            continue;
        }
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
        }
        std::fs::write(&path, &f.contents).map_err(|e| io("write", &path, e))?;
    }
    Ok(out)
}

fn text(built: &Built, runner: Runner, dir: &Path, files: &[ExportedFile]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} deploy{} of {} for {runner} (made against {}), in {}",
        built.plan,
        built.deploys.len(),
        if built.deploys.len() == 1 { "" } else { "s" },
        built.phases,
        built.env,
        dir.display()
    );
    for f in files {
        let _ = writeln!(out, "  {} {}", f.status, f.path);
    }
    if built.dialect == phasegate::dialect::Dialect::Sqlite {
        let _ = writeln!(
            out,
            "SQLite: these files refuse to run (SQLite has no SHA-256 in SQL to record them in phasegate's log): run each deploy with `phasegate apply --env {} {}` (docs/export.md)",
            built.env, built.label
        );
    }
    for d in &built.deploys {
        if !d.app.is_empty() {
            let _ = writeln!(
                out,
                "after deploy {} runs, ship its app change, then: phasegate mark --env <ENV> {} --phase {} --app-version <VERSION>",
                d.phase, built.label, d.phase
            );
        }
    }
    if let Some(w) = built.withheld {
        let when = match w {
            1 => String::new(),
            _ => format!("when deploy {} is marked deployed everywhere, ", w - 1),
        };
        let _ = writeln!(
            out,
            "deploy {w} cannot be undone and is not written: {when}export it alone with `phasegate export --to {runner} --phase {w} {}`",
            built.label
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, contents: &str) -> ExportFile {
        ExportFile {
            path: PathBuf::from(path),
            contents: contents.into(),
        }
    }

    #[test]
    fn files_are_written_kept_when_unchanged_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("phasegate-export-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = [file("a/V1__x.sql", "one"), file("V2__y.sql", "two")];
        let first = write_files(&dir, &files).expect("written");
        assert!(first.iter().all(|f| f.status == "written"));
        assert_eq!(
            std::fs::read_to_string(dir.join("a/V1__x.sql")).unwrap(),
            "one"
        );
        let again = write_files(&dir, &files).expect("unchanged");
        assert!(again.iter().all(|f| f.status == "unchanged"));
        // One differs: nothing is written, the error names it.
        let changed = [file("a/V1__x.sql", "ONE"), file("V3__z.sql", "three")];
        let e = write_files(&dir, &changed).unwrap_err().to_string();
        assert!(
            e.contains("V1__x.sql") && e.contains("not overwriting"),
            "{e}"
        );
        assert!(!dir.join("V3__z.sql").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join("a/V1__x.sql")).unwrap(),
            "one"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
