//! Object semantics users rely on, through a kube-rs client against `berth apiserver`:
//! graceful pod deletion, finalizers, namespace termination, field selectors, service
//! address allocation under concurrency and across restarts, body limits.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tests::apiserver::TestApiserver;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn api_code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestApiserver::start_in(dir.path(), 0).unwrap();
    let c = server.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let pod = |name: &str, node: Option<&str>| -> Pod {
        obj(
            json!({"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}),
        )
    };

    // An unscheduled pod goes at once.
    pods.create(&PostParams::default(), &pod("loose", None))
        .await
        .unwrap();
    pods.delete("loose", &DeleteParams::default())
        .await
        .unwrap();
    assert!(pods.get_opt("loose").await.unwrap().is_none());

    // A bound pod waits for its kubelet: deletionTimestamp and the grace period are set.
    pods.create(&PostParams::default(), &pod("bound", Some("n1")))
        .await
        .unwrap();
    pods.delete("bound", &DeleteParams::default().grace_period(20))
        .await
        .unwrap();
    let p = pods.get("bound").await.unwrap();
    assert!(p.metadata.deletion_timestamp.is_some());
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(20));
    // Field selectors see it on its node.
    let on_n1 = pods
        .list(&ListParams::default().fields("spec.nodeName=n1"))
        .await
        .unwrap();
    assert_eq!(on_n1.items.len(), 1);
    let bad = pods
        .list(&ListParams::default().fields("spec.bogus=x"))
        .await
        .unwrap_err();
    assert_eq!(api_code(bad).0, 400);
    // The kubelet's final delete (grace 0) removes it.
    pods.delete("bound", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("bound").await.unwrap().is_none());

    // Finalizers hold an object until they are removed.
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let held = cms.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());

    // Orphan propagation becomes the garbage collector's finalizer.
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "orphaning"}})),
    )
    .await
    .unwrap();
    cms.delete("orphaning", &DeleteParams::orphan())
        .await
        .unwrap();
    let o = cms.get("orphaning").await.unwrap();
    assert_eq!(o.metadata.finalizers, Some(vec!["orphan".to_string()]));

    // A deleted namespace is Terminating and takes no new content.
    let nss: Api<Namespace> = Api::all(c.clone());
    nss.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "doomed"}})),
    )
    .await
    .unwrap();
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let ns = nss.get("doomed").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    let in_doomed: Api<ConfigMap> = Api::namespaced(c.clone(), "doomed");
    let err = in_doomed
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "x"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 403);
    // In a namespace that does not exist: 404.
    let nowhere: Api<ConfigMap> = Api::namespaced(c.clone(), "nowhere");
    let err = nowhere
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "x"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 404);

    // Bodies over 3 MiB are refused with 413 and not stored.
    let big: ConfigMap =
        obj(json!({"metadata": {"name": "big"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 10)}}));
    let err = cms.create(&PostParams::default(), &big).await.unwrap_err();
    assert_eq!(api_code(err).0, 413);
    assert!(cms.get_opt("big").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_addresses_are_unique_and_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestApiserver::start_in(dir.path(), 0).unwrap();
    let c = server.client().await.unwrap();
    let svcs: Api<Service> = Api::namespaced(c.clone(), "default");
    let svc = |name: String| -> Service {
        obj(
            json!({"metadata": {"name": name}, "spec": {"type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80}]}}),
        )
    };
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (svcs, s) = (svcs.clone(), svc(format!("s{i}")));
        tasks.push(tokio::spawn(async move {
            svcs.create(&PostParams::default(), &s).await.unwrap()
        }));
    }
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for t in tasks {
        let s = t.await.unwrap();
        let spec = s.spec.unwrap();
        assert!(ips.insert(spec.cluster_ip.unwrap()));
        assert!(ports.insert(spec.ports.unwrap()[0].node_port.unwrap()));
    }
    assert_eq!(ips.len(), 24);
    // Asking for a taken port is a 422 naming the field.
    let taken = *ports.iter().next().unwrap();
    let dup: Service = obj(
        json!({"metadata": {"name": "dup"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": taken}]}}),
    );
    let err = svcs.create(&PostParams::default(), &dup).await.unwrap_err();
    assert_eq!(api_code(err), (422, "Invalid".to_string()));

    // After a restart, new services never reuse a kept address or port.
    drop(c);
    let port = server.port;
    server.stop();
    let server = TestApiserver::start_in(dir.path(), port).unwrap();
    let c = server.client().await.unwrap();
    let svcs: Api<Service> = Api::namespaced(c, "default");
    for i in 0..8 {
        let s = svcs
            .create(&PostParams::default(), &svc(format!("after{i}")))
            .await
            .unwrap()
            .spec
            .unwrap();
        assert!(
            ips.insert(s.cluster_ip.unwrap()),
            "address reused after restart"
        );
        assert!(
            ports.insert(s.ports.unwrap()[0].node_port.unwrap()),
            "node port reused after restart"
        );
    }
    // Deleting releases: the address is free again (allocation is the allocator's business,
    // so only check the delete succeeds and the object is gone).
    svcs.delete("after0", &DeleteParams::default())
        .await
        .unwrap();
    assert!(svcs.get_opt("after0").await.unwrap().is_none());
}
