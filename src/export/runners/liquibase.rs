//! Liquibase, formatted SQL: one changelog file per deploy,
//! `<version>_<plan>_p<phase>.sql` (the `n`th deploy exported numbered
//! `--version` + n, so `includeAll` runs them in order), one changeset per
//! unit.
//!
//! Liquibase conventions used (Liquibase documentation, "Example SQL
//! changelogs" / formatted SQL):
//! - the file starts with `--liquibase formatted sql`; each changeset with
//!   `--changeset <author>:<id>`, its id here `<plan>_p<N>_<NN>_<unit>`;
//! - a changeset runs in one transaction unless `runInTransaction:false`,
//!   which a non-transactional unit gets;
//! - Liquibase splits a changeset's SQL into statements itself, at `;` by
//!   default, and does not know PostgreSQL dollar quotes (a `DO $$ … $$`
//!   block with a `;` inside is cut in two: checked against Liquibase 4.28)
//!   nor every dialect's quoting (a `--` inside a backquoted SQLite name
//!   reads as a comment that hides the `;` after it). So every changeset
//!   has `endDelimiter:/` and each statement is followed by a line `/`
//!   (Liquibase reads `/` as a delimiter only at the start of a line);
//!   likewise `rollbackEndDelimiter:/` for its rollback;
//! - `--comment:` holds the unit's comments; `--rollback <sql>` lines hold
//!   the changeset's rollback, which `liquibase rollback-count` runs newest
//!   changeset first. The deploy's rollback units go on its oldest
//!   changesets that run in a transaction exactly when they do (on MySQL,
//!   whose DDL commits implicitly anyway, on any changeset; see
//!   `layout::place_down`); its other changesets get `--rollback empty`
//!   (nothing to undo). An irreversible deploy has no `--rollback` at
//!   all, so Liquibase refuses to roll it back.
//!
//! A changeset author must be one word (`--changeset` reads up to `:`), and
//! no line of the SQL may read as a Liquibase directive (`--rollback …`,
//! `--changeset …`): both are refused with [`ExportError::Cannot`].

use std::path::PathBuf;

use super::escape::{comment_lines, one_line};
use super::layout::{header, nth_version, place_down, plan_slug, unit_line, unit_name};
use crate::dialect::Dialect;
use crate::export::{Deploy, ExportError, ExportFile, Options, Runner, Unit};

const RUNNER: Runner = Runner::Liquibase;

/// Words that start a formatted-SQL directive after `--`.
const DIRECTIVES: &[&str] = &[
    "liquibase",
    "changeset",
    "rollback",
    "comment",
    "precondition",
    "validchecksum",
    "ignorelines",
    "property",
    "include",
];

pub(super) fn write(deploys: &[Deploy], options: &Options) -> Result<Vec<ExportFile>, ExportError> {
    let author = &options.author;
    if author.is_empty()
        || !author
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
    {
        return Err(cannot(format!(
            "changeset author {author:?} cannot go in `--changeset author:id`: use letters, digits and . _ @ - only"
        )));
    }
    let mut files = Vec::new();
    for (n, deploy) in deploys.iter().enumerate() {
        let version = nth_version(RUNNER, &options.version, n)?;
        let mut out = String::from("--liquibase formatted sql\n\n");
        let this = format!(
            "One changeset per part of the deploy ({} parts), run in order by `liquibase update`.",
            deploy.units.len()
        );
        for line in header(deploy, &this) {
            push_comment(&mut out, &line);
        }
        let slots = match deploy.down.as_ref().filter(|_| deploy.reversible) {
            Some(down) => Some(
                place_down(&deploy.units, down, deploy.dialect != Dialect::Mysql).ok_or_else(|| {
                    cannot(format!(
                        "deploy {}'s rollback cannot be split over its changesets (each rollback part needs a changeset that runs in a transaction exactly when it does); roll it back with phasegate",
                        deploy.phase
                    ))
                })?,
            ),
            None => None,
        };
        for (i, unit) in deploy.units.iter().enumerate() {
            let rollback = slots.as_ref().map(|s| s[i].as_ref());
            changeset(&mut out, deploy, author, i, unit, rollback)?;
        }
        files.push(ExportFile {
            path: PathBuf::from(format!(
                "{version}_{}_p{}.sql",
                plan_slug(deploy),
                deploy.phase
            )),
            contents: out,
        });
    }
    Ok(files)
}

