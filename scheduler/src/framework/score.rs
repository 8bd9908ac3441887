//! Score plugins: how well a feasible node suits a pod, each 0..=100, combined with
//! upstream's default weights (TaintToleration 3, NodeAffinity 2, the resource scores 1).
//!
//! - NodeResourcesFit, `LeastAllocated`: the free fraction of CPU and memory after placing the
//!   pod, equally weighted; requests count with the defaults for containers that set none
//!   (100m CPU, 200 MiB), so request-less pods still spread.
//! - NodeResourcesBalancedAllocation: `(1 - std) * 100` over the CPU and memory fractions
//!   used after placing the pod (actual requests), which favours nodes whose CPU and memory
//!   fill evenly; skipped (0 everywhere) for a pod requesting neither, as upstream.
//! - NodeAffinity: the sum of the weights of the preferred terms a node matches, scaled so
//!   the best node scores 100.
//! - TaintToleration: the number of `PreferNoSchedule` taints the pod does not tolerate,
//!   reversed and scaled so the node with fewest scores 100.
//!
//! Not scored (upstream defaults berth lacks): ImageLocality, PodTopologySpread's system
//! default spreading, InterPodAffinity.

use k8s_openapi::api::core::v1::{Pod, Toleration};

use super::filter::{term_matches, tolerated};
use super::nodeinfo::NodeInfo;
use super::resources::{Resources, pod_requests, pod_requests_non_zero};

/// The highest score a plugin gives.
pub const MAX_NODE_SCORE: i64 = 100;

/// The score plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScorePlugin {
    /// `LeastAllocated`: emptier nodes score higher.
    NodeResourcesFit,
    /// Nodes whose CPU and memory fill evenly score higher.
    NodeResourcesBalancedAllocation,
    /// Preferred node affinity.
    NodeAffinity,
    /// Fewer untolerated `PreferNoSchedule` taints score higher.
    TaintToleration,
}

/// Every score plugin.
pub const SCORE_PLUGINS: [ScorePlugin; 4] = [
    ScorePlugin::NodeResourcesFit,
    ScorePlugin::NodeResourcesBalancedAllocation,
    ScorePlugin::NodeAffinity,
    ScorePlugin::TaintToleration,
];

impl ScorePlugin {
    /// The plugin's upstream name.
    pub fn name(self) -> &'static str {
        match self {
            ScorePlugin::NodeResourcesFit => "NodeResourcesFit",
            ScorePlugin::NodeResourcesBalancedAllocation => "NodeResourcesBalancedAllocation",
            ScorePlugin::NodeAffinity => "NodeAffinity",
            ScorePlugin::TaintToleration => "TaintToleration",
        }
    }

    /// The plugin's weight in the total (upstream's defaults).
    pub fn weight(self) -> i64 {
        match self {
            ScorePlugin::NodeResourcesFit | ScorePlugin::NodeResourcesBalancedAllocation => 1,
            ScorePlugin::NodeAffinity => 2,
            ScorePlugin::TaintToleration => 3,
        }
    }
}

/// One node's scores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScore {
    /// The node's name.
    pub name: String,
    /// Each plugin's normalized score (0..=100), before weighting, in [`SCORE_PLUGINS`] order.
    pub plugins: Vec<(ScorePlugin, i64)>,
    /// The sum of each plugin's score times its weight.
    pub total: i64,
}

/// `(capacity - requested) * 100 / capacity`, 0 when over capacity.
fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    let free = i128::from(capacity - requested);
    (free * i128::from(MAX_NODE_SCORE) / i128::from(capacity)) as i64
}

/// NodeResourcesFit's `LeastAllocated` score of one node for a pod with these (non-zero)
/// requests: the mean over CPU and memory of the free percentage left after placing it;
/// resources the node has none of are left out.
pub fn least_allocated_score(pod_non_zero: &Resources, node: &NodeInfo) -> i64 {
    let pairs = [
        (
            node.non_zero_requested
                .milli_cpu
                .saturating_add(pod_non_zero.milli_cpu),
            node.allocatable.milli_cpu,
        ),
        (
            node.non_zero_requested
                .memory
                .saturating_add(pod_non_zero.memory),
            node.allocatable.memory,
        ),
    ];
    let (mut sum, mut weights) = (0, 0);
    for (requested, capacity) in pairs {
        if capacity == 0 {
            continue;
        }
        sum += least_requested(requested, capacity);
        weights += 1;
    }
    if weights == 0 { 0 } else { sum / weights }
}

