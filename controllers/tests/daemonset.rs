//! DaemonSet controller logic: eligibility, pod placement, clean-up, rolling update, status.

use controllers::daemonset::{self, LABEL_REVISION_HASH};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).expect("timestamp")
}

fn rfc(secs: i64) -> String {
    at(secs).to_string()
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn ds(extra: Value) -> DaemonSet {
    let mut v = json!({
        "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 1},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}
            }
        }
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("daemonset")
}

fn node(name: &str, extra: Value) -> Node {
    let mut v =
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/os": "linux"}}, "spec": {}});
    merge(&mut v, extra);
    serde_json::from_value(v).expect("node")
}

/// Turns a planned pod into a running, ready, bound one.
fn run(pod: &Pod, name: &str, node: &str, created: i64) -> Pod {
    let mut p = pod.clone();
    p.metadata.name = Some(name.into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(
        created,
    )));
    p.spec.as_mut().expect("spec").node_name = Some(node.into());
    p.status = Some(
        serde_json::from_value(json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": rfc(created)}]
        }))
        .expect("status"),
    );
    p
}

/// Runs the DaemonSet on every node it plans for.
fn settle(d: &DaemonSet, nodes: &[Node]) -> Vec<Pod> {
    let plan = daemonset::reconcile(d, nodes, &[], at(0));
    plan.create
        .iter()
        .map(|(n, p)| run(p, &format!("agent-{n}"), n, 0))
        .collect()
}

fn created_nodes(plan: &daemonset::DsPlan) -> Vec<&str> {
    plan.create.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn one_pod_per_eligible_node() {
    let d = ds(json!({}));
    let nodes = vec![
        node("n1", json!({})),
        node(
            "n2",
            json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
        ),
        node(
            "n3",
            json!({"spec": {"unschedulable": true, "taints": [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}),
        ),
        node(
            "n4",
            json!({"spec": {"taints": [
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]}}),
        ),
        // As upstream, the not-ready NoSchedule taint is not among the daemon tolerations.
        node(
            "n5",
            json!({"spec": {"taints": [
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}}),
        ),
    ];
    let plan = daemonset::reconcile(&d, &nodes, &[], at(0));
    // n2's taint is not tolerated; cordoned and unreachable nodes still get daemons.
    assert_eq!(created_nodes(&plan), ["n1", "n3", "n4"]);
    let (node_name, pod) = &plan.create[0];
    assert_eq!(node_name, "n1");
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("agent-"));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
    let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("DaemonSet", "ds-uid", Some(true))
    );
    assert_eq!(daemonset::target_node(pod).as_deref(), Some("n1"));
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.node_name, None);
    let term = &spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("required affinity")
        .node_selector_terms[0];
    let field = &term.match_fields.as_ref().expect("fields")[0];
    assert_eq!(
        (
            field.key.as_str(),
            field.operator.as_str(),
            field.values.clone()
        ),
        ("metadata.name", "In", Some(vec!["n1".to_string()]))
    );
    let tol_keys: Vec<&str> = spec
        .tolerations
        .iter()
        .flatten()
        .filter_map(|t| t.key.as_deref())
        .collect();
    for k in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/unschedulable",
        "node.kubernetes.io/disk-pressure",
    ] {
        assert!(tol_keys.contains(&k), "{k}");
    }
    let labels = pod.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels["app"], "agent");
    assert_eq!(labels[LABEL_REVISION_HASH], daemonset::template_hash(&d));

    // Tolerating the taint makes n2 eligible.
    let d = ds(json!({"spec": {"template": {"spec": {"tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}}}}));
    let plan = daemonset::reconcile(&d, &nodes, &[], at(0));
    assert_eq!(created_nodes(&plan), ["n1", "n2", "n3", "n4"]);
    let status = plan.status.expect("status");
    assert_eq!(status.desired_number_scheduled, 4);
    assert_eq!(status.current_number_scheduled, 0);
}

#[test]
fn node_selector_and_affinity() {
    let d = ds(json!({"spec": {"template": {"spec": {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge", "core"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}
            ]}}}
    }}}}));
    let nodes = vec![
        node("a", json!({"metadata": {"labels": {"tier": "edge"}}})),
        node("b", json!({"metadata": {"labels": {"tier": "batch"}}})),
        node("special", json!({})),
        node(
            "win",
            json!({"metadata": {"labels": {"kubernetes.io/os": "windows", "tier": "edge"}}}),
        ),
    ];
    let plan = daemonset::reconcile(&d, &nodes, &[], at(0));
    assert_eq!(created_nodes(&plan), ["a", "special"]);
    // The pod's own affinity is replaced by the pin to its node.
    let terms = &plan.create[0]
        .1
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("affinity")
        .node_selector_terms;
    assert_eq!(terms.len(), 1);
}

#[test]
fn steady_state_then_new_node_then_removed_node() {
    let d = ds(json!({}));
    let mut nodes = vec![node("n1", json!({})), node("n2", json!({}))];
    let mut pods = settle(&d, &nodes);
    assert_eq!(pods.len(), 2);
    let plan = daemonset::reconcile(&d, &nodes, &pods, at(100));
    assert!(plan.create.is_empty() && plan.delete.is_empty(), "{plan:?}");
    let status = plan.status.expect("status");
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.current_number_scheduled,
            status.number_ready,
            status.number_available,
            status.updated_number_scheduled,
            status.number_misscheduled,
            status.number_unavailable,
            status.observed_generation
        ),
        (2, 2, 2, Some(2), Some(2), 0, Some(0), Some(1))
    );
    // Written back, the status is not rewritten.
    let mut d2 = d.clone();
    d2.status = Some(status);
    assert_eq!(
        daemonset::reconcile(&d2, &nodes, &pods, at(100)).status,
        None
    );

    // A new node gets a pod.
    nodes.push(node("n3", json!({})));
    let plan = daemonset::reconcile(&d, &nodes, &pods, at(100));
    assert_eq!(created_nodes(&plan), ["n3"]);
    pods.push(run(&plan.create[0].1, "agent-n3", "n3", 100));

    // n2 disappears: its pod is deleted.
    nodes.retain(|n| n.metadata.name.as_deref() != Some("n2"));
    let plan = daemonset::reconcile(&d, &nodes, &pods, at(200));
    assert_eq!(plan.delete, ["agent-n2"]);
    assert!(plan.create.is_empty());
}

