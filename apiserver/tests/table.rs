//! Server-side Table output through its public API: upstream's columns (and which of them are
//! `-o wide` ones) for every served kind, the cells kubectl shows for realistic objects, the
//! row's `object` per `includeObject`, and no panic on any object shape.

mod table {
    //! The tests, in one module so that `cargo test -p apiserver table` selects them.

    use apiserver::object;
    use apiserver::registry::{RESOURCES, Resource, find};
    use apiserver::table::{human_duration, table};
    use serde_json::{Value, json};

    fn res(group: &str, plural: &str) -> &'static Resource {
        find(group, "v1", plural).expect("a served resource")
    }

    /// A timestamp `secs` seconds ago. Tests use ages whose text does not change when a second
    /// or two passes (`20m`, `3h`, `10m`).
    fn ago(secs: i64) -> String {
        object::rfc3339(object::now_secs() - secs)
    }

    const MIN: i64 = 60;

    fn meta(name: &str) -> Value {
        json!({ "name": name, "namespace": "default", "creationTimestamp": ago(20 * MIN), "uid": "u-1" })
    }

    /// Column names and priorities.
    fn columns(t: &Value) -> Vec<(String, i64)> {
        t["columnDefinitions"]
            .as_array()
            .expect("columnDefinitions")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().expect("name").to_string(),
                    c["priority"].as_i64().expect("priority"),
                )
            })
            .collect()
    }

    fn names(t: &Value) -> Vec<String> {
        columns(t).into_iter().map(|(n, _)| n).collect()
    }

    /// Names of the priority-0 columns (what plain `kubectl get` shows).
    fn default_names(t: &Value) -> Vec<String> {
        columns(t)
            .into_iter()
            .filter(|(_, p)| *p == 0)
            .map(|(n, _)| n)
            .collect()
    }

    /// Names of the priority-1 columns (what `-o wide` adds).
    fn wide_names(t: &Value) -> Vec<String> {
        columns(t)
            .into_iter()
            .filter(|(_, p)| *p == 1)
            .map(|(n, _)| n)
            .collect()
    }

    fn one(r: &Resource, obj: Value) -> Value {
        table(r, &[obj], 7, None, None)
    }

    /// The cells of the only row.
    fn cells(r: &Resource, obj: Value) -> Vec<Value> {
        let t = one(r, obj);
        let row = &t["rows"][0];
        row["cells"].as_array().expect("cells").clone()
    }

    /// The cell under the column `name`.
    fn cell(r: &Resource, obj: Value, name: &str) -> Value {
        let t = one(r, obj);
        let i = names(&t)
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        t["rows"][0]["cells"][i].clone()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    // ---------------------------------------------------------------- pods

    fn running(name: &str, restarts: i64) -> Value {
        json!({
            "name": name, "ready": true, "restartCount": restarts, "image": "nginx",
            "state": { "running": { "startedAt": ago(20 * MIN) } }
        })
    }

    fn pod(status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": meta("web-1"),
            "spec": { "nodeName": "node-1", "containers": [ { "name": "app", "image": "nginx" }, { "name": "log", "image": "busybox" } ] },
            "status": status,
        })
    }

    #[test]
    fn table_pod_columns() {
        let t = one(res("", "pods"), pod(json!({})));
        assert_eq!(
            names(&t),
            s(&[
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ])
        );
        assert_eq!(
            wide_names(&t),
            s(&["IP", "Node", "Nominated Node", "Readiness Gates"])
        );
        let defs = t["columnDefinitions"].as_array().expect("defs");
        assert_eq!(defs[0]["format"], "name");
        assert_eq!(defs[3]["type"], "string", "RESTARTS carries (Xm ago)");
        for d in defs {
            assert!(d["description"].as_str().is_some_and(|x| !x.is_empty()));
        }
    }

    #[test]
    fn table_pod_running_two_of_two() {
        let p = pod(json!({
            "phase": "Running",
            "podIP": "10.1.0.5", "podIPs": [ { "ip": "10.1.0.5" }, { "ip": "fd00::5" } ],
            "conditions": [ { "type": "Ready", "status": "True" } ],
            "containerStatuses": [ running("app", 0), running("log", 0) ],
        }));
        assert_eq!(
            cells(res("", "pods"), p),
            vec![
                json!("web-1"),
                json!("2/2"),
                json!("Running"),
                json!("0"),
                json!("20m"),
                json!("10.1.0.5"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn table_pod_one_not_ready() {
        let mut log = running("log", 0);
        log["ready"] = json!(false);
        let p = pod(json!({ "phase": "Running", "containerStatuses": [ running("app", 0), log ] }));
        assert_eq!(cell(res("", "pods"), p.clone(), "Ready"), "1/2");
        assert_eq!(cell(res("", "pods"), p, "Status"), "Running");
    }

    #[test]
    fn table_pod_crash_loop_with_restarts() {
        let crashing = json!({
            "name": "app", "ready": false, "restartCount": 4,
            "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 40s" } },
            "lastState": { "terminated": { "exitCode": 1, "reason": "Error", "finishedAt": ago(10 * MIN) } },
        });
        let older = json!({
            "name": "log", "ready": true, "restartCount": 1,
            "state": { "running": {} },
            "lastState": { "terminated": { "exitCode": 2, "reason": "Error", "finishedAt": ago(3 * 3600) } },
        });
        let p = pod(json!({ "phase": "Running", "containerStatuses": [ crashing, older ] }));
        let c = cells(res("", "pods"), p);
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(
            c[3], "5 (10m ago)",
            "restarts summed, age of the latest restart"
        );
    }

    #[test]
    fn table_pod_restarts_without_last_state() {
        let p = pod(
            json!({ "phase": "Running", "containerStatuses": [ running("app", 3), running("log", 0) ] }),
        );
        assert_eq!(cell(res("", "pods"), p, "Restarts"), "3");
    }

    #[test]
    fn table_pod_waiting_and_terminated_reasons() {
        let r = res("", "pods");
        let waiting = |reason: &str| json!({ "name": "app", "ready": false, "restartCount": 0, "state": { "waiting": { "reason": reason } } });
        for reason in ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"] {
            let p = pod(
                json!({ "phase": "Pending", "containerStatuses": [ waiting(reason), running("log", 0) ] }),
            );
            assert_eq!(cell(r, p, "Status"), reason);
        }
        let term = |t: Value| json!({ "name": "app", "ready": false, "restartCount": 0, "state": { "terminated": t } });
        let p = pod(
            json!({ "phase": "Running", "containerStatuses": [ term(json!({ "exitCode": 137, "reason": "OOMKilled" })) ] }),
        );
        assert_eq!(cell(r, p, "Status"), "OOMKilled");
        let p = pod(
            json!({ "phase": "Failed", "containerStatuses": [ term(json!({ "exitCode": 1, "reason": "Error" })) ] }),
        );
        assert_eq!(cell(r, p, "Status"), "Error");
        let p = pod(
            json!({ "phase": "Failed", "containerStatuses": [ term(json!({ "exitCode": 3 })) ] }),
        );
        assert_eq!(cell(r, p, "Status"), "ExitCode:3");
        let p = pod(
            json!({ "phase": "Failed", "containerStatuses": [ term(json!({ "exitCode": 0, "signal": 9 })) ] }),
        );
        assert_eq!(cell(r, p, "Status"), "Signal:9");
        // The first container's reason wins over later ones.
        let p = pod(
            json!({ "phase": "Pending", "containerStatuses": [ waiting("ErrImagePull"), waiting("ContainerCreating") ] }),
        );
        assert_eq!(cell(r, p, "Status"), "ErrImagePull");
        // Pending without statuses: the phase.
        assert_eq!(
            cell(r, pod(json!({ "phase": "Pending" })), "Status"),
            "Pending"
        );
        // status.reason overrides the phase (Evicted).
        assert_eq!(
            cell(
                r,
                pod(json!({ "phase": "Failed", "reason": "Evicted" })),
                "Status"
            ),
            "Evicted"
        );
        // Scheduling gates.
        let p = pod(
            json!({ "phase": "Pending", "conditions": [ { "type": "PodScheduled", "status": "False", "reason": "SchedulingGated" } ] }),
        );
        assert_eq!(cell(r, p, "Status"), "SchedulingGated");
    }

    #[test]
    fn table_pod_completed() {
        let r = res("", "pods");
        let done = json!({ "name": "app", "ready": false, "restartCount": 0, "state": { "terminated": { "exitCode": 0, "reason": "Completed" } } });
        let mut log = done.clone();
        log["name"] = json!("log");
        let p = pod(json!({ "phase": "Succeeded", "containerStatuses": [ done.clone(), log ] }));
        let t = one(r, p);
        assert_eq!(t["rows"][0]["cells"][1], "0/2");
        assert_eq!(t["rows"][0]["cells"][2], "Completed");
        assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
        // One container done, one still running: Running (or NotReady without the Ready
        // condition).
        let p = pod(
            json!({ "phase": "Running", "conditions": [ { "type": "Ready", "status": "True" } ], "containerStatuses": [ done.clone(), running("log", 0) ] }),
        );
        assert_eq!(cell(r, p, "Status"), "Running");
        let p =
            pod(json!({ "phase": "Running", "containerStatuses": [ done, running("log", 0) ] }));
        assert_eq!(cell(r, p, "Status"), "NotReady");
        // Running pods carry no row conditions.
        let t = one(r, pod(json!({ "phase": "Running" })));
        assert!(t["rows"][0].get("conditions").is_none());
    }

    fn init_pod(init_statuses: Value, extra_status: Value) -> Value {
        let mut status = json!({
            "phase": "Pending",
            "initContainerStatuses": init_statuses,
            "containerStatuses": [ { "name": "app", "ready": false, "restartCount": 0, "state": { "waiting": { "reason": "PodInitializing" } } } ],
        });
        if let (Some(s), Some(e)) = (status.as_object_mut(), extra_status.as_object()) {
            s.extend(e.clone());
        }
        json!({
            "metadata": meta("init-1"),
            "spec": {
                "initContainers": [ { "name": "setup", "image": "busybox" }, { "name": "migrate", "image": "busybox" } ],
                "containers": [ { "name": "app", "image": "nginx" } ],
            },
            "status": status,
        })
    }

    #[test]
    fn table_pod_init_containers() {
        let r = res("", "pods");
        let pending = json!({ "name": "setup", "ready": false, "restartCount": 0, "state": { "waiting": { "reason": "PodInitializing" } } });
        let running_init = json!({ "name": "setup", "ready": false, "restartCount": 0, "state": { "running": {} } });
        let done = json!({ "name": "setup", "ready": false, "restartCount": 0, "state": { "terminated": { "exitCode": 0, "reason": "Completed" } } });
        let c = cells(r, init_pod(json!([pending.clone()]), json!({})));
        assert_eq!(c[1], "0/1");
        assert_eq!(c[2], "Init:0/2");
        assert_eq!(
            cell(r, init_pod(json!([running_init]), json!({})), "Status"),
            "Init:0/2"
        );
        let mut second = pending.clone();
        second["name"] = json!("migrate");
        assert_eq!(
            cell(r, init_pod(json!([done, second]), json!({})), "Status"),
            "Init:1/2"
        );
        let crash = json!({
            "name": "setup", "ready": false, "restartCount": 2,
            "state": { "waiting": { "reason": "CrashLoopBackOff" } },
            "lastState": { "terminated": { "exitCode": 1, "reason": "Error", "finishedAt": ago(10 * MIN) } },
        });
        let c = cells(r, init_pod(json!([crash]), json!({})));
        assert_eq!(c[2], "Init:CrashLoopBackOff");
        assert_eq!(c[3], "2 (10m ago)", "init container restarts count");
        let failed = json!({ "name": "setup", "ready": false, "restartCount": 0, "state": { "terminated": { "exitCode": 1, "reason": "Error" } } });
        assert_eq!(
            cell(r, init_pod(json!([failed]), json!({})), "Status"),
            "Init:Error"
        );
        let no_reason = json!({ "name": "setup", "ready": false, "restartCount": 0, "state": { "terminated": { "exitCode": 2 } } });
        assert_eq!(
            cell(r, init_pod(json!([no_reason]), json!({})), "Status"),
            "Init:ExitCode:2"
        );
    }

    #[test]
    fn table_pod_sidecar_counts_as_container() {
        let r = res("", "pods");
        let p = json!({
            "metadata": meta("side-1"),
            "spec": {
                "initContainers": [ { "name": "proxy", "image": "envoy", "restartPolicy": "Always" } ],
                "containers": [ { "name": "app", "image": "nginx" } ],
            },
            "status": {
                "phase": "Running",
                "conditions": [ { "type": "Initialized", "status": "True" }, { "type": "Ready", "status": "True" } ],
                "initContainerStatuses": [ { "name": "proxy", "ready": true, "started": true, "restartCount": 1, "state": { "running": {} } } ],
                "containerStatuses": [ running("app", 0) ],
            },
        });
        let c = cells(r, p);
        assert_eq!(c[1], "2/2");
        assert_eq!(c[2], "Running");
        assert_eq!(c[3], "1");
    }

    #[test]
    fn table_pod_terminating() {
        let r = res("", "pods");
        let mut p = pod(
            json!({ "phase": "Running", "containerStatuses": [ running("app", 0), running("log", 0) ] }),
        );
        p["metadata"]["deletionTimestamp"] = json!(ago(5));
        p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        assert_eq!(cell(r, p.clone(), "Status"), "Terminating");
        assert_eq!(cell(r, p.clone(), "Ready"), "2/2");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(cell(r, p, "Status"), "Unknown");
        // A finished pod being deleted keeps its final status.
        let mut done = pod(
            json!({ "phase": "Succeeded", "containerStatuses": [ { "name": "app", "state": { "terminated": { "exitCode": 0, "reason": "Completed" } } } ] }),
        );
        done["metadata"]["deletionTimestamp"] = json!(ago(5));
        assert_eq!(cell(r, done, "Status"), "Completed");
    }

    #[test]
    fn table_pod_wide_cells() {
        let mut p = pod(json!({
            "phase": "Pending",
            "nominatedNodeName": "node-2",
            "conditions": [ { "type": "example.com/lb", "status": "True" }, { "type": "example.com/dns", "status": "False" } ],
        }));
        p["spec"]["nodeName"] = json!(null);
        p["spec"]["readinessGates"] = json!([ { "conditionType": "example.com/lb" }, { "conditionType": "example.com/dns" }, { "conditionType": "example.com/x" } ]);
        let c = cells(res("", "pods"), p);
        assert_eq!(
            &c[5..],
            &[
                json!("<none>"),
                json!("<none>"),
                json!("node-2"),
                json!("1/3")
            ]
        );
    }

    // ---------------------------------------------------------------- services

    fn service(spec: Value, status: Value) -> Value {
        json!({ "metadata": meta("web"), "spec": spec, "status": status })
    }

    #[test]
    fn table_service_cluster_ip_and_node_port() {
        let r = res("", "services");
        let t = one(r, service(json!({}), json!({})));
        assert_eq!(
            names(&t),
            s(&[
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ])
        );
        assert_eq!(wide_names(&t), s(&["Selector"]));
        let svc = service(
            json!({
                "type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "selector": { "tier": "fe", "app": "web" },
                "ports": [
                    { "name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP" },
                    { "name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053 },
                ],
            }),
            json!({ "loadBalancer": {} }),
        );
        assert_eq!(
            cells(r, svc),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53:30053/UDP"),
                json!("20m"),
                json!("app=web,tier=fe"),
            ]
        );
        let svc = service(
            json!({ "type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "ports": [ { "port": 80, "protocol": "TCP" } ], "externalIPs": ["192.0.2.1", "192.0.2.2"] }),
            json!({}),
        );
        let c = cells(r, svc);
        assert_eq!(c[2], "None");
        assert_eq!(c[3], "192.0.2.1,192.0.2.2");
        assert_eq!(c[4], "80/TCP");
        assert_eq!(c[6], "<none>");
        let c = cells(r, service(json!({ "type": "ClusterIP" }), json!({})));
        assert_eq!(c[2], "<none>");
        assert_eq!(c[4], "<none>");
    }

    #[test]
    fn table_service_load_balancer_and_external_name() {
        let r = res("", "services");
        let lb = |status: Value, external: Value| {
            service(
                json!({ "type": "LoadBalancer", "clusterIPs": ["10.96.1.1"], "externalIPs": external, "ports": [ { "port": 443, "nodePort": 31443, "protocol": "TCP" } ] }),
                status,
            )
        };
        assert_eq!(
            cell(
                r,
                lb(json!({ "loadBalancer": {} }), json!([])),
                "External-IP"
            ),
            "<pending>"
        );
        assert_eq!(
            cell(
                r,
                lb(
                    json!({ "loadBalancer": { "ingress": [ { "ip": "203.0.113.9" }, { "hostname": "lb.example.com" }, { "ip": "203.0.113.1" } ] } }),
                    json!(["192.0.2.7"])
                ),
                "External-IP"
            ),
            "203.0.113.1,203.0.113.9,lb.example.com,192.0.2.7"
        );
        assert_eq!(
            cell(r, lb(json!({}), json!(["192.0.2.7"])), "External-IP"),
            "192.0.2.7"
        );
        let en = service(
            json!({ "type": "ExternalName", "externalName": "db.example.com" }),
            json!({}),
        );
        let c = cells(r, en);
        assert_eq!(c[1], "ExternalName");
        assert_eq!(c[3], "db.example.com");
    }

    // ---------------------------------------------------------------- endpoints

    #[test]
    fn table_endpoints() {
        let r = res("", "endpoints");
        let ep = json!({
            "metadata": meta("web"),
            "subsets": [
                { "addresses": [ { "ip": "10.0.0.1" }, { "ip": "10.0.0.2" } ], "ports": [ { "name": "http", "port": 80 } ] },
                { "addresses": [ { "ip": "10.0.0.3" }, { "ip": "10.0.0.4" }, { "ip": "10.0.0.5" } ], "ports": [ { "name": "http", "port": 80 } ] },
            ],
        });
        let t = one(r, ep.clone());
        assert_eq!(names(&t), s(&["Name", "Endpoints", "Age"]));
        assert_eq!(
            cells(r, ep),
            vec![
                json!("web"),
                json!("10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."),
                json!("20m")
            ]
        );
        let few = json!({ "metadata": meta("db"), "subsets": [ { "addresses": [ { "ip": "10.0.0.1" }, { "ip": "fd00::1" } ], "ports": [ { "port": 5432 } ] } ] });
        assert_eq!(cell(r, few, "Endpoints"), "10.0.0.1:5432,[fd00::1]:5432");
        let headless = json!({ "metadata": meta("hl"), "subsets": [ { "addresses": [ { "ip": "10.0.0.9" } ] } ] });
        assert_eq!(cell(r, headless, "Endpoints"), "10.0.0.9");
        assert_eq!(
            cell(r, json!({ "metadata": meta("none") }), "Endpoints"),
            "<none>"
        );
    }

    #[test]
    fn table_endpointslice() {
        let r = res("discovery.k8s.io", "endpointslices");
        let es = json!({
            "metadata": meta("web-abc12"),
            "addressType": "IPv4",
            "ports": [ { "name": "http", "port": 80, "protocol": "TCP" }, { "name": "metrics" }, {} ],
            "endpoints": [
                { "addresses": ["10.0.0.1"], "conditions": { "ready": true } },
                { "addresses": ["10.0.0.2"] },
                { "addresses": ["10.0.0.3", "10.0.0.4"] },
            ],
        });
        let t = one(r, es.clone());
        assert_eq!(
            names(&t),
            s(&["Name", "AddressType", "Ports", "Endpoints", "Age"])
        );
        assert_eq!(
            cells(r, es),
            vec![
                json!("web-abc12"),
                json!("IPv4"),
                json!("80,metrics,*"),
                json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."),
                json!("20m"),
            ]
        );
        let empty = json!({ "metadata": meta("e"), "addressType": "IPv6" });
        let c = cells(r, empty);
        assert_eq!(c[2], "<unset>");
        assert_eq!(c[3], "<unset>");
    }

    // ---------------------------------------------------------------- nodes

    fn node(conditions: Value, unschedulable: bool) -> Value {
        json!({
            "metadata": {
                "name": "node-1", "creationTimestamp": ago(3 * 3600),
                "labels": {
                    "kubernetes.io/hostname": "node-1",
                    "node-role.kubernetes.io/worker": "",
                    "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/": "",
                },
            },
            "spec": { "unschedulable": unschedulable },
            "status": {
                "conditions": conditions,
                "addresses": [ { "type": "Hostname", "address": "node-1" }, { "type": "InternalIP", "address": "192.168.1.10" } ],
                "nodeInfo": { "kubeletVersion": "v1.34.0", "osImage": "Debian GNU/Linux 13", "kernelVersion": "6.12.0", "containerRuntimeVersion": "containerd://2.1.0" },
            },
        })
    }

    #[test]
    fn table_node() {
        let r = res("", "nodes");
        let ready = json!([ { "type": "MemoryPressure", "status": "False" }, { "type": "Ready", "status": "True" } ]);
        let t = one(r, node(ready.clone(), true));
        assert_eq!(
            default_names(&t),
            s(&["Name", "Status", "Roles", "Age", "Version"])
        );
        assert_eq!(
            wide_names(&t),
            s(&[
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ])
        );
        assert_eq!(
            cells(r, node(ready.clone(), true)),
            vec![
                json!("node-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,worker"),
                json!("3h"),
                json!("v1.34.0"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 13"),
                json!("6.12.0"),
                json!("containerd://2.1.0"),
            ]
        );
        assert_eq!(cell(r, node(ready, false), "Status"), "Ready");
        assert_eq!(
            cell(
                r,
                node(json!([ { "type": "Ready", "status": "Unknown" } ]), false),
                "Status"
            ),
            "NotReady"
        );
        assert_eq!(
            cell(r, node(json!([]), true), "Status"),
            "Unknown,SchedulingDisabled"
        );
        let bare =
            json!({ "metadata": { "name": "n", "labels": { "kubernetes.io/role": "edge" } } });
        let c = cells(r, bare);
        assert_eq!(c[2], "edge");
        assert_eq!(c[3], "<unknown>");
        assert_eq!(c[7], "<unknown>");
        let plain = json!({ "metadata": { "name": "n" } });
        assert_eq!(cell(r, plain, "Roles"), "<none>");
    }

    // ---------------------------------------------------------------- config

    #[test]
    fn table_namespace_configmap_secret_serviceaccount() {
        let ns = json!({ "metadata": { "name": "team-a", "creationTimestamp": ago(20 * MIN) }, "status": { "phase": "Active" } });
        let r = res("", "namespaces");
        assert_eq!(names(&one(r, ns.clone())), s(&["Name", "Status", "Age"]));
        assert_eq!(
            cells(r, ns),
            vec![json!("team-a"), json!("Active"), json!("20m")]
        );

        let r = res("", "configmaps");
        let cm = json!({ "metadata": meta("cfg"), "data": { "a": "1", "b": "2" }, "binaryData": { "c": "AA==" } });
        assert_eq!(names(&one(r, cm.clone())), s(&["Name", "Data", "Age"]));
        assert_eq!(cells(r, cm), vec![json!("cfg"), json!(3), json!("20m")]);

        let r = res("", "secrets");
        let sec = json!({ "metadata": meta("tls"), "type": "kubernetes.io/tls", "data": { "tls.crt": "", "tls.key": "" } });
        assert_eq!(
            names(&one(r, sec.clone())),
            s(&["Name", "Type", "Data", "Age"])
        );
        assert_eq!(
            cells(r, sec),
            vec![
                json!("tls"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("20m")
            ]
        );

        let r = res("", "serviceaccounts");
        let sa = json!({ "metadata": meta("default"), "secrets": [ { "name": "default-token" } ] });
        assert_eq!(names(&one(r, sa.clone())), s(&["Name", "Secrets", "Age"]));
        assert_eq!(cells(r, sa), vec![json!("default"), json!(1), json!("20m")]);
        assert_eq!(
            cell(r, json!({ "metadata": meta("x") }), "Secrets"),
            json!(0)
        );
    }

    #[test]
    fn table_event() {
        let r = res("", "events");
        let ev = json!({
            "metadata": meta("web-1.17a2b3c4d5e6f"),
            "involvedObject": { "kind": "Pod", "name": "web-1", "namespace": "default", "fieldPath": "spec.containers{app}" },
            "reason": "BackOff", "type": "Warning",
            "message": "Back-off restarting failed container\n",
            "source": { "component": "kubelet", "host": "node-1" },
            "firstTimestamp": ago(3 * 3600), "lastTimestamp": ago(10 * MIN), "count": 7,
        });
        let t = one(r, ev.clone());
        assert_eq!(
            default_names(&t),
            s(&["Last Seen", "Type", "Reason", "Object", "Message"])
        );
        assert_eq!(
            wide_names(&t),
            s(&["Subobject", "Source", "First Seen", "Count", "Name"])
        );
        assert_eq!(
            cells(r, ev),
            vec![
                json!("10m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-1"),
                json!("spec.containers{app}"),
                json!("kubelet, node-1"),
                json!("Back-off restarting failed container"),
                json!("3h"),
                json!(7),
                json!("web-1.17a2b3c4d5e6f"),
            ]
        );
        // events.k8s.io-style: eventTime, series, reporting controller.
        let ev = json!({
            "metadata": meta("n.1"),
            "involvedObject": { "kind": "Node" },
            "eventTime": format!("{}.123456Z", ago(3 * 3600).trim_end_matches('Z')),
            "series": { "count": 4, "lastObservedTime": format!("{}.000001Z", ago(10 * MIN).trim_end_matches('Z')) },
            "reportingComponent": "berth-controller", "reportingInstance": "",
            "reason": "Scheduled", "type": "Normal", "message": "ok",
        });
        let c = cells(r, ev);
        assert_eq!(c[0], "10m");
        assert_eq!(c[3], "node");
        assert_eq!(c[5], "berth-controller");
        assert_eq!(c[7], "3h");
        assert_eq!(c[8], json!(4));
        // A singleton without count or timestamps.
        let c = cells(r, json!({ "metadata": meta("x") }));
        assert_eq!(c[0], "<unknown>");
        assert_eq!(c[8], json!(1));
    }

    #[test]
    fn table_lease() {
        let r = res("coordination.k8s.io", "leases");
        let l = json!({ "metadata": meta("node-1"), "spec": { "holderIdentity": "node-1", "leaseDurationSeconds": 40 } });
        assert_eq!(names(&one(r, l.clone())), s(&["Name", "Holder", "Age"]));
        assert_eq!(
            cells(r, l),
            vec![json!("node-1"), json!("node-1"), json!("20m")]
        );
        assert_eq!(cell(r, json!({ "metadata": meta("x") }), "Holder"), "");
    }

    // ---------------------------------------------------------------- storage

    #[test]
    fn table_persistent_volume() {
        let r = res("", "persistentvolumes");
        let pv = json!({
            "metadata": { "name": "pv-1", "creationTimestamp": ago(20 * MIN) },
            "spec": {
                "capacity": { "storage": "10Gi" },
                "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce", "ReadWriteOncePod"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "fast", "volumeMode": "Filesystem",
                "claimRef": { "namespace": "default", "name": "data" },
            },
            "status": { "phase": "Bound" },
        });
        let t = one(r, pv.clone());
        assert_eq!(
            default_names(&t),
            s(&[
                "Name",
                "Capacity",
                "Access Modes",
                "Reclaim Policy",
                "Status",
                "Claim",
                "StorageClass",
                "Reason",
                "Age"
            ])
        );
        assert_eq!(wide_names(&t), s(&["VolumeMode"]));
        assert_eq!(
            cells(r, pv.clone()),
            vec![
                json!("pv-1"),
                json!("10Gi"),
                json!("RWO,RWX,RWOP"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("fast"),
                json!(""),
                json!("20m"),
                json!("Filesystem"),
            ]
        );
        let mut gone = pv;
        gone["metadata"]["deletionTimestamp"] = json!(ago(1));
        gone["metadata"]["annotations"] =
            json!({ "volume.beta.kubernetes.io/storage-class": "legacy" });
        let c = cells(r, gone);
        assert_eq!(c[4], "Terminating");
        assert_eq!(c[6], "legacy");
        let bare = cells(r, json!({ "metadata": { "name": "p" } }));
        assert_eq!(bare[1], "0");
        assert_eq!(bare[2], "");
        assert_eq!(bare[5], "");
        assert_eq!(bare[9], "<unset>");
    }

    #[test]
    fn table_persistent_volume_claim() {
        let r = res("", "persistentvolumeclaims");
        let pvc = json!({
            "metadata": meta("data"),
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } }, "storageClassName": "fast", "volumeName": "pv-1" },
            "status": { "phase": "Bound", "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "capacity": { "storage": "10Gi" } },
        });
        let t = one(r, pvc.clone());
        assert_eq!(
            default_names(&t),
            s(&[
                "Name",
                "Status",
                "Volume",
                "Capacity",
                "Access Modes",
                "StorageClass",
                "Age"
            ])
        );
        assert_eq!(wide_names(&t), s(&["VolumeMode"]));
        assert_eq!(
            cells(r, pvc),
            vec![
                json!("data"),
                json!("Bound"),
                json!("pv-1"),
                json!("10Gi"),
                json!("RWO,ROX"),
                json!("fast"),
                json!("20m"),
                json!("<unset>"),
            ]
        );
        let pending = json!({
            "metadata": meta("data"),
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } }, "volumeMode": "Block" },
            "status": { "phase": "Pending" },
        });
        assert_eq!(
            cells(r, pending),
            vec![
                json!("data"),
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!(""),
                json!("20m"),
                json!("Block"),
            ]
        );
    }

    // ---------------------------------------------------------------- workloads

    fn template() -> Value {
        json!({
            "metadata": { "labels": { "app": "web" } },
            "spec": { "containers": [ { "name": "web", "image": "nginx:1.27" }, { "name": "sidecar", "image": "busybox" } ] },
        })
    }

    fn selector() -> Value {
        json!({
            "matchLabels": { "app": "web" },
            "matchExpressions": [
                { "key": "tier", "operator": "In", "values": ["b", "a", "a"] },
                { "key": "legacy", "operator": "DoesNotExist" },
                { "key": "env", "operator": "NotIn", "values": ["dev"] },
                { "key": "canary", "operator": "Exists" },
            ],
        })
    }

    const SELECTOR_TEXT: &str = "app=web,canary,env notin (dev),!legacy,tier in (a,b)";

    #[test]
    fn table_deployment() {
        let r = res("apps", "deployments");
        let d = json!({
            "metadata": meta("web"),
            "spec": { "replicas": 3, "selector": selector(), "template": template() },
            "status": { "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2 },
        });
        let t = one(r, d.clone());
        assert_eq!(
            default_names(&t),
            s(&["Name", "Ready", "Up-to-date", "Available", "Age"])
        );
        assert_eq!(wide_names(&t), s(&["Containers", "Images", "Selector"]));
        assert_eq!(
            cells(r, d),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("20m"),
                json!("web,sidecar"),
                json!("nginx:1.27,busybox"),
                json!(SELECTOR_TEXT),
            ]
        );
        let bad = json!({ "metadata": meta("bad"), "spec": { "selector": { "matchExpressions": [ { "key": "a", "operator": "Near" } ] } } });
        let c = cells(r, bad);
        assert_eq!(c[1], "0/1", "replicas default to 1");
        assert_eq!(c[7], "<invalid>");
        assert_eq!(cell(r, json!({ "metadata": meta("x") }), "Selector"), "");
    }

    #[test]
    fn table_replicaset() {
        let r = res("apps", "replicasets");
        let rs = json!({
            "metadata": meta("web-7d9f8"),
            "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "web", "pod-template-hash": "7d9f8" } }, "template": template() },
            "status": { "replicas": 3, "readyReplicas": 1 },
        });
        let t = one(r, rs.clone());
        assert_eq!(
            default_names(&t),
            s(&["Name", "Desired", "Current", "Ready", "Age"])
        );
        assert_eq!(wide_names(&t), s(&["Containers", "Images", "Selector"]));
        let defs = t["columnDefinitions"].as_array().expect("defs");
        assert_eq!(defs[1]["type"], "integer");
        assert_eq!(
            cells(r, rs),
            vec![
                json!("web-7d9f8"),
                json!(3),
                json!(3),
                json!(1),
                json!("20m"),
                json!("web,sidecar"),
                json!("nginx:1.27,busybox"),
                json!("app=web,pod-template-hash=7d9f8"),
            ]
        );
        let bad = json!({ "metadata": meta("bad"), "spec": { "replicas": 0, "selector": { "matchExpressions": [ { "key": "a", "operator": "In", "values": [] } ] } } });
        let c = cells(r, bad);
        assert_eq!(c[1], json!(0));
        assert_eq!(c[7], "<error>");
        assert_eq!(
            cell(
                r,
                json!({ "metadata": meta("x"), "spec": { "selector": {} } }),
                "Selector"
            ),
            "<none>"
        );
    }

    #[test]
    fn table_daemonset() {
        let r = res("apps", "daemonsets");
        let mut tpl = template();
        tpl["spec"]["nodeSelector"] = json!({ "kubernetes.io/os": "linux", "disk": "ssd" });
        let ds = json!({
            "metadata": meta("agent"),
            "spec": { "selector": { "matchLabels": { "app": "agent" } }, "template": tpl },
            "status": { "desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2 },
        });
        let t = one(r, ds.clone());
        assert_eq!(
            default_names(&t),
            s(&[
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age"
            ])
        );
        assert_eq!(wide_names(&t), s(&["Containers", "Images", "Selector"]));
        assert_eq!(
            cells(r, ds),
            vec![
                json!("agent"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("disk=ssd,kubernetes.io/os=linux"),
                json!("20m"),
                json!("web,sidecar"),
                json!("nginx:1.27,busybox"),
                json!("app=agent"),
            ]
        );
        assert_eq!(
            cell(r, json!({ "metadata": meta("x") }), "Node Selector"),
            "<none>"
        );
    }

    // ---------------------------------------------------------------- the table itself

    #[test]
    fn table_envelope_and_include_object() {
        let r = res("", "configmaps");
        let cm = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cfg"), "data": { "k": "v" } });
        let t = table(r, std::slice::from_ref(&cm), 42, Some("tok"), None);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"]["resourceVersion"], "42");
        assert_eq!(t["metadata"]["continue"], "tok");
        let obj = &t["rows"][0]["object"];
        assert_eq!(obj["kind"], "PartialObjectMetadata");
        assert_eq!(obj["metadata"]["name"], "cfg");
        assert!(obj.get("data").is_none());
        let t = table(r, std::slice::from_ref(&cm), 42, Some(""), Some("Object"));
        assert!(t["metadata"].get("continue").is_none());
        assert_eq!(t["rows"][0]["object"], cm);
        let t = table(r, &[cm], 42, None, Some("None"));
        assert_eq!(t["rows"][0]["object"], Value::Null);
        let t = table(r, &[], 1, None, None);
        assert_eq!(t["rows"], json!([]));
        assert_eq!(names(&t), s(&["Name", "Data", "Age"]));
    }

    #[test]
    fn table_wide_columns_have_priority_one() {
        let wide: &[(&str, &str, &[&str])] = &[
            (
                "",
                "pods",
                &["IP", "Node", "Nominated Node", "Readiness Gates"],
            ),
            ("", "services", &["Selector"]),
            (
                "",
                "nodes",
                &[
                    "Internal-IP",
                    "External-IP",
                    "OS-Image",
                    "Kernel-Version",
                    "Container-Runtime",
                ],
            ),
            ("apps", "deployments", &["Containers", "Images", "Selector"]),
            ("apps", "replicasets", &["Containers", "Images", "Selector"]),
            ("apps", "daemonsets", &["Containers", "Images", "Selector"]),
            ("", "persistentvolumes", &["VolumeMode"]),
            ("", "persistentvolumeclaims", &["VolumeMode"]),
            (
                "",
                "events",
                &["Subobject", "Source", "First Seen", "Count", "Name"],
            ),
            ("", "namespaces", &[]),
            ("", "endpoints", &[]),
            ("", "configmaps", &[]),
            ("", "secrets", &[]),
            ("", "serviceaccounts", &[]),
            ("discovery.k8s.io", "endpointslices", &[]),
            ("coordination.k8s.io", "leases", &[]),
        ];
        for (group, plural, expected) in wide {
            let t = table(res(group, plural), &[], 1, None, None);
            assert_eq!(wide_names(&t), s(expected), "{plural}");
            // Every column has a type, a description and priority 0 or 1; one name column.
            for c in t["columnDefinitions"].as_array().expect("defs") {
                assert!(c["type"].is_string() && c["format"].is_string(), "{plural}");
                assert!(matches!(c["priority"].as_i64(), Some(0 | 1)), "{plural}");
            }
            let name_cols = t["columnDefinitions"]
                .as_array()
                .expect("defs")
                .iter()
                .filter(|c| c["format"] == "name")
                .count();
            assert_eq!(name_cols, 1, "{plural}");
        }
    }

    #[test]
    fn table_human_duration() {
        let cases = [
            (-5, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (190, "3m10s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (2 * 365 * 86400, "2y"),
            (3 * 365 * 86400 + 20 * 86400, "3y20d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    // ---------------------------------------------------------------- garbage

    /// Values of every JSON type, to put where a field of another type belongs.
    fn poisons() -> Vec<Value> {
        vec![
            Value::Null,
            json!(true),
            json!(-1),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1.5e300),
            json!(""),
            json!("x"),
            json!("2024-13-45T99:99:99Z"),
            json!([]),
            json!([null, 1, "a", {}]),
            json!({}),
            json!({ "a": null }),
        ]
    }

    /// Every path (object keys and array indices) in `v`.
    fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    prefix.push(k.clone());
                    out.push(prefix.clone());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    prefix.push(i.to_string());
                    out.push(prefix.clone());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }

    fn replace(v: &mut Value, path: &[String], with: &Value) {
        let mut cur = v;
        for step in path {
            cur = match cur {
                Value::Object(m) => m.get_mut(step).expect("path exists"),
                Value::Array(a) => a
                    .get_mut(step.parse::<usize>().expect("index"))
                    .expect("path exists"),
                _ => unreachable!("paths walk containers only"),
            };
        }
        *cur = with.clone();
    }

    /// One realistic object per kind, with every field the printers read.
    fn samples() -> Vec<(&'static Resource, Value)> {
        let mut crash = pod(json!({
            "phase": "Running", "reason": "NodeLost", "nominatedNodeName": "n2",
            "podIPs": [ { "ip": "10.0.0.1" } ], "podIP": "10.0.0.1",
            "conditions": [ { "type": "Ready", "status": "True" }, { "type": "Initialized", "status": "True" }, { "type": "PodScheduled", "reason": "SchedulingGated" } ],
            "initContainerStatuses": [
                { "name": "proxy", "ready": true, "started": true, "restartCount": 1, "state": { "running": {} }, "lastState": { "terminated": { "finishedAt": ago(60) } } },
                { "name": "setup", "restartCount": 1, "state": { "terminated": { "exitCode": 1, "signal": 9, "reason": "Error" }, "waiting": { "reason": "X" } } },
            ],
            "containerStatuses": [
                { "name": "app", "ready": true, "restartCount": 4, "state": { "waiting": { "reason": "CrashLoopBackOff" }, "terminated": { "exitCode": 2, "signal": 1, "reason": "Completed" }, "running": {} }, "lastState": { "terminated": { "finishedAt": ago(600) } } },
            ],
        }));
        crash["metadata"]["deletionTimestamp"] = json!(ago(5));
        crash["spec"]["initContainers"] =
            json!([ { "name": "proxy", "restartPolicy": "Always" }, { "name": "setup" } ]);
        crash["spec"]["readinessGates"] = json!([ { "conditionType": "Ready" } ]);
        let mut samples = vec![
            (res("", "pods"), crash),
            (
                res("", "services"),
                service(
                    json!({ "type": "LoadBalancer", "clusterIP": "1.1.1.1", "clusterIPs": ["1.1.1.1"], "externalIPs": ["2.2.2.2"], "externalName": "x", "selector": { "a": "b" }, "ports": [ { "port": 80, "nodePort": 30000, "protocol": "TCP" } ] }),
                    json!({ "loadBalancer": { "ingress": [ { "ip": "3.3.3.3", "hostname": "h" } ] } }),
                ),
            ),
            (
                res("", "endpoints"),
                json!({ "metadata": meta("e"), "subsets": [ { "addresses": [ { "ip": "::1" } ], "ports": [ { "port": 1 } ] } ] }),
            ),
            (
                res("discovery.k8s.io", "endpointslices"),
                json!({ "metadata": meta("s"), "addressType": "IPv4", "ports": [ { "port": 1, "name": "n" } ], "endpoints": [ { "addresses": ["1.1.1.1"] } ] }),
            ),
            (
                res("", "nodes"),
                node(json!([ { "type": "Ready", "status": "True" } ]), true),
            ),
            (
                res("", "namespaces"),
                json!({ "metadata": meta("ns"), "status": { "phase": "Active" } }),
            ),
            (
                res("", "configmaps"),
                json!({ "metadata": meta("c"), "data": { "a": "b" }, "binaryData": { "c": "" } }),
            ),
            (
                res("", "secrets"),
                json!({ "metadata": meta("s"), "type": "Opaque", "data": { "a": "" } }),
            ),
            (
                res("", "serviceaccounts"),
                json!({ "metadata": meta("sa"), "secrets": [ { "name": "x" } ] }),
            ),
            (
                res("", "events"),
                json!({
                    "metadata": meta("ev"), "involvedObject": { "kind": "Pod", "name": "p", "fieldPath": "f" },
                    "type": "Normal", "reason": "R", "message": " m ", "count": 2,
                    "firstTimestamp": ago(60), "lastTimestamp": ago(30), "eventTime": ago(60),
                    "series": { "count": 3, "lastObservedTime": ago(10) },
                    "source": { "component": "c", "host": "h" }, "reportingComponent": "rc", "reportingInstance": "ri",
                }),
            ),
            (
                res("coordination.k8s.io", "leases"),
                json!({ "metadata": meta("l"), "spec": { "holderIdentity": "h" } }),
            ),
            (
                res("", "persistentvolumes"),
                json!({
                    "metadata": { "name": "pv", "creationTimestamp": ago(60), "deletionTimestamp": ago(1), "annotations": { "volume.beta.kubernetes.io/storage-class": "x" } },
                    "spec": { "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Delete", "claimRef": { "namespace": "a", "name": "b" }, "storageClassName": "s", "volumeMode": "Block" },
                    "status": { "phase": "Bound", "reason": "r" },
                }),
            ),
            (
                res("", "persistentvolumeclaims"),
                json!({
                    "metadata": { "name": "pvc", "annotations": { "volume.beta.kubernetes.io/storage-class": "x" } },
                    "spec": { "volumeName": "pv", "storageClassName": "s", "volumeMode": "Block" },
                    "status": { "phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": { "storage": "1Gi" } },
                }),
            ),
        ];
        for plural in ["deployments", "replicasets", "daemonsets"] {
            let mut tpl = template();
            tpl["spec"]["nodeSelector"] = json!({ "a": "b" });
            samples.push((
                res("apps", plural),
                json!({
                    "metadata": meta("w"),
                    "spec": { "replicas": 2, "selector": selector(), "template": tpl },
                    "status": { "replicas": 2, "readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "desiredNumberScheduled": 1, "currentNumberScheduled": 1, "numberReady": 1, "updatedNumberScheduled": 1, "numberAvailable": 1 },
                }),
            ));
        }
        samples
    }

    fn assert_rows_fit(r: &Resource, objs: &[Value]) {
        let t = table(r, objs, 1, None, None);
        let width = t["columnDefinitions"].as_array().expect("defs").len();
        let rows = t["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), objs.len());
        for row in rows {
            let cells = row["cells"].as_array().expect("cells");
            assert_eq!(cells.len(), width, "{}: {row}", r.kind);
            assert!(
                cells.iter().all(|c| c.is_string() || c.is_i64()),
                "{}: {row}",
                r.kind
            );
        }
    }

    #[test]
    fn table_samples_cover_every_kind() {
        let covered: Vec<&str> = samples().iter().map(|(r, _)| r.kind).collect();
        for r in RESOURCES {
            assert!(covered.contains(&r.kind), "no sample for {}", r.kind);
        }
    }

    #[test]
    fn table_garbage_objects_do_not_panic() {
        for r in RESOURCES {
            let mut objs = poisons();
            objs.push(json!({ "metadata": 5, "spec": "x", "status": [1] }));
            objs.push(json!({ "metadata": { "name": 5, "creationTimestamp": 7, "labels": [1], "deletionTimestamp": {} } }));
            assert_rows_fit(r, &objs);
        }
        // Every field of a realistic object, in turn, of every other type.
        for (r, sample) in samples() {
            assert_rows_fit(r, std::slice::from_ref(&sample));
            let mut all = Vec::new();
            paths(&sample, &mut Vec::new(), &mut all);
            let mut objs = Vec::new();
            for path in &all {
                for p in poisons() {
                    let mut o = sample.clone();
                    replace(&mut o, path, &p);
                    objs.push(o);
                }
            }
            assert_rows_fit(r, &objs);
        }
    }
}
