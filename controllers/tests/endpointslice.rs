//! EndpointSlice and Endpoints controller logic: which pods become endpoints, port grouping,
//! slice packing and reuse, and the legacy Endpoints object.

use controllers::endpointslice::{
    self, CONTROLLER_NAME, EndpointsAction, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, SlicePlan,
};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

fn service(extra: Value) -> Service {
    let mut svc = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"}},
        "spec": {
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.10",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
        }
    });
    merge(&mut svc, extra);
    serde_json::from_value(svc).expect("service")
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// A running pod selected by the service; `extra` is merged in.
fn pod(name: &str, ip: &str, ready: bool, extra: Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
        }
    });
    merge(&mut p, extra);
    serde_json::from_value(p).expect("pod")
}

fn many_pods(n: usize) -> Vec<Pod> {
    (0..n)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("10.1.{}.{}", i / 200, i % 200 + 1),
                true,
                json!({}),
            )
        })
        .collect()
}

/// Gives created slices names, as the apiserver would.
fn apply(existing: &mut Vec<EndpointSlice>, plan: &SlicePlan, counter: &mut usize) {
    existing.retain(|s| {
        !plan
            .delete
            .contains(s.metadata.name.as_ref().expect("name"))
    });
    for u in &plan.update {
        let slot = existing
            .iter_mut()
            .find(|s| s.metadata.name == u.metadata.name)
            .expect("updated slice exists");
        *slot = u.clone();
    }
    for c in &plan.create {
        let mut s = c.clone();
        *counter += 1;
        s.metadata.name = Some(format!(
            "{}{counter}",
            s.metadata.generate_name.clone().expect("generateName")
        ));
        existing.push(s);
    }
}

