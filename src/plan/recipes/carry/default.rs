//! The column's default (MySQL: with `ON UPDATE` and the comment, which a
//! `MODIFY` must restate or lose).
//!
//! A default is moved to the new column at the contract, not before: while
//! both columns exist, a default on the new one would look like a value the
//! writer set, and the sync trigger would copy it over the old column
//! (a `nextval` default would also draw two numbers per insert). Rename and
//! type change alike; offline, Postgres moves whatever default the old
//! column has when the contract runs. MySQL/MariaDB: see [`mysql_extras`].

use crate::catalog::ColumnCensus;

/// MySQL/MariaDB: what a column definition restated by `MODIFY` must keep
/// beyond type, character set, collation and default: `ON UPDATE …` and the
/// comment (`information_schema.COLUMNS.EXTRA` and `COLUMN_COMMENT`).
pub(crate) fn mysql_extras(census: Option<&ColumnCensus>) -> (Option<String>, Option<String>) {
    census.map_or((None, None), |c| (c.on_update.clone(), c.comment.clone()))
}

/// The families a default and a type fall in, to tell whether a default
/// written for the old type still fits the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Number,
    Text,
    Time,
    Bool,
    Other,
}

fn type_family(ty: &str) -> Family {
    let t = ty.trim().to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or_default();
    match base {
        "smallint" | "integer" | "int" | "int2" | "int4" | "int8" | "bigint" | "numeric"
        | "decimal" | "real" | "float" | "float4" | "float8" | "double" | "tinyint"
        | "mediumint" | "serial" | "bigserial" => Family::Number,
        "text" | "varchar" | "char" | "character" | "tinytext" | "mediumtext" | "longtext"
        | "citext" => Family::Text,
        "timestamp" | "timestamptz" | "datetime" | "date" | "time" | "timetz" => Family::Time,
        "boolean" | "bool" => Family::Bool,
        _ => Family::Other,
    }
}

fn default_family(default: &str) -> Family {
    let d = default.trim().to_ascii_lowercase();
    // `'x'::text`, `(0)::bigint`: the literal before a Postgres cast.
    let literal = d.split("::").next().unwrap_or_default().trim();
    let literal = literal.trim_start_matches('(').trim_end_matches(')').trim();
    if literal.starts_with('\'') {
        return Family::Text;
    }
    if literal.parse::<f64>().is_ok() || d.starts_with("nextval(") {
        return Family::Number;
    }
    if matches!(literal, "true" | "false") {
        return Family::Bool;
    }
    if literal.starts_with("current_timestamp")
        || literal.starts_with("now(")
        || literal.starts_with("localtimestamp")
        || literal.starts_with("current_date")
    {
        return Family::Time;
    }
    Family::Other
}

/// Whether the old column's `default` can be given to a column of
/// `new_type` at a type change's contract: a number to a number type, a
/// string to a text type, a sequence to an integer type, a clock to a time
/// type, a boolean to a boolean. Anything else is left behind with a note,
/// since a default the new type refuses would make the irreversible
/// contract fail every time (Postgres: "default expression is of type …";
/// MySQL: 1067 "Invalid default value").
pub(crate) fn fits(default: &str, new_type: &str) -> bool {
    let (d, t) = (default_family(default), type_family(new_type));
    d != Family::Other && d == t
}

/// The default a type change's new column (of `new_type`) takes over from
/// the old one's `default`, or `None` when it cannot:
/// - one that [`fits`] the new type, as it is;
/// - Postgres: a string literal (`'0'::text`, `'{}'::integer[]`,
///   `'new'::text`), as the bare literal, which Postgres reads as a value
///   of the new type (an enum label, an array, a number). A verify step in
///   the first deploy checks that it is one (`CAST(… AS new_type)`), so a
///   literal the new type refuses stops the reversible deploy, not the
///   contract.
pub(crate) fn for_new_type(
    dialect: crate::dialect::Dialect,
    default: &str,
    new_type: &str,
) -> Option<String> {
    if fits(default, new_type) {
        return Some(default.to_string());
    }
    if dialect != crate::dialect::Dialect::Postgres {
        return None;
    }
    let literal = default.trim().trim_start_matches('(');
    if !literal.starts_with('\'') {
        return None;
    }
    // The literal ends at its closing quote ('' is an escaped quote).
    let bytes: Vec<char> = literal.chars().collect();
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == '\'' {
            if bytes.get(i + 1) == Some(&'\'') {
                i += 2;
                continue;
            }
            return Some(bytes[..=i].iter().collect());
        }
        i += 1;
    }
    None
}

/// MySQL/MariaDB: the `ON UPDATE` clause for a type change's new column:
/// `CURRENT_TIMESTAMP` with the new type's fractional-seconds precision
/// (the server refuses one that differs: "Invalid ON UPDATE clause"), or
/// none when the new type is not a `TIMESTAMP`/`DATETIME`.
pub(crate) fn on_update_for(new_type: &str) -> Option<String> {
    let t = new_type.trim().to_ascii_lowercase();
    if !(t.starts_with("timestamp") || t.starts_with("datetime")) {
        return None;
    }
    let precision = t
        .split_once('(')
        .and_then(|(_, rest)| rest.split(')').next())
        .and_then(|p| p.trim().parse::<u8>().ok())
        .filter(|p| *p > 0);
    Some(match precision {
        Some(p) => format!("current_timestamp({p})"),
        None => "current_timestamp".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::{fits, for_new_type, on_update_for};
    use crate::dialect::Dialect;

    #[test]
    fn postgres_string_defaults_move_as_bare_literals() {
        assert_eq!(
            for_new_type(Dialect::Postgres, "'{}'::integer[]", "bigint[]").as_deref(),
            Some("'{}'")
        );
        assert_eq!(
            for_new_type(Dialect::Postgres, "'it''s'::text", "varchar(9)").as_deref(),
            Some("'it''s'::text")
        );
        assert_eq!(
            for_new_type(Dialect::Postgres, "'new'::text", "order_status").as_deref(),
            Some("'new'")
        );
        assert_eq!(for_new_type(Dialect::Mysql, "'low'", "int"), None);
        assert_eq!(
            for_new_type(Dialect::Postgres, "gen_random_uuid()", "text"),
            None
        );
    }

    #[test]
    fn defaults_fit_types_of_their_family() {
        assert!(fits("0", "bigint"));
        assert!(fits("(0)::integer", "bigint"));
        assert!(fits("nextval('people_id_seq'::regclass)", "bigint"));
        assert!(fits("'low'::text", "varchar(10)"));
        assert!(fits("current_timestamp(3)", "timestamp(6)"));
        assert!(!fits("'0'::text", "integer"));
        assert!(!fits("'low'", "int"));
        assert!(!fits("gen_random_uuid()", "text"));
    }

    #[test]
    fn on_update_follows_the_new_precision() {
        assert_eq!(
            on_update_for("timestamp(6)").as_deref(),
            Some("current_timestamp(6)")
        );
        assert_eq!(
            on_update_for("DATETIME").as_deref(),
            Some("current_timestamp")
        );
        assert_eq!(on_update_for("bigint"), None);
    }
}
