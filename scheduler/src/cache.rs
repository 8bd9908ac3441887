//! The assume cache: pods the scheduler has placed but the watch has not yet shown bound.
//!
//! Binding is an API call and the watch event confirming it arrives later. Scheduling the
//! next pod from the watched state alone would not see the previous decisions and could
//! overcommit a node, so each decision is *assumed*: [`AssumeCache::snapshot`] counts assumed
//! pods on their nodes on top of what the watch shows, and drops an assumption as soon as the
//! watch shows the pod bound (the watched copy then counts instead; a pod is never counted
//! twice).
//!
//! Life of an assumption: [`assume`](AssumeCache::assume) when the pod is placed;
//! [`finish_binding`](AssumeCache::finish_binding) when the bind call returns, which starts a
//! 30 s deadline; [`confirm`](AssumeCache::confirm) when the watch shows the pod bound;
//! [`forget`](AssumeCache::forget) when binding failed or the pod was deleted;
//! [`expire`](AssumeCache::expire) drops assumptions whose deadline passed unconfirmed (the
//! bind was lost), so their room is not held forever. Pure: time is passed in.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::{Snapshot, pod_key, pod_node_name};

/// How long an assumption outlives a finished binding without the watch confirming it.
pub const DEFAULT_ASSUME_TTL: Duration = Duration::from_secs(30);

/// One assumed pod.
#[derive(Debug, Clone)]
pub struct AssumedPod {
    /// The pod as assumed, with `spec.nodeName` set to the chosen node.
    pub pod: Pod,
    /// The chosen node.
    pub node: String,
    /// When the assumption expires; None until the binding finished (or never).
    pub deadline: Option<Instant>,
}

/// Pods placed but not yet seen bound, by key (`namespace/name`).
#[derive(Debug, Clone)]
pub struct AssumeCache {
    ttl: Duration,
    assumed: BTreeMap<String, AssumedPod>,
}

impl Default for AssumeCache {
    fn default() -> Self {
        Self::new()
    }
}

impl AssumeCache {
    /// An empty cache with the 30 s expiry.
    pub fn new() -> Self {
        Self::with_ttl(DEFAULT_ASSUME_TTL)
    }

    /// An empty cache whose assumptions expire `ttl` after binding finished
    /// (`Duration::MAX`: never).
    pub fn with_ttl(ttl: Duration) -> Self {
        AssumeCache {
            ttl,
            assumed: BTreeMap::new(),
        }
    }

