//! A private containerd instance: its `config.toml`, its process (inside a network namespace
//! when asked), and a teardown that leaves nothing behind.
//!
//! Layout under the instance directory `DIR` (keep it short: unix socket paths are limited
//! to 107 bytes):
//! `DIR/config.toml`, `DIR/containerd.sock` (gRPC, CRI), `DIR/root`, `DIR/state` (runc state,
//! sandbox network namespaces), `DIR/opt`, `DIR/cni/net.d` (CNI config), `DIR/cni/ipam`
//! (address allocations), `DIR/containerd.log`.
//!
//! Teardown order: remove every pod through CRI (stops containers, tears down CNI, unmounts
//! rootfs), SIGTERM containerd, then force: kill leftover shims and whatever runs in the
//! instance's cgroup parent, unmount everything under `DIR`, delete shim sockets, remove `DIR`.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::cleanup;
use crate::error::{Error, Result, io};

/// Where containerd finds CNI plugins when nothing else is configured (Debian's
/// containernetworking-plugins).
pub const DEFAULT_CNI_BIN_DIR: &str = "/usr/lib/cni";

/// How to start a private containerd.
#[derive(Debug, Clone)]
pub struct ContainerdConfig {
    /// Instance directory; created if missing.
    pub dir: PathBuf,
    /// Network namespace file to run containerd in (`/run/netns/NAME`), or the caller's.
    pub netns: Option<PathBuf>,
    /// Image used for pod sandboxes; must be imported, nothing is pulled.
    pub sandbox_image: String,
    /// Directory holding CNI plugin binaries (must include `loopback`).
    pub cni_bin_dir: PathBuf,
    /// CNI network config to write into `DIR/cni/net.d`, as (file name, contents), if any.
    /// Use [`bridge_conflist`] for a simple bridge network.
    pub cni_config: Option<(String, String)>,
    /// Cgroup parent (relative to each hierarchy's root) that this instance's pods use; its
    /// whole subtree is removed on teardown.
    pub cgroup_parent: Option<String>,
}

impl ContainerdConfig {
    /// A config with defaults for everything but the directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ContainerdConfig {
            dir: dir.into(),
            netns: None,
            sandbox_image: images::PAUSE_IMAGE.to_string(),
            cni_bin_dir: PathBuf::from(DEFAULT_CNI_BIN_DIR),
            cni_config: None,
            cgroup_parent: None,
        }
    }

    /// The gRPC (CRI) socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The CNI config directory containerd watches.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("cni/net.d")
    }

    /// The `config.toml` for this instance (containerd 1.6, config version 2).
    pub fn to_toml(&self) -> String {
        let d = self.dir.display();
        let q = |p: &Path| toml_str(&p.display().to_string());
        format!(
            r#"# Written by berth: a private containerd for one node.
version = 2
root = {root}
state = {state}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = {sock}

[ttrpc]
  address = {ttrpc}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox}
  # This VM's root lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  systemd_cgroup = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = {runc}

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
    max_conf_num = 1
"#,
            root = toml_str(&format!("{d}/root")),
            state = toml_str(&format!("{d}/state")),
            sock = q(&self.socket()),
            ttrpc = toml_str(&format!("{d}/containerd.sock.ttrpc")),
            opt = toml_str(&format!("{d}/opt")),
            sandbox = toml_str(&self.sandbox_image),
            runc = toml_str(&format!("{d}/state/runc")),
            cni_bin = q(&self.cni_bin_dir),
            cni_conf = q(&self.cni_conf_dir()),
        )
    }
}

/// A CNI conflist for a bridge network on `subnet` using the reference `bridge` and
/// `host-local` plugins, with address allocations kept under `ipam_dir`.
pub fn bridge_conflist(name: &str, bridge: &str, subnet: &str, ipam_dir: &Path) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": {name},
  "plugins": [
    {{
      "type": "bridge",
      "bridge": {bridge},
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "dataDir": {dir},
        "ranges": [[{{ "subnet": {subnet} }}]],
        "routes": [{{ "dst": "0.0.0.0/0" }}]
      }}
    }}
  ]
}}
"#,
        name = json_str(name),
        bridge = json_str(bridge),
        dir = json_str(&ipam_dir.display().to_string()),
        subnet = json_str(subnet),
    )
}

