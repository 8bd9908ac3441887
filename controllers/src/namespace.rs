//! The namespace controller: empties a namespace that is being deleted, then releases it.
//!
//! When a namespace has a deletion timestamp and a non-empty `spec.finalizers`, the runner
//! lists every namespaced resource in it and hands [`plan`] what it found ([`Content`]).
//! Following kube-controller-manager's namespace deleter:
//!
//! 1. the phase becomes `Terminating` (if the apiserver has not already set it);
//! 2. every resource with objects left is deleted (a delete-collection per resource, in
//!    the background);
//! 3. the namespace's deletion conditions are brought up to date (all five of upstream's
//!    types, each `False` with an all-clear reason when nothing is wrong; counts of what
//!    remains and which finalizers hold it);
//! 4. once nothing remains and nothing failed, the `kubernetes` finalizer is removed from
//!    `spec.finalizers` through the `finalize` subresource; the apiserver then removes the
//!    namespace when no finalizer is left.
//!
//! A namespace whose `spec.finalizers` is already empty is finished and left alone.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::podutil::api_now;

/// The `spec.finalizers` token this controller owns.
pub const FINALIZER_KUBERNETES: &str = "kubernetes";

/// Condition: discovering the namespaced resources failed.
pub const COND_DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
/// Condition: some group versions could not be parsed.
pub const COND_GV_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
/// Condition: deleting some content failed.
pub const COND_CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
/// Condition: some content remains.
pub const COND_CONTENT_REMAINING: &str = "NamespaceContentRemaining";
/// Condition: some remaining content is held by finalizers.
pub const COND_FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// What is left of one resource in the namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remaining {
    /// Objects still listed.
    pub count: usize,
    /// Finalizer -> how many of those objects carry it.
    pub finalizers: BTreeMap<String, usize>,
}

impl From<usize> for Remaining {
    fn from(count: usize) -> Self {
        Remaining {
            count,
            finalizers: BTreeMap::new(),
        }
    }
}

/// What the runner observed in the namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// Per resource (`pods`, `deployments.apps`, ...): what is left.
    pub remaining: BTreeMap<String, Remaining>,
    /// Group versions whose discovery failed (their resources could not be listed).
    pub discovery_failures: Vec<String>,
    /// Group versions that could not be parsed.
    pub gv_parse_failures: Vec<String>,
    /// Errors from the last deletion attempt.
    pub deletion_errors: Vec<String>,
}

impl Content {
    /// Content from plain per-resource counts.
    pub fn from_counts<I, S>(counts: I) -> Self
    where
        I: IntoIterator<Item = (S, usize)>,
        S: Into<String>,
    {
        Content {
            remaining: counts
                .into_iter()
                .map(|(r, n)| (r.into(), Remaining::from(n)))
                .collect(),
            ..Default::default()
        }
    }

    fn left(&self) -> impl Iterator<Item = (&String, &Remaining)> {
        self.remaining.iter().filter(|(_, r)| r.count > 0)
    }
}

/// What to do for one namespace. Apply in field order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NsPlan {
    /// Set `status.phase` to `Terminating` (status subresource).
    pub set_terminating: bool,
    /// Resources to delete everything of in the namespace, sorted.
    pub delete: Vec<String>,
    /// The new `status.conditions`, when they change.
    pub conditions: Option<Vec<NamespaceCondition>>,
    /// The new `spec.finalizers`, to PUT through `namespaces/<name>/finalize`.
    pub finalize: Option<Vec<String>>,
}

impl NsPlan {
    /// True when nothing needs doing.
    pub fn is_empty(&self) -> bool {
        !self.set_terminating
            && self.delete.is_empty()
            && self.conditions.is_none()
            && self.finalize.is_none()
    }
}

fn cond(type_: &str, failing: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if failing { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: None,
    }
}

