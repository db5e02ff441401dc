//! A bounded fuzz run of plan and config loading, in the ordinary
//! `cargo test` (proptest, a fixed number of cases per run).
//!
//! Inputs: the seed corpus under `tests/fuzz_corpus/` (plans and configs,
//! hostile ones among them) and random mutations of it (bytes flipped,
//! YAML and SQL tokens inserted, spans deleted, duplicated or spliced from
//! another seed, truncation); alias bombs of random shape; random deep
//! nesting; huge numbers and durations; random Unicode. Each input is read
//! as a plan (`parse_plan`) and as a config (`Config::parse`); a plan that
//! loads is also written back to YAML and read again (the same changes),
//! planned offline in every dialect, and its steps split into statements. The property: nothing panics (a panic fails the case), and
//! what loads keeps its promises (every expression is one expression).
//! Memory stays bounded by the reader's budgets (`intent::yaml`), so an
//! input that tried to exhaust it is refused, not followed.
//!
//! Expressions built from SQL's quoting and comment pieces are put in a
//! check: one that loads must leave every step of the planned change, in
//! every dialect, with as many statements as the same change with `1` for
//! its check (an injection would add one).
//!
//! Inputs per run: the sum of [`MUTATION_CASES`], [`BOMB_CASES`],
//! [`NESTING_CASES`], [`SCALAR_CASES`] (six documents each) and
//! [`EXPRESSION_CASES`], each read both ways, plus the seeds themselves.

use std::path::{Path, PathBuf};

use phasegate::catalog::Catalog;
use phasegate::config::Config;
use phasegate::dialect::Dialect;
use phasegate::dialect::expression::check_expression_everywhere;
use phasegate::dialect::statements::{split_mysql, split_postgres, split_sqlite};
use phasegate::dialect::templates::Templates;
use phasegate::intent::{Intent, PlanFile, parse_plan};
use phasegate::plan::Planner;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

/// Mutations of the corpus per run.
pub const MUTATION_CASES: u32 = 3000;
/// Alias bombs per run.
pub const BOMB_CASES: u32 = 200;
/// Deeply nested documents per run.
pub const NESTING_CASES: u32 = 200;
/// Documents with huge or odd scalars per run.
pub const SCALAR_CASES: u32 = 600;

/// Built expressions per run.
pub const EXPRESSION_CASES: u32 = 1000;

