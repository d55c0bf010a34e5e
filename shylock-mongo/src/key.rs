//! The `_id` of a lock document.

use bson::spec::BinarySubtype;
use bson::{Binary, Bson};

/// Longest name, in bytes, kept as its own `_id`. Longer names get a
/// SHA-256 `_id` (see [`document_id`]): some MongoDB-compatible platforms
/// limit `_id` (Azure Cosmos DB for MongoDB vCore: 2 KB), and MongoDB before
/// 4.2 limits index keys to 1024 bytes.
pub const MAX_PLAIN_ID: usize = 1024;

/// The `_id` of the document for lock `name`: the name itself as a string
/// when it is at most [`MAX_PLAIN_ID`] bytes, otherwise the SHA-256 digest
/// of the name as binary data, with the full name kept in a `name` field.
/// A string never equals binary data, so a short name can never collide
/// with a long name's digest.
///
/// # Examples
///
/// ```
/// # mod shylock { pub use shylock_core::*; pub mod mongo { pub use shylock_mongo::*; } }
/// use shylock::mongo::document_id;
///
/// assert_eq!(document_id("orders/42"), bson::Bson::String("orders/42".into()));
/// assert!(matches!(document_id(&"x".repeat(2000)), bson::Bson::Binary(_)));
/// ```
pub fn document_id(name: &str) -> Bson {
    if is_hashed(name) {
        use sha2::Digest;
        Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: sha2::Sha256::digest(name.as_bytes()).to_vec(),
        })
    } else {
        Bson::String(name.to_owned())
    }
}

/// Whether `name` is stored under a digest `_id` with a `name` field.
pub(crate) fn is_hashed(name: &str) -> bool {
    name.len() > MAX_PLAIN_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_get_distinct_binary_ids() {
        let a = format!("{}a", "x".repeat(MAX_PLAIN_ID));
        let b = format!("{}b", "x".repeat(MAX_PLAIN_ID));
        assert_ne!(document_id(&a), document_id(&b));
        assert!(matches!(
            document_id(&"x".repeat(MAX_PLAIN_ID)),
            Bson::String(_)
        ));
        assert!(matches!(document_id(&a), Bson::Binary(_)));
    }
}
