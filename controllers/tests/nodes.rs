//! Node lifecycle (health, taints, evictions) and node IPAM.

use std::time::Duration;

use controllers::nodeipam::{CidrAllocator, Error as IpamError};
use controllers::nodelifecycle::{
    self, DEFAULT_GRACE, DEFAULT_TOLERATION, REASON_UNKNOWN, TAINT_NOT_READY, TAINT_UNREACHABLE,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).expect("timestamp")
}

fn rfc(secs: i64) -> String {
    at(secs).to_string()
}

/// A node whose kubelet last posted Ready=`ready` at `heartbeat`.
fn node(name: &str, ready: &str, heartbeat: i64, taints: Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": rfc(-1000)},
        "spec": {"taints": taints},
        "status": {"conditions": [
            {"type": "Ready", "status": ready, "reason": "KubeletReady",
             "lastHeartbeatTime": rfc(heartbeat), "lastTransitionTime": rfc(-900)},
            {"type": "MemoryPressure", "status": "False",
             "lastHeartbeatTime": rfc(heartbeat), "lastTransitionTime": rfc(-900)}
        ]}
    }))
    .expect("node")
}

fn lease(name: &str, renewed: i64) -> Lease {
    let renew = at(renewed).strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew}
    }))
    .expect("lease")
}

fn taint_keys(taints: &[Taint]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = taints
        .iter()
        .map(|t| (t.key.clone(), t.effect.clone()))
        .collect();
    v.sort();
    v
}

fn pod(name: &str, node: &str, tolerations: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
                 "tolerations": tolerations},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .expect("pod")
}

#[test]
fn stale_lease_marks_node_unknown_and_taints_it() {
    let n = node("n1", "True", 0, json!([]));
    let now = at(100);
    // Lease renewed long ago too.
    let up = nodelifecycle::node_health(&n, Some(&lease("n1", 10)), now, DEFAULT_GRACE)
        .expect("an update");
    assert_eq!(up.name, "n1");
    let conds = up.conditions.expect("conditions");
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = conds.iter().find(|c| c.type_ == t).expect(t);
        assert_eq!(c.status, "Unknown", "{t}");
        assert_eq!(c.last_transition_time.as_ref().map(|t| t.0), Some(now));
    }
    let ready = conds.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.reason.as_deref(), Some(REASON_UNKNOWN));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    // The heartbeat stays what the kubelet last posted.
    assert_eq!(ready.last_heartbeat_time.as_ref().map(|t| t.0), Some(at(0)));
    let disk = conds
        .iter()
        .find(|c| c.type_ == "DiskPressure")
        .expect("disk");
    assert_eq!(disk.reason.as_deref(), Some("NodeStatusNeverUpdated"));

    let taints = up.taints.expect("taints");
    assert_eq!(
        taint_keys(&taints),
        [
            (TAINT_UNREACHABLE.to_string(), "NoExecute".to_string()),
            (TAINT_UNREACHABLE.to_string(), "NoSchedule".to_string())
        ]
    );
    assert!(
        taints
            .iter()
            .all(|t| t.time_added.as_ref().map(|t| t.0) == Some(now))
    );
}

#[test]
fn fresh_lease_keeps_node_healthy() {
    // The Ready heartbeat is old, but the lease was renewed recently: healthy.
    let n = node("n1", "True", 0, json!([]));
    assert_eq!(
        nodelifecycle::node_health(&n, Some(&lease("n1", 90)), at(100), DEFAULT_GRACE),
        None
    );
    // No lease, recent heartbeat: healthy.
    let n = node("n1", "True", 80, json!([]));
    assert_eq!(
        nodelifecycle::node_health(&n, None, at(100), DEFAULT_GRACE),
        None
    );
    // Exactly at the grace boundary: still healthy; a second later: not.
    let n = node("n1", "True", 60, json!([]));
    assert!(nodelifecycle::node_health(&n, None, at(100), DEFAULT_GRACE).is_none());
    assert!(nodelifecycle::node_health(&n, None, at(101), DEFAULT_GRACE).is_some());
}

