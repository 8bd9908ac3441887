//! The node lifecycle controller: notices nodes whose kubelet stopped reporting, marks
//! them (conditions and taints), and decides when the pods on tainted nodes are evicted.
//!
//! Health ([`node_health`]). A node is *stale* when neither its Lease (`kube-node-lease`,
//! named after the node, `spec.renewTime`) nor its Ready condition's `lastHeartbeatTime` is
//! newer than `now - grace` (upstream's `--node-monitor-grace-period`; [`DEFAULT_GRACE`]).
//! A node that never posted a Ready condition gets [`STARTUP_GRACE`] (or `grace`, if
//! longer) from its creation. Upstream measures staleness on its own clock (when it last
//! *saw* the lease change); a pure function only has the timestamps, so the controller and
//! the kubelets' clocks are assumed to agree within the grace period.
//!
//! A stale node's Ready, MemoryPressure, DiskPressure and PIDPressure conditions become
//! `Unknown` with reason `NodeStatusUnknown` (missing ones are added with reason
//! `NodeStatusNeverUpdated`); the heartbeat time is left as it was and the transition time
//! is `now`.
//!
//! Taints are derived from the (possibly just updated) conditions, as upstream's two
//! tainting passes do, each added with `timeAdded = now`:
//! - Ready `Unknown` -> `node.kubernetes.io/unreachable` `NoExecute` and `NoSchedule`;
//! - Ready `False` -> `node.kubernetes.io/not-ready` `NoExecute` and `NoSchedule`;
//! - Ready `True` -> neither;
//! - MemoryPressure/DiskPressure/PIDPressure `True`, NetworkUnavailable `True` and
//!   `spec.unschedulable` -> their `NoSchedule` taints.
//!
//! A node that is healthy again keeps the `unreachable` taints until its kubelet posts
//! Ready `True` (the conditions are the kubelet's to report, not ours to guess).
//!
//! [`plan`] runs this over all nodes with upstream's full-disruption rule: when every node
//! is not ready, the controller assumes the problem is its own connectivity, not the nodes,
//! and neither adds nor keeps `NoExecute` taints (so nothing is evicted).
//!
//! Eviction ([`evictions`]) follows the taint eviction controller: a pod that does not
//! tolerate every `NoExecute` taint goes at once; otherwise it goes `tolerationSeconds`
//! after the taint's `timeAdded` (the earliest such deadline over all taints), and never
//! when every matching toleration is unbounded.
//!
//! **Default tolerations.** Upstream, the `DefaultTolerationSeconds` admission plugin adds
//! `not-ready` and `unreachable` `NoExecute` tolerations of 300 s to every pod that has no
//! toleration for them. berth's apiserver does not, so [`evictions`] treats a pod without a
//! toleration for either taint as tolerating it for `default_toleration`
//! ([`DEFAULT_TOLERATION`]); a pod that wants immediate eviction says so with
//! `tolerationSeconds: 0`.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::podutil::api_now;

/// The namespace of node heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Default `--node-monitor-grace-period`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(40);
/// Default `--node-startup-grace-period`: how long a new node may take to post status.
pub const STARTUP_GRACE: Duration = Duration::from_secs(60);
/// Default toleration of `not-ready`/`unreachable` `NoExecute` taints for pods that have
/// none (upstream's `DefaultTolerationSeconds` admission value).
pub const DEFAULT_TOLERATION: Duration = Duration::from_secs(300);

/// Taint on nodes whose kubelet stopped reporting.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint on nodes whose kubelet reports Ready `False`.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint on cordoned nodes.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Taint on nodes under memory pressure.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// Taint on nodes under disk pressure.
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// Taint on nodes under PID pressure.
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// Taint on nodes whose network is not configured.
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Reason set on conditions of a node that stopped reporting.
pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
/// Reason set on conditions a node never reported.
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";
const MESSAGE_NEVER_UPDATED: &str = "Kubelet never posted node status.";

const NO_EXECUTE: &str = "NoExecute";
const NO_SCHEDULE: &str = "NoSchedule";

