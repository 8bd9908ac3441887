//! The error every CRI call returns, classified so that callers (the kubelet's sync loop, the
//! test fixture) can match on what happened instead of parsing messages.

use std::time::Duration;

/// A failed CRI call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime does not know the object (gRPC NotFound).
    #[error("{op}: not found: {message}")]
    NotFound { op: &'static str, message: String },
    /// The runtime cannot be reached or is shutting down (gRPC Unavailable, connect failures).
    #[error("{op}: runtime unavailable: {message}")]
    Unavailable { op: &'static str, message: String },
    /// The call did not finish within its deadline (client-side or gRPC DeadlineExceeded).
    #[error("{op}: deadline of {timeout:?} exceeded")]
    Deadline { op: &'static str, timeout: Duration },
    /// The runtime rejected the request (gRPC InvalidArgument, FailedPrecondition, OutOfRange).
    #[error("{op}: invalid request: {message}")]
    Invalid { op: &'static str, message: String },
    /// The runtime does not implement the call (gRPC Unimplemented), e.g. GetContainerEvents
    /// on containerd 1.6.
    #[error("{op}: not implemented by the runtime: {message}")]
    Unimplemented { op: &'static str, message: String },
    /// Any other failure, with the gRPC code kept for logs.
    #[error("{op}: {code:?}: {message}")]
    Other {
        op: &'static str,
        code: tonic::Code,
        message: String,
    },
    /// The endpoint string is not a usable unix socket address.
    #[error("invalid CRI endpoint {endpoint:?}: {reason}")]
    Endpoint {
        endpoint: String,
        reason: &'static str,
    },
}

/// Result alias for CRI calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Classifies a gRPC status returned by call `op`.
    pub fn from_status(op: &'static str, status: &tonic::Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::NotFound => Error::NotFound { op, message },
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Aborted => {
                Error::Unavailable { op, message }
            }
            tonic::Code::DeadlineExceeded => Error::Deadline {
                op,
                timeout: Duration::ZERO,
            },
            tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition
            | tonic::Code::OutOfRange
            | tonic::Code::AlreadyExists => Error::Invalid { op, message },
            tonic::Code::Unimplemented => Error::Unimplemented { op, message },
            code => Error::Other { op, code, message },
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for [`Error::Unimplemented`].
    pub fn is_unimplemented(&self) -> bool {
        matches!(self, Error::Unimplemented { .. })
    }

    /// True when retrying later may succeed (unavailable or timed out).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Deadline { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        let e = Error::from_status("ContainerStatus", &tonic::Status::not_found("no such id"));
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "ContainerStatus: not found: no such id");
        assert!(Error::from_status("x", &tonic::Status::unavailable("gone")).is_transient());
        assert!(matches!(
            Error::from_status("x", &tonic::Status::invalid_argument("bad")),
            Error::Invalid { .. }
        ));
        assert!(Error::from_status("x", &tonic::Status::unimplemented("no")).is_unimplemented());
        assert!(matches!(
            Error::from_status("x", &tonic::Status::internal("boom")),
            Error::Other {
                code: tonic::Code::Internal,
                ..
            }
        ));
    }
}
