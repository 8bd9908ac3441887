//! `FakeNodes`: Node objects with their kubelets simulated through the API, for control
//! plane tests without containerd: each node is Ready, renews its Lease in kube-node-lease,
//! and reports every pod bound to it as Running and Ready with an IP (after a short start
//! delay, like a real pod start). A node can be killed: it stops renewing and reporting.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// Simulated nodes; dropping it stops the simulation.
#[derive(Debug)]
pub struct FakeNodes {
    dead: Arc<Mutex<HashSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Creates a Ready node named `name` with `cpu` allocatable.
pub async fn create_node(client: &kube::Client, name: &str, cpu: &str) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let n: Node = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}),
    )?;
    nodes.create(&PostParams::default(), &n).await?;
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": Time(Timestamp::now()), "lastTransitionTime": Time(Timestamp::now())}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

impl FakeNodes {
    /// Creates `names` (each with `cpu`) and starts simulating their kubelets.
    pub async fn start(client: kube::Client, names: &[&str], cpu: &str) -> anyhow::Result<Self> {
        for n in names {
            create_node(&client, n, cpu).await?;
        }
        let dead: Arc<Mutex<HashSet<String>>> = Arc::default();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let d = Arc::clone(&dead);
        let task = tokio::spawn(async move {
            let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
            let pods: Api<Pod> = Api::all(client.clone());
            let mut ip = 2u32;
            loop {
                let dead_now = d.lock().map(|g| g.clone()).unwrap_or_default();
                for n in names.iter().filter(|n| !dead_now.contains(*n)) {
                    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": n, "namespace": "kube-node-lease"},
                        "spec": {"holderIdentity": n, "leaseDurationSeconds": 40, "renewTime": MicroTime(Timestamp::now())}});
                    // Renew with a merge patch; create the Lease the first time.
                    let renewed = leases
                        .patch(n, &PatchParams::default(), &Patch::Merge(&lease))
                        .await;
                    if renewed.is_err()
                        && let Ok(l) = serde_json::from_value::<Lease>(lease)
                    {
                        let _ = leases.create(&PostParams::default(), &l).await;
                    }
                }
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    for p in list.items {
                        let node = p
                            .spec
                            .as_ref()
                            .and_then(|s| s.node_name.clone())
                            .unwrap_or_default();
                        let ready = p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some();
                        let api: Api<Pod> = Api::namespaced(
                            client.clone(),
                            &p.metadata.namespace.clone().unwrap_or_default(),
                        );
                        // A live kubelet finishes graceful deletions at once (no containers).
                        if p.metadata.deletion_timestamp.is_some()
                            && !node.is_empty()
                            && !dead_now.contains(&node)
                        {
                            let name = p.metadata.name.clone().unwrap_or_default();
                            let _ = api
                                .delete(&name, &kube::api::DeleteParams::default().grace_period(0))
                                .await;
                            continue;
                        }
                        if node.is_empty()
                            || ready
                            || dead_now.contains(&node)
                            || p.metadata.deletion_timestamp.is_some()
                        {
                            continue;
                        }
                        ip += 1;
                        let addr = format!("10.244.{}.{}", ip / 250, ip % 250 + 2);
                        let now = Time(Timestamp::now());
                        let status = json!({"status": {"phase": "Running", "podIP": addr, "podIPs": [{"ip": addr}], "hostIP": "127.0.0.1",
                            "startTime": now,
                            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now},
                                           {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}});
                        let _ = api
                            .patch_status(
                                &p.metadata.name.clone().unwrap_or_default(),
                                &PatchParams::default(),
                                &Patch::Strategic(&status),
                            )
                            .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Ok(FakeNodes { dead, task })
    }

    /// Stops renewing `node`'s Lease and reporting its pods, as if its kubelet died.
    pub fn kill(&self, node: &str) {
        if let Ok(mut d) = self.dead.lock() {
            d.insert(node.to_string());
        }
    }
}

impl Drop for FakeNodes {
    fn drop(&mut self) {
        self.task.abort();
    }
}
