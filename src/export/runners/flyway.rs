//! Flyway: one versioned SQL migration per unit,
//! `V<version>__<plan>_p<phase>_<NN>_<unit>.sql`, numbered from `--version`
//! (each later file adds one; a `YYYYMMDDHHMMSS` version steps by seconds).
//!
//! Flyway conventions used (Redgate's Flyway documentation):
//! - versioned migrations `V<version>__<description>.sql`, run once each in
//!   version order, each in its own transaction by default;
//! - a unit that must run outside a transaction gets a script configuration
//!   file beside it, named after the script with `.conf` added
//!   (`V…__x.sql.conf`), holding `executeInTransaction=false`
//!   ("Script Configuration"; a Community feature);
//! - Flyway replaces `${name}` placeholders in SQL by default: a script
//!   whose SQL contains `${` gets `placeholderReplacement=false` in its
//!   script configuration file so the SQL runs as written;
//! - undo migrations `U<version>__<description>.sql` undo the versioned
//!   migration of the same version (`flyway undo`, a Flyway Teams feature:
//!   Community ignores them). A reversible deploy gets one for every
//!   versioned file: the deploy's rollback units on the oldest versions,
//!   in order (see `layout::place_down`), the others a no-op, so undoing
//!   the deploy's versions newest first runs its rollback in order. An
//!   irreversible deploy gets none, so `flyway undo` refuses it;
//! - a MySQL body (a statement with `;` inside: trigger, procedure) is
//!   wrapped in `DELIMITER` lines, which Flyway's MySQL parser supports
//!   ("Delimiter change for stored procedures using DELIMITER statements",
//!   Flyway's MySQL page); a PostgreSQL `DO $tag$ … $tag$` block is written
//!   as it is: Flyway's PostgreSQL parser reads a dollar-quoted body as one
//!   string literal (`PostgreSQLParser::handleAlternativeStringLiteral` in
//!   flyway-core), and its SQLite parser reads backquoted names as names.

use std::path::PathBuf;

use super::escape::comment_lines;
use super::layout::{header, nth_version, place_down, unit_line, unit_name};
use crate::dialect::Dialect;
use crate::export::{Deploy, ExportError, ExportFile, Options, Runner, Unit};

const RUNNER: Runner = Runner::Flyway;

pub(super) fn write(deploys: &[Deploy], options: &Options) -> Result<Vec<ExportFile>, ExportError> {
    let mut files = Vec::new();
    let mut n = 0;
    for deploy in deploys {
        let versions = (0..deploy.units.len())
            .map(|i| nth_version(RUNNER, &options.version, n + i))
            .collect::<Result<Vec<_>, _>>()?;
        n += deploy.units.len();
        for (i, unit) in deploy.units.iter().enumerate() {
            let name = format!("V{}__{}.sql", versions[i], unit_name(deploy, i, unit));
            let this = unit_line(deploy, i, unit);
            script(&mut files, deploy, name, &this, Some(unit));
        }
        let Some(down) = deploy.down.as_ref().filter(|_| deploy.reversible) else {
            continue;
        };
        let slots = place_down(&deploy.units, down, false).ok_or_else(|| ExportError::Cannot {
            runner: RUNNER,
            message: format!(
                "deploy {} has {} rollback parts but only {} migrations to hang them on",
                deploy.phase,
                down.len(),
                deploy.units.len()
            ),
        })?;
        for (i, unit) in deploy.units.iter().enumerate() {
            let name = format!("U{}__{}.sql", versions[i], unit_name(deploy, i, unit));
            match &slots[i] {
                Some(d) => {
                    let this = format!(
                        "Undo (Flyway Teams `flyway undo`) of V{}: rollback of the deploy ({}).",
                        versions[i], d.name
                    );
                    script(&mut files, deploy, name, &this, Some(d));
                }
                None => {
                    let this = format!(
                        "Undo (Flyway Teams `flyway undo`) of V{}: nothing to undo here; the deploy's rollback runs when its oldest versions are undone.",
                        versions[i]
                    );
                    script(&mut files, deploy, name, &this, None);
                }
            }
        }
    }
    Ok(files)
}

/// Adds the script `name` (and its `.conf` when it needs one) to `files`:
/// the header, then `unit`'s comments and statements, or a no-op.
fn script(
    files: &mut Vec<ExportFile>,
    deploy: &Deploy,
    name: String,
    this: &str,
    unit: Option<&Unit>,
) {
    let mut sql = String::new();
    for line in header(deploy, this) {
        push_comment(&mut sql, &line);
    }
    sql.push('\n');
    let mut conf = Vec::new();
    match unit {
        Some(unit) => {
            for c in &unit.comments {
                push_comment(&mut sql, c);
            }
            for s in &unit.statements {
                sql.push_str(&statement(deploy.dialect, s));
            }
            if !unit.transactional {
                conf.push("# It cannot run inside a transaction (phasegate export).");
                conf.push("executeInTransaction=false");
            }
            if unit.statements.iter().any(|s| s.contains("${")) {
                conf.push("# Its SQL contains `${`, which is not a Flyway placeholder.");
                conf.push("placeholderReplacement=false");
            }
        }
        None => sql.push_str("SELECT 1;\n"),
    }
    if !conf.is_empty() {
        files.push(ExportFile {
            path: PathBuf::from(format!("{name}.conf")),
            contents: conf.join("\n") + "\n",
        });
    }
    files.push(ExportFile {
        path: PathBuf::from(name),
        contents: sql,
    });
}

