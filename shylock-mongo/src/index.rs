//! The TTL index on `expiresAt`, which lets MongoDB delete lock documents
//! long expired, and what to say when the server refuses it.

use std::time::Duration;

use bson::{doc, Document};
use mongodb::error::ErrorKind as DriverKind;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use shylock_core::{Error, ErrorKind, Result};

use crate::error::{error_code, kind_of, mongo_error, retry_rate_limited};

/// Creates the TTL index (idempotent, safe for many processes starting at
/// once): documents go `grace` after their `expiresAt`.
pub(crate) async fn create_ttl_index(
    collection: &Collection<Document>,
    namespace: &str,
    grace: Duration,
) -> Result<()> {
    let index = IndexModel::builder()
        .keys(doc! { "expiresAt": 1 })
        .options(
            IndexOptions::builder()
                .name("shylock_expiresAt_ttl".to_owned())
                .expire_after(grace)
                .build(),
        )
        .build();
    retry_rate_limited(|| collection.create_index(index.clone()))
        .await
        .map(|_| ())
        .map_err(|e| index_error(namespace, e))
}

/// The error for a failed TTL index creation, with what to do about it.
fn index_error(namespace: &str, error: mongodb::error::Error) -> Error {
    let hint = index_hint(&error);
    let mut err = mongo_error(&format!("creating the TTL index on {namespace}"), error);
    if let (Some(hint), Error::Backend { message, kind, .. }) = (hint, &mut err) {
        message.push_str("; ");
        message.push_str(hint);
        if *kind == ErrorKind::Other {
            *kind = ErrorKind::Misconfigured;
        }
    }
    err
}

/// What to do about a TTL index the server refused, chosen by the error's
/// kind: `None` when the server was not reached or did not finish (the
/// connection's own hint applies then, never an index hint), and an index
/// hint only for the server's answer to `createIndexes`.
fn index_hint(error: &mongodb::error::Error) -> Option<&'static str> {
    if !matches!(&*error.kind, DriverKind::Command(_) | DriverKind::Write(_)) {
        return None;
    }
    match kind_of(error) {
        ErrorKind::Unavailable | ErrorKind::TimedOut => return None,
        ErrorKind::Unauthenticated => {
            return Some(
                "check the user may create indexes on this collection, or build with \
                 create_indexes(false)",
            )
        }
        _ => {}
    }
    Some(match error_code(error) {
        Some(85 | 86) => {
            "an index on expiresAt already exists with other options or another name: keep \
             its grace (set ttl_grace to match), change it with collMod, or drop it"
        }
        // CannotCreateIndex, BadValue, CommandNotSupported: what platforms
        // that restrict TTL indexes answer.
        Some(67 | 2 | 115) => {
            "the platform may restrict TTL indexes (e.g. Cosmos DB allows them only on _ts \
             without a capability): build with create_indexes(false) and remove old lock \
             documents yourself"
        }
        _ => "check the user may create indexes, or build with create_indexes(false)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_error(code: i32) -> mongodb::error::Error {
        let command = bson::from_document(doc! {
            "code": code, "codeName": "Test", "errmsg": "refused by the test"
        })
        .unwrap();
        mongodb::error::Error::from(DriverKind::Command(command))
    }

    #[test]
    fn refused_connections_get_no_index_hint() {
        let refused = mongodb::error::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(index_hint(&refused), None);
        let message = index_error("app.shylock", refused).to_string();
        assert!(message.contains("the connection failed"), "{message}");
        assert!(!message.contains("Cosmos"), "{message}");
        assert!(!message.contains("TTL indexes"), "{message}");
    }

    #[test]
    fn unavailable_servers_get_no_index_hint() {
        // Not primary, shutting down, rate limited, maxTimeMS expired.
        for code in [10107, 91, 11600, 16500, 50] {
            assert_eq!(index_hint(&command_error(code)), None, "code {code}");
        }
    }

    #[test]
    fn only_an_index_refusal_gets_the_ttl_platform_hint() {
        for code in [67, 2, 115] {
            let message = index_error("app.shylock", command_error(code)).to_string();
            assert!(message.contains("restrict TTL indexes"), "{message}");
        }
        let conflict = index_hint(&command_error(85)).unwrap();
        assert!(conflict.contains("already exists"), "{conflict}");
        let unauthorized = index_hint(&command_error(13)).unwrap();
        assert!(
            unauthorized.contains("may create indexes"),
            "{unauthorized}"
        );
        assert!(!unauthorized.contains("Cosmos"), "{unauthorized}");
        let other = index_hint(&command_error(12345)).unwrap();
        assert!(!other.contains("Cosmos"), "{other}");
    }
}