/// NodeResourcesBalancedAllocation's score of one node for a pod with these requests:
/// `(1 - std) * 100` of the CPU and memory fractions used after placing it (each capped at
/// 1); with one resource the deviation is 0.
pub fn balanced_allocation_score(pod: &Resources, node: &NodeInfo) -> i64 {
    let pairs = [
        (
            node.requested.milli_cpu.saturating_add(pod.milli_cpu),
            node.allocatable.milli_cpu,
        ),
        (
            node.requested.memory.saturating_add(pod.memory),
            node.allocatable.memory,
        ),
    ];
    let fractions: Vec<f64> = pairs
        .iter()
        .filter(|(_, capacity)| *capacity != 0)
        .map(|&(requested, capacity)| (requested as f64 / capacity as f64).min(1.0))
        .collect();
    let std = match fractions.as_slice() {
        [a, b] => ((a - b) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// NodeAffinity's raw score: the sum of the weights of the pod's preferred terms the node
/// matches (terms with weight 0 or no requirements count for nothing).
pub fn preferred_affinity_weight(pod: &Pod, node: &NodeInfo) -> i64 {
    let preferred = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[]);
    preferred
        .iter()
        .filter(|t| t.weight != 0 && term_matches(&t.preference, &node.node))
        .map(|t| i64::from(t.weight))
        .sum()
}

/// TaintToleration's raw score: how many of the node's `PreferNoSchedule` taints the pod's
/// tolerations (those with no effect or `PreferNoSchedule`) leave untolerated.
pub fn intolerable_prefer_no_schedule(pod: &Pod, node: &NodeInfo) -> i64 {
    let tolerations: Vec<Toleration> = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
        .iter()
        .filter(|t| matches!(t.effect.as_deref(), None | Some("" | "PreferNoSchedule")))
        .cloned()
        .collect();
    let taints = node
        .node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&tolerations, t))
        .count() as i64
}

/// Scales scores so the highest becomes 100 (`score * 100 / max`); with `reverse`, then
/// subtracts each from 100. All zero stays zero, or becomes 100 with `reverse`.
pub fn normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max <= 0 {
        if reverse {
            scores.fill(MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let scaled = (i128::from(MAX_NODE_SCORE) * i128::from(*s) / i128::from(max)) as i64;
        *s = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}

/// Scores feasible nodes for a pod, in the order given.
pub fn score_nodes(pod: &Pod, nodes: &[&NodeInfo]) -> Vec<NodeScore> {
    let requests = pod_requests(pod);
    let non_zero = pod_requests_non_zero(pod);
    let best_effort = requests.milli_cpu == 0 && requests.memory == 0;
    let per_plugin: Vec<(ScorePlugin, Vec<i64>)> = SCORE_PLUGINS
        .iter()
        .map(|&plugin| {
            let mut scores: Vec<i64> = nodes
                .iter()
                .map(|n| match plugin {
                    ScorePlugin::NodeResourcesFit => least_allocated_score(&non_zero, n),
                    ScorePlugin::NodeResourcesBalancedAllocation if best_effort => 0,
                    ScorePlugin::NodeResourcesBalancedAllocation => {
                        balanced_allocation_score(&requests, n)
                    }
                    ScorePlugin::NodeAffinity => preferred_affinity_weight(pod, n),
                    ScorePlugin::TaintToleration => intolerable_prefer_no_schedule(pod, n),
                })
                .collect();
            match plugin {
                ScorePlugin::NodeAffinity => normalize(&mut scores, false),
                ScorePlugin::TaintToleration => normalize(&mut scores, true),
                _ => {}
            }
            (plugin, scores)
        })
        .collect();
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let plugins: Vec<(ScorePlugin, i64)> =
                per_plugin.iter().map(|(p, s)| (*p, s[i])).collect();
            let total = plugins.iter().map(|(p, s)| p.weight() * s).sum();
            NodeScore {
                name: n.name().to_string(),
                plugins,
                total,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_upstream() {
        let mut s = [0, 5, 10];
        normalize(&mut s, false);
        assert_eq!(s, [0, 50, 100]);
        let mut s = [0, 1, 3];
        normalize(&mut s, true);
        assert_eq!(s, [100, 67, 0]);
        let mut s = [0, 0];
        normalize(&mut s, true);
        assert_eq!(s, [100, 100]);
        let mut s = [0, 0];
        normalize(&mut s, false);
        assert_eq!(s, [0, 0]);
    }

    #[test]
    fn least_requested_bounds() {
        assert_eq!(least_requested(0, 1000), 100);
        assert_eq!(least_requested(250, 1000), 75);
        assert_eq!(least_requested(1001, 1000), 0);
        assert_eq!(least_requested(5, 0), 0);
        assert_eq!(least_requested(1, i64::MAX), 99);
    }
}
