//! The probe manager against the fake CRI runtime and small local servers: exec, TCP, HTTP
//! and gRPC probes, thresholds, startup gating, restart requests, and workers stopping with
//! their container instance. Probes run every second, so each test takes one to three.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cri::api;
use cri::fake::{FakeRuntime, FakeServer};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;
use kubelet::cri_runtime::{container_config, sandbox_config};
use kubelet::prober::ProbeManager;
use kubelet::prober::handlers::grpc_health_request;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const UID: &str = "uid-1";

struct Fixture {
    dir: tempfile::TempDir,
    fake: FakeRuntime,
    _server: FakeServer,
    client: cri::Client,
    manager: Arc<ProbeManager>,
    changes: mpsc::UnboundedReceiver<String>,
    sandbox: Option<(String, api::PodSandboxConfig)>,
}

fn pod(containers: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": UID},
        "spec": {"containers": containers},
    }))
    .unwrap()
}

fn exec_response(exit_code: i32, stdout: &str) -> api::ExecSyncResponse {
    api::ExecSyncResponse {
        stdout: stdout.as_bytes().to_vec(),
        stderr: Vec::new(),
        exit_code,
    }
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeRuntime::new();
        fake.add_image("busybox");
        let server = fake.serve(&dir.path().join("cri.sock")).await.unwrap();
        let client = cri::Client::new(server.socket().to_str().unwrap()).unwrap();
        let (tx, changes) = mpsc::unbounded_channel();
        let manager = ProbeManager::new(
            client.clone(),
            Arc::new(move |uid: &str| {
                let _ = tx.send(uid.to_string());
            }),
        );
        Fixture {
            dir,
            fake,
            _server: server,
            client,
            manager,
            changes,
            sandbox: None,
        }
    }

    /// Creates and starts instance `attempt` of container `name` of `pod`; returns the
    /// entry of the `running` list.
    async fn start(&mut self, pod: &Pod, name: &str, attempt: u32) -> (String, String, i64) {
        if self.sandbox.is_none() {
            let sb = sandbox_config(pod, 0, self.dir.path(), "", None);
            let id = self.client.run_pod_sandbox(sb.clone(), "").await.unwrap();
            self.sandbox = Some((id, sb));
        }
        let (sandbox, sb) = self.sandbox.clone().unwrap();
        let spec = pod.spec.as_ref().unwrap();
        let c = spec.containers.iter().find(|c| c.name == name).unwrap();
        let config = container_config(pod, c, attempt, vec![], vec![], vec![]);
        let id = self
            .client
            .create_container(&sandbox, config, sb)
            .await
            .unwrap();
        self.client.start_container(&id).await.unwrap();
        let started_at = self.client.container_status(&id).await.unwrap().started_at;
        (name.to_string(), id, started_at)
    }

    /// Waits for the next `on_change` call and checks it names the pod.
    async fn changed(&mut self, within: Duration) {
        let uid = tokio::time::timeout(within, self.changes.recv())
            .await
            .expect("no on_change call in time")
            .unwrap();
        assert_eq!(uid, UID);
    }

    fn no_change(&mut self) {
        assert!(
            self.changes.try_recv().is_err(),
            "unexpected on_change call"
        );
    }
}

fn map(entries: &[(&str, bool)]) -> BTreeMap<String, bool> {
    entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn exec_readiness_is_false_until_the_first_success() {
    let mut f = Fixture::new().await;
    let calls = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
    let seen = calls.clone();
    f.fake.on_exec(move |_, cmd| {
        let mut calls = seen.lock().unwrap();
        calls.push(cmd.to_vec());
        if calls.len() == 1 {
            exec_response(1, "not yet\n")
        } else {
            exec_response(0, "")
        }
    });
    let pod = pod(json!([{
        "name": "app", "image": "busybox",
        "env": [{"name": "FILE", "value": "/tmp/ready"}],
        "readinessProbe": {"exec": {"command": ["cat", "$(FILE)"]}, "periodSeconds": 1},
    }]));
    let app = f.start(&pod, "app", 0).await;
    f.manager.sync_pod(&pod, &[app], Some("10.88.0.2"));
    assert_eq!(f.manager.ready(UID), map(&[("app", false)]));
    assert!(f.manager.started(UID).is_empty());

    let t0 = tokio::time::Instant::now();
    f.changed(3 * SECOND).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "the first probe failed"
    );
    assert_eq!(f.manager.ready(UID), map(&[("app", true)]));
    assert_eq!(calls.lock().unwrap()[0], ["cat", "/tmp/ready"]);
    assert!(f.manager.take_restarts(UID).is_empty());
    // Another pod's results are separate.
    assert!(f.manager.ready("other").is_empty());
}

