//! Every pair of intent kinds on one shared column (`items.c`), in both
//! orders: refused, accepted as independent, or accepted with one change
//! ordered after the other.

use crate::catalog::Catalog;
use crate::dialect::Dialect;
use crate::plan::recipes::testing::{plan, plan_with};
use crate::plan::{Plan, PlanningError};

/// One change touching `items.c` (or the table `items`), by what it does.
const KINDS: &[(&str, &str)] = &[
    ("add", "add_column: { table: items, column: c, type: text }"),
    (
        "rename_to",
        "rename_column: { table: items, from: b, to: c }",
    ),
    (
        "retype_into",
        "change_column_type: { table: items, column: b, type: bigint, new_column: c }",
    ),
    ("drop", "drop_column: { table: items, column: c }"),
    (
        "rename_from",
        "rename_column: { table: items, from: c, to: d }",
    ),
    (
        "retype",
        "change_column_type: { table: items, column: c, type: bigint }",
    ),
    ("index", "add_index: { table: items, columns: [c] }"),
    (
        "fk",
        "add_foreign_key: { table: items, columns: [c], references: { table: parents, columns: [id] } }",
    ),
    (
        "referenced",
        "add_foreign_key: { table: children, columns: [item_c], references: { table: items, columns: [c] } }",
    ),
    ("not_null", "set_not_null: { table: items, column: c }"),
    (
        "check",
        "add_check: { table: items, name: c_positive, check: \"c > 0\" }",
    ),
    (
        "reads",
        "add_column: { table: items, column: e, type: text, backfill: \"c || 'x'\" }",
    ),
    ("drop_table", "drop_table: { table: items }"),
    ("rename_table", "rename_table: { from: items, to: goods }"),
    ("sql", "sql: { phases: [ { up: \"SELECT 1\" } ] }"),
];

/// Row: the change listed first; column: the change listed second.
/// `X` refused as a contradiction; `.` accepted, independent; `C` the user
/// starts after the step that creates the column; `N` the second creates
/// the column again after the first has removed it; `R` the removal waits
/// until the change that reads the column has finished.
const EXPECTED: &[&str] = &[
    //    add rto rin drp rfr rty idx fk  ref nn  chk rd  dt  rt  sql
    "XXXXXXCCCCCCXX.", // add
    "XXXXXXCCCCCCXX.", // rename_to
    "XXXXXXCCCCCCXX.", // retype_into
    "NNNXXXXXXXXRXX.", // drop
    "NNNXXXXXXXXRXX.", // rename_from
    "NNNXXXXXXXXRXX.", // retype
    "CCCXXX......XX.", // index
    "CCCXXX......XX.", // fk
    "CCCXXX......XX.", // referenced
    "CCCXXX......XX.", // not_null
    "CCCXXX......XX.", // check
    "CCCRRR.....XXX.", // reads
    "XXXXXXXXXXXXXX.", // drop_table
    "XXXXXXXXXXXXXX.", // rename_table
    "...............", // sql
];

const CREATORS: &[&str] = &["add", "rename_to", "retype_into"];
const REMOVERS: &[&str] = &["drop", "rename_from", "retype"];

/// Position of each step in execution order.
fn positions(p: &Plan) -> Vec<usize> {
    let mut pos = vec![0; p.steps.len()];
    for (n, i) in p.phases.iter().flat_map(|ph| ph.steps.iter()).enumerate() {
        pos[*i] = n;
    }
    pos
}

fn span(p: &Plan, change: usize) -> (usize, usize) {
    let pos = positions(p);
    let of: Vec<usize> = (0..p.steps.len())
        .filter(|&i| p.steps[i].change == change)
        .map(|i| pos[i])
        .collect();
    (
        of.iter().copied().min().unwrap_or(0),
        of.iter().copied().max().unwrap_or(0),
    )
}

/// Where a change's `add_column` step runs.
fn creation(p: &Plan, change: usize) -> usize {
    let pos = positions(p);
    p.steps
        .iter()
        .position(|s| s.change == change && s.id.ends_with(".add_column"))
        .map_or(usize::MAX, |i| pos[i])
}

/// `want` when the plan (or its refusal) is what `want` says, else `?`
/// (accepted, but not in the expected order) or `!` (another error).
fn outcome(p: &Result<Plan, PlanningError>, want: char, a: &str) -> char {
    let p = match p {
        Err(PlanningError::Contradiction {
            first: 0,
            second: 1,
            ..
        }) => return 'X',
        Err(_) => return '!',
        Ok(p) => p,
    };
    let (first, second) = (span(p, 0), span(p, 1));
    let holds = match want {
        '.' => true,
        // The second change starts after the first's last step (its removal).
        'N' => second.0 > first.1,
        // The user starts after the creating step.
        'C' if CREATORS.contains(&a) => second.0 > creation(p, 0),
        'C' => first.0 > creation(p, 1),
        // The remover's last step (the removal) comes after every step of the reader.
        'R' if REMOVERS.contains(&a) => first.1 > second.1,
        'R' => second.1 > first.1,
        _ => false,
    };
    if holds { want } else { '?' }
}

