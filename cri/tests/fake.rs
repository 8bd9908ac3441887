//! The fake runtime driven through the real CRI client over a unix socket.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use cri::api;
use cri::fake::{FakeRuntime, FakeServer};
use cri::{Client, Error};

struct Fixture {
    fake: FakeRuntime,
    client: Client,
    server: FakeServer,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRuntime::new();
    fake.add_image("busybox");
    let server = fake.serve(&dir.path().join("cri.sock")).await.unwrap();
    let client = Client::new(server.socket().to_str().unwrap())
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    Fixture {
        fake,
        client,
        server,
        _dir: dir,
    }
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sandbox_config(name: &str, uid: &str) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: format!("/var/log/pods/default_{name}_{uid}"),
        labels: labels(&[
            ("io.kubernetes.pod.name", name),
            ("io.kubernetes.pod.uid", uid),
        ]),
        annotations: labels(&[("note", "sandbox")]),
        ..Default::default()
    }
}

fn container_config(name: &str, image: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        log_path: format!("{name}/0.log"),
        labels: labels(&[("io.kubernetes.container.name", name)]),
        annotations: labels(&[("io.kubernetes.container.restartCount", "0")]),
        ..Default::default()
    }
}

/// Runs a sandbox and one started container in it.
async fn running_container(f: &Fixture, pod: &str, name: &str) -> (String, String) {
    let config = sandbox_config(pod, &format!("uid-{pod}"));
    let sandbox = f.client.run_pod_sandbox(config.clone(), "").await.unwrap();
    let id = f
        .client
        .create_container(&sandbox, container_config(name, "busybox"), config)
        .await
        .unwrap();
    f.client.start_container(&id).await.unwrap();
    (sandbox, id)
}

fn state(status: &api::ContainerStatus) -> api::ContainerState {
    api::ContainerState::try_from(status.state).unwrap()
}

