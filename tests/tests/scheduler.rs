//! The scheduler against a real `berth apiserver` with Node objects (no kubelets): pods are
//! spread without overcommitting any node, and a pod that fits nowhere gets a
//! FailedScheduling event naming why.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tests::apiserver::TestApiserver;

pub async fn node(client: &kube::Client, name: &str, cpu: &str, labels: serde_json::Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    let n: Node =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())}],
    }});
    nodes
        .patch_status(name, &Default::default(), &kube::api::Patch::Merge(&status))
        .await
        .unwrap();
}

fn pod(name: &str, cpu: &str, selector: Option<serde_json::Value>) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"nodeSelector": selector,
        "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]}}))
    .unwrap()
}

async fn wait_for<F: Fn(&[Pod]) -> bool>(pods: &Api<Pod>, ok: F) -> Vec<Pod> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        if ok(&list) || tokio::time::Instant::now() > deadline {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spreads_pods_without_overcommit_and_explains_failures() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestApiserver::start_in(dir.path(), 0).unwrap();
    let client = server.client().await.unwrap();
    for n in ["n1", "n2", "n3"] {
        node(&client, n, "1", json!({"zone": n})).await;
    }
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = scheduler::run::Metrics::register(&mut registry);
    let sched = tokio::spawn(scheduler::run::run(
        client.clone(),
        Default::default(),
        metrics,
    ));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..6 {
        pods.create(&PostParams::default(), &pod(&format!("p{i}"), "400m", None))
            .await
            .unwrap();
    }
    let list = wait_for(&pods, |ps| {
        ps.iter()
            .all(|p| p.spec.as_ref().unwrap().node_name.is_some())
    })
    .await;
    let mut per_node = std::collections::BTreeMap::new();
    for p in &list {
        *per_node
            .entry(p.spec.as_ref().unwrap().node_name.clone().unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "{per_node:?}"
    );

    // No room left: the 7th pod stays pending with a reason; so does an impossible selector.
    pods.create(&PostParams::default(), &pod("big", "400m", None))
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("picky", "10m", Some(json!({"zone": "mars"}))),
    )
    .await
    .unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (mut big_msg, mut picky_msg) = (String::new(), String::new());
    while tokio::time::Instant::now() < deadline && (big_msg.is_empty() || picky_msg.is_empty()) {
        for e in events.list(&ListParams::default()).await.unwrap().items {
            if e.reason.as_deref() == Some("FailedScheduling") {
                match e.involved_object.name.as_deref() {
                    Some("big") => big_msg = e.message.unwrap_or_default(),
                    Some("picky") => picky_msg = e.message.unwrap_or_default(),
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        big_msg.starts_with("0/3 nodes are available: 3 Insufficient cpu."),
        "{big_msg}"
    );
    assert!(
        picky_msg.contains("3 node(s) didn't match Pod's node affinity/selector"),
        "{picky_msg}"
    );
    let big = pods.get("big").await.unwrap();
    assert!(big.spec.unwrap().node_name.is_none());
    let cond = big
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_deref()),
        ("False", Some("Unschedulable"))
    );

    // Freeing room lets the pending pod in.
    pods.delete("p0", &kube::api::DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let list = wait_for(&pods, |ps| {
        ps.iter().any(|p| {
            p.metadata.name.as_deref() == Some("big")
                && p.spec.as_ref().unwrap().node_name.is_some()
        })
    })
    .await;
    assert!(
        list.iter()
            .any(|p| p.metadata.name.as_deref() == Some("big")
                && p.spec.as_ref().unwrap().node_name.is_some())
    );
    // A Scheduled event tells the story.
    let scheduled = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("Scheduled")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Successfully assigned default/big to n"))
        });
    assert!(scheduled);
    sched.abort();
}
