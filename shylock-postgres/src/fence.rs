//! Fenced writes to your own tables: the SQL to add to an `UPDATE` so it
//! applies only while the writer's fencing token is not older than the
//! last one recorded on the row.

/// The predicate and assignment that fence an `UPDATE` of your own table on
/// an `int8` column (nullable: `NULL` is "no fence yet"). Made by
/// [`FencedSql::column`].
///
/// Add [`predicate`](Self::predicate) to the `WHERE` clause and
/// [`assignment`](Self::assignment) to the `SET` list, and bind the guard's
/// fencing token (as `i64`) to the placeholder you chose (`$n`): the row is
/// updated only when its fence is `NULL` or at most the token, and the token
/// is recorded. PostgreSQL re-checks the predicate on the newest version of
/// the row after waiting for a concurrent writer (read committed), so the
/// check and the write are one atomic step: a holder whose lock was lost,
/// and then taken by a newer holder who wrote the row, cannot overwrite it
/// (0 rows changed). An equal token passes, so one holder may write a row
/// many times. The row must be protected by one lock name: tokens of
/// different names are not ordered.
///
/// The tokens of this backend come from one sequence: they fit `int8` and
/// increase per name, but are not consecutive.
///
/// # Examples
///
/// ```
/// # mod shylock { pub use shylock_core::*; pub mod postgres { pub use shylock_postgres::*; } }
/// use shylock::postgres::FencedSql;
///
/// let fence = FencedSql::column("fence", 3);
/// let sql = format!(
///     "UPDATE accounts SET balance = balance - $1, {} WHERE id = $2 AND {}",
///     fence.assignment(),
///     fence.predicate(),
/// );
/// assert_eq!(
///     sql,
///     r#"UPDATE accounts SET balance = balance - $1, "fence" = $3::int8 WHERE id = $2 AND ("fence" IS NULL OR "fence" <= $3::int8)"#
/// );
/// // sqlx::query(&sql).bind(10_i64).bind(42_i64).bind(guard.fencing_token() as i64)
/// //     .execute(&pool).await?.rows_affected() == 1  // false: a newer holder wrote, or no such row
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedSql {
    predicate: String,
    assignment: String,
}

impl FencedSql {
    /// The fragments for the fence column `column` (quoted as an SQL
    /// identifier, so any name works), with the token bound to placeholder
    /// `$placeholder` (1-based, as PostgreSQL numbers them; `0` is taken
    /// as `1`).
    pub fn column(column: &str, placeholder: u16) -> Self {
        let quoted = format!("\"{}\"", column.replace('"', "\"\""));
        let param = format!("${}::int8", placeholder.max(1));
        FencedSql {
            predicate: format!("({quoted} IS NULL OR {quoted} <= {param})"),
            assignment: format!("{quoted} = {param}"),
        }
    }

    /// For the `WHERE` clause: `("col" IS NULL OR "col" <= $n::int8)`.
    pub fn predicate(&self) -> &str {
        &self.predicate
    }

    /// For the `SET` list: `"col" = $n::int8`.
    pub fn assignment(&self) -> &str {
        &self.assignment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_column_and_numbers_the_placeholder() {
        let f = FencedSql::column("we\"ird", 0);
        assert_eq!(f.assignment(), "\"we\"\"ird\" = $1::int8");
        assert_eq!(
            f.predicate(),
            "(\"we\"\"ird\" IS NULL OR \"we\"\"ird\" <= $1::int8)"
        );
    }
}
