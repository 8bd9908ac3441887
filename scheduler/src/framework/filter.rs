//! Filter plugins: whether a pod may run on a node at all. Each returns `Ok(())` or the
//! reasons it rejects the node, in upstream's wording, so that a [`FitError`] reads like
//! kube-scheduler's. They run in upstream's default order and a node's reasons come from
//! the first plugin that rejects it.
//!
//! # Nodes that are not ready
//!
//! Upstream's scheduler has no readiness filter: the node lifecycle controller taints a
//! node whose `Ready` condition is not `True` (`node.kubernetes.io/not-ready` when `False`,
//! `node.kubernetes.io/unreachable` when `Unknown`) and whose pressure conditions are `True`
//! (`memory-pressure`, `disk-pressure`, `pid-pressure`, `network-unavailable`), all with
//! effect `NoSchedule`, and TaintToleration does the rest. berth does not rely on such a
//! controller running: [`effective_taints`] adds the taint the controller would add when the
//! node does not carry it already, so a not-ready node is rejected with upstream's message
//! (`node(s) had untolerated taint {node.kubernetes.io/not-ready: }`) and pods that tolerate
//! the taint (DaemonSet-style `operator: Exists`) still land there, exactly as upstream. A
//! node that has never reported a `Ready` condition counts as not ready. There is no separate
//! `node(s) were not ready` reason; that wording belonged to a predicate upstream removed.
//!
//! [`FitError`]: super::FitError

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};
use kubeutil::selector::{Operator, Requirement};

use super::nodeinfo::{NodeInfo, pod_host_ports};
use super::resources::pod_requests;

/// What a filter returns: `Err` holds the reasons the node does not fit (at least one).
pub type FilterResult = Result<(), Vec<String>>;

/// NodeUnschedulable's reason.
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// NodeName's reason.
pub const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// NodeAffinity's reason.
pub const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// NodePorts' reason.
pub const REASON_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// NodeResourcesFit's reason when the node is full of pods.
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
/// NodeResourcesFit's reason for CPU.
pub const REASON_INSUFFICIENT_CPU: &str = "Insufficient cpu";
/// NodeResourcesFit's reason for memory.
pub const REASON_INSUFFICIENT_MEMORY: &str = "Insufficient memory";
/// NodeResourcesFit's reason for ephemeral storage.
pub const REASON_INSUFFICIENT_EPHEMERAL_STORAGE: &str = "Insufficient ephemeral-storage";

/// The taint a cordoned node (`spec.unschedulable`) implies.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint of a node whose `Ready` condition is `False` (or missing).
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose `Ready` condition is `Unknown`.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Pressure conditions that, when `True`, imply a `NoSchedule` taint.
const PRESSURE_TAINTS: [(&str, &str); 4] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "node.kubernetes.io/network-unavailable",
    ),
];

fn reject(reason: &str) -> FilterResult {
    Err(vec![reason.to_string()])
}

/// The filter plugins, in upstream's default order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterPlugin {
    /// Cordoned nodes take only pods tolerating `node.kubernetes.io/unschedulable:NoSchedule`.
    NodeUnschedulable,
    /// A pod naming a node (`spec.nodeName`) fits only that node.
    NodeName,
    /// `NoSchedule` and `NoExecute` taints must be tolerated.
    TaintToleration,
    /// `nodeSelector` and required node affinity.
    NodeAffinity,
    /// Host ports must be free.
    NodePorts,
    /// Requests must fit in what is left of the node's allocatable resources.
    NodeResourcesFit,
}

/// Every filter plugin, in the order they run.
pub const FILTER_PLUGINS: [FilterPlugin; 6] = [
    FilterPlugin::NodeUnschedulable,
    FilterPlugin::NodeName,
    FilterPlugin::TaintToleration,
    FilterPlugin::NodeAffinity,
    FilterPlugin::NodePorts,
    FilterPlugin::NodeResourcesFit,
];

impl FilterPlugin {
    /// The plugin's upstream name.
    pub fn name(self) -> &'static str {
        match self {
            FilterPlugin::NodeUnschedulable => "NodeUnschedulable",
            FilterPlugin::NodeName => "NodeName",
            FilterPlugin::TaintToleration => "TaintToleration",
            FilterPlugin::NodeAffinity => "NodeAffinity",
            FilterPlugin::NodePorts => "NodePorts",
            FilterPlugin::NodeResourcesFit => "NodeResourcesFit",
        }
    }

    /// Runs the plugin for one pod and node.
    pub fn filter(self, pod: &Pod, node: &NodeInfo) -> FilterResult {
        match self {
            FilterPlugin::NodeUnschedulable => node_unschedulable(pod, node),
            FilterPlugin::NodeName => node_name(pod, node),
            FilterPlugin::TaintToleration => taint_toleration(pod, node),
            FilterPlugin::NodeAffinity => node_affinity(pod, node),
            FilterPlugin::NodePorts => node_ports(pod, node),
            FilterPlugin::NodeResourcesFit => node_resources_fit(pod, node),
        }
    }
}

/// Runs every filter in order; the first rejection's reasons are the node's.
pub fn run_filters(pod: &Pod, node: &NodeInfo) -> FilterResult {
    FILTER_PLUGINS.iter().try_for_each(|p| p.filter(pod, node))
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// Whether one toleration tolerates a taint: the effect (if set) and key (if set) match, and
/// `Exists` matches any value while `Equal` (the default) needs the same value.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of the tolerations tolerates the taint.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

fn no_schedule(key: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: "NoSchedule".to_string(),
        ..Taint::default()
    }
}

