//! `TestNode`: a throw-away node for end-to-end tests: a fresh network namespace, a private
//! containerd inside it with the local images imported and a bridge pod network, and a
//! cgroup parent of its own. Dropping it (also on panic) removes everything it created.
//!
//! Names are `bt<pid>-<n>`, so fixtures of one or several test processes never clash, and a
//! fixture left behind by a killed test process is swept away by the next one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use cri::api;
use node::containerd::bridge_conflist;
use node::{Containerd, ContainerdConfig, NetNs};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Prefix of every fixture's netns, directory and cgroup.
const PREFIX: &str = "bt";
/// Where fixture directories live (short: unix socket paths are limited to 107 bytes).
const BASE: &str = "/tmp";

/// A node for tests. See the module docs.
#[derive(Debug)]
pub struct TestNode {
    name: String,
    // Field order is drop order: containerd before its network namespace.
    containerd: Option<Containerd>,
    netns: Option<NetNs>,
}

impl TestNode {
    /// Starts a node with the local busybox and pause images imported.
    pub async fn start() -> anyhow::Result<Self> {
        sweep_stale();
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let netns = NetNs::create(&name).with_context(|| format!("creating netns {name}"))?;
        let dir = Path::new(BASE).join(&name);
        let mut config = ContainerdConfig::new(&dir);
        config.netns = Some(netns.path().to_path_buf());
        config.cgroup_parent = Some(format!("/{name}"));
        config.cni_config = Some((
            "10-pods.conflist".into(),
            bridge_conflist("pods", "cni0", "10.88.0.0/24", &dir.join("cni/ipam")),
        ));
        let containerd = Containerd::start(config)
            .await
            .context("starting containerd")?;
        containerd
            .import_local_images()
            .await
            .context("importing local images")?;
        Ok(TestNode {
            name,
            containerd: Some(containerd),
            netns: Some(netns),
        })
    }

    /// The node's name (also its netns name and cgroup parent).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn containerd(&self) -> &Containerd {
        // Only `stop` takes it, and `stop` consumes self.
        self.containerd
            .as_ref()
            .expect("containerd present until stop")
    }

    /// The CRI client of the node's containerd.
    pub fn cri(&self) -> &cri::Client {
        self.containerd().cri()
    }

    /// The node's containerd socket.
    pub fn socket(&self) -> PathBuf {
        self.containerd().socket()
    }

    /// The node's directory.
    pub fn dir(&self) -> PathBuf {
        self.containerd().config().dir.clone()
    }

    /// The node's network namespace.
    pub fn netns(&self) -> &NetNs {
        self.netns.as_ref().expect("netns present until stop")
    }

    /// The cgroup parent for a pod with this uid (under the node's own cgroup).
    pub fn pod_cgroup(&self, uid: &str) -> String {
        format!("/{}/pod{uid}", self.name)
    }

    /// A sandbox config for pod `name` in namespace `default`, with logs under the node's
    /// directory and its cgroup under the node's cgroup parent.
    pub fn sandbox_config(&self, name: &str) -> api::PodSandboxConfig {
        let uid = format!("{}-{name}", self.name);
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.to_string(),
                uid: uid.clone(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            log_directory: self.dir().join("pods").join(&uid).display().to_string(),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: self.pod_cgroup(&uid),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A busybox container config running `sh -c script`, logging to `<name>.log`.
    pub fn busybox(&self, name: &str, script: &str) -> api::ContainerConfig {
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: name.to_string(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: "docker.io/library/busybox:latest".into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.to_string()],
            log_path: format!("{name}.log"),
            linux: Some(api::LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    /// Removes every pod through CRI, stops containerd and deletes everything.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(c) = self.containerd.take() {
            c.stop().await?;
        }
        if let Some(ns) = self.netns.take() {
            ns.delete()?;
        }
        Ok(())
    }
}

/// Removes fixtures whose test process is gone (killed by a timeout or a signal).
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split_once('-'))
            .and_then(|(p, _)| p.parse::<i32>().ok())
        else {
            continue;
        };
        if node::cleanup::alive(pid) {
            continue;
        }
        tracing::warn!(%name, "removing a fixture left by a dead test process");
        let dir = Path::new(BASE).join(&name);
        let socket = dir.join("containerd.sock").display().to_string();
        let procs = node::cleanup::processes_mentioning(&socket);
        node::cleanup::remove_cgroup_tree(&format!("/{name}"));
        node::cleanup::terminate(&procs, std::time::Duration::from_secs(2));
        node::cleanup::unmount_under(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = node::netns::delete(&name);
    }
}
