//! OpenAPI v3 discovery documents, enough for clients to learn that this server validates
//! fields itself: kubectl's field-validation check looks, per group/version, for a PATCH
//! operation tagged with the kind's `x-kubernetes-group-version-kind` that accepts the
//! `fieldValidation` query parameter, and then leaves validation to the server (which
//! answers `fieldValidation=Strict` requests with errors naming unknown fields).
//! Object schemas are not published yet.

use serde_json::{Value, json};

use crate::registry::RESOURCES;

/// The group/version path key of a resource list (`api/v1`, `apis/apps/v1`).
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per served group/version.
pub fn v3_root() -> Value {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES {
        let key = gv_path(r.group, r.version);
        paths.entry(key.clone()).or_insert_with(|| {
            json!({ "serverRelativeURL": format!("/openapi/v3/{key}?hash={}", env!("CARGO_PKG_VERSION")) })
        });
    }
    json!({ "paths": paths })
}

fn param(name: &str, kind: &str) -> Value {
    json!({ "name": name, "in": "query", "schema": { "type": kind, "uniqueItems": true } })
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`, or None if not served.
pub fn v3_group_version(group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({ "group": r.group, "version": r.version, "kind": r.kind });
        let base = format!("/{}", gv_path(r.group, r.version));
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [param("dryRun", "string"), param("fieldManager", "string"), param("fieldValidation", "string")],
                "responses": { "200": { "description": "OK" } },
            })
        };
        paths.insert(
            item,
            json!({ "patch": op("patch"), "put": op("put"), "get": op("get") }),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": format!("v{}.{}", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR) },
        "paths": paths,
        "components": { "schemas": {} },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_declares_field_validation_on_patch() {
        let root = v3_root();
        assert!(
            root["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1")
        );
        let core = v3_group_version("", "v1").unwrap();
        let ns = &core["paths"]["/api/v1/namespaces/{name}"]["patch"];
        assert_eq!(ns["x-kubernetes-group-version-kind"]["kind"], "Namespace");
        assert!(
            ns["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(v3_group_version("nope", "v1").is_none());
    }
}
