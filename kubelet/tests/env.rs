//! Container environments: ordering and overriding, `$(VAR)` expansion, the downward API
//! (fields and resources with divisors), ConfigMap and Secret references (optional or
//! not) and service link variables.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use kubelet::env::{EnvError, container_env, expand, expand_all, is_env_var_name, service_env};
use serde_json::{Value, json};

fn pod(spec: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "web", "namespace": "ns", "uid": "uid-1",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "say \"hi\""},
        },
        "spec": spec,
    }))
    .unwrap()
}

fn svc(ns: &str, name: &str, ip: &str, ports: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "ports": ports},
    }))
    .unwrap()
}

fn kubernetes() -> Service {
    svc(
        "default",
        "kubernetes",
        "10.96.0.1",
        json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
    )
}

fn maps(entries: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, BTreeMap<String, String>> {
    entries
        .iter()
        .map(|(n, kv)| {
            (
                n.to_string(),
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        })
        .collect()
}

fn allocatable() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cpu".to_string(), "4".to_string()),
        ("memory".to_string(), "8Gi".to_string()),
        ("ephemeral-storage".to_string(), "100Gi".to_string()),
    ])
}

/// The environment of the pod's first container, with the given objects.
fn env_of(
    p: &Pod,
    cms: &BTreeMap<String, BTreeMap<String, String>>,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    services: &[Service],
) -> Result<Vec<(String, String)>, EnvError> {
    let c = &p.spec.as_ref().unwrap().containers[0];
    container_env(
        p,
        c,
        "node-1",
        "192.168.1.10",
        Some("10.244.0.7"),
        &allocatable(),
        &|n: &str| cms.get(n).cloned(),
        &|n: &str| secrets.get(n).cloned(),
        services,
    )
}

fn simple(p: &Pod) -> BTreeMap<String, String> {
    env_of(p, &BTreeMap::new(), &BTreeMap::new(), &[])
        .unwrap()
        .into_iter()
        .collect()
}

fn one_env(env: Value) -> Pod {
    pod(json!({"containers": [{"name": "app", "image": "busybox", "env": env}]}))
}

#[test]
fn expansion_rules() {
    let vars = |name: &str| match name {
        "A" => Some("alpha".to_string()),
        "B" => Some("$(A)".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let cases = [
        ("$(A)", "alpha"),
        ("x-$(A)-y", "x-alpha-y"),
        ("$(A)$(A)", "alphaalpha"),
        ("$(UNDEF)", "$(UNDEF)"),
        ("$(EMPTY)!", "!"),
        ("$$", "$"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$alpha"),
        ("$$$$", "$$"),
        ("$A", "$A"),
        ("cost: 5$", "cost: 5$"),
        ("$", "$"),
        ("$(A", "$(A"),
        ("$(A $$", "$(A $"),
        ("$()", "$()"),
        // Values are not expanded again.
        ("$(B)", "$(A)"),
        // References do not nest: the name runs to the first ')'.
        ("$(A$(A))", "$(A$(A))"),
        ("$(UNDEF_$(A))", "$(UNDEF_$(A))"),
        ("é$é$(A)é", "é$éalphaé"),
        ("", ""),
        ("plain", "plain"),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, &vars), want, "{input:?}");
    }
    let env = vec![("GREETING".to_string(), "hello".to_string())];
    assert_eq!(
        expand_all(&["echo".into(), "$(GREETING) $(WHO)".into()], &env),
        ["echo", "hello $(WHO)"]
    );
}

#[test]
fn order_and_overrides() {
    let p = pod(json!({"containers": [{
        "name": "app", "image": "busybox",
        "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
            {"secretRef": {"name": "creds"}},
        ],
        "env": [
            {"name": "Z_FIRST", "value": "z"},
            {"name": "CFG_B", "value": "overridden"},
            {"name": "PASSWORD_COPY", "value": "$(PASSWORD)"},
            {"name": "LATER", "value": "$(DEFINED_AFTER)"},
            {"name": "DEFINED_AFTER", "value": "x"},
            {"name": "SELF", "value": "[$(SELF)]"},
            {"name": "EMPTY"},
        ],
    }]}));
    let cms = maps(&[("cfg", &[("B", "2"), ("A", "1")])]);
    let secrets = maps(&[("creds", &[("PASSWORD", "s3cret")])]);
    let env = env_of(&p, &cms, &secrets, &[]).unwrap();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "CFG_A",
            "CFG_B",
            "PASSWORD",
            "Z_FIRST",
            "PASSWORD_COPY",
            "LATER",
            "DEFINED_AFTER",
            "SELF",
            "EMPTY"
        ]
    );
    let m: BTreeMap<_, _> = env.into_iter().collect();
    assert_eq!(m["CFG_B"], "overridden");
    assert_eq!(m["PASSWORD_COPY"], "s3cret");
    assert_eq!(m["LATER"], "$(DEFINED_AFTER)");
    assert_eq!(m["SELF"], "[$(SELF)]");
    assert_eq!(m["EMPTY"], "");
}