fn cannot(message: String) -> ExportError {
    ExportError::Cannot {
        runner: RUNNER,
        message,
    }
}

/// Appends unit `i`'s changeset. `rollback`: `None` for an irreversible
/// deploy (no `--rollback`), `Some(None)` for nothing to undo.
fn changeset(
    out: &mut String,
    deploy: &Deploy,
    author: &str,
    i: usize,
    unit: &Unit,
    rollback: Option<Option<&Unit>>,
) -> Result<(), ExportError> {
    let id = unit_name(deploy, i, unit);
    check_lines(unit, &id)?;
    let rollback_sql = match rollback {
        Some(Some(r)) => {
            check_lines(r, &id)?;
            true
        }
        _ => false,
    };
    out.push_str(&format!("\n--changeset {author}:{id}"));
    if !unit.transactional {
        out.push_str(" runInTransaction:false");
    }
    out.push_str(" endDelimiter:/");
    if rollback_sql {
        out.push_str(" rollbackEndDelimiter:/");
    }
    out.push('\n');
    let mut comment = vec![unit_line(deploy, i, unit)];
    comment.extend(unit.comments.iter().cloned());
    out.push_str(&format!("--comment: {}\n", one_line(&comment.join(" | "))));
    for c in &unit.comments {
        push_comment(out, c);
    }
    for s in &unit.statements {
        out.push_str(s);
        out.push_str("\n/\n");
    }
    match rollback {
        None => {}
        Some(None) => out.push_str("--rollback empty\n"),
        Some(Some(r)) => {
            for c in &r.comments {
                for l in comment_lines(c) {
                    out.push_str(&format!("--rollback -- {l}\n"));
                }
            }
            for s in &r.statements {
                for l in s.split('\n') {
                    out.push_str(&format!("--rollback {l}\n"));
                }
                out.push_str("--rollback /\n");
            }
        }
    }
    Ok(())
}

/// Refuses a unit with an SQL line that would read as a directive, or
/// that starts with `/`, the statement delimiter.
fn check_lines(unit: &Unit, id: &str) -> Result<(), ExportError> {
    for s in &unit.statements {
        for line in s.lines() {
            if is_directive(line) {
                return Err(cannot(format!(
                    "changeset {id}: the SQL line {line:?} would read as a Liquibase directive"
                )));
            }
            let t = line.trim_start();
            if t.starts_with('/') && !t.starts_with("/*") {
                return Err(cannot(format!(
                    "changeset {id}: the SQL line {line:?} starts with `/`, the statement delimiter"
                )));
            }
        }
    }
    Ok(())
}

fn is_directive(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix("--") else {
        return false;
    };
    // Any further dashes too: `-- --rollback x` is kept from reading as one.
    let rest = rest
        .trim_start_matches(|c: char| c == '-' || c.is_whitespace())
        .to_ascii_lowercase();
    DIRECTIVES.iter().any(|d| rest.starts_with(d))
}

