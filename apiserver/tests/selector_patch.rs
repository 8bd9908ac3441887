//! Example-based tests of label/field selectors and the three patch flavours, modelled on
//! what kubectl sends and on the RFC 6902 and RFC 7386 example semantics.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use apiserver::patch::{PatchError, json_merge_patch, json_patch, strategic_merge_patch};
use apiserver::selector::{LabelSelector, field_value, parse_field_selector, parse_label_selector};
use serde_json::{Value, json};

/// Fails if any object key in `v` is a strategic merge patch directive.
fn assert_no_directives(v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                assert!(
                    !(k == "$patch"
                        || k == "$retainKeys"
                        || k.starts_with("$setElementOrder/")
                        || k.starts_with("$deleteFromPrimitiveList/")),
                    "directive {k} left in result"
                );
                assert_no_directives(v);
            }
        }
        Value::Array(a) => a.iter().for_each(assert_no_directives),
        _ => {}
    }
}

fn smp(target: &Value, patch: Value, kind: &str) -> Value {
    let out = strategic_merge_patch(target, &patch, kind).unwrap();
    assert_no_directives(&out);
    out
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}, "finalizers": ["a/b"]},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "busybox:1.34",
                            "command": ["sleep", "3600"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443, "name": "https"}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                        },
                        {"name": "sidecar", "image": "envoy:1", "args": ["--x"]},
                        {"name": "logger", "image": "fluent:2"}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "k", "operator": "Exists"}]
                }
            }
        }
    })
}

// ------------------------------------------------------------------ strategic merge patch

#[test]
fn set_image_keeps_other_containers_and_fields() {
    let d = deployment();
    let out = smp(
        &d,
        json!({"spec":{"template":{"spec":{"containers":[{"name":"app","image":"busybox:1.35"}]}}}}),
        "Deployment",
    );
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["app", "sidecar", "logger"]);
    assert_eq!(containers[0]["image"], "busybox:1.35");
    assert_eq!(containers[0]["command"], json!(["sleep", "3600"]));
    assert_eq!(
        containers[0]["env"],
        d["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert_eq!(
        containers[1],
        d["spec"]["template"]["spec"]["containers"][1]
    );
    // Everything else is untouched.
    let mut expect = d.clone();
    expect["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.35");
    assert_eq!(out, expect);
}

#[test]
fn set_image_on_a_pod_and_middle_container() {
    let pod = json!({"kind": "Pod", "spec": deployment()["spec"]["template"]["spec"].clone()});
    let out = smp(
        &pod,
        json!({"spec":{"containers":[{"name":"sidecar","image":"envoy:2"}]}}),
        "Pod",
    );
    assert_eq!(
        names(&out["spec"]["containers"]),
        ["app", "sidecar", "logger"]
    );
    assert_eq!(
        out["spec"]["containers"][1],
        json!({"name": "sidecar", "image": "envoy:2", "args": ["--x"]})
    );
}

#[test]
fn env_merges_by_name() {
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"B","value":"3"},{"name":"C","value":"4"}]}]}}}}),
        "Deployment",
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
    );
}

#[test]
fn env_value_from_replaces_value() {
    // kubectl edit switching an env var from value to valueFrom sends value: null.
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"A","value":null,"valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}]}}}}),
        "Deployment",
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"][0],
        json!({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    );
}

#[test]
fn patch_delete_removes_a_container() {
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}),
        "Deployment",
    );
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["app", "logger"]
    );
    // Deleting something absent is fine.
    let out = smp(
        &out,
        json!({"spec":{"template":{"spec":{"containers":[{"name":"nope","$patch":"delete"}]}}}}),
        "Deployment",
    );
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["app", "logger"]
    );
}

#[test]
fn kubectl_edit_two_way_patch_removing_an_env_var() {
    let patch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"app"},{"name":"sidecar"},{"name":"logger"}],
        "containers":[{"$setElementOrder/env":[{"name":"A"}],"env":[{"$patch":"delete","name":"B"}],"name":"app"}]
    }}}});
    let out = smp(&deployment(), patch, "Deployment");
    let c = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(c), ["app", "sidecar", "logger"]);
    assert_eq!(c[0]["env"], json!([{"name": "A", "value": "1"}]));
}

