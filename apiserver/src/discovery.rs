//! Discovery documents: `/api`, `/apis`, `/apis/GROUP`, the resource lists of each
//! group/version (names, kinds, scope, verbs, short names, categories, subresources), and
//! `/version`. kubectl builds its REST mapping from these.

use serde_json::{Value, json};

use crate::registry::{self, RESOURCES, VERBS};

/// The Kubernetes version this server reports (the API surface it follows).
pub const KUBE_MAJOR: &str = "1";
/// Minor version.
pub const KUBE_MINOR: &str = "30";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-berth.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none (rust)",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
        .collect();
    json!({ "name": name, "versions": vs, "preferredVersion": vs[0] })
}

/// `/apis`.
pub fn groups() -> Value {
    let groups: Vec<Value> = registry::groups()
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/GROUP`.
pub fn group(name: &str) -> Option<Value> {
    let (g, vs) = registry::groups().into_iter().find(|(g, _)| *g == name)?;
    let mut v = group_json(g, &vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

/// `/api/v1` or `/apis/GROUP/VERSION`.
pub fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut main = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        resources.push(main);
        for sub in r.subresources {
            let (kind, verbs, extra): (&str, &[&str], Option<(&str, &str)>) = match *sub {
                "status" => (r.kind, &["get", "patch", "update"], None),
                "scale" => (
                    "Scale",
                    &["get", "patch", "update"],
                    Some(("autoscaling", "v1")),
                ),
                "binding" => ("Binding", &["create"], None),
                "log" => (r.kind, &["get"], None),
                "finalize" => (r.kind, &["update"], None),
                _ => continue,
            };
            let mut s = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if let Some((g, v)) = extra {
                s["group"] = json!(g);
                s["version"] = json!(v);
            }
            resources.push(s);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_pods_and_subresources() {
        let l = resource_list("", "v1");
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for n in [
            "pods",
            "pods/status",
            "pods/binding",
            "pods/log",
            "namespaces/finalize",
            "nodes/status",
            "services",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        let apps = resource_list("apps", "v1");
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(
            group("apps").unwrap()["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        assert!(group("nope").is_none());
    }
}
