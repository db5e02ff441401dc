//! `sql`: the escape hatch. Each entry is one deploy: its `up` runs before
//! the deploy's code ships (`app`, if given). An entry without `down` is
//! irreversible. phasegate cannot know what hand-written SQL locks; the plan
//! says so.

use crate::dialect::Dialect;
use crate::dialect::statements::mysql_commits_implicitly;
use crate::intent::SqlPhases;
use crate::plan::{Blocks, LockDuration, LockNote, PlanningError, Recipe};

pub(super) fn expand(r: &mut Recipe<'_>, i: &SqlPhases) -> Result<(), PlanningError> {
    for (n, phase) in i.phases.iter().enumerate() {
        if n > 0 {
            r.next_deploy();
        }
        let lock = LockNote {
            mode: "unknown (hand-written SQL)".into(),
            tables: Vec::new(),
            blocks: Blocks::ReadsAndWrites,
            duration: LockDuration::Scan,
        };
        let step = r.migration(
            &format!("sql_{}", n + 1),
            format!("Hand-written SQL, part {}", n + 1),
            phase.up.trim().to_string(),
            phase
                .down
                .as_ref()
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty()),
            lock,
        );
        // MySQL commits DDL by itself: such a step is recorded as started
        // and finished around it instead of sharing a transaction.
        let commits = r.dialect == Dialect::Mysql && mysql_commits_implicitly(&phase.up);
        let s = r.step(step);
        s.transactional = phase.transactional && !commits;
        s.reversible = s.rollback_sql.is_some();
        if let Some(app) = &phase.app {
            r.app(&format!("app_{}", n + 1), app.trim());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::dialect::Dialect;
    use crate::plan::recipes::testing::{plan, reversible, shape};

    #[test]
    fn one_deploy_per_entry() {
        let p = plan(
            Dialect::Sqlite,
            "  - sql:\n      phases:\n        - { up: 'CREATE TABLE a (x int)', down: 'DROP TABLE a', app: 'use a' }\n        - { up: 'DROP TABLE b' }\n",
        );
        assert_eq!(
            shape(&p),
            vec![
                vec!["migration:sql_1", "app:app_1"],
                vec!["migration:sql_2"]
            ]
        );
        assert_eq!(reversible(&p), vec![true, false]);
    }
}