fn endpoint_names(slice: &EndpointSlice) -> Vec<String> {
    slice
        .endpoints
        .iter()
        .map(|e| {
            e.target_ref
                .as_ref()
                .and_then(|t| t.name.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn ready_not_ready_and_terminating_pods() {
    let svc = service(json!({}));
    let pods = vec![
        pod("a", "10.1.0.1", true, json!({})),
        pod("b", "10.1.0.2", false, json!({})),
        pod(
            "c",
            "10.1.0.3",
            true,
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        ),
        pod("d", "", true, json!({"status": {"podIP": null}})),
        pod(
            "e",
            "10.1.0.5",
            false,
            json!({"status": {"phase": "Succeeded"}}),
        ),
        pod(
            "f",
            "10.1.0.6",
            true,
            json!({"metadata": {"labels": {"app": "other"}}}),
        ),
        pod(
            "g",
            "10.1.0.7",
            true,
            json!({"metadata": {"namespace": "elsewhere"}}),
        ),
    ];
    let slices = endpointslice::desired(&svc, &pods);
    assert_eq!(slices.len(), 1);
    let s = &slices[0];
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(s.metadata.namespace.as_deref(), Some("default"));
    let labels = s.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels[LABEL_SERVICE_NAME], "web");
    assert_eq!(labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
    assert_eq!(labels["team"], "a");
    let owner = &s.metadata.owner_references.as_ref().expect("owners")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Service", "svc-uid", Some(true))
    );
    assert_eq!(endpoint_names(s), ["a", "b", "c"]);
    let conds: Vec<(bool, bool, bool)> = s
        .endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.as_ref().expect("conditions");
            (
                c.ready.expect("ready"),
                c.serving.expect("serving"),
                c.terminating.expect("terminating"),
            )
        })
        .collect();
    assert_eq!(
        conds,
        [
            (true, true, false),
            (false, false, false),
            (false, true, true)
        ]
    );
    let a = &s.endpoints[0];
    assert_eq!(a.addresses, ["10.1.0.1"]);
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    assert_eq!(a.zone, None);
    let t = a.target_ref.as_ref().expect("targetRef");
    assert_eq!(t.kind.as_deref(), Some("Pod"));
    assert_eq!(t.uid.as_deref(), Some("uid-a"));
    let port = &s.ports.as_ref().expect("ports")[0];
    assert_eq!(port.port, Some(8080));
    assert_eq!(port.name.as_deref(), Some("http"));
    assert_eq!(port.protocol.as_deref(), Some("TCP"));

    // publishNotReadyAddresses makes every endpoint ready.
    let svc = service(json!({"spec": {"publishNotReadyAddresses": true}}));
    let s = &endpointslice::desired(&svc, &pods)[0];
    assert!(
        s.endpoints
            .iter()
            .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
    );
}

#[test]
fn named_ports_resolved_per_pod() {
    let svc = service(json!({"spec": {"ports": [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web", "appProtocol": "http"}
    ]}}));
    let with_port = |name: &str, ip: &str, port: i32| {
        pod(
            name,
            ip,
            true,
            json!({"spec": {"containers": [{"name": "c", "image": "busybox",
                "ports": [{"name": "web", "containerPort": port}]}]}}),
        )
    };
    let pods = vec![
        with_port("a", "10.1.0.1", 8080),
        with_port("b", "10.1.0.2", 9090),
        with_port("c", "10.1.0.3", 8080),
        pod("d", "10.1.0.4", true, json!({})),
        // A sidecar (restartable init container) can expose the port too.
        pod(
            "e",
            "10.1.0.5",
            true,
            json!({"spec": {"initContainers": [{"name": "s", "image": "busybox", "restartPolicy": "Always",
                "ports": [{"name": "web", "containerPort": 9090}]}]}}),
        ),
    ];
    let slices = endpointslice::desired(&svc, &pods);
    assert_eq!(slices.len(), 3);
    let mut groups: Vec<(Vec<i32>, Vec<String>)> = slices
        .iter()
        .map(|s| {
            let ports = s
                .ports
                .iter()
                .flatten()
                .map(|p| p.port.unwrap_or_default())
                .collect();
            (ports, endpoint_names(s))
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            (vec![], vec!["d".to_string()]),
            (vec![8080], vec!["a".to_string(), "c".to_string()]),
            (vec![9090], vec!["b".to_string(), "e".to_string()]),
        ]
    );
    let p = slices
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .next()
        .expect("a port");
    assert_eq!(p.app_protocol.as_deref(), Some("http"));
}

#[test]
fn two_hundred_fifty_pods_make_three_slices_and_replans_are_churn_free() {
    let svc = service(json!({}));
    let mut pods = many_pods(250);
    let desired = endpointslice::desired(&svc, &pods);
    let sizes: Vec<usize> = desired.iter().map(|s| s.endpoints.len()).collect();
    assert_eq!(sizes, [100, 100, 50]);

    let mut existing = Vec::new();
    let mut counter = 0;
    let plan = endpointslice::plan(&svc, &desired, &existing);
    assert_eq!(
        (plan.create.len(), plan.update.len(), plan.delete.len()),
        (3, 0, 0)
    );
    apply(&mut existing, &plan, &mut counter);

    // Same pods: nothing to write.
    let plan = endpointslice::plan(&svc, &endpointslice::desired(&svc, &pods), &existing);
    assert!(plan.is_empty(), "{plan:?}");

    // One more pod goes into the slice with room; the full ones are untouched.
    pods.push(pod("zz-new", "10.9.0.1", true, json!({})));
    let plan = endpointslice::plan(&svc, &endpointslice::desired(&svc, &pods), &existing);
    assert_eq!(
        (plan.create.len(), plan.update.len(), plan.delete.len()),
        (0, 1, 0)
    );
    assert_eq!(plan.update[0].endpoints.len(), 51);
    apply(&mut existing, &plan, &mut counter);

    // A pod turning not-ready rewrites only its own slice.
    let victim = endpoint_names(&existing[0])[5].clone();
    for p in &mut pods {
        if p.metadata.name.as_deref() == Some(victim.as_str()) {
            *p = pod(&victim, "10.0.0.250", false, json!({}));
        }
    }
    let plan = endpointslice::plan(&svc, &endpointslice::desired(&svc, &pods), &existing);
    assert_eq!(
        (plan.create.len(), plan.update.len(), plan.delete.len()),
        (0, 1, 0)
    );
    assert_eq!(plan.update[0].metadata.name, existing[0].metadata.name);
    apply(&mut existing, &plan, &mut counter);

    // Removing every pod of one slice deletes it.
    let gone = endpoint_names(&existing[1]);
    pods.retain(|p| !gone.contains(p.metadata.name.as_ref().expect("name")));
    let plan = endpointslice::plan(&svc, &endpointslice::desired(&svc, &pods), &existing);
    assert_eq!(
        plan.delete,
        [existing[1].metadata.name.clone().expect("name")]
    );
    assert!(plan.create.is_empty() && plan.update.is_empty());
    apply(&mut existing, &plan, &mut counter);
    let total: usize = existing.iter().map(|s| s.endpoints.len()).sum();
    assert_eq!(total, pods.len());
    assert!(
        existing
            .iter()
            .all(|s| s.endpoints.len() <= endpointslice::MAX_ENDPOINTS_PER_SLICE)
    );
}

#[test]
fn placeholder_slice_for_no_endpoints() {
    let svc = service(json!({}));
    let desired = endpointslice::desired(&svc, &[]);
    assert_eq!(desired.len(), 1);
    assert!(desired[0].endpoints.is_empty());
    let mut existing = Vec::new();
    let mut counter = 0;
    let plan = endpointslice::plan(&svc, &desired, &existing);
    assert_eq!(plan.create.len(), 1);
    apply(&mut existing, &plan, &mut counter);
    // Kept, not recreated.
    assert!(endpointslice::plan(&svc, &desired, &existing).is_empty());
    // Pods arrive: the placeholder goes, a real slice comes.
    let pods = many_pods(2);
    let plan = endpointslice::plan(&svc, &endpointslice::desired(&svc, &pods), &existing);
    assert_eq!((plan.create.len(), plan.delete.len()), (1, 1));
    apply(&mut existing, &plan, &mut counter);
    // And back to no pods: the real slice is replaced by a placeholder.
    let plan = endpointslice::plan(&svc, &endpointslice::desired(&svc, &[]), &existing);
    assert_eq!((plan.create.len(), plan.delete.len()), (1, 1));
    assert!(plan.create[0].endpoints.is_empty());
}

#[test]
fn foreign_and_stale_slices() {
    let svc = service(json!({}));
    let pods = many_pods(3);
    let desired = endpointslice::desired(&svc, &pods);
    let mut existing = Vec::new();
    let mut counter = 0;
    apply(
        &mut existing,
        &endpointslice::plan(&svc, &desired, &[]),
        &mut counter,
    );
    // A slice left over from an older Service of the same name is deleted.
    let mut old = existing[0].clone();
    old.metadata.name = Some("web-old".into());
    old.metadata.owner_references.as_mut().expect("owners")[0].uid = "old-uid".into();
    // A slice someone else manages is not ours.
    let mut other = existing[0].clone();
    other.metadata.name = Some("web-custom".into());
    other
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .insert(LABEL_MANAGED_BY.into(), "someone-else".into());
    existing.push(old);
    existing.push(other);
    let plan = endpointslice::plan(&svc, &desired, &existing);
    assert_eq!(plan.delete, ["web-old"]);
    assert!(plan.create.is_empty() && plan.update.is_empty());

    // A label change on the Service is rolled out to the slices.
    let svc2 = service(json!({"metadata": {"labels": {"team": "b"}}}));
    let plan = endpointslice::plan(&svc2, &endpointslice::desired(&svc2, &pods), &existing[..1]);
    assert_eq!(plan.update.len(), 1);
    assert_eq!(
        plan.update[0].metadata.labels.as_ref().expect("labels")["team"],
        "b"
    );
}

#[test]
fn services_without_selector_are_not_managed() {
    let pods = many_pods(3);
    let managed = service(json!({}));
    let existing = endpointslice::desired(&managed, &pods);
    for svc in [
        service(json!({"spec": {"selector": null}})),
        {
            // `{}` (merge() would keep the old keys, so set it directly).
            let mut s = service(json!({}));
            s.spec.as_mut().expect("spec").selector = Some(Default::default());
            s
        },
        service(json!({"spec": {"type": "ExternalName", "externalName": "example.com"}})),
    ] {
        assert!(!endpointslice::manages(&svc));
        assert!(endpointslice::desired(&svc, &pods).is_empty());
        assert!(endpointslice::plan(&svc, &[], &existing).is_empty());
        assert!(endpointslice::endpoints(&svc, &pods).is_none());
    }
}

#[test]
fn legacy_endpoints() {
    let svc = service(json!({}));
    let pods = vec![
        pod("b", "10.1.0.2", false, json!({})),
        pod("a", "10.1.0.10", true, json!({})),
        pod("c", "10.1.0.3", true, json!({})),
        pod(
            "t",
            "10.1.0.4",
            true,
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        ),
    ];
    let ep = endpointslice::endpoints(&svc, &pods).expect("managed");
    assert_eq!(ep.metadata.name.as_deref(), Some("web"));
    assert_eq!(
        ep.metadata.labels.as_ref().expect("labels").get("team"),
        Some(&"a".to_string())
    );
    let subsets = ep.subsets.as_ref().expect("subsets");
    assert_eq!(subsets.len(), 1);
    let ips = |v: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| -> Vec<String> {
        v.iter().flatten().map(|a| a.ip.clone()).collect()
    };
    // Sorted by IP numerically; the terminating pod is left out.
    assert_eq!(ips(&subsets[0].addresses), ["10.1.0.3", "10.1.0.10"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.1.0.2"]);
    let port = &subsets[0].ports.as_ref().expect("ports")[0];
    assert_eq!((port.port, port.name.as_deref()), (8080, Some("http")));

    assert!(matches!(
        endpointslice::plan_endpoints(ep.clone(), None),
        EndpointsAction::Create(_)
    ));
    let mut stored = ep.clone();
    stored.metadata.resource_version = Some("7".into());
    assert_eq!(
        endpointslice::plan_endpoints(ep.clone(), Some(&stored)),
        EndpointsAction::None
    );
    let fewer = endpointslice::endpoints(&svc, &pods[1..]).expect("managed");
    match endpointslice::plan_endpoints(fewer, Some(&stored)) {
        EndpointsAction::Update(e) => {
            assert_eq!(e.metadata.resource_version.as_deref(), Some("7"));
            assert!(e.subsets.expect("subsets")[0].not_ready_addresses.is_none());
        }
        other => panic!("expected an update, got {other:?}"),
    }

    // publishNotReadyAddresses: everything is an address, terminating pods included.
    let svc = service(json!({"spec": {"publishNotReadyAddresses": true}}));
    let ep = endpointslice::endpoints(&svc, &pods).expect("managed");
    let subsets = ep.subsets.expect("subsets");
    assert_eq!(subsets[0].addresses.as_ref().map(Vec::len), Some(4));
}

#[test]
fn legacy_endpoints_capacity() {
    let svc = service(json!({}));
    let pods = many_pods(1005);
    let ep = endpointslice::endpoints(&svc, &pods).expect("managed");
    let n: usize = ep
        .subsets
        .iter()
        .flatten()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    assert_eq!(n, endpointslice::MAX_ENDPOINTS_ADDRESSES);
    assert_eq!(
        ep.metadata.annotations.expect("annotations")[endpointslice::ANNOTATION_OVER_CAPACITY],
        "truncated"
    );
}

#[test]
fn headless_service_without_ports_reuses_its_placeholder() {
    let mut svc = service(json!({"spec": {"clusterIP": "None"}}));
    svc.spec.as_mut().expect("spec").ports = None;
    let mut existing = Vec::new();
    let mut counter = 0;
    let plan = endpointslice::plan(&svc, &endpointslice::desired(&svc, &[]), &existing);
    apply(&mut existing, &plan, &mut counter);
    assert_eq!(existing.len(), 1);
    let labels = existing[0].metadata.labels.clone().expect("labels");
    assert_eq!(
        labels
            .get(endpointslice::LABEL_HEADLESS)
            .map(String::as_str),
        Some("")
    );
    // Port-less endpoints share the placeholder's (empty) port set: it is filled in place.
    let pods = many_pods(3);
    let plan = endpointslice::plan(&svc, &endpointslice::desired(&svc, &pods), &existing);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(plan.update.len(), 1);
    assert_eq!(plan.update[0].metadata.name, existing[0].metadata.name);
    assert_eq!(plan.update[0].endpoints.len(), 3);
    let ep = endpointslice::endpoints(&svc, &pods).expect("managed");
    let subsets = ep.subsets.expect("subsets");
    assert_eq!(subsets.len(), 1);
    assert!(subsets[0].ports.is_none());
}
