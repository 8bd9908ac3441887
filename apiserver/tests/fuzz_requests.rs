//! Property tests of the whole request path (decode, admission, patch, selectors) through
//! the real handlers on a real embedded store: no input panics the server, every refusal is
//! a 4xx Status, and a refused write stores nothing.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use apiserver::alloc::Allocator;
use apiserver::handlers::{Api, Request};
use apiserver::registry;
use apiserver::request::{Query, Route, route};
use apiserver::store::Store;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use serde_json::{Value, json};

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("metadata".to_string()),
        Just("name".to_string()),
        Just("spec".to_string()),
        Just("containers".to_string()),
        Just("image".to_string()),
        Just("ports".to_string()),
        Just("selector".to_string()),
        Just("template".to_string()),
        Just("labels".to_string()),
        Just("replicas".to_string()),
        Just("data".to_string()),
        Just("type".to_string()),
        Just("$patch".to_string()),
        Just("apiVersion".to_string()),
        Just("kind".to_string()),
        "[a-z$/.]{0,6}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z0-9=,!() .:/-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn api(dir: &std::path::Path) -> Arc<Api> {
    let store: Arc<dyn Store> = apiserver::store::embedded::EmbeddedStore::open(dir).unwrap();
    Arc::new(Api {
        cache: apiserver::watchcache::WatchCache::new(Arc::clone(&store)),
        store,
        alloc: Allocator::new("10.96.0.0/16".parse().unwrap(), (30000, 32767)),
        bookmark_interval: std::time::Duration::from_secs(60),
        kubelet: None,
    })
}

async fn call(
    api: &Arc<Api>,
    method: Method,
    path: &str,
    query: &str,
    ct: &str,
    body: Vec<u8>,
) -> u16 {
    let Ok(Route::Resource(target)) = route(path) else {
        return 404;
    };
    let q = Query::parse(Some(query));
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(ct).unwrap(),
    );
    let resp = api
        .handle(Request {
            method: &method,
            target,
            query: &q,
            headers: &headers,
            body: Bytes::from(body),
        })
        .await;
    resp.status().as_u16()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const PATHS: &[&str] = &[
    "/api/v1/namespaces/default/pods",
    "/api/v1/namespaces/default/configmaps",
    "/api/v1/namespaces/default/services",
    "/apis/apps/v1/namespaces/default/deployments",
    "/api/v1/nodes",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_creates_never_panic_and_refusals_store_nothing(body in json_value(), raw in prop::collection::vec(any::<u8>(), 0..64), which in 0..PATHS.len(), use_raw in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        rt.block_on(async {
            let api = api(dir.path());
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
            assert_eq!(call(&api, Method::POST, "/api/v1/namespaces", "", "application/json", serde_json::to_vec(&ns).unwrap()).await, 201);
            let before = api.store.revision().await.unwrap();
            let bytes = if use_raw { raw.clone() } else { serde_json::to_vec(&body).unwrap() };
            let code = call(&api, Method::POST, PATHS[which], "fieldValidation=Strict", "application/json", bytes).await;
            prop_assert!(code == 201 || (400..500).contains(&code), "status {code}");
            if code != 201 {
                prop_assert_eq!(api.store.revision().await.unwrap(), before);
            }
            Ok(())
        })?;
    }

    #[test]
    fn random_patches_never_panic(patch in json_value(), kind in 0..3usize, sel in "[a-z0-9=,!() ]{0,20}") {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        rt.block_on(async {
            let api = api(dir.path());
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
            call(&api, Method::POST, "/api/v1/namespaces", "", "application/json", serde_json::to_vec(&ns).unwrap()).await;
            let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
            let path = "/apis/apps/v1/namespaces/default/deployments";
            assert_eq!(call(&api, Method::POST, path, "", "application/json", serde_json::to_vec(&d).unwrap()).await, 201);
            let ct = ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"][kind];
            let code = call(&api, Method::PATCH, &format!("{path}/d"), "", ct, serde_json::to_vec(&patch).unwrap()).await;
            prop_assert!((200..300).contains(&code) || (400..500).contains(&code), "status {code}");
            let q = format!("labelSelector={}", sel.replace(' ', "+"));
            let code = call(&api, Method::GET, path, &q, "application/json", Vec::new()).await;
            prop_assert!(code == 200 || code == 400, "list status {code}");
            Ok(())
        })?;
    }
}

#[test]
fn registry_paths_route() {
    for r in registry::RESOURCES {
        let base = if r.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let path = if r.namespaced {
            format!("{base}/namespaces/x/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        assert!(matches!(route(&path), Ok(Route::Resource(_))), "{path}");
    }
}