/// The conditions set to Unknown on a stale node.
const WATCHED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What to write to one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeUpdate {
    /// The node.
    pub name: String,
    /// The new `status.conditions` (write through the `status` subresource first), when
    /// they change.
    pub conditions: Option<Vec<NodeCondition>>,
    /// The new `spec.taints`, when they change.
    pub taints: Option<Vec<Taint>>,
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn conditions(node: &Node) -> &[NodeCondition] {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
}

fn condition<'a>(conds: &'a [NodeCondition], type_: &str) -> Option<&'a NodeCondition> {
    conds.iter().find(|c| c.type_ == type_)
}

fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// The node's Ready condition status (`True`, `False`, `Unknown`), if it has one.
pub fn ready_status(node: &Node) -> Option<&str> {
    condition(conditions(node), "Ready").map(|c| c.status.as_str())
}

/// Whether the node's kubelet reported within `grace` of `now` (lease renewal or Ready
/// heartbeat, whichever is newer). A node with no Ready condition is measured from its
/// creation with `grace.max(STARTUP_GRACE)`.
pub fn is_fresh(node: &Node, lease: Option<&Lease>, now: Timestamp, grace: Duration) -> bool {
    let conds = conditions(node);
    let ready = condition(conds, "Ready");
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let heartbeat = ready
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let (last, period) = match ready {
        Some(_) => (renew.max(heartbeat), grace),
        None => {
            let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (renew.max(created), grace.max(STARTUP_GRACE))
        }
    };
    match last {
        Some(t) => plus(t, period) >= now,
        // Nothing to measure from: treat it as just seen, as a new informer entry would be.
        None => true,
    }
}

/// The conditions of a stale node: the watched ones set to Unknown.
fn stale_conditions(node: &Node, now: Timestamp) -> Vec<NodeCondition> {
    let mut out = conditions(node).to_vec();
    let created = node.metadata.creation_timestamp.clone();
    for type_ in WATCHED_CONDITIONS {
        match out.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != "Unknown" {
                    c.status = "Unknown".into();
                    c.reason = Some(REASON_UNKNOWN.into());
                    c.message = Some(MESSAGE_UNKNOWN.into());
                    c.last_transition_time = Some(time(now));
                }
            }
            None => out.push(NodeCondition {
                type_: type_.into(),
                status: "Unknown".into(),
                reason: Some(REASON_NEVER_UPDATED.into()),
                message: Some(MESSAGE_NEVER_UPDATED.into()),
                last_heartbeat_time: created.clone(),
                last_transition_time: Some(time(now)),
            }),
        }
    }
    out
}

/// Keys of the taints this controller owns, with their effect.
fn managed_taint(t: &Taint) -> bool {
    match t.effect.as_str() {
        NO_EXECUTE => matches!(t.key.as_str(), TAINT_UNREACHABLE | TAINT_NOT_READY),
        NO_SCHEDULE => matches!(
            t.key.as_str(),
            TAINT_UNREACHABLE
                | TAINT_NOT_READY
                | TAINT_UNSCHEDULABLE
                | TAINT_MEMORY_PRESSURE
                | TAINT_DISK_PRESSURE
                | TAINT_PID_PRESSURE
                | TAINT_NETWORK_UNAVAILABLE
        ),
        _ => false,
    }
}

