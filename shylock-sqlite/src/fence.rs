//! Fenced writes to your own tables: the SQL to add to an `UPDATE` so it
//! applies only while the writer's fencing token is not older than the
//! last one recorded on the row.

/// The named parameter the fragments of [`FencedSql`] use: bind the guard's
/// fencing token to it (as `i64`).
pub const FENCE_PARAM: &str = ":fence";

/// The predicate and assignment that fence an `UPDATE` of your own table on
/// an integer column (nullable: `NULL` is "no fence yet"). Made by
/// [`FencedSql::column`].
///
/// Add [`predicate`](Self::predicate) to the `WHERE` clause and
/// [`assignment`](Self::assignment) to the `SET` list, and bind the token to
/// `:fence`: the row is updated only when its fence is `NULL` or at most
/// the token, and the token is recorded. SQLite runs the check and the
/// write as one statement, so a holder whose lock was lost, and then taken
/// by a newer holder who wrote the row, cannot overwrite it (0 rows
/// changed). An equal token passes, so one holder may write a row many
/// times. The row must be protected by one lock name: tokens of different
/// names are not ordered.
///
/// # Examples
///
/// ```
/// # mod shylock { pub use shylock_core::*; pub mod sqlite { pub use shylock_sqlite::*; } }
/// use shylock::sqlite::FencedSql;
///
/// let fence = FencedSql::column("fence");
/// let sql = format!(
///     "UPDATE accounts SET balance = balance - :amount, {} WHERE id = :id AND {}",
///     fence.assignment(),
///     fence.predicate(),
/// );
/// assert_eq!(
///     sql,
///     r#"UPDATE accounts SET balance = balance - :amount, "fence" = :fence WHERE id = :id AND ("fence" IS NULL OR "fence" <= :fence)"#
/// );
/// // conn.execute(&sql, rusqlite::named_params! {
/// //     ":amount": 10, ":id": 42, ":fence": guard.fencing_token() as i64,
/// // })? == 1  // false: a newer holder wrote, or no such row
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedSql {
    predicate: String,
    assignment: String,
}

impl FencedSql {
    /// The fragments for the fence column `column` (quoted as an SQL
    /// identifier, so any name works).
    pub fn column(column: &str) -> Self {
        let quoted = format!("\"{}\"", column.replace('"', "\"\""));
        FencedSql {
            predicate: format!("({quoted} IS NULL OR {quoted} <= {FENCE_PARAM})"),
            assignment: format!("{quoted} = {FENCE_PARAM}"),
        }
    }

    /// For the `WHERE` clause: `("col" IS NULL OR "col" <= :fence)`.
    pub fn predicate(&self) -> &str {
        &self.predicate
    }

    /// For the `SET` list: `"col" = :fence`.
    pub fn assignment(&self) -> &str {
        &self.assignment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_column() {
        let f = FencedSql::column("we\"ird");
        assert_eq!(f.assignment(), "\"we\"\"ird\" = :fence");
    }
}
