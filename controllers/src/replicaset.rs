//! The ReplicaSet controller's pure reconcile logic: keep `spec.replicas` pods running.
//!
//! [`reconcile`] takes a ReplicaSet and every pod of its namespace and returns an [`RsPlan`]:
//! pods to adopt and release (controller owner references), pods to create (from the
//! template) or delete (the least valuable first, ranked as upstream does), and the status to
//! write.
//!
//! # The runner's duties
//!
//! The runner keeps one [`Expectations`] per ReplicaSet key (`namespace/name`) because its
//! informer cache lags its own writes: without them a second sync right after a scale-up would
//! see too few pods and create them again. For each sync it:
//!
//! 1. calls [`reconcile_with_expectations`] (or [`reconcile`] and drops `create`/`delete`
//!    itself unless [`should_sync`] is true); adoption, release and status are always applied;
//! 2. *before* issuing the requests, records what it is about to do:
//!    [`Expectations::expect_creations`] with `plan.create.len()` or
//!    [`Expectations::expect_deletions`] with `plan.delete`;
//! 3. creates each pod in `plan.create` (`generateName`, so never an "already exists"),
//!    deletes each name in `plan.delete`, patches ownerReferences for `adopt` (add
//!    [`controller_ref`]) and `release` (drop the reference with the ReplicaSet's UID), and
//!    writes `plan.status` to the status subresource when it differs from the current one;
//! 4. calls [`Expectations::creation_observed`] for each pod creation it fails (it will never
//!    be observed) and [`Expectations::deletion_observed`] for each failed deletion other than
//!    "not found";
//! 5. from its pod watch: a new pod controlled by the ReplicaSet →
//!    [`Expectations::creation_observed`]; a pod of the ReplicaSet deleted or given a
//!    `deletionTimestamp` → [`Expectations::deletion_observed`]; both then requeue the
//!    ReplicaSet. The expectations of a deleted ReplicaSet are dropped;
//! 6. requeues the ReplicaSet after `plan.requeue_after` when set (pods becoming available
//!    once they have been ready for `minReadySeconds`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::podutil::{self, Claim};

/// The `kind` of a ReplicaSet.
pub const KIND: &str = "ReplicaSet";
/// The `apiVersion` of a ReplicaSet.
pub const API_VERSION: &str = "apps/v1";
/// At most this many pods are created or deleted in one sync (upstream's burst).
pub const BURST_REPLICAS: usize = 500;
/// Unfulfilled expectations older than this no longer block syncs (upstream's 5 minutes).
pub const EXPECTATIONS_TIMEOUT: SignedDuration = SignedDuration::from_secs(5 * 60);
/// Pod annotation with the relative cost of deleting the pod: lower goes first.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// What one sync of a ReplicaSet wants done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RsPlan {
    /// Orphan pods to adopt: add [`controller_ref`] to their ownerReferences.
    pub adopt: Vec<String>,
    /// Controlled pods that no longer match the selector: remove the reference to this
    /// ReplicaSet from their ownerReferences.
    pub release: Vec<String>,
    /// Pods to create (namespace, `generateName`, labels, owner reference and spec set).
    pub create: Vec<Pod>,
    /// Pods to delete, by name, most expendable first.
    pub delete: Vec<String>,
    /// The status to write when it differs from the current one.
    pub status: ReplicaSetStatus,
    /// Sync again after this long: ready pods become available then (`minReadySeconds`).
    pub requeue_after: Option<Duration>,
}

/// The desired replica count (`spec.replicas`, default 1).
pub fn desired_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// The owner reference that marks a pod as controlled by `rs`.
pub fn controller_ref(rs: &ReplicaSet) -> OwnerReference {
    podutil::controller_ref(API_VERSION, KIND, &rs.metadata)
}

/// A new pod for `rs`: `generateName` `"<rs-name>-"`, the template's labels, annotations,
/// finalizers and spec, the namespace of `rs` and a controller owner reference to it.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    let name = rs.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.and_then(|m| m.labels.clone()),
            annotations: tmeta.and_then(|m| m.annotations.clone()),
            finalizers: tmeta.and_then(|m| m.finalizers.clone()),
            owner_references: Some(vec![controller_ref(rs)]),
            ..ObjectMeta::default()
        },
        spec: Some(template.and_then(|t| t.spec.clone()).unwrap_or_default()),
        status: None,
    }
}