#[test]
fn stale_pass_is_idempotent_and_recovery_removes_taints() {
    let n = node(
        "n1",
        "True",
        0,
        json!([{"key": "user", "value": "x", "effect": "NoSchedule"}]),
    );
    let up = nodelifecycle::node_health(&n, None, at(100), DEFAULT_GRACE).expect("update");
    // Apply it and run again later: nothing more to do (times kept).
    let mut n2 = n.clone();
    n2.status.as_mut().expect("status").conditions = up.conditions.clone();
    n2.spec.as_mut().expect("spec").taints = up.taints.clone();
    assert_eq!(
        nodelifecycle::node_health(&n2, None, at(200), DEFAULT_GRACE),
        None
    );

    // The lease comes back but the kubelet has not posted Ready yet: taints stay.
    assert_eq!(
        nodelifecycle::node_health(&n2, Some(&lease("n1", 195)), at(200), DEFAULT_GRACE),
        None
    );

    // The kubelet posts Ready=True: the unreachable taints go, the user's taint stays.
    let mut back = node("n1", "True", 210, json!([]));
    back.spec.as_mut().expect("spec").taints = up.taints.clone();
    let up = nodelifecycle::node_health(&back, Some(&lease("n1", 210)), at(215), DEFAULT_GRACE)
        .expect("update");
    assert_eq!(up.conditions, None);
    assert_eq!(
        taint_keys(&up.taints.expect("taints")),
        [("user".to_string(), "NoSchedule".to_string())]
    );
}

#[test]
fn kubelet_reported_not_ready_gets_not_ready_taints() {
    let n = node("n1", "False", 95, json!([]));
    let up = nodelifecycle::node_health(&n, None, at(100), DEFAULT_GRACE).expect("update");
    assert_eq!(up.conditions, None);
    assert_eq!(
        taint_keys(&up.taints.expect("taints")),
        [
            (TAINT_NOT_READY.to_string(), "NoExecute".to_string()),
            (TAINT_NOT_READY.to_string(), "NoSchedule".to_string())
        ]
    );
    // Then it goes silent: not-ready is swapped for unreachable.
    let mut n2 = n.clone();
    n2.spec.as_mut().expect("spec").taints =
        nodelifecycle::node_health(&n, None, at(100), DEFAULT_GRACE).and_then(|u| u.taints);
    let up = nodelifecycle::node_health(&n2, None, at(200), DEFAULT_GRACE).expect("update");
    assert_eq!(
        taint_keys(&up.taints.expect("taints")),
        [
            (TAINT_UNREACHABLE.to_string(), "NoExecute".to_string()),
            (TAINT_UNREACHABLE.to_string(), "NoSchedule".to_string())
        ]
    );
}

#[test]
fn cordoned_and_pressured_nodes_get_no_schedule_taints() {
    let mut n = node("n1", "True", 95, json!([]));
    n.spec.as_mut().expect("spec").unschedulable = Some(true);
    n.status
        .as_mut()
        .expect("status")
        .conditions
        .as_mut()
        .expect("c")[1]
        .status = "True".into();
    let up = nodelifecycle::node_health(&n, None, at(100), DEFAULT_GRACE).expect("update");
    assert_eq!(
        taint_keys(&up.taints.expect("taints")),
        [
            (
                "node.kubernetes.io/memory-pressure".to_string(),
                "NoSchedule".to_string()
            ),
            (
                "node.kubernetes.io/unschedulable".to_string(),
                "NoSchedule".to_string()
            )
        ]
    );
}

#[test]
fn full_disruption_adds_no_no_execute_taints() {
    let nodes = vec![
        node("n1", "True", 0, json!([])),
        node("n2", "True", 0, json!([])),
    ];
    let ups = nodelifecycle::plan(&nodes, &[], at(100), DEFAULT_GRACE);
    assert_eq!(ups.len(), 2);
    for up in &ups {
        assert!(up.conditions.is_some());
        assert_eq!(
            taint_keys(up.taints.as_deref().expect("taints")),
            [(TAINT_UNREACHABLE.to_string(), "NoSchedule".to_string())]
        );
    }
    // With one healthy node the stale one is tainted for eviction.
    let leases = vec![lease("n2", 95)];
    let ups = nodelifecycle::plan(&nodes, &leases, at(100), DEFAULT_GRACE);
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].name, "n1");
    assert_eq!(ups[0].taints.as_ref().map(Vec::len), Some(2));
}

