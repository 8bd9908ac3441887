//! Each filter plugin's pass and fail cases, with upstream's exact reason text.

#![allow(clippy::unwrap_used)]

mod common;

use common::{NodeB, PodB};
use scheduler::framework::{
    FILTER_PLUGINS, FilterPlugin, NodeInfo, node_affinity, node_name, node_ports,
    node_resources_fit, node_unschedulable, run_filters, taint_toleration,
};
use serde_json::json;

fn info(node: NodeB) -> NodeInfo {
    NodeInfo::new(node.build())
}

fn reason(r: Result<(), Vec<String>>) -> Vec<String> {
    r.err().unwrap_or_default()
}

#[test]
fn node_unschedulable_filter() {
    let cordoned = info(NodeB::new("n").unschedulable());
    let plain = PodB::new("p").build();
    assert_eq!(
        reason(node_unschedulable(&plain, &cordoned)),
        ["node(s) were unschedulable"]
    );
    assert!(node_unschedulable(&plain, &info(NodeB::new("n"))).is_ok());
    let tolerating = PodB::new("p")
        .toleration(json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}))
        .build();
    assert!(node_unschedulable(&tolerating, &cordoned).is_ok());
    let wrong_effect = PodB::new("p")
        .toleration(json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoExecute"}))
        .build();
    assert!(node_unschedulable(&wrong_effect, &cordoned).is_err());
    let everything = PodB::new("p")
        .toleration(json!({"operator": "Exists"}))
        .build();
    assert!(node_unschedulable(&everything, &cordoned).is_ok());
}

#[test]
fn node_name_filter() {
    let n = info(NodeB::new("n1"));
    assert!(node_name(&PodB::new("p").build(), &n).is_ok());
    assert!(node_name(&PodB::new("p").node("n1").build(), &n).is_ok());
    assert_eq!(
        reason(node_name(&PodB::new("p").node("n2").build(), &n)),
        ["node(s) didn't match the requested node name"]
    );
}

#[test]
fn node_resources_fit_filter() {
    let mut n = info(
        NodeB::new("n")
            .cpu("1")
            .memory("1Gi")
            .alloc("ephemeral-storage", "1Gi")
            .alloc("pods", "2"),
    );
    n.add_pod(PodB::new("a").cpu("600m").memory("512Mi").node("n").build());
    assert!(node_resources_fit(&PodB::new("p").cpu("400m").build(), &n).is_ok());
    assert_eq!(
        reason(node_resources_fit(&PodB::new("p").cpu("401m").build(), &n)),
        ["Insufficient cpu"]
    );
    assert_eq!(
        reason(node_resources_fit(
            &PodB::new("p")
                .cpu("1")
                .memory("1Gi")
                .request("ephemeral-storage", "2Gi")
                .build(),
            &n
        )),
        [
            "Insufficient cpu",
            "Insufficient memory",
            "Insufficient ephemeral-storage"
        ]
    );
    // A pod requesting nothing only needs a pod slot.
    n.add_pod(PodB::new("b").node("n").build());
    assert_eq!(
        reason(node_resources_fit(&PodB::new("p").build(), &n)),
        ["Too many pods"]
    );
    assert_eq!(
        reason(node_resources_fit(&PodB::new("p").cpu("2").build(), &n)),
        ["Too many pods", "Insufficient cpu"]
    );
}

#[test]
fn resources_fit_counts_init_containers_and_overhead() {
    let n = info(NodeB::new("n").cpu("1"));
    let pod = PodB::new("p")
        .cpu("100m")
        .spec_field(
            "initContainers",
            json!([{"name": "i", "resources": {"requests": {"cpu": "900m"}}}]),
        )
        .spec_field("overhead", json!({"cpu": "100m"}))
        .build();
    // max(100m, 900m) + 100m overhead = 1000m: fits exactly.
    assert!(node_resources_fit(&pod, &n).is_ok());
    let pod = PodB::new("p")
        .cpu("100m")
        .spec_field(
            "initContainers",
            json!([{"name": "i", "resources": {"requests": {"cpu": "901m"}}}]),
        )
        .spec_field("overhead", json!({"cpu": "100m"}))
        .build();
    assert_eq!(reason(node_resources_fit(&pod, &n)), ["Insufficient cpu"]);
}

