//! Checks across the changes of one plan: what each change's steps do to
//! columns and tables ([`Effects`]), contradictions refused, and the edges
//! that order one change after another where the plan means that.
//!
//! A column's life in a plan: it exists before the plan (or a change creates
//! it), changes use it, and at most one change removes it. The rules (see
//! `docs/intents.md`, "Several changes in one plan"):
//! - two changes create, or two remove, the same column: refused;
//! - a change removes a column another change creates: when the removal is
//!   listed first, the name is being reused (drop the old `legacy`, add a new
//!   `legacy`), so the creating change starts after the removal; otherwise
//!   refused (the creating change's steps write the column until its
//!   contract — a rename's sync trigger — so every write would fail);
//! - a change that leaves something on a column (an index, a foreign key, a
//!   check, NOT NULL, or changes it in place) and another that removes it:
//!   refused, unless the user is listed after the removal and after a change
//!   that creates the column again, when it refers to the new one;
//! - a change whose steps only read a column (a backfill value, `using`) and
//!   another that removes it: the removal waits until the reading change has
//!   finished (its last step, the contract);
//! - a change that needs a column another creates starts after the step that
//!   creates it;
//! - nothing else may touch a table a change renames or drops; a change on a
//!   renamed table's new name starts after the rename's contract (dropping
//!   that new name is refused).

use std::collections::HashMap;

use super::PlanningError;
use super::graph::Edge;
use crate::catalog::{Flavor, mentions};
use crate::dialect::Dialect;
use crate::intent::{Intent, PlanFile};
use crate::name::{Ident, TableName};

type ColumnKey = (TableName, Ident);

/// What a change does to columns and tables, for checks across changes.
/// Step indices are the recipe's own until the planner offsets them.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Columns that exist after the given step.
    pub creates: Vec<(TableName, Ident, usize)>,
    /// Columns that are gone after the given step.
    pub removes: Vec<(TableName, Ident, usize)>,
    /// Columns the change leaves something on (an index, a key, a check,
    /// NOT NULL) or changes in place: they must exist from its first step
    /// on and outlive it.
    pub uses: Vec<(TableName, Ident)>,
    /// Columns its steps read until its last step and no longer (a
    /// backfill value, a cast): a removal of one waits for the change.
    pub reads: Vec<(TableName, Ident)>,
    /// SQL expressions from the plan, evaluated over rows of a table: `true`
    /// when they outlive the change (a check, an index predicate), `false`
    /// when only its steps evaluate them (a backfill, `using`). The columns
    /// they name count as `uses` or `reads`.
    pub exprs: Vec<(TableName, String, bool)>,
    /// A table the change renames or drops: nothing else may touch it.
    pub replaces_table: Option<(TableName, &'static str)>,
    /// A table name the change brings in (a rename's new name), for good
    /// from the given step (its contract) on.
    pub names_table: Option<(TableName, usize)>,
}

impl Effects {
    /// Moves the recipe's step indices to the plan's.
    pub(crate) fn offset(&mut self, offset: usize) {
        for c in self.creates.iter_mut().chain(self.removes.iter_mut()) {
            c.2 += offset;
        }
        if let Some((_, step)) = &mut self.names_table {
            *step += offset;
        }
    }
}

/// Whether a change needs a column for good or only while its steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Lasting,
    WhileRunning,
}

