//! Release gates: what must hold before a phase may start in an environment.
//! Each gate is reported held or blocked, with the reason either way, so a
//! person or a pipeline sees exactly what stands in the way.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::order::StartedOrder;
use super::{Next, Outstanding, PhaseStatus, PlanState};
use crate::config::Environment;
use crate::plan::{Plan, StepKind};

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Gate {
    pub name: &'static str,
    pub held: bool,
    pub reason: String,
}

/// The gates for a plan's next step in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Verdict {
    pub plan: String,
    pub env: String,
    pub next: Next,
    /// The phase the gates were evaluated for (`None` when the plan is complete).
    pub phase: Option<usize>,
    pub phases: usize,
    pub gates: Vec<Gate>,
}

impl Verdict {
    /// True when every gate holds (a complete plan has nothing to hold back).
    pub fn may_proceed(&self) -> bool {
        self.gates.iter().all(|g| g.held)
    }

    pub fn blocked(&self) -> impl Iterator<Item = &Gate> {
        self.gates.iter().filter(|g| !g.held)
    }
}

/// A verification query's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyOutcome {
    pub step: String,
    pub expect: i64,
    /// The value it returned, or why it could not run.
    pub got: Result<i64, String>,
}

impl VerifyOutcome {
    pub fn passed(&self) -> bool {
        self.got.as_ref().is_ok_and(|v| *v == self.expect)
    }
}

/// Everything the gates look at.
pub struct GateContext<'a> {
    pub plan: &'a Plan,
    pub plan_label: &'a str,
    pub env: &'a Environment,
    pub state: &'a PlanState,
    /// The environment promoted from, and the plan's state there (or why it could not be read).
    pub previous_env: Option<(&'a str, Result<&'a PlanState, String>)>,
    /// Backups recorded in this environment: (when, where).
    pub backups: &'a [(DateTime<Utc>, String)],
    pub now: DateTime<Utc>,
    /// The plan file's text now, for the drift gate.
    pub text_now: &'a str,
    /// The previous phase's verification answers; `None` when not checked.
    pub verify: Option<&'a [VerifyOutcome]>,
    /// Steps of other plans that started in this environment and never
    /// finished, as (plan, step): they hold this plan too.
    pub elsewhere: &'a [(String, Outstanding)],
    /// The environments of `phasegate.yaml` now, in promotion order.
    pub order_now: &'a [String],
    /// The promotion orders recorded where the plan started, in this
    /// environment and each one before it in `phasegate.yaml` that could be
    /// read (see [`super::order::started_order`]): the promotion gate holds
    /// the plan to the one where it started earliest.
    pub started: &'a [StartedOrder],
}

/// The gates for the plan's next step.
pub fn verdict(ctx: &GateContext<'_>) -> Verdict {
    let next = ctx.state.next();
    let phase = match next {
        Next::Apply(n) => Some(n),
        Next::Deploy(n) if n < ctx.plan.phases.len() => Some(n + 1),
        Next::Deploy(n) => Some(n),
        Next::Complete => None,
    };
    let gates = match (next, phase) {
        (Next::Deploy(n), Some(p)) if p == n => vec![Gate {
            name: "order",
            held: false,
            reason: format!(
                "phase {n} is migrated; deploy its app code, then `phasegate mark --env {} {} --phase {n} --app-version VERSION`",
                ctx.env.name, ctx.plan_label
            ),
        }],
        (_, Some(p)) => evaluate(ctx, p, false),
        (_, None) => Vec::new(),
    };
    Verdict {
        plan: ctx.plan.name.clone(),
        env: ctx.env.name.clone(),
        next,
        phase,
        phases: ctx.plan.phases.len(),
        gates,
    }
}

/// The command that records a backup of `env`: with `--location` when
/// there is no `backup_command` to take it (the backup is taken by hand).
fn backup_command(env: &crate::config::Environment) -> String {
    match env.backup_command {
        Some(_) => format!("phasegate backup --env {}", env.name),
        None => format!("phasegate backup --env {} --location WHERE", env.name),
    }
}

