//! Planning: intents in, a phased expand–contract plan out.
//!
//! Each intent is expanded by its recipe (one file per intent kind under
//! [`recipes`]) into steps wired by "must be done before" edges. The steps of
//! all intents form one petgraph DAG, from which the phases (deploys) are
//! derived ([`graph`]). Intents that contradict each other (dropping a column
//! another intent renames) are refused before any SQL is produced.

mod cross;
pub mod estimate;
pub mod graph;
mod key;
mod live;
mod recipes;
pub mod step;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use crate::catalog::{Catalog, ServerVersion};
use crate::dialect::Dialect;
use crate::dialect::templates::{TemplateError, Templates};
use crate::intent::{Intent, PlanFile};
use crate::name::{Ident, TableName};

pub(crate) use cross::Effects;

pub use graph::{Edge, Phase};
pub use live::{tables_touched, validate_against};
pub use step::{Backfill, Blocks, LockDuration, LockNote, RollbackFill, Step, StepKind};

/// A plan, expanded and phased for one dialect.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    pub dialect: Dialect,
    pub changes: Vec<Intent>,
    pub steps: Vec<Step>,
    pub graph: DiGraph<usize, Edge>,
    pub phases: Vec<Phase>,
    /// Things the reader must know that the SQL does not say.
    pub notes: Vec<Note>,
}

/// A remark about one change (an assumption, a limit of the dialect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub change: usize,
    pub text: String,
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanningError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(
        "changes[{first}] ({first_desc}) and changes[{second}] ({second_desc}) contradict each other: {why}"
    )]
    Contradiction {
        first: usize,
        first_desc: String,
        second: usize,
        second_desc: String,
        why: String,
    },
    #[error(
        "the changes depend on each other in a cycle (through step {step}); split them into separate plans"
    )]
    Cycle { step: String },
    #[error("changes[{change}] ({desc}): {message}")]
    Unsupported {
        change: usize,
        desc: String,
        message: String,
    },
    /// The change does not fit the live schema (see [`validate_against`]).
    #[error("changes[{change}] ({desc}) does not match the live schema: {message}")]
    LiveSchema {
        change: usize,
        desc: String,
        message: String,
    },
}

impl Plan {
    /// The ids of the steps `step` depends on.
    pub fn depends_on(&self, step: usize) -> Vec<&str> {
        let mut deps: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(step), Direction::Incoming)
            .map(|n| n.index())
            .collect();
        deps.sort_unstable();
        deps.into_iter()
            .map(|d| self.steps[d].id.as_str())
            .collect()
    }

    /// The phase (1-based) a step runs in.
    pub fn phase_of(&self, step: usize) -> usize {
        self.phases
            .iter()
            .find(|p| p.steps.contains(&step))
            .map_or(0, |p| p.number)
    }

    /// The steps of a phase, in execution order.
    pub fn phase_steps(&self, phase: &Phase) -> impl Iterator<Item = &Step> {
        phase.steps.iter().map(|&i| &self.steps[i])
    }

    /// Notes about one change.
    pub fn notes_for(&self, change: usize) -> impl Iterator<Item = &Note> {
        self.notes.iter().filter(move |n| n.change == change)
    }
}

/// Expands plan files into phased plans for one dialect.
pub struct Planner<'a> {
    templates: &'a Templates,
    catalog: &'a Catalog,
    started: bool,
}

impl<'a> Planner<'a> {
    /// `catalog` holds what is known of the live schema; an empty catalog
    /// plans offline, with SQL that reads what it needs at apply time where
    /// the dialect allows and the safe multi-phase path everywhere else.
    pub fn new(templates: &'a Templates, catalog: &'a Catalog) -> Self {
        Planner {
            templates,
            catalog,
            started: false,
        }
    }

    /// Plans a plan that has already started in an environment, against
    /// the schema it started with. A backfill of a table without a usable
    /// key, which refuses a new plan, is only noted: refusing would leave
    /// no way to roll the started plan back or see its status. (The
    /// executor refuses such a backfill when it would run.)
    pub fn started(mut self) -> Self {
        self.started = true;
        self
    }

    pub fn dialect(&self) -> Dialect {
        self.templates.dialect()
    }