/// The controller-owned taints the node should carry, as (key, effect).
fn wanted_taints(
    node: &Node,
    conds: &[NodeCondition],
    no_execute: bool,
) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let status = |t: &str| condition(conds, t).map(|c| c.status.as_str());
    match status("Ready") {
        Some("Unknown") => {
            if no_execute {
                out.push((TAINT_UNREACHABLE, NO_EXECUTE));
            }
            out.push((TAINT_UNREACHABLE, NO_SCHEDULE));
        }
        Some("False") => {
            if no_execute {
                out.push((TAINT_NOT_READY, NO_EXECUTE));
            }
            out.push((TAINT_NOT_READY, NO_SCHEDULE));
        }
        _ => {}
    }
    for (cond, key) in [
        ("MemoryPressure", TAINT_MEMORY_PRESSURE),
        ("DiskPressure", TAINT_DISK_PRESSURE),
        ("PIDPressure", TAINT_PID_PRESSURE),
        ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
    ] {
        if status(cond) == Some("True") {
            out.push((key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.push((TAINT_UNSCHEDULABLE, NO_SCHEDULE));
    }
    out
}

/// The node's taints with the controller-owned ones brought in line with `wanted`: other
/// taints untouched, kept ones keep their `timeAdded`, new ones get `now`.
fn reconcile_taints(
    current: &[Taint],
    wanted: &[(&str, &str)],
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let is_wanted = |t: &Taint| wanted.contains(&(t.key.as_str(), t.effect.as_str()));
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !managed_taint(t) || is_wanted(t))
        .cloned()
        .collect();
    let mut changed = out.len() != current.len();
    for (key, effect) in wanted {
        if !out.iter().any(|t| t.key == *key && t.effect == *effect) {
            out.push(Taint {
                key: (*key).into(),
                effect: (*effect).into(),
                value: None,
                time_added: Some(time(now)),
            });
            changed = true;
        }
    }
    changed.then_some(out)
}

fn health(
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
    grace: Duration,
    no_execute: bool,
) -> Option<NodeUpdate> {
    let now = api_now(now);
    let new_conditions = if is_fresh(node, lease, now, grace) {
        None
    } else {
        Some(stale_conditions(node, now)).filter(|c| c.as_slice() != conditions(node))
    };
    let conds = new_conditions.as_deref().unwrap_or(conditions(node));
    let wanted = wanted_taints(node, conds, no_execute);
    let new_taints = reconcile_taints(taints(node), &wanted, now);
    if new_conditions.is_none() && new_taints.is_none() {
        return None;
    }
    Some(NodeUpdate {
        name: node.metadata.name.clone().unwrap_or_default(),
        conditions: new_conditions,
        taints: new_taints,
    })
}

/// One node's health pass: the condition and taint changes it needs, or `None`.
/// `grace` is the monitor grace period ([`DEFAULT_GRACE`]). See the module doc.
pub fn node_health(
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
    grace: Duration,
) -> Option<NodeUpdate> {
    health(node, lease, now, grace, true)
}

/// The health pass over all nodes. `leases` are the Leases of [`LEASE_NAMESPACE`] (matched
/// to nodes by name; Leases of other namespaces are ignored). When every node is (or is about to be) not ready, `NoExecute` taints
/// are neither added nor kept (upstream's full-disruption rule); with no nodes at all there
/// is nothing to do.
pub fn plan(nodes: &[Node], leases: &[Lease], now: Timestamp, grace: Duration) -> Vec<NodeUpdate> {
    let lease_of = |node: &Node| {
        leases.iter().find(|l| {
            l.metadata.name.is_some()
                && l.metadata.name == node.metadata.name
                && l.metadata
                    .namespace
                    .as_deref()
                    .is_none_or(|ns| ns == LEASE_NAMESPACE)
        })
    };
    let ready_after = |node: &Node| {
        if !is_fresh(node, lease_of(node), now, grace) {
            return false;
        }
        ready_status(node) == Some("True")
    };
    let fully_disrupted = !nodes.is_empty() && !nodes.iter().any(ready_after);
    nodes
        .iter()
        .filter_map(|n| health(n, lease_of(n), now, grace, !fully_disrupted))
        .collect()
}

/// The pods on a node that is not ready whose Ready condition must become `False`
/// (upstream's `MarkPodsNotReady`), with their updated status, for the `status`
/// subresource. Empty when the node's Ready condition is `True`.
pub fn mark_pods_not_ready(node: &Node, pods: &[Pod], now: Timestamp) -> Vec<Pod> {
    if ready_status(node) == Some("True") {
        return Vec::new();
    }
    let now = api_now(now);
    let name = node.metadata.name.as_deref();
    pods.iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == name)
        .filter_map(|p| {
            let mut pod = p.clone();
            let status = pod.status.as_mut()?;
            let cond: &mut PodCondition = status
                .conditions
                .as_mut()?
                .iter_mut()
                .find(|c| c.type_ == "Ready" && c.status != "False")?;
            cond.status = "False".into();
            cond.last_transition_time = Some(time(now));
            Some(pod)
        })
        .collect()
}