#[test]
fn pods_on_lost_node_become_not_ready() {
    let n = node("n1", "Unknown", 0, json!([]));
    let pods = vec![pod("a", "n1", json!([])), pod("b", "n2", json!([]))];
    let marked = nodelifecycle::mark_pods_not_ready(&n, &pods, at(100));
    assert_eq!(marked.len(), 1);
    let c = &marked[0]
        .status
        .as_ref()
        .expect("status")
        .conditions
        .as_ref()
        .expect("c")[0];
    assert_eq!((c.type_.as_str(), c.status.as_str()), ("Ready", "False"));
    assert_eq!(c.last_transition_time.as_ref().map(|t| t.0), Some(at(100)));
    // Already not ready: nothing to write.
    assert!(nodelifecycle::mark_pods_not_ready(&n, &marked, at(200)).is_empty());
    // A ready node marks nothing.
    let ok = node("n1", "True", 0, json!([]));
    assert!(nodelifecycle::mark_pods_not_ready(&ok, &pods, at(100)).is_empty());
}

#[test]
fn eviction_timing() {
    let taints = json!([
        {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc(0)},
        {"key": TAINT_UNREACHABLE, "effect": "NoSchedule", "timeAdded": rfc(0)}
    ]);
    let n = node("n1", "Unknown", -100, taints);
    let pods = vec![
        // No toleration: the implicit 300 s one applies.
        pod("default", "n1", json!([])),
        // Explicit 60 s.
        pod(
            "short",
            "n1",
            json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]),
        ),
        // Zero seconds: at once.
        pod(
            "zero",
            "n1",
            json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}]),
        ),
        // Forever.
        pod(
            "forever",
            "n1",
            json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]),
        ),
        // Tolerates everything.
        pod("all", "n1", json!([{"operator": "Exists"}])),
        // Elsewhere.
        pod("other", "n2", json!([])),
    ];
    let ev = nodelifecycle::evictions(&n, &pods, at(30), DEFAULT_TOLERATION);
    assert_eq!(
        ev,
        [
            ("default".to_string(), Some(Duration::from_secs(270))),
            ("short".to_string(), Some(Duration::from_secs(30))),
            ("zero".to_string(), None),
        ]
    );
    let ev = nodelifecycle::evictions(&n, &pods, at(60), DEFAULT_TOLERATION);
    assert_eq!(ev[1], ("short".to_string(), None));
    let ev = nodelifecycle::evictions(&n, &pods, at(400), DEFAULT_TOLERATION);
    assert_eq!(ev.len(), 3);
    assert!(ev.iter().all(|(_, d)| d.is_none()));
    // A configurable default.
    let ev = nodelifecycle::evictions(&n, &pods[..1], at(30), Duration::from_secs(40));
    assert_eq!(ev, [("default".to_string(), Some(Duration::from_secs(10)))]);

    // A NoExecute taint nobody tolerates evicts at once; NoSchedule ones evict nothing.
    let n = node(
        "n1",
        "True",
        0,
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoExecute", "timeAdded": rfc(0)}]),
    );
    let ev = nodelifecycle::evictions(&n, &pods, at(1), DEFAULT_TOLERATION);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["default", "short", "zero", "forever"]);
    assert!(ev.iter().all(|(_, d)| d.is_none()));
    let tolerant = pod(
        "gpu",
        "n1",
        json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"}]),
    );
    assert!(nodelifecycle::evictions(&n, &[tolerant], at(1), DEFAULT_TOLERATION).is_empty());
    let clean = node(
        "n1",
        "True",
        0,
        json!([{"key": "x", "effect": "NoSchedule"}]),
    );
    assert!(nodelifecycle::evictions(&clean, &pods, at(1), DEFAULT_TOLERATION).is_empty());
}

// ------------------------------------------------------------------ IPAM

