//! `TestNode`: a throw-away [`LocalNode`] for end-to-end tests, named `bt<pid>-<n>` so
//! fixtures of one or several test processes never clash. A fixture left behind by a killed
//! test process is swept away by the next one that starts.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use node::{LocalNode, LocalNodeConfig};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Prefix of every fixture's netns, directory and cgroup.
const PREFIX: &str = "bt";
/// Where fixture directories live (short: unix socket paths are limited to 107 bytes).
const BASE: &str = "/tmp";

/// A node for tests: see [`LocalNode`] for what it offers.
pub type TestNode = LocalNode;

/// Starts a fresh test node with the local images imported.
pub async fn start() -> anyhow::Result<TestNode> {
    sweep_stale();
    let name = format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let config = LocalNodeConfig {
        dir: Path::new(BASE).join(&name),
        name: name.clone(),
        pod_subnet: "10.88.0.0/24".into(),
    };
    LocalNode::start(config)
        .await
        .with_context(|| format!("starting test node {name}"))
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
        if !node::cleanup::alive(pid) {
            tracing::warn!(%name, "removing a fixture left by a dead test process");
            node::local::remove_stale(&name, &Path::new(BASE).join(&name));
        }
    }
}
