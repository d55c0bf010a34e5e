//! Fenced writes to your own documents: the AQL to add to an `UPDATE` so
//! it applies only while the writer's fencing token is not older than the
//! last one recorded on the document.

/// The bind parameter the fragments of [`FencedAql`] use (`@fence`): bind
/// the guard's fencing token to it.
pub const FENCE_BIND_VAR: &str = "fence";

/// The filter and the attribute to add to an AQL `UPDATE` of your own
/// documents. Made by [`FencedAql::new`].
///
/// Put [`filter`](Self::filter) after the `FOR` that picks the document,
/// add [`assignment`](Self::assignment) to the `WITH` object, and bind the
/// token to `@fence`: the document is updated only when its fence
/// attribute is absent, null, or at most the token, and the token is
/// recorded. ArangoDB runs the check and the write in one query on one
/// document, so a holder whose lock was lost, and then taken by a newer
/// holder who wrote the document, cannot overwrite it (the query returns
/// nothing). If another query writes the same document at the same time,
/// ArangoDB may instead fail the query with a write-write conflict (error
/// 1200): nothing was written then, and the write may be retried with the
/// same token. An equal token passes, so one holder may write many times.
/// The document must be protected by one lock name: tokens of different
/// names are not ordered.
///
/// Tested against the fake server of this crate's tests only (no ArangoDB
/// server runs in its CI); the real-server suite runs it with `ARANGO_URL`.
///
/// # Examples
///
/// ```
/// # mod shylock { pub use shylock_core::*; pub mod arango { pub use shylock_arango::*; } }
/// use shylock::arango::FencedAql;
///
/// let fence = FencedAql::new("a", "fence");
/// let aql = format!(
///     "FOR a IN accounts FILTER a._key == @key {} UPDATE a WITH {{ balance: @balance, {} }} IN accounts RETURN true",
///     fence.filter(),
///     fence.assignment(),
/// );
/// assert_eq!(
///     aql,
///     r#"FOR a IN accounts FILTER a._key == @key FILTER a["fence"] == null || a["fence"] <= @fence UPDATE a WITH { balance: @balance, "fence": @fence } IN accounts RETURN true"#
/// );
/// // bind { key, balance, fence: guard.fencing_token() }: an empty result
/// // means a newer holder wrote the document (or there is none).
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedAql {
    filter: String,
    assignment: String,
}

impl FencedAql {
    /// The fragments for the document variable `variable` (an AQL
    /// identifier of your query, written as given) and the fence attribute
    /// `attribute` (quoted as a string, so any name works).
    pub fn new(variable: &str, attribute: &str) -> Self {
        let quoted = quote(attribute);
        FencedAql {
            filter: format!(
                "FILTER {variable}[{quoted}] == null || {variable}[{quoted}] <= @{FENCE_BIND_VAR}"
            ),
            assignment: format!("{quoted}: @{FENCE_BIND_VAR}"),
        }
    }

    /// `FILTER v["attr"] == null || v["attr"] <= @fence`.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// For the `WITH` object: `"attr": @fence`.
    pub fn assignment(&self) -> &str {
        &self.assignment
    }
}

/// An AQL string literal (AQL strings take JSON's escapes).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_attribute() {
        let f = FencedAql::new("d", "we\"ird");
        assert_eq!(f.assignment(), r#""we\"ird": @fence"#);
    }
}
