//! What happens to everything that hangs on a column when a change replaces
//! it (a rename, or a type change through a new column) or drops it: one
//! file per kind of object, each saying per dialect how it is read, carried
//! or refused, with its tests beside it.
//!
//! | kind | file | rename / type change | drop_column |
//! |---|---|---|---|
//! | index (plain, unique, composite, prefix) | [`index`] | rebuilt online for the new column | dropped with it (MySQL: by name) |
//! | unique constraint | [`unique`] | attached to the index copy (Postgres); SQLite: refused | dropped with it |
//! | primary key | [`primary_key`] | moved at the contract (Postgres); MySQL, SQLite: refused | refused (MySQL) |
//! | NOT NULL | [`not_null`] | enforced lock-safely (Postgres), moved by MODIFY (MySQL), noted (SQLite) | relaxed first |
//! | check | [`check`] | recreated NOT VALID + validated (Postgres); noted (MySQL, SQLite column check); refused (SQLite table check) | dropped with it |
//! | foreign key, both ways | [`foreign_key`] | recreated; referencing keys noted (SQLite: refused) | noted |
//! | default (MySQL: and ON UPDATE) | [`default`] | moved at the contract | — |
//! | sequence, identity | [`sequence`] | ownership / identity moved at the contract | noted |
//! | comment | [`comment`] | carried | — |
//! | column privileges | [`grant`] | granted on the new column in deploy 1 | — |
//! | trigger | [`trigger`] | refused when it names the column, else noted for UPDATE triggers | refused when it names the column |
//! | view, materialized view | [`view`] | refused | refused |
//! | rule | [`rule`] | refused | refused |
//! | generated column | [`generated`] | refused | refused |
//! | row-level security policy | [`policy`] | refused | refused |
//! | publication column list | [`publication`] | refused | refused |
//! | extended statistics | [`statistics`] | noted (dropped with the old column) | noted |
//! | anything else in `pg_depend` | [`other`] | refused, named | refused, named |
//! | type without `=` (json, xml, point) | [`equality`] | compared as text | — |
//!
//! The census these decisions read is [`crate::catalog::Census`].

mod check;
mod comment;
pub(crate) mod default;
pub(super) mod equality;
mod foreign_key;
mod generated;
mod grant;
mod index;
mod not_null;
mod other;
mod policy;
mod primary_key;
mod publication;
mod review;
mod rule;
mod sequence;
mod statistics;
mod trigger;
mod unique;
mod view;

use minijinja::Value;
use serde::Serialize;

use super::copy_column::Copy;
use super::set_not_null;
use crate::catalog::{ColumnCensus, ColumnFacts, TableFacts};
use crate::dialect::Dialect;
use crate::name::{Ident, TableName};
use crate::plan::{Blocks, LockDuration, PlanningError, Recipe, derived_name};
use review::{Fate, Subject};