fn toml_str(s: &str) -> String {
    // TOML basic strings share JSON's escapes for what paths and names may contain.
    json_str(s)
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A running private containerd. Call [`Containerd::stop`] to tear it down; dropping it
/// without that tears it down too (blocking).
#[derive(Debug)]
pub struct Containerd {
    config: ContainerdConfig,
    child: Option<Child>,
    client: cri::Client,
}

impl Containerd {
    /// Writes the config, starts containerd and waits until CRI answers.
    pub async fn start(config: ContainerdConfig) -> Result<Self> {
        let dir = &config.dir;
        for sub in ["root", "state", "opt", "cni/net.d", "cni/ipam"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io("create", dir.join(sub)))?;
        }
        let toml = dir.join("config.toml");
        std::fs::write(&toml, config.to_toml()).map_err(io("write", &toml))?;
        if let Some((name, body)) = &config.cni_config {
            let path = config.cni_conf_dir().join(name);
            std::fs::write(&path, body).map_err(io("write", &path))?;
        }
        let log_path = dir.join("containerd.log");
        let log = std::fs::File::create(&log_path).map_err(io("create", &log_path))?;
        let log2 = log.try_clone().map_err(io("dup", &log_path))?;

        let mut cmd = match &config.netns {
            Some(ns) => {
                let mut c = std::process::Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg("containerd");
                c
            }
            None => std::process::Command::new("containerd"),
        };
        cmd.arg("--config")
            .arg(&toml)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd.spawn().map_err(io("spawn containerd with", &toml))?;
        tracing::debug!(pid = child.id(), dir = %dir.display(), "containerd started");

        let client = cri::Client::new(&config.socket().display().to_string())?
            .with_timeout(Duration::from_secs(30));
        let mut me = Containerd {
            config,
            child: Some(child),
            client,
        };
        let ready = me.client.wait_ready(Duration::from_secs(30)).await;
        if let Err(e) = ready {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            me.teardown_blocking();
            return Err(Error::Timeout {
                what: format!(
                    "containerd to answer CRI ({e}); log tail: {}",
                    tail.join(" | ")
                ),
                seconds: 30,
            });
        }
        Ok(me)
    }

    /// The CRI client of this instance.
    pub fn cri(&self) -> &cri::Client {
        &self.client
    }

    /// The instance's config.
    pub fn config(&self) -> &ContainerdConfig {
        &self.config
    }

    /// The gRPC socket (CRI and the containerd API).
    pub fn socket(&self) -> PathBuf {
        self.config.socket()
    }

    /// Builds the local images (busybox, pause) and imports them into this instance.
    pub async fn import_local_images(&self) -> Result<()> {
        let dir = self.config.dir.join("images");
        let socket = self.socket();
        tokio::task::spawn_blocking(move || -> Result<()> {
            std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
            let mut files = Vec::new();
            for kind in [images::Kind::Busybox, images::Kind::Pause] {
                let file = dir.join(format!("{kind}.tar"));
                images::build(kind, &file)?;
                files.push(file);
            }
            images::import(&socket, &files)?;
            for f in &files {
                let _ = std::fs::remove_file(f);
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Io {
            what: "join import task",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
    }

    /// Removes every pod through CRI, then tears the instance down.
    pub async fn stop(mut self) -> Result<()> {
        self.remove_all_pods().await;
        let this = tokio::task::spawn_blocking(move || {
            self.teardown_blocking();
        });
        this.await.map_err(|e| Error::Io {
            what: "join teardown task",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })
    }

    async fn remove_all_pods(&self) {
        let client = self.client.clone().with_timeout(Duration::from_secs(20));
        match client.list_pod_sandbox(None).await {
            Ok(pods) => {
                for p in pods {
                    if let Err(e) = client.stop_pod_sandbox(&p.id).await {
                        tracing::warn!(pod = %p.id, error = %e, "stop sandbox during teardown");
                    }
                    if let Err(e) = client.remove_pod_sandbox(&p.id).await {
                        tracing::warn!(pod = %p.id, error = %e, "remove sandbox during teardown");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing sandboxes during teardown"),
        }
    }

    /// The forceful part of teardown; safe to call more than once.
    fn teardown_blocking(&mut self) {
        let dir = self.config.dir.clone();
        let sandboxes = sandbox_ids(&dir);
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            cleanup::terminate(&[pid], Duration::from_secs(10));
            let _ = child.wait();
        }
        // Shims are started with `-address DIR/containerd.sock`; they outlive containerd.
        let needle = self.socket().display().to_string();
        let shims = cleanup::processes_mentioning(&needle);
        let shim_sockets: Vec<PathBuf> = shims
            .iter()
            .flat_map(|&p| cleanup::unix_sockets_of(p))
            .collect();
        // Containers whose shim is killed keep running: kill them through their cgroups and
        // runc state first.
        if let Some(parent) = &self.config.cgroup_parent {
            cleanup::remove_cgroup_tree(parent);
        }
        kill_runc_containers(&dir.join("state/runc"));
        cleanup::terminate(&shims, Duration::from_secs(2));
        for s in shim_sockets {
            let _ = std::fs::remove_file(s);
        }
        if let Some(parent) = &self.config.cgroup_parent {
            cleanup::remove_cgroup_tree(parent);
        }
        cleanup::unmount_under(&dir);
        forget_cni_results(&sandboxes);
        // containerd 1.6 creates these whatever its config says; remove them once empty.
        for shared in ["/run/containerd/s", "/run/containerd"] {
            let _ = std::fs::remove_dir(shared);
        }
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "removing containerd directory");
        }
    }
}

/// Ids of the sandboxes the CRI plugin of the instance in `dir` knows.
fn sandbox_ids(dir: &Path) -> Vec<String> {
    ["root", "state"]
        .iter()
        .filter_map(|d| {
            std::fs::read_dir(dir.join(d).join("io.containerd.grpc.v1.cri/sandboxes")).ok()
        })
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// libcni caches each attachment's result under /var/lib/cni/results as
/// `<network>-<sandbox id>-<interface>`; a sandbox removed without CNI DEL leaves its files.
fn forget_cni_results(sandboxes: &[String]) {
    const RESULTS: &str = "/var/lib/cni/results";
    let Ok(entries) = std::fs::read_dir(RESULTS) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if sandboxes.iter().any(|id| name.contains(&format!("-{id}-"))) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    for d in [RESULTS, "/var/lib/cni"] {
        let _ = std::fs::remove_dir(d);
    }
}

/// Kills and deletes every container runc knows under `root`.
fn kill_runc_containers(root: &Path) {
    if !root.is_dir() {
        return;
    }
    let root_arg = root.display().to_string();
    let Ok(list) = crate::error::run("runc", &["--root", &root_arg, "list", "-q"]) else {
        return;
    };
    for id in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let _ = crate::error::run("runc", &["--root", &root_arg, "kill", id, "KILL"]);
        let _ = crate::error::run("runc", &["--root", &root_arg, "delete", "--force", id]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.teardown_blocking();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_private_path() {
        let mut c = ContainerdConfig::new("/tmp/b1");
        c.sandbox_image = "berth.local/pause:1.0".into();
        let t = c.to_toml();
        for needle in [
            r#"root = "/tmp/b1/root""#,
            r#"state = "/tmp/b1/state""#,
            r#"address = "/tmp/b1/containerd.sock""#,
            r#"address = "/tmp/b1/containerd.sock.ttrpc""#,
            r#"path = "/tmp/b1/opt""#,
            r#"Root = "/tmp/b1/state/runc""#,
            r#"conf_dir = "/tmp/b1/cni/net.d""#,
            r#"sandbox_image = "berth.local/pause:1.0""#,
            "restrict_oom_score_adj = true",
            "netns_mounts_under_state_dir = true",
            "SystemdCgroup = false",
        ] {
            assert!(t.contains(needle), "missing {needle} in\n{t}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json_str(r#"a"b\c"#), r#""a\"b\\c""#);
        let list = bridge_conflist("n", "br0", "10.1.0.0/24", Path::new("/x"));
        assert!(list.contains(r#""subnet": "10.1.0.0/24""#));
        assert!(list.contains(r#""dataDir": "/x""#));
    }
}