#[test]
fn node_affinity_filter() {
    let n = info(
        NodeB::new("n1")
            .label("zone", "a")
            .label("gen", "5")
            .label("ssd", "true"),
    );
    let fails = |p: PodB| reason(node_affinity(&p.build(), &n));
    let passes = |p: PodB| node_affinity(&p.build(), &n).is_ok();
    let msg = ["node(s) didn't match Pod's node affinity/selector"];

    assert!(passes(PodB::new("p")));
    assert!(passes(PodB::new("p").node_selector("zone", "a")));
    assert_eq!(fails(PodB::new("p").node_selector("zone", "b")), msg);
    assert_eq!(fails(PodB::new("p").node_selector("missing", "")), msg);

    let term = |exprs: serde_json::Value| {
        PodB::new("p").required_terms(json!([{"matchExpressions": exprs}]))
    };
    assert!(passes(term(
        json!([{"key": "zone", "operator": "In", "values": ["a", "b"]}])
    )));
    assert_eq!(
        fails(term(
            json!([{"key": "zone", "operator": "In", "values": ["b"]}])
        )),
        msg
    );
    assert!(passes(term(
        json!([{"key": "zone", "operator": "NotIn", "values": ["b"]}])
    )));
    assert!(passes(term(
        json!([{"key": "other", "operator": "NotIn", "values": ["b"]}])
    )));
    assert_eq!(
        fails(term(
            json!([{"key": "zone", "operator": "NotIn", "values": ["a"]}])
        )),
        msg
    );
    assert!(passes(term(json!([{"key": "ssd", "operator": "Exists"}]))));
    assert_eq!(
        fails(term(json!([{"key": "gpu", "operator": "Exists"}]))),
        msg
    );
    assert!(passes(term(
        json!([{"key": "gpu", "operator": "DoesNotExist"}])
    )));
    assert_eq!(
        fails(term(json!([{"key": "ssd", "operator": "DoesNotExist"}]))),
        msg
    );
    assert!(passes(term(
        json!([{"key": "gen", "operator": "Gt", "values": ["4"]}])
    )));
    assert_eq!(
        fails(term(
            json!([{"key": "gen", "operator": "Gt", "values": ["5"]}])
        )),
        msg
    );
    assert!(passes(term(
        json!([{"key": "gen", "operator": "Lt", "values": ["6"]}])
    )));
    assert_eq!(
        fails(term(
            json!([{"key": "zone", "operator": "Lt", "values": ["6"]}])
        )),
        msg
    );
    // Malformed requirements match nothing.
    assert_eq!(
        fails(term(
            json!([{"key": "gen", "operator": "Gt", "values": ["x"]}])
        )),
        msg
    );
    assert_eq!(
        fails(term(
            json!([{"key": "zone", "operator": "In", "values": []}])
        )),
        msg
    );
    assert_eq!(
        fails(term(
            json!([{"key": "zone", "operator": "Bogus", "values": ["a"]}])
        )),
        msg
    );
    // Expressions in a term are ANDed; terms are ORed.
    assert_eq!(
        fails(term(json!([
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "ssd", "operator": "DoesNotExist"}
        ]))),
        msg
    );
    assert!(passes(PodB::new("p").required_terms(json!([
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]},
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    ]))));
    // An empty term matches nothing; so does an empty term list.
    assert_eq!(fails(PodB::new("p").required_terms(json!([{}]))), msg);
    assert_eq!(fails(PodB::new("p").required_terms(json!([]))), msg);
    // matchFields on metadata.name.
    let field = |op: &str, v: &str| {
        PodB::new("p").required_terms(
            json!([{"matchFields": [{"key": "metadata.name", "operator": op, "values": [v]}]}]),
        )
    };
    assert!(passes(field("In", "n1")));
    assert_eq!(fails(field("In", "n2")), msg);
    assert!(passes(field("NotIn", "n2")));
    assert_eq!(fails(field("NotIn", "n1")), msg);
    // nodeSelector and affinity must both hold.
    assert_eq!(fails(field("In", "n1").node_selector("zone", "b")), msg);
}

#[test]
fn taint_toleration_filter() {
    let n = info(
        NodeB::new("n")
            .taint("soft", "", "PreferNoSchedule")
            .taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
            .taint("dedicated", "gpu", "NoExecute"),
    );
    let p = PodB::new("p");
    assert_eq!(
        reason(taint_toleration(&p.build(), &n)),
        ["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"]
    );
    let p = PodB::new("p").toleration(
        json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}),
    );
    assert_eq!(
        reason(taint_toleration(&p.build(), &n)),
        ["node(s) had untolerated taint {dedicated: gpu}"]
    );
    let wrong_value = PodB::new("p")
        .toleration(json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}))
        .toleration(json!({"key": "dedicated", "operator": "Equal", "value": "cpu"}));
    assert!(taint_toleration(&wrong_value.build(), &n).is_err());
    let ok = PodB::new("p")
        .toleration(json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}))
        .toleration(json!({"key": "dedicated", "value": "gpu", "effect": "NoExecute"}));
    assert!(
        taint_toleration(&ok.build(), &n).is_ok(),
        "PreferNoSchedule does not filter"
    );
}

