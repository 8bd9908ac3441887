//! The environment a berth node runs in on one machine: a network namespace of its own and a
//! private containerd inside it, both set up and torn down without leaving anything behind
//! (processes, mounts, cgroups, sockets, files).
//!
//! `berth up`, `berth bench` and the end-to-end test fixture all start nodes through this
//! crate, so there is one piece of code that knows how a node is laid out and cleaned up.

pub mod bench;
pub mod cleanup;
pub mod containerd;
pub mod error;
pub mod local;
pub mod netns;

pub use containerd::{Containerd, ContainerdConfig};
pub use error::{Error, Result};
pub use local::{LocalNode, LocalNodeConfig};
pub use netns::NetNs;
