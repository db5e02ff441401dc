//! What a statement does to the lock timeout, and the timeout in force as a
//! file runs.
//!
//! Postgres ("SET": "The effects of SET LOCAL last only till the end of the
//! current transaction"; outside a transaction block it only warns and has
//! no effect; "Client Connection Defaults": a `lock_timeout` of zero "turns
//! this off"; `RESET` and `SET … TO DEFAULT` put back the default, which is
//! zero). MySQL ("System Variables", `lock_wait_timeout`: 1 to 31536000
//! seconds, a smaller value is clamped to 1; the default is a year, so
//! `DEFAULT` sets no useful timeout; `LOCAL` is a synonym of `SESSION`, and
//! `SET GLOBAL` does not change the running session). SQLite: `PRAGMA
//! busy_timeout = 0` turns the busy handler off.

use sqlparser::ast::{ContextModifier, Reset, Set, Statement};

use crate::dialect::Dialect;

/// A statement's effect on the lock timeout: whether it lasts only to the
/// end of the transaction (`SET LOCAL` on Postgres), and whether a timeout
/// is in force after it (`false`: zero, `DEFAULT`, `RESET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    pub local: bool,
    pub on: bool,
}

fn names(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Postgres => &["lock_timeout"],
        Dialect::Mysql => &["lock_wait_timeout", "innodb_lock_wait_timeout"],
        Dialect::Sqlite => &["busy_timeout"],
    }
}

fn named(name: &str, dialect: Dialect) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    names(dialect).iter().any(|n| last.eq_ignore_ascii_case(n))
}

/// Whether a value turns the timeout on: not `DEFAULT`, and (except on
/// MySQL, which clamps to 1 s) not zero (`0`, `'0'`, `'0s'`, `'0ms'`, …).
fn turns_on(text: &str, dialect: Dialect) -> bool {
    let t = text.trim().trim_matches(|c| c == '\'' || c == '"').trim();
    if t.eq_ignore_ascii_case("default") {
        return false;
    }
    if dialect == Dialect::Mysql {
        return true;
    }
    let digits: String = t
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let zero = !digits.is_empty() && digits.chars().all(|c| c == '0' || c == '.');
    !zero
}

/// The statement's effect on the lock timeout, or `None` when it has none.
pub fn effect(statement: &Statement, dialect: Dialect) -> Option<Effect> {
    match statement {
        Statement::Set(Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        }) if named(&variable.to_string(), dialect) => {
            if matches!(scope, Some(ContextModifier::Global)) {
                return None;
            }
            let value = values
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            Some(Effect {
                local: dialect == Dialect::Postgres
                    && matches!(scope, Some(ContextModifier::Local)),
                on: turns_on(&value, dialect),
            })
        }
        Statement::Reset(r) => match &r.reset {
            Reset::ALL => Some(Effect {
                local: false,
                on: false,
            }),
            Reset::ConfigurationParameter(name) if named(&name.to_string(), dialect) => {
                Some(Effect {
                    local: false,
                    on: false,
                })
            }
            _ => None,
        },
        Statement::Pragma { name, value, .. } if named(&name.to_string(), dialect) => {
            Some(Effect {
                local: false,
                on: value
                    .as_ref()
                    .is_none_or(|v| turns_on(&v.to_string(), dialect)),
            })
        }
        Statement::Query(_) => {
            let text = statement.to_string().to_ascii_lowercase();
            let name = names(dialect)
                .iter()
                .find(|n| text.contains(&format!("set_config('{n}'")))?;
            let rest = text.split(&format!("set_config('{name}'")).nth(1)?;
            let mut args = rest.splitn(3, ',').skip(1);
            let value = args.next().unwrap_or("");
            let local = args
                .next()
                .is_some_and(|a| a.trim_start().starts_with("true"));
            Some(Effect {
                local,
                on: turns_on(value, dialect),
            })
        }
        _ => None,
    }
}

/// The lock timeout as a file runs: the session's, and the transaction's
/// own (`SET LOCAL`) while its transaction is open.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tracker {
    session: bool,
    local: Option<bool>,
}

impl Tracker {
    /// Whether a timeout is in force now.
    pub fn in_force(&self) -> bool {
        self.local.unwrap_or(self.session)
    }

    /// Applies a statement that ran, `in_transaction` or not.
    pub fn observe(&mut self, statement: &Statement, dialect: Dialect, in_transaction: bool) {
        match statement {
            Statement::Commit { .. } | Statement::Rollback { .. } => self.local = None,
            _ => {}
        }
        let Some(e) = effect(statement, dialect) else {
            return;
        };
        if e.local {
            if in_transaction {
                self.local = Some(e.on);
            }
        } else {
            self.session = e.on;
            self.local = None;
        }
    }

    /// The runner's transaction (or the file) ended: `SET LOCAL` is gone.
    pub fn end_transaction(&mut self) {
        self.local = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn run(sql: &str, in_tx: bool) -> bool {
        let mut t = Tracker::default();
        for s in Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses") {
            t.observe(&s, Dialect::Postgres, in_tx);
        }
        t.in_force()
    }

    #[test]
    fn zero_default_reset_and_local_outside_a_transaction_set_no_timeout() {
        assert!(run("SET lock_timeout = '2s'", false));
        assert!(!run("SET lock_timeout = 0", false));
        assert!(!run("SET lock_timeout = '0ms'", false));
        assert!(!run("SET lock_timeout = '2s'; RESET lock_timeout", false));
        assert!(!run("SET lock_timeout = '2s'; RESET ALL", false));
        assert!(!run("SET lock_timeout TO DEFAULT", false));
        assert!(!run("SET LOCAL lock_timeout = '2s'", false));
        assert!(run("SET LOCAL lock_timeout = '2s'", true));
        assert!(!run("SET LOCAL lock_timeout = '2s'; COMMIT", true));
        assert!(run("SELECT set_config('lock_timeout', '2s', false)", false));
        assert!(!run("SELECT set_config('lock_timeout', '0', false)", false));
    }
}
