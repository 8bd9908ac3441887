//! The Deployment controller's pure reconcile logic: roll a Deployment's pods from one pod
//! template to the next through ReplicaSets, as upstream's controller does.
//!
//! [`reconcile`] takes a Deployment plus every ReplicaSet and pod of its namespace and returns
//! a [`DeploymentPlan`]. One sync does what one upstream sync does:
//!
//! - ReplicaSets matching the selector without a controller are adopted, owned ones that no
//!   longer match are released;
//! - the *new* ReplicaSet is the (oldest) owned one whose template equals the Deployment's
//!   ignoring the `pod-template-hash` label; it gets revision "highest old revision + 1"
//!   (so a rollback to an old template revives that ReplicaSet under a new revision, the old
//!   number moving into `revision-history`). Without one, a ReplicaSet
//!   `<deployment>-<hash>` is created (see [`pod_template_hash`]);
//! - `RollingUpdate` scales the new ReplicaSet up to at most `replicas + maxSurge` pods in all
//!   and old ones down while keeping `replicas - maxUnavailable` available; `Recreate` scales
//!   every old ReplicaSet to zero and starts the new one only when no old pod is left;
//! - changing `replicas` mid-rollout scales all active ReplicaSets proportionally;
//! - paused Deployments are only scaled, cleaned up and have their status updated;
//! - old ReplicaSets scaled to zero beyond `revisionHistoryLimit` (default 10) are deleted,
//!   lowest revision first, once the rollout is complete;
//! - the status carries the replica counts and the `Available` and `Progressing` conditions
//!   `kubectl rollout status` reads.
//!
//! # The runner's duties
//!
//! Per sync, in this order: create `create_rs` (on "already exists", requeue: the next sync
//! sees the name taken and picks another hash); update each ReplicaSet named in `scale`,
//! `update_rs_annotations` or `set_min_ready_seconds` (one update per ReplicaSet;
//! [`DeploymentPlan::apply_to_rs`] applies all three to a copy); patch ownerReferences for
//! `adopt` ([`controller_ref`]) and `release`; delete `delete_rs`; set the Deployment's
//! `deployment.kubernetes.io/revision` annotation to `deployment_revision` when set; write
//! `status` when it differs from the current one; requeue after `requeue_after` when set
//! (progress deadline checks). Any change to an owned ReplicaSet, and for `Recreate`
//! Deployments the deletion of their pods, requeues the Deployment.

mod rollout;
mod status;
mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;

use crate::podutil::{self, Claim};

/// The `kind` of a Deployment.
pub const KIND: &str = "Deployment";
/// The `apiVersion` of a Deployment.
pub const API_VERSION: &str = "apps/v1";
/// Label telling apart the ReplicaSets (and pods) of different templates of one Deployment.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Revision annotation on ReplicaSets (and the Deployment itself).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a ReplicaSet that was rolled back to, comma-separated.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `replicas` when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's `replicas + maxSurge` when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";

/// Default `revisionHistoryLimit`.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// Condition types of a Deployment.
pub mod condition {
    /// At least `replicas - maxUnavailable` pods are available.
    pub const AVAILABLE: &str = "Available";
    /// How the rollout is going.
    pub const PROGRESSING: &str = "Progressing";
    /// A ReplicaSet failed to create or delete pods.
    pub const REPLICA_FAILURE: &str = "ReplicaFailure";
}

/// Condition reasons of a Deployment.
pub mod reason {
    /// `Available=True`.
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// `Available=False`.
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
    /// `Progressing=True`: the new ReplicaSet was just created.
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    /// `Progressing=True`: an existing ReplicaSet was found to be the new one.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// `Progressing=True`: the rollout made progress.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// `Progressing=True`: the rollout is complete.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// `Progressing=False`: no progress within `progressDeadlineSeconds`.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// `Progressing=Unknown`: the Deployment is paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// `Progressing=Unknown`: the Deployment was resumed.
    pub const RESUMED: &str = "DeploymentResumed";
}

