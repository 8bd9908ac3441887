//! The controller-manager and the scheduler against a real `berth apiserver`, with three
//! simulated nodes (`FakeNodes`): Deployments scale and self-heal, rolling updates respect
//! maxUnavailable, EndpointSlices follow pods, and a node that stops renewing its Lease goes
//! NotReady and its pods are recreated on the other nodes.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tests::apiserver::TestApiserver;
use tests::cluster::FakeNodes;

struct Cluster {
    server: TestApiserver,
    client: kube::Client,
    nodes: FakeNodes,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn cluster(dir: &std::path::Path) -> Cluster {
    let server = TestApiserver::start_in(dir, 0).unwrap();
    let client = server.client().await.unwrap();
    let nodes = FakeNodes::start(client.clone(), &["n1", "n2", "n3"], "1")
        .await
        .unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = scheduler::run::Metrics::register(&mut registry);
    let opts = controllers::run::Options {
        cluster_cidr: Some("10.244.0.0/16".into()),
        node_monitor_grace_period: Duration::from_secs(3),
        node_monitor_period: Duration::from_millis(500),
        default_toleration: Duration::from_secs(1),
        ..Default::default()
    };
    let tasks = vec![
        tokio::spawn(scheduler::run::run(
            client.clone(),
            Default::default(),
            metrics,
        )),
        tokio::spawn(controllers::run::run(client.clone(), opts)),
    ];
    Cluster {
        server,
        client,
        nodes,
        tasks,
    }
}

use tests::eventually;

fn deployment(replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": image,
            "ports": [{"name": "http", "containerPort": 8080}], "resources": {"requests": {"cpu": "400m"}}}]}}}}))
    .unwrap()
}

