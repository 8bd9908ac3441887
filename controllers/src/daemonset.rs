//! The DaemonSet controller: one pod of the DaemonSet's template on every eligible node.
//!
//! [`reconcile`] follows kube-controller-manager's DaemonSet controller:
//!
//! - **Eligibility** ([`should_run`]): the template's `nodeName` (if any), `nodeSelector` and
//!   required node affinity must match the node, and its tolerations — plus the ones every
//!   daemon pod gets ([`add_daemon_tolerations`]: not-ready and unreachable `NoExecute`;
//!   disk, memory and PID pressure and unschedulable `NoSchedule`; network-unavailable for
//!   host-network pods) — must tolerate the node's `NoSchedule`/`NoExecute` taints. A pod
//!   already on a node whose only untolerated taints are `NoSchedule` may stay there.
//!   `spec.unschedulable` is thus ignored (its taint is tolerated).
//! - **Pods** are the ones the DaemonSet controls (or adopts: orphans matching its selector;
//!   controlled pods that no longer match are released). A pod's node is its
//!   `spec.nodeName`, or for a pod not yet bound the `metadata.name` its required node
//!   affinity pins it to. New pods are pinned that way (upstream: the scheduler binds them),
//!   carry the `controller-revision-hash` label and the daemon tolerations.
//! - **Manage**: create a pod on each eligible node without one; delete failed and
//!   succeeded pods (the next pass recreates them), all but the oldest of several pods on
//!   one node, and pods on nodes where they should not continue running. Pods being deleted
//!   are left to finish, and their node gets no replacement until they are gone. At most
//!   [`BURST`] creations and deletions are planned per pass. Unlike upstream, pods bound to
//!   nodes that no longer exist are deleted here too (upstream leaves those to the pod
//!   garbage collector, which berth does not have); upstream's back-off for failed pods is
//!   the runner's to apply.
//! - **RollingUpdate** (the default strategy), only in a pass where manage had nothing to
//!   do (upstream's expectations): pods whose `controller-revision-hash` label differs from
//!   [`template_hash`] are deleted — unavailable old pods at once, available ones only while
//!   fewer than `maxUnavailable` (default 1; a percentage of the desired count, rounded up)
//!   daemon pods are unavailable — and manage recreates them. `maxSurge` is not supported
//!   (treated as 0; if `maxUnavailable` is then 0 too, 1 is used, as upstream does for that
//!   impossible setting). `OnDelete` replaces nothing.
//! - **Status**: desired/current/ready/available/updated/misscheduled counts from the pods
//!   as observed, `numberUnavailable`, `observedGeneration`.
//!
//! The revision hash is berth's own (a stable hash of the template), not upstream's
//! ControllerRevision hash; no ControllerRevisions are written.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kubeutil::selector::{Labels, Operator, Requirement};

use crate::nodelifecycle::{
    TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_NETWORK_UNAVAILABLE, TAINT_NOT_READY,
    TAINT_PID_PRESSURE, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, tolerates,
};
use crate::podutil::{self, Claim};

/// Label carrying the template hash a daemon pod was made from.
pub const LABEL_REVISION_HASH: &str = "controller-revision-hash";
/// Label carrying the DaemonSet generation a pod was made at (deprecated upstream, still set).
pub const LABEL_TEMPLATE_GENERATION: &str = "pod-template-generation";
/// Most creations (and, separately, deletions) planned in one pass.
pub const BURST: usize = 250;
/// The field daemon pods are pinned to their node with.
const NAME_FIELD: &str = "metadata.name";

/// What to do for one DaemonSet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DsPlan {
    /// Pods to create: (node, pod). The pods have `generateName` `<daemonset>-`.
    pub create: Vec<(String, Pod)>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    /// Names of orphan pods to adopt (add [`controller_ref`]).
    pub adopt: Vec<String>,
    /// Names of controlled pods that no longer match the selector (remove the reference).
    pub release: Vec<String>,
    /// The new status, when it differs from the current one (write through `status`).
    pub status: Option<DaemonSetStatus>,
}