#[test]
fn env_from_skips_invalid_keys_and_optional_sources() {
    let p = pod(json!({"containers": [{
        "name": "app", "image": "busybox",
        "envFrom": [
            {"configMapRef": {"name": "cfg"}},
            {"configMapRef": {"name": "absent", "optional": true}},
            {"secretRef": {"name": "absent", "optional": true}},
        ],
    }]}));
    let cms = maps(&[(
        "cfg",
        &[("good.key-1", "1"), ("bad=key", "2"), ("tab\tkey", "3")],
    )]);
    let env = env_of(&p, &cms, &BTreeMap::new(), &[]).unwrap();
    assert_eq!(env, [("good.key-1".to_string(), "1".to_string())]);
    assert!(is_env_var_name("1st name ok"));
    assert!(!is_env_var_name(""));
    assert!(!is_env_var_name("a=b"));

    let missing = pod(json!({"containers": [{
        "name": "app", "image": "busybox",
        "envFrom": [{"configMapRef": {"name": "absent"}}],
    }]}));
    let err = env_of(&missing, &BTreeMap::new(), &BTreeMap::new(), &[]).unwrap_err();
    assert_eq!(err.to_string(), "configmap \"absent\" not found");
    assert_eq!(err.reason(), "CreateContainerConfigError");
    let missing = pod(json!({"containers": [{
        "name": "app", "image": "busybox",
        "envFrom": [{"secretRef": {"name": "absent"}}],
    }]}));
    let err = env_of(&missing, &BTreeMap::new(), &BTreeMap::new(), &[]).unwrap_err();
    assert_eq!(err.to_string(), "secret \"absent\" not found");
}

#[test]
fn key_references() {
    let cms = maps(&[("cfg", &[("level", "debug")])]);
    let secrets = maps(&[("creds", &[("token", "abc")])]);
    let p = one_env(json!([
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "OPT_KEY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": true}}},
        {"name": "OPT_CM", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": true}}},
        {"name": "OPT_SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": true}}},
    ]));
    let env = env_of(&p, &cms, &secrets, &[]).unwrap();
    assert_eq!(
        env,
        [
            ("LEVEL".to_string(), "debug".to_string()),
            ("TOKEN".to_string(), "abc".to_string())
        ]
    );

    let cases = [
        (
            json!({"configMapKeyRef": {"name": "cfg", "key": "nope"}}),
            "couldn't find key nope in ConfigMap ns/cfg",
        ),
        (
            json!({"configMapKeyRef": {"name": "absent", "key": "k"}}),
            "configmap \"absent\" not found",
        ),
        (
            json!({"secretKeyRef": {"name": "creds", "key": "nope"}}),
            "couldn't find key nope in Secret ns/creds",
        ),
        (
            json!({"secretKeyRef": {"name": "absent", "key": "k"}}),
            "secret \"absent\" not found",
        ),
    ];
    for (from, want) in cases {
        let p = one_env(json!([{"name": "X", "valueFrom": from}]));
        let err = env_of(&p, &cms, &secrets, &[]).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn objects_are_looked_up_once() {
    let p = pod(json!({"containers": [{
        "name": "app", "image": "busybox",
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a"}}},
        ],
    }]}));
    let calls = RefCell::new(Vec::new());
    let cms = |n: &str| {
        calls.borrow_mut().push(n.to_string());
        Some(BTreeMap::from([("a".to_string(), "1".to_string())]))
    };
    let c = &p.spec.as_ref().unwrap().containers[0];
    let env = container_env(
        &p,
        c,
        "node-1",
        "",
        None,
        &BTreeMap::new(),
        &cms,
        &|_: &str| None,
        &[],
    )
    .unwrap();
    assert_eq!(env.len(), 3);
    assert_eq!(*calls.borrow(), ["cfg"]);
}

