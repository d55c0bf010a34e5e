//! Document keys and sort keys derived from lock names.

/// The `_key` of the document for lock `name`.
///
/// Names made only of ASCII letters, digits and `_-.@()+,=;$!*'` are used
/// as they are; other bytes are percent-encoded (`%2F` for `/`, always with
/// two uppercase hex digits). Keys that would exceed ArangoDB's 254 bytes
/// become `%h` and the lowercase hex SHA-256 digest of the name. An encoded
/// name never contains `%h` (`h` is not a hex digit), so the two forms never
/// collide, and distinct names always get distinct keys (up to SHA-256
/// collisions for very long names). Keys never contain `:`, which the
/// ArangoDB documentation reserves (SmartGraphs use it as a separator).
///
/// # Examples
///
/// ```
/// # mod shylock { pub use shylock_core::*; pub mod arango { pub use shylock_arango::*; } }
/// use shylock::arango::document_key;
///
/// assert_eq!(document_key("orders/42"), "orders%2F42");
/// assert!(document_key(&"x".repeat(1000)).starts_with("%h"));
/// ```
pub fn document_key(name: &str) -> String {
    encode_key(name, 254)
}

/// The `_key` of the document for semaphore `name`: `%s` and the name
/// encoded as [`document_key`] does (a digest past 252 bytes). No lock key
/// starts with `%s` (`s` is not a hex digit), so a semaphore never shares a
/// document with a lock.
///
/// # Examples
///
/// ```
/// # mod shylock { pub use shylock_core::*; pub mod arango { pub use shylock_arango::*; } }
/// use shylock::arango::{document_key, semaphore_key};
///
/// assert_eq!(semaphore_key("pool"), "%spool");
/// assert_ne!(semaphore_key("pool"), document_key("pool"));
/// ```
pub fn semaphore_key(name: &str) -> String {
    format!("%s{}", encode_key(name, 252))
}

/// The `_key` of the document for read/write lock `name`: `%r` and the
/// name encoded as [`document_key`] does (a digest past 252 bytes). No lock
/// or semaphore key starts with `%r` (`r` is not a hex digit), so the
/// namespaces never share a document.
///
/// # Examples
///
/// ```
/// # mod shylock { pub use shylock_core::*; pub mod arango { pub use shylock_arango::*; } }
/// use shylock::arango::{rwlock_key, semaphore_key};
///
/// assert_eq!(rwlock_key("cache"), "%rcache");
/// assert_ne!(rwlock_key("cache"), semaphore_key("cache"));
/// ```
pub fn rwlock_key(name: &str) -> String {
    format!("%r{}", encode_key(name, 252))
}

/// Percent-encodes `name`, or `%h` + its SHA-256 when that is longer than
/// `max` bytes.
fn encode_key(name: &str, max: usize) -> String {
    let mut key = String::with_capacity(name.len());
    for byte in name.bytes() {
        let plain = byte.is_ascii_alphanumeric() || b"_-.@()+,=;$!*'".contains(&byte);
        if plain {
            key.push(byte as char);
        } else {
            key.push_str(&format!("%{byte:02X}"));
        }
        if key.len() > max {
            break;
        }
    }
    if key.len() <= max {
        return key;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("%h{hex}")
}

/// The `sortKey` of lock `name`: its UTF-8 bytes in lowercase hex. Hex
/// digits compare the same under any collation, so sorting by it is
/// sorting names by their bytes, and a name prefix is a sort-key prefix.
///
/// # Examples
///
/// ```
/// # mod shylock { pub use shylock_core::*; pub mod arango { pub use shylock_arango::*; } }
/// use shylock::arango::sort_key;
///
/// assert_eq!(sort_key("a/"), "612f");
/// ```
pub fn sort_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 2);
    for byte in name.bytes() {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_distinct_and_bounded() {
        let names = [
            "a",
            "A",
            "a/b",
            "a%2Fb",
            "a:b",
            "emoji-🔒",
            "nul\0",
            "sp ace",
            "x.y",
        ];
        let keys: Vec<String> = names.iter().map(|n| document_key(n)).collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(k.len() <= 254 && !k.is_empty());
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.@()+,=;$!*'%".contains(&b)),
                "{k}"
            );
            for other in &keys[i + 1..] {
                assert_ne!(k, other);
            }
        }
        let long = "y".repeat(300);
        assert_eq!(document_key(&long).len(), "%h".len() + 64);
        // A short name spelling a digest key is encoded, not taken as is.
        let spelled = document_key(&long);
        assert_ne!(document_key(&spelled), spelled);
        assert_ne!(document_key(&long), document_key(&format!("{long}z")));
    }

    #[test]
    fn sort_keys_keep_byte_order_and_prefixes() {
        let mut names = vec!["b", "a", "B", "é", "a\0", "a/1", "ab"];
        let mut by_key = names.clone();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        by_key.sort_by_key(|n| sort_key(n));
        assert_eq!(names, by_key);
        assert!(sort_key("a/1").starts_with(&sort_key("a/")));
    }
}
