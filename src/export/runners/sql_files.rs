//! What the plain-SQL-file runners (sqlx, dbmate, golang-migrate, Supabase,
//! Prisma) share: file versions, slugs, the header comment, and cutting a
//! deploy's units into the migrations such a runner sends one file at a time.
//!
//! These runners send a whole file to the database as one text. On
//! Postgres, a text of several statements sent at once (the simple query
//! protocol) runs as one implicit transaction (Postgres docs, "Frontend/Backend
//! Protocol", 55.2.2.1 Multiple Statements in a Simple Query), and
//! `CREATE INDEX CONCURRENTLY` refuses to run in one ("cannot run inside a
//! transaction block"). So on Postgres a non-transactional unit (its session
//! settings and one statement) becomes three migrations: the settings
//! (session-level `SET`, kept by the runner's connection), the statement
//! alone, and a `RESET` of those settings, so the team's later migrations in
//! the same run do not inherit phasegate's timeouts. (The Supabase CLI runs
//! such a statement outside the file's transaction itself and resets the
//! session between files, so `supabase.rs` does not split.)

use chrono::{NaiveDateTime, TimeDelta};

use crate::dialect::Dialect;
use crate::export::{Deploy, ExportError, Options, Runner, Unit};

/// One migration a runner runs: a unit, or one part of a non-transactional
/// Postgres unit (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Piece {
    /// `[a-z0-9_]+`, for the file name (the unit's name, with a suffix for
    /// the parts of a split unit).
    pub name: String,
    /// False: the runner must run it outside a transaction.
    pub transactional: bool,
    /// Comment lines (without `-- `).
    pub comments: Vec<String>,
    /// Statements, each terminated with `;`.
    pub statements: Vec<String>,
}

impl Piece {
    /// The comments (as `-- ` lines) and the statements, one per line group.
    pub fn body(&self) -> String {
        let mut out = String::new();
        for c in &self.comments {
            push_comment(&mut out, c);
        }
        for s in &self.statements {
            out.push_str(s);
            out.push('\n');
        }
        out
    }
}

/// Appends `-- line` (each line of a multi-line text commented).
pub(super) fn push_comment(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("--");
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line);
        }
        out.push('\n');
    }
    if text.is_empty() {
        out.push_str("--\n");
    }
}

/// `Unsupported` unless `dialect` is one of `supported`.
pub(super) fn check_dialect(
    runner: Runner,
    deploys: &[Deploy],
    supported: &[Dialect],
) -> Result<(), ExportError> {
    match deploys.iter().find(|d| !supported.contains(&d.dialect)) {
        Some(d) => Err(ExportError::Unsupported {
            runner,
            dialect: d.dialect,
        }),
        None => Ok(()),
    }
}

/// `text` as `[a-z0-9_]+`: lowercase ASCII letters and digits kept, every
/// other run of characters one `_`, none at either end; `plan` when nothing
/// is left ([`super::escape::slug`]).
pub(super) fn slug(text: &str) -> String {
    super::escape::slug(text, "plan")
}

/// The `<plan>_deploy<N>_<piece>` part of a file name.
pub(super) fn file_stem(deploy: &Deploy, piece: &Piece) -> String {
    format!(
        "{}_deploy{}_{}",
        slug(&deploy.plan),
        deploy.phase,
        slug(&piece.name)
    )
}

/// Successive versions from `--version`: a `YYYYMMDDHHMMSS` timestamp steps
/// one second at a time (so each stays a valid timestamp, as dbmate, Supabase
/// and Prisma name files); any other run of digits steps by one.
pub(super) struct Versions {
    next: Next,
    runner: Runner,
    /// The largest version the runner can read (sqlx: `i64::MAX`).
    max: u128,
}

enum Next {
    Timestamp(NaiveDateTime),
    /// Wider than any version a runner reads, so the count never wraps.
    Number(u128),
}

impl Versions {
    /// Fails (`Cannot`) unless `options.version` is digits only.
    pub fn new(runner: Runner, options: &Options) -> Result<Self, ExportError> {
        let v = options.version.as_str();
        let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        if !digits {
            return Err(ExportError::Cannot {
                runner,
                message: format!(
                    "--version {v:?}: expected digits, e.g. a UTC timestamp YYYYMMDDHHMMSS (20260101093000)"
                ),
            });
        }
        let next = match NaiveDateTime::parse_from_str(v, "%Y%m%d%H%M%S") {
            Ok(t) if v.len() == 14 => Next::Timestamp(t),
            _ => Next::Number(v.parse::<u128>().map_err(|_| ExportError::Cannot {
                runner,
                message: format!("--version {v}: too large for a version number"),
            })?),
        };
        let max = max_version(runner);
        if let Next::Number(n) = next
            && n > max
        {
            return Err(too_large(runner, v, max));
        }
        Ok(Versions { next, runner, max })
    }

