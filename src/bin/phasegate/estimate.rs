//! `phasegate estimate PLAN --database-url URL`: the sizes of the tables a
//! plan touches and how long each of its backfills may take, as Markdown
//! (the pull-request review's comment, docs/review.md). Reads only.

use std::path::Path;

use phasegate::catalog::{COUNT_LIMIT, TableSize, table_sizes};
use phasegate::dialect::Dialect;
use phasegate::dialect::templates::Templates;
use phasegate::plan::estimate::{BackfillEstimate, DEFAULT_ROWS_PER_SECOND, backfill_estimates};
use phasegate::plan::{Planner, tables_touched};
use phasegate::tracker::gates::human;

use crate::Failure;

/// What `estimate` was asked.
pub struct EstimateArgs<'a> {
    /// A plan file, or the name of one under plans/.
    pub plan: &'a str,
    /// The database the sizes are read from; its dialect plans the plan.
    pub database_url: &'a str,
    /// The backfill rate; `None`: [`DEFAULT_ROWS_PER_SECOND`].
    pub rows_per_second: Option<u64>,
    /// Project templates that override the built-in ones.
    pub templates: &'a Path,
}

/// The Markdown of `estimate`: the tables' sizes, then the backfills'
/// estimated durations. Errors (exit 2): no such plan, a plan that cannot
/// be planned, a URL phasegate cannot read, a database that cannot be read.
pub fn estimate(args: EstimateArgs<'_>, config: Option<&Path>) -> Result<String, Failure> {
    let file = crate::plan::load_target(config, args.plan)?;
    let dialect = dialect_of(args.database_url)?;
    let templates = Templates::with_overrides(dialect, args.templates)
        .map_err(|e| Failure::input(format!("error: {e}")))?;
    let plan = Planner::new(&templates, &phasegate::catalog::Catalog::offline())
        .plan(&file)
        .map_err(|e| Failure::input(format!("error: {}: {e}", file.name)))?;
    let tables = tables_touched(&file);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("error: cannot start the async runtime: {e}")))?;
    let sizes = rt
        .block_on(table_sizes(args.database_url, &tables))
        .map_err(|e| Failure::input(format!("error: {e}")))?;
    let rate = args.rows_per_second.unwrap_or(DEFAULT_ROWS_PER_SECOND);
    let estimates = backfill_estimates(&plan, &sizes, rate);
    Ok(markdown(
        &sizes,
        &estimates,
        rate,
        args.rows_per_second.is_none(),
    ))
}

fn dialect_of(url: &str) -> Result<Dialect, Failure> {
    Dialect::of_url(url).ok_or_else(|| {
        Failure::input(format!(
            "error: --database-url: `{}:` is not a database phasegate knows; expected postgres://…, mysql://…, mariadb://… or sqlite:…",
            phasegate::dialect::url_scheme(url)
        ))
    })
}

/// The two tables: sizes, then backfills.
fn markdown(
    sizes: &[TableSize],
    estimates: &[BackfillEstimate],
    rate: u64,
    default: bool,
) -> String {
    let mut out = String::from("| table | rows | size on disk |\n|---|---:|---:|\n");
    for s in sizes {
        let (rows, bytes) = if s.exists {
            (
                rows_text(s),
                s.bytes.map_or("unknown".to_string(), bytes_text),
            )
        } else {
            ("not found".to_string(), "—".to_string())
        };
        out.push_str(&format!("| `{}` | {rows} | {bytes} |\n", s.table));
    }
    out.push('\n');
    if estimates.is_empty() {
        out.push_str("No backfills: no step of this plan rewrites existing rows in batches.\n");
        return out;
    }
    let source = if default {
        format!(
            "phasegate's default rate, {} rows/s (rounded down from what `cargo bench --bench backfill` measured on Postgres, 2 cores); pass your own with `--rows-per-second` (the review action's `rows-per-second`)",
            thousands(rate)
        )
    } else {
        format!("{} rows/s (`--rows-per-second`)", thousands(rate))
    };
    out.push_str(&format!("Backfills, estimated at {source}:\n\n"));
    out.push_str(
        "| deploy | step | table | rows | estimated duration |\n|---:|---|---|---:|---:|\n",
    );
    for e in estimates {
        let rows = e.rows.map_or("unknown".to_string(), thousands);
        let time = e.duration.map_or("unknown".to_string(), |d| {
            if d.as_secs() == 0 {
                "under 1s".to_string()
            } else {
                human(d)
            }
        });
        out.push_str(&format!(
            "| {} | `{}` | `{}` | {rows} | {time} |\n",
            e.phase, e.step, e.table
        ));
    }
    out
}

fn rows_text(s: &TableSize) -> String {
    match s.rows {
        None => "unknown".to_string(),
        Some(r) if s.exact => thousands(r),
        Some(r) if r >= COUNT_LIMIT && !s.exact => format!("≥ {}", thousands(r)),
        Some(r) => format!("~{}", thousands(r)),
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    crate::interrupt::grouped(n)
}

/// Bytes in binary units: `8.0 KiB`, `1.5 GiB`.
fn bytes_text(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(8192), "8.0 KiB");
        assert_eq!(bytes_text(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