    /// Records that a pod was placed on a node; from now on snapshots count it there.
    /// Re-assuming a pod replaces the earlier assumption.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let mut pod = pod.clone();
        pod.spec.get_or_insert_with(Default::default).node_name = Some(node.to_string());
        self.assumed.insert(
            pod_key(&pod),
            AssumedPod {
                pod,
                node: node.to_string(),
                deadline: None,
            },
        );
    }

    /// The bind call for a pod returned: its assumption now expires `ttl` after `now` unless
    /// confirmed. Returns false if the pod is not assumed.
    pub fn finish_binding(&mut self, key: &str, now: Instant) -> bool {
        match self.assumed.get_mut(key) {
            Some(a) => {
                // A TTL too long to represent (`Duration::MAX`) never expires.
                a.deadline = now.checked_add(self.ttl);
                true
            }
            None => false,
        }
    }

    /// Drops an assumption (the bind failed, or the pod was deleted); returns the pod as it
    /// was assumed.
    pub fn forget(&mut self, key: &str) -> Option<Pod> {
        self.assumed.remove(key).map(|a| a.pod)
    }

    /// A watched pod: once it shows a node (`spec.nodeName`), the watch accounts for it and
    /// the assumption is dropped. Returns whether an assumption was dropped.
    pub fn confirm(&mut self, pod: &Pod) -> bool {
        if pod_node_name(pod).is_none() {
            return false;
        }
        self.assumed.remove(&pod_key(pod)).is_some()
    }

    /// Drops assumptions whose binding finished more than the expiry ago without the watch
    /// confirming it; returns their keys.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .assumed
            .iter()
            .filter(|(_, a)| a.deadline.is_some_and(|d| now > d))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.assumed.remove(k);
        }
        expired
    }

    /// Whether a pod is assumed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains_key(key)
    }

    /// One assumption.
    pub fn get(&self, key: &str) -> Option<&AssumedPod> {
        self.assumed.get(key)
    }

    /// The assumptions, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AssumedPod)> {
        self.assumed.iter().map(|(k, a)| (k.as_str(), a))
    }

    /// The number of assumptions.
    pub fn len(&self) -> usize {
        self.assumed.len()
    }

    /// True when nothing is assumed.
    pub fn is_empty(&self) -> bool {
        self.assumed.is_empty()
    }

    /// A snapshot of watched nodes and pods with the assumed pods added. An assumed pod is
    /// left out when the watch already shows it bound (the watched copy counts, on whatever
    /// node it names, or not at all once finished) or shows a different pod under its name
    /// (a different UID: it was deleted and re-created).
    pub fn snapshot<'a>(
        &self,
        nodes: impl IntoIterator<Item = &'a Node>,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> Snapshot {
        let mut snap = Snapshot::new(nodes, std::iter::empty());
        // Key to (watched as bound, UID).
        let mut watched: HashMap<String, (bool, Option<&str>)> = HashMap::new();
        for pod in pods {
            watched.insert(
                pod_key(pod),
                (pod_node_name(pod).is_some(), pod.metadata.uid.as_deref()),
            );
            if pod_node_name(pod).is_some() {
                snap.add_pod(pod.clone());
            }
        }
        for (key, a) in &self.assumed {
            let superseded = watched.get(key).is_some_and(|&(bound, uid)| {
                let other_pod = matches!((uid, a.pod.metadata.uid.as_deref()),
                    (Some(w), Some(mine)) if w != mine);
                bound || other_pod
            });
            if !superseded {
                snap.add_pod(a.pod.clone());
            }
        }
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}))
        .unwrap()
    }

    fn pod(name: &str, uid: &str, node: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": uid},
            "spec": {"nodeName": node, "containers": [{"name": "c",
                "resources": {"requests": {"cpu": "400m"}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn watched_bound_pod_supersedes_assumption() {
        let nodes = [node("a"), node("b")];
        let mut cache = AssumeCache::new();
        cache.assume(&pod("p", "u1", None), "a");
        // Watch still shows it pending: the assumption counts.
        let snap = cache.snapshot(&nodes, &[pod("p", "u1", None)]);
        assert_eq!(snap.get("a").unwrap().requested.milli_cpu, 400);
        // Watch shows it bound (to b, say): only the watched copy counts.
        let snap = cache.snapshot(&nodes, &[pod("p", "u1", Some("b"))]);
        assert_eq!(snap.get("a").unwrap().requested.milli_cpu, 0);
        assert_eq!(snap.get("b").unwrap().requested.milli_cpu, 400);
        // Same node: counted once.
        let snap = cache.snapshot(&nodes, &[pod("p", "u1", Some("a"))]);
        assert_eq!(snap.get("a").unwrap().requested.milli_cpu, 400);
        // A re-created pod under the same name is not the assumed one.
        let snap = cache.snapshot(&nodes, &[pod("p", "u2", None)]);
        assert_eq!(snap.get("a").unwrap().requested.milli_cpu, 0);
        assert!(!cache.confirm(&pod("p", "u1", None)));
        assert!(cache.confirm(&pod("p", "u1", Some("a"))));
        assert!(cache.is_empty());
    }

    #[test]
    fn forget_and_finish() {
        let mut cache = AssumeCache::new();
        let t = Instant::now();
        assert!(!cache.finish_binding("ns/p", t));
        cache.assume(&pod("p", "u1", None), "a");
        assert_eq!(cache.get("ns/p").unwrap().node, "a");
        assert_eq!(pod_node_name(&cache.get("ns/p").unwrap().pod), Some("a"));
        assert!(cache.finish_binding("ns/p", t));
        assert!(cache.forget("ns/p").is_some());
        assert!(cache.forget("ns/p").is_none());
        assert!(cache.expire(t + Duration::from_secs(3600)).is_empty());
        let mut forever = AssumeCache::with_ttl(Duration::MAX);
        forever.assume(&pod("p", "u1", None), "a");
        assert!(forever.finish_binding("ns/p", t));
        assert!(forever.expire(t + Duration::from_secs(86_400)).is_empty());
        assert!(forever.is_assumed("ns/p"));
    }
}