/// The owner reference daemon pods carry.
pub fn controller_ref(
    ds: &DaemonSet,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
    podutil::controller_ref("apps/v1", "DaemonSet", &ds.metadata)
}

// ------------------------------------------------------------------ hashing

/// A stable hash of the DaemonSet's pod template (and collision count), written with
/// consonants and digits so that it never spells words; the `controller-revision-hash` of
/// up-to-date pods.
pub fn template_hash(ds: &DaemonSet) -> String {
    let json = serde_json::to_string(&ds.spec.as_ref().map(|s| &s.template)).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let collisions = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    for b in json.bytes().chain(collisions.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    let mut v = h >> 16; // 48 bits are plenty: 11 characters
    while v > 0 || out.is_empty() {
        let i = usize::try_from(v % ALPHABET.len() as u64).unwrap_or(0);
        out.push(char::from(ALPHABET[i]));
        v /= ALPHABET.len() as u64;
    }
    out
}

// ------------------------------------------------------------------ tolerations

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// Adds (or overwrites, when one with the same key, operator, value and effect exists) the
/// tolerations every daemon pod carries.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        toleration(TAINT_NOT_READY, "NoExecute"),
        toleration(TAINT_UNREACHABLE, "NoExecute"),
        toleration(TAINT_DISK_PRESSURE, "NoSchedule"),
        toleration(TAINT_MEMORY_PRESSURE, "NoSchedule"),
        toleration(TAINT_PID_PRESSURE, "NoSchedule"),
        toleration(TAINT_UNSCHEDULABLE, "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(toleration(TAINT_NETWORK_UNAVAILABLE, "NoSchedule"));
    }
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    for want in wanted {
        let same = |t: &Toleration| {
            t.key == want.key
                && t.operator.as_deref().unwrap_or("Equal") == "Exists"
                && t.value.as_deref().unwrap_or_default().is_empty()
                && t.effect == want.effect
        };
        match tols.iter_mut().find(|t| same(t)) {
            Some(t) => *t = want,
            None => tols.push(want),
        }
    }
}

// ------------------------------------------------------------------ node matching

fn node_labels(node: &Node) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

fn requirement_matches(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let op = match req.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return false,
    };
    match Requirement::new(req.key.clone(), op, req.values.clone().unwrap_or_default()) {
        Ok(r) => r.matches(labels),
        Err(_) => false,
    }
}

fn field_matches(req: &NodeSelectorRequirement, node_name: &str) -> bool {
    if req.key != NAME_FIELD {
        return false;
    }
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => values.len() == 1 && values.iter().any(|v| v == node_name),
        "NotIn" => values.len() == 1 && values.iter().all(|v| v != node_name),
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, labels))
        && fields.iter().all(|r| field_matches(r, name))
}

/// Whether a pod spec's `nodeSelector` and required node affinity accept the node.
pub fn node_affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let labels = node_labels(node);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.label(k) == Some(v.as_str()))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(ns) => ns
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, &labels, name)),
    }
}

fn untolerated(taints: &[Taint], tols: &[Toleration], effects: &[&str]) -> bool {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .any(|t| !tols.iter().any(|tol| tolerates(tol, t)))
}

/// The pod spec the DaemonSet would run on a node: the template's, with the daemon
/// tolerations.
fn daemon_spec(ds: &DaemonSet) -> PodSpec {
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec
}

/// `(should_run, should_continue_running)` for the DaemonSet on a node, as upstream's
/// `NodeShouldRunDaemonPod`: a daemon pod should be created there, and an existing one may
/// stay there.
pub fn should_run(ds: &DaemonSet, node: &Node) -> (bool, bool) {
    should_run_spec(&daemon_spec(ds), node)
}

fn should_run_spec(spec: &PodSpec, node: &Node) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if let Some(pinned) = spec.node_name.as_deref().filter(|n| !n.is_empty())
        && pinned != name
    {
        return (false, false);
    }
    if !node_affinity_matches(spec, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tols = spec.tolerations.as_deref().unwrap_or_default();
    if untolerated(taints, tols, &["NoSchedule", "NoExecute"]) {
        return (false, !untolerated(taints, tols, &["NoExecute"]));
    }
    (true, true)
}