/// The taints a node carries plus those its conditions imply (see the module docs): a
/// `Ready` condition that is `False` or missing implies `node.kubernetes.io/not-ready`,
/// `Unknown` implies `node.kubernetes.io/unreachable`, and a `True` pressure condition its
/// taint; all `NoSchedule`, added only when the node lacks a taint with that key and effect.
pub fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[]);
    let status_of = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.status.as_str())
    };
    let mut implied = Vec::new();
    match status_of("Ready") {
        Some("True") => {}
        Some("Unknown") => implied.push(TAINT_UNREACHABLE),
        _ => implied.push(TAINT_NOT_READY),
    }
    for (condition, key) in PRESSURE_TAINTS {
        if status_of(condition) == Some("True") {
            implied.push(key);
        }
    }
    for key in implied {
        let taint = no_schedule(key);
        if !taints
            .iter()
            .any(|t| t.key == taint.key && t.effect == taint.effect)
        {
            taints.push(taint);
        }
    }
    taints
}

/// Whether the node's `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// NodeUnschedulable: a cordoned node rejects pods unless they tolerate
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_unschedulable(pod: &Pod, node: &NodeInfo) -> FilterResult {
    let cordoned = node
        .node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if cordoned && !tolerated(tolerations(pod), &no_schedule(TAINT_UNSCHEDULABLE)) {
        return reject(REASON_UNSCHEDULABLE);
    }
    Ok(())
}

/// NodeName: a pod with `spec.nodeName` set fits only that node.
pub fn node_name(pod: &Pod, node: &NodeInfo) -> FilterResult {
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        Some(n) if !n.is_empty() && n != node.name() => reject(REASON_NODE_NAME),
        _ => Ok(()),
    }
}

/// TaintToleration: the first of the node's [`effective_taints`] with effect `NoSchedule`
/// or `NoExecute` that no toleration tolerates rejects the node, named in the reason as
/// `{key: value}`.
pub fn taint_toleration(pod: &Pod, node: &NodeInfo) -> FilterResult {
    let tols = tolerations(pod);
    let untolerated = effective_taints(&node.node)
        .into_iter()
        .find(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !tolerated(tols, t));
    match untolerated {
        Some(t) => Err(vec![format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        )]),
        None => Ok(()),
    }
}

fn node_labels(node: &Node) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// One `matchExpressions` entry against node labels; a malformed one matches nothing.
fn expression_matches(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let op = match req.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return false,
    };
    let values = req.values.clone().unwrap_or_default();
    Requirement::new(req.key.clone(), op, values).is_ok_and(|r| r.matches(labels))
}

/// One `matchFields` entry: only `metadata.name` is a node field; `In`/`NotIn` with exactly
/// one value.
fn field_matches(req: &NodeSelectorRequirement, node: &Node) -> bool {
    let actual = match req.key.as_str() {
        "metadata.name" => node.metadata.name.as_deref().unwrap_or(""),
        _ => "",
    };
    match (req.operator.as_str(), req.values.as_deref()) {
        ("In", Some([v])) => actual == v,
        ("NotIn", Some([v])) => actual != v,
        _ => false,
    }
}

/// Whether a node selector term matches: all its expressions and fields hold. A term with
/// neither matches nothing, as upstream.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node_labels(node);
    exprs.iter().all(|e| expression_matches(e, labels))
        && fields.iter().all(|f| field_matches(f, node))
}

/// Whether a node satisfies the pod's `nodeSelector` (every label equal) and required node
/// affinity (any of the terms).
pub fn required_affinity_matches(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node_labels(node);
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok
        && required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)))
}

/// NodeAffinity: `nodeSelector` and `requiredDuringSchedulingIgnoredDuringExecution`
/// (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`; `matchFields` on `metadata.name`).
pub fn node_affinity(pod: &Pod, node: &NodeInfo) -> FilterResult {
    if required_affinity_matches(pod, &node.node) {
        Ok(())
    } else {
        reject(REASON_NODE_AFFINITY)
    }
}

/// NodePorts: every host port the pod wants must be free on the node.
pub fn node_ports(pod: &Pod, node: &NodeInfo) -> FilterResult {
    let clash = pod_host_ports(pod).iter().any(|want| {
        node.used_host_ports
            .iter()
            .any(|used| want.conflicts_with(used))
    });
    if clash {
        reject(REASON_NODE_PORTS)
    } else {
        Ok(())
    }
}

/// NodeResourcesFit: one more pod must fit under `allocatable.pods`, and each requested
/// resource in what is left of the node's allocatable amount. All shortfalls are reported.
pub fn node_resources_fit(pod: &Pod, node: &NodeInfo) -> FilterResult {
    let want = pod_requests(pod);
    let used = node.requested;
    let have = node.allocatable;
    let mut reasons = Vec::new();
    if used.pods.saturating_add(1) > have.pods {
        reasons.push(REASON_TOO_MANY_PODS.to_string());
    }
    let checks = [
        (
            want.milli_cpu,
            have.milli_cpu,
            used.milli_cpu,
            REASON_INSUFFICIENT_CPU,
        ),
        (
            want.memory,
            have.memory,
            used.memory,
            REASON_INSUFFICIENT_MEMORY,
        ),
        (
            want.ephemeral_storage,
            have.ephemeral_storage,
            used.ephemeral_storage,
            REASON_INSUFFICIENT_EPHEMERAL_STORAGE,
        ),
    ];
    for (want, have, used, reason) in checks {
        if want > 0 && want > have.saturating_sub(used) {
            reasons.push(reason.to_string());
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}