/// What gets inserted: YAML structure, tags, anchors, SQL quoting, odd
/// numbers and durations, odd Unicode.
const TOKENS: &[&str] = &[
    "&a ",
    "*a",
    "*b",
    "&a [*a, *a]",
    "<<: *a",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    ": ",
    "- ",
    "? ",
    "\n",
    "\t",
    "  ",
    "#",
    "|\n",
    ">-\n",
    "!!binary ",
    "!!str ",
    "!tag ",
    "%YAML 1.2\n---\n",
    "---\n",
    "...\n",
    "\u{feff}",
    "\u{0}",
    "\u{202e}",
    "\u{fffd}",
    "ÿ",
    "😀",
    "\r\n",
    "99999999999999999999999999",
    "-0",
    "1e400",
    ".nan",
    "~",
    "null",
    "y",
    "0x1F",
    "300000000000y",
    "0s",
    "0ms",
    "1ns",
    "18446744073709551616s",
    "$$",
    "$phasegate$",
    r"E'\''",
    ";",
    "--",
    "/*",
    "*/",
    "`",
    "${X}",
    "${",
    "changes:",
    "environments:",
    "- sql: { phases: [ { up: x } ] }",
    "default: ",
    "lock_timeout: ",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, usize),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Splice(usize, usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, t)| Mutation::Insert(p, t)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), 1usize..256).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
        (any::<usize>(), any::<usize>(), 1usize..128)
            .prop_map(|(p, s, n)| Mutation::Splice(p, s, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(seed: &[u8], other: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in mutations {
        let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
        match *m {
            Mutation::Flip(p, x) if !b.is_empty() => {
                let i = p % b.len();
                b[i] ^= x;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(p, t) => {
                let i = at(p, b.len());
                b.splice(i..i, TOKENS[t].bytes());
            }
            Mutation::Delete(p, n) => {
                let i = at(p, b.len());
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Mutation::Duplicate(p, n) => {
                let i = at(p, b.len());
                let end = (i + n).min(b.len());
                let copy = b[i..end].to_vec();
                b.splice(end..end, copy);
            }
            Mutation::Splice(p, s, n) => {
                let i = at(p, b.len());
                let from = at(s, other.len());
                let end = (from + n).min(other.len());
                b.splice(i..i, other[from..end].iter().copied());
            }
            Mutation::Truncate(p) => {
                let i = at(p, b.len());
                b.truncate(i);
            }
        }
    }
    b
}

fn corpus() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus");
    let mut seeds = Vec::new();
    for sub in ["plans", "configs"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(sub))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            if let Ok(text) = std::fs::read_to_string(&f) {
                seeds.push(text);
            }
        }
    }
    assert!(seeds.len() >= 10, "the fuzz corpus is missing: {root:?}");
    seeds
}

/// Reads `text` as a plan and as a config; what loads must keep its promises.
fn load_both(text: &str) -> Result<(), TestCaseError> {
    if let Ok(plan) = parse_plan(text, "fuzz.yaml", "fuzz") {
        check_plan(&plan)?;
    }
    let lookup = |_: &str| Some("postgres://u@db/app".to_string());
    let _ = Config::parse(
        text,
        Path::new("phasegate.yaml"),
        Path::new("/proj"),
        &lookup,
    );
    Ok(())
}

/// Every expression of a loaded plan is one expression; the plan plans (or
/// is refused) in every dialect without a panic, and its steps split.
fn check_plan(plan: &PlanFile) -> Result<(), TestCaseError> {
    for change in &plan.changes {
        for e in expressions(change) {
            prop_assert!(
                check_expression_everywhere(e).is_ok(),
                "a loaded expression is not one expression: {e:?}"
            );
        }
    }
    // `--write` saves a plan with the same YAML library: it reads back the same.
    let yaml = plan
        .to_yaml()
        .map_err(|e| TestCaseError::fail(format!("to_yaml: {e}")))?;
    match parse_plan(&yaml, "written.yaml", "written") {
        Ok(back) => prop_assert_eq!(&back.changes, &plan.changes, "{}", yaml),
        Err(e) => prop_assert!(false, "a written plan does not read back: {e}\n{yaml}"),
    }
    for d in Dialect::ALL {
        let templates = Templates::builtin(d);
        if let Ok(p) = Planner::new(&templates, &Catalog::offline()).plan(plan) {
            for sql in p.steps.iter().flat_map(|s| [&s.sql, &s.rollback_sql]) {
                let Some(sql) = sql else { continue };
                let _ = match d {
                    Dialect::Postgres => split_postgres(sql),
                    Dialect::Mysql => split_mysql(sql),
                    Dialect::Sqlite => split_sqlite(sql),
                };
            }
        }
    }
    Ok(())
}

fn expressions(i: &Intent) -> Vec<&str> {
    let v = match i {
        Intent::AddColumn(a) => vec![a.default.as_ref(), a.backfill.as_ref()],
        Intent::ChangeColumnType(c) => vec![c.using.as_ref(), c.reverse.as_ref()],
        Intent::DropColumn(d) => vec![d.down.as_ref()],
        Intent::AddIndex(a) => vec![a.predicate.as_ref()],
        Intent::SetNotNull(s) => vec![s.backfill.as_ref()],
        Intent::AddCheck(c) => vec![Some(&c.check)],
        _ => vec![],
    };
    v.into_iter().flatten().map(|e| e.as_str()).collect()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

#[test]
fn seeds_load_without_panic() {
    for seed in corpus() {
        if let Err(e) = load_both(&seed) {
            panic!("{e}\n{seed}");
        }
    }
}

#[test]
fn mutated_corpus_loads_without_panic() {
    let seeds = corpus();
    let n = seeds.len();
    let strategy = (0..n, 0..n, proptest::collection::vec(mutation(), 1..8));
    let result = runner(MUTATION_CASES).run(&strategy, |(s, o, mutations)| {
        let bytes = apply(seeds[s].as_bytes(), seeds[o].as_bytes(), &mutations);
        load_both(&String::from_utf8_lossy(&bytes))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A billion-laughs document: `levels` anchors, each a list of `width`
/// aliases to the one before, the last used where the plan or config takes
/// a string, a list or a map.
fn bomb(levels: usize, width: usize, place: usize, big: usize) -> String {
    let mut s = format!("x0: &a0 \"{}\"\n", "lol".repeat(big));
    for i in 1..levels {
        let refs = vec![format!("*a{}", i - 1); width].join(", ");
        s.push_str(&format!("x{i}: &a{i} [{refs}]\n"));
    }
    let last = format!("*a{}", levels - 1);
    s.push_str(&match place {
        0 => format!("changes:\n  - sql: {{ phases: [ {{ up: {last} }} ] }}\n"),
        1 => format!("changes: {last}\n"),
        2 => format!("description: {last}\nchanges:\n  - drop_table: {{ table: t }}\n"),
        3 => format!("environments: {last}\n"),
        _ => format!("environments:\n  - name: a\n    database_url: {last}\n"),
    });
    s
}

#[test]
fn alias_bombs_are_refused_without_panic() {
    let strategy = (1usize..14, 1usize..16, 0usize..5, 1usize..5000);
    let result = runner(BOMB_CASES).run(&strategy, |(levels, width, place, big)| {
        let text = bomb(levels, width, place, big);
        // Bombs with fewer aliases than the budget (64) may load: either way,
        // nothing panics and nothing runs out of memory.
        load_both(&text)?;
        // Deep enough to cross the alias budget: refused as a plan.
        if levels > 3 && width > 8 {
            prop_assert!(parse_plan(&text, "fuzz.yaml", "fuzz").is_err());
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn deep_nesting_is_refused_without_panic() {
    let strategy = (1usize..20_000, 0usize..4);
    let result = runner(NESTING_CASES).run(&strategy, |(depth, shape)| {
        let text = match shape {
            0 => format!("changes: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
            1 => format!("changes: {}\n", "{a: ".repeat(depth)),
            2 => (0..depth.min(3000))
                .map(|i| format!("{}- x:\n", "  ".repeat(i)))
                .collect(),
            _ => format!(
                "environments:\n  - name: a\n    database_url: {}x{}\n",
                "[".repeat(depth),
                "]".repeat(depth)
            ),
        };
        load_both(&text)?;
        if depth > 40 {
            prop_assert!(parse_plan(&text, "fuzz.yaml", "fuzz").is_err());
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn huge_and_odd_scalars_load_without_panic() {
    let scalar = prop_oneof![
        "[0-9]{1,60}[a-z]{0,3}",
        "[0-9]{1,30}(ns|us|ms|s|m|h|d|w|M|y)",
        any::<String>(),
        "\\PC{0,40}",
        proptest::collection::vec(any::<char>(), 0..40).prop_map(|v| v.into_iter().collect()),
    ];
    let field = prop_oneof![
        Just("lock_timeout"),
        Just("statement_timeout"),
        Just("connect_timeout"),
        Just("lock_wait"),
        Just("soak"),
        Just("require_backup"),
        Just("backfill_pause"),
        Just("backfill_batch_size"),
        Just("lock_retries"),
        Just("default"),
        Just("check"),
        Just("type"),
        Just("name"),
    ];
    let result = runner(SCALAR_CASES).run(&(field, scalar), |(field, value)| {
        let quoted = format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
        for v in [value.as_str(), quoted.as_str()] {
            load_both(&format!(
                "environments:\n  - name: a\n    database_url: postgres://u@db/app\n    {field}: {v}\n"
            ))?;
            load_both(&format!(
                "changes:\n  - add_column: {{ table: t, column: c, type: text, {field}: {v} }}\n"
            ))?;
            load_both(&format!(
                "changes:\n  - add_check:\n      table: t\n      name: n\n      {field}: {v}\n"
            ))?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Pieces of SQL quoting, comments and statements, from which expressions
/// are built.
const PIECES: &[&str] = &[
    "'",
    "''",
    "\"",
    "`",
    ";",
    "--",
    "-- x\n",
    "#",
    "/*",
    "*/",
    "$$",
    "$a$",
    "$phasegate$",
    "E'",
    "U&'",
    "X'",
    "\\",
    "\\'",
    "(",
    ")",
    "[",
    "]",
    " ",
    "\n",
    "x",
    "1",
    "a.b",
    "CREATE TABLE pwned(x int)",
    "'a'",
    "::text",
    "now()",
    "CASE WHEN x THEN 1 END",
    ",",
    "NOT VALID",
    "DEFAULT",
];

/// The statements of each step of `check` added to `t`, per dialect; `None`
/// when the plan does not load.
fn statements_per_step(check: &str) -> Option<Vec<Vec<usize>>> {
    let quoted = check
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    let text = format!("changes:\n  - add_check: {{ table: t, name: n, check: \"{quoted}\" }}\n");
    let plan = parse_plan(&text, "fuzz.yaml", "fuzz").ok()?;
    let counts = Dialect::ALL
        .iter()
        .map(|d| {
            let templates = Templates::builtin(*d);
            match Planner::new(&templates, &Catalog::offline()).plan(&plan) {
                Ok(p) => p
                    .steps
                    .iter()
                    .flat_map(|s| [&s.sql, &s.rollback_sql])
                    .map(|sql| match (d, sql) {
                        (_, None) => 0,
                        (Dialect::Postgres, Some(sql)) => split_postgres(sql).len(),
                        (Dialect::Mysql, Some(sql)) => split_mysql(sql).len(),
                        (Dialect::Sqlite, Some(sql)) => split_sqlite(sql).len(),
                    })
                    .collect(),
                Err(_) => vec![usize::MAX],
            }
        })
        .collect();
    Some(counts)
}

#[test]
fn accepted_expressions_stay_one_expression_in_the_sql() {
    let reference = statements_per_step("1");
    assert!(reference.is_some(), "the reference plan does not load");
    let strategy = proptest::collection::vec(0..PIECES.len(), 1..10);
    let result = runner(EXPRESSION_CASES).run(&strategy, |pieces| {
        let check: String = pieces.iter().map(|i| PIECES[*i]).collect();
        if let Some(counts) = statements_per_step(&check) {
            prop_assert_eq!(
                Some(counts),
                reference.clone(),
                "check {:?} was accepted and changed the statements",
                check
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
