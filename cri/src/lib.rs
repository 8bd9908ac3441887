//! CRI v1 for berth: a typed async client for a container runtime (containerd) over a unix
//! socket, and an in-memory fake runtime serving the same gRPC API for fast tests.
//!
//! The generated protobuf types are re-exported as [`api`] so callers need no second
//! dependency on the bindings crate.

pub mod client;
pub mod error;
pub mod fake;
pub mod logs;

pub use client::{Client, DEFAULT_PULL_TIMEOUT, DEFAULT_TIMEOUT, socket_path};
pub use error::{Error, Result};
pub use k8s_cri::v1 as api;
