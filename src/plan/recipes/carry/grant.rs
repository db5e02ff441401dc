//! Privileges granted on the column itself (`GRANT SELECT (col) ON t TO
//! role`): granted on the new column in the first deploy, before the
//! application switches to it (an application role that may read only
//! some columns would otherwise fail on its first query of the new one);
//! revoked by rollback. Postgres and MySQL/MariaDB; SQLite has none.

use serde::Serialize;

use super::{Carry, Cx};

/// One privilege on the new column.
#[derive(Debug, Serialize)]
pub(super) struct GrantCtx {
    privilege: String,
    /// Postgres: the role, `None` for PUBLIC.
    role: Option<String>,
    /// MySQL: the account's user and host.
    user: Option<String>,
    host: Option<String>,
    grantable: bool,
}

impl GrantCtx {
    /// `SELECT to app`, as the plan shows it.
    pub(super) fn describe(&self) -> String {
        let who = match (&self.user, &self.host, &self.role) {
            (Some(u), Some(h), _) => format!("'{u}'@'{h}'"),
            (_, _, Some(role)) => role.clone(),
            _ => "PUBLIC".to_string(),
        };
        format!("{} to {who}", self.privilege)
    }
}

pub(super) fn carry(cx: &Cx<'_>, carry: &mut Carry) {
    for g in &cx.census.grants {
        // The privileges a column can carry; anything else is not a column grant.
        let privilege = g.privilege.to_ascii_uppercase();
        if !matches!(
            privilege.as_str(),
            "SELECT" | "INSERT" | "UPDATE" | "REFERENCES"
        ) {
            continue;
        }
        let (user, host) = match cx.r.dialect {
            crate::dialect::Dialect::Mysql => g
                .grantee
                .as_deref()
                .and_then(mysql_account)
                .map_or((None, None), |(u, h)| (Some(u), Some(h))),
            _ => (None, None),
        };
        carry.grants.push(GrantCtx {
            privilege,
            role: g.grantee.clone().filter(|_| user.is_none()),
            user,
            host,
            grantable: g.grantable,
        });
    }
}

/// `'app'@'%'` (as `information_schema` prints a grantee) → (`app`, `%`).
fn mysql_account(grantee: &str) -> Option<(String, String)> {
    let (user, host) = grantee.rsplit_once('@')?;
    let unquote = |s: &str| {
        let s = s.trim();
        s.strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .map(|s| s.replace("''", "'"))
    };
    Some((unquote(user)?, unquote(host)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn mysql_accounts_are_split_and_unquoted() {
        assert_eq!(
            super::mysql_account("'app'@'%'"),
            Some(("app".into(), "%".into()))
        );
        assert_eq!(
            super::mysql_account("'o''brien'@'10.0.0.1'"),
            Some(("o'brien".into(), "10.0.0.1".into()))
        );
        assert_eq!(super::mysql_account("nobody"), None);
    }
}
