//! What the scheduler knows about each node: the node object, the pods assigned to it
//! (bound or assumed) and the sums derived from them; and [`Snapshot`], every node's
//! [`NodeInfo`] at one moment, which one scheduling decision reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};

use super::resources::{
    Resources, is_sidecar, node_allocatable, pod_requests, pod_requests_non_zero,
};

/// The queue and cache key of a pod: `namespace/name` (namespace `default` when unset).
pub fn pod_key(pod: &Pod) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    format!("{ns}/{name}")
}

/// The node a pod is assigned to (`spec.nodeName`), if any.
pub fn pod_node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Whether a pod has finished (`Succeeded` or `Failed`) and so holds no resources.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// A pod's priority (`spec.priority`, 0 when unset).
pub fn pod_priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// A host port in use or wanted: protocol (`TCP` when unset), host IP (`0.0.0.0`, every
/// address, when unset) and port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The address bound; `0.0.0.0` binds all.
    pub host_ip: String,
    /// The port number.
    pub port: i32,
}

impl HostPort {
    /// Whether binding `self` would clash with `used`: the same protocol and port, on the same
    /// address or with either side binding every address.
    pub fn conflicts_with(&self, used: &HostPort) -> bool {
        self.protocol == used.protocol
            && self.port == used.port
            && (self.host_ip == used.host_ip
                || self.host_ip == ALL_ADDRESSES
                || used.host_ip == ALL_ADDRESSES)
    }
}

const ALL_ADDRESSES: &str = "0.0.0.0";

/// The host ports a pod binds: `hostPort > 0` on app containers and sidecars (the init
/// containers that keep running), as upstream counts them.
pub fn pod_host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c));
    sidecars
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|&hp| hp > 0)?;
            let or =
                |v: Option<&str>, d: &str| v.filter(|s| !s.is_empty()).unwrap_or(d).to_string();
            Some(HostPort {
                protocol: or(p.protocol.as_deref(), "TCP"),
                host_ip: or(p.host_ip.as_deref(), ALL_ADDRESSES),
                port,
            })
        })
        .collect()
}

/// One node and the pods assigned to it (bound or assumed), with the sums the plugins read.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node object.
    pub node: Node,
    /// The pods assigned to the node, one per key.
    pub pods: Vec<Pod>,
    /// The sum of [`pod_requests`] over `pods` (`pods` counts them).
    pub requested: Resources,
    /// The sum of [`pod_requests_non_zero`] over `pods`, for scoring.
    pub non_zero_requested: Resources,
    /// What the node offers (`status.allocatable`).
    pub allocatable: Resources,
    /// The host ports the pods bind.
    pub used_host_ports: BTreeSet<HostPort>,
}

impl NodeInfo {
    /// A node with no pods.
    pub fn new(node: Node) -> Self {
        let allocatable = node_allocatable(&node);
        NodeInfo {
            node,
            pods: Vec::new(),
            requested: Resources::ZERO,
            non_zero_requested: Resources::ZERO,
            allocatable,
            used_host_ports: BTreeSet::new(),
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    /// Replaces the node object (a watch update), keeping the pods.
    pub fn set_node(&mut self, node: Node) {
        self.allocatable = node_allocatable(&node);
        self.node = node;
    }

    /// Whether a pod with this key is counted here.
    pub fn has_pod(&self, key: &str) -> bool {
        self.pods.iter().any(|p| pod_key(p) == key)
    }

    /// Counts a pod on this node, replacing any pod with the same key.
    pub fn add_pod(&mut self, pod: Pod) {
        self.remove_pod(&pod_key(&pod));
        self.requested += pod_requests(&pod);
        self.non_zero_requested += pod_requests_non_zero(&pod);
        self.used_host_ports.extend(pod_host_ports(&pod));
        self.pods.push(pod);
    }

    /// Stops counting the pod with this key; returns it if it was here.
    pub fn remove_pod(&mut self, key: &str) -> Option<Pod> {
        let i = self.pods.iter().position(|p| pod_key(p) == key)?;
        let pod = self.pods.remove(i);
        self.requested -= pod_requests(&pod);
        self.non_zero_requested -= pod_requests_non_zero(&pod);
        // Two pods may claim the same port (bound by hand); recount rather than remove.
        self.used_host_ports = self.pods.iter().flat_map(pod_host_ports).collect();
        Some(pod)
    }
}

/// Every node's [`NodeInfo`] at one moment, ordered by node name.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    nodes: BTreeMap<String, NodeInfo>,
    /// Pod key to the node it is counted on.
    pod_nodes: HashMap<String, String>,
}

impl Snapshot {
    /// Builds a snapshot from nodes and pods. A pod counts when it is assigned
    /// (`spec.nodeName`) to one of the nodes and has not finished (`Succeeded`/`Failed`);
    /// a later pod with the same key replaces an earlier one.
    pub fn new<'a>(
        nodes: impl IntoIterator<Item = &'a Node>,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> Self {
        let mut snap = Snapshot::default();
        for node in nodes {
            snap.set_node(node.clone());
        }
        for pod in pods {
            snap.add_pod(pod.clone());
        }
        snap
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// One node.
    pub fn get(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    /// The nodes, by name.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values()
    }

