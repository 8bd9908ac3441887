//! The kubelet's view of the container runtime: what a relist returns (sandboxes and
//! containers with their state, grouped by pod uid). Filled from CRI by the runtime
//! client; built by hand in tests of the pure logic.

use std::collections::BTreeMap;

/// Labels the kubelet puts on sandboxes and containers (upstream's names), by which a
/// relist maps runtime objects back to pods and containers.
pub mod labels {
    /// Pod name.
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    /// Pod namespace.
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// Pod uid.
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    /// Container name.
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
}

/// State of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SandboxState {
    /// Running, with its network.
    Ready,
    /// Stopped or broken.
    NotReady,
}

/// One pod sandbox as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Runtime id.
    pub id: String,
    /// Attempt number (incremented each time the kubelet recreates the sandbox).
    pub attempt: u32,
    /// State.
    pub state: SandboxState,
    /// Pod IP, if the network is set up.
    pub ip: Option<String>,
    /// Creation time, nanoseconds since the epoch.
    pub created_at: i64,
}

/// State of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited,
    /// The runtime does not know.
    Unknown,
}

/// One container as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Runtime id.
    pub id: String,
    /// Sandbox id.
    pub sandbox_id: String,
    /// Container name in the pod spec.
    pub name: String,
    /// Attempt number: how many times this container was restarted before this instance.
    pub attempt: u32,
    /// Image as requested.
    pub image: String,
    /// Resolved image reference (digest).
    pub image_ref: String,
    /// State.
    pub state: ContainerState,
    /// Creation, start and finish times, nanoseconds since the epoch (0: not yet).
    pub created_at: i64,
    /// Start time.
    pub started_at: i64,
    /// Finish time.
    pub finished_at: i64,
    /// Exit code (for Exited).
    pub exit_code: i32,
    /// Reason (`Completed`, `Error`, `OOMKilled`).
    pub reason: String,
    /// Message (e.g. the termination message).
    pub message: String,
}

/// Everything the runtime has for one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRuntime {
    /// Pod uid.
    pub uid: String,
    /// Pod name and namespace, from the labels.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Sandboxes, newest first.
    pub sandboxes: Vec<Sandbox>,
    /// Containers of all sandboxes, newest first.
    pub containers: Vec<Container>,
}

/// A relist: every pod the runtime knows, by uid.
pub type Relist = BTreeMap<String, PodRuntime>;