/// Refuses contradictions between changes and adds the edges that order one
/// change after another. `spans` holds each change's (first, last) step.
pub(crate) fn cross_change_edges(
    file: &PlanFile,
    dialect: Dialect,
    effects: &[(usize, Effects)],
    spans: &[Option<(usize, usize)>],
    edges: &mut Vec<(usize, usize, Edge)>,
) -> Result<(), PlanningError> {
    let contradiction = |a: usize, b: usize, why: String| PlanningError::Contradiction {
        first: a.min(b),
        first_desc: file.changes[a.min(b)].to_string(),
        second: a.max(b),
        second_desc: file.changes[a.max(b)].to_string(),
        why,
    };
    let first = |change: usize| spans[change].map(|s| s.0);
    let last = |change: usize| spans[change].map(|s| s.1);
    let mut created: HashMap<ColumnKey, (usize, usize)> = HashMap::new();
    let mut removed: HashMap<ColumnKey, (usize, usize)> = HashMap::new();
    for (change, fx) in effects {
        for (t, c, step) in &fx.creates {
            if let Some((other, _)) = created.insert((t.clone(), c.clone()), (*change, *step)) {
                return Err(contradiction(
                    other,
                    *change,
                    format!("both create column {t}.{c}"),
                ));
            }
        }
        for (t, c, step) in &fx.removes {
            if let Some((other, _)) = removed.insert((t.clone(), c.clone()), (*change, *step)) {
                return Err(contradiction(
                    other,
                    *change,
                    format!("both remove column {t}.{c}"),
                ));
            }
        }
    }

    // A column one change removes and another creates.
    let mut keys: Vec<&ColumnKey> = removed
        .keys()
        .filter(|k| created.contains_key(*k))
        .collect();
    keys.sort_by_key(|k| removed.get(*k).map(|r| r.0));
    for key in keys {
        let (Some(&(remover, removal)), Some(&(creator, _))) = (removed.get(key), created.get(key))
        else {
            continue;
        };
        if remover == creator {
            continue;
        }
        let (t, c) = key;
        if remover > creator {
            return Err(contradiction(
                creator,
                remover,
                format!(
                    "the first creates column {t}.{c} and its steps use it until its contract (a rename or type change keeps it in sync with a trigger), but the second removes it: writes to {t} would fail once it is gone. To remove the data, drop the column the first starts from instead; to replace an existing column named {c}, list the removal first, and the new column is made after it"
                ),
            ));
        }
        if let Some(start) = first(creator) {
            edges.push((removal, start, Edge::Then));
        }
    }

    // Columns each change needs, with the columns its expressions name.
    let flavor = match dialect {
        Dialect::Postgres => Flavor::Postgres,
        Dialect::Sqlite | Dialect::Mysql => Flavor::Sqlite,
    };
    // In a stable order, so the same plan is always refused with the same message.
    let mut touched: Vec<&ColumnKey> = created.keys().chain(removed.keys()).collect();
    touched.sort_by_key(|(t, c)| format!("{t}.{c}"));
    touched.dedup();
    for (change, fx) in effects {
        let change = *change;
        let mut needs: Vec<(&TableName, &Ident, Need)> = Vec::new();
        needs.extend(fx.uses.iter().map(|(t, c)| (t, c, Need::Lasting)));
        needs.extend(fx.reads.iter().map(|(t, c)| (t, c, Need::WhileRunning)));
        for (table, expr, lasting) in &fx.exprs {
            for (t, c) in touched.iter().copied() {
                if t == table && mentions(expr, c.as_str(), flavor) {
                    let need = if *lasting {
                        Need::Lasting
                    } else {
                        Need::WhileRunning
                    };
                    needs.push((t, c, need));
                }
            }
        }
        for (t, c, need) in needs {
            let key = (t.clone(), c.clone());
            // A change that removes or creates the column itself means its own.
            let own = |m: &HashMap<ColumnKey, (usize, usize)>| {
                m.get(&key).is_some_and(|(o, _)| *o == change)
            };
            if own(&removed) || own(&created) {
                continue;
            }
            let creator = created.get(&key).filter(|(o, _)| *o != change).copied();
            let remover = removed.get(&key).filter(|(o, _)| *o != change).copied();
            // After a removal and a new column of the same name, a change
            // listed after the removal means the new column.
            let new_column = match (creator, remover) {
                (Some(_), None) => true,
                (Some((c, _)), Some((r, _))) => r < c && change > r,
                _ => false,
            };
            if new_column {
                if let (Some((_, step)), Some(start)) = (creator, first(change)) {
                    edges.push((step, start, Edge::Then));
                }
                continue;
            }
            let Some((other, removal)) = remover else {
                continue;
            };
            match need {
                Need::Lasting => {
                    return Err(contradiction(
                        other,
                        change,
                        format!(
                            "one removes column {t}.{c}, which the other needs (it keeps an index, key, check or NOT NULL on it, or changes it in place)"
                        ),
                    ));
                }
                Need::WhileRunning => {
                    if let Some(end) = last(change) {
                        edges.push((end, removal, Edge::Then));
                    }
                }
            }
        }
    }

    // Tables a change renames or drops, and the names renames bring in.
    let tables_replaced: Vec<(usize, &TableName, &str)> = effects
        .iter()
        .filter_map(|(change, fx)| {
            fx.replaces_table
                .as_ref()
                .map(|(t, verb)| (*change, t, *verb))
        })
        .collect();
    let tables_named: Vec<(usize, &TableName, usize)> = effects
        .iter()
        .filter_map(|(change, fx)| fx.names_table.as_ref().map(|(t, s)| (*change, t, *s)))
        .collect();
    for (change, fx) in effects {
        let change = *change;
        let touches = |table: &TableName| {
            file.changes[change].table() == Some(table)
                || fx.uses.iter().any(|(t, _)| t == table)
                || fx.reads.iter().any(|(t, _)| t == table)
        };
        for &(other, table, verb) in &tables_replaced {
            if other != change && touches(table) {
                return Err(contradiction(
                    other,
                    change,
                    format!(
                        "one {verb} table {table}; changes to it belong in a plan of their own, before or after"
                    ),
                ));
            }
        }
        for &(other, table, contract) in &tables_named {
            if other == change || !touches(table) {
                continue;
            }
            if matches!(file.changes[change], Intent::DropTable(_)) {
                return Err(contradiction(
                    other,
                    change,
                    format!(
                        "one renames a table to {table} and the other drops {table}: that drops the renamed table; drop it under its current name instead"
                    ),
                ));
            }
            if let Some(start) = first(change) {
                edges.push((contract, start, Edge::Then));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