    /// The next version, as the file name writes it; fails (`Cannot`) when
    /// it would pass the largest version the runner reads.
    pub fn next(&mut self) -> Result<String, ExportError> {
        match &mut self.next {
            Next::Timestamp(t) => {
                let out = t.format("%Y%m%d%H%M%S").to_string();
                *t += TimeDelta::seconds(1);
                Ok(out)
            }
            Next::Number(n) => {
                if *n > self.max {
                    return Err(too_large(self.runner, &n.to_string(), self.max));
                }
                let out = n.to_string();
                *n += 1;
                Ok(out)
            }
        }
    }
}

/// The largest version number `runner` reads: sqlx parses the prefix as an
/// `i64` (sqlx-core `migrate/source.rs`, `parse::<i64>()`); golang-migrate
/// as a `uint64` (`source/parse.go`); the others compare or store it as
/// text or an arbitrary-precision number, which `u64` bounds here.
fn max_version(runner: Runner) -> u128 {
    match runner {
        Runner::Sqlx => i64::MAX as u128,
        _ => u64::MAX as u128,
    }
}

fn too_large(runner: Runner, v: &str, max: u128) -> ExportError {
    ExportError::Cannot {
        runner,
        message: format!(
            "--version: the exported files would be numbered past {max}, the largest version {runner} reads (version {v} is too large); give a smaller --version, e.g. a UTC timestamp YYYYMMDDHHMMSS (20260101093000)"
        ),
    }
}

/// The header every file of `deploy` starts with (comment lines, without
/// `-- `): plan, deploy N of M, summary, the app change that ships with it,
/// the `phasegate mark` that records its app deploy, and whether it can be
/// undone.
pub(super) fn header(deploy: &Deploy, piece: &Piece, runner: Runner) -> Vec<String> {
    let mut h = vec![
        format!(
            "phasegate export --to {runner}: plan {}, deploy {} of {} ({}).",
            deploy.plan, deploy.phase, deploy.of, piece.name
        ),
        deploy.summary.clone(),
    ];
    for app in &deploy.app {
        h.push(format!("Ships with the app change: {app}"));
    }
    h.push(format!(
        "When that app release is live everywhere (in each environment): phasegate mark --env <ENV> {} --phase {} --app-version <VERSION>",
        deploy.plan, deploy.phase
    ));
    if !deploy.reversible {
        h.push(format!(
            "Irreversible: deploy {} cannot be undone.",
            deploy.phase
        ));
    }
    if !piece.transactional {
        h.push("Runs outside a transaction, alone.".into());
    }
    h
}

/// The migrations `unit` becomes on `dialect` (see the module doc): itself,
/// or, for a non-transactional Postgres unit with session settings, its
/// settings, its statement and a reset of the settings.
pub(super) fn pieces(dialect: Dialect, unit: &Unit) -> Vec<Piece> {
    let whole = Piece {
        name: unit.name.clone(),
        transactional: unit.transactional,
        comments: unit.comments.clone(),
        statements: unit.statements.clone(),
    };
    if unit.transactional || dialect != Dialect::Postgres || unit.statements.len() < 2 {
        return vec![whole];
    }
    let (statement, settings) = match unit.statements.split_last() {
        Some(split) => split,
        None => return vec![whole],
    };
    let resets: Vec<String> = settings
        .iter()
        .filter_map(|s| setting_name(s))
        .map(|name| format!("RESET {name};"))
        .collect();
    let mut out = vec![
        Piece {
            name: format!("{}_session", unit.name),
            transactional: false,
            comments: vec![format!(
                "{}: the session settings the next migration runs under \
                 (Postgres runs a file of several statements as one transaction, \
                 so the statement that follows must be alone in its file).",
                unit.name
            )],
            statements: settings.to_vec(),
        },
        Piece {
            name: unit.name.clone(),
            transactional: false,
            comments: unit.comments.clone(),
            statements: vec![statement.clone()],
        },
    ];
    if !resets.is_empty() {
        out.push(Piece {
            name: format!("{}_reset", unit.name),
            transactional: false,
            comments: vec![format!(
                "{}: back to the session's own settings, so later migrations do not inherit them.",
                unit.name
            )],
            statements: resets,
        });
    }
    out
}