/// The gates for starting phase `phase` (1-based). `marking` is true when
/// they are checked again to record the phase's app deploy, after its
/// migrations already ran under the time-bound gates.
pub fn evaluate(ctx: &GateContext<'_>, phase: usize, marking: bool) -> Vec<Gate> {
    let (env, state, label) = (ctx.env, ctx.state, ctx.plan_label);
    let irreversible = ctx
        .plan
        .phases
        .get(phase - 1)
        .is_some_and(|p| !p.reversible);
    let prev = phase
        .checked_sub(1)
        .filter(|&p| p > 0)
        .and_then(|p| state.phase(p).map(|r| (p, r)));
    let mut gates = Vec::with_capacity(8);
    let mut gate = |name, held, reason: String| gates.push(Gate { name, held, reason });

    // order
    match prev {
        None => gate("order", true, "phase 1 needs no earlier phase".into()),
        Some((p, r)) => match r.status {
            PhaseStatus::Deployed => gate(
                "order",
                true,
                format!(
                    "phase {p} is deployed here{}{}",
                    r.deployed_at
                        .map(|t| format!(" ({} ago)", ago(ctx.now, t)))
                        .unwrap_or_default(),
                    r.app_version
                        .as_ref()
                        .map(|v| format!(", app {v}"))
                        .unwrap_or_default()
                ),
            ),
            PhaseStatus::Migrated => gate(
                "order",
                false,
                format!(
                    "phase {p} is migrated but its app code is not marked deployed: deploy it, then `phasegate mark --env {} {label} --phase {p} --app-version VERSION`",
                    env.name
                ),
            ),
            other => gate(
                "order",
                false,
                format!("phase {p} is {other} here; apply it first"),
            ),
        },
    }

    // promotion: first the order the plan started under, then the
    // environment before this one.
    let skipped = super::order::skipped_environments(ctx);
    match (&ctx.previous_env, skipped) {
        (_, Some(reason)) => gate("promotion", false, reason),
        (None, None) => gate(
            "promotion",
            true,
            format!("{} is the first environment", env.name),
        ),
        (Some((name, Ok(st))), None) => match st.phase(phase) {
            Some(r) if r.status == PhaseStatus::Deployed => gate(
                "promotion",
                true,
                format!(
                    "{name} completed phase {phase}{}",
                    r.deployed_at
                        .map(|t| format!(" {} ago", ago(ctx.now, t)))
                        .unwrap_or_default()
                ),
            ),
            Some(r) => gate(
                "promotion",
                false,
                format!(
                    "{name} has not completed phase {phase} (it is {} there); promote in order",
                    r.status
                ),
            ),
            None => gate(
                "promotion",
                false,
                format!("{name} does not know phase {phase}"),
            ),
        },
        (Some((name, Err(e))), None) => {
            gate("promotion", false, format!("cannot read {name}: {e}"))
        }
    }

    // verify
    let prev_verifies = prev.map_or(0, |(p, _)| {
        ctx.plan.phases[p - 1]
            .steps
            .iter()
            .filter(|&&s| ctx.plan.steps[s].kind == StepKind::Verify)
            .count()
    });
    match (prev, ctx.verify) {
        (None, _) => gate("verify", true, "no earlier phase to verify".into()),
        (Some((p, _)), _) if prev_verifies == 0 => gate(
            "verify",
            true,
            format!("phase {p} has no verification queries"),
        ),
        (Some((p, _)), None) => gate(
            "verify",
            true,
            format!(
                "phase {p}'s {prev_verifies} verification queries are checked by `gate` and `apply`"
            ),
        ),
        (Some((p, _)), Some(results)) => {
            let failed: Vec<String> = results
                .iter()
                .filter(|r| !r.passed())
                .map(|r| match &r.got {
                    Ok(v) => format!("{} returned {v}, expected {}", r.step, r.expect),
                    Err(e) => format!("{} could not run: {e}", r.step),
                })
                .collect();
            if failed.is_empty() {
                gate(
                    "verify",
                    true,
                    format!(
                        "phase {p}'s {} verification queries pass now",
                        results.len()
                    ),
                );
            } else {
                gate("verify", false, failed.join("; "));
            }
        }
    }

    // soak, backup, approval: before an irreversible phase only.
    let not_needed = if marking {
        format!("checked when phase {phase}'s migrations ran")
    } else {
        format!("not needed: phase {phase} is reversible")
    };
    if !irreversible || marking {
        for name in ["soak", "backup", "approval"] {
            gate(name, true, not_needed.clone());
        }
    } else {
        match (env.soak, prev) {
            (None, _) => gate(
                "soak",
                true,
                format!("no soak time configured for {}", env.name),
            ),
            (Some(_), None) => gate("soak", true, "no earlier phase to soak".into()),
            (Some(soak), Some((p, r))) => match r.deployed_at {
                Some(t) => {
                    let soaked = ctx
                        .now
                        .signed_duration_since(t)
                        .to_std()
                        .unwrap_or_default();
                    if soaked >= soak {
                        gate(
                            "soak",
                            true,
                            format!(
                                "phase {p} has run for {} (≥ {})",
                                human(soaked),
                                human(soak)
                            ),
                        );
                    } else {
                        // Events are stored to the millisecond and `now` is finer:
                        // round the time left up, never show less than remains.
                        let left = soak - soaked;
                        let left = std::time::Duration::from_secs(
                            left.as_secs() + u64::from(left.subsec_nanos() > 0),
                        );
                        gate(
                            "soak",
                            false,
                            format!(
                                "{} left (phase {p} deployed {} ago; {} requires {})",
                                human(left),
                                human(soaked),
                                env.name,
                                human(soak)
                            ),
                        );
                    }
                }
                None => gate("soak", false, format!("phase {p} is not deployed here yet")),
            },
        }
        match env.require_backup {
            None => gate(
                "backup",
                true,
                format!("{} does not require a backup", env.name),
            ),
            Some(window) => match ctx.backups.iter().max_by_key(|(t, _)| *t) {
                Some((t, loc))
                    if ctx
                        .now
                        .signed_duration_since(*t)
                        .to_std()
                        .unwrap_or_default()
                        <= window =>
                {
                    gate(
                        "backup",
                        true,
                        format!("backup taken {} ago ({loc})", ago(ctx.now, *t)),
                    )
                }
                Some((t, _)) => gate(
                    "backup",
                    false,
                    format!(
                        "the last backup is {} old; {} requires one within {}: `{}`",
                        ago(ctx.now, *t),
                        env.name,
                        human(window),
                        backup_command(env)
                    ),
                ),
                None => gate(
                    "backup",
                    false,
                    format!(
                        "no backup recorded; {} requires one within {}: `{}`",
                        env.name,
                        human(window),
                        backup_command(env)
                    ),
                ),
            },
        }
        match (
            env.require_approval,
            state.phase(phase).and_then(|r| r.approved.as_ref()),
        ) {
            (false, _) => gate(
                "approval",
                true,
                format!("{} does not require approval", env.name),
            ),
            (true, Some((t, by))) => gate(
                "approval",
                true,
                format!("approved by {by} {} ago", ago(ctx.now, *t)),
            ),
            (true, None) => gate(
                "approval",
                false,
                format!(
                    "phase {phase} is irreversible and {} requires approval: `phasegate approve --env {} {label} --phase {phase}`",
                    env.name, env.name
                ),
            ),
        }
    }

    // drift
    match drift(ctx.plan, state, label, &env.name, ctx.text_now) {
        Ok(reason) => gate("drift", true, reason),
        Err(reason) => gate("drift", false, reason),
    }

    // clean
    let resolve = |plan: &str, o: &Outstanding| {
        let whose = if plan == label {
            String::new()
        } else {
            format!(" of {plan}")
        };
        format!(
            "step {step}{whose} started {ago} ago and never finished (the run was killed or lost its connection; {partly}): check the database, then either `phasegate resolve --env {env} {plan} --step {step} --as applied` if its change is there (apply then goes on after it) or `phasegate resolve --env {env} {plan} --step {step} --as not-applied` if it is not (apply then runs it again)",
            step = o.step,
            ago = ago(ctx.now, o.since),
            partly = if env.dialect == crate::dialect::Dialect::Mysql {
                "MySQL commits DDL statement by statement, so part of it may have run"
            } else {
                "it may or may not have taken effect"
            },
            env = env.name,
        )
    };
    let mut blocking: Vec<String> = state
        .outstanding
        .iter()
        .filter(|o| o.error.is_none() || o.phase != phase || o.undo)
        .map(|o| match (&o.error, o.undo) {
            (_, true) => undo_outstanding(label, &env.name, o),
            (None, false) => resolve(label, o),
            (Some(e), false) => format!("step {} of phase {} failed: {e}", o.step, o.phase),
        })
        .collect();
    blocking.extend(ctx.elsewhere.iter().map(|(plan, o)| resolve(plan, o)));
    let retries: Vec<&str> = state
        .outstanding
        .iter()
        .filter(|o| o.error.is_some() && o.phase == phase && !o.undo)
        .map(|o| o.step.as_str())
        .collect();
    if !blocking.is_empty() {
        gate("clean", false, blocking.join("; "));
    } else if !retries.is_empty() {
        gate(
            "clean",
            true,
            format!(
                "{} failed last time and will be retried",
                retries.join(", ")
            ),
        );
    } else {
        gate("clean", true, "no failed or interrupted step".into());
    }
    gates
}

