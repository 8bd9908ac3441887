//! `berth scheduler` and `berth controller-manager`: flags (upstream names), leader
//! election, the health/metrics endpoint, and the control loops from their crates.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;

/// Flags every control-plane daemon shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// kubeconfig with the API server address and credentials.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Elect a leader through a Lease in kube-system before acting (for several instances).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Address for /healthz, /readyz and /metrics (plain HTTP).
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
}

#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    #[command(flatten)]
    common: Common,
    /// Port for /healthz and /metrics.
    #[arg(long, default_value_t = 10259)]
    secure_port: u16,
    /// Schedule pods whose spec.schedulerName is this.
    #[arg(long, default_value = "default-scheduler")]
    scheduler_name: String,
}

pub fn scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
    crate::runtime()?.block_on(async move {
        let client = daemon::client(args.common.kubeconfig.as_deref())
            .await
            .context("building the API client")?;
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = scheduler::run::Metrics::register(&mut registry);
        let health = daemon::health::Health::new(registry);
        let addr = daemon::health::serve(
            SocketAddr::new(args.common.bind_address, args.secure_port),
            health.clone(),
        )
        .await?;
        eprintln!("berth scheduler: health and metrics on http://{addr}");
        let opts = scheduler::run::Options {
            scheduler_name: args.scheduler_name,
        };
        let work = async {
            health.set_ready(true);
            scheduler::run::run(client.clone(), opts, metrics).await;
        };
        lead_or_run(
            client.clone(),
            args.common.leader_elect,
            "kube-scheduler",
            work,
        )
        .await
    })
}

/// Runs `work` under leader election (or directly), until SIGTERM/SIGINT.
pub async fn lead_or_run(
    client: kube::Client,
    leader_elect: bool,
    lease: &str,
    work: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let run = async {
        if leader_elect {
            daemon::leader::run_as_leader(client, daemon::leader::LeaderConfig::new(lease), work)
                .await
        } else {
            work.await;
            Ok(())
        }
    };
    tokio::select! {
        r = run => r.map_err(Into::into),
        _ = daemon::shutdown_signal() => Ok(()),
    }
}

#[derive(Debug, clap::Args)]
pub struct ControllerManagerArgs {
    #[command(flatten)]
    common: Common,
    /// Port for /healthz and /metrics.
    #[arg(long, default_value_t = 10257)]
    secure_port: u16,
    /// CIDR of the pod network; each node gets a podCIDR from it (node IPAM).
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// Prefix length of each node's podCIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// A node whose Lease is older than this becomes Ready=Unknown and is tainted.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: std::time::Duration,
    /// Seconds pods without their own toleration stay on a not-ready/unreachable node.
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: u64,
}

/// Parses `300ms`, `40s`, `5m`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 40s or 5m"))?;
    Ok(match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" | "" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        "h" => std::time::Duration::from_secs(n * 3600),
        other => return Err(format!("{s:?}: unknown unit {other:?} (use ms, s, m or h)")),
    })
}

