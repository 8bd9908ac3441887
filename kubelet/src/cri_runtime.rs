//! The kubelet's runtime operations over CRI: relisting sandboxes and containers into the
//! [`Relist`] view (grouped by the pod uid label), and building the sandbox and container
//! configs for a pod with upstream's labels, log layout and resources.

use std::collections::BTreeMap;

use cri::api;
use k8s_openapi::api::core::v1::{Container as K8sContainer, Pod};

use crate::runtime::{
    Container, ContainerState, PodRuntime, Relist, Sandbox, SandboxState, labels,
};

/// Relists every sandbox and container the runtime has that the kubelet created.
pub async fn relist(cri: &cri::Client) -> cri::Result<Relist> {
    let sandboxes = cri.list_pod_sandbox(None).await?;
    let containers = cri.list_containers(None).await?;
    let mut out = Relist::new();
    let mut sandbox_pod: BTreeMap<String, String> = BTreeMap::new();
    for s in sandboxes {
        let Some(uid) = s.labels.get(labels::POD_UID).cloned() else {
            continue;
        };
        let meta = s.metadata.clone().unwrap_or_default();
        let ip = if s.state == api::PodSandboxState::SandboxReady as i32 {
            cri.pod_sandbox_status(&s.id)
                .await
                .ok()
                .and_then(|st| st.network.map(|n| n.ip))
                .filter(|ip| !ip.is_empty())
        } else {
            None
        };
        let pod = out.entry(uid.clone()).or_insert_with(|| PodRuntime {
            uid: uid.clone(),
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            ..Default::default()
        });
        pod.sandboxes.push(Sandbox {
            id: s.id.clone(),
            attempt: meta.attempt,
            state: if s.state == api::PodSandboxState::SandboxReady as i32 {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            },
            ip,
            created_at: s.created_at,
        });
        sandbox_pod.insert(s.id, uid);
    }
    for c in containers {
        let Some(uid) = c
            .labels
            .get(labels::POD_UID)
            .cloned()
            .or_else(|| sandbox_pod.get(&c.pod_sandbox_id).cloned())
        else {
            continue;
        };
        let status = match cri.container_status(&c.id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let meta = c.metadata.clone().unwrap_or_default();
        let state = match status.state {
            s if s == api::ContainerState::ContainerCreated as i32 => ContainerState::Created,
            s if s == api::ContainerState::ContainerRunning as i32 => ContainerState::Running,
            s if s == api::ContainerState::ContainerExited as i32 => ContainerState::Exited,
            _ => ContainerState::Unknown,
        };
        let pod = out.entry(uid.clone()).or_insert_with(|| PodRuntime {
            uid,
            ..Default::default()
        });
        pod.containers.push(Container {
            id: c.id.clone(),
            sandbox_id: c.pod_sandbox_id.clone(),
            name: meta.name,
            attempt: meta.attempt,
            image: c.image.map(|i| i.image).unwrap_or_default(),
            image_ref: c.image_ref,
            state,
            created_at: status.created_at,
            started_at: status.started_at,
            finished_at: status.finished_at,
            exit_code: status.exit_code,
            reason: status.reason,
            message: status.message,
        });
    }
    for pod in out.values_mut() {
        pod.sandboxes.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.attempt.cmp(&a.attempt))
        });
        pod.containers.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.attempt.cmp(&a.attempt))
        });
    }
    Ok(out)
}

/// The PID namespace of a pod's containers: the node's, the pod's (shareProcessNamespace),
/// or one per container (the default).
fn pid_mode(spec: &k8s_openapi::api::core::v1::PodSpec) -> i32 {
    if spec.host_pid.unwrap_or(false) {
        api::NamespaceMode::Node as i32
    } else if spec.share_process_namespace.unwrap_or(false) {
        api::NamespaceMode::Pod as i32
    } else {
        api::NamespaceMode::Container as i32
    }
}

/// The namespace options of a pod's sandbox and containers.
fn namespace_options(spec: &k8s_openapi::api::core::v1::PodSpec) -> api::NamespaceOption {
    let mode = |host: bool| {
        if host {
            api::NamespaceMode::Node as i32
        } else {
            api::NamespaceMode::Pod as i32
        }
    };
    api::NamespaceOption {
        network: mode(spec.host_network.unwrap_or(false)),
        pid: pid_mode(spec),
        ipc: mode(spec.host_ipc.unwrap_or(false)),
        ..Default::default()
    }
}

fn pod_labels(pod: &Pod) -> std::collections::HashMap<String, String> {
    let m = &pod.metadata;
    let mut l: std::collections::HashMap<String, String> =
        m.labels.clone().unwrap_or_default().into_iter().collect();
    l.insert(labels::POD_NAME.into(), m.name.clone().unwrap_or_default());
    l.insert(
        labels::POD_NAMESPACE.into(),
        m.namespace.clone().unwrap_or_default(),
    );
    l.insert(labels::POD_UID.into(), m.uid.clone().unwrap_or_default());
    l
}