#[test]
fn not_ready_nodes_act_as_tainted() {
    let plain = PodB::new("p").build();
    let not_ready = info(NodeB::new("n").condition("Ready", "False"));
    assert_eq!(
        reason(taint_toleration(&plain, &not_ready)),
        ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    );
    let unknown = info(NodeB::new("n").condition("Ready", "Unknown"));
    assert_eq!(
        reason(taint_toleration(&plain, &unknown)),
        ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]
    );
    let never = info(NodeB::new("n").no_conditions());
    assert_eq!(
        reason(taint_toleration(&plain, &never)),
        ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    );
    let pressure = info(NodeB::new("n").condition("DiskPressure", "True"));
    assert_eq!(
        reason(taint_toleration(&plain, &pressure)),
        ["node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }"]
    );
    // Already tainted by a lifecycle controller: the node's own taint, not a second one.
    let tainted = info(NodeB::new("n").condition("Ready", "False").taint(
        "node.kubernetes.io/not-ready",
        "",
        "NoExecute",
    ));
    let tolerates_noexecute = PodB::new("p")
        .toleration(json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}))
        .build();
    assert!(taint_toleration(&tolerates_noexecute, &tainted).is_err());
    let tolerates_all = PodB::new("p")
        .toleration(json!({"operator": "Exists"}))
        .build();
    assert!(taint_toleration(&tolerates_all, &not_ready).is_ok());
    assert!(taint_toleration(&plain, &info(NodeB::new("n"))).is_ok());
}

#[test]
fn node_ports_filter() {
    let mut n = info(NodeB::new("n"));
    n.add_pod(PodB::new("a").host_port(80, "", "").node("n").build());
    n.add_pod(
        PodB::new("b")
            .host_port(53, "UDP", "10.0.0.1")
            .node("n")
            .build(),
    );
    let msg = ["node(s) didn't have free ports for the requested pod ports"];
    let check = |p: PodB| reason(node_ports(&p.build(), &n));
    assert_eq!(check(PodB::new("p").host_port(80, "TCP", "")), msg);
    assert_eq!(check(PodB::new("p").host_port(80, "", "10.0.0.9")), msg);
    assert!(check(PodB::new("p").host_port(80, "UDP", "")).is_empty());
    assert!(check(PodB::new("p").host_port(81, "", "")).is_empty());
    assert_eq!(check(PodB::new("p").host_port(53, "UDP", "")), msg);
    assert_eq!(check(PodB::new("p").host_port(53, "UDP", "10.0.0.1")), msg);
    assert!(check(PodB::new("p").host_port(53, "UDP", "10.0.0.2")).is_empty());
    assert!(check(PodB::new("p")).is_empty());
    // Sidecars' host ports count; plain init containers' do not.
    let sidecar = PodB::new("p").spec_field(
        "initContainers",
        json!([{"name": "s", "restartPolicy": "Always", "ports": [{"containerPort": 80, "hostPort": 80}]}]),
    );
    assert_eq!(check(sidecar), msg);
    let init = PodB::new("p").spec_field(
        "initContainers",
        json!([{"name": "s", "ports": [{"containerPort": 80, "hostPort": 80}]}]),
    );
    assert!(check(init).is_empty());
}

#[test]
fn first_failing_plugin_decides() {
    assert_eq!(
        FILTER_PLUGINS.map(FilterPlugin::name),
        [
            "NodeUnschedulable",
            "NodeName",
            "TaintToleration",
            "NodeAffinity",
            "NodePorts",
            "NodeResourcesFit"
        ]
    );
    let n = info(NodeB::new("n").cpu("1").taint("t", "v", "NoSchedule"));
    let pod = PodB::new("p").cpu("2").node_selector("zone", "x").build();
    assert_eq!(
        reason(run_filters(&pod, &n)),
        ["node(s) had untolerated taint {t: v}"]
    );
    let pod = PodB::new("p")
        .cpu("2")
        .toleration(json!({"key": "t", "operator": "Exists"}))
        .build();
    assert_eq!(reason(run_filters(&pod, &n)), ["Insufficient cpu"]);
}
