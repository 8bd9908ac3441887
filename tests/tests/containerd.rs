//! The `cri` client against a real containerd in a `TestNode` (root; CI runs these).

// Test helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cri::api;
use tests::node::TestNode;

const RUNNING: i32 = api::ContainerState::ContainerRunning as i32;
const EXITED: i32 = api::ContainerState::ContainerExited as i32;

/// Runs a sandbox and one busybox container in it; returns (sandbox id, container id).
async fn run_pod(
    node: &TestNode,
    name: &str,
    container: api::ContainerConfig,
) -> anyhow::Result<(String, String)> {
    let sandbox = node.sandbox_config(name);
    let pod = node.cri().run_pod_sandbox(sandbox.clone(), "").await?;
    let id = node
        .cri()
        .create_container(&pod, container, sandbox)
        .await?;
    node.cri().start_container(&id).await?;
    Ok((pod, id))
}

/// Polls the container until it is in `state` (or 20 s pass).
async fn wait_state(node: &TestNode, id: &str, state: i32) -> api::ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = node
            .cri()
            .container_status(id)
            .await
            .expect("container status");
        if status.state == state || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_runs_execs_and_logs() {
    tests::require_root();
    let node = tests::node::start().await.unwrap();

    let version = node.cri().version().await.unwrap();
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");

    let script = "echo hello from busybox; echo to stderr >&2; exec sleep 3600";
    let (pod, id) = run_pod(&node, "web", node.busybox("main", script))
        .await
        .unwrap();
    let status = wait_state(&node, &id, RUNNING).await;
    assert_eq!(status.state, RUNNING, "{status:?}");
    assert!(status.started_at > 0);

    // The sandbox got an address from the bridge network inside the node's netns.
    let sandbox = node.cri().pod_sandbox_status(&pod).await.unwrap();
    assert_eq!(sandbox.state, api::PodSandboxState::SandboxReady as i32);
    let ip = sandbox.network.unwrap().ip;
    assert!(ip.starts_with("10.88.0."), "pod ip {ip}");

    // ExecSync runs in the container and returns output and exit code.
    let out = node
        .cri()
        .exec_sync(
            &id,
            vec!["sh".into(), "-c".into(), "echo $((6*7)); exit 4".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n");
    assert_eq!(out.exit_code, 4);
    let whoami = node
        .cri()
        .exec_sync(
            &id,
            vec!["id".into(), "-un".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&whoami.stdout), "root\n");

    // The log file is in CRI format at the path the status names.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&status.log_path).unwrap_or_default();
        let lines = cri::logs::lines(&text);
        if lines.len() >= 2 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        lines.contains(&(cri::logs::Stream::Stdout, "hello from busybox".to_string())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(cri::logs::Stream::Stderr, "to stderr".to_string())),
        "{lines:?}"
    );

    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_oom_and_typed_errors() {
    tests::require_root();
    let node = tests::node::start().await.unwrap();

    // A failing container reports its exit code and reason "Error".
    let (_, failing) = run_pod(&node, "fails", node.busybox("main", "echo bye; exit 3"))
        .await
        .unwrap();
    let status = wait_state(&node, &failing, EXITED).await;
    assert_eq!(
        (status.state, status.exit_code, status.reason.as_str()),
        (EXITED, 3, "Error")
    );
    // containerd may stamp a very short-lived container's exit before its start time.
    assert!(status.finished_at > 0 && status.started_at > 0);

    // A successful one: exit 0, reason "Completed".
    let (_, ok) = run_pod(&node, "completes", node.busybox("main", "true"))
        .await
        .unwrap();
    let status = wait_state(&node, &ok, EXITED).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (0, "Completed"));

    // Over its memory limit the container is OOM-killed.
    let mut hog = node.busybox(
        "hog",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
    );
    hog.linux = Some(api::LinuxContainerConfig {
        resources: Some(api::LinuxContainerResources {
            memory_limit_in_bytes: 32 << 20,
            memory_swap_limit_in_bytes: 32 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let (_, hog) = run_pod(&node, "hog", hog).await.unwrap();
    let status = wait_state(&node, &hog, EXITED).await;
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (137, "OOMKilled"),
        "{status:?}"
    );

    // Errors are typed.
    let err = node
        .cri()
        .container_status("no-such-container")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = node
        .cri()
        .pod_sandbox_status("no-such-sandbox")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let sandbox = node.sandbox_config("noimage");
    let pod = node
        .cri()
        .run_pod_sandbox(sandbox.clone(), "")
        .await
        .unwrap();
    let mut missing = node.busybox("main", "true");
    missing.image = Some(api::ImageSpec {
        image: "docker.io/library/absent:1".into(),
        ..Default::default()
    });
    let err = node
        .cri()
        .create_container(&pod, missing, sandbox)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    // containerd 1.6 has no container events: the kubelet must fall back to relisting.
    let events = node.cri().get_container_events().await;
    let unimplemented = match events {
        Err(e) => e.is_unimplemented(),
        Ok(mut stream) => match stream.message().await {
            Err(status) => {
                cri::Error::from_status("GetContainerEvents", &status).is_unimplemented()
            }
            Ok(_) => false,
        },
    };
    assert!(unimplemented);

    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_at_once_and_teardown_leaves_nothing() {
    tests::require_root();
    let (a, b) = tokio::join!(tests::node::start(), tests::node::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.name(), b.name());

    // Both have the local images under every name.
    for node in [&a, &b] {
        for image in [
            "docker.io/library/busybox:latest",
            "docker.io/library/busybox:1.35",
            images_pause(),
        ] {
            assert!(
                node.cri().image_status(image).await.unwrap().is_some(),
                "{image} missing"
            );
        }
    }

    let (pod_a, id_a) = run_pod(&a, "p", a.busybox("main", "exec sleep 3600"))
        .await
        .unwrap();
    let (_pod_b, id_b) = run_pod(&b, "p", b.busybox("main", "exec sleep 3600"))
        .await
        .unwrap();
    assert_eq!(wait_state(&a, &id_a, RUNNING).await.state, RUNNING);
    assert_eq!(wait_state(&b, &id_b, RUNNING).await.state, RUNNING);

    // Stop and remove are idempotent for containers and sandboxes.
    for _ in 0..2 {
        a.cri().stop_container(&id_a, 1).await.unwrap();
    }
    assert_eq!(a.cri().container_status(&id_a).await.unwrap().state, EXITED);
    for _ in 0..2 {
        a.cri().remove_container(&id_a).await.unwrap();
    }
    assert!(
        a.cri()
            .container_status(&id_a)
            .await
            .unwrap_err()
            .is_not_found()
    );
    for _ in 0..2 {
        a.cri().stop_pod_sandbox(&pod_a).await.unwrap();
        a.cri().remove_pod_sandbox(&pod_a).await.unwrap();
    }
    assert!(a.cri().list_pod_sandbox(None).await.unwrap().is_empty());

    // Node b is dropped with a pod still running (as a failing test would): the drop path
    // must clean up as thoroughly as `stop`.
    let traces: Vec<_> = [&a, &b].iter().map(|n| Leftovers::of(n)).collect();
    a.stop().await.unwrap();
    drop(b);
    for t in traces {
        t.assert_gone();
    }
}

fn images_pause() -> &'static str {
    "berth.local/pause:1.0"
}

/// What a node leaves on the machine if teardown is incomplete.
struct Leftovers {
    name: String,
    dir: std::path::PathBuf,
    socket: String,
}

impl Leftovers {
    fn of(node: &TestNode) -> Self {
        Leftovers {
            name: node.name().to_string(),
            dir: node.dir().to_path_buf(),
            socket: node.socket().display().to_string(),
        }
    }

    fn assert_gone(&self) {
        assert!(
            !std::path::Path::new("/run/netns").join(&self.name).exists(),
            "netns {} left",
            self.name
        );
        assert!(!self.dir.exists(), "{} left", self.dir.display());
        assert!(
            node::cleanup::mounts_under(&self.dir).is_empty(),
            "mounts under {} left",
            self.dir.display()
        );
        assert!(
            node::cleanup::processes_mentioning(&self.socket).is_empty(),
            "processes of {} left",
            self.name
        );
        // libcni caches each attachment's result, naming the sandbox netns under our dir.
        let dir = self.dir.display().to_string();
        for e in std::fs::read_dir("/var/lib/cni/results")
            .into_iter()
            .flatten()
            .flatten()
        {
            let body = std::fs::read_to_string(e.path()).unwrap_or_default();
            assert!(
                !body.contains(&dir),
                "CNI result {} left",
                e.path().display()
            );
        }
        for m in node::cleanup::cgroup_mounts() {
            assert!(
                !m.join(&self.name).exists(),
                "cgroup {} left",
                m.join(&self.name).display()
            );
        }
    }
}