/// The parameter a `SET [SESSION] name = …;` statement sets, if it is one.
fn setting_name(statement: &str) -> Option<String> {
    let mut words = statement.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("SET") {
        return None;
    }
    let mut name = words.next()?;
    if name.eq_ignore_ascii_case("SESSION") {
        name = words.next()?;
    }
    let name = name.split(['=', ';']).next()?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    valid.then(|| name.to_string())
}

/// How to undo a reversible deploy as the runner runs down migrations: one
/// per up migration, newest first. The deploy's down units become pieces
/// (consecutive transactional ones merged into one, so the undo is one
/// transaction where it can be); the first of them (in the order they run)
/// belongs to the down migration of up migration `k − 1`, the next to `k − 2`,
/// … the last to up migration 0, so reverting the whole deploy (newest
/// version first) runs them in order, and every later up migration gets an
/// empty down. When there are more pieces than up migrations, [`lay_out`]
/// adds empty up migrations ([`padding`]) at the deploy's end, so every
/// piece has a version.
pub(super) struct DownPlan {
    /// `slots[i]`: the down of up migration `i` (`None`: nothing to undo there).
    pub slots: Vec<Option<Piece>>,
}

/// The down slots of `deploy` with `ups` up migrations (see [`DownPlan`]);
/// `None` when the deploy is irreversible. The slots may outnumber `ups`:
/// the caller adds empty up migrations for the extra ones.
pub(super) fn down_plan(deploy: &Deploy, ups: usize) -> Option<DownPlan> {
    let down = deploy.down.as_ref()?;
    let mut merged: Vec<Piece> = Vec::new();
    for unit in down {
        for piece in pieces(deploy.dialect, unit) {
            match merged.last_mut() {
                Some(last) if last.transactional && piece.transactional => {
                    if !last.name.starts_with("undo of ") {
                        last.name = format!("undo of deploy {}", deploy.phase);
                    }
                    last.comments.extend(piece.comments);
                    last.statements.extend(piece.statements);
                }
                _ => merged.push(piece),
            }
        }
    }
    let k = merged.len();
    let total = ups.max(k);
    let mut slots: Vec<Option<Piece>> = vec![None; total];
    for (i, piece) in merged.into_iter().enumerate() {
        slots[k - 1 - i] = Some(piece);
    }
    Some(DownPlan { slots })
}

/// Every piece of `deploy`'s units, in order.
pub(super) fn up_pieces(deploy: &Deploy) -> Vec<Piece> {
    deploy
        .units
        .iter()
        .flat_map(|u| pieces(deploy.dialect, u))
        .collect()
}

/// A down migration's statements for an irreversible deploy, for a runner
/// that requires a down (dbmate): they fail, saying why, so a rollback stops
/// there instead of recording an undo that did not happen.
pub(super) fn refuse_undo(deploy: &Deploy) -> Vec<String> {
    let d = deploy.dialect;
    let message = format!(
        "phasegate: deploy {} of {} ({}) is irreversible; restore from a backup instead",
        deploy.phase, deploy.of, deploy.plan
    );
    match d {
        Dialect::Postgres => vec![format!(
            "DO $phasegate$ BEGIN RAISE EXCEPTION '%', {}; END $phasegate$;",
            d.quote_literal(&message)
        )],
        // No way to raise an error outside a stored program: reading a table
        // that does not exist fails, and its name says why.
        Dialect::Mysql | Dialect::Sqlite => vec![format!(
            "SELECT * FROM {};",
            d.quote_ident(&format!("phasegate_irreversible_deploy_{}", deploy.phase))
        )],
    }
}

/// A down migration that does nothing (`SELECT 1;`: MySQL refuses an empty
/// query), for an up migration whose deploy is undone by other downs.
pub(super) fn empty_down(deploy: &Deploy, up: &Piece) -> Piece {
    Piece {
        name: format!("{}_down", up.name),
        transactional: true,
        comments: vec![format!(
            "Nothing to undo in this file: deploy {}'s undo runs in the down \
             migrations of its first versions.",
            deploy.phase
        )],
        statements: vec!["SELECT 1;".into()],
    }
}

/// An up migration that does nothing: it only gives a down migration a
/// version when a deploy's undo needs more versions than its up has.
pub(super) fn padding(index: usize) -> Piece {
    Piece {
        name: format!("rollback_slot_{index}"),
        transactional: true,
        comments: vec![
            "Nothing to do on the way up: this version holds a part of the deploy's undo.".into(),
        ],
        statements: vec!["SELECT 1;".into()],
    }
}

