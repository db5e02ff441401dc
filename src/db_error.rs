//! Errors a database returned, with the fields the server sent kept apart.
//!
//! sqlx shows a Postgres error as its message followed by the line of the
//! server's own C source that raised it ("… at line 1196"), and drops what
//! tells the user why and what to do: DETAIL ("view v depends on column x of
//! table t"), HINT, CONTEXT and the object the error is about. [`DbError`]
//! keeps those, leaves the server's file, line and routine out, and shows
//! them the way psql does:
//!
//! ```text
//! cannot drop column x of table t because other objects depend on it (SQLSTATE 2BP01)
//!   DETAIL: view v depends on column x of table t
//!   HINT: Use DROP ... CASCADE to drop the dependent objects too.
//!   OBJECT: schema "public", table "t"
//! ```
//!
//! MySQL errors keep their number and SQLSTATE, SQLite errors their result
//! code. An error that did not come from the server (a lost connection, a
//! protocol error) is its sqlx message.

use std::fmt;

use sqlx::mysql::MySqlDatabaseError;
use sqlx::postgres::PgDatabaseError;

/// An error as the database reported it: each field the server sent, apart.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct DbError {
    /// The primary message.
    pub message: String,
    /// The SQLSTATE (Postgres, MySQL); SQLite's extended result code.
    pub code: Option<String>,
    /// MySQL's error number (`1091`).
    pub number: Option<u16>,
    /// Postgres' DETAIL: more about what went wrong.
    pub detail: Option<String>,
    /// Postgres' HINT: what to do about it.
    pub hint: Option<String>,
    /// Postgres' CONTEXT: where it happened (a function, a trigger, a statement).
    pub context: Option<String>,
    /// The schema of the object the error is about (Postgres).
    pub schema: Option<String>,
    /// The table the error is about (Postgres).
    pub table: Option<String>,
    /// The column the error is about (Postgres).
    pub column: Option<String>,
    /// The data type the error is about (Postgres).
    pub data_type: Option<String>,
    /// The constraint the error is about (Postgres).
    pub constraint: Option<String>,
    /// Which database's error this is, for how the code is shown.
    #[serde(skip)]
    source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Source {
    Postgres,
    Mysql,
    Sqlite,
    #[default]
    Other,
}

impl DbError {
    /// The fields of `e` (its own message when the server did not send it).
    pub fn from_sqlx(e: &sqlx::Error) -> DbError {
        let sqlx::Error::Database(db) = e else {
            return DbError {
                message: e.to_string(),
                ..DbError::default()
            };
        };
        let owned = |s: Option<&str>| s.map(str::to_string);
        if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
            return DbError {
                message: pg.message().to_string(),
                code: Some(pg.code().to_string()),
                detail: owned(pg.detail()),
                hint: owned(pg.hint()),
                context: owned(pg.r#where()),
                schema: owned(pg.schema()),
                table: owned(pg.table()),
                column: owned(pg.column()),
                data_type: owned(pg.data_type()),
                constraint: owned(pg.constraint()),
                source: Source::Postgres,
                ..DbError::default()
            };
        }
        if let Some(my) = db.try_downcast_ref::<MySqlDatabaseError>() {
            return DbError {
                message: my.message().to_string(),
                code: owned(my.code()),
                number: Some(my.number()),
                source: Source::Mysql,
                ..DbError::default()
            };
        }
        let source = if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
            Source::Sqlite
        } else {
            Source::Other
        };
        DbError {
            message: db.message().to_string(),
            code: db.code().map(|c| c.into_owned()),
            source,
            ..DbError::default()
        }
    }

    /// The object the error names, as `schema "s", table "t", column "c"`.
    pub fn object(&self) -> Option<String> {
        let parts: Vec<String> = [
            ("schema", &self.schema),
            ("table", &self.table),
            ("column", &self.column),
            ("type", &self.data_type),
            ("constraint", &self.constraint),
        ]
        .into_iter()
        .filter_map(|(what, name)| name.as_ref().map(|n| format!("{what} \"{n}\"")))
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

impl From<&sqlx::Error> for DbError {
    fn from(e: &sqlx::Error) -> DbError {
        DbError::from_sqlx(e)
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match (self.source, &self.code, self.number) {
            (Source::Mysql, code, Some(n)) => {
                write!(f, " (MySQL error {n}")?;
                if let Some(c) = code {
                    write!(f, ", SQLSTATE {c}")?;
                }
                f.write_str(")")?;
            }
            (Source::Sqlite, Some(c), _) => write!(f, " (SQLite code {c})")?,
            (_, Some(c), _) => write!(f, " (SQLSTATE {c})")?,
            _ => {}
        }
        let lines = [
            ("DETAIL", self.detail.clone()),
            ("HINT", self.hint.clone()),
            ("CONTEXT", self.context.clone()),
            ("OBJECT", self.object()),
        ];
        for (label, text) in lines {
            if let Some(text) = text {
                // A multi-line DETAIL (one line per dependent object) stays
                // indented under its label.
                write!(f, "\n  {label}: {}", text.replace('\n', "\n    "))?;
            }
        }
        Ok(())
    }
}

/// `e` as the user should see it: [`DbError`]'s rendering.
pub fn describe(e: &sqlx::Error) -> String {
    DbError::from_sqlx(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_field_and_no_source_line() {
        let e = DbError {
            message: "cannot drop column x of table t because other objects depend on it".into(),
            code: Some("2BP01".into()),
            detail: Some("view v depends on column x of table t\nview w depends on view v".into()),
            hint: Some("Use DROP ... CASCADE to drop the dependent objects too.".into()),
            schema: Some("public".into()),
            table: Some("t".into()),
            source: Source::Postgres,
            ..DbError::default()
        };
        assert_eq!(
            e.to_string(),
            "cannot drop column x of table t because other objects depend on it (SQLSTATE 2BP01)\n  \
             DETAIL: view v depends on column x of table t\n    view w depends on view v\n  \
             HINT: Use DROP ... CASCADE to drop the dependent objects too.\n  \
             OBJECT: schema \"public\", table \"t\""
        );
    }

    #[test]
    fn mysql_keeps_its_number_and_a_transport_error_its_text() {
        let e = DbError {
            message: "Can't DROP 'x'; check that column/key exists".into(),
            code: Some("42000".into()),
            number: Some(1091),
            source: Source::Mysql,
            ..DbError::default()
        };
        assert_eq!(
            e.to_string(),
            "Can't DROP 'x'; check that column/key exists (MySQL error 1091, SQLSTATE 42000)"
        );
        let io = sqlx::Error::Protocol("connection reset".into());
        assert_eq!(describe(&io), io.to_string());
    }
}