// ------------------------------------------------------------------ pods

/// The node a daemon pod runs on or is pinned to.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| {
            r.key == NAME_FIELD
                && r.operator == "In"
                && r.values.as_ref().is_some_and(|v| v.len() == 1)
        })
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// Replaces the required node affinity with one term pinning the pod to `node` (other
/// affinity settings kept), as upstream does for daemon pods.
fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: NAME_FIELD.into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
            match_expressions: None,
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

/// The pod the DaemonSet creates for a node.
pub fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(LABEL_REVISION_HASH.into(), hash.to_string());
    if let Some(g) = ds.metadata.generation {
        labels.insert(LABEL_TEMPLATE_GENERATION.into(), g.to_string());
    }
    let mut spec = daemon_spec(ds);
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                ds.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref(ds)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_REVISION_HASH))
        .is_some_and(|h| h == hash)
}

/// Scheduled pods first, then oldest first, then by name (upstream's order).
fn oldest_first(a: &&Pod, b: &&Pod) -> std::cmp::Ordering {
    let unbound = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty)
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (unbound(a), created(a), &a.metadata.name).cmp(&(unbound(b), created(b), &b.metadata.name))
}

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn scaled(v: Option<&IntOrString>, total: i32, default: i32) -> i32 {
    match v {
        None => default,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let pct = s
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<i64>().ok())
                .unwrap_or(0);
            let n = (pct * i64::from(total) + 99).div_euclid(100);
            i32::try_from(n).unwrap_or(i32::MAX)
        }
    }
    .max(0)
}

// ------------------------------------------------------------------ reconcile

