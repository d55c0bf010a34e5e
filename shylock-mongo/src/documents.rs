//! Reading lock documents: the lease fields, checked, with an error that
//! names the document when one is missing or malformed.

use std::time::SystemTime;

use bson::{Bson, Document};
use shylock_core::{LockInfo, Result};

use crate::error::corrupt;
use crate::key::is_hashed;

pub(crate) fn fence_of(name: &str, doc: &Document) -> Result<u64> {
    let raw = match doc.get("fence") {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Double(v)) if v.is_finite() => *v as i64,
        other => {
            return Err(corrupt(&format!(
                "of {name:?} has no valid `fence` field ({other:?})"
            )))
        }
    };
    Ok(u64::try_from(raw).unwrap_or(0))
}

pub(crate) fn expires_of(name: &str, doc: &Document) -> Result<SystemTime> {
    match doc.get("expiresAt") {
        Some(Bson::DateTime(dt)) => Ok(dt.to_system_time()),
        other => Err(corrupt(&format!(
            "of {name:?} has no valid `expiresAt` date ({other:?})"
        ))),
    }
}

/// A document found under the digest `_id` of `name` must carry that name;
/// anything else is a SHA-256 collision or a foreign document.
pub(crate) fn check_name(name: &str, doc: &Document) -> Result<()> {
    if !is_hashed(name) || doc.get_str("name").ok() == Some(name) {
        return Ok(());
    }
    Err(corrupt(&format!(
        "under the digest `_id` of a long lock name has another `name` ({:?}); remove it",
        doc.get("name")
            .map(|n| n.to_string().chars().take(80).collect::<String>())
    )))
}

/// The lock name of a listed document: its string `_id`, or its `name`
/// field when the `_id` is a digest.
pub(crate) fn name_of(doc: &Document) -> Result<String> {
    match (doc.get("_id"), doc.get("name")) {
        (Some(Bson::String(name)), _) => Ok(name.clone()),
        (Some(Bson::Binary(_)), Some(Bson::String(name))) => Ok(name.clone()),
        (id, _) => Err(corrupt(&format!(
            "has neither a string `_id` nor a `name` ({id:?})"
        ))),
    }
}

pub(crate) fn info_of(name: String, doc: &Document) -> Result<LockInfo> {
    let owner = match doc.get("owner") {
        Some(Bson::String(owner)) => owner.clone(),
        other => {
            return Err(corrupt(&format!(
                "of {name:?} has no valid `owner` ({other:?})"
            )))
        }
    };
    let fence = fence_of(&name, doc)?;
    let expires_at = expires_of(&name, doc)?;
    Ok(LockInfo::new(name, owner, fence, expires_at))
}
