//! `add-required-column`: a NOT NULL column added without a default, or
//! with a default that rewrites the table.
//!
//! The previous release inserts rows without the column: with no default,
//! each of its INSERTs fails (Postgres and SQLite also refuse the `ADD` on
//! a table with rows). With a volatile default (`gen_random_uuid()`,
//! `clock_timestamp()`), Postgres rewrites the table under ACCESS EXCLUSIVE
//! (ALTER TABLE, "Notes"; before Postgres 11 every default did);
//! MySQL copies the table for a non-constant default (17.12.1, "Adding a
//! column": INSTANT only for a constant default).

use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement};

use super::{Cx, Hit, Rule, SQLITE_WRITE_LOCK, shown};
use crate::dialect::Dialect;

pub const RULE: Rule = Rule {
    id: "add-required-column",
    summary: "a NOT NULL column without a default (or with a default that rewrites the table)",
    once_per_file: false,
    check,
};

fn check(cx: &Cx) -> Vec<Hit> {
    let Statement::AlterTable(a) = cx.statement else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for op in &a.operations {
        let AlterTableOperation::AddColumn { column_def, .. } = op else {
            continue;
        };
        let options = || column_def.options.iter().map(|o| &o.option);
        let not_null =
            options().any(|o| matches!(o, ColumnOption::NotNull | ColumnOption::PrimaryKey(_)));
        let default = options().find_map(|o| match o {
            ColumnOption::Default(e) => Some(e.to_string()),
            _ => None,
        });
        let generated = options().any(|o| {
            matches!(
                o,
                ColumnOption::Generated { .. } | ColumnOption::Identity(_)
            )
        });
        let serial = crate::name::SqlType::parse(&column_def.data_type.to_string())
            .is_ok_and(|t| t.is_serial());
        let column = format!("{}.{}", shown(&a.name), column_def.name);
        let instead = "the `add_column` intent with `nullable: false` and a `backfill` (`phasegate plan add-column TABLE.COL TYPE --not-null --backfill EXPR`): add it nullable, backfill in batches, then require it".to_string();
        match default {
            None if not_null && !generated && !serial => hits.push(Hit {
                message: format!("adds required column {column} without a default"),
                lock: match cx.dialect {
                    Dialect::Postgres => "ACCESS EXCLUSIVE on the table (brief when the table is empty; refused when it has rows)".to_string(),
                    Dialect::Mysql => "INSTANT or INPLACE (concurrent DML permitted); rows get the type's implicit default".to_string(),
                    Dialect::Sqlite => SQLITE_WRITE_LOCK.to_string(),
                },
                why: "the release that is running inserts rows without this column, and each such INSERT fails; on a table with rows Postgres and SQLite refuse the statement, and MySQL fills in an implicit value (0, '') that is not data".to_string(),
                instead,
            }),
            Some(d) if !cx.dialect.add_column_with_default_is_instant(&d) => hits.push(Hit {
                message: format!("adds column {column} with default `{d}`, which is evaluated row by row"),
                lock: match cx.dialect {
                    Dialect::Postgres => "ACCESS EXCLUSIVE on the table for a full rewrite (a volatile default; before Postgres 11 any default)".to_string(),
                    Dialect::Mysql => "ALGORITHM=COPY: the table is copied; concurrent DML is not permitted".to_string(),
                    Dialect::Sqlite => "refused: SQLite adds only a constant default".to_string(),
                },
                why: "the table is rewritten while no other session can read or write it, for as long as the rewrite takes".to_string(),
                instead,
            }),
            _ => {}
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::super::testing::at;
    use crate::dialect::Dialect;

    const RULE: &str = "add-required-column";

    #[test]
    fn not_null_without_default_is_found_everywhere() {
        let sql = "ALTER TABLE users ADD COLUMN email text NOT NULL;";
        for d in Dialect::ALL {
            assert_eq!(at(d, RULE, sql), vec![(1, 1)], "{d}");
        }
    }

    #[test]
    fn a_constant_default_or_a_nullable_column_is_fine() {
        let sql = "ALTER TABLE users ADD COLUMN email text NOT NULL DEFAULT '';\nALTER TABLE users ADD COLUMN bio text;\nALTER TABLE users ADD COLUMN id2 bigserial;\nALTER TABLE users ADD COLUMN at timestamptz NOT NULL DEFAULT now();";
        assert!(at(Dialect::Postgres, RULE, sql).is_empty());
    }

    #[test]
    fn a_volatile_default_rewrites() {
        let sql = "ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();";
        assert_eq!(at(Dialect::Postgres, RULE, sql), vec![(1, 1)]);
    }
}