#[test]
fn retain_keys_drops_unlisted_fields() {
    let out = smp(
        &deployment(),
        json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}),
        "Deployment",
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    // On a volume (strategy merge,retainKeys): switching emptyDir to hostPath.
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{"volumes":[{"$retainKeys":["hostPath","name"],"name":"data","hostPath":{"path":"/srv"}}]}}}}),
        "Deployment",
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "hostPath": {"path": "/srv"}}])
    );
    // A field set in the patch must be retained.
    let err = strategic_merge_patch(
        &deployment(),
        &json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{}}}}),
        "Deployment",
    );
    assert!(matches!(err, Err(PatchError::Strategic { .. })), "{err:?}");
}

#[test]
fn set_element_order_reorders_containers() {
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"logger"},{"name":"app"},{"name":"sidecar"}],
            "containers":[{"name":"app","image":"busybox:1.36"}]
        }}}}),
        "Deployment",
    );
    let c = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(c), ["logger", "app", "sidecar"]);
    assert_eq!(c[1]["image"], "busybox:1.36");
    assert_eq!(c[1]["command"], json!(["sleep", "3600"]));
}

#[test]
fn set_element_order_alone_and_with_new_items() {
    // The order directive without the list itself reorders.
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"sidecar"},{"name":"logger"},{"name":"app"}]}}}}),
        "Deployment",
    );
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["sidecar", "logger", "app"]
    );
    // kubectl apply adding a container at the end.
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"app"},{"name":"sidecar"},{"name":"logger"},{"name":"new"}],
            "containers":[{"name":"new","image":"nginx"}]
        }}}}),
        "Deployment",
    );
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["app", "sidecar", "logger", "new"]
    );
    // An order list that forgets items, or names unknown ones, is tolerated.
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"logger"},{"name":"ghost"},{"bogus":1},"x"]}}}}),
        "Deployment",
    );
    let mut n = names(&out["spec"]["template"]["spec"]["containers"]);
    n.sort();
    assert_eq!(n, ["app", "logger", "sidecar"]);
    // On a scalar list.
    let out = smp(
        &json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"]}}),
        "ConfigMap",
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "b", "a"]));
}

#[test]
fn null_removes_a_label_and_labels_merge() {
    let out = smp(
        &deployment(),
        json!({"metadata":{"labels":{"tier":null,"env":"prod"}}}),
        "Deployment",
    );
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "env": "prod"})
    );
    // kubectl annotate on an object without annotations.
    let out = smp(
        &out,
        json!({"metadata":{"annotations":{"note":"x","gone":null}}}),
        "Deployment",
    );
    assert_eq!(out["metadata"]["annotations"], json!({"note": "x"}));
}

#[test]
fn ports_merge_by_container_port() {
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"app","ports":[{"containerPort":80,"protocol":"TCP"},{"containerPort":8080}]}]}}}}),
        "Deployment",
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([
            {"containerPort": 80, "name": "http", "protocol": "TCP"},
            {"containerPort": 8080},
            {"containerPort": 443, "name": "https"}
        ])
    );
}

#[test]
fn volume_mounts_by_mount_path_and_volumes_by_name() {
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{
            "containers":[{"name":"app","volumeMounts":[{"mountPath":"/data","readOnly":true}]}],
            "volumes":[{"name":"cfg","configMap":{"name":"c"}}]
        }}}}),
        "Deployment",
    );
    let spec = &out["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data", "readOnly": true}])
    );
    assert_eq!(names(&spec["volumes"]), ["cfg", "data"]);
}

#[test]
fn replace_directives() {
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"only","image":"x"},{"$patch":"replace"}]}}}}),
        "Deployment",
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );
    let out = smp(
        &deployment(),
        json!({"metadata":{"labels":{"$patch":"replace","z":"1"}}}),
        "Deployment",
    );
    assert_eq!(out["metadata"]["labels"], json!({"z": "1"}));
    // $patch: delete on a map deletes it.
    let out = smp(
        &deployment(),
        json!({"spec":{"strategy":{"$patch":"delete"}}}),
        "Deployment",
    );
    assert!(out["spec"].get("strategy").is_none());
}