/// Comment lines; one that would read as a directive is prefixed with `> `.
fn push_comment(out: &mut String, text: &str) {
    for l in comment_lines(text) {
        if l.is_empty() {
            out.push_str("--\n");
        } else if is_directive(&format!("-- {l}")) {
            out.push_str(&format!("-- > {l}\n"));
        } else {
            out.push_str(&format!("-- {l}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;
    use crate::export::runners::golden_files;

    #[test]
    fn golden_on_every_dialect() {
        for dialect in Dialect::ALL {
            let files = write(&fixture::deploys(dialect), &Options::default()).unwrap();
            golden_files::check("liquibase", dialect, &files);
        }
    }

    #[test]
    fn one_file_per_deploy_with_rollbacks_only_where_the_deploy_has_them() {
        let files = write(&fixture::deploys(Dialect::Postgres), &Options::default()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.path.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "20260101000000_rename_users_name_p1.sql",
                "20260101000001_rename_users_name_p2.sql"
            ]
        );
        let expand = &files[0].contents;
        assert!(
            expand.starts_with("--liquibase formatted sql\n"),
            "{expand}"
        );
        assert_eq!(
            expand.matches("\n--changeset phasegate:").count(),
            5,
            "{expand}"
        );
        assert!(
            expand.contains("--changeset phasegate:rename_users_name_p1_03_create_index runInTransaction:false endDelimiter:/\n"),
            "{expand}"
        );
        // The rollback sits on the oldest changeset; the others roll back to nothing.
        let guard = expand.find("p1_01_guard").unwrap();
        let drop = expand
            .find("--rollback ALTER TABLE users DROP COLUMN full_name;")
            .unwrap();
        let add = expand.find("p1_02_add_column").unwrap();
        assert!(guard < drop && drop < add, "{expand}");
        assert_eq!(expand.matches("--rollback empty\n").count(), 4, "{expand}");
        assert!(
            !files[1].contents.contains("--rollback"),
            "{}",
            files[1].contents
        );
    }

    #[test]
    fn statements_end_at_a_slash_line_so_a_do_block_stays_whole() {
        let mut deploys = fixture::deploys(Dialect::Postgres);
        deploys[0].units[1]
            .statements
            .push("DO $$ DECLARE n int; BEGIN SELECT 1 INTO n; END $$;".into());
        deploys[0].down.as_mut().unwrap()[0]
            .statements
            .push("DO $$ BEGIN PERFORM 1; END $$;".into());
        let files = write(&deploys, &Options::default()).unwrap();
        let expand = &files[0].contents;
        assert!(
            expand.contains("rename_users_name_p1_02_add_column endDelimiter:/\n"),
            "{expand}"
        );
        assert!(
            expand.contains("\nDO $$ DECLARE n int; BEGIN SELECT 1 INTO n; END $$;\n/\n"),
            "{expand}"
        );
        assert!(
            expand.contains("p1_01_guard endDelimiter:/ rollbackEndDelimiter:/\n"),
            "{expand}"
        );
        assert!(
            expand.contains("--rollback DO $$ BEGIN PERFORM 1; END $$;\n--rollback /\n"),
            "{expand}"
        );
    }

    #[test]
    fn hostile_text_is_refused_or_kept_in_comments() {
        let bad_author = Options {
            author: "Jane Doe".into(),
            ..Options::default()
        };
        let e = write(&fixture::deploys(Dialect::Sqlite), &bad_author).unwrap_err();
        assert!(e.to_string().contains("\"Jane Doe\""), "{e}");

        let mut deploys = fixture::deploys(Dialect::Sqlite);
        deploys[0].summary = "x\n--rollback DROP TABLE users;".into();
        deploys[0].units[1]
            .comments
            .push("changeset evil:1 ünï".into());
        let out = &write(&deploys, &Options::default()).unwrap()[0].contents;
        assert!(
            out.contains("\n-- > --rollback DROP TABLE users;\n"),
            "{out}"
        );
        assert!(out.contains("\n-- > changeset evil:1 ünï\n"), "{out}");
        assert!(!out.contains("\n--rollback DROP TABLE users"), "{out}");

        deploys[0].units[1]
            .statements
            .push("SELECT 1\n--changeset x:y\n;".into());
        let e = write(&deploys, &Options::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("would read as a Liquibase directive"), "{e}");
    }
}
