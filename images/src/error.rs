//! The crate's error type.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong while building or importing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name that is not a [`Kind`](crate::Kind).
    #[error("unknown image kind {0:?} (known: busybox, pause)")]
    UnknownKind(String),
    /// The host's busybox cannot be used to build the busybox image.
    #[error("{0}")]
    Busybox(String),
    /// A file that is not a 64-bit little-endian ELF executable.
    #[error("not a 64-bit little-endian ELF file: {0}")]
    NotElf(&'static str),
    /// An I/O operation failed; `what` says which.
    #[error("{what}: {source}")]
    Io {
        /// The operation that failed.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Building an OCI document failed.
    #[error("building an OCI document: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
    /// Serialising an OCI document failed.
    #[error("serialising JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Nothing listens at the containerd address (checked before running `ctr`, which would
    /// otherwise wait for its dial timeout).
    #[error("no containerd socket at {}", .0.display())]
    NoSocket(PathBuf),
    /// An image tar to import does not exist.
    #[error("image file {} does not exist", .0.display())]
    NoFile(PathBuf),
    /// `ctr images import` exited unsuccessfully.
    #[error("ctr images import {} failed ({status}): {stderr}", file.display())]
    Import {
        /// The image tar that was being imported.
        file: PathBuf,
        /// How `ctr` exited.
        status: ExitStatus,
        /// What `ctr` wrote to standard error, trimmed.
        stderr: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an [`io::Error`] with a description of the operation, for `map_err`.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