/// What is carried over, decided before any SQL is rendered.
#[derive(Debug, Default)]
pub(super) struct Carry {
    indexes: Vec<CarriedIndex>,
    not_null: bool,
    checks: Vec<CarriedCheck>,
    foreign_keys: Vec<CarriedForeignKey>,
    /// Postgres: the primary key, moved to the new column at the contract.
    pub primary_key: Option<PrimaryKeyCtx>,
    /// SQLite: indexes on the old column, dropped just before it.
    pub drop_before_contract: Vec<Vec<String>>,
    /// SQLite: the old column's own foreign key, declared with the new column.
    pub inline_reference: Option<ReferenceCtx>,
    /// MySQL: the old column's indexes, foreign keys and checks, dropped
    /// with it (MySQL would otherwise shrink a composite index to the
    /// columns left, turning `UNIQUE (old, b)` into `UNIQUE (b)`; MariaDB
    /// refuses the DROP COLUMN).
    pub drop_indexes: Vec<String>,
    pub drop_foreign_keys: Vec<String>,
    pub drop_checks: Vec<String>,
    /// Postgres: a serial column's sequence, handed to the new column.
    owned_sequence: Option<sequence::OwnedSequenceCtx>,
    /// Postgres: an identity column's, recreated on the new column.
    identity: Option<sequence::IdentityCtx>,
    /// The old column's comment.
    comment: Option<String>,
    /// Privileges on the old column, granted on the new one.
    grants: Vec<grant::GrantCtx>,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct KeyCtx {
    column: String,
    /// MySQL: a key on the leading characters only.
    prefix: Option<u32>,
    descending: bool,
    nulls_first: bool,
    opclass: Option<Vec<String>>,
    collation: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct IndexCtx {
    name: String,
    qualified: Vec<String>,
    unique: bool,
    /// The access method, when not the default (btree).
    method: Option<String>,
    keys: Vec<KeyCtx>,
    include: Vec<String>,
    nulls_not_distinct: bool,
}

#[derive(Debug, Serialize)]
struct UniqueCtx {
    constraint: String,
    index: String,
    deferrable: bool,
    deferred: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct PrimaryKeyCtx {
    constraint: String,
    index: String,
}

#[derive(Debug, Serialize)]
struct CheckCtx {
    constraint: String,
    expression: String,
}

#[derive(Debug, Serialize)]
struct ForeignKeyCtx {
    constraint: String,
    columns: Vec<String>,
    parent: Vec<String>,
    parent_columns: Vec<String>,
    match_full: bool,
    on_delete: &'static str,
    on_update: &'static str,
    deferrable: bool,
    deferred: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct ReferenceCtx {
    parent: String,
    parent_columns: Vec<String>,
    on_delete: &'static str,
    on_update: &'static str,
}

#[derive(Debug)]
struct CarriedIndex {
    old: Ident,
    ctx: IndexCtx,
    unique: Option<UniqueCtx>,
    columns: String,
}

#[derive(Debug)]
struct CarriedCheck {
    old: Ident,
    ctx: CheckCtx,
    validate: bool,
}

#[derive(Debug)]
struct CarriedForeignKey {
    old: Ident,
    ctx: ForeignKeyCtx,
    parent: TableName,
    validate: bool,
}

/// A template value from a serializable context struct.
fn val<T: Serialize>(x: &T) -> Value {
    Value::from(minijinja::value::Serde(x))
}

fn parts(t: &TableName) -> Vec<String> {
    t.parts().into_iter().map(str::to_string).collect()
}

fn strings(idents: &[Ident]) -> Vec<String> {
    idents.iter().map(|i| i.as_str().to_string()).collect()
}

/// `list` with `old` replaced by `new`.
fn swap(list: &[Ident], old: &Ident, new: &Ident) -> Vec<Ident> {
    list.iter()
        .map(|c| if c == old { new.clone() } else { c.clone() })
        .collect()
}

/// A name for the copy of `object` (an index or constraint named after the
/// old column): the old column's name swapped for the new one where it
/// appears as a `_`-separated part (`users_email_key` → `users_mail_key`),
/// else the new column's name appended; numbered if already taken.
fn carried_name(object: &str, old: &Ident, new: &Ident, taken: &mut Vec<String>) -> Ident {
    let words: Vec<&str> = object.split('_').collect();
    let col: Vec<&str> = old.as_str().split('_').collect();
    let at = (0..words.len())
        .find(|&i| words[i..].starts_with(&col))
        .filter(|_| !col.is_empty());
    let base = match at {
        Some(i) => [
            words[..i].join("_"),
            new.as_str().to_string(),
            words[i + col.len()..].join("_"),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_"),
        None => format!("{object}_{new}"),
    };
    let mut name = derived_name(&[&base]);
    let mut n = 2;
    while taken.iter().any(|t| t == name.as_str()) {
        name = derived_name(&[&base, &n.to_string()]);
        n += 1;
    }
    taken.push(name.as_str().to_string());
    name
}

/// The names of the table's indexes and constraints, which copies must not
/// take. Objects on the new column are left out: they are the copies
/// themselves when the plan is made again after its first phase ran, and
/// must get the same names as the first time.
fn taken_names(facts: &TableFacts, new: &Ident) -> Vec<String> {
    let mut taken: Vec<String> = facts
        .indexes
        .iter()
        .filter(|i| !i.uses(new))
        .map(|i| i.name.as_str().to_string())
        .collect();
    let facts = TableFacts {
        uniques: facts
            .uniques
            .iter()
            .filter(|u| !u.columns.contains(new))
            .cloned()
            .collect(),
        checks: facts
            .checks
            .iter()
            .filter(|c| !c.columns.contains(new))
            .cloned()
            .collect(),
        foreign_keys: facts
            .foreign_keys
            .iter()
            .filter(|f| !f.columns.contains(new))
            .cloned()
            .collect(),
        ..TableFacts::default()
    };
    taken.extend(facts.uniques.iter().map(|u| u.name.as_str().to_string()));
    taken.extend(
        facts
            .checks
            .iter()
            .filter_map(|c| c.name.as_ref())
            .map(|n| n.as_str().to_string()),
    );
    taken.extend(
        facts
            .foreign_keys
            .iter()
            .filter_map(|f| f.name.as_ref())
            .map(|n| n.as_str().to_string()),
    );
    taken
}

/// What every kind's decision sees: the copy, the table's facts, the old
/// column's facts and census.
pub(super) struct Cx<'a> {
    pub r: &'a Recipe<'a>,
    pub c: &'a Copy<'a>,
    pub t: &'a TableName,
    pub old: &'a Ident,
    pub new: &'a Ident,
    pub facts: &'a TableFacts,
    pub column: &'a ColumnFacts,
    pub census: ColumnCensus,
}

/// Decides what to carry from `c.old` to `c.new`; `Ok(None)` when the live
/// schema does not know the table (offline: nothing is carried). Refuses,
/// before anything runs, what can be neither carried nor left behind.
pub(super) fn plan<'a>(r: &'a Recipe<'a>, c: &'a Copy<'a>) -> Result<Option<Carry>, PlanningError> {
    let (t, old, new) = (c.table, c.old, c.new);
    let Some(facts) = r.catalog.table(t) else {
        return Ok(None);
    };
    let subject = Subject {
        table: t,
        column: old,
        facts,
        fate: Fate::Replaced { by: new },
        dialect: r.dialect,
    };
    // First: a refusal must come before anything else is decided (and a
    // generated column is not among SQLite's plain columns at all).
    let reviewed = review::review(r, &subject)?;
    let Some(column) = facts.column(old) else {
        return Ok(None);
    };
    let cx = Cx {
        r,
        c,
        t,
        old,
        new,
        facts,
        column,
        census: facts.census.column(old),
    };
    let mut carry = Carry::default();
    let mut taken = taken_names(facts, new);
    match r.dialect {
        Dialect::Postgres => {
            index::postgres(&cx, &mut carry, &mut taken);
            not_null::postgres(&cx, &mut carry);
            check::postgres(&cx, &mut carry, &mut taken);
            foreign_key::postgres(&cx, &mut carry, &mut taken);
            sequence::postgres(&cx, &mut carry)?;
            grant::carry(&cx, &mut carry);
        }
        Dialect::Mysql => {
            primary_key::mysql(&cx)?;
            sequence::mysql(&cx)?;
            index::mysql(&cx, &mut carry, &mut taken);
            foreign_key::mysql(&cx, &mut carry, &mut taken);
            check::mysql(&cx, &mut carry);
            grant::carry(&cx, &mut carry);
        }
        Dialect::Sqlite => {
            primary_key::sqlite(&cx)?;
            unique::sqlite(&cx)?;
            check::sqlite_refusals(&cx)?;
            foreign_key::sqlite_refusals(&cx)?;
            index::sqlite(&cx, &mut carry, &mut taken);
            foreign_key::sqlite(&cx, &mut carry);
            check::sqlite(&cx, &mut carry);
            not_null::sqlite(&cx, &mut carry);
        }
    }
    comment::carry(&cx, &mut carry);
    carry.notes.extend(reviewed);
    Ok(Some(carry))
}

/// The same review for a column that is dropped (`drop_column`): notes, or
/// the refusal. Nothing to do offline.
pub(super) fn review_drop(
    r: &Recipe<'_>,
    table: &TableName,
    column: &Ident,
) -> Result<Vec<String>, PlanningError> {
    let Some(facts) = r.catalog.table(table) else {
        return Ok(Vec::new());
    };
    review::review(
        r,
        &Subject {
            table,
            column,
            facts,
            fate: Fate::Dropped,
            dialect: r.dialect,
        },
    )
}

/// SQLite's refusal for what its DROP COLUMN cannot drop.
fn sqlite_refusal(cx: &Cx<'_>, why: String) -> PlanningError {
    cx.r.unsupported(format!(
        "{why}, and SQLite cannot drop such a column, so the contract could not drop {}; rebuild the table with a `sql` change instead",
        cx.old
    ))
}

/// The step that validates the carried constraint `constraint` (step `id`).
fn validate_copy(r: &mut Recipe<'_>, t: &TableName, id: &str, constraint: &str, sql: String) {
    let step = r.validate(
        &format!("{id}_validate"),
        format!("Validate {constraint}: scans {t} without blocking reads or writes"),
        sql,
        t,
    );
    r.step(step).table = Some(t.clone());
}

/// The template context the carry adds to the copy's. The `carried_*`
/// values are set one at a time, for the item being rendered, and are none
/// otherwise.
pub(super) fn context(carry: Option<&Carry>) -> Value {
    minijinja::context! {
        carried_index => (),
        carried_unique => (),
        carried_check => (),
        carried_foreign_key => (),
        carried_constraint => (),
        primary_key => carry.and_then(|c| c.primary_key.as_ref()).map(val),
        drop_before_contract => carry.map(|c| c.drop_before_contract.clone()).unwrap_or_default(),
        inline_reference => carry.and_then(|c| c.inline_reference.as_ref()).map(val),
        drop_indexes => carry.map(|c| c.drop_indexes.clone()).unwrap_or_default(),
        drop_foreign_keys => carry.map(|c| c.drop_foreign_keys.clone()).unwrap_or_default(),
        drop_checks => carry.map(|c| c.drop_checks.clone()).unwrap_or_default(),
        owned_sequence => carry.and_then(|c| c.owned_sequence.as_ref()).map(val),
        identity => carry.and_then(|c| c.identity.as_ref()).map(val),
        comment => carry.and_then(|c| c.comment.clone()),
        grants => carry.map(|c| c.grants.iter().map(val).collect::<Vec<_>>()).unwrap_or_default(),
    }
}

/// Adds the steps that carry the old column's objects to the new one (after
/// the backfill is verified), and the notes about what is not carried.
pub(super) fn emit(
    r: &mut Recipe<'_>,
    c: &Copy<'_>,
    carry: Carry,
    base: &Value,
) -> Result<(), PlanningError> {
    let (t, old, new) = (c.table, c.old, c.new);
    let kind = c.kind;
    let render = |r: &Recipe<'_>, item: Value, blocks: &[&'static str]| {
        r.render(
            kind,
            &minijinja::context! { ..item, ..base.clone() },
            blocks,
        )
    };
    let constraint_blocks = &["drop_carried_constraint", "validate_carried"];
    for (k, index) in carry.indexes.iter().enumerate() {
        let n = k + 1;
        let sql = render(
            r,
            minijinja::context! { carried_index => val(&index.ctx) },
            &["carry_index", "drop_carried_index"],
        )?;
        let lock = match r.dialect {
            Dialect::Postgres => r.lock(
                "SHARE UPDATE EXCLUSIVE",
                &[t],
                Blocks::Nothing,
                LockDuration::Scan,
            ),
            Dialect::Sqlite => r.lock("", &[t], Blocks::Writes, LockDuration::Scan),
            Dialect::Mysql => r.lock(
                "online build (ALGORITHM=INPLACE, LOCK=NONE)",
                &[t],
                Blocks::Nothing,
                LockDuration::Scan,
            ),
        };
        let unique = if index.ctx.unique { "unique " } else { "" };
        let step = r.migration(
            &format!("index_{n}"),
            format!(
                "Build {unique}index {} on {t} ({}){}, a copy of {} for {new}",
                index.ctx.name,
                index.columns,
                match r.dialect {
                    Dialect::Postgres => " concurrently",
                    Dialect::Mysql => " online",
                    Dialect::Sqlite => "",
                },
                index.old
            ),
            sql.get("carry_index"),
            Some(sql.get("drop_carried_index")),
            lock,
        );
        let transactional = r.dialect == Dialect::Sqlite;
        let s = r.step(step);
        s.table = Some(t.clone());
        s.transactional = transactional;
        if let Some(u) = &index.unique {
            let sql = render(
                r,
                minijinja::context! {
                    carried_unique => val(u),
                    carried_constraint => u.constraint.as_str(),
                },
                &["carry_unique", "drop_carried_constraint"],
            )?;
            let lock = r.lock(
                "ACCESS EXCLUSIVE",
                &[t],
                Blocks::ReadsAndWrites,
                LockDuration::Brief,
            );
            let step = r.migration(
                &format!("unique_{n}"),
                format!(
                    "Attach unique constraint {} to {t} using index {} (no scan)",
                    u.constraint, u.index
                ),
                sql.get("carry_unique"),
                Some(sql.get("drop_carried_constraint")),
                lock,
            );
            r.step(step).table = Some(t.clone());
        }
    }
    if carry.not_null && r.dialect == Dialect::Postgres {
        set_not_null::enforce(r, t, new, None, None)?;
    }
    for (k, check) in carry.checks.iter().enumerate() {
        let n = k + 1;
        let sql = render(
            r,
            minijinja::context! {
                carried_check => val(&check.ctx),
                carried_constraint => check.ctx.constraint.as_str(),
            },
            &["carry_check", constraint_blocks[0], constraint_blocks[1]],
        )?;
        let lock = r.lock(
            "ACCESS EXCLUSIVE",
            &[t],
            Blocks::ReadsAndWrites,
            LockDuration::Brief,
        );
        let step = r.migration(
            &format!("check_{n}"),
            format!(
                "Add CHECK {} ({}) NOT VALID, a copy of {} for {new}: enforced for new writes, no scan",
                check.ctx.constraint, check.ctx.expression, check.old
            ),
            sql.get("carry_check"),
            Some(sql.get("drop_carried_constraint")),
            lock,
        );
        r.step(step).table = Some(t.clone());
        if check.validate {
            validate_copy(
                r,
                t,
                &format!("check_{n}"),
                &check.ctx.constraint,
                sql.get("validate_carried"),
            );
        }
    }
    for (k, fk) in carry.foreign_keys.iter().enumerate() {
        let n = k + 1;
        let sql = render(
            r,
            minijinja::context! {
                carried_foreign_key => val(&fk.ctx),
                carried_constraint => fk.ctx.constraint.as_str(),
            },
            &[
                "carry_foreign_key",
                constraint_blocks[0],
                constraint_blocks[1],
            ],
        )?;
        let (lock, how) = match r.dialect {
            Dialect::Mysql => (
                r.lock(
                    "online (ALGORITHM=INPLACE, LOCK=NONE; foreign_key_checks off: no scan)",
                    &[t, &fk.parent],
                    Blocks::Nothing,
                    LockDuration::Brief,
                ),
                "added in place without a scan (the verified copy holds the old column's checked values)",
            ),
            _ => (
                r.lock(
                    "SHARE ROW EXCLUSIVE",
                    &[t, &fk.parent],
                    Blocks::Writes,
                    LockDuration::Brief,
                ),
                "NOT VALID: checked for new writes, no scan",
            ),
        };
        let step = r.migration(
            &format!("foreign_key_{n}"),
            format!(
                "Add foreign key {} ({}) → {}, a copy of {} for {new}: {how}",
                fk.ctx.constraint,
                fk.ctx.columns.join(", "),
                fk.parent,
                fk.old
            ),
            sql.get("carry_foreign_key"),
            Some(sql.get("drop_carried_constraint")),
            lock,
        );
        r.step(step).table = Some(t.clone());
        if fk.validate {
            validate_copy(
                r,
                t,
                &format!("foreign_key_{n}"),
                &fk.ctx.constraint,
                sql.get("validate_carried"),
            );
        }
    }
    if !carry.grants.is_empty() {
        let sql = render(
            r,
            minijinja::context! {},
            &["carry_grants", "revoke_carried_grants"],
        )?;
        let lock = r.lock("", &[t], Blocks::Nothing, LockDuration::Brief);
        let step = r.migration(
            "grants",
            format!(
                "Grant on {new} the privileges granted on {old} ({}), before the application switches to it",
                carry
                    .grants
                    .iter()
                    .map(grant::GrantCtx::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            sql.get("carry_grants"),
            Some(sql.get("revoke_carried_grants")),
            lock,
        );
        r.step(step).table = Some(t.clone());
    }
    if let Some(pk) = &carry.primary_key {
        r.note(format!(
            "the primary key {} moves to {new} at the contract (ADD CONSTRAINT … PRIMARY KEY USING INDEX {}, once {old} is dropped)",
            pk.constraint, pk.index
        ));
    }
    for note in carry.notes {
        r.note(note);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{
        Catalog, CheckFacts, ColumnFacts, ForeignKeyFacts, IndexFacts, IndexKey, ReferentialAction,
        TableFacts, UniqueFacts,
    };
    use crate::plan::recipes::testing::{plan_with, shape, sql_of};

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ids(s: &[&str]) -> Vec<Ident> {
        s.iter().map(|c| id(c)).collect()
    }

    fn t(s: &str) -> TableName {
        TableName::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn col(name: &str, ty: &str, nullable: bool) -> ColumnFacts {
        ColumnFacts {
            name: id(name),
            type_sql: ty.into(),
            ty: crate::name::SqlType::parse(ty).ok(),
            nullable,
            default: None,
            charset: None,
            collation: None,
        }
    }

    fn key(c: &str) -> IndexKey {
        IndexKey {
            column: Some(id(c)),
            ..IndexKey::default()
        }
    }

    fn index(name: &str, keys: Vec<IndexKey>, used: &[&str]) -> IndexFacts {
        IndexFacts {
            name: id(name),
            unique: false,
            primary: false,
            keys,
            include: Vec::new(),
            has_expression: false,
            predicate: None,
            columns_used: ids(used),
            method: Some("btree".into()),
            valid: true,
            constraint: None,
            exclusion: false,
            nulls_not_distinct: false,
            options: Vec::new(),
            definition: Some(format!("CREATE INDEX {name} …")),
        }
    }

    fn fk(
        name: Option<&str>,
        table: &str,
        cols: &[&str],
        parent: &str,
        pcols: &[&str],
    ) -> ForeignKeyFacts {
        ForeignKeyFacts {
            name: name.map(id),
            table: t(table),
            columns: ids(cols),
            references: t(parent),
            referenced_columns: ids(pcols),
            on_delete: ReferentialAction::Cascade,
            on_update: ReferentialAction::NoAction,
            match_full: false,
            deferrable: false,
            initially_deferred: false,
            validated: true,
            declared_inline: false,
        }
    }

    /// Postgres `users`: a primary key on id; email NOT NULL with a
    /// deferrable unique constraint, a multi-column index, an expression
    /// index, a partial index, an exclusion constraint, a check, a foreign
    /// key, and a foreign key of `orders` that references it.
    fn pg_users() -> Catalog {
        let mut pkey = index("users_pkey", vec![key("id")], &["id"]);
        (pkey.unique, pkey.primary, pkey.constraint) = (true, true, Some(id("users_pkey")));
        let mut email_key = index("users_email_key", vec![key("email")], &["email"]);
        (email_key.unique, email_key.constraint) = (true, Some(id("users_email_key")));
        let mut multi = index(
            "users_name_email_idx",
            vec![
                key("name"),
                IndexKey {
                    descending: true,
                    nulls_first: true,
                    opclass: Some(t("pg_catalog.text_pattern_ops")),
                    ..key("email")
                },
            ],
            &["name", "email", "code"],
        );
        multi.include = ids(&["code"]);
        let mut lower = index("users_lower_email", vec![IndexKey::default()], &["email"]);
        lower.has_expression = true;
        let mut partial = index("users_active", vec![key("id")], &["id", "email"]);
        partial.predicate = Some("(email IS NOT NULL)".into());
        let mut excl = index("users_email_excl", vec![key("email")], &["email"]);
        (excl.exclusion, excl.constraint) = (true, Some(id("users_email_excl")));
        let facts = TableFacts {
            columns: vec![
                col("id", "bigint", false),
                col("email", "text", false),
                col("name", "text", true),
                col("code", "text", true),
            ],
            primary_key: ids(&["id"]),
            indexes: vec![email_key, excl, lower, partial, multi, pkey],
            uniques: vec![UniqueFacts {
                name: id("users_email_key"),
                index: id("users_email_key"),
                columns: ids(&["email"]),
                deferrable: true,
                initially_deferred: false,
            }],
            checks: vec![CheckFacts {
                name: Some(id("users_email_check")),
                expression: "(email <> ''::text)".into(),
                columns: ids(&["email"]),
                column: None,
                validated: true,
            }],
            foreign_keys: vec![fk(
                Some("users_email_fkey"),
                "public.users",
                &["email"],
                "public.mailboxes",
                &["address"],
            )],
            referenced_by: vec![fk(
                Some("orders_user_email_fkey"),
                "public.orders",
                &["user_email"],
                "public.users",
                &["email"],
            )],
            ..TableFacts::default()
        };
        let mut c = Catalog::offline();
        c.insert(t("users"), facts);
        c
    }

    fn plan_ok(d: Dialect, c: &Catalog, changes: &str) -> crate::plan::Plan {
        plan_with(d, c, changes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn postgres_carries_indexes_constraints_and_not_null() {
        let p = plan_ok(
            Dialect::Postgres,
            &pg_users(),
            "  - rename_column: { table: users, from: email, to: mail }\n",
        );
        assert_eq!(
            shape(&p)[0],
            vec![
                "migration:add_column",
                "migration:sync_trigger",
                "backfill:backfill",
                "verify:verify",
                "migration:index_1",
                "migration:unique_1",
                "migration:index_2",
                "verify:verify_no_nulls",
                "migration:check_not_valid",
                "migration:validate_check",
                "migration:set_not_null",
                "migration:check_1",
                "migration:check_1_validate",
                "migration:foreign_key_1",
                "migration:foreign_key_1_validate",
            ]
        );
        assert_eq!(
            sql_of(&p, "index_1"),
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"users_mail_key\"\n  ON \"users\" (\"mail\");"
        );
        let index_1 = p.steps.iter().find(|s| s.id == "1.index_1");
        assert!(index_1.is_some_and(|s| !s.transactional));
        assert!(
            sql_of(&p, "unique_1").contains(
                "ADD CONSTRAINT \"users_mail_key\" UNIQUE USING INDEX \"users_mail_key\" DEFERRABLE;"
            ),
            "{}",
            sql_of(&p, "unique_1")
        );
        assert_eq!(
            sql_of(&p, "index_2"),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"users_name_mail_idx\"\n  ON \"users\" (\"name\", \"mail\" \"pg_catalog\".\"text_pattern_ops\" DESC) INCLUDE (\"code\");"
        );
        assert!(sql_of(&p, "check_1").contains("CHECK ((\"mail\" <> ''::text)) NOT VALID"));
        assert!(sql_of(&p, "foreign_key_1").contains(
            "FOREIGN KEY (\"mail\")\n  REFERENCES \"public\".\"mailboxes\" (\"address\") ON DELETE CASCADE ON UPDATE NO ACTION NOT VALID"
        ));
        let notes: Vec<&str> = p.notes.iter().map(|n| n.text.as_str()).collect();
        for name in [
            "users_lower_email",
            "users_active",
            "users_email_excl",
            "orders_user_email_fkey",
        ] {
            assert!(
                notes.iter().any(|n| n.contains(name)),
                "{name} should be in a note: {notes:#?}"
            );
        }
        // The contract needs nothing more: the old column's objects go with it.
        assert!(!sql_of(&p, "contract").contains("PRIMARY KEY"));
    }

    #[test]
    fn planned_again_after_the_first_phase_the_copies_keep_their_names() {
        let before = plan_ok(Dialect::Postgres, &pg_users(), RENAME);
        // Phase 1 ran: mail exists, with the copies.
        let mut after = pg_users();
        let mut facts = after.table(&t("users")).cloned().unwrap_or_default();
        facts.columns.push(col("mail", "text", false));
        let mut copy = index("users_mail_key", vec![key("mail")], &["mail"]);
        (copy.unique, copy.constraint) = (true, Some(id("users_mail_key")));
        facts.indexes.push(copy);
        facts.indexes.push(index(
            "users_name_mail_idx",
            vec![key("name"), key("mail")],
            &["name", "mail", "code"],
        ));
        facts.uniques.push(UniqueFacts {
            name: id("users_mail_key"),
            index: id("users_mail_key"),
            columns: ids(&["mail"]),
            deferrable: true,
            initially_deferred: false,
        });
        facts.checks.push(CheckFacts {
            name: Some(id("users_mail_check")),
            expression: "(mail <> ''::text)".into(),
            columns: ids(&["mail"]),
            column: None,
            validated: true,
        });
        after.insert(t("users"), facts);
        let again = plan_ok(Dialect::Postgres, &after, RENAME);
        let sql = |p: &crate::plan::Plan| -> Vec<Option<String>> {
            p.steps.iter().map(|s| s.sql.clone()).collect()
        };
        assert_eq!(sql(&before), sql(&again));
    }

    #[test]
    fn the_primary_key_moves_at_the_contract() {
        let p = plan_ok(
            Dialect::Postgres,
            &pg_users(),
            "  - change_column_type: { table: users, column: id, type: numeric(20) }\n",
        );
        assert!(
            sql_of(&p, "index_1")
                .contains("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"users_pkey_id_new\"")
        );
        assert!(
            sql_of(&p, "contract").ends_with(
                "ALTER TABLE \"users\" DROP COLUMN \"id\";\n-- The copy of the primary key's index becomes the primary key.\nALTER TABLE \"users\"\n  ADD CONSTRAINT \"users_pkey\" PRIMARY KEY USING INDEX \"users_pkey_id_new\";"
            ),
            "{}",
            sql_of(&p, "contract")
        );
        // The partial index uses id too: noted.
        assert!(p.notes.iter().any(|n| n.text.contains("users_active")));
    }

    #[test]
    fn a_new_type_gets_its_own_operator_classes() {
        let p = plan_ok(
            Dialect::Postgres,
            &pg_users(),
            "  - change_column_type: { table: users, column: email, type: varchar(200) }\n",
        );
        assert!(!sql_of(&p, "index_2").contains("text_pattern_ops"));
        assert!(p.notes.iter().any(|n| n.text.contains("operator class")));
    }

    #[test]
    fn mysql_builds_copies_online_and_drops_the_originals_with_the_column() {
        let p = plan_ok(
            Dialect::Mysql,
            &pg_users(),
            "  - rename_column: { table: users, from: email, to: mail }\n",
        );
        let sql: String = p
            .steps
            .iter()
            .filter_map(|s| s.sql.as_deref())
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "ADD UNIQUE INDEX `users_mail_key` (`mail`), ALGORITHM=INPLACE, LOCK=NONE",
            "ADD INDEX `users_name_mail_idx` (`name`, `mail` DESC), ALGORITHM=INPLACE, LOCK=NONE",
            "SET SESSION foreign_key_checks = 0;\nALTER TABLE `users`\n  ADD CONSTRAINT `users_mail_fkey` FOREIGN KEY (`mail`)",
            "DROP FOREIGN KEY `users_email_fkey`,",
            "DROP INDEX `users_email_key`,",
            "DROP INDEX `users_lower_email`,",
            "DROP CONSTRAINT `users_email_check`, DROP COLUMN `email`",
        ] {
            assert!(sql.contains(needle), "no `{needle}` in:\n{sql}");
        }
        let notes: Vec<&str> = p.notes.iter().map(|n| n.text.as_str()).collect();
        for needle in [
            "users_lower_email",
            "users_email_check",
            "orders_user_email_fkey",
        ] {
            assert!(notes.iter().any(|n| n.contains(needle)), "{notes:#?}");
        }
        // Indexes and the foreign key are built outside a transaction.
        assert!(p.steps.iter().all(|s| !s.transactional));
    }

    #[test]
    fn mysql_refuses_to_move_a_primary_key() {
        let err = plan_with(
            Dialect::Mysql,
            &pg_users(),
            "  - rename_column: { table: users, from: id, to: user_id }\n",
        );
        assert!(
            err.as_ref()
                .is_err_and(|e| e.to_string().contains("part of the primary key")),
            "{err:?}"
        );
    }

    #[test]
    fn offline_nothing_is_carried() {
        let p = plan_ok(
            Dialect::Postgres,
            &Catalog::offline(),
            "  - rename_column: { table: users, from: email, to: mail }\n",
        );
        assert_eq!(shape(&p)[0].len(), 4);
    }

    fn sqlite_users(edit: impl FnOnce(&mut TableFacts)) -> Catalog {
        let mut unique = index("users_email_uq", vec![key("email")], &["email"]);
        unique.unique = true;
        let mut lower = index("users_lower_email", vec![IndexKey::default()], &["email"]);
        lower.has_expression = true;
        let mut inline = fk(None, "users", &["email"], "mailboxes", &["address"]);
        inline.declared_inline = true;
        let mut facts = TableFacts {
            columns: vec![col("id", "INTEGER", true), col("email", "TEXT", true)],
            primary_key: ids(&["id"]),
            indexes: vec![unique, lower],
            checks: vec![CheckFacts {
                name: None,
                expression: "email LIKE '%@%'".into(),
                columns: ids(&["email"]),
                column: Some(id("email")),
                validated: true,
            }],
            foreign_keys: vec![inline],
            ..TableFacts::default()
        };
        edit(&mut facts);
        let mut c = Catalog::offline();
        c.insert(t("users"), facts);
        c
    }

    const RENAME: &str = "  - rename_column: { table: users, from: email, to: mail }\n";

    #[test]
    fn sqlite_rebuilds_indexes_and_declares_the_foreign_key() {
        let p = plan_ok(Dialect::Sqlite, &sqlite_users(|_| {}), RENAME);
        assert_eq!(
            shape(&p)[0],
            vec![
                "migration:add_column",
                "migration:sync_trigger",
                "backfill:backfill",
                "verify:verify",
                "migration:index_1"
            ]
        );
        assert_eq!(
            sql_of(&p, "add_column"),
            "ALTER TABLE `users` ADD COLUMN `mail` TEXT REFERENCES `mailboxes` (`address`) ON DELETE CASCADE ON UPDATE NO ACTION;"
        );
        assert_eq!(
            sql_of(&p, "index_1"),
            "CREATE UNIQUE INDEX IF NOT EXISTS `users_mail_uq`\n  ON `users` (`mail`);"
        );
        let contract = sql_of(&p, "contract");
        assert!(
            contract.contains("DROP INDEX IF EXISTS `users_email_uq`;\nDROP INDEX IF EXISTS `users_lower_email`;\nALTER TABLE `users` DROP COLUMN `email`;"),
            "{contract}"
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.text.contains("cannot add a CHECK"))
        );
        assert!(p.notes.iter().any(|n| n.text.contains("users_lower_email")));
    }

    #[test]
    fn sqlite_refuses_what_drop_column_cannot_drop() {
        type Edit = Box<dyn FnOnce(&mut TableFacts)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "UNIQUE constraint",
                Box::new(|f| {
                    f.uniques.push(UniqueFacts {
                        name: id("sqlite_autoindex_users_1"),
                        index: id("sqlite_autoindex_users_1"),
                        columns: ids(&["email"]),
                        deferrable: false,
                        initially_deferred: false,
                    })
                }),
            ),
            ("primary key", Box::new(|f| f.primary_key = ids(&["email"]))),
            (
                "(a table constraint)",
                Box::new(|f| f.checks[0].column = None),
            ),
            (
                "table-level FOREIGN KEY",
                Box::new(|f| f.foreign_keys[0].declared_inline = false),
            ),
            (
                "orders (user_email) references users.email",
                Box::new(|f| {
                    f.referenced_by
                        .push(fk(None, "orders", &["user_email"], "users", &["email"]))
                }),
            ),
        ];
        for (needle, edit) in cases {
            match plan_with(Dialect::Sqlite, &sqlite_users(edit), RENAME) {
                Err(e) => assert!(e.to_string().contains(needle), "{e}"),
                Ok(_) => panic!("{needle}: should be refused"),
            }
        }
    }

    #[test]
    fn carried_names_swap_the_column() {
        let mut taken = vec!["users_mail_key".to_string()];
        let (old, new) = (id("email"), id("mail"));
        assert_eq!(
            carried_name("users_email_idx", &old, &new, &mut taken).as_str(),
            "users_mail_idx"
        );
        assert_eq!(
            carried_name("users_email_key", &old, &new, &mut taken).as_str(),
            "users_mail_key_2"
        );
        assert_eq!(
            carried_name("by_mailbox", &old, &new, &mut taken).as_str(),
            "by_mailbox_mail"
        );
        let (old, new) = (id("first_name"), id("given"));
        assert_eq!(
            carried_name("p_first_name_idx", &old, &new, &mut taken).as_str(),
            "p_given_idx"
        );
    }
}
