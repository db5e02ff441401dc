//! `type-change-rewrite`: a column's type changed in a way that rewrites
//! the table.
//!
//! Postgres: `ALTER COLUMN … TYPE` takes ACCESS EXCLUSIVE and rewrites the
//! table and its indexes, unless the old type is binary-coercible to the
//! new one (ALTER TABLE, "Notes"; the cases are
//! `Dialect::is_binary_coercible`: varchar widened or to text, numeric
//! precision raised, …). The old type is known only when a linted file
//! created the column; otherwise the change is reported, saying so. A
//! `USING` clause always rewrites. MySQL: `MODIFY`/`CHANGE` to another type
//! copies the table with concurrent DML not permitted (17.12.1, "Changing
//! the column data type"), except a VARCHAR widened within its length
//! prefix (`Dialect::mysql_varchar_widening_in_place`, utf8mb4 assumed).

use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, DataType, Ident, Statement};

use super::{Cx, Hit, Rule, key, shown};
use crate::dialect::Dialect;
use crate::lint::schema::fold;
use crate::name::SqlType;

pub const RULE: Rule = Rule {
    id: "type-change-rewrite",
    summary: "a column's type changed in a way that rewrites the table under an exclusive lock",
    once_per_file: false,
    check,
};

const INSTEAD: &str = "the `change_column_type` intent (`phasegate plan change-type TABLE.COL TYPE`): a new column kept in sync, backfilled in batches, then swapped";

fn check(cx: &Cx) -> Vec<Hit> {
    let Statement::AlterTable(a) = cx.statement else {
        return Vec::new();
    };
    let table = key(&a.name, cx.dialect);
    let mut hits = Vec::new();
    for op in &a.operations {
        let (column, ty, using): (&Ident, &DataType, bool) = match (op, cx.dialect) {
            (
                AlterTableOperation::AlterColumn {
                    column_name,
                    op:
                        AlterColumnOperation::SetDataType {
                            data_type, using, ..
                        },
                },
                Dialect::Postgres,
            ) => (column_name, data_type, using.is_some()),
            (
                AlterTableOperation::ModifyColumn {
                    col_name,
                    data_type,
                    ..
                },
                Dialect::Mysql,
            ) => (col_name, data_type, false),
            (
                AlterTableOperation::ChangeColumn {
                    old_name,
                    data_type,
                    ..
                },
                Dialect::Mysql,
            ) => (old_name, data_type, false),
            _ => continue,
        };
        let old = cx.schema.column_type(&table, &fold(column, cx.dialect));
        let new = SqlType::parse(&ty.to_string()).ok();
        let in_place = match (old, &new) {
            (Some(o), Some(n)) if !using => match cx.dialect {
                Dialect::Mysql => {
                    (o.base == n.base && o.modifiers == n.modifiers)
                        || Dialect::mysql_varchar_widening_in_place(o, n, 4)
                }
                _ => o == n || cx.dialect.is_binary_coercible(o, n),
            },
            _ => false,
        };
        if in_place {
            continue;
        }
        let from = match old {
            Some(o) => format!("from {} ", o.written),
            None => String::new(),
        };
        let unknown = if old.is_none() {
            " (phasegate did not see the column created, so it cannot tell whether the change is binary-coercible)"
        } else {
            ""
        };
        hits.push(Hit {
            message: format!("changes the type of {}.{column} {from}to {ty}{unknown}", shown(&a.name)),
            lock: match cx.dialect {
                Dialect::Mysql => "ALGORITHM=COPY: the table is copied; concurrent DML is not permitted".to_string(),
                _ => "ACCESS EXCLUSIVE on the table while it and its indexes are rewritten: reads and writes wait".to_string(),
            },
            why: "the rewrite takes as long as the table is large, and the release that is running may not read or write the new type".to_string(),
            instead: INSTEAD.to_string(),
        });
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::super::testing::at;
    use crate::dialect::Dialect;

    const RULE: &str = "type-change-rewrite";

    #[test]
    fn binary_coercible_changes_of_known_columns_are_fine() {
        let sql = "CREATE TABLE t (a varchar(10), b integer, c numeric(10,2));\nALTER TABLE t ALTER COLUMN a TYPE varchar(20);\nALTER TABLE t ALTER COLUMN a TYPE text;\nALTER TABLE t ALTER COLUMN b TYPE bigint;\nALTER TABLE t ALTER COLUMN c TYPE numeric(12,2);";
        // Changes to t run on a table the file created: nothing to report.
        assert!(at(Dialect::Postgres, RULE, sql).is_empty());
        let mut schema = crate::lint::schema::Schema::default();
        let create = "CREATE TABLE t (a varchar(10), b integer, c numeric(10,2));";
        crate::lint::lint_text("1.sql", create, Dialect::Postgres, &mut schema);
        let alter = "ALTER TABLE t ALTER COLUMN a TYPE varchar(20);\nALTER TABLE t ALTER COLUMN a TYPE text;\nALTER TABLE t ALTER COLUMN b TYPE bigint;\nALTER TABLE t ALTER COLUMN c TYPE numeric(12,2);\nALTER TABLE u ALTER COLUMN x TYPE text;";
        let found: Vec<u64> =
            crate::lint::lint_text("2.sql", alter, Dialect::Postgres, &mut schema)
                .into_iter()
                .filter(|f| f.rule == RULE)
                .map(|f| f.line)
                .collect();
        assert_eq!(found, vec![3, 5]);
    }

    #[test]
    fn mysql_modify_to_another_type_copies() {
        let sql = "ALTER TABLE t MODIFY amount bigint NOT NULL;";
        assert_eq!(at(Dialect::Mysql, RULE, sql), vec![(1, 1)]);
    }
}