#[test]
fn every_pair_of_kinds_on_a_shared_column() {
    let mut failures = Vec::new();
    // The rules do not depend on the dialect (MySQL plans renames only
    // against the live schema, so it is left out of this offline run).
    for d in [Dialect::Postgres, Dialect::Sqlite] {
        for (i, (a, first)) in KINDS.iter().enumerate() {
            for (j, (b, second)) in KINDS.iter().enumerate() {
                // SQLite refuses rename_table on its own (writes through a
                // view report no rows): rename_table.rs tests that.
                if d == Dialect::Sqlite && (*a == "rename_table" || *b == "rename_table") {
                    continue;
                }
                let want = EXPECTED[i].as_bytes()[j] as char;
                let changes = format!("  - {first}\n  - {second}\n");
                let p = plan_with(d, &Catalog::offline(), &changes);
                let got = outcome(&p, want, a);
                if got != want {
                    failures.push(format!(
                        "{d}: {a} then {b}: expected {want}, got {got} ({})",
                        match &p {
                            Ok(p) => format!("{} phases", p.phases.len()),
                            Err(e) => e.to_string(),
                        }
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn phase_of(p: &Plan, id: &str) -> usize {
    p.steps
        .iter()
        .position(|s| s.id == id)
        .map_or(0, |i| p.phase_of(i))
}

#[test]
fn dropping_a_renames_new_column_is_refused_naming_both() {
    let e = plan_with(
        Dialect::Postgres,
        &Catalog::offline(),
        "  - rename_column: { table: items, from: name, to: item_name }\n  - drop_column: { table: items, column: item_name }\n",
    );
    let msg = e.map(|p| p.phases.len()).map_err(|e| e.to_string());
    assert!(
        msg.as_ref().is_err_and(|m| m
            .contains("changes[0] (rename_column items.name → item_name)")
            && m.contains("changes[1] (drop_column items.item_name)")
            && m.contains("list the removal first")),
        "{msg:?}"
    );
}

#[test]
fn a_column_read_by_a_sync_trigger_is_dropped_after_the_contract() {
    // The type change's trigger evaluates `using` (which reads c) until its
    // contract in deploy 3; without the edge, c would go in deploy 2.
    let p = plan(
        Dialect::Postgres,
        "  - change_column_type: { table: items, column: b, type: bigint, using: \"b + length(c)\" }\n  - drop_column: { table: items, column: c }\n",
    );
    assert!(phase_of(&p, "2.drop_column") >= phase_of(&p, "1.contract"));
    let pos = positions(&p);
    let at = |id: &str| p.steps.iter().position(|s| s.id == id).map(|i| pos[i]);
    assert!(at("2.drop_column") > at("1.contract"), "{:?}", pos);
}

#[test]
fn a_name_freed_by_a_removal_is_reused_after_it() {
    let p = plan(
        Dialect::Postgres,
        "  - drop_column: { table: items, column: legacy }\n  - add_column: { table: items, column: legacy, type: jsonb }\n",
    );
    assert_eq!(phase_of(&p, "2.add_column"), phase_of(&p, "1.drop_column"));
    assert!(p.steps.iter().position(|s| s.id == "2.add_column") > Some(0));
    // An index listed after both is on the new column.
    let p = plan(
        Dialect::Postgres,
        "  - drop_column: { table: items, column: legacy }\n  - add_column: { table: items, column: legacy, type: text }\n  - add_index: { table: items, columns: [legacy] }\n",
    );
    assert_eq!(phase_of(&p, "3.create_index"), phase_of(&p, "2.add_column"));
    // Listed before the removal, it is on the old column: refused.
    let e = plan_with(
        Dialect::Postgres,
        &Catalog::offline(),
        "  - add_index: { table: items, columns: [legacy] }\n  - drop_column: { table: items, column: legacy }\n  - add_column: { table: items, column: legacy, type: text }\n",
    );
    assert!(matches!(
        e,
        Err(PlanningError::Contradiction {
            first: 0,
            second: 1,
            ..
        })
    ));
}

#[test]
fn changes_on_a_renamed_tables_new_name_wait_for_its_contract() {
    let p = plan(
        Dialect::Postgres,
        "  - rename_table: { from: items, to: goods }\n  - add_column: { table: goods, column: sku, type: text }\n",
    );
    assert_eq!(phase_of(&p, "2.add_column"), phase_of(&p, "1.contract"));
    assert_eq!(p.phases.len(), 2);
    let e = plan_with(
        Dialect::Postgres,
        &Catalog::offline(),
        "  - rename_table: { from: items, to: goods }\n  - drop_table: { table: goods }\n",
    );
    assert!(e.is_err_and(|e| e.to_string().contains("drop it under its current name")));
}
