//! How long each backfill of a plan may take: the rows of its table (from
//! [`crate::catalog::table_sizes`]) over a rate, for the pull-request review
//! (docs/review.md). An estimate for a reviewer's eye, not a promise: the
//! rate depends on the server, the row width, the indexes and the load.

use std::time::Duration;

use super::Plan;
use crate::catalog::TableSize;
use crate::name::TableName;

/// The rate a backfill is estimated at when none is given, in rows per
/// second: `cargo bench --bench backfill` measured 173,000–177,000 rows/s
/// on the 2-core CI machine (Postgres 15, 1,000,000 rows, batches of 5,000;
/// docs/workflow.md, "Gates" above it), rounded down to leave room for a
/// busier server.
pub const DEFAULT_ROWS_PER_SECOND: u64 = 150_000;

/// One backfill step and how long it may take.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BackfillEstimate {
    /// The deploy (phase) that runs it, 1-based.
    pub phase: usize,
    /// The step's id (`1.backfill`).
    pub step: String,
    /// The table the backfill walks.
    pub table: TableName,
    /// The table's rows; `None` when the table's size is unknown (missing
    /// from `sizes`, or the table does not exist yet).
    pub rows: Option<u64>,
    /// `rows / rows_per_second`; `None` when `rows` is.
    pub duration: Option<Duration>,
}

/// Every backfill of `plan`, in phase order, with its table's rows from
/// `sizes` and the time it takes at `rows_per_second` (at least 1).
pub fn backfill_estimates(
    plan: &Plan,
    sizes: &[TableSize],
    rows_per_second: u64,
) -> Vec<BackfillEstimate> {
    let rate = rows_per_second.max(1);
    let mut out = Vec::new();
    for phase in &plan.phases {
        for &i in &phase.steps {
            let Some(step) = plan.steps.get(i) else {
                continue;
            };
            let Some(b) = &step.backfill else {
                continue;
            };
            let rows = sizes
                .iter()
                .find(|s| s.table == b.table)
                .and_then(|s| s.rows);
            out.push(BackfillEstimate {
                phase: phase.number,
                step: step.id.clone(),
                table: b.table.clone(),
                rows,
                duration: rows.map(|r| duration(r, rate)),
            });
        }
    }
    out
}

/// `rows` at `rate` rows per second (rate ≥ 1), to the millisecond.
fn duration(rows: u64, rate: u64) -> Duration {
    Duration::from_millis(rows.saturating_mul(1000) / rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::dialect::{Dialect, templates::Templates};
    use crate::intent::parse_plan;
    use crate::plan::Planner;

    #[test]
    fn each_backfill_gets_its_tables_rows_over_the_rate() {
        let file = parse_plan(
            "changes:\n  - rename_column: { table: users, from: name, to: full_name }\n  - add_index: { table: orders, columns: [a] }\n",
            "t.yaml",
            "t",
        )
        .expect("a plan");
        let templates = Templates::builtin(Dialect::Postgres);
        let plan = Planner::new(&templates, &Catalog::offline())
            .plan(&file)
            .expect("planned");
        let users = TableName::parse("users").expect("name");
        let sizes = vec![TableSize {
            table: users.clone(),
            exists: true,
            rows: Some(300_000),
            exact: false,
            bytes: Some(1 << 20),
        }];
        let e = backfill_estimates(&plan, &sizes, 150_000);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].table, users);
        assert_eq!(e[0].phase, 1);
        assert_eq!(e[0].duration, Some(Duration::from_secs(2)));
        // Unknown size, unknown time.
        let e = backfill_estimates(&plan, &[], 0);
        assert_eq!((e[0].rows, e[0].duration), (None, None));
    }
}