/// A deploy laid out as up migrations, each with its down (`None` for an
/// irreversible deploy; `Some(None)`: an empty down).
pub(super) struct Laid {
    pub up: Piece,
    pub down: Option<Option<Piece>>,
}

/// `deploy`'s up migrations with their downs (see [`down_plan`]).
pub(super) fn lay_out(deploy: &Deploy) -> Vec<Laid> {
    let mut ups = up_pieces(deploy);
    match down_plan(deploy, ups.len()) {
        None => ups.into_iter().map(|up| Laid { up, down: None }).collect(),
        Some(plan) => {
            while ups.len() < plan.slots.len() {
                let n = ups.len();
                ups.push(padding(n));
            }
            ups.into_iter()
                .zip(plan.slots)
                .map(|(up, down)| Laid {
                    up,
                    down: Some(down),
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;

    #[test]
    fn a_timestamp_version_steps_by_a_second_across_a_minute() {
        let options = Options {
            version: "20260101235959".into(),
            ..Options::default()
        };
        let mut v = Versions::new(Runner::Dbmate, &options).unwrap();
        assert_eq!(v.next().unwrap(), "20260101235959");
        assert_eq!(v.next().unwrap(), "20260102000000");
        let options = Options {
            version: "7".into(),
            ..Options::default()
        };
        let mut v = Versions::new(Runner::Sqlx, &options).unwrap();
        assert_eq!(
            (v.next().unwrap(), v.next().unwrap()),
            ("7".to_string(), "8".to_string())
        );
        let bad = Options {
            version: "v1".into(),
            ..Options::default()
        };
        let e = Versions::new(Runner::Sqlx, &bad).err().unwrap().to_string();
        assert!(e.contains("expected digits"), "{e}");
    }

    #[test]
    fn a_version_past_what_the_runner_reads_is_refused_naming_it() {
        let options = Options {
            version: (i64::MAX as u64 - 1).to_string(),
            ..Options::default()
        };
        let mut v = Versions::new(Runner::Sqlx, &options).unwrap();
        assert!(v.next().is_ok() && v.next().is_ok());
        let e = v.next().unwrap_err().to_string();
        assert!(
            e.starts_with("sqlx: --version") && e.contains(&i64::MAX.to_string()),
            "{e}"
        );
        // golang-migrate reads a uint64: the same version is fine there.
        let mut v = Versions::new(Runner::GolangMigrate, &options).unwrap();
        assert!((0..3).all(|_| v.next().is_ok()));
        let huge = Options {
            version: u64::MAX.to_string(),
            ..Options::default()
        };
        assert!(Versions::new(Runner::Sqlx, &huge).is_err());
        let mut v = Versions::new(Runner::GolangMigrate, &huge).unwrap();
        assert!(v.next().is_ok() && v.next().is_err());
    }

    #[test]
    fn a_postgres_concurrent_index_is_alone_between_its_settings_and_their_reset() {
        let d = &fixture::deploys(Dialect::Postgres)[0];
        let p = pieces(Dialect::Postgres, &d.units[2]);
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["create_index_session", "create_index", "create_index_reset"]
        );
        assert_eq!(p[1].statements.len(), 1);
        assert!(p[1].statements[0].starts_with("CREATE INDEX CONCURRENTLY"));
        assert_eq!(p[2].statements, ["RESET lock_timeout;"]);
        // MySQL sends settings and statement together: no split.
        let m = &fixture::deploys(Dialect::Mysql)[0];
        assert_eq!(pieces(Dialect::Mysql, &m.units[2]).len(), 1);
    }

    #[test]
    fn the_undo_sits_on_the_deploys_first_versions_newest_first() {
        let d = &fixture::deploys(Dialect::Postgres)[0];
        let laid = lay_out(d);
        assert_eq!(laid.len(), up_pieces(d).len());
        let first = laid[0].down.clone().unwrap().unwrap();
        assert!(first.statements.iter().any(|s| s.contains("DROP COLUMN")));
        assert!(laid[1..].iter().all(|l| l.down == Some(None)));
        let contract = &fixture::deploys(Dialect::Postgres)[1];
        assert!(lay_out(contract).iter().all(|l| l.down.is_none()));
        assert_eq!(slug("Rename users.name!"), "rename_users_name");
        assert_eq!(
            setting_name("SET SESSION lock_wait_timeout = 2;").as_deref(),
            Some("lock_wait_timeout")
        );
    }
}
