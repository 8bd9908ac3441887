//! Small Deployment helpers: strategy fenceposts, revisions and replica annotations on
//! ReplicaSets, template identity (equality ignoring the hash label, the hash itself) and
//! orderings.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
};

/// Longest `revision-history` annotation kept, in characters (upstream's limit).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Deployment annotations never copied onto its ReplicaSets.
const ANNOTATIONS_NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];

/// The "safe" alphabet upstream renders hashes in: no vowels, no easily confused characters.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// How a Deployment replaces its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strategy {
    /// Surge new pods and retire old ones within the fenceposts.
    Rolling {
        max_surge: i32,
        max_unavailable: i32,
    },
    /// Retire every old pod, then start the new ones.
    Recreate,
    /// A strategy type this controller does not know: only the status is kept up to date.
    Unknown,
}

/// The strategy with its fenceposts resolved against `replicas` (`maxSurge` rounds up,
/// `maxUnavailable` down, each defaulting to 25%; when both resolve to zero
/// `maxUnavailable` becomes 1; `maxUnavailable` never exceeds `replicas`).
pub(super) fn strategy(d: &Deployment, replicas: i32) -> Strategy {
    let spec = d.spec.as_ref();
    let strategy = spec.and_then(|s| s.strategy.as_ref());
    match strategy.and_then(|s| s.type_.as_deref()) {
        None | Some("RollingUpdate") => {}
        Some("Recreate") => return Strategy::Recreate,
        Some(_) => return Strategy::Unknown,
    }
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".to_string());
    let surge = rolling
        .and_then(|r| r.max_surge.as_ref())
        .unwrap_or(&quarter);
    let unavailable = rolling
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter);
    let max_surge = scaled_value(surge, replicas, true);
    let mut max_unavailable = scaled_value(unavailable, replicas, false);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    if replicas == 0 {
        max_unavailable = 0;
    }
    Strategy::Rolling {
        max_surge,
        max_unavailable: max_unavailable.min(replicas.max(0)),
    }
}

/// An int, or a percentage of `total` rounded up or down. Malformed values (which API
/// validation rejects) count as 0.
pub(super) fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let Some(pct) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return 0;
            };
            let product = pct * i64::from(total);
            let value = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
        }
    }
}

// ------------------------------------------------------------------ ReplicaSet accessors

/// `spec.replicas` of a ReplicaSet (default 1).
pub(super) fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Sets `spec.replicas`.
pub(super) fn set_spec_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

/// `status.replicas` (pods the ReplicaSet controller counts as its own).
pub(super) fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// `status.readyReplicas`.
pub(super) fn status_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// `status.availableReplicas`.
pub(super) fn status_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The name of an object (empty when unset).
pub(super) fn name_of(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// The ReplicaSet's pod template (an empty one when unset).
pub(super) fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

// ------------------------------------------------------------------ revisions

/// The ReplicaSet's revision (`deployment.kubernetes.io/revision`); 0 when unset or malformed.
pub(super) fn revision(rs: &ReplicaSet) -> i64 {
    annotation(&rs.metadata, REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One annotation of an object.
pub(super) fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(&rs.metadata, key)?.parse().ok()
}

/// The `desired-replicas` annotation, when set and well-formed.
pub(super) fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

/// The `max-replicas` annotation, when set and well-formed.
pub(super) fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS_ANNOTATION)
}

/// Sets the `desired-replicas` and `max-replicas` annotations; true when either changed.
pub(super) fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired.to_string()),
        (MAX_REPLICAS_ANNOTATION, max.to_string()),
    ] {
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_string(), value);
            changed = true;
        }
    }
    changed
}

/// Whether [`set_replicas_annotations`] would change anything.
pub(super) fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION) != Some(max.to_string().as_str())
}

