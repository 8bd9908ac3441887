//! The assume cache keeps decisions made before the watch catches up from overcommitting
//! nodes, and forgets bindings that never show up.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{NodeB, PodB, XorShift};
use k8s_openapi::api::core::v1::{Node, Pod};
use scheduler::cache::AssumeCache;
use scheduler::framework::{pod_key, schedule};

fn nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| NodeB::new(&format!("n{i}")).cpu("1").build())
        .collect()
}

#[test]
fn assumed_bindings_prevent_overcommit() {
    let nodes = nodes(3);
    // The watch shows the pods pending and never catches up during the test.
    let watched: Vec<Pod> = (0..7)
        .map(|i| PodB::new(&format!("p{i}")).cpu("500m").build())
        .collect();
    let mut cache = AssumeCache::new();
    let mut rng = XorShift::new(11);
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    let t = Instant::now();
    for pod in &watched[..6] {
        let snap = cache.snapshot(&nodes, &watched);
        let node = schedule(pod, &snap, &mut || rng.next_u64()).expect("fits");
        cache.assume(pod, &node);
        cache.finish_binding(&pod_key(pod), t);
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(
        per_node,
        BTreeMap::from([("n0".into(), 2), ("n1".into(), 2), ("n2".into(), 2)])
    );
    let snap = cache.snapshot(&nodes, &watched);
    for n in snap.nodes() {
        assert_eq!(n.requested.milli_cpu, 1000, "{}", n.name());
    }
    let err = schedule(&watched[6], &snap, &mut || rng.next_u64()).unwrap_err();
    assert_eq!(
        err.reasons,
        BTreeMap::from([("Insufficient cpu".into(), 3)])
    );
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: \
         3 Preemption is not helpful for scheduling."
    );

    // The watch catches up: bound pods replace their assumptions, nothing is counted twice.
    let bound: Vec<Pod> = watched[..6]
        .iter()
        .map(|p| {
            let mut p = p.clone();
            let node = cache.get(&pod_key(&p)).unwrap().node.clone();
            p.spec.as_mut().unwrap().node_name = Some(node);
            p
        })
        .collect();
    let snap = cache.snapshot(&nodes, &bound);
    for n in snap.nodes() {
        assert_eq!(n.requested.milli_cpu, 1000);
        assert_eq!(n.pods.len(), 2);
    }
    for p in &bound {
        assert!(cache.confirm(p));
    }
    assert!(cache.is_empty());
    let snap = cache.snapshot(&nodes, &bound);
    assert_eq!(
        snap.nodes().map(|n| n.requested.milli_cpu).sum::<i64>(),
        3000
    );
}

#[test]
fn unconfirmed_assumptions_expire() {
    let nodes = nodes(1);
    let pod = PodB::new("p").cpu("800m").build();
    let other = PodB::new("q").cpu("800m").build();
    let mut cache = AssumeCache::new();
    let t0 = Instant::now();
    cache.assume(&pod, "n0");
    // Not yet bound: never expires, however long the bind call takes.
    assert!(cache.expire(t0 + Duration::from_secs(600)).is_empty());
    let snap = cache.snapshot(&nodes, [&pod, &other]);
    assert!(schedule(&other, &snap, &mut || 0).is_err());
    cache.finish_binding("ns/p", t0);
    assert!(cache.expire(t0 + Duration::from_secs(30)).is_empty());
    assert_eq!(cache.expire(t0 + Duration::from_secs(31)), ["ns/p"]);
    assert!(!cache.is_assumed("ns/p"));
    let snap = cache.snapshot(&nodes, [&pod, &other]);
    assert_eq!(schedule(&other, &snap, &mut || 0).unwrap(), "n0");
}

#[test]
fn forgotten_and_finished_pods_free_their_room() {
    let nodes = nodes(1);
    let pod = PodB::new("p").cpu("800m").build();
    let mut cache = AssumeCache::new();
    cache.assume(&pod, "n0");
    assert_eq!(
        cache
            .snapshot(&nodes, [&pod])
            .get("n0")
            .unwrap()
            .requested
            .milli_cpu,
        800
    );
    cache.forget("ns/p");
    assert_eq!(
        cache
            .snapshot(&nodes, [&pod])
            .get("n0")
            .unwrap()
            .requested
            .milli_cpu,
        0
    );
    // Bound and already finished by the time the watch reports it: counts nowhere.
    cache.assume(&pod, "n0");
    let done = PodB::new("p")
        .cpu("800m")
        .node("n0")
        .phase("Succeeded")
        .build();
    assert_eq!(
        cache
            .snapshot(&nodes, [&done])
            .get("n0")
            .unwrap()
            .requested
            .milli_cpu,
        0
    );
}