// ------------------------------------------------------------------ eviction

/// Whether a toleration tolerates a taint (upstream `ToleratesTaint`): the effect matches
/// (or the toleration has none), the key matches (or the toleration has none, with
/// `Exists`), and the value matches for `Equal` (the default operator).
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = tol.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = tol.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            tol.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// The pod's tolerations plus the default `not-ready`/`unreachable` ones it would have
/// been given by `DefaultTolerationSeconds` admission.
fn effective_tolerations(pod: &Pod, default_toleration: Duration) -> Vec<Toleration> {
    let mut tols: Vec<Toleration> = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let covers = |key: &str| {
        tols.iter().any(|t| {
            let k = t.key.as_deref().unwrap_or_default();
            let e = t.effect.as_deref().unwrap_or_default();
            (k.is_empty() || k == key) && (e.is_empty() || e == NO_EXECUTE)
        })
    };
    let seconds = i64::try_from(default_toleration.as_secs()).unwrap_or(i64::MAX);
    let missing: Vec<&str> = [TAINT_NOT_READY, TAINT_UNREACHABLE]
        .into_iter()
        .filter(|k| !covers(k))
        .collect();
    for key in missing {
        tols.push(Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: Some(seconds),
            value: None,
        });
    }
    tols
}

/// When a pod must leave a node with these `NoExecute` taints: `Some(None)` now,
/// `Some(Some(t))` at `t`, `None` never.
fn eviction_time(
    taints: &[&Taint],
    tols: &[Toleration],
    now: Timestamp,
) -> Option<Option<Timestamp>> {
    let mut earliest: Option<Timestamp> = None;
    for taint in taints {
        let Some(tol) = tols.iter().find(|t| tolerates(t, taint)) else {
            return Some(None);
        };
        let Some(secs) = tol.toleration_seconds else {
            continue;
        };
        let added = taint.time_added.as_ref().map_or(now, |t| t.0);
        let at = if secs <= 0 {
            added
        } else {
            plus(added, Duration::from_secs(secs.unsigned_abs()))
        };
        earliest = Some(earliest.map_or(at, |e| e.min(at)));
    }
    earliest.map(Some)
}

/// The pods on a node that its `NoExecute` taints evict: `(pod name, None)` for pods to
/// delete now, `(pod name, Some(d))` for pods to delete `d` from `now` (call again then);
/// pods that tolerate every taint forever, and pods already being deleted, are not
/// listed. `default_toleration` ([`DEFAULT_TOLERATION`]) is the implicit toleration of
/// `not-ready`/`unreachable` described in the module doc. Pods not bound to this node are
/// ignored.
pub fn evictions(
    node: &Node,
    pods_on_node: &[Pod],
    now: Timestamp,
    default_toleration: Duration,
) -> Vec<(String, Option<Duration>)> {
    let no_execute: Vec<&Taint> = taints(node)
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .collect();
    if no_execute.is_empty() {
        return Vec::new();
    }
    let name = node.metadata.name.as_deref();
    let mut out = Vec::new();
    for pod in pods_on_node {
        if pod.metadata.deletion_timestamp.is_some()
            || pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != name
        {
            continue;
        }
        let tols = effective_tolerations(pod, default_toleration);
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        match eviction_time(&no_execute, &tols, now) {
            None => {}
            Some(None) => out.push((pod_name, None)),
            Some(Some(at)) => {
                let wait = at.duration_since(now);
                if wait <= SignedDuration::ZERO {
                    out.push((pod_name, None));
                } else {
                    out.push((pod_name, Some(wait.unsigned_abs())));
                }
            }
        }
    }
    out
}
