//! `LocalNode`: a node environment on this machine: a network namespace, a private
//! containerd inside it with a bridge pod network and the local images imported, and a
//! cgroup parent of its own, all named after the node. Dropping it (also on panic) removes
//! everything it created; [`LocalNode::stop`] does the same politely (pods removed via CRI).

use std::path::{Path, PathBuf};

use cri::api;

use crate::containerd::bridge_conflist;
use crate::error::Result;
use crate::{Containerd, ContainerdConfig, NetNs};

/// How to lay out a local node.
#[derive(Debug, Clone)]
pub struct LocalNodeConfig {
    /// Node name: also the netns name and the top cgroup (`/<name>`).
    pub name: String,
    /// Directory for containerd's state (short: unix socket paths are limited to 107 bytes).
    pub dir: PathBuf,
    /// Pod subnet of the node's bridge network.
    pub pod_subnet: String,
}

/// A running local node. See the module docs.
#[derive(Debug)]
pub struct LocalNode {
    name: String,
    // Field order is drop order: containerd before its network namespace.
    containerd: Option<Containerd>,
    netns: Option<NetNs>,
}

impl LocalNode {
    /// Creates the netns, starts containerd in it and imports busybox and pause.
    pub async fn start(config: LocalNodeConfig) -> Result<Self> {
        let netns = NetNs::create(&config.name)?;
        let mut cc = ContainerdConfig::new(&config.dir);
        cc.netns = Some(netns.path().to_path_buf());
        cc.cgroup_parent = Some(format!("/{}", config.name));
        cc.cni_config = Some((
            "10-pods.conflist".into(),
            bridge_conflist(
                "pods",
                "cni0",
                &config.pod_subnet,
                &config.dir.join("cni/ipam"),
            ),
        ));
        let containerd = Containerd::start(cc).await?;
        let node = LocalNode {
            name: config.name,
            containerd: Some(containerd),
            netns: Some(netns),
        };
        node.containerd().import_local_images().await?;
        Ok(node)
    }

    /// The node's name (also its netns name and top cgroup).
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

    /// The node's containerd directory.
    pub fn dir(&self) -> &Path {
        &self.containerd().config().dir
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
    /// directory and its cgroup under the node's cgroup.
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
                image: images::BUSYBOX_IMAGE.into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.to_string()],
            log_path: format!("{name}.log"),
            linux: Some(api::LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    /// Removes every pod through CRI, stops containerd and deletes everything.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(c) = self.containerd.take() {
            c.stop().await?;
        }
        if let Some(ns) = self.netns.take() {
            ns.delete()?;
        }
        Ok(())
    }
}

/// Removes what a local node named `name` with directory `dir` left behind when its owner
/// died without tearing it down (killed test or bench process).
pub fn remove_stale(name: &str, dir: &Path) {
    let socket = dir.join("containerd.sock").display().to_string();
    let procs = crate::cleanup::processes_mentioning(&socket);
    crate::cleanup::remove_cgroup_tree(&format!("/{name}"));
    crate::cleanup::terminate(&procs, std::time::Duration::from_secs(2));
    crate::cleanup::unmount_under(dir);
    let _ = std::fs::remove_dir_all(dir);
    let _ = crate::netns::delete(name);
}
