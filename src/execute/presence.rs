//! What a step leaves in the catalog, and whether it is there.
//!
//! `phasegate resolve --as applied` records that a step's change is in the
//! database; it must not record something false. A step's SQL is read
//! statement by statement for the objects it creates or removes — columns,
//! indexes, triggers, named constraints, tables and views (`CREATE … INDEX |
//! TRIGGER | VIEW`, `DROP …`, `ALTER TABLE … ADD | DROP | RENAME …`, MySQL's
//! `RENAME TABLE`) — and, the last statement naming an object deciding,
//! each is looked up in the catalog (`pg_catalog`, `information_schema`,
//! `sqlite_master`). A statement it does not recognise (an `UPDATE`, a
//! `MODIFY`, a `GRANT`) adds nothing to check.

use sqlx::AssertSqlSafe;

use super::RunError;
use super::send::statements;
use crate::dialect::Dialect;
use crate::tracker::Store;

/// A kind of object a step's SQL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Column,
    Index,
    Trigger,
    Constraint,
    /// A table or a view.
    Relation,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Column => "column",
            Kind::Index => "index",
            Kind::Trigger => "trigger",
            Kind::Constraint => "constraint",
            Kind::Relation => "table or view",
        }
    }
}

/// A table, as a step names it: `(schema, name)`.
pub type Table = (Option<String>, String);

/// An object the step's SQL leaves present or absent, and the statement
/// that does so (its first line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub kind: Kind,
    /// The table the object belongs to (for a relation, its schema and name).
    pub table: Option<Table>,
    pub name: String,
    pub present: bool,
    pub statement: String,
}