/// How the plan file's text differs from the one recorded when the plan
/// started in `env` (or an edit was last accepted); `None` when it does not
/// (or the plan has not started).
pub fn text_drift(state: &PlanState, label: &str, env: &str, text_now: &str) -> Option<String> {
    let sum = state.checksum.as_ref()?;
    (*sum != super::checksum(text_now)).then(|| {
        format!(
            "{label} changed since it started in {env}:\n{}",
            diff(state.text.as_deref().unwrap_or(""), text_now)
        )
    })
}

/// What holds an environment whose rollback of a step failed or never
/// finished, and the ways out.
pub fn undo_outstanding(label: &str, env: &str, o: &Outstanding) -> String {
    let what = match &o.error {
        Some(e) => format!(
            "rolling back step {} of phase {} failed: {e}",
            o.step, o.phase
        ),
        None => format!(
            "rolling back step {} of phase {} started and never finished (the run was killed or lost its connection)",
            o.step, o.phase
        ),
    };
    let retry = if o.error.is_some() {
        format!(
            "Fix the cause and run `phasegate rollback --env {env} {label}` again (it retries this step), or check the database, then"
        )
    } else {
        "Check the database, then".to_string()
    };
    format!(
        "{what}. {retry} `phasegate resolve --env {env} {label} --step {step} --as rolled-back` if the step's change is gone (the next rollback goes on with the steps before it) or `phasegate resolve --env {env} {label} --step {step} --as not-rolled-back` if it is still there (the next `phasegate rollback --env {env} {label}` undoes it again)",
        step = o.step
    )
}

