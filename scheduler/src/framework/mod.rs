//! The scheduling framework: pure functions that place one pod given a [`Snapshot`] of the
//! nodes and the pods already on them.
//!
//! [`schedule`] runs every [filter](FilterPlugin) on every node (there is no sampling of a
//! percentage of nodes: upstream checks them all below 100 nodes anyway), scores the feasible
//! ones with the [score plugins](ScorePlugin), and picks the highest total, breaking ties at
//! random. When no node fits, the [`FitError`] says why in kube-scheduler's words.
//!
//! There is no preemption, so the message always ends with upstream's wording for "preemption
//! would not help": `preemption: 0/N nodes are available: N Preemption is not helpful for
//! scheduling.`

mod filter;
mod nodeinfo;
mod resources;
mod score;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;

pub use filter::{
    FILTER_PLUGINS, FilterPlugin, FilterResult, REASON_INSUFFICIENT_CPU,
    REASON_INSUFFICIENT_EPHEMERAL_STORAGE, REASON_INSUFFICIENT_MEMORY, REASON_NODE_AFFINITY,
    REASON_NODE_NAME, REASON_NODE_PORTS, REASON_TOO_MANY_PODS, REASON_UNSCHEDULABLE,
    TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, effective_taints, node_affinity,
    node_name, node_ports, node_ready, node_resources_fit, node_unschedulable,
    required_affinity_matches, run_filters, taint_toleration, term_matches, tolerated, tolerates,
};
pub use nodeinfo::{
    HostPort, NodeInfo, Snapshot, is_terminal, pod_host_ports, pod_key, pod_node_name, pod_priority,
};
pub use resources::{
    DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST, Resources, is_sidecar, node_allocatable,
    pod_requests, pod_requests_non_zero,
};
pub use score::{
    MAX_NODE_SCORE, NodeScore, SCORE_PLUGINS, ScorePlugin, balanced_allocation_score,
    intolerable_prefer_no_schedule, least_allocated_score, normalize, preferred_affinity_weight,
    score_nodes,
};

/// Upstream's message when the cluster has no nodes at all.
pub const NO_NODES_MSG: &str = "no nodes available to schedule pods";

/// Upstream's per-node preemption verdict; berth never preempts, so it applies to every node.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// Why a pod fits no node: how many nodes there were and how many nodes gave each reason
/// (a node rejected by NodeResourcesFit may give several).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FitError {
    /// The number of nodes considered.
    pub num_nodes: usize,
    /// Reason to the number of nodes that gave it.
    pub reasons: BTreeMap<String, usize>,
}

impl FitError {
    /// Counts one node's reasons.
    pub fn add_node(&mut self, reasons: &[String]) {
        for r in reasons {
            *self.reasons.entry(r.clone()).or_default() += 1;
        }
    }
}

/// kube-scheduler's text: `0/N nodes are available: <count reason, ...>.` with the
/// `<count> <reason>` strings sorted as strings (so the count leads the sort, as upstream),
/// then the preemption verdict; `no nodes available to schedule pods` with no nodes.
impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.num_nodes;
        if n == 0 {
            return f.write_str(NO_NODES_MSG);
        }
        let mut items: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        items.sort();
        write!(f, "0/{n} nodes are available:")?;
        if !items.is_empty() {
            write!(f, " {}.", items.join(", "))?;
        }
        write!(
            f,
            " preemption: 0/{n} nodes are available: {n} {PREEMPTION_NOT_HELPFUL}."
        )
    }
}

impl std::error::Error for FitError {}

/// The nodes that pass every filter, in name order, or why none does.
pub fn find_feasible_nodes<'s>(
    pod: &Pod,
    snapshot: &'s Snapshot,
) -> Result<Vec<&'s NodeInfo>, FitError> {
    let mut feasible = Vec::new();
    let mut err = FitError {
        num_nodes: snapshot.len(),
        reasons: BTreeMap::new(),
    };
    for node in snapshot.nodes() {
        match run_filters(pod, node) {
            Ok(()) => feasible.push(node),
            Err(reasons) => err.add_node(&reasons),
        }
    }
    if feasible.is_empty() {
        Err(err)
    } else {
        Ok(feasible)
    }
}

/// How many feasible nodes to look for before scoring, as upstream's adaptive
/// `percentageOfNodesToScore`: all nodes up to 100; beyond that `50 - nodes/125` percent
/// (at least 5 %), but never fewer than 100.
pub fn num_feasible_nodes_to_find(num_nodes: usize) -> usize {
    if num_nodes < 100 {
        return num_nodes;
    }
    let percent = 50usize.saturating_sub(num_nodes / 125).max(5);
    (num_nodes * percent / 100).max(100).min(num_nodes)
}