impl Expect {
    fn describe(&self) -> String {
        let on = match (&self.table, self.kind) {
            (Some((_, t)), Kind::Column | Kind::Index | Kind::Constraint | Kind::Trigger) => {
                format!(" on {t}")
            }
            _ => String::new(),
        };
        format!(
            "{} {}{on} is {} (the step's `{}` has not taken effect)",
            self.kind.noun(),
            self.name,
            if self.present {
                "missing"
            } else {
                "still there"
            },
            self.statement
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An unquoted word, as written.
    Word(String),
    /// A quoted identifier's content.
    Quoted(String),
    Punct(char),
    Other,
}

fn tokens(sql: &str) -> Vec<Tok> {
    let c: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '-' && next == Some('-') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            // MySQL's executable comments (`/*! … */`, `/*M! … */`) are SQL:
            // skip only the marker (and a version number).
            let rest: String = c[i..c.len().min(i + 4)].iter().collect();
            if rest.starts_with("/*!") || rest.starts_with("/*M!") {
                i += if rest.starts_with("/*M!") { 4 } else { 3 };
                while i < c.len() && c[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i += 2;
                while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
        } else if ch == '*' && next == Some('/') {
            i += 2;
        } else if ch == '"' || ch == '`' || ch == '\'' {
            let mut s = String::new();
            i += 1;
            while i < c.len() {
                if c[i] == ch {
                    if c.get(i + 1) == Some(&ch) {
                        s.push(ch);
                        i += 2;
                        continue;
                    }
                    break;
                }
                s.push(c[i]);
                i += 1;
            }
            i += 1;
            out.push(if ch == '\'' {
                Tok::Other
            } else {
                Tok::Quoted(s)
            });
        } else if ch.is_alphanumeric() || ch == '_' || ch == '$' {
            let mut s = String::new();
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                s.push(c[i]);
                i += 1;
            }
            out.push(Tok::Word(s));
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

/// A cursor over one statement's tokens.
struct Cur<'a> {
    t: &'a [Tok],
    i: usize,
    dialect: Dialect,
}

impl Cur<'_> {
    fn is(&self, kw: &str) -> bool {
        matches!(self.t.get(self.i), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn eat(&mut self, kw: &str) -> bool {
        let yes = self.is(kw);
        if yes {
            self.i += 1;
        }
        yes
    }
    /// Skips `IF [NOT] EXISTS`.
    fn if_exists(&mut self) {
        let at = self.i;
        if self.eat("IF") {
            self.eat("NOT");
            if !self.eat("EXISTS") {
                self.i = at;
            }
        }
    }
    fn part(&mut self) -> Option<String> {
        let name = match self.t.get(self.i)? {
            Tok::Quoted(s) => s.clone(),
            // Postgres folds unquoted names to lower case.
            Tok::Word(w) if self.dialect == Dialect::Postgres => w.to_lowercase(),
            Tok::Word(w) => w.clone(),
            _ => return None,
        };
        self.i += 1;
        Some(name)
    }
    /// A name, possibly qualified: `(schema, name)`.
    fn name(&mut self) -> Option<Table> {
        let mut parts = vec![self.part()?];
        while self.t.get(self.i) == Some(&Tok::Punct('.')) {
            self.i += 1;
            parts.push(self.part()?);
        }
        let name = parts.pop()?;
        Some((parts.pop(), name))
    }
    /// Moves past the next `,` at depth 0; false at the end.
    fn next_clause(&mut self) -> bool {
        let mut depth = 0i32;
        while let Some(t) = self.t.get(self.i) {
            self.i += 1;
            match t {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth -= 1,
                Tok::Punct(',') if depth == 0 => return true,
                _ => {}
            }
        }
        false
    }
}

/// The objects `sql` (a step's SQL) leaves present or absent, the last
/// statement naming an object deciding.
pub fn expectations(dialect: Dialect, sql: &str) -> Vec<Expect> {
    let mut out: Vec<Expect> = Vec::new();
    for statement in statements(dialect, sql) {
        let first_line = statement
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let toks = tokens(&statement);
        let mut cur = Cur {
            t: &toks,
            i: 0,
            dialect,
        };
        let mut found = Vec::new();
        let mut push = |kind, table: Option<Table>, name: String, present| {
            found.push((kind, table, name, present));
        };
        if cur.eat("CREATE") {
            if cur.eat("OR") {
                cur.eat("REPLACE");
            }
            cur.eat("UNIQUE");
            cur.eat("CONSTRAINT");
            if cur.eat("INDEX") {
                cur.eat("CONCURRENTLY");
                cur.if_exists();
                if let Some((_, name)) = cur.name() {
                    let table = if cur.eat("ON") {
                        cur.eat("ONLY");
                        cur.name()
                    } else {
                        None
                    };
                    push(Kind::Index, table, name, true);
                }
            } else if cur.eat("TRIGGER") {
                cur.if_exists();
                if let Some((_, name)) = cur.name() {
                    push(Kind::Trigger, None, name, true);
                }
            } else if cur.eat("VIEW") || cur.eat("TABLE") {
                cur.if_exists();
                if let Some(t) = cur.name() {
                    push(Kind::Relation, Some(t.clone()), t.1, true);
                }
            }
        } else if cur.eat("DROP") {
            if cur.eat("TRIGGER") {
                cur.if_exists();
                if let Some((_, name)) = cur.name() {
                    push(Kind::Trigger, None, name, false);
                }
            } else if cur.eat("INDEX") {
                cur.eat("CONCURRENTLY");
                cur.if_exists();
                if let Some((schema, name)) = cur.name() {
                    push(
                        Kind::Index,
                        schema.map(|s| (Some(s), String::new())),
                        name,
                        false,
                    );
                }
            } else if cur.eat("VIEW") || cur.eat("TABLE") {
                cur.if_exists();
                if let Some(t) = cur.name() {
                    push(Kind::Relation, Some(t.clone()), t.1, false);
                }
            }
        } else if cur.eat("RENAME") && cur.eat("TABLE") {
            while let (Some(from), true, Some(to)) = (cur.name(), cur.eat("TO"), cur.name()) {
                push(Kind::Relation, Some(from.clone()), from.1, false);
                push(Kind::Relation, Some(to.clone()), to.1, true);
                if !cur.next_clause() {
                    break;
                }
            }
        } else if cur.eat("ALTER") && cur.eat("TABLE") {
            cur.if_exists();
            cur.eat("ONLY");
            if let Some(table) = cur.name() {
                loop {
                    alter_clause(&mut cur, &table, &mut push);
                    if !cur.next_clause() {
                        break;
                    }
                }
            }
        }
        for (kind, table, name, present) in found {
            out.retain(|e| !(e.kind == kind && e.name == name && e.table == table));
            out.push(Expect {
                kind,
                table,
                name,
                present,
                statement: first_line.clone(),
            });
        }
    }
    out
}

/// One clause of `ALTER TABLE table …`.
fn alter_clause(
    cur: &mut Cur<'_>,
    table: &Table,
    push: &mut impl FnMut(Kind, Option<Table>, String, bool),
) {
    let on = Some(table.clone());
    if cur.eat("ADD") {
        if cur.eat("CONSTRAINT") {
            cur.if_exists();
            if let Some((_, name)) = cur.name() {
                push(Kind::Constraint, on, name, true);
            }
        } else if cur.eat("UNIQUE") || cur.is("INDEX") || cur.is("KEY") {
            if cur.eat("INDEX") || cur.eat("KEY") {
                cur.if_exists();
                if let Some((_, name)) = cur.name() {
                    push(Kind::Index, on, name, true);
                }
            }
        } else if [
            "PRIMARY",
            "FOREIGN",
            "CHECK",
            "FULLTEXT",
            "SPATIAL",
            "PARTITION",
        ]
        .iter()
        .any(|k| cur.is(k))
        {
        } else {
            cur.eat("COLUMN");
            cur.if_exists();
            if let Some((_, name)) = cur.name() {
                push(Kind::Column, on, name, true);
            }
        }
    } else if cur.eat("DROP") {
        if cur.eat("INDEX") || cur.eat("KEY") {
            cur.if_exists();
            if let Some((_, name)) = cur.name() {
                push(Kind::Index, on, name, false);
            }
        } else if cur.eat("CONSTRAINT")
            || cur.eat("CHECK")
            || (cur.eat("FOREIGN") && cur.eat("KEY"))
        {
            cur.if_exists();
            if let Some((_, name)) = cur.name() {
                push(Kind::Constraint, on, name, false);
            }
        } else if cur.eat("COLUMN") {
            cur.if_exists();
            if let Some((_, name)) = cur.name() {
                push(Kind::Column, on, name, false);
            }
        }
    } else if cur.eat("RENAME") {
        if cur.eat("TO") {
            if let Some(to) = cur.name() {
                let to = (to.0.or(table.0.clone()), to.1);
                push(Kind::Relation, on, table.1.clone(), false);
                push(Kind::Relation, Some(to.clone()), to.1, true);
            }
        } else {
            cur.eat("COLUMN");
            if let (Some((_, from)), true, Some((_, to))) = (cur.name(), cur.eat("TO"), cur.name())
            {
                push(Kind::Column, on.clone(), from, false);
                push(Kind::Column, on, to, true);
            }
        }
    }
}

/// The SQL that counts `e` in the catalog (1 when there, 0 when not), or
/// `None` when the dialect has no way to look it up (SQLite's constraints).
fn count_sql(dialect: Dialect, e: &Expect) -> Option<String> {
    let lit = |s: &str| dialect.quote_literal(s);
    let schema = e.table.as_ref().and_then(|t| t.0.clone());
    let table = e.table.as_ref().map(|t| t.1.clone()).unwrap_or_default();
    let name = lit(&e.name);
    Some(match dialect {
        Dialect::Postgres => {
            let ns = schema.map_or("current_schema()".to_string(), |s| lit(&s));
            match e.kind {
                Kind::Column => format!(
                    "SELECT count(*) FROM information_schema.columns WHERE table_schema = {ns} AND table_name = {} AND column_name = {name}",
                    lit(&table)
                ),
                Kind::Index => format!(
                    "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = {name} AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = {ns}) AND i.indisvalid"
                ),
                Kind::Trigger => format!(
                    "SELECT count(*) FROM pg_trigger WHERE tgname = {name} AND NOT tgisinternal"
                ),
                Kind::Constraint => format!(
                    "SELECT count(*) FROM pg_constraint WHERE conname = {name} AND connamespace = (SELECT oid FROM pg_namespace WHERE nspname = {ns})"
                ),
                Kind::Relation => format!(
                    "SELECT count(*) FROM pg_class WHERE relname = {name} AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = {ns}) AND relkind IN ('r', 'p', 'v', 'm', 'f')"
                ),
            }
        }
        Dialect::Mysql => {
            let db = schema.map_or("DATABASE()".to_string(), |s| lit(&s));
            let on_table = if table.is_empty() {
                String::new()
            } else {
                format!(" AND TABLE_NAME = {}", lit(&table))
            };
            match e.kind {
                Kind::Column => format!(
                    "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {db}{on_table} AND COLUMN_NAME = {name}"
                ),
                Kind::Index => format!(
                    "SELECT count(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {db}{on_table} AND INDEX_NAME = {name}"
                ),
                Kind::Trigger => format!(
                    "SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = {name}"
                ),
                Kind::Constraint => format!(
                    "SELECT count(*) FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = {db}{on_table} AND CONSTRAINT_NAME = {name}"
                ),
                Kind::Relation => format!(
                    "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db} AND TABLE_NAME = {name}"
                ),
            }
        }
        Dialect::Sqlite => match e.kind {
            Kind::Column => format!(
                "SELECT count(*) FROM pragma_table_info({}) WHERE name = {name}",
                lit(&table)
            ),
            Kind::Index => {
                format!("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = {name}")
            }
            Kind::Trigger => format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = {name}"
            ),
            Kind::Relation => format!(
                "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = {name}"
            ),
            Kind::Constraint => return None,
        },
    })
}

/// What of `sql`'s objects the catalog does not show as the SQL leaves
/// them, each described for a message ("trigger t is missing (the step's
/// `CREATE TRIGGER …` has not taken effect)"). Empty when all agree.
pub async fn mismatches(
    store: &mut Store,
    dialect: Dialect,
    sql: &str,
) -> Result<Vec<String>, RunError> {
    let mut out = Vec::new();
    for e in expectations(dialect, sql) {
        let Some(q) = count_sql(dialect, &e) else {
            continue;
        };
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(q))
            .fetch_one(store.conn())
            .await
            .map_err(|err| store.db_error(err))?;
        if (n > 0) != e.present {
            out.push(e.describe());
        }
    }
    Ok(out)
}

/// Whether `statement` (one statement) has visibly taken effect: it
/// creates or drops at least one object, and the catalog shows every one
/// as it leaves them. A MySQL statement commits whole (one `ALTER TABLE`
/// with all its clauses), so such a statement, run again after an
/// interruption, is skipped: the guard that makes it re-runnable where the
/// server has no `IF [NOT] EXISTS` for it (MySQL 8's `ALTER TABLE … ADD
/// COLUMN`, `RENAME TABLE`).
pub async fn took_effect(
    store: &mut Store,
    dialect: Dialect,
    statement: &str,
) -> Result<bool, RunError> {
    if expectations(dialect, statement).is_empty() {
        return Ok(false);
    }
    Ok(mismatches(store, dialect, statement).await?.is_empty())
}

/// `resolve --as applied` of `step`: refused, naming each object, when the
/// catalog does not show what the step's SQL leaves (both triggers of a
/// sync step, the column an `ADD COLUMN` adds, a valid index). The way
/// out is named: finish the step by hand, or record it `--as not-applied`,
/// after which `apply` runs it again from its start (its statements are
/// written to be re-run).
pub async fn refuse_unless_present(
    store: &mut Store,
    env: &crate::config::Environment,
    plan: &str,
    step: &crate::plan::Step,
) -> Result<(), RunError> {
    let Some(sql) = step.sql.as_deref() else {
        return Ok(());
    };
    let wrong = mismatches(store, env.dialect, sql).await?;
    if wrong.is_empty() {
        return Ok(());
    }
    Err(RunError::Refused(format!(
        "step {} cannot be recorded as applied in {}: the database does not show its change: {}. Finish it by hand, or record it `phasegate resolve --env {} {plan} --step {} --as not-applied` and apply runs it again from its start",
        step.id,
        env.name,
        wrong.join("; "),
        env.name,
        step.id
    )))
}

/// `resolve --as rolled-back` of `step`, whose undo was interrupted:
/// refused, naming each object, when the catalog does not show what the
/// step's rollback SQL leaves (a trigger one `DROP TRIGGER` of two left
/// behind). The way out is `--as not-rolled-back`, after which `rollback`
/// runs the undo again from its start (its statements are written to be
/// re-run).
pub async fn refuse_unless_undone(
    store: &mut Store,
    env: &crate::config::Environment,
    plan: &str,
    step: &crate::plan::Step,
) -> Result<(), RunError> {
    let Some(sql) = step.rollback_sql.as_deref() else {
        return Ok(());
    };
    let wrong = mismatches(store, env.dialect, sql).await?;
    if wrong.is_empty() {
        return Ok(());
    }
    Err(RunError::Refused(format!(
        "step {} cannot be recorded as rolled back in {}: the database does not show its undo: {}. Finish it by hand, or record it `phasegate resolve --env {} {plan} --step {} --as not-rolled-back` and rollback runs its undo again from its start",
        step.id,
        env.name,
        wrong.join("; "),
        env.name,
        step.id
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(dialect: Dialect, sql: &str) -> Vec<String> {
        expectations(dialect, sql)
            .iter()
            .map(|e| {
                format!(
                    "{}{} {}{}",
                    if e.present { "+" } else { "-" },
                    e.kind.noun(),
                    e.table
                        .as_ref()
                        .map_or(String::new(), |t| format!("{}.", t.1)),
                    e.name
                )
            })
            .collect()
    }

    #[test]
    fn mysql_sync_trigger_step_leaves_both_triggers() {
        let sql = "DROP TRIGGER IF EXISTS `t_ins`;\nCREATE TRIGGER `t_ins` BEFORE INSERT ON `users` FOR EACH ROW\n  SET NEW.`a` = 1;\nDROP TRIGGER IF EXISTS `t_upd`;\nCREATE TRIGGER `t_upd` BEFORE UPDATE ON `users` FOR EACH ROW SET NEW.`a` = 2;";
        assert_eq!(
            short(Dialect::Mysql, sql),
            ["+trigger t_ins", "+trigger t_upd"]
        );
    }

    #[test]
    fn alter_clauses_and_executable_comments() {
        let sql = "ALTER TABLE `users` ADD COLUMN /*M! IF NOT EXISTS */ `full_name` varchar(100) NULL, ALGORITHM=INSTANT;\n\
                   ALTER TABLE `users` DROP FOREIGN KEY /*M! IF EXISTS */ `fk`, DROP INDEX /*M! IF EXISTS */ `ix`, DROP COLUMN /*M! IF EXISTS */ `name`,\n  MODIFY `full_name` varchar(100) NOT NULL;\n\
                   ALTER TABLE `users` ADD UNIQUE INDEX /*M! IF NOT EXISTS */ `u` (`a`, `b`), ALGORITHM=INPLACE, LOCK=NONE;\n\
                   ALTER TABLE `users` ADD CONSTRAINT `c` FOREIGN KEY /*M! IF NOT EXISTS */ (`a`) REFERENCES `p` (`id`);";
        assert_eq!(
            short(Dialect::Mysql, sql),
            [
                "+column users.full_name",
                "-constraint users.fk",
                "-index users.ix",
                "-column users.name",
                "+index users.u",
                "+constraint users.c"
            ]
        );
    }

    /// A rename through a view: each step's statements, read in order,
    /// leave what the catalog then shows, so `resolve --as applied` can
    /// vouch for an interrupted swap or contract (and for its rollback).
    #[test]
    fn a_rename_through_a_view_names_what_each_step_leaves() {
        let text = "name: t\nchanges:\n  - rename_column: { table: users, from: name, to: full_name, strategy: view }\n";
        let file = crate::intent::parse_plan(text, "t.yaml", "t").unwrap_or_else(|e| panic!("{e}"));
        let templates = crate::dialect::templates::Templates::builtin(Dialect::Postgres);
        let catalog = crate::catalog::Catalog::offline();
        let p = crate::plan::Planner::new(&templates, &catalog)
            .plan(&file)
            .unwrap_or_else(|e| panic!("{e}"));
        let step = |slug: &str| {
            p.steps
                .iter()
                .find(|s| s.id.ends_with(slug))
                .unwrap_or_else(|| panic!("no step {slug}"))
        };
        let (swap, contract) = (step("swap_in_view"), step("contract"));
        let final_state = |sql: &str| {
            let mut last: Vec<String> = Vec::new();
            for line in short(Dialect::Postgres, sql) {
                let object = line[1..].to_string();
                last.retain(|l| l[1..] != object);
                last.push(line);
            }
            last.sort();
            last
        };
        let up = |s: &crate::plan::Step| s.sql.clone().unwrap_or_default();
        let down = |s: &crate::plan::Step| s.rollback_sql.clone().unwrap_or_default();
        assert_eq!(
            final_state(&up(swap)),
            [
                "+table or view users.users",
                "+table or view users_phasegate_base.users_phasegate_base"
            ]
        );
        assert_eq!(
            final_state(&down(swap)),
            [
                "+table or view users.users",
                "-table or view users_phasegate_base.users_phasegate_base"
            ]
        );
        assert_eq!(
            final_state(&up(contract)),
            [
                "+column users.full_name",
                "+table or view users.users",
                "-column users.name",
                "-table or view users_phasegate_base.users_phasegate_base"
            ]
        );
        assert_eq!(
            final_state(&down(contract)),
            [
                "+column users_phasegate_base.name",
                "+table or view users.users",
                "+table or view users_phasegate_base.users_phasegate_base",
                "-column users_phasegate_base.full_name"
            ]
        );
    }

    #[test]
    fn renames_and_postgres_statements() {
        let sql = "RENAME TABLE `accounts` TO `accounts_old_view`, `users` TO `accounts`;\nDROP VIEW IF EXISTS `accounts_old_view`;";
        assert_eq!(
            short(Dialect::Mysql, sql),
            [
                "-table or view users.users",
                "+table or view accounts.accounts",
                "-table or view accounts_old_view.accounts_old_view"
            ]
        );
        let sql = "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"ix\" ON \"billing\".\"users\" (\"email\");\nALTER TABLE \"users\" RENAME COLUMN \"a\" TO \"b\";\nDROP INDEX CONCURRENTLY IF EXISTS \"old\";";
        assert_eq!(
            short(Dialect::Postgres, sql),
            [
                "+index users.ix",
                "-column users.a",
                "+column users.b",
                "-index old"
            ]
        );
    }
}
