//! Per-kind behaviour on write (defaulting, validation, allocation), like kube-apiserver's
//! registry strategies. The store calls these under its write lock right before it commits, so a
//! strategy that succeeded is never followed by a failed write: there is nothing to roll back
//! except within the strategy itself.

use serde_json::Value;

use super::errors::ApiError;

/// Facts about the write a strategy may need.
#[derive(Clone, Debug, Default)]
pub struct WriteCtx {
    /// `dryRun=All`: validate and default, but change no allocator state.
    pub dry_run: bool,
    /// The write targets the `status` subresource (spec changes were already discarded).
    pub status_only: bool,
}

pub trait Strategy: Send + Sync {
    /// Default, validate and allocate for a new object (metadata is already filled in).
    fn create(&self, obj: &mut Value, ctx: &WriteCtx) -> Result<(), ApiError>;
    /// Default, validate and re-allocate for an update of `old` to `new`.
    fn update(&self, old: &Value, new: &mut Value, ctx: &WriteCtx) -> Result<(), ApiError>;
    /// The object is really gone (last finalizer removed): release what it held.
    fn delete(&self, old: &Value, ctx: &WriteCtx);
}
