//! `berth controller-manager`: the control loops that make a cluster self-healing. Each
//! module holds one controller's pure reconcile logic (desired state from observed state,
//! as actions); the runner executes the actions through the API.

pub mod daemonset;
pub mod deployment;
pub mod endpointslice;
pub mod gc;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podutil;
pub mod queue;
pub mod replicaset;
pub mod run;