#[test]
fn downward_api_fields() {
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    let mut p = pod(json!({
        "nodeName": "node-1",
        "serviceAccountName": "robot",
        "containers": [{"name": "app", "image": "busybox", "env": [
            {"name": "NAME", "valueFrom": field("metadata.name")},
            {"name": "NAMESPACE", "valueFrom": field("metadata.namespace")},
            {"name": "UID", "valueFrom": field("metadata.uid")},
            {"name": "APP", "valueFrom": field("metadata.labels['app']")},
            {"name": "MISSING_LABEL", "valueFrom": field("metadata.labels['nope']")},
            {"name": "NOTE", "valueFrom": field("metadata.annotations['note']")},
            {"name": "LABELS", "valueFrom": field("metadata.labels")},
            {"name": "ANNOTATIONS", "valueFrom": field("metadata.annotations")},
            {"name": "NODE", "valueFrom": field("spec.nodeName")},
            {"name": "SA", "valueFrom": field("spec.serviceAccountName")},
            {"name": "HOST_IP", "valueFrom": field("status.hostIP")},
            {"name": "HOST_IPS", "valueFrom": field("status.hostIPs")},
            {"name": "POD_IP", "valueFrom": field("status.podIP")},
            {"name": "POD_IPS", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIPs"}}},
            {"name": "URL", "value": "http://$(POD_IP):8080/$(NAME)"},
        ]}],
    }));
    let m = simple(&p);
    let want = [
        ("NAME", "web"),
        ("NAMESPACE", "ns"),
        ("UID", "uid-1"),
        ("APP", "web"),
        ("MISSING_LABEL", ""),
        ("NOTE", "say \"hi\""),
        ("LABELS", "app=\"web\"\ntier=\"front\""),
        ("ANNOTATIONS", "note=\"say \\\"hi\\\"\""),
        ("NODE", "node-1"),
        ("SA", "robot"),
        ("HOST_IP", "192.168.1.10"),
        ("HOST_IPS", "192.168.1.10"),
        ("POD_IP", "10.244.0.7"),
        ("POD_IPS", "10.244.0.7"),
        ("URL", "http://10.244.0.7:8080/web"),
    ];
    for (k, v) in want {
        assert_eq!(m[k], v, "{k}");
    }

    // A host-network pod's IP is the host's.
    p.spec.as_mut().unwrap().host_network = Some(true);
    let c = &p.spec.as_ref().unwrap().containers[0];
    let env = container_env(
        &p,
        c,
        "node-1",
        "192.168.1.10",
        None,
        &BTreeMap::new(),
        &|_: &str| None,
        &|_: &str| None,
        &[],
    )
    .unwrap();
    let m: BTreeMap<_, _> = env.into_iter().collect();
    assert_eq!(m["POD_IP"], "192.168.1.10");

    let cases = [
        (
            json!({"fieldPath": "spec.nope"}),
            "field label not supported: spec.nope",
        ),
        (
            json!({"fieldPath": "metadata.name['x']"}),
            "field label does not support subscript: metadata.name['x']",
        ),
        (
            json!({"apiVersion": "v2", "fieldPath": "metadata.name"}),
            "unsupported pod version: v2",
        ),
    ];
    for (sel, want) in cases {
        let p = one_env(json!([{"name": "X", "valueFrom": {"fieldRef": sel}}]));
        let err = env_of(&p, &BTreeMap::new(), &BTreeMap::new(), &[]).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn resource_fields_and_divisors() {
    let res = |resource: &str, divisor: Option<&str>| {
        let mut sel = json!({"resource": resource});
        if let Some(d) = divisor {
            sel["divisor"] = json!(d);
        }
        json!({"resourceFieldRef": sel})
    };
    let p = pod(json!({"containers": [
        {"name": "app", "image": "busybox",
         "resources": {
            "limits": {"cpu": "1500m", "memory": "128Mi"},
            "requests": {"cpu": "250m", "memory": "1G"},
         },
         "env": [
            {"name": "CPU_LIMIT", "valueFrom": res("limits.cpu", None)},
            {"name": "CPU_LIMIT_M", "valueFrom": res("limits.cpu", Some("1m"))},
            {"name": "CPU_LIMIT_0", "valueFrom": res("limits.cpu", Some("0"))},
            {"name": "CPU_REQUEST", "valueFrom": res("requests.cpu", None)},
            {"name": "CPU_REQUEST_M", "valueFrom": res("requests.cpu", Some("1m"))},
            {"name": "MEM_LIMIT", "valueFrom": res("limits.memory", None)},
            {"name": "MEM_LIMIT_MI", "valueFrom": res("limits.memory", Some("1Mi"))},
            {"name": "MEM_REQUEST_MI", "valueFrom": res("requests.memory", Some("1Mi"))},
            {"name": "MEM_REQUEST_K", "valueFrom": res("requests.memory", Some("1k"))},
            {"name": "STORAGE_LIMIT_GI", "valueFrom": res("limits.ephemeral-storage", Some("1Gi"))},
            {"name": "STORAGE_REQUEST", "valueFrom": res("requests.ephemeral-storage", None)},
            {"name": "SIDE_CPU", "valueFrom": {"resourceFieldRef": {
                "containerName": "side", "resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "SIDE_MEM_LIMIT", "valueFrom": {"resourceFieldRef": {
                "containerName": "side", "resource": "limits.memory", "divisor": "1Gi"}}},
         ]},
        {"name": "side", "image": "busybox",
         "resources": {"limits": {"cpu": "300m"}}},
    ]}));
    let m = simple(&p);
    let want = [
        ("CPU_LIMIT", "2"),
        ("CPU_LIMIT_M", "1500"),
        ("CPU_LIMIT_0", "2"),
        ("CPU_REQUEST", "1"),
        ("CPU_REQUEST_M", "250"),
        ("MEM_LIMIT", "134217728"),
        ("MEM_LIMIT_MI", "128"),
        // 1e9 / 2^20 = 953.67, rounded up.
        ("MEM_REQUEST_MI", "954"),
        ("MEM_REQUEST_K", "1000000"),
        // Unset limit: the node's allocatable.
        ("STORAGE_LIMIT_GI", "100"),
        // Unset request: zero.
        ("STORAGE_REQUEST", "0"),
        // The request defaults to the limit.
        ("SIDE_CPU", "300"),
        ("SIDE_MEM_LIMIT", "8"),
    ];
    for (k, v) in want {
        assert_eq!(m[k], v, "{k}");
    }

    let cases = [
        (
            json!({"resource": "limits.gpu"}),
            "unsupported container resource : limits.gpu",
        ),
        (
            json!({"resource": "cpu"}),
            "unsupported container resource : cpu",
        ),
        (
            json!({"containerName": "ghost", "resource": "limits.cpu"}),
            "container ghost not found",
        ),
    ];
    for (sel, want) in cases {
        let p = one_env(json!([{"name": "X", "valueFrom": {"resourceFieldRef": sel}}]));
        let err = env_of(&p, &BTreeMap::new(), &BTreeMap::new(), &[]).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn service_link_variables() {
    let my = svc(
        "ns",
        "my-svc",
        "10.96.5.5",
        json!([
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns-udp", "port": 53, "protocol": "UDP"},
        ]),
    );
    let env = service_env("ns", true, std::slice::from_ref(&my));
    let want = [
        ("MY_SVC_SERVICE_HOST", "10.96.5.5"),
        ("MY_SVC_SERVICE_PORT", "80"),
        ("MY_SVC_SERVICE_PORT_HTTP", "80"),
        ("MY_SVC_SERVICE_PORT_DNS_UDP", "53"),
        ("MY_SVC_PORT", "tcp://10.96.5.5:80"),
        ("MY_SVC_PORT_80_TCP", "tcp://10.96.5.5:80"),
        ("MY_SVC_PORT_80_TCP_PROTO", "tcp"),
        ("MY_SVC_PORT_80_TCP_PORT", "80"),
        ("MY_SVC_PORT_80_TCP_ADDR", "10.96.5.5"),
        ("MY_SVC_PORT_53_UDP", "udp://10.96.5.5:53"),
        ("MY_SVC_PORT_53_UDP_PROTO", "udp"),
        ("MY_SVC_PORT_53_UDP_PORT", "53"),
        ("MY_SVC_PORT_53_UDP_ADDR", "10.96.5.5"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(env, want);

    // IPv6 addresses are bracketed in URLs; the protocol defaults to TCP.
    let v6 = svc("ns", "db", "fd00::10", json!([{"port": 5432}]));
    let m: BTreeMap<_, _> = service_env("ns", true, &[v6]).into_iter().collect();
    assert_eq!(m["DB_PORT"], "tcp://[fd00::10]:5432");
    assert_eq!(m["DB_PORT_5432_TCP_ADDR"], "fd00::10");
    assert_eq!(m["DB_SERVICE_PORT"], "5432");

    let headless = svc("ns", "headless", "None", json!([{"port": 80}]));
    let no_ip = svc("ns", "pending", "", json!([{"port": 80}]));
    let elsewhere = svc("other", "far", "10.96.9.9", json!([{"port": 80}]));
    let all = [kubernetes(), my.clone(), headless, no_ip, elsewhere];
    let names = |env: Vec<(String, String)>| -> Vec<String> {
        let mut prefixes: Vec<String> = env
            .into_iter()
            .filter_map(|(k, _)| k.strip_suffix("_SERVICE_HOST").map(str::to_string))
            .collect();
        prefixes.sort();
        prefixes
    };
    assert_eq!(
        names(service_env("ns", true, &all)),
        ["KUBERNETES", "MY_SVC"]
    );
    // Without service links only the API server's Service remains.
    assert_eq!(names(service_env("ns", false, &all)), ["KUBERNETES"]);
    assert_eq!(names(service_env("default", false, &all)), ["KUBERNETES"]);
}

#[test]
fn service_variables_in_the_container_env() {
    let p = pod(
        json!({"containers": [{"name": "app", "image": "busybox", "env": [
            {"name": "MY_SVC_SERVICE_HOST", "value": "mine"},
            {"name": "API", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"},
        ]}]}),
    );
    let services = [
        kubernetes(),
        svc("ns", "my-svc", "10.96.5.5", json!([{"port": 80}])),
    ];
    let env = env_of(&p, &BTreeMap::new(), &BTreeMap::new(), &services).unwrap();
    // The container's own variables first, then the services'.
    assert_eq!(
        env[0],
        ("MY_SVC_SERVICE_HOST".to_string(), "mine".to_string())
    );
    assert_eq!(
        env[1],
        ("API".to_string(), "https://10.96.0.1:443".to_string())
    );
    assert_eq!(
        env.iter()
            .filter(|(k, _)| k == "MY_SVC_SERVICE_HOST")
            .count(),
        1
    );
    let m: BTreeMap<_, _> = env.iter().cloned().collect();
    assert_eq!(m["MY_SVC_PORT"], "tcp://10.96.5.5:80");
    assert_eq!(m["KUBERNETES_PORT_443_TCP"], "tcp://10.96.0.1:443");

    let no_links = pod(json!({
        "enableServiceLinks": false,
        "containers": [{"name": "app", "image": "busybox"}],
    }));
    let env = env_of(&no_links, &BTreeMap::new(), &BTreeMap::new(), &services).unwrap();
    assert!(env.iter().all(|(k, _)| k.starts_with("KUBERNETES_")));
    assert!(!env.is_empty());
}