/// One pass of the DaemonSet controller over all nodes and the pods of the DaemonSet's
/// namespace. See the module doc.
pub fn reconcile(ds: &DaemonSet, nodes: &[Node], pods: &[Pod], now: Timestamp) -> DsPlan {
    let mut plan = DsPlan::default();
    let Some(spec) = ds.spec.as_ref() else {
        return plan;
    };
    let Some(selector) = podutil::workload_selector(&spec.selector) else {
        // An empty or invalid selector selects nothing; upstream refuses to act.
        return plan;
    };
    let hash = template_hash(ds);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let deleting = ds.metadata.deletion_timestamp.is_some();

    // Claim the pods and group them by node.
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        if pod.metadata.namespace != ds.metadata.namespace {
            continue;
        }
        match podutil::claim(&ds.metadata, "DaemonSet", Some(&selector), &pod.metadata) {
            Claim::Owned => {}
            Claim::Adopt => plan.adopt.push(pod_name(pod)),
            Claim::Release => {
                plan.release.push(pod_name(pod));
                continue;
            }
            Claim::Ignore => continue,
        }
        if podutil::is_pod_terminal(pod) && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    for pods in by_node.values_mut() {
        pods.sort_by(oldest_first);
    }

    let dspec = daemon_spec(ds);
    let mut nodes: Vec<&Node> = nodes.iter().collect();
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let eligibility: Vec<(&Node, bool, bool)> = nodes
        .iter()
        .map(|n| {
            let (run, cont) = should_run_spec(&dspec, n);
            (*n, run, cont)
        })
        .collect();

    plan.status = status(ds, &eligibility, &by_node, &hash, min_ready, now);
    if deleting {
        plan.adopt.clear();
        plan.release.clear();
        plan.status = None;
        return plan;
    }

    // Manage: one healthy pod per eligible node.
    let mut create = Vec::new();
    let mut delete = Vec::new();
    for (node, run, cont) in &eligibility {
        let name = node.metadata.name.clone().unwrap_or_default();
        let daemon_pods = by_node.get(&name);
        if *run && daemon_pods.is_none() {
            create.push(name);
        } else if *cont {
            let mut running = Vec::new();
            for pod in daemon_pods.into_iter().flatten() {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match phase(pod) {
                    Some("Failed" | "Succeeded") => delete.push(pod_name(pod)),
                    _ => running.push(*pod),
                }
            }
            // Already oldest first: keep the first.
            delete.extend(running.iter().skip(1).map(|p| pod_name(p)));
        } else {
            for pod in daemon_pods.into_iter().flatten() {
                if pod.metadata.deletion_timestamp.is_none() {
                    delete.push(pod_name(pod));
                }
            }
        }
    }
    // Pods of nodes that no longer exist.
    for (node, pods) in &by_node {
        if !nodes
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(node.as_str()))
        {
            delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| pod_name(p)),
            );
        }
    }
    create.truncate(BURST);
    delete.truncate(BURST);
    plan.create = create
        .into_iter()
        .map(|n| {
            let pod = new_pod(ds, &n, &hash);
            (n, pod)
        })
        .collect();
    plan.delete = delete;
    if !plan.create.is_empty() || !plan.delete.is_empty() {
        return plan;
    }

    // Rolling update.
    let strategy = spec.update_strategy.as_ref();
    if strategy
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        != "RollingUpdate"
    {
        return plan;
    }
    let desired = eligibility.iter().filter(|(_, run, _)| *run).count();
    let desired = i32::try_from(desired).unwrap_or(i32::MAX);
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let mut max_unavailable = scaled(rolling.and_then(|r| r.max_unavailable.as_ref()), desired, 1);
    if desired > 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let mut unavailable = 0i32;
    let mut replace_now = Vec::new();
    let mut candidates = Vec::new();
    for pods in by_node.values() {
        let live: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .copied()
            .collect();
        let new: Vec<&Pod> = live
            .iter()
            .filter(|p| is_updated(p, &hash))
            .copied()
            .collect();
        let old: Vec<&Pod> = live
            .iter()
            .filter(|p| !is_updated(p, &hash))
            .copied()
            .collect();
        match (new.as_slice(), old.as_slice()) {
            ([n], []) => {
                if !podutil::is_pod_available(n, min_ready, now) {
                    unavailable += 1;
                }
            }
            ([], [o]) => {
                if !podutil::is_pod_available(o, min_ready, now) {
                    replace_now.push(pod_name(o));
                    unavailable += 1;
                } else if unavailable < max_unavailable {
                    candidates.push(pod_name(o));
                }
            }
            // Nothing, both kinds, or extras: manage's business; count as unavailable.
            _ => unavailable += 1,
        }
    }
    let room = usize::try_from((max_unavailable - unavailable).max(0)).unwrap_or(0);
    candidates.truncate(room);
    plan.delete = replace_now.into_iter().chain(candidates).collect();
    plan
}

/// The status for the pods as observed; `None` when it equals the current status.
fn status(
    ds: &DaemonSet,
    eligibility: &[(&Node, bool, bool)],
    by_node: &BTreeMap<String, Vec<&Pod>>,
    hash: &str,
    min_ready: i32,
    now: Timestamp,
) -> Option<DaemonSetStatus> {
    let (mut desired, mut current, mut ready, mut available, mut updated, mut misscheduled) =
        (0i32, 0i32, 0i32, 0i32, 0i32, 0i32);
    for (node, run, _) in eligibility {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let pods = by_node.get(name).map(Vec::as_slice).unwrap_or_default();
        if *run {
            desired += 1;
            // Already oldest first.
            let Some(pod) = pods.first() else { continue };
            current += 1;
            if podutil::is_pod_ready(pod) {
                ready += 1;
                if podutil::is_pod_available(pod, min_ready, now) {
                    available += 1;
                }
            }
            if is_updated(pod, hash) {
                updated += 1;
            }
        } else if !pods.is_empty() {
            misscheduled += 1;
        }
    }
    let old = ds.status.clone().unwrap_or_default();
    let new = DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: current,
        number_ready: ready,
        number_available: Some(available),
        number_unavailable: Some(desired - available),
        updated_number_scheduled: Some(updated),
        number_misscheduled: misscheduled,
        observed_generation: ds.metadata.generation.or(old.observed_generation),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
    };
    (new != old).then_some(new)
}