/// What one sync of a Deployment wants done; see the module docs for the order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentPlan {
    /// Orphan ReplicaSets to adopt: add [`controller_ref`] to their ownerReferences.
    pub adopt: Vec<String>,
    /// Owned ReplicaSets that no longer match: remove the reference to this Deployment.
    pub release: Vec<String>,
    /// The new ReplicaSet to create, complete (name, labels, annotations, owner, spec).
    pub create_rs: Option<ReplicaSet>,
    /// Existing ReplicaSets to scale: `(name, spec.replicas)`.
    pub scale: Vec<(String, i32)>,
    /// Existing ReplicaSets whose annotations change: `(name, complete new annotations)`.
    pub update_rs_annotations: Vec<(String, BTreeMap<String, String>)>,
    /// Existing ReplicaSets whose `spec.minReadySeconds` follows the Deployment's.
    pub set_min_ready_seconds: Vec<(String, Option<i32>)>,
    /// Old ReplicaSets to delete (history beyond `revisionHistoryLimit`).
    pub delete_rs: Vec<String>,
    /// The value the Deployment's `deployment.kubernetes.io/revision` annotation must get.
    pub deployment_revision: Option<String>,
    /// The status to write when it differs from the current one.
    pub status: DeploymentStatus,
    /// Sync again after this long (to notice a missed progress deadline).
    pub requeue_after: Option<Duration>,
}

impl DeploymentPlan {
    /// Applies this plan's changes to the ReplicaSet of the same name (scale, annotations,
    /// `minReadySeconds`); true when anything changed.
    pub fn apply_to_rs(&self, rs: &mut ReplicaSet) -> bool {
        let Some(name) = rs.metadata.name.clone() else {
            return false;
        };
        let mut changed = false;
        for (n, replicas) in &self.scale {
            if *n == name {
                util::set_spec_replicas(rs, *replicas);
                changed = true;
            }
        }
        for (n, annotations) in &self.update_rs_annotations {
            if *n == name {
                rs.metadata.annotations = Some(annotations.clone());
                changed = true;
            }
        }
        for (n, seconds) in &self.set_min_ready_seconds {
            if *n == name {
                rs.spec
                    .get_or_insert_with(Default::default)
                    .min_ready_seconds = *seconds;
                changed = true;
            }
        }
        changed
    }
}

/// The owner reference that marks a ReplicaSet as controlled by `d`.
pub fn controller_ref(d: &Deployment) -> OwnerReference {
    podutil::controller_ref(API_VERSION, KIND, &d.metadata)
}

/// The `pod-template-hash` of a template (no name collisions so far); see
/// [`pod_template_hash_with_collisions`].
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    util::template_hash(template, None)
}

/// The `pod-template-hash` of a template given the Deployment's `status.collisionCount`:
/// 32-bit FNV-1a over the template's JSON (plus the collision count), its decimal digits
/// rendered in the alphabet `bcdfghjklmnpqrstvwxz2456789`. Stable for equal templates.
pub fn pod_template_hash_with_collisions(
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
) -> String {
    util::template_hash(template, collision_count)
}

/// The desired replica count (`spec.replicas`, default 1).
pub fn desired_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Reconciles one Deployment against all ReplicaSets and pods of its namespace at `now`.
pub fn reconcile(
    d: &Deployment,
    rss: &[ReplicaSet],
    pods: &[Pod],
    now: Timestamp,
) -> DeploymentPlan {
    let Some(spec) = d.spec.as_ref() else {
        return DeploymentPlan {
            status: d.status.clone().unwrap_or_default(),
            ..DeploymentPlan::default()
        };
    };
    let Some(selector) = podutil::workload_selector(&spec.selector) else {
        // An empty (or invalid) selector would select every pod: do nothing but note that
        // this generation was seen.
        let mut status = d.status.clone().unwrap_or_default();
        let generation = d.metadata.generation.unwrap_or(0);
        if status.observed_generation.unwrap_or(0) < generation {
            status.observed_generation = Some(generation);
        }
        return DeploymentPlan {
            status,
            ..DeploymentPlan::default()
        };
    };

    let mut run = Run::new(d, spec, now, &selector, rss);
    if d.metadata.deletion_timestamp.is_some() {
        let new = run.sync_revision(false);
        run.sync_deployment_status(new);
    } else {
        run.check_paused_conditions();
        if spec.paused == Some(true) || run.is_scaling_event() {
            run.scale_only();
        } else {
            match util::strategy(d, run.replicas) {
                util::Strategy::Rolling { .. } => run.rollout_rolling(),
                util::Strategy::Recreate => run.rollout_recreate(pods, &selector),
                util::Strategy::Unknown => {
                    let new = run.sync_revision(false);
                    run.sync_deployment_status(new);
                }
            }
        }
    }
    run.into_plan()
}