/// Reconciles one ReplicaSet against all pods of its namespace; see the module docs for what
/// the runner does with the plan. Expectations are not consulted: use
/// [`reconcile_with_expectations`] or [`should_sync`].
///
/// A ReplicaSet whose selector is invalid or empty gets an empty plan carrying its current
/// status. A ReplicaSet being deleted adopts, releases, creates and deletes nothing.
pub fn reconcile(rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> RsPlan {
    let Some(selector) = rs
        .spec
        .as_ref()
        .and_then(|s| podutil::workload_selector(&s.selector))
    else {
        return RsPlan {
            status: rs.status.clone().unwrap_or_default(),
            ..RsPlan::default()
        };
    };

    let mut plan = RsPlan::default();
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods.iter().filter(|p| podutil::is_pod_active(p)) {
        if !podutil::same_namespace(&rs.metadata, &pod.metadata) {
            continue;
        }
        match podutil::claim(&rs.metadata, KIND, Some(&selector), &pod.metadata) {
            Claim::Owned => owned.push(pod),
            Claim::Adopt => {
                plan.adopt.push(pod_name(pod));
                owned.push(pod);
            }
            Claim::Release => plan.release.push(pod_name(pod)),
            Claim::Ignore => {}
        }
    }

    if rs.metadata.deletion_timestamp.is_none() {
        let desired = usize::try_from(desired_replicas(rs)).unwrap_or(0);
        if owned.len() < desired {
            let n = (desired - owned.len()).min(BURST_REPLICAS);
            plan.create = (0..n).map(|_| pod_from_template(rs)).collect();
        } else if owned.len() > desired {
            let n = (owned.len() - desired).min(BURST_REPLICAS);
            plan.delete = pods_to_delete(&owned, n)
                .into_iter()
                .map(pod_name)
                .collect();
        }
    }

    plan.status = calculate_status(rs, &owned, now);
    plan.requeue_after = requeue_for_availability(rs, &owned, now);
    plan
}

/// [`reconcile`], with `create` and `delete` left empty while `expectations` are unsatisfied.
pub fn reconcile_with_expectations(
    rs: &ReplicaSet,
    pods: &[Pod],
    expectations: &Expectations,
    now: Timestamp,
) -> RsPlan {
    let mut plan = reconcile(rs, pods, now);
    if !should_sync(expectations, now) {
        plan.create.clear();
        plan.delete.clear();
    }
    plan
}

/// Whether the runner may act on a plan's `create` and `delete` now: the previous sync's
/// creations and deletions have all been observed, or they were requested more than
/// [`EXPECTATIONS_TIMEOUT`] ago.
pub fn should_sync(expectations: &Expectations, now: Timestamp) -> bool {
    expectations.satisfied(now)
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

// ------------------------------------------------------------------ status

fn calculate_status(rs: &ReplicaSet, owned: &[&Pod], now: Timestamp) -> ReplicaSetStatus {
    let template_labels: BTreeMap<String, String> = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = min_ready_seconds(rs);
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in owned {
        let labels = pod.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            fully_labeled += 1;
        }
        if podutil::is_pod_ready(pod) {
            ready += 1;
            if podutil::is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let nonzero = |n: i32| (n != 0).then_some(n);
    let previous = rs.status.as_ref();
    ReplicaSetStatus {
        replicas: i32::try_from(owned.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: nonzero(fully_labeled),
        ready_replicas: nonzero(ready),
        available_replicas: nonzero(available),
        observed_generation: rs.metadata.generation.filter(|g| *g != 0),
        conditions: previous.and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    }
}

/// The earliest moment a ready pod becomes available, plus a second of slack.
fn requeue_for_availability(rs: &ReplicaSet, owned: &[&Pod], now: Timestamp) -> Option<Duration> {
    let min_ready = min_ready_seconds(rs);
    owned
        .iter()
        .filter_map(|p| podutil::until_available(p, min_ready, now))
        .min()
        .map(|d| podutil::to_std(d) + Duration::from_secs(1))
}

// ------------------------------------------------------------------ choosing pods to delete

/// Picks the `n` most expendable pods, in upstream's order (each rule breaks the ties of the
/// previous one):
///
/// 1. unscheduled before scheduled;
/// 2. `Pending` before `Unknown` before `Running`;
/// 3. not ready before ready;
/// 4. lower `controller.kubernetes.io/pod-deletion-cost` first;
/// 5. pods sharing their node with more of the set's pods first;
/// 6. ready for a shorter time first;
/// 7. higher container restart count first;
/// 8. created more recently first (and finally by name, for determinism).
///
/// Times compare linearly (upstream's ranking without its logarithmic buckets).
fn pods_to_delete<'a>(pods: &[&'a Pod], n: usize) -> Vec<&'a Pod> {
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in pods {
        if let Some(node) = node_name(pod) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let colocated = |p: &Pod| node_name(p).map_or(0, |n| per_node.get(n).copied().unwrap_or(0));
    let mut ranked: Vec<&Pod> = pods.to_vec();
    ranked.sort_by(|a, b| compare_for_deletion(a, b, colocated(a), colocated(b)));
    ranked.truncate(n);
    ranked
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `Less` means "delete first". Zero (unknown) times sort before later ones, which sort
/// before earlier ones.
fn compare_for_deletion(a: &Pod, b: &Pod, colocated_a: usize, colocated_b: usize) -> Ordering {
    let later_first = |x: Option<Timestamp>, y: Option<Timestamp>| match (x, y) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x),
    };
    node_name(a)
        .is_some()
        .cmp(&node_name(b).is_some())
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| podutil::is_pod_ready(a).cmp(&podutil::is_pod_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| colocated_b.cmp(&colocated_a))
        .then_with(|| {
            if podutil::is_pod_ready(a) && podutil::is_pod_ready(b) {
                later_first(podutil::pod_ready_since(a), podutil::pod_ready_since(b))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| podutil::max_container_restarts(b).cmp(&podutil::max_container_restarts(a)))
        .then_with(|| {
            later_first(
                a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

// ------------------------------------------------------------------ expectations

/// What the runner is still waiting to observe for one ReplicaSet after acting on a plan
/// (upstream's UID-tracking controller expectations). A new value expects nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    creations: i64,
    deletions: BTreeSet<String>,
    set_at: Option<Timestamp>,
}

impl Expectations {
    /// Expects nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `n` pods are about to be created (replacing earlier expectations).
    pub fn expect_creations(&mut self, n: usize, now: Timestamp) {
        self.creations = i64::try_from(n).unwrap_or(i64::MAX);
        self.deletions.clear();
        self.set_at = Some(now);
    }

    /// Records that the named pods are about to be deleted (replacing earlier expectations).
    pub fn expect_deletions<I, S>(&mut self, names: I, now: Timestamp)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.creations = 0;
        self.deletions = names.into_iter().map(Into::into).collect();
        self.set_at = Some(now);
    }

    /// A pod of this ReplicaSet was seen created (or its creation failed).
    pub fn creation_observed(&mut self) {
        if self.creations > 0 {
            self.creations -= 1;
        }
    }

    /// The named pod was seen deleted or terminating (or its deletion failed). Names not
    /// expected are ignored.
    pub fn deletion_observed(&mut self, name: &str) {
        self.deletions.remove(name);
    }

    /// Pods still expected to be created and deleted.
    pub fn pending(&self) -> (i64, usize) {
        (self.creations, self.deletions.len())
    }

    /// Everything expected has been observed, or the expectations are older than
    /// [`EXPECTATIONS_TIMEOUT`].
    pub fn satisfied(&self, now: Timestamp) -> bool {
        if self.creations <= 0 && self.deletions.is_empty() {
            return true;
        }
        self.set_at
            .is_none_or(|at| now.duration_since(at) > EXPECTATIONS_TIMEOUT)
    }
}