#[tokio::test]
async fn liveness_failures_request_a_restart_with_the_message() {
    let mut f = Fixture::new().await;
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    f.fake.on_exec(move |_, _| {
        n.fetch_add(1, Ordering::SeqCst);
        exec_response(1, "boom\n")
    });
    let pod = pod(json!([{
        "name": "app", "image": "busybox",
        "livenessProbe": {
            "exec": {"command": ["check"]}, "periodSeconds": 1, "failureThreshold": 2,
        },
    }]));
    let app = f.start(&pod, "app", 0).await;
    let id = app.1.clone();
    f.manager.sync_pod(&pod, &[app], None);
    // Liveness does not make a readiness result.
    assert!(f.manager.ready(UID).is_empty());

    let t0 = tokio::time::Instant::now();
    f.changed(3 * SECOND).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "two failures needed"
    );
    assert_eq!(
        f.manager.take_restarts(UID),
        [(
            "app".to_string(),
            id,
            "Liveness probe failed: boom".to_string()
        )]
    );
    assert!(f.manager.take_restarts(UID).is_empty());
    // The instance is on hold: no more probes until a new instance runs.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.manager.active_workers(UID), 0);
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn startup_probe_gates_liveness_and_readiness() {
    let mut f = Fixture::new().await;
    let up = Arc::new(AtomicBool::new(false));
    let others = Arc::new(AtomicUsize::new(0));
    let (u, o) = (up.clone(), others.clone());
    f.fake.on_exec(move |_, cmd| match cmd[0].as_str() {
        "startup" if u.load(Ordering::SeqCst) => exec_response(0, ""),
        "startup" => exec_response(1, "starting"),
        "live" => {
            o.fetch_add(1, Ordering::SeqCst);
            exec_response(1, "dead")
        }
        _ => {
            o.fetch_add(1, Ordering::SeqCst);
            exec_response(0, "")
        }
    });
    let pod = pod(json!([{
        "name": "app", "image": "busybox",
        "startupProbe": {
            "exec": {"command": ["startup"]}, "periodSeconds": 1, "failureThreshold": 30,
        },
        "livenessProbe": {
            "exec": {"command": ["live"]}, "periodSeconds": 1, "failureThreshold": 1,
        },
        "readinessProbe": {"exec": {"command": ["ready"]}, "periodSeconds": 1},
    }]));
    let app = f.start(&pod, "app", 0).await;
    f.manager.sync_pod(&pod, &[app], None);

    // Two failed startup probes (at 0 s and 1 s): nothing else ran.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(f.manager.started(UID), map(&[("app", false)]));
    assert_eq!(f.manager.ready(UID), map(&[("app", false)]));
    assert_eq!(others.load(Ordering::SeqCst), 0);
    assert!(f.manager.take_restarts(UID).is_empty());
    f.no_change();

    // The next startup probe succeeds: liveness and readiness start.
    up.store(true, Ordering::SeqCst);
    let mut restarts = Vec::new();
    for _ in 0..3 {
        f.changed(2 * SECOND).await;
        restarts.extend(f.manager.take_restarts(UID));
        if !restarts.is_empty() && f.manager.ready(UID)["app"] {
            break;
        }
    }
    assert_eq!(f.manager.started(UID), map(&[("app", true)]));
    assert_eq!(f.manager.ready(UID), map(&[("app", true)]));
    assert_eq!(restarts.len(), 1);
    assert_eq!(restarts[0].2, "Liveness probe failed: dead");
    // The startup and liveness workers are done; readiness goes on.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.manager.active_workers(UID), 1);
}

