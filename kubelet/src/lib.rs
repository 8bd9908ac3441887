//! `berth kubelet`: runs the pods bound to its node through a CRI runtime (containerd),
//! registers and heartbeats the Node, and reports pod status.
//!
//! Pure parts first: [`runtime`] (the kubelet's view of the runtime, a trait with the CRI
//! implementation and a fake), [`pleg`] (pod lifecycle events as a diff of two relists),
//! [`actions`] (what a sync must do: sandbox, init containers, restarts and back-off),
//! [`status`] (the API PodStatus from the pod and the runtime state) and [`env`]
//! (container environment and `$(VAR)` expansion).

pub mod actions;
pub mod cri_runtime;
pub mod env;
pub mod node;
pub mod pleg;
pub mod prober;
pub mod run;
pub mod runtime;
pub mod server;
pub mod status;
