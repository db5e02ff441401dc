//! Plans a file of 1,000 intents over 200 tables and renders it as JSON.
//!
//! Run: `cargo bench --bench plan_1000`. Target: under 100 ms on a 2-core
//! machine for parse + plan + JSON. Prints the minimum and median of 20 runs.

use std::fmt::Write;
use std::time::{Duration, Instant};

use phasegate::catalog::Catalog;
use phasegate::dialect::Dialect;
use phasegate::dialect::templates::Templates;
use phasegate::intent::parse_plan;
use phasegate::plan::Planner;

/// 1,000 changes, five per table over 200 tables, mixing every common kind.
fn plan_text() -> String {
    let mut y = String::from("name: bench\nchanges:\n");
    for t in 0..200 {
        let table = format!("table_{t}");
        let _ = writeln!(
            y,
            "  - rename_column: {{ table: {table}, from: name, to: full_name }}"
        );
        let _ = writeln!(
            y,
            "  - add_column: {{ table: {table}, column: status, type: text, nullable: false, backfill: \"'new'\" }}"
        );
        let _ = writeln!(
            y,
            "  - add_index: {{ table: {table}, columns: [created_at] }}"
        );
        let _ = writeln!(
            y,
            "  - change_column_type: {{ table: {table}, column: amount, type: bigint }}"
        );
        let _ = writeln!(
            y,
            "  - add_check: {{ table: {table}, name: {table}_amount_positive, check: amount > 0 }}"
        );
    }
    y
}

fn main() {
    let text = plan_text();
    let templates = Templates::builtin(Dialect::Postgres);
    let catalog = Catalog::offline();
    let run = || -> Result<(usize, usize, usize), String> {
        let file = parse_plan(&text, "bench.yaml", "bench").map_err(|e| e.to_string())?;
        let plan = Planner::new(&templates, &catalog)
            .plan(&file)
            .map_err(|e| e.to_string())?;
        let json = phasegate::output::json(&plan);
        Ok((plan.steps.len(), plan.phases.len(), json.len()))
    };
    let (steps, phases, bytes) = match run() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("benchmark plan failed: {e}");
            std::process::exit(1);
        }
    };
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let start = Instant::now();
            let _ = std::hint::black_box(run());
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "plan_1000: 1000 intents, 200 tables -> {steps} steps in {phases} deploys, {bytes} bytes of JSON; \
         min {:.1} ms, median {:.1} ms (target < 100 ms)",
        times[0].as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3
    );
}