/// The drift check every environment command makes (`apply`, `mark`,
/// `approve`, `gate`, `status`, `rollback`, `resolve`): `Ok` with why the plan is the one that
/// started here, or `Err` with what changed and the way forward. Drift is an
/// edited plan file (its text against the text recorded at the start or at
/// the last `accept-change`), or any step whose SQL differs from the one
/// pinned then (see [`super::pins`]), whatever changed it.
pub fn drift(
    plan: &Plan,
    state: &PlanState,
    label: &str,
    env: &str,
    text_now: &str,
) -> Result<String, String> {
    if state.checksum.is_none() {
        return Ok("the plan starts here; its checksum and its steps' SQL are recorded with the first step".into());
    }
    let mut what: Vec<String> = text_drift(state, label, env, text_now)
        .into_iter()
        .collect();
    let changed = state
        .pinned
        .as_ref()
        .map(|p| super::pins::changed_steps(p, &super::pins::pins(plan)))
        .unwrap_or_default();
    if !changed.is_empty() {
        what.push(format!(
            "the SQL of {} differs from what was pinned when {label} started in {env} (an edited plan, a template override, or a phasegate upgrade); what runs must be what was reviewed:\n{}",
            if changed.len() == 1 { "a step" } else { "steps" },
            changed
                .iter()
                .map(|c| format!("    {c}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    if what.is_empty() {
        return Ok(match state.pinned {
            Some(_) => {
                "the plan file and its steps' SQL are unchanged since it started here".into()
            }
            None => format!(
                "the plan file is unchanged since it started here (its steps' SQL was not pinned: it started under an older phasegate; `phasegate accept-change --env {env} {label} --reason \"…\"` pins it)"
            ),
        });
    }
    what.push(format!(
        "  review the change; if it is intended, accept it (this pins the steps' SQL as planned now): `phasegate accept-change --env {env} {label} --reason \"…\"`; otherwise restore the plan and templates as they were"
    ));
    Err(what.join("\n"))
}

/// A few lines of unified diff between the recorded plan and the file now.
fn diff(old: &str, new: &str) -> String {
    let d = similar::TextDiff::from_lines(old, new);
    let mut lines: Vec<String> = d
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .map(|c| {
            let sign = if c.tag() == similar::ChangeTag::Delete {
                "-"
            } else {
                "+"
            };
            format!("    {sign} {}", c.value().trim_end())
        })
        .collect();
    if lines.len() > 12 {
        let more = lines.len() - 12;
        lines.truncate(12);
        lines.push(format!("    … {more} more changed lines"));
    }
    lines.join("\n")
}

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    human(now.signed_duration_since(then).to_std().unwrap_or_default())
}

/// `41h`, `2d 3h`, `35m`, `12s`.
pub fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..172_800 => {
            let (h, m) = (s / 3600, s % 3600 / 60);
            if m == 0 || h >= 10 {
                format!("{h}h")
            } else {
                format!("{h}h {m}m")
            }
        }
        _ => {
            let (days, h) = (s / 86_400, s % 86_400 / 3600);
            if h == 0 {
                format!("{days}d")
            } else {
                format!("{days}d {h}h")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human;
    use std::time::Duration;

    #[test]
    fn durations_read_short() {
        assert_eq!(human(Duration::from_secs(41 * 3600)), "41h");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 20 * 60)), "3h 20m");
        assert_eq!(human(Duration::from_secs(51 * 3600)), "2d 3h");
        assert_eq!(human(Duration::from_secs(90)), "1m");
    }
}
