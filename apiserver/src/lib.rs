//! `berth apiserver`: a Kubernetes API server for kubectl and kube-rs clients, over a
//! revisioned key-value [`store`] (embedded by default, or etcd).

pub mod patch;
pub mod selector;
pub mod store;
