//! Errors of the apiserver library outside request handling (start-up, TLS, storage
//! set-up). Request failures are Kubernetes `Status` objects: see [`crate::status`].

use std::path::{Path, PathBuf};

/// A start-up or serving failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{what} {path:?}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Creating or loading certificates failed.
    #[error("certificates: {0}")]
    Certificate(String),
    /// A flag or config file is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// TLS set-up failed.
    #[error("tls: {0}")]
    Tls(String),
    /// Binding the listener failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    /// The storage backend failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Error {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
