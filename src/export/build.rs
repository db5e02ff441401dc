//! Building a plan's [`Deploy`]s: the plan made for an environment exactly
//! as `apply` makes it, each deploy's steps cut into [`Unit`]s, with the
//! guard that refuses to run a deploy out of order and the SQL that records
//! it in the database's phasegate log (the events `apply` records, computed
//! with the same builders: `execute::plan_started`, `step_event`,
//! `phase_done`). docs/export.md describes what the units do.

use crate::config::Environment;
use crate::dialect::Dialect;
use crate::dialect::statements::split;
use crate::execute::{ForExport, RunError, Workspace};
use crate::plan::{Step, StepKind};
use crate::session_bounds::{self, StepBounds};
use crate::tracker::record_sql::{self, Only};
use crate::tracker::{EventKind, NewEvent, Next};

use super::guard;
use super::refuse::{Check, refuse_if};
use super::{Deploy, Runner, Unit};

/// What [`build`] made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The plan's name.
    pub plan: String,
    /// How the user named the plan (path or name), for commands in messages.
    pub label: String,
    /// The environment the plan was made for (its schema, its timeouts).
    pub env: String,
    /// The environment's dialect, which every deploy's SQL is written in.
    pub dialect: Dialect,
    /// How many deploys the plan has.
    pub phases: usize,
    /// The deploys written, in order.
    pub deploys: Vec<Deploy>,
    /// Without `--phase`: the first irreversible deploy, not written (it
    /// and the deploys after it are written only one by one, with `--phase`).
    pub withheld: Option<usize>,
}

/// The deploys of plan `target` for environment `env` (the first in
/// promotion order when `None`), recorded as done by `runner`: deploy
/// `phase` alone, or (`None`) every deploy before the first irreversible one.
pub async fn build(
    ws: &Workspace<'_>,
    env: Option<&str>,
    target: &str,
    runner: Runner,
    phase: Option<usize>,
) -> Result<Built, RunError> {
    let made = ws.for_export(env, target).await?;
    build_from(&made, runner, phase)
}

/// [`build`] from a plan already made for its environment.
pub fn build_from(
    made: &ForExport<'_>,
    runner: Runner,
    phase: Option<usize>,
) -> Result<Built, RunError> {
    let plan = &made.plan;
    let n = plan.phases.len();
    let (wanted, withheld): (Vec<usize>, Option<usize>) = match phase {
        Some(p) if p == 0 || p > n => {
            return Err(RunError::Invalid(format!(
                "{} has {n} deploy{}; there is no deploy {p} (deploys are 1 to {n})",
                plan.name,
                if n == 1 { "" } else { "s" }
            )));
        }
        Some(p) => (vec![p], None),
        None => {
            let first = plan.phases.iter().find(|p| !p.reversible).map(|p| p.number);
            let last = first.map_or(n, |f| f - 1);
            ((1..=last).collect(), first)
        }
    };
    gates_hold(made, &wanted)?;
    let deploys = wanted.iter().map(|&p| deploy(made, runner, p)).collect();
    Ok(Built {
        plan: plan.name.clone(),
        label: made.loaded.label.clone(),
        env: made.env.name.clone(),
        dialect: made.env.dialect,
        phases: n,
        deploys,
        withheld,
    })
}