/// The sandbox config of `pod` (attempt `attempt`), logs under `log_root/<ns>_<name>_<uid>`.
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    log_root: &std::path::Path,
    cgroup_parent: &str,
    dns: Option<api::DnsConfig>,
) -> api::PodSandboxConfig {
    let m = &pod.metadata;
    let (name, ns, uid) = (
        m.name.clone().unwrap_or_default(),
        m.namespace.clone().unwrap_or_default(),
        m.uid.clone().unwrap_or_default(),
    );
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let namespace_mode = |host: bool| {
        if host {
            api::NamespaceMode::Node as i32
        } else {
            api::NamespaceMode::Pod as i32
        }
    };
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.clone(),
            uid: uid.clone(),
            namespace: ns.clone(),
            attempt,
        }),
        hostname: spec.hostname.clone().unwrap_or_else(|| name.clone()),
        log_directory: log_root
            .join(format!("{ns}_{name}_{uid}"))
            .display()
            .to_string(),
        dns_config: dns,
        labels: pod_labels(pod),
        annotations: m
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: namespace_mode(host_network),
                    pid: pid_mode(&spec),
                    ipc: namespace_mode(spec.host_ipc.unwrap_or(false)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container config of `c` in `pod` (attempt `attempt`), with `env` already resolved
/// and `command`/`args` expanded by the caller.
pub fn container_config(
    pod: &Pod,
    c: &K8sContainer,
    attempt: u32,
    env: Vec<(String, String)>,
    command: Vec<String>,
    args: Vec<String>,
) -> api::ContainerConfig {
    let mut labels = std::collections::HashMap::new();
    let m = &pod.metadata;
    labels.insert(
        labels::POD_NAME.to_string(),
        m.name.clone().unwrap_or_default(),
    );
    labels.insert(
        labels::POD_NAMESPACE.to_string(),
        m.namespace.clone().unwrap_or_default(),
    );
    labels.insert(
        labels::POD_UID.to_string(),
        m.uid.clone().unwrap_or_default(),
    );
    labels.insert(labels::CONTAINER_NAME.to_string(), c.name.clone());
    let resources = c.resources.as_ref();
    let quantity = |which: &str, name: &str| -> Option<i128> {
        let list = match which {
            "limits" => resources.and_then(|r| r.limits.as_ref()),
            _ => resources.and_then(|r| r.requests.as_ref()),
        }?;
        kubeutil::quantity::quantity_milli(&list.get(name)?.0)
    };
    let cpu_request = quantity("requests", "cpu")
        .or_else(|| quantity("limits", "cpu"))
        .unwrap_or(0);
    let cpu_limit = quantity("limits", "cpu").unwrap_or(0);
    let memory_limit = quantity("limits", "memory").map(|m| m / 1000).unwrap_or(0);
    // Upstream's conversions: shares = milli * 1024 / 1000 (min 2); quota per 100 ms period.
    let shares = if cpu_request == 0 {
        2
    } else {
        (cpu_request * 1024 / 1000).max(2)
    };
    let (period, quota) = if cpu_limit > 0 {
        (100_000, (cpu_limit * 100_000 / 1000).max(1000))
    } else {
        (0, 0)
    };
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(api::ImageSpec {
            image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: env
            .into_iter()
            .map(|(key, value)| api::KeyValue { key, value })
            .collect(),
        labels,
        log_path: format!("{}/{attempt}.log", c.name),
        stdin: c.stdin.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(namespace_options(&pod.spec.clone().unwrap_or_default())),
                ..Default::default()
            }),
            resources: Some(api::LinuxContainerResources {
                cpu_shares: i64::try_from(shares).unwrap_or(2),
                cpu_period: period,
                cpu_quota: i64::try_from(quota).unwrap_or(0),
                memory_limit_in_bytes: i64::try_from(memory_limit).unwrap_or(0),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_carry_labels_logs_and_resources() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]},
        }))
        .unwrap();
        let sb = sandbox_config(
            &pod,
            1,
            std::path::Path::new("/var/log/pods"),
            "/kubepods/podu1",
            None,
        );
        assert_eq!(sb.log_directory, "/var/log/pods/ns_web_u1");
        assert_eq!(sb.labels[labels::POD_UID], "u1");
        assert_eq!(sb.labels["app"], "x");
        assert_eq!(sb.metadata.unwrap().attempt, 1);
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let cc = container_config(
            &pod,
            c,
            2,
            vec![("A".into(), "1".into())],
            vec!["sh".into()],
            vec![],
        );
        assert_eq!(cc.log_path, "c/2.log");
        let r = cc.linux.unwrap().resources.unwrap();
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.cpu_period),
            (512, 50_000, 100_000)
        );
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        assert_eq!(cc.labels[labels::CONTAINER_NAME], "c");
    }
}
