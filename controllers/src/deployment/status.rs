//! The Deployment's status: replica counts summed over its ReplicaSets, and the `Available`,
//! `Progressing` and `ReplicaFailure` conditions with upstream's transition rules.

use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;

use super::util::{self, spec_replicas, status_available, status_ready, status_replicas};
use super::{DEFAULT_PROGRESS_DEADLINE_SECONDS, Run, condition, reason};
use crate::podutil;

/// The condition of type `type_`, if present.
pub(super) fn get_condition<'s>(
    status: &'s DeploymentStatus,
    type_: &str,
) -> Option<&'s DeploymentCondition> {
    status
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// Sets a condition: nothing happens when one of the same type already has the same status
/// and reason; a condition whose status is unchanged keeps its `lastTransitionTime`. The
/// condition moves to the end of the list.
fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(current) = get_condition(status, &cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

/// A status as the API stores it: zero counts and empty lists omitted.
pub(super) fn normalized(mut status: DeploymentStatus) -> DeploymentStatus {
    let nonzero = |v: Option<i32>| v.filter(|n| *n != 0);
    status.replicas = nonzero(status.replicas);
    status.updated_replicas = nonzero(status.updated_replicas);
    status.ready_replicas = nonzero(status.ready_replicas);
    status.available_replicas = nonzero(status.available_replicas);
    status.unavailable_replicas = nonzero(status.unavailable_replicas);
    status.terminating_replicas = nonzero(status.terminating_replicas);
    status.observed_generation = status.observed_generation.filter(|g| *g != 0);
    if status.conditions.as_ref().is_some_and(Vec::is_empty) {
        status.conditions = None;
    }
    status
}

impl Run<'_> {
    fn new_condition(
        &self,
        type_: &str,
        status: &str,
        reason: &str,
        message: String,
    ) -> DeploymentCondition {
        DeploymentCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message),
            last_update_time: Some(Time(self.now)),
            last_transition_time: Some(Time(self.now)),
        }
    }

    /// Sets a condition on the working status.
    pub(super) fn set_condition(
        &mut self,
        type_: &str,
        status: &str,
        reason: &str,
        message: String,
    ) {
        let cond = self.new_condition(type_, status, reason, message);
        set_condition(&mut self.status, cond);
    }

    /// Whether progress is judged at all (`progressDeadlineSeconds` not "infinite").
    pub(super) fn has_progress_deadline(&self) -> bool {
        self.progress_deadline_seconds() != i32::MAX
    }

    fn progress_deadline_seconds(&self) -> i32 {
        self.spec
            .progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// Marks `Progressing` as paused or resumed when `spec.paused` changed (unless the
    /// rollout already timed out).
    pub(super) fn check_paused_conditions(&mut self) {
        if !self.has_progress_deadline() {
            return;
        }
        let current_reason =
            get_condition(&self.status, condition::PROGRESSING).and_then(|c| c.reason.clone());
        if current_reason.as_deref() == Some(reason::TIMED_OUT) {
            return;
        }
        let paused_recorded = current_reason.as_deref() == Some(reason::PAUSED);
        let paused = self.spec.paused == Some(true);
        if paused && !paused_recorded {
            self.set_condition(
                condition::PROGRESSING,
                "Unknown",
                reason::PAUSED,
                "Deployment is paused".to_string(),
            );
        } else if !paused && paused_recorded {
            self.set_condition(
                condition::PROGRESSING,
                "Unknown",
                reason::RESUMED,
                "Deployment is resumed".to_string(),
            );
        }
    }

    /// Replica counts from the ReplicaSets and the `Available` condition.
    fn calculate_status(&self, new: Option<usize>) -> DeploymentStatus {
        let live: Vec<usize> = self.live().collect();
        let sum = |f: fn(&k8s_openapi::api::apps::v1::ReplicaSet) -> i32| -> i32 {
            live.iter().map(|&i| f(&self.rss[i])).sum()
        };
        let available = sum(status_available);
        let total = sum(spec_replicas);
        let mut status = DeploymentStatus {
            observed_generation: Some(self.d.metadata.generation.unwrap_or(0)),
            replicas: Some(sum(status_replicas)),
            updated_replicas: Some(new.map_or(0, |i| status_replicas(&self.rss[i]))),
            ready_replicas: Some(sum(status_ready)),
            available_replicas: Some(available),
            unavailable_replicas: Some((total - available).max(0)),
            collision_count: self.status.collision_count,
            conditions: self.status.conditions.clone(),
            terminating_replicas: None,
        };
        let cond = if available >= self.replicas - self.max_unavailable() {
            self.new_condition(
                condition::AVAILABLE,
                "True",
                reason::MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".to_string(),
            )
        } else {
            self.new_condition(
                condition::AVAILABLE,
                "False",
                reason::MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.".to_string(),
            )
        };
        set_condition(&mut status, cond);
        status
    }

    /// The status without judging progress (paused Deployments, scaling, deletion).
    pub(super) fn sync_deployment_status(&mut self, new: Option<usize>) {
        self.status = self.calculate_status(new);
    }

    /// Whether `status` shows the rollout done: every replica updated and available, no old
    /// one left, the current generation observed.
    pub(super) fn is_complete(&self, status: &DeploymentStatus) -> bool {
        let r = self.replicas;
        status.updated_replicas.unwrap_or(0) == r
            && status.replicas.unwrap_or(0) == r
            && status.available_replicas.unwrap_or(0) == r
            && status.observed_generation.unwrap_or(0) >= self.d.metadata.generation.unwrap_or(0)
    }

    /// The status after a rollout step, judging progress against the progress deadline.
    pub(super) fn sync_rollout_status(&mut self, new: Option<usize>) {
        let mut status = self.calculate_status(new);
        let has_deadline = self.has_progress_deadline();
        if !has_deadline {
            remove_condition(&mut status, condition::PROGRESSING);
        }
        let current = get_condition(&self.status, condition::PROGRESSING).cloned();
        let already_complete = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE));
        let rs_name = new.map(|i| util::name_of(&self.rss[i].metadata));
        let subject = match &rs_name {
            Some(name) => format!("ReplicaSet {name:?}"),
            None => format!("Deployment {:?}", self.name()),
        };
        if has_deadline && !already_complete {
            if self.is_complete(&status) {
                let cond = self.new_condition(
                    condition::PROGRESSING,
                    "True",
                    reason::NEW_RS_AVAILABLE,
                    format!("{subject} has successfully progressed."),
                );
                set_condition(&mut status, cond);
            } else if made_progress(&self.status, &status) {
                let mut cond = self.new_condition(
                    condition::PROGRESSING,
                    "True",
                    reason::RS_UPDATED,
                    format!("{subject} is progressing."),
                );
                // Progress refreshes lastUpdateTime even when the reason stays the same.
                if let Some(current) = &current {
                    if current.status == "True" {
                        cond.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, condition::PROGRESSING);
                }
                set_condition(&mut status, cond);
            } else if self.timed_out(&status) {
                let cond = self.new_condition(
                    condition::PROGRESSING,
                    "False",
                    reason::TIMED_OUT,
                    format!("{subject} has timed out progressing."),
                );
                set_condition(&mut status, cond);
            }
        }

        match self.replica_failure(new) {
            Some(cond) => set_condition(&mut status, cond),
            None => remove_condition(&mut status, condition::REPLICA_FAILURE),
        }
        self.status = status;
        self.requeue_after = self.progress_check_after();
    }

    /// Whether the last progress was longer than `progressDeadlineSeconds` ago.
    fn timed_out(&self, status: &DeploymentStatus) -> bool {
        let Some(cond) = get_condition(status, condition::PROGRESSING) else {
            return false;
        };
        match cond.reason.as_deref() {
            Some(reason::NEW_RS_AVAILABLE) => return false,
            Some(reason::TIMED_OUT) => return true,
            _ => {}
        }
        let deadline = SignedDuration::from_secs(self.progress_deadline_seconds().into());
        match &cond.last_update_time {
            Some(from) => self.now.duration_since(from.0) > deadline,
            None => true,
        }
    }

    /// When to look again for a missed deadline: a rollout is under way (not complete, not
    /// timed out, not paused) and `Progressing` was last updated at a known time.
    fn progress_check_after(&self) -> Option<std::time::Duration> {
        if !self.has_progress_deadline() || self.spec.paused == Some(true) {
            return None;
        }
        let cond = get_condition(&self.status, condition::PROGRESSING)?;
        // A complete rollout (even one that lost a pod since) and a timed-out one are not
        // judged again.
        if self.is_complete(&self.status)
            || matches!(
                cond.reason.as_deref(),
                Some(reason::TIMED_OUT | reason::NEW_RS_AVAILABLE)
            )
        {
            return None;
        }
        let since = self.now.duration_since(cond.last_update_time.as_ref()?.0);
        let left = SignedDuration::from_secs(self.progress_deadline_seconds().into()) - since;
        Some(podutil::to_std(left) + std::time::Duration::from_secs(1))
    }

    /// A `ReplicaFailure` condition of the new ReplicaSet, else of any other one.
    fn replica_failure(&self, new: Option<usize>) -> Option<DeploymentCondition> {
        let failure = |i: usize| {
            self.rss[i]
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_deref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == condition::REPLICA_FAILURE))
                .map(|c| DeploymentCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
        };
        new.and_then(failure)
            .or_else(|| self.live().find_map(failure))
    }
}

/// Whether the rollout moved since `old`: more updated, ready or available replicas, or
/// fewer old ones.
fn made_progress(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let v = |x: Option<i32>| x.unwrap_or(0);
    let old_old = v(old.replicas) - v(old.updated_replicas);
    let new_old = v(new.replicas) - v(new.updated_replicas);
    v(new.updated_replicas) > v(old.updated_replicas)
        || new_old < old_old
        || v(new.ready_replicas) > v(old.ready_replicas)
        || v(new.available_replicas) > v(old.available_replicas)
}
