//! The shape shared by `rename_column` and a type change that rewrites: a new
//! column beside the old one, kept equal to it while both exist, backfilled,
//! verified; then the application switches; then the old column goes.

use minijinja::context;

use super::{beside, carry, column_census, mysql_definition, table_value};
use crate::dialect::Dialect;
use crate::intent::SyncMode;
use crate::name::{Ident, TableName};
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};

pub(super) struct Copy<'i> {
    /// The template to render (`rename_column` or `change_column_type`).
    pub kind: &'static str,
    pub table: &'i TableName,
    pub old: &'i Ident,
    pub new: &'i Ident,
    /// The new column's type; `None` copies the old column's type at apply time.
    pub new_type: Option<String>,
    /// Whether new = CAST(old AS new_type) rather than new = old.
    pub cast: bool,
    /// old → new, in terms of the old column's name.
    pub forward: Option<String>,
    /// new → old, in terms of the new column's name.
    pub reverse: Option<String>,
    /// The old column's default, to move to the new column at the contract.
    pub old_default: Option<String>,
    /// Move the default at apply time (offline Postgres rename).
    pub move_default: bool,
    /// Whether the old column is NOT NULL without a default (known live).
    pub old_required: Option<bool>,
    pub sync: SyncMode,
}

const BLOCKS: &[&str] = &[
    "add_column",
    "drop_new_column",
    "sync_trigger",
    "drop_sync_trigger",
    "backfill_set",
    "backfill_pending",
    "verify",
    "relax_old",
    "restore_old",
    "contract",
];