#[test]
fn unmerged_lists_replace() {
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{"tolerations":[{"key":"other","operator":"Exists"}]}}}}),
        "Deployment",
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "other", "operator": "Exists"}])
    );
    let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]}});
    let out = smp(
        &node,
        json!({"spec":{"taints":[{"key":"b","effect":"NoExecute"}]},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.2"}]}}),
        "Node",
    );
    assert_eq!(
        out["spec"]["taints"],
        json!([{"key": "b", "effect": "NoExecute"}])
    );
    assert_eq!(
        out["status"]["addresses"],
        json!([{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n1"}])
    );
    let slice = json!({"endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]});
    let out = smp(
        &slice,
        json!({"endpoints": [{"addresses": ["10.0.0.2"]}]}),
        "EndpointSlice",
    );
    assert_eq!(out["endpoints"], json!([{"addresses": ["10.0.0.2"]}]));
}

#[test]
fn empty_list_patch_leaves_merged_list() {
    let out = smp(
        &deployment(),
        json!({"spec":{"template":{"spec":{"containers":[]}}}}),
        "Deployment",
    );
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["app", "sidecar", "logger"]
    );
}

#[test]
fn service_ports_owner_references_finalizers_conditions() {
    let svc = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}, "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let out = smp(
        &svc,
        json!({"metadata":{"ownerReferences":[{"uid":"1","controller":true},{"uid":"2","name":"b"}],"finalizers":["x"]},"spec":{"ports":[{"port":80,"name":"http"}]}}),
        "Service",
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443}])
    );
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "1", "name": "a", "controller": true}, {"uid": "2", "name": "b"}])
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["x"]));
    let out = smp(
        &out,
        json!({"metadata":{"finalizers":["y","x"]}}),
        "Service",
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["y", "x"]));
    let out = smp(
        &out,
        json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["x"]}}),
        "Service",
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["y"]));

    let pod = json!({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}});
    let out = smp(
        &pod,
        json!({"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"},{"type":"Initialized","status":"True"}]}}),
        "Pod",
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True"},
            {"type": "Initialized", "status": "True"}
        ])
    );
}

#[test]
fn scale_and_new_fields_are_cleaned() {
    let out = smp(
        &json!({"spec": {"replicas": 1}}),
        json!({"spec": {"replicas": 3}}),
        "Scale",
    );
    assert_eq!(out, json!({"spec": {"replicas": 3}}));
    // A whole new container list carrying directives and nulls.
    let out = smp(
        &json!({"spec": {}}),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [
                {"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}], "resources": null},
                {"name": "b", "securityContext": {"$patch": "replace", "privileged": false}, "ports": [{"containerPort": 1, "$retainKeys": ["containerPort"]}]},
                {"name": "gone", "$patch": "delete"}
            ]
        }}),
        "Pod",
    );
    assert_eq!(
        out,
        json!({"spec": {"containers": [
            {"name": "b", "securityContext": {"privileged": false}, "ports": [{"containerPort": 1}]},
            {"name": "a", "env": [{"name": "X", "value": "1"}]}
        ]}})
    );
}

#[test]
fn smp_errors_are_clear() {
    let e = strategic_merge_patch(
        &deployment(),
        &json!({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}),
        "Deployment",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid strategic merge patch at spec.template.spec.containers[]: list item {\"image\":\"x\"} does not contain the merge key \"name\""
    );
    assert!(
        strategic_merge_patch(&deployment(), &json!({"$patch": "bogus"}), "Deployment").is_err()
    );
}

// ------------------------------------------------------------------ JSON patch (RFC 6902)

#[test]
fn rfc6902_style_cases() {
    let ok = [
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz", "value": "qux"}]),
            json!({"foo": "bar", "baz": "qux"}),
        ),
        (
            json!({"foo": ["bar", "baz"]}),
            json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
            json!({"foo": ["bar", "qux", "baz"]}),
        ),
        (
            json!({"baz": "qux", "foo": "bar"}),
            json!([{"op": "remove", "path": "/baz"}]),
            json!({"foo": "bar"}),
        ),
        (
            json!({"foo": ["bar", "qux", "baz"]}),
            json!([{"op": "remove", "path": "/foo/1"}]),
            json!({"foo": ["bar", "baz"]}),
        ),
        (
            json!({"baz": "qux", "foo": "bar"}),
            json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
            json!({"baz": "boo", "foo": "bar"}),
        ),
        (
            json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
            json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
            json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
        ),
        (
            json!({"foo": ["all", "grass", "cows", "eat"]}),
            json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
            json!({"foo": ["all", "cows", "eat", "grass"]}),
        ),
        (
            json!({"baz": "qux", "foo": ["a", 2, "c"]}),
            json!([{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]),
            json!({"baz": "qux", "foo": ["a", 2, "c"]}),
        ),
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
            json!({"foo": "bar", "child": {"grandchild": {}}}),
        ),
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
            json!({"foo": "bar", "baz": "qux"}),
        ),
        (
            json!({"foo": ["bar"]}),
            json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
            json!({"foo": ["bar", ["abc", "def"]]}),
        ),
        (
            json!({"/": 9, "~1": 10}),
            json!([{"op": "test", "path": "/~01", "value": 10}, {"op": "test", "path": "/~1", "value": 9}]),
            json!({"/": 9, "~1": 10}),
        ),
        (
            json!({"a": {"b": 1}}),
            json!([{"op": "copy", "from": "/a", "path": "/c"}, {"op": "replace", "path": "/c/b", "value": 2}]),
            json!({"a": {"b": 1}, "c": {"b": 2}}),
        ),
    ];
    for (doc, ops, want) in ok {
        assert_eq!(json_patch(&doc, &ops).unwrap(), want, "{ops}");
    }
    let failing = [
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
        ),
        (
            json!({"/": 9, "~1": 10}),
            json!([{"op": "test", "path": "/~01", "value": "10"}]),
        ),
        (
            json!({"baz": "qux"}),
            json!([{"op": "test", "path": "/baz", "value": "bar"}]),
        ),
        (
            json!({"foo": ["bar"]}),
            json!([{"op": "add", "path": "/foo/2", "value": 1}]),
        ),
        (
            json!({"foo": ["bar"]}),
            json!([{"op": "replace", "path": "/foo/-", "value": 1}]),
        ),
    ];
    for (doc, ops) in failing {
        assert!(json_patch(&doc, &ops).is_err(), "{ops}");
    }
}