    /// Adds or replaces a node, keeping the pods already counted on it.
    pub fn set_node(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.nodes.get_mut(&name) {
            Some(info) => info.set_node(node),
            None => {
                self.nodes.insert(name, NodeInfo::new(node));
            }
        }
    }

    /// Removes a node and the pods counted on it.
    pub fn remove_node(&mut self, name: &str) -> Option<NodeInfo> {
        let info = self.nodes.remove(name)?;
        self.pod_nodes.retain(|_, n| n != name);
        Some(info)
    }

    /// Counts a pod on its node (`spec.nodeName`), moving it if it was counted elsewhere.
    /// Returns false, counting nothing, when the pod is unassigned, finished or on an unknown
    /// node (any earlier copy with the same key is dropped then too).
    pub fn add_pod(&mut self, pod: Pod) -> bool {
        let key = pod_key(&pod);
        self.remove_pod(&key);
        let Some(node) = pod_node_name(&pod).map(str::to_string) else {
            return false;
        };
        if is_terminal(&pod) {
            return false;
        }
        let Some(info) = self.nodes.get_mut(&node) else {
            return false;
        };
        info.add_pod(pod);
        self.pod_nodes.insert(key, node);
        true
    }

    /// Stops counting a pod; returns it if it was counted.
    pub fn remove_pod(&mut self, key: &str) -> Option<Pod> {
        let node = self.pod_nodes.remove(key)?;
        self.nodes.get_mut(&node)?.remove_pod(key)
    }

    /// The node a pod is counted on.
    pub fn node_of(&self, key: &str) -> Option<&str> {
        self.pod_nodes.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"}}}))
        .unwrap()
    }

    fn pod(name: &str, node: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"nodeName": node, "containers": [{"name": "c",
                "ports": [{"containerPort": 80, "hostPort": 8080}],
                "resources": {"requests": {"cpu": "500m"}}}]},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn counts_assigned_live_pods_once() {
        let nodes = [node("a"), node("b")];
        let pods = [
            pod("p1", "a", "Running"),
            pod("p2", "a", "Succeeded"),
            pod("p3", "", "Pending"),
            pod("p4", "gone", "Running"),
            pod("p1", "b", "Running"),
        ];
        let snap = Snapshot::new(&nodes, &pods);
        assert_eq!(snap.len(), 2);
        assert_eq!(snap.get("a").unwrap().pods.len(), 0);
        let b = snap.get("b").unwrap();
        assert_eq!(b.requested.milli_cpu, 500);
        assert_eq!(b.requested.pods, 1);
        assert_eq!(b.non_zero_requested.memory, 200 << 20);
        assert_eq!(snap.node_of("ns/p1"), Some("b"));
        assert_eq!(
            snap.nodes().map(NodeInfo::name).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn add_and_remove_keep_sums() {
        let mut info = NodeInfo::new(node("a"));
        info.add_pod(pod("p1", "a", "Running"));
        info.add_pod(pod("p1", "a", "Running"));
        info.add_pod(pod("p2", "a", "Running"));
        assert_eq!(info.pods.len(), 2);
        assert_eq!(info.requested.milli_cpu, 1000);
        assert_eq!(info.used_host_ports.len(), 1);
        assert!(info.remove_pod("ns/p1").is_some());
        assert_eq!(info.used_host_ports.len(), 1, "p2 still binds 8080");
        assert!(info.remove_pod("ns/p2").is_some());
        assert!(info.remove_pod("ns/p2").is_none());
        assert_eq!(info.requested, Resources::ZERO);
        assert_eq!(info.non_zero_requested, Resources::ZERO);
        assert!(info.used_host_ports.is_empty());
    }

    #[test]
    fn port_conflicts() {
        let hp = |ip: &str, proto: &str, port| HostPort {
            protocol: proto.into(),
            host_ip: ip.into(),
            port,
        };
        assert!(hp("0.0.0.0", "TCP", 80).conflicts_with(&hp("10.0.0.1", "TCP", 80)));
        assert!(hp("10.0.0.1", "TCP", 80).conflicts_with(&hp("0.0.0.0", "TCP", 80)));
        assert!(!hp("10.0.0.1", "TCP", 80).conflicts_with(&hp("10.0.0.2", "TCP", 80)));
        assert!(!hp("0.0.0.0", "UDP", 80).conflicts_with(&hp("0.0.0.0", "TCP", 80)));
        assert!(!hp("0.0.0.0", "TCP", 81).conflicts_with(&hp("0.0.0.0", "TCP", 80)));
    }
}