fn desired_conditions(content: &Content) -> Vec<NamespaceCondition> {
    let mut out = Vec::new();
    out.push(if content.discovery_failures.is_empty() {
        cond(
            COND_DISCOVERY_FAILURE,
            false,
            "ResourcesDiscovered",
            "All resources were discovered".into(),
        )
    } else {
        cond(
            COND_DISCOVERY_FAILURE,
            true,
            "DiscoveryFailed",
            format!(
                "Discovery failed for: {}",
                content.discovery_failures.join(", ")
            ),
        )
    });
    out.push(if content.gv_parse_failures.is_empty() {
        cond(
            COND_GV_PARSING_FAILURE,
            false,
            "ParsedGroupVersions",
            "All group versions were parsed".into(),
        )
    } else {
        cond(
            COND_GV_PARSING_FAILURE,
            true,
            "GroupVersionParsingFailed",
            format!("Could not parse: {}", content.gv_parse_failures.join(", ")),
        )
    });
    out.push(if content.deletion_errors.is_empty() {
        cond(
            COND_CONTENT_FAILURE,
            false,
            "ContentDeleted",
            "All content was deleted; some may still be finalizing".into(),
        )
    } else {
        cond(
            COND_CONTENT_FAILURE,
            true,
            "ContentDeletionFailed",
            format!(
                "Deleting content failed: {}",
                content.deletion_errors.join("; ")
            ),
        )
    });
    let left: Vec<String> = content
        .left()
        .map(|(r, rem)| format!("{r}: {} left", rem.count))
        .collect();
    out.push(if left.is_empty() {
        cond(
            COND_CONTENT_REMAINING,
            false,
            "ContentRemoved",
            "All content was removed".into(),
        )
    } else {
        cond(
            COND_CONTENT_REMAINING,
            true,
            "SomeResourcesRemain",
            format!("Resources remain: {}", left.join(", ")),
        )
    });
    let mut by_finalizer: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, rem) in content.left() {
        for (f, n) in &rem.finalizers {
            *by_finalizer.entry(f.as_str()).or_default() += n;
        }
    }
    by_finalizer.retain(|_, n| *n > 0);
    out.push(if by_finalizer.is_empty() {
        cond(
            COND_FINALIZERS_REMAINING,
            false,
            "ContentHasNoFinalizers",
            "No remaining content is held by finalizers".into(),
        )
    } else {
        let held: Vec<String> = by_finalizer
            .iter()
            .map(|(f, n)| format!("{f} on {n} objects"))
            .collect();
        cond(
            COND_FINALIZERS_REMAINING,
            true,
            "SomeFinalizersRemain",
            format!("Finalizers hold remaining content: {}", held.join(", ")),
        )
    });
    out
}

/// The namespace's conditions with the deletion ones replaced by `wanted` (transition time
/// kept when the status does not change, else `now`); `None` when nothing changes.
fn merge_conditions(
    current: &[NamespaceCondition],
    wanted: Vec<NamespaceCondition>,
    now: Timestamp,
) -> Option<Vec<NamespaceCondition>> {
    let mut out: Vec<NamespaceCondition> = current
        .iter()
        .filter(|c| !wanted.iter().any(|w| w.type_ == c.type_))
        .cloned()
        .collect();
    let mut changed = false;
    for mut w in wanted {
        match current.iter().find(|c| c.type_ == w.type_) {
            Some(c) => {
                w.last_transition_time = if c.status == w.status {
                    c.last_transition_time.clone()
                } else {
                    Some(Time(now))
                };
                changed |= c.status != w.status || c.reason != w.reason || c.message != w.message;
            }
            None => {
                w.last_transition_time = Some(Time(now));
                changed = true;
            }
        }
        out.push(w);
    }
    changed.then_some(out)
}

/// Plans one pass over a namespace. Nothing for a namespace that is not being deleted or
/// whose `spec.finalizers` is already empty. See the module doc.
pub fn plan(ns: &Namespace, content: &Content, now: Timestamp) -> NsPlan {
    let mut plan = NsPlan::default();
    if ns.metadata.deletion_timestamp.is_none() {
        return plan;
    }
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if finalizers.is_empty() {
        return plan;
    }
    let now = api_now(now);
    let status = ns.status.as_ref();
    plan.set_terminating = status.and_then(|s| s.phase.as_deref()) != Some("Terminating");
    plan.delete = content.left().map(|(r, _)| r.clone()).collect();
    let current = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    plan.conditions = merge_conditions(current, desired_conditions(content), now);

    let done = plan.delete.is_empty()
        && content.discovery_failures.is_empty()
        && content.gv_parse_failures.is_empty()
        && content.deletion_errors.is_empty();
    if done && finalizers.iter().any(|f| f == FINALIZER_KUBERNETES) {
        plan.finalize = Some(
            finalizers
                .into_iter()
                .filter(|f| f != FINALIZER_KUBERNETES)
                .collect(),
        );
    }
    plan
}