fn ipam_node(name: &str, cidr: Option<&str>) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": cidr.map(|c| vec![c])}
    }))
    .expect("node")
}

#[test]
fn allocations_are_unique_and_stable() {
    let nodes = vec![
        ipam_node("a", Some("10.244.0.0/24")),
        ipam_node("b", Some("10.244.2.0/24")),
    ];
    let mut alloc = CidrAllocator::from_nodes("10.244.0.0/16", 24, &nodes).expect("allocator");
    assert_eq!(alloc.free(), 254);
    // Existing nodes keep theirs.
    assert_eq!(alloc.allocate(&nodes[0]).as_deref(), Ok("10.244.0.0/24"));
    assert_eq!(alloc.allocate(&nodes[1]).as_deref(), Ok("10.244.2.0/24"));
    // New nodes get free ones, never a duplicate.
    let mut seen = std::collections::BTreeSet::from([
        "10.244.0.0/24".to_string(),
        "10.244.2.0/24".to_string(),
    ]);
    for i in 0..20 {
        let c = alloc
            .allocate(&ipam_node(&format!("n{i}"), None))
            .expect("cidr");
        assert!(seen.insert(c.clone()), "duplicate {c}");
    }
    // Asking again for the same node returns the same range.
    let again = alloc.allocate(&ipam_node("n3", None)).expect("cidr");
    assert_eq!(Some(again), alloc.cidr_of("n3"));
    assert_eq!(alloc.free(), 256 - 22);
}

#[test]
fn exhaustion_and_release() {
    let mut alloc = CidrAllocator::new("10.0.0.0/23", 24).expect("allocator");
    let a = alloc.allocate(&ipam_node("a", None)).expect("a");
    let b = alloc.allocate(&ipam_node("b", None)).expect("b");
    assert_eq!((a.as_str(), b.as_str()), ("10.0.0.0/24", "10.0.1.0/24"));
    assert!(matches!(
        alloc.allocate(&ipam_node("c", None)),
        Err(IpamError::Exhausted(_))
    ));
    alloc.release(&a);
    assert_eq!(alloc.cidr_of("a"), None);
    assert_eq!(
        alloc.allocate(&ipam_node("c", None)).as_deref(),
        Ok("10.0.0.0/24")
    );
    alloc.release_node("b");
    assert_eq!(
        alloc.allocate(&ipam_node("d", None)).as_deref(),
        Ok("10.0.1.0/24")
    );
}

#[test]
fn ipam_errors_and_exclusions() {
    assert!(matches!(
        CidrAllocator::new("10.0.0.0/16", 8),
        Err(IpamError::InvalidMask { .. })
    ));
    assert!(matches!(
        CidrAllocator::new("10.0.0.0/8", 30),
        Err(IpamError::InvalidMask { .. })
    ));
    assert!(CidrAllocator::new("nonsense", 24).is_err());
    // A node outside the cluster CIDR, or two nodes on one range, fail the rebuild.
    assert!(matches!(
        CidrAllocator::from_nodes("10.0.0.0/16", 24, &[ipam_node("a", Some("192.168.0.0/24"))]),
        Err(IpamError::OutOfRange { .. })
    ));
    assert!(matches!(
        CidrAllocator::from_nodes(
            "10.0.0.0/16",
            24,
            &[
                ipam_node("a", Some("10.0.1.0/24")),
                ipam_node("b", Some("10.0.1.0/24"))
            ]
        ),
        Err(IpamError::Conflict { .. })
    ));
    // The service range is held back.
    let mut alloc = CidrAllocator::new("10.0.0.0/22", 24).expect("allocator");
    alloc.exclude("10.0.0.0/23").expect("exclude");
    alloc.exclude("172.16.0.0/12").expect("no overlap is fine");
    assert_eq!(alloc.free(), 2);
    assert_eq!(
        alloc.allocate(&ipam_node("a", None)).as_deref(),
        Ok("10.0.2.0/24")
    );
    assert_eq!(
        alloc.allocate(&ipam_node("b", None)).as_deref(),
        Ok("10.0.3.0/24")
    );
    assert!(alloc.allocate(&ipam_node("c", None)).is_err());
}