#[tokio::test]
async fn startup_failures_request_a_restart() {
    let mut f = Fixture::new().await;
    f.fake.on_exec(|_, _| exec_response(3, ""));
    let pod = pod(json!([{
        "name": "app", "image": "busybox",
        "startupProbe": {
            "exec": {"command": ["startup"]}, "periodSeconds": 1, "failureThreshold": 1,
        },
        "livenessProbe": {"exec": {"command": ["live"]}, "periodSeconds": 1},
    }]));
    let app = f.start(&pod, "app", 0).await;
    let id = app.1.clone();
    f.manager.sync_pod(&pod, &[app], None);
    f.changed(2 * SECOND).await;
    let restarts = f.manager.take_restarts(UID);
    assert_eq!(
        restarts,
        [(
            "app".to_string(),
            id,
            "Startup probe failed: command exited with code 3".to_string()
        )]
    );
    assert_eq!(f.manager.started(UID), map(&[("app", false)]));
}

#[tokio::test]
async fn tcp_socket_follows_the_listener() {
    let mut f = Fixture::new().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let pod = pod(json!([{
        "name": "app", "image": "busybox",
        "ports": [{"name": "probe", "containerPort": port}],
        "readinessProbe": {
            "tcpSocket": {"host": "127.0.0.1", "port": "probe"},
            "periodSeconds": 1, "failureThreshold": 1,
        },
    }]));
    let app = f.start(&pod, "app", 0).await;
    f.manager.sync_pod(&pod, &[app], Some("10.88.0.2"));
    f.changed(2 * SECOND).await;
    assert_eq!(f.manager.ready(UID), map(&[("app", true)]));

    drop(listener);
    f.changed(2 * SECOND).await;
    assert_eq!(f.manager.ready(UID), map(&[("app", false)]));
}

