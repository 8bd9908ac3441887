//! `berth apiserver`: a Kubernetes API server for kubectl and kube-rs clients, over a
//! revisioned key-value [`store`] (embedded by default, or etcd).

pub mod admission;
pub mod alloc;
pub mod auth;
pub mod certs;
pub mod codec;
pub mod discovery;
pub mod error;
pub mod handlers;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod proxy;
pub mod registry;
pub mod request;
pub mod server;
pub mod status;
pub mod store;
pub mod strict;
pub mod table;
pub mod watchcache;

pub use error::{Error, Result};
pub use kubeutil::selector;