    pub fn plan(&self, file: &PlanFile) -> Result<Plan, PlanningError> {
        let mut steps: Vec<Step> = Vec::new();
        let mut edges: Vec<(usize, usize, Edge)> = Vec::new();
        let mut notes = Vec::new();
        let mut effects: Vec<(usize, Effects)> = Vec::new();
        // (first step, last step) of each change, as global indices.
        let mut spans: Vec<Option<(usize, usize)>> = Vec::new();

        for (change, intent) in file.changes.iter().enumerate() {
            let mut r = Recipe::new(self.dialect(), self.templates, self.catalog, change, intent);
            r.keyless_refused = !self.started;
            recipes::expand(&mut r, intent)?;
            if let Some(refusal) = r.refusal.take() {
                return Err(refusal);
            }
            let offset = steps.len();
            spans.push((!r.steps.is_empty()).then(|| (offset, offset + r.steps.len() - 1)));
            edges.extend(r.edges.iter().map(|&(a, b, k)| (a + offset, b + offset, k)));
            notes.extend(r.notes.drain(..).map(|text| Note { change, text }));
            let mut fx = std::mem::take(&mut r.effects);
            fx.offset(offset);
            effects.push((change, fx));
            steps.extend(r.steps);
        }

        cross::cross_change_edges(file, self.dialect(), &effects, &spans, &mut edges)?;

        let graph = graph::build(&steps, &edges);
        let phases = graph::phases(&steps, &graph).map_err(|c| PlanningError::Cycle {
            step: steps[c.step].id.clone(),
        })?;
        Ok(Plan {
            name: file.name.clone(),
            description: file.description.clone(),
            dialect: self.dialect(),
            changes: file.changes.clone(),
            steps,
            graph,
            phases,
            notes,
        })
    }
}

/// What a recipe builds: its steps (local indices), their edges, effects and notes.
pub(crate) struct Recipe<'a> {
    pub dialect: Dialect,
    pub catalog: &'a Catalog,
    templates: &'a Templates,
    pub change: usize,
    desc: String,
    pub steps: Vec<Step>,
    pub edges: Vec<(usize, usize, Edge)>,
    pub effects: Effects,
    pub notes: Vec<String>,
    last: Option<usize>,
    boundary: bool,
    /// A refusal found while building a step (a backfill of a table without
    /// a usable key), returned by the planner once the recipe is done.
    refusal: Option<PlanningError>,
    /// Whether a backfill of a table without a usable key refuses the plan
    /// (false for a plan that has started: it is noted instead).
    keyless_refused: bool,
}

impl<'a> Recipe<'a> {
    fn new(
        dialect: Dialect,
        templates: &'a Templates,
        catalog: &'a Catalog,
        change: usize,
        intent: &Intent,
    ) -> Self {
        Recipe {
            dialect,
            catalog,
            templates,
            change,
            desc: intent.to_string(),
            steps: Vec::new(),
            edges: Vec::new(),
            effects: Effects::default(),
            notes: Vec::new(),
            last: None,
            boundary: false,
            refusal: None,
            keyless_refused: true,
        }
    }