pub(super) fn expand(r: &mut Recipe<'_>, c: Copy<'_>) -> Result<(), PlanningError> {
    let (t, old, new) = (c.table, c.old, c.new);
    if r.dialect == Dialect::Sqlite && c.old_required == Some(true) {
        // Inserts that write only the new column would fail on the old one
        // while both exist, and SQLite cannot drop NOT NULL in place.
        return Err(r.unsupported(format!(
            "{t}.{old} is NOT NULL without a default and SQLite cannot relax that in place, so inserts by code that writes only {new} would fail while both columns exist; rebuild the table with a `sql` change instead"
        )));
    }
    if r.dialect == Dialect::Sqlite {
        // The contract drops the old column.
        r.require(
            3,
            35,
            "ALTER TABLE … DROP COLUMN (the contract drops the old column)",
        )?;
    }
    let table_name = t.name.as_str();
    let key: Vec<String> = r
        .catalog
        .table(t)
        .map(|f| {
            f.primary_key
                .iter()
                .map(|k| k.as_str().to_string())
                .collect()
        })
        .unwrap_or_default();
    let sync_trigger = c.sync == SyncMode::Trigger;
    // MySQL: the old column's definition (to relax it with MODIFY) and the
    // new one's final definition (NOT NULL and the default move at the contract).
    let live_old = r.catalog.column(t, old);
    let census = column_census(r, t, old);
    let old_definition = live_old.map(|col| {
        mysql_definition(
            &col.type_sql,
            Some(col),
            col.default.as_deref(),
            census.as_ref(),
        )
    });
    let new_type_sql = c.new_type.clone().unwrap_or_default();
    // A type change: ON UPDATE follows the new type's precision, or goes.
    let new_census = census.clone().map(|mut cc| {
        if c.cast && cc.on_update.is_some() {
            cc.on_update = carry::default::on_update_for(&new_type_sql);
        }
        cc
    });
    let new_definition = mysql_definition(
        &new_type_sql,
        live_old.filter(|_| !c.cast),
        c.old_default.as_deref(),
        new_census.as_ref(),
    );
    let compare_as_text = carry::equality::compare_as_text(r, &c);
    let new_not_null = live_old.is_some_and(|col| !col.nullable);
    let carry = carry::plan(r, &c)?;
    let carried = carry::context(carry.as_ref());
    let ctx = context! {
        table => table_value(t),
        table_name,
        old, new,
        new_type => c.new_type.clone(),
        cast => c.cast,
        forward => c.forward.clone(),
        reverse => c.reverse.clone(),
        old_default => c.old_default.clone(),
        move_default => c.move_default,
        old_required => c.old_required == Some(true),
        sync => if sync_trigger { "trigger" } else { "app" },
        key,
        function => beside(t, &derived_name(&[table_name, old.as_str(), new.as_str(), "sync"])),
        trigger => derived_name(&[table_name, old.as_str(), new.as_str(), "sync"]),
        trigger_insert => beside(t, &derived_name(&[table_name, old.as_str(), new.as_str(), "sync_ins"])),
        trigger_update => beside(t, &derived_name(&[table_name, old.as_str(), new.as_str(), "sync_upd"])),
        // `EXECUTE FUNCTION` came in Postgres 11; `EXECUTE PROCEDURE` still works.
        execute_procedure => r.server_below(11, 0).is_some(),
        old_definition,
        new_definition,
        new_not_null,
        // A table with a FULLTEXT index cannot take an INSTANT column (MariaDB 1845).
        instant_ddl => super::mysql_at_least(r, (8, 0, 12), (10, 3, 2))
            && !r.catalog.table(t).is_some_and(|f| {
                f.indexes.iter().any(|i| i.method.as_deref() == Some("fulltext"))
            }),
        compare_as_text,
        ..carried
    };
    let sql = r.render(c.kind, &ctx, BLOCKS)?;
    let brief = |r: &Recipe<'_>, mode: &str| {
        r.lock(mode, &[t], Blocks::ReadsAndWrites, LockDuration::Brief)
    };

    r.effects.creates.push((t.clone(), new.clone(), 0));
    r.effects.uses.push((t.clone(), old.clone()));

    let lock = brief(r, "ACCESS EXCLUSIVE");
    let add = r.migration(
        "add_column",
        format!("Add column {new} to {t} (nullable) beside {old}"),
        sql.get("add_column"),
        Some(sql.get("drop_new_column")),
        lock,
    );
    r.step(add).table = Some(t.clone());
    r.effects.creates[0].2 = add;

    if sync_trigger {
        let lock = r.lock(
            "SHARE ROW EXCLUSIVE",
            &[t],
            Blocks::Writes,
            LockDuration::Brief,
        );
        let i = r.migration(
            "sync_trigger",
            format!("Create a trigger that keeps {new} and {old} equal on every insert and update, whichever one the writer set"),
            sql.get("sync_trigger"),
            Some(sql.get("drop_sync_trigger")),
            lock,
        );
        r.step(i).table = Some(t.clone());
    } else {
        r.app(
            "app_write_both",
            format!(
                "Write both {old} and {new} on every insert and update of {t}; keep reading {old}"
            ),
        );
    }

    let fill = r.backfill(
        "backfill",
        format!("Copy {old} into {new} for existing rows, in batches"),
        t,
        sql.get("backfill_set"),
        sql.get("backfill_pending"),
    );
    // SQLite: the batches drop the update trigger while they run, in their
    // own transaction (`Backfill::sync_triggers`). A walk over the rowid (no
    // primary key, or none known offline) keeps its final sweep: a VACUUM
    // may renumber the rowids between two runs of the walk, and no trigger
    // runs for that.
    // SQLite walks the primary key when the table has one (`plan::key`).
    let sqlite = r.dialect == Dialect::Sqlite;
    let stable_key = !sqlite
        || r.catalog
            .table(t)
            .is_some_and(|f| !f.primary_key.is_empty());
    let sqlite_trigger = (sync_trigger && sqlite)
        .then(|| derived_name(&[table_name, old.as_str(), new.as_str(), "sync_upd"]));
    if let Some(b) = r.step(fill).backfill.as_mut() {
        b.synced = sync_trigger && stable_key;
        b.sync_triggers.extend(sqlite_trigger);
    }
    r.verify(
        "verify",
        format!("No row of {t} where {new} differs from {old}"),
        sql.get("verify"),
        0,
    );
    // Postgres: a default moved to a new type is checked against it now,
    // in the reversible deploy, rather than by the irreversible contract.
    if r.dialect == Dialect::Postgres && c.cast && c.old_default.is_some() {
        let check = r.render(c.kind, &ctx, &["verify_default"])?;
        r.verify(
            "verify_default",
            format!(
                "The default of {old} ({}) is a value of {new}'s type, which takes it over at the contract",
                c.old_default.as_deref().unwrap_or_default()
            ),
            check.get("verify_default"),
            0,
        );
    }
    if let Some(carry) = carry {
        carry::emit(r, &c, carry, &ctx)?;
    }

    if sync_trigger {
        r.next_deploy();
        r.app(
            "app_switch",
            format!(
                "Read and write {new} only; stop referencing {old} (the trigger still mirrors writes to {old} for instances on the previous release)"
            ),
        );
    } else {
        // Reads switch while both columns are still written, so instances of
        // the previous release, which read the old column, never see stale values.
        r.app(
            "app_read_new",
            format!("Read {new}; keep writing both {old} and {new}"),
        );
        // New code stops writing the old column: it must accept NULL first.
        let relax = match r.dialect {
            Dialect::Postgres => c.old_required != Some(false),
            Dialect::Mysql => c.old_required == Some(true),
            Dialect::Sqlite => false,
        };
        if r.dialect == Dialect::Mysql && c.old_required.is_none() {
            r.note(format!(
                "planned offline: if {old} is NOT NULL without a default, new code must keep writing it until the contract (MySQL's MODIFY needs its full definition to relax it: plan against the database)"
            ));
        }
        if relax {
            let lock = if r.dialect == Dialect::Mysql {
                r.lock(
                    "online rebuild (ALGORITHM=INPLACE, LOCK=NONE); brief metadata locks",
                    &[t],
                    Blocks::Nothing,
                    LockDuration::Scan,
                )
            } else {
                brief(r, "ACCESS EXCLUSIVE")
            };
            let i = r.migration(
                "relax_old",
                format!("Let {old} accept NULL, so inserts that no longer write it succeed"),
                sql.get("relax_old"),
                None,
                lock,
            );
            let s = r.step(i);
            s.table = Some(t.clone());
            s.rollback_sql = sql.optional("restore_old");
        }
        r.app(
            "app_stop_writing_old",
            format!("Stop writing {old}; read and write {new} only"),
        );
    }

    // MySQL: DROP COLUMN (and the MODIFY that moves NOT NULL and the
    // default) rebuilds the table in place while reads and writes go on.
    let lock = if r.dialect == Dialect::Mysql {
        r.lock(
            "online rebuild (in place; brief metadata locks at start and end)",
            &[t],
            Blocks::Nothing,
            LockDuration::Scan,
        )
    } else {
        brief(r, "ACCESS EXCLUSIVE")
    };
    let contract = r.migration(
        "contract",
        format!(
            "Drop {}column {old} of {t}",
            if sync_trigger {
                "the sync trigger and "
            } else {
                ""
            }
        ),
        sql.get("contract"),
        None,
        lock,
    );
    let s = r.step(contract);
    s.reversible = false;
    s.table = Some(t.clone());
    r.effects.removes.push((t.clone(), old.clone(), contract));

    if r.dialect == Dialect::Sqlite {
        if c.sync == SyncMode::App && c.old_required != Some(false) {
            r.note(format!(
                "SQLite cannot drop NOT NULL in place: if {old} is NOT NULL without a default, new code must keep writing it until the contract phase"
            ));
        }
        if c.old_default.is_some() || r.catalog.table(t).is_none() {
            r.note(format!(
                "SQLite cannot give an existing column a default: after the contract, {new} has none, so inserts must supply it"
            ));
        }
    }
    Ok(())
}
