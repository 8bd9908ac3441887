//! The three PATCH flavours the API server accepts, all on `serde_json::Value`:
//!
//! - [`json_merge_patch`]: RFC 7386 (`application/merge-patch+json`);
//! - [`json_patch`]: RFC 6902 (`application/json-patch+json`), applied atomically;
//! - [`strategic_merge_patch`]: Kubernetes' strategic merge patch
//!   (`application/strategic-merge-patch+json`) for built-in kinds, whose list merge keys
//!   come from the data-driven table in [`schema`].
//!
//! Patches are untrusted request data: no input makes these functions panic; a patch that
//! cannot be applied is a [`PatchError`].

mod json;
mod merge;
pub mod schema;
mod strategic;

pub use json::{MAX_COPIED_BYTES, MAX_DEPTH, MAX_JSON_PATCH_OPERATIONS, json_patch};
pub use merge::json_merge_patch;
pub use schema::{ListStrategy, list_strategy};
pub use strategic::strategic_merge_patch;

use serde_json::Value;

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The JSON patch as a whole is malformed (not a list, too many operations).
    #[error("invalid JSON patch: {0}")]
    JsonPatch(String),
    /// One JSON patch operation failed; nothing was applied.
    #[error("JSON patch operation {index} ({op}) failed: {reason}")]
    Operation {
        /// The operation's index in the patch, from 0.
        index: usize,
        /// The operation's name (`add`, `remove`, ...), or `?` when missing.
        op: String,
        /// What went wrong.
        reason: String,
    },
    /// A strategic merge patch must be a JSON object.
    #[error("invalid strategic merge patch: the patch must be a JSON object")]
    NotAnObject,
    /// A strategic merge patch could not be applied at a field.
    #[error("invalid strategic merge patch at {path}: {reason}")]
    Strategic {
        /// The dotted field path (`spec.containers[]`), or `<root>`.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// JSON value equality with numbers compared by value (`1` equals `1.0`), as RFC 6902's
/// `test` requires. Object member order never matters.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => x == y,
                    _ => false,
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}
