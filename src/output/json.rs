//! `--format json`: the plan contract in DESIGN.md, for pipelines and tools.

use serde::Serialize;

use crate::name::Ident;
use crate::plan::{LockNote, Note, Plan, RollbackFill, Step, StepKind};

#[derive(Serialize)]
struct JsonPlan<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    dialect: &'a str,
    changes: Vec<String>,
    phases: Vec<JsonPhase<'a>>,
    notes: &'a [Note],
}

#[derive(Serialize)]
struct JsonPhase<'a> {
    number: usize,
    reversible: bool,
    /// What the application code of this deploy must do (empty: no change).
    app: Vec<&'a str>,
    steps: Vec<JsonStep<'a>>,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    id: &'a str,
    kind: StepKind,
    description: &'a str,
    sql: Option<&'a str>,
    rollback_sql: Option<&'a str>,
    /// Rows the rollback fills (from `down`) or stops over, before `rollback_sql`.
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_fill: Option<&'a RollbackFill>,
    transactional: bool,
    reversible: bool,
    depends_on: Vec<&'a str>,
    change: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock: Option<&'a LockNote>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect: Option<i64>,
    /// A backfill's key, as the plan chose it from the live schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    backfill_key: Option<&'a [Ident]>,
}

pub fn json(plan: &Plan) -> String {
    let step = |i: usize| -> JsonStep<'_> {
        let s: &Step = &plan.steps[i];
        JsonStep {
            id: &s.id,
            kind: s.kind,
            description: &s.description,
            sql: s.sql.as_deref(),
            rollback_sql: s.rollback_sql.as_deref(),
            rollback_fill: s.rollback_fill.as_ref(),
            transactional: s.transactional,
            reversible: s.reversible,
            depends_on: plan.depends_on(i),
            change: s.change,
            lock: s.lock.as_ref(),
            expect: s.expect,
            backfill_key: s.backfill.as_ref().and_then(|b| b.key.as_deref()),
        }
    };
    let doc = JsonPlan {
        name: &plan.name,
        description: plan.description.as_deref(),
        dialect: plan.dialect.name(),
        changes: plan.changes.iter().map(ToString::to_string).collect(),
        phases: plan
            .phases
            .iter()
            .map(|ph| JsonPhase {
                number: ph.number,
                reversible: ph.reversible,
                app: plan
                    .phase_steps(ph)
                    .filter(|s| s.kind == StepKind::App)
                    .map(|s| s.description.as_str())
                    .collect(),
                steps: ph.steps.iter().map(|&i| step(i)).collect(),
            })
            .collect(),
        notes: &plan.notes,
    };
    // Plain data with string keys: serialisation cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
