//! Pod lifecycle events (the kubelet's PLEG) as a pure diff of two relists.
//!
//! The kubelet periodically relists the runtime and compares the result with the previous
//! relist. Every container whose state moved produces an event naming its pod, so that only
//! the pods with events need a sync. The mapping from an (old, new) container state pair
//! follows the generic relisting PLEG of upstream:
//!
//! | old state            | new state | events                               |
//! |----------------------|-----------|--------------------------------------|
//! | same as new          | any       | none                                 |
//! | anything else        | running   | `ContainerStarted`                   |
//! | anything else        | exited    | `ContainerDied`                      |
//! | anything else        | created or unknown | `ContainerChanged`          |
//! | exited               | absent    | `ContainerRemoved`                   |
//! | running, created, unknown | absent | `ContainerDied`, `ContainerRemoved` |
//!
//! A container that disappears without having been seen exited first also gets a
//! `ContainerDied`, so that a consumer waiting for the death of a container never misses it
//! (upstream does the same). Sandboxes produce one `SandboxChanged` when they appear,
//! disappear, or change state or IP.
//!
//! Order is deterministic: by pod uid, then within a pod the sandbox events (by sandbox id)
//! before the container events (by container id); the two events of one disappearing
//! container come as died then removed.

use std::collections::{BTreeMap, BTreeSet};

use crate::runtime::{ContainerState, PodRuntime, Relist, Sandbox};

/// One change seen between two relists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PodLifecycleEvent {
    /// The container is now running.
    ContainerStarted {
        /// Pod uid.
        pod_uid: String,
        /// Runtime id of the container.
        container_id: String,
    },
    /// The container has exited (or vanished while not seen exited).
    ContainerDied {
        /// Pod uid.
        pod_uid: String,
        /// Runtime id of the container.
        container_id: String,
    },
    /// The container no longer exists in the runtime.
    ContainerRemoved {
        /// Pod uid.
        pod_uid: String,
        /// Runtime id of the container.
        container_id: String,
    },
    /// The container moved to another state (created, unknown).
    ContainerChanged {
        /// Pod uid.
        pod_uid: String,
        /// Runtime id of the container.
        container_id: String,
    },
    /// A sandbox appeared, disappeared, or changed state or IP.
    SandboxChanged {
        /// Pod uid.
        pod_uid: String,
        /// Runtime id of the sandbox.
        sandbox_id: String,
    },
}

impl PodLifecycleEvent {
    /// The uid of the pod the event is about.
    pub fn pod_uid(&self) -> &str {
        match self {
            Self::ContainerStarted { pod_uid, .. }
            | Self::ContainerDied { pod_uid, .. }
            | Self::ContainerRemoved { pod_uid, .. }
            | Self::ContainerChanged { pod_uid, .. }
            | Self::SandboxChanged { pod_uid, .. } => pod_uid,
        }
    }

    /// The runtime id of the container or sandbox the event is about.
    pub fn object_id(&self) -> &str {
        match self {
            Self::ContainerStarted { container_id, .. }
            | Self::ContainerDied { container_id, .. }
            | Self::ContainerRemoved { container_id, .. }
            | Self::ContainerChanged { container_id, .. } => container_id,
            Self::SandboxChanged { sandbox_id, .. } => sandbox_id,
        }
    }
}

/// The events that turn `old` into `new`; empty when nothing changed.
pub fn relist_diff(old: &Relist, new: &Relist) -> Vec<PodLifecycleEvent> {
    let uids: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut events = Vec::new();
    for uid in uids {
        pod_diff(uid, old.get(uid), new.get(uid), &mut events);
    }
    events
}

/// The uids of the pods named by `events`.
pub fn pods_with_events(events: &[PodLifecycleEvent]) -> BTreeSet<String> {
    events.iter().map(|e| e.pod_uid().to_string()).collect()
}

fn pod_diff(
    uid: &str,
    old: Option<&PodRuntime>,
    new: Option<&PodRuntime>,
    out: &mut Vec<PodLifecycleEvent>,
) {
    // Sandboxes: (state, ip) by id.
    let (old_sb, new_sb) = (sandboxes_by_id(old), sandboxes_by_id(new));
    let sb_ids: BTreeSet<&str> = old_sb.keys().chain(new_sb.keys()).copied().collect();
    for id in sb_ids {
        let before = old_sb.get(id).map(|s| (s.state, s.ip.as_deref()));
        let after = new_sb.get(id).map(|s| (s.state, s.ip.as_deref()));
        if before != after {
            out.push(PodLifecycleEvent::SandboxChanged {
                pod_uid: uid.to_string(),
                sandbox_id: id.to_string(),
            });
        }
    }

    // Containers: state by id.
    let (old_c, new_c) = (states_by_id(old), states_by_id(new));
    let ids: BTreeSet<&str> = old_c.keys().chain(new_c.keys()).copied().collect();
    for id in ids {
        container_events(uid, id, old_c.get(id).copied(), new_c.get(id).copied(), out);
    }
}

fn sandboxes_by_id(p: Option<&PodRuntime>) -> BTreeMap<&str, &Sandbox> {
    p.map(|p| p.sandboxes.iter().map(|s| (s.id.as_str(), s)).collect())
        .unwrap_or_default()
}

fn states_by_id(p: Option<&PodRuntime>) -> BTreeMap<&str, ContainerState> {
    p.map(|p| {
        p.containers
            .iter()
            .map(|c| (c.id.as_str(), c.state))
            .collect()
    })
    .unwrap_or_default()
}

fn container_events(
    uid: &str,
    id: &str,
    old: Option<ContainerState>,
    new: Option<ContainerState>,
    out: &mut Vec<PodLifecycleEvent>,
) {
    if old == new {
        return;
    }
    let pod_uid = uid.to_string();
    let container_id = id.to_string();
    match new {
        Some(ContainerState::Running) => out.push(PodLifecycleEvent::ContainerStarted {
            pod_uid,
            container_id,
        }),
        Some(ContainerState::Exited) => out.push(PodLifecycleEvent::ContainerDied {
            pod_uid,
            container_id,
        }),
        Some(ContainerState::Created | ContainerState::Unknown) => {
            out.push(PodLifecycleEvent::ContainerChanged {
                pod_uid,
                container_id,
            })
        }
        None => {
            if old != Some(ContainerState::Exited) {
                out.push(PodLifecycleEvent::ContainerDied {
                    pod_uid: pod_uid.clone(),
                    container_id: container_id.clone(),
                });
            }
            out.push(PodLifecycleEvent::ContainerRemoved {
                pod_uid,
                container_id,
            });
        }
    }
}