/// Like [`schedule`] on large clusters: filters nodes starting at index `start` (rotating,
/// so successive pods spread the search over the cluster) until
/// [`num_feasible_nodes_to_find`] feasible nodes are found, then scores only those.
/// Returns the chosen node and the index to start the next search at.
pub fn schedule_sampled(
    pod: &Pod,
    snapshot: &Snapshot,
    start: usize,
    rng: &mut impl FnMut() -> u64,
) -> Result<(String, usize), FitError> {
    let nodes: Vec<&NodeInfo> = snapshot.nodes().collect();
    let n = nodes.len();
    let want = num_feasible_nodes_to_find(n);
    let mut feasible = Vec::with_capacity(want);
    let mut err = FitError {
        num_nodes: n,
        reasons: BTreeMap::new(),
    };
    let mut examined = 0;
    for i in 0..n {
        let node = nodes[(start + i) % n];
        examined += 1;
        match run_filters(pod, node) {
            Ok(()) => {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            }
            Err(reasons) => err.add_node(&reasons),
        }
    }
    let next = if n == 0 { 0 } else { (start + examined) % n };
    match feasible.as_slice() {
        [] => Err(err),
        [only] => Ok((only.name().to_string(), next)),
        _ => {
            let scores = score_nodes(pod, &feasible);
            let chosen = select_host(&scores, rng).ok_or(FitError {
                num_nodes: n,
                reasons: BTreeMap::new(),
            })?;
            Ok((chosen, next))
        }
    }
}

/// The name of a node with the highest total, chosen uniformly at random among equals with
/// `rng`; None for no scores.
pub fn select_host(scores: &[NodeScore], rng: &mut impl FnMut() -> u64) -> Option<String> {
    let best = scores.iter().map(|s| s.total).max()?;
    let top: Vec<&NodeScore> = scores.iter().filter(|s| s.total == best).collect();
    let pick = if top.len() == 1 {
        0
    } else {
        (rng() % top.len() as u64) as usize
    };
    top.get(pick).map(|s| s.name.clone())
}

/// Places a pod: filters every node in the snapshot, scores the feasible ones and returns
/// the best node's name (ties broken with `rng`, which must return uniformly random `u64`s).
/// A single feasible node is returned without scoring.
pub fn schedule(
    pod: &Pod,
    snapshot: &Snapshot,
    rng: &mut impl FnMut() -> u64,
) -> Result<String, FitError> {
    let feasible = find_feasible_nodes(pod, snapshot)?;
    if let [only] = feasible.as_slice() {
        return Ok(only.name().to_string());
    }
    let scores = score_nodes(pod, &feasible);
    select_host(&scores, rng).ok_or(FitError {
        num_nodes: snapshot.len(),
        reasons: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_upstream_percentages() {
        assert_eq!(num_feasible_nodes_to_find(50), 50);
        assert_eq!(num_feasible_nodes_to_find(100), 100);
        assert_eq!(num_feasible_nodes_to_find(1000), 420);
        assert_eq!(num_feasible_nodes_to_find(5000), 500);
        assert_eq!(num_feasible_nodes_to_find(10000), 500);
    }

    #[test]
    fn fit_error_text() {
        let mut e = FitError {
            num_nodes: 3,
            ..FitError::default()
        };
        e.add_node(&["Insufficient cpu".into()]);
        e.add_node(&["Insufficient cpu".into(), "Insufficient memory".into()]);
        e.add_node(&["node(s) were unschedulable".into()]);
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 Insufficient memory, 1 node(s) were unschedulable, \
             2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not \
             helpful for scheduling."
        );
        assert_eq!(FitError::default().to_string(), NO_NODES_MSG);
    }

    #[test]
    fn select_host_ties() {
        let s = |name: &str, total| NodeScore {
            name: name.into(),
            plugins: Vec::new(),
            total,
        };
        let scores = [s("a", 10), s("b", 30), s("c", 30)];
        let mut n = 0u64;
        let mut rng = || {
            n += 1;
            n
        };
        assert_eq!(select_host(&scores, &mut rng).as_deref(), Some("c"));
        assert_eq!(select_host(&scores, &mut rng).as_deref(), Some("b"));
        assert_eq!(select_host(&[], &mut rng), None);
    }
}