/// Refuses, with `phasegate gate`'s verdict ([`RunError::Blocked`], exit
/// 1), to write a deploy that `phasegate apply --env E` would refuse by its
/// gates (promotion order, soak, backup, approval, verification) when that
/// deploy is E's next (`Verdict::phase`):
/// - the deploy `apply` runs now (`Next::Apply`): any gate that does not hold;
/// - an irreversible deploy right after one waiting for `mark`
///   (`Next::Deploy`): any gate but `order` and `soak`, which cannot hold
///   before the mark (the files' guard refuses until the deploy before is
///   marked; soak is for `phasegate gate` in the pipeline, docs/export.md).
///
/// A reversible deploy after one waiting for `mark` is written: its guard
/// refuses until the deploy before is marked.
fn gates_hold(made: &ForExport<'_>, wanted: &[usize]) -> Result<(), RunError> {
    let Some(verdict) = &made.verdict else {
        return Ok(());
    };
    let Some(p) = verdict.phase else {
        return Ok(());
    };
    if !wanted.contains(&p) || verdict.may_proceed() {
        return Ok(());
    }
    let reversible = made.plan.phases.get(p - 1).is_some_and(|ph| ph.reversible);
    let blocked = match verdict.next {
        Next::Apply(n) => n == p,
        Next::Deploy(n) => {
            n + 1 == p
                && !reversible
                && verdict
                    .blocked()
                    .any(|g| g.name != "order" && g.name != "soak")
        }
        Next::Complete => false,
    };
    if blocked {
        return Err(RunError::Blocked(Box::new(verdict.clone())));
    }
    Ok(())
}

/// What every unit of one deploy shares.
pub(super) struct Cx<'a> {
    pub dialect: Dialect,
    pub plan: &'a str,
    pub label: &'a str,
    pub env: &'a Environment,
    pub phase: usize,
    pub of: usize,
    pub actor: String,
}

impl Cx<'_> {
    fn bounds(&self) -> StepBounds {
        crate::execute::steps::bounds(self.env)
    }

    /// The unit's timeouts: `apply`'s prelude without its `BEGIN`.
    pub fn prelude(&self, transactional: bool) -> Vec<String> {
        session_bounds::step_prelude(self.dialect, self.bounds(), transactional)
            .into_iter()
            .filter(|s| !is_begin(s))
            .collect()
    }

    /// The statements appending `event` (empty on SQLite, which never gets here).
    pub fn record(&self, event: &NewEvent, only: Only) -> Vec<String> {
        record_sql::append_sql(self.dialect, event, &self.actor, only).unwrap_or_default()
    }

    /// The statements appending a `step_started` or
    /// `step_rollback_started` whose detail is the session running them.
    pub fn record_started(&self, event: &NewEvent) -> Vec<String> {
        record_sql::append_started_sql(self.dialect, event, &self.actor).unwrap_or_default()
    }

    fn step(&self, step: &Step, kind: EventKind) -> NewEvent {
        crate::execute::step_event(self.plan, self.phase, &step.id, kind)
    }
}

fn is_begin(s: &str) -> bool {
    let s = s.trim().trim_end_matches(';').trim().to_ascii_uppercase();
    s == "BEGIN" || s == "BEGIN IMMEDIATE" || s == "START TRANSACTION" || s == "COMMIT"
}

/// A step id as a unit name: `1.add_column` → `add_column`.
pub(super) fn slug(id: &str) -> String {
    let tail = id.split_once('.').map_or(id, |(_, t)| t);
    let s: String = tail
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "step".into() } else { s }
}

pub(super) fn terminated(statement: &str) -> String {
    let s = statement.trim_end();
    if s.ends_with(';') {
        s.to_string()
    } else {
        format!("{s};")
    }
}

/// How the units so far end, for where the next statements go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    /// A transactional unit of migration steps: the next transactional step joins it.
    Steps,
    /// A transactional unit that takes more recording, not more steps.
    Records,
    /// A non-transactional unit: nothing joins it.
    Alone,
}

struct Units {
    units: Vec<Unit>,
    last: Last,
}

impl Units {
    /// The transactional unit recording goes into: the last one, or a new `record`.
    fn recording(&mut self, cx: &Cx<'_>) -> &mut Unit {
        if self.last == Last::Alone {
            let mut statements = session_bounds::step_postlude(cx.dialect, false);
            statements.retain(|s| !is_begin(s));
            statements.extend(cx.prelude(true));
            self.units.push(Unit {
                name: "record".into(),
                transactional: true,
                comments: vec![format!(
                    "records the step before in phasegate's log (phase {} of {})",
                    cx.phase, cx.plan
                )],
                statements,
                steps: Vec::new(),
            });
            self.last = Last::Records;
        }
        let i = self.units.len() - 1;
        &mut self.units[i]
    }
}