pub fn controller_manager(args: ControllerManagerArgs) -> anyhow::Result<()> {
    crate::runtime()?.block_on(async move {
        let client = daemon::client(args.common.kubeconfig.as_deref())
            .await
            .context("building the API client")?;
        let health = daemon::health::Health::new(prometheus_client::registry::Registry::default());
        let addr = daemon::health::serve(
            SocketAddr::new(args.common.bind_address, args.secure_port),
            health.clone(),
        )
        .await?;
        eprintln!("berth controller-manager: health and metrics on http://{addr}");
        let opts = controllers::run::Options {
            cluster_cidr: args.cluster_cidr,
            node_cidr_mask_size: args.node_cidr_mask_size,
            node_monitor_grace_period: args.node_monitor_grace_period,
            node_monitor_period: args.node_monitor_period,
            default_toleration: std::time::Duration::from_secs(
                args.default_unreachable_toleration_seconds,
            ),
        };
        let work = async {
            health.set_ready(true);
            controllers::run::run(client.clone(), opts).await;
        };
        lead_or_run(
            client.clone(),
            args.common.leader_elect,
            "kube-controller-manager",
            work,
        )
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("40s"),
            Ok(std::time::Duration::from_secs(40))
        );
        assert_eq!(
            parse_duration("5m"),
            Ok(std::time::Duration::from_secs(300))
        );
        assert_eq!(
            parse_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_duration("7"), Ok(std::time::Duration::from_secs(7)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5d").is_err());
    }
}

#[derive(Debug, clap::Args)]
pub struct KubeletArgs {
    /// kubeconfig with the API server address and the node's credentials.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// CRI endpoint of the container runtime.
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    container_runtime_endpoint: String,
    /// Node name (default: the host name).
    #[arg(long)]
    hostname_override: Option<String>,
    /// The node's address, reported as its InternalIP.
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: String,
    /// Directory for kubelet files (its filesystem is the node's ephemeral storage).
    #[arg(long, default_value = "/var/lib/kubelet")]
    root_dir: PathBuf,
    /// Directory for container logs.
    #[arg(long, default_value = "/var/log/pods")]
    pod_log_dir: PathBuf,
    /// Cgroup under which pod cgroups are created.
    #[arg(long, default_value = "/kubepods")]
    cgroup_root: String,
    /// Pods this node accepts.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Labels to register the node with: key=value,...
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// Taints to register the node with: key=value:Effect,...
    #[arg(long, value_delimiter = ',')]
    register_with_taints: Vec<String>,
    /// Port of the kubelet server (logs for `kubectl logs`).
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// Address the kubelet server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    address: std::net::IpAddr,
    /// Serving certificate of the kubelet server (signed by the cluster CA). Without it the
    /// server does not run.
    #[arg(long, requires_all = ["tls_private_key_file", "client_ca_file"])]
    tls_cert_file: Option<PathBuf>,
    /// Key of --tls-cert-file.
    #[arg(long)]
    tls_private_key_file: Option<PathBuf>,
    /// CA that signs the certificates of clients allowed to call the kubelet (the apiserver).
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
}

fn parse_taint(s: &str) -> anyhow::Result<k8s_openapi::api::core::v1::Taint> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("taint {s:?}: expected key[=value]:Effect"))?;
    anyhow::ensure!(
        matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute"),
        "taint {s:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
    );
    let (key, value) = kv
        .split_once('=')
        .map(|(k, v)| (k, Some(v.to_string())))
        .unwrap_or((kv, None));
    Ok(k8s_openapi::api::core::v1::Taint {
        key: key.into(),
        value,
        effect: effect.into(),
        time_added: None,
    })
}

pub fn kubelet(args: KubeletArgs) -> anyhow::Result<()> {
    let name = match args.hostname_override {
        Some(n) => n,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")?
            .trim()
            .to_lowercase(),
    };
    let mut labels = std::collections::BTreeMap::new();
    for l in &args.node_labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--node-labels {l:?}: expected key=value"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let taints = args
        .register_with_taints
        .iter()
        .map(|t| parse_taint(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&args.root_dir)
        .with_context(|| format!("creating {}", args.root_dir.display()))?;
    let cfg = kubelet::run::Config {
        node: kubelet::node::NodeConfig {
            name,
            node_ip: args.node_ip,
            labels,
            taints,
            max_pods: args.max_pods,
            root_dir: args.root_dir,
            port: args.port,
        },
        runtime_endpoint: args.container_runtime_endpoint,
        log_root: args.pod_log_dir,
        cgroup_root: args.cgroup_root,
        relist_period: std::time::Duration::from_secs(1),
        server: match (
            args.tls_cert_file,
            args.tls_private_key_file,
            args.client_ca_file,
        ) {
            (Some(cert), Some(key), Some(client_ca)) => Some((
                args.address,
                kubelet::server::TlsFiles {
                    cert,
                    key,
                    client_ca,
                },
            )),
            _ => None,
        },
    };
    crate::runtime()?.block_on(async move {
        let client = daemon::client(args.kubeconfig.as_deref())
            .await
            .context("building the API client")?;
        tokio::select! {
            r = kubelet::run::run(client, cfg) => r.map_err(|e| anyhow::anyhow!(e)),
            _ = daemon::shutdown_signal() => Ok(()),
        }
    })
}

#[cfg(test)]
mod kubelet_tests {
    use super::*;

    #[test]
    fn taints_parse() {
        let t = parse_taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        assert!(parse_taint("x:Sometimes").is_err());
        assert!(parse_taint("novalue").is_err());
        assert_eq!(parse_taint("k:NoExecute").unwrap().value, None);
    }
}