/// Brings the new ReplicaSet's annotations up to date: the Deployment's own annotations
/// (except controller-managed ones), the revision `new_revision` when higher than the one it
/// has (moving the old one into `revision-history`: a rollback), and, for a ReplicaSet about
/// to be created, the replica annotations. True when anything changed.
pub(super) fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    desired: i32,
    max: i32,
) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if ANNOTATIONS_NOT_COPIED.contains(&k.as_str()) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = annotations.get(REVISION_ANNOTATION).cloned();
    let old_revision = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(v)) => v,
        // A malformed revision is left alone, as upstream does.
        Some(Err(_)) => return changed,
    };
    if old_revision < new_revision {
        annotations.insert(REVISION_ANNOTATION.to_string(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            if let Some(updated) = extend_history(&history, &old) {
                annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), updated);
            }
        }
    }
    if !exists && set_replicas_annotations(rs, desired, max) {
        changed = true;
    }
    changed
}

/// Appends `old` to a comma-separated revision history, dropping the oldest entries to stay
/// within [`MAX_REVISION_HISTORY_CHARS`]; `None` when even `old` alone does not fit.
fn extend_history(history: &str, old: &str) -> Option<String> {
    if history.is_empty() {
        return Some(old.to_string());
    }
    let mut entries: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old.len() + 1;
    let mut start = 0;
    while total > MAX_REVISION_HISTORY_CHARS && start < entries.len() {
        total -= entries[start].len() + 1;
        start += 1;
    }
    if total > MAX_REVISION_HISTORY_CHARS {
        return None;
    }
    entries.drain(..start);
    entries.push(old);
    Some(entries.join(","))
}

// ------------------------------------------------------------------ templates

/// A template with the hash label removed and empty maps and metadata dropped, for
/// comparisons.
fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(meta) = t.metadata.as_mut() {
        if let Some(labels) = meta.labels.as_mut() {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        if meta.labels.as_ref().is_some_and(BTreeMap::is_empty) {
            meta.labels = None;
        }
        if meta.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
            meta.annotations = None;
        }
        if *meta == ObjectMeta::default() {
            t.metadata = None;
        }
    }
    t
}

/// Whether two templates are the same apart from the `pod-template-hash` label.
pub(super) fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// The `pod-template-hash` of a template: 32-bit FNV-1a over the template's JSON (and, after
/// name collisions, the collision count as 8 little-endian bytes), its decimal digits mapped
/// onto the safe alphabet `bcdfghjklmnpqrstvwxz2456789` (at most 10 characters).
pub(super) fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    feed(&json);
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&count.cast_unsigned().to_le_bytes());
        feed(&bytes);
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

// ------------------------------------------------------------------ orderings

/// Oldest first by creation time (unset first), then by name.
pub(super) fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    a.metadata
        .creation_timestamp
        .cmp(&b.metadata.creation_timestamp)
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Lowest revision first, then oldest.
pub(super) fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_like_upstream() {
        let pct = |s: &str| IntOrString::String(s.to_string());
        assert_eq!(scaled_value(&pct("25%"), 10, true), 3);
        assert_eq!(scaled_value(&pct("25%"), 10, false), 2);
        assert_eq!(scaled_value(&pct("25%"), 4, true), 1);
        assert_eq!(scaled_value(&pct("0%"), 4, true), 0);
        assert_eq!(scaled_value(&IntOrString::Int(3), 4, false), 3);
        assert_eq!(scaled_value(&pct("x"), 4, false), 0);
    }

    #[test]
    fn history_keeps_the_newest_entries_within_the_limit() {
        assert_eq!(extend_history("", "1").as_deref(), Some("1"));
        assert_eq!(extend_history("1,3", "4").as_deref(), Some("1,3,4"));
        let long = vec!["123456789"; 200].join(",");
        let out = extend_history(&long, "5").unwrap();
        assert!(out.len() <= MAX_REVISION_HISTORY_CHARS);
        assert!(out.ends_with(",5"));
    }

    #[test]
    fn hash_uses_the_safe_alphabet_and_depends_on_collisions() {
        let t = PodTemplateSpec::default();
        let h = template_hash(&t, None);
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert_eq!(h, template_hash(&t, None));
        assert_ne!(h, template_hash(&t, Some(1)));
    }
}