fn push_comment(out: &mut String, text: &str) {
    for l in comment_lines(text) {
        out.push_str("--");
        if !l.is_empty() {
            out.push(' ');
            out.push_str(&l);
        }
        out.push('\n');
    }
}

/// One statement as the script holds it: as it is, or, for a MySQL body
/// with `;` inside, between `DELIMITER` lines with a delimiter it does not
/// contain.
fn statement(dialect: Dialect, s: &str) -> String {
    let body = s.trim_end().strip_suffix(';').unwrap_or(s.trim_end());
    if dialect != Dialect::Mysql || !body.contains(';') {
        return format!("{s}\n");
    }
    let delimiter = ["//", "$$", ";;", "@@"]
        .into_iter()
        .map(String::from)
        .chain((1..).map(|n| format!("//{n}//")))
        .find(|d| !body.contains(d.as_str()))
        .unwrap_or_default();
    format!("DELIMITER {delimiter}\n{body}{delimiter}\nDELIMITER ;\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;
    use crate::export::runners::golden_files;

    fn find<'a>(files: &'a [ExportFile], name: &str) -> &'a ExportFile {
        files
            .iter()
            .find(|f| f.path.to_string_lossy() == name)
            .unwrap_or_else(|| {
                panic!(
                    "no {name} in {:?}",
                    files.iter().map(|f| &f.path).collect::<Vec<_>>()
                )
            })
    }

    #[test]
    fn golden_on_every_dialect() {
        for dialect in Dialect::ALL {
            let files = write(&fixture::deploys(dialect), &Options::default()).unwrap();
            golden_files::check("flyway", dialect, &files);
        }
    }

    #[test]
    fn versions_run_on_across_deploys_and_undo_files_mirror_the_reversible_one() {
        let files = write(&fixture::deploys(Dialect::Postgres), &Options::default()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.path.to_string_lossy().into_owned())
            .collect();
        // expand: 5 units, V…00 to V…04, each with an undo; contract: V…05, V…06, no undo.
        assert!(
            names.contains(&"V20260101000004__rename_users_name_p1_05_backfill_handoff.sql".into()),
            "{names:?}"
        );
        assert!(
            names.contains(&"V20260101000006__rename_users_name_p2_02_drop_column.sql".into()),
            "{names:?}"
        );
        assert_eq!(
            names.iter().filter(|n| n.starts_with('U')).count(),
            5,
            "{names:?}"
        );
        let undo = find(&files, "U20260101000000__rename_users_name_p1_01_guard.sql");
        assert!(
            undo.contents
                .contains("ALTER TABLE users DROP COLUMN full_name;"),
            "{}",
            undo.contents
        );
        let noop = find(
            &files,
            "U20260101000004__rename_users_name_p1_05_backfill_handoff.sql",
        );
        assert!(!noop.contents.contains("DROP"), "{}", noop.contents);
        assert!(
            !names.iter().any(|n| n.starts_with("U20260101000005")),
            "{names:?}"
        );
    }

    #[test]
    fn a_non_transactional_unit_gets_a_script_config_file() {
        let files = write(&fixture::deploys(Dialect::Postgres), &Options::default()).unwrap();
        let conf = find(
            &files,
            "V20260101000002__rename_users_name_p1_03_create_index.sql.conf",
        );
        assert!(
            conf.contents
                .lines()
                .any(|l| l == "executeInTransaction=false"),
            "{}",
            conf.contents
        );
        let confs = files
            .iter()
            .filter(|f| f.path.extension().is_some_and(|e| e == "conf"))
            .count();
        assert_eq!(confs, 1);
        // SQLite builds the index in a transaction: no config file at all.
        let files = write(&fixture::deploys(Dialect::Sqlite), &Options::default()).unwrap();
        assert!(
            !files
                .iter()
                .any(|f| f.path.extension().is_some_and(|e| e == "conf"))
        );
    }

    #[test]
    fn hostile_text_stays_in_comments_and_placeholders_are_left_alone() {
        let mut deploys = fixture::deploys(Dialect::Mysql);
        deploys[0].summary = "line one\nDROP TABLE users; -- ünï ${x}".into();
        deploys[0].units[1].statements.push(
            "CREATE TRIGGER t BEFORE UPDATE ON users FOR EACH ROW BEGIN SET NEW.a = '//'; SET NEW.b = '${x}'; END;".into(),
        );
        let files = write(&deploys, &Options::default()).unwrap();
        let f = find(
            &files,
            "V20260101000001__rename_users_name_p1_02_add_column.sql",
        );
        assert!(
            f.contents.contains("\n-- DROP TABLE users; -- ünï ${x}\n"),
            "{}",
            f.contents
        );
        assert!(
            f.contents.contains("DELIMITER $$\nCREATE TRIGGER t BEFORE UPDATE ON users FOR EACH ROW BEGIN SET NEW.a = '//'; SET NEW.b = '${x}'; END$$\nDELIMITER ;\n"),
            "{}",
            f.contents
        );
        let conf = find(
            &files,
            "V20260101000001__rename_users_name_p1_02_add_column.sql.conf",
        );
        assert!(
            conf.contents.contains("placeholderReplacement=false"),
            "{}",
            conf.contents
        );
        assert!(
            !conf.contents.contains("executeInTransaction"),
            "{}",
            conf.contents
        );
    }

    #[test]
    fn a_version_that_is_not_one_is_refused() {
        let options = Options {
            version: "next".into(),
            ..Options::default()
        };
        let e = write(&fixture::deploys(Dialect::Postgres), &options).unwrap_err();
        assert!(
            e.to_string().starts_with("flyway: --version \"next\""),
            "{e}"
        );
    }
}