#[test]
fn ineligible_failed_and_duplicate_pods_are_deleted() {
    let d = ds(json!({}));
    let nodes = vec![
        node("n1", json!({})),
        node("n2", json!({})),
        node("n3", json!({})),
    ];
    let mut pods = settle(&d, &nodes);
    // A second, newer pod on n1.
    let extra = run(&pods[0], "agent-n1-dup", "n1", 50);
    pods.push(extra);
    // n2's pod failed.
    pods[1].status.as_mut().expect("status").phase = Some("Failed".into());
    // n3 gets a NoExecute taint the pod does not tolerate.
    let mut nodes = nodes;
    nodes[2] = node(
        "n3",
        json!({"spec": {"taints": [{"key": "evict", "effect": "NoExecute"}]}}),
    );
    let plan = daemonset::reconcile(&d, &nodes, &pods, at(100));
    let mut deleted = plan.delete.clone();
    deleted.sort();
    assert_eq!(deleted, ["agent-n1-dup", "agent-n2", "agent-n3"]);
    assert!(plan.create.is_empty());
    let status = plan.status.expect("status");
    assert_eq!(status.number_misscheduled, 1);
    assert_eq!(status.desired_number_scheduled, 2);

    // A NoSchedule taint added later does not evict the running pod.
    let nodes = vec![node(
        "n1",
        json!({"spec": {"taints": [{"key": "maint", "effect": "NoSchedule"}]}}),
    )];
    let pods = settle(&d, &[node("n1", json!({}))]);
    let plan = daemonset::reconcile(&d, &nodes, &pods, at(100));
    assert!(plan.delete.is_empty() && plan.create.is_empty());
    let status = plan.status.expect("status");
    assert_eq!(
        (status.desired_number_scheduled, status.number_misscheduled),
        (0, 1)
    );
}

#[test]
fn pods_being_deleted_are_waited_for() {
    let d = ds(json!({}));
    let nodes = vec![node("n1", json!({}))];
    let mut pods = settle(&d, &nodes);
    pods[0].metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(10)));
    let plan = daemonset::reconcile(&d, &nodes, &pods, at(20));
    assert!(plan.create.is_empty() && plan.delete.is_empty());
}