fn deploy(made: &ForExport<'_>, runner: Runner, phase_no: usize) -> Deploy {
    let plan = &made.plan;
    let phase = &plan.phases[phase_no - 1];
    let cx = Cx {
        dialect: made.env.dialect,
        plan: &plan.name,
        label: &made.loaded.label,
        env: made.env,
        phase: phase_no,
        of: plan.phases.len(),
        actor: runner.name().to_string(),
    };
    let steps: Vec<&Step> = plan.phase_steps(phase).collect();
    let app: Vec<String> = steps
        .iter()
        .filter(|s| s.kind == StepKind::App)
        .map(|s| s.description.clone())
        .collect();
    let summary = steps
        .iter()
        .filter(|s| s.kind != StepKind::App)
        .map(|s| s.description.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let summary = if summary.is_empty() {
        "no database change (the app change ships alone)".to_string()
    } else {
        summary
    };
    let units = if cx.dialect == Dialect::Sqlite {
        vec![guard::sqlite_refusal(&cx)]
    } else {
        up_units(&cx, made, &steps, app.is_empty())
    };
    let down = match (phase.reversible, cx.dialect) {
        (false, _) => None,
        (true, Dialect::Sqlite) => Some(vec![guard::sqlite_refusal(&cx)]),
        (true, _) => Some(super::down::down_units(&cx, &steps)),
    };
    Deploy {
        plan: plan.name.clone(),
        phase: phase_no,
        of: plan.phases.len(),
        dialect: cx.dialect,
        summary,
        reversible: phase.reversible,
        app,
        units,
        down,
    }
}

fn up_units(cx: &Cx<'_>, made: &ForExport<'_>, steps: &[&Step], no_app: bool) -> Vec<Unit> {
    let mut guard = guard::guard_unit(cx, &made.loaded);
    if cx.phase == 1 {
        let started = crate::execute::plan_started(&made.plan, &made.loaded);
        guard
            .statements
            .extend(cx.record(&started, Only::PlanNotStarted));
    }
    let mut u = Units {
        units: vec![guard],
        last: Last::Records,
    };
    for (i, step) in steps.iter().enumerate() {
        match step.kind {
            StepKind::App => {}
            StepKind::Backfill => {
                let rest: Vec<String> = steps[i..]
                    .iter()
                    .filter(|s| s.kind != StepKind::App)
                    .map(|s| s.id.clone())
                    .collect();
                continuations(cx, &mut u.units);
                u.units.push(guard::handoff(cx, step, rest));
                return u.units;
            }
            StepKind::Verify => u.units.push(verify(cx, step)),
            StepKind::Migration if step.transactional => transactional(cx, &mut u, step),
            StepKind::Migration => alone(cx, &mut u, step),
        }
        if step.kind == StepKind::Verify {
            u.last = Last::Records;
        }
    }
    let done = crate::execute::phase_done(cx.plan, cx.phase, no_app);
    let unit = u.recording(cx);
    for e in &done {
        unit.statements.extend(cx.record(e, Only::Always));
    }
    continuations(cx, &mut u.units);
    u.units
}

/// Opens every transactional unit after the guard with
/// [`guard::continuation_checks`], after its session settings: run alone
/// (a runner told to skip the guard's failed version, a person with psql),
/// a unit refuses as the guard would when the deploy before is not marked
/// or this deploy is migrated already. A non-transactional unit holds one
/// statement alone; the transactional units around it carry the checks.
fn continuations(cx: &Cx<'_>, units: &mut [Unit]) {
    let checks = refuse_if(cx.dialect, &guard::continuation_checks(cx));
    for unit in units.iter_mut().skip(1).filter(|u| u.transactional) {
        let at = unit.statements.iter().take_while(|s| is_setting(s)).count();
        unit.statements.splice(at..at, checks.iter().cloned());
    }
}

/// A session or transaction setting the prelude or postlude writes
/// (`SET …`, `RESET …`), which the checks follow.
fn is_setting(statement: &str) -> bool {
    let s = statement.trim_start().to_ascii_uppercase();
    (s.starts_with("SET ") || s.starts_with("RESET "))
        && !s.starts_with("SET SESSION SQL_MODE = (SELECT CASE")
}

fn comments(cx: &Cx<'_>, step: &Step) -> Vec<String> {
    let mut c = vec![format!(
        "{}: {} (phase {} of {}, {})",
        step.id, step.description, cx.phase, cx.of, cx.plan
    )];
    if let Some(lock) = &step.lock {
        c.push(format!("lock: {} on {}", lock.mode, lock.tables.join(", ")));
    }
    c
}

/// A transactional migration step: joins the unit of the step before, or
/// starts one with the transaction's timeouts.
fn transactional(cx: &Cx<'_>, u: &mut Units, step: &Step) {
    if u.last != Last::Steps {
        u.units.push(Unit {
            name: slug(&step.id),
            transactional: true,
            comments: Vec::new(),
            statements: cx.prelude(true),
            steps: Vec::new(),
        });
        u.last = Last::Steps;
    }
    let i = u.units.len() - 1;
    let unit = &mut u.units[i];
    unit.comments.extend(comments(cx, step));
    let sql = step.sql.as_deref().unwrap_or_default();
    unit.statements
        .extend(split(cx.dialect, sql).iter().map(|s| terminated(s)));
    unit.statements
        .extend(cx.record(&cx.step(step, EventKind::StepApplied), Only::Always));
    unit.steps.push(step.id.clone());
}

/// A step that cannot run in a transaction: its start recorded in the
/// transactional unit before, then each of its statements alone with the
/// session's timeouts, then its recording in a `record` unit.
fn alone(cx: &Cx<'_>, u: &mut Units, step: &Step) {
    let started = cx.step(step, EventKind::StepStarted);
    let record = cx.record_started(&started);
    u.recording(cx).statements.extend(record);
    let sql = step.sql.as_deref().unwrap_or_default();
    let statements = split(cx.dialect, sql);
    let many = statements.len() > 1;
    for (i, s) in statements.iter().enumerate() {
        let mut unit_statements = cx.prelude(false);
        unit_statements.push(terminated(s));
        let mut c = comments(cx, step);
        c.push("runs outside a transaction, alone".into());
        u.units.push(Unit {
            name: if many {
                format!("{}_{}", slug(&step.id), i + 1)
            } else {
                slug(&step.id)
            },
            transactional: false,
            comments: c,
            statements: unit_statements,
            steps: vec![step.id.clone()],
        });
        u.last = Last::Alone;
    }
    let mut applied = Vec::new();
    if cx.dialect == Dialect::Postgres {
        // A concurrent build that failed earlier leaves an INVALID index
        // that `IF NOT EXISTS` keeps: never record such a build applied.
        for index in statements
            .iter()
            .filter_map(|s| crate::execute::concurrent_index(s))
        {
            applied.extend(refuse_if(cx.dialect, &[invalid_index(cx, step, &index)]));
        }
    }
    applied.extend(cx.record(&cx.step(step, EventKind::StepApplied), Only::Always));
    u.recording(cx).statements.extend(applied);
}

/// Refuses to record a concurrent index build whose index is missing or
/// INVALID (Postgres `pg_index.indisvalid`).
fn invalid_index(cx: &Cx<'_>, step: &Step, index: &str) -> Check {
    let lit = cx.dialect.quote_literal(index);
    Check {
        refused: format!(
            "NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass({lit}) AND indisvalid)"
        ),
        message: format!(
            "phasegate: index {index} of step {} is missing or INVALID (a concurrent build failed or was cancelled)",
            step.id
        ),
        hint: format!(
            "drop it with `DROP INDEX CONCURRENTLY IF EXISTS {index};` then run the build (the migration before this one) and this one again"
        ),
    }
}

/// A verification: fails unless its query returns the expected value, and records it.
fn verify(cx: &Cx<'_>, step: &Step) -> Unit {
    let query = step
        .sql
        .as_deref()
        .unwrap_or("SELECT 0")
        .trim()
        .trim_end_matches(';')
        .trim();
    let expect = step.expect.unwrap_or(0);
    let refused = match cx.dialect {
        Dialect::Mysql => format!("NOT (({query}) <=> {expect})"),
        _ => format!("({query}) IS DISTINCT FROM {expect}"),
    };
    let check = Check {
        refused,
        message: format!(
            "phasegate: verification {} of {} failed: its query does not return {expect}",
            step.id, cx.plan
        ),
        hint: format!(
            "see why with `phasegate verify --env {} {} --phase {}`; fix the data then run this migration again",
            cx.env.name, cx.label, cx.phase
        ),
    };
    let mut statements = cx.prelude(true);
    statements.extend(refuse_if(cx.dialect, &[check]));
    statements.extend(cx.record(&cx.step(step, EventKind::StepApplied), Only::Always));
    Unit {
        name: format!("verify_{}", slug(&step.id)),
        transactional: true,
        comments: comments(cx, step),
        statements,
        steps: vec![step.id.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::config::Config;
    use crate::dialect::templates::Templates;
    use crate::execute::{LivePlan, LoadedPlan};
    use crate::plan::Planner;

    /// The deploys of `plan` planned offline for one environment of `dialect`.
    fn offline(dialect: Dialect, plan: &str, phase: Option<usize>) -> Built {
        offline_result(dialect, plan, phase).expect("built")
    }

    fn offline_result(
        dialect: Dialect,
        plan: &str,
        phase: Option<usize>,
    ) -> Result<Built, RunError> {
        let url = match dialect {
            Dialect::Postgres => "postgres://u@h/db",
            Dialect::Mysql => "mysql://u@h/db",
            Dialect::Sqlite => "sqlite:///tmp/x.db",
        };
        let text = format!("environments:\n  - name: dev\n    database_url: '{url}'\n");
        let root = std::path::Path::new(".");
        let config =
            Config::parse(&text, &root.join("phasegate.yaml"), root, &|_| None).expect("config");
        let env = config.environment("dev").expect("dev").clone();
        let file = crate::intent::parse_plan(plan, "p.yaml", "p").expect("plan");
        let catalog = Catalog::default();
        let templates = Templates::builtin(dialect);
        let planned = Planner::new(&templates, &catalog)
            .plan(&file)
            .expect("plans");
        let made = ForExport {
            env: &env,
            loaded: LoadedPlan {
                file,
                text: plan.into(),
                label: "p".into(),
            },
            plan: LivePlan {
                plan: planned,
                catalog,
                order: vec!["dev".into()],
            },
            state: crate::tracker::derive(&[], 0),
            verdict: None,
        };
        build_from(&made, Runner::Flyway, phase)
    }

    fn shape(d: &Deploy) -> Vec<String> {
        d.units
            .iter()
            .map(|u| format!("{}{}", u.name, if u.transactional { "" } else { "!" }))
            .collect()
    }

    const RENAME: &str =
        "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n";
    const INDEX: &str = "changes:\n  - add_index: { table: users, columns: [name] }\n  - add_column: { table: users, column: age, type: integer }\n";

    #[test]
    fn the_irreversible_deploy_is_written_only_when_asked_for() {
        let b = offline(Dialect::Postgres, RENAME, None);
        assert_eq!((b.phases, b.withheld, b.deploys.len()), (3, Some(3), 2));
        assert_eq!(
            shape(&b.deploys[0]),
            ["guard", "add_column", "backfill_handoff"]
        );
        assert!(b.deploys[0].down.is_some());
        let b = offline(Dialect::Postgres, RENAME, Some(3));
        assert_eq!((b.withheld, b.deploys.len()), (None, 1));
        assert_eq!(shape(&b.deploys[0]), ["guard", "contract"]);
        assert!(b.deploys[0].down.is_none() && !b.deploys[0].reversible);
        // The contract refuses on its own too, after its timeouts.
        let contract = &b.deploys[0].units[1].statements;
        assert!(contract[0].starts_with("SET LOCAL"), "{contract:?}");
        let checks = contract.iter().position(|s| s.starts_with("DO ")).unwrap();
        assert!(contract[checks].contains("needs deploy 2 marked deployed"));
        assert!(contract[checks].contains("deploy 3 of p is migrated already"));
        assert!(!contract[checks].contains("partly applied"));
        assert!(
            contract[checks + 1..]
                .iter()
                .any(|s| s.contains("DROP COLUMN"))
        );
        let e = offline_result(Dialect::Postgres, RENAME, Some(4)).unwrap_err();
        assert!(e.to_string().contains("no deploy 4"), "{e}");
    }

    #[test]
    fn a_step_outside_a_transaction_runs_alone_and_is_recorded_after() {
        let b = offline(Dialect::Postgres, INDEX, Some(1));
        let d = &b.deploys[0];
        assert_eq!(shape(d), ["guard", "create_index!", "record", "add_column"]);
        let alone = &d.units[1];
        // Its timeouts, then exactly one statement; no recording.
        assert_eq!(alone.statements.len(), 2, "{:?}", alone.statements);
        assert!(alone.statements[0].starts_with("SET lock_timeout"));
        assert!(alone.statements[1].contains("CONCURRENTLY"));
        // Its start is recorded before it (with the session), its end after.
        assert!(
            d.units[0]
                .sql()
                .contains("'step_started', 1, '1.create_index'")
        );
        assert!(d.units[0].sql().contains("pg_backend_pid()"));
        let record = d.units[2].sql();
        assert!(record.contains("RESET lock_timeout"), "{record}");
        assert!(record.contains("indisvalid"), "{record}");
        assert!(
            record.contains("'step_applied', 1, '1.create_index'"),
            "{record}"
        );
        // Transactional units: SET LOCAL, never BEGIN/COMMIT; the phase recorded last.
        let last = d.units[3].sql();
        assert!(last.contains("SET LOCAL lock_timeout"), "{last}");
        assert!(
            last.rfind("'phase_migrated'") > last.find("ADD COLUMN"),
            "{last}"
        );
        assert!(
            d.units
                .iter()
                .all(|u| u.statements.iter().all(|s| !is_begin(s)))
        );
        assert!(
            d.units
                .iter()
                .all(|u| u.statements.iter().all(|s| s.ends_with(';')))
        );
    }

    #[test]
    fn mysql_ddl_runs_alone_and_sqlite_refuses() {
        let b = offline(Dialect::Mysql, INDEX, Some(1));
        assert_eq!(
            shape(&b.deploys[0]),
            ["guard", "create_index!", "record", "add_column!", "record"]
        );
        assert!(
            b.deploys[0].units[0]
                .sql()
                .contains("SET SESSION sql_mode = (SELECT CASE WHEN")
        );
        let b = offline(Dialect::Sqlite, INDEX, Some(1));
        assert_eq!(shape(&b.deploys[0]), ["guard"]);
        assert!(
            b.deploys[0].units[0]
                .sql()
                .contains("phasegate apply --env dev p")
        );
    }

    #[test]
    fn unit_names_are_slugs_of_step_ids() {
        assert_eq!(slug("1.add_column"), "add_column");
        assert_eq!(slug("12.Index-X"), "index_x");
        assert!(is_begin("BEGIN;") && is_begin("START TRANSACTION;"));
        assert!(!is_begin("SET LOCAL lock_timeout = '2s';"));
    }
}