    /// Renders blocks of this dialect's template for an intent kind.
    pub fn render(
        &self,
        kind: &str,
        ctx: &minijinja::Value,
        blocks: &[&'static str],
    ) -> Result<crate::dialect::templates::Blocks, PlanningError> {
        Ok(self.templates.render(kind, ctx, blocks)?)
    }

    /// The server's version, when the catalog was read from a server of
    /// this dialect. Unknown (offline), recipes assume a server recent
    /// enough for every path they know.
    pub fn server(&self) -> Option<&ServerVersion> {
        self.catalog.server().filter(|s| s.dialect == self.dialect)
    }

    /// The server's version when it is known to be older than `major.minor`.
    pub fn server_below(&self, major: u32, minor: u32) -> Option<&ServerVersion> {
        self.server().filter(|s| !s.at_least(major, minor))
    }

    /// Refuses the change when the server is known to lack a feature it
    /// needs (`what`, which came in `major.minor`).
    pub fn require(&self, major: u32, minor: u32, what: &str) -> Result<(), PlanningError> {
        match self.server_below(major, minor) {
            Some(v) => Err(self.unsupported(format!(
                "needs {what}, which {} has from {major}.{minor} on; this database runs {v}",
                match self.dialect {
                    Dialect::Postgres => "Postgres",
                    Dialect::Sqlite => "SQLite",
                    Dialect::Mysql => "MySQL/MariaDB",
                }
            ))),
            None => Ok(()),
        }
    }

    /// An error about this change.
    pub fn unsupported(&self, message: impl Into<String>) -> PlanningError {
        PlanningError::Unsupported {
            change: self.change,
            desc: self.desc.clone(),
            message: message.into(),
        }
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The next step goes into a later deploy than the previous one.
    pub fn next_deploy(&mut self) {
        self.boundary = true;
    }

    /// Adds a step after the previous one and returns its local index.
    pub fn push(&mut self, kind: StepKind, slug: &str, description: impl Into<String>) -> usize {
        let index = self.steps.len();
        self.steps.push(Step {
            id: format!("{}.{}", self.change + 1, slug),
            kind,
            description: description.into(),
            sql: None,
            rollback_sql: None,
            // MySQL DDL commits as it runs: nothing there is one transaction.
            transactional: self.dialect != Dialect::Mysql,
            reversible: true,
            change: self.change,
            table: None,
            lock: None,
            expect: None,
            backfill: None,
            rollback_fill: None,
        });
        if let Some(prev) = self.last {
            let edge = if self.boundary {
                Edge::NextDeploy
            } else {
                Edge::Then
            };
            self.edges.push((prev, index, edge));
        }
        self.boundary = false;
        self.last = Some(index);
        index
    }

    pub fn step(&mut self, index: usize) -> &mut Step {
        &mut self.steps[index]
    }

    /// A migration step with its SQL, rollback and lock.
    pub fn migration(
        &mut self,
        slug: &str,
        description: impl Into<String>,
        sql: String,
        rollback: Option<String>,
        lock: LockNote,
    ) -> usize {
        let i = self.push(StepKind::Migration, slug, description);
        let s = self.step(i);
        s.sql = Some(sql);
        s.rollback_sql = rollback.filter(|r| !r.is_empty());
        s.lock = Some(lock);
        i
    }

    /// `VALIDATE CONSTRAINT` in a step of its own: Postgres scans the table
    /// under SHARE UPDATE EXCLUSIVE, which blocks neither reads nor writes.
    pub fn validate(
        &mut self,
        slug: &str,
        description: impl Into<String>,
        sql: String,
        table: &TableName,
    ) -> usize {
        let lock = self.lock(
            "SHARE UPDATE EXCLUSIVE",
            &[table],
            Blocks::Nothing,
            LockDuration::Scan,
        );
        self.migration(slug, description, sql, None, lock)
    }

    /// MySQL/MariaDB: `set` with every `ON UPDATE CURRENT_TIMESTAMP` column of
    /// `table` (from the census) set to itself, which keeps the server from
    /// moving it: a backfill is not a change of the row the application
    /// made, and must not make every row look modified now (MySQL 8.0
    /// reference, "Automatic Initialization and Updating for TIMESTAMP and
    /// DATETIME": an auto-updated column stays as it is when explicitly set
    /// to its current value).
    fn keep_on_update(&self, table: &TableName, set: String) -> String {
        if self.dialect != Dialect::Mysql {
            return set;
        }
        let Some(facts) = self.catalog.table(table) else {
            return set;
        };
        let mut set = set;
        for c in facts
            .census
            .columns
            .iter()
            .filter(|c| c.on_update.is_some())
        {
            let q = self.dialect.quote_ident(c.name.as_str());
            if !set.contains(&format!("{q} =")) {
                set.push_str(&format!(", {q} = {q}"));
            }
        }
        set
    }

    /// A batched backfill of `table`: `SET <set> WHERE <pending>`.
    ///
    /// The key its batches walk is decided here, for every recipe, from the
    /// live schema ([`key::walk_key`]): a table without a usable key refuses
    /// the whole plan (before any of its DDL can run); a table the catalog
    /// does not know (offline) gets a note that it needs one.
    pub fn backfill(
        &mut self,
        slug: &str,
        description: impl Into<String>,
        table: &TableName,
        set: String,
        pending: String,
    ) -> usize {
        let key = match key::walk_key(self.dialect, self.catalog, table) {
            key::WalkKey::Known(cols) => Some(cols),
            key::WalkKey::Unknown => {
                self.note(format!(
                    "the backfill of {table} walks its primary key{}: planned without {table}'s schema, so whether it has one is not checked; without one the backfill stops before its first batch, after the steps before it have run (plan against the database to check now)",
                    match self.dialect {
                        Dialect::Postgres => "",
                        Dialect::Mysql => " (or else a unique key whose columns are all NOT NULL)",
                        Dialect::Sqlite => " (or else its rowid)",
                    }
                ));
                None
            }
            key::WalkKey::Missing(why) if self.keyless_refused => {
                if self.refusal.is_none() {
                    self.refusal = Some(self.unsupported(why));
                }
                None
            }
            key::WalkKey::Missing(why) => {
                self.note(format!(
                    "started before this was checked: {why}; the backfill will stop before its first batch"
                ));
                None
            }
        };
        let set = self.keep_on_update(table, set);
        let b = Backfill {
            table: table.clone(),
            set,
            pending,
            key,
            synced: false,
            sync_triggers: Vec::new(),
        };
        let i = self.push(StepKind::Backfill, slug, description);
        let dialect = self.dialect;
        let s = self.step(i);
        s.sql = Some(dialect.backfill_sql(&b.table, &b.set, &b.pending));
        s.table = Some(table.clone());
        s.lock = Some(LockNote {
            mode: match dialect {
                Dialect::Postgres => "ROW EXCLUSIVE (row locks per batch)".into(),
                Dialect::Sqlite => "database write lock per batch".into(),
                Dialect::Mysql => "InnoDB row locks per batch".into(),
            },
            tables: vec![table.to_string()],
            // Postgres locks only the rows of a batch; SQLite's single writer
            // holds writes back for each batch.
            blocks: match dialect {
                Dialect::Postgres => Blocks::Nothing,
                Dialect::Sqlite => Blocks::Writes,
                Dialect::Mysql => Blocks::Nothing,
            },
            duration: LockDuration::PerBatch,
        });
        s.backfill = Some(b);
        i
    }

    /// A verification query that must return `expect`.
    pub fn verify(
        &mut self,
        slug: &str,
        description: impl Into<String>,
        sql: String,
        expect: i64,
    ) -> usize {
        let i = self.push(StepKind::Verify, slug, description);
        let s = self.step(i);
        s.sql = Some(sql);
        s.expect = Some(expect);
        i
    }

    /// What the application code of this deploy must do.
    pub fn app(&mut self, slug: &str, description: impl Into<String>) -> usize {
        self.push(StepKind::App, slug, description)
    }

    /// Lock facts for the usual cases.
    pub fn lock(
        &self,
        mode: &str,
        tables: &[&TableName],
        blocks: Blocks,
        duration: LockDuration,
    ) -> LockNote {
        let mode = match self.dialect {
            Dialect::Sqlite => "database write lock".to_string(),
            Dialect::Postgres => mode.to_string(),
            // Recipes name Postgres lock levels; MySQL takes metadata locks.
            Dialect::Mysql => match mode {
                "ACCESS EXCLUSIVE" | "SHARE ROW EXCLUSIVE" | "SHARE" => {
                    "exclusive metadata lock (brief)".to_string()
                }
                "SHARE UPDATE EXCLUSIVE" | "ACCESS SHARE" | "ROW EXCLUSIVE" => {
                    "shared metadata lock".to_string()
                }
                other => other.to_string(),
            },
        };
        LockNote {
            mode,
            tables: tables.iter().map(|t| t.to_string()).collect(),
            blocks,
            duration,
        }
    }
}

/// A generated object name (trigger, function, index, constraint): the parts
/// joined by `_`, cut to fit 63 bytes with a stable hash suffix when longer,
/// so two long names never collide after truncation.
pub fn derived_name(parts: &[&str]) -> Ident {
    let full = parts.join("_");
    let name = if full.len() <= crate::name::MAX_IDENT_BYTES {
        full
    } else {
        let hash = fnv1a(full.as_bytes());
        let keep = crate::name::MAX_IDENT_BYTES - 9;
        let mut cut = keep;
        while !full.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}_{:08x}", &full[..cut], hash as u32)
    };
    // The parts are identifiers, so the result is non-empty, fits, and has no control characters.
    Ident::trusted(name)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyless_backfill_refuses_a_new_plan_and_is_noted_in_a_started_one() {
        let t = TableName::parse("ledger").unwrap_or_else(|e| panic!("{e}"));
        let mut catalog = Catalog::offline();
        catalog.insert(t, crate::catalog::TableFacts::default());
        let text = "name: t\nchanges:\n  - set_not_null: { table: ledger, column: b, backfill: \"0\" }\n  - add_column: { table: ledger, column: c, type: int, nullable: false, backfill: \"0\" }\n";
        let file = crate::intent::parse_plan(text, "t.yaml", "t").unwrap_or_else(|e| panic!("{e}"));
        let templates = Templates::builtin(Dialect::Postgres);
        match Planner::new(&templates, &catalog).plan(&file) {
            Err(e) => assert_eq!(
                e.to_string().split(':').next(),
                Some("changes[0] (set_not_null ledger.b)"),
                "the first change's backfill is refused"
            ),
            Ok(_) => panic!("a backfill of a table without a primary key was planned"),
        }
        let plan = Planner::new(&templates, &catalog)
            .started()
            .plan(&file)
            .unwrap_or_else(|e| panic!("{e}"));
        let noted = plan
            .notes
            .iter()
            .filter(|n| n.text.contains("table ledger has no primary key"))
            .count();
        assert_eq!(noted, 2, "{:?}", plan.notes);
    }

    #[test]
    fn derived_names_fit_and_stay_distinct() {
        let long = "a".repeat(60);
        let a = derived_name(&[&long, "x_sync"]);
        let b = derived_name(&[&long, "y_sync"]);
        assert!(a.as_str().len() <= 63 && b.as_str().len() <= 63);
        assert_ne!(a, b);
        assert_eq!(
            derived_name(&["users", "name", "idx"]).as_str(),
            "users_name_idx"
        );
    }
}