/// One sync in progress: working copies of the Deployment's status and its ReplicaSets that
/// the steps below update as upstream's API calls would; the plan is their difference from
/// what was observed.
#[derive(Debug)]
struct Run<'a> {
    d: &'a Deployment,
    spec: &'a DeploymentSpec,
    /// `now` at API precision.
    now: Timestamp,
    /// `spec.replicas`.
    replicas: i32,
    /// Working copy of `d.status`.
    status: DeploymentStatus,
    /// Owned ReplicaSets: `original` observed ones, then the one created in this sync.
    rss: Vec<ReplicaSet>,
    /// The observed ReplicaSets, as observed (`rss[..original.len()]` before changes).
    original: Vec<ReplicaSet>,
    /// Indices into `rss` in the order they were first changed.
    touched: Vec<usize>,
    /// Indices into `rss` to delete, in order.
    deleted: Vec<usize>,
    /// Names of every ReplicaSet in the namespace (a new name must avoid them).
    taken_names: BTreeSet<String>,
    adopt: Vec<String>,
    release: Vec<String>,
    revision: Option<String>,
    requeue_after: Option<Duration>,
}

impl<'a> Run<'a> {
    fn new(
        d: &'a Deployment,
        spec: &'a DeploymentSpec,
        now: Timestamp,
        selector: &kubeutil::selector::LabelSelector,
        all: &[ReplicaSet],
    ) -> Self {
        let mut owned = Vec::new();
        let mut adopt = Vec::new();
        let mut release = Vec::new();
        let mut taken_names = BTreeSet::new();
        for rs in all {
            if !podutil::same_namespace(&d.metadata, &rs.metadata) {
                continue;
            }
            taken_names.insert(util::name_of(&rs.metadata));
            match podutil::claim(&d.metadata, KIND, Some(selector), &rs.metadata) {
                Claim::Owned => owned.push(rs.clone()),
                Claim::Adopt => {
                    adopt.push(util::name_of(&rs.metadata));
                    let mut rs = rs.clone();
                    podutil::adopt(&mut rs.metadata, controller_ref(d));
                    owned.push(rs);
                }
                Claim::Release => release.push(util::name_of(&rs.metadata)),
                Claim::Ignore => {}
            }
        }
        Run {
            d,
            spec,
            now: podutil::api_now(now),
            replicas: desired_replicas(d),
            status: d.status.clone().unwrap_or_default(),
            original: owned.clone(),
            rss: owned,
            touched: Vec::new(),
            deleted: Vec::new(),
            taken_names,
            adopt,
            release,
            revision: None,
            requeue_after: None,
        }
    }

    fn name(&self) -> String {
        util::name_of(&self.d.metadata)
    }

    fn max_surge(&self) -> i32 {
        match util::strategy(self.d, self.replicas) {
            util::Strategy::Rolling { max_surge, .. } => max_surge,
            _ => 0,
        }
    }

    fn max_unavailable(&self) -> i32 {
        match util::strategy(self.d, self.replicas) {
            util::Strategy::Rolling {
                max_unavailable, ..
            } => max_unavailable,
            _ => 0,
        }
    }

    fn is_rolling(&self) -> bool {
        matches!(
            util::strategy(self.d, self.replicas),
            util::Strategy::Rolling { .. }
        )
    }

    fn touch(&mut self, i: usize) {
        if !self.touched.contains(&i) {
            self.touched.push(i);
        }
    }

    /// Indices of the ReplicaSets still in play (not being deleted by this sync).
    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.rss.len()).filter(|i| !self.deleted.contains(i))
    }

    /// Indices of the old ReplicaSets: live ones other than `new`.
    fn old(&self, new: Option<usize>) -> Vec<usize> {
        self.live().filter(|i| Some(*i) != new).collect()
    }

    fn into_plan(self) -> DeploymentPlan {
        let mut plan = DeploymentPlan {
            adopt: self.adopt,
            release: self.release,
            deployment_revision: self.revision,
            status: status::normalized(self.status),
            requeue_after: self.requeue_after,
            ..DeploymentPlan::default()
        };
        for &i in &self.touched {
            let Some(before) = self.original.get(i) else {
                continue;
            };
            let after = &self.rss[i];
            let name = util::name_of(&after.metadata);
            if util::spec_replicas(before) != util::spec_replicas(after) {
                plan.scale.push((name.clone(), util::spec_replicas(after)));
            }
            if before.metadata.annotations != after.metadata.annotations {
                plan.update_rs_annotations.push((
                    name.clone(),
                    after.metadata.annotations.clone().unwrap_or_default(),
                ));
            }
            let min_ready = |rs: &ReplicaSet| rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if min_ready(before).unwrap_or(0) != min_ready(after).unwrap_or(0) {
                plan.set_min_ready_seconds.push((name, min_ready(after)));
            }
        }
        plan.create_rs = self.rss.get(self.original.len()).cloned();
        plan.delete_rs = self
            .deleted
            .iter()
            .map(|&i| util::name_of(&self.rss[i].metadata))
            .collect();
        plan
    }
}