#[test]
fn json_patch_errors_name_the_operation_and_change_nothing() {
    let doc = deployment();
    let ops = json!([
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "remove", "path": "/spec/template/spec/containers/7"}
    ]);
    let e = json_patch(&doc, &ops).unwrap_err();
    assert_eq!(
        e.to_string(),
        "JSON patch operation 1 (remove) failed: path \"/spec/template/spec/containers/7\": array index 7 is out of bounds (length 3)"
    );
    assert_eq!(doc, deployment());
    // kubectl patch --type=json for an image.
    let out = json_patch(&doc, &json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "busybox:1.35"}])).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.35"
    );
}

// ------------------------------------------------------------------ JSON merge patch (RFC 7386)

#[test]
fn rfc7386_style_cases() {
    let mut doc = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["example", "sample"], "content": "This will be unchanged"});
    json_merge_patch(
        &mut doc,
        &json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": null}, "tags": ["example"]}),
    );
    assert_eq!(
        doc,
        json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"], "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
    );
    let mut d = deployment();
    json_merge_patch(
        &mut d,
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "x"}]}}}}),
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"],
        json!([{"name": "x"}])
    );
}

// ------------------------------------------------------------------ selectors

#[test]
fn label_selectors_on_objects() {
    let sel = parse_label_selector("app=web, tier in (fe,be), !legacy, env notin (dev)").unwrap();
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), "web".to_string());
    labels.insert("tier".to_string(), "fe".to_string());
    assert!(sel.matches(&labels));
    labels.insert("env".to_string(), "dev".to_string());
    assert!(!sel.matches(&labels));
    // A Deployment's selector against its template labels (a JSON map).
    let d = deployment();
    let s = LabelSelector::from_api(&json!({"matchLabels": {"app": "web"}})).unwrap();
    assert!(
        s.matches(
            d["spec"]["template"]["metadata"]["labels"]
                .as_object()
                .unwrap()
        )
    );
    let e = parse_label_selector("app=web,").unwrap_err().to_string();
    assert_eq!(e, "found '', expected: identifier after ','");
    let e = parse_label_selector("app in ()x").unwrap_err().to_string();
    assert_eq!(e, "found 'x', expected: ',' or 'end of string'");
}

#[test]
fn field_selectors_on_objects() {
    let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1", "hostNetwork": false}, "status": {"phase": "Running"}});
    let f =
        parse_field_selector("spec.nodeName=n1,status.phase!=Failed,metadata.namespace==default")
            .unwrap();
    assert!(f.matches(&|path: &str| Some(field_value(&pod, path).unwrap_or_default())));
    assert_eq!(f.requirements().len(), 3);
    let f = parse_field_selector("spec.hostNetwork=false,spec.schedulerName=").unwrap();
    assert!(f.matches_object(&pod));
    for field in parse_field_selector("spec.bogus=1").unwrap().fields() {
        assert_eq!(
            format!("field label not supported: {field}"),
            "field label not supported: spec.bogus"
        );
    }
}
