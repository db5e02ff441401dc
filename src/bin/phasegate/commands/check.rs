//! `phasegate check`: exit 0 when ENV's database has reached phase N of a
//! plan, 1 when not (saying where it is and what to run), 2 on error; with
//! `--format json`, one JSON document on stdout whatever happens (the
//! envelope of `envelope.rs`, outcome `done` or `blocked`).

use schemars::JsonSchema;
use serde::Serialize;

use phasegate::execute::{Check, Workspace};
use phasegate::tracker::reach::Reached;
use phasegate::tracker::{Next, PhaseStatus};

use super::envelope::{Outcome, Report};

/// What `check` was asked, from the command line.
struct Ask<'a> {
    env: &'a str,
    plan: &'a str,
    what: Reached,
}

/// `check`'s fields in the JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CheckPayload {
    /// The plan as given on the command line.
    pub plan: String,
    pub env: String,
    /// The phase asked about.
    pub phase: usize,
    /// What was asked of it: `applied` (its migrations) or `deployed` (its app code marked too).
    pub require: Reached,
    /// What the database shows (absent when the check could not be made).
    #[serde(flatten)]
    pub check: Option<Check>,
    /// When not reached: what to run to move the plan on here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

/// `phasegate check`.
pub async fn run(
    ws: &Workspace<'_>,
    env: &str,
    plan: &str,
    phase: usize,
    deployed: bool,
) -> Report<CheckPayload> {
    let ask = Ask {
        env,
        plan,
        what: if deployed {
            Reached::Deployed
        } else {
            Reached::Applied
        },
    };
    let payload = |check: Option<Check>, run: Option<String>| CheckPayload {
        plan: plan.to_string(),
        env: env.to_string(),
        phase,
        require: ask.what,
        check,
        run,
    };
    match ws.check(env, plan, phase, ask.what).await {
        Ok(c) if c.reached => Report::done("check", reached_text(&c), payload(Some(c), None)),
        Ok(c) => {
            let text = not_reached_text(&ask, &c);
            let next = next_command(&ask, &c);
            let message = format!(
                "phase {phase} of {plan} is not reached in {env}: {}",
                needs(ask.what)
            );
            Report::done("check", text, payload(Some(c), Some(next)))
                .with_outcome(Outcome::Blocked, Some(message))
        }
        Err(e) => Report::from_error("check", &e).with_payload(Some(payload(None, None))),
    }
}

/// What was asked of the phase, in words.
fn needs(what: Reached) -> &'static str {
    match what {
        Reached::Applied => "its migrations applied",
        Reached::Deployed => "its migrations applied and its app code marked deployed",
    }
}

fn reached_text(c: &Check) -> String {
    let deployed = if c.phase_deployed >= c.phase {
        "its app code is marked deployed"
    } else {
        "its app code is not marked deployed yet"
    };
    format!(
        "{}: phase {}{} reached in {}: its migrations are applied; {deployed}\n{}",
        c.plan,
        c.phase,
        of_phases(c),
        c.env,
        source_note(c)
    )
}

/// " of N" after the phase asked about; on a drifted plan, whose file and
/// log count phases differently, " (N phases as recorded)" when the phase
/// asked is beyond them.
fn of_phases(c: &Check) -> String {
    if c.drift.is_some() && c.phase > c.phases {
        format!(" ({} as recorded)", phases(c.phases))
    } else {
        format!(" of {}", c.phases)
    }
}

/// "1 phase", "2 phases".
fn phases(n: usize) -> String {
    format!("{n} phase{}", if n == 1 { "" } else { "s" })
}

/// Where the answer came from, when not from the plan file as it is: a
/// line to add to the text (empty otherwise).
fn source_note(c: &Check) -> String {
    if !c.plan_file_found {
        return format!(
            "  plan file not found: answered from {}'s log ({} as recorded when the plan started)\n",
            c.env,
            phases(c.phases)
        );
    }
    match &c.drift {
        Some(why) => format!(
            "  drift: answered from the log ({} as recorded); {}\n",
            phases(c.phases),
            why.replace('\n', "\n  ")
        ),
        None => String::new(),
    }
}

fn not_reached_text(ask: &Ask<'_>, c: &Check) -> String {
    let mut out = format!(
        "{}: phase {}{} not reached in {} (needs {})\n",
        c.plan,
        c.phase,
        of_phases(c),
        c.env,
        needs(c.require)
    );
    let now = if c.started {
        let upto = if c.phase_applied == 0 && c.phase_deployed == 0 {
            String::new()
        } else {
            format!(
                " (migrations applied up to phase {}, app code deployed up to phase {})",
                c.phase_applied, c.phase_deployed
            )
        };
        format!(
            "phase {} of {}: {}{upto}",
            c.current_phase, c.phases, c.state
        )
    } else {
        format!("{} has not started in {}", c.plan, c.env)
    };
    out.push_str(&format!("  now: {now}\n"));
    out.push_str(&source_note(c));
    for o in &c.outstanding {
        let what = match (&o.error, o.undo) {
            (Some(e), false) => format!("failed: {}", super::first_line(e)),
            (Some(e), true) => format!("failed to roll back: {}", super::first_line(e)),
            (None, false) => "started and never finished".to_string(),
            (None, true) => "began rolling back and never finished".to_string(),
        };
        out.push_str(&format!("  step {} of phase {} {what}\n", o.step, o.phase));
    }
    out.push_str(&format!("  next: {}\n", next_command(ask, c)));
    out
}

/// What to run to move the plan on in this environment.
fn next_command(ask: &Ask<'_>, c: &Check) -> String {
    let (env, plan) = (&ask.env, &ask.plan);
    if c.drift.is_some() {
        return format!(
            "review the change; if it is intended, accept it: `phasegate accept-change --env {env} {plan} --reason \"…\"`, then `phasegate gate --env {env} {plan}` says what comes next; otherwise restore the plan file"
        );
    }
    if !c.plan_file_found && !matches!(c.next, Next::Complete) {
        return format!(
            "run `phasegate gate --env {env} {plan}` where the plan file is (plans/{plan}.yaml is not here)"
        );
    }
    if !c.outstanding.is_empty() {
        return format!(
            "`phasegate gate --env {env} {plan}` says what to do about the step that failed or never finished"
        );
    }
    match c.next {
        Next::Deploy(n) => format!(
            "deploy phase {n}'s app code, then `phasegate mark --env {env} {plan} --phase {n} --app-version VERSION`"
        ),
        Next::Apply(n) if c.state == PhaseStatus::RollingBack => format!(
            "phase {n} is partly rolled back: `phasegate rollback --env {env} {plan}` finishes the rollback, `phasegate apply --env {env} {plan}` applies it again"
        ),
        Next::Apply(n) => format!("`phasegate apply --env {env} {plan}` (phase {n})"),
        Next::Complete => format!("nothing: {plan} is complete in {env}"),
    }
}