#[test]
fn adoption_and_release() {
    let d = ds(json!({}));
    let nodes = vec![node("n1", json!({})), node("n2", json!({}))];
    let mut pods = settle(&d, &nodes);
    // An orphan with matching labels on n2 is adopted (and counts as that node's pod).
    pods[1].metadata.owner_references = None;
    // A controlled pod whose labels changed is released, and n1 gets a new pod.
    pods[0]
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .insert("app".into(), "debug".into());
    let plan = daemonset::reconcile(&d, &nodes, &pods, at(10));
    assert_eq!(plan.adopt, ["agent-n2"]);
    assert_eq!(plan.release, ["agent-n1"]);
    assert_eq!(created_nodes(&plan), ["n1"]);
}

#[test]
fn rolling_update_respects_max_unavailable() {
    let old = ds(json!({}));
    let nodes: Vec<Node> = (1..=4).map(|i| node(&format!("n{i}"), json!({}))).collect();
    let mut pods = settle(&old, &nodes);
    let new = ds(json!({"metadata": {"generation": 2},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}}));
    assert_ne!(
        daemonset::template_hash(&old),
        daemonset::template_hash(&new)
    );

    // Default maxUnavailable 1: one old pod at a time.
    let plan = daemonset::reconcile(&new, &nodes, &pods, at(100));
    assert!(plan.create.is_empty());
    assert_eq!(plan.delete, ["agent-n1"]);
    let status = plan.status.expect("status");
    assert_eq!(status.updated_number_scheduled, Some(0));

    // While n1 has no pod, manage recreates it with the new template, and the update waits.
    pods.remove(0);
    let plan = daemonset::reconcile(&new, &nodes, &pods, at(110));
    assert_eq!(created_nodes(&plan), ["n1"]);
    assert!(plan.delete.is_empty());
    let mut fresh = run(&plan.create[0].1, "agent-n1-v2", "n1", 110);
    // Not ready yet: it counts against maxUnavailable, nothing else goes.
    fresh
        .status
        .as_mut()
        .expect("status")
        .conditions
        .as_mut()
        .expect("c")[0]
        .status = "False".into();
    pods.insert(0, fresh.clone());
    let plan = daemonset::reconcile(&new, &nodes, &pods, at(115));
    assert!(plan.delete.is_empty() && plan.create.is_empty());
    // Ready: the next old pod goes.
    pods[0] = run(&plan_pod(&new, "n1"), "agent-n1-v2", "n1", 110);
    let plan = daemonset::reconcile(&new, &nodes, &pods, at(120));
    assert_eq!(plan.delete, ["agent-n2"]);

    // maxUnavailable 50% of 4 nodes: two at a time; an unavailable old pod goes regardless.
    let pct = ds(json!({"metadata": {"generation": 2},
        "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}},
                 "template": {"spec": {"containers": [{"name": "c", "image": "busybox:3"}]}}}}));
    let mut pods = settle(&old, &nodes);
    pods[3]
        .status
        .as_mut()
        .expect("status")
        .conditions
        .as_mut()
        .expect("c")[0]
        .status = "False".into();
    let mut plan = daemonset::reconcile(&pct, &nodes, &pods, at(100)).delete;
    plan.sort();
    assert_eq!(plan, ["agent-n1", "agent-n4"]);

    // OnDelete replaces nothing.
    let on_delete = ds(json!({"metadata": {"generation": 2},
        "spec": {"updateStrategy": {"type": "OnDelete"},
                 "template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}}));
    let pods = settle(&old, &nodes);
    let plan = daemonset::reconcile(&on_delete, &nodes, &pods, at(100));
    assert!(plan.delete.is_empty());
}

fn plan_pod(d: &DaemonSet, node: &str) -> Pod {
    daemonset::new_pod(d, node, &daemonset::template_hash(d))
}

#[test]
fn being_deleted_or_selectorless_daemonsets_do_nothing() {
    let nodes = vec![node("n1", json!({}))];
    let d = ds(json!({"metadata": {"deletionTimestamp": rfc(0)}}));
    let plan = daemonset::reconcile(&d, &nodes, &[], at(1));
    assert_eq!(plan, daemonset::DsPlan::default());
    let mut d = ds(json!({}));
    d.spec.as_mut().expect("spec").selector = Default::default();
    assert_eq!(
        daemonset::reconcile(&d, &nodes, &[], at(1)),
        daemonset::DsPlan::default()
    );
}