#[tokio::test]
async fn version_and_status() {
    let f = fixture().await;
    let v = f.client.version().await.unwrap();
    assert_eq!(v.runtime_name, "fake");
    assert_eq!(v.runtime_api_version, "v1");
    let status = f.client.status(false).await.unwrap().status.unwrap();
    let ready: Vec<_> = status
        .conditions
        .iter()
        .filter(|c| c.status)
        .map(|c| c.r#type.as_str())
        .collect();
    assert_eq!(ready, ["RuntimeReady", "NetworkReady"]);

    f.fake.set_condition(
        "NetworkReady",
        false,
        "NetworkPluginNotReady",
        "cni not initialized",
    );
    let status = f.client.status(false).await.unwrap().status.unwrap();
    let network = status
        .conditions
        .iter()
        .find(|c| c.r#type == "NetworkReady")
        .unwrap();
    assert!(!network.status);
    assert_eq!(network.reason, "NetworkPluginNotReady");
}

#[tokio::test]
async fn sandbox_and_container_lifecycle() {
    let f = fixture().await;
    let config = sandbox_config("web", "uid-1");
    let sandbox = f.client.run_pod_sandbox(config.clone(), "").await.unwrap();
    assert_eq!(sandbox.len(), 64);
    assert!(sandbox.bytes().all(|b| b.is_ascii_hexdigit()));

    let s = f.client.pod_sandbox_status(&sandbox).await.unwrap();
    assert_eq!(s.state, api::PodSandboxState::SandboxReady as i32);
    assert_eq!(s.metadata, config.metadata);
    assert_eq!(s.labels, config.labels);
    assert_eq!(s.annotations, config.annotations);
    assert!(
        s.created_at > 1_600_000_000_000_000_000,
        "created_at in ns: {}",
        s.created_at
    );
    assert_eq!(s.network.unwrap().ip, "10.88.0.2");

    // The same pod attempt cannot be run twice.
    let err = f
        .client
        .run_pod_sandbox(config.clone(), "")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");

    let id = f
        .client
        .create_container(&sandbox, container_config("app", "busybox"), config.clone())
        .await
        .unwrap();
    assert_eq!(id.len(), 64);
    let st = f.client.container_status(&id).await.unwrap();
    assert_eq!(state(&st), api::ContainerState::ContainerCreated);
    assert_eq!(st.metadata.as_ref().unwrap().name, "app");
    assert_eq!(
        st.image.as_ref().unwrap().image,
        "docker.io/library/busybox:latest"
    );
    assert!(st.image_ref.starts_with("sha256:"));
    assert_eq!(st.log_path, "/var/log/pods/default_web_uid-1/app/0.log");
    assert_eq!(st.labels["io.kubernetes.container.name"], "app");
    assert_eq!(st.annotations["io.kubernetes.container.restartCount"], "0");
    assert_eq!(st.started_at, 0);

    f.client.start_container(&id).await.unwrap();
    let st = f.client.container_status(&id).await.unwrap();
    assert_eq!(state(&st), api::ContainerState::ContainerRunning);
    assert!(st.started_at >= st.created_at);
    // Starting twice is refused.
    let err = f.client.start_container(&id).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");

    f.client.stop_container(&id, 10).await.unwrap();
    let st = f.client.container_status(&id).await.unwrap();
    assert_eq!(state(&st), api::ContainerState::ContainerExited);
    assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"));
    assert!(st.finished_at >= st.started_at);

    f.client.stop_pod_sandbox(&sandbox).await.unwrap();
    let s = f.client.pod_sandbox_status(&sandbox).await.unwrap();
    assert_eq!(s.state, api::PodSandboxState::SandboxNotready as i32);

    f.client.remove_pod_sandbox(&sandbox).await.unwrap();
    assert!(
        f.client
            .pod_sandbox_status(&sandbox)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        f.client
            .container_status(&id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(f.fake.sandbox_ids().is_empty());
    assert!(f.fake.container_ids().is_empty());
}

#[tokio::test]
async fn stopping_a_sandbox_stops_its_containers() {
    let f = fixture().await;
    let (sandbox, id) = running_container(&f, "web", "app").await;
    f.fake.stop_exit("app", 143, "Error");
    f.client.stop_pod_sandbox(&sandbox).await.unwrap();
    let st = f.client.container_status(&id).await.unwrap();
    assert_eq!(state(&st), api::ContainerState::ContainerExited);
    assert_eq!((st.exit_code, st.reason.as_str()), (143, "Error"));
    // A container of a stopped sandbox cannot start.
    let config = sandbox_config("web", "uid-web");
    let other = f
        .client
        .create_container(&sandbox, container_config("two", "busybox"), config)
        .await;
    let err = f.client.start_container(&other.unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
}

#[tokio::test]
async fn create_needs_a_known_sandbox_and_image() {
    let f = fixture().await;
    let config = sandbox_config("web", "uid-1");
    let err = f
        .client
        .create_container(
            &"0".repeat(64),
            container_config("app", "busybox"),
            config.clone(),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    let sandbox = f.client.run_pod_sandbox(config.clone(), "").await.unwrap();
    let err = f
        .client
        .create_container(
            &sandbox,
            container_config("app", "nginx:1.25"),
            config.clone(),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        err.to_string().contains(r#"image "nginx:1.25" not found"#),
        "{err}"
    );

    // After a pull, the image is found by name and by the reference the pull returned.
    let image_ref = f.client.pull_image("nginx:1.25", None).await.unwrap();
    f.client
        .create_container(
            &sandbox,
            container_config("app", &image_ref),
            config.clone(),
        )
        .await
        .unwrap();
    f.client
        .create_container(&sandbox, container_config("web", "nginx:1.25"), config)
        .await
        .unwrap();
}

#[tokio::test]
async fn exec_sync_output() {
    let f = fixture().await;
    let (_, id) = running_container(&f, "web", "app").await;
    let cmd = vec!["echo".to_string(), "hello".to_string()];
    let resp = f
        .client
        .exec_sync(&id, cmd.clone(), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(resp.exit_code, 0);
    assert_eq!(resp.stdout, b"echo hello\n");
    assert!(resp.stderr.is_empty());

    f.fake.on_exec(|_, cmd| api::ExecSyncResponse {
        stdout: Vec::new(),
        stderr: format!("{}: not found\n", cmd[0]).into_bytes(),
        exit_code: 127,
    });
    let resp = f
        .client
        .exec_sync(&id, cmd.clone(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        (resp.exit_code, resp.stderr.as_slice()),
        (127, &b"echo: not found\n"[..])
    );

    let err = f
        .client
        .exec_sync(&"f".repeat(64), cmd.clone(), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    f.client.stop_container(&id, 0).await.unwrap();
    let err = f
        .client
        .exec_sync(&id, cmd, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
}

#[tokio::test]
async fn exit_container_shows_in_status() {
    let f = fixture().await;
    let (_, id) = running_container(&f, "web", "app").await;
    assert!(f.fake.exit_container(&id, 137, "OOMKilled"));
    let st = f.client.container_status(&id).await.unwrap();
    assert_eq!(state(&st), api::ContainerState::ContainerExited);
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "OOMKilled"));
    assert!(st.finished_at > 0);
    // Only running containers exit; stopping an exited one changes nothing.
    assert!(!f.fake.exit_container(&id, 1, "Error"));
    assert!(!f.fake.exit_container("nope", 1, "Error"));
    f.client.stop_container(&id, 10).await.unwrap();
    let st = f.client.container_status(&id).await.unwrap();
    assert_eq!((st.exit_code, st.reason.as_str()), (137, "OOMKilled"));
}

#[tokio::test]
async fn unknown_container_is_not_found() {
    let f = fixture().await;
    let err = f.client.container_status("0123").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(matches!(
        err,
        Error::NotFound {
            op: "ContainerStatus",
            ..
        }
    ));
    let err = f.client.start_container("0123").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = f
        .client
        .update_container_resources("0123", Default::default())
        .await;
    assert!(err.unwrap_err().is_not_found());
}

#[tokio::test]
async fn stop_and_remove_are_idempotent() {
    let f = fixture().await;
    let (sandbox, id) = running_container(&f, "web", "app").await;
    f.client.stop_container(&id, 1).await.unwrap();
    f.client.stop_container(&id, 1).await.unwrap();
    f.client.remove_container(&id).await.unwrap();
    f.client.remove_container(&id).await.unwrap();
    f.client.stop_pod_sandbox(&sandbox).await.unwrap();
    f.client.stop_pod_sandbox(&sandbox).await.unwrap();
    f.client.remove_pod_sandbox(&sandbox).await.unwrap();
    f.client.remove_pod_sandbox(&sandbox).await.unwrap();
    f.client.stop_pod_sandbox("unknown").await.unwrap();
    f.client.remove_pod_sandbox("unknown").await.unwrap();
    f.client.remove_container("unknown").await.unwrap();
    // The fake answers NotFound like containerd; the client treats that as done.
    f.client.stop_container("unknown", 1).await.unwrap();
    f.client.remove_image("unknown:1").await.unwrap();
}

#[tokio::test]
async fn injected_unavailable_fails_once() {
    let f = fixture().await;
    f.fake.inject_error(
        "RunPodSandbox",
        tonic::Status::unavailable("runtime restarting"),
    );
    let config = sandbox_config("web", "uid-1");
    let err = f
        .client
        .run_pod_sandbox(config.clone(), "")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unavailable {
                op: "RunPodSandbox",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(
        f.fake.sandbox_ids().is_empty(),
        "a failed call has no effect"
    );
    f.client.run_pod_sandbox(config, "").await.unwrap();
    assert_eq!(f.fake.sandbox_ids().len(), 1);
}

#[tokio::test]
async fn list_filters() {
    let f = fixture().await;
    let (sandbox_a, a1) = running_container(&f, "a", "one").await;
    let config_a = sandbox_config("a", "uid-a");
    let a2 = f
        .client
        .create_container(&sandbox_a, container_config("two", "busybox"), config_a)
        .await
        .unwrap();
    let (sandbox_b, b1) = running_container(&f, "b", "one").await;
    f.client.stop_pod_sandbox(&sandbox_b).await.unwrap();

    let ids = |items: Vec<api::Container>| items.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let all = f.client.list_containers(None).await.unwrap();
    assert_eq!(ids(all), [a1.clone(), a2.clone(), b1.clone()]);
    assert_eq!(f.fake.container_ids(), [a1.clone(), a2.clone(), b1.clone()]);

    let filter = |f: api::ContainerFilter| Some(f);
    let by_sandbox = api::ContainerFilter {
        pod_sandbox_id: sandbox_a.clone(),
        ..Default::default()
    };
    assert_eq!(
        ids(f.client.list_containers(filter(by_sandbox)).await.unwrap()),
        [a1.clone(), a2.clone()]
    );
    let running = api::ContainerFilter {
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    assert_eq!(
        ids(f.client.list_containers(filter(running)).await.unwrap()),
        [a1.as_str()]
    );
    let by_id = api::ContainerFilter {
        id: b1[..12].to_string(),
        ..Default::default()
    };
    assert_eq!(
        ids(f.client.list_containers(filter(by_id)).await.unwrap()),
        [b1.as_str()]
    );
    let by_label = api::ContainerFilter {
        label_selector: labels(&[("io.kubernetes.container.name", "one")]),
        ..Default::default()
    };
    assert_eq!(
        ids(f.client.list_containers(filter(by_label)).await.unwrap()),
        [a1, b1]
    );

    let ids = |items: Vec<api::PodSandbox>| items.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let all = f.client.list_pod_sandbox(None).await.unwrap();
    assert_eq!(ids(all), [sandbox_a.clone(), sandbox_b.clone()]);
    let ready = api::PodSandboxFilter {
        state: Some(api::PodSandboxStateValue {
            state: api::PodSandboxState::SandboxReady as i32,
        }),
        ..Default::default()
    };
    assert_eq!(
        ids(f.client.list_pod_sandbox(Some(ready)).await.unwrap()),
        [sandbox_a.as_str()]
    );
    let by_label = api::PodSandboxFilter {
        label_selector: labels(&[("io.kubernetes.pod.name", "b")]),
        ..Default::default()
    };
    assert_eq!(
        ids(f.client.list_pod_sandbox(Some(by_label)).await.unwrap()),
        [sandbox_b.as_str()]
    );
    let by_id = api::PodSandboxFilter {
        id: sandbox_a.clone(),
        ..Default::default()
    };
    assert_eq!(
        ids(f.client.list_pod_sandbox(Some(by_id)).await.unwrap()),
        [sandbox_a]
    );
    let none = api::PodSandboxFilter {
        label_selector: labels(&[("io.kubernetes.pod.name", "c")]),
        ..Default::default()
    };
    assert!(
        f.client
            .list_pod_sandbox(Some(none))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn container_events_are_unimplemented() {
    let f = fixture().await;
    match f.client.get_container_events().await {
        Err(err) => assert!(err.is_unimplemented(), "{err:?}"),
        Ok(mut stream) => {
            let status = stream.message().await.unwrap_err();
            let err = Error::from_status("GetContainerEvents", &status);
            assert!(err.is_unimplemented(), "{err:?}");
        }
    }
}

#[tokio::test]
async fn images() {
    let f = fixture().await;
    let busybox = f
        .client
        .image_status("busybox:latest")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(busybox.repo_tags, ["docker.io/library/busybox:latest"]);
    assert!(f.client.image_status("nginx").await.unwrap().is_none());

    let image_ref = f.client.pull_image("nginx", None).await.unwrap();
    let nginx = f.client.image_status(&image_ref).await.unwrap().unwrap();
    assert_eq!(nginx.id, image_ref);
    assert_eq!(f.client.list_images(None).await.unwrap().len(), 2);
    let filter = api::ImageFilter {
        image: Some(api::ImageSpec {
            image: "nginx".into(),
            ..Default::default()
        }),
    };
    assert_eq!(f.client.list_images(Some(filter)).await.unwrap(), [nginx]);

    f.fake.fail_pulls("private/app:1", "pull access denied");
    let err = f
        .client
        .pull_image("private/app:1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Other {
                code: tonic::Code::Unknown,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("pull access denied"), "{err}");
    assert!(!f.fake.has_image("private/app:1"));

    f.client.remove_image("nginx").await.unwrap();
    f.client.remove_image("nginx").await.unwrap();
    assert!(f.client.image_status("nginx").await.unwrap().is_none());
    let fs = f.client.image_fs_info().await.unwrap();
    assert!(fs.image_filesystems.is_empty());
}

#[tokio::test]
async fn update_resources_and_reopen_log() {
    let f = fixture().await;
    let (_, id) = running_container(&f, "web", "app").await;
    let linux = api::LinuxContainerResources {
        cpu_shares: 512,
        memory_limit_in_bytes: 64 << 20,
        ..Default::default()
    };
    f.client
        .update_container_resources(&id, linux.clone())
        .await
        .unwrap();
    let st = f.client.container_status(&id).await.unwrap();
    assert_eq!(st.resources.unwrap().linux, Some(linux));
    f.client.reopen_container_log(&id).await.unwrap();
    let err = f.client.reopen_container_log("unknown").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn calls_are_logged_in_order() {
    let f = fixture().await;
    f.fake.clear_calls();
    let (sandbox, id) = running_container(&f, "web", "app").await;
    f.client.stop_container(&id, 5).await.unwrap();
    f.client.remove_container(&id).await.unwrap();
    f.client.stop_pod_sandbox(&sandbox).await.unwrap();
    f.client.remove_pod_sandbox(&sandbox).await.unwrap();
    let _ = f.client.list_container_stats(None).await.unwrap_err();
    assert_eq!(
        f.fake.calls(),
        [
            "RunPodSandbox",
            "CreateContainer",
            "StartContainer",
            "StopContainer",
            "RemoveContainer",
            "StopPodSandbox",
            "RemovePodSandbox",
            "ListContainerStats",
        ]
    );
}

#[tokio::test]
async fn host_network_sandbox_has_no_ip() {
    let f = fixture().await;
    let mut config = sandbox_config("host", "uid-h");
    config.linux = Some(api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            namespace_options: Some(api::NamespaceOption {
                network: api::NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let sandbox = f.client.run_pod_sandbox(config, "").await.unwrap();
    let s = f.client.pod_sandbox_status(&sandbox).await.unwrap();
    assert_eq!(s.network.unwrap().ip, "");
    let options = s.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(options.network, api::NamespaceMode::Node as i32);
}

#[tokio::test]
async fn dropping_the_server_removes_the_socket() {
    let f = fixture().await;
    let socket = f.server.socket().to_path_buf();
    assert!(socket.exists());
    f.client.version().await.unwrap();
    let Fixture {
        client,
        server,
        _dir,
        ..
    } = f;
    server.shutdown().await;
    assert!(!socket.exists());
    let err = client.version().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    // Dropping (without shutdown) removes the socket too.
    let fake = FakeRuntime::new();
    let server = fake.serve(&socket).await.unwrap();
    assert!(socket.exists());
    drop(server);
    assert!(!socket.exists());
}
