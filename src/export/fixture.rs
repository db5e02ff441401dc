//! (tests) Deploys the runner writers are tested with: a rename of
//! `users.name` to `full_name` on each dialect, shaped as `build` shapes
//! them (a guard, a transactional unit, a concurrent index alone, its
//! record, a hand-off to phasegate for the backfill), and an irreversible
//! contract. The SQL is representative, not what `build` emits word for
//! word; the end-to-end tests run the real thing.

use super::{Deploy, Unit};
use crate::dialect::Dialect;

fn unit(name: &str, transactional: bool, statements: &[&str], steps: &[&str]) -> Unit {
    Unit {
        name: name.into(),
        transactional,
        comments: vec![format!("{name} (fixture)")],
        statements: statements.iter().map(|s| s.to_string()).collect(),
        steps: steps.iter().map(|s| s.to_string()).collect(),
    }
}

/// Two deploys of `rename-users-name` on `dialect`: the reversible expand
/// and the irreversible contract.
pub fn deploys(dialect: Dialect) -> Vec<Deploy> {
    let (timeouts, index, record): (&[&'static str], &'static str, &'static str) = match dialect {
        Dialect::Postgres => (
            &["SET lock_timeout = '2000ms';"],
            "CREATE INDEX CONCURRENTLY \"users_full_name_idx\" ON \"users\" (\"full_name\");",
            "INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' WHERE false;",
        ),
        Dialect::Mysql => (
            &["SET SESSION lock_wait_timeout = 2, SESSION innodb_lock_wait_timeout = 2;"],
            "CREATE INDEX `users_full_name_idx` ON `users` (`full_name`) ALGORITHM=INPLACE LOCK=NONE;",
            "INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' FROM DUAL WHERE false;",
        ),
        Dialect::Sqlite => (
            &[],
            "CREATE INDEX \"users_full_name_idx\" ON \"users\" (\"full_name\");",
            "INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' WHERE 0;",
        ),
    };
    let with_timeouts = |rest: &[&'static str]| -> Vec<&'static str> {
        timeouts
            .iter()
            .copied()
            .chain(rest.iter().copied())
            .collect()
    };
    let expand = vec![
        unit(
            "guard",
            true,
            &["SELECT 1 FROM phasegate_head WHERE id = 1;"],
            &[],
        ),
        unit(
            "add_column",
            true,
            &with_timeouts(&["ALTER TABLE users ADD COLUMN full_name text;", record]),
            &["1.add_column"],
        ),
        unit(
            "create_index",
            dialect == Dialect::Sqlite,
            &with_timeouts(&[index]),
            &["1.index"],
        ),
        unit("record", true, &[record], &[]),
        unit(
            "backfill_handoff",
            true,
            &["SELECT 1 FROM phasegate_head WHERE id = 1;"],
            &["1.backfill"],
        ),
    ];
    let down = vec![unit(
        "undo_add_column",
        true,
        &with_timeouts(&["ALTER TABLE users DROP COLUMN full_name;", record]),
        &["1.add_column"],
    )];
    let contract = vec![
        unit(
            "guard",
            true,
            &["SELECT 1 FROM phasegate_head WHERE id = 1;"],
            &[],
        ),
        unit(
            "drop_column",
            true,
            &with_timeouts(&["ALTER TABLE users DROP COLUMN name;", record]),
            &["2.drop_column"],
        ),
    ];
    vec![
        Deploy {
            plan: "rename-users-name".into(),
            phase: 1,
            of: 2,
            dialect,
            summary: "expand: add users.full_name, kept in step with users.name".into(),
            reversible: true,
            app: vec!["read full_name, write both".into()],
            units: expand,
            down: Some(down),
        },
        Deploy {
            plan: "rename-users-name".into(),
            phase: 2,
            of: 2,
            dialect,
            summary: "contract: drop users.name".into(),
            reversible: false,
            app: vec!["stop writing name".into()],
            units: contract,
            down: None,
        },
    ]
}
