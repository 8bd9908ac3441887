//! Helpers the workload controllers share: controller owner references and the
//! adopt/release decision (upstream's "controller ref manager"), structured label selectors on
//! typed objects, and pod readiness and availability.
//!
//! Everything here is pure: objects in, decisions out.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kubeutil::selector;

/// Pod phase of a pod that completed successfully.
pub const PHASE_SUCCEEDED: &str = "Succeeded";
/// Pod phase of a pod that completed unsuccessfully.
pub const PHASE_FAILED: &str = "Failed";

// ------------------------------------------------------------------ selectors

/// Converts a workload's `spec.selector` into a matcher. `None` means the selector selects
/// nothing: it is invalid, or it is empty (`{}`), which for a workload controller must not
/// mean "every object in the namespace" (upstream refuses to act on it).
pub fn workload_selector(sel: &LabelSelector) -> Option<selector::LabelSelector> {
    let value = serde_json::to_value(sel).ok()?;
    let parsed = selector::LabelSelector::from_api(&value).ok()?;
    if parsed.is_empty() {
        None
    } else {
        Some(parsed)
    }
}

/// Whether an object's labels satisfy a selector (an object without labels has none).
pub fn selector_matches(sel: &selector::LabelSelector, meta: &ObjectMeta) -> bool {
    match &meta.labels {
        Some(labels) => sel.matches(labels),
        None => sel.matches(&std::collections::BTreeMap::<String, String>::new()),
    }
}

// ------------------------------------------------------------------ owner references

/// The owner reference that marks `meta`'s object as controlled by the owner
/// (`controller: true`, `blockOwnerDeletion: true`).
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controller owner reference of an object, if it has one.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `r` points at `owner` of `kind`: by UID when the owner has one, else by kind and
/// name (objects built in memory, never stored, have no UID yet).
pub fn ref_points_at(r: &OwnerReference, kind: &str, owner: &ObjectMeta) -> bool {
    match owner.uid.as_deref() {
        Some(uid) if !uid.is_empty() => r.uid == uid,
        _ => r.kind == kind && Some(r.name.as_str()) == owner.name.as_deref(),
    }
}

/// Whether `meta`'s object is controlled by `owner` (of `kind`).
pub fn is_controlled_by(meta: &ObjectMeta, kind: &str, owner: &ObjectMeta) -> bool {
    controller_of(meta).is_some_and(|r| ref_points_at(r, kind, owner))
}

/// Adds `owner_ref` to an object's owner references, replacing any reference with the same
/// UID. The runner applies this (or the equivalent patch) for each adopted name.
pub fn adopt(meta: &mut ObjectMeta, owner_ref: OwnerReference) {
    let refs = meta.owner_references.get_or_insert_with(Vec::new);
    refs.retain(|r| r.uid != owner_ref.uid);
    refs.push(owner_ref);
}

/// Removes the owner reference with `owner_uid` from an object. The runner applies this (or
/// the equivalent patch) for each released name.
pub fn release(meta: &mut ObjectMeta, owner_uid: &str) {
    if let Some(refs) = meta.owner_references.as_mut() {
        refs.retain(|r| r.uid != owner_uid);
        if refs.is_empty() {
            meta.owner_references = None;
        }
    }
}

/// What a controller does with one candidate object (upstream's `ClaimObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Already controlled by the owner and matching: it is the owner's.
    Owned,
    /// An orphan that matches: the owner adopts it and it is the owner's from now on.
    Adopt,
    /// Controlled by the owner but no longer matching: the owner lets go of it.
    Release,
    /// Not the owner's business (another controller's, not matching, or untouchable now).
    Ignore,
}

/// Decides whether `owner` (of `kind`, with `selector`; `None` selects nothing) claims the
/// object `obj`:
///
/// - controlled by another owner: ignored;
/// - controlled by this owner: kept while it matches, else released (unless the owner is
///   being deleted, then simply ignored);
/// - an orphan: adopted when it matches, neither it nor the owner is being deleted, and both
///   live in the same namespace.
pub fn claim(
    owner: &ObjectMeta,
    kind: &str,
    selector: Option<&selector::LabelSelector>,
    obj: &ObjectMeta,
) -> Claim {
    let matches = selector.is_some_and(|s| selector_matches(s, obj));
    let owner_deleting = owner.deletion_timestamp.is_some();
    if let Some(r) = controller_of(obj) {
        if !ref_points_at(r, kind, owner) {
            return Claim::Ignore;
        }
        return if matches {
            Claim::Owned
        } else if owner_deleting {
            Claim::Ignore
        } else {
            Claim::Release
        };
    }
    if owner_deleting || !matches || obj.deletion_timestamp.is_some() {
        return Claim::Ignore;
    }
    if !same_namespace(owner, obj) {
        return Claim::Ignore;
    }
    Claim::Adopt
}

/// Whether two objects live in the same namespace (an unset namespace matches any: objects
/// handed to the pure controllers are usually already filtered by namespace).
pub fn same_namespace(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    match (a.namespace.as_deref(), b.namespace.as_deref()) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

// ------------------------------------------------------------------ pods

/// Whether the pod has finished (phase `Succeeded` or `Failed`).
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some(PHASE_SUCCEEDED | PHASE_FAILED)
    )
}

/// Whether the pod counts towards a controller's replicas: not finished and not being
/// deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    !is_pod_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod became ready (the `Ready` condition's last transition), if it is ready and
/// the time is known.
pub fn pod_ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod is available: ready, and (when `min_ready_seconds > 0`) ready for strictly
/// longer than `min_ready_seconds` at `now`, as upstream.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match pod_ready_since(pod) {
        Some(since) => {
            now.duration_since(since) > SignedDuration::from_secs(min_ready_seconds.into())
        }
        None => false,
    }
}

/// How long until a ready but not yet available pod becomes available, `None` when the pod is
/// not waiting for that (not ready, already available, or `min_ready_seconds` is 0).
pub fn until_available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<SignedDuration> {
    if min_ready_seconds <= 0 || !is_pod_ready(pod) || is_pod_available(pod, min_ready_seconds, now)
    {
        return None;
    }
    let since = pod_ready_since(pod)?;
    let ready_for = now.duration_since(since);
    Some(SignedDuration::from_secs(min_ready_seconds.into()) - ready_for)
}

/// The highest restart count of any of the pod's containers (init containers included).
pub fn max_container_restarts(pod: &Pod) -> i32 {
    let Some(status) = pod.status.as_ref() else {
        return 0;
    };
    let regular = status.container_statuses.as_deref().unwrap_or_default();
    let init = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default();
    regular
        .iter()
        .chain(init)
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

// ------------------------------------------------------------------ time

/// `now` truncated to whole seconds: the precision the API stores `metav1.Time` in, so a
/// status written with it reads back equal.
pub fn api_now(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// A positive `SignedDuration` as a `std::time::Duration` (negative durations become zero).
pub fn to_std(d: SignedDuration) -> std::time::Duration {
    if d.is_negative() {
        std::time::Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}
