//! A kube-rs client (unchanged, from the admin kubeconfig) against `berth apiserver`:
//! typed CRUD, optimistic concurrency, and the watcher/reflector machinery every berth
//! controller will use.

// Test helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tests::apiserver::TestApiserver;

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "labels": { "app": "demo" } },
        "data": { "k": value },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_crud_conflicts_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestApiserver::start_in(dir.path(), 0).unwrap();
    let client = server.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");

    // A watcher started before anything exists sees every later change, in order.
    let mut events = watcher(cms.clone(), watcher::Config::default().labels("app=demo"))
        .applied_objects()
        .boxed();

    let created = cms
        .create(&PostParams::default(), &cm("one", "1"))
        .await
        .unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some());

    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("one"));

    // Replace with the current resourceVersion succeeds; with the stale one it is a 409.
    let mut update = created.clone();
    update.data = Some([("k".to_string(), "2".to_string())].into());
    let updated = cms
        .replace("one", &PostParams::default(), &update)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    let stale = cms
        .replace("one", &PostParams::default(), &update)
        .await
        .unwrap_err();
    match stale {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
        }
        other => panic!("expected a 409, got {other:?}"),
    }
    let second = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.data.unwrap()["k"], "2");

    // Lists with selectors and pagination.
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("page-{i}"), "x"))
            .await
            .unwrap();
    }
    let page = cms
        .list(&ListParams::default().labels("app=demo").limit(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().unwrap();
    let rest = cms
        .list(
            &ListParams::default()
                .labels("app=demo")
                .limit(10)
                .continue_token(&token),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 4);
    assert!(rest.metadata.continue_.as_deref().unwrap_or("").is_empty());

    // A 404 and a 409 on create are typed errors.
    match cms.get("absent").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        other => panic!("{other:?}"),
    }
    match cms
        .create(&PostParams::default(), &cm("one", "1"))
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("{other:?}"),
    }
    cms.delete("one", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("one").await.unwrap().is_none());
}
