//! The kubelet's Node: registration (labels, taints), status (capacity and allocatable from
//! procfs/statfs and `--max-pods`, node info, addresses, conditions, the kubelet endpoint)
//! and the Lease in `kube-node-lease` renewed every 10 s, as upstream's node status and
//! node lease controllers do. Status is written when it changes and at least every 5 minutes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// How the node presents itself.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name (`--hostname-override`).
    pub name: String,
    /// Node address (`--node-ip`).
    pub node_ip: String,
    /// Extra labels (`--node-labels`).
    pub labels: BTreeMap<String, String>,
    /// Taints to register with (`--register-with-taints`).
    pub taints: Vec<Taint>,
    /// `--max-pods`.
    pub max_pods: u32,
    /// Root directory, whose filesystem is the node's ephemeral storage.
    pub root_dir: PathBuf,
    /// Port of the kubelet server.
    pub port: u16,
}

/// Facts read from the machine and the runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// CPUs.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory: u64,
    /// Size of the root directory's filesystem in bytes.
    pub storage: u64,
    /// `uname -r`.
    pub kernel: String,
    /// PRETTY_NAME of /etc/os-release.
    pub os_image: String,
    /// `containerd://1.6.20`.
    pub runtime_version: String,
    /// /etc/machine-id.
    pub machine_id: String,
    /// Boot id.
    pub boot_id: String,
}

impl Facts {
    /// Reads the facts of this machine; `runtime_version` as `name://version`.
    pub fn read(root_dir: &Path, runtime_version: &str) -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        let os_image = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        Facts {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            memory,
            storage: fs_size(root_dir),
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image,
            runtime_version: runtime_version.to_string(),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// Total bytes of the filesystem holding `path` (0 if unknown).
pub fn fs_size(path: &Path) -> u64 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs writes into the zeroed struct; c is a valid NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return 0;
        }
        st.f_blocks.saturating_mul(st.f_frsize)
    }
}

/// The Node object registered on first start.
pub fn node_object(cfg: &NodeConfig) -> Node {
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", cfg.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(cfg.labels.clone());
    let mut node = Node::default();
    node.metadata.name = Some(cfg.name.clone());
    node.metadata.labels = Some(labels);
    if !cfg.taints.is_empty() {
        node.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            taints: Some(cfg.taints.clone()),
            ..Default::default()
        });
    }
    node
}

/// The node status to report (conditions healthy; pressure is evaluated elsewhere).
pub fn node_status(
    cfg: &NodeConfig,
    facts: &Facts,
    now: Timestamp,
    transition: Timestamp,
) -> Value {
    let capacity = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory / 1024),
        "ephemeral-storage": format!("{}Ki", facts.storage / 1024),
        "pods": cfg.max_pods.to_string(),
    });
    let cond = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({ "type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": Time(now), "lastTransitionTime": Time(transition) })
    };
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            { "type": "InternalIP", "address": cfg.node_ip },
            { "type": "Hostname", "address": cfg.name },
        ],
        "daemonEndpoints": { "kubeletEndpoint": { "Port": cfg.port } },
        "nodeInfo": {
            "machineID": facts.machine_id, "systemUUID": facts.machine_id, "bootID": facts.boot_id,
            "kernelVersion": facts.kernel, "osImage": facts.os_image,
            "containerRuntimeVersion": facts.runtime_version,
            "kubeletVersion": "v1.30.0-berth", "kubeProxyVersion": "v1.30.0-berth",
            "operatingSystem": "linux", "architecture": "amd64",
        },
    })
}

/// Registers the node (creating it, or merging labels into an existing one).
pub async fn register(client: &kube::Client, cfg: &NodeConfig) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = node_object(cfg);
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = json!({ "metadata": { "labels": node.metadata.labels } });
            nodes
                .patch(&cfg.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Writes the node status.
pub async fn update_status(
    client: &kube::Client,
    cfg: &NodeConfig,
    status: &Value,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({ "status": status });
    nodes
        .patch_status(
            &cfg.name,
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .map(drop)
}

/// Renews (or creates) the node's Lease.
pub async fn renew_lease(
    client: &kube::Client,
    name: &str,
    duration: Duration,
) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = MicroTime(Timestamp::now());
    let secs = i32::try_from(duration.as_secs()).unwrap_or(40);
    let patch = json!({ "spec": { "holderIdentity": name, "leaseDurationSeconds": secs, "renewTime": now } });
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": { "name": name, "namespace": "kube-node-lease" },
                "spec": { "holderIdentity": name, "leaseDurationSeconds": secs, "renewTime": now },
            }))
            .map_err(kube::Error::SerdeError)?;
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Keeps the node registered and alive: Lease every 10 s, status every 5 minutes.
pub async fn heartbeat(client: kube::Client, cfg: NodeConfig, facts: Facts) {
    let started = Timestamp::now();
    let mut last_status: Option<tokio::time::Instant> = None;
    loop {
        if let Err(e) = renew_lease(&client, &cfg.name, Duration::from_secs(40)).await {
            tracing::warn!(error = %e, "renewing the node lease");
        }
        if last_status.is_none_or(|t| t.elapsed() >= Duration::from_secs(300)) {
            let status = node_status(&cfg, &facts, Timestamp::now(), started);
            match update_status(&client, &cfg, &status).await {
                Ok(()) => last_status = Some(tokio::time::Instant::now()),
                Err(e) => tracing::warn!(error = %e, "updating node status"),
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_capacity_and_endpoint() {
        let cfg = NodeConfig {
            name: "n1".into(),
            node_ip: "10.0.0.2".into(),
            labels: [("zone".to_string(), "a".to_string())].into(),
            taints: Vec::new(),
            max_pods: 110,
            root_dir: "/".into(),
            port: 10250,
        };
        let facts = Facts {
            cpus: 2,
            memory: 4 << 30,
            storage: 100 << 30,
            runtime_version: "containerd://1.6.20".into(),
            ..Default::default()
        };
        let now = Timestamp::now();
        let s = node_status(&cfg, &facts, now, now);
        assert_eq!(s["capacity"]["cpu"], "2");
        assert_eq!(s["capacity"]["memory"], "4194304Ki");
        assert_eq!(s["allocatable"]["pods"], "110");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["addresses"][0]["address"], "10.0.0.2");
        assert_eq!(s["conditions"][3]["type"], "Ready");
        let node = node_object(&cfg);
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(labels["zone"], "a");
        assert!(fs_size(Path::new("/")) > 0);
        let f = Facts::read(Path::new("/"), "containerd://x");
        assert!(f.cpus >= 1 && f.memory > 0 && !f.kernel.is_empty());
    }
}