/// Running (bound, not deleting) pods of the Deployment, by node.
async fn running(pods: &Api<Pod>) -> Vec<(String, String)> {
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    list.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            Some((
                p.metadata.name.clone()?,
                p.spec.as_ref()?.node_name.clone()?,
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_scale_heal_roll_and_survive_a_node_loss() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path()).await;
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");

    // Node IPAM and the default ServiceAccount.
    let nodes: Api<Node> = Api::all(c.client.clone());
    let cidrs = eventually("podCIDRs", 10, || async {
        let list = nodes.list(&ListParams::default()).await.unwrap().items;
        let cidrs: Vec<String> = list
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
            .collect();
        (cidrs.len() == 3).then_some(cidrs)
    })
    .await;
    let mut unique = cidrs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{cidrs:?}");
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "default");
    eventually("default ServiceAccount", 10, || async {
        sas.get_opt("default").await.unwrap()
    })
    .await;

    // Scale 1 -> 5 -> 2.
    deploys
        .create(&PostParams::default(), &deployment(1, "busybox:1.35"))
        .await
        .unwrap();
    eventually("1 pod", 40, || async {
        (running(&pods).await.len() == 1).then_some(())
    })
    .await;
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    let five = eventually("5 pods", 40, || async {
        let r = running(&pods).await;
        (r.len() == 5).then_some(r)
    })
    .await;
    let mut per_node = std::collections::BTreeMap::new();
    for (_, n) in &five {
        *per_node.entry(n.clone()).or_insert(0) += 1;
    }
    assert!(
        per_node.values().all(|&v| v <= 2),
        "overcommitted: {per_node:?}"
    );
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    eventually("2 pods", 40, || async {
        (running(&pods).await.len() == 2).then_some(())
    })
    .await;

    // A deleted pod is replaced.
    let victim = running(&pods).await[0].0.clone();
    pods.delete(&victim, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("a replacement", 40, || async {
        let r = running(&pods).await;
        (r.len() == 2 && r.iter().all(|(n, _)| *n != victim)).then_some(())
    })
    .await;

    // A Service gets EndpointSlices with the ready pods' IPs on the named port.
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}})).unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    eventually("endpoints for 2 ready pods", 40, || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .unwrap()
            .items;
        let ready = list
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        let port = list.first().and_then(|s| s.ports.as_ref()?.first()?.port);
        (ready == 2 && port == Some(8080)).then_some(())
    })
    .await;

    // Readiness drives the slices: a pod that stops being ready is listed as not ready.
    let first = running(&pods).await[0].0.clone();
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    pods.patch_status(
        &first,
        &PatchParams::default(),
        &Patch::Strategic(&not_ready),
    )
    .await
    .unwrap();
    eventually("one endpoint not ready", 40, || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .unwrap()
            .items;
        let conds: Vec<Option<bool>> = list
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .map(|e| e.conditions.as_ref().and_then(|c| c.ready))
            .collect();
        (conds.iter().filter(|c| **c == Some(true)).count() == 1 && conds.contains(&Some(false)))
            .then_some(())
    })
    .await;
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(&first, &PatchParams::default(), &Patch::Strategic(&ready))
        .await
        .unwrap();

    // A rolling image update never drops below replicas - maxUnavailable available pods.
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    eventually("3 available", 40, || async {
        let d = deploys.get("web").await.unwrap();
        (d.status?.available_replicas == Some(3)).then_some(())
    })
    .await;
    deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}}}})))
        .await
        .unwrap();
    let mut min_available = i32::MAX;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let d = deploys.get("web").await.unwrap();
        let st = d.status.clone().unwrap_or_default();
        min_available = min_available.min(st.available_replicas.unwrap_or(0));
        let done = st.observed_generation >= d.metadata.generation
            && st.updated_replicas == Some(3)
            && st.replicas == Some(3)
            && st.available_replicas == Some(3);
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollout did not complete: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(min_available >= 2, "available dropped to {min_available}");
    let images: Vec<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        })
        .collect();
    assert!(images.iter().all(|i| i == "busybox:1.36"), "{images:?}");

    // kubectl sees the rollout complete, and undoes it.
    let kubeconfig = c.server.kubeconfig.clone();
    let status = tokio::task::spawn_blocking(move || {
        tests::apiserver::kubectl(
            &kubeconfig,
            &["rollout", "status", "deployment/web", "--timeout=30s"],
            None,
        )
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && out.contains("successfully rolled out"),
        "{out}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let kubeconfig = c.server.kubeconfig.clone();
    let undo = tokio::task::spawn_blocking(move || {
        tests::apiserver::kubectl(&kubeconfig, &["rollout", "undo", "deployment/web"], None)
    })
    .await
    .unwrap();
    assert!(
        undo.status.success(),
        "{}",
        String::from_utf8_lossy(&undo.stderr)
    );
    eventually("undo rolled back to busybox:1.35", 40, || async {
        let d = deploys.get("web").await.unwrap();
        let image = d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
            .image
            .clone()?;
        let st = d.status?;
        (image == "busybox:1.35"
            && st.updated_replicas == Some(3)
            && st.available_replicas == Some(3)
            && st.replicas == Some(3))
        .then_some(())
    })
    .await;

    // A node stops renewing its Lease: NotReady (Unknown), tainted, its pods recreated elsewhere.
    let on_n1: Vec<String> = running(&pods)
        .await
        .into_iter()
        .filter(|(_, n)| n == "n1")
        .map(|(p, _)| p)
        .collect();
    c.nodes.kill("n1");
    eventually("n1 Ready=Unknown", 40, || async {
        let n = nodes.get("n1").await.unwrap();
        let ready = n
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "Unknown").then_some(())
    })
    .await;
    eventually("pods moved off n1", 30, || async {
        let r = running(&pods).await;
        (r.len() == 3 && r.iter().all(|(p, n)| n != "n1" && !on_n1.contains(p))).then_some(())
    })
    .await;
    let n1 = nodes.get("n1").await.unwrap();
    let taints: Vec<String> = n1
        .spec
        .unwrap()
        .taints
        .unwrap_or_default()
        .into_iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    assert!(
        taints.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()),
        "{taints:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonsets_garbage_collection_and_namespace_deletion() {
    use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet};
    use k8s_openapi::api::core::v1::Namespace;
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path()).await;

    // A DaemonSet runs one pod per node.
    let dss: Api<DaemonSet> = Api::namespaced(c.client.clone(), "default");
    let ds: DaemonSet = serde_json::from_value(json!({"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}},
        "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "busybox"}]}}}}))
    .unwrap();
    dss.create(&PostParams::default(), &ds).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    eventually("one agent per node", 40, || async {
        let list = pods
            .list(&ListParams::default().labels("app=agent"))
            .await
            .unwrap()
            .items;
        let mut nodes: Vec<String> = list
            .iter()
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        nodes.sort();
        (nodes == ["n1", "n2", "n3"]).then_some(())
    })
    .await;

    // Deleting a Deployment removes its ReplicaSets and pods (background propagation).
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment(2, "busybox"))
        .await
        .unwrap();
    eventually("2 pods", 40, || async {
        (running(&pods).await.len() == 2).then_some(())
    })
    .await;
    deploys
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    eventually("ReplicaSets and pods collected", 40, || async {
        let rs_left = rss.list(&ListParams::default()).await.unwrap().items.len();
        let pods_left = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len();
        (rs_left == 0 && pods_left == 0).then_some(())
    })
    .await;

    // Orphan propagation keeps the dependents.
    deploys
        .create(&PostParams::default(), &deployment(1, "busybox"))
        .await
        .unwrap();
    eventually("1 pod", 40, || async {
        (running(&pods).await.len() == 1).then_some(())
    })
    .await;
    deploys
        .delete("web", &DeleteParams::orphan())
        .await
        .unwrap();
    eventually("deployment gone, ReplicaSet orphaned", 40, || async {
        let gone = deploys.get_opt("web").await.unwrap().is_none();
        let rs = rss.list(&ListParams::default()).await.unwrap().items;
        let orphaned = rs.len() == 1
            && rs[0]
                .metadata
                .owner_references
                .as_ref()
                .is_none_or(|o| o.is_empty());
        (gone && orphaned).then_some(())
    })
    .await;

    // A deleted namespace is emptied, then goes away.
    let nss: Api<Namespace> = Api::all(c.client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "temp"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(c.client.clone(), "temp");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
    )
    .await
    .unwrap();
    nss.delete("temp", &DeleteParams::default()).await.unwrap();
    eventually("namespace temp gone", 40, || async {
        nss.get_opt("temp").await.unwrap().is_none().then_some(())
    })
    .await;
}
