//! Scoring and node choice: least-allocated, balanced allocation, preferred affinity,
//! PreferNoSchedule taints, random tie-breaks, and the FitError text.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{NodeB, PodB, XorShift};
use k8s_openapi::api::core::v1::{Node, Pod};
use scheduler::framework::{
    FitError, NodeInfo, ScorePlugin, Snapshot, balanced_allocation_score, least_allocated_score,
    pod_requests, pod_requests_non_zero, schedule, score_nodes,
};
use serde_json::json;

fn snapshot(nodes: &[Node], pods: &[Pod]) -> Snapshot {
    Snapshot::new(nodes, pods)
}

fn place(pod: &Pod, snap: &Snapshot, seed: u64) -> Result<String, FitError> {
    let mut rng = XorShift::new(seed);
    schedule(pod, snap, &mut || rng.next_u64())
}

fn plugin_score(pod: &Pod, snap: &Snapshot, node: &str, plugin: ScorePlugin) -> i64 {
    let infos: Vec<&NodeInfo> = snap.nodes().collect();
    let scores = score_nodes(pod, &infos);
    let s = scores.iter().find(|s| s.name == node).unwrap();
    s.plugins.iter().find(|(p, _)| *p == plugin).unwrap().1
}

#[test]
fn least_allocated_prefers_the_emptier_node() {
    let nodes = [NodeB::new("busy").build(), NodeB::new("idle").build()];
    let pods = [PodB::new("x").cpu("2").memory("4Gi").node("busy").build()];
    let snap = snapshot(&nodes, &pods);
    let pod = PodB::new("p").cpu("1").memory("1Gi").build();
    let nz = pod_requests_non_zero(&pod);
    // busy: cpu (4000-3000)*100/4000 = 25, memory (8-5)*100/8 = 37 -> 31.
    assert_eq!(least_allocated_score(&nz, snap.get("busy").unwrap()), 31);
    // idle: cpu 75, memory 87 -> 81.
    assert_eq!(least_allocated_score(&nz, snap.get("idle").unwrap()), 81);
    for seed in 1..20 {
        assert_eq!(place(&pod, &snap, seed).unwrap(), "idle");
    }
    // A pod without requests counts 100m / 200Mi, so request-less pods also spread.
    let besteffort = PodB::new("b").build();
    let nz = pod_requests_non_zero(&besteffort);
    assert_eq!((nz.milli_cpu, nz.memory), (100, 200 << 20));
    assert_eq!(place(&besteffort, &snap, 7).unwrap(), "idle");
}

#[test]
fn balanced_allocation_prefers_even_use() {
    // Both nodes end up equally free overall, but one would be lopsided.
    let nodes = [NodeB::new("lopsided").build(), NodeB::new("even").build()];
    let pods = [
        PodB::new("x").cpu("3").memory("0").node("lopsided").build(),
        PodB::new("y")
            .cpu("1500m")
            .memory("3Gi")
            .node("even")
            .build(),
    ];
    let snap = snapshot(&nodes, &pods);
    let pod = PodB::new("p").cpu("500m").memory("1Gi").build();
    let req = pod_requests(&pod);
    // lopsided: cpu 3.5/4 = 0.875, memory 1/8 = 0.125 -> std 0.375 -> 62.
    assert_eq!(
        balanced_allocation_score(&req, snap.get("lopsided").unwrap()),
        62
    );
    // even: cpu 2/4 = 0.5, memory 4/8 = 0.5 -> 100.
    assert_eq!(
        balanced_allocation_score(&req, snap.get("even").unwrap()),
        100
    );
    assert_eq!(place(&pod, &snap, 3).unwrap(), "even");
    // Fractions over 1 are capped.
    let info = snap.get("lopsided").unwrap();
    let huge = pod_requests(&PodB::new("h").cpu("100").memory("100Gi").build());
    assert_eq!(balanced_allocation_score(&huge, info), 100);
    // Skipped for a pod requesting neither CPU nor memory.
    let be = PodB::new("be").build();
    assert_eq!(
        plugin_score(
            &be,
            &snap,
            "lopsided",
            ScorePlugin::NodeResourcesBalancedAllocation
        ),
        0
    );
}

#[test]
fn preferred_affinity_steers() {
    let nodes = [
        NodeB::new("a").label("zone", "east").build(),
        NodeB::new("b")
            .label("zone", "west")
            .label("disk", "ssd")
            .build(),
        NodeB::new("c").label("zone", "west").build(),
    ];
    // "a" is emptier, but the preference outweighs that.
    let pods = [
        PodB::new("x").cpu("2").node("b").build(),
        PodB::new("y").cpu("2").node("c").build(),
    ];
    let snap = snapshot(&nodes, &pods);
    let pod = PodB::new("p")
        .cpu("100m")
        .preferred(json!([
            {"weight": 20, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["west"]}]}},
            {"weight": 60, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
            {"weight": 90, "preference": {}}
        ]))
        .build();
    assert_eq!(plugin_score(&pod, &snap, "a", ScorePlugin::NodeAffinity), 0);
    assert_eq!(
        plugin_score(&pod, &snap, "b", ScorePlugin::NodeAffinity),
        100
    );
    assert_eq!(
        plugin_score(&pod, &snap, "c", ScorePlugin::NodeAffinity),
        25
    );
    for seed in 1..10 {
        assert_eq!(place(&pod, &snap, seed).unwrap(), "b");
    }
}