/// A tiny HTTP server answering every request with `status`, recording request heads.
async fn http_server(status: Arc<AtomicU16>, heads: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let status = status.load(Ordering::SeqCst);
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                heads
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let reason = if status == 200 { "OK" } else { "Oops" };
                let resp = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = stream.write_all(resp.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn http_get_readiness_follows_the_status() {
    let mut f = Fixture::new().await;
    let status = Arc::new(AtomicU16::new(200));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let port = http_server(status.clone(), heads.clone()).await;
    let pod = pod(json!([{
        "name": "app", "image": "busybox",
        "readinessProbe": {
            "httpGet": {
                "host": "127.0.0.1", "port": port, "path": "/healthz",
                "httpHeaders": [{"name": "X-Probe", "value": "yes"}],
            },
            "periodSeconds": 1, "failureThreshold": 1,
        },
    }]));
    let app = f.start(&pod, "app", 0).await;
    f.manager.sync_pod(&pod, &[app], Some("10.88.0.2"));
    f.changed(2 * SECOND).await;
    assert_eq!(f.manager.ready(UID), map(&[("app", true)]));
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.starts_with("get /healthz http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nx-probe: yes\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    assert!(head.contains("\r\nuser-agent: kube-probe/"), "{head}");

    status.store(500, Ordering::SeqCst);
    f.changed(2 * SECOND).await;
    assert_eq!(f.manager.ready(UID), map(&[("app", false)]));
}

#[tokio::test]
async fn http_get_liveness_failure_and_unsupported_https() {
    let mut f = Fixture::new().await;
    let status = Arc::new(AtomicU16::new(503));
    let port = http_server(status, Arc::default()).await;
    // The pod IP is the default host; the port is named.
    let pod = pod(json!([
        {
            "name": "app", "image": "busybox",
            "ports": [{"name": "http", "containerPort": port}],
            "livenessProbe": {
                "httpGet": {"port": "http", "path": "live"},
                "periodSeconds": 1, "failureThreshold": 1,
            },
        },
        {
            "name": "tls", "image": "busybox",
            "livenessProbe": {
                "httpGet": {"port": 8443, "scheme": "HTTPS"},
                "periodSeconds": 1, "failureThreshold": 1,
            },
        },
    ]));
    let app = f.start(&pod, "app", 0).await;
    let tls = f.start(&pod, "tls", 0).await;
    f.manager.sync_pod(&pod, &[app, tls], Some("127.0.0.1"));
    let mut restarts = Vec::new();
    while restarts.len() < 2 {
        f.changed(2 * SECOND).await;
        restarts.extend(f.manager.take_restarts(UID));
    }
    restarts.sort();
    assert_eq!(restarts[0].0, "app");
    assert!(
        restarts[0]
            .2
            .starts_with("Liveness probe failed: HTTP probe failed with status code 503"),
        "{}",
        restarts[0].2
    );
    assert!(
        restarts[0]
            .2
            .contains(&format!("http://127.0.0.1:{port}/live")),
        "{}",
        restarts[0].2
    );
    assert_eq!(restarts[1].0, "tls");
    assert!(
        restarts[1].2.contains("HTTPS probes are not supported"),
        "{}",
        restarts[1].2
    );
}

#[tokio::test]
async fn workers_stop_with_their_instance() {
    let mut f = Fixture::new().await;
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    f.fake.on_exec(move |_, _| {
        n.fetch_add(1, Ordering::SeqCst);
        exec_response(0, "")
    });
    let pod = pod(json!([
        {
            "name": "app", "image": "busybox",
            "livenessProbe": {"exec": {"command": ["live"]}, "periodSeconds": 1},
            "readinessProbe": {"exec": {"command": ["ready"]}, "periodSeconds": 1},
        },
        {"name": "plain", "image": "busybox"},
    ]));
    let app = f.start(&pod, "app", 0).await;
    let plain = f.start(&pod, "plain", 0).await;
    f.manager
        .sync_pod(&pod, &[app.clone(), plain.clone()], None);
    // A second sync with the same instances changes nothing.
    f.manager
        .sync_pod(&pod, &[app.clone(), plain.clone()], None);
    f.changed(2 * SECOND).await;
    assert_eq!(f.manager.ready(UID), map(&[("app", true)]));
    assert_eq!(f.manager.active_workers(UID), 2);

    // The instance exits: its workers stop and it is not ready.
    assert!(f.fake.exit_container(&app.1, 1, "Error"));
    f.manager.sync_pod(&pod, std::slice::from_ref(&plain), None);
    assert_eq!(f.manager.ready(UID), map(&[("app", false)]));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.manager.active_workers(UID), 0);
    let before = count.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(count.load(Ordering::SeqCst), before);

    // A new instance starts over, not ready until its own probe succeeds.
    let again = f.start(&pod, "app", 1).await;
    f.manager.sync_pod(&pod, &[again, plain], None);
    assert_eq!(f.manager.ready(UID), map(&[("app", false)]));
    assert_eq!(f.manager.active_workers(UID), 2);
    f.changed(2 * SECOND).await;
    assert_eq!(f.manager.ready(UID), map(&[("app", true)]));

    f.manager.remove_pod(UID);
    assert!(f.manager.ready(UID).is_empty());
    assert_eq!(f.manager.active_workers(UID), 0);
}

#[tokio::test]
async fn initial_delay_postpones_the_first_probe() {
    let mut f = Fixture::new().await;
    let pod = pod(json!([{
        "name": "app", "image": "busybox",
        "readinessProbe": {
            "exec": {"command": ["ready"]}, "periodSeconds": 1, "initialDelaySeconds": 1,
        },
    }]));
    let app = f.start(&pod, "app", 0).await;
    let t0 = tokio::time::Instant::now();
    f.manager.sync_pod(&pod, &[app], None);
    f.changed(3 * SECOND).await;
    assert!(t0.elapsed() >= Duration::from_millis(700));
    assert_eq!(f.manager.ready(UID), map(&[("app", true)]));
}

/// A gRPC health server over cleartext HTTP/2 answering `status`, recording request bodies.
async fn grpc_server(status: Arc<AtomicU16>, bodies: Arc<Mutex<Vec<Bytes>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (status, bodies) = (status.clone(), bodies.clone());
            let service = hyper::service::service_fn(move |req: http::Request<_>| {
                let (status, bodies) = (status.clone(), bodies.clone());
                async move {
                    assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                    let body: Bytes = BodyExt::collect(req.into_body()).await.unwrap().to_bytes();
                    bodies.lock().unwrap().push(body);
                    // HealthCheckResponse { status = <status> }, one uncompressed frame.
                    let msg = [0x08, u8::try_from(status.load(Ordering::SeqCst)).unwrap()];
                    let mut frame = vec![0, 0, 0, 0, 2];
                    frame.extend_from_slice(&msg);
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let frames = vec![
                        Ok::<_, Infallible>(Frame::data(Bytes::from(frame))),
                        Ok(Frame::trailers(trailers)),
                    ];
                    let body = StreamBody::new(futures_util::stream::iter(frames));
                    let resp = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(body)
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn grpc_health_readiness() {
    let mut f = Fixture::new().await;
    let status = Arc::new(AtomicU16::new(1));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let port = grpc_server(status.clone(), bodies.clone()).await;
    let pod = pod(json!([{
        "name": "app", "image": "busybox",
        "readinessProbe": {
            "grpc": {"port": port, "service": "svc"},
            "periodSeconds": 1, "failureThreshold": 1,
        },
        "livenessProbe": {
            "grpc": {"port": port, "service": "svc"},
            "periodSeconds": 1, "failureThreshold": 1,
        },
    }]));
    let app = f.start(&pod, "app", 0).await;
    f.manager.sync_pod(&pod, &[app], Some("127.0.0.1"));
    f.changed(2 * SECOND).await;
    assert_eq!(f.manager.ready(UID), map(&[("app", true)]));
    assert_eq!(bodies.lock().unwrap()[0], grpc_health_request("svc"));

    status.store(2, Ordering::SeqCst); // NOT_SERVING
    let mut restarts = Vec::new();
    while restarts.is_empty() || f.manager.ready(UID)["app"] {
        f.changed(2 * SECOND).await;
        restarts.extend(f.manager.take_restarts(UID));
    }
    assert!(restarts[0].2.contains("NOT_SERVING"), "{}", restarts[0].2);
}

#[tokio::test]
async fn a_pod_being_deleted_runs_only_readiness_probes() {
    let mut f = Fixture::new().await;
    f.fake.on_exec(|_, cmd| {
        if cmd[0] == "live" {
            exec_response(1, "dead")
        } else {
            exec_response(0, "")
        }
    });
    let containers = json!([{
        "name": "app", "image": "busybox",
        "livenessProbe": {
            "exec": {"command": ["live"]}, "periodSeconds": 1, "failureThreshold": 2,
        },
        "readinessProbe": {"exec": {"command": ["ready"]}, "periodSeconds": 1},
    }]);
    let pod = pod(containers.clone());
    let app = f.start(&pod, "app", 0).await;
    f.manager.sync_pod(&pod, std::slice::from_ref(&app), None);
    f.changed(2 * SECOND).await;
    assert_eq!(f.manager.active_workers(UID), 2);

    let mut deleting = pod.clone();
    deleting.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2025-01-01T00:00:00Z")).unwrap());
    f.manager.sync_pod(&deleting, &[app], None);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(f.manager.take_restarts(UID).is_empty());
    assert_eq!(f.manager.active_workers(UID), 1);
    assert_eq!(f.manager.ready(UID), map(&[("app", true)]));
    f.no_change();
}
