//! The storage interface of the apiserver: a revisioned key-value store in etcd's model.
//!
//! Every successful write bumps one global revision (a `resourceVersion` is a revision).
//! Reads can be served at a past revision until it is compacted. Watches deliver every change
//! under a prefix after a given revision, in revision order, exactly once, with the previous
//! value, so the layers above can compute what a filtered watcher must see.
//!
//! Keys are `/`-separated strings such as `/registry/pods/default/web-0`; values are opaque
//! bytes (the apiserver stores JSON). Implementations: [`embedded`] (default, a crash-safe
//! write-ahead log with group commit and an in-memory MVCC index) and `etcd` (etcd v3).
//! `conformance` holds the one test suite both must pass.

use std::pin::Pin;
use std::sync::Arc;

pub mod conformance;
pub mod embedded;
pub mod etcd;

/// A global revision. Revisions start at 1 and grow by one per successful write.
pub type Revision = i64;

/// A stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// The value bytes.
    pub value: Arc<[u8]>,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A key was created (`prev` is `None`) or updated.
    Put { kv: Kv, prev: Option<Kv> },
    /// A key was deleted at `revision`; `prev` is its last value.
    Delete { prev: Kv, revision: Revision },
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// The result of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Matching keys in key order.
    pub items: Vec<Kv>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// True when `limit` cut the list short: continue after the last item's key.
    pub more: bool,
}

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// `create` of a key that exists.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key does not exist (update, delete).
    #[error("key {0} not found")]
    NotFound(String),
    /// A precondition on the key's mod revision failed; `current` is the stored value.
    #[error("key {key}: expected revision {expected}, found {}", .current.mod_revision)]
    Conflict {
        key: String,
        expected: Revision,
        current: Box<Kv>,
    },
    /// The requested revision is older than the compaction point.
    #[error("revision {requested} has been compacted (oldest available {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is in the future.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// The backend failed (I/O, network, corruption).
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Result alias of store calls.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// A stream of watch events; ends only when the store shuts down or the watcher falls
/// hopelessly behind (then the last item is an error and the caller re-lists).
pub type EventStream = Pin<Box<dyn futures_core::Stream<Item = StoreResult<Event>> + Send>>;

/// Boxed future returned by [`Store`] methods (the trait is object safe).
pub type StoreFuture<'a, T> =
    Pin<Box<dyn std::future::Future<Output = StoreResult<T>> + Send + 'a>>;

/// A revisioned key-value store. See the module docs for the model.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The latest value of `key`.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Kv>>;

    /// Keys starting with `prefix` (and strictly after `start_after`, when given), in key
    /// order, at most `limit` of them (0: no limit), as of `revision` (None: now).
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> StoreFuture<'a, ListResult>;

    /// Creates `key`; fails with `AlreadyExists` if it exists.
    fn create<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, Kv>;

    /// Replaces the value of an existing `key`. With `expected`, fails with `Conflict` unless
    /// the key's mod revision equals it. Fails with `NotFound` if the key does not exist.
    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> StoreFuture<'a, Kv>;

    /// Deletes `key` (with the same precondition as `update`); returns the deleted value and
    /// the revision of the deletion.
    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Revision>,
    ) -> StoreFuture<'a, (Kv, Revision)>;

    /// Every change under `prefix` with a revision greater than `after`, in order. Fails with
    /// `Compacted` when changes after `after` are no longer available.
    fn watch<'a>(&'a self, prefix: &'a str, after: Revision) -> StoreFuture<'a, EventStream>;

    /// The current revision.
    fn revision(&self) -> StoreFuture<'_, Revision>;

    /// Forgets history at or before `revision` (reads and watches from before it fail with
    /// `Compacted`); the latest value of each key is always kept.
    fn compact(&self, revision: Revision) -> StoreFuture<'_, ()>;
}