#[test]
fn prefer_no_schedule_steers() {
    let nodes = [
        NodeB::new("a")
            .taint("x", "", "PreferNoSchedule")
            .taint("y", "", "PreferNoSchedule")
            .build(),
        NodeB::new("b").taint("x", "", "PreferNoSchedule").build(),
        NodeB::new("c")
            .taint("x", "", "PreferNoSchedule")
            .taint("y", "", "PreferNoSchedule")
            .build(),
    ];
    let snap = snapshot(&nodes, &[]);
    let pod = PodB::new("p").build();
    assert_eq!(
        plugin_score(&pod, &snap, "a", ScorePlugin::TaintToleration),
        0
    );
    assert_eq!(
        plugin_score(&pod, &snap, "b", ScorePlugin::TaintToleration),
        50
    );
    assert_eq!(place(&pod, &snap, 1).unwrap(), "b");
    // Tolerating "y" evens them out (one intolerable taint each: all score 0, as upstream's
    // normalization gives); tolerating both (no effect or PreferNoSchedule) scores 100.
    let tolerant = PodB::new("p")
        .toleration(json!({"key": "y", "operator": "Exists", "effect": "PreferNoSchedule"}))
        .build();
    for n in ["a", "b", "c"] {
        assert_eq!(
            plugin_score(&tolerant, &snap, n, ScorePlugin::TaintToleration),
            0
        );
    }
    let tolerant = PodB::new("p")
        .toleration(json!({"key": "y", "operator": "Exists", "effect": "PreferNoSchedule"}))
        .toleration(json!({"key": "x", "operator": "Exists"}))
        .build();
    for n in ["a", "b", "c"] {
        assert_eq!(
            plugin_score(&tolerant, &snap, n, ScorePlugin::TaintToleration),
            100
        );
    }
    // A NoSchedule-only toleration does not count for scoring.
    let no_schedule = PodB::new("p")
        .toleration(json!({"key": "y", "operator": "Exists", "effect": "NoSchedule"}))
        .build();
    assert_eq!(place(&no_schedule, &snap, 1).unwrap(), "b");
}

#[test]
fn ties_are_broken_at_random() {
    let nodes: Vec<Node> = (0..4)
        .map(|i| NodeB::new(&format!("n{i}")).build())
        .collect();
    let snap = snapshot(&nodes, &[]);
    let pod = PodB::new("p").cpu("100m").build();
    let mut rng = XorShift::new(42);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..400 {
        let n = schedule(&pod, &snap, &mut || rng.next_u64()).unwrap();
        *counts.entry(n).or_default() += 1;
    }
    assert_eq!(counts.len(), 4, "{counts:?}");
    for (n, c) in &counts {
        assert!((60..=140).contains(c), "{n} chosen {c} times of 400");
    }
    // The same seed gives the same choices.
    let run = |seed| {
        let mut rng = XorShift::new(seed);
        (0..20)
            .map(|_| schedule(&pod, &snap, &mut || rng.next_u64()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(9), run(9));
}

#[test]
fn filling_nodes_spreads_pods() {
    // With assumed placements counted, least-allocated spreads a replica set evenly.
    let nodes: Vec<Node> = (0..3)
        .map(|i| NodeB::new(&format!("n{i}")).build())
        .collect();
    let mut snap = snapshot(&nodes, &[]);
    let mut rng = XorShift::new(5);
    for i in 0..9 {
        let pod = PodB::new(&format!("r{i}"))
            .cpu("500m")
            .memory("512Mi")
            .build();
        let node = schedule(&pod, &snap, &mut || rng.next_u64()).unwrap();
        let mut bound = pod.clone();
        bound.spec.as_mut().unwrap().node_name = Some(node);
        assert!(snap.add_pod(bound));
    }
    for n in snap.nodes() {
        assert_eq!(n.pods.len(), 3, "{}", n.name());
    }
}

#[test]
fn fit_error_message_for_a_mixed_case() {
    let nodes = [
        NodeB::new("cp")
            .taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
            .build(),
        NodeB::new("w1").cpu("1").build(),
        NodeB::new("w2").cpu("1").build(),
    ];
    let snap = snapshot(&nodes, &[]);
    let pod = PodB::new("p").cpu("2").build();
    let err = place(&pod, &snap, 1).unwrap_err();
    assert_eq!(err.num_nodes, 3);
    assert_eq!(
        err.reasons,
        BTreeMap::from([
            ("Insufficient cpu".to_string(), 2),
            (
                "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
                    .to_string(),
                1
            ),
        ])
    );
    // Upstream sorts the "<count> <reason>" strings, so the count leads.
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 node(s) had untolerated taint \
         {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes \
         are available: 3 Preemption is not helpful for scheduling."
    );

    let nodes = [
        NodeB::new("a").unschedulable().build(),
        NodeB::new("b")
            .cpu("1")
            .memory("1Gi")
            .label("zone", "y")
            .build(),
        NodeB::new("c").label("zone", "x").build(),
        NodeB::new("d").condition("Ready", "False").build(),
    ];
    let snap = snapshot(&nodes, &[]);
    let pod = PodB::new("p")
        .cpu("2")
        .memory("2Gi")
        .node_selector("zone", "y")
        .build();
    assert_eq!(
        place(&pod, &snap, 1).unwrap_err().to_string(),
        "0/4 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, \
         1 node(s) didn't match Pod's node affinity/selector, \
         1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
         1 node(s) were unschedulable. \
         preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
    );
    assert_eq!(
        place(&pod, &Snapshot::default(), 1)
            .unwrap_err()
            .to_string(),
        "no nodes available to schedule pods"
    );
}
