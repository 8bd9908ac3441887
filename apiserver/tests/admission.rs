//! Admission through its public API: upstream's defaults for minimal objects, idempotent
//! defaulting, one error per bad field with upstream's paths, the update rules, the
//! quantity parser, and no panic on any JSON shape.

mod admission {
    //! The tests, in one module so that `cargo test -p apiserver admission` selects them.

    use apiserver::admission::{self, quantity_milli, quantity_value};
    use apiserver::registry::{RESOURCES, Resource, find};
    use serde_json::{Value, json};

    fn res(group: &str, plural: &str) -> &'static Resource {
        find(group, "v1", plural).expect("a served resource")
    }

    fn defaulted(r: &Resource, obj: &Value) -> Value {
        let mut o = obj.clone();
        admission::default(r, &mut o);
        o
    }

    /// `field: message` of each error after defaulting, as the handler runs them.
    fn errors(r: &Resource, obj: &Value) -> Vec<String> {
        admission::validate_create(r, &defaulted(r, obj))
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    fn update_errors(r: &Resource, old: &Value, new: &Value) -> Vec<String> {
        admission::validate_update(r, &defaulted(r, old), &defaulted(r, new))
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    fn has(errs: &[String], prefix: &str) -> bool {
        errs.iter().any(|e| e.starts_with(prefix))
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "web", "namespace": "default", "labels": { "app": "web" } },
            "spec": { "containers": [{ "name": "web", "image": "nginx" }] }
        })
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": "default" },
            "spec": {
                "selector": { "matchLabels": { "app": "web" } },
                "template": {
                    "metadata": { "labels": { "app": "web" } },
                    "spec": { "containers": [{ "name": "web", "image": "nginx:1.25" }] }
                }
            }
        })
    }

    fn service() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "web", "namespace": "default" },
            "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80 }] }
        })
    }

    /// One valid object of every served kind, by plural.
    fn valid_objects() -> Vec<(&'static str, &'static str, Value)> {
        vec![
            ("", "pods", pod()),
            (
                "",
                "pods",
                json!({
                    "metadata": { "name": "full" },
                    "spec": {
                        "hostNetwork": true,
                        "restartPolicy": "OnFailure",
                        "volumes": [
                            { "name": "data", "emptyDir": { "sizeLimit": "1Gi" } },
                            { "name": "cfg", "configMap": { "name": "cfg", "items": [{ "key": "a", "path": "a.conf" }] } },
                            { "name": "scratch" }
                        ],
                        "initContainers": [{ "name": "init", "image": "busybox:1.36", "command": ["true"] }],
                        "containers": [{
                            "name": "app", "image": "registry.local:5000/app@sha256:abc",
                            "ports": [{ "name": "http", "containerPort": 8080 }],
                            "env": [
                                { "name": "A", "value": "1" },
                                { "name": "POD", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                                { "name": "LBL", "valueFrom": { "fieldRef": { "fieldPath": "metadata.labels['app']" } } }
                            ],
                            "envFrom": [{ "configMapRef": { "name": "cfg" }, "prefix": "CFG_" }],
                            "volumeMounts": [{ "name": "data", "mountPath": "/data" }, { "name": "cfg", "mountPath": "/etc/app" }],
                            "resources": { "requests": { "cpu": "100m", "memory": "64Mi" }, "limits": { "cpu": 1, "memory": "128Mi" } },
                            "livenessProbe": { "httpGet": { "port": "http" }, "initialDelaySeconds": 3 },
                            "readinessProbe": { "tcpSocket": { "port": 8080 }, "successThreshold": 2 },
                            "startupProbe": { "exec": { "command": ["true"] } },
                            "lifecycle": { "preStop": { "sleep": { "seconds": 5 } } }
                        }],
                        "tolerations": [
                            { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 },
                            { "operator": "Exists" }
                        ],
                        "nodeSelector": { "kubernetes.io/os": "linux" },
                        "dnsPolicy": "None",
                        "dnsConfig": { "nameservers": ["10.96.0.10"], "searches": ["svc.cluster.local"] }
                    }
                }),
            ),
            ("apps", "deployments", deployment()),
            (
                "apps",
                "replicasets",
                json!({
                    "metadata": { "name": "web-1" },
                    "spec": {
                        "replicas": 0,
                        "selector": { "matchExpressions": [{ "key": "app", "operator": "In", "values": ["web"] }] },
                        "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [{ "name": "c", "image": "nginx" }] } }
                    }
                }),
            ),
            (
                "apps",
                "daemonsets",
                json!({
                    "metadata": { "name": "agent" },
                    "spec": {
                        "selector": { "matchLabels": { "app": "agent" } },
                        "updateStrategy": { "type": "OnDelete" },
                        "template": { "metadata": { "labels": { "app": "agent", "x": "y" } }, "spec": { "containers": [{ "name": "c", "image": "agent:v1" }] } }
                    }
                }),
            ),
            ("", "services", service()),
            (
                "",
                "services",
                json!({
                    "metadata": { "name": "np" },
                    "spec": {
                        "type": "NodePort", "sessionAffinity": "ClientIP",
                        "ports": [{ "name": "http", "port": 80, "targetPort": "http" }, { "name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053 }]
                    }
                }),
            ),
            (
                "",
                "services",
                json!({ "metadata": { "name": "headless" }, "spec": { "clusterIP": "None" } }),
            ),
            (
                "",
                "services",
                json!({ "metadata": { "name": "ext" }, "spec": { "type": "ExternalName", "externalName": "example.com" } }),
            ),
            (
                "",
                "configmaps",
                json!({ "metadata": { "name": "cfg" }, "data": { "a.conf": "x", "KEY_1": "y" }, "binaryData": { "b": "AAEC" } }),
            ),
            (
                "",
                "secrets",
                json!({ "metadata": { "name": "s" }, "data": { "k": "dmFsdWU=" }, "stringData": { "plain": "text" } }),
            ),
            (
                "",
                "secrets",
                json!({ "metadata": { "name": "tls" }, "type": "kubernetes.io/tls", "data": { "tls.crt": "YQ==", "tls.key": "Yg==" } }),
            ),
            (
                "",
                "namespaces",
                json!({ "metadata": { "name": "team-a" } }),
            ),
            (
                "",
                "nodes",
                json!({ "metadata": { "name": "node-1.example", "labels": { "kubernetes.io/hostname": "node-1" } } }),
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({
                    "metadata": { "name": "web-abc" }, "addressType": "IPv4",
                    "endpoints": [{ "addresses": ["10.0.0.5"], "conditions": { "ready": true } }],
                    "ports": [{ "name": "http", "port": 8080 }]
                }),
            ),
            (
                "",
                "endpoints",
                json!({ "metadata": { "name": "web" }, "subsets": [{ "addresses": [{ "ip": "10.0.0.5" }], "ports": [{ "port": 80 }] }] }),
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({ "metadata": { "name": "node-1" }, "spec": { "holderIdentity": "node-1" } }),
            ),
            (
                "",
                "events",
                json!({ "metadata": { "name": "web.17a3b" }, "reason": "Started" }),
            ),
            (
                "",
                "serviceaccounts",
                json!({ "metadata": { "name": "default" } }),
            ),
            (
                "",
                "persistentvolumes",
                json!({ "metadata": { "name": "pv1" }, "spec": { "capacity": { "storage": "10Gi" }, "accessModes": ["ReadWriteOnce"], "hostPath": { "path": "/srv" } } }),
            ),
            (
                "",
                "persistentvolumeclaims",
                json!({ "metadata": { "name": "data" }, "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": 1073741824 } } } }),
            ),
        ]
    }

    #[test]
    fn a_minimal_pod_gets_upstreams_defaults() {
        let r = res("", "pods");
        let p = defaulted(r, &pod());
        assert_eq!(
            p["spec"],
            json!({
                "containers": [{
                    "name": "web", "image": "nginx", "imagePullPolicy": "Always", "resources": {},
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
                }],
                "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority",
                "priority": 0, "restartPolicy": "Always", "schedulerName": "default-scheduler", "securityContext": {},
                "serviceAccount": "default", "serviceAccountName": "default", "terminationGracePeriodSeconds": 30
            })
        );
        assert_eq!(
            p["status"],
            json!({ "phase": "Pending", "qosClass": "BestEffort" })
        );

        let mut full = pod();
        full["spec"]["containers"][0] = json!({
            "name": "web", "image": "nginx:1.25",
            "ports": [{ "containerPort": 80 }],
            "resources": { "limits": { "cpu": "500m", "memory": 134217728 } },
            "readinessProbe": { "httpGet": { "port": 80 }, "timeoutSeconds": 0 },
            "env": [{ "name": "NODE", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } }]
        });
        full["spec"]["volumes"] =
            json!([{ "name": "v" }, { "name": "s", "secret": { "secretName": "s" } }]);
        let p = defaulted(r, &full);
        let c = &p["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(
            c["resources"]["requests"],
            json!({ "cpu": "500m", "memory": "134217728" })
        );
        assert_eq!(
            c["readinessProbe"],
            json!({
                "httpGet": { "port": 80, "path": "/", "scheme": "HTTP" },
                "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
            })
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(p["spec"]["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(p["spec"]["volumes"][1]["secret"]["defaultMode"], 420);
        assert_eq!(p["status"]["qosClass"], "Guaranteed");
    }

    #[test]
    fn host_ports_qos_and_selectors() {
        let r = res("", "pods");
        let mut p = pod();
        p["spec"]["hostNetwork"] = json!(true);
        p["spec"]["containers"][0]["ports"] = json!([{ "containerPort": 8080 }]);
        p["spec"]["containers"][0]["resources"] = json!({ "requests": { "cpu": "100m" } });
        let d = defaulted(r, &p);
        assert_eq!(d["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
        assert_eq!(d["status"]["qosClass"], "Burstable");
        assert!(errors(r, &p).is_empty());
        let mut bad = d.clone();
        bad["spec"]["containers"][0]["ports"][0]["hostPort"] = json!(9090);
        assert!(has(
            &admission::validate_create(r, &bad)
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>(),
            "spec.containers[0].ports[0].hostPort: Invalid value: 9090: must match `containerPort` when `hostNetwork` is true"
        ));
        // Templates keep hostPort unset (upstream since 1.28).
        let mut dep = deployment();
        dep["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        dep["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{ "containerPort": 8080 }]);
        let dd = defaulted(res("apps", "deployments"), &dep);
        assert!(
            dd["spec"]["template"]["spec"]["containers"][0]["ports"][0]
                .get("hostPort")
                .is_none()
        );

        let labels: std::collections::BTreeMap<String, String> = [
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "fe".to_string()),
        ]
        .into();
        let sel = |v: Value| admission::selector_matches(&v, &labels);
        assert!(sel(json!({})));
        assert!(sel(json!({ "matchLabels": { "app": "web" } })));
        assert!(!sel(json!({ "matchLabels": { "app": "db" } })));
        assert!(sel(
            json!({ "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["fe", "be"] }] })
        ));
        assert!(sel(
            json!({ "matchExpressions": [{ "key": "x", "operator": "DoesNotExist" }] })
        ));
        assert!(!sel(
            json!({ "matchExpressions": [{ "key": "app", "operator": "NotIn", "values": ["web"] }] })
        ));
        assert!(!sel(
            json!({ "matchExpressions": [{ "key": "app", "operator": "Bogus" }] })
        ));
        assert!(!sel(json!({ "matchLabels": "app=web" })));
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:v1", "IfNotPresent"),
            ("nginx@sha256:0123", "IfNotPresent"),
            ("nginx:latest@sha256:0123", "Always"),
        ] {
            assert_eq!(admission::default_pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn a_minimal_deployment_and_service_get_upstreams_defaults() {
        let r = res("apps", "deployments");
        let d = defaulted(r, &deployment());
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(
            d["spec"]["strategy"],
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" } })
        );
        let t = &d["spec"]["template"]["spec"];
        assert_eq!(t["restartPolicy"], "Always");
        assert_eq!(t["dnsPolicy"], "ClusterFirst");
        assert_eq!(t["terminationGracePeriodSeconds"], 30);
        assert_eq!(t["schedulerName"], "default-scheduler");
        assert_eq!(t["securityContext"], json!({}));
        assert_eq!(t["containers"][0]["imagePullPolicy"], "IfNotPresent");
        // Pod-only defaults stay out of templates, as upstream.
        assert!(t.get("serviceAccountName").is_none() && t.get("priority").is_none());

        let mut recreate = deployment();
        recreate["spec"]["strategy"] = json!({ "type": "Recreate" });
        assert_eq!(
            defaulted(r, &recreate)["spec"]["strategy"],
            json!({ "type": "Recreate" })
        );

        let ds = defaulted(res("apps", "daemonsets"), &json!({ "spec": {} }));
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } })
        );
        assert_eq!(
            defaulted(res("apps", "replicasets"), &json!({ "spec": {} }))["spec"]["replicas"],
            1
        );

        let s = defaulted(res("", "services"), &service());
        assert_eq!(
            s["spec"],
            json!({
                "selector": { "app": "web" },
                "ports": [{ "port": 80, "protocol": "TCP", "targetPort": 80 }],
                "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]
            })
        );
        let lb = defaulted(
            res("", "services"),
            &json!({ "spec": { "type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{ "port": 443, "targetPort": "https" }] } }),
        );
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(
            lb["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        assert_eq!(lb["spec"]["ports"][0]["targetPort"], "https");
    }

    #[test]
    fn other_kinds_get_their_defaults() {
        let ns = defaulted(
            res("", "namespaces"),
            &json!({ "metadata": { "name": "team-a" } }),
        );
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );
        // A namespace whose finalizers were removed keeps the empty list.
        let done = defaulted(
            res("", "namespaces"),
            &json!({ "metadata": { "name": "x" }, "spec": { "finalizers": [] } }),
        );
        assert_eq!(done["spec"]["finalizers"], json!([]));

        let s = defaulted(
            res("", "secrets"),
            &json!({ "metadata": { "name": "s" }, "data": { "a": "eA==" }, "stringData": { "b": "hello" } }),
        );
        assert_eq!(s["type"], "Opaque");
        assert_eq!(s["data"], json!({ "a": "eA==", "b": "aGVsbG8=" }));
        assert!(s.get("stringData").is_none());

        let pv = defaulted(res("", "persistentvolumes"), &json!({ "spec": {} }));
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        let pvc = defaulted(res("", "persistentvolumeclaims"), &json!({ "spec": {} }));
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        let slice = defaulted(
            find("discovery.k8s.io", "v1", "endpointslices").unwrap(),
            &json!({ "addressType": "IPv4", "ports": [{ "port": 80 }] }),
        );
        assert_eq!(slice["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn valid_objects_pass_and_defaulting_is_idempotent() {
        for (group, plural, obj) in valid_objects() {
            let r = find(group, "v1", plural).unwrap();
            let once = defaulted(r, &obj);
            assert_eq!(
                defaulted(r, &once),
                once,
                "{plural}: defaulting twice changed the object"
            );
            let errs = errors(r, &obj);
            assert!(
                errs.is_empty(),
                "{plural} {}: {errs:#?}",
                obj["metadata"]["name"]
            );
            let errs: Vec<_> = admission::validate_update(r, &once, &once);
            assert!(errs.is_empty(), "{plural} update to itself: {errs:#?}");
        }
    }

    #[test]
    fn invalid_pods_name_each_bad_field() {
        let r = res("", "pods");
        let bad = json!({
            "metadata": { "name": "Web_1", "labels": { "bad key!": "v", "ok": "-bad" }, "annotations": { "a/b/c": "x" } },
            "spec": {
                "restartPolicy": "Sometimes",
                "dnsPolicy": "Google",
                "terminationGracePeriodSeconds": -1,
                "volumes": [{ "name": "data", "emptyDir": {}, "hostPath": { "path": "/x" } }, { "name": "data", "emptyDir": {} }],
                "containers": [
                    {
                        "name": "app",
                        "ports": [{ "containerPort": 70000, "protocol": "HTTP", "name": "HTTP_PORT" }],
                        "resources": { "limits": { "cpu": "1.2.3", "memory": "64Mi" }, "requests": { "memory": "128Mi", "gpu": "1" } },
                        "env": [{ "name": "A=B" }, { "value": "x" }],
                        "volumeMounts": [{ "name": "missing", "mountPath": "/m" }, { "name": "data" }],
                        "livenessProbe": { "exec": { "command": ["true"] }, "tcpSocket": { "port": 80 }, "periodSeconds": -1 },
                        "readinessProbe": {}
                    },
                    { "name": "app", "image": "nginx" },
                    { "name": "Bad_Name", "image": "nginx", "imagePullPolicy": "Sometimes" }
                ],
                "tolerations": [{ "operator": "Equal", "value": "x" }]
            }
        });
        let errs = errors(r, &bad);
        for expected in [
            "metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain must consist of",
            "metadata.labels: Invalid value: \"bad key!\": name part must consist of",
            "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string",
            "metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist of",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.dnsPolicy: Unsupported value: \"Google\"",
            "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
            "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[1].name: Duplicate value: \"data\"",
            "spec.containers[0].image: Required value",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\"",
            "spec.containers[0].ports[0].name: Invalid value: \"HTTP_PORT\": must contain only alpha-numeric",
            "spec.containers[0].resources.limits[cpu]: Invalid value: \"1.2.3\": quantities must match the regular expression",
            "spec.containers[0].resources.requests[memory]: Invalid value: \"128Mi\": must be less than or equal to memory limit of 64Mi",
            "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
            "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name",
            "spec.containers[0].env[1].name: Required value",
            "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
            "spec.containers[0].volumeMounts[1].mountPath: Required value",
            "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 1",
            "spec.containers[0].readinessProbe: Required value: must specify a handler type",
            "spec.containers[1].name: Duplicate value: \"app\"",
            "spec.containers[2].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label must consist of",
            "spec.containers[2].imagePullPolicy: Unsupported value: \"Sometimes\"",
            "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty",
        ] {
            assert!(has(&errs, expected), "missing {expected:?} in {errs:#?}");
        }

        let errs = errors(r, &json!({ "metadata": { "name": "p" }, "spec": {} }));
        assert_eq!(errs, vec!["spec.containers: Required value".to_string()]);
        let errs = errors(
            r,
            &json!({ "metadata": { "name": "p" }, "spec": { "containers": [{ "name": "c", "image": "i" }], "initContainers": [{ "name": "c", "image": "i", "readinessProbe": { "exec": { "command": ["x"] } } }] } }),
        );
        assert!(
            has(&errs, "spec.initContainers[0].name: Duplicate value: \"c\""),
            "{errs:#?}"
        );
        assert!(
            has(&errs, "spec.initContainers[0].readinessProbe: Forbidden"),
            "{errs:#?}"
        );
    }

    #[test]
    fn invalid_workloads_name_each_bad_field() {
        let r = res("apps", "deployments");
        let mut d = deployment();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["metadata"]["labels"] = json!({ "app": "other", "tier": "web" });
        d["spec"]["template"]["spec"]["containers"][0] = json!({ "name": "web" });
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        d["spec"]["strategy"] = json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "abc", "maxUnavailable": "150%" } });
        let errs = errors(r, &d);
        for expected in [
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\", \"tier\":\"web\"}: `selector` does not match template `labels`",
            "spec.template.spec.containers[0].image: Required value",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"abc\": a valid percent string",
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%",
        ] {
            assert!(has(&errs, expected), "missing {expected:?} in {errs:#?}");
        }

        let mut d = deployment();
        d["spec"]["strategy"] = json!({ "type": "Recreate", "rollingUpdate": { "maxSurge": 1 } });
        assert!(has(
            &errors(r, &d),
            "spec.strategy.rollingUpdate: Forbidden"
        ));
        let mut d = deployment();
        d["spec"]["strategy"] = json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 0, "maxUnavailable": "0%" } });
        assert!(has(
            &errors(r, &d),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"
        ));
        let mut d = deployment();
        d["spec"]["selector"] = json!({});
        assert!(has(
            &errors(r, &d),
            "spec.selector: Invalid value: {}: empty selector is invalid for deployment"
        ));
        d["spec"].as_object_mut().unwrap().remove("selector");
        assert!(has(&errors(r, &d), "spec.selector: Required value"));
        let mut d = deployment();
        d["spec"]["selector"] =
            json!({ "matchExpressions": [{ "key": "app", "operator": "Near" }] });
        assert!(has(
            &errors(r, &d),
            "spec.selector.matchExpressions[0].operator: Invalid value: \"Near\": not a valid selector operator"
        ));

        let ds = res("apps", "daemonsets");
        let errs = errors(
            ds,
            &json!({
                "metadata": { "name": "agent" },
                "spec": { "selector": { "matchLabels": { "app": "agent" } }, "template": { "metadata": { "labels": { "app": "nope" } }, "spec": { "containers": [{ "name": "c", "image": "i" }] } } }
            }),
        );
        assert!(
            has(
                &errs,
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"nope\"}"
            ),
            "{errs:#?}"
        );
    }

    #[test]
    fn invalid_services_and_others_name_each_bad_field() {
        let r = res("", "services");
        let errs = errors(
            r,
            &json!({
                "metadata": { "name": "1web" },
                "spec": {
                    "type": "Internal", "sessionAffinity": "Sticky", "clusterIP": "10.0.0.300",
                    "ports": [{ "port": 0 }, { "name": "a", "port": 80, "targetPort": 70000 }, { "name": "a", "port": 80, "protocol": "TCP" }]
                }
            }),
        );
        for expected in [
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of",
            "spec.type: Unsupported value: \"Internal\"",
            "spec.sessionAffinity: Unsupported value: \"Sticky\"",
            "spec.clusterIP: Invalid value: \"10.0.0.300\": must be a valid IP address",
            "spec.ports[0].name: Required value",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[1].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.ports[2].name: Duplicate value: \"a\"",
            "spec.ports[2]: Duplicate value:",
        ] {
            assert!(has(&errs, expected), "missing {expected:?} in {errs:#?}");
        }
        assert_eq!(
            errors(r, &json!({ "metadata": { "name": "x" }, "spec": {} })),
            vec!["spec.ports: Required value".to_string()]
        );
        assert!(has(
            &errors(
                r,
                &json!({ "metadata": { "name": "x" }, "spec": { "type": "ExternalName" } })
            ),
            "spec.externalName: Required value"
        ));

        let cm = res("", "configmaps");
        let errs = errors(
            cm,
            &json!({ "metadata": { "name": "c" }, "data": { "bad key": "x", "k": "v", "..": "x" }, "binaryData": { "k": "AA==" } }),
        );
        assert!(
            has(
                &errs,
                "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of"
            ),
            "{errs:#?}"
        );
        assert!(
            has(&errs, "data[..]: Invalid value: \"..\": must not be '..'"),
            "{errs:#?}"
        );
        assert!(
            has(
                &errs,
                "data[k]: Invalid value: \"k\": duplicate of key present in binaryData"
            ),
            "{errs:#?}"
        );

        let sec = res("", "secrets");
        let errs = errors(
            sec,
            &json!({ "metadata": { "name": "s" }, "type": "kubernetes.io/tls", "data": { "tls.crt": "not base64!" } }),
        );
        assert!(
            has(
                &errs,
                "data[tls.crt]: Invalid value: \"<secret contents redacted>\""
            ),
            "{errs:#?}"
        );
        assert!(has(&errs, "data[tls.key]: Required value"), "{errs:#?}");
        assert!(
            !errs.iter().any(|e| e.contains("not base64!")),
            "secret data leaked: {errs:#?}"
        );

        let ns = res("", "namespaces");
        assert!(has(
            &errors(ns, &json!({ "metadata": { "name": "a.b" } })),
            "metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label"
        ));
        let slices = find("discovery.k8s.io", "v1", "endpointslices").unwrap();
        assert!(has(
            &errors(slices, &json!({ "metadata": { "name": "s" } })),
            "addressType: Required value"
        ));
        assert!(has(
            &errors(
                slices,
                &json!({ "metadata": { "name": "s" }, "addressType": "IPX" })
            ),
            "addressType: Unsupported value: \"IPX\""
        ));
        let errs = errors(
            res("", "nodes"),
            &json!({ "metadata": { "name": "Node_1", "annotations": { "x": "y".repeat(300 * 1024) } } }),
        );
        assert!(
            has(&errs, "metadata.name: Invalid value: \"Node_1\""),
            "{errs:#?}"
        );
        assert!(
            has(
                &errs,
                "metadata.annotations: Too long: must have at most 262144 bytes"
            ),
            "{errs:#?}"
        );
    }

    #[test]
    fn wrong_types_are_field_errors() {
        let r = res("", "pods");
        let errs = errors(
            r,
            &json!({
                "metadata": { "name": "p", "labels": { "a": 1 } },
                "spec": { "containers": [{ "name": "c", "image": 5, "ports": "80", "resources": { "limits": { "cpu": true } } }], "restartPolicy": ["Always"] }
            }),
        );
        for expected in [
            "metadata.labels[a]: Invalid value: 1: must be of type string",
            "spec.containers[0].image: Invalid value: 5: must be of type string",
            "spec.containers[0].ports: Invalid value: \"80\": must be of type array",
            "spec.containers[0].resources.limits[cpu]: Invalid value: true: must be of type string",
            "spec.restartPolicy: Invalid value: [\"Always\"]: must be of type string",
        ] {
            assert!(has(&errs, expected), "missing {expected:?} in {errs:#?}");
        }
        assert!(!admission::validate_create(r, &json!([1, 2])).is_empty());
    }

    #[test]
    fn pod_spec_is_immutable_except_images_and_friends() {
        let r = res("", "pods");
        let mut old = pod();
        old["spec"]["tolerations"] = json!([{ "key": "a", "operator": "Exists" }]);
        old["spec"]["activeDeadlineSeconds"] = json!(100);
        // Clients send back what they read: the stored, defaulted object.
        let old = defaulted(r, &old);

        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:1.26");
        new["metadata"]["labels"]["extra"] = json!("yes");
        new["spec"]["tolerations"] =
            json!([{ "key": "a", "operator": "Exists" }, { "key": "b", "operator": "Exists" }]);
        new["spec"]["activeDeadlineSeconds"] = json!(50);
        assert_eq!(update_errors(r, &old, &new), Vec::<String>::new());

        let mut new = old.clone();
        new["spec"]["restartPolicy"] = json!("Never");
        let errs = update_errors(r, &old, &new);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].starts_with(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    ));
        assert!(errs[0].contains("spec.restartPolicy"));

        let mut bound = defaulted(r, &old);
        bound["spec"]["nodeName"] = json!("node-1");
        let mut moved = bound.clone();
        moved["spec"]["nodeName"] = json!("node-2");
        assert!(has(
            &update_errors(r, &bound, &moved),
            "spec: Forbidden: pod updates may not change"
        ));
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!("node-1");
        assert!(
            has(&update_errors(r, &old, &new), "spec: Forbidden"),
            "nodeName is set through binding only"
        );

        let mut new = old.clone();
        new["spec"]["tolerations"] = json!([]);
        assert!(has(
            &update_errors(r, &old, &new),
            "spec.tolerations: Forbidden"
        ));
        let mut new = old.clone();
        new["spec"]["activeDeadlineSeconds"] = json!(200);
        assert!(has(
            &update_errors(r, &old, &new),
            "spec.activeDeadlineSeconds: Invalid value: 200"
        ));
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("");
        assert!(has(
            &update_errors(r, &old, &new),
            "spec.containers[0].image: Required value"
        ));
        // A status write (spec untouched) passes.
        let mut new = defaulted(r, &old);
        new["status"] = json!({ "phase": "Running", "podIP": "10.0.0.5" });
        assert_eq!(update_errors(r, &old, &new), Vec::<String>::new());
    }

    #[test]
    fn immutable_fields_of_other_kinds() {
        let r = res("", "services");
        let mut old = service();
        old["spec"]["clusterIP"] = json!("10.96.0.10");
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.0.11");
        assert_eq!(
            update_errors(r, &old, &new),
            vec!["spec.clusterIP: Invalid value: \"10.96.0.11\": field is immutable".to_string()]
        );
        new["spec"]["clusterIP"] = json!("");
        assert_eq!(
            update_errors(r, &old, &new),
            Vec::<String>::new(),
            "an empty clusterIP keeps the old one"
        );
        new["spec"]["clusterIP"] = json!("10.96.0.11");
        assert_eq!(
            update_errors(r, &service(), &new),
            Vec::<String>::new(),
            "an unset clusterIP may be set"
        );

        let d = res("apps", "deployments");
        let mut new = deployment();
        new["spec"]["selector"] = json!({ "matchLabels": { "app": "web", "v": "2" } });
        new["spec"]["template"]["metadata"]["labels"]["v"] = json!("2");
        assert!(has(
            &update_errors(d, &deployment(), &new),
            "spec.selector: Invalid value: {\"matchLabels\""
        ));
        let mut scaled = deployment();
        scaled["spec"]["replicas"] = json!(5);
        assert_eq!(
            update_errors(d, &deployment(), &scaled),
            Vec::<String>::new()
        );

        let s = res("", "secrets");
        let old = json!({ "metadata": { "name": "s" }, "data": { "a": "YQ==" } });
        let mut new = old.clone();
        new["type"] = json!("kubernetes.io/basic-auth");
        new["data"]["username"] = json!("dQ==");
        assert!(has(
            &update_errors(s, &old, &new),
            "type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"
        ));

        let cm = res("", "configmaps");
        let old = json!({ "metadata": { "name": "c" }, "data": { "a": "1" }, "immutable": true });
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        assert!(has(
            &update_errors(cm, &old, &new),
            "data: Forbidden: field is immutable when `immutable` is set"
        ));
        let mut new = old.clone();
        new["immutable"] = json!(false);
        assert!(has(&update_errors(cm, &old, &new), "immutable: Forbidden"));
        let mut labelled = old.clone();
        labelled["metadata"]["labels"] = json!({ "a": "b" });
        assert_eq!(update_errors(cm, &old, &labelled), Vec::<String>::new());
    }

    #[test]
    fn quantities_parse_to_milli_units() {
        for (q, milli) in [
            ("100m", 100),
            ("1", 1000),
            ("1.5", 1500),
            ("0.1", 100),
            ("1Gi", 1_073_741_824_000),
            ("128Mi", 134_217_728_000),
            ("1e3", 1_000_000),
            ("2k", 2_000_000),
            ("1M", 1_000_000_000),
            ("+5", 5000),
            ("-1", -1000),
            ("250u", 1),
            ("0", 0),
        ] {
            assert_eq!(quantity_milli(q), Some(milli), "{q}");
        }
        assert_eq!(quantity_value("100m"), Some(1));
        assert_eq!(quantity_value("1Ki"), Some(1024));
        for bad in [
            "",
            "abc",
            "1.2.3",
            "1Kb",
            "1 Gi",
            "1e",
            "Mi",
            "1ki",
            "0x10",
            "1e1000000000",
            "1m1",
        ] {
            assert_eq!(quantity_milli(bad), None, "{bad}");
        }
    }

    // ---------------------------------------------------------------------------------------
    // No panic on garbage.

    /// A small deterministic generator (xorshift64*), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const KEYS: &[&str] = &[
        "metadata",
        "name",
        "generateName",
        "labels",
        "annotations",
        "finalizers",
        "ownerReferences",
        "spec",
        "status",
        "containers",
        "initContainers",
        "ephemeralContainers",
        "image",
        "ports",
        "containerPort",
        "hostPort",
        "protocol",
        "env",
        "value",
        "valueFrom",
        "fieldRef",
        "fieldPath",
        "resourceFieldRef",
        "resources",
        "limits",
        "requests",
        "cpu",
        "memory",
        "volumes",
        "volumeMounts",
        "mountPath",
        "emptyDir",
        "secret",
        "configMap",
        "hostPath",
        "path",
        "items",
        "key",
        "livenessProbe",
        "readinessProbe",
        "httpGet",
        "port",
        "exec",
        "command",
        "tcpSocket",
        "grpc",
        "lifecycle",
        "preStop",
        "restartPolicy",
        "dnsPolicy",
        "dnsConfig",
        "nameservers",
        "tolerations",
        "operator",
        "effect",
        "tolerationSeconds",
        "selector",
        "matchLabels",
        "matchExpressions",
        "values",
        "template",
        "strategy",
        "type",
        "rollingUpdate",
        "maxSurge",
        "maxUnavailable",
        "updateStrategy",
        "replicas",
        "clusterIP",
        "clusterIPs",
        "sessionAffinity",
        "sessionAffinityConfig",
        "clientIP",
        "timeoutSeconds",
        "targetPort",
        "nodePort",
        "externalName",
        "ipFamilies",
        "data",
        "binaryData",
        "stringData",
        "immutable",
        "addressType",
        "endpoints",
        "addresses",
        "subsets",
        "capacity",
        "hostNetwork",
        "nodeName",
        "activeDeadlineSeconds",
        "schedulingGates",
        "topologySpreadConstraints",
        "maxSkew",
        "labelSelector",
        "overhead",
        "sizeLimit",
        "serviceAccountName",
        "serviceAccount",
        "envFrom",
        "configMapRef",
        "prefix",
        "priorityClassName",
        "defaultMode",
        "qosClass",
    ];

    fn garbage_scalar(rng: &mut Rng) -> Value {
        const STRINGS: &[&str] = &[
            "",
            "x",
            "Always",
            "TCP",
            "None",
            "ClientIP",
            "100m",
            "1.2.3",
            "-",
            "a/b/c",
            "RollingUpdate",
            "Recreate",
            "25%",
            "300%",
            "In",
            "Exists",
            "ExternalName",
            "NodePort",
            "10.0.0.1",
            "::1",
            "é",
            "1e99",
            "kubernetes.io/tls",
            "metadata.labels['",
            "latest@",
            ":",
            "/",
            "..",
            "=",
        ];
        match rng.below(6) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 => json!([0i64, -1, 1, 80, 65536, i64::MAX, i64::MIN][rng.below(7)]),
            3 => [
                json!(u64::MAX),
                json!(1.5),
                json!(-0.0),
                json!(1e300),
                json!(0.5),
            ][rng.below(5)]
            .clone(),
            _ => json!(STRINGS[rng.below(STRINGS.len())]),
        }
    }

    fn garbage(rng: &mut Rng, depth: u32) -> Value {
        if depth == 0 || rng.below(3) == 0 {
            return garbage_scalar(rng);
        }
        if rng.below(2) == 0 {
            (0..rng.below(4)).map(|_| garbage(rng, depth - 1)).collect()
        } else {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                m.insert(
                    KEYS[rng.below(KEYS.len())].to_string(),
                    garbage(rng, depth - 1),
                );
            }
            Value::Object(m)
        }
    }

    /// Every JSON pointer inside `v`.
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.push(p.clone());
                    pointers(x, p, out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let p = format!("{at}/{i}");
                    out.push(p.clone());
                    pointers(x, p, out);
                }
            }
            _ => {}
        }
    }

    /// Runs every entry point on `obj`, checking that defaulting stays idempotent.
    fn exercise(r: &Resource, valid: &Value, obj: &Value) {
        let mut once = obj.clone();
        admission::default(r, &mut once);
        let mut twice = once.clone();
        admission::default(r, &mut twice);
        assert_eq!(
            once, twice,
            "{}: defaulting is not idempotent on {obj}",
            r.plural
        );
        admission::validate_create(r, obj);
        admission::validate_create(r, &once);
        admission::validate_update(r, valid, &once);
        admission::validate_update(r, &once, valid);
        admission::validate_update(r, &once, &once);
    }

    #[test]
    fn every_field_replaced_by_every_wrong_type_never_panics() {
        let replacements = [
            json!(null),
            json!(true),
            json!(0),
            json!(-1),
            json!(1.5),
            json!(u64::MAX),
            json!(""),
            json!("x"),
            json!([]),
            json!([1, "a", null]),
            json!({}),
            json!({ "a": { "b": [] } }),
        ];
        for (group, plural, obj) in valid_objects() {
            let r = find(group, "v1", plural).unwrap();
            let valid = defaulted(r, &obj);
            let mut paths = Vec::new();
            pointers(&valid, String::new(), &mut paths);
            for path in &paths {
                for rep in &replacements {
                    let mut bad = valid.clone();
                    if let Some(slot) = bad.pointer_mut(path) {
                        *slot = rep.clone();
                    }
                    exercise(r, &valid, &bad);
                }
            }
            for rep in &replacements {
                exercise(r, &valid, rep);
            }
        }
    }

    #[test]
    fn random_json_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let valid = valid_objects();
        for round in 0..3000 {
            let (group, plural, obj) = &valid[round % valid.len()];
            let r = find(group, "v1", plural).unwrap();
            let base = defaulted(r, obj);
            // Graft garbage at a few random places of a valid object, or use garbage whole.
            let mut bad = base.clone();
            if rng.below(8) == 0 {
                bad = garbage(&mut rng, 6);
            } else {
                for _ in 0..1 + rng.below(3) {
                    let mut paths = Vec::new();
                    pointers(&bad, String::new(), &mut paths);
                    if paths.is_empty() {
                        break;
                    }
                    let p = paths[rng.below(paths.len())].clone();
                    let g = garbage(&mut rng, 4);
                    if let Some(slot) = bad.pointer_mut(&p) {
                        *slot = g;
                    }
                }
            }
            exercise(r, &base, &bad);
        }
        // Every served kind, including those admission only checks metadata for.
        for r in RESOURCES {
            for _ in 0..50 {
                let g = garbage(&mut rng, 5);
                exercise(r, &json!({ "metadata": { "name": "x" } }), &g);
            }
        }
    }
}
