//! Lock names.

use crate::error::{Error, Result};

/// Longest accepted lock name, in bytes (64 KiB).
pub const MAX_NAME_LEN: usize = 64 * 1024;

/// Checks a lock name: any UTF-8 string of 1 to [`MAX_NAME_LEN`] bytes is
/// valid (slashes, dots, `$`, spaces, emoji and NUL included), and two
/// different strings are always two different locks.
///
/// # Errors
///
/// [`Error::InvalidName`] for an empty or oversize name.
///
/// # Examples
///
/// ```
/// # extern crate shylock_core as shylock;
/// use shylock::backend::validate_name;
///
/// assert!(validate_name("orders/42").is_ok());
/// assert!(validate_name("").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidName {
            reason: "the name is empty; give every lock a non-empty name such as \"orders/42\""
                .into(),
        });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidName {
            reason: format!(
                "the name is {} bytes long, over the limit of {MAX_NAME_LEN} bytes; use a \
                 shorter name, e.g. a hash of the resource identifier",
                name.len()
            ),
        });
    }
    Ok(())
}
