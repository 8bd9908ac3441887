//! The kubelet with a real containerd (a `TestNode`) and a real apiserver: pods bound to the
//! node run, report status, fail with their exit code, and are torn down on deletion.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use tests::apiserver::TestApiserver;

use tests::eventually;

/// A kubelet serving certificate from the apiserver's CA (as `berth up` will issue).
fn serving_cert(dir: &std::path::Path) -> kubelet::server::TlsFiles {
    let ca = apiserver::certs::Ca::from_pem(
        &std::fs::read_to_string(dir.join("ca.crt")).unwrap(),
        &std::fs::read_to_string(dir.join("ca.key")).unwrap(),
    )
    .unwrap();
    let (cert, key) = ca
        .sign(
            "kubelet",
            &["system:nodes"],
            true,
            &["localhost".into()],
            &["127.0.0.1".parse().unwrap()],
        )
        .unwrap();
    std::fs::write(dir.join("kubelet.crt"), cert).unwrap();
    std::fs::write(dir.join("kubelet.key"), key).unwrap();
    kubelet::server::TlsFiles {
        cert: dir.join("kubelet.crt"),
        key: dir.join("kubelet.key"),
        client_ca: dir.join("ca.crt"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_run_report_status_and_terminate() {
    tests::require_root();
    let node = tests::node::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TestApiserver::start_in(dir.path(), 0).unwrap();
    let client = server.client().await.unwrap();
    let cfg = kubelet::run::Config {
        node: kubelet::node::NodeConfig {
            name: node.name().to_string(),
            node_ip: "127.0.0.1".into(),
            labels: Default::default(),
            taints: Vec::new(),
            max_pods: 110,
            root_dir: node.dir().to_path_buf(),
            port: 10250,
        },
        runtime_endpoint: format!("unix://{}", node.socket().display()),
        log_root: node.dir().join("pods"),
        cgroup_root: format!("/{}", node.name()),
        relist_period: Duration::from_millis(500),
        server: Some(("127.0.0.1".parse().unwrap(), serving_cert(dir.path()))),
    };
    let k = tokio::spawn(kubelet::run::run(client.clone(), cfg.clone()));

    // The node registers with its capacity and runtime.
    let nodes: Api<Node> = Api::all(client.clone());
    let n = eventually("node registered", 20, || async {
        nodes
            .get_opt(node.name())
            .await
            .unwrap()
            .filter(|n| n.status.is_some())
    })
    .await;
    let info = n.status.unwrap().node_info.unwrap();
    assert!(
        info.container_runtime_version.starts_with("containerd://"),
        "{info:?}"
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, script: &str, policy: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"nodeName": node.name(), "restartPolicy": policy,
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": "busybox:latest", "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script], "env": [{"name": "GREETING", "value": "hi $(POD)"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}))
        .unwrap()
    };
    pods.create(
        &PostParams::default(),
        &pod("sleeper", "exec sleep 3600", "Always"),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &pod("failer", "exit 3", "Never"))
        .await
        .unwrap();

    let running = eventually("sleeper Running", 60, || async {
        let p = pods.get("sleeper").await.unwrap();
        let st = p.status?;
        (st.phase.as_deref() == Some("Running") && st.pod_ip.is_some()).then_some(st)
    })
    .await;
    assert!(running.pod_ip.unwrap().starts_with("10.88.0."));
    let cs = &running.container_statuses.unwrap()[0];
    assert!(cs.state.as_ref().unwrap().running.is_some(), "{cs:?}");
    assert!(
        cs.container_id
            .as_deref()
            .unwrap()
            .starts_with("containerd://")
    );
    assert!(cs.ready);
    let ready = running
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");

    let failed = eventually("failer Failed", 60, || async {
        let p = pods.get("failer").await.unwrap();
        let st = p.status?;
        (st.phase.as_deref() == Some("Failed")).then_some(st)
    })
    .await;
    let term = failed.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((term.exit_code, term.reason.as_deref()), (3, Some("Error")));

    // kubectl logs goes apiserver -> kubelet server -> the CRI log file; env was expanded.
    // Events tell the story.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("sleeper"))
        .filter_map(|e| e.reason)
        .collect();
    for r in ["Pulled", "Created", "Started"] {
        assert!(reasons.iter().any(|x| x == r), "{r} missing in {reasons:?}");
    }

    // A crashing container restarts and then backs off; a missing image fails to pull.
    pods.create(&PostParams::default(), &pod("crasher", "exit 1", "Always"))
        .await
        .unwrap();
    let mut missing = pod("pullfail", "true", "Always");
    missing.spec.as_mut().unwrap().containers[0].image = Some("docker.io/library/nope:1".into());
    pods.create(&PostParams::default(), &missing).await.unwrap();
    let waiting = eventually("CrashLoopBackOff", 60, || async {
        let st = pods.get("crasher").await.unwrap().status?;
        let cs = st.container_statuses?.into_iter().next()?;
        let w = cs.state?.waiting?;
        (w.reason.as_deref() == Some("CrashLoopBackOff") && cs.restart_count >= 1).then_some(w)
    })
    .await;
    let msg = waiting.message.unwrap_or_default();
    assert!(
        msg.starts_with("back-off ")
            && msg.contains("restarting failed container=main pod=crasher_default"),
        "{msg}"
    );
    eventually("ErrImagePull", 60, || async {
        let st = pods.get("pullfail").await.unwrap().status?;
        let w = st.container_statuses?.into_iter().next()?.state?.waiting?;
        (w.reason.as_deref() == Some("ErrImagePull")).then_some(())
    })
    .await;

    // A kubelet restart adopts the running containers and restarts none of them.
    let before = pods
        .get("sleeper")
        .await
        .unwrap()
        .status
        .unwrap()
        .container_statuses
        .unwrap()[0]
        .clone();
    k.abort();
    let _ = k.await;
    let k = tokio::spawn(kubelet::run::run(client.clone(), cfg.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = pods
        .get("sleeper")
        .await
        .unwrap()
        .status
        .unwrap()
        .container_statuses
        .unwrap()[0]
        .clone();
    assert_eq!(before.container_id, after.container_id);
    assert_eq!(after.restart_count, 0);
    assert!(after.state.unwrap().running.is_some());

    // Probes: readiness drives Ready; a failing liveness probe restarts the container.
    let mut probed = pod("probed", "touch /tmp/alive; exec sleep 3600", "Always");
    {
        let c = &mut probed.spec.as_mut().unwrap().containers[0];
        c.readiness_probe = Some(
            serde_json::from_value(
                json!({"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1}),
            )
            .unwrap(),
        );
        c.liveness_probe = Some(serde_json::from_value(json!({"exec": {"command": ["test", "-f", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 1, "initialDelaySeconds": 1})).unwrap());
    }
    pods.create(&PostParams::default(), &probed).await.unwrap();
    let id = eventually("probed running, not ready", 60, || async {
        let st = pods.get("probed").await.unwrap().status?;
        let cs = st.container_statuses?.into_iter().next()?;
        (cs.state.as_ref()?.running.is_some() && !cs.ready)
            .then(|| cs.container_id.clone())
            .flatten()
    })
    .await
    .replace("containerd://", "");
    node.cri()
        .exec_sync(
            &id,
            vec!["touch".into(), "/tmp/ready".into()],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    eventually("probed Ready", 30, || async {
        let st = pods.get("probed").await.unwrap().status?;
        let ready = st.conditions?.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.status == "True").then_some(())
    })
    .await;
    node.cri()
        .exec_sync(
            &id,
            vec!["rm".into(), "/tmp/alive".into()],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    eventually("liveness restart", 60, || async {
        let st = pods.get("probed").await.unwrap().status?;
        (st.container_statuses?.into_iter().next()?.restart_count >= 1).then_some(())
    })
    .await;
    let unhealthy = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("Unhealthy")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Liveness probe failed"))
        });
    assert!(unhealthy);

    // Graceful deletion: the kubelet stops the pod and finishes the API deletion.
    pods.delete("sleeper", &DeleteParams::default())
        .await
        .unwrap();
    eventually("sleeper gone from the API", 60, || async {
        pods.get_opt("sleeper")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let left = node.cri().list_pod_sandbox(None).await.unwrap();
    assert!(
        left.iter()
            .all(|s| s.labels.get("io.kubernetes.pod.name").map(String::as_str) != Some("sleeper")),
        "{left:?}"
    );

    k.abort();
    drop(client);
    server.stop();
    node.stop().await.unwrap();
}
